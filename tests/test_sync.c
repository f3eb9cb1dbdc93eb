/*
 * cp_spawn_sync(), cp_exec_sync() and cp_exec_file_sync(): Node's result
 * fields, input, the shared maxBuffer, timeout with kill_signal,
 * kill_grace and kill_group, encodings, stdio, the Command failed errors,
 * and a call from inside another loop's callback. Every case starts real
 * processes.
 *
 * A Sync call blocks, so no loop guard can stop it. Instead the group
 * setup arms an alarm that ends the test program with a message. ctest
 * runs each case in a program of its own, so there the alarm bounds one
 * case. A native run of the whole program takes well under the limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* Seconds before the alarm ends the test program; leaves room for
 * valgrind. */
enum { ALARM_S = 100 };

/* Milliseconds a loop may run before the case fails. */
enum { GUARD_MS = 10000 };

/* The ID of the user and group "nobody" on Linux distributions. */
enum { NOBODY_ID = 65534 };

static void on_alarm(int signum) {
  static const char message[] =
      "test_sync: a Sync call still runs after the alarm; stopping\n";

  (void)signum;
  (void)!write(STDERR_FILENO, message, sizeof message - 1);
  _exit(1);
}

static int arm_alarm(void **state) {
  struct sigaction action = {.sa_handler = on_alarm};

  (void)state;
  sigaction(SIGALRM, &action, NULL);
  alarm(ALARM_S);
  return 0;
}

static int disarm_alarm(void **state) {
  (void)state;
  alarm(0);
  return 0;
}

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

static cp_spawn_sync_result *run_sync(const char *file, const char *const *args,
                                      const cp_spawn_sync_options *options) {
  cp_spawn_sync_result *result = NULL;
  int r = cp_spawn_sync(file, args, options, &result);

  if (r != 0)
    fail_msg("cp_spawn_sync(%s) returned %s", file, cp_err_name(r));
  assert_non_null(result);
  return result;
}

static const char *const *sh_args(const char *command) {
  static const char *args[3];

  args[0] = "-c";
  args[1] = command;
  args[2] = NULL;
  return args;
}

/* Options whose stdio is three pipes, so that cp_exec_sync() and
 * cp_exec_file_sync() keep stderr to themselves. */
static const cp_stdio three_pipes[] = {
    {.kind = CP_STDIO_PIPE}, {.kind = CP_STDIO_PIPE}, {.kind = CP_STDIO_PIPE}};

static void assert_spawnargs(char **spawnargs, const char *const *expected) {
  size_t i = 0;

  assert_non_null(spawnargs);
  for (; expected[i] != NULL; i++) {
    assert_non_null(spawnargs[i]);
    assert_string_equal(spawnargs[i], expected[i]);
  }
  assert_null(spawnargs[i]);
}

/* ------------------------------------------------------------------------
 * Output, input and Node's result fields
 * ------------------------------------------------------------------------ */

static void spawn_sync_collects_output(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("echo out; echo err >&2"), NULL);

  assert_true(result->pid > 0);
  assert_int_equal(result->status, 0);
  assert_int_equal(result->signal, 0);
  assert_int_equal(result->error, 0);
  assert_int_equal(result->output_count, 3);
  assert_null(result->output[0].data);
  assert_ptr_equal(result->stdout_buf, &result->output[1]);
  assert_ptr_equal(result->stderr_buf, &result->output[2]);
  assert_string_equal(result->stdout_buf->data, "out\n");
  assert_int_equal(result->stdout_buf->len, 4);
  assert_string_equal(result->stderr_buf->data, "err\n");
  assert_true(result->rusage.max_rss_kib > 0);
  assert_null(result->syscall);
  assert_null(result->path);
  assert_null(result->spawnargs);
  assert_null(result->message);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_writes_input(void **state) {
  cp_spawn_sync_options options = {.input = "hello\0world", .input_len = 11};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("cat", NULL, &options);

  assert_int_equal(result->status, 0);
  assert_int_equal(result->error, 0);
  assert_int_equal(result->stdout_buf->len, 11);
  assert_memory_equal(result->stdout_buf->data, "hello\0world", 11);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* As in Node, stdin is a pipe that is closed at once without input. */
static void spawn_sync_without_input_ends_stdin(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("cat; echo done"), NULL);

  assert_int_equal(result->status, 0);
  assert_string_equal(result->stdout_buf->data, "done\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

enum { LARGE_SIZE = 32 * 1024 * 1024 };

/* cat echoes 32 MiB of input to stdout while head writes 32 MiB to stderr
 * at the same time: reading one stream only, or writing all input before
 * reading, would deadlock. */
static void spawn_sync_large_input_and_output(void **state) {
  cp_spawn_sync_options options = {.input_len = LARGE_SIZE,
                                   .max_buffer = CP_MAX_BUFFER_UNLIMITED};
  char *input = malloc(LARGE_SIZE);
  cp_spawn_sync_result *result;

  (void)state;
  assert_non_null(input);
  for (size_t i = 0; i < LARGE_SIZE; i++)
    input[i] = (char)(i * 31 + i / 4099);
  options.input = input;

  result = run_sync("sh", sh_args("head -c 33554432 /dev/zero >&2 & cat; wait"),
                    &options);

  assert_int_equal(result->error, 0);
  assert_int_equal(result->status, 0);
  assert_int_equal(result->stdout_buf->len, LARGE_SIZE);
  assert_memory_equal(result->stdout_buf->data, input, LARGE_SIZE);
  assert_int_equal(result->stderr_buf->len, LARGE_SIZE);
  for (size_t i = 0; i < LARGE_SIZE; i++) {
    if (result->stderr_buf->data[i] != 0)
      fail_msg("stderr byte %zu is %d, not 0", i, result->stderr_buf->data[i]);
  }

  cp_spawn_sync_result_free(result);
  free(input);
  assert_no_child_left();
}

static void spawn_sync_enoent_reports_error(void **state) {
  static const char *const args[] = {"a", "b", NULL};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("cp-no-such-file-xyz", args, NULL);

  assert_int_equal(result->error, -ENOENT);
  assert_int_equal(result->pid, 0);
  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, 0);
  assert_null(result->output);
  assert_int_equal(result->output_count, 0);
  assert_null(result->stdout_buf);
  assert_null(result->stderr_buf);
  assert_string_equal(result->syscall, "spawnSync cp-no-such-file-xyz");
  assert_string_equal(result->path, "cp-no-such-file-xyz");
  assert_spawnargs(result->spawnargs, args);
  assert_string_equal(result->message, "spawnSync cp-no-such-file-xyz ENOENT");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_bad_cwd_reports_error(void **state) {
  cp_spawn_sync_options options = {.spawn.cwd = "/nonexistent-cp-sync-dir"};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("true", NULL, &options);

  assert_int_equal(result->error, -ENOENT);
  assert_int_equal(result->pid, 0);
  assert_string_equal(result->path, "true");
  assert_null(result->spawnargs[0]);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_nonzero_exit(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("exit 3"), NULL);

  assert_int_equal(result->status, 3);
  assert_int_equal(result->signal, 0);
  assert_int_equal(result->error, 0);
  assert_null(result->message);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_signal_death(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("echo hi; kill -9 $$"), NULL);

  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, SIGKILL);
  assert_int_equal(result->error, 0);
  assert_string_equal(result->stdout_buf->data, "hi\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * timeout, kill_grace and kill_group
 * ------------------------------------------------------------------------ */

static void spawn_sync_timeout_kills_child(void **state) {
  static const char *const args[] = {"30", NULL};
  cp_spawn_sync_options options = {.spawn.timeout = 100};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sleep", args, &options);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, SIGTERM);
  assert_true(result->pid > 0);
  assert_string_equal(result->syscall, "spawnSync sleep");
  assert_string_equal(result->path, "sleep");
  assert_spawnargs(result->spawnargs, args);
  assert_string_equal(result->message, "spawnSync sleep ETIMEDOUT");
  assert_int_equal(result->output_count, 3);
  assert_int_equal(result->stdout_buf->len, 0);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_timeout_sends_kill_signal(void **state) {
  static const char *const args[] = {"30", NULL};
  cp_spawn_sync_options options = {.spawn.timeout = 100,
                                   .spawn.kill_signal = SIGUSR1};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sleep", args, &options);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->signal, SIGUSR1);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/*
 * Runs a child that must print its first line before its timeout fires,
 * or the timeout's signal reaches it too early. Each attempt doubles the
 * timeout until the line came in time, and returns that attempt's result.
 */
static cp_spawn_sync_result *run_until_ready(const char *file,
                                             const char *const *args,
                                             cp_spawn_sync_options *options) {
  for (uint64_t timeout = 1000; timeout <= 16000; timeout *= 2) {
    cp_spawn_sync_result *result;

    options->spawn.timeout = timeout;
    result = run_sync(file, args, options);
    if (result->stdout_buf != NULL &&
        strchr(result->stdout_buf->data, '\n') != NULL)
      return result;

    /* A detached child's group may have orphans left, which this process
     * adopts as a subreaper: kill and reap them. */
    if (options->spawn.detached) {
      kill(-result->pid, SIGKILL);
      while (waitpid(-1, NULL, 0) > 0)
        ;
    }
    cp_spawn_sync_result_free(result);
  }
  fail_msg("the child never printed a line before its timeout");
  return NULL;
}

static void spawn_sync_timeout_grace_kills_ignoring_child(void **state) {
  cp_spawn_sync_options options = {.spawn.kill_grace = 100};
  cp_spawn_sync_result *result;

  (void)state;
  result =
      run_until_ready(cp_test_helper_path("cp-ignore-term"), NULL, &options);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, SIGKILL);
  assert_string_equal(result->stdout_buf->data, "ready\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* Without kill_grace the call waits until the child ends on its own, as
 * Node's does. This child ignores SIGTERM and writes until the write fails
 * because the timeout closed the pipes, then exits 7. */
static void spawn_sync_timeout_ignored_without_grace(void **state) {
  cp_spawn_sync_options options = {0};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_until_ready(
      "sh",
      sh_args("trap '' TERM PIPE; echo ready; "
              "while echo more 2>/dev/null; do sleep 0.05; done; exit 7"),
      &options);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->status, 7);
  assert_int_equal(result->signal, 0);
  assert_true(strncmp(result->stdout_buf->data, "ready\n", 6) == 0);

  cp_spawn_sync_result_free(result);
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

static void spawn_sync_timeout_kill_group(void **state) {
  cp_spawn_sync_options options = {
      .spawn = {.detached = true, .kill_group = true}};
  cp_spawn_sync_result *result;

  (void)state;
  become_subreaper(true);
  result = run_until_ready("sh", sh_args("sleep 30 & echo $!; wait"), &options);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->signal, SIGTERM);
  assert_grandchild_ended((pid_t)atol(result->stdout_buf->data));

  become_subreaper(false);
  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * maxBuffer
 * ------------------------------------------------------------------------ */

static cp_spawn_sync_result *run_limited(const char *command, size_t max_buffer,
                                         int kill_signal) {
  cp_spawn_sync_options options = {.max_buffer = max_buffer,
                                   .spawn.kill_signal = kill_signal};

  return run_sync("sh", sh_args(command), &options);
}

static void assert_within_limit(cp_spawn_sync_result *result, size_t out_len,
                                size_t err_len) {
  assert_int_equal(result->error, 0);
  assert_int_equal(result->status, 0);
  assert_int_equal(result->stdout_buf->len, out_len);
  assert_int_equal(result->stderr_buf->len, err_len);
  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* Node's ENOBUFS: the child killed, and here the output cut so that all
 * streams together keep exactly max_buffer bytes. */
static void assert_past_limit(cp_spawn_sync_result *result, size_t max_buffer,
                              int signum) {
  assert_int_equal(result->error, -ENOBUFS);
  assert_string_equal(result->message, "spawnSync sh ENOBUFS");
  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, signum);
  assert_int_equal(result->stdout_buf->len + result->stderr_buf->len,
                   max_buffer);
  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_max_buffer_at_limit_stdout(void **state) {
  (void)state;
  assert_within_limit(run_limited("head -c 10 /dev/zero", 10, 0), 10, 0);
}

static void spawn_sync_max_buffer_at_limit_stderr(void **state) {
  (void)state;
  assert_within_limit(run_limited("head -c 10 /dev/zero >&2", 10, 0), 0, 10);
}

static void spawn_sync_max_buffer_past_limit_stdout(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_limited("head -c 11 /dev/zero; exec sleep 30", 10, 0);
  assert_int_equal(result->stdout_buf->len, 10);
  assert_past_limit(result, 10, SIGTERM);
}

static void spawn_sync_max_buffer_past_limit_stderr(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_limited("head -c 11 /dev/zero >&2; exec sleep 30", 10, 0);
  assert_int_equal(result->stderr_buf->len, 10);
  assert_past_limit(result, 10, SIGTERM);
}

/* Node's spawnSync counts stdout and stderr together. */
static void spawn_sync_max_buffer_shared_by_streams(void **state) {
  (void)state;
  assert_within_limit(
      run_limited("head -c 5 /dev/zero; head -c 5 /dev/zero >&2", 10, 0), 5, 5);
  assert_past_limit(run_limited("head -c 6 /dev/zero; head -c 6 /dev/zero >&2;"
                                " exec sleep 30",
                                10, 0),
                    10, SIGTERM);
}

static void spawn_sync_max_buffer_default_is_1mib(void **state) {
  (void)state;
  assert_within_limit(run_limited("head -c 1048576 /dev/zero", 0, 0), 1048576,
                      0);
  assert_past_limit(
      run_limited("head -c 1048577 /dev/zero; exec sleep 30", 0, 0), 1048576,
      SIGTERM);
}

static void spawn_sync_max_buffer_unlimited(void **state) {
  (void)state;
  assert_within_limit(
      run_limited("head -c 3000000 /dev/zero", CP_MAX_BUFFER_UNLIMITED, 0),
      3000000, 0);
}

static void spawn_sync_max_buffer_kill_signal(void **state) {
  (void)state;
  assert_past_limit(
      run_limited("head -c 101 /dev/zero; exec sleep 30", 100, SIGINT), 100,
      SIGINT);
}

/* ------------------------------------------------------------------------
 * Encodings and stdio
 * ------------------------------------------------------------------------ */

static void spawn_sync_encoding_default_is_bytes(void **state) {
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("printf '\\303\\251\\377'"), NULL);

  assert_int_equal(result->stdout_buf->len, 3);
  assert_memory_equal(result->stdout_buf->data, "\xC3\xA9\xFF", 3);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_encoding_utf8(void **state) {
  cp_spawn_sync_options options = {.encoding = "utf8"};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("printf '\\303\\251\\377'; printf x >&2"),
                    &options);

  assert_string_equal(result->stdout_buf->data, "\xC3\xA9\xEF\xBF\xBD");
  assert_string_equal(result->stderr_buf->data, "x");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_encoding_hex(void **state) {
  cp_spawn_sync_options options = {.encoding = "hex"};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh", sh_args("printf hi"), &options);

  assert_string_equal(result->stdout_buf->data, "6869");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_unknown_encoding_rejected(void **state) {
  cp_spawn_sync_options options = {.encoding = "utf16le"};
  cp_spawn_sync_result *result = (cp_spawn_sync_result *)&result;

  (void)state;
  assert_int_equal(cp_spawn_sync("true", NULL, &options, &result),
                   CP_ERR_UNKNOWN_ENCODING);
  assert_null(result);
}

/* An ignored slot has no output; a pipe past stderr is read like stdout,
 * and the child reading it gets end of file. */
static void spawn_sync_stdio_kinds(void **state) {
  static const cp_stdio stdio[] = {{.kind = CP_STDIO_PIPE},
                                   {.kind = CP_STDIO_IGNORE},
                                   {.kind = CP_STDIO_PIPE},
                                   {.kind = CP_STDIO_PIPE}};
  cp_spawn_sync_options options = {.spawn = {.stdio = stdio, .stdio_count = 4}};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync("sh",
                    sh_args("echo out; echo err >&2; cat <&3 >/dev/null; "
                            "echo three >&3"),
                    &options);

  assert_int_equal(result->status, 0);
  assert_int_equal(result->output_count, 4);
  assert_null(result->output[0].data);
  assert_null(result->output[1].data);
  assert_null(result->stdout_buf);
  assert_string_equal(result->stderr_buf->data, "err\n");
  assert_string_equal(result->output[3].data, "three\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_input_needs_stdin_pipe(void **state) {
  static const cp_stdio stdio[] = {{.kind = CP_STDIO_IGNORE}};
  cp_spawn_sync_options ignored = {.input = "x",
                                   .input_len = 1,
                                   .spawn = {.stdio = stdio, .stdio_count = 1}};
  cp_spawn_sync_options missing = {.input_len = 1};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_spawn_sync("cat", NULL, &ignored, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(result);
  assert_int_equal(cp_spawn_sync("cat", NULL, &missing, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(result);
  assert_no_child_left();
}

/* As in Node: a child that exits without reading its input leaves EPIPE,
 * reported since nothing else failed. 4 MiB is more than a pipe holds. */
static void spawn_sync_unread_input_reports_epipe(void **state) {
  enum { INPUT_SIZE = 4 * 1024 * 1024 };
  cp_spawn_sync_options options = {.input_len = INPUT_SIZE};
  char *input = calloc(1, INPUT_SIZE);
  cp_spawn_sync_result *result;

  (void)state;
  assert_non_null(input);
  options.input = input;
  result = run_sync("true", NULL, &options);

  assert_int_equal(result->status, 0);
  assert_int_equal(result->error, -EPIPE);
  assert_string_equal(result->message, "spawnSync true EPIPE");

  cp_spawn_sync_result_free(result);
  free(input);
  assert_no_child_left();
}

static void spawn_sync_cwd_env_argv0(void **state) {
  static const char *const env[] = {"CP_SYNC_TEST=1", NULL};
  cp_spawn_sync_options options = {
      .spawn = {.cwd = "/", .env = env, .argv0 = "renamed"}};
  cp_spawn_sync_result *result;

  (void)state;
  result = run_sync(cp_test_helper_path("cp-print"), NULL, &options);

  assert_int_equal(result->status, 0);
  assert_string_equal(result->stdout_buf->data,
                      "argv[0]=renamed\ncwd=/\nenv=CP_SYNC_TEST=1\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_uid_gid_as_root(void **state) {
  cp_spawn_sync_options options = {.spawn = {.set_uid = true,
                                             .uid = NOBODY_ID,
                                             .set_gid = true,
                                             .gid = NOBODY_ID}};
  cp_spawn_sync_result *result;

  (void)state;
  if (geteuid() != 0) {
    print_message("not root: uid and gid cannot be changed\n");
    skip();
  }
  result = run_sync("sh", sh_args("id -u; id -g"), &options);

  assert_int_equal(result->status, 0);
  assert_string_equal(result->stdout_buf->data, "65534\n65534\n");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void spawn_sync_invalid_arguments_rejected(void **state) {
  static const cp_stdio bad_fd[] = {{.kind = CP_STDIO_FD, .fd = -1}};
  cp_spawn_sync_options group = {.spawn.kill_group = true};
  cp_spawn_sync_options stdio = {.spawn = {.stdio = bad_fd, .stdio_count = 1}};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_spawn_sync("true", NULL, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_spawn_sync(NULL, NULL, NULL, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(result);
  assert_int_equal(cp_spawn_sync("", NULL, NULL, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_spawn_sync("true", NULL, &group, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_spawn_sync("true", NULL, &stdio, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(result);

  cp_spawn_sync_result_free(NULL);
  assert_no_child_left();
}

static void spawn_sync_caller_takes_output(void **state) {
  cp_spawn_sync_result *result;
  char *stdout_data;

  (void)state;
  result = run_sync("sh", sh_args("echo kept"), NULL);
  stdout_data = result->stdout_buf->data;
  result->stdout_buf->data = NULL;
  cp_spawn_sync_result_free(result);

  assert_string_equal(stdout_data, "kept\n");
  free(stdout_data);
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * A Sync call from inside another loop's callback
 * ------------------------------------------------------------------------ */

typedef struct outer_case {
  cp_child *outer;
  cp_spawn_sync_result *inner;
  int inner_r;
  bool outer_closed_first;
  cp_test_record record;
} outer_case;

/* Runs a Sync child while the outer loop's own child waits for input; the
 * outer loop must not run meanwhile and must carry on afterwards. */
static void on_outer_timer(uv_timer_t *timer) {
  outer_case *c = timer->data;
  cp_stream *outer_stdin = cp_child_stdin(c->outer);

  c->outer_closed_first = c->record.close_exit_code != CP_TEST_NOT_EMITTED;
  c->inner_r =
      cp_spawn_sync("sh", sh_args("echo inner; exit 4"), NULL, &c->inner);

  assert_true(cp_stream_write(outer_stdin, "outer", 5, NULL, NULL) >= 0);
  assert_int_equal(cp_stream_end(outer_stdin), 0);
  uv_close((uv_handle_t *)timer, NULL);
}

static void spawn_sync_inside_loop_callback(void **state) {
  outer_case c = {0};
  uv_timer_t timer;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  c.outer = cp_test_spawn(&loop, "cat", NULL, NULL, &c.record);
  assert_int_equal(uv_timer_init(&loop, &timer), 0);
  timer.data = &c;
  assert_int_equal(uv_timer_start(&timer, on_outer_timer, 10, 0), 0);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_false(c.outer_closed_first);
  assert_int_equal(c.inner_r, 0);
  assert_int_equal(c.inner->status, 4);
  assert_string_equal(c.inner->stdout_buf->data, "inner\n");
  assert_string_equal(c.record.events, "SXC");
  assert_int_equal(c.record.close_exit_code, 0);
  assert_string_equal(c.record.out.bytes, "outer");

  cp_spawn_sync_result_free(c.inner);
  cp_child_release(c.outer);
  cp_test_record_free(&c.record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Sync calls on several threads at once, each on its own loop. */
enum { THREADS = 4, CALLS_PER_THREAD = 10 };

typedef struct thread_case {
  int index;
  int failures;
  char first_failure[160];
} thread_case;

static void check_thread_call(thread_case *c, int call) {
  char command[64];
  char expected[32];
  const char *const args[] = {"-c", command, NULL};
  cp_spawn_sync_result *result = NULL;
  int r;

  snprintf(command, sizeof command, "echo %d-%d; exit %d", c->index, call,
           call);
  snprintf(expected, sizeof expected, "%d-%d\n", c->index, call);
  r = cp_spawn_sync("sh", args, NULL, &result);

  if (r != 0 || result->status != call || result->stdout_buf == NULL ||
      strcmp(result->stdout_buf->data, expected) != 0) {
    if (c->failures++ == 0)
      snprintf(c->first_failure, sizeof c->first_failure,
               "thread %d call %d: returned %s, status %d, stdout \"%s\"",
               c->index, call, cp_err_name(r), result ? result->status : 0,
               result && result->stdout_buf ? result->stdout_buf->data : "");
  }
  cp_spawn_sync_result_free(result);
}

static void *run_thread_calls(void *data) {
  thread_case *c = data;

  for (int call = 0; call < CALLS_PER_THREAD; call++)
    check_thread_call(c, call);
  return NULL;
}

/* Valgrind preloads its vgpreload libraries into the program it runs. */
static bool running_under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");

  return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

static void spawn_sync_on_several_threads(void **state) {
  thread_case cases[THREADS];
  pthread_t threads[THREADS];

  (void)state;
  /* Under valgrind, processes start through fork(), and valgrind's report
   * for each forked child lists what the other threads had allocated as
   * definitely lost, since their stacks do not exist in the child. */
  if (running_under_valgrind()) {
    print_message("skipped under valgrind: forked children report the "
                  "other threads' memory as lost\n");
    skip();
  }
  for (int i = 0; i < THREADS; i++) {
    cases[i] = (thread_case){.index = i};
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_thread_calls, &cases[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);

  for (int i = 0; i < THREADS; i++) {
    if (cases[i].failures > 0)
      fail_msg("%d failed calls; first: %s", cases[i].failures,
               cases[i].first_failure);
  }
  assert_no_child_left();
}

/* ------------------------------------------------------------------------
 * execSync and execFileSync
 * ------------------------------------------------------------------------ */

static void exec_sync_success_returns_zero(void **state) {
  cp_spawn_sync_options options = {.encoding = "utf8"};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(
      cp_exec_sync("echo \"a  b\" | tr a-z A-Z", &options, &result), 0);

  assert_int_equal(result->status, 0);
  assert_string_equal(result->stdout_buf->data, "A  B\n");
  assert_null(result->message);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void exec_sync_nonzero_exit_fails(void **state) {
  cp_spawn_sync_options options = {
      .spawn = {.stdio = three_pipes, .stdio_count = 3}};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(
      cp_exec_sync("echo o; echo e >&2; exit 2", &options, &result),
      CP_ERR_COMMAND_FAILED);

  assert_int_equal(result->status, 2);
  assert_int_equal(result->signal, 0);
  assert_int_equal(result->error, 0);
  assert_string_equal(result->message,
                      "Command failed: echo o; echo e >&2; exit 2\ne\n");
  assert_string_equal(result->stdout_buf->data, "o\n");
  assert_string_equal(result->stderr_buf->data, "e\n");
  assert_true(result->pid > 0);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* Node adds a newline and stderr to the message only when stderr is not
 * empty. */
static void exec_sync_failure_without_stderr(void **state) {
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_sync("exit 2", NULL, &result),
                   CP_ERR_COMMAND_FAILED);
  assert_string_equal(result->message, "Command failed: exit 2");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void exec_sync_signal_fails(void **state) {
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_sync("kill $$", NULL, &result),
                   CP_ERR_COMMAND_FAILED);
  assert_int_equal(result->status, -1);
  assert_int_equal(result->signal, SIGTERM);
  assert_string_equal(result->message, "Command failed: kill $$");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void exec_sync_timeout_returns_etimedout(void **state) {
  static const char *const spawnargs[] = {"-c", "exec sleep 30", NULL};
  cp_spawn_sync_options options = {.spawn.timeout = 100};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_sync("exec sleep 30", &options, &result),
                   -ETIMEDOUT);

  assert_int_equal(result->error, -ETIMEDOUT);
  assert_int_equal(result->signal, SIGTERM);
  assert_string_equal(result->message, "spawnSync /bin/sh ETIMEDOUT");
  assert_string_equal(result->syscall, "spawnSync /bin/sh");
  assert_string_equal(result->path, "/bin/sh");
  assert_spawnargs(result->spawnargs, spawnargs);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void exec_sync_missing_command_exits_127(void **state) {
  cp_spawn_sync_options options = {
      .spawn = {.stdio = three_pipes, .stdio_count = 3}};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_sync("cp-no-such-command-xyz", &options, &result),
                   CP_ERR_COMMAND_FAILED);
  assert_int_equal(result->status, 127);
  assert_int_equal(result->error, 0);
  assert_non_null(strstr(result->stderr_buf->data, "not found"));
  assert_true(strncmp(result->message,
                      "Command failed: cp-no-such-command-xyz\n",
                      strlen("Command failed: cp-no-such-command-xyz\n")) == 0);

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* Runs command with this process's stderr sent to a file, and returns
 * what reached the file. */
static char *capture_parent_stderr(const char *command,
                                   const cp_spawn_sync_options *options,
                                   int *r) {
  char path[] = "/tmp/cp-sync-stderr-XXXXXX";
  int file = mkstemp(path);
  int saved = dup(STDERR_FILENO);
  cp_spawn_sync_result *result = NULL;
  char *text = calloc(1, 256);
  ssize_t n;

  assert_true(file >= 0);
  assert_true(saved >= 0);
  assert_non_null(text);
  assert_int_equal(unlink(path), 0);

  assert_int_equal(dup2(file, STDERR_FILENO), STDERR_FILENO);
  *r = cp_exec_sync(command, options, &result);
  assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
  close(saved);

  n = pread(file, text, 255, 0);
  assert_true(n >= 0);
  close(file);
  cp_spawn_sync_result_free(result);
  return text;
}

/* As in Node, stderr also reaches the parent's stderr unless stdio was
 * given, on success and on failure. */
static void exec_sync_copies_stderr_to_parent(void **state) {
  cp_spawn_sync_options piped = {
      .spawn = {.stdio = three_pipes, .stdio_count = 3}};
  char *copied;
  int r;

  (void)state;
  copied = capture_parent_stderr("echo to-parent >&2", NULL, &r);
  assert_int_equal(r, 0);
  assert_string_equal(copied, "to-parent\n");
  free(copied);

  copied = capture_parent_stderr("echo failing >&2; exit 1", NULL, &r);
  assert_int_equal(r, CP_ERR_COMMAND_FAILED);
  assert_string_equal(copied, "failing\n");
  free(copied);

  copied = capture_parent_stderr("echo kept >&2", &piped, &r);
  assert_int_equal(r, 0);
  assert_string_equal(copied, "");
  free(copied);
  assert_no_child_left();
}

static void exec_sync_invalid_arguments_rejected(void **state) {
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_sync(NULL, NULL, &result), CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_exec_sync("", NULL, &result), CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_exec_file_sync(NULL, NULL, NULL, &result),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_null(result);
  assert_no_child_left();
}

static void exec_file_sync_enoent(void **state) {
  static const char *const args[] = {"a", NULL};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(
      cp_exec_file_sync("cp-no-such-file-xyz", args, NULL, &result), -ENOENT);

  assert_int_equal(result->error, -ENOENT);
  assert_int_equal(result->pid, 0);
  assert_null(result->output);
  assert_string_equal(result->message, "spawnSync cp-no-such-file-xyz ENOENT");
  assert_string_equal(result->syscall, "spawnSync cp-no-such-file-xyz");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

/* Node names the command with argv0 in the message. */
static void exec_file_sync_message_uses_argv0(void **state) {
  static const char *const args[] = {"-c", "exit 5", NULL};
  cp_spawn_sync_options options = {.spawn.argv0 = "myname"};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_file_sync("sh", args, &options, &result),
                   CP_ERR_COMMAND_FAILED);
  assert_int_equal(result->status, 5);
  assert_string_equal(result->message, "Command failed: myname -c exit 5");

  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

static void exec_file_sync_success_and_shell(void **state) {
  static const char *const args[] = {"a", "b", NULL};
  static const char *const shell_args[] = {"$0", NULL};
  cp_spawn_sync_options shell = {.spawn.shell = CP_SHELL_DEFAULT};
  cp_spawn_sync_result *result = NULL;

  (void)state;
  assert_int_equal(cp_exec_file_sync("echo", args, NULL, &result), 0);
  assert_string_equal(result->stdout_buf->data, "a b\n");
  cp_spawn_sync_result_free(result);

  assert_int_equal(cp_exec_file_sync("echo", shell_args, &shell, &result), 0);
  assert_string_equal(result->stdout_buf->data, "/bin/sh\n");
  cp_spawn_sync_result_free(result);
  assert_no_child_left();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spawn_sync_collects_output),
      cmocka_unit_test(spawn_sync_writes_input),
      cmocka_unit_test(spawn_sync_without_input_ends_stdin),
      cmocka_unit_test(spawn_sync_large_input_and_output),
      cmocka_unit_test(spawn_sync_enoent_reports_error),
      cmocka_unit_test(spawn_sync_bad_cwd_reports_error),
      cmocka_unit_test(spawn_sync_nonzero_exit),
      cmocka_unit_test(spawn_sync_signal_death),
      cmocka_unit_test(spawn_sync_timeout_kills_child),
      cmocka_unit_test(spawn_sync_timeout_sends_kill_signal),
      cmocka_unit_test(spawn_sync_timeout_grace_kills_ignoring_child),
      cmocka_unit_test(spawn_sync_timeout_ignored_without_grace),
      cmocka_unit_test(spawn_sync_timeout_kill_group),
      cmocka_unit_test(spawn_sync_max_buffer_at_limit_stdout),
      cmocka_unit_test(spawn_sync_max_buffer_at_limit_stderr),
      cmocka_unit_test(spawn_sync_max_buffer_past_limit_stdout),
      cmocka_unit_test(spawn_sync_max_buffer_past_limit_stderr),
      cmocka_unit_test(spawn_sync_max_buffer_shared_by_streams),
      cmocka_unit_test(spawn_sync_max_buffer_default_is_1mib),
      cmocka_unit_test(spawn_sync_max_buffer_unlimited),
      cmocka_unit_test(spawn_sync_max_buffer_kill_signal),
      cmocka_unit_test(spawn_sync_encoding_default_is_bytes),
      cmocka_unit_test(spawn_sync_encoding_utf8),
      cmocka_unit_test(spawn_sync_encoding_hex),
      cmocka_unit_test(spawn_sync_unknown_encoding_rejected),
      cmocka_unit_test(spawn_sync_stdio_kinds),
      cmocka_unit_test(spawn_sync_input_needs_stdin_pipe),
      cmocka_unit_test(spawn_sync_unread_input_reports_epipe),
      cmocka_unit_test(spawn_sync_cwd_env_argv0),
      cmocka_unit_test(spawn_sync_uid_gid_as_root),
      cmocka_unit_test(spawn_sync_invalid_arguments_rejected),
      cmocka_unit_test(spawn_sync_caller_takes_output),
      cmocka_unit_test(spawn_sync_inside_loop_callback),
      cmocka_unit_test(spawn_sync_on_several_threads),
      cmocka_unit_test(exec_sync_success_returns_zero),
      cmocka_unit_test(exec_sync_nonzero_exit_fails),
      cmocka_unit_test(exec_sync_failure_without_stderr),
      cmocka_unit_test(exec_sync_signal_fails),
      cmocka_unit_test(exec_sync_timeout_returns_etimedout),
      cmocka_unit_test(exec_sync_missing_command_exits_127),
      cmocka_unit_test(exec_sync_copies_stderr_to_parent),
      cmocka_unit_test(exec_sync_invalid_arguments_rejected),
      cmocka_unit_test(exec_file_sync_enoent),
      cmocka_unit_test(exec_file_sync_message_uses_argv0),
      cmocka_unit_test(exec_file_sync_success_and_shell),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, arm_alarm, disarm_alarm);
}
