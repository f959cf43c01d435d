/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user back-end state machine for the vsock device.
 *
 * The front-end (QEMU) is less trusted than the host but more than the
 * guest: it can only hurt its own qube, yet a malformed message must never
 * crash us or make us touch memory outside what it mapped.  Every payload
 * size is checked against the request type, every fd count is checked, and
 * a rejected message changes no state.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vsockd.h"

#define VSD_CONFIG_SIZE 8u /* struct virtio_vsock_config: le64 guest_cid */

uint64_t vsd_dev_supported_features(void)
{
	return (1ull << VSD_VIRTIO_F_VERSION_1) | (1ull << VSD_VIRTIO_RING_F_INDIRECT_DESC) |
	       (1ull << VSD_VHOST_USER_F_PROTOCOL_FEATURES);
}

uint64_t vsd_dev_supported_protocol_features(void)
{
	return (1ull << VSD_VU_PROTOCOL_F_MQ) | (1ull << VSD_VU_PROTOCOL_F_REPLY_ACK) |
	       (1ull << VSD_VU_PROTOCOL_F_CONFIG) | (1ull << VSD_VU_PROTOCOL_F_RESET_DEVICE);
}

void vsd_dev_init(struct vsd_dev *dev, uint64_t guest_cid, struct vsd_vsock *vsock)
{
	memset(dev, 0, sizeof(*dev));
	dev->guest_cid = guest_cid;
	dev->vsock = vsock;
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++)
		vsd_vring_init(&dev->vq[i]);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void close_fds(int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++)
		close_fd(&fds[i]);
}

void vsd_dev_finish(struct vsd_dev *dev)
{
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++) {
		close_fd(&dev->vq[i].kick_fd);
		close_fd(&dev->vq[i].call_fd);
		close_fd(&dev->vq[i].err_fd);
	}
	vsd_mem_clear(&dev->mem);
}

bool vsd_dev_indirect(const struct vsd_dev *dev)
{
	return dev->features & (1ull << VSD_VIRTIO_RING_F_INDIRECT_DESC);
}

static bool protocol_features_acked(const struct vsd_dev *dev)
{
	return dev->features & (1ull << VSD_VHOST_USER_F_PROTOCOL_FEATURES);
}

int vsd_vu_check_header(uint32_t untrusted_flags, uint32_t untrusted_size)
{
	if ((untrusted_flags & VSD_VU_FLAG_VERSION_MASK) != VSD_VU_VERSION)
		return -EPROTO;
	if (untrusted_flags & VSD_VU_FLAG_REPLY)
		return -EPROTO; /* the front-end never sends replies to us */
	if (untrusted_size > VSD_VU_MAX_PAYLOAD)
		return -EMSGSIZE;
	return 0;
}

const char *vsd_vu_request_name(uint32_t request)
{
	switch (request) {
	case VSD_VU_GET_FEATURES: return "GET_FEATURES";
	case VSD_VU_SET_FEATURES: return "SET_FEATURES";
	case VSD_VU_SET_OWNER: return "SET_OWNER";
	case VSD_VU_RESET_OWNER: return "RESET_OWNER";
	case VSD_VU_SET_MEM_TABLE: return "SET_MEM_TABLE";
	case VSD_VU_SET_LOG_BASE: return "SET_LOG_BASE";
	case VSD_VU_SET_LOG_FD: return "SET_LOG_FD";
	case VSD_VU_SET_VRING_NUM: return "SET_VRING_NUM";
	case VSD_VU_SET_VRING_ADDR: return "SET_VRING_ADDR";
	case VSD_VU_SET_VRING_BASE: return "SET_VRING_BASE";
	case VSD_VU_GET_VRING_BASE: return "GET_VRING_BASE";
	case VSD_VU_SET_VRING_KICK: return "SET_VRING_KICK";
	case VSD_VU_SET_VRING_CALL: return "SET_VRING_CALL";
	case VSD_VU_SET_VRING_ERR: return "SET_VRING_ERR";
	case VSD_VU_GET_PROTOCOL_FEATURES: return "GET_PROTOCOL_FEATURES";
	case VSD_VU_SET_PROTOCOL_FEATURES: return "SET_PROTOCOL_FEATURES";
	case VSD_VU_GET_QUEUE_NUM: return "GET_QUEUE_NUM";
	case VSD_VU_SET_VRING_ENABLE: return "SET_VRING_ENABLE";
	case VSD_VU_SET_SLAVE_REQ_FD: return "SET_BACKEND_REQ_FD";
	case VSD_VU_SET_VRING_ENDIAN: return "SET_VRING_ENDIAN";
	case VSD_VU_GET_CONFIG: return "GET_CONFIG";
	case VSD_VU_SET_CONFIG: return "SET_CONFIG";
	case VSD_VU_RESET_DEVICE: return "RESET_DEVICE";
	case VSD_VU_GET_MAX_MEM_SLOTS: return "GET_MAX_MEM_SLOTS";
	case VSD_VU_SET_STATUS: return "SET_STATUS";
	case VSD_VU_GET_STATUS: return "GET_STATUS";
	default: return "unknown";
	}
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void reply_u64(struct vsd_vu_msg *reply, uint32_t request, uint64_t v)
{
	reply->request = request;
	reply->flags = VSD_VU_VERSION | VSD_VU_FLAG_REPLY;
	reply->size = 8;
	memcpy(reply->payload, &v, sizeof(v));
}

static void reply_state(struct vsd_vu_msg *reply, uint32_t request, uint32_t index, uint32_t num)
{
	reply->request = request;
	reply->flags = VSD_VU_VERSION | VSD_VU_FLAG_REPLY;
	reply->size = 8;
	memcpy(reply->payload, &index, 4);
	memcpy(reply->payload + 4, &num, 4);
}

static void stop_ring(struct vsd_dev *dev, struct vsd_vring *vr)
{
	vr->started = false;
	close_fd(&vr->kick_fd);
	vr->kick_gen++;
}

static void reset_device(struct vsd_dev *dev)
{
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++) {
		struct vsd_vring *vr = &dev->vq[i];

		stop_ring(dev, vr);
		vr->enabled = false;
		vr->broken = false;
		vr->last_avail = vr->used_idx = 0;
	}
	if (dev->vsock)
		vsd_vsock_reset_all(dev->vsock);
}

static int set_mem_table(struct vsd_dev *dev, const struct vsd_vu_msg *untrusted_msg, int *fds,
			 size_t nfds)
{
	struct vsd_mem next;
	uint32_t n;
	int r = 0;

	memset(&next, 0, sizeof(next));
	if (untrusted_msg->size < 8)
		return -EINVAL;
	n = get32(untrusted_msg->payload);
	if (n == 0 || n > VSD_VU_MAX_REGIONS || untrusted_msg->size != 8 + 32 * n || nfds != n)
		return -EINVAL;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = untrusted_msg->payload + 8 + 32 * i;
		uint64_t gpa = get64(p), size = get64(p + 8), uva = get64(p + 16),
			 off = get64(p + 24), end, map_len;
		struct stat st;
		void *map;

		if (size == 0 || __builtin_add_overflow(gpa, size, &end) ||
		    __builtin_add_overflow(uva, size, &end) ||
		    __builtin_add_overflow(off, size, &map_len) || map_len > SIZE_MAX ||
		    map_len > (uint64_t)INT64_MAX) {
			r = -EINVAL;
			goto err_unmap;
		}
		/* Mapping past the end of the file would fault on access. */
		if (fstat(fds[i], &st) < 0) {
			r = -errno;
			goto err_unmap;
		}
		if ((uint64_t)st.st_size < map_len) {
			r = -EINVAL;
			goto err_unmap;
		}
		map = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
		if (map == MAP_FAILED) {
			r = -errno;
			goto err_unmap;
		}
		next.r[i] = (struct vsd_mem_region){
			.gpa = gpa,
			.size = size,
			.uva = uva,
			.host = (uint8_t *)map + off,
			.map = map,
			.map_len = (size_t)map_len,
		};
		next.n = i + 1;
	}
	close_fds(fds, nfds);
	vsd_mem_clear(&dev->mem);
	dev->mem = next;
	for (unsigned int i = 0; i < VSD_NUM_VQ; i++) {
		if (dev->vq[i].addr_set)
			(void)vsd_vring_translate(&dev->vq[i], &dev->mem);
	}
	return 0;

err_unmap:
	vsd_mem_clear(&next);
	return r;
}

static int replace_ring_fd(struct vsd_dev *dev, const struct vsd_vu_msg *untrusted_msg, int *fds,
			   size_t nfds, struct vsd_vring **ret_vr, int *ret_fd)
{
	uint64_t v;
	unsigned int idx;

	if (untrusted_msg->size != 8)
		return -EINVAL;
	v = get64(untrusted_msg->payload);
	idx = v & VSD_VU_VRING_IDX_MASK;
	if (idx >= VSD_NUM_VQ || (v & ~(uint64_t)(VSD_VU_VRING_IDX_MASK | VSD_VU_VRING_NOFD)))
		return -EINVAL;
	if (v & VSD_VU_VRING_NOFD) {
		if (nfds != 0)
			return -EINVAL;
		*ret_fd = -1;
	} else {
		if (nfds != 1)
			return -EINVAL;
		*ret_fd = fds[0];
		fds[0] = -1;
	}
	*ret_vr = &dev->vq[idx];
	return 0;
}

static int get_state(const struct vsd_vu_msg *untrusted_msg, unsigned int *ret_idx,
		     uint32_t *ret_num)
{
	uint32_t idx;

	if (untrusted_msg->size != 8)
		return -EINVAL;
	idx = get32(untrusted_msg->payload);
	if (idx >= VSD_NUM_VQ)
		return -EINVAL;
	*ret_idx = idx;
	*ret_num = get32(untrusted_msg->payload + 4);
	return 0;
}

static int handle(struct vsd_dev *dev, const struct vsd_vu_msg *untrusted_msg, int *fds, size_t nfds,
		  struct vsd_vu_msg *reply, bool *has_reply)
{
	unsigned int idx;
	uint32_t num;
	uint64_t v;
	struct vsd_vring *vr;
	int fd, r;

	switch (untrusted_msg->request) {
	case VSD_VU_SET_MEM_TABLE:
	case VSD_VU_SET_VRING_KICK:
	case VSD_VU_SET_VRING_CALL:
	case VSD_VU_SET_VRING_ERR:
		break;
	default:
		if (nfds != 0)
			return -EINVAL;
	}

	switch (untrusted_msg->request) {
	case VSD_VU_GET_FEATURES:
		reply_u64(reply, untrusted_msg->request, vsd_dev_supported_features());
		*has_reply = true;
		return 0;
	case VSD_VU_SET_FEATURES:
		if (untrusted_msg->size != 8)
			return -EINVAL;
		v = get64(untrusted_msg->payload);
		if (v & ~vsd_dev_supported_features())
			return -EINVAL;
		dev->features = v;
		return 0;
	case VSD_VU_GET_PROTOCOL_FEATURES:
		reply_u64(reply, untrusted_msg->request, vsd_dev_supported_protocol_features());
		*has_reply = true;
		return 0;
	case VSD_VU_SET_PROTOCOL_FEATURES:
		if (untrusted_msg->size != 8)
			return -EINVAL;
		v = get64(untrusted_msg->payload);
		if (v & ~vsd_dev_supported_protocol_features())
			return -EINVAL;
		dev->protocol_features = v;
		return 0;
	case VSD_VU_GET_QUEUE_NUM:
		reply_u64(reply, untrusted_msg->request, VSD_NUM_VQ);
		*has_reply = true;
		return 0;
	case VSD_VU_GET_MAX_MEM_SLOTS:
		reply_u64(reply, untrusted_msg->request, VSD_VU_MAX_REGIONS);
		*has_reply = true;
		return 0;
	case VSD_VU_SET_OWNER:
		dev->owner = true;
		return 0;
	case VSD_VU_RESET_OWNER:
	case VSD_VU_RESET_DEVICE:
		reset_device(dev);
		if (untrusted_msg->request == VSD_VU_RESET_OWNER)
			dev->owner = false;
		return 0;
	case VSD_VU_SET_MEM_TABLE:
		return set_mem_table(dev, untrusted_msg, fds, nfds);
	case VSD_VU_SET_VRING_NUM:
		r = get_state(untrusted_msg, &idx, &num);
		if (r < 0)
			return r;
		if (num == 0 || num > VSD_VRING_MAX_NUM || (num & (num - 1)) ||
		    dev->vq[idx].started)
			return -EINVAL;
		dev->vq[idx].num = num;
		if (dev->vq[idx].addr_set)
			(void)vsd_vring_translate(&dev->vq[idx], &dev->mem);
		return 0;
	case VSD_VU_SET_VRING_BASE:
		r = get_state(untrusted_msg, &idx, &num);
		if (r < 0)
			return r;
		if (num > UINT16_MAX || dev->vq[idx].started)
			return -EINVAL;
		/* We complete chains in order and never hold one across a
		 * stop, so the used index equals the avail index here. */
		dev->vq[idx].last_avail = dev->vq[idx].used_idx = (uint16_t)num;
		dev->vq[idx].broken = false;
		return 0;
	case VSD_VU_GET_VRING_BASE:
		r = get_state(untrusted_msg, &idx, &num);
		if (r < 0) {
			/* The front-end waits for an answer either way. */
			reply_state(reply, untrusted_msg->request, 0, 0);
			*has_reply = true;
			return r;
		}
		vr = &dev->vq[idx];
		stop_ring(dev, vr);
		reply_state(reply, untrusted_msg->request, idx, vr->last_avail);
		*has_reply = true;
		if (!dev->vq[VSD_VQ_RX].started && !dev->vq[VSD_VQ_TX].started && dev->vsock)
			vsd_vsock_reset_all(dev->vsock);
		return 0;
	case VSD_VU_SET_VRING_ADDR: {
		uint32_t flags;
		struct vsd_vring tmp;

		if (untrusted_msg->size != 40)
			return -EINVAL;
		idx = get32(untrusted_msg->payload);
		flags = get32(untrusted_msg->payload + 4);
		if (idx >= VSD_NUM_VQ || flags != 0 || dev->vq[idx].num == 0)
			return -EINVAL; /* flags: dirty logging is not supported */
		tmp = dev->vq[idx];
		tmp.desc_uva = get64(untrusted_msg->payload + 8);
		tmp.used_uva = get64(untrusted_msg->payload + 16);
		tmp.avail_uva = get64(untrusted_msg->payload + 24);
		tmp.addr_set = true;
		r = vsd_vring_translate(&tmp, &dev->mem);
		if (r < 0)
			return r;
		dev->vq[idx] = tmp;
		return 0;
	}
	case VSD_VU_SET_VRING_KICK:
		r = replace_ring_fd(dev, untrusted_msg, fds, nfds, &vr, &fd);
		if (r < 0)
			return r;
		if (fd < 0)
			return -EOPNOTSUPP; /* no kick fd means polling mode, which this backend does not offer */
		close_fd(&vr->kick_fd);
		vr->kick_fd = fd;
		vr->kick_gen++;
		vr->started = true;
		/* Without VHOST_USER_F_PROTOCOL_FEATURES rings start enabled. */
		if (!protocol_features_acked(dev))
			vr->enabled = true;
		return 0;
	case VSD_VU_SET_VRING_CALL:
		r = replace_ring_fd(dev, untrusted_msg, fds, nfds, &vr, &fd);
		if (r < 0)
			return r;
		close_fd(&vr->call_fd);
		vr->call_fd = fd;
		return 0;
	case VSD_VU_SET_VRING_ERR:
		r = replace_ring_fd(dev, untrusted_msg, fds, nfds, &vr, &fd);
		if (r < 0)
			return r;
		close_fd(&vr->err_fd);
		vr->err_fd = fd;
		return 0;
	case VSD_VU_SET_VRING_ENABLE:
		r = get_state(untrusted_msg, &idx, &num);
		if (r < 0)
			return r;
		if (num > 1)
			return -EINVAL;
		dev->vq[idx].enabled = num == 1;
		return 0;
	case VSD_VU_GET_CONFIG: {
		uint32_t off, size;
		uint8_t cfg[VSD_CONFIG_SIZE];
		uint64_t cid_le = htole64(dev->guest_cid);

		*has_reply = true;
		reply->request = untrusted_msg->request;
		reply->flags = VSD_VU_VERSION | VSD_VU_FLAG_REPLY;
		reply->size = 0; /* an empty reply tells the front-end we failed */
		if (untrusted_msg->size < VSD_VU_CONFIG_HDR)
			return -EINVAL;
		off = get32(untrusted_msg->payload);
		size = get32(untrusted_msg->payload + 4);
		if (size > VSD_VU_CONFIG_MAX || untrusted_msg->size != VSD_VU_CONFIG_HDR + size ||
		    off > VSD_CONFIG_SIZE || size > VSD_CONFIG_SIZE - off)
			return -EINVAL;
		memcpy(cfg, &cid_le, sizeof(cfg));
		memcpy(reply->payload, untrusted_msg->payload, VSD_VU_CONFIG_HDR);
		memcpy(reply->payload + VSD_VU_CONFIG_HDR, cfg + off, size);
		reply->size = VSD_VU_CONFIG_HDR + size;
		return 0;
	}
	case VSD_VU_SET_CONFIG:
		return -EPERM; /* the guest CID is fixed by the host */
	case VSD_VU_GET_STATUS:
		reply_u64(reply, untrusted_msg->request, 0);
		*has_reply = true;
		return -EOPNOTSUPP;
	case VSD_VU_SET_STATUS:
	case VSD_VU_SET_LOG_BASE:
	case VSD_VU_SET_LOG_FD:
	case VSD_VU_SET_SLAVE_REQ_FD:
	case VSD_VU_SET_VRING_ENDIAN:
	default:
		return -EOPNOTSUPP;
	}
}

int vsd_dev_handle_msg(struct vsd_dev *dev, const struct vsd_vu_msg *untrusted_msg, int *fds,
		       size_t nfds, struct vsd_vu_msg *reply, bool *ret_reply)
{
	bool has_reply = false;
	int r;

	if (untrusted_msg->size > VSD_VU_MAX_PAYLOAD) {
		r = -EMSGSIZE;
	} else {
		r = handle(dev, untrusted_msg, fds, nfds, reply, &has_reply);
	}
	close_fds(fds, nfds); /* whatever the handler did not take */
	if (r < 0 && dev->log)
		dev->log(dev->log_opaque, "vhost-user %s (%u) rejected: %s",
			 vsd_vu_request_name(untrusted_msg->request), untrusted_msg->request,
			 strerror(-r));
	if (!has_reply && (untrusted_msg->flags & VSD_VU_FLAG_NEED_REPLY)) {
		reply_u64(reply, untrusted_msg->request, r < 0 ? 1 : 0);
		has_reply = true;
	}
	*ret_reply = has_reply;
	return r;
}
