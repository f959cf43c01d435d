/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqdb: the qube database of qubed.  One SQLite file (WAL, synchronous
 * FULL, foreign keys on) holds every qube with its class, properties, tags
 * and features, the global properties and the disposable-name counter.
 * Semantics follow Qubes OS (qubes-core-admin): the same classes, property
 * names, types, defaults and exception type names, so the admin API can
 * print what Qubes prints.  See docs/database.md.
 *
 * Conventions: functions return 0 or a negative errno; on failure they
 * fill *err (which may be NULL) with a Qubes exception type name and a
 * message naming the qube, property and value, and change nothing.
 * ret_* out-parameters are untouched on failure.  Every string argument is
 * untrusted text (it comes over the admin API) and is validated here.
 * A struct qdb is not thread-safe: one thread (qubed's loop) uses it.
 */
#ifndef QDB_H
#define QDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QDB_SCHEMA_VERSION 1

#define QDB_NAME_MAX 31u        /* qube name bytes */
#define QDB_STR_MAX 1024u       /* str property value bytes (kernelopts, kernel) */
#define QDB_TAG_MAX 64u         /* tag bytes */
#define QDB_FEATURE_KEY_MAX 64u /* feature key bytes */
#define QDB_FEATURE_VALUE_MAX 1024u /* feature value bytes */
#define QDB_DISPID_MAX 9999u    /* dispNNNN: 1..9999 */

struct qerr {
	char type[48];  /* e.g. "QubesVMNotFoundError", "QubesValueError",
	                 * "QubesNoSuchPropertyError", "QubesPropertyValueError",
	                 * "QubesVMInUseError", "QubesException" */
	char msg[480];
};

struct qdb;

/* Opens (creating 0600 if missing) the database at PATH; dom0 exists in
 * every opened database.  A newer schema_version, a file that is not an
 * SQLite database or a failed integrity check is refused. */
int qdb_open(const char *path, struct qdb **ret, struct qerr *err);
void qdb_close(struct qdb *db); /* NULL ok */

enum qdb_class { QDB_ADMINVM, QDB_TEMPLATEVM, QDB_APPVM, QDB_STANDALONEVM, QDB_DISPVM };
#define QDB_CLASS_COUNT 5
const char *qdb_class_name(enum qdb_class c); /* "AppVM" */
int qdb_class_parse(const char *s, enum qdb_class *ret); /* -EINVAL if unknown */

/* create: template NULL for classes without one (or to use
 * default_template for AppVM, default_dispvm for DispVM).  label NULL:
 * a DispVM takes its template's label (Qubes' default); the other
 * classes need one, as in Qubes (QubesValueError). */
int qdb_qube_create(struct qdb *db, const char *name, enum qdb_class cls, const char *template_name,
                    const char *label, struct qerr *err);
/* Refuses dom0; refuses a qube still used by others as template, netvm,
 * default_dispvm or by a global property; the message names them
 * (QubesVMInUseError). */
int qdb_qube_remove(struct qdb *db, const char *name, struct qerr *err);
/* Copies class, properties, tags and features; new uuid, qid and cid. */
int qdb_qube_clone(struct qdb *db, const char *src, const char *dst, struct qerr *err);
/* Sorted (C locale), dom0 included; free with qdb_strv_free. */
int qdb_qube_list(struct qdb *db, char ***ret_names, size_t *ret_n, struct qerr *err);
bool qdb_qube_exists(struct qdb *db, const char *name);
int qdb_qube_class(struct qdb *db, const char *name, enum qdb_class *ret, struct qerr *err);
/* The qube whose vsock CID is CID (-ENOENT if none; dom0 has no CID). */
int qdb_qube_by_cid(struct qdb *db, uint32_t cid, char ret_name[32], struct qerr *err);
void qdb_strv_free(char **v, size_t n); /* NULL ok */

/* Properties.  Values are strings in the admin API's text form: bool
 * "True"/"False", int decimal, vm a name or "" for none, label a name. */
enum qdb_prop_type { QDB_T_STR, QDB_T_INT, QDB_T_BOOL, QDB_T_VM, QDB_T_LABEL };
struct qdb_prop_def {
	const char *name;
	const char *type;     /* "str", "int", "bool", "vm", "label" */
	const char *help;
	bool readonly;
	enum qdb_prop_type t;
	unsigned classes;     /* bit (1u << enum qdb_class) per class that has it */
	bool has_default;     /* false: a value must be set (name, uuid, qid, cid, label) */
	const char *default_doc; /* the default rule in words, for docs and help */
};
size_t qdb_prop_count(void);
const struct qdb_prop_def *qdb_prop_at(size_t i);
const struct qdb_prop_def *qdb_prop_lookup(const char *name);
bool qdb_prop_applies(const struct qdb_prop_def *p, enum qdb_class c);
/* *ret_value: malloc'd, free(); *ret_is_default may be NULL. */
int qdb_prop_get(struct qdb *db, const char *qube, const char *prop, char **ret_value, bool *ret_is_default,
                 struct qerr *err);
int qdb_prop_get_default(struct qdb *db, const char *qube, const char *prop, char **ret_value,
                         struct qerr *err); /* -ENODATA when no default */
int qdb_prop_set(struct qdb *db, const char *qube, const char *prop, const char *value,
                 struct qerr *err); /* validated by type & rules */
int qdb_prop_reset(struct qdb *db, const char *qube, const char *prop, struct qerr *err);
int qdb_global_get(struct qdb *db, const char *prop, char **ret_value, bool *ret_is_default, struct qerr *err);
int qdb_global_set(struct qdb *db, const char *prop, const char *value, struct qerr *err);
int qdb_global_reset(struct qdb *db, const char *prop, struct qerr *err);
size_t qdb_global_prop_count(void);
const struct qdb_prop_def *qdb_global_prop_at(size_t i);
const struct qdb_prop_def *qdb_global_prop_lookup(const char *name);

/* Tags and features */
int qdb_tag_list(struct qdb *db, const char *qube, char ***ret, size_t *ret_n, struct qerr *err);
int qdb_tag_set(struct qdb *db, const char *qube, const char *tag, struct qerr *err); /* present: 0 */
int qdb_tag_remove(struct qdb *db, const char *qube, const char *tag, struct qerr *err); /* -ENOENT if absent */
bool qdb_tag_has(struct qdb *db, const char *qube, const char *tag);
int qdb_feature_list(struct qdb *db, const char *qube, char ***ret_keys, size_t *ret_n, struct qerr *err);
int qdb_feature_get(struct qdb *db, const char *qube, const char *key, char **ret_value,
                    struct qerr *err); /* -ENOENT if absent */
int qdb_feature_set(struct qdb *db, const char *qube, const char *key, const char *value, struct qerr *err);
int qdb_feature_remove(struct qdb *db, const char *qube, const char *key,
                       struct qerr *err); /* -ENOENT if absent */

/* Labels */
struct qdb_label {
	const char *name;
	unsigned index;
	unsigned colour; /* 0xRRGGBB */
};
const struct qdb_label *qdb_label_lookup(const char *name);
size_t qdb_label_count(void);
const struct qdb_label *qdb_label_at(size_t i);

/* Disposables: the lowest free "dispNNNN" (1..9999; a number is reused
 * only when no qube has that name).  Does not reserve it: create the
 * DispVM in the same transaction (qdb_begin) to hold it. */
int qdb_dispvm_next_name(struct qdb *db, char ret_name[32], struct qerr *err);

/* Transactions for callers that do several changes as one (create + set
 * props).  Not nested.  Inside one, each call's own changes still undo
 * themselves on failure (savepoints), and qdb_commit makes all durable. */
int qdb_begin(struct qdb *db, struct qerr *err);
int qdb_commit(struct qdb *db, struct qerr *err);
void qdb_rollback(struct qdb *db);

#endif
