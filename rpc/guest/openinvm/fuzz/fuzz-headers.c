/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qube.OpenInVM's decoders of untrusted bytes (oiv.c).
 * Input: a selector byte, then the bytes.  0: a request header, 1: a
 * result header (both also decoded from every 32-byte window of the
 * rest), 2: the viewer settings file.  Whatever a decoder accepts is
 * checked against the rules here (flags, sizes, status and lengths) and
 * encoded again, which must give the same bytes: the fuzzer looks for
 * accepted headers that break the rules, not only for crashes.
 */
#include "oiv.h"

#include <stdlib.h>
#include <string.h>

static void check_request(const uint8_t *p)
{
	struct qoiv_request r;
	uint8_t again[QOIV_HEADER_SIZE];
	char err[256];

	if (qoiv_request_decode(p, &r, err, sizeof(err)) < 0) {
		if (!err[0])
			__builtin_trap(); /* a refusal always says what */
		return;
	}
	if ((r.flags & ~(uint32_t)QOIV_F_KNOWN) || r.stream_len < QOIV_MIN_STREAM ||
	    r.stream_len > QOIV_MAX_STREAM)
		__builtin_trap();
	if ((r.flags & QOIV_F_TERMINAL) ?
		    (r.rows < 1 || r.cols < 1 || r.rows > QOIV_MAX_TERM || r.cols > QOIV_MAX_TERM) :
		    (r.rows || r.cols))
		__builtin_trap();
	qoiv_request_encode(&r, again);
	if (memcmp(again, p, QOIV_HEADER_SIZE) != 0)
		__builtin_trap(); /* accepted bytes that do not say what was decoded */
}

static void check_result(const uint8_t *p)
{
	struct qoiv_result r;
	uint8_t again[QOIV_HEADER_SIZE];
	char err[256];

	if (qoiv_result_decode(p, &r, err, sizeof(err)) < 0) {
		if (!err[0])
			__builtin_trap();
		return;
	}
	switch (r.status) {
	case QOIV_UNCHANGED:
		if (r.msg_len || r.stream_len)
			__builtin_trap();
		break;
	case QOIV_CHANGED:
		if (r.msg_len || r.stream_len < QOIV_MIN_STREAM || r.stream_len > QOIV_MAX_STREAM)
			__builtin_trap();
		break;
	case QOIV_FAILED:
		if (r.stream_len || r.msg_len < 1 || r.msg_len > QOIV_MAX_MSG)
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
	qoiv_result_encode(&r, again);
	if (memcmp(again, p, QOIV_HEADER_SIZE) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0] % 3;
	data++;
	size--;
	if (sel == 2) {
		char *editor = NULL, *viewer = NULL, err[512];
		if (qoiv_config_parse((const char *)data, size, "fuzz.conf", &editor, &viewer, err,
				      sizeof(err)) == 0) {
			if ((editor && editor[0] != '/') || (viewer && viewer[0] != '/'))
				__builtin_trap(); /* only absolute program paths */
		} else if (!err[0] || editor || viewer) {
			__builtin_trap(); /* refused: a message, and nothing set */
		}
		free(editor);
		free(viewer);
		return 0;
	}
	for (size_t off = 0; off + QOIV_HEADER_SIZE <= size; off++) {
		if (sel == 0)
			check_request(data + off);
		else
			check_result(data + off);
	}
	return 0;
}
