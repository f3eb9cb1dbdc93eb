/* Captured child output: growth, the maxBuffer rule and final decoding. */
#include "output-buffer.h"

#include "bytes.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes decoded per cp__decoder_write() call, which allocates up to three
 * times its input, so that decoding a large output needs little extra
 * memory at a time. */
#define DECODE_CHUNK (1024 * 1024)

int cp__output_parse_encoding(const char *name, cp__encoding null_default,
                              cp__encoding *out) {
  if (name == NULL) {
    *out = null_default;
    return 0;
  }
  if (strcmp(name, "buffer") == 0) {
    *out = CP__ENCODING_NONE;
    return 0;
  }
  return cp__encoding_parse(name, out);
}

size_t cp__output_max_buffer(size_t option) {
  if (option == 0)
    return CP_MAX_BUFFER_DEFAULT;
  return option == CP_MAX_BUFFER_NONE ? 0 : option;
}

void cp__output_init(cp__output *output) { *output = (cp__output){0}; }

void cp__output_free(cp__output *output) {
  free(output->bytes);
  cp__output_init(output);
}

char *cp__empty_text(void) { return calloc(1, 1); }

/* Makes room for len more bytes plus a NUL. */
static int reserve(cp__output *output, size_t len) {
  cp__bytes buffer = {output->bytes, output->len, output->capacity};
  int r;

  if (len == SIZE_MAX)
    return -ENOMEM;
  r = cp__bytes_reserve(&buffer, len + 1);
  output->bytes = buffer.data;
  output->capacity = buffer.capacity;
  return r;
}

int cp__output_append(cp__output *output, cp__output_limit *limit,
                      const char *bytes, size_t len) {
  size_t room = limit->max - limit->used;
  size_t kept_len = len <= room ? len : room;
  int r = reserve(output, kept_len);

  if (r < 0)
    return r;

  if (kept_len > 0)
    memcpy(output->bytes + output->len, bytes, kept_len);
  output->len += kept_len;
  limit->used += kept_len;

  if (kept_len < len) {
    output->truncated = true;
    return 1;
  }
  return 0;
}

/* The raw bytes, NUL-terminated, handed over as they are. */
static int finish_bytes(cp__output *output, cp_buffer *buffer) {
  int r = reserve(output, 0);

  if (r < 0)
    return r;

  output->bytes[output->len] = '\0';
  *buffer = (cp_buffer){.data = output->bytes, .len = output->len};
  cp__output_init(output);
  return 0;
}

/* Appends decoded text to the text being built in *target. */
static int append_text(cp__output *target, const char *text, size_t len) {
  int r = reserve(target, len);

  if (r < 0)
    return r;
  memcpy(target->bytes + target->len, text, len);
  target->len += len;
  return 0;
}

static int decode(const cp__output *output, cp__encoding encoding,
                  cp__output *text_out) {
  cp__decoder decoder;
  const char *text;
  size_t text_len;
  int r = 0;

  cp__decoder_init(&decoder, encoding);
  for (size_t offset = 0; offset < output->len && r == 0;
       offset += DECODE_CHUNK) {
    size_t chunk = output->len - offset;

    if (chunk > DECODE_CHUNK)
      chunk = DECODE_CHUNK;
    r = cp__decoder_write(&decoder, output->bytes + offset, chunk, &text,
                          &text_len);
    if (r == 0)
      r = append_text(text_out, text, text_len);
  }

  /* A character cut at the limit was never complete: it is dropped, where
   * end() would turn its bytes into U+FFFD. base64's held-back bytes are
   * whole bytes, so they are still encoded. */
  if (r == 0 && !(output->truncated && encoding == CP__ENCODING_UTF8)) {
    r = cp__decoder_end(&decoder, &text, &text_len);
    if (r == 0)
      r = append_text(text_out, text, text_len);
  }

  cp__decoder_free(&decoder);
  return r;
}

int cp__output_finish(cp__output *output, cp__encoding encoding,
                      cp_buffer *buffer) {
  cp__output text;
  int r;

  *buffer = (cp_buffer){0};
  if (encoding == CP__ENCODING_NONE) {
    r = finish_bytes(output, buffer);
    if (r < 0)
      cp__output_free(output);
    return r;
  }

  cp__output_init(&text);
  r = decode(output, encoding, &text);
  cp__output_free(output);
  if (r == 0)
    r = finish_bytes(&text, buffer);
  if (r < 0)
    cp__output_free(&text);
  return r;
}
