/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube.Filecopy: the stream format (docs/filecopy.md) and the pure checks
 * the receiver applies to every header, name and symlink target before it
 * touches the file system.  Nothing in here does I/O.
 */
#ifndef QUBE_FILECOPY_FC_H
#define QUBE_FILECOPY_FC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QFC_MAGIC "QFCP"
#define QFC_REPLY_MAGIC "QFCR"
#define QFC_VERSION 1u

#define QFC_STREAM_HEADER_SIZE 16u
#define QFC_ENTRY_HEADER_SIZE 32u
#define QFC_TRAILER_SIZE 24u
#define QFC_REPLY_HEADER_SIZE 32u
#define QFC_REPLY_MAX_MSG 4096u

/* Hard caps of the format (a setting may only lower them). */
#define QFC_NAME_MAX 255u   /* bytes of one path component */
#define QFC_PATH_MAX 4095u  /* bytes of a whole path or symlink target */
#define QFC_DEPTH_MAX 256u  /* components of a path */

enum qfc_type {
	QFC_T_FILE = 1,
	QFC_T_DIR = 2,
	QFC_T_SYMLINK = 3,
	QFC_T_DIR_END = 4, /* a directory's contents are complete: set its mode and mtime */
	QFC_T_END = 5,     /* end of the stream: a trailer follows */
};

struct qfc_entry {
	uint32_t type;
	uint32_t mode;  /* permission bits only (0..07777) */
	uint32_t name_len;
	uint32_t mtime_nsec;
	uint64_t size;  /* FILE: data bytes; SYMLINK: target bytes; else 0 */
	int64_t mtime_sec;
};

struct qfc_trailer {
	uint64_t entries;    /* FILE + DIR + SYMLINK entries sent */
	uint64_t data_bytes; /* sum of FILE sizes */
	uint32_t crc;        /* CRC32C of every stream byte before the END header except
				file data (each file's own CRC32C, which is covered, covers it) */
	uint32_t reserved;   /* 0 */
};

struct qfc_reply {
	uint32_t status;     /* 0 success, else a positive errno */
	uint32_t msg_len;    /* bytes of message after the header */
	uint64_t entries;    /* entries stored completely */
	uint64_t data_bytes; /* data bytes stored in those entries */
	uint32_t crc;        /* CRC32C the receiver computed (valid on success) */
	uint32_t reserved;
};

struct qfc_limits {
	uint64_t max_entries;
	uint64_t max_bytes;
	uint32_t max_depth;
	uint32_t max_path;
	uint32_t max_name;
};

void qfc_limits_default(struct qfc_limits *l);

/* CRC32C (Castagnoli); hardware instruction when the CPU has SSE4.2. */
uint32_t qfc_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table-driven path alone (tests compare it with the instruction). */
uint32_t qfc_crc32c_software(uint32_t crc, const void *buf, size_t len);

/* Encoders: write exactly *_SIZE bytes. */
void qfc_stream_header_encode(uint8_t out[QFC_STREAM_HEADER_SIZE]);
void qfc_entry_encode(const struct qfc_entry *e, uint8_t out[QFC_ENTRY_HEADER_SIZE]);
void qfc_trailer_encode(const struct qfc_trailer *t, uint8_t out[QFC_TRAILER_SIZE]);
void qfc_reply_encode(const struct qfc_reply *r, uint8_t out[QFC_REPLY_HEADER_SIZE]);

/*
 * Decoders of untrusted bytes.  Each returns 0, or -EPROTO / -EINVAL with a
 * message in err (always NUL-terminated) that says what was refused.
 */
int qfc_stream_header_decode(const uint8_t *untrusted, char *err, size_t errlen);
int qfc_entry_decode(const uint8_t *untrusted, const struct qfc_limits *l,
		     struct qfc_entry *ret_e, char *err, size_t errlen);
int qfc_trailer_decode(const uint8_t *untrusted, struct qfc_trailer *ret_t, char *err,
		       size_t errlen);
int qfc_reply_decode(const uint8_t *untrusted, struct qfc_reply *ret_r, char *err,
		     size_t errlen);

/* One code point of the allow-list (docs/filecopy.md, "Names"). */
bool qfc_code_point_is_allowed(uint32_t cp);

/*
 * A path as it may appear in the stream: canonical, relative, 1..max_path
 * bytes, components 1..max_name bytes of well-formed UTF-8 from the
 * allow-list, no "." or "..", at most max_depth components.  Returns 0 or
 * -EILSEQ / -ENAMETOOLONG / -ELOOP (depth) with a message in err.
 * ret_depth (may be NULL) gets the number of components.
 */
int qfc_path_check(const char *untrusted_path, size_t len, const struct qfc_limits *l,
		   unsigned *ret_depth, char *err, size_t errlen);

/*
 * A symlink target for a link at path (already checked): relative, only
 * leading ".." components (a trailing "/" is accepted), and it must stay
 * inside the link's top-level entry: a top-level symlink is refused.
 */
int qfc_symlink_check(const char *path, size_t path_len, const char *untrusted_target,
		      size_t target_len, const struct qfc_limits *l, char *err, size_t errlen);

/*
 * Settings file: lines "key = value", '#' comments; keys max-entries,
 * max-bytes, max-depth, max-path, max-name, user, incoming-dir.  On error
 * returns -EINVAL with "FILE:LINE: what" in err and changes nothing.
 * user/incoming-dir (either may be NULL) get strdup()ed values.
 */
int qfc_config_parse(const char *text, size_t len, const char *filename,
		     struct qfc_limits *limits, char **ret_user, char **ret_incoming, char *err,
		     size_t errlen);

#endif
