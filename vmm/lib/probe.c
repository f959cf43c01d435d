// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm: does KVM really work here, is vhost-vsock there.
 *
 * A /dev/kvm that opens is not enough: under some nested hypervisors it
 * creates VMs and vCPUs but offers so few CPUID features that QEMU's
 * default CPU model (and a Debian kernel) cannot run. So the probe goes
 * the whole way a guest would: API version, a VM, the supported CPUID
 * leaves checked against what an x86-64 Debian kernel needs, and a vCPU
 * in real mode that executes an OUT and a HLT.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qvmm.h"
#include "internal.h"

#define PROBE_CPUID_MAX 256
#define PROBE_MEM_SIZE 0x10000
#define PROBE_CODE_ADDR 0x1000
#define PROBE_PORT 0x80
#define PROBE_BYTE 0x5a

struct cpuid_need {
	uint32_t leaf;
	char reg;      /* 'c' ECX, 'd' EDX */
	unsigned bit;
	const char *name; /* /proc/cpuinfo spelling */
};

/*
 * What an x86-64 Debian kernel needs (the x86-64 baseline: long mode, NX,
 * SYSCALL, CMPXCHG8B, FXSR, SSE2 ...) plus SSE3 ("pni"), which QEMU's
 * default CPU model asks for and whose absence is what this machine's
 * nested KVM shows first.
 */
static const struct cpuid_need cpuid_needs[] = {
	{ 0x00000001, 'd', 0, "fpu" },
	{ 0x00000001, 'd', 3, "pse" },
	{ 0x00000001, 'd', 4, "tsc" },
	{ 0x00000001, 'd', 5, "msr" },
	{ 0x00000001, 'd', 6, "pae" },
	{ 0x00000001, 'd', 8, "cx8" },
	{ 0x00000001, 'd', 9, "apic" },
	{ 0x00000001, 'd', 13, "pge" },
	{ 0x00000001, 'd', 15, "cmov" },
	{ 0x00000001, 'd', 24, "fxsr" },
	{ 0x00000001, 'd', 25, "sse" },
	{ 0x00000001, 'd', 26, "sse2" },
	{ 0x00000001, 'c', 0, "pni" },
	{ 0x80000001, 'd', 11, "syscall" },
	{ 0x80000001, 'd', 20, "nx" },
	{ 0x80000001, 'd', 29, "lm" },
};

static bool why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return false;
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t leaf)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == leaf && c->entries[i].index == 0)
			return &c->entries[i];
	return NULL;
}

/* names of the needed features KVM does not offer, "" when none */
static void cpuid_missing(const struct kvm_cpuid2 *c, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(cpuid_needs); i++) {
		const struct cpuid_need *n = &cpuid_needs[i];
		const struct kvm_cpuid_entry2 *e = cpuid_find(c, n->leaf);
		uint32_t reg = e ? (n->reg == 'c' ? e->ecx : e->edx) : 0;

		if (reg & (1u << n->bit))
			continue;
		int w = snprintf(buf + off, len - off, "%s%s", off ? " " : "", n->name);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
}

/* a vCPU in real mode runs OUT PROBE_PORT, PROBE_BYTE; HLT */
static bool run_vcpu(int vm, int kvm, char *why, size_t whylen)
{
	static const uint8_t code[] = {
		0xb0, PROBE_BYTE,   /* mov $PROBE_BYTE, %al */
		0xe6, PROBE_PORT,   /* out %al, $PROBE_PORT */
		0xf4,               /* hlt */
	};
	bool ok = false;
	uint8_t *mem;
	int vcpu = -1;
	struct kvm_run *run = MAP_FAILED;
	long run_size;
	bool saw_out = false;

	mem = mmap(NULL, PROBE_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return why_set(why, whylen, "mmap of guest memory: %s", strerror(errno));
	memcpy(mem + PROBE_CODE_ADDR, code, sizeof(code));

	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = PROBE_MEM_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		why_set(why, whylen, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
		goto out_unmap;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	if (vcpu < 0) {
		why_set(why, whylen, "KVM_CREATE_VCPU: %s", strerror(errno));
		goto out_unmap;
	}
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (long)sizeof(*run)) {
		why_set(why, whylen, "KVM_GET_VCPU_MMAP_SIZE: %s",
			run_size < 0 ? strerror(errno) : "too small");
		goto out_vcpu;
	}
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		why_set(why, whylen, "mmap of kvm_run: %s", strerror(errno));
		goto out_vcpu;
	}

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
		why_set(why, whylen, "KVM_GET_SREGS: %s", strerror(errno));
		goto out_run;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
		why_set(why, whylen, "KVM_SET_SREGS: %s", strerror(errno));
		goto out_run;
	}
	struct kvm_regs regs = { .rip = PROBE_CODE_ADDR, .rflags = 0x2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
		why_set(why, whylen, "KVM_SET_REGS: %s", strerror(errno));
		goto out_run;
	}

	/* two exits expected (the OUT, then the HLT); a few spare for spurious ones */
	for (int i = 0; i < 8; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			why_set(why, whylen, "KVM_RUN: %s", strerror(errno));
			goto out_run;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PROBE_PORT ||
			    run->io.size != 1 ||
			    ((uint8_t *)run)[run->io.data_offset] != PROBE_BYTE) {
				why_set(why, whylen, "vCPU test: unexpected I/O exit (port 0x%x)",
					run->io.port);
				goto out_run;
			}
			saw_out = true;
			break;
		case KVM_EXIT_HLT:
			if (!saw_out) {
				why_set(why, whylen, "vCPU test: HLT before the OUT ran");
				goto out_run;
			}
			ok = true;
			goto out_run;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_FAIL_ENTRY:
			why_set(why, whylen, "vCPU test: VM entry failed (hardware reason 0x%llx)",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			goto out_run;
		case KVM_EXIT_INTERNAL_ERROR:
			why_set(why, whylen, "vCPU test: KVM internal error (suberror %u)",
				run->internal.suberror);
			goto out_run;
		default:
			why_set(why, whylen, "vCPU test: unexpected exit reason %u", run->exit_reason);
			goto out_run;
		}
	}
	why_set(why, whylen, "vCPU test: no HLT after 8 exits");
out_run:
	munmap(run, (size_t)run_size);
out_vcpu:
	close(vcpu);
out_unmap:
	munmap(mem, PROBE_MEM_SIZE);
	return ok;
}

bool qvmm_kvm_usable(const char *dev_kvm, char *why, size_t whylen)
{
	bool ok = false;
	int kvm, vm = -1;
	struct kvm_cpuid2 *cpuid = NULL;
	char missing[160];

	if (!dev_kvm)
		return why_set(why, whylen, "no KVM device path");
	kvm = open(dev_kvm, O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return why_set(why, whylen, "%s: %s", dev_kvm, strerror(errno));

	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		why_set(why, whylen, "%s: KVM_GET_API_VERSION gave %d, not %d", dev_kvm, api,
			KVM_API_VERSION);
		goto out;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vm < 0) {
		why_set(why, whylen, "%s: KVM_CREATE_VM: %s", dev_kvm, strerror(errno));
		goto out;
	}

	cpuid = calloc(1, sizeof(*cpuid) + PROBE_CPUID_MAX * sizeof(cpuid->entries[0]));
	if (!cpuid) {
		why_set(why, whylen, "out of memory");
		goto out;
	}
	cpuid->nent = PROBE_CPUID_MAX;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		why_set(why, whylen, "%s: KVM_GET_SUPPORTED_CPUID: %s", dev_kvm, strerror(errno));
		goto out;
	}
	cpuid_missing(cpuid, missing, sizeof(missing));
	if (missing[0]) {
		why_set(why, whylen,
			"%s: KVM_GET_SUPPORTED_CPUID lacks CPU features a guest kernel needs: %s",
			dev_kvm, missing);
		goto out;
	}

	char vwhy[200] = "";
	if (!run_vcpu(vm, kvm, vwhy, sizeof(vwhy))) {
		why_set(why, whylen, "%s: %s", dev_kvm, vwhy);
		goto out;
	}
	ok = true;
	why_set(why, whylen, "%s: usable (API %d, CPUID ok, vCPU ran to HLT)", dev_kvm, api);
out:
	free(cpuid);
	if (vm >= 0)
		close(vm);
	close(kvm);
	return ok;
}

bool qvmm_vhost_vsock_usable(const char *dev, char *why, size_t whylen)
{
	int fd;

	if (!dev)
		return why_set(why, whylen, "no vhost-vsock device path");
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return why_set(why, whylen, "%s: %s", dev, strerror(errno));
	close(fd);
	why_set(why, whylen, "%s: opens read-write", dev);
	return true;
}
