/*
 * Handle passing over the IPC channel: descriptors that travel with
 * NODE_HANDLE messages, the ACK and NACK replies, the sends held until a
 * reply, and who closes what. A raw socket plays the peer where the bytes
 * and descriptors on the wire are checked; echo-worker plays it where a
 * real C process is wanted.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <dirent.h>

#include "channel.h"
#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 20000
#define KEPT 16

/* ------------------------------------------------------------------------
 * An endpoint: a channel and what it emitted
 * ------------------------------------------------------------------------ */

typedef struct endpoint {
  cp__channel *channel;
  size_t messages;
  char *texts[KEPT];
  bool internal[KEPT];
  cp_handle_type types[KEPT];
  int fds[KEPT]; /* taken descriptors, -1 when none came */
  size_t error_count;
  int errors[KEPT];
  unsigned closes;
} endpoint;

static void on_message(cp__channel *channel, cp__message *message,
                       void *data) {
  endpoint *e = data;
  size_t i = e->messages++;

  (void)channel;
  if (i >= KEPT) {
    return;
  }
  e->texts[i] = cJSON_PrintUnformatted(message->value);
  e->internal[i] = message->internal;
  e->types[i] = message->handle.type;
  e->fds[i] = message->handle.fd;
  message->handle.fd = -1;
}

static void on_error(cp__channel *channel, int error, const char *syscall,
                     void *data) {
  endpoint *e = data;

  (void)channel;
  (void)syscall;
  if (e->error_count < KEPT)
    e->errors[e->error_count] = error;
  e->error_count++;
}

static void on_close(cp__channel *channel, void *data) {
  (void)channel;
  ((endpoint *)data)->closes++;
}

static const cp__channel_events events = {
    .message = on_message,
    .error = on_error,
    .close = on_close,
};

/* The loop of the channel under test: the channel writes what was sent
 * when its loop runs, so a read from the raw end runs it first. */
static uv_loop_t *channel_loop;

/* A channel on one end of a socket pair; returns the other end, blocking,
 * for the test to read and write by hand. */
static int open_raw(uv_loop_t *loop, endpoint *e) {
  int sv[2];

  memset(e, 0, sizeof(*e));
  channel_loop = loop;
  for (size_t i = 0; i < KEPT; i++)
    e->fds[i] = -1;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(cp__channel_open(loop, sv[0], &events, e, &e->channel), 0);
  return sv[1];
}

static void free_endpoint(endpoint *e) {
  assert_int_equal(e->closes, 1);
  cp__channel_free(e->channel);
  for (size_t i = 0; i < KEPT; i++) {
    free(e->texts[i]);
    if (e->fds[i] >= 0)
      close(e->fds[i]);
  }
}

/* Ends the channel from the raw side and runs the loop until it closed. */
static void finish(uv_loop_t *loop, endpoint *e, int raw) {
  close(raw);
  cp_test_loop_run(loop, GUARD_MS);
  free_endpoint(e);
  cp_test_loop_finish(loop);
}

/* What most cases start from: a channel, its raw peer, and a pipe whose
 * ends the case may send. Ends still open are closed by the teardown. */
typedef struct peer {
  uv_loop_t loop;
  endpoint a;
  int raw;
  int pipe_fds[2];
} peer;

static int setup_peer(void **state) {
  peer *p = malloc(sizeof(*p));

  assert_non_null(p);
  assert_int_equal(uv_loop_init(&p->loop), 0);
  p->raw = open_raw(&p->loop, &p->a);
  assert_int_equal(pipe2(p->pipe_fds, O_CLOEXEC), 0);
  *state = p;
  return 0;
}

static int teardown_peer(void **state) {
  peer *p = *state;

  for (int i = 0; i < 2; i++) {
    if (p->pipe_fds[i] >= 0)
      close(p->pipe_fds[i]);
  }
  finish(&p->loop, &p->a, p->raw);
  free(p);
  return 0;
}

/* Closes one end of the fixture's pipe before the teardown would. */
static void close_end(int *fd) {
  close(*fd);
  *fd = -1;
}

/* ------------------------------------------------------------------------
 * The raw peer
 * ------------------------------------------------------------------------ */

/* Writes text with fd (unless -1) on its first byte, as libuv does. */
static void raw_send(int raw, const char *text, int fd) {
  cp_test_send_with_fd(raw, text, strlen(text), fd);
}

/* Whether the raw end has bytes to read now. */
static bool raw_readable(int raw) {
  char byte;

  return recv(raw, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

/* Runs the channel's loop without blocking until the raw end has a byte
 * or end of file, or the loop has nothing left to run. */
static void wait_readable(int raw) {
  char byte;

  while (recv(raw, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
         errno == EAGAIN && channel_loop != NULL &&
         uv_run(channel_loop, UV_RUN_NOWAIT) != 0) {
  }
}

/* Reads one line (newline included) into line, and the descriptor that
 * came with its bytes into *fd, or -1. Reads a byte at a time, so that a
 * descriptor is seen with the byte it rides on. */
static void raw_read_line(int raw, char *line, size_t size, int *fd) {
  size_t len = 0;

  *fd = -1;
  wait_readable(raw);
  while (len + 1 < size) {
    union {
      struct cmsghdr align;
      char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = line + len, .iov_len = 1};
    struct msghdr message = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    struct cmsghdr *cmsg;
    ssize_t n = recvmsg(raw, &message, MSG_CMSG_CLOEXEC);

    assert_int_equal(n, 1);
    cmsg = CMSG_FIRSTHDR(&message);
    if (cmsg != NULL && cmsg->cmsg_type == SCM_RIGHTS) {
      assert_int_equal(len, 0);
      memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
    }
    if (line[len++] == '\n')
      break;
  }
  line[len] = '\0';
}

static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static int send_text(endpoint *e, const char *json, const cp_handle *handle,
                     const cp_send_options *options) {
  cJSON *value = cJSON_Parse(json);
  int r;

  assert_non_null(value);
  r = cp__channel_send_handle(e->channel, value, handle, options, NULL, NULL);
  cJSON_Delete(value);
  return r;
}

/* Runs the loop once without waiting, for the channel's poll to fire. */
static void pump(uv_loop_t *loop) {
  for (int i = 0; i < 4; i++)
    uv_run(loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

/* The envelope is Node's, byte for byte, and the descriptor rides on its
 * first byte. The caller keeps its pipe, and the duplicate sent is closed. */
static void handle_send_wraps_message_and_attaches_descriptor(void **state) {
  peer *p = *state;
  char line[256];
  int fd;
  size_t fds_before;

  fds_before = cp_test_count_fds();

  assert_int_equal(send_text(&p->a, "1", NULL, NULL), 1);
  assert_int_equal(send_text(&p->a, "{\"n\":2}",
                             &CP_HANDLE_FD(CP_HANDLE_NET_NATIVE,
                                           p->pipe_fds[1]),
                             NULL),
                   1);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "1\n");
  assert_int_equal(fd, -1);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\","
                            "\"msg\":{\"n\":2}}\n");
  assert_true(fd >= 0);

  /* The descriptor is the same pipe: a byte written to it comes out of
   * the caller's read end. */
  assert_int_equal(write(fd, "z", 1), 1);
  assert_int_equal(read(p->pipe_fds[0], line, 1), 1);
  assert_int_equal(line[0], 'z');
  close(fd);

  assert_true(fd_is_open(p->pipe_fds[1]));
  assert_int_equal(cp_test_count_fds(), fds_before);
  close_end(&p->pipe_fds[0]);
  close_end(&p->pipe_fds[1]);
}

/* As in Node's sender, nothing after a handle is written until the
 * receiver's ACK, and the held sends count toward the backlog. */
static void handle_send_holds_later_sends_until_ack(void **state) {
  peer *p = *state;
  char line[256];
  int fd;


  assert_int_equal(send_text(&p->a, "\"first\"",
                             &(cp_handle){.type = CP_HANDLE_NET_SERVER,
                                          .fd = p->pipe_fds[0]},
                             NULL),
                   1);
  assert_int_equal(send_text(&p->a, "2", NULL, NULL), 1);
  assert_int_equal(send_text(&p->a, "3", NULL, NULL), 1);
  pump(&p->loop);
  assert_int_equal(cp__channel_backlog(p->a.channel), 4);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_true(fd >= 0);
  close(fd);
  pump(&p->loop);
  assert_false(raw_readable(p->raw));

  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "2\n");
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "3\n");

  /* The ACK is delivered as an internal message too, as in Node. */
  assert_int_equal(p->a.messages, 1);
  assert_true(p->a.internal[0]);
  assert_int_equal(p->a.error_count, 0);
  close_end(&p->pipe_fds[0]);
  close_end(&p->pipe_fds[1]);
}

/* A handed-over socket is resent after each NACK, three times, then closed
 * and reported; the sends held behind it go on. */
static void handle_send_resends_socket_after_nack(void **state) {
  peer *p = *state;
  int sv[2];
  char line[256];
  int fd;

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

  assert_int_equal(send_text(&p->a, "\"s\"",
                             &(cp_handle){.type = CP_HANDLE_NET_SOCKET,
                                          .fd = sv[0]},
                             NULL),
                   1);
  assert_int_equal(send_text(&p->a, "\"after\"", NULL, NULL), 1);

  for (int attempt = 0; attempt < 4; attempt++) {
    raw_read_line(p->raw, line, sizeof(line), &fd);
    assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\","
                              "\"msg\":\"s\"}\n");
    assert_true(fd >= 0);
    close(fd);
    /* The library owns the caller's descriptor until the end. */
    assert_true(fd_is_open(sv[0]));
    raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_NACK\"}\n", -1);
    cp__channel_read_dry(p->a.channel);
  }

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "\"after\"\n");
  assert_false(fd_is_open(sv[0]));
  assert_int_equal(p->a.error_count, 1);
  assert_int_equal(p->a.errors[0], CP_ERR_IPC_HANDLE_NOT_RECEIVED);
  close(sv[1]);
}

/* The ACK closes a handed-over socket; keep_open leaves it to the caller. */
static void handle_send_ack_closes_socket_unless_keep_open(void **state) {
  peer *p = *state;
  int handed[2];
  int kept[2];
  char line[256];
  int fd;

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, handed),
                   0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kept), 0);

  assert_int_equal(send_text(&p->a, "1",
                             &(cp_handle){.type = CP_HANDLE_NET_SOCKET,
                                          .fd = handed[0]},
                             NULL),
                   1);
  assert_int_equal(send_text(&p->a, "2",
                             &(cp_handle){.type = CP_HANDLE_NET_SOCKET,
                                          .fd = kept[0]},
                             &(cp_send_options){.keep_open = true}),
                   1);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  close(fd);
  assert_true(fd_is_open(handed[0]));
  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  assert_false(fd_is_open(handed[0]));

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_true(fd >= 0);
  close(fd);
  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  assert_true(fd_is_open(kept[0]));

  close(handed[1]);
  close(kept[0]);
  close(kept[1]);
}

static void count_close(uv_handle_t *handle) { ++*(int *)handle->data; }

/* A uv stream handed over stops reading at once and is closed with the
 * caller's close_cb once acknowledged; one of another loop is rejected. */
static void handle_send_closes_uv_socket_after_ack(void **state) {
  peer *p = *state;
  uv_loop_t other_loop;
  uv_pipe_t stream;
  uv_pipe_t foreign;
  int sv[2];
  int closed = 0;
  char line[256];
  int fd;

  assert_int_equal(uv_loop_init(&other_loop), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(uv_pipe_init(&p->loop, &stream, 0), 0);
  assert_int_equal(uv_pipe_open(&stream, sv[0]), 0);
  assert_int_equal(uv_pipe_init(&other_loop, &foreign, 0), 0);
  stream.data = &closed;

  assert_int_equal(send_text(&p->a, "1",
                             &CP_HANDLE_UV(CP_HANDLE_NET_SOCKET, &foreign),
                             NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(send_text(&p->a, "2",
                             &(cp_handle){.type = CP_HANDLE_NET_SOCKET,
                                          .uv = (uv_handle_t *)&stream,
                                          .close_cb = count_close},
                             NULL),
                   1);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_true(fd >= 0);
  pump(&p->loop);
  assert_int_equal(closed, 0);
  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  pump(&p->loop);
  assert_int_equal(closed, 1);

  /* The receiver's copy still reaches the other end. */
  assert_int_equal(write(fd, "k", 1), 1);
  assert_int_equal(read(sv[1], line, 1), 1);
  close(fd);
  close(sv[1]);
  uv_close((uv_handle_t *)&foreign, NULL);
  assert_int_equal(uv_run(&other_loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&other_loop), 0);
}

/* Bad handles fail at once and leave the caller's descriptor alone. */
static void handle_send_rejects_bad_handles(void **state) {
  peer *p = *state;
  uv_timer_t timer;

  assert_int_equal(uv_timer_init(&p->loop, &timer), 0);

  assert_int_equal(send_text(&p->a, "1",
                             &(cp_handle){.type = (cp_handle_type)42,
                                          .fd = p->pipe_fds[0]},
                             NULL),
                   CP_ERR_INVALID_HANDLE_TYPE);
  assert_int_equal(send_text(&p->a, "1",
                             &(cp_handle){.type = CP_HANDLE_NONE,
                                          .fd = p->pipe_fds[0]},
                             NULL),
                   CP_ERR_INVALID_HANDLE_TYPE);
  assert_int_equal(
      send_text(&p->a, "1", &(cp_handle){.type = CP_HANDLE_NET_SOCKET, .fd = -1},
                NULL),
      -EBADF);
  assert_int_equal(send_text(&p->a, "1",
                             &(cp_handle){.type = CP_HANDLE_NET_SOCKET,
                                          .uv = (uv_handle_t *)&timer},
                             NULL),
                   CP_ERR_INVALID_HANDLE_TYPE);
  assert_true(fd_is_open(p->pipe_fds[0]));
  assert_int_equal(cp__channel_backlog(p->a.channel), 0);

  /* The timer lives on this stack frame: closed before it returns. */
  uv_close((uv_handle_t *)&timer, NULL);
  pump(&p->loop);
  close_end(&p->pipe_fds[0]);
  close_end(&p->pipe_fds[1]);
}

/* ------------------------------------------------------------------------
 * Receiving
 * ------------------------------------------------------------------------ */

/* The descriptor reaches the listener with the user's message and type,
 * and the sender gets one ACK. */
static void handle_receive_delivers_descriptor_and_acks(void **state) {
  peer *p = *state;
  char line[256];
  int fd;


  raw_send(p->raw,
           "{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgram.Socket\","
           "\"msg\":{\"job\":7},\"dgramType\":\"udp4\"}\n",
           p->pipe_fds[1]);
  close_end(&p->pipe_fds[1]);
  cp__channel_read_dry(p->a.channel);

  assert_int_equal(p->a.messages, 1);
  assert_string_equal(p->a.texts[0], "{\"job\":7}");
  assert_false(p->a.internal[0]);
  assert_int_equal(p->a.types[0], CP_HANDLE_DGRAM_SOCKET);
  assert_true(p->a.fds[0] >= 0);
  /* Close-on-exec, and the same pipe. */
  assert_true(fcntl(p->a.fds[0], F_GETFD) & FD_CLOEXEC);
  assert_int_equal(write(p->a.fds[0], "q", 1), 1);
  assert_int_equal(read(p->pipe_fds[0], line, 1), 1);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
  pump(&p->loop);
  assert_false(raw_readable(p->raw));
  close_end(&p->pipe_fds[0]);
}

/* Node's resend wraps the envelope in a second one. The inner one is the
 * real message, and one ACK replies to both. */
static void handle_receive_opens_nested_envelope(void **state) {
  peer *p = *state;
  char line[256];
  int fd;


  raw_send(p->raw,
           "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":"
           "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":[1]}}\n",
           p->pipe_fds[1]);
  close_end(&p->pipe_fds[1]);
  cp__channel_read_dry(p->a.channel);

  assert_int_equal(p->a.messages, 1);
  assert_string_equal(p->a.texts[0], "[1]");
  assert_int_equal(p->a.types[0], CP_HANDLE_NET_SOCKET);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
  pump(&p->loop);
  assert_false(raw_readable(p->raw));
  close_end(&p->pipe_fds[0]);
}

/* An unknown type is acknowledged (as Node does before it throws), the
 * descriptor closed and the error reported; later messages still come. */
static void handle_receive_rejects_unknown_type(void **state) {
  peer *p = *state;
  char line[256];
  int fd;


  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"fs.File\",\"msg\":1}\n",
           p->pipe_fds[1]);
  raw_send(p->raw, "2\n", -1);
  close_end(&p->pipe_fds[1]);
  cp__channel_read_dry(p->a.channel);

  assert_int_equal(p->a.error_count, 1);
  assert_int_equal(p->a.errors[0], CP_ERR_INVALID_HANDLE_TYPE);
  assert_int_equal(p->a.messages, 1);
  assert_string_equal(p->a.texts[0], "2");
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
  /* The library's copy was closed, so the read end gets end of file. */
  assert_int_equal(read(p->pipe_fds[0], line, 1), 0);
  close_end(&p->pipe_fds[0]);
}

/* Two descriptors in one write: the first goes with the envelope, the
 * second is closed and reported. */
static void handle_receive_closes_extra_descriptors(void **state) {
  peer *p = *state;
  static const char text[] =
      "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":0}\n";
  int first[2];
  int second[2];
  int fds[2];
  char probe;
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(2 * sizeof(int))];
  } control;
  struct iovec iov = {.iov_base = (void *)text, .iov_len = sizeof(text) - 1};
  struct msghdr message = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control.bytes,
                           .msg_controllen = sizeof(control.bytes)};
  struct cmsghdr *cmsg;

  assert_int_equal(pipe2(first, O_CLOEXEC), 0);
  assert_int_equal(pipe2(second, O_CLOEXEC), 0);

  memset(&control, 0, sizeof(control));
  cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(2 * sizeof(int));
  fds[0] = first[1];
  fds[1] = second[1];
  memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
  assert_int_equal(sendmsg(p->raw, &message, 0), (ssize_t)sizeof(text) - 1);
  close(first[1]);
  close(second[1]);
  cp__channel_read_dry(p->a.channel);

  assert_int_equal(p->a.messages, 1);
  assert_true(p->a.fds[0] >= 0);
  assert_int_equal(p->a.error_count, 1);
  assert_int_equal(p->a.errors[0], CP_ERR_IPC_UNEXPECTED_HANDLE);
  /* The second pipe has no writer left. */
  assert_int_equal(read(second[0], &probe, 1), 0);
  close(first[0]);
  close(second[0]);
}

/* An ACK for nothing sent is reported and changes nothing. */
static void handle_receive_reports_stray_ack(void **state) {
  peer *p = *state;

  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n3\n", -1);
  cp__channel_read_dry(p->a.channel);

  assert_int_equal(p->a.error_count, 1);
  assert_int_equal(p->a.errors[0], CP_ERR_IPC_UNEXPECTED_ACK);
  assert_int_equal(p->a.messages, 2);
  assert_string_equal(p->a.texts[1], "3");
}

/* While sends wait for a reply, our own ACK to the peer still goes out
 * ahead of them. Otherwise two Node-style senders would wait for each
 * other for ever. */
static void handle_answer_goes_ahead_of_held_sends(void **state) {
  peer *p = *state;
  int ours[2];
  int theirs[2];
  char line[256];
  int fd;

  assert_int_equal(pipe2(ours, O_CLOEXEC), 0);
  assert_int_equal(pipe2(theirs, O_CLOEXEC), 0);

  assert_int_equal(send_text(&p->a, "\"h\"",
                             &(cp_handle){.type = CP_HANDLE_NET_NATIVE,
                                          .fd = ours[0]},
                             NULL),
                   1);
  assert_int_equal(send_text(&p->a, "\"held\"", NULL, NULL), 1);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_true(fd >= 0);
  close(fd);

  raw_send(p->raw,
           "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":5}\n",
           theirs[0]);
  cp__channel_read_dry(p->a.channel);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
  pump(&p->loop);
  assert_false(raw_readable(p->raw));

  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "\"held\"\n");

  close(ours[0]);
  close(ours[1]);
  close(theirs[0]);
  close(theirs[1]);
}

/* disconnect() waits for the answer, writes what was held, then ends. */
static void handle_disconnect_waits_for_answer(void **state) {
  uv_loop_t loop;
  endpoint a;
  int pipe_fds[2];
  char line[256];
  int fd;
  int raw;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  raw = open_raw(&loop, &a);
  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);

  assert_int_equal(send_text(&a, "1",
                             &(cp_handle){.type = CP_HANDLE_NET_SERVER,
                                          .fd = pipe_fds[0]},
                             NULL),
                   1);
  assert_int_equal(send_text(&a, "\"last\"", NULL, NULL), 1);
  assert_int_equal(cp__channel_disconnect(a.channel), 0);
  raw_read_line(raw, line, sizeof(line), &fd);
  close(fd);
  pump(&loop);
  assert_int_equal(a.closes, 0);

  raw_send(raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp_test_loop_run(&loop, GUARD_MS);
  raw_read_line(raw, line, sizeof(line), &fd);
  assert_string_equal(line, "\"last\"\n");
  assert_int_equal(recv(raw, line, 1, 0), 0);
  assert_int_equal(a.closes, 1);
  /* Only the ACK, an internal message, which came while waiting. */
  assert_int_equal(a.messages, 1);
  assert_true(a.internal[0]);

  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(raw);
  free_endpoint(&a);
  cp_test_loop_finish(&loop);
}

/* While a disconnect waits for the answer, the peer's messages are still
 * delivered and its handles answered, as Node's postponed disconnect
 * keeps its channel working. */
static void handle_disconnect_wait_still_takes_input(void **state) {
  peer *p = *state;
  int theirs[2];
  char line[256];
  int fd;

  assert_int_equal(pipe2(theirs, O_CLOEXEC), 0);
  assert_int_equal(send_text(&p->a, "1",
                             &CP_HANDLE_FD(CP_HANDLE_NET_SERVER,
                                           p->pipe_fds[0]),
                             NULL),
                   1);
  assert_int_equal(cp__channel_disconnect(p->a.channel), 0);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  close(fd);

  raw_send(p->raw, "\"plain\"\n", -1);
  raw_send(p->raw,
           "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":5}\n",
           theirs[0]);
  close_end(&theirs[0]);
  cp__channel_read_dry(p->a.channel);
  assert_int_equal(p->a.messages, 2);
  assert_string_equal(p->a.texts[0], "\"plain\"");
  assert_string_equal(p->a.texts[1], "5");
  assert_true(p->a.fds[1] >= 0);
  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_string_equal(line, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");

  /* Our answer arrives: the disconnect ends the channel. */
  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp_test_loop_run(&p->loop, GUARD_MS);
  assert_int_equal(p->a.closes, 1);
  assert_int_equal(recv(p->raw, line, 1, 0), 0);
  close(theirs[1]);
}

static void free_on_close(uv_handle_t *handle) { free(handle); }

/* A uv socket handed over once cannot be handed over again while the
 * first send still owns it, so the library never closes it twice. */
static void handle_send_rejects_uv_socket_held_already(void **state) {
  peer *p = *state;
  uv_pipe_t *stream = malloc(sizeof(*stream));
  int sv[2];
  char line[256];
  int fd;

  assert_non_null(stream);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(uv_pipe_init(&p->loop, stream, 0), 0);
  assert_int_equal(uv_pipe_open(stream, sv[0]), 0);
  stream->data = NULL;

  cp_handle handle = CP_HANDLE_UV(CP_HANDLE_NET_SOCKET, stream);
  handle.close_cb = free_on_close;
  assert_int_equal(send_text(&p->a, "1", &handle, NULL), 1);
  assert_int_equal(send_text(&p->a, "2", &handle, NULL),
                   CP_ERR_INVALID_ARG_VALUE);

  raw_read_line(p->raw, line, sizeof(line), &fd);
  assert_true(fd >= 0);
  close(fd);
  raw_send(p->raw, "{\"cmd\":\"NODE_HANDLE_ACK\"}\n", -1);
  cp__channel_read_dry(p->a.channel);
  pump(&p->loop);
  close(sv[1]);
}

/* ------------------------------------------------------------------------
 * C to C, through echo-worker
 * ------------------------------------------------------------------------ */

typedef struct echo_state {
  int pipe_write; /* the pipe end that travels */
  int echoed;     /* handles back, each written to and closed */
  int wrong;      /* echoes without a descriptor, or of the wrong type */
  int syncs;      /* "sync" messages back */
  pid_t worker;
  /* Descriptor counts of the worker and ours after the first 10 handles
   * came back, and after all of them. Each is taken once the echo of a
   * plain message shows that both sides are idle. */
  size_t worker_fds[2];
  size_t fds[2];
} echo_state;

/* Sends count handles, then "sync", whose echo comes after theirs. */
static void send_round(cp_child *child, echo_state *echo, int count) {
  cJSON *sync = cJSON_CreateString("sync");

  for (int i = 0; i < count; i++) {
    cJSON *message = cJSON_CreateNumber(i);

    assert_true(cp_child_send(child, message,
                              &(cp_handle){.type = CP_HANDLE_NET_NATIVE,
                                           .fd = echo->pipe_write},
                              NULL, NULL, NULL) >= 0);
    cJSON_Delete(message);
  }
  assert_true(cp_child_send(child, sync, NULL, NULL, NULL, NULL) >= 0);
  cJSON_Delete(sync);
}

static void on_echo(cp_child *child, const cp_event *event, void *data) {
  echo_state *echo = data;
  int fd;

  if (cJSON_IsString(event->message)) {
    echo->worker_fds[echo->syncs] = cp_test_count_fds_of(echo->worker);
    echo->fds[echo->syncs] = cp_test_count_fds();
    if (++echo->syncs == 1)
      send_round(child, echo, 990);
    else
      cp_child_disconnect(child);
    return;
  }

  fd = cp_event_take_handle(event);
  if (fd < 0 || event->handle->type != CP_HANDLE_NET_NATIVE) {
    echo->wrong++;
  } else {
    /* The same pipe came back: what goes in comes out of ours. */
    if (write(fd, "e", 1) != 1)
      echo->wrong++;
    close(fd);
  }
  echo->echoed++;
}

/* 1,000 handles to a C child and back: every one arrives with its message,
 * and neither process keeps a descriptor it was given. */
static void handle_echo_worker_returns_1000_handles(void **state) {
  uv_loop_t loop;
  echo_state echo = {0};
  cp_child *child;
  int pipe_fds[2];
  char buffer[1024];
  size_t got = 0;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
  echo.pipe_write = pipe_fds[1];

  assert_int_equal(cp_fork(&loop, CP_TEST_EXAMPLES_DIR "/echo-worker", NULL,
                           NULL, &child),
                   0);
  echo.worker = cp_child_pid(child);
  assert_int_equal(cp_child_on(child, CP_EVENT_MESSAGE, on_echo, &echo), 0);
  send_round(child, &echo, 10);

  cp_test_loop_run(&loop, GUARD_MS);
  cp_child_release(child);
  close(pipe_fds[1]);

  assert_int_equal(echo.syncs, 2);
  assert_int_equal(echo.echoed, 1000);
  assert_int_equal(echo.wrong, 0);
  assert_true(echo.worker_fds[0] > 0);
  assert_int_equal(echo.worker_fds[1], echo.worker_fds[0]);
  assert_int_equal(echo.fds[1], echo.fds[0]);

  /* Every copy is closed: the pipe ends after exactly one byte per echo. */
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;)
    got += (size_t)n;
  assert_int_equal(got, 1000);
  close(pipe_fds[0]);
  cp_test_loop_finish(&loop);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(handle_send_wraps_message_and_attaches_descriptor, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_send_holds_later_sends_until_ack, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_send_resends_socket_after_nack, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_send_ack_closes_socket_unless_keep_open, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_send_closes_uv_socket_after_ack, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_send_rejects_bad_handles, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_receive_delivers_descriptor_and_acks, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_receive_opens_nested_envelope, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_receive_rejects_unknown_type, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_receive_closes_extra_descriptors, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_receive_reports_stray_ack, setup_peer,
                                      teardown_peer),
      cmocka_unit_test_setup_teardown(handle_answer_goes_ahead_of_held_sends, setup_peer,
                                      teardown_peer),
      cmocka_unit_test(handle_disconnect_waits_for_answer),
      cmocka_unit_test_setup_teardown(handle_disconnect_wait_still_takes_input,
                                      setup_peer, teardown_peer),
      cmocka_unit_test_setup_teardown(
          handle_send_rejects_uv_socket_held_already, setup_peer,
          teardown_peer),
      cmocka_unit_test(handle_echo_worker_returns_1000_handles),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
