/*
 * ipc-child: the C child of the IPC benchmarks, forked by bench/ipc-parent
 * (or by bench/node/ipc-parent.js) with childproc's channel to it.
 *
 * It sends {"ready":true} once its listener is in place. After that it
 * echoes every message that has a "seq" member, and on
 * {"mode":"stream","count":N,"size":S} it sends N messages
 * {"seq":i,"data":TEXT}, where TEXT is S bytes of "hellohello...", as fast
 * as the channel takes them. It exits once the parent disconnects.
 *
 * The stream is sent in batches of about 64 KiB with a send callback on
 * each batch's last message only, and at most about 256 KiB is queued, as
 * a program that follows send()'s backpressure would do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

#include "bench-util.h"

#define BATCH_BYTES (64 * 1024)
#define QUEUE_BYTES (256 * 1024)

typedef struct stream_state {
  cJSON *message; /* {"seq":i,"data":TEXT}, reused for every send */
  cJSON *seq;
  size_t count;
  size_t next;
  size_t batch;  /* messages per batch */
  size_t window; /* batches queued at most */
  size_t batches_in_flight;
} stream_state;

static stream_state stream;

static void send_batches(cp_channel *channel);

static void on_batch_sent(cp_channel *channel, int status, void *data) {
  (void)data;
  if (status < 0)
    bench_fail("cp_channel_send: %s", cp_strerror(status));
  stream.batches_in_flight--;
  send_batches(channel);
}

static void send_batches(cp_channel *channel) {
  while (stream.batches_in_flight < stream.window &&
         stream.next < stream.count) {
    size_t end = stream.next + stream.batch;

    if (end > stream.count)
      end = stream.count;
    for (; stream.next < end; stream.next++) {
      bool last = stream.next + 1 == end;
      int r;

      cJSON_SetNumberValue(stream.seq, (double)stream.next);
      r = cp_channel_send(channel, stream.message, NULL, NULL,
                          last ? on_batch_sent : NULL, NULL);
      if (r < 0)
        bench_fail("cp_channel_send: %s", cp_strerror(r));
    }
    stream.batches_in_flight++;
  }
}

/* Text of size bytes: "hello" repeated, so that size 5 is "hello". */
static char *make_text(size_t size) {
  char *text = malloc(size + 1);

  if (text == NULL)
    bench_fail("out of memory");
  for (size_t i = 0; i < size; i++)
    text[i] = "hello"[i % 5];
  text[size] = '\0';
  return text;
}

static void start_stream(cp_channel *channel, size_t count, size_t size) {
  size_t line_bytes = size + 32;
  char *text = make_text(size);

  stream.message = cJSON_CreateObject();
  stream.seq = cJSON_AddNumberToObject(stream.message, "seq", 0);
  if (stream.seq == NULL ||
      cJSON_AddStringToObject(stream.message, "data", text) == NULL)
    bench_fail("out of memory");
  free(text);

  stream.count = count;
  stream.batch = BATCH_BYTES / line_bytes > 0 ? BATCH_BYTES / line_bytes : 1;
  stream.window = QUEUE_BYTES / (stream.batch * line_bytes);
  if (stream.window < 2)
    stream.window = 2;
  send_batches(channel);
}

static void on_message(cp_channel *channel, const cp_event *event,
                       void *data) {
  const cJSON *mode = cJSON_GetObjectItemCaseSensitive(event->message, "mode");
  int r;

  (void)data;
  if (cJSON_IsString(mode) && strcmp(mode->valuestring, "stream") == 0) {
    const cJSON *count =
        cJSON_GetObjectItemCaseSensitive(event->message, "count");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(event->message, "size");

    if (!cJSON_IsNumber(count) || !cJSON_IsNumber(size) ||
        stream.message != NULL)
      bench_fail("invalid stream request");
    start_stream(channel, (size_t)count->valuedouble,
                 (size_t)size->valuedouble);
    return;
  }

  r = cp_channel_send(channel, event->message, NULL, NULL, NULL, NULL);
  if (r < 0)
    bench_fail("cp_channel_send: %s", cp_strerror(r));
}

static void on_error(cp_channel *channel, const cp_event *event, void *data) {
  (void)channel;
  (void)data;
  bench_fail("channel error: %s", cp_strerror(event->error));
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  cp_channel_release(channel);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  cp_channel *channel;
  cJSON *ready;
  int r = cp_parent_channel_open(loop, &channel);

  if (r < 0)
    bench_fail("no IPC channel from the parent: %s", cp_strerror(r));
  cp_channel_on(channel, CP_EVENT_MESSAGE, on_message, NULL);
  cp_channel_on(channel, CP_EVENT_ERROR, on_error, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_close, NULL);

  ready = cJSON_CreateObject();
  if (ready == NULL || cJSON_AddTrueToObject(ready, "ready") == NULL)
    bench_fail("out of memory");
  r = cp_channel_send(channel, ready, NULL, NULL, NULL, NULL);
  cJSON_Delete(ready);
  if (r < 0)
    bench_fail("cp_channel_send: %s", cp_strerror(r));

  uv_run(loop, UV_RUN_DEFAULT);
  cJSON_Delete(stream.message);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
