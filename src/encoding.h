/* Node's StringDecoder: bytes to text without splitting a character. */
#ifndef CP_ENCODING_H
#define CP_ENCODING_H

#include <stddef.h>

typedef enum cp__encoding {
  CP__ENCODING_NONE = 0, /* raw bytes */
  CP__ENCODING_UTF8,
  CP__ENCODING_LATIN1,
  CP__ENCODING_HEX,
  CP__ENCODING_BASE64
} cp__encoding;

typedef struct cp__decoder {
  cp__encoding encoding;
  /* Bytes of an incomplete character or base64 group: at most 3 between
   * calls (utf8, base64), always 0 for the other encodings. */
  unsigned char pending[4];
  size_t pending_len;
  char *text; /* owned output buffer, reused between calls */
  size_t text_capacity;
} cp__decoder;

/* Parses Node's names ("utf8", "utf-8", "latin1", "binary", "hex",
 * "base64", any ASCII case). NULL gives CP__ENCODING_NONE. Returns 0 or
 * CP_ERR_UNKNOWN_ENCODING, which leaves *out unchanged. Node v20 also
 * accepts "" as utf8, and ascii, ucs2, utf16le and base64url, which this
 * rejects. */
int cp__encoding_parse(const char *name, cp__encoding *out);

/* Starts a decoder with nothing held back. It allocates nothing until the
 * first write that produces text. */
void cp__decoder_init(cp__decoder *decoder, cp__encoding encoding);

/*
 * Decodes len bytes as Node v20's StringDecoder.write() does, holding back
 * the bytes of a character (or base64 group) that is not complete yet.
 * utf8 output is always valid UTF-8: each invalid byte sequence becomes one
 * U+FFFD per maximal subpart. latin1 output is UTF-8, hex is lowercase, and
 * CP__ENCODING_NONE copies the bytes. bytes may be NULL when len is 0.
 *
 * *text receives NUL-terminated text owned by the decoder, valid until the
 * next call; *text_len excludes the NUL and may be 0. Returns 0 or -ENOMEM.
 * After -ENOMEM nothing was consumed and the decoder is unchanged, so the
 * same bytes can be written again.
 */
int cp__decoder_write(cp__decoder *decoder, const char *bytes, size_t len,
                      const char **text, size_t *text_len);

/*
 * Flushes what is held back at end of input, as Node's end() does. An
 * incomplete UTF-8 sequence gives one U+FFFD per maximal subpart: one for a
 * valid prefix such as E2 82, two for E0 80. base64 gives the padded last
 * group. Afterwards nothing is held back and the decoder can be reused.
 * Same contract as write.
 */
int cp__decoder_end(cp__decoder *decoder, const char **text,
                    size_t *text_len);

/* Frees the output buffer, which invalidates the text of the last call,
 * and keeps the bytes held back. The next call allocates a new buffer. */
void cp__decoder_release_text(cp__decoder *decoder);

/* Frees the output buffer. The decoder may be initialized again. */
void cp__decoder_free(cp__decoder *decoder);

#endif
