/*
 * The strict checks of JSON text that do not build values: the lexical
 * scan that tells why the parser rejected a record, and the validator of
 * text that a program sends as it is.
 */
#include <errno.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "childproc.h"
#include "json-text.h"
#include "json.h"

/* What scan_record() found in a record it accepted. */
typedef struct record_scan {
  bool unsupported; /* a \u0000 escape or a lone surrogate escape */
  size_t max_depth; /* of brackets, whether or not they match */
} record_scan;

int cp__json_scan_string(const unsigned char **pos, const unsigned char *end,
                         bool *unsupported) {
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
        n = measure_unicode_escape(p, (size_t)(end - p), unsupported);
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
 * it. strtod also takes "01", "1.", "-.5" and "1.e5", but JSON.parse
 * rejects them. Returns 0 or CP_ERR_IPC_INVALID_JSON.
 */
static int scan_number(const unsigned char **pos, const unsigned char *end) {
  const unsigned char *p = *pos;

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

  *pos = p;
  return 0;
}

/*
 * Checks a whole record in one pass: strict UTF-8 everywhere, strings and
 * numbers as JSON.parse reads them, and no byte outside them that JSON
 * does not allow there (control characters, bytes of 0x80 and above). The
 * structure (brackets, commas, literals) is not checked. Returns 0,
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
      r = cp__json_scan_string(&p, end, &scan->unsupported);
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
      r = scan_number(&p, end);
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

int cp__json_classify_error(const unsigned char *text, size_t len) {
  record_scan scan = {false, 0};
  int r = scan_record(text, len, &scan);

  if (r < 0)
    return r;
  if (scan.max_depth > CJSON_NESTING_LIMIT)
    return CP_ERR_IPC_UNSUPPORTED_VALUE;
  return CP_ERR_IPC_INVALID_JSON;
}

static const unsigned char *skip_whitespace(const unsigned char *p,
                                            const unsigned char *end) {
  while (p < end && is_json_whitespace(*p))
    p++;
  return p;
}

/* Checks true, false or null at *pos and advances past it. */
static int check_literal(const unsigned char **pos, const unsigned char *end) {
  static const char *const literals[] = {"true", "false", "null"};
  size_t avail = (size_t)(end - *pos);

  for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
    size_t len = strlen(literals[i]);

    if (avail >= len && memcmp(*pos, literals[i], len) == 0) {
      *pos += len;
      return 0;
    }
  }
  return CP_ERR_IPC_INVALID_JSON;
}

/* Checks a string, a number or a literal at *pos. */
static int check_scalar(const unsigned char **pos, const unsigned char *end) {
  bool unsupported = false;

  if (**pos == '"') {
    (*pos)++;
    return cp__json_scan_string(pos, end, &unsupported);
  }
  if (**pos == '-' || is_digit(**pos))
    return scan_number(pos, end);
  return check_literal(pos, end);
}

/* Checks an object key and the colon after it, at *pos. */
static int check_key(const unsigned char **pos, const unsigned char *end) {
  bool unsupported = false;
  const unsigned char *p = skip_whitespace(*pos, end);
  int r;

  if (p == end || *p != '"')
    return CP_ERR_IPC_INVALID_JSON;
  p++;
  r = cp__json_scan_string(&p, end, &unsupported);
  if (r < 0)
    return r;
  p = skip_whitespace(p, end);
  if (p == end || *p != ':')
    return CP_ERR_IPC_INVALID_JSON;
  *pos = p + 1;
  return 0;
}

/*
 * Checks the token after a value: a comma (and, in an object, the next
 * key), or the brackets that close containers. open holds the open
 * containers' opening brackets. Sets *done at the end of the outermost
 * value.
 */
static int check_after_value(const unsigned char **pos,
                             const unsigned char *end, cp__bytes *open,
                             bool *done) {
  const unsigned char *p = *pos;

  for (;;) {
    char top;

    p = skip_whitespace(p, end);
    if (open->len == 0) {
      *done = true;
      return p == end ? 0 : CP_ERR_IPC_INVALID_JSON;
    }
    if (p == end)
      return CP_ERR_IPC_INVALID_JSON;

    top = open->data[open->len - 1];
    if (*p == ',') {
      *pos = p + 1;
      return top == '{' ? check_key(pos, end) : 0;
    }
    if (*p != (top == '{' ? '}' : ']'))
      return CP_ERR_IPC_INVALID_JSON;
    open->len--;
    p++;
  }
}

/*
 * Checks that text is one JSON value that JSON.parse accepts. Containers
 * are tracked in open rather than by recursion, so any depth passes.
 */
static int validate_tokens(const unsigned char *p, const unsigned char *end,
                           cp__bytes *open) {
  bool done = false;
  int r = 0;

  while (r == 0 && !done) {
    p = skip_whitespace(p, end);
    if (p == end)
      return CP_ERR_IPC_INVALID_JSON;

    if (*p == '[' || *p == '{') {
      bool is_object = *p == '{';

      r = cp__bytes_append(open, p, 1);
      if (r < 0)
        return r;
      p = skip_whitespace(p + 1, end);
      if (p == end || *p != (is_object ? '}' : ']')) {
        if (is_object)
          r = check_key(&p, end);
        continue;
      }
      open->len--;
      p++;
    } else {
      r = check_scalar(&p, end);
      if (r < 0)
        return r;
    }
    r = check_after_value(&p, end, open, &done);
  }
  return r;
}

int cp__json_validate(const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  cp__bytes open = {0};
  int r;

  if (text == NULL)
    return CP_ERR_IPC_INVALID_JSON;
  r = validate_tokens(bytes, bytes + len, &open);
  cp__bytes_free(&open);
  if (r == CP_ERR_IPC_INVALID_JSON && !utf8_valid(bytes, bytes + len))
    r = CP_ERR_IPC_INVALID_UTF8;
  return r;
}
