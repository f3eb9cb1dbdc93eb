/*
 * The prefork example: prefork-server run whole, and one prefork-worker
 * driven directly, with a listening socket this test sends it and HTTP
 * requests written by hand over loopback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 60000

static const char *const server_program = CP_TEST_EXAMPLES_DIR
    "/prefork-server";
static const char *const worker_program = CP_TEST_EXAMPLES_DIR
    "/prefork-worker";

/* The text a child wrote to a stream, "" when it wrote nothing. */
static const char *text_of(const cp_test_buffer *buffer) {
  return buffer->bytes != NULL ? buffer->bytes : "";
}

static void assert_starts_with(const char *text, const char *prefix) {
  if (strncmp(text, prefix, strlen(prefix)) != 0)
    fail_msg("\"%s\" does not start with \"%s\"", text, prefix);
}

/* ------------------------------------------------------------------------
 * prefork-server
 * ------------------------------------------------------------------------ */

/* Sums the requests column of the rows for workers 0 to workers-1 in the
 * server's report, checking that each row is there once and that each
 * worker exited with 0. Returns the value of the total row in *total. */
static unsigned sum_worker_rows(const char *out, int workers,
                                unsigned *total) {
  unsigned sum = 0;
  int rows = 0;

  *total = 0;
  for (const char *line = out; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    int index;
    long pid;
    unsigned served;

    if (sscanf(line, " %d %ld %u", &index, &pid, &served) == 3) {
      assert_int_equal(index, rows);
      assert_true(pid > 0);
      assert_non_null(strstr(line, "exit code 0"));
      assert_true(end == NULL || strstr(line, "exit code 0") < end);
      sum += served;
      rows++;
    } else if (sscanf(line, " total %u", total) == 1) {
      break;
    }
    line = end != NULL ? end + 1 : NULL;
  }
  assert_int_equal(rows, workers);
  return sum;
}

static void prefork_server_serves_every_request(void **state) {
  const char *const args[] = {"--workers", "3", "--requests", "60", NULL};
  cp_test_record record;
  uv_loop_t loop;
  unsigned total;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, server_program, args, NULL, &record, GUARD_MS);

  if (record.exit_code != 0)
    fail_msg("exit code %d; stdout:\n%s\nstderr:\n%s", record.exit_code,
             text_of(&record.out), text_of(&record.err));
  assert_int_equal(sum_worker_rows(text_of(&record.out), 3, &total), 60);
  assert_int_equal(total, 60);
  assert_non_null(strstr(text_of(&record.out),
                         "60 of 60 responses were 200 with the expected "
                         "body"));
  assert_string_equal(text_of(&record.err), "");
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

static void prefork_server_rejects_zero_workers(void **state) {
  const char *const args[] = {"--workers", "0", NULL};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, server_program, args, NULL, &record, GUARD_MS);

  assert_int_equal(record.exit_code, 2);
  assert_non_null(strstr(text_of(&record.err), "--workers N"));
  assert_string_equal(text_of(&record.out), "");
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* ------------------------------------------------------------------------
 * prefork-worker, driven by this test
 * ------------------------------------------------------------------------ */

/* A listening TCP socket on 127.0.0.1 at a port the kernel picks. */
static int listen_on_loopback(struct sockaddr_in *address) {
  socklen_t len = sizeof(*address);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  *address = (struct sockaddr_in){.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)address, sizeof(*address)), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)address, &len), 0);
  return fd;
}

static int connect_to(const struct sockaddr_in *address) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  assert_int_equal(
      connect(fd, (const struct sockaddr *)address, sizeof(*address)), 0);
  return fd;
}

static void write_all(int fd, const char *text) {
  size_t len = strlen(text);

  assert_int_equal(write(fd, text, len), (ssize_t)len);
}

/* Reads until the worker closes the connection. Returns the response,
 * NUL-terminated, to be freed by the caller. */
static char *read_to_end(int fd) {
  size_t capacity = 4096;
  size_t len = 0;
  char *text = malloc(capacity);
  ssize_t n;

  assert_non_null(text);
  while ((n = read(fd, text + len, capacity - 1 - len)) > 0) {
    len += (size_t)n;
    assert_true(len < capacity - 1);
  }
  assert_int_equal(n, 0);
  text[len] = '\0';
  close(fd);
  return text;
}

/* Sends request in the pieces given, one write each, and returns the
 * response. */
static char *send_in_pieces(const struct sockaddr_in *address,
                            const char *const *pieces) {
  int fd = connect_to(address);

  for (size_t i = 0; pieces[i] != NULL; i++)
    write_all(fd, pieces[i]);
  return read_to_end(fd);
}

typedef struct worker_state {
  bool serving;
  long pid;
} worker_state;

static void on_worker_reply(cp_child *child, const cp_event *event,
                            void *data) {
  worker_state *worker = data;
  const cJSON *serving =
      cJSON_GetObjectItemCaseSensitive(event->message, "serving");
  const cJSON *index =
      cJSON_GetObjectItemCaseSensitive(event->message, "worker");
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(event->message, "pid");

  worker->serving = cJSON_IsTrue(serving) && cJSON_IsNumber(index) &&
                    index->valueint == 7 && cJSON_IsNumber(pid);
  if (cJSON_IsNumber(pid))
    worker->pid = (long)pid->valuedouble;
  uv_stop(cp_child_loop(child));
}

/* Forks prefork-worker with its stderr captured, sends it listener as
 * worker 7 and runs loop until it replies. */
static cp_child *start_worker(uv_loop_t *loop, int listener,
                              worker_state *worker, cp_test_record *record) {
  cp_fork_options options = {.silent = true};
  cp_handle handle = {.type = CP_HANDLE_NET_SERVER, .fd = listener};
  cJSON *message = cJSON_CreateObject();
  cp_child *child;

  assert_int_equal(cp_fork(loop, worker_program, NULL, &options, &child), 0);
  cp_test_record_init(record);
  cp_test_record_child(child, record);
  assert_int_equal(
      cp_child_on(child, CP_EVENT_MESSAGE, on_worker_reply, worker), 0);

  assert_non_null(cJSON_AddNumberToObject(message, "worker", 7));
  assert_int_equal(cp_child_send(child, message, &handle, NULL, NULL, NULL),
                   1);
  cJSON_Delete(message);
  cp_test_loop_run(loop, GUARD_MS);
  assert_true(worker->serving);
  assert_int_equal(worker->pid, (long)cp_child_pid(child));
  return child;
}

/* A request split inside its blank line, a client that closes before its
 * request ends, and a method other than GET. The worker answers each as
 * it should and keeps serving, and exits with 0 on disconnect. */
static void prefork_worker_handles_split_early_and_bad(void **state) {
  static const char *const split[] = {"GET /split HTTP/1.0\r\nHo",
                                      "st: x\r\n\r", "\n", NULL};
  static const char *const post[] = {"POST /form HTTP/1.0\r\n\r\n", NULL};
  struct sockaddr_in address;
  worker_state worker = {0};
  cp_test_record record;
  uv_loop_t loop;
  char body[64];
  char header[64];
  char *response;
  cp_child *child;
  int listener;
  int early;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  listener = listen_on_loopback(&address);
  child = start_worker(&loop, listener, &worker, &record);
  /* The worker holds its own copy, so the socket outlives this one. */
  close(listener);

  response = send_in_pieces(&address, split);
  snprintf(body, sizeof(body), "request /split served by worker 7 (pid %ld)\n",
           worker.pid);
  snprintf(header, sizeof(header), "\r\nContent-Length: %zu\r\n",
           strlen(body));
  assert_starts_with(response, "HTTP/1.0 200 OK\r\n");
  assert_non_null(strstr(response, "\r\nX-Worker: 7\r\n"));
  assert_non_null(strstr(response, header));
  assert_string_equal(strstr(response, "\r\n\r\n") + 4, body);
  free(response);

  early = connect_to(&address);
  write_all(early, "GET /early HTTP/1.0\r\n");
  close(early);

  response = send_in_pieces(&address, post);
  assert_starts_with(response, "HTTP/1.0 405 Method Not Allowed\r\n");
  free(response);

  assert_int_equal(cp_child_disconnect(child), 0);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(record.close_exit_code, 0);
  assert_non_null(strstr(text_of(&record.err), "prefork-worker 7 (pid "));
  assert_non_null(strstr(text_of(&record.err),
                         "the client closed before the request ended\n"));
  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prefork_server_serves_every_request),
      cmocka_unit_test(prefork_server_rejects_zero_workers),
      cmocka_unit_test(prefork_worker_handles_split_early_and_bad),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
