/*
 * Test helper that ends in a chosen way.
 *
 *   cp-exit STATUS   exits with STATUS (0 to 255)
 *   cp-exit -s N     sends itself signal N with kill(2)
 *
 * Signal N is not unblocked and its disposition is not changed, so a test
 * can check what the child inherited. If the signal does not end the
 * process, cp-exit prints a message to stderr and exits 125. A usage error
 * exits 126.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_number(const char *text, long max, long *out) {
  char *end;
  long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 0 || value > max)
    return -1;
  *out = value;
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: cp-exit STATUS | cp-exit -s SIGNAL_NUMBER\n");
  return 126;
}

int main(int argc, char **argv) {
  long value;

  if (argc == 2) {
    if (parse_number(argv[1], 255, &value) != 0)
      return usage();
    return (int)value;
  }

  if (argc != 3 || strcmp(argv[1], "-s") != 0 ||
      parse_number(argv[2], 64, &value) != 0)
    return usage();

  kill(getpid(), (int)value);
  fprintf(stderr, "cp-exit: signal %ld did not end the process\n", value);
  return 125;
}
