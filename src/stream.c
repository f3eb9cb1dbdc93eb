/*
 * cp_stream: the parent's end of one of a child's pipes, a descriptor
 * watched with a uv_poll_t. This file contains creation, listeners, the
 * poll callback and closing. Reading, writing and piping are in
 * stream-read.c, stream-write.c and stream-pipe.c.
 *
 * Lifetime: every callback that enters from the loop holds the child for
 * its whole run, because a listener may release the child, and touches
 * neither the child nor the stream after the matching unhold.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "child.h"
#include "io.h"
#include "stream-internal.h"

static void invoke_stream_listener(cp__listener_fn fn, void *object,
                                   const cp_event *event, void *data) {
  ((cp_stream_listener)fn)(object, event, data);
}

/* The stream's memory. A duplex stream ends its write side itself at end
 * of file, where no caller could learn of a failure, so its idle handle is
 * allocated here. Other streams get one in cp__stream_prepare_write(). */
static cp_stream *allocate_stream(unsigned flags) {
  bool duplex = (flags & CP__STREAM_READABLE) && (flags & CP__STREAM_WRITABLE);
  cp_stream *stream = calloc(1, sizeof(*stream));

  if (stream == NULL || !duplex)
    return stream;

  stream->idle = malloc(sizeof(*stream->idle));
  if (stream->idle == NULL) {
    free(stream);
    return NULL;
  }
  return stream;
}

static void init_idle(cp_stream *stream) {
  uv_idle_init(stream->poll.loop, stream->idle);
  stream->idle->data = stream;
  if (!stream->referenced)
    uv_unref((uv_handle_t *)stream->idle);
}

int cp__stream_new(uv_loop_t *loop, int fd, unsigned flags, cp_child *child,
                   cp_stream **stream_out) {
  cp_stream *stream;
  int r;

  *stream_out = NULL;
  if ((flags & (CP__STREAM_READABLE | CP__STREAM_WRITABLE)) == 0) {
    cp__close(fd);
    return -EINVAL;
  }

  stream = allocate_stream(flags);
  if (stream == NULL) {
    cp__close(fd);
    return -ENOMEM;
  }

  r = cp__set_nonblock(fd, true);
  if (r == 0)
    r = uv_poll_init(loop, &stream->poll, fd);
  if (r < 0) {
    cp__close(fd);
    free(stream->idle);
    free(stream);
    return r;
  }

  /* Nothing below can fail: the poll handle, once initialized, can only be
   * released through uv_close() and its callback. */
  stream->poll.data = stream;
  stream->child = child;
  stream->flags = flags;
  stream->fd = fd;
  stream->referenced = true;
  stream->high_water_mark = CP__DEFAULT_HIGH_WATER_MARK;
  if (stream->idle != NULL)
    init_idle(stream);
  cp__emitter_init(&stream->emitter, stream, invoke_stream_listener);

  *stream_out = stream;
  return 0;
}

void cp__stream_free(cp_stream *stream) {
  if (stream == NULL)
    return;

  cp__stream_free_read_side(stream);
  cp__stream_free_write_side(stream);
  cp__emitter_free(&stream->emitter);
  free(stream);
}

bool cp__stream_closed(const cp_stream *stream) { return stream->closed; }

/* ------------------------------------------------------------------------
 * Listeners and events
 * ------------------------------------------------------------------------ */

static bool is_stream_event(cp_event_type type) {
  switch (type) {
  case CP_EVENT_CLOSE:
  case CP_EVENT_ERROR:
  case CP_EVENT_DATA:
  case CP_EVENT_END:
  case CP_EVENT_DRAIN:
  case CP_EVENT_FINISH:
    return true;
  default:
    return false;
  }
}

static int add_listener(cp_stream *stream, cp_event_type type,
                        cp_stream_listener fn, void *data, bool once) {
  int r;

  if (stream == NULL || fn == NULL || !is_stream_event(type))
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__emitter_add(&stream->emitter, type, (cp__listener_fn)fn, data, once);
  if (r < 0)
    return r;

  /* Node's on('data') resumes a stream that pause() did not stop. */
  if (type == CP_EVENT_DATA && (stream->flags & CP__STREAM_READABLE) &&
      !stream->paused_by_caller)
    cp__stream_set_flowing(stream, true);
  return 0;
}

int cp_stream_on(cp_stream *stream, cp_event_type type, cp_stream_listener fn,
                 void *data) {
  return add_listener(stream, type, fn, data, false);
}

int cp_stream_once(cp_stream *stream, cp_event_type type, cp_stream_listener fn,
                   void *data) {
  return add_listener(stream, type, fn, data, true);
}

int cp_stream_off(cp_stream *stream, cp_event_type type, cp_stream_listener fn,
                  void *data) {
  if (stream == NULL || fn == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  return cp__emitter_remove(&stream->emitter, type, (cp__listener_fn)fn, data);
}

/* The hold keeps the stream's memory valid for the caller after the emit,
 * when the caller itself runs under a hold taken on entry from the loop. */
void cp__stream_emit(cp_stream *stream, const cp_event *event) {
  cp_child *child = stream->child;

  cp__child_hold(child);
  cp__emitter_emit(&stream->emitter, event);
  cp__child_unhold(child);
}

void cp__stream_emit_error(cp_stream *stream, int error, const char *syscall) {
  cp__stream_emit(
      stream,
      &(cp_event){.type = CP_EVENT_ERROR, .error = error, .syscall = syscall});
}

/* ------------------------------------------------------------------------
 * Accessors
 * ------------------------------------------------------------------------ */

cp_child *cp_stream_child(const cp_stream *stream) { return stream->child; }

int cp_stream_fileno(const cp_stream *stream) { return stream->fd; }

bool cp_stream_readable(const cp_stream *stream) {
  return (stream->flags & CP__STREAM_READABLE) && !stream->destroyed &&
         !stream->end_emitted;
}

bool cp_stream_writable(const cp_stream *stream) {
  return (stream->flags & CP__STREAM_WRITABLE) && !stream->destroyed &&
         !stream->ending && stream->write_error == 0;
}

/* ------------------------------------------------------------------------
 * Polling
 * ------------------------------------------------------------------------ */

static void on_poll(uv_poll_t *handle, int status, int events);

/* Watches for readability only while flowing and for writability only while
 * writes are queued, so that a paused stream leaves its data in the pipe
 * and an idle one costs nothing. */
void cp__stream_update_poll(cp_stream *stream) {
  int events = 0;

  if (stream->destroyed)
    return;

  if (cp__stream_should_read(stream))
    events |= UV_READABLE;
  if (stream->queue.head != NULL && stream->write_error == 0)
    events |= UV_WRITABLE;
  if (events == stream->poll_events)
    return;

  stream->poll_events = events;
  if (events == 0)
    uv_poll_stop(&stream->poll);
  else
    uv_poll_start(&stream->poll, events, on_poll);
}

/*
 * libuv reports POLLERR as status UV_EBADF and stops the handle. On a pipe's
 * write end that means the reader is gone, on a socket a pending error: a
 * write or read attempt returns the real errno (EPIPE, ECONNRESET), and
 * that reports the failure. An attempt that makes no progress would poll
 * again into the same error, so the stream fails with what the socket
 * holds, or with libuv's status.
 */
static void handle_poll_error(cp_stream *stream, int status) {
  bool progressed = false;
  bool writing = stream->queue.head != NULL && stream->write_error == 0;
  int error = status;

  stream->poll_events = 0;

  if (writing)
    progressed = cp__stream_on_writable(stream);
  if (!stream->destroyed && cp__stream_should_read(stream))
    progressed = cp__stream_on_readable(stream) || progressed;
  if (progressed || stream->destroyed)
    return;

  /* NOTE: no test reaches this fallback; every POLLERR seen so far (EPIPE
   * on a pipe, ECONNRESET on a socket) was resolved by the attempts above. */
  if (stream->flags & CP__STREAM_SOCKET) {
    int pending = cp__socket_error(stream->fd);

    if (pending != 0)
      error = pending;
  }
  cp__stream_emit_error(stream, error, writing ? "write" : "read");
  cp_stream_destroy(stream);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  cp_stream *stream = handle->data;
  cp_child *child = stream->child;

  cp__child_hold(child);
  if (status < 0) {
    handle_poll_error(stream, status);
  } else {
    if ((events & UV_READABLE) && cp__stream_should_read(stream))
      cp__stream_on_readable(stream);
    if ((events & UV_WRITABLE) && !stream->destroyed)
      cp__stream_on_writable(stream);
  }
  cp__stream_update_poll(stream);
  cp__child_unhold(child);
}

/* ------------------------------------------------------------------------
 * Deferred work: write callbacks, DRAIN and FINISH
 * ------------------------------------------------------------------------ */

static void on_idle(uv_idle_t *handle) {
  cp_stream *stream = handle->data;
  cp_child *child = stream->child;

  cp__child_hold(child);
  cp__stream_after_write(stream);
  cp__child_unhold(child);
}

/* Creates the idle handle on the first write or end(), so that a stdin
 * that is never written has none. A closing stream needs none: its close
 * callback runs the deferred work. */
int cp__stream_prepare_write(cp_stream *stream) {
  if (stream->idle != NULL || stream->destroyed)
    return 0;

  stream->idle = malloc(sizeof(*stream->idle));
  if (stream->idle == NULL)
    return -ENOMEM;

  init_idle(stream);
  return 0;
}

/* Runs cp__stream_after_write() from the loop soon, for work that a public
 * function may not do itself (Node calls write callbacks asynchronously).
 * A closing stream runs that work from its close callback instead. */
void cp__stream_schedule(cp_stream *stream) {
  if (!stream->destroyed)
    uv_idle_start(stream->idle, on_idle);
}

/* ------------------------------------------------------------------------
 * Closing
 * ------------------------------------------------------------------------ */

/* The last close callback: write callbacks still due run first, then CLOSE,
 * then the child learns that the stream is closed. */
static void on_handle_closed(uv_handle_t *handle) {
  cp_stream *stream = handle->data;
  cp_child *child = stream->child;

  if (handle != (uv_handle_t *)&stream->poll)
    free(handle);
  if (--stream->handles_open > 0)
    return;

  cp__child_hold(child);
  cp__stream_run_last_write_callbacks(stream);
  /* Set before the emit: a write from a CLOSE listener must not queue a
   * callback that nothing would run any more. */
  stream->closed = true;
  cp__stream_emit(stream, &(cp_event){.type = CP_EVENT_CLOSE});
  cp__child_stream_closed(child, stream);
  cp__child_unhold(child);
}

/* Closes the descriptor now and emits CLOSE from the close callbacks. */
void cp__stream_begin_close(cp_stream *stream) {
  if (stream->destroyed)
    return;

  stream->destroyed = true;
  stream->flowing = false;
  stream->poll_events = 0;
  stream->handles_open = 1;
  cp__stream_cancel_queued_writes(stream);
  uv_close((uv_handle_t *)&stream->poll, on_handle_closed);
  if (stream->idle != NULL) {
    stream->handles_open++;
    uv_close((uv_handle_t *)stream->idle, on_handle_closed);
    stream->idle = NULL;
  }

  /* uv_close() has removed the descriptor from epoll (EPOLL_CTL_DEL in
   * uv__poll_stop(), libuv 1.44 on Linux), so closing it here cannot
   * disturb a descriptor that reuses the number later. */
  stream->fd = cp__close(stream->fd);
}

/* Node's autoDestroy: a stream closes once each of its sides is done. */
void cp__stream_maybe_close(cp_stream *stream) {
  bool read_done =
      !(stream->flags & CP__STREAM_READABLE) || stream->end_emitted;
  bool write_done = !(stream->flags & CP__STREAM_WRITABLE) || stream->finished;

  if (read_done && write_done)
    cp__stream_begin_close(stream);
}

void cp_stream_destroy(cp_stream *stream) {
  if (stream == NULL)
    return;
  cp__stream_begin_close(stream);
}

void cp__stream_destroy_for_exit(cp_stream *stream) {
  if (stream->destroyed)
    return;

  stream->destroy_error = -EPIPE;
  if (stream->queue.head != NULL)
    cp__stream_emit_error(stream, -EPIPE, "write");
  cp__stream_begin_close(stream);
}

/* Node's flushStdio: unread output is drained so that the stream reaches
 * end of file and the child can emit CLOSE. */
void cp__stream_flush(cp_stream *stream) {
  if (!(stream->flags & CP__STREAM_READABLE) || stream->destroyed ||
      stream->read_eof || stream->flowing || stream->paused_by_caller ||
      cp__stream_has_pipes(stream))
    return;
  cp__stream_set_flowing(stream, true);
}

/* ------------------------------------------------------------------------
 * ref and unref
 * ------------------------------------------------------------------------ */

/* libuv keeps a handle's ref state across uv_poll_start() and
 * uv_idle_start(), so re-arming needs nothing more. The flag is for the
 * timers made later for late write callbacks. */
void cp_stream_ref(cp_stream *stream) {
  if (stream == NULL || stream->closed)
    return;

  stream->referenced = true;
  uv_ref((uv_handle_t *)&stream->poll);
  if (stream->idle != NULL)
    uv_ref((uv_handle_t *)stream->idle);
}

void cp_stream_unref(cp_stream *stream) {
  if (stream == NULL || stream->closed)
    return;

  stream->referenced = false;
  uv_unref((uv_handle_t *)&stream->poll);
  if (stream->idle != NULL)
    uv_unref((uv_handle_t *)stream->idle);
}
