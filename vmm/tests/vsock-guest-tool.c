/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vsock-guest-tool: stream test tool for the guest tests and benchmarks of
 * qube-vsockd.  Built statically so the minimal guest image can carry it;
 * the same binary runs on the host side of the tests.
 *
 *   vsock-guest-tool listen ADDR MODE [N] [--once]
 *   vsock-guest-tool connect ADDR MODE [N] [K]
 *
 * ADDR   vsock:CID:PORT  AF_VSOCK (listen: CID ignored, any)
 *        unix:PATH       unix stream socket
 *        hybrid:PATH:PORT  unix socket of qube-vsockd: "CONNECT PORT\n",
 *                        expects "OK <port>\n"
 *        file:PATH       a character device (virtio-serial port), connect only
 *
 * Data is the deterministic pattern of tests/lib/stream-pattern.h, so a
 * receiver verifies every byte without a second channel, and sending and
 * checking cost a write() and a memcmp() (a benchmark's guest CPU goes to
 * the transport, not to making and checking bytes).
 *
 * listen modes (each accepted connection in its own process):
 *   echo      copy back until EOF, then close
 *   sink      verify the pattern until EOF, answer "OK <bytes>\n" (or
 *             "BAD <offset>\n") after the peer's half-close
 *   source N  send N pattern bytes, half-close, wait for EOF
 *   drain N   read and verify N bytes, print throughput (benchmarks)
 * connect modes:
 *   send N    send N bytes, half-close, expect "OK N\n" back
 *   recv N    expect exactly N pattern bytes then EOF
 *   echo N    send N bytes, verify the echo
 *   multi K N K connections at once, each "echo N"
 *   refused   the connection must be refused or reset, not hang
 *   blast N   write N bytes (no reply expected; benchmarks)
 *   blast-hold N  same, then keep the connection open until the peer ends it
 *   drain N   read and verify N bytes, print throughput
 *   rtt K     K times: connect, 64-byte echo, close; print mean latency
 *   pingpong K  one connection, K 64-byte echoes; print mean latency
 *   serve-echo  echo on the connection until EOF (e.g. a virtio-serial port)
 * VSOCK_BUF=BYTES sets SO_VM_SOCKETS_BUFFER_SIZE on vsock sockets.
 * Exit 0 on success, 1 on a failed check, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "stream-pattern.h"

#define BLOCK 65536u
#define IO_TIMEOUT_MS 120000

static const char *prog = "vsock-guest-tool";

enum addr_kind { A_VSOCK, A_UNIX, A_HYBRID, A_FILE };

struct addr {
	enum addr_kind kind;
	unsigned int cid, port;
	char path[108];
};

_Noreturn static void die_usage(const char *msg)
{
	fprintf(stderr, "%s: %s\n", prog, msg);
	exit(2);
}

_Noreturn static void fail(const char *fmt, const char *detail)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, detail);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long parse_num(const char *s)
{
	char *end;
	unsigned long long v;

	if (!s || !*s)
		die_usage("missing number");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		die_usage("bad number");
	return v;
}

static void parse_addr(const char *s, struct addr *a)
{
	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "vsock:", 6)) {
		const char *p = s + 6, *colon = strchr(p, ':');
		a->kind = A_VSOCK;
		if (colon) {
			char cid[16];
			size_t l = (size_t)(colon - p);
			if (l == 0 || l >= sizeof(cid))
				die_usage("bad vsock CID");
			memcpy(cid, p, l);
			cid[l] = 0;
			a->cid = (unsigned int)parse_num(cid);
			p = colon + 1;
		} else {
			a->cid = VMADDR_CID_ANY;
		}
		a->port = (unsigned int)parse_num(p);
	} else if (!strncmp(s, "unix:", 5) || !strncmp(s, "file:", 5)) {
		a->kind = s[0] == 'u' ? A_UNIX : A_FILE;
		if (strlen(s + 5) >= sizeof(a->path))
			die_usage("path too long");
		strcpy(a->path, s + 5);
	} else if (!strncmp(s, "hybrid:", 7)) {
		const char *p = s + 7, *colon = strrchr(p, ':');
		size_t l;
		if (!colon)
			die_usage("hybrid:PATH:PORT expected");
		l = (size_t)(colon - p);
		if (l == 0 || l >= sizeof(a->path))
			die_usage("bad hybrid path");
		a->kind = A_HYBRID;
		memcpy(a->path, p, l);
		a->path[l] = 0;
		a->port = (unsigned int)parse_num(colon + 1);
	} else {
		die_usage("ADDR: vsock:CID:PORT, unix:PATH, hybrid:PATH:PORT or file:PATH");
	}
}

/* ---- pattern ---- */

/* at most BLOCK bytes are taken from one offset */
_Static_assert(BLOCK <= STREAM_PATTERN_SLICE, "BLOCK exceeds the pattern's slice");

struct verifier {
	uint64_t off;
	uint64_t bad; /* first bad offset + 1, 0 if none */
};

static void verify_init(struct verifier *v)
{
	v->off = 0;
	v->bad = 0;
}

static void verify(struct verifier *v, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t take = n < BLOCK ? n : BLOCK;
		const uint8_t *want = stream_pattern_at(v->off);

		if (!v->bad && memcmp(want, p, take) != 0) {
			for (size_t i = 0; i < take; i++) {
				if (want[i] != p[i]) {
					v->bad = v->off + i + 1;
					break;
				}
			}
		}
		v->off += take;
		p += take;
		n -= take;
	}
}

/* ---- I/O helpers ---- */

static bool wait_fd(int fd, short ev)
{
	struct pollfd p = { fd, ev, 0 };
	int r;

	do {
		r = poll(&p, 1, IO_TIMEOUT_MS);
	} while (r < 0 && errno == EINTR);
	return r == 1;
}

static ssize_t read_to(int fd, void *buf, size_t len)
{
	if (!wait_fd(fd, POLLIN)) {
		errno = ETIMEDOUT;
		return -1;
	}
	return read(fd, buf, len);
}

static void write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			wait_fd(fd, POLLOUT);
			continue;
		}
		if (n <= 0)
			fail("write: %s", strerror(errno));
		done += (size_t)n;
	}
}

/* VSOCK_BUF=BYTES in the environment sets the socket's receive window
 * (SO_VM_SOCKETS_BUFFER_SIZE; Linux defaults to 256 KiB). */
static void set_vsock_buf(int fd)
{
	const char *e = getenv("VSOCK_BUF");
	unsigned long long v;

	if (!e || !*e)
		return;
	v = parse_num(e);
	if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &v, sizeof(v)) < 0 ||
	    setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &v, sizeof(v)) < 0)
		fail("setsockopt(SO_VM_SOCKETS_BUFFER_SIZE): %s", strerror(errno));
}

static int connect_addr(const struct addr *a, bool expect_fail)
{
	int fd;

	if (a->kind == A_FILE) {
		fd = open(a->path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fail("open: %s", strerror(errno));
		/* A virtio-serial port reports POLLHUP until the host side
		 * is connected; reads before that would return EOF. */
		for (int i = 0; i < IO_TIMEOUT_MS / 10; i++) {
			struct pollfd p = { fd, POLLOUT, 0 };

			if (poll(&p, 1, 10) == 1 && !(p.revents & POLLHUP))
				return fd;
			if (p.revents & POLLHUP)
				usleep(10000);
		}
		fail("%s: host side never connected", a->path);
	}
	if (a->kind == A_VSOCK) {
		struct sockaddr_vm svm = { .svm_family = AF_VSOCK, .svm_cid = a->cid,
					   .svm_port = a->port };
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail("socket(AF_VSOCK): %s", strerror(errno));
		set_vsock_buf(fd);
		if (connect(fd, (struct sockaddr *)&svm, sizeof(svm)) < 0) {
			if (expect_fail)
				return -1;
			fail("vsock connect: %s", strerror(errno));
		}
		return fd;
	}
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail("socket(AF_UNIX): %s", strerror(errno));
		memcpy(sun.sun_path, a->path, sizeof(a->path));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			fail("unix connect: %s", strerror(errno));
	}
	if (a->kind == A_HYBRID) {
		char line[64];
		size_t n = 0;
		int l = snprintf(line, sizeof(line), "CONNECT %u\n", a->port);

		write_all(fd, line, (size_t)l);
		/* read "OK <port>\n" byte by byte: nothing after it is ours */
		while (n < sizeof(line) - 1) {
			ssize_t r = read_to(fd, line + n, 1);
			if (r <= 0) {
				if (expect_fail) {
					close(fd);
					return -1;
				}
				fail("hybrid connect: %s", r == 0 ? "closed before OK" : strerror(errno));
			}
			if (line[n++] == '\n')
				break;
		}
		line[n] = 0;
		if (strncmp(line, "OK ", 3) != 0)
			fail("hybrid connect: unexpected answer '%s'", line);
	}
	return fd;
}

static int listen_addr(const struct addr *a)
{
	int fd;

	if (a->kind == A_VSOCK) {
		struct sockaddr_vm svm = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
					   .svm_port = a->port };
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail("socket(AF_VSOCK): %s", strerror(errno));
		set_vsock_buf(fd);
		if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) < 0)
			fail("vsock bind: %s", strerror(errno));
	} else if (a->kind == A_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memcpy(sun.sun_path, a->path, sizeof(a->path));
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			fail("unix bind: %s", strerror(errno));
	} else {
		die_usage("listen: vsock: or unix: address");
	}
	if (listen(fd, 128) < 0)
		fail("listen: %s", strerror(errno));
	return fd;
}

static uint8_t iobuf[BLOCK];

static void do_send(int fd, uint64_t n, bool want_reply)
{
	uint64_t sent = 0;
	double t0 = now_s(), dt;
	char line[64];
	size_t got = 0;

	while (sent < n) {
		size_t chunk = n - sent < BLOCK ? (size_t)(n - sent) : BLOCK;
		write_all(fd, stream_pattern_at(sent), chunk);
		sent += chunk;
	}
	dt = now_s() - t0;
	printf("%s: sent %llu bytes in %.3f s (%.1f MB/s)\n", prog, (unsigned long long)n, dt,
	       dt > 0 ? (double)n / dt / 1e6 : 0.0);
	fflush(stdout);
	if (!want_reply)
		return;
	if (shutdown(fd, SHUT_WR) < 0)
		fail("shutdown: %s", strerror(errno));
	while (got < sizeof(line) - 1) {
		ssize_t r = read_to(fd, line + got, sizeof(line) - 1 - got);
		if (r < 0)
			fail("reading the reply: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	line[got] = 0;
	snprintf((char *)iobuf, sizeof(iobuf), "OK %llu\n", (unsigned long long)n);
	if (strcmp(line, (char *)iobuf) != 0)
		fail("peer answered '%s'", line);
}

/* Reads until EOF (or until limit bytes if limit != 0); verifies. */
static uint64_t do_sink(int fd, uint64_t limit, struct verifier *v, double *ret_secs)
{
	double t0 = 0;

	verify_init(v);
	for (;;) {
		size_t want = sizeof(iobuf);
		ssize_t r;

		if (limit && limit - v->off < want)
			want = (size_t)(limit - v->off);
		if (limit && want == 0)
			break;
		r = read_to(fd, iobuf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("read: %s", strerror(errno));
		if (r == 0)
			break;
		if (v->off == 0)
			t0 = now_s();
		verify(v, iobuf, (size_t)r);
	}
	if (ret_secs)
		*ret_secs = v->off ? now_s() - t0 : 0;
	return v->off;
}

static struct verifier ver;

static void report_drain(uint64_t n, double secs)
{
	printf("%s: drained %llu bytes in %.3f s (%.1f MB/s)%s\n", prog, (unsigned long long)n,
	       secs, secs > 0 ? (double)n / secs / 1e6 : 0.0, ver.bad ? " CORRUPT" : "");
	fflush(stdout);
}

static void serve(int fd, const char *mode, uint64_t n)
{
	if (!strcmp(mode, "echo")) {
		for (;;) {
			ssize_t r = read_to(fd, iobuf, sizeof(iobuf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			write_all(fd, iobuf, (size_t)r);
		}
	} else if (!strcmp(mode, "sink")) {
		char line[64];
		uint64_t got = do_sink(fd, 0, &ver, NULL);
		int l = ver.bad ? snprintf(line, sizeof(line), "BAD %llu\n",
					   (unsigned long long)(ver.bad - 1))
				: snprintf(line, sizeof(line), "OK %llu\n", (unsigned long long)got);
		write_all(fd, line, (size_t)l);
	} else if (!strcmp(mode, "source")) {
		do_send(fd, n, false);
		shutdown(fd, SHUT_WR);
		while (read_to(fd, iobuf, sizeof(iobuf)) > 0) {
		}
	} else if (!strcmp(mode, "drain")) {
		double secs;
		uint64_t got = do_sink(fd, n, &ver, &secs);
		report_drain(got, secs);
		if (got != n || ver.bad)
			exit(1);
	} else {
		die_usage("listen MODE: echo, sink, source N or drain N");
	}
}

static int cmd_listen(const struct addr *a, const char *mode, uint64_t n, bool once)
{
	int lfd = listen_addr(a);

	signal(SIGCHLD, once ? SIG_DFL : SIG_IGN);
	printf("%s: listening\n", prog);
	fflush(stdout);
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (c < 0) {
			if (errno == EINTR)
				continue;
			fail("accept: %s", strerror(errno));
		}
		if (once) {
			close(lfd);
			if (a->kind == A_UNIX)
				unlink(a->path);
			serve(c, mode, n);
			close(c);
			return 0;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(c, mode, n);
			_exit(0);
		}
		close(c);
	}
}

static void echo_check(const struct addr *a, uint64_t n)
{
	int fd = connect_addr(a, false);
	uint64_t sent = 0;
	const uint8_t *out = NULL;
	size_t out_len = 0, out_off = 0;
	bool shut = false;

	verify_init(&ver);
	/* write and read at once so neither side's buffers can deadlock */
	while (ver.off < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (out_off == out_len && sent < n) {
			out_len = n - sent < BLOCK ? (size_t)(n - sent) : BLOCK;
			out = stream_pattern_at(sent);
			out_off = 0;
		}
		if (out_off < out_len)
			p.events |= POLLOUT;
		if (poll(&p, 1, IO_TIMEOUT_MS) != 1)
			fail("echo: %s", "timed out");
		if (p.revents & POLLOUT) {
			ssize_t w = write(fd, out + out_off, out_len - out_off);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				fail("echo write: %s", strerror(errno));
			if (w > 0) {
				out_off += (size_t)w;
				sent += (uint64_t)w;
			}
		}
		if (sent == n && out_off == out_len && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, iobuf, sizeof(iobuf));
			if (r < 0 && errno != EINTR)
				fail("echo read: %s", strerror(errno));
			if (r == 0)
				fail("echo: %s", "EOF before all bytes came back");
			if (r > 0)
				verify(&ver, iobuf, (size_t)r);
		}
	}
	if (ver.bad)
		fail("echo: %s", "data corrupted");
	if (read_to(fd, iobuf, 1) != 0)
		fail("echo: %s", "no EOF after the echo");
	close(fd);
}

static double latency_us(const struct addr *a, uint64_t k, bool reconnect)
{
	uint8_t msg[64], back[64];
	double t0;
	int fd = -1;

	memset(msg, 'p', sizeof(msg));
	t0 = now_s();
	for (uint64_t i = 0; i < k; i++) {
		size_t got = 0;
		if (fd < 0)
			fd = connect_addr(a, false);
		write_all(fd, msg, sizeof(msg));
		while (got < sizeof(back)) {
			ssize_t r = read_to(fd, back + got, sizeof(back) - got);
			if (r <= 0)
				fail("rtt: %s", r == 0 ? "EOF" : strerror(errno));
			got += (size_t)r;
		}
		if (memcmp(msg, back, sizeof(msg)) != 0)
			fail("rtt: %s", "echo differs");
		if (reconnect) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return (now_s() - t0) / (double)k * 1e6;
}

static int cmd_connect(const struct addr *a, const char *mode, uint64_t n, uint64_t k)
{
	int fd;

	if (!strcmp(mode, "send")) {
		fd = connect_addr(a, false);
		do_send(fd, n, true);
	} else if (!strcmp(mode, "blast") || !strcmp(mode, "blast-hold")) {
		fd = connect_addr(a, false);
		do_send(fd, n, false);
		/* blast-hold: keep the connection until the peer ends it (a
		 * chardev drops unread bytes when its socket closes early) */
		if (mode[5] == '-') {
			while (read_to(fd, iobuf, sizeof(iobuf)) > 0) {
			}
		}
	} else if (!strcmp(mode, "recv") || !strcmp(mode, "drain")) {
		double secs;
		uint64_t got;

		fd = connect_addr(a, false);
		got = do_sink(fd, mode[0] == 'd' ? n : 0, &ver, &secs);
		report_drain(got, secs);
		if (got != n || ver.bad)
			fail("%s", "wrong byte count or corrupted data");
	} else if (!strcmp(mode, "echo")) {
		echo_check(a, n);
		printf("%s: echo ok %llu bytes\n", prog, (unsigned long long)n);
		return 0;
	} else if (!strcmp(mode, "multi")) {
		/* n connections at once, each echoing k bytes */
		pid_t *pids = calloc(n ? n : 1, sizeof(*pids));
		int failed = 0;

		if (!pids)
			fail("%s", "out of memory");
		for (uint64_t i = 0; i < n; i++) {
			pids[i] = fork();
			if (pids[i] < 0)
				fail("fork: %s", strerror(errno));
			if (pids[i] == 0) {
				echo_check(a, k);
				_exit(0);
			}
		}
		for (uint64_t i = 0; i < n; i++) {
			int st;
			if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0)
				failed++;
		}
		free(pids);
		if (failed) {
			fprintf(stderr, "%s: multi: %d of %llu connections failed\n", prog, failed,
				(unsigned long long)n);
			return 1;
		}
		printf("%s: multi ok %llu connections x %llu bytes\n", prog,
		       (unsigned long long)n, (unsigned long long)k);
		return 0;
	} else if (!strcmp(mode, "refused")) {
		fd = connect_addr(a, true);
		if (fd >= 0)
			fail("%s", "connection was accepted, expected a refusal");
		printf("%s: refused as expected\n", prog);
		return 0;
	} else if (!strcmp(mode, "serve-echo")) {
		fd = connect_addr(a, false);
		serve(fd, "echo", 0);
	} else if (!strcmp(mode, "rtt") || !strcmp(mode, "pingpong")) {
		double us = latency_us(a, n, mode[0] == 'r');
		printf("%s: %s mean %.1f us over %llu\n", prog, mode, us, (unsigned long long)n);
		return 0;
	} else {
		die_usage("connect MODE: send, recv, echo, multi, refused, blast, drain, rtt, pingpong");
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct addr a;
	bool once = false;
	uint64_t n = 0, k = 0;
	int nargs = 0;
	const char *args[5];

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--once"))
			once = true;
		else if (nargs < 5)
			args[nargs++] = argv[i];
		else
			die_usage("too many arguments");
	}
	if (nargs < 3)
		die_usage("usage: listen|connect ADDR MODE [N] [K] [--once]");
	parse_addr(args[1], &a);
	if (nargs > 3)
		n = parse_num(args[3]);
	if (nargs > 4)
		k = parse_num(args[4]);
	if (!strcmp(args[0], "listen"))
		return cmd_listen(&a, args[2], n, once);
	if (!strcmp(args[0], "connect"))
		return cmd_connect(&a, args[2], n, k);
	die_usage("first argument: listen or connect");
	return 2;
}
