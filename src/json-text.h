/*
 * Character classes, UTF-8 and the strict string and number grammar that
 * the JSON reader (json-parse.c), its checks (json-check.c) and the writer
 * (json.c) share. Strict means as JSON.parse reads text: only space, tab,
 * LF and CR as whitespace, no raw control characters in strings, and
 * UTF-8 without overlong forms, surrogates or code points past U+10FFFF.
 */
#ifndef CP_JSON_TEXT_H
#define CP_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline bool is_json_whitespace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether a JSON string may contain c unescaped, and JSON.stringify writes
 * it unescaped: printable ASCII other than the quote and the backslash. */
static inline bool is_plain_string_byte(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static inline bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

/*
 * Returns the length of the UTF-8 sequence that starts at p, whose first
 * byte is 0x80 or above, or 0 when the sequence is invalid. Invalid are a
 * stray continuation byte, an overlong form (C0, C1, E0 80-9F, F0 80-8F),
 * a UTF-16 surrogate (ED A0-BF), a code point above U+10FFFF (F4 90 and
 * up, F5-FF), and a sequence longer than avail. Bytes are read in order
 * and reading stops at the first bad one, so that a NUL-terminated string
 * may pass avail 4.
 */
static inline size_t utf8_sequence_length(const unsigned char *p,
                                          size_t avail) {
  unsigned char c = p[0];
  unsigned char low = 0x80;
  unsigned char high = 0xBF;

  if (c >= 0xC2 && c <= 0xDF)
    return avail >= 2 && is_continuation(p[1]) ? 2 : 0;

  if (c >= 0xE0 && c <= 0xEF) {
    if (c == 0xE0)
      low = 0xA0;
    else if (c == 0xED)
      high = 0x9F;
    if (avail < 3 || p[1] < low || p[1] > high)
      return 0;
    return is_continuation(p[2]) ? 3 : 0;
  }

  if (c >= 0xF0 && c <= 0xF4) {
    if (c == 0xF0)
      low = 0x90;
    else if (c == 0xF4)
      high = 0x8F;
    if (avail < 4 || p[1] < low || p[1] > high)
      return 0;
    return is_continuation(p[2]) && is_continuation(p[3]) ? 4 : 0;
  }

  return 0;
}

static inline bool utf8_valid(const unsigned char *p,
                              const unsigned char *end) {
  while (p < end) {
    size_t n = 1;
    if (*p >= 0x80) {
      n = utf8_sequence_length(p, (size_t)(end - p));
      if (n == 0)
        return false;
    }
    p += n;
  }
  return true;
}

static inline bool is_number_byte(unsigned char c) {
  return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
         c == 'E';
}

/* Value of the four hex digits at p, or -1. */
static inline long read_hex4(const unsigned char *p) {
  long value = 0;

  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    int digit;
    if (is_digit(c))
      digit = c - '0';
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else
      return -1;
    value = value * 16 + digit;
  }
  return value;
}

/* The characters that may follow a backslash, apart from 'u'. */
static inline bool is_short_escape(unsigned char c) {
  return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
         c == 'n' || c == 'r' || c == 't';
}

static inline bool is_high_surrogate(long unit) {
  return unit >= 0xD800 && unit <= 0xDBFF;
}

static inline bool is_low_surrogate(long unit) {
  return unit >= 0xDC00 && unit <= 0xDFFF;
}

/*
 * Returns the length of the \u escape at p (6, or 12 for a surrogate
 * pair), or 0 when its hex digits are missing or invalid (cJSON would read
 * "\uZZZZ" as U+0000). Sets *unsupported for U+0000 and for a surrogate
 * without its other half, which JSON.parse accepts.
 */
static inline size_t measure_unicode_escape(const unsigned char *p,
                                            size_t avail, bool *unsupported) {
  long unit;
  long second;

  if (avail < 6)
    return 0;
  unit = read_hex4(p + 2);
  if (unit < 0)
    return 0;

  if (is_high_surrogate(unit) && avail >= 12 && p[6] == '\\' && p[7] == 'u') {
    second = read_hex4(p + 8);
    if (is_low_surrogate(second))
      return 12;
  }
  if (unit == 0 || is_high_surrogate(unit) || is_low_surrogate(unit))
    *unsupported = true;
  return 6;
}

#if defined(__SSE2__)
/* Flags the bytes of v that are not plain string bytes: 0xFF in each such
 * byte, 0 elsewhere. Compared as signed bytes, 0x80 and above are
 * negative, so one comparison with 0x20 flags them and the control
 * characters. */
static inline __m128i special_string_bytes(__m128i v) {
  __m128i special = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));

  special = _mm_or_si128(special, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
  return _mm_or_si128(special, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

/* Returns a mask with bit i set where byte i of the 16 at p is not a
 * plain string byte. */
static inline unsigned special_string_mask(const unsigned char *p) {
  __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

  return (unsigned)_mm_movemask_epi8(special_string_bytes(v));
}

/* The SSE2 part of skip_plain_string_bytes(): 64 bytes a step while no
 * byte is special, so that long plain strings cost one branch per 64
 * bytes, then 16 at a time. Stops at the first byte that is not plain,
 * or with fewer than 16 bytes left. */
static inline const unsigned char *
skip_plain_string_blocks(const unsigned char *p, const unsigned char *end) {
  while (end - p >= 64) {
    __m128i special = special_string_bytes(
        _mm_loadu_si128((const __m128i *)(const void *)p));

    special = _mm_or_si128(special,
                           special_string_bytes(_mm_loadu_si128(
                               (const __m128i *)(const void *)(p + 16))));
    special = _mm_or_si128(special,
                           special_string_bytes(_mm_loadu_si128(
                               (const __m128i *)(const void *)(p + 32))));
    special = _mm_or_si128(special,
                           special_string_bytes(_mm_loadu_si128(
                               (const __m128i *)(const void *)(p + 48))));
    if (_mm_movemask_epi8(special) != 0)
      break;
    p += 64;
  }
  while (end - p >= 16) {
    unsigned mask = special_string_mask(p);

    if (mask != 0)
      return p + __builtin_ctz(mask);
    p += 16;
  }
  return p;
}
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) &&                          \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/*
 * The portable part of skip_plain_string_bytes(): eight bytes at a time.
 * Each test flags the bytes it matches in their high bit. A subtraction's
 * borrow can also flag a byte above a true match, never one below, so the
 * lowest flagged byte is the first special one. Stops at the first byte
 * that is not plain, or with fewer than 8 bytes left.
 */
static inline const unsigned char *
skip_plain_string_blocks(const unsigned char *p, const unsigned char *end) {
  const uint64_t ones = 0x0101010101010101u;
  const uint64_t high_bits = 0x8080808080808080u;

  while (end - p >= 8) {
    uint64_t word;
    uint64_t quotes;
    uint64_t backslashes;
    uint64_t special;

    memcpy(&word, p, sizeof word);
    quotes = word ^ (ones * '"');       /* 0 where a byte is '"' */
    backslashes = word ^ (ones * '\\'); /* 0 where a byte is '\\' */

    special = (word - ones * 0x20) & ~word; /* below 0x20 */
    special |= (quotes - ones) & ~quotes;   /* zero bytes */
    special |= (backslashes - ones) & ~backslashes;
    special |= word; /* 0x80 and above */
    special &= high_bits;

    if (special != 0)
      return p + __builtin_ctzll(special) / 8;
    p += 8;
  }
  return p;
}
#else
static inline const unsigned char *
skip_plain_string_blocks(const unsigned char *p, const unsigned char *end) {
  (void)end;
  return p;
}
#endif

/*
 * Returns the first byte from p on that is not a plain string byte (see
 * is_plain_string_byte), or end. Reads no byte at or past end.
 */
static inline const unsigned char *
skip_plain_string_bytes(const unsigned char *p, const unsigned char *end) {
  p = skip_plain_string_blocks(p, end);
  while (p < end && is_plain_string_byte(*p))
    p++;
  return p;
}

/*
 * Copies the plain string bytes from p on to out, up to the first byte
 * that is not plain or to end, and returns the position of that byte in
 * the input. out needs room for end - p bytes: with SSE2, whole blocks
 * are stored before they are checked, so bytes past the run may be
 * written too, though never past out + (end - p). One pass over the
 * input instead of skip_plain_string_bytes() and memcpy().
 */
static inline const unsigned char *
copy_plain_string_bytes(const unsigned char *p, const unsigned char *end,
                        char *out) {
#if defined(__SSE2__)
  while (end - p >= 64) {
    __m128i block[4];
    __m128i special = _mm_setzero_si128();

    for (int i = 0; i < 4; i++) {
      block[i] = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
      _mm_storeu_si128((__m128i *)(void *)(out + 16 * i), block[i]);
      special = _mm_or_si128(special, special_string_bytes(block[i]));
    }
    if (_mm_movemask_epi8(special) != 0)
      break;
    p += 64;
    out += 64;
  }
  while (end - p >= 16) {
    __m128i block = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned mask =
        (unsigned)_mm_movemask_epi8(special_string_bytes(block));

    _mm_storeu_si128((__m128i *)(void *)out, block);
    if (mask != 0)
      return p + __builtin_ctz(mask);
    p += 16;
    out += 16;
  }
  while (p < end && is_plain_string_byte(*p))
    *out++ = (char)*p++;
  return p;
#else
  const unsigned char *special = skip_plain_string_bytes(p, end);

  memcpy(out, p, (size_t)(special - p));
  return special;
#endif
}

/*
 * Checks the string whose opening quote was just passed. Advances *pos
 * past the closing quote, or to the first bad byte. Sets *unsupported for
 * an escape of U+0000 or a lone surrogate, which JSON.parse accepts but a
 * cJSON string cannot hold. Returns 0, CP_ERR_IPC_INVALID_UTF8 or
 * CP_ERR_IPC_INVALID_JSON.
 */
int cp__json_scan_string(const unsigned char **pos, const unsigned char *end,
                         bool *unsupported);

/*
 * The error cp__json_parse() reports for a record its parser rejected:
 * CP_ERR_IPC_INVALID_UTF8 when the record holds invalid UTF-8 anywhere,
 * else CP_ERR_IPC_INVALID_JSON when a string, a number or a byte outside
 * them is invalid, else CP_ERR_IPC_UNSUPPORTED_VALUE when brackets nest
 * deeper than CJSON_NESTING_LIMIT, else CP_ERR_IPC_INVALID_JSON (a
 * structure error).
 */
int cp__json_classify_error(const unsigned char *text, size_t len);

/*
 * Brings the members of a parsed object, whose members are already
 * normalized, to the order and uniqueness of a JavaScript object's keys.
 * Members dropped as duplicates are freed. Returns 0 or -ENOMEM.
 */
int cp__json_normalize_object(cJSON *object);

#endif
