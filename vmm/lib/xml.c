// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm: libvirt domain XML for a qube, written with libxml2's
 * xmlTextWriter (every value is escaped by the writer, never pasted into
 * markup), and our <metadata> read back for adoption after a restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "qvmm.h"
#include "internal.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define VSOCK_CHARDEV_ID "qube-vsock"
/* a slot of its own on pcie.0: without bus/addr QEMU puts the device in
 * slot 1, which libvirt's first root port already holds */
#define VSOCK_PCI_ADDR "0x10"

bool qvmm_qube_name_is_valid(const char *qube)
{
	size_t n;

	if (!qube)
		return false;
	n = strlen(qube);
	if (n < 1 || n > 31)
		return false;
	if (!((qube[0] >= 'A' && qube[0] <= 'Z') || (qube[0] >= 'a' && qube[0] <= 'z')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = qube[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int qvmm_domain_name(const char *qube, char ret[QVMM_DOMAIN_NAME_MAX])
{
	if (!qvmm_qube_name_is_valid(qube))
		return -EINVAL;
	snprintf(ret, QVMM_DOMAIN_NAME_MAX, QVMM_DOMAIN_PREFIX "%s", qube);
	return 0;
}

/* 8-4-4-4-12 hex digits */
static bool uuid_is_valid(const char *u)
{
	if (!u || strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = u[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return true;
}

/*
 * Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 * of characters XML 1.0 can carry: #x9 #xA #xD [#x20-#xD7FF]
 * [#xE000-#xFFFD] [#x10000-#x10FFFF]. Anything else the writer would put
 * out as bytes or references that no parser accepts, so such a value is
 * refused with its field named.
 */
static bool xml_text_ok(const char *str)
{
	const unsigned char *p = (const unsigned char *)str;

	while (*p) {
		uint32_t cp;
		int n;

		if (*p < 0x80) {
			cp = *p;
			n = 0;
		} else if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			n = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			n = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			n = 3;
		} else {
			return false;
		}
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* the shortest form only */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
			return false;
		if (!(cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
		      (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

/* a value inside a QEMU -chardev/-device option string: ',' is doubled */
static char *qemu_opt_escape(const char *s)
{
	size_t n = 0;
	char *r, *o;

	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	r = malloc(n + 1);
	if (!r)
		return NULL;
	o = r;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return r;
}

#define W(call)                                \
	do {                                   \
		if ((call) < 0)                \
			goto out_writer;       \
	} while (0)

static int start(xmlTextWriterPtr w, const char *el)
{
	return xmlTextWriterStartElement(w, BAD_CAST el);
}

static int end(xmlTextWriterPtr w)
{
	return xmlTextWriterEndElement(w);
}

static int attr(xmlTextWriterPtr w, const char *name, const char *val)
{
	return xmlTextWriterWriteAttribute(w, BAD_CAST name, BAD_CAST val);
}

static int text_el(xmlTextWriterPtr w, const char *el, const char *val)
{
	return xmlTextWriterWriteElement(w, BAD_CAST el, BAD_CAST val);
}

static int arg_el(xmlTextWriterPtr w, const char *val)
{
	if (xmlTextWriterStartElementNS(w, BAD_CAST "qemu", BAD_CAST "arg", NULL) < 0 ||
	    attr(w, "value", val) < 0)
		return -1;
	return end(w);
}

/*
 * The one function that knows how vsock reaches the guest; the domain
 * writer calls it at the three places of the document where a vsock path
 * may need something. VHOST: libvirt's own <vsock> (kernel vhost_vsock).
 * USER (qube-vsockd): libvirt 9.0 has no XML for a vhost-user vsock
 * device, so the chardev and device go on QEMU's command line, and guest
 * RAM must be a shared memfd for the vhost-user back-end to map. When
 * libvirt grows a native element, only this function changes.
 */
enum vsock_part { VSOCK_PART_MEMORY, VSOCK_PART_DEVICES, VSOCK_PART_COMMANDLINE };

static int vsock_xml(xmlTextWriterPtr w, const struct qvmm_domain_spec *s, enum vsock_part part)
{
	char num[16], *path = NULL, *chardev = NULL;
	int ret = -1;

	switch (part) {
	case VSOCK_PART_MEMORY:
		if (s->vsock != QVMM_VSOCK_USER)
			return 0;
		if (start(w, "memoryBacking") < 0 || start(w, "source") < 0 ||
		    attr(w, "type", "memfd") < 0 || end(w) < 0 || start(w, "access") < 0 ||
		    attr(w, "mode", "shared") < 0 || end(w) < 0 || end(w) < 0)
			return -1;
		return 0;
	case VSOCK_PART_DEVICES:
		if (s->vsock != QVMM_VSOCK_VHOST)
			return 0;
		snprintf(num, sizeof(num), "%u", s->cid);
		if (start(w, "vsock") < 0 || attr(w, "model", "virtio") < 0 || start(w, "cid") < 0 ||
		    attr(w, "auto", "no") < 0 || attr(w, "address", num) < 0 || end(w) < 0 ||
		    end(w) < 0)
			return -1;
		return 0;
	case VSOCK_PART_COMMANDLINE:
		if (s->vsock != QVMM_VSOCK_USER)
			return 0;
		path = qemu_opt_escape(s->vhost_user_socket);
		if (!path)
			return -1;
		if (asprintf(&chardev, "socket,id=" VSOCK_CHARDEV_ID ",path=%s", path) < 0) {
			chardev = NULL;
			break;
		}
		if (xmlTextWriterStartElementNS(w, BAD_CAST "qemu", BAD_CAST "commandline", NULL) < 0 ||
		    arg_el(w, "-chardev") < 0 || arg_el(w, chardev) < 0 || arg_el(w, "-device") < 0 ||
		    arg_el(w, "vhost-user-vsock-pci,chardev=" VSOCK_CHARDEV_ID
			      ",bus=pcie.0,addr=" VSOCK_PCI_ADDR) < 0 ||
		    end(w) < 0)
			break;
		ret = 0;
		break;
	}
	free(chardev);
	free(path);
	return ret;
}

/* every check before a byte is written: bad input changes nothing */
static int spec_check(const struct qvmm_domain_spec *s, char *err, size_t errlen)
{
	char want[QVMM_DOMAIN_NAME_MAX];
	struct {
		const char *field, *val;
		bool required;
	} texts[] = {
		{ "label", s->label, true },
		{ "qube_class", s->qube_class, true },
		{ "kernel", s->kernel, true },
		{ "initrd", s->initrd, false },
		{ "cmdline", s->cmdline, false },
		{ "vhost_user_socket", s->vhost_user_socket, s->vsock == QVMM_VSOCK_USER },
		{ "console_log", s->console_log, false },
	};

	if (!qvmm_qube_name_is_valid(s->qube_name))
		return qvmm_err(err, errlen, -EINVAL, "qube_name: not a valid qube name");
	if (qvmm_domain_name(s->qube_name, want) < 0 || !s->name || strcmp(s->name, want) != 0)
		return qvmm_err(err, errlen, -EINVAL, "name: must be '%s' (qvmm_domain_name)", want);
	if (s->owner && !uuid_is_valid(s->owner))
		return qvmm_err(err, errlen, -EINVAL, "owner: not a UUID (8-4-4-4-12 hex digits)");
	if (!uuid_is_valid(s->uuid))
		return qvmm_err(err, errlen, -EINVAL, "uuid: not a UUID (8-4-4-4-12 hex digits)");
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		if (!texts[i].val) {
			if (texts[i].required)
				return qvmm_err(err, errlen, -EINVAL, "%s: missing", texts[i].field);
			continue;
		}
		if (!xml_text_ok(texts[i].val))
			return qvmm_err(err, errlen, -EINVAL,
					"%s: control character or invalid UTF-8 (XML cannot carry it)",
					texts[i].field);
	}
	if (s->kernel[0] != '/')
		return qvmm_err(err, errlen, -EINVAL, "kernel: not an absolute path");
	if (s->initrd && s->initrd[0] != '/')
		return qvmm_err(err, errlen, -EINVAL, "initrd: not an absolute path");
	if (s->console_log && s->console_log[0] != '/')
		return qvmm_err(err, errlen, -EINVAL, "console_log: not an absolute path");
	if (s->memory_mib < 16 || s->memory_mib > (1u << 24))
		return qvmm_err(err, errlen, -EINVAL, "memory_mib: %u out of range 16..%u",
				s->memory_mib, 1u << 24);
	if (s->maxmem_mib && (s->maxmem_mib < s->memory_mib || s->maxmem_mib > (1u << 24)))
		return qvmm_err(err, errlen, -EINVAL,
				"maxmem_mib: %u below memory_mib %u or above %u", s->maxmem_mib,
				s->memory_mib, 1u << 24);
	if (s->vcpus < 1 || s->vcpus > 256)
		return qvmm_err(err, errlen, -EINVAL, "vcpus: %u out of range 1..256", s->vcpus);
	if (s->accel != QVMM_ACCEL_KVM && s->accel != QVMM_ACCEL_TCG)
		return qvmm_err(err, errlen, -EINVAL, "accel: must be resolved to kvm or tcg");
	if (s->vsock == QVMM_VSOCK_VHOST) {
		if (s->cid < 3 || s->cid == UINT32_MAX)
			return qvmm_err(err, errlen, -EINVAL, "cid: %u out of range 3..%u", s->cid,
					UINT32_MAX - 1);
	} else if (s->vsock == QVMM_VSOCK_USER) {
		if (s->vhost_user_socket[0] != '/')
			return qvmm_err(err, errlen, -EINVAL, "vhost_user_socket: not an absolute path");
	} else {
		return qvmm_err(err, errlen, -EINVAL, "vsock: must be resolved to vhost or vsockd");
	}
	if (s->n_disks > 26)
		return qvmm_err(err, errlen, -EINVAL, "disks: %zu, at most 26 (vda..vdz)", s->n_disks);
	if (s->n_disks && !s->disks)
		return qvmm_err(err, errlen, -EINVAL, "disks: NULL with n_disks %zu", s->n_disks);
	for (size_t i = 0; i < s->n_disks; i++) {
		const struct qvmm_disk *d = &s->disks[i];
		if (!d->path || d->path[0] != '/' || !xml_text_ok(d->path))
			return qvmm_err(err, errlen, -EINVAL,
					"disks[%zu].path: missing, relative, or a control character", i);
		if (!d->format || (strcmp(d->format, "qcow2") != 0 && strcmp(d->format, "raw") != 0))
			return qvmm_err(err, errlen, -EINVAL, "disks[%zu].format: not qcow2 or raw", i);
	}
	return 0;
}

int qvmm_domain_xml(const struct qvmm_domain_spec *s, char **ret_xml, char *err, size_t errlen)
{
	xmlBufferPtr buf;
	xmlTextWriterPtr w;
	char num[32];
	int ret;

	if (!s || !ret_xml)
		return qvmm_err(err, errlen, -EINVAL, "no spec");
	if ((ret = spec_check(s, err, errlen)) < 0)
		return ret;

	buf = xmlBufferCreate();
	if (!buf)
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	w = xmlNewTextWriterMemory(buf, 0);
	if (!w) {
		xmlBufferFree(buf);
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	}
	xmlTextWriterSetIndent(w, 1);
	xmlTextWriterSetIndentString(w, BAD_CAST "  ");
	ret = -ENOMEM;

	W(start(w, "domain"));
	W(attr(w, "type", s->accel == QVMM_ACCEL_KVM ? "kvm" : "qemu"));
	if (s->vsock == QVMM_VSOCK_USER)
		W(attr(w, "xmlns:qemu", QEMU_NS));
	W(text_el(w, "name", s->name));
	W(text_el(w, "uuid", s->uuid));

	W(start(w, "metadata"));
	W(xmlTextWriterStartElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "qube",
				      BAD_CAST QVMM_XML_NS));
	W(xmlTextWriterWriteElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "name", NULL,
				      BAD_CAST s->qube_name));
	W(xmlTextWriterWriteElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "uuid", NULL,
				      BAD_CAST s->uuid));
	W(xmlTextWriterWriteElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "label", NULL,
				      BAD_CAST s->label));
	W(xmlTextWriterWriteElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "class", NULL,
				      BAD_CAST s->qube_class));
	if (s->owner)
		W(xmlTextWriterWriteElementNS(w, BAD_CAST QVMM_XML_NS_PREFIX, BAD_CAST "owner", NULL,
					      BAD_CAST s->owner));
	W(end(w));
	W(end(w));

	/* The guest's RAM is memory_mib.  maxmem_mib is checked but not used
	 * yet: without a balloon (memballoon none) and nothing to balance
	 * memory, <memory> is what QEMU gives the guest, so maxmem there
	 * would hand every qube its maximum (Qubes' default 4000 MiB). */
	snprintf(num, sizeof(num), "%u", s->memory_mib);
	W(start(w, "memory"));
	W(attr(w, "unit", "MiB"));
	W(xmlTextWriterWriteString(w, BAD_CAST num));
	W(end(w));
	snprintf(num, sizeof(num), "%u", s->memory_mib);
	W(start(w, "currentMemory"));
	W(attr(w, "unit", "MiB"));
	W(xmlTextWriterWriteString(w, BAD_CAST num));
	W(end(w));
	snprintf(num, sizeof(num), "%u", s->vcpus);
	W(text_el(w, "vcpu", num));
	W(vsock_xml(w, s, VSOCK_PART_MEMORY));

	W(start(w, "os"));
	W(start(w, "type"));
	W(attr(w, "arch", "x86_64"));
	W(attr(w, "machine", "q35"));
	W(xmlTextWriterWriteString(w, BAD_CAST "hvm"));
	W(end(w));
	W(text_el(w, "kernel", s->kernel));
	if (s->initrd)
		W(text_el(w, "initrd", s->initrd));
	if (s->cmdline)
		W(text_el(w, "cmdline", s->cmdline));
	W(end(w));

	W(start(w, "features"));
	W(start(w, "acpi"));
	W(end(w));
	W(start(w, "apic"));
	W(end(w));
	W(end(w));
	if (s->accel == QVMM_ACCEL_KVM) {
		W(start(w, "cpu"));
		W(attr(w, "mode", "host-passthrough"));
		W(end(w));
	}
	W(start(w, "clock"));
	W(attr(w, "offset", "utc"));
	W(end(w));
	/* a qube that stops, reboots or crashes is gone: qubed decides what next */
	W(text_el(w, "on_poweroff", "destroy"));
	W(text_el(w, "on_reboot", "destroy"));
	W(text_el(w, "on_crash", "destroy"));

	W(start(w, "devices"));
	for (size_t i = 0; i < s->n_disks; i++) {
		const struct qvmm_disk *d = &s->disks[i];
		char dev[8];

		snprintf(dev, sizeof(dev), "vd%c", (char)('a' + i));
		W(start(w, "disk"));
		W(attr(w, "type", "file"));
		W(attr(w, "device", "disk"));
		W(start(w, "driver"));
		W(attr(w, "name", "qemu"));
		W(attr(w, "type", d->format));
		W(attr(w, "discard", "unmap"));
		W(end(w));
		W(start(w, "source"));
		W(attr(w, "file", d->path));
		W(end(w));
		W(start(w, "target"));
		W(attr(w, "dev", dev));
		W(attr(w, "bus", "virtio"));
		W(end(w));
		if (d->readonly) {
			W(start(w, "readonly"));
			W(end(w));
		}
		W(end(w));
	}
	if (s->console_log) {
		W(start(w, "serial"));
		W(attr(w, "type", "file"));
		W(start(w, "source"));
		W(attr(w, "path", s->console_log));
		W(attr(w, "append", "off"));
		W(end(w));
		W(start(w, "target"));
		W(attr(w, "port", "0"));
		W(end(w));
		W(end(w));
	} else {
		W(start(w, "serial"));
		W(attr(w, "type", "pty"));
		W(start(w, "target"));
		W(attr(w, "port", "0"));
		W(end(w));
		W(end(w));
	}
	W(vsock_xml(w, s, VSOCK_PART_DEVICES));
	/* no USB controller (libvirt adds one to q35 otherwise): a qube has
	 * no USB device, and probing one costs boot time under TCG */
	W(start(w, "controller"));
	W(attr(w, "type", "usb"));
	W(attr(w, "model", "none"));
	W(end(w));
	W(start(w, "memballoon"));
	W(attr(w, "model", "none"));
	W(end(w));
	W(end(w)); /* devices */

	W(vsock_xml(w, s, VSOCK_PART_COMMANDLINE));
	W(end(w)); /* domain */
	W(xmlTextWriterEndDocument(w));
	xmlFreeTextWriter(w);
	w = NULL;

	char *xml = strdup((const char *)xmlBufferContent(buf));
	xmlBufferFree(buf);
	if (!xml)
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	*ret_xml = xml;
	return 0;

out_writer:
	if (w)
		xmlFreeTextWriter(w);
	xmlBufferFree(buf);
	return qvmm_err(err, errlen, ret, "libxml2 writer failed");
}

/* text of the first child element of parent named name in namespace ns */
static xmlNodePtr child_ns(xmlNodePtr parent, const char *name, const char *ns)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, name) != 0)
			continue;
		if (ns ? (n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0) : !n->ns)
			return n;
	}
	return NULL;
}

/* the <qube:qube> element of a domain XML libvirt gave us: the document
 * (free it) and the element, or -ENOENT / -EINVAL */
static int our_metadata(const char *xml, xmlDocPtr *ret_doc, xmlNodePtr *ret_q)
{
	xmlDocPtr doc;
	xmlNodePtr root, q;
	size_t len;

	if (!xml)
		return -EINVAL;
	len = strlen(xml);
	if (len > (1u << 24))
		return -E2BIG;
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset || !root ||
	    strcmp((const char *)root->name, "domain") != 0 || root->ns) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	q = child_ns(child_ns(root, "metadata", NULL), "qube", QVMM_XML_NS);
	if (!q) {
		xmlFreeDoc(doc);
		return -ENOENT;
	}
	*ret_doc = doc;
	*ret_q = q;
	return 0;
}

int qvmm_domain_xml_owner(const char *xml, char ret_owner[37])
{
	xmlDocPtr doc;
	xmlNodePtr q, on;
	xmlChar *owner;
	int r = our_metadata(xml, &doc, &q);

	if (r < 0)
		return r;
	on = child_ns(q, "owner", QVMM_XML_NS);
	owner = on ? xmlNodeGetContent(on) : NULL;
	r = -ENOENT;
	if (on)
		r = owner && uuid_is_valid((const char *)owner) ? 0 : -EINVAL;
	if (r == 0)
		snprintf(ret_owner, 37, "%s", (const char *)owner);
	xmlFree(owner);
	xmlFreeDoc(doc);
	return r;
}

int qvmm_domain_xml_metadata(const char *xml, char ret_qube[32], char ret_uuid[37])
{
	xmlDocPtr doc;
	xmlNodePtr root, meta, q, nn, un;
	xmlChar *name = NULL, *uuid = NULL;
	int ret = -ENOENT;

	if (!xml)
		return -EINVAL;
	size_t len = strlen(xml);
	if (len > (1u << 24))
		return -E2BIG;
	/* no network, no entity substitution, no DTD loading */
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return -EINVAL;
	/* libvirt writes no DTD; one here could only define entities */
	if (doc->intSubset || doc->extSubset) {
		ret = -EINVAL;
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || strcmp((const char *)root->name, "domain") != 0 || root->ns) {
		ret = -EINVAL;
		goto out;
	}
	meta = child_ns(root, "metadata", NULL);
	q = child_ns(meta, "qube", QVMM_XML_NS);
	nn = child_ns(q, "name", QVMM_XML_NS);
	un = child_ns(q, "uuid", QVMM_XML_NS);
	if (!q)
		goto out;
	ret = -EINVAL;
	if (!nn || !un)
		goto out;
	name = xmlNodeGetContent(nn);
	uuid = xmlNodeGetContent(un);
	if (!name || !uuid || !qvmm_qube_name_is_valid((const char *)name) ||
	    !uuid_is_valid((const char *)uuid))
		goto out;
	snprintf(ret_qube, 32, "%s", (const char *)name);
	snprintf(ret_uuid, 37, "%s", (const char *)uuid);
	ret = 0;
out:
	xmlFree(name);
	xmlFree(uuid);
	xmlFreeDoc(doc);
	return ret;
}
