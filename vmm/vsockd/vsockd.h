/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-vsockd internals: a vhost-user back-end for QEMU's
 * vhost-user-vsock-pci device, speaking the hybrid unix-socket convention of
 * Firecracker and Cloud Hypervisor on the host side.  docs/vsock.md is the
 * user-facing description.
 *
 * Layers, each usable without the ones above it:
 *   vsd_mem / vsd_vring  guest memory table and split virtqueues (vring.c)
 *   vsd_vu_*             vhost-user message decoding and the device state
 *                        machine (vhost_user.c)
 *   vsd_vsock            virtio-vsock connections and the unix-socket host
 *                        side (vsock.c)
 * main.c holds the command line, the epoll loop and the seccomp filter.
 *
 * Errors: 0 or a negative errno; ret_* untouched on failure.  Nothing here
 * logs; the device reports through an optional caller-provided callback.
 */
#ifndef QUBE_VSOCKD_H
#define QUBE_VSOCKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---- virtio / vring constants (virtio 1.x spec) ---- */
#define VSD_VIRTIO_F_NOTIFY_ON_EMPTY 24
#define VSD_VIRTIO_RING_F_INDIRECT_DESC 28
#define VSD_VIRTIO_RING_F_EVENT_IDX 29
#define VSD_VHOST_USER_F_PROTOCOL_FEATURES 30
#define VSD_VIRTIO_F_VERSION_1 32

#define VSD_VRING_DESC_F_NEXT 1u
#define VSD_VRING_DESC_F_WRITE 2u
#define VSD_VRING_DESC_F_INDIRECT 4u
#define VSD_VRING_AVAIL_F_NO_INTERRUPT 1u
#define VSD_VRING_USED_F_NO_NOTIFY 1u

#define VSD_VRING_MAX_NUM 32768u /* split ring maximum queue size */
#define VSD_CHAIN_MAX_IOV 64u    /* longest descriptor chain we accept */
#define VSD_INDIRECT_MAX 1024u   /* longest indirect table we accept */

/* ---- vhost-user constants (QEMU docs/interop/vhost-user.rst) ---- */
enum vsd_vu_request {
	VSD_VU_GET_FEATURES = 1,
	VSD_VU_SET_FEATURES = 2,
	VSD_VU_SET_OWNER = 3,
	VSD_VU_RESET_OWNER = 4,
	VSD_VU_SET_MEM_TABLE = 5,
	VSD_VU_SET_LOG_BASE = 6,
	VSD_VU_SET_LOG_FD = 7,
	VSD_VU_SET_VRING_NUM = 8,
	VSD_VU_SET_VRING_ADDR = 9,
	VSD_VU_SET_VRING_BASE = 10,
	VSD_VU_GET_VRING_BASE = 11,
	VSD_VU_SET_VRING_KICK = 12,
	VSD_VU_SET_VRING_CALL = 13,
	VSD_VU_SET_VRING_ERR = 14,
	VSD_VU_GET_PROTOCOL_FEATURES = 15,
	VSD_VU_SET_PROTOCOL_FEATURES = 16,
	VSD_VU_GET_QUEUE_NUM = 17,
	VSD_VU_SET_VRING_ENABLE = 18,
	VSD_VU_SET_SLAVE_REQ_FD = 21,
	VSD_VU_SET_VRING_ENDIAN = 23,
	VSD_VU_GET_CONFIG = 24,
	VSD_VU_SET_CONFIG = 25,
	VSD_VU_RESET_DEVICE = 34,
	VSD_VU_GET_MAX_MEM_SLOTS = 36,
	VSD_VU_SET_STATUS = 39,
	VSD_VU_GET_STATUS = 40,
};

#define VSD_VU_PROTOCOL_F_MQ 0
#define VSD_VU_PROTOCOL_F_REPLY_ACK 3
#define VSD_VU_PROTOCOL_F_CONFIG 9
#define VSD_VU_PROTOCOL_F_RESET_DEVICE 13

#define VSD_VU_VERSION 0x1u
#define VSD_VU_FLAG_VERSION_MASK 0x3u
#define VSD_VU_FLAG_REPLY 0x4u
#define VSD_VU_FLAG_NEED_REPLY 0x8u

#define VSD_VU_HDR_SIZE 12u
#define VSD_VU_MAX_PAYLOAD 4096u /* larger messages end the session */
#define VSD_VU_MAX_FDS 8u        /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VSD_VU_MAX_REGIONS 8u
#define VSD_VU_VRING_IDX_MASK 0xffu
#define VSD_VU_VRING_NOFD 0x100u
#define VSD_VU_CONFIG_HDR 12u
#define VSD_VU_CONFIG_MAX 256u

/* vhost-user-vsock only runs the rx and tx queues; QEMU keeps the event
 * queue (index 2) to itself. */
#define VSD_NUM_VQ 2u
#define VSD_VQ_RX 0u
#define VSD_VQ_TX 1u

/* ---- virtio-vsock ---- */
#define VSD_VSOCK_HDR_SIZE 44u
#define VSD_VSOCK_HOST_CID 2u
#define VSD_VSOCK_TYPE_STREAM 1u
enum vsd_vsock_op {
	VSD_OP_INVALID = 0,
	VSD_OP_REQUEST = 1,
	VSD_OP_RESPONSE = 2,
	VSD_OP_RST = 3,
	VSD_OP_SHUTDOWN = 4,
	VSD_OP_RW = 5,
	VSD_OP_CREDIT_UPDATE = 6,
	VSD_OP_CREDIT_REQUEST = 7,
};
#define VSD_SHUTDOWN_RCV 1u
#define VSD_SHUTDOWN_SEND 2u

#define VSD_MAX_PKT_PAYLOAD (64u * 1024u) /* larger RW packets are rejected */
#define VSD_BUF_ALLOC (512u * 1024u)      /* our receive buffer per connection */
#define VSD_CREDIT_REPORT (128u * 1024u)  /* CREDIT_UPDATE after this much */
#define VSD_MAX_CONNS 1024u               /* per backend */
#define VSD_MAX_PENDING_HOST 256u         /* host clients before CONNECT line */
#define VSD_CONNECT_LINE_MAX 32u          /* "CONNECT 4294967295\n" fits */
#define VSD_RST_QUEUE 256u                /* RSTs for unknown connections */
#define VSD_LOCAL_PORT_BASE 0x40000000u   /* ephemeral host ports */
#define VSD_CONNECT_TIMEOUT_MS 10000u     /* guest must answer a host CONNECT */

/* Decoded virtio-vsock packet header (wire form is 44 bytes little-endian). */
struct vsd_pkt_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
};

void vsd_pkt_hdr_decode(const uint8_t untrusted_wire[VSD_VSOCK_HDR_SIZE],
			struct vsd_pkt_hdr *ret_untrusted_hdr);
void vsd_pkt_hdr_encode(const struct vsd_pkt_hdr *hdr, uint8_t wire[VSD_VSOCK_HDR_SIZE]);

/* Parses exactly one "CONNECT <port>\n" line (the newline included in
 * len).  Decimal port 0..4294967295, no sign, no leading zeros except "0",
 * no other bytes.  Returns 0 or -EINVAL. */
int vsd_parse_connect_line(const char *untrusted_line, size_t len, uint32_t *ret_port);

/* ---- guest memory ---- */
struct vsd_mem_region {
	uint64_t gpa;         /* guest physical start */
	uint64_t size;
	uint64_t uva;         /* front-end virtual start (vring addresses) */
	uint8_t *host;        /* our mapping of gpa */
	void *map;            /* mmap()ed area to munmap, NULL if not ours */
	size_t map_len;
};

struct vsd_mem {
	unsigned int n;
	struct vsd_mem_region r[VSD_VU_MAX_REGIONS];
};

/* Host pointer for [gpa, gpa+len) if it lies inside a single region. */
void *vsd_mem_gpa(const struct vsd_mem *mem, uint64_t gpa, uint64_t len);
/* Same for front-end virtual addresses. */
void *vsd_mem_uva(const struct vsd_mem *mem, uint64_t uva, uint64_t len);
void vsd_mem_clear(struct vsd_mem *mem);

/* ---- split virtqueue ---- */
struct vsd_vring {
	unsigned int num;
	bool addr_set;
	bool enabled;
	bool started;         /* kick fd received, not stopped */
	bool broken;          /* guest corrupted ring indices; stop using it */
	uint64_t desc_uva, avail_uva, used_uva;
	uint8_t *desc;        /* host pointers, NULL until translated */
	uint8_t *avail;
	uint8_t *used;
	uint16_t last_avail;
	uint16_t used_idx;
	int kick_fd;
	int call_fd;
	int err_fd;
	unsigned int kick_gen; /* bumped on every kick fd change */
	unsigned int pushed;   /* used entries since last notify */
	/* counters, logged at exit (how well notifications are batched) */
	uint64_t n_used;       /* chains returned to the guest */
	uint64_t n_calls;      /* interrupts requested (call fd written) */
	uint64_t n_kicks;      /* kicks received */
};

struct vsd_chain {
	uint16_t head;
	unsigned int n_out, n_in;
	size_t out_len, in_len;
	struct iovec out[VSD_CHAIN_MAX_IOV]; /* device-readable */
	struct iovec in[VSD_CHAIN_MAX_IOV];  /* device-writable */
};

void vsd_vring_init(struct vsd_vring *vr);
/* Re-translates ring addresses through mem; -EFAULT if they do not fit. */
int vsd_vring_translate(struct vsd_vring *vr, const struct vsd_mem *mem);
bool vsd_vring_ready(const struct vsd_vring *vr);
/*
 * Takes the next available chain.  -EAGAIN: nothing available.  -EIO: the
 * ring indices are corrupt, the ring is now marked broken.  -EINVAL: the
 * chain was malformed; it was already returned to the used ring with
 * length 0 and ret_chain->head is set.  0: ret_chain filled.
 */
int vsd_vring_pop(struct vsd_vring *vr, const struct vsd_mem *mem, bool indirect,
		  struct vsd_chain *ret_chain);
/* Gives the last popped chain back (next pop returns it again). */
void vsd_vring_unpop(struct vsd_vring *vr);
void vsd_vring_push(struct vsd_vring *vr, uint16_t head, uint32_t len);
/* Asks the guest not to kick (enable=false) while we are draining the
 * ring anyway, or to kick again.  Re-enabling returns true if entries
 * arrived meanwhile (the caller must keep going). */
bool vsd_vring_set_notify(struct vsd_vring *vr, bool enable);
/* Signals the call eventfd if entries were pushed and the guest wants it. */
void vsd_vring_notify(struct vsd_vring *vr);

size_t vsd_iov_copy_from(const struct iovec *iov, unsigned int n, size_t off, void *dst,
			 size_t len);
size_t vsd_iov_copy_to(const struct iovec *iov, unsigned int n, size_t off, const void *src,
		       size_t len);
/* Builds into out[] the sub-vector [off, off+len) of iov; returns count. */
unsigned int vsd_iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t len,
			   struct iovec *out, unsigned int out_max);

/* ---- virtio-vsock connections and host side ---- */
struct vsd_vsock;
struct vsd_dev;

enum vsd_watch_kind {
	VSD_W_VU_LISTEN,
	VSD_W_VU_CONN,
	VSD_W_KICK,
	VSD_W_HOST_LISTEN,
	VSD_W_HOST_PENDING,
	VSD_W_CONN,
};

/* Embedded in every object the epoll loop watches (epoll data.ptr). */
struct vsd_watch {
	enum vsd_watch_kind kind;
	int fd;
};

struct vsd_stats {
	uint64_t bad_chains;
	uint64_t bad_packets;
	uint64_t rst_sent;
	uint64_t rst_dropped;
	uint64_t conns_opened;
	uint64_t credit_violations;
	uint64_t connect_timeouts;
};

/*
 * Creates the connection layer.  uds_path is the hybrid-convention base
 * path: host listeners for guest port P sit at "<uds_path>_P", host clients
 * connect to uds_path itself (listened on by vsd_vsock_listen).  epfd is the
 * epoll instance unix fds are added to.
 */
int vsd_vsock_new(uint64_t guest_cid, const char *uds_path, int epfd,
		  struct vsd_vsock **ret);
void vsd_vsock_free(struct vsd_vsock *v);
int vsd_vsock_listen(struct vsd_vsock *v);
/* Removes the uds_path listening socket from the file system. */
void vsd_vsock_unlink(struct vsd_vsock *v);
/* Closes every connection (device reset); host clients see EOF. */
void vsd_vsock_reset_all(struct vsd_vsock *v);
/* Handles one packet the guest sent.  payload is the packet's data
 * (already bounds-checked against the chain): iov/n covering hdr->len. */
void vsd_vsock_handle_tx(struct vsd_vsock *v, const struct vsd_pkt_hdr *untrusted_hdr,
			 const struct iovec *untrusted_payload, unsigned int n);
/* Processes the tx queue (guest -> host); returns true if work remains. */
bool vsd_vsock_process_tx(struct vsd_vsock *v, struct vsd_dev *dev);
/* Work held back while the guest streams (credit reports below the
 * threshold, tx completion interrupts).  The caller runs
 * vsd_vsock_flush_idle once nothing happened for about a millisecond, and
 * at least every millisecond while busy. */
bool vsd_vsock_idle_work(const struct vsd_vsock *v, const struct vsd_dev *dev);
void vsd_vsock_flush_idle(struct vsd_vsock *v, struct vsd_dev *dev);
/* Fills rx buffers (host -> guest) while there is something to send. */
void vsd_vsock_process_rx(struct vsd_vsock *v, struct vsd_dev *dev);
/* epoll events on a watch owned by the vsock layer. */
void vsd_vsock_handle_event(struct vsd_vsock *v, struct vsd_watch *w, uint32_t events);
const struct vsd_stats *vsd_vsock_stats(const struct vsd_vsock *v);
/* Host-initiated connections the guest has not answered within ms (0: no
 * limit) are reset; default VSD_CONNECT_TIMEOUT_MS. */
void vsd_vsock_set_connect_timeout(struct vsd_vsock *v, unsigned int ms);
/* Resets expired host-initiated connections; returns milliseconds until
 * the next deadline, or -1 if none is pending. */
int vsd_vsock_expire(struct vsd_vsock *v);
unsigned int vsd_vsock_conn_count(const struct vsd_vsock *v);
/* True if there are packets queued for the guest. */
bool vsd_vsock_rx_pending(const struct vsd_vsock *v);

/* ---- vhost-user device ---- */
struct vsd_vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint8_t payload[VSD_VU_MAX_PAYLOAD];
};

typedef void (*vsd_log_fn)(void *opaque, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct vsd_dev {
	uint64_t guest_cid;
	uint64_t features;           /* acked by the front-end */
	uint64_t protocol_features;  /* acked */
	bool owner;
	struct vsd_mem mem;
	struct vsd_vring vq[VSD_NUM_VQ];
	struct vsd_vsock *vsock;     /* not owned */
	vsd_log_fn log;              /* optional */
	void *log_opaque;
};

uint64_t vsd_dev_supported_features(void);
uint64_t vsd_dev_supported_protocol_features(void);
void vsd_dev_init(struct vsd_dev *dev, uint64_t guest_cid, struct vsd_vsock *vsock);
/* Unmaps memory, closes ring fds. */
void vsd_dev_finish(struct vsd_dev *dev);
bool vsd_dev_indirect(const struct vsd_dev *dev);

/*
 * Handles one message.  fds (count nfds) are owned by the callee from here
 * on: used or closed.  If *ret_reply is true on return, reply holds a
 * message to send back.  Returns 0, or a negative errno when the message
 * was rejected (a NEED_REPLY ack then carries the failure).
 * A decoding error that breaks the stream framing is the caller's business
 * (see vsd_vu_check_header).
 */
int vsd_dev_handle_msg(struct vsd_dev *dev, const struct vsd_vu_msg *untrusted_msg, int *fds,
		       size_t nfds, struct vsd_vu_msg *reply, bool *ret_reply);
/* Validates a received header: version bits and payload size cap. */
int vsd_vu_check_header(uint32_t untrusted_flags, uint32_t untrusted_size);
const char *vsd_vu_request_name(uint32_t request);

#endif
