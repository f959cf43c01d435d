/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube.Filecopy receiver.  Every name is checked (fc.c) before anything is
 * created; every parent directory is opened below the incoming directory
 * with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) (or component by
 * component with O_NOFOLLOW where openat2 is missing); file data goes to an
 * O_TMPFILE (or a hidden temporary name) that is linked under its real name
 * only when its data and CRC are complete; nothing is ever replaced.
 */
#include "unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_SIZE (256u * 1024u)
#define SPARSE_BLOCK 4096u

/*
 * A file's data as it arrives, in pieces of any size and alignment (see
 * sink_feed()).
 */
struct sink {
	int fd;
	uint64_t pos, end; /* see write_data() */
	size_t blen;
	uint8_t blk[SPARSE_BLOCK];
};

struct unpacker {
	int in_fd, root_fd;
	struct qfc_limits l;
	FILE *log;
	uint8_t *buf;       /* read buffer: [pos, len) not consumed */
	size_t pos, len;
	bool eof;
	uint32_t crc;       /* of every byte consumed so far but file data */
	uint64_t offset;    /* stream bytes consumed */
	uint64_t entries, data_bytes;
	uint64_t dirs, dir_ends; /* DIR entries created, DIR_END headers seen */
	/* current top-level entry: its name in the stream and on disk */
	bool have_top;
	uint32_t top_type;
	char top_orig[QFC_NAME_MAX + 1];
	char top_real[QFC_NAME_MAX + 1];
	/* cached parent directory (real relative path, "" = root) */
	char parent_path[QFC_PATH_MAX + 32];
	int parent_fd;
	bool have_openat2;
	bool have_tmpfile; /* O_TMPFILE and /proc/self/fd to link it */
	bool have_flink;   /* linkat(AT_EMPTY_PATH) of an O_TMPFILE works */
	mode_t umask;      /* the process's: files are created with their mode */
	unsigned tmp_counter;
	uint64_t collisions; /* see MAX_COLLISIONS */
	uint64_t renames;    /* top-level entries stored under another name */
	struct qfc_unpack_result *res;
	struct sink sink;
	qfc_unpack_progress_fn *progress; /* may be NULL */
	void *progress_ud;
	uint64_t received; /* stream bytes read */
};

static int fail(struct unpacker *u, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct unpacker *u, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(u->res->msg, sizeof(u->res->msg), fmt, ap);
	va_end(ap);
	u->res->status = code;
	return code;
}

/* Fills the buffer with at least one more byte; 0, or -errno; sets eof. */
static int fill(struct unpacker *u)
{
	if (u->pos == u->len)
		u->pos = u->len = 0;
	if (u->len == BUF_SIZE) {
		memmove(u->buf, u->buf + u->pos, u->len - u->pos);
		u->len -= u->pos;
		u->pos = 0;
	}
	for (;;) {
		ssize_t n = read(u->in_fd, u->buf + u->len, BUF_SIZE - u->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			u->eof = true;
		u->len += (size_t)n;
		u->received += (uint64_t)n;
		if (u->progress && n > 0)
			u->progress(u->progress_ud, u->received, u->entries);
		return 0;
	}
}

/* Consumes exactly n bytes into dst (may be NULL), updating the CRC.
 * Returns 0, -EPIPE at end of stream, or -errno. */
static int take(struct unpacker *u, void *dst, size_t n)
{
	uint8_t *d = dst;
	while (n) {
		if (u->pos == u->len) {
			int r = fill(u);
			if (r < 0)
				return r;
			if (u->eof && u->pos == u->len)
				return -EPIPE;
		}
		size_t k = u->len - u->pos;
		if (k > n)
			k = n;
		u->crc = qfc_crc32c(u->crc, u->buf + u->pos, k);
		if (d) {
			memcpy(d, u->buf + u->pos, k);
			d += k;
		}
		u->pos += k;
		u->offset += k;
		n -= k;
	}
	return 0;
}

static int cut(struct unpacker *u, int r, const char *where)
{
	if (r == -EPIPE)
		return fail(u, -EPIPE, "stream cut at byte %" PRIu64 " (%s) after %" PRIu64
			    " complete entries", u->offset, where, u->entries);
	return fail(u, r, "reading the stream: %s", strerror(-r));
}

/* ---- directories ---- */

static int open_beneath(struct unpacker *u, const char *path)
{
	if (u->have_openat2) {
		struct open_how how = {
			.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
				   RESOLVE_NO_XDEV,
		};
		long fd = syscall(SYS_openat2, u->root_fd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		u->have_openat2 = false;
	}
	/* fallback: one component at a time, never following a symlink */
	int fd = fcntl(u->root_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	const char *p = path;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		char comp[QFC_NAME_MAX + 1];
		if (n > QFC_NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return -e;
		fd = nfd;
		p += n + (slash ? 1 : 0);
	}
	return fd;
}

/* The parent directory's fd for real path rp (split at its last '/'). */
static int parent_of(struct unpacker *u, const char *rp, const char **ret_base)
{
	const char *slash = strrchr(rp, '/');
	size_t plen = slash ? (size_t)(slash - rp) : 0;
	*ret_base = slash ? slash + 1 : rp;
	if (u->parent_fd >= 0 && strlen(u->parent_path) == plen &&
	    memcmp(u->parent_path, rp, plen) == 0)
		return u->parent_fd;
	if (u->parent_fd >= 0 && u->parent_fd != u->root_fd)
		close(u->parent_fd);
	u->parent_fd = -1;
	int fd;
	if (plen == 0) {
		fd = u->root_fd;
	} else {
		char p[sizeof(u->parent_path)];
		memcpy(p, rp, plen);
		p[plen] = 0;
		fd = open_beneath(u, p);
		if (fd < 0)
			return fd;
	}
	memcpy(u->parent_path, rp, plen);
	u->parent_path[plen] = 0;
	u->parent_fd = fd;
	return fd;
}

static void forget_parent(struct unpacker *u)
{
	if (u->parent_fd >= 0 && u->parent_fd != u->root_fd)
		close(u->parent_fd);
	u->parent_fd = -1;
}

/* Candidate i for a top-level name: 0 the name itself, then "base.i.ext"
 * (or "name.i" without an extension).  -ENAMETOOLONG when it does not fit. */
static int suffixed(const char *name, unsigned i, const struct qfc_limits *l, char *out,
		    size_t outlen)
{
	if (i == 0) {
		snprintf(out, outlen, "%s", name);
		return 0;
	}
	const char *dot = strrchr(name, '.');
	if (!dot || dot == name)
		dot = name + strlen(name);
	int n = snprintf(out, outlen, "%.*s.%u%s", (int)(dot - name), name, i, dot);
	if (n < 0 || (size_t)n >= outlen || (uint32_t)n > l->max_name)
		return -ENAMETOOLONG;
	return 0;
}

#define MAX_SUFFIX 10000u
/* Names tried and found taken, over a whole transfer: a stream repeating
 * one top-level name would otherwise cost a number of tries that grows
 * with the square of its length. */
#define MAX_COLLISIONS 100000u

/* Reports a top-level entry stored under another name: the first few by
 * name, then only their number (qfc_unpack()). */
#define RENAMES_LOGGED 20u

static void note_rename(struct unpacker *u, const char *name, const char *stored)
{
	if (u->log && ++u->renames <= RENAMES_LOGGED)
		fprintf(u->log, "qube.Filecopy: '%s' exists, stored as '%s'\n", name, stored);
}

/* Counts one taken name; false when the transfer has used up its tries. */
static bool may_try_again(struct unpacker *u)
{
	return ++u->collisions <= MAX_COLLISIONS;
}

/* ---- entries ---- */

/* Maps a checked stream path to its real relative path: the top-level
 * component becomes the current top's on-disk name. */
static int map_path(struct unpacker *u, const char *path, unsigned depth, char *out, size_t outlen)
{
	const char *slash = strchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : strlen(path);
	if (!u->have_top || strlen(u->top_orig) != n || memcmp(u->top_orig, path, n) != 0)
		return fail(u, -EPROTO, "entry '%s' is not inside the current top-level entry "
			    "(entries must follow their top-level directory)", path);
	if (depth > 1 && u->top_type != QFC_T_DIR)
		return fail(u, -ENOTDIR, "entry '%s': its top-level entry is not a directory", path);
	int k = snprintf(out, outlen, "%s%s", u->top_real, slash ? slash : "");
	if (k < 0 || (size_t)k >= outlen)
		return fail(u, -ENAMETOOLONG, "entry '%s': path too long once renamed", path);
	return 0;
}

/*
 * Names an O_TMPFILE: linkat(AT_EMPTY_PATH) where the kernel lets the
 * file's opener do that (Linux 6.10 and later; before, it takes
 * CAP_DAC_READ_SEARCH), else through /proc/self/fd (checked to exist before
 * O_TMPFILE is used at all).  The first refusal of AT_EMPTY_PATH settles it
 * for the transfer.
 */
static int link_tmpfile(struct unpacker *u, int fd, int pfd, const char *base)
{
	if (u->have_flink) {
		if (linkat(fd, "", pfd, base, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != ENOENT && errno != EPERM)
			return -errno;
		u->have_flink = false;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, pfd, base, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return -errno;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	if (n == 0 || p[0] || memcmp(p, p + 1, n - 1) != 0)
		return false;
	return true;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes data of one file at *pos; whole aligned 4 KiB blocks of zeros
 * become holes.  *end: where the last byte actually written ends (when it
 * is short of the size, ftruncate makes the trailing hole). */
static int write_data(int fd, const uint8_t *p, size_t n, uint64_t *pos, uint64_t *end)
{
	if (n == 0)
		return 0;
	size_t run = 0, i = 0; /* pending write: [run, i) */
	int r;
	while (i < n) {
		size_t k = SPARSE_BLOCK - (size_t)((*pos + i) % SPARSE_BLOCK);
		if (k > n - i)
			k = n - i;
		if (k == SPARSE_BLOCK && all_zero(p + i, k)) {
			if ((r = write_all(fd, p + run, i - run)) < 0)
				return r;
			if (i > run)
				*end = *pos + i;
			if (lseek(fd, (off_t)k, SEEK_CUR) < 0)
				return -errno;
			i += k;
			run = i;
		} else {
			i += k;
		}
	}
	if ((r = write_all(fd, p + run, n - run)) < 0)
		return r;
	if (n > run)
		*end = *pos + n;
	*pos += n;
	return 0;
}

/*
 * A file's data goes to an unnamed O_TMPFILE, or where that is missing to a
 * hidden temporary name: QFC_TMP_PREFIX holds U+26A0, a character no name in
 * a stream may contain, so no entry can ever collide with one.
 */
#define QFC_TMP_PREFIX ".qube-incoming-\xe2\x9a\xa0-"

static int open_tmp(struct unpacker *u, int pfd, mode_t mode, char *tmpname, size_t len)
{
	tmpname[0] = 0;
	if (u->have_tmpfile) {
		int fd = openat(pfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
		if (fd >= 0)
			return fd;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -errno;
		u->have_tmpfile = false; /* this file system: hidden names from now on */
	}
	for (int tries = 0; tries < 100; tries++) {
		snprintf(tmpname, len, QFC_TMP_PREFIX "%u-%u", (unsigned)getpid(), u->tmp_counter++);
		int fd = openat(pfd, tmpname, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
				mode);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			break;
	}
	int r = -errno;
	tmpname[0] = 0;
	return r;
}

/* Gives the complete file fd its name target in pfd; never replaces. */
static int place(struct unpacker *u, int fd, int pfd, const char *tmpname, const char *target)
{
	if (!tmpname[0])
		return link_tmpfile(u, fd, pfd, target);
	if (renameat2(pfd, tmpname, pfd, target, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* no RENAME_NOREPLACE here: a link never replaces either */
	if (linkat(pfd, tmpname, pfd, target, 0) < 0)
		return -errno;
	unlinkat(pfd, tmpname, 0);
	return 0;
}

/*
 * Whole blocks go to write_data() straight from the piece; a block split
 * between pieces is gathered in blk first, so that holes are found wherever
 * the stream happened to be cut into reads.
 */
static int sink_feed(struct sink *k, const uint8_t *p, size_t n)
{
	int r;
	while (n) {
		if (k->blen == 0 && n >= SPARSE_BLOCK) {
			size_t whole = n - n % SPARSE_BLOCK;
			if ((r = write_data(k->fd, p, whole, &k->pos, &k->end)) < 0)
				return r;
			p += whole;
			n -= whole;
			continue;
		}
		size_t c = SPARSE_BLOCK - k->blen < n ? SPARSE_BLOCK - k->blen : n;
		memcpy(k->blk + k->blen, p, c);
		k->blen += c;
		p += c;
		n -= c;
		if (k->blen == SPARSE_BLOCK) {
			if ((r = write_data(k->fd, k->blk, SPARSE_BLOCK, &k->pos, &k->end)) < 0)
				return r;
			k->blen = 0;
		}
	}
	return 0;
}

/* The last, partial block; then the size (a trailing hole). */
static int sink_finish(struct sink *k, uint64_t size)
{
	int r = write_data(k->fd, k->blk, k->blen, &k->pos, &k->end);
	k->blen = 0;
	if (r < 0)
		return r;
	if (k->end < size && ftruncate(k->fd, (off_t)size) < 0)
		return -errno;
	return 0;
}

static int recv_file(struct unpacker *u, const struct qfc_entry *e, const char *name,
		     const char *rp, bool top)
{
	const char *base;
	int pfd = parent_of(u, rp, &base);
	if (pfd < 0)
		return fail(u, pfd, "file '%s': cannot open its directory: %s", name, strerror(-pfd));
	/* created with its final mode (setuid, setgid and sticky masked off);
	 * fchmod only where the umask took bits away */
	mode_t mode = (mode_t)(e->mode & 0777);
	char tmpname[64];
	int fd = open_tmp(u, pfd, mode, tmpname, sizeof(tmpname));
	if (fd < 0)
		return fail(u, fd, "file '%s': cannot create: %s", name, strerror(-fd));
	int r = 0;
	uint32_t dcrc = 0;
	uint64_t left = e->size;
	struct sink *k = &u->sink;
	k->fd = fd;
	k->pos = k->end = 0;
	k->blen = 0;
	while (left) {
		if (u->pos == u->len) {
			r = fill(u);
			if (r < 0) {
				r = cut(u, r, "file data");
				goto err_close;
			}
			if (u->eof && u->pos == u->len) {
				r = fail(u, -EPIPE, "stream cut inside the data of file '%s' (%" PRIu64
					 " of %" PRIu64 " bytes) after %" PRIu64 " complete entries",
					 name, e->size - left, e->size, u->entries);
				goto err_close;
			}
		}
		size_t n = u->len - u->pos;
		if (n > left)
			n = (size_t)left;
		const uint8_t *p = u->buf + u->pos;
		dcrc = qfc_crc32c(dcrc, p, n); /* the stream CRC covers dcrc, not the data */
		r = sink_feed(k, p, n);
		if (r < 0)
			goto err_write;
		u->pos += n;
		u->offset += n;
		left -= n;
	}
	r = sink_finish(k, e->size);
	if (r < 0)
		goto err_write;
	uint8_t cb[4];
	r = take(u, cb, 4);
	if (r < 0) {
		r = cut(u, r, "file CRC");
		goto err_close;
	}
	uint32_t untrusted_crc = (uint32_t)cb[0] | (uint32_t)cb[1] << 8 | (uint32_t)cb[2] << 16 |
				 (uint32_t)cb[3] << 24;
	if (untrusted_crc != dcrc) {
		r = fail(u, -EBADMSG, "file '%s': CRC mismatch (sent %08" PRIx32 ", data %08" PRIx32
			 "): not stored", name, untrusted_crc, dcrc);
		goto err_close;
	}
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = (time_t)e->mtime_sec, .tv_nsec = e->mtime_nsec } };
	if (((mode & u->umask) && fchmod(fd, mode) < 0) || futimens(fd, ts) < 0) {
		r = -errno;
		fail(u, r, "file '%s': setting mode/mtime: %s", name, strerror(-r));
		goto err_close;
	}
	/* into place, never over anything */
	char cand[QFC_NAME_MAX + 1];
	for (unsigned i = 0;; i++) {
		const char *target = base;
		if (top) {
			if (i >= MAX_SUFFIX || suffixed(u->top_orig, i, &u->l, cand, sizeof(cand)) < 0) {
				r = fail(u, -EEXIST, "file '%s': no free name in the incoming directory",
					 name);
				goto err_close;
			}
			target = cand;
		}
		r = place(u, fd, pfd, tmpname, target);
		if (r == 0) {
			if (top) {
				snprintf(u->top_real, sizeof(u->top_real), "%s", cand);
				if (i > 0)
					note_rename(u, name, cand);
			}
			tmpname[0] = 0;
			break;
		}
		if (r != -EEXIST || !top) {
			fail(u, r, "file '%s': %s", name,
			     r == -EEXIST ? "exists already in this transfer (refused)" : strerror(-r));
			goto err_close;
		}
		if (!may_try_again(u)) {
			r = fail(u, -EEXIST, "file '%s': more than %u names found taken in this transfer: "
				 "refused", name, MAX_COLLISIONS);
			goto err_close;
		}
	}
	close(fd);
	return 0;

err_write:
	fail(u, r, "file '%s': writing at byte %" PRIu64 ": %s%s", name, k->pos, strerror(-r),
	     r == -ENOSPC || r == -EDQUOT ? " (stopped; no partial file is left under its name)" :
					    "");
err_close:
	if (tmpname[0])
		unlinkat(pfd, tmpname, 0);
	close(fd);
	return r;
}

static int recv_dir(struct unpacker *u, const char *name, const char *rp, bool top)
{
	const char *base;
	int pfd = parent_of(u, rp, &base);
	if (pfd < 0)
		return fail(u, pfd, "directory '%s': cannot open its parent: %s", name, strerror(-pfd));
	char cand[QFC_NAME_MAX + 1];
	for (unsigned i = 0;; i++) {
		const char *target = base;
		if (top) {
			if (i >= MAX_SUFFIX || suffixed(u->top_orig, i, &u->l, cand, sizeof(cand)) < 0)
				return fail(u, -EEXIST, "directory '%s': no free name", name);
			target = cand;
		}
		if (mkdirat(pfd, target, 0700) == 0) {
			u->dirs++;
			if (top) {
				snprintf(u->top_real, sizeof(u->top_real), "%s", cand);
				if (i > 0)
					note_rename(u, name, cand);
			}
			return 0;
		}
		int e = errno;
		if (e != EEXIST || !top)
			return fail(u, -e, "directory '%s': %s", name,
				    e == EEXIST ? "exists already in this transfer (refused)" : strerror(e));
		if (!may_try_again(u))
			return fail(u, -EEXIST, "directory '%s': more than %u names found taken in this "
				    "transfer: refused", name, MAX_COLLISIONS);
	}
}

static int recv_dir_end(struct unpacker *u, const struct qfc_entry *e, const char *name,
			const char *rp)
{
	forget_parent(u);
	int fd = open_beneath(u, rp);
	if (fd < 0)
		return fail(u, fd, "directory end '%s': %s", name, strerror(-fd));
	/* O_PATH fds do not take fchmod/futimens: reopen the directory itself */
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(fd);
	if (dfd < 0)
		return fail(u, -errno, "directory end '%s': %s", name, strerror(errno));
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = (time_t)e->mtime_sec, .tv_nsec = e->mtime_nsec } };
	int r = 0;
	if (fchmod(dfd, (e->mode & 0777) | 0700) < 0 || futimens(dfd, ts) < 0)
		r = fail(u, -errno, "directory end '%s': %s", name, strerror(errno));
	close(dfd);
	return r;
}

static int recv_symlink(struct unpacker *u, const struct qfc_entry *e, const char *name,
			const char *rp)
{
	char untrusted_target[QFC_PATH_MAX + 1];
	int r = take(u, untrusted_target, (size_t)e->size);
	if (r < 0)
		return cut(u, r, "symlink target");
	untrusted_target[e->size] = 0;
	char err[512];
	r = qfc_symlink_check(name, strlen(name), untrusted_target, (size_t)e->size, &u->l, err,
			      sizeof(err));
	if (r < 0)
		return fail(u, r, "symlink '%s': %s", name, err);
	const char *target = untrusted_target; /* validated above */
	const char *base;
	int pfd = parent_of(u, rp, &base);
	if (pfd < 0)
		return fail(u, pfd, "symlink '%s': cannot open its directory: %s", name, strerror(-pfd));
	if (symlinkat(target, pfd, base) < 0)
		return fail(u, -errno, "symlink '%s': %s", name,
			    errno == EEXIST ? "exists already in this transfer (refused)" : strerror(errno));
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = (time_t)e->mtime_sec, .tv_nsec = e->mtime_nsec } };
	if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(u, -errno, "symlink '%s': setting mtime: %s", name, strerror(errno));
	return 0;
}

static int unpack_stream(struct unpacker *u)
{
	uint8_t hdr[QFC_ENTRY_HEADER_SIZE];
	char err[512];
	int r = take(u, hdr, QFC_STREAM_HEADER_SIZE);
	if (r < 0)
		return cut(u, r, "stream header");
	r = qfc_stream_header_decode(hdr, err, sizeof(err));
	if (r < 0)
		return fail(u, r, "%s", err);
	char untrusted_name[QFC_PATH_MAX + 1];
	char rp[QFC_PATH_MAX + 32];
	for (;;) {
		uint32_t crc_before = u->crc;
		r = take(u, hdr, QFC_ENTRY_HEADER_SIZE);
		if (r < 0)
			return cut(u, r, "entry header");
		struct qfc_entry e;
		r = qfc_entry_decode(hdr, &u->l, &e, err, sizeof(err));
		if (r < 0)
			return fail(u, r, "entry header at byte %" PRIu64 ": %s",
				    u->offset - QFC_ENTRY_HEADER_SIZE, err);
		if (e.type == QFC_T_END) {
			uint8_t tb[QFC_TRAILER_SIZE];
			struct qfc_trailer t;
			r = take(u, tb, QFC_TRAILER_SIZE);
			if (r < 0)
				return cut(u, r, "trailer");
			r = qfc_trailer_decode(tb, &t, err, sizeof(err));
			if (r < 0)
				return fail(u, r, "%s", err);
			if (t.crc != crc_before)
				return fail(u, -EBADMSG,
					    "stream CRC mismatch (sent %08" PRIx32 ", computed %08" PRIx32
					    "): the transfer is not confirmed",
					    t.crc, crc_before);
			if (t.entries != u->entries || t.data_bytes != u->data_bytes)
				return fail(u, -EBADMSG,
					    "trailer says %" PRIu64 " entries / %" PRIu64 " bytes, received %"
					    PRIu64 " / %" PRIu64, t.entries, t.data_bytes, u->entries,
					    u->data_bytes);
			/* nothing may follow */
			if (u->pos == u->len && !u->eof) {
				r = fill(u);
				if (r < 0)
					return fail(u, r, "reading the stream: %s", strerror(-r));
			}
			if (u->pos != u->len)
				return fail(u, -EPROTO, "bytes after the end of the stream: refused");
			u->res->crc = crc_before;
			return 0;
		}
		r = take(u, untrusted_name, e.name_len);
		if (r < 0)
			return cut(u, r, "entry name");
		untrusted_name[e.name_len] = 0;
		unsigned depth;
		r = qfc_path_check(untrusted_name, e.name_len, &u->l, &depth, err, sizeof(err));
		if (r < 0)
			return fail(u, r, "entry name refused: %s", err);
		const char *name = untrusted_name; /* validated: safe to print and use */
		bool top = depth == 1 && e.type != QFC_T_DIR_END;
		/* every header costs the sender an entry: a directory end needs
		 * a directory of its own */
		if (e.type == QFC_T_DIR_END && u->dir_ends++ >= u->dirs)
			return fail(u, -EPROTO, "directory end '%s' refused: more directory ends than "
				    "directories", name);
		if (e.type != QFC_T_DIR_END) {
			if (u->entries + 1 > u->l.max_entries)
				return fail(u, -E2BIG, "entry '%s': more than %" PRIu64
					    " entries refused (max-entries)", name, u->l.max_entries);
			if (e.type == QFC_T_FILE && e.size > u->l.max_bytes - u->data_bytes)
				return fail(u, -EFBIG, "file '%s' (%" PRIu64 " bytes): the transfer "
					    "would exceed max-bytes %" PRIu64 "; stopped after %" PRIu64
					    " entries", name, e.size, u->l.max_bytes, u->entries);
		}
		if (top) {
			u->have_top = true;
			u->top_type = e.type;
			/* depth 1: one component, at most QFC_NAME_MAX bytes (checked) */
			size_t nlen = strlen(name);

			if (nlen >= sizeof(u->top_orig))
				return fail(u, -ENAMETOOLONG, "entry name refused: too long");
			memcpy(u->top_orig, name, nlen + 1);
			memcpy(u->top_real, name, nlen + 1);
			snprintf(rp, sizeof(rp), "%s", name);
		} else {
			r = map_path(u, name, depth, rp, sizeof(rp));
			if (r < 0)
				return r;
		}
		switch (e.type) {
		case QFC_T_FILE:
			r = recv_file(u, &e, name, rp, top);
			break;
		case QFC_T_DIR:
			r = recv_dir(u, name, rp, top);
			break;
		case QFC_T_SYMLINK:
			r = recv_symlink(u, &e, name, rp);
			break;
		case QFC_T_DIR_END:
			r = recv_dir_end(u, &e, name, rp);
			break;
		}
		if (r < 0)
			return r;
		if (e.type != QFC_T_DIR_END) {
			u->entries++;
			if (e.type == QFC_T_FILE)
				u->data_bytes += e.size;
			u->res->entries = u->entries;
			u->res->data_bytes = u->data_bytes;
		}
	}
}

int qfc_unpack(int in_fd, int root_fd, const struct qfc_limits *limits, unsigned flags,
	       FILE *log, struct qfc_unpack_result *res)
{
	return qfc_unpack_progress(in_fd, root_fd, limits, flags, log, res, NULL, NULL);
}

int qfc_unpack_progress(int in_fd, int root_fd, const struct qfc_limits *limits, unsigned flags,
			FILE *log, struct qfc_unpack_result *res, qfc_unpack_progress_fn *progress,
			void *progress_ud)
{
	memset(res, 0, sizeof(*res));
	struct unpacker u = {
		.in_fd = in_fd,
		.root_fd = root_fd,
		.l = *limits,
		.log = log,
		.parent_fd = -1,
		.have_openat2 = !(flags & QFC_UNPACK_NO_OPENAT2),
		.res = res,
		.progress = progress,
		.progress_ud = progress_ud,
	};
	/* an O_TMPFILE is linked through /proc/self/fd (linkat AT_EMPTY_PATH
	 * needs a capability on older kernels): without /proc, hidden names */
	struct stat st;
	u.have_tmpfile = !(flags & QFC_UNPACK_NO_TMPFILE) && stat("/proc/self/fd", &st) == 0;
	u.have_flink = !(flags & QFC_UNPACK_NO_FLINK);
	u.umask = umask(0);
	umask(u.umask);
	u.buf = malloc(BUF_SIZE);
	if (!u.buf) {
		snprintf(res->msg, sizeof(res->msg), "out of memory");
		return res->status = -ENOMEM;
	}
	int r = unpack_stream(&u);
	if (u.log && u.renames > RENAMES_LOGGED)
		fprintf(u.log, "qube.Filecopy: %" PRIu64 " more entries stored under a new name\n",
			u.renames - RENAMES_LOGGED);
	forget_parent(&u);
	free(u.buf);
	res->status = r;
	return r;
}
