/* The ChildProcess object: events, exit, close and lifetime. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child-internal.h"
#include "io.h"
#include "spawn.h"
#include "stream.h"

bool cp__force_sigchld = false;

static void invoke_child_listener(cp__listener_fn fn, void *object,
                                  const cp_event *event, void *data) {
  ((cp_child_listener)fn)(object, event, data);
}

static void handle_closed(uv_handle_t *handle);
static void maybe_free(cp_child *child);

cp_child *cp__child_new(uv_loop_t *loop) {
  cp_child *child = calloc(1, sizeof(*child));

  if (child == NULL)
    return NULL;

  child->loop = loop;
  child->pidfd = -1;
  child->exit_code = -1;
  child->referenced = true;
  cp__emitter_init(&child->emitter, child, invoke_child_listener);

  /* Allocated before the process starts: every child needs it, and
   * cp_spawn() may fail only before that point. */
  child->next_tick = cp__child_new_timer(child);
  if (child->next_tick == NULL) {
    free(child);
    return NULL;
  }
  return child;
}

uv_timer_t *cp__child_new_timer(cp_child *child) {
  uv_timer_t *timer = malloc(sizeof(*timer));

  if (timer == NULL)
    return NULL;

  uv_timer_init(child->loop, timer);
  timer->data = child;
  child->handles_open++;
  return timer;
}

static void free_memory(cp_child *child) {
  if (child->channel != NULL)
    cp__channel_free(child->channel);
  cp__message_queue_free(&child->unheard);

  for (size_t i = 0; i < child->stdio_count; i++) {
    if (child->stdio[i] != NULL)
      cp__stream_free(child->stdio[i]);
  }
  free(child->stdio);

  free(child->command);
  cp__emitter_free(&child->emitter);
  free(child);
}

/* Closes the streams and handles of a child that cp_spawn() gave up on
 * before returning it (out of memory); the memory goes once the loop has run
 * their close callbacks.
 * NOTE: a caller that never runs the loop again keeps that memory. */
void cp__child_free_unstarted(cp_child *child) {
  for (size_t i = 0; i < child->stdio_count; i++) {
    if (child->stdio[i] != NULL)
      cp_stream_destroy(child->stdio[i]);
  }
  child->released = true;
  child->close_emitted = true;
  maybe_free(child);
}

void cp__child_emit(cp_child *child, const cp_event *event) {
  cp__child_hold(child);
  cp__emitter_emit(&child->emitter, event);
  cp__child_unhold(child);
}

void cp__child_hold(cp_child *child) { child->holds++; }

void cp__child_unhold(cp_child *child) {
  child->holds--;
  maybe_free(child);
}

static bool streams_closed(const cp_child *child) {
  if (child->channel != NULL && !child->channel_closed)
    return false;
  for (size_t i = 0; i < child->stdio_count; i++) {
    if (child->stdio[i] != NULL && !cp__stream_closed(child->stdio[i]))
      return false;
  }
  return true;
}

static void close_handle(cp_child *child, uv_handle_t *handle) {
  handle->data = child;
  uv_close(handle, handle_closed);
}

void cp__child_close_timer(cp_child *child, uv_timer_t **timer) {
  if (*timer == NULL)
    return;

  close_handle(child, (uv_handle_t *)*timer);
  *timer = NULL;
}

static bool has_exit_watch(const cp_child *child) {
  return child->pidfd >= 0 || child->use_sigchld;
}

static void close_handles(cp_child *child) {
  child->handles_closing = true;
  cp__child_close_timer(child, &child->next_tick);
  cp__child_close_timer(child, &child->replay_timer);
  if (child->kill != NULL) {
    close_handle(child, (uv_handle_t *)&child->kill->timer);
    child->kill = NULL;
  }
  if (has_exit_watch(child))
    close_handle(child, (uv_handle_t *)&child->exit_watch);
}

/* The exit watch is part of the child; every other handle is a timer
 * block of its own. */
static void handle_closed(uv_handle_t *handle) {
  cp_child *child = handle->data;

  if (handle == (uv_handle_t *)&child->exit_watch)
    child->pidfd = cp__close(child->pidfd);
  else
    free(handle);

  child->handles_open--;
  maybe_free(child);
}

/* Frees the child once the caller released it, CLOSE was emitted, no emit
 * is running and every stream and handle has closed. */
static void maybe_free(cp_child *child) {
  if (!child->released || !child->close_emitted || child->holds > 0)
    return;
  if (!streams_closed(child))
    return;

  if (!child->handles_closing)
    close_handles(child);
  if (child->handles_open == 0)
    free_memory(child);
}

void cp_child_release(cp_child *child) {
  if (child == NULL)
    return;

  cp__child_hold(child);
  child->released = true;
  cp__child_unhold(child);
}

/* Node's maybeClose: CLOSE once the process is gone and every readable
 * stream has closed. */
static void maybe_close(cp_child *child) {
  if (child->close_emitted || (!child->exited && child->spawn_error == 0))
    return;
  if (child->closes_needed > 0)
    return;

  child->close_emitted = true;
  cp__child_stop_kill_timer(child);
  cp__child_emit(child, &(cp_event){.type = CP_EVENT_CLOSE,
                                    .exit_code = child->exit_code,
                                    .signal = child->term_signal});
}

/* One of the things CLOSE waits for (a stream past stdin, the channel) has
 * closed. */
void cp__child_count_close(cp_child *child) {
  child->closes_needed--;
  maybe_close(child);
}

void cp__child_stream_closed(cp_child *child, cp_stream *stream) {
  cp__child_hold(child);
  for (size_t i = 1; i < child->stdio_count; i++) {
    if (child->stdio[i] == stream) {
      cp__child_count_close(child);
      break;
    }
  }
  cp__child_unhold(child);
}

/* Destroys stdin and drains unread output once the process ended or failed
 * to start, as Node does, then checks whether CLOSE is due. */
static void finish_process(cp_child *child) {
  cp_stream *stdin_stream = cp_child_stdin(child);

  if (stdin_stream != NULL)
    cp__stream_destroy_for_exit(stdin_stream);

  for (size_t i = 0; i < child->stdio_count; i++) {
    if (child->stdio[i] != NULL)
      cp__stream_flush(child->stdio[i]);
  }
  maybe_close(child);
}

static void emit_spawn(cp_child *child) {
  if (child->spawn_emitted || child->pid == 0)
    return;

  child->spawn_emitted = true;
  cp__child_emit(child, &(cp_event){.type = CP_EVENT_SPAWN});
}

static void stop_exit_watch(cp_child *child) {
  if (child->pidfd >= 0)
    uv_poll_stop(&child->exit_watch.pidfd);
  if (child->use_sigchld)
    uv_signal_stop(&child->exit_watch.sigchld);
}

static void handle_exit(cp_child *child, int exit_code, int signum) {
  cp__child_hold(child);
  stop_exit_watch(child);
  cp__child_stop_kill_timer(child);
  child->exited = true;
  child->exit_code = exit_code;
  child->term_signal = signum;

  emit_spawn(child);
  /* Every message the child sent before it died comes before EXIT. */
  if (child->channel != NULL)
    cp__channel_read_dry(child->channel);
  cp__child_emit(child, &(cp_event){.type = CP_EVENT_EXIT,
                                    .exit_code = exit_code,
                                    .signal = signum,
                                    .rusage = &child->rusage});
  finish_process(child);
  cp__child_unhold(child);
}

/* Reaps the child if it has exited. A failure to wait (ECHILD when the
 * caller set SIGCHLD to SIG_IGN and the kernel reaped it) still ends the
 * process's life here, with an error event, so CLOSE is not lost. */
static void try_reap(cp_child *child) {
  int exit_code;
  int signum;
  int r;

  if (child->exited)
    return;

  r = cp__reap(child->pidfd, child->pid, &exit_code, &signum, &child->rusage);
  if (r == 0)
    return;

  if (r < 0) {
    cp__child_hold(child);
    cp__child_emit(child, &(cp_event){.type = CP_EVENT_ERROR,
                                      .error = r,
                                      .syscall = child->pidfd >= 0
                                                     ? "waitid"
                                                     : "wait4"});
    handle_exit(child, -1, 0);
    cp__child_unhold(child);
    return;
  }
  handle_exit(child, exit_code, signum);
}

static void exit_poll_cb(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  try_reap(handle->data);
}

static void sigchld_cb(uv_signal_t *handle, int signum) {
  (void)signum;
  try_reap(handle->data);
}

/* Node's syscall for a spawn error is "spawn FILE". Without memory for
 * that text, the event's syscall is "spawn". */
static void emit_spawn_error(cp_child *child) {
  const char *file = cp_child_spawnfile(child);
  char *syscall;

  if (asprintf(&syscall, "spawn %s", file) < 0)
    syscall = NULL;
  cp__child_emit(child, &(cp_event){.type = CP_EVENT_ERROR,
                                    .error = child->spawn_error,
                                    .syscall = syscall != NULL ? syscall
                                                               : "spawn",
                                    .path = file});
  free(syscall);
}

static void next_tick_cb(uv_timer_t *timer) {
  cp_child *child = timer->data;

  cp__child_hold(child);
  /* It runs once, so its memory goes now rather than with the child. */
  cp__child_close_timer(child, &child->next_tick);
  if (child->spawn_error != 0) {
    child->exit_code = child->spawn_error;
    emit_spawn_error(child);
    finish_process(child);
  } else {
    emit_spawn(child);
    /* A child that exited before the SIGCHLD watcher started sent its
     * signal to nobody. */
    if (child->use_sigchld)
      try_reap(child);
  }
  cp__child_unhold(child);
}

void cp__child_schedule_next_tick(cp_child *child) {
  uv_timer_start(child->next_tick, next_tick_cb, 0, 0);
}

/* Starts watching for the exit of a started child: a pidfd where the
 * kernel has them, SIGCHLD otherwise. Returns 0 or a negative errno. */
int cp__child_start_watch(cp_child *child) {
  int r = cp__force_sigchld ? -ENOSYS : cp__pidfd_open(child->pid);

  if (r >= 0) {
    uv_poll_t *poll = &child->exit_watch.pidfd;

    child->pidfd = r;
    r = uv_poll_init(child->loop, poll, child->pidfd);
    if (r < 0) {
      child->pidfd = cp__close(child->pidfd);
      return r;
    }
    poll->data = child;
    child->handles_open++;
    return uv_poll_start(poll, UV_READABLE, exit_poll_cb);
  }

  r = uv_signal_init(child->loop, &child->exit_watch.sigchld);
  if (r < 0)
    return r;
  child->use_sigchld = true;
  child->exit_watch.sigchld.data = child;
  child->handles_open++;
  return uv_signal_start(&child->exit_watch.sigchld, sigchld_cb, SIGCHLD);
}

static bool is_child_event(cp_event_type type) {
  switch (type) {
  case CP_EVENT_SPAWN:
  case CP_EVENT_EXIT:
  case CP_EVENT_CLOSE:
  case CP_EVENT_ERROR:
  case CP_EVENT_MESSAGE:
  case CP_EVENT_INTERNAL_MESSAGE:
  case CP_EVENT_DISCONNECT:
    return true;
  default:
    return false;
  }
}

static int add_listener(cp_child *child, cp_event_type type,
                        cp_child_listener fn, void *data, bool once) {
  int r;

  if (child == NULL || fn == NULL || !is_child_event(type))
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__emitter_add(&child->emitter, type, (cp__listener_fn)fn, data, once);
  if (r < 0 || type != CP_EVENT_MESSAGE)
    return r;

  /* Out of memory for the replay: the listener is not added after all. */
  r = cp__child_message_listener_added(child);
  if (r < 0)
    cp__emitter_remove(&child->emitter, type, (cp__listener_fn)fn, data);
  return r;
}

int cp_child_on(cp_child *child, cp_event_type type, cp_child_listener fn,
                void *data) {
  return add_listener(child, type, fn, data, false);
}

int cp_child_once(cp_child *child, cp_event_type type, cp_child_listener fn,
                  void *data) {
  return add_listener(child, type, fn, data, true);
}

int cp_child_off(cp_child *child, cp_event_type type, cp_child_listener fn,
                 void *data) {
  if (child == NULL || fn == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  return cp__emitter_remove(&child->emitter, type, (cp__listener_fn)fn, data);
}

uv_loop_t *cp_child_loop(const cp_child *child) { return child->loop; }

pid_t cp_child_pid(const cp_child *child) { return child->pid; }

int cp_child_exit_code(const cp_child *child) { return child->exit_code; }

int cp_child_signal_code(const cp_child *child) { return child->term_signal; }

bool cp_child_killed(const cp_child *child) { return child->killed; }

const cp_rusage *cp_child_resource_usage(const cp_child *child) {
  return child->exited ? &child->rusage : NULL;
}

const char *cp_child_spawnfile(const cp_child *child) {
  return child->command[0];
}

const char *const *cp_child_spawnargs(const cp_child *child) {
  return (const char *const *)child->command + 1;
}

cp_stream *cp_child_stdio(const cp_child *child, size_t i) {
  return i < child->stdio_count ? child->stdio[i] : NULL;
}

size_t cp_child_stdio_count(const cp_child *child) {
  return child->stdio_count;
}

cp_stream *cp_child_stdin(const cp_child *child) {
  return cp_child_stdio(child, 0);
}

cp_stream *cp_child_stdout(const cp_child *child) {
  return cp_child_stdio(child, 1);
}

cp_stream *cp_child_stderr(const cp_child *child) {
  return cp_child_stdio(child, 2);
}

static void set_handle_ref(uv_handle_t *handle, bool referenced) {
  if (referenced)
    uv_ref(handle);
  else
    uv_unref(handle);
}

/* The next-tick timer stays referenced: the spawn or error event it carries
 * fires on the next iteration even for an unref'd child. */
static void apply_ref(cp_child *child) {
  if (child->kill != NULL)
    set_handle_ref((uv_handle_t *)&child->kill->timer, child->referenced);
  if (has_exit_watch(child))
    set_handle_ref((uv_handle_t *)&child->exit_watch, child->referenced);
  if (child->channel != NULL && !child->channel_closed) {
    if (child->referenced)
      cp__channel_ref(child->channel);
    else
      cp__channel_unref(child->channel);
  }

  for (size_t i = 0; i < child->stdio_count; i++) {
    if (child->stdio[i] == NULL)
      continue;
    if (child->referenced)
      cp_stream_ref(child->stdio[i]);
    else
      cp_stream_unref(child->stdio[i]);
  }
}

void cp_child_ref(cp_child *child) {
  child->referenced = true;
  apply_ref(child);
}

void cp_child_unref(cp_child *child) {
  child->referenced = false;
  apply_ref(child);
}
