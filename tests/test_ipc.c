/* cp_fork(), the child's IPC channel and its events, with C and Node.js
 * peers. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 20000

/* What one forked child did, in order: events as letters (M message, I
 * internal message, D disconnect, X exit, C close, E error), the messages'
 * JSON text, and the errors. */
typedef struct ipc_record {
  char events[64];
  size_t event_count;
  cJSON *messages; /* the first KEPT_MESSAGES values, taken */
  int *seqs;       /* the "seq" member of every message, -1 when none */
  size_t seq_capacity;
  size_t message_count;
  size_t messages_at_exit;
  int error;
  int close_count;
  int exit_code;
  int internal_count;
  bool disconnect_on_count; /* disconnect once expected messages arrived */
  size_t expected;
} ipc_record;

static void record_event(ipc_record *record, char letter) {
  if (record->event_count + 1 < sizeof(record->events))
    record->events[record->event_count++] = letter;
}

/* cJSON appends by walking its list, so only a few values are kept. */
enum { KEPT_MESSAGES = 64 };

static void keep_seq(ipc_record *record, const cJSON *value) {
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(value, "seq");

  if (record->message_count == record->seq_capacity) {
    record->seq_capacity = record->seq_capacity ? 2 * record->seq_capacity : 64;
    record->seqs =
        realloc(record->seqs, record->seq_capacity * sizeof(*record->seqs));
    assert_non_null(record->seqs);
  }
  record->seqs[record->message_count] =
      cJSON_IsNumber(seq) ? (int)seq->valuedouble : -1;
}

static void on_message(cp_child *child, const cp_event *event, void *data) {
  ipc_record *record = data;

  keep_seq(record, event->message);
  if (record->message_count < KEPT_MESSAGES) {
    cJSON *value = cp_event_take_message(event);

    assert_non_null(value);
    cJSON_AddItemToArray(record->messages, value);
  }
  record->message_count++;
  if (record->event_count == 0 ||
      record->events[record->event_count - 1] != 'M')
    record_event(record, 'M');
  if (record->disconnect_on_count && record->message_count == record->expected)
    assert_int_equal(cp_child_disconnect(child), 0);
}

static void on_internal(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)event;
  record_event(data, 'I');
}

static void on_event(cp_child *child, const cp_event *event, void *data) {
  ipc_record *record = data;

  (void)child;
  switch (event->type) {
  case CP_EVENT_DISCONNECT:
    record_event(record, 'D');
    break;
  case CP_EVENT_EXIT:
    record->messages_at_exit = record->message_count;
    record->exit_code = event->exit_code;
    record_event(record, 'X');
    break;
  case CP_EVENT_CLOSE:
    record->close_count++;
    record_event(record, 'C');
    break;
  case CP_EVENT_ERROR:
    if (record->error == 0)
      record->error = event->error;
    record_event(record, 'E');
    break;
  default:
    break;
  }
}

static void watch(cp_child *child, ipc_record *record) {
  static const cp_event_type types[] = {CP_EVENT_DISCONNECT, CP_EVENT_EXIT,
                                        CP_EVENT_CLOSE, CP_EVENT_ERROR};

  record->messages = cJSON_CreateArray();
  assert_int_equal(cp_child_on(child, CP_EVENT_MESSAGE, on_message, record), 0);
  assert_int_equal(
      cp_child_on(child, CP_EVENT_INTERNAL_MESSAGE, on_internal, record), 0);
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    assert_int_equal(cp_child_on(child, types[i], on_event, record), 0);
}

static void finish(uv_loop_t *loop, cp_child *child, ipc_record *record) {
  cp_child_release(child);
  cp_test_loop_finish(loop);
  cJSON_Delete(record->messages);
  free(record->seqs);
}

static const char *echo_worker(void) {
  return CP_TEST_EXAMPLES_DIR "/echo-worker";
}

static bool have_node(void) {
  if (system("node --version >/dev/null 2>&1") == 0)
    return true;
  fprintf(stderr, "node is not on PATH: test skipped\n");
  return false;
}

static cJSON *numbered(int seq) {
  cJSON *message = cJSON_CreateObject();

  cJSON_AddNumberToObject(message, "seq", seq);
  cJSON_AddStringToObject(message, "data", "hello");
  return message;
}

/* Checks that record->messages holds {"seq":0..count-1} in order. */
static void assert_in_order(const ipc_record *record, int count) {
  assert_int_equal(record->message_count, (size_t)count);
  for (int i = 0; i < count; i++)
    assert_int_equal(record->seqs[i], i);
}

static void send_numbered(cp_child *child, int count) {
  for (int i = 0; i < count; i++) {
    cJSON *message = numbered(i);

    assert_true(cp_child_send(child, message, NULL, NULL, NULL, NULL) >= 0);
    cJSON_Delete(message);
  }
}

static void fork_c_echo_worker_keeps_order(void **state) {
  enum { COUNT = 100000 };
  uv_loop_t loop;
  ipc_record record = {.disconnect_on_count = true, .expected = COUNT};
  cp_child *child;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, echo_worker(), NULL, NULL, &child), 0);
  assert_true(cp_child_connected(child));
  watch(child, &record);

  send_numbered(child, COUNT);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, COUNT);
  assert_string_equal(record.events, "MDXC");
  assert_int_equal(record.close_count, 1);
  assert_int_equal(record.exit_code, 0);
  assert_false(cp_child_connected(child));
  finish(&loop, child, &record);
}

static void fork_node_child_round_trips_values(void **state) {
  static const char *const texts[] = {
      "\"hello\"",
      "42",
      "-0.5",
      "1e+21",
      "null",
      "true",
      "[1,\"x\",{\"a\":[]}]",
      ("{\"s\":\"\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80\xe2\x80\xa8"
       "\xe2\x80\xa9\\n\\\"\\\\\"}"),
  };
  enum { COUNT = sizeof(texts) / sizeof(texts[0]) };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {.disconnect_on_count = true, .expected = COUNT};
  cp_child *child;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], NULL, &options, &child), 0);
  watch(child, &record);
  for (size_t i = 0; i < COUNT; i++)
    assert_int_equal(
        cp_child_send_json(child, texts[i], strlen(texts[i]), NULL, NULL), 1);

  cp_test_loop_run(&loop, GUARD_MS);

  /* The child's ready message is internal (cmd NODE_TEST_READY). */
  assert_string_equal(record.events, "IMDXC");
  assert_int_equal(record.message_count, COUNT);
  for (size_t i = 0; i < COUNT; i++) {
    char *text =
        cJSON_PrintUnformatted(cJSON_GetArrayItem(record.messages, (int)i));
    cJSON *expected = cJSON_Parse(texts[i]);
    char *expected_text = cJSON_PrintUnformatted(expected);

    assert_string_equal(text, expected_text);
    free(text);
    free(expected_text);
    cJSON_Delete(expected);
  }
  finish(&loop, child, &record);
}

static void node_parent_talks_to_c_child(void **state) {
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/fork-c-child.js",
                              CP_TEST_EXAMPLES_DIR "/echo-worker", NULL};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, "node", args, NULL, &record, GUARD_MS);

  assert_int_equal(record.exit_code, 0);
  assert_non_null(strstr(record.out.bytes, "echo ok\n"));
  assert_non_null(strstr(record.out.bytes, "exit 0 null\n"));
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* A child that sends and exits at once: every message still comes before
 * EXIT, where Node races. */
static void messages_sent_before_exit_precede_exit(void **state) {
  enum { COUNT = 2000 };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "burst",
                              "2000", NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  watch(child, &record);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, COUNT);
  assert_int_equal(record.messages_at_exit, COUNT);
  assert_int_equal(record.close_count, 1);
  finish(&loop, child, &record);
}

/* Counts the child's echo notices; after the third, the three echoes have
 * arrived with no MESSAGE listener, and one is added. */
static void add_listener_after_echoes(cp_child *child, const cp_event *event,
                                      void *data) {
  ipc_record *record = data;

  (void)event;
  if (++record->internal_count != 3)
    return;
  assert_int_equal(record->message_count, 0);
  record->disconnect_on_count = true;
  record->expected = 3;
  assert_int_equal(cp_child_on(child, CP_EVENT_MESSAGE, on_message, record), 0);
}

/* As in Node, messages that come before any MESSAGE listener are kept and
 * delivered, in order, once one is added. */
static void messages_before_listener_are_kept(void **state) {
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "notify",
                              NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  record.messages = cJSON_CreateArray();
  assert_int_equal(cp_child_on(child, CP_EVENT_INTERNAL_MESSAGE,
                               add_listener_after_echoes, &record),
                   0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, on_event, &record), 0);
  send_numbered(child, 3);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, 3);
  assert_int_equal(record.close_count, 1);
  finish(&loop, child, &record);
}

/* Records a message. After the third, removes itself and sends three more
 * messages, whose echoes then arrive with no MESSAGE listener. */
static void on_message_then_remove(cp_child *child, const cp_event *event,
                                   void *data) {
  ipc_record *record = data;

  on_message(child, event, data);
  if (record->message_count != 3)
    return;
  assert_int_equal(
      cp_child_off(child, CP_EVENT_MESSAGE, on_message_then_remove, record),
      0);
  for (int seq = 3; seq < 6; seq++) {
    cJSON *message = numbered(seq);

    assert_true(cp_child_send(child, message, NULL, NULL, NULL, NULL) >= 0);
    cJSON_Delete(message);
  }
}

/* Adds a MESSAGE listener after the third echo notice, and again after the
 * sixth, when the echoes of the second round have been kept. */
static void add_listener_each_round(cp_child *child, const cp_event *event,
                                    void *data) {
  ipc_record *record = data;

  (void)event;
  ++record->internal_count;
  if (record->internal_count == 3) {
    assert_int_equal(record->message_count, 0);
    assert_int_equal(cp_child_on(child, CP_EVENT_MESSAGE,
                                 on_message_then_remove, record),
                     0);
  } else if (record->internal_count == 6) {
    assert_int_equal(record->message_count, 3);
    record->disconnect_on_count = true;
    record->expected = 6;
    assert_int_equal(
        cp_child_on(child, CP_EVENT_MESSAGE, on_message, record), 0);
  }
}

/* Messages are kept again after every listener was removed, and a new
 * listener gets them: the replay works a second time. */
static void messages_kept_again_after_listener_removed(void **state) {
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "notify",
                              NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  record.messages = cJSON_CreateArray();
  assert_int_equal(cp_child_on(child, CP_EVENT_INTERNAL_MESSAGE,
                               add_listener_each_round, &record),
                   0);
  assert_int_equal(cp_child_on(child, CP_EVENT_CLOSE, on_event, &record), 0);
  send_numbered(child, 3);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, 6);
  assert_int_equal(record.close_count, 1);
  finish(&loop, child, &record);
}

/* The same rule in a childproc child: cp-ipc-late adds its MESSAGE
 * listener only on the internal message that follows three messages. */
static void child_side_keeps_messages_before_listener(void **state) {
  static const char go[] = "{\"cmd\":\"NODE_TEST_GO\"}";
  uv_loop_t loop;
  ipc_record record = {.disconnect_on_count = true, .expected = 3};
  cp_child *child;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(
      cp_fork(&loop, cp_test_helper_path("cp-ipc-late"), NULL, NULL, &child),
      0);
  watch(child, &record);
  send_numbered(child, 3);
  assert_int_equal(cp_child_send_json(child, go, sizeof(go) - 1, NULL, NULL),
                   1);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, 3);
  assert_int_equal(record.exit_code, 0);
  assert_int_equal(record.close_count, 1);
  finish(&loop, child, &record);
}

/* 100,000 messages from a Node.js child arrive complete and in order. */
static void node_child_messages_keep_order(void **state) {
  enum { COUNT = 100000 };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "count",
                              "100000", NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  watch(child, &record);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_in_order(&record, COUNT);
  assert_int_equal(record.exit_code, 0);
  assert_int_equal(record.close_count, 1);
  finish(&loop, child, &record);
}

/* Counts send callbacks; each must report success. */
static void count_sent(cp_child *child, int status, void *data) {
  (void)child;
  assert_int_equal(status, 0);
  (*(size_t *)data)++;
}

/* A Node.js child that reads nothing for a while: cp_child_send() returns
 * 0 once more than 128 KiB wait, as Node's send() returns false, and
 * nothing is lost once the child reads again. */
static void send_backlog_with_slow_node_reader(void **state) {
  enum { LIMIT = 200 };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "sleep",
                              "1500", NULL};
  cp_fork_options options = {.exec_path = "node"};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;
  char *payload = malloc(16 * 1024 + 1);
  size_t sent = 0;
  size_t written = 0;
  int r = 1;

  (void)state;
  if (!have_node()) {
    free(payload);
    skip();
  }
  assert_non_null(payload);
  memset(payload, 'x', 16 * 1024);
  payload[16 * 1024] = '\0';
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  watch(child, &record);

  while (r == 1 && sent < LIMIT) {
    cJSON *message = numbered((int)sent);

    cJSON_AddStringToObject(message, "pad", payload);
    r = cp_child_send(child, message, NULL, NULL, count_sent, &written);
    cJSON_Delete(message);
    sent++;
  }
  /* The socket takes a few hundred KiB before anything queues here. */
  assert_int_equal(r, 0);
  assert_true(sent < LIMIT);

  record.disconnect_on_count = true;
  record.expected = sent;
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(written, sent);
  assert_in_order(&record, (int)sent);
  free(payload);
  finish(&loop, child, &record);
}

/* The order of send callbacks and other events in one run, as text: 'c'
 * for a callback with status 0, 'e' for one with an error, 'R' for the
 * moment the Node child was let go, 'M' for an echo. */
typedef struct callback_log {
  char events[4096];
  size_t len;
  size_t callbacks;
  int first_error;
  bool out_of_order;
} callback_log;

typedef struct logged_send {
  callback_log *log;
  size_t index;
} logged_send;

static void log_event(callback_log *log, char letter) {
  if (log->len + 1 < sizeof log->events)
    log->events[log->len++] = letter;
}

static void log_send_done(cp_child *child, int status, void *data) {
  logged_send *send = data;
  callback_log *log = send->log;

  (void)child;
  if (send->index != log->callbacks)
    log->out_of_order = true;
  log->callbacks++;
  if (status != 0 && log->first_error == 0)
    log->first_error = status;
  log_event(log, status == 0 ? 'c' : 'e');
}

static void log_echo(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)event;
  log_event(data, 'M');
}

/* Sends 16 KiB messages, each with a logged callback, until send()
 * returns 0. Returns how many were sent. */
static size_t send_until_backlog(cp_child *child, logged_send *sends,
                                 size_t max, callback_log *log) {
  char *payload = malloc(16 * 1024 + 1);
  size_t sent = 0;
  int r = 1;

  assert_non_null(payload);
  memset(payload, 'x', 16 * 1024);
  payload[16 * 1024] = '\0';
  while (r == 1 && sent < max) {
    cJSON *message = numbered((int)sent);

    cJSON_AddStringToObject(message, "pad", payload);
    sends[sent] = (logged_send){.log = log, .index = sent};
    r = cp_child_send(child, message, NULL, NULL, log_send_done, &sends[sent]);
    cJSON_Delete(message);
    sent++;
  }
  free(payload);
  assert_int_equal(r, 0);
  return sent;
}

static size_t count_letter(const callback_log *log, char letter) {
  size_t count = 0;

  for (size_t i = 0; i < log->len; i++)
    count += log->events[i] == letter;
  return count;
}

/* Runs a few loop iterations without waiting: enough for every write the
 * socket accepts and every callback due, with no time involved. */
static void run_without_waiting(uv_loop_t *loop) {
  for (int i = 0; i < 8; i++)
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A Node child that reads nothing yet: the callbacks of the messages the
 * socket took run at once, in order; those of the messages queued past
 * it run only after the child starts reading, and in order too. */
static void send_callbacks_wait_for_node_reader(void **state) {
  enum { MAX_SENDS = 200 };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "stdin",
                              NULL};
  cp_fork_options options = {.exec_path = "node", .silent = true};
  logged_send sends[MAX_SENDS];
  callback_log log = {0};
  uv_loop_t loop;
  cp_child *child;
  size_t sent;
  size_t before_release;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);
  assert_int_equal(cp_child_on(child, CP_EVENT_MESSAGE, log_echo, &log), 0);

  sent = send_until_backlog(child, sends, MAX_SENDS, &log);
  run_without_waiting(&loop);
  before_release = log.callbacks;
  /* Some messages fit in the socket; 128 KiB and more did not. */
  assert_true(before_release < sent);
  assert_int_equal(count_letter(&log, 'c'), before_release);

  log_event(&log, 'R');
  /* 1: Node's write() returns true. */
  assert_int_equal(cp_stream_write(cp_child_stdin(child), "go", 2, NULL, NULL),
                   1);
  cp_child_disconnect(child);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_false(log.out_of_order);
  assert_int_equal(log.callbacks, sent);
  assert_int_equal(count_letter(&log, 'c'), sent);
  assert_int_equal(count_letter(&log, 'e'), 0);
  /* Every callback before the release came first, the rest after it. */
  assert_int_equal(log.events[before_release], 'R');
  assert_null(memchr(log.events + before_release + 1, 'R',
                     log.len - before_release - 1));
  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

/* A Node child killed while messages wait for it: each queued message's
 * callback gets an error, never 0, and callbacks keep their order. */
static void send_callbacks_fail_when_node_child_killed(void **state) {
  enum { MAX_SENDS = 200 };
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/echo-child.js", "stdin",
                              NULL};
  cp_fork_options options = {.exec_path = "node", .silent = true};
  logged_send sends[MAX_SENDS];
  callback_log log = {0};
  uv_loop_t loop;
  cp_child *child;
  size_t sent;
  size_t before_kill;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, args[0], args + 1, &options, &child), 0);

  sent = send_until_backlog(child, sends, MAX_SENDS, &log);
  run_without_waiting(&loop);
  before_kill = log.callbacks;
  assert_true(before_kill < sent);

  assert_int_equal(cp_child_kill(child, SIGKILL), 1);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_false(log.out_of_order);
  assert_int_equal(log.callbacks, sent);
  assert_int_equal(count_letter(&log, 'c'), before_kill);
  assert_int_equal(count_letter(&log, 'e'), sent - before_kill);
  if (log.first_error != -EPIPE && log.first_error != -ECONNRESET &&
      log.first_error != CP_ERR_IPC_CHANNEL_CLOSED)
    fail_msg("first failed callback got %s", cp_err_name(log.first_error));
  cp_child_release(child);
  cp_test_loop_finish(&loop);
}

static void on_send_status(cp_child *child, int status, void *data) {
  (void)child;
  *(int *)data = status;
}

static void send_after_disconnect_fails_with_channel_closed(void **state) {
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;
  int status = 1;
  cJSON *message = numbered(1);

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cp_fork(&loop, echo_worker(), NULL, NULL, &child), 0);
  watch(child, &record);
  assert_int_equal(cp_child_disconnect(child), 0);
  assert_false(cp_child_connected(child));

  assert_int_equal(
      cp_child_send(child, message, NULL, NULL, on_send_status, &status), 0);
  assert_int_equal(cp_child_disconnect(child), CP_ERR_IPC_DISCONNECTED);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(status, CP_ERR_IPC_CHANNEL_CLOSED);
  assert_int_equal(record.error, CP_ERR_IPC_DISCONNECTED);
  /* CLOSE after a parent-side disconnect too, once (Node 20 never). */
  assert_int_equal(record.close_count, 1);
  assert_non_null(strchr(record.events, 'D'));
  cJSON_Delete(message);
  finish(&loop, child, &record);
}

static void send_without_channel_fails_with_channel_closed(void **state) {
  const char *const args[] = {"0", NULL};
  uv_loop_t loop;
  ipc_record record = {0};
  cp_child *child;
  int status = 1;
  cJSON *message = numbered(1);

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(
      cp_spawn(&loop, cp_test_helper_path("cp-exit"), args, NULL, &child), 0);
  watch(child, &record);
  assert_false(cp_child_connected(child));
  assert_int_equal(
      cp_child_send(child, message, NULL, NULL, on_send_status, &status), 0);
  assert_int_equal(cp_child_send(child, NULL, NULL, NULL, NULL, NULL),
                   CP_ERR_MISSING_ARGS);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(status, CP_ERR_IPC_CHANNEL_CLOSED);
  cJSON_Delete(message);
  finish(&loop, child, &record);
}

static void fork_rejects_bad_stdio(void **state) {
  static const cp_stdio no_ipc[] = {{CP_STDIO_PIPE, 0}, {CP_STDIO_PIPE, 0}};
  static const cp_stdio two_ipc[] = {{CP_STDIO_PIPE, 0},
                                     {CP_STDIO_PIPE, 0},
                                     {CP_STDIO_PIPE, 0},
                                     {CP_STDIO_IPC, 0},
                                     {CP_STDIO_IPC, 0}};
  cp_fork_options options = {0};
  uv_loop_t loop;
  cp_child *child = (cp_child *)1;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  options.spawn.stdio = no_ipc;
  options.spawn.stdio_count = 2;
  assert_int_equal(cp_fork(&loop, echo_worker(), NULL, &options, &child),
                   CP_ERR_CHILD_PROCESS_IPC_REQUIRED);

  options.spawn.stdio = two_ipc;
  options.spawn.stdio_count = 5;
  assert_int_equal(cp_fork(&loop, echo_worker(), NULL, &options, &child),
                   CP_ERR_IPC_ONE_PIPE);
  assert_null(child);

  options.spawn.stdio = NULL;
  options.spawn.serialization = CP_SERIALIZATION_ADVANCED;
  assert_int_equal(cp_fork(&loop, echo_worker(), NULL, &options, &child),
                   CP_ERR_IPC_UNSUPPORTED_SERIALIZATION);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A NODE_CHANNEL_FD in the given env is replaced, not duplicated. */
static void fork_replaces_channel_variables_in_env(void **state) {
  static const char *const env[] = {"NODE_CHANNEL_FD=7",
                                    "NODE_CHANNEL_SERIALIZATION_MODE=advanced",
                                    "KEEP=1", NULL};
  static const cp_stdio stdio[] = {{CP_STDIO_IGNORE, 0},
                                   {CP_STDIO_PIPE, 0},
                                   {CP_STDIO_INHERIT, 0},
                                   {CP_STDIO_IPC, 0}};
  const char *const args[] = {
      "-c", "env | grep -E '^(NODE_CHANNEL|KEEP)' | sort", NULL};
  cp_spawn_options options = {.env = env, .stdio = stdio, .stdio_count = 4};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, "/bin/sh", args, &options, &record, GUARD_MS);

  assert_string_equal(record.out.bytes,
                      "KEEP=1\nNODE_CHANNEL_FD=3\n"
                      "NODE_CHANNEL_SERIALIZATION_MODE=json\n");
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fork_c_echo_worker_keeps_order),
      cmocka_unit_test(fork_node_child_round_trips_values),
      cmocka_unit_test(node_parent_talks_to_c_child),
      cmocka_unit_test(messages_sent_before_exit_precede_exit),
      cmocka_unit_test(messages_before_listener_are_kept),
      cmocka_unit_test(messages_kept_again_after_listener_removed),
      cmocka_unit_test(node_child_messages_keep_order),
      cmocka_unit_test(send_backlog_with_slow_node_reader),
      cmocka_unit_test(send_callbacks_wait_for_node_reader),
      cmocka_unit_test(send_callbacks_fail_when_node_child_killed),
      cmocka_unit_test(child_side_keeps_messages_before_listener),
      cmocka_unit_test(send_after_disconnect_fails_with_channel_closed),
      cmocka_unit_test(send_without_channel_fails_with_channel_closed),
      cmocka_unit_test(fork_rejects_bad_stdio),
      cmocka_unit_test(fork_replaces_channel_variables_in_env),
  };

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
