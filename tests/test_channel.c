/*
 * The IPC channel (src/channel.c) with real peers: two channels over a
 * socket pair in one process, a raw socket that the test writes by hand,
 * and Node.js itself when `node` is on PATH.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "childproc.h"
#include "json.h"
#include "test_util.h"

#define GUARD_MS 20000
/* Large messages under valgrind take tens of seconds. */
#define BIG_GUARD_MS 100000
#define MIB (1024 * 1024)
#define KEPT_MESSAGES 64
#define KEPT_ERRORS 16

extern char **environ;

/* ------------------------------------------------------------------------
 * Endpoints: a channel and everything it emitted
 * ------------------------------------------------------------------------ */

typedef struct test_endpoint test_endpoint;

/* Called for every message after it is recorded. */
typedef void (*message_hook)(test_endpoint *endpoint, const cJSON *value,
                             bool internal);

struct test_endpoint {
  cp__channel *channel;
  message_hook hook;
  void *hook_data;

  size_t messages;
  char *texts[KEPT_MESSAGES]; /* cJSON_PrintUnformatted() of the first */
  bool internal[KEPT_MESSAGES];
  double numbers[KEPT_MESSAGES]; /* valuedouble of a number message */

  size_t error_count;
  int errors[KEPT_ERRORS];
  char syscalls[KEPT_ERRORS][16]; /* "-" for a NULL syscall */

  unsigned disconnects;
  unsigned closes;

  /* One letter per event: M message, E error, D disconnect, C close.
   * Messages past the first 100 are counted but not logged. */
  char events[128];
  size_t event_len;

  /* For hooks. */
  size_t disconnect_at; /* disconnect on this message (1-based); 0: never */
  long long next_seq;   /* next "seq" expected */
  size_t seq_errors;
};

static void log_letter(test_endpoint *endpoint, char letter) {
  if (endpoint->event_len + 1 < sizeof(endpoint->events)) {
    endpoint->events[endpoint->event_len++] = letter;
    endpoint->events[endpoint->event_len] = '\0';
  }
}

static void on_message(cp__channel *channel, cp__message *message,
                       void *data) {
  test_endpoint *endpoint = data;
  size_t index = endpoint->messages++;
  cJSON *value = message->value;
  bool internal = message->internal;

  (void)channel;
  if (index < 100)
    log_letter(endpoint, 'M');
  if (index < KEPT_MESSAGES) {
    endpoint->texts[index] = cJSON_PrintUnformatted(value);
    endpoint->internal[index] = internal;
    if (cJSON_IsNumber(value))
      endpoint->numbers[index] = value->valuedouble;
  }
  if (endpoint->hook != NULL)
    endpoint->hook(endpoint, value, internal);
}

static void on_error(cp__channel *channel, int error, const char *syscall,
                     void *data) {
  test_endpoint *endpoint = data;

  (void)channel;
  log_letter(endpoint, 'E');
  if (endpoint->error_count < KEPT_ERRORS) {
    endpoint->errors[endpoint->error_count] = error;
    snprintf(endpoint->syscalls[endpoint->error_count],
             sizeof(endpoint->syscalls[0]), "%s",
             syscall != NULL ? syscall : "-");
  }
  endpoint->error_count++;
}

static void on_disconnect(cp__channel *channel, void *data) {
  test_endpoint *endpoint = data;

  (void)channel;
  log_letter(endpoint, 'D');
  endpoint->disconnects++;
}

static void on_close(cp__channel *channel, void *data) {
  test_endpoint *endpoint = data;

  (void)channel;
  log_letter(endpoint, 'C');
  endpoint->closes++;
}

/* A send callback as the tests write them; the channel hands it back
 * type-erased, and on_send_done() casts it back. */
typedef void (*test_send_cb)(cp__channel *channel, int status, void *data);

static void on_send_done(cp__channel *channel, cp__listener_fn fn,
                         void *fn_data, int status, void *data) {
  (void)data;
  ((test_send_cb)fn)(channel, status, fn_data);
}

static const cp__channel_events endpoint_events = {
    .message = on_message,
    .error = on_error,
    .disconnect = on_disconnect,
    .close = on_close,
    .send_done = on_send_done,
};

static void open_endpoint(uv_loop_t *loop, int fd, test_endpoint *endpoint) {
  int r = cp__channel_open(loop, fd, &endpoint_events, endpoint,
                           &endpoint->channel);

  if (r != 0)
    fail_msg("cp__channel_open returned %s", cp_err_name(r));
}

/* Two channels on the two ends of a socket pair. */
static void open_pair(uv_loop_t *loop, test_endpoint *a, test_endpoint *b) {
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  open_endpoint(loop, sv[0], a);
  open_endpoint(loop, sv[1], b);
}

/* A channel on one end, and the other end returned for raw reads and
 * writes (blocking). */
static int open_raw(uv_loop_t *loop, test_endpoint *endpoint) {
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  open_endpoint(loop, sv[0], endpoint);
  return sv[1];
}

/* Checks that the endpoint closed once, then frees its channel. */
static void free_endpoint(test_endpoint *endpoint) {
  assert_int_equal(endpoint->closes, 1);
  assert_int_equal(endpoint->disconnects, 1);
  cp__channel_free(endpoint->channel);
  endpoint->channel = NULL;
  for (size_t i = 0; i < KEPT_MESSAGES; i++) {
    free(endpoint->texts[i]);
    endpoint->texts[i] = NULL;
  }
}

static void write_all(int fd, const char *bytes, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, bytes, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail_msg("write to the raw peer failed: %s", strerror(errno));
    bytes += n;
    len -= (size_t)n;
  }
}

static void write_text(int fd, const char *text) {
  write_all(fd, text, strlen(text));
}

static int send_text(test_endpoint *endpoint, const char *json) {
  cJSON *value = cJSON_Parse(json);
  int r;

  assert_non_null(value);
  r = cp__channel_send(endpoint->channel, value, NULL, NULL);
  cJSON_Delete(value);
  return r;
}

static void assert_message(const test_endpoint *endpoint, size_t index,
                           const char *text) {
  assert_true(index < endpoint->messages);
  assert_non_null(endpoint->texts[index]);
  assert_string_equal(endpoint->texts[index], text);
}

static void assert_error(const test_endpoint *endpoint, size_t index, int error,
                         const char *syscall) {
  assert_true(index < endpoint->error_count);
  if (endpoint->errors[index] != error)
    fail_msg("error %zu is %s, expected %s", index,
             cp_err_name(endpoint->errors[index]), cp_err_name(error));
  assert_string_equal(endpoint->syscalls[index], syscall);
}

/* Send callbacks record their status and the order in which they ran. */
typedef struct send_log send_log;

typedef struct send_slot {
  send_log *log;
  int status;
  unsigned calls;
} send_slot;

struct send_log {
  send_slot slots[256];
  size_t order[256]; /* slot indexes, in the order the callbacks ran */
  size_t done;
};

static void on_sent(cp__channel *channel, int status, void *data) {
  send_slot *slot = data;
  send_log *log = slot->log;

  (void)channel;
  slot->status = status;
  slot->calls++;
  if (log->done < 256)
    log->order[log->done] = (size_t)(slot - log->slots);
  log->done++;
}

static void send_log_init(send_log *log) {
  memset(log, 0, sizeof(*log));
  for (size_t i = 0; i < 256; i++)
    log->slots[i].log = log;
}

static cJSON *string_of_size(size_t len, char fill) {
  char *text = malloc(len + 1);
  cJSON *value;

  assert_non_null(text);
  memset(text, fill, len);
  text[len] = '\0';
  value = cJSON_CreateString(text);
  free(text);
  assert_non_null(value);
  return value;
}

static void on_wait_timeout(uv_timer_t *timer) {
  bool *timed_out = timer->data;

  *timed_out = true;
}

/* Runs the loop until the endpoint received count messages or closed, and
 * fails the test after GUARD_MS. */
static void run_until_messages(uv_loop_t *loop, test_endpoint *endpoint,
                               size_t count) {
  uv_timer_t timer;
  bool timed_out = false;

  assert_int_equal(uv_timer_init(loop, &timer), 0);
  timer.data = &timed_out;
  assert_int_equal(uv_timer_start(&timer, on_wait_timeout, GUARD_MS, 0), 0);
  while (endpoint->messages < count && endpoint->closes == 0 && !timed_out)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT);

  if (timed_out)
    fail_msg("%zu of %zu messages after %d ms", endpoint->messages, count,
             GUARD_MS);
}

/* ------------------------------------------------------------------------
 * Two channels in one process
 * ------------------------------------------------------------------------ */

static void channel_small_messages_roundtrip(void **state) {
  static const char *const sent[] = {
      "\"hello\"",
      "42",
      "{\"a\":[1,\"x\"],\"b\":{\"c\":null}}",
      "null",
      "true",
      "{\"cmd\":\"NODE_X\",\"v\":1}",
      "\"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80\xe2\x80\xa8\"",
  };
  size_t count = sizeof(sent) / sizeof(sent[0]);
  uv_loop_t loop;
  test_endpoint a = {0};
  test_endpoint b = {0};

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  for (size_t i = 0; i < count; i++)
    assert_int_equal(send_text(&a, sent[i]), 1);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(b.messages, count);
  for (size_t i = 0; i < count; i++) {
    assert_message(&b, i, sent[i]);
    assert_int_equal(b.internal[i], i == 5);
  }
  assert_string_equal(b.events, "MMMMMMMDC");
  assert_string_equal(a.events, "DC");
  assert_false(cp__channel_connected(a.channel));
  assert_int_equal(cp__channel_fileno(a.channel), -1);

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

static void check_sequence(test_endpoint *endpoint, const cJSON *value,
                           bool internal) {
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(value, "seq");
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(value, "data");

  if (internal || !cJSON_IsNumber(seq) ||
      seq->valuedouble != (double)endpoint->next_seq ||
      !cJSON_IsString(data) || strcmp(data->valuestring, "hello") != 0)
    endpoint->seq_errors++;
  endpoint->next_seq++;
}

/* Every message arrives, in order, and the disconnect that follows the
 * sends at once still lets all of them out first. */
static void channel_100000_messages_in_order(void **state) {
  const long long count = 100000;
  uv_loop_t loop;
  test_endpoint a = {0};
  test_endpoint b = {.hook = check_sequence};
  cJSON *value = cJSON_CreateObject();
  cJSON *seq = cJSON_AddNumberToObject(value, "seq", 0);

  (void)state;
  assert_non_null(cJSON_AddStringToObject(value, "data", "hello"));
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  for (long long n = 0; n < count; n++) {
    cJSON_SetNumberValue(seq, (double)n);
    assert_true(cp__channel_send(a.channel, value, NULL, NULL) >= 0);
  }
  cJSON_Delete(value);
  assert_true(cp__channel_backlog(a.channel) > 0);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, BIG_GUARD_MS);

  assert_int_equal(b.messages, (size_t)count);
  assert_int_equal(b.seq_errors, 0);
  assert_int_equal(b.error_count, 0);
  assert_int_equal(a.error_count, 0);
  assert_string_equal(a.events, "DC");

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

/* Checks that every message is a string of len bytes of fill. */
typedef struct big_check {
  size_t len;
  char fill;
  size_t bad; /* messages that were not */
} big_check;

static void check_big_string(test_endpoint *endpoint, const cJSON *value,
                             bool internal) {
  big_check *check = endpoint->hook_data;
  const char *text = cJSON_GetStringValue(value);

  bool ok = !internal && text != NULL && strlen(text) == check->len;

  for (size_t i = 0; ok && i < check->len; i++)
    ok = text[i] == check->fill;
  if (!ok)
    check->bad++;
}

static void send_big_message(size_t len) {
  uv_loop_t loop;
  big_check check = {.len = len, .fill = 'q'};
  test_endpoint a = {0};
  test_endpoint b = {.hook = check_big_string, .hook_data = &check};
  cJSON *value = string_of_size(len, 'q');

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 0);
  cJSON_Delete(value);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, BIG_GUARD_MS);

  assert_int_equal(b.messages, 1);
  assert_int_equal(check.bad, 0);
  assert_int_equal(b.error_count, 0);
  assert_string_equal(b.events, "MDC");

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

static void channel_16mib_message(void **state) {
  (void)state;
  send_big_message(16 * MIB);
}

static void channel_64mib_message(void **state) {
  (void)state;
  send_big_message(64 * MIB);
}

/* ------------------------------------------------------------------------
 * A raw peer: framing, malformed input, limits
 * ------------------------------------------------------------------------ */

typedef struct byte_writer {
  uv_idle_t idle;
  int fd;
  const char *bytes;
  size_t len;
  size_t pos;
} byte_writer;

/* Writes one byte per loop iteration, so that the channel reads the
 * records in one-byte pieces, then closes the socket. */
static void write_next_byte(uv_idle_t *idle) {
  byte_writer *writer = idle->data;

  if (writer->pos < writer->len) {
    write_all(writer->fd, writer->bytes + writer->pos, 1);
    writer->pos++;
    return;
  }
  close(writer->fd);
  uv_close((uv_handle_t *)idle, NULL);
}

static void channel_record_split_one_byte_per_read(void **state) {
  static const char input[] =
      "{\"a\":\"\xc3\xbc\xf0\x9f\x98\x80\",\"b\":[1,2.5]}\n\"two\"\n7\n";
  uv_loop_t loop;
  test_endpoint a = {0};
  byte_writer writer = {.bytes = input, .len = sizeof(input) - 1};

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  writer.fd = open_raw(&loop, &a);
  assert_int_equal(uv_idle_init(&loop, &writer.idle), 0);
  writer.idle.data = &writer;
  assert_int_equal(uv_idle_start(&writer.idle, write_next_byte), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 3);
  assert_message(&a, 0,
                 "{\"a\":\"\xc3\xbc\xf0\x9f\x98\x80\",\"b\":[1,2.5]}");
  assert_message(&a, 1, "\"two\"");
  assert_message(&a, 2, "7");
  assert_string_equal(a.events, "MMMDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* The same through cp__channel_feed(), where the chunking is certain. */
static void channel_feed_one_byte_at_a_time(void **state) {
  static const char input[] = "[\"x\",{\"y\":\"\xe2\x82\xac\"}]\n  \"z\"\r\n";
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  for (size_t i = 0; i + 1 < sizeof(input); i++)
    cp__channel_feed(a.channel, input + i, 1);
  assert_int_equal(a.messages, 2);
  assert_message(&a, 0, "[\"x\",{\"y\":\"\xe2\x82\xac\"}]");
  assert_message(&a, 1, "\"z\"");

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(a.events, "MMDC");
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* A record with 4-byte characters after long ASCII runs, fed in two
 * chunks split at every offset: each split arrives whole, and a cut-off
 * 4-byte sequence is invalid UTF-8 whichever chunk ends it. */
static void channel_utf8_split_at_every_offset(void **state) {
  static const char record[] =
      "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "\xf0\x9f\x98\x80 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\xf4\x8f\xbf\xbf\"]\n";
  static const char cut[] = "[\"aaaaaaaaaaaaaaaaaaaaaaaaa\xf0\x9f\x98\"]\n";
  const size_t len = sizeof(record) - 1;
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  for (size_t split = 0; split <= len; split++) {
    cp__channel_feed(a.channel, record, split);
    cp__channel_feed(a.channel, record + split, len - split);
  }
  assert_int_equal(a.messages, len + 1);
  assert_int_equal(a.error_count, 0);
  for (size_t i = 0; i < KEPT_MESSAGES; i++) {
    char expected[sizeof(record)];

    memcpy(expected, record, len - 1);
    expected[len - 1] = '\0';
    assert_message(&a, i, expected);
  }

  for (size_t split = 0; split < sizeof(cut) - 1; split++) {
    cp__channel_feed(a.channel, cut, split);
    cp__channel_feed(a.channel, cut + split, sizeof(cut) - 1 - split);
    assert_int_equal(a.error_count, split + 1);
    if (split < KEPT_ERRORS)
      assert_error(&a, split, CP_ERR_IPC_INVALID_UTF8, "-");
  }
  assert_int_equal(a.messages, len + 1);

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

static void channel_many_records_in_one_write(void **state) {
  const size_t count = 1000;
  char *input = malloc(count * 40);
  size_t len = 0;
  uv_loop_t loop;
  test_endpoint a = {.hook = check_sequence};
  int raw;

  (void)state;
  assert_non_null(input);
  for (size_t i = 0; i < count; i++)
    len += (size_t)sprintf(input + len, "{\"seq\":%zu,\"data\":\"hello\"}\n", i);

  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  write_all(raw, input, len);
  close(raw);
  free(input);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, count);
  assert_int_equal(a.seq_errors, 0);
  assert_int_equal(a.error_count, 0);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* Node throws out of its read callback here and, with a record begun
 * before the bad one, fails every later message. */
static void channel_malformed_line_then_valid(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  cp__channel_feed(a.channel, "\"par", 4);
  cp__channel_feed(a.channel, "tial\"\n{bad}\n\"next\"\n\n[1]\n", 24);
  write_text(raw, "{\"a\":1,}\n\"after\"\n");
  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 4);
  assert_message(&a, 0, "\"partial\"");
  assert_message(&a, 1, "\"next\"");
  assert_message(&a, 2, "[1]");
  assert_message(&a, 3, "\"after\"");
  assert_int_equal(a.error_count, 3);
  assert_error(&a, 0, CP_ERR_IPC_INVALID_JSON, "-");
  assert_error(&a, 1, CP_ERR_IPC_INVALID_JSON, "-");
  assert_error(&a, 2, CP_ERR_IPC_INVALID_JSON, "-");
  assert_string_equal(a.events, "MEMEMEMDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

static void channel_invalid_utf8_then_valid(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  write_text(raw, "\"\xff\"\n\"\xc0\xaf\"\n\"ok\"\n");
  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 1);
  assert_message(&a, 0, "\"ok\"");
  assert_int_equal(a.error_count, 2);
  assert_error(&a, 0, CP_ERR_IPC_INVALID_UTF8, "-");
  assert_error(&a, 1, CP_ERR_IPC_INVALID_UTF8, "-");
  assert_string_equal(a.events, "EEMDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* An oversized record is reported once, when it crosses the maximum, and
 * the rest of it is skipped; a record of exactly the maximum passes. */
static void channel_oversized_record_skipped(void **state) {
  char x[64];
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  memset(x, 'x', sizeof(x));
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  cp__channel_set_max_message_size(a.channel, 16);

  cp__channel_feed(a.channel, "\"", 1);
  cp__channel_feed(a.channel, x, 10);
  assert_int_equal(a.error_count, 0);
  cp__channel_feed(a.channel, x, 10);
  assert_int_equal(a.error_count, 1);
  cp__channel_feed(a.channel, x, sizeof(x));
  cp__channel_feed(a.channel, "\"\n\"ok\"\n", 7);
  cp__channel_feed(a.channel, "\"xxxxxxxxxxxxxx\"\n", 17);
  cp__channel_feed(a.channel, "\"xxxxxxxxxxxxxxx\"\n\"end\"\n", 24);

  assert_int_equal(a.messages, 3);
  assert_message(&a, 0, "\"ok\"");
  assert_message(&a, 1, "\"xxxxxxxxxxxxxx\"");
  assert_message(&a, 2, "\"end\"");
  assert_int_equal(a.error_count, 2);
  assert_error(&a, 0, CP_ERR_IPC_MESSAGE_TOO_LARGE, "-");
  assert_error(&a, 1, CP_ERR_IPC_MESSAGE_TOO_LARGE, "-");

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(a.events, "EMMEMDC");
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

static void channel_eof_mid_record_reports_error(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  write_text(raw, "\"whole\"\n{\"a\":");
  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 1);
  assert_int_equal(a.error_count, 1);
  assert_error(&a, 0, CP_ERR_IPC_INVALID_JSON, "read");
  assert_string_equal(a.events, "MEDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* ------------------------------------------------------------------------
 * Disconnect and sending after it
 * ------------------------------------------------------------------------ */

static void channel_send_after_disconnect_fails(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  test_endpoint b = {0};
  send_log log;
  cJSON *value = cJSON_CreateString("late");

  (void)state;
  send_log_init(&log);
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  assert_false(cp__channel_connected(a.channel));
  assert_int_equal(cp__channel_send(a.channel, value, (cp__listener_fn)on_sent,
                                    &log.slots[0]),
                   0);
  assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 0);
  assert_int_equal(cp__channel_send_raw(a.channel, "1", 1,
                                        (cp__listener_fn)on_sent,
                                        &log.slots[1]),
                   0);
  /* Nothing is called from inside the calls. */
  assert_int_equal(log.done, 0);
  assert_int_equal(a.error_count, 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(log.done, 2);
  assert_int_equal(log.slots[0].status, CP_ERR_IPC_CHANNEL_CLOSED);
  assert_int_equal(log.slots[1].status, CP_ERR_IPC_CHANNEL_CLOSED);
  assert_int_equal(a.error_count, 1);
  assert_error(&a, 0, CP_ERR_IPC_CHANNEL_CLOSED, "-");
  assert_int_equal(b.messages, 0);

  /* After close no handle is left to call from. */
  assert_int_equal(cp__channel_send(a.channel, value, (cp__listener_fn)on_sent,
                                    &log.slots[2]),
                   CP_ERR_IPC_CHANNEL_CLOSED);
  assert_int_equal(log.slots[2].calls, 0);
  cJSON_Delete(value);

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

static void channel_disconnect_twice_fails(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  test_endpoint b = {0};

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  assert_int_equal(a.error_count, 0);
  assert_int_equal(cp__channel_disconnect(a.channel),
                   CP_ERR_IPC_DISCONNECTED);
  /* Emitted at once, as Node does. */
  assert_int_equal(a.error_count, 1);
  assert_error(&a, 0, CP_ERR_IPC_DISCONNECTED, "-");
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(a.events, "EDC");
  assert_string_equal(b.events, "DC");
  assert_int_equal(cp__channel_disconnect(b.channel), CP_ERR_IPC_DISCONNECTED);
  assert_int_equal(b.error_count, 0);

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

/* Records queued before disconnect() are written before the socket
 * closes, and their callbacks report success before disconnect. */
static void channel_queued_messages_flushed_before_disconnect(void **state) {
  const size_t count = 200;
  uv_loop_t loop;
  big_check check = {.len = 16 * 1024, .fill = 'm'};
  test_endpoint a = {0};
  test_endpoint b = {.hook = check_big_string, .hook_data = &check};
  send_log log;
  cJSON *value = string_of_size(check.len, 'm');

  (void)state;
  send_log_init(&log);
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  for (size_t i = 0; i < count; i++)
    assert_true(cp__channel_send(a.channel, value, (cp__listener_fn)on_sent,
                                 &log.slots[i]) >= 0);
  cJSON_Delete(value);
  assert_true(cp__channel_backlog(a.channel) > CP__CHANNEL_BACKLOG_LIMIT);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(b.messages, count);
  assert_int_equal(check.bad, 0);
  assert_int_equal(log.done, count);
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(log.order[i], i);
    assert_int_equal(log.slots[i].status, 0);
    assert_int_equal(log.slots[i].calls, 1);
  }
  assert_string_equal(a.events, "DC");

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

/* A listener that disconnects stops delivery: later records of the same
 * read are dropped, as Node drops messages after disconnect(). */
static void disconnect_at_hook(test_endpoint *endpoint, const cJSON *value,
                               bool internal) {
  (void)value;
  (void)internal;
  if (endpoint->messages == endpoint->disconnect_at)
    assert_int_equal(cp__channel_disconnect(endpoint->channel), 0);
}

static void channel_listener_disconnect_stops_delivery(void **state) {
  uv_loop_t loop;
  test_endpoint a = {.hook = disconnect_at_hook, .disconnect_at = 2};
  int raw;
  char buffer[64];

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  write_text(raw, "1\n2\n3\n4\n5\n");
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 2);
  assert_string_equal(a.events, "MMDC");
  /* The raw end reads end of file. */
  assert_int_equal(read(raw, buffer, sizeof(buffer)), 0);
  close(raw);

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* A NODE_HANDLE record without a descriptor gets a NACK and no message,
 * as from Node's receiver, so a Node sender retries and then moves on. */
static void channel_answers_envelope_without_descriptor_with_nack(
    void **state) {
  static const char nack[] = "{\"cmd\":\"NODE_HANDLE_NACK\"}\n";
  uv_loop_t loop;
  test_endpoint a = {0};
  char buffer[64] = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  write_text(raw, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\","
                  "\"msg\":{\"n\":1}}\n2\n");
  shutdown(raw, SHUT_WR);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 1);
  assert_message(&a, 0, "2");
  assert_int_equal(read(raw, buffer, sizeof(buffer) - 1),
                   (ssize_t)sizeof(nack) - 1);
  assert_string_equal(buffer, nack);
  close(raw);

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* ------------------------------------------------------------------------
 * Writing: backlog, callbacks, failures
 * ------------------------------------------------------------------------ */

static void channel_send_returns_false_past_backlog_limit(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  cJSON *value = string_of_size(10 * 1024, 'b');
  size_t sends = 0;
  int raw;
  int r;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  do {
    r = cp__channel_send(a.channel, value, NULL, NULL);
    sends++;
    assert_int_equal(r, cp__channel_backlog(a.channel) <
                            CP__CHANNEL_BACKLOG_LIMIT);
    assert_true(sends < 10000);
  } while (r == 1);
  assert_true(cp__channel_backlog(a.channel) >= CP__CHANNEL_BACKLOG_LIMIT);
  /* Some records went to the kernel before the backlog began. */
  assert_true(sends * (10 * 1024 + 3) >
              cp__channel_backlog(a.channel) + 10 * 1024);

  /* Still 0 while the backlog stays, and nothing is dropped. */
  assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 0);
  cJSON_Delete(value);

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  /* The peer went away with records queued: one event for the records
   * that had no callback. */
  assert_int_equal(a.error_count, 1);
  assert_true(a.errors[0] == -EPIPE || a.errors[0] == -ECONNRESET ||
              a.errors[0] == CP_ERR_IPC_CHANNEL_CLOSED);
  assert_string_equal(a.events, "EDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* The second send of the chain: it disconnects once written, which ends
 * the loop. */
static void disconnect_when_sent(cp__channel *channel, int status,
                                 void *data) {
  int *done = data;

  assert_int_equal(status, 0);
  (*done)++;
  cp__channel_disconnect(channel);
}

/* The first: it sends again from inside its callback. */
static void send_again_when_sent(cp__channel *channel, int status,
                                 void *data) {
  cJSON *value = cJSON_CreateNumber(2);

  assert_int_equal(status, 0);
  assert_true(cp__channel_send(channel, value,
                               (cp__listener_fn)disconnect_when_sent,
                               data) >= 0);
  cJSON_Delete(value);
}

/* Forks a process that reads fd to its end and writes the byte count to
 * result; returns its pid. The process closes other, the channel's own
 * end, whose copy would keep that end of file from ever coming. */
static pid_t start_counting_reader(int fd, int result, int other) {
  pid_t pid = fork();

  assert_true(pid >= 0);
  if (pid == 0) {
    char buffer[65536];
    uint64_t total = 0;
    ssize_t n;

    close(other);

    while ((n = read(fd, buffer, sizeof(buffer))) > 0)
      total += (uint64_t)n;
    _exit(write(result, &total, sizeof(total)) == sizeof(total) ? 0 : 1);
  }
  return pid;
}

/* An unreferenced channel keeps the loop alive until what it was given is
 * written, as Node refs its channel for each write, so a child that sends
 * and returns from uv_run() loses nothing. */
static void channel_unref_still_writes_backlog(void **state) {
  const size_t size = 4 * MIB;
  uv_loop_t loop;
  test_endpoint a = {0};
  cJSON *value = string_of_size(size, 'u');
  int result[2];
  uint64_t total = 0;
  pid_t reader;
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  assert_int_equal(pipe2(result, O_CLOEXEC), 0);
  reader = start_counting_reader(raw, result[1],
                                 cp__channel_fileno(a.channel));
  close(raw);
  close(result[1]);

  cp__channel_unref(a.channel);
  /* 0: more than the backlog limit waits, so Node's send() returns false. */
  assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 0);
  cJSON_Delete(value);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(cp__channel_backlog(a.channel), 0);

  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp__channel_ref(a.channel);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(read(result[0], &total, sizeof(total)),
                   (ssize_t)sizeof(total));
  assert_int_equal(total, size + 3);
  assert_int_equal(waitpid(reader, NULL, 0), reader);
  close(result[0]);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* A send from a callback that the loop's prepare phase runs is still
 * written before the loop waits. libuv runs a prepare handle started in
 * that phase only after the next poll, which could block with nothing
 * else to wake it. */
static void channel_send_from_prepare_callback_is_written(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  cJSON *value = cJSON_CreateNumber(1);
  char buffer[8] = {0};
  int done = 0;
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  assert_true(cp__channel_send(a.channel, value,
                               (cp__listener_fn)send_again_when_sent,
                               &done) >= 0);
  cJSON_Delete(value);

  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(done, 1);
  assert_int_equal(read(raw, buffer, sizeof(buffer) - 1), 4);
  assert_string_equal(buffer, "1\n2\n");
  close(raw);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* Callbacks run in order, with success for records the kernel took and an
 * error for the rest once the peer closed (Node reports success for
 * all). */
static void channel_send_callbacks_report_outcome(void **state) {
  /* 4 MiB: more than a socket buffer holds with Linux's defaults. */
  const size_t count = 128;
  uv_loop_t loop;
  test_endpoint a = {0};
  send_log log;
  cJSON *value = string_of_size(32 * 1024, 'c');
  size_t succeeded = 0;
  int raw;

  (void)state;
  send_log_init(&log);
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  for (size_t i = 0; i < count; i++)
    assert_true(cp__channel_send(a.channel, value, (cp__listener_fn)on_sent,
                                 &log.slots[i]) >= 0);
  cJSON_Delete(value);
  assert_int_equal(log.done, 0);
  assert_true(cp__channel_backlog(a.channel) > 0);

  /* Callbacks of the records already written run from the loop. */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(log.done > 0);
  assert_true(log.done < count);

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(log.done, count);
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(log.order[i], i);
    assert_int_equal(log.slots[i].calls, 1);
    if (log.slots[i].status == 0) {
      assert_int_equal(succeeded, i);
      succeeded++;
    }
  }
  assert_true(succeeded > 0);
  assert_true(succeeded < count);
  assert_int_equal(log.slots[count - 1].status, -EPIPE);
  /* Failures went to the callbacks, so no error event. */
  assert_int_equal(a.error_count, 0);
  assert_string_equal(a.events, "DC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

typedef struct ping_pong {
  size_t rounds;
} ping_pong;

/* Each side replies to n with n + 1 from its message listener. */
static void answer_hook(test_endpoint *endpoint, const cJSON *value,
                        bool internal) {
  ping_pong *game = endpoint->hook_data;
  cJSON *reply;

  (void)internal;
  if (value->valuedouble >= (double)game->rounds) {
    assert_int_equal(cp__channel_disconnect(endpoint->channel), 0);
    return;
  }
  reply = cJSON_CreateNumber(value->valuedouble + 1);
  assert_int_equal(cp__channel_send(endpoint->channel, reply, NULL, NULL), 1);
  cJSON_Delete(reply);
}

static void channel_listener_sends_reply(void **state) {
  ping_pong game = {.rounds = 1000};
  uv_loop_t loop;
  test_endpoint a = {.hook = answer_hook, .hook_data = &game};
  test_endpoint b = {.hook = answer_hook, .hook_data = &game};

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  assert_int_equal(send_text(&a, "0"), 1);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages + b.messages, game.rounds + 1);
  assert_int_equal(a.error_count + b.error_count, 0);

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

static void channel_send_checks_arguments(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  test_endpoint b = {0};
  cJSON *invalid = cJSON_CreateString("x");

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);

  assert_int_equal(cp__channel_send(a.channel, NULL, NULL, NULL),
                   CP_ERR_MISSING_ARGS);
  assert_int_equal(cp__channel_send_raw(a.channel, NULL, 0, NULL, NULL),
                   CP_ERR_MISSING_ARGS);
  assert_int_equal(cp__channel_send_raw(a.channel, "{\n}", 3, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp__channel_send_raw(a.channel, "{bad", 4, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp__channel_send_raw(a.channel, "", 0, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);

  /* A string that is not UTF-8 cannot be sent. */
  invalid->type = cJSON_String;
  free(invalid->valuestring);
  invalid->valuestring = strdup("\xff");
  assert_int_equal(cp__channel_send(a.channel, invalid, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  cJSON_Delete(invalid);
  assert_int_equal(cp__channel_backlog(a.channel), 0);

  /* Raw text goes out as it is. */
  assert_int_equal(
      cp__channel_send_raw(a.channel, " {\"a\": 1} ", 10, NULL, NULL), 1);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(b.messages, 1);
  assert_message(&b, 0, "{\"a\":1}");
  assert_int_equal(a.error_count, 0);

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

/* ------------------------------------------------------------------------
 * Reading dry, descriptors, ref and open
 * ------------------------------------------------------------------------ */

static void channel_read_dry_delivers_pending(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  write_text(raw, "1\n2\n3");
  cp__channel_read_dry(a.channel);
  assert_int_equal(a.messages, 2);

  write_text(raw, "\n4\n");
  close(raw);
  cp__channel_read_dry(a.channel);
  assert_int_equal(a.messages, 4);
  /* End of file was read: disconnect at once, close from the loop. */
  assert_string_equal(a.events, "MMMMD");
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(a.events, "MMMMDC");

  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

static void read_dry_hook(test_endpoint *endpoint, const cJSON *value,
                          bool internal) {
  (void)internal;
  if (value->valuedouble == 1)
    cp__channel_read_dry(endpoint->channel);
}

/* A listener that reads dry while records of the current chunk are still
 * undelivered gets them first, then the socket's. */
static void channel_read_dry_in_listener_keeps_order(void **state) {
  uv_loop_t loop;
  test_endpoint a = {.hook = read_dry_hook};
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);

  write_text(raw, "3\n4\n");
  cp__channel_feed(a.channel, "1\n2\n", 4);
  assert_int_equal(a.messages, 4);
  for (size_t i = 0; i < 4; i++) {
    char expected[4];

    snprintf(expected, sizeof(expected), "%zu", i + 1);
    assert_message(&a, i, expected);
  }

  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(a.events, "MMMMDC");
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* A descriptor that no NODE_HANDLE record claims is closed, not leaked,
 * and reported; the record it came with is still delivered. */
static void channel_closes_descriptor_without_envelope(void **state) {
  uv_loop_t loop;
  test_endpoint a = {0};
  int pipe_fds[2];
  size_t fds_before;
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
  fds_before = cp_test_count_fds();

  cp_test_send_with_fd(raw, "\"x\"\n", 4, pipe_fds[0]);

  cp__channel_read_dry(a.channel);
  assert_int_equal(a.messages, 1);
  assert_message(&a, 0, "\"x\"");
  assert_int_equal(a.error_count, 1);
  assert_error(&a, 0, CP_ERR_IPC_UNEXPECTED_HANDLE, "recvmsg");
  assert_int_equal(cp_test_count_fds(), fds_before);

  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(raw);
  cp_test_loop_run(&loop, GUARD_MS);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

static void disconnect_on_send(cp__channel *channel, int status, void *data) {
  bool *called = data;

  assert_int_equal(status, 0);
  *called = true;
  assert_int_equal(cp__channel_disconnect(channel), 0);
}

/* Unref'd channels let the loop end, also after a send re-arms their
 * handles; ref'd again, they keep it running. A record sent on an unref'd
 * channel is still written (and its callback run) before the loop ends. */
static void channel_unref_lets_loop_exit(void **state) {
  uv_loop_t loop;
  uv_timer_t guard;
  bool timed_out = false;
  test_endpoint a = {0};
  test_endpoint b = {0};
  bool called = false;
  cJSON *value = cJSON_CreateString("ping");

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  cp__channel_unref(a.channel);
  cp__channel_unref(b.channel);

  /* cp_test_loop_run() would run one more iteration to close its guard,
   * which runs unref'd handles too, so this guard stays open until the
   * unref'd runs are checked. */
  assert_int_equal(uv_timer_init(&loop, &guard), 0);
  guard.data = &timed_out;
  assert_int_equal(uv_timer_start(&guard, on_wait_timeout, GUARD_MS, 0), 0);
  uv_unref((uv_handle_t *)&guard);

  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(cp__channel_send(a.channel, value,
                                    (cp__listener_fn)disconnect_on_send,
                                    &called),
                   1);
  cJSON_Delete(value);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_false(timed_out);
  assert_true(called);
  /* The same last iteration polled b's socket. */
  assert_int_equal(b.messages, 1);
  uv_close((uv_handle_t *)&guard, NULL);

  cp__channel_ref(a.channel);
  cp__channel_ref(b.channel);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(b.messages, 1);
  assert_string_equal(a.events, "DC");
  assert_string_equal(b.events, "MDC");

  free_endpoint(&a);
  free_endpoint(&b);
  cp_test_loop_finish(&loop);
}

static void channel_open_rejects_other_descriptors(void **state) {
  uv_loop_t loop;
  cp__channel *channel = NULL;
  int pipe_fds[2];
  int sv[2];

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
  assert_int_equal(
      cp__channel_open(&loop, pipe_fds[0], &endpoint_events, NULL, &channel),
      -ENOTSOCK);
  assert_null(channel);
  /* The descriptor was taken and closed. */
  assert_int_equal(fcntl(pipe_fds[0], F_GETFD), -1);
  close(pipe_fds[1]);

  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(
      cp__channel_open(&loop, sv[0], &endpoint_events, NULL, &channel),
      -EPROTOTYPE);
  close(sv[1]);

  assert_int_equal(
      cp__channel_open(&loop, -1, &endpoint_events, NULL, &channel), -EBADF);
  cp_test_loop_finish(&loop);
}

/* ------------------------------------------------------------------------
 * Node.js as the peer
 * ------------------------------------------------------------------------ */

static bool node_available(void) {
  const char *path = getenv("PATH");
  char candidate[4096];

  while (path != NULL && *path != '\0') {
    const char *end = strchr(path, ':');
    size_t len = end != NULL ? (size_t)(end - path) : strlen(path);

    if (len > 0 && len + 6 < sizeof(candidate)) {
      memcpy(candidate, path, len);
      memcpy(candidate + len, "/node", 6);
      if (access(candidate, X_OK) == 0)
        return true;
    }
    path = end != NULL ? end + 1 : NULL;
  }
  return false;
}

#define SKIP_WITHOUT_NODE()                                                   \
  do {                                                                        \
    if (!node_available()) {                                                  \
      print_message("node is not on PATH; skipping this Node.js test\n");     \
      skip();                                                                 \
    }                                                                         \
  } while (0)

/* The parent's environment without its NODE_CHANNEL_ variables, plus
 * NODE_CHANNEL_FD=3. The strings are borrowed from environ. */
static const char **node_environment(void) {
  size_t count = 0;
  size_t kept = 0;
  const char **env;

  while (environ[count] != NULL)
    count++;
  env = calloc(count + 2, sizeof(*env));
  assert_non_null(env);

  for (size_t i = 0; i < count; i++) {
    if (strncmp(environ[i], "NODE_CHANNEL_", 13) != 0)
      env[kept++] = environ[i];
  }
  env[kept++] = "NODE_CHANNEL_FD=3";
  env[kept] = NULL;
  return env;
}

/* Starts `node -e script` with the other end of a socket pair at
 * descriptor 3 and opens the channel on this end. */
static cp_child *start_node(uv_loop_t *loop, const char *script,
                            test_endpoint *endpoint, cp_test_record *record) {
  const char *args[] = {"-e", script, NULL};
  const char **env = node_environment();
  cp_stdio stdio[4] = {{.kind = CP_STDIO_IGNORE},
                       {.kind = CP_STDIO_INHERIT},
                       {.kind = CP_STDIO_INHERIT},
                       {.kind = CP_STDIO_FD}};
  cp_spawn_options options = {.env = env, .stdio = stdio, .stdio_count = 4};
  cp_child *child;
  int sv[2];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  stdio[3].fd = sv[1];
  child = cp_test_spawn(loop, "node", args, &options, record);
  close(sv[1]);
  free(env);
  open_endpoint(loop, sv[0], endpoint);
  return child;
}

static void finish_node(uv_loop_t *loop, cp_child *child, test_endpoint *endpoint,
                        cp_test_record *record) {
  cp_child_release(child);
  cp_test_loop_run(loop, GUARD_MS);
  free_endpoint(endpoint);
  cp_test_record_free(record);
  cp_test_loop_finish(loop);
}

static void node_messages_arrive_parsed(void **state) {
  static const char script[] =
      "process.send('hello');"
      "process.send(42);"
      "process.send(-1.5e-7);"
      "process.send({u: '\\u00fcn\\u00ef\\u20ac\\u{1F600}',"
      " s: '\\u2028\\u2029', n: [0, -0, 1e21, 123456789012, 0.1]});"
      "process.send({cmd: 'NODE_FROM_NODE', v: 1});"
      "process.send([null, true, false, {}]);"
      "process.disconnect();";
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(record.exit_code, 0);
  assert_int_equal(a.messages, 6);
  assert_message(&a, 0, "\"hello\"");
  assert_message(&a, 1, "42");
  /* The same double as Node's: JavaScript prints the shortest text that
   * reads back as it. */
  assert_true(a.numbers[2] == -1.5e-7);
  assert_message(&a, 3,
                 "{\"u\":\"\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80\","
                 "\"s\":\"\xe2\x80\xa8\xe2\x80\xa9\","
                 "\"n\":[0,0,1e+21,123456789012,0.1]}");
  assert_message(&a, 4, "{\"cmd\":\"NODE_FROM_NODE\",\"v\":1}");
  assert_message(&a, 5, "[null,true,false,{}]");
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(a.internal[i], i == 4);
  assert_int_equal(a.error_count, 0);
  assert_string_equal(a.events, "MMMMMMDC");

  finish_node(&loop, child, &a, &record);
}

/* Node echoes JSON.stringify() of every message it gets, which must be
 * the very bytes we sent. */
static void node_receives_messages_byte_exact(void **state) {
  static const char script[] =
      "process.on('message', (m) => {"
      "  if (m === 'done') { process.disconnect(); return; }"
      "  process.send(JSON.stringify(m));"
      "});";
  static const char *const sent[] = {
      "\"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80 \\u0001\\t\\n\\\"\\\\/\"",
      "\"\xe2\x80\xa8\xe2\x80\xa9\"",
      "[0.1,-5,123456789,1e21,1e-7,1.7976931348623157e308,5e-324]",
      "{\"a\":{\"b\":[true,false,null]},\"cmd\":\"x\",\"\":\"\"}",
      "-0",
      "\"\"",
  };
  size_t count = sizeof(sent) / sizeof(sent[0]);
  char *expected[sizeof(sent) / sizeof(sent[0])];
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);

  for (size_t i = 0; i < count; i++) {
    cJSON *value = NULL;
    cp__bytes text = {0};
    cJSON *echo;

    assert_int_equal(cp__json_parse(sent[i], strlen(sent[i]), &value), 0);
    assert_int_equal(cp__json_stringify(value, &text), 0);
    assert_int_equal(cp__bytes_append(&text, "", 1), 0);
    assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 1);
    cJSON_Delete(value);

    /* What our receiver will print for the echoed string. */
    echo = cJSON_CreateString(text.data);
    expected[i] = cJSON_PrintUnformatted(echo);
    cJSON_Delete(echo);
    cp__bytes_free(&text);
  }
  assert_int_equal(send_text(&a, "\"done\""), 1);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, count);
  for (size_t i = 0; i < count; i++) {
    assert_message(&a, i, expected[i]);
    free(expected[i]);
  }
  assert_int_equal(a.error_count, 0);
  assert_string_equal(a.events, "MMMMMMDC");
  assert_int_equal(record.exit_code, 0);

  finish_node(&loop, child, &a, &record);
}

/* Node echoes our 16 MiB string, then sends its own of the same size, and
 * disconnects once both were written (Node's disconnect() drops writes
 * still queued). */
static void node_16mib_each_way(void **state) {
  static const char script[] =
      "process.on('message', (m) => {"
      "  process.send(m);"
      "  process.send('\\u20ac'.repeat(m.length / 2),"
      "               () => process.disconnect());"
      "});";
  const size_t len = 16 * MIB;
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;
  cJSON *value = string_of_size(len, 'e');
  const char *echo;
  const char *euros;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);

  assert_int_equal(cp__channel_send(a.channel, value, NULL, NULL), 0);
  cJSON_Delete(value);
  cp_test_loop_run(&loop, BIG_GUARD_MS);

  /* The kept texts are the messages printed as JSON, quotes included. */
  assert_int_equal(a.messages, 2);
  echo = a.texts[0];
  assert_int_equal(strlen(echo), len + 2);
  assert_int_equal(strspn(echo + 1, "e"), len);
  euros = a.texts[1];
  assert_int_equal(strlen(euros), len / 2 * 3 + 2);
  for (size_t i = 1; i + 1 < len / 2 * 3; i += 3)
    assert_memory_equal(euros + i, "\xe2\x82\xac", 3);
  assert_int_equal(a.error_count, 0);
  assert_string_equal(a.events, "MMDC");
  assert_int_equal(record.exit_code, 0);

  finish_node(&loop, child, &a, &record);
}

static void node_internal_messages_both_ways(void **state) {
  static const char script[] =
      "process.on('internalMessage', (m) => {"
      "  if (m.cmd === 'NODE_PING') process.send({cmd: 'NODE_PONG', got: m});"
      "});"
      "process.on('message', (m) => process.send({plain: m}));";
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);

  assert_int_equal(send_text(&a, "{\"cmd\":\"NODE_PING\",\"x\":1}"), 1);
  assert_int_equal(send_text(&a, "{\"cmd\":\"NODE_\"}"), 1);
  run_until_messages(&loop, &a, 2);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(a.messages, 2);
  assert_message(&a, 0,
                 "{\"cmd\":\"NODE_PONG\",\"got\":{\"cmd\":\"NODE_PING\","
                 "\"x\":1}}");
  assert_true(a.internal[0]);
  /* "NODE_" alone is not internal. */
  assert_message(&a, 1, "{\"plain\":{\"cmd\":\"NODE_\"}}");
  assert_false(a.internal[1]);
  assert_string_equal(a.events, "MMDC");

  finish_node(&loop, child, &a, &record);
}

static void node_sees_our_disconnect(void **state) {
  static const char script[] =
      "process.on('disconnect', () => process.exit(42));"
      "process.on('message', () => {});"
      "process.send('ready');";
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);

  run_until_messages(&loop, &a, 1);
  assert_int_equal(a.messages, 1);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(a.events, "MDC");
  assert_int_equal(record.exit_code, 42);

  finish_node(&loop, child, &a, &record);
}

/* Node dies with most of a large record unsent: the cut-off record is
 * reported, then disconnect and close, and nothing hangs. */
static void node_killed_mid_message(void **state) {
  static const char script[] =
      "process.send('x'.repeat(32 * 1024 * 1024));"
      "process.kill(process.pid, 'SIGKILL');";
  uv_loop_t loop;
  test_endpoint a = {0};
  cp_test_record record;
  cp_child *child;

  (void)state;
  SKIP_WITHOUT_NODE();
  assert_int_equal(uv_loop_init(&loop), 0);
  child = start_node(&loop, script, &a, &record);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(record.exit_signal, SIGKILL);
  assert_int_equal(a.messages, 0);
  assert_int_equal(a.error_count, 1);
  assert_error(&a, 0, CP_ERR_IPC_INVALID_JSON, "read");
  assert_string_equal(a.events, "EDC");

  finish_node(&loop, child, &a, &record);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(channel_small_messages_roundtrip),
      cmocka_unit_test(channel_100000_messages_in_order),
      cmocka_unit_test(channel_16mib_message),
      cmocka_unit_test(channel_64mib_message),
      cmocka_unit_test(channel_record_split_one_byte_per_read),
      cmocka_unit_test(channel_feed_one_byte_at_a_time),
      cmocka_unit_test(channel_utf8_split_at_every_offset),
      cmocka_unit_test(channel_many_records_in_one_write),
      cmocka_unit_test(channel_malformed_line_then_valid),
      cmocka_unit_test(channel_invalid_utf8_then_valid),
      cmocka_unit_test(channel_oversized_record_skipped),
      cmocka_unit_test(channel_eof_mid_record_reports_error),
      cmocka_unit_test(channel_send_after_disconnect_fails),
      cmocka_unit_test(channel_disconnect_twice_fails),
      cmocka_unit_test(channel_queued_messages_flushed_before_disconnect),
      cmocka_unit_test(channel_listener_disconnect_stops_delivery),
      cmocka_unit_test(channel_answers_envelope_without_descriptor_with_nack),
      cmocka_unit_test(channel_send_returns_false_past_backlog_limit),
      cmocka_unit_test(channel_send_callbacks_report_outcome),
      cmocka_unit_test(channel_send_from_prepare_callback_is_written),
      cmocka_unit_test(channel_unref_still_writes_backlog),
      cmocka_unit_test(channel_listener_sends_reply),
      cmocka_unit_test(channel_send_checks_arguments),
      cmocka_unit_test(channel_read_dry_delivers_pending),
      cmocka_unit_test(channel_read_dry_in_listener_keeps_order),
      cmocka_unit_test(channel_closes_descriptor_without_envelope),
      cmocka_unit_test(channel_unref_lets_loop_exit),
      cmocka_unit_test(channel_open_rejects_other_descriptors),
      cmocka_unit_test(node_messages_arrive_parsed),
      cmocka_unit_test(node_receives_messages_byte_exact),
      cmocka_unit_test(node_16mib_each_way),
      cmocka_unit_test(node_internal_messages_both_ways),
      cmocka_unit_test(node_sees_our_disconnect),
      cmocka_unit_test(node_killed_mid_message),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
