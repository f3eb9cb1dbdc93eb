/*
 * prefork-server: one listening socket served by several forked workers.
 *
 * Usage: prefork-server [--workers N] [--requests M] [--port P]
 *                       [--concurrency C]
 *
 * The parent binds a TCP socket to 127.0.0.1:P (P 0, the default, lets the
 * kernel pick a free port) and listens on it. It forks N copies of
 * prefork-worker (4 by default) and sends each the socket with a message,
 * as a net.Server handle, the way Node's cluster module shares a server.
 * Every worker accepts connections on that same socket and responds to HTTP
 * requests. The parent never accepts on the socket. Once every worker has
 * replied that it serves, the parent closes its own copy, and the socket
 * lives on in the workers.
 *
 * The parent then acts as the load generator: it makes M HTTP/1.0 GET
 * requests (300 by default) to the port, C at a time (16 by default), each
 * on its own connection. It checks that each response is a 200 whose body
 * names the request and the worker that the X-Worker header names, and
 * counts the requests per worker. The kernel, not this program, picks the
 * worker for each connection, so the spread is uneven and changes from run
 * to run. At the end it disconnects every worker and prints one line per
 * worker: its pid, the requests it served and its exit status.
 *
 * Exits with 0 when every response was as expected and every worker
 * exited with 0, 1 otherwise, and 2 for invalid arguments.
 *
 * NOTE: there is no timeout. A worker that accepts a connection and never
 * answers stalls the run; examples/demo.sh stops it after 30 seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <childproc.h>
#include <uv.h>

enum {
  DEFAULT_WORKERS = 4,
  MAX_WORKERS = 64,
  DEFAULT_REQUESTS = 300,
  MAX_REQUESTS = 1000000,
  DEFAULT_CONCURRENCY = 16,
  MAX_CONCURRENCY = 1000,
  BACKLOG = 511, /* listen(2) backlog; the kernel caps it at somaxconn */
  MAX_RESPONSE = 4096,
  SHOWN_FAILURES = 5,
  BAR_WIDTH = 40,
};

typedef struct server server;

typedef struct worker {
  server *server;
  int index;
  cp_child *child; /* NULL once released */
  pid_t pid;
  bool serving;       /* it replied that it accepts on the socket */
  bool disconnecting; /* the parent called cp_child_disconnect() */
  bool closed;
  unsigned served; /* valid responses that named this worker */
  int exit_code;
  int signal;
} worker;

/* One request on its own connection. Freed by its close callback. */
typedef struct request {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  server *server;
  unsigned id;
  bool done; /* its outcome was counted */
  char text[128];
  char response[MAX_RESPONSE];
  size_t response_len;
} request;

struct server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  bool listener_open;
  struct sockaddr_in address;
  int port;

  worker workers[MAX_WORKERS];
  int worker_count;
  int serving_count;

  unsigned requests;    /* to make in all */
  unsigned concurrency; /* in flight at most */
  unsigned started;
  unsigned in_flight;
  unsigned finished;
  unsigned valid; /* 200 with the expected body */
  unsigned failures;
  uint64_t load_start_ns;
  uint64_t load_ns;

  bool load_started;
  bool finishing; /* the workers are being disconnected */
  bool failed;
};

static void finish(server *s);

/* ------------------------------------------------------------------------
 * The listening socket
 * ------------------------------------------------------------------------ */

/* Binds s->listener to 127.0.0.1:port and listens. listen(2) is called
 * directly, because uv_listen() would also make this process's loop accept
 * connections, and here only the workers accept. Until the first worker
 * accepts, the kernel queues connections in the backlog. */
static int open_listener(server *s, int port) {
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  uv_os_fd_t fd;
  int r;

  r = uv_ip4_addr("127.0.0.1", port, &s->address);
  if (r < 0)
    return r;
  r = uv_tcp_init(s->loop, &s->listener);
  if (r < 0)
    return r;
  s->listener_open = true;

  r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&s->address, 0);
  if (r == 0)
    r = uv_fileno((uv_handle_t *)&s->listener, &fd);
  if (r == 0 && listen(fd, BACKLOG) < 0)
    r = -errno;
  if (r == 0)
    r = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
  if (r < 0)
    return r;

  /* With port 0 the kernel chose the port; the requests go there. */
  s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  s->address.sin_port = htons((uint16_t)s->port);
  return 0;
}

static void close_listener(server *s) {
  if (!s->listener_open)
    return;
  s->listener_open = false;
  uv_close((uv_handle_t *)&s->listener, NULL);
}

/* ------------------------------------------------------------------------
 * Checking a response
 * ------------------------------------------------------------------------ */

/* Copies the value of header name from head (the status line, then
 * headers ending in a blank line) into value. Header names are
 * case-insensitive in HTTP. Returns false when the header is missing. */
static bool find_header(const char *head, const char *name, char *value,
                        size_t size) {
  size_t name_len = strlen(name);
  const char *line = strstr(head, "\r\n");

  while (line != NULL && strncmp(line, "\r\n\r\n", 4) != 0) {
    line += 2;
    if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
      const char *start = line + name_len + 1;
      size_t len;

      start += strspn(start, " \t");
      len = strcspn(start, "\r");
      if (len >= size)
        return false;
      memcpy(value, start, len);
      value[len] = '\0';
      return true;
    }
    line = strstr(line, "\r\n");
  }
  return false;
}

/* Parses a header value as a whole decimal number from 0 to max. */
static bool parse_number(const char *text, long max, long *number) {
  char *end;

  errno = 0;
  *number = strtol(text, &end, 10);
  return errno == 0 && end != text && *end == '\0' && *number >= 0 &&
         *number <= max;
}

/* Checks r's full response. Returns NULL and counts the request for its
 * worker, or returns what is wrong with it. */
static const char *check_response(request *r) {
  server *s = r->server;
  const char *body;
  char value[32];
  char expected[192];
  long worker_index;
  long length;
  worker *w;

  r->response[r->response_len] = '\0';
  body = strstr(r->response, "\r\n\r\n");
  if (body == NULL)
    return "the response has no end of headers";
  body += 4;
  if (strncmp(r->response, "HTTP/1.0 200 ", 13) != 0 &&
      strncmp(r->response, "HTTP/1.1 200 ", 13) != 0)
    return "the status is not 200";

  if (!find_header(r->response, "X-Worker", value, sizeof(value)) ||
      !parse_number(value, s->worker_count - 1, &worker_index))
    return "the X-Worker header is missing or names no worker";
  if (!find_header(r->response, "Content-Length", value, sizeof(value)) ||
      !parse_number(value, MAX_RESPONSE, &length) ||
      (size_t)length != strlen(body))
    return "the Content-Length header does not match the body";

  w = &s->workers[worker_index];
  snprintf(expected, sizeof(expected),
           "request /request/%u served by worker %ld (pid %ld)\n", r->id,
           worker_index, (long)w->pid);
  if (strcmp(body, expected) != 0)
    return "the body does not name this request and its worker";

  w->served++;
  return NULL;
}

/* ------------------------------------------------------------------------
 * Making the requests
 * ------------------------------------------------------------------------ */

static void start_requests(server *s);

/* Counts a request that has ended, and ends the run after the last. */
static void count_finished(server *s) {
  s->in_flight--;
  s->finished++;
  if (s->finished == s->requests) {
    s->load_ns = uv_hrtime() - s->load_start_ns;
    finish(s);
  }
}

static void on_request_closed(uv_handle_t *handle) {
  request *r = handle->data;
  server *s = r->server;

  free(r);
  count_finished(s);
  start_requests(s);
}

/* Counts r's outcome once, problem NULL meaning a valid response, and
 * closes its connection. err, when not 0, is the libuv error behind the
 * problem. */
static void end_request(request *r, const char *problem, int err) {
  server *s = r->server;

  if (r->done)
    return;
  r->done = true;
  if (problem == NULL) {
    s->valid++;
  } else {
    s->failed = true;
    if (s->failures++ < SHOWN_FAILURES)
      printf("request %u failed: %s%s%s\n", r->id, problem,
             err != 0 ? ": " : "", err != 0 ? uv_strerror(err) : "");
  }
  if (!uv_is_closing((uv_handle_t *)&r->tcp))
    uv_close((uv_handle_t *)&r->tcp, on_request_closed);
}

static void alloc_response(uv_handle_t *handle, size_t suggested,
                           uv_buf_t *buf) {
  request *r = handle->data;

  (void)suggested;
  /* One byte stays free for the NUL that check_response() adds. */
  *buf = uv_buf_init(r->response + r->response_len,
                     (unsigned)(sizeof(r->response) - 1 - r->response_len));
}

/* The worker closes the connection after its response, so end of file
 * marks the end of the response, as HTTP/1.0 allows. */
static void on_response_read(uv_stream_t *stream, ssize_t nread,
                             const uv_buf_t *buf) {
  request *r = stream->data;

  (void)buf;
  if (nread == UV_EOF) {
    end_request(r, check_response(r), 0);
  } else if (nread < 0) {
    end_request(r, "reading the response failed", (int)nread);
  } else {
    r->response_len += (size_t)nread;
    if (r->response_len == sizeof(r->response) - 1)
      end_request(r, "the response is longer than expected", 0);
  }
}

static void on_request_written(uv_write_t *req, int status) {
  request *r = req->data;

  if (status < 0)
    end_request(r, "writing the request failed", status);
}

static void on_connected(uv_connect_t *req, int status) {
  request *r = req->data;
  uv_buf_t buf = uv_buf_init(r->text, (unsigned)strlen(r->text));
  int err;

  if (status < 0) {
    end_request(r, "connecting failed", status);
    return;
  }
  r->write.data = r;
  err = uv_write(&r->write, (uv_stream_t *)&r->tcp, &buf, 1,
                 on_request_written);
  if (err == 0)
    err = uv_read_start((uv_stream_t *)&r->tcp, alloc_response,
                        on_response_read);
  if (err < 0)
    end_request(r, "sending the request failed", err);
}

/* Starts request number id. A request that cannot even start is counted
 * as failed at once. */
static void start_request(server *s, unsigned id) {
  request *r = calloc(1, sizeof(*r));
  int err;

  s->in_flight++;
  if (r == NULL) {
    fprintf(stderr, "prefork-server: out of memory\n");
    exit(1);
  }
  *r = (request){.server = s, .id = id};
  snprintf(r->text, sizeof(r->text),
           "GET /request/%u HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", id,
           s->port);

  err = uv_tcp_init(s->loop, &r->tcp);
  if (err < 0) {
    /* No handle to close, so the request ends here. The caller's loop
     * starts the next one. */
    printf("request %u failed: uv_tcp_init: %s\n", id, uv_strerror(err));
    free(r);
    s->failed = true;
    s->failures++;
    count_finished(s);
    return;
  }
  r->tcp.data = r;
  r->connect.data = r;
  err = uv_tcp_connect(&r->connect, &r->tcp,
                       (const struct sockaddr *)&s->address, on_connected);
  if (err < 0)
    end_request(r, "connecting failed", err);
}

/* Keeps concurrency requests in flight until all have started. */
static void start_requests(server *s) {
  while (!s->finishing && s->in_flight < s->concurrency &&
         s->started < s->requests)
    start_request(s, s->started++);
}

/* ------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------ */

/* Every worker serves the socket, so the parent's copy is no longer
 * needed: closing it shows that the workers keep the socket open. */
static void start_load(server *s) {
  close_listener(s);
  printf("All %d workers accept on the socket; the parent closed its own "
         "copy.\n",
         s->worker_count);
  printf("Sending %u requests, %u at a time...\n", s->requests,
         s->concurrency);
  s->load_started = true;
  s->load_start_ns = uv_hrtime();
  start_requests(s);
}

static void on_worker_message(cp_child *child, const cp_event *event,
                              void *data) {
  worker *w = data;
  server *s = w->server;
  const cJSON *serving =
      cJSON_GetObjectItemCaseSensitive(event->message, "serving");
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(event->message, "pid");
  const cJSON *error =
      cJSON_GetObjectItemCaseSensitive(event->message, "error");

  (void)child;
  if (cJSON_IsFalse(serving)) {
    printf("worker %d cannot serve: %s\n", w->index,
           cJSON_IsString(error) ? error->valuestring : "no reason given");
    s->failed = true;
    finish(s);
    return;
  }
  if (!cJSON_IsTrue(serving) || !cJSON_IsNumber(pid) || w->serving) {
    printf("worker %d sent an unexpected message\n", w->index);
    s->failed = true;
    finish(s);
    return;
  }

  w->serving = true;
  w->pid = (pid_t)pid->valuedouble;
  printf("  worker %d (pid %ld) accepts connections\n", w->index,
         (long)w->pid);
  if (++s->serving_count == s->worker_count && !s->finishing)
    start_load(s);
}

static void on_socket_sent(cp_child *child, int status, void *data) {
  worker *w = data;

  (void)child;
  if (status < 0) {
    printf("sending the socket to worker %d failed: %s\n", w->index,
           cp_strerror(status));
    w->server->failed = true;
    finish(w->server);
  }
}

/* Sends the listening socket to w. NET_SERVER is not handed over: the
 * library sends a duplicate, and the parent's handle stays open. */
static int send_socket(server *s, worker *w) {
  cJSON *message = cJSON_CreateObject();
  cp_handle handle = {.type = CP_HANDLE_NET_SERVER,
                      .uv = (uv_handle_t *)&s->listener};
  int r = -ENOMEM;

  if (message != NULL &&
      cJSON_AddNumberToObject(message, "worker", w->index) != NULL)
    r = cp_child_send(w->child, message, &handle, NULL, on_socket_sent, w);
  cJSON_Delete(message);
  return r;
}

static void on_worker_error(cp_child *child, const cp_event *event,
                            void *data) {
  worker *w = data;

  (void)child;
  printf("worker %d: %s failed: %s\n", w->index,
         event->syscall != NULL ? event->syscall : "IPC",
         cp_strerror(event->error));
  w->server->failed = true;
}

static void on_worker_close(cp_child *child, const cp_event *event,
                            void *data) {
  worker *w = data;
  server *s = w->server;

  w->closed = true;
  w->exit_code = event->exit_code;
  w->signal = event->signal;
  cp_child_release(child);
  w->child = NULL;
  if (event->exit_code != 0 || event->signal != 0 || !w->disconnecting)
    s->failed = true;

  /* Before the load starts, every worker is needed. Once it runs, the
   * others still accept on the socket, and the requests this worker
   * dropped are counted as failed. */
  if (!w->disconnecting && !s->load_started) {
    printf("worker %d ended before it served\n", w->index);
    finish(s);
  }
}

static bool start_worker(server *s, const char *program, int index) {
  worker *w = &s->workers[index];
  cp_child *child;
  int r;

  *w = (worker){.server = s, .index = index};
  r = cp_fork(s->loop, program, NULL, NULL, &child);
  if (r < 0) {
    fprintf(stderr, "prefork-server: cp_fork(%s) failed: %s\n", program,
            cp_strerror(r));
    return false;
  }
  w->child = child;
  s->worker_count++;
  cp_child_on(child, CP_EVENT_MESSAGE, on_worker_message, w);
  cp_child_on(child, CP_EVENT_ERROR, on_worker_error, w);
  cp_child_on(child, CP_EVENT_CLOSE, on_worker_close, w);

  r = send_socket(s, w);
  if (r < 0) {
    fprintf(stderr, "prefork-server: sending the socket failed: %s\n",
            cp_strerror(r));
    return false;
  }
  return true;
}

/* Ends the run: no new requests, and every worker is disconnected, after
 * which it closes its copy of the socket and exits. */
static void finish(server *s) {
  if (s->finishing)
    return;
  s->finishing = true;
  close_listener(s);
  for (int i = 0; i < s->worker_count; i++) {
    worker *w = &s->workers[i];

    if (w->child != NULL && cp_child_connected(w->child)) {
      w->disconnecting = true;
      cp_child_disconnect(w->child);
    }
  }
}

/* ------------------------------------------------------------------------
 * The report
 * ------------------------------------------------------------------------ */

static void print_worker(const worker *w, unsigned max_served) {
  int bar = max_served > 0 ? (int)(w->served * BAR_WIDTH / max_served) : 0;

  printf("  %6d  %7ld  %8u  %-*.*s  ", w->index, (long)w->pid, w->served,
         BAR_WIDTH, bar, "########################################");
  if (w->signal != 0)
    printf("killed by %s\n", cp_signal_name(w->signal));
  else if (w->exit_code < 0)
    printf("did not start: %s\n", cp_strerror(w->exit_code));
  else if (!w->closed)
    printf("still running\n");
  else
    printf("exit code %d\n", w->exit_code);
}

static void print_report(const server *s) {
  unsigned max_served = 0;
  unsigned total = 0;

  for (int i = 0; i < s->worker_count; i++) {
    if (s->workers[i].served > max_served)
      max_served = s->workers[i].served;
    total += s->workers[i].served;
  }

  printf("\n  %6s  %7s  %8s  %-*s  %s\n", "worker", "pid", "requests",
         BAR_WIDTH, "", "exit");
  for (int i = 0; i < s->worker_count; i++)
    print_worker(&s->workers[i], max_served);
  printf("  %6s  %7s  %8u\n\n", "total", "", total);

  printf("%u of %u responses were 200 with the expected body", s->valid,
         s->requests);
  if (s->load_started && s->finished == s->requests)
    printf(", in %.3f s", (double)s->load_ns / 1e9);
  printf(".\n");
  if (s->failures > SHOWN_FAILURES)
    printf("%u requests failed; the first %d are shown above.\n",
           s->failures, SHOWN_FAILURES);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* The prefork-worker program next to this executable. */
static bool find_worker_program(char *path, size_t size) {
  size_t len = size;
  char *slash;

  if (uv_exepath(path, &len) != 0)
    return false;
  slash = strrchr(path, '/');
  if (slash == NULL ||
      (size_t)(slash - path) + sizeof("/prefork-worker") > size)
    return false;
  strcpy(slash, "/prefork-worker");
  return true;
}

static int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--workers N] [--requests M] [--port P] "
          "[--concurrency C]\n"
          "  --workers N      worker processes, 1 to %d (default %d)\n"
          "  --requests M     HTTP requests to make, 1 to %d (default %d)\n"
          "  --port P         the TCP port on 127.0.0.1, 0 to 65535; 0 lets "
          "the kernel pick a free one (default 0)\n"
          "  --concurrency C  requests in flight at a time, 1 to %d "
          "(default %d)\n",
          argv0, MAX_WORKERS, DEFAULT_WORKERS, MAX_REQUESTS,
          DEFAULT_REQUESTS, MAX_CONCURRENCY, DEFAULT_CONCURRENCY);
  return 2;
}

/* Parses an option's whole argument as a number from min to max. */
static bool parse_option(const char *text, long min, long max, long *value) {
  return parse_number(text, max, value) && *value >= min;
}

typedef struct settings {
  long workers;
  long requests;
  long port;
  long concurrency;
} settings;

static bool parse_settings(int argc, char **argv, settings *out) {
  static const struct option options[] = {
      {"workers", required_argument, NULL, 'w'},
      {"requests", required_argument, NULL, 'r'},
      {"port", required_argument, NULL, 'p'},
      {"concurrency", required_argument, NULL, 'c'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  bool valid = true;

  *out = (settings){DEFAULT_WORKERS, DEFAULT_REQUESTS, 0,
                    DEFAULT_CONCURRENCY};
  while (valid &&
         (opt = getopt_long(argc, argv, "w:r:p:c:", options, NULL)) != -1) {
    if (opt == 'w')
      valid = parse_option(optarg, 1, MAX_WORKERS, &out->workers);
    else if (opt == 'r')
      valid = parse_option(optarg, 1, MAX_REQUESTS, &out->requests);
    else if (opt == 'p')
      valid = parse_option(optarg, 0, 65535, &out->port);
    else if (opt == 'c')
      valid = parse_option(optarg, 1, MAX_CONCURRENCY, &out->concurrency);
    else
      valid = false;
  }
  return valid && optind == argc;
}

static bool all_workers_exited(const server *s) {
  for (int i = 0; i < s->worker_count; i++) {
    if (!s->workers[i].closed || s->workers[i].exit_code != 0 ||
        s->workers[i].signal != 0)
      return false;
  }
  return true;
}

int main(int argc, char **argv) {
  static server s;
  settings set;
  char program[4096];
  int r;

  if (!parse_settings(argc, argv, &set))
    return usage(argv[0]);
  if (!find_worker_program(program, sizeof(program))) {
    fprintf(stderr, "prefork-server: cannot find this program's directory\n");
    return 1;
  }

  s.loop = uv_default_loop();
  s.requests = (unsigned)set.requests;
  s.concurrency = (unsigned)set.concurrency;
  r = open_listener(&s, (int)set.port);
  if (r < 0) {
    fprintf(stderr, "prefork-server: cannot listen on 127.0.0.1:%ld: %s\n",
            set.port, uv_strerror(r));
    close_listener(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);
    return 1;
  }
  printf("Listening on 127.0.0.1:%d; handing the socket to %ld workers:\n",
         s.port, set.workers);

  for (int i = 0; i < set.workers; i++) {
    if (!start_worker(&s, program, i)) {
      s.failed = true;
      finish(&s);
      break;
    }
  }
  uv_run(s.loop, UV_RUN_DEFAULT);

  print_report(&s);
  if (s.valid != s.requests || !all_workers_exited(&s))
    s.failed = true;
  if (uv_loop_close(s.loop) != 0)
    return 1;
  return s.failed ? 1 : 0;
}
