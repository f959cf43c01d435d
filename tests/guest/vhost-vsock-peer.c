/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-vsock-peer: plays the virtio-vsock driver of one guest against the
 * kernel's vhost-vsock device, without a VM.  It opens /dev/vhost-vsock,
 * gives the kernel a memory table (its own address space, identity-mapped),
 * two split virtqueues and a guest CID, and then speaks the virtio-vsock
 * packet protocol on them: to every other process of that kernel it looks
 * exactly like a guest with that CID (the kernel checks each packet's source
 * CID against it, as for a real VM).
 *
 * Inside the "guest" is the hybrid unix convention (docs/vsock.md), the
 * mirror image of qube-vsockd:
 *   - a host connection to (CID, PORT) is passed to the unix socket
 *     DIR/vsock with the line "CONNECT PORT\n", which must be answered
 *     "OK <n>\n" (qube-agent --transport unix:DIR does that); otherwise the
 *     host gets a reset;
 *   - a connection to DIR/vsock_PORT (one listening socket per --listen
 *     PORT) becomes a guest connection to (host CID 2, PORT) (qube-call
 *     --transport unix:DIR uses DIR/vsock_513).
 *
 * Used by tests/guest/broker-vsock-test.sh inside a TCG guest whose kernel
 * has vhost_vsock: the broker there sees real AF_VSOCK connections from
 * distinct CIDs.  Built statically (it runs in the minimal guest image).
 *
 *   vhost-vsock-peer --cid N --dir DIR [--listen PORT]... [--device PATH]
 *                    [--timeout MS] [--src-cid M] [--verbose]
 *
 * --timeout MS: how long a connection may wait for the host's answer or the
 * agent's OK (default 10000).  --src-cid M: a test hook, writes M instead
 * of N as the source CID of every packet (the kernel must drop them: a VM
 * cannot pose as another).
 *
 * Prints "vhost-vsock-peer: cid N ready" on stdout once the device runs.
 * SIGTERM/SIGINT end it (exit 0); closing the device resets every host
 * socket connected to the CID.  Counters go to stderr at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>

#define PROG "vhost-vsock-peer"
#define QSIZE 128u                 /* descriptors per virtqueue */
#define PAYLOAD 16384u             /* payload bytes per buffer */
#define HDR ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define SLOT 16448u                /* HDR + PAYLOAD, rounded up to 64 */
#define BUF_ALLOC (256u * 1024u)   /* what we buffer per connection */
#define CREDIT_REPORT (64u * 1024u)
#define HOST_CID 2u
#define MAX_LISTEN 8
#define VQ_RX 0                    /* host -> guest */
#define VQ_TX 1                    /* guest -> host */

enum { P_REQUEST = 1, P_RESPONSE = 2, P_SHUTDOWN = 4, P_CREDIT = 8 };
enum cstate { C_HANDSHAKE, C_REQUESTED, C_OPEN };

struct conn {
	struct conn *next;
	enum cstate state;
	uint32_t lport, pport; /* ours, the host's */
	int fd;                /* unix side, -1 once gone */
	bool dead;
	char line[40];
	size_t line_len;
	uint8_t *out;          /* host -> unix, BUF_ALLOC bytes */
	size_t out_off, out_len;
	uint32_t rx_cnt, fwd_cnt, fwd_reported;
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	uint32_t peer_shut;    /* SHUTDOWN flags received */
	uint32_t shut_flags;   /* SHUTDOWN flags to send / sent */
	unsigned pending;
	bool unix_eof, wr_shut;
	uint64_t deadline;
};

struct vq {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint8_t *bufs;
	uint16_t avail_idx, last_used;
	int kick, call;
	bool need_kick;
};

struct rst {
	uint32_t lport, pport;
};

static struct {
	uint32_t cid, src_cid;
	unsigned timeout_ms;
	const char *dir;
	bool verbose;
	int dev;
	struct vq vq[2];
	uint16_t tx_free[QSIZE];
	unsigned n_tx_free;
	struct conn *conns;
	struct rst *rsts;
	size_t n_rsts, cap_rsts;
	int listen_fd[MAX_LISTEN];
	uint32_t listen_port[MAX_LISTEN];
	unsigned n_listen;
	uint32_t next_port;
	unsigned long n_host_conns, n_guest_conns, n_rst_sent, n_rst_rcvd, n_bad;
	uint64_t bytes_in, bytes_out;
} g = { .dev = -1, .next_port = 49152, .timeout_ms = 10000 };

static void logv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logv(const char *fmt, ...)
{
	va_list ap;

	if (!g.verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, PROG "[%u]: ", g.cid);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void die(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- virtqueues ----------------------------------------------------------------- */

static void vq_push(struct vq *q, uint16_t id)
{
	q->avail->ring[q->avail_idx % QSIZE] = id;
	q->avail_idx++;
	__atomic_store_n(&q->avail->idx, q->avail_idx, __ATOMIC_RELEASE);
	q->need_kick = true;
}

static void vq_kick(struct vq *q)
{
	uint64_t one = 1;

	if (!q->need_kick)
		return;
	q->need_kick = false;
	if (write(q->kick, &one, sizeof(one)) != sizeof(one))
		die("kick");
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		die("eventfd");
}

/* ---- packets out ----------------------------------------------------------------- */

static void hdr_fill(struct virtio_vsock_hdr *h, uint32_t lport, uint32_t pport, uint16_t op,
		     uint32_t flags, uint32_t len, uint32_t fwd_cnt)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = g.src_cid;
	h->dst_cid = HOST_CID;
	h->src_port = lport;
	h->dst_port = pport;
	h->len = len;
	h->type = VIRTIO_VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = BUF_ALLOC;
	h->fwd_cnt = fwd_cnt;
}

/* Takes a free tx buffer; NULL when all are with the kernel. */
static uint8_t *tx_slot(uint16_t *ret_id)
{
	if (g.n_tx_free == 0)
		return NULL;
	*ret_id = g.tx_free[--g.n_tx_free];
	return g.vq[VQ_TX].bufs + (size_t)*ret_id * SLOT;
}

static void tx_submit(uint16_t id, uint32_t len)
{
	g.vq[VQ_TX].desc[id].len = HDR + len;
	vq_push(&g.vq[VQ_TX], id);
}

/* One control packet (no payload) for C; false when no buffer is free. */
static bool send_ctl(struct conn *c, uint16_t op, uint32_t flags)
{
	uint16_t id;
	uint8_t *b = tx_slot(&id);

	if (!b)
		return false;
	hdr_fill((struct virtio_vsock_hdr *)b, c->lport, c->pport, op, flags, 0, c->fwd_cnt);
	c->fwd_reported = c->fwd_cnt;
	tx_submit(id, 0);
	return true;
}

static void queue_rst(uint32_t lport, uint32_t pport)
{
	if (g.n_rsts == g.cap_rsts) {
		size_t cap = g.cap_rsts ? g.cap_rsts * 2 : 16;
		struct rst *r = realloc(g.rsts, cap * sizeof(*r));

		if (!r)
			die("realloc");
		g.rsts = r;
		g.cap_rsts = cap;
	}
	g.rsts[g.n_rsts++] = (struct rst){ lport, pport };
}

/* ---- connections ------------------------------------------------------------------ */

static struct conn *conn_find(uint32_t lport, uint32_t pport)
{
	for (struct conn *c = g.conns; c; c = c->next)
		if (!c->dead && c->lport == lport && c->pport == pport)
			return c;
	return NULL;
}

static struct conn *conn_new(uint32_t lport, uint32_t pport, int fd, enum cstate st)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		die("calloc");
	c->lport = lport;
	c->pport = pport;
	c->fd = fd;
	c->state = st;
	c->deadline = now_ms() + g.timeout_ms;
	c->next = g.conns;
	g.conns = c;
	return c;
}

static void unix_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->out_len = 0;
}

/* Ends C at once: a reset to the host (unless it sent one), unix side closed. */
static void conn_reset(struct conn *c, bool send_rst, const char *why)
{
	logv("port %u<->%u: reset (%s)", c->lport, c->pport, why);
	if (send_rst)
		queue_rst(c->lport, c->pport);
	unix_close(c);
	c->dead = true;
}

static uint32_t credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static uint32_t alloc_port(void)
{
	for (;;) {
		uint32_t p = g.next_port++;
		bool used = false;

		if (g.next_port == 0 || g.next_port > 0x7fffffffu)
			g.next_port = 49152;
		for (struct conn *c = g.conns; c; c = c->next)
			if (c->lport == p)
				used = true;
		if (!used)
			return p;
	}
}

/* After anything changed on C: the shutdown/close rules of Linux's
 * virtio-vsock, seen from the guest. */
static void conn_settle(struct conn *c)
{
	if (c->dead || c->state != C_OPEN)
		return;
	/* the host sent all it will send: pass the half-close on */
	if ((c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND) && c->out_len == 0 && c->fd >= 0 &&
	    !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	/* the host closed both ways: once its data is delivered, reset */
	if ((c->peer_shut & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) ==
		    (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND) &&
	    (c->out_len == 0 || c->fd < 0)) {
		conn_reset(c, true, "host closed");
		return;
	}
	/* our side is gone both ways: tell the host, wait for its reset */
	if (c->fd < 0 && !(c->shut_flags & VIRTIO_VSOCK_SHUTDOWN_RCV)) {
		c->shut_flags |= VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
		c->pending |= P_SHUTDOWN;
		c->deadline = now_ms() + g.timeout_ms;
	}
	if (c->fd >= 0 && c->fwd_cnt != c->fwd_reported &&
	    (c->fwd_cnt - c->fwd_reported >= CREDIT_REPORT || c->out_len == 0))
		c->pending |= P_CREDIT;
}

/* ---- packets in --------------------------------------------------------------------- */

static void host_request(const struct virtio_vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[32];
	struct conn *c;
	int fd, n;

	if (conn_find(h->dst_port, h->src_port)) {
		queue_rst(h->dst_port, h->src_port);
		return;
	}
	g.n_host_conns++;
	c = conn_new(h->dst_port, h->src_port, -1, C_HANDSHAKE);
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock", g.dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		conn_reset(c, true, "nothing listens on DIR/vsock");
		return;
	}
	c->fd = fd;
	n = snprintf(line, sizeof(line), "CONNECT %u\n", (unsigned)h->dst_port);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_reset(c, true, "cannot send CONNECT");
		return;
	}
	logv("host port %u -> port %u: CONNECT sent", c->pport, c->lport);
}

static void on_packet(const uint8_t *buf, uint32_t used_len)
{
	const struct virtio_vsock_hdr *h = (const void *)buf;
	struct conn *c;

	if (used_len < HDR || h->len > used_len - HDR || h->type != VIRTIO_VSOCK_TYPE_STREAM ||
	    h->dst_cid != g.cid || h->src_cid != HOST_CID) {
		g.n_bad++;
		return;
	}
	c = conn_find(h->dst_port, h->src_port);
	if (h->op == VIRTIO_VSOCK_OP_REQUEST && !c) {
		host_request(h);
		return;
	}
	if (!c) {
		if (h->op != VIRTIO_VSOCK_OP_RST)
			queue_rst(h->dst_port, h->src_port);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != C_REQUESTED) {
			conn_reset(c, true, "unexpected RESPONSE");
			return;
		}
		c->state = C_OPEN;
		c->deadline = 0;
		logv("port %u -> host port %u: connected", c->lport, c->pport);
		break;
	case VIRTIO_VSOCK_OP_RST:
		g.n_rst_rcvd++;
		conn_reset(c, false, "RST from the host");
		return;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		c->peer_shut |= h->flags & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (c->state != C_OPEN || (c->peer_shut & VIRTIO_VSOCK_SHUTDOWN_SEND)) {
			conn_reset(c, true, "data out of state");
			return;
		}
		if ((uint64_t)(c->rx_cnt - c->fwd_cnt) + h->len > BUF_ALLOC) {
			conn_reset(c, true, "host overran its credit");
			return;
		}
		c->rx_cnt += h->len;
		g.bytes_in += h->len;
		if (c->fd < 0) { /* nobody reads: count it as delivered */
			c->fwd_cnt += h->len;
			break;
		}
		if (!c->out) {
			c->out = malloc(BUF_ALLOC);
			if (!c->out)
				die("malloc");
			c->out_off = 0;
		}
		if (c->out_off + c->out_len + h->len > BUF_ALLOC) {
			memmove(c->out, c->out + c->out_off, c->out_len);
			c->out_off = 0;
		}
		memcpy(c->out + c->out_off + c->out_len, buf + HDR, h->len);
		c->out_len += h->len;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT;
		break;
	default:
		conn_reset(c, true, "unknown op");
		return;
	}
	conn_settle(c);
}

static void rx_process(void)
{
	struct vq *q = &g.vq[VQ_RX];

	for (;;) {
		uint16_t used_idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);

		if (used_idx == q->last_used)
			break;
		while (q->last_used != used_idx) {
			struct vring_used_elem *e = &q->used->ring[q->last_used % QSIZE];
			uint32_t id = e->id, len = e->len;

			q->last_used++;
			if (id >= QSIZE) {
				fprintf(stderr, PROG ": kernel used rx descriptor %u\n", id);
				exit(1);
			}
			on_packet(q->bufs + (size_t)id * SLOT, len > SLOT ? SLOT : len);
			vq_push(q, (uint16_t)id);
		}
	}
}

static void tx_reclaim(void)
{
	struct vq *q = &g.vq[VQ_TX];
	uint16_t used_idx = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);

	while (q->last_used != used_idx) {
		uint32_t id = q->used->ring[q->last_used % QSIZE].id;

		q->last_used++;
		if (id >= QSIZE || g.n_tx_free >= QSIZE) {
			fprintf(stderr, PROG ": kernel used tx descriptor %u twice or out of range\n", id);
			exit(1);
		}
		g.tx_free[g.n_tx_free++] = (uint16_t)id;
	}
}

/* ---- unix side ---------------------------------------------------------------------- */

static void on_listen(unsigned i)
{
	int fd = accept4(g.listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct conn *c;

	if (fd < 0)
		return;
	g.n_guest_conns++;
	c = conn_new(alloc_port(), g.listen_port[i], fd, C_REQUESTED);
	c->pending |= P_REQUEST;
	logv("port %u -> host port %u: requesting", c->lport, c->pport);
}

/* The agent's answer to CONNECT, byte by byte (what follows is data). */
static void handshake_read(struct conn *c)
{
	for (;;) {
		char ch;
		ssize_t n = read(c->fd, &ch, 1);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_reset(c, true, "DIR/vsock closed without OK");
			return;
		}
		if (ch != '\n') {
			if (c->line_len + 1 >= sizeof(c->line)) {
				conn_reset(c, true, "answer to CONNECT too long");
				return;
			}
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = '\0';
		if (strncmp(c->line, "OK ", 3) != 0 || !c->line[3] ||
		    strspn(c->line + 3, "0123456789") != strlen(c->line + 3)) {
			conn_reset(c, true, "answer to CONNECT is not OK <n>");
			return;
		}
		c->state = C_OPEN;
		c->deadline = 0;
		c->pending |= P_RESPONSE;
		logv("host port %u -> port %u: connected", c->pport, c->lport);
		return;
	}
}

/* unix -> host: as much as credit and free buffers allow. */
static void unix_read(struct conn *c)
{
	while (c->fd >= 0 && !c->unix_eof && !c->pending && credit(c) > 0) {
		uint32_t want = credit(c);
		uint16_t id;
		uint8_t *b = tx_slot(&id);
		ssize_t n;

		if (!b)
			return;
		if (want > PAYLOAD)
			want = PAYLOAD;
		n = read(c->fd, b + HDR, want);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			g.tx_free[g.n_tx_free++] = id;
			return;
		}
		if (n <= 0) {
			g.tx_free[g.n_tx_free++] = id;
			c->unix_eof = true;
			c->shut_flags |= VIRTIO_VSOCK_SHUTDOWN_SEND;
			c->pending |= P_SHUTDOWN;
			if (n < 0) /* reset: gone both ways */
				unix_close(c);
			return;
		}
		hdr_fill((struct virtio_vsock_hdr *)b, c->lport, c->pport, VIRTIO_VSOCK_OP_RW, 0,
			 (uint32_t)n, c->fwd_cnt);
		c->fwd_reported = c->fwd_cnt;
		tx_submit(id, (uint32_t)n);
		c->tx_cnt += (uint32_t)n;
		g.bytes_out += (uint64_t)n;
	}
}

/* host -> unix. */
static void unix_write(struct conn *c)
{
	while (c->fd >= 0 && c->out_len > 0) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) { /* the reader is gone */
			c->fwd_cnt += (uint32_t)c->out_len;
			unix_close(c);
			return;
		}
		c->out_off += (size_t)n;
		c->out_len -= (size_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->out_len == 0)
		c->out_off = 0;
}

static void on_unix(struct conn *c, short revents)
{
	if (c->dead || c->fd < 0)
		return;
	switch (c->state) {
	case C_HANDSHAKE:
		if (revents & (POLLIN | POLLHUP | POLLERR))
			handshake_read(c);
		return;
	case C_REQUESTED:
		if (revents & (POLLHUP | POLLERR))
			conn_reset(c, true, "unix client left before the host answered");
		return;
	case C_OPEN:
		break;
	}
	if (revents & POLLOUT)
		unix_write(c);
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		if (!c->unix_eof)
			unix_read(c);
		else if (c->fd >= 0 && (revents & (POLLHUP | POLLERR)))
			unix_close(c); /* closed the other way too */
	}
	conn_settle(c);
}

/* Control packets first (resets, then per connection), then data. */
static void flush(void)
{
	while (g.n_rsts > 0) {
		struct conn tmp = { 0 };
		struct rst *r = &g.rsts[g.n_rsts - 1];

		tmp.lport = r->lport;
		tmp.pport = r->pport;
		if (!send_ctl(&tmp, VIRTIO_VSOCK_OP_RST, 0))
			return;
		g.n_rst_sent++;
		g.n_rsts--;
	}
	for (struct conn *c = g.conns; c; c = c->next) {
		if (c->dead)
			continue;
		if ((c->pending & P_REQUEST)) {
			if (!send_ctl(c, VIRTIO_VSOCK_OP_REQUEST, 0))
				return;
			c->pending &= ~P_REQUEST;
		}
		if ((c->pending & P_RESPONSE)) {
			if (!send_ctl(c, VIRTIO_VSOCK_OP_RESPONSE, 0))
				return;
			c->pending &= ~P_RESPONSE;
		}
		if ((c->pending & P_SHUTDOWN)) {
			if (!send_ctl(c, VIRTIO_VSOCK_OP_SHUTDOWN, c->shut_flags))
				return;
			c->pending &= ~P_SHUTDOWN;
		}
		if ((c->pending & P_CREDIT)) {
			if (!send_ctl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0))
				return;
			c->pending &= ~P_CREDIT;
		}
	}
}

static void sweep(void)
{
	uint64_t now = now_ms();

	for (struct conn **pp = &g.conns; *pp;) {
		struct conn *c = *pp;

		if (!c->dead && c->deadline && now >= c->deadline)
			conn_reset(c, true, c->state == C_HANDSHAKE   ? "no OK from DIR/vsock"
					    : c->state == C_REQUESTED ? "host did not answer"
								      : "host did not finish the close");
		if (c->dead) {
			*pp = c->next;
			unix_close(c);
			free(c);
			continue;
		}
		pp = &c->next;
	}
}

/* ---- setup ----------------------------------------------------------------------------- */

static void *page_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void device_setup(const char *path)
{
	/* one region: rings (3 pages each) and buffers, identity-mapped */
	size_t ring_bytes = 3 * 4096, buf_bytes = (size_t)QSIZE * SLOT;
	size_t total = 2 * (ring_bytes + buf_bytes);
	uint8_t *mem = page_alloc(total);
	struct vhost_memory *mt = calloc(1, sizeof(*mt) + sizeof(struct vhost_memory_region));
	uint64_t features, cid = g.cid;
	int running = 1;

	g.dev = open(path, O_RDWR | O_CLOEXEC);
	if (g.dev < 0)
		die(path);
	if (ioctl(g.dev, VHOST_SET_OWNER) < 0)
		die("VHOST_SET_OWNER");
	if (ioctl(g.dev, VHOST_GET_FEATURES, &features) < 0)
		die("VHOST_GET_FEATURES");
	if (!(features & (1ull << VIRTIO_F_VERSION_1))) {
		fprintf(stderr, PROG ": the device does not offer VIRTIO_F_VERSION_1\n");
		exit(1);
	}
	features = 1ull << VIRTIO_F_VERSION_1;
	if (ioctl(g.dev, VHOST_SET_FEATURES, &features) < 0)
		die("VHOST_SET_FEATURES");
	if (!mt)
		die("calloc");
	mt->nregions = 1;
	mt->regions[0].guest_phys_addr = (uintptr_t)mem;
	mt->regions[0].memory_size = total;
	mt->regions[0].userspace_addr = (uintptr_t)mem;
	if (ioctl(g.dev, VHOST_SET_MEM_TABLE, mt) < 0)
		die("VHOST_SET_MEM_TABLE");
	free(mt);

	for (unsigned i = 0; i < 2; i++) {
		struct vq *q = &g.vq[i];
		uint8_t *base = mem + i * (ring_bytes + buf_bytes);
		struct vhost_vring_state num = { .index = i, .num = QSIZE };
		struct vhost_vring_state base_idx = { .index = i, .num = 0 };
		struct vhost_vring_addr addr = { .index = i };
		struct vhost_vring_file kick = { .index = i }, call = { .index = i };

		q->desc = (void *)base;
		q->avail = (void *)(base + 4096);
		q->used = (void *)(base + 8192);
		q->bufs = base + ring_bytes;
		q->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		q->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->kick < 0 || q->call < 0)
			die("eventfd");
		for (unsigned d = 0; d < QSIZE; d++) {
			q->desc[d].addr = (uintptr_t)(q->bufs + (size_t)d * SLOT);
			q->desc[d].len = SLOT;
			q->desc[d].flags = i == VQ_RX ? VRING_DESC_F_WRITE : 0;
		}
		addr.desc_user_addr = (uintptr_t)q->desc;
		addr.avail_user_addr = (uintptr_t)q->avail;
		addr.used_user_addr = (uintptr_t)q->used;
		kick.fd = q->kick;
		call.fd = q->call;
		if (ioctl(g.dev, VHOST_SET_VRING_NUM, &num) < 0 ||
		    ioctl(g.dev, VHOST_SET_VRING_BASE, &base_idx) < 0 ||
		    ioctl(g.dev, VHOST_SET_VRING_ADDR, &addr) < 0 ||
		    ioctl(g.dev, VHOST_SET_VRING_KICK, &kick) < 0 ||
		    ioctl(g.dev, VHOST_SET_VRING_CALL, &call) < 0)
			die("vring setup");
	}
	for (unsigned d = 0; d < QSIZE; d++) {
		vq_push(&g.vq[VQ_RX], (uint16_t)d);
		g.tx_free[g.n_tx_free++] = (uint16_t)(QSIZE - 1 - d);
	}
	if (ioctl(g.dev, VHOST_VSOCK_SET_GUEST_CID, &cid) < 0)
		die("VHOST_VSOCK_SET_GUEST_CID");
	if (ioctl(g.dev, VHOST_VSOCK_SET_RUNNING, &running) < 0)
		die("VHOST_VSOCK_SET_RUNNING");
	vq_kick(&g.vq[VQ_RX]);
}

static int unix_listen(uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock_%u", g.dir, (unsigned)port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		fprintf(stderr, PROG ": --dir %s: path too long\n", g.dir);
		exit(2);
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		die(sa.sun_path);
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " --cid N --dir DIR [--listen PORT]... [--device PATH]\n"
		   "       [--timeout MS] [--src-cid M] [--verbose]\n");
}

static bool parse_u32(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

int main(int argc, char **argv)
{
	const char *device = "/dev/vhost-vsock";
	uint32_t ports[MAX_LISTEN];
	unsigned n_ports = 0;
	struct pollfd *pfd = NULL;
	struct conn **pconn = NULL;
	size_t cap = 0;
	sigset_t mask;
	int sfd;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--verbose") == 0) {
			g.verbose = true;
		} else if (!v) {
			usage(stderr);
			return 2;
		} else if (strcmp(a, "--cid") == 0) {
			if (!parse_u32(v, &g.cid) || g.cid < 3 || g.cid == UINT32_MAX) {
				fprintf(stderr, PROG ": --cid %s: a number from 3 to %u\n", v, UINT32_MAX - 1);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--src-cid") == 0) {
			if (!parse_u32(v, &g.src_cid)) {
				fprintf(stderr, PROG ": --src-cid %s: not a number\n", v);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--timeout") == 0) {
			uint32_t t;

			if (!parse_u32(v, &t) || t < 10 || t > 3600000) {
				fprintf(stderr, PROG ": --timeout %s: 10 to 3600000 ms\n", v);
				return 2;
			}
			g.timeout_ms = t;
			i++;
		} else if (strcmp(a, "--dir") == 0) {
			g.dir = v;
			i++;
		} else if (strcmp(a, "--device") == 0) {
			device = v;
			i++;
		} else if (strcmp(a, "--listen") == 0) {
			if (n_ports == MAX_LISTEN || !parse_u32(v, &ports[n_ports])) {
				fprintf(stderr, PROG ": --listen %s: a port (at most %d)\n", v, MAX_LISTEN);
				return 2;
			}
			n_ports++;
			i++;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!g.cid || !g.dir) {
		usage(stderr);
		return 2;
	}
	if (!g.src_cid)
		g.src_cid = g.cid;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	for (unsigned i = 0; i < n_ports; i++) {
		g.listen_fd[i] = unix_listen(ports[i]);
		g.listen_port[i] = ports[i];
		g.n_listen++;
	}
	device_setup(device);
	printf(PROG ": cid %u ready\n", (unsigned)g.cid);
	fflush(stdout);

	for (;;) {
		size_t n = 0, want = 3 + g.n_listen;
		bool stop = false;

		for (struct conn *c = g.conns; c; c = c->next)
			want++;
		if (want > cap) {
			cap = want * 2;
			pfd = realloc(pfd, cap * sizeof(*pfd));
			pconn = realloc(pconn, cap * sizeof(*pconn));
			if (!pfd || !pconn)
				die("realloc");
		}
		pfd[n++] = (struct pollfd){ .fd = g.vq[VQ_RX].call, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = g.vq[VQ_TX].call, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (unsigned i = 0; i < g.n_listen; i++)
			pfd[n++] = (struct pollfd){ .fd = g.listen_fd[i], .events = POLLIN };
		for (struct conn *c = g.conns; c; c = c->next) {
			short ev = 0;

			if (c->dead || c->fd < 0)
				continue;
			if (c->state == C_HANDSHAKE)
				ev = POLLIN;
			if (c->state == C_OPEN) {
				if (c->out_len > 0)
					ev |= POLLOUT;
				if (!c->unix_eof && !c->pending && credit(c) > 0 && g.n_tx_free > 0)
					ev |= POLLIN;
			}
			/* waiting for credit or buffers: not polled (a hang-up
			 * would be reported over and over); looked at again
			 * when the host makes progress */
			if (c->state == C_OPEN && ev == 0 && !c->unix_eof)
				continue;
			pconn[n] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfd, (nfds_t)n, 200) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[2].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) > 0)
				stop = true;
		}
		if (stop)
			break;
		if (pfd[0].revents)
			drain_eventfd(g.vq[VQ_RX].call);
		if (pfd[1].revents)
			drain_eventfd(g.vq[VQ_TX].call);
		tx_reclaim();
		rx_process();
		for (unsigned i = 0; i < g.n_listen; i++)
			if (pfd[3 + i].revents)
				on_listen(i);
		for (size_t i = 3 + g.n_listen; i < n; i++)
			if (pfd[i].revents)
				on_unix(pconn[i], pfd[i].revents);
		/* connections the host gave credit to, without a poll event */
		for (int round = 0; round < 4; round++) {
			flush();
			for (struct conn *c = g.conns; c; c = c->next)
				if (!c->dead && c->state == C_OPEN && c->fd >= 0) {
					unix_write(c);
					if (!c->unix_eof)
						unix_read(c);
					conn_settle(c);
				}
			flush();
			vq_kick(&g.vq[VQ_TX]);
			vq_kick(&g.vq[VQ_RX]);
			tx_reclaim();
			rx_process();
		}
		sweep();
	}
	fprintf(stderr,
		PROG "[%u]: exiting: host connections %lu, guest connections %lu, resets sent %lu, "
		     "received %lu, bad packets %lu, bytes from host %llu, to host %llu\n",
		(unsigned)g.cid, g.n_host_conns, g.n_guest_conns, g.n_rst_sent, g.n_rst_rcvd, g.n_bad,
		(unsigned long long)g.bytes_in, (unsigned long long)g.bytes_out);
	for (unsigned i = 0; i < g.n_listen; i++) {
		char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

		snprintf(path, sizeof(path), "%s/vsock_%u", g.dir, (unsigned)g.listen_port[i]);
		unlink(path);
	}
	return 0;
}
