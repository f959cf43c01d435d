/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-start-app: the guest side of a qube's GUI path (docs/compositor.md,
 * "A guest's windows").  It runs a Wayland program under `waypipe server`
 * and carries waypipe's stream to the host: waypipe 0.8 has no vsock mode,
 * so this program listens on the unix socket waypipe connects to (one
 * connection per Wayland client of the program) and joins each connection
 * to a new AF_VSOCK connection to the host (CID 2) port 6000, where the
 * host's qube-gui-bridge runs a sandboxed `waypipe client` feeding this
 * qube's own compositor socket.
 *
 *   As the service qube.StartApp (installed as /usr/lib/qube/qube-start-app,
 *   /etc/qube/rpc/qube.StartApp a link to it; invoked under a name ending
 *   in "StartApp"): stdin starts with a qube.Exec header (user and argv,
 *   docs/protocol.md, "qube.Exec"), checked by the same code as qube.Exec's;
 *   the rest of stdin is the program's.
 *
 *   As a command: qube-start-app [--waypipe PATH] [--unix PATH] [--] PROGRAM [ARG...]
 *
 * The program and its arguments are an argv: no shell anywhere.  The bytes
 * relayed are waypipe's and the host's, never parsed here.
 *
 * Exit status: the program's (as waypipe server reports it); 127 waypipe or
 * the program not found; 126 cannot run (user switch, sockets); 125 a bad
 * header.
 */
#include "qube-exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define EXIT_BAD_HEADER 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

#define GUI_VSOCK_CID 2u     /* the host */
#define GUI_VSOCK_PORT 6000u /* Qubes' GUI port; the host's qube-gui-bridge */
#define RELAY_BUF (64u * 1024u)

static const char *prog = "qube-start-app";

struct opts {
	const char *waypipe; /* /usr/bin/waypipe */
	const char *unix_path; /* instead of vsock (tests on a host) */
	char **argv;
};

/* Becomes user NAME as qube-exec does for qube.Exec; the caller's runtime
 * directory is not this user's. */
static int become(const char *name)
{
	int r = qexec_become(prog, name);

	if (r == 0)
		unsetenv("XDG_RUNTIME_DIR");
	return r;
}

static bool is_service(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	size_t n;

	base = base ? base + 1 : argv0;
	n = strlen(base);
	return n >= 8 && strcmp(base + n - 8, "StartApp") == 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--waypipe PATH] [--unix PATH] [--] PROGRAM [ARG...]\n"
		"       qube.StartApp (an RPC service: a qube.Exec header on stdin)\n"
		"Runs PROGRAM (a Wayland client) under `waypipe server`, its windows shown by the\n"
		"host's compositor: waypipe's connections go to vsock CID 2 port %u.\n"
		"  --waypipe PATH  the waypipe executable (default /usr/bin/waypipe)\n"
		"  --unix PATH     connect to this unix socket instead of vsock (tests)\n"
		"Exit status: PROGRAM's; 127 not found; 126 cannot run; 125 bad header.\n",
		prog, GUI_VSOCK_PORT);
}

static int parse_command_line(int argc, char **argv, struct opts *o)
{
	int i = 1;

	for (; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if ((strcmp(argv[i], "--waypipe") == 0 || strcmp(argv[i], "--unix") == 0) && i + 1 < argc) {
			const char **slot = argv[i][2] == 'w' ? &o->waypipe : &o->unix_path;
			*slot = argv[++i];
			continue;
		}
		if (argv[i][0] == '-') {
			usage(stderr);
			return -EINVAL;
		}
		break;
	}
	if (i >= argc || !argv[i][0]) {
		usage(stderr);
		return -EINVAL;
	}
	o->argv = argv + i;
	return 0;
}

/* ---- one connection: waypipe's unix stream <-> the host ---- */

static int connect_host(const struct opts *o)
{
	int fd;

	if (o->unix_path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (strlen(o->unix_path) >= sizeof(sa.sun_path))
			return -ENAMETOOLONG;
		strcpy(sa.sun_path, o->unix_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
	} else {
		struct sockaddr_vm sv = { .svm_family = AF_VSOCK, .svm_cid = GUI_VSOCK_CID,
					  .svm_port = GUI_VSOCK_PORT };
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sv, sizeof(sv)) == 0)
			return fd;
	}
	int r = -errno;
	close(fd);
	return r;
}

struct half {
	int from, to;
	uint8_t *buf;
	size_t off, len;
	bool eof, shut;
};

/* Moves what can be moved without blocking; -1 on an error that ends
 * the connection. */
static int half_step(struct half *h, short from_ev, short to_ev)
{
	if (h->len == 0 && !h->eof && (from_ev & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = read(h->from, h->buf, RELAY_BUF);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (n == 0)
			h->eof = true;
		if (n > 0) {
			h->off = 0;
			h->len = (size_t)n;
		}
	}
	if (h->len > 0 && (to_ev & (POLLOUT | POLLERR | POLLHUP))) {
		ssize_t n = send(h->to, h->buf + h->off, h->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (n > 0) {
			h->off += (size_t)n;
			h->len -= (size_t)n;
		}
	}
	if (h->eof && h->len == 0 && !h->shut) {
		shutdown(h->to, SHUT_WR);
		h->shut = true;
	}
	return 0;
}

/* Relays between A and B until both directions ended or one failed. */
static int relay(int a, int b)
{
	static uint8_t buf_ab[RELAY_BUF], buf_ba[RELAY_BUF];
	struct half h[2] = { { .from = a, .to = b, .buf = buf_ab }, { .from = b, .to = a, .buf = buf_ba } };

	if (fcntl(a, F_SETFL, O_NONBLOCK) < 0 || fcntl(b, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	while (!(h[0].shut && h[1].shut)) {
		struct pollfd p[2] = { { .fd = a }, { .fd = b } };
		/* p[0] is A: read for h[0], write for h[1] */
		if (h[0].len == 0 && !h[0].eof)
			p[0].events |= POLLIN;
		if (h[1].len > 0)
			p[0].events |= POLLOUT;
		if (h[1].len == 0 && !h[1].eof)
			p[1].events |= POLLIN;
		if (h[0].len > 0)
			p[1].events |= POLLOUT;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (half_step(&h[0], p[0].revents, p[1].revents) < 0 ||
		    half_step(&h[1], p[1].revents, p[0].revents) < 0)
			return -EPIPE;
	}
	return 0;
}

static void serve_connection(const struct opts *o, int wp_fd, unsigned id)
{
	int host_fd = connect_host(o);

	if (host_fd < 0) {
		fprintf(stderr, "%s: connection %u: %s: %s (is the qube's GUI set up on the host?)\n", prog,
			id, o->unix_path ? o->unix_path : "vsock CID 2 port 6000", strerror(-host_fd));
		_exit(1);
	}
	int r = relay(wp_fd, host_fd);
	_exit(r < 0 ? 1 : 0);
}

/* ---- main ---- */

/* As execvp would find NAME (waypipe runs it so, but reports a failure
 * only as its own exit status 1). */
static bool program_found(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && n + 1 + strlen(name) < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
			struct stat st;
			if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int exit_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_CANNOT_RUN;
}

/* Removes DIR and what waypipe and the program left in it (the program's
 * Wayland socket when waypipe was ended by a signal). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	if (rmdir(dir) < 0)
		fprintf(stderr, "%s: %s left behind: %s\n", prog, dir, strerror(errno));
}

/* Runs waypipe server -- ARGV and relays its connections until it exits. */
static int run(const struct opts *o)
{
	char dir[] = "/tmp/qube-start-app.XXXXXX", chan[sizeof(dir) + 8];
	int status = EXIT_CANNOT_RUN, listen_fd, sig_fd = -1;
	sigset_t mask, old;
	pid_t wp;
	unsigned next_id = 0;

	if (!mkdtemp(dir)) {
		fprintf(stderr, "%s: mkdtemp %s: %s\n", prog, dir, strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	snprintf(chan, sizeof(chan), "%s/chan", dir);
	listen_fd = listen_unix(chan);
	if (listen_fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, chan, strerror(-listen_fd));
		goto err_rmdir;
	}
	/* waypipe server makes the program's Wayland socket there */
	if (!getenv("XDG_RUNTIME_DIR") && setenv("XDG_RUNTIME_DIR", dir, 1) < 0)
		goto err_close;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
		goto err_close;
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0) {
		fprintf(stderr, "%s: signalfd: %s\n", prog, strerror(errno));
		goto err_close;
	}

	/* waypipe [--no-gpu] --socket CHAN server -- PROGRAM ARGS */
	size_t n = 0;
	while (o->argv[n])
		n++;
	char **wargv = calloc(n + 7, sizeof(*wargv));
	if (!wargv)
		goto err_close;
	size_t k = 0;
	wargv[k++] = (char *)"waypipe";
	wargv[k++] = (char *)"--no-gpu"; /* a qube has no render node; shm buffers */
	wargv[k++] = (char *)"--socket";
	wargv[k++] = chan;
	wargv[k++] = (char *)"server";
	wargv[k++] = (char *)"--";
	memcpy(wargv + k, o->argv, (n + 1) * sizeof(*wargv));
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		free(wargv);
		goto err_close;
	}
	wp = fork();
	if (wp == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execv(o->waypipe, wargv);
		int e = errno;
		(void)!write(errpipe[1], &e, sizeof(e));
		_exit(EXIT_NOT_FOUND);
	}
	free(wargv);
	close(errpipe[1]);
	if (wp < 0) {
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		close(errpipe[0]);
		goto err_close;
	}
	int exec_err = 0;
	if (read(errpipe[0], &exec_err, sizeof(exec_err)) == (ssize_t)sizeof(exec_err)) {
		fprintf(stderr, "%s: %s: %s\n", prog, o->waypipe, strerror(exec_err));
		close(errpipe[0]);
		waitpid(wp, NULL, 0);
		status = exec_err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
		goto err_close;
	}
	close(errpipe[0]);

	for (bool done = false; !done;) {
		struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = sig_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo != SIGCHLD) {
					kill(wp, SIGTERM); /* waypipe ends the program */
					continue;
				}
				int st;
				pid_t pid;
				while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
					if (pid == wp) {
						status = exit_code(st);
						done = true;
					}
				}
			}
		}
		if (!done && (p[0].revents & POLLIN)) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			unsigned id = ++next_id;
			pid_t pid = fork();
			if (pid == 0) {
				close(listen_fd);
				close(sig_fd);
				sigprocmask(SIG_SETMASK, &old, NULL);
				serve_connection(o, fd, id);
			}
			if (pid < 0)
				fprintf(stderr, "%s: connection %u: fork: %s\n", prog, id, strerror(errno));
			close(fd);
		}
	}
	/* the program is gone: so are its connections' relays (they are in
	 * our process group; the agent's end of the service ends them too) */
err_close:
	if (sig_fd >= 0)
		close(sig_fd);
	close(listen_fd);
err_rmdir:
	remove_dir(dir);
	return status;
}

int main(int argc, char **argv)
{
	struct opts o = { .waypipe = "/usr/bin/waypipe" };
	struct qexec_request req = { 0 };
	uint8_t *body = NULL;
	int status;

	signal(SIGPIPE, SIG_IGN);
	if (argv[0] && is_service(argv[0])) {
		if (argc > 1) {
			/* qube.StartApp+ARG: the program comes in the header */
			fprintf(stderr, "%s: qube.StartApp takes no argument ('%s')\n", prog, argv[1]);
			return EXIT_BAD_HEADER;
		}
		if (qexec_read_request(prog, STDIN_FILENO, &req, &body) < 0)
			return EXIT_BAD_HEADER;
		if (req.user[0] && become(req.user) < 0) {
			free(req.argv);
			free(body);
			return EXIT_CANNOT_RUN;
		}
		o.argv = req.argv;
	} else if (parse_command_line(argc, argv, &o) < 0) {
		return 2;
	}
	if (!program_found(o.argv[0])) {
		fprintf(stderr, "%s: %s: not found\n", prog, o.argv[0]);
		status = EXIT_NOT_FOUND;
	} else {
		status = run(&o);
	}
	free(req.argv);
	free(body);
	return status;
}
