/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-call TARGET SERVICE[+ARG] [-- LOCAL_PROGRAM ARGS...]
 *
 * Runs in a guest: asks the broker (vsock port QRPC_PORT_BROKER on the
 * host) to run SERVICE in TARGET, then joins its own stdin/stdout (or the
 * local program's stdout/stdin) to the remote service.  Exits with the
 * remote exit code; 126 when refused, 125 on an RPC failure, 2 for bad
 * usage (names are checked before anything is sent).
 */
#include "call-client.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-call [--transport vsock|unix:DIR] TARGET SERVICE[+ARG] [-- PROGRAM ARGS...]\n"
		"Calls SERVICE (with argument ARG) in the qube TARGET through the broker.\n"
		"TARGET is a qube name, @default, @adminvm, @dispvm or @dispvm:NAME.\n"
		"SERVICE is 1-%u of [A-Za-z0-9_.-] (not starting with '.'); ARG is 0-%u of\n"
		"[A-Za-z0-9_.+-].  Without PROGRAM, stdin goes to the service and its stdout to\n"
		"stdout; with PROGRAM, the service's stdout feeds PROGRAM's stdin and\n"
		"PROGRAM's stdout goes to the service.  The service's stderr goes to stderr.\n"
		"Exit status: the service's; 126 refused by policy; 125 RPC failure; 2 usage.\n",
		QRPC_MAX_SERVICE, QRPC_MAX_ARGUMENT);
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qube-call: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *transport = "vsock";
	struct qrpc_transport t;
	char service[QRPC_MAX_SERVICE + 1], argument[QRPC_MAX_ARGUMENT + 1], err[256];
	char **prog = NULL;
	int o;

	/* "+" : stop at the first non-option, so the local program's own
	 * options after "--" are left alone. */
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			transport = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *target = argv[optind];
	const char *spec = argv[optind + 1];
	if (argc - optind > 2) {
		if (strcmp(argv[optind + 2], "--") != 0 || argc - optind < 4) {
			usage(stderr);
			return EXIT_USAGE;
		}
		prog = argv + optind + 3;
	}
	if (qrpc_transport_parse(transport, &t) < 0)
		return fail(EXIT_USAGE, "--transport: invalid transport '%s' (want vsock or unix:DIR)",
			    transport);
	/* Validate exactly what will be sent, with the rules the broker and
	 * the policy apply. */
	if (qcall_check(target, spec, service, argument, err, sizeof(err)) < 0)
		return fail(EXIT_USAGE, "%s", err);

	signal(SIGPIPE, SIG_IGN);
	struct qcall_opts co = {
		.prog = "qube-call",
		.transport = &t,
		.transport_name = transport,
		.target = target,
		.service = service,
		.argument = argument,
		.local_prog = prog,
		.in_fd = STDIN_FILENO,
		.out_fd = STDOUT_FILENO,
	};
	return qcall_run(&co);
}
