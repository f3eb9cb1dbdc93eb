/* Captured child output for exec and the Sync functions: a growable byte
 * buffer with Node's maxBuffer rule, decoded once the child is done. */
#ifndef CP_OUTPUT_BUFFER_H
#define CP_OUTPUT_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

#include "childproc.h"
#include "encoding.h"

/* The bytes kept from one stream. */
typedef struct cp__output {
  char *bytes; /* owned; NULL until the first byte */
  size_t len;
  size_t capacity;
  bool truncated; /* bytes past the limit were dropped */
} cp__output;

/*
 * A maxBuffer budget: bytes counted so far against max. exec gives each
 * stream its own budget; the Sync functions share one between all their
 * output streams, as Node's spawnSync does.
 */
typedef struct cp__output_limit {
  size_t used;
  size_t max;
} cp__output_limit;

/*
 * Resolves an encoding option: NULL gives null_default, "buffer" gives raw
 * bytes (CP__ENCODING_NONE), other names are parsed by
 * cp__encoding_parse(). Returns 0 or CP_ERR_UNKNOWN_ENCODING.
 */
int cp__output_parse_encoding(const char *name, cp__encoding null_default,
                              cp__encoding *out);

/* Resolves a max_buffer option: 0 gives CP_MAX_BUFFER_DEFAULT and
 * CP_MAX_BUFFER_NONE gives 0. */
size_t cp__output_max_buffer(size_t option);

void cp__output_init(cp__output *output);

/*
 * Appends len bytes as far as the limit allows. Node's rule: reaching
 * limit->max exactly is fine, passing it is not. Returns 0 when every byte
 * was kept, 1 when the limit was passed (the bytes up to the limit are
 * kept and output->truncated is set), or -ENOMEM (nothing was appended and
 * the limit is unchanged).
 */
int cp__output_append(cp__output *output, cp__output_limit *limit,
                      const char *bytes, size_t len);

/*
 * Moves the output into *buffer: the bytes themselves for
 * CP__ENCODING_NONE, otherwise the text they decode to, in both cases
 * NUL-terminated and allocated with malloc(). When the output was
 * truncated, a UTF-8 character cut at the limit is dropped rather than
 * decoded to U+FFFD. Leaves the output empty. Returns 0 or -ENOMEM, after
 * which the output is freed and *buffer is empty.
 */
int cp__output_finish(cp__output *output, cp__encoding encoding,
                      cp_buffer *buffer);

void cp__output_free(cp__output *output);

/* Returns a malloc()ed empty, NUL-terminated buffer's data, or NULL. */
char *cp__empty_text(void);

#endif
