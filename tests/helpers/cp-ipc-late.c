/*
 * cp-ipc-late: opens the channel to its parent with no MESSAGE listener,
 * and adds one (which sends every message back) only when the internal
 * message {"cmd":"NODE_TEST_GO"} arrives. Messages that came before it
 * must then be delivered, in order. Exits when the channel closes.
 */
#include <stdio.h>

#include <childproc.h>

static void echo(cp_channel *channel, const cp_event *event, void *data) {
  (void)data;
  cp_channel_send(channel, event->message, NULL, NULL, NULL, NULL);
}

static void listen_on_go(cp_channel *channel, const cp_event *event,
                         void *data) {
  (void)data;
  (void)event;
  cp_channel_on(channel, CP_EVENT_MESSAGE, echo, NULL);
}

static void release_on_close(cp_channel *channel, const cp_event *event,
                             void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0) {
    fprintf(stderr, "cp-ipc-late: %s\n", cp_strerror(r));
    return 2;
  }
  cp_channel_on(channel, CP_EVENT_INTERNAL_MESSAGE, listen_on_go, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, release_on_close, NULL);
  /* As in Node, only MESSAGE and DISCONNECT listeners keep the loop alive. */
  cp_channel_ref(channel);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
