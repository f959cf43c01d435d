/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-open-in-dvm FILE: opens FILE in a new disposable and, when the
 * viewer there exits, takes the edited file back if it changed and the
 * user keeps it.  The same program is the service qube.OpenInVM in the
 * disposable (installed as /etc/qube/rpc/qube.OpenInVM, a link to it; the
 * agent runs it under that name).  The wire: oiv.h, docs/filecopy.md.
 *
 * Both directions carry qube.Filecopy streams and both are unpacked by
 * the receiver's unpacker in a confined child (rpc/guest/filecopy/
 * sandbox.c): the disposable does not trust the caller's stream, and the
 * caller does not trust anything that comes back.
 */
#include "oiv.h"
#include "sandbox.h"
#include "send.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_RPC_FAILED 125
#define EXIT_REFUSED 126
#define EXIT_NO_SERVICE 127
#define DEFAULT_FILECOPY_CONF "/etc/qube/filecopy.conf"
#define DEFAULT_VIEWER_CONF "/etc/qube/open-in-vm.conf"
#define SERVICE_NAME "qube.OpenInVM"

static const char *prog = "qube-open-in-dvm";

/* ---- shared I/O ---- */

static int read_exact(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPIPE;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, -1);
			continue;
		}
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Copies exactly n bytes from in_fd to out_fd (a pipe to an unpacker).
 * 0; -EPIPE when in_fd ended first; -ECANCELED when the reader of out_fd
 * went away (it stopped early: its own result says why). */
static int relay_exact(int in_fd, int out_fd, uint64_t n)
{
	static uint8_t buf[65536];
	while (n) {
		size_t want = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		ssize_t k = read(in_fd, buf, want);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPIPE;
		if (write_all(out_fd, buf, (size_t)k) < 0)
			return -ECANCELED;
		n -= (uint64_t)k;
	}
	return 0;
}

/* The only entry of dir_fd (a transfer of at most one entry), which must
 * be a regular file: an fd open on it and its name, or -errno with why. */
static int only_file(int dir_fd, char *name, size_t namelen, char *why, size_t whylen)
{
	int dfd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	struct dirent *de;
	int n = 0;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		snprintf(why, whylen, "cannot read the directory: %s", strerror(errno));
		return -errno;
	}
	rewinddir(d);
	name[0] = '\0';
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		snprintf(name, namelen, "%s", de->d_name);
	}
	closedir(d);
	if (n != 1) {
		snprintf(why, whylen, "the transfer holds %d entries, not one file", n);
		return -EINVAL;
	}
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		snprintf(why, whylen, "the transfer's entry is not a regular file");
		return -EINVAL;
	}
	fcntl(fd, F_SETFL, 0);
	return fd;
}

/* Size and CRC32C of what fd holds (from its start). */
static int digest(int fd, uint64_t *ret_size, uint32_t *ret_crc)
{
	static uint8_t buf[65536];
	uint64_t size = 0;
	uint32_t crc = 0;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		crc = qfc_crc32c(crc, buf, (size_t)k);
		size += (uint64_t)k;
	}
	*ret_size = size;
	*ret_crc = crc;
	return 0;
}

/* Removes the entries of a temporary directory (files only, as the
 * transfers of one file leave) and the directory. */
static void remove_tmpdir(const char *path, int dir_fd)
{
	char name[NAME_MAX + 1], why[64];
	for (int i = 0; i < 4; i++) {
		int fd = only_file(dir_fd, name, sizeof(name), why, sizeof(why));
		if (fd >= 0)
			close(fd);
		if (!name[0] || (unlinkat(dir_fd, name, 0) < 0 &&
				 unlinkat(dir_fd, name, AT_REMOVEDIR) < 0))
			break;
	}
	rmdir(path);
}

static int make_tmpdir(char *path, size_t len, int *ret_fd)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if ((size_t)snprintf(path, len, "%s/qube-open.XXXXXX", tmp) >= len)
		return -ENAMETOOLONG;
	if (!mkdtemp(path))
		return -errno;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		rmdir(path);
		return -e;
	}
	*ret_fd = fd;
	return 0;
}

/* ======================= the service (in the disposable) ======================= */

/* A qube.Filecopy reply record on stdout. */
static void send_reply(int status, const struct qfc_reply *rep, const char *msg)
{
	struct qfc_reply r = rep ? *rep : (struct qfc_reply){ 0 };
	uint8_t buf[QFC_REPLY_HEADER_SIZE + QFC_REPLY_MAX_MSG];
	size_t ml = msg ? strlen(msg) : 0;
	if (ml > QFC_REPLY_MAX_MSG)
		ml = QFC_REPLY_MAX_MSG;
	r.status = (uint32_t)(status < 0 ? -status : status);
	r.msg_len = (uint32_t)ml;
	qfc_reply_encode(&r, buf);
	memcpy(buf + QFC_REPLY_HEADER_SIZE, msg ? msg : "", ml);
	(void)write_all(STDOUT_FILENO, buf, QFC_REPLY_HEADER_SIZE + ml);
}

static int send_failed(const char *msg)
{
	struct qoiv_result res = { .status = QOIV_FAILED };
	uint8_t h[QOIV_HEADER_SIZE];
	size_t ml = strlen(msg);
	if (ml > QOIV_MAX_MSG)
		ml = QOIV_MAX_MSG;
	if (ml == 0)
		msg = "failed", ml = 6;
	res.msg_len = (uint32_t)ml;
	qoiv_result_encode(&res, h);
	if (write_all(STDOUT_FILENO, h, sizeof(h)) < 0 || write_all(STDOUT_FILENO, msg, ml) < 0)
		return EXIT_FAILED;
	return 0;
}

/* Started as root: becomes the file-copy user (settings "user", default
 * "user"); root itself is refused.  Sets HOME, USER, LOGNAME. */
static int become_user(const char *name, char *err, size_t errlen)
{
	if (geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(name);
	if (!pw || pw->pw_uid == 0) {
		snprintf(err, errlen, "refusing to open files as root: no unprivileged user '%s' "
			 "(setting \"user\" of the file-copy settings)", name);
		return -EPERM;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0 || setuid(0) == 0) {
		snprintf(err, errlen, "cannot become user '%s'", name);
		return -EPERM;
	}
	if (setenv("HOME", pw->pw_dir, 1) < 0 || setenv("USER", pw->pw_name, 1) < 0 ||
	    setenv("LOGNAME", pw->pw_name, 1) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (chdir(pw->pw_dir) < 0)
		(void)chdir("/");
	return 0;
}

static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name) <
				     sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Reads one viewer settings file into editor/viewer (a missing file is
 * fine); false with why on an error. */
static bool read_viewer_conf(const char *path, char **editor, char **viewer, char *why,
			     size_t whylen)
{
	char *text = NULL, err[512];
	size_t len = 0;
	int r = qfc_read_small_file(path, &text, &len);
	if (r == -ENOENT)
		return true;
	if (r < 0) {
		snprintf(why, whylen, "%.400s: %s", path, strerror(-r));
		return false;
	}
	r = qoiv_config_parse(text, len, path, editor, viewer, err, sizeof(err));
	free(text);
	if (r < 0)
		snprintf(why, whylen, "%s", err);
	return r == 0;
}

/*
 * The program that opens the file, in this order: "viewer" (view-only) or
 * "editor" of ~/.config/qube/open-in-vm.conf, else of the system's file
 * ($QOIV_CONF, default /etc/qube/open-in-vm.conf); xdg-open when
 * installed; with the caller's terminal, $VISUAL, $EDITOR, then vi (for
 * view-only: less, then vi).  NULL with why when there is none.
 */
static const char *choose_viewer(bool view_only, bool terminal, char **editor, char **viewer,
				 char *why, size_t whylen)
{
	const char *sys = getenv("QOIV_CONF");
	if (!read_viewer_conf(sys && sys[0] ? sys : DEFAULT_VIEWER_CONF, editor, viewer, why,
			      whylen))
		return NULL;
	const char *home = getenv("HOME");
	char conf[4200];
	if (home && home[0] == '/' &&
	    (size_t)snprintf(conf, sizeof(conf), "%s/.config/qube/open-in-vm.conf", home) <
		    sizeof(conf) &&
	    !read_viewer_conf(conf, editor, viewer, why, whylen))
		return NULL;
	if (view_only && *viewer)
		return *viewer;
	if (*editor)
		return *editor;
	if (in_path("xdg-open"))
		return "xdg-open";
	if (terminal && view_only && in_path("less"))
		return "less";
	const char *visual = getenv("VISUAL"), *ed = getenv("EDITOR");
	if (terminal && !view_only && visual && visual[0])
		return visual;
	if (terminal && !view_only && ed && ed[0])
		return ed;
	if (terminal && in_path("vi"))
		return "vi";
	snprintf(why, whylen, "no program to open the file with: set \"editor =\" in "
		 "~/.config/qube/open-in-vm.conf or " DEFAULT_VIEWER_CONF ", install xdg-open, "
		 "or call from a terminal (vi)");
	return NULL;
}

/* Runs the viewer on FILE (in dir) and waits for it.  With a terminal the
 * viewer gets a pty whose input is the rest of stdin and whose output goes
 * to stderr (both relayed by the caller); else stdin is /dev/null and its
 * output goes to stderr.  Returns its exit status (127: could not run). */
static int run_viewer(const char *viewer, const char *dir, const char *file,
		      const struct qoiv_request *req)
{
	bool terminal = req->flags & QOIV_F_TERMINAL;
	int master = -1;
	char slave[128] = "";

	if (terminal) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
		    ptsname_r(master, slave, sizeof(slave)) != 0) {
			fprintf(stderr, "%s: cannot make a terminal: %s\n", SERVICE_NAME,
				strerror(errno));
			if (master >= 0)
				close(master);
			return 127;
		}
		struct winsize ws = { .ws_row = req->rows, .ws_col = req->cols };
		ioctl(master, TIOCSWINSZ, &ws);
	}
	pid_t pid = fork();
	if (pid < 0) {
		if (master >= 0)
			close(master);
		return 127;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		setsid();
		if (terminal) {
			int s = open(slave, O_RDWR);
			if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 ||
			    dup2(s, 2) < 0)
				_exit(127);
			if (!getenv("TERM"))
				setenv("TERM", "xterm-256color", 1);
		} else {
			int n = open("/dev/null", O_RDONLY);
			if (n < 0 || dup2(n, 0) < 0 || dup2(2, 1) < 0)
				_exit(127);
		}
		if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		if (chdir(dir) < 0)
			_exit(127);
		execlp(viewer, viewer, file, (char *)NULL);
		fprintf(stderr, "%s: cannot run %s: %s\n", SERVICE_NAME, viewer, strerror(errno));
		_exit(127);
	}
	int status = 0;
	if (!terminal) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	/* relay: stdin -> pty (keys), pty -> stderr (screen), until the viewer
	 * has exited and its output is drained */
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	uint8_t in[4096], out[16384];
	size_t ilen = 0;
	bool stdin_open = true, exited = false;
	for (;;) {
		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = true;
		struct pollfd pfd[2] = {
			{ .fd = master, .events = POLLIN | (ilen ? POLLOUT : 0) },
			{ .fd = stdin_open && ilen == 0 && !exited ? STDIN_FILENO : -1,
			  .events = POLLIN },
		};
		int n = poll(pfd, 2, exited ? 0 : 100);
		if (n < 0 && errno != EINTR)
			break;
		bool got_output = false;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k = read(master, out, sizeof(out));
			if (k > 0) {
				(void)write_all(STDERR_FILENO, out, (size_t)k);
				got_output = true;
			} else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				/* EIO: no process holds the terminal any more */
				if (exited)
					break;
			}
		}
		if ((pfd[0].revents & POLLOUT) && ilen) {
			ssize_t k = write(master, in, ilen);
			if (k > 0) {
				memmove(in, in + k, ilen - (size_t)k);
				ilen -= (size_t)k;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k = read(STDIN_FILENO, in, sizeof(in));
			if (k > 0)
				ilen = (size_t)k;
			else if (k == 0 || errno != EINTR)
				stdin_open = false;
		}
		if (exited && !got_output)
			break;
	}
	close(master);
	if (!exited)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int service_main(void)
{
	uint8_t h[QOIV_HEADER_SIZE];
	struct qoiv_request req;
	char err[512], msg[QFC_REPLY_MAX_MSG + 1], name[NAME_MAX + 1];
	int r;

	signal(SIGPIPE, SIG_IGN);
	prog = SERVICE_NAME;
	r = read_exact(STDIN_FILENO, h, sizeof(h));
	if (r < 0) {
		fprintf(stderr, "%s: no request (%s)\n", SERVICE_NAME, strerror(-r));
		return EXIT_FAILED;
	}
	if (qoiv_request_decode(h, &req, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: refused: %s\n", SERVICE_NAME, err);
		send_reply(EPROTO, NULL, err);
		return EXIT_FAILED;
	}
	const char *remote = getenv("QUBE_REMOTE");

	/* the file-copy settings: the user, the limits */
	struct qfc_limits l;
	qfc_limits_default(&l);
	char *user = NULL, *incoming = NULL, *text = NULL;
	size_t len = 0;
	const char *conf = getenv("QFC_CONF");
	r = qfc_read_small_file(conf ? conf : DEFAULT_FILECOPY_CONF, &text, &len);
	if (r == 0) {
		r = qfc_config_parse(text, len, conf ? conf : DEFAULT_FILECOPY_CONF, &l, &user,
				     &incoming, err, sizeof(err));
		free(text);
	} else if (r == -ENOENT && !conf) {
		r = 0;
	} else {
		snprintf(err, sizeof(err), "%s: %s", conf ? conf : DEFAULT_FILECOPY_CONF,
			 strerror(-r));
	}
	free(incoming);
	if (r == 0)
		r = become_user(user ? user : "user", err, sizeof(err));
	free(user);
	if (r < 0) {
		fprintf(stderr, "%s: refused: %s\n", SERVICE_NAME, err);
		send_reply(r, NULL, err);
		return EXIT_FAILED;
	}

	/* the file, unpacked by the receiver's unpacker in its sandbox */
	char dir[4200];
	int dir_fd = -1;
	r = make_tmpdir(dir, sizeof(dir), &dir_fd);
	if (r < 0) {
		snprintf(err, sizeof(err), "cannot make a directory for the file: %s", strerror(-r));
		fprintf(stderr, "%s: %s\n", SERVICE_NAME, err);
		send_reply(r, NULL, err);
		return EXIT_FAILED;
	}
	l.max_entries = 1;
	if (l.max_bytes > QOIV_MAX_FILE)
		l.max_bytes = QOIV_MAX_FILE;
	int p[2];
	struct qfc_unpack_child child;
	if (pipe2(p, O_CLOEXEC) < 0 ||
	    (r = qfc_unpack_child_start(p[0], -1, dir_fd, &l, SERVICE_NAME, false, &child)) < 0) {
		send_reply(EIO, NULL, "cannot start the unpacker");
		remove_tmpdir(dir, dir_fd);
		return EXIT_FAILED;
	}
	close(p[0]);
	int rr = relay_exact(STDIN_FILENO, p[1], req.stream_len);
	close(p[1]);
	struct qfc_reply rep = { 0 };
	int ur = qfc_unpack_child_finish(&child, &rep, msg, sizeof(msg));
	if (ur == 0 && rr < 0) {
		/* cannot be: the unpacker confirms a stream only when it ended
		 * exactly after its trailer, where the caller's count ended */
		ur = -EPROTO;
		snprintf(msg, sizeof(msg), "the stream is shorter than its announced %" PRIu64
			 " bytes", req.stream_len);
	}
	int fd = -1;
	if (ur == 0) {
		fd = only_file(dir_fd, name, sizeof(name), msg, sizeof(msg));
		if (fd < 0)
			ur = fd;
	}
	if (ur < 0) {
		fprintf(stderr, "%s: refused: %s\n", SERVICE_NAME, msg);
		send_reply(ur, &rep, msg);
		remove_tmpdir(dir, dir_fd);
		return EXIT_FAILED;
	}
	send_reply(0, &rep, NULL);
	fprintf(stderr, "%s: '%s' from %s (%" PRIu64 " bytes)\n", SERVICE_NAME, name,
		remote ? remote : "?", rep.data_bytes);

	bool view_only = req.flags & QOIV_F_VIEW_ONLY;
	uint64_t size0 = 0, size1 = 0;
	uint32_t crc0 = 0, crc1 = 0;
	if (view_only)
		fchmod(fd, 0400);
	digest(fd, &size0, &crc0);
	close(fd);
	char *editor = NULL, *viewer_conf = NULL;
	const char *viewer = choose_viewer(view_only, req.flags & QOIV_F_TERMINAL, &editor,
					   &viewer_conf, err, sizeof(err));
	int code = 0;
	if (!viewer) {
		code = send_failed(err);
		goto out;
	}
	int vs = run_viewer(viewer, dir, name, &req);
	if (vs == 127) {
		snprintf(err, sizeof(err), "could not run %s", viewer);
		code = send_failed(err);
		goto out;
	}
	if (vs != 0)
		fprintf(stderr, "%s: %s exited with status %d\n", SERVICE_NAME, viewer, vs);

	struct qoiv_result res = { .status = QOIV_UNCHANGED };
	uint8_t rh[QOIV_HEADER_SIZE];
	if (!view_only) {
		/* by name: an editor may have replaced the file */
		fd = only_file(dir_fd, name, sizeof(name), err, sizeof(err));
		if (fd < 0) {
			code = send_failed(err);
			goto out;
		}
		r = digest(fd, &size1, &crc1);
		close(fd);
		if (r == 0 && (size1 != size0 || crc1 != crc0))
			res.status = QOIV_CHANGED;
	}
	if (res.status == QOIV_UNCHANGED) {
		qoiv_result_encode(&res, rh);
		code = write_all(STDOUT_FILENO, rh, sizeof(rh)) < 0 ? EXIT_FAILED : 0;
		goto out;
	}
	char path[4200 + NAME_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct qfc_sender *s = qfc_sender_new(SERVICE_NAME, true);
	if (!s || qfc_sender_add(s, path, false) < 0 ||
	    qfc_sender_stream_size(s) > QOIV_MAX_STREAM) {
		qfc_sender_free(s);
		code = send_failed("cannot send the edited file back");
		goto out;
	}
	res.stream_len = qfc_sender_stream_size(s);
	qoiv_result_encode(&res, rh);
	if (write_all(STDOUT_FILENO, rh, sizeof(rh)) < 0 || qfc_sender_send(s, STDOUT_FILENO) < 0)
		code = EXIT_FAILED;
	qfc_sender_free(s);
out:
	free(editor);
	free(viewer_conf);
	remove_tmpdir(dir, dir_fd);
	close(dir_fd);
	return code;
}

/* ======================= the caller ======================= */

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_raw = false;
	}
}

static void on_fatal_signal(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void raw_tty(void)
{
	struct termios t;
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return;
	t = saved_tty;
	cfmakeraw(&t);
	/* TCSANOW: what was typed ahead goes to the program too */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		tty_raw = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-open-in-dvm [OPTIONS] FILE\n"
		"Opens FILE in a new disposable qube (service qube.OpenInVM, target @dispvm)\n"
		"with its default program; when the program exits, an edited FILE comes back\n"
		"if you keep it.  The disposable is destroyed when the call ends.\n"
		"  --view-only       open read-only; nothing comes back\n"
		"  --keep            keep changes without asking\n"
		"  --discard         discard changes without asking\n"
		"                    (neither and no terminal: changes are saved beside FILE\n"
		"                    as FILE.edited, never over it)\n"
		"  --no-terminal     do not lend this terminal to the program in the disposable\n"
		"  --dispvm TPL      a disposable of TPL (target @dispvm:TPL)\n"
		"Exit status: 0 done; 1 failed; 2 usage; 126 refused by policy; 125 the call\n"
		"failed; 127 no qube.OpenInVM there.\n");
}

/* The caller's end of the call: qube-call as a child on two pipes. */
struct call {
	pid_t pid;
	int to, from; /* its stdin, its stdout */
};

static int start_call(const char *target, struct call *c)
{
	int to[2], from[2];
	if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)
		return -errno;
	const char *call = getenv("QUBE_CALL");
	const char *transport = getenv("QUBE_CALL_TRANSPORT");
	if (!call)
		call = "qube-call";
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(to[0], STDIN_FILENO) < 0 || dup2(from[1], STDOUT_FILENO) < 0)
			_exit(EXIT_RPC_FAILED);
		const char *av[8];
		int k = 0;
		av[k++] = call;
		if (transport) {
			av[k++] = "--transport";
			av[k++] = transport;
		}
		av[k++] = target;
		av[k++] = SERVICE_NAME;
		av[k] = NULL;
		execvp(call, (char *const *)av);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, call, strerror(errno));
		_exit(EXIT_RPC_FAILED);
	}
	close(to[0]);
	close(from[1]);
	c->pid = pid;
	c->to = to[1];
	c->from = from[0];
	return 0;
}

static int finish_call(struct call *c)
{
	int st = 0;
	if (c->to >= 0)
		close(c->to);
	if (c->from >= 0)
		close(c->from);
	c->to = c->from = -1;
	while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_RPC_FAILED;
}

/* A free name beside path: "NAME.edited", "NAME.edited.1", ... opened
 * O_EXCL.  The fd, and the name in out. */
static int create_beside(const char *path, mode_t mode, char *out, size_t outlen)
{
	for (unsigned i = 0; i < 1000; i++) {
		if (i == 0)
			snprintf(out, outlen, "%s.edited", path);
		else
			snprintf(out, outlen, "%s.edited.%u", path, i);
		int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

static int copy_fd(int in, int out)
{
	static uint8_t buf[65536];
	if (lseek(in, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t k = read(in, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return 0;
		int r = write_all(out, buf, (size_t)k);
		if (r < 0)
			return r;
	}
}

static bool unchanged_since(const char *path, const struct stat *a)
{
	struct stat b;
	return lstat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino &&
	       a->st_size == b.st_size && a->st_mtim.tv_sec == b.st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b.st_mtim.tv_nsec && a->st_ctim.tv_sec == b.st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

/* Puts the edited content (src) over path, atomically (a temporary name
 * in the same directory, then rename), or beside it. */
static int store_edit(const char *path, const struct stat *orig, int src, bool beside)
{
	char tmp[PATH_MAX + 64], dst[PATH_MAX + 32];
	mode_t mode = orig->st_mode & 0777;
	int fd, r;

	if (!beside && !unchanged_since(path, orig)) {
		fprintf(stderr, "%s: %s changed while it was open in the disposable: not replaced\n",
			prog, path);
		beside = true;
	}
	if (beside) {
		fd = create_beside(path, mode, dst, sizeof(dst));
		if (fd < 0) {
			fprintf(stderr, "%s: cannot create %s.edited: %s\n", prog, path, strerror(-fd));
			return fd;
		}
		r = copy_fd(src, fd);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0) {
			unlink(dst);
			fprintf(stderr, "%s: writing %s: %s\n", prog, dst, strerror(-r));
			return r;
		}
		fprintf(stderr, "%s: the edited file is saved as %s\n", prog, dst);
		return 0;
	}
	char *dcopy = strdup(path), *bcopy = strdup(path);
	if (!dcopy || !bcopy) {
		free(dcopy);
		free(bcopy);
		return -ENOMEM;
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.qube-open-XXXXXX", dirname(dcopy), basename(bcopy));
	free(dcopy);
	free(bcopy);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot write next to %s: %s\n", prog, path, strerror(errno));
		return -errno;
	}
	r = copy_fd(src, fd);
	if (r == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		fprintf(stderr, "%s: cannot replace %s: %s\n", prog, path, strerror(-r));
		return r;
	}
	fprintf(stderr, "%s: %s: changes kept\n", prog, path);
	return 0;
}

static bool ask_keep(const char *path)
{
	char line[64];
	fprintf(stderr, "%s: %s was changed in the disposable. Keep the changes? [y/N] ", prog,
		path);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

enum keep_mode { KEEP_ASK, KEEP_YES, KEEP_NO };

/*
 * Reads the result (after the file's reply record) while relaying the
 * terminal.  CHANGED: the returned stream goes to an unpacker into
 * tmpdir_fd (refused for a view-only open, which has none).  Returns 0
 * with *ret_res, or EXIT_FAILED (said why).
 */
static int read_result(struct call *c, bool terminal, bool view_only, struct qoiv_result *ret_res,
		       int tmpdir_fd, struct qfc_reply *ret_rep)
{
	uint8_t h[QOIV_HEADER_SIZE], keys[4096];
	size_t hlen = 0, klen = 0;
	bool have_header = false, stdin_open = terminal;
	struct qoiv_result res = { 0 };
	char err[512], msg[QOIV_MAX_MSG + 1];
	size_t mlen = 0;
	uint64_t left = 0;
	int upipe = -1, r;
	struct qfc_unpack_child child = { .pid = -1 };

	if (terminal) {
		raw_tty();
		fcntl(c->to, F_SETFL, fcntl(c->to, F_GETFL) | O_NONBLOCK);
	}
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = c->from, .events = POLLIN },
			{ .fd = stdin_open && klen == 0 ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = klen ? c->to : -1, .events = POLLOUT },
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents) {
			ssize_t k = read(STDIN_FILENO, keys, sizeof(keys));
			if (k > 0)
				klen = (size_t)k;
			else if (k == 0 || errno != EINTR)
				stdin_open = false;
		}
		if (pfd[2].revents) {
			ssize_t k = write(c->to, keys, klen);
			if (k > 0) {
				memmove(keys, keys + k, klen - (size_t)k);
				klen -= (size_t)k;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				klen = 0;
				stdin_open = false;
			}
		}
		if (!pfd[0].revents)
			continue;
		uint8_t buf[65536];
		size_t want = sizeof(buf);
		if (!have_header)
			want = sizeof(h) - hlen;
		else if (res.status == QOIV_FAILED)
			want = res.msg_len - mlen;
		else if (left < want)
			want = (size_t)left;
		ssize_t k = read(c->from, buf, want);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			restore_tty();
			fprintf(stderr, "\r\n%s: the disposable ended without %s\n", prog,
				have_header ? "sending all of its result" : "a result");
			goto fail;
		}
		if (!have_header) {
			memcpy(h + hlen, buf, (size_t)k);
			hlen += (size_t)k;
			if (hlen < sizeof(h))
				continue;
			if (qoiv_result_decode(h, &res, err, sizeof(err)) < 0) {
				restore_tty();
				fprintf(stderr, "\r\n%s: the disposable's result refused: %s\n", prog, err);
				goto fail;
			}
			have_header = true;
			if (res.status == QOIV_UNCHANGED)
				break;
			if (res.status == QOIV_CHANGED && (view_only || tmpdir_fd < 0)) {
				restore_tty();
				fprintf(stderr, "\r\n%s: the disposable sent a file back for a view-only "
					"open: refused\n", prog);
				goto fail;
			}
			if (res.status == QOIV_CHANGED) {
				int p[2];
				struct qfc_limits l;
				qfc_limits_default(&l);
				l.max_entries = 1;
				l.max_bytes = QOIV_MAX_FILE;
				left = res.stream_len;
				if (pipe2(p, O_CLOEXEC) < 0 ||
				    qfc_unpack_child_start(p[0], -1, tmpdir_fd, &l, prog, false,
							   &child) < 0) {
					restore_tty();
					fprintf(stderr, "%s: cannot start the unpacker\n", prog);
					goto fail;
				}
				close(p[0]);
				upipe = p[1];
			}
			continue;
		}
		if (res.status == QOIV_FAILED) {
			memcpy(msg + mlen, buf, (size_t)k);
			mlen += (size_t)k;
			if (mlen < res.msg_len)
				continue;
			break;
		}
		/* CHANGED: the stream, exactly as long as announced */
		left -= (uint64_t)k;
		if (upipe >= 0 && write_all(upipe, buf, (size_t)k) < 0) {
			close(upipe); /* the unpacker stopped: its result says why */
			upipe = -1;
		}
		if (left == 0)
			break;
	}
	restore_tty();
	if (terminal)
		fputs("\r", stderr);
	if (!have_header)
		goto fail;
	if (res.status == QOIV_FAILED) {
		/* from the disposable: printable ASCII only */
		for (size_t i = 0; i < mlen; i++)
			if ((uint8_t)msg[i] < 0x20 || (uint8_t)msg[i] >= 0x7f)
				msg[i] = '?';
		msg[mlen] = '\0';
		fprintf(stderr, "%s: the disposable could not open the file: %s\n", prog, msg);
		*ret_res = res;
		return EXIT_FAILED;
	}
	if (res.status == QOIV_CHANGED) {
		if (upipe >= 0)
			close(upipe);
		upipe = -1;
		r = qfc_unpack_child_finish(&child, ret_rep, msg, sizeof(msg));
		if (r < 0) {
			fprintf(stderr, "%s: the edited file from the disposable refused: %s\n", prog,
				msg);
			return EXIT_FAILED;
		}
	}
	*ret_res = res;
	return 0;
fail:
	if (upipe >= 0)
		close(upipe);
	if (child.pid > 0) {
		struct qfc_reply rep;
		qfc_unpack_child_finish(&child, &rep, msg, sizeof(msg));
	}
	return EXIT_FAILED;
}

static int client_main(int argc, char **argv)
{
	enum { O_VIEW = 256, O_KEEP, O_DISCARD, O_NOTERM, O_DISPVM };
	static const struct option opts[] = {
		{ "view-only", no_argument, NULL, O_VIEW },
		{ "keep", no_argument, NULL, O_KEEP },
		{ "discard", no_argument, NULL, O_DISCARD },
		{ "no-terminal", no_argument, NULL, O_NOTERM },
		{ "dispvm", required_argument, NULL, O_DISPVM },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool view_only = false, no_terminal = false;
	enum keep_mode keep = KEEP_ASK;
	char target[64] = "@dispvm";
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_VIEW: view_only = true; break;
		case O_KEEP: keep = KEEP_YES; break;
		case O_DISCARD: keep = KEEP_NO; break;
		case O_NOTERM: no_terminal = true; break;
		case O_DISPVM:
			if (strlen(optarg) > 31 || !optarg[0]) {
				fprintf(stderr, "%s: --dispvm: not a qube name\n", prog);
				return EXIT_USAGE;
			}
			snprintf(target, sizeof(target), "@dispvm:%s", optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);

	/* the file itself, not a link to it: that is what is replaced */
	char *path = realpath(argv[optind], NULL);
	struct stat orig;
	if (!path || stat(path, &orig) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, argv[optind], strerror(errno));
		free(path);
		return EXIT_FAILED;
	}
	if (!S_ISREG(orig.st_mode)) {
		fprintf(stderr, "%s: %s: not a regular file\n", prog, argv[optind]);
		free(path);
		return EXIT_FAILED;
	}
	struct qfc_sender *s = qfc_sender_new(prog, true);
	if (!s || qfc_sender_add(s, path, false) < 0) {
		qfc_sender_free(s);
		free(path);
		return EXIT_FAILED;
	}
	if (qfc_sender_stream_size(s) > QOIV_MAX_STREAM) {
		fprintf(stderr, "%s: %s: over %llu bytes\n", prog, path,
			(unsigned long long)QOIV_MAX_FILE);
		qfc_sender_free(s);
		free(path);
		return EXIT_FAILED;
	}
	bool terminal = !no_terminal && isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
	struct qoiv_request req = {
		.flags = (view_only ? QOIV_F_VIEW_ONLY : 0) | (terminal ? QOIV_F_TERMINAL : 0),
		.stream_len = qfc_sender_stream_size(s),
	};
	if (terminal) {
		struct winsize ws = { 0 };
		if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
			ws.ws_row = 24, ws.ws_col = 80;
		req.rows = ws.ws_row > QOIV_MAX_TERM ? QOIV_MAX_TERM : ws.ws_row;
		req.cols = ws.ws_col > QOIV_MAX_TERM ? QOIV_MAX_TERM : ws.ws_col;
	}

	char tmpdir[4200];
	int tmpdir_fd = -1, code = EXIT_FAILED, r;
	if (!view_only && (r = make_tmpdir(tmpdir, sizeof(tmpdir), &tmpdir_fd)) < 0) {
		fprintf(stderr, "%s: cannot make a temporary directory: %s\n", prog, strerror(-r));
		goto out_free;
	}
	struct call c = { .pid = -1, .to = -1, .from = -1 };
	if ((r = start_call(target, &c)) < 0) {
		fprintf(stderr, "%s: cannot start qube-call: %s\n", prog, strerror(-r));
		goto out_tmp;
	}
	uint8_t h[QOIV_HEADER_SIZE];
	qoiv_request_encode(&req, h);
	bool sent = write_all(c.to, h, sizeof(h)) == 0 && qfc_sender_send(s, c.to) == 0;
	if (!terminal) {
		close(c.to);
		c.to = -1;
	}
	/* the reply record for the file: header, then its message */
	uint8_t rbuf[QFC_REPLY_HEADER_SIZE + QFC_REPLY_MAX_MSG];
	struct qfc_reply rep;
	char err[256];
	bool got = false;
	r = read_exact(c.from, rbuf, QFC_REPLY_HEADER_SIZE);
	if (r == 0 && qfc_reply_decode(rbuf, &rep, err, sizeof(err)) == 0 &&
	    read_exact(c.from, rbuf + QFC_REPLY_HEADER_SIZE, rep.msg_len) == 0) {
		r = qfc_sender_check_reply(s, rbuf, QFC_REPLY_HEADER_SIZE + rep.msg_len, &got);
	} else {
		r = -EPROTO;
	}
	if (!got) {
		int cc = finish_call(&c);
		const char *why = cc == EXIT_REFUSED ? "refused by policy" :
				  cc == EXIT_NO_SERVICE ? "no qube.OpenInVM service there" :
				  cc == EXIT_RPC_FAILED ? "the call failed (no disposable)" :
							  "the disposable sent no valid reply";
		fprintf(stderr, "%s: to %s: %s\n", prog, target, why);
		code = cc == EXIT_REFUSED || cc == EXIT_NO_SERVICE || cc == EXIT_RPC_FAILED ?
			       cc : EXIT_FAILED;
		goto out_tmp;
	}
	if (r < 0 || !sent) {
		finish_call(&c);
		goto out_tmp;
	}
	struct qoiv_result res = { 0 };
	struct qfc_reply back = { 0 };
	code = read_result(&c, terminal, view_only, &res, tmpdir_fd, &back);
	int cc = finish_call(&c);
	if (code != 0)
		goto out_tmp;
	if (cc != 0)
		fprintf(stderr, "%s: note: the service ended with status %d\n", prog, cc);
	if (view_only || res.status == QOIV_UNCHANGED) {
		fprintf(stderr, "%s: %s: %s\n", prog, path,
			view_only ? "opened read-only; nothing comes back" : "not changed");
		goto out_tmp;
	}
	/* CHANGED: one regular file, verified by the unpacker */
	char name[NAME_MAX + 1];
	int fd = only_file(tmpdir_fd, name, sizeof(name), err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "%s: the edited file from the disposable refused: %s\n", prog, err);
		code = EXIT_FAILED;
		goto out_tmp;
	}
	bool keep_it = keep == KEEP_YES || (keep == KEEP_ASK && terminal && ask_keep(path));
	if (keep == KEEP_NO || (keep == KEEP_ASK && terminal && !keep_it)) {
		fprintf(stderr, "%s: %s: changes discarded\n", prog, path);
	} else {
		/* kept, or no terminal to ask: beside it, never over it */
		code = store_edit(path, &orig, fd, !keep_it) < 0 ? EXIT_FAILED : 0;
	}
	close(fd);
out_tmp:
	if (tmpdir_fd >= 0) {
		remove_tmpdir(tmpdir, tmpdir_fd);
		close(tmpdir_fd);
	}
out_free:
	qfc_sender_free(s);
	free(path);
	return code;
}

int main(int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');
	const char *name = slash ? slash + 1 : argv[0];

	/* the agent runs the service as /etc/qube/rpc/qube.OpenInVM */
	if (strcmp(name, SERVICE_NAME) == 0 || strncmp(name, SERVICE_NAME "+", 14) == 0)
		return service_main();
	return client_main(argc, argv);
}
