/* Process descriptors (Linux 5.3 and later) and reaping with resource
 * usage. */
#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

/* waitid's id type for a pidfd (Linux 5.4). glibc 2.36 declares P_PIDFD as
 * an enumerator, which #ifdef cannot see, so the kernel's value is used
 * under a name of our own. */
#define CP__P_PIDFD 3

int cp__pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  /* A pidfd is close-on-exec without any flag. */
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -errno : (int)fd;
#else
  (void)pid;
  return -ENOSYS;
#endif
}

int cp__pidfd_send_signal(int pidfd, int signum) {
#ifdef SYS_pidfd_send_signal
  if (syscall(SYS_pidfd_send_signal, pidfd, signum, NULL, 0) != 0)
    return -errno;
  return 0;
#else
  (void)pidfd;
  (void)signum;
  return -ENOSYS;
#endif
}

static uint64_t timeval_to_us(struct timeval tv) {
  return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void fill_rusage(cp_rusage *out, const struct rusage *usage) {
  if (out == NULL)
    return;

  out->user_cpu_time_us = timeval_to_us(usage->ru_utime);
  out->system_cpu_time_us = timeval_to_us(usage->ru_stime);
  /* Linux reports ru_maxrss in KiB. */
  out->max_rss_kib = usage->ru_maxrss > 0 ? (uint64_t)usage->ru_maxrss : 0;
}

static void store_status(int *exit_code, int *signum, int code, int sig) {
  if (exit_code != NULL)
    *exit_code = code;
  if (signum != NULL)
    *signum = sig;
}

/* The raw waitid system call takes a struct rusage * as a fifth argument,
 * which glibc's waitid() wrapper does not expose. */
static int reap_pidfd(int pidfd, int *exit_code, int *signum,
                      cp_rusage *rusage) {
  siginfo_t info;
  struct rusage usage;
  long ret;

  memset(&info, 0, sizeof(info));
  memset(&usage, 0, sizeof(usage));
  do {
    ret = syscall(SYS_waitid, CP__P_PIDFD, pidfd, &info, WEXITED | WNOHANG,
                  &usage);
  } while (ret < 0 && errno == EINTR);

  if (ret < 0)
    return -errno;
  /* With WNOHANG, si_pid stays 0 while the child runs. */
  if (info.si_pid == 0)
    return 0;

  if (info.si_code == CLD_EXITED)
    store_status(exit_code, signum, info.si_status, 0);
  else
    store_status(exit_code, signum, -1, info.si_status);
  fill_rusage(rusage, &usage);
  return 1;
}

static int reap_pid(pid_t pid, int *exit_code, int *signum, cp_rusage *rusage) {
  int status = 0;
  struct rusage usage;
  pid_t ret;

  memset(&usage, 0, sizeof(usage));
  do {
    ret = wait4(pid, &status, WNOHANG, &usage);
  } while (ret < 0 && errno == EINTR);

  if (ret < 0)
    return -errno;
  if (ret == 0)
    return 0;

  if (WIFEXITED(status))
    store_status(exit_code, signum, WEXITSTATUS(status), 0);
  else
    store_status(exit_code, signum, -1, WTERMSIG(status));
  fill_rusage(rusage, &usage);
  return 1;
}

int cp__reap(int pidfd, pid_t pid, int *exit_code, int *signum,
             cp_rusage *rusage) {
  if (pidfd >= 0)
    return reap_pidfd(pidfd, exit_code, signum, rusage);
  return reap_pid(pid, exit_code, signum, rusage);
}
