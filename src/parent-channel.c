/* The child's side of the IPC channel: Node's process.send() family. */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "channel.h"
#include "emitter.h"
#include "io.h"
#include "message-queue.h"

struct cp_channel {
  uv_loop_t *loop;
  cp__emitter emitter;
  cp__channel *channel; /* owned */
  bool closed;          /* CLOSE emitted */
  bool released;
  bool freeing;   /* replay_timer is closing, then the memory goes */
  unsigned holds; /* emits in progress, which may release the channel */

  /* Messages that came while nobody listened for MESSAGE, as Node keeps
   * them; replayed by replay_timer once a listener is added. */
  cp__message_queue unheard;
  uv_timer_t replay_timer;

  /* Node's rule: referenced while a MESSAGE or DISCONNECT listener exists,
   * until ref() or unref() is called explicitly. */
  bool referenced;
  bool explicit_ref;
};

/* A process has one channel to its parent; it is opened once. */
static atomic_bool channel_taken;

static void invoke_channel_listener(cp__listener_fn fn, void *object,
                                    const cp_event *event, void *data) {
  ((cp_channel_listener)fn)(object, event, data);
}

static void free_memory(uv_handle_t *handle) {
  cp_channel *channel = handle->data;

  cp__channel_free(channel->channel);
  cp__message_queue_free(&channel->unheard);
  cp__emitter_free(&channel->emitter);
  free(channel);
}

static void maybe_free(cp_channel *channel) {
  if (!channel->released || !channel->closed || channel->holds > 0 ||
      channel->freeing)
    return;

  channel->freeing = true;
  uv_close((uv_handle_t *)&channel->replay_timer, free_memory);
}

static bool keeps_alive(cp_event_type type) {
  return type == CP_EVENT_MESSAGE || type == CP_EVENT_DISCONNECT;
}

static void apply_ref(cp_channel *channel, bool referenced) {
  channel->referenced = referenced;
  if (referenced)
    cp__channel_ref(channel->channel);
  else
    cp__channel_unref(channel->channel);
}

/* Follows the listeners, unless the caller chose with ref() or unref(). */
static void update_ref(cp_channel *channel) {
  bool wanted;

  if (channel->explicit_ref || channel->closed)
    return;

  wanted = cp__emitter_count(&channel->emitter, CP_EVENT_MESSAGE) > 0 ||
           cp__emitter_count(&channel->emitter, CP_EVENT_DISCONNECT) > 0;
  if (wanted != channel->referenced)
    apply_ref(channel, wanted);
}

static void emit(cp_channel *channel, const cp_event *event) {
  channel->holds++;
  cp__emitter_emit(&channel->emitter, event);
  channel->holds--;
  /* A once listener has just gone. */
  if (keeps_alive(event->type))
    update_ref(channel);
  maybe_free(channel);
}

/* Emits one message; a listener may take its value or descriptor. */
static void emit_message(cp_channel *channel, cp__message *message) {
  cp__message_delivery delivery;
  cp_handle handle_copy;
  cp_event event;

  cp__message_event(message, &delivery, &handle_copy, &event);
  emit(channel, &event);
}

static bool has_message_listener(const cp_channel *channel) {
  return cp__emitter_count(&channel->emitter, CP_EVENT_MESSAGE) > 0;
}

/* Keeps or emits a message. The channel releases what the listeners leave
 * of it. */
static void on_message(cp__channel *raw, cp__message *message, void *data) {
  cp_channel *channel = data;

  (void)raw;
  if (!cp__message_queue_keep(&channel->unheard, message,
                              has_message_listener(channel)))
    emit_message(channel, message);
}

static void replay_cb(uv_timer_t *timer) {
  cp_channel *channel = timer->data;
  cp__message message;

  channel->holds++;
  while (has_message_listener(channel) &&
         cp__message_queue_shift(&channel->unheard, &message)) {
    emit_message(channel, &message);
    cp__message_release(&message);
  }
  channel->holds--;
  maybe_free(channel);
}

static void on_error(cp__channel *raw, int error, const char *syscall,
                     void *data) {
  (void)raw;
  emit(data,
       &(cp_event){.type = CP_EVENT_ERROR, .error = error, .syscall = syscall});
}

static void on_disconnect(cp__channel *raw, void *data) {
  (void)raw;
  emit(data, &(cp_event){.type = CP_EVENT_DISCONNECT});
}

static void on_close(cp__channel *raw, void *data) {
  cp_channel *channel = data;

  (void)raw;
  channel->closed = true;
  emit(channel, &(cp_event){.type = CP_EVENT_CLOSE});
}

static void on_send_done(cp__channel *raw, cp__listener_fn fn, void *fn_data,
                         int status, void *data) {
  (void)raw;
  ((cp_channel_send_cb)fn)(data, status, fn_data);
}

static const cp__channel_events channel_events = {
    .message = on_message,
    .error = on_error,
    .disconnect = on_disconnect,
    .close = on_close,
    .send_done = on_send_done,
};

/* Parses NODE_CHANNEL_FD as Node does: a decimal number, 0 or more. */
static int channel_fd_from_env(void) {
  const char *text = getenv("NODE_CHANNEL_FD");
  char *end;
  long fd;

  if (text == NULL || text[0] < '0' || text[0] > '9')
    return text == NULL ? -ENOENT : CP_ERR_INVALID_ARG_VALUE;

  fd = strtol(text, &end, 10);
  if (*end != '\0' || fd > INT_MAX)
    return CP_ERR_INVALID_ARG_VALUE;
  return (int)fd;
}

static int check_serialization(void) {
  const char *mode = getenv("NODE_CHANNEL_SERIALIZATION_MODE");

  if (mode == NULL || strcmp(mode, "json") == 0)
    return 0;
  if (strcmp(mode, "advanced") == 0)
    return CP_ERR_IPC_UNSUPPORTED_SERIALIZATION;
  return CP_ERR_INVALID_ARG_VALUE;
}

static int check_socket(int fd) {
  struct stat st;

  if (fstat(fd, &st) < 0)
    return -errno;
  return S_ISSOCK(st.st_mode) ? 0 : -EBADF;
}

static void free_after_failed_open(uv_handle_t *handle) {
  cp_channel *channel = handle->data;

  cp__emitter_free(&channel->emitter);
  free(channel);
}

int cp_parent_channel_open(uv_loop_t *loop, cp_channel **channel_out) {
  cp_channel *channel;
  int fd;
  int r;

  if (loop == NULL || channel_out == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  *channel_out = NULL;

  fd = channel_fd_from_env();
  if (fd < 0)
    return fd;
  r = check_serialization();
  if (r == 0)
    r = check_socket(fd);
  if (r < 0)
    return r;
  if (atomic_exchange(&channel_taken, true))
    return -ENOENT;

  /* As Node, so that this process's own children do not inherit them.
   * NOTE: unsetenv() is not thread-safe; open the channel before starting
   * threads that read the environment. */
  unsetenv("NODE_CHANNEL_FD");
  unsetenv("NODE_CHANNEL_SERIALIZATION_MODE");

  channel = calloc(1, sizeof(*channel));
  if (channel == NULL) {
    atomic_store(&channel_taken, false);
    return -ENOMEM;
  }
  channel->loop = loop;
  cp__emitter_init(&channel->emitter, channel, invoke_channel_listener);
  uv_timer_init(loop, &channel->replay_timer);
  channel->replay_timer.data = channel;

  r = cp__channel_open(loop, fd, &channel_events, channel, &channel->channel);
  if (r < 0) {
    /* NOTE: the timer handle needs a loop run to close; until then the
     * memory stays. */
    channel->freeing = true;
    uv_close((uv_handle_t *)&channel->replay_timer, free_after_failed_open);
    return r;
  }
  apply_ref(channel, false);
  *channel_out = channel;
  return 0;
}

static bool is_channel_event(cp_event_type type) {
  return keeps_alive(type) || type == CP_EVENT_INTERNAL_MESSAGE ||
         type == CP_EVENT_ERROR || type == CP_EVENT_CLOSE;
}

static int add_listener(cp_channel *channel, cp_event_type type,
                        cp_channel_listener fn, void *data, bool once) {
  int r;

  if (channel == NULL || fn == NULL || !is_channel_event(type))
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__emitter_add(&channel->emitter, type, (cp__listener_fn)fn, data,
                      once);
  if (r < 0)
    return r;

  update_ref(channel);
  /* Replayed on the next loop iteration, as Node does on the next tick. */
  if (type == CP_EVENT_MESSAGE && channel->unheard.head != NULL &&
      !channel->freeing)
    uv_timer_start(&channel->replay_timer, replay_cb, 0, 0);
  return 0;
}

int cp_channel_on(cp_channel *channel, cp_event_type type,
                  cp_channel_listener fn, void *data) {
  return add_listener(channel, type, fn, data, false);
}

int cp_channel_once(cp_channel *channel, cp_event_type type,
                    cp_channel_listener fn, void *data) {
  return add_listener(channel, type, fn, data, true);
}

int cp_channel_off(cp_channel *channel, cp_event_type type,
                   cp_channel_listener fn, void *data) {
  int r;

  if (channel == NULL || fn == NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__emitter_remove(&channel->emitter, type, (cp__listener_fn)fn, data);
  if (r == 0)
    update_ref(channel);
  return r;
}

int cp_channel_send(cp_channel *channel, const cJSON *message,
                    const cp_handle *handle, const cp_send_options *options,
                    cp_channel_send_cb cb, void *data) {
  if (channel == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (message == NULL)
    return CP_ERR_MISSING_ARGS;
  return cp__channel_send_handle(channel->channel, message, handle, options,
                          (cp__listener_fn)cb, data);
}

int cp_channel_send_json(cp_channel *channel, const char *json, size_t len,
                         cp_channel_send_cb cb, void *data) {
  if (channel == NULL || (json == NULL && len > 0))
    return CP_ERR_INVALID_ARG_VALUE;
  if (json == NULL)
    return CP_ERR_MISSING_ARGS;
  return cp__channel_send_raw(channel->channel, json, len,
                              (cp__listener_fn)cb, data);
}

int cp_channel_disconnect(cp_channel *channel) {
  if (channel == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  return cp__channel_disconnect(channel->channel);
}

bool cp_channel_connected(const cp_channel *channel) {
  return channel != NULL && cp__channel_connected(channel->channel);
}

void cp_channel_ref(cp_channel *channel) {
  channel->explicit_ref = true;
  if (!channel->closed)
    apply_ref(channel, true);
}

void cp_channel_unref(cp_channel *channel) {
  channel->explicit_ref = true;
  if (!channel->closed)
    apply_ref(channel, false);
}

void cp_channel_release(cp_channel *channel) {
  if (channel == NULL)
    return;

  channel->released = true;
  maybe_free(channel);
}
