/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qube.Exec request header (docs/protocol.md, "qube.Exec"): what the
 * caller writes at the start of the service's stdin.
 *
 *   8 bytes   'Q' 'X' VERSION(1) FLAGS(0) BODY_LEN (u32, little endian)
 *   BODY_LEN  USER '\0' ARGV0 '\0' ARGV1 '\0' ... ARGVn '\0'
 *
 * USER is "" (the service's own user) or a user name as the protocol
 * allows it (1-32 of [A-Za-z0-9_.-], not starting with '-' or '.').  ARGV0
 * is not empty; later arguments may be.  At most QEXEC_BODY_MAX bytes and
 * QEXEC_ARGC_MAX arguments.  Pure code: no I/O.
 */
#ifndef QUBE_EXEC_H
#define QUBE_EXEC_H

#include <stddef.h>
#include <stdint.h>

#define QEXEC_HEADER_SIZE 8u
#define QEXEC_VERSION 1u
#define QEXEC_BODY_MAX (256u * 1024u)
#define QEXEC_ARGC_MAX 4096u

struct qexec_request {
	const char *user;  /* "" for the service's own user */
	char **argv;       /* argc entries plus NULL; pointers into the body */
	size_t argc;
};

/* Checks the fixed header; 0 and *ret_body_len, or -EPROTO / -E2BIG with
 * a reason in ERR. */
int qexec_header_parse(const uint8_t *hdr, size_t len, uint32_t *ret_body_len, char *err,
		       size_t errlen);
/* Splits a body read after the header.  On success *ret points into BODY
 * (and an argv array it allocates: free(ret->argv)).  -EPROTO with a
 * reason in ERR for a malformed body. */
int qexec_body_parse(uint8_t *body, size_t len, struct qexec_request *ret, char *err,
		     size_t errlen);
/* Encodes header + body for USER ("" or NULL for the default) and ARGV
 * (ARGC entries) into a malloc'd buffer; -EINVAL for an argv or user the
 * parser would refuse, -E2BIG over the caps. */
int qexec_encode(const char *user, char *const *argv, size_t argc, uint8_t **ret_buf,
		 size_t *ret_len);

/* The service side (exec-service.c), for qube.Exec and qube.StartApp. */
/* Reads the header and body from FD and parses them; 0 with *ret pointing
 * into *ret_body (free both: free(ret->argv), free(*ret_body)).  Else a
 * negative errno, the reason printed as "PROG: ..." on stderr: -ENOMEM out
 * of memory, anything else a missing, cut or malformed request. */
int qexec_read_request(const char *prog, int fd, struct qexec_request *ret, uint8_t **ret_body);
/* Becomes user NAME (needs root unless NAME is us already): groups, uid,
 * HOME/USER/LOGNAME, its home (else /) as the directory.  0, or a negative
 * errno with the reason printed as "PROG: ...". */
int qexec_become(const char *prog, const char *name);

#endif
