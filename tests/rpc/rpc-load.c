/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-load: many simultaneous calls, as qube-call would make them, from
 * several simulated qubes at once (one process, non-blocking, so that all
 * calls really are in flight together):
 *
 *   rpc-load QUBES_DIR SERVICE N QUBE...
 *
 * Call i comes from QUBE[i % k] (through its socket QUBES_DIR/QUBE/vsock_513)
 * and goes to QUBE[(i + 1) % k].  Phase 1 sends every request and waits
 * until every call is ALLOWED (all N calls open at once: the service, a
 * cat, is waiting for stdin).  Phase 2 sends each call its own stdin and
 * checks that exactly that comes back, then the exit code 0.
 * Exit 0 only if all N calls completed correctly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qrpc.h"

#define TIMEOUT_MS 180000

struct lcall {
	int fd;
	unsigned idx;
	struct qrpc_state st;
	uint8_t in[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];
	size_t in_len;
	char expect[128];
	size_t expect_len;
	char got[256];
	size_t got_len;
	uint8_t outbuf[512];
	size_t out_len, out_off;
	bool allowed, done, failed;
	int exit_code;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int queue(struct lcall *c, const struct qrpc_msg *m)
{
	size_t len;
	int r = qrpc_state_on_send(&c->st, m);

	if (r < 0)
		return r;
	r = qrpc_msg_encode(m, c->outbuf + c->out_len, sizeof(c->outbuf) - c->out_len, &len);
	if (r < 0)
		return r;
	c->out_len += len;
	return 0;
}

static void flush(struct lcall *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->outbuf + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				return;
			c->failed = true;
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

/* Reads and handles what arrived; sets allowed / done / failed. */
static void on_readable(struct lcall *c)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		if (!c->done) {
			fprintf(stderr, "call %u: connection closed early\n", c->idx);
			c->failed = true;
		}
		return;
	}
	c->in_len += (size_t)n;
	for (;;) {
		struct qrpc_msg m;
		size_t used;
		int r = qrpc_msg_parse(c->in, c->in_len, &m, &used);

		if (r == -EAGAIN)
			return;
		if (r < 0 || qrpc_state_on_recv(&c->st, &m) < 0) {
			fprintf(stderr, "call %u: bad message from the broker\n", c->idx);
			c->failed = true;
			return;
		}
		switch (m.type) {
		case QRPC_MSG_CALL_RESULT:
			if (m.u.call_result.status != QRPC_CALL_ALLOWED) {
				fprintf(stderr, "call %u: not allowed (status %u)\n", c->idx,
					m.u.call_result.status);
				c->failed = true;
				return;
			}
			c->allowed = true;
			break;
		case QRPC_MSG_STDOUT:
			if (c->got_len + m.u.data.len > sizeof(c->got)) {
				c->failed = true;
				return;
			}
			memcpy(c->got + c->got_len, m.u.data.data, m.u.data.len);
			c->got_len += m.u.data.len;
			break;
		case QRPC_MSG_EXIT:
			c->exit_code = (int)m.u.exit.code;
			c->done = true;
			break;
		default:
			break;
		}
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct lcall *calls;
	unsigned n, k, n_allowed = 0, n_done = 0, n_ok = 0;
	int ep;
	long deadline;

	if (argc < 5) {
		fprintf(stderr, "usage: rpc-load QUBES_DIR SERVICE N QUBE...\n");
		return 2;
	}
	n = (unsigned)strtoul(argv[3], NULL, 10);
	k = (unsigned)(argc - 4);
	if (n == 0 || n > 100000)
		return 2;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
		rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	calls = calloc(n, sizeof(*calls));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!calls || ep < 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* phase 1: every request out; wait for every ALLOWED */
	for (unsigned i = 0; i < n; i++) {
		struct lcall *c = &calls[i];
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		const char *src = argv[4 + i % k], *dst = argv[4 + (i + 1) % k];
		struct qrpc_msg m = { .type = QRPC_MSG_HELLO };
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		c->idx = i;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/vsock_%u", argv[1], src,
			 QRPC_PORT_BROKER);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			fprintf(stderr, "call %u: connect %s: %s\n", i, sa.sun_path, strerror(errno));
			return 1;
		}
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		qrpc_state_init(&c->st, QRPC_CHANNEL_CALL, QRPC_SIDE_CLIENT);
		m.u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
		m.u.hello.version_max = QRPC_PROTOCOL_VERSION;
		queue(c, &m);
		c->st.version = QRPC_PROTOCOL_VERSION; /* pipelined: request before the broker's hello */
		m = (struct qrpc_msg){ .type = QRPC_MSG_CALL_REQUEST };
		snprintf(m.u.call_request.target, sizeof(m.u.call_request.target), "%s", dst);
		snprintf(m.u.call_request.service, sizeof(m.u.call_request.service), "%s", argv[2]);
		if (queue(c, &m) < 0)
			return 2;
		c->st.version = 0;
		flush(c);
		c->expect_len = (size_t)snprintf(c->expect, sizeof(c->expect),
						 "call %u from %s to %s\n", i, src, dst);
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	printf("%u requests sent from %u qubes\n", n, k);
	deadline = now_ms() + TIMEOUT_MS;
	while (n_allowed < n && now_ms() < deadline) {
		struct epoll_event evs[256];
		int got = epoll_wait(ep, evs, 256, 1000);

		for (int j = 0; j < got; j++) {
			struct lcall *c = evs[j].data.ptr;
			bool was = c->allowed;

			on_readable(c);
			if (c->failed)
				return 1;
			if (c->done) {
				fprintf(stderr, "call %u ended before its stdin was sent\n", c->idx);
				return 1;
			}
			if (!was && c->allowed)
				n_allowed++;
		}
	}
	if (n_allowed < n) {
		fprintf(stderr, "only %u of %u calls were allowed before the time limit\n", n_allowed, n);
		return 1;
	}
	printf("all %u calls in flight at once (allowed, services waiting for stdin)\n", n);

	/* phase 2: stdin, then the echo and the exit code */
	for (unsigned i = 0; i < n; i++) {
		struct lcall *c = &calls[i];
		struct qrpc_msg m = { .type = QRPC_MSG_STDIN };

		m.u.data.data = (const uint8_t *)c->expect;
		m.u.data.len = (uint32_t)c->expect_len;
		queue(c, &m);
		m = (struct qrpc_msg){ .type = QRPC_MSG_EOF, .u.eof.stream = QRPC_STREAM_STDIN };
		queue(c, &m);
		flush(c);
		if (c->failed)
			return 1;
	}
	while (n_done < n && now_ms() < deadline) {
		struct epoll_event evs[256];
		int got = epoll_wait(ep, evs, 256, 1000);

		for (int j = 0; j < got; j++) {
			struct lcall *c = evs[j].data.ptr;

			on_readable(c);
			if (c->failed)
				return 1;
			if (c->done) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				n_done++;
				if (c->exit_code == 0 && c->got_len == c->expect_len &&
				    memcmp(c->got, c->expect, c->expect_len) == 0)
					n_ok++;
				else
					fprintf(stderr, "call %u: wrong result (exit %d, %zu bytes)\n",
						c->idx, c->exit_code, c->got_len);
			}
		}
	}
	printf("%u of %u calls completed, %u with the right output and exit code 0\n", n_done, n,
	       n_ok);
	for (unsigned i = 0; i < n; i++)
		if (!calls[i].done)
			close(calls[i].fd);
	free(calls);
	close(ep);
	return n_ok == n ? 0 : 1;
}
