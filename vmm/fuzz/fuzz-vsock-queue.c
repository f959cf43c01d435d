/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qube-vsockd's virtqueue walking and virtio-vsock
 * packet handling, end to end.  The input is the guest's RAM (64 KiB at
 * guest-physical 0): descriptor tables, available rings and buffers are all
 * fuzzer-controlled.  Fixed ring placement (16 entries each):
 *   rx desc 0x000 avail 0x100 used 0x200 | tx desc 0x400 avail 0x500 used 0x600
 * The host side is real: a unix listener at <uds>_1024 (so REQUESTs to
 * port 1024 connect and RW data flows into real sockets) and a host client
 * that asks for guest port 7 through CONNECT.  Every run starts from a
 * clean connection table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vsockd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM 65536u
#define QSZ 16u

static uint8_t *ram;
static int epfd = -1, lfd = -1;
static struct vsd_vsock *vs;
static char uds[64], tmpdir[32], l1024[96];

/* Leaves nothing behind in /tmp. */
static void teardown(void)
{
	vsd_vsock_unlink(vs);
	unlink(l1024);
	rmdir(tmpdir);
}

static void setup(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (vs)
		return;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/fuzz-vsock.XXXXXX");
	ram = aligned_alloc(4096, RAM);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!ram || epfd < 0 || !mkdtemp(tmpdir))
		__builtin_trap();
	snprintf(uds, sizeof(uds), "%s/v", tmpdir);
	if (vsd_vsock_new(3, uds, epfd, &vs) < 0 || vsd_vsock_listen(vs) < 0)
		__builtin_trap();
	snprintf(l1024, sizeof(l1024), "%s_1024", uds);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l1024);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 64) < 0)
		__builtin_trap();
	atexit(teardown);
}

static void dispatch(void)
{
	struct epoll_event evs[32];
	int n = epoll_wait(epfd, evs, 32, 0);

	for (int i = 0; i < n; i++)
		vsd_vsock_handle_event(vs, evs[i].data.ptr, evs[i].events);
}

static void ring(struct vsd_dev *dev, unsigned int q, uint64_t base)
{
	struct vsd_vring *vr = &dev->vq[q];

	vr->num = QSZ;
	vr->desc_uva = base;
	vr->avail_uva = base + 0x100;
	vr->used_uva = base + 0x200;
	vr->addr_set = true;
	vr->started = vr->enabled = true;
	if (vsd_vring_translate(vr, &dev->mem) < 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct vsd_dev dev;
	uint32_t port;
	int cfd, a;

	setup();
	(void)vsd_parse_connect_line((const char *)data, size < 40 ? size : 40, &port);

	memset(ram, 0, RAM);
	memcpy(ram, data, size < RAM ? size : RAM);
	vsd_dev_init(&dev, 3, vs);
	dev.features = (1ull << VSD_VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VSD_VIRTIO_F_VERSION_1);
	dev.mem.n = 1;
	dev.mem.r[0] = (struct vsd_mem_region){ .gpa = 0, .size = RAM, .uva = 0, .host = ram };
	ring(&dev, VSD_VQ_RX, 0x000);
	ring(&dev, VSD_VQ_TX, 0x400);

	/* a host client asking for guest port 7 */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", uds);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cfd >= 0 && connect(cfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
	    write(cfd, "CONNECT 7\nhost-data", 19) != 19)
		__builtin_trap();
	dispatch();
	dispatch();

	for (int round = 0; round < 4; round++) {
		bool more = vsd_vsock_process_tx(vs, &dev);

		dispatch();
		vsd_vsock_process_rx(vs, &dev);
		if (vsd_vsock_idle_work(vs, &dev))
			vsd_vsock_flush_idle(vs, &dev);
		if (!more && !vsd_vsock_rx_pending(vs))
			break;
	}
	/* Every chain taken was completed, in order: nothing held back,
	 * nothing returned twice. */
	for (unsigned int q = 0; q < VSD_NUM_VQ; q++) {
		if (dev.vq[q].used_idx != dev.vq[q].last_avail)
			__builtin_trap();
	}

	vsd_vsock_reset_all(vs);
	if (cfd >= 0)
		close(cfd);
	while ((a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(a);
	dispatch();
	dev.vsock = NULL;
	vsd_dev_finish(&dev);
	return 0;
}
