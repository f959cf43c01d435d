/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The caller's side of one RPC call through the broker, shared by
 * qube-call (in a guest) and `qubectl run` (on the host, as dom0).
 */
#ifndef QUBE_CALL_CLIENT_H
#define QUBE_CALL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrpc.h"

struct qcall_opts {
	const char *prog;                    /* prefix of messages: "qube-call" */
	const struct qrpc_transport *transport;
	const char *transport_name;          /* for messages */
	const char *target, *service, *argument; /* checked with qcall_check */
	/* sent as the start of the service's stdin, before in_fd's bytes */
	const uint8_t *prefix;
	size_t prefix_len;
	/* PROGRAM ARGS... joined to the service instead of in_fd/out_fd */
	char **local_prog;
	int in_fd;   /* local input; -1: none (stdin ends after the prefix) */
	int out_fd;  /* the service's stdout goes here; -1: discarded */
	bool discard_stderr; /* else the service's stderr goes to stderr */
};

/* Checks TARGET and SERVICE[+ARG] as the broker will; 0 and the split
 * service and argument (buffers of QRPC_MAX_SERVICE + 1 and
 * QRPC_MAX_ARGUMENT + 1), or -EINVAL with a message in ERR. */
int qcall_check(const char *target, const char *spec, char *ret_service, char *ret_argument,
		char *err, size_t errlen);
/* Makes the call and relays until the service's exit.  Returns the exit
 * status for the caller: the service's, QRPC_EXIT_REFUSED (126),
 * QRPC_EXIT_RPC_FAILED (125), or 141 when the local reader of the output
 * went away.  Messages go to stderr prefixed with o->prog.  SIGPIPE must
 * be ignored by the caller. */
int qcall_run(const struct qcall_opts *o);

#endif
