/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: running helper programs (argv, never a shell) and importing a
 * template's root image.  An imported image is data from the user, and an
 * image format can point elsewhere: a qcow2 with a backing file or an
 * external data file would make qemu-img (running as root) read any file
 * of the host into the template.  So the format is decided from the
 * image's first bytes, a qcow2 is inspected with qemu-img pinned to that
 * format and refused if it names any other file, and the conversion runs
 * with the format given explicitly.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qubed.h"

extern char **environ;

int qd_run(char *const argv[], char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int pfd[2], status, r;
	pid_t pid;
	size_t n = 0;

	if (out && outlen)
		out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawnattr_init(&attr);
	r = -qvmm_spawnattr_clean(&attr); /* not qubed's blocked signals */
	if (r == 0)
		r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		if (out)
			snprintf(out, outlen, "%s: %s", argv[0], strerror(r));
		return -r;
	}
	for (;;) {
		char buf[4096];
		ssize_t k = read(pfd[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (out && n + 1 < outlen) {
			size_t take = (size_t)k < outlen - n - 1 ? (size_t)k : outlen - n - 1;
			memcpy(out + n, buf, take);
			n += take;
			out[n] = '\0';
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int qd_image_import(const char *in, const char *out, char *err, size_t errlen)
{
	unsigned char magic[4] = { 0 };
	char info[8192];
	const char *fmt;
	int fd, r;

	fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", in, strerror(errno));
		return -errno;
	}
	if (read(fd, magic, sizeof(magic)) != (ssize_t)sizeof(magic)) {
		close(fd);
		snprintf(err, errlen, "the image is shorter than 4 bytes");
		return -EINVAL;
	}
	close(fd);
	fmt = memcmp(magic, "QFI\xfb", 4) == 0 ? "qcow2" : "raw";
	if (strcmp(fmt, "qcow2") == 0) {
		char *argv[] = { "qemu-img", "info", "--output=json", "-f", "qcow2", (char *)in, NULL };
		r = qd_run(argv, info, sizeof(info));
		if (r != 0) {
			snprintf(err, errlen, "not a usable qcow2 image: %.300s", info);
			return -EINVAL;
		}
		if (strstr(info, "\"backing-filename\"") || strstr(info, "\"data-file\"") ||
		    strstr(info, "\"full-backing-filename\"")) {
			snprintf(err, errlen, "the qcow2 image refers to another file (backing or data file): refused");
			return -EPERM;
		}
	}
	{
		char *argv[] = { "qemu-img", "convert", "-q", "-f", (char *)fmt, "-O", "qcow2", (char *)in, (char *)out, NULL };
		r = qd_run(argv, info, sizeof(info));
		if (r != 0) {
			snprintf(err, errlen, "qemu-img convert (%s) failed: %.300s", fmt, info);
			return -EIO;
		}
	}
	return 0;
}
