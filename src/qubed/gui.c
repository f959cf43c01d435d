/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: each running qube's GUI path (docs/qubed.md, "Windows";
 * docs/compositor.md, "The GUI bridge").  With `gui_compositor` naming the
 * control socket of the user's qube-compositor, at a qube's start qubed
 * asks the compositor for the qube's own Wayland socket (QUBE-REMOVE of a
 * stale one, then QUBE-ADD NAME LABEL, answered OK PATH) and starts one
 * qube-gui-bridge for the qube:
 *
 *   qube-gui-bridge --qube NAME --display PATH --listen RUN/qubes/NAME/vsock_6000
 *                   --user UID:GID --waypipe WAYPIPE
 *
 * (the guest's qube.StartApp connects to vsock CID 2 port 6000, which
 * qube-vsockd delivers to RUN/qubes/NAME/vsock_6000).  The bridge is
 * supervised: restarted, with a fresh QUBE-ADD, after 1, 2, 4, 8, 16, then
 * every 30 s while the qube runs.  At the qube's stop (halted, killed,
 * crashed) qubed sends QUBE-REMOVE NAME, so the qube's windows go, and
 * ends the bridge.  A compositor that cannot be reached is tried again
 * every 5 s while the qube runs.  When qubed itself stops, bridges keep
 * running with their qubes and are adopted at the next start through
 * RUN/qubes/NAME/gui-bridge.pid.
 *
 * Everything here runs from the loop's tick (every 50 ms): a bridge's exit
 * is found by polling its pidfd, so no epoll registration can outlive a
 * qube's struct.  The compositor is the user's: qubed connects to its
 * control socket only after checking (through an O_PATH descriptor, so
 * the checked inode is the one connected to) that it is a socket owned by
 * the session user, and never waits more than 2 s for a reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qubed.h"

extern char **environ;

#define GUI_RETRY_MS 5000u         /* compositor unreachable: try again */
#define GUI_REPLY_TIMEOUT_S 2      /* one control-socket reply */
#define GUI_STOP_GRACE_MS 1000     /* SIGTERM to SIGKILL */
#define GUI_LINE_MAX 1024

static const char *const labels[] = { "red", "orange", "yellow", "green", "gray", "blue", "purple", "black" };

/* what the first tick found: GUI on or off for this qubed's life */
static enum { GUI_UNKNOWN, GUI_OFF, GUI_ON } gui_mode;

/* ---- the compositor's control socket ---- */

/* The session user: gui_user ("NAME" or "UID:GID"), else the control
 * socket's owner.  Never root (the bridge refuses to stay root). */
static int session_user(struct qd *qd, const struct stat *ctl_st, uid_t *ret_uid, gid_t *ret_gid, char *err,
			size_t errlen)
{
	const char *u = qd->cfg.gui_user;
	uid_t uid;
	gid_t gid;

	if (u && u[0]) {
		unsigned long a, b;
		char c;
		struct passwd *pw;
		if (sscanf(u, "%lu:%lu%c", &a, &b, &c) == 2 && a < 0xffffffffUL && b < 0xffffffffUL) {
			uid = (uid_t)a;
			gid = (gid_t)b;
		} else if ((pw = getpwnam(u))) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		} else {
			snprintf(err, errlen, "gui_user '%s': no such user", u);
			return -ENOENT;
		}
	} else {
		struct passwd *pw = getpwuid(ctl_st->st_uid);
		uid = ctl_st->st_uid;
		gid = pw ? pw->pw_gid : ctl_st->st_gid;
	}
	if (uid == 0) {
		snprintf(err, errlen, "the session user is root (set gui_user to the compositor's user)");
		return -EPERM;
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

/* Connects to the control socket if it is a socket owned by the session
 * user; that user in *ret_uid and *ret_gid. */
static int ctl_connect(struct qd *qd, int *ret_fd, uid_t *ret_uid, gid_t *ret_gid, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = GUI_REPLY_TIMEOUT_S };
	struct stat st;
	uid_t uid;
	gid_t gid;
	int pfd, fd, r;

	pfd = open(qd->cfg.gui_control, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", qd->cfg.gui_control, strerror(errno));
		return r;
	}
	if (fstat(pfd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a socket", qd->cfg.gui_control);
		r = -ENOTSOCK;
		goto err_close_path;
	}
	r = session_user(qd, &st, &uid, &gid, err, errlen);
	if (r < 0)
		goto err_close_path;
	if (st.st_uid != uid) {
		snprintf(err, errlen, "%s belongs to uid %u, not to the session user %u", qd->cfg.gui_control,
			 (unsigned)st.st_uid, (unsigned)uid);
		r = -EPERM;
		goto err_close_path;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pfd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto err_close_path;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", qd->cfg.gui_control, strerror(errno));
		close(fd);
		goto err_close_path;
	}
	close(pfd);
	*ret_fd = fd;
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;

err_close_path:
	close(pfd);
	return r;
}

/* Sends LINE (with its '\n') and reads one reply line into REPLY (without
 * the '\n').  The compositor answers every command with exactly one line
 * (LIST and friends are not used here). */
static int ctl_command(int fd, const char *line, char *reply, size_t replylen)
{
	size_t len = strlen(line), n = 0;

	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
		return errno ? -errno : -EIO;
	while (n + 1 < replylen) {
		ssize_t r = recv(fd, reply + n, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -ECONNRESET : -errno;
		if (reply[n] == '\n') {
			reply[n] = '\0';
			return 0;
		}
		n++;
	}
	return -EMSGSIZE;
}

/* "OK PATH": an absolute socket path of printable ASCII without spaces */
static bool display_path_ok(const char *p, size_t max)
{
	size_t n = strlen(p);

	if (n < 2 || n >= max || p[0] != '/')
		return false;
	for (; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return false;
	return true;
}

static bool label_ok(const char *l)
{
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (strcmp(l, labels[i]) == 0)
			return true;
	return false;
}

/* ---- the bridge ---- */

static void pidfile_path(struct qd *qd, const char *name, char *buf, size_t len)
{
	qd_path(buf, len, "%s/qubes/%s/gui-bridge.pid", qd->cfg.run_dir, name);
}

static void bridge_forget(struct qd_vm *vm)
{
	if (vm->gui.pid > 0 && vm->gui.pidfd >= 0)
		close(vm->gui.pidfd);
	vm->gui.pid = 0;
	vm->gui.pidfd = -1;
	vm->gui.own_child = false;
}

/* true once the bridge has exited (reaped when it is our child) */
static bool bridge_exited(struct qd_vm *vm, int *ret_status)
{
	struct pollfd p = { .fd = vm->gui.pidfd, .events = POLLIN };

	*ret_status = -1;
	if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
		return false;
	if (vm->gui.own_child && waitpid(vm->gui.pid, ret_status, WNOHANG) <= 0)
		*ret_status = -1;
	return true;
}

/* Ends the bridge: SIGTERM, up to GUI_STOP_GRACE_MS, then SIGKILL. */
static void bridge_kill(struct qd_vm *vm)
{
	struct pollfd p = { .fd = vm->gui.pidfd, .events = POLLIN };
	int st;

	if (vm->gui.pid <= 0)
		return;
	syscall(SYS_pidfd_send_signal, vm->gui.pidfd, SIGTERM, NULL, 0);
	if (poll(&p, 1, GUI_STOP_GRACE_MS) <= 0) {
		qd_log("%s: qube-gui-bridge (pid %d) did not stop on SIGTERM: SIGKILL", vm->name, (int)vm->gui.pid);
		syscall(SYS_pidfd_send_signal, vm->gui.pidfd, SIGKILL, NULL, 0);
		poll(&p, 1, GUI_STOP_GRACE_MS);
	}
	if (vm->gui.own_child)
		waitpid(vm->gui.pid, &st, 0);
	bridge_forget(vm);
}

/* A bridge of NAME left running by an earlier qubed (its pid file, and
 * /proc/PID/cmdline saying qube-gui-bridge --qube NAME). */
static bool bridge_adopt(struct qd *qd, struct qd_vm *vm)
{
	char path[600], cmdline[4096], want[64];
	FILE *f;
	int pid = 0, fd;
	ssize_t n;

	pidfile_path(qd, vm->name, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%d", &pid) != 1 || pid <= 1) {
		fclose(f);
		return false;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, cmdline, sizeof(cmdline) - 1);
	close(fd);
	if (n <= 0)
		return false;
	cmdline[n] = '\0';
	int wl = snprintf(want, sizeof(want), "--qube%c%s%c", 0, vm->name, 0);
	const char *base = strrchr(cmdline, '/');
	base = base ? base + 1 : cmdline;
	if (strcmp(base, "qube-gui-bridge") != 0 || !memmem(cmdline, (size_t)n + 1, want, (size_t)wl))
		return false;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return false;
	vm->gui.pid = pid;
	vm->gui.pidfd = pidfd;
	vm->gui.own_child = false;
	vm->gui.added = true;
	return true;
}

static int bridge_spawn(struct qd *qd, struct qd_vm *vm, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char listen[600], user[32], logpath[600], pidfile[600], text[32];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	pid_t pid;
	int r, n;

	qd_path(listen, sizeof(listen), "%s/qubes/%s/vsock_6000", qd->cfg.run_dir, vm->name);
	qd_path(logpath, sizeof(logpath), "%s/gui-%s.log", qd->cfg.log_dir, vm->name);
	snprintf(user, sizeof(user), "%u:%u", (unsigned)uid, (unsigned)gid);
	char *argv[] = {
		qd->cfg.gui_bridge_path, "--qube", vm->name, "--display", vm->gui.display, "--listen", listen,
		"--user", user, "--waypipe", qd->cfg.gui_waypipe_path, NULL,
	};
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, logpath, O_WRONLY | O_CREAT | O_APPEND, 0640);
	posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	posix_spawnattr_init(&attr);
	r = -qvmm_spawnattr_clean(&attr); /* not qubed's blocked signals */
	if (r == 0)
		r = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(r));
		return -r;
	}
	vm->gui.pid = pid;
	vm->gui.own_child = true;
	vm->gui.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->gui.pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm->gui.pid = 0;
		snprintf(err, errlen, "pidfd_open: %s", strerror(-r));
		return r;
	}
	pidfile_path(qd, vm->name, pidfile, sizeof(pidfile));
	n = snprintf(text, sizeof(text), "%d\n", (int)pid);
	qd_write_atomic(pidfile, text, (size_t)n, 0644);
	return 0;
}

/* QUBE-REMOVE (a stale socket of an earlier run), QUBE-ADD, the bridge. */
static int gui_setup(struct qd *qd, struct qd_vm *vm, char *err, size_t errlen)
{
	char line[GUI_LINE_MAX], reply[GUI_LINE_MAX + 1], *label = NULL;
	uid_t uid;
	gid_t gid;
	int fd, r;

	if (qdb_prop_get(qd->db, vm->name, "label", &label, NULL, NULL) < 0 || !label_ok(label)) {
		snprintf(err, errlen, "its label '%s' is not one the compositor knows", label ? label : "");
		free(label);
		return -EINVAL;
	}
	r = ctl_connect(qd, &fd, &uid, &gid, err, errlen);
	if (r < 0) {
		free(label);
		return r;
	}
	snprintf(line, sizeof(line), "QUBE-REMOVE %s\n", vm->name);
	r = ctl_command(fd, line, reply, sizeof(reply));
	if (r == 0) {
		snprintf(line, sizeof(line), "QUBE-ADD %s %s\n", vm->name, label);
		r = ctl_command(fd, line, reply, sizeof(reply));
	}
	close(fd);
	free(label);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", qd->cfg.gui_control,
			 r == -EAGAIN ? "no reply within 2 s" : strerror(-r));
		return r;
	}
	if (strncmp(reply, "OK ", 3) != 0 || !display_path_ok(reply + 3, sizeof(vm->gui.display))) {
		snprintf(err, errlen, "QUBE-ADD %s: the compositor answered '%.200s'", vm->name, reply);
		return -EPROTO;
	}
	snprintf(vm->gui.display, sizeof(vm->gui.display), "%s", reply + 3);
	vm->gui.added = true;
	return bridge_spawn(qd, vm, uid, gid, err, errlen);
}

static void gui_remove(struct qd *qd, struct qd_vm *vm)
{
	char line[GUI_LINE_MAX], reply[GUI_LINE_MAX + 1], err[256];
	uid_t uid;
	gid_t gid;
	int fd, r;

	r = ctl_connect(qd, &fd, &uid, &gid, err, sizeof(err));
	if (r < 0) {
		qd_log("%s: its windows could not be removed: %s", vm->name, err);
		return;
	}
	snprintf(line, sizeof(line), "QUBE-REMOVE %s\n", vm->name);
	r = ctl_command(fd, line, reply, sizeof(reply));
	close(fd);
	if (r < 0)
		qd_log("%s: QUBE-REMOVE: %s", vm->name, strerror(-r));
	else if (strcmp(reply, "OK") != 0)
		qd_log("%s: QUBE-REMOVE: the compositor answered '%.200s'", vm->name, reply);
}

/* ---- from the loop ---- */

static void gui_decide(struct qd *qd)
{
	if (!qd->cfg.gui_control || !qd->cfg.gui_control[0]) {
		qd_log("GUI: no compositor configured (gui_compositor is empty): qubes run without windows");
		gui_mode = GUI_OFF;
		return;
	}
	if (qd->vsock != QVMM_VSOCK_USER) {
		qd_log("GUI: qube-gui-bridge needs qube-vsockd's hybrid vsock (vsock = vsockd); with vhost-vsock "
		       "qubes run without windows");
		gui_mode = GUI_OFF;
		return;
	}
	if (access(qd->cfg.gui_bridge_path, X_OK) != 0) {
		qd_log("GUI: %s: %s; qubes run without windows", qd->cfg.gui_bridge_path, strerror(errno));
		gui_mode = GUI_OFF;
		return;
	}
	qd_log("GUI: compositor %s, bridges %s (waypipe %s), session user %s", qd->cfg.gui_control,
	       qd->cfg.gui_bridge_path, qd->cfg.gui_waypipe_path,
	       qd->cfg.gui_user[0] ? qd->cfg.gui_user : "the control socket's owner");
	gui_mode = GUI_ON;
}

void qd_gui_tick(struct qd *qd)
{
	if (gui_mode == GUI_UNKNOWN)
		gui_decide(qd);
	if (gui_mode != GUI_ON)
		return;
	for (struct qd_vm *vm = qd->vms; vm; vm = vm->next) {
		bool up = vm->state == QD_STARTING || vm->state == QD_RUNNING || vm->state == QD_PAUSED;
		int status;
		char err[512];

		if (vm->gui.pid > 0 && bridge_exited(vm, &status)) {
			unsigned delay = vm->gui.restarts < 5 ? 1u << vm->gui.restarts : 30;
			if (status == -1)
				qd_log("%s: qube-gui-bridge (pid %d) exited", vm->name, (int)vm->gui.pid);
			else if (WIFSIGNALED(status))
				qd_log("%s: qube-gui-bridge (pid %d) was killed by signal %d", vm->name,
				       (int)vm->gui.pid, WTERMSIG(status));
			else
				qd_log("%s: qube-gui-bridge (pid %d) exited with status %d (log: %s/gui-%s.log)",
				       vm->name, (int)vm->gui.pid, WEXITSTATUS(status), qd->cfg.log_dir, vm->name);
			bridge_forget(vm);
			if (up) {
				qd_log("%s: restarting its GUI bridge in %u s", vm->name, delay);
				vm->gui.restarts++;
				qd_time_after_ms(&vm->gui.retry_at, delay * 1000u);
			}
		}
		if (!up || vm->gui.pid > 0 || !qd_time_passed(&vm->gui.retry_at))
			continue;
		if (bridge_adopt(qd, vm)) {
			qd_log("%s: adopted its qube-gui-bridge (pid %d) from before the restart", vm->name,
			       (int)vm->gui.pid);
			continue;
		}
		if (gui_setup(qd, vm, err, sizeof(err)) < 0) {
			if (!vm->gui.noted)
				qd_log("%s: no windows: %s (trying again every %u s while it runs)", vm->name, err,
				       GUI_RETRY_MS / 1000);
			vm->gui.noted = true;
			qd_time_after_ms(&vm->gui.retry_at, GUI_RETRY_MS);
			continue;
		}
		vm->gui.noted = false;
		qd_log("%s: windows on the compositor's socket %s through qube-gui-bridge (pid %d)", vm->name,
		       vm->gui.display, (int)vm->gui.pid);
	}
}

void qd_gui_vm_stop(struct qd *qd, struct qd_vm *vm)
{
	char pidfile[600];

	/* at start-up, qubes found halted are stopped before the first tick */
	if (gui_mode == GUI_UNKNOWN)
		gui_decide(qd);
	if (gui_mode != GUI_ON) {
		memset(&vm->gui, 0, sizeof(vm->gui));
		return;
	}
	/* a bridge left by an earlier qubed for a qube that stopped meanwhile */
	if (vm->gui.pid <= 0)
		bridge_adopt(qd, vm);
	if (vm->gui.added)
		gui_remove(qd, vm);
	if (vm->gui.pid > 0) {
		bridge_kill(vm);
		qd_log("%s: its windows and GUI bridge are gone", vm->name);
	}
	pidfile_path(qd, vm->name, pidfile, sizeof(pidfile));
	unlink(pidfile);
	memset(&vm->gui, 0, sizeof(vm->gui));
}
