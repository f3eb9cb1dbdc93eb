/* The library side of cp_stream: creation by the child, teardown. */
#ifndef CP_STREAM_H
#define CP_STREAM_H

#include <stdbool.h>

#include "childproc.h"

enum {
  CP__STREAM_READABLE = 1,
  CP__STREAM_WRITABLE = 2,
  CP__STREAM_SOCKET = 4 /* fd is a socket: writes use send(MSG_NOSIGNAL) */
};

/*
 * Creates the stream for the parent's end of one of child's pipes. Takes
 * fd, which it makes non-blocking and closes on every path, failure
 * included. The stream starts paused with no listener. Returns 0 or a
 * negative errno.
 */
int cp__stream_new(uv_loop_t *loop, int fd, unsigned flags, cp_child *child,
                   cp_stream **stream_out);

/*
 * Node's flushStdio, called after the child's exit event: a readable stream
 * nobody is reading (paused without being paused by the caller, no DATA
 * listener, not piped) is resumed and its data discarded, so it reaches end
 * of file and closes.
 */
void cp__stream_flush(cp_stream *stream);

/*
 * Destroys the stdin of a child that exited, as Node does, except that the
 * writes still queued and every later write fail with EPIPE, the error a
 * write to the dead child's pipe gets, rather than ERR_STREAM_DESTROYED.
 * Queued bytes that were lost are also reported by an ERROR event.
 */
void cp__stream_destroy_for_exit(cp_stream *stream);

/* Whether CLOSE has been emitted and the descriptor's handle is closed. */
bool cp__stream_closed(const cp_stream *stream);

/* Frees a closed stream. Only the child calls this, when it is freed. */
void cp__stream_free(cp_stream *stream);

#endif
