/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-starter: serves the broker's start interface the way qubed will, for
 * simulated qubes: "START NAME" starts a real qube-agent for NAME (its own
 * socket directory under QUBES_DIR), "DISPVM TEMPLATE" does the same for a
 * new disposable "dispN", "DESTROY NAME" stops it and removes its
 * directory.  Each request is printed on stdout.
 *
 *   rpc-starter SOCKET QUBES_DIR RPC_DIR AGENT [REFUSE_NAME]
 *
 * REFUSE_NAME, when given, is answered "ERROR ..." (a qube that fails to
 * start).
 */
#include <errno.h>
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

#define MAX_QUBES 64

static struct {
	char name[300];
	pid_t pid;
} qubes[MAX_QUBES];

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return r;
}

static int start_agent(const char *qdir, const char *rpc, const char *agent, const char *name)
{
	char dir[2048], sock[2100], transport[2100];
	pid_t pid;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", qdir, name) >= sizeof(dir))
		return -ENAMETOOLONG;
	snprintf(sock, sizeof(sock), "%s/vsock", dir);
	if (connectable(sock))
		return 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(transport, sizeof(transport), "unix:%s", dir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setenv("SIMQUBE", name, 1);
		execl(agent, agent, "--transport", transport, "--rpc-dir", rpc, "--name", name,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < MAX_QUBES; i++)
		if (qubes[i].pid == 0) {
			snprintf(qubes[i].name, sizeof(qubes[i].name), "%s", name);
			qubes[i].pid = pid;
			break;
		}
	for (int i = 0; i < 400; i++) { /* up to 20 s */
		if (connectable(sock))
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static void destroy(const char *qdir, const char *name)
{
	char path[4096];

	for (int i = 0; i < MAX_QUBES; i++)
		if (qubes[i].pid && strcmp(qubes[i].name, name) == 0) {
			kill(qubes[i].pid, SIGTERM);
			waitpid(qubes[i].pid, NULL, 0);
			qubes[i].pid = 0;
		}
	snprintf(path, sizeof(path), "%s/%s/vsock", qdir, name);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s/vsock_513", qdir, name);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", qdir, name);
	rmdir(path);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned ndisp = 0;
	int lfd;

	if (argc < 5 || argc > 6 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: rpc-starter SOCKET QUBES_DIR RPC_DIR AGENT [REFUSE_NAME]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* no SA_RESTART: accept() must return on SIGTERM */
	struct sigaction sa_term = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa_term, NULL);
	sigaction(SIGINT, &sa_term, NULL);
	signal(SIGPIPE, SIG_IGN);
	strcpy(sa.sun_path, argv[1]);
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
		fprintf(stderr, "rpc-starter: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("listening\n");
	while (!stop) {
		char line[256], reply[512], name[300];
		size_t len = 0;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			continue;
		while (len < sizeof(line) - 1) {
			ssize_t n = read(fd, line + len, 1);
			if (n <= 0 || line[len] == '\n')
				break;
			len++;
		}
		line[len] = '\0';
		printf("request: %s\n", line);
		if (strncmp(line, "START ", 6) == 0 || strncmp(line, "DISPVM ", 7) == 0) {
			int r;

			if (line[0] == 'S')
				snprintf(name, sizeof(name), "%s", line + 6);
			else
				snprintf(name, sizeof(name), "disp%u", ++ndisp);
			if (argc == 6 && strcmp(argv[5], name) == 0)
				r = -EPERM;
			else
				r = start_agent(argv[2], argv[3], argv[4], name);
			if (r < 0)
				snprintf(reply, sizeof(reply), "ERROR cannot start %s: %s\n", name,
					 strerror(-r));
			else
				snprintf(reply, sizeof(reply), "OK %s\n", name);
		} else if (strncmp(line, "DESTROY ", 8) == 0) {
			snprintf(name, sizeof(name), "%s", line + 8);
			destroy(argv[2], name);
			snprintf(reply, sizeof(reply), "OK %s\n", name);
		} else {
			snprintf(reply, sizeof(reply), "ERROR unknown request\n");
		}
		printf("reply: %s", reply);
		if (write(fd, reply, strlen(reply)) < 0)
			perror("rpc-starter: write");
		close(fd);
	}
	for (int i = 0; i < MAX_QUBES; i++)
		if (qubes[i].pid) {
			kill(qubes[i].pid, SIGTERM);
			waitpid(qubes[i].pid, NULL, 0);
		}
	return 0;
}
