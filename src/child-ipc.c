/* The parent's side of the IPC channel: send, disconnect and its events. */
#include <errno.h>
#include <stdlib.h>

#include "channel.h"
#include "child-internal.h"
#include "handle.h"
#include "json.h"

/* Emits one message; a listener may take its value or descriptor. */
static void emit_message(cp_child *child, cp__message *message) {
  cp__message_delivery delivery;
  cp_handle handle_copy;
  cp_event event;

  cp__message_event(message, &delivery, &handle_copy, &event);
  cp__child_emit(child, &event);
}

static bool has_message_listener(const cp_child *child) {
  return cp__emitter_count(&child->emitter, CP_EVENT_MESSAGE) > 0;
}

/* Keeps or emits a message. The channel releases what the listeners leave
 * of it. */
static void on_channel_message(cp__channel *channel, cp__message *message,
                               void *data) {
  cp_child *child = data;

  (void)channel;
  if (!cp__message_queue_keep(&child->unheard, message,
                              has_message_listener(child)))
    emit_message(child, message);
}

static void replay_cb(uv_timer_t *timer) {
  cp_child *child = timer->data;
  cp__message message;

  cp__child_hold(child);
  while (!child->close_emitted && has_message_listener(child) &&
         cp__message_queue_shift(&child->unheard, &message)) {
    emit_message(child, &message);
    cp__message_release(&message);
  }
  /* Nothing left to replay: a listener added once messages are kept again
   * makes a new timer. */
  if (child->unheard.head == NULL)
    cp__child_close_timer(child, &child->replay_timer);
  cp__child_unhold(child);
}

/* Replays the kept messages on the next loop iteration, as Node does on
 * the next tick, so the caller can add its other listeners first. Returns
 * 0 or -ENOMEM. */
int cp__child_message_listener_added(cp_child *child) {
  if (child->unheard.head == NULL || child->handles_closing)
    return 0;

  if (child->replay_timer == NULL) {
    child->replay_timer = cp__child_new_timer(child);
    if (child->replay_timer == NULL)
      return -ENOMEM;
  }
  uv_timer_start(child->replay_timer, replay_cb, 0, 0);
  return 0;
}

static void on_channel_error(cp__channel *channel, int error,
                             const char *syscall, void *data) {
  (void)channel;
  cp__child_emit(data, &(cp_event){.type = CP_EVENT_ERROR,
                                   .error = error,
                                   .syscall = syscall});
}

static void on_channel_disconnect(cp__channel *channel, void *data) {
  (void)channel;
  cp__child_emit(data, &(cp_event){.type = CP_EVENT_DISCONNECT});
}

/* The channel counts toward CLOSE like a stdio stream, whichever side
 * disconnected (Node counts it only on the peer's end of file). */
static void on_channel_close(cp__channel *channel, void *data) {
  cp_child *child = data;

  (void)channel;
  child->channel_closed = true;
  cp__child_hold(child);
  cp__child_count_close(child);
  cp__child_unhold(child);
}

/* Runs the caller's send callback with the child as its first argument. */
static void on_send_done(cp__channel *channel, cp__listener_fn fn,
                         void *fn_data, int status, void *data) {
  (void)channel;
  ((cp_send_cb)fn)(data, status, fn_data);
}

static const cp__channel_events channel_events = {
    .message = on_channel_message,
    .error = on_channel_error,
    .disconnect = on_channel_disconnect,
    .close = on_channel_close,
    .send_done = on_send_done,
};

/* Opens the parent's end of the channel. Takes fd. */
int cp__child_open_channel(cp_child *child, int fd, size_t max_message_size) {
  int r = cp__channel_open(child->loop, fd, &channel_events, child,
                           &child->channel);

  if (r < 0)
    return r;
  if (max_message_size > 0)
    cp__channel_set_max_message_size(child->channel, max_message_size);
  child->closes_needed++;
  return 0;
}

bool cp_child_connected(const cp_child *child) {
  return child->channel != NULL && cp__channel_connected(child->channel);
}

/* Whether sends go to the channel: a closed one calls no callback. */
static bool has_open_channel(const cp_child *child) {
  return child->channel != NULL && !child->channel_closed;
}

int cp_child_disconnect(cp_child *child) {
  if (child == NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  if (has_open_channel(child))
    return cp__channel_disconnect(child->channel);

  /* As Node, an error event; but none after the child's CLOSE. */
  if (!child->close_emitted)
    cp__child_emit(child, &(cp_event){.type = CP_EVENT_ERROR,
                                      .error = CP_ERR_IPC_DISCONNECTED});
  return CP_ERR_IPC_DISCONNECTED;
}

/* A send to a child that never had a channel: its callback, or an error
 * event, comes from the loop, as Node's nextTick. */
typedef struct failed_send {
  uv_timer_t timer;
  cp_child *child;
  cp_send_cb cb;
  void *data;
} failed_send;

static void failed_send_closed(uv_handle_t *handle) {
  failed_send *send = handle->data;
  cp_child *child = send->child;

  free(send);
  cp__child_unhold(child);
}

static void failed_send_cb(uv_timer_t *timer) {
  failed_send *send = timer->data;

  if (send->cb != NULL)
    send->cb(send->child, CP_ERR_IPC_CHANNEL_CLOSED, send->data);
  else if (!send->child->close_emitted)
    cp__child_emit(send->child, &(cp_event){
                                    .type = CP_EVENT_ERROR,
                                    .error = CP_ERR_IPC_CHANNEL_CLOSED});
  uv_close((uv_handle_t *)timer, failed_send_closed);
}

static int fail_send(cp_child *child, cp_send_cb cb, void *data) {
  failed_send *send = malloc(sizeof(*send));

  if (send == NULL)
    return -ENOMEM;

  *send = (failed_send){.child = child, .cb = cb, .data = data};
  uv_timer_init(child->loop, &send->timer);
  send->timer.data = send;
  cp__child_hold(child);
  uv_timer_start(&send->timer, failed_send_cb, 0, 0);
  return 0;
}

/* A handle sent to a child without a channel is checked as if it could
 * go, and a handed-over socket is closed, since the send is over. */
static int fail_send_with_handle(cp_child *child, const cp_handle *handle,
                                 const cp_send_options *options,
                                 cp_send_cb cb, void *data) {
  cp__outgoing out;
  int r;

  if (handle == NULL)
    return fail_send(child, cb, data);

  r = cp__outgoing_init(&out, handle, options, child->loop);
  if (r == 0)
    r = fail_send(child, cb, data);
  if (r < 0) {
    cp__outgoing_abandon(&out);
    return r;
  }
  cp__outgoing_commit(&out);
  cp__outgoing_close(&out);
  return 0;
}

int cp_child_send(cp_child *child, const cJSON *message,
                  const cp_handle *handle, const cp_send_options *options,
                  cp_send_cb cb, void *data) {
  int r;

  if (child == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (message == NULL)
    return CP_ERR_MISSING_ARGS;

  if (!has_open_channel(child)) {
    r = fail_send_with_handle(child, handle, options, cb, data);
    return r < 0 ? r : 0;
  }
  return cp__channel_send_handle(child->channel, message, handle, options,
                          (cp__listener_fn)cb, data);
}

int cp_child_send_json(cp_child *child, const char *json, size_t len,
                       cp_send_cb cb, void *data) {
  int r;

  if (child == NULL || (json == NULL && len > 0))
    return CP_ERR_INVALID_ARG_VALUE;
  if (json == NULL)
    return CP_ERR_MISSING_ARGS;

  if (!has_open_channel(child)) {
    r = fail_send(child, cb, data);
    return r < 0 ? r : 0;
  }
  return cp__channel_send_raw(child->channel, json, len, (cp__listener_fn)cb,
                              data);
}
