/* Messages that arrived before anyone listened for them. */
#ifndef CP_MESSAGE_QUEUE_H
#define CP_MESSAGE_QUEUE_H

#include <cjson/cJSON.h>

#include <stdbool.h>

/* What cp_event.internal_ points to for a message event: whether a
 * listener took the value with cp_event_take_message(). */
typedef struct cp__message_delivery {
  bool taken;
} cp__message_delivery;

typedef struct cp__queued_message cp__queued_message;

/* A FIFO of message values, each owned by the queue while in it. */
typedef struct cp__message_queue {
  cp__queued_message *head;
  cp__queued_message *tail;
} cp__message_queue;

/* Appends value, taking it. Returns 0, or -ENOMEM and value untaken. */
int cp__message_queue_push(cp__message_queue *queue, cJSON *value);

/* Removes and returns the oldest value, now the caller's, or NULL. */
cJSON *cp__message_queue_shift(cp__message_queue *queue);

/*
 * Node's rule for a message that arrives: one that nobody listens for yet
 * (listening false) is kept for the first MESSAGE listener, and while any
 * are kept, later ones queue behind them to keep the order. Internal
 * messages are never kept. Returns true when value was taken into the
 * queue; false means the caller emits it now.
 */
bool cp__message_queue_keep(cp__message_queue *queue, cJSON *value,
                            bool internal, bool listening);

/* Frees every value still queued. */
void cp__message_queue_free(cp__message_queue *queue);

#endif
