// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm: one qube-vsockd per qube, for hosts without /dev/vhost-vsock.
 *
 * QEMU runs as libvirt's unprivileged user (libvirt-qemu on Debian, qemu
 * on Fedora) and must connect to the vhost-user socket, which qube-vsockd
 * (started by root) creates under root's umask. Once the socket appears
 * it is chowned to that user and made 0660. The directory holding it must
 * be searchable by that user; that is the caller's layout to decide.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qvmm.h"
#include "internal.h"

extern char **environ;

#define SOCKET_WAIT_MS 5000
#define SOCKET_POLL_MS 20

static const char *const qemu_users[] = { "libvirt-qemu", "qemu" };

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* chown the socket to QEMU's user when we can, then 0660 */
static int socket_grant(const char *sock, char *err, size_t errlen)
{
	if (geteuid() == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(qemu_users); i++) {
			struct passwd pw, *res = NULL;
			char buf[1024];

			if (getpwnam_r(qemu_users[i], &pw, buf, sizeof(buf), &res) != 0 || !res)
				continue;
			if (lchown(sock, pw.pw_uid, pw.pw_gid) < 0)
				return qvmm_err(err, errlen, -errno, "%s: chown to %s: %s", sock,
						qemu_users[i], strerror(errno));
			break;
		}
	}
	if (chmod(sock, 0660) < 0)
		return qvmm_err(err, errlen, -errno, "%s: chmod: %s", sock, strerror(errno));
	return 0;
}

int qvmm_vsockd_spawn(const char *vsockd_path, const char *vhost_user_socket, uint32_t cid,
		      const char *uds_path, const char *log_path, pid_t *ret_pid,
		      char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char cidbuf[16];
	pid_t pid;
	int r, status;
	struct stat st;

	if (!vsockd_path || !vhost_user_socket || !uds_path || !ret_pid)
		return qvmm_err(err, errlen, -EINVAL, "vsockd_path, vhost_user_socket, uds_path "
				"and ret_pid are required");
	if (vhost_user_socket[0] != '/' || uds_path[0] != '/')
		return qvmm_err(err, errlen, -EINVAL, "vhost_user_socket and uds_path must be absolute");
	if (cid < 3 || cid == UINT32_MAX)
		return qvmm_err(err, errlen, -EINVAL, "cid %" PRIu32 ": out of range 3..%" PRIu32, cid,
				UINT32_MAX - 1);
	if (lstat(vhost_user_socket, &st) == 0)
		return qvmm_err(err, errlen, -EEXIST, "%s: already exists (another qube-vsockd?)",
				vhost_user_socket);
	snprintf(cidbuf, sizeof(cidbuf), "%" PRIu32, cid);
	char *argv[] = { (char *)vsockd_path, "--socket", (char *)vhost_user_socket,
			 "--guest-cid", cidbuf, "--uds-path", (char *)uds_path, NULL };

	if ((r = -posix_spawn_file_actions_init(&fa)) < 0)
		return qvmm_err(err, errlen, r, "posix_spawn: %s", strerror(-r));
	if ((r = -posix_spawnattr_init(&attr)) < 0) {
		posix_spawn_file_actions_destroy(&fa);
		return qvmm_err(err, errlen, r, "posix_spawn: %s", strerror(-r));
	}
	r = qvmm_spawnattr_clean(&attr);
	if (!r)
		r = -posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r && log_path) {
		r = -posix_spawn_file_actions_addopen(&fa, 1, log_path,
						      O_WRONLY | O_CREAT | O_APPEND, 0640);
		if (!r)
			r = -posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	if (!r)
		r = -posix_spawn(&pid, vsockd_path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r)
		return qvmm_err(err, errlen, r, "cannot run %s: %s", vsockd_path, strerror(-r));

	for (unsigned waited = 0;; waited += SOCKET_POLL_MS) {
		if (lstat(vhost_user_socket, &st) == 0 && S_ISSOCK(st.st_mode))
			break;
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			if (WIFEXITED(status))
				return qvmm_err(err, errlen, -EIO, "%s exited with status %d%s%s",
						vsockd_path, WEXITSTATUS(status),
						log_path ? ", see " : "", log_path ? log_path : "");
			return qvmm_err(err, errlen, -EIO, "%s killed by signal %d", vsockd_path,
					WTERMSIG(status));
		}
		if (waited >= SOCKET_WAIT_MS) {
			r = qvmm_err(err, errlen, -ETIMEDOUT, "%s: no socket %s after %u ms",
				     vsockd_path, vhost_user_socket, SOCKET_WAIT_MS);
			goto kill_child;
		}
		sleep_ms(SOCKET_POLL_MS);
	}
	if ((r = socket_grant(vhost_user_socket, err, errlen)) < 0)
		goto kill_child;
	*ret_pid = pid;
	return 0;

kill_child:
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return r;
}
