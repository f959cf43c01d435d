/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libqvmm internals shared by its source files (not installed). */
#ifndef QVMM_INTERNAL_H
#define QVMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* formats into (err, errlen) when err is not NULL; returns ret (a -errno) */
int qvmm_err(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Runs argv[0] (PATH lookup, never a shell) with argv, stdin /dev/null,
 * stdout captured into *ret_out (NUL-terminated, NULL allowed to discard),
 * stderr captured into errbuf (its last bytes when long). 0 when it exited
 * 0; -EIO with "PROG: exit N: STDERR" in err otherwise; -errno when it
 * could not be started.
 */
int qvmm_run(char *const argv[], char **ret_out, char *err, size_t errlen);

#endif
