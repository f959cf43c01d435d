/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the rpc unit tests: temporary directories, files,
 * child processes with a deadline.  Test code only. */
#ifndef QRPC_TESTLIB_H
#define QRPC_TESTLIB_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Noreturn static inline void tl_die(const char *what)
{
	fprintf(stderr, "test setup failed: %s: %s\n", what, strerror(errno));
	exit(99); /* meson: hard error */
}

/* A fresh directory under $TMPDIR (or /tmp); short, so socket paths fit. */
static inline char *tl_mkdtemp(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;
	if (!base || strlen(base) > 40)
		base = "/tmp";
	if (asprintf(&path, "%s/%s.XXXXXX", base, tag) < 0)
		tl_die("asprintf");
	if (!mkdtemp(path))
		tl_die("mkdtemp");
	return path;
}

static inline int tl_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static inline void tl_rm_rf(const char *dir)
{
	nftw(dir, tl_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tl_write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		tl_die("asprintf");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		tl_die(p);
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n)
		tl_die(p);
	close(fd);
	chmod(p, mode);
	free(p);
}

/* Whole file as a NUL-terminated string (NULL if unreadable). */
static inline char *tl_read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		tl_die("malloc");
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				tl_die("realloc");
		}
	}
	fclose(f);
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

static inline long long tl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for PID up to TIMEOUT_MS: its exit code, 128+signal, or -1 after
 * killing it at the deadline. */
static inline int tl_wait_pid(pid_t pid, int timeout_ms)
{
	long long end = tl_now_ms() + timeout_ms;
	int status;
	for (;;) {
		pid_t p = waitpid(pid, &status, WNOHANG);
		if (p == pid)
			break;
		if (p < 0 && errno != EINTR)
			return -2;
		if (tl_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		poll(NULL, 0, 5);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Runs ARGV with stdin from IN_PATH (or /dev/null) and stdout/stderr to
 * OUT_PATH/ERR_PATH (created). */
static inline pid_t tl_spawn(char *const argv[], const char *in_path, const char *out_path,
			     const char *err_path)
{
	pid_t pid = fork();
	if (pid < 0)
		tl_die("fork");
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(98);
		execv(argv[0], argv);
		_exit(97);
	}
	return pid;
}

/* True once /proc/PID has gone (the process exited AND was reaped). */
static inline bool tl_wait_gone(pid_t pid, int timeout_ms)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d", (int)pid);
	long long end = tl_now_ms() + timeout_ms;
	while (access(p, F_OK) == 0) {
		if (tl_now_ms() > end)
			return false;
		poll(NULL, 0, 10);
	}
	return true;
}

#endif
