/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The qube.Exec request header: see qube-exec.h. */
#include "qube-exec.h"
#include "qrpc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(int r, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int refuse(int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int qexec_header_parse(const uint8_t *hdr, size_t len, uint32_t *ret_body_len, char *err,
		       size_t errlen)
{
	uint32_t body_len;

	if (len != QEXEC_HEADER_SIZE)
		return refuse(-EPROTO, err, errlen, "header is %zu bytes, not %u", len,
			      QEXEC_HEADER_SIZE);
	if (hdr[0] != 'Q' || hdr[1] != 'X')
		return refuse(-EPROTO, err, errlen,
			      "no qube.Exec header (stdin starts with 0x%02x 0x%02x)", hdr[0], hdr[1]);
	if (hdr[2] != QEXEC_VERSION)
		return refuse(-EPROTO, err, errlen, "header version %u (this qube knows %u)", hdr[2],
			      QEXEC_VERSION);
	if (hdr[3] != 0)
		return refuse(-EPROTO, err, errlen, "unknown header flags 0x%02x", hdr[3]);
	body_len = (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 | (uint32_t)hdr[6] << 16 |
		   (uint32_t)hdr[7] << 24;
	if (body_len < 3)
		return refuse(-EPROTO, err, errlen, "request of %u bytes has no program", body_len);
	if (body_len > QEXEC_BODY_MAX)
		return refuse(-E2BIG, err, errlen, "request of %u bytes is over the cap of %u",
			      body_len, QEXEC_BODY_MAX);
	*ret_body_len = body_len;
	return 0;
}

int qexec_body_parse(uint8_t *body, size_t len, struct qexec_request *ret, char *err,
		     size_t errlen)
{
	size_t n = 0, argc;
	char **argv;

	if (len == 0 || len > QEXEC_BODY_MAX || body[len - 1] != '\0')
		return refuse(-EPROTO, err, errlen, "request does not end with a NUL byte");
	for (size_t i = 0; i < len; i++)
		n += body[i] == '\0';
	/* n strings: the user and n - 1 arguments */
	if (n < 2)
		return refuse(-EPROTO, err, errlen, "request names no program");
	argc = n - 1;
	if (argc > QEXEC_ARGC_MAX)
		return refuse(-E2BIG, err, errlen, "%zu arguments, over the cap of %u", argc,
			      QEXEC_ARGC_MAX);
	const char *user = (const char *)body;
	if (user[0] && !qrpc_user_name_is_valid(user))
		return refuse(-EPROTO, err, errlen, "user name is not valid");
	argv = calloc(argc + 1, sizeof(*argv));
	if (!argv)
		return refuse(-ENOMEM, err, errlen, "out of memory");
	size_t off = strlen(user) + 1;
	for (size_t i = 0; i < argc; i++) {
		argv[i] = (char *)body + off;
		off += strlen(argv[i]) + 1;
	}
	if (argv[0][0] == '\0') {
		free(argv);
		return refuse(-EPROTO, err, errlen, "the program name is empty");
	}
	ret->user = user;
	ret->argv = argv;
	ret->argc = argc;
	return 0;
}

int qexec_encode(const char *user, char *const *argv, size_t argc, uint8_t **ret_buf,
		 size_t *ret_len)
{
	size_t body = 0, off;
	uint8_t *buf;

	if (!user)
		user = "";
	if ((user[0] && !qrpc_user_name_is_valid(user)) || argc == 0 || !argv[0] || !argv[0][0])
		return -EINVAL;
	if (argc > QEXEC_ARGC_MAX)
		return -E2BIG;
	body = strlen(user) + 1;
	for (size_t i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;

		if (l > QEXEC_BODY_MAX || body > QEXEC_BODY_MAX - l)
			return -E2BIG;
		body += l;
	}
	buf = malloc(QEXEC_HEADER_SIZE + body);
	if (!buf)
		return -ENOMEM;
	buf[0] = 'Q';
	buf[1] = 'X';
	buf[2] = QEXEC_VERSION;
	buf[3] = 0;
	buf[4] = (uint8_t)body;
	buf[5] = (uint8_t)(body >> 8);
	buf[6] = (uint8_t)(body >> 16);
	buf[7] = (uint8_t)(body >> 24);
	off = QEXEC_HEADER_SIZE;
	memcpy(buf + off, user, strlen(user) + 1);
	off += strlen(user) + 1;
	for (size_t i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;

		memcpy(buf + off, argv[i], l);
		off += l;
	}
	*ret_buf = buf;
	*ret_len = off;
	return 0;
}
