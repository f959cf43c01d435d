/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: one admin API connection and the method table (api.c, methods.c).
 */
#ifndef QUBED_API_H
#define QUBED_API_H

#include "qubed.h"

struct qd_call {
	struct qd_call *next;  /* in qd->subscribers (admin.Events) */
	struct qd_watch watch;
	int fd;
	uid_t uid;
	pid_t pid;
	/* request */
	char *in;
	size_t in_len, in_cap;
	bool header_done, eof;
	char method[128];
	char arg[256];
	char src[QD_NAME_MAX];
	char dest[QD_NAME_MAX];
	const char *payload;   /* into in, after the header */
	size_t payload_len;
	/* streaming import (qube.template.Import) */
	int import_fd;
	char import_tmp[4096];
	uint64_t import_len, import_max;
	int import_err;
	/* reply */
	char *out;
	size_t out_len, out_cap, out_off;
	bool replied;          /* out holds the whole reply */
	bool pending;          /* a lifecycle operation will reply */
	bool subscribed;       /* admin.Events */
	bool gone;             /* the client hung up while pending */
};

/* frees a call whose client went away (after its operation finished) */
void qd_call_release(struct qd *qd, struct qd_call *c);
/* sends one event to one subscriber */
void qd_api_event_to(struct qd *qd, struct qd_call *c, const char *subject, const char *event,
		     const char *const *kv);

/* replies: exactly one of these per call (except admin.Events) */
void qd_reply_ok(struct qd *qd, struct qd_call *c, const void *data, size_t len);
void qd_reply_okf(struct qd *qd, struct qd_call *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qd_reply_exc(struct qd *qd, struct qd_call *c, const struct qerr *e);
/* builds a reply bit by bit: append, then qd_reply_ok(c, NULL, 0) sends what was appended */
int qd_out_append(struct qd_call *c, const void *data, size_t len);
int qd_out_appendf(struct qd_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* the method table (methods.c) */
struct qd_method {
	const char *name;
	int (*fn)(struct qd *qd, struct qd_call *c, struct qerr *err);
	unsigned flags;
};
#define QD_M_DEST_DOM0   0x1u  /* dest must be dom0 */
#define QD_M_DEST_QUBE   0x2u  /* dest must be an existing qube (dom0 included) */
#define QD_M_NO_ARG      0x4u
#define QD_M_NEED_ARG    0x8u
#define QD_M_NO_PAYLOAD  0x10u
#define QD_M_PREFIX      0x20u /* name is a prefix: admin.vm.Create.CLASS */
#define QD_M_STREAM      0x40u /* payload streamed to c->import_fd */
const struct qd_method *qd_method_lookup(const char *name);
/* a handler returns 0 after it replied (or marked c->pending), or a
 * negative errno with err filled: the caller sends the exception */
int qd_import_begin(struct qd *qd, struct qd_call *c, struct qerr *err);

#endif
