/* Messages as Node's JSON serialization writes and reads them. */
#ifndef CP_JSON_H
#define CP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bytes.h"


/*
 * Parses one record (a line without its newline) as Node's receiver does
 * with JSON.parse. JSON whitespace (space, tab, CR, LF) may surround the
 * value. Everything JSON.parse rejects is rejected, including input cJSON's
 * own parser accepts (leading zeros, "1.", control characters, a byte
 * order mark). text need not be NUL-terminated.
 *
 * The value matches the JavaScript object JSON.parse builds, so
 * cp__json_stringify() of it gives Node's JSON.stringify(JSON.parse(text)):
 * - Numbers are the nearest double at any length, as in JSON.parse.
 * - A key given twice keeps the first key's position and the last value.
 * - Keys that are array indices ("0" to "4294967294" in canonical form)
 *   come first, in ascending order, then the other keys in order.
 * Items have no flag bits in their type, and valueint is valuedouble
 * saturated to int, as cJSON's parser leaves them.
 *
 * Returns 0 and the value (the caller frees it with cJSON_Delete), or
 * without a value:
 * - CP_ERR_IPC_INVALID_UTF8: overlong forms, UTF-16 surrogates, code points
 *   above U+10FFFF, truncated sequences, anywhere in the record. This wins
 *   over CP_ERR_IPC_INVALID_JSON.
 * - CP_ERR_IPC_INVALID_JSON: anything JSON.parse rejects, an empty or
 *   all-whitespace record included, as in Node.
 * - CP_ERR_IPC_UNSUPPORTED_VALUE: valid JSON that cJSON's C strings and
 *   UTF-8 cannot hold: a string with U+0000 (\u0000) or with a lone UTF-16
 *   surrogate escape (\ud800 without its pair), or nesting deeper than
 *   CJSON_NESTING_LIMIT (1000) arrays and objects. A record that nests too
 *   deep gets this code even when its structure is invalid further on.
 * - -ENOMEM. Values are allocated with cJSON_malloc(), so through the
 *   allocator set with cJSON_InitHooks() if any.
 */
int cp__json_parse(const char *text, size_t len, cJSON **value_out);

/*
 * Checks that text is one JSON value that JSON.parse accepts, at any depth
 * and with any string, U+0000 and lone surrogate escapes included. Returns
 * 0, CP_ERR_IPC_INVALID_UTF8, CP_ERR_IPC_INVALID_JSON or -ENOMEM.
 */
int cp__json_validate(const char *text, size_t len);

/*
 * Appends JSON.stringify(value) to out, as Node writes it. The text is
 * compact, with keys in the order of the cJSON list. Strings are escaped
 * as JSON.stringify escapes them: ", \, \b, \f, \n, \r, \t, other bytes
 * below 0x20 as \u00xx, the rest raw UTF-8. Numbers are written as
 * JavaScript's Number.prototype.toString writes them, with NaN and
 * infinities as null and -0 as 0.
 *
 * A cJSON_Raw item is parsed with cp__json_parse() and written again, so
 * the output is compact and byte-identical to Node's whatever spacing the
 * raw text had. Keys that appear twice in one object are written twice;
 * a Node receiver then keeps the last value at the first key's position.
 *
 * Returns 0, -ENOMEM, or CP_ERR_INVALID_ARG_VALUE for a value that is not
 * valid JSON. Invalid are: invalid UTF-8 in a string or key, a NULL string
 * or key, a cJSON_Raw item that cp__json_parse() rejects, a cJSON_Invalid
 * item, and nesting deeper than CJSON_NESTING_LIMIT, which also stops a
 * cyclic value. On failure out->len is restored, so out contains no partial
 * output.
 */
int cp__json_stringify(const cJSON *value, cp__bytes *out);

/* Room for any text cp__json_number_text() writes. The longest is 25
 * bytes, as in "-0.0000012345678901234567". */
#define CP__JSON_NUMBER_MAX 32

/*
 * Writes x, which must be finite, as JavaScript's Number.prototype.toString
 * does: the shortest digit string that reads back as x, and -0 as "0".
 * Writes no NUL. Returns the length.
 */
size_t cp__json_number_text(double x, char *out);

/* Writes value in decimal, with no NUL, and returns the length (at most
 * 20). */
size_t cp__json_int64_text(int64_t value, char *out);

/*
 * Whether Node classes the message as internal: an object whose "cmd" is a
 * string longer than 5 bytes starting with "NODE_" (case-sensitive).
 */
bool cp__json_is_internal(const cJSON *value);

#endif
