/*
 * Linked into every helper program of a CP_SANITIZE build.
 *
 * Tests check how a helper ends when a signal kills it. AddressSanitizer
 * installs its own handlers for SIGSEGV, SIGBUS, SIGFPE and SIGILL, which
 * print a report and exit or abort, so a helper killed by SIGSEGV would be
 * seen dying of SIGABRT (with abort_on_error=1) instead. Leaving those
 * signals at their default disposition keeps the helpers ending as plain
 * programs do; every other sanitizer check stays on. ASan reads these
 * defaults before ASAN_OPTIONS, so the environment can still override them.
 */
const char *__asan_default_options(void);

const char *__asan_default_options(void) {
  return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0";
}
