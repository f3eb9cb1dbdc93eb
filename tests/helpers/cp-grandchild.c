/*
 * Test helper for process-group tests: becomes the leader of a new process
 * group, starts two `sleep 30` grandchildren with cp_spawn(), one with
 * detached set and one without, and prints their process IDs:
 *
 *   detached=PID
 *   attached=PID
 *
 * It then runs its loop until both grandchildren end, so that a test can
 * signal this program's group while the grandchildren are alive. The
 * grandchildren's stdio is /dev/null, so they never keep this program's
 * stdout open. Exits 0 after both ended, or 1 with a message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "childproc.h"

static int start_sleep(uv_loop_t *loop, bool detached, cp_child **child_out) {
  static const char *const args[] = {"30", NULL};
  static const cp_stdio ignore[] = {
      {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_IGNORE},
      {.kind = CP_STDIO_IGNORE},
  };
  cp_spawn_options options = {
      .stdio = ignore,
      .stdio_count = 3,
      .detached = detached,
  };
  int r = cp_spawn(loop, "sleep", args, &options, child_out);

  if (r < 0) {
    fprintf(stderr, "cp-grandchild: cp_spawn failed: %s\n", cp_strerror(r));
    return -1;
  }
  if (cp_child_pid(*child_out) == 0) {
    fprintf(stderr, "cp-grandchild: sleep did not start\n");
    return -1;
  }
  return 0;
}

int main(void) {
  uv_loop_t loop;
  cp_child *detached = NULL;
  cp_child *attached = NULL;

  if (setpgid(0, 0) != 0) {
    fprintf(stderr, "cp-grandchild: setpgid failed: %s\n", strerror(errno));
    return 1;
  }
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "cp-grandchild: uv_loop_init failed\n");
    return 1;
  }

  if (start_sleep(&loop, true, &detached) != 0 ||
      start_sleep(&loop, false, &attached) != 0)
    return 1;

  printf("detached=%ld\nattached=%ld\n", (long)cp_child_pid(detached),
         (long)cp_child_pid(attached));
  fflush(stdout);

  cp_child_release(detached);
  cp_child_release(attached);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
