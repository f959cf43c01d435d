/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-vsock stream connections between the guest and host unix sockets
 * (the hybrid convention of Firecracker and Cloud Hypervisor).
 *
 *   guest -> host: REQUEST to CID 2 port P connects to "<uds>_P"; RST if
 *                  nobody listens there.
 *   host -> guest: a client connects to "<uds>", writes "CONNECT P\n"; we
 *                  send REQUEST from an ephemeral port L, and on RESPONSE
 *                  write "OK L\n" and join the streams; on RST we close.
 *
 * Flow control: we advertise VSD_BUF_ALLOC bytes per connection and never
 * hold more than that from the guest (a guest overrunning its credit is
 * reset); towards the guest we never send beyond the credit it advertised
 * (buf_alloc - (tx_cnt - fwd_cnt)).  Unix sockets are non-blocking and
 * edge-triggered; a connection with data ready sits on a round-robin list
 * served whenever the guest has posted receive buffers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vsockd.h"

#define HASH_BUCKETS 1024u

enum conn_state {
	CONN_CONNECTING, /* host-initiated: REQUEST queued or sent */
	CONN_ESTABLISHED,
	CONN_CLOSING,    /* RST queued; freed once it is sent */
};

enum {
	PEND_REQUEST = 1u << 0,
	PEND_RESPONSE = 1u << 1,
	PEND_SHUTDOWN = 1u << 2,
	PEND_CREDIT_UPDATE = 1u << 3,
	PEND_RST = 1u << 4,
};

struct conn {
	struct vsd_watch w;            /* kind VSD_W_CONN */
	struct conn *hnext;
	TAILQ_ENTRY(conn) ctl_link;    /* on ctl list if pending != 0 */
	TAILQ_ENTRY(conn) data_link;   /* on data list if in_data */
	bool in_data;
	TAILQ_ENTRY(conn) dirty_link;  /* forwarded bytes not yet reported */
	bool in_dirty;
	TAILQ_ENTRY(conn) connecting_link; /* host-initiated, awaiting the guest */
	bool in_connecting;
	int64_t deadline_ms;
	uint32_t local_port;           /* our port at CID 2 */
	uint32_t peer_port;            /* the guest's port */
	enum conn_state state;
	unsigned int pending;
	uint32_t shutdown_to_send;
	bool readable;                 /* edge seen, read not yet EAGAIN */
	bool local_eof;                /* unix side reached EOF */
	bool wr_shut;
	uint32_t peer_shut;            /* SHUTDOWN flags from the guest */
	/* guest -> host */
	uint32_t rx_cnt, fwd_cnt, fwd_reported;
	uint8_t *buf;
	size_t buf_off, buf_len, buf_cap;
	/* host -> guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
};

struct hostc {
	struct vsd_watch w;            /* kind VSD_W_HOST_PENDING */
	LIST_ENTRY(hostc) link;
};

struct rst_entry {
	uint32_t src_port, dst_port;   /* as sent by us */
};

struct vsd_vsock {
	uint64_t guest_cid;
	char *uds_path;
	int epfd;
	struct vsd_watch listen;       /* kind VSD_W_HOST_LISTEN */
	bool listening;
	struct conn *hash[HASH_BUCKETS];
	unsigned int nconns;
	TAILQ_HEAD(, conn) ctl;
	TAILQ_HEAD(, conn) data;
	TAILQ_HEAD(, conn) dirty;
	TAILQ_HEAD(, conn) connecting; /* in deadline order */
	unsigned int connect_timeout_ms;
	LIST_HEAD(, hostc) pending;
	unsigned int npending;
	struct rst_entry rst[VSD_RST_QUEUE];
	unsigned int rst_head, rst_count;
	uint32_t next_port;
	struct vsd_stats stats;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned int hash_key(uint32_t local, uint32_t peer)
{
	uint64_t k = ((uint64_t)local << 32) | peer;

	k *= 0x9e3779b97f4a7c15ull;
	return (unsigned int)(k >> 54) % HASH_BUCKETS;
}

static struct conn *conn_lookup(struct vsd_vsock *v, uint32_t local, uint32_t peer)
{
	for (struct conn *c = v->hash[hash_key(local, peer)]; c; c = c->hnext) {
		if (c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

int vsd_vsock_new(uint64_t guest_cid, const char *uds_path, int epfd, struct vsd_vsock **ret)
{
	struct vsd_vsock *v;
	struct sockaddr_un sun;

	/* "<uds>_4294967295" must fit into sun_path with its NUL. */
	if (!uds_path || !*uds_path || strlen(uds_path) + 12 > sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	if (guest_cid <= VSD_VSOCK_HOST_CID || guest_cid >= UINT32_MAX)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->uds_path = strdup(uds_path);
	if (!v->uds_path) {
		free(v);
		return -ENOMEM;
	}
	v->guest_cid = guest_cid;
	v->epfd = epfd;
	v->listen.kind = VSD_W_HOST_LISTEN;
	v->listen.fd = -1;
	TAILQ_INIT(&v->ctl);
	TAILQ_INIT(&v->data);
	TAILQ_INIT(&v->dirty);
	TAILQ_INIT(&v->connecting);
	v->connect_timeout_ms = VSD_CONNECT_TIMEOUT_MS;
	LIST_INIT(&v->pending);
	v->next_port = VSD_LOCAL_PORT_BASE;
	*ret = v;
	return 0;
}

static void hostc_free(struct vsd_vsock *v, struct hostc *h)
{
	LIST_REMOVE(h, link);
	v->npending--;
	close(h->w.fd);
	free(h);
}

static void conn_free(struct vsd_vsock *v, struct conn *c)
{
	struct conn **pp = &v->hash[hash_key(c->local_port, c->peer_port)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	if (c->pending)
		TAILQ_REMOVE(&v->ctl, c, ctl_link);
	if (c->in_data)
		TAILQ_REMOVE(&v->data, c, data_link);
	if (c->in_dirty)
		TAILQ_REMOVE(&v->dirty, c, dirty_link);
	if (c->in_connecting)
		TAILQ_REMOVE(&v->connecting, c, connecting_link);
	if (c->w.fd >= 0)
		close(c->w.fd);
	free(c->buf);
	free(c);
	v->nconns--;
}

void vsd_vsock_reset_all(struct vsd_vsock *v)
{
	for (unsigned int i = 0; i < HASH_BUCKETS; i++) {
		while (v->hash[i])
			conn_free(v, v->hash[i]);
	}
	v->rst_count = 0;
	v->next_port = VSD_LOCAL_PORT_BASE;
}

void vsd_vsock_free(struct vsd_vsock *v)
{
	if (!v)
		return;
	vsd_vsock_reset_all(v);
	while (!LIST_EMPTY(&v->pending))
		hostc_free(v, LIST_FIRST(&v->pending));
	if (v->listen.fd >= 0)
		close(v->listen.fd);
	free(v->uds_path);
	free(v);
}

const struct vsd_stats *vsd_vsock_stats(const struct vsd_vsock *v)
{
	return &v->stats;
}

unsigned int vsd_vsock_conn_count(const struct vsd_vsock *v)
{
	return v->nconns;
}

bool vsd_vsock_rx_pending(const struct vsd_vsock *v)
{
	return v->rst_count > 0 || !TAILQ_EMPTY(&v->ctl) || !TAILQ_EMPTY(&v->data);
}

static int fill_sun(struct sockaddr_un *sun, const char *base, bool with_port, uint32_t port)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (with_port)
		n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s_%u", base, port);
	else
		n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", base);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int vsd_vsock_listen(struct vsd_vsock *v)
{
	struct sockaddr_un sun;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &v->listen };
	int fd, r;

	r = fill_sun(&sun, v->uds_path, false, 0);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		goto err_close;
	}
	v->listening = true;
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		goto err_unlink;
	}
	v->listen.fd = fd;
	return 0;

err_unlink:
	unlink(sun.sun_path);
	v->listening = false;
err_close:
	close(fd);
	return r;
}

void vsd_vsock_unlink(struct vsd_vsock *v)
{
	if (v->listening) {
		unlink(v->uds_path);
		v->listening = false;
	}
}

/* ---- queues towards the guest ---- */

static void conn_pend(struct vsd_vsock *v, struct conn *c, unsigned int what)
{
	if (!c->pending)
		TAILQ_INSERT_TAIL(&v->ctl, c, ctl_link);
	c->pending |= what;
}

static uint32_t peer_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool conn_can_send_data(const struct conn *c)
{
	return c->state == CONN_ESTABLISHED && c->readable && !c->local_eof &&
	       !(c->peer_shut & VSD_SHUTDOWN_RCV) && peer_credit(c) > 0;
}

static void data_update(struct vsd_vsock *v, struct conn *c)
{
	bool want = conn_can_send_data(c);

	if (want && !c->in_data) {
		TAILQ_INSERT_TAIL(&v->data, c, data_link);
		c->in_data = true;
	} else if (!want && c->in_data) {
		TAILQ_REMOVE(&v->data, c, data_link);
		c->in_data = false;
	}
}

static void queue_rst_unknown(struct vsd_vsock *v, const struct vsd_pkt_hdr *untrusted_hdr)
{
	struct rst_entry *e;

	if (untrusted_hdr->op == VSD_OP_RST)
		return; /* never answer an RST with an RST */
	if (v->rst_count == VSD_RST_QUEUE) {
		v->stats.rst_dropped++;
		return;
	}
	e = &v->rst[(v->rst_head + v->rst_count) % VSD_RST_QUEUE];
	e->src_port = untrusted_hdr->dst_port;
	e->dst_port = untrusted_hdr->src_port;
	v->rst_count++;
}

/* Moves c to CLOSING with an RST on its way to the guest; the unix side is
 * closed at once so the host peer sees the end immediately. */
static void conn_reset(struct vsd_vsock *v, struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->in_connecting) {
		TAILQ_REMOVE(&v->connecting, c, connecting_link);
		c->in_connecting = false;
	}
	if (c->w.fd >= 0) {
		close(c->w.fd);
		c->w.fd = -1;
	}
	conn_pend(v, c, PEND_RST);
	data_update(v, c);
}

/*
 * Credit reports.  The guest learns our fwd_cnt from every packet we send;
 * on top of that a CREDIT_UPDATE goes out
 *  - once VSD_CREDIT_REPORT bytes were forwarded since the last report, so
 *    a streaming guest keeps sending while we keep up, and
 *  - whenever the guest has sent nothing for about a millisecond
 *    (vsd_vsock_flush_idle) or our buffer for the connection just
 *    emptied, and bytes were forwarded since the last report: a guest
 *    whose own send window is smaller than VSD_CREDIT_REPORT would
 *    otherwise wait forever.
 */
static void credit_check(struct vsd_vsock *v, struct conn *c)
{
	if (c->state != CONN_ESTABLISHED || c->fwd_cnt == c->fwd_reported)
		return;
	if (c->fwd_cnt - c->fwd_reported >= VSD_CREDIT_REPORT) {
		conn_pend(v, c, PEND_CREDIT_UPDATE);
	} else if (!c->in_dirty) {
		TAILQ_INSERT_TAIL(&v->dirty, c, dirty_link);
		c->in_dirty = true;
	}
}

/* The guest went quiet: report what was forwarded meanwhile. */
static void credit_flush_dirty(struct vsd_vsock *v)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&v->dirty))) {
		TAILQ_REMOVE(&v->dirty, c, dirty_link);
		c->in_dirty = false;
		if (c->state == CONN_ESTABLISHED && c->fwd_cnt != c->fwd_reported &&
		    !(c->pending & PEND_CREDIT_UPDATE))
			conn_pend(v, c, PEND_CREDIT_UPDATE);
	}
}

/* Both directions are finished once the guest shut down both ways and we
 * delivered everything it sent: answer with RST as the Linux transport
 * expects. */
static void close_check(struct vsd_vsock *v, struct conn *c)
{
	if (c->state == CONN_ESTABLISHED &&
	    c->peer_shut == (VSD_SHUTDOWN_RCV | VSD_SHUTDOWN_SEND) && c->buf_len == c->buf_off)
		conn_reset(v, c);
}

/* Writes buffered guest data to the unix socket. */
static void conn_flush(struct vsd_vsock *v, struct conn *c)
{
	while (c->buf_off < c->buf_len && c->w.fd >= 0) {
		ssize_t n = write(c->w.fd, c->buf + c->buf_off, c->buf_len - c->buf_off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_reset(v, c);
			return;
		}
		c->buf_off += (size_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->state != CONN_ESTABLISHED)
		return;
	if (c->buf_len > 0 && c->fwd_cnt != c->fwd_reported)
		conn_pend(v, c, PEND_CREDIT_UPDATE); /* a backlog just drained */
	c->buf_off = c->buf_len = 0;
	if ((c->peer_shut & VSD_SHUTDOWN_SEND) && !c->wr_shut) {
		shutdown(c->w.fd, SHUT_WR);
		c->wr_shut = true;
	}
	credit_check(v, c);
	close_check(v, c);
}

static int buf_append(struct conn *c, const struct iovec *iov, unsigned int n, size_t skip,
		      size_t len)
{
	size_t used = c->buf_len - c->buf_off;

	if (c->buf_off) {
		memmove(c->buf, c->buf + c->buf_off, used);
		c->buf_off = 0;
		c->buf_len = used;
	}
	if (used + len > c->buf_cap) {
		size_t cap = c->buf_cap ? c->buf_cap : 16384;
		uint8_t *nb;

		while (cap < used + len)
			cap *= 2;
		if (cap > VSD_BUF_ALLOC)
			cap = VSD_BUF_ALLOC;
		if (cap < used + len)
			return -ENOBUFS;
		nb = realloc(c->buf, cap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->buf_cap = cap;
	}
	vsd_iov_copy_from(iov, n, skip, c->buf + c->buf_len, len);
	c->buf_len += len;
	return 0;
}

static void rx_rw(struct vsd_vsock *v, struct conn *c, const struct iovec *untrusted_payload,
		  unsigned int n, uint32_t len)
{
	size_t done = 0;

	if (c->state != CONN_ESTABLISHED || (c->peer_shut & VSD_SHUTDOWN_SEND)) {
		conn_reset(v, c);
		return;
	}
	/* The guest may have at most VSD_BUF_ALLOC bytes not yet forwarded. */
	if ((uint64_t)(c->rx_cnt - c->fwd_cnt) + len > VSD_BUF_ALLOC) {
		v->stats.credit_violations++;
		conn_reset(v, c);
		return;
	}
	c->rx_cnt += len;
	if (c->buf_len == c->buf_off && len > 0) {
		ssize_t w;

		do {
			w = writev(c->w.fd, untrusted_payload, (int)n);
		} while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN) {
			conn_reset(v, c);
			return;
		}
		if (w > 0) {
			done = (size_t)w;
			c->fwd_cnt += (uint32_t)w;
		}
	}
	if (done < len && buf_append(c, untrusted_payload, n, done, len - done) < 0) {
		conn_reset(v, c);
		return;
	}
	credit_check(v, c);
}

static struct conn *conn_new(struct vsd_vsock *v, int fd, uint32_t local, uint32_t peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	unsigned int h;

	if (!c)
		return NULL;
	c->w.kind = VSD_W_CONN;
	c->w.fd = fd;
	c->local_port = local;
	c->peer_port = peer;
	h = hash_key(local, peer);
	c->hnext = v->hash[h];
	v->hash[h] = c;
	v->nconns++;
	v->stats.conns_opened++;
	return c;
}

static int conn_watch(struct vsd_vsock *v, struct conn *c, int op)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = &c->w,
	};

	return epoll_ctl(v->epfd, op, c->w.fd, &ev) < 0 ? -errno : 0;
}

static void rx_request(struct vsd_vsock *v, const struct vsd_pkt_hdr *hdr)
{
	struct sockaddr_un sun;
	struct conn *c;
	int fd;

	if (v->nconns >= VSD_MAX_CONNS || fill_sun(&sun, v->uds_path, true, hdr->dst_port) < 0)
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	/* A unix connect completes at once or fails; EAGAIN (full backlog)
	 * is a refusal like any other. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		goto refuse;
	}
	c = conn_new(v, fd, hdr->dst_port, hdr->src_port);
	if (!c) {
		close(fd);
		goto refuse;
	}
	c->state = CONN_ESTABLISHED;
	c->peer_buf_alloc = hdr->buf_alloc;
	c->peer_fwd_cnt = hdr->fwd_cnt;
	c->readable = true;
	if (conn_watch(v, c, EPOLL_CTL_ADD) < 0) {
		conn_free(v, c);
		goto refuse;
	}
	conn_pend(v, c, PEND_RESPONSE);
	data_update(v, c);
	return;

refuse:
	queue_rst_unknown(v, hdr);
}

static void rx_response(struct vsd_vsock *v, struct conn *c)
{
	char line[24];
	int len;
	ssize_t w;

	if (c->state != CONN_CONNECTING || (c->pending & PEND_REQUEST)) {
		conn_reset(v, c);
		return;
	}
	c->state = CONN_ESTABLISHED;
	if (c->in_connecting) {
		TAILQ_REMOVE(&v->connecting, c, connecting_link);
		c->in_connecting = false;
	}
	len = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	do {
		w = write(c->w.fd, line, (size_t)len);
	} while (w < 0 && errno == EINTR);
	if (w != len) {
		/* A fresh socket takes a few bytes; if it does not, the
		 * client is gone. */
		conn_reset(v, c);
		return;
	}
	c->readable = true;
	data_update(v, c);
}

void vsd_vsock_handle_tx(struct vsd_vsock *v, const struct vsd_pkt_hdr *untrusted_hdr,
			 const struct iovec *untrusted_payload, unsigned int n)
{
	const struct vsd_pkt_hdr *h;
	struct conn *c;

	/* Validation block: identity comes from the transport, not the
	 * packet; only the guest's own CID, only the host as destination,
	 * only stream sockets, no payload except on RW (its length was
	 * checked against the chain by the caller).  Ports and op are
	 * free-form: any value is handled below. */
	if (untrusted_hdr->src_cid != v->guest_cid) {
		v->stats.bad_packets++;
		return; /* spoofed source: drop silently */
	}
	if (untrusted_hdr->dst_cid != VSD_VSOCK_HOST_CID ||
	    untrusted_hdr->type != VSD_VSOCK_TYPE_STREAM ||
	    (untrusted_hdr->op != VSD_OP_RW && untrusted_hdr->len != 0)) {
		v->stats.bad_packets++;
		queue_rst_unknown(v, untrusted_hdr);
		return;
	}
	h = untrusted_hdr; /* validated */

	c = conn_lookup(v, h->dst_port, h->src_port);
	if (!c) {
		if (h->op == VSD_OP_REQUEST)
			rx_request(v, h);
		else
			queue_rst_unknown(v, h);
		return;
	}
	if (c->state == CONN_CLOSING) {
		if (h->op == VSD_OP_RST)
			conn_free(v, c); /* RST crossed ours: done */
		return;
	}

	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;

	switch (h->op) {
	case VSD_OP_REQUEST:
		conn_reset(v, c); /* duplicate */
		return;
	case VSD_OP_RESPONSE:
		rx_response(v, c);
		break;
	case VSD_OP_RST:
		conn_free(v, c);
		return;
	case VSD_OP_SHUTDOWN:
		if (c->state != CONN_ESTABLISHED) {
			conn_reset(v, c);
			return;
		}
		c->peer_shut |= h->flags & (VSD_SHUTDOWN_RCV | VSD_SHUTDOWN_SEND);
		if (h->flags & VSD_SHUTDOWN_RCV)
			shutdown(c->w.fd, SHUT_RD);
		conn_flush(v, c);
		break;
	case VSD_OP_RW:
		rx_rw(v, c, untrusted_payload, n, h->len);
		break;
	case VSD_OP_CREDIT_UPDATE:
		break;
	case VSD_OP_CREDIT_REQUEST:
		if (c->state == CONN_ESTABLISHED)
			conn_pend(v, c, PEND_CREDIT_UPDATE);
		break;
	default:
		v->stats.bad_packets++;
		conn_reset(v, c);
		return;
	}
	if (c->state == CONN_ESTABLISHED)
		data_update(v, c);
}

bool vsd_vsock_process_tx(struct vsd_vsock *v, struct vsd_dev *dev)
{
	struct vsd_vring *vr = &dev->vq[VSD_VQ_TX];
	struct vsd_chain *ch = NULL;
	bool more = false;

	ch = malloc(sizeof(*ch));
	if (!ch)
		return true;
	for (unsigned int budget = 0;; budget++) {
		uint8_t untrusted_wire[VSD_VSOCK_HDR_SIZE];
		struct vsd_pkt_hdr untrusted_hdr;
		struct iovec payload[VSD_CHAIN_MAX_IOV];
		unsigned int np;
		int r;

		if (budget == 256) {
			more = true; /* let other sources run; come back */
			break;
		}
		if (budget == 0)
			(void)vsd_vring_set_notify(vr, false);
		r = vsd_vring_pop(vr, &dev->mem, vsd_dev_indirect(dev), ch);
		if (r == -EINVAL) {
			v->stats.bad_chains++;
			continue;
		}
		if (r == -EAGAIN && vsd_vring_set_notify(vr, true)) {
			(void)vsd_vring_set_notify(vr, false);
			continue; /* raced with the guest: more arrived */
		}
		if (r < 0)
			break;
		if (ch->out_len < VSD_VSOCK_HDR_SIZE) {
			v->stats.bad_chains++;
			vsd_vring_push(vr, ch->head, 0);
			continue;
		}
		vsd_iov_copy_from(ch->out, ch->n_out, 0, untrusted_wire, sizeof(untrusted_wire));
		vsd_pkt_hdr_decode(untrusted_wire, &untrusted_hdr);
		if (untrusted_hdr.len > VSD_MAX_PKT_PAYLOAD ||
		    untrusted_hdr.len > ch->out_len - VSD_VSOCK_HDR_SIZE) {
			struct conn *c;

			v->stats.bad_packets++;
			c = untrusted_hdr.src_cid == v->guest_cid
				    ? conn_lookup(v, untrusted_hdr.dst_port, untrusted_hdr.src_port)
				    : NULL;
			if (c)
				conn_reset(v, c);
			else if (untrusted_hdr.src_cid == v->guest_cid)
				queue_rst_unknown(v, &untrusted_hdr);
			vsd_vring_push(vr, ch->head, 0);
			continue;
		}
		np = vsd_iov_slice(ch->out, ch->n_out, VSD_VSOCK_HDR_SIZE, untrusted_hdr.len, payload,
				   VSD_CHAIN_MAX_IOV);
		vsd_vsock_handle_tx(v, &untrusted_hdr, payload, np);
		vsd_vring_push(vr, ch->head, 0);
	}
	free(ch);
	/* Completions of tx buffers only let the guest free memory: signal
	 * them per quarter ring, the rest when the loop goes idle
	 * (vsd_vsock_flush_idle), sparing the guest an interrupt per packet. */
	if (vr->pushed >= vr->num / 4)
		vsd_vring_notify(vr);
	return more;
}

bool vsd_vsock_idle_work(const struct vsd_vsock *v, const struct vsd_dev *dev)
{
	return !TAILQ_EMPTY(&v->dirty) || dev->vq[VSD_VQ_TX].pushed > 0;
}

void vsd_vsock_flush_idle(struct vsd_vsock *v, struct vsd_dev *dev)
{
	credit_flush_dirty(v);
	vsd_vring_notify(&dev->vq[VSD_VQ_TX]);
	vsd_vsock_process_rx(v, dev);
}

static void hdr_for(const struct vsd_vsock *v, struct vsd_pkt_hdr *h, struct conn *c,
		    uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSD_VSOCK_HOST_CID;
	h->dst_cid = v->guest_cid;
	h->type = VSD_VSOCK_TYPE_STREAM;
	h->op = op;
	if (c) {
		h->src_port = c->local_port;
		h->dst_port = c->peer_port;
		h->buf_alloc = VSD_BUF_ALLOC;
		h->fwd_cnt = c->fwd_cnt;
		c->fwd_reported = c->fwd_cnt;
	}
}

/* Picks the control packet for c (highest priority first) and clears it.
 * Returns false if c has nothing left. */
static bool ctl_next(const struct vsd_vsock *v, struct conn *c, struct vsd_pkt_hdr *h,
		     bool *free_after)
{
	*free_after = false;
	if (c->pending & PEND_RST) {
		hdr_for(v, h, c, VSD_OP_RST);
		c->pending = 0;
		*free_after = true;
		return true;
	}
	if (c->pending & PEND_REQUEST) {
		hdr_for(v, h, c, VSD_OP_REQUEST);
		c->pending &= ~PEND_REQUEST;
		return true;
	}
	if (c->pending & PEND_RESPONSE) {
		hdr_for(v, h, c, VSD_OP_RESPONSE);
		c->pending &= ~PEND_RESPONSE;
		return true;
	}
	if (c->pending & PEND_SHUTDOWN) {
		hdr_for(v, h, c, VSD_OP_SHUTDOWN);
		h->flags = c->shutdown_to_send;
		c->pending &= ~PEND_SHUTDOWN;
		return true;
	}
	if (c->pending & PEND_CREDIT_UPDATE) {
		hdr_for(v, h, c, VSD_OP_CREDIT_UPDATE);
		c->pending &= ~PEND_CREDIT_UPDATE;
		return true;
	}
	c->pending = 0;
	return false;
}

static void put_hdr(struct vsd_vring *vr, const struct vsd_chain *ch, const struct vsd_pkt_hdr *h)
{
	uint8_t wire[VSD_VSOCK_HDR_SIZE];

	vsd_pkt_hdr_encode(h, wire);
	vsd_iov_copy_to(ch->in, ch->n_in, 0, wire, sizeof(wire));
	vsd_vring_push(vr, ch->head, VSD_VSOCK_HDR_SIZE + h->len);
}

enum send_result {
	SEND_USED,  /* chain pushed */
	SEND_RETRY, /* chain untouched, c left the data list */
	SEND_STALL, /* chain too small for any data: wait for more buffers */
};

/* Fills one rx chain with data from c. */
static enum send_result send_data(struct vsd_vsock *v, struct vsd_vring *vr, const struct vsd_chain *ch,
		      struct conn *c)
{
	struct iovec iov[VSD_CHAIN_MAX_IOV];
	struct vsd_pkt_hdr h;
	size_t room = ch->in_len - VSD_VSOCK_HDR_SIZE;
	uint32_t credit = peer_credit(c);
	unsigned int n;
	ssize_t r;

	if (room > credit)
		room = credit;
	if (room > VSD_MAX_PKT_PAYLOAD)
		room = VSD_MAX_PKT_PAYLOAD;
	if (room == 0)
		return SEND_STALL;
	n = vsd_iov_slice(ch->in, ch->n_in, VSD_VSOCK_HDR_SIZE, room, iov, VSD_CHAIN_MAX_IOV);
	do {
		r = readv(c->w.fd, iov, (int)n);
	} while (r < 0 && errno == EINTR);
	if (r > 0) {
		hdr_for(v, &h, c, VSD_OP_RW);
		h.len = (uint32_t)r;
		c->tx_cnt += (uint32_t)r;
		put_hdr(vr, ch, &h);
		/* round robin: go to the back of the line */
		TAILQ_REMOVE(&v->data, c, data_link);
		TAILQ_INSERT_TAIL(&v->data, c, data_link);
		data_update(v, c);
		return SEND_USED;
	}
	if (r == 0) {
		c->local_eof = true;
		data_update(v, c);
		hdr_for(v, &h, c, VSD_OP_SHUTDOWN);
		h.flags = VSD_SHUTDOWN_SEND;
		put_hdr(vr, ch, &h);
		return SEND_USED;
	}
	if (errno == EAGAIN) {
		c->readable = false;
		data_update(v, c);
		return SEND_RETRY;
	}
	hdr_for(v, &h, c, VSD_OP_RST);
	put_hdr(vr, ch, &h);
	v->stats.rst_sent++;
	conn_free(v, c);
	return SEND_USED;
}

void vsd_vsock_process_rx(struct vsd_vsock *v, struct vsd_dev *dev)
{
	struct vsd_vring *vr = &dev->vq[VSD_VQ_RX];
	struct vsd_chain *ch;

	if (!vsd_vsock_rx_pending(v) || !vsd_vring_ready(vr))
		return;
	ch = malloc(sizeof(*ch));
	if (!ch)
		return;
	while (vsd_vsock_rx_pending(v)) {
		struct vsd_pkt_hdr h;
		int r = vsd_vring_pop(vr, &dev->mem, vsd_dev_indirect(dev), ch);

		if (r == -EINVAL) {
			v->stats.bad_chains++;
			continue;
		}
		if (r < 0)
			break;
		if (ch->in_len < VSD_VSOCK_HDR_SIZE || ch->n_out != 0) {
			v->stats.bad_chains++;
			vsd_vring_push(vr, ch->head, 0);
			continue;
		}
		if (v->rst_count) {
			struct rst_entry *e = &v->rst[v->rst_head];

			hdr_for(v, &h, NULL, VSD_OP_RST);
			h.src_port = e->src_port;
			h.dst_port = e->dst_port;
			v->rst_head = (v->rst_head + 1) % VSD_RST_QUEUE;
			v->rst_count--;
			v->stats.rst_sent++;
			put_hdr(vr, ch, &h);
			continue;
		}
		if (!TAILQ_EMPTY(&v->ctl)) {
			struct conn *c = TAILQ_FIRST(&v->ctl);
			bool free_after;

			if (!ctl_next(v, c, &h, &free_after)) {
				TAILQ_REMOVE(&v->ctl, c, ctl_link);
				vsd_vring_unpop(vr);
				continue;
			}
			if (!c->pending)
				TAILQ_REMOVE(&v->ctl, c, ctl_link);
			put_hdr(vr, ch, &h);
			if (free_after) {
				v->stats.rst_sent++;
				conn_free(v, c);
			}
			continue;
		}
		enum send_result sr = send_data(v, vr, ch, TAILQ_FIRST(&v->data));

		if (sr == SEND_USED)
			continue;
		vsd_vring_unpop(vr);
		if (sr == SEND_STALL)
			break;
	}
	free(ch);
	vsd_vring_notify(vr);
}

static uint32_t alloc_port(struct vsd_vsock *v, uint32_t peer)
{
	for (;;) {
		uint32_t p = v->next_port++;

		if (v->next_port == UINT32_MAX)
			v->next_port = VSD_LOCAL_PORT_BASE;
		if (!conn_lookup(v, p, peer))
			return p;
	}
}

static void host_accept(struct vsd_vsock *v)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		struct hostc *h;
		int fd = accept4(v->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return; /* EAGAIN, or a transient error: try on the next event */
		if (v->npending >= VSD_MAX_PENDING_HOST || !(h = calloc(1, sizeof(*h)))) {
			close(fd);
			continue;
		}
		h->w.kind = VSD_W_HOST_PENDING;
		h->w.fd = fd;
		ev.data.ptr = &h->w;
		if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(h);
			continue;
		}
		LIST_INSERT_HEAD(&v->pending, h, link);
		v->npending++;
	}
}

static void host_pending_read(struct vsd_vsock *v, struct hostc *h)
{
	char line[VSD_CONNECT_LINE_MAX];
	char *nl;
	ssize_t n;
	uint32_t port;
	struct conn *c;
	int fd = h->w.fd;

	n = recv(fd, line, sizeof(line), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		goto drop;
	nl = memchr(line, '\n', (size_t)n);
	if (!nl) {
		if ((size_t)n == sizeof(line))
			goto drop; /* no newline where one must be */
		return;        /* wait for the rest of the line */
	}
	/* Consume exactly the line; whatever follows is stream data. */
	if (recv(fd, line, (size_t)(nl - line + 1), 0) != nl - line + 1)
		goto drop;
	if (vsd_parse_connect_line(line, (size_t)(nl - line + 1), &port) < 0)
		goto drop;
	if (v->nconns >= VSD_MAX_CONNS)
		goto drop;
	c = conn_new(v, fd, alloc_port(v, port), port);
	if (!c)
		goto drop;
	c->state = CONN_CONNECTING;
	LIST_REMOVE(h, link);
	v->npending--;
	free(h);
	if (conn_watch(v, c, EPOLL_CTL_MOD) < 0) {
		conn_free(v, c);
		return;
	}
	conn_pend(v, c, PEND_REQUEST);
	if (v->connect_timeout_ms) {
		c->deadline_ms = now_ms() + v->connect_timeout_ms;
		TAILQ_INSERT_TAIL(&v->connecting, c, connecting_link);
		c->in_connecting = true;
	}
	return;

drop:
	hostc_free(v, h);
}

static void conn_event(struct vsd_vsock *v, struct conn *c, uint32_t events)
{
	if (c->state == CONN_CLOSING)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		c->readable = true;
		if (c->state == CONN_CONNECTING && (events & (EPOLLHUP | EPOLLERR))) {
			/* client gave up before the guest answered */
			conn_reset(v, c);
			return;
		}
	}
	if ((events & EPOLLOUT) && c->state == CONN_ESTABLISHED)
		conn_flush(v, c);
	if (c->state == CONN_ESTABLISHED)
		data_update(v, c);
}

void vsd_vsock_handle_event(struct vsd_vsock *v, struct vsd_watch *w, uint32_t events)
{
	switch (w->kind) {
	case VSD_W_HOST_LISTEN:
		host_accept(v);
		break;
	case VSD_W_HOST_PENDING:
		host_pending_read(v, (struct hostc *)(void *)w);
		break;
	case VSD_W_CONN:
		conn_event(v, (struct conn *)(void *)w, events);
		break;
	default:
		break;
	}
}

void vsd_vsock_set_connect_timeout(struct vsd_vsock *v, unsigned int ms)
{
	v->connect_timeout_ms = ms;
}

int vsd_vsock_expire(struct vsd_vsock *v)
{
	int64_t now = now_ms();
	struct conn *c;

	while ((c = TAILQ_FIRST(&v->connecting))) {
		if (c->deadline_ms > now) {
			int64_t left = c->deadline_ms - now;

			return left > INT32_MAX ? INT32_MAX : (int)left;
		}
		/* The guest neither accepted nor refused in time: the host
		 * client is closed, the guest told to forget the request. */
		v->stats.connect_timeouts++;
		conn_reset(v, c);
	}
	return -1;
}
