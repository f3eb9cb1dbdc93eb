/* A received message, its delivery to listeners, and the messages that
 * arrived before anyone listened for them. */
#ifndef CP_MESSAGE_QUEUE_H
#define CP_MESSAGE_QUEUE_H

#include <cjson/cJSON.h>

#include <stdbool.h>

#include "childproc.h"

/* A message as the channel hands it on. The owner of the struct owns value
 * and handle.fd, and taking either leaves NULL or -1 behind. */
typedef struct cp__message {
  cJSON *value;
  bool internal;
  cp_handle handle; /* type CP_HANDLE_NONE and fd -1 when none came */
} cp__message;

/* Frees the value and closes the descriptor still held. */
void cp__message_release(cp__message *message);

/* What cp_event.internal_ points to for a message event: the message,
 * from which cp_event_take_message() and cp_event_take_handle() take. */
typedef struct cp__message_delivery {
  cp__message *message;
} cp__message_delivery;

/* Fills event for message. delivery and handle_copy must live until the
 * emit returns; event->handle points to handle_copy, so that later
 * listeners still see a descriptor an earlier one took. */
void cp__message_event(cp__message *message, cp__message_delivery *delivery,
                       cp_handle *handle_copy, cp_event *event);

typedef struct cp__queued_message cp__queued_message;

/* A FIFO of messages, each owned by the queue while in it. */
typedef struct cp__message_queue {
  cp__queued_message *head;
  cp__queued_message *tail;
} cp__message_queue;

/* Appends message, taking what it holds. Returns 0, or -ENOMEM and
 * message untouched. */
int cp__message_queue_push(cp__message_queue *queue, cp__message *message);

/* Moves the oldest message into *message, now the caller's. Returns false
 * when the queue is empty. */
bool cp__message_queue_shift(cp__message_queue *queue, cp__message *message);

/*
 * Node's rule for a message that arrives: one that nobody listens for yet
 * (listening false) is kept for the first MESSAGE listener, and while any
 * are kept, later ones queue behind them to keep the order. Internal
 * messages are never kept. Returns true when the message was taken into
 * the queue; false means the caller emits it now.
 */
bool cp__message_queue_keep(cp__message_queue *queue, cp__message *message,
                            bool listening);

/* Releases every message still queued. */
void cp__message_queue_free(cp__message_queue *queue);

#endif
