/*
 * Node's StringDecoder for the DATA events of a readable stream.
 *
 * The rules for what to hold back follow Node v20's src/string_decoder.cc.
 * A UTF-8 sequence is held back when the high bits of its lead byte
 * announce more bytes than the chunk still has. base64 keeps the last
 * len % 3 bytes. Held-back UTF-8 bytes are decoded on their own once the
 * sequence is complete, once a byte that is not a continuation byte cuts it
 * off, or at end. Decoding replaces each maximal subpart of an invalid
 * sequence with one U+FFFD. tests/test_encoding.c compares the edge cases
 * with Node v20.20.2's output.
 */

/* childproc.h includes uv.h, which needs POSIX types such as
 * pthread_rwlock_t that strict C17 hides. */
#define _POSIX_C_SOURCE 200809L

#include "encoding.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"

#define REPLACEMENT_CHARACTER "\xEF\xBF\xBD"
#define REPLACEMENT_CHARACTER_LEN 3

/* The maximum text one input byte can produce (U+FFFD in UTF-8), so that
 * 3 * len bounds every encoding's output. */
#define MAX_TEXT_PER_BYTE 3

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

static const struct {
  const char *name;
  cp__encoding encoding;
} encoding_names[] = {
    {"utf8", CP__ENCODING_UTF8},     {"utf-8", CP__ENCODING_UTF8},
    {"latin1", CP__ENCODING_LATIN1}, {"binary", CP__ENCODING_LATIN1},
    {"hex", CP__ENCODING_HEX},       {"base64", CP__ENCODING_BASE64},
};

static char ascii_lower(char c) {
  if (c >= 'A' && c <= 'Z')
    return (char)(c - 'A' + 'a');

  return c;
}

/* Compares without the C locale's help, so that a Turkish locale cannot
 * turn "I" into a dotless i. lower must already be lowercase. */
static bool equals_ignoring_ascii_case(const char *name, const char *lower) {
  while (*name != '\0' && ascii_lower(*name) == *lower) {
    name++;
    lower++;
  }

  return *name == '\0' && *lower == '\0';
}

int cp__encoding_parse(const char *name, cp__encoding *out) {
  if (name == NULL) {
    *out = CP__ENCODING_NONE;
    return 0;
  }

  for (size_t i = 0; i < sizeof encoding_names / sizeof encoding_names[0];
       i++) {
    if (equals_ignoring_ascii_case(name, encoding_names[i].name)) {
      *out = encoding_names[i].encoding;
      return 0;
    }
  }

  return CP_ERR_UNKNOWN_ENCODING;
}

/* ------------------------------------------------------------------------
 * Output buffer
 * ------------------------------------------------------------------------ */

/* Makes room for max_len bytes of text plus the NUL. The buffer never
 * shrinks, and on failure it is left as it was. */
static int reserve_text(cp__decoder *decoder, size_t max_len) {
  if (max_len == 0 || max_len < decoder->text_capacity)
    return 0;

  size_t capacity = max_len + 1;
  if (decoder->text_capacity <= SIZE_MAX / 2 &&
      capacity < decoder->text_capacity * 2)
    capacity = decoder->text_capacity * 2;

  char *text = realloc(decoder->text, capacity);
  if (text == NULL)
    return -ENOMEM;

  decoder->text = text;
  decoder->text_capacity = capacity;
  return 0;
}

/* Empty text is a static "" so that a decoder that never produced text
 * needs no buffer. */
static void finish_text(cp__decoder *decoder, size_t len, const char **text,
                        size_t *text_len) {
  if (len == 0) {
    *text = "";
  } else {
    decoder->text[len] = '\0';
    *text = decoder->text;
  }

  *text_len = len;
}

/* ------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------ */

static bool is_continuation_byte(unsigned char byte) {
  return (byte & 0xC0) == 0x80;
}

/*
 * Returns the sequence length that Node reads from a lead byte's high bits
 * alone: 2, 3 or 4, or 0 for ASCII, continuation bytes and F8-FF. C0, C1 and
 * F5-F7 count as lead bytes here although no valid sequence starts with
 * them, because Node holds them back too.
 */
static size_t utf8_announced_length(unsigned char lead) {
  if ((lead & 0xE0) == 0xC0)
    return 2;

  if ((lead & 0xF0) == 0xE0)
    return 3;

  if ((lead & 0xF8) == 0xF0)
    return 4;

  return 0;
}

/*
 * Returns how many bytes at the end of a chunk start a sequence that needs
 * more bytes, by Node's rule. It walks back over at most three continuation
 * bytes to a lead byte. The bytes are held back when they are fewer than
 * the lead byte announces.
 */
static size_t utf8_incomplete_tail_len(const unsigned char *bytes, size_t len) {
  size_t count = 0;

  for (size_t i = len; i > 0; i--) {
    unsigned char byte = bytes[i - 1];
    count++;

    if (!is_continuation_byte(byte)) {
      size_t announced = utf8_announced_length(byte);
      return count < announced ? count : 0;
    }

    if (count >= 4)
      return 0;
  }

  return 0;
}

/*
 * Returns the length of the well-formed sequence at bytes[0], or 0 when
 * the sequence there is ill-formed or cut off by the end of the input.
 * Then *subpart_len receives the length of its maximal subpart (the
 * Unicode Standard's term), the bytes that one U+FFFD replaces.
 */
static size_t utf8_sequence_len(const unsigned char *bytes, size_t len,
                                size_t *subpart_len) {
  unsigned char lead = bytes[0];
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  size_t expected;

  if (lead < 0x80)
    return 1;

  if (lead >= 0xC2 && lead <= 0xDF) {
    expected = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    expected = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;  /* overlong below U+0800 */
    high = lead == 0xED ? 0x9F : 0xBF; /* surrogates D800-DFFF */
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    expected = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;  /* overlong below U+10000 */
    high = lead == 0xF4 ? 0x8F : 0xBF; /* above U+10FFFF */
  } else {
    *subpart_len = 1;
    return 0;
  }

  /* Only the second byte has a range narrower than 80-BF. */
  size_t i = 1;
  while (i < expected && i < len && bytes[i] >= low && bytes[i] <= high) {
    low = 0x80;
    high = 0xBF;
    i++;
  }

  if (i == expected)
    return expected;

  *subpart_len = i;
  return 0;
}

/* Skips ASCII eight bytes at a time, which is most of the text a child
 * process usually prints. */
static size_t ascii_prefix_len(const unsigned char *bytes, size_t len) {
  const uint64_t high_bits = UINT64_C(0x8080808080808080);
  size_t i = 0;

  while (len - i >= 8) {
    uint64_t word;
    memcpy(&word, bytes + i, sizeof word);
    if ((word & high_bits) != 0)
      break;

    i += 8;
  }

  while (i < len && bytes[i] < 0x80)
    i++;

  return i;
}

/* Returns the length of the longest prefix of whole, well-formed
 * sequences, which decoding copies unchanged. */
static size_t utf8_valid_prefix_len(const unsigned char *bytes, size_t len) {
  size_t i = 0;

  while (i < len) {
    if (bytes[i] < 0x80) {
      i += ascii_prefix_len(bytes + i, len - i);
      continue;
    }

    size_t subpart_len;
    size_t sequence_len = utf8_sequence_len(bytes + i, len - i, &subpart_len);
    if (sequence_len == 0)
      break;

    i += sequence_len;
  }

  return i;
}

/*
 * Writes bytes as well-formed UTF-8 to out, which must have room for
 * valid_len + 3 * (len - valid_len) bytes, where valid_len is
 * utf8_valid_prefix_len(bytes, len). Returns the bytes written.
 */
static size_t utf8_decode(const unsigned char *bytes, size_t len,
                          size_t valid_len, char *out) {
  size_t written = 0;
  size_t i = 0;

  for (;;) {
    if (valid_len > 0) {
      memcpy(out + written, bytes + i, valid_len);
      written += valid_len;
      i += valid_len;
    }
    if (i == len)
      return written;

    size_t subpart_len;
    utf8_sequence_len(bytes + i, len - i, &subpart_len);
    memcpy(out + written, REPLACEMENT_CHARACTER, REPLACEMENT_CHARACTER_LEN);
    written += REPLACEMENT_CHARACTER_LEN;
    i += subpart_len;

    valid_len = utf8_valid_prefix_len(bytes + i, len - i);
  }
}

/*
 * Appends continuation bytes from the input to the held-back sequence in
 * head until it has the length its lead byte announces. A byte that is not
 * a continuation byte ends the sequence early and stays in the input, as in
 * Node. Returns the bytes taken, and sets *ready when head must be decoded
 * now rather than held back further.
 */
static size_t utf8_fill_held(unsigned char *head, size_t *head_len,
                             const unsigned char *bytes, size_t len,
                             bool *ready) {
  size_t announced = utf8_announced_length(head[0]);
  size_t taken = 0;

  while (*head_len < announced && taken < len) {
    if (!is_continuation_byte(bytes[taken])) {
      *ready = true;
      return taken;
    }

    head[*head_len] = bytes[taken];
    (*head_len)++;
    taken++;
  }

  *ready = *head_len == announced;
  return taken;
}

/*
 * Plans the whole write before touching the decoder, so that a failed
 * allocation leaves the held-back bytes as they were. The output is the
 * completed head, if any, then the body, and the tail is held back.
 */
static int utf8_write(cp__decoder *decoder, const unsigned char *bytes,
                      size_t len, size_t *text_len) {
  unsigned char head[sizeof decoder->pending];
  size_t head_len = decoder->pending_len;
  bool head_ready = false;

  memcpy(head, decoder->pending, head_len);
  if (head_len > 0) {
    size_t taken = utf8_fill_held(head, &head_len, bytes, len, &head_ready);
    bytes += taken;
    len -= taken;
  }

  size_t tail_len = utf8_incomplete_tail_len(bytes, len);
  size_t body_len = len - tail_len;
  size_t body_valid_len = utf8_valid_prefix_len(bytes, body_len);
  size_t head_max = head_ready ? MAX_TEXT_PER_BYTE * head_len : 0;
  size_t body_max =
      body_valid_len + MAX_TEXT_PER_BYTE * (body_len - body_valid_len);

  int err = reserve_text(decoder, head_max + body_max);
  if (err != 0)
    return err;

  size_t written = 0;
  if (head_ready) {
    written = utf8_decode(head, head_len, utf8_valid_prefix_len(head, head_len),
                          decoder->text);
  }
  if (body_len > 0) {
    written +=
        utf8_decode(bytes, body_len, body_valid_len, decoder->text + written);
  }

  /* A head that is still short has consumed the whole input. */
  if (head_len > 0 && !head_ready) {
    memcpy(decoder->pending, head, head_len);
    decoder->pending_len = head_len;
  } else {
    memcpy(decoder->pending, bytes + body_len, tail_len);
    decoder->pending_len = tail_len;
  }

  *text_len = written;
  return 0;
}

/* ------------------------------------------------------------------------
 * latin1, hex
 * ------------------------------------------------------------------------ */

static size_t latin1_to_utf8(const unsigned char *bytes, size_t len,
                             char *out) {
  size_t written = 0;

  for (size_t i = 0; i < len; i++) {
    if (bytes[i] < 0x80) {
      out[written++] = (char)bytes[i];
    } else {
      out[written++] = (char)(0xC0 | (bytes[i] >> 6));
      out[written++] = (char)(0x80 | (bytes[i] & 0x3F));
    }
  }

  return written;
}

static size_t hex_encode(const unsigned char *bytes, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";

  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0x0F];
  }

  return 2 * len;
}

/* ------------------------------------------------------------------------
 * base64
 * ------------------------------------------------------------------------ */

/* Encodes with the standard alphabet, padding a last group of 1 or 2 bytes
 * with "=" as Buffer.toString('base64') does. */
static size_t base64_encode(const unsigned char *bytes, size_t len, char *out) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t written = 0;
  size_t i = 0;

  for (; len - i >= 3; i += 3) {
    uint32_t group =
        (uint32_t)bytes[i] << 16 | (uint32_t)bytes[i + 1] << 8 | bytes[i + 2];
    out[written++] = alphabet[group >> 18];
    out[written++] = alphabet[(group >> 12) & 0x3F];
    out[written++] = alphabet[(group >> 6) & 0x3F];
    out[written++] = alphabet[group & 0x3F];
  }

  if (len - i == 0)
    return written;

  uint32_t group = (uint32_t)bytes[i] << 16;
  if (len - i == 2)
    group |= (uint32_t)bytes[i + 1] << 8;

  out[written++] = alphabet[group >> 18];
  out[written++] = alphabet[(group >> 12) & 0x3F];
  out[written++] = len - i == 2 ? alphabet[(group >> 6) & 0x3F] : '=';
  out[written++] = '=';
  return written;
}

/* Same plan as utf8_write: the held-back bytes first take what they need
 * to make a group of three, and the last len % 3 bytes are held back. */
static int base64_write(cp__decoder *decoder, const unsigned char *bytes,
                        size_t len, size_t *text_len) {
  unsigned char head[3];
  size_t head_len = decoder->pending_len;

  memcpy(head, decoder->pending, head_len);
  if (head_len > 0) {
    size_t taken = sizeof head - head_len < len ? sizeof head - head_len : len;
    memcpy(head + head_len, bytes, taken);
    head_len += taken;
    bytes += taken;
    len -= taken;
  }

  bool head_ready = head_len == sizeof head;
  size_t tail_len = len % 3;
  size_t body_len = len - tail_len;

  int err = reserve_text(decoder, (head_ready ? 4 : 0) + body_len / 3 * 4);
  if (err != 0)
    return err;

  size_t written = 0;
  if (head_ready)
    written = base64_encode(head, head_len, decoder->text);
  if (body_len > 0)
    written += base64_encode(bytes, body_len, decoder->text + written);

  /* A head that is still short has consumed the whole input. */
  if (head_len > 0 && !head_ready) {
    memcpy(decoder->pending, head, head_len);
    decoder->pending_len = head_len;
  } else {
    memcpy(decoder->pending, bytes + body_len, tail_len);
    decoder->pending_len = tail_len;
  }

  *text_len = written;
  return 0;
}

/* ------------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------------ */

void cp__decoder_init(cp__decoder *decoder, cp__encoding encoding) {
  memset(decoder, 0, sizeof *decoder);
  decoder->encoding = encoding;
}

/* Encodings without held-back bytes: one pass with a fixed bound. */
static int write_stateless(cp__decoder *decoder, const unsigned char *bytes,
                           size_t len, size_t *text_len) {
  size_t max_len = decoder->encoding == CP__ENCODING_NONE ? len : 2 * len;
  int err = reserve_text(decoder, max_len);
  if (err != 0)
    return err;

  switch (decoder->encoding) {
  case CP__ENCODING_LATIN1:
    *text_len = latin1_to_utf8(bytes, len, decoder->text);
    break;
  case CP__ENCODING_HEX:
    *text_len = hex_encode(bytes, len, decoder->text);
    break;
  default:
    memcpy(decoder->text, bytes, len);
    *text_len = len;
    break;
  }

  return 0;
}

int cp__decoder_write(cp__decoder *decoder, const char *bytes, size_t len,
                      const char **text, size_t *text_len) {
  const unsigned char *input = (const unsigned char *)bytes;
  size_t written = 0;
  int err;

  /* An empty write changes nothing, in Node too, and bytes may be NULL. */
  if (len == 0) {
    finish_text(decoder, 0, text, text_len);
    return 0;
  }

  /* Keeps every bound below, up to 3 * len plus a few held-back bytes,
   * from overflowing. */
  if (len > (SIZE_MAX - 64) / MAX_TEXT_PER_BYTE)
    return -ENOMEM;

  switch (decoder->encoding) {
  case CP__ENCODING_UTF8:
    err = utf8_write(decoder, input, len, &written);
    break;
  case CP__ENCODING_BASE64:
    err = base64_write(decoder, input, len, &written);
    break;
  default:
    err = write_stateless(decoder, input, len, &written);
    break;
  }

  if (err != 0)
    return err;

  finish_text(decoder, written, text, text_len);
  return 0;
}

int cp__decoder_end(cp__decoder *decoder, const char **text, size_t *text_len) {
  const unsigned char *held = decoder->pending;
  size_t held_len = decoder->pending_len;
  size_t written = 0;

  if (held_len == 0) {
    finish_text(decoder, 0, text, text_len);
    return 0;
  }

  /* At most three U+FFFD for UTF-8, or one padded base64 group. */
  int err = reserve_text(decoder, MAX_TEXT_PER_BYTE * held_len + 4);
  if (err != 0)
    return err;

  if (decoder->encoding == CP__ENCODING_UTF8) {
    written = utf8_decode(held, held_len, utf8_valid_prefix_len(held, held_len),
                          decoder->text);
  } else if (decoder->encoding == CP__ENCODING_BASE64) {
    written = base64_encode(held, held_len, decoder->text);
  }

  decoder->pending_len = 0;
  finish_text(decoder, written, text, text_len);
  return 0;
}

void cp__decoder_release_text(cp__decoder *decoder) {
  free(decoder->text);
  decoder->text = NULL;
  decoder->text_capacity = 0;
}

void cp__decoder_free(cp__decoder *decoder) {
  free(decoder->text);
  decoder->text = NULL;
  decoder->text_capacity = 0;
  decoder->pending_len = 0;
}
