/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the qube.Exec request a caller writes at the start of
 * the service's stdin (qube-exec.h).  Header and body are parsed as
 * qube-exec does; an accepted request must re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qube-exec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t body_len;
	char err[160];
	struct qexec_request req;

	if (size < QEXEC_HEADER_SIZE)
		return 0;
	if (qexec_header_parse(data, QEXEC_HEADER_SIZE, &body_len, err, sizeof(err)) < 0) {
		if (!memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	if (body_len < 3 || body_len > QEXEC_BODY_MAX)
		abort();
	if (size - QEXEC_HEADER_SIZE < body_len)
		return 0; /* cut short: qube-exec refuses it before parsing */
	uint8_t *body = malloc(body_len);
	if (!body)
		return 0;
	memcpy(body, data + QEXEC_HEADER_SIZE, body_len);
	if (qexec_body_parse(body, body_len, &req, err, sizeof(err)) == 0) {
		uint8_t *enc;
		size_t len;

		if (req.argc == 0 || !req.argv[0][0] || req.argv[req.argc] != NULL)
			abort();
		if (qexec_encode(req.user, req.argv, req.argc, &enc, &len) != 0)
			abort();
		if (len != QEXEC_HEADER_SIZE + body_len || memcmp(enc, data, len) != 0)
			abort();
		free(enc);
		free(req.argv);
	}
	free(body);
	return 0;
}
