/*
 * ipc-floor: the floor of the IPC benchmarks. Two C processes carry the
 * same newline-ended lines as the channel, {"seq":i,"data":TEXT}, over a
 * blocking AF_UNIX stream socket pair with plain system calls: one write()
 * per line, blocking read()s of 64 KiB, and no parsing beyond finding the
 * newlines.
 *
 *   ipc-floor throughput COUNT SIZE
 *   ipc-floor pingpong COUNT SIZE
 *
 * The modes, clocks and output lines are those of bench/ipc-parent. The
 * child is a fork() of this process, and the clock starts when the parent
 * writes the one byte that starts the child.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

#define READ_SIZE (64 * 1024)
/* Room in front of TEXT for {"seq":DIGITS,"data":" */
#define HEADROOM 64

/* One line under construction: the header is written just in front of
 * TEXT, so only the digits change between lines. */
typedef struct line_buffer {
  char *memory; /* HEADROOM bytes, TEXT, then the 3 bytes "}\n */
  size_t size;  /* bytes of TEXT */
} line_buffer;

static void make_line_buffer(line_buffer *line, size_t size) {
  line->size = size;
  line->memory = malloc(HEADROOM + size + 3);
  if (line->memory == NULL)
    bench_fail("out of memory");
  for (size_t i = 0; i < size; i++)
    line->memory[HEADROOM + i] = "hello"[i % 5];
  memcpy(line->memory + HEADROOM + size, "\"}\n", 3);
}

/* Returns the start of line seq, whose length goes to *len. */
static const char *format_line(line_buffer *line, size_t seq, size_t *len) {
  char header[HEADROOM];
  int n = snprintf(header, sizeof(header), "{\"seq\":%zu,\"data\":\"", seq);
  char *begin = line->memory + HEADROOM - n;

  memcpy(begin, header, (size_t)n);
  *len = (size_t)n + line->size + 3;
  return begin;
}

static void write_all(int fd, const char *bytes, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, bytes, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      bench_fail("write: %s", strerror(errno));
    bytes += n;
    len -= (size_t)n;
  }
}

static size_t read_some(int fd, char *buffer, size_t size) {
  for (;;) {
    ssize_t n = read(fd, buffer, size);

    if (n > 0)
      return (size_t)n;
    if (n == 0)
      bench_fail("read: unexpected end of stream");
    if (errno != EINTR)
      bench_fail("read: %s", strerror(errno));
  }
}

static size_t count_newlines(const char *bytes, size_t len) {
  size_t count = 0;
  const char *end = bytes + len;

  while ((bytes = memchr(bytes, '\n', (size_t)(end - bytes))) != NULL) {
    count++;
    bytes++;
  }
  return count;
}

/* ------------------------------------------------------------------------
 * The child's side
 * ------------------------------------------------------------------------ */

static void stream_lines(int fd, size_t count, size_t size) {
  line_buffer line;
  char start;

  make_line_buffer(&line, size);
  read_some(fd, &start, 1);
  for (size_t seq = 0; seq < count; seq++) {
    size_t len;
    const char *bytes = format_line(&line, seq, &len);

    write_all(fd, bytes, len);
  }
  free(line.memory);
}

/* Writes back every complete line read, one write() per line. */
static void echo_lines(int fd) {
  char *buffer = malloc(READ_SIZE);
  size_t used = 0;

  if (buffer == NULL)
    bench_fail("out of memory");
  for (;;) {
    ssize_t n = read(fd, buffer + used, READ_SIZE - used);
    char *begin = buffer;
    char *newline;

    if (n == 0)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      bench_fail("read: %s", strerror(errno));
    used += (size_t)n;
    while ((newline = memchr(begin, '\n', used)) != NULL) {
      size_t len = (size_t)(newline - begin) + 1;

      write_all(fd, begin, len);
      begin += len;
      used -= len;
    }
    if (used == READ_SIZE)
      bench_fail("a line is longer than %d bytes", READ_SIZE);
    memmove(buffer, begin, used);
  }
  free(buffer);
}

/* ------------------------------------------------------------------------
 * The parent's side
 * ------------------------------------------------------------------------ */

static void measure_throughput(int fd, size_t count, size_t size) {
  char *buffer = malloc(READ_SIZE);
  size_t lines = 0;
  double start;
  double seconds;

  if (buffer == NULL)
    bench_fail("out of memory");
  start = bench_now();
  write_all(fd, "s", 1);
  while (lines < count)
    lines += count_newlines(buffer, read_some(fd, buffer, READ_SIZE));
  seconds = bench_now() - start;
  free(buffer);

  printf("msgs_per_s=%.1f mb_per_s=%.1f seconds=%.3f\n",
         (double)count / seconds,
         bench_stream_bytes(count, size) / seconds / 1e6, seconds);
}

static void measure_round_trips(int fd, size_t count) {
  size_t warmup = count / 10 < 1000 ? count / 10 : 1000;
  double *rtts = malloc(count * sizeof(*rtts));
  char reply[HEADROOM * 2];
  line_buffer line;

  if (rtts == NULL)
    bench_fail("out of memory");
  make_line_buffer(&line, 5);
  for (size_t seq = 0; seq < count; seq++) {
    size_t len;
    size_t got = 0;
    const char *bytes = format_line(&line, seq, &len);
    double sent_at = bench_now();

    write_all(fd, bytes, len);
    while (got == 0 || reply[got - 1] != '\n')
      got += read_some(fd, reply + got, sizeof(reply) - got);
    rtts[seq] = bench_now() - sent_at;
    if (got != len)
      bench_fail("reply %zu is %zu bytes, expected %zu", seq, got, len);
  }
  free(line.memory);

  printf("rtt_median_us=%.2f rtt_p99_us=%.2f round_trips=%zu\n",
         bench_quantile(rtts + warmup, count - warmup, 0.5) * 1e6,
         bench_quantile(rtts + warmup, count - warmup, 0.99) * 1e6,
         count - warmup);
  free(rtts);
}

int main(int argc, char **argv) {
  size_t count;
  size_t size;
  bool pingpong;
  int fds[2];
  int status;
  pid_t pid;

  if (argc != 4)
    bench_fail("usage: ipc-floor throughput|pingpong COUNT SIZE");
  if (strcmp(argv[1], "throughput") != 0 && strcmp(argv[1], "pingpong") != 0)
    bench_fail("unknown mode '%s'", argv[1]);
  pingpong = strcmp(argv[1], "pingpong") == 0;
  count = bench_parse_size(argv[2], "COUNT");
  size = bench_parse_size(argv[3], "SIZE");
  if (count == 0)
    bench_fail("COUNT must be greater than 0");

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    bench_fail("socketpair: %s", strerror(errno));
  fflush(stdout);
  pid = fork();
  if (pid < 0)
    bench_fail("fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    if (pingpong)
      echo_lines(fds[1]);
    else
      stream_lines(fds[1], count, size);
    _exit(0);
  }

  close(fds[1]);
  if (pingpong)
    measure_round_trips(fds[0], count);
  else
    measure_throughput(fds[0], count, size);
  close(fds[0]);
  if (waitpid(pid, &status, 0) < 0)
    bench_fail("waitpid: %s", strerror(errno));
  return 0;
}
