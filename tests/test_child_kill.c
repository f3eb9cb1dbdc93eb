/*
 * Signals to a child: cp_child_kill() and cp_child_kill_name(), the timeout
 * option with kill_signal and kill_grace, cp_child_terminate() and
 * cp_child_kill_group(). Every case starts real processes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

/* Milliseconds a loop may run before the case fails. */
enum { GUARD_MS = 10000 };

static const char *const sleep_args[] = {"30", NULL};

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* Checks that the child was ended by signum and that killed is set. */
static void assert_killed_by(const cp_test_record *record, cp_child *child,
                             int signum) {
  assert_string_equal(record->events, "SXC");
  assert_int_equal(record->exit_code, -1);
  assert_string_equal(cp_signal_name(record->exit_signal),
                      cp_signal_name(signum));
  assert_int_equal(record->exit_signal, signum);
  assert_int_equal(record->close_exit_code, -1);
  assert_int_equal(record->close_signal, signum);
  assert_true(record->killed_at_exit);
  assert_int_equal(cp_child_exit_code(child), -1);
  assert_int_equal(cp_child_signal_code(child), signum);
  assert_true(cp_child_killed(child));
}

/* A call made from the SPAWN listener, and what it returned. */
typedef struct spawn_call {
  int (*call)(cp_child *child, struct spawn_call *self);
  const char *signal_name;
  int signum;
  int result;
} spawn_call;

static void run_spawn_call(cp_child *child, const cp_event *event,
                           void *data) {
  spawn_call *call = data;

  (void)event;
  call->result = call->call(child, call);
}

static int call_kill_name(cp_child *child, spawn_call *self) {
  return cp_child_kill_name(child, self->signal_name);
}

/* Runs `sleep 30` with call made from its SPAWN listener, to CLOSE. */
static cp_child *run_sleep_with_call(uv_loop_t *loop, spawn_call *call,
                                     cp_test_record *record) {
  cp_child *child = cp_test_spawn(loop, "sleep", sleep_args, NULL, record);

  call->result = -12345;
  assert_int_equal(cp_child_on(child, CP_EVENT_SPAWN, run_spawn_call, call), 0);
  cp_test_loop_run(loop, GUARD_MS);
  return child;
}

static void kill_without_name_sends_sigterm(void **state) {
  spawn_call call = {.call = call_kill_name, .signal_name = NULL};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = run_sleep_with_call(&loop, &call, &record);

  assert_int_equal(call.result, 1);
  assert_killed_by(&record, child, SIGTERM);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void kill_by_name_sends_that_signal(void **state) {
  static const char *const names[] = {"SIGUSR2", "SIGINT", "SIGRTMIN+3",
                                      "SIGKILL"};
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    spawn_call call = {.call = call_kill_name, .signal_name = names[i]};
    cp_test_record record;
    cp_child *child = run_sleep_with_call(&loop, &call, &record);

    assert_int_equal(call.result, 1);
    assert_killed_by(&record, child, cp_signal_from_name(names[i]));

    cp_child_release(child);
    cp_test_record_free(&record);
    cp_test_loop_run(&loop, GUARD_MS);
  }

  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Rejected signals leave the child running and killed unset. SIGKILL then
 * ends it. */
static int call_unknown_then_sigkill(cp_child *child, spawn_call *self) {
  static const char *const unknown_names[] = {"SIGFOO", "15", "SIG TERM",
                                              "TERM", ""};

  (void)self;
  for (size_t i = 0; i < sizeof(unknown_names) / sizeof(unknown_names[0]);
       i++)
    assert_int_equal(cp_child_kill_name(child, unknown_names[i]),
                     CP_ERR_UNKNOWN_SIGNAL);
  assert_int_equal(cp_child_kill(child, -1), CP_ERR_UNKNOWN_SIGNAL);
  assert_int_equal(cp_child_kill(child, 1000), CP_ERR_UNKNOWN_SIGNAL);
  assert_false(cp_child_killed(child));

  /* Signal 0 only checks that the process exists. */
  assert_int_equal(cp_child_kill(child, 0), 1);
  return cp_child_kill(child, SIGKILL);
}

static void kill_unknown_signal_returns_error(void **state) {
  spawn_call call = {.call = call_unknown_then_sigkill};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = run_sleep_with_call(&loop, &call, &record);

  assert_int_equal(call.result, 1);
  assert_killed_by(&record, child, SIGKILL);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Results of kill calls made after the child exited. */
typedef struct late_kills {
  int in_exit;
  int in_close;
} late_kills;

static void kill_in_exit(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  ((late_kills *)data)->in_exit = cp_child_kill(child, SIGTERM);
}

static void kill_in_close(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  ((late_kills *)data)->in_close = cp_child_kill_name(child, "SIGKILL");
}

static void kill_after_exit_returns_zero(void **state) {
  late_kills kills = {-12345, -12345};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/true", NULL, NULL, &record);
  assert_int_equal(cp_child_on(child, CP_EVENT_EXIT, kill_in_exit, &kills), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, kill_in_close, &kills),
                   0);

  cp_test_loop_run(&loop, GUARD_MS);

  /* No signal went anywhere: no error event, killed unset. */
  assert_int_equal(kills.in_exit, 0);
  assert_int_equal(kills.in_close, 0);
  assert_int_equal(cp_child_kill(child, SIGTERM), 0);
  assert_int_equal(cp_child_kill(child, 0), 0);
  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_false(record.killed_at_exit);
  assert_false(cp_child_killed(child));

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void kill_before_spawn_event_delivers(void **state) {
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "sleep", sleep_args, NULL, &record);

  assert_string_equal(record.events, "");
  assert_false(cp_child_killed(child));
  assert_int_equal(cp_child_kill(child, SIGTERM), 1);
  assert_true(cp_child_killed(child));

  cp_test_loop_run(&loop, GUARD_MS);
  assert_killed_by(&record, child, SIGTERM);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void kill_unstarted_child_returns_zero(void **state) {
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "cp-no-such-program", NULL, NULL, &record);

  assert_int_equal(cp_child_kill(child, SIGTERM), 0);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(cp_child_kill(child, SIGTERM), 0);

  /* The only error is the spawn's own, so the kills added none. */
  assert_string_equal(record.events, "EC");
  assert_int_equal(record.error, -ENOENT);
  assert_false(cp_child_killed(child));

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* Runs file with options to CLOSE and checks the death by signum. */
static void check_timeout_kill(const char *file, const char *const *args,
                               const cp_spawn_options *options, int signum) {
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, file, args, options, &record);

  cp_test_loop_run(&loop, GUARD_MS);
  if (record.exit_signal != signum)
    fail_msg("expected death by %s, got exit code %d, signal %s; stdout "
             "\"%s\"",
             cp_signal_name(signum), record.exit_code,
             record.exit_signal != 0 ? cp_signal_name(record.exit_signal)
                                     : "none",
             record.out.bytes != NULL ? record.out.bytes : "");
  assert_killed_by(&record, child, signum);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void timeout_sends_sigterm(void **state) {
  cp_spawn_options options = {.timeout = 200};

  (void)state;
  check_timeout_kill("sleep", sleep_args, &options, SIGTERM);
}

static void timeout_sends_kill_signal(void **state) {
  cp_spawn_options options = {.timeout = 200, .kill_signal = SIGUSR1};

  (void)state;
  check_timeout_kill("sleep", sleep_args, &options, SIGUSR1);
}

/* cp-ignore-term ignores the timeout's SIGTERM, so only the SIGKILL after
 * the grace ends it. The timeout leaves the helper far more time than it
 * needs to set SIG_IGN, because a SIGTERM that arrives first kills it. */
static void timeout_grace_escalates_to_sigkill(void **state) {
  cp_spawn_options options = {.timeout = 1000, .kill_grace = 200};

  (void)state;
  check_timeout_kill(cp_test_helper_path("cp-ignore-term"), NULL, &options,
                     SIGKILL);
}

/* A child that exits before its timeout is not signalled, and the timer
 * does not keep the loop running: the guard is shorter than the timeout. */
static void timeout_not_reached_sends_nothing(void **state) {
  cp_spawn_options options = {.timeout = 60000, .kill_grace = 60000};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  cp_test_run_child(&loop, "/bin/true", NULL, &options, &record, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_false(record.killed_at_exit);

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Calls action once, with the first line the child wrote to stdout. */
typedef struct line_action {
  char line[128];
  size_t len;
  bool done;
  int (*action)(cp_child *child, struct line_action *self);
  int result;
  uint64_t grace_ms;
  long pid; /* parsed from the line by actions that expect a pid */
} line_action;

static void on_stdout_line(cp_stream *stream, const cp_event *event,
                           void *data) {
  line_action *self = data;

  for (size_t i = 0; i < event->len && !self->done; i++) {
    if (event->data[i] == '\n') {
      self->done = true;
      self->result = self->action(cp_stream_child(stream), self);
    } else if (self->len + 1 < sizeof(self->line)) {
      self->line[self->len++] = event->data[i];
      self->line[self->len] = '\0';
    }
  }
}

static void watch_first_line(cp_child *child, line_action *action) {
  action->result = -12345;
  assert_int_equal(cp_stream_on(cp_child_stdout(child), CP_EVENT_DATA,
                                on_stdout_line, action),
                   0);
}

static int terminate_after_ready(cp_child *child, line_action *self) {
  assert_string_equal(self->line, "ready");
  return cp_child_terminate(child, SIGTERM, self->grace_ms, false);
}

static void terminate_escalates_to_sigkill(void **state) {
  line_action action = {.action = terminate_after_ready, .grace_ms = 100};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, cp_test_helper_path("cp-ignore-term"), NULL,
                        NULL, &record);
  watch_first_line(child, &action);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(action.done);
  assert_int_equal(action.result, 1);
  assert_killed_by(&record, child, SIGKILL);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* A child that obeys the first signal gets no SIGKILL, and the grace timer
 * stops: the guard is shorter than the grace. */
static int call_terminate(cp_child *child, spawn_call *self) {
  (void)self;
  return cp_child_terminate(child, SIGTERM, 60000, false);
}

static void terminate_obeyed_signal_stops_grace(void **state) {
  spawn_call call = {.call = call_terminate};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = run_sleep_with_call(&loop, &call, &record);

  assert_int_equal(call.result, 1);
  assert_killed_by(&record, child, SIGTERM);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static int call_group_signals(cp_child *child, spawn_call *self) {
  (void)self;
  assert_int_equal(cp_child_kill_group(child, SIGTERM),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_child_terminate(child, SIGTERM, 100, true),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_false(cp_child_killed(child));
  return cp_child_kill(child, SIGKILL);
}

static void kill_group_requires_detached(void **state) {
  spawn_call call = {.call = call_group_signals};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = run_sleep_with_call(&loop, &call, &record);

  assert_int_equal(call.result, 1);
  assert_killed_by(&record, child, SIGKILL);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/*
 * Group kills: `sh` starts `sleep 30` in the background, prints its pid and
 * waits. This process becomes a child subreaper for the case, so the
 * orphaned sleep is reparented here and its end can be observed.
 */
static const char *const sh_with_grandchild[] = {
    "-c", "sleep 30 & echo $!; wait", NULL};

static void become_subreaper(bool on) {
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0), 0);
}

/*
 * Waits until the grandchild pid has ended, after its parent shell ended.
 * Either the shell reaped it (then it is not this process's child) or it
 * was reparented here, and this process reaps it.
 */
static void assert_grandchild_ended(pid_t pid) {
  const struct timespec pause_10ms = {0, 10 * 1000 * 1000};
  int status;

  for (int tries = 0; tries < 1000; tries++) {
    pid_t r = waitpid(pid, &status, WNOHANG);

    if (r == -1 && errno == ECHILD)
      return;
    assert_int_not_equal(r, -1);
    if (r == pid) {
      assert_true(WIFSIGNALED(status));
      return;
    }
    nanosleep(&pause_10ms, NULL);
  }
  kill(pid, SIGKILL);
  fail_msg("grandchild %ld still runs 10 s after its group was signalled",
           (long)pid);
}

static int parse_pid(line_action *self) {
  char *end;

  self->pid = strtol(self->line, &end, 10);
  if (self->line[0] == '\0' || *end != '\0' || self->pid <= 0)
    fail_msg("expected a pid on the child's stdout, got \"%s\"", self->line);
  return 0;
}

static int kill_group_after_pid(cp_child *child, line_action *self) {
  parse_pid(self);
  return cp_child_kill_group(child, SIGTERM);
}

static void kill_group_kills_grandchildren(void **state) {
  cp_spawn_options options = {.detached = true};
  line_action action = {.action = kill_group_after_pid};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  become_subreaper(true);
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/sh", sh_with_grandchild, &options,
                        &record);
  watch_first_line(child, &action);

  /* The sleep keeps the shell's stdout open, so CLOSE also waits for it. */
  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(action.done);
  assert_int_equal(action.result, 1);
  assert_killed_by(&record, child, SIGTERM);
  assert_grandchild_ended((pid_t)action.pid);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  become_subreaper(false);
  assert_no_child_left();
}

static int record_pid(cp_child *child, line_action *self) {
  (void)child;
  return parse_pid(self);
}

/* The timeout with kill_group signals the whole group. The timeout leaves
 * the shell far more time than it needs to start sleep and print its pid. */
static void timeout_kill_group_kills_grandchildren(void **state) {
  cp_spawn_options options = {
      .detached = true, .kill_group = true, .timeout = 1000};
  line_action action = {.action = record_pid};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  become_subreaper(true);
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/sh", sh_with_grandchild, &options,
                        &record);
  watch_first_line(child, &action);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(action.done);
  assert_killed_by(&record, child, SIGTERM);
  assert_grandchild_ended((pid_t)action.pid);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  become_subreaper(false);
  assert_no_child_left();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kill_without_name_sends_sigterm),
      cmocka_unit_test(kill_by_name_sends_that_signal),
      cmocka_unit_test(kill_unknown_signal_returns_error),
      cmocka_unit_test(kill_after_exit_returns_zero),
      cmocka_unit_test(kill_before_spawn_event_delivers),
      cmocka_unit_test(kill_unstarted_child_returns_zero),
      cmocka_unit_test(timeout_sends_sigterm),
      cmocka_unit_test(timeout_sends_kill_signal),
      cmocka_unit_test(timeout_grace_escalates_to_sigkill),
      cmocka_unit_test(timeout_not_reached_sends_nothing),
      cmocka_unit_test(terminate_escalates_to_sigkill),
      cmocka_unit_test(terminate_obeyed_signal_stops_grace),
      cmocka_unit_test(kill_group_requires_detached),
      cmocka_unit_test(kill_group_kills_grandchildren),
      cmocka_unit_test(timeout_kill_group_kills_grandchildren),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
