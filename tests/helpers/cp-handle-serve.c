/*
 * cp-handle-serve: a C child for Node.js parents that send it handles. It
 * opens the channel its parent gave it and acts on each message that comes
 * with a descriptor:
 *
 * - {"cmd":"serve"} with a net.Server: listens on it and writes
 *   "c:<pid>\n" to every connection, then closes that connection;
 *   replies {"serving":<pid>}.
 * - {"cmd":"dgram"} with a dgram.Socket: replies to every datagram with
 *   "c:<pid>" to its sender; replies {"bound":<pid>}.
 * - {"cmd":"socket","offset":K} with a net.Socket: reads to end of file,
 *   checks that byte i read is (K + i) % 251, and replies
 *   {"bytes":<count>,"bad":<mismatches>}.
 *
 * - {"cmd":"nack-next"}: lowers RLIMIT_NOFILE so that the next descriptor
 *   sent cannot be installed, which makes the library answer its
 *   NODE_HANDLE with NODE_HANDLE_NACK; the limit is restored when the
 *   library reports the lost descriptor. Replies {"armed":<pid>}.
 *
 * A command that fails is answered with {"error":<libuv error name>}, and
 * any other message, with or without a descriptor, with
 * {"unexpected":<message>}. On disconnect every handle is closed and the
 * process exits with status 0 once the loop is empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

/* The byte pattern of the "socket" command; 251 is prime, so the pattern
 * does not line up with any power-of-two buffer size. */
#define PATTERN_PERIOD 251

typedef struct served {
  uv_tcp_t server;
  bool server_open;
  uv_udp_t udp;
  bool udp_open;
  char reply[32]; /* "c:<pid>\n" */
  size_t reply_len;
  bool limit_lowered;
  struct rlimit saved_limit;
} served;

typedef struct stream_check {
  uv_tcp_t tcp;
  cp_channel *channel;
  uint64_t offset; /* stream position of the first byte this child reads */
  uint64_t bytes;
  uint64_t bad;
} stream_check;

static served state;

static void free_on_close(uv_handle_t *handle) { free(handle->data); }

static void reply_number(cp_channel *channel, const char *name, double n) {
  cJSON *reply = cJSON_CreateObject();

  cJSON_AddNumberToObject(reply, name, n);
  cp_channel_send(channel, reply, NULL, NULL, NULL, NULL);
  cJSON_Delete(reply);
}

/* ------------------------------------------------------------------------
 * net.Server: a fixed reply on each connection
 * ------------------------------------------------------------------------ */

static void on_answer_written(uv_write_t *request, int status) {
  (void)status;
  uv_close((uv_handle_t *)request->handle, free_on_close);
  free(request);
}

static void on_connection(uv_stream_t *server, int status) {
  uv_tcp_t *connection;
  uv_write_t *request;
  uv_buf_t buf = uv_buf_init(state.reply, (unsigned)state.reply_len);

  if (status < 0)
    return;
  connection = malloc(sizeof(*connection));
  request = malloc(sizeof(*request));
  if (connection == NULL || request == NULL) {
    free(connection);
    free(request);
    return;
  }
  uv_tcp_init(server->loop, connection);
  connection->data = connection;
  if (uv_accept(server, (uv_stream_t *)connection) < 0 ||
      uv_write(request, (uv_stream_t *)connection, &buf, 1,
               on_answer_written) < 0) {
    free(request);
    uv_close((uv_handle_t *)connection, free_on_close);
  }
}

static int serve(uv_loop_t *loop, int fd) {
  int r = uv_tcp_init(loop, &state.server);

  if (r < 0)
    return r;
  state.server_open = true;
  r = uv_tcp_open(&state.server, fd);
  if (r < 0) {
    close(fd);
    return r;
  }
  return uv_listen((uv_stream_t *)&state.server, 16, on_connection);
}

/* ------------------------------------------------------------------------
 * dgram.Socket: a fixed reply to each datagram's sender
 * ------------------------------------------------------------------------ */

static void on_datagram_sent(uv_udp_send_t *request, int status) {
  (void)status;
  free(request);
}

static void alloc_datagram(uv_handle_t *handle, size_t suggested,
                           uv_buf_t *buf) {
  static char storage[2048];

  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(storage, sizeof(storage));
}

static void on_datagram(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *from, unsigned flags) {
  uv_buf_t answer = uv_buf_init(state.reply, (unsigned)state.reply_len - 1);
  uv_udp_send_t *request;

  (void)buf;
  (void)flags;
  if (nread < 0 || from == NULL)
    return;
  request = malloc(sizeof(*request));
  if (request == NULL)
    return;
  if (uv_udp_send(request, udp, &answer, 1, from, on_datagram_sent) < 0)
    free(request);
}

static int bind_dgram(uv_loop_t *loop, int fd) {
  int r = uv_udp_init(loop, &state.udp);

  if (r < 0)
    return r;
  state.udp_open = true;
  r = uv_udp_open(&state.udp, fd);
  if (r < 0) {
    close(fd);
    return r;
  }
  return uv_udp_recv_start(&state.udp, alloc_datagram, on_datagram);
}

/* ------------------------------------------------------------------------
 * net.Socket: check every byte that comes after the handover
 * ------------------------------------------------------------------------ */

static void alloc_stream(uv_handle_t *handle, size_t suggested,
                         uv_buf_t *buf) {
  static char storage[65536];

  (void)handle;
  (void)suggested;
  *buf = uv_buf_init(storage, sizeof(storage));
}

static void on_stream_read(uv_stream_t *stream, ssize_t nread,
                           const uv_buf_t *buf) {
  stream_check *check = stream->data;

  for (ssize_t i = 0; i < nread; i++) {
    if ((unsigned char)buf->base[i] !=
        (check->offset + check->bytes) % PATTERN_PERIOD)
      check->bad++;
    check->bytes++;
  }
  if (nread >= 0)
    return;

  /* End of file or an error: either way the count is final. */
  {
    cJSON *reply = cJSON_CreateObject();

    cJSON_AddNumberToObject(reply, "bytes", (double)check->bytes);
    cJSON_AddNumberToObject(reply, "bad", (double)check->bad);
    if (nread != UV_EOF)
      cJSON_AddStringToObject(reply, "error", uv_err_name((int)nread));
    cp_channel_send(check->channel, reply, NULL, NULL, NULL, NULL);
    cJSON_Delete(reply);
  }
  uv_close((uv_handle_t *)stream, free_on_close);
}

static int check_stream(cp_channel *channel, uv_loop_t *loop, int fd,
                        const cJSON *message) {
  const cJSON *offset = cJSON_GetObjectItemCaseSensitive(message, "offset");
  stream_check *check = calloc(1, sizeof(*check));
  int r;

  if (check == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  check->channel = channel;
  check->offset = cJSON_IsNumber(offset) ? (uint64_t)offset->valuedouble : 0;
  uv_tcp_init(loop, &check->tcp);
  check->tcp.data = check;
  r = uv_tcp_open(&check->tcp, fd);
  if (r < 0)
    close(fd); /* not the handle's yet */
  else
    r = uv_read_start((uv_stream_t *)&check->tcp, alloc_stream,
                      on_stream_read);
  if (r < 0)
    uv_close((uv_handle_t *)&check->tcp, free_on_close);
  return r;
}

/* ------------------------------------------------------------------------
 * nack-next: no room for the next descriptor
 * ------------------------------------------------------------------------ */

static void restore_descriptor_limit(void) {
  if (!state.limit_lowered)
    return;
  state.limit_lowered = false;
  if (setrlimit(RLIMIT_NOFILE, &state.saved_limit) < 0)
    perror("cp-handle-serve: setrlimit");
}

/* The kernel installs a received descriptor at the lowest free number, so
 * a limit equal to that number makes recvmsg() drop it (MSG_CTRUNC).
 * NOTE: under valgrind (3.19) the descriptor still arrives, because
 * valgrind applies the limit only in its own syscall wrappers. */
static int lower_descriptor_limit(void) {
  struct rlimit limit;
  int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);

  if (lowest < 0)
    return -errno;
  close(lowest);
  if (getrlimit(RLIMIT_NOFILE, &state.saved_limit) < 0)
    return -errno;
  limit = state.saved_limit;
  limit.rlim_cur = (rlim_t)lowest;
  if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
    return -errno;
  state.limit_lowered = true;
  return 0;
}

/* ------------------------------------------------------------------------
 * The channel
 * ------------------------------------------------------------------------ */

static void reply_unexpected(cp_channel *channel, const cJSON *message) {
  cJSON *reply = cJSON_CreateObject();

  cJSON_AddItemToObject(reply, "unexpected", cJSON_Duplicate(message, true));
  cp_channel_send(channel, reply, NULL, NULL, NULL, NULL);
  cJSON_Delete(reply);
}

static void on_message(cp_channel *channel, const cp_event *event,
                       void *data) {
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(event->message, "cmd");
  const char *name = cJSON_IsString(cmd) ? cmd->valuestring : "";
  cp_handle_type type =
      event->handle != NULL ? event->handle->type : CP_HANDLE_NONE;
  uv_loop_t *loop = data;
  int r;

  if (strcmp(name, "serve") == 0 && type == CP_HANDLE_NET_SERVER &&
      !state.server_open) {
    r = serve(loop, cp_event_take_handle(event));
    if (r == 0)
      reply_number(channel, "serving", getpid());
  } else if (strcmp(name, "dgram") == 0 && type == CP_HANDLE_DGRAM_SOCKET &&
             !state.udp_open) {
    r = bind_dgram(loop, cp_event_take_handle(event));
    if (r == 0)
      reply_number(channel, "bound", getpid());
  } else if (strcmp(name, "nack-next") == 0 && type == CP_HANDLE_NONE) {
    r = lower_descriptor_limit();
    if (r == 0)
      reply_number(channel, "armed", getpid());
  } else if (strcmp(name, "socket") == 0 && type == CP_HANDLE_NET_SOCKET) {
    r = check_stream(channel, loop, cp_event_take_handle(event),
                     event->message);
  } else {
    reply_unexpected(channel, event->message);
    return;
  }
  if (r < 0) {
    cJSON *reply = cJSON_CreateObject();

    fprintf(stderr, "cp-handle-serve: %s: %s\n", name, uv_strerror(r));
    cJSON_AddStringToObject(reply, "error", uv_err_name(r));
    cp_channel_send(channel, reply, NULL, NULL, NULL, NULL);
    cJSON_Delete(reply);
  }
}

static void on_error(cp_channel *channel, const cp_event *event, void *data) {
  (void)channel;
  (void)data;
  if (state.limit_lowered && event->error == CP_ERR_IPC_UNEXPECTED_HANDLE) {
    /* The descriptor nack-next made room for none; the resend gets one. */
    restore_descriptor_limit();
    return;
  }
  fprintf(stderr, "cp-handle-serve: %s%s%s\n",
          event->syscall ? event->syscall : "", event->syscall ? ": " : "",
          cp_strerror(event->error));
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  if (state.server_open)
    uv_close((uv_handle_t *)&state.server, NULL);
  if (state.udp_open)
    uv_close((uv_handle_t *)&state.udp, NULL);
  state.server_open = false;
  state.udp_open = false;
  cp_channel_release(channel);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0) {
    fprintf(stderr, "cp-handle-serve: no IPC channel from the parent: %s\n",
            cp_strerror(r));
    return 2;
  }
  state.reply_len = (size_t)snprintf(state.reply, sizeof(state.reply),
                                     "c:%d\n", (int)getpid());

  cp_channel_on(channel, CP_EVENT_MESSAGE, on_message, loop);
  cp_channel_on(channel, CP_EVENT_ERROR, on_error, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_close, NULL);

  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
