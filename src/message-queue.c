/* A received message, its delivery to listeners, and the messages that
 * arrived before anyone listened for them. */
#include "message-queue.h"

#include <errno.h>
#include <stdlib.h>

#include "io.h"

struct cp__queued_message {
  cp__queued_message *next;
  cp__message message;
};

void cp__message_release(cp__message *message) {
  cJSON_Delete(message->value);
  message->value = NULL;
  message->handle.fd = cp__close(message->handle.fd);
}

void cp__message_event(cp__message *message, cp__message_delivery *delivery,
                       cp_handle *handle_copy, cp_event *event) {
  delivery->message = message;
  *handle_copy = message->handle;
  *event = (cp_event){.type = message->internal ? CP_EVENT_INTERNAL_MESSAGE
                                                : CP_EVENT_MESSAGE,
                      .message = message->value,
                      .handle = message->handle.fd >= 0 ? handle_copy : NULL,
                      .internal_ = delivery};
}

static cp__message *event_message(const cp_event *event) {
  if (event == NULL || event->internal_ == NULL ||
      (event->type != CP_EVENT_MESSAGE &&
       event->type != CP_EVENT_INTERNAL_MESSAGE))
    return NULL;
  return ((cp__message_delivery *)event->internal_)->message;
}

cJSON *cp_event_take_message(const cp_event *event) {
  cp__message *message = event_message(event);
  cJSON *value;

  if (message == NULL)
    return NULL;
  value = message->value;
  message->value = NULL;
  return value;
}

int cp_event_take_handle(const cp_event *event) {
  cp__message *message = event_message(event);
  int fd;

  if (message == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  if (message->handle.fd < 0)
    return -ENOENT;
  fd = message->handle.fd;
  message->handle.fd = -1;
  return fd;
}

int cp__message_queue_push(cp__message_queue *queue, cp__message *message) {
  cp__queued_message *entry = malloc(sizeof(*entry));

  if (entry == NULL)
    return -ENOMEM;

  *entry = (cp__queued_message){.message = *message};
  message->value = NULL;
  message->handle.fd = -1;
  if (queue->tail != NULL)
    queue->tail->next = entry;
  else
    queue->head = entry;
  queue->tail = entry;
  return 0;
}

bool cp__message_queue_shift(cp__message_queue *queue, cp__message *message) {
  cp__queued_message *entry = queue->head;

  if (entry == NULL)
    return false;

  queue->head = entry->next;
  if (queue->head == NULL)
    queue->tail = NULL;
  *message = entry->message;
  free(entry);
  return true;
}

bool cp__message_queue_keep(cp__message_queue *queue, cp__message *message,
                            bool listening) {
  if (message->internal || (listening && queue->head == NULL))
    return false;
  /* Out of memory: delivered now rather than lost. */
  return cp__message_queue_push(queue, message) == 0;
}

void cp__message_queue_free(cp__message_queue *queue) {
  cp__message message;

  while (cp__message_queue_shift(queue, &message))
    cp__message_release(&message);
}
