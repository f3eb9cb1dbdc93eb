/*
 * Numbers as JavaScript's Number.prototype.toString writes them, which is
 * how JSON.stringify writes them.
 *
 * ECMAScript's Number::toString(x) takes the fewest decimal digits s (k of
 * them, k >= 1) such that s * 10^(n-k) reads back as x, choosing the s
 * closest to x when several have k digits. The digits then go out as an
 * integer when k <= n <= 21, as a decimal fraction when -6 < n <= 21, and
 * in exponent form otherwise.
 *
 * glibc has no shortest printer, but printf("%.*e") gives correctly
 * rounded digits at any precision and strtod reads decimals back correctly
 * rounded, so the digits are found by trying precisions. Numbers with few
 * decimal places take a cheaper path first: x = i / 10^j, checked with one
 * division.
 */
#include "json.h"

#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value 0.d1 d2 ... dk * 10^n, with digits d1 ... dk. */
typedef struct decimal {
  char digits[24];
  int k;
  int n;
} decimal;

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t write_uint64(char *out, uint64_t value) {
  char reversed[24];
  size_t count = 0;
  size_t len = 0;

  do {
    reversed[count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);

  while (count > 0)
    out[len++] = reversed[--count];
  return len;
}

size_t cp__json_int64_text(int64_t value, char *out) {
  if (value >= 0)
    return write_uint64(out, (uint64_t)value);
  out[0] = '-';
  return 1 + write_uint64(out + 1, 0 - (uint64_t)value);
}

static void decimal_trim_zeros(decimal *d) {
  while (d->k > 1 && d->digits[d->k - 1] == '0')
    d->k--;
}

/* Adds one unit in the last digit. */
static void decimal_increment(decimal *d) {
  int i = d->k - 1;

  while (i >= 0 && d->digits[i] == '9')
    d->digits[i--] = '0';
  if (i >= 0) {
    d->digits[i]++;
    return;
  }
  /* 99...9 + 1 = 100...0, one place higher. */
  d->digits[0] = '1';
  d->n++;
}

/* Reads d back as a double. The text has no decimal point, so the locale
 * does not change how strtod reads it. */
static double decimal_value(const decimal *d) {
  char text[48];
  size_t len = (size_t)d->k;

  memcpy(text, d->digits, len);
  text[len++] = 'e';
  len += cp__json_int64_text((int64_t)d->n - d->k, text + len);
  text[len] = '\0';
  return strtod(text, NULL);
}

/* Sets d to x (positive, finite) rounded to precision significant digits
 * (at most 17), as glibc's printf rounds: exactly, ties to even. */
static void decimal_from_printf(double x, int precision, decimal *d) {
  char text[64];
  const char *c = text;

  snprintf(text, sizeof text, "%.*e", precision - 1, x);

  /* The locale's decimal point may be any non-digit, so every non-digit
   * before the 'e' is skipped rather than a '.' expected. */
  d->k = 0;
  for (; *c != 'e'; c++) {
    if (is_digit(*c))
      d->digits[d->k++] = *c;
  }
  d->n = (int)strtol(c + 1, NULL, 10) + 1;
}

/*
 * Sets d to x rounded to precision digits, given r17, x rounded to 17
 * digits. Returns false when r17 cannot decide the rounding. x is within
 * half a unit of r17's last digit. So x lies on the same side as r17 of
 * every halfway point between two precision-digit decimals, unless r17 is
 * such a halfway point itself (its digits after precision are 5, 0, ...).
 */
static bool decimal_round(const decimal *r17, int precision, decimal *d) {
  bool halfway = r17->digits[precision] == '5';

  for (int i = precision + 1; halfway && i < r17->k; i++)
    halfway = r17->digits[i] == '0';
  if (halfway)
    return false;

  *d = *r17;
  d->k = precision;
  if (r17->digits[precision] >= '5')
    decimal_increment(d);
  return true;
}

/* Sets d to x (positive, finite) rounded to precision digits, from r17
 * when it can tell, else from printf. */
static void decimal_at_precision(double x, const decimal *r17, int precision,
                                 decimal *d) {
  if (!decimal_round(r17, precision, d))
    decimal_from_printf(x, precision, d);
}

/* Powers of ten up to 10^22, the last one a double represents exactly. */
static const double powers_of_ten[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/*
 * Finds the digits of x (positive, finite) when x is the double
 * nearest to i / 10^j for an integer i below 2^52 and j <= 22: numbers
 * with few decimal places. Returns false otherwise.
 *
 * i and 10^j are exact doubles, so the division rounds i / 10^j exactly
 * as strtod rounds the decimal i * 10^-j. One comparison then shows whether
 * that decimal reads back as x. The first j that works gives the fewest
 * digits. While x * 10^j < 2^52, the doubles around x are less than 10^-j
 * apart, so at most one decimal with j places reads back, and it is within
 * one of x * 10^j rounded.
 */
static bool short_decimal(double x, decimal *d) {
#if FLT_EVAL_METHOD != 0
  /* Wider intermediate results (x87) would break the exact comparison. */
  (void)x;
  (void)d;
  return false;
#else
  for (int j = 1; j < (int)(sizeof powers_of_ten / sizeof *powers_of_ten);
       j++) {
    double scaled = x * powers_of_ten[j];
    double rounded;

    if (scaled >= 0x1p52)
      return false;
    rounded = (double)(uint64_t)(scaled + 0.5);
    for (int offset = -1; offset <= 1; offset++) {
      double i = rounded + offset;
      if (i < 1 || i / powers_of_ten[j] != x)
        continue;
      d->k = (int)write_uint64(d->digits, (uint64_t)i);
      d->n = d->k - j;
      decimal_trim_zeros(d);
      return true;
    }
  }
  return false;
#endif
}

/*
 * Sets d to the shortest digits of x (positive, finite, not 0).
 *
 * Above DBL_MIN, any decimal of at most 15 significant digits (DBL_DIG)
 * comes back unchanged from a round trip through double. So if some such
 * decimal reads back as x, it is x rounded to 15 digits less trailing
 * zeros, and no shorter one exists. Otherwise 16 digits are tried, then
 * 17, which always read back (DBL_DECIMAL_DIG).
 *
 * The closest candidate of a given length reads back whenever any does,
 * except at a power of two. There the doubles below x are twice as close
 * as those above. So the closest candidate may fall short below x while
 * the next one above still reads back.
 */
static void shortest_decimal(double x, decimal *d) {
  decimal r17;
  double value;
  uint64_t bits;
  bool power_of_two;

  memcpy(&bits, &x, sizeof bits);
  power_of_two = (bits & ((UINT64_C(1) << 52) - 1)) == 0;

  if (short_decimal(x, d))
    return;

  if (x < DBL_MIN) {
    /* Subnormals are evenly spaced, so no power-of-two asymmetry, and a
     * candidate that reads back stays valid at every greater precision:
     * the shortest precision can be found by bisection. */
    int low = 1;
    int high = 17;
    while (low < high) {
      int middle = (low + high) / 2;
      decimal_from_printf(x, middle, d);
      if (decimal_value(d) == x)
        high = middle;
      else
        low = middle + 1;
    }
    decimal_from_printf(x, low, d);
    decimal_trim_zeros(d);
    return;
  }

  decimal_from_printf(x, 17, &r17);
  decimal_at_precision(x, &r17, 15, d);
  decimal_trim_zeros(d);
  if (decimal_value(d) == x)
    return;

  decimal_at_precision(x, &r17, 16, d);
  value = decimal_value(d);
  if (power_of_two && value < x) {
    decimal_increment(d);
    value = decimal_value(d);
  }
  if (value != x)
    *d = r17;
  decimal_trim_zeros(d);
}

/* Lays out the digits as Number::toString does. Returns the length. */
static size_t write_decimal(char *out, const decimal *d) {
  size_t len = 0;
  int k = d->k;
  int n = d->n;

  if (k <= n && n <= 21) {
    memcpy(out, d->digits, (size_t)k);
    memset(out + k, '0', (size_t)(n - k));
    return (size_t)n;
  }

  if (0 < n && n <= 21) {
    memcpy(out, d->digits, (size_t)n);
    out[n] = '.';
    memcpy(out + n + 1, d->digits + n, (size_t)(k - n));
    return (size_t)k + 1;
  }

  if (-6 < n && n <= 0) {
    out[len++] = '0';
    out[len++] = '.';
    memset(out + len, '0', (size_t)-n);
    len += (size_t)-n;
    memcpy(out + len, d->digits, (size_t)k);
    return len + (size_t)k;
  }

  out[len++] = d->digits[0];
  if (k > 1) {
    out[len++] = '.';
    memcpy(out + len, d->digits + 1, (size_t)(k - 1));
    len += (size_t)(k - 1);
  }
  out[len++] = 'e';
  out[len++] = n - 1 >= 0 ? '+' : '-';
  len += write_uint64(out + len, (uint64_t)(n - 1 >= 0 ? n - 1 : 1 - n));
  return len;
}

size_t cp__json_number_text(double x, char *out) {
  decimal d;
  size_t len = 0;

  /* Every integer below 2^53 is exact, so its digits are its shortest. */
  if (x > -0x1p53 && x < 0x1p53) {
    int64_t integer = (int64_t)x;
    if ((double)integer == x)
      return cp__json_int64_text(integer, out);
  }

  if (x < 0) {
    out[len++] = '-';
    x = -x;
  }
  shortest_decimal(x, &d);
  return len + write_decimal(out + len, &d);
}
