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
  CP__KILL_TIMEOUT, /* the timeout option: then kill_signal */
  CP__KILL_GRACE    /* a signal was sent: then SIGKILL */
} cp__kill_stage;

struct cp_child {
  uv_loop_t *loop;
  cp__emitter emitter;

  char *spawnfile;  /* owned */
  char **spawnargs; /* owned, NULL-terminated, each string owned */
  char *spawn_syscall; /* owned: "spawn FILE", for spawn error events */

  pid_t pid;        /* 0 until started */
  int pidfd;        /* -1 when not started, reaped, or pidfds are missing */
  bool use_sigchld; /* no pidfd: exits are found on SIGCHLD */
  bool detached;
  uv_poll_t exit_poll;  /* readable pidfd: the child exited */
  uv_signal_t sigchld;  /* the SIGCHLD fallback */
  uv_timer_t next_tick; /* emits spawn, or the spawn error, after the call */
  uv_timer_t kill_timer;

  int spawn_error; /* negative errno when the process never started */
  bool exited;     /* reaped */
  int exit_code;
  int term_signal;
  cp_rusage rusage;
  bool killed;

  cp_stream **stdio; /* owned array; entries NULL where not a pipe */
  cp__channel *channel; /* owned; NULL without a CP_STDIO_IPC entry */
  bool channel_closed;  /* the channel's close event has run */
  /* Messages that came while nobody listened for MESSAGE, as Node keeps
   * them; replayed by replay_timer once a listener is added. */
  cp__message_queue unheard;
  uv_timer_t replay_timer;
  size_t stdio_count;
  size_t closes_needed; /* streams past stdin (all readable) not closed yet */

  uint64_t timeout;
  int kill_signal;
  uint64_t kill_grace;
  bool kill_group;
  cp__kill_stage kill_stage;
  bool grace_group; /* the SIGKILL after the grace goes to the group */

  bool referenced;
  bool spawn_emitted;
  bool close_emitted;
  bool released;
  bool handles_closing;
  unsigned holds;        /* emits in progress that may release the child */
  unsigned handles_open; /* uv handles whose close callback is still due */
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

/* child-ipc.c */
int cp__child_open_channel(cp_child *child, int fd, size_t max_message_size);
void cp__child_message_listener_added(cp_child *child);

/* child-kill.c */
int cp__child_signal(cp_child *child, int signum, bool group);
void cp__child_start_timeout(cp_child *child);
void cp__child_stop_kill_timer(cp_child *child);
void cp__kill_timer_cb(uv_timer_t *timer);

#endif
