/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qube.Filecopy receiver: unpacks a stream below a directory fd. */
#ifndef QUBE_FILECOPY_UNPACK_H
#define QUBE_FILECOPY_UNPACK_H

#include "fc.h"

#include <stdio.h>

struct qfc_unpack_result {
	uint64_t entries;    /* entries stored completely */
	uint64_t data_bytes; /* their data bytes */
	uint32_t crc;        /* stream CRC (meaningful on success) */
	int status;          /* 0 or a negative errno */
	char msg[1024];      /* what was refused or failed, with the entry's name */
};

enum {
	QFC_UNPACK_NO_OPENAT2 = 1 << 0, /* resolve component by component (tests) */
	QFC_UNPACK_NO_TMPFILE = 1 << 1, /* hidden temporary names, not O_TMPFILE (tests) */
	QFC_UNPACK_NO_FLINK = 1 << 2,   /* link an O_TMPFILE through /proc only (tests) */
};

/*
 * Reads a stream from in_fd and creates its entries below root_fd (the
 * incoming directory, which must hold nothing the sender may name except
 * through this call).  Renames of top-level entries (an existing name is
 * never replaced) are reported on log (may be NULL).  Returns 0 on a
 * complete, verified stream, else a negative errno; res is filled either way.
 */
int qfc_unpack(int in_fd, int root_fd, const struct qfc_limits *limits, unsigned flags,
	       FILE *log, struct qfc_unpack_result *res);

/* Called after every read of the stream: bytes read so far, entries stored
 * so far.  It runs inside the unpacker (in the receiver's sandbox). */
typedef void qfc_unpack_progress_fn(void *userdata, uint64_t stream_bytes, uint64_t entries);

/* qfc_unpack() with a progress callback (may be NULL). */
int qfc_unpack_progress(int in_fd, int root_fd, const struct qfc_limits *limits, unsigned flags,
			FILE *log, struct qfc_unpack_result *res, qfc_unpack_progress_fn *progress,
			void *progress_ud);

#endif
