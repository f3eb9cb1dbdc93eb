/* first: runs `ls -l`, prints what it writes to stdout, then its exit code. */
#include <stdio.h>

#include <childproc.h>
#include <uv.h>

static void on_stdout_data(cp_stream *stream, const cp_event *event,
                           void *data) {
  (void)stream;
  (void)data;
  fwrite(event->data, 1, event->len, stdout);
}

/* CLOSE comes after EXIT, once stdout has been read to the end. */
static void on_close(cp_child *child, const cp_event *event, void *data) {
  (void)data;
  if (event->signal != 0)
    printf("ls was killed by %s\n", cp_signal_name(event->signal));
  else
    printf("ls exited with code %d\n", event->exit_code);
  cp_child_release(child);
}

int main(void) {
  const char *const args[] = {"-l", NULL};
  uv_loop_t *loop = uv_default_loop();
  cp_child *child;
  int r;

  r = cp_spawn(loop, "ls", args, NULL, &child);
  if (r < 0) {
    fprintf(stderr, "cp_spawn failed: %s\n", cp_strerror(r));
    return 1;
  }
  cp_stream_on(cp_child_stdout(child), CP_EVENT_DATA, on_stdout_data, NULL);
  cp_child_on(child, CP_EVENT_CLOSE, on_close, NULL);

  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
