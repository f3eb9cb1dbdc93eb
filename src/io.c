/* Descriptor I/O for the streams: negative errno results, no SIGPIPE. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static ssize_t sendmsg_nosignal(int fd, const struct iovec *iov, int iovcnt) {
  struct msghdr message = {.msg_iov = (struct iovec *)iov,
                           .msg_iovlen = (size_t)iovcnt};
  ssize_t n;

  do
    n = sendmsg(fd, &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

/* Removes a SIGPIPE pending for this thread, where it is blocked, if there
 * is one. */
static void consume_sigpipe(const sigset_t *sigpipe_only) {
  const struct timespec no_wait = {0, 0};

  while (sigtimedwait(sigpipe_only, NULL, &no_wait) < 0 && errno == EINTR)
    ;
}

static size_t iov_total(const struct iovec *iov, int iovcnt) {
  size_t total = 0;

  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  return total;
}

/*
 * A pipe has no MSG_NOSIGNAL, so SIGPIPE is blocked in this thread for the
 * duration of the write, and the SIGPIPE that the write raised (the kernel
 * directs it to the writing thread) is consumed before the mask is
 * restored. Linux's pipe_write() raises it when it finds no reader: with
 * EPIPE when nothing was written, and with a short count when the reader
 * went away while a blocking write waited for room. A SIGPIPE that was
 * already pending before the write came from someone else and is left
 * alone.
 */
static ssize_t writev_without_sigpipe(int fd, const struct iovec *iov,
                                      int iovcnt) {
  sigset_t sigpipe_only;
  sigset_t old_mask;
  sigset_t pending;
  bool was_pending;
  bool may_have_raised;
  ssize_t n;
  int err;

  sigemptyset(&sigpipe_only);
  sigaddset(&sigpipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe_only, &old_mask);

  sigpending(&pending);
  was_pending = sigismember(&pending, SIGPIPE) == 1;

  do
    n = writev(fd, iov, iovcnt);
  while (n < 0 && errno == EINTR);
  err = errno;

  may_have_raised = n < 0 ? err == EPIPE : (size_t)n < iov_total(iov, iovcnt);
  if (may_have_raised && !was_pending)
    consume_sigpipe(&sigpipe_only);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

  return n < 0 ? -err : n;
}

ssize_t cp__writev(int fd, const struct iovec *iov, int iovcnt,
                   bool is_socket) {
  if (is_socket)
    return sendmsg_nosignal(fd, iov, iovcnt);
  return writev_without_sigpipe(fd, iov, iovcnt);
}

ssize_t cp__read(int fd, void *buf, size_t len) {
  ssize_t n;

  do
    n = read(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

int cp__set_nonblock(int fd, bool nonblock) {
  int flags = fcntl(fd, F_GETFL);
  int new_flags;

  if (flags < 0)
    return -errno;

  new_flags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (new_flags != flags && fcntl(fd, F_SETFL, new_flags) < 0)
    return -errno;
  return 0;
}

/* Linux releases the descriptor even when close() fails with EINTR, so a
 * retry could close a descriptor another thread just opened. */
int cp__close(int fd) {
  int saved_errno = errno;

  if (fd >= 0)
    close(fd);
  errno = saved_errno;
  return -1;
}

int cp__socket_error(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);

  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
    return -errno;
  return -error;
}
