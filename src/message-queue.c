/* Messages that arrived before anyone listened for them. */
#include "message-queue.h"

#include <errno.h>
#include <stdlib.h>

struct cp__queued_message {
  cp__queued_message *next;
  cJSON *value;
};

int cp__message_queue_push(cp__message_queue *queue, cJSON *value) {
  cp__queued_message *entry = malloc(sizeof(*entry));

  if (entry == NULL)
    return -ENOMEM;

  *entry = (cp__queued_message){.value = value};
  if (queue->tail != NULL)
    queue->tail->next = entry;
  else
    queue->head = entry;
  queue->tail = entry;
  return 0;
}

cJSON *cp__message_queue_shift(cp__message_queue *queue) {
  cp__queued_message *entry = queue->head;
  cJSON *value;

  if (entry == NULL)
    return NULL;

  queue->head = entry->next;
  if (queue->head == NULL)
    queue->tail = NULL;
  value = entry->value;
  free(entry);
  return value;
}

bool cp__message_queue_keep(cp__message_queue *queue, cJSON *value,
                            bool internal, bool listening) {
  if (internal || (listening && queue->head == NULL))
    return false;
  /* Out of memory: delivered now rather than lost. */
  return cp__message_queue_push(queue, value) == 0;
}

void cp__message_queue_free(cp__message_queue *queue) {
  cJSON *value;

  while ((value = cp__message_queue_shift(queue)) != NULL)
    cJSON_Delete(value);
}
