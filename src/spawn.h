/* Process creation: posix_spawn, with a fork path for uid and gid. */
#ifndef CP_SPAWN_H
#define CP_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "childproc.h"

/* Special values of cp__spawn_request.fds[i]. */
#define CP__FD_CLOSED (-1)  /* descriptor i stays closed in the child */
#define CP__FD_DEVNULL (-2) /* descriptor i is /dev/null, read-write */

typedef struct cp__spawn_request {
  const char *file;   /* searched in envp's PATH unless it has a slash */
  char *const *argv;  /* argv[0] included, NULL-terminated */
  char *const *envp;  /* never NULL */
  const char *cwd;    /* NULL: the parent's */
  const int *fds;     /* fds[i]: parent descriptor that becomes the child's i */
  size_t fd_count;    /* every descriptor >= fd_count is closed in the child */
  bool detached;      /* setsid() */
  bool set_uid;
  uid_t uid;
  bool set_gid;
  gid_t gid;
} cp__spawn_request;

/*
 * Starts the process. PATH search follows glibc's execvp, as Node on Linux
 * does: the PATH of envp (or "/bin:/usr/bin" when it has none), relative
 * entries taken relative to cwd, EACCES reported only if no entry could be
 * run, and a file the kernel rejects with ENOEXEC run by /bin/sh. Returns 0
 * and the pid, or a negative errno (ENOENT, EACCES, ENOTDIR for a bad cwd,
 * EPERM for uid/gid ...), in which case no process is left behind.
 */
int cp__spawn_process(const cp__spawn_request *request, pid_t *pid_out);

/* pidfd_open(2): a descriptor, close-on-exec, or a negative errno. */
int cp__pidfd_open(pid_t pid);

/* pidfd_send_signal(2): 0 or a negative errno. */
int cp__pidfd_send_signal(int pidfd, int signum);

/*
 * Reaps the child if it has exited, without blocking, through the pidfd
 * (pidfd >= 0) or the pid. Returns 1 and fills the outputs when reaped, 0
 * when the child still runs, or a negative errno. exit_code is -1 when the
 * child was killed, and signum 0 when it exited.
 */
int cp__reap(int pidfd, pid_t pid, int *exit_code, int *signum,
             cp_rusage *rusage);

#endif
