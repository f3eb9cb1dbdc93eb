/*
 * cp_spawn() options: env, cwd, argv0, shell, detached, uid and gid, and
 * the descriptors a child receives. Every case starts real processes, and
 * most run the cp-print helper, which prints its argv, cwd and environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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
enum { GUARD_MS = 10000 };

/* The ID of the user and group "nobody" on Linux distributions. */
enum { NOBODY_ID = 65534 };

extern char **environ;

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* Text built up with printf-style appends, for expected outputs. */
typedef struct text {
  char *bytes;
  size_t len;
} text;

static void text_append(text *t, const char *format, ...) {
  va_list args;
  va_list copy;
  int added;

  va_start(args, format);
  va_copy(copy, args);
  added = vsnprintf(NULL, 0, format, copy);
  va_end(copy);
  assert_true(added >= 0);

  t->bytes = realloc(t->bytes, t->len + (size_t)added + 1);
  assert_non_null(t->bytes);
  vsnprintf(t->bytes + t->len, (size_t)added + 1, format, args);
  t->len += (size_t)added;
  va_end(args);
}

/* cp-print's output for these argv, cwd and environment lines. */
static void expect_print(text *expected, const char *const *argv,
                         const char *cwd, const char *const *env) {
  for (size_t i = 0; argv[i] != NULL; i++)
    text_append(expected, "argv[%zu]=%s\n", i, argv[i]);
  text_append(expected, "cwd=%s\n", cwd);
  for (size_t i = 0; env[i] != NULL; i++)
    text_append(expected, "env=%s\n", env[i]);
}

/* Compares two outputs, and on a mismatch names the first line that
 * differs, since whole outputs are too long for cmocka's message. */
static void assert_same_output(const char *actual, const char *expected) {
  size_t line_start = 0;
  size_t line_number = 1;
  size_t i = 0;

  while (actual[i] != '\0' && actual[i] == expected[i]) {
    if (actual[i] == '\n') {
      line_start = i + 1;
      line_number++;
    }
    i++;
  }
  if (actual[i] == expected[i])
    return;

  fail_msg("output differs at line %zu:\n  actual:   %.*s\n  expected: %.*s",
           line_number, (int)strcspn(actual + line_start, "\n"),
           actual + line_start, (int)strcspn(expected + line_start, "\n"),
           expected + line_start);
}

/* Runs file to CLOSE, checks that it exited 0 with nothing on stderr, and
 * returns its stdout (the caller frees it). */
static char *run_for_output(const char *file, const char *const *args,
                            const cp_spawn_options *options) {
  cp_test_record record;
  uv_loop_t loop;
  char *output;

  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, file, args, options, &record, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  if (record.err.len > 0)
    fail_msg("%s wrote to stderr: %s", file, record.err.bytes);
  assert_int_equal(record.exit_code, 0);
  output = strdup(record.out.bytes != NULL ? record.out.bytes : "");
  assert_non_null(output);

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  return output;
}

static void current_dir(char *cwd, size_t size) {
  assert_non_null(getcwd(cwd, size));
}

static void env_replaces_parent_environment(void **state) {
  const char *const env[] = {"CP_A=1", "CP_B=two  words", "CP_EMPTY=", NULL};
  cp_spawn_options options = {.env = env};
  const char *print = cp_test_helper_path("cp-print");
  const char *const argv[] = {print, NULL};
  text expected = {0};
  char cwd[PATH_MAX];
  char *output;

  (void)state;
  assert_int_equal(setenv("CP_CHILD_TEST_MARK", "parent only", 1), 0);
  current_dir(cwd, sizeof(cwd));
  expect_print(&expected, argv, cwd, env);

  output = run_for_output(print, NULL, &options);
  assert_int_equal(unsetenv("CP_CHILD_TEST_MARK"), 0);

  assert_same_output(output, expected.bytes);
  free(output);
  free(expected.bytes);
}

/* Removes from lines, in place, every line that starts with prefix. */
static void drop_lines_with_prefix(char *lines, const char *prefix) {
  char *from = lines;
  char *to = lines;

  while (*from != '\0') {
    size_t line_len = strcspn(from, "\n");

    if (from[line_len] == '\n')
      line_len++;
    if (strncmp(from, prefix, strlen(prefix)) != 0) {
      memmove(to, from, line_len);
      to += line_len;
    }
    from += line_len;
  }
  *to = '\0';
}

/* LD_PRELOAD is left out of the comparison because valgrind rewrites it
 * for the programs it starts without tracing them. */
static void env_null_inherits_parent_environment(void **state) {
  const char *print = cp_test_helper_path("cp-print");
  const char *const argv[] = {print, NULL};
  text expected = {0};
  char cwd[PATH_MAX];
  char *output;

  (void)state;
  assert_int_equal(setenv("CP_CHILD_TEST_MARK", "inherited  value", 1), 0);
  current_dir(cwd, sizeof(cwd));
  expect_print(&expected, argv, cwd, (const char *const *)environ);

  output = run_for_output(print, NULL, NULL);
  assert_int_equal(unsetenv("CP_CHILD_TEST_MARK"), 0);

  assert_non_null(strstr(output, "\nenv=CP_CHILD_TEST_MARK=inherited  value\n"));
  drop_lines_with_prefix(output, "env=LD_PRELOAD=");
  drop_lines_with_prefix(expected.bytes, "env=LD_PRELOAD=");
  assert_same_output(output, expected.bytes);
  free(output);
  free(expected.bytes);
}

/* The helper directory is not in this process's PATH, only in the
 * child's. */
static void env_path_used_for_search(void **state) {
  char path_entry[PATH_MAX + 8];
  const char *const env[] = {path_entry, NULL};
  cp_spawn_options options = {.env = env};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  snprintf(path_entry, sizeof(path_entry), "PATH=%s", CP_TEST_HELPER_DIR);
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "cp-print", NULL, &options, &record);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_non_null(record.out.bytes);
  assert_true(strncmp(record.out.bytes, "argv[0]=cp-print\n", 17) == 0);
  assert_string_equal(cp_child_spawnfile(child), "cp-print");

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* The reverse: a program found only in this process's PATH is not found
 * when the given environment's PATH lacks its directory. */
static void env_path_replaces_parent_path(void **state) {
  const char *const env[] = {"PATH=/nonexistent-cp-dir", NULL};
  cp_spawn_options options = {.env = env};
  const char *saved = getenv("PATH");
  char *saved_path = strdup(saved != NULL ? saved : "");
  char *parent_path = NULL;
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_non_null(saved_path);
  assert_true(asprintf(&parent_path, "%s:%s", CP_TEST_HELPER_DIR,
                       saved_path) > 0);
  assert_int_equal(setenv("PATH", parent_path, 1), 0);
  assert_int_equal(uv_loop_init(&loop), 0);

  cp_test_run_child(&loop, "cp-print", NULL, &options, &record, GUARD_MS);
  assert_int_equal(setenv("PATH", saved_path, 1), 0);

  assert_string_equal(record.events, "EC");
  assert_int_equal(record.error, -ENOENT);
  assert_string_equal(record.syscall, "spawn cp-print");

  free(parent_path);
  free(saved_path);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

static void cwd_sets_working_directory(void **state) {
  char dir[] = "/tmp/cp-child-options-XXXXXX";
  char real_dir[PATH_MAX];
  cp_spawn_options options = {.cwd = dir};
  const char *print = cp_test_helper_path("cp-print");
  const char *const argv[] = {print, NULL};
  const char *const no_env[] = {NULL};
  text expected = {0};
  char *output;

  (void)state;
  assert_non_null(mkdtemp(dir));
  assert_non_null(realpath(dir, real_dir));
  options.env = no_env;
  expect_print(&expected, argv, real_dir, no_env);

  output = run_for_output(print, NULL, &options);
  assert_int_equal(rmdir(dir), 0);

  assert_same_output(output, expected.bytes);
  free(output);
  free(expected.bytes);
}

static void argv0_seen_by_child(void **state) {
  const char *const args[] = {"first", "second  arg", NULL};
  const char *const no_env[] = {NULL};
  cp_spawn_options options = {.argv0 = "custom-argv0", .env = no_env};
  const char *print = cp_test_helper_path("cp-print");
  const char *const argv[] = {"custom-argv0", "first", "second  arg", NULL};
  const char *const *spawnargs;
  cp_test_record record;
  text expected = {0};
  char cwd[PATH_MAX];
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  current_dir(cwd, sizeof(cwd));
  expect_print(&expected, argv, cwd, no_env);
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, print, args, &options, &record);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_same_output(record.out.bytes, expected.bytes);
  assert_string_equal(cp_child_spawnfile(child), print);
  spawnargs = cp_child_spawnargs(child);
  assert_string_equal(spawnargs[0], "custom-argv0");
  assert_string_equal(spawnargs[1], "first");
  assert_string_equal(spawnargs[2], "second  arg");
  assert_null(spawnargs[3]);

  cp_child_release(child);
  cp_test_record_free(&record);
  free(expected.bytes);
  cp_test_loop_finish(&loop);
}

static void spawnargs_start_with_file(void **state) {
  const char *const args[] = {"0", NULL};
  const char *const *spawnargs;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_spawn(&loop, "true", args, NULL, &child), 0);

  assert_string_equal(cp_child_spawnfile(child), "true");
  spawnargs = cp_child_spawnargs(child);
  assert_string_equal(spawnargs[0], "true");
  assert_string_equal(spawnargs[1], "0");
  assert_null(spawnargs[2]);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(cp_child_exit_code(child), 0);
  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

/* Runs command through shell and checks spawnfile, spawnargs and stdout. */
static void check_shell_run(const char *command, const char *const *args,
                            const char *joined, const char *output) {
  cp_spawn_options options = {.shell = CP_SHELL_DEFAULT};
  const char *const *spawnargs;
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, command, args, &options, &record);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 0);
  assert_string_equal(record.out.bytes, output);
  assert_string_equal(cp_child_spawnfile(child), "/bin/sh");
  spawnargs = cp_child_spawnargs(child);
  assert_string_equal(spawnargs[0], "/bin/sh");
  assert_string_equal(spawnargs[1], "-c");
  assert_string_equal(spawnargs[2], joined);
  assert_null(spawnargs[3]);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

static void shell_default_runs_command_line(void **state) {
  const char *command = "echo 'a  b' \"c\" | tr a-z A-Z";

  (void)state;
  check_shell_run(command, NULL, command, "A  B C\n");
}

/* As in Node, the file and args are joined with single spaces, unquoted. */
static void shell_joins_args_with_spaces(void **state) {
  const char *const args[] = {"x", "'y  z'", "$((1 + 2))", NULL};

  (void)state;
  check_shell_run("echo", args, "echo x 'y  z' $((1 + 2))", "x y  z 3\n");
}

/* cp-print as the shell shows exactly how a shell is invoked. */
static void shell_custom_path_gets_dash_c(void **state) {
  const char *const args[] = {"world", NULL};
  const char *const no_env[] = {NULL};
  char print[PATH_MAX];
  cp_spawn_options options = {.shell = print, .env = no_env};
  const char *const *spawnargs;
  cp_test_record record;
  char expected[PATH_MAX + 64];
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  snprintf(print, sizeof(print), "%s", cp_test_helper_path("cp-print"));
  snprintf(expected, sizeof(expected),
           "argv[0]=%s\nargv[1]=-c\nargv[2]=hello  world\ncwd=", print);
  assert_int_equal(uv_loop_init(&loop), 0);
  /* "hello " and "world" join to "hello  world": the space is kept, since
   * nothing is quoted or trimmed. */
  child = cp_test_spawn(&loop, "hello ", args, &options, &record);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_non_null(record.out.bytes);
  assert_true(strncmp(record.out.bytes, expected, strlen(expected)) == 0);
  assert_string_equal(cp_child_spawnfile(child), print);
  spawnargs = cp_child_spawnargs(child);
  assert_string_equal(spawnargs[0], print);
  assert_string_equal(spawnargs[2], "hello  world");

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* With a shell, argv0 names the shell's argv[0], as in Node. */
static void shell_takes_argv0(void **state) {
  const char *const no_env[] = {NULL};
  char print[PATH_MAX];
  cp_spawn_options options = {
      .shell = print, .argv0 = "my-shell", .env = no_env};
  const char *expected = "argv[0]=my-shell\nargv[1]=-c\nargv[2]=cmd\ncwd=";
  char *output;

  (void)state;
  snprintf(print, sizeof(print), "%s", cp_test_helper_path("cp-print"));
  output = run_for_output("cmd", NULL, &options);

  assert_true(strncmp(output, expected, strlen(expected)) == 0);
  free(output);
}

/*
 * Detached: cp-grandchild leads a new process group and starts two
 * `sleep 30` grandchildren, one detached. The case signals that group,
 * never its own: it checks that the group is cp-grandchild's and differs
 * from this process's. This process is a child subreaper for the case, so
 * both grandchildren are reparented here once cp-grandchild dies.
 */
typedef struct group_kill {
  const cp_test_record *record;
  long detached_pid;
  long attached_pid;
  bool pids_parsed;
  bool helper_leads_group;
  bool attached_in_group;
  bool detached_leads_session;
  int kill_result;
} group_kill;

/* Runs once both pid lines have arrived. The recording listener was added
 * before this one, so the record already contains the output so far. */
static void kill_group_after_pids(cp_stream *stream, const cp_event *event,
                                  void *data) {
  group_kill *kill_state = data;
  const char *output = kill_state->record->out.bytes;
  pid_t helper = cp_child_pid(cp_stream_child(stream));
  const char *first_newline;

  (void)event;
  if (kill_state->pids_parsed || output == NULL)
    return;
  first_newline = strchr(output, '\n');
  if (first_newline == NULL || strchr(first_newline + 1, '\n') == NULL)
    return;

  kill_state->pids_parsed =
      sscanf(output, "detached=%ld\nattached=%ld\n", &kill_state->detached_pid,
             &kill_state->attached_pid) == 2;
  if (!kill_state->pids_parsed)
    return;

  kill_state->helper_leads_group =
      helper > 0 && getpgid(helper) == helper && helper != getpgrp();
  kill_state->attached_in_group =
      getpgid((pid_t)kill_state->attached_pid) == helper;
  kill_state->detached_leads_session =
      getsid((pid_t)kill_state->detached_pid) == kill_state->detached_pid;
  if (kill_state->helper_leads_group)
    kill_state->kill_result = kill(-helper, SIGTERM);
}

/* Waits until pid, a child of this process, has ended, and returns its
 * wait status. Fails the test, killing pid, if it still runs after 10 s. */
static int wait_for_end(pid_t pid) {
  const struct timespec pause_10ms = {0, 10 * 1000 * 1000};
  int status;

  for (int tries = 0; tries < 1000; tries++) {
    pid_t r = waitpid(pid, &status, WNOHANG);

    if (r == pid)
      return status;
    if (r != 0)
      fail_msg("waitpid(%ld) failed: %s", (long)pid, strerror(errno));
    nanosleep(&pause_10ms, NULL);
  }
  kill(pid, SIGKILL);
  fail_msg("process %ld still runs 10 s after its group was signalled",
           (long)pid);
  return -1;
}

static void detached_child_survives_group_kill(void **state) {
  group_kill kill_state = {.kill_result = -12345};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;
  pid_t detached;
  int status;

  (void)state;
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, cp_test_helper_path("cp-grandchild"), NULL,
                        NULL, &record);
  kill_state.record = &record;
  assert_int_equal(cp_stream_on(cp_child_stdout(child), CP_EVENT_DATA,
                                kill_group_after_pids, &kill_state),
                   0);

  cp_test_loop_run(&loop, GUARD_MS);

  if (!kill_state.pids_parsed)
    fail_msg("cp-grandchild printed no pids: stdout \"%s\", stderr \"%s\"",
             record.out.bytes != NULL ? record.out.bytes : "",
             record.err.bytes != NULL ? record.err.bytes : "");
  detached = (pid_t)kill_state.detached_pid;
  assert_true(kill_state.helper_leads_group);
  assert_true(kill_state.attached_in_group);
  assert_true(kill_state.detached_leads_session);
  assert_int_equal(kill_state.kill_result, 0);
  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_signal, SIGTERM);

  status = wait_for_end((pid_t)kill_state.attached_pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGTERM);

  /* The detached grandchild is still running: reparented here, alive. */
  assert_int_equal(waitpid(detached, &status, WNOHANG), 0);
  assert_int_equal(kill(detached, 0), 0);
  assert_int_equal(kill(detached, SIGKILL), 0);
  status = wait_for_end(detached);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGKILL);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
  assert_no_child_left();
}

static void uid_and_gid_set_as_root(void **state) {
  cp_spawn_options options = {
      .shell = CP_SHELL_DEFAULT,
      .cwd = "/",
      .set_uid = true,
      .uid = NOBODY_ID,
      .set_gid = true,
      .gid = NOBODY_ID,
  };
  char *output;

  (void)state;
  if (geteuid() != 0) {
    fprintf(stderr, "skipped: setting a child's uid and gid needs root\n");
    skip();
  }

  output = run_for_output("id -u; id -g; id -G", NULL, &options);

  /* id -G also shows that root's supplementary groups were dropped. */
  assert_string_equal(output, "65534\n65534\n65534\n");
  free(output);
}

/* Runs inside cp-spawn-unprivileged, which drops to user 65534 and then
 * calls cp_spawn() with uid 0. The spawn error's exit code is -EPERM, -1. */
static void uid_without_privilege_emits_eperm(void **state) {
  const char *const args[] = {"65534", "/bin/true", NULL};
  char *output;

  (void)state;
  if (geteuid() != 0) {
    fprintf(stderr, "skipped: dropping to another user needs root\n");
    skip();
  }

  output = run_for_output(cp_test_helper_path("cp-spawn-unprivileged"), args,
                          NULL);

  assert_string_equal(output,
                      "error EPERM spawn /bin/true|/bin/true\nclose -1 0\n");
  free(output);
}

/*
 * Descriptors: with a descriptor open in this process without
 * close-on-exec, the child still gets only its stdio slots.
 */
static char *run_fds_with_leak_candidate(const cp_spawn_options *options) {
  int leak_candidate = open("/dev/null", O_RDONLY);
  char *output;

  assert_true(leak_candidate >= 0);
  output = run_for_output(cp_test_helper_path("cp-fds"), NULL, options);
  assert_int_equal(close(leak_candidate), 0);
  return output;
}

static void stdio_default_leaks_no_descriptor(void **state) {
  char *output;

  (void)state;
  output = run_fds_with_leak_candidate(NULL);
  assert_string_equal(output, "0\n1\n2\n");
  free(output);
}

static void stdio_extra_pipes_reach_child(void **state) {
  const cp_stdio stdio[] = {
      {.kind = CP_STDIO_PIPE}, {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_PIPE}, {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_PIPE},
  };
  cp_spawn_options options = {.stdio = stdio, .stdio_count = 5};
  char *output;

  (void)state;
  output = run_fds_with_leak_candidate(&options);
  assert_string_equal(output, "0\n1\n2\n3\n4\n");
  free(output);
}

/* set_uid and set_gid take the fork() path, which closes descriptors on
 * its own. Root may keep its own ids. */
static void fork_path_leaks_no_descriptor(void **state) {
  cp_spawn_options options = {.set_uid = true, .uid = 0, .set_gid = true,
                              .gid = 0};
  char *output;

  (void)state;
  if (geteuid() != 0) {
    fprintf(stderr, "skipped: setting a child's uid to 0 needs root\n");
    skip();
  }

  output = run_fds_with_leak_candidate(&options);
  assert_string_equal(output, "0\n1\n2\n");
  free(output);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(env_replaces_parent_environment),
      cmocka_unit_test(env_null_inherits_parent_environment),
      cmocka_unit_test(env_path_used_for_search),
      cmocka_unit_test(env_path_replaces_parent_path),
      cmocka_unit_test(cwd_sets_working_directory),
      cmocka_unit_test(argv0_seen_by_child),
      cmocka_unit_test(spawnargs_start_with_file),
      cmocka_unit_test(shell_default_runs_command_line),
      cmocka_unit_test(shell_joins_args_with_spaces),
      cmocka_unit_test(shell_custom_path_gets_dash_c),
      cmocka_unit_test(shell_takes_argv0),
      cmocka_unit_test(detached_child_survives_group_kill),
      cmocka_unit_test(uid_and_gid_set_as_root),
      cmocka_unit_test(uid_without_privilege_emits_eperm),
      cmocka_unit_test(stdio_default_leaks_no_descriptor),
      cmocka_unit_test(stdio_extra_pipes_reach_child),
      cmocka_unit_test(fork_path_leaks_no_descriptor),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
