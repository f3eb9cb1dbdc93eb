/* kill(), the timeout option and SIGKILL escalation. */
#include <errno.h>
#include <signal.h>

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

static void start_grace(cp_child *child, uint64_t grace_ms, bool group) {
  child->kill_stage = CP__KILL_GRACE;
  child->grace_group = group;
  uv_timer_start(&child->kill_timer, cp__kill_timer_cb, grace_ms, 0);
}

int cp_child_terminate(cp_child *child, int signum, uint64_t grace_ms,
                       bool group) {
  int r;

  if (group && !child->detached)
    return CP_ERR_INVALID_ARG_VALUE;

  r = cp__child_signal(child, signum, group);
  if (r == 1 && grace_ms > 0 && !child->exited)
    start_grace(child, grace_ms, group);
  return r;
}

void cp__kill_timer_cb(uv_timer_t *timer) {
  cp_child *child = timer->data;
  cp__kill_stage stage = child->kill_stage;

  child->kill_stage = CP__KILL_IDLE;
  cp__child_hold(child);

  if (stage == CP__KILL_TIMEOUT) {
    int r = cp__child_signal(child, child->kill_signal, child->kill_group);

    if (r == 1 && child->kill_grace > 0 && !child->exited)
      start_grace(child, child->kill_grace, child->kill_group);
  } else if (stage == CP__KILL_GRACE) {
    cp__child_signal(child, SIGKILL, child->grace_group);
  }
  cp__child_unhold(child);
}

void cp__child_start_timeout(cp_child *child) {
  if (child->timeout == 0)
    return;

  child->kill_stage = CP__KILL_TIMEOUT;
  uv_timer_start(&child->kill_timer, cp__kill_timer_cb, child->timeout, 0);
}

void cp__child_stop_kill_timer(cp_child *child) {
  child->kill_stage = CP__KILL_IDLE;
  uv_timer_stop(&child->kill_timer);
}
