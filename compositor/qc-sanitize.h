/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pure helpers of qube-compositor: window-title sanitising (guest data),
 * label colours.  No I/O, no global state (fuzzed: fuzz/fuzz-title.c).
 */
#ifndef QC_SANITIZE_H
#define QC_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a sanitised title (without the "[qube] " prefix), like the
 * 128-byte window name of Qubes' GUI protocol. */
#define QC_TITLE_MAX 128
/* Combining marks kept after one base character */
#define QC_TITLE_MAX_COMBINING 3

/*
 * Sanitises UNTRUSTED_LEN bytes of a guest-supplied title into OUT
 * (OUT_SIZE >= QC_TITLE_MAX + 1): invalid UTF-8 is dropped byte by byte;
 * C0/C1 controls, DEL, bidi controls, zero-width and other invisible or
 * format characters, private-use, tag and noncharacter code points are
 * removed; tab, CR and LF become a space; runs of spaces become one;
 * leading and trailing spaces go; more than QC_TITLE_MAX_COMBINING
 * combining marks in a row are dropped; the result is cut to
 * QC_TITLE_MAX bytes on a character boundary.  Always NUL-terminates.
 * Returns the length of OUT.
 */
size_t qc_title_sanitize(const char *untrusted_title, size_t untrusted_len, char *out,
			 size_t out_size);

/* True when code point CP is one that qc_title_sanitize() removes. */
bool qc_codepoint_is_hidden(uint32_t cp);

/* Decodes one UTF-8 character at S (N bytes available); returns its
 * length (1-4) and sets *ret_cp, or 0 for an invalid or truncated
 * sequence (overlong, surrogate, above U+10FFFF). */
size_t qc_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp);

/* Qubes label NAME ("red", ..., "black") -> 0xRRGGBB; -EINVAL otherwise.
 * *ret_name gets the static name. */
int qc_label_parse(const char *name, uint32_t *ret_rgb, const char **ret_name);

#endif
