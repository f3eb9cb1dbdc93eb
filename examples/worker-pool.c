/*
 * worker-pool: a pool of C worker processes fed over IPC channels.
 *
 * Usage: worker-pool [-k] [DIR [WORKERS]]
 *
 * The parent lists every regular file under DIR (/usr/include by default;
 * symbolic links are not followed), forks WORKERS copies of pool-worker (4
 * by default) with cp_fork(), and hands out one job per file:
 * {"id":N,"path":"FILE"}. Each worker reads the file itself and replies
 * {"id":N,"bytes":B,"lines":L,"fnv":"..."} with its size, its line count
 * and a 64-bit FNV-1a hash. At the end the parent prints the totals, the
 * jobs each worker did, the time taken and a few sample results, then
 * disconnects every worker. A worker exits when its channel disconnects,
 * and the parent checks each one's exit code as it closes.
 *
 * Flow control: each worker has at most WINDOW jobs in flight, so it has
 * the next job at hand when it finishes one, and no worker hoards the queue.
 * cp_child_send() returns 0 once about 128 KiB of messages wait to be
 * written. The parent then sends that worker nothing more until the
 * callback of that send has run. A send callback with an error means the
 * job never reached the worker, so the job goes back to the queue.
 *
 * Worker failures: when a worker's channel closes or the worker dies
 * before the parent disconnected it, the jobs it had not replied to go back
 * to the queue for the other workers. A job that has been in flight on
 * MAX_ATTEMPTS workers that died is reported as failed. With -k the parent
 * kills worker 1 with SIGKILL halfway through, to show this.
 *
 * Exits with 0 when every file got a reply (a reply can be a read
 * error, such as a file without read permission) and every worker ended as
 * expected, 1 otherwise, and 2 for bad arguments.
 */

/* glibc declares nftw() and FTW_PHYS only when X/Open features are asked
 * for, which the build's _GNU_SOURCE does but a plain `cc` does not. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

enum {
  DEFAULT_WORKERS = 4,
  MAX_WORKERS = 64,
  WINDOW = 2,       /* jobs in flight per worker */
  MAX_ATTEMPTS = 3, /* workers that may die holding the same job */
  SAMPLES = 3,
  SHOWN_ERRORS = 5,
};

/* One file to summarize, and its result once the worker's reply came. */
typedef struct job {
  char *path;
  unsigned attempts; /* workers that died with this job in flight */
  bool finished;     /* a reply came, or the job failed */
  char *error;       /* the worker's error, or why the job failed */
  double bytes;
  double lines;
  char fnv[17];
  int worker; /* index of the worker that replied, -1 when none did */
} job;

typedef struct pool pool;

typedef struct worker {
  pool *pool;
  int index;
  cp_child *child; /* NULL once released */
  pid_t pid;

  size_t in_flight[WINDOW]; /* job indices sent and not replied to */
  size_t in_flight_count;
  bool blocked; /* a send returned 0: wait for its callback */
  bool usable;  /* takes new jobs: spawned, connected, not lost or killed */
  bool lost;
  bool disconnecting; /* the parent called cp_child_disconnect() */
  bool kill_expected; /* the parent killed it on purpose (-k) */
  bool exited;

  unsigned jobs_done;
  int exit_code;
  int signal;
} worker;

struct pool {
  job *jobs;
  size_t job_count;
  size_t next_job; /* jobs before this index have been handed out once */
  size_t *retry;   /* job indices that went back to the queue */
  size_t retry_count;
  size_t finished;

  worker workers[MAX_WORKERS];
  int worker_count;
  bool finishing; /* every job finished: workers are being disconnected */
  bool kill_halfway;
  bool killed_one;
  bool failed;
};

/* The file list, filled by nftw(), which takes no user data pointer. */
static job *listed_jobs;
static size_t listed_count;
static size_t listed_capacity;

/* ------------------------------------------------------------------------
 * Listing the files
 * ------------------------------------------------------------------------ */

static int add_file(const char *path, const struct stat *st, int type,
                    struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F || !S_ISREG(st->st_mode))
    return 0;

  if (listed_count == listed_capacity) {
    size_t capacity = listed_capacity ? 2 * listed_capacity : 1024;
    job *grown = realloc(listed_jobs, capacity * sizeof(*grown));

    if (grown == NULL)
      return -1;
    listed_jobs = grown;
    listed_capacity = capacity;
  }
  listed_jobs[listed_count] = (job){.path = strdup(path), .worker = -1};
  if (listed_jobs[listed_count].path == NULL)
    return -1;
  listed_count++;
  return 0;
}

static int compare_paths(const void *a, const void *b) {
  return strcmp(((const job *)a)->path, ((const job *)b)->path);
}

/* Lists the regular files under dir, sorted by path. Subdirectories that
 * cannot be read are skipped without a message. */
static bool list_files(pool *p, const char *dir) {
  if (nftw(dir, add_file, 32, FTW_PHYS) != 0) {
    perror(dir);
    return false;
  }
  qsort(listed_jobs, listed_count, sizeof(*listed_jobs), compare_paths);
  p->jobs = listed_jobs;
  p->job_count = listed_count;
  p->retry = calloc(listed_count + 1, sizeof(*p->retry));
  return p->retry != NULL;
}

/* ------------------------------------------------------------------------
 * The job queue
 * ------------------------------------------------------------------------ */

/* Takes the next job: one that went back to the queue first, else a new
 * one. Returns false when none is left. */
static bool take_job(pool *p, size_t *index) {
  while (p->retry_count > 0) {
    *index = p->retry[--p->retry_count];
    if (!p->jobs[*index].finished)
      return true;
  }
  if (p->next_job < p->job_count) {
    *index = p->next_job++;
    return true;
  }
  return false;
}

static void requeue_job(pool *p, size_t index) {
  p->retry[p->retry_count++] = index;
}

static void finish_job(pool *p, size_t index) {
  p->jobs[index].finished = true;
  p->finished++;
}

static void fail_job(pool *p, size_t index, const char *reason) {
  job *j = &p->jobs[index];

  free(j->error);
  j->error = strdup(reason);
  finish_job(p, index);
}

/* Removes a job from the worker's in-flight list. Returns false when it was
 * not there: already replied to, or already given back to the queue. */
static bool drop_in_flight(worker *w, size_t index) {
  for (size_t i = 0; i < w->in_flight_count; i++) {
    if (w->in_flight[i] == index) {
      w->in_flight[i] = w->in_flight[--w->in_flight_count];
      return true;
    }
  }
  return false;
}

/* ------------------------------------------------------------------------
 * Handing out jobs
 * ------------------------------------------------------------------------ */

/* What the callback of one send needs: which job went to which worker, and
 * whether this send returned 0 and so blocks the worker until it is done. */
typedef struct send_ticket {
  worker *worker;
  size_t job;
  bool unblocks;
} send_ticket;

static void feed_all(pool *p);
static void check_finished(pool *p);
static void lose_worker(worker *w, const char *reason);

static void on_sent(cp_child *child, int status, void *data) {
  send_ticket *ticket = data;
  worker *w = ticket->worker;

  (void)child;
  if (ticket->unblocks)
    w->blocked = false;

  /* The job did not reach the worker, and a channel whose write failed
   * will not carry later ones either. */
  if (status < 0 && drop_in_flight(w, ticket->job)) {
    char reason[128];

    snprintf(reason, sizeof(reason), "a send failed with %s",
             cp_err_name(status));
    requeue_job(w->pool, ticket->job);
    lose_worker(w, reason);
  }
  free(ticket);
  feed_all(w->pool);
}

static cJSON *job_message(size_t index, const char *path) {
  cJSON *message = cJSON_CreateObject();

  if (message == NULL)
    return NULL;
  if (cJSON_AddNumberToObject(message, "id", (double)index) == NULL ||
      cJSON_AddStringToObject(message, "path", path) == NULL) {
    cJSON_Delete(message);
    return NULL;
  }
  return message;
}

/* Sends one job. When it cannot be sent at all, the job is failed with the
 * reason. */
static void send_job(worker *w, size_t index) {
  pool *p = w->pool;
  send_ticket *ticket = malloc(sizeof(*ticket));
  cJSON *message = job_message(index, p->jobs[index].path);
  int r = -ENOMEM;

  if (ticket != NULL && message != NULL) {
    *ticket = (send_ticket){.worker = w, .job = index};
    r = cp_child_send(w->child, message, NULL, NULL, on_sent, ticket);
  }
  cJSON_Delete(message);

  if (r < 0) {
    /* CP_ERR_INVALID_ARG_VALUE: a file name that is not valid UTF-8, which
     * a JSON message cannot carry. Else -ENOMEM. */
    free(ticket);
    fail_job(p, index,
             r == CP_ERR_INVALID_ARG_VALUE
                 ? "the name is not valid UTF-8, so no JSON "
                   "message can carry it"
                 : cp_strerror(r));
    return;
  }

  w->in_flight[w->in_flight_count++] = index;
  /* 0: the message is queued, but the channel's backlog is past 128 KiB,
   * or the channel is closed and on_sent() will get the error. */
  if (r == 0) {
    ticket->unblocks = true;
    w->blocked = true;
  }
}

static void feed(worker *w) {
  size_t index;

  while (w->usable && !w->blocked && w->in_flight_count < WINDOW &&
         take_job(w->pool, &index))
    send_job(w, index);
}

/* Fails the jobs left when every worker is lost. A worker that is still
 * starting is not lost: it takes jobs once it has spawned. */
static void fail_orphaned_jobs(pool *p) {
  size_t index;

  for (int i = 0; i < p->worker_count; i++) {
    if (!p->workers[i].lost)
      return;
  }
  while (take_job(p, &index)) {
    fail_job(p, index, "no worker left to run it");
    p->failed = true;
  }
}

static void feed_all(pool *p) {
  if (p->finishing)
    return;

  for (int i = 0; i < p->worker_count; i++)
    feed(&p->workers[i]);
  fail_orphaned_jobs(p);
  check_finished(p);
}

/* Once every job is finished, disconnects every worker, which then exits. */
static void check_finished(pool *p) {
  if (p->finishing || p->finished < p->job_count)
    return;

  p->finishing = true;
  for (int i = 0; i < p->worker_count; i++) {
    worker *w = &p->workers[i];

    if (w->child != NULL && cp_child_connected(w->child)) {
      w->disconnecting = true;
      cp_child_disconnect(w->child);
    }
  }
}

/* ------------------------------------------------------------------------
 * Replies and worker events
 * ------------------------------------------------------------------------ */

/* Copies the reply's fields into the job. Returns false for a reply that
 * has neither an error nor a result. */
static bool store_reply(job *j, const cJSON *reply) {
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
  const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(reply, "bytes");
  const cJSON *lines = cJSON_GetObjectItemCaseSensitive(reply, "lines");
  const cJSON *fnv = cJSON_GetObjectItemCaseSensitive(reply, "fnv");

  if (cJSON_IsString(error)) {
    j->error = strdup(error->valuestring);
    return true;
  }
  if (!cJSON_IsNumber(bytes) || !cJSON_IsNumber(lines) ||
      !cJSON_IsString(fnv) || strlen(fnv->valuestring) >= sizeof(j->fnv))
    return false;

  j->bytes = bytes->valuedouble;
  j->lines = lines->valuedouble;
  strcpy(j->fnv, fnv->valuestring);
  return true;
}

static void maybe_kill_one(pool *p) {
  worker *victim = &p->workers[1];

  if (!p->kill_halfway || p->killed_one || p->worker_count < 2 ||
      p->finished < p->job_count / 2 || !victim->usable)
    return;

  p->killed_one = true;
  printf("-k: killing worker 1 (pid %ld) with SIGKILL while it has %zu "
         "job%s in flight\n",
         (long)victim->pid, victim->in_flight_count,
         victim->in_flight_count == 1 ? "" : "s");
  if (cp_child_kill(victim->child, SIGKILL) == 1) {
    victim->kill_expected = true;
    victim->usable = false; /* no new jobs while its channel closes */
  }
}

static void on_message(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;
  pool *p = w->pool;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(event->message, "id");
  size_t index;

  (void)child;
  if (!cJSON_IsNumber(id) || id->valuedouble < 0 ||
      id->valuedouble >= (double)p->job_count) {
    char *text = cJSON_PrintUnformatted(event->message);

    printf("worker %d sent a message that is no reply to a job: %s\n", w->index,
           text != NULL ? text : "?");
    free(text);
    return;
  }

  /* A worker lost because a send to it failed may still reply to a job
   * that went back to the queue. The reply counts unless another worker
   * finished the job first. */
  index = (size_t)id->valuedouble;
  if (!drop_in_flight(w, index) && p->jobs[index].finished)
    return;
  if (!p->jobs[index].finished) {
    if (!store_reply(&p->jobs[index], event->message))
      p->jobs[index].error = strdup("the worker's reply has no result");
    p->jobs[index].worker = w->index;
    finish_job(p, index);
    w->jobs_done++;
  }

  maybe_kill_one(p);
  feed_all(p);
}

/* Marks the worker as gone and gives its jobs in flight back to the
 * queue. Every message the worker sent before its channel closed has been
 * delivered by then, so no reply to these jobs is on its way. */
static void lose_worker(worker *w, const char *reason) {
  pool *p = w->pool;

  if (w->lost)
    return;
  w->lost = true;
  w->usable = false;

  /* A worker that runs on without a working channel would keep the loop,
   * and so this program, running for ever. */
  if (!w->exited && !w->kill_expected && w->child != NULL && w->pid != 0)
    cp_child_kill(w->child, SIGTERM);
  if (p->finishing && w->in_flight_count == 0)
    return;

  printf("worker %d (pid %ld) lost: %s.", w->index, (long)w->pid, reason);
  if (w->in_flight_count > 0)
    printf(" Its %zu job%s in flight go%s back to the queue.",
           w->in_flight_count, w->in_flight_count == 1 ? "" : "s",
           w->in_flight_count == 1 ? "es" : "");
  else if (w->pid != 0)
    printf(" Every job it was given got its reply.");
  printf("\n");
  while (w->in_flight_count > 0) {
    size_t index = w->in_flight[--w->in_flight_count];

    if (++p->jobs[index].attempts >= MAX_ATTEMPTS) {
      fail_job(p, index, "each worker that took it died");
      p->failed = true;
    } else {
      requeue_job(p, index);
    }
  }
  feed_all(p);
}

static void on_spawn(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;

  (void)event;
  w->pid = cp_child_pid(child);
  w->usable = cp_child_connected(child);
  feed_all(w->pool);
}

static void on_error(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;

  (void)child;
  printf("worker %d: %s failed: %s\n", w->index,
         event->syscall != NULL ? event->syscall : "IPC",
         cp_strerror(event->error));
  if (event->syscall != NULL && strncmp(event->syscall, "spawn", 5) == 0) {
    w->pool->failed = true;
    lose_worker(w, "it did not start");
  }
}

static void on_disconnect(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;

  (void)child;
  (void)event;
  if (!w->disconnecting)
    lose_worker(w, "its channel closed");
}

static void on_worker_exit(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;

  (void)child;
  w->exited = true;
  w->exit_code = event->exit_code;
  w->signal = event->signal;
  if (!w->disconnecting) {
    char reason[64];

    if (event->signal != 0)
      snprintf(reason, sizeof(reason), "killed by %s",
               cp_signal_name(event->signal));
    else
      snprintf(reason, sizeof(reason), "it exited with code %d",
               event->exit_code);
    lose_worker(w, reason);
  }
}

static void on_close(cp_child *child, const cp_event *event, void *data) {
  worker *w = data;
  bool expected = w->kill_expected
                      ? event->signal == SIGKILL
                      : event->signal == 0 && event->exit_code == 0;

  w->exit_code = event->exit_code;
  w->signal = event->signal;
  if (!expected)
    w->pool->failed = true;
  lose_worker(w, "it closed");
  cp_child_release(child);
  w->child = NULL;
}

static bool start_worker(pool *p, uv_loop_t *loop, const char *program,
                         int index) {
  worker *w = &p->workers[index];
  cp_child *child;
  int r;

  *w = (worker){.pool = p, .index = index};
  r = cp_fork(loop, program, NULL, NULL, &child);
  if (r < 0) {
    fprintf(stderr, "worker-pool: cp_fork(%s) failed: %s\n", program,
            cp_strerror(r));
    return false;
  }

  w->child = child;
  cp_child_on(child, CP_EVENT_SPAWN, on_spawn, w);
  cp_child_on(child, CP_EVENT_MESSAGE, on_message, w);
  cp_child_on(child, CP_EVENT_ERROR, on_error, w);
  cp_child_on(child, CP_EVENT_DISCONNECT, on_disconnect, w);
  cp_child_on(child, CP_EVENT_EXIT, on_worker_exit, w);
  cp_child_on(child, CP_EVENT_CLOSE, on_close, w);
  p->worker_count++;
  return true;
}

/* ------------------------------------------------------------------------
 * The report
 * ------------------------------------------------------------------------ */

static void print_result(const job *j) {
  if (j->error != NULL)
    printf("  %-44s %s\n", j->path, j->error);
  else
    printf("  %-44s %9.0f bytes %7.0f lines  fnv %s  (worker %d)\n", j->path,
           j->bytes, j->lines, j->fnv, j->worker);
}

static void print_samples(const pool *p) {
  const job *largest = NULL;
  size_t samples_shown = 0;

  for (size_t i = 0; i < p->job_count; i++) {
    const job *j = &p->jobs[i];

    if (j->error != NULL || !j->finished)
      continue;
    if (samples_shown == 0)
      printf("\nSample results (compare with `wc -c -l FILE`):\n");
    if (samples_shown++ < SAMPLES)
      print_result(j);
    if (largest == NULL || j->bytes > largest->bytes)
      largest = j;
  }
  if (largest != NULL) {
    printf("The largest file:\n");
    print_result(largest);
  }
}

static void print_errors(const pool *p) {
  size_t errors = 0;

  for (size_t i = 0; i < p->job_count; i++) {
    if (p->jobs[i].error == NULL)
      continue;
    if (errors++ == 0)
      printf("\nFiles without a result:\n");
    if (errors <= SHOWN_ERRORS)
      print_result(&p->jobs[i]);
  }
  if (errors > SHOWN_ERRORS)
    printf("  ... and %zu more\n", errors - SHOWN_ERRORS);
}

static void print_worker(const worker *w) {
  printf("  worker %d (pid %ld): %u job%s, ", w->index, (long)w->pid,
         w->jobs_done, w->jobs_done == 1 ? "" : "s");
  if (w->signal != 0)
    printf("killed by %s%s\n", cp_signal_name(w->signal),
           w->kill_expected ? ", as -k asked" : "");
  else if (w->exit_code < 0)
    printf("did not start: %s\n", cp_strerror(w->exit_code));
  else
    printf("exit code %d\n", w->exit_code);
}

static void print_summary(const pool *p, const char *dir, uint64_t elapsed_ns) {
  double bytes = 0;
  double lines = 0;
  size_t summarized = 0;

  for (size_t i = 0; i < p->job_count; i++) {
    if (p->jobs[i].error == NULL && p->jobs[i].finished) {
      bytes += p->jobs[i].bytes;
      lines += p->jobs[i].lines;
      summarized++;
    }
  }

  printf("%zu regular files under %s, %zu summarized: %.0f bytes, %.0f "
         "lines\n",
         p->job_count, dir, summarized, bytes, lines);
  printf("%d workers, at most %d jobs in flight each, %.2f s in all:\n",
         p->worker_count, WINDOW, (double)elapsed_ns / 1e9);
  for (int i = 0; i < p->worker_count; i++)
    print_worker(&p->workers[i]);
  print_samples(p);
  print_errors(p);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* The pool-worker program next to this executable. */
static bool find_worker_program(char *path, size_t size) {
  size_t len = size;
  char *slash;

  if (uv_exepath(path, &len) != 0)
    return false;
  slash = strrchr(path, '/');
  if (slash == NULL || (size_t)(slash - path) + sizeof("/pool-worker") > size)
    return false;
  strcpy(slash, "/pool-worker");
  return true;
}

static void free_jobs(pool *p) {
  for (size_t i = 0; i < p->job_count; i++) {
    free(p->jobs[i].path);
    free(p->jobs[i].error);
  }
  free(p->jobs);
  free(p->retry);
}

static int usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [-k] [DIR [WORKERS]]\n"
          "  DIR      the directory whose regular files are summarized "
          "(default /usr/include)\n"
          "  WORKERS  the number of worker processes, 1 to %d (default %d)\n"
          "  -k       kill worker 1 halfway through, to show its jobs "
          "moving to the other workers\n",
          argv0, MAX_WORKERS, DEFAULT_WORKERS);
  return 2;
}

int main(int argc, char **argv) {
  static pool p;
  const char *dir = "/usr/include";
  int worker_count = DEFAULT_WORKERS;
  char program[4096];
  uv_loop_t *loop = uv_default_loop();
  uint64_t start;
  int opt;

  while ((opt = getopt(argc, argv, "k")) != -1) {
    if (opt != 'k')
      return usage(argv[0]);
    p.kill_halfway = true;
  }
  if (argc - optind > 2)
    return usage(argv[0]);
  if (optind < argc)
    dir = argv[optind];
  if (optind + 1 < argc) {
    char *end;
    long n = strtol(argv[optind + 1], &end, 10);

    if (*end != '\0' || n < 1 || n > MAX_WORKERS)
      return usage(argv[0]);
    worker_count = (int)n;
  }
  if (!find_worker_program(program, sizeof(program))) {
    fprintf(stderr, "worker-pool: cannot find this program's directory\n");
    return 1;
  }

  start = uv_hrtime();
  if (!list_files(&p, dir))
    return 1;
  for (int i = 0; i < worker_count; i++) {
    if (!start_worker(&p, loop, program, i))
      p.failed = true;
  }
  uv_run(loop, UV_RUN_DEFAULT);

  print_summary(&p, dir, uv_hrtime() - start);
  if (p.finished < p.job_count)
    p.failed = true;
  free_jobs(&p);
  if (uv_loop_close(loop) != 0)
    return 1;
  return p.failed ? 1 : 0;
}
