/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: the ask interface.  Prompt programs connect to
 * --ask-socket and answer the questions of `ask` rules (line protocol in
 * docs/broker.md).
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
			mon_ask_end(m, c, false);
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			mon_set_reason(c, "the prompt program went away before answering");
			mon_call_fail(m, c, QRPC_CALL_REFUSED);
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
			mon_ep_mod(m, p->fd, EPOLLIN | EPOLLOUT, &p->w);
			return 0;
		}
		if (n < 0)
			return -errno;
		bk_buf_consume(&p->out, (size_t)n);
	}
	mon_ep_mod(m, p->fd, EPOLLIN, &p->w);
	bk_buf_shrink(&p->out);
	return 0;
}

/*
 * Queues LEN bytes of LINE for P; -ENOBUFS when it is that far behind.
 *
 * A prompt program that does not read loses new questions, never a CANCEL:
 * an ASK line is queued only while at most BK_ASK_OUT_MAX bytes are waiting
 * (ASK_ONLY_UNDER), and the buffer's hard cap is that plus one maximal ASK
 * line plus one CANCEL line for every call that can be open (max_total).
 * Once ASK lines stop being queued, every further CANCEL belongs to a
 * question that was open at that moment, and there are at most max_total
 * of those.
 */
#define BK_CANCEL_LINE_MAX sizeof("CANCEL 4294967295\n")

static size_t prompt_out_cap(const struct monitor *m)
{
	return BK_ASK_OUT_MAX + BK_ASK_LINE_MAX + (size_t)m->cfg->max_total * BK_CANCEL_LINE_MAX;
}

static int prompt_queue(struct mon_prompt *p, const char *line, size_t len, size_t only_under)
{
	uint8_t *dst;

	if (only_under && bk_buf_len(&p->out) + len > only_under)
		return -ENOBUFS;
	dst = bk_buf_reserve(&p->out, len);

	if (!dst)
		return -ENOBUFS;
	memcpy(dst, line, len);
	p->out.end += len;
	return 0;
}

void mon_ask_end(struct monitor *m, struct mon_call *c, bool cancel)
{
	struct mon_prompt *p = c->prompt;
	struct mon_source *s = mon_source_get(m, c->source, false);
	char line[32];
	int n;

	if (!p)
		return;
	c->prompt = NULL;
	if (s && s->n_asks > 0)
		s->n_asks--;
	if (!cancel)
		return;
	n = snprintf(line, sizeof(line), "CANCEL %u\n", c->id);
	if (prompt_queue(p, line, (size_t)n, 0) < 0) {
		/* cannot happen (the cap leaves room, see prompt_queue) but for
		 * -ENOMEM; its answer, if any, is ignored: the call is over */
		bk_log("ask interface: CANCEL %u could not be queued", c->id);
		return;
	}
	if (prompt_flush(m, p) < 0)
		prompt_close(m, p, "write error");
}

/* Sends the question of C to the most recently connected prompt program. */
int mon_prompt_ask(struct monitor *m, struct mon_call *c, const struct qpol_decision *d)
{
	struct mon_prompt *p = m->prompts;
	struct mon_source *s = mon_source_get(m, c->source, false);
	char *line = NULL;
	size_t len, cap = BK_ASK_LINE_MAX;
	int n, r;

	if (!p)
		return -ENOTCONN;
	if (s && s->n_asks >= m->cfg->max_asks_per_qube)
		return -EUSERS;
	line = malloc(cap);
	if (!line)
		return -ENOMEM;
	n = snprintf(line, cap, "ASK %u %s %s %s %s %s", c->id, c->source, c->service,
		     c->argument[0] ? c->argument : "-", c->requested_norm,
		     d->default_target ? d->default_target : "-");
	if (n < 0 || (size_t)n >= cap) {
		r = -E2BIG;
		goto out;
	}
	len = (size_t)n;
	for (size_t i = 0; i < d->n_targets; i++) {
		size_t k = strlen(d->targets[i]);

		if (len + 1 + k + 1 > cap) {
			r = -E2BIG;
			goto out;
		}
		line[len++] = ' ';
		memcpy(line + len, d->targets[i], k);
		len += k;
	}
	line[len++] = '\n';
	c->offered = calloc(d->n_targets ? d->n_targets : 1, sizeof(char *));
	if (!c->offered) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < d->n_targets; i++) {
		c->offered[i] = strdup(d->targets[i]);
		if (!c->offered[i]) {
			r = -ENOMEM;
			goto out;
		}
		c->n_offered = i + 1;
	}
	/* a prompt that does not keep up loses this question, not its
	 * connection: the other qubes' questions still reach it */
	r = prompt_queue(p, line, len, BK_ASK_OUT_MAX);
	if (r < 0)
		goto out;
	c->prompt = p;
	c->phase = MC_ASKING;
	c->deadline = bk_now_ms() + m->cfg->ask_timeout_ms;
	if (s)
		s->n_asks++;
	r = prompt_flush(m, p);
	if (r < 0)
		prompt_close(m, p, "write error"); /* denies C too */
	r = 0;
out:
	free(line);
	return r;
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
	c = mon_call_find(m, id);
	if (!c || c->phase != MC_ASKING || c->prompt != p) {
		bk_log("ask interface: reply for unknown or finished call %u ignored", id);
		return;
	}
	mon_ask_end(m, c, false);
	if (!allow) {
		snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
		mon_set_reason(c, "the user refused");
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	/* the choice must be one of the targets offered, exactly as offered
	 * (a rule's target= may offer uuid:UUID; its name is then not on
	 * offer, and the reverse) */
	bool offered = false;
	for (size_t i = 0; i < c->n_offered; i++)
		if (strcmp(c->offered[i], target) == 0)
			offered = true;
	mon_offered_free(c);
	if (!offered) {
		snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
		mon_set_reason(c, "the prompt chose %s, which was not offered", target);
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	snprintf(c->decision_word, sizeof(c->decision_word), "ask-allow");
	/* routed by the qube the choice stands for in the system info as it
	 * is now: uuid:UUID and @dispvm:uuid:UUID resolved to names, dom0 and
	 * @adminvm to dom0; a uuid: that is no qube (offered as a rule wrote
	 * it, or removed since) reaches no qube */
	if (m->policy_error) {
		mon_set_reason(c, "the user allowed target %s, but %s", target, m->policy_error);
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	char *name = NULL;
	int r = qpol_system_resolve_target(m->system, target, &name);
	if (r == -ENOENT || r == -EINVAL) {
		mon_set_reason(c, "the user allowed target %s, which %s", target,
			       r == -ENOENT ? "names no qube" : "is no qube or disposable");
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	if (r < 0) {
		mon_set_reason(c, "resolving target %s: %s", target, strerror(-r));
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (strcmp(name, target) == 0)
		mon_set_reason(c, "the user allowed target %s", target);
	else
		mon_set_reason(c, "the user allowed target %s (%s)", target, name);
	mon_call_go(m, c, name, target);
	free(name);
}

void mon_on_prompt_event(struct monitor *m, struct mon_prompt *p, uint32_t events)
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
		if (memchr(p->in, '\0', k - 1))
			bk_log("ask interface: reply with a NUL byte ignored");
		else
			prompt_on_line(m, p, p->in);
		memmove(p->in, p->in + k, p->in_len - k);
		p->in_len -= k;
	}
}

void mon_on_ask_accept(struct monitor *m)
{
	for (;;) {
		int fd = accept4(m->ask_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mon_prompt *p;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				mon_accept_pause(m, errno);
			return;
		}
		mon_accept_resumed(m);
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			return;
		}
		p->w = (struct mon_watch){ .kind = MK_ASK_CLIENT, .owner = p };
		p->fd = fd;
		bk_buf_init(&p->out, prompt_out_cap(m));
		if (mon_ep_add(m, fd, EPOLLIN, &p->w) < 0) {
			close(fd);
			free(p);
			return;
		}
		p->next = m->prompts;
		m->prompts = p;
		bk_log("ask interface: prompt program connected");
	}
}

/* ---- setup -------------------------------------------------------------------------------- */

int mon_ask_listen(struct monitor *m)
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
	return mon_ep_add(m, fd, EPOLLIN, &m->ask_w);
}

