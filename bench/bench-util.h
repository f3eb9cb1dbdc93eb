/*
 * Helpers shared by the benchmark programs in bench/: a monotonic clock,
 * argument parsing, the memory ballast of the "1 GiB parent" figures,
 * memory readings and the result line.
 *
 * Every program prints its result as one line of `name=value` pairs on
 * stdout, which bench/run.py reads. Errors go to stderr and end the program
 * with status 1.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Prints "PROGRAM: MESSAGE" to stderr and exits with status 1. */
_Noreturn void bench_fail(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

/* Parses a count such as "1000", "64K", "1M" or "1G" (powers of 1024);
 * exits through bench_fail() on anything else. what names the argument in
 * the message. */
size_t bench_parse_size(const char *text, const char *what);

/* Allocates bytes and writes every page, so that they count in the
 * process's resident set as a parent's heap would. Returns NULL for 0
 * bytes. The caller owns the memory and frees it with free(). */
char *bench_ballast(size_t bytes);

/* Raises the soft limit on open descriptors to the hard limit. */
void bench_raise_fd_limit(void);

/* The process's resident set size in KiB, from /proc/self/statm. */
double bench_rss_kib(void);

/* Bytes of heap in use (mallinfo2's uordblks, plus mmap'ed blocks). */
double bench_heap_bytes(void);

/* Sorts values in place and returns the q-quantile (0 <= q <= 1), the
 * nearest-rank value. */
double bench_quantile(double *values, size_t count, double q);

/* Bytes on the wire for messages {"seq":i,"data":TEXT} with i from 0 to
 * count - 1 and TEXT size bytes long, each line ended by a newline. */
double bench_stream_bytes(size_t count, size_t size);

#endif /* BENCH_UTIL_H */
