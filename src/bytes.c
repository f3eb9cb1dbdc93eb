/* A growable byte buffer. */
#include "bytes.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cp__bytes_reserve(cp__bytes *bytes, size_t extra) {
  size_t needed;
  size_t capacity;
  char *data;

  if (extra <= bytes->capacity - bytes->len)
    return 0;
  if (extra > SIZE_MAX - bytes->len)
    return -ENOMEM;

  needed = bytes->len + extra;
  capacity = bytes->capacity < 64 ? 64 : bytes->capacity;
  while (capacity < needed)
    capacity = capacity > SIZE_MAX / 2 ? needed : capacity * 2;

  data = realloc(bytes->data, capacity);
  if (data == NULL)
    return -ENOMEM;
  bytes->data = data;
  bytes->capacity = capacity;
  return 0;
}

int cp__bytes_append(cp__bytes *bytes, const void *data, size_t len) {
  int r;

  if (len == 0)
    return 0;
  r = cp__bytes_reserve(bytes, len);
  if (r < 0)
    return r;
  memcpy(bytes->data + bytes->len, data, len);
  bytes->len += len;
  return 0;
}

void cp__bytes_free(cp__bytes *bytes) {
  free(bytes->data);
  bytes->data = NULL;
  bytes->len = 0;
  bytes->capacity = 0;
}
