/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: the event loop's helpers, logging, paths and atomic files.
 */
#include <dirent.h>
#include <errno.h>
#include <sys/random.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qubed.h"

int qd_watch_add(struct qd *qd, struct qd_watch *w, int fd, uint32_t events, qd_watch_fn fn, void *ctx)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->fn = fn;
	w->ctx = ctx;
	if (epoll_ctl(qd->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int qd_watch_mod(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (epoll_ctl(qd->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -errno;
	return 0;
}

void qd_watch_del(struct qd *qd, struct qd_watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(qd->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
}

void qd_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

bool qd_time_passed(const struct timespec *t)
{
	struct timespec now;

	qd_now(&now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

void qd_time_after_ms(struct timespec *t, unsigned ms)
{
	qd_now(t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

void qd_log(const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ qubed: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000L);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* one line, control characters shown as '?' (messages may quote client input) */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	strcat(line, "\n");
	(void)!write(STDERR_FILENO, line, strlen(line));
}

void qd_err(struct qerr *e, const char *type, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	snprintf(e->type, sizeof(e->type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

int qd_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int qd_mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_rf_at(int dirfd, const char *name, int depth)
{
	struct stat st;

	if (depth > 16)
		return -ELOOP;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d;
		struct dirent *de;
		int r = 0;

		if (fd < 0)
			return -errno;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -errno;
		}
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			int rr = rm_rf_at(fd, de->d_name, depth + 1);
			if (rr < 0 && r == 0)
				r = rr;
		}
		closedir(d);
		if (r < 0)
			return r;
		if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int qd_rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path, 0);
}

int qd_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[4096];
	const char *p = data;
	int fd, r = 0;

	if (qd_path(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) < 0)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* STATE/instance-id: this qubed's own uuid, made at its first start.  Its
 * domains carry it (<qube:owner>) so that another qubed on the same
 * libvirtd (a second state directory, a test) never adopts or destroys
 * them, nor this one theirs. */
int qd_instance_id(const char *state_dir, char ret[37])
{
	char path[4096], buf[64];
	unsigned char b[16];
	FILE *f;
	int n;

	if (qd_path(path, sizeof(path), "%s/instance-id", state_dir) < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (f) {
		bool ok = fgets(buf, sizeof(buf), f) != NULL;
		fclose(f);
		buf[strcspn(buf, "\n")] = '\0';
		if (ok && strlen(buf) == 36 && strspn(buf, "0123456789abcdef-") == 36) {
			memcpy(ret, buf, 37);
			return 0;
		}
		return -EINVAL;
	}
	if (errno != ENOENT)
		return -errno;
	for (size_t got = 0; got < sizeof(b);) {
		ssize_t k = getrandom(b + got, sizeof(b) - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		got += (size_t)k;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	n = snprintf(buf, sizeof(buf),
		     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n",
		     b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		     b[13], b[14], b[15]);
	int r = qd_write_atomic(path, buf, (size_t)n, 0644);
	if (r < 0)
		return r;
	memcpy(ret, buf, 36);
	ret[36] = '\0';
	return 0;
}
