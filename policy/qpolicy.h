/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqpolicy: parser and evaluator of the RPC policy, compatible with the
 * Qubes OS 4.1+ policy format (/etc/qubes/policy.d/ *.policy).
 *
 * Pure logic: no global state, no logging, no I/O other than reading the
 * policy files themselves.  Every object is independent; a loaded policy is
 * immutable and may be evaluated from several threads at once.
 *
 * Errors: functions returning int return 0 or a negative errno; out
 * parameters are named ret_* and are untouched on failure.
 */
#ifndef QPOLICY_H
#define QPOLICY_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Diagnostics ------------------------------------------------------ */

/* One problem found while loading policy: FILE:LINE: message. */
struct qpol_diag {
	char *file;     /* path as the loader named it */
	unsigned line;  /* 1-based; 0 when the problem concerns a whole file */
	char *message;  /* no trailing newline, no file:line prefix */
};

/* ---- Policy ----------------------------------------------------------- */

struct qpol_policy; /* opaque; immutable once loaded */

/*
 * Loads the policy directory DIR: every "*.policy" file directly in it,
 * in C-locale (strcmp) order, dotfiles ignored, names restricted to
 * [0-9a-z_.-] (others are errors), following !include, !include-dir and
 * !include-service.  Relative include paths are resolved as Qubes does.
 *
 * Returns 0 and a policy object even when files are invalid: such a policy
 * records every diagnostic and denies every request, giving the first
 * diagnostic as the reason.  Returns a negative errno only when no policy
 * object could be made at all (-ENOMEM; -ENOENT/-ENOTDIR/-EACCES when DIR
 * itself cannot be opened).
 */
int qpol_policy_load_dir(const char *dir, struct qpol_policy **ret_policy);

/*
 * Parses TEXT (LEN bytes, need not be NUL-terminated) as the contents of a
 * single policy file named NAME.  !include directives are resolved relative
 * to INCLUDE_BASE; when INCLUDE_BASE is NULL every directive is reported as
 * an error ("includes are not available here"), which is what the fuzz
 * harness uses.  Same validity rules as qpol_policy_load_dir().
 */
int qpol_policy_parse_text(const char *name, const char *text, size_t len,
			   const char *include_base, struct qpol_policy **ret_policy);

void qpol_policy_free(struct qpol_policy *policy);

/* True when no diagnostic was recorded: requests are really evaluated. */
bool qpol_policy_is_valid(const struct qpol_policy *policy);
size_t qpol_policy_n_diags(const struct qpol_policy *policy);
const struct qpol_diag *qpol_policy_diag(const struct qpol_policy *policy, size_t i);
/* Number of rules loaded (all files, includes expanded). */
size_t qpol_policy_n_rules(const struct qpol_policy *policy);
/* Number of policy files read (top directory and every include). */
size_t qpol_policy_n_files(const struct qpol_policy *policy);

/*
 * What the policy depends on, for a daemon that reloads on change: every
 * file it read or tried to read (a missing !include target too) and every
 * directory it listed or tried to list (the top directory and each
 * !include-dir), each once, in the order first met.  A file reached
 * through a symbolic link is given both as named and as resolved.  Paths
 * are as the loader used them (relative ones relative to the working
 * directory).  Returns NULL when I is out of range.
 */
enum qpol_dep_kind {
	QPOL_DEP_FILE, /* a change to this file matters */
	QPOL_DEP_DIR,  /* a *.policy file appearing, changing or going here matters */
};
size_t qpol_policy_n_deps(const struct qpol_policy *policy);
const char *qpol_policy_dep(const struct qpol_policy *policy, size_t i,
			    enum qpol_dep_kind *ret_kind);

/* ---- System information ------------------------------------------------ */

struct qpol_system; /* opaque */

/*
 * System information in the JSON shape Qubes' qrexec uses:
 *   {"domains": {"NAME": {"type": "AppVM", "tags": ["t"],
 *     "template_for_dispvms": false, "default_dispvm": "NAME" | null,
 *     "icon": "red", "power_state": "Running",
 *     "uuid": "6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "internal": false}}}
 * uuid (lower-case 8-4-4-4-12 hex, unique; dom0's is the nil UUID) makes
 * the qube reachable as uuid:UUID; internal: true keeps it out of the
 * targets "ask" collects.  dom0 is the only AdminVM; when the JSON has no
 * dom0, one is assumed (qpol_system_has_domain() still says no).
 * On a parse or validation error returns -EINVAL and sets *ret_error to a
 * malloc'd message naming the offending field (caller frees).
 */
int qpol_system_parse_json(const char *text, size_t len, struct qpol_system **ret_system,
			   char **ret_error);
int qpol_system_load_file(const char *path, struct qpol_system **ret_system, char **ret_error);
void qpol_system_free(struct qpol_system *system);
/* True when NAME is a domain of SYSTEM (by name, as the JSON gave it). */
bool qpol_system_has_domain(const struct qpol_system *system, const char *name);

/*
 * The qube a target (a decision's target, or one of the targets an "ask"
 * offered) stands for, with uuid: references resolved: "dom0" for dom0,
 * @adminvm and uuid: of dom0; NAME for NAME or uuid:UUID; "@dispvm:NAME"
 * for @dispvm:NAME or @dispvm:uuid:UUID (a new disposable of NAME).
 * Returns 0 and a malloc'd name in *ret_name; -ENOENT when TARGET names no
 * qube of SYSTEM; -EINVAL for any other text (@dispvm alone, @default,
 * ...); -ENOMEM.  Whether NAME may serve as a disposable template is for
 * whoever creates the disposable to check: as in Qubes, an "allow" of
 * @dispvm goes to the caller's default_dispvm whether or not that has
 * template_for_dispvms.
 */
int qpol_system_resolve_target(const struct qpol_system *system, const char *target,
			       char **ret_name);

/* ---- Evaluation --------------------------------------------------------- */

struct qpol_request {
	const char *service;  /* e.g. "qubes.Filecopy"; never contains '+' */
	const char *argument; /* without the leading '+'; "" for none */
	const char *source;   /* the calling qube, as the transport identified it */
	const char *target;   /* as requested: a name, "uuid:UUID", "@default",
	                         "@adminvm", "@dispvm", "@dispvm:NAME",
	                         "@dispvm:uuid:UUID" */
};

enum qpol_result {
	QPOL_RESULT_DENY = 0,
	QPOL_RESULT_ALLOW,
	QPOL_RESULT_ASK,
};

struct qpol_decision {
	enum qpol_result result;
	/* allow: the target after redirection as Qubes reports it: "dom0"
	 * for the admin qube, else as the rule or the request wrote it (a
	 * name, "uuid:UUID", "@dispvm:NAME", "@dispvm:uuid:UUID").  NULL
	 * otherwise. */
	char *target;
	/* allow: Qubes' target_uuid, "uuid:UUID" or "@dispvm:uuid:UUID" of
	 * the template; NULL for dom0 and for a qube without a uuid. */
	char *target_uuid;
	/* allow: TARGET resolved by qpol_system_resolve_target() ("dom0",
	 * NAME, "@dispvm:NAME"): what the call is routed by. */
	char *target_name;
	char *requested_target; /* the requested target as verified (an unknown
	                           qube reads as "@default"), in its own form */
	char *user;             /* user= if given, else NULL */
	bool autostart;         /* allow/ask: start the target if not running */
	bool notify;            /* notify= (deny defaults to yes) */
	/* ask: targets to offer, sorted, and the default (NULL if none).
	 * Collected targets are names ("dom0", NAME, "@dispvm:NAME"); a
	 * rule's target= is offered as written (it may be a uuid: form:
	 * resolve the user's choice with qpol_system_resolve_target()). */
	char **targets;
	size_t n_targets;
	char *default_target;
	/* the rule that decided; NULL/0 when no rule matched */
	char *rule_file;
	unsigned rule_line;
	char *reason; /* always set: why, in words; never repeats rule_file:rule_line,
	               which a caller prints beside it when set */
};

/*
 * Evaluates REQUEST against POLICY with SYSTEM's domains: the first
 * matching rule wins, no match denies.  Fills *ret_decision (caller calls
 * qpol_decision_finish()).  Returns -ENOMEM only; every other outcome,
 * including a malformed request or an invalid policy, is a decision.
 */
int qpol_evaluate(const struct qpol_policy *policy, const struct qpol_system *system,
		  const struct qpol_request *request, struct qpol_decision *ret_decision);

void qpol_decision_finish(struct qpol_decision *decision);

/* "allow", "deny", "ask" */
const char *qpol_result_to_string(enum qpol_result result);

#ifdef __cplusplus
}
#endif

#endif
