/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl's client of qubed's admin API: the qubesd wire of Qubes OS 4.3
 * (docs/admin-api.md).  One connection per call: "METHOD+ARG dom0 name
 * DEST\0", the payload, a half-close, then one reply.
 *
 * The parsers (qc_reply_parse, qc_event_parse) are pure and fuzzed
 * (src/tests/fuzz-admin-reply.c); qc_admin_call does the socket work.
 */
#ifndef QC_ADMIN_CLIENT_H
#define QC_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QC_DEFAULT_SOCKET "/run/qube/qubed.sock"
/* qubesd's request buffer: header and payload together, except streams. */
#define QC_MAX_REQUEST 65536u
/* Largest reply qubectl accepts (a GetAll of many qubes stays far below). */
#define QC_MAX_REPLY (64u << 20)
/* Caps of one decoded exception or event field. */
#define QC_MAX_FIELD 65536u
#define QC_MAX_EVENT_KEYS 64u

enum qc_reply_kind {
	QC_REPLY_OK,
	QC_REPLY_EXCEPTION,
};

struct qc_reply {
	enum qc_reply_kind kind;
	/* QC_REPLY_OK: the data, with a NUL appended (len excludes it). */
	char *data;
	size_t len;
	/* QC_REPLY_EXCEPTION: the type and the message with the format
	 * arguments substituted, control bytes replaced by '?'. */
	char *exc_type;
	char *exc_message;
};

/* Parses one complete reply.  0 on success (ret filled, to be released
 * with qc_reply_finish), -ENODATA for an empty reply, -EBADMSG for one that
 * is not "0\0..." nor a complete "2\0TYPE\0TB\0FORMAT\0(ARG\0)*", -ENOMEM.
 * ret is untouched on failure. */
int qc_reply_parse(const uint8_t *untrusted_buf, size_t len, struct qc_reply *ret);
void qc_reply_finish(struct qc_reply *r);

struct qc_event {
	char *subject;
	char *name;
	size_t n_keys;
	char *keys[QC_MAX_EVENT_KEYS];
	char *values[QC_MAX_EVENT_KEYS];
};

/* Parses one event "1\0SUBJECT\0EVENT\0(KEY\0VALUE\0)*\0" at the start of
 * buf.  0 and *ret_used = its length; -EAGAIN when buf holds only a prefix
 * of one; -EBADMSG when it cannot be one (wrong start, too many keys, a
 * field over QC_MAX_FIELD); -ENOMEM.  Control bytes in the fields are
 * replaced by '?'.  ret and ret_used are untouched on failure. */
int qc_event_parse(const uint8_t *untrusted_buf, size_t len, struct qc_event *ret,
		   size_t *ret_used);
void qc_event_finish(struct qc_event *e);

/* Called about every 100 ms while qc_admin_call waits for the reply. */
typedef void (*qc_tick_fn)(void *userdata, unsigned elapsed_ms);

struct qc_call {
	const char *socket;  /* path of qubed's socket */
	const char *method;  /* "admin.vm.List" */
	const char *arg;     /* after '+'; NULL or "" for none */
	const char *dest;    /* a qube name or "dom0" */
	const void *payload; /* may be NULL */
	size_t payload_len;
	int payload_fd;      /* >= 0: stream this file after the payload */
	int timeout_ms;      /* < 0: wait for ever */
	qc_tick_fn tick;
	void *tick_userdata;
};

/* Progress of a call that may take long (start, shutdown, import): when
 * stderr is a terminal and VERB is not NULL, "| VERB NAME... Ns" is shown
 * there, with a spinner, from the first second of the wait on; after the
 * call qc_progress_end clears the line.  P must outlive the call. */
struct qc_progress {
	const char *verb;
	const char *name;
	bool shown;
};
void qc_progress_attach(struct qc_call *c, struct qc_progress *p, const char *verb,
			const char *name);
void qc_progress_end(struct qc_progress *p);

/* Initialises c with no payload, no timeout and no tick. */
void qc_call_init(struct qc_call *c, const char *socket, const char *method, const char *arg,
		  const char *dest);

/* Performs one call.  0 with *ret holding qubed's reply (success or
 * exception); -errno when qubed could not be reached or the connection
 * failed (connect, write other than EPIPE, read), -ETIMEDOUT when the
 * timeout ran out, -E2BIG when header and payload exceed QC_MAX_REQUEST
 * (not for a payload_fd stream), -EINVAL for a method, arg or dest that
 * cannot be sent (bytes outside [!-~], or empty method/dest), and the
 * errors of qc_reply_parse.  A write that fails with EPIPE (qubed answered
 * early and closed, e.g. an over-large import) still reads the reply. */
int qc_admin_call(const struct qc_call *c, struct qc_reply *ret);

/* Opens the admin.Events stream: connects, sends the request and
 * half-closes.  0 and *ret_fd, or -errno. */
int qc_admin_open_events(const char *socket, int *ret_fd);

/* Formats a qubesd format string: "%s" (and any "%" conversion) takes the
 * next argument, "%%" is '%'.  Returns a heap string or NULL. */
char *qc_format_message(const char *fmt, const char *const *args, size_t n_args);

#endif
