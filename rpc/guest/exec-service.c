/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The service side shared by qube.Exec/qube.VMShell (exec.c) and
 * qube.StartApp (start-app.c): reading the request header from stdin and
 * becoming the user it names.
 */
#include "qube-exec.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int qexec_read_request(const char *prog, int fd, struct qexec_request *ret, uint8_t **ret_body)
{
	uint8_t hdr[QEXEC_HEADER_SIZE], *untrusted_body;
	uint32_t body_len;
	char err[160];
	int r;

	r = read_exact(fd, hdr, sizeof(hdr));
	if (r < 0) {
		fprintf(stderr, "%s: no request header on stdin (%s)\n", prog,
			r == -EPIPE ? "end of input" : strerror(-r));
		return r;
	}
	r = qexec_header_parse(hdr, sizeof(hdr), &body_len, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: bad request header: %s\n", prog, err);
		return r;
	}
	untrusted_body = malloc(body_len ? body_len : 1);
	if (!untrusted_body) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -ENOMEM;
	}
	r = read_exact(fd, untrusted_body, body_len);
	if (r < 0) {
		fprintf(stderr, "%s: request cut short (%s)\n", prog,
			r == -EPIPE ? "end of input" : strerror(-r));
		free(untrusted_body);
		return r;
	}
	r = qexec_body_parse(untrusted_body, body_len, ret, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: bad request: %s\n", prog, err);
		free(untrusted_body);
		return r;
	}
	*ret_body = untrusted_body; /* checked: its strings are the request */
	return 0;
}

int qexec_become(const char *prog, const char *name)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (!pw) {
		fprintf(stderr, "%s: no user '%s' in this qube\n", prog, name);
		return -ESRCH;
	}
	if (pw->pw_uid == geteuid())
		return 0;
	if (geteuid() != 0) {
		fprintf(stderr, "%s: cannot run as '%s': the service does not run as root\n", prog,
			name);
		return -EPERM;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "%s: cannot switch to user '%s': %s\n", prog, name, strerror(errno));
		return -EPERM;
	}
	if (setenv("HOME", pw->pw_dir, 1) < 0 || setenv("USER", pw->pw_name, 1) < 0 ||
	    setenv("LOGNAME", pw->pw_name, 1) < 0)
		return -ENOMEM;
	/* its home, else / (a service starts in the agent's directory) */
	if (chdir(pw->pw_dir) < 0 && chdir("/") < 0)
		return -errno;
	return 0;
}
