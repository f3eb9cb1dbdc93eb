/*
 * The readable side of cp_stream: flowing and paused modes, reading into
 * one buffer that DATA events borrow, decoding, and end of file.
 */
#include <errno.h>
#include <stdlib.h>

#include "io.h"
#include "stream-internal.h"

bool cp__stream_should_read(const cp_stream *stream) {
  return (stream->flags & CP__STREAM_READABLE) && stream->flowing &&
         !stream->read_eof && !stream->destroyed;
}

/* Starts or stops reading. A stream stays stopped while a pipe waits for a
 * destination to drain, and once it is closing or at end of file. */
void cp__stream_set_flowing(cp_stream *stream, bool flowing) {
  if (stream->pipes_awaiting_drain > 0 || stream->destroyed || stream->read_eof)
    flowing = false;

  stream->flowing = flowing;
  cp__stream_update_poll(stream);
}

/* Restarts or stops a source that waits for no destination any more, as
 * Node's pipeOnDrain and unpipe do: it flows while it has a DATA listener,
 * unless the caller paused it. */
void cp__stream_resume_after_pipe(cp_stream *stream) {
  bool listened = cp__emitter_count(&stream->emitter, CP_EVENT_DATA) > 0;

  cp__stream_set_flowing(stream, listened && !stream->paused_by_caller);
}

int cp_stream_pause(cp_stream *stream) {
  if (stream == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(stream->flags & CP__STREAM_READABLE))
    return CP_ERR_STREAM_NOT_READABLE;

  stream->paused_by_caller = true;
  cp__stream_set_flowing(stream, false);
  return 0;
}

int cp_stream_resume(cp_stream *stream) {
  if (stream == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(stream->flags & CP__STREAM_READABLE))
    return CP_ERR_STREAM_NOT_READABLE;

  stream->paused_by_caller = false;
  cp__stream_set_flowing(stream, true);
  return 0;
}

/* Node's isPaused(): false for a new stream, true after pause() and while a
 * pipe waits for its destination to drain. */
bool cp_stream_is_paused(const cp_stream *stream) {
  return stream->paused_by_caller || stream->pipes_awaiting_drain > 0;
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static void free_decoder(cp__decoder *decoder) {
  if (decoder == NULL)
    return;
  cp__decoder_free(decoder);
  free(decoder);
}

/* A decoder replaced by a DATA listener owns the text that the other
 * listeners of the same emit still receive, so it lives until the emit
 * ends. Only the first replacement in an emit can own that text. */
static void retire_decoder(cp_stream *stream) {
  if (stream->data_emits > 0 && stream->retired_decoder == NULL)
    stream->retired_decoder = stream->decoder;
  else
    free_decoder(stream->decoder);
  stream->decoder = NULL;
}

/* As Node's setEncoding(), a new decoder starts empty: bytes of a character
 * that the previous decoder held back are dropped. */
int cp_stream_set_encoding(cp_stream *stream, const char *encoding) {
  cp__encoding parsed;
  cp__decoder *decoder = NULL;
  int r;

  if (stream == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (!(stream->flags & CP__STREAM_READABLE))
    return CP_ERR_STREAM_NOT_READABLE;

  r = cp__encoding_parse(encoding, &parsed);
  if (r < 0)
    return r;

  if (parsed != CP__ENCODING_NONE) {
    decoder = malloc(sizeof(*decoder));
    if (decoder == NULL)
      return -ENOMEM;
    cp__decoder_init(decoder, parsed);
  }

  retire_decoder(stream);
  stream->decoder = decoder;
  return 0;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* A failed read ends the stream as Node's destroy(err) does: ERROR, then
 * CLOSE from the close callback. */
static void fail_read(cp_stream *stream, int error) {
  stream->read_eof = true;
  cp__stream_emit_error(stream, error, "read");
  cp_stream_destroy(stream);
}

static void emit_text(cp_stream *stream, const char *data, size_t len) {
  stream->data_emits++;
  cp__stream_emit(stream,
                  &(cp_event){.type = CP_EVENT_DATA, .data = data, .len = len});
  stream->data_emits--;

  if (stream->data_emits == 0) {
    free_decoder(stream->retired_decoder);
    stream->retired_decoder = NULL;
  }
}

/* Emits DATA for bytes just read, decoded when an encoding is set. Decoding
 * that yields no text yet (half a character) emits nothing. */
static void emit_data(cp_stream *stream, const char *bytes, size_t len) {
  const char *text;
  size_t text_len;
  int r;

  if (stream->decoder == NULL) {
    emit_text(stream, bytes, len);
    return;
  }

  r = cp__decoder_write(stream->decoder, bytes, len, &text, &text_len);
  if (r < 0) {
    fail_read(stream, r);
    return;
  }
  if (text_len > 0)
    emit_text(stream, text, text_len);
}

/* Emits the decoder's held-back bytes and END, ends the write side of a
 * duplex stream (Node's allowHalfOpen false), and closes the stream once
 * both sides are done. */
static void reach_eof(cp_stream *stream) {
  stream->read_eof = true;

  if (stream->decoder != NULL) {
    const char *text;
    size_t text_len;
    int r = cp__decoder_end(stream->decoder, &text, &text_len);

    if (r < 0) {
      fail_read(stream, r);
      return;
    }
    if (text_len > 0)
      emit_text(stream, text, text_len);
  }
  if (stream->destroyed)
    return;

  stream->end_emitted = true;
  cp__stream_emit(stream, &(cp_event){.type = CP_EVENT_END});
  if (stream->destroyed)
    return;

  if ((stream->flags & CP__STREAM_WRITABLE) && !stream->ending)
    cp_stream_end(stream);
  cp__stream_maybe_close(stream);
}

/*
 * Reads while the stream flows, up to a bound per wakeup so that one busy
 * child cannot starve the loop. Data left behind makes epoll report the
 * descriptor again. A listener may pause or destroy the stream between two
 * reads. Returns whether any read returned something other than EAGAIN.
 *
 * The buffer lives for this call only, as libuv's alloc_cb gives one per
 * read, so that a child that is alive but quiet costs its parent no
 * buffer. One malloc() per wakeup is small beside its epoll_wait() and
 * read() calls.
 */
bool cp__stream_on_readable(cp_stream *stream) {
  char *buffer = malloc(CP__READ_BUFFER_SIZE);
  size_t bytes = 0;
  bool progressed = false;

  if (buffer == NULL) {
    fail_read(stream, -ENOMEM);
    return true;
  }

  for (int reads = 0;
       reads < CP__READS_PER_WAKEUP && bytes < CP__READ_BYTES_PER_WAKEUP &&
       cp__stream_should_read(stream);
       reads++) {
    ssize_t n = cp__read(stream->fd, buffer, CP__READ_BUFFER_SIZE);

    if (n == -EAGAIN)
      break;
    progressed = true;

    if (n < 0) {
      fail_read(stream, (int)n);
      break;
    }
    if (n == 0) {
      reach_eof(stream);
      break;
    }

    bytes += (size_t)n;
    emit_data(stream, buffer, (size_t)n);

    /* A short read has most likely emptied the descriptor, so another read
     * would only return EAGAIN. */
    if ((size_t)n < CP__READ_BUFFER_SIZE)
      break;
  }
  free(buffer);
  /* The decoder's text is as large as the last read: it goes too. */
  if (stream->decoder != NULL)
    cp__decoder_release_text(stream->decoder);
  return progressed;
}

void cp__stream_free_read_side(cp_stream *stream) {
  free_decoder(stream->decoder);
  free_decoder(stream->retired_decoder);

  /* A stream's CLOSE listeners remove its links, so none is left here. */
  while (stream->pipes != NULL) {
    cp__pipe_link *link = stream->pipes;

    stream->pipes = link->next;
    free(link);
  }
}
