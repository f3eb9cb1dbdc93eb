/* Listener lists for cp_child and cp_stream, with Node's EventEmitter order. */
#ifndef CP_EMITTER_H
#define CP_EMITTER_H

#include <stdbool.h>
#include <stddef.h>

#include "childproc.h"

/* A listener's function with its type erased; cp__invoke_fn casts it back. */
typedef void (*cp__listener_fn)(void);

/* Calls fn, cast back to the owner's listener type, for object. */
typedef void (*cp__invoke_fn)(cp__listener_fn fn, void *object,
                              const cp_event *event, void *data);

typedef struct cp__listener {
  cp__listener_fn fn;
  void *data;
  cp_event_type type;
  bool once;
  bool removed; /* removed during an emit; dropped once no emit runs */
} cp__listener;

typedef struct cp__emitter {
  cp__listener *items; /* owned */
  size_t count;
  size_t capacity;
  unsigned emitting; /* depth of nested cp__emitter_emit() calls */
  bool has_removed;
  void *object;
  cp__invoke_fn invoke;
} cp__emitter;

void cp__emitter_init(cp__emitter *emitter, void *object, cp__invoke_fn invoke);

/* Returns 0 or -ENOMEM. */
int cp__emitter_add(cp__emitter *emitter, cp_event_type type,
                    cp__listener_fn fn, void *data, bool once);

/* Removes the most recently added match. Returns 0 or -ENOENT. */
int cp__emitter_remove(cp__emitter *emitter, cp_event_type type,
                       cp__listener_fn fn, void *data);

/* Number of live listeners for type. */
size_t cp__emitter_count(const cp__emitter *emitter, cp_event_type type);

/*
 * Calls the listeners for event->type that exist when the emit starts, in
 * the order they were added, skipping any removed meanwhile. An error event
 * that reaches no listener goes to the unhandled-error handler. Returns the
 * number of listeners called. The caller must keep the object alive across
 * the call even if a listener releases it.
 */
size_t cp__emitter_emit(cp__emitter *emitter, const cp_event *event);

/* Frees the listener list. Not allowed during an emit. */
void cp__emitter_free(cp__emitter *emitter);

/* Passes an error event nobody listened to to the process-wide handler. */
void cp__report_unhandled_error(const void *object, const cp_event *event);

#endif
