/*
 * idle-memory: the parent's memory per idle child, with COUNT children
 * alive at once.
 *
 *   idle-memory IMPL COUNT
 *
 * IMPL is uv (uv_spawn() with a uv_process_t and three uv_pipe_t per
 * child, allocated here) or childproc (cp_spawn()). Each child is
 * `sleep 600` with pipes for stdin, stdout and stderr, Node's default, and
 * nobody reads them. One child is started and reaped first, so that
 * one-time set-up (the loop's signal handling, first allocations) is not
 * counted. Memory is read before the children are started and again once
 * every child has started; then each child gets SIGKILL and is reaped.
 *
 * Prints: kib_per_child=RSS_DELTA heap_bytes_per_child=HEAP_DELTA children=N
 * where RSS_DELTA is the resident set's growth in KiB divided by COUNT and
 * HEAP_DELTA the growth of malloc's bytes in use divided by COUNT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

#include "bench-util.h"

static const char *const sleep_args[] = {"600", NULL};

typedef struct memory_state {
  size_t count;
  size_t started;
  size_t closed;
  double rss_before;
  double heap_before;
  double rss_after;
  double heap_after;
} memory_state;

static void take_before(memory_state *state) {
  state->rss_before = bench_rss_kib();
  state->heap_before = bench_heap_bytes();
}

static void take_after(memory_state *state) {
  state->rss_after = bench_rss_kib();
  state->heap_after = bench_heap_bytes();
}

/* ------------------------------------------------------------------------
 * libuv
 * ------------------------------------------------------------------------ */

typedef struct uv_child {
  uv_process_t process;
  uv_pipe_t pipes[3];
  int handles_open;
  memory_state *state;
} uv_child;

static void on_uv_handle_closed(uv_handle_t *handle) {
  uv_child *child = handle->data;

  if (--child->handles_open == 0) {
    child->state->closed++;
    free(child);
  }
}

static void on_uv_exit(uv_process_t *process, int64_t exit_status,
                       int term_signal) {
  uv_child *child = process->data;

  (void)exit_status;
  (void)term_signal;
  uv_close((uv_handle_t *)&child->process, on_uv_handle_closed);
  for (int i = 0; i < 3; i++)
    uv_close((uv_handle_t *)&child->pipes[i], on_uv_handle_closed);
}

static uv_child *spawn_uv_child(uv_loop_t *loop, memory_state *state,
                                const char *file, char **args) {
  uv_child *child = calloc(1, sizeof(*child));
  uv_stdio_container_t stdio[3];
  uv_process_options_t options = {.file = file,
                                  .args = args,
                                  .exit_cb = on_uv_exit,
                                  .stdio = stdio,
                                  .stdio_count = 3};
  int r;

  if (child == NULL)
    bench_fail("out of memory");
  child->state = state;
  for (int i = 0; i < 3; i++) {
    uv_pipe_init(loop, &child->pipes[i], 0);
    child->pipes[i].data = child;
    stdio[i].flags = UV_CREATE_PIPE |
                     (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
    stdio[i].data.stream = (uv_stream_t *)&child->pipes[i];
  }
  r = uv_spawn(loop, &child->process, &options);
  if (r != 0)
    bench_fail("uv_spawn: %s", uv_strerror(r));
  child->process.data = child;
  child->handles_open = 4;
  state->started++;
  return child;
}

static void measure_uv(memory_state *state) {
  char *true_args[] = {"/bin/true", NULL};
  char *args[] = {"sleep", (char *)sleep_args[0], NULL};
  uv_loop_t *loop = uv_default_loop();
  memory_state warmup = {0};
  uv_child **children = calloc(state->count, sizeof(*children));

  if (children == NULL)
    bench_fail("out of memory");
  spawn_uv_child(loop, &warmup, true_args[0], true_args);
  uv_run(loop, UV_RUN_DEFAULT);

  take_before(state);
  for (size_t i = 0; i < state->count; i++)
    children[i] = spawn_uv_child(loop, state, "sleep", args);
  take_after(state);

  for (size_t i = 0; i < state->count; i++)
    uv_process_kill(&children[i]->process, SIGKILL);
  uv_run(loop, UV_RUN_DEFAULT);
  free(children);
  uv_loop_close(loop);
}

/* ------------------------------------------------------------------------
 * childproc
 * ------------------------------------------------------------------------ */

static void on_cp_spawn(cp_child *child, const cp_event *event, void *data) {
  memory_state *state = data;

  (void)event;
  /* Returns control to measure_childproc() once every child has started. */
  if (++state->started == state->count)
    uv_stop(cp_child_loop(child));
}

static void on_cp_error(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)data;
  bench_fail("child error: %s", cp_strerror(event->error));
}

static void on_cp_close(cp_child *child, const cp_event *event, void *data) {
  memory_state *state = data;

  (void)event;
  state->closed++;
  cp_child_release(child);
}

static cp_child *spawn_cp_child(uv_loop_t *loop, memory_state *state,
                                const char *file, const char *const *args) {
  cp_child *child;
  int r = cp_spawn(loop, file, args, NULL, &child);

  if (r != 0)
    bench_fail("cp_spawn: %s", cp_strerror(r));
  cp_child_on(child, CP_EVENT_SPAWN, on_cp_spawn, state);
  cp_child_on(child, CP_EVENT_ERROR, on_cp_error, state);
  cp_child_on(child, CP_EVENT_CLOSE, on_cp_close, state);
  return child;
}

static void measure_childproc(memory_state *state) {
  uv_loop_t *loop = uv_default_loop();
  memory_state warmup = {0};
  cp_child **children = calloc(state->count, sizeof(*children));

  if (children == NULL)
    bench_fail("out of memory");
  spawn_cp_child(loop, &warmup, "/bin/true", NULL);
  uv_run(loop, UV_RUN_DEFAULT);

  take_before(state);
  for (size_t i = 0; i < state->count; i++)
    children[i] = spawn_cp_child(loop, state, "sleep", sleep_args);
  uv_run(loop, UV_RUN_DEFAULT);
  if (state->started != state->count)
    bench_fail("%zu of %zu children started", state->started, state->count);
  take_after(state);

  for (size_t i = 0; i < state->count; i++)
    cp_child_kill(children[i], SIGKILL);
  uv_run(loop, UV_RUN_DEFAULT);
  free(children);
  uv_loop_close(loop);
}

int main(int argc, char **argv) {
  memory_state state = {0};

  if (argc != 3)
    bench_fail("usage: idle-memory uv|childproc COUNT");
  state.count = bench_parse_size(argv[2], "COUNT");
  if (state.count == 0)
    bench_fail("COUNT must be greater than 0");
  bench_raise_fd_limit();

  if (strcmp(argv[1], "uv") == 0)
    measure_uv(&state);
  else if (strcmp(argv[1], "childproc") == 0)
    measure_childproc(&state);
  else
    bench_fail("unknown IMPL '%s'", argv[1]);

  if (state.closed != state.count)
    bench_fail("%zu of %zu children were reaped", state.closed, state.count);
  printf("kib_per_child=%.2f heap_bytes_per_child=%.1f children=%zu\n",
         (state.rss_after - state.rss_before) / (double)state.count,
         (state.heap_after - state.heap_before) / (double)state.count,
         state.count);
  return 0;
}
