/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One guest GUI connection of qube-gui-bridge, in its sandbox (see
 * gui-sandbox.h).  Process tree, all started here:
 *
 *   S  this process (forked by the bridge): makes the namespaces and the
 *      root, then waits for R; its exit status is the connection's result
 *   R  PID 1 of the new PID namespace: the relay between the guest stream
 *      and waypipe's channel socket (it reads guest bytes but parses
 *      nothing); seccomp once connected
 *   W  `waypipe --oneshot client` with WAYLAND_SOCKET = the qube's
 *      compositor connection; seccomp before exec (execveat of the
 *      executable the bridge opened, so nothing is looked up by path)
 *
 * When R ends the kernel kills whatever is left in the PID namespace;
 * when the bridge dies, S and R die with it (PR_SET_PDEATHSIG).
 */
#include "gui-sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define QC_SANITIZER 1
#else
#define QC_SANITIZER 0
#endif

/* fixed descriptor numbers inside the sandbox */
enum { FD_DISPLAY = 3, FD_GUEST = 4, FD_WAYPIPE = 5 };

#define RELAY_BUF (64 * 1024)
#define CHAN_WAIT_MS 10000

static const struct qc_gui_conn *log_conn;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "qube-gui-bridge[%s]: connection %u: %s\n", log_conn->qube, log_conn->id,
		line);
}

/* ---- namespaces and the root ---- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int r = w == (ssize_t)n ? 0 : (w < 0 ? -errno : -EIO);
	close(fd);
	return r;
}

static int map_ids(uid_t uid, gid_t gid)
{
	char m[64];
	int r = write_file("/proc/self/setgroups", "deny");
	if (r < 0)
		return r;
	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	r = write_file("/proc/self/uid_map", m);
	if (r < 0)
		return r;
	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_file("/proc/self/gid_map", m);
}

/* Bind SRC read-only at DST (keeping the flags the kernel locks in a
 * user namespace: nosuid, nodev, noexec and the atime ones). */
static int bind_ro(const char *src, const char *dst)
{
	struct statvfs sv;
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0 || statvfs(src, &sv) < 0)
		return -errno;
	unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY;
	if (sv.f_flag & ST_NOSUID)
		fl |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		fl |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		fl |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		fl |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		fl |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		fl |= MS_RELATIME;
	return mount(NULL, dst, NULL, fl, NULL) < 0 ? -errno : 0;
}

/* Gives NEWROOT what the host has at NAME (a top-level system path):
 * the same symlink, or a read-only bind of the directory or file;
 * nothing when the host has none. */
static int replicate(const char *newroot, const char *name)
{
	char src[256], dst[256], target[256];
	struct stat st;
	snprintf(src, sizeof(src), "/%s", name);
	snprintf(dst, sizeof(dst), "%s/%s", newroot, name);
	if (lstat(src, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		return symlink(target, dst) < 0 ? -errno : 0;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) < 0)
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	} else {
		return 0;
	}
	return bind_ro(src, dst);
}

/* The sandbox's root: a read-only tmpfs with the system's /usr (and its
 * /lib*, /bin, /sbin links or binds), /etc/ld.so.cache, and a private
 * writable /chan for waypipe's channel socket.  Nothing else: no /tmp,
 * /run, /home, /proc, /sys or /dev, so no other qube's socket, the host's
 * Wayland socket or the compositor's control socket exists in it. */
static int make_root(void)
{
	static const char *const sys[] = {
		"usr", "lib", "lib32", "lib64", "libx32", "bin", "sbin",
	};
	const char *nr = "/tmp"; /* mounted over, in our own mount namespace */
	int r;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (mount("qube-gui", nr, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=256k") < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if ((r = replicate(nr, sys[i])) < 0)
			return r;
	if (mkdir("/tmp/etc", 0755) < 0 || mkdir("/tmp" QC_GUI_CHAN_DIR, 0700) < 0 ||
	    mkdir("/tmp/.old", 0700) < 0)
		return -errno;
	if ((r = replicate(nr, "etc/ld.so.cache")) < 0)
		return r;
	if (mount("qube-gui-chan", "/tmp" QC_GUI_CHAN_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0700,size=64k") < 0)
		return -errno;
	if (chdir(nr) < 0 || syscall(SYS_pivot_root, ".", ".old") < 0 || chdir("/") < 0)
		return -errno;
	if (umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0)
		return -errno;
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	return 0;
}

/* ---- seccomp ---- */

/* waypipe 0.8 `client --oneshot` with WAYLAND_SOCKET: what it, the
 * dynamic loader and glibc need (measured with strace, plus the
 * clipboard's pipes and libc's variants).  Absent on purpose: connect,
 * socket other than AF_UNIX, fork/clone/vfork, execve (the one exec is
 * execveat of the bridge's descriptor), ptrace, kill, mount, and every
 * namespace, keyring, BPF or module call. */
static const int waypipe_allow[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(poll),
	SCMP_SYS(ppoll), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom),
	SCMP_SYS(sendto), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3),
	SCMP_SYS(pipe), SCMP_SYS(pipe2), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
	SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(memfd_create),
	SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(statx), SCMP_SYS(lseek), SCMP_SYS(openat), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
	SCMP_SYS(getdents64), SCMP_SYS(statfs), SCMP_SYS(fstatfs), SCMP_SYS(bind),
	SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(shutdown),
	SCMP_SYS(getsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(fchdir), SCMP_SYS(chdir),
	SCMP_SYS(getcwd), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall),
	SCMP_SYS(wait4), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(set_tid_address),
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(prlimit64), SCMP_SYS(getrandom),
	SCMP_SYS(arch_prctl), SCMP_SYS(futex), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(sched_yield), SCMP_SYS(set_mempolicy), SCMP_SYS(get_mempolicy),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(uname), SCMP_SYS(execveat),
};

/* the relay, once connected: moves bytes and waits for waypipe */
static const int relay_allow[] = {
	SCMP_SYS(read), SCMP_SYS(sendto), SCMP_SYS(write), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(shutdown),
	SCMP_SYS(close), SCMP_SYS(wait4), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(brk),
	SCMP_SYS(madvise), SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

#if QC_SANITIZER
/* Sanitizer builds only (the relay is this program's code): the ASan/LSan
 * runtime stops the world with a ptrace()ing thread at exit and reads
 * /proc to report.  waypipe is not built with it and gets none of this. */
static const int sanitizer_allow[] = {
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(ptrace), SCMP_SYS(waitid), SCMP_SYS(openat),
	SCMP_SYS(getdents64), SCMP_SYS(lseek), SCMP_SYS(sched_yield), SCMP_SYS(prctl),
	SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(kill), SCMP_SYS(mprotect),
	SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(pipe), SCMP_SYS(pipe2), SCMP_SYS(dup),
	SCMP_SYS(dup2), SCMP_SYS(prlimit64), SCMP_SYS(uname), SCMP_SYS(newfstatat),
	SCMP_SYS(statx), SCMP_SYS(sched_getaffinity), SCMP_SYS(futex), SCMP_SYS(getppid),
	SCMP_SYS(personality), SCMP_SYS(execve), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(getrusage), SCMP_SYS(process_vm_readv), SCMP_SYS(arch_prctl),
	SCMP_SYS(set_tid_address), SCMP_SYS(access), SCMP_SYS(pread64), SCMP_SYS(fcntl),
	SCMP_SYS(ioctl), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getcwd),
	SCMP_SYS(mincore), SCMP_SYS(msync), SCMP_SYS(mremap),
};
#endif

static int load_filter(const int *allow, size_t n, bool waypipe)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = 0;
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i], 0);
	if (r == 0 && waypipe) {
		/* sockets: AF_UNIX only (its channel socket, clipboard pipes) */
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
					     SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		/* ioctl: isatty() only; the sandbox holds no device, so any
		 * other request just fails */
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_EQ, TCGETS));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_NE, TCGETS));
	}
#if QC_SANITIZER
	if (!waypipe)
		for (size_t i = 0; i < sizeof(sanitizer_allow) / sizeof(sanitizer_allow[0]) && r == 0; i++)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sanitizer_allow[i], 0);
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/* ---- the relay ---- */

struct half {
	uint8_t *buf;
	size_t len, off;
	bool eof;      /* the source side sent EOF */
	bool shut;     /* EOF passed on (shutdown of the sink's write side) */
};

/* Copies bytes both ways between the guest stream G and waypipe's channel
 * C until waypipe's side is done (its EOF, everything it sent delivered)
 * or either socket fails.  Returns 0, or a negative errno. */
static int relay(int g, int c)
{
	struct half gc = { 0 }, cg = { 0 }; /* guest->channel, channel->guest */
	gc.buf = malloc(RELAY_BUF);
	cg.buf = malloc(RELAY_BUF);
	int r = 0;
	if (!gc.buf || !cg.buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (cg.eof && cg.len == 0)
			break; /* waypipe finished and all it said reached the guest */
		struct pollfd p[2] = {
			{ .fd = g, .events = (short)((!gc.eof && gc.len == 0 ? POLLIN : 0) |
						     (cg.len ? POLLOUT : 0)) },
			{ .fd = c, .events = (short)((!cg.eof && cg.len == 0 ? POLLIN : 0) |
						     (gc.len ? POLLOUT : 0)) },
		};
		/* a side with nothing to do is left out: a hung-up socket
		 * would report POLLHUP on every call */
		for (int i = 0; i < 2; i++)
			if (p[i].events == 0)
				p[i].fd = -1;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		struct {
			int from, to;
			short rev_from, rev_to;
			struct half *h;
		} dir[2] = {
			{ g, c, p[0].revents, p[1].revents, &gc },
			{ c, g, p[1].revents, p[0].revents, &cg },
		};
		for (int d = 0; d < 2 && r == 0; d++) {
			struct half *h = dir[d].h;
			if (h->len == 0 && !h->eof && (dir[d].rev_from & (POLLIN | POLLHUP | POLLERR))) {
				ssize_t n = read(dir[d].from, h->buf, RELAY_BUF);
				if (n > 0) {
					h->len = (size_t)n;
					h->off = 0;
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
					h->eof = true;
					if (n < 0 && d == 1)
						r = -errno;
				}
			}
			if (h->len && (dir[d].rev_to & (POLLOUT | POLLERR | POLLHUP))) {
				ssize_t n = send(dir[d].to, h->buf + h->off, h->len, MSG_NOSIGNAL);
				if (n > 0) {
					h->off += (size_t)n;
					h->len -= (size_t)n;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					r = -errno;
				}
			}
			if (h->eof && h->len == 0 && !h->shut) {
				shutdown(dir[d].to, SHUT_WR);
				h->shut = true;
			}
		}
		if (r < 0)
			break;
	}
out:
	free(gc.buf);
	free(cg.buf);
	return r;
}

/* R: connects to waypipe's channel socket once W has opened it. */
static int connect_channel(pid_t w, int *ret_fd, int *ret_wstatus, bool *ret_wdone)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, QC_GUI_CHAN_SOCK, sizeof(QC_GUI_CHAN_SOCK));
	for (int waited = 0; waited < CHAN_WAIT_MS; waited += 5) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
		if (waitpid(w, ret_wstatus, WNOHANG) == w) {
			*ret_wdone = true;
			return -ECHILD;
		}
		nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
	}
	return -ETIMEDOUT;
}

static int exit_code_of(int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return QC_GUI_EXIT_SIGNAL + WTERMSIG(wstatus);
	return WEXITSTATUS(wstatus);
}

/* W: becomes waypipe.  Never returns. */
static void exec_waypipe(void)
{
	static char *const argv[] = {
		"waypipe", "--oneshot", "--no-gpu", "--threads", "1", "--socket", QC_GUI_CHAN_SOCK,
		"client", NULL,
	};
	static char *const envp[] = { "WAYLAND_SOCKET=3", NULL };
	close(FD_GUEST);
	int fl = fcntl(FD_DISPLAY, F_GETFD);
	if (fl < 0 || fcntl(FD_DISPLAY, F_SETFD, fl & ~FD_CLOEXEC) < 0) {
		say("waypipe: display descriptor: %s", strerror(errno));
		_exit(QC_GUI_EXIT_SETUP);
	}
	int r = load_filter(waypipe_allow, sizeof(waypipe_allow) / sizeof(waypipe_allow[0]), true);
	if (r < 0) {
		say("waypipe: seccomp: %s", strerror(-r));
		_exit(QC_GUI_EXIT_SETUP);
	}
	execveat(FD_WAYPIPE, "", argv, envp, AT_EMPTY_PATH);
	say("cannot run waypipe: %s", strerror(errno));
	_exit(QC_GUI_EXIT_SETUP);
}

/* R: PID 1 of the sandbox.  Never returns. */
static void run_init(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pid_t w = fork();
	if (w < 0) {
		say("fork: %s", strerror(errno));
		_exit(QC_GUI_EXIT_SETUP);
	}
	if (w == 0)
		exec_waypipe();
	close(FD_DISPLAY);
	close(FD_WAYPIPE);
	int chan = -1, wstatus = 0;
	bool wdone = false;
	int r = connect_channel(w, &chan, &wstatus, &wdone);
	if (r < 0) {
		if (wdone) {
			say("waypipe ended before opening its socket (status %d)", exit_code_of(wstatus));
			_exit(exit_code_of(wstatus) ? exit_code_of(wstatus) : QC_GUI_EXIT_NOSOCK);
		}
		say("no waypipe channel socket: %s", strerror(-r));
		_exit(QC_GUI_EXIT_NOSOCK);
	}
	if (fcntl(FD_GUEST, F_SETFL, O_NONBLOCK) < 0 || fcntl(chan, F_SETFL, O_NONBLOCK) < 0) {
		say("relay: %s", strerror(errno));
		_exit(QC_GUI_EXIT_SETUP);
	}
	r = load_filter(relay_allow, sizeof(relay_allow) / sizeof(relay_allow[0]), false);
	if (r < 0) {
		say("relay: seccomp: %s", strerror(-r));
		_exit(QC_GUI_EXIT_SETUP);
	}
	r = relay(FD_GUEST, chan);
	close(chan);
	close(FD_GUEST);
	/* waypipe has seen its channel close; give it 2 s to exit by itself
	 * (when this process exits, the kernel kills what is left) */
	for (int i = 0; i < 200; i++) {
		if (waitpid(w, &wstatus, WNOHANG) == w)
			_exit(exit_code_of(wstatus));
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	(void)r;
	_exit(QC_GUI_EXIT_SETUP);
}

/* Puts FDS[i] at 3 + i and closes every other descriptor above 2. */
static int arrange_fds(const int fds[3])
{
	int tmp[3];
	for (int i = 0; i < 3; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
		if (tmp[i] < 0)
			return -errno;
	}
	for (int i = 0; i < 3; i++)
		if (dup3(tmp[i], 3 + i, O_CLOEXEC) < 0)
			return -errno;
	if (close_range(6, ~0u, 0) < 0)
		return -errno;
	return 0;
}

int qc_gui_run_connection(const struct qc_gui_conn *c)
{
	log_conn = c;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	const int fds[3] = { c->display_fd, c->guest_fd, c->waypipe_fd };
	int r = arrange_fds(fds);
	if (r < 0) {
		say("descriptors: %s", strerror(-r));
		return QC_GUI_EXIT_SETUP;
	}
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC |
		    CLONE_NEWUTS | CLONE_NEWCGROUP) < 0) {
		say("unshare: %s", strerror(errno));
		return QC_GUI_EXIT_SETUP;
	}
	if ((r = map_ids(c->uid, c->gid)) < 0) {
		say("id maps: %s", strerror(-r));
		return QC_GUI_EXIT_SETUP;
	}
	if ((r = make_root()) < 0) {
		say("root: %s", strerror(-r));
		return QC_GUI_EXIT_SETUP;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		say("no_new_privs: %s", strerror(errno));
		return QC_GUI_EXIT_SETUP;
	}
	pid_t init = fork(); /* PID 1 of the new PID namespace */
	if (init < 0) {
		say("fork: %s", strerror(errno));
		return QC_GUI_EXIT_SETUP;
	}
	if (init == 0)
		run_init();
	close(FD_DISPLAY);
	close(FD_GUEST);
	close(FD_WAYPIPE);
	int st;
	while (waitpid(init, &st, 0) < 0)
		if (errno != EINTR)
			return QC_GUI_EXIT_SETUP;
	if (WIFSIGNALED(st)) {
		say("relay killed by signal %d", WTERMSIG(st));
		return QC_GUI_EXIT_SETUP;
	}
	return WEXITSTATUS(st);
}
