/*
 * ipc-parent: the C parent of the IPC benchmarks. It forks a child with
 * cp_fork() and measures the channel between them.
 *
 *   ipc-parent throughput COUNT SIZE PROGRAM [EXEC_PATH]
 *   ipc-parent pingpong COUNT SIZE PROGRAM [EXEC_PATH]
 *
 * PROGRAM is bench/ipc-child, or with EXEC_PATH "node" the script
 * bench/node/ipc-child.js; both behave as ipc-child.c describes. The clock
 * starts once the child has sent {"ready":true}, so process start-up is
 * not measured.
 *
 * throughput: the child sends COUNT messages {"seq":i,"data":TEXT} with
 * TEXT SIZE bytes long, and the clock stops when the parent's MESSAGE
 * listener has received the last one, parsed. Prints
 *   msgs_per_s=RATE mb_per_s=RATE seconds=ELAPSED
 * with MB = 10^6 bytes of JSON text and newlines.
 *
 * pingpong: the parent sends {"seq":i,"data":"hello"}, waits for the echo,
 * and repeats COUNT times. The first tenth (at most 1000) are warm-up and
 * not counted. Prints
 *   rtt_median_us=MEDIAN rtt_p99_us=P99 round_trips=COUNTED
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <childproc.h>
#include <uv.h>

#include "bench-util.h"

typedef enum bench_mode { MODE_THROUGHPUT, MODE_PINGPONG } bench_mode;

typedef struct parent_state {
  bench_mode mode;
  size_t count;
  size_t size;
  size_t received;
  double start;
  cJSON *ping; /* {"seq":i,"data":"hello"} */
  cJSON *ping_seq;
  double sent_at;
  double *rtts; /* seconds, one per round trip */
} parent_state;

static void send_or_fail(cp_child *child, const cJSON *message) {
  int r = cp_child_send(child, message, NULL, NULL, NULL, NULL);

  if (r < 0)
    bench_fail("cp_child_send: %s", cp_strerror(r));
}

static void send_ping(cp_child *child, parent_state *state) {
  cJSON_SetNumberValue(state->ping_seq, (double)state->received);
  state->sent_at = bench_now();
  send_or_fail(child, state->ping);
}

static void start(cp_child *child, parent_state *state) {
  cJSON *request;

  if (state->mode == MODE_PINGPONG) {
    send_ping(child, state);
    return;
  }
  request = cJSON_CreateObject();
  if (request == NULL ||
      cJSON_AddStringToObject(request, "mode", "stream") == NULL ||
      cJSON_AddNumberToObject(request, "count", (double)state->count) ==
          NULL ||
      cJSON_AddNumberToObject(request, "size", (double)state->size) == NULL)
    bench_fail("out of memory");
  state->start = bench_now();
  send_or_fail(child, request);
  cJSON_Delete(request);
}

static void print_throughput(const parent_state *state) {
  double seconds = bench_now() - state->start;

  printf("msgs_per_s=%.1f mb_per_s=%.1f seconds=%.3f\n",
         (double)state->count / seconds,
         bench_stream_bytes(state->count, state->size) / seconds / 1e6,
         seconds);
}

static void print_round_trips(parent_state *state) {
  size_t warmup = state->count / 10 < 1000 ? state->count / 10 : 1000;
  double *counted = state->rtts + warmup;
  size_t n = state->count - warmup;
  double median = bench_quantile(counted, n, 0.5);
  double p99 = bench_quantile(counted, n, 0.99);

  printf("rtt_median_us=%.2f rtt_p99_us=%.2f round_trips=%zu\n", median * 1e6,
         p99 * 1e6, n);
}

static void on_message(cp_child *child, const cp_event *event, void *data) {
  parent_state *state = data;
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(event->message, "seq");

  if (seq == NULL) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event->message, "ready")))
      start(child, state);
    return;
  }
  if (!cJSON_IsNumber(seq) || seq->valuedouble != (double)state->received)
    bench_fail("message %zu arrived out of order", state->received);

  if (state->mode == MODE_PINGPONG)
    state->rtts[state->received] = bench_now() - state->sent_at;
  state->received++;
  if (state->received < state->count) {
    if (state->mode == MODE_PINGPONG)
      send_ping(child, state);
    return;
  }

  if (state->mode == MODE_PINGPONG)
    print_round_trips(state);
  else
    print_throughput(state);
  cp_child_disconnect(child);
}

static void on_error(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)data;
  bench_fail("child error: %s (%s)", cp_strerror(event->error),
             event->syscall != NULL ? event->syscall : "");
}

static void on_close(cp_child *child, const cp_event *event, void *data) {
  parent_state *state = data;

  if (state->received < state->count)
    bench_fail("the child ended after %zu of %zu messages (exit code %d)",
               state->received, state->count, event->exit_code);
  cp_child_release(child);
}

int main(int argc, char **argv) {
  parent_state state = {0};
  cp_fork_options options = {0};
  uv_loop_t *loop = uv_default_loop();
  cp_child *child;
  int r;

  if (argc != 5 && argc != 6)
    bench_fail("usage: ipc-parent throughput|pingpong COUNT SIZE PROGRAM "
               "[EXEC_PATH]");
  if (strcmp(argv[1], "throughput") == 0)
    state.mode = MODE_THROUGHPUT;
  else if (strcmp(argv[1], "pingpong") == 0)
    state.mode = MODE_PINGPONG;
  else
    bench_fail("unknown mode '%s'", argv[1]);
  state.count = bench_parse_size(argv[2], "COUNT");
  state.size = bench_parse_size(argv[3], "SIZE");
  if (state.count == 0)
    bench_fail("COUNT must be greater than 0");
  options.exec_path = argc == 6 ? argv[5] : NULL;

  if (state.mode == MODE_PINGPONG) {
    state.rtts = malloc(state.count * sizeof(*state.rtts));
    state.ping = cJSON_CreateObject();
    state.ping_seq = cJSON_AddNumberToObject(state.ping, "seq", 0);
    if (state.rtts == NULL || state.ping_seq == NULL ||
        cJSON_AddStringToObject(state.ping, "data", "hello") == NULL)
      bench_fail("out of memory");
  }

  r = cp_fork(loop, argv[4], NULL, &options, &child);
  if (r < 0)
    bench_fail("cp_fork %s: %s", argv[4], cp_strerror(r));
  cp_child_on(child, CP_EVENT_MESSAGE, on_message, &state);
  cp_child_on(child, CP_EVENT_ERROR, on_error, &state);
  cp_child_on(child, CP_EVENT_CLOSE, on_close, &state);

  uv_run(loop, UV_RUN_DEFAULT);
  cJSON_Delete(state.ping);
  free(state.rtts);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
