/*
 * Tests for the StringDecoder behind cp_stream_set_encoding(). The expected
 * text in the tables is Node v20.20.2's output, obtained by feeding the same
 * chunks to `new (require('string_decoder').StringDecoder)(encoding)` and
 * calling write() once per chunk, then end().
 */

/* childproc.h includes uv.h, which needs POSIX types that strict C17
 * hides. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "childproc.h"
#include "encoding.h"

#define FFFD "\xef\xbf\xbd"

/* A byte string literal that may contain NUL bytes. */
#define B(literal)                                                             \
  { literal, sizeof(literal) - 1 }

typedef struct byte_string {
  const char *data;
  size_t len;
} byte_string;

#define MAX_CHUNKS 5

typedef struct decoder_case {
  const char *name;
  cp__encoding encoding;
  size_t chunk_count;
  byte_string chunks[MAX_CHUNKS];
  byte_string outputs[MAX_CHUNKS + 1]; /* one per write, then end() */
} decoder_case;

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

/* Fails with both texts in hex, so that a mismatch in invisible bytes can
 * be read from the test log. */
static void assert_text(const char *what, const char *text, size_t len,
                        const char *expected, size_t expected_len) {
  assert_non_null(text);
  assert_int_equal(text[len], '\0');

  if (len != expected_len || memcmp(text, expected, len) != 0) {
    char got_hex[512];
    char expected_hex[512];
    format_hex(text, len, got_hex, sizeof got_hex);
    format_hex(expected, expected_len, expected_hex, sizeof expected_hex);
    fail_msg("%s: got [%s], expected [%s]", what, got_hex, expected_hex);
  }
}

static void expect_write(cp__decoder *decoder, const char *bytes, size_t len,
                         const char *expected, size_t expected_len) {
  const char *text = NULL;
  size_t text_len = SIZE_MAX;

  assert_int_equal(cp__decoder_write(decoder, bytes, len, &text, &text_len), 0);
  assert_text("write", text, text_len, expected, expected_len);
}

static void expect_end(cp__decoder *decoder, const char *expected,
                       size_t expected_len) {
  const char *text = NULL;
  size_t text_len = SIZE_MAX;

  assert_int_equal(cp__decoder_end(decoder, &text, &text_len), 0);
  assert_text("end", text, text_len, expected, expected_len);
}

static void run_case(const decoder_case *test_case) {
  cp__decoder decoder;
  cp__decoder_init(&decoder, test_case->encoding);

  for (size_t i = 0; i <= test_case->chunk_count; i++) {
    const byte_string *expected = &test_case->outputs[i];
    const char *text = NULL;
    size_t text_len = SIZE_MAX;
    char what[160];
    int err;

    if (i < test_case->chunk_count) {
      const byte_string *chunk = &test_case->chunks[i];
      snprintf(what, sizeof what, "%s, write %zu", test_case->name, i + 1);
      err = cp__decoder_write(&decoder, chunk->data, chunk->len, &text,
                              &text_len);
    } else {
      snprintf(what, sizeof what, "%s, end", test_case->name);
      err = cp__decoder_end(&decoder, &text, &text_len);
    }

    assert_int_equal(err, 0);
    assert_text(what, text, text_len, expected->data, expected->len);
  }

  cp__decoder_free(&decoder);
}

static void run_cases(const decoder_case *cases, size_t count) {
  for (size_t i = 0; i < count; i++)
    run_case(&cases[i]);
}

/* The largest character boundary at or before cut in valid UTF-8: all of
 * the input a decoder may have emitted after the first cut bytes. */
static size_t boundary_at_or_before(const char *input, size_t len, size_t cut) {
  while (cut > 0 && cut < len && ((unsigned char)input[cut] & 0xC0) == 0x80)
    cut--;

  return cut;
}

/* Writes input in chunks ending at each of the cut positions, checking
 * that every write emits exactly the whole characters completed so far. */
static void expect_split_emits_whole_characters(const char *input,
                                                const size_t *cuts,
                                                size_t cut_count) {
  size_t len = strlen(input);
  size_t fed = 0;
  size_t emitted = 0;
  cp__decoder decoder;
  cp__decoder_init(&decoder, CP__ENCODING_UTF8);

  for (size_t i = 0; i <= cut_count; i++) {
    size_t cut = i < cut_count ? cuts[i] : len;
    size_t boundary = boundary_at_or_before(input, len, cut);

    expect_write(&decoder, input + fed, cut - fed, input + emitted,
                 boundary - emitted);
    fed = cut;
    emitted = boundary;
  }

  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
}

/* ------------------------------------------------------------------------
 * Encoding names
 * ------------------------------------------------------------------------ */

static void encoding_parse_accepts_node_names(void **state) {
  static const struct {
    const char *name;
    cp__encoding encoding;
  } names[] = {
      {"utf8", CP__ENCODING_UTF8},     {"UTF8", CP__ENCODING_UTF8},
      {"utf-8", CP__ENCODING_UTF8},    {"UTF-8", CP__ENCODING_UTF8},
      {"Utf-8", CP__ENCODING_UTF8},    {"latin1", CP__ENCODING_LATIN1},
      {"LATIN1", CP__ENCODING_LATIN1}, {"binary", CP__ENCODING_LATIN1},
      {"Binary", CP__ENCODING_LATIN1}, {"hex", CP__ENCODING_HEX},
      {"HEX", CP__ENCODING_HEX},       {"base64", CP__ENCODING_BASE64},
      {"BASE64", CP__ENCODING_BASE64}, {"Base64", CP__ENCODING_BASE64},
  };
  (void)state;

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    cp__encoding encoding = CP__ENCODING_NONE;
    assert_int_equal(cp__encoding_parse(names[i].name, &encoding), 0);
    assert_int_equal(encoding, names[i].encoding);
  }
}

static void encoding_parse_null_is_none(void **state) {
  cp__encoding encoding = CP__ENCODING_HEX;
  (void)state;

  assert_int_equal(cp__encoding_parse(NULL, &encoding), 0);
  assert_int_equal(encoding, CP__ENCODING_NONE);
}

/* Node v20 accepts some of these (ascii, utf16le, base64url, and "" as
 * utf8), but this decoder supports only the six names above. */
static void encoding_parse_rejects_unknown(void **state) {
  static const char *const names[] = {
      "",      "utf",     "utf8 ",  " utf8",     "utf_8", "utf 8",
      "latin", "latin-1", "ascii",  "utf16le",   "ucs2",  "base64url",
      "hex ",  "base-64", "utf8\n", "utf-8-bom",
  };
  (void)state;

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    cp__encoding encoding = CP__ENCODING_HEX;
    assert_int_equal(cp__encoding_parse(names[i], &encoding),
                     CP_ERR_UNKNOWN_ENCODING);
    assert_int_equal(encoding, CP__ENCODING_HEX);
  }
}

/* ------------------------------------------------------------------------
 * UTF-8, valid input
 * ------------------------------------------------------------------------ */

static const char *const multibyte_characters[] = {
    "\xc3\xa9",         /* U+00E9, 2 bytes */
    "\xe2\x82\xac",     /* U+20AC, 3 bytes */
    "\xf0\x9f\x98\x80", /* U+1F600, 4 bytes */
    "\xdf\xbf",         /* U+07FF, the last 2-byte character */
    "\xef\xbf\xbf",     /* U+FFFF, the last 3-byte character */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last character */
};

#define MULTIBYTE_CHARACTER_COUNT                                              \
  (sizeof multibyte_characters / sizeof multibyte_characters[0])

static void decoder_utf8_ascii_passes_through(void **state) {
  static const char input[] = "hello, world\n";
  cp__decoder decoder;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, input, strlen(input), input, strlen(input));
  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
}

static void decoder_utf8_split_across_two_chunks(void **state) {
  (void)state;

  for (size_t c = 0; c < MULTIBYTE_CHARACTER_COUNT; c++) {
    char input[16];
    snprintf(input, sizeof input, "a%sb", multibyte_characters[c]);

    for (size_t cut = 0; cut <= strlen(input); cut++)
      expect_split_emits_whole_characters(input, &cut, 1);
  }
}

/* A stream releases the text between reads: the held-back bytes of a
 * character stay, and the next write allocates a new buffer. */
static void decoder_release_text_keeps_pending_bytes(void **state) {
  cp__decoder decoder;
  const char *text;
  size_t text_len;

  (void)state;
  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  assert_int_equal(cp__decoder_write(&decoder, "ab\xE2\x82", 4, &text,
                                     &text_len),
                   0);
  assert_int_equal(text_len, 2);
  assert_memory_equal(text, "ab", 2);

  cp__decoder_release_text(&decoder);
  assert_null(decoder.text);
  assert_int_equal(decoder.pending_len, 2);

  assert_int_equal(cp__decoder_write(&decoder, "\xAC!", 2, &text, &text_len),
                   0);
  assert_int_equal(text_len, 4);
  assert_string_equal(text, "\xE2\x82\xAC!");
  cp__decoder_free(&decoder);
}

static void decoder_utf8_split_across_three_chunks(void **state) {
  (void)state;

  for (size_t c = 0; c < MULTIBYTE_CHARACTER_COUNT; c++) {
    char input[16];
    snprintf(input, sizeof input, "a%sb", multibyte_characters[c]);
    size_t len = strlen(input);

    for (size_t first = 0; first <= len; first++) {
      for (size_t second = first; second <= len; second++) {
        size_t cuts[] = {first, second};
        expect_split_emits_whole_characters(input, cuts, 2);
      }
    }
  }
}

/* Two multi-byte characters in a row, so that a held-back character is
 * completed by a chunk that also holds back the next one. */
static void decoder_utf8_split_adjacent_characters(void **state) {
  (void)state;

  for (size_t c = 0; c < MULTIBYTE_CHARACTER_COUNT; c++) {
    for (size_t d = 0; d < MULTIBYTE_CHARACTER_COUNT; d++) {
      char input[16];
      snprintf(input, sizeof input, "%s%s", multibyte_characters[c],
               multibyte_characters[d]);
      size_t len = strlen(input);

      for (size_t first = 0; first <= len; first++) {
        for (size_t second = first; second <= len; second++) {
          size_t cuts[] = {first, second};
          expect_split_emits_whole_characters(input, cuts, 2);
        }
      }
    }
  }
}

static void decoder_utf8_one_byte_at_a_time(void **state) {
  static const char input[] = "a\xc3\xa9"
                              "b\xe2\x82\xac\xf0\x9f\x98\x80"
                              "c\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf"
                              "d";
  size_t len = sizeof input - 1;
  size_t cuts[sizeof input];
  (void)state;

  for (size_t i = 0; i < len; i++)
    cuts[i] = i + 1;

  expect_split_emits_whole_characters(input, cuts, len);
}

/* Big enough for the eight-byte ASCII steps and for several growths of
 * the output buffer, and checked byte for byte. */
static void decoder_utf8_large_chunk_copied(void **state) {
  static const char pattern[] = "plain ASCII text \xc3\xa9\xe2\x82\xac"
                                "\xf0\x9f\x98\x80 and more\n";
  size_t pattern_len = sizeof pattern - 1;
  size_t len = pattern_len * 20000;
  char *input = malloc(len);
  cp__decoder decoder;
  (void)state;

  assert_non_null(input);
  for (size_t i = 0; i < len; i += pattern_len)
    memcpy(input + i, pattern, pattern_len);

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, input, len, input, len);
  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
  free(input);
}

/* Every byte becomes three, the maximum text a chunk can produce. */
static void decoder_utf8_large_invalid_chunk(void **state) {
  size_t len = 65536;
  char *input = malloc(len);
  char *expected = malloc(3 * len);
  cp__decoder decoder;
  (void)state;

  assert_non_null(input);
  assert_non_null(expected);
  memset(input, 0xff, len);
  for (size_t i = 0; i < len; i++)
    memcpy(expected + 3 * i, FFFD, 3);

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, input, len, expected, 3 * len);
  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
  free(expected);
  free(input);
}

/* A non-ASCII byte at every offset of a run of ASCII, so that it lands in
 * each lane of the eight-byte ASCII steps and in the byte-wise rest. */
static void decoder_utf8_non_ascii_at_every_offset(void **state) {
  static const char ascii[] = "0123456789abcdefghijklmnopqrstuv";
  (void)state;

  for (size_t offset = 0; offset < sizeof ascii - 1; offset++) {
    char input[64];
    char expected[64];
    cp__decoder decoder;

    memcpy(input, ascii, sizeof ascii - 1);
    memcpy(expected, ascii, sizeof ascii - 1);

    /* A valid character is copied unchanged. */
    memcpy(input + offset, "\xc3\xa9", 2);
    cp__decoder_init(&decoder, CP__ENCODING_UTF8);
    expect_write(&decoder, input, offset + 2, input, offset + 2);

    /* A lone continuation byte becomes U+FFFD in place. */
    memcpy(input, ascii, sizeof ascii - 1);
    input[offset] = '\x80';
    memcpy(expected + offset, FFFD, 3);
    memcpy(expected + offset + 3, ascii + offset + 1,
           sizeof ascii - 2 - offset);
    expect_write(&decoder, input, sizeof ascii - 1, expected, sizeof ascii + 1);
    expect_end(&decoder, "", 0);
    cp__decoder_free(&decoder);
  }
}

/* ------------------------------------------------------------------------
 * UTF-8, invalid input (expected text: Node v20.20.2's output)
 * ------------------------------------------------------------------------ */

static void decoder_utf8_invalid_bytes_match_node(void **state) {
  /* Node v20.20.2's output for each chunk, then for end(). */
  /* clang-format off */
  static const decoder_case cases[] = {
      {"lone continuation byte", CP__ENCODING_UTF8, 1,
       {B("a\x80" "b")},
       {B("a" FFFD "b"), B("")}},
      {"continuation bytes then ASCII", CP__ENCODING_UTF8, 1,
       {B("\x80\xbf" "A")},
       {B(FFFD FFFD "A"), B("")}},
      {"overlong C0 AF", CP__ENCODING_UTF8, 1,
       {B("\xc0\xaf")},
       {B(FFFD FFFD), B("")}},
      {"overlong C1 BF", CP__ENCODING_UTF8, 1,
       {B("\xc1\xbf")},
       {B(FFFD FFFD), B("")}},
      {"overlong E0 80 AF", CP__ENCODING_UTF8, 1,
       {B("\xe0\x80\xaf")},
       {B(FFFD FFFD FFFD), B("")}},
      {"overlong F0 80 80 AF", CP__ENCODING_UTF8, 1,
       {B("\xf0\x80\x80\xaf")},
       {B(FFFD FFFD FFFD FFFD), B("")}},
      {"surrogate ED A0 80", CP__ENCODING_UTF8, 1,
       {B("\xed\xa0\x80")},
       {B(FFFD FFFD FFFD), B("")}},
      {"surrogate ED BF BF", CP__ENCODING_UTF8, 1,
       {B("\xed\xbf\xbf")},
       {B(FFFD FFFD FFFD), B("")}},
      {"above U+10FFFF F4 90 80 80", CP__ENCODING_UTF8, 1,
       {B("\xf4\x90\x80\x80")},
       {B(FFFD FFFD FFFD FFFD), B("")}},
      {"U+10FFFF F4 8F BF BF", CP__ENCODING_UTF8, 1,
       {B("\xf4\x8f\xbf\xbf")},
       {B("\xf4\x8f\xbf\xbf"), B("")}},
      {"F5 80 80 80", CP__ENCODING_UTF8, 1,
       {B("\xf5\x80\x80\x80")},
       {B(FFFD FFFD FFFD FFFD), B("")}},
      {"F8 88 80 80 80", CP__ENCODING_UTF8, 1,
       {B("\xf8\x88\x80\x80\x80")},
       {B(FFFD FFFD FFFD FFFD FFFD), B("")}},
      {"FE FF between ASCII", CP__ENCODING_UTF8, 1,
       {B("a\xfe\xff" "b")},
       {B("a" FFFD FFFD "b"), B("")}},
      {"truncated 4-byte then ASCII", CP__ENCODING_UTF8, 1,
       {B("\xf0\x9f\x98" "A")},
       {B(FFFD "A"), B("")}},
      {"truncated 3-byte then ASCII", CP__ENCODING_UTF8, 1,
       {B("\xe2\x82" "A")},
       {B(FFFD "A"), B("")}},
      {"3-byte lead then ASCII", CP__ENCODING_UTF8, 1,
       {B("\xe1" "A")},
       {B(FFFD "A"), B("")}},
      {"extra continuation byte", CP__ENCODING_UTF8, 1,
       {B("\xc3\xa9\xa9")},
       {B("\xc3\xa9" FFFD), B("")}},
      {"truncated 3-byte then 2-byte", CP__ENCODING_UTF8, 1,
       {B("\xe2\x82\xc3\xa9")},
       {B(FFFD "\xc3\xa9"), B("")}},
      {"NUL byte", CP__ENCODING_UTF8, 1,
       {B("a\x00" "b")},
       {B("a\x00" "b"), B("")}},
      {"five-byte tail not held", CP__ENCODING_UTF8, 1,
       {B("\xf0\x9f\x98\x80\x80")},
       {B("\xf0\x9f\x98\x80" FFFD), B("")}},
  };
  /* clang-format on */
  (void)state;

  run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void decoder_utf8_invalid_across_chunks_match_node(void **state) {
  /* Node v20.20.2's output for each chunk, then for end(). */
  /* clang-format off */
  static const decoder_case cases[] = {
      {"F8 at chunk end not held", CP__ENCODING_UTF8, 2,
       {B("a\xf8"), B("\x80")},
       {B("a" FFFD), B(FFFD), B("")}},
      {"held 4-byte cut off by ASCII", CP__ENCODING_UTF8, 2,
       {B("a\xf0\x9f\x98"), B("A")},
       {B("a"), B(FFFD "A"), B("")}},
      {"held 3-byte cut off by lead byte", CP__ENCODING_UTF8, 2,
       {B("\xe2\x82"), B("\xc3\xa9")},
       {B(""), B(FFFD "\xc3\xa9"), B("")}},
      {"held 3-byte cut off by invalid byte", CP__ENCODING_UTF8, 2,
       {B("\xe2"), B("\x82\xff" "A")},
       {B(""), B(FFFD FFFD "A"), B("")}},
      {"held E0 filled with 80 80", CP__ENCODING_UTF8, 3,
       {B("\xe0"), B("\x80"), B("\x80" "A")},
       {B(""), B(""), B(FFFD FFFD FFFD "A"), B("")}},
      {"held C0 filled with 80", CP__ENCODING_UTF8, 2,
       {B("a\xc0"), B("\x80")},
       {B("a"), B(FFFD FFFD), B("")}},
      {"held F5 cut off by ASCII", CP__ENCODING_UTF8, 2,
       {B("\xf5"), B("A")},
       {B(""), B(FFFD "A"), B("")}},
      {"held surrogate prefix", CP__ENCODING_UTF8, 2,
       {B("\xed\xa0"), B("\x80")},
       {B(""), B(FFFD FFFD FFFD), B("")}},
      {"held 2-byte then extra continuation", CP__ENCODING_UTF8, 2,
       {B("\xc3"), B("\xa9\xa9")},
       {B(""), B("\xc3\xa9" FFFD), B("")}},
      {"held overlong F0 80 filled", CP__ENCODING_UTF8, 2,
       {B("\xf0\x80"), B("\x80\xaf" "A")},
       {B(""), B(FFFD FFFD FFFD FFFD "A"), B("")}},
  };
  /* clang-format on */
  (void)state;

  run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void decoder_utf8_end_flushes_held_bytes(void **state) {
  /* Node v20.20.2's output for each chunk, then for end(). */
  /* clang-format off */
  static const decoder_case cases[] = {
      {"end after incomplete 3-byte", CP__ENCODING_UTF8, 1,
       {B("a\xe2\x82")},
       {B("a"), B(FFFD)}},
      {"end after incomplete 4-byte", CP__ENCODING_UTF8, 1,
       {B("\xf0\x9f\x98")},
       {B(""), B(FFFD)}},
      {"end after held E0 80", CP__ENCODING_UTF8, 1,
       {B("\xe0\x80")},
       {B(""), B(FFFD FFFD)}},
      {"end after held F0 80 80", CP__ENCODING_UTF8, 1,
       {B("\xf0\x80\x80")},
       {B(""), B(FFFD FFFD FFFD)}},
      {"end after held C0", CP__ENCODING_UTF8, 1,
       {B("\xc0")},
       {B(""), B(FFFD)}},
      {"end after held surrogate prefix", CP__ENCODING_UTF8, 2,
       {B("\xed"), B("\xa0")},
       {B(""), B(""), B(FFFD FFFD)}},
  };
  /* clang-format on */
  (void)state;

  run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* ------------------------------------------------------------------------
 * end() and the decoder's life cycle
 * ------------------------------------------------------------------------ */

static void decoder_end_without_held_bytes_is_empty(void **state) {
  static const struct {
    cp__encoding encoding;
    const char *abc; /* the text for the bytes "abc" */
  } encodings[] = {
      {CP__ENCODING_NONE, "abc"},    {CP__ENCODING_UTF8, "abc"},
      {CP__ENCODING_LATIN1, "abc"},  {CP__ENCODING_HEX, "616263"},
      {CP__ENCODING_BASE64, "YWJj"},
  };
  (void)state;

  for (size_t i = 0; i < sizeof encodings / sizeof encodings[0]; i++) {
    const char *abc = encodings[i].abc;
    cp__decoder decoder;
    cp__decoder_init(&decoder, encodings[i].encoding);

    /* Before any write, and after a write that held nothing back. */
    expect_end(&decoder, "", 0);
    expect_write(&decoder, "abc", 3, abc, strlen(abc));
    expect_end(&decoder, "", 0);
    cp__decoder_free(&decoder);
  }
}

static void decoder_end_resets_held_bytes(void **state) {
  cp__decoder decoder;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, "\xe2\x82", 2, "", 0);
  expect_end(&decoder, FFFD, 3);

  /* The held bytes are gone, so a continuation byte is now invalid. */
  expect_end(&decoder, "", 0);
  expect_write(&decoder, "\xac", 1, FFFD, 3);
  cp__decoder_free(&decoder);

  cp__decoder_init(&decoder, CP__ENCODING_BASE64);
  expect_write(&decoder, "ab", 2, "", 0);
  expect_end(&decoder, "YWI=", 4);
  expect_write(&decoder, "abc", 3, "YWJj", 4);
  cp__decoder_free(&decoder);
}

/* Node returns "" for an empty chunk and keeps what it holds back. */
static void decoder_write_empty_chunk_keeps_held_bytes(void **state) {
  cp__decoder decoder;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, NULL, 0, "", 0);
  expect_write(&decoder, "\xf0\x9f", 2, "", 0);
  expect_write(&decoder, NULL, 0, "", 0);
  expect_write(&decoder, "\x98\x80", 2, "\xf0\x9f\x98\x80", 4);
  cp__decoder_free(&decoder);
}

/* A length whose worst-case text does not fit in size_t fails before any
 * byte is read, and the held-back bytes survive for the next write. */
static void decoder_write_oversized_len_enomem(void **state) {
  static const char byte = 'x';
  cp__decoder decoder;
  const char *text = NULL;
  size_t text_len = 0;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_UTF8);
  expect_write(&decoder, "\xe2\x82", 2, "", 0);
  assert_int_equal(
      cp__decoder_write(&decoder, &byte, SIZE_MAX / 2, &text, &text_len),
      -ENOMEM);
  expect_write(&decoder, "\xac", 1, "\xe2\x82\xac", 3);
  cp__decoder_free(&decoder);
}

static void decoder_text_reused_between_writes(void **state) {
  cp__decoder decoder;
  const char *first = NULL;
  const char *second = NULL;
  size_t len = 0;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_HEX);
  assert_int_equal(cp__decoder_write(&decoder, "ab", 2, &first, &len), 0);
  assert_int_equal(cp__decoder_write(&decoder, "c", 1, &second, &len), 0);
  assert_ptr_equal(first, second);
  assert_string_equal(second, "63");
  cp__decoder_free(&decoder);
}

static void decoder_none_copies_bytes(void **state) {
  cp__decoder decoder;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_NONE);
  expect_write(&decoder, "\xe2\x82", 2, "\xe2\x82", 2);
  expect_write(&decoder, "\x00\xff!", 3, "\x00\xff!", 3);
  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
}

/* ------------------------------------------------------------------------
 * latin1, hex, base64 (expected text: Node v20.20.2's output)
 * ------------------------------------------------------------------------ */

static void decoder_latin1_hex_match_node(void **state) {
  /* Node v20.20.2's output for each chunk, then for end(). */
  /* clang-format off */
  static const decoder_case cases[] = {
      {"latin1 bytes", CP__ENCODING_LATIN1, 2,
       {B("A\x80\xc3"), B("\xa9\xff\x00")},
       {B("A\xc2\x80\xc3\x83"), B("\xc2\xa9\xc3\xbf\x00"), B("")}},
      {"hex bytes", CP__ENCODING_HEX, 2,
       {B("\x00\x0f\xab"), B("\xff")},
       {B("000fab"), B("ff"), B("")}},
      {"hex one byte at a time", CP__ENCODING_HEX, 3,
       {B("\x7f"), B("\x80"), B("\x0a")},
       {B("7f"), B("80"), B("0a"), B("")}},
  };
  /* clang-format on */
  (void)state;

  run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Each byte value is the code point of the same value. */
static void decoder_latin1_every_byte(void **state) {
  cp__decoder decoder;
  (void)state;

  cp__decoder_init(&decoder, CP__ENCODING_LATIN1);
  for (unsigned value = 0; value < 256; value++) {
    char byte = (char)value;
    char expected[2];
    size_t expected_len;

    if (value < 0x80) {
      expected[0] = (char)value;
      expected_len = 1;
    } else {
      expected[0] = (char)(0xC0 | (value >> 6));
      expected[1] = (char)(0x80 | (value & 0x3F));
      expected_len = 2;
    }

    expect_write(&decoder, &byte, 1, expected, expected_len);
  }

  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
}

static void decoder_hex_every_byte(void **state) {
  static const char digits[] = "0123456789abcdef";
  char input[256];
  char expected[512];
  cp__decoder decoder;
  (void)state;

  for (unsigned value = 0; value < 256; value++) {
    input[value] = (char)value;
    expected[2 * value] = digits[value / 16];
    expected[2 * value + 1] = digits[value % 16];
  }

  cp__decoder_init(&decoder, CP__ENCODING_HEX);
  expect_write(&decoder, input, sizeof input, expected, sizeof expected);
  expect_end(&decoder, "", 0);
  cp__decoder_free(&decoder);
}

static void decoder_base64_every_remainder(void **state) {
  /* Node v20.20.2's output for each chunk, then for end(). */
  /* clang-format off */
  static const decoder_case cases[] = {
      {"empty input", CP__ENCODING_BASE64, 1, {B("")}, {B(""), B("")}},
      {"1 byte", CP__ENCODING_BASE64, 1, {B("a")}, {B(""), B("YQ==")}},
      {"2 bytes", CP__ENCODING_BASE64, 1, {B("ab")}, {B(""), B("YWI=")}},
      {"3 bytes", CP__ENCODING_BASE64, 1, {B("abc")}, {B("YWJj"), B("")}},
      {"4 bytes", CP__ENCODING_BASE64, 1,
       {B("abcd")},
       {B("YWJj"), B("ZA==")}},
      {"5 bytes", CP__ENCODING_BASE64, 1,
       {B("abcde")},
       {B("YWJj"), B("ZGU=")}},
      {"6 bytes with + and /", CP__ENCODING_BASE64, 1,
       {B("\x00\xff\xfe>?\xfb")},
       {B("AP/+Pj/7"), B("")}},
      {"held 1 then 1", CP__ENCODING_BASE64, 2,
       {B("a"), B("b")},
       {B(""), B(""), B("YWI=")}},
      {"held 1 then 2", CP__ENCODING_BASE64, 2,
       {B("a"), B("bc")},
       {B(""), B("YWJj"), B("")}},
      {"held 1 then 3", CP__ENCODING_BASE64, 2,
       {B("a"), B("bcd")},
       {B(""), B("YWJj"), B("ZA==")}},
      {"held 1 then 4", CP__ENCODING_BASE64, 2,
       {B("a"), B("bcde")},
       {B(""), B("YWJj"), B("ZGU=")}},
      {"held 2 then 1", CP__ENCODING_BASE64, 2,
       {B("ab"), B("c")},
       {B(""), B("YWJj"), B("")}},
      {"held 2 then 2", CP__ENCODING_BASE64, 2,
       {B("ab"), B("cd")},
       {B(""), B("YWJj"), B("ZA==")}},
      {"held 2 then 3", CP__ENCODING_BASE64, 2,
       {B("ab"), B("cde")},
       {B(""), B("YWJj"), B("ZGU=")}},
      {"held 2 then 4", CP__ENCODING_BASE64, 2,
       {B("ab"), B("cdef")},
       {B(""), B("YWJjZGVm"), B("")}},
      {"one byte at a time", CP__ENCODING_BASE64, 5,
       {B("a"), B("b"), B("c"), B("d"), B("e")},
       {B(""), B(""), B("YWJj"), B(""), B(""), B("ZGU=")}},
      {"empty chunk keeps held bytes", CP__ENCODING_BASE64, 3,
       {B("a"), B(""), B("b")},
       {B(""), B(""), B(""), B("YWI=")}},
  };
  /* clang-format on */
  (void)state;

  run_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Every write emits whole groups only, and the writes plus end() give
 * Buffer.from(input).toString('base64') in Node v20.20.2. */
static void decoder_base64_split_across_two_chunks(void **state) {
  static const char input[] = "abcdefghi";
  static const char *const whole[] = {
      "",         "YQ==",     "YWI=",         "YWJj",         "YWJjZA==",
      "YWJjZGU=", "YWJjZGVm", "YWJjZGVmZw==", "YWJjZGVmZ2g=", "YWJjZGVmZ2hp",
  };
  (void)state;

  for (size_t len = 0; len < sizeof input; len++) {
    for (size_t cut = 0; cut <= len; cut++) {
      cp__decoder decoder;
      const char *text;
      size_t text_len;
      char joined[32] = "";

      cp__decoder_init(&decoder, CP__ENCODING_BASE64);

      assert_int_equal(
          cp__decoder_write(&decoder, input, cut, &text, &text_len), 0);
      assert_int_equal(text_len, cut / 3 * 4);
      assert_null(strchr(text, '='));
      strcat(joined, text);

      assert_int_equal(
          cp__decoder_write(&decoder, input + cut, len - cut, &text, &text_len),
          0);
      assert_int_equal(text_len, (len / 3 - cut / 3) * 4);
      assert_null(strchr(text, '='));
      strcat(joined, text);

      assert_int_equal(cp__decoder_end(&decoder, &text, &text_len), 0);
      assert_int_equal(text_len, len % 3 == 0 ? 0 : 4);
      strcat(joined, text);

      assert_string_equal(joined, whole[len]);
      cp__decoder_free(&decoder);
    }
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encoding_parse_accepts_node_names),
      cmocka_unit_test(encoding_parse_null_is_none),
      cmocka_unit_test(encoding_parse_rejects_unknown),
      cmocka_unit_test(decoder_utf8_ascii_passes_through),
      cmocka_unit_test(decoder_utf8_split_across_two_chunks),
      cmocka_unit_test(decoder_release_text_keeps_pending_bytes),
      cmocka_unit_test(decoder_utf8_split_across_three_chunks),
      cmocka_unit_test(decoder_utf8_split_adjacent_characters),
      cmocka_unit_test(decoder_utf8_one_byte_at_a_time),
      cmocka_unit_test(decoder_utf8_large_chunk_copied),
      cmocka_unit_test(decoder_utf8_large_invalid_chunk),
      cmocka_unit_test(decoder_utf8_non_ascii_at_every_offset),
      cmocka_unit_test(decoder_utf8_invalid_bytes_match_node),
      cmocka_unit_test(decoder_utf8_invalid_across_chunks_match_node),
      cmocka_unit_test(decoder_utf8_end_flushes_held_bytes),
      cmocka_unit_test(decoder_end_without_held_bytes_is_empty),
      cmocka_unit_test(decoder_end_resets_held_bytes),
      cmocka_unit_test(decoder_write_empty_chunk_keeps_held_bytes),
      cmocka_unit_test(decoder_write_oversized_len_enomem),
      cmocka_unit_test(decoder_text_reused_between_writes),
      cmocka_unit_test(decoder_none_copies_bytes),
      cmocka_unit_test(decoder_latin1_hex_match_node),
      cmocka_unit_test(decoder_latin1_every_byte),
      cmocka_unit_test(decoder_hex_every_byte),
      cmocka_unit_test(decoder_base64_every_remainder),
      cmocka_unit_test(decoder_base64_split_across_two_chunks),
  };

  cmocka_set_test_filter(argc > 1 ? argv[1] : NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
