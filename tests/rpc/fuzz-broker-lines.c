/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the broker's own line parsers (rpc/broker/util.c):
 * the first byte picks the parser, the rest is its input.
 *   0: bk_hybrid_ok_parse  the "OK <n>\n" answer read from a target's
 *                          hybrid vsock socket (guest-influenced)
 *   1: bk_ask_reply_parse  a prompt program's reply line
 *   2: bk_start_reply_parse  the start interface's reply line
 * Checks the parsers' promises, not just absence of crashes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[BK_LINE_MAX + 1];
	char target[QRPC_MAX_TARGET + 1], name[QRPC_MAX_QUBE + 1], msg[64];
	uint32_t id;
	bool allow;
	size_t used = 0, n;
	int r;

	if (size == 0)
		return 0;
	n = size - 1;
	switch (data[0] % 3) {
	case 0:
		r = bk_hybrid_ok_parse(data + 1, n, &used);
		if (r == 0 && (used > n || used > BK_HYBRID_LINE_MAX || used < 5 ||
			       data[1 + used - 1] != '\n' || memcmp(data + 1, "OK ", 3) != 0))
			abort();
		if (r == 0) {
			/* a port: decimal digits only, at most 2^32-1 */
			uint64_t v = 0;

			for (size_t i = 4; i < used; i++) {
				if (data[i] < '0' || data[i] > '9')
					abort();
				v = v * 10 + (uint64_t)(data[i] - '0');
				if (v > UINT32_MAX)
					abort();
			}
		}
		break;
	case 1:
	case 2:
		if (n > BK_LINE_MAX)
			n = BK_LINE_MAX;
		memcpy(line, data + 1, n);
		line[n] = '\0';
		if (data[0] % 3 == 1) {
			memset(target, 'x', sizeof(target));
			r = bk_ask_reply_parse(line, &id, &allow, target);
			if (r == 0 && allow && !qrpc_target_is_valid(target))
				abort();
			if (r == 0 && !allow && target[0] != '\0')
				abort();
		} else {
			r = bk_start_reply_parse(line, name, msg, sizeof(msg));
			if (r == 0 && !qrpc_qube_name_is_valid(name))
				abort();
			if (r == -EHOSTDOWN && !memchr(msg, '\0', sizeof(msg)))
				abort();
		}
		break;
	}
	return 0;
}
