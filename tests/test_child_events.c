/*
 * cp_spawn() and the child's events: exit codes, deaths by signal, event
 * order, spawn errors, invalid arguments, listeners, resource usage and the
 * SIGCHLD fallback. Every case starts real processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "child-internal.h"
#include "childproc.h"
#include "test_util.h"

/* Milliseconds a loop may run before the case fails. */
enum { GUARD_MS = 10000 };

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* Runs one child to its CLOSE and checks how it ended, in the events and
 * in the accessors. */
static void check_child_ends(uv_loop_t *loop, const char *file,
                             const char *const *args, int exit_code,
                             int signum) {
  cp_test_record record;
  cp_child *child = cp_test_spawn(loop, file, args, NULL, &record);

  cp_test_loop_run(loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, exit_code);
  assert_int_equal(record.exit_signal, signum);
  assert_int_equal(record.close_exit_code, exit_code);
  assert_int_equal(record.close_signal, signum);
  assert_int_equal(cp_child_exit_code(child), exit_code);
  assert_int_equal(cp_child_signal_code(child), signum);
  assert_false(cp_child_killed(child));

  cp_child_release(child);
  cp_test_record_free(&record);
}

static void spawn_reports_every_exit_code(void **state) {
  const char *exit_helper = cp_test_helper_path("cp-exit");
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  for (int status = 0; status <= 255; status++) {
    char status_text[16];
    const char *const args[] = {status_text, NULL};

    snprintf(status_text, sizeof(status_text), "%d", status);
    check_child_ends(&loop, exit_helper, args, status, 0);
    cp_test_loop_run(&loop, GUARD_MS);
  }

  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Runs cp-exit -s SIGNUM and checks the death by that signal. */
static void check_death_by_signal(uv_loop_t *loop, int signum) {
  char signum_text[16];
  const char *const args[] = {"-s", signum_text, NULL};

  snprintf(signum_text, sizeof(signum_text), "%d", signum);
  check_child_ends(loop, cp_test_helper_path("cp-exit"), args, -1, signum);
}

/* SIGSEGV comes from the shell rather than cp-exit, because a cp-exit
 * built with AddressSanitizer would catch it in ASan's own handler. */
static void check_death_by_sigsegv(uv_loop_t *loop) {
  const char *const args[] = {"-c", "kill -SEGV $$", NULL};

  check_child_ends(loop, "/bin/sh", args, -1, SIGSEGV);
}

static void spawn_reports_death_by_signal(void **state) {
  struct rlimit saved_core;
  uv_loop_t loop;

  (void)state;
  /* SIGSEGV dumps core by default, and a test must leave no core file. */
  assert_int_equal(getrlimit(RLIMIT_CORE, &saved_core), 0);
  assert_int_equal(
      setrlimit(RLIMIT_CORE, &(struct rlimit){0, saved_core.rlim_max}), 0);
  assert_int_equal(uv_loop_init(&loop), 0);

  check_death_by_signal(&loop, SIGTERM);
  assert_string_equal(cp_signal_name(SIGTERM), "SIGTERM");
  check_death_by_signal(&loop, SIGKILL);
  assert_string_equal(cp_signal_name(SIGKILL), "SIGKILL");
  check_death_by_sigsegv(&loop);
  assert_string_equal(cp_signal_name(SIGSEGV), "SIGSEGV");

  cp_test_loop_finish(&loop);
  assert_int_equal(setrlimit(RLIMIT_CORE, &saved_core), 0);
  assert_no_child_left();
}

static void spawn_reports_death_by_realtime_signal(void **state) {
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  check_death_by_signal(&loop, SIGRTMIN);
  assert_string_equal(cp_signal_name(SIGRTMIN), "SIGRTMIN");

  check_death_by_signal(&loop, SIGRTMIN + 3);
  assert_string_equal(cp_signal_name(SIGRTMIN + 3), "SIGRTMIN+3");
  assert_int_equal(cp_signal_from_name("SIGRTMIN+3"), SIGRTMIN + 3);

  check_death_by_signal(&loop, SIGRTMAX);
  assert_string_equal(cp_signal_name(SIGRTMAX), "SIGRTMAX");

  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* A child that writes 1 MiB and exits at once: its last bytes are still in
 * the pipe when it is reaped. */
static void spawn_close_follows_exit_and_all_output(void **state) {
  enum { OUTPUT_BYTES = 1024 * 1024 };
  const char *const args[] = {"-c", "head -c 1048576 /dev/zero", NULL};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  cp_test_run_child(&loop, "/bin/sh", args, NULL, &record, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.out_len_at_spawn, 0);
  assert_int_equal(record.out.len, OUTPUT_BYTES);
  assert_int_equal(record.out_len_at_close, OUTPUT_BYTES);
  assert_true(record.out_ended_at_close);
  assert_true(record.err_ended);
  assert_int_equal(record.exit_code, 0);
  assert_int_equal(record.close_exit_code, 0);

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

static void resume_stdout(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  *(int *)data = cp_stream_resume(cp_child_stdout(child));
}

/* Output still in the pipe at EXIT: stdout is paused until then, and the
 * child writes less than a pipe holds, so it exits without waiting. */
static void spawn_close_waits_for_paused_output(void **state) {
  enum { OUTPUT_BYTES = 30000 };
  const char *const args[] = {"-c", "head -c 30000 /dev/zero", NULL};
  int resume_result = -12345;
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/sh", args, NULL, &record);
  assert_int_equal(cp_stream_pause(cp_child_stdout(child)), 0);
  assert_int_equal(
      cp_child_on(child, CP_EVENT_EXIT, resume_stdout, &resume_result), 0);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(resume_result, 0);
  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.out_len_at_exit, 0);
  assert_int_equal(record.out.len, OUTPUT_BYTES);
  assert_int_equal(record.out_len_at_close, OUTPUT_BYTES);
  assert_true(record.out_ended_at_close);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* Node's flushStdio: output without a DATA listener is discarded after the
 * exit, so CLOSE still comes. */
static void spawn_close_follows_unread_output(void **state) {
  const char *const args[] = {"-c", "head -c 20000 /dev/zero", NULL};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, "/bin/sh", args, NULL, &child), 0);

  cp_test_record_init(&record);
  cp_test_record_child_events(child, &record);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_int_equal(record.close_exit_code, 0);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* Checks a spawn that fails after cp_spawn() returned 0: ERROR then CLOSE
 * with the error as exit code, no SPAWN and no EXIT, pid 0. */
static void check_spawn_error(const char *file, const cp_spawn_options *options,
                              int error) {
  char syscall[4200];
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, file, NULL, options, &record);
  assert_int_equal(cp_child_pid(child), 0);

  cp_test_loop_run(&loop, GUARD_MS);

  snprintf(syscall, sizeof(syscall), "spawn %s", file);
  assert_string_equal(record.events, "EC");
  assert_string_equal(cp_err_name(record.error), cp_err_name(error));
  assert_int_equal(record.error, error);
  assert_string_equal(record.syscall, syscall);
  assert_string_equal(record.path, file);
  assert_int_equal(record.close_exit_code, error);
  assert_int_equal(record.close_signal, 0);
  assert_int_equal(cp_child_pid(child), 0);
  assert_int_equal(cp_child_exit_code(child), error);
  assert_null(cp_child_resource_usage(child));

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Marks the open descriptors below FD_SET_SIZE. */
enum { FD_SET_SIZE = 1024 };

static void list_open_fds(bool open_fds[FD_SET_SIZE]) {
  memset(open_fds, 0, FD_SET_SIZE * sizeof(bool));
  for (int fd = 0; fd < FD_SET_SIZE; fd++)
    open_fds[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* The soft descriptor limit that leaves exactly `free_count` numbers free. */
static rlim_t limit_leaving_free(const bool open_fds[FD_SET_SIZE],
                                 int free_count) {
  int fd = 0;

  for (; fd < FD_SET_SIZE && free_count > 0; fd++) {
    if (!open_fds[fd])
      free_count--;
  }
  while (fd < FD_SET_SIZE && open_fds[fd])
    fd++;
  return (rlim_t)fd;
}

/* Room for stdin's pipe but not stdout's: the spawn fails with EMFILE, as
 * an asynchronous error, and no descriptor of the parent is touched. */
static void spawn_emfile_in_pipe_setup_keeps_parent_fds(void **state) {
  bool before[FD_SET_SIZE];
  bool with_loop[FD_SET_SIZE];
  bool after[FD_SET_SIZE];
  struct rlimit saved;
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  /* The first loop of a process opens libuv's signal pipe for good. */
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  list_open_fds(before);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
  list_open_fds(with_loop);

  struct rlimit low = {.rlim_cur = limit_leaving_free(with_loop, 2),
                       .rlim_max = saved.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  child = cp_test_spawn(&loop, "/bin/true", NULL, NULL, &record);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(record.events, "EC");
  assert_int_equal(record.error, -EMFILE);
  assert_int_equal(record.close_exit_code, -EMFILE);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  list_open_fds(after);
  for (int fd = 0; fd < FD_SET_SIZE; fd++) {
    if (after[fd] != before[fd])
      fprintf(stderr, "descriptor %d: open before %d, after %d\n", fd,
              before[fd], after[fd]);
    assert_int_equal(after[fd], before[fd]);
  }
  assert_no_child_left();
}

static void spawn_missing_program_emits_enoent(void **state) {
  (void)state;
  check_spawn_error("cp-no-such-program", NULL, -ENOENT);
}

static void spawn_missing_absolute_path_emits_enoent(void **state) {
  (void)state;
  check_spawn_error("/nonexistent-cp-dir/cp-no-such-program", NULL, -ENOENT);
}

/* A temporary directory with one file that has no execute bit, which even
 * root cannot run. */
typedef struct temp_file {
  char dir[64];
  char path[128];
} temp_file;

static void make_unexecutable_file(temp_file *file) {
  int fd;

  snprintf(file->dir, sizeof(file->dir), "/tmp/cp-child-events-XXXXXX");
  assert_non_null(mkdtemp(file->dir));
  snprintf(file->path, sizeof(file->path), "%s/script", file->dir);

  fd = open(file->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
  assert_int_equal(close(fd), 0);
}

static void remove_temp_file(temp_file *file) {
  assert_int_equal(unlink(file->path), 0);
  assert_int_equal(rmdir(file->dir), 0);
}

static void spawn_unexecutable_file_emits_eacces(void **state) {
  temp_file file;

  (void)state;
  make_unexecutable_file(&file);
  check_spawn_error(file.path, NULL, -EACCES);
  remove_temp_file(&file);
}

static void spawn_missing_cwd_emits_enoent(void **state) {
  cp_spawn_options options = {.cwd = "/nonexistent-cp-dir"};

  (void)state;
  check_spawn_error("/bin/true", &options, -ENOENT);
}

static void spawn_file_as_cwd_emits_enotdir(void **state) {
  temp_file file;
  cp_spawn_options options = {0};

  (void)state;
  make_unexecutable_file(&file);
  options.cwd = file.path;
  check_spawn_error("/bin/true", &options, -ENOTDIR);
  remove_temp_file(&file);
}

/* Checks that cp_spawn() rejects the call at once and starts nothing. */
static void check_invalid_spawn(const char *file,
                                const cp_spawn_options *options,
                                const char *what) {
  static char sentinel;
  cp_child *child = (cp_child *)&sentinel;
  size_t fds_before;
  uv_loop_t loop;
  int r;

  /* Counted after uv_loop_init(), because libuv's first loop opens a
   * process-wide pipe for signals that stays open. */
  assert_int_equal(uv_loop_init(&loop), 0);
  fds_before = cp_test_count_fds();
  r = cp_spawn(&loop, file, NULL, options, &child);
  if (r != CP_ERR_INVALID_ARG_VALUE)
    fail_msg("%s: cp_spawn returned %s, expected ERR_INVALID_ARG_VALUE", what,
             cp_err_name(r));
  if (child != NULL)
    fail_msg("%s: child_out was not set to NULL", what);

  /* Nothing was started, so the loop has no handle to close. */
  assert_int_equal(cp_test_count_fds(), fds_before);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_no_child_left();
}

static void spawn_rejects_invalid_arguments(void **state) {
  static const char *const env_without_equals[] = {"GOOD=1", "BAD", NULL};
  const cp_stdio unknown_kind[] = {{.kind = (cp_stdio_kind)99}};
  const cp_stdio negative_fd[] = {
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_FD, .fd = -1},
  };

  (void)state;
  check_invalid_spawn(NULL, NULL, "NULL file");
  check_invalid_spawn("", NULL, "empty file");
  check_invalid_spawn("/bin/true",
                      &(cp_spawn_options){.env = env_without_equals},
                      "env entry without '='");
  check_invalid_spawn(
      "/bin/true",
      &(cp_spawn_options){.stdio = unknown_kind, .stdio_count = 1},
      "stdio kind out of range");
  check_invalid_spawn(
      "/bin/true", &(cp_spawn_options){.stdio = negative_fd, .stdio_count = 2},
      "CP_STDIO_FD with fd -1");
  check_invalid_spawn("/bin/true", &(cp_spawn_options){.kill_group = true},
                      "kill_group without detached");
  check_invalid_spawn("/bin/true", &(cp_spawn_options){.kill_signal = -1},
                      "negative kill_signal");
  check_invalid_spawn("/bin/true", &(cp_spawn_options){.kill_signal = 1000},
                      "kill_signal 1000");
}

/* Listeners log their calls as letters. */
typedef struct call_log {
  char calls[16];
  size_t count;
  cp_child_listener remove_fn; /* removed by log_a_and_remove */
  void *remove_data;
  int remove_result;
} call_log;

static void log_call(call_log *log, char letter) {
  if (log->count + 1 < sizeof(log->calls)) {
    log->calls[log->count++] = letter;
    log->calls[log->count] = '\0';
  }
}

static void log_a(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)event;
  log_call(data, 'a');
}

static void log_b(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)event;
  log_call(data, 'b');
}

static void log_c(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)event;
  log_call(data, 'c');
}

static void log_a_and_remove(cp_child *child, const cp_event *event,
                             void *data) {
  call_log *log = data;

  (void)event;
  log_call(log, 'a');
  log->remove_result =
      cp_child_off(child, CP_EVENT_EXIT, log->remove_fn, log->remove_data);
}

/* Spawns /bin/true, lets add_listeners register on it, runs it to CLOSE. */
static void run_true_with(void (*add_listeners)(cp_child *, call_log *),
                          call_log *log) {
  cp_child *child;
  uv_loop_t loop;

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, "/bin/true", NULL, NULL, &child), 0);
  add_listeners(child, log);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(cp_child_exit_code(child), 0);

  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

static void add_three_in_order(cp_child *child, call_log *log) {
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_a, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_b, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_c, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, log_a, log), 0);
}

static void child_listeners_run_in_order(void **state) {
  call_log log = {0};

  (void)state;
  run_true_with(add_three_in_order, &log);
  assert_string_equal(log.calls, "abca");
}

/* After EXIT, the once listener is gone and the plain one is still there:
 * checked from CLOSE, which comes after EXIT. */
static void check_once_removed(cp_child *child, const cp_event *event,
                               void *data) {
  call_log *log = data;

  (void)event;
  log_call(log, 'c');
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_a, log), -ENOENT);
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_b, log), 0);
}

static void add_once_and_plain(cp_child *child, call_log *log) {
  assert_int_equal(cp_child_once(child, CP_EVENT_EXIT, log_a, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_b, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, check_once_removed, log),
                   0);
}

static void child_once_listener_runs_once(void **state) {
  call_log log = {0};

  (void)state;
  run_true_with(add_once_and_plain, &log);
  assert_string_equal(log.calls, "abc");
}

static void add_remover_first(cp_child *child, call_log *log) {
  log->remove_fn = log_b;
  log->remove_data = log;
  log->remove_result = 1;
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_a_and_remove, log),
                   0);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_b, log), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_c, log), 0);
}

static void child_listener_removed_during_emit_skipped(void **state) {
  call_log log = {0};

  (void)state;
  run_true_with(add_remover_first, &log);
  assert_int_equal(log.remove_result, 0);
  assert_string_equal(log.calls, "ac");
}

static void child_off_missing_listener_returns_enoent(void **state) {
  call_log log = {0};
  call_log other = {0};
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, "/bin/true", NULL, NULL, &child), 0);

  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_a, &log), -ENOENT);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, log_a, &log), 0);
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_a, &other), -ENOENT);
  assert_int_equal(cp_child_off(child, CP_EVENT_CLOSE, log_a, &log), -ENOENT);
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_b, &log), -ENOENT);
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_a, &log), 0);
  assert_int_equal(cp_child_off(child, CP_EVENT_EXIT, log_a, &log), -ENOENT);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(log.calls, "");

  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

static void child_on_rejects_invalid_listener(void **state) {
  call_log log = {0};
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, "/bin/true", NULL, NULL, &child), 0);

  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, NULL, &log),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_child_on(child, CP_EVENT_DATA, log_a, &log),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_child_once(child, CP_EVENT_DRAIN, log_a, &log),
                   CP_ERR_INVALID_ARG_VALUE);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(log.calls, "");

  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

/* What the unhandled-error handler received. A handler gets no data
 * pointer, so this is a file-scope variable. */
static struct {
  int calls;
  const void *object;
  int error;
  char syscall[256];
} unhandled;

static void on_unhandled_error(const void *object, const cp_event *err) {
  unhandled.calls++;
  unhandled.object = object;
  unhandled.error = err->error;
  snprintf(unhandled.syscall, sizeof(unhandled.syscall), "%s",
           err->syscall != NULL ? err->syscall : "(null)");
}

static void child_unhandled_error_reaches_handler(void **state) {
  const char *missing = "/nonexistent-cp-dir/cp-no-such-program";
  call_log log = {0};
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  memset(&unhandled, 0, sizeof(unhandled));
  cp_set_unhandled_error_handler(on_unhandled_error);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, missing, NULL, NULL, &child), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, log_a, &log), 0);

  cp_test_loop_run(&loop, GUARD_MS);

  cp_set_unhandled_error_handler(NULL);
  assert_int_equal(unhandled.calls, 1);
  assert_ptr_equal(unhandled.object, child);
  assert_int_equal(unhandled.error, -ENOENT);
  assert_string_equal(unhandled.syscall,
                      "spawn /nonexistent-cp-dir/cp-no-such-program");
  assert_string_equal(log.calls, "a");

  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

static void check_no_usage_yet(cp_child *child, const cp_event *event,
                               void *data) {
  (void)event;
  *(bool *)data = cp_child_resource_usage(child) == NULL;
}

static void child_exit_reports_resource_usage(void **state) {
  const char *const args[] = {"100", NULL};
  bool no_usage_at_spawn = false;
  cp_test_record record;
  const cp_rusage *usage;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, cp_test_helper_path("cp-spin"), args, NULL,
                        &record);
  assert_null(cp_child_resource_usage(child));
  assert_int_equal(
      cp_child_on(child, CP_EVENT_SPAWN, check_no_usage_yet, &no_usage_at_spawn),
      0);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_true(no_usage_at_spawn);
  assert_true(record.rusage.user_cpu_time_us > 0);
  assert_true(record.rusage.max_rss_kib > 0);

  usage = cp_child_resource_usage(child);
  assert_non_null(usage);
  assert_int_equal(usage->user_cpu_time_us, record.rusage.user_cpu_time_us);
  assert_int_equal(usage->system_cpu_time_us,
                   record.rusage.system_cpu_time_us);
  assert_int_equal(usage->max_rss_kib, record.rusage.max_rss_kib);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* The SIGCHLD fallback, taken when pidfds are missing, forced here. */
static cp_child *spawn_with_sigchld(uv_loop_t *loop, const char *file,
                                    const char *const *args,
                                    cp_test_record *record) {
  cp_child *child = cp_test_spawn(loop, file, args, NULL, record);

  assert_true(child->use_sigchld);
  assert_int_equal(child->pidfd, -1);
  return child;
}

static void sigchld_fallback_reports_exit_and_signal(void **state) {
  const char *const slow_args[] = {"-c", "sleep 0.2; exit 42", NULL};
  const char *const signal_args[] = {"-s", "9", NULL};
  const char *const other_args[] = {"7", NULL};
  const char *exit_helper = cp_test_helper_path("cp-exit");
  cp_test_record records[3];
  cp_child *children[3];
  uv_loop_t loop;

  (void)state;
  cp__force_sigchld = true;
  assert_int_equal(uv_loop_init(&loop), 0);

  /* Three children at once: each SIGCHLD wakes every watcher, and each
   * must reap only its own child. The first one started ends last, so a
   * watcher that reaped whichever child ended would take another's exit. */
  children[0] = spawn_with_sigchld(&loop, "/bin/sh", slow_args, &records[0]);
  children[1] =
      spawn_with_sigchld(&loop, exit_helper, signal_args, &records[1]);
  children[2] = spawn_with_sigchld(&loop, exit_helper, other_args, &records[2]);

  cp_test_loop_run(&loop, GUARD_MS);
  cp__force_sigchld = false;

  assert_string_equal(records[0].events, "SXC");
  assert_int_equal(records[0].exit_code, 42);
  assert_int_equal(records[0].close_exit_code, 42);
  assert_string_equal(records[1].events, "SXC");
  assert_int_equal(records[1].exit_code, -1);
  assert_int_equal(records[1].exit_signal, SIGKILL);
  assert_int_equal(records[1].close_signal, SIGKILL);
  assert_string_equal(records[2].events, "SXC");
  assert_int_equal(records[2].exit_code, 7);
  assert_true(records[0].rusage.max_rss_kib > 0);

  for (size_t i = 0; i < 3; i++) {
    cp_child_release(children[i]);
    cp_test_record_free(&records[i]);
  }
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* The timeout option's kill timer with the SIGCHLD watch: the timer ends
 * the child and the fallback reaps it. */
static void sigchld_fallback_timeout_kills(void **state) {
  const char *const args[] = {"30", NULL};
  cp_spawn_options options = {.timeout = 100};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  cp__force_sigchld = true;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "sleep", args, &options, &record);
  assert_true(child->use_sigchld);

  cp_test_loop_run(&loop, GUARD_MS);
  cp__force_sigchld = false;

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_signal, SIGTERM);
  assert_int_equal(record.close_signal, SIGTERM);
  assert_true(cp_child_killed(child));

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void kill_on_spawn(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  *(int *)data = cp_child_kill(child, SIGTERM);
}

static void sigchld_fallback_kill_delivers(void **state) {
  const char *const args[] = {"30", NULL};
  int kill_result = -1;
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  cp__force_sigchld = true;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_with_sigchld(&loop, "sleep", args, &record);
  assert_int_equal(cp_child_on(child, CP_EVENT_SPAWN, kill_on_spawn,
                               &kill_result),
                   0);

  cp_test_loop_run(&loop, GUARD_MS);
  cp__force_sigchld = false;

  assert_int_equal(kill_result, 1);
  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, -1);
  assert_int_equal(record.exit_signal, SIGTERM);
  assert_true(cp_child_killed(child));
  /* Reaped: a second kill sends nothing. */
  assert_int_equal(cp_child_kill(child, SIGTERM), 0);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spawn_reports_every_exit_code),
      cmocka_unit_test(spawn_reports_death_by_signal),
      cmocka_unit_test(spawn_reports_death_by_realtime_signal),
      cmocka_unit_test(spawn_close_follows_exit_and_all_output),
      cmocka_unit_test(spawn_close_waits_for_paused_output),
      cmocka_unit_test(spawn_close_follows_unread_output),
      cmocka_unit_test(spawn_missing_program_emits_enoent),
      cmocka_unit_test(spawn_emfile_in_pipe_setup_keeps_parent_fds),
      cmocka_unit_test(spawn_missing_absolute_path_emits_enoent),
      cmocka_unit_test(spawn_unexecutable_file_emits_eacces),
      cmocka_unit_test(spawn_missing_cwd_emits_enoent),
      cmocka_unit_test(spawn_file_as_cwd_emits_enotdir),
      cmocka_unit_test(spawn_rejects_invalid_arguments),
      cmocka_unit_test(child_listeners_run_in_order),
      cmocka_unit_test(child_once_listener_runs_once),
      cmocka_unit_test(child_listener_removed_during_emit_skipped),
      cmocka_unit_test(child_off_missing_listener_returns_enoent),
      cmocka_unit_test(child_on_rejects_invalid_listener),
      cmocka_unit_test(child_unhandled_error_reaches_handler),
      cmocka_unit_test(child_exit_reports_resource_usage),
      cmocka_unit_test(sigchld_fallback_reports_exit_and_signal),
      cmocka_unit_test(sigchld_fallback_kill_delivers),
      cmocka_unit_test(sigchld_fallback_timeout_kills),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
