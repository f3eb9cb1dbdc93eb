/*
 * json-parse: times JSON libraries from Debian 12 on the 30-byte message
 * {"seq":123456,"data":"hello"}, and childproc's JSON layer (src/json.c,
 * on cJSON) on the same message. The results and the choice they led to
 * are in docs/json-library.md.
 *
 * Each row is one operation repeated on one thread: parse and free, or
 * stringify. A run repeats it for about 0.3 s; the row shows the median
 * of 5 runs, with the fastest and slowest run beside it.
 *
 * Not part of the CMake build, because jansson and json-c are needed only
 * here. Build and run it from the repository root:
 *
 *   apt-get install libjansson-dev libjson-c-dev   # libcjson-dev too
 *   gcc -std=c17 -O2 -D_GNU_SOURCE -Iinclude -iquote src \
 *       -o /tmp/json-parse bench/json-parse.c src/json.c \
 *       $(pkg-config --cflags --libs libcjson jansson json-c libuv) -lm
 *   taskset -c 1 /tmp/json-parse
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#include "json.h"

/* json-c's headers cannot be included next to jansson's, since both
 * libraries define json_object and json_type, so the json-c 0.16
 * functions and flags used here are declared by hand. */
struct json_object;
struct json_tokener;
#define JSON_TOKENER_STRICT 0x01
#define JSON_TOKENER_VALIDATE_UTF8 0x10
#define JSON_C_TO_STRING_PLAIN 0
const char *json_c_version(void);
struct json_tokener *json_tokener_new(void);
void json_tokener_free(struct json_tokener *tokener);
void json_tokener_reset(struct json_tokener *tokener);
void json_tokener_set_flags(struct json_tokener *tokener, int flags);
struct json_object *json_tokener_parse(const char *text);
struct json_object *json_tokener_parse_ex(struct json_tokener *tokener,
                                          const char *text, int len);
int json_object_put(struct json_object *object);
int json_object_object_get_ex(const struct json_object *object, const char *key,
                              struct json_object **value);
int64_t json_object_get_int64(const struct json_object *object);
const char *json_object_to_json_string_ext(struct json_object *object,
                                           int flags);

static const char message[] = "{\"seq\":123456,\"data\":\"hello\"}";
#define MESSAGE_LEN (sizeof message - 1)

/* The same message with a fractional number, whose shortest digits cost
 * a search that integers skip. */
static const char float_message[] =
    "{\"seq\":123456,\"t\":0.30000000000000004}";

#define RUNS 5
#define RUN_SECONDS 0.3

/* Each benchmark repeats its operation count times and returns a value
 * that depends on every result, so the compiler cannot drop the work. */
typedef uint64_t (*benchmark_fn)(size_t count);

static void fail(const char *operation) {
  fprintf(stderr, "json-parse: %s failed\n", operation);
  exit(1);
}

/* ------------------------------------------------------------------------
 * Parse and free
 * ------------------------------------------------------------------------ */

static uint64_t cjson_parse(size_t count) {
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    cJSON *value = cJSON_ParseWithLength(message, MESSAGE_LEN);
    if (value == NULL)
      fail("cJSON_ParseWithLength");
    sum += (uint64_t)cJSON_GetObjectItemCaseSensitive(value, "seq")->valueint;
    cJSON_Delete(value);
  }
  return sum;
}

static uint64_t jansson_parse(size_t count) {
  uint64_t sum = 0;
  json_error_t error;

  for (size_t i = 0; i < count; i++) {
    json_t *value = json_loadb(message, MESSAGE_LEN, JSON_DECODE_ANY, &error);
    if (value == NULL)
      fail("json_loadb");
    sum += (uint64_t)json_integer_value(json_object_get(value, "seq"));
    json_decref(value);
  }
  return sum;
}

/* json-c with one tokener reused for every message, its fastest use. */
static uint64_t json_c_parse_with_flags(size_t count, int flags) {
  struct json_tokener *tokener = json_tokener_new();
  uint64_t sum = 0;

  if (tokener == NULL)
    fail("json_tokener_new");
  json_tokener_set_flags(tokener, flags);
  for (size_t i = 0; i < count; i++) {
    struct json_object *value, *seq;
    json_tokener_reset(tokener);
    value = json_tokener_parse_ex(tokener, message, (int)MESSAGE_LEN);
    if (value == NULL || !json_object_object_get_ex(value, "seq", &seq))
      fail("json_tokener_parse_ex");
    sum += (uint64_t)json_object_get_int64(seq);
    json_object_put(value);
  }
  json_tokener_free(tokener);
  return sum;
}

static uint64_t json_c_parse(size_t count) {
  return json_c_parse_with_flags(count, 0);
}

static uint64_t json_c_parse_strict(size_t count) {
  return json_c_parse_with_flags(count, JSON_TOKENER_STRICT |
                                            JSON_TOKENER_VALIDATE_UTF8);
}

static uint64_t childproc_parse(size_t count) {
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    cJSON *value;
    if (cp__json_parse(message, MESSAGE_LEN, &value) != 0)
      fail("cp__json_parse");
    sum += (uint64_t)cJSON_GetObjectItemCaseSensitive(value, "seq")->valueint;
    cJSON_Delete(value);
  }
  return sum;
}

/* ------------------------------------------------------------------------
 * Stringify, from a value parsed once
 * ------------------------------------------------------------------------ */

static uint64_t cjson_print(size_t count) {
  cJSON *value = cJSON_ParseWithLength(message, MESSAGE_LEN);
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    char *text = cJSON_PrintUnformatted(value);
    if (text == NULL)
      fail("cJSON_PrintUnformatted");
    sum += (unsigned char)text[i % MESSAGE_LEN];
    cJSON_free(text);
  }
  cJSON_Delete(value);
  return sum;
}

static uint64_t cjson_print_preallocated(size_t count) {
  cJSON *value = cJSON_ParseWithLength(message, MESSAGE_LEN);
  char text[256];
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    if (!cJSON_PrintPreallocated(value, text, sizeof text, 0))
      fail("cJSON_PrintPreallocated");
    sum += (unsigned char)text[i % MESSAGE_LEN];
  }
  cJSON_Delete(value);
  return sum;
}

static uint64_t jansson_dump(size_t count) {
  json_t *value = json_loadb(message, MESSAGE_LEN, JSON_DECODE_ANY, NULL);
  char text[256];
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    size_t len = json_dumpb(value, text, sizeof text,
                            JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (len != MESSAGE_LEN)
      fail("json_dumpb");
    sum += (unsigned char)text[i % MESSAGE_LEN];
  }
  json_decref(value);
  return sum;
}

static uint64_t json_c_print(size_t count) {
  struct json_object *value = json_tokener_parse(message);
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    const char *text =
        json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
    if (text == NULL)
      fail("json_object_to_json_string_ext");
    sum += (unsigned char)text[i % MESSAGE_LEN];
  }
  json_object_put(value);
  return sum;
}

static uint64_t childproc_stringify_text(size_t count, const char *json) {
  cJSON *value;
  cp__bytes out = {NULL, 0, 0};
  uint64_t sum = 0;

  if (cp__json_parse(json, strlen(json), &value) != 0)
    fail("cp__json_parse");
  for (size_t i = 0; i < count; i++) {
    out.len = 0;
    if (cp__json_stringify(value, &out) != 0)
      fail("cp__json_stringify");
    sum += (unsigned char)out.data[i % out.len];
  }
  cJSON_Delete(value);
  cp__bytes_free(&out);
  return sum;
}

static uint64_t childproc_stringify(size_t count) {
  return childproc_stringify_text(count, message);
}

static uint64_t childproc_stringify_float(size_t count) {
  return childproc_stringify_text(count, float_message);
}

/* ------------------------------------------------------------------------
 * Both ways: what one message costs the channel's two ends together
 * ------------------------------------------------------------------------ */

static uint64_t childproc_round_trip(size_t count) {
  cp__bytes out = {NULL, 0, 0};
  uint64_t sum = 0;

  for (size_t i = 0; i < count; i++) {
    cJSON *value;
    if (cp__json_parse(message, MESSAGE_LEN, &value) != 0)
      fail("cp__json_parse");
    out.len = 0;
    if (cp__json_stringify(value, &out) != 0)
      fail("cp__json_stringify");
    sum += (unsigned char)out.data[i % out.len];
    cJSON_Delete(value);
  }
  cp__bytes_free(&out);
  return sum;
}

/* ------------------------------------------------------------------------
 * Timing
 * ------------------------------------------------------------------------ */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t sink;

static double time_run(benchmark_fn fn, size_t count) {
  double start = now_seconds();
  sink += fn(count);
  return now_seconds() - start;
}

/* Count of operations that takes about RUN_SECONDS. */
static size_t calibrate(benchmark_fn fn) {
  size_t count = 1000;
  double seconds;

  while ((seconds = time_run(fn, count)) < 0.05)
    count *= 2;
  return (size_t)((double)count * RUN_SECONDS / seconds) + 1;
}

static int compare_doubles(const void *a, const void *b) {
  double left = *(const double *)a;
  double right = *(const double *)b;
  return (left > right) - (left < right);
}

static void run(const char *name, benchmark_fn fn) {
  size_t count = calibrate(fn);
  double ns[RUNS];

  for (int i = 0; i < RUNS; i++)
    ns[i] = time_run(fn, count) * 1e9 / (double)count;
  qsort(ns, RUNS, sizeof *ns, compare_doubles);

  printf("%-44s %8.1f ns %7.2f M/s   (runs %.1f-%.1f ns)\n", name, ns[RUNS / 2],
         1e3 / ns[RUNS / 2], ns[0], ns[RUNS - 1]);
  fflush(stdout);
}

int main(void) {
  printf("message: %s (%zu bytes)\n", message, MESSAGE_LEN);
  printf("cJSON %d.%d.%d, jansson %s, json-c %s\n\n", CJSON_VERSION_MAJOR,
         CJSON_VERSION_MINOR, CJSON_VERSION_PATCH, JANSSON_VERSION,
         json_c_version());

  printf("parse + free\n");
  run("cJSON ParseWithLength + Delete", cjson_parse);
  run("jansson json_loadb + decref", jansson_parse);
  run("json-c tokener (reused) + put", json_c_parse);
  run("json-c tokener, strict + UTF-8 check", json_c_parse_strict);
  run("childproc cp__json_parse + cJSON_Delete", childproc_parse);

  printf("\nstringify\n");
  run("cJSON PrintUnformatted + free", cjson_print);
  run("cJSON PrintPreallocated", cjson_print_preallocated);
  run("jansson json_dumpb (compact)", jansson_dump);
  run("json-c to_json_string_ext (plain)", json_c_print);
  run("childproc cp__json_stringify", childproc_stringify);
  run("childproc cp__json_stringify, 0.1+0.2 field", childproc_stringify_float);

  printf("\nboth ways\n");
  run("childproc parse + stringify + delete", childproc_round_trip);
  return 0;
}
