/* cp_spawn(): options to a started child with its stdio streams. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child-internal.h"
#include "io.h"
#include "spawn.h"
#include "stream.h"

/* Node pads the stdio array to three entries. */
enum { MIN_STDIO = 3 };

static cp_stdio_kind resolve_kind(const cp_spawn_options *options, size_t i) {
  cp_stdio_kind kind = CP_STDIO_DEFAULT;

  if (options->stdio == NULL)
    return i < MIN_STDIO ? CP_STDIO_PIPE : CP_STDIO_IGNORE;
  if (i < options->stdio_count)
    kind = options->stdio[i].kind;
  if (kind == CP_STDIO_DEFAULT)
    kind = i < MIN_STDIO ? CP_STDIO_PIPE : CP_STDIO_IGNORE;
  return kind;
}

static size_t stdio_count(const cp_spawn_options *options) {
  if (options->stdio == NULL || options->stdio_count < MIN_STDIO)
    return MIN_STDIO;
  return options->stdio_count;
}

static int validate(uv_loop_t *loop, const char *file,
                    const cp_spawn_options *options, cp_child **child_out) {
  if (loop == NULL || child_out == NULL || file == NULL || file[0] == '\0')
    return CP_ERR_INVALID_ARG_VALUE;

  if (options->env != NULL) {
    for (const char *const *entry = options->env; *entry != NULL; entry++) {
      if (strchr(*entry, '=') == NULL)
        return CP_ERR_INVALID_ARG_VALUE;
    }
  }

  size_t ipc_count = 0;
  for (size_t i = 0; options->stdio != NULL && i < options->stdio_count; i++) {
    const cp_stdio *entry = &options->stdio[i];

    if (entry->kind < CP_STDIO_DEFAULT || entry->kind > CP_STDIO_IPC)
      return CP_ERR_INVALID_ARG_VALUE;
    if (entry->kind == CP_STDIO_FD && entry->fd < 0)
      return CP_ERR_INVALID_ARG_VALUE;
    if (entry->kind == CP_STDIO_IPC && ++ipc_count > 1)
      return CP_ERR_IPC_ONE_PIPE;
  }

  if (options->serialization == CP_SERIALIZATION_ADVANCED)
    return CP_ERR_IPC_UNSUPPORTED_SERIALIZATION;
  if (options->serialization != CP_SERIALIZATION_JSON)
    return CP_ERR_INVALID_ARG_VALUE;

  if (options->kill_group && !options->detached)
    return CP_ERR_INVALID_ARG_VALUE;
  if (options->kill_signal != 0 && cp_signal_name(options->kill_signal) == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  return 0;
}

/* Node's shell form: the file and its arguments joined by spaces. */
static char *join_command(const char *file, const char *const *args) {
  size_t len = strlen(file) + 1;
  char *command;
  char *end;

  for (const char *const *arg = args; arg != NULL && *arg != NULL; arg++)
    len += strlen(*arg) + 1;

  command = malloc(len);
  if (command == NULL)
    return NULL;

  end = stpcpy(command, file);
  for (const char *const *arg = args; arg != NULL && *arg != NULL; arg++) {
    *end++ = ' ';
    end = stpcpy(end, *arg);
  }
  return command;
}

/* Copies count strings into one block: count + 1 pointers, the last NULL,
 * followed by the text they point to. Returns NULL when out of memory. */
static char **pack_strings(const char *const *strings, size_t count) {
  size_t size = (count + 1) * sizeof(char *);
  char **block;
  char *text;

  for (size_t i = 0; i < count; i++)
    size += strlen(strings[i]) + 1;

  block = malloc(size);
  if (block == NULL)
    return NULL;

  text = (char *)(block + count + 1);
  for (size_t i = 0; i < count; i++) {
    block[i] = text;
    text = stpcpy(text, strings[i]) + 1;
  }
  block[count] = NULL;
  return block;
}

/* The shell form: the shell runs file and its arguments joined by spaces. */
static int build_shell_command(cp_child *child, const char *file,
                               const char *const *args,
                               const cp_spawn_options *options) {
  const char *argv0 = options->argv0 != NULL ? options->argv0 : options->shell;
  char *joined = join_command(file, args);

  if (joined == NULL)
    return -ENOMEM;

  child->command = pack_strings(
      (const char *const[]){options->shell, argv0, "-c", joined}, 4);
  free(joined);
  return child->command != NULL ? 0 : -ENOMEM;
}

/* Builds spawnfile and spawnargs as Node does, argv0 and shell applied. */
static int build_command(cp_child *child, const char *file,
                         const char *const *args,
                         const cp_spawn_options *options) {
  size_t count = 0;
  const char **strings;

  if (options->shell != NULL)
    return build_shell_command(child, file, args, options);

  while (args != NULL && args[count] != NULL)
    count++;

  /* spawnfile, argv0, then the arguments. */
  strings = malloc((count + 2) * sizeof(*strings));
  if (strings == NULL)
    return -ENOMEM;

  strings[0] = file;
  strings[1] = options->argv0 != NULL ? options->argv0 : file;
  for (size_t i = 0; i < count; i++)
    strings[i + 2] = args[i];

  child->command = pack_strings(strings, count + 2);
  free(strings);
  return child->command != NULL ? 0 : -ENOMEM;
}

/* Descriptors of one stdio slot: the child's end and the parent's end of a
 * new pipe, or what the child gets for the other kinds. */
typedef struct slot {
  int child_fd;
  int parent_fd;
  bool own_child_fd; /* child_fd is ours to close after the spawn */
  bool ipc;          /* parent_fd is the channel's end, not a stream's */
} slot;

static int make_pipe(size_t i, bool ipc, slot *s) {
  int fds[2];

  s->ipc = ipc;
  if (i >= MIN_STDIO || ipc) {
    /* Node's extra pipes and its channel are duplex: a socket pair. The
     * child's end is blocking in the child, as Node gives it. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
      return -errno;
    s->parent_fd = fds[0];
    s->child_fd = fds[1];
  } else {
    if (pipe2(fds, O_CLOEXEC) < 0)
      return -errno;
    s->parent_fd = i == 0 ? fds[1] : fds[0];
    s->child_fd = i == 0 ? fds[0] : fds[1];
  }
  s->own_child_fd = true;
  return 0;
}

static int make_slot(const cp_spawn_options *options, size_t i, slot *s) {
  *s = (slot){.child_fd = CP__FD_CLOSED, .parent_fd = -1};

  switch (resolve_kind(options, i)) {
  case CP_STDIO_PIPE:
    return make_pipe(i, false, s);
  case CP_STDIO_IPC:
    return make_pipe(i, true, s);
  case CP_STDIO_INHERIT:
    s->child_fd = (int)i;
    return 0;
  case CP_STDIO_IGNORE:
    s->child_fd = i < MIN_STDIO ? CP__FD_DEVNULL : CP__FD_CLOSED;
    return 0;
  case CP_STDIO_FD:
    s->child_fd = options->stdio[i].fd;
    return 0;
  case CP_STDIO_DEFAULT:
    break;
  }
  return CP_ERR_INVALID_ARG_VALUE;
}

static void close_slots(slot *slots, size_t count, bool parent_ends) {
  for (size_t i = 0; i < count; i++) {
    if (slots[i].own_child_fd)
      slots[i].child_fd = cp__close(slots[i].child_fd);
    slots[i].own_child_fd = false;
    if (parent_ends)
      slots[i].parent_fd = cp__close(slots[i].parent_fd);
  }
}

/* Makes the parent's streams. Every parent end is taken by its stream or
 * closed, on failure too. */
static int make_streams(cp_child *child, slot *slots,
                        size_t max_message_size) {
  int result = 0;

  for (size_t i = 0; i < child->stdio_count; i++) {
    int fd = slots[i].parent_fd;
    unsigned flags;
    int r;

    if (fd < 0)
      continue;
    slots[i].parent_fd = -1;

    if (result < 0) {
      cp__close(fd);
      continue;
    }

    if (slots[i].ipc) {
      result = cp__child_open_channel(child, fd, max_message_size);
      continue;
    }

    if (i == 0)
      flags = CP__STREAM_WRITABLE;
    else if (i < MIN_STDIO)
      flags = CP__STREAM_READABLE;
    else
      flags = CP__STREAM_READABLE | CP__STREAM_WRITABLE | CP__STREAM_SOCKET;

    r = cp__stream_new(child->loop, fd, flags, child, &child->stdio[i]);
    if (r < 0) {
      result = r;
      continue;
    }
    if (i > 0)
      child->closes_needed++;
  }
  return result;
}

static bool is_channel_variable(const char *entry) {
  return strncmp(entry, "NODE_CHANNEL_FD=", 16) == 0 ||
         strncmp(entry, "NODE_CHANNEL_SERIALIZATION_MODE=", 32) == 0;
}

/*
 * The child's environment with NODE_CHANNEL_FD naming the channel's slot,
 * replacing any copy in base: Node appends without removing, and the child
 * then reads the caller's stale value. fd_entry receives the variable's
 * text. The array is the caller's to free; its strings are borrowed.
 */
static char **channel_env(char *const *base, size_t channel_index,
                          char fd_entry[48]) {
  size_t count = 0;
  size_t kept = 0;
  char **env;

  while (base[count] != NULL)
    count++;
  env = malloc((count + 3) * sizeof(*env));
  if (env == NULL)
    return NULL;

  for (size_t i = 0; i < count; i++) {
    if (!is_channel_variable(base[i]))
      env[kept++] = base[i];
  }
  snprintf(fd_entry, 48, "NODE_CHANNEL_FD=%zu", channel_index);
  env[kept++] = fd_entry;
  env[kept++] = "NODE_CHANNEL_SERIALIZATION_MODE=json";
  env[kept] = NULL;
  return env;
}

static int start_process(cp_child *child, const cp_spawn_options *options,
                         const slot *slots) {
  extern char **environ;
  char *const *base_env =
      options->env != NULL ? (char *const *)options->env : environ;
  char **env = NULL;
  char fd_entry[48];
  int *fds = malloc(child->stdio_count * sizeof(*fds));
  int r;

  if (fds == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < child->stdio_count; i++) {
    if (slots[i].ipc) {
      env = channel_env(base_env, i, fd_entry);
      if (env == NULL) {
        free(fds);
        return -ENOMEM;
      }
    }
  }

  cp__spawn_request request = {
      .file = child->command[0],
      .argv = child->command + 1,
      .envp = env != NULL ? env : base_env,
      .cwd = options->cwd,
      .fds = fds,
      .fd_count = child->stdio_count,
      .detached = options->detached,
      .set_uid = options->set_uid,
      .uid = options->uid,
      .set_gid = options->set_gid,
      .gid = options->gid,
  };

  for (size_t i = 0; i < child->stdio_count; i++)
    fds[i] = slots[i].child_fd;
  r = cp__spawn_process(&request, &child->pid);
  free(fds);
  free(env);
  return r;
}

/* Creates the stdio pipes and their streams. An OS failure (EMFILE) is a
 * spawn failure, reported asynchronously like Node's; only running out of
 * memory fails the call. */
static int setup_stdio(cp_child *child, const cp_spawn_options *options,
                       slot *slots) {
  int r = 0;

  for (size_t i = 0; i < child->stdio_count; i++)
    slots[i] = (slot){.child_fd = CP__FD_CLOSED, .parent_fd = -1};
  for (size_t i = 0; i < child->stdio_count && r == 0; i++)
    r = make_slot(options, i, &slots[i]);
  if (r < 0) {
    close_slots(slots, child->stdio_count, true);
    child->spawn_error = r;
    return 0;
  }

  r = make_streams(child, slots, options->max_message_size);
  if (r < 0)
    close_slots(slots, child->stdio_count, false);
  return r;
}

/* Kills and reaps a started process that cannot be watched, so that
 * nothing is left behind. */
static void abandon_process(cp_child *child) {
  kill(child->pid, SIGKILL);
  while (waitpid(child->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  child->pid = 0;
}

/* Creates the pipes and starts the process. Fails only when out of memory;
 * a process that does not start leaves child->spawn_error set. */
static int spawn_child(cp_child *child, const cp_spawn_options *options) {
  /* On the heap: stdio_count is the caller's and may be large. */
  slot *slots = malloc(child->stdio_count * sizeof(*slots));
  int r;

  if (slots == NULL)
    return -ENOMEM;

  r = setup_stdio(child, options, slots);
  if (r < 0 || child->spawn_error != 0) {
    free(slots);
    return r;
  }

  child->spawn_error = start_process(child, options, slots);
  close_slots(slots, child->stdio_count, false);
  free(slots);
  if (child->spawn_error != 0)
    return 0;

  r = cp__child_start_watch(child);
  if (r < 0) {
    abandon_process(child);
    child->spawn_error = r;
    return 0;
  }

  cp__child_start_timeout(child, options->timeout);
  return 0;
}

int cp_spawn(uv_loop_t *loop, const char *file, const char *const *args,
             const cp_spawn_options *options, cp_child **child_out) {
  static const cp_spawn_options defaults;
  cp_child *child;
  int r;

  if (options == NULL)
    options = &defaults;
  if (child_out != NULL)
    *child_out = NULL;

  r = validate(loop, file, options, child_out);
  if (r < 0)
    return r;

  child = cp__child_new(loop);
  if (child == NULL)
    return -ENOMEM;
  child->detached = options->detached;

  child->stdio = calloc(stdio_count(options), sizeof(*child->stdio));
  if (child->stdio != NULL)
    child->stdio_count = stdio_count(options);
  r = child->stdio == NULL ? -ENOMEM : build_command(child, file, args, options);
  if (r == 0)
    r = cp__child_prepare_timeout(child, options);
  if (r == 0)
    r = spawn_child(child, options);
  if (r < 0) {
    cp__child_free_unstarted(child);
    return r;
  }

  cp__child_schedule_next_tick(child);
  *child_out = child;
  return 0;
}
