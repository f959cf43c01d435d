/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unpacker's confinement, and an unpacker in a confined child process
 * (sandbox.h).
 */
#include "sandbox.h"
#include "unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bool qfc_sandbox_active;

#ifdef QFC_SANITIZERS
/* LeakSanitizer's exit-time check needs clone and ptrace, which the sandbox
 * forbids: it runs for exits before the sandbox only.  The unpacker's leaks
 * are checked in-process by the fuzz-filecopy-stream harness. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return qfc_sandbox_active;
}
#endif

/*
 * The seccomp allow-list (docs/filecopy.md, "Confinement").  Default: kill
 * the process.  Nothing that makes a socket, a process, a mapping that can
 * execute, or changes credentials is on it.
 */
static int install_seccomp(void)
{
	static const int allow[] = {
		/* the stream in, the reply out, messages on stderr */
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close),
		/* entries below the incoming directory (unpack.c) */
		SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(mkdirat), SCMP_SYS(symlinkat),
		SCMP_SYS(linkat), SCMP_SYS(renameat2), SCMP_SYS(unlinkat), SCMP_SYS(fchmod),
		SCMP_SYS(utimensat), SCMP_SYS(lseek), SCMP_SYS(ftruncate), SCMP_SYS(fcntl),
		SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(getpid), SCMP_SYS(umask),
		/* the progress line's clock (where the vDSO falls back to the call) */
		SCMP_SYS(clock_gettime),
		/* malloc and free */
		SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
		/* signals and exit */
		SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall), SCMP_SYS(exit_group),
		SCMP_SYS(exit),
#ifdef QFC_SANITIZERS
		/* AddressSanitizer / UBSan runtime only (sanitizer builds) */
		SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(gettid), SCMP_SYS(sigaltstack),
		SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction), SCMP_SYS(readlink),
		SCMP_SYS(prctl), SCMP_SYS(ioctl), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
		SCMP_SYS(getrandom),
#endif
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i], 0);
	/* memory for malloc, never executable */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/* Landlock ABI values newer than some distributions' headers. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define QFC_LANDLOCK_NET_BIND_TCP (1ULL << 0)
#define QFC_LANDLOCK_NET_CONNECT_TCP (1ULL << 1)
#define QFC_LANDLOCK_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define QFC_LANDLOCK_SCOPE_SIGNAL (1ULL << 1)

struct qfc_landlock_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

/*
 * Landlock: the file system is out of reach except below the incoming
 * directory, where only what unpack.c does is allowed (create files,
 * directories and symlinks, write and truncate the files it creates, open
 * directories, remove its own temporary names).  Returns the ABI version
 * applied, 0 when the kernel has no Landlock, or a negative errno.
 */
static int install_landlock(int root_fd)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0)
		return errno == ENOSYS || errno == EOPNOTSUPP ? 0 : -errno;
	struct qfc_landlock_ruleset_attr attr = {
		.handled_access_fs =
			LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
			LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
			LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
			LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
			LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
			LANDLOCK_ACCESS_FS_MAKE_SYM,
	};
	size_t attr_size = sizeof(attr.handled_access_fs);
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4) {
		attr.handled_access_net = QFC_LANDLOCK_NET_BIND_TCP | QFC_LANDLOCK_NET_CONNECT_TCP;
		attr_size = offsetof(struct qfc_landlock_ruleset_attr, scoped);
	}
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6) {
		attr.scoped = QFC_LANDLOCK_SCOPE_ABSTRACT_UNIX | QFC_LANDLOCK_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	int rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rfd < 0)
		return -errno;
	struct landlock_path_beneath_attr below = {
		.allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
				  LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |
				  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM |
				  (abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0),
		.parent_fd = root_fd,
	};
	int r = 0;
	if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &below, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, rfd, 0) < 0)
		r = -errno;
	close(rfd);
	return r < 0 ? r : (int)abi;
}

int qfc_sandbox_enter(int root_fd, const char **ret_step)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*ret_step = "cannot set no_new_privs";
		return -errno;
	}
	int abi = install_landlock(root_fd);
	if (abi < 0) {
		*ret_step = "cannot install the Landlock rules";
		return abi;
	}
	int r = install_seccomp();
	if (r < 0) {
		*ret_step = "cannot install the seccomp filter";
		return r;
	}
	qfc_sandbox_active = true;
	return abi;
}

/* Every capability out of the bounding set (needs CAP_SETPCAP: before
 * a change of user). */
static int drop_bounding_set(void)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	return 0;
}

/* Every capability out of the effective, permitted and inheritable sets. */
static int drop_capabilities(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

int qfc_drop_privileges_for(int dir_fd, char *err, size_t errlen)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (fstat(dir_fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat the target directory: %s", strerror(errno));
		return -errno;
	}
	if (drop_bounding_set() < 0) {
		snprintf(err, errlen, "cannot drop the capability bounding set: %s", strerror(errno));
		return -EPERM;
	}
	if (st.st_uid != 0) {
		/* the owner's primary group when the password database knows
		 * the owner, else the directory's group */
		struct passwd *pw = getpwuid(st.st_uid);
		gid_t gid = pw ? pw->pw_gid : st.st_gid;
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(st.st_uid) < 0 ||
		    setuid(0) == 0) {
			snprintf(err, errlen, "cannot become the target directory's owner (uid %u)",
				 (unsigned)st.st_uid);
			return -EPERM;
		}
		return 0;
	}
	if (setgroups(0, NULL) < 0 || drop_capabilities() < 0) {
		snprintf(err, errlen, "cannot drop the capabilities: %s", strerror(errno));
		return -EPERM;
	}
	return 0;
}

int qfc_read_small_file(const char *path, char **ret_text, size_t *ret_len)
{
	enum { CAP = 1 << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *text = malloc(CAP + 1);
	size_t len = 0;
	int r = text ? 0 : -ENOMEM;
	while (r == 0) {
		ssize_t n = read(fd, text + len, CAP + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else if ((len += (size_t)n) > CAP)
			r = -EFBIG;
	}
	close(fd);
	if (r < 0) {
		free(text);
		return r;
	}
	*ret_text = text;
	*ret_len = len;
	return 0;
}

/* Closes every descriptor from 3 up but the ones in keep (n of them). */
static void close_all_but(const int *keep, size_t n)
{
	int lo = 3;
	for (;;) {
		int next = -1; /* the smallest kept fd >= lo */
		for (size_t i = 0; i < n; i++)
			if (keep[i] >= lo && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0) {
			if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
				for (int fd = lo; fd < 4096; fd++)
					close(fd);
			return;
		}
		if (next > lo && syscall(SYS_close_range, lo, next - 1, 0) < 0)
			for (int fd = lo; fd < next; fd++)
				close(fd);
		lo = next + 1;
	}
}

static void write_record(int fd, const uint8_t *buf, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the reader went away: nothing to tell */
		off += (size_t)w;
	}
}

void qfc_reply_write(int fd, int status, const struct qfc_unpack_result *res, const char *msg)
{
	struct qfc_reply rep = {
		.status = (uint32_t)(status < 0 ? -status : status),
		.entries = res ? res->entries : 0,
		.data_bytes = res ? res->data_bytes : 0,
		.crc = res ? res->crc : 0,
	};
	uint8_t buf[QFC_REPLY_HEADER_SIZE + QFC_REPLY_MAX_MSG];
	size_t ml = msg ? strlen(msg) : 0;

	if (ml > QFC_REPLY_MAX_MSG)
		ml = QFC_REPLY_MAX_MSG;
	rep.msg_len = (uint32_t)ml;
	qfc_reply_encode(&rep, buf);
	if (ml)
		memcpy(buf + QFC_REPLY_HEADER_SIZE, msg, ml);
	write_record(fd, buf, QFC_REPLY_HEADER_SIZE + ml);
}

/* The reply record to reply_fd (when given) and the result pipe. */
static void child_reply(int reply_fd, int result_fd, int status,
			const struct qfc_unpack_result *res, const char *msg)
{
	if (reply_fd >= 0)
		qfc_reply_write(reply_fd, status, res, msg);
	qfc_reply_write(result_fd, status, res, msg);
}

struct progress {
	const char *prog;
	struct timespec t0, tlast;
	bool shown;
};

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void show_progress(void *userdata, uint64_t bytes, uint64_t entries)
{
	struct progress *p = userdata;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (seconds_between(&p->tlast, &now) < 0.25)
		return;
	p->tlast = now;
	double t = seconds_between(&p->t0, &now);
	fprintf(stderr, "\r%s: %" PRIu64 " entries, %.1f MiB, %.1f MB/s   ", p->prog, entries,
		(double)bytes / 1048576.0, t > 0 ? (double)bytes / 1e6 / t : 0.0);
	p->shown = true;
}

static __attribute__((noreturn)) void child_main(int stream_fd, int reply_fd, int dir_fd,
						 int result_fd, const struct qfc_limits *l,
						 const char *prog, bool progress)
{
	const int keep[] = { stream_fd, reply_fd, dir_fd, result_fd };
	char err[300];
	const char *step = NULL;

	signal(SIGPIPE, SIG_IGN);
	close_all_but(keep, sizeof(keep) / sizeof(keep[0]));
	int r = qfc_drop_privileges_for(dir_fd, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		child_reply(reply_fd, result_fd, r, NULL, err);
		_exit(1);
	}
	/* files get exactly the (masked) modes sent */
	umask(0);
	r = qfc_sandbox_enter(dir_fd, &step);
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, step, strerror(-r));
		child_reply(reply_fd, result_fd, r, NULL, step);
		_exit(1);
	}
	struct qfc_unpack_result res;
	struct progress pr = { .prog = prog };
	clock_gettime(CLOCK_MONOTONIC, &pr.t0);
	pr.tlast = pr.t0;
	r = qfc_unpack_progress(stream_fd, dir_fd, l, 0, stderr, &res,
				progress ? show_progress : NULL, &pr);
	if (pr.shown) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double t = seconds_between(&pr.t0, &now);
		fprintf(stderr, "\r%s: %" PRIu64 " entries, %.1f MiB, %.1f MB/s   \n", prog,
			res.entries, (double)res.data_bytes / 1048576.0,
			t > 0 ? (double)res.data_bytes / 1e6 / t : 0.0);
	}
	child_reply(reply_fd, result_fd, r, &res, r < 0 ? res.msg : NULL);
	_exit(r < 0 ? 1 : 0);
}

int qfc_unpack_child_start(int stream_fd, int reply_fd, int dir_fd, const struct qfc_limits *l,
			   const char *prog, bool progress, struct qfc_unpack_child *ret)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		close(p[0]);
		child_main(stream_fd, reply_fd, dir_fd, p[1], l, prog, progress);
	}
	close(p[1]);
	ret->pid = pid;
	ret->result_fd = p[0];
	return 0;
}

int qfc_unpack_child_finish(struct qfc_unpack_child *c, struct qfc_reply *ret_rep, char *msg,
			    size_t msglen)
{
	uint8_t buf[QFC_REPLY_HEADER_SIZE + QFC_REPLY_MAX_MSG];
	size_t len = 0;
	int status = 0;

	if (msglen)
		msg[0] = '\0';
	while (len < sizeof(buf)) {
		ssize_t n = read(c->result_fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(c->result_fd);
	c->result_fd = -1;
	while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
		;
	c->pid = -1;

	struct qfc_reply rep;
	char err[256];
	if (len < QFC_REPLY_HEADER_SIZE || qfc_reply_decode(buf, &rep, err, sizeof(err)) < 0) {
		if (WIFSIGNALED(status))
			snprintf(msg, msglen, "the unpacker was killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(msg, msglen, "the unpacker ended without a result");
		return -ECHILD;
	}
	size_t ml = len - QFC_REPLY_HEADER_SIZE;
	if (ml > rep.msg_len)
		ml = rep.msg_len;
	if (msglen) {
		if (ml >= msglen)
			ml = msglen - 1;
		for (size_t i = 0; i < ml; i++) {
			uint8_t ch = buf[QFC_REPLY_HEADER_SIZE + i];
			msg[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		msg[ml] = '\0';
	}
	*ret_rep = rep;
	if (rep.status != 0)
		return -(int)rep.status;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(msg, msglen, "the unpacker reported success but exited with status %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -ECHILD;
	}
	return 0;
}
