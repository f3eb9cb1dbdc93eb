/* Listener lists with Node's EventEmitter ordering rules. */
#include "emitter.h"

#include <errno.h>
#include <stdlib.h>

void cp__emitter_init(cp__emitter *emitter, void *object,
                      cp__invoke_fn invoke) {
  *emitter = (cp__emitter){.object = object, .invoke = invoke};
}

int cp__emitter_add(cp__emitter *emitter, cp_event_type type,
                    cp__listener_fn fn, void *data, bool once) {
  if (emitter->count == emitter->capacity) {
    size_t capacity = emitter->capacity ? emitter->capacity * 2 : 4;
    cp__listener *items =
        realloc(emitter->items, capacity * sizeof(*emitter->items));
    if (items == NULL)
      return -ENOMEM;
    emitter->items = items;
    emitter->capacity = capacity;
  }

  emitter->items[emitter->count++] =
      (cp__listener){.fn = fn, .data = data, .type = type, .once = once};
  return 0;
}

/* Drops removed entries, keeping the order of the rest. Only outside an emit,
 * since an emit walks the array by index. */
static void compact(cp__emitter *emitter) {
  size_t kept = 0;

  if (emitter->emitting > 0 || !emitter->has_removed)
    return;

  for (size_t i = 0; i < emitter->count; i++) {
    if (!emitter->items[i].removed)
      emitter->items[kept++] = emitter->items[i];
  }
  emitter->count = kept;
  emitter->has_removed = false;
}

int cp__emitter_remove(cp__emitter *emitter, cp_event_type type,
                       cp__listener_fn fn, void *data) {
  for (size_t i = emitter->count; i-- > 0;) {
    cp__listener *listener = &emitter->items[i];

    if (listener->removed || listener->type != type || listener->fn != fn ||
        listener->data != data)
      continue;

    listener->removed = true;
    emitter->has_removed = true;
    compact(emitter);
    return 0;
  }
  return -ENOENT;
}

size_t cp__emitter_count(const cp__emitter *emitter, cp_event_type type) {
  size_t count = 0;

  for (size_t i = 0; i < emitter->count; i++) {
    if (!emitter->items[i].removed && emitter->items[i].type == type)
      count++;
  }
  return count;
}

size_t cp__emitter_emit(cp__emitter *emitter, const cp_event *event) {
  size_t end = emitter->count; /* listeners added meanwhile wait */
  size_t called = 0;

  emitter->emitting++;
  for (size_t i = 0; i < end; i++) {
    /* Reread each time: a listener may add one and move the array. */
    cp__listener listener = emitter->items[i];

    if (listener.removed || listener.type != event->type)
      continue;

    if (listener.once) {
      emitter->items[i].removed = true;
      emitter->has_removed = true;
    }
    emitter->invoke(listener.fn, emitter->object, event, listener.data);
    called++;
  }
  emitter->emitting--;
  compact(emitter);

  if (called == 0 && event->type == CP_EVENT_ERROR)
    cp__report_unhandled_error(emitter->object, event);
  return called;
}

void cp__emitter_free(cp__emitter *emitter) {
  free(emitter->items);
  emitter->items = NULL;
  emitter->count = 0;
  emitter->capacity = 0;
}
