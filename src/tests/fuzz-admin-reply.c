/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qubectl's decoders of what qubed sends (the reply of
 * a call, and the admin.Events stream).  The first byte picks which.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "admin-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct qc_reply r;
		if (qc_reply_parse(data + 1, size - 1, &r) == 0) {
			if (r.kind == QC_REPLY_OK && strlen(r.data) > r.len)
				__builtin_trap();
			if (r.kind == QC_REPLY_EXCEPTION && (!r.exc_type[0] || !r.exc_message))
				__builtin_trap();
			qc_reply_finish(&r);
		}
	} else {
		const uint8_t *p = data + 1;
		size_t left = size - 1;
		for (;;) {
			struct qc_event e;
			size_t used = 0;
			if (qc_event_parse(p, left, &e, &used) != 0)
				break;
			if (used == 0 || used > left || !e.name[0])
				__builtin_trap();
			for (size_t i = 0; i < e.n_keys; i++)
				for (const char *c = e.values[i]; *c; c++)
					if ((unsigned char)*c < 0x20 && *c != '\n' && *c != '\t')
						__builtin_trap();
			qc_event_finish(&e);
			p += used;
			left -= used;
		}
	}
	return 0;
}
