/*
 * capture: how fast a parent reads a child's stdout, from
 * `head -c BYTES /dev/zero`.
 *
 *   capture IMPL BYTES
 *
 * IMPL is raw (a pipe from pipe2(), as childproc makes for stdout, read with
 * blocking read() calls of 64 KiB: the floor), uv (libuv's uv_spawn() with
 * UV_CREATE_PIPE, which is a socket pair, read with uv_read_start() into a
 * 64 KiB buffer) or childproc (cp_spawn() and a DATA listener). The child's
 * stdin is /dev/null and its stderr is the parent's. The clock runs from
 * just before the spawn to the end of the stream.
 *
 * Prints: mb_per_s=RATE bytes=COUNT seconds=ELAPSED (MB = 10^6 bytes)
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

#include "bench-util.h"

#define READ_SIZE (64 * 1024)

extern char **environ;

typedef struct capture_state {
  size_t bytes;
  double start;
  double end;
} capture_state;

static void capture_raw(char *const argv[], capture_state *state) {
  posix_spawn_file_actions_t actions;
  char *buffer = malloc(READ_SIZE);
  int fds[2];
  int status;
  pid_t pid;
  int r;

  if (buffer == NULL)
    bench_fail("out of memory");
  if (pipe2(fds, O_CLOEXEC) != 0)
    bench_fail("pipe2: %s", strerror(errno));
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  r = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
  if (r != 0)
    bench_fail("posix_spawn: %s", strerror(r));
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);

  for (;;) {
    ssize_t n = read(fds[0], buffer, READ_SIZE);

    if (n == 0)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      bench_fail("read: %s", strerror(errno));
    state->bytes += (size_t)n;
  }
  state->end = bench_now();
  close(fds[0]);
  free(buffer);
  if (waitpid(pid, &status, 0) < 0)
    bench_fail("waitpid: %s", strerror(errno));
}

/* ------------------------------------------------------------------------
 * libuv
 * ------------------------------------------------------------------------ */

static char uv_buffer[READ_SIZE];

static void on_uv_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(uv_buffer, sizeof(uv_buffer));
}

static void on_uv_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  capture_state *state = stream->data;

  (void)buf;
  if (n > 0) {
    state->bytes += (size_t)n;
    return;
  }
  if (n == UV_EOF) {
    state->end = bench_now();
    uv_close((uv_handle_t *)stream, NULL);
  } else if (n < 0) {
    bench_fail("uv_read: %s", uv_strerror((int)n));
  }
}

static void on_uv_exit(uv_process_t *process, int64_t exit_status,
                       int term_signal) {
  (void)exit_status;
  (void)term_signal;
  uv_close((uv_handle_t *)process, NULL);
}

static void capture_uv(char *const argv[], capture_state *state) {
  uv_loop_t *loop = uv_default_loop();
  uv_pipe_t out;
  uv_process_t process;
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
       .data.stream = (uv_stream_t *)&out},
      {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t options = {.file = argv[0],
                                  .args = (char **)argv,
                                  .exit_cb = on_uv_exit,
                                  .stdio = stdio,
                                  .stdio_count = 3};
  int r;

  uv_pipe_init(loop, &out, 0);
  out.data = state;
  r = uv_spawn(loop, &process, &options);
  if (r != 0)
    bench_fail("uv_spawn: %s", uv_strerror(r));
  r = uv_read_start((uv_stream_t *)&out, on_uv_alloc, on_uv_read);
  if (r != 0)
    bench_fail("uv_read_start: %s", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

/* ------------------------------------------------------------------------
 * childproc
 * ------------------------------------------------------------------------ */

static void on_cp_data(cp_stream *stream, const cp_event *event, void *data) {
  capture_state *state = data;

  (void)stream;
  state->bytes += event->len;
}

static void on_cp_end(cp_stream *stream, const cp_event *event, void *data) {
  capture_state *state = data;

  (void)stream;
  (void)event;
  state->end = bench_now();
}

static void on_cp_error(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)data;
  bench_fail("child error: %s", cp_strerror(event->error));
}

static void on_cp_close(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  cp_child_release(child);
}

static void capture_childproc(char *const argv[], capture_state *state) {
  static const cp_stdio stdio[3] = {{.kind = CP_STDIO_IGNORE},
                                    {.kind = CP_STDIO_PIPE},
                                    {.kind = CP_STDIO_INHERIT}};
  cp_spawn_options options = {.stdio = stdio, .stdio_count = 3};
  uv_loop_t *loop = uv_default_loop();
  cp_child *child;
  int r = cp_spawn(loop, argv[0], (const char *const *)argv + 1, &options,
                   &child);

  if (r != 0)
    bench_fail("cp_spawn: %s", cp_strerror(r));
  cp_child_on(child, CP_EVENT_ERROR, on_cp_error, state);
  cp_child_on(child, CP_EVENT_CLOSE, on_cp_close, state);
  cp_stream_on(cp_child_stdout(child), CP_EVENT_DATA, on_cp_data, state);
  cp_stream_on(cp_child_stdout(child), CP_EVENT_END, on_cp_end, state);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

int main(int argc, char **argv) {
  capture_state state = {0};
  size_t bytes;
  char count[32];
  char *head_argv[] = {"/usr/bin/head", "-c", count, "/dev/zero", NULL};
  double seconds;

  if (argc != 3)
    bench_fail("usage: capture raw|uv|childproc BYTES");
  bytes = bench_parse_size(argv[2], "BYTES");
  snprintf(count, sizeof(count), "%zu", bytes);

  state.start = bench_now();
  if (strcmp(argv[1], "raw") == 0)
    capture_raw(head_argv, &state);
  else if (strcmp(argv[1], "uv") == 0)
    capture_uv(head_argv, &state);
  else if (strcmp(argv[1], "childproc") == 0)
    capture_childproc(head_argv, &state);
  else
    bench_fail("unknown IMPL '%s'", argv[1]);

  if (state.bytes != bytes)
    bench_fail("read %zu bytes, expected %zu", state.bytes, bytes);
  seconds = state.end - state.start;
  printf("mb_per_s=%.1f bytes=%zu seconds=%.3f\n",
         (double)bytes / seconds / 1e6, bytes, seconds);
  return 0;
}
