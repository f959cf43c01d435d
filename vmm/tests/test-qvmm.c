// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm unit tests (suite vmm): setting parsers, the accelerator and
 * vsock choice tables, the KVM and vhost-vsock probes on real paths, the
 * domain XML (structure unchanged by hostile values, values back as
 * text, both vsock paths, both accelerators, with and without a root
 * disk, refused specs) and our metadata read back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "qvmm.h"

static int failures, checks;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		checks++;                                                   \
		if (!(cond)) {                                              \
			failures++;                                         \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
		}                                                           \
	} while (0)

/* ---- parsers and choices ---- */

static void test_parse(void)
{
	enum qvmm_accel a = QVMM_ACCEL_TCG;
	enum qvmm_vsock v = QVMM_VSOCK_USER;

	CHECK(qvmm_accel_parse("auto", &a) == 0 && a == QVMM_ACCEL_AUTO, "accel auto");
	CHECK(qvmm_accel_parse("kvm", &a) == 0 && a == QVMM_ACCEL_KVM, "accel kvm");
	CHECK(qvmm_accel_parse("tcg", &a) == 0 && a == QVMM_ACCEL_TCG, "accel tcg");
	const char *bad[] = { "", "KVM", "kvm ", " tcg", "qemu", "tcg\n", "vhost" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a = QVMM_ACCEL_TCG;
		CHECK(qvmm_accel_parse(bad[i], &a) == -EINVAL && a == QVMM_ACCEL_TCG,
		      "accel '%s' accepted or ret touched", bad[i]);
	}
	CHECK(qvmm_accel_parse(NULL, &a) == -EINVAL, "accel NULL");
	CHECK(qvmm_vsock_parse("auto", &v) == 0 && v == QVMM_VSOCK_AUTO, "vsock auto");
	CHECK(qvmm_vsock_parse("vhost", &v) == 0 && v == QVMM_VSOCK_VHOST, "vsock vhost");
	CHECK(qvmm_vsock_parse("vsockd", &v) == 0 && v == QVMM_VSOCK_USER, "vsock vsockd");
	const char *vbad[] = { "", "user", "VHOST", "vsockd ", "kvm" };
	for (size_t i = 0; i < sizeof(vbad) / sizeof(vbad[0]); i++) {
		v = QVMM_VSOCK_USER;
		CHECK(qvmm_vsock_parse(vbad[i], &v) == -EINVAL && v == QVMM_VSOCK_USER,
		      "vsock '%s' accepted", vbad[i]);
	}
	for (int i = QVMM_ACCEL_AUTO; i <= QVMM_ACCEL_TCG; i++) {
		CHECK(qvmm_accel_parse(qvmm_accel_to_string(i), &a) == 0 && (int)a == i,
		      "accel to_string round trip %d", i);
	}
	for (int i = QVMM_VSOCK_AUTO; i <= QVMM_VSOCK_USER; i++) {
		CHECK(qvmm_vsock_parse(qvmm_vsock_to_string(i), &v) == 0 && (int)v == i,
		      "vsock to_string round trip %d", i);
	}
}

static void test_choose(void)
{
	/* setting, kvm probe ok, libvirt offers kvm -> result (or -ENODEV) */
	static const struct {
		enum qvmm_accel setting;
		bool kvm_ok, lv;
		int ret;
		enum qvmm_accel want;
	} rows[] = {
		{ QVMM_ACCEL_AUTO, true, true, 0, QVMM_ACCEL_KVM },
		{ QVMM_ACCEL_AUTO, true, false, 0, QVMM_ACCEL_TCG },
		{ QVMM_ACCEL_AUTO, false, true, 0, QVMM_ACCEL_TCG },  /* this machine */
		{ QVMM_ACCEL_AUTO, false, false, 0, QVMM_ACCEL_TCG },
		{ QVMM_ACCEL_KVM, true, true, 0, QVMM_ACCEL_KVM },
		{ QVMM_ACCEL_KVM, true, false, -ENODEV, 0 },
		{ QVMM_ACCEL_KVM, false, true, -ENODEV, 0 },
		{ QVMM_ACCEL_KVM, false, false, -ENODEV, 0 },
		{ QVMM_ACCEL_TCG, true, true, 0, QVMM_ACCEL_TCG },
		{ QVMM_ACCEL_TCG, true, false, 0, QVMM_ACCEL_TCG },
		{ QVMM_ACCEL_TCG, false, true, 0, QVMM_ACCEL_TCG },
		{ QVMM_ACCEL_TCG, false, false, 0, QVMM_ACCEL_TCG },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum qvmm_accel got = (enum qvmm_accel)99;
		int r = qvmm_accel_choose(rows[i].setting, rows[i].kvm_ok, rows[i].lv, &got);
		CHECK(r == rows[i].ret, "accel row %zu: ret %d, want %d", i, r, rows[i].ret);
		if (rows[i].ret == 0)
			CHECK(got == rows[i].want, "accel row %zu: got %d want %d", i, got, rows[i].want);
		else
			CHECK(got == (enum qvmm_accel)99, "accel row %zu: ret touched on error", i);
	}
	enum qvmm_accel got;
	CHECK(qvmm_accel_choose((enum qvmm_accel)7, true, true, &got) == -EINVAL, "accel bad setting");

	static const struct {
		enum qvmm_vsock setting;
		bool vhost_ok;
		int ret;
		enum qvmm_vsock want;
	} vrows[] = {
		{ QVMM_VSOCK_AUTO, true, 0, QVMM_VSOCK_VHOST },
		{ QVMM_VSOCK_AUTO, false, 0, QVMM_VSOCK_USER }, /* this machine */
		{ QVMM_VSOCK_VHOST, true, 0, QVMM_VSOCK_VHOST },
		{ QVMM_VSOCK_VHOST, false, -ENODEV, 0 },
		{ QVMM_VSOCK_USER, true, 0, QVMM_VSOCK_USER },
		{ QVMM_VSOCK_USER, false, 0, QVMM_VSOCK_USER },
	};
	for (size_t i = 0; i < sizeof(vrows) / sizeof(vrows[0]); i++) {
		enum qvmm_vsock v = (enum qvmm_vsock)99;
		int r = qvmm_vsock_choose(vrows[i].setting, vrows[i].vhost_ok, &v);
		CHECK(r == vrows[i].ret, "vsock row %zu: ret %d", i, r);
		if (vrows[i].ret == 0)
			CHECK(v == vrows[i].want, "vsock row %zu: got %d", i, v);
		else
			CHECK(v == (enum qvmm_vsock)99, "vsock row %zu: ret touched", i);
	}
}

/* ---- probes on real paths ---- */

static void test_probe(void)
{
	char why[256];
	struct stat st;

	why[0] = '\0';
	CHECK(!qvmm_kvm_usable("/nonexistent/kvm", why, sizeof(why)), "missing path usable");
	CHECK(strstr(why, "/nonexistent/kvm") && strstr(why, "No such file"), "why: '%s'", why);
	printf("probe /nonexistent/kvm: %s\n", why);

	/* a character device that is not KVM: the API version ioctl fails */
	why[0] = '\0';
	CHECK(!qvmm_kvm_usable("/dev/null", why, sizeof(why)), "/dev/null usable as KVM");
	CHECK(strstr(why, "KVM_GET_API_VERSION"), "why for /dev/null: '%s'", why);
	printf("probe /dev/null: %s\n", why);

	/* tiny buffers are honoured */
	char tiny[8] = "xxxxxxx";
	CHECK(!qvmm_kvm_usable("/nonexistent/kvm", tiny, sizeof(tiny)) && strlen(tiny) == 7,
	      "why buffer overrun or not terminated");
	CHECK(!qvmm_kvm_usable("/nonexistent/kvm", NULL, 0), "NULL why");

	/* this machine's /dev/kvm: the verdict with its reason */
	if (stat("/dev/kvm", &st) == 0) {
		why[0] = '\0';
		bool ok = qvmm_kvm_usable("/dev/kvm", why, sizeof(why));
		printf("probe /dev/kvm: %s: %s\n", ok ? "usable" : "not usable", why);
		CHECK(strncmp(why, "/dev/kvm: ", 10) == 0 && strlen(why) > 10, "why: '%s'", why);
		if (ok)
			CHECK(strstr(why, "vCPU ran to HLT"), "usable without the vCPU step: '%s'", why);
		else
			CHECK(strstr(why, "KVM_") || strstr(why, "vCPU") || strstr(why, "Permission") ||
				      strstr(why, "No such"),
			      "not usable without a named step: '%s'", why);
		/*
		 * qvmm-kvm-crosscheck (suite guest) compares this verdict with
		 * a real QEMU -accel kvm boot of the minimal image.
		 */
		const char *expect = getenv("QVMM_EXPECT_KVM");
		if (expect)
			CHECK(strcmp(expect, ok ? "usable" : "unusable") == 0,
			      "QVMM_EXPECT_KVM=%s but the probe says %s", expect,
			      ok ? "usable" : "unusable");
	} else {
		printf("probe /dev/kvm: no /dev/kvm on this machine\n");
		CHECK(!qvmm_kvm_usable("/dev/kvm", why, sizeof(why)), "absent /dev/kvm usable");
	}

	why[0] = '\0';
	CHECK(!qvmm_vhost_vsock_usable("/nonexistent/vhost-vsock", why, sizeof(why)) &&
		      strstr(why, "No such file"),
	      "vhost-vsock missing: '%s'", why);
	bool vok = qvmm_vhost_vsock_usable("/dev/vhost-vsock", why, sizeof(why));
	printf("probe /dev/vhost-vsock: %s: %s\n", vok ? "usable" : "not usable", why);
	CHECK(vok == (stat("/dev/vhost-vsock", &st) == 0 && S_ISCHR(st.st_mode) &&
		      access("/dev/vhost-vsock", R_OK | W_OK) == 0),
	      "vhost-vsock verdict disagrees with the device's presence");
}

/* ---- domain XML ---- */

/* element names (with namespace) and attribute names, depth-first */
static void shape(xmlNodePtr n, char *out, size_t len, int depth)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE) {
			if (n->type != XML_TEXT_NODE) {
				size_t o = strlen(out);
				snprintf(out + o, len - o, "%*s!node-type-%d\n", depth, "", n->type);
			}
			continue;
		}
		size_t o = strlen(out);
		snprintf(out + o, len - o, "%*s<%s%s%s", depth, "", n->ns ? (const char *)n->ns->href : "",
			 n->ns ? "|" : "", (const char *)n->name);
		for (xmlAttrPtr a = n->properties; a; a = a->next) {
			o = strlen(out);
			snprintf(out + o, len - o, " %s", (const char *)a->name);
		}
		o = strlen(out);
		snprintf(out + o, len - o, ">\n");
		shape(n->children, out, len, depth + 1);
	}
}

static xmlNodePtr find(xmlNodePtr n, const char *name)
{
	for (; n; n = n->next) {
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return n;
	}
	return NULL;
}

/* a path of element names from the root's children */
static xmlNodePtr at(xmlDocPtr doc, const char *p1, const char *p2, const char *p3)
{
	xmlNodePtr n = find(xmlDocGetRootElement(doc)->children, p1);
	if (n && p2)
		n = find(n->children, p2);
	if (n && p3)
		n = find(n->children, p3);
	return n;
}

static bool text_is(xmlNodePtr n, const char *want)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	bool ok = t && strcmp((const char *)t, want) == 0;
	if (!ok)
		fprintf(stderr, "  text '%s' != '%s'\n", t ? (const char *)t : "(none)", want);
	xmlFree(t);
	return ok;
}

static bool attr_is(xmlNodePtr n, const char *name, const char *want)
{
	xmlChar *t = n ? xmlGetProp(n, BAD_CAST name) : NULL;
	bool ok = t && strcmp((const char *)t, want) == 0;
	if (!ok)
		fprintf(stderr, "  attr %s '%s' != '%s'\n", name, t ? (const char *)t : "(none)", want);
	xmlFree(t);
	return ok;
}

static xmlDocPtr parse(const char *xml)
{
	return xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
}

#define HOSTILE "a<b>c'd\"e&f]]>g--h\ti\nj\rk <!-- x --> <![CDATA[ y ]]> &amp; &#x41; <?pi?>"

static const char *uuid = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9";

static struct qvmm_domain_spec base_spec(const struct qvmm_disk *disks, size_t n,
					 enum qvmm_accel a, enum qvmm_vsock v)
{
	struct qvmm_domain_spec s = {
		.name = "qube-work", .uuid = uuid, .qube_name = "work", .label = "red",
		.qube_class = "AppVM", .memory_mib = 400, .maxmem_mib = 800, .vcpus = 2, .accel = a,
		.kernel = "/var/lib/qube/kernels/6.1/vmlinuz", .initrd = "/var/lib/qube/kernels/6.1/initramfs",
		.cmdline = "qube.name=work qube.rw=/dev/vdb root=/dev/vda",
		.disks = disks, .n_disks = n, .vsock = v, .cid = 42,
		.vhost_user_socket = "/run/qube/vsock/work/vu.sock",
		.console_log = "/var/log/qube/console-work.log",
	};
	return s;
}

static void test_xml_hostile(void)
{
	static const char *sock_hostile = "/run/q,server=on,path=/x " HOSTILE;
	struct qvmm_disk benign_disks[] = {
		{ "/var/lib/qube/root.qcow2", "qcow2", true },
		{ "/var/lib/qube/private.qcow2", "qcow2", false },
		{ "/var/lib/qube/volatile.qcow2", "raw", false },
	};
	struct qvmm_disk hostile_disks[] = {
		{ "/r" HOSTILE, "qcow2", true },
		{ "/p" HOSTILE, "qcow2", false },
		{ "/v" HOSTILE, "raw", false },
	};
	static char shape_a[16384], shape_b[16384];

	for (int vs = 0; vs < 2; vs++) {
		enum qvmm_vsock v = vs ? QVMM_VSOCK_USER : QVMM_VSOCK_VHOST;
		struct qvmm_domain_spec s = base_spec(benign_disks, 3, QVMM_ACCEL_TCG, v);
		struct qvmm_domain_spec h = base_spec(hostile_disks, 3, QVMM_ACCEL_TCG, v);
		char *xa = NULL, *xb = NULL, err[256] = "";

		h.label = HOSTILE;
		h.qube_class = "Class " HOSTILE;
		h.kernel = "/k" HOSTILE;
		h.initrd = "/i" HOSTILE;
		h.cmdline = "qube.name=work " HOSTILE;
		h.console_log = "/c" HOSTILE;
		h.vhost_user_socket = sock_hostile;

		CHECK(qvmm_domain_xml(&s, &xa, err, sizeof(err)) == 0, "benign: %s", err);
		CHECK(qvmm_domain_xml(&h, &xb, err, sizeof(err)) == 0, "hostile: %s", err);
		if (!xa || !xb) {
			free(xa);
			free(xb);
			continue;
		}
		xmlDocPtr da = parse(xa), db = parse(xb);
		CHECK(da && db, "generated XML does not parse");
		if (da && db) {
			shape_a[0] = shape_b[0] = '\0';
			shape(xmlDocGetRootElement(da), shape_a, sizeof(shape_a), 0);
			shape(xmlDocGetRootElement(db), shape_b, sizeof(shape_b), 0);
			CHECK(strcmp(shape_a, shape_b) == 0,
			      "hostile values changed the element tree:\n%s\nvs\n%s", shape_a, shape_b);
			CHECK(text_is(at(db, "metadata", "qube", "label"), HOSTILE), "label text");
			CHECK(text_is(at(db, "metadata", "qube", "class"), "Class " HOSTILE), "class");
			CHECK(text_is(at(db, "os", "kernel", NULL), "/k" HOSTILE), "kernel");
			CHECK(text_is(at(db, "os", "initrd", NULL), "/i" HOSTILE), "initrd");
			CHECK(text_is(at(db, "os", "cmdline", NULL), "qube.name=work " HOSTILE), "cmdline");
			xmlNodePtr d = find(at(db, "devices", NULL, NULL)->children, "disk");
			for (int i = 0; i < 3 && d; i++) {
				char dev[4] = { 'v', 'd', (char)('a' + i), 0 };
				CHECK(attr_is(find(d->children, "source"), "file", hostile_disks[i].path),
				      "disk %d path", i);
				CHECK(attr_is(find(d->children, "target"), "dev", dev), "disk %d target", i);
				do
					d = d->next;
				while (d && !(d->type == XML_ELEMENT_NODE &&
					      strcmp((const char *)d->name, "disk") == 0));
			}
			CHECK(attr_is(at(db, "devices", "serial", "source"), "path", "/c" HOSTILE),
			      "console_log");
			if (v == QVMM_VSOCK_USER) {
				/* the socket path inside QEMU's option string: commas doubled */
				xmlNodePtr cl = find(xmlDocGetRootElement(db)->children, "commandline");
				xmlNodePtr a1 = cl ? find(cl->children, "arg") : NULL;
				xmlNodePtr a2 = a1 ? a1->next : NULL;
				while (a2 && a2->type != XML_ELEMENT_NODE)
					a2 = a2->next;
				CHECK(attr_is(a1, "value", "-chardev"), "first qemu:arg");
				CHECK(attr_is(a2, "value",
					      "socket,id=qube-vsock,path=/run/q,,server=on,,path=/x " HOSTILE),
				      "chardev option with the socket path");
			}
		}
		xmlFreeDoc(da);
		xmlFreeDoc(db);

		/* the metadata reads back from the hostile document */
		char q[32] = "", u[37] = "";
		CHECK(qvmm_domain_xml_metadata(xb, q, u) == 0 && strcmp(q, "work") == 0 &&
			      strcmp(u, uuid) == 0,
		      "metadata back: '%s' '%s'", q, u);
		free(xa);
		free(xb);
	}
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_xml_shapes(void)
{
	struct qvmm_disk with_root[] = {
		{ "/v/root.qcow2", "qcow2", true },
		{ "/v/private.qcow2", "qcow2", false },
		{ "/v/volatile.qcow2", "qcow2", false },
	};
	struct qvmm_disk no_root[] = {
		{ "/v/private.qcow2", "qcow2", false },
		{ "/v/volatile.qcow2", "qcow2", false },
	};

	for (int a = 0; a < 2; a++)
		for (int v = 0; v < 2; v++)
			for (int r = 0; r < 2; r++) {
				enum qvmm_accel acc = a ? QVMM_ACCEL_KVM : QVMM_ACCEL_TCG;
				enum qvmm_vsock vs = v ? QVMM_VSOCK_USER : QVMM_VSOCK_VHOST;
				struct qvmm_domain_spec s =
					base_spec(r ? with_root : no_root, r ? 3 : 2, acc, vs);
				char *x = NULL, err[256] = "";

				CHECK(qvmm_domain_xml(&s, &x, err, sizeof(err)) == 0, "a%d v%d r%d: %s", a,
				      v, r, err);
				if (!x)
					continue;
				xmlDocPtr d = parse(x);
				CHECK(d, "a%d v%d r%d: does not parse", a, v, r);
				if (!d) {
					free(x);
					continue;
				}
				xmlNodePtr root = xmlDocGetRootElement(d);
				CHECK(attr_is(root, "type", a ? "kvm" : "qemu"), "domain type");
				CHECK(text_is(at(d, "name", NULL, NULL), "qube-work"), "name");
				CHECK(text_is(at(d, "uuid", NULL, NULL), uuid), "uuid");
				/* maxmem (800) is not given to the guest: no balloon */
				CHECK(text_is(at(d, "memory", NULL, NULL), "400") &&
					      text_is(at(d, "currentMemory", NULL, NULL), "400") &&
					      attr_is(at(d, "memory", NULL, NULL), "unit", "MiB"),
				      "memory");
				CHECK(text_is(at(d, "vcpu", NULL, NULL), "2"), "vcpu");
				CHECK(attr_is(at(d, "os", "type", NULL), "machine", "q35"), "machine");
				CHECK(!!at(d, "features", "acpi", NULL), "no <acpi/>: the power button needs it");
				CHECK(!!at(d, "cpu", NULL, NULL) == (a == 1), "cpu element only with kvm");
				CHECK(count(x, "<disk ") == (r ? 3 : 2), "disk count");
				CHECK(count(x, "<readonly/>") == r, "readonly root only");
				CHECK(strstr(x, r ? "dev=\"vdc\"" : "dev=\"vdb\"") &&
					      !strstr(x, r ? "dev=\"vdd\"" : "dev=\"vdc\""),
				      "disk targets");
				xmlNodePtr vsock = at(d, "devices", "vsock", NULL);
				xmlNodePtr mb = at(d, "memoryBacking", NULL, NULL);
				xmlNodePtr cl = find(root->children, "commandline");
				if (vs == QVMM_VSOCK_VHOST) {
					CHECK(vsock && attr_is(vsock, "model", "virtio") &&
						      attr_is(find(vsock->children, "cid"), "address", "42") &&
						      attr_is(find(vsock->children, "cid"), "auto", "no"),
					      "vhost <vsock>");
					CHECK(!mb && !cl, "vhost: no memoryBacking/commandline");
				} else {
					CHECK(!vsock, "vsockd: no <vsock>");
					CHECK(mb && attr_is(find(mb->children, "source"), "type", "memfd") &&
						      attr_is(find(mb->children, "access"), "mode", "shared"),
					      "vsockd: memfd shared memory");
					CHECK(cl && cl->ns &&
						      strcmp((const char *)cl->ns->href,
							     "http://libvirt.org/schemas/domain/qemu/1.0") == 0,
					      "vsockd: qemu:commandline");
					CHECK(strstr(x, "vhost-user-vsock-pci,chardev=qube-vsock,bus=pcie.0,addr=0x10"),
					      "vsockd: device on its own slot");
				}
				char q[32], u[37];
				CHECK(qvmm_domain_xml_metadata(x, q, u) == 0 && strcmp(q, "work") == 0,
				      "metadata back");
				if (a == 0 && v == 1 && r == 1)
					printf("--- example XML (tcg, vsockd, root disk) ---\n%s", x);
				xmlFreeDoc(d);
				free(x);
			}
}

static void test_xml_refused(void)
{
	struct qvmm_disk disks[] = { { "/v/private.qcow2", "qcow2", false } };
	char *x;
	char err[256];
	struct qvmm_domain_spec s;
	static struct qvmm_disk bad_fmt[] = { { "/v/p.img", "vmdk", false } };
	static struct qvmm_disk rel[] = { { "v/p.img", "raw", false } };
	static struct qvmm_disk ctl[] = { { "/v/p\x01.img", "raw", false } };

#define REFUSED(setup, field_word)                                                         \
	do {                                                                               \
		s = base_spec(disks, 1, QVMM_ACCEL_TCG, QVMM_VSOCK_USER);                  \
		setup;                                                                     \
		x = (char *)0x1;                                                           \
		err[0] = '\0';                                                             \
		int r_ = qvmm_domain_xml(&s, &x, err, sizeof(err));                        \
		CHECK(r_ == -EINVAL && x == (char *)0x1 && strstr(err, field_word),       \
		      "%s: ret %d err '%s'", #setup, r_, err);                             \
	} while (0)

	REFUSED(s.label = "red\x01", "label");
	REFUSED(s.qube_class = "App\x1bVM", "qube_class");
	REFUSED(s.cmdline = "a\x7f\x02", "cmdline");
	REFUSED(s.console_log = "/x\x0c", "console_log");
	REFUSED(s.label = "\xff\xfe", "label");
	REFUSED(s.label = "u\xc1\xb5", "label");          /* overlong 'u' (found by the fuzzer) */
	REFUSED(s.label = "\xed\xa0\x80", "label");      /* a UTF-16 surrogate */
	REFUSED(s.label = "\xef\xbf\xbe", "label");      /* U+FFFE, not an XML character */
	REFUSED(s.label = "\xf4\x90\x80\x80", "label"); /* above U+10FFFF */
	REFUSED(s.label = "\xe2\x82", "label");           /* cut short */
	REFUSED(s.label = NULL, "label");
	REFUSED(s.name = "qube-other", "name");
	REFUSED(s.name = "work", "name");
	REFUSED(s.qube_name = "1work", "qube_name");
	REFUSED(s.qube_name = "wo<rk", "qube_name");
	REFUSED((s.qube_name = "abcdefghijabcdefghijabcdefghijab", s.name = "qube-abcdefghijabcdefghijabcdefghijab"),
		"qube_name");
	REFUSED(s.uuid = "not-a-uuid", "uuid");
	REFUSED(s.uuid = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8fZ", "uuid");
	REFUSED(s.kernel = "vmlinuz", "kernel");
	REFUSED(s.kernel = NULL, "kernel");
	REFUSED(s.initrd = "initrd.img", "initrd");
	REFUSED(s.console_log = "console.log", "console_log");
	REFUSED(s.memory_mib = 0, "memory_mib");
	REFUSED(s.maxmem_mib = 100, "maxmem_mib");
	REFUSED(s.vcpus = 0, "vcpus");
	REFUSED(s.vcpus = 257, "vcpus");
	REFUSED(s.accel = QVMM_ACCEL_AUTO, "accel");
	REFUSED(s.vsock = QVMM_VSOCK_AUTO, "vsock");
	REFUSED(s.vhost_user_socket = NULL, "vhost_user_socket");
	REFUSED(s.vhost_user_socket = "vu.sock", "vhost_user_socket");
	REFUSED((s.vsock = QVMM_VSOCK_VHOST, s.cid = 2), "cid");
	REFUSED((s.vsock = QVMM_VSOCK_VHOST, s.cid = UINT32_MAX), "cid");
	REFUSED((s.disks = bad_fmt, s.n_disks = 1), "disks[0].format");
	REFUSED((s.disks = rel, s.n_disks = 1), "disks[0].path");
	REFUSED((s.disks = ctl, s.n_disks = 1), "disks[0].path");
	REFUSED((s.disks = NULL, s.n_disks = 1), "disks");
	REFUSED(s.n_disks = 27, "disks");

	/* accepted: any XML character, as itself */
	s = base_spec(disks, 1, QVMM_ACCEL_TCG, QVMM_VSOCK_USER);
	s.label = "r\xc3\xa9" "d \xe2\x82\xac \xf0\x9f\x94\xb4 \xef\xbf\xbd";
	x = NULL;
	CHECK(qvmm_domain_xml(&s, &x, err, sizeof(err)) == 0 && x &&
		      strstr(x, "r\xc3\xa9" "d \xe2\x82\xac \xf0\x9f\x94\xb4 \xef\xbf\xbd"),
	      "UTF-8 label: %s", err);
	free(x);

	/* accepted: VHOST needs no socket; no initrd, cmdline or console log */
	s = base_spec(disks, 1, QVMM_ACCEL_TCG, QVMM_VSOCK_VHOST);
	s.vhost_user_socket = NULL;
	s.initrd = s.cmdline = s.console_log = NULL;
	x = NULL;
	CHECK(qvmm_domain_xml(&s, &x, err, sizeof(err)) == 0 && x, "minimal vhost spec: %s", err);
	CHECK(x && strstr(x, "<serial type=\"pty\">") && !strstr(x, "<initrd>"), "pty console");
	free(x);
}

static void test_names_metadata(void)
{
	char d[QVMM_DOMAIN_NAME_MAX] = "untouched", q[32] = "q", u[37] = "u";

	CHECK(qvmm_domain_name("work", d) == 0 && strcmp(d, "qube-work") == 0, "domain name");
	CHECK(qvmm_domain_name("a.b_c-D9", d) == 0 && strcmp(d, "qube-a.b_c-D9") == 0, "chars");
	CHECK(qvmm_domain_name("abcdefghijabcdefghijabcdefghija", d) == 0, "31 bytes");
	const char *bad[] = { "", "9lives", "-x", ".x", "_x", "a b", "a/b", "a;b", "wörk",
			      "abcdefghijabcdefghijabcdefghijab" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(d, "untouched");
		CHECK(qvmm_domain_name(bad[i], d) == -EINVAL && strcmp(d, "untouched") == 0,
		      "'%s' accepted", bad[i]);
	}
	CHECK(qvmm_domain_name(NULL, d) == -EINVAL, "NULL name");

	/* another prefix for our namespace, as libvirt may write it back */
	const char *other_prefix =
		"<domain type='qemu'><name>qube-x</name><metadata>"
		"<q:qube xmlns:q='" QVMM_XML_NS "'><q:name>x</q:name>"
		"<q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid></q:qube>"
		"</metadata></domain>";
	CHECK(qvmm_domain_xml_metadata(other_prefix, q, u) == 0 && strcmp(q, "x") == 0, "other prefix");
	/* the same element names in another namespace are not ours */
	const char *foreign =
		"<domain type='qemu'><metadata><q:qube xmlns:q='https://example.org/x'>"
		"<q:name>x</q:name><q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid>"
		"</q:qube></metadata></domain>";
	strcpy(q, "q");
	CHECK(qvmm_domain_xml_metadata(foreign, q, u) == -ENOENT && strcmp(q, "q") == 0, "foreign");
	CHECK(qvmm_domain_xml_metadata("<domain type='qemu'><name>n</name></domain>", q, u) == -ENOENT,
	      "no metadata");
	CHECK(qvmm_domain_xml_metadata("<domain", q, u) == -EINVAL, "malformed");
	CHECK(qvmm_domain_xml_metadata("<other/>", q, u) == -EINVAL, "not a domain");
	const char *bad_name =
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>x y</q:name>"
		"<q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid></q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_metadata(bad_name, q, u) == -EINVAL && strcmp(q, "q") == 0, "bad name");
	const char *no_uuid =
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>x</q:name>"
		"</q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_metadata(no_uuid, q, u) == -EINVAL, "no uuid");
	/* the owner (which qubed's domain it is) */
	char o[37] = "";
	CHECK(qvmm_domain_xml_owner(other_prefix, o) == -ENOENT, "no owner: -ENOENT");
	const char *owned =
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>x</q:name>"
		"<q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid>"
		"<q:owner>11111111-2222-4333-8444-555555555555</q:owner></q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_owner(owned, o) == 0 &&
		      strcmp(o, "11111111-2222-4333-8444-555555555555") == 0, "owner read back");
	const char *bad_owner =
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>x</q:name>"
		"<q:owner>../../etc</q:owner></q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_owner(bad_owner, o) == -EINVAL, "an owner that is not a uuid");
	CHECK(qvmm_domain_xml_owner(foreign, o) == -ENOENT, "foreign namespace: no owner");
	/* an external entity is not fetched or expanded */
	const char *xxe =
		"<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/hostname'>]>"
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>&e;</q:name>"
		"<q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid></q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_metadata(xxe, q, u) == -EINVAL && strcmp(q, "q") == 0, "entity");
	/* nor an internal one (a DTD is refused outright) */
	const char *internal =
		"<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a 'abc'>]>"
		"<domain><metadata><q:qube xmlns:q='" QVMM_XML_NS "'><q:name>&a;</q:name>"
		"<q:uuid>0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9</q:uuid></q:qube></metadata></domain>";
	CHECK(qvmm_domain_xml_metadata(internal, q, u) == -EINVAL && strcmp(q, "q") == 0,
	      "internal entity");
}

int main(void)
{
	test_parse();
	test_choose();
	test_probe();
	test_xml_hostile();
	test_xml_shapes();
	test_xml_refused();
	test_names_metadata();
	xmlCleanupParser();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
