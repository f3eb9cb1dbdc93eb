/* Support shared by the test programs. */
#ifndef CP_TEST_UTIL_H
#define CP_TEST_UTIL_H

#include <uv.h>

/*
 * Runs loop until no active handle or request is left. If the loop is still
 * busy after timeout_ms milliseconds, prints the active handles to stderr
 * and fails the current cmocka test, leaving those handles open.
 *
 * The guard timer is unreferenced, so it never keeps the loop alive and is
 * closed again before the function returns.
 */
void cp_test_loop_run(uv_loop_t *loop, unsigned timeout_ms);

/*
 * Returns the path of the helper program built from tests/helpers/NAME.c
 * into CP_TEST_HELPER_DIR, and fails the current test if that program is
 * missing. The string is static, so the next call overwrites it.
 */
const char *cp_test_helper_path(const char *name);


/* ------------------------------------------------------------------------
 * Children: recording what a cp_child emits
 * ------------------------------------------------------------------------ */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "childproc.h"

/* Value of a record's exit fields until their event arrives. Every exit
 * code the library reports is above it, negative error codes included. */
#define CP_TEST_NOT_EMITTED INT_MIN

/* Bytes received on one of a child's streams. */
typedef struct cp_test_buffer {
  char *bytes; /* NUL-terminated, so text can be compared as a string */
  size_t len;
  size_t capacity;
} cp_test_buffer;

/*
 * Everything one child emitted, filled by cp_test_record_child(). Fields of
 * an event that was not emitted keep the values cp_test_record_init() gave
 * them.
 */
typedef struct cp_test_record {
  /* One letter per child event, in emit order: S spawn, X exit, C close,
   * E error. NUL-terminated. Events past the array's size are dropped and
   * counted in lost_events. */
  char events[16];
  size_t event_count;
  size_t lost_events;

  int exit_code; /* from EXIT, or CP_TEST_NOT_EMITTED before it */
  int exit_signal;
  cp_rusage rusage;
  int close_exit_code; /* from CLOSE, or CP_TEST_NOT_EMITTED before it */
  int close_signal;

  /* From the first ERROR. error is 0 until one arrives. */
  int error;
  char syscall[256];
  char path[4096];

  cp_test_buffer out; /* stdout */
  cp_test_buffer err; /* stderr */
  bool out_ended;     /* stdout emitted END */
  bool err_ended;

  /* Bytes of stdout received when SPAWN, EXIT and CLOSE were emitted. */
  size_t out_len_at_spawn;
  size_t out_len_at_exit;
  size_t out_len_at_close;
  bool out_ended_at_close;

  pid_t pid_at_spawn; /* cp_child_pid() inside the SPAWN listener */
  bool killed_at_exit;
  bool release_at_close; /* set by the test: release the child in CLOSE */
} cp_test_record;

void cp_test_record_init(cp_test_record *record);

/* Frees the record's buffers, after which the record can be initialized
 * again. */
void cp_test_record_free(cp_test_record *record);

/*
 * Adds listeners to child that fill record: SPAWN, EXIT, CLOSE and ERROR
 * on the child, DATA and END on its stdout and stderr streams if they are
 * pipes. Fails the test if a listener cannot be added. record must stay
 * valid until the child's CLOSE.
 */
void cp_test_record_child(cp_child *child, cp_test_record *record);

/* Same as cp_test_record_child() for the child's own events only, leaving
 * its streams without a listener. */
void cp_test_record_child_events(cp_child *child, cp_test_record *record);

/*
 * Calls cp_spawn() and records the child in record (initialized here).
 * Fails the test unless cp_spawn() returns 0.
 */
cp_child *cp_test_spawn(uv_loop_t *loop, const char *file,
                        const char *const *args,
                        const cp_spawn_options *options,
                        cp_test_record *record);

/*
 * Spawns like cp_test_spawn(), runs loop until the child's CLOSE (failing
 * the test after timeout_ms), releases the child and runs loop again so
 * that the child is freed. Returns the pid the child had, or 0 when it
 * failed to start.
 */
pid_t cp_test_run_child(uv_loop_t *loop, const char *file,
                        const char *const *args,
                        const cp_spawn_options *options,
                        cp_test_record *record, unsigned timeout_ms);

/*
 * Runs loop until every handle has closed (released children free
 * themselves there), then checks that uv_loop_close() returns 0, printing
 * the handles still open when it does not.
 */
void cp_test_loop_finish(uv_loop_t *loop);

/* Number of descriptors open in this process, from /proc/self/fd. */
size_t cp_test_count_fds(void);

/* Number of descriptors open in process pid, from /proc/PID/fd, or 0 when
 * that cannot be read. */
size_t cp_test_count_fds_of(pid_t pid);

/* Writes len bytes to the socket sock in one sendmsg(), with fd (unless
 * -1) as one SCM_RIGHTS descriptor on the first byte, as libuv sends a
 * handle. Fails the current test unless every byte was written. */
void cp_test_send_with_fd(int sock, const void *bytes, size_t len, int fd);

#endif
