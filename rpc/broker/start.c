/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: the start interface.  One connection to
 * --start-socket per request (START, DISPVM, DESTROY), one reply line
 * (docs/broker.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/un.h>

#include "monitor.h"

void mon_start_free(struct monitor *m, struct mon_start *st)
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
	if (st->call_id) {
		struct mon_call *c = mon_call_find(m, st->call_id);

		if (c && c->start == st)
			c->start = NULL;
	}
	free(st);
}

void mon_start_cancel(struct mon_start *st)
{
	/* end our side: the server reads EOF before it answered, which the
	 * start interface defines as "cancelled"; its answer is still read
	 * (a disposable that got made anyway is destroyed) */
	if (!st->cancelled)
		shutdown(st->fd, SHUT_WR);
	st->cancelled = true;
}

/* Sends one request to the start interface; the reply arrives later. */
int mon_start_request(struct monitor *m, enum start_op op, uint32_t call_id, const char *arg)
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
	r = mon_ep_add(m, st->fd, EPOLLIN, &st->w);
	if (r < 0)
		goto err_close;
	st->next = m->starts;
	m->starts = st;
	if (call_id) {
		struct mon_call *c = mon_call_find(m, call_id);

		if (c)
			c->start = st;
	}
	return 0;
err_close:
	close(st->fd);
err_free:
	free(st);
	return r;
}

static const char *start_error(int r, const char *msg)
{
	return r == -EHOSTDOWN ? msg : r == -ETIMEDOUT ? "no answer" : "bad reply";
}

/* A start request of call C, whose caller went away (MC_GONE), ended. */
static void gone_on_reply(struct monitor *m, struct mon_start *st, struct mon_call *c, int r,
			  const char *name, const char *msg)
{
	switch (st->op) {
	case START_DISPVM:
		if (r == 0) {
			bk_log("call id=%u: disposable %s finished starting after its caller left: "
			       "destroying it", c->id, name);
			snprintf(c->dispvm, sizeof(c->dispvm), "%s", name);
		} else if (r == -ETIMEDOUT) {
			bk_log("call id=%u: cancelled DISPVM %s got no answer within %u ms; if a "
			       "disposable was made, the start interface must destroy it", c->id,
			       st->arg, m->cfg->start_timeout_ms);
		}
		break;
	case START_DESTROY:
		if (r < 0)
			bk_log("start interface: DESTROY %s: %s", st->arg, start_error(r, msg));
		c->dispvm[0] = '\0'; /* asked once; not again */
		break;
	case START_QUBE:
		break; /* a qube that started anyway just runs */
	}
	mon_call_release(m, c);
}

void mon_start_on_reply(struct monitor *m, struct mon_start *st, const char *line)
{
	char name[QRPC_MAX_QUBE + 1] = "", msg[200] = "";
	struct mon_call *c = mon_call_find(m, st->call_id);
	int r = line ? bk_start_reply_parse(line, name, msg, sizeof(msg)) : -ETIMEDOUT;

	/* the host is never a qube the start interface makes */
	if (r == 0 && strcmp(name, BK_ADMIN_QUBE) == 0)
		r = -EBADMSG;
	if (!c || c->start != st) {
		/* cannot happen: a call stays while its request is open */
		if (st->op == START_DISPVM && r == 0)
			mon_start_request(m, START_DESTROY, 0, name);
		return;
	}
	c->start = NULL;
	if (c->phase == MC_GONE) {
		gone_on_reply(m, st, c, r, name, msg);
		return;
	}
	if (st->op == START_DESTROY || c->phase != MC_STARTING) {
		/* cannot happen: DESTROY is sent for MC_GONE calls only, and a
		 * call waits in MC_STARTING for its START/DISPVM */
		if (st->op == START_DISPVM && r == 0)
			snprintf(c->dispvm, sizeof(c->dispvm), "%s", name);
		return;
	}
	if (r < 0) {
		if (r == -EHOSTDOWN)
			mon_set_reason(c, "start interface could not start %s: %s", st->arg, msg);
		else if (r == -ETIMEDOUT)
			mon_set_reason(c, "start interface gave no answer for %s", st->arg);
		else
			mon_set_reason(c, "start interface sent a malformed reply for %s", st->arg);
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (st->op == START_QUBE && strcmp(name, c->target) != 0) {
		mon_set_reason(c, "start interface started %s instead of %s", name, c->target);
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (st->op == START_DISPVM)
		snprintf(c->dispvm, sizeof(c->dispvm), "%s", name);
	snprintf(c->target, sizeof(c->target), "%s", name);
	c->start_tried = true;
	c->phase = MC_CONNECTING;
	c->deadline = bk_now_ms() + m->cfg->connect_timeout_ms;
	mon_call_try_connect(m, c);
}

void mon_on_start_event(struct monitor *m, struct mon_start *st)
{
	for (;;) {
		ssize_t n = read(st->fd, st->in + st->in_len, sizeof(st->in) - 1 - st->in_len);
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			mon_start_on_reply(m, st, "");
			mon_start_free(m, st);
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
			mon_start_on_reply(m, st, st->in);
			mon_start_free(m, st);
			return;
		}
	}
}

