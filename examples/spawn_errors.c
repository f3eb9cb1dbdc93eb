/*
 * spawn_errors: what a caller sees when a process cannot be started.
 *
 * cp_spawn() fails synchronously only for invalid arguments; then it starts
 * nothing and returns CP_ERR_INVALID_ARG_VALUE. A failure of the operating
 * system to start the process (ENOENT, EACCES, a bad cwd) makes cp_spawn()
 * return 0 and arrives on the next loop iteration as an ERROR event, with
 * syscall "spawn FILE" and path FILE, as in Node. No SPAWN or EXIT event
 * follows, the pid stays 0, and CLOSE comes last with exit_code set to the
 * negative error code.
 *
 * Node v20 emits an error event only for EACCES, EAGAIN, EMFILE, ENFILE and
 * ENOENT, and throws from spawn() for every other OS error (ENOTDIR for a
 * cwd that is a file, say). Here every OS failure is an event.
 *
 * The last case has no ERROR listener: the error goes to the handler set
 * with cp_set_unhandled_error_handler().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <childproc.h>
#include <uv.h>

typedef struct attempt {
  const char *title;
  const char *file;
  const char *cwd;       /* NULL: ours */
  bool listen_for_error; /* false: leave the error to the unhandled handler */
  int expected_error;    /* the code the ERROR event should carry */

  bool spawn_seen;
  bool exit_seen;
  int error_seen; /* the ERROR event's code, 0 before */
} attempt;

static bool unhandled_called;

static void on_spawn(cp_child *child, const cp_event *event, void *data) {
  attempt *a = data;

  (void)child;
  (void)event;
  a->spawn_seen = true;
}

static void on_exit_event(cp_child *child, const cp_event *event,
                          void *data) {
  attempt *a = data;

  (void)child;
  (void)event;
  a->exit_seen = true;
}

static void on_error(cp_child *child, const cp_event *event, void *data) {
  attempt *a = data;

  a->error_seen = event->error;
  printf("  ERROR %s: syscall \"%s\", path \"%s\", pid %ld\n",
         cp_err_name(event->error), event->syscall, event->path,
         (long)cp_child_pid(child));
}

static void on_close(cp_child *child, const cp_event *event, void *data) {
  attempt *a = data;

  printf("  CLOSE exit_code %d (%s); SPAWN %s, EXIT %s\n", event->exit_code,
         cp_err_name(event->exit_code),
         a->spawn_seen ? "emitted" : "not emitted",
         a->exit_seen ? "emitted" : "not emitted");
  cp_child_release(child);
}

/* Receives error events that reached no listener. object is the cp_child
 * or cp_stream that emitted the event. */
static void on_unhandled_error(const void *object, const cp_event *err) {
  (void)object;
  unhandled_called = true;
  printf("  unhandled-error handler: %s failed: %s\n", err->syscall,
         cp_err_name(err->error));
}

/* Spawns a.file with no arguments and runs the loop until it has closed.
 * Returns false when the outcome differs from what the attempt expects. */
static bool run_attempt(uv_loop_t *loop, attempt *a) {
  cp_spawn_options options = {.cwd = a->cwd};
  cp_child *child;
  int r;

  printf("\n== %s\n", a->title);
  r = cp_spawn(loop, a->file, NULL, &options, &child);
  printf("  cp_spawn(\"%s\"%s%s) returned %d\n", a->file,
         a->cwd != NULL ? ", cwd " : "", a->cwd != NULL ? a->cwd : "", r);
  if (r < 0)
    return false;

  if (a->listen_for_error)
    cp_child_on(child, CP_EVENT_ERROR, on_error, a);
  cp_child_on(child, CP_EVENT_SPAWN, on_spawn, a);
  cp_child_on(child, CP_EVENT_EXIT, on_exit_event, a);
  cp_child_on(child, CP_EVENT_CLOSE, on_close, a);

  uv_run(loop, UV_RUN_DEFAULT);
  fflush(stdout);

  if (a->listen_for_error && a->error_seen != a->expected_error)
    return false;
  return !a->spawn_seen && !a->exit_seen;
}

/* An invalid argument: nothing starts, no event follows, child is NULL. */
static bool try_empty_file(uv_loop_t *loop) {
  cp_child *child;
  int r;

  printf("== an empty file name: rejected synchronously\n");
  r = cp_spawn(loop, "", NULL, NULL, &child);
  printf("  cp_spawn(\"\") returned %s, child %s\n", cp_err_name(r),
         child == NULL ? "NULL" : "set");
  return r == CP_ERR_INVALID_ARG_VALUE && child == NULL;
}

int main(void) {
  attempt attempts[] = {
      {.title = "a program that is not installed",
       .file = "childproc-no-such-program",
       .listen_for_error = true,
       .expected_error = -ENOENT},
      {.title = "a file without execute permission",
       .file = "/etc/passwd",
       .listen_for_error = true,
       .expected_error = -EACCES},
      {.title = "a cwd that does not exist (the error names the program, "
                "as in Node)",
       .file = "ls",
       .cwd = "/childproc-no-such-dir",
       .listen_for_error = true,
       .expected_error = -ENOENT},
      {.title = "a cwd that is a file (Node throws here)",
       .file = "ls",
       .cwd = "/etc/passwd",
       .listen_for_error = true,
       .expected_error = -ENOTDIR},
      {.title = "no ERROR listener",
       .file = "childproc-no-such-program",
       .listen_for_error = false},
  };
  uv_loop_t loop;
  bool ok;
  int r;

  r = uv_loop_init(&loop);
  if (r < 0) {
    fprintf(stderr, "spawn_errors: uv_loop_init failed: %s\n",
            uv_strerror(r));
    return 1;
  }
  cp_set_unhandled_error_handler(on_unhandled_error);

  ok = try_empty_file(&loop);
  for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
    ok &= run_attempt(&loop, &attempts[i]);
  ok &= unhandled_called;

  /* Back to the default handler, which prints one line to stderr. */
  cp_set_unhandled_error_handler(NULL);

  r = uv_loop_close(&loop);
  if (r < 0) {
    fprintf(stderr, "spawn_errors: uv_loop_close failed: %s\n",
            uv_strerror(r));
    return 1;
  }
  return ok ? 0 : 1;
}
