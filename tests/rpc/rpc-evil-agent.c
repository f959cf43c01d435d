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
 *
 * Serves connections one after the other until killed.
 */
#include <errno.h>
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

static void serve(int fd, const char *mode)
{
	char c;

	/* the CONNECT line */
	while (read(fd, &c, 1) == 1 && c != '\n')
		;
	out_len = 0;
	if (strcmp(mode, "badok") == 0) {
		text("NO\n");
	} else if (strcmp(mode, "longok") == 0) {
		text("OK 1234567890123456789012345678901234567890\n");
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
