/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness of http-proxy.c.  The first byte picks what the rest
 * is fed to:
 *   0 (mod 4)  a request head (what a template sends; cut at its first
 *              CRLFCRLF as the proxy's reader does)
 *   1          a response head (what a mirror sends)
 *   2          the configuration, then the request head after a NUL in
 *              it, checked against it
 *   3          a struct uproxy_request as the parser child could send it
 * Invariants: an accepted request passes uproxy_request_check, rebuilds
 * into one origin-form head ending in "Connection: close"; a refusal
 * passes uproxy_refusal_check and fails uproxy_request_check; a rewritten
 * response is one head that ends in "Connection: close"; any struct that
 * passes the check rebuilds within the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct uproxy_request *r)
{
	static char up[UPROXY_TARGET_MAX + UPROXY_FWD_MAX + UPROXY_HOST_MAX + 128];
	size_t n;

	if (!uproxy_request_check(r))
		abort();
	if (r->method == UPROXY_CONNECT)
		return;
	if (uproxy_upstream_request(r, up, sizeof(up), &n) != 0 || n != strlen(up))
		abort();
	if (uproxy_head_length((const uint8_t *)up, n) != n)
		abort();
	if (n < 23 || memcmp(up + n - 23, "\r\nConnection: close\r\n\r\n", 23) != 0)
		abort();
}

static void request(const uint8_t *d, size_t n, struct uproxy_request *r)
{
	size_t hl = uproxy_head_length(d, n);

	if (hl)
		n = hl;
	if (n > UPROXY_HEAD_MAX + 1)
		n = UPROXY_HEAD_MAX + 1;
	if (uproxy_request_parse(d, n, r) == 0) {
		check_accepted(r);
	} else {
		if (r->status == 0 || !uproxy_refusal_check(r) || uproxy_request_check(r))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct uproxy_request r;
	static struct uproxy_config cfg;
	static char out[UPROXY_HEAD_MAX + 64];
	char err[256];

	if (size < 1)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] % 4) {
	case 0:
		request(d, n, &r);
		break;
	case 1: {
		size_t hl = uproxy_head_length(d, n), ol = 0;
		unsigned st = 0;

		if (uproxy_response_rewrite(d, hl ? hl : n, out, sizeof(out), &ol, &st, err, sizeof(err)) == 0) {
			if (st < 200 || st > 599 || uproxy_head_length((const uint8_t *)out, ol) != ol ||
			    memcmp(out + ol - 23, "\r\nConnection: close\r\n\r\n", 23) != 0)
				abort();
		} else if (!memchr(err, '\0', sizeof(err))) {
			abort();
		}
		break;
	}
	case 2: {
		const uint8_t *nul = memchr(d, 0, n);
		size_t cl = nul ? (size_t)(nul - d) : n;

		if (uproxy_config_parse((const char *)d, cl, &cfg, err, sizeof(err)) != 0)
			break;
		if (cfg.n_allow > UPROXY_MAX_ALLOW)
			abort();
		if (!nul)
			break;
		request(nul + 1, n - cl - 1, &r);
		if (r.status == 0) {
			uint32_t st = uproxy_allowed(&cfg, &r, err, sizeof(err));

			if (st != 0 && st != 403)
				abort();
		}
		break;
	}
	case 3:
		if (n != sizeof(r))
			break;
		memcpy(&r, d, n);
		if (r.status == 0 && uproxy_request_check(&r))
			check_accepted(&r);
		else
			(void)uproxy_refusal_check(&r);
		break;
	}
	return 0;
}
