/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: where calls come from.  The per-qube sockets of the
 * unix (hybrid vsock) transport, the vsock map and AF_VSOCK listener, and
 * accepting a caller: its identity is fixed here, never by what it says.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

#include "monitor.h"

/* ---- listeners ------------------------------------------------------------------- */

void mon_listener_close(struct monitor *m, struct mon_listener *l)
{
	struct stat st;

	epoll_ctl(m->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	/* remove our socket file, unless someone replaced it */
	if (!l->vsock && lstat(l->path, &st) == 0 && st.st_ino == l->ino && S_ISSOCK(st.st_mode))
		unlink(l->path);
	free(l);
}

/* A unix listener: connections to DIR/vsock_513 are calls from NAME. */
static int listener_add_unix_at(struct monitor *m, const char *dir, const char *name, bool host)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mon_listener *l;
	struct stat st;
	int n, r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = (struct mon_watch){ .kind = MK_LISTENER, .owner = l };
	l->host = host;
	snprintf(l->name, sizeof(l->name), "%s", name);
	n = snprintf(l->path, sizeof(l->path), "%s/vsock_%u", dir, QRPC_PORT_BROKER);
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
	r = mon_ep_add(m, l->fd, EPOLLIN, &l->w);
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

static int listener_add_unix(struct monitor *m, const char *name)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/%s", m->cfg->qubes_dir, name);

	if (n < 0 || (size_t)n >= sizeof(dir))
		return -ENAMETOOLONG;
	return listener_add_unix_at(m, dir, name, false);
}

/* --host-calls DIR: DIR/vsock_513, where every connection is a call whose
 * source is the admin qube (the host: `qubectl run`).  Who may connect is
 * decided by DIR's permissions (qubed makes it 0750 root:qube); no guest
 * transport leads there.  Made again by mon_listeners_rescan when its
 * socket file is removed. */
int mon_listener_add_host(struct monitor *m)
{
	int r;

	if (!m->cfg->host_calls_dir)
		return 0;
	r = listener_add_unix_at(m, m->cfg->host_calls_dir, BK_ADMIN_QUBE, true);
	if (r < 0)
		bk_log("host calls: cannot listen on %s/vsock_%u: %s", m->cfg->host_calls_dir,
		       QRPC_PORT_BROKER, strerror(-r));
	else
		bk_log("host calls (source %s): listening on %s/vsock_%u", BK_ADMIN_QUBE,
		       m->cfg->host_calls_dir, QRPC_PORT_BROKER);
	return r;
}

/* Makes the set of listeners match the qube directories in QUBES_DIR. */
void mon_listeners_rescan(struct monitor *m)
{
	struct mon_listener **pp, *l;
	DIR *d;
	struct dirent *de;
	bool have_host = false;

	/* the host-call socket: made again when it was removed */
	for (pp = &m->listeners; (l = *pp);) {
		struct stat st;

		if (l->host && (lstat(l->path, &st) < 0 || st.st_ino != l->ino)) {
			*pp = l->next;
			bk_log("host calls: socket %s gone; listening again", l->path);
			mon_listener_close(m, l);
			continue;
		}
		have_host |= l->host;
		pp = &l->next;
	}
	if (!have_host && m->cfg->host_calls_dir)
		mon_listener_add_host(m);
	if (!m->cfg->qubes_dir)
		return;
	/* drop listeners whose socket vanished or was replaced */
	for (pp = &m->listeners; (l = *pp);) {
		struct stat st;

		if (!l->vsock && !l->host && (lstat(l->path, &st) < 0 || st.st_ino != l->ino)) {
			*pp = l->next;
			bk_log("qube %s: socket directory gone, no longer listening", l->name);
			mon_listener_close(m, l);
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
		if (strcmp(de->d_name, BK_ADMIN_QUBE) == 0) {
			/* the host is not a qube: nothing may call as dom0 */
			if (!m->admin_dir_logged)
				bk_log("%s/%s: the admin qube's name; not a qube, no socket "
				       "created", m->cfg->qubes_dir, de->d_name);
			m->admin_dir_logged = true;
			continue;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		for (l = m->listeners; l; l = l->next)
			if (!l->vsock && !l->host && strcmp(l->name, de->d_name) == 0)
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
		if (strcmp(name, BK_ADMIN_QUBE) == 0) {
			bk_log("%s:%u: %s is the admin qube (the host), not a qube with a CID",
			       path, lineno, name);
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
int mon_vsock_map_load(struct monitor *m)
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

uint32_t mon_vsock_cid(struct monitor *m, const char *name)
{
	for (size_t i = 0; i < m->n_vsock_map; i++)
		if (strcmp(m->vsock_map[i].name, name) == 0)
			return m->vsock_map[i].cid;
	return 0;
}

int mon_listener_add_vsock(struct monitor *m)
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
	r = mon_ep_add(m, l->fd, EPOLLIN, &l->w);
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
void mon_set_stream_buffers(int fd)
{
	int size = 1 << 20;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Every listening socket of the monitor: the qubes' and the ask socket. */
static void listeners_set(struct monitor *m, uint32_t events)
{
	for (struct mon_listener *l = m->listeners; l; l = l->next)
		mon_ep_mod(m, l->fd, events, &l->w);
	if (m->ask_fd >= 0)
		mon_ep_mod(m, m->ask_fd, events, &m->ask_w);
}

/*
 * Out of fds: the qube holding most of the open calls (more than half, and
 * at least two) loses those of its calls that are not running yet -- a
 * connection that has sent no request, a question at the prompt, a start
 * or a connect in progress.  The sandbox ends each as if its caller had
 * hung up (CLOSED follows, and the usual clean-up: the question
 * withdrawn, the start cancelled).  Running calls are left alone: they are
 * work the policy allowed.  Returns how many were shed.
 */
static unsigned shed_pending(struct monitor *m, const struct mon_source *top)
{
	unsigned n = 0;

	if (!top || top->n_calls < 2 || top->n_calls * 2 <= m->n_calls)
		return 0;
	for (struct mon_call *c = m->calls; c; c = c->next) {
		struct bk_ipc rec = { .type = BK_IPC_SHED, .id = c->id };

		if (c->shed || c->phase == MC_RUNNING || c->phase == MC_GONE ||
		    strcmp(c->source, top->name) != 0)
			continue;
		c->shed = true;
		mon_ipc_queue(m, &rec, -1);
		n++;
	}
	return n;
}

void mon_accept_pause(struct monitor *m, int err)
{
	const struct mon_source *top = NULL;
	unsigned shed;

	m->accept_backoff_ms = m->accept_backoff_ms ? m->accept_backoff_ms * 2 : 100;
	if (m->accept_backoff_ms > 2000)
		m->accept_backoff_ms = 2000;
	m->accept_resume_at = bk_now_ms() + m->accept_backoff_ms;
	/* the listeners are level-triggered: a pending connection that cannot
	 * be accepted would wake the loop at once, forever */
	listeners_set(m, 0);
	if (m->fd_episode)
		return;
	m->fd_episode = true;
	for (const struct mon_source *s = m->sources; s; s = s->next)
		if (!top || s->n_calls > top->n_calls)
			top = s;
	shed = shed_pending(m, top);
	bk_log("cannot accept calls: %s; pausing (retrying every <= 2 s); %u calls open, most "
	       "from %s (%u); %u of its calls not yet running shed", strerror(err), m->n_calls,
	       top ? top->name : "-", top ? top->n_calls : 0, shed);
}

void mon_accept_resumed(struct monitor *m)
{
	if (!m->fd_episode)
		return;
	m->fd_episode = false;
	m->accept_backoff_ms = 0;
	bk_log("file descriptors available again: accepting calls");
}

void mon_accept_tick(struct monitor *m)
{
	if (!m->accept_resume_at || bk_now_ms() < m->accept_resume_at)
		return;
	m->accept_resume_at = 0;
	listeners_set(m, EPOLLIN);
}

/* A guest connected: fix its identity, enforce the caps, hand it over. */
void mon_on_accept(struct monitor *m, struct mon_listener *l)
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
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				mon_accept_pause(m, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				bk_log("accept on %s: %s", l->vsock ? "vsock" : l->path, strerror(errno));
			return;
		}
		mon_accept_resumed(m);
		if (l->vsock) {
			name = plen >= sizeof(peer) ? vsock_name(m, peer.svm_cid) : NULL;
			if (!name) {
				bk_log_source("(unknown CIDs)",
					      "connection from unknown vsock CID %u closed",
					      plen >= sizeof(peer) ? peer.svm_cid : 0);
				close(fd);
				continue;
			}
		}
		s = mon_source_get(m, name, true);
		if (!s) {
			close(fd);
			continue;
		}
		if (m->n_calls >= m->cfg->max_total || s->n_calls >= m->cfg->max_per_qube) {
			bk_log_source(name,
				      "connection from %s closed: too many calls (%u from it, %u in "
				      "all)", name, s->n_calls, m->n_calls);
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
		while (c->id == 0 || mon_call_find(m, c->id));
		c->phase = MC_WAIT_REQUEST;
		snprintf(c->source, sizeof(c->source), "%s", name);
		c->next = m->calls;
		m->calls = c;
		s->n_calls++;
		m->n_calls++;

		mon_set_stream_buffers(fd);
		struct bk_ipc rec = { .type = BK_IPC_NEW_CALL, .id = c->id };
		snprintf(rec.source, sizeof(rec.source), "%s", name);
		mon_ipc_queue(m, &rec, fd);
	}
}

