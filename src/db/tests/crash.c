/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Crash safety of libqdb (issue 10).  A writer child does 200 property
 * writes through libqdb, each in its own transaction, and reports on a
 * pipe before each write ("begun i") and after it returns ("done i").
 * The driver SIGKILLs it at a random moment (three timing bands: during
 * start-up and open, early writes, late writes), then checks, with the
 * writer dead:
 *   - no rollback journal ("-journal") exists beside the WAL database;
 *   - a fresh SQLite connection finds PRAGMA integrity_check = ok and the
 *     journal mode still WAL;
 *   - qdb_open() opens it;
 *   - every written property holds exactly the state after the last
 *     write reported done, or after the one begun after it: the old or
 *     the new value, never anything else.
 * It repeats until at least 200 kills (runs that finish before the kill
 * count as runs, not kills) and prints what it saw.
 *
 * Before that, a first phase kills 40 children while qdb_open() creates
 * a new database (0-40 ms after fork); each time, the database either does
 * not exist yet or is whole (integrity_check ok, WAL, dom0), and there is
 * no rollback journal beside it; then it opens.  (qdb_open builds a new
 * file aside and links it into place; what a kill leaves aside,
 * qubes.db.new-*, is removed here.)
 *
 * "--non-atomic" makes the writer use a deliberately broken write path
 * (reset to the default, then set: two transactions), to show the check
 * catches a torn change; with "--expect-violation" the driver then passes
 * only if it did.  Exit codes: 0 pass, 1 fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qdb.h"

#define WRITES 200
#define MIN_KILLS 200
#define NPROPS 4
#define TIME_LIMIT_S 50

static const char *const prop_names[NPROPS] = { "memory", "maxmem", "kernelopts", "default_kernel" };

/* The value of write I of run R (its property is I % NPROPS). */
static void value_of(int r, int i, char *out, size_t cap)
{
	int k = r * WRITES + i;
	switch (i % NPROPS) {
	case 0:
		snprintf(out, cap, "%d", 1000 + k % 100000);
		break;
	case 1:
		snprintf(out, cap, "%d", 200000 + k % 100000);
		break;
	case 2: {
		/* lengths vary up to 500 bytes, so pages fill and split */
		int n = snprintf(out, cap, "run=%d write=%d ", r, i);
		int pad = (k * 37) % 480;
		for (int j = 0; j < pad && (size_t)(n + 1) < cap; j++)
			out[n++] = (char)('a' + (k + j) % 26);
		out[n] = '\0';
		break;
	}
	default:
		snprintf(out, cap, "k-%d-%d", r, i);
		break;
	}
}

static int prop_read(struct qdb *db, int p, char **v, struct qerr *e)
{
	if (p == 3)
		return qdb_global_get(db, prop_names[p], v, NULL, e);
	return qdb_prop_get(db, "crash", prop_names[p], v, NULL, e);
}

static int prop_write(struct qdb *db, int p, const char *v, bool non_atomic, struct qerr *e)
{
	int r;
	if (p == 3) {
		if (non_atomic && (r = qdb_global_reset(db, prop_names[p], e)) < 0)
			return r;
		return qdb_global_set(db, prop_names[p], v, e);
	}
	if (non_atomic && (r = qdb_prop_reset(db, "crash", prop_names[p], e)) < 0)
		return r;
	return qdb_prop_set(db, "crash", prop_names[p], v, e);
}

static void put_token(int fd, int i, int done)
{
	uint16_t t = (uint16_t)((i << 1) | done);
	if (write(fd, &t, sizeof(t)) != sizeof(t))
		_exit(3);
}

static void writer(const char *path, int run, bool non_atomic, int fd)
{
	struct qdb *db;
	struct qerr e = { 0 };
	char v[600];
	if (qdb_open(path, &db, &e) < 0) {
		fprintf(stderr, "writer: open: %s\n", e.msg);
		_exit(2);
	}
	for (int i = 0; i < WRITES; i++) {
		value_of(run, i, v, sizeof(v));
		put_token(fd, i, 0);
		if (prop_write(db, i % NPROPS, v, non_atomic, &e) < 0) {
			fprintf(stderr, "writer: write %d: %s: %s\n", i, e.type, e.msg);
			_exit(2);
		}
		put_token(fd, i, 1);
	}
	qdb_close(db);
	_exit(0);
}

static void remove_db(const char *path)
{
	char p[160];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/* What a writer killed during creation leaves aside: qubes.db.new-*. */
static void remove_strays(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[400];
	if (!d)
		return;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "qubes.db.new-", 13) == 0) {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	closedir(d);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool integrity_ok(const char *path, char *why, size_t cap)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	bool ok = false;
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		snprintf(why, cap, "sqlite3_open: %s", sqlite3_errmsg(h));
		sqlite3_close(h);
		return false;
	}
	sqlite3_busy_timeout(h, 5000);
	if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		ok = t && strcmp(t, "ok") == 0;
		snprintf(why, cap, "integrity_check: %s", t ? t : "(null)");
	} else {
		snprintf(why, cap, "integrity_check: %s", sqlite3_errmsg(h));
	}
	sqlite3_finalize(st);
	if (ok && sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		ok = t && strcmp(t, "wal") == 0;
		if (!ok)
			snprintf(why, cap, "journal_mode is %s, not wal", t ? t : "(null)");
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return ok;
}

int main(int argc, char **argv)
{
	bool non_atomic = false, expect_violation = false;
	char dir[] = "/tmp/qdb-crash-XXXXXX", path[128], jpath[160];
	char state[NPROPS][600], cand[2][NPROPS][600];
	struct qdb *db;
	struct qerr e = { 0 };
	int kills = 0, runs = 0, finished = 0, in_flight = 0, at_start = 0, violations = 0;
	int bands[3] = { 0, 0, 0 };
	double t0 = now_s();

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--non-atomic") == 0)
			non_atomic = true;
		else if (strcmp(argv[i], "--expect-violation") == 0)
			expect_violation = true;
		else {
			fprintf(stderr, "usage: %s [--non-atomic] [--expect-violation]\n", argv[0]);
			return 1;
		}
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/qubes.db", dir);
	snprintf(jpath, sizeof(jpath), "%s-journal", path);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());

	/* phase 1: kills while a new database is being created */
	int create_kills = 0, create_absent = 0;
	for (int i = 0; i < 40; i++) {
		remove_db(path);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			if (qdb_open(path, &db, &e) < 0)
				_exit(2);
			_exit(0);
		}
		struct timespec d = { 0, (rand() % 40000) * 1000L };
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		int status;
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		if (WIFSIGNALED(status))
			create_kills++;
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "FAIL: creating child ended with status 0x%x\n", status);
			return 1;
		}
		char why[300];
		if (access(jpath, F_OK) == 0) {
			fprintf(stderr, "FAIL: after a kill during creation: %s exists\n", jpath);
			return 1;
		}
		if (access(path, F_OK) == 0 && !integrity_ok(path, why, sizeof(why))) {
			fprintf(stderr, "FAIL: after a kill during creation: %s\n", why);
			return 1;
		}
		if (access(path, F_OK) != 0)
			create_absent++;
		remove_strays(dir);
		if (qdb_open(path, &db, &e) < 0 || !qdb_qube_exists(db, "dom0")) {
			fprintf(stderr, "FAIL: after a kill during creation: %s\n", e.msg);
			return 1;
		}
		qdb_close(db);
	}
	printf("creation: 40 runs, %d killed before qdb_open returned (%d before the file was in place); "
	       "all whole and reopened\n", create_kills, create_absent);
	remove_db(path);

	if (qdb_open(path, &db, &e) < 0 ||
	    qdb_qube_create(db, "crash", QDB_STANDALONEVM, NULL, "red", &e) < 0) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return 1;
	}
	static const char *const init[NPROPS] = { "500", "600", "init", "init" };
	for (int p = 0; p < NPROPS; p++) {
		if (prop_write(db, p, init[p], false, &e) < 0) {
			fprintf(stderr, "setup: %s\n", e.msg);
			return 1;
		}
		snprintf(state[p], sizeof(state[p]), "%s", init[p]);
	}
	qdb_close(db);

	for (int run = 0; kills < MIN_KILLS; run++) {
		if (now_s() - t0 > TIME_LIMIT_S) {
			fprintf(stderr, "FAIL: only %d kills in %d s\n", kills, TIME_LIMIT_S);
			return 1;
		}
		int pfd[2];
		if (pipe(pfd) < 0) {
			perror("pipe");
			return 1;
		}
		/* three timing bands: start-up/open, early writes, late writes */
		int band = rand() % 3;
		long delay_us = band == 0 ? rand() % 3000 : band == 1 ? 3000 + rand() % 40000 : 43000 + rand() % 120000;
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(pfd[0]);
			writer(path, run, non_atomic, pfd[1]);
		}
		close(pfd[1]);
		runs++;
		struct timespec d = { delay_us / 1000000, (delay_us % 1000000) * 1000 };
		nanosleep(&d, NULL);
		int status;
		bool killed = kill(pid, SIGKILL) == 0;
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			kills++;
			bands[band]++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			finished++;
		} else {
			fprintf(stderr, "FAIL: writer of run %d ended with status 0x%x (killed=%d)\n", run, status,
			        killed);
			return 1;
		}

		/* what the writer reported */
		int begun = -1, done = -1;
		uint16_t t;
		while (read(pfd[0], &t, sizeof(t)) == sizeof(t)) {
			if (t & 1)
				done = t >> 1;
			else
				begun = t >> 1;
		}
		close(pfd[0]);
		if (begun < 0)
			at_start++;
		else if (begun > done)
			in_flight++;

		/* checks */
		char why[300];
		if (access(jpath, F_OK) == 0) {
			fprintf(stderr, "FAIL: run %d: %s exists beside a WAL database\n", run, jpath);
			return 1;
		}
		if (!integrity_ok(path, why, sizeof(why))) {
			fprintf(stderr, "FAIL: run %d: %s\n", run, why);
			return 1;
		}
		if (qdb_open(path, &db, &e) < 0) {
			fprintf(stderr, "FAIL: run %d: qdb_open: %s: %s\n", run, e.type, e.msg);
			return 1;
		}
		/* candidate 0: after write DONE; candidate 1: after write BEGUN */
		for (int c = 0; c < 2; c++) {
			memcpy(cand[c], state, sizeof(state));
			int last = c == 0 ? done : begun;
			for (int i = 0; i <= last; i++)
				value_of(run, i, cand[c][i % NPROPS], sizeof(cand[c][0]));
		}
		char got[NPROPS][600];
		for (int p = 0; p < NPROPS; p++) {
			char *v = NULL;
			if (prop_read(db, p, &v, &e) < 0) {
				fprintf(stderr, "FAIL: run %d: read %s: %s\n", run, prop_names[p], e.msg);
				return 1;
			}
			snprintf(got[p], sizeof(got[p]), "%s", v);
			free(v);
		}
		qdb_close(db);
		int match = -1;
		for (int c = 0; c < 2 && match < 0; c++) {
			bool same = true;
			for (int p = 0; p < NPROPS; p++)
				same = same && strcmp(got[p], cand[c][p]) == 0;
			if (same)
				match = c;
		}
		if (match < 0) {
			violations++;
			if (!expect_violation || violations == 1) {
				for (int p = 0; p < NPROPS; p++)
					if (strcmp(got[p], cand[0][p]) != 0 && strcmp(got[p], cand[1][p]) != 0)
						fprintf(stderr,
						        "%s: run %d (begun %d, done %d): %s = '%.40s', neither old "
						        "'%.40s' nor new '%.40s'\n",
						        expect_violation ? "violation (expected)" : "FAIL", run, begun,
						        done, prop_names[p], got[p], cand[0][p], cand[1][p]);
			}
			if (!expect_violation)
				return 1;
		}
		memcpy(state, got, sizeof(state));
	}

	double secs = now_s() - t0;
	printf("%d runs, %d kills (bands start/early/late: %d/%d/%d), %d finished before the kill; "
	       "kills before the first write: %d, with a write in flight: %d; violations: %d; %.1f s\n",
	       runs, kills, bands[0], bands[1], bands[2], finished, at_start, in_flight, violations, secs);
	remove_db(path);
	rmdir(dir);
	if (expect_violation) {
		if (violations == 0) {
			fprintf(stderr, "FAIL: the non-atomic writer was never caught in %d kills\n", kills);
			return 1;
		}
		printf("the check caught the non-atomic writer %d times\n", violations);
		return 0;
	}
	return violations ? 1 : 0;
}
