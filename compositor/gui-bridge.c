/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-gui-bridge: the host side of one qube's GUI path (docs/compositor.md,
 * "The GUI bridge").  qubed starts one per running qube.  It listens where
 * the qube's GUI connections arrive (the hybrid vsock path of the qube's
 * qube-vsockd: a guest connect() to CID 2 port 6000 becomes a unix
 * connection to <uds-path>_6000), and for each connection starts a
 * sandboxed `waypipe client` (gui-sandbox.c) that gets the guest stream
 * and a fresh connection to that qube's own compositor socket, nothing
 * else.  This process never reads a guest byte: it accepts, connects to
 * the compositor and forks.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gui-sandbox.h"
#include "qname.h"

#define DEFAULT_MAX_CONN 16
#define MAX_CONN_LIMIT 256

struct child {
	pid_t pid;
	unsigned id;
};

struct bridge {
	const char *qube, *display, *listen_path, *waypipe_path;
	uid_t uid;
	gid_t gid;
	bool have_user;
	unsigned max_conn;
	int listen_fd, sig_fd, waypipe_fd;
	struct child *children;
	unsigned n_children, next_id;
};

static void logf_(const struct bridge *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const struct bridge *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "qube-gui-bridge[%s]: %s\n", b->qube ? b->qube : "-", line);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qube-gui-bridge --qube NAME --display PATH --listen PATH [options]\n"
		"  --qube NAME            the qube (for log lines)\n"
		"  --display PATH         the qube's Wayland socket (QUBE-ADD's reply)\n"
		"  --listen PATH          where guest connections arrive: <uds-path>_6000 of the\n"
		"                         qube's qube-vsockd (made here, mode 0600; a stale socket\n"
		"                         there is replaced)\n"
		"  --user UID:GID         run as this user (required when started as root)\n"
		"  --waypipe PATH         the waypipe executable (default /usr/bin/waypipe)\n"
		"  --max-connections N    concurrent guest connections (default %d, at most %d)\n",
		DEFAULT_MAX_CONN, MAX_CONN_LIMIT);
}

static int parse_ids(const char *s, uid_t *ret_uid, gid_t *ret_gid)
{
	char *end;
	errno = 0;
	unsigned long u = strtoul(s, &end, 10);
	if (errno || end == s || *end != ':' || u >= 0xffffffffUL)
		return -EINVAL;
	const char *gs = end + 1;
	unsigned long g = strtoul(gs, &end, 10);
	if (errno || end == gs || *end || g >= 0xffffffffUL)
		return -EINVAL;
	*ret_uid = (uid_t)u;
	*ret_gid = (gid_t)g;
	return 0;
}

static int parse_args(struct bridge *b, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "qube", required_argument, NULL, 'q' },
		{ "display", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "user", required_argument, NULL, 'u' },
		{ "waypipe", required_argument, NULL, 'w' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	b->waypipe_path = "/usr/bin/waypipe";
	b->max_conn = DEFAULT_MAX_CONN;
	int c;
	char *end;
	unsigned long v;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'q': b->qube = optarg; break;
		case 'd': b->display = optarg; break;
		case 'l': b->listen_path = optarg; break;
		case 'w': b->waypipe_path = optarg; break;
		case 'u':
			if (parse_ids(optarg, &b->uid, &b->gid) < 0) {
				fprintf(stderr, "qube-gui-bridge: --user '%s' is not UID:GID\n", optarg);
				return -EINVAL;
			}
			b->have_user = true;
			break;
		case 'm':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > MAX_CONN_LIMIT) {
				fprintf(stderr, "qube-gui-bridge: --max-connections '%s' is not 1..%d\n",
					optarg, MAX_CONN_LIMIT);
				return -EINVAL;
			}
			b->max_conn = (unsigned)v;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc || !b->qube || !b->display || !b->listen_path) {
		usage(stderr);
		return -EINVAL;
	}
	if (!qname_qube_is_valid(b->qube)) {
		fprintf(stderr, "qube-gui-bridge: --qube '%s' is not a qube name\n", b->qube);
		return -EINVAL;
	}
	struct sockaddr_un sa;
	if (b->display[0] != '/' || b->listen_path[0] != '/' ||
	    strlen(b->display) >= sizeof(sa.sun_path) || strlen(b->listen_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "qube-gui-bridge: --display and --listen must be absolute socket paths "
			"under %zu bytes\n", sizeof(sa.sun_path));
		return -EINVAL;
	}
	return 0;
}

static int listen_unix(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* a stale socket of an earlier run */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int connect_display(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Root: become --user for good (no supplementary groups, all ids). */
static int drop_privileges(struct bridge *b)
{
	if (geteuid() != 0) {
		if (b->have_user && (b->uid != getuid() || b->gid != getgid())) {
			fprintf(stderr, "qube-gui-bridge: --user needs root\n");
			return -EPERM;
		}
		b->uid = getuid();
		b->gid = getgid();
		return 0;
	}
	if (!b->have_user || b->uid == 0) {
		fprintf(stderr, "qube-gui-bridge: started as root: --user with a non-root UID is required\n");
		return -EPERM;
	}
	if (setgroups(0, NULL) < 0 || setresgid(b->gid, b->gid, b->gid) < 0 ||
	    setresuid(b->uid, b->uid, b->uid) < 0)
		return -errno;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != b->uid ||
	    eu != b->uid || su != b->uid || rg != b->gid || eg != b->gid || sg != b->gid ||
	    setuid(0) == 0)
		return -EPERM;
	/* a uid change clears "dumpable", which makes /proc/self root's;
	 * the sandbox writes its /proc/self/uid_map as this user */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

static const char *exit_text(int code, char *buf, size_t n)
{
	if (code == 0)
		snprintf(buf, n, "ended");
	else if (code == QC_GUI_EXIT_SETUP)
		snprintf(buf, n, "failed: sandbox or waypipe could not start");
	else if (code == QC_GUI_EXIT_NOSOCK)
		snprintf(buf, n, "failed: waypipe never opened its channel socket");
	else if (code > QC_GUI_EXIT_SIGNAL)
		snprintf(buf, n, "waypipe killed by signal %d%s", code - QC_GUI_EXIT_SIGNAL,
			 code - QC_GUI_EXIT_SIGNAL == SIGSYS ? " (SIGSYS: a system call outside its "
							       "seccomp allow-list)" : "");
	else
		snprintf(buf, n, "waypipe exited with status %d", code);
	return buf;
}

static void child_exited(struct bridge *b, pid_t pid, int st)
{
	char text[128];
	for (unsigned i = 0; i < b->n_children; i++) {
		if (b->children[i].pid != pid)
			continue;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : QC_GUI_EXIT_SETUP;
		logf_(b, "connection %u: %s", b->children[i].id, exit_text(code, text, sizeof(text)));
		b->children[i] = b->children[--b->n_children];
		return;
	}
}

static void reap(struct bridge *b)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		child_exited(b, pid, st);
}

static void handle_connection(struct bridge *b, int guest_fd)
{
	unsigned id = ++b->next_id;
	if (b->n_children >= b->max_conn) {
		logf_(b, "connection %u refused: %u connections open already", id, b->n_children);
		close(guest_fd);
		return;
	}
	int display_fd;
	int r = connect_display(b->display, &display_fd);
	if (r < 0) {
		logf_(b, "connection %u refused: compositor socket %s: %s", id, b->display, strerror(-r));
		close(guest_fd);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		struct qc_gui_conn c = {
			.guest_fd = guest_fd,
			.display_fd = display_fd,
			.waypipe_fd = b->waypipe_fd,
			.uid = b->uid,
			.gid = b->gid,
			.qube = b->qube,
			.id = id,
		};
		_exit(qc_gui_run_connection(&c));
	}
	close(guest_fd);
	close(display_fd);
	if (pid < 0) {
		logf_(b, "connection %u refused: fork: %s", id, strerror(errno));
		return;
	}
	b->children[b->n_children++] = (struct child){ .pid = pid, .id = id };
	logf_(b, "connection %u: waypipe sandbox pid %d", id, (int)pid);
}

static int run(struct bridge *b)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = b->listen_fd, .events = POLLIN },
			{ .fd = b->sig_fd, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(b->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					reap(b);
				else
					return 0; /* SIGTERM, SIGINT, SIGHUP */
			}
		}
		if (p[0].revents & POLLIN) {
			int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				handle_connection(b, fd);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				logf_(b, "accept: %s", strerror(errno));
		}
	}
}

int main(int argc, char **argv)
{
	struct bridge b = { .listen_fd = -1, .sig_fd = -1, .waypipe_fd = -1 };
	if (parse_args(&b, argc, argv) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	int r = -EINVAL;
	b.waypipe_fd = open(b.waypipe_path, O_PATH | O_CLOEXEC);
	struct stat wst;
	if (b.waypipe_fd < 0 || fstat(b.waypipe_fd, &wst) < 0 || !S_ISREG(wst.st_mode) ||
	    !(wst.st_mode & 0111)) {
		logf_(&b, "--waypipe %s: not an executable file", b.waypipe_path);
		goto err_close_waypipe;
	}
	b.children = calloc(b.max_conn, sizeof(*b.children));
	if (!b.children) {
		r = -ENOMEM;
		goto err_close_waypipe;
	}
	r = listen_unix(b.listen_path, &b.listen_fd);
	if (r < 0) {
		logf_(&b, "--listen %s: %s", b.listen_path, strerror(-r));
		goto err_free_children;
	}
	r = drop_privileges(&b);
	if (r < 0) {
		logf_(&b, "cannot become %u:%u: %s", (unsigned)b.uid, (unsigned)b.gid, strerror(-r));
		goto err_unlink;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		goto err_unlink;
	}
	/* the compositor must already serve the qube (QUBE-ADD before us) */
	int probe;
	r = connect_display(b.display, &probe);
	if (r < 0) {
		logf_(&b, "--display %s: %s", b.display, strerror(-r));
		goto err_unlink;
	}
	close(probe);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	b.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b.sig_fd < 0) {
		r = -errno;
		goto err_unlink;
	}
	logf_(&b, "ready: %s -> %s as %u:%u (waypipe %s)", b.listen_path, b.display,
	      (unsigned)b.uid, (unsigned)b.gid, b.waypipe_path);
	r = run(&b);
	for (unsigned i = 0; i < b.n_children; i++)
		kill(b.children[i].pid, SIGKILL);
	int st;
	pid_t pid;
	while (b.n_children > 0 && (pid = waitpid(-1, &st, 0)) > 0)
		child_exited(&b, pid, st);
	logf_(&b, "stopping");
	close(b.sig_fd);
err_unlink:
	if (unlink(b.listen_path) < 0 && errno != ENOENT)
		logf_(&b, "%s left behind: %s", b.listen_path, strerror(errno));
	close(b.listen_fd);
err_free_children:
	free(b.children);
err_close_waypipe:
	if (b.waypipe_fd >= 0)
		close(b.waypipe_fd);
	if (r < 0)
		logf_(&b, "%s", strerror(-r));
	return r < 0 ? 1 : 0;
}
