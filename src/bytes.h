/* A growable byte buffer, shared by the JSON writer, the channel and the
 * captured output of exec. */
#ifndef CP_BYTES_H
#define CP_BYTES_H

#include <stddef.h>

/* A growable byte buffer. All zero is a valid empty buffer. */
typedef struct cp__bytes {
  char *data; /* owned */
  size_t len;
  size_t capacity;
} cp__bytes;

/* Makes room for extra more bytes. Returns 0 or -ENOMEM. */
int cp__bytes_reserve(cp__bytes *bytes, size_t extra);

/* Appends len bytes. Returns 0 or -ENOMEM, leaving bytes unchanged. */
int cp__bytes_append(cp__bytes *bytes, const void *data, size_t len);

/* Frees the data and leaves an empty buffer. */
void cp__bytes_free(cp__bytes *bytes);

#endif
