/*
 * Process creation with fork(), for requests that set the child's user or
 * group, because posix_spawn has no attribute for setuid or setgid. Every
 * request takes this path where posix_spawn cannot report the child's
 * errors (see spawn-posix.c).
 *
 * Between fork() and execve() the child may call only async-signal-safe
 * functions, because the parent may have other threads holding locks that
 * the child's copy would never release. Everything that allocates (the
 * candidate paths, the /bin/sh argv, the descriptor plan) is prepared in
 * the parent before fork().
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn-internal.h"

typedef struct fork_child_setup {
  const cp__spawn_request *request;
  const cp__fd_plan *plan;
  const cp__exec_candidates *candidates;
  int error_fd;   /* write end of the error pipe, at fd_count or above */
  int highest_fd; /* bound for closing descriptors one by one */
} fork_child_setup;

/* In the child: sends err to the parent and exits. If the write fails the
 * parent reads end of file and takes the child for started, which is the
 * best this side can do. */
static _Noreturn void report_and_exit(int error_fd, int err) {
  ssize_t written;
  do {
    written = write(error_fd, &err, sizeof(err));
  } while (written < 0 && errno == EINTR);
  _exit(127);
}

/* In the child. Returns 0 or an errno. */
static int set_credentials(const cp__spawn_request *request) {
  if (!request->set_uid && !request->set_gid)
    return 0;

  /* Drops root's supplementary groups. libuv ignores a failure here, as an
   * unprivileged caller may still set its own gid, and so does this. */
  (void)setgroups(0, NULL);

  if (request->set_gid && setgid(request->gid) != 0)
    return errno;
  if (request->set_uid && setuid(request->uid) != 0)
    return errno;
  return 0;
}

/* In the child: opens /dev/null at target. Returns 0 or an errno. */
static int open_devnull_at(int target) {
  int fd = open("/dev/null", O_RDWR);
  if (fd < 0)
    return errno;
  if (fd == target)
    return 0;

  int err = dup2(fd, target) < 0 ? errno : 0;
  close(fd);
  return err;
}

/* In the child: fills the descriptor slots. The plan guarantees that no
 * slot's source is overwritten before it is used. Returns 0 or an errno. */
static int apply_descriptors(const cp__fd_plan *plan) {
  for (size_t i = 0; i < plan->fd_count; i++) {
    int source = plan->sources[i];
    int target = (int)i;

    if (source == CP__FD_CLOSED) {
      /* EBADF only means the slot was not open. */
      close(target);
    } else if (source == CP__FD_DEVNULL) {
      int err = open_devnull_at(target);
      if (err != 0)
        return err;
    } else if (source == target) {
      int flags = fcntl(target, F_GETFD);
      if (flags < 0 || fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) < 0)
        return errno;
    } else if (dup2(source, target) < 0) {
      return errno;
    }
  }
  return 0;
}

/* In the child: closes first..last, one by one when the kernel lacks
 * close_range (before Linux 5.9). Returns 0 or an errno. */
static int close_descriptor_range(unsigned int first, unsigned int last,
                                  int highest_fd) {
  if (close_range(first, last, 0) == 0)
    return 0;
  if (errno != ENOSYS)
    return errno;

  for (unsigned int fd = first; fd <= last && fd <= (unsigned int)highest_fd;
       fd++)
    close((int)fd);
  return 0;
}

/* In the child: closes every descriptor at fd_count or above except the
 * error pipe, which closes itself on execve. Returns 0 or an errno. */
static int close_other_descriptors(const fork_child_setup *setup) {
  unsigned int first = (unsigned int)setup->plan->fd_count;
  unsigned int error_fd = (unsigned int)setup->error_fd;
  int err = 0;

  if (error_fd > first)
    err = close_descriptor_range(first, error_fd - 1, setup->highest_fd);
  if (err == 0)
    err = close_descriptor_range(error_fd + 1, ~0U, setup->highest_fd);
  return err;
}

/* In the child: every disposition back to SIG_DFL, then no signal blocked.
 * The mask was inherited full from the parent, so no handler of the parent
 * can run in the child before its disposition is reset. */
static void reset_signals(void) {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);

  /* glibc rejects its internal signals (32 and 33) with EINVAL, which is
   * harmless, and SIGKILL and SIGSTOP cannot be changed. */
  for (int signum = 1; signum < _NSIG; signum++) {
    if (signum != SIGKILL && signum != SIGSTOP)
      sigaction(signum, &action, NULL);
  }

  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child: execve each candidate as glibc's execvp does. Returns the
 * errno to report, only if nothing could be run. */
static int exec_candidates(const fork_child_setup *setup) {
  const cp__spawn_request *request = setup->request;
  const cp__exec_candidates *candidates = setup->candidates;
  bool got_eacces = false;
  int err = ENOENT;

  for (size_t i = 0; i < candidates->count; i++) {
    char *path = candidates->paths[i];

    execve(path, request->argv, request->envp);
    err = errno;
    if (err == ENOEXEC) {
      /* The child's own copy of the array, so writing it is safe. */
      candidates->script_argv[1] = path;
      execve(candidates->script_argv[0], candidates->script_argv,
             request->envp);
      err = errno;
    }

    if (!candidates->search || !cp__exec_error_continues_search(err))
      return err;
    got_eacces = got_eacces || err == EACCES;
  }

  return got_eacces ? EACCES : err;
}

/*
 * The child's side of fork(). The directory changes before the user and
 * group do, while still privileged, as libuv does for Node: root can start
 * an unprivileged child in a directory that only root may enter.
 */
static _Noreturn void run_child(const fork_child_setup *setup) {
  const cp__spawn_request *request = setup->request;
  int err = 0;

  if (request->detached && setsid() < 0)
    err = errno;
  if (err == 0 && request->cwd != NULL && chdir(request->cwd) != 0)
    err = errno;
  if (err == 0)
    err = set_credentials(request);
  if (err == 0)
    err = apply_descriptors(setup->plan);
  if (err == 0)
    err = close_other_descriptors(setup);
  if (err != 0)
    report_and_exit(setup->error_fd, err);

  reset_signals();
  report_and_exit(setup->error_fd, exec_candidates(setup));
}

/* Opens the pipe that carries the child's errno, both ends close-on-exec,
 * the write end at fd_count or above so that the descriptor slots and the
 * closing of every higher descriptor leave it alone. */
static int open_error_pipe(int pipe_fds[2], size_t fd_count) {
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    return -errno;
  if ((size_t)pipe_fds[1] >= fd_count)
    return 0;

  int moved = fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, (int)fd_count);
  int err = moved < 0 ? -errno : 0;
  close(pipe_fds[1]);
  pipe_fds[1] = moved;
  if (err != 0)
    close(pipe_fds[0]);
  return err;
}

static void wait_for_exit(pid_t pid) {
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

/* Reads the child's report: 0 at end of file (execve succeeded), or the
 * positive errno the child sent. A failed read is a negative errno. */
static int read_child_error(int fd) {
  int child_err = 0;
  ssize_t got;
  do {
    got = read(fd, &child_err, sizeof(child_err));
  } while (got < 0 && errno == EINTR);

  if (got < 0)
    return -errno;
  return got == (ssize_t)sizeof(child_err) ? child_err : 0;
}

static int highest_descriptor(void) {
  long open_max = sysconf(_SC_OPEN_MAX);
  if (open_max <= 0 || open_max > INT_MAX)
    return INT_MAX;
  return (int)(open_max - 1);
}

int cp__spawn_fork(const cp__spawn_request *request, const cp__fd_plan *plan,
                   const cp__exec_candidates *candidates, pid_t *pid_out) {
  int pipe_fds[2];
  int err = open_error_pipe(pipe_fds, plan->fd_count);
  if (err != 0)
    return err;

  fork_child_setup setup = {
      .request = request,
      .plan = plan,
      .candidates = candidates,
      .error_fd = pipe_fds[1],
      .highest_fd = highest_descriptor(),
  };

  /* With every signal blocked, no handler of the parent runs in the child
   * before the child resets the dispositions. */
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  err = pthread_sigmask(SIG_SETMASK, &all, &saved);
  if (err != 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return -err;
  }

  pid_t pid = fork();
  if (pid == 0)
    run_child(&setup);
  int fork_err = pid < 0 ? errno : 0;

  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  close(pipe_fds[1]);

  if (pid < 0) {
    close(pipe_fds[0]);
    return -fork_err;
  }

  err = read_child_error(pipe_fds[0]);
  close(pipe_fds[0]);

  if (err < 0) {
    /* The child's state is unknown, so it is stopped rather than left
     * running behind an error. */
    kill(pid, SIGKILL);
  }
  if (err != 0) {
    wait_for_exit(pid);
    return err < 0 ? err : -err;
  }

  *pid_out = pid;
  return 0;
}
