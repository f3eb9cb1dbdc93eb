/*
 * Test helper: drops root privileges, then calls cp_spawn() for a child
 * running as root, and prints the child's events, one line each:
 *
 *   cp-spawn-unprivileged ID FILE
 *
 * sets this process's user and group IDs to ID (dropping supplementary
 * groups), then spawns FILE with set_uid and uid 0. Event lines:
 *
 *   spawn
 *   error NAME SYSCALL|PATH   NAME as from cp_err_name()
 *   exit EXIT_CODE SIGNAL
 *   close EXIT_CODE SIGNAL
 *
 * Exits 0 once the child closed and the loop closed cleanly, 1 with a
 * message on stderr when dropping privileges or spawning failed, and 2 on
 * a usage error. Must start as root.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "childproc.h"

static void print_event(cp_child *child, const cp_event *event, void *data) {
  (void)child;
  (void)data;

  switch (event->type) {
  case CP_EVENT_SPAWN:
    printf("spawn\n");
    break;
  case CP_EVENT_ERROR:
    printf("error %s %s|%s\n", cp_err_name(event->error),
           event->syscall != NULL ? event->syscall : "(null)",
           event->path != NULL ? event->path : "(null)");
    break;
  case CP_EVENT_EXIT:
    printf("exit %d %d\n", event->exit_code, event->signal);
    break;
  case CP_EVENT_CLOSE:
    printf("close %d %d\n", event->exit_code, event->signal);
    break;
  default:
    printf("unexpected event %d\n", (int)event->type);
    break;
  }
}

static int drop_privileges(long id) {
  if (setgroups(0, NULL) != 0 || setgid((gid_t)id) != 0 ||
      setuid((uid_t)id) != 0) {
    fprintf(stderr, "cp-spawn-unprivileged: dropping privileges failed: %s\n",
            strerror(errno));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const cp_event_type types[] = {CP_EVENT_SPAWN, CP_EVENT_ERROR,
                                        CP_EVENT_EXIT, CP_EVENT_CLOSE};
  cp_spawn_options options = {.set_uid = true, .uid = 0};
  uv_loop_t loop;
  cp_child *child;
  char *end;
  long id = argc == 3 ? strtol(argv[1], &end, 10) : -1;

  if (argc != 3 || *argv[1] == '\0' || *end != '\0' || id <= 0) {
    fprintf(stderr, "usage: cp-spawn-unprivileged ID FILE\n");
    return 2;
  }
  if (drop_privileges(id) != 0)
    return 1;
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "cp-spawn-unprivileged: uv_loop_init failed\n");
    return 1;
  }

  int r = cp_spawn(&loop, argv[2], NULL, &options, &child);
  if (r < 0) {
    fprintf(stderr, "cp-spawn-unprivileged: cp_spawn failed: %s\n",
            cp_err_name(r));
    return 1;
  }
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    cp_child_on(child, types[i], print_event, NULL);

  uv_run(&loop, UV_RUN_DEFAULT);
  cp_child_release(child);
  uv_run(&loop, UV_RUN_DEFAULT);
  fflush(stdout);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
