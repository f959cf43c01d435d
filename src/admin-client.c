/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl's client of the qubesd wire (see admin-client.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin-client.h"

/* Copies n bytes into a NUL-terminated heap string, control bytes and DEL
 * as '?', so that nothing qubed relays can drive the user's terminal. */
static char *dup_printable(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7f ? '?' : (char)p[i];
	s[n] = '\0';
	return s;
}

char *qc_format_message(const char *fmt, const char *const *args, size_t n_args)
{
	size_t cap = strlen(fmt) + 1, len = 0, next = 0;
	char *out;

	for (size_t i = 0; i < n_args; i++) {
		size_t l = strlen(args[i]);
		if (cap > SIZE_MAX - l)
			return NULL;
		cap += l;
	}
	out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			out[len++] = *p;
			continue;
		}
		if (p[1] == '%') {
			out[len++] = '%';
			p++;
			continue;
		}
		/* a Python %-conversion: flags, width, precision, then a letter */
		const char *q = p + 1;
		while (*q && strchr("#0- +.123456789", *q))
			q++;
		if (*q && strchr("sdirfgxXeEcoau", *q) && next < n_args) {
			size_t l = strlen(args[next]);
			memcpy(out + len, args[next], l);
			len += l;
			next++;
			p = q;
			continue;
		}
		out[len++] = '%';
	}
	out[len] = '\0';
	return out;
}

int qc_reply_parse(const uint8_t *untrusted_buf, size_t len, struct qc_reply *ret)
{
	struct qc_reply r = { 0 };
	const char *fields[4 + 256];
	size_t fl[4 + 256], n_fields = 0, pos;

	if (len == 0)
		return -ENODATA;
	if (len < 2 || untrusted_buf[1] != '\0')
		return -EBADMSG;
	if (untrusted_buf[0] == '0') {
		r.kind = QC_REPLY_OK;
		r.len = len - 2;
		r.data = malloc(r.len + 1);
		if (!r.data)
			return -ENOMEM;
		memcpy(r.data, untrusted_buf + 2, r.len);
		r.data[r.len] = '\0';
		*ret = r;
		return 0;
	}
	if (untrusted_buf[0] != '2')
		return -EBADMSG;
	/* "2\0" TYPE "\0" TRACEBACK "\0" FORMAT "\0" (ARG "\0")* : every field
	 * NUL-terminated, nothing after the last NUL */
	pos = 2;
	while (pos < len) {
		const uint8_t *nul = memchr(untrusted_buf + pos, '\0', len - pos);
		if (!nul)
			return -EBADMSG; /* truncated: a field without its NUL */
		if (n_fields == sizeof(fields) / sizeof(fields[0]))
			return -EBADMSG;
		fields[n_fields] = (const char *)untrusted_buf + pos;
		fl[n_fields] = (size_t)(nul - (untrusted_buf + pos));
		if (fl[n_fields] > QC_MAX_FIELD)
			return -EBADMSG;
		n_fields++;
		pos = (size_t)(nul - untrusted_buf) + 1;
	}
	if (n_fields < 3 || fl[0] == 0)
		return -EBADMSG;
	/* the type is an identifier */
	for (size_t i = 0; i < fl[0]; i++) {
		char ch = fields[0][i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '.'))
			return -EBADMSG;
	}

	char *fmt = NULL, *args[sizeof(fields) / sizeof(fields[0])] = { NULL };
	size_t n_args = 0;
	int err = -ENOMEM;

	r.kind = QC_REPLY_EXCEPTION;
	r.exc_type = dup_printable((const uint8_t *)fields[0], fl[0]);
	fmt = dup_printable((const uint8_t *)fields[2], fl[2]);
	if (!r.exc_type || !fmt)
		goto err_free;
	for (size_t i = 3; i < n_fields; i++) {
		args[n_args] = dup_printable((const uint8_t *)fields[i], fl[i]);
		if (!args[n_args])
			goto err_free_args;
		n_args++;
	}
	r.exc_message = qc_format_message(fmt, (const char *const *)args, n_args);
	if (!r.exc_message)
		goto err_free_args;
	for (size_t i = 0; i < n_args; i++)
		free(args[i]);
	free(fmt);
	*ret = r;
	return 0;

err_free_args:
	for (size_t i = 0; i < n_args; i++)
		free(args[i]);
err_free:
	free(fmt);
	free(r.exc_type);
	return err;
}

void qc_reply_finish(struct qc_reply *r)
{
	if (!r)
		return;
	free(r->data);
	free(r->exc_type);
	free(r->exc_message);
	memset(r, 0, sizeof(*r));
}

int qc_event_parse(const uint8_t *untrusted_buf, size_t len, struct qc_event *ret,
		   size_t *ret_used)
{
	struct qc_event e = { 0 };
	const uint8_t *f[2 + 2 * QC_MAX_EVENT_KEYS];
	size_t fl[2 + 2 * QC_MAX_EVENT_KEYS], n = 0, pos = 2;
	bool done = false;

	if (len < 1)
		return -EAGAIN;
	if (untrusted_buf[0] != '1')
		return -EBADMSG;
	if (len < 2)
		return -EAGAIN;
	if (untrusted_buf[1] != '\0')
		return -EBADMSG;
	while (!done) {
		const uint8_t *nul;
		size_t avail = len - pos;

		nul = memchr(untrusted_buf + pos, '\0', avail);
		if (!nul)
			return avail > QC_MAX_FIELD ? -EBADMSG : -EAGAIN;
		size_t l = (size_t)(nul - (untrusted_buf + pos));
		if (l > QC_MAX_FIELD)
			return -EBADMSG;
		/* an empty field where a key would start ends the event */
		if (n >= 2 && n % 2 == 0 && l == 0) {
			done = true;
		} else {
			if (n == sizeof(f) / sizeof(f[0]))
				return -EBADMSG;
			f[n] = untrusted_buf + pos;
			fl[n] = l;
			n++;
		}
		pos += l + 1;
	}
	if (fl[1] == 0)
		return -EBADMSG;
	e.subject = dup_printable(f[0], fl[0]);
	e.name = dup_printable(f[1], fl[1]);
	if (!e.subject || !e.name)
		goto err_free;
	for (size_t i = 2; i + 1 < n; i += 2) {
		e.keys[e.n_keys] = dup_printable(f[i], fl[i]);
		e.values[e.n_keys] = dup_printable(f[i + 1], fl[i + 1]);
		if (!e.keys[e.n_keys] || !e.values[e.n_keys]) {
			e.n_keys++;
			goto err_free;
		}
		e.n_keys++;
	}
	*ret = e;
	*ret_used = pos;
	return 0;

err_free:
	qc_event_finish(&e);
	return -ENOMEM;
}

void qc_event_finish(struct qc_event *e)
{
	if (!e)
		return;
	free(e->subject);
	free(e->name);
	for (size_t i = 0; i < e->n_keys; i++) {
		free(e->keys[i]);
		free(e->values[i]);
	}
	memset(e, 0, sizeof(*e));
}

void qc_call_init(struct qc_call *c, const char *socket, const char *method, const char *arg,
		  const char *dest)
{
	memset(c, 0, sizeof(*c));
	c->socket = socket;
	c->method = method;
	c->arg = arg;
	c->dest = dest;
	c->payload_fd = -1;
	c->timeout_ms = -1;
}

static bool is_wire_token(const char *s, bool may_be_empty)
{
	if (!s || (!*s && !may_be_empty))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static int connect_socket(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*ret_fd = fd;
	return 0;
}

/* 0, or -EPIPE when the peer stopped reading, or another -errno. */
static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_file(int sock, int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		int r = send_all(sock, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static unsigned elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static int send_request(int fd, const struct qc_call *c)
{
	char *head;
	int n, r;

	n = asprintf(&head, "%s+%s dom0 name %s", c->method, c->arg ? c->arg : "", c->dest);
	if (n < 0)
		return -ENOMEM;
	r = send_all(fd, head, (size_t)n + 1); /* with its NUL */
	free(head);
	if (r == 0 && c->payload_len > 0)
		r = send_all(fd, c->payload, c->payload_len);
	if (r == 0 && c->payload_fd >= 0)
		r = send_file(fd, c->payload_fd);
	if (r == 0 && shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN)
		r = -errno;
	return r;
}

int qc_admin_call(const struct qc_call *c, struct qc_reply *ret)
{
	struct timespec t0;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = -1, r;

	if (!is_wire_token(c->method, false) || !is_wire_token(c->arg ? c->arg : "", true) ||
	    !is_wire_token(c->dest, false) || strchr(c->method, '+'))
		return -EINVAL;
	if (c->payload_fd < 0 &&
	    strlen(c->method) + 1 + (c->arg ? strlen(c->arg) : 0) + 11 + strlen(c->dest) + 1 +
			    c->payload_len > QC_MAX_REQUEST)
		return -E2BIG;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = connect_socket(c->socket, &fd);
	if (r < 0)
		return r;
	r = send_request(fd, c);
	if (r < 0 && r != -EPIPE)
		goto out_close;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int wait = 100;
		unsigned el = elapsed_ms(&t0);

		if (c->timeout_ms >= 0) {
			if (el >= (unsigned)c->timeout_ms) {
				r = -ETIMEDOUT;
				goto out_close;
			}
			if ((unsigned)c->timeout_ms - el < (unsigned)wait)
				wait = (int)((unsigned)c->timeout_ms - el);
		}
		r = poll(&p, 1, wait);
		if (r < 0 && errno != EINTR) {
			r = -errno;
			goto out_close;
		}
		if (r <= 0) {
			if (c->tick)
				c->tick(c->tick_userdata, elapsed_ms(&t0));
			continue;
		}
		if (cap - len < 65536) {
			if (cap >= QC_MAX_REPLY) {
				r = -EMSGSIZE;
				goto out_close;
			}
			size_t ncap = cap ? cap * 2 : 65536 * 2;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				r = -ENOMEM;
				goto out_close;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* a reset after a complete reply is still that reply */
			if (errno == ECONNRESET && len > 0)
				break;
			r = -errno;
			goto out_close;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = qc_reply_parse(buf, len, ret);
out_close:
	free(buf);
	close(fd);
	return r;
}

int qc_admin_open_events(const char *socket, int *ret_fd)
{
	struct qc_call c;
	int fd, r;

	qc_call_init(&c, socket, "admin.Events", NULL, "dom0");
	r = connect_socket(socket, &fd);
	if (r < 0)
		return r;
	r = send_request(fd, &c);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static void progress_tick(void *userdata, unsigned ms)
{
	static const char spin[] = "|/-\\";
	struct qc_progress *p = userdata;

	if (ms < 1000)
		return;
	fprintf(stderr, "\r%c %s %s... %us", spin[(ms / 100) % 4], p->verb, p->name, ms / 1000);
	fflush(stderr);
	p->shown = true;
}

void qc_progress_attach(struct qc_call *c, struct qc_progress *p, const char *verb,
			const char *name)
{
	*p = (struct qc_progress){ .verb = verb, .name = name };
	if (verb && isatty(STDERR_FILENO)) {
		c->tick = progress_tick;
		c->tick_userdata = p;
	}
}

void qc_progress_end(struct qc_progress *p)
{
	if (!p->shown)
		return;
	fprintf(stderr, "\r\033[K");
	fflush(stderr);
	p->shown = false;
}
