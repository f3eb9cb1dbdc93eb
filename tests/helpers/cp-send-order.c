/*
 * cp-send-order: a C child for Node.js parents that records when and in
 * what order its send callbacks run (tests/ipc/send-order-parent.js is
 * its parent).
 *
 * It opens the channel, sends SEND_COUNT messages {"seq":i,"pad":"x..."}
 * with a pad of PAD_BYTES, each with a callback, and runs two rounds of
 * loop iterations that never wait. The parent reads nothing meanwhile, so
 * only the messages the socket took can have finished. It then writes
 * {"sent":N,"padBytes":B,"before":K} and a newline to descriptor GO_FD,
 * K being the callbacks run after the first round, and closes GO_FD. The
 * parent blocks reading the other end of that pipe, so it reads the
 * channel only after that. The loop then runs until the channel closes.
 *
 * Last, it prints one line on stdout:
 *
 *   {"helper":{"pid":P,"sent":N,"padBytes":B,"sentBytes":S,"before":K,
 *    "beforeBytes":KB,"socketMemory":M,"settled":bool,"callbacks":C,
 *    "ok":O,"failed":F,"inOrder":bool,"okThenFailed":bool,
 *    "firstError":"NAME","disconnect":bool,"close":bool}}
 *
 * sentBytes: the bytes of all records, newlines included. beforeBytes:
 * the bytes of the first K records. socketMemory: the channel socket's
 * SIOCOUTQ after the rounds, the memory its unread data takes in the
 * kernel (at least the bytes the parent has not read), -1 when the ioctl
 * failed. settled: the second round of iterations ran no callback either.
 * inOrder: callback i was the one of send i. okThenFailed: no callback
 * with status 0 came after one with an error. firstError: the name of
 * the first error status, "" when none.
 *
 * Exits 0; 1 when the loop did not close or stdout could not be written;
 * 2 when the channel or GO_FD is missing or a send failed at once.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <childproc.h>
#include <uv.h>

#define SEND_COUNT 200
#define PAD_BYTES (16 * 1024)

/* The write end of the pipe the parent waits on before it reads. */
#define GO_FD 4

/* Iterations per round: one is enough for every callback due, since
 * callbacks of written records run in the idle or prepare phase. */
#define ROUND_ITERATIONS 8

typedef struct callback_record {
  size_t callbacks;
  size_t ok;
  size_t failed;
  bool in_order;
  bool ok_after_failure;
  int first_error;
  bool disconnect;
  bool close;
} callback_record;

static callback_record record = {.in_order = true};

/* Stream offset just past the newline of record i, as sent. */
static size_t record_ends[SEND_COUNT];

static void on_send_done(cp_channel *channel, int status, void *data) {
  size_t index = (size_t)(uintptr_t)data;

  (void)channel;
  if (index != record.callbacks)
    record.in_order = false;
  record.callbacks++;

  if (status == 0) {
    record.ok++;
    if (record.failed > 0)
      record.ok_after_failure = true;
    return;
  }
  record.failed++;
  if (record.first_error == 0)
    record.first_error = status;
}

static void on_disconnect(cp_channel *channel, const cp_event *event,
                          void *data) {
  (void)channel;
  (void)event;
  (void)data;
  record.disconnect = true;
}

static void on_close(cp_channel *channel, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  record.close = true;
  cp_channel_release(channel);
}

static int send_all(cp_channel *channel) {
  char *pad = malloc(PAD_BYTES + 1);
  int r = 0;

  if (pad == NULL)
    return -ENOMEM;
  memset(pad, 'x', PAD_BYTES);
  pad[PAD_BYTES] = '\0';

  /* Sends go on after send() returns 0 (Node's false): nothing is
   * dropped, and the backlog is the point of the test. */
  for (size_t i = 0; i < SEND_COUNT && r >= 0; i++) {
    cJSON *message = cJSON_CreateObject();
    char *text;

    cJSON_AddNumberToObject(message, "seq", (double)i);
    cJSON_AddStringToObject(message, "pad", pad);
    /* The channel writes the bytes cJSON prints here for this message. */
    text = cJSON_PrintUnformatted(message);
    if (text == NULL) {
      r = -ENOMEM;
    } else {
      record_ends[i] = (i > 0 ? record_ends[i - 1] : 0) + strlen(text) + 1;
      r = cp_channel_send(channel, message, NULL, NULL, on_send_done,
                          (void *)(uintptr_t)i);
    }
    cJSON_free(text);
    cJSON_Delete(message);
  }
  free(pad);
  return r < 0 ? r : 0;
}

static void run_round(uv_loop_t *loop) {
  for (int i = 0; i < ROUND_ITERATIONS; i++)
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Writes all of text to fd, then closes fd, so that the reader sees end
 * of file. Returns 0 or a negative errno. */
static int write_and_close(int fd, const char *text) {
  size_t len = strlen(text);
  size_t done = 0;
  int r = 0;

  while (done < len) {
    ssize_t n = write(fd, text + done, len - done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = -errno;
      break;
    }
    done += (size_t)n;
  }
  close(fd);
  return r;
}

/* What the child saw while the parent read nothing. */
typedef struct settled_state {
  size_t before;        /* callbacks run after the first round */
  bool settled;         /* the second round ran none */
  size_t before_bytes;  /* bytes of the records whose callbacks ran */
  int socket_memory;    /* SIOCOUTQ of the channel: at least the bytes the
                           parent has not read; -1 when it failed */
} settled_state;

/* Runs the loop until only the parent can make progress, and records the
 * callbacks run by then. */
static settled_state settle(uv_loop_t *loop, int channel_fd) {
  settled_state state = {.socket_memory = -1};

  run_round(loop);
  state.before = record.callbacks;
  run_round(loop);
  state.settled = record.callbacks == state.before;
  if (state.before > 0)
    state.before_bytes = record_ends[state.before - 1];
  if (ioctl(channel_fd, SIOCOUTQ, &state.socket_memory) < 0)
    state.socket_memory = -1;
  return state;
}

static int print_report(const settled_state *state) {
  const char *first_error =
      record.first_error != 0 ? cp_err_name(record.first_error) : "";

  printf("{\"helper\":{\"pid\":%d,\"sent\":%d,\"padBytes\":%d,"
         "\"sentBytes\":%zu,\"before\":%zu,\"beforeBytes\":%zu,"
         "\"socketMemory\":%d,\"settled\":%s,\"callbacks\":%zu,\"ok\":%zu,"
         "\"failed\":%zu,\"inOrder\":%s,\"okThenFailed\":%s,"
         "\"firstError\":\"%s\",\"disconnect\":%s,\"close\":%s}}\n",
         (int)getpid(), SEND_COUNT, PAD_BYTES, record_ends[SEND_COUNT - 1],
         state->before, state->before_bytes, state->socket_memory,
         state->settled ? "true" : "false", record.callbacks, record.ok,
         record.failed, record.in_order ? "true" : "false",
         record.ok_after_failure ? "false" : "true", first_error,
         record.disconnect ? "true" : "false",
         record.close ? "true" : "false");
  return fflush(stdout) == 0 ? 0 : -errno;
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  const char *channel_fd_text = getenv("NODE_CHANNEL_FD");
  int channel_fd;
  cp_channel *channel;
  settled_state state;
  char go[96];
  int r;

  /* Read before the open, which removes it from the environment. */
  if (channel_fd_text == NULL) {
    fprintf(stderr, "cp-send-order: NODE_CHANNEL_FD is not set; start it "
                    "with an 'ipc' stdio entry\n");
    return 2;
  }
  channel_fd = atoi(channel_fd_text);
  r = cp_parent_channel_open(loop, &channel);
  if (r < 0) {
    fprintf(stderr, "cp-send-order: opening the channel failed: %s\n",
            cp_strerror(r));
    return 2;
  }
  /* A DISCONNECT listener keeps the loop running until the channel
   * closes, as in Node. */
  cp_channel_on(channel, CP_EVENT_DISCONNECT, on_disconnect, NULL);
  cp_channel_on(channel, CP_EVENT_CLOSE, on_close, NULL);

  r = send_all(channel);
  if (r < 0) {
    fprintf(stderr, "cp-send-order: cp_channel_send failed: %s\n",
            cp_strerror(r));
    return 2;
  }

  state = settle(loop, channel_fd);
  snprintf(go, sizeof go, "{\"sent\":%d,\"padBytes\":%d,\"before\":%zu}\n",
           SEND_COUNT, PAD_BYTES, state.before);
  r = write_and_close(GO_FD, go);
  if (r < 0) {
    fprintf(stderr, "cp-send-order: writing to descriptor %d failed: %s\n",
            GO_FD, cp_strerror(r));
    return 2;
  }

  uv_run(loop, UV_RUN_DEFAULT);
  if (print_report(&state) < 0)
    return 1;
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
