/* Error names, signal names and the listener lists behind every event. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "childproc.h"
#include "emitter.h"

static void err_name_covers_errno_and_library_codes(void **state) {
  (void)state;
  assert_string_equal(cp_err_name(-ENOENT), "ENOENT");
  assert_string_equal(cp_err_name(-EPIPE), "EPIPE");
  assert_string_equal(cp_err_name(UV_EOF), "EOF");
  assert_string_equal(cp_err_name(CP_ERR_STREAM_DESTROYED),
                      "ERR_STREAM_DESTROYED");
  assert_string_equal(cp_err_name(CP_ERR_INVALID_ARG_VALUE),
                      "ERR_INVALID_ARG_VALUE");
  assert_string_equal(cp_err_name(12345), "UNKNOWN");
}

static void strerror_gives_sentences(void **state) {
  (void)state;
  assert_string_equal(cp_strerror(-ENOENT), "No such file or directory");
  assert_string_equal(cp_strerror(CP_ERR_UNKNOWN_SIGNAL), "unknown signal");
  assert_string_equal(cp_strerror(-999999), "unknown error");
}

static void signal_names_round_trip(void **state) {
  (void)state;
  for (int signum = 1; signum < NSIG; signum++) {
    const char *name = cp_signal_name(signum);

    if (name == NULL)
      continue;
    assert_int_equal(cp_signal_from_name(name), signum);
  }
}

static void signal_names_match_node(void **state) {
  (void)state;
  assert_string_equal(cp_signal_name(SIGTERM), "SIGTERM");
  assert_string_equal(cp_signal_name(SIGKILL), "SIGKILL");
  assert_string_equal(cp_signal_name(SIGRTMIN), "SIGRTMIN");
  assert_string_equal(cp_signal_name(SIGRTMIN + 3), "SIGRTMIN+3");
  assert_string_equal(cp_signal_name(SIGRTMAX), "SIGRTMAX");
  assert_null(cp_signal_name(0));
  assert_null(cp_signal_name(NSIG));
  assert_int_equal(cp_signal_from_name("SIGRTMAX-1"), SIGRTMAX - 1);
  assert_int_equal(cp_signal_from_name("SIGIOT"), SIGABRT);
  assert_int_equal(cp_signal_from_name("sigterm"), SIGTERM);
  assert_int_equal(cp_signal_from_name("SigRtMin+2"), SIGRTMIN + 2);
}

static void signal_from_name_rejects_other_spellings(void **state) {
  static const char *const rejected[] = {
      "TERM", "15", "SIGTERM1", "SIGTERM ", "SIGRTMIN+0", "SIGRTMIN-1",
      "SIGRTMAX+1", "SIGRTMIN+99", "SIGRTMIN+3x", "", "SIG",
  };

  (void)state;
  assert_int_equal(cp_signal_from_name(NULL), CP_ERR_UNKNOWN_SIGNAL);
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++)
    assert_int_equal(cp_signal_from_name(rejected[i]), CP_ERR_UNKNOWN_SIGNAL);
}

/* Listener lists: calls are recorded as letters in a shared log. */
typedef struct call_log {
  char calls[32];
  size_t count;
  cp__emitter *emitter;
} call_log;

static void invoke(cp__listener_fn fn, void *object, const cp_event *event,
                   void *data) {
  ((void (*)(void *, const cp_event *, void *))fn)(object, event, data);
}

static void record_a(void *object, const cp_event *event, void *data);
static void record_b(void *object, const cp_event *event, void *data);
static void record_c(void *object, const cp_event *event, void *data);

static void record(call_log *l, char letter) { l->calls[l->count++] = letter; }

static void record_a(void *object, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  record(object, 'a');
}

static void record_b(void *object, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  record(object, 'b');
}

static void record_c(void *object, const cp_event *event, void *data) {
  (void)event;
  (void)data;
  record(object, 'c');
}

/* Removes record_c, which was added after it. */
static void remove_c(void *object, const cp_event *event, void *data) {
  call_log *l = object;

  (void)event;
  (void)data;
  record(l, 'r');
  cp__emitter_remove(l->emitter, CP_EVENT_DATA, (cp__listener_fn)record_c,
                     NULL);
}

/* Adds record_c, which must wait for the next emit. */
static void add_c(void *object, const cp_event *event, void *data) {
  call_log *l = object;

  (void)event;
  (void)data;
  record(l, '+');
  cp__emitter_add(l->emitter, CP_EVENT_DATA, (cp__listener_fn)record_c, NULL,
                  false);
}

static void setup_log(call_log *l, cp__emitter *emitter) {
  memset(l, 0, sizeof(*l));
  l->emitter = emitter;
  cp__emitter_init(emitter, l, invoke);
}

static void emit(cp__emitter *emitter, cp_event_type type) {
  cp__emitter_emit(emitter, &(cp_event){.type = type});
}

static void emitter_calls_in_registration_order(void **state) {
  cp__emitter emitter;
  call_log l;

  (void)state;
  setup_log(&l, &emitter);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_b, NULL,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_a, NULL,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_END, (cp__listener_fn)record_c, NULL,
                  false);
  emit(&emitter, CP_EVENT_DATA);
  emit(&emitter, CP_EVENT_END);
  assert_string_equal(l.calls, "bac");
  cp__emitter_free(&emitter);
}

static void emitter_once_runs_one_time(void **state) {
  cp__emitter emitter;
  call_log l;

  (void)state;
  setup_log(&l, &emitter);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_a, NULL,
                  true);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_b, NULL,
                  false);
  emit(&emitter, CP_EVENT_DATA);
  emit(&emitter, CP_EVENT_DATA);
  assert_string_equal(l.calls, "abb");
  assert_int_equal(cp__emitter_count(&emitter, CP_EVENT_DATA), 1);
  cp__emitter_free(&emitter);
}

static void emitter_removal_during_emit_skips_listener(void **state) {
  cp__emitter emitter;
  call_log l;

  (void)state;
  setup_log(&l, &emitter);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)remove_c, NULL,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_c, NULL,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_a, NULL,
                  false);
  emit(&emitter, CP_EVENT_DATA);
  assert_string_equal(l.calls, "ra");
  assert_int_equal(cp__emitter_count(&emitter, CP_EVENT_DATA), 2);
  cp__emitter_free(&emitter);
}

static void emitter_addition_during_emit_waits(void **state) {
  cp__emitter emitter;
  call_log l;

  (void)state;
  setup_log(&l, &emitter);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)add_c, NULL, true);
  emit(&emitter, CP_EVENT_DATA);
  assert_string_equal(l.calls, "+");
  emit(&emitter, CP_EVENT_DATA);
  assert_string_equal(l.calls, "+c");
  cp__emitter_free(&emitter);
}

static void emitter_remove_takes_latest_match(void **state) {
  cp__emitter emitter;
  call_log l;
  int first;
  int second;

  (void)state;
  setup_log(&l, &emitter);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_a, &first,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_b, NULL,
                  false);
  cp__emitter_add(&emitter, CP_EVENT_DATA, (cp__listener_fn)record_a, &first,
                  false);
  assert_int_equal(cp__emitter_remove(&emitter, CP_EVENT_DATA,
                                      (cp__listener_fn)record_a, &first),
                   0);
  assert_int_equal(cp__emitter_remove(&emitter, CP_EVENT_DATA,
                                      (cp__listener_fn)record_a, &second),
                   -ENOENT);
  emit(&emitter, CP_EVENT_DATA);
  assert_string_equal(l.calls, "ab");
  cp__emitter_free(&emitter);
}

static const void *unhandled_object;
static int unhandled_error;

static void catch_unhandled(const void *object, const cp_event *event) {
  unhandled_object = object;
  unhandled_error = event->error;
}

static void emitter_unheard_error_reaches_handler(void **state) {
  cp__emitter emitter;
  call_log l;

  (void)state;
  setup_log(&l, &emitter);
  cp_set_unhandled_error_handler(catch_unhandled);
  cp__emitter_emit(&emitter,
                   &(cp_event){.type = CP_EVENT_ERROR, .error = -EPIPE});
  cp_set_unhandled_error_handler(NULL);

  assert_ptr_equal(unhandled_object, &l);
  assert_int_equal(unhandled_error, -EPIPE);
  cp__emitter_free(&emitter);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(err_name_covers_errno_and_library_codes),
      cmocka_unit_test(strerror_gives_sentences),
      cmocka_unit_test(signal_names_round_trip),
      cmocka_unit_test(signal_names_match_node),
      cmocka_unit_test(signal_from_name_rejects_other_spellings),
      cmocka_unit_test(emitter_calls_in_registration_order),
      cmocka_unit_test(emitter_once_runs_one_time),
      cmocka_unit_test(emitter_removal_during_emit_skips_listener),
      cmocka_unit_test(emitter_addition_during_emit_waits),
      cmocka_unit_test(emitter_remove_takes_latest_match),
      cmocka_unit_test(emitter_unheard_error_reaches_handler),
  };

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
