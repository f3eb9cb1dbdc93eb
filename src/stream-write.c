/*
 * The writable side of cp_stream: the write queue and its flushing, write
 * callbacks in order and always from the loop, DRAIN, end() and FINISH.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "child.h"
#include "io.h"
#include "stream-internal.h"

/* ------------------------------------------------------------------------
 * Chunk lists
 * ------------------------------------------------------------------------ */

/* A chunk with room for capacity bytes, still empty. */
static cp__write_chunk *chunk_new(size_t capacity, cp_write_cb cb, void *data) {
  cp__write_chunk *chunk;

  if (capacity > SIZE_MAX - sizeof(*chunk))
    return NULL;

  chunk = malloc(sizeof(*chunk) + capacity);
  if (chunk == NULL)
    return NULL;

  *chunk = (cp__write_chunk){.cb = cb, .data = data};
  return chunk;
}

static void list_push(cp__chunk_list *list, cp__write_chunk *chunk) {
  chunk->next = NULL;
  if (list->tail != NULL)
    list->tail->next = chunk;
  else
    list->head = chunk;
  list->tail = chunk;
}

static cp__write_chunk *list_shift(cp__chunk_list *list) {
  cp__write_chunk *chunk = list->head;

  if (chunk == NULL)
    return NULL;

  list->head = chunk->next;
  if (list->head == NULL)
    list->tail = NULL;
  return chunk;
}

static void list_free(cp__chunk_list *list) {
  cp__write_chunk *chunk;

  while ((chunk = list_shift(list)) != NULL)
    free(chunk);
}

/* Moves a chunk that is written or failed to the callbacks due. A chunk
 * with neither a callback nor an error event to emit is freed now. */
static void finish_chunk(cp_stream *stream, cp__write_chunk *chunk, int status,
                         bool emit_error) {
  if (chunk->cb == NULL && !emit_error) {
    free(chunk);
    return;
  }

  chunk->status = status;
  chunk->emit_error = emit_error;
  list_push(&stream->done, chunk);
}

/* Runs the callbacks due, oldest first, up to and including last, or all
 * of them for a NULL last. The bound keeps a callback that writes again,
 * and completes at once, from looping here without end: the new callback
 * waits for the next round. */
static void run_write_callbacks(cp_stream *stream,
                                const cp__write_chunk *last) {
  cp__write_chunk *chunk;
  bool more = true;

  while (more && (chunk = list_shift(&stream->done)) != NULL) {
    /* last stays allocated until this loop frees it, so no other chunk
     * can have its address. */
    more = chunk != last;
    if (chunk->cb != NULL)
      chunk->cb(stream, chunk->status, chunk->data);
    if (chunk->emit_error)
      cp__stream_emit_error(stream, chunk->status, "write");
    free(chunk);
  }
}

/* ------------------------------------------------------------------------
 * Failures
 * ------------------------------------------------------------------------ */

/* Called when closing starts: every write still queued fails with the
 * write error that destroyed the stream, or with CP_ERR_STREAM_DESTROYED,
 * ahead of any write made after this point (Node's destroy() runs
 * errorBuffer() first). The close callback runs the callbacks. */
void cp__stream_cancel_queued_writes(cp_stream *stream) {
  int error = stream->write_error;
  cp__write_chunk *chunk;

  if (error == 0)
    error = stream->destroy_error != 0 ? stream->destroy_error
                                       : CP_ERR_STREAM_DESTROYED;
  while ((chunk = list_shift(&stream->queue)) != NULL)
    finish_chunk(stream, chunk, error, false);
  stream->writable_length = 0;
}

/* Node's onwriteError: the failed write and every write queued behind it
 * fail with the error, then the error event is emitted and the stream
 * destroyed, all from the loop. */
static void fail_queued_writes(cp_stream *stream, int error) {
  if (stream->write_error == 0) {
    stream->write_error = error;
    stream->write_error_pending = true;
  }

  cp__stream_cancel_queued_writes(stream);
  cp__stream_update_poll(stream);
  cp__stream_schedule(stream);
}

/* Called from the close callback, before CLOSE. A callback may write again
 * and so add another failed callback, hence the loop. */
void cp__stream_run_last_write_callbacks(cp_stream *stream) {
  while (stream->done.head != NULL)
    run_write_callbacks(stream, NULL);
}

/* A write callback for a stream that has emitted CLOSE: its handles are
 * closed, so a timer of its own runs the callback, and the hold keeps the
 * child (and the stream) alive until then. */
typedef struct late_callback {
  uv_timer_t timer;
  cp_stream *stream;
  cp_write_cb cb;
  void *data;
  int status;
} late_callback;

static void free_late_callback(uv_handle_t *handle) {
  late_callback *late = handle->data;
  cp_child *child = late->stream->child;

  free(late);
  cp__child_unhold(child);
}

static void run_late_callback(uv_timer_t *timer) {
  late_callback *late = timer->data;

  late->cb(late->stream, late->status, late->data);
  uv_close((uv_handle_t *)timer, free_late_callback);
}

static int defer_late_callback(cp_stream *stream, cp_write_cb cb, void *data,
                               int status) {
  late_callback *late;

  if (cb == NULL)
    return 0;

  late = malloc(sizeof(*late));
  if (late == NULL)
    return -ENOMEM;

  *late = (late_callback){
      .stream = stream, .cb = cb, .data = data, .status = status};
  uv_timer_init(stream->poll.loop, &late->timer);
  late->timer.data = late;
  uv_timer_start(&late->timer, run_late_callback, 0, 0);
  if (!stream->referenced)
    uv_unref((uv_handle_t *)&late->timer);
  cp__child_hold(stream->child);
  return 0;
}

/*
 * A write after end() or after the stream was destroyed, as Node's
 * _write(): the callback gets the error from the loop, and an error event
 * follows, except on a destroyed stream, which emits nothing but CLOSE.
 * Returns 0 (write()'s false) or -ENOMEM.
 */
static int reject_write(cp_stream *stream, cp_write_cb cb, void *data) {
  int error = CP_ERR_STREAM_DESTROYED;
  bool emit_error = !stream->destroyed;

  if (stream->ending)
    error = CP_ERR_STREAM_WRITE_AFTER_END;
  else if (stream->destroy_error != 0)
    error = stream->destroy_error;
  cp__write_chunk *chunk;

  if (stream->closed)
    return defer_late_callback(stream, cb, data, error);
  if (cb == NULL && !emit_error)
    return 0;

  chunk = chunk_new(0, cb, data);
  if (chunk == NULL)
    return -ENOMEM;

  finish_chunk(stream, chunk, error, emit_error);
  cp__stream_schedule(stream);
  return 0;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

int cp_stream_write(cp_stream *stream, const void *buf, size_t len,
                    cp_write_cb cb, void *data) {
  cp__write_chunk *chunk;
  size_t written = 0;
  bool below_mark;

  if (stream == NULL || (buf == NULL && len > 0))
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(stream->flags & CP__STREAM_WRITABLE))
    return CP_ERR_STREAM_NOT_WRITABLE;
  if (cp__stream_prepare_write(stream) < 0)
    return -ENOMEM;
  if (stream->ending || stream->destroyed)
    return reject_write(stream, cb, data);

  /* Allocated before the write so that a failure leaves nothing written. */
  chunk = chunk_new(len, cb, data);
  if (chunk == NULL)
    return -ENOMEM;

  /* As Node's writeOrBuffer(), the bytes count against the mark before the
   * attempt to write them. */
  below_mark = stream->writable_length + len < stream->high_water_mark;
  if (!below_mark)
    stream->need_drain = true;

  if (stream->queue.head == NULL && stream->write_error == 0 && len > 0) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    ssize_t n =
        cp__writev(stream->fd, &iov, 1, stream->flags & CP__STREAM_SOCKET);

    if (n < 0 && n != -EAGAIN) {
      list_push(&stream->queue, chunk);
      fail_queued_writes(stream, (int)n);
      return 0;
    }
    if (n > 0)
      written = (size_t)n;
  }

  chunk->len = len - written;
  memcpy(chunk->bytes, (const char *)buf + written, chunk->len);

  if (chunk->len == 0 && stream->queue.head == NULL) {
    finish_chunk(stream, chunk, 0, false);
    cp__stream_schedule(stream);
  } else {
    list_push(&stream->queue, chunk);
    stream->writable_length += chunk->len;
    cp__stream_update_poll(stream);
  }
  return below_mark && stream->write_error == 0;
}

/* Fills iov from the queue, up to IOV_MAX chunks. Returns the count and
 * stores the byte total. */
static int gather_queue(const cp_stream *stream, struct iovec *iov,
                        size_t *total) {
  int count = 0;

  *total = 0;
  for (cp__write_chunk *chunk = stream->queue.head;
       chunk != NULL && count < IOV_MAX; chunk = chunk->next) {
    iov[count].iov_base = chunk->bytes + chunk->offset;
    iov[count].iov_len = chunk->len - chunk->offset;
    *total += iov[count].iov_len;
    count++;
  }
  return count;
}

/* Retires the queued chunks that n written bytes completed. */
static void consume_written(cp_stream *stream, size_t n) {
  while (stream->queue.head != NULL) {
    cp__write_chunk *chunk = stream->queue.head;
    size_t left = chunk->len - chunk->offset;

    if (left > n) {
      chunk->offset += n;
      stream->writable_length -= n;
      return;
    }

    n -= left;
    stream->writable_length -= left;
    list_shift(&stream->queue);
    finish_chunk(stream, chunk, 0, false);
  }
}

/* Writes queued chunks, many per writev(), until the descriptor is full,
 * a bounded number of times per wakeup. Returns whether a write returned
 * something other than EAGAIN. */
static bool flush_queue(cp_stream *stream) {
  struct iovec iov[IOV_MAX];
  bool progressed = false;

  for (int round = 0;
       round < CP__WRITES_PER_WAKEUP && stream->queue.head != NULL &&
       stream->write_error == 0 && !stream->destroyed;
       round++) {
    size_t total;
    int count = gather_queue(stream, iov, &total);
    ssize_t n = 0;

    if (total > 0)
      n = cp__writev(stream->fd, iov, count, stream->flags & CP__STREAM_SOCKET);
    if (n == -EAGAIN)
      break;
    progressed = true;

    if (n < 0) {
      fail_queued_writes(stream, (int)n);
      break;
    }
    consume_written(stream, (size_t)n);
    if ((size_t)n < total)
      break;
  }
  return progressed;
}

bool cp__stream_on_writable(cp_stream *stream) {
  bool progressed = flush_queue(stream);

  cp__stream_after_write(stream);
  return progressed;
}

/* ------------------------------------------------------------------------
 * After writes: callbacks, DRAIN, FINISH
 * ------------------------------------------------------------------------ */

/* Node's finishMaybe() and the shutdown of net.Socket's _final(): once
 * end() was called and every write's callback has run, a socket's write
 * side is shut down, a pipe is closed, and FINISH is emitted. */
static void maybe_finish(cp_stream *stream) {
  if (!stream->ending || stream->finished || stream->destroyed ||
      stream->write_error != 0 || stream->queue.head != NULL ||
      stream->done.head != NULL)
    return;

  stream->finished = true;
  if (stream->flags & CP__STREAM_SOCKET) {
    if (shutdown(stream->fd, SHUT_WR) < 0) {
      cp__stream_emit_error(stream, -errno, "shutdown");
      cp_stream_destroy(stream);
      return;
    }
  } else if (!(stream->flags & CP__STREAM_READABLE)) {
    cp__stream_begin_close(stream);
  }

  cp__stream_emit(stream, &(cp_event){.type = CP_EVENT_FINISH});
  if (!stream->destroyed)
    cp__stream_maybe_close(stream);
}

static bool drain_due(const cp_stream *stream) {
  return stream->need_drain && stream->writable_length == 0 &&
         !stream->ending;
}

/* The deferred half of writing, run from the loop: the callbacks due, then
 * a write error's event and destroy, or DRAIN and FINISH. */
void cp__stream_after_write(cp_stream *stream) {
  run_write_callbacks(stream, stream->done.tail);
  if (stream->destroyed)
    return;

  /* Writes queued after the failure fail too, before the error event, as
   * Node's errorBuffer() runs before errorOrDestroy(). */
  if (stream->write_error_pending) {
    stream->write_error_pending = false;
    fail_queued_writes(stream, stream->write_error);
    run_write_callbacks(stream, NULL);
    if (stream->destroyed)
      return;
    cp__stream_emit_error(stream, stream->write_error, "write");
    cp_stream_destroy(stream);
    return;
  }

  /* As Node's afterWrite(), no DRAIN once end() was called. */
  if (drain_due(stream)) {
    stream->need_drain = false;
    cp__stream_emit(stream, &(cp_event){.type = CP_EVENT_DRAIN});
    if (stream->destroyed)
      return;
  }

  maybe_finish(stream);
  /* A DRAIN listener may have written a chunk the pipe took at once: its
   * DRAIN is owed on the next run even with no callback pending. */
  if (!stream->destroyed && stream->done.head == NULL && !drain_due(stream))
    uv_idle_stop(stream->idle);
}

int cp_stream_end(cp_stream *stream) {
  if (stream == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(stream->flags & CP__STREAM_WRITABLE))
    return CP_ERR_STREAM_NOT_WRITABLE;
  if (stream->finished)
    return CP_ERR_STREAM_ALREADY_FINISHED;
  if (stream->destroyed)
    return CP_ERR_STREAM_DESTROYED;
  if (cp__stream_prepare_write(stream) < 0)
    return -ENOMEM;

  if (!stream->ending) {
    stream->ending = true;
    cp__stream_schedule(stream);
  }
  return 0;
}

size_t cp_stream_writable_length(const cp_stream *stream) {
  return stream->writable_length;
}

size_t cp_stream_writable_high_water_mark(const cp_stream *stream) {
  return stream->high_water_mark;
}

void cp_stream_set_writable_high_water_mark(cp_stream *stream, size_t bytes) {
  if (stream != NULL)
    stream->high_water_mark = bytes;
}

void cp__stream_free_write_side(cp_stream *stream) {
  list_free(&stream->queue);
  list_free(&stream->done);
}
