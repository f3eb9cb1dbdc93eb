/*
 * JSON.parse for one record, in one pass that checks the text strictly and
 * builds the cJSON values at the same time.
 *
 * cJSON's own parser is laxer than JSON.parse: it takes "01", raw control
 * characters and invalid UTF-8. It also has limits of its own, such as
 * 63-character numbers in 1.7.15 as released and \u0000 read as the end
 * of a string. So it needed a separate strict pass first, and reading the
 * record once here takes the receiving side from about 4,000 to 2,200
 * instructions per small message (docs/json-library.md). The values are
 * ordinary cJSON items, allocated with cJSON_malloc() as cJSON's parser
 * allocates them, so cJSON_Delete() frees them and every cJSON function
 * works on them.
 *
 * A rejected record is scanned again by cp__json_classify_error() to
 * name the error. Rejections are rare, and the scan gives each record the
 * same error code whatever position the parser stopped at.
 */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"
#include "json-text.h"

typedef struct parser {
  const unsigned char *p; /* the next byte to read */
  const unsigned char *end;
  unsigned depth;   /* arrays and objects open around p */
  bool unsupported; /* an escape of U+0000 or a lone surrogate was read */
  int error;        /* 0, -ENOMEM, or CP_ERR_IPC_INVALID_JSON */
} parser;

static cJSON *parse_value(parser *ps);

/* Stops the parse. The first error stays, so -ENOMEM is not hidden by the
 * failures it causes further up. */
static void *fail(parser *ps, int error) {
  if (ps->error == 0)
    ps->error = error;
  return NULL;
}

static void *allocate(parser *ps, size_t size) {
  void *memory = cJSON_malloc(size);

  return memory != NULL ? memory : fail(ps, -ENOMEM);
}

static cJSON *new_item(parser *ps, int type) {
  cJSON *item = allocate(ps, sizeof(*item));

  if (item != NULL) {
    memset(item, 0, sizeof(*item));
    item->type = type;
  }
  return item;
}

/* Compact text, as JSON.stringify writes it, has no whitespace, so the
 * first test usually ends the call. */
static inline void skip_whitespace(parser *ps) {
  if (ps->p<ps->end && * ps->p> ' ')
    return;
  while (ps->p < ps->end && is_json_whitespace(*ps->p))
    ps->p++;
}

/* Whether the next byte, after whitespace, is c; if so, it is consumed. */
static bool accept_byte(parser *ps, unsigned char c) {
  skip_whitespace(ps);
  if (ps->p == ps->end || *ps->p != c)
    return false;
  ps->p++;
  return true;
}

/* ------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------ */

/* Writes code_point (below 0x110000, not a surrogate) as UTF-8 and
 * returns the length. */
static size_t encode_utf8(long code_point, char *out) {
  if (code_point < 0x80) {
    out[0] = (char)code_point;
    return 1;
  }
  if (code_point < 0x800) {
    out[0] = (char)(0xC0 | (code_point >> 6));
    out[1] = (char)(0x80 | (code_point & 0x3F));
    return 2;
  }
  if (code_point < 0x10000) {
    out[0] = (char)(0xE0 | (code_point >> 12));
    out[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    out[2] = (char)(0x80 | (code_point & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (code_point >> 18));
  out[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
  out[3] = (char)(0x80 | (code_point & 0x3F));
  return 4;
}

/* Decodes the \u escape at p, which cp__json_scan_string() accepted, into
 * out. An escape of U+0000 or a lone surrogate writes nothing: the record
 * is rejected as unsupported once it is read. Returns the escape's length
 * in the text. */
static size_t decode_unicode_escape(const unsigned char *p,
                                    const unsigned char *end, char **out) {
  long unit = read_hex4(p + 2);

  if (is_high_surrogate(unit) && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
    long low = read_hex4(p + 8);

    if (is_low_surrogate(low)) {
      *out +=
          encode_utf8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), *out);
      return 12;
    }
  }
  if (unit != 0 && !is_high_surrogate(unit) && !is_low_surrogate(unit))
    *out += encode_utf8(unit, *out);
  return 6;
}

static char short_escape_value(unsigned char c) {
  switch (c) {
  case 'b':
    return '\b';
  case 'f':
    return '\f';
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  default: /* '"', '\\' and '/' stand for themselves */
    return (char)c;
  }
}

/* Decodes a string body that cp__json_scan_string() accepted, [p, end)
 * without the quotes, into out. No escape decodes to more bytes than it
 * has, so out needs at most end - p bytes. Returns the length. */
static size_t decode_string(const unsigned char *p, const unsigned char *end,
                            char *out) {
  char *o = out;

  while (p < end) {
    const unsigned char *escape = memchr(p, '\\', (size_t)(end - p));
    size_t run = (size_t)((escape != NULL ? escape : end) - p);

    memcpy(o, p, run);
    o += run;
    p += run;
    if (escape == NULL)
      break;

    if (p[1] == 'u') {
      p += decode_unicode_escape(p, end, &o);
    } else {
      *o++ = short_escape_value(p[1]);
      p += 2;
    }
  }
  return (size_t)(o - out);
}

/* Reads the string whose opening quote was just consumed and returns it as
 * a NUL-terminated copy from cJSON_malloc(), or NULL. Strings of plain
 * printable ASCII, the common case, are found and copied in one step. */
static char *parse_string_text(parser *ps) {
  const unsigned char *start = ps->p;
  const unsigned char *closing_quote = skip_plain_string_bytes(start, ps->end);
  bool plain = closing_quote < ps->end && *closing_quote == '"';
  char *text;
  size_t len;
  int r;

  if (!plain) {
    closing_quote = start;
    r = cp__json_scan_string(&closing_quote, ps->end, &ps->unsupported);
    if (r < 0)
      return fail(ps, r);
    closing_quote--; /* back onto the closing quote */
  }

  text = allocate(ps, (size_t)(closing_quote - start) + 1);
  if (text == NULL)
    return NULL;
  if (plain) {
    len = (size_t)(closing_quote - start);
    memcpy(text, start, len);
  } else {
    len = decode_string(start, closing_quote, text);
  }
  text[len] = '\0';
  ps->p = closing_quote + 1;
  return text;
}

/* ------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------ */

/* The digits of a number: the value is mantissa * 10^exponent. */
typedef struct decimal_number {
  const unsigned char *start; /* the text, sign included */
  const unsigned char *end;
  uint64_t mantissa;  /* the first 19 significant digits */
  int digits;         /* significant digits, all of them */
  long long exponent; /* of mantissa; past +-10^15 only its sign matters */
  long long written_exponent; /* the one after 'e', capped the same way */
  bool negative;
} decimal_number;

/* Every power of ten up to 10^22 is a double exactly. */
static const double exact_powers_of_ten[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Adds one digit of the integer or fraction part. Leading zeros are not
 * significant. */
static void add_digit(decimal_number *number, unsigned char c) {
  if (number->digits == 0 && c == '0')
    return;
  if (number->digits < 19)
    number->mantissa = number->mantissa * 10 + (uint64_t)(c - '0');
  else
    number->exponent++; /* a dropped digit: the rest is read by strtod */
  number->digits++;
}

/* Reads an integer part that does not start with 0: each digit is
 * significant. */
static void read_integer_digits(parser *ps, decimal_number *number) {
  const unsigned char *p = ps->p;
  uint64_t mantissa = 0;
  int digits = 0;

  for (; p < ps->end && is_digit(*p) && digits < 19; p++, digits++)
    mantissa = mantissa * 10 + (uint64_t)(*p - '0');
  number->mantissa = mantissa;
  number->digits = digits;
  ps->p = p;
}

static bool read_digits(parser *ps, decimal_number *number, bool fraction) {
  const unsigned char *p = ps->p;

  if (p == ps->end || !is_digit(*p))
    return false;
  for (; p < ps->end && is_digit(*p); p++) {
    add_digit(number, *p);
    if (fraction)
      number->exponent--;
  }
  ps->p = p;
  return true;
}

static bool read_exponent(parser *ps, decimal_number *number) {
  const unsigned char *p = ps->p;
  bool negative = false;
  long long exponent = 0;

  if (p < ps->end && (*p == '+' || *p == '-'))
    negative = *p++ == '-';
  if (p == ps->end || !is_digit(*p))
    return false;
  /* Past 10^15 the value is 0 or infinity for any record that fits in
   * memory, so the exponent stops growing there. */
  for (; p < ps->end && is_digit(*p); p++) {
    if (exponent < 1000000000000000LL)
      exponent = exponent * 10 + (*p - '0');
  }
  number->written_exponent = negative ? -exponent : exponent;
  number->exponent += number->written_exponent;
  ps->p = p;
  return true;
}

/*
 * Reads a number as the nearest double, as JSON.parse does, through
 * strtod, which glibc rounds correctly at any length. The digits go
 * without their decimal point and the exponent is adjusted, so the
 * locale's decimal point cannot interfere. Returns 0 or -ENOMEM.
 */
static int read_with_strtod(const decimal_number *number, double *value) {
  char small[64];
  size_t size = (size_t)(number->end - number->start) + 32;
  char *text = size <= sizeof small ? small : malloc(size);
  const unsigned char *p = number->start;
  long long fraction_digits = 0;
  size_t used = 0;

  if (text == NULL)
    return -ENOMEM;

  if (*p == '-')
    text[used++] = (char)*p++;
  for (; p < number->end && is_digit(*p); p++)
    text[used++] = (char)*p;
  if (p < number->end && *p == '.') {
    for (p++; p < number->end && is_digit(*p); p++) {
      text[used++] = (char)*p;
      fraction_digits++;
    }
  }

  text[used++] = 'e';
  used += cp__json_int64_text(number->written_exponent - fraction_digits,
                              text + used);
  text[used] = '\0';

  *value = strtod(text, NULL);
  if (text != small)
    free(text);
  return 0;
}

/*
 * The value of a number with at most 15 significant digits and a power of
 * ten up to 10^22 either way, found with one multiplication or division
 * of two exact doubles, which IEEE 754 rounds correctly. Returns false
 * for other numbers.
 */
static bool exact_value(const decimal_number *number, double *value) {
  double mantissa = (double)number->mantissa;

  if (number->digits > 15)
    return false;
  if (number->mantissa == 0) {
    *value = 0;
    return true;
  }
  if (number->exponent >= 0 && number->exponent <= 22) {
    *value = mantissa * exact_powers_of_ten[number->exponent];
    return true;
  }
  if (number->exponent < 0 && number->exponent >= -22) {
    *value = mantissa / exact_powers_of_ten[-number->exponent];
    return true;
  }
  return false;
}

/* cJSON's valueint: the value saturated to the range of int. */
static int saturate_to_int(double value) {
  if (value >= INT_MAX)
    return INT_MAX;
  if (value <= (double)INT_MIN)
    return INT_MIN;
  return (int)value;
}

/* Reads a number with JSON's grammar,
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static cJSON *parse_number(parser *ps) {
  decimal_number number = {.start = ps->p};
  double value;
  cJSON *item;

  if (*ps->p == '-') {
    number.negative = true;
    ps->p++;
  }
  if (ps->p == ps->end || !is_digit(*ps->p))
    return fail(ps, CP_ERR_IPC_INVALID_JSON);
  if (*ps->p == '0') {
    ps->p++;
  } else {
    read_integer_digits(ps, &number);
    read_digits(ps, &number, false); /* digits past the 19th, if any */
  }

  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (!read_digits(ps, &number, true))
      return fail(ps, CP_ERR_IPC_INVALID_JSON);
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (!read_exponent(ps, &number))
      return fail(ps, CP_ERR_IPC_INVALID_JSON);
  }
  number.end = ps->p;

  if (!exact_value(&number, &value)) {
    if (read_with_strtod(&number, &value) < 0)
      return fail(ps, -ENOMEM);
  } else if (number.negative) {
    value = -value; /* -0 stays -0, as in JSON.parse */
  }

  item = new_item(ps, cJSON_Number);
  if (item != NULL) {
    item->valuedouble = value;
    item->valueint = saturate_to_int(value);
  }
  return item;
}

/* ------------------------------------------------------------------------
 * Literals, arrays, objects
 * ------------------------------------------------------------------------ */

static cJSON *parse_literal(parser *ps, const char *word, int type) {
  size_t len = strlen(word);

  if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0)
    return fail(ps, CP_ERR_IPC_INVALID_JSON);
  ps->p += len;
  return new_item(ps, type);
}

/* Links item after last as a child of parent. cJSON's lists keep the last
 * child in the first child's prev, which is set once the list is done. */
static void append_child(cJSON *parent, cJSON **last, cJSON *item) {
  if (*last == NULL) {
    parent->child = item;
  } else {
    (*last)->next = item;
    item->prev = *last;
  }
  *last = item;
}

static void finish_children(cJSON *parent, cJSON *last) {
  if (parent->child != NULL)
    parent->child->prev = last;
}

/* Enters an array or object at ps->p, as deep as cJSON's parser allows:
 * CJSON_NESTING_LIMIT levels. */
static cJSON *open_container(parser *ps, int type) {
  if (ps->depth >= CJSON_NESTING_LIMIT)
    return fail(ps, CP_ERR_IPC_INVALID_JSON);
  ps->depth++;
  ps->p++;
  return new_item(ps, type);
}

/* Frees a container that failed part way and returns NULL. */
static cJSON *drop(cJSON *container, cJSON *last) {
  finish_children(container, last);
  cJSON_Delete(container);
  return NULL;
}

static cJSON *parse_array(parser *ps) {
  cJSON *array = open_container(ps, cJSON_Array);
  cJSON *last = NULL;

  if (array == NULL)
    return NULL;
  if (!accept_byte(ps, ']')) {
    do {
      cJSON *item = parse_value(ps);

      if (item == NULL)
        return drop(array, last);
      append_child(array, &last, item);
    } while (accept_byte(ps, ','));

    if (!accept_byte(ps, ']')) {
      fail(ps, CP_ERR_IPC_INVALID_JSON);
      return drop(array, last);
    }
  }
  finish_children(array, last);
  ps->depth--;
  return array;
}

/* Reads one "key": value member. */
static cJSON *parse_member(parser *ps) {
  char *key;
  cJSON *item;

  if (!accept_byte(ps, '"'))
    return fail(ps, CP_ERR_IPC_INVALID_JSON);
  key = parse_string_text(ps);
  if (key == NULL)
    return NULL;

  item = accept_byte(ps, ':') ? parse_value(ps)
                              : fail(ps, CP_ERR_IPC_INVALID_JSON);
  if (item == NULL) {
    cJSON_free(key);
    return NULL;
  }
  item->string = key;
  return item;
}

static cJSON *parse_object(parser *ps) {
  cJSON *object = open_container(ps, cJSON_Object);
  cJSON *last = NULL;
  int r;

  if (object == NULL)
    return NULL;
  if (!accept_byte(ps, '}')) {
    do {
      cJSON *item = parse_member(ps);

      if (item == NULL)
        return drop(object, last);
      append_child(object, &last, item);
    } while (accept_byte(ps, ','));

    if (!accept_byte(ps, '}')) {
      fail(ps, CP_ERR_IPC_INVALID_JSON);
      return drop(object, last);
    }
  }
  finish_children(object, last);
  ps->depth--;

  r = cp__json_normalize_object(object);
  if (r < 0) {
    cJSON_Delete(object);
    return fail(ps, r);
  }
  return object;
}

static cJSON *parse_string(parser *ps) {
  char *text;
  cJSON *item;

  ps->p++;
  text = parse_string_text(ps);
  if (text == NULL)
    return NULL;
  item = new_item(ps, cJSON_String);
  if (item == NULL) {
    cJSON_free(text);
    return NULL;
  }
  item->valuestring = text;
  return item;
}

/* Reads the value that starts after any whitespace at ps->p. */
static cJSON *parse_value(parser *ps) {
  skip_whitespace(ps);
  if (ps->p == ps->end)
    return fail(ps, CP_ERR_IPC_INVALID_JSON);

  switch (*ps->p) {
  case '{':
    return parse_object(ps);
  case '[':
    return parse_array(ps);
  case '"':
    return parse_string(ps);
  case 't':
    return parse_literal(ps, "true", cJSON_True);
  case 'f':
    return parse_literal(ps, "false", cJSON_False);
  case 'n':
    return parse_literal(ps, "null", cJSON_NULL);
  default:
    if (*ps->p == '-' || is_digit(*ps->p))
      return parse_number(ps);
    return fail(ps, CP_ERR_IPC_INVALID_JSON);
  }
}

int cp__json_parse(const char *text, size_t len, cJSON **value_out) {
  const unsigned char *bytes = (const unsigned char *)text;
  parser ps = {.p = bytes, .end = bytes + len};
  cJSON *value;

  *value_out = NULL;
  if (text == NULL || len == 0)
    return CP_ERR_IPC_INVALID_JSON;

  value = parse_value(&ps);
  if (value != NULL) {
    skip_whitespace(&ps);
    if (ps.p != ps.end) {
      cJSON_Delete(value);
      value = fail(&ps, CP_ERR_IPC_INVALID_JSON);
    }
  }
  if (value == NULL) {
    return ps.error == -ENOMEM ? -ENOMEM : cp__json_classify_error(bytes, len);
  }

  if (ps.unsupported) {
    cJSON_Delete(value);
    return CP_ERR_IPC_UNSUPPORTED_VALUE;
  }
  *value_out = value;
  return 0;
}
