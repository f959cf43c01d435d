/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of libqdb (suite 'db').  Every refused call is checked to
 * leave the database byte-for-byte the same as far as its contents go:
 * a dump of every table, read through a second SQLite connection, is
 * compared before and after.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "qdb-internal.h"
#include "qdb.h"

struct fx {
	char dir[64];
	char path[128];
	struct qdb *db;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct qerr err = { 0 };
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/qdb-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/qubes.db", f->dir);
	int r = qdb_open(f->path, &f->db, &err);
	if (r < 0)
		fail_msg("qdb_open: %s: %s", err.type, err.msg);
	*state = f;
	return 0;
}

static void rm_db_files(const char *path)
{
	char p[160];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	qdb_close(f->db);
	rm_db_files(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- dump of the whole database through a second connection ---- */

struct dumpbuf {
	char *p;
	size_t len, cap;
};

static void dump_append(struct dumpbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static char *dump(const char *path)
{
	static const char *const q[] = {
		"SELECT 'meta', key, value, '', '' FROM meta ORDER BY key",
		"SELECT 'qube', qid, name, class, uuid || '/' || ifnull(cid, '-') FROM qubes ORDER BY qid",
		"SELECT 'prop', qid, name, ifnull(value, '<null>'), ifnull(ref, '<null>') FROM props ORDER BY qid, name",
		"SELECT 'global', name, ifnull(value, '<null>'), ifnull(ref, '<null>'), '' FROM globals ORDER BY name",
		"SELECT 'tag', qid, tag, '', '' FROM tags ORDER BY qid, tag",
		"SELECT 'feature', qid, key, value, '' FROM features ORDER BY qid, key",
		"SELECT 'schema', type, name, sql, '' FROM sqlite_master ORDER BY name",
	};
	sqlite3 *h;
	struct dumpbuf b = { NULL, 0, 0 };
	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(h, q[i], -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int c = 0; c < 5; c++) {
				const unsigned char *t = sqlite3_column_text(st, c);
				dump_append(&b, t ? (const char *)t : "<NULL>");
				dump_append(&b, "|");
			}
			dump_append(&b, "\n");
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return b.p;
}

/* Runs CALL, expects it to fail with ERRNO (0: any negative) and error
 * type TYPE, and the database to be unchanged. */
#define EXPECT_FAIL(f, call, want_errno, want_type)                                                   \
	do {                                                                                            \
		char *before_ = dump((f)->path);                                                        \
		struct qerr err_ = { 0 };                                                               \
		struct qerr *err = &err_;                                                               \
		int r_ = (call);                                                                        \
		if (r_ >= 0)                                                                            \
			fail_msg("%s:%d: %s succeeded", __FILE__, __LINE__, #call);                     \
		if ((want_errno) && r_ != -(want_errno))                                                \
			fail_msg("%s:%d: %s: errno %d, want %d (%s: %s)", __FILE__, __LINE__, #call,   \
			         -r_, (want_errno), err_.type, err_.msg);                               \
		if (strcmp(err_.type, (want_type)) != 0)                                                \
			fail_msg("%s:%d: %s: type %s, want %s (%s)", __FILE__, __LINE__, #call,        \
			         err_.type, (want_type), err_.msg);                                     \
		if (!err_.msg[0])                                                                       \
			fail_msg("%s:%d: %s: empty message", __FILE__, __LINE__, #call);                \
		char *after_ = dump((f)->path);                                                         \
		if (strcmp(before_, after_) != 0)                                                       \
			fail_msg("%s:%d: %s changed the database", __FILE__, __LINE__, #call);          \
		free(before_);                                                                          \
		free(after_);                                                                           \
	} while (0)

#define OK(call)                                                                                        \
	do {                                                                                            \
		struct qerr err_ = { 0 };                                                               \
		struct qerr *err = &err_;                                                               \
		int r_ = (call);                                                                        \
		if (r_ < 0)                                                                             \
			fail_msg("%s:%d: %s: %d %s: %s", __FILE__, __LINE__, #call, r_, err_.type,     \
			         err_.msg);                                                             \
	} while (0)

static void expect_prop(struct qdb *db, const char *qube, const char *prop, const char *want, int want_default)
{
	char *v = NULL;
	bool d;
	struct qerr e = { 0 };
	int r = qdb_prop_get(db, qube, prop, &v, &d, &e);
	if (r < 0)
		fail_msg("get %s.%s: %s: %s", qube, prop, e.type, e.msg);
	if (strcmp(v, want) != 0)
		fail_msg("%s.%s = '%s', want '%s'", qube, prop, v, want);
	if (want_default >= 0 && d != (bool)want_default)
		fail_msg("%s.%s is_default %d, want %d", qube, prop, d, want_default);
	free(v);
}

static void expect_global(struct qdb *db, const char *prop, const char *want, int want_default)
{
	char *v = NULL;
	bool d;
	struct qerr e = { 0 };
	if (qdb_global_get(db, prop, &v, &d, &e) < 0)
		fail_msg("global %s: %s: %s", prop, e.type, e.msg);
	if (strcmp(v, want) != 0)
		fail_msg("global %s = '%s', want '%s'", prop, v, want);
	if (want_default >= 0 && d != (bool)want_default)
		fail_msg("global %s is_default %d, want %d", prop, d, want_default);
	free(v);
}

/* fedora (TemplateVM), work (AppVM on fedora), sys-net (AppVM,
 * provides_network), dvm (AppVM, template_for_dispvms). */
static void populate(struct qdb *db)
{
	OK(qdb_qube_create(db, "fedora", QDB_TEMPLATEVM, NULL, "black", err));
	OK(qdb_qube_create(db, "work", QDB_APPVM, "fedora", "blue", err));
	OK(qdb_qube_create(db, "sys-net", QDB_APPVM, "fedora", "red", err));
	OK(qdb_prop_set(db, "sys-net", "provides_network", "True", err));
	OK(qdb_qube_create(db, "dvm", QDB_APPVM, "fedora", "gray", err));
	OK(qdb_prop_set(db, "dvm", "template_for_dispvms", "yes", err));
}

/* ---- open and schema ---- */

static void test_open_new(void **state)
{
	struct fx *f = *state;
	struct stat sb;
	char **names;
	size_t n;
	enum qdb_class c;
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* created aside and linked into place: nothing else is left */
	DIR *d = opendir(f->dir);
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "qubes.db") &&
		    strcmp(de->d_name, "qubes.db-wal") && strcmp(de->d_name, "qubes.db-shm"))
			fail_msg("left in %s: %s", f->dir, de->d_name);
	closedir(d);
	OK(qdb_qube_list(f->db, &names, &n, err));
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "dom0");
	qdb_strv_free(names, n);
	OK(qdb_qube_class(f->db, "dom0", &c, err));
	assert_int_equal(c, QDB_ADMINVM);
	expect_prop(f->db, "dom0", "label", "black", 0);
	expect_prop(f->db, "dom0", "qid", "0", 1);
	expect_prop(f->db, "dom0", "uuid", "00000000-0000-0000-0000-000000000000", 1);
	expect_prop(f->db, "dom0", "name", "dom0", 1);
	char *before = dump(f->path);
	assert_non_null(strstr(before, "meta|schema_version|1|"));
	/* reopening changes nothing and finds the same */
	struct qdb *db2;
	OK(qdb_open(f->path, &db2, err));
	qdb_close(db2);
	char *after = dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* WAL mode is on the file */
	sqlite3 *h;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static void sql_on(const char *path, const char *sql)
{
	sqlite3 *h;
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	char *m = NULL;
	if (sqlite3_exec(h, sql, NULL, NULL, &m) != SQLITE_OK)
		fail_msg("%s: %s", sql, m);
	sqlite3_close(h);
}

static void test_schema_newer_refused(void **state)
{
	struct fx *f = *state;
	struct qdb *db2 = NULL;
	struct qerr e = { 0 };
	qdb_close(f->db);
	f->db = NULL;
	sql_on(f->path, "UPDATE meta SET value = 7 WHERE key = 'schema_version'");
	char *before = dump(f->path);
	assert_int_equal(qdb_open(f->path, &db2, &e), -EPROTO);
	assert_null(db2);
	assert_string_equal(e.type, "QubesException");
	assert_non_null(strstr(e.msg, f->path));
	assert_non_null(strstr(e.msg, "schema_version 7"));
	assert_non_null(strstr(e.msg, "the 1 this qubed knows"));
	char *after = dump(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* and with the version back, it opens */
	sql_on(f->path, "UPDATE meta SET value = 1 WHERE key = 'schema_version'");
	OK(qdb_open(f->path, &f->db, err));
}

static void test_schema_bad_files(void **state)
{
	struct fx *f = *state;
	struct qdb *db2 = NULL;
	struct qerr e = { 0 };
	char p[160];

	/* a text file */
	snprintf(p, sizeof(p), "%s/notdb", f->dir);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database at all\n", fp);
	fclose(fp);
	assert_int_equal(qdb_open(p, &db2, &e), -EBADMSG);
	assert_null(db2);
	assert_non_null(strstr(e.msg, p));
	assert_non_null(strstr(e.msg, "not an SQLite database"));
	rm_db_files(p);

	/* an SQLite file of another program */
	snprintf(p, sizeof(p), "%s/other.db", f->dir);
	sql_on(p, "CREATE TABLE t (x); PRAGMA application_id = 42");
	memset(&e, 0, sizeof(e));
	assert_int_equal(qdb_open(p, &db2, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "another program"));
	rm_db_files(p);

	/* our id, but no schema_version */
	snprintf(p, sizeof(p), "%s/noversion.db", f->dir);
	sql_on(p, "CREATE TABLE meta (key TEXT PRIMARY KEY, value); PRAGMA application_id = 1903518309");
	memset(&e, 0, sizeof(e));
	assert_int_equal(qdb_open(p, &db2, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "schema_version"));
	rm_db_files(p);

	/* an existing empty file is initialised */
	snprintf(p, sizeof(p), "%s/empty.db", f->dir);
	fp = fopen(p, "w");
	fclose(fp);
	OK(qdb_open(p, &db2, err));
	assert_true(qdb_qube_exists(db2, "dom0"));
	qdb_close(db2);
	rm_db_files(p);

	/* a symlink is refused */
	snprintf(p, sizeof(p), "%s/link.db", f->dir);
	assert_int_equal(symlink(f->path, p), 0);
	memset(&e, 0, sizeof(e));
	assert_true(qdb_open(p, &db2, &e) < 0);
	assert_non_null(strstr(e.msg, p));
	unlink(p);
}

/* ---- classes and labels ---- */

static void test_tables(void **state)
{
	(void)state;
	enum qdb_class c;
	static const char *const names[] = { "AdminVM", "TemplateVM", "AppVM", "StandaloneVM", "DispVM" };
	for (int i = 0; i < QDB_CLASS_COUNT; i++) {
		assert_string_equal(qdb_class_name((enum qdb_class)i), names[i]);
		assert_int_equal(qdb_class_parse(names[i], &c), 0);
		assert_int_equal(c, i);
	}
	assert_int_equal(qdb_class_parse("appvm", &c), -EINVAL);
	assert_int_equal(qdb_class_parse("", &c), -EINVAL);
	assert_null(qdb_class_name((enum qdb_class)9));

	static const struct { const char *n; unsigned i, c; } L[] = {
		{ "red", 1, 0xcc0000 }, { "orange", 2, 0xf57900 }, { "yellow", 3, 0xedd400 },
		{ "green", 4, 0x73d216 }, { "gray", 5, 0x555555 }, { "blue", 6, 0x3465a4 },
		{ "purple", 7, 0x75507b }, { "black", 8, 0x000000 },
	};
	assert_int_equal(qdb_label_count(), 8);
	for (size_t i = 0; i < 8; i++) {
		const struct qdb_label *l = qdb_label_at(i);
		assert_string_equal(l->name, L[i].n);
		assert_int_equal(l->index, L[i].i);
		assert_int_equal(l->colour, L[i].c);
		assert_ptr_equal(qdb_label_lookup(L[i].n), l);
	}
	assert_null(qdb_label_at(8));
	assert_null(qdb_label_lookup("Red"));
	assert_null(qdb_label_lookup("pink"));

	/* property table: sorted, typed, documented, lookups agree */
	static const char *const types[] = { "str", "int", "bool", "vm", "label" };
	for (size_t i = 0; i < qdb_prop_count(); i++) {
		const struct qdb_prop_def *p = qdb_prop_at(i);
		assert_ptr_equal(qdb_prop_lookup(p->name), p);
		assert_string_equal(p->type, types[p->t]);
		assert_true(strlen(p->help) > 10);
		assert_non_null(p->default_doc);
		assert_true(p->classes != 0);
		if (i)
			assert_true(strcmp(qdb_prop_at(i - 1)->name, p->name) < 0);
	}
	assert_null(qdb_prop_at(qdb_prop_count()));
	assert_null(qdb_prop_lookup("nope"));
	assert_true(qdb_prop_applies(qdb_prop_lookup("template"), QDB_APPVM));
	assert_true(qdb_prop_applies(qdb_prop_lookup("template"), QDB_DISPVM));
	assert_false(qdb_prop_applies(qdb_prop_lookup("template"), QDB_TEMPLATEVM));
	assert_false(qdb_prop_applies(qdb_prop_lookup("template"), QDB_STANDALONEVM));
	assert_true(qdb_prop_applies(qdb_prop_lookup("template_for_dispvms"), QDB_APPVM));
	assert_false(qdb_prop_applies(qdb_prop_lookup("template_for_dispvms"), QDB_DISPVM));
	assert_false(qdb_prop_applies(qdb_prop_lookup("cid"), QDB_ADMINVM));
	assert_false(qdb_prop_applies(NULL, QDB_APPVM));
	for (size_t i = 0; i < qdb_global_prop_count(); i++) {
		const struct qdb_prop_def *g = qdb_global_prop_at(i);
		assert_ptr_equal(qdb_global_prop_lookup(g->name), g);
		assert_string_equal(g->type, types[g->t]);
	}
	assert_null(qdb_global_prop_at(qdb_global_prop_count()));
	assert_non_null(qdb_global_prop_lookup("default_template"));
}

/* ---- create ---- */

static bool uuid_is_v4(const char *u)
{
	if (strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return false;
		} else if (!strchr("0123456789abcdef", u[i])) {
			return false;
		}
	}
	return u[14] == '4' && strchr("89ab", u[19]);
}

static void test_create(void **state)
{
	struct fx *f = *state;
	char **names;
	size_t n;
	enum qdb_class c;
	char *u1, *u2;
	populate(f->db);
	OK(qdb_qube_create(f->db, "alone", QDB_STANDALONEVM, NULL, "green", err));
	OK(qdb_qube_create(f->db, "disp7", QDB_DISPVM, "dvm", NULL, err));
	OK(qdb_qube_list(f->db, &names, &n, err));
	static const char *const want[] = { "alone", "disp7", "dom0", "dvm", "fedora", "sys-net", "work" };
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(names[i], want[i]);
	qdb_strv_free(names, n);
	OK(qdb_qube_class(f->db, "disp7", &c, err));
	assert_int_equal(c, QDB_DISPVM);
	OK(qdb_qube_class(f->db, "alone", &c, err));
	assert_int_equal(c, QDB_STANDALONEVM);
	/* qids 1.. in order, CIDs 3.. in order */
	expect_prop(f->db, "fedora", "qid", "1", 0);
	expect_prop(f->db, "work", "qid", "2", 0);
	expect_prop(f->db, "fedora", "cid", "3", 0);
	expect_prop(f->db, "work", "cid", "4", 0);
	expect_prop(f->db, "disp7", "cid", "8", 0);
	expect_prop(f->db, "work", "template", "fedora", 0);
	expect_prop(f->db, "disp7", "template", "dvm", 0);
	/* copied from the template at creation, as Qubes clones it */
	expect_prop(f->db, "disp7", "label", "gray", 0);
	OK(qdb_prop_set(f->db, "dvm", "label", "orange", err));
	expect_prop(f->db, "disp7", "label", "gray", 0);
	OK(qdb_prop_reset(f->db, "disp7", "label", err));
	expect_prop(f->db, "disp7", "label", "orange", 1);
	OK(qdb_prop_get(f->db, "work", "uuid", &u1, NULL, err));
	OK(qdb_prop_get(f->db, "fedora", "uuid", &u2, NULL, err));
	assert_true(uuid_is_v4(u1));
	assert_true(uuid_is_v4(u2));
	assert_string_not_equal(u1, u2);
	free(u1);
	free(u2);
	char nm[32];
	OK(qdb_qube_by_cid(f->db, 4, nm, err));
	assert_string_equal(nm, "work");
	EXPECT_FAIL(f, qdb_qube_by_cid(f->db, 99, nm, err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_qube_by_cid(f->db, 2, nm, err), ENOENT, "QubesVMNotFoundError");

	/* a removed qube's CID is not handed out again; its qid is */
	OK(qdb_qube_remove(f->db, "alone", err));
	OK(qdb_qube_create(f->db, "alone2", QDB_STANDALONEVM, NULL, "green", err));
	expect_prop(f->db, "alone2", "cid", "9", 0);
	expect_prop(f->db, "alone2", "qid", "5", 0);

	/* AppVM without a template: default_template */
	EXPECT_FAIL(f, qdb_qube_create(f->db, "x", QDB_APPVM, NULL, "red", err), EINVAL, "QubesValueError");
	OK(qdb_global_set(f->db, "default_template", "fedora", err));
	OK(qdb_qube_create(f->db, "x", QDB_APPVM, NULL, "red", err));
	expect_prop(f->db, "x", "template", "fedora", 0);
	/* DispVM without a template: default_dispvm */
	EXPECT_FAIL(f, qdb_qube_create(f->db, "d2", QDB_DISPVM, NULL, NULL, err), EINVAL, "QubesValueError");
	OK(qdb_global_set(f->db, "default_dispvm", "dvm", err));
	OK(qdb_qube_create(f->db, "d2", QDB_DISPVM, NULL, "purple", err));
	expect_prop(f->db, "d2", "template", "dvm", 0);
	expect_prop(f->db, "d2", "label", "purple", 0);
}

static void test_create_refused(void **state)
{
	struct fx *f = *state;
	populate(f->db);
	static const char *const bad[] = {
		"", "1abc", "_x", "-x", ".x", "a b", "a/b", "a\nb", "a\tb", "\xc3\xa9t\xc3\xa9",
		"abcdefghijklmnopqrstuvwxyz012345", /* 32 */
		"none", "default", "Domain-0", "sys-dm", "a+b", "a:b", "@dispvm", "a\x7f", "dom0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_FAIL(f, qdb_qube_create(f->db, bad[i], QDB_STANDALONEVM, NULL, "red", err), EINVAL,
		            "QubesValueError");
	/* 31 bytes is fine */
	OK(qdb_qube_create(f->db, "abcdefghijklmnopqrstuvwxyz01234", QDB_STANDALONEVM, NULL, "red", err));
	EXPECT_FAIL(f, qdb_qube_create(f->db, NULL, QDB_STANDALONEVM, NULL, "red", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "work", QDB_APPVM, "fedora", "red", err), EEXIST,
	            "QubesVMAlreadyExistsError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "dom1", QDB_ADMINVM, NULL, "red", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", (enum qdb_class)17, NULL, "red", err), EINVAL, "QubesValueError");
	/* labels */
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_STANDALONEVM, NULL, "pink", err), EINVAL,
	            "QubesLabelNotFoundError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_STANDALONEVM, NULL, NULL, err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_STANDALONEVM, NULL, "", err), EINVAL,
	            "QubesLabelNotFoundError");
	/* templates */
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_APPVM, "nosuch", "red", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_APPVM, "work", "red", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_APPVM, "dom0", "red", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_APPVM, "", "red", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_APPVM, "bad name", "red", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_DISPVM, "work", NULL, err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_DISPVM, "fedora", NULL, err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_TEMPLATEVM, "fedora", "red", err), EINVAL,
	            "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_create(f->db, "y", QDB_STANDALONEVM, "fedora", "red", err), EINVAL,
	            "QubesValueError");
	/* the message names the qube, the property and the value */
	struct qerr e = { 0 };
	assert_true(qdb_qube_create(f->db, "y", QDB_APPVM, "work", "red", &e) < 0);
	assert_non_null(strstr(e.msg, "'work'"));
	assert_non_null(strstr(e.msg, "'template'"));
	assert_non_null(strstr(e.msg, "y"));
	assert_non_null(strstr(e.msg, "TemplateVM"));
}

/* ---- disposables ---- */

static void test_dispvm(void **state)
{
	struct fx *f = *state;
	char nm[32];
	populate(f->db);
	OK(qdb_prop_set(f->db, "dvm", "memory", "800", err));
	OK(qdb_tag_set(f->db, "dvm", "mytag", err));
	OK(qdb_feature_set(f->db, "dvm", "gui", "1", err));
	OK(qdb_dispvm_next_name(f->db, nm, err));
	assert_string_equal(nm, "disp1");
	OK(qdb_qube_create(f->db, nm, QDB_DISPVM, "dvm", NULL, err));
	/* inherits set properties, tags, features; not template_for_dispvms */
	expect_prop(f->db, "disp1", "memory", "800", 0);
	expect_prop(f->db, "disp1", "vcpus", "2", 1);
	expect_prop(f->db, "disp1", "default_dispvm", "dvm", 1);
	assert_true(qdb_tag_has(f->db, "disp1", "mytag"));
	char *v;
	OK(qdb_feature_get(f->db, "disp1", "gui", &v, err));
	assert_string_equal(v, "1");
	free(v);
	OK(qdb_dispvm_next_name(f->db, nm, err));
	assert_string_equal(nm, "disp2");
	OK(qdb_qube_create(f->db, "disp2", QDB_DISPVM, "dvm", NULL, err));
	/* a number is reused only once free; the counter moves on */
	OK(qdb_qube_remove(f->db, "disp1", err));
	OK(qdb_dispvm_next_name(f->db, nm, err));
	assert_string_equal(nm, "disp3");
	OK(qdb_qube_create(f->db, "disp9999", QDB_DISPVM, "dvm", NULL, err));
	OK(qdb_dispvm_next_name(f->db, nm, err));
	assert_string_equal(nm, "disp1"); /* wrapped: disp1 is free again */
	OK(qdb_qube_create(f->db, "disp1", QDB_STANDALONEVM, NULL, "red", err));
	OK(qdb_dispvm_next_name(f->db, nm, err));
	assert_string_equal(nm, "disp3"); /* disp2 still exists */
	/* the disposable template cannot stop being one while used */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "dvm", "template_for_dispvms", "False", err), EBUSY, "QubesVMInUseError");
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "dvm", "template_for_dispvms", err), EBUSY, "QubesVMInUseError");
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "dvm", err), EBUSY, "QubesVMInUseError");
	OK(qdb_qube_remove(f->db, "disp2", err));
	OK(qdb_qube_remove(f->db, "disp9999", err));
	OK(qdb_prop_set(f->db, "dvm", "template_for_dispvms", "False", err));
}

/* ---- properties ---- */

static void test_prop_defaults(void **state)
{
	struct fx *f = *state;
	populate(f->db);
	expect_prop(f->db, "work", "memory", "400", 1);
	expect_prop(f->db, "work", "vcpus", "2", 1);
	expect_prop(f->db, "work", "maxmem", "4000", 1);
	expect_prop(f->db, "work", "kernel", "", 1);
	expect_prop(f->db, "work", "kernelopts", "", 1);
	expect_prop(f->db, "work", "netvm", "", 1);
	expect_prop(f->db, "work", "autostart", "False", 1);
	expect_prop(f->db, "work", "internal", "False", 1);
	expect_prop(f->db, "work", "template_for_dispvms", "False", 1);
	expect_prop(f->db, "work", "default_dispvm", "", 1);
	expect_prop(f->db, "work", "label", "blue", 0);
	expect_prop(f->db, "work", "name", "work", 0);
	/* template values flow down */
	OK(qdb_prop_set(f->db, "fedora", "memory", "1000", err));
	OK(qdb_prop_set(f->db, "fedora", "kernel", "6.1.0-13-amd64", err));
	expect_prop(f->db, "work", "memory", "1000", 1);
	expect_prop(f->db, "work", "kernel", "6.1.0-13-amd64", 1);
	OK(qdb_prop_set(f->db, "work", "memory", "0500", err)); /* canonical form stored */
	expect_prop(f->db, "work", "memory", "500", 0);
	char *v;
	OK(qdb_prop_get_default(f->db, "work", "memory", &v, err));
	assert_string_equal(v, "1000");
	free(v);
	OK(qdb_prop_reset(f->db, "work", "memory", err));
	expect_prop(f->db, "work", "memory", "1000", 1);
	/* maxmem follows the os feature when not template-based */
	OK(qdb_qube_create(f->db, "alone", QDB_STANDALONEVM, NULL, "green", err));
	expect_prop(f->db, "alone", "maxmem", "4000", 1);
	OK(qdb_feature_set(f->db, "alone", "os", "Linux", err));
	OK(qdb_prop_set(f->db, "alone", "memory", "300", err));
	expect_prop(f->db, "alone", "maxmem", "3000", 1);
	/* globals */
	expect_global(f->db, "default_kernel", "", 1);
	OK(qdb_global_set(f->db, "default_kernel", "6.6", err));
	expect_global(f->db, "default_kernel", "6.6", 0);
	expect_prop(f->db, "alone", "kernel", "6.6", 1);
	expect_prop(f->db, "work", "kernel", "6.1.0-13-amd64", 1);
	OK(qdb_prop_set(f->db, "sys-net", "netvm", "", err));
	OK(qdb_global_set(f->db, "default_netvm", "sys-net", err));
	expect_prop(f->db, "work", "netvm", "sys-net", 1);
	expect_prop(f->db, "fedora", "netvm", "", 1); /* templates: none */
	expect_prop(f->db, "sys-net", "netvm", "", 0);
	OK(qdb_global_set(f->db, "default_dispvm", "dvm", err));
	expect_prop(f->db, "work", "default_dispvm", "dvm", 1);
	expect_prop(f->db, "dom0", "default_dispvm", "dvm", 1);
	OK(qdb_global_reset(f->db, "default_dispvm", err));
	expect_global(f->db, "default_dispvm", "", 1);
	/* explicit none differs from default */
	OK(qdb_prop_set(f->db, "work", "netvm", "", err));
	expect_prop(f->db, "work", "netvm", "", 0);
	/* bools */
	static const char *const yes[] = { "True", "true", "1", "yes", "YES", "on" };
	static const char *const no[] = { "False", "false", "0", "no", "Off" };
	for (size_t i = 0; i < 6; i++) {
		OK(qdb_prop_set(f->db, "work", "autostart", yes[i], err));
		expect_prop(f->db, "work", "autostart", "True", 0);
	}
	for (size_t i = 0; i < 5; i++) {
		OK(qdb_prop_set(f->db, "work", "autostart", no[i], err));
		expect_prop(f->db, "work", "autostart", "False", 0);
	}
	OK(qdb_prop_set(f->db, "dom0", "label", "purple", err));
	expect_prop(f->db, "dom0", "label", "purple", 0);
}

static void test_sys_net_self_default(void **state)
{
	struct fx *f = *state;
	populate(f->db);
	/* sys-net follows default_netvm: setting it to sys-net loops */
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_netvm", "sys-net", err), EINVAL, "QubesPropertyValueError");
	OK(qdb_prop_set(f->db, "sys-net", "netvm", "", err));
	OK(qdb_global_set(f->db, "default_netvm", "sys-net", err));
	/* loops */
	OK(qdb_qube_create(f->db, "fw", QDB_APPVM, "fedora", "green", err));
	OK(qdb_prop_set(f->db, "fw", "provides_network", "True", err));
	OK(qdb_prop_set(f->db, "fw", "netvm", "sys-net", err));
	EXPECT_FAIL(f, qdb_prop_set(f->db, "sys-net", "netvm", "fw", err), ELOOP, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "fw", "netvm", "fw", err), ELOOP, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "sys-net", "netvm", err), ELOOP, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "netvm", "dvm", err), EINVAL, "QubesValueError");
	OK(qdb_prop_set(f->db, "work", "netvm", "fw", err));
	/* a netvm in use keeps provides_network */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "fw", "provides_network", "False", err), EBUSY, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "sys-net", "provides_network", "0", err), EBUSY, "QubesValueError");
	struct qerr e = { 0 };
	assert_true(qdb_prop_set(f->db, "fw", "provides_network", "False", &e) < 0);
	assert_non_null(strstr(e.msg, "work (netvm)"));
	OK(qdb_prop_set(f->db, "fw", "provides_network", "True", err)); /* no-op is fine */
}

static void test_prop_refused(void **state)
{
	struct fx *f = *state;
	char *v = NULL;
	bool d;
	populate(f->db);
	OK(qdb_qube_create(f->db, "disp1", QDB_DISPVM, "dvm", NULL, err));
	/* unknown, or not of the class */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "nosuch", "1", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "", "1", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", NULL, "1", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "fedora", "template", "fedora", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "fedora", "template_for_dispvms", "True", err), ENOENT,
	            "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "disp1", "template_for_dispvms", "True", err), ENOENT,
	            "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "dom0", "memory", "400", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_get(f->db, "dom0", "cid", &v, &d, err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_get(f->db, "dom0", "netvm", &v, &d, err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "work", "nosuch", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_prop_get_default(f->db, "work", "nosuch", &v, err), ENOENT, "QubesNoSuchPropertyError");
	/* no such qube */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "nosuch", "memory", "1", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_prop_get(f->db, "bad name", "memory", &v, &d, err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_prop_get(f->db, NULL, "memory", &v, &d, err), ENOENT, "QubesVMNotFoundError");
	assert_null(v);
	/* read-only */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "name", "other", err), EPERM, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "qid", "7", err), EPERM, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "uuid", "00000000-0000-4000-8000-000000000000", err), EPERM,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "cid", "77", err), EPERM, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "work", "cid", err), EPERM, "QubesPropertyValueError");
	struct qerr e = { 0 };
	assert_true(qdb_prop_set(f->db, "work", "name", "other", &e) < 0);
	assert_non_null(strstr(e.msg, "renaming"));
	/* no default */
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "work", "template", err), ENODATA, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_reset(f->db, "work", "label", err), ENODATA, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_get_default(f->db, "work", "template", &v, err), ENODATA, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_get_default(f->db, "work", "qid", &v, err), ENODATA, "QubesValueError");
	assert_null(v);
	/* vm values */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "template", "", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "template", "nosuch", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "template", "dvm", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "disp1", "template", "work", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "default_dispvm", "work", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "default_dispvm", "fedora", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "netvm", "nosuch", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "netvm", "dom0", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "netvm", "none", err), EINVAL, "QubesPropertyValueError");
	/* label */
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "label", "pink", err), EINVAL, "QubesLabelNotFoundError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "label", "Red", err), EINVAL, "QubesLabelNotFoundError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "label", "", err), EINVAL, "QubesLabelNotFoundError");
	EXPECT_FAIL(f, qdb_prop_set(f->db, "work", "label", NULL, err), EINVAL, "QubesPropertyValueError");
	/* globals */
	EXPECT_FAIL(f, qdb_global_set(f->db, "nosuch", "x", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_global_get(f->db, "memory", &v, &d, err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_global_reset(f->db, "", err), ENOENT, "QubesNoSuchPropertyError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_template", "work", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_template", "nosuch", err), EINVAL,
	            "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_dispvm", "work", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_netvm", "work", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", "../x", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", "..", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", "6.1\n", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", "6.1\x1b[0m", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", "\xc3\xa9", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_kernel", NULL, err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "default_netvm", "sys-net\n", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "updatevm", "none", err), EINVAL, "QubesPropertyValueError");
	EXPECT_FAIL(f, qdb_global_set(f->db, "clockvm", "bad name", err), EINVAL, "QubesPropertyValueError");
	OK(qdb_global_set(f->db, "clockvm", "sys-net", err));
	OK(qdb_global_set(f->db, "updatevm", "", err));
	expect_global(f->db, "updatevm", "", 0);
}

/* Hostile values, one row each: property, value, expected error type. */
static void test_hostile_values(void **state)
{
	struct fx *f = *state;
	char long_opts[600], long_kernel[300], huge[2000];
	memset(long_opts, 'a', sizeof(long_opts) - 1);
	long_opts[sizeof(long_opts) - 1] = '\0';
	memset(long_kernel, 'k', sizeof(long_kernel) - 1);
	long_kernel[sizeof(long_kernel) - 1] = '\0';
	memset(huge, '9', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	static const char *PVE = "QubesPropertyValueError";
	const struct { const char *prop, *value, *type; } rows[] = {
		{ "memory", "", PVE },
		{ "memory", "abc", PVE },
		{ "memory", "0", PVE },
		{ "memory", "-1", PVE },
		{ "memory", " 400", PVE },
		{ "memory", "400 ", PVE },
		{ "memory", "+400", PVE },
		{ "memory", "4e2", PVE },
		{ "memory", "0x190", PVE },
		{ "memory", "400\n", PVE },
		{ "memory", "1048577", PVE },
		{ "memory", "99999999999999999999", PVE },
		{ "memory", huge, PVE },
		{ "maxmem", "-1", PVE },
		{ "vcpus", "0", PVE },
		{ "vcpus", "257", PVE },
		{ "vcpus", "2.5", PVE },
		{ "autostart", "", PVE },
		{ "autostart", "maybe", PVE },
		{ "autostart", "truee", PVE },
		{ "autostart", "True\n", PVE },
		{ "autostart", "t", PVE },
		{ "kernelopts", "a\nb", PVE },
		{ "kernelopts", "a\tb", PVE },
		{ "kernelopts", "a\rb", PVE },
		{ "kernelopts", "\x1b[31m", PVE },
		{ "kernelopts", "a\x7f", PVE },
		{ "kernelopts", "caf\xc3\xa9", PVE },
		{ "kernelopts", "\xff\xfe", PVE },
		{ "kernelopts", long_opts, PVE },
		{ "kernel", "../../etc", PVE },
		{ "kernel", "a/b", PVE },
		{ "kernel", "..", PVE },
		{ "kernel", ".", PVE },
		{ "kernel", long_kernel, PVE },
		{ "kernel", "6.1\n", PVE },
		{ "netvm", "sys net", PVE },
		{ "netvm", "sys-net\n", PVE },
		{ "netvm", "SYS-NET", PVE },
		{ "netvm", "@default", PVE },
		{ "template", "fedora\n", PVE },
		{ "template", "fedora ", PVE },
		{ "label", "red\n", "QubesLabelNotFoundError" },
		{ "label", "0xcc0000", "QubesLabelNotFoundError" },
		{ "label", "1", "QubesLabelNotFoundError" },
		{ "label", "label-1", "QubesLabelNotFoundError" },
	};
	populate(f->db);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *before = dump(f->path);
		struct qerr e = { 0 };
		int r = qdb_prop_set(f->db, "work", rows[i].prop, rows[i].value, &e);
		if (r >= 0)
			fail_msg("row %zu: %s = '%s' accepted", i, rows[i].prop, rows[i].value);
		if (strcmp(e.type, rows[i].type) != 0)
			fail_msg("row %zu: %s: %s, want %s (%s)", i, rows[i].prop, e.type, rows[i].type, e.msg);
		/* the message is printable, bounded, and names qube and property */
		for (const char *p = e.msg; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				fail_msg("row %zu: unprintable message byte 0x%02x", i, (unsigned char)*p);
		assert_non_null(strstr(e.msg, "work"));
		if (strcmp(rows[i].prop, "label") != 0)
			assert_non_null(strstr(e.msg, rows[i].prop));
		char *after = dump(f->path);
		if (strcmp(before, after) != 0)
			fail_msg("row %zu changed the database", i);
		free(before);
		free(after);
	}
	/* the limits themselves are accepted */
	long_opts[512] = '\0';
	OK(qdb_prop_set(f->db, "work", "kernelopts", long_opts, err));
	long_kernel[255] = '\0';
	OK(qdb_prop_set(f->db, "work", "kernel", long_kernel, err));
	OK(qdb_prop_set(f->db, "work", "kernel", "", err));
	OK(qdb_prop_set(f->db, "work", "memory", "1048576", err));
	OK(qdb_prop_set(f->db, "work", "maxmem", "0", err));
	OK(qdb_prop_set(f->db, "work", "vcpus", "256", err));
	OK(qdb_prop_set(f->db, "work", "kernelopts", "console=hvc0 quiet x=\"a b\" ~!@#$%^&*()", err));
}

/* Table-driven checks of the pure validators with hostile text. */
static void test_text_validators(void **state)
{
	(void)state;
	const char *why;
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const struct { const char *s; bool ok; } utf8[] = {
		{ "", true },
		{ "plain text", true },
		{ "caf\xc3\xa9", true },
		{ "\xe2\x82\xac", true },          /* euro sign */
		{ "\xf0\x9f\x98\x80", true },      /* emoji */
		{ "\xc3", false },                 /* truncated */
		{ "\xe2\x82", false },             /* truncated */
		{ "\xc0\xaf", false },             /* overlong '/' */
		{ "\xe0\x80\xaf", false },         /* overlong */
		{ "\xed\xa0\x80", false },         /* surrogate */
		{ "\xf4\x90\x80\x80", false },     /* > U+10FFFF */
		{ "\xf8\x88\x80\x80\x80", false }, /* 5 bytes */
		{ "\x80", false },
		{ "\xc2\x85", false }, /* C1 NEL */
		{ "a\nb", false },
		{ "a\tb", false },
		{ "\x7f", false },
		{ "\x1b[2J", false },
	};
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		if (qdb_text_is_valid(utf8[i].s, 64, &why) != utf8[i].ok)
			fail_msg("utf8 row %zu: want %d", i, utf8[i].ok);
	assert_false(qdb_text_is_valid(big, 1024, &why));
	big[1024] = '\0';
	assert_true(qdb_text_is_valid(big, 1024, &why));

	const struct { const char *s; bool ok; } tags[] = {
		{ "a", true }, { "my-tag_2", true }, { "", false }, { "a.b", false }, { "a b", false },
		{ "a\n", false }, { "@tag", false }, { "t\xc3\xa9", false }, { "a:b", false },
		{ "1234567890123456789012345678901234567890123456789012345678901234", true },
		{ "12345678901234567890123456789012345678901234567890123456789012345", false },
	};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (qdb_tag_is_valid(tags[i].s, &why) != tags[i].ok)
			fail_msg("tag row %zu: want %d", i, tags[i].ok);
	assert_true(qdb_feature_key_is_valid("service.qubes-update-check", &why));
	assert_false(qdb_feature_key_is_valid("a/b", &why));
	assert_false(qdb_feature_key_is_valid("", &why));

	char q[300];
	qdb_quote(q, "a\nb'\\");
	assert_string_equal(q, "'a\\x0ab\\x27\\x5c'");
	qdb_quote(q, big);
	assert_int_equal(strlen(q), 1 + 64 + 4);
	qdb_quote(q, NULL);
	assert_string_equal(q, "''");
}

/* ---- remove and clone ---- */

static void test_remove(void **state)
{
	struct fx *f = *state;
	struct qerr e = { 0 };
	populate(f->db);
	OK(qdb_qube_create(f->db, "work2", QDB_APPVM, "fedora", "red", err));
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "dom0", err), EPERM, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "nosuch", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "fedora", err), EBUSY, "QubesVMInUseError");
	assert_true(qdb_qube_remove(f->db, "fedora", &e) < 0);
	assert_non_null(strstr(e.msg, "'fedora'"));
	assert_non_null(strstr(e.msg, "work (template)"));
	assert_non_null(strstr(e.msg, "work2 (template)"));
	assert_non_null(strstr(e.msg, "sys-net (template)"));
	/* netvm, explicit and through the default */
	OK(qdb_prop_set(f->db, "work", "netvm", "sys-net", err));
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "sys-net", err), EBUSY, "QubesVMInUseError");
	OK(qdb_prop_set(f->db, "work", "netvm", "", err));
	OK(qdb_global_set(f->db, "default_template", "fedora", err));
	OK(qdb_prop_set(f->db, "sys-net", "netvm", "", err));
	OK(qdb_global_set(f->db, "default_netvm", "sys-net", err));
	memset(&e, 0, sizeof(e));
	assert_true(qdb_qube_remove(f->db, "sys-net", &e) < 0);
	assert_non_null(strstr(e.msg, "work2 (netvm)"));
	assert_non_null(strstr(e.msg, "@GLOBAL (default_netvm)"));
	assert_null(strstr(e.msg, "work (netvm)")); /* work has none, explicitly */
	OK(qdb_global_reset(f->db, "default_netvm", err));
	/* default_dispvm of a qube and the global */
	OK(qdb_prop_set(f->db, "work", "default_dispvm", "dvm", err));
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "dvm", err), EBUSY, "QubesVMInUseError");
	OK(qdb_prop_reset(f->db, "work", "default_dispvm", err));
	OK(qdb_global_set(f->db, "default_dispvm", "dvm", err));
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "dvm", err), EBUSY, "QubesVMInUseError");
	OK(qdb_global_reset(f->db, "default_dispvm", err));
	/* removal takes tags, features and properties with it */
	OK(qdb_tag_set(f->db, "work2", "t1", err));
	OK(qdb_feature_set(f->db, "work2", "k", "v", err));
	OK(qdb_prop_set(f->db, "work2", "memory", "600", err));
	OK(qdb_qube_remove(f->db, "work2", err));
	assert_false(qdb_qube_exists(f->db, "work2"));
	char *d = dump(f->path);
	assert_null(strstr(d, "t1"));
	assert_null(strstr(d, "|600|"));
	free(d);
	OK(qdb_qube_remove(f->db, "dvm", err));
	OK(qdb_qube_remove(f->db, "sys-net", err));
	OK(qdb_qube_remove(f->db, "work", err));
	EXPECT_FAIL(f, qdb_qube_remove(f->db, "fedora", err), EBUSY, "QubesVMInUseError"); /* global */
	OK(qdb_global_reset(f->db, "default_template", err));
	OK(qdb_qube_remove(f->db, "fedora", err));
}

static void test_clone(void **state)
{
	struct fx *f = *state;
	char *u1, *u2;
	populate(f->db);
	OK(qdb_prop_set(f->db, "work", "memory", "777", err));
	OK(qdb_prop_set(f->db, "work", "netvm", "sys-net", err));
	OK(qdb_tag_set(f->db, "work", "t1", err));
	OK(qdb_feature_set(f->db, "work", "k", "v", err));
	OK(qdb_qube_clone(f->db, "work", "work-copy", err));
	expect_prop(f->db, "work-copy", "memory", "777", 0);
	expect_prop(f->db, "work-copy", "vcpus", "2", 1);
	expect_prop(f->db, "work-copy", "netvm", "sys-net", 0);
	expect_prop(f->db, "work-copy", "template", "fedora", 0);
	expect_prop(f->db, "work-copy", "label", "blue", 0);
	expect_prop(f->db, "work-copy", "qid", "5", 0);
	expect_prop(f->db, "work-copy", "cid", "7", 0);
	assert_true(qdb_tag_has(f->db, "work-copy", "t1"));
	char *v;
	OK(qdb_feature_get(f->db, "work-copy", "k", &v, err));
	assert_string_equal(v, "v");
	free(v);
	OK(qdb_prop_get(f->db, "work", "uuid", &u1, NULL, err));
	OK(qdb_prop_get(f->db, "work-copy", "uuid", &u2, NULL, err));
	assert_string_not_equal(u1, u2);
	free(u1);
	free(u2);
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "work", "fedora", err), EEXIST, "QubesVMAlreadyExistsError");
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "work", "bad name", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "work", "dom0", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "nosuch", "x", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "dom0", "x", err), EPERM, "QubesValueError");
	/* a template clone can serve as a template */
	OK(qdb_qube_clone(f->db, "fedora", "fedora2", err));
	OK(qdb_prop_set(f->db, "work", "template", "fedora2", err));
}

/* ---- tags and features ---- */

static void test_tags(void **state)
{
	struct fx *f = *state;
	char **v;
	size_t n;
	populate(f->db);
	OK(qdb_tag_set(f->db, "work", "zeta", err));
	OK(qdb_tag_set(f->db, "work", "alpha", err));
	OK(qdb_tag_set(f->db, "work", "alpha", err)); /* again: fine */
	OK(qdb_tag_set(f->db, "dom0", "host", err));
	OK(qdb_tag_list(f->db, "work", &v, &n, err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "alpha");
	assert_string_equal(v[1], "zeta");
	qdb_strv_free(v, n);
	assert_true(qdb_tag_has(f->db, "work", "zeta"));
	assert_false(qdb_tag_has(f->db, "fedora", "zeta"));
	assert_false(qdb_tag_has(f->db, "nosuch", "zeta"));
	assert_false(qdb_tag_has(f->db, "work", "bad tag"));
	OK(qdb_tag_remove(f->db, "work", "zeta", err));
	EXPECT_FAIL(f, qdb_tag_remove(f->db, "work", "zeta", err), ENOENT, "QubesTagNotFoundError");
	EXPECT_FAIL(f, qdb_tag_set(f->db, "work", "", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_tag_set(f->db, "work", "a.b", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_tag_set(f->db, "work", "a\n", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_tag_set(f->db, "work", NULL, err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_tag_set(f->db, "nosuch", "ok", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_tag_remove(f->db, "work", "bad/tag", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_tag_list(f->db, "nosuch", &v, &n, err), ENOENT, "QubesVMNotFoundError");
}

static void test_features(void **state)
{
	struct fx *f = *state;
	char **keys;
	size_t n;
	char *v = NULL;
	char big[1100];
	populate(f->db);
	OK(qdb_feature_set(f->db, "work", "service.x", "1", err));
	OK(qdb_feature_set(f->db, "work", "a", "", err));
	OK(qdb_feature_set(f->db, "work", "utf", "caf\xc3\xa9 \xe2\x82\xac", err));
	OK(qdb_feature_set(f->db, "work", "a", "second", err));
	OK(qdb_feature_list(f->db, "work", &keys, &n, err));
	assert_int_equal(n, 3);
	assert_string_equal(keys[0], "a");
	assert_string_equal(keys[1], "service.x");
	assert_string_equal(keys[2], "utf");
	qdb_strv_free(keys, n);
	OK(qdb_feature_get(f->db, "work", "a", &v, err));
	assert_string_equal(v, "second");
	free(v);
	v = NULL;
	OK(qdb_feature_remove(f->db, "work", "a", err));
	EXPECT_FAIL(f, qdb_feature_get(f->db, "work", "a", &v, err), ENOENT, "QubesFeatureNotFoundError");
	assert_null(v);
	EXPECT_FAIL(f, qdb_feature_remove(f->db, "work", "a", err), ENOENT, "QubesFeatureNotFoundError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "", "1", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "a b", "1", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "a/b", "1", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "k", "a\nb", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "k", "\xc3", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "k", "\xc2\x9b", err), EINVAL, "QubesValueError");
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "k", NULL, err), EINVAL, "QubesValueError");
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	EXPECT_FAIL(f, qdb_feature_set(f->db, "work", "k", big, err), EINVAL, "QubesValueError");
	big[1024] = '\0';
	OK(qdb_feature_set(f->db, "work", "k", big, err));
	EXPECT_FAIL(f, qdb_feature_set(f->db, "nosuch", "k", "1", err), ENOENT, "QubesVMNotFoundError");
	EXPECT_FAIL(f, qdb_feature_get(f->db, "work", "bad key", &v, err), EINVAL, "QubesValueError");
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
	struct fx *f = *state;
	populate(f->db);
	char *before = dump(f->path);
	OK(qdb_begin(f->db, err));
	EXPECT_FAIL(f, qdb_begin(f->db, err), EBUSY, "QubesException");
	OK(qdb_qube_create(f->db, "t1", QDB_APPVM, "fedora", "red", err));
	OK(qdb_prop_set(f->db, "t1", "memory", "900", err));
	qdb_rollback(f->db);
	char *after = dump(f->path);
	assert_string_equal(before, after);
	free(after);
	assert_false(qdb_qube_exists(f->db, "t1"));

	/* a failed call inside a transaction undoes only itself */
	OK(qdb_begin(f->db, err));
	OK(qdb_qube_create(f->db, "t1", QDB_APPVM, "fedora", "red", err));
	struct qerr e = { 0 };
	assert_true(qdb_prop_set(f->db, "t1", "memory", "zero", &e) < 0);
	assert_true(qdb_qube_create(f->db, "t1", QDB_APPVM, "fedora", "red", &e) < 0);
	OK(qdb_prop_set(f->db, "t1", "vcpus", "4", err));
	/* nothing is visible to another connection before commit */
	after = dump(f->path);
	assert_string_equal(before, after);
	free(after);
	OK(qdb_commit(f->db, err));
	expect_prop(f->db, "t1", "vcpus", "4", 0);
	expect_prop(f->db, "t1", "memory", "400", 1);
	EXPECT_FAIL(f, qdb_commit(f->db, err), EINVAL, "QubesException");
	qdb_rollback(f->db); /* nothing open: no-op */
	qdb_rollback(NULL);
	free(before);
}

/* Limits: qids run out at 9999 qubes; the CID counter wraps; a long list
 * of users is cut, with the count; disposable names run out. */
static void test_limits(void **state)
{
	struct fx *f = *state;
	char nm[40];
	populate(f->db); /* qids 1-4 */
	/* a long user list stays bounded and says how many */
	OK(qdb_begin(f->db, err));
	for (int i = 0; i < 60; i++) {
		snprintf(nm, sizeof(nm), "app-with-a-long-name-%02d", i);
		OK(qdb_qube_create(f->db, nm, QDB_APPVM, "fedora", "red", err));
	}
	OK(qdb_commit(f->db, err));
	struct qerr e = { 0 };
	assert_int_equal(qdb_qube_remove(f->db, "fedora", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "used by 63:"));
	assert_non_null(strstr(e.msg, ", ..."));
	assert_true(strlen(e.msg) < sizeof(e.msg));

	/* qids: a few through the API, the rest (to 9999) straight in SQL */
	OK(qdb_begin(f->db, err));
	for (int i = 65; i <= 100; i++) {
		snprintf(nm, sizeof(nm), "q%d", i);
		OK(qdb_qube_create(f->db, nm, QDB_STANDALONEVM, NULL, "red", err));
	}
	OK(qdb_commit(f->db, err));
	expect_prop(f->db, "q100", "qid", "100", 0);
	qdb_close(f->db);
	sql_on(f->path, "WITH RECURSIVE n(i) AS (SELECT 101 UNION ALL SELECT i + 1 FROM n WHERE i < 9999) "
	                "INSERT INTO qubes SELECT i, 'q' || i, 'StandaloneVM', "
	                "printf('%08x-0000-4000-8000-000000000000', i), NULL FROM n");
	OK(qdb_open(f->path, &f->db, err));
	EXPECT_FAIL(f, qdb_qube_create(f->db, "one-more", QDB_STANDALONEVM, NULL, "red", err), ENOSPC,
	            "QubesException");
	/* a freed qid is the lowest free one */
	OK(qdb_qube_remove(f->db, "q5000", err));
	OK(qdb_qube_remove(f->db, "q500", err));
	OK(qdb_qube_create(f->db, "one-more", QDB_STANDALONEVM, NULL, "red", err));
	expect_prop(f->db, "one-more", "qid", "500", 0);
	OK(qdb_qube_create(f->db, "two-more", QDB_STANDALONEVM, NULL, "red", err));
	expect_prop(f->db, "two-more", "qid", "5000", 0);
	qdb_close(f->db);
	sql_on(f->path, "PRAGMA foreign_keys = ON; DELETE FROM qubes WHERE qid > 100");
	OK(qdb_open(f->path, &f->db, err));
	OK(qdb_begin(f->db, err));
	for (int i = 70; i <= 100; i++) {
		snprintf(nm, sizeof(nm), "q%d", i);
		OK(qdb_qube_remove(f->db, nm, err));
	}
	OK(qdb_commit(f->db, err));

	/* the CID counter wraps past 0xfffffffe to the lowest free from 3 */
	qdb_close(f->db);
	sql_on(f->path, "UPDATE meta SET value = 4294967294 WHERE key = 'next_cid'");
	OK(qdb_open(f->path, &f->db, err));
	OK(qdb_qube_create(f->db, "c1", QDB_STANDALONEVM, NULL, "red", err));
	OK(qdb_qube_create(f->db, "c2", QDB_STANDALONEVM, NULL, "red", err));
	expect_prop(f->db, "c1", "cid", "4294967294", 0);
	/* wrapped: 3-71 are held (fedora .. q69), 72-102 were q70-q100's */
	expect_prop(f->db, "c2", "cid", "72", 0);
	OK(qdb_qube_by_cid(f->db, 4294967294u, nm, err));
	assert_string_equal(nm, "c1");
}

static void test_open_refused(void **state)
{
	struct fx *f = *state;
	struct qdb *db2 = NULL;
	struct qerr e = { 0 };
	char p[160];
	assert_int_equal(qdb_open(NULL, &db2, &e), -EINVAL);
	assert_int_equal(qdb_open("", &db2, &e), -EINVAL);
	snprintf(p, sizeof(p), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	memset(&e, 0, sizeof(e));
	assert_int_equal(qdb_open(p, &db2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	unlink(p);
	memset(&e, 0, sizeof(e));
	assert_true(qdb_open(f->dir, &db2, &e) < 0); /* a directory */
	assert_non_null(strstr(e.msg, f->dir));
	snprintf(p, sizeof(p), "%s/no/such/dir/qubes.db", f->dir);
	memset(&e, 0, sizeof(e));
	assert_int_equal(qdb_open(p, &db2, &e), -ENOENT);
	assert_non_null(strstr(e.msg, p));
	assert_null(db2);
	/* dom0 gone: damaged */
	qdb_close(f->db);
	f->db = NULL;
	sql_on(f->path, "PRAGMA foreign_keys = ON; DELETE FROM qubes WHERE qid = 0");
	memset(&e, 0, sizeof(e));
	assert_int_equal(qdb_open(f->path, &db2, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "dom0 is missing"));
	qdb_close(NULL);
	qdb_strv_free(NULL, 0);
}

/* A failure in the middle of a multi-statement change (injected with a
 * trigger through a second connection) undoes the statements before it. */
static void test_midway_failure(void **state)
{
	struct fx *f = *state;
	struct qerr e = { 0 };
	populate(f->db);
	OK(qdb_prop_set(f->db, "dvm", "memory", "900", err));
	OK(qdb_tag_set(f->db, "dvm", "t", err));
	OK(qdb_feature_set(f->db, "dvm", "boom", "1", err));
	OK(qdb_feature_set(f->db, "work", "boom", "1", err));
	qdb_close(f->db);
	sql_on(f->path, "CREATE TRIGGER boom BEFORE INSERT ON features WHEN NEW.key = 'boom' AND NEW.qid > 4 "
	                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	OK(qdb_open(f->path, &f->db, err));
	/* create: qubes row, label, template, props, tags are written before
	 * the features copy fails */
	EXPECT_FAIL(f, qdb_qube_create(f->db, "disp1", QDB_DISPVM, "dvm", NULL, err), EINVAL, "QubesException");
	assert_false(qdb_qube_exists(f->db, "disp1"));
	EXPECT_FAIL(f, qdb_qube_clone(f->db, "work", "work2", err), EINVAL, "QubesException");
	assert_false(qdb_qube_exists(f->db, "work2"));
	/* the counters did not move either: the next qube gets qid 5, CID 7 */
	OK(qdb_qube_create(f->db, "x", QDB_STANDALONEVM, NULL, "red", err));
	expect_prop(f->db, "x", "qid", "5", 0);
	expect_prop(f->db, "x", "cid", "7", 0);
	/* inside a caller's transaction, only the failed call is undone */
	OK(qdb_begin(f->db, err));
	OK(qdb_tag_set(f->db, "x", "kept", err));
	assert_true(qdb_qube_clone(f->db, "work", "work2", &e) < 0);
	assert_non_null(strstr(e.msg, "injected failure"));
	OK(qdb_commit(f->db, err));
	assert_true(qdb_tag_has(f->db, "x", "kept"));
	assert_false(qdb_qube_exists(f->db, "work2"));
}

/* docs/database.md has a row for every property and global, with its
 * type, and the default rule the code documents. */
static const char *docs_path;

static void test_docs(void **state)
{
	(void)state;
	if (!docs_path)
		skip();
	FILE *fp = fopen(docs_path, "r");
	assert_non_null(fp);
	static char doc[65536];
	size_t n = fread(doc, 1, sizeof(doc) - 1, fp);
	fclose(fp);
	doc[n] = '\0';
	for (int g = 0; g < 2; g++) {
		size_t count = g ? qdb_global_prop_count() : qdb_prop_count();
		for (size_t i = 0; i < count; i++) {
			const struct qdb_prop_def *p = g ? qdb_global_prop_at(i) : qdb_prop_at(i);
			char row[200];
			snprintf(row, sizeof(row), "| `%s` | %s", p->name, p->type);
			if (!strstr(doc, row))
				fail_msg("%s: no row '%s'", docs_path, row);
			if (!strstr(doc, p->default_doc))
				fail_msg("%s: default of %s ('%s') not documented", docs_path, p->name, p->default_doc);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc > 1)
		docs_path = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_new, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_schema_newer_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_schema_bad_files, fx_setup, fx_teardown),
		cmocka_unit_test(test_tables),
		cmocka_unit_test_setup_teardown(test_create, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dispvm, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prop_defaults, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sys_net_self_default, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prop_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_values, fx_setup, fx_teardown),
		cmocka_unit_test(test_text_validators),
		cmocka_unit_test_setup_teardown(test_remove, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_clone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_tags, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_features, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_transactions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_midway_failure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_open_refused, fx_setup, fx_teardown),
		cmocka_unit_test(test_docs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
