/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer harness: qube.Filecopy header decoders, name, symlink and
 * settings checks on arbitrary bytes.  Input: 32 header bytes, then a
 * path, a NUL, a symlink target. */
#include "fc.h"

#include <stdlib.h>
#include <string.h>

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
		(void)qfc_entry_decode(data, &l, &e, err, sizeof(err));
		(void)qfc_trailer_decode(data, &t, err, sizeof(err));
		(void)qfc_reply_decode(data, &r, err, sizeof(err));
		(void)qfc_stream_header_decode(data, err, sizeof(err));
		data += QFC_ENTRY_HEADER_SIZE;
		size -= QFC_ENTRY_HEADER_SIZE;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t plen = nul ? (size_t)(nul - data) : size;
	const char *path = (const char *)data;
	unsigned depth = 0;
	int rp = qfc_path_check(path, plen, &l, &depth, err, sizeof(err));
	if (rp == 0 && (depth == 0 || depth > l.max_depth))
		__builtin_trap();
	if (nul) {
		const char *target = (const char *)nul + 1;
		size_t tlen = size - plen - 1;
		int rs = qfc_symlink_check(path, plen, target, tlen, &l, err, sizeof(err));
		/* an accepted target is never absolute and never starts a
		 * component ".." after a name */
		if (rs == 0 && (tlen == 0 || target[0] == '/'))
			__builtin_trap();
	}
	struct qfc_limits c = l;
	char *user = NULL, *inc = NULL;
	(void)qfc_config_parse(path, plen, "fuzz", &c, &user, &inc, err, sizeof(err));
	free(user);
	free(inc);
	return 0;
}
