/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: the admin API methods.  Names, arguments, payloads and outputs
 * follow Qubes OS 4.3's qubes/api/admin.py (docs/admin-api.md lists each
 * with its validation and errors); methods of our own are "qube.*".
 * Everything here runs in the daemon's one thread; a handler either
 * replies at once or marks the call pending on a lifecycle operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "qname.h"

/* ---- helpers ---- */

/* the payload as a C string; a NUL inside is refused */
static int payload_str(struct qd_call *c, char *buf, size_t len, struct qerr *err)
{
	if (c->payload_len >= len) {
		qd_err(err, "QubesValueError", "%s: the value is longer than %zu bytes", c->method, len - 1);
		return -EINVAL;
	}
	if (memchr(c->payload, '\0', c->payload_len)) {
		qd_err(err, "QubesValueError", "%s: the value contains a NUL byte", c->method);
		return -EINVAL;
	}
	memcpy(buf, c->payload, c->payload_len);
	buf[c->payload_len] = '\0';
	return 0;
}

static void emit(struct qd *qd, const char *subject, const char *event, const char *k1, const char *v1)
{
	const char *kv[3] = { k1, v1, NULL };
	qd_api_event(qd, subject, event, k1 ? kv : NULL);
}

/* "default=True type=int 400" */
static int serialize_prop(struct qd *qd, const char *qube, const struct qdb_prop_def *p, struct qd_call *c,
			  bool with_name, struct qerr *err)
{
	char *value = NULL;
	bool is_default = false;
	int r;

	if (qube)
		r = qdb_prop_get(qd->db, qube, p->name, &value, &is_default, err);
	else
		r = qdb_global_get(qd->db, p->name, &value, &is_default, err);
	if (r == -ENODATA) {
		/* no value and no default: Qubes prints an empty value */
		r = with_name ? qd_out_appendf(c, "%s default=True type=%s \n", p->name, p->type)
			      : qd_out_appendf(c, "default=True type=%s ", p->type);
		return r;
	}
	if (r < 0)
		return r;
	if (with_name) {
		/* GetAll: one line each, \ and newline escaped */
		r = qd_out_appendf(c, "%s default=%s type=%s ", p->name, is_default ? "True" : "False", p->type);
		for (const char *s = value; r == 0 && *s; s++) {
			if (*s == '\\')
				r = qd_out_append(c, "\\\\", 2);
			else if (*s == '\n')
				r = qd_out_append(c, "\\n", 2);
			else
				r = qd_out_append(c, s, 1);
		}
		if (r == 0)
			r = qd_out_append(c, "\n", 1);
	} else {
		r = qd_out_appendf(c, "default=%s type=%s %s", is_default ? "True" : "False", p->type, value);
	}
	free(value);
	return r;
}

static const struct qdb_prop_def *vm_prop(struct qd *qd, const char *qube, const char *name, struct qerr *err)
{
	const struct qdb_prop_def *p = qdb_prop_lookup(name);
	enum qdb_class cls;

	if (qdb_qube_class(qd->db, qube, &cls, err) < 0)
		return NULL;
	if (!p || !qdb_prop_applies(p, cls)) {
		qd_err(err, "QubesNoSuchPropertyError", "Invalid property '%s' of %s", name, qube);
		return NULL;
	}
	return p;
}

/* ---- admin.vm.List, properties ---- */

static int m_vm_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	r = qdb_qube_list(qd->db, &names, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		enum qdb_class cls;
		char *uuid = NULL;

		if (strcmp(c->dest, "dom0") != 0 && strcmp(c->dest, names[i]) != 0)
			continue;
		if (qdb_qube_class(qd->db, names[i], &cls, err) < 0)
			continue;
		qdb_prop_get(qd->db, names[i], "uuid", &uuid, NULL, NULL);
		r = qd_out_appendf(c, "%s class=%s state=%s uuid=%s\n", names[i], qdb_class_name(cls),
				   qd_state_name(cls == QDB_ADMINVM ? QD_RUNNING : qd_vm_state(qd, names[i])),
				   uuid ? uuid : "");
		free(uuid);
	}
	qdb_strv_free(names, n);
	if (r < 0) {
		qd_err(err, "QubesException", "out of memory");
		return r;
	}
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_prop_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	bool global = strncmp(c->method, "admin.property.", 15) == 0;
	enum qdb_class cls = QDB_ADMINVM;
	size_t n = global ? qdb_global_prop_count() : qdb_prop_count();

	if (!global && qdb_qube_class(qd->db, c->dest, &cls, err) < 0)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		const struct qdb_prop_def *p = global ? qdb_global_prop_at(i) : qdb_prop_at(i);
		if (!global && !qdb_prop_applies(p, cls))
			continue;
		qd_out_appendf(c, "%s\n", p->name);
	}
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static const struct qdb_prop_def *lookup_for_call(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	if (strncmp(c->method, "admin.property.", 15) == 0) {
		const struct qdb_prop_def *p = qdb_global_prop_lookup(c->arg);
		if (!p)
			qd_err(err, "QubesNoSuchPropertyError", "Invalid property '%s' of dom0", c->arg);
		return p;
	}
	return vm_prop(qd, c->dest, c->arg, err);
}

static bool is_global(const struct qd_call *c)
{
	return strncmp(c->method, "admin.property.", 15) == 0;
}

static int m_prop_get(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_prop_def *p = lookup_for_call(qd, c, err);

	if (!p)
		return -ENOENT;
	if (serialize_prop(qd, is_global(c) ? NULL : c->dest, p, c, false, err) < 0)
		return -EINVAL;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_prop_get_all(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	bool global = is_global(c);
	enum qdb_class cls = QDB_ADMINVM;
	size_t n = global ? qdb_global_prop_count() : qdb_prop_count();
	const struct qdb_prop_def *sorted[256];
	size_t k = 0;

	if (!global && qdb_qube_class(qd->db, c->dest, &cls, err) < 0)
		return -ENOENT;
	for (size_t i = 0; i < n && k < 256; i++) {
		const struct qdb_prop_def *p = global ? qdb_global_prop_at(i) : qdb_prop_at(i);
		if (global || qdb_prop_applies(p, cls))
			sorted[k++] = p;
	}
	/* Qubes sorts by name */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1]->name, sorted[j]->name) > 0; j--) {
			const struct qdb_prop_def *t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < k; i++)
		if (serialize_prop(qd, global ? NULL : c->dest, sorted[i], c, true, err) < 0)
			return -EINVAL;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_prop_get_default(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_prop_def *p = lookup_for_call(qd, c, err);
	char *value = NULL;
	int r;

	if (!p)
		return -ENOENT;
	if (is_global(c)) {
		/* globals' defaults are fixed: the value after a reset */
		bool is_default = false;
		r = qdb_global_get(qd->db, p->name, &value, &is_default, err);
		if (r == 0 && !is_default) {
			free(value);
			value = NULL;
			r = -ENODATA;
		}
	} else {
		r = qdb_prop_get_default(qd->db, c->dest, p->name, &value, err);
	}
	if (r == -ENODATA) {
		qd_reply_ok(qd, c, NULL, 0);
		return 0;
	}
	if (r < 0)
		return r;
	qd_reply_okf(qd, c, "type=%s %s", p->type, value);
	free(value);
	return 0;
}

static int m_prop_help(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_prop_def *p = lookup_for_call(qd, c, err);

	if (!p)
		return -ENOENT;
	qd_reply_okf(qd, c, "%s", p->help ? p->help : "");
	return 0;
}

static int m_prop_set(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_prop_def *p = lookup_for_call(qd, c, err);
	char value[QDB_STR_MAX + 1];
	int r;

	if (!p)
		return -ENOENT;
	if (payload_str(c, value, sizeof(value), err) < 0)
		return -EINVAL;
	if (!is_global(c)) {
		enum qd_state st = qd_vm_state(qd, c->dest);
		/* what the running domain was built from cannot change under it */
		if (st != QD_HALTED && (strcmp(p->name, "template") == 0 || strcmp(p->name, "kernel") == 0 ||
					strcmp(p->name, "vcpus") == 0 || strcmp(p->name, "maxmem") == 0)) {
			qd_err(err, "QubesVMNotHaltedError",
			       "Cannot change %s of %s while it is running; shut it down first", p->name, c->dest);
			return -EBUSY;
		}
		r = qdb_prop_set(qd->db, c->dest, p->name, value, err);
	} else {
		r = qdb_global_set(qd->db, p->name, value, err);
	}
	if (r < 0)
		return r;
	{
		char ev[128];
		snprintf(ev, sizeof(ev), "property-set:%s", p->name);
		emit(qd, is_global(c) ? "dom0" : c->dest, ev, "name", p->name);
	}
	qd->sysinfo_dirty = true;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_prop_reset(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_prop_def *p = lookup_for_call(qd, c, err);
	int r;

	if (!p)
		return -ENOENT;
	r = is_global(c) ? qdb_global_reset(qd->db, p->name, err) : qdb_prop_reset(qd->db, c->dest, p->name, err);
	if (r < 0)
		return r;
	{
		char ev[128];
		snprintf(ev, sizeof(ev), "property-reset:%s", p->name);
		emit(qd, is_global(c) ? "dom0" : c->dest, ev, "name", p->name);
	}
	qd->sysinfo_dirty = true;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

/* ---- tags, features ---- */

static int m_list_out(struct qd *qd, struct qd_call *c, char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qd_out_appendf(c, "%s\n", v[i]);
	qdb_strv_free(v, n);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_tag_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char **v = NULL;
	size_t n = 0;
	int r = qdb_tag_list(qd->db, c->dest, &v, &n, err);

	return r < 0 ? r : m_list_out(qd, c, v, n);
}

static int m_tag_get(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	qd_reply_ok(qd, c, qdb_tag_has(qd->db, c->dest, c->arg) ? "1" : "0", 1);
	return 0;
}

static int m_tag_set(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r = qdb_tag_set(qd->db, c->dest, c->arg, err);

	if (r < 0)
		return r;
	emit(qd, c->dest, "domain-tag-add:", "tag", c->arg);
	qd->sysinfo_dirty = true;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_tag_remove(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r = qdb_tag_remove(qd->db, c->dest, c->arg, err);

	if (r == -ENOENT && !err->type[0])
		qd_err(err, "QubesTagNotFoundError", "Tag not set for domain %s: %s", c->dest, c->arg);
	if (r < 0)
		return r;
	emit(qd, c->dest, "domain-tag-delete:", "tag", c->arg);
	qd->sysinfo_dirty = true;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_feature_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char **v = NULL;
	size_t n = 0;
	int r = qdb_feature_list(qd->db, c->dest, &v, &n, err);

	return r < 0 ? r : m_list_out(qd, c, v, n);
}

static int m_feature_get(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char *v = NULL;
	int r = qdb_feature_get(qd->db, c->dest, c->arg, &v, err);

	if (r == -ENOENT && !err->type[0])
		qd_err(err, "QubesFeatureNotFoundError", "Feature not set for domain %s: %s", c->dest, c->arg);
	if (r < 0)
		return r;
	qd_reply_ok(qd, c, v, strlen(v));
	free(v);
	return 0;
}

static int m_feature_set(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char value[QDB_FEATURE_VALUE_MAX + 1];
	int r;

	if (payload_str(c, value, sizeof(value), err) < 0)
		return -EINVAL;
	r = qdb_feature_set(qd->db, c->dest, c->arg, value, err);
	if (r < 0)
		return r;
	emit(qd, c->dest, "domain-feature-set:", "feature", c->arg);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_feature_remove(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r = qdb_feature_remove(qd->db, c->dest, c->arg, err);

	if (r == -ENOENT && !err->type[0])
		qd_err(err, "QubesFeatureNotFoundError", "Feature not set for domain %s: %s", c->dest, c->arg);
	if (r < 0)
		return r;
	emit(qd, c->dest, "domain-feature-delete:", "feature", c->arg);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

/* ---- labels ---- */

static int m_label_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	for (size_t i = 0; i < qdb_label_count(); i++)
		qd_out_appendf(c, "%s\n", qdb_label_at(i)->name);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_label_get(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const struct qdb_label *l = qdb_label_lookup(c->arg);

	if (!l) {
		qd_err(err, "QubesLabelNotFoundError", "Label does not exist: %s", c->arg);
		return -ENOENT;
	}
	if (strcmp(c->method, "admin.label.Index") == 0)
		qd_reply_okf(qd, c, "%u", l->index);
	else
		qd_reply_okf(qd, c, "0x%06x", l->colour);
	return 0;
}

/* ---- create, remove, clone ---- */

static int m_vm_create(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	const char *cls_name = c->method + strlen("admin.vm.Create.");
	char payload[512], name[QD_NAME_MAX] = "", label[32] = "";
	enum qdb_class cls;
	char *save = NULL;
	int r;

	if (strncmp(c->method, "admin.vm.CreateInPool.", 22) == 0)
		cls_name = c->method + 22;
	if (qdb_class_parse(cls_name, &cls) < 0 || cls == QDB_ADMINVM) {
		qd_err(err, "QubesValueError", "unknown qube class '%s' (AppVM, TemplateVM, StandaloneVM, DispVM)",
		       cls_name);
		return -EINVAL;
	}
	if (payload_str(c, payload, sizeof(payload), err) < 0)
		return -EINVAL;
	for (char *t = strtok_r(payload, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(t, '=');
		if (!eq) {
			qd_err(err, "ProtocolError", "create: '%s' is not KEY=VALUE", t);
			return -EINVAL;
		}
		*eq++ = '\0';
		if (strcmp(t, "name") == 0 && !name[0] && strlen(eq) >= sizeof(name)) {
			qd_err(err, "QubesValueError", "VM name must be at most %zu characters: '%.40s...'",
			       sizeof(name) - 1, eq);
			return -EINVAL;
		} else if (strcmp(t, "name") == 0 && !name[0])
			strcpy(name, eq);
		else if (strcmp(t, "label") == 0 && !label[0] && strlen(eq) < sizeof(label))
			strcpy(label, eq);
		else if (strcmp(t, "pool") == 0 || strncmp(t, "pool:", 5) == 0)
			continue; /* one storage pool: the state directory */
		else {
			qd_err(err, "ProtocolError", "create: unknown or repeated option '%s'", t);
			return -EINVAL;
		}
	}
	if (!name[0] || !label[0]) {
		qd_err(err, "ProtocolError", "create: the payload must give name=NAME and label=LABEL");
		return -EINVAL;
	}
	if (qdb_qube_exists(qd->db, name)) {
		qd_err(err, "QubesValueError", "A qube named '%s' already exists", name);
		return -EEXIST;
	}
	r = qdb_qube_create(qd->db, name, cls, c->arg[0] ? c->arg : NULL, label, err);
	if (r < 0)
		return r;
	r = qd_vm_create_storage(qd, name, err);
	if (r < 0) {
		struct qerr ignore;
		qdb_qube_remove(qd->db, name, &ignore);
		qd_vm_remove_storage(qd, name, &ignore);
		return r;
	}
	qd_log("created %s %s (label %s%s%s)", qdb_class_name(cls), name, label, c->arg[0] ? ", template " : "",
	       c->arg);
	emit(qd, "dom0", "domain-add", "vm", name);
	qd->sysinfo_dirty = true;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_vm_remove(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r;

	if (strcmp(c->dest, "dom0") == 0) {
		qd_err(err, "QubesVMInUseError", "dom0 cannot be removed");
		return -EPERM;
	}
	if (qd_vm_state(qd, c->dest) != QD_HALTED) {
		qd_err(err, "QubesVMNotHaltedError", "Qube %s is not halted: shut it down before removing it",
		       c->dest);
		return -EBUSY;
	}
	r = qdb_qube_remove(qd->db, c->dest, err);
	if (r < 0)
		return r;
	r = qd_vm_remove_storage(qd, c->dest, err);
	qd_vm_forget(qd, c->dest);
	emit(qd, "dom0", "domain-delete", "vm", c->dest);
	qd->sysinfo_dirty = true;
	if (r < 0) {
		qd_log("removed %s, but not all of its files: %s", c->dest, err->msg);
		return r;
	}
	qd_log("removed %s", c->dest);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_vm_clone(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char src[256], dst[256];
	int r;

	if (strcmp(c->dest, "dom0") == 0) {
		qd_err(err, "QubesValueError", "dom0 cannot be cloned");
		return -EINVAL;
	}
	if (qd_vm_state(qd, c->dest) != QD_HALTED) {
		qd_err(err, "QubesVMNotHaltedError", "Qube %s must be halted to be cloned", c->dest);
		return -EBUSY;
	}
	r = qdb_qube_clone(qd->db, c->dest, c->arg, err);
	if (r < 0)
		return r;
	/* the clone's volumes: copies of the source's persistent ones */
	if (qd_vm_dir(qd, c->dest, src, sizeof(src)) < 0 || qd_vm_dir(qd, c->arg, dst, sizeof(dst)) < 0 ||
	    qd_mkdir_p(dst, 0711) < 0) {
		qd_err(err, "QubesException", "clone: path too long");
		r = -ENAMETOOLONG;
		goto err_remove;
	}
	static const char *const files[] = { "private.qcow2", "root.qcow2", "vmlinuz", "initrd" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char from[512], to[512], msg[512];
		qd_path(from, sizeof(from), "%s/%s", src, files[i]);
		qd_path(to, sizeof(to), "%s/%s", dst, files[i]);
		if (access(from, F_OK) != 0)
			continue;
		r = qvmm_volume_snapshot(from, to, msg, sizeof(msg));
		if (r < 0) {
			qd_err(err, "QubesException", "clone: copying %s: %s", files[i], msg);
			goto err_remove;
		}
	}
	emit(qd, "dom0", "domain-add", "vm", c->arg);
	qd->sysinfo_dirty = true;
	qd_log("cloned %s to %s", c->dest, c->arg);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;

err_remove:
	{
		struct qerr ignore;
		qdb_qube_remove(qd->db, c->arg, &ignore);
		qd_rm_rf(dst);
	}
	return r;
}

/* ---- lifecycle ---- */

static void call_done(struct qd *qd, void *ctx, int status, const char *msg)
{
	struct qd_call *c = ctx;

	if (c->gone) {
		/* the client left while we worked: nothing to tell */
		qd_call_release(qd, c);
		return;
	}
	if (status == 0) {
		qd_reply_ok(qd, c, NULL, 0);
	} else {
		struct qerr e;
		qd_err(&e, "QubesException", "%s", msg && *msg ? msg : "operation failed");
		qd_reply_exc(qd, c, &e);
	}
}

static struct qd_waiter *waiter_for(struct qd_call *c, int until)
{
	struct qd_waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->until = until;
	w->done = call_done;
	w->ctx = c;
	return w;
}

static int m_vm_start(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	struct qd_waiter *w = waiter_for(c, QD_WAIT_RUNNING);
	int r;

	if (!w) {
		qd_err(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	c->pending = true;
	r = qd_vm_start(qd, c->dest, w, err);
	if (r < 0) {
		c->pending = false;
		free(w);
		return r;
	}
	return 0;
}

static int m_vm_shutdown(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	bool force = false, wait = false;
	char arg[sizeof(c->arg)], *save = NULL;
	struct qd_waiter *w = NULL;
	int r;

	strcpy(arg, c->arg);
	for (char *t = strtok_r(arg, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
		if (strcmp(t, "force") == 0)
			force = true;
		else if (strcmp(t, "wait") == 0)
			wait = true;
		else {
			qd_err(err, "ProtocolError", "Argument must match: force, wait (got '%s')", t);
			return -EINVAL;
		}
	}
	if (wait) {
		w = waiter_for(c, QD_WAIT_HALTED);
		if (!w) {
			qd_err(err, "QubesException", "out of memory");
			return -ENOMEM;
		}
		c->pending = true;
	}
	r = qd_vm_shutdown(qd, c->dest, force, w, err);
	if (r < 0) {
		c->pending = false;
		free(w);
		return r;
	}
	if (!wait)
		qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_vm_kill(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r = qd_vm_kill(qd, c->dest, err);

	if (r < 0)
		return r;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_vm_pause(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	int r = qd_vm_pause(qd, c->dest, strcmp(c->method, "admin.vm.Pause") == 0, err);

	if (r < 0)
		return r;
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_vm_state(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	struct qd_vm *vm = qd_vm_get(qd, c->dest, false);
	enum qd_state st = qd_vm_state(qd, c->dest);

	qd_reply_okf(qd, c, "state=%s cid=%u accel=%s vsock=%s started=%lld\n", qd_state_name(st),
		     vm ? vm->cid : 0, vm && st != QD_HALTED ? qvmm_accel_to_string(vm->accel) : "-",
		     vm && st != QD_HALTED ? qvmm_vsock_to_string(vm->vsock) : "-",
		     vm && st != QD_HALTED ? (long long)vm->started : 0LL);
	return 0;
}

static int m_vm_current_state(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	enum qd_state st = qd_vm_state(qd, c->dest);
	char *mem = NULL;

	qdb_prop_get(qd->db, c->dest, "memory", &mem, NULL, NULL);
	qd_reply_okf(qd, c, "mem=%s mem_static_max=%s cputime=0 power_state=%s",
		     st == QD_HALTED || !mem ? "0" : mem, mem ? mem : "0", qd_state_name(st));
	free(mem);
	return 0;
}

/* ---- volumes ---- */

static const char *const volumes[] = { "root", "private", "volatile", "kernel" };

static int volume_path(struct qd *qd, const char *qube, const char *vol, char *buf, size_t len)
{
	char dir[400];

	if (qd_vm_dir(qd, qube, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	if (strcmp(vol, "private") == 0)
		return qd_path(buf, len, "%s/private.qcow2", dir);
	if (strcmp(vol, "root") == 0)
		return qd_path(buf, len, "%s/root.qcow2", dir);
	if (strcmp(vol, "volatile") == 0)
		return qd_path(buf, len, "%s/volatile.qcow2", dir);
	if (strcmp(vol, "kernel") == 0)
		return qd_path(buf, len, "%s/vmlinuz", dir);
	return -ENOENT;
}

static int check_volume(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	if (strcmp(c->dest, "dom0") == 0) {
		qd_err(err, "PermissionDenied", "dom0 has no volumes");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(volumes) / sizeof(volumes[0]); i++)
		if (strcmp(c->arg, volumes[i]) == 0)
			return 0;
	qd_err(err, "PermissionDenied", "No such volume: '%s' (root, private, volatile, kernel)", c->arg);
	return -ENOENT;
}

static int m_volume_list(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	if (strcmp(c->dest, "dom0") != 0)
		for (size_t i = 0; i < sizeof(volumes) / sizeof(volumes[0]); i++)
			qd_out_appendf(c, "%s\n", volumes[i]);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_volume_info(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char path[512], rev[600], msg[256];
	uint64_t vsize = 0, actual = 0;
	enum qdb_class cls;
	bool persistent_root, exists;

	if (check_volume(qd, c, err) < 0 || qdb_qube_class(qd->db, c->dest, &cls, err) < 0)
		return -ENOENT;
	volume_path(qd, c->dest, c->arg, path, sizeof(path));
	exists = access(path, F_OK) == 0;
	if (exists && strcmp(c->arg, "kernel") != 0)
		qvmm_volume_info(path, &vsize, &actual, msg, sizeof(msg));
	else if (exists) {
		struct stat st;
		if (stat(path, &st) == 0)
			vsize = actual = (uint64_t)st.st_size;
	}
	persistent_root = cls == QDB_TEMPLATEVM || cls == QDB_STANDALONEVM;
	bool is_private = strcmp(c->arg, "private") == 0, is_root = strcmp(c->arg, "root") == 0;
	bool is_volatile = strcmp(c->arg, "volatile") == 0;
	qd_path(rev, sizeof(rev), "%s.rev1", path);
	qd_out_appendf(c,
		       "pool=default\nvid=%s/%s\nsize=%" PRIu64 "\nusage=%" PRIu64 "\nrw=%s\nsource=\npath=%s\n"
		       "save_on_stop=%s\nsnap_on_start=%s\nrevisions_to_keep=%d\nephemeral=%s\n",
		       c->dest, c->arg, vsize, actual,
		       is_private || is_volatile || (is_root && persistent_root) ? "True" : "False", path,
		       (is_private && cls != QDB_DISPVM) || (is_root && persistent_root) ? "True" : "False",
		       is_root && !persistent_root ? "True" : "False", is_private ? 1 : 0,
		       is_volatile ? "True" : "False");
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_volume_list_snapshots(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char path[512], rev[600];

	if (check_volume(qd, c, err) < 0)
		return -ENOENT;
	volume_path(qd, c->dest, c->arg, path, sizeof(path));
	qd_path(rev, sizeof(rev), "%s.rev1", path);
	if (strcmp(c->arg, "private") == 0 && access(rev, F_OK) == 0)
		qd_out_appendf(c, "rev1\n");
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_volume_resize(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char path[512], sz[32], *end, msg[512];
	unsigned long long size;

	if (check_volume(qd, c, err) < 0)
		return -ENOENT;
	if (strcmp(c->arg, "private") != 0 && strcmp(c->arg, "root") != 0) {
		qd_err(err, "QubesValueError", "only the private and root volumes can be resized");
		return -EINVAL;
	}
	if (payload_str(c, sz, sizeof(sz), err) < 0)
		return -EINVAL;
	errno = 0;
	size = strtoull(sz, &end, 10);
	if (!sz[0] || *end || errno || size == 0 || sz[0] == '-') {
		qd_err(err, "QubesValueError", "volume size '%s' is not a number of bytes", sz);
		return -EINVAL;
	}
	volume_path(qd, c->dest, c->arg, path, sizeof(path));
	if (access(path, F_OK) != 0) {
		qd_err(err, "QubesValueError", "%s has no %s volume", c->dest, c->arg);
		return -ENOENT;
	}
	if (qvmm_volume_resize(path, size, msg, sizeof(msg)) < 0) {
		qd_err(err, "QubesValueError", "resize %s:%s: %s", c->dest, c->arg, msg);
		return -EINVAL;
	}
	qd_log("resized %s:%s to %llu bytes", c->dest, c->arg, size);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

static int m_volume_revert(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char path[512], rev[600], want[32];

	if (check_volume(qd, c, err) < 0)
		return -ENOENT;
	if (payload_str(c, want, sizeof(want), err) < 0)
		return -EINVAL;
	volume_path(qd, c->dest, c->arg, path, sizeof(path));
	qd_path(rev, sizeof(rev), "%s.rev1", path);
	if (strcmp(c->arg, "private") != 0 || (want[0] && strcmp(want, "rev1") != 0) || access(rev, F_OK) != 0) {
		qd_err(err, "QubesValueError", "%s:%s has no revision '%s' (see ListSnapshots)", c->dest, c->arg,
		       want[0] ? want : "rev1");
		return -ENOENT;
	}
	if (qd_vm_state(qd, c->dest) != QD_HALTED) {
		qd_err(err, "QubesVMNotHaltedError", "Qube %s must be halted to revert a volume", c->dest);
		return -EBUSY;
	}
	/* the current private becomes the revision, the revision the current one */
	char tmp[620];
	qd_path(tmp, sizeof(tmp), "%s.swap", path);
	if (rename(path, tmp) < 0 || rename(rev, path) < 0 || rename(tmp, rev) < 0) {
		qd_err(err, "QubesException", "revert %s:%s: %s", c->dest, c->arg, strerror(errno));
		return -errno;
	}
	qd_log("reverted %s:%s to its previous revision", c->dest, c->arg);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

/* ---- template import (streamed) ---- */

int qd_import_begin(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char dir[400];
	enum qdb_class cls;

	if (strcmp(c->arg, "kernel") != 0 && strcmp(c->arg, "initrd") != 0 && strcmp(c->arg, "root") != 0) {
		qd_err(err, "QubesValueError", "qube.template.Import: part must be kernel, initrd or root, not '%s'",
		       c->arg);
		return -EINVAL;
	}
	if (!qdb_qube_exists(qd->db, c->dest) || qdb_qube_class(qd->db, c->dest, &cls, err) < 0) {
		qd_err(err, "QubesVMNotFoundError", "No such domain: '%s'", c->dest);
		return -ENOENT;
	}
	if (cls != QDB_TEMPLATEVM && cls != QDB_STANDALONEVM) {
		qd_err(err, "QubesValueError", "%s is a %s: only a TemplateVM or StandaloneVM gets imported files",
		       c->dest, qdb_class_name(cls));
		return -EINVAL;
	}
	if (qd_vm_state(qd, c->dest) != QD_HALTED) {
		qd_err(err, "QubesVMNotHaltedError", "%s must be halted to import into it", c->dest);
		return -EBUSY;
	}
	if (qd_vm_dir(qd, c->dest, dir, sizeof(dir)) < 0 || qd_mkdir_p(dir, 0711) < 0 ||
	    qd_path(c->import_tmp, sizeof(c->import_tmp), "%s/.import-%s.XXXXXX", dir, c->arg) < 0) {
		qd_err(err, "QubesException", "cannot prepare %s", dir);
		return -EIO;
	}
	c->import_fd = mkostemp(c->import_tmp, O_CLOEXEC);
	if (c->import_fd < 0) {
		qd_err(err, "QubesException", "%s: %s", c->import_tmp, strerror(errno));
		c->import_tmp[0] = '\0';
		return -errno;
	}
	c->import_max = strcmp(c->arg, "root") == 0 ? QD_IMPORT_ROOT_MAX : QD_IMPORT_SMALL_MAX;
	return 0;
}

static int m_template_import(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	char dir[400], final[512], msg[512];
	int r;

	if (c->import_err) {
		qd_err(err, "QubesException", "import %s into %s: writing failed: %s", c->arg, c->dest,
		       strerror(c->import_err));
		return -c->import_err;
	}
	if (c->import_len == 0) {
		qd_err(err, "QubesValueError", "import %s into %s: no data", c->arg, c->dest);
		return -EINVAL;
	}
	if (fsync(c->import_fd) < 0) {
		qd_err(err, "QubesException", "import: fsync: %s", strerror(errno));
		return -errno;
	}
	qd_vm_dir(qd, c->dest, dir, sizeof(dir));
	if (strcmp(c->arg, "root") == 0) {
		/* whatever image format came in, the template keeps qcow2; the
		 * data is not trusted to say its format: the host converts it
		 * explicitly from raw or qcow2 after checking qemu-img's view */
		qd_path(final, sizeof(final), "%s/root.qcow2", dir);
		char conv[600];
		qd_path(conv, sizeof(conv), "%s.new", final);
		r = qd_image_import(c->import_tmp, conv, msg, sizeof(msg));
		if (r < 0) {
			unlink(conv);
			qd_err(err, "QubesValueError", "import root into %s: %s", c->dest, msg);
			return r;
		}
		if (rename(conv, final) < 0) {
			qd_err(err, "QubesException", "import: rename: %s", strerror(errno));
			unlink(conv);
			return -errno;
		}
	} else {
		qd_path(final, sizeof(final), "%s/%s", dir, strcmp(c->arg, "kernel") == 0 ? "vmlinuz" : "initrd");
		fchmod(c->import_fd, 0644);
		if (rename(c->import_tmp, final) < 0) {
			qd_err(err, "QubesException", "import: rename: %s", strerror(errno));
			return -errno;
		}
		c->import_tmp[0] = '\0';
	}
	qd_log("imported %s of %s (%llu bytes)", c->arg, c->dest, (unsigned long long)c->import_len);
	qd_reply_ok(qd, c, NULL, 0);
	return 0;
}

/* ---- events ---- */

static int m_events(struct qd *qd, struct qd_call *c, struct qerr *err)
{
	c->subscribed = true;
	c->next = qd->subscribers;
	qd->subscribers = c;
	/* qubesadmin waits for this one before it trusts the stream */
	qd_api_event_to(qd, c, "dom0", "connection-established", NULL);
	return 0;
}

static const struct qd_method methods[] = {
	{ "admin.vm.List", m_vm_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.List", m_prop_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.Get", m_prop_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.GetAll", m_prop_get_all, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.GetDefault", m_prop_get_default, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.Help", m_prop_help, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.property.Set", m_prop_set, QD_M_NEED_ARG | QD_M_DEST_QUBE },
	{ "admin.vm.property.Reset", m_prop_reset, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.property.List", m_prop_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.property.Get", m_prop_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.property.GetAll", m_prop_get_all, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.property.GetDefault", m_prop_get_default, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.property.Help", m_prop_help, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.property.Set", m_prop_set, QD_M_NEED_ARG | QD_M_DEST_DOM0 },
	{ "admin.property.Reset", m_prop_reset, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.vm.tag.List", m_tag_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.tag.Get", m_tag_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.tag.Set", m_tag_set, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.tag.Remove", m_tag_remove, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.feature.List", m_feature_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.feature.Get", m_feature_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.feature.Set", m_feature_set, QD_M_NEED_ARG | QD_M_DEST_QUBE },
	{ "admin.vm.feature.Remove", m_feature_remove, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.label.List", m_label_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.label.Get", m_label_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.label.Index", m_label_get, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_DOM0 },
	{ "admin.vm.Create.", m_vm_create, QD_M_PREFIX | QD_M_DEST_DOM0 },
	{ "admin.vm.CreateInPool.", m_vm_create, QD_M_PREFIX | QD_M_DEST_DOM0 },
	{ "admin.vm.Remove", m_vm_remove, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.Start", m_vm_start, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.Shutdown", m_vm_shutdown, QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.Kill", m_vm_kill, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.Pause", m_vm_pause, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.Unpause", m_vm_pause, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.CurrentState", m_vm_current_state, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.volume.List", m_volume_list, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.volume.Info", m_volume_info, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.volume.ListSnapshots", m_volume_list_snapshots, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "admin.vm.volume.Resize", m_volume_resize, QD_M_NEED_ARG | QD_M_DEST_QUBE },
	{ "admin.vm.volume.Revert", m_volume_revert, QD_M_NEED_ARG | QD_M_DEST_QUBE },
	{ "admin.Events", m_events, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "qube.template.Import", m_template_import, QD_M_NEED_ARG | QD_M_STREAM },
	{ "qube.vm.Clone", m_vm_clone, QD_M_NEED_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
	{ "qube.vm.State", m_vm_state, QD_M_NO_ARG | QD_M_NO_PAYLOAD | QD_M_DEST_QUBE },
};

const struct qd_method *qd_method_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		const struct qd_method *m = &methods[i];
		if ((m->flags & QD_M_PREFIX) ? strncmp(name, m->name, strlen(m->name)) == 0 && name[strlen(m->name)]
					     : strcmp(name, m->name) == 0)
			return m;
	}
	return NULL;
}
