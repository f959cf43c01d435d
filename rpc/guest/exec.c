/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-exec: the guest side of the services qube.Exec and qube.VMShell.
 *
 * qube.Exec runs one program with an argv chosen by the caller, without a
 * shell anywhere: the caller's stdin starts with a header (docs/protocol.md,
 * "qube.Exec") that carries the user and the argv; everything after the
 * header is the program's stdin.  The header is read byte-exact from fd 0,
 * so the rest of the stream stays unread for the program, which then
 * replaces this process (execvp).
 *
 * Installed as /usr/lib/qube/qube-exec, with /etc/qube/rpc/qube.Exec a
 * link to it.  Invoked under another name ending in "VMShell" it is the
 * shell line service: the program is /bin/sh reading its script from stdin
 * (Qubes' qubes.VMShell).
 *
 * The caller is whoever the policy allowed to call qube.Exec here; the
 * header is checked as untrusted input all the same (length cap, NUL
 * termination, counts), and a bad header runs nothing.
 *
 * Exit status: the program's; 127 the program was not found; 126 it could
 * not be run (or the user could not be switched to); 125 a bad header.
 */
#include "qube-exec.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_BAD_HEADER 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

static const char *prog = "qube-exec";

static bool is_shell_service(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	size_t n;

	base = base ? base + 1 : argv0;
	n = strlen(base);
	return n >= 7 && strcmp(base + n - 7, "VMShell") == 0;
}

int main(int argc, char **argv)
{
	struct qexec_request req;
	uint8_t *untrusted_body;
	int r;

	(void)argc;
	if (argv[0] && is_shell_service(argv[0])) {
		/* qube.VMShell: the caller's stdin is the script */
		char *sh[] = { (char *)"/bin/sh", NULL };

		execv(sh[0], sh);
		fprintf(stderr, "%s: cannot run /bin/sh: %s\n", prog, strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	if (argv[1] && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: qube.Exec (an RPC service; see docs/protocol.md)\n"
		       "Reads a qube.Exec header (user and argv) from stdin and runs that\n"
		       "program, without a shell, with the rest of stdin as its stdin.\n"
		       "Exit status: the program's; 127 not found; 126 cannot run; 125 bad header.\n");
		return 0;
	}
	r = qexec_read_request(prog, STDIN_FILENO, &req, &untrusted_body);
	if (r < 0)
		return r == -ENOMEM ? EXIT_CANNOT_RUN : EXIT_BAD_HEADER;
	/* req's strings point into the body, which is now checked */
	int status;
	if (req.user[0] && qexec_become(prog, req.user) < 0) {
		status = EXIT_CANNOT_RUN;
	} else {
		execvp(req.argv[0], req.argv);
		r = errno;
		fprintf(stderr, "%s: %s: %s\n", prog, req.argv[0], strerror(r));
		status = r == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
	}
	free(req.argv);
	free(untrusted_body);
	return status;
}
