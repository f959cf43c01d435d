/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pure clipboard logic of qube-compositor: which of a qube's offered mime
 * types is read, the text check of what was read, and the global
 * clipboard (Qubes' model: one buffer, filled by Ctrl+Shift+C from the
 * focused qube, emptied by a paste).  No I/O (fuzzed: fuzz/fuzz-clip.c).
 */
#ifndef QC_CLIP_H
#define QC_CLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QC_CLIP_DEFAULT_CAP 64000 /* bytes, as Qubes' default */
#define QC_CLIP_MAX_CAP (16u << 20)
#define QC_CLIP_MIME_MAX 255   /* bytes of one mime type */
#define QC_CLIP_OFFERS_MAX 64  /* mime types looked at per offer */

/* The mime type the compositor offers when it holds the text */
#define QC_CLIP_MIME_TEXT "text/plain;charset=utf-8"

/* True for a mime type of printable ASCII without spaces, 1..255 bytes. */
bool qc_clip_mime_is_valid(const char *untrusted_mime);

/*
 * Picks the mime type to read from UNTRUSTED_MIMES (N entries, of which
 * only the first QC_CLIP_OFFERS_MAX are looked at): the first of
 * "text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "STRING",
 * "TEXT" that is offered and valid.  Returns 0 and *ret_index, or -ENOENT.
 */
int qc_clip_choose_mime(const char *const *untrusted_mimes, size_t n, size_t *ret_index);

/* Text read from a qube: growing buffer with a hard cap. */
struct qc_clip_reader {
	uint8_t *data;
	size_t len, alloc, cap;
	bool overflow;
};
void qc_clip_reader_init(struct qc_clip_reader *r, size_t cap);
/* Appends; returns 0, -EFBIG once the cap is passed (data kept up to the
 * cap, overflow set), -ENOMEM. */
int qc_clip_reader_append(struct qc_clip_reader *r, const void *untrusted, size_t n);
void qc_clip_reader_finish(struct qc_clip_reader *r);

/* 0 when DATA is valid UTF-8 without NUL bytes; -EINVAL otherwise. */
int qc_clip_text_check(const uint8_t *untrusted, size_t len);

/* The global clipboard. */
struct qc_global_clip {
	char source[32]; /* qube the text came from; "" when empty */
	uint8_t *data;
	size_t len;
};
bool qc_global_clip_is_empty(const struct qc_global_clip *c);
/* Takes ownership of DATA (malloc'd) on success; -EINVAL if SOURCE is
 * not a qube name. */
int qc_global_clip_set(struct qc_global_clip *c, const char *source, uint8_t *data, size_t len);
/* Moves the content out (*ret_data caller frees) and empties the clipboard. */
int qc_global_clip_take(struct qc_global_clip *c, uint8_t **ret_data, size_t *ret_len,
			char ret_source[32]);
void qc_global_clip_clear(struct qc_global_clip *c);

#endif
