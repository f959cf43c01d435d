/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqdb's fixed tables (classes, labels, property definitions) and the
 * syntax of names and values.  No I/O: everything here is a pure function
 * of its arguments, so it is tested table-driven with hostile input.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdb-internal.h"
#include "qname.h"

/* ---- errors ---- */

void qdb_err_set(struct qerr *err, const char *type, const char *fmt, ...)
{
	if (!err)
		return;
	snprintf(err->type, sizeof(err->type), "%s", type);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void qdb_quote(char out[300], const char *untrusted)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;
	out[o++] = '\'';
	if (!untrusted)
		untrusted = "";
	for (i = 0; untrusted[i] && i < 64; i++) {
		unsigned char c = (unsigned char)untrusted[i];
		if (c >= 0x20 && c <= 0x7e && c != '\\' && c != '\'') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (untrusted[i]) {
		memcpy(out + o, "'...", 4);
		o += 4;
	} else {
		out[o++] = '\'';
	}
	out[o] = '\0';
}

/* ---- classes ---- */

static const char *const class_names[QDB_CLASS_COUNT] = {
	[QDB_ADMINVM] = "AdminVM",
	[QDB_TEMPLATEVM] = "TemplateVM",
	[QDB_APPVM] = "AppVM",
	[QDB_STANDALONEVM] = "StandaloneVM",
	[QDB_DISPVM] = "DispVM",
};

const char *qdb_class_name(enum qdb_class c)
{
	if ((unsigned)c >= QDB_CLASS_COUNT)
		return NULL;
	return class_names[c];
}

int qdb_class_parse(const char *s, enum qdb_class *ret)
{
	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i < QDB_CLASS_COUNT; i++)
		if (strcmp(s, class_names[i]) == 0) {
			*ret = (enum qdb_class)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- labels (Qubes' indexes and colours) ---- */

static const struct qdb_label labels[] = {
	{ "red", 1, 0xcc0000 },
	{ "orange", 2, 0xf57900 },
	{ "yellow", 3, 0xedd400 },
	{ "green", 4, 0x73d216 },
	{ "gray", 5, 0x555555 },
	{ "blue", 6, 0x3465a4 },
	{ "purple", 7, 0x75507b },
	{ "black", 8, 0x000000 },
};

size_t qdb_label_count(void)
{
	return sizeof(labels) / sizeof(labels[0]);
}

const struct qdb_label *qdb_label_at(size_t i)
{
	return i < qdb_label_count() ? &labels[i] : NULL;
}

const struct qdb_label *qdb_label_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < qdb_label_count(); i++)
		if (strcmp(name, labels[i].name) == 0)
			return &labels[i];
	return NULL;
}

/* ---- property definitions (sorted by name, as Qubes lists them) ---- */

#define NOT_ADMIN (QDB_C_ALL & ~QDB_C(QDB_ADMINVM))
#define TPL_BASED (QDB_C(QDB_APPVM) | QDB_C(QDB_DISPVM))

static const struct qdb_prop_def props[] = {
	{ "autostart", "bool", "Setting this to True means that the qube should be started when the host "
	  "starts (when qubed starts).", false, QDB_T_BOOL, NOT_ADMIN, true, "False" },
	{ "cid", "int", "vsock context ID of the qube: its identity on the RPC transport. Unique, allocated "
	  "at creation (3 and up), never reused while the qube exists.", true, QDB_T_INT, NOT_ADMIN, false,
	  "allocated at creation" },
	{ "default_dispvm", "vm", "Default disposable template to be used for spawning disposable qubes "
	  "for service calls.", false, QDB_T_VM, QDB_C_ALL, true,
	  "DispVM: its template; others: global default_dispvm" },
	{ "internal", "bool", "Internal qube: hidden from menus and tools that list the user's qubes.",
	  false, QDB_T_BOOL, NOT_ADMIN, true, "False" },
	{ "kernel", "str", "Kernel used by this qube (a name in the kernels directory, \"\" for the "
	  "qube's own). Template-based qubes use their template's value by default.", false, QDB_T_STR,
	  NOT_ADMIN, true, "template's value; else global default_kernel" },
	{ "kernelopts", "str", "Kernel command line options added for this qube. Template-based qubes "
	  "use their template's value by default.", false, QDB_T_STR, NOT_ADMIN, true,
	  "template's value; else \"\"" },
	{ "label", "label", "Colourful label assigned to the qube: the colour of its window borders.",
	  false, QDB_T_LABEL, QDB_C_ALL, true, "given at creation; DispVM: its template's label; dom0: black" },
	{ "maxmem", "int", "Maximum amount of memory available for this qube in MiB (for memory "
	  "balancing); 0 disables balancing. Template-based qubes use their template's value by default.",
	  false, QDB_T_INT, NOT_ADMIN, true, "template's value; else 10 * memory if feature os=Linux, else 4000" },
	{ "memory", "int", "Memory given to the qube at start, in MiB. Template-based qubes use their "
	  "template's value by default.", false, QDB_T_INT, NOT_ADMIN, true, "template's value; else 400" },
	{ "name", "str", "User-specified name of the qube (renaming is not supported).", true, QDB_T_STR,
	  QDB_C_ALL, false, "given at creation" },
	{ "netvm", "vm", "Qube that provides network connection to this qube; \"\" for none. When "
	  "absent, the qube uses the global default_netvm.", false, QDB_T_VM, NOT_ADMIN, true,
	  "TemplateVM: none; others: global default_netvm" },
	{ "preload_dispvm", "int", "Number of disposables of this disposable template that qubed keeps "
	  "booted and paused, so that a request for one is served at once (0: none). Needs "
	  "template_for_dispvms=True; bounded by qubed's preload_memory budget.", false, QDB_T_INT,
	  QDB_C(QDB_APPVM), true, "0" },
	{ "provides_network", "bool", "If this qube can act as network provider (netvm of others).",
	  false, QDB_T_BOOL, NOT_ADMIN, true, "False" },
	{ "qid", "int", "Internal, persistent identifier of the qube (0 for dom0).", true, QDB_T_INT,
	  QDB_C_ALL, false, "allocated at creation (lowest free, 1-9999)" },
	{ "template", "vm", "Template on which this qube is based: a TemplateVM for an AppVM, an AppVM "
	  "with template_for_dispvms=True for a DispVM.", false, QDB_T_VM, TPL_BASED, false,
	  "given at creation (else global default_template / default_dispvm)" },
	{ "template_for_dispvms", "bool", "Should this qube be allowed to be the template of disposable "
	  "qubes.", false, QDB_T_BOOL, QDB_C(QDB_APPVM), true, "False" },
	{ "uuid", "str", "UUID of the qube (RFC 4122 version 4, random, stable).",
	  true, QDB_T_STR, QDB_C_ALL, false, "generated at creation; dom0: all zeros" },
	{ "vcpus", "int", "Number of virtual CPUs for the qube. Template-based qubes use their "
	  "template's value by default.", false, QDB_T_INT, NOT_ADMIN, true, "template's value; else 2" },
};

static const struct qdb_prop_def globals[] = {
	{ "clockvm", "vm", "Which qube to use as the time source for the host (stored for the admin API; "
	  "nothing acts on it yet).", false, QDB_T_VM, 0, true, "none" },
	{ "default_dispvm", "vm", "Default disposable template to be used for spawning disposable qubes "
	  "for service calls in this system.", false, QDB_T_VM, 0, true, "none" },
	{ "default_kernel", "str", "Which kernel to use when not overridden in the qube.", false, QDB_T_STR,
	  0, true, "\"\"" },
	{ "default_netvm", "vm", "Default netvm for qubes; none means not connected.", false, QDB_T_VM, 0,
	  true, "none" },
	{ "default_template", "vm", "Default template for new AppVMs.", false, QDB_T_VM, 0, true, "none" },
	{ "updatevm", "vm", "Which qube to use as update proxy for the host and templates (stored for the "
	  "admin API; nothing acts on it yet).", false, QDB_T_VM, 0, true, "none" },
};

size_t qdb_prop_count(void)
{
	return sizeof(props) / sizeof(props[0]);
}

const struct qdb_prop_def *qdb_prop_at(size_t i)
{
	return i < qdb_prop_count() ? &props[i] : NULL;
}

const struct qdb_prop_def *qdb_prop_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < qdb_prop_count(); i++)
		if (strcmp(name, props[i].name) == 0)
			return &props[i];
	return NULL;
}

bool qdb_prop_applies(const struct qdb_prop_def *p, enum qdb_class c)
{
	return p && (unsigned)c < QDB_CLASS_COUNT && (p->classes & QDB_C(c));
}

size_t qdb_global_prop_count(void)
{
	return sizeof(globals) / sizeof(globals[0]);
}

const struct qdb_prop_def *qdb_global_prop_at(size_t i)
{
	return i < qdb_global_prop_count() ? &globals[i] : NULL;
}

const struct qdb_prop_def *qdb_global_prop_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < qdb_global_prop_count(); i++)
		if (strcmp(name, globals[i].name) == 0)
			return &globals[i];
	return NULL;
}

/* ---- names and values ---- */

bool qdb_name_is_valid(const char *untrusted, const char **why)
{
	if (!qname_qube_is_valid(untrusted)) {
		*why = "a qube name is 1-31 characters of [A-Za-z0-9_.-] starting with a letter";
		return false;
	}
	size_t n = strlen(untrusted);
	if (strcmp(untrusted, "none") == 0 || strcmp(untrusted, "default") == 0) {
		*why = "a qube name cannot be 'none' nor 'default'";
		return false;
	}
	if (strcmp(untrusted, "Domain-0") == 0) {
		*why = "a qube name cannot be 'Domain-0'";
		return false;
	}
	if (n >= 3 && strcmp(untrusted + n - 3, "-dm") == 0) {
		*why = "a qube name cannot end with -dm";
		return false;
	}
	return true;
}

static bool ascii_lower_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char c = *a;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != *b)
			return false;
	}
	return *a == *b;
}

bool qdb_parse_bool(const char *untrusted, char out[QDB_VAL_MAX], const char **why)
{
	static const char *const t[] = { "1", "yes", "true", "on" };
	static const char *const f[] = { "0", "no", "false", "off" };
	if (strnlen(untrusted, 8) < 8) {
		for (size_t i = 0; i < 4; i++) {
			if (ascii_lower_eq(untrusted, t[i])) {
				strcpy(out, "True");
				return true;
			}
			if (ascii_lower_eq(untrusted, f[i])) {
				strcpy(out, "False");
				return true;
			}
		}
	}
	*why = "a bool is True or False (also 1/0, yes/no, on/off, any case)";
	return false;
}

bool qdb_parse_int(const char *untrusted, long long min, long long max, char out[QDB_VAL_MAX],
                   const char **why)
{
	const char *p = untrusted;
	bool neg = false;
	if (*p == '-') {
		neg = true;
		p++;
	}
	size_t n = strnlen(p, 20);
	if (n == 0 || n > 18) {
		*why = "an int is a decimal number of at most 18 digits";
		return false;
	}
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			*why = "an int is a decimal number (digits, optional leading '-')";
			return false;
		}
		v = v * 10 + (p[i] - '0');
	}
	if (neg)
		v = -v;
	if (v < min || v > max) {
		*why = "out of range";
		return false;
	}
	snprintf(out, QDB_VAL_MAX, "%lld", v);
	return true;
}

bool qdb_parse_str(const char *untrusted, size_t max, char out[QDB_VAL_MAX], const char **why)
{
	if (max > QDB_STR_MAX)
		max = QDB_STR_MAX;
	size_t n = strnlen(untrusted, max + 1);
	if (n > max) {
		*why = "too long";
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)untrusted[i];
		if (c < 0x20 || c > 0x7e) {
			*why = "only printable ASCII characters are allowed";
			return false;
		}
	}
	memcpy(out, untrusted, n + 1);
	return true;
}

bool qdb_text_is_valid(const char *untrusted, size_t max, const char **why)
{
	const unsigned char *s = (const unsigned char *)untrusted;
	size_t n = strnlen(untrusted, max + 1);
	if (n > max) {
		*why = "too long";
		return false;
	}
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		unsigned cp, need;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f) {
				*why = "control characters are not allowed";
				return false;
			}
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1f;
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0f;
			need = 2;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07;
			need = 3;
		} else {
			*why = "not valid UTF-8";
			return false;
		}
		if (n - i <= need) {
			*why = "not valid UTF-8 (truncated sequence)";
			return false;
		}
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				*why = "not valid UTF-8";
				return false;
			}
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			*why = "not valid UTF-8 (overlong form, surrogate or beyond U+10FFFF)";
			return false;
		}
		if (cp >= 0x80 && cp <= 0x9f) {
			*why = "control characters are not allowed";
			return false;
		}
		i += need + 1;
	}
	return true;
}

static bool chars_in(const char *s, size_t max, bool dots, const char **why, const char *what)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max) {
		*why = what;
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		          c == '_' || c == '-' || (dots && c == '.');
		if (!ok) {
			*why = what;
			return false;
		}
	}
	return true;
}

bool qdb_tag_is_valid(const char *untrusted, const char **why)
{
	return chars_in(untrusted, QDB_TAG_MAX, false, why, "a tag is 1-64 characters of [A-Za-z0-9_-]");
}

bool qdb_feature_key_is_valid(const char *untrusted, const char **why)
{
	return chars_in(untrusted, QDB_FEATURE_KEY_MAX, true, why,
	                "a feature name is 1-64 characters of [A-Za-z0-9_.-]");
}
