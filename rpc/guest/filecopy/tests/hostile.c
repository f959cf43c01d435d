/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * filecopy-hostile-sender CASE: writes a qube.Filecopy stream built by hand
 * on stdout, as a fully hostile sender would.  `list` prints the cases.
 * `valid --boundaries` prints the byte offset of every header boundary of
 * the valid stream instead (the test cuts the stream at each).
 */
#include "fc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *out;
static size_t olen, ocap;
static uint32_t crc;
static uint64_t n_entries, n_bytes;
static size_t bounds[64];
static size_t nbounds;

/* Appends bytes; put_raw for file data, which only its file's CRC covers,
 * put for everything else, which the stream CRC covers too. */
static void put_raw(const void *p, size_t n)
{
	if (olen + n > ocap) {
		ocap = (olen + n) * 2 + 4096;
		out = realloc(out, ocap);
		if (!out)
			exit(3);
	}
	memcpy(out + olen, p, n);
	olen += n;
}

static void put(const void *p, size_t n)
{
	put_raw(p, n);
	crc = qfc_crc32c(crc, p, n);
}

static void flush(void)
{
	size_t off = 0;
	while (off < olen) {
		ssize_t w = write(1, out + off, olen - off);
		if (w <= 0)
			exit(0); /* the receiver stopped reading: fine */
		off += (size_t)w;
	}
	olen = 0;
}

static void mark(void)
{
	if (nbounds < 64)
		bounds[nbounds++] = olen;
}

static void start(void)
{
	uint8_t h[QFC_STREAM_HEADER_SIZE];
	qfc_stream_header_encode(h);
	put(h, sizeof(h));
	mark();
}

static int64_t mtime_sec = 1700000000;
static uint32_t mtime_nsec = 123;

static void header(uint32_t type, uint32_t mode, const char *name, size_t nlen, uint64_t size)
{
	struct qfc_entry e = { .type = type, .mode = mode, .name_len = (uint32_t)nlen, .size = size,
			       .mtime_sec = mtime_sec, .mtime_nsec = mtime_nsec };
	uint8_t h[QFC_ENTRY_HEADER_SIZE];
	qfc_entry_encode(&e, h);
	put(h, sizeof(h));
	mark();
	put(name, nlen);
	mark();
}

static void put_crc(uint32_t c)
{
	uint8_t b[4] = { (uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16), (uint8_t)(c >> 24) };
	put(b, 4);
}

/* a file with `size` bytes of pattern; sent_size bytes actually sent */
static void file_lying(const char *name, uint64_t size, uint64_t sent, bool good_crc)
{
	header(QFC_T_FILE, 0644, name, strlen(name), size);
	uint8_t buf[65536];
	uint32_t dc = 0;
	for (uint64_t off = 0; off < sent;) {
		size_t k = sent - off < sizeof(buf) ? (size_t)(sent - off) : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = (uint8_t)('A' + (off + i) % 23);
		put_raw(buf, k); /* file data: only in the file's CRC */
		dc = qfc_crc32c(dc, buf, k);
		off += k;
		if (olen > (1u << 20))
			flush();
	}
	mark();
	put_crc(good_crc ? dc : dc ^ 1);
	mark();
	n_entries++;
	n_bytes += size;
}

static void file(const char *name, uint64_t size)
{
	file_lying(name, size, size, true);
}

static void dir(const char *name)
{
	header(QFC_T_DIR, 0755, name, strlen(name), 0);
	n_entries++;
}

static void dir_end(const char *name)
{
	header(QFC_T_DIR_END, 0755, name, strlen(name), 0);
}

static void symlink_(const char *name, const char *target)
{
	header(QFC_T_SYMLINK, 0777, name, strlen(name), strlen(target));
	put(target, strlen(target));
	mark();
	n_entries++;
}

static void end_with(uint32_t c, uint64_t entries)
{
	uint8_t h[QFC_ENTRY_HEADER_SIZE], t[QFC_TRAILER_SIZE];
	struct qfc_entry e = { .type = QFC_T_END };
	qfc_entry_encode(&e, h);
	struct qfc_trailer tr = { .entries = entries, .data_bytes = n_bytes, .crc = c };
	qfc_trailer_encode(&tr, t);
	put(h, sizeof(h));
	mark();
	put(t, sizeof(t));
}

static void end(void)
{
	end_with(crc, n_entries);
}

static const char *const cases[] = {
	"valid", "dotdot", "absolute", "write-through-symlink", "symlink-out-dotdot",
	"symlink-out-absolute", "symlink-then-file", "hardlink-type", "file-then-dir",
	"nul-name", "newline-name", "bidi-name", "zero-width-name", "overlong-component",
	"overlong-path", "deep-path", "size-short", "size-long", "file-crc", "stream-crc",
	"trailer-count", "million", "total-over-limit", "version-2", "stream-flags",
	"trailing-bytes", "top-symlink", "interleaved-top", "mode-bits", "dir-end-outside",
	"empty-stream", "same-top-twice", "extra-dir-ends", "mtime-extremes", "temp-name",
	"same-top-many", "symlink-chain-out", NULL,
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CASE [--boundaries] | list\n", argv[0]);
		return 2;
	}
	const char *c = argv[1];
	if (strcmp(c, "list") == 0) {
		for (int i = 0; cases[i]; i++)
			printf("%s\n", cases[i]);
		return 0;
	}
	if (strcmp(c, "empty-stream") == 0)
		return 0;
	if (strcmp(c, "version-2") == 0 || strcmp(c, "stream-flags") == 0) {
		uint8_t h[QFC_STREAM_HEADER_SIZE];
		qfc_stream_header_encode(h);
		if (c[0] == 'v')
			h[4] = 2;
		else
			h[8] = 1;
		put(h, sizeof(h));
		flush();
		return 0;
	}
	start();
	if (strcmp(c, "valid") == 0) {
		dir("t");
		file("t/a", 1000);
		dir("t/sub");
		file("t/sub/b", 70000);
		symlink_("t/sub/l", "../a");
		dir_end("t/sub");
		dir_end("t");
		file("top", 10);
		end();
	} else if (strcmp(c, "dotdot") == 0) {
		dir("t");
		file("t/../../escaped-dotdot", 10);
		end();
	} else if (strcmp(c, "absolute") == 0) {
		file("/tmp/escaped-absolute", 10);
		end();
	} else if (strcmp(c, "write-through-symlink") == 0) {
		dir("t");
		dir("t/d");
		symlink_("t/s", "d");
		file("t/s/through", 10);
		end();
	} else if (strcmp(c, "symlink-out-dotdot") == 0) {
		dir("t");
		symlink_("t/s", "../../..");
		end();
	} else if (strcmp(c, "symlink-out-absolute") == 0) {
		dir("t");
		symlink_("t/s", "/etc");
		end();
	} else if (strcmp(c, "symlink-then-file") == 0) {
		dir("t");
		dir("t/d");
		symlink_("t/s", "d/f");
		file("t/s", 10);
		end();
	} else if (strcmp(c, "hardlink-type") == 0) {
		dir("t");
		header(6, 0644, "t/h", 3, 0);
		end();
	} else if (strcmp(c, "file-then-dir") == 0) {
		dir("t");
		file("t/x", 10);
		dir("t/x");
		file("t/x/y", 10);
		end();
	} else if (strcmp(c, "nul-name") == 0) {
		dir("t");
		header(QFC_T_FILE, 0644, "t/a\0b", 5, 0);
		put_crc(0);
		end();
	} else if (strcmp(c, "newline-name") == 0) {
		dir("t");
		file("t/a\nb", 1);
		end();
	} else if (strcmp(c, "bidi-name") == 0) {
		dir("t");
		file("t/invoice\xe2\x80\xae" "fdp.exe", 1);
		end();
	} else if (strcmp(c, "zero-width-name") == 0) {
		dir("t");
		file("t/pay\xe2\x80\x8bpal", 1);
		end();
	} else if (strcmp(c, "overlong-component") == 0) {
		char n[400] = "t/";
		memset(n + 2, 'x', 300);
		n[302] = 0;
		dir("t");
		file(n, 1);
		end();
	} else if (strcmp(c, "overlong-path") == 0) {
		static char n[6000];
		size_t o = 0;
		while (o < 5000) {
			memcpy(n + o, "dddddddd/", 9);
			o += 9;
		}
		n[o - 1] = 0;
		header(QFC_T_DIR, 0755, n, strlen(n), 0);
		end();
	} else if (strcmp(c, "deep-path") == 0) {
		static char n[4096];
		size_t o = 0;
		dir("t");
		memcpy(n, "t", 2);
		o = 1;
		for (int d = 0; d < 300 && o + 3 < sizeof(n); d++) {
			memcpy(n + o, "/d", 3);
			o += 2;
			dir(n);
		}
		end();
	} else if (strcmp(c, "size-short") == 0) {
		/* says 10 bytes, sends 100: the extra bytes are read as the CRC
		 * and the next header */
		dir("t");
		header(QFC_T_FILE, 0644, "t/short", 7, 10);
		for (int i = 0; i < 100; i++)
			put("Z", 1);
		end();
	} else if (strcmp(c, "size-long") == 0) {
		dir("t");
		file_lying("t/long", 100000, 500, true);
		end();
	} else if (strcmp(c, "file-crc") == 0) {
		dir("t");
		file("t/good", 100);
		file_lying("t/badcrc", 5000, 5000, false);
		end();
	} else if (strcmp(c, "stream-crc") == 0) {
		dir("t");
		file("t/a", 100);
		end_with(crc ^ 0x10, n_entries);
	} else if (strcmp(c, "trailer-count") == 0) {
		dir("t");
		file("t/a", 100);
		end_with(crc, n_entries + 5);
	} else if (strcmp(c, "million") == 0) {
		dir("t");
		char n[32];
		for (int i = 0; i < 1000000; i++) {
			snprintf(n, sizeof(n), "t/%d", i);
			file(n, 0);
			if (olen > (1u << 20))
				flush();
		}
		end();
	} else if (strcmp(c, "total-over-limit") == 0) {
		dir("t");
		file("t/one", 600000);
		file("t/two", 600000);
		end();
	} else if (strcmp(c, "trailing-bytes") == 0) {
		dir("t");
		file("t/a", 10);
		end();
		put("more", 4);
	} else if (strcmp(c, "top-symlink") == 0) {
		symlink_("link", "t");
		end();
	} else if (strcmp(c, "interleaved-top") == 0) {
		dir("a");
		dir("b");
		file("a/late", 10);
		end();
	} else if (strcmp(c, "mode-bits") == 0) {
		dir("t");
		header(QFC_T_FILE, 04755, "t/suid", 6, 0);
		put_crc(0);
		header(QFC_T_FILE, 0100644, "t/typed", 7, 0);
		put_crc(0);
		end();
	} else if (strcmp(c, "dir-end-outside") == 0) {
		dir("t");
		dir_end("other");
		end();
	} else if (strcmp(c, "same-top-twice") == 0) {
		file("dup", 10);
		file("dup", 20);
		end();
	} else if (strcmp(c, "extra-dir-ends") == 0) {
		/* directory ends cost no entry: one each, no more */
		dir("t");
		dir_end("t");
		dir_end("t");
		end();
	} else if (strcmp(c, "mtime-extremes") == 0) {
		/* the oldest, the newest and a negative time a header can say */
		dir("t");
		mtime_sec = INT64_MIN;
		file("t/oldest", 1);
		mtime_sec = INT64_MAX;
		mtime_nsec = 999999999;
		file("t/newest", 1);
		mtime_sec = -1;
		file("t/before-1970", 1);
		mtime_sec = 1700000000;
		mtime_nsec = 123;
		end();
	} else if (strcmp(c, "temp-name") == 0) {
		/* the receiver's hidden temporary names hold U+26A0, which no
		 * name may: a sender cannot take or overwrite one */
		dir("t");
		file("t/.qube-incoming-\xe2\x9a\xa0-1-0", 10);
		end();
	} else if (strcmp(c, "same-top-many") == 0) {
		/* one top-level name 20,000 times: each new copy would try every
		 * suffix taken before it */
		for (int i = 0; i < 20000; i++) {
			file("dup", 0);
			if (olen > (1u << 20))
				flush();
		}
		end();
	} else if (strcmp(c, "symlink-chain-out") == 0) {
		/* each link stays inside t by itself; followed one after the
		 * other they still do: t/a/l -> ../b, t/b -> a/l would loop,
		 * and no chain can climb above t */
		dir("t");
		dir("t/a");
		symlink_("t/a/up", "..");
		symlink_("t/a/l", "up/../..");
		end();
	} else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	if (argc > 2 && strcmp(argv[2], "--boundaries") == 0) {
		for (size_t i = 0; i < nbounds; i++)
			printf("%zu\n", bounds[i]);
		printf("%zu\n", olen);
		return 0;
	}
	flush();
	return 0;
}
