/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: a qube's clipboard offer.  The input is a list of
 * mime types (NUL-separated, up to the first 0xff byte) followed by the
 * bytes the qube sends; checks the mime choice, the capped reader (a cap
 * taken from the first byte), the text check and the global clipboard.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qc-clip.h"
#include "qc-sanitize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cap = 1 + (size_t)data[0] * 64;
	data++;
	size--;
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t mlen = sep ? (size_t)(sep - data) : size;
	char *mbuf = malloc(mlen + 1);
	if (!mbuf)
		return 0;
	memcpy(mbuf, data, mlen);
	mbuf[mlen] = '\0';
	const char *mimes[QC_CLIP_OFFERS_MAX + 8];
	size_t n = 0;
	for (size_t i = 0; i <= mlen && n < sizeof(mimes) / sizeof(mimes[0]);) {
		mimes[n++] = mbuf + i;
		i += strlen(mbuf + i) + 1;
	}
	size_t idx;
	if (qc_clip_choose_mime(mimes, n, &idx) == 0) {
		if (idx >= n || idx >= QC_CLIP_OFFERS_MAX || !qc_clip_mime_is_valid(mimes[idx]))
			abort();
	}
	const uint8_t *body = sep ? sep + 1 : data + size;
	size_t blen = (size_t)(data + size - body);
	struct qc_clip_reader r;
	qc_clip_reader_init(&r, cap);
	/* feed in uneven chunks */
	size_t off = 0, chunk = 1;
	int rc = 0;
	while (off < blen && rc == 0) {
		size_t take = blen - off < chunk ? blen - off : chunk;
		rc = qc_clip_reader_append(&r, body + off, take);
		off += take;
		chunk = chunk * 3 + 1;
	}
	if (r.len > cap || (rc == 0 && r.len != blen) || (blen > cap && rc == 0))
		abort();
	if (memcmp(r.data ? r.data : (const uint8_t *)"", body, r.len) != 0)
		abort();
	if (qc_clip_text_check(r.data, r.len) == 0) {
		for (size_t i = 0; i < r.len; i++)
			if (r.data[i] == 0)
				abort();
		struct qc_global_clip g = { 0 };
		/* nothing read: r.data is NULL, which memcpy may not be given
		 * even for 0 bytes (clipboard.c gives the global clipboard a
		 * 1-byte buffer then, as here) */
		uint8_t *copy = malloc(r.len ? r.len : 1);
		if (copy) {
			if (r.len)
				memcpy(copy, r.data, r.len);
			if (qc_global_clip_set(&g, "work", copy, r.len) != 0)
				abort();
			uint8_t *out;
			size_t olen;
			char src[32];
			if (qc_global_clip_take(&g, &out, &olen, src) != 0 || olen != r.len ||
			    strcmp(src, "work") != 0 || !qc_global_clip_is_empty(&g))
				abort();
			free(out);
		}
	}
	qc_clip_reader_finish(&r);
	free(mbuf);
	return 0;
}
