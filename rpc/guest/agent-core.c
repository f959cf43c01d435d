/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qube-agent request handling; see agent.h. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int qagent_parse_request(const uint8_t *untrusted_buf, size_t len, struct qrpc_state *ret_state,
			 struct qagent_request *ret_request, size_t *ret_used)
{
	struct qrpc_state st;
	struct qrpc_msg untrusted_msg;
	struct qagent_request req;
	size_t off = 0, used;
	int r;

	qrpc_state_init(&st, QRPC_CHANNEL_SERVICE, QRPC_SIDE_SERVER);
	struct qrpc_msg hello = { .type = QRPC_MSG_HELLO };
	hello.u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
	hello.u.hello.version_max = QRPC_PROTOCOL_VERSION;
	r = qrpc_state_on_send(&st, &hello);
	if (r < 0)
		return r;

	/* Exactly two messages: HELLO, then SERVICE_START (or, in version 2,
	 * SERVICE_START_AS).  The state machine rejects every other type and
	 * order. */
	for (int i = 0; i < 2; i++) {
		r = qrpc_state_parse(&st, untrusted_buf + off, len - off, &untrusted_msg, &used);
		if (r < 0)
			return r;
		if (i == 0 && untrusted_msg.type != QRPC_MSG_HELLO)
			return -EPROTO;
		if (i == 1 && untrusted_msg.type != QRPC_MSG_SERVICE_START &&
		    untrusted_msg.type != QRPC_MSG_SERVICE_START_AS)
			return -EPROTO;
		off += used;
	}

	/* Sanitising: the decoder has checked every field against the qrpc
	 * name rules (qube name, service, argument, target); check again
	 * here, where the names turn into a file name and environment. */
	const struct qrpc_msg *m = &untrusted_msg;
	if (!qrpc_qube_name_is_valid(m->u.service_start.source) ||
	    !qrpc_service_name_is_valid(m->u.service_start.service) ||
	    !qrpc_argument_is_valid(m->u.service_start.argument) ||
	    !qrpc_target_is_valid(m->u.service_start.requested_target) ||
	    (m->type == QRPC_MSG_SERVICE_START_AS &&
	     !qrpc_user_name_is_valid(m->u.service_start.user)))
		return -EBADMSG;
	memset(&req, 0, sizeof(req));
	req.version = st.version;
	memcpy(req.source, m->u.service_start.source, sizeof(req.source));
	memcpy(req.service, m->u.service_start.service, sizeof(req.service));
	memcpy(req.argument, m->u.service_start.argument, sizeof(req.argument));
	memcpy(req.requested_target, m->u.service_start.requested_target,
	       sizeof(req.requested_target));
	memcpy(req.user, m->u.service_start.user, sizeof(req.user)); /* "" for SERVICE_START */

	*ret_state = st;
	*ret_request = req;
	*ret_used = off;
	return 0;
}

/* Classifies DIR_FD/NAME: 1 found (kind set), 0 absent, negative errno. */
static int lookup(int dir_fd, const char *name, enum qagent_service_kind *ret_kind)
{
	struct stat st;

	if (fstatat(dir_fd, name, &st, 0) < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
			return 0;
		return -errno;
	}
	if (S_ISDIR(st.st_mode))
		return 0;
	*ret_kind = S_ISSOCK(st.st_mode) ? QAGENT_SERVICE_SOCKET : QAGENT_SERVICE_EXEC;
	return 1;
}

int qagent_resolve_service(int dir_fd, const struct qagent_request *request,
			   struct qagent_service *ret_service)
{
	struct qagent_service svc;
	int r, n;

	/* Only validated names make up the file name: neither may contain
	 * '/', the service cannot start with '.', so the name stays a single
	 * entry of the directory. */
	if (!qrpc_service_name_is_valid(request->service) ||
	    !qrpc_argument_is_valid(request->argument))
		return -EINVAL;

	memset(&svc, 0, sizeof(svc));
	n = snprintf(svc.file, sizeof(svc.file), "%s+%s", request->service, request->argument);
	if (n < 0 || (size_t)n >= sizeof(svc.file))
		return -ENAMETOOLONG;
	r = lookup(dir_fd, svc.file, &svc.kind);
	if (r < 0)
		return r;
	if (r == 0) {
		n = snprintf(svc.file, sizeof(svc.file), "%s", request->service);
		if (n < 0 || (size_t)n >= sizeof(svc.file))
			return -ENAMETOOLONG;
		r = lookup(dir_fd, svc.file, &svc.kind);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENOENT;
	}
	*ret_service = svc;
	return 0;
}

int qagent_socket_header(const struct qagent_request *request, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s %s+%s %s\n", request->source, request->service,
			 request->argument, request->requested_target);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENOBUFS;
	return n;
}
