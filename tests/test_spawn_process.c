/*
 * Tests of the process-creation layer (src/spawn.h) with real processes:
 * cp__spawn_process() on its posix_spawn and fork paths, the pidfd calls
 * and cp__reap(). Children write to memfds, which the tests read after the
 * child has exited, so no test depends on pipe timing.
 */
#define _GNU_SOURCE

/* cmocka.h needs these four first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "spawn.h"

#ifndef CP_TEST_HELPER_DIR
#error "define CP_TEST_HELPER_DIR as the directory of the test helper programs"
#endif

#define HELPER_PATH(name) CP_TEST_HELPER_DIR "/" name

/* A child still running after this long is killed and the test fails. */
#define GUARD_TIMEOUT_MS 10000

/* The user and group "nobody" on Debian. */
#define NOBODY_ID 65534

static char *base_env[] = {"PATH=/bin:/usr/bin", NULL};

/* ------------------------------------------------------------------------
 * Test harness
 * ------------------------------------------------------------------------ */

typedef struct child_exit {
  int exit_code;
  int signum;
  cp_rusage rusage;
} child_exit;

/*
 * Waiting for a child's exit on a private loop: a poll on its pidfd, or,
 * where pidfd_open is missing (valgrind 3.19 returns ENOSYS for it), a
 * timer that checks waitid(WNOWAIT) every few milliseconds.
 */
typedef struct exit_wait {
  uv_poll_t poll;
  uv_timer_t check;
  uv_timer_t guard;
  pid_t pid;
  int pidfd;
  bool timed_out;
} exit_wait;

#define EXIT_CHECK_INTERVAL_MS 5

static void stop_waiting(exit_wait *wait) {
  if (wait->pidfd >= 0)
    uv_poll_stop(&wait->poll);
  else
    uv_timer_stop(&wait->check);
  uv_timer_stop(&wait->guard);
}

static void on_pidfd_readable(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  stop_waiting(poll->data);
}

static void on_exit_check(uv_timer_t *check) {
  exit_wait *wait = check->data;
  siginfo_t info;
  memset(&info, 0, sizeof(info));

  /* WNOWAIT leaves the child to be reaped by the test. */
  int ret = waitid(P_PID, (id_t)wait->pid, &info, WEXITED | WNOHANG | WNOWAIT);
  if (ret != 0 || info.si_pid != 0)
    stop_waiting(wait);
}

static void on_guard_timeout(uv_timer_t *guard) {
  exit_wait *wait = guard->data;

  /* The child is not reaped yet, so its PID cannot have been reused. Once
   * it dies, the watcher stops and the loop ends. */
  wait->timed_out = true;
  kill(wait->pid, SIGKILL);
}

static void on_handle_closed(uv_handle_t *handle) { (void)handle; }

/* Whether this system (or valgrind) supports pidfd_open. */
static bool pidfd_supported(void) {
  int pidfd = cp__pidfd_open(getpid());
  if (pidfd >= 0) {
    close(pidfd);
    return true;
  }
  assert_int_equal(pidfd, -ENOSYS);
  return false;
}

static void skip_without_pidfd(void) {
  if (pidfd_supported())
    return;
  print_message("skipped: pidfd_open returns ENOSYS here\n");
  skip();
}

/* Waits until the child has exited, leaving it unreaped. pidfd is the
 * child's pidfd, or -1 to watch the PID instead. */
static void wait_for_exit(pid_t pid, int pidfd) {
  uv_loop_t loop;
  exit_wait wait = {.pid = pid, .pidfd = pidfd};
  uv_handle_t *watcher;

  assert_int_equal(uv_loop_init(&loop), 0);
  if (pidfd >= 0) {
    assert_int_equal(uv_poll_init(&loop, &wait.poll, pidfd), 0);
    wait.poll.data = &wait;
    assert_int_equal(uv_poll_start(&wait.poll, UV_READABLE, on_pidfd_readable),
                     0);
    watcher = (uv_handle_t *)&wait.poll;
  } else {
    assert_int_equal(uv_timer_init(&loop, &wait.check), 0);
    wait.check.data = &wait;
    assert_int_equal(
        uv_timer_start(&wait.check, on_exit_check, 0, EXIT_CHECK_INTERVAL_MS),
        0);
    watcher = (uv_handle_t *)&wait.check;
  }
  assert_int_equal(uv_timer_init(&loop, &wait.guard), 0);
  wait.guard.data = &wait;
  assert_int_equal(
      uv_timer_start(&wait.guard, on_guard_timeout, GUARD_TIMEOUT_MS, 0), 0);

  uv_run(&loop, UV_RUN_DEFAULT);

  uv_close(watcher, on_handle_closed);
  uv_close((uv_handle_t *)&wait.guard, on_handle_closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_false(wait.timed_out);
}

/* Waits for the child, then reaps it through its pidfd or, with by_pid or
 * without pidfd support, through wait4. */
static child_exit wait_and_reap(pid_t pid, bool by_pid) {
  child_exit result = {0};
  int pidfd = -1;
  if (pidfd_supported()) {
    pidfd = cp__pidfd_open(pid);
    assert_true(pidfd >= 0);
  } else {
    by_pid = true;
  }

  wait_for_exit(pid, pidfd);
  int reaped = cp__reap(by_pid ? -1 : pidfd, pid, &result.exit_code,
                        &result.signum, &result.rusage);
  if (pidfd >= 0)
    close(pidfd);
  assert_int_equal(reaped, 1);
  return result;
}

static child_exit spawn_and_reap(const cp__spawn_request *request) {
  pid_t pid = 0;
  assert_int_equal(cp__spawn_process(request, &pid), 0);
  assert_true(pid > 0);
  return wait_and_reap(pid, false);
}

static int count_open_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  assert_non_null(dir);

  int count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.')
      count++;
  }
  closedir(dir);

  /* The listing's own descriptor was counted. */
  return count - 1;
}

/* Every child a test starts must have been reaped by the test. */
static void assert_no_children(void) {
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* Checks the end state of a test that started with fds_before open
 * descriptors. */
static void assert_clean_end(int fds_before) {
  assert_int_equal(count_open_fds(), fds_before);
  assert_no_children();
}

/* Spawning must fail with expected, leaving no process and no descriptor
 * behind. */
static void assert_spawn_fails(const cp__spawn_request *request, int expected) {
  int fds_before = count_open_fds();
  pid_t pid = 0;

  int err = cp__spawn_process(request, &pid);
  if (err != expected)
    print_error("spawn of %s returned %d (%s), expected %d (%s)\n",
                request->file, err, strerror(-err), expected,
                strerror(-expected));
  assert_int_equal(err, expected);
  assert_int_equal(pid, 0);
  assert_clean_end(fds_before);
}

static int make_capture(void) {
  int fd = memfd_create("cp-test-output", MFD_CLOEXEC);
  assert_true(fd >= 0);
  return fd;
}

/* Everything written to the capture so far, as a string in buffer. */
static const char *read_capture(int fd, char *buffer, size_t size) {
  ssize_t got = pread(fd, buffer, size - 1, 0);
  assert_true(got >= 0);
  buffer[got] = '\0';
  return buffer;
}

static void assert_capture_equal(int fd, const char *expected) {
  char buffer[4096];
  assert_string_equal(read_capture(fd, buffer, sizeof(buffer)), expected);
}

/* Duplicates source to target, which must not be open yet. */
static void place_fd(int source, int target, int flags) {
  errno = 0;
  assert_int_equal(fcntl(target, F_GETFD), -1);
  assert_int_equal(errno, EBADF);
  assert_int_equal(dup3(source, target, flags), target);
}

static cp__spawn_request make_request(const char *file, char **argv,
                                      const int *fds, size_t fd_count) {
  cp__spawn_request request = {
      .file = file,
      .argv = argv,
      .envp = base_env,
      .fds = fds,
      .fd_count = fd_count,
  };
  return request;
}

/* Sends the request through the fork path without changing the user. */
static void use_fork_path(cp__spawn_request *request) {
  request->set_uid = true;
  request->uid = getuid();
}

/* ------------------------------------------------------------------------
 * Files and directories
 * ------------------------------------------------------------------------ */

static void join_path(char *out, const char *dir, const char *name) {
  int len = snprintf(out, PATH_MAX, "%s/%s", dir, name);
  assert_true(len > 0 && len < PATH_MAX);
}

static void make_temp_dir(char *path) {
  strcpy(path, "/tmp/cp-spawn-test-XXXXXX");
  assert_non_null(mkdtemp(path));
}

static void make_dir(const char *dir, const char *name, mode_t mode,
                     char *path_out) {
  join_path(path_out, dir, name);
  assert_int_equal(mkdir(path_out, mode), 0);
  assert_int_equal(chmod(path_out, mode), 0);
}

static void write_file(const char *dir, const char *name, const char *content,
                       mode_t mode) {
  char path[PATH_MAX];
  join_path(path, dir, name);

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  size_t len = strlen(content);
  assert_int_equal(write(fd, content, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

static void remove_tree(const char *path) {
  assert_int_equal(nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Sets the parent's PATH and returns a copy of the old value, or NULL. */
static char *replace_parent_path(const char *value) {
  const char *old = getenv("PATH");
  char *saved = old != NULL ? strdup(old) : NULL;
  assert_int_equal(setenv("PATH", value, 1), 0);
  return saved;
}

static void restore_parent_path(char *saved) {
  if (saved != NULL)
    assert_int_equal(setenv("PATH", saved, 1), 0);
  else
    assert_int_equal(unsetenv("PATH"), 0);
  free(saved);
}

/* ------------------------------------------------------------------------
 * Finding and starting the program
 * ------------------------------------------------------------------------ */

static void spawn_absolute_path_runs(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char *argv[] = {"cp-exit", "7", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request =
      make_request(HELPER_PATH("cp-exit"), argv, fds, 3);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 7);
  assert_int_equal(result.signum, 0);
  assert_clean_end(fds_before);
}

static void spawn_path_search_uses_env_path(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char *saved_path = replace_parent_path("/bin:/usr/bin");
  char *env[] = {"PATH=/nonexistent-cp-dir:" CP_TEST_HELPER_DIR, NULL};
  char *argv[] = {"cp-exit", "3", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("cp-exit", argv, fds, 3);
  request.envp = env;

  child_exit result = spawn_and_reap(&request);

  restore_parent_path(saved_path);
  assert_int_equal(result.exit_code, 3);
  assert_int_equal(result.signum, 0);
  assert_clean_end(fds_before);
}

static void spawn_default_path_without_env_path(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char *saved_path = replace_parent_path(CP_TEST_HELPER_DIR);
  char *env[] = {"HOME=/", NULL};
  char *sh_argv[] = {"sh", "-c", "exit 4", NULL};
  char *helper_argv[] = {"cp-exit", "0", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};

  /* sh is in /bin, the default PATH. */
  cp__spawn_request request = make_request("sh", sh_argv, fds, 3);
  request.envp = env;
  child_exit result = spawn_and_reap(&request);

  /* cp-exit is only in the parent's PATH, which must not be searched. */
  cp__spawn_request helper = make_request("cp-exit", helper_argv, fds, 3);
  helper.envp = env;
  assert_spawn_fails(&helper, -ENOENT);

  restore_parent_path(saved_path);
  assert_int_equal(result.exit_code, 4);
  assert_clean_end(fds_before);
}

static void spawn_relative_path_entry_uses_cwd(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char bin[PATH_MAX];
  make_temp_dir(dir);
  make_dir(dir, "cp-rel-bin", 0755, bin);
  write_file(bin, "cp-rel-prog", "#!/bin/sh\nexit 5\n", 0755);
  char *env[] = {"PATH=/nonexistent-cp-dir:cp-rel-bin", NULL};
  char *argv[] = {"cp-rel-prog", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("cp-rel-prog", argv, fds, 3);
  request.envp = env;
  request.cwd = dir;

  child_exit result = spawn_and_reap(&request);

  remove_tree(dir);
  assert_int_equal(result.exit_code, 5);
  assert_clean_end(fds_before);
}

static void spawn_empty_path_entry_means_cwd(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  make_temp_dir(dir);
  write_file(dir, "cp-rel-prog", "#!/bin/sh\nexit 5\n", 0755);
  char *env[] = {"PATH=/nonexistent-cp-dir:", NULL};
  char *argv[] = {"cp-rel-prog", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("cp-rel-prog", argv, fds, 3);
  request.envp = env;
  request.cwd = dir;

  child_exit result = spawn_and_reap(&request);

  remove_tree(dir);
  assert_int_equal(result.exit_code, 5);
  assert_clean_end(fds_before);
}

static void spawn_relative_file_uses_cwd(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  make_temp_dir(dir);
  write_file(dir, "cp-rel-prog", "#!/bin/sh\nexit 8\n", 0755);
  char *argv[] = {"cp-rel-prog", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("./cp-rel-prog", argv, fds, 3);
  request.cwd = dir;

  child_exit result = spawn_and_reap(&request);

  remove_tree(dir);
  assert_int_equal(result.exit_code, 8);
  assert_clean_end(fds_before);
}

static void check_missing_program(bool fork_path) {
  int fds_before = count_open_fds();
  char *argv[] = {"cp-no-such-program", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};

  cp__spawn_request searched = make_request("cp-no-such-program", argv, fds, 3);
  cp__spawn_request absolute =
      make_request(HELPER_PATH("cp-no-such-program"), argv, fds, 3);
  cp__spawn_request empty = make_request("", argv, fds, 3);
  if (fork_path) {
    use_fork_path(&searched);
    use_fork_path(&absolute);
    use_fork_path(&empty);
  }

  assert_spawn_fails(&searched, -ENOENT);
  assert_spawn_fails(&absolute, -ENOENT);
  assert_spawn_fails(&empty, -ENOENT);
  assert_clean_end(fds_before);
}

static void spawn_missing_program_returns_enoent(void **state) {
  (void)state;
  check_missing_program(false);
}

static void spawn_not_a_directory_entry_returns_enotdir(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char env_path[PATH_MAX + 64];
  make_temp_dir(dir);
  write_file(dir, "plain-file", "", 0644);
  snprintf(env_path, sizeof(env_path), "PATH=/nonexistent-cp-dir:%s/plain-file",
           dir);
  char *env[] = {env_path, NULL};
  char *argv[] = {"cp-exit", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("cp-exit", argv, fds, 3);
  request.envp = env;

  /* glibc's execvp reports the last entry's error unless one was EACCES. */
  assert_spawn_fails(&request, -ENOTDIR);

  remove_tree(dir);
  assert_clean_end(fds_before);
}

static void check_non_executable(bool fork_path) {
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char plain[PATH_MAX];
  char program_dir[PATH_MAX];
  char directory_dir[PATH_MAX];
  char dir_named_prog[PATH_MAX];
  char env_path[4 * PATH_MAX];
  char *env[] = {env_path, NULL};
  char *argv[] = {"prog", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};

  make_temp_dir(dir);
  make_dir(dir, "plain", 0755, plain);
  make_dir(dir, "program", 0755, program_dir);
  make_dir(dir, "directory", 0755, directory_dir);
  write_file(plain, "prog", "#!/bin/sh\nexit 1\n", 0644);
  write_file(program_dir, "prog", "#!/bin/sh\nexit 6\n", 0755);
  /* A directory passes an X_OK check but execve rejects it with EACCES. */
  make_dir(directory_dir, "prog", 0755, dir_named_prog);

  cp__spawn_request request = make_request("prog", argv, fds, 3);
  request.envp = env;
  if (fork_path)
    use_fork_path(&request);

  snprintf(env_path, sizeof(env_path), "PATH=%s:/nonexistent-cp-dir", plain);
  assert_spawn_fails(&request, -EACCES);
  snprintf(env_path, sizeof(env_path), "PATH=%s", directory_dir);
  assert_spawn_fails(&request, -EACCES);

  snprintf(env_path, sizeof(env_path), "PATH=%s:%s", plain, program_dir);
  child_exit after_plain = spawn_and_reap(&request);
  snprintf(env_path, sizeof(env_path), "PATH=%s:%s", directory_dir,
           program_dir);
  child_exit after_directory = spawn_and_reap(&request);

  remove_tree(dir);
  assert_int_equal(after_plain.exit_code, 6);
  assert_int_equal(after_directory.exit_code, 6);
  assert_clean_end(fds_before);
}

static void spawn_non_executable_returns_eacces(void **state) {
  (void)state;
  check_non_executable(false);
}

static void check_bad_cwd(bool fork_path) {
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char file_cwd[PATH_MAX];
  char missing_cwd[PATH_MAX];
  make_temp_dir(dir);
  write_file(dir, "plain-file", "", 0644);
  join_path(file_cwd, dir, "plain-file");
  join_path(missing_cwd, dir, "missing");
  char *argv[] = {"sh", "-c", "exit 0", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};

  /* Both with a PATH search, which must not mistake the failed chdir for a
   * missing program (the last entry has no sh), and with an absolute
   * file. */
  char *env[] = {"PATH=/bin:/nonexistent-cp-dir", NULL};
  cp__spawn_request searched = make_request("sh", argv, fds, 3);
  cp__spawn_request absolute = make_request("/bin/sh", argv, fds, 3);
  searched.envp = env;
  if (fork_path) {
    use_fork_path(&searched);
    use_fork_path(&absolute);
  }

  searched.cwd = file_cwd;
  absolute.cwd = file_cwd;
  assert_spawn_fails(&searched, -ENOTDIR);
  assert_spawn_fails(&absolute, -ENOTDIR);

  searched.cwd = missing_cwd;
  absolute.cwd = missing_cwd;
  assert_spawn_fails(&searched, -ENOENT);
  assert_spawn_fails(&absolute, -ENOENT);

  remove_tree(dir);
  assert_clean_end(fds_before);
}

static void spawn_bad_cwd_returns_chdir_error(void **state) {
  (void)state;
  check_bad_cwd(false);
}

static void spawn_runs_child_in_cwd(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char expected[PATH_MAX + 1];
  make_temp_dir(dir);
  snprintf(expected, sizeof(expected), "%s\n", dir);
  int out = make_capture();
  char *argv[] = {"sh", "-c", "pwd", NULL};
  int fds[] = {CP__FD_DEVNULL, out, out};
  cp__spawn_request request = make_request("sh", argv, fds, 3);
  request.cwd = dir;

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 0);
  assert_capture_equal(out, expected);
  close(out);
  remove_tree(dir);
  assert_clean_end(fds_before);
}

static void check_script_without_shebang(bool fork_path) {
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char script[PATH_MAX];
  char env_path[PATH_MAX + 64];
  char expected[2 * PATH_MAX];
  make_temp_dir(dir);
  write_file(dir, "script", "echo \"ran $0 $1\"\nexit 9\n", 0755);
  join_path(script, dir, "script");
  snprintf(env_path, sizeof(env_path), "PATH=/nonexistent-cp-dir:%s", dir);
  snprintf(expected, sizeof(expected), "ran %s arg1\n", script);
  char *env[] = {env_path, NULL};
  char *argv[] = {"script", "arg1", NULL};
  int out_absolute = make_capture();
  int out_searched = make_capture();
  int absolute_fds[] = {CP__FD_DEVNULL, out_absolute, out_absolute};
  int searched_fds[] = {CP__FD_DEVNULL, out_searched, out_searched};

  /* The kernel rejects a file without "#!" with ENOEXEC, and execvp then
   * runs "/bin/sh path arg1", so sh gets the path as $0. */
  cp__spawn_request absolute = make_request(script, argv, absolute_fds, 3);
  cp__spawn_request searched = make_request("script", argv, searched_fds, 3);
  searched.envp = env;
  if (fork_path) {
    use_fork_path(&absolute);
    use_fork_path(&searched);
  }
  child_exit absolute_result = spawn_and_reap(&absolute);
  child_exit searched_result = spawn_and_reap(&searched);

  assert_int_equal(absolute_result.exit_code, 9);
  assert_int_equal(searched_result.exit_code, 9);
  assert_capture_equal(out_absolute, expected);
  assert_capture_equal(out_searched, expected);
  close(out_absolute);
  close(out_searched);
  remove_tree(dir);
  assert_clean_end(fds_before);
}

static void spawn_script_without_shebang_runs_in_sh(void **state) {
  (void)state;
  check_script_without_shebang(false);
}

/* ------------------------------------------------------------------------
 * Descriptors
 * ------------------------------------------------------------------------ */

static void spawn_maps_stdio_descriptors(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  int out = make_capture();
  int err = make_capture();
  char *argv[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2", NULL};
  int fds[] = {CP__FD_DEVNULL, out, err};
  cp__spawn_request request = make_request("sh", argv, fds, 3);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 0);
  assert_capture_equal(out, "to-stdout\n");
  assert_capture_equal(err, "to-stderr\n");
  close(out);
  close(err);
  assert_clean_end(fds_before);
}

/* Fills slots with CP__FD_CLOSED. */
static void close_all_slots(int *fds, size_t count) {
  for (size_t i = 0; i < count; i++)
    fds[i] = CP__FD_CLOSED;
}

/*
 * The parent's descriptors 27 and 28 feed the child's 1, 2, 27 and 28, with
 * 27 and 28 swapped: filling slot 27 from 28 before reading 28 from 27
 * would lose the parent's 27 without the move above fd_count.
 */
static void check_swapped_descriptors(bool fork_path) {
  int fds_before = count_open_fds();
  int first = make_capture();
  int second = make_capture();
  place_fd(first, 27, O_CLOEXEC);
  place_fd(second, 28, O_CLOEXEC);
  /* bash, because dash accepts no descriptor number above 9. */
  char *argv[] = {"bash", "-c",
                  "echo one; echo two >&2; echo 27 >&27; echo 28 >&28", NULL};
  int fds[29];
  close_all_slots(fds, 29);
  fds[0] = CP__FD_DEVNULL;
  fds[1] = 27;
  fds[2] = 28;
  fds[27] = 28;
  fds[28] = 27;
  cp__spawn_request request = make_request("bash", argv, fds, 29);
  if (fork_path)
    use_fork_path(&request);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 0);
  assert_capture_equal(first, "one\n28\n");
  assert_capture_equal(second, "two\n27\n");
  close(27);
  close(28);
  close(first);
  close(second);
  assert_clean_end(fds_before);
}

static void spawn_swaps_low_descriptors(void **state) {
  (void)state;
  check_swapped_descriptors(false);
}

/* A descriptor inherited at its own number stays open in the child even
 * though the parent marked it close-on-exec. */
static void check_inherited_descriptor(bool fork_path) {
  int fds_before = count_open_fds();
  int out = make_capture();
  int inherited = make_capture();
  place_fd(inherited, 25, O_CLOEXEC);
  char *write_argv[] = {"bash", "-c", "echo inherited >&25", NULL};
  char *list_argv[] = {"cp-fds", NULL};
  int fds[26];
  close_all_slots(fds, 26);
  fds[0] = CP__FD_DEVNULL;
  fds[1] = out;
  fds[2] = out;
  fds[25] = 25;

  cp__spawn_request write_request = make_request("bash", write_argv, fds, 26);
  cp__spawn_request list_request =
      make_request(HELPER_PATH("cp-fds"), list_argv, fds, 26);
  if (fork_path) {
    use_fork_path(&write_request);
    use_fork_path(&list_request);
  }
  child_exit write_result = spawn_and_reap(&write_request);
  child_exit list_result = spawn_and_reap(&list_request);

  assert_int_equal(write_result.exit_code, 0);
  assert_int_equal(list_result.exit_code, 0);
  assert_capture_equal(inherited, "inherited\n");
  assert_capture_equal(out, "0\n1\n2\n25\n");
  assert_int_equal(fcntl(25, F_GETFD), FD_CLOEXEC);
  close(25);
  close(out);
  close(inherited);
  assert_clean_end(fds_before);
}

static void spawn_inherits_descriptor_at_own_number(void **state) {
  (void)state;
  check_inherited_descriptor(false);
}

static void check_devnull_slots(bool fork_path) {
  int fds_before = count_open_fds();
  int out = make_capture();
  /* cat reads end of file on fd 0, and the write to fd 0 proves /dev/null
   * was opened read-write. */
  char *argv[] = {"sh", "-c",
                  "readlink /proc/self/fd/0 /proc/self/fd/2 /proc/self/fd/3 "
                  "&& cat && echo written >&0 && echo done",
                  NULL};
  int fds[] = {CP__FD_DEVNULL, out, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("sh", argv, fds, 4);
  if (fork_path)
    use_fork_path(&request);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 0);
  assert_capture_equal(out, "/dev/null\n/dev/null\n/dev/null\ndone\n");
  close(out);
  assert_clean_end(fds_before);
}

static void spawn_opens_devnull_slots(void **state) {
  (void)state;
  check_devnull_slots(false);
}

/* Only the slots reach the child: neither a descriptor of the parent that
 * lacks close-on-exec nor a slot marked closed (here the parent's own
 * stderr at 2). */
static void check_closes_other_descriptors(bool fork_path) {
  int fds_before = count_open_fds();
  int out_short = make_capture();
  int out_gap = make_capture();
  int stray = open("/dev/null", O_RDONLY);
  assert_true(stray >= 4);
  char *argv[] = {"cp-fds", NULL};
  int short_fds[] = {CP__FD_DEVNULL, out_short, CP__FD_CLOSED};
  int gap_fds[] = {CP__FD_DEVNULL, out_gap, CP__FD_CLOSED, CP__FD_DEVNULL};

  cp__spawn_request short_request =
      make_request(HELPER_PATH("cp-fds"), argv, short_fds, 3);
  cp__spawn_request gap_request =
      make_request(HELPER_PATH("cp-fds"), argv, gap_fds, 4);
  if (fork_path) {
    use_fork_path(&short_request);
    use_fork_path(&gap_request);
  }
  child_exit short_result = spawn_and_reap(&short_request);
  child_exit gap_result = spawn_and_reap(&gap_request);

  assert_int_equal(short_result.exit_code, 0);
  assert_int_equal(gap_result.exit_code, 0);
  assert_capture_equal(out_short, "0\n1\n");
  assert_capture_equal(out_gap, "0\n1\n3\n");
  close(stray);
  close(out_short);
  close(out_gap);
  assert_clean_end(fds_before);
}

static void spawn_closes_other_descriptors(void **state) {
  (void)state;
  check_closes_other_descriptors(false);
}

static void spawn_rejects_invalid_request(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char *argv[] = {"sh", "-c", "exit 0", NULL};
  int bad_value[] = {CP__FD_DEVNULL, -3, CP__FD_DEVNULL};
  /* 9 is a closed descriptor below fd_count, so it needs a move. */
  int closed_low[] = {CP__FD_DEVNULL, 9,
                      CP__FD_DEVNULL, CP__FD_CLOSED,
                      CP__FD_CLOSED,  CP__FD_CLOSED,
                      CP__FD_CLOSED,  CP__FD_CLOSED,
                      CP__FD_CLOSED,  CP__FD_CLOSED};
  /* A closed descriptor above fd_count is only found by the child. */
  int closed_high[] = {CP__FD_DEVNULL, 1000, CP__FD_DEVNULL};
  errno = 0;
  assert_int_equal(fcntl(9, F_GETFD), -1);
  assert_int_equal(fcntl(1000, F_GETFD), -1);

  cp__spawn_request request = make_request("sh", argv, bad_value, 3);
  assert_spawn_fails(&request, -EINVAL);
  request.fds = closed_low;
  request.fd_count = 10;
  assert_spawn_fails(&request, -EBADF);
  request.fds = closed_high;
  request.fd_count = 3;
  assert_spawn_fails(&request, -EBADF);
  use_fork_path(&request);
  assert_spawn_fails(&request, -EBADF);
  request.file = NULL;
  assert_spawn_fails(&request, -EINVAL);
  assert_clean_end(fds_before);
}

/* ------------------------------------------------------------------------
 * Session and signals
 * ------------------------------------------------------------------------ */

/* Reads the process group and session of the child from the
 * /proc/PID/stat line it printed. */
static void parse_stat_line(const char *line, int *pgrp, int *session) {
  const char *after_name = strrchr(line, ')');
  assert_non_null(after_name);

  char state;
  int ppid;
  assert_int_equal(
      sscanf(after_name + 1, " %c %d %d %d", &state, &ppid, pgrp, session), 4);
}

static void check_session(bool fork_path) {
  int fds_before = count_open_fds();
  int out_detached = make_capture();
  int out_attached = make_capture();
  char *argv[] = {"sh", "-c", "cat /proc/$$/stat", NULL};
  int detached_fds[] = {CP__FD_DEVNULL, out_detached, CP__FD_DEVNULL};
  int attached_fds[] = {CP__FD_DEVNULL, out_attached, CP__FD_DEVNULL};
  cp__spawn_request detached = make_request("sh", argv, detached_fds, 3);
  cp__spawn_request attached = make_request("sh", argv, attached_fds, 3);
  detached.detached = true;
  if (fork_path) {
    use_fork_path(&detached);
    use_fork_path(&attached);
  }

  pid_t detached_pid = 0;
  pid_t attached_pid = 0;
  assert_int_equal(cp__spawn_process(&detached, &detached_pid), 0);
  assert_int_equal(cp__spawn_process(&attached, &attached_pid), 0);
  child_exit detached_result = wait_and_reap(detached_pid, false);
  child_exit attached_result = wait_and_reap(attached_pid, false);

  char buffer[4096];
  int pgrp = 0;
  int session = 0;
  assert_int_equal(detached_result.exit_code, 0);
  parse_stat_line(read_capture(out_detached, buffer, sizeof(buffer)), &pgrp,
                  &session);
  assert_int_equal(session, detached_pid);
  assert_int_equal(pgrp, detached_pid);

  assert_int_equal(attached_result.exit_code, 0);
  parse_stat_line(read_capture(out_attached, buffer, sizeof(buffer)), &pgrp,
                  &session);
  assert_int_equal(session, getsid(0));
  assert_int_equal(pgrp, getpgrp());

  close(out_detached);
  close(out_attached);
  assert_clean_end(fds_before);
}

static void spawn_detached_child_leads_session(void **state) {
  (void)state;
  check_session(false);
}

static void on_test_signal(int signum) { (void)signum; }

/* With SIGUSR1 blocked, SIGUSR2 ignored and SIGTERM handled in the parent,
 * a child that sends itself each of them must die of it. */
static void check_signals_reset(bool fork_path) {
  int fds_before = count_open_fds();
  sigset_t block;
  sigset_t saved_mask;
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  struct sigaction handle = {.sa_handler = on_test_signal};
  struct sigaction saved_usr2;
  struct sigaction saved_term;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &saved_mask), 0);
  assert_int_equal(sigaction(SIGUSR2, &ignore, &saved_usr2), 0);
  assert_int_equal(sigaction(SIGTERM, &handle, &saved_term), 0);

  int signals[] = {SIGUSR1, SIGUSR2, SIGTERM};
  child_exit results[3];
  for (size_t i = 0; i < 3; i++) {
    char number[16];
    snprintf(number, sizeof(number), "%d", signals[i]);
    char *argv[] = {"cp-exit", "-s", number, NULL};
    int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, 2};
    cp__spawn_request request =
        make_request(HELPER_PATH("cp-exit"), argv, fds, 3);
    if (fork_path)
      use_fork_path(&request);
    results[i] = spawn_and_reap(&request);
  }

  assert_int_equal(pthread_sigmask(SIG_SETMASK, &saved_mask, NULL), 0);
  assert_int_equal(sigaction(SIGUSR2, &saved_usr2, NULL), 0);
  assert_int_equal(sigaction(SIGTERM, &saved_term, NULL), 0);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(results[i].exit_code, -1);
    assert_int_equal(results[i].signum, signals[i]);
  }
  assert_clean_end(fds_before);
}

static void spawn_resets_signal_mask_and_dispositions(void **state) {
  (void)state;
  check_signals_reset(false);
}

/* ------------------------------------------------------------------------
 * The fork path
 * ------------------------------------------------------------------------ */

static bool running_as_root(void) {
  if (geteuid() == 0)
    return true;
  print_message("skipped: changing the child's user needs root\n");
  return false;
}

static void spawn_fork_sets_uid_and_gid(void **state) {
  (void)state;
  if (!running_as_root())
    skip();
  int fds_before = count_open_fds();
  int out = make_capture();
  char *argv[] = {"sh", "-c", "id -u; id -g; id -G", NULL};
  int fds[] = {CP__FD_DEVNULL, out, 2};
  cp__spawn_request request = make_request("sh", argv, fds, 3);
  request.set_uid = true;
  request.uid = NOBODY_ID;
  request.set_gid = true;
  request.gid = NOBODY_ID;

  /* A supplementary group in the parent, which the child must not keep. */
  gid_t saved_groups[64];
  int saved_count = getgroups(64, saved_groups);
  assert_true(saved_count >= 0);
  gid_t extra_group = 4242;
  assert_int_equal(setgroups(1, &extra_group), 0);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(setgroups((size_t)saved_count, saved_groups), 0);
  /* id -G lists the supplementary groups, and shows only the gid when there
   * are none. */
  assert_int_equal(result.exit_code, 0);
  assert_capture_equal(out, "65534\n65534\n65534\n");
  close(out);
  assert_clean_end(fds_before);
}

static void spawn_fork_bad_cwd_returns_chdir_error(void **state) {
  (void)state;
  check_bad_cwd(true);
}

/* chdir runs before setuid, as in libuv: root may start an unprivileged
 * child in a directory that only root can enter. */
static void spawn_fork_enters_cwd_before_setuid(void **state) {
  (void)state;
  if (!running_as_root())
    skip();
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char private_dir[PATH_MAX];
  make_temp_dir(dir);
  assert_int_equal(chmod(dir, 0755), 0);
  make_dir(dir, "private", 0700, private_dir);
  char *argv[] = {"sh", "-c", "exit 7", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("sh", argv, fds, 3);
  request.set_uid = true;
  request.uid = NOBODY_ID;
  request.cwd = private_dir;

  child_exit result = spawn_and_reap(&request);
  assert_int_equal(result.exit_code, 7);

  remove_tree(dir);
  assert_clean_end(fds_before);
}

static void spawn_fork_missing_program_returns_enoent(void **state) {
  (void)state;
  check_missing_program(true);
}

static void spawn_fork_non_executable_returns_eacces(void **state) {
  (void)state;
  check_non_executable(true);
}

/* As the user nobody, an earlier PATH directory that only root may search
 * gives EACCES, and the search goes on to the later directory. */
static void spawn_fork_denied_dir_then_later_dir_runs(void **state) {
  (void)state;
  if (!running_as_root())
    skip();
  int fds_before = count_open_fds();
  char dir[PATH_MAX];
  char denied[PATH_MAX];
  char allowed[PATH_MAX];
  char env_path[3 * PATH_MAX];
  make_temp_dir(dir);
  assert_int_equal(chmod(dir, 0755), 0);
  make_dir(dir, "denied", 0700, denied);
  make_dir(dir, "allowed", 0755, allowed);
  write_file(denied, "prog", "#!/bin/sh\nexit 1\n", 0755);
  write_file(allowed, "prog", "#!/bin/sh\nexit 6\n", 0755);
  char *env[] = {env_path, NULL};
  char *argv[] = {"prog", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, CP__FD_DEVNULL};
  cp__spawn_request request = make_request("prog", argv, fds, 3);
  request.envp = env;
  request.set_uid = true;
  request.uid = NOBODY_ID;
  request.set_gid = true;
  request.gid = NOBODY_ID;

  snprintf(env_path, sizeof(env_path), "PATH=%s", denied);
  assert_spawn_fails(&request, -EACCES);
  snprintf(env_path, sizeof(env_path), "PATH=%s:%s", denied, allowed);
  child_exit result = spawn_and_reap(&request);

  remove_tree(dir);
  assert_int_equal(result.exit_code, 6);
  assert_clean_end(fds_before);
}

static void spawn_fork_script_without_shebang_runs_in_sh(void **state) {
  (void)state;
  check_script_without_shebang(true);
}

static void spawn_fork_swaps_low_descriptors(void **state) {
  (void)state;
  check_swapped_descriptors(true);
}

static void spawn_fork_inherits_descriptor_at_own_number(void **state) {
  (void)state;
  check_inherited_descriptor(true);
}

static void spawn_fork_opens_devnull_slots(void **state) {
  (void)state;
  check_devnull_slots(true);
}

static void spawn_fork_closes_other_descriptors(void **state) {
  (void)state;
  check_closes_other_descriptors(true);
}

static void spawn_fork_detached_child_leads_session(void **state) {
  (void)state;
  check_session(true);
}

static void spawn_fork_resets_signal_mask_and_dispositions(void **state) {
  (void)state;
  check_signals_reset(true);
}

/* ------------------------------------------------------------------------
 * Reaping and pidfds
 * ------------------------------------------------------------------------ */

static void check_reap(bool by_pid) {
  int fds_before = count_open_fds();
  char *exit_argv[] = {"cp-exit", "42", NULL};
  char *kill_argv[] = {"cp-exit", "-s", "9", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, 2};
  cp__spawn_request exits =
      make_request(HELPER_PATH("cp-exit"), exit_argv, fds, 3);
  cp__spawn_request killed =
      make_request(HELPER_PATH("cp-exit"), kill_argv, fds, 3);

  pid_t exit_pid = 0;
  pid_t kill_pid = 0;
  assert_int_equal(cp__spawn_process(&exits, &exit_pid), 0);
  assert_int_equal(cp__spawn_process(&killed, &kill_pid), 0);
  child_exit exit_result = wait_and_reap(exit_pid, by_pid);
  child_exit kill_result = wait_and_reap(kill_pid, by_pid);

  assert_int_equal(exit_result.exit_code, 42);
  assert_int_equal(exit_result.signum, 0);
  assert_int_equal(kill_result.exit_code, -1);
  assert_int_equal(kill_result.signum, SIGKILL);
  assert_clean_end(fds_before);
}

static void reap_pidfd_reports_exit_and_signal(void **state) {
  (void)state;
  skip_without_pidfd();
  check_reap(false);
}

static void reap_pid_reports_exit_and_signal(void **state) {
  (void)state;
  check_reap(true);
}

/* Starts cat reading a pipe whose write end the caller holds, so the child
 * runs until the caller closes it. */
static pid_t spawn_waiting_child(int *write_end) {
  int pipe_fds[2];
  assert_int_equal(pipe2(pipe_fds, O_CLOEXEC), 0);
  char *argv[] = {"cat", NULL};
  int fds[] = {pipe_fds[0], CP__FD_DEVNULL, 2};
  cp__spawn_request request = make_request("cat", argv, fds, 3);

  pid_t pid = 0;
  assert_int_equal(cp__spawn_process(&request, &pid), 0);
  close(pipe_fds[0]);
  *write_end = pipe_fds[1];
  return pid;
}

static void reap_returns_zero_while_running(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  bool with_pidfd = pidfd_supported();
  int write_end;
  pid_t pid = spawn_waiting_child(&write_end);
  int pidfd = -1;
  if (with_pidfd) {
    pidfd = cp__pidfd_open(pid);
    assert_true(pidfd >= 0);
  }

  int exit_code = 99;
  int signum = 99;
  if (with_pidfd)
    assert_int_equal(cp__reap(pidfd, pid, &exit_code, &signum, NULL), 0);
  assert_int_equal(cp__reap(-1, pid, &exit_code, &signum, NULL), 0);
  assert_int_equal(exit_code, 99);
  assert_int_equal(signum, 99);

  close(write_end);
  wait_for_exit(pid, pidfd);
  assert_int_equal(cp__reap(pidfd, pid, &exit_code, &signum, NULL), 1);
  assert_int_equal(exit_code, 0);
  assert_int_equal(signum, 0);
  if (pidfd >= 0)
    close(pidfd);
  assert_clean_end(fds_before);
}

static void reap_reports_cpu_time(void **state) {
  (void)state;
  int fds_before = count_open_fds();
  char *argv[] = {"sh", "-c",
                  "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done", NULL};
  int fds[] = {CP__FD_DEVNULL, CP__FD_DEVNULL, 2};
  cp__spawn_request request = make_request("sh", argv, fds, 3);

  child_exit result = spawn_and_reap(&request);

  assert_int_equal(result.exit_code, 0);
  assert_true(result.rusage.user_cpu_time_us > 0);
  assert_true(result.rusage.max_rss_kib > 0);
  assert_clean_end(fds_before);
}

static void pidfd_send_signal_kills_child(void **state) {
  (void)state;
  skip_without_pidfd();
  int fds_before = count_open_fds();
  int write_end;
  pid_t pid = spawn_waiting_child(&write_end);
  int pidfd = cp__pidfd_open(pid);
  assert_true(pidfd >= 0);
  assert_int_equal(fcntl(pidfd, F_GETFD), FD_CLOEXEC);

  assert_int_equal(cp__pidfd_send_signal(pidfd, 0), 0);
  assert_int_equal(cp__pidfd_send_signal(pidfd, 1000), -EINVAL);
  assert_int_equal(cp__pidfd_send_signal(pidfd, SIGTERM), 0);
  wait_for_exit(pid, pidfd);

  int exit_code = 0;
  int signum = 0;
  assert_int_equal(cp__reap(pidfd, pid, &exit_code, &signum, NULL), 1);
  assert_int_equal(exit_code, -1);
  assert_int_equal(signum, SIGTERM);
  /* The pidfd still refers to the reaped process, never to a later process
   * with the same PID. */
  assert_int_equal(cp__pidfd_send_signal(pidfd, SIGTERM), -ESRCH);

  close(write_end);
  close(pidfd);
  assert_clean_end(fds_before);
}

static void pidfd_open_rejects_invalid_pid(void **state) {
  (void)state;
  skip_without_pidfd();
  assert_int_equal(cp__pidfd_open(-1), -EINVAL);
  assert_int_equal(cp__pidfd_send_signal(-1, SIGTERM), -EBADF);
  assert_int_equal(cp__reap(-1, getpid(), NULL, NULL, NULL), -ECHILD);
}

/* libuv opens a process-wide pipe with its first loop and keeps it, so
 * one loop is made up front for the descriptor counts of the tests. */
static int open_libuv_globals(void **state) {
  uv_loop_t loop;
  (void)state;

  if (uv_loop_init(&loop) != 0)
    return -1;
  return uv_loop_close(&loop);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spawn_absolute_path_runs),
      cmocka_unit_test(spawn_path_search_uses_env_path),
      cmocka_unit_test(spawn_default_path_without_env_path),
      cmocka_unit_test(spawn_relative_path_entry_uses_cwd),
      cmocka_unit_test(spawn_empty_path_entry_means_cwd),
      cmocka_unit_test(spawn_relative_file_uses_cwd),
      cmocka_unit_test(spawn_missing_program_returns_enoent),
      cmocka_unit_test(spawn_not_a_directory_entry_returns_enotdir),
      cmocka_unit_test(spawn_non_executable_returns_eacces),
      cmocka_unit_test(spawn_bad_cwd_returns_chdir_error),
      cmocka_unit_test(spawn_runs_child_in_cwd),
      cmocka_unit_test(spawn_script_without_shebang_runs_in_sh),
      cmocka_unit_test(spawn_maps_stdio_descriptors),
      cmocka_unit_test(spawn_swaps_low_descriptors),
      cmocka_unit_test(spawn_inherits_descriptor_at_own_number),
      cmocka_unit_test(spawn_opens_devnull_slots),
      cmocka_unit_test(spawn_closes_other_descriptors),
      cmocka_unit_test(spawn_rejects_invalid_request),
      cmocka_unit_test(spawn_detached_child_leads_session),
      cmocka_unit_test(spawn_resets_signal_mask_and_dispositions),
      cmocka_unit_test(spawn_fork_sets_uid_and_gid),
      cmocka_unit_test(spawn_fork_bad_cwd_returns_chdir_error),
      cmocka_unit_test(spawn_fork_enters_cwd_before_setuid),
      cmocka_unit_test(spawn_fork_missing_program_returns_enoent),
      cmocka_unit_test(spawn_fork_non_executable_returns_eacces),
      cmocka_unit_test(spawn_fork_denied_dir_then_later_dir_runs),
      cmocka_unit_test(spawn_fork_script_without_shebang_runs_in_sh),
      cmocka_unit_test(spawn_fork_swaps_low_descriptors),
      cmocka_unit_test(spawn_fork_inherits_descriptor_at_own_number),
      cmocka_unit_test(spawn_fork_opens_devnull_slots),
      cmocka_unit_test(spawn_fork_closes_other_descriptors),
      cmocka_unit_test(spawn_fork_detached_child_leads_session),
      cmocka_unit_test(spawn_fork_resets_signal_mask_and_dispositions),
      cmocka_unit_test(reap_pidfd_reports_exit_and_signal),
      cmocka_unit_test(reap_pid_reports_exit_and_signal),
      cmocka_unit_test(reap_returns_zero_while_running),
      cmocka_unit_test(reap_reports_cpu_time),
      cmocka_unit_test(pidfd_send_signal_kills_child),
      cmocka_unit_test(pidfd_open_rejects_invalid_pid),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, open_libuv_globals, NULL);
}
