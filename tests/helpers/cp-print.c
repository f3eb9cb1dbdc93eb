/*
 * Test helper: prints what the process was started with, one item per
 * line, so that a test can compare the output as a whole:
 *
 *   argv[0]=VALUE      one line per argument, argv[0] included
 *   cwd=PATH           the working directory, from getcwd(3)
 *   env=NAME=VALUE     one line per environment entry, in environ order
 *
 * Exits 0, or 1 with a message on stderr when the working directory
 * cannot be read or stdout cannot be written.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  char cwd[PATH_MAX];

  for (int i = 0; i < argc; i++)
    printf("argv[%d]=%s\n", i, argv[i]);

  if (getcwd(cwd, sizeof cwd) == NULL) {
    fprintf(stderr, "cp-print: getcwd failed: %s\n", strerror(errno));
    return 1;
  }
  printf("cwd=%s\n", cwd);

  for (char **entry = environ; *entry != NULL; entry++)
    printf("env=%s\n", *entry);

  if (fflush(stdout) != 0) {
    fprintf(stderr, "cp-print: writing stdout failed: %s\n", strerror(errno));
    return 1;
  }
  return 0;
}
