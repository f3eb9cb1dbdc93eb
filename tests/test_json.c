/*
 * Tests for the JSON layer of the IPC channel (src/json.c): records parsed
 * as Node's JSON.parse reads them, values written as JSON.stringify writes
 * them.
 *
 * Expected texts written out below are Node v20.20.2's output. The case
 * json_matches_node_corpus also runs tests/json_corpus.js with the node on
 * PATH and compares the C layer with its output for some 29,000 numbers,
 * strings and texts.
 */

/* childproc.h includes uv.h, which needs POSIX types that strict C17
 * hides; popen() needs POSIX too. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"
#include "json.h"

/* A byte string literal that may contain NUL bytes. */
#define B(literal) literal, sizeof(literal) - 1

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void format_hex(const char *bytes, size_t len, char *out,
                       size_t out_size) {
  size_t used = 0;
  out[0] = '\0';

  for (size_t i = 0; i < len && used + 4 < out_size; i++)
    used += (size_t)snprintf(out + used, out_size - used, "%02x ",
                             (unsigned char)bytes[i]);
}

/* Stringifies value and returns the text, NUL-terminated, in out. */
static const char *stringify(const cJSON *value, cp__bytes *out) {
  out->len = 0;
  assert_int_equal(cp__json_stringify(value, out), 0);
  assert_int_equal(cp__bytes_reserve(out, 1), 0);
  out->data[out->len] = '\0';
  return out->data;
}

static void expect_stringify(const cJSON *value, const char *expected) {
  cp__bytes out = {NULL, 0, 0};
  assert_string_equal(stringify(value, &out), expected);
  cp__bytes_free(&out);
}

/* Parses text (len bytes) and expects the error code. */
static void expect_parse_error(const char *text, size_t len, int expected) {
  cJSON *value = (cJSON *)&value; /* must be reset to NULL */
  int r = cp__json_parse(text, len, &value);

  if (r != expected) {
    char hex[512];
    format_hex(text, len, hex, sizeof hex);
    fail_msg("parsing [%s]: got %d (%s), expected %d (%s)", hex, r,
             cp_strerror(r), expected, cp_strerror(expected));
  }
  assert_null(value);
}

/* Parses text and expects JSON.stringify(JSON.parse(text)) to be
 * expected. */
static void expect_round_trip(const char *text, size_t len,
                              const char *expected) {
  cJSON *value = NULL;
  int r = cp__json_parse(text, len, &value);

  if (r != 0)
    fail_msg("parsing \"%.*s\": got %d (%s)", (int)(len > 200 ? 200 : len),
             text, r, cp_strerror(r));
  expect_stringify(value, expected);
  cJSON_Delete(value);
}

static cJSON *parse_ok(const char *text) {
  cJSON *value = NULL;
  assert_int_equal(cp__json_parse(text, strlen(text), &value), 0);
  assert_non_null(value);
  return value;
}

static double parse_number(const char *text) {
  cJSON *value = parse_ok(text);
  double number;

  assert_true(cJSON_IsNumber(value));
  number = value->valuedouble;
  cJSON_Delete(value);
  return number;
}

/* Nested arrays, depth deep, as text. The caller frees it. */
static char *nested_arrays(size_t depth) {
  char *text = malloc(2 * depth + 1);
  assert_non_null(text);
  memset(text, '[', depth);
  memset(text + depth, ']', depth);
  text[2 * depth] = '\0';
  return text;
}

/* ------------------------------------------------------------------------
 * Stringify
 * ------------------------------------------------------------------------ */

/* Node v20.20.2's JSON.stringify of each number; the C literal is the same
 * double written in hex, the comment the JavaScript that made it. */
static const struct {
  double value;
  const char *expected;
} recorded_numbers[] = {
    {0.0, "0"},                                           /* 0 */
    {-0.0, "0"},                                          /* -0 */
    {0x1.0000000000000p0, "1"},                           /* 1 */
    {-0x1.0000000000000p0, "-1"},                         /* -1 */
    {0x1.999999999999ap-4, "0.1"},                        /* 0.1 */
    {0x1.3333333333334p-2, "0.30000000000000004"},        /* 0.1 + 0.2 */
    {0x1.b1ae4d6e2ef50p69, "1e+21"},                      /* 1e21 */
    {0x1.ad7f29abcaf48p-24, "1e-7"},                      /* 1e-7 */
    {0x1.ac53a7e04bcdap66, "123456789012345680000"},      /* that number */
    {0x0.0000000000001p-1022, "5e-324"},                  /* 5e-324 */
    {0x1.fffffffffffffp1023, "1.7976931348623157e+308"},  /* max double */
    {0x1.0000000000000p53, "9007199254740992"},           /* 2 ** 53 */
    {0x1.0000000000001p53, "9007199254740994"},           /* 2 ** 53 + 2 */
    {0x1.5555555555555p-2, "0.3333333333333333"},         /* 1 / 3 */
    {0x1.9000000000000p6, "100"},                         /* 100 */
    {0x1.5af1d78b58c40p66, "100000000000000000000"},      /* 1e20 */
    {0x1.edd2f1a9fbe77p6, "123.456"},                     /* 123.456 */
    {-0x1.49da7e361ce4cp-33, "-1.5e-10"},                 /* -1.5e-10 */
    {0x1.0c6f7a0b5ed8dp-20, "0.000001"},                  /* 1e-6 */
    {0x1.421f5f40d8376p-23, "1.5e-7"},                    /* 1.5e-7 */
    {-0x1.fffffffffffffp52, "-9007199254740991"},         /* -(2 ** 53) + 1 */
    {0x1.0000000000000p-1022, "2.2250738585072014e-308"}, /* 2 ** -1022 */
    {INFINITY, "null"},                                   /* 1e300 * 1e10 */
    {-INFINITY, "null"},                                  /* -Infinity */
    {NAN, "null"},                                        /* NaN */
    {0x1.5555555555555p-1, "0.6666666666666666"},         /* 2 / 3 */
    {0x1.0000000080000p32, "4294967296.5"},               /* 4294967296.5 */
    {0x1.0000000000000p70, "1.1805916207174113e+21"},     /* 2 ** 70 */
};

static void json_stringify_numbers_as_node(void **state) {
  (void)state;

  for (size_t i = 0; i < sizeof recorded_numbers / sizeof *recorded_numbers;
       i++) {
    cJSON item = {0};
    item.type = cJSON_Number;
    item.valuedouble = recorded_numbers[i].value;
    expect_stringify(&item, recorded_numbers[i].expected);
  }
}

/* Node v20.20.2's JSON.stringify of each string. */
static const struct {
  const char *value;
  const char *expected;
} recorded_strings[] = {
    {"\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020\021"
     "\022\023\024\025\026\027\030\031\032\033\034\035\036\037",
     "\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f"
     "\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016"
     "\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""},
    {"\"\\\"\\\\", "\"\\\"\\\\\\\"\\\\\\\\\""}, /* quotes and backslashes */
    {"\342\200\250\342\200\251",
     "\"\342\200\250\342\200\251\""}, /* U+2028, U+2029 stay raw */
    {"\360\237\230\200\364\217\277\277",
     "\"\360\237\230\200\364\217\277\277\""}, /* 4-byte characters */
    {"\177\302\200", "\"\177\302\200\""},     /* DEL and U+0080 stay raw */
    {"/", "\"/\""},
    {"a\011b\012\"c\"\303\251", "\"a\\tb\\n\\\"c\\\"\303\251\""},
    {"", "\"\""},
};

static void json_stringify_strings_as_node(void **state) {
  (void)state;

  for (size_t i = 0; i < sizeof recorded_strings / sizeof *recorded_strings;
       i++) {
    cJSON item = {0};
    item.type = cJSON_String;
    item.valuestring = (char *)recorded_strings[i].value;
    expect_stringify(&item, recorded_strings[i].expected);
  }
}

static void json_stringify_structures(void **state) {
  cJSON *root = cJSON_CreateObject();
  cJSON *b = cJSON_AddArrayToObject(root, "b");
  cJSON *inner = cJSON_CreateObject();
  cJSON *empty;
  (void)state;

  /* Keys go out in list order, array indices included: only parsing
   * reorders them. */
  cJSON_AddItemToArray(b, cJSON_CreateNumber(1));
  cJSON_AddTrueToObject(inner, "1");
  cJSON_AddNullToObject(inner, "0");
  cJSON_AddItemToArray(b, inner);
  cJSON_AddStringToObject(root, "a", "x");
  empty = cJSON_AddArrayToObject(root, "");
  cJSON_AddItemToArray(empty, cJSON_CreateArray());
  cJSON_AddItemToArray(empty, cJSON_CreateObject());
  cJSON_AddFalseToObject(root, "f");

  expect_stringify(root, "{\"b\":[1,{\"1\":true,\"0\":null}],\"a\":\"x\","
                         "\"\":[[],{}],\"f\":false}");
  cJSON_Delete(root);
}

static void json_stringify_duplicate_keys_kept(void **state) {
  cJSON *root = cJSON_CreateObject();
  (void)state;

  cJSON_AddNumberToObject(root, "a", 1);
  cJSON_AddNumberToObject(root, "a", 2);
  expect_stringify(root, "{\"a\":1,\"a\":2}");
  cJSON_Delete(root);
}

static void json_stringify_raw_compacted(void **state) {
  cJSON *root = cJSON_CreateArray();
  (void)state;

  cJSON_AddItemToArray(root,
                       cJSON_CreateRaw(" { \"b\" : 1.50 ,\t\"1\": [ ] } "));
  cJSON_AddItemToArray(root, cJSON_CreateRaw("1e21"));
  expect_stringify(root, "[{\"1\":[],\"b\":1.5},1e+21]");
  cJSON_Delete(root);
}

/* Each invalid value fails, and out keeps what it held before. */
static void expect_stringify_rejected(const cJSON *value) {
  cp__bytes out = {NULL, 0, 0};

  assert_int_equal(cp__bytes_append(&out, "kept", 4), 0);
  assert_int_equal(cp__json_stringify(value, &out), CP_ERR_INVALID_ARG_VALUE);
  assert_int_equal(out.len, 4);
  assert_memory_equal(out.data, "kept", 4);
  cp__bytes_free(&out);
}

static void json_stringify_rejects_invalid_values(void **state) {
  static const char *const invalid_strings[] = {
      "\xc0\x80",         /* overlong U+0000 */
      "\xe0\x80\xaf",     /* overlong '/' */
      "\xed\xa0\x80",     /* U+D800 encoded in UTF-8 */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
      "\xf5\x80\x80\x80", /* F5 starts no sequence */
      "a\x80",            /* stray continuation byte */
      "\xe2\x82",         /* truncated */
      "\xff",
  };
  cJSON item = {0};
  cJSON *root;
  (void)state;

  for (size_t i = 0; i < sizeof invalid_strings / sizeof *invalid_strings;
       i++) {
    item.type = cJSON_String;
    item.valuestring = (char *)invalid_strings[i];
    expect_stringify_rejected(&item);
  }

  item.valuestring = NULL;
  expect_stringify_rejected(&item);
  item.type = cJSON_Invalid;
  expect_stringify_rejected(&item);
  item.type = cJSON_Raw;
  item.valuestring = (char *)"[1,]";
  expect_stringify_rejected(&item);
  item.valuestring = (char *)"\"\\u0000\"";
  expect_stringify_rejected(&item);
  expect_stringify_rejected(NULL);

  /* An invalid key, deep inside, after valid output was written. */
  root = parse_ok("{\"a\":[1,2,{\"x\":\"y\"}]}");
  cJSON_AddStringToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "a"), 2),
                          "\xed\xbf\xbf", "z");
  expect_stringify_rejected(root);
  cJSON_Delete(root);
}

static void json_stringify_nesting_limit(void **state) {
  char *text = nested_arrays(CJSON_NESTING_LIMIT);
  cJSON *value = parse_ok(text);
  cJSON *outer = cJSON_CreateArray();
  cp__bytes out = {NULL, 0, 0};
  (void)state;

  assert_string_equal(stringify(value, &out), text);

  /* One level more is what the receiver's cJSON cannot read. */
  cJSON_AddItemToArray(outer, value);
  expect_stringify_rejected(outer);

  cp__bytes_free(&out);
  cJSON_Delete(outer);
  free(text);
}

static void json_stringify_cycle_rejected(void **state) {
  cJSON *array = cJSON_CreateArray();
  cJSON *inner = cJSON_CreateArray();
  (void)state;

  cJSON_AddItemToArray(array, inner);
  inner->child = array; /* a cycle cJSON's API would not build */
  expect_stringify_rejected(array);
  inner->child = NULL;
  cJSON_Delete(array);
}

/* ------------------------------------------------------------------------
 * Parse
 * ------------------------------------------------------------------------ */

static void json_parse_message(void **state) {
  cJSON *value = parse_ok("{\"seq\":123456,\"data\":\"hello\"}");
  (void)state;

  assert_true(cJSON_IsObject(value));
  assert_int_equal(cJSON_GetObjectItem(value, "seq")->valuedouble, 123456);
  assert_string_equal(cJSON_GetObjectItem(value, "data")->valuestring, "hello");
  cJSON_Delete(value);
}

static void json_parse_whitespace_and_empty(void **state) {
  (void)state;

  expect_round_trip(B(" \t\r\n{ \"a\" :\t[ 1 ,\r\n2 ] }\n\r\t "),
                    "{\"a\":[1,2]}");
  expect_round_trip(B("\"x\"\r"), "\"x\"");

  expect_parse_error(B(""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(NULL, 0, CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B(" "), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\r"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B(" \t\r\n"), CP_ERR_IPC_INVALID_JSON);

  /* cJSON skips every byte up to 0x20; JSON.parse only these four. */
  expect_parse_error(B("\f1"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("[1,\v2]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\0001"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("1\0"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\357\273\2771"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\302\2401"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("1 2"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("[1]x"), CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_stops_at_length(void **state) {
  /* The record is the first 7 bytes; what follows must not be read. */
  const char buffer[] = "[1,2,3]garbage";
  const char unterminated[3] = {'"', 'a', '"'};
  cJSON *value = NULL;
  (void)state;

  assert_int_equal(cp__json_parse(buffer, 7, &value), 0);
  assert_int_equal(cJSON_GetArraySize(value), 3);
  cJSON_Delete(value);

  expect_round_trip(unterminated, sizeof unterminated, "\"a\"");
  expect_parse_error(buffer, 6, CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_invalid_utf8(void **state) {
  static const struct {
    const char *text;
    size_t len;
  } cases[] = {
      {B("\"\xc0\x80\"")},         /* overlong U+0000 */
      {B("\"\xc1\xbf\"")},         /* overlong U+007F */
      {B("\"\xe0\x9f\xbf\"")},     /* overlong U+07FF */
      {B("\"\xf0\x8f\xbf\xbf\"")}, /* overlong U+FFFF */
      {B("\"\xed\xa0\x80\"")},     /* U+D800 encoded in UTF-8 */
      {B("\"\xed\xbf\xbf\"")},     /* U+DFFF encoded in UTF-8 */
      {B("\"\xf4\x90\x80\x80\"")}, /* U+110000 */
      {B("\"\xf5\x80\x80\x80\"")}, /* F5 starts no sequence */
      {B("\"\xff\"")},             /* FF never appears */
      {B("\"\x80\"")},             /* stray continuation byte */
      {B("\"\xe2\x82\"")},         /* truncated before the quote */
      {B("\"\xe2\x82")},           /* truncated at the end */
      {B("{\"\xc3\":1}")},         /* in a key */
      {B("[1,\xc3]")},             /* outside strings */
      {B("[1,,\"\xff\"]")},        /* after a JSON error: UTF-8 wins */
      {B("\xff")},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    expect_parse_error(cases[i].text, cases[i].len, CP_ERR_IPC_INVALID_UTF8);

  /* The boundaries themselves are valid. */
  expect_round_trip(B("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
                      "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""),
                    "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
                    "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
}

static void json_parse_raw_control_characters(void **state) {
  char text[] = "\"a?b\"";
  (void)state;

  /* JSON.parse rejects every raw byte below 0x20 in a string. */
  for (int c = 0; c < 0x20; c++) {
    text[2] = (char)c;
    expect_parse_error(text, sizeof text - 1, CP_ERR_IPC_INVALID_JSON);
  }
  expect_round_trip(B("\"\x7f\""), "\"\x7f\"");
}

static void json_parse_escapes(void **state) {
  (void)state;

  expect_round_trip(B("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
                    "\"\\\"\\\\/\\b\\f\\n\\r\\t\"");
  expect_round_trip(B("\"\\u0041\\u00e9\\u00E9\\u2028\\u001f\\u007f\""),
                    "\"A\xc3\xa9\xc3\xa9\xe2\x80\xa8\\u001f\x7f\"");
  expect_round_trip(B("\"\\ud83d\\ude00\\uD83D\\uDE00\""),
                    "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"");
  /* An escaped backslash followed by the text u0000. */
  expect_round_trip(B("\"\\\\u0000\""), "\"\\\\u0000\"");

  /* cJSON reads "\uZZZZ" as U+0000; JSON.parse rejects it. */
  expect_parse_error(B("\"\\uzzzz\""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\u12G4\""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\u12\""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\x\""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\'\""), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"abc"), CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_nul_escape_unsupported(void **state) {
  (void)state;

  expect_parse_error(B("\"\\u0000\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("[\"a\\u0000b\"]"), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("{\"\\u0000\":1}"), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("{\"a\":\"\\u0000\","
                       "\"b\":"
                       "1"
                       "0000000000"
                       "0000000000000000000000000000000000000000000000000000"
                       "0000000000}"),
                     CP_ERR_IPC_UNSUPPORTED_VALUE);

  /* Invalid JSON stays invalid JSON, whatever it holds. */
  expect_parse_error(B("[\"\\u0000\",]"), CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_lone_surrogates_unsupported(void **state) {
  (void)state;

  expect_parse_error(B("\"\\ud800\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\udc00\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\udbff x\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\ud800\\u0041\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\ud800\\ud800\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\udc00\\ud800\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("{\"\\ud800\":1}"), CP_ERR_IPC_UNSUPPORTED_VALUE);

  expect_parse_error(B("[\"\\ud800\" 1]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\"\\ud800\\uzzzz\""), CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_nesting_limit(void **state) {
  char *text = nested_arrays(CJSON_NESTING_LIMIT);
  cJSON *value = NULL;
  (void)state;

  assert_int_equal(cp__json_parse(text, strlen(text), &value), 0);
  cJSON_Delete(value);
  free(text);

  /* JSON.parse reads deeper; cJSON does not. */
  text = nested_arrays(CJSON_NESTING_LIMIT + 1);
  expect_parse_error(text, strlen(text), CP_ERR_IPC_UNSUPPORTED_VALUE);

  /* Too deep wins over invalid: one closing bracket short. */
  expect_parse_error(text, strlen(text) - 1, CP_ERR_IPC_UNSUPPORTED_VALUE);
  free(text);
}

static void json_parse_number_syntax(void **state) {
  static const char *const rejected[] = {
      "01",    "-01",   "00",   "1.",         "-.5", ".5",
      "1.e5",  "+1",    "1e",   "1e+",        "-",   "1.5.3",
      "1e5e3", "[1-2]", "0x10", "Infinity",   "NaN", "-Infinity",
      "- 1",   "1.5e",  "[01]", "{\"a\":1.}",
  };
  (void)state;

  for (size_t i = 0; i < sizeof rejected / sizeof *rejected; i++)
    expect_parse_error(rejected[i], strlen(rejected[i]),
                       CP_ERR_IPC_INVALID_JSON);

  expect_round_trip(B("[0,-0,1E+05,1e-05,1.0,1.50,-0.0,0.1e1,100e-2]"),
                    "[0,0,100000,0.00001,1,1.5,0,1,1]");
  expect_round_trip(B("[1e999,-1e999,1e-999]"), "[null,null,0]");
}

static void json_parse_numbers_as_json_parse(void **state) {
  (void)state;

  /* Each expected double is what JSON.parse gives in Node v20.20.2. */
  assert_true(parse_number("9007199254740993") == 0x1p53);
  assert_true(parse_number("9007199254740995") == 0x1.0000000000002p53);
  assert_true(parse_number("1.7976931348623158e308") == 0x1.fffffffffffffp1023);
  assert_true(isinf(parse_number("1.7976931348623159e308")));
  assert_true(parse_number("2.4703282292062328e-324") == 0x1p-1074);
  assert_true(parse_number("2.4703282292062327e-324") == 0.0);
  assert_true(parse_number("2.2250738585072011e-308") ==
              0x0.fffffffffffffp-1022);
  assert_true(signbit(parse_number("-0")));
  assert_true(signbit(parse_number("-0.0e5")));
}

static void json_parse_long_numbers(void **state) {
  char text[512];
  (void)state;

  /* cJSON reads at most 63 characters of a number. */
  memset(text, '1', 63);
  text[63] = '\0';
  assert_true(parse_number(text) == strtod(text, NULL));
  memset(text, '1', 64);
  text[64] = '\0';
  assert_true(parse_number(text) == strtod(text, NULL));

  snprintf(text, sizeof text, "1%0*de-70", 70, 0);
  assert_true(parse_number(text) == 1.0);
  snprintf(text, sizeof text, "-0.%0*d1e100", 100, 0);
  assert_true(parse_number(text) == -0.1);
  snprintf(text, sizeof text, "1%0*de-400", 400, 0);
  assert_true(parse_number(text) == 1.0);
  snprintf(text, sizeof text, "1%0*de300", 80, 0);
  assert_true(isinf(parse_number(text)));
  snprintf(text, sizeof text, "-0.%0*d", 100, 0);
  assert_true(parse_number(text) == 0.0);
  assert_true(signbit(parse_number(text)));
  snprintf(text, sizeof text, "1.%0*d1", 100, 0);
  assert_true(parse_number(text) == 1.0);
  snprintf(text, sizeof text, "0.%0*d1", 70, 0);
  assert_true(parse_number(text) == 1e-71);
  snprintf(text, sizeof text, "1%0*de99999999999999999999999", 70, 0);
  assert_true(isinf(parse_number(text)));

  /* Inside structures, next to short numbers, and still checked. */
  snprintf(text, sizeof text, "{\"a\":[1%0*d,2],\"b\":-3}", 70, 0);
  expect_round_trip(text, strlen(text), "{\"a\":[1e+70,2],\"b\":-3}");
  snprintf(text, sizeof text, "[1%0*d.]", 70, 0);
  expect_parse_error(text, strlen(text), CP_ERR_IPC_INVALID_JSON);
  snprintf(text, sizeof text, "[0%0*d]", 70, 0);
  expect_parse_error(text, strlen(text), CP_ERR_IPC_INVALID_JSON);
  snprintf(text, sizeof text, "[1%0*d", 70, 0);
  expect_parse_error(text, strlen(text), CP_ERR_IPC_INVALID_JSON);
}

static void json_parse_duplicate_keys_last_wins(void **state) {
  cJSON *value = parse_ok("{\"a\":1,\"b\":2,\"a\":{\"c\":3},\"a\":4}");
  cJSON *a;
  (void)state;

  /* JSON.parse keeps the first position and the last value. */
  assert_int_equal(cJSON_GetArraySize(value), 2);
  a = cJSON_GetObjectItem(value, "a");
  assert_ptr_equal(a, value->child);
  assert_int_equal(a->valuedouble, 4);
  assert_ptr_equal(value->child->prev, cJSON_GetObjectItem(value, "b"));
  cJSON_Delete(value);

  expect_round_trip(B("{\"\":1,\"\":2}"), "{\"\":2}");
  expect_round_trip(B("{\"a\":1,\"A\":2}"), "{\"a\":1,\"A\":2}");
  expect_round_trip(B("[{\"x\":1,\"x\":2},{\"x\":[{\"y\":1,\"y\":[]}]}]"),
                    "[{\"x\":2},{\"x\":[{\"y\":[]}]}]");
}

static void json_parse_array_index_keys_first(void **state) {
  (void)state;

  /* Node v20.20.2: JSON.stringify(JSON.parse(text)). */
  expect_round_trip(B("{\"b\":1,\"1\":2,\"a\":3,\"0\":4}"),
                    "{\"0\":4,\"1\":2,\"b\":1,\"a\":3}");
  expect_round_trip(B("{\"b\":1,\"4294967295\":2,\"4294967294\":3,\"1\":4,"
                      "\"01\":5,\"-1\":6}"),
                    "{\"1\":4,\"4294967294\":3,\"b\":1,\"4294967295\":2,"
                    "\"01\":5,\"-1\":6}");
  expect_round_trip(B("{\"1\":1,\"a\":2,\"1\":3}"), "{\"1\":3,\"a\":2}");
  expect_round_trip(B("{\"10\":1,\"9\":2,\"100\":3,\"0\":4,\"x\":5}"),
                    "{\"0\":4,\"9\":2,\"10\":1,\"100\":3,\"x\":5}");
}

static void json_parse_large_objects(void **state) {
  cp__bytes text = {NULL, 0, 0};
  cp__bytes expected = {NULL, 0, 0};
  char member[64];
  cJSON *value;
  (void)state;

  /* 500 keys, each given twice; the second copy of k<i> comes right after
   * k<i+250> and carries the value i + 1000. */
  assert_int_equal(cp__bytes_append(&text, "{", 1), 0);
  for (int i = 0; i < 500; i++) {
    int length =
        snprintf(member, sizeof member, "%s\"k%d\":%d", i > 0 ? "," : "", i, i);
    assert_int_equal(cp__bytes_append(&text, member, (size_t)length), 0);
    if (i >= 250) {
      length = snprintf(member, sizeof member, ",\"k%d\":%d", i - 250,
                        i - 250 + 1000);
      assert_int_equal(cp__bytes_append(&text, member, (size_t)length), 0);
    }
  }
  assert_int_equal(cp__bytes_append(&text, "}", 1), 0);

  assert_int_equal(cp__bytes_append(&expected, "{", 1), 0);
  for (int i = 0; i < 500; i++) {
    int length = snprintf(member, sizeof member, "%s\"k%d\":%d",
                          i > 0 ? "," : "", i, i < 250 ? i + 1000 : i);
    assert_int_equal(cp__bytes_append(&expected, member, (size_t)length), 0);
  }
  assert_int_equal(cp__bytes_append(&expected, "}", 2), 0); /* with NUL */

  assert_int_equal(cp__json_parse(text.data, text.len, &value), 0);
  assert_int_equal(cJSON_GetArraySize(value), 500);
  expect_stringify(value, expected.data);

  cJSON_Delete(value);
  cp__bytes_free(&text);
  cp__bytes_free(&expected);
}

static void json_parse_structure_errors(void **state) {
  static const char *const rejected[] = {
      "[1,]",       "[,1]",  "{\"a\":1,}", "{,}",   "{\"a\"}",
      "{\"a\":}",   "{a:1}", "{'a':1}",    "[1 2]", "[",
      "]",          "{",     "}",          "[[]",   "[]]",
      "nul",        "nulll", "truee",      "True",  "\"a\" \"b\"",
      "{\"a\":1}}", "x[1]",  "/*c*/1",     "1//c",  "[true false]",
  };
  (void)state;

  for (size_t i = 0; i < sizeof rejected / sizeof *rejected; i++)
    expect_parse_error(rejected[i], strlen(rejected[i]),
                       CP_ERR_IPC_INVALID_JSON);
}

/* ------------------------------------------------------------------------
 * Internal messages and byte buffers
 * ------------------------------------------------------------------------ */

/* Numbers on both sides of the parser's exact path (at most 15
 * significant digits, a power of ten up to 10^22) against glibc's strtod,
 * which rounds correctly; JSON.parse gives the same doubles. */
static void json_parse_numbers_match_strtod(void **state) {
  static const char *const numbers[] = {
      "0",
      "-0",
      "7",
      "-7",
      "123456",
      "999999999999999",
      "1000000000000000",
      "9007199254740993",
      "18446744073709551615",
      "18446744073709551616",
      "123456789012345678901234567890",
      "0.1",
      "0.3",
      "-0.000001",
      "1e-7",
      "123456789012345e22",
      "123456789012345e23",
      "1e22",
      "1e23",
      "1e-22",
      "1e-23",
      "4.35",
      "0.000000000000000000000000001",
      "1.000000000000000000",
      "100000000000000000000000000000000000000e-38",
      "3.141592653589793",
      "2.718281828459045235360287",
      "1.7976931348623157e308",
      "-1.7976931348623157e308",
      "5e-324",
      "2.2250738585072014e-308",
      "1e400",
      "-1e400",
      "0e999",
      "0.0e-999",
      "1e-400",
      "-1e-400",
      "0.1e1",
      "12345678901234567890e-20",
  };
  (void)state;

  for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
    double expected = strtod(numbers[i], NULL);
    double actual = parse_number(numbers[i]);

    if (memcmp(&actual, &expected, sizeof actual) != 0)
      fail_msg("%s: got %a, expected %a", numbers[i], actual, expected);
  }
}

/* cJSON's parser leaves valueint as valuedouble saturated to int. */
static void json_parse_valueint_saturated(void **state) {
  static const struct {
    const char *text;
    int valueint;
  } cases[] = {
      {"42", 42},         {"-42.9", -42},           {"2147483647", INT_MAX},
      {"1e10", INT_MAX},  {"-2147483648", INT_MIN}, {"-1e10", INT_MIN},
      {"1e400", INT_MAX}, {"-1e400", INT_MIN},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *value = parse_ok(cases[i].text);

    assert_int_equal(value->valueint, cases[i].valueint);
    cJSON_Delete(value);
  }
}

static void expect_string_value(const char *text, size_t len,
                                const char *expected, size_t expected_len) {
  cJSON *value = NULL;

  assert_int_equal(cp__json_parse(text, len, &value), 0);
  assert_true(cJSON_IsString(value));
  assert_int_equal(strlen(value->valuestring), expected_len);
  assert_memory_equal(value->valuestring, expected, expected_len);
  cJSON_Delete(value);
}

/* Escapes decode to UTF-8, and raw UTF-8 passes through, in strings short
 * and long (the scanner tests 16 or 8 bytes at a time). */
static void json_parse_strings_decoded(void **state) {
  (void)state;

  expect_string_value(B("\"\""), B(""));
  expect_string_value(B("\"hello\""), B("hello"));
  expect_string_value(B("\"a longer plain string of ASCII\""),
                      B("a longer plain string of ASCII"));
  expect_string_value(B("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
                      B("\"\\/\b\f\n\r\t"));
  expect_string_value(B("\"\\u0041\\u00e9\\u20AC\""),
                      B("A\xc3\xa9\xe2\x82\xac"));
  expect_string_value(B("\"\\ud83d\\ude00 and \\uD834\\uDD1E\""),
                      B("\xf0\x9f\x98\x80 and \xf0\x9d\x84\x9e"));
  expect_string_value(B("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end\""),
                      B("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end"));
  expect_string_value(B("\"plain start, then\\nescape, then plain again\""),
                      B("plain start, then\nescape, then plain again"));
  expect_string_value(B("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\""),
                      B("\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"));

  /* U+0000 and lone surrogates, also next to valid escapes. */
  expect_parse_error(B("\"a\\u0000\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\ud83d\\u0041\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("\"\\ude00\\ud83d\""), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("{\"\\u0000\":1}"), CP_ERR_IPC_UNSUPPORTED_VALUE);
  expect_parse_error(B("[\"\\ud800\",]"), CP_ERR_IPC_INVALID_JSON);
}

/*
 * The string scanner reads 16 and 64 bytes at a time. These tests put a
 * byte that ends a plain run after 0 to BLOCK_SPAN plain bytes. So it
 * falls at every offset in a block, at block edges, and in the tail that
 * is read byte by byte.
 */
#define BLOCK_SPAN 140

/* Writes a string of before times 'a', then middle, then 'b' up to
 * BLOCK_SPAN plain bytes in all, NUL-terminated. Returns its length. */
static size_t fill_around(char *out, size_t before, const char *middle) {
  size_t len = 0;

  memset(out, 'a', before);
  len += before;
  memcpy(out + len, middle, strlen(middle));
  len += strlen(middle);
  memset(out + len, 'b', BLOCK_SPAN - before);
  len += BLOCK_SPAN - before;
  out[len] = '\0';
  return len;
}

static const struct {
  const char *raw;
  const char *escaped; /* as JSON.stringify writes it */
} stringify_specials[] = {
    {"\"", "\\\""},
    {"\\", "\\\\"},
    {"\n", "\\n"},
    {"\t", "\\t"},
    {"\x01", "\\u0001"},
    {"\x1f", "\\u001f"},
    {"\x7f", "\x7f"},
    {"/", "/"},
    {"\xc3\xa9", "\xc3\xa9"},
    {"\xe2\x82\xac", "\xe2\x82\xac"},
    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    {"\n\"\xf0\x9f\x98\x80\\", "\\n\\\"\xf0\x9f\x98\x80\\\\"},
};

static void json_stringify_special_at_every_offset(void **state) {
  char raw[BLOCK_SPAN + 16];
  char expected[BLOCK_SPAN + 64];
  cJSON item = {.type = cJSON_String, .valuestring = raw};
  (void)state;

  for (size_t i = 0;
       i < sizeof stringify_specials / sizeof *stringify_specials; i++) {
    for (size_t before = 0; before <= BLOCK_SPAN; before++) {
      size_t len;

      fill_around(raw, before, stringify_specials[i].raw);
      expected[0] = '"';
      len = 1 + fill_around(expected + 1, before, stringify_specials[i].escaped);
      memcpy(expected + len, "\"", 2);
      expect_stringify(&item, expected);
    }
  }
}

/* Invalid UTF-8 after a long ASCII run is still rejected, and the output
 * is left as it was. */
static void json_stringify_invalid_utf8_after_ascii(void **state) {
  static const char *const invalid[] = {
      "\x80", "\xc0\x80", "\xc3", "\xed\xa0\x80", "\xe2\x82",
      "\xf4\x90\x80\x80", "\xf0\x9f\x98", "\xff",
  };
  char raw[BLOCK_SPAN + 16];
  cJSON item = {.type = cJSON_String, .valuestring = raw};
  cp__bytes out = {NULL, 0, 0};
  (void)state;

  assert_int_equal(cp__bytes_append(&out, "[", 1), 0);
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    for (size_t before = 0; before <= BLOCK_SPAN; before++) {
      fill_around(raw, before, invalid[i]);
      assert_int_equal(cp__json_stringify(&item, &out),
                       CP_ERR_INVALID_ARG_VALUE);
      assert_int_equal(out.len, 1);

      /* At the very end, with no ASCII after it. */
      raw[before + strlen(invalid[i])] = '\0';
      assert_int_equal(cp__json_stringify(&item, &out),
                       CP_ERR_INVALID_ARG_VALUE);
      assert_int_equal(out.len, 1);
    }
  }
  cp__bytes_free(&out);
}

static const struct {
  const char *text;    /* inside a JSON string */
  const char *decoded; /* the string's value */
} parse_specials[] = {
    {"\\n", "\n"},
    {"\\\"", "\""},
    {"\\\\", "\\"},
    {"\\/", "/"},
    {"\\u00e9", "\xc3\xa9"},
    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},
    {"\x7f", "\x7f"},
    {"\xc3\xa9", "\xc3\xa9"},
    {"\xef\xbf\xbf", "\xef\xbf\xbf"},
    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},
};

static void json_parse_special_at_every_offset(void **state) {
  char text[BLOCK_SPAN + 32];
  char expected[BLOCK_SPAN + 32];
  (void)state;

  for (size_t i = 0; i < sizeof parse_specials / sizeof *parse_specials;
       i++) {
    for (size_t before = 0; before <= BLOCK_SPAN; before++) {
      size_t len;
      size_t expected_len = fill_around(expected, before,
                                        parse_specials[i].decoded);

      text[0] = '"';
      len = 1 + fill_around(text + 1, before, parse_specials[i].text);
      text[len++] = '"';
      expect_string_value(text, len, expected, expected_len);
    }
  }
}

/* Raw control bytes and invalid UTF-8 at every offset, also as the last
 * bytes before the closing quote, keep their error codes. */
static void json_parse_bad_byte_at_every_offset(void **state) {
  static const struct {
    const char *text;
    int error;
  } bad[] = {
      {"\x01", CP_ERR_IPC_INVALID_JSON},
      {"\x1f", CP_ERR_IPC_INVALID_JSON},
      {"\t", CP_ERR_IPC_INVALID_JSON},
      {"\n", CP_ERR_IPC_INVALID_JSON},
      {"\\x", CP_ERR_IPC_INVALID_JSON},
      {"\\u12g", CP_ERR_IPC_INVALID_JSON},
      {"\x80", CP_ERR_IPC_INVALID_UTF8},
      {"\xc0\x80", CP_ERR_IPC_INVALID_UTF8},
      {"\xed\xa0\x80", CP_ERR_IPC_INVALID_UTF8},
      {"\xf4\x90\x80\x80", CP_ERR_IPC_INVALID_UTF8},
      {"\xf0\x9f\x98", CP_ERR_IPC_INVALID_UTF8},
      {"\xff", CP_ERR_IPC_INVALID_UTF8},
  };
  char text[BLOCK_SPAN + 32];
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    for (size_t before = 0; before <= BLOCK_SPAN; before++) {
      size_t len;

      text[0] = '"';
      len = 1 + fill_around(text + 1, before, bad[i].text);
      text[len++] = '"';
      expect_parse_error(text, len, bad[i].error);

      len = 1 + before + strlen(bad[i].text);
      text[len++] = '"';
      expect_parse_error(text, len, bad[i].error);
    }
  }
}

/* The items are ordinary cJSON items: no flag bits in type, the first
 * child's prev is the last child, and cJSON's own functions work on
 * them. */
static void json_parse_items_as_cjson(void **state) {
  cJSON *value = parse_ok("{\"a\":[1,\"x\",true,false,null],\"b\":{}}");
  cJSON *array = cJSON_GetObjectItemCaseSensitive(value, "a");
  cJSON *copy;
  (void)state;

  assert_int_equal(value->type, cJSON_Object);
  assert_int_equal(array->type, cJSON_Array);
  assert_int_equal(cJSON_GetArraySize(array), 5);
  assert_ptr_equal(array->child->prev, cJSON_GetArrayItem(array, 4));
  assert_null(cJSON_GetArrayItem(array, 4)->next);
  assert_int_equal(cJSON_GetArrayItem(array, 1)->type, cJSON_String);
  assert_int_equal(cJSON_GetArrayItem(array, 2)->type, cJSON_True);
  assert_int_equal(cJSON_GetArrayItem(array, 3)->type, cJSON_False);
  assert_int_equal(cJSON_GetArrayItem(array, 4)->type, cJSON_NULL);
  assert_ptr_equal(value->child->prev,
                   cJSON_GetObjectItemCaseSensitive(value, "b"));

  copy = cJSON_Duplicate(value, true);
  assert_true(cJSON_Compare(value, copy, true));
  cJSON_DeleteItemFromArray(array, 0);
  cJSON_AddItemToArray(array, cJSON_CreateNumber(2));
  assert_false(cJSON_Compare(value, copy, true));
  expect_stringify(value, "{\"a\":[\"x\",true,false,null,2],\"b\":{}}");
  cJSON_Delete(copy);
  cJSON_Delete(value);
}

static size_t hook_allocations;

static void *counting_malloc(size_t size) {
  hook_allocations++;
  return malloc(size);
}

static void counting_free(void *memory) {
  if (memory != NULL)
    hook_allocations--;
  free(memory);
}

/* Items and strings come from cJSON's allocator, so the hooks a program
 * set with cJSON_InitHooks() allocate and free every one of them. */
static void json_parse_uses_cjson_hooks(void **state) {
  cJSON_Hooks hooks = {counting_malloc, counting_free};
  cJSON *value;
  (void)state;

  cJSON_InitHooks(&hooks);
  value = parse_ok("{\"seq\":1,\"data\":\"hello\",\"a\":1,\"a\":[\"\\n\"]}");
  /* The object; seq with its key; data with its key and string; the
   * last a with its key, its array, and the array's item and string. The
   * first a and its key were freed as a duplicate. */
  assert_int_equal(hook_allocations, 10);
  cJSON_Delete(value);
  assert_int_equal(hook_allocations, 0);

  expect_parse_error(B("{\"a\":[\"b\",{\"c\":tru}]}"), CP_ERR_IPC_INVALID_JSON);
  assert_int_equal(hook_allocations, 0);
  cJSON_InitHooks(NULL);
}

/* Which error a rejected record gets does not depend on where the parser
 * stopped: invalid UTF-8 anywhere wins, then an invalid string or number,
 * then nesting too deep, then the structure. */
static void json_parse_error_precedence(void **state) {
  char *deep = nested_arrays(CJSON_NESTING_LIMIT + 1);
  size_t deep_len = strlen(deep);
  char *text = malloc(deep_len + 16);
  (void)state;

  expect_parse_error(B("[1,,\"\xff\"]"), CP_ERR_IPC_INVALID_UTF8);
  expect_parse_error(B("{]\xc0\x80"), CP_ERR_IPC_INVALID_UTF8);
  expect_parse_error(B("[1,,01]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("{\"a\" 1}"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("[true false]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("[1] [2]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("nul"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("truex"), CP_ERR_IPC_INVALID_JSON);

  /* A structure error before deep nesting. */
  memcpy(text, "[,", 2);
  memcpy(text + 2, deep, deep_len);
  expect_parse_error(text, deep_len + 2, CP_ERR_IPC_UNSUPPORTED_VALUE);
  /* A lexical error wins over depth. */
  memcpy(text + deep_len + 2, "01", 2);
  expect_parse_error(text, deep_len + 4, CP_ERR_IPC_INVALID_JSON);

  free(text);
  free(deep);
}

/* Whitespace JSON allows goes anywhere between tokens; nothing else does. */
static void json_parse_whitespace_between_tokens(void **state) {
  (void)state;

  expect_round_trip(B(" \t\r\n{ \"a\" : [ 1 , \"b\" , { } , [ ] ] ,\n\"c\"\t:"
                      "null } \r\n"),
                    "{\"a\":[1,\"b\",{},[]],\"c\":null}");
  expect_parse_error(B("[1,\f2]"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("{\"a\":1\v}"), CP_ERR_IPC_INVALID_JSON);
  expect_parse_error(B("\xc2\xa0"
                       "1"),
                     CP_ERR_IPC_INVALID_JSON);
}

/* Text sent as it is may hold values cJSON cannot: any depth, U+0000 and
 * lone surrogates. The rest must be JSON. */
static void json_validate_accepts_any_json(void **state) {
  char *deep = nested_arrays(5000);
  static const char *const valid[] = {
      "1",           " {\"a\":[1,{\"b\":null}],\"c\":\"\\u0000\"} ",
      "\"\\ud800\"", "[]",
      "{}",          "[[],{}]",
      "-0.5e-3",     "true",
  };
  static const char *const invalid[] = {
      "",        " ",     "[1,]",       "{\"a\":1,}", "[1 2]",
      "{\"a\"}", "{1:2}", "[01]",       "\"\\x\"",    "[true,fals]",
      "[1]]",    "[[1]",  "{\"a\":1}{", "\"\t\"",
  };
  (void)state;

  assert_int_equal(cp__json_validate(deep, strlen(deep)), 0);
  assert_int_equal(cp__json_validate(deep, strlen(deep) - 1),
                   CP_ERR_IPC_INVALID_JSON);
  free(deep);

  for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
    assert_int_equal(cp__json_validate(valid[i], strlen(valid[i])), 0);
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
    if (cp__json_validate(invalid[i], strlen(invalid[i])) !=
        CP_ERR_IPC_INVALID_JSON)
      fail_msg("accepted or misreported: [%s]", invalid[i]);
  }
  assert_int_equal(cp__json_validate(B("[1,\"\xed\xa0\x80\"]")),
                   CP_ERR_IPC_INVALID_UTF8);
  assert_int_equal(cp__json_validate(B("[1,]\xff")), CP_ERR_IPC_INVALID_UTF8);
}

static void json_is_internal_as_node(void **state) {
  static const struct {
    const char *text;
    bool internal;
  } cases[] = {
      {"{\"cmd\":\"NODE_FOO\"}", true},
      {"{\"cmd\":\"NODE_X\",\"v\":1}", true},
      {"{\"a\":1,\"cmd\":\"NODE_HANDLE\"}", true},
      {"{\"cmd\":\"NODE_\"}", false},
      {"{\"cmd\":\"node_x\"}", false},
      {"{\"cmd\":\"XNODE_x\"}", false},
      {"{\"cmd\":1}", false},
      {"{\"cmd\":[\"NODE_X\"]}", false},
      {"{\"CMD\":\"NODE_X\"}", false},
      {"[\"NODE_X\"]", false},
      {"\"NODE_X\"", false},
      {"null", false},
      {"{\"cmd\":\"NODE_X\",\"cmd\":\"other\"}", false}, /* last one wins */
      {"{\"cmd\":\"other\",\"cmd\":\"NODE_X\"}", true},
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *value = parse_ok(cases[i].text);
    if (cp__json_is_internal(value) != cases[i].internal)
      fail_msg("%s: expected %s", cases[i].text,
               cases[i].internal ? "internal" : "not internal");
    cJSON_Delete(value);
  }
  assert_false(cp__json_is_internal(NULL));
}

static void json_bytes_reserve_and_append(void **state) {
  cp__bytes bytes = {NULL, 0, 0};
  (void)state;

  assert_int_equal(cp__bytes_reserve(&bytes, 0), 0);
  assert_int_equal(cp__bytes_append(&bytes, "", 0), 0);
  assert_int_equal(bytes.len, 0);

  for (int i = 0; i < 10000; i++)
    assert_int_equal(cp__bytes_append(&bytes, "0123456789", 10), 0);
  assert_int_equal(bytes.len, 100000);
  assert_true(bytes.capacity >= bytes.len);
  assert_memory_equal(bytes.data + 99990, "0123456789", 10);

  assert_int_equal(cp__bytes_reserve(&bytes, SIZE_MAX), -ENOMEM);
  assert_int_equal(cp__bytes_append(&bytes, "x", SIZE_MAX), -ENOMEM);
  assert_int_equal(bytes.len, 100000);

  cp__bytes_free(&bytes);
  assert_null(bytes.data);
  assert_int_equal(bytes.len, 0);
  assert_int_equal(bytes.capacity, 0);
}

/* ------------------------------------------------------------------------
 * The corpus Node prints at test time
 * ------------------------------------------------------------------------ */

/* Decodes hex ("-" for nothing) into a new NUL-terminated buffer. */
static char *decode_hex(const char *hex, size_t *len_out) {
  size_t hex_len = strcmp(hex, "-") == 0 ? 0 : strlen(hex);
  char *bytes = malloc(hex_len / 2 + 1);

  assert_non_null(bytes);
  assert_int_equal(hex_len % 2, 0);
  for (size_t i = 0; i < hex_len / 2; i++) {
    unsigned byte;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
    bytes[i] = (char)byte;
  }
  bytes[hex_len / 2] = '\0';
  *len_out = hex_len / 2;
  return bytes;
}

/* Checks one corpus line. Returns NULL when it matches, else a message in
 * the static buffer problem. */
static const char *check_corpus_line(const char *kind, const char *input,
                                     const char *expected, cp__bytes *out) {
  static char problem[600];
  size_t input_len;
  size_t expected_len = 0;
  char *bytes = NULL;
  char *expected_bytes = NULL;
  cJSON item = {0};
  cJSON *value = NULL;
  int r = 0;

  out->len = 0;
  problem[0] = '\0';
  if (strcmp(kind, "number") == 0) {
    uint64_t bits = strtoull(input, NULL, 16);
    item.type = cJSON_Number;
    memcpy(&item.valuedouble, &bits, sizeof bits);
    r = cp__json_stringify(&item, out);
    expected_bytes = strdup(expected);
    expected_len = strlen(expected);
  } else if (strcmp(kind, "string") == 0) {
    bytes = decode_hex(input, &input_len);
    item.type = cJSON_String;
    item.valuestring = bytes;
    r = cp__json_stringify(&item, out);
    expected_bytes = decode_hex(expected, &expected_len);
  } else if (strcmp(kind, "parse") == 0) {
    int expected_r = 0;
    bytes = decode_hex(input, &input_len);
    if (strcmp(expected, "invalid") == 0)
      expected_r = CP_ERR_IPC_INVALID_JSON;
    else if (strcmp(expected, "unsupported") == 0)
      expected_r = CP_ERR_IPC_UNSUPPORTED_VALUE;
    else
      expected_bytes = decode_hex(expected, &expected_len);

    r = cp__json_parse(bytes, input_len, &value);
    if (r == 0 && expected_r == 0)
      r = cp__json_stringify(value, out);
    else if (r != expected_r)
      snprintf(problem, sizeof problem, "parse returned %d, expected %d", r,
               expected_r);
    r = 0;
    cJSON_Delete(value);
  } else {
    snprintf(problem, sizeof problem, "unknown kind");
  }

  if (problem[0] == '\0' && r != 0)
    snprintf(problem, sizeof problem, "returned %d", r);
  else if (problem[0] == '\0' && expected_bytes != NULL &&
           (out->len != expected_len ||
            memcmp(out->data, expected_bytes, expected_len) != 0))
    snprintf(problem, sizeof problem, "wrote \"%.*s\"",
             (int)(out->len > 300 ? 300 : out->len), out->data);

  free(bytes);
  free(expected_bytes);
  return problem[0] == '\0' ? NULL : problem;
}

static void json_matches_node_corpus(void **state) {
  const char *command = "timeout 60 node " CP_TEST_SOURCE_DIR "/json_corpus.js";
  cp__bytes out = {NULL, 0, 0};
  char *line = NULL;
  size_t line_size = 0;
  size_t checked = 0;
  size_t failed = 0;
  FILE *node;
  (void)state;

  if (system("command -v node >/dev/null 2>&1") != 0) {
    fprintf(stderr, "skipped: node is not on PATH\n");
    skip();
  }

  node = popen(command, "r");
  assert_non_null(node);
  while (getline(&line, &line_size, node) > 0) {
    char kind[16];
    char *input = malloc(strlen(line) + 1);
    char *expected = malloc(strlen(line) + 1);
    const char *problem;

    assert_non_null(input);
    assert_non_null(expected);
    if (sscanf(line, "%15s %s %s", kind, input, expected) != 3)
      fail_msg("malformed corpus line: %s", line);

    problem = check_corpus_line(kind, input, expected, &out);
    checked++;
    if (problem != NULL && ++failed <= 20)
      fprintf(stderr, "mismatch: %s %s (Node: %s): %s\n", kind,
              strlen(input) > 200 ? "(long input)" : input,
              strlen(expected) > 200 ? "(long)" : expected, problem);
    free(input);
    free(expected);
  }
  free(line);
  cp__bytes_free(&out);

  assert_int_equal(pclose(node), 0);
  fprintf(stderr, "checked %zu corpus lines from node\n", checked);
  assert_true(checked > 20000);
  assert_int_equal(failed, 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_stringify_numbers_as_node),
      cmocka_unit_test(json_stringify_strings_as_node),
      cmocka_unit_test(json_stringify_special_at_every_offset),
      cmocka_unit_test(json_stringify_invalid_utf8_after_ascii),
      cmocka_unit_test(json_stringify_structures),
      cmocka_unit_test(json_stringify_duplicate_keys_kept),
      cmocka_unit_test(json_stringify_raw_compacted),
      cmocka_unit_test(json_stringify_rejects_invalid_values),
      cmocka_unit_test(json_stringify_nesting_limit),
      cmocka_unit_test(json_stringify_cycle_rejected),
      cmocka_unit_test(json_parse_message),
      cmocka_unit_test(json_parse_whitespace_and_empty),
      cmocka_unit_test(json_parse_stops_at_length),
      cmocka_unit_test(json_parse_invalid_utf8),
      cmocka_unit_test(json_parse_raw_control_characters),
      cmocka_unit_test(json_parse_escapes),
      cmocka_unit_test(json_parse_nul_escape_unsupported),
      cmocka_unit_test(json_parse_lone_surrogates_unsupported),
      cmocka_unit_test(json_parse_nesting_limit),
      cmocka_unit_test(json_parse_number_syntax),
      cmocka_unit_test(json_parse_numbers_as_json_parse),
      cmocka_unit_test(json_parse_long_numbers),
      cmocka_unit_test(json_parse_duplicate_keys_last_wins),
      cmocka_unit_test(json_parse_array_index_keys_first),
      cmocka_unit_test(json_parse_large_objects),
      cmocka_unit_test(json_parse_structure_errors),
      cmocka_unit_test(json_parse_numbers_match_strtod),
      cmocka_unit_test(json_parse_valueint_saturated),
      cmocka_unit_test(json_parse_strings_decoded),
      cmocka_unit_test(json_parse_special_at_every_offset),
      cmocka_unit_test(json_parse_bad_byte_at_every_offset),
      cmocka_unit_test(json_parse_items_as_cjson),
      cmocka_unit_test(json_parse_uses_cjson_hooks),
      cmocka_unit_test(json_parse_error_precedence),
      cmocka_unit_test(json_parse_whitespace_between_tokens),
      cmocka_unit_test(json_validate_accepts_any_json),
      cmocka_unit_test(json_is_internal_as_node),
      cmocka_unit_test(json_bytes_reserve_and_append),
      cmocka_unit_test(json_matches_node_corpus),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
