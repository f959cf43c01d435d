/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the vhost-user message handler of qube-vsockd.
 *
 * The input is a stream of messages in wire form (12-byte header, then the
 * payload; a short last payload is cut).  Bits 8-11 of each message's flags
 * word are not sent to the handler: they say how many fds accompany the
 * message (dups of a 1 MiB memfd for SET_MEM_TABLE, of an eventfd for
 * everything else), so memory tables really get mapped and ring fds
 * replaced.  Messages whose header the daemon would refuse end the stream,
 * as they end the daemon's session.
 */
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vsockd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1, evfd = -1;

static void setup(void)
{
	if (memfd >= 0)
		return;
	memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, 1 << 20) < 0)
		__builtin_trap();
	evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (evfd < 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vsd_vu_msg msg, reply;
	struct vsd_dev dev;
	size_t off = 0;

	setup();
	vsd_dev_init(&dev, 3, NULL);
	while (size - off >= VSD_VU_HDR_SIZE) {
		uint32_t untrusted_flags, nfds;
		int fds[VSD_VU_MAX_FDS];
		size_t take;
		bool has_reply;

		memcpy(&msg.request, data + off, 4);
		memcpy(&untrusted_flags, data + off + 4, 4);
		memcpy(&msg.size, data + off + 8, 4);
		off += VSD_VU_HDR_SIZE;
		nfds = (untrusted_flags >> 8) & 0xf;
		msg.flags = untrusted_flags & ~0xf00u;
		if (vsd_vu_check_header(msg.flags, msg.size) < 0)
			break;
		take = size - off < msg.size ? size - off : msg.size;
		memset(msg.payload, 0, sizeof(msg.payload));
		memcpy(msg.payload, data + off, take);
		off += take;
		if (nfds > VSD_VU_MAX_FDS)
			nfds = VSD_VU_MAX_FDS;
		for (uint32_t i = 0; i < nfds; i++)
			fds[i] = dup(msg.request == VSD_VU_SET_MEM_TABLE ? memfd : evfd);
		(void)vsd_dev_handle_msg(&dev, &msg, fds, nfds, &reply, &has_reply);
		if (has_reply && reply.size > VSD_VU_MAX_PAYLOAD)
			__builtin_trap();
		/* Whatever the messages did, ring pointers stay inside the
		 * mapped table. */
		for (unsigned int q = 0; q < VSD_NUM_VQ; q++) {
			struct vsd_vring *vr = &dev.vq[q];
			struct vsd_chain ch;

			if (vr->desc && !vsd_mem_uva(&dev.mem, vr->desc_uva, 16ull * vr->num))
				__builtin_trap();
			if (vsd_vring_ready(vr))
				(void)vsd_vring_pop(vr, &dev.mem, vsd_dev_indirect(&dev), &ch);
		}
	}
	vsd_dev_finish(&dev);
	return 0;
}
