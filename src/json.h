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
 * value. Everything JSON.parse rejects is rejected, including input cJSON
 * alone accepts (leading zeros, "1.", control characters, a byte order
 * mark). text need not be NUL-terminated.
 *
 * The value matches the JavaScript object JSON.parse builds, so
 * cp__json_stringify() of it gives Node's JSON.stringify(JSON.parse(text)):
 * - Numbers are the nearest double at any length, as in JSON.parse. cJSON
 *   1.7.15 as released reads at most 63 characters of a number.
 * - A key given twice keeps the first key's position and the last value.
 *   cJSON alone keeps both members, and cJSON_GetObjectItem finds the
 *   first.
 * - Keys that are array indices ("0" to "4294967294" in canonical form)
 *   come first, in ascending order, then the other keys in order.
 *
 * Returns 0 and the value (the caller frees it with cJSON_Delete), or
 * without a value:
 * - CP_ERR_IPC_INVALID_UTF8: overlong forms, UTF-16 surrogates, code points
 *   above U+10FFFF, truncated sequences. Checked before the JSON itself, so
 *   it wins over CP_ERR_IPC_INVALID_JSON.
 * - CP_ERR_IPC_INVALID_JSON: anything JSON.parse rejects, an empty or
 *   all-whitespace record included, as in Node.
 * - CP_ERR_IPC_UNSUPPORTED_VALUE: valid JSON that cJSON's C strings and
 *   UTF-8 cannot hold: a string with U+0000 (\u0000) or with a lone UTF-16
 *   surrogate escape (\ud800 without its pair), or nesting deeper than
 *   CJSON_NESTING_LIMIT (1000) arrays and objects. A record that nests too
 *   deep gets this code even when it is invalid further on.
 * - -ENOMEM. With glibc's malloc a failed allocation inside cJSON is seen
 *   through errno; an allocator set with cJSON_InitHooks that leaves errno
 *   alone makes it CP_ERR_IPC_INVALID_JSON instead.
 */
int cp__json_parse(const char *text, size_t len, cJSON **value_out);

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
