/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: qvmm_domain_xml_metadata(), which reads a domain's
 * XML back from libvirt to recognise qubed's own domains after a restart.
 * The document comes from libvirtd, not from a guest, but a guest's own
 * domain XML holds values qubed wrote from qube properties: the parser
 * must take any bytes. The first input byte picks a round trip instead:
 * the rest becomes the label and kernel command line of a generated
 * domain, whose metadata must then read back exactly.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "qvmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char q[32], u[37], o[37];
	char *s;

	xmlSetGenericErrorFunc(NULL, silent);
	if (size > 1 << 16)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	if (size && data[0] == 'R') {
		/* round trip: hostile free text in, the same metadata out */
		struct qvmm_disk disk = { "/v/private.qcow2", "qcow2", false };
		struct qvmm_domain_spec spec = {
			.name = "qube-fz", .uuid = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9",
			.qube_name = "fz", .label = s + 1, .qube_class = "AppVM",
			.memory_mib = 256, .vcpus = 1, .accel = QVMM_ACCEL_TCG,
			.kernel = "/k", .cmdline = s + 1, .disks = &disk, .n_disks = 1,
			.vsock = QVMM_VSOCK_USER, .vhost_user_socket = "/run/vu.sock",
			.owner = "11111111-2222-4333-8444-555555555555",
		};
		char *xml = NULL;
		if (qvmm_domain_xml(&spec, &xml, NULL, 0) == 0) {
			if (qvmm_domain_xml_metadata(xml, q, u) != 0 || strcmp(q, "fz") != 0 ||
			    strcmp(u, spec.uuid) != 0)
				abort();
			if (qvmm_domain_xml_owner(xml, o) != 0 || strcmp(o, spec.owner) != 0)
				abort();
			free(xml);
		}
	} else {
		int r = qvmm_domain_xml_metadata(s, q, u);
		if (r == 0 && (!qvmm_qube_name_is_valid(q) || strlen(u) != 36))
			abort();
		if (r != 0 && r != -ENOENT && r != -EINVAL && r != -E2BIG)
			abort();
		r = qvmm_domain_xml_owner(s, o);
		if (r == 0 && strlen(o) != 36)
			abort();
		if (r != 0 && r != -ENOENT && r != -EINVAL && r != -E2BIG)
			abort();
	}
	free(s);
	return 0;
}
