/*
 * cp_stream_pipe(): Node's readable.pipe(), built from internal listeners
 * on both streams. The source pauses whenever a write to a destination
 * returns false and resumes once every destination it waits for has
 * drained (Node's awaitDrain), so memory stays bounded by the
 * destinations' high-water marks plus one read.
 *
 * No internal listener is added for ERROR, so an error still reaches the
 * caller's listeners or the unhandled-error handler. Every error destroys
 * its stream, and the CLOSE that follows removes the link.
 */
#include <errno.h>
#include <stdlib.h>

#include "stream-internal.h"

static void drop_link(cp__pipe_link *link);

static void on_source_data(cp_stream *src, const cp_event *event, void *data) {
  cp__pipe_link *link = data;
  int r = cp_stream_write(link->dst, event->data, event->len, NULL, NULL);

  if (r < 0) {
    /* Out of memory: the chunk is lost, so the caller must hear of it. */
    cp__stream_emit_error(src, r, "write");
    return;
  }
  if (r == 0 && !link->awaiting_drain) {
    link->awaiting_drain = true;
    src->pipes_awaiting_drain++;
    cp__stream_set_flowing(src, false);
  }
}

static void on_destination_drain(cp_stream *dst, const cp_event *event,
                                 void *data) {
  cp__pipe_link *link = data;
  cp_stream *src = link->src;

  (void)dst;
  (void)event;
  if (!link->awaiting_drain)
    return;

  link->awaiting_drain = false;
  src->pipes_awaiting_drain--;
  if (src->pipes_awaiting_drain == 0)
    cp__stream_resume_after_pipe(src);
}

static void on_source_end(cp_stream *src, const cp_event *event, void *data) {
  cp__pipe_link *link = data;

  (void)src;
  (void)event;
  if (link->end)
    cp_stream_end(link->dst);
  drop_link(link);
}

/* CLOSE of either stream, or FINISH of the destination: no more data can
 * pass. */
static void on_link_over(cp_stream *stream, const cp_event *event, void *data) {
  (void)stream;
  (void)event;
  drop_link(data);
}

/*
 * The destination closed before the source ended (the downstream program
 * exited, as `head` does). A source left with no destination and no DATA
 * listener is destroyed, so its child gets EPIPE or SIGPIPE as in a shell
 * pipeline instead of blocking forever on a full pipe. Node's pipe() leaves
 * it paused.
 */
static void on_destination_close(cp_stream *dst, const cp_event *event,
                                 void *data) {
  cp__pipe_link *link = data;
  cp_stream *src = link->src;

  (void)dst;
  (void)event;
  drop_link(link);
  if (src->pipes == NULL && !src->end_emitted &&
      cp__emitter_count(&src->emitter, CP_EVENT_DATA) == 0)
    cp_stream_destroy(src);
}

/* The internal listeners of a link, on its source or its destination. */
static const struct {
  bool on_source;
  cp_event_type type;
  cp_stream_listener fn;
} link_listeners[] = {
    {true, CP_EVENT_DATA, on_source_data},
    {true, CP_EVENT_END, on_source_end},
    {true, CP_EVENT_CLOSE, on_link_over},
    {false, CP_EVENT_DRAIN, on_destination_drain},
    {false, CP_EVENT_FINISH, on_link_over},
    {false, CP_EVENT_CLOSE, on_destination_close},
};

#define LINK_LISTENER_COUNT (sizeof(link_listeners) / sizeof(link_listeners[0]))

static cp__emitter *listener_emitter(cp__pipe_link *link, size_t i) {
  return link_listeners[i].on_source ? &link->src->emitter
                                     : &link->dst->emitter;
}

static void remove_listeners(cp__pipe_link *link, size_t count) {
  for (size_t i = 0; i < count; i++)
    cp__emitter_remove(listener_emitter(link, i), link_listeners[i].type,
                       (cp__listener_fn)link_listeners[i].fn, link);
}

static int add_listeners(cp__pipe_link *link) {
  for (size_t i = 0; i < LINK_LISTENER_COUNT; i++) {
    int r = cp__emitter_add(listener_emitter(link, i), link_listeners[i].type,
                            (cp__listener_fn)link_listeners[i].fn, link, false);
    if (r < 0) {
      remove_listeners(link, i);
      return r;
    }
  }
  return 0;
}

static void unlink_from_source(cp__pipe_link *link) {
  for (cp__pipe_link **p = &link->src->pipes; *p != NULL; p = &(*p)->next) {
    if (*p == link) {
      *p = link->next;
      return;
    }
  }
}

/* Removes the link. The emitter never calls a listener removed during an
 * emit, so the link's memory can go at once. */
static void drop_link(cp__pipe_link *link) {
  cp_stream *src = link->src;
  bool was_awaiting = link->awaiting_drain;

  remove_listeners(link, LINK_LISTENER_COUNT);
  unlink_from_source(link);
  free(link);

  if (was_awaiting)
    src->pipes_awaiting_drain--;
  if (src->pipes_awaiting_drain == 0)
    cp__stream_resume_after_pipe(src);
}

int cp_stream_pipe(cp_stream *src, cp_stream *dst, bool end) {
  cp__pipe_link *link;
  cp__pipe_link **tail;
  int r;

  if (src == NULL || dst == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(src->flags & CP__STREAM_READABLE) || src->destroyed || src->end_emitted)
    return CP_ERR_STREAM_NOT_READABLE;
  if (!(dst->flags & CP__STREAM_WRITABLE) || dst->destroyed)
    return CP_ERR_STREAM_NOT_WRITABLE;
  /* The link ends dst from a listener, which could not report a failure. */
  if (cp__stream_prepare_write(dst) < 0)
    return -ENOMEM;

  link = calloc(1, sizeof(*link));
  if (link == NULL)
    return -ENOMEM;
  *link = (cp__pipe_link){.src = src, .dst = dst, .end = end};

  r = add_listeners(link);
  if (r < 0) {
    free(link);
    return r;
  }

  for (tail = &src->pipes; *tail != NULL; tail = &(*tail)->next)
    ;
  *tail = link;

  /* As Node's pipe(): wait at once for a destination that is already
   * above its mark, otherwise start the flow, even after pause(). */
  if (dst->need_drain) {
    link->awaiting_drain = true;
    src->pipes_awaiting_drain++;
  }
  src->paused_by_caller = false;
  cp__stream_set_flowing(src, true);
  return 0;
}

/* dst NULL removes every link of src, as Node's unpipe() without an
 * argument. */
int cp_stream_unpipe(cp_stream *src, cp_stream *dst) {
  bool found = false;
  cp__pipe_link *link;
  cp__pipe_link *next;

  if (src == NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  for (link = src->pipes; link != NULL; link = next) {
    next = link->next;
    if (dst != NULL && link->dst != dst)
      continue;

    found = true;
    drop_link(link);
    if (dst != NULL)
      break;
  }
  return found ? 0 : -ENOENT;
}

bool cp__stream_has_pipes(const cp_stream *stream) {
  return stream->pipes != NULL;
}
