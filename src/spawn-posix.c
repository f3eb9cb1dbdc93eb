/*
 * Process creation with posix_spawn, and the parent-side preparation that
 * the fork path (spawn-fork.c) shares: the descriptor plan and the PATH
 * search candidates.
 *
 * glibc's posix_spawn starts the child with clone(CLONE_VM | CLONE_VFORK),
 * so its cost does not grow with the parent's memory. It reports any error
 * of the child's setup or of execve as its return value, after reaping the
 * failed child. The child passes that error back through the memory it
 * shares with the parent, so where CLONE_VM is emulated with a plain fork
 * (valgrind 3.19, QEMU user mode) posix_spawn returns 0 and the child exits
 * with 127. A probe detects that once, and every request then takes the
 * fork path, which reports errors through a pipe.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn-internal.h"

/* The shell that runs a file the kernel rejects with ENOEXEC, as glibc's
 * execvp uses it. Writable because exec argv elements are char *. */
static char shell_path[] = "/bin/sh";

/* glibc's execvp searches this PATH when the environment has none. */
static const char default_path[] = "/bin:/usr/bin";

int cp__fd_plan_init(cp__fd_plan *plan, const int *fds, size_t fd_count) {
  memset(plan, 0, sizeof(*plan));
  if (fd_count > INT_MAX)
    return -EINVAL;

  /* One extra element, so fd_count == 0 never becomes malloc(0). */
  plan->sources = malloc((fd_count + 1) * sizeof(int));
  plan->duplicates = malloc((fd_count + 1) * sizeof(int));
  if (plan->sources == NULL || plan->duplicates == NULL) {
    cp__fd_plan_release(plan);
    return -ENOMEM;
  }
  plan->fd_count = fd_count;

  for (size_t i = 0; i < fd_count; i++) {
    int source = fds[i];
    plan->sources[i] = source;

    if (source < CP__FD_DEVNULL) {
      cp__fd_plan_release(plan);
      return -EINVAL;
    }
    if (source < 0 || (size_t)source >= fd_count || (size_t)source == i)
      continue;

    /* A low source shared by several slots needs only one duplicate. */
    size_t earlier = 0;
    while (earlier < i && fds[earlier] != source)
      earlier++;
    if (earlier < i) {
      plan->sources[i] = plan->sources[earlier];
      continue;
    }

    int duplicate = fcntl(source, F_DUPFD_CLOEXEC, (int)fd_count);
    if (duplicate < 0) {
      int err = -errno;
      cp__fd_plan_release(plan);
      return err;
    }
    plan->duplicates[plan->duplicate_count++] = duplicate;
    plan->sources[i] = duplicate;
  }

  return 0;
}

void cp__fd_plan_release(cp__fd_plan *plan) {
  for (size_t i = 0; i < plan->duplicate_count; i++)
    close(plan->duplicates[i]);

  free(plan->sources);
  free(plan->duplicates);
  memset(plan, 0, sizeof(*plan));
}

/* The value of the first PATH= entry of envp, as getenv() would return it
 * in the child, or NULL. */
static const char *find_env_path(char *const *envp) {
  for (size_t i = 0; envp[i] != NULL; i++) {
    if (strncmp(envp[i], "PATH=", 5) == 0)
      return envp[i] + 5;
  }
  return NULL;
}

static char *join_path_entry(const char *entry, size_t entry_len,
                             const char *file) {
  size_t file_len = strlen(file);
  char *path = malloc(entry_len + 1 + file_len + 1);
  if (path == NULL)
    return NULL;

  memcpy(path, entry, entry_len);
  size_t at = entry_len;
  if (entry_len > 0)
    path[at++] = '/';
  memcpy(path + at, file, file_len + 1);
  return path;
}

static int build_search_paths(cp__exec_candidates *candidates, const char *file,
                              const char *search_path) {
  size_t entries = 1;
  for (const char *c = search_path; *c != '\0'; c++) {
    if (*c == ':')
      entries++;
  }

  candidates->paths = calloc(entries, sizeof(char *));
  if (candidates->paths == NULL)
    return -ENOMEM;

  const char *entry = search_path;
  for (size_t i = 0; i < entries; i++) {
    const char *end = strchrnul(entry, ':');
    candidates->paths[i] = join_path_entry(entry, (size_t)(end - entry), file);
    if (candidates->paths[i] == NULL)
      return -ENOMEM;
    candidates->count++;
    entry = end + 1;
  }

  return 0;
}

static int build_script_argv(cp__exec_candidates *candidates,
                             char *const *argv) {
  size_t argc = 0;
  while (argv[argc] != NULL)
    argc++;

  /* "/bin/sh", the candidate, argv[1..argc-1], NULL. */
  size_t size = (argc > 0 ? argc : 1) + 2;
  candidates->script_argv = calloc(size, sizeof(char *));
  if (candidates->script_argv == NULL)
    return -ENOMEM;

  candidates->script_argv[0] = shell_path;
  for (size_t i = 1; i < argc; i++)
    candidates->script_argv[i + 1] = argv[i];
  return 0;
}

int cp__exec_candidates_init(cp__exec_candidates *candidates,
                             const cp__spawn_request *request) {
  memset(candidates, 0, sizeof(*candidates));
  const char *file = request->file;
  int err;

  if (file[0] == '\0')
    return -ENOENT;

  candidates->search = strchr(file, '/') == NULL;
  if (candidates->search) {
    /* glibc's execvp builds each candidate in a stack buffer bounded by
     * NAME_MAX and rejects longer names up front. */
    if (strlen(file) > NAME_MAX)
      return -ENAMETOOLONG;

    const char *search_path = find_env_path(request->envp);
    err = build_search_paths(candidates, file,
                             search_path != NULL ? search_path : default_path);
  } else {
    candidates->paths = calloc(1, sizeof(char *));
    err = candidates->paths == NULL ? -ENOMEM : 0;
    if (err == 0) {
      candidates->paths[0] = strdup(file);
      err = candidates->paths[0] == NULL ? -ENOMEM : 0;
      candidates->count = err == 0 ? 1 : 0;
    }
  }

  if (err == 0)
    err = build_script_argv(candidates, request->argv);
  if (err != 0)
    cp__exec_candidates_release(candidates);
  return err;
}

void cp__exec_candidates_release(cp__exec_candidates *candidates) {
  for (size_t i = 0; i < candidates->count; i++)
    free(candidates->paths[i]);

  free(candidates->paths);
  free(candidates->script_argv);
  memset(candidates, 0, sizeof(*candidates));
}

bool cp__exec_error_continues_search(int err) {
  /* The list in glibc 2.36's execvpe. ENODEV and ETIMEDOUT come from
   * network file systems. */
  switch (err) {
  case EACCES:
  case ENOENT:
  case ESTALE:
  case ENOTDIR:
  case ENODEV:
  case ETIMEDOUT:
    return true;
  default:
    return false;
  }
}

static int add_descriptor_actions(posix_spawn_file_actions_t *actions,
                                  const cp__fd_plan *plan) {
  int err = 0;

  /* Every source is now at fd_count or above, or is its own target, so the
   * slots can be filled in any order. adddup2(i, i) clears FD_CLOEXEC, as
   * POSIX.1-2024 requires, and the inherit tests check that glibc does. */
  for (size_t i = 0; i < plan->fd_count && err == 0; i++) {
    int source = plan->sources[i];
    int target = (int)i;

    if (source == CP__FD_CLOSED)
      err = posix_spawn_file_actions_addclose(actions, target);
    else if (source == CP__FD_DEVNULL)
      err = posix_spawn_file_actions_addopen(actions, target, "/dev/null",
                                             O_RDWR, 0);
    else
      err = posix_spawn_file_actions_adddup2(actions, source, target);
  }

  /* Close-on-exec or not, no other descriptor of the parent reaches the
   * child. */
  if (err == 0)
    err =
        posix_spawn_file_actions_addclosefrom_np(actions, (int)plan->fd_count);
  return -err;
}

static int init_file_actions(posix_spawn_file_actions_t *actions,
                             const cp__spawn_request *request,
                             const cp__fd_plan *plan) {
  int err = posix_spawn_file_actions_init(actions);
  if (err != 0)
    return -err;

  if (request->cwd != NULL)
    err = -posix_spawn_file_actions_addchdir_np(actions, request->cwd);
  if (err == 0)
    err = add_descriptor_actions(actions, plan);

  if (err != 0)
    posix_spawn_file_actions_destroy(actions);
  return err;
}

static int init_attributes(posix_spawnattr_t *attr, bool detached) {
  int err = posix_spawnattr_init(attr);
  if (err != 0)
    return -err;

  /* A child starts with no blocked signal and every signal at its default
   * action, as libuv and Node set up their children. */
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (detached)
    flags |= POSIX_SPAWN_SETSID;

  err = posix_spawnattr_setsigmask(attr, &none);
  if (err == 0)
    err = posix_spawnattr_setsigdefault(attr, &all);
  if (err == 0)
    err = posix_spawnattr_setflags(attr, flags);

  if (err != 0)
    posix_spawnattr_destroy(attr);
  return -err;
}

/*
 * Opens the child's working directory to check it and to resolve relative
 * candidates against it. posix_spawn reports a failed chdir and a failed
 * execve alike, so during a PATH search a bad cwd would otherwise read as a
 * missing program. Stores AT_FDCWD when cwd is NULL.
 */
static int open_cwd(const char *cwd, int *cwd_fd) {
  *cwd_fd = AT_FDCWD;
  if (cwd == NULL)
    return 0;

  int fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;

  /* O_PATH does not check search permission on the directory itself, which
   * chdir requires. */
  if (faccessat(fd, ".", X_OK, AT_EACCESS) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }

  *cwd_fd = fd;
  return 0;
}

typedef struct posix_spawn_setup {
  const cp__spawn_request *request;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  int cwd_fd;
} posix_spawn_setup;

/* Runs one candidate, through /bin/sh when the kernel rejects it with
 * ENOEXEC. Returns 0 or a positive errno, the exec convention. */
static int spawn_candidate(posix_spawn_setup *setup,
                           cp__exec_candidates *candidates, char *path,
                           pid_t *pid_out) {
  const cp__spawn_request *request = setup->request;

  int err = posix_spawn(pid_out, path, &setup->actions, &setup->attr,
                        request->argv, request->envp);
  if (err != ENOEXEC)
    return err;

  candidates->script_argv[1] = path;
  return posix_spawn(pid_out, shell_path, &setup->actions, &setup->attr,
                     candidates->script_argv, request->envp);
}

static int spawn_candidates(posix_spawn_setup *setup,
                            cp__exec_candidates *candidates, pid_t *pid_out) {
  bool got_eacces = false;
  int err = ENOENT;

  for (size_t i = 0; i < candidates->count; i++) {
    char *path = candidates->paths[i];

    /* One faccessat per entry instead of one posix_spawn per entry. Its
     * errors match what execve would report for the same path. */
    if (candidates->search) {
      err = faccessat(setup->cwd_fd, path, X_OK, AT_EACCESS) == 0 ? 0 : errno;
      if (err != 0 && cp__exec_error_continues_search(err)) {
        got_eacces = got_eacces || err == EACCES;
        continue;
      }
    }

    err = spawn_candidate(setup, candidates, path, pid_out);
    if (err == 0)
      return 0;
    if (!candidates->search || !cp__exec_error_continues_search(err))
      return -err;
    got_eacces = got_eacces || err == EACCES;
  }

  /* Like glibc's execvp: EACCES if any entry had the file but could not run
   * it, else the last entry's error (ENOENT unless an entry was not a
   * directory). */
  return got_eacces ? -EACCES : -err;
}

static int spawn_posix(const cp__spawn_request *request,
                       const cp__fd_plan *plan, cp__exec_candidates *candidates,
                       pid_t *pid_out) {
  posix_spawn_setup setup = {.request = request};

  int err = open_cwd(request->cwd, &setup.cwd_fd);
  if (err != 0)
    return err;

  err = init_file_actions(&setup.actions, request, plan);
  if (err == 0) {
    err = init_attributes(&setup.attr, request->detached);
    if (err == 0) {
      err = spawn_candidates(&setup, candidates, pid_out);
      posix_spawnattr_destroy(&setup.attr);
    }
    posix_spawn_file_actions_destroy(&setup.actions);
  }

  if (setup.cwd_fd >= 0)
    close(setup.cwd_fd);
  return err;
}

static bool posix_spawn_errors_reported;

/* Spawns "/", a directory, which execve rejects with EACCES for every
 * user. */
static void probe_posix_spawn(void) {
  char *argv[] = {"/", NULL};
  char *envp[] = {NULL};
  posix_spawn_file_actions_t actions;
  pid_t pid;

  /* Without a probe, glibc's normal behaviour is assumed. */
  posix_spawn_errors_reported = true;

  /* The probe's child needs none of the parent's descriptors. */
  if (posix_spawn_file_actions_init(&actions) != 0)
    return;
  int err = posix_spawn_file_actions_addclosefrom_np(&actions, 0);
  if (err == 0)
    err = posix_spawn(&pid, "/", &actions, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&actions);

  if (err != 0)
    return;

  /* The child got past the failed execve and exits with 127. ECHILD means
   * it was reaped already, by a SIGCHLD handler of the application or
   * because SIGCHLD is ignored. */
  posix_spawn_errors_reported = false;
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

/* Whether posix_spawn returns the errors of the child's setup and execve,
 * probed on the first call. */
static bool posix_spawn_reports_errors(void) {
  static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
  pthread_once(&probe_once, probe_posix_spawn);
  return posix_spawn_errors_reported;
}

static bool request_is_valid(const cp__spawn_request *request,
                             const pid_t *pid_out) {
  return request != NULL && pid_out != NULL && request->file != NULL &&
         request->argv != NULL && request->envp != NULL &&
         (request->fds != NULL || request->fd_count == 0);
}

int cp__spawn_process(const cp__spawn_request *request, pid_t *pid_out) {
  if (!request_is_valid(request, pid_out))
    return -EINVAL;

  cp__exec_candidates candidates;
  cp__fd_plan plan;
  pid_t pid = 0;

  int err = cp__exec_candidates_init(&candidates, request);
  if (err != 0)
    return err;

  err = cp__fd_plan_init(&plan, request->fds, request->fd_count);
  if (err == 0) {
    bool needs_fork =
        request->set_uid || request->set_gid || !posix_spawn_reports_errors();
    if (needs_fork)
      err = cp__spawn_fork(request, &plan, &candidates, &pid);
    else
      err = spawn_posix(request, &plan, &candidates, &pid);
    cp__fd_plan_release(&plan);
  }

  cp__exec_candidates_release(&candidates);
  if (err == 0)
    *pid_out = pid;
  return err;
}
