/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-agent's request handling, apart from its sockets and processes so
 * that it can be fuzzed: what the broker sends on a SERVICE channel before
 * the streams (HELLO, SERVICE_START), and the lookup of the service in the
 * service directory.
 */
#ifndef QAGENT_H
#define QAGENT_H

#include "qrpc.h"

/* A validated SERVICE_START: every field has passed the qrpc name rules. */
struct qagent_request {
	uint32_t version; /* negotiated protocol version */
	char source[QRPC_MAX_QUBE + 1];
	char service[QRPC_MAX_SERVICE + 1];
	char argument[QRPC_MAX_ARGUMENT + 1];
	char requested_target[QRPC_MAX_TARGET + 1];
	/* SERVICE_START_AS (version 2): the user to run the service as, from
	 * the policy's user=; "" (SERVICE_START): the agent's own user */
	char user[QRPC_MAX_USER + 1];
};

/*
 * Parses the first bytes the broker sent on a SERVICE connection: HELLO,
 * then SERVICE_START, checked by a SERVICE/SERVER state machine whose own
 * HELLO is taken as sent.  UNTRUSTED_BUF holds everything received so far
 * (from the first byte); parsing always restarts at its beginning, so
 * calling again with more bytes is fine.
 *
 * Returns -EAGAIN while incomplete; 0 with *ret_state (positioned after
 * SERVICE_START), *ret_request and *ret_used (bytes consumed; anything
 * after them is already stdin traffic); or the codec's / state machine's
 * error (-EPROTO, -EMSGSIZE, -EBADMSG).
 */
int qagent_parse_request(const uint8_t *untrusted_buf, size_t len, struct qrpc_state *ret_state,
			 struct qagent_request *ret_request, size_t *ret_used);

enum qagent_service_kind {
	QAGENT_SERVICE_EXEC,   /* a file: executed directly, never through a shell */
	QAGENT_SERVICE_SOCKET, /* a unix socket: connected, sent the header line */
};

/* "SERVICE+ARGUMENT" always fits: 64 + 1 + 64 bytes. */
#define QAGENT_MAX_FILE_NAME (QRPC_MAX_SERVICE + 1 + QRPC_MAX_ARGUMENT)

struct qagent_service {
	enum qagent_service_kind kind;
	char file[QAGENT_MAX_FILE_NAME + 1]; /* a name inside the service directory */
};

/*
 * Finds REQUEST's service in the directory DIR_FD: "SERVICE+ARGUMENT" if it
 * exists (for an empty argument, "SERVICE+"), else "SERVICE".  Symbolic
 * links are followed (the directory is the administrator's); a socket is a
 * SOCKET service, any other non-directory file an EXEC service.  The file
 * name is built only from validated names, so it never contains '/' and
 * never starts with '.'.  -ENOENT when neither exists.
 */
int qagent_resolve_service(int dir_fd, const struct qagent_request *request,
			   struct qagent_service *ret_service);

/* The header line written to a SOCKET service before the stream:
 * "SOURCE SERVICE+ARGUMENT REQUESTED_TARGET\n".  Returns its length, or
 * -ENOBUFS if CAP is too small (QAGENT_SOCKET_HEADER_MAX always fits). */
#define QAGENT_SOCKET_HEADER_MAX (QRPC_MAX_QUBE + 1 + QAGENT_MAX_FILE_NAME + 1 + QRPC_MAX_TARGET + 2)
int qagent_socket_header(const struct qagent_request *request, char *buf, size_t cap);

#endif
