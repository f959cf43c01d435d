/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the whole unpacker (qfc_unpack) on arbitrary streams,
 * into a scratch directory that is emptied after every input.  Checks that
 * nothing is ever created outside that directory's "in" subdirectory, that
 * no hidden temporary file is left behind and that every refusal says what
 * was refused.
 *
 * Input: one control byte, then the stream.  Control bit 0: before the
 * stream is unpacked, its per-file CRCs and its trailer (counts and stream
 * CRC) are rewritten to the right values, so that mutations of names,
 * types, modes and sizes reach the file system instead of stopping at a
 * checksum (with the bit clear, the CRC checks themselves are fuzzed).
 * Bit 1: resolve parents component by component (no openat2).  Bit 2:
 * hidden temporary names instead of O_TMPFILE.  Bit 3: name an O_TMPFILE
 * through /proc/self/fd only.
 */
#include "fc.h"
#include "unpack.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[256];
static char indir[300];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static int check_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	if (strncmp(p, indir, strlen(indir)) != 0 && strcmp(p, scratch) != 0)
		__builtin_trap(); /* something outside the incoming directory */
	if (strstr(p, ".qube-incoming-\xe2\x9a\xa0-"))
		__builtin_trap(); /* a temporary file left behind */
	return 0;
}

static void remove_scratch(void)
{
	nftw(scratch, rm_one, 16, FTW_PHYS | FTW_DEPTH);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* Walks d as the format says and writes the CRCs and counts it implies
 * (the stream CRC covers every byte before END but file data). */
static void fix_checksums(uint8_t *d, size_t n)
{
	size_t pos = QFC_STREAM_HEADER_SIZE, covered = 0;
	uint32_t crc = 0;
	uint64_t entries = 0, bytes = 0;
	while (pos + QFC_ENTRY_HEADER_SIZE <= n) {
		uint32_t type = get32(d + pos);
		uint64_t name_len = get32(d + pos + 8);
		uint64_t size = get64(d + pos + 16);
		if (type == QFC_T_END) {
			crc = qfc_crc32c(crc, d + covered, pos - covered);
			pos += QFC_ENTRY_HEADER_SIZE;
			if (pos + QFC_TRAILER_SIZE <= n) {
				put64(d + pos, entries);
				put64(d + pos + 8, bytes);
				put32(d + pos + 16, crc);
			}
			return;
		}
		pos += QFC_ENTRY_HEADER_SIZE;
		if (name_len > n - pos)
			return;
		pos += name_len;
		if (type == QFC_T_FILE || type == QFC_T_DIR || type == QFC_T_SYMLINK)
			entries++;
		if (type == QFC_T_FILE) {
			if (size > n - pos || n - pos - size < 4)
				return;
			crc = qfc_crc32c(crc, d + covered, pos - covered);
			put32(d + pos + size, qfc_crc32c(0, d + pos, (size_t)size));
			pos += size;
			covered = pos; /* the data is skipped, its CRC is covered */
			pos += 4;
			bytes += size;
		} else if (type == QFC_T_SYMLINK) {
			if (size > n - pos)
				return;
			pos += size;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!scratch[0]) {
		snprintf(scratch, sizeof(scratch), "%s/qfc-fuzz.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(scratch))
			abort();
		snprintf(indir, sizeof(indir), "%s/in", scratch);
		atexit(remove_scratch);
	}
	if (size < 1)
		return 0;
	uint8_t control = data[0];
	data++;
	size--;
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	if (control & 1)
		fix_checksums(copy, size);
	if (mkdir(indir, 0700) < 0)
		abort();
	int root = open(indir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int mfd = memfd_create("stream", MFD_CLOEXEC);
	if (root < 0 || mfd < 0)
		abort();
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(mfd, copy + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	free(copy);
	lseek(mfd, 0, SEEK_SET);
	struct qfc_limits l;
	qfc_limits_default(&l);
	l.max_entries = 200;
	l.max_depth = 16;
	l.max_bytes = 1 << 20;
	unsigned flags = ((control & 2) ? QFC_UNPACK_NO_OPENAT2 : 0) |
			 ((control & 4) ? QFC_UNPACK_NO_TMPFILE : 0) |
			 ((control & 8) ? QFC_UNPACK_NO_FLINK : 0);
	struct qfc_unpack_result res;
	int r = qfc_unpack(mfd, root, &l, flags, NULL, &res);
	if (r < 0 && !res.msg[0])
		__builtin_trap(); /* every refusal says what */
	if (r == 0 && res.status != 0)
		__builtin_trap();
	close(mfd);
	close(root);
	nftw(scratch, check_one, 16, FTW_PHYS);
	nftw(indir, rm_one, 16, FTW_PHYS | FTW_DEPTH);
	return 0;
}
