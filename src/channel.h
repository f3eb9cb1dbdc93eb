/* The IPC channel: Node's json framing over a socket pair descriptor. */
#ifndef CP_CHANNEL_H
#define CP_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "emitter.h"
#include "message-queue.h"

typedef struct cp__channel cp__channel;

/* Messages larger than this are rejected unless set otherwise. */
#define CP__CHANNEL_DEFAULT_MAX_MESSAGE (128u * 1024 * 1024)

/* Node's send() returns false once this many bytes wait in user space. */
#define CP__CHANNEL_BACKLOG_LIMIT (64u * 1024 * 2)

typedef struct cp__channel_events {
  /* A parsed message, in order, with the descriptor that came with it if
   * any. The channel releases what the callee leaves in *message after the
   * call. No message is delivered once cp__channel_disconnect() was called,
   * as in Node, except while the disconnect waits for the ACKs or NACKs
   * of handles sent, because Node's channel keeps working then. NODE_HANDLE envelopes
   * are opened: the callee gets the user's message inside and the
   * descriptor. NODE_HANDLE_ACK and NODE_HANDLE_NACK are acted on, then
   * delivered as internal messages while messages are delivered. */
  void (*message)(cp__channel *channel, cp__message *message, void *data);

  /*
   * error is one of:
   * - CP_ERR_IPC_INVALID_JSON, CP_ERR_IPC_INVALID_UTF8,
   *   CP_ERR_IPC_UNSUPPORTED_VALUE or CP_ERR_IPC_MESSAGE_TOO_LARGE for a
   *   record that is skipped (syscall NULL); the records after it are still
   *   delivered. An oversized record is reported once.
   * - CP_ERR_IPC_INVALID_JSON with syscall "read" for bytes without a
   *   newline at the peer's end of file (a peer that died mid-message).
   * - CP_ERR_IPC_UNEXPECTED_HANDLE with syscall "recvmsg" for descriptors
   *   that no NODE_HANDLE record claims, which are closed.
   * - CP_ERR_INVALID_HANDLE_TYPE (syscall NULL) for a NODE_HANDLE record
   *   with a type Node does not know. Its descriptor is closed after the
   *   ACK, since Node's receiver also throws only after its ACK.
   * - CP_ERR_IPC_UNEXPECTED_ACK (syscall NULL) for an ACK or NACK that
   *   answers no handle sent.
   * - CP_ERR_IPC_HANDLE_NOT_RECEIVED (syscall NULL) when a handed-over
   *   socket got a NACK after its last resend, and was closed.
   * - a failed read other than ECONNRESET (syscall "read").
   * - a send without a callback that failed: CP_ERR_IPC_CHANNEL_CLOSED
   *   (syscall NULL), or the errno of the write (syscall "write"). Queued
   *   records without a callback dropped together get one event.
   * - CP_ERR_IPC_DISCONNECTED from cp__channel_disconnect() (syscall NULL).
   */
  void (*error)(cp__channel *channel, int error, const char *syscall,
                void *data);

  /* Emitted once, when the channel stops being connected for good: after
   * disconnect() has flushed, or on the peer's end of file or a read
   * error. Callbacks of the sends that finished before it run first. */
  void (*disconnect)(cp__channel *channel, void *data);

  /* The descriptor and every handle are closed. The owner may free the
   * channel from here on. Emitted once, after disconnect. */
  void (*close)(cp__channel *channel, void *data);

  /*
   * Runs the callback given to one send, once, from the loop. status is 0
   * once the record's last byte was written to the kernel. It is a negative
   * error (CP_ERR_IPC_CHANNEL_CLOSED, -EPIPE, ...) when the record was not
   * written, also when it was dropped because the channel closed.
   *
   * fn is the type-erased callback of the send, which the owner casts
   * back. Sends without one get no call here, and their failures go to the
   * error event instead. Calls come in the order of the sends, except that
   * a send rejected because the channel was not connected may be called
   * before earlier sends that are still being written, as in Node.
   */
  void (*send_done)(cp__channel *channel, cp__listener_fn fn, void *fn_data,
                    int status, void *data);
} cp__channel_events;

/*
 * Opens a channel on fd, a connected AF_UNIX stream socket, which it takes
 * (closed on every path, failure included), makes non-blocking and
 * close-on-exec, and starts reading. events is copied; any of its members
 * may be NULL. Returns 0, CP_ERR_INVALID_ARG_VALUE for a NULL loop, events
 * or channel_out, -ENOTSOCK, -EPROTOTYPE or -EAFNOSUPPORT for a descriptor
 * that is not an AF_UNIX stream socket, or another negative errno.
 */
int cp__channel_open(uv_loop_t *loop, int fd, const cp__channel_events *events,
                     void *data, cp__channel **channel_out);

/*
 * Node's send(): serializes value at once (the caller keeps it) and queues
 * the record. Queued records are written together in the loop's prepare
 * phase, before the loop next waits for I/O, or at once when 64 KiB wait.
 * Once the socket is full, the rest goes out, in as few sendmsg() calls as
 * the socket allows, when it becomes writable. Returns 1 while fewer than
 * CP__CHANNEL_BACKLOG_LIMIT bytes wait in user space, 0 at or past it.
 *
 * When not connected (after disconnect() or the peer's end of file), or
 * once a write failed (the peer is gone and its end of file is still
 * unread), returns 0 and passes CP_ERR_IPC_CHANNEL_CLOSED, or the failed
 * write's error, to cb through send_done, or to an error event when cb is
 * NULL, from the loop. After the close event it returns
 * CP_ERR_IPC_CHANNEL_CLOSED and calls nothing, since no handle is left to
 * call from.
 *
 * Other negative results mean nothing was queued: CP_ERR_INVALID_ARG_VALUE
 * for a NULL channel or a value cp__json_stringify() rejects,
 * CP_ERR_MISSING_ARGS for a NULL value, -ENOMEM. Neither send_done nor an
 * event runs inside this call.
 */
int cp__channel_send(cp__channel *channel, const cJSON *value,
                     cp__listener_fn cb, void *cb_data);

/*
 * The same with a descriptor (handle may be NULL), as cp_child_send()
 * describes: CP_ERR_INVALID_HANDLE_TYPE, -EBADF and -EMFILE are returned
 * for a handle that cannot go, with nothing taken from the caller.
 */
int cp__channel_send_handle(cp__channel *channel, const cJSON *value,
                            const cp_handle *handle,
                            const cp_send_options *options,
                            cp__listener_fn cb, void *cb_data);

/* The same for JSON text the caller serialized, sent as it is: it must be
 * one JSON value that cp__json_parse() accepts (a string holding U+0000 is
 * allowed too) without a raw newline byte, or CP_ERR_INVALID_ARG_VALUE is
 * returned. A NULL json gives CP_ERR_MISSING_ARGS. */
int cp__channel_send_raw(cp__channel *channel, const char *json, size_t len,
                         cp__listener_fn cb, void *cb_data);

/*
 * Node's disconnect(): no more sends and no more messages. Records already
 * queued are still written. Then disconnect is emitted from the loop, the
 * descriptor is closed, and close follows. Input that arrives meanwhile is
 * read and dropped, so that a peer blocked writing to us can still read.
 * When not connected, emits the error CP_ERR_IPC_DISCONNECTED at once
 * (unless close was emitted already) and returns it.
 *
 * NOTE: a peer that neither reads nor closes keeps the flush, and the
 * channel, waiting for ever; Node drops the queued records instead.
 */
int cp__channel_disconnect(cp__channel *channel);

bool cp__channel_connected(const cp__channel *channel);

/*
 * Reads all the bytes waiting on the descriptor and delivers every complete
 * record before returning, so that messages a child sent before it exited
 * come before its exit event. At the peer's end of file this also emits
 * the error for a cut-off record, the failed sends' callbacks and
 * disconnect, and starts closing. Safe to call from a message listener.
 */
void cp__channel_read_dry(cp__channel *channel);

/*
 * Delivers bytes as if read from the socket: the path every read takes,
 * and the fuzzer's entry point. Messages and errors are emitted before it
 * returns; the bytes of an unfinished record are copied and kept.
 */
void cp__channel_feed(cp__channel *channel, const char *bytes, size_t len);

/* Bytes a record may have, its newline excluded; 0 restores the default. */
void cp__channel_set_max_message_size(cp__channel *channel, size_t bytes);
void cp__channel_ref(cp__channel *channel);
void cp__channel_unref(cp__channel *channel);

/* Bytes queued in user space and not yet taken by the kernel. */
size_t cp__channel_backlog(const cp__channel *channel);

/* The socket, as Node's channel.fd, or -1 once closing started. */
int cp__channel_fileno(const cp__channel *channel);

/* Frees a channel whose close event has been emitted (NULL is ignored);
 * aborts for one that has not, whose handles are still on the loop. */
void cp__channel_free(cp__channel *channel);

#endif
