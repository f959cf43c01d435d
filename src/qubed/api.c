/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: the admin API socket.  The wire is Qubes OS 4.3's qubesd socket,
 * so that Qubes' own client library works against it:
 *
 *   request:  "METHOD+ARG SRC name DEST\0" PAYLOAD, then the client shuts
 *             down its write side (at most 64 KiB in all; the import
 *             methods stream their payload to a file instead)
 *   reply:    "0\0" DATA                           success
 *             "2\0" TYPE "\0" "\0" MESSAGE "\0"    exception (no traceback)
 *             "1\0" SUBJECT "\0" EVENT "\0" (K "\0" V "\0")* "\0"   events
 *
 * Peers: root, or a member of the socket's group (SO_PEERCRED and
 * SO_PEERGROUPS); the socket file itself is 0660 root:GROUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "qname.h"

#define QD_MAX_CONNECTIONS 256

static unsigned n_connections;

static void call_free(struct qd *qd, struct qd_call *c)
{
	if (c->subscribed) {
		for (struct qd_call **pp = &qd->subscribers; *pp; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				break;
			}
	}
	qd_watch_del(qd, &c->watch);
	if (c->fd >= 0)
		close(c->fd);
	if (c->import_fd >= 0) {
		close(c->import_fd);
		if (c->import_tmp[0])
			unlink(c->import_tmp);
	}
	free(c->in);
	free(c->out);
	free(c);
	n_connections--;
}

int qd_out_append(struct qd_call *c, const void *data, size_t len)
{
	if (len == 0)
		return 0; /* DATA may be NULL then (an empty reply body) */
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		while (cap < c->out_len + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

int qd_out_appendf(struct qd_call *c, const char *fmt, ...)
{
	char small[1024], *buf = small;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(small)) {
		buf = malloc((size_t)n + 1);
		if (!buf)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(buf, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	r = qd_out_append(c, buf, (size_t)n);
	if (buf != small)
		free(buf);
	return r;
}

static void flush(struct qd *qd, struct qd_call *c);

static void send_reply(struct qd *qd, struct qd_call *c, const char *head, const void *data, size_t len)
{
	/* the header goes in front of whatever was appended */
	size_t hl = 2;
	char *p;

	if (c->replied)
		return;
	if (qd_out_append(c, data, len) < 0 || qd_out_append(c, "\0\0", hl) < 0) {
		call_free(qd, c);
		return;
	}
	p = c->out;
	memmove(p + hl, p, c->out_len - hl);
	memcpy(p, head, hl);
	c->replied = true;
	c->pending = false;
	flush(qd, c);
}

void qd_reply_ok(struct qd *qd, struct qd_call *c, const void *data, size_t len)
{
	send_reply(qd, c, "0\0", data, len);
}

void qd_reply_okf(struct qd *qd, struct qd_call *c, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	qd_reply_ok(qd, c, buf, (size_t)n);
}

void qd_reply_exc(struct qd *qd, struct qd_call *c, const struct qerr *e)
{
	const char *type = e && e->type[0] ? e->type : "QubesException";
	const char *msg = e && e->msg[0] ? e->msg : "internal error";

	c->out_len = 0; /* drop anything half-built */
	if (qd_out_append(c, type, strlen(type) + 1) < 0 || qd_out_append(c, "", 1) < 0 ||
	    qd_out_append(c, msg, strlen(msg) + 1) < 0) {
		call_free(qd, c);
		return;
	}
	qd_log("call %s+%s %s -> %s failed: %s: %s", c->method, c->arg, c->src, c->dest, type, msg);
	send_reply(qd, c, "2\0", NULL, 0);
}

static void flush(struct qd *qd, struct qd_call *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				qd_watch_mod(qd, &c->watch, EPOLLOUT);
				return;
			}
			call_free(qd, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->subscribed) {
		/* keep the connection; the buffer is reused */
		c->out_len = c->out_off = 0;
		qd_watch_mod(qd, &c->watch, c->eof ? 0 : EPOLLIN);
		return;
	}
	if (c->replied) {
		shutdown(c->fd, SHUT_WR);
		call_free(qd, c);
	}
}

void qd_call_release(struct qd *qd, struct qd_call *c)
{
	call_free(qd, c);
}

void qd_api_event_to(struct qd *qd, struct qd_call *c, const char *subject, const char *event,
		     const char *const *kv)
{
	/* a subscriber that does not read falls behind; past 1 MiB it is dropped */
	if (c->out_len > (1u << 20)) {
		qd_log("admin.Events subscriber (pid %d) does not read: disconnected", (int)c->pid);
		call_free(qd, c);
		return;
	}
	bool ok = qd_out_append(c, "1", 2) == 0 && qd_out_append(c, subject, strlen(subject) + 1) == 0 &&
		  qd_out_append(c, event, strlen(event) + 1) == 0;
	for (size_t i = 0; ok && kv && kv[i]; i++)
		ok = qd_out_append(c, kv[i], strlen(kv[i]) + 1) == 0;
	if (!ok || qd_out_append(c, "", 1) < 0) {
		call_free(qd, c);
		return;
	}
	if (c->out_off == 0)
		flush(qd, c);
}

void qd_api_event(struct qd *qd, const char *subject, const char *event, const char *const *kv)
{
	for (struct qd_call *c = qd->subscribers, *next; c; c = next) {
		next = c->next;
		qd_api_event_to(qd, c, subject, event, kv);
	}
}

/* "METHOD+ARG SRC name DEST" -> fields; refuses what qubesd refuses */
static int parse_header(struct qd_call *c, const char *untrusted_hdr, size_t len)
{
	char buf[512], *f[4], *save = NULL, *plus;
	int n = 0;

	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, untrusted_hdr, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] <= 0x20 && buf[i] != ' ')
			return -EINVAL;
	/* exactly four space-separated fields (the last may not contain one) */
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (n == 4)
			return -EINVAL;
		f[n++] = t;
	}
	if (n != 4)
		return -EINVAL;
	if (strcmp(f[2], "keyword") == 0 && strcmp(f[3], "adminvm") == 0)
		f[3] = "dom0";
	else if (strcmp(f[2], "name") != 0)
		return -EINVAL;
	plus = strchr(f[0], '+');
	if (plus)
		*plus++ = '\0';
	if (strlen(f[0]) >= sizeof(c->method) || (plus && strlen(plus) >= sizeof(c->arg)) ||
	    strlen(f[1]) >= sizeof(c->src) || strlen(f[3]) >= sizeof(c->dest))
		return -EINVAL;
	for (const char *p = f[0]; *p; p++)
		if (!(qname_is_name_char(*p)))
			return -EINVAL;
	strcpy(c->method, f[0]);
	strcpy(c->arg, plus ? plus : "");
	strcpy(c->src, f[1]);
	strcpy(c->dest, f[3]);
	return 0;
}

static void dispatch(struct qd *qd, struct qd_call *c)
{
	const struct qd_method *m = qd_method_lookup(c->method);
	struct qerr err = { "", "" };
	int r;

	if (!m) {
		qd_err(&err, "QubesException", "no such method: %s", c->method);
		qd_reply_exc(qd, c, &err);
		return;
	}
	/* only the host's own tools call here (the source is dom0); a
	 * management qube would come through the broker under policy */
	if (strcmp(c->src, "dom0") != 0) {
		qd_err(&err, "PermissionDenied", "calls from '%s' are not accepted on this socket", c->src);
		qd_reply_exc(qd, c, &err);
		return;
	}
	if ((m->flags & QD_M_DEST_DOM0) && strcmp(c->dest, "dom0") != 0) {
		qd_err(&err, "QubesException", "%s: the destination must be dom0, not '%s'", c->method, c->dest);
		qd_reply_exc(qd, c, &err);
		return;
	}
	if ((m->flags & QD_M_DEST_QUBE) && !qdb_qube_exists(qd->db, c->dest)) {
		qd_err(&err, "QubesVMNotFoundError", "No such domain: '%s'", c->dest);
		qd_reply_exc(qd, c, &err);
		return;
	}
	if ((m->flags & QD_M_NO_ARG) && c->arg[0]) {
		qd_err(&err, "QubesException", "%s takes no argument (got '+%s')", c->method, c->arg);
		qd_reply_exc(qd, c, &err);
		return;
	}
	if ((m->flags & QD_M_NEED_ARG) && !c->arg[0]) {
		qd_err(&err, "QubesException", "%s needs an argument (METHOD+ARG)", c->method);
		qd_reply_exc(qd, c, &err);
		return;
	}
	if ((m->flags & QD_M_NO_PAYLOAD) && c->payload_len) {
		qd_err(&err, "QubesException", "%s takes no payload (got %zu bytes)", c->method, c->payload_len);
		qd_reply_exc(qd, c, &err);
		return;
	}
	r = m->fn(qd, c, &err);
	if (r < 0)
		qd_reply_exc(qd, c, &err);
}

/* returns false when C was freed or already replied to (stop using it) */
static bool on_header(struct qd *qd, struct qd_call *c, size_t nul)
{
	struct qerr err = { "", "" };

	if (parse_header(c, c->in, nul) < 0) {
		qd_log("connection from pid %d: framing error, closed", (int)c->pid);
		call_free(qd, c);
		return false;
	}
	c->header_done = true;
	const struct qd_method *m = qd_method_lookup(c->method);
	if (m && (m->flags & QD_M_STREAM)) {
		if (strcmp(c->src, "dom0") != 0 || qd_import_begin(qd, c, &err) < 0) {
			if (!err.type[0])
				qd_err(&err, "PermissionDenied", "calls from '%s' are not accepted", c->src);
			qd_reply_exc(qd, c, &err);
			return false;
		}
		/* what came with the header is the payload's start */
		size_t rest = c->in_len - nul - 1;
		if (rest && write(c->import_fd, c->in + nul + 1, rest) != (ssize_t)rest)
			c->import_err = errno ? errno : EIO;
		c->import_len += rest;
		c->in_len = 0;
	}
	return true;
}

static void on_readable(struct qd *qd, struct qd_call *c)
{
	for (;;) {
		char tmp[65536];
		char *dst;
		size_t room;
		ssize_t n;

		if (c->import_fd >= 0) {
			dst = tmp;
			room = sizeof(tmp);
		} else {
			if (c->in_len == c->in_cap) {
				/* the cap: 64 KiB of header and payload, like qubesd */
				if (c->in_cap >= QD_REQUEST_MAX) {
					qd_log("connection from pid %d: request over %u bytes, closed", (int)c->pid,
					       QD_REQUEST_MAX);
					call_free(qd, c);
					return;
				}
				size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
				if (cap > QD_REQUEST_MAX)
					cap = QD_REQUEST_MAX;
				char *p = realloc(c->in, cap);
				if (!p) {
					call_free(qd, c);
					return;
				}
				c->in = p;
				c->in_cap = cap;
			}
			dst = c->in + c->in_len;
			room = c->in_cap - c->in_len;
		}
		n = recv(c->fd, dst, room, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			call_free(qd, c);
			return;
		}
		if (n == 0) {
			c->eof = true;
			break;
		}
		if (c->import_fd >= 0) {
			if (c->import_len + (uint64_t)n > c->import_max) {
				struct qerr err;
				qd_err(&err, "QubesValueError", "%s+%s: the data is larger than %llu MiB", c->method,
				       c->arg, (unsigned long long)(c->import_max >> 20));
				qd_reply_exc(qd, c, &err);
				return;
			}
			if (!c->import_err && write(c->import_fd, tmp, (size_t)n) != n)
				c->import_err = errno ? errno : ENOSPC;
			c->import_len += (uint64_t)n;
			continue;
		}
		size_t before = c->in_len;
		c->in_len += (size_t)n;
		if (!c->header_done) {
			char *z = memchr(c->in + before, '\0', c->in_len - before);
			if (z && !on_header(qd, c, (size_t)(z - c->in)))
				return;
		}
	}
	/* EOF: the request is complete */
	qd_watch_mod(qd, &c->watch, 0);
	if (!c->header_done) {
		char *z = c->in ? memchr(c->in, '\0', c->in_len) : NULL;
		if (!z) {
			qd_log("connection from pid %d: no request header before EOF, closed", (int)c->pid);
			call_free(qd, c);
			return;
		}
		if (!on_header(qd, c, (size_t)(z - c->in)))
			return;
	}
	if (c->import_fd < 0) {
		size_t hl = strnlen(c->in, c->in_len) + 1;
		c->payload = c->in + hl;
		c->payload_len = c->in_len - hl;
	}
	dispatch(qd, c);
}

static void on_call(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct qd_call *c = w->ctx;

	if (events & EPOLLOUT) {
		flush(qd, c);
		return;
	}
	if (c->subscribed) {
		/* a subscriber only ever closes: its half-close (EOF) is normal,
		 * a full close or an error ends the subscription */
		char b[256];
		ssize_t n;

		if (events & (EPOLLHUP | EPOLLERR)) {
			call_free(qd, c);
			return;
		}
		n = recv(c->fd, b, sizeof(b), 0);
		if (n == 0)
			qd_watch_mod(qd, &c->watch, 0);
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			call_free(qd, c);
		return;
	}
	if (c->pending) {
		/* the client went away while its operation runs: the operation
		 * goes on (as in qubesd), the reply is dropped */
		if (events & (EPOLLHUP | EPOLLERR)) {
			qd_watch_del(qd, &c->watch);
			c->gone = true;
		}
		return;
	}
	on_readable(qd, c);
}

static bool peer_allowed(struct qd *qd, int fd, uid_t *ret_uid, pid_t *ret_pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct group *g;
	gid_t groups[256];
	socklen_t glen = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	*ret_uid = cr.uid;
	*ret_pid = cr.pid;
	if (cr.uid == 0)
		return true;
	g = qd->cfg.socket_group[0] ? getgrnam(qd->cfg.socket_group) : NULL;
	if (!g)
		return false;
	if (cr.gid == g->gr_gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
		return false;
	for (size_t i = 0; i < glen / sizeof(gid_t); i++)
		if (groups[i] == g->gr_gid)
			return true;
	return false;
}

static void on_accept(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct qd_call *c;
		uid_t uid = (uid_t)-1;
		pid_t pid = 0;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				qd_log("admin socket: accept: %s", strerror(errno));
			return;
		}
		if (n_connections >= QD_MAX_CONNECTIONS) {
			qd_log("admin socket: %u connections open, refusing another", n_connections);
			close(fd);
			continue;
		}
		if (!peer_allowed(qd, fd, &uid, &pid)) {
			static const char msg[] = "2\0PermissionDenied\0\0only root and members of the qube "
						  "group may use this socket\0";
			qd_log("admin socket: uid %d (pid %d) is not root nor in group %s: refused", (int)uid,
			       (int)pid, qd->cfg.socket_group);
			(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->uid = uid;
		c->pid = pid;
		c->import_fd = -1;
		n_connections++;
		if (qd_watch_add(qd, &c->watch, fd, EPOLLIN | EPOLLRDHUP, on_call, c) < 0) {
			c->watch.fd = -1;
			call_free(qd, c);
		}
	}
	(void)events;
}

int qd_api_listen(struct qd *qd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = qd->cfg.socket_path;
	struct group *g;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a stale socket from a killed qubed is replaced; a live one is not */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		qd_log("%s: another qubed is listening there", path);
		return -EADDRINUSE;
	}
	unlink(path);
	mode_t old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	g = qd->cfg.socket_group[0] ? getgrnam(qd->cfg.socket_group) : NULL;
	if (g) {
		if (chown(path, 0, g->gr_gid) < 0)
			qd_log("%s: chown to group %s: %s", path, qd->cfg.socket_group, strerror(errno));
	} else if (qd->cfg.socket_group[0]) {
		qd_log("group '%s' does not exist: only root can use %s", qd->cfg.socket_group, path);
	}
	chmod(path, 0660);
	qd->api_fd = fd;
	return qd_watch_add(qd, &qd->api_watch, fd, EPOLLIN, on_accept, NULL);
}
