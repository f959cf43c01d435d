/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qube.OpenInVM: headers and the viewer settings (oiv.h). */
#include "oiv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int refuse(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

void qoiv_request_encode(const struct qoiv_request *r, uint8_t out[QOIV_HEADER_SIZE])
{
	memset(out, 0, QOIV_HEADER_SIZE);
	memcpy(out, QOIV_REQUEST_MAGIC, 4);
	put_u32(out + 4, QOIV_VERSION);
	put_u32(out + 8, r->flags);
	put_u16(out + 12, r->rows);
	put_u16(out + 14, r->cols);
	put_u64(out + 16, r->stream_len);
}

void qoiv_result_encode(const struct qoiv_result *r, uint8_t out[QOIV_HEADER_SIZE])
{
	memset(out, 0, QOIV_HEADER_SIZE);
	memcpy(out, QOIV_RESULT_MAGIC, 4);
	put_u32(out + 4, QOIV_VERSION);
	put_u32(out + 8, r->status);
	put_u32(out + 12, r->msg_len);
	put_u64(out + 16, r->stream_len);
}

/* magic and version, shared by both headers */
static int check_start(const uint8_t *untrusted, const char *magic, const char *what,
		       char *err, size_t errlen)
{
	if (memcmp(untrusted, magic, 4) != 0)
		return refuse(err, errlen, "%s: bad magic (not \"%s\")", what, magic);
	uint32_t v = get_u32(untrusted + 4);
	if (v != QOIV_VERSION)
		return refuse(err, errlen, "%s version %" PRIu32 " refused (this side speaks "
			      "version %u)", what, v, QOIV_VERSION);
	if (get_u64(untrusted + 24) != 0)
		return refuse(err, errlen, "%s: reserved field not 0", what);
	return 0;
}

static bool stream_len_ok(uint64_t n)
{
	return n >= QOIV_MIN_STREAM && n <= QOIV_MAX_STREAM;
}

int qoiv_request_decode(const uint8_t *untrusted, struct qoiv_request *ret_r, char *err,
			size_t errlen)
{
	int r = check_start(untrusted, QOIV_REQUEST_MAGIC, "request", err, errlen);
	if (r < 0)
		return r;
	uint32_t flags = get_u32(untrusted + 8);
	uint16_t rows = get_u16(untrusted + 12), cols = get_u16(untrusted + 14);
	uint64_t len = get_u64(untrusted + 16);
	if (flags & ~(uint32_t)QOIV_F_KNOWN)
		return refuse(err, errlen, "request flags 0x%" PRIx32 " refused (known: 0x%x)",
			      flags, QOIV_F_KNOWN);
	if (flags & QOIV_F_TERMINAL) {
		if (rows < 1 || rows > QOIV_MAX_TERM || cols < 1 || cols > QOIV_MAX_TERM)
			return refuse(err, errlen, "terminal size %ux%u refused (1..%u each)",
				      (unsigned)rows, (unsigned)cols, QOIV_MAX_TERM);
	} else if (rows || cols) {
		return refuse(err, errlen, "a terminal size without the terminal flag");
	}
	if (!stream_len_ok(len))
		return refuse(err, errlen, "request stream length %" PRIu64 " refused (%u..%llu)",
			      len, QOIV_MIN_STREAM, (unsigned long long)QOIV_MAX_STREAM);
	*ret_r = (struct qoiv_request){ .flags = flags, .rows = rows, .cols = cols,
					.stream_len = len };
	return 0;
}

int qoiv_result_decode(const uint8_t *untrusted, struct qoiv_result *ret_r, char *err,
		       size_t errlen)
{
	int r = check_start(untrusted, QOIV_RESULT_MAGIC, "result", err, errlen);
	if (r < 0)
		return r;
	uint32_t status = get_u32(untrusted + 8), msg_len = get_u32(untrusted + 12);
	uint64_t len = get_u64(untrusted + 16);
	switch (status) {
	case QOIV_UNCHANGED:
		if (msg_len || len)
			return refuse(err, errlen, "result 'unchanged' with a message or a stream");
		break;
	case QOIV_CHANGED:
		if (msg_len)
			return refuse(err, errlen, "result 'changed' with a message");
		if (!stream_len_ok(len))
			return refuse(err, errlen, "result stream length %" PRIu64 " refused "
				      "(%u..%llu)", len, QOIV_MIN_STREAM,
				      (unsigned long long)QOIV_MAX_STREAM);
		break;
	case QOIV_FAILED:
		if (len)
			return refuse(err, errlen, "result 'failed' with a stream");
		if (msg_len < 1 || msg_len > QOIV_MAX_MSG)
			return refuse(err, errlen, "result message length %" PRIu32 " refused "
				      "(1..%u)", msg_len, QOIV_MAX_MSG);
		break;
	default:
		return refuse(err, errlen, "result status %" PRIu32 " refused (known: 0 unchanged, "
			      "1 changed, 2 failed)", status);
	}
	*ret_r = (struct qoiv_result){ .status = status, .msg_len = msg_len, .stream_len = len };
	return 0;
}

static int config_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int config_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int qoiv_config_parse(const char *text, size_t len, const char *filename, char **ret_editor,
		      char **ret_viewer, char *err, size_t errlen)
{
	char editor[4096] = "", viewer[4096] = "";
	bool have_editor = false, have_viewer = false;
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		size_t eol = pos;
		while (eol < len && text[eol] != '\n')
			eol++;
		lineno++;
		char line[4200];
		size_t ll = eol - pos;
		if (ll >= sizeof(line))
			return config_err(err, errlen, "%s:%u: line too long", filename, lineno);
		memcpy(line, text + pos, ll);
		line[ll] = 0;
		pos = eol + 1;
		if (memchr(line, 0, ll))
			return config_err(err, errlen, "%s:%u: NUL byte", filename, lineno);
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '#' || *s == 0 || *s == '\r')
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			return config_err(err, errlen, "%s:%u: expected \"key = value\"", filename,
					  lineno);
		char *ke = eq;
		while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
			ke--;
		*ke = 0;
		char *v = eq + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
			ve--;
		*ve = 0;
		bool is_editor = strcmp(s, "editor") == 0;
		if (!is_editor && strcmp(s, "viewer") != 0)
			return config_err(err, errlen, "%s:%u: unknown key \"%s\" (known: editor, "
					  "viewer)", filename, lineno, s);
		if (v[0] != '/' || strlen(v) >= sizeof(editor))
			return config_err(err, errlen, "%s:%u: %s: want an absolute program path "
					  "(no arguments)", filename, lineno, s);
		snprintf(is_editor ? editor : viewer, sizeof(editor), "%s", v);
		if (is_editor)
			have_editor = true;
		else
			have_viewer = true;
	}
	char *ne = have_editor ? strdup(editor) : NULL;
	char *nv = have_viewer ? strdup(viewer) : NULL;
	if ((have_editor && !ne) || (have_viewer && !nv)) {
		free(ne);
		free(nv);
		return config_err(err, errlen, "%s: out of memory", filename);
	}
	if (have_editor) {
		free(*ret_editor);
		*ret_editor = ne;
	}
	if (have_viewer) {
		free(*ret_viewer);
		*ret_viewer = nv;
	}
	return 0;
}
