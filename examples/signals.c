/*
 * signals: the ways to stop a child, one short scene each, and the resource
 * usage that the EXIT event carries.
 *
 *   1. cp_child_kill() with a signal number
 *   2. cp_child_kill_name() with a signal name, and the names it rejects
 *   3. a child that traps SIGTERM, cleans up and exits with its own code
 *   4. a child that ignores SIGTERM, stopped by cp_child_terminate(): SIGTERM,
 *      then SIGKILL after a grace period
 *   5. a detached child and its own children, stopped together with
 *      cp_child_kill_group()
 *   6. cp_child_kill() after the child has exited: returns 0
 *   7. CPU time and peak memory of `sha256sum FILE`, from the EXIT event
 *
 * Usage: signals [FILE]. FILE is what scene 7 hashes, /usr/bin/cmake by
 * default; a larger file gives larger numbers.
 *
 * Each scene runs the loop until its child has closed, then the next scene
 * starts on the same loop. The program exits with 1 if a call fails or a
 * child ends with another signal or exit code than its scene expects.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

typedef struct scene scene;
typedef void (*scene_step)(scene *sc, cp_child *child);

struct scene {
  const char *title;
  scene_step on_spawn; /* NULL: nothing to do */
  scene_step on_ready; /* when the child prints "ready"; NULL: nothing */
  scene_step on_close; /* before the child is released; NULL: nothing */
  int expected_signal; /* how the child should end: a signal, or 0 ... */
  int expected_code;   /* ... and then this exit code */

  uint64_t signal_ms; /* uv_now() when the scene sent its first signal */
  bool ready;
  bool failed;
};

/* ------------------------------------------------------------------------
 * Listeners shared by every scene
 * ------------------------------------------------------------------------ */

static void on_child_spawn(cp_child *child, const cp_event *event,
                           void *data) {
  scene *sc = data;

  (void)event;
  if (sc->on_spawn != NULL)
    sc->on_spawn(sc, child);
}

/*
 * Prints the child's output, a line at a time, and runs the scene's
 * on_ready step when the child reports that it is ready (its signal traps
 * are set). The children print a few short lines, each with one write(2)
 * smaller than PIPE_BUF, so a line never spans two DATA events here.
 */
static void on_stdout_data(cp_stream *stream, const cp_event *event,
                           void *data) {
  scene *sc = data;
  const char *line = event->data;
  const char *end = event->data + event->len;

  while (line < end) {
    const char *newline = memchr(line, '\n', (size_t)(end - line));
    const char *line_end = newline != NULL ? newline : end;

    printf("  child: %.*s\n", (int)(line_end - line), line);
    line = line_end + 1;
  }

  if (!sc->ready && strstr(event->data, "ready") != NULL) {
    sc->ready = true;
    if (sc->on_ready != NULL)
      sc->on_ready(sc, cp_stream_child(stream));
  }
}

static void on_child_error(cp_child *child, const cp_event *event,
                           void *data) {
  scene *sc = data;

  (void)child;
  printf("  ERROR: %s failed: %s\n", event->syscall, cp_err_name(event->error));
  sc->failed = true;
}

/* Milliseconds since the scene's first signal, or since the scene began. */
static unsigned long long elapsed_ms(const scene *sc, cp_child *child) {
  return (unsigned long long)(uv_now(cp_child_loop(child)) - sc->signal_ms);
}

static void on_child_exit(cp_child *child, const cp_event *event,
                          void *data) {
  scene *sc = data;

  if (event->signal != 0) {
    printf("  EXIT  %llu ms after the signal: killed by %s, killed flag %s\n",
           elapsed_ms(sc, child), cp_signal_name(event->signal),
           cp_child_killed(child) ? "true" : "false");
  } else {
    printf("  EXIT  exit code %d, killed flag %s\n", event->exit_code,
           cp_child_killed(child) ? "true" : "false");
  }

  if (event->signal != sc->expected_signal ||
      (event->signal == 0 && event->exit_code != sc->expected_code)) {
    printf("  UNEXPECTED: this scene should end with %s %d\n",
           sc->expected_signal != 0 ? "signal" : "exit code",
           sc->expected_signal != 0 ? sc->expected_signal
                                    : sc->expected_code);
    sc->failed = true;
  }
}

static void on_child_close(cp_child *child, const cp_event *event,
                           void *data) {
  scene *sc = data;

  (void)event;
  if (sc->on_close != NULL)
    sc->on_close(sc, child);
  cp_child_release(child);
}

/* Records when the scene signalled, and checks that the signal was
 * delivered: cp_child_kill() and friends return 1 when it was. */
static void check_sent(scene *sc, cp_child *child, const char *call, int r) {
  sc->signal_ms = uv_now(cp_child_loop(child));
  printf("  %s returned %d\n", call, r);
  if (r != 1)
    sc->failed = true;
}

/*
 * Starts the scene's child, then runs the loop until it has closed. stdin
 * is /dev/null, stdout a pipe read by on_stdout_data(), stderr ours.
 * Returns false when the scene failed.
 */
static bool run_scene(uv_loop_t *loop, scene *sc, const char *file,
                      const char *const *args, bool detached) {
  cp_stdio stdio[3] = {
      {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_INHERIT},
  };
  cp_spawn_options options = {
      .stdio = stdio,
      .stdio_count = 3,
      .detached = detached,
  };
  cp_child *child;
  cp_stream *out;
  int r;

  printf("\n== %s\n", sc->title);
  fflush(stdout);
  sc->signal_ms = uv_now(loop);
  r = cp_spawn(loop, file, args, &options, &child);
  if (r < 0) {
    printf("  cp_spawn %s failed: %s\n", file, cp_strerror(r));
    return false;
  }

  out = cp_child_stdout(child);
  cp_stream_set_encoding(out, "utf8");
  cp_stream_on(out, CP_EVENT_DATA, on_stdout_data, sc);
  cp_child_on(child, CP_EVENT_SPAWN, on_child_spawn, sc);
  cp_child_on(child, CP_EVENT_ERROR, on_child_error, sc);
  cp_child_on(child, CP_EVENT_EXIT, on_child_exit, sc);
  cp_child_on(child, CP_EVENT_CLOSE, on_child_close, sc);

  uv_run(loop, UV_RUN_DEFAULT);
  fflush(stdout);
  return !sc->failed;
}

/* ------------------------------------------------------------------------
 * The scenes' own steps
 * ------------------------------------------------------------------------ */

/* 1. A signal by number. Also: a number that is no signal is rejected, and
 * the group functions need a detached child. */
static void kill_by_number(scene *sc, cp_child *child) {
  int r;

  r = cp_child_kill(child, 12345);
  printf("  cp_child_kill(child, 12345) returned %s\n", cp_err_name(r));
  r = cp_child_kill_group(child, SIGTERM);
  printf("  cp_child_kill_group(child, SIGTERM) returned %s: not detached\n",
         cp_err_name(r));

  check_sent(sc, child, "cp_child_kill(child, SIGTERM)",
             cp_child_kill(child, SIGTERM));
}

/* 2. A signal by name, spelled as Node spells it. As in Node, a number in
 * a string is not a name. */
static void kill_by_name(scene *sc, cp_child *child) {
  int r;

  r = cp_child_kill_name(child, "SIGFOO");
  printf("  cp_child_kill_name(child, \"SIGFOO\") returned %s\n",
         cp_err_name(r));
  r = cp_child_kill_name(child, "1");
  printf("  cp_child_kill_name(child, \"1\") returned %s\n", cp_err_name(r));

  check_sent(sc, child, "cp_child_kill_name(child, \"SIGHUP\")",
             cp_child_kill_name(child, "SIGHUP"));
}

/* 3 and 5. */
static void send_sigterm(scene *sc, cp_child *child) {
  check_sent(sc, child, "cp_child_kill(child, SIGTERM)",
             cp_child_kill(child, SIGTERM));
}

/* 4. SIGTERM now, SIGKILL 500 ms later unless the child has exited. */
static void terminate_with_grace(scene *sc, cp_child *child) {
  check_sent(sc, child, "cp_child_terminate(child, SIGTERM, 500, false)",
             cp_child_terminate(child, SIGTERM, 500, false));
}

/* 5. The shell and both of its sleeps are in the child's process group. */
static void kill_whole_group(scene *sc, cp_child *child) {
  printf("  process group %ld\n", (long)cp_child_pid(child));
  check_sent(sc, child, "cp_child_kill_group(child, SIGTERM)",
             cp_child_kill_group(child, SIGTERM));
}

/* 5. CLOSE needs end of file on stdout, which the two sleeps inherited:
 * had they survived, CLOSE would have waited 30 s for them. */
static void report_group_gone(scene *sc, cp_child *child) {
  printf("  CLOSE %llu ms after the signal: no process of the group holds "
         "stdout open any more\n",
         elapsed_ms(sc, child));
}

/* 6. The child has been reaped, so there is nothing to signal: 0, and the
 * killed flag stays false. */
static void kill_after_exit(scene *sc, cp_child *child) {
  int r = cp_child_kill(child, SIGTERM);

  printf("  after CLOSE, cp_child_kill(child, SIGTERM) returned %d, killed "
         "flag %s\n",
         r, cp_child_killed(child) ? "true" : "false");
  if (r != 0)
    sc->failed = true;
}

/* 7. The same numbers as the EXIT event's rusage, through the accessor. */
static void print_rusage(scene *sc, cp_child *child) {
  const cp_rusage *usage = cp_child_resource_usage(child);

  if (usage == NULL) {
    sc->failed = true;
    return;
  }
  printf("  user CPU %llu ms, system CPU %llu ms, peak RSS %llu KiB\n",
         (unsigned long long)(usage->user_cpu_time_us / 1000),
         (unsigned long long)(usage->system_cpu_time_us / 1000),
         (unsigned long long)usage->max_rss_kib);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  const char *file = argc > 1 ? argv[1] : "/usr/bin/cmake";
  const char *const sleep_args[] = {"30", NULL};
  const char *const trap_args[] = {
      "-c",
      "trap 'echo caught SIGTERM, cleaning up; exit 3' TERM; echo ready; "
      "while :; do sleep 0.1; done",
      NULL};
  /* A disposition set to ignore survives exec, so sleep ignores SIGTERM. */
  const char *const ignore_args[] = {
      "-c", "trap '' TERM; echo ready, ignoring SIGTERM; exec sleep 30", NULL};
  const char *const group_args[] = {
      "-c", "sleep 30 & sleep 30 & echo ready, two sleeps started; wait",
      NULL};
  const char *const hash_args[] = {file, NULL};
  scene scenes[] = {
      {.title = "1. kill by number: SIGTERM to `sleep 30`",
       .on_spawn = kill_by_number,
       .expected_signal = SIGTERM},
      {.title = "2. kill by name: \"SIGHUP\" to `sleep 30`",
       .on_spawn = kill_by_name,
       .expected_signal = SIGHUP},
      {.title = "3. a child that traps SIGTERM and exits with code 3",
       .on_ready = send_sigterm,
       .expected_code = 3},
      {.title = "4. a child that ignores SIGTERM: SIGKILL after 500 ms",
       .on_ready = terminate_with_grace,
       .expected_signal = SIGKILL},
      {.title = "5. a detached shell and its two sleeps, killed as a group",
       .on_ready = kill_whole_group,
       .on_close = report_group_gone,
       .expected_signal = SIGTERM},
      {.title = "6. kill after exit: `true`",
       .on_close = kill_after_exit},
      {.title = "7. resource usage of `sha256sum FILE`",
       .on_close = print_rusage},
  };
  uv_loop_t loop;
  bool ok = true;
  int r;

  r = uv_loop_init(&loop);
  if (r < 0) {
    fprintf(stderr, "signals: uv_loop_init failed: %s\n", uv_strerror(r));
    return 1;
  }

  ok &= run_scene(&loop, &scenes[0], "sleep", sleep_args, false);
  ok &= run_scene(&loop, &scenes[1], "sleep", sleep_args, false);
  ok &= run_scene(&loop, &scenes[2], "sh", trap_args, false);
  ok &= run_scene(&loop, &scenes[3], "sh", ignore_args, false);
  ok &= run_scene(&loop, &scenes[4], "sh", group_args, true);
  ok &= run_scene(&loop, &scenes[5], "true", NULL, false);
  ok &= run_scene(&loop, &scenes[6], "sha256sum", hash_args, false);

  r = uv_loop_close(&loop);
  if (r < 0) {
    fprintf(stderr, "signals: uv_loop_close failed: %s\n", uv_strerror(r));
    return 1;
  }
  return ok ? 0 : 1;
}
