/* kill(), the timeout option and SIGKILL escalation. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "child-internal.h"
#include "spawn.h"

/* 0 (a check that the process exists) or a signal with a name. glibc keeps
 * 32 and 33 for itself, and Node rejects them too. */
static bool is_signal_number(int signum) {
  return signum == 0 || cp_signal_name(signum) != NULL;
}

/* Delivers signum without ever reaching a process that reused the child's
 * PID: through the pidfd, or with kill(2) only while the child is unreaped
 * (an unreaped PID cannot be reused, and neither can the ID of a process
 * group whose leader is unreaped). Returns 0 or a negative errno; -ESRCH
 * once the child has been reaped. */
static int send_signal(cp_child *child, int signum, bool group) {
  if (child->pid == 0 || child->exited)
    return -ESRCH;

  if (group)
    return kill(-child->pid, signum) == 0 ? 0 : -errno;
  if (child->pidfd >= 0)
    return cp__pidfd_send_signal(child->pidfd, signum);
  return kill(child->pid, signum) == 0 ? 0 : -errno;
}

/* Node's kill() outcome: 1 delivered, 0 not (an error event for anything
 * but a dead child), a negative code for a signal the system rejects. */
int cp__child_signal(cp_child *child, int signum, bool group) {
  int r;

  if (!is_signal_number(signum))
    return CP_ERR_UNKNOWN_SIGNAL;

  r = send_signal(child, signum, group);
  if (r == 0) {
    child->killed = true;
    return 1;
  }
  if (r == -ESRCH)
    return 0;
  if (r == -EINVAL || r == -ENOSYS)
    return r;

  cp__child_emit(child, &(cp_event){.type = CP_EVENT_ERROR,
                                    .error = r,
                                    .syscall = "kill"});
  return 0;
}

int cp_child_kill(cp_child *child, int signum) {
  return cp__child_signal(child, signum, false);
}

int cp_child_kill_name(cp_child *child, const char *signal_name) {
  int signum = signal_name == NULL ? SIGTERM : cp_signal_from_name(signal_name);

  if (signum < 0)
    return signum;
  return cp__child_signal(child, signum, false);
}

int cp_child_kill_group(cp_child *child, int signum) {
  if (!is_signal_number(signum))
    return CP_ERR_UNKNOWN_SIGNAL;
  if (!child->detached)
    return CP_ERR_INVALID_ARG_VALUE;
  return cp__child_signal(child, signum, true);
}

static void kill_timer_cb(uv_timer_t *timer);

/* The child's kill timer, created on first use and unreferenced with an
 * unreferenced child. Returns NULL when out of memory. */
static cp__kill_timer *kill_timer(cp_child *child) {
  cp__kill_timer *kill = child->kill;

  if (kill != NULL)
    return kill;

  kill = calloc(1, sizeof(*kill));
  if (kill == NULL)
    return NULL;

  uv_timer_init(child->loop, &kill->timer);
  kill->timer.data = child;
  if (!child->referenced)
    uv_unref((uv_handle_t *)&kill->timer);
  child->handles_open++;
  child->kill = kill;
  return kill;
}

static void start_grace(cp_child *child, uint64_t grace_ms, bool group) {
  child->kill->stage = CP__KILL_GRACE;
  child->kill->grace_group = group;
  uv_timer_start(&child->kill->timer, kill_timer_cb, grace_ms, 0);
}

int cp_child_terminate(cp_child *child, int signum, uint64_t grace_ms,
                       bool group) {
  int r;

  if (group && !child->detached)
    return CP_ERR_INVALID_ARG_VALUE;
  /* The timer exists before the signal goes, so that a signal sent is
   * always followed by its SIGKILL. */
  if (grace_ms > 0 && !child->exited && kill_timer(child) == NULL)
    return -ENOMEM;

  r = cp__child_signal(child, signum, group);
  if (r == 1 && grace_ms > 0 && !child->exited)
    start_grace(child, grace_ms, group);
  return r;
}

static void kill_timer_cb(uv_timer_t *timer) {
  cp_child *child = timer->data;
  cp__kill_timer *kill = child->kill;
  cp__kill_stage stage = kill->stage;

  kill->stage = CP__KILL_IDLE;
  cp__child_hold(child);

  if (stage == CP__KILL_TIMEOUT) {
    int r = cp__child_signal(child, kill->timeout_signal, kill->timeout_group);

    if (r == 1 && kill->timeout_grace > 0 && !child->exited)
      start_grace(child, kill->timeout_grace, kill->timeout_group);
  } else if (stage == CP__KILL_GRACE) {
    cp__child_signal(child, SIGKILL, kill->grace_group);
  }
  cp__child_unhold(child);
}

/* Creates the kill timer for the timeout option, before the process starts,
 * since only running out of memory may fail cp_spawn(). Returns 0 or
 * -ENOMEM. */
int cp__child_prepare_timeout(cp_child *child,
                              const cp_spawn_options *options) {
  cp__kill_timer *kill;

  if (options->timeout == 0)
    return 0;

  kill = kill_timer(child);
  if (kill == NULL)
    return -ENOMEM;
  kill->timeout_signal =
      options->kill_signal != 0 ? options->kill_signal : SIGTERM;
  kill->timeout_grace = options->kill_grace;
  kill->timeout_group = options->kill_group;
  return 0;
}

void cp__child_start_timeout(cp_child *child, uint64_t timeout) {
  if (timeout == 0)
    return;

  child->kill->stage = CP__KILL_TIMEOUT;
  uv_timer_start(&child->kill->timer, kill_timer_cb, timeout, 0);
}

void cp__child_stop_kill_timer(cp_child *child) {
  if (child->kill == NULL)
    return;

  child->kill->stage = CP__KILL_IDLE;
  uv_timer_stop(&child->kill->timer);
}
