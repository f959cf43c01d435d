/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qube-agent's request handling without sockets.  The
 * input is what a broker sends first on a SERVICE connection (HELLO,
 * SERVICE_START, maybe stdin after it); every accepted request is then
 * resolved against a real service directory made once per process.
 *
 * Invariants (abort on violation): an accepted request's fields pass the
 * qrpc name rules (a user only with version 2); the resolved file name is "SERVICE+ARG" or "SERVICE",
 * holds no '/', does not start with '.'; the socket header fits and is
 * one line; feeding any shorter prefix never yields a different request.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dir_fd = -1;
static char dir_path[64];

static void remove_dir(void)
{
	static const char *names[] = { "svc", "svc+arg", "sock", "plain+" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dir_fd, names[i], 0);
	unlinkat(dir_fd, "adir", AT_REMOVEDIR);
	rmdir(dir_path);
}

static void setup(void)
{
	snprintf(dir_path, sizeof(dir_path), "/tmp/qagent-fuzz.XXXXXX");
	if (!mkdtemp(dir_path))
		abort();
	dir_fd = open(dir_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		abort();
	static const char *files[] = { "svc", "svc+arg", "plain+" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int fd = openat(dir_fd, files[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
		if (fd < 0)
			abort();
		close(fd);
	}
	mkdirat(dir_fd, "adir", 0755);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/sock", dir_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		abort();
	close(s);
	atexit(remove_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qrpc_state st;
	struct qagent_request req;
	struct qagent_service svc;
	size_t used;

	if (dir_fd < 0)
		setup();
	if (qagent_parse_request(data, size, &st, &req, &used) != 0)
		return 0;

	if (used > size || !qrpc_qube_name_is_valid(req.source) ||
	    !qrpc_service_name_is_valid(req.service) || !qrpc_argument_is_valid(req.argument) ||
	    !qrpc_target_is_valid(req.requested_target) || req.version < QRPC_PROTOCOL_VERSION_MIN ||
	    req.version > QRPC_PROTOCOL_VERSION)
		abort();
	/* a user only through SERVICE_START_AS, which needs version 2 */
	if (req.user[0] && (req.version < 2 || !qrpc_user_name_is_valid(req.user)))
		abort();
	/* the same bytes cut short are incomplete, never another request */
	struct qrpc_state st2;
	struct qagent_request req2;
	size_t used2;
	if (qagent_parse_request(data, used - 1, &st2, &req2, &used2) == 0)
		abort();
	/* stdin may follow in the same buffer */
	struct qrpc_msg in = { .type = QRPC_MSG_STDIN };
	in.u.data.data = (const uint8_t *)"x";
	in.u.data.len = 1;
	if (qrpc_state_on_recv(&st, &in) != 0)
		abort();

	int r = qagent_resolve_service(dir_fd, &req, &svc);
	if (r == 0) {
		char full[QAGENT_MAX_FILE_NAME + 2];
		snprintf(full, sizeof(full), "%s+%s", req.service, req.argument);
		if (strchr(svc.file, '/') || svc.file[0] == '.' || svc.file[0] == '\0')
			abort();
		if (strcmp(svc.file, full) != 0 && strcmp(svc.file, req.service) != 0)
			abort();
		if (strcmp(svc.file, "sock") == 0 ? svc.kind != QAGENT_SERVICE_SOCKET
						  : svc.kind != QAGENT_SERVICE_EXEC)
			abort();
	} else if (r != -ENOENT) {
		abort();
	}

	char hdr[QAGENT_SOCKET_HEADER_MAX];
	int n = qagent_socket_header(&req, hdr, sizeof(hdr));
	if (n <= 0 || hdr[n - 1] != '\n' || memchr(hdr, '\n', (size_t)n - 1))
		abort();
	return 0;
}
