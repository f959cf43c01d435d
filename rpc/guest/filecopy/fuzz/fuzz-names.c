/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qube.Filecopy header decoders, name, symlink and
 * settings checks on arbitrary bytes.  Input: 32 header bytes, then a
 * path, a NUL, a symlink target.  Whatever the checks accept is checked
 * again here by a second, naive reading of the rules (components, bytes,
 * where ".." may stand), so that the fuzzer looks for accepted names that
 * break them, not only for crashes.
 */
#include "fc.h"

#include <stdlib.h>
#include <string.h>

/* Calls f(component, length, index) for each '/'-separated component. */
static unsigned components(const char *p, size_t n, bool (*f)(const char *, size_t, unsigned))
{
	unsigned k = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			if (!f(p + start, i - start, k++))
				__builtin_trap();
			start = i + 1;
		}
	}
	return k;
}

static bool is_dotdot(const char *c, size_t n)
{
	return n == 2 && c[0] == '.' && c[1] == '.';
}

/* An accepted name: no empty, "." or ".." component, no control byte,
 * no DEL, no byte that is never part of UTF-8. */
static bool name_component_ok(const char *c, size_t n, unsigned k)
{
	(void)k;
	if (n == 0 || (n == 1 && c[0] == '.') || is_dotdot(c, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)c[i];
		if (b < 0x20 || b == 0x7f || b == 0xc0 || b == 0xc1 || b >= 0xf5)
			return false;
	}
	return true;
}

static bool seen_name; /* a target component after which ".." may not come */

static bool target_component_ok(const char *c, size_t n, unsigned k)
{
	if (k == 0)
		seen_name = false;
	if (is_dotdot(c, n))
		return !seen_name;
	seen_name = true;
	return name_component_ok(c, n, k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qfc_limits l;
	qfc_limits_default(&l);
	char err[512];
	if (size >= QFC_ENTRY_HEADER_SIZE) {
		struct qfc_entry e;
		struct qfc_trailer t;
		struct qfc_reply r;
		if (qfc_entry_decode(data, &l, &e, err, sizeof(err)) == 0) {
			/* accepted headers keep the format's promises */
			if (e.type < QFC_T_FILE || e.type > QFC_T_END || (e.mode & ~07777u) ||
			    e.mtime_nsec > 999999999u)
				__builtin_trap();
			if (e.type != QFC_T_END && (e.name_len == 0 || e.name_len > QFC_PATH_MAX))
				__builtin_trap();
			if ((e.type == QFC_T_DIR || e.type == QFC_T_DIR_END) && e.size)
				__builtin_trap();
		} else if (!err[0]) {
			__builtin_trap(); /* a refusal always says what */
		}
		(void)qfc_trailer_decode(data, &t, err, sizeof(err));
		if (qfc_reply_decode(data, &r, err, sizeof(err)) == 0 && r.msg_len > QFC_REPLY_MAX_MSG)
			__builtin_trap();
		(void)qfc_stream_header_decode(data, err, sizeof(err));
		data += QFC_ENTRY_HEADER_SIZE;
		size -= QFC_ENTRY_HEADER_SIZE;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t plen = nul ? (size_t)(nul - data) : size;
	const char *path = (const char *)data;
	unsigned depth = 0;
	err[0] = 0;
	int rp = qfc_path_check(path, plen, &l, &depth, err, sizeof(err));
	if (rp == 0) {
		if (depth == 0 || depth > l.max_depth || plen > l.max_path || path[0] == '/')
			__builtin_trap();
		if (components(path, plen, name_component_ok) != depth)
			__builtin_trap();
	} else if (!err[0]) {
		__builtin_trap();
	}
	if (nul) {
		const char *target = (const char *)nul + 1;
		size_t tlen = size - plen - 1;
		int rs = qfc_symlink_check(path, plen, target, tlen, &l, err, sizeof(err));
		if (rs == 0) {
			/* accepted: the link is below a top-level directory, the
			 * target relative, ".." only in front, and it climbs at
			 * most depth-2 levels */
			if (rp != 0 || depth < 2 || tlen == 0 || target[0] == '/')
				__builtin_trap();
			size_t n = tlen;
			if (n > 1 && target[n - 1] == '/')
				n--;
			components(target, n, target_component_ok);
			unsigned up = 0;
			for (size_t i = 0; i + 1 < n + 1; i += 3) {
				if (i + 2 <= n && target[i] == '.' && target[i + 1] == '.' &&
				    (i + 2 == n || target[i + 2] == '/'))
					up++;
				else
					break;
			}
			if (up > depth - 2)
				__builtin_trap();
		}
	}
	struct qfc_limits c = l;
	char *user = NULL, *inc = NULL;
	if (qfc_config_parse(path, plen, "fuzz", &c, &user, &inc, err, sizeof(err)) == 0) {
		if (c.max_depth == 0 || c.max_depth > QFC_DEPTH_MAX || c.max_path == 0 ||
		    c.max_path > QFC_PATH_MAX || c.max_name == 0 || c.max_name > QFC_NAME_MAX ||
		    c.max_entries == 0 || (inc && inc[0] != '/'))
			__builtin_trap();
	}
	free(user);
	free(inc);
	return 0;
}
