/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: window-title sanitising (guest data).  Checks the
 * promises of qc_title_sanitize(): the output is valid UTF-8 of at most
 * QC_TITLE_MAX bytes, holds no removed code point, no leading, trailing
 * or double space, and sanitising it again changes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qc-sanitize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[QC_TITLE_MAX + 1], again[QC_TITLE_MAX + 1];
	size_t n = qc_title_sanitize((const char *)data, size, out, sizeof(out));
	if (n > QC_TITLE_MAX || out[n] != '\0' || strlen(out) != n)
		abort();
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = qc_utf8_decode((const unsigned char *)out + i, n - i, &cp);
		if (l == 0 || qc_codepoint_is_hidden(cp) || cp == '\t' || cp == '\n')
			abort();
		if (cp == ' ' && (i == 0 || i + 1 == n || out[i + 1] == ' '))
			abort();
		i += l;
	}
	size_t m = qc_title_sanitize(out, n, again, sizeof(again));
	if (m != n || memcmp(out, again, n) != 0)
		abort();
	/* a small output buffer still terminates and stays in bounds */
	char small[8];
	size_t k = qc_title_sanitize((const char *)data, size, small, sizeof(small));
	if (k > 7 || small[k] != '\0')
		abort();
	return 0;
}
