/*
 * Test helper: uses CPU_MS milliseconds of its own CPU time in a busy loop,
 * then exits 0, so that the child's resource usage reports a non-zero user
 * CPU time.
 *
 *   cp-spin CPU_MS
 *
 * CPU time, not wall-clock time, is counted, so a loaded machine makes the
 * program run longer instead of using less CPU. A usage error exits 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_seconds(void) {
  struct timespec now;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  char *end;
  long cpu_ms = argc == 2 ? strtol(argv[1], &end, 10) : -1;

  if (argc != 2 || *argv[1] == '\0' || *end != '\0' || cpu_ms < 0) {
    fprintf(stderr, "usage: cp-spin CPU_MS\n");
    return 2;
  }

  /* volatile keeps the compiler from removing the loop. */
  volatile unsigned long counter = 0;
  double stop = cpu_seconds() + (double)cpu_ms / 1000.0;
  while (cpu_seconds() < stop) {
    for (int i = 0; i < 10000; i++)
      counter++;
  }
  return 0;
}
