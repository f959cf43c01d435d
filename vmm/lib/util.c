// SPDX-License-Identifier: GPL-2.0-or-later
/* libqvmm: error messages and running helper programs without a shell. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "qvmm.h"

extern char **environ;

#define RUN_OUT_MAX (1u << 20)
#define RUN_ERR_KEEP 512

int qvmm_err(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* appends what fd has to (buf, len); cap bytes at most (the rest is dropped) */
static int drain(int fd, char **buf, size_t *len, size_t *cap, size_t max)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -errno;
	if (n == 0)
		return 0;
	if (*len + (size_t)n + 1 > max)
		n = (ssize_t)(max - *len - 1 > 0 ? max - *len - 1 : 0);
	if (n == 0)
		return 1;
	if (*len + (size_t)n + 1 > *cap) {
		size_t nc = *cap ? *cap : 4096;
		while (nc < *len + (size_t)n + 1)
			nc *= 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return 1;
}

int qvmm_spawnattr_clean(posix_spawnattr_t *attr)
{
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	r = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(attr, &all);
	return -r;
}

int qvmm_run(char *const argv[], char **ret_out, char *err, size_t errlen)
{
	int ret, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	pid_t pid;
	char *out = NULL, *ebuf = NULL;
	size_t olen = 0, ocap = 0, elen = 0, ecap = 0;
	int status;

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		ret = qvmm_err(err, errlen, -errno, "pipe: %s", strerror(errno));
		goto out_close;
	}
	if ((ret = -posix_spawn_file_actions_init(&fa)) < 0) {
		qvmm_err(err, errlen, ret, "posix_spawn_file_actions_init: %s", strerror(-ret));
		goto out_close;
	}
	if ((ret = -posix_spawnattr_init(&attr)) < 0) {
		posix_spawn_file_actions_destroy(&fa);
		qvmm_err(err, errlen, ret, "posix_spawnattr_init: %s", strerror(-ret));
		goto out_close;
	}
	ret = qvmm_spawnattr_clean(&attr);
	if (!ret)
		ret = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!ret)
		ret = -posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	if (!ret)
		ret = -posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	if (!ret)
		ret = -posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (ret) {
		qvmm_err(err, errlen, ret, "cannot run %s: %s", argv[0], strerror(-ret));
		goto out_close;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;

	struct pollfd pfd[2] = { { .fd = outp[0], .events = POLLIN }, { .fd = errp[0], .events = POLLIN } };
	int open_fds = 2, drain_err = 0;
	while (open_fds) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			drain_err = -errno;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			int r = i == 0 ? drain(pfd[i].fd, &out, &olen, &ocap, RUN_OUT_MAX)
				       : drain(pfd[i].fd, &ebuf, &elen, &ecap, RUN_OUT_MAX);
			if (r <= 0) {
				if (r < 0 && !drain_err)
					drain_err = r;
				pfd[i].fd = -1;
				open_fds--;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			ret = qvmm_err(err, errlen, -errno, "waitpid %s: %s", argv[0], strerror(errno));
			goto out_close;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *e = ebuf ? ebuf : "";
		size_t el = strlen(e);
		while (el && (e[el - 1] == '\n' || e[el - 1] == ' '))
			el--;
		size_t from = el > RUN_ERR_KEEP ? el - RUN_ERR_KEEP : 0;
		if (WIFEXITED(status))
			ret = qvmm_err(err, errlen, -EIO, "%s: exit %d: %.*s", argv[0],
				       WEXITSTATUS(status), (int)(el - from), e + from);
		else
			ret = qvmm_err(err, errlen, -EIO, "%s: killed by signal %d", argv[0],
				       WTERMSIG(status));
		goto out_close;
	}
	if (drain_err) {
		ret = qvmm_err(err, errlen, drain_err, "reading from %s: %s", argv[0],
			       strerror(-drain_err));
		goto out_close;
	}
	if (ret_out) {
		if (!out && !(out = strdup(""))) {
			ret = qvmm_err(err, errlen, -ENOMEM, "out of memory");
			goto out_close;
		}
		*ret_out = out;
		out = NULL;
	}
	ret = 0;
out_close:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	free(out);
	free(ebuf);
	return ret;
}
