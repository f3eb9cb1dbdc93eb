/*
 * echo-worker: a child for IPC tests and examples. It opens the channel its
 * parent gave it (Node.js fork() or childproc's cp_fork()), sends back every
 * message it receives, unchanged and in order, and exits once the channel
 * disconnects.
 */
#include <stdio.h>
#include <stdlib.h>

#include <childproc.h>
#include <uv.h>

static void on_message(cp_channel *channel, const cp_event *event,
                       void *data) {
  int r;

  (void)data;
  /* The value is serialized at once, so sending the borrowed one is fine. */
  r = cp_channel_send(channel, event->message, NULL, NULL, NULL, NULL);
  if (r < 0)
    fprintf(stderr, "echo-worker: send failed: %s\n", cp_strerror(r));
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
