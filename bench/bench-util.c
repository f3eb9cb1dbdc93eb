#include "bench-util.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bench_fail(const char *format, ...) {
  va_list args;

  fprintf(stderr, "%s: ", program_invocation_short_name);
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
  exit(1);
}

size_t bench_parse_size(const char *text, const char *what) {
  char *end;
  unsigned long long value;
  unsigned shift = 0;

  errno = 0;
  value = strtoull(text, &end, 10);
  if (end == text || errno != 0)
    bench_fail("invalid %s '%s': expected a number such as 1000 or 64K",
               what, text);
  if (*end == 'K')
    shift = 10;
  else if (*end == 'M')
    shift = 20;
  else if (*end == 'G')
    shift = 30;
  if (shift != 0)
    end++;
  if (*end != '\0' || value > (SIZE_MAX >> shift))
    bench_fail("invalid %s '%s': expected a number such as 1000 or 64K",
               what, text);
  return (size_t)(value << shift);
}

char *bench_ballast(size_t bytes) {
  char *memory;

  if (bytes == 0)
    return NULL;
  memory = malloc(bytes);
  if (memory == NULL)
    bench_fail("cannot allocate a ballast of %zu bytes", bytes);
  /* Not zero: a zero fill could leave pages shared with the zero page. */
  memset(memory, 1, bytes);
  return memory;
}

void bench_raise_fd_limit(void) {
  struct rlimit limit;

  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    bench_fail("getrlimit: %s", strerror(errno));
  if (limit.rlim_cur == limit.rlim_max)
    return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    bench_fail("setrlimit: %s", strerror(errno));
}

double bench_rss_kib(void) {
  FILE *file = fopen("/proc/self/statm", "r");
  unsigned long size = 0;
  unsigned long resident = 0;

  if (file == NULL)
    bench_fail("/proc/self/statm: %s", strerror(errno));
  if (fscanf(file, "%lu %lu", &size, &resident) != 2)
    bench_fail("/proc/self/statm: unexpected contents");
  fclose(file);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1024.0;
}

double bench_heap_bytes(void) {
  struct mallinfo2 info = mallinfo2();

  return (double)info.uordblks + (double)info.hblkhd;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;

  return (x > y) - (x < y);
}

double bench_quantile(double *values, size_t count, double q) {
  size_t rank;

  if (count == 0)
    return 0;
  qsort(values, count, sizeof(*values), compare_doubles);
  rank = (size_t)ceil(q * (double)count);
  return values[rank == 0 ? 0 : rank - 1];
}

double bench_stream_bytes(size_t count, size_t size) {
  /* {"seq": DIGITS ,"data":" TEXT "} and the newline: 19 bytes and TEXT
   * besides the digits. */
  double bytes = (double)count * (double)(size + 19);
  size_t start = 0; /* the first number with this many digits */
  size_t limit = 10; /* the first number with one digit more */

  for (unsigned digits = 1; start < count; digits++) {
    size_t end = limit < count ? limit : count;

    bytes += (double)(end - start) * digits;
    start = limit;
    limit *= 10;
  }
  return bytes;
}
