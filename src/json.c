/*
 * JSON text as Node's JSON.stringify writes it, for cJSON values.
 *
 * The printer is our own because JSON.stringify's number format
 * (Number.prototype.toString) is not what cJSON prints. The reader is in
 * json-parse.c.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"
#include "json-text.h"

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

/*
 * Writes string quoted and escaped. Runs of plain bytes are scanned and
 * copied in one pass by copy_plain_string_bytes(). Room for the string as
 * it is and both quotes is reserved first, and each escape reserves the
 * bytes it adds, so room for the rest and the closing quote is always
 * there.
 */
static int write_string(const char *string, cp__bytes *out) {
  const unsigned char *p = (const unsigned char *)string;
  const unsigned char *end;
  int r;

  if (string == NULL)
    return CP_ERR_INVALID_ARG_VALUE;
  end = p + strlen(string);
  r = cp__bytes_reserve(out, (size_t)(end - p) + 2);
  if (r < 0)
    return r;

  out->data[out->len++] = '"';
  while (p < end) {
    const unsigned char *special =
        copy_plain_string_bytes(p, end, out->data + out->len);
    size_t n = (size_t)(special - p);
    char escape[6];

    out->len += n;
    p = special;
    if (p == end)
      break;

    if (*p >= 0x80) {
      n = utf8_sequence_length(p, (size_t)(end - p));
      if (n == 0)
        return CP_ERR_INVALID_ARG_VALUE;
      memcpy(out->data + out->len, p, n);
      out->len += n;
      p += n;
      continue;
    }

    n = escape_byte(*p, escape);
    r = cp__bytes_reserve(out, (size_t)(end - p) + n);
    if (r < 0)
      return r;
    memcpy(out->data + out->len, escape, n);
    out->len += n;
    p++;
  }
  out->data[out->len++] = '"';
  return 0;
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

/* Every message goes through here, so the key is looked up by hand: the
 * first byte rules out most keys without a call. */
static const cJSON *find_cmd_member(const cJSON *object) {
  for (const cJSON *member = object->child; member != NULL;
       member = member->next) {
    if (member->string != NULL && member->string[0] == 'c' &&
        strcmp(member->string, "cmd") == 0)
      return member;
  }
  return NULL;
}

bool cp__json_is_internal(const cJSON *value) {
  const cJSON *cmd;

  if (!cJSON_IsObject(value))
    return false;
  cmd = find_cmd_member(value);
  if (!cJSON_IsString(cmd) || cmd->valuestring == NULL)
    return false;
  return strncmp(cmd->valuestring, "NODE_", 5) == 0 &&
         cmd->valuestring[5] != '\0';
}
