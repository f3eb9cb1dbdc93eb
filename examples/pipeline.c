/*
 * pipeline: runs the shell pipeline
 *
 *   find DIR -name '*.h' | sort | head -n 10
 *
 * as three child processes joined with cp_stream_pipe(), the counterpart of
 * Node's find.stdout.pipe(sort.stdin). DIR is argv[1], /usr/include by
 * default. Prints head's output, then how each process ended.
 *
 * The bytes pass through this process: it reads find's stdout and writes
 * what it read to sort's stdin, and likewise from sort to head. A link
 * pauses its source once the destination's unwritten data reaches its
 * high-water mark (16 KiB by default), and resumes it on DRAIN. So however
 * fast find writes and however slowly sort reads, the memory used here
 * stays bounded, and a producer that runs ahead blocks in write(2).
 *
 * head exits after ten lines while sort may still have output. In a shell,
 * head's exit closes the last read end of sort's output pipe, so sort dies
 * of SIGPIPE on its next write. Here that read end belongs to this process:
 * when head's stdin closes, cp_stream_pipe() destroys sort's stdout, which
 * has no other reader, and sort dies of SIGPIPE in the same way.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <childproc.h>
#include <uv.h>

enum { FIND, SORT, HEAD, STAGE_COUNT };

typedef struct stage {
  const char *name;
  bool started;    /* cp_spawn() returned 0 */
  cp_child *child; /* valid until released in on_close() */
  pid_t pid;
  bool closed;
  int exit_code; /* as in the CLOSE event */
  int signal;
} stage;

typedef struct pipeline {
  stage stages[STAGE_COUNT];
  size_t started; /* stages whose cp_spawn() returned 0 */
  size_t closed;
  bool failed; /* an error the pipeline does not expect happened */
} pipeline;

static stage *stage_of(pipeline *p, const cp_child *child) {
  for (size_t i = 0; i < STAGE_COUNT; i++) {
    if (p->stages[i].child == child)
      return &p->stages[i];
  }
  return NULL;
}

static void on_spawn(cp_child *child, const cp_event *event, void *data) {
  (void)event;
  stage_of(data, child)->pid = cp_child_pid(child);
}

/* A child's error events, such as a failure to start (ENOENT when the
 * program is not installed), after which CLOSE follows. */
static void on_child_error(cp_child *child, const cp_event *event,
                           void *data) {
  pipeline *p = data;

  fprintf(stderr, "pipeline: %s: %s failed: %s\n",
          stage_of(p, child)->name, event->syscall, cp_strerror(event->error));
  p->failed = true;
}

/*
 * Errors of the links into sort's and head's stdin. EPIPE is expected: head
 * exits after ten lines, and the next write to its stdin fails. The stream
 * then closes, which removes the link that fed it.
 */
static void on_stdin_error(cp_stream *stream, const cp_event *event,
                           void *data) {
  pipeline *p = data;

  if (event->error == -EPIPE)
    return;
  fprintf(stderr, "pipeline: writing to %s: %s failed: %s\n",
          stage_of(p, cp_stream_child(stream))->name, event->syscall,
          cp_strerror(event->error));
  p->failed = true;
}

static void on_head_stdout(cp_stream *stream, const cp_event *event,
                           void *data) {
  (void)stream;
  (void)data;
  fwrite(event->data, 1, event->len, stdout);
}

/* Records how the child ended. The children are released together when the
 * last one closes. */
static void on_close(cp_child *child, const cp_event *event, void *data) {
  pipeline *p = data;
  stage *s = stage_of(p, child);

  s->closed = true;
  s->exit_code = event->exit_code;
  s->signal = event->signal;
  p->closed++;
  if (p->closed < p->started)
    return;

  for (size_t i = 0; i < STAGE_COUNT; i++) {
    if (p->stages[i].started)
      cp_child_release(p->stages[i].child);
  }
}

/* Starts one stage with the given stdin. stdout is a pipe to this process;
 * stderr goes where ours goes, so find's and sort's complaints are seen. */
static int start_stage(uv_loop_t *loop, pipeline *p, size_t index,
                       const char *file, const char *const *args,
                       cp_stdio_kind stdin_kind) {
  stage *s = &p->stages[index];
  cp_stdio stdio[3] = {
      {.kind = stdin_kind},
      {.kind = CP_STDIO_PIPE},
      {.kind = CP_STDIO_INHERIT},
  };
  cp_spawn_options options = {.stdio = stdio, .stdio_count = 3};
  int r;

  s->name = file;
  r = cp_spawn(loop, file, args, &options, &s->child);
  if (r < 0) {
    fprintf(stderr, "pipeline: cp_spawn %s failed: %s\n", file,
            cp_strerror(r));
    return r;
  }
  s->started = true;
  p->started++;

  r = cp_child_on(s->child, CP_EVENT_SPAWN, on_spawn, p);
  if (r == 0)
    r = cp_child_on(s->child, CP_EVENT_ERROR, on_child_error, p);
  if (r == 0)
    r = cp_child_on(s->child, CP_EVENT_CLOSE, on_close, p);
  if (r == 0 && stdin_kind == CP_STDIO_PIPE)
    r = cp_stream_on(cp_child_stdin(s->child), CP_EVENT_ERROR, on_stdin_error,
                     p);
  if (r < 0)
    fprintf(stderr, "pipeline: adding a listener failed: %s\n",
            cp_strerror(r));
  return r;
}

static int start_pipeline(uv_loop_t *loop, pipeline *p, const char *dir) {
  const char *const find_args[] = {dir, "-name", "*.h", NULL};
  const char *const head_args[] = {"-n", "10", NULL};
  int r;

  r = start_stage(loop, p, FIND, "find", find_args, CP_STDIO_IGNORE);
  if (r == 0)
    r = start_stage(loop, p, SORT, "sort", NULL, CP_STDIO_PIPE);
  if (r == 0)
    r = start_stage(loop, p, HEAD, "head", head_args, CP_STDIO_PIPE);
  if (r < 0)
    return r;

  /* No data is read before the loop runs, so linking the streams after
   * cp_spawn() loses nothing. end = true: find's end of file ends sort's
   * input, and sort's ends head's, as in a shell. */
  r = cp_stream_pipe(cp_child_stdout(p->stages[FIND].child),
                     cp_child_stdin(p->stages[SORT].child), true);
  if (r == 0)
    r = cp_stream_pipe(cp_child_stdout(p->stages[SORT].child),
                       cp_child_stdin(p->stages[HEAD].child), true);
  if (r < 0) {
    fprintf(stderr, "pipeline: cp_stream_pipe failed: %s\n", cp_strerror(r));
    return r;
  }

  r = cp_stream_on(cp_child_stdout(p->stages[HEAD].child), CP_EVENT_DATA,
                   on_head_stdout, p);
  if (r < 0)
    fprintf(stderr, "pipeline: adding a listener failed: %s\n",
            cp_strerror(r));
  return r;
}

/* Stops the stages already started when a later one could not be. Their
 * CLOSE listeners release them. */
static void abort_pipeline(pipeline *p) {
  for (size_t i = 0; i < STAGE_COUNT; i++) {
    if (p->stages[i].started)
      cp_child_kill(p->stages[i].child, SIGTERM);
  }
}

static void print_status(const stage *s) {
  if (s->signal != 0) {
    printf("  %-4s (pid %ld): killed by %s\n", s->name, (long)s->pid,
           cp_signal_name(s->signal));
  } else if (s->exit_code < 0) {
    printf("  %-4s: did not start: %s\n", s->name, cp_err_name(s->exit_code));
  } else {
    printf("  %-4s (pid %ld): exit code %d\n", s->name, (long)s->pid,
           s->exit_code);
  }
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/usr/include";
  pipeline p = {0};
  uv_loop_t loop;
  int r;

  r = uv_loop_init(&loop);
  if (r < 0) {
    fprintf(stderr, "pipeline: uv_loop_init failed: %s\n", uv_strerror(r));
    return 1;
  }

  printf("$ find %s -name '*.h' | sort | head -n 10\n", dir);
  fflush(stdout);
  if (start_pipeline(&loop, &p, dir) < 0) {
    abort_pipeline(&p);
    p.failed = true;
  }

  /* Returns once every child has closed and been released: nothing else
   * keeps the loop alive. */
  uv_run(&loop, UV_RUN_DEFAULT);

  printf("how each process ended:\n");
  for (size_t i = 0; i < STAGE_COUNT; i++) {
    if (p.stages[i].started)
      print_status(&p.stages[i]);
  }

  r = uv_loop_close(&loop);
  if (r < 0) {
    fprintf(stderr, "pipeline: uv_loop_close failed: %s\n", uv_strerror(r));
    return 1;
  }
  return p.failed ? 1 : 0;
}
