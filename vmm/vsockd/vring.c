/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory table and split virtqueues.
 *
 * Everything the guest can write (descriptor tables, ring indices, buffer
 * contents) is read once into local variables before it is checked, so a
 * guest changing memory under us cannot turn a checked value into an
 * unchecked one.  Every descriptor is translated through the memory table
 * with overflow-checked bounds and must lie inside a single region.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vsockd.h"

static uint16_t le16_at(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* Ring indices are shared with the guest: single aligned 16-bit accesses
 * through atomics so the compiler neither tears nor re-reads them. */
static uint16_t ring_load16(const uint8_t *p)
{
	return le16toh(atomic_load_explicit((_Atomic const uint16_t *)(const void *)p,
					    memory_order_relaxed));
}

static void ring_store16(uint8_t *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)(void *)p, htole16(v), memory_order_relaxed);
}

static void ring_store32(uint8_t *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)(void *)p, htole32(v), memory_order_relaxed);
}

static void *region_lookup(const struct vsd_mem *mem, uint64_t addr, uint64_t len, bool uva)
{
	uint64_t end;

	if (__builtin_add_overflow(addr, len, &end))
		return NULL;
	for (unsigned int i = 0; i < mem->n; i++) {
		const struct vsd_mem_region *r = &mem->r[i];
		uint64_t start = uva ? r->uva : r->gpa;

		/* start + size cannot overflow: checked when the table was set. */
		if (addr >= start && end <= start + r->size)
			return r->host + (addr - start);
	}
	return NULL;
}

void *vsd_mem_gpa(const struct vsd_mem *mem, uint64_t gpa, uint64_t len)
{
	return region_lookup(mem, gpa, len, false);
}

void *vsd_mem_uva(const struct vsd_mem *mem, uint64_t uva, uint64_t len)
{
	return region_lookup(mem, uva, len, true);
}

void vsd_mem_clear(struct vsd_mem *mem)
{
	for (unsigned int i = 0; i < mem->n; i++) {
		if (mem->r[i].map)
			munmap(mem->r[i].map, mem->r[i].map_len);
	}
	memset(mem, 0, sizeof(*mem));
}

void vsd_vring_init(struct vsd_vring *vr)
{
	memset(vr, 0, sizeof(*vr));
	vr->kick_fd = -1;
	vr->call_fd = -1;
	vr->err_fd = -1;
}

int vsd_vring_translate(struct vsd_vring *vr, const struct vsd_mem *mem)
{
	uint8_t *desc, *avail, *used;

	vr->desc = vr->avail = vr->used = NULL;
	if (!vr->addr_set || vr->num == 0)
		return -EINVAL;
	/* Sizes per virtio 1.x 2.7 (split ring), including the event index
	 * words so EVENT_IDX never reads past the ring. */
	desc = vsd_mem_uva(mem, vr->desc_uva, 16ull * vr->num);
	avail = vsd_mem_uva(mem, vr->avail_uva, 6ull + 2ull * vr->num);
	used = vsd_mem_uva(mem, vr->used_uva, 6ull + 8ull * vr->num);
	if (!desc || !avail || !used)
		return -EFAULT;
	if ((uintptr_t)desc % 16 || (uintptr_t)avail % 2 || (uintptr_t)used % 4)
		return -EFAULT;
	vr->desc = desc;
	vr->avail = avail;
	vr->used = used;
	return 0;
}

bool vsd_vring_ready(const struct vsd_vring *vr)
{
	return vr->started && vr->enabled && !vr->broken && vr->desc && vr->avail && vr->used;
}

struct raw_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static void desc_read(const uint8_t *table, unsigned int i, struct raw_desc *d)
{
	const uint8_t *p = table + 16u * i;

	d->addr = le64_at(p);
	d->len = le32_at(p + 8);
	d->flags = le16_at(p + 12);
	d->next = le16_at(p + 14);
}

static int chain_add(struct vsd_chain *c, const struct vsd_mem *mem, const struct raw_desc *d)
{
	void *host;

	if (d->len == 0)
		return 0;
	host = vsd_mem_gpa(mem, d->addr, d->len);
	if (!host)
		return -EFAULT;
	if (d->flags & VSD_VRING_DESC_F_WRITE) {
		if (c->n_in >= VSD_CHAIN_MAX_IOV)
			return -E2BIG;
		c->in[c->n_in].iov_base = host;
		c->in[c->n_in].iov_len = d->len;
		c->n_in++;
		c->in_len += d->len;
	} else {
		/* Device-readable descriptors must precede writable ones. */
		if (c->n_in > 0 || c->n_out >= VSD_CHAIN_MAX_IOV)
			return -EINVAL;
		c->out[c->n_out].iov_base = host;
		c->out[c->n_out].iov_len = d->len;
		c->n_out++;
		c->out_len += d->len;
	}
	return 0;
}

static int walk_indirect(struct vsd_chain *c, const struct vsd_mem *mem, const struct raw_desc *d)
{
	const uint8_t *table;
	unsigned int count, i, steps;
	struct raw_desc id;
	int r;

	if (d->len == 0 || d->len % 16 || d->len / 16 > VSD_INDIRECT_MAX)
		return -EINVAL;
	count = d->len / 16;
	table = vsd_mem_gpa(mem, d->addr, d->len);
	if (!table || (uintptr_t)table % 2)
		return -EFAULT;
	i = 0;
	for (steps = 0;; steps++) {
		if (steps >= count)
			return -ELOOP;
		desc_read(table, i, &id);
		if (id.flags & VSD_VRING_DESC_F_INDIRECT)
			return -EINVAL; /* nested indirect tables are forbidden */
		r = chain_add(c, mem, &id);
		if (r < 0)
			return r;
		if (!(id.flags & VSD_VRING_DESC_F_NEXT))
			return 0;
		if (id.next >= count)
			return -EINVAL;
		i = id.next;
	}
}

static int walk_chain(struct vsd_vring *vr, const struct vsd_mem *mem, bool indirect,
		      uint16_t head, struct vsd_chain *c)
{
	struct raw_desc d;
	unsigned int i = head, steps;
	int r;

	for (steps = 0;; steps++) {
		if (steps >= vr->num)
			return -ELOOP;
		desc_read(vr->desc, i, &d);
		if (d.flags & VSD_VRING_DESC_F_INDIRECT) {
			/* Only as the sole descriptor's role: NEXT together
			 * with INDIRECT is forbidden by the spec. */
			if (!indirect || (d.flags & VSD_VRING_DESC_F_NEXT) || steps != 0)
				return -EINVAL;
			return walk_indirect(c, mem, &d);
		}
		r = chain_add(c, mem, &d);
		if (r < 0)
			return r;
		if (!(d.flags & VSD_VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= vr->num)
			return -EINVAL;
		i = d.next;
	}
}

int vsd_vring_pop(struct vsd_vring *vr, const struct vsd_mem *mem, bool indirect,
		  struct vsd_chain *ret_chain)
{
	uint16_t avail_idx, head;
	int r;

	if (!vsd_vring_ready(vr))
		return -EAGAIN;
	avail_idx = ring_load16(vr->avail + 2);
	if (avail_idx == vr->last_avail)
		return -EAGAIN;
	if ((uint16_t)(avail_idx - vr->last_avail) > vr->num) {
		vr->broken = true;
		return -EIO;
	}
	/* Read the ring entry only after seeing the index (pairs with the
	 * guest's write barrier before publishing avail->idx). */
	atomic_thread_fence(memory_order_acquire);
	head = ring_load16(vr->avail + 4 + 2u * (vr->last_avail % vr->num));
	if (head >= vr->num) {
		/* Cannot be returned through the used ring: the ring is
		 * unusable from here on. */
		vr->broken = true;
		return -EIO;
	}
	vr->last_avail++;

	ret_chain->head = head;
	ret_chain->n_in = ret_chain->n_out = 0;
	ret_chain->in_len = ret_chain->out_len = 0;
	r = walk_chain(vr, mem, indirect, head, ret_chain);
	if (r < 0) {
		vsd_vring_push(vr, head, 0);
		return -EINVAL;
	}
	return 0;
}

void vsd_vring_unpop(struct vsd_vring *vr)
{
	vr->last_avail--;
}

void vsd_vring_push(struct vsd_vring *vr, uint16_t head, uint32_t len)
{
	uint8_t *elem;

	if (!vr->used)
		return;
	elem = vr->used + 4 + 8u * (vr->used_idx % vr->num);
	ring_store32(elem, head);
	ring_store32(elem + 4, len);
	/* The element must be visible before the index that publishes it. */
	atomic_thread_fence(memory_order_release);
	vr->used_idx++;
	ring_store16(vr->used + 2, vr->used_idx);
	vr->pushed++;
	vr->n_used++;
}

bool vsd_vring_set_notify(struct vsd_vring *vr, bool enable)
{
	if (!vsd_vring_ready(vr))
		return false;
	ring_store16(vr->used, enable ? 0 : VSD_VRING_USED_F_NO_NOTIFY);
	if (!enable)
		return false;
	/* The flag store must be visible before we look at avail->idx
	 * again, or a kick suppressed just before could be lost. */
	atomic_thread_fence(memory_order_seq_cst);
	return ring_load16(vr->avail + 2) != vr->last_avail;
}

void vsd_vring_notify(struct vsd_vring *vr)
{
	uint64_t one = 1;
	uint16_t flags;

	if (!vr->pushed || vr->call_fd < 0 || !vr->avail)
		return;
	vr->pushed = 0;
	/* Order the used->idx store before reading the guest's flags. */
	atomic_thread_fence(memory_order_seq_cst);
	flags = ring_load16(vr->avail);
	if (flags & VSD_VRING_AVAIL_F_NO_INTERRUPT)
		return;
	vr->n_calls++;
	if (write(vr->call_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN means the counter is already non-zero: the guest
		 * will be interrupted anyway.  Nothing else to do. */
	}
}

/* Copies LEN bytes between BUF and the iovec's bytes from offset OFF on,
 * toward the iovec when TO_IOV; returns how many fitted. */
static size_t iov_copy(const struct iovec *iov, unsigned int n, size_t off, uint8_t *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = l - off;
		if (take > len - done)
			take = len - done;
		uint8_t *in_iov = (uint8_t *)iov[i].iov_base + off;
		if (to_iov)
			memcpy(in_iov, buf + done, take);
		else
			memcpy(buf + done, in_iov, take);
		done += take;
		off = 0;
	}
	return done;
}

size_t vsd_iov_copy_from(const struct iovec *iov, unsigned int n, size_t off, void *dst,
			 size_t len)
{
	return iov_copy(iov, n, off, dst, len, false);
}

size_t vsd_iov_copy_to(const struct iovec *iov, unsigned int n, size_t off, const void *src,
		       size_t len)
{
	/* iov_copy only reads BUF when copying toward the iovec */
	return iov_copy(iov, n, off, (uint8_t *)(uintptr_t)src, len, true);
}

unsigned int vsd_iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t len,
			   struct iovec *out, unsigned int out_max)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n && len > 0 && k < out_max; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		size_t take = l - off;
		if (take > len)
			take = len;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return k;
}

void vsd_pkt_hdr_decode(const uint8_t untrusted_wire[VSD_VSOCK_HDR_SIZE],
			struct vsd_pkt_hdr *ret_untrusted_hdr)
{
	const uint8_t *p = untrusted_wire;

	ret_untrusted_hdr->src_cid = le64_at(p);
	ret_untrusted_hdr->dst_cid = le64_at(p + 8);
	ret_untrusted_hdr->src_port = le32_at(p + 16);
	ret_untrusted_hdr->dst_port = le32_at(p + 20);
	ret_untrusted_hdr->len = le32_at(p + 24);
	ret_untrusted_hdr->type = le16_at(p + 28);
	ret_untrusted_hdr->op = le16_at(p + 30);
	ret_untrusted_hdr->flags = le32_at(p + 32);
	ret_untrusted_hdr->buf_alloc = le32_at(p + 36);
	ret_untrusted_hdr->fwd_cnt = le32_at(p + 40);
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

void vsd_pkt_hdr_encode(const struct vsd_pkt_hdr *hdr, uint8_t wire[VSD_VSOCK_HDR_SIZE])
{
	put64(wire, hdr->src_cid);
	put64(wire + 8, hdr->dst_cid);
	put32(wire + 16, hdr->src_port);
	put32(wire + 20, hdr->dst_port);
	put32(wire + 24, hdr->len);
	put16(wire + 28, hdr->type);
	put16(wire + 30, hdr->op);
	put32(wire + 32, hdr->flags);
	put32(wire + 36, hdr->buf_alloc);
	put32(wire + 40, hdr->fwd_cnt);
}

int vsd_parse_connect_line(const char *untrusted_line, size_t len, uint32_t *ret_port)
{
	static const char prefix[] = "CONNECT ";
	const size_t plen = sizeof(prefix) - 1;
	uint64_t port = 0;
	size_t i;

	if (len < plen + 2 || len > VSD_CONNECT_LINE_MAX)
		return -EINVAL;
	if (memcmp(untrusted_line, prefix, plen) != 0 || untrusted_line[len - 1] != '\n')
		return -EINVAL;
	if (untrusted_line[plen] == '0' && len - 1 - plen > 1)
		return -EINVAL; /* leading zero */
	for (i = plen; i < len - 1; i++) {
		char ch = untrusted_line[i];

		if (ch < '0' || ch > '9')
			return -EINVAL;
		port = port * 10 + (uint64_t)(ch - '0');
		if (port > UINT32_MAX)
			return -EINVAL;
	}
	*ret_port = (uint32_t)port;
	return 0;
}
