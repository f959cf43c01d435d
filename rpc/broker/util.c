/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker: helpers shared by the monitor and the sandbox: the IPC
 * record transport, byte buffers, the small line parsers (pure, fuzzed by
 * tests/rpc/fuzz-broker-lines.c) and logging.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"

/* ---- IPC ------------------------------------------------------------------- */

int bk_ipc_send(int sock, const struct bk_ipc *rec, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)rec, .iov_len = sizeof(*rec) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	memset(&control, 0, sizeof(control));
	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(*rec))
		return -EIO;
	return 0;
}

int bk_ipc_recv(int sock, struct bk_ipc *ret_rec, int *ret_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} control;
	struct bk_ipc rec;
	struct iovec iov = { .iov_base = &rec, .iov_len = sizeof(rec) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cm;
	int fd = -1, nfds = 0, r = 0;
	ssize_t n;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (nfds++ == 0)
				fd = got;
			else
				close(got);
		}
	}
	if ((size_t)n == sizeof(rec) && nfds == 0 && !(mh.msg_flags & MSG_TRUNC) &&
	    (mh.msg_flags & MSG_CTRUNC)) {
		/* a whole record whose fd did not fit: this process is at its
		 * fd limit.  An error of that one record, not of the socket. */
		*ret_rec = rec;
		*ret_fd = -1;
		return -EMFILE;
	}
	if ((size_t)n != sizeof(rec) || nfds > 1 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		r = -EBADMSG;
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	*ret_rec = rec;
	*ret_fd = fd;
	return 0;
}

int bk_ipc_queue_push(struct bk_ipc_queue *q, const struct bk_ipc *rec, int fd)
{
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 64;
		struct bk_ipc_item *p;

		if (ncap > SIZE_MAX / sizeof(*p))
			goto err_close;
		p = malloc(ncap * sizeof(*p));
		if (!p)
			goto err_close;
		for (size_t i = 0; i < q->n; i++)
			p[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = p;
		q->cap = ncap;
		q->head = 0;
	}
	q->items[(q->head + q->n) % q->cap] = (struct bk_ipc_item){ .rec = *rec, .fd = fd };
	q->n++;
	return 0;
err_close:
	if (fd >= 0)
		close(fd);
	return -ENOMEM;
}

int bk_ipc_queue_flush(struct bk_ipc_queue *q, int sock)
{
	while (q->n > 0) {
		struct bk_ipc_item *it = &q->items[q->head];
		int r = bk_ipc_send(sock, &it->rec, it->fd);

		if (r == -EAGAIN || r == -ENOBUFS)
			return -EAGAIN;
		if (r < 0)
			return r;
		if (it->fd >= 0)
			close(it->fd);
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	return 0;
}

void bk_ipc_queue_finish(struct bk_ipc_queue *q)
{
	for (size_t i = 0; i < q->n; i++) {
		struct bk_ipc_item *it = &q->items[(q->head + i) % q->cap];

		if (it->fd >= 0)
			close(it->fd);
	}
	free(q->items);
	*q = (struct bk_ipc_queue){ 0 };
}

bool bk_string_fits(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* ---- Buffers --------------------------------------------------------------- */

void bk_buf_init(struct bk_buf *b, size_t max)
{
	*b = (struct bk_buf){ .max = max };
}

void bk_buf_finish(struct bk_buf *b)
{
	free(b->data);
	*b = (struct bk_buf){ .max = b->max };
}

size_t bk_buf_room(const struct bk_buf *b)
{
	return b->max - bk_buf_len(b);
}

uint8_t *bk_buf_reserve(struct bk_buf *b, size_t n)
{
	size_t len = bk_buf_len(b);

	if (n > b->max - len)
		return NULL;
	if (b->cap - b->end >= n)
		return b->data + b->end;
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, len);
		b->start = 0;
		b->end = len;
		if (b->cap - b->end >= n)
			return b->data + b->end;
	}
	/* grow: at least double, at least len + n, at most max */
	size_t want = b->cap ? b->cap * 2 : 4096;
	if (want < len + n)
		want = len + n;
	if (want > b->max)
		want = b->max;
	uint8_t *p = realloc(b->data, want);
	if (!p)
		return NULL;
	b->data = p;
	b->cap = want;
	return b->data + b->end;
}

void bk_buf_consume(struct bk_buf *b, size_t n)
{
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}

void bk_buf_shrink(struct bk_buf *b)
{
	if (bk_buf_len(b) == 0 && b->cap > 0)
		bk_buf_finish(b);
}

/* ---- Line parsers ------------------------------------------------------------ */

int bk_hybrid_ok_parse(const uint8_t *untrusted_buf, size_t len, size_t *ret_used)
{
	size_t i, ndigits = 0;
	uint64_t value = 0;

	for (i = 0; i < len && i < BK_HYBRID_LINE_MAX; i++) {
		uint8_t c = untrusted_buf[i];

		if (i == 0 && c != 'O')
			return -EPROTO;
		if (i == 1 && c != 'K')
			return -EPROTO;
		if (i == 2 && c != ' ')
			return -EPROTO;
		if (i < 3)
			continue;
		if (c == '\n') {
			if (ndigits == 0)
				return -EPROTO;
			*ret_used = i + 1;
			return 0;
		}
		if (c < '0' || c > '9' || ++ndigits > 10)
			return -EPROTO;
		/* a port: u32, whatever the digit count allows */
		value = value * 10 + (uint64_t)(c - '0');
		if (value > UINT32_MAX)
			return -EPROTO;
	}
	return i >= BK_HYBRID_LINE_MAX ? -EPROTO : -EAGAIN;
}

/* Splits LINE (copied into BUF) at single spaces into at most MAX fields. */
static int split_fields(const char *line, char *buf, size_t cap, char **fields, size_t max,
			size_t *ret_n)
{
	size_t len = strlen(line), n = 0;
	char *p;

	if (len == 0 || len >= cap)
		return -EBADMSG;
	memcpy(buf, line, len + 1);
	p = buf;
	for (;;) {
		char *sp = strchr(p, ' ');

		if (n == max)
			return -EBADMSG;
		fields[n++] = p;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (fields[i][0] == '\0')
			return -EBADMSG;
	*ret_n = n;
	return 0;
}

/* The prompt's call ids: at most 10 digits (no zero padding beyond that). */
static int parse_u32(const char *s, uint32_t *ret)
{
	if (strlen(s) > 10 || qrpc_parse_u32(s, ret) < 0)
		return -EBADMSG;
	return 0;
}

int bk_ask_reply_parse(const char *line, uint32_t *ret_id, bool *ret_allow,
		       char ret_target[QRPC_MAX_TARGET + 1])
{
	char buf[BK_LINE_MAX];
	char *f[4];
	size_t n;
	uint32_t id;

	if (split_fields(line, buf, sizeof(buf), f, 4, &n) < 0)
		return -EBADMSG;
	if (n >= 2 && parse_u32(f[1], &id) < 0)
		return -EBADMSG;
	if (n == 2 && strcmp(f[0], "DENY") == 0) {
		*ret_id = id;
		*ret_allow = false;
		ret_target[0] = '\0';
		return 0;
	}
	if (n == 3 && strcmp(f[0], "ALLOW") == 0) {
		if (strlen(f[2]) > QRPC_MAX_TARGET || !qrpc_target_is_valid(f[2]))
			return -EBADMSG;
		*ret_id = id;
		*ret_allow = true;
		strcpy(ret_target, f[2]);
		return 0;
	}
	return -EBADMSG;
}

int bk_start_reply_parse(const char *line, char ret_name[QRPC_MAX_QUBE + 1], char *ret_msg,
			 size_t msg_cap)
{
	if (strncmp(line, "OK ", 3) == 0) {
		const char *name = line + 3;

		if (strlen(name) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(name))
			return -EBADMSG;
		strcpy(ret_name, name);
		return 0;
	}
	if (strncmp(line, "ERROR ", 6) == 0 || strcmp(line, "ERROR") == 0) {
		const char *m = line[5] ? line + 6 : "";
		size_t i;

		if (msg_cap == 0)
			return -EHOSTDOWN;
		for (i = 0; m[i] && i + 1 < msg_cap; i++)
			ret_msg[i] = (m[i] >= 0x20 && m[i] < 0x7f) ? m[i] : '?';
		ret_msg[i] = '\0';
		return -EHOSTDOWN;
	}
	return -EBADMSG;
}

void bk_quote(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	if (cap < 3) {
		if (cap)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[5];
		size_t k;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			k = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			k = 4;
		} else {
			esc[0] = (char)c;
			k = 1;
		}
		if (o + k + 2 > cap)
			break;
		memcpy(out + o, esc, k);
		o += k;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* ---- Logging ------------------------------------------------------------------- */

static int log_fd = 2;
static char log_ident[32] = "qube-broker";

int bk_log_open(const char *path, const char *ident)
{
	if (ident)
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (!path) {
		log_fd = 2;
		return 0;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	log_fd = fd;
	return 0;
}

void bk_log_set_ident(const char *ident)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
}

int bk_log_fd(void)
{
	return log_fd;
}

static void log_va(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void log_va(const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;

	/* CLOCK_REALTIME via the vDSO; gmtime_r touches no file (no TZ). */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	k = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, log_ident);
	if (k < 0)
		return;
	n = (size_t)k;
	k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (k < 0)
		return;
	n += (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, n);
	(void)w;
}

void bk_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(fmt, ap);
	va_end(ap);
}

/* Per-qube log budget: LOG_SOURCE_SLOTS qubes tracked (the least recently
 * logging one is forgotten first: its budget restarts, which costs at most
 * one more window's worth of lines). */
#define LOG_SOURCE_SLOTS 256
#define LOG_WINDOW_MS 10000u

struct log_source {
	char name[QRPC_MAX_QUBE + 1];
	uint64_t window, last;
	unsigned lines, suppressed;
};
static struct log_source log_sources[LOG_SOURCE_SLOTS];
static unsigned log_source_limit = 100;

void bk_log_set_source_limit(unsigned lines_per_window)
{
	log_source_limit = lines_per_window;
}

static void log_source_summary(struct log_source *s)
{
	if (s->suppressed > 0)
		bk_log("qube %s: %u log lines suppressed (more than %u in %u s)", s->name,
		       s->suppressed, log_source_limit, LOG_WINDOW_MS / 1000);
	s->suppressed = 0;
}

void bk_log_source(const char *source, const char *fmt, ...)
{
	uint64_t now = bk_now_ms();
	struct log_source *s = NULL, *empty = NULL, *oldest = &log_sources[0];
	va_list ap;

	for (size_t i = 0; i < LOG_SOURCE_SLOTS; i++) {
		struct log_source *e = &log_sources[i];

		if (!e->name[0]) {
			if (!empty)
				empty = e;
		} else if (strcmp(e->name, source) == 0) {
			s = e;
			break;
		} else if (e->last < oldest->last) {
			oldest = e;
		}
	}
	if (!s) {
		s = empty ? empty : oldest;
		if (s->name[0])
			log_source_summary(s);
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", source);
		s->window = now;
	}
	s->last = now;
	if (now - s->window >= LOG_WINDOW_MS) {
		log_source_summary(s);
		s->window = now;
		s->lines = 0;
	}
	if (s->lines >= log_source_limit) {
		s->suppressed++;
		return;
	}
	s->lines++;
	va_start(ap, fmt);
	log_va(fmt, ap);
	va_end(ap);
}

void bk_log_source_flush(void)
{
	uint64_t now = bk_now_ms();

	for (size_t i = 0; i < LOG_SOURCE_SLOTS; i++) {
		struct log_source *s = &log_sources[i];

		if (s->name[0] && s->suppressed > 0 && now - s->window >= LOG_WINDOW_MS) {
			log_source_summary(s);
			s->window = now;
			s->lines = 0;
		}
	}
}

uint64_t bk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
