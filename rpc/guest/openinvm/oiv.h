/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube.OpenInVM: the wire of qube-open-in-dvm (docs/filecopy.md, "Open in
 * a disposable").  Two fixed headers around qube.Filecopy streams; nothing
 * in here does I/O.
 *
 * caller -> disposable (the service's stdin):
 *   request header (32 bytes), a qube.Filecopy stream of stream_len bytes
 *   holding one regular file, then (flag TERMINAL) the caller's terminal
 *   input until the end of stdin
 * disposable -> caller (stdout):
 *   a qube.Filecopy reply record for that stream; when it reports success,
 *   a result header (32 bytes), then a message (FAILED) or a qube.Filecopy
 *   stream of stream_len bytes holding the edited file (CHANGED)
 * The viewer's terminal output comes on the service's stderr.
 */
#ifndef QUBE_OPENINVM_OIV_H
#define QUBE_OPENINVM_OIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QOIV_REQUEST_MAGIC "QOIV"
#define QOIV_RESULT_MAGIC "QOIR"
#define QOIV_VERSION 1u
#define QOIV_HEADER_SIZE 32u

enum {
	QOIV_F_VIEW_ONLY = 1u << 0, /* open read-only, send nothing back */
	QOIV_F_TERMINAL = 1u << 1,  /* the caller relays a terminal (rows, cols) */
	QOIV_F_KNOWN = QOIV_F_VIEW_ONLY | QOIV_F_TERMINAL,
};

enum qoiv_status {
	QOIV_UNCHANGED = 0, /* nothing follows */
	QOIV_CHANGED = 1,   /* a qube.Filecopy stream of stream_len bytes follows */
	QOIV_FAILED = 2,    /* a message of msg_len bytes follows */
};

/* The smallest stream of one file (a one-byte name, no data) and the
 * largest accepted: a file of QOIV_MAX_FILE bytes with a 4,095-byte name. */
#define QOIV_MIN_STREAM (16u + 32u + 1u + 4u + 32u + 24u)
#define QOIV_MAX_FILE (1ULL << 40)
#define QOIV_MAX_STREAM (QOIV_MAX_FILE + 16u + 32u + 4095u + 4u + 32u + 24u)
#define QOIV_MAX_TERM 4096u /* rows and columns */
#define QOIV_MAX_MSG 4096u

struct qoiv_request {
	uint32_t flags;
	uint16_t rows, cols; /* TERMINAL: 1..QOIV_MAX_TERM; else 0 */
	uint64_t stream_len; /* QOIV_MIN_STREAM..QOIV_MAX_STREAM */
};

struct qoiv_result {
	uint32_t status;     /* enum qoiv_status */
	uint32_t msg_len;    /* FAILED: 1..QOIV_MAX_MSG; else 0 */
	uint64_t stream_len; /* CHANGED: QOIV_MIN_STREAM..QOIV_MAX_STREAM; else 0 */
};

/* Encoders: exactly QOIV_HEADER_SIZE bytes. */
void qoiv_request_encode(const struct qoiv_request *r, uint8_t out[QOIV_HEADER_SIZE]);
void qoiv_result_encode(const struct qoiv_result *r, uint8_t out[QOIV_HEADER_SIZE]);

/* Decoders of untrusted bytes: 0, or -EPROTO with what was refused in err
 * (always NUL-terminated); the out-parameter is untouched on failure. */
int qoiv_request_decode(const uint8_t *untrusted, struct qoiv_request *ret_r, char *err,
			size_t errlen);
int qoiv_result_decode(const uint8_t *untrusted, struct qoiv_result *ret_r, char *err,
		       size_t errlen);

/*
 * The viewer settings file (~/.config/qube/open-in-vm.conf in the
 * disposable): lines "editor = PATH" and "viewer = PATH" (an absolute
 * program path, no arguments), '#' comments, blank lines.  Values are
 * strdup()ed into *ret_editor / *ret_viewer (freed first when set).
 * -EINVAL with "FILE:LINE: what" in err and nothing changed on an error.
 */
int qoiv_config_parse(const char *text, size_t len, const char *filename, char **ret_editor,
		      char **ret_viewer, char *err, size_t errlen);

#endif
