/* Error names and messages, and the handler for unheard error events. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "childproc.h"
#include "emitter.h"

static const char *library_error_name(int err) {
  switch (err) {
#define CP_ERR_NAME_CASE_(name, message)                                      \
  case CP_ERR_##name:                                                         \
    return "ERR_" #name;
    CP_ERRNO_MAP(CP_ERR_NAME_CASE_)
#undef CP_ERR_NAME_CASE_
  default:
    return NULL;
  }
}

static const char *library_error_message(int err) {
  switch (err) {
#define CP_ERR_MESSAGE_CASE_(name, message)                                   \
  case CP_ERR_##name:                                                         \
    return message;
    CP_ERRNO_MAP(CP_ERR_MESSAGE_CASE_)
#undef CP_ERR_MESSAGE_CASE_
  default:
    return NULL;
  }
}

const char *cp_err_name(int err) {
  const char *name = library_error_name(err);

  if (name != NULL)
    return name;
  if (err == UV_EOF)
    return "EOF";
  if (err < 0 && err > -4096) {
    name = strerrorname_np(-err);
    if (name != NULL)
      return name;
  }
  return "UNKNOWN";
}

const char *cp_strerror(int err) {
  const char *message = library_error_message(err);

  if (message != NULL)
    return message;
  if (err == UV_EOF)
    return "end of file";
  if (err < 0 && err > -4096) {
    message = strerrordesc_np(-err);
    if (message != NULL)
      return message;
  }
  return "unknown error";
}

static void print_unhandled_error(const void *object, const cp_event *event) {
  (void)object;
  fprintf(stderr, "childproc: unhandled 'error' event: %s%s%s: %s (%s)\n",
          event->syscall ? event->syscall : "", event->syscall ? " " : "",
          cp_err_name(event->error), cp_strerror(event->error),
          event->path ? event->path : "no path");
}

static _Atomic(cp_unhandled_error_handler) unhandled_handler =
    print_unhandled_error;

void cp_set_unhandled_error_handler(cp_unhandled_error_handler handler) {
  atomic_store(&unhandled_handler,
               handler != NULL ? handler : print_unhandled_error);
}

void cp__report_unhandled_error(const void *object, const cp_event *event) {
  cp_unhandled_error_handler handler = atomic_load(&unhandled_handler);

  handler(object, event);
}
