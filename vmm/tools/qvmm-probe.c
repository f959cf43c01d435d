// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * qvmm-probe: what libqvmm's probes say on this host.
 *
 *   qvmm-probe kvm [DEV]            exit 0 usable, 1 not usable; the reason on stdout
 *   qvmm-probe vhost-vsock [DEV]    the same for /dev/vhost-vsock
 *   qvmm-probe choose ACCEL VSOCK [URI]
 *                                   the choice qubed would make (probes + libvirt)
 */
#include <stdio.h>
#include <string.h>

#include "qvmm.h"

static int usage(void)
{
	fprintf(stderr, "usage: qvmm-probe kvm [DEV] | vhost-vsock [DEV] | choose ACCEL VSOCK [URI]\n");
	return 2;
}

int main(int argc, char **argv)
{
	char why[256];

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "kvm") == 0 && argc <= 3) {
		bool ok = qvmm_kvm_usable(argc == 3 ? argv[2] : "/dev/kvm", why, sizeof(why));
		printf("%s: %s\n", ok ? "usable" : "not usable", why);
		return ok ? 0 : 1;
	}
	if (strcmp(argv[1], "vhost-vsock") == 0 && argc <= 3) {
		bool ok = qvmm_vhost_vsock_usable(argc == 3 ? argv[2] : "/dev/vhost-vsock", why,
						  sizeof(why));
		printf("%s: %s\n", ok ? "usable" : "not usable", why);
		return ok ? 0 : 1;
	}
	if (strcmp(argv[1], "choose") == 0 && (argc == 4 || argc == 5)) {
		enum qvmm_accel as, a;
		enum qvmm_vsock vs, v;
		char err[512], vwhy[256];
		struct qvmm_conn *c;

		if (qvmm_accel_parse(argv[2], &as) < 0 || qvmm_vsock_parse(argv[3], &vs) < 0)
			return usage();
		bool kvm_ok = qvmm_kvm_usable("/dev/kvm", why, sizeof(why));
		bool vhost_ok = qvmm_vhost_vsock_usable("/dev/vhost-vsock", vwhy, sizeof(vwhy));
		if (qvmm_connect(argc == 5 ? argv[4] : NULL, &c, err, sizeof(err)) < 0) {
			fprintf(stderr, "qvmm-probe: %s\n", err);
			return 1;
		}
		bool lv_kvm = qvmm_libvirt_has_kvm(c);
		qvmm_conn_free(c);
		printf("kvm probe: %s\nlibvirt offers kvm: %s\nvhost-vsock probe: %s\n", why,
		       lv_kvm ? "yes" : "no", vwhy);
		int r = qvmm_accel_choose(as, kvm_ok, lv_kvm, &a);
		if (r < 0) {
			printf("accel: error: %s asked for but not usable\n", argv[2]);
			return 1;
		}
		r = qvmm_vsock_choose(vs, vhost_ok, &v);
		if (r < 0) {
			printf("vsock: error: %s asked for but not usable\n", argv[3]);
			return 1;
		}
		printf("accel: %s\nvsock: %s\n", qvmm_accel_to_string(a), qvmm_vsock_to_string(v));
		return 0;
	}
	return usage();
}
