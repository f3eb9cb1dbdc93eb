/*
 * childproc: Node.js's child_process for C programs, on libuv.
 *
 * Conventions that hold for every function below unless its comment says
 * otherwise:
 *
 * - Functions that can fail return 0 (or a documented non-negative value)
 *   on success and a negative error code on failure. OS errors are negative
 *   errno values, the same numbers as libuv's UV_E* codes; library errors are
 *   the CP_ERR_* codes below, named as Node names them. cp_err_name() and
 *   cp_strerror() turn any code into text.
 * - A call that fails synchronously starts nothing and never invokes a
 *   listener or callback for that call.
 * - Failures that Node reports asynchronously (a missing executable, a write
 *   to a closed pipe) arrive as CP_EVENT_ERROR events with the code and the
 *   syscall. An error event that no listener receives goes to the handler
 *   set with cp_set_unhandled_error_handler(), which by default prints one
 *   line to stderr.
 * - Every object is bound to the uv_loop_t it was created on and must be used
 *   only from that loop's thread. Listeners run on that thread, from inside
 *   uv_run().
 * - Options structs mean Node's defaults when zeroed, so
 *   `cp_spawn_options opts = {0};` is a complete set of options.
 * - Pointer parameters are borrowed for the duration of the call unless the
 *   comment says "copied" (the library keeps its own copy) or "kept" (the
 *   caller must keep it valid for the stated time).
 */
#ifndef CHILDPROC_H
#define CHILDPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP_VERSION_MAJOR 0
#define CP_VERSION_MINOR 1
#define CP_VERSION_PATCH 0

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/*
 * Library error codes, as negative numbers below -5000 so that they never
 * collide with a negative errno value or with libuv's own codes (UV_EOF is
 * -4095). XX(name, message) lists each one; CP_ERR_<name> is its value.
 */
#define CP_ERRNO_MAP(XX)                                                      \
  XX(INVALID_ARG_TYPE, "an argument has the wrong type")                     \
  XX(INVALID_ARG_VALUE, "an argument has an invalid value")                  \
  XX(UNKNOWN_SIGNAL, "unknown signal")                                       \
  XX(UNKNOWN_ENCODING, "unknown encoding")                                   \
  XX(STREAM_WRITE_AFTER_END, "write after end")                              \
  XX(STREAM_DESTROYED, "cannot call write after a stream was destroyed")     \
  XX(STREAM_ALREADY_FINISHED, "end was called after the stream finished")    \
  XX(STREAM_NOT_READABLE, "the stream is not readable")                      \
  XX(STREAM_NOT_WRITABLE, "the stream is not writable")

typedef enum cp_errno {
  CP_ERR_BASE_ = -5000,
#define CP_ERR_ENUM_(name, message) CP_ERR_##name,
  CP_ERRNO_MAP(CP_ERR_ENUM_)
#undef CP_ERR_ENUM_
  CP_ERR_END_
} cp_errno;

/*
 * Returns the name of an error code: "ENOENT" for -ENOENT,
 * "ERR_STREAM_DESTROYED" for CP_ERR_STREAM_DESTROYED, "EOF" for UV_EOF.
 * The string is static. An unknown code gives "UNKNOWN".
 */
const char *cp_err_name(int err);

/* Returns a one-sentence description of an error code. The string is static. */
const char *cp_strerror(int err);

/* ------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------ */

/*
 * Returns the signal number for a name as Node spells it ("SIGTERM",
 * "SIGKILL"), including real-time signals written "SIGRTMIN", "SIGRTMIN+3",
 * "SIGRTMAX-1". Case does not matter ("sigterm"), as in Node's kill().
 * Returns CP_ERR_UNKNOWN_SIGNAL for anything else, a number in a string
 * included, as Node's kill() does.
 */
int cp_signal_from_name(const char *name);

/*
 * Returns the name of a signal number ("SIGTERM", "SIGRTMIN+2"), or NULL for
 * a number that is not a signal. The string is static.
 */
const char *cp_signal_name(int signum);

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

typedef struct cp_child cp_child;
typedef struct cp_stream cp_stream;

/* Events of a child (C) and of a stream (S), named as in Node. */
typedef enum cp_event_type {
  CP_EVENT_SPAWN = 1, /* C: the process started */
  CP_EVENT_EXIT,      /* C: the process ended: exit_code, signal, rusage */
  CP_EVENT_CLOSE,     /* C: exited and every stdio stream closed; S: closed */
  CP_EVENT_ERROR,     /* C, S: error, syscall, path */
  CP_EVENT_DATA,      /* S: data, len */
  CP_EVENT_END,       /* S: the readable side reached end of file */
  CP_EVENT_DRAIN,     /* S: the write buffer fell below the high-water mark */
  CP_EVENT_FINISH     /* S: end() was called and every write was flushed */
} cp_event_type;

/* Resource usage of an exited child, as from wait4(2). */
typedef struct cp_rusage {
  uint64_t user_cpu_time_us;   /* user CPU time, microseconds */
  uint64_t system_cpu_time_us; /* system CPU time, microseconds */
  uint64_t max_rss_kib;        /* peak resident set size, KiB */
} cp_rusage;

/*
 * One emitted event. Listeners receive it borrowed: every pointer in it is
 * valid only until the listener returns. Fields that do not belong to the
 * event's type are zero or NULL.
 */
typedef struct cp_event {
  cp_event_type type;

  /* CP_EVENT_ERROR: a negative error code, the failed operation as Node
   * names it ("spawn /bin/ls", "kill", "write", "read"), and for spawn
   * errors the file that failed to start. */
  int error;
  const char *syscall;
  const char *path;

  /* CP_EVENT_EXIT and the child's CP_EVENT_CLOSE. exit_code is the exit
   * status 0-255, or -1 when the child was killed by a signal (Node's null),
   * or after a failed spawn the negative error code, as Node reports it.
   * signal is the terminating signal number, 0 when there is none. */
  int exit_code;
  int signal;
  const cp_rusage *rusage; /* CP_EVENT_EXIT only */

  /* CP_EVENT_DATA: the bytes read, or the decoded text when an encoding is
   * set (then NUL-terminated, and len excludes the NUL). */
  const char *data;
  size_t len;
} cp_event;

typedef void (*cp_child_listener)(cp_child *child, const cp_event *event,
                                  void *data);
typedef void (*cp_stream_listener)(cp_stream *stream, const cp_event *event,
                                   void *data);

/*
 * Handler for error events that no listener received. err is the event;
 * object is the cp_child or cp_stream that emitted it. NULL restores the
 * default, which prints one line to stderr. The handler is process-wide and
 * may be called from any loop's thread.
 */
typedef void (*cp_unhandled_error_handler)(const void *object,
                                           const cp_event *err);
void cp_set_unhandled_error_handler(cp_unhandled_error_handler handler);

/* ------------------------------------------------------------------------
 * spawn
 * ------------------------------------------------------------------------ */

/* What a child's descriptor i is connected to. */
typedef enum cp_stdio_kind {
  CP_STDIO_DEFAULT = 0, /* Node's undefined: PIPE for 0-2, IGNORE for 3 on */
  CP_STDIO_PIPE,    /* a new pipe whose parent end is cp_child_stdio(i);
                       0-2 are pipes, 3 on are duplex socket pairs */
  CP_STDIO_INHERIT, /* the parent's own descriptor i */
  CP_STDIO_IGNORE,  /* /dev/null for 0-2; closed for 3 on */
  CP_STDIO_FD       /* the descriptor in .fd, duplicated into the child */
} cp_stdio_kind;

typedef struct cp_stdio {
  cp_stdio_kind kind;
  int fd; /* CP_STDIO_FD only: borrowed; may be closed once cp_spawn returns */
} cp_stdio;

#define CP_SHELL_DEFAULT "/bin/sh"

typedef struct cp_spawn_options {
  /* Working directory of the child; NULL: the parent's. Copied. */
  const char *cwd;

  /* The child's environment, a NULL-terminated array of "NAME=value"
   * strings; NULL: the parent's environ at the time of the call. The
   * executable is searched in this environment's PATH. Copied. */
  const char *const *env;

  /* argv[0] seen by the child; NULL: file. Copied. */
  const char *argv0;

  /* One entry per child descriptor, stdio_count of them. NULL: three
   * CP_STDIO_PIPE entries. Entries past 2 with CP_STDIO_PIPE become duplex
   * socket pairs at that descriptor number. Copied. */
  const cp_stdio *stdio;
  size_t stdio_count;

  /* Start the child in a new session (setsid): it survives its parent and a
   * signal to its parent's process group. */
  bool detached;

  /* Set the child's user and group IDs. These two options take the fork
   * path described at cp_spawn(). */
  bool set_uid;
  uid_t uid;
  bool set_gid;
  gid_t gid;

  /* Run file and args as one command line through this shell ("-c");
   * NULL: no shell. CP_SHELL_DEFAULT is Node's `shell: true`. Copied. */
  const char *shell;

  /* Send kill_signal to the child when it runs longer than this many
   * milliseconds; 0: no limit. kill_signal 0 means SIGTERM. */
  uint64_t timeout;
  int kill_signal;

  /* Beyond Node: after the timeout's kill_signal, send SIGKILL if the child
   * is still running this many milliseconds later; 0: never. */
  uint64_t kill_grace;

  /* Beyond Node: the timeout's signals go to the child's whole process
   * group. Needs detached. */
  bool kill_group;
} cp_spawn_options;

/*
 * Starts a child process, as Node's spawn(file, args, options).
 *
 * loop: the loop the child and its streams live on; kept until the child is
 *   freed.
 * file: the program; searched in PATH unless it contains a slash. Copied.
 * args: the arguments after argv[0], a NULL-terminated array; NULL: none.
 *   Copied.
 * options: NULL: all defaults. Copied.
 * child_out: receives the child, owned by the library until the caller
 *   calls cp_child_release(). Set to NULL when the call fails.
 *
 * Returns 0, or CP_ERR_INVALID_ARG_VALUE when file is NULL or empty, an env
 * entry has no '=', a stdio entry has an unknown kind or a negative fd,
 * kill_group is set without detached, or kill_signal is not a signal; then
 * nothing is started. C strings cannot hold a NUL, so Node's check for a
 * NUL inside an argument has no counterpart here.
 *
 * Once the call returns 0, a failure to start the process (ENOENT, EACCES,
 * ENOTDIR for a bad cwd, EPERM for uid/gid, EMFILE ...) is reported as
 * Node does: pid stays 0, CP_EVENT_ERROR is emitted on the next loop
 * iteration with syscall "spawn FILE", no spawn or exit event follows, and
 * CP_EVENT_CLOSE follows with exit_code set to the error code. On success
 * CP_EVENT_SPAWN is emitted on the next loop iteration, before any data.
 *
 * Processes are created with posix_spawn (CLONE_VFORK), whose cost does not
 * grow with the parent's memory. Only set_uid and set_gid take a fork()
 * path, whose cost does. The child gets exactly the descriptors in stdio:
 * every other descriptor of the parent is closed in it, close-on-exec or
 * not. Signal dispositions and the signal mask are reset to defaults in the
 * child, except that on the posix_spawn path glibc (2.36) leaves its two
 * internal signals, 32 and 33, ignored.
 */
int cp_spawn(uv_loop_t *loop, const char *file, const char *const *args,
             const cp_spawn_options *options, cp_child **child_out);

/* ------------------------------------------------------------------------
 * ChildProcess
 * ------------------------------------------------------------------------ */

/*
 * Adds a listener for one of the child's events (SPAWN, EXIT, CLOSE,
 * ERROR). Listeners run in the order they were added; a listener added
 * during an emit is first called on the next emit of that event. data is
 * passed back to the listener unchanged. Returns 0, -ENOMEM, or
 * CP_ERR_INVALID_ARG_VALUE for a NULL listener or an event type a child does
 * not emit.
 */
int cp_child_on(cp_child *child, cp_event_type type, cp_child_listener fn,
                void *data);

/* Same as cp_child_on(), but the listener is removed before its first call. */
int cp_child_once(cp_child *child, cp_event_type type, cp_child_listener fn,
                  void *data);

/*
 * Removes the most recently added listener with this type, function and
 * data, as Node's removeListener does. A listener removed during an emit is
 * not called later in that emit (Node would still call it; here its data
 * may already be freed). Returns 0, or -ENOENT when no listener matches.
 */
int cp_child_off(cp_child *child, cp_event_type type, cp_child_listener fn,
                 void *data);

/*
 * Releases the caller's interest in the child. The child keeps running, its
 * events are still emitted, and it is still reaped; the library frees it
 * once CP_EVENT_CLOSE has been emitted and its handles are closed. The
 * pointer, its streams and everything they returned stay valid inside the
 * child's and streams' listeners until then, and must not be used outside
 * them after this call. Calling it from one of the child's listeners is
 * safe. Call it once.
 */
void cp_child_release(cp_child *child);

/* The loop the child lives on. */
uv_loop_t *cp_child_loop(const cp_child *child);

/* The process ID, or 0 before the process started or when it failed to. */
pid_t cp_child_pid(const cp_child *child);

/*
 * Node's exitCode: the exit status 0-255 once the child exited, the negative
 * error code after a failed spawn, otherwise -1 (Node's null; also when the
 * child was killed by a signal).
 */
int cp_child_exit_code(const cp_child *child);

/* Node's signalCode: the signal that ended the child, or 0. */
int cp_child_signal_code(const cp_child *child);

/* Node's killed: whether a signal sent with cp_child_kill() was delivered. */
bool cp_child_killed(const cp_child *child);

/*
 * Resource usage of the exited child, or NULL before it exited. Valid as
 * long as the child.
 */
const cp_rusage *cp_child_resource_usage(const cp_child *child);

/* Node's spawnfile: the file that was run (the shell when shell is set).
 * Valid as long as the child. */
const char *cp_child_spawnfile(const cp_child *child);

/* Node's spawnargs: the full argv, argv[0] included, NULL-terminated.
 * Valid as long as the child. */
const char *const *cp_child_spawnargs(const cp_child *child);

/*
 * The parent's end of the child's descriptor i when that slot is a pipe,
 * otherwise NULL (also for i past the last slot). The stream belongs to the
 * child and is valid as long as the child.
 */
cp_stream *cp_child_stdio(const cp_child *child, size_t i);
size_t cp_child_stdio_count(const cp_child *child);
cp_stream *cp_child_stdin(const cp_child *child);
cp_stream *cp_child_stdout(const cp_child *child);
cp_stream *cp_child_stderr(const cp_child *child);

/*
 * Sends signum to the child, as Node's kill(): through a pidfd, so a process
 * that reused the child's PID is never signalled. signum 0 only checks that
 * the process exists.
 *
 * Returns 1 when the signal was delivered (and sets killed), 0 when it was
 * not: the child was never started, has been reaped, or the kernel refused
 * the signal (EPERM), in which case an error event with syscall "kill" is
 * emitted. Returns CP_ERR_UNKNOWN_SIGNAL for a number that is not a named
 * signal (32 and 33, which glibc keeps for itself, included), and -EINVAL
 * or -ENOSYS where Node's kill() throws them.
 */
int cp_child_kill(cp_child *child, int signum);

/* Same as cp_child_kill() with a signal name; NULL means "SIGTERM". */
int cp_child_kill_name(cp_child *child, const char *signal_name);

/*
 * Beyond Node: sends signum to the detached child's whole process group,
 * grandchildren included. Allowed only until the child is reaped, since only
 * then is the group's ID certain to be the child's. Returns 1 or 0 as
 * cp_child_kill(), CP_ERR_UNKNOWN_SIGNAL, or CP_ERR_INVALID_ARG_VALUE when
 * the child was not spawned detached.
 */
int cp_child_kill_group(cp_child *child, int signum);

/*
 * Beyond Node: sends signum (to the process group when group is true), then
 * SIGKILL if the child has not exited grace_ms milliseconds later. Returns
 * as cp_child_kill() or cp_child_kill_group().
 */
int cp_child_terminate(cp_child *child, int signum, uint64_t grace_ms,
                       bool group);

/*
 * Node's ref() and unref(): an unref'd child, together with its stdio
 * streams and its timers, does not keep uv_run() alive. It is still reaped
 * whenever the loop runs.
 */
void cp_child_ref(cp_child *child);
void cp_child_unref(cp_child *child);

/* ------------------------------------------------------------------------
 * Streams: the parent's ends of the child's pipes
 * ------------------------------------------------------------------------ */

/*
 * Adds a listener for one of the stream's events (DATA, END, ERROR, CLOSE,
 * DRAIN, FINISH), with the rules of cp_child_on(). Adding a DATA listener
 * starts the flow of data unless cp_stream_pause() was called, as in Node.
 */
int cp_stream_on(cp_stream *stream, cp_event_type type, cp_stream_listener fn,
                 void *data);
int cp_stream_once(cp_stream *stream, cp_event_type type,
                   cp_stream_listener fn, void *data);
int cp_stream_off(cp_stream *stream, cp_event_type type, cp_stream_listener fn,
                  void *data);

/* The child the stream belongs to. */
cp_child *cp_stream_child(const cp_stream *stream);

/* The parent's descriptor for the pipe, or -1 once the stream is closed. */
int cp_stream_fileno(const cp_stream *stream);

/* Whether the stream can still be read from / written to. */
bool cp_stream_readable(const cp_stream *stream);
bool cp_stream_writable(const cp_stream *stream);

/*
 * Called once per cp_stream_write() when the bytes have been written to the
 * pipe (status 0) or could not be (a negative error code).
 */
typedef void (*cp_write_cb)(cp_stream *stream, int status, void *data);

/*
 * Queues len bytes for the child. buf is copied; cb may be NULL.
 *
 * Returns 1 while the bytes buffered stay below the high-water mark and 0
 * once they reach it, as Node's write() returns true and false: wait for
 * CP_EVENT_DRAIN before writing more. The return value is computed before
 * the bytes are written, as in Node, so a single write of at least the
 * high-water mark returns 0 and DRAIN follows. Write callbacks always run
 * from the loop, never from inside this call. Callbacks of accepted writes
 * run in the order of the writes; a rejected write's callback (after end,
 * below) may run before those of earlier writes, as in Node.
 *
 * Failures are reported as in Node, and the call then returns 0:
 * - a write after cp_stream_end() passes CP_ERR_STREAM_WRITE_AFTER_END to cb
 *   and to an error event;
 * - a write the pipe refuses (EPIPE once the child closed its end) fails,
 *   with every write queued behind it, with that error in cb and in one
 *   error event with syscall "write", after which the stream closes;
 * - the child's stdin is destroyed when the child exits, as in Node: writes
 *   still queued and every later write get -EPIPE in cb, and queued bytes
 *   that were lost are reported by an error event;
 * - a write after cp_stream_destroy() passes CP_ERR_STREAM_DESTROYED to cb
 *   only, since no event follows CLOSE.
 * SIGPIPE is never raised in the parent: writes to a pipe block it in the
 * writing thread and consume the one they cause; writes to a socket use
 * MSG_NOSIGNAL. Returns CP_ERR_STREAM_NOT_WRITABLE for a read-only stream,
 * CP_ERR_INVALID_ARG_VALUE for a NULL stream or a NULL buf with len > 0,
 * and -ENOMEM.
 */
int cp_stream_write(cp_stream *stream, const void *buf, size_t len,
                    cp_write_cb cb, void *data);

/*
 * Node's end(): no more writes. Once every queued write is flushed, the
 * write side is shut down and CP_EVENT_FINISH is emitted; a stream that is
 * only writable then closes. Returns 0, CP_ERR_STREAM_NOT_WRITABLE,
 * CP_ERR_STREAM_ALREADY_FINISHED when called again after FINISH, or
 * CP_ERR_STREAM_DESTROYED for a stream destroyed before it finished.
 */
int cp_stream_end(cp_stream *stream);

/* Bytes accepted by cp_stream_write() and not yet written to the pipe. */
size_t cp_stream_writable_length(const cp_stream *stream);

/* The write high-water mark in bytes; 16 KiB by default, as in Node. */
size_t cp_stream_writable_high_water_mark(const cp_stream *stream);
void cp_stream_set_writable_high_water_mark(cp_stream *stream, size_t bytes);

/*
 * Node's pause() and resume(). A paused stream stops reading from the pipe,
 * so a child that keeps writing blocks instead of the parent buffering
 * without bound. cp_stream_is_paused() is Node's isPaused(): false for a new
 * stream that nobody reads yet, true after pause and while a pipe waits for
 * its destination to drain. Return 0 or CP_ERR_STREAM_NOT_READABLE.
 */
int cp_stream_pause(cp_stream *stream);
int cp_stream_resume(cp_stream *stream);
bool cp_stream_is_paused(const cp_stream *stream);

/*
 * Node's setEncoding(): DATA events carry decoded text instead of bytes,
 * and a character is never split across two events. Encodings: "utf8" (or
 * "utf-8"), "latin1" (or "binary"), "hex", "base64"; invalid UTF-8 becomes
 * U+FFFD, as Node's StringDecoder does. NULL returns to raw bytes. Returns
 * 0, CP_ERR_UNKNOWN_ENCODING or CP_ERR_STREAM_NOT_READABLE.
 */
int cp_stream_set_encoding(cp_stream *stream, const char *encoding);

/*
 * Node's readable.pipe(destination, {end}): every chunk read from src is
 * written to dst; src pauses while dst is above its high-water mark and
 * resumes on dst's DRAIN, so memory stays bounded whatever the two
 * processes' speeds. When end is true, dst is ended when src ends. The link
 * is removed when either stream closes; when dst closes first and src is
 * left with no destination and no DATA listener, src is destroyed, so the
 * writing child gets EPIPE or SIGPIPE as in a shell pipeline (Node leaves it
 * paused, and the child blocks on a full pipe). Also unlike Node, cp_stream_resume() on a
 * source that waits for a destination to drain does not read until it has
 * drained, and when the last link goes the source keeps flowing only if it
 * has a DATA listener and was not paused by the caller. Returns 0,
 * CP_ERR_STREAM_NOT_READABLE or CP_ERR_STREAM_NOT_WRITABLE.
 */
int cp_stream_pipe(cp_stream *src, cp_stream *dst, bool end);

/* Node's unpipe(destination); a NULL dst removes every destination of src.
 * Returns 0, or -ENOENT when not piped. */
int cp_stream_unpipe(cp_stream *src, cp_stream *dst);

/*
 * Node's destroy(): closes the descriptor at once, discarding unread input
 * and unwritten output (their write callbacks get CP_ERR_STREAM_DESTROYED),
 * then emits CP_EVENT_CLOSE.
 */
void cp_stream_destroy(cp_stream *stream);

/* ref/unref for this stream alone; see cp_child_unref(). */
void cp_stream_ref(cp_stream *stream);
void cp_stream_unref(cp_stream *stream);

#ifdef __cplusplus
}
#endif

#endif /* CHILDPROC_H */
