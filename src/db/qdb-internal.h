/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libqdb internals shared by qdb-defs.c (pure tables and value syntax) and
 * qdb.c (the SQLite store). */
#ifndef QDB_INTERNAL_H
#define QDB_INTERNAL_H

#include <stdarg.h>

#include "qdb.h"

/* Largest text form of any value, with its NUL. */
#define QDB_VAL_MAX (QDB_STR_MAX + 1)

#define QDB_C(c) (1u << (c))
#define QDB_C_ALL 0x1fu

/* Stricter limits of particular properties. */
#define QDB_KERNEL_MAX 255u
#define QDB_KERNELOPTS_MAX 512u /* as Qubes (kernelopts_common needs room) */
#define QDB_MEMORY_MAX 1048576ll /* MiB (1 TiB) */
#define QDB_VCPUS_MAX 256ll
#define QDB_PRELOAD_MAX 32ll /* preload_dispvm: disposables kept booted per template */
#define QDB_QID_MAX 9999 /* qids 1..9999 (Qubes' max_qid is 10000, exclusive) */
#define QDB_CID_FIRST 3u
#define QDB_CID_LAST 0xfffffffeu /* 0xffffffff is VMADDR_CID_ANY */

void qdb_err_set(struct qerr *err, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A printable, bounded rendering of untrusted text for messages: at most
 * 64 bytes shown, anything outside 0x20-0x7e as \xNN, in single quotes. */
void qdb_quote(char out[300], const char *untrusted);

/* Qubes' VM name rules: 1-31 of [A-Za-z0-9_.-], leading letter, not a
 * keyword ("none", "default"), not "Domain-0", not ending in "-dm".
 * "dom0" passes (it is the AdminVM's name); callers creating a qube
 * refuse it themselves.  On false, *why says which rule. */
bool qdb_name_is_valid(const char *untrusted, const char **why);

/* Value syntax by type.  Each writes the canonical text form to out
 * (QDB_VAL_MAX bytes) or returns false with *why set. */
bool qdb_parse_bool(const char *untrusted, char out[QDB_VAL_MAX], const char **why);
bool qdb_parse_int(const char *untrusted, long long min, long long max, char out[QDB_VAL_MAX],
                   const char **why);
/* Printable ASCII (0x20-0x7e), at most max bytes. */
bool qdb_parse_str(const char *untrusted, size_t max, char out[QDB_VAL_MAX], const char **why);
/* Valid UTF-8 (no overlong forms, surrogates or > U+10FFFF), no C0, DEL
 * or C1 control characters, at most max bytes. */
bool qdb_text_is_valid(const char *untrusted, size_t max, const char **why);
bool qdb_tag_is_valid(const char *untrusted, const char **why);
bool qdb_feature_key_is_valid(const char *untrusted, const char **why);

#endif
