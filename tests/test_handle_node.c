/*
 * Handle passing with a real Node.js process on the other end: servers,
 * connected sockets and UDP sockets sent by Node.js to a C child
 * (tests/helpers/cp-handle-serve.c, driven by tests/ipc/handle-parent.js),
 * and by a C parent to a Node.js child (tests/ipc/handle-child.js). Every
 * case is skipped when node is not on PATH. Network traffic stays on
 * 127.0.0.1.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 30000

/* The byte pattern both sides check a stream against: byte i of the
 * stream is i % PATTERN_PERIOD. */
#define PATTERN_PERIOD 251

static const char *handle_child_js(void) {
  return CP_TEST_SOURCE_DIR "/ipc/handle-child.js";
}

static bool have_node(void) {
  if (system("node --version >/dev/null 2>&1") == 0)
    return true;
  fprintf(stderr, "node is not on PATH: test skipped\n");
  return false;
}

/* ------------------------------------------------------------------------
 * Blocking loopback sockets, used by the test itself as a TCP client
 * ------------------------------------------------------------------------ */

static int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  return fd;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in address = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port)};

  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

static int port_of(int fd) {
  struct sockaddr_in address;
  socklen_t len = sizeof(address);

  assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &len), 0);
  return ntohs(address.sin_port);
}

static int connect_to(int port) {
  struct sockaddr_in address = loopback(port);
  int fd = tcp_socket();

  assert_int_equal(
      connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
  return fd;
}

/* Reads until end of file into text, NUL-terminated; fails the test on an
 * error or when more than size - 1 bytes come. */
static void read_to_end(int fd, char *text, size_t size) {
  size_t len = 0;
  ssize_t n;

  while ((n = read(fd, text + len, size - 1 - len)) > 0)
    len += (size_t)n;
  assert_int_equal(n, 0);
  text[len] = '\0';
}

static void read_exactly(int fd, char *bytes, size_t len) {
  size_t got = 0;

  while (got < len) {
    ssize_t n = read(fd, bytes + got, len - got);

    assert_true(n > 0);
    got += (size_t)n;
  }
}

/* Writes len bytes of the pattern, starting at stream position from. */
static void write_pattern(int fd, size_t from, size_t len) {
  char chunk[4096];

  while (len > 0) {
    size_t part = len < sizeof(chunk) ? len : sizeof(chunk);
    size_t done = 0;

    for (size_t i = 0; i < part; i++)
      chunk[i] = (char)((from + i) % PATTERN_PERIOD);
    while (done < part) {
      ssize_t n = write(fd, chunk + done, part - done);

      assert_true(n > 0);
      done += (size_t)n;
    }
    from += part;
    len -= part;
  }
}

static int number_member(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

  assert_true(cJSON_IsNumber(item));
  return (int)item->valuedouble;
}

/* ------------------------------------------------------------------------
 * A Node.js parent and the C child cp-handle-serve
 * ------------------------------------------------------------------------ */

/* Runs handle-parent.js in mode with cp-handle-serve as its child; the
 * script checks everything and prints "<mode> ok" with status 0. */
static void run_node_parent(const char *mode) {
  char expected[32];
  const char *const args[] = {CP_TEST_SOURCE_DIR "/ipc/handle-parent.js", mode,
                              cp_test_helper_path("cp-handle-serve"), NULL};
  cp_test_record record;
  uv_loop_t loop;

  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_run_child(&loop, "node", args, NULL, &record, GUARD_MS);

  snprintf(expected, sizeof(expected), "%s ok\n", mode);
  if (record.exit_code != 0)
    fprintf(stderr, "stdout: %s\nstderr: %s\n", record.out.bytes,
            record.err.bytes);
  assert_int_equal(record.exit_code, 0);
  assert_string_equal(record.out.bytes, expected);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* Node sends a listening net.Server, then closes its own copy: every
 * connection reaches the C child. */
static void handle_node_parent_server_served_by_c_child(void **state) {
  (void)state;
  if (!have_node())
    skip();
  run_node_parent("serve");
}

/* Node hands over an unread connection while its client keeps writing:
 * the C child reads every byte, in order, and ACKs once. */
static void handle_node_parent_socket_read_by_c_child(void **state) {
  (void)state;
  if (!have_node())
    skip();
  run_node_parent("socket");
}

/* The C child cannot install the socket's first delivery and answers
 * NACK; Node resends it wrapped in a second envelope, and the child takes
 * it, reads every byte and answers one ACK (a second would make Node v20
 * throw ERR_INTERNAL_ASSERTION). */
static void handle_node_parent_socket_resent_after_nack(void **state) {
  (void)state;
  if (!have_node())
    skip();
  run_node_parent("nack");
}

/* Node sends a bound dgram.Socket, then closes its own copy: the C child
 * replies to every datagram. */
static void handle_node_parent_dgram_served_by_c_child(void **state) {
  (void)state;
  if (!have_node())
    skip();
  run_node_parent("dgram");
}

/* ------------------------------------------------------------------------
 * A C parent and the Node.js child handle-child.js
 * ------------------------------------------------------------------------ */

/* What the Node.js child did, from the parent's listeners. */
typedef struct node_child {
  cp_child *child;
  pid_t pid;
  int exit_code;
  int closes;
  int errors;
  int acks;
  int nacks;
  int replies;
  int unexpected;
  void *test; /* the case's own state */
} node_child;

static void on_internal(cp_child *child, const cp_event *event, void *data) {
  node_child *node = data;
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(event->message, "cmd");

  (void)child;
  if (cJSON_IsString(cmd) && strcmp(cmd->valuestring, "NODE_HANDLE_ACK") == 0)
    node->acks++;
  if (cJSON_IsString(cmd) && strcmp(cmd->valuestring, "NODE_HANDLE_NACK") == 0)
    node->nacks++;
}

static void on_child_event(cp_child *child, const cp_event *event,
                           void *data) {
  node_child *node = data;

  (void)child;
  if (event->type == CP_EVENT_EXIT)
    node->exit_code = event->exit_code;
  else if (event->type == CP_EVENT_CLOSE)
    node->closes++;
  else if (event->type == CP_EVENT_ERROR) {
    fprintf(stderr, "child error: %s %s\n",
            event->syscall ? event->syscall : "", cp_strerror(event->error));
    node->errors++;
  }
}

static void fork_node_child(uv_loop_t *loop, node_child *node,
                            cp_child_listener on_message, void *test) {
  cp_fork_options options = {.exec_path = "node"};

  *node = (node_child){.exit_code = CP_TEST_NOT_EMITTED, .test = test};
  assert_int_equal(
      cp_fork(loop, handle_child_js(), NULL, &options, &node->child), 0);
  node->pid = cp_child_pid(node->child);
  assert_int_equal(
      cp_child_on(node->child, CP_EVENT_MESSAGE, on_message, node), 0);
  assert_int_equal(cp_child_on(node->child, CP_EVENT_INTERNAL_MESSAGE,
                               on_internal, node),
                   0);
  assert_int_equal(
      cp_child_on(node->child, CP_EVENT_EXIT, on_child_event, node), 0);
  assert_int_equal(
      cp_child_on(node->child, CP_EVENT_CLOSE, on_child_event, node), 0);
  assert_int_equal(
      cp_child_on(node->child, CP_EVENT_ERROR, on_child_event, node), 0);
}

/* Checks that the child exited with status 0 after its channel closed. */
static void assert_node_child_done(const node_child *node) {
  assert_int_equal(node->exit_code, 0);
  assert_int_equal(node->closes, 1);
  assert_int_equal(node->errors, 0);
  assert_int_equal(node->nacks, 0);
  assert_int_equal(node->unexpected, 0);
}

static void send_or_fail(cp_child *child, const char *json,
                         const cp_handle *handle,
                         const cp_send_options *options) {
  cJSON *message = cJSON_Parse(json);

  assert_non_null(message);
  assert_true(cp_child_send(child, message, handle, options, NULL, NULL) >= 0);
  cJSON_Delete(message);
}

/* --- A listening uv_tcp_t, served by Node ------------------------------- */

enum { SERVE_ROUNDS = 5 };

typedef struct serve_test {
  int port;
  int parent_accepts; /* connections our own copy took: must stay 0 */
  char answers[SERVE_ROUNDS][64];
} serve_test;

static void on_parent_connection(uv_stream_t *server, int status) {
  serve_test *test = server->data;

  (void)status;
  test->parent_accepts++;
}

/* Node serves from the moment it replies; the test's connections are
 * blocking, since the Node.js child needs nothing from this loop. */
static void on_serving(cp_child *child, const cp_event *event, void *data) {
  node_child *node = data;
  serve_test *test = node->test;

  node->replies++;
  if (number_member(event->message, "serving") != node->pid) {
    node->unexpected++;
    cp_child_disconnect(child);
    return;
  }
  for (int i = 0; i < SERVE_ROUNDS; i++) {
    int fd = connect_to(test->port);

    read_to_end(fd, test->answers[i], sizeof(test->answers[i]));
    close(fd);
  }
  assert_int_equal(cp_child_disconnect(child), 0);
}

static void handle_node_child_serves_c_server(void **state) {
  uv_loop_t loop;
  uv_tcp_t server;
  struct sockaddr_in address = loopback(0);
  serve_test test = {0};
  node_child node;
  uv_os_fd_t fd;
  char expected[64];

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_tcp_init(&loop, &server), 0);
  server.data = &test;
  assert_int_equal(
      uv_tcp_bind(&server, (const struct sockaddr *)&address, 0), 0);
  assert_int_equal(
      uv_listen((uv_stream_t *)&server, 16, on_parent_connection), 0);
  assert_int_equal(uv_fileno((uv_handle_t *)&server, &fd), 0);
  test.port = port_of(fd);

  fork_node_child(&loop, &node, on_serving, &test);
  send_or_fail(node.child, "{\"cmd\":\"serve\"}",
               &(cp_handle){.type = CP_HANDLE_NET_SERVER,
                            .uv = (uv_handle_t *)&server},
               NULL);
  /* The library sent a duplicate: closing ours leaves Node's listening,
   * and makes it the only one that accepts. */
  uv_close((uv_handle_t *)&server, NULL);

  cp_test_loop_run(&loop, GUARD_MS);
  cp_child_release(node.child);

  assert_node_child_done(&node);
  assert_int_equal(node.replies, 1);
  assert_int_equal(node.acks, 1);
  assert_int_equal(test.parent_accepts, 0);
  snprintf(expected, sizeof(expected), "node:%d\n", (int)node.pid);
  for (int i = 0; i < SERVE_ROUNDS; i++)
    assert_string_equal(test.answers[i], expected);
  cp_test_loop_finish(&loop);
}

/* --- A connected socket handed over mid-stream -------------------------- */

/* The client writes FIRST bytes, the parent reads CONSUMED of them, hands
 * the socket over, and the client writes MIDDLE bytes at once and REST
 * after the ACK. FIRST + MIDDLE stays far below loopback's socket buffers,
 * so those blocking writes finish while nobody reads. */
enum {
  CONSUMED = 10000,
  FIRST = 24 * 1024,
  MIDDLE = 8 * 1024,
  REST = 1024 * 1024,
  TOTAL = FIRST + MIDDLE + REST,
};

typedef struct stream_test {
  int client;
  int bytes; /* from the child's report, -1 until it came */
  int bad;
  int acks_before_rest;
  char answer[64]; /* what Node wrote back on the socket */
} stream_test;

/* After the ACK the handover is complete: the rest of the stream goes to
 * Node, which reads it concurrently, so these blocking writes finish. */
static void on_stream_internal(cp_child *child, const cp_event *event,
                               void *data) {
  node_child *node = data;
  stream_test *test = node->test;
  int acks = node->acks;

  on_internal(child, event, data);
  if (node->acks == 1 && acks == 0) {
    test->acks_before_rest = node->acks;
    write_pattern(test->client, FIRST + MIDDLE, REST);
    assert_int_equal(shutdown(test->client, SHUT_WR), 0);
  }
}

static void on_stream_report(cp_child *child, const cp_event *event,
                             void *data) {
  node_child *node = data;
  stream_test *test = node->test;

  node->replies++;
  test->bytes = number_member(event->message, "bytes");
  test->bad = number_member(event->message, "bad");
  read_to_end(test->client, test->answer, sizeof(test->answer));
  assert_int_equal(cp_child_disconnect(child), 0);
}

static void handle_node_child_gets_socket_mid_stream(void **state) {
  struct sockaddr_in address = loopback(0);
  uv_loop_t loop;
  stream_test test = {.bytes = -1};
  node_child node;
  char consumed[CONSUMED];
  char message[64];
  char expected[64];
  struct stat handed;
  struct stat now;
  int listener;
  int accepted;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);

  listener = tcp_socket();
  assert_int_equal(
      bind(listener, (struct sockaddr *)&address, sizeof(address)), 0);
  assert_int_equal(listen(listener, 1), 0);
  test.client = connect_to(port_of(listener));
  accepted = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  assert_true(accepted >= 0);
  close(listener);
  assert_int_equal(fstat(accepted, &handed), 0);

  write_pattern(test.client, 0, FIRST);
  read_exactly(accepted, consumed, CONSUMED);
  for (size_t i = 0; i < CONSUMED; i++)
    assert_int_equal((unsigned char)consumed[i], i % PATTERN_PERIOD);

  fork_node_child(&loop, &node, on_stream_report, &test);
  assert_int_equal(cp_child_on(node.child, CP_EVENT_INTERNAL_MESSAGE,
                               on_stream_internal, &node),
                   0);
  /* on_stream_internal counts the ACKs itself. */
  assert_int_equal(
      cp_child_off(node.child, CP_EVENT_INTERNAL_MESSAGE, on_internal, &node),
      0);
  snprintf(message, sizeof(message), "{\"cmd\":\"socket\",\"offset\":%d}",
           CONSUMED);
  /* Handed over: the library owns accepted from here on. */
  send_or_fail(node.child, message,
               &(cp_handle){.type = CP_HANDLE_NET_SOCKET, .fd = accepted},
               NULL);
  write_pattern(test.client, FIRST, MIDDLE);

  cp_test_loop_run(&loop, GUARD_MS);
  cp_child_release(node.child);

  assert_node_child_done(&node);
  assert_int_equal(node.replies, 1);
  assert_int_equal(node.acks, 1);
  assert_int_equal(test.acks_before_rest, 1);
  assert_int_equal(test.bytes, TOTAL - CONSUMED);
  assert_int_equal(test.bad, 0);
  snprintf(expected, sizeof(expected), "node:%d\n", (int)node.pid);
  assert_string_equal(test.answer, expected);
  /* The library closed the parent's copy: the descriptor number is free,
   * or names another file. */
  assert_false(fstat(accepted, &now) == 0 && now.st_ino == handed.st_ino &&
               now.st_dev == handed.st_dev);
  close(test.client);
  cp_test_loop_finish(&loop);
}

/* --- 1,000 handles to Node and back ------------------------------------- */

typedef struct echo_test {
  int travelling; /* the socket pair end that is sent */
  int kept;       /* the other end, where each echo's byte comes out */
  size_t bytes;   /* bytes read from kept */
  int echoed;     /* handles back, each written to and closed */
  int wrong;      /* echoes without a descriptor, or of another type */
  int syncs;      /* "sync" echoes */
  /* Descriptors of the Node.js child and of this process after the first
   * 10 handles came back, and after all of them. Each is counted when the
   * echo of "sync" shows that both sides are idle. */
  size_t node_fds[2];
  size_t fds[2];
} echo_test;

static void send_echo_round(cp_child *child, echo_test *test, int count) {
  char message[64];

  for (int i = 0; i < count; i++) {
    snprintf(message, sizeof(message), "{\"cmd\":\"echo\",\"n\":%d}", i);
    send_or_fail(child, message,
                 &(cp_handle){.type = CP_HANDLE_NET_NATIVE,
                              .fd = test->travelling},
                 NULL);
  }
  send_or_fail(child, "\"sync\"", NULL, NULL);
}

static void on_echo(cp_child *child, const cp_event *event, void *data) {
  node_child *node = data;
  echo_test *test = node->test;
  int fd;

  if (cJSON_IsString(event->message)) {
    test->node_fds[test->syncs] = cp_test_count_fds_of(node->pid);
    test->fds[test->syncs] = cp_test_count_fds();
    if (++test->syncs == 1)
      send_echo_round(child, test, 990);
    else
      assert_int_equal(cp_child_disconnect(child), 0);
    return;
  }

  fd = cp_event_take_handle(event);
  if (fd < 0 || event->handle->type != CP_HANDLE_NET_NATIVE) {
    test->wrong++;
  } else {
    /* The same socket came back: what goes in comes out of our end. It
     * is read at once, since a Unix socket's buffer fills after a few
     * hundred small writes. */
    char byte;

    if (write(fd, "e", 1) != 1 || read(test->kept, &byte, 1) != 1)
      test->wrong++;
    else
      test->bytes++;
    close(fd);
  }
  test->echoed++;
}

/* Node.js turns each descriptor into a raw Pipe handle, sends it back and
 * closes it; neither process keeps a descriptor it was given. */
static void handle_node_child_echoes_1000_handles(void **state) {
  uv_loop_t loop;
  echo_test test = {0};
  node_child node;
  int sv[2];
  char byte;

  (void)state;
  if (!have_node())
    skip();
  assert_int_equal(uv_loop_init(&loop), 0);
  /* A socket: Node.js aborts on a regular file or a terminal. */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  test.travelling = sv[1];
  test.kept = sv[0];

  fork_node_child(&loop, &node, on_echo, &test);
  send_echo_round(node.child, &test, 10);

  cp_test_loop_run(&loop, GUARD_MS);
  cp_child_release(node.child);
  close(sv[1]);

  assert_node_child_done(&node);
  assert_int_equal(test.syncs, 2);
  assert_int_equal(test.echoed, 1000);
  assert_int_equal(test.wrong, 0);
  /* One ACK from Node for each handle sent. */
  assert_int_equal(node.acks, 1000);
  assert_true(test.node_fds[0] > 0);
  assert_int_equal(test.node_fds[1], test.node_fds[0]);
  assert_int_equal(test.fds[1], test.fds[0]);

  assert_int_equal(test.bytes, 1000);
  /* Every copy is closed, Node's included: the pair has ended. */
  assert_int_equal(read(sv[0], &byte, 1), 0);
  close(sv[0]);
  cp_test_loop_finish(&loop);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(handle_node_parent_server_served_by_c_child),
      cmocka_unit_test(handle_node_parent_socket_read_by_c_child),
      cmocka_unit_test(handle_node_parent_socket_resent_after_nack),
      cmocka_unit_test(handle_node_parent_dgram_served_by_c_child),
      cmocka_unit_test(handle_node_child_serves_c_server),
      cmocka_unit_test(handle_node_child_gets_socket_mid_stream),
      cmocka_unit_test(handle_node_child_echoes_1000_handles),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
