/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqdb benchmark (meson benchmark 'db-bench').  Each libqdb operation is
 * timed next to a baseline run in the same invocation on the same file:
 * reads against one prepared SQLite SELECT of a stored property row
 * (the least any read can cost), writes against one SQLite UPDATE in its
 * own transaction with the same pragmas (WAL, synchronous=FULL).  It
 * prints nanoseconds per operation and the ratio to the baseline; the
 * ratios are what to compare between machines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qdb.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const struct qerr *e)
{
	fprintf(stderr, "%s: %s: %s\n", what, e ? e->type : "", e ? e->msg : "");
	exit(1);
}

int main(int argc, char **argv)
{
	int reads = argc > 1 ? atoi(argv[1]) : 20000;
	int writes = argc > 2 ? atoi(argv[2]) : 100;
	char dir[] = "/tmp/qdb-bench-XXXXXX", path[128], nm[32];
	struct qdb *db;
	struct qerr e = { 0 };
	sqlite3 *h;
	sqlite3_stmt *sel, *upd;
	char *v;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/qubes.db", dir);
	if (qdb_open(path, &db, &e) < 0 || qdb_qube_create(db, "fedora", QDB_TEMPLATEVM, NULL, "black", &e) < 0)
		die("setup", &e);
	if (qdb_begin(db, &e) < 0)
		die("begin", &e);
	for (int i = 0; i < 50; i++) {
		snprintf(nm, sizeof(nm), "app%02d", i);
		if (qdb_qube_create(db, nm, QDB_APPVM, "fedora", "blue", &e) < 0 ||
		    qdb_prop_set(db, nm, "vcpus", "4", &e) < 0 || qdb_tag_set(db, nm, "bench", &e) < 0)
			die("create", &e);
	}
	if (qdb_commit(db, &e) < 0)
		die("commit", &e);

	if (sqlite3_open(path, &h) != SQLITE_OK ||
	    sqlite3_exec(h, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "SELECT p.value FROM props p JOIN qubes q ON q.qid = p.qid "
	                          "WHERE q.name = ? AND p.name = 'vcpus'", -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "UPDATE props SET value = ? WHERE name = 'vcpus' AND qid = "
	                          "(SELECT qid FROM qubes WHERE name = 'app01')", -1, &upd, NULL) != SQLITE_OK)
		die("sqlite", NULL);

	/* reads */
	double t0 = now();
	for (int i = 0; i < reads; i++) {
		sqlite3_bind_text(sel, 1, "app07", -1, SQLITE_STATIC);
		if (sqlite3_step(sel) != SQLITE_ROW)
			die("select", NULL);
		sqlite3_reset(sel);
	}
	double base_read = (now() - t0) / reads;

	t0 = now();
	for (int i = 0; i < reads; i++) {
		if (qdb_prop_get(db, "app07", "vcpus", &v, NULL, &e) < 0)
			die("get", &e);
		free(v);
	}
	double get_stored = (now() - t0) / reads;

	t0 = now();
	for (int i = 0; i < reads; i++) {
		if (qdb_prop_get(db, "app07", "memory", &v, NULL, &e) < 0)
			die("get", &e);
		free(v);
	}
	double get_default = (now() - t0) / reads;

	int getall_n = reads / 20 > 0 ? reads / 20 : 1;
	t0 = now();
	for (int i = 0; i < getall_n; i++) {
		enum qdb_class c;
		if (qdb_qube_class(db, "app07", &c, &e) < 0)
			die("class", &e);
		for (size_t k = 0; k < qdb_prop_count(); k++) {
			const struct qdb_prop_def *p = qdb_prop_at(k);
			if (!qdb_prop_applies(p, c))
				continue;
			if (qdb_prop_get(db, "app07", p->name, &v, NULL, &e) < 0)
				die("getall", &e);
			free(v);
		}
	}
	double getall = (now() - t0) / getall_n;

	/* writes: one transaction each, synced */
	t0 = now();
	for (int i = 0; i < writes; i++) {
		sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_bind_text(upd, 1, i % 2 ? "3" : "5", -1, SQLITE_STATIC);
		if (sqlite3_step(upd) != SQLITE_DONE)
			die("update", NULL);
		sqlite3_reset(upd);
		if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("commit", NULL);
	}
	double base_write = (now() - t0) / writes;

	t0 = now();
	for (int i = 0; i < writes; i++)
		if (qdb_prop_set(db, "app01", "vcpus", i % 2 ? "3" : "5", &e) < 0)
			die("set", &e);
	double set = (now() - t0) / writes;

	printf("baseline read (one prepared SELECT): %8.0f ns\n", base_read);
	printf("qdb_prop_get, set value:             %8.0f ns  %5.1fx baseline read\n", get_stored,
	       get_stored / base_read);
	printf("qdb_prop_get, default via template:  %8.0f ns  %5.1fx baseline read\n", get_default,
	       get_default / base_read);
	printf("all %zu properties of an AppVM:      %8.0f ns  %5.1fx baseline read\n", qdb_prop_count(), getall,
	       getall / base_read);
	printf("baseline write (UPDATE, own txn):    %8.0f ns\n", base_write);
	printf("qdb_prop_set (validated, own txn):   %8.0f ns  %5.2fx baseline write\n", set, set / base_write);

	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_close(h);
	qdb_close(db);
	char p2[160];
	snprintf(p2, sizeof(p2), "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s-shm", path);
	unlink(p2);
	unlink(path);
	rmdir(dir);
	return 0;
}
