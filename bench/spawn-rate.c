/*
 * spawn-rate: how many /bin/true processes a second one parent can start
 * and wait for, with a chosen number in flight.
 *
 *   spawn-rate IMPL SECONDS IN_FLIGHT BALLAST
 *
 * IMPL is posix_spawn (a posix_spawn() and waitpid() loop: the floor),
 * uv_spawn (libuv's uv_spawn(), which forks on Linux) or childproc
 * (cp_spawn()). Children get /dev/null as stdin, stdout and stderr in all
 * three, which is Node's stdio 'ignore'. New children are started until
 * SECONDS have passed, and the rate counts every child that has exited,
 * up to the last exit. BALLAST bytes (such as 1G) are allocated and
 * touched first, because fork() copies the parent's page tables and
 * posix_spawn() does not.
 *
 * Prints: spawns_per_s=RATE spawns=COUNT seconds=ELAPSED
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

extern char **environ;

static char *const true_argv[] = {"/bin/true", NULL};

typedef struct run_state {
  double deadline;
  size_t in_flight_max;
  size_t in_flight;
  size_t exited;
  double last_exit;
} run_state;

static void run_posix_spawn(run_state *run) {
  posix_spawn_file_actions_t actions;

  if (posix_spawn_file_actions_init(&actions) != 0)
    bench_fail("posix_spawn_file_actions_init failed");
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);

  for (;;) {
    while (run->in_flight < run->in_flight_max && bench_now() < run->deadline) {
      pid_t pid;
      int r = posix_spawn(&pid, true_argv[0], &actions, NULL, true_argv,
                          environ);

      if (r != 0)
        bench_fail("posix_spawn: %s", strerror(r));
      run->in_flight++;
    }
    if (run->in_flight == 0)
      break;

    int status;
    if (waitpid(-1, &status, 0) < 0)
      bench_fail("waitpid: %s", strerror(errno));
    run->in_flight--;
    run->exited++;
    run->last_exit = bench_now();
  }
  posix_spawn_file_actions_destroy(&actions);
}

/* ------------------------------------------------------------------------
 * libuv
 * ------------------------------------------------------------------------ */

static void start_uv_children(uv_loop_t *loop, run_state *run);

static void on_uv_close(uv_handle_t *handle) {
  run_state *run = handle->data;
  uv_loop_t *loop = handle->loop;

  free(handle);
  start_uv_children(loop, run);
}

static void on_uv_exit(uv_process_t *process, int64_t exit_status,
                       int term_signal) {
  run_state *run = process->data;

  (void)exit_status;
  (void)term_signal;
  run->in_flight--;
  run->exited++;
  run->last_exit = bench_now();
  uv_close((uv_handle_t *)process, on_uv_close);
}

static void start_uv_children(uv_loop_t *loop, run_state *run) {
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
  uv_process_options_t options = {.file = true_argv[0],
                                  .args = (char **)true_argv,
                                  .exit_cb = on_uv_exit,
                                  .stdio = stdio,
                                  .stdio_count = 3};

  while (run->in_flight < run->in_flight_max && bench_now() < run->deadline) {
    uv_process_t *process = malloc(sizeof(*process));
    int r;

    if (process == NULL)
      bench_fail("out of memory");
    r = uv_spawn(loop, process, &options);
    if (r != 0)
      bench_fail("uv_spawn: %s", uv_strerror(r));
    process->data = run;
    run->in_flight++;
  }
}

static void run_uv_spawn(run_state *run) {
  uv_loop_t *loop = uv_default_loop();

  start_uv_children(loop, run);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

/* ------------------------------------------------------------------------
 * childproc
 * ------------------------------------------------------------------------ */

static void start_cp_children(uv_loop_t *loop, run_state *run);

static void on_cp_error(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)data;
  bench_fail("cp_spawn: %s", cp_strerror(event->error));
}

static void on_cp_close(cp_child *child, const cp_event *event, void *data) {
  run_state *run = data;
  uv_loop_t *loop = cp_child_loop(child);

  (void)event;
  run->in_flight--;
  run->exited++;
  run->last_exit = bench_now();
  cp_child_release(child);
  start_cp_children(loop, run);
}

static void start_cp_children(uv_loop_t *loop, run_state *run) {
  static const cp_stdio ignore[3] = {
      {.kind = CP_STDIO_IGNORE}, {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_IGNORE}};
  cp_spawn_options options = {.stdio = ignore, .stdio_count = 3};

  while (run->in_flight < run->in_flight_max && bench_now() < run->deadline) {
    cp_child *child;
    int r = cp_spawn(loop, true_argv[0], NULL, &options, &child);

    if (r != 0)
      bench_fail("cp_spawn: %s", cp_strerror(r));
    cp_child_on(child, CP_EVENT_ERROR, on_cp_error, run);
    cp_child_on(child, CP_EVENT_CLOSE, on_cp_close, run);
    run->in_flight++;
  }
}

static void run_childproc(run_state *run) {
  uv_loop_t *loop = uv_default_loop();

  start_cp_children(loop, run);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

int main(int argc, char **argv) {
  run_state run = {0};
  double seconds;
  double start;
  char *ballast;

  if (argc != 5)
    bench_fail("usage: spawn-rate posix_spawn|uv_spawn|childproc SECONDS "
               "IN_FLIGHT BALLAST");
  seconds = strtod(argv[2], NULL);
  run.in_flight_max = bench_parse_size(argv[3], "IN_FLIGHT");
  if (seconds <= 0 || run.in_flight_max == 0)
    bench_fail("SECONDS and IN_FLIGHT must be greater than 0");
  ballast = bench_ballast(bench_parse_size(argv[4], "BALLAST"));

  start = bench_now();
  run.deadline = start + seconds;
  if (strcmp(argv[1], "posix_spawn") == 0)
    run_posix_spawn(&run);
  else if (strcmp(argv[1], "uv_spawn") == 0)
    run_uv_spawn(&run);
  else if (strcmp(argv[1], "childproc") == 0)
    run_childproc(&run);
  else
    bench_fail("unknown IMPL '%s'", argv[1]);

  printf("spawns_per_s=%.1f spawns=%zu seconds=%.3f\n",
         (double)run.exited / (run.last_exit - start), run.exited,
         run.last_exit - start);
  free(ballast);
  return 0;
}
