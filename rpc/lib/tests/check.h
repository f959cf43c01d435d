/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Minimal checking macros for the rpc unit tests: every failed check is
 * printed with its line and counted; main() returns check_exit_code(). */
#ifndef QRPC_TEST_CHECK_H
#define QRPC_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		check_count++;                                                        \
		if (!(cond)) {                                                        \
			check_failures++;                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
		}                                                                     \
	} while (0)

#define CHECK_INT(got, want)                                                          \
	do {                                                                          \
		long long g_ = (long long)(got), w_ = (long long)(want);              \
		check_count++;                                                        \
		if (g_ != w_) {                                                       \
			check_failures++;                                             \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,   \
				__LINE__, #got, g_, w_);                              \
		}                                                                     \
	} while (0)

#define CHECK_STR(got, want)                                                          \
	do {                                                                          \
		const char *g_ = (got), *w_ = (want);                                 \
		check_count++;                                                        \
		if (!g_ || strcmp(g_, w_) != 0) {                                     \
			check_failures++;                                             \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n",         \
				__FILE__, __LINE__, #got, g_ ? g_ : "(null)", w_);    \
		}                                                                     \
	} while (0)

static inline int check_exit_code(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
