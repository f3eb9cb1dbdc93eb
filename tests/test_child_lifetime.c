/*
 * Lifetime of a cp_child: release from listeners and while running, ref and
 * unref, and thousands of spawns without a leaked descriptor, zombie or
 * memory. Every case starts real processes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "childproc.h"
#include "test_util.h"

/* Milliseconds a loop may run before the case fails. */
enum { GUARD_MS = 10000 };

static void assert_no_child_left(void) {
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

/* Resident set size of this process in KiB, from /proc/self/status. */
static long resident_kib(void) {
  FILE *status = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;

  assert_non_null(status);
  while (fgets(line, sizeof(line), status) != NULL) {
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  }
  fclose(status);
  assert_true(kib > 0);
  return kib;
}

/* Whether freed memory is held back from reuse (ASan's quarantine,
 * valgrind's freed-block queue), which makes RSS grow without a leak. Those
 * tools report leaks themselves. Valgrind is found by the preload library
 * it injects into the programs it runs. */
static bool memory_checker_active(void) {
  const char *preload = getenv("LD_PRELOAD");

#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

static void spawn_true_times(uv_loop_t *loop, int count) {
  for (int i = 0; i < count; i++) {
    cp_test_record record;

    cp_test_run_child(loop, "/bin/true", NULL, NULL, &record, GUARD_MS);
    if (strcmp(record.events, "SXC") != 0 || record.exit_code != 0)
      fail_msg("spawn %d of /bin/true: events \"%s\", exit code %d", i,
               record.events, record.exit_code);
    cp_test_record_free(&record);
  }
}

static void spawn_repeated_leaks_nothing(void **state) {
  enum { WARM_UP = 200, SPAWNS = 2000, RSS_SLACK_KIB = 2048 };
  size_t fds_before;
  long rss_before;
  long rss_after;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);

  /* The warm-up lets allocator arenas and libuv's lazily created state
   * reach their steady size before the baseline is taken. */
  spawn_true_times(&loop, WARM_UP);
  fds_before = cp_test_count_fds();
  rss_before = resident_kib();

  spawn_true_times(&loop, SPAWNS);

  assert_int_equal(cp_test_count_fds(), fds_before);
  assert_no_child_left();
  rss_after = resident_kib();
  if (memory_checker_active()) {
    fprintf(stderr, "RSS check skipped under a memory checker: %ld KiB "
                    "before, %ld KiB after\n",
            rss_before, rss_after);
  } else if (rss_after - rss_before >= RSS_SLACK_KIB) {
    fail_msg("RSS grew from %ld KiB to %ld KiB over %d spawns", rss_before,
             rss_after, SPAWNS);
  }

  cp_test_loop_finish(&loop);
}

static void unref_lets_loop_return(void **state) {
  const char *const args[] = {"30", NULL};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;
  pid_t pid;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "sleep", args, NULL, &record);
  pid = cp_child_pid(child);
  cp_child_unref(child);

  /* Returns while sleep still runs. Otherwise the guard fails the case. */
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "S");
  assert_int_equal(cp_child_exit_code(child), -1);
  assert_int_equal(kill(pid, 0), 0);

  assert_int_equal(cp_child_kill(child, SIGTERM), 1);
  cp_child_ref(child);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_signal, SIGTERM);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* The grace timer of cp_child_terminate() is made on that call, for a
 * child that is already unreferenced, and must not hold the loop either.
 * SIGCONT leaves sleep running, so only the grace's SIGKILL would end it,
 * 60 s later: the guard fails the case first if the timer holds the loop. */
static void unref_child_grace_timer_lets_loop_return(void **state) {
  const char *const args[] = {"30", NULL};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;
  pid_t pid;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "sleep", args, NULL, &record);
  pid = cp_child_pid(child);
  cp_child_unref(child);
  cp_test_loop_run(&loop, GUARD_MS);
  assert_string_equal(record.events, "S");

  assert_int_equal(cp_child_terminate(child, SIGCONT, 60000, false), 1);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "S");
  assert_int_equal(kill(pid, 0), 0);

  assert_int_equal(cp_child_kill(child, SIGTERM), 1);
  cp_child_ref(child);
  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_signal, SIGTERM);

  cp_child_release(child);
  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* Counts the calls of a listener that releases the child. */
static void release_in_listener(cp_child *child, const cp_event *event,
                                void *data) {
  (void)event;
  ++*(int *)data;
  cp_child_release(child);
}

static void release_inside_exit_listener(void **state) {
  const char *const args[] = {"-c", "echo out; echo err >&2; exit 5", NULL};
  cp_test_record record;
  cp_child *child;
  int releases = 0;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/sh", args, NULL, &record);
  assert_int_equal(
      cp_child_on(child, CP_EVENT_EXIT, release_in_listener, &releases), 0);

  cp_test_loop_run(&loop, GUARD_MS);

  /* CLOSE and the output still arrive after the release. */
  assert_int_equal(releases, 1);
  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 5);
  assert_int_equal(record.close_exit_code, 5);
  assert_string_equal(record.out.bytes, "out\n");
  assert_string_equal(record.err.bytes, "err\n");

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

static void release_inside_close_listener(void **state) {
  const char *const args[] = {"-c", "echo out; exit 6", NULL};
  cp_test_record record;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  cp_test_spawn(&loop, "/bin/sh", args, NULL, &record);
  record.release_at_close = true;

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.close_exit_code, 6);
  assert_string_equal(record.out.bytes, "out\n");

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

/* A child released while it runs is still reaped, and its listeners still
 * run. */
static void release_while_running_still_reaps(void **state) {
  const char *const args[] = {"-c", "sleep 0.1; exit 3", NULL};
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;
  pid_t pid;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "/bin/sh", args, NULL, &record);
  pid = cp_child_pid(child);
  assert_true(pid > 0);
  cp_child_release(child);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "SXC");
  assert_int_equal(record.exit_code, 3);
  assert_int_equal(record.pid_at_spawn, pid);
  assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

static void release_unstarted_child_still_emits(void **state) {
  cp_test_record record;
  cp_child *child;
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  child = cp_test_spawn(&loop, "cp-no-such-program", NULL, NULL, &record);
  cp_child_release(child);

  cp_test_loop_run(&loop, GUARD_MS);

  assert_string_equal(record.events, "EC");
  assert_int_equal(record.error, -ENOENT);
  assert_int_equal(record.close_exit_code, -ENOENT);

  cp_test_record_free(&record);
  cp_test_loop_finish(&loop);
}

/* Many children at once, each released right away, with output. */
static void release_many_running_children(void **state) {
  enum { CHILDREN = 50 };
  const char *const args[] = {"-c", "echo $$", NULL};
  cp_test_record records[CHILDREN];
  pid_t pids[CHILDREN];
  uv_loop_t loop;

  (void)state;
  assert_int_equal(uv_loop_init(&loop), 0);
  for (int i = 0; i < CHILDREN; i++) {
    cp_child *child = cp_test_spawn(&loop, "/bin/sh", args, NULL, &records[i]);

    pids[i] = cp_child_pid(child);
    cp_child_release(child);
  }

  cp_test_loop_run(&loop, GUARD_MS);

  for (int i = 0; i < CHILDREN; i++) {
    char expected[32];

    snprintf(expected, sizeof(expected), "%ld\n", (long)pids[i]);
    assert_string_equal(records[i].events, "SXC");
    assert_int_equal(records[i].exit_code, 0);
    assert_string_equal(records[i].out.bytes, expected);
    cp_test_record_free(&records[i]);
  }
  cp_test_loop_finish(&loop);
  assert_no_child_left();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spawn_repeated_leaks_nothing),
      cmocka_unit_test(unref_lets_loop_return),
      cmocka_unit_test(unref_child_grace_timer_lets_loop_return),
      cmocka_unit_test(release_inside_exit_listener),
      cmocka_unit_test(release_inside_close_listener),
      cmocka_unit_test(release_while_running_still_reaps),
      cmocka_unit_test(release_unstarted_child_still_emits),
      cmocka_unit_test(release_many_running_children),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
