/*
 * follow: reads a long-running child's output line by line and stops the
 * child with the timeout option.
 *
 * The child is a shell loop that prints "tick N" every 0.2 s and never ends
 * by itself. Its stdout is decoded as UTF-8 (Node's setEncoding("utf8")),
 * the DATA events are split into lines, and each line is printed with its
 * number. After 2.1 s the library sends the child kill_signal, as Node's
 * spawn() does with { timeout: 2100, killSignal: "SIGTERM" }. The program
 * then prints how the child ended: EXIT when the shell died, CLOSE when its
 * stdout reached end of file.
 *
 * DATA events do not follow line boundaries: one event may carry several
 * lines or part of one, so the bytes after the last newline wait in a
 * buffer for the next event.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

typedef struct follower {
  char *partial; /* the text after the last newline so far, not terminated */
  size_t partial_len;
  size_t lines;
  uint64_t start_ms; /* uv_now() when the child was spawned */
  bool failed;
} follower;

static void print_line(follower *f, const char *text, size_t len) {
  f->lines++;
  printf("%4zu | %.*s\n", f->lines, (int)len, text);
}

/* Appends text to the partial line. Returns false when out of memory. */
static bool keep_partial(follower *f, const char *text, size_t len) {
  char *grown = realloc(f->partial, f->partial_len + len);

  if (grown == NULL)
    return false;
  memcpy(grown + f->partial_len, text, len);
  f->partial = grown;
  f->partial_len += len;
  return true;
}

/*
 * Prints every complete line in text, the partial line kept from earlier
 * events first. With an encoding set, event->data is NUL-terminated text,
 * but len is still the length to use: it excludes the NUL.
 */
static void on_stdout_data(cp_stream *stream, const cp_event *event,
                           void *data) {
  follower *f = data;
  const char *text = event->data;
  size_t len = event->len;
  const char *newline;

  (void)stream;
  while ((newline = memchr(text, '\n', len)) != NULL) {
    size_t line_len = (size_t)(newline - text);

    if (f->partial_len > 0) {
      if (!keep_partial(f, text, line_len)) {
        f->failed = true;
        return;
      }
      print_line(f, f->partial, f->partial_len);
      f->partial_len = 0;
    } else {
      print_line(f, text, line_len);
    }
    len -= line_len + 1;
    text = newline + 1;
  }

  if (len > 0 && !keep_partial(f, text, len))
    f->failed = true;
}

/* A last line without a newline is still a line. */
static void on_stdout_end(cp_stream *stream, const cp_event *event,
                          void *data) {
  follower *f = data;

  (void)stream;
  (void)event;
  if (f->partial_len > 0) {
    print_line(f, f->partial, f->partial_len);
    f->partial_len = 0;
  }
}

static void on_child_error(cp_child *child, const cp_event *event, void *data) {
  follower *f = data;

  (void)child;
  fprintf(stderr, "follow: %s failed: %s\n", event->syscall,
          cp_strerror(event->error));
  f->failed = true;
}

/* EXIT: the process has ended. Its output may still be arriving. */
static void on_child_exit(cp_child *child, const cp_event *event, void *data) {
  follower *f = data;
  uint64_t elapsed = uv_now(cp_child_loop(child)) - f->start_ms;

  if (event->signal != 0) {
    printf("exit  after %4llu ms: killed by %s, killed flag %s\n",
           (unsigned long long)elapsed, cp_signal_name(event->signal),
           cp_child_killed(child) ? "true" : "false");
  } else {
    printf("exit  after %4llu ms: exit code %d\n", (unsigned long long)elapsed,
           event->exit_code);
  }
}

/*
 * CLOSE: the process has ended and its stdout has reached end of file.
 * Here that comes up to 0.2 s after EXIT: the signal went to the shell
 * alone, and the shell's `sleep` child, which inherited the pipe, keeps it
 * open until it finishes.
 */
static void on_child_close(cp_child *child, const cp_event *event, void *data) {
  follower *f = data;
  uint64_t elapsed = uv_now(cp_child_loop(child)) - f->start_ms;

  (void)event;
  printf("close after %4llu ms: %zu lines read\n", (unsigned long long)elapsed,
         f->lines);
  cp_child_release(child);
}

int main(void) {
  const char *const args[] = {
      "-c", "i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done",
      NULL};
  /* stdin is not used, stderr goes where ours goes. */
  cp_stdio stdio[3] = {
      {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_INHERIT},
  };
  cp_spawn_options options = {
      .stdio = stdio,
      .stdio_count = 3,
      .timeout = 2100, /* milliseconds */
      .kill_signal = SIGTERM,
  };
  follower f = {0};
  cp_child *child;
  cp_stream *out;
  uv_loop_t loop;
  int r;

  r = uv_loop_init(&loop);
  if (r < 0) {
    fprintf(stderr, "follow: uv_loop_init failed: %s\n", uv_strerror(r));
    return 1;
  }

  printf("$ sh %s '%s'    (SIGTERM after 2.1 s)\n", args[0], args[1]);
  fflush(stdout);
  f.start_ms = uv_now(&loop);
  r = cp_spawn(&loop, "sh", args, &options, &child);
  if (r < 0) {
    fprintf(stderr, "follow: cp_spawn sh failed: %s\n", cp_strerror(r));
    uv_loop_close(&loop);
    return 1;
  }

  out = cp_child_stdout(child);
  r = cp_stream_set_encoding(out, "utf8");
  if (r < 0) {
    fprintf(stderr, "follow: cp_stream_set_encoding failed: %s\n",
            cp_strerror(r));
    f.failed = true;
  }

  /* Adding a DATA listener starts the flow of data, as in Node. */
  cp_stream_on(out, CP_EVENT_DATA, on_stdout_data, &f);
  cp_stream_on(out, CP_EVENT_END, on_stdout_end, &f);
  cp_child_on(child, CP_EVENT_ERROR, on_child_error, &f);
  cp_child_on(child, CP_EVENT_EXIT, on_child_exit, &f);
  cp_child_on(child, CP_EVENT_CLOSE, on_child_close, &f);

  uv_run(&loop, UV_RUN_DEFAULT);

  free(f.partial);
  r = uv_loop_close(&loop);
  if (r < 0) {
    fprintf(stderr, "follow: uv_loop_close failed: %s\n", uv_strerror(r));
    return 1;
  }
  return f.failed ? 1 : 0;
}
