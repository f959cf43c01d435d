/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qc-sandbox-probe: stands in for waypipe in qube-gui-bridge's sandbox
 * (qube-gui-bridge --waypipe PROBE) so that a test can look at the sandbox
 * from inside, through the real guest path.  Started with waypipe's
 * arguments, it listens on the --socket path as `waypipe client` does,
 * accepts one connection (the bridge's relay), and answers one line per
 * command line received:
 *   id               uid=U gid=G
 *   display          OK socket  when WAYLAND_SOCKET names a socket
 *   fds              FDS n n ...  the open descriptors below 64
 *   stat PATH        OK | ERR <errno>
 *   ioctl            OK | ERR <errno>  FIONREAD on the display socket
 *   connect PATH     connects to a unix socket (the filter kills first)
 *   socket-inet      socket(AF_INET)   (killed)
 *   fork             fork()            (killed)
 *   ptrace           ptrace(TRACEME)   (killed)
 * and exits 0 at end of input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void answer_errno(int fd, int r)
{
	if (r == 0)
		dprintf(fd, "OK\n");
	else
		dprintf(fd, "ERR %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
}

static void command(int fd, char *line)
{
	struct stat st;
	if (strcmp(line, "id") == 0) {
		dprintf(fd, "uid=%u gid=%u\n", (unsigned)getuid(), (unsigned)getgid());
	} else if (strcmp(line, "display") == 0) {
		const char *s = getenv("WAYLAND_SOCKET");
		int dfd = s ? atoi(s) : -1;
		dprintf(fd, "%s\n", dfd >= 0 && fstat(dfd, &st) == 0 && S_ISSOCK(st.st_mode) ?
			"OK socket" : "ERR no display socket");
	} else if (strcmp(line, "fds") == 0) {
		char out[512] = "FDS";
		for (int i = 0; i < 64; i++)
			if (fcntl(i, F_GETFD) >= 0)
				snprintf(out + strlen(out), sizeof(out) - strlen(out), " %d", i);
		dprintf(fd, "%s\n", out);
	} else if (strncmp(line, "stat ", 5) == 0) {
		answer_errno(fd, stat(line + 5, &st));
	} else if (strcmp(line, "ioctl") == 0) {
		int n;
		answer_errno(fd, ioctl(3, FIONREAD, &n));
	} else if (strncmp(line, "connect ", 8) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (strlen(line + 8) >= sizeof(sa.sun_path)) {
			dprintf(fd, "ERR path too long\n");
			return;
		}
		memcpy(sa.sun_path, line + 8, strlen(line + 8) + 1);
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		answer_errno(fd, connect(s, (struct sockaddr *)&sa, sizeof(sa)));
	} else if (strcmp(line, "socket-inet") == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		answer_errno(fd, s < 0 ? -1 : 0);
	} else if (strcmp(line, "fork") == 0) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		answer_errno(fd, p < 0 ? -1 : 0);
	} else if (strcmp(line, "ptrace") == 0) {
		answer_errno(fd, ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? -1 : 0);
	} else {
		dprintf(fd, "ERR unknown command\n");
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--socket") == 0)
			path = argv[i + 1];
	if (!path)
		return 2;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return 2;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
		return 1;
	int c = accept(l, NULL, NULL);
	if (c < 0)
		return 1;
	char line[512];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(c, line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		char *nl;
		while ((nl = memchr(line, '\n', len))) {
			*nl = '\0';
			command(c, line);
			size_t used = (size_t)(nl - line) + 1;
			memmove(line, nl + 1, len - used);
			len -= used;
		}
		if (len == sizeof(line) - 1)
			len = 0;
	}
	return 0;
}
