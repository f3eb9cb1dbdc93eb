/*
 * echo-worker: a child for IPC tests and examples. It opens the channel its
 * parent gave it (Node.js fork() or childproc's cp_fork()), sends back every
 * message it receives, unchanged and in order, and exits once the channel
 * disconnects. A message that came with a handle goes back with that
 * handle, of the same type; then the worker closes its own copy.
 */
#include <stdio.h>
#include <stdlib.h>

#include <childproc.h>
#include <uv.h>

static void on_message(cp_channel *channel, const cp_event *event,
                       void *data) {
  /* keep_open: the library sends a duplicate and leaves ours to close. */
  static const cp_send_options keep_open = {.keep_open = true};
  int r;

  (void)data;
  /* The value is serialized at once, so sending the borrowed one is fine,
   * and so is the borrowed handle, which the library duplicates. */
  r = cp_channel_send(channel, event->message, event->handle,
                      event->handle != NULL ? &keep_open : NULL, NULL, NULL);
  if (r < 0)
    fprintf(stderr, "echo-worker: send failed: %s\n", cp_strerror(r));
  /* Not taken, so the library closes our copy once this returns. */
}

static void on_error(cp_channel *channel, const cp_event *event, void *data) {
  (void)channel;
  (void)data;
  fprintf(stderr, "echo-worker: %s%s%s\n", event->syscall ? event->syscall : "",
          event->syscall ? ": " : "", cp_strerror(event->error));
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0) {
    fprintf(stderr, "echo-worker: no IPC channel from the parent: %s\n",
            cp_strerror(r));
    return 2;
  }

  cp_channel_on(channel, CP_EVENT_MESSAGE, on_message, NULL);
  cp_channel_on(channel, CP_EVENT_ERROR, on_error, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_close, NULL);

  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
