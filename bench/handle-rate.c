/*
 * handle-rate: descriptors per second passed from a C parent to a C child
 * over the IPC channel, each with its own message.
 *
 *   handle-rate childproc COUNT
 *   handle-rate floor COUNT
 *
 * childproc: the parent forks this program with the arguments "child
 * COUNT", then sends COUNT messages {"seq":i}, each carrying the same
 * socket (one end of a socket pair) with keep_open, so that the parent's
 * descriptor stays open. At most WINDOW sends wait for their callbacks at
 * a time; the protocol itself writes one handle per NODE_HANDLE_ACK. The
 * child takes each received descriptor, closes it and counts it, and after
 * the last one sends {"received":COUNT}. The clock runs from the first send
 * to that reply.
 *
 * floor: the same exchange with plain blocking system calls and no JSON
 * work: the parent sends each line {"seq":i} with the descriptor in one
 * sendmsg() and waits for a one-byte acknowledgement, as the protocol waits
 * for NODE_HANDLE_ACK; the child receives, closes and acknowledges.
 *
 * Prints: handles_per_s=RATE handles=COUNT seconds=ELAPSED
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

#include "bench-util.h"

#define WINDOW 64

typedef struct sender {
  cp_child *child;
  int fds[2]; /* fds[0] is sent every time */
  size_t count;
  size_t next;
  size_t in_flight;
  double start;
} sender;

static void send_handles(sender *s);

static void on_sent(cp_child *child, int status, void *data) {
  sender *s = data;

  (void)child;
  if (status < 0)
    bench_fail("cp_child_send: %s", cp_strerror(status));
  s->in_flight--;
  send_handles(s);
}

static void send_handles(sender *s) {
  cp_send_options options = {.keep_open = true};
  cp_handle handle = {.type = CP_HANDLE_NET_SOCKET, .fd = s->fds[0]};
  cJSON *message = cJSON_CreateObject();
  cJSON *seq = cJSON_AddNumberToObject(message, "seq", 0);

  if (seq == NULL)
    bench_fail("out of memory");
  while (s->in_flight < WINDOW && s->next < s->count) {
    int r;

    cJSON_SetNumberValue(seq, (double)s->next);
    r = cp_child_send(s->child, message, &handle, &options, on_sent, s);
    if (r < 0)
      bench_fail("cp_child_send: %s", cp_strerror(r));
    s->next++;
    s->in_flight++;
  }
  cJSON_Delete(message);
}

static void on_parent_message(cp_child *child, const cp_event *event,
                              void *data) {
  sender *s = data;
  const cJSON *received =
      cJSON_GetObjectItemCaseSensitive(event->message, "received");
  double seconds;

  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event->message, "ready"))) {
    s->start = bench_now();
    send_handles(s);
    return;
  }
  if (!cJSON_IsNumber(received) || received->valuedouble != (double)s->count)
    bench_fail("the child did not report %zu handles", s->count);
  seconds = bench_now() - s->start;
  printf("handles_per_s=%.1f handles=%zu seconds=%.3f\n",
         (double)s->count / seconds, s->count, seconds);
  cp_child_disconnect(child);
}

static void on_parent_close(cp_child *child, const cp_event *event,
                            void *data) {
  (void)event;
  (void)data;
  cp_child_release(child);
}

static int run_parent(const char *count_text) {
  const char *const args[] = {"child", count_text, NULL};
  uv_loop_t *loop = uv_default_loop();
  sender s = {.count = bench_parse_size(count_text, "COUNT")};
  int r;

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.fds) != 0)
    bench_fail("socketpair: %s", strerror(errno));
  r = cp_fork(loop, "/proc/self/exe", args, NULL, &s.child);
  if (r < 0)
    bench_fail("cp_fork: %s", cp_strerror(r));
  cp_child_on(s.child, CP_EVENT_MESSAGE, on_parent_message, &s);
  cp_child_on(s.child, CP_EVENT_CLOSE, on_parent_close, &s);
  uv_run(loop, UV_RUN_DEFAULT);
  close(s.fds[0]);
  close(s.fds[1]);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * The child
 * ------------------------------------------------------------------------ */

static size_t child_received;

static void on_child_message(cp_channel *channel, const cp_event *event,
                             void *data) {
  size_t count = *(size_t *)data;
  int fd = cp_event_take_handle(event);
  cJSON *reply;

  if (fd < 0)
    bench_fail("message %zu arrived without a descriptor", child_received);
  close(fd);
  if (++child_received < count)
    return;

  reply = cJSON_CreateObject();
  if (cJSON_AddNumberToObject(reply, "received", (double)count) == NULL)
    bench_fail("out of memory");
  cp_channel_send(channel, reply, NULL, NULL, NULL, NULL);
  cJSON_Delete(reply);
}

static void on_child_close(cp_channel *channel, const cp_event *event,
                           void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

static int run_child(size_t count) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  cJSON *ready = cJSON_CreateObject();
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0)
    bench_fail("no IPC channel: %s", cp_strerror(r));
  cp_channel_on(channel, CP_EVENT_MESSAGE, on_child_message, &count);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_child_close, NULL);
  if (cJSON_AddTrueToObject(ready, "ready") == NULL)
    bench_fail("out of memory");
  cp_channel_send(channel, ready, NULL, NULL, NULL, NULL);
  cJSON_Delete(ready);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * The floor
 * ------------------------------------------------------------------------ */

static void send_with_fd(int sock, const char *text, size_t len, int fd) {
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec iov = {.iov_base = (void *)text, .iov_len = len};
  struct msghdr message = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control.bytes,
                           .msg_controllen = sizeof(control.bytes)};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);

  memset(&control, 0, sizeof(control));
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  if (sendmsg(sock, &message, 0) != (ssize_t)len)
    bench_fail("sendmsg: %s", strerror(errno));
}

/* Receives one line with its descriptor, closes the descriptor. Returns
 * false at end of file. */
static bool receive_and_close(int sock) {
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int))];
  } control;
  char text[64];
  struct iovec iov = {.iov_base = text, .iov_len = sizeof(text)};
  struct msghdr message = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control.bytes,
                           .msg_controllen = sizeof(control.bytes)};
  struct cmsghdr *cmsg;
  ssize_t n = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
  int fd;

  if (n == 0)
    return false;
  cmsg = CMSG_FIRSTHDR(&message);
  if (n < 0 || cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS)
    bench_fail("the floor's child got no descriptor");
  memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  close(fd);
  return true;
}

static int run_floor(size_t count) {
  int sv[2];
  int shared[2];
  pid_t pid;
  double start;
  double seconds;
  char ack;

  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM, 0, shared) != 0)
    bench_fail("socketpair: %s", strerror(errno));
  pid = fork();
  if (pid < 0)
    bench_fail("fork: %s", strerror(errno));
  if (pid == 0) {
    close(sv[0]);
    while (receive_and_close(sv[1])) {
      if (write(sv[1], "A", 1) != 1)
        _exit(1);
    }
    _exit(0);
  }

  close(sv[1]);
  start = bench_now();
  for (size_t i = 0; i < count; i++) {
    char line[32];
    int len = snprintf(line, sizeof(line), "{\"seq\":%zu}\n", i);

    send_with_fd(sv[0], line, (size_t)len, shared[0]);
    if (read(sv[0], &ack, 1) != 1)
      bench_fail("the floor's child did not acknowledge");
  }
  seconds = bench_now() - start;
  close(sv[0]);
  waitpid(pid, NULL, 0);
  close(shared[0]);
  close(shared[1]);
  printf("handles_per_s=%.1f handles=%zu seconds=%.3f\n",
         (double)count / seconds, count, seconds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "childproc") == 0)
    return run_parent(argv[2]);
  if (argc == 3 && strcmp(argv[1], "floor") == 0)
    return run_floor(bench_parse_size(argv[2], "COUNT"));
  if (argc == 3 && strcmp(argv[1], "child") == 0)
    return run_child(bench_parse_size(argv[2], "COUNT"));
  bench_fail("usage: handle-rate childproc|floor COUNT");
}
