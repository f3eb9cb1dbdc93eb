/* The cp_child object, shared by the files that implement it. */
#ifndef CP_CHILD_INTERNAL_H
#define CP_CHILD_INTERNAL_H

#include <stdbool.h>

#include "channel.h"
#include "child.h"
#include "emitter.h"
#include "message-queue.h"

/* What the kill timer is waiting for. */
typedef enum cp__kill_stage {
  CP__KILL_IDLE = 0,
  CP__KILL_TIMEOUT, /* the timeout option: then timeout_signal */
  CP__KILL_GRACE    /* a signal was sent: then SIGKILL */
} cp__kill_stage;

/* The kill timer with what it sends when it fires. Created for the timeout
 * option or by the first cp_child_terminate() with a grace period, so that
 * most children never have one. */
typedef struct cp__kill_timer {
  uv_timer_t timer; /* first: handle_closed() frees the block by its address */
  uint64_t timeout_grace; /* ms from timeout_signal to SIGKILL; 0: none */
  int timeout_signal;
  bool timeout_group; /* the timeout's signals go to the process group */
  bool grace_group;   /* the SIGKILL after the grace goes to the group */
  cp__kill_stage stage;
} cp__kill_timer;

/*
 * Handles: exit_watch is part of the child. The timers are allocated when
 * first needed, owned by the child and counted in handles_open until their
 * close callback, handle_closed() in child.c, frees them. next_tick and
 * replay_timer close as soon as their work is done; kill stays until the
 * child closes its handles.
 */
struct cp_child {
  uv_loop_t *loop;
  cp__emitter emitter;

  /* Owned, one block: command[0] is spawnfile and command + 1 the
   * NULL-terminated spawnargs; the text follows the pointers. */
  char **command;

  /* Readable pidfd, or SIGCHLD where pidfds are missing (use_sigchld): the
   * child exited. Initialized once pidfd >= 0 or use_sigchld. */
  union {
    uv_poll_t pidfd;
    uv_signal_t sigchld;
  } exit_watch;
  uv_timer_t *next_tick; /* emits spawn, or the spawn error, after the call */
  cp__kill_timer *kill;  /* NULL until a timeout or grace period needs it */
  uv_timer_t *replay_timer; /* NULL while no kept message waits for replay */

  cp_stream **stdio; /* owned array; entries NULL where not a pipe */
  size_t stdio_count;
  size_t closes_needed; /* streams past stdin (all readable) not closed yet */
  cp__channel *channel; /* owned; NULL without a CP_STDIO_IPC entry */
  /* Messages that came while nobody listened for MESSAGE, as Node keeps
   * them; replayed by replay_timer once a listener is added. */
  cp__message_queue unheard;

  cp_rusage rusage;
  pid_t pid;       /* 0 until started */
  int pidfd;       /* -1 when not started, reaped, or pidfds are missing */
  int spawn_error; /* negative errno when the process never started */
  int exit_code;
  int term_signal;
  unsigned holds;        /* emits in progress that may release the child */
  unsigned handles_open; /* uv handles whose close callback is still due */

  bool use_sigchld; /* no pidfd: exits are found on SIGCHLD */
  bool detached;
  bool exited; /* reaped */
  bool killed;
  bool channel_closed; /* the channel's close event has run */
  bool referenced;
  bool spawn_emitted;
  bool close_emitted;
  bool released;
  bool handles_closing;
};

/* Whether SIGCHLD is used even where pidfds work; set by tests that cover
 * the fallback. */
extern bool cp__force_sigchld;

/* child.c */
cp_child *cp__child_new(uv_loop_t *loop);
void cp__child_free_unstarted(cp_child *child);
int cp__child_start_watch(cp_child *child);
void cp__child_schedule_next_tick(cp_child *child);
void cp__child_emit(cp_child *child, const cp_event *event);

void cp__child_count_close(cp_child *child);

/* Creates a timer for the child, counted in handles_open, with data
 * pointing to the child. Returns NULL when out of memory. */
uv_timer_t *cp__child_new_timer(cp_child *child);

/* Closes *timer, if any, and sets it to NULL; handle_closed() frees it. */
void cp__child_close_timer(cp_child *child, uv_timer_t **timer);

/* child-ipc.c */
int cp__child_open_channel(cp_child *child, int fd, size_t max_message_size);
int cp__child_message_listener_added(cp_child *child);

/* child-kill.c */
int cp__child_signal(cp_child *child, int signum, bool group);
int cp__child_prepare_timeout(cp_child *child,
                              const cp_spawn_options *options);
void cp__child_start_timeout(cp_child *child, uint64_t timeout);
void cp__child_stop_kill_timer(cp_child *child);

#endif
