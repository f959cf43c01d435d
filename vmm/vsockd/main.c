/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-vsockd: userspace virtio-vsock device for one qube.
 *
 *   qube-vsockd --socket VHOST_USER_SOCK --guest-cid CID --uds-path PATH
 *
 * Listens on VHOST_USER_SOCK for one QEMU (vhost-user-vsock-pci) and on
 * PATH for host clients (hybrid convention, see docs/vsock.md).  After the
 * front-end connected it runs single-threaded under a seccomp allow-list
 * and exits 0 when the front-end disconnects, removing its sockets.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <inttypes.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "vsockd.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define VSD_SANITIZER 1
#else
#define VSD_SANITIZER 0
#endif

struct kick_watch {
	struct vsd_watch w; /* kind VSD_W_KICK */
	unsigned int idx;
	unsigned int gen;
};

struct daemon {
	const char *sock_path;
	const char *uds_path;
	uint64_t cid;
	bool verbose;
	int epfd;
	struct vsd_watch vu;            /* kind VSD_W_VU_CONN */
	struct kick_watch kick[VSD_NUM_VQ];
	struct vsd_dev dev;
	struct vsd_vsock *vsock;
	bool tx_more;
	int64_t idle_since; /* µs since held-back work is pending, 0: none */
};

static volatile sig_atomic_t stop_signal;
/* SIGTERM and SIGINT stay blocked except inside ppoll/epoll_pwait, so a
 * signal can never slip in between checking stop_signal and sleeping. */
static sigset_t wait_mask;

static void on_signal(int sig)
{
	stop_signal = sig;
}

__attribute__((format(printf, 2, 3))) static void vlog(void *opaque, const char *fmt, ...)
{
	const struct daemon *d = opaque;
	va_list ap;

	if (d && !d->verbose)
		return;
	va_start(ap, fmt);
	fputs("qube-vsockd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-vsockd --socket PATH --guest-cid CID --uds-path PATH\n"
		"                   [--connect-timeout MS] [--verbose]\n"
		"\n"
		"Userspace virtio-vsock device (vhost-user back-end) for one qube.\n"
		"\n"
		"  --socket PATH     vhost-user socket to listen on; QEMU connects to it with\n"
		"                    -chardev socket,path=PATH -device vhost-user-vsock-pci\n"
		"  --guest-cid CID   the qube's vsock CID, 3..4294967294\n"
		"  --uds-path PATH   host side, hybrid convention: guest connections to CID 2\n"
		"                    port P go to unix socket PATH_P; host clients connect to\n"
		"                    PATH and write \"CONNECT P\\n\" to reach guest port P\n"
		"  --connect-timeout MS  close a host client whose CONNECT the guest has not\n"
		"                    answered within MS milliseconds (default 10000, 0: never)\n"
		"  --verbose         log rejected vhost-user messages, counters at exit\n"
		"  --help            this text\n"
		"\n"
		"Exits 0 when QEMU disconnects, removing both sockets.\n");
}

static int parse_cid(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v <= VSD_VSOCK_HOST_CID || v >= UINT32_MAX)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int check_path(const char *opt, const char *path, size_t reserve)
{
	struct sockaddr_un sun;

	if (!path || !*path) {
		fprintf(stderr, "qube-vsockd: %s is required\n", opt);
		return -EINVAL;
	}
	if (strlen(path) + reserve >= sizeof(sun.sun_path)) {
		fprintf(stderr, "qube-vsockd: %s '%s': longer than a unix socket path allows (%zu bytes%s)\n",
			opt, path, sizeof(sun.sun_path) - 1 - reserve,
			reserve ? " leaving room for _PORT" : "");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- seccomp ---- */

/*
 * Allow-list installed once the front-end is connected.  Every entry says
 * why it is needed; anything else kills the process.
 */
static int install_seccomp(void)
{
	static const struct {
		int nr;
		const char *why;
	} allow[] = {
		{ SCMP_SYS(epoll_wait), "event loop" },
		{ SCMP_SYS(epoll_pwait), "event loop (libc may use the p-variant)" },
		{ SCMP_SYS(epoll_ctl), "watch new unix connections and kick eventfds" },
		{ SCMP_SYS(read), "vhost-user payloads, kick eventfds, unix sockets" },
		{ SCMP_SYS(readv), "unix socket -> guest rx buffers" },
		{ SCMP_SYS(write), "replies, call eventfds, unix sockets, stderr" },
		{ SCMP_SYS(writev), "guest tx buffers -> unix socket" },
		{ SCMP_SYS(recvmsg), "vhost-user messages with fds" },
		{ SCMP_SYS(recvfrom), "peek at a host client's CONNECT line" },
		{ SCMP_SYS(sendto), "vhost-user replies" },
		{ SCMP_SYS(accept4), "host clients on <uds-path>" },
		{ SCMP_SYS(connect), "guest connections to <uds-path>_PORT" },
		{ SCMP_SYS(shutdown), "half-close mirrored from the guest" },
		{ SCMP_SYS(close), "connections, replaced ring fds, memory fds" },
		{ SCMP_SYS(mmap), "new guest memory tables (SET_MEM_TABLE), malloc" },
		{ SCMP_SYS(munmap), "old guest memory tables, free" },
		{ SCMP_SYS(mremap), "realloc of connection buffers" },
		{ SCMP_SYS(madvise), "free() returning memory" },
		{ SCMP_SYS(brk), "malloc" },
		{ SCMP_SYS(fstat), "size check of memory fds before mmap" },
		{ SCMP_SYS(newfstatat), "fstat() as implemented by glibc >= 2.33" },
		{ SCMP_SYS(unlink), "remove <uds-path> at exit" },
		{ SCMP_SYS(rt_sigreturn), "return from the SIGTERM/SIGINT handler" },
		{ SCMP_SYS(restart_syscall), "interrupted syscalls" },
		{ SCMP_SYS(clock_gettime), "libc time without vDSO" },
		{ SCMP_SYS(exit_group), "exit" },
		{ SCMP_SYS(exit), "exit" },
	};
#if VSD_SANITIZER
	/* Sanitizer builds only: the ASan/LSan runtime stops the world with
	 * a ptrace()ing thread at exit and reads /proc to report. */
	static const int san_allow[] = {
		SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(ptrace), SCMP_SYS(wait4),
		SCMP_SYS(waitid), SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(getdents64),
		SCMP_SYS(getdents),
		SCMP_SYS(lseek), SCMP_SYS(sched_yield), SCMP_SYS(prctl), SCMP_SYS(sigaltstack),
		SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(getpid),
		SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(kill), SCMP_SYS(mprotect),
		SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(pipe), SCMP_SYS(pipe2),
		SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
		SCMP_SYS(setrlimit), SCMP_SYS(uname), SCMP_SYS(stat), SCMP_SYS(lstat),
		SCMP_SYS(statx), SCMP_SYS(sched_getaffinity), SCMP_SYS(futex),
		SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(getppid),
		SCMP_SYS(personality), SCMP_SYS(execve), SCMP_SYS(fork), SCMP_SYS(vfork),
		SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(getrusage),
		SCMP_SYS(process_vm_readv), SCMP_SYS(arch_prctl), SCMP_SYS(set_tid_address),
		SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(pread64),
		SCMP_SYS(fcntl), SCMP_SYS(ioctl), SCMP_SYS(getuid), SCMP_SYS(geteuid),
		SCMP_SYS(getcwd), SCMP_SYS(mincore), SCMP_SYS(msync), SCMP_SYS(munlock),
		SCMP_SYS(mlock),
	};
#endif
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i].nr, 0);
		if (r < 0)
			goto out;
	}
	/* socket(): only AF_UNIX, for connections to <uds-path>_PORT. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
			     SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (r < 0)
		goto out;
#if VSD_SANITIZER
	for (size_t i = 0; i < sizeof(san_allow) / sizeof(san_allow[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, san_allow[i], 0);
		if (r < 0)
			goto out;
	}
#endif
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return r;
}

/* ---- vhost-user connection ---- */

static int read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (uint8_t *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		done += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, (const uint8_t *)buf + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static void sync_kicks(struct daemon *d)
{
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++) {
		struct kick_watch *k = &d->kick[i];
		struct vsd_vring *vr = &d->dev.vq[i];

		if (k->gen == vr->kick_gen)
			continue;
		k->gen = vr->kick_gen;
		if (k->w.fd >= 0)
			(void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, k->w.fd, NULL); /* may be closed */
		k->w.fd = vr->kick_fd;
		if (k->w.fd >= 0) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &k->w };

			if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, k->w.fd, &ev) < 0)
				vlog(d, "cannot watch kick fd of queue %u: %s", i, strerror(errno));
		}
	}
}

/*
 * Reads and handles one vhost-user message.  Returns 0 to go on, 1 when
 * the front-end disconnected cleanly, negative on a framing error.
 */
static int vu_read_msg(struct daemon *d)
{
	static struct vsd_vu_msg msg, reply;
	uint8_t hdr[VSD_VU_HDR_SIZE];
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(int) * VSD_VU_MAX_FDS)];
	} cbuf;
	struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	int fds[VSD_VU_MAX_FDS];
	size_t nfds = 0;
	bool bad_fds = false, has_reply = false;
	ssize_t n;
	int r;

	do {
		n = recvmsg(d->vu.fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return 1;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < VSD_VU_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		bad_fds = true;
	r = 0;
	if ((size_t)n < sizeof(hdr))
		r = read_full(d->vu.fd, hdr + n, sizeof(hdr) - (size_t)n);
	if (r == 0) {
		memcpy(&msg.request, hdr, 4);
		memcpy(&msg.flags, hdr + 4, 4);
		memcpy(&msg.size, hdr + 8, 4);
		r = vsd_vu_check_header(msg.flags, msg.size);
	}
	if (r == 0)
		r = read_full(d->vu.fd, msg.payload, msg.size);
	if (r < 0) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return r;
	}
	if (bad_fds) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		vlog(d, "vhost-user %s: too many fds, rejected", vsd_vu_request_name(msg.request));
		if (msg.flags & VSD_VU_FLAG_NEED_REPLY) {
			uint64_t fail = 1;

			reply.request = msg.request;
			reply.flags = VSD_VU_VERSION | VSD_VU_FLAG_REPLY;
			reply.size = 8;
			memcpy(reply.payload, &fail, 8);
			has_reply = true;
		}
	} else {
		(void)vsd_dev_handle_msg(&d->dev, &msg, fds, nfds, &reply, &has_reply);
	}
	if (has_reply) {
		uint8_t out[VSD_VU_HDR_SIZE + VSD_VU_MAX_PAYLOAD];

		memcpy(out, &reply.request, 4);
		memcpy(out + 4, &reply.flags, 4);
		memcpy(out + 8, &reply.size, 4);
		memcpy(out + VSD_VU_HDR_SIZE, reply.payload, reply.size);
		r = write_full(d->vu.fd, out, VSD_VU_HDR_SIZE + reply.size);
		if (r < 0)
			return r;
	}
	sync_kicks(d);
	return 0;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v)) {
	}
}

static int run(struct daemon *d)
{
	struct epoll_event evs[64];

	for (;;) {
		int n, timeout = d->tx_more ? 0 : -1, expire;
		bool idle;

		if (stop_signal)
			return 0;
		expire = vsd_vsock_expire(d->vsock);
		if (expire >= 0 && (timeout < 0 || expire < timeout))
			timeout = expire;
		idle = vsd_vsock_idle_work(d->vsock, &d->dev);
		if (idle && timeout != 0)
			timeout = 1;
		if (vsd_vsock_rx_pending(d->vsock))
			vsd_vsock_process_rx(d->vsock, &d->dev); /* RSTs of expired requests */
		n = epoll_pwait(d->epfd, evs, 64, timeout, &wait_mask);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (idle) {
			/* held-back work goes out after 1 ms of quiet, or
			 * after 1 ms at the latest while busy */
			int64_t now = mono_us();

			if (!d->idle_since)
				d->idle_since = now;
			if (n == 0 || now - d->idle_since >= 1000) {
				vsd_vsock_flush_idle(d->vsock, &d->dev);
				d->idle_since = 0;
			}
		} else {
			d->idle_since = 0;
		}
		bool vu_ready = false;

		for (int i = 0; i < n; i++) {
			struct vsd_watch *w = evs[i].data.ptr;

			switch (w->kind) {
			case VSD_W_VU_CONN:
				/* Handled after the batch: a message may close fds
				 * and free objects other events refer to. */
				vu_ready = true;
				break;
			case VSD_W_KICK: {
				struct kick_watch *k = (struct kick_watch *)(void *)w;

				drain_eventfd(w->fd);
				d->dev.vq[k->idx].n_kicks++;
				if (k->idx == VSD_VQ_TX)
					d->tx_more = true;
				break;
			}
			default:
				vsd_vsock_handle_event(d->vsock, w, evs[i].events);
				break;
			}
		}
		if (vu_ready) {
			int r = vu_read_msg(d);

			if (r == 1)
				return 0;
			if (r < 0) {
				fprintf(stderr, "qube-vsockd: vhost-user connection: %s\n",
					strerror(-r));
				return r;
			}
			d->tx_more = true; /* rings may have (re)started */
		}
		if (d->tx_more)
			d->tx_more = vsd_vsock_process_tx(d->vsock, &d->dev);
		vsd_vsock_process_rx(d->vsock, &d->dev);
	}
}

static int listen_vhost_user(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 1) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "guest-cid", required_argument, NULL, 'c' },
		{ "uds-path", required_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "connect-timeout", required_argument, NULL, 't' },
		{ "test-seccomp", no_argument, NULL, 'T' },
		{ 0 },
	};
	struct daemon d = { .epfd = -1, .vu = { .kind = VSD_W_VU_CONN, .fd = -1 } };
	struct sigaction sa = { .sa_handler = on_signal };
	struct timeval tv = { .tv_sec = 30 };
	const char *cid_arg = NULL, *timeout_arg = NULL;
	unsigned long connect_timeout = VSD_CONNECT_TIMEOUT_MS;
	bool test_seccomp = false;
	int lfd = -1, opt, r, status = 1, accept_err;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': d.sock_path = optarg; break;
		case 'c': cid_arg = optarg; break;
		case 'u': d.uds_path = optarg; break;
		case 'v': d.verbose = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("qube-vsockd %s\n", QUBE_VERSION); return 0;
		case 'T': test_seccomp = true; break;
		case 't': timeout_arg = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qube-vsockd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (test_seccomp) {
		/* Self-test hook for the test suite: a syscall outside the
		 * allow-list (an AF_INET socket) must kill us with SIGSYS. */
		if (install_seccomp() < 0)
			return 1;
		if (socket(AF_INET, SOCK_STREAM, 0) >= 0)
			return 3;
		return 4;
	}
	if (!cid_arg) {
		fprintf(stderr, "qube-vsockd: --guest-cid is required\n");
		return 2;
	}
	if (parse_cid(cid_arg, &d.cid) < 0) {
		fprintf(stderr, "qube-vsockd: --guest-cid '%s': not a CID in 3..4294967294\n", cid_arg);
		return 2;
	}
	if (check_path("--socket", d.sock_path, 0) < 0 || check_path("--uds-path", d.uds_path, 11) < 0)
		return 2;
	if (timeout_arg) {
		char *end;

		errno = 0;
		connect_timeout = strtoul(timeout_arg, &end, 10);
		if (errno || end == timeout_arg || *end || *timeout_arg == '-' ||
		    connect_timeout > 3600000) {
			fprintf(stderr, "qube-vsockd: --connect-timeout '%s': not a number of milliseconds in 0..3600000\n",
				timeout_arg);
			return 2;
		}
	}

	{
		sigset_t block;

		sigemptyset(&block);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGINT);
		sigprocmask(SIG_BLOCK, &block, &wait_mask);
		sigdelset(&wait_mask, SIGTERM);
		sigdelset(&wait_mask, SIGINT);
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epfd < 0) {
		fprintf(stderr, "qube-vsockd: epoll: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++)
		d.kick[i] = (struct kick_watch){ .w = { .kind = VSD_W_KICK, .fd = -1 }, .idx = i };
	r = vsd_vsock_new(d.cid, d.uds_path, d.epfd, &d.vsock);
	if (r < 0) {
		fprintf(stderr, "qube-vsockd: %s\n", strerror(-r));
		goto out_epoll;
	}
	vsd_vsock_set_connect_timeout(d.vsock, (unsigned int)connect_timeout);
	vsd_dev_init(&d.dev, d.cid, d.vsock);
	d.dev.log = vlog;
	d.dev.log_opaque = &d;

	r = vsd_vsock_listen(d.vsock);
	if (r < 0) {
		fprintf(stderr, "qube-vsockd: --uds-path '%s': cannot listen: %s\n", d.uds_path,
			strerror(-r));
		goto out_vsock;
	}
	lfd = listen_vhost_user(d.sock_path);
	if (lfd < 0) {
		fprintf(stderr, "qube-vsockd: --socket '%s': cannot listen: %s\n", d.sock_path,
			strerror(-lfd));
		goto out_unlink_uds;
	}
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };

		if (stop_signal)
			break;
		if (ppoll(&p, 1, NULL, &wait_mask) < 0 && errno != EINTR) {
			d.vu.fd = -1;
			break;
		}
		if (stop_signal)
			break;
		d.vu.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (d.vu.fd >= 0 || (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED))
			break;
	}
	accept_err = errno;
	/* One front-end per process: nobody else may connect later. */
	close(lfd);
	unlink(d.sock_path);
	if (stop_signal) {
		status = 0;
		if (d.vu.fd < 0)
			goto out_unlink_uds;
		goto out_close_vu;
	}
	if (d.vu.fd < 0) {
		fprintf(stderr, "qube-vsockd: --socket '%s': accept: %s\n", d.sock_path,
			strerror(accept_err));
		goto out_unlink_uds;
	}
	/* A front-end stalling mid-message must not hang us forever. */
	setsockopt(d.vu.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d.vu };

		if (epoll_ctl(d.epfd, EPOLL_CTL_ADD, d.vu.fd, &ev) < 0) {
			fprintf(stderr, "qube-vsockd: epoll: %s\n", strerror(errno));
			goto out_close_vu;
		}
	}
	r = install_seccomp();
	if (r < 0) {
		fprintf(stderr, "qube-vsockd: seccomp: %s\n", strerror(-r));
		goto out_close_vu;
	}
	r = run(&d);
	status = r < 0 ? 1 : 0;
	{
		const struct vsd_stats *st = vsd_vsock_stats(d.vsock);

		vlog(&d,
		     "exiting: %" PRIu64 " connections, %" PRIu64 " RST sent (%" PRIu64
		     " dropped), %" PRIu64 " bad chains, %" PRIu64 " bad packets, %" PRIu64
		     " credit violations, %" PRIu64 " connect timeouts",
		     st->conns_opened, st->rst_sent, st->rst_dropped, st->bad_chains,
		     st->bad_packets, st->credit_violations, st->connect_timeouts);
		for (unsigned int i = 0; i < VSD_NUM_VQ; i++) {
			const struct vsd_vring *vr = &d.dev.vq[i];

			vlog(&d, "queue %u: %" PRIu64 " buffers used, %" PRIu64 " interrupts, %" PRIu64
			     " kicks", i, vr->n_used, vr->n_calls, vr->n_kicks);
		}
	}

out_close_vu:
	close(d.vu.fd);
out_unlink_uds:
	vsd_vsock_unlink(d.vsock);
	vsd_dev_finish(&d.dev);
out_vsock:
	vsd_vsock_free(d.vsock);
out_epoll:
	close(d.epfd);
	return status;
}
