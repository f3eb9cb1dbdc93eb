/*
 * Test helper: ignores SIGTERM, prints "ready" and a newline once it does,
 * then sleeps until another signal ends it. A test waits for "ready"
 * before sending SIGTERM, because the library starts every child with
 * default signal dispositions and only this program sets SIG_IGN.
 * Exits 1 with a message on stderr if SIGTERM cannot be ignored.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  struct sigaction ignore = {.sa_handler = SIG_IGN};

  if (sigaction(SIGTERM, &ignore, NULL) != 0) {
    fprintf(stderr, "cp-ignore-term: sigaction failed: %s\n",
            strerror(errno));
    return 1;
  }

  printf("ready\n");
  fflush(stdout);

  for (;;)
    pause();
}
