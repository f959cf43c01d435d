/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: loading the policy and the system info, and the
 * inotify watches that reload them (and the vsock map, and rescan the
 * qubes directory).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "monitor.h"

/* ---- policy --------------------------------------------------------------------- */

void mon_policy_reload(struct monitor *m)
{
	struct qpol_policy *p = NULL;
	struct qpol_system *s = NULL;
	char *serr = NULL;
	char *why = NULL;
	int r;

	m->generation++;
	r = qpol_policy_load_dir(m->cfg->policy_dir, &p);
	if (r < 0) {
		if (asprintf(&why, "%s: cannot load policy directory: %s", m->cfg->policy_dir,
			     strerror(-r)) < 0)
			why = NULL;
	} else if (!qpol_policy_is_valid(p)) {
		size_t n = qpol_policy_n_diags(p);

		for (size_t i = 0; i < n && i < 20; i++) {
			const struct qpol_diag *d = qpol_policy_diag(p, i);
			bk_log("policy error: %s:%u: %s", d->file, d->line, d->message);
		}
		if (n > 0) {
			const struct qpol_diag *d = qpol_policy_diag(p, 0);
			if (asprintf(&why, "invalid policy: %s:%u: %s", d->file, d->line,
				     d->message) < 0)
				why = NULL;
		}
	}
	r = qpol_system_load_file(m->cfg->system_info, &s, &serr);
	if (r < 0 && !why) {
		if (asprintf(&why, "%s: invalid system info: %s", m->cfg->system_info,
			     serr ? serr : strerror(-r)) < 0)
			why = NULL;
	}
	free(serr);
	qpol_policy_free(m->policy);
	qpol_system_free(m->system);
	m->policy = p;
	m->system = r < 0 ? NULL : s;
	if (r < 0)
		qpol_system_free(s);
	free(m->policy_error);
	m->policy_error = why;
	if (!m->policy || !m->system) {
		if (!m->policy_error)
			m->policy_error = strdup("policy or system info could not be loaded");
	}
	if (m->policy_error)
		bk_log("policy generation %u INVALID, denying every call: %s", m->generation,
		       m->policy_error ? m->policy_error : "out of memory");
	else
		bk_log("policy generation %u loaded: %zu rules", m->generation,
		       qpol_policy_n_rules(m->policy));
}

/* ---- inotify, signals, timers ------------------------------------------------------------ */

#define POLICY_WATCH_MASK                                                                  \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY)

void mon_watches_add(struct monitor *m)
{
	m->wd_policy = inotify_add_watch(m->ino_fd, m->cfg->policy_dir, POLICY_WATCH_MASK);
	if (m->wd_policy < 0)
		bk_log("inotify on %s: %s", m->cfg->policy_dir, strerror(errno));
}

/* Watches the directory of the file PATH for changes to its name (NAME,
 * CAP bytes, receives the name; *RET_WD the watch, -1 if it could not be
 * set up, which is logged: SIGHUP still reloads).  -ENOMEM only. */
int mon_watch_file(struct monitor *m, const char *path, char *name, size_t cap, int *ret_wd)
{
	char *copy = strdup(path), *copy2 = strdup(path);

	if (!copy || !copy2) {
		free(copy);
		free(copy2);
		return -ENOMEM;
	}
	snprintf(name, cap, "%s", basename(copy2));
	*ret_wd = inotify_add_watch(m->ino_fd, dirname(copy),
				    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
					    IN_MOVED_FROM | IN_ATTRIB | IN_MODIFY);
	if (*ret_wd < 0)
		bk_log("inotify on the directory of %s: %s (send SIGHUP after changing it)", path,
		       strerror(errno));
	free(copy);
	free(copy2);
	return 0;
}

static bool wd_is_fixed(const struct monitor *m, int wd)
{
	return wd == m->wd_policy || wd == m->wd_sysinfo || wd == m->wd_qubes ||
	       wd == m->wd_vsock_map || wd == m->wd_host;
}

static bool set_name(struct mon_dep_watch *w, const char *name)
{
	size_t n = strlen(name);

	if (n >= sizeof(w->name))
		return false;
	memcpy(w->name, name, n + 1);
	return true;
}

/* After a load: watch the directory of every file the policy read or
 * tried to read, and every directory it listed, beyond the policy
 * directory itself (Qubes keeps includes in policy.d/include/, which a
 * watch on policy.d does not cover; !include may name any path).  A
 * directory that does not exist cannot be watched: then its parent is,
 * so that creating it is seen, and so on up. */
void mon_deps_sync(struct monitor *m)
{
	struct mon_dep_watch *next = NULL;
	size_t n_next = 0;
	size_t n = qpol_policy_n_deps(m->policy);

	for (size_t i = 0; i < n; i++) {
		enum qpol_dep_kind kind;
		const char *path = qpol_policy_dep(m->policy, i, &kind);
		struct mon_dep_watch w = { .wd = -1 };
		char copy[PATH_MAX];

		if (!path || strlen(path) >= sizeof(copy))
			continue;
		if (kind == QPOL_DEP_DIR && strcmp(path, m->cfg->policy_dir) == 0)
			continue; /* wd_policy */
		snprintf(copy, sizeof(copy), "%s", path);
		if (kind == QPOL_DEP_FILE) {
			char *slash = strrchr(copy, '/');

			if (!set_name(&w, slash ? slash + 1 : copy))
				continue;
			if (slash == copy)
				copy[1] = '\0';
			else if (slash)
				*slash = '\0';
			else
				snprintf(copy, sizeof(copy), ".");
		}
		/* the nearest directory that exists; below it, the name of the
		 * missing component is what must appear */
		for (;;) {
			w.wd = inotify_add_watch(m->ino_fd, copy, POLICY_WATCH_MASK | IN_MASK_ADD |
									  IN_ONLYDIR);
			if (w.wd >= 0 || (errno != ENOENT && errno != ENOTDIR))
				break;
			char *slash = strrchr(copy, '/');
			if (!slash || slash == copy || !set_name(&w, slash + 1))
				break;
			*slash = '\0';
		}
		if (w.wd < 0) {
			bk_log("inotify on %s (for %s): %s; send SIGHUP after changing it", copy, path,
			       strerror(errno));
			continue;
		}
		snprintf(w.dir, sizeof(w.dir), "%s", copy);
		struct mon_dep_watch *grown = realloc(next, (n_next + 1) * sizeof(*next));
		if (!grown)
			break;
		next = grown;
		next[n_next++] = w;
	}
	/* drop the watches nobody needs any more (never the fixed ones) */
	for (size_t i = 0; i < m->n_dep_watches; i++) {
		int wd = m->dep_watches[i].wd;
		bool kept = wd_is_fixed(m, wd);

		for (size_t j = 0; j < n_next && !kept; j++)
			kept = next[j].wd == wd;
		for (size_t j = 0; j < i && !kept; j++)
			kept = m->dep_watches[j].wd == wd; /* removed already */
		if (!kept)
			inotify_rm_watch(m->ino_fd, wd);
	}
	free(m->dep_watches);
	m->dep_watches = next;
	m->n_dep_watches = n_next;
}

static bool dep_event_matters(const struct monitor *m, const struct inotify_event *ev)
{
	size_t n = ev->len ? strlen(ev->name) : 0;

	for (size_t i = 0; i < m->n_dep_watches; i++) {
		const struct mon_dep_watch *w = &m->dep_watches[i];

		if (w->wd != ev->wd)
			continue;
		if (n == 0)
			return true; /* the directory itself */
		if (w->name[0] ? strcmp(w->name, ev->name) == 0
			       : n > 7 && strcmp(ev->name + n - 7, ".policy") == 0)
			return true;
	}
	return false;
}

/* Only *.policy files are loaded from the directory: an editor's or a
 * tool's temporary file there must not trigger a reload (it would load
 * the old contents and log a generation that changes nothing). */
static bool policy_event_matters(const struct inotify_event *ev)
{
	size_t n = ev->len ? strlen(ev->name) : 0;

	if (n == 0)
		return true; /* the directory itself */
	return n > 7 && strcmp(ev->name + n - 7, ".policy") == 0;
}

void mon_on_inotify(struct monitor *m)
{
	union {
		char buf[4096];
		struct inotify_event align;
	} u;

	for (;;) {
		ssize_t n = read(m->ino_fd, u.buf, sizeof(u.buf));
		size_t off = 0;

		if (n <= 0)
			return;
		while (off + sizeof(struct inotify_event) <= (size_t)n) {
			struct inotify_event *ev = (struct inotify_event *)(u.buf + off);

			if ((ev->wd == m->wd_policy && policy_event_matters(ev)) ||
			    dep_event_matters(m, ev))
				m->reload_at = bk_now_ms() + 100;
			else if (ev->wd == m->wd_sysinfo && ev->len > 0 &&
				 strcmp(ev->name, m->sysinfo_name) == 0)
				m->reload_at = bk_now_ms() + 100;
			else if (ev->wd == m->wd_qubes)
				mon_listeners_rescan(m);
			/* the host-call socket removed: made again */
			if (ev->wd == m->wd_host && ev->wd != m->wd_qubes &&
			    (ev->mask & (IN_DELETE | IN_MOVED_FROM)))
				mon_listeners_rescan(m);
			/* not an else: the map may share a directory with the above */
			if (ev->wd == m->wd_vsock_map && ev->len > 0 &&
			    strcmp(ev->name, m->vsock_map_name) == 0)
				m->map_reload_at = bk_now_ms() + 100;
			if (ev->mask & IN_Q_OVERFLOW)
				m->reload_at = m->map_reload_at = bk_now_ms() + 100;
			off += sizeof(struct inotify_event) + ev->len;
		}
	}
}

