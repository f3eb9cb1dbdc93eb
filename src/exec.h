/* Helpers that exec.c shares with sync.c. */
#ifndef CP_EXEC_H
#define CP_EXEC_H

/* Node's cmd: file, then each argument of the NULL-terminated args (NULL
 * for none), joined by spaces. Returns a malloc()ed string or NULL. */
char *cp__join_command(const char *file, const char *const *args);

#endif
