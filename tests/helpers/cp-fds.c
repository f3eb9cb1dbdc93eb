/*
 * Test helper: prints the numbers of the descriptors open in this process,
 * in ascending order, one per line, from the listing of /proc/self/fd. The
 * descriptor of that listing itself is left out. Exits 0, or 1 with a
 * message on stderr if /proc/self/fd cannot be read or lists more than 4096
 * descriptors.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_ints(const void *a, const void *b) {
  int x = *(const int *)a;
  int y = *(const int *)b;
  return (x > y) - (x < y);
}

int main(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) {
    fprintf(stderr, "cp-fds: failed to open /proc/self/fd: %s\n",
            strerror(errno));
    return 1;
  }

  int own_fd = dirfd(dir);
  int fds[4096];
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.')
      continue;
    int fd = atoi(entry->d_name);
    if (fd == own_fd)
      continue;
    if (count == sizeof(fds) / sizeof(*fds)) {
      fprintf(stderr, "cp-fds: more than %zu open descriptors\n", count);
      closedir(dir);
      return 1;
    }
    fds[count++] = fd;
  }
  closedir(dir);

  qsort(fds, count, sizeof(*fds), compare_ints);
  for (size_t i = 0; i < count; i++)
    printf("%d\n", fds[i]);
  return fflush(stdout) == 0 ? 0 : 1;
}
