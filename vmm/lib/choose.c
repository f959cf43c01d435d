// SPDX-License-Identifier: GPL-2.0-or-later
/* libqvmm: settings and the pure choice of accelerator and vsock transport. */
#include <errno.h>
#include <string.h>

#include "qvmm.h"

int qvmm_accel_parse(const char *s, enum qvmm_accel *ret)
{
	enum qvmm_accel a;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "auto") == 0)
		a = QVMM_ACCEL_AUTO;
	else if (strcmp(s, "kvm") == 0)
		a = QVMM_ACCEL_KVM;
	else if (strcmp(s, "tcg") == 0)
		a = QVMM_ACCEL_TCG;
	else
		return -EINVAL;
	*ret = a;
	return 0;
}

int qvmm_vsock_parse(const char *s, enum qvmm_vsock *ret)
{
	enum qvmm_vsock v;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "auto") == 0)
		v = QVMM_VSOCK_AUTO;
	else if (strcmp(s, "vhost") == 0)
		v = QVMM_VSOCK_VHOST;
	else if (strcmp(s, "vsockd") == 0)
		v = QVMM_VSOCK_USER;
	else
		return -EINVAL;
	*ret = v;
	return 0;
}

const char *qvmm_accel_to_string(enum qvmm_accel a)
{
	switch (a) {
	case QVMM_ACCEL_AUTO: return "auto";
	case QVMM_ACCEL_KVM: return "kvm";
	case QVMM_ACCEL_TCG: return "tcg";
	}
	return "?";
}

const char *qvmm_vsock_to_string(enum qvmm_vsock v)
{
	switch (v) {
	case QVMM_VSOCK_AUTO: return "auto";
	case QVMM_VSOCK_VHOST: return "vhost";
	case QVMM_VSOCK_USER: return "vsockd";
	}
	return "?";
}

int qvmm_accel_choose(enum qvmm_accel setting, bool kvm_ok, bool libvirt_has_kvm,
		      enum qvmm_accel *ret)
{
	enum qvmm_accel a;

	switch (setting) {
	case QVMM_ACCEL_AUTO:
		a = kvm_ok && libvirt_has_kvm ? QVMM_ACCEL_KVM : QVMM_ACCEL_TCG;
		break;
	case QVMM_ACCEL_KVM:
		if (!kvm_ok || !libvirt_has_kvm)
			return -ENODEV;
		a = QVMM_ACCEL_KVM;
		break;
	case QVMM_ACCEL_TCG:
		a = QVMM_ACCEL_TCG;
		break;
	default:
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

int qvmm_vsock_choose(enum qvmm_vsock setting, bool vhost_ok, enum qvmm_vsock *ret)
{
	enum qvmm_vsock v;

	switch (setting) {
	case QVMM_VSOCK_AUTO:
		v = vhost_ok ? QVMM_VSOCK_VHOST : QVMM_VSOCK_USER;
		break;
	case QVMM_VSOCK_VHOST:
		if (!vhost_ok)
			return -ENODEV;
		v = QVMM_VSOCK_VHOST;
		break;
	case QVMM_VSOCK_USER:
		v = QVMM_VSOCK_USER;
		break;
	default:
		return -EINVAL;
	}
	*ret = v;
	return 0;
}
