/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-evil-agent: a hostile target qube.  Listens where a simulated qube's
 * agent would (DIR/vsock, hybrid convention) and answers the broker's
 * SERVICE connection with one class of bad behaviour:
 *
 *   rpc-evil-agent DIR MODE
 *
 *   badok      answers "NO\n" instead of "OK <n>\n"
 *   longok     answers "OK " and 40 digits
 *   nook       reads the CONNECT line and then says nothing
 *   silent     "OK <n>\n" and then nothing
 *   garbage    "OK <n>\n" and 4 KiB of noise
 *   wrongdir   OK, HELLO, then a CALL_REQUEST (a caller's message)
 *   early      OK, then STDOUT before HELLO
 *   huge       OK, HELLO, then a STDOUT header declaring 4 GiB
 *   noeof      OK, HELLO, then EXIT 0 without the stream EOFs
 *   closes     OK, HELLO, then closes without an exit code
 *   badexit    OK, HELLO, EOFs, then EXIT 300
 *   bigok      answers "OK 4294967296" (ten digits, above 2^32-1)
 *
 * and one well-behaved but strict mode:
 *
 *   hellolate  OK, then waits for the broker's HELLO and for 500 ms more
 *              before sending its own HELLO; if anything but that HELLO
 *              arrived meanwhile (docs/protocol.md: nothing but HELLO before
 *              the peer's HELLO) it says so on stderr and closes (the call
 *              fails); otherwise it serves the call: EOFs and EXIT 0, and
 *              prints "hellolate: nothing but HELLO before ours"
 *
 * Serves connections one after the other until killed.
 */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qrpc.h"

#define RAW_WIRE_MAX (8192)
#include "raw-wire.h"

static void text(const char *s)
{
	memcpy(out + out_len, s, strlen(s));
	out_len += strlen(s);
}

/* Reads exactly LEN bytes; false on EOF or error. */
static bool read_full(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void hello_late(int fd)
{
	uint8_t in[QRPC_HEADER_SIZE + 512];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint32_t len;

	text("OK 1073741824\n");
	if (send(fd, out, out_len, MSG_NOSIGNAL) < 0)
		return;
	/* the broker's HELLO: a header and {version_min, version_max} */
	if (!read_full(fd, in, QRPC_HEADER_SIZE + 8) || in[0] != QRPC_MSG_HELLO) {
		fprintf(stderr, "hellolate: the broker's first message is not HELLO\n");
		return;
	}
	if (poll(&p, 1, 500) != 0) {
		fprintf(stderr, "hellolate: SERVICE_START (or more) before our HELLO: closing\n");
		return;
	}
	out_len = 0;
	hello();
	if (send(fd, out, out_len, MSG_NOSIGNAL) < 0 || !read_full(fd, in, QRPC_HEADER_SIZE))
		return;
	len = (uint32_t)in[4] | (uint32_t)in[5] << 8 | (uint32_t)in[6] << 16 |
	      (uint32_t)in[7] << 24;
	if ((in[0] != QRPC_MSG_SERVICE_START && in[0] != QRPC_MSG_SERVICE_START_AS) ||
	    len > sizeof(in) - QRPC_HEADER_SIZE || !read_full(fd, in + QRPC_HEADER_SIZE, len)) {
		fprintf(stderr, "hellolate: no SERVICE_START after the HELLOs\n");
		return;
	}
	fprintf(stderr, "hellolate: nothing but HELLO before ours\n");
	out_len = 0;
	header(QRPC_MSG_EOF, 4);
	put32(QRPC_STREAM_STDOUT);
	header(QRPC_MSG_EOF, 4);
	put32(QRPC_STREAM_STDERR);
	header(QRPC_MSG_EXIT, 4);
	put32(0);
	if (send(fd, out, out_len, MSG_NOSIGNAL) < 0)
		return;
	/* until the broker closes */
	while (read(fd, in, sizeof(in)) > 0)
		;
}

static void serve(int fd, const char *mode)
{
	char c;

	/* the CONNECT line */
	while (read(fd, &c, 1) == 1 && c != '\n')
		;
	out_len = 0;
	if (strcmp(mode, "hellolate") == 0) {
		hello_late(fd);
		close(fd);
		return;
	}
	if (strcmp(mode, "badok") == 0) {
		text("NO\n");
	} else if (strcmp(mode, "longok") == 0) {
		text("OK 1234567890123456789012345678901234567890\n");
	} else if (strcmp(mode, "bigok") == 0) {
		text("OK 4294967296\n");
	} else if (strcmp(mode, "nook") == 0) {
		/* nothing */
	} else {
		text("OK 1073741824\n");
		if (strcmp(mode, "garbage") == 0) {
			for (int i = 0; i < 4096; i++)
				out[out_len++] = (uint8_t)(i * 131u + 7u);
		} else if (strcmp(mode, "wrongdir") == 0) {
			hello();
			header(QRPC_MSG_CALL_REQUEST, 3 + 5 + 9);
			out[out_len++] = 5;
			text("vault");
			out[out_len++] = 9;
			text("test.Echo");
			out[out_len++] = 0;
		} else if (strcmp(mode, "early") == 0) {
			header(QRPC_MSG_STDOUT, 5);
			text("early");
		} else if (strcmp(mode, "huge") == 0) {
			hello();
			header(QRPC_MSG_STDOUT, 0xffffffffu);
		} else if (strcmp(mode, "noeof") == 0) {
			hello();
			header(QRPC_MSG_EXIT, 4);
			put32(0);
		} else if (strcmp(mode, "closes") == 0) {
			hello();
		} else if (strcmp(mode, "badexit") == 0) {
			hello();
			header(QRPC_MSG_EOF, 4);
			put32(QRPC_STREAM_STDOUT);
			header(QRPC_MSG_EOF, 4);
			put32(QRPC_STREAM_STDERR);
			header(QRPC_MSG_EXIT, 4);
			put32(300);
		}
	}
	if (out_len && send(fd, out, out_len, MSG_NOSIGNAL) < 0)
		perror("rpc-evil-agent: send");
	if (strcmp(mode, "silent") == 0 || strcmp(mode, "nook") == 0) {
		/* hold the connection until the broker gives up */
		char buf[256];
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd;

	if (argc != 3 || (size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock", argv[1]) >=
				 sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: rpc-evil-agent DIR MODE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
		fprintf(stderr, "rpc-evil-agent: %s: %s\n", sa.sun_path, strerror(errno));
		return 1;
	}
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0)
			serve(fd, argv[2]);
	}
}
