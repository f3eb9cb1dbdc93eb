/* Signal names as Node spells them, real-time signals included. */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"

/* glibc's sigabbrev_np() names the classic signals without the "SIG"
 * prefix; Node's names are the same with it. Real-time signals are named
 * here as SIGRTMIN+n because glibc leaves them unnamed. The table is built
 * once, so the returned strings are static and shared between threads. */
enum { NAME_SIZE = 24 };

static char signal_names[NSIG][NAME_SIZE];
static pthread_once_t signal_names_once = PTHREAD_ONCE_INIT;

static void build_signal_names(void) {
  for (int signum = 1; signum < NSIG; signum++) {
    char *name = signal_names[signum];
    const char *abbrev;

    if (signum == SIGRTMIN)
      snprintf(name, NAME_SIZE, "SIGRTMIN");
    else if (signum == SIGRTMAX)
      snprintf(name, NAME_SIZE, "SIGRTMAX");
    else if (signum > SIGRTMIN && signum < SIGRTMAX)
      snprintf(name, NAME_SIZE, "SIGRTMIN+%d", signum - SIGRTMIN);
    else if ((abbrev = sigabbrev_np(signum)) != NULL)
      snprintf(name, NAME_SIZE, "SIG%s", abbrev);
  }
}

const char *cp_signal_name(int signum) {
  if (signum < 1 || signum >= NSIG)
    return NULL;

  pthread_once(&signal_names_once, build_signal_names);
  return signal_names[signum][0] != '\0' ? signal_names[signum] : NULL;
}

/* Parses "SIGRTMIN", "SIGRTMIN+N" and "SIGRTMAX-N". */
static int real_time_signal_from_name(const char *name) {
  int base;
  const char *rest;

  if (strncmp(name, "SIGRTMIN", 8) == 0) {
    base = SIGRTMIN;
    rest = name + 8;
  } else if (strncmp(name, "SIGRTMAX", 8) == 0) {
    base = SIGRTMAX;
    rest = name + 8;
  } else {
    return CP_ERR_UNKNOWN_SIGNAL;
  }

  if (*rest == '\0')
    return base;
  if ((*rest != '+' || base != SIGRTMIN) && (*rest != '-' || base != SIGRTMAX))
    return CP_ERR_UNKNOWN_SIGNAL;
  if (rest[1] < '1' || rest[1] > '9')
    return CP_ERR_UNKNOWN_SIGNAL;

  char *end;
  long offset = strtol(rest + 1, &end, 10);
  if (*end != '\0')
    return CP_ERR_UNKNOWN_SIGNAL;

  long signum = *rest == '+' ? base + offset : base - offset;
  if (signum < SIGRTMIN || signum > SIGRTMAX)
    return CP_ERR_UNKNOWN_SIGNAL;
  return (int)signum;
}

/* Node upper-cases the name before looking it up. */
static bool copy_upper(const char *name, char *out, size_t size) {
  size_t i = 0;

  for (; name[i] != '\0'; i++) {
    if (i + 1 >= size)
      return false;
    out[i] = (char)toupper((unsigned char)name[i]);
  }
  out[i] = '\0';
  return true;
}

int cp_signal_from_name(const char *given) {
  char name[NAME_SIZE];

  if (given == NULL || !copy_upper(given, name, sizeof(name)) ||
      strncmp(name, "SIG", 3) != 0)
    return CP_ERR_UNKNOWN_SIGNAL;

  if (strncmp(name, "SIGRT", 5) == 0)
    return real_time_signal_from_name(name);

  for (int signum = 1; signum < SIGRTMIN; signum++) {
    const char *abbrev = sigabbrev_np(signum);

    if (abbrev != NULL && strcmp(abbrev, name + 3) == 0)
      return signum;
  }

  /* Names glibc knows only as aliases, which Node also accepts. */
  if (strcmp(name, "SIGIOT") == 0)
    return SIGIOT;
  if (strcmp(name, "SIGPOLL") == 0)
    return SIGPOLL;
  return CP_ERR_UNKNOWN_SIGNAL;
}
