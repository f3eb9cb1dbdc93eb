/*
 * cp_exec() and cp_exec_file(): output collection, Node's error fields,
 * maxBuffer, timeout with kill_signal, kill_grace and kill_group,
 * encodings and the spawn options. Every case starts real processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

/* Milliseconds a loop may run before the case fails. */
enum { GUARD_MS = 10000, LARGE_GUARD_MS = 120000 };

/* The ID of the user and group "nobody" on Linux distributions. */
enum { NOBODY_ID = 65534 };

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

static char *copy_bytes(const char *bytes, size_t len) {
  char *copy = malloc(len + 1);

  assert_non_null(copy);
  if (len > 0)
    memcpy(copy, bytes, len);
  copy[len] = '\0';
  return copy;
}

static char *copy_text(const char *text) {
  return text != NULL ? copy_bytes(text, strlen(text)) : NULL;
}

/* ------------------------------------------------------------------------
 * What the callback received
 * ------------------------------------------------------------------------ */

typedef struct outcome {
  int calls;
  bool failed; /* error was not NULL */
  cp_exec_error_kind kind;
  int code;
  int signal;
  bool killed;
  bool timed_out;
  char *cmd;
  char *message;
  char *syscall;
  char *path;
  char *spawnargs;        /* joined with '|', or NULL */
  bool error_has_outputs; /* error's buffers are the callback's */
  char *out;
  size_t out_len;
  char *err;
  size_t err_len;
  bool take_stdout; /* set by the case: take stdout's data */
} outcome;

/* Joins a NULL-terminated list with '|', so that a case can compare it as
 * one string. */
static char *join_list(const char *const *list) {
  size_t len = 1;
  char *joined;

  if (list == NULL)
    return NULL;
  for (size_t i = 0; list[i] != NULL; i++)
    len += strlen(list[i]) + 1;

  joined = calloc(1, len);
  assert_non_null(joined);
  for (size_t i = 0; list[i] != NULL; i++) {
    if (i > 0)
      strcat(joined, "|");
    strcat(joined, list[i]);
  }
  return joined;
}

static void copy_error(outcome *result, const cp_exec_error *error,
                       const cp_buffer *stdout_buf,
                       const cp_buffer *stderr_buf) {
  result->failed = true;
  result->kind = error->kind;
  result->code = error->code;
  result->signal = error->signal;
  result->killed = error->killed;
  result->timed_out = error->timed_out;
  result->cmd = copy_text(error->cmd);
  result->message = copy_text(error->message);
  result->syscall = copy_text(error->syscall);
  result->path = copy_text(error->path);
  result->spawnargs = join_list(error->spawnargs);
  result->error_has_outputs =
      error->stdout_buf == stdout_buf && error->stderr_buf == stderr_buf;
}

static void on_exec_done(const cp_exec_error *error, cp_buffer *stdout_buf,
                         cp_buffer *stderr_buf, void *data) {
  outcome *result = data;

  result->calls++;
  if (error != NULL)
    copy_error(result, error, stdout_buf, stderr_buf);

  assert_non_null(stdout_buf->data);
  assert_non_null(stderr_buf->data);
  assert_int_equal(stdout_buf->data[stdout_buf->len], '\0');
  assert_int_equal(stderr_buf->data[stderr_buf->len], '\0');

  result->out_len = stdout_buf->len;
  result->err_len = stderr_buf->len;
  if (result->take_stdout) {
    result->out = stdout_buf->data;
    stdout_buf->data = NULL;
  } else {
    result->out = copy_bytes(stdout_buf->data, stdout_buf->len);
  }
  result->err = copy_bytes(stderr_buf->data, stderr_buf->len);
}

static void outcome_free(outcome *result) {
  free(result->cmd);
  free(result->message);
  free(result->syscall);
  free(result->path);
  free(result->spawnargs);
  free(result->out);
  free(result->err);
  *result = (outcome){0};
}

/* Runs cp_exec() (file NULL) or cp_exec_file() on a fresh loop to the
 * callback, and closes the loop. */
static void run_exec(const char *command, const char *file,
                     const char *const *args, const cp_exec_options *options,
                     outcome *result) {
  uv_loop_t loop;
  int r;

  assert_int_equal(uv_loop_init(&loop), 0);
  if (file == NULL)
    r = cp_exec(&loop, command, options, on_exec_done, result, NULL);
  else
    r = cp_exec_file(&loop, file, args, options, on_exec_done, result, NULL);
  if (r != 0)
    fail_msg("cp_exec returned %s", cp_err_name(r));

  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(result->calls, 1);
  cp_test_loop_finish(&loop);
}

static void assert_succeeded(const outcome *result) {
  if (result->failed)
    fail_msg("expected success, got \"%s\"", result->message);
}

/* ------------------------------------------------------------------------
 * Output and Node's error fields
 * ------------------------------------------------------------------------ */

static void exec_collects_stdout_and_stderr(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("echo out; echo err >&2", NULL, NULL, NULL, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "out\n");
  assert_string_equal(result.err, "err\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_shell_quotes_and_pipes(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("printf '%s\\n' \"a b\" 'c  \"d\"' | tr a-z A-Z | sed 's/^/> /'",
           NULL, NULL, NULL, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "> A B\n> C  \"D\"\n");
  assert_string_equal(result.err, "");

  outcome_free(&result);
  assert_no_child_left();
}

/* As in Node v20: the shell starts, cannot find the command and exits
 * 127, so the error is "Command failed" with code 127, not ENOENT. */
static void exec_missing_command_exits_127(void **state) {
  const char *command = "cp-no-such-command-xyz arg";
  outcome result = {0};

  (void)state;
  run_exec(command, NULL, NULL, NULL, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_EXIT);
  assert_int_equal(result.code, 127);
  assert_int_equal(result.signal, 0);
  assert_false(result.killed);
  assert_false(result.timed_out);
  assert_string_equal(result.cmd, command);
  assert_non_null(strstr(result.err, "not found"));
  assert_string_equal(result.out, "");
  assert_true(
      strncmp(result.message, "Command failed: cp-no-such-command-xyz arg\n",
              strlen("Command failed: cp-no-such-command-xyz arg\n")) == 0);
  assert_string_equal(
      result.message + strlen("Command failed: cp-no-such-command-xyz arg\n"),
      result.err);
  assert_null(result.syscall);
  assert_null(result.path);
  assert_null(result.spawnargs);

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_nonzero_exit_reports_status(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("echo out; echo err >&2; exit 3", NULL, NULL, NULL, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_EXIT);
  assert_int_equal(result.code, 3);
  assert_int_equal(result.signal, 0);
  assert_false(result.killed);
  assert_string_equal(result.message,
                      "Command failed: echo out; echo err >&2; exit 3\nerr\n");
  assert_true(result.error_has_outputs);
  assert_string_equal(result.out, "out\n");
  assert_string_equal(result.err, "err\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_signal_death_reports_signal(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("echo hi; kill -9 $$", NULL, NULL, NULL, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(result.code, -1);
  assert_int_equal(result.signal, SIGKILL);
  assert_false(result.killed);
  assert_false(result.timed_out);
  assert_string_equal(result.message, "Command failed: echo hi; kill -9 $$\n");
  assert_string_equal(result.out, "hi\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_file_enoent_reports_spawn_error(void **state) {
  static const char *const args[] = {"a", "b", NULL};
  outcome result = {0};

  (void)state;
  run_exec(NULL, "cp-no-such-file-xyz", args, NULL, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_SYSTEM);
  assert_int_equal(result.code, -ENOENT);
  assert_int_equal(result.signal, 0);
  assert_false(result.killed);
  assert_string_equal(result.syscall, "spawn cp-no-such-file-xyz");
  assert_string_equal(result.path, "cp-no-such-file-xyz");
  assert_string_equal(result.spawnargs, "a|b");
  assert_string_equal(result.cmd, "cp-no-such-file-xyz a b");
  assert_string_equal(result.message, "spawn cp-no-such-file-xyz ENOENT");
  assert_string_equal(result.out, "");
  assert_string_equal(result.err, "");

  outcome_free(&result);
  assert_no_child_left();
}

/* A missing cwd makes the shell itself fail to start. */
static void exec_bad_cwd_reports_spawn_error(void **state) {
  cp_exec_options options = {.spawn.cwd = "/nonexistent-cp-exec-dir"};
  outcome result = {0};

  (void)state;
  run_exec("true", NULL, NULL, &options, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_SYSTEM);
  assert_int_equal(result.code, -ENOENT);
  assert_string_equal(result.syscall, "spawn /bin/sh");
  assert_string_equal(result.path, "/bin/sh");
  assert_string_equal(result.spawnargs, "-c|true");
  assert_string_equal(result.cmd, "true");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_file_nonzero_joins_cmd(void **state) {
  static const char *const args[] = {"-c", "exit 4", NULL};
  outcome result = {0};

  (void)state;
  run_exec(NULL, "sh", args, NULL, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_EXIT);
  assert_int_equal(result.code, 4);
  assert_string_equal(result.cmd, "sh -c exit 4");
  assert_string_equal(result.message, "Command failed: sh -c exit 4\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_file_passes_args_verbatim(void **state) {
  static const char *const args[] = {"a b", "'q'", "$HOME", "", NULL};
  cp_exec_options options = {.spawn.argv0 = "custom-name"};
  outcome result = {0};

  (void)state;
  run_exec(NULL, cp_test_helper_path("cp-print"), args, &options, &result);

  assert_succeeded(&result);
  assert_non_null(strstr(result.out, "argv[0]=custom-name\n"
                                     "argv[1]=a b\n"
                                     "argv[2]='q'\n"
                                     "argv[3]=$HOME\n"
                                     "argv[4]=\n"
                                     "cwd="));

  outcome_free(&result);
  assert_no_child_left();
}

/* With shell set, execFile joins file and args into one command line. */
static void exec_file_shell_option(void **state) {
  static const char *const args[] = {"\"$0\"", "|", "tr", "a-z", "A-Z", NULL};
  cp_exec_options options = {.spawn.shell = CP_SHELL_DEFAULT};
  outcome result = {0};

  (void)state;
  run_exec(NULL, "echo", args, &options, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "/BIN/SH\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_custom_shell(void **state) {
  cp_exec_options options = {.spawn.shell = "/bin/bash"};
  outcome result = {0};

  (void)state;
  if (access("/bin/bash", X_OK) != 0)
    skip();
  run_exec("echo \"$BASH_VERSION\" | cut -c1", NULL, NULL, &options, &result);

  assert_succeeded(&result);
  assert_true(result.out[0] >= '1' && result.out[0] <= '9');

  outcome_free(&result);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * maxBuffer
 * ------------------------------------------------------------------------ */

/* Runs command with max_buffer and checks that it succeeded with
 * out_len bytes on stdout and err_len on stderr. */
static void check_within_limit(const char *command, size_t max_buffer,
                               size_t out_len, size_t err_len) {
  cp_exec_options options = {.max_buffer = max_buffer};
  outcome result = {0};

  run_exec(command, NULL, NULL, &options, &result);

  assert_succeeded(&result);
  assert_int_equal(result.out_len, out_len);
  assert_int_equal(result.err_len, err_len);

  outcome_free(&result);
  assert_no_child_left();
}

/* Runs command, which writes one byte past max_buffer on stream_name and
 * then sleeps, and checks Node's maxBuffer error: the output cut at the
 * limit and the child killed with kill_signal. */
static void check_past_limit(const char *command, size_t max_buffer,
                             const char *stream_name, int kill_signal) {
  cp_exec_options options = {.max_buffer = max_buffer,
                             .spawn.kill_signal = kill_signal};
  bool on_stdout = strcmp(stream_name, "stdout") == 0;
  char message[64];
  outcome result = {0};

  run_exec(command, NULL, NULL, &options, &result);

  snprintf(message, sizeof message, "%s maxBuffer length exceeded",
           stream_name);
  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_MAX_BUFFER);
  assert_int_equal(result.code, CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER);
  assert_string_equal(cp_err_name(result.code),
                      "ERR_CHILD_PROCESS_STDIO_MAXBUFFER");
  assert_string_equal(result.message, message);
  assert_string_equal(result.cmd, command);
  assert_true(result.killed);
  assert_false(result.timed_out);
  assert_int_equal(result.signal, kill_signal != 0 ? kill_signal : SIGTERM);
  assert_true(result.error_has_outputs);
  assert_int_equal(on_stdout ? result.out_len : result.err_len, max_buffer);
  assert_int_equal(on_stdout ? result.err_len : result.out_len, 0);

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_max_buffer_at_limit_stdout(void **state) {
  (void)state;
  check_within_limit("head -c 10 /dev/zero", 10, 10, 0);
}

static void exec_max_buffer_at_limit_stderr(void **state) {
  (void)state;
  check_within_limit("head -c 10 /dev/zero >&2", 10, 0, 10);
}

static void exec_max_buffer_past_limit_stdout(void **state) {
  (void)state;
  check_past_limit("head -c 11 /dev/zero; exec sleep 30", 10, "stdout", 0);
}

static void exec_max_buffer_past_limit_stderr(void **state) {
  (void)state;
  check_past_limit("head -c 11 /dev/zero >&2; exec sleep 30", 10, "stderr", 0);
}

/* Each stream has its own limit, so both may reach it. */
static void exec_max_buffer_counts_streams_apart(void **state) {
  (void)state;
  check_within_limit("head -c 10 /dev/zero; head -c 10 /dev/zero >&2", 10, 10,
                     10);
}

static void exec_max_buffer_default_is_1mib(void **state) {
  (void)state;
  check_within_limit("head -c 1048576 /dev/zero", 0, 1048576, 0);
  check_past_limit("head -c 1048577 /dev/zero; exec sleep 30", 1048576,
                   "stdout", 0);
}

static void exec_max_buffer_unlimited(void **state) {
  (void)state;
  check_within_limit("head -c 3000000 /dev/zero", CP_MAX_BUFFER_UNLIMITED,
                     3000000, 0);
}

/* Node's maxBuffer 0: no output is allowed, and a silent command passes. */
static void exec_max_buffer_none_rejects_any_output(void **state) {
  cp_exec_options options = {.max_buffer = CP_MAX_BUFFER_NONE};
  outcome result = {0};

  (void)state;
  check_within_limit("true", CP_MAX_BUFFER_NONE, 0, 0);

  run_exec("printf x; exec sleep 30", NULL, NULL, &options, &result);
  assert_true(result.failed);
  assert_int_equal(result.code, CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER);
  assert_true(result.killed);
  assert_int_equal(result.out_len, 0);
  outcome_free(&result);
  assert_no_child_left();
}

static void exec_max_buffer_kill_signal(void **state) {
  (void)state;
  check_past_limit("head -c 101 /dev/zero; exec sleep 30", 100, "stdout",
                   SIGINT);
}

/* The limit counts bytes, as in Node v20. Cut inside a character, the
 * text keeps the whole characters before the cut. */
static void exec_max_buffer_cut_keeps_whole_characters(void **state) {
  const char *command = "printf '\\303\\251\\303\\251'; exec sleep 30";
  cp_exec_options text_options = {.max_buffer = 3};
  cp_exec_options byte_options = {.max_buffer = 3, .encoding = "buffer"};
  outcome text = {0};
  outcome bytes = {0};

  (void)state;
  run_exec(command, NULL, NULL, &text_options, &text);
  run_exec(command, NULL, NULL, &byte_options, &bytes);

  assert_int_equal(text.kind, CP_EXEC_ERROR_MAX_BUFFER);
  assert_string_equal(text.out, "\xC3\xA9");
  assert_int_equal(bytes.kind, CP_EXEC_ERROR_MAX_BUFFER);
  assert_int_equal(bytes.out_len, 3);
  assert_memory_equal(bytes.out, "\xC3\xA9\xC3", 3);

  outcome_free(&text);
  outcome_free(&bytes);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * timeout, kill_grace and kill_group
 * ------------------------------------------------------------------------ */

static void exec_timeout_kills_child(void **state) {
  cp_exec_options options = {.spawn.timeout = 100};
  outcome result = {0};

  (void)state;
  run_exec("echo started; exec sleep 30", NULL, NULL, &options, &result);

  assert_true(result.failed);
  assert_int_equal(result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(result.code, -1);
  assert_int_equal(result.signal, SIGTERM);
  assert_true(result.killed);
  assert_true(result.timed_out);
  assert_string_equal(result.message,
                      "Command failed: echo started; exec sleep 30\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_timeout_sends_kill_signal(void **state) {
  cp_exec_options options = {.spawn.timeout = 100,
                             .spawn.kill_signal = SIGUSR1};
  outcome result = {0};

  (void)state;
  run_exec("exec sleep 30", NULL, NULL, &options, &result);

  assert_int_equal(result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(result.signal, SIGUSR1);
  assert_true(result.timed_out);

  outcome_free(&result);
  assert_no_child_left();
}

/*
 * A case whose child must be ready (it printed its first line) before its
 * timeout fires, or the timeout's signal reaches it too early. Each attempt
 * doubles the timeout until the child was ready in time; the checks apply
 * to that attempt only.
 */
typedef struct ready_case {
  const char *command;
  const char *file; /* cp_exec_file() when set */
  cp_exec_options options;
  bool kill_after_term; /* SIGKILL the child once it has been signalled */
  outcome result;
  cp_child *child;
  uv_timer_t poll;
  bool sent_sigkill;
} ready_case;

/* Polls for the timeout's signal, then sends SIGKILL, for a child that
 * ignores SIGTERM and has no kill_grace. */
static void on_poll(uv_timer_t *timer) {
  ready_case *c = timer->data;

  if (c->result.calls > 0) {
    uv_close((uv_handle_t *)timer, NULL);
    return;
  }
  if (!c->sent_sigkill && cp_child_killed(c->child)) {
    c->sent_sigkill = true;
    assert_int_equal(cp_child_kill(c->child, SIGKILL), 1);
  }
}

/* Kills what is left of a detached child's process group after an
 * attempt that came too late, and reaps it, since this process is then a
 * subreaper and adopts the group's orphans. */
static void kill_leftover_group(pid_t pgid) {
  kill(-pgid, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0)
    ;
}

static bool run_ready_attempt(ready_case *c) {
  uv_loop_t loop;
  pid_t pid;
  int r;

  assert_int_equal(uv_loop_init(&loop), 0);
  c->result = (outcome){0};
  c->sent_sigkill = false;
  if (c->file == NULL)
    r = cp_exec(&loop, c->command, &c->options, on_exec_done, &c->result,
                &c->child);
  else
    r = cp_exec_file(&loop, c->file, NULL, &c->options, on_exec_done,
                     &c->result, &c->child);
  assert_int_equal(r, 0);

  if (c->kill_after_term) {
    assert_int_equal(uv_timer_init(&loop, &c->poll), 0);
    c->poll.data = c;
    assert_int_equal(uv_timer_start(&c->poll, on_poll, 10, 10), 0);
  }

  cp_test_loop_run(&loop, GUARD_MS + (unsigned)c->options.spawn.timeout);
  assert_int_equal(c->result.calls, 1);
  pid = cp_child_pid(c->child);
  cp_child_release(c->child);
  cp_test_loop_finish(&loop);

  if (c->result.out_len > 0 && strchr(c->result.out, '\n') != NULL)
    return true;

  if (c->options.spawn.detached)
    kill_leftover_group(pid);
  outcome_free(&c->result);
  return false;
}

static void run_ready_case(ready_case *c) {
  for (uint64_t timeout = 1000; timeout <= 16000; timeout *= 2) {
    c->options.spawn.timeout = timeout;
    if (run_ready_attempt(c))
      return;
  }
  fail_msg("the child never printed a line before its timeout");
}

/* Node waits for such a child forever; the caller can still kill it. */
static void exec_timeout_ignored_without_grace(void **state) {
  ready_case c = {.kill_after_term = true};

  (void)state;
  c.file = cp_test_helper_path("cp-ignore-term");
  run_ready_case(&c);

  /* SIGKILL, not SIGTERM, ended it: the timeout's SIGTERM was ignored. */
  assert_true(c.sent_sigkill);
  assert_int_equal(c.result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(c.result.signal, SIGKILL);
  assert_true(c.result.killed);
  assert_true(c.result.timed_out);
  assert_string_equal(c.result.out, "ready\n");

  outcome_free(&c.result);
  assert_no_child_left();
}

static void exec_timeout_ignored_with_grace(void **state) {
  ready_case c = {.options.spawn.kill_grace = 100};

  (void)state;
  c.file = cp_test_helper_path("cp-ignore-term");
  run_ready_case(&c);

  assert_int_equal(c.result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(c.result.signal, SIGKILL);
  assert_true(c.result.killed);
  assert_true(c.result.timed_out);
  assert_string_equal(c.result.out, "ready\n");

  outcome_free(&c.result);
  assert_no_child_left();
}

/* As in Node, a child that handles the timeout's signal and exits 0 ends
 * without an error, though it was killed. */
static void exec_timeout_clean_exit_succeeds(void **state) {
  ready_case c = {.command = "trap 'kill $pid; exit 0' TERM; "
                             "sleep 30 </dev/null >/dev/null 2>&1 & pid=$!; "
                             "echo ready; wait"};

  (void)state;
  run_ready_case(&c);

  assert_succeeded(&c.result);
  assert_string_equal(c.result.out, "ready\n");

  outcome_free(&c.result);
  assert_no_child_left();
}

static void become_subreaper(bool on) {
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0), 0);
}

/* Waits until the grandchild has ended. Its shell has ended, so this
 * process, a subreaper, is now its parent, or the shell reaped it. */
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

static pid_t parse_pid(const char *line) {
  char *end;
  long pid = strtol(line, &end, 10);

  if (line[0] == '\0' || *end != '\n' || pid <= 0)
    fail_msg("expected a pid on the child's stdout, got \"%s\"", line);
  return (pid_t)pid;
}

static const char grandchild_command[] = "sleep 30 & echo $!; wait";

static void exec_timeout_kill_group_kills_grandchild(void **state) {
  ready_case c = {.command = grandchild_command,
                  .options.spawn = {.detached = true, .kill_group = true}};

  (void)state;
  become_subreaper(true);
  run_ready_case(&c);

  assert_int_equal(c.result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(c.result.signal, SIGTERM);
  assert_true(c.result.timed_out);
  assert_grandchild_ended(parse_pid(c.result.out));

  become_subreaper(false);
  outcome_free(&c.result);
  assert_no_child_left();
}

/* Without kill_group only the shell is signalled: its sleep lives on, and
 * the callback does not wait for it, since stdout and stderr were closed.
 * detached only lets a failed attempt clean up its group. */
static void exec_timeout_spares_grandchild_without_group(void **state) {
  ready_case c = {.command = grandchild_command,
                  .options.spawn.detached = true};
  pid_t pid;

  (void)state;
  become_subreaper(true);
  run_ready_case(&c);

  assert_int_equal(c.result.kind, CP_EXEC_ERROR_SIGNAL);
  assert_int_equal(c.result.signal, SIGTERM);
  pid = parse_pid(c.result.out);
  assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);

  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  become_subreaper(false);
  outcome_free(&c.result);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * Encodings
 * ------------------------------------------------------------------------ */

static void exec_encoding_utf8_replaces_invalid(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("printf '\\377\\303\\251'", NULL, NULL, NULL, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "\xEF\xBF\xBD\xC3\xA9");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_encoding_buffer_keeps_bytes(void **state) {
  cp_exec_options options = {.encoding = "buffer"};
  outcome result = {0};

  (void)state;
  run_exec("printf 'a\\000\\377'", NULL, NULL, &options, &result);

  assert_succeeded(&result);
  assert_int_equal(result.out_len, 3);
  assert_memory_equal(result.out, "a\0\xFF", 3);

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_encoding_hex_and_base64(void **state) {
  cp_exec_options hex = {.encoding = "hex"};
  cp_exec_options base64 = {.encoding = "base64"};
  outcome hex_result = {0};
  outcome base64_result = {0};

  (void)state;
  run_exec("printf hi; printf hi >&2", NULL, NULL, &hex, &hex_result);
  run_exec("printf hello", NULL, NULL, &base64, &base64_result);

  assert_string_equal(hex_result.out, "6869");
  assert_string_equal(hex_result.err, "6869");
  assert_string_equal(base64_result.out, "aGVsbG8=");

  outcome_free(&hex_result);
  outcome_free(&base64_result);
  assert_no_child_left();
}

/* Node silently returns bytes for an unknown encoding; here it is an
 * error and nothing starts. */
static void exec_unknown_encoding_rejected(void **state) {
  cp_exec_options options = {.encoding = "ucs2"};
  outcome result = {0};
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(
      cp_exec(&loop, "true", &options, on_exec_done, &result, NULL),
      CP_ERR_UNKNOWN_ENCODING);
  cp_test_loop_finish(&loop);
  assert_int_equal(result.calls, 0);
}

/* ------------------------------------------------------------------------
 * Spawn options
 * ------------------------------------------------------------------------ */

static void exec_cwd_option(void **state) {
  char dir[] = "/tmp/cp-exec-cwd-XXXXXX";
  cp_exec_options options = {0};
  char expected[64];
  outcome result = {0};

  (void)state;
  assert_non_null(mkdtemp(dir));
  options.spawn.cwd = dir;
  run_exec("pwd", NULL, NULL, &options, &result);

  snprintf(expected, sizeof expected, "%s\n", dir);
  assert_string_equal(result.out, expected);

  assert_int_equal(rmdir(dir), 0);
  outcome_free(&result);
  assert_no_child_left();
}

static void exec_env_option(void **state) {
  static const char *const env[] = {"CP_EXEC_TEST=yes", "PATH=/usr/bin:/bin",
                                    NULL};
  cp_exec_options options = {.spawn.env = env};
  outcome result = {0};

  (void)state;
  run_exec("echo \"$CP_EXEC_TEST ${HOME-unset}\"", NULL, NULL, &options,
           &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "yes unset\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_uid_gid_as_root(void **state) {
  cp_exec_options options = {.spawn = {.set_uid = true,
                                       .uid = NOBODY_ID,
                                       .set_gid = true,
                                       .gid = NOBODY_ID}};
  outcome result = {0};

  (void)state;
  if (geteuid() != 0) {
    print_message("not root: uid and gid cannot be changed\n");
    skip();
  }
  run_exec("id -u; id -g", NULL, NULL, &options, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "65534\n65534\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_invalid_arguments_rejected(void **state) {
  static const cp_stdio pipes[] = {{.kind = CP_STDIO_PIPE}};
  cp_exec_options with_stdio = {.spawn = {.stdio = pipes, .stdio_count = 1}};
  cp_exec_options bad_signal = {.spawn.kill_signal = 1000};
  cp_exec_options group = {.spawn.kill_group = true};
  cp_child *child = (cp_child *)&child;
  outcome result = {0};
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  assert_int_equal(cp_exec(NULL, "true", NULL, on_exec_done, &result, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_exec(&loop, NULL, NULL, on_exec_done, &result, &child),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(child);
  assert_int_equal(cp_exec(&loop, "", NULL, on_exec_done, &result, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(
      cp_exec_file(&loop, NULL, NULL, NULL, on_exec_done, &result, NULL),
      CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(
      cp_exec(&loop, "true", &with_stdio, on_exec_done, &result, NULL),
      CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(
      cp_exec(&loop, "true", &bad_signal, on_exec_done, &result, NULL),
      CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_exec(&loop, "true", &group, on_exec_done, &result, NULL),
                   CP_ERR_INVALID_ARG_VALUE);

  cp_test_loop_finish(&loop);
  assert_int_equal(result.calls, 0);
}

/* ------------------------------------------------------------------------
 * The child, stdin and ownership
 * ------------------------------------------------------------------------ */

static void exec_child_out_gives_stdin(void **state) {
  outcome result = {0};
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_exec(&loop, "cat", NULL, on_exec_done, &result, &child),
                   0);
  assert_non_null(child);
  assert_true(cp_stream_write(cp_child_stdin(child), "hello", 5, NULL, NULL) >=
              0);
  assert_int_equal(cp_stream_end(cp_child_stdin(child)), 0);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(result.calls, 1);
  assert_succeeded(&result);
  assert_string_equal(result.out, "hello");
  assert_true(cp_child_pid(child) > 0);
  assert_int_equal(cp_child_exit_code(child), 0);

  cp_child_release(child);
  cp_test_loop_finish(&loop);
  outcome_free(&result);
  assert_no_child_left();
}

/* Without the child the caller cannot write to stdin, so cat reads end of
 * file at once instead of waiting forever. */
static void exec_without_child_ends_stdin(void **state) {
  outcome result = {0};

  (void)state;
  run_exec("cat; echo done", NULL, NULL, NULL, &result);

  assert_succeeded(&result);
  assert_string_equal(result.out, "done\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_callback_takes_output(void **state) {
  outcome result = {.take_stdout = true};

  (void)state;
  run_exec("echo kept", NULL, NULL, NULL, &result);

  /* outcome_free() frees the taken data, which the library no longer
   * owns: ASan and valgrind report a double free otherwise. */
  assert_string_equal(result.out, "kept\n");

  outcome_free(&result);
  assert_no_child_left();
}

static void exec_without_callback_runs(void **state) {
  char path[] = "/tmp/cp-exec-mark-XXXXXX";
  char command[128];
  struct stat info;
  uv_loop_t loop;
  int fd;

  (void)state;
  fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(unlink(path), 0);
  snprintf(command, sizeof command, "echo x > %s; exit 3", path);

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_exec(&loop, command, NULL, NULL, NULL, NULL), 0);
  cp_test_loop_finish(&loop);

  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_size, 2);
  assert_int_equal(unlink(path), 0);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * Large input and output at once
 * ------------------------------------------------------------------------ */

enum { LARGE_SIZE = 32 * 1024 * 1024 };

static char *make_pattern(size_t len) {
  char *bytes = malloc(len);

  assert_non_null(bytes);
  for (size_t i = 0; i < len; i++)
    bytes[i] = (char)(i * 31 + i / 4099);
  return bytes;
}

/* cat echoes 32 MiB of input to stdout while head writes 32 MiB to stderr
 * at the same time. */
static void exec_large_input_and_output(void **state) {
  cp_exec_options options = {.encoding = "buffer",
                             .max_buffer = CP_MAX_BUFFER_UNLIMITED};
  char *input = make_pattern(LARGE_SIZE);
  outcome result = {0};
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_exec(&loop, "head -c 33554432 /dev/zero >&2 & cat; wait",
                           &options, on_exec_done, &result, &child),
                   0);
  assert_true(cp_stream_write(cp_child_stdin(child), input, LARGE_SIZE, NULL,
                              NULL) >= 0);
  assert_int_equal(cp_stream_end(cp_child_stdin(child)), 0);

  cp_test_loop_run(&loop, LARGE_GUARD_MS);
  assert_int_equal(result.calls, 1);
  assert_succeeded(&result);
  assert_int_equal(result.out_len, LARGE_SIZE);
  assert_memory_equal(result.out, input, LARGE_SIZE);
  assert_int_equal(result.err_len, LARGE_SIZE);
  for (size_t i = 0; i < LARGE_SIZE; i++) {
    if (result.err[i] != 0)
      fail_msg("stderr byte %zu is %d, not 0", i, result.err[i]);
  }

  cp_child_release(child);
  cp_test_loop_finish(&loop);
  free(input);
  outcome_free(&result);
  assert_no_child_left();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exec_collects_stdout_and_stderr),
      cmocka_unit_test(exec_shell_quotes_and_pipes),
      cmocka_unit_test(exec_missing_command_exits_127),
      cmocka_unit_test(exec_nonzero_exit_reports_status),
      cmocka_unit_test(exec_signal_death_reports_signal),
      cmocka_unit_test(exec_file_enoent_reports_spawn_error),
      cmocka_unit_test(exec_bad_cwd_reports_spawn_error),
      cmocka_unit_test(exec_file_nonzero_joins_cmd),
      cmocka_unit_test(exec_file_passes_args_verbatim),
      cmocka_unit_test(exec_file_shell_option),
      cmocka_unit_test(exec_custom_shell),
      cmocka_unit_test(exec_max_buffer_at_limit_stdout),
      cmocka_unit_test(exec_max_buffer_at_limit_stderr),
      cmocka_unit_test(exec_max_buffer_past_limit_stdout),
      cmocka_unit_test(exec_max_buffer_past_limit_stderr),
      cmocka_unit_test(exec_max_buffer_counts_streams_apart),
      cmocka_unit_test(exec_max_buffer_default_is_1mib),
      cmocka_unit_test(exec_max_buffer_unlimited),
      cmocka_unit_test(exec_max_buffer_none_rejects_any_output),
      cmocka_unit_test(exec_max_buffer_kill_signal),
      cmocka_unit_test(exec_max_buffer_cut_keeps_whole_characters),
      cmocka_unit_test(exec_timeout_kills_child),
      cmocka_unit_test(exec_timeout_sends_kill_signal),
      cmocka_unit_test(exec_timeout_ignored_without_grace),
      cmocka_unit_test(exec_timeout_ignored_with_grace),
      cmocka_unit_test(exec_timeout_clean_exit_succeeds),
      cmocka_unit_test(exec_timeout_kill_group_kills_grandchild),
      cmocka_unit_test(exec_timeout_spares_grandchild_without_group),
      cmocka_unit_test(exec_encoding_utf8_replaces_invalid),
      cmocka_unit_test(exec_encoding_buffer_keeps_bytes),
      cmocka_unit_test(exec_encoding_hex_and_base64),
      cmocka_unit_test(exec_unknown_encoding_rejected),
      cmocka_unit_test(exec_cwd_option),
      cmocka_unit_test(exec_env_option),
      cmocka_unit_test(exec_uid_gid_as_root),
      cmocka_unit_test(exec_invalid_arguments_rejected),
      cmocka_unit_test(exec_child_out_gives_stdin),
      cmocka_unit_test(exec_without_child_ends_stdin),
      cmocka_unit_test(exec_callback_takes_output),
      cmocka_unit_test(exec_without_callback_runs),
      cmocka_unit_test(exec_large_input_and_output),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
