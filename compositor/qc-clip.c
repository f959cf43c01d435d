/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qc-clip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qc-sanitize.h"
#include "qname.h"

bool qc_clip_mime_is_valid(const char *untrusted_mime)
{
	size_t n = 0;
	for (const char *p = untrusted_mime; *p; p++, n++) {
		if (n >= QC_CLIP_MIME_MAX)
			return false;
		if (*p <= ' ' || *p > '~')
			return false;
	}
	return n > 0;
}

static const char *const text_mimes[] = {
	QC_CLIP_MIME_TEXT, "UTF8_STRING", "text/plain", "STRING", "TEXT",
};

int qc_clip_choose_mime(const char *const *untrusted_mimes, size_t n, size_t *ret_index)
{
	if (n > QC_CLIP_OFFERS_MAX)
		n = QC_CLIP_OFFERS_MAX;
	for (size_t pref = 0; pref < sizeof(text_mimes) / sizeof(text_mimes[0]); pref++) {
		for (size_t i = 0; i < n; i++) {
			if (!untrusted_mimes[i] || !qc_clip_mime_is_valid(untrusted_mimes[i]))
				continue;
			if (strcmp(untrusted_mimes[i], text_mimes[pref]) == 0) {
				*ret_index = i;
				return 0;
			}
		}
	}
	return -ENOENT;
}

void qc_clip_reader_init(struct qc_clip_reader *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->cap = cap;
}

int qc_clip_reader_append(struct qc_clip_reader *r, const void *untrusted, size_t n)
{
	if (r->overflow)
		return -EFBIG;
	size_t room = r->cap - r->len;
	size_t take = n < room ? n : room;
	if (take > 0) {
		if (r->len + take > r->alloc) {
			size_t na = r->alloc ? r->alloc : 4096;
			while (na < r->len + take)
				na *= 2;
			if (na > r->cap)
				na = r->cap;
			uint8_t *nd = realloc(r->data, na);
			if (!nd)
				return -ENOMEM;
			r->data = nd;
			r->alloc = na;
		}
		memcpy(r->data + r->len, untrusted, take);
		r->len += take;
	}
	if (take < n) {
		r->overflow = true;
		return -EFBIG;
	}
	return 0;
}

void qc_clip_reader_finish(struct qc_clip_reader *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

int qc_clip_text_check(const uint8_t *untrusted, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = qc_utf8_decode(untrusted + i, len - i, &cp);
		if (n == 0 || cp == 0)
			return -EINVAL;
		i += n;
	}
	return 0;
}

bool qc_global_clip_is_empty(const struct qc_global_clip *c)
{
	return c->source[0] == '\0';
}

int qc_global_clip_set(struct qc_global_clip *c, const char *source, uint8_t *data, size_t len)
{
	if (!qname_qube_is_valid(source) || strlen(source) >= sizeof(c->source))
		return -EINVAL;
	qc_global_clip_clear(c);
	strcpy(c->source, source);
	c->data = data;
	c->len = len;
	return 0;
}

int qc_global_clip_take(struct qc_global_clip *c, uint8_t **ret_data, size_t *ret_len,
			char ret_source[32])
{
	if (qc_global_clip_is_empty(c))
		return -ENOENT;
	*ret_data = c->data;
	*ret_len = c->len;
	memcpy(ret_source, c->source, sizeof(c->source));
	c->data = NULL;
	c->len = 0;
	c->source[0] = '\0';
	return 0;
}

void qc_global_clip_clear(struct qc_global_clip *c)
{
	free(c->data);
	c->data = NULL;
	c->len = 0;
	c->source[0] = '\0';
}
