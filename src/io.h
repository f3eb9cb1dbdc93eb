/* Descriptor I/O that never raises SIGPIPE and reports errors as -errno. */
#ifndef CP_IO_H
#define CP_IO_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Writes iov to fd once (a partial write is possible). Returns the bytes
 * written or a negative errno (-EAGAIN when the descriptor is full). A write
 * to a pipe whose reader is gone returns -EPIPE without a SIGPIPE reaching
 * the process: sockets use MSG_NOSIGNAL, pipes block SIGPIPE in the calling
 * thread around the write and consume the signal the write raised.
 */
ssize_t cp__writev(int fd, const struct iovec *iov, int iovcnt, bool is_socket);

/* read(2) returning a negative errno; EINTR is retried. */
ssize_t cp__read(int fd, void *buf, size_t len);

/* Sets or clears O_NONBLOCK. Returns 0 or a negative errno. */
int cp__set_nonblock(int fd, bool nonblock);

/* The pending error of a socket (SO_ERROR) as a negative errno, 0 when
 * there is none; for a descriptor that is not a socket, -ENOTSOCK. */
int cp__socket_error(int fd);

/* close(2) that keeps errno and ignores fd < 0. Returns -1 for reuse as
 * `fd = cp__close(fd);`. */
int cp__close(int fd);

#endif
