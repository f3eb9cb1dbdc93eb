/*
 * JSON text as Node's JSON.parse reads it and JSON.stringify writes it, on
 * top of cJSON.
 *
 * cJSON builds the values, but it is laxer than JSON.parse and has limits
 * of its own, so every record is first checked in one pass (scan_record):
 * strict UTF-8, no control characters, JSON number syntax, valid escapes.
 * Records with the rare things cJSON cannot read as they are (numbers
 * longer than 63 characters, escapes of U+0000 and lone surrogates) go
 * through a patched copy. After cJSON, objects are brought to the order
 * and uniqueness of keys that a JavaScript object has.
 *
 * The printer is our own because JSON.stringify's number format
 * (Number.prototype.toString) is not what cJSON prints.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"

static int append_byte(cp__bytes *bytes, char byte) {
  if (bytes->len == bytes->capacity) {
    int r = cp__bytes_reserve(bytes, 1);
    if (r < 0)
      return r;
  }
  bytes->data[bytes->len++] = byte;
  return 0;
}

/* ------------------------------------------------------------------------
 * UTF-8 and character classes
 * ------------------------------------------------------------------------ */

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool is_json_whitespace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether a JSON string may contain c unescaped, and JSON.stringify writes
 * it unescaped: printable ASCII other than the quote and the backslash. */
static bool is_plain_string_byte(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

/*
 * Returns the length of the UTF-8 sequence that starts at p, whose first
 * byte is 0x80 or above, or 0 when the sequence is invalid. Invalid are a
 * stray continuation byte, an overlong form (C0, C1, E0 80-9F, F0 80-8F),
 * a UTF-16 surrogate (ED A0-BF), a code point above U+10FFFF (F4 90 and
 * up, F5-FF), and a sequence longer than avail. Bytes are read in order
 * and reading stops at the first bad one, so that a NUL-terminated string
 * may pass avail 4.
 */
static size_t utf8_sequence_length(const unsigned char *p, size_t avail) {
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

static bool utf8_valid(const unsigned char *p, const unsigned char *end) {
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

/* ------------------------------------------------------------------------
 * Checking a record: what cJSON lets through and JSON.parse does not
 * ------------------------------------------------------------------------ */

/* cJSON 1.7.15 as released copies at most this many characters of a number
 * before strtod and leaves the rest unread, which fails the record.
 * Debian's 1.7.15-1+deb12u3 and later read numbers whole (the fix for
 * CVE-2023-26819). Longer numbers go through copy_for_cjson(), so either
 * version gives the right double. */
#define CJSON_NUMBER_MAX 63

/* What scan_record() found in a record it accepted. */
typedef struct record_scan {
  bool unsupported;  /* a \u0000 escape or a lone surrogate escape */
  bool long_numbers; /* a number longer than CJSON_NUMBER_MAX */
  size_t max_depth;  /* of arrays and objects */
} record_scan;

static bool is_number_byte(unsigned char c) {
  return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
         c == 'E';
}

/* Value of the four hex digits at p, or -1. */
static long read_hex4(const unsigned char *p) {
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
static bool is_short_escape(unsigned char c) {
  return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
         c == 'n' || c == 'r' || c == 't';
}

static bool is_high_surrogate(long unit) {
  return unit >= 0xD800 && unit <= 0xDBFF;
}

static bool is_low_surrogate(long unit) {
  return unit >= 0xDC00 && unit <= 0xDFFF;
}

/*
 * Returns the length of the \u escape at p (6, or 12 for a surrogate
 * pair), or 0 when its hex digits are missing or invalid (cJSON would read
 * "\uZZZZ" as U+0000). Sets *unsupported for U+0000 and for a surrogate
 * without its other half, which JSON.parse accepts.
 */
static size_t measure_unicode_escape(const unsigned char *p, size_t avail,
                                     bool *unsupported) {
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

/*
 * Returns the first byte from p on that is not a plain string byte (see
 * is_plain_string_byte), or end.
 *
 * Where the platform allows, eight bytes are tested at once. Each test
 * flags the bytes it matches in their high bit. A subtraction's borrow
 * can also flag a byte above a true match, never one below, so the lowest
 * flagged byte is the first special one.
 */
static const unsigned char *skip_plain_string_bytes(const unsigned char *p,
                                                    const unsigned char *end) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                            \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
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
#endif

  while (p < end && is_plain_string_byte(*p))
    p++;
  return p;
}

/*
 * Checks the string whose opening quote was just passed. Advances *pos
 * past the closing quote, or to the first bad byte. Returns 0,
 * CP_ERR_IPC_INVALID_UTF8 or CP_ERR_IPC_INVALID_JSON.
 */
static int scan_string(const unsigned char **pos, const unsigned char *end,
                       record_scan *scan) {
  const unsigned char *p = *pos;
  int r = CP_ERR_IPC_INVALID_JSON; /* for a string left open */

  while (p < end) {
    unsigned char c;
    size_t n;

    p = skip_plain_string_bytes(p, end);
    if (p == end)
      break;
    c = *p;

    if (c == '"') {
      p++;
      r = 0;
      break;
    }

    if (c == '\\') {
      if (end - p < 2)
        break;
      if (p[1] == 'u') {
        n = measure_unicode_escape(p, (size_t)(end - p), &scan->unsupported);
        if (n == 0)
          break;
        p += n;
        continue;
      }
      if (!is_short_escape(p[1]))
        break;
      p += 2;
      continue;
    }

    /* JSON.parse rejects raw control characters in strings, tab included,
     * while cJSON copies them. */
    if (c < 0x20)
      break;

    n = utf8_sequence_length(p, (size_t)(end - p));
    if (n == 0) {
      r = CP_ERR_IPC_INVALID_UTF8;
      break;
    }
    p += n;
  }

  *pos = p;
  return r;
}

/*
 * Checks the number at *pos against JSON's grammar,
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and advances *pos past
 * it. cJSON hands the text to strtod, which also takes "01", "1.", "-.5"
 * and "1.e5", but JSON.parse rejects them. Returns 0 or
 * CP_ERR_IPC_INVALID_JSON.
 */
static int scan_number(const unsigned char **pos, const unsigned char *end,
                       record_scan *scan) {
  const unsigned char *start = *pos;
  const unsigned char *p = start;

  if (*p == '-')
    p++;
  if (p == end || !is_digit(*p))
    return CP_ERR_IPC_INVALID_JSON;
  if (*p == '0') {
    p++;
  } else {
    while (p < end && is_digit(*p))
      p++;
  }

  if (p < end && *p == '.') {
    p++;
    if (p == end || !is_digit(*p))
      return CP_ERR_IPC_INVALID_JSON;
    while (p < end && is_digit(*p))
      p++;
  }

  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (p == end || !is_digit(*p))
      return CP_ERR_IPC_INVALID_JSON;
    while (p < end && is_digit(*p))
      p++;
  }

  /* A number glued to more number characters ("01", "1-2", "1.5.3"). */
  if (p < end && is_number_byte(*p))
    return CP_ERR_IPC_INVALID_JSON;

  if ((size_t)(p - start) > CJSON_NUMBER_MAX)
    scan->long_numbers = true;
  *pos = p;
  return 0;
}

/*
 * Checks a whole record in one pass: strict UTF-8 everywhere, and strings
 * and numbers as JSON.parse reads them. Outside strings it rejects the
 * bytes cJSON skips but JSON.parse does not: cJSON takes every byte up to
 * 0x20 as whitespace, and skips a byte order mark at the start. The
 * structure (brackets, commas, literals) is left to cJSON. Returns 0,
 * CP_ERR_IPC_INVALID_UTF8 or CP_ERR_IPC_INVALID_JSON.
 */
static int scan_record(const unsigned char *text, size_t len,
                       record_scan *scan) {
  const unsigned char *p = text;
  const unsigned char *end = text + len;
  size_t depth = 0;
  bool has_token = false;
  int r = 0;

  while (p < end && r == 0) {
    unsigned char c = *p;

    switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
      p++;
      continue;
    case '"':
      p++;
      r = scan_string(&p, end, scan);
      break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
      r = scan_number(&p, end, scan);
      break;
    case '[':
    case '{':
      depth++;
      if (depth > scan->max_depth)
        scan->max_depth = depth;
      p++;
      break;
    case ']':
    case '}':
      if (depth > 0)
        depth--;
      p++;
      break;
    default:
      if (c < 0x20 || c >= 0x80)
        r = CP_ERR_IPC_INVALID_JSON;
      else
        p++;
      break;
    }
    has_token = true;
  }

  if (r == 0 && !has_token)
    r = CP_ERR_IPC_INVALID_JSON;

  /* Invalid UTF-8 is reported first, wherever it is in the record. */
  if (r == CP_ERR_IPC_INVALID_JSON && !utf8_valid(p, end))
    r = CP_ERR_IPC_INVALID_UTF8;
  return r;
}

/* ------------------------------------------------------------------------
 * A copy of the record that cJSON can read
 * ------------------------------------------------------------------------ */

/*
 * Reads a JSON number of any length as the nearest double, as JSON.parse
 * does. glibc's strtod rounds correctly at any length. The digits are
 * handed over without their decimal point, the exponent adjusted, so the
 * locale's decimal point cannot interfere.
 */
static int read_long_number(const unsigned char *p, const unsigned char *end,
                            double *value_out) {
  char *text = malloc((size_t)(end - p) + 32);
  size_t used = 0;
  long long exponent = 0;
  long long fraction_digits = 0;
  bool negative_exponent = false;

  if (text == NULL)
    return -ENOMEM;

  if (*p == '-')
    text[used++] = (char)*p++;
  while (p < end && is_digit(*p))
    text[used++] = (char)*p++;
  if (p < end && *p == '.') {
    for (p++; p < end && is_digit(*p); p++) {
      text[used++] = (char)*p;
      fraction_digits++;
    }
  }

  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      negative_exponent = *p++ == '-';
    /* Past 10^15 the result is 0 or infinity whatever the digit count of
     * any record that fits in memory, so the exponent stops growing. */
    for (; p < end && is_digit(*p); p++) {
      if (exponent < 1000000000000000LL)
        exponent = exponent * 10 + (*p - '0');
    }
  }
  if (negative_exponent)
    exponent = -exponent;
  exponent -= fraction_digits;

  text[used++] = 'e';
  used += cp__json_int64_text(exponent, text + used);
  text[used] = '\0';

  *value_out = strtod(text, NULL);
  free(text);
  return 0;
}

/* Writes a double as JSON text that strtod reads back exactly, signed zero
 * and infinities included. Returns the length. */
static size_t write_exact_number(char *out, double value) {
  if (value == 0) {
    if (!signbit(value)) {
      out[0] = '0';
      return 1;
    }
    memcpy(out, "-0", 2);
    return 2;
  }
  if (isinf(value)) {
    if (value > 0) {
      memcpy(out, "1e999", 5);
      return 5;
    }
    memcpy(out, "-1e999", 6);
    return 6;
  }
  return cp__json_number_text(value, out);
}

/* Copies the string at p (after its opening quote) up to and including the
 * closing quote, replacing each \u escape that sets *unsupported by
 * \u0020. Returns the position after the quote. */
static const unsigned char *copy_string(const unsigned char *p,
                                        const unsigned char *end, char **out) {
  while (p < end && *p != '"') {
    size_t n = 1;

    if (*p == '\\') {
      n = 2;
      if (p[1] == 'u') {
        bool unsupported = false;
        n = measure_unicode_escape(p, (size_t)(end - p), &unsupported);
        if (unsupported) {
          memcpy(*out, "\\u0020", 6);
          *out += 6;
          p += n;
          continue;
        }
      }
    }
    memcpy(*out, p, n);
    *out += n;
    p += n;
  }
  *(*out)++ = '"';
  return p + 1;
}

/*
 * Copies a record that scan_record() accepted, for cJSON to parse. Numbers
 * longer than CJSON_NUMBER_MAX become the same double in its shortest
 * form, and unsupported \u escapes become \u0020, so that cJSON can still
 * check the whole record. Nothing grows, so the copy is at most len bytes.
 */
static int copy_for_cjson(const unsigned char *text, size_t len,
                          char **copy_out, size_t *copy_len_out) {
  const unsigned char *p = text;
  const unsigned char *end = text + len;
  char *copy = malloc(len);
  char *out = copy;

  if (copy == NULL)
    return -ENOMEM;

  while (p < end) {
    const unsigned char *number_end = p;

    if (*p == '"') {
      *out++ = '"';
      p = copy_string(p + 1, end, &out);
      continue;
    }
    if (*p != '-' && !is_digit(*p)) {
      *out++ = (char)*p++;
      continue;
    }

    while (number_end < end && is_number_byte(*number_end))
      number_end++;
    if (number_end - p > CJSON_NUMBER_MAX) {
      double value;
      int r = read_long_number(p, number_end, &value);
      if (r < 0) {
        free(copy);
        return r;
      }
      out += write_exact_number(out, value);
    } else {
      memcpy(out, p, (size_t)(number_end - p));
      out += number_end - p;
    }
    p = number_end;
  }

  *copy_out = copy;
  *copy_len_out = (size_t)(out - copy);
  return 0;
}

/* ------------------------------------------------------------------------
 * Objects as JavaScript builds them
 * ------------------------------------------------------------------------ */

/* Objects with at most this many keys are checked for duplicates pair by
 * pair, and larger ones through a hash table. */
#define SMALL_OBJECT_KEYS 8

/* Whether key is an array index, which JavaScript objects list first, in
 * ascending order: "0", or a decimal without leading zeros up to
 * 4294967294 (2^32 - 2). */
static bool is_array_index(const char *key, uint32_t *index_out) {
  uint64_t value = 0;
  size_t i;

  if (!is_digit((unsigned char)key[0]))
    return false;
  if (key[0] == '0' && key[1] != '\0')
    return false;

  for (i = 0; key[i] != '\0'; i++) {
    if (i == 10 || !is_digit((unsigned char)key[i]))
      return false;
    value = value * 10 + (uint64_t)(key[i] - '0');
  }
  if (value > 4294967294u)
    return false;
  *index_out = (uint32_t)value;
  return true;
}

/* Whether the object's members need reordering or merging: an array-index
 * key, or, among a few keys, one given twice. Large objects always go
 * through normalize_members(). */
static bool members_need_work(const cJSON *object, size_t *count_out) {
  const cJSON *member;
  size_t count = 0;
  bool needed = false;

  for (member = object->child; member != NULL; member = member->next) {
    uint32_t index;
    if (is_digit((unsigned char)member->string[0]) &&
        is_array_index(member->string, &index))
      needed = true;
    count++;
  }
  *count_out = count;
  if (needed || count > SMALL_OBJECT_KEYS)
    return true;

  for (member = object->child; member != NULL; member = member->next) {
    for (const cJSON *later = member->next; later != NULL;
         later = later->next) {
      if (member->string[0] == later->string[0] &&
          strcmp(member->string, later->string) == 0)
        return true;
    }
  }
  return false;
}

static uint64_t hash_key(const char *key) {
  uint64_t hash = 14695981039346656037u; /* FNV-1a */

  for (; *key != '\0'; key++) {
    hash ^= (unsigned char)*key;
    hash *= 1099511628211u;
  }
  return hash;
}

/* Replaces members[first] by members[later], which has the same key, and
 * frees the member it replaces: JavaScript keeps the first key's place
 * and the last value. */
static void merge_duplicate(cJSON **members, size_t first, size_t later) {
  cJSON *replaced = members[first];

  members[first] = members[later];
  members[later] = NULL;
  replaced->next = NULL; /* cJSON_Delete frees every following sibling */
  replaced->prev = NULL;
  cJSON_Delete(replaced);
}

/* Merges duplicate keys, with slots as scratch space: a hash table of
 * member positions plus one, slot_count of them, a power of two. */
static void merge_duplicates(cJSON **members, size_t count, size_t *slots,
                             size_t slot_count) {
  memset(slots, 0, slot_count * sizeof *slots);

  for (size_t i = 0; i < count; i++) {
    size_t slot = (size_t)hash_key(members[i]->string) & (slot_count - 1);

    while (slots[slot] != 0) {
      size_t first = slots[slot] - 1;
      if (strcmp(members[first]->string, members[i]->string) == 0) {
        merge_duplicate(members, first, i);
        break;
      }
      slot = (slot + 1) & (slot_count - 1);
    }
    if (slots[slot] == 0)
      slots[slot] = i + 1;
  }
}

typedef struct indexed_member {
  uint32_t index;
  cJSON *member;
} indexed_member;

static int compare_indexed_members(const void *a, const void *b) {
  uint32_t left = ((const indexed_member *)a)->index;
  uint32_t right = ((const indexed_member *)b)->index;
  return (left > right) - (left < right);
}

/* Links members (NULL entries skipped) as the object's children, in that
 * order, keeping cJSON's rule that the first child's prev is the last. */
static void relink_members(cJSON *object, cJSON **members, size_t count) {
  cJSON *first = NULL;
  cJSON *last = NULL;

  for (size_t i = 0; i < count; i++) {
    cJSON *member = members[i];
    if (member == NULL)
      continue;
    member->next = NULL;
    if (last == NULL) {
      first = member;
    } else {
      last->next = member;
      member->prev = last;
    }
    last = member;
  }
  if (first != NULL)
    first->prev = last;
  object->child = first;
}

/*
 * Reorders the members of an object with count members as JavaScript
 * lists an object's keys, duplicates merged: array indices ascending,
 * then the other keys in first-appearance order.
 */
static int normalize_members(cJSON *object, size_t count) {
  size_t slot_count = 16;
  size_t index_count = 0;
  size_t other_count = 0;
  cJSON **members;
  cJSON **ordered;
  indexed_member *indexed;
  size_t *slots;
  cJSON *member;
  size_t i = 0;

  while (slot_count < 2 * count)
    slot_count *= 2;
  /* One allocation for the member list, the array-index members, the hash
   * table and the reordered list. Every part has the alignment of a
   * pointer and a size that keeps the next part aligned. */
  members = malloc(count * (2 * sizeof(cJSON *) + sizeof(indexed_member)) +
                   slot_count * sizeof(size_t));
  if (members == NULL)
    return -ENOMEM;
  indexed = (indexed_member *)(void *)(members + count);
  slots = (size_t *)(void *)(indexed + count);
  ordered = (cJSON **)(void *)(slots + slot_count);

  for (member = object->child; member != NULL; member = member->next)
    members[i++] = member;
  merge_duplicates(members, count, slots, slot_count);

  for (i = 0; i < count; i++) {
    uint32_t index;
    if (members[i] != NULL && is_array_index(members[i]->string, &index)) {
      indexed[index_count].index = index;
      indexed[index_count++].member = members[i];
      members[i] = NULL;
    }
  }
  qsort(indexed, index_count, sizeof *indexed, compare_indexed_members);

  for (i = 0; i < index_count; i++)
    ordered[other_count++] = indexed[i].member;
  for (i = 0; i < count; i++) {
    if (members[i] != NULL)
      ordered[other_count++] = members[i];
  }
  relink_members(object, ordered, other_count);

  free(members);
  return 0;
}

/* Normalizes every object inside value, value included. cJSON's nesting
 * limit bounds the recursion. */
static int normalize_value(cJSON *value) {
  size_t count;
  int r;

  for (cJSON *child = value->child; child != NULL; child = child->next) {
    if (child->type == cJSON_Array || child->type == cJSON_Object) {
      r = normalize_value(child);
      if (r < 0)
        return r;
    }
  }

  /* Types compare whole: cJSON's parser sets no flag bits. */
  if (value->type != cJSON_Object || !members_need_work(value, &count))
    return 0;
  return normalize_members(value, count);
}

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

/* Parses text that scan_record() accepted (or its copy_for_cjson() copy)
 * with cJSON, which checks the structure. */
static int parse_with_cjson(const char *text, size_t len,
                            const record_scan *scan, cJSON **value_out) {
  const char *parse_end = NULL;
  cJSON *value;

  errno = 0;
  value = cJSON_ParseWithLengthOpts(text, len, &parse_end, false);
  if (value == NULL) {
    if (scan->max_depth > CJSON_NESTING_LIMIT)
      return CP_ERR_IPC_UNSUPPORTED_VALUE;
    return errno == ENOMEM ? -ENOMEM : CP_ERR_IPC_INVALID_JSON;
  }

  /* cJSON stops after the first value; JSON.parse allows only
   * whitespace after it. */
  for (const char *p = parse_end; p < text + len; p++) {
    if (!is_json_whitespace((unsigned char)*p)) {
      cJSON_Delete(value);
      return CP_ERR_IPC_INVALID_JSON;
    }
  }

  *value_out = value;
  return 0;
}

/* Parses a record with long numbers or unsupported escapes through a
 * patched copy. */
static int parse_patched(const unsigned char *text, size_t len,
                         const record_scan *scan, cJSON **value_out) {
  char *copy;
  size_t copy_len;
  int r;

  r = copy_for_cjson(text, len, &copy, &copy_len);
  if (r < 0)
    return r;
  r = parse_with_cjson(copy, copy_len, scan, value_out);
  free(copy);

  if (r == 0 && scan->unsupported) {
    cJSON_Delete(*value_out);
    *value_out = NULL;
    return CP_ERR_IPC_UNSUPPORTED_VALUE;
  }
  return r;
}

int cp__json_parse(const char *text, size_t len, cJSON **value_out) {
  const unsigned char *bytes = (const unsigned char *)text;
  record_scan scan = {false, false, 0};
  cJSON *value = NULL;
  int r;

  *value_out = NULL;
  if (text == NULL || len == 0)
    return CP_ERR_IPC_INVALID_JSON;

  r = scan_record(bytes, len, &scan);
  if (r < 0)
    return r;

  if (scan.unsupported || scan.long_numbers)
    r = parse_patched(bytes, len, &scan, &value);
  else
    r = parse_with_cjson(text, len, &scan, &value);
  if (r < 0)
    return r;

  r = normalize_value(value);
  if (r < 0) {
    cJSON_Delete(value);
    return r;
  }
  *value_out = value;
  return 0;
}

/* ------------------------------------------------------------------------
 * Stringifying
 * ------------------------------------------------------------------------ */

static int write_value(const cJSON *value, cp__bytes *out, size_t depth);

static int write_number(double value, cp__bytes *out) {
  char text[CP__JSON_NUMBER_MAX];

  if (!isfinite(value))
    return cp__bytes_append(out, "null", 4);
  return cp__bytes_append(out, text, cp__json_number_text(value, text));
}

/* Writes the escape JSON.stringify uses for a byte below 0x20, '"' or
 * '\\' into escape, and returns its length. */
static size_t escape_byte(unsigned char c, char escape[6]) {
  static const char hex[] = "0123456789abcdef";
  char short_form;

  switch (c) {
  case '"':
    short_form = '"';
    break;
  case '\\':
    short_form = '\\';
    break;
  case '\b':
    short_form = 'b';
    break;
  case '\f':
    short_form = 'f';
    break;
  case '\n':
    short_form = 'n';
    break;
  case '\r':
    short_form = 'r';
    break;
  case '\t':
    short_form = 't';
    break;
  default:
    memcpy(escape, "\\u00", 4);
    escape[4] = hex[c >> 4];
    escape[5] = hex[c & 0xF];
    return 6;
  }

  escape[0] = '\\';
  escape[1] = short_form;
  return 2;
}

/* Byte by byte rather than with skip_plain_string_bytes(): that needs the
 * length first, and strlen costs more than it saves on the short strings
 * of typical messages. */
static int write_string(const char *string, cp__bytes *out) {
  const unsigned char *p = (const unsigned char *)string;
  const unsigned char *run = p;
  int r;

  if (string == NULL)
    return CP_ERR_INVALID_ARG_VALUE;

  r = append_byte(out, '"');
  while (r == 0 && *p != '\0') {
    char escape[6];

    if (is_plain_string_byte(*p)) {
      p++;
      continue;
    }
    if (*p >= 0x80) {
      /* The NUL stops the check before any byte past it is read. */
      size_t n = utf8_sequence_length(p, 4);
      if (n == 0)
        return CP_ERR_INVALID_ARG_VALUE;
      p += n;
      continue;
    }

    r = cp__bytes_append(out, run, (size_t)(p - run));
    if (r == 0)
      r = cp__bytes_append(out, escape, escape_byte(*p, escape));
    run = ++p;
  }

  if (r == 0)
    r = cp__bytes_append(out, run, (size_t)(p - run));
  if (r == 0)
    r = append_byte(out, '"');
  return r;
}

/* Writes a cJSON_Raw item's text parsed and written again, as
 * JSON.stringify would write the value of that text. */
static int write_raw(const char *raw, cp__bytes *out, size_t depth) {
  cJSON *value;
  int r;

  if (raw == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  r = cp__json_parse(raw, strlen(raw), &value);
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return CP_ERR_INVALID_ARG_VALUE;

  r = write_value(value, out, depth);
  cJSON_Delete(value);
  return r;
}

/* Rejects an array or object inside CJSON_NESTING_LIMIT others, which
 * the receiver's cJSON could not read back. A cyclic value stops here too
 * instead of recursing without end. */
static int check_depth(size_t depth) {
  return depth >= CJSON_NESTING_LIMIT ? CP_ERR_INVALID_ARG_VALUE : 0;
}

static int write_array(const cJSON *array, cp__bytes *out, size_t depth) {
  int r = check_depth(depth);

  if (r == 0)
    r = append_byte(out, '[');

  for (const cJSON *item = array->child; r == 0 && item != NULL;
       item = item->next) {
    if (item != array->child)
      r = append_byte(out, ',');
    if (r == 0)
      r = write_value(item, out, depth + 1);
  }
  return r == 0 ? append_byte(out, ']') : r;
}

static int write_object(const cJSON *object, cp__bytes *out, size_t depth) {
  int r = check_depth(depth);

  if (r == 0)
    r = append_byte(out, '{');

  for (const cJSON *item = object->child; r == 0 && item != NULL;
       item = item->next) {
    if (item != object->child)
      r = append_byte(out, ',');
    if (r == 0)
      r = write_string(item->string, out);
    if (r == 0)
      r = append_byte(out, ':');
    if (r == 0)
      r = write_value(item, out, depth + 1);
  }
  return r == 0 ? append_byte(out, '}') : r;
}

/* depth counts the arrays and objects around value. */
static int write_value(const cJSON *value, cp__bytes *out, size_t depth) {
  switch (value->type & 0xFF) {
  case cJSON_NULL:
    return cp__bytes_append(out, "null", 4);
  case cJSON_False:
    return cp__bytes_append(out, "false", 5);
  case cJSON_True:
    return cp__bytes_append(out, "true", 4);
  case cJSON_Number:
    return write_number(value->valuedouble, out);
  case cJSON_String:
    return write_string(value->valuestring, out);
  case cJSON_Raw:
    return write_raw(value->valuestring, out, depth);
  case cJSON_Array:
    return write_array(value, out, depth);
  case cJSON_Object:
    return write_object(value, out, depth);
  default:
    return CP_ERR_INVALID_ARG_VALUE;
  }
}

int cp__json_stringify(const cJSON *value, cp__bytes *out) {
  size_t start = out->len;
  int r;

  if (value == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  r = write_value(value, out, 0);
  if (r < 0)
    out->len = start;
  return r;
}

/* ------------------------------------------------------------------------
 * Internal messages
 * ------------------------------------------------------------------------ */

bool cp__json_is_internal(const cJSON *value) {
  const cJSON *cmd;

  if (!cJSON_IsObject(value))
    return false;
  cmd = cJSON_GetObjectItemCaseSensitive(value, "cmd");
  if (!cJSON_IsString(cmd) || cmd->valuestring == NULL)
    return false;
  return strncmp(cmd->valuestring, "NODE_", 5) == 0 &&
         cmd->valuestring[5] != '\0';
}
