/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: the privileged half.
 *
 * It never reads a byte a guest wrote.  It owns the policy (reloaded on
 * inotify events), the ask and start interfaces, accepts guest connections
 * on the per-qube sockets (so the source of a call is fixed here, by which
 * socket the connection arrived on, or by the peer CID) and opens
 * connections to target agents.  Connections are handed to the sandbox with
 * SCM_RIGHTS; the sandbox sends back the caller's request, which is
 * validated again here before the policy sees it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "broker.h"
#include "qpolicy.h"

enum mon_kind {
	MK_LISTENER = 1,
	MK_IPC,
	MK_INOTIFY,
	MK_SIGNAL,
	MK_ASK_LISTEN,
	MK_ASK_CLIENT,
	MK_START,
};

struct mon_watch {
	enum mon_kind kind;
	void *owner;
};

struct mon_listener {
	struct mon_watch w;
	int fd;
	bool vsock;               /* AF_VSOCK: source from the peer CID */
	char name[QRPC_MAX_QUBE + 1]; /* unix: the qube whose socket this is */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ino_t ino;
	struct mon_listener *next;
};

struct mon_prompt {
	struct mon_watch w;
	int fd;
	char in[BK_LINE_MAX];
	size_t in_len;
	struct bk_buf out;
	struct mon_prompt *next;
};

enum mon_phase {
	MC_WAIT_REQUEST = 1,
	MC_ASKING,
	MC_STARTING,
	MC_CONNECTING,
	MC_RUNNING, /* decision sent; waiting for CLOSED */
};

struct mon_call {
	uint32_t id;
	enum mon_phase phase;
	char source[QRPC_MAX_QUBE + 1];
	char requested[QRPC_MAX_TARGET + 1];
	char service[QRPC_MAX_SERVICE + 1];
	char argument[QRPC_MAX_ARGUMENT + 1];
	char target[QRPC_MAX_QUBE + 1]; /* resolved qube to connect to */
	char dispvm[QRPC_MAX_QUBE + 1]; /* disposable created for this call */
	char decision_word[16];         /* allow, deny, ask-allow, ask-deny */
	char user[QRPC_MAX_USER + 1];   /* user= of the rule, "" for none */
	char rule[PATH_MAX + 16];
	char *reason;
	bool autostart, start_tried;
	struct mon_prompt *prompt; /* ASKING */
	char **offered;            /* ASKING: copy of decision targets */
	size_t n_offered;
	uint64_t deadline;
	uint64_t retry_at;
	struct mon_call *next;
};

enum start_op { START_QUBE, START_DISPVM, START_DESTROY };

struct mon_start {
	struct mon_watch w;
	int fd;
	enum start_op op;
	uint32_t call_id; /* 0 for DESTROY */
	char arg[QRPC_MAX_QUBE + 1];
	char in[BK_LINE_MAX];
	size_t in_len;
	uint64_t deadline;
	struct mon_start *next;
};

struct mon_source {
	char name[QRPC_MAX_QUBE + 1];
	unsigned n_calls;
	struct mon_source *next;
};

struct mon_vsock_entry {
	uint32_t cid;
	char name[QRPC_MAX_QUBE + 1];
};

/* One thing in a watched directory whose change means a reload: a file
 * NAME, or with NAME empty any *.policy file (an !include-dir). */
struct mon_dep_watch {
	int wd;
	char dir[PATH_MAX];
	char name[NAME_MAX + 1];
};

struct monitor {
	const struct bk_config *cfg;
	int epfd;
	int ipc_fd;
	pid_t child;
	struct mon_watch ipc_w, ino_w, sig_w, ask_w;
	int ino_fd, sig_fd, ask_fd;
	int wd_policy, wd_sysinfo, wd_qubes, wd_vsock_map;
	char vsock_map_name[NAME_MAX + 1];
	/* directories of what the policy includes (deps_sync) */
	struct mon_dep_watch *dep_watches;
	size_t n_dep_watches;
	char sysinfo_name[NAME_MAX + 1];
	struct bk_ipc_queue ipc_out;
	bool ipc_out_armed;

	struct qpol_policy *policy;
	struct qpol_system *system;
	char *policy_error; /* why everything is denied, or NULL */
	unsigned generation;
	uint64_t reload_at; /* 0: no reload pending */
	uint64_t map_reload_at; /* the same for the vsock map */

	struct mon_listener *listeners;
	struct mon_vsock_entry *vsock_map;
	size_t n_vsock_map;
	struct mon_prompt *prompts;
	struct mon_call *calls;
	struct mon_start *starts;
	struct mon_source *sources;
	unsigned n_calls;
	uint32_t next_id;
	bool quit;
	int exit_status;
};

static volatile sig_atomic_t mon_dummy;

/* ---- small helpers ------------------------------------------------------------- */

static int ep_add(struct monitor *m, int fd, uint32_t events, struct mon_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void ep_mod(struct monitor *m, int fd, uint32_t events, struct mon_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static struct mon_source *source_get(struct monitor *m, const char *name, bool create)
{
	struct mon_source *s;

	for (s = m->sources; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if (!create)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->next = m->sources;
	m->sources = s;
	return s;
}

static struct mon_call *call_find(struct monitor *m, uint32_t id)
{
	for (struct mon_call *c = m->calls; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void offered_free(struct mon_call *c)
{
	for (size_t i = 0; i < c->n_offered; i++)
		free(c->offered[i]);
	free(c->offered);
	c->offered = NULL;
	c->n_offered = 0;
}

static void call_remove(struct monitor *m, struct mon_call *c)
{
	struct mon_call **pp;
	struct mon_source *s = source_get(m, c->source, false);

	for (pp = &m->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (s && s->n_calls > 0)
		s->n_calls--;
	if (m->n_calls > 0)
		m->n_calls--;
	offered_free(c);
	free(c->reason);
	free(c);
	if (m->n_calls == 0)
		malloc_trim(0); /* idle: give memory back (checked by the load test) */
}

static void set_reason(struct mon_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct mon_call *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(c->reason);
	c->reason = s;
}

static void ipc_queue(struct monitor *m, const struct bk_ipc *rec, int fd)
{
	int r = bk_ipc_queue_push(&m->ipc_out, rec, fd);

	if (r < 0) {
		bk_log("fatal: cannot queue a record for the sandbox: %s", strerror(-r));
		m->quit = true;
		m->exit_status = 1;
		return;
	}
	r = bk_ipc_queue_flush(&m->ipc_out, m->ipc_fd);
	if (r == -EAGAIN && !m->ipc_out_armed) {
		ep_mod(m, m->ipc_fd, EPOLLIN | EPOLLOUT, &m->ipc_w);
		m->ipc_out_armed = true;
	} else if (r < 0 && r != -EAGAIN) {
		bk_log("fatal: sandbox socket: %s", strerror(-r));
		m->quit = true;
		m->exit_status = 1;
	}
}

/* The one log line of a call, written when its outcome is known. */
static void call_log(struct mon_call *c, const char *result)
{
	char reason[600];

	bk_quote(reason, sizeof(reason), c->reason ? c->reason : "");
	bk_log("call id=%u source=%s target=%s requested=%s service=%s argument=%s decision=%s "
	       "result=%s rule=%s reason=%s",
	       c->id, c->source, c->target[0] ? c->target : "-", c->requested, c->service,
	       c->argument[0] ? c->argument : "-", c->decision_word, result,
	       c->rule[0] ? c->rule : "-", reason);
}

/* Refusal or failure: tell the sandbox, log, and wait for its CLOSED. */
static void call_fail(struct monitor *m, struct mon_call *c, enum qrpc_call_status status)
{
	struct bk_ipc rec = {
		.type = BK_IPC_DECISION,
		.id = c->id,
		.status = status,
		.exit_code = status == QRPC_CALL_REFUSED ? QRPC_EXIT_REFUSED : QRPC_EXIT_RPC_FAILED,
	};

	call_log(c, status == QRPC_CALL_REFUSED ? "refused" : "failed");
	offered_free(c);
	c->phase = MC_RUNNING;
	ipc_queue(m, &rec, -1);
}

/* ---- policy --------------------------------------------------------------------- */

static void policy_reload(struct monitor *m)
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

/* ---- listeners ------------------------------------------------------------------- */

static void listener_close(struct monitor *m, struct mon_listener *l)
{
	struct stat st;

	epoll_ctl(m->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	/* remove our socket file, unless someone replaced it */
	if (!l->vsock && lstat(l->path, &st) == 0 && st.st_ino == l->ino && S_ISSOCK(st.st_mode))
		unlink(l->path);
	free(l);
}

static int listener_add_unix(struct monitor *m, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mon_listener *l;
	struct stat st;
	int n, r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = (struct mon_watch){ .kind = MK_LISTENER, .owner = l };
	snprintf(l->name, sizeof(l->name), "%s", name);
	n = snprintf(l->path, sizeof(l->path), "%s/%s/vsock_%u", m->cfg->qubes_dir, name,
		     QRPC_PORT_BROKER);
	if (n < 0 || (size_t)n >= sizeof(l->path)) {
		r = -ENAMETOOLONG;
		goto err_free;
	}
	memcpy(sa.sun_path, l->path, (size_t)n + 1);
	if (lstat(l->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = -EEXIST;
			goto err_free;
		}
		unlink(l->path);
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		r = -errno;
		goto err_free;
	}
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, SOMAXCONN) < 0 ||
	    lstat(l->path, &st) < 0) {
		r = -errno;
		goto err_close;
	}
	l->ino = st.st_ino;
	r = ep_add(m, l->fd, EPOLLIN, &l->w);
	if (r < 0)
		goto err_unlink;
	l->next = m->listeners;
	m->listeners = l;
	return 0;
err_unlink:
	unlink(l->path);
err_close:
	close(l->fd);
err_free:
	free(l);
	return r;
}

/* Makes the set of listeners match the qube directories in QUBES_DIR. */
static void listeners_rescan(struct monitor *m)
{
	struct mon_listener **pp, *l;
	DIR *d;
	struct dirent *de;

	if (!m->cfg->qubes_dir)
		return;
	/* drop listeners whose socket vanished or was replaced */
	for (pp = &m->listeners; (l = *pp);) {
		struct stat st;

		if (!l->vsock && (lstat(l->path, &st) < 0 || st.st_ino != l->ino)) {
			*pp = l->next;
			bk_log("qube %s: socket directory gone, no longer listening", l->name);
			listener_close(m, l);
			continue;
		}
		pp = &l->next;
	}
	d = opendir(m->cfg->qubes_dir);
	if (!d) {
		bk_log("cannot read qubes directory %s: %s", m->cfg->qubes_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		bool have = false;
		struct stat st;
		int r;

		if (strlen(de->d_name) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		for (l = m->listeners; l; l = l->next)
			if (!l->vsock && strcmp(l->name, de->d_name) == 0)
				have = true;
		if (have)
			continue;
		r = listener_add_unix(m, de->d_name);
		if (r < 0)
			bk_log("qube %s: cannot listen on its socket: %s", de->d_name, strerror(-r));
		else
			bk_log("qube %s: listening on %s/%s/vsock_%u", de->d_name, m->cfg->qubes_dir,
			       de->d_name, QRPC_PORT_BROKER);
	}
	closedir(d);
}

/* Reads the --vsock-map file: "CID NAME" lines, '#' comments.  A CID or
 * a name given twice is an error (which qube is it?).  0 and a new array,
 * or a negative errno with the reason logged (FILE:LINE). */
static int vsock_map_parse(const char *path, struct mon_vsock_entry **ret_map, size_t *ret_n)
{
	FILE *f = fopen(path, "re");
	struct mon_vsock_entry *map = NULL;
	size_t n = 0;
	char line[256];
	unsigned lineno = 0;
	int r = 0;

	if (!f) {
		r = -errno;
		bk_log("%s: %s", path, strerror(-r));
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		unsigned long cid;
		struct mon_vsock_entry *e;
		char extra;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			bk_log("%s:%u: line too long", path, lineno);
			r = -EINVAL;
			break;
		}
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%lu %63s %c", &cid, name, &extra) != 2 || line[0] < '0' ||
		    line[0] > '9' || cid < 3 || cid > UINT32_MAX - 1 ||
		    strlen(name) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(name)) {
			bk_log("%s:%u: expected \"CID NAME\" (CID >= 3, valid qube name)", path,
			       lineno);
			r = -EINVAL;
			break;
		}
		for (size_t i = 0; i < n && r == 0; i++) {
			if (map[i].cid == cid) {
				bk_log("%s:%u: CID %lu given twice", path, lineno, cid);
				r = -EINVAL;
			} else if (strcmp(map[i].name, name) == 0) {
				bk_log("%s:%u: qube %s given twice", path, lineno, name);
				r = -EINVAL;
			}
		}
		if (r < 0)
			break;
		e = realloc(map, (n + 1) * sizeof(*e));
		if (!e) {
			r = -ENOMEM;
			break;
		}
		map = e;
		map[n].cid = (uint32_t)cid;
		snprintf(map[n].name, sizeof(map->name), "%s", name);
		n++;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	fclose(f);
	if (r < 0) {
		free(map);
		return r;
	}
	*ret_map = map;
	*ret_n = n;
	return 0;
}

/* (Re)loads the map.  A map that cannot be read leaves none: every
 * connection is refused until it is fixed, since keeping the old one
 * could give a reassigned CID a previous owner's identity. */
static int vsock_map_load(struct monitor *m)
{
	struct mon_vsock_entry *map = NULL;
	size_t n = 0;
	int r = vsock_map_parse(m->cfg->vsock_map, &map, &n);

	free(m->vsock_map);
	m->vsock_map = r < 0 ? NULL : map;
	m->n_vsock_map = r < 0 ? 0 : n;
	if (r < 0)
		bk_log("vsock map %s INVALID: refusing every connection until it is fixed",
		       m->cfg->vsock_map);
	else
		bk_log("vsock map %s loaded: %zu qubes", m->cfg->vsock_map, n);
	return r;
}

static const char *vsock_name(struct monitor *m, uint32_t cid)
{
	for (size_t i = 0; i < m->n_vsock_map; i++)
		if (m->vsock_map[i].cid == cid)
			return m->vsock_map[i].name;
	return NULL;
}

static uint32_t vsock_cid(struct monitor *m, const char *name)
{
	for (size_t i = 0; i < m->n_vsock_map; i++)
		if (strcmp(m->vsock_map[i].name, name) == 0)
			return m->vsock_map[i].cid;
	return 0;
}

static int listener_add_vsock(struct monitor *m)
{
	struct sockaddr_vm sa = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = QRPC_PORT_BROKER,
	};
	struct mon_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->w = (struct mon_watch){ .kind = MK_LISTENER, .owner = l };
	l->vsock = true;
	l->fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		r = -errno;
		goto err_free;
	}
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, SOMAXCONN) < 0) {
		r = -errno;
		goto err_close;
	}
	r = ep_add(m, l->fd, EPOLLIN, &l->w);
	if (r < 0)
		goto err_close;
	l->next = m->listeners;
	m->listeners = l;
	return 0;
err_close:
	close(l->fd);
err_free:
	free(l);
	return r;
}

/* Larger socket buffers for the joined streams: fewer wake-ups per byte
 * (the sandbox cannot call setsockopt itself). */
static void set_stream_buffers(int fd)
{
	int size = 1 << 20;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* A guest connected: fix its identity, enforce the caps, hand it over. */
static void on_accept(struct monitor *m, struct mon_listener *l)
{
	for (int k = 0; k < 64; k++) {
		struct sockaddr_vm peer;
		socklen_t plen = sizeof(peer);
		const char *name = l->name;
		struct mon_source *s;
		struct mon_call *c;
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				bk_log("accept on %s: %s", l->vsock ? "vsock" : l->path, strerror(errno));
			return;
		}
		if (l->vsock) {
			name = plen >= sizeof(peer) ? vsock_name(m, peer.svm_cid) : NULL;
			if (!name) {
				bk_log("connection from unknown vsock CID %u closed",
				       plen >= sizeof(peer) ? peer.svm_cid : 0);
				close(fd);
				continue;
			}
		}
		s = source_get(m, name, true);
		if (!s) {
			close(fd);
			continue;
		}
		if (m->n_calls >= m->cfg->max_total || s->n_calls >= m->cfg->max_per_qube) {
			bk_log("connection from %s closed: too many calls (%u from it, %u in all)",
			       name, s->n_calls, m->n_calls);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		do
			c->id = ++m->next_id;
		while (c->id == 0 || call_find(m, c->id));
		c->phase = MC_WAIT_REQUEST;
		snprintf(c->source, sizeof(c->source), "%s", name);
		c->next = m->calls;
		m->calls = c;
		s->n_calls++;
		m->n_calls++;

		set_stream_buffers(fd);
		struct bk_ipc rec = { .type = BK_IPC_NEW_CALL, .id = c->id };
		snprintf(rec.source, sizeof(rec.source), "%s", name);
		ipc_queue(m, &rec, fd);
	}
}

/* ---- agents and the start interface ------------------------------------------------ */

/* Opens a connection to TARGET's agent.  0 and *ret_fd, *ret_mode; -EAGAIN
 * to try again shortly; another negative errno when it is not running. */
static int agent_connect(struct monitor *m, const char *target, int *ret_fd, uint32_t *ret_mode)
{
	int fd, r;

	if (m->cfg->vsock_map) {
		uint32_t cid = vsock_cid(m, target);
		struct sockaddr_vm sa = {
			.svm_family = AF_VSOCK,
			.svm_cid = cid,
			.svm_port = QRPC_PORT_AGENT,
		};

		if (cid == 0)
			return -ENOENT;
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
			r = -errno;
			close(fd);
			return r;
		}
		*ret_fd = fd;
		*ret_mode = BK_AGENT_VSOCK;
		return 0;
	}

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[32];
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/vsock", m->cfg->qubes_dir, target);

	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_stream_buffers(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	n = snprintf(line, sizeof(line), "CONNECT %u\n", QRPC_PORT_AGENT);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		r = errno ? -errno : -EIO;
		close(fd);
		return r == -EAGAIN ? -EIO : r;
	}
	*ret_fd = fd;
	*ret_mode = BK_AGENT_HYBRID;
	return 0;
}

static void start_free(struct monitor *m, struct mon_start *st)
{
	struct mon_start **pp;

	for (pp = &m->starts; *pp; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	if (st->fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, st->fd, NULL);
		close(st->fd);
	}
	free(st);
}

/* Sends one request to the start interface; the reply arrives later. */
static int start_request(struct monitor *m, enum start_op op, uint32_t call_id, const char *arg)
{
	static const char *const words[] = { "START", "DISPVM", "DESTROY" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mon_start *st;
	char line[128];
	int n, r;

	if (!m->cfg->start_socket)
		return -ENOTCONN;
	if (strlen(m->cfg->start_socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, m->cfg->start_socket);
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->w = (struct mon_watch){ .kind = MK_START, .owner = st };
	st->op = op;
	st->call_id = call_id;
	snprintf(st->arg, sizeof(st->arg), "%s", arg);
	st->deadline = bk_now_ms() + m->cfg->start_timeout_ms;
	st->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (st->fd < 0) {
		r = -errno;
		goto err_free;
	}
	if (connect(st->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto err_close;
	}
	n = snprintf(line, sizeof(line), "%s %s\n", words[op], arg);
	if (send(st->fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		r = -EIO;
		goto err_close;
	}
	r = ep_add(m, st->fd, EPOLLIN, &st->w);
	if (r < 0)
		goto err_close;
	st->next = m->starts;
	m->starts = st;
	return 0;
err_close:
	close(st->fd);
err_free:
	free(st);
	return r;
}

static void call_try_connect(struct monitor *m, struct mon_call *c);

/* The target is known and running (or being started); connect to it. */
static void call_go(struct monitor *m, struct mon_call *c, const char *target)
{
	int r;

	if (strncmp(target, "@dispvm:", 8) == 0) {
		const char *tmpl = target + 8;

		if (!qrpc_qube_name_is_valid(tmpl)) {
			set_reason(c, "invalid disposable template %s", tmpl);
			call_fail(m, c, QRPC_CALL_FAILED);
			return;
		}
		snprintf(c->target, sizeof(c->target), "%s", "@dispvm");
		r = start_request(m, START_DISPVM, c->id, tmpl);
		if (r < 0) {
			set_reason(c, "cannot create a disposable from %s: start interface: %s", tmpl,
				   r == -ENOTCONN ? "not configured" : strerror(-r));
			call_fail(m, c, QRPC_CALL_FAILED);
			return;
		}
		c->phase = MC_STARTING;
		return;
	}
	if (target[0] == '@' || strlen(target) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(target)) {
		set_reason(c, "target %s cannot be reached by this broker", target);
		call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	snprintf(c->target, sizeof(c->target), "%s", target);
	c->phase = MC_CONNECTING;
	c->deadline = bk_now_ms() + m->cfg->connect_timeout_ms;
	call_try_connect(m, c);
}

/* An error of agent_connect() that means "TARGET is not running": no
 * socket (hybrid: ENOENT, ECONNREFUSED) or, on AF_VSOCK, no VM with the
 * CID: vhost_vsock fails the connect() at once with ENODEV (measured by
 * tests/guest/broker-vsock-test.sh; a VM whose agent does not listen
 * resets the connection later, in the sandbox). */
static bool target_not_running(int r)
{
	return r == -ECONNREFUSED || r == -ENOENT || r == -ENODEV;
}

static void call_try_connect(struct monitor *m, struct mon_call *c)
{
	uint32_t mode = 0;
	int fd = -1, r;

	r = agent_connect(m, c->target, &fd, &mode);
	if (r == 0) {
		struct bk_ipc rec = {
			.type = BK_IPC_DECISION,
			.id = c->id,
			.status = QRPC_CALL_ALLOWED,
			.agent_mode = mode,
		};

		snprintf(rec.source, sizeof(rec.source), "%s", c->source);
		snprintf(rec.target, sizeof(rec.target), "%s", c->target);
		snprintf(rec.service, sizeof(rec.service), "%s", c->service);
		snprintf(rec.argument, sizeof(rec.argument), "%s", c->argument);
		snprintf(rec.requested_target, sizeof(rec.requested_target), "%s", c->requested);
		snprintf(rec.user, sizeof(rec.user), "%s", c->user);
		call_log(c, "started");
		c->phase = MC_RUNNING;
		ipc_queue(m, &rec, fd);
		return;
	}
	if (r == -EAGAIN && bk_now_ms() < c->deadline) {
		/* agent's backlog is full: try again shortly */
		c->retry_at = bk_now_ms() + 20;
		return;
	}
	if (c->start_tried && bk_now_ms() < c->deadline && target_not_running(r)) {
		/* just started: its agent may need a moment */
		c->retry_at = bk_now_ms() + 50;
		return;
	}
	if (!c->start_tried && c->autostart && target_not_running(r)) {
		c->start_tried = true;
		r = start_request(m, START_QUBE, c->id, c->target);
		if (r == 0) {
			c->phase = MC_STARTING;
			return;
		}
		set_reason(c, "target %s is not running and cannot be started: start interface: %s",
			   c->target, r == -ENOTCONN ? "not configured" : strerror(-r));
		call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	set_reason(c, "target %s is not running (%s)", c->target, strerror(-r));
	call_fail(m, c, QRPC_CALL_FAILED);
}

static void start_on_reply(struct monitor *m, struct mon_start *st, const char *line)
{
	char name[QRPC_MAX_QUBE + 1], msg[200] = "";
	struct mon_call *c = st->call_id ? call_find(m, st->call_id) : NULL;
	int r = line ? bk_start_reply_parse(line, name, msg, sizeof(msg)) : -ETIMEDOUT;

	if (st->op == START_DESTROY) {
		if (r < 0)
			bk_log("start interface: DESTROY %s: %s", st->arg,
			       r == -EHOSTDOWN ? msg : r == -ETIMEDOUT ? "no answer" : "bad reply");
		return;
	}
	if (st->op == START_DISPVM && r == 0 && (!c || c->phase != MC_STARTING)) {
		/* the caller went away meanwhile: nothing will use it */
		start_request(m, START_DESTROY, 0, name);
		return;
	}
	if (!c || c->phase != MC_STARTING)
		return;
	if (r < 0) {
		if (r == -EHOSTDOWN)
			set_reason(c, "start interface could not start %s: %s", st->arg, msg);
		else if (r == -ETIMEDOUT)
			set_reason(c, "start interface gave no answer for %s", st->arg);
		else
			set_reason(c, "start interface sent a malformed reply for %s", st->arg);
		call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (st->op == START_QUBE && strcmp(name, c->target) != 0) {
		set_reason(c, "start interface started %s instead of %s", name, c->target);
		call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (st->op == START_DISPVM)
		snprintf(c->dispvm, sizeof(c->dispvm), "%s", name);
	snprintf(c->target, sizeof(c->target), "%s", name);
	c->start_tried = true;
	c->phase = MC_CONNECTING;
	c->deadline = bk_now_ms() + m->cfg->connect_timeout_ms;
	call_try_connect(m, c);
}

static void on_start_event(struct monitor *m, struct mon_start *st)
{
	for (;;) {
		ssize_t n = read(st->fd, st->in + st->in_len, sizeof(st->in) - 1 - st->in_len);
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			start_on_reply(m, st, "");
			start_free(m, st);
			return;
		}
		st->in_len += (size_t)n;
		st->in[st->in_len] = '\0';
		nl = memchr(st->in, '\n', st->in_len);
		if (nl || st->in_len == sizeof(st->in) - 1) {
			if (nl)
				*nl = '\0';
			else
				st->in[0] = '\0'; /* overlong: malformed */
			start_on_reply(m, st, st->in);
			start_free(m, st);
			return;
		}
	}
}

/* ---- the ask interface --------------------------------------------------------------- */

static void prompt_close(struct monitor *m, struct mon_prompt *p, const char *why)
{
	struct mon_prompt **pp;

	for (pp = &m->prompts; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	bk_log("ask interface: prompt program disconnected (%s)", why);
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	bk_buf_finish(&p->out);
	for (struct mon_call *c = m->calls; c; c = c->next)
		if (c->phase == MC_ASKING && c->prompt == p) {
			c->prompt = NULL;
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			set_reason(c, "the prompt program went away before answering");
			call_fail(m, c, QRPC_CALL_REFUSED);
		}
	free(p);
}

static int prompt_flush(struct monitor *m, struct mon_prompt *p)
{
	while (bk_buf_len(&p->out) > 0) {
		ssize_t n = send(p->fd, p->out.data + p->out.start, bk_buf_len(&p->out), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ep_mod(m, p->fd, EPOLLIN | EPOLLOUT, &p->w);
			return 0;
		}
		if (n < 0)
			return -errno;
		bk_buf_consume(&p->out, (size_t)n);
	}
	ep_mod(m, p->fd, EPOLLIN, &p->w);
	bk_buf_shrink(&p->out);
	return 0;
}

/* Sends the question of C to the most recently connected prompt program. */
static int prompt_ask(struct monitor *m, struct mon_call *c, const struct qpol_decision *d)
{
	struct mon_prompt *p = m->prompts;
	char line[BK_LINE_MAX * 4];
	size_t len;
	int n;

	if (!p)
		return -ENOTCONN;
	n = snprintf(line, sizeof(line), "ASK %u %s %s %s %s %s", c->id, c->source, c->service,
		     c->argument[0] ? c->argument : "-", c->requested,
		     d->default_target ? d->default_target : "-");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	len = (size_t)n;
	for (size_t i = 0; i < d->n_targets; i++) {
		size_t k = strlen(d->targets[i]);

		if (len + 1 + k + 2 > sizeof(line))
			return -E2BIG;
		line[len++] = ' ';
		memcpy(line + len, d->targets[i], k);
		len += k;
	}
	line[len++] = '\n';
	uint8_t *dst = bk_buf_reserve(&p->out, len);
	if (!dst) {
		prompt_close(m, p, "not reading its questions");
		return -ENOTCONN;
	}
	memcpy(dst, line, len);
	p->out.end += len;
	c->offered = calloc(d->n_targets ? d->n_targets : 1, sizeof(char *));
	if (!c->offered)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_targets; i++) {
		c->offered[i] = strdup(d->targets[i]);
		if (!c->offered[i])
			return -ENOMEM;
		c->n_offered = i + 1;
	}
	c->prompt = p;
	c->phase = MC_ASKING;
	c->deadline = bk_now_ms() + m->cfg->ask_timeout_ms;
	return prompt_flush(m, p);
}

static void prompt_on_line(struct monitor *m, struct mon_prompt *p, const char *line)
{
	char target[QRPC_MAX_TARGET + 1];
	uint32_t id;
	bool allow;
	struct mon_call *c;

	if (bk_ask_reply_parse(line, &id, &allow, target) < 0) {
		char q[200];

		bk_quote(q, sizeof(q), line);
		bk_log("ask interface: malformed reply %s ignored", q);
		return;
	}
	c = call_find(m, id);
	if (!c || c->phase != MC_ASKING || c->prompt != p) {
		bk_log("ask interface: reply for unknown or finished call %u ignored", id);
		return;
	}
	c->prompt = NULL;
	if (!allow) {
		snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
		set_reason(c, "the user refused");
		call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	bool offered = false;
	for (size_t i = 0; i < c->n_offered; i++)
		if (strcmp(c->offered[i], target) == 0)
			offered = true;
	offered_free(c);
	if (!offered) {
		snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
		set_reason(c, "the prompt chose %s, which was not offered", target);
		call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	snprintf(c->decision_word, sizeof(c->decision_word), "ask-allow");
	set_reason(c, "the user allowed target %s", target);
	call_go(m, c, target);
}

static void on_prompt_event(struct monitor *m, struct mon_prompt *p, uint32_t events)
{
	if (events & EPOLLOUT) {
		if (prompt_flush(m, p) < 0) {
			prompt_close(m, p, "write error");
			return;
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	ssize_t n = read(p->fd, p->in + p->in_len, sizeof(p->in) - p->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		prompt_close(m, p, n == 0 ? "closed" : strerror(errno));
		return;
	}
	p->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(p->in, '\n', p->in_len);
		size_t k;

		if (!nl) {
			if (p->in_len == sizeof(p->in))
				prompt_close(m, p, "line too long");
			return;
		}
		*nl = '\0';
		k = (size_t)(nl - p->in) + 1;
		prompt_on_line(m, p, p->in);
		memmove(p->in, p->in + k, p->in_len - k);
		p->in_len -= k;
	}
}

static void on_ask_accept(struct monitor *m)
{
	for (;;) {
		int fd = accept4(m->ask_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mon_prompt *p;

		if (fd < 0)
			return;
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			return;
		}
		p->w = (struct mon_watch){ .kind = MK_ASK_CLIENT, .owner = p };
		p->fd = fd;
		bk_buf_init(&p->out, 256 * 1024);
		if (ep_add(m, fd, EPOLLIN, &p->w) < 0) {
			close(fd);
			free(p);
			return;
		}
		p->next = m->prompts;
		m->prompts = p;
		bk_log("ask interface: prompt program connected");
	}
}

/* ---- requests from the sandbox ---------------------------------------------------------- */

static void on_request(struct monitor *m, const struct bk_ipc *untrusted_rec)
{
	struct mon_call *c = call_find(m, untrusted_rec->id);
	struct qpol_decision d;
	struct qpol_request req;
	int r;

	if (!c || c->phase != MC_WAIT_REQUEST) {
		bk_log("sandbox sent a request for call %u which is not waiting for one", untrusted_rec->id);
		return;
	}
	/* the sandbox is the part that may be compromised: its record is
	 * guest-derived data and is checked again here */
	if (!bk_string_fits(untrusted_rec->target, sizeof(untrusted_rec->target)) ||
	    !bk_string_fits(untrusted_rec->service, sizeof(untrusted_rec->service)) ||
	    !bk_string_fits(untrusted_rec->argument, sizeof(untrusted_rec->argument)) ||
	    !qrpc_target_is_valid(untrusted_rec->target) || !qrpc_service_name_is_valid(untrusted_rec->service) ||
	    !qrpc_argument_is_valid(untrusted_rec->argument)) {
		snprintf(c->requested, sizeof(c->requested), "?");
		snprintf(c->service, sizeof(c->service), "?");
		snprintf(c->decision_word, sizeof(c->decision_word), "deny");
		set_reason(c, "sandbox passed an invalid request");
		call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	snprintf(c->requested, sizeof(c->requested), "%s", untrusted_rec->target);
	snprintf(c->service, sizeof(c->service), "%s", untrusted_rec->service);
	snprintf(c->argument, sizeof(c->argument), "%s", untrusted_rec->argument);
	snprintf(c->decision_word, sizeof(c->decision_word), "deny");

	if (m->policy_error) {
		set_reason(c, "%s", m->policy_error);
		call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	if (!qpol_system_has_domain(m->system, c->source)) {
		set_reason(c, "source %s is not in the system info", c->source);
		call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	req = (struct qpol_request){
		.service = c->service,
		.argument = c->argument,
		.source = c->source,
		.target = c->requested,
	};
	memset(&d, 0, sizeof(d));
	r = qpol_evaluate(m->policy, m->system, &req, &d);
	if (r < 0) {
		set_reason(c, "policy evaluation failed: %s", strerror(-r));
		call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (d.rule_file)
		snprintf(c->rule, sizeof(c->rule), "%s:%u", d.rule_file, d.rule_line);
	set_reason(c, "%s", d.reason ? d.reason : "");
	c->autostart = d.autostart;
	/* libqpolicy refuses a policy with an invalid user= at load, so this
	 * holds; checked again because the value goes to the target */
	if (d.user && (!qrpc_user_name_is_valid(d.user) || strlen(d.user) > QRPC_MAX_USER)) {
		set_reason(c, "invalid user= value in the rule");
		call_fail(m, c, QRPC_CALL_FAILED);
		qpol_decision_finish(&d);
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", d.user ? d.user : "");
	switch (d.result) {
	case QPOL_RESULT_ALLOW:
		snprintf(c->decision_word, sizeof(c->decision_word), "allow");
		if (!d.target) {
			set_reason(c, "policy allowed without a target");
			call_fail(m, c, QRPC_CALL_FAILED);
			break;
		}
		call_go(m, c, d.target);
		break;
	case QPOL_RESULT_ASK:
		snprintf(c->decision_word, sizeof(c->decision_word), "ask");
		r = prompt_ask(m, c, &d);
		if (r < 0) {
			offered_free(c);
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			set_reason(c, "ask: %s", r == -ENOTCONN ? "no prompt program is connected"
								: strerror(-r));
			call_fail(m, c, QRPC_CALL_REFUSED);
		}
		break;
	default:
		call_fail(m, c, QRPC_CALL_REFUSED);
		break;
	}
	qpol_decision_finish(&d);
}

static void on_closed(struct monitor *m, const struct bk_ipc *rec)
{
	struct mon_call *c = call_find(m, rec->id);

	if (!c) {
		bk_log("sandbox closed unknown call %u", rec->id);
		return;
	}
	if (c->phase == MC_WAIT_REQUEST)
		bk_log("connection id=%u from %s closed before a valid request", c->id, c->source);
	else if (c->phase != MC_RUNNING)
		call_log(c, "abandoned");
	else if (c->target[0] && rec->exit_code < BK_END_NO_EXIT)
		bk_log("call id=%u ended exit=%u", c->id, rec->exit_code);
	else if (c->phase == MC_RUNNING && c->target[0])
		bk_log("call id=%u ended without an exit code", c->id);
	if (c->dispvm[0]) {
		int r = start_request(m, START_DESTROY, 0, c->dispvm);
		if (r < 0)
			bk_log("cannot destroy disposable %s: %s", c->dispvm, strerror(-r));
	}
	call_remove(m, c);
}

static void on_ipc_event(struct monitor *m, uint32_t events)
{
	if (events & EPOLLOUT) {
		int r = bk_ipc_queue_flush(&m->ipc_out, m->ipc_fd);

		if (r == 0) {
			ep_mod(m, m->ipc_fd, EPOLLIN, &m->ipc_w);
			m->ipc_out_armed = false;
		} else if (r != -EAGAIN) {
			bk_log("fatal: sandbox socket: %s", strerror(-r));
			m->quit = true;
			m->exit_status = 1;
			return;
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (int k = 0; k < 256; k++) {
		struct bk_ipc rec;
		int fd = -1;
		int r = bk_ipc_recv(m->ipc_fd, &rec, &fd);

		if (r == -EAGAIN)
			return;
		if (r == -EPIPE || r == -ECONNRESET) {
			/* the child's exit status is reported through SIGCHLD */
			epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->ipc_fd, NULL);
			return;
		}
		if (r < 0) {
			bk_log("sandbox sent a malformed record: %s", strerror(-r));
			continue;
		}
		if (fd >= 0) {
			/* the sandbox never passes fds to us */
			close(fd);
			bk_log("sandbox sent an unexpected fd; ignored");
		}
		switch (rec.type) {
		case BK_IPC_REQUEST:
			on_request(m, &rec); /* validated in there */
			break;
		case BK_IPC_CLOSED:
			on_closed(m, &rec);
			break;
		default:
			bk_log("sandbox sent a record of unknown type %u", rec.type);
			break;
		}
	}
}

/* ---- inotify, signals, timers ------------------------------------------------------------ */

#define POLICY_WATCH_MASK                                                                  \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_MODIFY)

static void watches_add(struct monitor *m)
{
	m->wd_policy = inotify_add_watch(m->ino_fd, m->cfg->policy_dir, POLICY_WATCH_MASK);
	if (m->wd_policy < 0)
		bk_log("inotify on %s: %s", m->cfg->policy_dir, strerror(errno));
}

/* Watches the directory of the file PATH for changes to its name (NAME,
 * CAP bytes, receives the name; *RET_WD the watch, -1 if it could not be
 * set up, which is logged: SIGHUP still reloads).  -ENOMEM only. */
static int watch_file(struct monitor *m, const char *path, char *name, size_t cap, int *ret_wd)
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
	       wd == m->wd_vsock_map;
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
static void deps_sync(struct monitor *m)
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

static void on_inotify(struct monitor *m)
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
				listeners_rescan(m);
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

static void on_signal(struct monitor *m)
{
	struct signalfd_siginfo si;

	while (read(m->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int status;
			pid_t p;

			while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
				if (p != m->child)
					continue;
				m->child = -1;
				m->quit = true;
				if (WIFSIGNALED(status)) {
					int sig = WTERMSIG(status);

					bk_log("sandbox process %d killed by signal %d (%s)", (int)p, sig,
					       sig == SIGSYS ? "SIGSYS" : strsignal(sig));
					m->exit_status = m->cfg->selftest_seccomp && sig == SIGSYS ? 0 : 1;
				} else {
					bk_log("sandbox process %d exited with status %d", (int)p,
					       WEXITSTATUS(status));
					m->exit_status = 1;
				}
			}
		} else if (si.ssi_signo == SIGHUP) {
			bk_log("SIGHUP: reloading the policy and the system info%s",
			       m->cfg->vsock_map ? " and the vsock map" : "");
			m->reload_at = m->map_reload_at = bk_now_ms();
		} else {
			bk_log("signal %u: shutting down", si.ssi_signo);
			m->quit = true;
		}
	}
}

static void on_tick(struct monitor *m)
{
	uint64_t now = bk_now_ms();
	struct mon_call *c, *cn;
	struct mon_start *st, *sn;

	if (m->reload_at && now >= m->reload_at) {
		m->reload_at = 0;
		watches_add(m);
		policy_reload(m);
		deps_sync(m);
	}
	if (m->map_reload_at && now >= m->map_reload_at) {
		m->map_reload_at = 0;
		if (m->cfg->vsock_map)
			(void)vsock_map_load(m); /* logged; an invalid map refuses all */
	}
	for (c = m->calls; c; c = cn) {
		cn = c->next;
		if (c->phase == MC_CONNECTING && c->retry_at && now >= c->retry_at) {
			c->retry_at = 0;
			call_try_connect(m, c);
		} else if (c->phase == MC_ASKING && now >= c->deadline) {
			c->prompt = NULL;
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			set_reason(c, "the prompt program did not answer in time");
			call_fail(m, c, QRPC_CALL_REFUSED);
		}
	}
	for (st = m->starts; st; st = sn) {
		sn = st->next;
		if (now >= st->deadline) {
			start_on_reply(m, st, NULL);
			start_free(m, st);
		}
	}
}

/* ---- setup -------------------------------------------------------------------------------- */

static int ask_listen(struct monitor *m)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(m->cfg->ask_socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, m->cfg->ask_socket);
	if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((m->cfg->ask_group && (chown(sa.sun_path, (uid_t)-1, m->cfg->ask_gid) < 0 ||
				   chmod(sa.sun_path, 0660) < 0)) ||
	    listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		unlink(sa.sun_path); /* ours: bound just now */
		return r;
	}
	m->ask_fd = fd;
	m->ask_w = (struct mon_watch){ .kind = MK_ASK_LISTEN, .owner = m };
	return ep_add(m, fd, EPOLLIN, &m->ask_w);
}

static int spawn_sandbox(struct monitor *m)
{
	int sv[2];
	pid_t pid;
	int buf = 4 * 1024 * 1024;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		bk_sandbox_main(m->cfg, sv[1]);
	}
	close(sv[1]);
	m->child = pid;
	m->ipc_fd = sv[0];
	if (fcntl(m->ipc_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	m->ipc_w = (struct mon_watch){ .kind = MK_IPC, .owner = m };
	return ep_add(m, m->ipc_fd, EPOLLIN, &m->ipc_w);
}

static void raise_fd_limit(const struct bk_config *cfg)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)cfg->max_total * 3 + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < want && geteuid() == 0)
		rl.rlim_max = want;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		bk_log("cannot raise the fd limit to %llu: %s", (unsigned long long)want,
		       strerror(errno));
}

int bk_monitor_main(const struct bk_config *cfg)
{
	struct monitor mm = { .cfg = cfg, .ipc_fd = -1, .child = -1, .ino_fd = -1, .sig_fd = -1,
			      .ask_fd = -1, .wd_policy = -1, .wd_sysinfo = -1, .wd_qubes = -1,
			      .wd_vsock_map = -1 };
	struct monitor *m = &mm;
	sigset_t mask;
	int r;

	m->exit_status = 1; /* until set up */
	(void)mon_dummy;
	raise_fd_limit(cfg);
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0) {
		bk_log("epoll: %s", strerror(errno));
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	m->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	m->sig_w = (struct mon_watch){ .kind = MK_SIGNAL, .owner = m };
	if (m->sig_fd < 0 || ep_add(m, m->sig_fd, EPOLLIN, &m->sig_w) < 0) {
		bk_log("signalfd: %s", strerror(errno));
		return 1;
	}

	/* the sandbox first, so that it inherits nothing but its socket and the log */
	r = spawn_sandbox(m);
	if (r < 0) {
		bk_log("cannot start the sandbox process: %s", strerror(-r));
		return 1;
	}

	m->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	m->ino_w = (struct mon_watch){ .kind = MK_INOTIFY, .owner = m };
	if (m->ino_fd < 0 || ep_add(m, m->ino_fd, EPOLLIN, &m->ino_w) < 0) {
		bk_log("inotify: %s", strerror(errno));
		goto out;
	}
	watches_add(m);
	if (watch_file(m, cfg->system_info, m->sysinfo_name, sizeof(m->sysinfo_name),
		       &m->wd_sysinfo) < 0)
		goto out;
	policy_reload(m);
	deps_sync(m);

	if (cfg->vsock_map) {
		/* qubed rewrites the map as qubes start and stop (rename into
		 * place); it is reloaded like the policy */
		if (watch_file(m, cfg->vsock_map, m->vsock_map_name, sizeof(m->vsock_map_name),
			       &m->wd_vsock_map) < 0)
			goto out;
		r = vsock_map_load(m);
		if (r == 0)
			r = listener_add_vsock(m);
		if (r < 0) {
			bk_log("vsock transport: %s", strerror(-r));
			goto out;
		}
	} else {
		m->wd_qubes = inotify_add_watch(m->ino_fd, cfg->qubes_dir,
						IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
							IN_ONLYDIR);
		if (m->wd_qubes < 0) {
			bk_log("%s: %s", cfg->qubes_dir, strerror(errno));
			goto out;
		}
		listeners_rescan(m);
	}
	if (cfg->ask_socket) {
		r = ask_listen(m);
		if (r < 0) {
			bk_log("ask socket %s: %s", cfg->ask_socket, strerror(-r));
			goto out;
		}
	}
	bk_log("ready (pid %d, sandbox pid %d)", (int)getpid(), (int)m->child);
	m->exit_status = 0;

	while (!m->quit) {
		struct epoll_event evs[64];
		int timeout = 1000;
		int n;

		for (struct mon_call *c = m->calls; c; c = c->next)
			if (c->retry_at || c->phase == MC_ASKING) {
				timeout = 20;
				break;
			}
		if (m->reload_at || m->map_reload_at || m->starts)
			timeout = 20;
		n = epoll_wait(m->epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			bk_log("epoll_wait: %s", strerror(errno));
			m->exit_status = 1;
			break;
		}
		for (int i = 0; i < n && !m->quit; i++) {
			struct mon_watch *w = evs[i].data.ptr;

			switch (w->kind) {
			case MK_LISTENER:
				on_accept(m, w->owner);
				break;
			case MK_IPC:
				on_ipc_event(m, evs[i].events);
				break;
			case MK_INOTIFY:
				on_inotify(m);
				break;
			case MK_SIGNAL:
				on_signal(m);
				break;
			case MK_ASK_LISTEN:
				on_ask_accept(m);
				break;
			case MK_ASK_CLIENT:
				on_prompt_event(m, w->owner, evs[i].events);
				break;
			case MK_START:
				on_start_event(m, w->owner);
				break;
			}
		}
		on_tick(m);
	}
out:
	if (m->child > 0) {
		int status;

		kill(m->child, SIGKILL);
		waitpid(m->child, &status, 0);
	}
	while (m->listeners) {
		struct mon_listener *l = m->listeners;

		m->listeners = l->next;
		listener_close(m, l);
	}
	while (m->prompts) {
		struct mon_prompt *p = m->prompts;

		m->prompts = p->next;
		close(p->fd);
		bk_buf_finish(&p->out);
		free(p);
	}
	while (m->starts)
		start_free(m, m->starts);
	while (m->calls)
		call_remove(m, m->calls);
	while (m->sources) {
		struct mon_source *s = m->sources;

		m->sources = s->next;
		free(s);
	}
	if (m->ask_fd >= 0) {
		close(m->ask_fd);
		unlink(cfg->ask_socket);
	}
	bk_ipc_queue_finish(&m->ipc_out);
	free(m->vsock_map);
	free(m->policy_error);
	qpol_policy_free(m->policy);
	free(m->dep_watches);
	qpol_system_free(m->system);
	if (m->ipc_fd >= 0)
		close(m->ipc_fd);
	if (m->ino_fd >= 0)
		close(m->ino_fd);
	if (m->sig_fd >= 0)
		close(m->sig_fd);
	close(m->epfd);
	bk_log("exiting with status %d", m->exit_status);
	return m->exit_status;
}
