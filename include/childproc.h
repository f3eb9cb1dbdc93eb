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

#include <cjson/cJSON.h>
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
  XX(STREAM_NOT_WRITABLE, "the stream is not writable")                     \
  XX(MISSING_ARGS, "the message argument must be specified")                 \
  XX(IPC_CHANNEL_CLOSED, "channel closed")                                   \
  XX(IPC_DISCONNECTED, "IPC channel is already disconnected")                \
  XX(IPC_ONE_PIPE, "child process can have only one IPC pipe")               \
  XX(IPC_SYNC_FORK, "IPC cannot be used with synchronous forks")             \
  XX(CHILD_PROCESS_IPC_REQUIRED,                                             \
     "forked processes must have an IPC channel, missing 'ipc' in stdio")    \
  XX(IPC_INVALID_JSON, "a message from the peer is not valid JSON")          \
  XX(IPC_INVALID_UTF8, "a message from the peer is not valid UTF-8")        \
  XX(IPC_MESSAGE_TOO_LARGE, "a message is larger than the maximum size")    \
  XX(IPC_UNSUPPORTED_VALUE,                                                  \
     "a message holds a value C cannot represent: U+0000 or a lone "         \
     "surrogate in a string, or nesting deeper than 1000")                   \
  XX(IPC_UNSUPPORTED_SERIALIZATION,                                          \
     "only the json serialization is supported")                            \
  XX(INVALID_HANDLE_TYPE, "this handle type cannot be sent")               \
  XX(IPC_UNEXPECTED_HANDLE,                                                  \
     "a descriptor came without a NODE_HANDLE message, or with more than "   \
     "one; it was closed")                                                   \
  XX(IPC_UNEXPECTED_ACK,                                                     \
     "a NODE_HANDLE_ACK or NODE_HANDLE_NACK came for no handle sent")        \
  XX(IPC_HANDLE_NOT_RECEIVED,                                                \
     "a handle did not reach the receiving process")                         \
  XX(CHILD_PROCESS_STDIO_MAXBUFFER, "stdout or stderr passed maxBuffer")     \
  XX(COMMAND_FAILED, "the command exited with an error status or a signal")

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
typedef struct cp_channel cp_channel;

/* Events of a child (C), a stream (S) and the channel to a parent (P),
 * named as in Node. */
typedef enum cp_event_type {
  CP_EVENT_SPAWN = 1, /* C: the process started */
  CP_EVENT_EXIT,      /* C: the process ended: exit_code, signal, rusage */
  CP_EVENT_CLOSE,     /* C: exited and every stdio stream closed; S: closed */
  CP_EVENT_ERROR,     /* C, S: error, syscall, path */
  CP_EVENT_DATA,      /* S: data, len */
  CP_EVENT_END,       /* S: the readable side reached end of file */
  CP_EVENT_DRAIN,     /* S: the write buffer fell below the high-water mark */
  CP_EVENT_FINISH,    /* S: end() was called and every write was flushed */
  CP_EVENT_MESSAGE,   /* C, P: a message from the other side: message */
  CP_EVENT_INTERNAL_MESSAGE, /* C, P: a message whose cmd starts "NODE_" */
  CP_EVENT_DISCONNECT /* C, P: the IPC channel closed; emitted once */
} cp_event_type;

/*
 * What a descriptor sent over the IPC channel is, in Node's words: the
 * "type" of its NODE_HANDLE message. A Node.js receiver turns each into
 * the object of that name; the C receiver gets the descriptor and its type.
 */
typedef enum cp_handle_type {
  CP_HANDLE_NONE = 0,
  CP_HANDLE_NET_SERVER,   /* "net.Server": a listening TCP or Unix socket */
  CP_HANDLE_NET_SOCKET,   /* "net.Socket": a connected TCP or Unix socket */
  CP_HANDLE_NET_NATIVE,   /* "net.Native": a TCP or Unix socket, raw */
  CP_HANDLE_DGRAM_SOCKET, /* "dgram.Socket": a UDP socket */
  CP_HANDLE_DGRAM_NATIVE  /* "dgram.Native": a UDP socket, raw */
} cp_handle_type;

/*
 * A descriptor that travels with a message. To send one, set type and
 * either fd, or uv (a uv_tcp_t, uv_pipe_t or uv_udp_t on the channel's
 * loop) with fd unused; CP_HANDLE_FD() and CP_HANDLE_UV() build both
 * forms. A received one has fd set and uv NULL.
 *
 * Mind that fd 0 is a descriptor: a cp_handle with only its type set
 * sends stdin, and as CP_HANDLE_NET_SOCKET hands it over to be closed.
 *
 * Between C processes any descriptor can travel (a pipe, a file, a Unix
 * datagram socket), with any type. A Node.js receiver accepts only TCP,
 * UDP and Unix stream sockets and pipes: it aborts on a regular file or a
 * terminal, whatever the type.
 */
typedef struct cp_handle {
  cp_handle_type type;
  int fd;
  uv_handle_t *uv;

  /* Sending CP_HANDLE_NET_SOCKET through uv without keep_open only: the
   * library closes uv with uv_close(uv, close_cb) once the receiver has it.
   * May be NULL. */
  uv_close_cb close_cb;
} cp_handle;

/* A cp_handle for descriptor fd, or for uv handle h (any uv_*_t pointer),
 * as compound literals: cp_child_send(child, msg, &CP_HANDLE_FD(t, fd), ...). */
#define CP_HANDLE_FD(handle_type, descriptor)                                 \
  ((cp_handle){.type = (handle_type), .fd = (descriptor), .uv = NULL})
#define CP_HANDLE_UV(handle_type, h)                                          \
  ((cp_handle){.type = (handle_type), .fd = -1, .uv = (uv_handle_t *)(h)})

/* Node's name of a type ("net.Server"), or NULL for one that has none. */
const char *cp_handle_type_name(cp_handle_type type);

/* The type Node names name, or CP_HANDLE_NONE for an unknown name. */
cp_handle_type cp_handle_type_from_name(const char *name);

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

  /* CP_EVENT_MESSAGE and CP_EVENT_INTERNAL_MESSAGE: the parsed value,
   * freed after the listeners return unless one of them takes it with
   * cp_event_take_message(). */
  cJSON *message;

  /* The descriptor that came with the message, or NULL. The library
   * closes it after the listeners return unless one of them takes it with
   * cp_event_take_handle(). It is close-on-exec. */
  const cp_handle *handle;

  void *internal_; /* the library's; do not touch */
} cp_event;

/*
 * Takes ownership of a message event's value: the library will not free
 * it, and the caller frees it with cJSON_Delete(), but not from inside the
 * listener, since later listeners of the same event still receive it. Only
 * the first call for an event returns the value; later calls, and calls for
 * other event types, return NULL.
 */
cJSON *cp_event_take_message(const cp_event *event);

/*
 * Takes ownership of a message event's descriptor: the library will not
 * close it, and the caller closes it when done. Returns the descriptor, or
 * -ENOENT when the event has none or it was taken already, or
 * CP_ERR_INVALID_ARG_VALUE for an event that is not a message.
 */
int cp_event_take_handle(const cp_event *event);

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
  CP_STDIO_FD,      /* the descriptor in .fd, duplicated into the child */
  CP_STDIO_IPC      /* the IPC channel, at most one: Node's 'ipc' */
} cp_stdio_kind;

/* How messages are encoded on the IPC channel. */
typedef enum cp_serialization {
  CP_SERIALIZATION_JSON = 0, /* Node's 'json', the default */
  CP_SERIALIZATION_ADVANCED  /* Node's 'advanced': not supported yet */
} cp_serialization;

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

  /* With a CP_STDIO_IPC entry: the encoding, written to the child's
   * NODE_CHANNEL_SERIALIZATION_MODE; CP_SERIALIZATION_ADVANCED makes
   * cp_spawn() fail with CP_ERR_IPC_UNSUPPORTED_SERIALIZATION. */
  cp_serialization serialization;

  /* Beyond Node: the largest message accepted from the child, in bytes,
   * newline excluded; 0: 128 MiB. A longer one is skipped and reported. */
  size_t max_message_size;
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
 * events are still emitted, and it is still reaped. The library frees it
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
 * Node's exitCode: the exit status 0-255 once the child exited, or the
 * negative error code after a failed spawn. Otherwise it is -1, Node's null,
 * which is also the value for a child killed by a signal.
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
 * as cp_child_kill() or cp_child_kill_group(), or -ENOMEM, with nothing
 * sent, when there is no memory for the grace timer.
 */
int cp_child_terminate(cp_child *child, int signum, uint64_t grace_ms,
                       bool group);

/*
 * Node's ref() and unref(): an unref'd child, together with its stdio
 * streams, its IPC channel and its timers, does not keep uv_run() alive.
 * It is still reaped whenever the loop runs. Node's unref() leaves the
 * streams and the channel referenced.
 */
void cp_child_ref(cp_child *child);
void cp_child_unref(cp_child *child);

/* ------------------------------------------------------------------------
 * IPC: fork, send, disconnect
 *
 * The channel speaks Node's 'json' serialization byte for byte: one
 * JSON.stringify() text per message, UTF-8, ended by a newline, over a
 * socket pair whose child end is named by NODE_CHANNEL_FD. A Node.js child
 * sees process.send() and process.on('message'); a childproc child uses
 * cp_parent_channel_open().
 * ------------------------------------------------------------------------ */

typedef struct cp_fork_options {
  /* Every spawn option. stdio NULL means [0, 1, 2, 'ipc'] (inherited), or
   * with silent [pipe, pipe, pipe, 'ipc']; a given stdio array must hold a
   * CP_STDIO_IPC entry, else cp_fork() fails with
   * CP_ERR_CHILD_PROCESS_IPC_REQUIRED. spawn.shell must be NULL. */
  cp_spawn_options spawn;

  /* Node's execPath and execArgv: when exec_path is set, the child runs
   * exec_path with exec_argv, program and args (exec_path "node" runs a
   * Node.js script named by program). NULL: program is run itself. Copied. */
  const char *exec_path;
  const char *const *exec_argv;

  /* Node's silent: pipes instead of the parent's stdin, stdout, stderr. */
  bool silent;
} cp_fork_options;

/*
 * Starts program with an IPC channel, as Node's fork(). Everything
 * cp_spawn() says holds here too. Returns 0, the errors of cp_spawn(), or
 * CP_ERR_CHILD_PROCESS_IPC_REQUIRED. NODE_CHANNEL_FD and
 * NODE_CHANNEL_SERIALIZATION_MODE are set in the child's environment,
 * replacing any copy the given env has.
 */
int cp_fork(uv_loop_t *loop, const char *program, const char *const *args,
            const cp_fork_options *options, cp_child **child_out);

/*
 * Options of a send with a handle. keep_open is Node's keepOpen, and
 * matters only for CP_HANDLE_NET_SOCKET: without it the socket is handed
 * over, as in Node (see cp_child_send()).
 */
typedef struct cp_send_options {
  bool keep_open;
} cp_send_options;

/*
 * Called once per send when the message was written to the socket (status
 * 0), or could not be (a negative code: CP_ERR_IPC_CHANNEL_CLOSED when the
 * channel was closed before the write, EPIPE, ECONNRESET). Unlike Node, a
 * message dropped by a disconnect gets an error, not 0.
 */
typedef void (*cp_send_cb)(cp_child *child, int status, void *data);

/*
 * Node's send(message, handle, options, callback). message is serialized at
 * once and stays the caller's. handle may be NULL; options may be NULL; cb
 * may be NULL.
 *
 * Unlike Node, the call does not write to the socket: the messages sent
 * while a callback runs are written together, before the loop next waits
 * for I/O (at once when 64 KiB are queued). So the loop must run for a
 * message to leave; an unref'd channel keeps it running until what it
 * was given is written. A program that calls exit() right after a send,
 * without running the loop, loses the message.
 *
 * Returns 1, or 0 once more than 128 KiB of messages wait to be written, as
 * Node's send() returns false: nothing is dropped, but the caller should
 * wait for callbacks before sending more. When the channel is not connected
 * (after a disconnect, or for a child without one), the error
 * CP_ERR_IPC_CHANNEL_CLOSED goes to cb, or to an error event when cb is NULL,
 * and the call returns 0.
 *
 * Negative returns, for which nothing happens and the handle stays the
 * caller's:
 * - CP_ERR_MISSING_ARGS for a NULL message;
 * - CP_ERR_INVALID_ARG_VALUE for a value with invalid UTF-8 or a
 *   cJSON_Invalid item, or a uv handle of another loop;
 * - CP_ERR_INVALID_HANDLE_TYPE for CP_HANDLE_NONE or a type outside the
 *   enum, or a uv handle that is not TCP, pipe or UDP (UDP for the dgram
 *   types only);
 * - -EBADF for a descriptor that is not open; -ENOMEM; -EMFILE.
 *
 * A handle goes as Node sends one: the message travels inside a
 * NODE_HANDLE envelope whose first byte carries the descriptor, and every
 * later send waits, in order, until the receiver replies with
 * NODE_HANDLE_ACK or NODE_HANDLE_NACK. Those waiting count toward the
 * 128 KiB. cb reports the write of the envelope, as in Node, not the ACK.
 *
 * Who owns the descriptor:
 * - CP_HANDLE_NET_SOCKET without keep_open hands the socket over, as in
 *   Node: once the call returns 0 or 1 the library owns fd (or stops
 *   reading on uv), resends it after a NACK (three times at most, then an
 *   error event with CP_ERR_IPC_HANDLE_NOT_RECEIVED), and closes it (uv
 *   with the handle's close_cb) when the receiver acknowledges it, or the
 *   send fails, or the channel closes. Do not use it after the call.
 * - Every other type, and keep_open: the caller keeps its descriptor or
 *   handle, open and usable; the library sends a duplicate it made during
 *   the call, and closes that once written. A NACK is not retried.
 */
int cp_child_send(cp_child *child, const cJSON *message,
                  const cp_handle *handle, const cp_send_options *options,
                  cp_send_cb cb, void *data);

/*
 * The same for JSON text the caller already serialized, len bytes. The text
 * is checked (valid UTF-8 and JSON, no raw newline byte) and sent as it is,
 * so the peer receives exactly these bytes; CP_ERR_INVALID_ARG_VALUE when
 * the check fails.
 */
int cp_child_send_json(cp_child *child, const char *json, size_t len,
                       cp_send_cb cb, void *data);

/*
 * Node's disconnect(): no more messages either way. Messages already queued
 * are written first, then the channel closes, and CP_EVENT_DISCONNECT
 * follows. When not connected, emits an error event with
 * CP_ERR_IPC_DISCONNECTED at once, as Node does, and returns that code.
 */
int cp_child_disconnect(cp_child *child);

/* Node's connected: the child has an IPC channel that is not disconnected. */
bool cp_child_connected(const cp_child *child);

/* ------------------------------------------------------------------------
 * The channel to the parent, in a child started with an IPC channel
 * ------------------------------------------------------------------------ */

typedef void (*cp_channel_listener)(cp_channel *channel, const cp_event *event,
                                    void *data);

/*
 * Opens the channel that a parent started with fork() or an 'ipc' stdio
 * entry (Node.js or childproc) gave this process: the descriptor named by
 * NODE_CHANNEL_FD. Like Node, it removes NODE_CHANNEL_FD and
 * NODE_CHANNEL_SERIALIZATION_MODE from the environment, so this process's
 * own children do not inherit them. Returns 0 and the channel, which the
 * library owns until cp_channel_release(); -ENOENT when this process has no
 * channel (or it was opened already); -EBADF when the descriptor is not an
 * open socket; CP_ERR_IPC_UNSUPPORTED_SERIALIZATION for 'advanced'.
 *
 * As in Node, the channel keeps the loop alive only while it has a MESSAGE
 * or DISCONNECT listener, until cp_channel_ref() or cp_channel_unref() is
 * called, after which that call decides.
 */
int cp_parent_channel_open(uv_loop_t *loop, cp_channel **channel_out);

/* Events MESSAGE, INTERNAL_MESSAGE, DISCONNECT, ERROR and CLOSE, with the
 * rules of cp_child_on(). */
int cp_channel_on(cp_channel *channel, cp_event_type type,
                  cp_channel_listener fn, void *data);
int cp_channel_once(cp_channel *channel, cp_event_type type,
                    cp_channel_listener fn, void *data);
int cp_channel_off(cp_channel *channel, cp_event_type type,
                   cp_channel_listener fn, void *data);

typedef void (*cp_channel_send_cb)(cp_channel *channel, int status,
                                   void *data);

/* process.send(), process.disconnect(), process.connected: as the
 * cp_child_* functions of the same names, except that once the channel has
 * emitted CLOSE, send and disconnect only return CP_ERR_IPC_CHANNEL_CLOSED
 * and CP_ERR_IPC_DISCONNECTED, with no callback and no event. */
int cp_channel_send(cp_channel *channel, const cJSON *message,
                    const cp_handle *handle, const cp_send_options *options,
                    cp_channel_send_cb cb, void *data);
int cp_channel_send_json(cp_channel *channel, const char *json, size_t len,
                         cp_channel_send_cb cb, void *data);
int cp_channel_disconnect(cp_channel *channel);
bool cp_channel_connected(const cp_channel *channel);
void cp_channel_ref(cp_channel *channel);
void cp_channel_unref(cp_channel *channel);

/*
 * Releases the caller's interest. An open channel stays open and keeps
 * delivering events to its listeners until it closes; the library frees it
 * after CP_EVENT_CLOSE. Safe from inside a listener. Call it once.
 */
void cp_channel_release(cp_channel *channel);

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
 * CP_ERR_STREAM_ALREADY_FINISHED when called again after FINISH,
 * CP_ERR_STREAM_DESTROYED for a stream destroyed before it finished, or
 * -ENOMEM.
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
 * is removed when either stream closes. When dst closes first and src is
 * left with no destination and no DATA listener, src is destroyed, so the
 * writing child gets EPIPE or SIGPIPE as in a shell pipeline. Node leaves
 * it paused, and the child blocks on a full pipe. Also unlike Node,
 * cp_stream_resume() on a source that waits for a destination to drain
 * does not read until it has drained, and when the last link goes the
 * source keeps flowing only if it has a DATA listener and was not paused by
 * the caller. Returns 0,
 * CP_ERR_STREAM_NOT_READABLE, CP_ERR_STREAM_NOT_WRITABLE or -ENOMEM.
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

/* ------------------------------------------------------------------------
 * exec, execFile and the Sync functions
 * ------------------------------------------------------------------------ */

/*
 * Output captured from a child: the bytes it wrote, or the text they decode
 * to when an encoding is set. data is allocated with malloc() and always
 * NUL-terminated, with len excluding the NUL, so text can be used as a C
 * string. Raw bytes may contain NULs of their own.
 */
typedef struct cp_buffer {
  char *data;
  size_t len;
} cp_buffer;

/* Node's default maxBuffer, 1 MiB. */
#define CP_MAX_BUFFER_DEFAULT ((size_t)1024 * 1024)

/* A max_buffer without a limit, Node's `maxBuffer: Infinity`. */
#define CP_MAX_BUFFER_UNLIMITED SIZE_MAX

/* A max_buffer of no bytes at all, Node's exec `maxBuffer: 0`: any output
 * is an error. (0 itself means the default, so that zeroed options are
 * Node's defaults.) */
#define CP_MAX_BUFFER_NONE (SIZE_MAX - 1)

typedef struct cp_exec_options {
  /*
   * The options of cp_spawn(): cwd, env, argv0, detached, uid and gid,
   * shell, timeout, kill_signal, kill_grace and kill_group. Differences:
   * - stdio must be NULL: stdin, stdout and stderr are always pipes;
   * - shell NULL means CP_SHELL_DEFAULT for cp_exec() and no shell for
   *   cp_exec_file();
   * - when the timeout passes or an output passes max_buffer, stdout and
   *   stderr are closed and the child gets kill_signal (0: SIGTERM). With
   *   kill_group the signal goes to its process group. A kill_grace other
   *   than 0 sends SIGKILL that many milliseconds later.
   */
  cp_spawn_options spawn;

  /* The encoding of stdout and stderr. NULL: "utf8", Node's default.
   * "buffer": the raw bytes. Also "latin1", "hex" and "base64". */
  const char *encoding;

  /* The maximum number of bytes each of stdout and stderr may write. 0
   * means CP_MAX_BUFFER_DEFAULT, CP_MAX_BUFFER_UNLIMITED no limit, and
   * CP_MAX_BUFFER_NONE no output at all. */
  size_t max_buffer;
} cp_exec_options;

/* What a cp_exec_error reports. */
typedef enum cp_exec_error_kind {
  CP_EXEC_ERROR_EXIT = 1,   /* the child exited with a non-zero status */
  CP_EXEC_ERROR_SIGNAL,     /* a signal ended the child */
  CP_EXEC_ERROR_SYSTEM,     /* spawn failed (ENOENT ...), or a kill the
                               kernel rejected, a failed read, -ENOMEM */
  CP_EXEC_ERROR_MAX_BUFFER  /* stdout or stderr passed max_buffer */
} cp_exec_error_kind;

/* Node's exec error object. Every pointer is borrowed for the callback. */
typedef struct cp_exec_error {
  cp_exec_error_kind kind;

  /* Node's code: the exit status (EXIT), -1 for Node's null (SIGNAL), the
   * negative error code (SYSTEM, e.g. -ENOENT), or
   * CP_ERR_CHILD_PROCESS_STDIO_MAXBUFFER (MAX_BUFFER). */
  int code;

  /* The signal that ended the child, or 0. Node leaves it unset for
   * SYSTEM and MAX_BUFFER errors; here it is always filled in. */
  int signal;

  /* Node's killed: the library signalled the child (timeout, max_buffer or
   * cp_child_kill()). */
  bool killed;

  /* Beyond Node: the timeout passed. */
  bool timed_out;

  /* Node's cmd: the command for cp_exec(); the file and the arguments
   * joined by spaces for cp_exec_file(). */
  const char *cmd;

  /* Node's message: "Command failed: CMD\nSTDERR" (EXIT, SIGNAL),
   * "spawn FILE ENOENT" (SYSTEM), "stdout maxBuffer length exceeded". */
  const char *message;

  /* SYSTEM only, else NULL: Node's syscall ("spawn /bin/sh"), path and
   * spawnargs (the arguments after argv[0], NULL-terminated). */
  const char *syscall;
  const char *path;
  const char *const *spawnargs;

  /* The output so far, the same buffers the callback receives. */
  cp_buffer *stdout_buf;
  cp_buffer *stderr_buf;
} cp_exec_error;

/*
 * Called once, when the child has ended and its output is complete, with
 * error NULL when the child exited with status 0 and nothing went wrong.
 * Everything passed is borrowed and freed after the callback returns, with
 * one exception: the callback may take a buffer's data by setting the
 * buffer's data to NULL, and must then free() it itself. A buffer's data
 * is NULL only when memory ran out, and error then reports -ENOMEM.
 */
typedef void (*cp_exec_cb)(const cp_exec_error *error, cp_buffer *stdout_buf,
                           cp_buffer *stderr_buf, void *data);

/*
 * Node's exec(command, options, callback): runs command through the shell
 * ("/bin/sh -c command" by default) and collects its stdout and stderr.
 *
 * loop: kept until the callback has run; the memory of the call is freed
 * on the loop's next iteration. command: copied. options: NULL for all
 * defaults; copied. cb: may be NULL to ignore the outcome; data is passed
 * to it unchanged.
 *
 * child_out: NULL, or receives the child, which the caller then owns as
 * with cp_spawn() and releases with cp_child_release(). Through it the
 * caller can write to stdin, signal the child or add listeners. As in
 * Node, stdin then stays open until the caller ends it. Without child_out
 * nobody can write to stdin, so it is ended at once, and a command that
 * reads it gets end of file rather than waiting forever. Do not set an
 * encoding on the child's stdout or stderr: use options->encoding.
 *
 * max_buffer counts the bytes the child wrote to each stream, before
 * decoding, as Node v20 does. A stream that passes it keeps exactly its
 * first max_buffer bytes, and a UTF-8 character cut there is dropped.
 * Node cuts decoded text by UTF-16 units instead, and may return more.
 *
 * Returns 0; CP_ERR_INVALID_ARG_VALUE for a NULL loop, a NULL or empty
 * command, a stdio array, or anything cp_spawn() rejects;
 * CP_ERR_UNKNOWN_ENCODING (Node silently returns bytes instead); or
 * -ENOMEM. Then nothing was started and cb is never called. A command that
 * cannot start reaches cb as a SYSTEM error, as Node reports it.
 */
int cp_exec(uv_loop_t *loop, const char *command,
            const cp_exec_options *options, cp_exec_cb cb, void *data,
            cp_child **child_out);

/*
 * Node's execFile(file, args, options, callback): runs file with args
 * (NULL-terminated, NULL for none; copied) without a shell unless
 * options->spawn.shell is set, otherwise as cp_exec(). Unlike Node's
 * execFile, argv0 and detached are passed on to the child.
 */
int cp_exec_file(uv_loop_t *loop, const char *file, const char *const *args,
                 const cp_exec_options *options, cp_exec_cb cb, void *data,
                 cp_child **child_out);

typedef struct cp_spawn_sync_options {
  /* Every option of cp_spawn(), stdio included. The timeout closes every
   * pipe and sends kill_signal (to the group with kill_group, then SIGKILL
   * after kill_grace when set), and the result's error is -ETIMEDOUT. */
  cp_spawn_options spawn;

  /* Node's input: written to the child's stdin, which is then closed.
   * stdin must be a pipe when input_len > 0. Borrowed for the call. */
  const void *input;
  size_t input_len;

  /* NULL or "buffer": output is raw bytes, Node's default here. Also
   * "utf8", "latin1", "hex" and "base64". */
  const char *encoding;

  /* The maximum number of bytes all output pipes together may write, as
   * Node's spawnSync counts stdout and stderr together. Past it the child
   * is killed with kill_signal, every pipe is closed, and the result's
   * error is -ENOBUFS. The output keeps exactly the first max_buffer
   * bytes, where Node may keep up to one 64 KiB read more. 0 means
   * CP_MAX_BUFFER_DEFAULT (Node's 0 means no limit here),
   * CP_MAX_BUFFER_UNLIMITED no limit, and CP_MAX_BUFFER_NONE no output. */
  size_t max_buffer;
} cp_spawn_sync_options;

/* Node's spawnSync() result, and the fields of execSync()'s error. */
typedef struct cp_spawn_sync_result {
  pid_t pid; /* 0 when the process did not start */

  /* One entry per stdio slot (at least 3), with data NULL where the slot
   * is not an output pipe: always for stdin. output is NULL and
   * output_count 0 when the process did not start, as Node's null. */
  cp_buffer *output;
  size_t output_count;

  /* &output[1] and &output[2], or NULL where that slot is not a pipe. */
  cp_buffer *stdout_buf;
  cp_buffer *stderr_buf;

  /* The exit status 0-255, or -1 (Node's null) when a signal ended the
   * child or it did not start. */
  int status;

  /* The signal that ended the child, or 0. */
  int signal;

  /* Beyond Node: the child's resource usage; zero when it did not start. */
  cp_rusage rusage;

  /*
   * Node's error: 0, or the first failure among: the failure to start
   * (-ENOENT ...), -ETIMEDOUT, -ENOBUFS for max_buffer, and a kill the
   * kernel rejected. Only when none of these happened, an error on a pipe,
   * such as -EPIPE when the child exits without reading all of input.
   */
  int error;

  /* Set together with error, else NULL: Node's syscall "spawnSync FILE",
   * path FILE, and spawnargs, the arguments after argv[0]
   * (NULL-terminated). FILE is the shell when shell was set. */
  char *syscall;
  char *path;
  char **spawnargs;

  /* Node's message: "spawnSync FILE ETIMEDOUT" when error is set; for a
   * failed cp_exec_sync() or cp_exec_file_sync(), "Command failed: CMD"
   * followed by a newline and stderr when stderr is not empty. Else NULL. */
  char *message;
} cp_spawn_sync_result;

/*
 * Node's spawnSync(file, args, options): runs the child to its end and
 * returns everything it wrote, blocking the calling thread. It needs no
 * loop: each call runs its own uv_loop_t, so it may be called from any
 * thread, also from inside a callback of another loop, whose handles do
 * not run meanwhile. Input is written and every output pipe read at the
 * same time, so no amount of input or output deadlocks. Pipes past stderr
 * are read like stdout, and their write side is closed at once.
 *
 * file, args: as for cp_spawn(); copied. options: NULL for all defaults;
 * borrowed for the call. result_out: receives a result that the caller
 * frees with cp_spawn_sync_result_free(). The caller may take a buffer's
 * data by setting it to NULL, and must then free() it.
 *
 * Returns 0 whenever a result was produced, also when the child failed to
 * start or was killed: see result->error. Returns CP_ERR_INVALID_ARG_VALUE
 * (what cp_spawn() rejects, input without a stdin pipe),
 * CP_ERR_UNKNOWN_ENCODING or -ENOMEM with *result_out NULL; in the first
 * two cases nothing was started.
 */
int cp_spawn_sync(const char *file, const char *const *args,
                  const cp_spawn_sync_options *options,
                  cp_spawn_sync_result **result_out);

/*
 * Node's execSync(command, options): cp_spawn_sync() of command through
 * the shell (spawn.shell NULL means CP_SHELL_DEFAULT).
 *
 * Returns 0 when the command exited with status 0 and result->error is 0.
 * Otherwise returns what Node throws, with *result_out filled as Node
 * fills the thrown error: result->error when it is set (message
 * "spawnSync /bin/sh ETIMEDOUT"), else CP_ERR_COMMAND_FAILED for a
 * non-zero status or a signal (message "Command failed: ..."; Node's error
 * has no code here). Invalid arguments and -ENOMEM are returned as by
 * cp_spawn_sync(), with *result_out NULL.
 *
 * As in Node, when options->spawn.stdio is NULL, the child's stderr is
 * also written to this process's stderr (descriptor 2) once the child has
 * ended; set stdio to capture it silently.
 */
int cp_exec_sync(const char *command, const cp_spawn_sync_options *options,
                 cp_spawn_sync_result **result_out);

/*
 * Node's execFileSync(file, args, options): cp_spawn_sync() without a shell
 * unless spawn.shell is set, with the errors and the stderr copy of
 * cp_exec_sync(). CMD in "Command failed: CMD" is argv0 (or file) and the
 * arguments, joined by spaces.
 */
int cp_exec_file_sync(const char *file, const char *const *args,
                      const cp_spawn_sync_options *options,
                      cp_spawn_sync_result **result_out);

/* Frees a result and every buffer and string in it. NULL is ignored. */
void cp_spawn_sync_result_free(cp_spawn_sync_result *result);

#ifdef __cplusplus
}
#endif

#endif /* CHILDPROC_H */
