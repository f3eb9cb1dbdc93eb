/*
 * pool-worker: the child that examples/worker-pool.c forks, several times.
 *
 * It opens the IPC channel its parent gave it and replies to every job, a
 * message {"id":N,"path":"FILE"}, by reading FILE itself and sending back
 *
 *   {"id":N,"bytes":B,"lines":L,"fnv":"16 hex digits"}
 *
 * where B is the file's size in bytes, L its number of newline bytes (what
 * `wc -l` counts) and fnv its 64-bit FNV-1a hash. A file it cannot read
 * gets {"id":N,"error":"open: Permission denied"} instead, and a message
 * that is not a job gets {"error":"..."} with the id when there is one.
 *
 * Jobs are run one at a time, in the order they arrive. The worker
 * exits with 0 once its parent disconnects, because the closed channel is
 * then the last handle on its loop, and with 2 when it has no channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <childproc.h>
#include <uv.h>

/* The offset basis and prime that define 64-bit FNV-1a. The hash of "a" is
 * af63dc4c8601ec8c and that of "foobar" 85944171f73967e8. */
#define FNV64_OFFSET_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)

typedef struct file_summary {
  uint64_t bytes;
  uint64_t lines;
  uint64_t fnv;
} file_summary;

static void add_bytes(file_summary *summary, const unsigned char *bytes,
                      size_t len) {
  uint64_t hash = summary->fnv;

  for (size_t i = 0; i < len; i++) {
    hash = (hash ^ bytes[i]) * FNV64_PRIME;
    if (bytes[i] == '\n')
      summary->lines++;
  }
  summary->fnv = hash;
  summary->bytes += len;
}

/*
 * Reads the file at path to its end. Returns 0, or a negative errno with
 * *failed_call set to the call that failed ("open" or "read").
 */
static int summarize_file(const char *path, file_summary *summary,
                          const char **failed_call) {
  unsigned char buf[64 * 1024];
  ssize_t n;
  int fd;

  *summary = (file_summary){.fnv = FNV64_OFFSET_BASIS};
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *failed_call = "open";
    return -errno;
  }

  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = -errno;

      close(fd);
      *failed_call = "read";
      return err;
    }
    add_bytes(summary, buf, (size_t)n);
  }
  close(fd);
  return 0;
}

/* Runs the job with this id and path and builds the reply. */
static cJSON *run_job(double id, const char *path) {
  cJSON *reply = cJSON_CreateObject();
  const char *failed_call = NULL;
  file_summary summary;
  char fnv_hex[17];
  int r;

  if (reply == NULL)
    return NULL;
  cJSON_AddNumberToObject(reply, "id", id);

  r = summarize_file(path, &summary, &failed_call);
  if (r < 0) {
    char error[256];

    snprintf(error, sizeof(error), "%s: %s", failed_call, strerror(-r));
    cJSON_AddStringToObject(reply, "error", error);
    return reply;
  }

  /* JSON numbers are doubles in Node, exact up to 2^53 bytes or lines. */
  cJSON_AddNumberToObject(reply, "bytes", (double)summary.bytes);
  cJSON_AddNumberToObject(reply, "lines", (double)summary.lines);
  snprintf(fnv_hex, sizeof(fnv_hex), "%016" PRIx64, summary.fnv);
  cJSON_AddStringToObject(reply, "fnv", fnv_hex);
  return reply;
}

/* Builds the reply to a message that is not {"id":number,"path":string}. */
static cJSON *reject_job(const cJSON *id) {
  cJSON *reply = cJSON_CreateObject();

  if (reply == NULL)
    return NULL;
  if (cJSON_IsNumber(id))
    cJSON_AddNumberToObject(reply, "id", id->valuedouble);
  cJSON_AddStringToObject(reply, "error",
                          "invalid job: expected {\"id\":number,"
                          "\"path\":string}");
  return reply;
}

static void on_message(cp_channel *channel, const cp_event *event, void *data) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(event->message, "id");
  const cJSON *path = cJSON_GetObjectItemCaseSensitive(event->message, "path");
  cJSON *reply;
  int r;

  (void)data;
  if (cJSON_IsNumber(id) && cJSON_IsString(path))
    reply = run_job(id->valuedouble, path->valuestring);
  else
    reply = reject_job(id);
  if (reply == NULL) {
    fprintf(stderr, "pool-worker: out of memory\n");
    exit(1);
  }

  /* A write that fails later, because the parent has gone, reaches
   * on_error(). A reply that cannot even be queued would leave the parent
   * waiting, so the worker exits, and the parent gives the job to another
   * worker. */
  r = cp_channel_send(channel, reply, NULL, NULL, NULL, NULL);
  cJSON_Delete(reply);
  if (r < 0) {
    fprintf(stderr, "pool-worker: sending a reply failed: %s\n",
            cp_strerror(r));
    exit(1);
  }
}

static void on_error(cp_channel *channel, const cp_event *event, void *data) {
  (void)channel;
  (void)data;
  fprintf(stderr, "pool-worker %ld: %s%s%s\n", (long)getpid(),
          event->syscall != NULL ? event->syscall : "",
          event->syscall != NULL ? ": " : "", cp_strerror(event->error));
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0) {
    fprintf(stderr,
            "pool-worker: no IPC channel from a parent (%s). Run it through "
            "worker-pool.\n",
            cp_strerror(r));
    return 2;
  }

  /* The MESSAGE listener keeps the loop running until the channel closes,
   * as process.on('message') keeps a Node.js child alive. */
  cp_channel_on(channel, CP_EVENT_MESSAGE, on_message, NULL);
  cp_channel_on(channel, CP_EVENT_ERROR, on_error, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_close, NULL);

  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
