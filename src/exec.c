/*
 * cp_exec() and cp_exec_file(): Node v20's exec and execFile on the
 * caller's loop, built on cp_spawn() and the stream API.
 *
 * The flow follows execFile in Node's lib/child_process.js. Output is
 * collected until the child's CLOSE. A timeout, or a stream passing
 * maxBuffer, closes stdout and stderr and signals the child. An error
 * event of the child calls back at once; otherwise CLOSE calls back.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"
#include "exec.h"
#include "output-buffer.h"

/* Indexes into exec_run.outputs: stdout, stderr. */
enum { OUT = 0, ERR = 1 };

typedef struct exec_run {
  cp_child *child;
  cp_exec_cb cb;
  void *data;
  bool release_child; /* the caller did not ask for the child */

  cp__encoding encoding;
  uint64_t timeout;
  int kill_signal;
  uint64_t kill_grace;
  bool kill_group;
  uv_timer_t timer; /* the timeout; always initialized, closed at CLOSE */

  cp__output outputs[2];
  cp__output_limit limits[2];
  char *cmd;

  /* Node's `ex`: 0, CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER, or the code of
   * an error event, whose syscall and path are kept. */
  int error;
  const char *max_buffer_stream; /* "stdout" or "stderr" */
  char *syscall;
  char *path;

  bool killed;
  bool timed_out;
  bool called_back;
} exec_run;

/* ------------------------------------------------------------------------
 * Building the run
 * ------------------------------------------------------------------------ */

static void free_run(exec_run *run) {
  cp__output_free(&run->outputs[OUT]);
  cp__output_free(&run->outputs[ERR]);
  free(run->cmd);
  free(run->syscall);
  free(run->path);
  free(run);
}

static void on_timer_closed(uv_handle_t *handle) { free_run(handle->data); }

char *cp__join_command(const char *file, const char *const *args) {
  size_t len = strlen(file) + 1;
  char *cmd;
  char *end;

  for (const char *const *arg = args; arg != NULL && *arg != NULL; arg++)
    len += strlen(*arg) + 1;

  cmd = malloc(len);
  if (cmd == NULL)
    return NULL;

  end = stpcpy(cmd, file);
  for (const char *const *arg = args; arg != NULL && *arg != NULL; arg++) {
    *end++ = ' ';
    end = stpcpy(end, *arg);
  }
  return cmd;
}

/* Checks what cp_spawn() does not, and copies the options the run itself
 * applies. */
static int new_run(const char *file, const char *const *args,
                   const cp_exec_options *options, exec_run **run_out) {
  exec_run *run;
  cp__encoding encoding;
  size_t max_buffer = cp__output_max_buffer(options->max_buffer);
  int r;

  if (options->spawn.stdio != NULL || options->spawn.stdio_count != 0)
    return CP_ERR_INVALID_ARG_VALUE;
  r = cp__output_parse_encoding(options->encoding, CP__ENCODING_UTF8,
                                &encoding);
  if (r < 0)
    return r;

  run = calloc(1, sizeof(*run));
  if (run == NULL)
    return -ENOMEM;
  run->cmd = cp__join_command(file, args);
  if (run->cmd == NULL) {
    free(run);
    return -ENOMEM;
  }

  run->encoding = encoding;
  run->timeout = options->spawn.timeout;
  run->kill_signal =
      options->spawn.kill_signal != 0 ? options->spawn.kill_signal : SIGTERM;
  run->kill_grace = options->spawn.kill_grace;
  run->kill_group = options->spawn.kill_group;
  for (int i = OUT; i <= ERR; i++) {
    cp__output_init(&run->outputs[i]);
    run->limits[i] = (cp__output_limit){.max = max_buffer};
  }

  *run_out = run;
  return 0;
}

/* ------------------------------------------------------------------------
 * Calling back
 * ------------------------------------------------------------------------ */

/* Moves an output into the buffer the callback receives. Running out of
 * memory leaves an empty buffer, or data NULL if even that fails. */
static int take_output(exec_run *run, int index, cp_buffer *buffer) {
  int r = cp__output_finish(&run->outputs[index], run->encoding, buffer);

  if (r < 0)
    buffer->data = cp__empty_text();
  return r;
}

/* Node's "Command failed: CMD\nSTDERR". */
static char *command_failed_message(const exec_run *run,
                                    const cp_buffer *stderr_buf) {
  const char *text = stderr_buf->data != NULL ? stderr_buf->data : "";
  char *message;

  if (asprintf(&message, "Command failed: %s\n%s", run->cmd, text) < 0)
    return NULL;
  return message;
}

static char *system_error_message(const exec_run *run) {
  char *message;
  int r;

  if (run->syscall != NULL)
    r = asprintf(&message, "%s %s", run->syscall, cp_err_name(run->error));
  else
    r = asprintf(&message, "%s", cp_err_name(run->error));
  return r < 0 ? NULL : message;
}

/* Fills Node's error fields; the kind follows exithandler's order: a
 * recorded error first, then the signal, then the exit status. */
static char *describe_error(const exec_run *run, int exit_code, int signum,
                            cp_exec_error *error) {
  error->signal = signum;
  error->killed = run->killed || cp_child_killed(run->child);
  error->timed_out = run->timed_out;
  error->cmd = run->cmd;

  if (run->error == CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER) {
    char *message;

    error->kind = CP_EXEC_ERROR_MAX_BUFFER;
    error->code = run->error;
    if (asprintf(&message, "%s maxBuffer length exceeded",
                 run->max_buffer_stream) < 0)
      return NULL;
    return message;
  }
  if (run->error != 0) {
    error->kind = CP_EXEC_ERROR_SYSTEM;
    error->code = run->error;
    error->syscall = run->syscall;
    error->path = run->path;
    error->spawnargs = cp_child_spawnargs(run->child) + 1;
    return system_error_message(run);
  }

  error->kind = signum != 0 ? CP_EXEC_ERROR_SIGNAL : CP_EXEC_ERROR_EXIT;
  error->code = signum != 0 ? -1 : exit_code;
  return command_failed_message(run, error->stderr_buf);
}

/* Node's exithandler: called once, from an error event or from CLOSE. */
static void call_back(exec_run *run, int exit_code, int signum) {
  cp_buffer stdout_buf;
  cp_buffer stderr_buf;
  cp_exec_error error = {.stdout_buf = &stdout_buf, .stderr_buf = &stderr_buf};
  char *message = NULL;
  int r;

  run->called_back = true;
  uv_timer_stop(&run->timer);

  r = take_output(run, OUT, &stdout_buf);
  if (take_output(run, ERR, &stderr_buf) < 0 || r < 0) {
    if (run->error == 0)
      run->error = -ENOMEM;
  }

  if (run->error == 0 && exit_code == 0 && signum == 0) {
    if (run->cb != NULL)
      run->cb(NULL, &stdout_buf, &stderr_buf, run->data);
  } else {
    message = describe_error(run, exit_code, signum, &error);
    error.message = message != NULL ? message : cp_strerror(-ENOMEM);
    if (run->cb != NULL)
      run->cb(&error, &stdout_buf, &stderr_buf, run->data);
  }

  free(message);
  free(stdout_buf.data);
  free(stderr_buf.data);
}

/* ------------------------------------------------------------------------
 * Listeners
 * ------------------------------------------------------------------------ */

static char *copy_or_null(const char *text) {
  return text != NULL ? strdup(text) : NULL;
}

/* Node's kill(): stop reading, then signal. Output already read is kept. */
static void kill_child(exec_run *run) {
  cp_stream_destroy(cp_child_stdout(run->child));
  cp_stream_destroy(cp_child_stderr(run->child));
  run->killed = true;
  uv_timer_stop(&run->timer);
  cp_child_terminate(run->child, run->kill_signal, run->kill_grace,
                     run->kill_group);
}

static void on_timeout(uv_timer_t *timer) {
  exec_run *run = timer->data;

  run->timed_out = true;
  kill_child(run);
}

static void on_output(cp_stream *stream, const cp_event *event, void *data) {
  exec_run *run = data;
  int index = stream == cp_child_stdout(run->child) ? OUT : ERR;
  int r;

  if (event->type == CP_EVENT_ERROR) {
    /* A failed read: the stream closes itself, and the error is reported
     * once the child closes. */
    if (run->error == 0) {
      run->error = event->error;
      run->syscall = copy_or_null(event->syscall);
    }
    return;
  }

  r = cp__output_append(&run->outputs[index], &run->limits[index], event->data,
                        event->len);
  if (r == 0)
    return;

  if (run->error == 0 && r < 0) {
    run->error = r;
  } else if (run->error == 0) {
    run->error = CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER;
    run->max_buffer_stream = index == OUT ? "stdout" : "stderr";
  }
  kill_child(run);
}

/* Node's errorhandler: the error replaces any earlier one, output reading
 * stops, and the callback runs now rather than at CLOSE. */
static void on_child_error(exec_run *run, const cp_event *event) {
  if (run->called_back)
    return;

  run->error = event->error;
  free(run->syscall);
  free(run->path);
  run->syscall = copy_or_null(event->syscall);
  run->path = copy_or_null(event->path);

  cp_stream_destroy(cp_child_stdout(run->child));
  cp_stream_destroy(cp_child_stderr(run->child));
  call_back(run, -1, 0);
}

/* The last event: calls back if no error event did, and lets go of the
 * child. The run is freed once its timer has closed. */
static void on_child_close(exec_run *run, const cp_event *event) {
  if (!run->called_back)
    call_back(run, event->exit_code, event->signal);

  uv_close((uv_handle_t *)&run->timer, on_timer_closed);
  if (run->release_child)
    cp_child_release(run->child);
}

static void on_child_event(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  if (event->type == CP_EVENT_ERROR)
    on_child_error(data, event);
  else if (event->type == CP_EVENT_CLOSE)
    on_child_close(data, event);
}

/* ------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------ */

static int listen_to_child(exec_run *run) {
  static const cp_event_type output_events[] = {CP_EVENT_DATA, CP_EVENT_ERROR};
  cp_stream *outputs[] = {cp_child_stdout(run->child),
                          cp_child_stderr(run->child)};
  int r = cp_child_on(run->child, CP_EVENT_ERROR, on_child_event, run);

  if (r == 0)
    r = cp_child_on(run->child, CP_EVENT_CLOSE, on_child_event, run);

  for (size_t i = 0; i < 2 && r == 0; i++) {
    for (size_t e = 0; e < 2 && r == 0; e++)
      r = cp_stream_on(outputs[i], output_events[e], on_output, run);
  }
  return r;
}

/* Kills a child that started but cannot be watched (out of memory). The
 * listeners already added are removed first, since the run is freed here;
 * the loop still reaps and frees the child.
 * NOTE: no test reaches this path: it needs malloc to fail in between. */
static void abandon_child(exec_run *run) {
  cp_stream *outputs[] = {cp_child_stdout(run->child),
                          cp_child_stderr(run->child)};

  cp_child_off(run->child, CP_EVENT_ERROR, on_child_event, run);
  cp_child_off(run->child, CP_EVENT_CLOSE, on_child_event, run);
  for (size_t i = 0; i < 2; i++) {
    cp_stream_off(outputs[i], CP_EVENT_DATA, on_output, run);
    cp_stream_off(outputs[i], CP_EVENT_ERROR, on_output, run);
  }

  cp_child_kill(run->child, SIGKILL);
  cp_child_release(run->child);
  free_run(run);
}

/* Ends stdin so that a child reading it gets end of file. Closing the pipe
 * does the same where end() has no memory for its idle handle. */
static void end_stdin(cp_stream *stdin_stream) {
  if (cp_stream_end(stdin_stream) == -ENOMEM)
    cp_stream_destroy(stdin_stream);
}

static int start(uv_loop_t *loop, const char *file, const char *const *args,
                 const cp_exec_options *options, const char *shell,
                 cp_exec_cb cb, void *data, cp_child **child_out) {
  cp_spawn_options spawn = options->spawn;
  exec_run *run;
  int r;

  if (child_out != NULL)
    *child_out = NULL;
  if (loop == NULL || file == NULL || file[0] == '\0')
    return CP_ERR_INVALID_ARG_VALUE;

  r = new_run(file, args, options, &run);
  if (r < 0)
    return r;

  /* The run applies the timeout itself, since it must also stop reading
   * and know that the timeout fired. */
  spawn.timeout = 0;
  spawn.shell = shell;
  r = cp_spawn(loop, file, args, &spawn, &run->child);
  if (r < 0) {
    free_run(run);
    return r;
  }

  if (listen_to_child(run) < 0) {
    abandon_child(run);
    return -ENOMEM;
  }

  run->cb = cb;
  run->data = data;
  run->release_child = child_out == NULL;
  uv_timer_init(loop, &run->timer);
  run->timer.data = run;
  if (run->timeout > 0)
    uv_timer_start(&run->timer, on_timeout, run->timeout, 0);

  if (child_out != NULL)
    *child_out = run->child;
  else
    end_stdin(cp_child_stdin(run->child));
  return 0;
}

int cp_exec(uv_loop_t *loop, const char *command,
            const cp_exec_options *options, cp_exec_cb cb, void *data,
            cp_child **child_out) {
  static const cp_exec_options defaults;

  if (options == NULL)
    options = &defaults;
  return start(loop, command, NULL, options,
               options->spawn.shell != NULL ? options->spawn.shell
                                            : CP_SHELL_DEFAULT,
               cb, data, child_out);
}

int cp_exec_file(uv_loop_t *loop, const char *file, const char *const *args,
                 const cp_exec_options *options, cp_exec_cb cb, void *data,
                 cp_child **child_out) {
  static const cp_exec_options defaults;

  if (options == NULL)
    options = &defaults;
  return start(loop, file, args, options, options->spawn.shell, cb, data,
               child_out);
}
