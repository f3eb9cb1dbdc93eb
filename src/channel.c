/*
 * The IPC channel: Node's json serialization over an AF_UNIX stream socket,
 * watched with a uv_poll_t and read and written with recvmsg()/sendmsg().
 * Each message is JSON text followed by one 0x0A byte, in both directions,
 * as Node v20 writes and reads it (lib/internal/child_process/
 * serialization.js).
 *
 * Reading: each recvmsg() fills a 64 KiB read buffer, and complete records
 * are parsed where they lie. Only the unfinished record at the end of a
 * read is copied, into the partial buffer. Bytes already there are never
 * scanned again, so a record split over many reads costs time linear in
 * its size.
 *
 * Writing: records are serialized into one output buffer, so that one
 * sendmsg() carries every record queued. A send does not write: the
 * records wait until the loop's prepare phase, just before the loop next
 * waits for I/O, or until WRITE_BATCH_BYTES of them wait. So a burst of
 * sends from one callback costs one system call instead of one each. Once
 * the socket is full, the rest goes out when it becomes writable. A send
 * with a callback leaves an entry in a ring with the stream offset where
 * its record ends; a send without one leaves nothing.
 *
 * Re-entrancy: listeners may call any function of the channel. The reader
 * keeps its position in the struct and re-reads it after every emit, and
 * every step re-checks the state it depends on. The channel's memory stays
 * valid through every emit: close is only emitted from the handles' close
 * callbacks, which libuv never runs inside another callback, and the owner
 * frees the channel only after close.
 */
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "childproc.h"
#include "handle.h"
#include "io.h"
#include "json.h"

/* Bytes per recvmsg(): libuv offers Node the same 64 KiB per read. */
#define READ_BUFFER_SIZE (64 * 1024)

/* Per poll callback, so that one busy peer cannot starve the loop. */
#define READS_PER_WAKEUP 64
#define READ_BYTES_PER_WAKEUP (4 * 1024 * 1024)

/* Unwritten bytes that make a send write at once instead of in the
 * prepare phase. Below CP__CHANNEL_BACKLOG_LIMIT, so that send() returns 0
 * only for bytes that the socket has refused, as Node's does. */
#define WRITE_BATCH_BYTES (64 * 1024)

/* Control buffer per recvmsg(), the size libuv uses on IPC pipes. */
#define CONTROL_BUFFER_SIZE 256

/* An input or output buffer of more than this is freed once empty instead
 * of kept for reuse, so that one large message does not pin its size. */
#define RETAINED_BUFFER_MAX (1024 * 1024)

/* A send whose callback has not run yet. */
typedef struct send_request {
  uint64_t end; /* queued records: stream offset just past the newline */
  cp__listener_fn cb; /* NULL: a rejected send reported by an event */
  void *cb_data;
  int status; /* rejected sends: what cb or the error event receives */
} send_request;

/* A record in the output buffer that carries a descriptor, from its send
 * until the receiver's ACK or NACK (Node's _pendingMessage). */
typedef struct handle_send {
  uint64_t start; /* stream offset of the record's first byte */
  uint64_t end;   /* just past its newline */
  cp__outgoing out;
  bool fd_sent;
  unsigned retransmissions;
  cp__bytes record; /* a copy for resending, when out.retransmit */
} handle_send;

/* Node's MAX_HANDLE_RETRANSMISSIONS: resends after a NACK. */
#define MAX_RETRANSMISSIONS 3

/* A FIFO of send requests. capacity is 0 or a power of two. */
typedef struct request_ring {
  send_request *items;
  size_t capacity;
  size_t head;
  size_t count;
} request_ring;

struct cp__channel {
  uv_poll_t poll; /* the socket */
  uv_idle_t idle; /* runs deferred work from the loop */
  /* Writes queued records before the loop waits for I/O. Referenced
   * whatever the channel's ref state, and active only while records wait
   * for their first write, so an unref'd channel still writes them. */
  uv_prepare_t prepare;
  int fd; /* -1 once closing started */
  cp__channel_events events;
  void *data;
  int poll_events; /* the mask the poll handle watches now */

  bool connected;            /* sends are accepted, messages delivered */
  bool unreferenced;         /* cp__channel_unref() was called last */
  bool disconnect_requested; /* cp__channel_disconnect() was called */
  bool disconnect_emitted;
  bool closing; /* the handles are closing or closed */
  bool closed;  /* close emitted */
  unsigned handles_open;

  /* Reading. chunk is the input being delivered: the read buffer, or the
   * bytes given to cp__channel_feed(). */
  char *read_buffer; /* READ_BUFFER_SIZE bytes, allocated on first read */
  const char *chunk;
  size_t chunk_len;
  size_t chunk_pos;   /* bytes of chunk consumed */
  cp__bytes partial;  /* the record begun in an earlier chunk */
  bool skipping;      /* dropping an oversized record up to its newline */
  size_t max_message; /* record bytes allowed, newline excluded */

  /* Writing. out.data[out_start, out.len) is the backlog: bytes queued and
   * not yet accepted by the kernel. Offsets count bytes since open. */
  cp__bytes out;
  size_t out_start;
  uint64_t written_total;
  uint64_t end_without_callback; /* newest record sent without a callback */
  int write_error;              /* the failure that dropped the backlog */
  bool write_blocked; /* the socket took less than offered: wait until it
                         is writable */
  bool write_error_event_due;   /* a dropped record had no callback */
  request_ring pending;         /* queued sends with a callback, in order */
  request_ring rejected;        /* sends refused since not connected */

  /* Handle passing. As in Node's sender, nothing after a record with a
   * descriptor is written until the receiver replies with an ACK or NACK.
   * The bytes wait in the output buffer behind gate, the end of the
   * oldest such record. */
  handle_send *handles; /* in stream order; the first awaits the reply */
  size_t handle_count;
  size_t handle_capacity;
  uint64_t gate; /* writes stop here while handle_count > 0 */
  int received_fd; /* arrived, not yet claimed by a NODE_HANDLE record */
};

static void on_poll(uv_poll_t *handle, int status, int events);
static void on_idle(uv_idle_t *handle);
static void on_prepare(uv_prepare_t *handle);
static bool flush_output(cp__channel *channel);

/* ------------------------------------------------------------------------
 * Request rings
 * ------------------------------------------------------------------------ */

/* Makes room for one more request, so that a send can fail before it
 * queues anything. Returns 0 or -ENOMEM. */
static int ring_reserve(request_ring *ring) {
  size_t capacity;
  send_request *items;

  if (ring->count < ring->capacity)
    return 0;

  capacity = ring->capacity > 0 ? ring->capacity * 2 : 16;
  if (capacity > SIZE_MAX / sizeof(*items))
    return -ENOMEM;
  items = malloc(capacity * sizeof(*items));
  if (items == NULL)
    return -ENOMEM;

  for (size_t i = 0; i < ring->count; i++)
    items[i] = ring->items[(ring->head + i) & (ring->capacity - 1)];
  free(ring->items);
  ring->items = items;
  ring->capacity = capacity;
  ring->head = 0;
  return 0;
}

/* Appends a request to a ring that ring_reserve() made room in. */
static void ring_push(request_ring *ring, send_request request) {
  ring->items[(ring->head + ring->count) & (ring->capacity - 1)] = request;
  ring->count++;
}

static send_request ring_shift(request_ring *ring) {
  send_request request = ring->items[ring->head];

  ring->head = (ring->head + 1) & (ring->capacity - 1);
  ring->count--;
  return request;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

static void emit_error(cp__channel *channel, int error, const char *syscall) {
  if (channel->events.error != NULL)
    channel->events.error(channel, error, syscall, channel->data);
}

/* Hands a finished send's callback to the owner, which calls it. */
static void complete_send(cp__channel *channel, const send_request *request,
                          int status) {
  if (channel->events.send_done != NULL)
    channel->events.send_done(channel, request->cb, request->cb_data, status,
                              channel->data);
}

/* Node's ERR_IPC_CHANNEL_CLOSED carries no syscall, but a failed write
 * does. */
static const char *send_error_syscall(int error) {
  return error == CP_ERR_IPC_CHANNEL_CLOSED ? NULL : "write";
}

/* ------------------------------------------------------------------------
 * Polling and deferred work
 * ------------------------------------------------------------------------ */

size_t cp__channel_backlog(const cp__channel *channel) {
  return channel->out.len - channel->out_start;
}

/* The part of the backlog before the gate. */
static size_t writable_backlog(const cp__channel *channel) {
  size_t backlog = cp__channel_backlog(channel);
  uint64_t before_gate;

  if (channel->handle_count == 0)
    return backlog;
  before_gate = channel->gate - channel->written_total;
  return before_gate < backlog ? (size_t)before_gate : backlog;
}

/* An unreferenced channel still keeps the loop alive while bytes it may
 * write wait, as Node refs its channel for each write in progress, so a
 * process does not exit with a message half written. */
static void update_ref(cp__channel *channel) {
  if (!channel->unreferenced || writable_backlog(channel) > 0)
    uv_ref((uv_handle_t *)&channel->poll);
  else
    uv_unref((uv_handle_t *)&channel->poll);
}

/* Reads always, until closing: also while a disconnect flushes, so that a
 * peer blocked writing to us can go on and read what we flush. Watches for
 * writability only while bytes wait. */
static void update_poll(cp__channel *channel) {
  int events = UV_READABLE;

  if (channel->closing)
    return;
  update_ref(channel);
  if (writable_backlog(channel) > 0 && channel->write_error == 0 &&
      channel->write_blocked)
    events |= UV_WRITABLE;
  if (events == channel->poll_events)
    return;

  channel->poll_events = events;
  uv_poll_start(&channel->poll, events, on_poll);
}

/* Stores the status of the oldest queued send with a callback, and returns
 * whether that send is finished: its record was written or dropped. */
static bool oldest_send_finished(const cp__channel *channel, int *status) {
  const send_request *request;

  if (channel->pending.count == 0)
    return false;

  request = &channel->pending.items[channel->pending.head];
  if (request->end <= channel->written_total) {
    *status = 0;
    return true;
  }
  if (channel->write_error != 0) {
    *status = channel->write_error;
    return true;
  }
  return false;
}

/* A requested disconnect ends the channel once everything queued before it
 * has been written or has failed. */
static bool disconnect_can_finish(const cp__channel *channel) {
  return channel->disconnect_requested && !channel->closing &&
         cp__channel_backlog(channel) == 0 && channel->handle_count == 0;
}

/*
 * Work for the idle handle: callbacks and events due, a disconnect to
 * finish, or records waiting for the prepare phase. A prepare handle
 * started during that phase (by a callback that on_prepare() runs) runs
 * only after the next poll. An active idle handle makes that poll return
 * at once, instead of blocking with the records unwritten.
 */
static bool has_work_due(const cp__channel *channel) {
  int status;

  return oldest_send_finished(channel, &status) ||
         channel->rejected.count > 0 || channel->write_error_event_due ||
         disconnect_can_finish(channel) ||
         uv_is_active((const uv_handle_t *)&channel->prepare);
}

/* Runs the deferred work from the loop soon. A closing channel runs what is
 * left from its close callback instead. */
static void schedule(cp__channel *channel) {
  if (!channel->closing)
    uv_idle_start(&channel->idle, on_idle);
}

/*
 * Runs the callbacks of finished sends, oldest first: queued sends whose
 * records were written or dropped, then rejected sends (a rejected send
 * without a callback is reported by an error event). The number is bounded
 * at entry, so that a callback that sends again, and fails at once, waits
 * for the next round instead of looping here.
 */
static void run_send_callbacks(cp__channel *channel) {
  size_t budget = channel->pending.count + channel->rejected.count;
  int status;

  while (budget > 0 && oldest_send_finished(channel, &status)) {
    send_request request = ring_shift(&channel->pending);

    budget--;
    complete_send(channel, &request, status);
  }

  while (budget > 0 && channel->rejected.count > 0) {
    send_request request = ring_shift(&channel->rejected);

    budget--;
    if (request.cb != NULL)
      complete_send(channel, &request, request.status);
    else
      emit_error(channel, request.status, send_error_syscall(request.status));
  }
}

/* One error event for every dropped record that had no callback. */
static void emit_write_error_event(cp__channel *channel) {
  if (!channel->write_error_event_due)
    return;

  channel->write_error_event_due = false;
  emit_error(channel, channel->write_error,
             send_error_syscall(channel->write_error));
}

/* ------------------------------------------------------------------------
 * Closing
 * ------------------------------------------------------------------------ */

static void release_partial(cp__channel *channel) {
  channel->partial.len = 0;
  if (channel->partial.capacity > RETAINED_BUFFER_MAX)
    cp__bytes_free(&channel->partial);
}

/* Drops unread input: the record begun and the rest of the chunk. */
static void discard_input(cp__channel *channel) {
  release_partial(channel);
  channel->skipping = false;
  channel->chunk_pos = channel->chunk_len;
}

/* Closes the descriptors of every handle send and forgets them. */
static void drop_handle_sends(cp__channel *channel) {
  for (size_t i = 0; i < channel->handle_count; i++) {
    cp__outgoing_close(&channel->handles[i].out);
    cp__bytes_free(&channel->handles[i].record);
  }
  channel->handle_count = 0;
}

static void reset_output(cp__channel *channel) {
  channel->out.len = 0;
  channel->out_start = 0;
  if (channel->out.capacity > RETAINED_BUFFER_MAX)
    cp__bytes_free(&channel->out);
}

/* Drops the backlog: queued sends whose records were not fully written get
 * error in their callbacks, and one error event reports the records that
 * had none. */
static void fail_writes(cp__channel *channel, int error) {
  if (channel->write_error == 0)
    channel->write_error = error;
  if (channel->end_without_callback > channel->written_total)
    channel->write_error_event_due = true;
  reset_output(channel);
  drop_handle_sends(channel);
}

/* The last close callback: callbacks still due run first, then close. */
static void on_handle_closed(uv_handle_t *handle) {
  cp__channel *channel = handle->data;

  if (--channel->handles_open > 0)
    return;

  /* A callback may send again and so add another failed callback. */
  while (has_work_due(channel)) {
    run_send_callbacks(channel);
    emit_write_error_event(channel);
  }

  channel->closed = true;
  if (channel->events.close != NULL)
    channel->events.close(channel, channel->data);
}

static void begin_close(cp__channel *channel) {
  if (channel->closing)
    return;

  channel->closing = true;
  channel->connected = false;
  channel->poll_events = 0;
  if (cp__channel_backlog(channel) > 0)
    fail_writes(channel, CP_ERR_IPC_CHANNEL_CLOSED);
  drop_handle_sends(channel);
  channel->received_fd = cp__close(channel->received_fd);
  discard_input(channel);

  channel->handles_open = 3;
  uv_close((uv_handle_t *)&channel->poll, on_handle_closed);
  uv_close((uv_handle_t *)&channel->idle, on_handle_closed);
  uv_close((uv_handle_t *)&channel->prepare, on_handle_closed);

  /* uv_close() has removed the descriptor from epoll, so closing it here
   * cannot disturb a descriptor that reuses the number later. */
  channel->fd = cp__close(channel->fd);
}

/* Emits disconnect, once, and starts closing. */
static void end_channel(cp__channel *channel) {
  channel->connected = false;
  if (!channel->disconnect_emitted) {
    channel->disconnect_emitted = true;
    if (channel->events.disconnect != NULL)
      channel->events.disconnect(channel, channel->data);
  }
  begin_close(channel);
}

/* The deferred half of the channel's work, run from the loop: callbacks of
 * finished sends, the write error event, and the end of a requested
 * disconnect. */
static void run_deferred(cp__channel *channel) {
  if (channel->closing)
    return;

  run_send_callbacks(channel);
  if (channel->closing)
    return;

  emit_write_error_event(channel);
  if (channel->closing)
    return;

  /* Sends made by the callbacks above were rejected, since a disconnect
   * has begun; their callbacks run from the close callback. */
  if (disconnect_can_finish(channel))
    end_channel(channel);
  if (channel->closing)
    return;

  update_poll(channel);
  if (has_work_due(channel))
    schedule(channel);
  else
    uv_idle_stop(&channel->idle);
}

static void on_idle(uv_idle_t *handle) { run_deferred(handle->data); }

static void on_prepare(uv_prepare_t *handle) {
  cp__channel *channel = handle->data;

  uv_prepare_stop(handle);
  if (!channel->write_blocked)
    flush_output(channel);
  run_deferred(channel);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/*
 * MSG_NOSIGNAL: a peer that went away gives EPIPE and never SIGPIPE, which
 * the host program may not ignore. pass_fd >= 0 goes with the first byte
 * as one SCM_RIGHTS descriptor, as libuv's uv_write2() sends it: a partial
 * write still delivers it, with the bytes that were written.
 */
static ssize_t send_bytes(int fd, const char *bytes, size_t len, int pass_fd) {
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n;

  if (pass_fd >= 0) {
    struct cmsghdr *cmsg;

    memset(&control, 0, sizeof(control));
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &pass_fd, sizeof(int));
  }

  do
    n = sendmsg(fd, &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/* Returns the oldest handle send if its descriptor has not gone yet. The
 * caller checks whether the next write reaches its record. The peer
 * replies to one handle at a time, so only the first can be due. */
static handle_send *descriptor_due(const cp__channel *channel) {
  if (channel->handle_count == 0 || channel->handles[0].fd_sent)
    return NULL;
  return &channel->handles[0];
}

/* Writes the part of the backlog before the gate until the socket is full
 * or that part is empty, in as few sendmsg() calls as the socket allows. A
 * write stops only where a record with a descriptor begins, so that the
 * descriptor rides on its first byte. Returns whether a write returned
 * something other than EAGAIN. */
static bool flush_output(cp__channel *channel) {
  bool progressed = false;

  while (writable_backlog(channel) > 0 && channel->write_error == 0) {
    size_t len = writable_backlog(channel);
    handle_send *due = descriptor_due(channel);
    int pass_fd = -1;
    ssize_t n;

    if (due != NULL && due->start > channel->written_total)
      len = (size_t)(due->start - channel->written_total);
    else if (due != NULL)
      pass_fd = due->out.fd;

    n = send_bytes(channel->fd, channel->out.data + channel->out_start, len,
                   pass_fd);
    if (n == -EAGAIN) {
      channel->write_blocked = true;
      break;
    }
    progressed = true;

    if (n < 0) {
      fail_writes(channel, (int)n);
      break;
    }
    channel->out_start += (size_t)n;
    channel->written_total += (uint64_t)n;
    if (pass_fd >= 0) {
      due->fd_sent = true;
      cp__outgoing_written(&due->out);
    }

    /* A short write means the socket is full: another try would only
     * return EAGAIN. */
    if ((size_t)n < len) {
      channel->write_blocked = true;
      break;
    }
    channel->write_blocked = false;
  }

  if (channel->out_start > 0 && cp__channel_backlog(channel) == 0)
    reset_output(channel);
  return progressed;
}

/* Moves the backlog to the front of the output buffer once the written
 * bytes before it are at least as many as the backlog's. So the buffer
 * does not grow while mostly written, and each byte moves about once. */
static void compact_output(cp__channel *channel) {
  size_t backlog = cp__channel_backlog(channel);

  if (channel->out_start == 0 || channel->out_start < backlog)
    return;

  memmove(channel->out.data, channel->out.data + channel->out_start, backlog);
  channel->out.len = backlog;
  channel->out_start = 0;
}

/* A requested disconnect waits until every handle sent has been answered,
 * and reads on until then. */
static bool awaits_answer(const cp__channel *channel) {
  return channel->disconnect_requested && channel->handle_count > 0 &&
         !channel->closing;
}

/* Messages are delivered, and handles answered, while connected, and also
 * while a requested disconnect waits for the peer's answers: Node
 * postpones its disconnect then, and keeps its channel working. */
static bool takes_input(const cp__channel *channel) {
  return channel->connected || awaits_answer(channel);
}

/* Sends are accepted while connected and until a write fails. A failed
 * write means that the peer is gone and that end of file follows. */
static bool accepts_sends(const cp__channel *channel) {
  return channel->connected && channel->write_error == 0;
}

/* Node's send() when not connected: the error goes to cb, or to an error
 * event when cb is NULL, from the loop. Returns 0 (Node's false). */
static int reject_send(cp__channel *channel, cp__listener_fn cb,
                       void *cb_data) {
  int status = CP_ERR_IPC_CHANNEL_CLOSED;
  int r;

  if (channel->closed)
    return CP_ERR_IPC_CHANNEL_CLOSED;
  if (channel->connected)
    status = channel->write_error;

  r = ring_reserve(&channel->rejected);
  if (r < 0)
    return r;
  ring_push(&channel->rejected,
            (send_request){.cb = cb, .cb_data = cb_data, .status = status});
  schedule(channel);
  return 0;
}

/* Makes room for the request of a send before anything is appended, and
 * reclaims written space. Returns 0 or -ENOMEM. */
static int prepare_send(cp__channel *channel, cp__listener_fn cb) {
  if (cb != NULL) {
    int r = ring_reserve(&channel->pending);

    if (r < 0)
      return r;
  }
  compact_output(channel);
  return 0;
}

/* Writes the backlog now when it has grown to a batch, or has it written
 * in the prepare phase. While the socket is full, writability does it. */
static void schedule_write(cp__channel *channel) {
  if (channel->write_blocked)
    return;
  if (writable_backlog(channel) >= WRITE_BATCH_BYTES)
    flush_output(channel);
  else
    uv_prepare_start(&channel->prepare, on_prepare);
}

/*
 * Queues the record just appended to the output buffer (newline included)
 * for writing, and returns Node's send() result: whether the backlog is
 * below CP__CHANNEL_BACKLOG_LIMIT. Records held behind the gate count
 * toward it.
 */
static int queue_record(cp__channel *channel, cp__listener_fn cb,
                        void *cb_data) {
  uint64_t end = channel->written_total + cp__channel_backlog(channel);

  if (cb != NULL)
    ring_push(&channel->pending,
              (send_request){.end = end, .cb = cb, .cb_data = cb_data});
  else
    channel->end_without_callback = end;

  schedule_write(channel);
  update_poll(channel);
  if (has_work_due(channel))
    schedule(channel);
  return cp__channel_backlog(channel) < CP__CHANNEL_BACKLOG_LIMIT;
}

/* Appends one record: value, inside a NODE_HANDLE envelope when out is not
 * NULL, then the newline. On failure bytes is as it was. */
static int write_record(cp__bytes *bytes, const cJSON *value,
                        const cp__outgoing *out) {
  size_t len_before = bytes->len;
  int r = 0;

  if (out != NULL)
    r = cp__envelope_begin(bytes, out);
  if (r == 0)
    r = cp__json_stringify(value, bytes);
  if (r == 0 && out != NULL)
    r = cp__envelope_end(bytes, out);
  if (r == 0)
    r = cp__bytes_append(bytes, "\n", 1);
  if (r < 0)
    bytes->len = len_before;
  return r;
}

static int reserve_handle_send(cp__channel *channel) {
  size_t capacity = channel->handle_capacity > 0
                        ? channel->handle_capacity * 2
                        : 4;
  handle_send *handles;

  if (channel->handle_count < channel->handle_capacity)
    return 0;
  handles = realloc(channel->handles, capacity * sizeof(*handles));
  if (handles == NULL)
    return -ENOMEM;
  channel->handles = handles;
  channel->handle_capacity = capacity;
  return 0;
}

/* Records the handle send whose record was just appended from len_before
 * on; a handle that may be resent keeps a copy of its record. Returns 0 or
 * -ENOMEM with nothing recorded. */
static int add_handle_send(cp__channel *channel, const cp__outgoing *out,
                           size_t len_before) {
  handle_send *send = &channel->handles[channel->handle_count];
  uint64_t unwritten_before = len_before - channel->out_start;

  *send = (handle_send){
      .start = channel->written_total + unwritten_before,
      .end = channel->written_total + cp__channel_backlog(channel),
      .out = *out,
  };
  if (out->retransmit &&
      cp__bytes_append(&send->record, channel->out.data + len_before,
                       channel->out.len - len_before) < 0)
    return -ENOMEM;

  if (channel->handle_count == 0)
    channel->gate = send->end;
  channel->handle_count++;
  cp__outgoing_commit(&send->out);
  return 0;
}

/* Whether out hands over a uv socket that an earlier send still holds:
 * the library would close it twice, the second time perhaps a new handle
 * in the same memory. */
static bool handed_over_already(const cp__channel *channel,
                                const cp__outgoing *out) {
  if (out->give_up == NULL)
    return false;
  for (size_t i = 0; i < channel->handle_count; i++) {
    if (channel->handles[i].out.give_up == out->give_up)
      return true;
  }
  return false;
}

/* A send refused because the channel is not connected: a handle handed
 * over is closed, since its send is over. */
static int reject_handle_send(cp__channel *channel, cp__outgoing *out,
                              cp__listener_fn cb, void *cb_data) {
  int r = reject_send(channel, cb, cb_data);

  if (out == NULL)
    return r;
  if (r < 0) {
    cp__outgoing_abandon(out);
    return r;
  }
  cp__outgoing_commit(out);
  cp__outgoing_close(out);
  return r;
}

int cp__channel_send_handle(cp__channel *channel, const cJSON *value,
                            const cp_handle *handle,
                            const cp_send_options *options,
                            cp__listener_fn cb, void *cb_data) {
  cp__outgoing storage;
  cp__outgoing *out = NULL;
  size_t len_before;
  int r;

  if (channel == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (value == NULL)
    return CP_ERR_MISSING_ARGS;
  if (handle != NULL) {
    r = cp__outgoing_init(&storage, handle, options, channel->poll.loop);
    if (r == 0 && handed_over_already(channel, &storage))
      r = CP_ERR_INVALID_ARG_VALUE;
    if (r < 0) {
      cp__outgoing_abandon(&storage);
      return r;
    }
    out = &storage;
  }
  if (!accepts_sends(channel))
    return reject_handle_send(channel, out, cb, cb_data);

  r = prepare_send(channel, cb);
  if (r == 0 && out != NULL)
    r = reserve_handle_send(channel);

  len_before = channel->out.len;
  if (r == 0)
    r = write_record(&channel->out, value, out);
  if (r == 0 && out != NULL) {
    r = add_handle_send(channel, out, len_before);
    if (r < 0)
      channel->out.len = len_before;
  }
  if (r < 0) {
    if (out != NULL)
      cp__outgoing_abandon(out);
    return r;
  }
  return queue_record(channel, cb, cb_data);
}

int cp__channel_send(cp__channel *channel, const cJSON *value,
                     cp__listener_fn cb, void *cb_data) {
  return cp__channel_send_handle(channel, value, NULL, NULL, cb, cb_data);
}

/* Text for cp__channel_send_raw() must be one JSON value on one line. A
 * string holding U+0000 is valid JSON that only cJSON cannot hold. */
static int check_raw_json(const char *json, size_t len) {
  int r;

  if (memchr(json, '\n', len) != NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__json_validate(json, len);
  if (r == -ENOMEM)
    return r;
  return r < 0 ? CP_ERR_INVALID_ARG_VALUE : 0;
}

int cp__channel_send_raw(cp__channel *channel, const char *json, size_t len,
                         cp__listener_fn cb, void *cb_data) {
  size_t len_before;
  int r;

  if (channel == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (json == NULL)
    return CP_ERR_MISSING_ARGS;
  if (!accepts_sends(channel))
    return reject_send(channel, cb, cb_data);

  r = check_raw_json(json, len);
  if (r == 0)
    r = prepare_send(channel, cb);
  if (r < 0)
    return r;

  len_before = channel->out.len;
  r = cp__bytes_append(&channel->out, json, len);
  if (r == 0)
    r = cp__bytes_append(&channel->out, "\n", 1);
  if (r < 0) {
    channel->out.len = len_before;
    return r;
  }
  return queue_record(channel, cb, cb_data);
}

/* ------------------------------------------------------------------------
 * Handle passing: answers, resends, and records ahead of the gate
 * ------------------------------------------------------------------------ */

/* Moves every stream offset at or past from by len bytes. */
static void shift_offsets(cp__channel *channel, uint64_t from, size_t len) {
  request_ring *ring = &channel->pending;

  for (size_t i = 0; i < ring->count; i++) {
    send_request *request = &ring->items[(ring->head + i) &
                                         (ring->capacity - 1)];

    if (request->end > from)
      request->end += len;
  }
  if (channel->end_without_callback > from)
    channel->end_without_callback += len;

  for (size_t i = 0; i < channel->handle_count; i++) {
    if (channel->handles[i].start >= from) {
      channel->handles[i].start += len;
      channel->handles[i].end += len;
    }
  }
}

/* Puts a record at the gate, ahead of the sends waiting behind it, and
 * moves the gate past it. Node also writes its ACKs, NACKs and resends
 * while other sends wait. */
static int insert_at_gate(cp__channel *channel, const char *record,
                          size_t len) {
  size_t at;
  int r = cp__bytes_reserve(&channel->out, len);

  if (r < 0)
    return r;
  at = channel->out_start + (size_t)(channel->gate - channel->written_total);
  memmove(channel->out.data + at + len, channel->out.data + at,
          channel->out.len - at);
  memcpy(channel->out.data + at, record, len);
  channel->out.len += len;

  shift_offsets(channel, channel->gate, len);
  channel->gate += len;
  return 0;
}

/* Writes what became writable, and runs what became due. */
static void output_changed(cp__channel *channel) {
  flush_output(channel);
  update_poll(channel);
  if (has_work_due(channel))
    schedule(channel);
}

/* Sends NODE_HANDLE_ACK or NODE_HANDLE_NACK, which no held send delays. A
 * failure is reported, and the peer's sender then waits, as a Node peer
 * would for a lost answer. */
static void send_answer(cp__channel *channel, bool ack) {
  static const char ack_record[] = "{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
  static const char nack_record[] = "{\"cmd\":\"NODE_HANDLE_NACK\"}\n";
  const char *record = ack ? ack_record : nack_record;
  size_t len = ack ? sizeof(ack_record) - 1 : sizeof(nack_record) - 1;
  int r;

  if (!takes_input(channel) || channel->write_error != 0)
    return;

  compact_output(channel);
  if (channel->handle_count > 0)
    r = insert_at_gate(channel, record, len);
  else
    r = cp__bytes_append(&channel->out, record, len);
  if (r < 0) {
    emit_error(channel, r, "write");
    return;
  }
  output_changed(channel);
}

/* The oldest handle send is answered: its descriptor is closed, and the
 * gate moves to the next one, or opens. */
static void finish_handle_send(cp__channel *channel) {
  handle_send *first = &channel->handles[0];

  cp__outgoing_close(&first->out);
  cp__bytes_free(&first->record);
  channel->handle_count--;
  memmove(channel->handles, channel->handles + 1,
          channel->handle_count * sizeof(*channel->handles));
  if (channel->handle_count > 0)
    channel->gate = channel->handles[0].end;
}

/* Writes the oldest handle send's record again, with its descriptor, ahead
 * of the held sends. Node wraps a resent record in a second envelope; this
 * sends the same bytes again. */
static int resend_handle(cp__channel *channel) {
  handle_send *first = &channel->handles[0];
  uint64_t start = channel->gate;
  int r;

  compact_output(channel);
  r = insert_at_gate(channel, first->record.data, first->record.len);
  if (r < 0)
    return r;

  first->start = start;
  first->end = start + first->record.len;
  first->fd_sent = false;
  first->retransmissions++;
  return 0;
}

/* NODE_HANDLE_ACK (ack true) or NODE_HANDLE_NACK from the peer. */
static void on_handle_answer(cp__channel *channel, bool ack) {
  int error = 0;

  if (channel->handle_count == 0 || !channel->handles[0].fd_sent) {
    emit_error(channel, CP_ERR_IPC_UNEXPECTED_ACK, NULL);
    return;
  }

  if (!ack && channel->handles[0].out.retransmit) {
    if (channel->handles[0].retransmissions >= MAX_RETRANSMISSIONS)
      error = CP_ERR_IPC_HANDLE_NOT_RECEIVED;
    else
      error = resend_handle(channel);
    if (error == 0) {
      output_changed(channel);
      return;
    }
  }

  finish_handle_send(channel);
  output_changed(channel);
  if (error < 0 && !channel->closing)
    emit_error(channel, error, NULL);
}

/* ------------------------------------------------------------------------
 * Reading: records
 * ------------------------------------------------------------------------ */

static const char *command_of(const cJSON *value) {
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(value, "cmd");

  return cJSON_IsString(cmd) ? cmd->valuestring : NULL;
}

/* Whether value is Node's {"cmd":"NODE_HANDLE", ...} envelope. */
static bool is_envelope(const cJSON *value) {
  const char *cmd = command_of(value);

  return cmd != NULL && strcmp(cmd, "NODE_HANDLE") == 0;
}

/*
 * Replaces the envelope in message with the user's message inside it and
 * the descriptor fd, which it takes. A Node sender that resends wraps the
 * envelope in a second one; the innermost is the real one. Returns 0, or
 * CP_ERR_INVALID_HANDLE_TYPE (a type Node does not know) or -ENOMEM, with
 * fd closed.
 */
static int open_envelope(cp__message *message, int fd) {
  cJSON *envelope = message->value;
  cJSON *inner = cJSON_GetObjectItemCaseSensitive(envelope, "msg");
  const cJSON *type;
  cp_handle_type handle_type;

  while (inner != NULL && is_envelope(inner)) {
    envelope = inner;
    inner = cJSON_GetObjectItemCaseSensitive(envelope, "msg");
  }

  type = cJSON_GetObjectItemCaseSensitive(envelope, "type");
  handle_type = cJSON_IsString(type)
                    ? cp_handle_type_from_name(type->valuestring)
                    : CP_HANDLE_NONE;
  if (handle_type == CP_HANDLE_NONE) {
    cp__close(fd);
    return CP_ERR_INVALID_HANDLE_TYPE;
  }

  inner = inner != NULL ? cJSON_DetachItemViaPointer(envelope, inner)
                        : cJSON_CreateNull();
  if (inner == NULL) {
    cp__close(fd);
    return -ENOMEM;
  }
  cJSON_Delete(message->value);
  message->value = inner;
  message->internal = cp__json_is_internal(inner);
  message->handle = (cp_handle){.type = handle_type, .fd = fd};
  return 0;
}

/*
 * A NODE_HANDLE record, as Node's receiver takes one: it claims the
 * descriptor that came with it or before it, and answers ACK, or NACK when
 * none came. Returns whether the message, now the user's message with its
 * descriptor, is to be delivered.
 */
static bool receive_envelope(cp__channel *channel, cp__message *message) {
  int fd = channel->received_fd;
  int r;

  channel->received_fd = -1;
  if (fd < 0) {
    send_answer(channel, false);
    return false;
  }

  send_answer(channel, true);
  /* An error listener of a failed answer may have disconnected. */
  if (!takes_input(channel)) {
    cp__close(fd);
    return false;
  }
  r = open_envelope(message, fd);
  if (r < 0) {
    emit_error(channel, r, NULL);
    return false;
  }
  return true;
}

/* Handles the internal messages that belong to the channel. Returns
 * whether the message is still to be delivered. */
static bool receive_internal(cp__channel *channel, cp__message *message) {
  const char *cmd = command_of(message->value);
  bool deliver = takes_input(channel);

  if (cmd == NULL)
    return deliver;
  if (strcmp(cmd, "NODE_HANDLE_ACK") == 0) {
    on_handle_answer(channel, true);
    return deliver;
  }
  if (strcmp(cmd, "NODE_HANDLE_NACK") == 0) {
    on_handle_answer(channel, false);
    return deliver;
  }
  if (strcmp(cmd, "NODE_HANDLE") == 0 && deliver)
    return receive_envelope(channel, message);
  return deliver;
}

/* Parses one record and emits it as a message, or emits the reason it is
 * not one. text may point into the partial buffer, which is released once
 * the record is parsed. Once input is no longer taken (see takes_input()),
 * answers are still acted on, and nothing is delivered. */
static void deliver_record(cp__channel *channel, const char *text,
                           size_t len) {
  cp__message message = {.handle = {.fd = -1}};
  int r = cp__json_parse(text, len, &message.value);
  bool deliver;

  release_partial(channel);
  if (r < 0) {
    if (takes_input(channel))
      emit_error(channel, r, NULL);
    return;
  }

  /* Only internal messages can be envelopes, and most messages are not. */
  message.internal = cp__json_is_internal(message.value);
  deliver = message.internal ? receive_internal(channel, &message)
                             : takes_input(channel);
  if (deliver && channel->events.message != NULL && !channel->closing)
    channel->events.message(channel, &message, channel->data);
  cp__message_release(&message);
}

/* Keeps the start of a record that a later chunk completes. Memory
 * exhaustion drops the record and skips the rest of it. */
static int append_partial(cp__channel *channel, const char *bytes,
                          size_t len) {
  int r = cp__bytes_reserve(&channel->partial, len);

  if (r < 0) {
    release_partial(channel);
    channel->skipping = true;
    emit_error(channel, r, "read");
    return r;
  }
  memcpy(channel->partial.data + channel->partial.len, bytes, len);
  channel->partial.len += len;
  return 0;
}

static bool record_too_large(const cp__channel *channel, size_t piece) {
  return channel->partial.len > channel->max_message ||
         piece > channel->max_message - channel->partial.len;
}

/*
 * Consumes the chunk up to and including its next newline, or to its end,
 * and delivers or reports the record that this completes. An oversized
 * record is reported when it crosses the maximum, once, and the rest of it
 * is skipped without being buffered.
 */
static void consume_piece(cp__channel *channel) {
  const char *start = channel->chunk + channel->chunk_pos;
  size_t available = channel->chunk_len - channel->chunk_pos;
  const char *newline = memchr(start, '\n', available);
  size_t piece = newline != NULL ? (size_t)(newline - start) : available;

  channel->chunk_pos += newline != NULL ? piece + 1 : piece;

  if (channel->skipping) {
    channel->skipping = newline == NULL;
    return;
  }

  if (record_too_large(channel, piece)) {
    release_partial(channel);
    channel->skipping = newline == NULL;
    emit_error(channel, CP_ERR_IPC_MESSAGE_TOO_LARGE, NULL);
    return;
  }

  if (newline == NULL) {
    append_partial(channel, start, piece);
    return;
  }
  if (channel->partial.len == 0) {
    deliver_record(channel, start, piece);
    return;
  }
  if (append_partial(channel, start, piece) == 0)
    deliver_record(channel, channel->partial.data, channel->partial.len);
}

/* Delivers what is left of the current chunk. Once the channel is not
 * connected, the rest is dropped, as Node drops messages parsed after
 * disconnect(), unless a disconnect waits for an answer. */
static void drain_chunk(cp__channel *channel) {
  while (channel->chunk_pos < channel->chunk_len) {
    if (!takes_input(channel)) {
      channel->chunk_pos = channel->chunk_len;
      break;
    }
    consume_piece(channel);
  }
}

void cp__channel_feed(cp__channel *channel, const char *bytes, size_t len) {
  /* Reached again from a listener (through cp__channel_read_dry()) while an
   * earlier chunk is half delivered: its rest goes first, to keep order. */
  drain_chunk(channel);

  channel->chunk = bytes;
  channel->chunk_len = len;
  channel->chunk_pos = 0;
  drain_chunk(channel);

  channel->chunk = NULL;
  channel->chunk_len = 0;
  channel->chunk_pos = 0;
}

/* ------------------------------------------------------------------------
 * Reading: the socket
 * ------------------------------------------------------------------------ */

/*
 * Keeps the first descriptor of a read for the next NODE_HANDLE record, as
 * Node's receiver does, and closes any other. Returns whether a descriptor
 * was unexpected: a second one in the read, one while an earlier one is
 * still unclaimed (which is closed), or control data cut short
 * (MSG_CTRUNC: the kernel closed what did not fit).
 */
static bool take_descriptors(cp__channel *channel, struct msghdr *message) {
  bool unexpected = (message->msg_flags & MSG_CTRUNC) != 0;
  bool kept = false;

  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(message); cmsg != NULL;
       cmsg = CMSG_NXTHDR(message, cmsg)) {
    size_t count;

    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
        cmsg->cmsg_len < CMSG_LEN(0))
      continue;

    count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;

      memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(fd));
      if (kept) {
        cp__close(fd);
        unexpected = true;
        continue;
      }
      if (channel->received_fd >= 0)
        unexpected = true;
      cp__close(channel->received_fd);
      channel->received_fd = fd;
      kept = true;
    }
  }
  return unexpected;
}

/*
 * After a read is delivered: a descriptor still unclaimed with no record
 * in progress came without a NODE_HANDLE record (its record would have
 * begun in the read that brought it), so it is closed.
 */
static void check_descriptors(cp__channel *channel, bool unexpected) {
  if (channel->received_fd >= 0 && channel->partial.len == 0) {
    channel->received_fd = cp__close(channel->received_fd);
    unexpected = true;
  }
  if (unexpected && takes_input(channel))
    emit_error(channel, CP_ERR_IPC_UNEXPECTED_HANDLE, "recvmsg");
}

/* recvmsg() into the read buffer. MSG_CMSG_CLOEXEC keeps a received
 * descriptor out of children spawned before it is closed. Returns the bytes
 * read, 0 at end of file, or a negative errno. */
static ssize_t receive(cp__channel *channel, bool *unexpected) {
  union {
    struct cmsghdr align;
    char bytes[CONTROL_BUFFER_SIZE];
  } control;
  struct iovec iov = {.iov_base = channel->read_buffer,
                      .iov_len = READ_BUFFER_SIZE};
  struct msghdr message = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control.bytes,
                           .msg_controllen = sizeof(control.bytes)};
  ssize_t n;

  do
    n = recvmsg(channel->fd, &message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;

  *unexpected = take_descriptors(channel, &message);
  return n;
}

/*
 * End of file or a failed read: the peer is gone, and the channel
 * disconnects and closes, as Node's does. A record cut off by the end is
 * reported (Node drops it silently), and a read error other than
 * ECONNRESET (the peer closed with our data unread) too. The backlog gets
 * one last write, for a peer that only shut down its writing side; what
 * the socket does not take fails.
 */
static void end_connection(cp__channel *channel, int error) {
  bool truncated = channel->connected && channel->partial.len > 0;

  channel->connected = false;
  discard_input(channel);

  if (cp__channel_backlog(channel) > 0) {
    flush_output(channel);
    if (cp__channel_backlog(channel) > 0)
      fail_writes(channel, CP_ERR_IPC_CHANNEL_CLOSED);
  }

  if (truncated)
    emit_error(channel, CP_ERR_IPC_INVALID_JSON, "read");
  if (error < 0 && error != -ECONNRESET && !channel->closing)
    emit_error(channel, error, "read");
  if (channel->closing)
    return;

  run_send_callbacks(channel);
  if (channel->closing)
    return;
  emit_write_error_event(channel);
  if (channel->closing)
    return;

  end_channel(channel);
}

/*
 * Reads and delivers input until the socket is empty, the channel closes,
 * or (unless until_dry) a bound per wakeup is reached. Returns whether a
 * read returned something other than EAGAIN.
 */
static bool read_input(cp__channel *channel, bool until_dry) {
  size_t bytes = 0;
  bool progressed = false;

  for (unsigned reads = 0;
       until_dry || (reads < READS_PER_WAKEUP && bytes < READ_BYTES_PER_WAKEUP);
       reads++) {
    bool unexpected = false;
    ssize_t n;

    /* The read buffer may still hold records of a read that a listener
     * interrupted by reading the channel dry; they go first. */
    drain_chunk(channel);
    if (channel->closing)
      break;

    if (channel->read_buffer == NULL) {
      channel->read_buffer = malloc(READ_BUFFER_SIZE);
      if (channel->read_buffer == NULL) {
        end_connection(channel, -ENOMEM);
        return true;
      }
    }

    n = receive(channel, &unexpected);
    if (n == -EAGAIN)
      break;
    progressed = true;

    if (n <= 0) {
      end_connection(channel, (int)n);
      break;
    }

    bytes += (size_t)n;
    cp__channel_feed(channel, channel->read_buffer, (size_t)n);
    check_descriptors(channel, unexpected);

    /* A short read has most likely emptied the socket. */
    if (!until_dry && (size_t)n < READ_BUFFER_SIZE)
      break;
  }
  return progressed;
}

void cp__channel_read_dry(cp__channel *channel) {
  if (channel == NULL || channel->closing)
    return;

  read_input(channel, true);
  if (channel->closing)
    return;
  update_poll(channel);
  if (has_work_due(channel))
    schedule(channel);
}

/*
 * libuv reports POLLERR as status UV_EBADF and stops the handle. A read or
 * a write then returns the real error (ECONNRESET, EPIPE) and handles it.
 * If neither makes progress, the socket's pending error ends the
 * connection, because polling again would only report the same condition.
 */
static void handle_poll_error(cp__channel *channel, int status) {
  bool progressed = false;
  int error;

  channel->poll_events = 0;
  if (cp__channel_backlog(channel) > 0 && channel->write_error == 0)
    progressed = flush_output(channel);
  if (!channel->closing)
    progressed = read_input(channel, false) || progressed;
  if (progressed || channel->closing)
    return;

  error = cp__socket_error(channel->fd);
  end_connection(channel, error != 0 ? error : status);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  cp__channel *channel = handle->data;

  if (status < 0) {
    handle_poll_error(channel, status);
  } else {
    if (events & UV_WRITABLE)
      flush_output(channel);
    if ((events & UV_READABLE) && !channel->closing)
      read_input(channel, false);
  }
  run_deferred(channel);
}

/* ------------------------------------------------------------------------
 * Opening, disconnecting, accessors
 * ------------------------------------------------------------------------ */

static int check_socket(int fd) {
  int value;
  socklen_t len = sizeof(value);

  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) < 0)
    return -errno;
  if (value != SOCK_STREAM)
    return -EPROTOTYPE;

  len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) < 0)
    return -errno;
  if (value != AF_UNIX)
    return -EAFNOSUPPORT;
  return 0;
}

static int set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);

  if (flags < 0)
    return -errno;
  if (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    return -errno;
  return 0;
}

int cp__channel_open(uv_loop_t *loop, int fd, const cp__channel_events *events,
                     void *data, cp__channel **channel_out) {
  cp__channel *channel;
  int r;

  if (channel_out == NULL || loop == NULL || events == NULL) {
    cp__close(fd);
    return CP_ERR_INVALID_ARG_VALUE;
  }
  *channel_out = NULL;

  r = check_socket(fd);
  if (r == 0)
    r = cp__set_nonblock(fd, true);
  if (r == 0)
    r = set_cloexec(fd);
  if (r < 0) {
    cp__close(fd);
    return r;
  }

  channel = calloc(1, sizeof(*channel));
  if (channel == NULL) {
    cp__close(fd);
    return -ENOMEM;
  }

  /* uv_poll_init() fails before it registers the handle, so the memory can
   * simply be freed. */
  r = uv_poll_init(loop, &channel->poll, fd);
  if (r < 0) {
    cp__close(fd);
    free(channel);
    return r;
  }

  uv_idle_init(loop, &channel->idle);
  uv_prepare_init(loop, &channel->prepare);
  channel->poll.data = channel;
  channel->idle.data = channel;
  channel->prepare.data = channel;
  channel->fd = fd;
  channel->events = *events;
  channel->data = data;
  channel->connected = true;
  channel->received_fd = -1;
  channel->max_message = CP__CHANNEL_DEFAULT_MAX_MESSAGE;
  update_poll(channel);

  *channel_out = channel;
  return 0;
}

int cp__channel_disconnect(cp__channel *channel) {
  if (channel == NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  if (!channel->connected) {
    if (!channel->closed)
      emit_error(channel, CP_ERR_IPC_DISCONNECTED, NULL);
    return CP_ERR_IPC_DISCONNECTED;
  }

  channel->connected = false;
  channel->disconnect_requested = true;
  if (channel->handle_count == 0)
    discard_input(channel);
  if (has_work_due(channel))
    schedule(channel);
  return 0;
}

bool cp__channel_connected(const cp__channel *channel) {
  return channel->connected;
}

int cp__channel_fileno(const cp__channel *channel) { return channel->fd; }

void cp__channel_set_max_message_size(cp__channel *channel, size_t bytes) {
  channel->max_message = bytes > 0 ? bytes : CP__CHANNEL_DEFAULT_MAX_MESSAGE;
}

/* libuv keeps a handle's ref state across uv_poll_start() and
 * uv_idle_start(), so re-arming needs nothing more. */
void cp__channel_ref(cp__channel *channel) {
  if (channel == NULL || channel->closed)
    return;
  channel->unreferenced = false;
  uv_ref((uv_handle_t *)&channel->idle);
  if (!channel->closing)
    update_ref(channel);
}

void cp__channel_unref(cp__channel *channel) {
  if (channel == NULL || channel->closed)
    return;
  channel->unreferenced = true;
  uv_unref((uv_handle_t *)&channel->idle);
  if (!channel->closing)
    update_ref(channel);
}

void cp__channel_free(cp__channel *channel) {
  if (channel == NULL)
    return;

  /* Freeing a channel whose handles are still on the loop would corrupt the
   * loop, so it is a bug worth stopping at. */
  if (!channel->closed)
    abort();

  free(channel->read_buffer);
  cp__bytes_free(&channel->partial);
  cp__bytes_free(&channel->out);
  free(channel->pending.items);
  free(channel->rejected.items);
  drop_handle_sends(channel);
  free(channel->handles);
  cp__close(channel->received_fd);
  free(channel);
}
