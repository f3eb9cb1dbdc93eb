/*
 * Streams: the parent's ends of a child's pipes, through the public API
 * only, with real processes (sh, cat, head, wc) on the other side.
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
#include <sys/ioctl.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

#define GUARD_MS 10000
#define MIB (1024 * 1024)

/* AddressSanitizer keeps freed memory in quarantine, so under it a peak
 * resident set measures the quarantine, not the library. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ------------------------------------------------------------------------
 * Shared support
 * ------------------------------------------------------------------------ */

static cp_child *spawn_sh(uv_loop_t *loop, const char *script,
                          size_t pipe_count) {
  const char *args[] = {"-c", script, NULL};
  cp_stdio stdio[8];
  cp_spawn_options options = {0};
  cp_child *child = NULL;

  assert_true(pipe_count <= 8);
  for (size_t i = 0; i < pipe_count; i++)
    stdio[i] = (cp_stdio){.kind = CP_STDIO_PIPE};
  if (pipe_count > 0) {
    options.stdio = stdio;
    options.stdio_count = pipe_count;
  }

  assert_int_equal(cp_spawn(loop, "sh", args, &options, &child), 0);
  assert_non_null(child);
  return child;
}

static cp_child *spawn_file(uv_loop_t *loop, const char *file,
                            const char *const *args) {
  cp_child *child = NULL;

  assert_int_equal(cp_spawn(loop, file, args, NULL, &child), 0);
  assert_non_null(child);
  return child;
}

/* Releases the children, lets the loop free them, and checks that nothing
 * is left on the loop. */
static void finish_loop(uv_loop_t *loop, cp_child **children, size_t count) {
  for (size_t i = 0; i < count; i++)
    cp_child_release(children[i]);
  cp_test_loop_run(loop, GUARD_MS);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* Events of one stream, in order, as letters: E end, X error, C close,
 * R drain, F finish. DATA is counted, not logged. */
typedef struct stream_log {
  char order[32];
  size_t order_len;
  size_t data_events;
  size_t bytes;
  char text[256]; /* the first bytes of DATA, NUL-terminated */
  size_t text_len;
  int error;
  char syscall[32];
} stream_log;

static void log_event(cp_stream *stream, const cp_event *event, void *data) {
  static const char letters[] = {[CP_EVENT_END] = 'E',
                                 [CP_EVENT_ERROR] = 'X',
                                 [CP_EVENT_CLOSE] = 'C',
                                 [CP_EVENT_DRAIN] = 'R',
                                 [CP_EVENT_FINISH] = 'F'};
  stream_log *log = data;

  (void)stream;
  if (event->type == CP_EVENT_DATA) {
    size_t room = sizeof(log->text) - 1 - log->text_len;
    size_t copied = event->len < room ? event->len : room;

    memcpy(log->text + log->text_len, event->data, copied);
    log->text_len += copied;
    log->text[log->text_len] = '\0';
    log->data_events++;
    log->bytes += event->len;
    return;
  }

  if (event->type == CP_EVENT_ERROR) {
    log->error = event->error;
    snprintf(log->syscall, sizeof(log->syscall), "%s",
             event->syscall != NULL ? event->syscall : "");
  }
  if (log->order_len + 1 < sizeof(log->order))
    log->order[log->order_len++] = letters[event->type];
}

/* Logs every event but DATA, so that the stream does not start flowing. */
static void watch_events(cp_stream *stream, stream_log *log) {
  static const cp_event_type types[] = {CP_EVENT_END, CP_EVENT_ERROR,
                                        CP_EVENT_CLOSE, CP_EVENT_DRAIN,
                                        CP_EVENT_FINISH};

  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    assert_int_equal(cp_stream_on(stream, types[i], log_event, log), 0);
}

/* Logs FINISH, ERROR and CLOSE only, for a stream that drains many times. */
static void watch_end_of_writes(cp_stream *stream, stream_log *log) {
  assert_int_equal(cp_stream_on(stream, CP_EVENT_FINISH, log_event, log), 0);
  assert_int_equal(cp_stream_on(stream, CP_EVENT_ERROR, log_event, log), 0);
  assert_int_equal(cp_stream_on(stream, CP_EVENT_CLOSE, log_event, log), 0);
}

static void watch_all(cp_stream *stream, stream_log *log) {
  watch_events(stream, log);
  assert_int_equal(cp_stream_on(stream, CP_EVENT_DATA, log_event, log), 0);
}

/* Write callbacks, recorded in call order. */
typedef struct write_log {
  int statuses[256];
  int tags[256];
  size_t count;
  bool inside_write; /* set by the test around cp_stream_write() */
  size_t called_inside_write;
} write_log;

typedef struct write_tag {
  write_log *log;
  int tag;
} write_tag;

static void log_write(cp_stream *stream, int status, void *data) {
  write_tag *tag = data;
  write_log *log = tag->log;

  (void)stream;
  if (log->inside_write)
    log->called_inside_write++;
  if (log->count < 256) {
    log->statuses[log->count] = status;
    log->tags[log->count] = tag->tag;
  }
  log->count++;
}

static size_t peak_rss_kib(void) {
  FILE *status = fopen("/proc/self/status", "r");
  char line[256];
  size_t kib = 0;

  assert_non_null(status);
  while (fgets(line, sizeof(line), status) != NULL) {
    if (sscanf(line, "VmHWM: %zu kB", &kib) == 1)
      break;
  }
  fclose(status);
  assert_true(kib > 0);
  return kib;
}

static int bytes_unread(int fd) {
  int unread = -1;

  assert_int_equal(ioctl(fd, FIONREAD, &unread), 0);
  return unread;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* Pauses on every chunk and resumes from a zero timer, so reading restarts
 * from the loop each time. */
typedef struct pausing_reader {
  cp_stream *stream;
  uv_timer_t resume_timer;
  size_t bytes;
  size_t nonzero_bytes;
  bool paused;
  size_t data_while_paused;
  bool paused_flag_seen;
} pausing_reader;

static void resume_reader(uv_timer_t *timer) {
  pausing_reader *reader = timer->data;

  reader->paused = false;
  assert_int_equal(cp_stream_resume(reader->stream), 0);
}

static void read_and_pause(cp_stream *stream, const cp_event *event,
                           void *data) {
  pausing_reader *reader = data;

  if (reader->paused)
    reader->data_while_paused++;
  reader->bytes += event->len;
  for (size_t i = 0; i < event->len; i++)
    reader->nonzero_bytes += event->data[i] != 0;

  reader->paused = true;
  cp_stream_pause(stream);
  reader->paused_flag_seen = cp_stream_is_paused(stream);
  uv_timer_start(&reader->resume_timer, resume_reader, 0, 0);
}

static void stdout_64mib_with_paused_consumer(void **state) {
  static const char *const args[] = {"-c", "67108864", "/dev/zero", NULL};
  uv_loop_t loop;
  pausing_reader reader = {0};
  stream_log log = {0};
  cp_child *child;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "head", args);
  reader.stream = cp_child_stdout(child);
  uv_timer_init(&loop, &reader.resume_timer);
  reader.resume_timer.data = &reader;

  watch_events(reader.stream, &log);
  assert_int_equal(
      cp_stream_on(reader.stream, CP_EVENT_DATA, read_and_pause, &reader), 0);
  cp_test_loop_run(&loop, 30000);

  assert_int_equal(reader.bytes, 64 * MIB);
  assert_int_equal(reader.nonzero_bytes, 0);
  assert_int_equal(reader.data_while_paused, 0);
  assert_true(reader.paused_flag_seen);
  assert_string_equal(log.order, "EC");
  assert_int_equal(cp_stream_fileno(reader.stream), -1);

  uv_close((uv_handle_t *)&reader.resume_timer, NULL);
  finish_loop(&loop, &child, 1);
}

/* The child writes 1 MiB to stdout, then "done" to stderr. While stdout is
 * paused, the pipe fills and the child blocks in write(), so "done" cannot
 * come before the resume. */
typedef struct blocked_writer {
  cp_child *child;
  cp_stream *out;
  uv_timer_t check_timer;
  int pipe_size;
  stream_log out_log;
  stream_log err_log;
  bool pipe_was_full;
  size_t out_bytes_while_full;
  size_t err_bytes_while_full;
  int exit_code_while_full;
} blocked_writer;

static void check_pipe_full(uv_timer_t *timer) {
  blocked_writer *writer = timer->data;
  int fd = cp_stream_fileno(writer->out);

  /* Full up to the last page: past this the child cannot write its 1 MiB
   * without the parent reading. */
  if (bytes_unread(fd) < writer->pipe_size - 4096)
    return;

  uv_timer_stop(timer);
  writer->pipe_was_full = true;
  writer->out_bytes_while_full = writer->out_log.bytes;
  writer->err_bytes_while_full = writer->err_log.bytes;
  writer->exit_code_while_full = cp_child_exit_code(writer->child);
  assert_int_equal(cp_stream_resume(writer->out), 0);
}

static void stdout_pause_blocks_child_until_resume(void **state) {
  uv_loop_t loop;
  blocked_writer writer = {0};

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  writer.child = spawn_sh(&loop, "head -c 1048576 /dev/zero; echo done >&2", 0);
  writer.out = cp_child_stdout(writer.child);
  writer.pipe_size = fcntl(cp_stream_fileno(writer.out), F_GETPIPE_SZ);
  assert_true(writer.pipe_size > 4096);

  /* Paused before the DATA listener: adding it must not start the flow. */
  assert_int_equal(cp_stream_pause(writer.out), 0);
  assert_true(cp_stream_is_paused(writer.out));
  watch_all(writer.out, &writer.out_log);
  watch_all(cp_child_stderr(writer.child), &writer.err_log);

  uv_timer_init(&loop, &writer.check_timer);
  writer.check_timer.data = &writer;
  uv_timer_start(&writer.check_timer, check_pipe_full, 1, 1);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(writer.pipe_was_full);
  assert_int_equal(writer.out_bytes_while_full, 0);
  assert_int_equal(writer.err_bytes_while_full, 0);
  assert_int_equal(writer.exit_code_while_full, -1);

  assert_int_equal(writer.out_log.bytes, MIB);
  assert_string_equal(writer.out_log.order, "EC");
  assert_string_equal(writer.err_log.text, "done\n");
  assert_int_equal(cp_child_exit_code(writer.child), 0);

  uv_close((uv_handle_t *)&writer.check_timer, NULL);
  finish_loop(&loop, &writer.child, 1);
}

/* The child writes the first two bytes of U+20AC, then "x" to stderr, and
 * writes the last byte only after the parent has read those two and
 * written a line to its stdin, so the character arrives in two reads. */
typedef struct split_character {
  cp_child *child;
  uv_timer_t check_timer;
  stream_log out_log;
  stream_log err_log;
  size_t data_events_before_go;
  bool sent_go;
} split_character;

static void send_go_when_read(uv_timer_t *timer) {
  split_character *split = timer->data;
  cp_stream *out = cp_child_stdout(split->child);

  if (bytes_unread(cp_stream_fileno(out)) != 0)
    return;

  uv_timer_stop(timer);
  split->sent_go = true;
  split->data_events_before_go = split->out_log.data_events;
  assert_int_equal(
      cp_stream_write(cp_child_stdin(split->child), "go\n", 3, NULL, NULL), 1);
}

static void on_split_stderr(cp_stream *stream, const cp_event *event,
                            void *data) {
  split_character *split = data;

  (void)stream;
  (void)event;
  uv_timer_start(&split->check_timer, send_go_when_read, 0, 1);
}

static void set_encoding_utf8_joins_split_character(void **state) {
  uv_loop_t loop;
  split_character split = {0};
  cp_stream *out;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  split.child = spawn_sh(&loop,
                         "printf '\\342\\202'; printf x >&2; read line; "
                         "printf '\\254\\n'",
                         0);
  out = cp_child_stdout(split.child);
  uv_timer_init(&loop, &split.check_timer);
  split.check_timer.data = &split;

  assert_int_equal(cp_stream_set_encoding(out, "utf8"), 0);
  watch_all(out, &split.out_log);
  assert_int_equal(cp_stream_on(cp_child_stderr(split.child), CP_EVENT_DATA,
                                on_split_stderr, &split),
                   0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(split.sent_go);
  assert_int_equal(split.data_events_before_go, 0);
  assert_int_equal(split.out_log.data_events, 1);
  assert_string_equal(split.out_log.text, "\xe2\x82\xac\n");
  assert_string_equal(split.out_log.order, "EC");

  uv_close((uv_handle_t *)&split.check_timer, NULL);
  finish_loop(&loop, &split.child, 1);
}

static void stdout_unread_is_drained_at_exit(void **state) {
  uv_loop_t loop;
  stream_log out_log = {0};
  stream_log err_log = {0};
  cp_child *child;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "echo out; echo err >&2", 0);
  watch_events(cp_child_stdout(child), &out_log);
  watch_events(cp_child_stderr(child), &err_log);
  cp_test_loop_run(&loop, GUARD_MS);

  /* No DATA listener and no pause: Node's flushStdio drains both. */
  assert_string_equal(out_log.order, "EC");
  assert_string_equal(err_log.order, "EC");
  assert_int_equal(cp_child_exit_code(child), 0);
  finish_loop(&loop, &child, 1);
}

/* The child writes to fd 3 and then exits without reading what the parent
 * sent back on fd 3, so the kernel resets the socket pair. */
typedef struct reset_socket {
  cp_child *child;
  bool sent_unread;
} reset_socket;

static void send_unread_then_release(cp_stream *stream, const cp_event *event,
                                     void *data) {
  reset_socket *reset = data;

  (void)event;
  if (reset->sent_unread)
    return;

  reset->sent_unread = true;
  assert_int_equal(cp_stream_write(stream, "unread", 6, NULL, NULL), 1);
  assert_int_equal(
      cp_stream_write(cp_child_stdin(reset->child), "\n", 1, NULL, NULL), 1);
}

static void socket_reset_emits_read_error(void **state) {
  uv_loop_t loop;
  reset_socket reset = {0};
  stream_log log = {0};
  cp_stream *duplex;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  reset.child = spawn_sh(&loop, "printf r >&3; read line", 4);
  duplex = cp_child_stdio(reset.child, 3);
  watch_all(duplex, &log);
  assert_int_equal(
      cp_stream_on(duplex, CP_EVENT_DATA, send_unread_then_release, &reset), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_true(reset.sent_unread);
  assert_string_equal(log.text, "r");
  assert_string_equal(log.order, "XC");
  assert_int_equal(log.error, -ECONNRESET);
  assert_string_equal(log.syscall, "read");
  finish_loop(&loop, &reset.child, 1);
}

/* The first listener replaces the decoder whose text the second listener
 * of the same emit still receives. */
static void drop_encoding(cp_stream *stream, const cp_event *event,
                          void *data) {
  (void)event;
  (void)data;
  assert_int_equal(cp_stream_set_encoding(stream, "latin1"), 0);
  assert_int_equal(cp_stream_set_encoding(stream, NULL), 0);
}

static void set_encoding_in_listener_keeps_text(void **state) {
  uv_loop_t loop;
  stream_log log = {0};
  cp_child *child;
  cp_stream *out;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "printf '\\303\\251t\\303\\251'", 0);
  out = cp_child_stdout(child);
  assert_int_equal(cp_stream_set_encoding(out, "utf-8"), 0);
  assert_int_equal(cp_stream_once(out, CP_EVENT_DATA, drop_encoding, NULL), 0);
  watch_all(out, &log);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(log.text, "\xc3\xa9t\xc3\xa9");
  assert_string_equal(log.order, "EC");
  finish_loop(&loop, &child, 1);
}

/* An unreferenced stream keeps its state when reading stops and starts
 * again. */
static void stream_unref_survives_pause_and_resume(void **state) {
  uv_loop_t loop;
  stream_log log = {0};
  cp_child *child;
  cp_stream *out;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "exec sleep 10", 0);
  out = cp_child_stdout(child);
  watch_all(out, &log);
  cp_child_unref(child);

  /* The timer that emits the spawn event stays referenced. Once it has
   * run, nothing keeps the loop alive although stdout is being read. */
  cp_test_loop_run(&loop, GUARD_MS);
  assert_false(uv_loop_alive(&loop));

  cp_stream_ref(out);
  assert_true(uv_loop_alive(&loop));
  cp_stream_unref(out);
  assert_int_equal(cp_stream_pause(out), 0);
  assert_int_equal(cp_stream_resume(out), 0);
  assert_false(uv_loop_alive(&loop));
  assert_string_equal(log.order, "");

  cp_child_ref(child);
  assert_int_equal(cp_child_kill(child, SIGTERM), 1);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(log.order, "EC");
  finish_loop(&loop, &child, 1);
}

/* stdin's idle handle is made by the first write, after the unref: it
 * must not keep the loop alive either, and it runs the callback once the
 * child is referenced again. */
static void stdin_first_write_after_unref(void **state) {
  static const char *const no_args[] = {NULL};
  uv_loop_t loop;
  write_log writes = {0};
  write_tag tag = {.log = &writes, .tag = 7};
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "cat", no_args);
  in = cp_child_stdin(child);
  cp_child_unref(child);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_false(uv_loop_alive(&loop));

  assert_int_equal(cp_stream_write(in, "x", 1, log_write, &tag), 1);
  assert_false(uv_loop_alive(&loop));

  cp_child_ref(child);
  assert_true(uv_loop_alive(&loop));
  assert_int_equal(cp_stream_end(in), 0);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_int_equal(writes.count, 1);
  assert_int_equal(writes.tags[0], 7);
  assert_int_equal(writes.statuses[0], 0);
  finish_loop(&loop, &child, 1);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

typedef struct drain_check {
  cp_stream *stream;
  size_t drains;
  size_t writable_length_at_drain;
} drain_check;

static void end_on_drain(cp_stream *stream, const cp_event *event, void *data) {
  drain_check *check = data;

  (void)event;
  check->drains++;
  check->writable_length_at_drain = cp_stream_writable_length(stream);
  assert_int_equal(cp_stream_end(stream), 0);
}

static void stdin_write_returns_false_at_mark(void **state) {
  static const char *const no_args[] = {NULL};
  static char chunk[4096];
  uv_loop_t loop;
  drain_check check = {0};
  stream_log out_log = {0};
  stream_log in_log = {0};
  size_t written = 0;
  int last = 1;
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "cat", no_args);
  in = cp_child_stdin(child);
  assert_int_equal(cp_stream_writable_high_water_mark(in), 16384);

  /* cat blocks on its stdout until the loop reads it, so the stdin pipe
   * fills and then the queue grows to the mark. */
  memset(chunk, 'a', sizeof(chunk));
  while (last == 1 && written < 64 * MIB) {
    last = cp_stream_write(in, chunk, sizeof(chunk), NULL, NULL);
    written += sizeof(chunk);
  }
  assert_int_equal(last, 0);
  assert_true(cp_stream_writable_length(in) >= 16384);
  assert_true(cp_stream_writable(in));

  check.stream = in;
  watch_events(in, &in_log);
  assert_int_equal(cp_stream_on(in, CP_EVENT_DRAIN, end_on_drain, &check), 0);
  watch_all(cp_child_stdout(child), &out_log);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(check.drains, 1);
  assert_int_equal(check.writable_length_at_drain, 0);
  assert_string_equal(in_log.order, "RFC");
  assert_int_equal(out_log.bytes, written);
  finish_loop(&loop, &child, 1);
}

/* As in Node, write() counts the bytes before trying to write them: a
 * write of a whole mark returns false even when the pipe took it all, and
 * DRAIN follows from the loop. */
static void stdin_write_of_mark_drains_later(void **state) {
  static const char *const no_args[] = {NULL};
  static char chunk[16384];
  uv_loop_t loop;
  stream_log in_log = {0};
  stream_log out_log = {0};
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "cat", no_args);
  in = cp_child_stdin(child);
  watch_events(in, &in_log);
  watch_all(cp_child_stdout(child), &out_log);

  /* Pipes shrink to one page once the user passes fs.pipe-user-pages-soft,
   * and then the write cannot complete at once. */
  if (fcntl(cp_stream_fileno(in), F_GETPIPE_SZ) < (int)sizeof(chunk))
    fail_msg("stdin pipe smaller than %zu bytes: fs.pipe-user-pages-soft "
             "exceeded?",
             sizeof(chunk));

  memset(chunk, 'b', sizeof(chunk));
  assert_int_equal(cp_stream_write(in, chunk, sizeof(chunk), NULL, NULL), 0);
  assert_int_equal(cp_stream_writable_length(in), 0);
  assert_string_equal(in_log.order, "");

  uv_run(&loop, UV_RUN_NOWAIT);
  assert_string_equal(in_log.order, "R");
  assert_int_equal(cp_stream_end(in), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(in_log.order, "RFC");
  assert_int_equal(out_log.bytes, sizeof(chunk));
  finish_loop(&loop, &child, 1);
}

static void stdin_write_callbacks_in_order(void **state) {
  static const char *const no_args[] = {NULL};
  static char big[200 * 1024];
  uv_loop_t loop;
  write_log writes = {0};
  write_tag tags[100];
  stream_log in_log = {0};
  stream_log out_log = {0};
  size_t total = 0;
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "cat", no_args);
  in = cp_child_stdin(child);
  watch_events(in, &in_log);
  watch_all(cp_child_stdout(child), &out_log);

  /* Small writes that complete at once mixed with large ones that queue,
   * and empty ones. */
  memset(big, 'c', sizeof(big));
  for (int i = 0; i < 100; i++) {
    size_t len = i % 10 == 3 ? sizeof(big) : (size_t)(i % 7) * 100;

    tags[i] = (write_tag){.log = &writes, .tag = i};
    writes.inside_write = true;
    cp_stream_write(in, big, len, log_write, &tags[i]);
    writes.inside_write = false;
    total += len;
  }
  assert_int_equal(writes.count, 0);
  assert_int_equal(cp_stream_end(in), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(writes.called_inside_write, 0);
  assert_int_equal(writes.count, 100);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(writes.tags[i], i);
    assert_int_equal(writes.statuses[i], 0);
  }
  assert_string_equal(in_log.order, "FC");
  assert_int_equal(out_log.bytes, total);
  finish_loop(&loop, &child, 1);
}

typedef struct end_check {
  int end_again_in_finish;
  bool writable_in_finish;
} end_check;

static void end_again_on_finish(cp_stream *stream, const cp_event *event,
                                void *data) {
  end_check *check = data;

  (void)event;
  check->end_again_in_finish = cp_stream_end(stream);
  check->writable_in_finish = cp_stream_writable(stream);
}

static void stdin_end_emits_finish_then_close(void **state) {
  static const char *const no_args[] = {NULL};
  uv_loop_t loop;
  stream_log in_log = {0};
  stream_log out_log = {0};
  write_log writes = {0};
  write_tag tags[2] = {{.log = &writes, .tag = 0}, {.log = &writes, .tag = 1}};
  end_check check = {0};
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "cat", no_args);
  in = cp_child_stdin(child);
  watch_events(in, &in_log);
  assert_int_equal(
      cp_stream_on(in, CP_EVENT_FINISH, end_again_on_finish, &check), 0);
  watch_all(cp_child_stdout(child), &out_log);

  assert_int_equal(cp_stream_write(in, "abc", 3, log_write, &tags[0]), 1);
  assert_int_equal(cp_stream_end(in), 0);
  assert_int_equal(cp_stream_end(in), 0);
  assert_false(cp_stream_writable(in));

  /* Node's write after end: false, and the error reaches the callback and
   * an error event, from the loop. */
  assert_int_equal(cp_stream_write(in, "def", 3, log_write, &tags[1]), 0);
  assert_int_equal(writes.count, 0);
  assert_string_equal(in_log.order, "");
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(writes.count, 2);
  assert_int_equal(writes.tags[0], 0);
  assert_int_equal(writes.statuses[0], 0);
  assert_int_equal(writes.tags[1], 1);
  assert_int_equal(writes.statuses[1], CP_ERR_STREAM_WRITE_AFTER_END);
  assert_string_equal(in_log.order, "XFC");
  assert_int_equal(in_log.error, CP_ERR_STREAM_WRITE_AFTER_END);
  assert_int_equal(check.end_again_in_finish, CP_ERR_STREAM_ALREADY_FINISHED);
  assert_false(check.writable_in_finish);
  assert_int_equal(cp_stream_end(in), CP_ERR_STREAM_ALREADY_FINISHED);
  assert_int_equal(cp_stream_fileno(in), -1);
  assert_string_equal(out_log.text, "abc");
  finish_loop(&loop, &child, 1);
}

/* The child closes its stdin, then prints "ready". The parent's writes
 * fail with EPIPE, and SIGPIPE, left at its default disposition, must not
 * kill the test process. */
typedef struct broken_pipe {
  cp_child *child;
  bool wrote;
  write_log writes;
  write_tag tags[2];
  int first_write;
  int second_write;
} broken_pipe;

static void write_to_closed_stdin(cp_stream *stream, const cp_event *event,
                                  void *data) {
  broken_pipe *broken = data;
  cp_stream *in = cp_child_stdin(broken->child);

  (void)stream;
  (void)event;
  if (broken->wrote)
    return;
  broken->wrote = true;
  broken->first_write =
      cp_stream_write(in, "x", 1, log_write, &broken->tags[0]);
  broken->second_write =
      cp_stream_write(in, "y", 1, log_write, &broken->tags[1]);
}

static void kill_on_close(cp_stream *stream, const cp_event *event,
                          void *data) {
  (void)event;
  (void)data;
  cp_child_kill(cp_stream_child(stream), SIGTERM);
}

static void stdin_write_epipe_emits_error(void **state) {
  uv_loop_t loop;
  broken_pipe broken = {0};
  stream_log in_log = {0};
  void (*old_handler)(int) = signal(SIGPIPE, SIG_DFL);
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  broken.child = spawn_sh(&loop, "exec 0<&-; echo ready; exec sleep 10", 0);
  broken.tags[0] = (write_tag){.log = &broken.writes, .tag = 0};
  broken.tags[1] = (write_tag){.log = &broken.writes, .tag = 1};
  in = cp_child_stdin(broken.child);
  watch_events(in, &in_log);
  assert_int_equal(cp_stream_on(in, CP_EVENT_CLOSE, kill_on_close, NULL), 0);
  assert_int_equal(cp_stream_on(cp_child_stdout(broken.child), CP_EVENT_DATA,
                                write_to_closed_stdin, &broken),
                   0);
  cp_test_loop_run(&loop, GUARD_MS);
  signal(SIGPIPE, old_handler);

  assert_int_equal(broken.first_write, 0);
  assert_int_equal(broken.second_write, 0);
  assert_int_equal(broken.writes.count, 2);
  assert_int_equal(broken.writes.statuses[0], -EPIPE);
  assert_int_equal(broken.writes.statuses[1], -EPIPE);
  assert_string_equal(in_log.order, "XC");
  assert_int_equal(in_log.error, -EPIPE);
  assert_string_equal(in_log.syscall, "write");
  assert_int_equal(cp_child_signal_code(broken.child), SIGTERM);
  finish_loop(&loop, &broken.child, 1);
}

/* The same through a socket pair at fd 3, whose writes use MSG_NOSIGNAL. */
static void write_to_closed_fd3(cp_stream *stream, const cp_event *event,
                                void *data) {
  broken_pipe *broken = data;
  cp_stream *duplex = cp_child_stdio(broken->child, 3);

  (void)stream;
  (void)event;
  if (broken->wrote)
    return;
  broken->wrote = true;
  broken->first_write =
      cp_stream_write(duplex, "x", 1, log_write, &broken->tags[0]);
}

static void duplex_write_epipe_emits_error(void **state) {
  uv_loop_t loop;
  broken_pipe broken = {0};
  stream_log log = {0};
  void (*old_handler)(int) = signal(SIGPIPE, SIG_DFL);
  cp_stream *duplex;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  broken.child = spawn_sh(&loop, "exec 3>&-; echo ready; exec sleep 10", 4);
  broken.tags[0] = (write_tag){.log = &broken.writes, .tag = 0};
  duplex = cp_child_stdio(broken.child, 3);
  watch_events(duplex, &log);
  assert_int_equal(cp_stream_on(duplex, CP_EVENT_CLOSE, kill_on_close, NULL),
                   0);
  assert_int_equal(cp_stream_on(cp_child_stdout(broken.child), CP_EVENT_DATA,
                                write_to_closed_fd3, &broken),
                   0);
  cp_test_loop_run(&loop, GUARD_MS);
  signal(SIGPIPE, old_handler);

  assert_int_equal(broken.first_write, 0);
  assert_int_equal(broken.writes.count, 1);
  assert_int_equal(broken.writes.statuses[0], -EPIPE);
  assert_string_equal(log.order, "XC");
  assert_int_equal(log.error, -EPIPE);
  assert_string_equal(log.syscall, "write");
  finish_loop(&loop, &broken.child, 1);
}

/* The child closes its stdin once it reads a line on fd 3, sent after most
 * of a large write has been queued in the parent. libuv reports the pipe's
 * POLLERR as a poll error, and the write attempt that follows gives EPIPE. */
static void stdin_reader_gone_fails_queued_write(void **state) {
  static char big[MIB];
  uv_loop_t loop;
  stream_log in_log = {0};
  write_log writes = {0};
  write_tag tag = {.log = &writes, .tag = 0};
  void (*old_handler)(int) = signal(SIGPIPE, SIG_DFL);
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "read -r line <&3; exec 0<&-; exec sleep 10", 4);
  in = cp_child_stdin(child);
  watch_events(in, &in_log);
  assert_int_equal(cp_stream_on(in, CP_EVENT_CLOSE, kill_on_close, NULL), 0);

  /* The child does not read its stdin, so the pipe fills and the rest of
   * the write stays queued. */
  assert_int_equal(cp_stream_write(in, big, sizeof(big), log_write, &tag), 0);
  assert_true(cp_stream_writable_length(in) > 0);
  assert_int_equal(
      cp_stream_write(cp_child_stdio(child, 3), "\n", 1, NULL, NULL), 1);
  cp_test_loop_run(&loop, GUARD_MS);
  signal(SIGPIPE, old_handler);

  assert_int_equal(writes.count, 1);
  assert_int_equal(writes.statuses[0], -EPIPE);
  assert_string_equal(in_log.order, "XC");
  assert_int_equal(in_log.error, -EPIPE);
  assert_string_equal(in_log.syscall, "write");
  assert_int_equal(cp_child_signal_code(child), SIGTERM);
  finish_loop(&loop, &child, 1);
}

/* Writes from a CLOSE listener, after everything is closed. */
typedef struct late_write {
  write_log *writes;
  write_tag tag;
  int result;
} late_write;

static void write_on_close(cp_stream *stream, const cp_event *event,
                           void *data) {
  late_write *late = data;

  (void)event;
  late->result = cp_stream_write(stream, "z", 1, log_write, &late->tag);
  cp_child_kill(cp_stream_child(stream), SIGTERM);
}

static void stdin_destroy_fails_queued_writes(void **state) {
  static char big[MIB];
  uv_loop_t loop;
  stream_log in_log = {0};
  write_log writes = {0};
  write_tag tags[3];
  late_write late = {.writes = &writes};
  cp_child *child;
  cp_stream *in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "exec sleep 10", 0);
  in = cp_child_stdin(child);
  watch_events(in, &in_log);
  late.tag = (write_tag){.log = &writes, .tag = 3};
  assert_int_equal(cp_stream_on(in, CP_EVENT_CLOSE, write_on_close, &late), 0);
  for (int i = 0; i < 3; i++)
    tags[i] = (write_tag){.log = &writes, .tag = i};

  /* The child never reads its stdin, so most of the first write stays
   * queued. */
  assert_int_equal(cp_stream_write(in, big, sizeof(big), log_write, &tags[0]),
                   0);
  assert_int_equal(cp_stream_write(in, "a", 1, log_write, &tags[1]), 0);
  assert_true(cp_stream_writable_length(in) > 0);

  cp_stream_destroy(in);
  cp_stream_destroy(in);
  assert_false(cp_stream_writable(in));
  assert_int_equal(cp_stream_fileno(in), -1);
  assert_int_equal(cp_stream_write(in, "b", 1, log_write, &tags[2]), 0);
  assert_int_equal(writes.count, 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(writes.count, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(writes.tags[i], i);
    assert_int_equal(writes.statuses[i], CP_ERR_STREAM_DESTROYED);
  }
  assert_int_equal(late.result, 0);
  assert_string_equal(in_log.order, "C");
  assert_int_equal(cp_stream_writable_length(in), 0);
  finish_loop(&loop, &child, 1);
}

/* ------------------------------------------------------------------------
 * Extra descriptors
 * ------------------------------------------------------------------------ */

static void extra_pipes_at_fd3_and_fd4(void **state) {
  uv_loop_t loop;
  stream_log log3 = {0};
  stream_log log4 = {0};
  cp_child *child;
  cp_stream *out3;
  cp_stream *in4;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "cat <&4 >&3", 5);
  assert_int_equal(cp_child_stdio_count(child), 5);
  out3 = cp_child_stdio(child, 3);
  in4 = cp_child_stdio(child, 4);
  assert_non_null(out3);
  assert_non_null(in4);
  assert_true(cp_stream_readable(out3));
  assert_true(cp_stream_writable(out3));

  watch_all(out3, &log3);
  watch_events(in4, &log4);
  assert_int_equal(
      cp_stream_write(in4, "to fd 4, back on fd 3", 21, NULL, NULL), 1);
  assert_int_equal(cp_stream_end(in4), 0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(log3.text, "to fd 4, back on fd 3");
  /* fd 3 ends its own write side at end of file (allowHalfOpen false).
   * fd 4's read side is drained once the child exits. */
  assert_string_equal(log3.order, "EFC");
  assert_string_equal(log4.order, "FEC");
  assert_int_equal(cp_child_exit_code(child), 0);
  finish_loop(&loop, &child, 1);
}

static void duplex_slot_echoes_both_ways(void **state) {
  uv_loop_t loop;
  stream_log log = {0};
  cp_child *child;
  cp_stream *duplex;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_sh(&loop, "cat <&3 >&3", 4);
  duplex = cp_child_stdio(child, 3);
  watch_all(duplex, &log);
  assert_int_equal(cp_stream_write(duplex, "ping", 4, NULL, NULL), 1);
  assert_int_equal(cp_stream_end(duplex), 0);
  assert_true(cp_stream_readable(duplex));
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(log.text, "ping");
  assert_string_equal(log.order, "FEC");
  assert_false(cp_stream_readable(duplex));
  finish_loop(&loop, &child, 1);
}

/* ------------------------------------------------------------------------
 * Piping
 * ------------------------------------------------------------------------ */

static void pipe_between_children_bounds_memory(void **state) {
  static const char *const head_args[] = {"-c", "67108864", "/dev/zero", NULL};
  static const char *const wc_args[] = {"-c", NULL};
  uv_loop_t loop;
  stream_log head_log = {0};
  stream_log wc_in_log = {0};
  stream_log wc_out_log = {0};
  cp_child *children[2];
  size_t peak_before;
  size_t peak_after;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  children[0] = spawn_file(&loop, "head", head_args);
  children[1] = spawn_file(&loop, "wc", wc_args);
  watch_events(cp_child_stdout(children[0]), &head_log);
  watch_end_of_writes(cp_child_stdin(children[1]), &wc_in_log);
  watch_all(cp_child_stdout(children[1]), &wc_out_log);

  peak_before = peak_rss_kib();
  assert_int_equal(cp_stream_pipe(cp_child_stdout(children[0]),
                                  cp_child_stdin(children[1]), true),
                   0);
  cp_test_loop_run(&loop, 30000);
  peak_after = peak_rss_kib();

  assert_string_equal(wc_out_log.text, "67108864\n");
  assert_string_equal(head_log.order, "EC");
  assert_string_equal(wc_in_log.order, "FC");
  /* A bound on memory, not on time: 64 MiB passed through a parent whose
   * peak resident set grew by less than 16 MiB. */
  if (UNDER_ASAN)
    fprintf(stderr, "memory bound not checked under AddressSanitizer\n");
  else
    assert_true(peak_after - peak_before < 16 * 1024);
  finish_loop(&loop, children, 2);
}

static void record_signal(cp_child *child, const cp_event *event,
                          void *data) {
  (void)child;
  *(int *)data = event->signal;
}

/* `yes | head -n 1`: when head exits, yes must die of SIGPIPE as in a
 * shell, not block forever on a full pipe that nobody reads. */
static void pipe_destination_close_destroys_source(void **state) {
  static const char *const head_args[] = {"-n", "1", NULL};
  uv_loop_t loop;
  stream_log yes_log = {0};
  stream_log head_out_log = {0};
  cp_child *children[2];
  int yes_signal = -1;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  children[0] = spawn_file(&loop, "yes", NULL);
  children[1] = spawn_file(&loop, "head", head_args);
  watch_events(cp_child_stdout(children[0]), &yes_log);
  watch_all(cp_child_stdout(children[1]), &head_out_log);
  assert_int_equal(cp_child_on(children[0], CP_EVENT_CLOSE, record_signal,
                               &yes_signal),
                   0);

  assert_int_equal(cp_stream_pipe(cp_child_stdout(children[0]),
                                  cp_child_stdin(children[1]), true),
                   0);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(head_out_log.text, "y\n");
  assert_int_equal(yes_signal, SIGPIPE);
  assert_string_equal(yes_log.order, "C");
  finish_loop(&loop, children, 2);
}

/* Writes chunks of the high-water mark's size, each after the DRAIN of the
 * one before, as Node's backpressure loop does. */
typedef struct drain_feeder {
  size_t writes;
  size_t drains;
  char chunk[20000];
} drain_feeder;

static void feed_until_false(cp_stream *stream, drain_feeder *feeder) {
  while (feeder->writes < 5) {
    feeder->writes++;
    if (cp_stream_write(stream, feeder->chunk, sizeof(feeder->chunk), NULL,
                        NULL) == 0)
      return;
  }
  assert_int_equal(cp_stream_end(stream), 0);
}

static void feed_on_drain(cp_stream *stream, const cp_event *event,
                          void *data) {
  drain_feeder *feeder = data;

  (void)event;
  feeder->drains++;
  feed_until_false(stream, feeder);
}

/* A write from a DRAIN listener that the pipe takes whole still owes a
 * DRAIN: without it this loop stops after the first one. */
static void stdin_write_in_drain_listener_drains_again(void **state) {
  static const char *const args[] = {"-c", "exec cat >/dev/null", NULL};
  uv_loop_t loop;
  drain_feeder feeder = {0};
  stream_log stdin_log = {0};
  cp_child *child;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = spawn_file(&loop, "sh", args);
  cp_stream *in = cp_child_stdin(child);
  watch_end_of_writes(in, &stdin_log);
  assert_int_equal(cp_stream_on(in, CP_EVENT_DRAIN, feed_on_drain, &feeder),
                   0);

  feed_until_false(in, &feeder);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_int_equal(feeder.writes, 5);
  assert_int_equal(feeder.drains, 5);
  assert_string_equal(stdin_log.order, "FC");
  finish_loop(&loop, &child, 1);
}

static void api_rejects_wrong_direction(void **state) {
  uv_loop_t loop;
  cp_child *children[2];
  cp_stream *in;
  cp_stream *out;
  cp_stream *other_in;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  children[0] = spawn_sh(&loop, "exit 0", 0);
  children[1] = spawn_sh(&loop, "exit 0", 0);
  in = cp_child_stdin(children[0]);
  out = cp_child_stdout(children[0]);
  other_in = cp_child_stdin(children[1]);

  assert_int_equal(cp_stream_write(out, "x", 1, NULL, NULL),
                   CP_ERR_STREAM_NOT_WRITABLE);
  assert_int_equal(cp_stream_end(out), CP_ERR_STREAM_NOT_WRITABLE);
  assert_int_equal(cp_stream_write(in, NULL, 1, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_stream_pause(in), CP_ERR_STREAM_NOT_READABLE);
  assert_int_equal(cp_stream_resume(in), CP_ERR_STREAM_NOT_READABLE);
  assert_int_equal(cp_stream_set_encoding(in, "utf8"),
                   CP_ERR_STREAM_NOT_READABLE);
  assert_int_equal(cp_stream_set_encoding(out, "utf16"),
                   CP_ERR_UNKNOWN_ENCODING);
  assert_int_equal(cp_stream_on(out, CP_EVENT_SPAWN, log_event, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_stream_on(out, CP_EVENT_DATA, NULL, NULL),
                   CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(cp_stream_off(out, CP_EVENT_DATA, log_event, NULL), -ENOENT);
  assert_int_equal(cp_stream_pipe(in, other_in, true),
                   CP_ERR_STREAM_NOT_READABLE);
  assert_int_equal(cp_stream_pipe(out, out, true), CP_ERR_STREAM_NOT_WRITABLE);
  assert_int_equal(cp_stream_unpipe(out, other_in), -ENOENT);

  assert_true(cp_stream_readable(out));
  assert_false(cp_stream_writable(out));
  assert_false(cp_stream_readable(in));
  assert_true(cp_stream_writable(in));
  assert_false(cp_stream_is_paused(out));
  assert_ptr_equal(cp_stream_child(out), children[0]);

  /* A link that is removed again leaves the source as it was. */
  assert_int_equal(cp_stream_pipe(out, other_in, false), 0);
  assert_int_equal(cp_stream_unpipe(out, other_in), 0);
  assert_int_equal(cp_stream_unpipe(out, other_in), -ENOENT);

  cp_stream_set_writable_high_water_mark(in, 100);
  assert_int_equal(cp_stream_writable_high_water_mark(in), 100);
  cp_test_loop_run(&loop, GUARD_MS);
  finish_loop(&loop, children, 2);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stdout_64mib_with_paused_consumer),
      cmocka_unit_test(stdout_pause_blocks_child_until_resume),
      cmocka_unit_test(set_encoding_utf8_joins_split_character),
      cmocka_unit_test(set_encoding_in_listener_keeps_text),
      cmocka_unit_test(stdout_unread_is_drained_at_exit),
      cmocka_unit_test(stream_unref_survives_pause_and_resume),
      cmocka_unit_test(stdin_first_write_after_unref),
      cmocka_unit_test(socket_reset_emits_read_error),
      cmocka_unit_test(stdin_write_returns_false_at_mark),
      cmocka_unit_test(stdin_write_of_mark_drains_later),
      cmocka_unit_test(stdin_write_callbacks_in_order),
      cmocka_unit_test(stdin_end_emits_finish_then_close),
      cmocka_unit_test(stdin_write_epipe_emits_error),
      cmocka_unit_test(duplex_write_epipe_emits_error),
      cmocka_unit_test(stdin_reader_gone_fails_queued_write),
      cmocka_unit_test(stdin_destroy_fails_queued_writes),
      cmocka_unit_test(extra_pipes_at_fd3_and_fd4),
      cmocka_unit_test(duplex_slot_echoes_both_ways),
      cmocka_unit_test(pipe_between_children_bounds_memory),
      cmocka_unit_test(pipe_destination_close_destroys_source),
      cmocka_unit_test(stdin_write_in_drain_listener_drains_again),
      cmocka_unit_test(api_rejects_wrong_direction),
  };

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
