// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * qvmm_vsockd_spawn with the real qube-vsockd (suite vmm): the socket is
 * listening when it returns, 0660 and owned by QEMU's user when we are
 * root; a front-end that connects and leaves makes qube-vsockd exit 0 and
 * remove its socket; a program that dies at once, a missing program, an
 * existing socket, bad CIDs and relative paths are errors.
 *   test-qvmm-vsockd QUBE_VSOCKD
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qvmm.h"

static int failures, checks;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		checks++;                                                   \
		if (!(cond)) {                                              \
			failures++;                                         \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
		}                                                           \
	} while (0)

static int wait_exit(pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 20; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/qvmm-vsd.XXXXXX", sock[64], uds[64], log[64], err[512];
	struct stat st;
	pid_t pid = 0;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: test-qvmm-vsockd QUBE_VSOCKD\n");
		return 2;
	}
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/vu.sock", dir);
	snprintf(uds, sizeof(uds), "%s/vsock", dir);
	snprintf(log, sizeof(log), "%s/vsockd.log", dir);

	r = qvmm_vsockd_spawn(argv[1], sock, 7, uds, log, &pid, err, sizeof(err));
	CHECK(r == 0 && pid > 0, "spawn: %d %s", r, err);
	if (r == 0) {
		CHECK(lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", sock);
		CHECK((st.st_mode & 0777) == 0660, "socket mode %o", st.st_mode & 0777);
		struct passwd *pw = getpwnam("libvirt-qemu");
		if (!pw)
			pw = getpwnam("qemu");
		if (geteuid() == 0 && pw)
			CHECK(st.st_uid == pw->pw_uid, "socket owner %u, want %s (%u)", st.st_uid,
			      pw->pw_name, pw->pw_uid);
		else
			printf("not root or no QEMU user: socket owner not checked\n");
		CHECK(lstat(uds, &st) == 0 && S_ISSOCK(st.st_mode), "no host-side socket %s", uds);

		/* a second one on the same socket is refused before anything runs */
		pid_t p2 = 0;
		r = qvmm_vsockd_spawn(argv[1], sock, 8, uds, log, &p2, err, sizeof(err));
		CHECK(r == -EEXIST && p2 == 0, "second spawn on the same socket: %d %s", r, err);

		/* a front-end connects and leaves: qube-vsockd exits 0, sockets gone */
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
		CHECK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "connect: %s",
		      strerror(errno));
		usleep(200000);
		close(fd);
		r = wait_exit(pid, 10);
		CHECK(r == 0, "qube-vsockd exit %d after the front-end left", r);
		CHECK(lstat(sock, &st) < 0 && lstat(uds, &st) < 0, "sockets left behind");
	}

	/* errors */
	pid_t p = 0;
	err[0] = '\0';
	r = qvmm_vsockd_spawn("/bin/false", sock, 7, uds, log, &p, err, sizeof(err));
	CHECK(r == -EIO && p == 0 && strstr(err, "exited with status 1") && strstr(err, log),
	      "/bin/false: %d %s", r, err);
	err[0] = '\0';
	r = qvmm_vsockd_spawn("/nonexistent/qube-vsockd", sock, 7, uds, log, &p, err, sizeof(err));
	CHECK(r < 0 && p == 0 && err[0], "missing program: %d", r);
	printf("missing program: %s\n", err);
	CHECK(qvmm_vsockd_spawn(argv[1], sock, 2, uds, log, &p, err, sizeof(err)) == -EINVAL, "cid 2");
	CHECK(qvmm_vsockd_spawn(argv[1], sock, UINT32_MAX, uds, log, &p, err, sizeof(err)) == -EINVAL,
	      "cid max");
	CHECK(qvmm_vsockd_spawn(argv[1], "vu.sock", 7, uds, log, &p, err, sizeof(err)) == -EINVAL,
	      "relative socket");
	CHECK(qvmm_vsockd_spawn(argv[1], sock, 7, "vsock", log, &p, err, sizeof(err)) == -EINVAL,
	      "relative uds");
	CHECK(qvmm_vsockd_spawn(argv[1], NULL, 7, uds, log, &p, err, sizeof(err)) == -EINVAL, "NULL");
	CHECK(p == 0, "ret_pid touched on error");

	printf("%d checks, %d failed\n", checks, failures);
	unlink(log);
	rmdir(dir);
	return failures ? 1 : 0;
}
