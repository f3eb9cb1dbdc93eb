/*
 * prefork-worker: the child that examples/prefork-server.c forks, several
 * times.
 *
 * It opens the IPC channel its parent gave it and waits for one message
 * {"worker":I} that carries a listening TCP socket as a net.Server handle.
 * It then accepts connections on that socket, in competition with its
 * sibling workers, and replies {"serving":true,"worker":I,"pid":P}, or
 * {"serving":false,"worker":I,"error":"..."} when it cannot listen.
 *
 * Each connection gets one HTTP/1.0 response and is then closed. The worker
 * reads until the blank line that ends the request headers, however the
 * bytes are split across reads, and responds to a GET with 200 and the body
 *
 *   request PATH served by worker I (pid P)
 *
 * and the header X-Worker: I. Anything else gets 400 or 405, and a request
 * line and headers of MAX_HEAD bytes or more get 431. A client that closes early or a
 * failed read or write costs that connection only, with one line on stderr.
 *
 * The worker exits with 0 once its parent disconnects: it then closes the
 * listening socket and every open connection, and its loop runs out of
 * handles. It exits with 2 when it has no channel.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

enum {
  BACKLOG = 511,    /* listen(2) backlog; the kernel caps it at somaxconn */
  MAX_HEAD = 8192,  /* buffer for request line and headers, NUL included */
  MAX_RESPONSE = 512,
};

typedef struct connection connection;

/* The worker's state. A single instance lives in main(). */
typedef struct worker {
  uv_loop_t *loop;
  cp_channel *channel;
  int index;          /* from the parent's message; -1 before it */
  uv_tcp_t server;
  bool serving;       /* server is initialized: uv_close() it at the end */
  connection *open;   /* every connection not yet closed, linked by next */
} worker;

/* One accepted connection. Owned by the worker's list from accept until
 * its close callback frees it. */
struct connection {
  uv_tcp_t tcp;
  worker *worker;
  connection *next;
  connection **prev_next;
  char head[MAX_HEAD];
  size_t head_len;
  uv_write_t write;
  uv_shutdown_t shutdown;
  char response[MAX_RESPONSE];
  bool answered;      /* a response was queued: further input is ignored */
};

/* Logs one line: the worker, the operation that failed, and the error
 * code unless it is 0. */
static void log_error(const worker *w, const char *operation, int err) {
  fprintf(stderr, "prefork-worker %d (pid %ld): %s%s%s\n", w->index,
          (long)getpid(), operation, err != 0 ? ": " : "",
          err != 0 ? cp_strerror(err) : "");
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void on_connection_closed(uv_handle_t *handle) {
  connection *c = handle->data;

  *c->prev_next = c->next;
  if (c->next != NULL)
    c->next->prev_next = c->prev_next;
  free(c);
}

static void close_connection(connection *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_connection_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  connection *c = req->data;

  /* ECANCELED: the connection is being closed already. */
  if (status < 0 && status != UV_ECANCELED)
    log_error(c->worker, "shutdown", status);
  close_connection(c);
}

/* The response is in the kernel's buffer. Shutting down the write side
 * before closing sends FIN after it, so the client reads the whole
 * response and then end of file. */
static void on_written(uv_write_t *req, int status) {
  connection *c = req->data;
  int r;

  if (status < 0) {
    if (status != UV_ECANCELED)
      log_error(c->worker, "write", status);
    close_connection(c);
    return;
  }

  c->shutdown.data = c;
  r = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
  if (r < 0) {
    log_error(c->worker, "uv_shutdown", r);
    close_connection(c);
  }
}

static const char *reason_phrase(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 405:
    return "Method Not Allowed";
  default:
    return "Request Header Fields Too Large";
  }
}

/* Queues the response and stops reading: one request per connection. */
static void respond(connection *c, int status, const char *body) {
  worker *w = c->worker;
  int head_len;
  uv_buf_t buf;
  int r;

  c->answered = true;
  r = uv_read_stop((uv_stream_t *)&c->tcp);
  if (r < 0)
    log_error(w, "uv_read_stop", r);

  head_len = snprintf(c->response, sizeof(c->response),
                      "HTTP/1.0 %d %s\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %zu\r\n"
                      "X-Worker: %d\r\n"
                      "Connection: close\r\n"
                      "\r\n%s",
                      status, reason_phrase(status), strlen(body), w->index,
                      body);
  if (head_len < 0 || (size_t)head_len >= sizeof(c->response)) {
    log_error(w, "the response does not fit its buffer", 0);
    close_connection(c);
    return;
  }

  buf = uv_buf_init(c->response, (unsigned)head_len);
  c->write.data = c;
  r = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
  if (r < 0) {
    log_error(w, "uv_write", r);
    close_connection(c);
  }
}

/* Answers the request whose head, request line and headers, is complete
 * in c->head. Only the request line matters here: "METHOD TARGET
 * HTTP/x.y". */
static void answer_request(connection *c) {
  char method[16];
  char target[256];
  char version[16];
  char body[384];

  if (sscanf(c->head, "%15s %255s %15s", method, target, version) != 3 ||
      strncmp(version, "HTTP/", 5) != 0) {
    respond(c, 400, "the request line is not METHOD TARGET HTTP/x.y\n");
    return;
  }
  if (strcmp(method, "GET") != 0) {
    respond(c, 405, "only GET is served here\n");
    return;
  }
  snprintf(body, sizeof(body), "request %s served by worker %d (pid %ld)\n",
           target, c->worker->index, (long)getpid());
  respond(c, 200, body);
}

static void alloc_head(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  connection *c = handle->data;

  (void)suggested;
  /* One byte stays free for the NUL that lets sscanf() read the head. */
  *buf = uv_buf_init(c->head + c->head_len,
                     (unsigned)(sizeof(c->head) - 1 - c->head_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  connection *c = stream->data;

  (void)buf;
  if (nread == 0 || c->answered)
    return;
  if (nread < 0) {
    log_error(c->worker,
              nread == UV_EOF ? "the client closed before the request ended"
                              : "read",
              nread == UV_EOF ? 0 : (int)nread);
    close_connection(c);
    return;
  }

  c->head_len += (size_t)nread;
  c->head[c->head_len] = '\0';
  /* The blank line may have been split between two reads, so the search
   * covers the whole head each time. Heads are small, so that is cheap. */
  if (strstr(c->head, "\r\n\r\n") != NULL)
    answer_request(c);
  else if (c->head_len == sizeof(c->head) - 1)
    respond(c, 431, "the request headers are longer than 8191 bytes\n");
}

static void on_connection(uv_stream_t *server, int status) {
  worker *w = server->data;
  connection *c;
  int r;

  if (status < 0) {
    log_error(w, "accept", status);
    return;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    log_error(w, "accepting a connection", UV_ENOMEM);
    return;
  }

  c->worker = w;
  c->tcp.data = c;
  r = uv_tcp_init(w->loop, &c->tcp);
  if (r < 0) {
    log_error(w, "uv_tcp_init", r);
    free(c);
    return;
  }
  c->next = w->open;
  c->prev_next = &w->open;
  if (w->open != NULL)
    w->open->prev_next = &c->next;
  w->open = c;

  /* libuv has accepted already, so a connection that a sibling worker
   * took first never gets here. */
  r = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&c->tcp, alloc_head, on_read);
  if (r < 0) {
    log_error(w, "uv_accept", r);
    close_connection(c);
  }
}

/* ------------------------------------------------------------------------
 * The listening socket and the channel
 * ------------------------------------------------------------------------ */

/* Wraps fd, the listening socket the parent sent, in w->server and starts
 * accepting. On success the uv handle owns fd. uv_listen() calls listen(2)
 * again, which on a socket that listens already only sets the backlog. */
static int serve(worker *w, int fd) {
  int r = uv_tcp_init(w->loop, &w->server);

  if (r < 0) {
    close(fd);
    return r;
  }
  w->serving = true;
  w->server.data = w;
  r = uv_tcp_open(&w->server, fd);
  if (r < 0) {
    close(fd);
    return r;
  }
  return uv_listen((uv_stream_t *)&w->server, BACKLOG, on_connection);
}

static void reply(worker *w, int err) {
  cJSON *message = cJSON_CreateObject();
  int r = UV_ENOMEM;

  if (message != NULL &&
      cJSON_AddBoolToObject(message, "serving", err == 0) != NULL &&
      cJSON_AddNumberToObject(message, "worker", w->index) != NULL &&
      cJSON_AddNumberToObject(message, "pid", (double)getpid()) != NULL &&
      (err == 0 ||
       cJSON_AddStringToObject(message, "error", cp_strerror(err)) != NULL))
    r = cp_channel_send(w->channel, message, NULL, NULL, NULL, NULL);
  cJSON_Delete(message);
  if (r < 0)
    log_error(w, "sending the reply to the parent", r);
}

static void on_message(cp_channel *channel, const cp_event *event,
                       void *data) {
  worker *w = data;
  const cJSON *index = cJSON_GetObjectItemCaseSensitive(event->message,
                                                        "worker");
  int fd;
  int r;

  (void)channel;
  if (w->serving || event->handle == NULL ||
      event->handle->type != CP_HANDLE_NET_SERVER || !cJSON_IsNumber(index)) {
    log_error(w, "ignored a message: expected one {\"worker\":N} with a "
                 "net.Server handle", 0);
    return;
  }
  w->index = index->valueint;

  fd = cp_event_take_handle(event);
  r = fd < 0 ? fd : serve(w, fd);
  if (r < 0)
    log_error(w, "serving the listening socket", r);
  reply(w, r);
}

/* The parent is done with this worker: stop accepting and drop the
 * connections still open, so that the loop ends. */
static void on_disconnect(cp_channel *channel, const cp_event *event,
                          void *data) {
  worker *w = data;

  (void)channel;
  (void)event;
  if (w->serving && !uv_is_closing((uv_handle_t *)&w->server))
    uv_close((uv_handle_t *)&w->server, NULL);
  for (connection *c = w->open; c != NULL; c = c->next)
    close_connection(c);
}

static void on_error(cp_channel *channel, const cp_event *event, void *data) {
  (void)channel;
  log_error(data, event->syscall != NULL ? event->syscall : "IPC channel",
            event->error);
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

int main(void) {
  static worker w = {.index = -1};
  int r;

  w.loop = uv_default_loop();
  r = cp_parent_channel_open(w.loop, &w.channel);
  if (r < 0) {
    fprintf(stderr,
            "prefork-worker: no IPC channel from a parent (%s). Run it "
            "through prefork-server.\n",
            cp_strerror(r));
    return 2;
  }

  /* The MESSAGE listener keeps the loop running until the channel closes;
   * after that, only the connections closing keep it. */
  cp_channel_on(w.channel, CP_EVENT_MESSAGE, on_message, &w);
  cp_channel_on(w.channel, CP_EVENT_DISCONNECT, on_disconnect, &w);
  cp_channel_on(w.channel, CP_EVENT_ERROR, on_error, &w);
  cp_channel_on(w.channel, CP_EVENT_CLOSE, on_close, &w);

  uv_run(w.loop, UV_RUN_DEFAULT);
  return uv_loop_close(w.loop) == 0 ? 0 : 1;
}
