/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fake vhost-user front-end for qube-vsockd: plays QEMU (memfd guest RAM,
 * the vhost-user handshake, split virtqueues) and the guest's vsock driver
 * (packets on the rx/tx queues), against the real qube-vsockd binary and
 * real unix sockets.  No QEMU, no guest kernel: this runs in seconds.
 *
 *   vsockd-frontend-test /path/to/qube-vsockd
 *
 * Covers the data path (both directions, half-close, credit in both
 * directions, 64 concurrent connections) and hostile input: malformed
 * descriptor chains, addresses outside guest RAM, loops, bad indirect
 * tables, oversized packets, packets for unknown connections, spoofed
 * CIDs, corrupt ring indices, malformed vhost-user messages.
 */
#include <dirent.h>
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vsockd.h"

#define CID 7u
#define RAM_SIZE (32u << 20)
#define REGION_SPLIT (16u << 20)
#define QNUM 128u
#define RX_DESC 0x1000u
#define RX_AVAIL 0x2000u
#define RX_USED 0x3000u
#define TX_DESC 0x5000u
#define TX_AVAIL 0x6000u
#define TX_USED 0x7000u
#define RX_BUF 0x100000u /* QNUM buffers of RX_BUF_SIZE */
#define RX_BUF_SIZE 0x2000u
#define RX_BUF_LEN (VSD_VSOCK_HDR_SIZE + 4096u)
#define TX_BUF 0x400000u /* header + payload area */
#define TX_SLOT 0x20000u
#define TX_SLOTS 32u
#define SCRATCH 0x1400000u /* hostile tables; REGION_SPLIT is inside */
#define TIMEOUT_MS 20000

static const char *daemon_bin;
static pid_t live_daemon; /* killed if a check fails */

static char live_dir[64]; /* removed at exit, also after a failed check */

static void kill_live_daemon(void)
{
	DIR *d;

	if (live_daemon > 0) {
		kill(live_daemon, SIGKILL);
		waitpid(live_daemon, NULL, 0);
	}
	if (live_dir[0] && (d = opendir(live_dir))) {
		struct dirent *e;

		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
		rmdir(live_dir);
	}
}
static const char *current_test = "setup";

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "FAIL %s: %s:%d: %s\n", current_test, __FILE__,     \
				__LINE__, #cond);                                           \
			exit(1);                                                            \
		}                                                                           \
	} while (0)

struct ring {
	uint32_t desc, avail, used; /* gpa */
	uint16_t avail_idx;
	uint16_t used_seen;
	int kick, call;
};

struct fe {
	char dir[64];
	char vu_path[96];
	char uds[80];
	pid_t pid;
	int sock;
	int memfd;
	uint8_t *ram;
	struct ring rx, tx;
	unsigned int tx_slot;
};

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- vhost-user messages ---- */

static void vu_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		    const int *fds, int nfds)
{
	uint8_t buf[VSD_VU_HDR_SIZE + 4096];
	union {
		struct cmsghdr a;
		uint8_t b[CMSG_SPACE(sizeof(int) * 16)];
	} cb;
	struct iovec iov = { buf, VSD_VU_HDR_SIZE + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	CHECK(size <= 4096);
	put32(buf, req);
	put32(buf + 4, VSD_VU_VERSION | flags);
	put32(buf + 8, size);
	if (size)
		memcpy(buf + VSD_VU_HDR_SIZE, payload, size);
	if (nfds) {
		struct cmsghdr *c;

		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	CHECK(sendmsg(f->sock, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len);
}

static void read_exact(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		CHECK(poll(&p, 1, TIMEOUT_MS) == 1);
		n = read(fd, (uint8_t *)buf + done, len - done);
		CHECK(n > 0);
		done += (size_t)n;
	}
}

/* Reads a reply to req; returns its payload size. */
static uint32_t vu_reply(struct fe *f, uint32_t req, void *payload, uint32_t max)
{
	uint8_t hdr[VSD_VU_HDR_SIZE];
	uint32_t size;

	read_exact(f->sock, hdr, sizeof(hdr));
	CHECK(get32(hdr) == req);
	CHECK(get32(hdr + 4) == (VSD_VU_VERSION | VSD_VU_FLAG_REPLY));
	size = get32(hdr + 8);
	CHECK(size <= max);
	read_exact(f->sock, payload, size);
	return size;
}

static uint64_t vu_get_u64(struct fe *f, uint32_t req)
{
	uint64_t v = 0;

	vu_send(f, req, 0, NULL, 0, NULL, 0);
	CHECK(vu_reply(f, req, &v, 8) == 8);
	return v;
}

/* Sends with NEED_REPLY; returns the ack value (0 success). */
static uint64_t vu_call(struct fe *f, uint32_t req, const void *payload, uint32_t size,
			const int *fds, int nfds)
{
	uint64_t v = 99;

	vu_send(f, req, VSD_VU_FLAG_NEED_REPLY, payload, size, fds, nfds);
	CHECK(vu_reply(f, req, &v, 8) == 8);
	return v;
}

static uint64_t vu_state(struct fe *f, uint32_t req, uint32_t idx, uint32_t num)
{
	uint8_t p[8];

	put32(p, idx);
	put32(p + 4, num);
	return vu_call(f, req, p, 8, NULL, 0);
}

static uint64_t vu_fd(struct fe *f, uint32_t req, uint32_t idx, int fd)
{
	uint8_t p[8];

	put64(p, idx | (fd < 0 ? VSD_VU_VRING_NOFD : 0));
	return vu_call(f, req, p, 8, fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

static void ring_start(struct fe *f, unsigned int idx, struct ring *r)
{
	uint8_t a[40];

	CHECK(vu_state(f, VSD_VU_SET_VRING_NUM, idx, QNUM) == 0);
	CHECK(vu_state(f, VSD_VU_SET_VRING_BASE, idx, r->used_seen) == 0);
	put32(a, idx);
	put32(a + 4, 0);
	put64(a + 8, (uint64_t)(uintptr_t)(f->ram + r->desc));
	put64(a + 16, (uint64_t)(uintptr_t)(f->ram + r->used));
	put64(a + 24, (uint64_t)(uintptr_t)(f->ram + r->avail));
	put64(a + 32, 0);
	CHECK(vu_call(f, VSD_VU_SET_VRING_ADDR, a, 40, NULL, 0) == 0);
	CHECK(vu_fd(f, VSD_VU_SET_VRING_CALL, idx, r->call) == 0);
	CHECK(vu_fd(f, VSD_VU_SET_VRING_KICK, idx, r->kick) == 0);
	CHECK(vu_state(f, VSD_VU_SET_VRING_ENABLE, idx, 1) == 0);
}

static void set_mem_table(struct fe *f)
{
	uint8_t p[8 + 64];
	int fds[2] = { f->memfd, f->memfd };

	/* Two regions of the same memfd, so chains spanning them are
	 * testable: [0, SPLIT) and [SPLIT, RAM_SIZE). */
	memset(p, 0, sizeof(p));
	put32(p, 2);
	put64(p + 8, 0);
	put64(p + 16, REGION_SPLIT);
	put64(p + 24, (uint64_t)(uintptr_t)f->ram);
	put64(p + 32, 0);
	put64(p + 40, REGION_SPLIT);
	put64(p + 48, RAM_SIZE - REGION_SPLIT);
	put64(p + 56, (uint64_t)(uintptr_t)(f->ram + REGION_SPLIT));
	put64(p + 64, REGION_SPLIT);
	CHECK(vu_call(f, VSD_VU_SET_MEM_TABLE, p, sizeof(p), fds, 2) == 0);
}

/* ---- the guest side of the rings ---- */

static void ring_add(struct fe *f, struct ring *r, uint16_t head)
{
	uint8_t *avail = f->ram + r->avail;

	put16(avail + 4 + 2u * (r->avail_idx % QNUM), head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	r->avail_idx++;
	put16(avail + 2, r->avail_idx);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void kick(struct ring *r)
{
	uint64_t one = 1;

	CHECK(write(r->kick, &one, 8) == 8);
}

static void set_desc(struct fe *f, uint32_t table, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = f->ram + table + 16u * i;

	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

static void rx_post(struct fe *f, unsigned int i)
{
	set_desc(f, f->rx.desc, i, RX_BUF + (uint64_t)i * RX_BUF_SIZE, RX_BUF_LEN,
		 VSD_VRING_DESC_F_WRITE, 0);
	ring_add(f, &f->rx, (uint16_t)i);
}

/* Waits until the device used an entry on r; returns false on timeout. */
static bool used_wait(struct fe *f, struct ring *r, int timeout_ms, uint32_t *id, uint32_t *len)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		uint16_t idx = __atomic_load_n((uint16_t *)(void *)(f->ram + r->used + 2),
					       __ATOMIC_ACQUIRE);

		if (idx != r->used_seen) {
			uint8_t *e = f->ram + r->used + 4 + 8u * (r->used_seen % QNUM);

			*id = get32(e);
			*len = get32(e + 4);
			r->used_seen++;
			return true;
		}
		int64_t left = end - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = { r->call, POLLIN, 0 };
		if (poll(&p, 1, (int)(left < 50 ? left : 50)) == 1) {
			uint64_t v;
			if (read(r->call, &v, 8) < 0) {
				/* counter raced to zero: just look again */
			}
		}
	}
}

struct pkt {
	struct vsd_pkt_hdr h;
	uint8_t data[4096];
};

/* CREDIT_UPDATEs may come after any data the guest sent; most checks
 * look past them. */
static bool skip_credit_updates = true;

static bool rx_recv_timeout(struct fe *f, struct pkt *p, int timeout_ms)
{
	uint32_t id, len;

again:
	if (!used_wait(f, &f->rx, timeout_ms, &id, &len))
		return false;
	CHECK(id < QNUM);
	CHECK(len >= VSD_VSOCK_HDR_SIZE && len <= RX_BUF_LEN);
	vsd_pkt_hdr_decode(f->ram + RX_BUF + id * RX_BUF_SIZE, &p->h);
	CHECK(p->h.len == len - VSD_VSOCK_HDR_SIZE);
	CHECK(p->h.src_cid == VSD_VSOCK_HOST_CID && p->h.dst_cid == CID);
	CHECK(p->h.type == VSD_VSOCK_TYPE_STREAM);
	memcpy(p->data, f->ram + RX_BUF + id * RX_BUF_SIZE + VSD_VSOCK_HDR_SIZE, p->h.len);
	rx_post(f, id);
	kick(&f->rx);
	if (skip_credit_updates && p->h.op == VSD_OP_CREDIT_UPDATE)
		goto again;
	return true;
}

static void rx_recv(struct fe *f, struct pkt *p)
{
	CHECK(rx_recv_timeout(f, p, TIMEOUT_MS));
}

static void rx_expect(struct fe *f, struct pkt *p, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	rx_recv(f, p);
	if (p->h.op != op || p->h.src_port != src_port || p->h.dst_port != dst_port)
		fprintf(stderr, "%s: got op %u %u->%u, want op %u %u->%u\n", current_test,
			p->h.op, p->h.src_port, p->h.dst_port, op, src_port, dst_port);
	CHECK(p->h.op == op && p->h.src_port == src_port && p->h.dst_port == dst_port);
}

struct txopt {
	uint64_t src_cid;
	uint32_t buf_alloc, fwd_cnt, flags;
	uint32_t hdr_len; /* if nonzero, overrides len in the header */
};

/* Sends one packet as the guest (header and payload in two descriptors)
 * and waits until the device consumed it. */
static void tx_send_opt(struct fe *f, uint16_t op, uint32_t src_port, uint32_t dst_port,
			const void *data, uint32_t len, const struct txopt *o)
{
	struct vsd_pkt_hdr h = {
		.src_cid = o && o->src_cid ? o->src_cid : CID,
		.dst_cid = VSD_VSOCK_HOST_CID,
		.src_port = src_port,
		.dst_port = dst_port,
		.len = o && o->hdr_len ? o->hdr_len : len,
		.type = VSD_VSOCK_TYPE_STREAM,
		.op = op,
		.flags = o ? o->flags : 0,
		.buf_alloc = o && o->buf_alloc ? o->buf_alloc : 1u << 20,
		.fwd_cnt = o ? o->fwd_cnt : 0,
	};
	uint32_t base = TX_BUF + (f->tx_slot % TX_SLOTS) * TX_SLOT;
	uint16_t d0 = (uint16_t)((f->tx_slot * 2) % QNUM);
	uint32_t id, ulen;

	CHECK(len + VSD_VSOCK_HDR_SIZE <= TX_SLOT);
	f->tx_slot++;
	vsd_pkt_hdr_encode(&h, f->ram + base);
	if (len)
		memcpy(f->ram + base + VSD_VSOCK_HDR_SIZE, data, len);
	if (len) {
		set_desc(f, f->tx.desc, d0, base, VSD_VSOCK_HDR_SIZE, VSD_VRING_DESC_F_NEXT,
			 (uint16_t)(d0 + 1));
		set_desc(f, f->tx.desc, d0 + 1u, base + VSD_VSOCK_HDR_SIZE, len, 0, 0);
	} else {
		set_desc(f, f->tx.desc, d0, base, VSD_VSOCK_HDR_SIZE, 0, 0);
	}
	ring_add(f, &f->tx, d0);
	kick(&f->tx);
	CHECK(used_wait(f, &f->tx, TIMEOUT_MS, &id, &ulen));
	CHECK(id == d0);
}

static void tx_send(struct fe *f, uint16_t op, uint32_t src_port, uint32_t dst_port,
		    const void *data, uint32_t len)
{
	tx_send_opt(f, op, src_port, dst_port, data, len, NULL);
}

/* Puts a raw chain starting at descriptor head on the tx ring and checks
 * the device returned it with length 0. */
static void tx_raw(struct fe *f, uint16_t head)
{
	uint32_t id, len;

	ring_add(f, &f->tx, head);
	kick(&f->tx);
	CHECK(used_wait(f, &f->tx, TIMEOUT_MS, &id, &len));
	CHECK(id == head && len == 0);
}

/* ---- process and socket helpers ---- */

static void start_daemon(struct fe *f)
{
	char cid[16];
	int64_t end;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/vsockd-test.XXXXXX");
	CHECK(mkdtemp(f->dir));
	snprintf(live_dir, sizeof(live_dir), "%s", f->dir);
	snprintf(f->vu_path, sizeof(f->vu_path), "%s/vhost.sock", f->dir);
	snprintf(f->uds, sizeof(f->uds), "%s/vsock", f->dir);
	snprintf(cid, sizeof(cid), "%u", CID);
	f->pid = fork();
	CHECK(f->pid >= 0);
	live_daemon = f->pid;
	if (f->pid == 0) {
		execl(daemon_bin, daemon_bin, "--socket", f->vu_path, "--guest-cid", cid,
		      "--uds-path", f->uds, "--connect-timeout", "1500", "--verbose", (char *)NULL);
		_exit(127);
	}
	f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(f->sock >= 0);
	end = now_ms() + TIMEOUT_MS;
	for (;;) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->vu_path);
		if (connect(f->sock, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		CHECK(now_ms() < end);
		CHECK(waitpid(f->pid, NULL, WNOHANG) == 0);
		usleep(10000);
	}
}

static void setup_device(struct fe *f)
{
	uint64_t feat, pfeat;
	uint8_t cfg[12 + 8], out[12 + 8];

	f->memfd = memfd_create("guest-ram", MFD_CLOEXEC);
	CHECK(f->memfd >= 0);
	CHECK(ftruncate(f->memfd, RAM_SIZE) == 0);
	f->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	CHECK(f->ram != MAP_FAILED);
	f->rx = (struct ring){ RX_DESC, RX_AVAIL, RX_USED, 0, 0, -1, -1 };
	f->tx = (struct ring){ TX_DESC, TX_AVAIL, TX_USED, 0, 0, -1, -1 };
	f->rx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->rx.call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->tx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->tx.call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(f->rx.kick >= 0 && f->rx.call >= 0 && f->tx.kick >= 0 && f->tx.call >= 0);

	feat = vu_get_u64(f, VSD_VU_GET_FEATURES);
	CHECK(feat & (1ull << VSD_VIRTIO_F_VERSION_1));
	CHECK(feat & (1ull << VSD_VHOST_USER_F_PROTOCOL_FEATURES));
	CHECK(feat & (1ull << VSD_VIRTIO_RING_F_INDIRECT_DESC));
	feat = (1ull << VSD_VIRTIO_F_VERSION_1) | (1ull << VSD_VHOST_USER_F_PROTOCOL_FEATURES) |
	       (1ull << VSD_VIRTIO_RING_F_INDIRECT_DESC);
	vu_send(f, VSD_VU_SET_FEATURES, 0, &feat, 8, NULL, 0);
	pfeat = vu_get_u64(f, VSD_VU_GET_PROTOCOL_FEATURES);
	CHECK(pfeat & (1ull << VSD_VU_PROTOCOL_F_CONFIG));
	CHECK(pfeat & (1ull << VSD_VU_PROTOCOL_F_REPLY_ACK));
	pfeat = (1ull << VSD_VU_PROTOCOL_F_CONFIG) | (1ull << VSD_VU_PROTOCOL_F_REPLY_ACK);
	vu_send(f, VSD_VU_SET_PROTOCOL_FEATURES, 0, &pfeat, 8, NULL, 0);
	CHECK(vu_call(f, VSD_VU_SET_OWNER, NULL, 0, NULL, 0) == 0);
	CHECK(vu_get_u64(f, VSD_VU_GET_QUEUE_NUM) == VSD_NUM_VQ);

	memset(cfg, 0, sizeof(cfg));
	put32(cfg, 0);
	put32(cfg + 4, 8);
	vu_send(f, VSD_VU_GET_CONFIG, 0, cfg, sizeof(cfg), NULL, 0);
	CHECK(vu_reply(f, VSD_VU_GET_CONFIG, out, sizeof(out)) == sizeof(out));
	CHECK(get32(out + 12) == CID && get32(out + 16) == 0);

	set_mem_table(f);
	for (unsigned int i = 0; i < QNUM; i++)
		rx_post(f, i);
	ring_start(f, VSD_VQ_RX, &f->rx);
	ring_start(f, VSD_VQ_TX, &f->tx);
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	CHECK(listen(fd, 128) == 0);
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	CHECK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	return fd;
}

static int accept_timeout(int lfd)
{
	struct pollfd p = { lfd, POLLIN, 0 };
	int fd;

	CHECK(poll(&p, 1, TIMEOUT_MS) == 1);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* Reads up to len bytes with a timeout; returns count (0 at EOF). */
static size_t read_some(int fd, void *buf, size_t len)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	CHECK(poll(&p, 1, TIMEOUT_MS) == 1);
	n = read(fd, buf, len);
	if (n < 0)
		fprintf(stderr, "%s: read: %s\n", current_test, strerror(errno));
	CHECK(n >= 0);
	return (size_t)n;
}

/* The peer closed: EOF, or a reset if it left our bytes unread. */
static bool read_closed(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char b[64];
	ssize_t n;

	CHECK(poll(&p, 1, TIMEOUT_MS) == 1);
	n = read(fd, b, sizeof(b));
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void listener_path(const struct fe *f, uint32_t port, char *buf, size_t len)
{
	snprintf(buf, len, "%s_%u", f->uds, port);
}

/* ---- tests ---- */

static void t_guest_to_host(struct fe *f)
{
	char path[160], buf[64];
	struct pkt p;
	int lfd, c;

	current_test = "guest-to-host";
	listener_path(f, 1234, path, sizeof(path));
	lfd = unix_listen(path);
	tx_send(f, VSD_OP_REQUEST, 5000, 1234, NULL, 0);
	rx_expect(f, &p, VSD_OP_RESPONSE, 1234, 5000);
	CHECK(p.h.buf_alloc == VSD_BUF_ALLOC);
	c = accept_timeout(lfd);

	skip_credit_updates = false;
	tx_send(f, VSD_OP_RW, 5000, 1234, "hello", 5);
	CHECK(read_some(c, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
	/* the tx queue is drained: the forwarded bytes are reported at once,
	 * whatever the guest's own window */
	rx_expect(f, &p, VSD_OP_CREDIT_UPDATE, 1234, 5000);
	CHECK(p.h.fwd_cnt == 5 && p.h.buf_alloc == VSD_BUF_ALLOC);
	skip_credit_updates = true;
	CHECK(write(c, "world", 5) == 5);
	rx_expect(f, &p, VSD_OP_RW, 1234, 5000);
	CHECK(p.h.len == 5 && memcmp(p.data, "world", 5) == 0);

	/* guest half-close: the unix side reads EOF but can still write */
	tx_send_opt(f, VSD_OP_SHUTDOWN, 5000, 1234, NULL, 0,
		    &(struct txopt){ .flags = VSD_SHUTDOWN_SEND });
	CHECK(read_some(c, buf, sizeof(buf)) == 0);
	CHECK(write(c, "more", 4) == 4);
	rx_expect(f, &p, VSD_OP_RW, 1234, 5000);
	CHECK(p.h.len == 4 && memcmp(p.data, "more", 4) == 0);
	/* host closes: guest gets SHUTDOWN(SEND) */
	close(c);
	rx_expect(f, &p, VSD_OP_SHUTDOWN, 1234, 5000);
	CHECK(p.h.flags & VSD_SHUTDOWN_SEND);
	/* guest closes: we answer RST, the connection is gone */
	tx_send_opt(f, VSD_OP_SHUTDOWN, 5000, 1234, NULL, 0,
		    &(struct txopt){ .flags = VSD_SHUTDOWN_SEND | VSD_SHUTDOWN_RCV });
	rx_expect(f, &p, VSD_OP_RST, 1234, 5000);
	tx_send(f, VSD_OP_RW, 5000, 1234, "x", 1);
	rx_expect(f, &p, VSD_OP_RST, 1234, 5000); /* unknown connection now */
	close(lfd);
	unlink(path);
}

static void t_refused(struct fe *f)
{
	struct pkt p;

	current_test = "refused";
	tx_send(f, VSD_OP_REQUEST, 5001, 999, NULL, 0);
	rx_expect(f, &p, VSD_OP_RST, 999, 5001);
}

static void t_host_to_guest(struct fe *f)
{
	char buf[64];
	struct pkt p;
	uint32_t lport;
	int c;

	current_test = "host-to-guest";
	c = unix_connect(f->uds);
	CHECK(write(c, "CONNECT 80\nearly", 16) == 16);
	rx_recv(f, &p);
	CHECK(p.h.op == VSD_OP_REQUEST && p.h.dst_port == 80);
	lport = p.h.src_port;
	CHECK(lport >= VSD_LOCAL_PORT_BASE);
	tx_send(f, VSD_OP_RESPONSE, 80, lport, NULL, 0);
	{
		char want[32];
		size_t n = 0, wl = (size_t)snprintf(want, sizeof(want), "OK %u\n", lport);

		while (n < wl) {
			size_t k = read_some(c, buf + n, wl - n);
			CHECK(k > 0);
			n += k;
		}
		CHECK(memcmp(buf, want, wl) == 0);
	}
	rx_expect(f, &p, VSD_OP_RW, lport, 80);
	CHECK(p.h.len == 5 && memcmp(p.data, "early", 5) == 0);
	tx_send(f, VSD_OP_RW, 80, lport, "reply", 5);
	CHECK(read_some(c, buf, sizeof(buf)) == 5 && memcmp(buf, "reply", 5) == 0);
	/* host half-close: guest gets SHUTDOWN(SEND), can still send */
	CHECK(shutdown(c, SHUT_WR) == 0);
	rx_expect(f, &p, VSD_OP_SHUTDOWN, lport, 80);
	CHECK(p.h.flags == VSD_SHUTDOWN_SEND);
	tx_send(f, VSD_OP_RW, 80, lport, "after", 5);
	CHECK(read_some(c, buf, sizeof(buf)) == 5 && memcmp(buf, "after", 5) == 0);
	/* guest resets: host sees EOF */
	tx_send(f, VSD_OP_RST, 80, lport, NULL, 0);
	CHECK(read_some(c, buf, sizeof(buf)) == 0);
	close(c);

	/* the guest refuses: the host client is closed without "OK" */
	c = unix_connect(f->uds);
	CHECK(write(c, "CONNECT 81\n", 11) == 11);
	rx_recv(f, &p);
	CHECK(p.h.op == VSD_OP_REQUEST && p.h.dst_port == 81);
	tx_send(f, VSD_OP_RST, 81, p.h.src_port, NULL, 0);
	CHECK(read_some(c, buf, sizeof(buf)) == 0);
	close(c);

	/* the guest never answers: after --connect-timeout the host client
	 * is closed and the guest told to forget the request */
	c = unix_connect(f->uds);
	CHECK(write(c, "CONNECT 82\n", 11) == 11);
	rx_recv(f, &p);
	CHECK(p.h.op == VSD_OP_REQUEST && p.h.dst_port == 82);
	lport = p.h.src_port;
	CHECK(read_closed(c));
	close(c);
	rx_expect(f, &p, VSD_OP_RST, lport, 82);

	/* malformed CONNECT lines are dropped without reaching the guest */
	const char *bad[] = { "CONNECT\n", "CONNECT -1\n", "CONNECT 4294967296\n", "connect 5\n",
			      "CONNECT 05\n", "CONNECT 5 \n", "CONNECT 123456789012345678901234567\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = unix_connect(f->uds);
		CHECK(write(c, bad[i], strlen(bad[i])) == (ssize_t)strlen(bad[i]));
		CHECK(read_closed(c));
		close(c);
	}
	CHECK(!rx_recv_timeout(f, &p, 200));
}

static void t_credit_to_guest(struct fe *f)
{
	char path[160];
	static uint8_t big[1000];
	struct pkt p;
	uint32_t got = 0;
	int lfd, c;

	current_test = "credit-to-guest";
	listener_path(f, 2000, path, sizeof(path));
	lfd = unix_listen(path);
	tx_send_opt(f, VSD_OP_REQUEST, 6000, 2000, NULL, 0, &(struct txopt){ .buf_alloc = 100 });
	rx_expect(f, &p, VSD_OP_RESPONSE, 2000, 6000);
	c = accept_timeout(lfd);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	CHECK(write(c, big, sizeof(big)) == (ssize_t)sizeof(big));
	while (got < 100) {
		rx_expect(f, &p, VSD_OP_RW, 2000, 6000);
		CHECK(memcmp(p.data, big + got, p.h.len) == 0);
		got += p.h.len;
	}
	CHECK(got == 100);
	CHECK(!rx_recv_timeout(f, &p, 300)); /* no credit, nothing more */
	tx_send_opt(f, VSD_OP_CREDIT_UPDATE, 6000, 2000, NULL, 0,
		    &(struct txopt){ .buf_alloc = 100, .fwd_cnt = 100 });
	while (got < 200) {
		rx_expect(f, &p, VSD_OP_RW, 2000, 6000);
		CHECK(memcmp(p.data, big + got, p.h.len) == 0);
		got += p.h.len;
	}
	CHECK(got == 200);
	/* a CREDIT_REQUEST is answered with our counters */
	skip_credit_updates = false;
	tx_send_opt(f, VSD_OP_CREDIT_REQUEST, 6000, 2000, NULL, 0,
		    &(struct txopt){ .buf_alloc = 100, .fwd_cnt = 100 });
	rx_expect(f, &p, VSD_OP_CREDIT_UPDATE, 2000, 6000);
	skip_credit_updates = true;
	CHECK(p.h.buf_alloc == VSD_BUF_ALLOC && p.h.fwd_cnt == 0);
	tx_send(f, VSD_OP_RST, 6000, 2000, NULL, 0);
	close(c);
	close(lfd);
	unlink(path);
}

static void t_credit_from_guest(struct fe *f)
{
	char path[160];
	static uint8_t chunk[65536];
	struct pkt p;
	int lfd, c;
	bool reset = false;

	current_test = "credit-from-guest";
	listener_path(f, 2001, path, sizeof(path));
	lfd = unix_listen(path);
	tx_send(f, VSD_OP_REQUEST, 6001, 2001, NULL, 0);
	rx_expect(f, &p, VSD_OP_RESPONSE, 2001, 6001);
	c = accept_timeout(lfd); /* never read: the backend must buffer, then refuse */
	memset(chunk, 'z', sizeof(chunk));
	skip_credit_updates = false;
	for (int i = 0; i < 64 && !reset; i++) {
		tx_send(f, VSD_OP_RW, 6001, 2001, chunk, sizeof(chunk));
		while (rx_recv_timeout(f, &p, 20)) {
			CHECK(p.h.src_port == 2001 && p.h.dst_port == 6001);
			if (p.h.op == VSD_OP_RST)
				reset = true;
			else
				CHECK(p.h.op == VSD_OP_CREDIT_UPDATE);
		}
	}
	skip_credit_updates = true;
	if (!reset)
		rx_expect(f, &p, VSD_OP_RST, 2001, 6001);
	close(c);
	close(lfd);
	unlink(path);
}

static void t_many(struct fe *f)
{
	char path[160], buf[16];
	struct pkt p;
	int lfd, fds[64];

	current_test = "64-connections";
	listener_path(f, 3000, path, sizeof(path));
	lfd = unix_listen(path);
	for (uint32_t i = 0; i < 64; i++) {
		tx_send(f, VSD_OP_REQUEST, 7000 + i, 3000, NULL, 0);
		rx_expect(f, &p, VSD_OP_RESPONSE, 3000, 7000 + i);
		fds[i] = accept_timeout(lfd);
	}
	/* each unix connection receives exactly its own guest port's bytes */
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t tag = 7000 + i;
		tx_send(f, VSD_OP_RW, 7000 + i, 3000, &tag, 4);
	}
	for (uint32_t i = 0; i < 64; i++) {
		uint32_t tag;
		CHECK(read_some(fds[i], &tag, 4) == 4 && tag == 7000 + i);
		CHECK(write(fds[i], &tag, 4) == 4);
	}
	for (uint32_t n = 0; n < 64; n++) {
		uint32_t tag;
		rx_recv(f, &p);
		CHECK(p.h.op == VSD_OP_RW && p.h.len == 4);
		memcpy(&tag, p.data, 4);
		CHECK(tag == p.h.dst_port);
	}
	for (uint32_t i = 0; i < 64; i++) {
		tx_send(f, VSD_OP_RST, 7000 + i, 3000, NULL, 0);
		CHECK(read_some(fds[i], buf, sizeof(buf)) == 0);
		close(fds[i]);
	}
	close(lfd);
	unlink(path);
}

static void t_hostile_chains(struct fe *f)
{
	const uint16_t h = 100; /* descriptors 100..127 for hostile chains */
	struct pkt p;
	uint8_t hdr[VSD_VSOCK_HDR_SIZE];
	struct vsd_pkt_hdr ph = { .src_cid = CID, .dst_cid = 2, .src_port = 1, .dst_port = 2,
				  .type = 1, .op = VSD_OP_REQUEST };

	current_test = "hostile-chains";
	vsd_pkt_hdr_encode(&ph, hdr);
	memcpy(f->ram + SCRATCH, hdr, sizeof(hdr));

	/* address outside guest RAM */
	set_desc(f, f->tx.desc, h, 0x40000000ull, 64, 0, 0);
	tx_raw(f, h);
	/* address + len overflows */
	set_desc(f, f->tx.desc, h, 0xfffffffffffffff0ull, 0x100, 0, 0);
	tx_raw(f, h);
	/* buffer spanning the two memory regions */
	set_desc(f, f->tx.desc, h, REGION_SPLIT - 16, 64, 0, 0);
	tx_raw(f, h);
	/* a chain that loops on itself */
	set_desc(f, f->tx.desc, h, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, h);
	tx_raw(f, h);
	/* a longer loop */
	set_desc(f, f->tx.desc, h, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, h + 1);
	set_desc(f, f->tx.desc, h + 1u, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, h);
	tx_raw(f, h);
	/* next index out of the table */
	set_desc(f, f->tx.desc, h, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, 5000);
	tx_raw(f, h);
	/* writable descriptor before a readable one */
	set_desc(f, f->tx.desc, h, SCRATCH, 44, VSD_VRING_DESC_F_NEXT | VSD_VRING_DESC_F_WRITE,
		 h + 1);
	set_desc(f, f->tx.desc, h + 1u, SCRATCH, 44, 0, 0);
	tx_raw(f, h);
	/* header shorter than 44 bytes */
	set_desc(f, f->tx.desc, h, SCRATCH, 20, 0, 0);
	tx_raw(f, h);
	/* indirect table outside RAM */
	set_desc(f, f->tx.desc, h, 0x7000000000ull, 32, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	/* indirect table length not a multiple of 16 */
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 20, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	/* indirect with NEXT set */
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 32,
		 VSD_VRING_DESC_F_INDIRECT | VSD_VRING_DESC_F_NEXT, h + 1);
	tx_raw(f, h);
	/* nested indirect */
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 16, VSD_VRING_DESC_F_INDIRECT, 0);
	set_desc(f, SCRATCH + 0x1000, 0, SCRATCH + 0x2000, 16, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	/* indirect entry pointing outside RAM */
	set_desc(f, SCRATCH + 0x1000, 0, 0x7000000000ull, 44, 0, 0);
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 16, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	/* indirect loop */
	set_desc(f, SCRATCH + 0x1000, 0, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, 1);
	set_desc(f, SCRATCH + 0x1000, 1, SCRATCH, 44, VSD_VRING_DESC_F_NEXT, 0);
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 32, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	/* too many descriptors in one chain (over the iovec cap) */
	for (unsigned int i = 0; i < 80; i++)
		set_desc(f, SCRATCH + 0x3000, i, SCRATCH, 44,
			 i < 79 ? VSD_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(f, f->tx.desc, h, SCRATCH + 0x3000, 80 * 16, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	CHECK(!rx_recv_timeout(f, &p, 200)); /* none of these produced a packet */

	/* a valid indirect chain works (the REQUEST in SCRATCH: refused) */
	set_desc(f, SCRATCH + 0x1000, 0, SCRATCH, 44, 0, 0);
	set_desc(f, f->tx.desc, h, SCRATCH + 0x1000, 16, VSD_VRING_DESC_F_INDIRECT, 0);
	tx_raw(f, h);
	rx_expect(f, &p, VSD_OP_RST, 2, 1);

	/* header len larger than the chain: rejected, reset */
	tx_send_opt(f, VSD_OP_RW, 8000, 4000, "abc", 3, &(struct txopt){ .hdr_len = 60000 });
	rx_expect(f, &p, VSD_OP_RST, 4000, 8000);
	/* oversized packet (over 64 KiB payload) */
	{
		static uint8_t huge[VSD_MAX_PKT_PAYLOAD + 100];
		tx_send(f, VSD_OP_RW, 8001, 4001, huge, sizeof(huge));
		rx_expect(f, &p, VSD_OP_RST, 4001, 8001);
	}
	/* data for a connection that does not exist */
	tx_send(f, VSD_OP_RW, 8002, 4002, "zz", 2);
	rx_expect(f, &p, VSD_OP_RST, 4002, 8002);
	/* unknown op, wrong type, other destination CID */
	tx_send(f, 42, 8003, 4003, NULL, 0);
	rx_expect(f, &p, VSD_OP_RST, 4003, 8003);
	/* RST for an unknown connection: silently ignored; spoofed source
	 * CID: dropped; the next answer is for the valid request after them */
	tx_send(f, VSD_OP_RST, 8004, 4004, NULL, 0);
	tx_send_opt(f, VSD_OP_REQUEST, 8005, 4005, NULL, 0, &(struct txopt){ .src_cid = 99 });
	tx_send(f, VSD_OP_REQUEST, 8006, 4006, NULL, 0);
	rx_expect(f, &p, VSD_OP_RST, 4006, 8006);
	/* a flood of requests to nowhere: each answered or dropped, never hung */
	for (uint32_t i = 0; i < 600; i++)
		tx_send(f, VSD_OP_REQUEST, 9000 + i, 4100, NULL, 0);
	while (rx_recv_timeout(f, &p, 300))
		CHECK(p.h.op == VSD_OP_RST);
	t_refused(f);
	current_test = "hostile-chains";

	/* corrupt avail index: the tx ring is abandoned, the daemon lives */
	f->tx.avail_idx = (uint16_t)(f->tx.avail_idx + QNUM + 5);
	put16(f->ram + f->tx.avail + 2, f->tx.avail_idx);
	kick(&f->tx);
	CHECK(vu_get_u64(f, VSD_VU_GET_FEATURES) != 0);
	/* the front-end restarts the ring, as QEMU does on a device reset */
	{
		uint8_t s[8] = { 0 };
		uint8_t r[8];

		put32(s, VSD_VQ_TX);
		vu_send(f, VSD_VU_GET_VRING_BASE, 0, s, 8, NULL, 0);
		CHECK(vu_reply(f, VSD_VU_GET_VRING_BASE, r, 8) == 8);
		CHECK(get32(r) == VSD_VQ_TX);
		memset(f->ram + f->tx.used, 0, 4);
		f->tx.avail_idx = f->tx.used_seen = 0;
		put16(f->ram + f->tx.avail + 2, 0);
		f->tx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ring_start(f, VSD_VQ_TX, &f->tx);
	}
	t_refused(f);
}

static void t_vu_malformed(struct fe *f)
{
	uint8_t p[128], cfg[12 + 300];
	int efd[12];

	current_test = "vhost-user-malformed";
	for (int i = 0; i < 12; i++)
		efd[i] = eventfd(0, EFD_CLOEXEC);
	/* truncated payload */
	CHECK(vu_call(f, VSD_VU_SET_VRING_NUM, p, 4, NULL, 0) != 0);
	/* bad index, num not a power of two, too large */
	CHECK(vu_state(f, VSD_VU_SET_VRING_NUM, 7, 64) != 0);
	CHECK(vu_state(f, VSD_VU_GET_FEATURES + 100, 0, 0) != 0);
	/* running ring: num and base cannot change */
	CHECK(vu_state(f, VSD_VU_SET_VRING_NUM, 0, 64) != 0);
	CHECK(vu_state(f, VSD_VU_SET_VRING_BASE, 0, 3) != 0);
	/* two fds where one is expected, fds where none are */
	put64(p, 0);
	CHECK(vu_call(f, VSD_VU_SET_VRING_CALL, p, 8, efd, 2) != 0);
	CHECK(vu_call(f, VSD_VU_SET_OWNER, NULL, 0, efd, 1) != 0);
	/* no fd for a kick that claims one */
	CHECK(vu_call(f, VSD_VU_SET_VRING_KICK, p, 8, NULL, 0) != 0);
	/* more fds than a message may carry */
	CHECK(vu_call(f, VSD_VU_SET_VRING_CALL, p, 8, efd, 12) != 0);
	/* memory table: region count vs fds, sizes past the file, overflow */
	memset(p, 0, sizeof(p));
	put32(p, 2);
	CHECK(vu_call(f, VSD_VU_SET_MEM_TABLE, p, 8 + 64, &f->memfd, 1) != 0);
	put32(p, 1);
	put64(p + 8, 0);
	put64(p + 16, RAM_SIZE);
	put64(p + 24, 0x1000);
	put64(p + 32, 4096); /* offset + size beyond the memfd */
	CHECK(vu_call(f, VSD_VU_SET_MEM_TABLE, p, 8 + 32, &f->memfd, 1) != 0);
	put64(p + 8, 0xfffffffffffff000ull); /* gpa + size overflows */
	put64(p + 32, 0);
	CHECK(vu_call(f, VSD_VU_SET_MEM_TABLE, p, 8 + 32, &f->memfd, 1) != 0);
	put32(p, 9); /* too many regions */
	CHECK(vu_call(f, VSD_VU_SET_MEM_TABLE, p, 8, NULL, 0) != 0);
	/* vring address outside the memory table */
	memset(p, 0, 40);
	put32(p, 0);
	put64(p + 8, 0x10);
	CHECK(vu_call(f, VSD_VU_SET_VRING_ADDR, p, 40, NULL, 0) != 0);
	/* config: too large, out of range */
	memset(cfg, 0, sizeof(cfg));
	put32(cfg + 4, 300);
	vu_send(f, VSD_VU_GET_CONFIG, 0, cfg, sizeof(cfg), NULL, 0);
	CHECK(vu_reply(f, VSD_VU_GET_CONFIG, cfg, sizeof(cfg)) == 0);
	put32(cfg, 4);
	put32(cfg + 4, 8);
	vu_send(f, VSD_VU_GET_CONFIG, 0, cfg, 20, NULL, 0);
	CHECK(vu_reply(f, VSD_VU_GET_CONFIG, cfg, sizeof(cfg)) == 0);
	CHECK(vu_call(f, VSD_VU_SET_CONFIG, cfg, 20, NULL, 0) != 0);
	/* unknown request, unsupported features */
	CHECK(vu_call(f, 200, NULL, 0, NULL, 0) != 0);
	put64(p, 1ull << 40);
	CHECK(vu_call(f, VSD_VU_SET_FEATURES, p, 8, NULL, 0) != 0);
	for (int i = 0; i < 12; i++)
		close(efd[i]);
	/* still fully working */
	CHECK(vu_get_u64(f, VSD_VU_GET_FEATURES) != 0);
	t_refused(f);
	t_guest_to_host(f);
}

/* Stops the daemon by closing the front-end; checks exit status and that
 * no socket is left behind. */
static void finish(struct fe *f, int want_status)
{
	int64_t end = now_ms() + TIMEOUT_MS;
	int st;
	pid_t r;

	if (f->sock >= 0)
		close(f->sock);
	while ((r = waitpid(f->pid, &st, WNOHANG)) == 0) {
		CHECK(now_ms() < end);
		usleep(10000);
	}
	CHECK(r == f->pid);
	live_daemon = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != want_status)
		fprintf(stderr, "%s: daemon status 0x%x, want exit %d\n", current_test, st,
			want_status);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == want_status);
	CHECK(access(f->uds, F_OK) != 0 && errno == ENOENT);
	CHECK(access(f->vu_path, F_OK) != 0 && errno == ENOENT);
	if (f->ram) {
		munmap(f->ram, RAM_SIZE);
		close(f->memfd);
	}
	rmdir(f->dir);
}

static void t_framing_errors(void)
{
	struct fe f;
	uint8_t hdr[12];

	current_test = "framing-oversized";
	start_daemon(&f);
	put32(hdr, VSD_VU_GET_FEATURES);
	put32(hdr + 4, VSD_VU_VERSION);
	put32(hdr + 8, 1u << 20);
	CHECK(write(f.sock, hdr, 12) == 12);
	finish(&f, 1);

	current_test = "framing-truncated";
	start_daemon(&f);
	put32(hdr + 8, 8);
	CHECK(write(f.sock, hdr, 12) == 12);
	CHECK(write(f.sock, "abcd", 4) == 4);
	finish(&f, 1);

	current_test = "framing-bad-version";
	start_daemon(&f);
	put32(hdr + 4, 2);
	put32(hdr + 8, 0);
	CHECK(write(f.sock, hdr, 12) == 12);
	finish(&f, 1);
}

/* SIGTERM, before and after the front-end connected: exit 0, sockets gone. */
static void t_sigterm(void)
{
	struct fe f;
	int64_t end;

	current_test = "sigterm-connected";
	start_daemon(&f);
	CHECK(vu_get_u64(&f, VSD_VU_GET_FEATURES) != 0);
	CHECK(kill(f.pid, SIGTERM) == 0);
	finish(&f, 0);

	current_test = "sigterm-waiting";
	memset(&f, 0, sizeof(f));
	snprintf(f.dir, sizeof(f.dir), "/tmp/vsockd-test.XXXXXX");
	CHECK(mkdtemp(f.dir));
	snprintf(live_dir, sizeof(live_dir), "%s", f.dir);
	snprintf(f.vu_path, sizeof(f.vu_path), "%s/vhost.sock", f.dir);
	snprintf(f.uds, sizeof(f.uds), "%s/vsock", f.dir);
	f.pid = fork();
	CHECK(f.pid >= 0);
	live_daemon = f.pid;
	if (f.pid == 0) {
		execl(daemon_bin, daemon_bin, "--socket", f.vu_path, "--guest-cid", "3",
		      "--uds-path", f.uds, (char *)NULL);
		_exit(127);
	}
	end = now_ms() + TIMEOUT_MS;
	while (access(f.vu_path, F_OK) != 0) {
		CHECK(now_ms() < end);
		usleep(10000);
	}
	CHECK(kill(f.pid, SIGTERM) == 0);
	f.sock = -1;
	finish(&f, 0);
}

static int run_status(const char *const argv[], char *err, size_t errlen)
{
	int pipefd[2], st;
	pid_t pid;
	size_t n = 0;
	ssize_t k;

	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (n + 1 < errlen && (k = read(pipefd[0], err + n, errlen - 1 - n)) > 0)
		n += (size_t)k;
	err[n] = 0;
	close(pipefd[0]);
	CHECK(waitpid(pid, &st, 0) == pid);
	return st;
}

static void t_cli(void)
{
	char err[1024];
	int st;

	current_test = "cli";
	{
		const char *a[] = { daemon_bin, "--socket", "/tmp/x.sock", "--guest-cid", "abc",
				    "--uds-path", "/tmp/x", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(err, "--guest-cid 'abc'"));
	}
	{
		const char *a[] = { daemon_bin, "--socket", "/tmp/x.sock", "--guest-cid", "2",
				    "--uds-path", "/tmp/x", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(err, "--guest-cid '2'"));
	}
	{
		const char *a[] = { daemon_bin, "--socket", "/nonexistent-dir/v.sock",
				    "--guest-cid", "5", "--uds-path", "/tmp/vsockd-cli-test-uds", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
		      strstr(err, "--socket '/nonexistent-dir/v.sock'"));
		CHECK(access("/tmp/vsockd-cli-test-uds", F_OK) != 0); /* cleaned up */
	}
	{
		const char *a[] = { daemon_bin, "--socket", "/tmp/v.sock", "--guest-cid", "5",
				    "--uds-path", "/nonexistent-dir/u", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
		      strstr(err, "--uds-path '/nonexistent-dir/u'"));
	}
	{
		const char *a[] = { daemon_bin, "--socket", "/tmp/v.sock", "--guest-cid", "5",
				    "--uds-path", "/tmp/u", "--connect-timeout", "-5", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && strstr(err, "--connect-timeout '-5'"));
	}
	{
		const char *a[] = { daemon_bin, "--help", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	current_test = "seccomp";
	{
		const char *a[] = { daemon_bin, "--test-seccomp", NULL };
		st = run_status(a, err, sizeof(err));
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	}
}

static void on_alarm(int sig)
{
	static const char msg[] = "vsockd-frontend-test: timed out\n";

	if (live_daemon > 0)
		kill(live_daemon, SIGKILL);
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

int main(int argc, char **argv)
{
	struct fe f;

	if (argc != 2) {
		fprintf(stderr, "usage: %s QUBE_VSOCKD\n", argv[0]);
		return 2;
	}
	daemon_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_live_daemon);
	signal(SIGALRM, on_alarm);
	alarm(240); /* a hang is a failure, never a stuck suite */

	t_cli();
	t_framing_errors();
	t_sigterm();

	start_daemon(&f);
	setup_device(&f);
	t_guest_to_host(&f);
	t_refused(&f);
	t_host_to_guest(&f);
	t_credit_to_guest(&f);
	t_credit_from_guest(&f);
	t_many(&f);
	t_hostile_chains(&f);
	t_vu_malformed(&f);
	current_test = "clean-exit";
	finish(&f, 0);
	printf("vsockd-frontend-test: all passed\n");
	return 0;
}
