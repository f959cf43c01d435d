/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the whole unpacker (qfc_unpack) on arbitrary streams,
 * into a scratch directory that is emptied after every input.  Checks that
 * nothing is ever created outside that directory's "in" subdirectory and
 * that no hidden temporary file is left behind.
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
		return rmdir(p) < 0 ? 0 : 0;
	unlink(p);
	return 0;
}

static int count_one(const char *p, const struct stat *st, int flag, struct FTW *f)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!scratch[0]) {
		snprintf(scratch, sizeof(scratch), "%s/qfc-fuzz.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(scratch))
			abort();
		snprintf(indir, sizeof(indir), "%s/in", scratch);
	}
	if (mkdir(indir, 0700) < 0)
		abort();
	int root = open(indir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int mfd = memfd_create("stream", MFD_CLOEXEC);
	if (root < 0 || mfd < 0)
		abort();
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(mfd, data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	lseek(mfd, 0, SEEK_SET);
	struct qfc_limits l;
	qfc_limits_default(&l);
	l.max_entries = 200;
	l.max_depth = 16;
	struct qfc_unpack_result res;
	int r = qfc_unpack(mfd, root, &l, 0, NULL, &res);
	if (r < 0 && !res.msg[0])
		__builtin_trap(); /* every refusal says what */
	close(mfd);
	close(root);
	nftw(scratch, count_one, 16, FTW_PHYS);
	nftw(indir, rm_one, 16, FTW_PHYS | FTW_DEPTH);
	return 0;
}
