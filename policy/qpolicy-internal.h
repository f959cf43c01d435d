/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqpolicy internals shared by the loader (load.c), the system-info
 * parser (system.c) and the evaluator (eval.c).  Not installed.
 */
#ifndef QPOLICY_INTERNAL_H
#define QPOLICY_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "qname.h"
#include "qpolicy.h"

/* A qube specification as written in a rule (source, target, target=,
 * default_target=) or as requested by a caller. */
enum qpol_tok_kind {
	QPOL_TOK_NAME = 0,    /* a qube name or "uuid:UUID"; value = as written.
	                         "dom0" and the nil UUID are the admin qube
	                         (qpol_token_is_dom0()) but stay NAME, as in
	                         Qubes 4.3: they expand to the name dom0 where
	                         @adminvm expands to the keyword */
	QPOL_TOK_WILDCARD,    /* "*" */
	QPOL_TOK_ANYVM,       /* @anyvm */
	QPOL_TOK_ADMINVM,     /* @adminvm */
	QPOL_TOK_DEFAULT,     /* @default */
	QPOL_TOK_DISPVM,      /* @dispvm */
	QPOL_TOK_DISPVM_NAME, /* @dispvm:NAME or @dispvm:uuid:UUID; value = NAME or uuid:UUID */
	QPOL_TOK_DISPVM_TAG,  /* @dispvm:@tag:T; value = T */
	QPOL_TOK_TAG,         /* @tag:T; value = T */
	QPOL_TOK_TYPE,        /* @type:T; value = T */
};

/* Where a token appears; each kind is allowed in some of these. */
enum qpol_tok_ctx {
	QPOL_CTX_SOURCE = 1 << 0,
	QPOL_CTX_TARGET = 1 << 1,
	QPOL_CTX_REDIRECT = 1 << 2, /* target=, default_target= */
	QPOL_CTX_REQUEST = 1 << 3,  /* the target a caller asked for */
};

struct qpol_token {
	enum qpol_tok_kind kind;
	char *value; /* NULL for kinds without a value */
};

enum qpol_action {
	QPOL_ACTION_DENY = 0,
	QPOL_ACTION_ALLOW,
	QPOL_ACTION_ASK,
};

struct qpol_rule {
	char *service;  /* NULL: any ("*") */
	char *argument; /* NULL: any ("*"); else without the leading '+' */
	struct qpol_token source;
	struct qpol_token target;
	enum qpol_action action;
	bool has_redirect;       /* target= */
	bool has_default_target; /* default_target= */
	struct qpol_token redirect;
	struct qpol_token default_target;
	char *user; /* NULL when not given or empty */
	bool notify;
	bool autostart;
	const char *file; /* owned by the policy's file table */
	unsigned line;
};

/* Rules naming one service, as ascending rule indices. */
struct qpol_svc_bucket {
	char *service; /* NULL: empty slot */
	size_t *idx;
	size_t n, cap;
};

struct qpol_policy {
	struct qpol_rule *rules;
	size_t n_rules, cap_rules;

	struct qpol_diag *diags;
	size_t n_diags, cap_diags;

	char **files; /* every file name a rule or diagnostic points to */
	size_t n_files, cap_files;
	size_t n_loaded; /* files read successfully (includes counted) */

	/* Every file and directory the load read or tried to read (see
	 * qpol_policy_dep()), each once. */
	struct qpol_dep_entry {
		char *path;
		enum qpol_dep_kind kind;
	} *deps;
	size_t n_deps, cap_deps;

	/* Service index, built once loading is complete. */
	size_t *wild; /* rules with service "*" */
	size_t n_wild;
	struct qpol_svc_bucket *buckets;
	size_t n_buckets; /* power of two, or 0 */
};

struct qpol_domain {
	char *name;
	char *type;
	char *uuid; /* canonical lower-case form without "uuid:"; NULL when absent */
	char **tags;
	size_t n_tags;
	bool template_for_dispvms;
	char *default_dispvm; /* NULL when null/absent */
	char *icon;           /* NULL when absent */
	char *power_state;    /* NULL when absent */
	bool internal;        /* never offered by "ask" target collection */
	bool implicit;        /* dom0 added because the JSON had none */
};

struct qpol_system {
	/* Sorted by name (strcmp).  Always holds dom0: when the JSON names
	 * none, an implicit one (AdminVM, nil UUID, running) is added, so the
	 * admin qube behaves the same whatever the caller's JSON lists. */
	struct qpol_domain *domains;
	size_t n_domains;
	/* The domains that have a uuid (pointers into domains, which is not
	 * moved once built), sorted by uuid (strcmp). */
	const struct qpol_domain **by_uuid;
	size_t n_by_uuid;
};

/* "uuid:" and the nil UUID: dom0's, as in Qubes. */
#define QPOL_UUID_PREFIX "uuid:"
#define QPOL_DOM0_UUID "00000000-0000-0000-0000-000000000000"
#define QPOL_DOM0_UUID_REF QPOL_UUID_PREFIX QPOL_DOM0_UUID

/* Token parsing shared by the loader and the evaluator.  On success fills
 * *ret (value malloc'd) and returns 0; -ENOMEM; -EINVAL with *ret_msg a
 * malloc'd message (or NULL on allocation failure). */
/* printf into a new string, control characters shown as '?' so that a
 * message built from policy or JSON text is always one clean line.
 * NULL when out of memory. */
__attribute__((format(printf, 1, 0)))
char *qpol_vmsg(const char *fmt, va_list ap);

int qpol_token_parse(const char *text, unsigned ctx, struct qpol_token *ret, char **ret_msg);
void qpol_token_finish(struct qpol_token *tok);
/* "@anyvm", "@dispvm:NAME", "NAME"...: malloc'd, NULL on ENOMEM. */
char *qpol_token_to_string(const struct qpol_token *tok);

/* By name only (dom0 included, implicit or not). */
const struct qpol_domain *qpol_system_find(const struct qpol_system *system, const char *name);
/* By name or by "uuid:UUID" (exact, case-sensitive), like a key of
 * Qubes' system info, where every domain is also under uuid:UUID. */
const struct qpol_domain *qpol_system_lookup(const struct qpol_system *system, const char *key);

/* "dom0", "@adminvm" or "uuid:" of the nil UUID: Qubes' is_dom0(). */
bool qpol_is_dom0(const char *text);
/* @adminvm, or a NAME token that qpol_is_dom0(). */
bool qpol_token_is_dom0(const struct qpol_token *tok);

/* Builds the service index of a fully loaded policy. */
int qpol_policy_build_index(struct qpol_policy *policy);

/* Character classes and name rules: qname.h, shared with libqrpc. */

#endif
