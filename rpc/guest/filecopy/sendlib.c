/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qube.Filecopy sender (send.h): walks, checks, streams, reads the
 * reply, and for a move deletes what the reply confirmed.
 */
#include "send.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (512u * 1024u)

struct item {
	char *src;  /* path to open (as given + below) */
	char *name; /* path in the stream */
	uint32_t type;
	struct stat st;
	uint64_t link_len; /* SYMLINK: bytes of its target when walked */
};

struct qfc_sender {
	struct item *items;
	size_t n, cap;
	struct qfc_limits l;
	const char *prog;
	bool quiet, progress;
	int out_fd;
	uint8_t *wbuf;
	size_t wlen;
	uint32_t crc;
	uint64_t entries, data_bytes, total_bytes, sent_bytes;
	uint64_t stream_size; /* header to trailer, from what was walked */
	struct timespec t0, tlast;
};

static int add_item(struct qfc_sender *s, const char *src, const char *name, uint32_t type,
		    const struct stat *st)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		struct item *ni = realloc(s->items, nc * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		s->items = ni;
		s->cap = nc;
	}
	struct item *it = &s->items[s->n];
	it->src = strdup(src);
	it->name = strdup(name);
	if (!it->src || !it->name) {
		free(it->src);
		free(it->name);
		return -ENOMEM;
	}
	it->type = type;
	it->st = *st;
	it->link_len = type == QFC_T_SYMLINK ? (uint64_t)st->st_size : 0;
	s->stream_size += QFC_ENTRY_HEADER_SIZE + strlen(name);
	if (type == QFC_T_FILE)
		s->stream_size += (uint64_t)st->st_size + 4;
	s->n++;
	return 0;
}

static int walk(struct qfc_sender *s, const char *src, const char *name, const struct stat *st,
		unsigned depth)
{
	char err[512];
	int r = qfc_path_check(name, strlen(name), &s->l, NULL, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s: %s: cannot be sent: %s\n", s->prog, src, err);
		return r;
	}
	if (S_ISREG(st->st_mode)) {
		s->total_bytes += (uint64_t)st->st_size;
		return add_item(s, src, name, QFC_T_FILE, st);
	}
	if (S_ISLNK(st->st_mode)) {
		char t[QFC_PATH_MAX + 1];
		ssize_t n = readlink(src, t, sizeof(t));
		if (n < 0 || (size_t)n >= sizeof(t)) {
			fprintf(stderr, "%s: %s: cannot read the symlink\n", s->prog, src);
			return -EINVAL;
		}
		if (qfc_symlink_check(name, strlen(name), t, (size_t)n, &s->l, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: %s: symlink cannot be sent (the receiver would refuse it): "
				"%s\n", s->prog, src, err);
			return -EINVAL;
		}
		struct stat lst = *st;
		lst.st_size = (off_t)n;
		r = add_item(s, src, name, QFC_T_SYMLINK, &lst);
		if (r == 0)
			s->stream_size += (uint64_t)n;
		return r;
	}
	if (!S_ISDIR(st->st_mode)) {
		fprintf(stderr, "%s: %s: not a regular file, directory or symlink\n", s->prog, src);
		return -EINVAL;
	}
	if ((r = add_item(s, src, name, QFC_T_DIR, st)) < 0)
		return r;
	DIR *d = opendir(src);
	if (!d) {
		fprintf(stderr, "%s: %s: %s\n", s->prog, src, strerror(errno));
		return -errno;
	}
	struct dirent *de;
	r = 0;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		size_t ls = strlen(src), ln = strlen(name), lc = strlen(de->d_name);
		char *csrc = malloc(ls + lc + 2), *cname = malloc(ln + lc + 2);
		if (!csrc || !cname) {
			free(csrc);
			free(cname);
			r = -ENOMEM;
			break;
		}
		sprintf(csrc, "%s/%s", src, de->d_name);
		sprintf(cname, "%s/%s", name, de->d_name);
		struct stat cst;
		if (lstat(csrc, &cst) < 0) {
			fprintf(stderr, "%s: %s: %s\n", s->prog, csrc, strerror(errno));
			r = -errno;
		} else {
			r = walk(s, csrc, cname, &cst, depth + 1);
		}
		free(csrc);
		free(cname);
	}
	closedir(d);
	if (r < 0)
		return r;
	return add_item(s, src, name, QFC_T_DIR_END, st);
}

/* ---- output ---- */

static int flush_out(struct qfc_sender *s)
{
	size_t off = 0;
	while (off < s->wlen) {
		ssize_t w = write(s->out_fd, s->wbuf + off, s->wlen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	s->wlen = 0;
	return 0;
}

static int emit(struct qfc_sender *s, const void *p, size_t n)
{
	s->crc = qfc_crc32c(s->crc, p, n);
	const uint8_t *b = p;
	while (n) {
		if (s->wlen == BUF_SIZE) {
			int r = flush_out(s);
			if (r < 0)
				return r;
		}
		size_t k = BUF_SIZE - s->wlen;
		if (k > n)
			k = n;
		memcpy(s->wbuf + s->wlen, b, k);
		s->wlen += k;
		b += k;
		n -= k;
	}
	return 0;
}

static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void show_progress(struct qfc_sender *s, bool final)
{
	if (!s->progress)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && elapsed(&s->tlast, &now) < 0.25)
		return;
	s->tlast = now;
	double t = elapsed(&s->t0, &now);
	fprintf(stderr, "\r%s: %" PRIu64 " entries, %.1f of %.1f MiB, %.1f MB/s   %s", s->prog,
		s->entries, (double)s->sent_bytes / 1048576.0, (double)s->total_bytes / 1048576.0,
		t > 0 ? (double)s->sent_bytes / 1e6 / t : 0.0, final ? "\n" : "");
}

static int send_item(struct qfc_sender *s, struct item *it)
{
	struct qfc_entry e = {
		.type = it->type,
		.mode = it->st.st_mode & 07777,
		.name_len = (uint32_t)strlen(it->name),
		.mtime_sec = it->st.st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)it->st.st_mtim.tv_nsec,
	};
	char target[QFC_PATH_MAX + 1];
	int fd = -1, r;
	if (it->type == QFC_T_FILE) {
		fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = -errno;
			fprintf(stderr, "%s: %s: %s\n", s->prog, it->src, strerror(errno));
			goto out;
		}
		if (st.st_ino != it->st.st_ino || st.st_dev != it->st.st_dev ||
		    st.st_size != it->st.st_size) {
			fprintf(stderr, "%s: %s: changed while being sent\n", s->prog, it->src);
			r = -ESTALE;
			goto out;
		}
		e.size = (uint64_t)st.st_size;
	} else if (it->type == QFC_T_SYMLINK) {
		ssize_t n = readlink(it->src, target, sizeof(target));
		if (n <= 0 || (size_t)n >= sizeof(target)) {
			fprintf(stderr, "%s: %s: cannot read the symlink\n", s->prog, it->src);
			return -EINVAL;
		}
		if ((uint64_t)n != it->link_len) {
			fprintf(stderr, "%s: %s: changed while being sent\n", s->prog, it->src);
			return -ESTALE;
		}
		e.size = (uint64_t)n;
		e.mode = 0777;
	}
	uint8_t h[QFC_ENTRY_HEADER_SIZE];
	qfc_entry_encode(&e, h);
	if ((r = emit(s, h, sizeof(h))) < 0 || (r = emit(s, it->name, e.name_len)) < 0)
		goto out;
	if (it->type == QFC_T_SYMLINK) {
		r = emit(s, target, (size_t)e.size);
	} else if (it->type == QFC_T_FILE) {
		/* data is read straight into the output buffer: small files
		 * share one write with their neighbours, big ones go out in
		 * full buffers, and nothing is copied twice */
		uint64_t left = e.size;
		uint32_t dcrc = 0;
		while (left) {
			if (s->wlen == BUF_SIZE && (r = flush_out(s)) < 0)
				goto out;
			size_t room = BUF_SIZE - s->wlen;
			size_t want = left < room ? (size_t)left : room;
			ssize_t n = read(fd, s->wbuf + s->wlen, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fprintf(stderr, "%s: %s: %s\n", s->prog, it->src,
					n < 0 ? strerror(errno) : "shrank while being sent");
				r = -EIO;
				goto out;
			}
			/* the stream CRC covers the file's CRC, not its data */
			dcrc = qfc_crc32c(dcrc, s->wbuf + s->wlen, (size_t)n);
			s->wlen += (size_t)n;
			left -= (uint64_t)n;
			s->sent_bytes += (uint64_t)n;
			show_progress(s, false);
		}
		uint8_t cb[4] = { (uint8_t)dcrc, (uint8_t)(dcrc >> 8), (uint8_t)(dcrc >> 16),
				  (uint8_t)(dcrc >> 24) };
		r = emit(s, cb, 4);
		s->data_bytes += e.size;
	}
	if (r == 0 && it->type != QFC_T_DIR_END)
		s->entries++;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int send_stream(struct qfc_sender *s)
{
	s->wbuf = malloc(BUF_SIZE);
	int r = -ENOMEM;
	if (!s->wbuf)
		goto out;
	uint8_t h[QFC_STREAM_HEADER_SIZE];
	qfc_stream_header_encode(h);
	if ((r = emit(s, h, sizeof(h))) < 0)
		goto out;
	for (size_t i = 0; i < s->n; i++) {
		if ((r = send_item(s, &s->items[i])) < 0)
			goto out;
		show_progress(s, false);
	}
	struct qfc_entry end = { .type = QFC_T_END };
	uint8_t eh[QFC_ENTRY_HEADER_SIZE], tb[QFC_TRAILER_SIZE];
	struct qfc_trailer t = { .entries = s->entries, .data_bytes = s->data_bytes, .crc = s->crc };
	qfc_entry_encode(&end, eh);
	qfc_trailer_encode(&t, tb);
	uint32_t sent_crc = s->crc;
	if ((r = emit(s, eh, sizeof(eh))) < 0 || (r = emit(s, tb, sizeof(tb))) < 0)
		goto out;
	r = flush_out(s);
	s->crc = sent_crc;
out:
	free(s->wbuf);
	s->wbuf = NULL;
	return r;
}

int qfc_sender_check_reply(struct qfc_sender *s, const uint8_t *buf, size_t len, bool *ret_got)
{
	*ret_got = false;
	if (len < QFC_REPLY_HEADER_SIZE)
		return -EPIPE;
	struct qfc_reply rep;
	char err[256];
	if (qfc_reply_decode(buf, &rep, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: the receiver's reply: %s\n", s->prog, err);
		return -EPROTO;
	}
	*ret_got = true;
	size_t ml = len - QFC_REPLY_HEADER_SIZE;
	if (ml > rep.msg_len)
		ml = rep.msg_len;
	/* the message comes from the other qube: show printable ASCII only */
	char untrusted_msg[QFC_REPLY_MAX_MSG + 1];
	for (size_t i = 0; i < ml; i++) {
		uint8_t c = buf[QFC_REPLY_HEADER_SIZE + i];
		untrusted_msg[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	untrusted_msg[ml] = 0;
	if (rep.status != 0) {
		fprintf(stderr, "%s: the receiver refused the transfer (%" PRIu64 " entries stored "
			"there): %s\n", s->prog, rep.entries, untrusted_msg);
		return -(int)(rep.status ? rep.status : EIO);
	}
	if (rep.entries != s->entries || rep.data_bytes != s->data_bytes || rep.crc != s->crc) {
		fprintf(stderr, "%s: the receiver confirmed %" PRIu64 " entries / %" PRIu64
			" bytes / CRC %08" PRIx32 ", sent %" PRIu64 " / %" PRIu64 " / %08" PRIx32
			": not confirmed\n", s->prog, rep.entries, rep.data_bytes, rep.crc, s->entries,
			s->data_bytes, s->crc);
		return -EBADMSG;
	}
	return 0;
}

int qfc_sender_read_reply(struct qfc_sender *s, int in_fd, bool *ret_got)
{
	uint8_t buf[QFC_REPLY_HEADER_SIZE + QFC_REPLY_MAX_MSG + 1];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(in_fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	return qfc_sender_check_reply(s, buf, len, ret_got);
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * Deletes what was sent, deepest first: only entries that are still what
 * was read before sending (same inode; a file or symlink also unchanged in
 * size, mtime and ctime).  A directory is removed only when empty, so
 * anything added to it meanwhile keeps it.
 */
int qfc_sender_delete_sent(struct qfc_sender *s)
{
	int ret = 0;
	for (size_t i = s->n; i-- > 0;) {
		struct item *it = &s->items[i];
		if (it->type == QFC_T_DIR_END)
			continue;
		struct stat st;
		if (lstat(it->src, &st) < 0 || st.st_ino != it->st.st_ino ||
		    st.st_dev != it->st.st_dev ||
		    (it->type != QFC_T_DIR &&
		     (st.st_size != it->st.st_size || !same_time(&st.st_mtim, &it->st.st_mtim) ||
		      !same_time(&st.st_ctim, &it->st.st_ctim)))) {
			fprintf(stderr, "%s: %s: changed after it was sent: not deleted\n", s->prog,
				it->src);
			ret = -ESTALE;
			continue;
		}
		int r = it->type == QFC_T_DIR ? rmdir(it->src) : unlink(it->src);
		if (r < 0) {
			fprintf(stderr, "%s: %s: not deleted: %s\n", s->prog, it->src, strerror(errno));
			ret = -errno;
		}
	}
	return ret;
}


struct qfc_sender *qfc_sender_new(const char *prog, bool quiet)
{
	struct qfc_sender *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->prog = prog;
	s->quiet = quiet;
	qfc_limits_default(&s->l);
	s->l.max_entries = UINT64_MAX;
	s->l.max_bytes = UINT64_MAX;
	/* stream header, END header, trailer */
	s->stream_size = QFC_STREAM_HEADER_SIZE + QFC_ENTRY_HEADER_SIZE + QFC_TRAILER_SIZE;
	return s;
}

void qfc_sender_free(struct qfc_sender *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].src);
		free(s->items[i].name);
	}
	free(s->items);
	free(s->wbuf);
	free(s);
}

int qfc_sender_add(struct qfc_sender *s, const char *path, bool move)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int r = 0;
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = 0;
	char *b = basename(copy);
	struct stat st, lst;
	/* a symlink named on the command line is sent as what it points
	 * to; a move would delete the link, not what was sent: refused */
	if (stat(path, &st) < 0) {
		r = -errno;
		fprintf(stderr, "%s: %s: %s\n", s->prog, path, strerror(errno));
	} else if (move && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		fprintf(stderr, "%s: %s: is a symlink; a move deletes what it sends: name the "
			"file it points to\n", s->prog, path);
		r = -EINVAL;
	} else if (strcmp(b, "/") == 0 || strcmp(b, ".") == 0 || strcmp(b, "..") == 0) {
		fprintf(stderr, "%s: %s: name a file or directory, not '%s'\n", s->prog, path, b);
		r = -EINVAL;
	} else {
		r = walk(s, path, b, &st, 1);
	}
	free(copy);
	return r;
}

uint64_t qfc_sender_stream_size(const struct qfc_sender *s)
{
	return s->stream_size;
}

int qfc_sender_send(struct qfc_sender *s, int out_fd)
{
	s->out_fd = out_fd;
	s->progress = !s->quiet && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	s->tlast = s->t0;
	int r = send_stream(s);
	show_progress(s, true);
	return r;
}

uint64_t qfc_sender_entries(const struct qfc_sender *s)
{
	return s->entries;
}

uint64_t qfc_sender_data_bytes(const struct qfc_sender *s)
{
	return s->data_bytes;
}
