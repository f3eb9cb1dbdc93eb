/* cp_fork(): spawn with an IPC channel, as Node's fork(). */
#include <errno.h>
#include <stdlib.h>

#include "childproc.h"

/* Node's fork() stdio without a stdio option: the parent's three streams,
 * or three pipes when silent, then the channel at 3. */
static const cp_stdio inherit_stdio[] = {
    {CP_STDIO_INHERIT, 0},
    {CP_STDIO_INHERIT, 0},
    {CP_STDIO_INHERIT, 0},
    {CP_STDIO_IPC, 0},
};
static const cp_stdio silent_stdio[] = {
    {CP_STDIO_PIPE, 0},
    {CP_STDIO_PIPE, 0},
    {CP_STDIO_PIPE, 0},
    {CP_STDIO_IPC, 0},
};

static bool has_channel(const cp_spawn_options *options) {
  for (size_t i = 0; i < options->stdio_count; i++) {
    if (options->stdio[i].kind == CP_STDIO_IPC)
      return true;
  }
  return false;
}

static size_t count_args(const char *const *args) {
  size_t count = 0;

  while (args != NULL && args[count] != NULL)
    count++;
  return count;
}

/* exec_argv, program, then args: what Node passes to execPath. */
static const char **exec_path_args(const cp_fork_options *options,
                                   const char *program,
                                   const char *const *args) {
  size_t exec_count = count_args(options->exec_argv);
  size_t arg_count = count_args(args);
  const char **joined = calloc(exec_count + arg_count + 2, sizeof(*joined));

  if (joined == NULL)
    return NULL;
  for (size_t i = 0; i < exec_count; i++)
    joined[i] = options->exec_argv[i];
  joined[exec_count] = program;
  for (size_t i = 0; i < arg_count; i++)
    joined[exec_count + 1 + i] = args[i];
  return joined;
}

int cp_fork(uv_loop_t *loop, const char *program, const char *const *args,
            const cp_fork_options *options, cp_child **child_out) {
  static const cp_fork_options defaults;
  cp_spawn_options spawn;
  const char **all_args = NULL;
  int r;

  if (options == NULL)
    options = &defaults;
  if (program == NULL || program[0] == '\0')
    return CP_ERR_INVALID_ARG_VALUE;

  spawn = options->spawn;
  spawn.shell = NULL; /* Node forces shell off for fork() */
  if (spawn.stdio == NULL) {
    spawn.stdio = options->silent ? silent_stdio : inherit_stdio;
    spawn.stdio_count = 4;
  } else if (!has_channel(&spawn)) {
    return CP_ERR_CHILD_PROCESS_IPC_REQUIRED;
  }

  if (options->exec_path == NULL)
    return cp_spawn(loop, program, args, &spawn, child_out);

  all_args = exec_path_args(options, program, args);
  if (all_args == NULL)
    return -ENOMEM;
  r = cp_spawn(loop, options->exec_path, all_args, &spawn, child_out);
  free(all_args);
  return r;
}
