/* Loop guard and helper paths for the test programs. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

static void on_guard_timeout(uv_timer_t *timer) {
  bool *timed_out = timer->data;

  *timed_out = true;
  uv_stop(timer->loop);
}

void cp_test_loop_run(uv_loop_t *loop, unsigned timeout_ms) {
  uv_timer_t guard;
  bool timed_out = false;

  assert_int_equal(uv_timer_init(loop, &guard), 0);
  guard.data = &timed_out;
  assert_int_equal(uv_timer_start(&guard, on_guard_timeout, timeout_ms, 0), 0);
  uv_unref((uv_handle_t *)&guard);

  uv_run(loop, UV_RUN_DEFAULT);

  /* The guard lives on this stack frame, so it must be fully closed before
   * the function returns or fail_msg() jumps out of it. One more loop
   * iteration runs its close callback. */
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);

  if (timed_out) {
    fprintf(stderr, "loop still busy after %u ms; active handles:\n",
            timeout_ms);
    uv_print_active_handles(loop, stderr);
    fail_msg("loop guard timed out after %u ms", timeout_ms);
  }
}

const char *cp_test_helper_path(const char *name) {
  static char path[4096];
  int length = snprintf(path, sizeof path, "%s/%s", CP_TEST_HELPER_DIR, name);

  if (length < 0 || (size_t)length >= sizeof path)
    fail_msg("helper path too long: %s/%s", CP_TEST_HELPER_DIR, name);
  if (access(path, X_OK) != 0)
    fail_msg("helper program not found or not executable: %s "
             "(built from tests/helpers/%s.c)",
             path, name);
  return path;
}

/* ------------------------------------------------------------------------
 * Children: recording what a cp_child emits
 * ------------------------------------------------------------------------ */

void cp_test_record_init(cp_test_record *record) {
  memset(record, 0, sizeof(*record));
  record->exit_code = CP_TEST_NOT_EMITTED;
  record->close_exit_code = CP_TEST_NOT_EMITTED;
}

void cp_test_record_free(cp_test_record *record) {
  free(record->out.bytes);
  free(record->err.bytes);
  record->out = (cp_test_buffer){0};
  record->err = (cp_test_buffer){0};
}

static void append_event(cp_test_record *record, char letter) {
  if (record->event_count + 1 >= sizeof(record->events)) {
    record->lost_events++;
    return;
  }
  record->events[record->event_count++] = letter;
  record->events[record->event_count] = '\0';
}

static void copy_text(char *target, size_t size, const char *text) {
  snprintf(target, size, "%s", text != NULL ? text : "(null)");
}

static void buffer_append(cp_test_buffer *buffer, const char *bytes,
                          size_t len) {
  if (buffer->len + len + 1 > buffer->capacity) {
    size_t capacity = buffer->capacity > 0 ? buffer->capacity : 256;

    while (capacity < buffer->len + len + 1)
      capacity *= 2;
    buffer->bytes = realloc(buffer->bytes, capacity);
    if (buffer->bytes == NULL)
      fail_msg("out of memory recording %zu bytes of output", len);
    buffer->capacity = capacity;
  }
  memcpy(buffer->bytes + buffer->len, bytes, len);
  buffer->len += len;
  buffer->bytes[buffer->len] = '\0';
}

static void record_exit(cp_test_record *record, const cp_event *event,
                        cp_child *child) {
  append_event(record, 'X');
  record->exit_code = event->exit_code;
  record->exit_signal = event->signal;
  if (event->rusage != NULL)
    record->rusage = *event->rusage;
  record->out_len_at_exit = record->out.len;
  record->killed_at_exit = cp_child_killed(child);
}

static void record_close(cp_test_record *record, const cp_event *event,
                         cp_child *child) {
  append_event(record, 'C');
  record->close_exit_code = event->exit_code;
  record->close_signal = event->signal;
  record->out_len_at_close = record->out.len;
  record->out_ended_at_close = record->out_ended;
  if (record->release_at_close)
    cp_child_release(child);
}

static void record_error(cp_test_record *record, const cp_event *event) {
  append_event(record, 'E');
  if (record->error != 0)
    return;
  record->error = event->error;
  copy_text(record->syscall, sizeof(record->syscall), event->syscall);
  copy_text(record->path, sizeof(record->path), event->path);
}

static void on_recorded_child_event(cp_child *child, const cp_event *event,
                                    void *data) {
  cp_test_record *record = data;

  switch (event->type) {
  case CP_EVENT_SPAWN:
    append_event(record, 'S');
    record->out_len_at_spawn = record->out.len;
    record->pid_at_spawn = cp_child_pid(child);
    break;
  case CP_EVENT_EXIT:
    record_exit(record, event, child);
    break;
  case CP_EVENT_CLOSE:
    record_close(record, event, child);
    break;
  case CP_EVENT_ERROR:
    record_error(record, event);
    break;
  default:
    append_event(record, '?');
    break;
  }
}

static void on_recorded_stdout_event(cp_stream *stream, const cp_event *event,
                                     void *data) {
  cp_test_record *record = data;

  (void)stream;
  if (event->type == CP_EVENT_DATA)
    buffer_append(&record->out, event->data, event->len);
  else if (event->type == CP_EVENT_END)
    record->out_ended = true;
}

static void on_recorded_stderr_event(cp_stream *stream, const cp_event *event,
                                     void *data) {
  cp_test_record *record = data;

  (void)stream;
  if (event->type == CP_EVENT_DATA)
    buffer_append(&record->err, event->data, event->len);
  else if (event->type == CP_EVENT_END)
    record->err_ended = true;
}

static void record_stream(cp_stream *stream, cp_stream_listener listener,
                          cp_test_record *record) {
  if (stream == NULL)
    return;
  assert_int_equal(cp_stream_on(stream, CP_EVENT_DATA, listener, record), 0);
  assert_int_equal(cp_stream_on(stream, CP_EVENT_END, listener, record), 0);
}

void cp_test_record_child_events(cp_child *child, cp_test_record *record) {
  static const cp_event_type types[] = {CP_EVENT_SPAWN, CP_EVENT_EXIT,
                                        CP_EVENT_CLOSE, CP_EVENT_ERROR};

  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    assert_int_equal(
        cp_child_on(child, types[i], on_recorded_child_event, record), 0);
}

void cp_test_record_child(cp_child *child, cp_test_record *record) {
  cp_test_record_child_events(child, record);
  record_stream(cp_child_stdout(child), on_recorded_stdout_event, record);
  record_stream(cp_child_stderr(child), on_recorded_stderr_event, record);
}

cp_child *cp_test_spawn(uv_loop_t *loop, const char *file,
                        const char *const *args,
                        const cp_spawn_options *options,
                        cp_test_record *record) {
  cp_child *child = NULL;
  int r = cp_spawn(loop, file, args, options, &child);

  if (r != 0)
    fail_msg("cp_spawn(%s) returned %s", file, cp_err_name(r));
  assert_non_null(child);

  cp_test_record_init(record);
  cp_test_record_child(child, record);
  return child;
}

pid_t cp_test_run_child(uv_loop_t *loop, const char *file,
                        const char *const *args,
                        const cp_spawn_options *options,
                        cp_test_record *record, unsigned timeout_ms) {
  cp_child *child = cp_test_spawn(loop, file, args, options, record);
  pid_t pid;

  cp_test_loop_run(loop, timeout_ms);
  if (record->close_exit_code == CP_TEST_NOT_EMITTED)
    fail_msg("the loop ended before CLOSE of %s; events: \"%s\"", file,
             record->events);

  pid = cp_child_pid(child);
  cp_child_release(child);
  cp_test_loop_run(loop, timeout_ms);
  return pid;
}

void cp_test_loop_finish(uv_loop_t *loop) {
  int r;

  cp_test_loop_run(loop, 10000);
  r = uv_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "handles still open on the loop:\n");
    uv_print_all_handles(loop, stderr);
    fail_msg("uv_loop_close returned %s", uv_err_name(r));
  }
}

size_t cp_test_count_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  struct dirent *entry;
  size_t count = 0;

  if (dir == NULL)
    fail_msg("cannot open /proc/self/fd");
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.' && atoi(entry->d_name) != dirfd(dir))
      count++;
  }
  closedir(dir);
  return count;
}

size_t cp_test_count_fds_of(pid_t pid) {
  char path[64];
  size_t count = 0;
  struct dirent *entry;
  DIR *dir;

  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  dir = opendir(path);
  if (dir == NULL)
    return 0;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.')
      count++;
  }
  closedir(dir);
  return count;
}

void cp_test_send_with_fd(int sock, const void *bytes, size_t len, int fd) {
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n;

  if (fd >= 0) {
    struct cmsghdr *cmsg;

    memset(&control, 0, sizeof(control));
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  n = sendmsg(sock, &message, MSG_NOSIGNAL);
  if (n != (ssize_t)len)
    fail_msg("sendmsg wrote %zd of %zu bytes", n, len);
}
