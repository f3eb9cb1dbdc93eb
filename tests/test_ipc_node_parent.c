/*
 * Send callbacks in a C child whose parent is Node.js: when they run and
 * in what order, while the parent reads nothing, after it starts reading,
 * and when it goes away. tests/ipc/send-order-parent.js is the parent and
 * tests/helpers/cp-send-order.c the child; their headers describe the
 * reports this file checks. Every case is skipped when node is not on
 * PATH.
 *
 * The parent must not read the channel until the child has counted its
 * callbacks, and no timer decides when that is. The parent blocks in
 * fs.readSync() on a pipe that this test creates, until the child has
 * written its count to the other end and closed it.
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 30000

/* The descriptor of the pipe's write end in the Node.js parent, which
 * hands it on to the child at the same number. */
#define GO_WRITE_FD 4

static bool have_node(void) {
  if (system("node --version >/dev/null 2>&1") == 0)
    return true;
  fprintf(stderr, "node is not on PATH: test skipped\n");
  return false;
}

/*
 * Runs `node send-order-parent.js cp-send-order MODE` until it and every
 * process holding its stdout have ended, with the read end of a new pipe
 * as its stdin and the write end at GO_WRITE_FD. record receives its
 * output and exit status.
 */
static void run_node_parent(const char *mode, cp_test_record *record) {
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/send-order-parent.js",
                              cp_test_helper_path("cp-send-order"), mode,
                              NULL};
  cp_stdio stdio[GO_WRITE_FD + 1] = {
      {.kind = CP_STDIO_FD},
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_FD},
  };
  cp_spawn_options options = {.stdio = stdio,
                              .stdio_count = GO_WRITE_FD + 1};
  int go[2];
  uv_loop_t loop;
  cp_child *child;

  assert_int_equal(pipe2(go, O_CLOEXEC), 0);
  stdio[0].fd = go[0];
  stdio[GO_WRITE_FD].fd = go[1];
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "node", args, &options, record);
  /* The parent reads the pipe to end of file, so the child's copy of the
   * write end must be the last one. */
  close(go[0]);
  close(go[1]);

  cp_test_loop_run(&loop, GUARD_MS);
  if (record->close_exit_code == CP_TEST_NOT_EMITTED)
    fail_msg("the loop ended before CLOSE of node; events: \"%s\"",
             record->events);
  if (record->err.len > 0)
    fprintf(stderr, "stderr of node and its child:\n%s", record->err.bytes);
  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

/* Returns the value of the first line of text that is a JSON object with
 * a member named key, or fails the test. The caller frees it. */
static cJSON *find_line_with(const char *text, const char *key) {
  const char *line = text;

  while (*line != '\0') {
    const char *end = strchr(line, '\n');
    size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
    cJSON *value = cJSON_ParseWithLength(line, len);

    if (cJSON_GetObjectItemCaseSensitive(value, key) != NULL)
      return value;
    cJSON_Delete(value);
    line += len + (end != NULL);
  }
  fail_msg("no line with \"%s\" in the output:\n%s", key, text);
  return NULL;
}

/* Returns the member name of object as a count. Fails the test unless it
 * is a whole number of at least 0, so a -1 in the child's report (a
 * failed ioctl) fails too. */
static size_t count_of(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

  if (!cJSON_IsNumber(item))
    fail_msg("member \"%s\" is missing or not a number", name);
  if (item->valuedouble < 0 || item->valuedouble > (double)SIZE_MAX ||
      item->valuedouble != (double)(size_t)item->valuedouble)
    fail_msg("member \"%s\" is %g, expected a count", name,
             item->valuedouble);
  return (size_t)item->valuedouble;
}

static void assert_member_count(const cJSON *object, const char *name,
                                size_t expected) {
  size_t value = count_of(object, name);

  if (value != expected)
    fail_msg("member \"%s\" is %zu, expected %zu", name, value, expected);
}

static void assert_member_true(const cJSON *object, const char *name) {
  if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(object, name)))
    fail_msg("member \"%s\" is missing or not true", name);
}

static const char *text_of(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

  if (!cJSON_IsString(item))
    fail_msg("member \"%s\" is missing or not a string", name);
  return item->valuestring;
}

/* Checks what the child saw while the parent read nothing. Some of its
 * messages fit in the socket but not all, their callbacks ran, and the
 * second round of iterations ran no callback. */
static void assert_blocked_phase(const cJSON *helper) {
  assert_member_true(helper, "settled");
  assert_in_range(count_of(helper, "before"), 1, count_of(helper, "sent") - 1);
  /* A callback ran only for records the socket has taken. SIOCOUTQ
   * counts the kernel's memory for them, so it is at least their bytes.
   * NOTE: a callback held back for a record the socket took whole goes
   * unnoticed, since SIOCOUTQ is no exact count of unread bytes. */
  assert_in_range(count_of(helper, "beforeBytes"), 0,
                  count_of(helper, "socketMemory"));
}

/* Checks the part of the child's report that every case shares. */
static void assert_callbacks_complete(const cJSON *helper) {
  assert_member_count(helper, "callbacks", count_of(helper, "sent"));
  assert_member_true(helper, "inOrder");
  assert_member_true(helper, "okThenFailed");
  assert_member_true(helper, "disconnect");
  assert_member_true(helper, "close");
}

/* Checks that the callbacks of the messages the socket had taken got 0
 * and every later one an error, after a parent that read nothing went
 * away. */
static void assert_backlog_failed(const cJSON *helper) {
  const char *first_error = text_of(helper, "firstError");
  size_t before = count_of(helper, "before");

  assert_callbacks_complete(helper);
  assert_member_count(helper, "ok", before);
  assert_member_count(helper, "failed", count_of(helper, "sent") - before);
  if (strcmp(first_error, "EPIPE") != 0 &&
      strcmp(first_error, "ECONNRESET") != 0 &&
      strcmp(first_error, "ERR_IPC_CHANNEL_CLOSED") != 0)
    fail_msg("first failed callback got %s", first_error);
}

/* A Node parent that reads nothing at first: the callbacks of the
 * messages the socket took run at once and in order, the rest wait, and
 * all of them get 0 once the parent reads every message, in order. */
static void send_callbacks_wait_for_node_parent(void **state) {
  cp_test_record record;
  cJSON *summary;
  const cJSON *parent;
  const cJSON *helper;
  const cJSON *go;

  (void)state;
  if (!have_node())
    skip();
  run_node_parent("read", &record);

  assert_int_equal(record.exit_code, 0);
  summary = find_line_with(record.out.bytes, "parent");
  parent = cJSON_GetObjectItemCaseSensitive(summary, "parent");
  helper = cJSON_GetObjectItemCaseSensitive(summary, "helper");
  go = cJSON_GetObjectItemCaseSensitive(parent, "go");
  assert_true(cJSON_IsObject(helper));
  assert_member_count(summary, "helperExit", 0);

  assert_blocked_phase(helper);
  assert_member_count(go, "before", count_of(helper, "before"));
  assert_callbacks_complete(helper);
  assert_member_count(helper, "ok", count_of(helper, "sent"));
  assert_member_count(helper, "failed", 0);
  assert_string_equal(text_of(helper, "firstError"), "");

  assert_member_count(parent, "received", count_of(helper, "sent"));
  assert_member_count(parent, "outOfOrder", 0);
  assert_member_count(parent, "badPads", 0);
  cJSON_Delete(summary);
  cp_test_record_free(&record);
}

/* A Node parent that disconnects without reading: the callbacks still
 * due get an error, in order, and the child exits with status 0. */
static void send_callbacks_fail_when_node_parent_disconnects(void **state) {
  cp_test_record record;
  cJSON *summary;
  const cJSON *parent;
  const cJSON *helper;

  (void)state;
  if (!have_node())
    skip();
  run_node_parent("disconnect", &record);

  assert_int_equal(record.exit_code, 0);
  summary = find_line_with(record.out.bytes, "parent");
  parent = cJSON_GetObjectItemCaseSensitive(summary, "parent");
  helper = cJSON_GetObjectItemCaseSensitive(summary, "helper");
  assert_true(cJSON_IsObject(helper));
  assert_member_count(summary, "helperExit", 0);
  assert_member_count(parent, "received", 0);

  assert_blocked_phase(helper);
  assert_backlog_failed(helper);
  cJSON_Delete(summary);
  cp_test_record_free(&record);
}

/* Waits for the child that outlived its Node parent, reparented to this
 * process, and returns its wait status. */
static int reap_orphan(pid_t pid) {
  int status = 0;
  pid_t r;

  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r != pid)
    fail_msg("waitpid(%d) failed: %s", (int)pid, strerror(errno));
  return status;
}

/* A Node parent killed while the child's messages wait: every callback
 * still due gets an error, in order, and the child exits with status 0.
 * The parent cannot check the child, so this test reads the child's
 * report from the stdout it inherited, and reaps the child itself. */
static void send_callbacks_fail_when_node_parent_killed(void **state) {
  cp_test_record record;
  cJSON *parent_line;
  cJSON *helper_line;
  const cJSON *helper;
  const cJSON *go;
  int status;

  (void)state;
  if (!have_node())
    skip();
  /* An orphaned descendant is reparented to this process, not to init,
   * so that its exit status can be read here. */
  assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  run_node_parent("kill", &record);

  assert_int_equal(record.exit_signal, SIGKILL);
  parent_line = find_line_with(record.out.bytes, "parent");
  helper_line = find_line_with(record.out.bytes, "helper");
  go = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(parent_line, "parent"), "go");
  helper = cJSON_GetObjectItemCaseSensitive(helper_line, "helper");

  /* The child closed its stdout, which ended this test's read, only when
   * it exited. */
  status = reap_orphan((pid_t)count_of(helper, "pid"));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  assert_member_count(go, "before", count_of(helper, "before"));
  assert_blocked_phase(helper);
  assert_backlog_failed(helper);
  cJSON_Delete(parent_line);
  cJSON_Delete(helper_line);
  cp_test_record_free(&record);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(send_callbacks_wait_for_node_parent),
      cmocka_unit_test(send_callbacks_fail_when_node_parent_disconnects),
      cmocka_unit_test(send_callbacks_fail_when_node_parent_killed),
  };

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
