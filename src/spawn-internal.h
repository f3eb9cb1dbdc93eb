/* Shared by the posix_spawn path (spawn-posix.c) and the fork path
 * (spawn-fork.c): the parent-side preparation both of them run before
 * starting the child. */
#ifndef CP_SPAWN_INTERNAL_H
#define CP_SPAWN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "spawn.h"

/*
 * The child's descriptor table, ready to apply in any slot order.
 * sources[i] is request->fds[i], except that a parent descriptor below
 * fd_count that is not its own target is replaced by a close-on-exec
 * duplicate at fd_count or above, so no dup2() into a slot can overwrite
 * the source of a later slot.
 */
typedef struct cp__fd_plan {
  int *sources; /* fd_count entries */
  size_t fd_count;
  int *duplicates; /* descriptors opened in the parent for the moves */
  size_t duplicate_count;
} cp__fd_plan;

/* Fills plan from fds. Returns 0 or a negative errno (-EINVAL for an fds
 * value below CP__FD_DEVNULL, -EBADF for a source that is not open). */
int cp__fd_plan_init(cp__fd_plan *plan, const int *fds, size_t fd_count);

/* Closes the duplicates and frees the plan. Safe on a zeroed plan. */
void cp__fd_plan_release(cp__fd_plan *plan);

/*
 * The paths to pass to execve, in order. With search false there is one
 * path, the file as given. With search true, there is one path per entry
 * of the PATH in envp, as glibc's execvp builds them: "entry/file", or
 * "file" alone for an empty entry (the current directory).
 */
typedef struct cp__exec_candidates {
  char **paths;
  size_t count;
  bool search;

  /* argv for running a candidate the kernel rejects with ENOEXEC:
   * "/bin/sh", then a NULL slot the caller sets to the candidate, then
   * argv[1] onwards. */
  char **script_argv;
} cp__exec_candidates;

/* Builds the candidates for request. Returns 0, -ENOENT for an empty file,
 * -ENAMETOOLONG for a searched file longer than NAME_MAX, or -ENOMEM. */
int cp__exec_candidates_init(cp__exec_candidates *candidates,
                             const cp__spawn_request *request);

/* Frees the candidates. Safe on a zeroed struct. */
void cp__exec_candidates_release(cp__exec_candidates *candidates);

/*
 * Whether a PATH search moves on to the next entry after an exec error
 * (a positive errno), as glibc's execvp does: the file is missing or not
 * executable there. Any other error stops the search and is reported.
 */
bool cp__exec_error_continues_search(int err);

/*
 * Starts the child with fork(), for what posix_spawn cannot express
 * (setuid, setgid), and for every request where posix_spawn cannot report
 * the child's errors. Same contract as cp__spawn_process().
 */
int cp__spawn_fork(const cp__spawn_request *request, const cp__fd_plan *plan,
                   const cp__exec_candidates *candidates, pid_t *pid_out);

#endif
