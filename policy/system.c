/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * System information: the qubes the policy is evaluated against, in the
 * JSON shape of Qubes' qrexec (internal.GetSystemInfo).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qpolicy-internal.h"

#define QPOL_MAX_SYSTEM_SIZE (16u << 20)

static const char *const domain_types[] = {
	"AppVM", "TemplateVM", "StandaloneVM", "DispVM", "AdminVM",
};

__attribute__((format(printf, 2, 3)))
static int sys_fail(char **ret_error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *msg = qpol_vmsg(fmt, ap);
	va_end(ap);
	if (!msg)
		return -ENOMEM;
	if (ret_error)
		*ret_error = msg;
	else
		free(msg);
	return -EINVAL;
}

static void domain_finish(struct qpol_domain *d)
{
	free(d->name);
	free(d->type);
	free(d->uuid);
	for (size_t i = 0; i < d->n_tags; i++)
		free(d->tags[i]);
	free(d->tags);
	free(d->default_dispvm);
	free(d->icon);
	free(d->power_state);
}

void qpol_system_free(struct qpol_system *system)
{
	if (!system)
		return;
	for (size_t i = 0; i < system->n_domains; i++)
		domain_finish(&system->domains[i]);
	free(system->domains);
	free(system->by_uuid);
	free(system);
}

static int cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct qpol_domain *)a)->name, ((const struct qpol_domain *)b)->name);
}

const struct qpol_domain *qpol_system_find(const struct qpol_system *system, const char *name)
{
	struct qpol_domain key = { .name = (char *)name };
	if (!system || !name || system->n_domains == 0)
		return NULL;
	return bsearch(&key, system->domains, system->n_domains, sizeof(key), cmp_domain);
}

const struct qpol_domain *qpol_system_lookup(const struct qpol_system *system, const char *key)
{
	if (!system || !key)
		return NULL;
	if (strncmp(key, QPOL_UUID_PREFIX, strlen(QPOL_UUID_PREFIX)) != 0)
		return qpol_system_find(system, key);
	const char *uuid = key + strlen(QPOL_UUID_PREFIX);
	size_t lo = 0, hi = system->n_by_uuid;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct qpol_domain *d = system->by_uuid[mid];
		int c = strcmp(d->uuid, uuid);
		if (c == 0)
			return d;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool qpol_system_has_domain(const struct qpol_system *system, const char *name)
{
	const struct qpol_domain *d = qpol_system_find(system, name);
	return d && !d->implicit;
}

bool qpol_is_dom0(const char *text)
{
	return strcmp(text, "dom0") == 0 || strcmp(text, "@adminvm") == 0 ||
	       strcmp(text, QPOL_DOM0_UUID_REF) == 0;
}

/* A JSON string may hold "\u0000"; as a C string it would be cut there
 * and read as something else ("dvm\u0000x" as "dvm"). */
static bool has_nul(struct json_object *v)
{
	const char *s = json_object_get_string(v);
	return strlen(s) != (size_t)json_object_get_string_len(v);
}

/* Optional string member: absent or null leaves *dst NULL. */
static int get_opt_string(struct json_object *obj, const char *dname, const char *key,
			  char **dst, char **ret_error)
{
	struct json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return sys_fail(ret_error, "domains.%s.%s: expected a string or null", dname, key);
	if (has_nul(v))
		return sys_fail(ret_error, "domains.%s.%s: contains a NUL character", dname, key);
	*dst = strdup(json_object_get_string(v));
	return *dst ? 0 : -ENOMEM;
}

static int parse_domain(const char *name, struct json_object *obj, struct qpol_domain *d,
			char **ret_error)
{
	struct json_object *v;
	int r;

	if (!qname_qube_is_valid(name))
		return sys_fail(ret_error,
				"domains.%s: invalid qube name (1-31 of A-Z a-z 0-9 _ . -, "
				"starting with a letter)",
				name);
	if (!json_object_is_type(obj, json_type_object))
		return sys_fail(ret_error, "domains.%s: expected an object", name);
	d->name = strdup(name);
	if (!d->name)
		return -ENOMEM;

	if (!json_object_object_get_ex(obj, "type", &v))
		return sys_fail(ret_error, "domains.%s.type: missing", name);
	if (json_object_is_type(v, json_type_string) && !has_nul(v)) {
		const char *t = json_object_get_string(v);
		for (size_t i = 0; i < sizeof(domain_types) / sizeof(domain_types[0]); i++) {
			if (strcmp(t, domain_types[i]) == 0) {
				d->type = strdup(t);
				if (!d->type)
					return -ENOMEM;
				break;
			}
		}
	}
	if (!d->type)
		return sys_fail(ret_error,
				"domains.%s.type: expected one of "
				"AppVM|TemplateVM|StandaloneVM|DispVM|AdminVM",
				name);

	if (json_object_object_get_ex(obj, "tags", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_array))
			return sys_fail(ret_error, "domains.%s.tags: expected an array of strings",
					name);
		size_t n = json_object_array_length(v);
		if (n) {
			d->tags = calloc(n, sizeof(*d->tags));
			if (!d->tags)
				return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = json_object_array_get_idx(v, i);
			if (!json_object_is_type(t, json_type_string))
				return sys_fail(ret_error, "domains.%s.tags[%zu]: expected a string",
						name, i);
			if (has_nul(t))
				return sys_fail(ret_error,
						"domains.%s.tags[%zu]: contains a NUL character", name, i);
			d->tags[i] = strdup(json_object_get_string(t));
			if (!d->tags[i])
				return -ENOMEM;
			d->n_tags++;
		}
	}

	if (json_object_object_get_ex(obj, "template_for_dispvms", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean))
			return sys_fail(ret_error,
					"domains.%s.template_for_dispvms: expected true or false", name);
		d->template_for_dispvms = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(obj, "internal", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean))
			return sys_fail(ret_error, "domains.%s.internal: expected true or false", name);
		d->internal = json_object_get_boolean(v);
	}
	r = get_opt_string(obj, name, "uuid", &d->uuid, ret_error);
	if (r < 0)
		return r;
	if (d->uuid) {
		/* Qubes writes UUIDs in lower case and looks them up as
		 * written: another spelling would never match a policy's
		 * uuid: reference, so it is refused rather than ignored. */
		bool lower = qname_uuid_is_valid(d->uuid);
		for (const char *c = d->uuid; lower && *c; c++)
			lower = !(*c >= 'A' && *c <= 'F');
		if (!lower)
			return sys_fail(ret_error,
					"domains.%s.uuid: expected a UUID in lower-case 8-4-4-4-12 "
					"hex form, like 6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01",
					name);
		bool is_nil = strcmp(d->uuid, QPOL_DOM0_UUID) == 0;
		if (is_nil != (strcmp(name, "dom0") == 0))
			return sys_fail(ret_error,
					is_nil ? "domains.%s.uuid: the nil UUID is dom0's"
					       : "domains.%s.uuid: dom0's UUID is the nil UUID "
						 QPOL_DOM0_UUID,
					name);
	}
	/* The admin qube is dom0 and nothing else (Qubes has no other
	 * AdminVM): a qube of that type would match rules meant for it. */
	if ((strcmp(d->type, "AdminVM") == 0) != (strcmp(name, "dom0") == 0))
		return sys_fail(ret_error,
				strcmp(name, "dom0") == 0
					? "domains.%s.type: dom0 is the AdminVM"
					: "domains.%s.type: only dom0 is an AdminVM",
				name);
	r = get_opt_string(obj, name, "default_dispvm", &d->default_dispvm, ret_error);
	if (r < 0)
		return r;
	r = get_opt_string(obj, name, "icon", &d->icon, ret_error);
	if (r < 0)
		return r;
	return get_opt_string(obj, name, "power_state", &d->power_state, ret_error);
}

/* Qubes always has dom0, with the nil UUID: one that the JSON leaves out
 * is added (and reported absent by qpol_system_has_domain()), one without
 * a uuid gets the nil UUID.  SYS->domains has room for one more. */
static int add_dom0(struct qpol_system *sys)
{
	struct qpol_domain *d = (struct qpol_domain *)qpol_system_find(sys, "dom0");

	if (!d) {
		d = &sys->domains[sys->n_domains];
		d->implicit = true;
		d->name = strdup("dom0");
		d->type = strdup("AdminVM");
		d->power_state = strdup("Running");
		sys->n_domains++; /* counted even when partly filled: freed by the caller */
		if (!d->name || !d->type || !d->power_state)
			return -ENOMEM;
		qsort(sys->domains, sys->n_domains, sizeof(*sys->domains), cmp_domain);
		d = (struct qpol_domain *)qpol_system_find(sys, "dom0");
	}
	if (!d->uuid) {
		d->uuid = strdup(QPOL_DOM0_UUID);
		if (!d->uuid)
			return -ENOMEM;
	}
	return 0;
}

static int cmp_by_uuid(const void *a, const void *b)
{
	const struct qpol_domain *da = *(const struct qpol_domain *const *)a;
	const struct qpol_domain *db = *(const struct qpol_domain *const *)b;
	return strcmp(da->uuid, db->uuid);
}

/* Builds SYS->by_uuid; two qubes with one uuid are an error. */
static int index_uuids(struct qpol_system *sys, char **ret_error)
{
	sys->by_uuid = calloc(sys->n_domains, sizeof(*sys->by_uuid));
	if (!sys->by_uuid)
		return -ENOMEM;
	for (size_t i = 0; i < sys->n_domains; i++)
		if (sys->domains[i].uuid)
			sys->by_uuid[sys->n_by_uuid++] = &sys->domains[i];
	qsort(sys->by_uuid, sys->n_by_uuid, sizeof(*sys->by_uuid), cmp_by_uuid);
	for (size_t i = 1; i < sys->n_by_uuid; i++) {
		const struct qpol_domain *a = sys->by_uuid[i - 1];
		const struct qpol_domain *b = sys->by_uuid[i];
		if (strcmp(a->name, b->name) > 0) { /* the same message whatever qsort did */
			a = sys->by_uuid[i];
			b = sys->by_uuid[i - 1];
		}
		if (strcmp(a->uuid, b->uuid) == 0)
			return sys_fail(ret_error, "domains.%s.uuid: %s is also the uuid of %s",
					b->name, b->uuid, a->name);
	}
	return 0;
}

int qpol_system_parse_json(const char *text, size_t len, struct qpol_system **ret_system,
			   char **ret_error)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *domains;
	struct qpol_system *sys = NULL;
	int r;

	if (!ret_system || (!text && len))
		return -EINVAL;
	if (len > QPOL_MAX_SYSTEM_SIZE)
		return sys_fail(ret_error, "system info too large");
	if (len > (size_t)INT32_MAX)
		return sys_fail(ret_error, "system info too large");
	if (text && memchr(text, '\0', len))
		return sys_fail(ret_error, "system info contains a NUL byte");
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, text ? text : "", (int)len);
	if (!root) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		if (e == json_tokener_continue)
			r = sys_fail(ret_error, "invalid JSON: unexpected end of input");
		else
			r = sys_fail(ret_error, "invalid JSON at offset %zu: %s",
				     json_tokener_get_parse_end(tok), json_tokener_error_desc(e));
		goto out;
	}
	if (json_tokener_get_parse_end(tok) < len) {
		for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
			char c = text[i];
			if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
				r = sys_fail(ret_error, "invalid JSON: trailing data at offset %zu", i);
				goto out;
			}
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		r = sys_fail(ret_error, "expected a JSON object with a \"domains\" member");
		goto out;
	}
	if (!json_object_object_get_ex(root, "domains", &domains)) {
		r = sys_fail(ret_error, "domains: missing");
		goto out;
	}
	if (!json_object_is_type(domains, json_type_object)) {
		r = sys_fail(ret_error, "domains: expected an object");
		goto out;
	}
	sys = calloc(1, sizeof(*sys));
	if (!sys) {
		r = -ENOMEM;
		goto out;
	}
	size_t n = (size_t)json_object_object_length(domains);
	/* one more for an implicit dom0 */
	sys->domains = calloc(n + 1, sizeof(*sys->domains));
	if (!sys->domains) {
		r = -ENOMEM;
		goto out;
	}
	json_object_object_foreach(domains, key, val)
	{
		if (sys->n_domains >= n)
			break;
		r = parse_domain(key, val, &sys->domains[sys->n_domains], ret_error);
		sys->n_domains++; /* counted even when partly filled: freed below */
		if (r < 0)
			goto out;
	}
	if (sys->n_domains > 1)
		qsort(sys->domains, sys->n_domains, sizeof(*sys->domains), cmp_domain);
	for (size_t i = 1; i < sys->n_domains; i++) {
		if (strcmp(sys->domains[i - 1].name, sys->domains[i].name) == 0) {
			r = sys_fail(ret_error, "domains.%s: given twice", sys->domains[i].name);
			goto out;
		}
	}
	for (size_t i = 0; i < sys->n_domains; i++) {
		const struct qpol_domain *d = &sys->domains[i];
		if (d->default_dispvm && !qpol_system_find(sys, d->default_dispvm)) {
			r = sys_fail(ret_error, "domains.%s.default_dispvm: no such qube: %s", d->name,
				     d->default_dispvm);
			goto out;
		}
	}
	r = add_dom0(sys);
	if (r < 0)
		goto out;
	r = index_uuids(sys, ret_error);
	if (r < 0)
		goto out;
	*ret_system = sys;
	sys = NULL;
	r = 0;
out:
	qpol_system_free(sys);
	json_object_put(root);
	json_tokener_free(tok);
	return r;
}

int qpol_system_load_file(const char *path, struct qpol_system **ret_system, char **ret_error)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	if (!path || !ret_system)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		sys_fail(ret_error, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)QPOL_MAX_SYSTEM_SIZE) {
		close(fd);
		return sys_fail(ret_error, "%s: not a regular file of at most 16 MiB", path);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			close(fd);
			free(buf);
			sys_fail(ret_error, "%s: %s", path, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > (size_t)st.st_size) {
		free(buf);
		return sys_fail(ret_error, "%s: file changed while being read", path);
	}
	char *error = NULL;
	r = qpol_system_parse_json(buf, len, ret_system, &error);
	free(buf);
	if (r == -EINVAL && error) {
		sys_fail(ret_error, "%s: %s", path, error);
		free(error);
	}
	return r;
}

int qpol_system_resolve_target(const struct qpol_system *system, const char *target,
			       char **ret_name)
{
	const struct qpol_domain *d;
	char *name = NULL;

	if (!system || !target || !ret_name)
		return -EINVAL;
	if (qpol_is_dom0(target)) {
		name = strdup("dom0");
	} else if (strncmp(target, "@dispvm:", 8) == 0) {
		/* whether X may serve as a disposable template is checked by
		 * whoever creates the disposable (the policy lets @dispvm
		 * through a default_dispvm that is none, as Qubes does) */
		d = qpol_system_lookup(system, target + 8);
		if (!d)
			return -ENOENT;
		if (asprintf(&name, "@dispvm:%s", d->name) < 0)
			return -ENOMEM;
	} else if (target[0] == '@' || strcmp(target, "*") == 0) {
		return -EINVAL;
	} else {
		d = qpol_system_lookup(system, target);
		if (!d)
			return -ENOENT;
		name = strdup(d->name);
	}
	if (!name)
		return -ENOMEM;
	*ret_name = name;
	return 0;
}
