/*
 * libFuzzer target for the IPC channel's reader: arbitrary bytes, cut into
 * chunks whose sizes come from the input, go through cp__channel_feed(),
 * the path every read from the socket takes, on a channel opened on a
 * socket pair. AddressSanitizer and libFuzzer's leak check catch memory
 * errors and leaks; the checks below abort on broken event rules and on
 * a parsed value that does not survive being written and parsed again.
 *
 * Input layout:
 *   byte 0     options:
 *              bits 0-1  maximum message size: default, 1, 16, 256 bytes
 *              bit 2     the message listener sends each message back
 *              bit 3     it calls cp__channel_read_dry() on the empty
 *                        socket, which exercises only the re-entry
 *              bit 4     it takes the value
 *              bits 5-7  it disconnects on that message (1-7), or never
 *   byte 1     seed of the chunk sizes
 *   the rest   the bytes fed to the channel
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "childproc.h"
#include "json.h"

typedef struct run_state {
  unsigned options;
  size_t messages;
  unsigned disconnects;
  unsigned closes;
} run_state;

static uv_loop_t loop;

/* Aborts, so that libFuzzer keeps the input that broke the rule. */
static void require(bool condition) {
  if (!condition)
    abort();
}

/* The parser reads back what the writer writes: the text of a parsed
 * value parses and is written again byte for byte, as
 * JSON.stringify(JSON.parse(text)) is stable in Node. (Values themselves
 * may change once: infinities are written as null, -0 as 0.) */
static void require_round_trip(const cJSON *value) {
  cp__bytes first = {0};
  cp__bytes second = {0};
  cJSON *again = NULL;

  require(cp__json_stringify(value, &first) == 0);
  require(cp__json_validate(first.data, first.len) == 0);
  require(cp__json_parse(first.data, first.len, &again) == 0);
  require(cp__json_stringify(again, &second) == 0);
  require(first.len == second.len &&
          memcmp(first.data, second.data, first.len) == 0);

  cJSON_Delete(again);
  cp__bytes_free(&first);
  cp__bytes_free(&second);
}

static void on_message(cp__channel *channel, cp__message *message,
                       void *data) {
  run_state *state = data;
  cJSON *value = message->value;
  bool internal = message->internal;
  unsigned disconnect_at = state->options >> 5;
  size_t index;

  require(state->disconnects == 0 && state->closes == 0);
  require(internal == cp__json_is_internal(value));
  require_round_trip(value);

  /* Taken now: a nested read_dry delivers further messages before this
   * listener returns. */
  index = ++state->messages;

  /* Every value parsed from the peer can be sent again. */
  if (state->options & 0x04)
    require(cp__channel_send(channel, value, NULL, NULL) >= 0);
  if (state->options & 0x08)
    cp__channel_read_dry(channel);
  if (disconnect_at != 0 && index == disconnect_at)
    require(cp__channel_disconnect(channel) == 0);

  if (state->options & 0x10) {
    message->value = NULL;
    cJSON_Delete(value);
  }
}

static void on_error(cp__channel *channel, int error, const char *syscall,
                     void *data) {
  run_state *state = data;

  (void)channel;
  (void)syscall;
  require(state->closes == 0);
  require(error < 0);
}

static void on_disconnect(cp__channel *channel, void *data) {
  run_state *state = data;

  require(!cp__channel_connected(channel));
  state->disconnects++;
}

static void on_close(cp__channel *channel, void *data) {
  run_state *state = data;

  (void)channel;
  require(state->disconnects == 1);
  state->closes++;
}

static const cp__channel_events events = {
    .message = on_message,
    .error = on_error,
    .disconnect = on_disconnect,
    .close = on_close,
};

static const size_t max_sizes[] = {0, 1, 16, 256};

/* xorshift32: chunk sizes that depend on the input alone. */
static uint32_t next_random(uint32_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 17;
  *x ^= *x << 5;
  return *x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (uv_loop_init(&loop) != 0)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
  run_state state = {0};
  cp__channel *channel = NULL;
  uint32_t random;
  size_t pos = 2;
  int sv[2];

  if (size < 2)
    return 0;
  state.options = input[0];
  random = 0x9e3779b9u ^ input[1];

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    abort();
  if (cp__channel_open(&loop, sv[0], &events, &state, &channel) != 0)
    abort();
  cp__channel_set_max_message_size(channel, max_sizes[state.options & 3]);

  /* Small chunks most of the time, so that records split often. */
  while (pos < size) {
    uint32_t r = next_random(&random);
    size_t chunk = 1 + (r % 4 == 0 ? r % 1024 : r % 8);

    if (chunk > size - pos)
      chunk = size - pos;
    cp__channel_feed(channel, (const char *)input + pos, chunk);
    pos += chunk;
  }

  /* The peer's end of file ends the channel, which must then close once,
   * after one disconnect. */
  close(sv[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  require(state.closes == 1);
  require(state.disconnects == 1);

  cp__channel_free(channel);
  return 0;
}
