/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqdb: the SQLite store.  See qdb.h for the contract and
 * docs/database.md for the schema and the rules.
 *
 * Every change runs in one transaction (or, inside a caller's qdb_begin,
 * in one savepoint) and validates everything before it writes, so a
 * failure leaves the database as it was.  A property that holds its
 * default has no row: its value is computed on every read (from the
 * template, a global property or a constant), as Qubes does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qdb-internal.h"

#define QDB_APPLICATION_ID 0x71756265 /* "qube" in the SQLite header */
#define DOM0_UUID "00000000-0000-0000-0000-000000000000"

/* Prepared statements are kept per SQL text (the literals' addresses):
 * preparing was most of the time of a read.  One that is in use (a
 * nested read of the same kind) gets a fresh, uncached statement. */
#define QDB_STMT_CACHE 64

struct qdb {
	sqlite3 *h;
	char *path;
	bool in_tx; /* a caller's qdb_begin is open */
	size_t ncache;
	struct {
		const char *sql;
		sqlite3_stmt *st;
		bool busy;
	} cache[QDB_STMT_CACHE];
};

/* One row of the qubes table. */
struct qrow {
	long long qid;
	enum qdb_class cls;
	char name[QDB_NAME_MAX + 1];
	char uuid[37];
	long long cid; /* -1: none (dom0) */
};

/* ---- SQLite helpers ---- */

static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EINVAL;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -EBADMSG;
	default:
		return -EIO;
	}
}

static int db_fail(struct qdb *db, int rc, struct qerr *err, const char *what)
{
	qdb_err_set(err, "QubesException", "database %s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
	return sql_errno(rc);
}

static int prep(struct qdb *db, const char *sql, sqlite3_stmt **ret, struct qerr *err)
{
	bool cached = false;
	for (size_t i = 0; i < db->ncache; i++) {
		if (db->cache[i].sql != sql)
			continue;
		cached = true;
		if (!db->cache[i].busy) {
			db->cache[i].busy = true;
			*ret = db->cache[i].st;
			return 0;
		}
	}
	int rc = sqlite3_prepare_v3(db->h, sql, -1, cached ? 0 : SQLITE_PREPARE_PERSISTENT, ret, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, "prepare");
	if (!cached && db->ncache < QDB_STMT_CACHE) {
		db->cache[db->ncache].sql = sql;
		db->cache[db->ncache].st = *ret;
		db->cache[db->ncache].busy = true;
		db->ncache++;
	}
	return 0;
}

/* Done with a statement from prep(): a cached one is reset for reuse. */
static void release(struct qdb *db, sqlite3_stmt *st)
{
	for (size_t i = 0; i < db->ncache; i++)
		if (db->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			db->cache[i].busy = false;
			return;
		}
	sqlite3_finalize(st);
}

static void cache_clear(struct qdb *db)
{
	for (size_t i = 0; i < db->ncache; i++)
		sqlite3_finalize(db->cache[i].st);
	db->ncache = 0;
}

static int exec(struct qdb *db, const char *sql, struct qerr *err)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, err, sql);
	return 0;
}

/* Runs a statement that returns no rows (binds done); finalizes it. */
static int step_done(struct qdb *db, sqlite3_stmt *st, struct qerr *err)
{
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc != SQLITE_DONE)
		ret = db_fail(db, rc, err, "write");
	release(db, st);
	return ret;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* ---- transactions ---- */

static int op_begin(struct qdb *db, struct qerr *err)
{
	return exec(db, db->in_tx ? "SAVEPOINT qdb_op" : "BEGIN IMMEDIATE", err);
}

/* Ends the operation begun by op_begin: keeps it when ret == 0, else
 * undoes it.  Returns ret, or the commit's error. */
static int op_end(struct qdb *db, int ret, struct qerr *err)
{
	if (ret == 0) {
		int r = exec(db, db->in_tx ? "RELEASE qdb_op" : "COMMIT", err);
		if (r == 0)
			return 0;
		ret = r;
	}
	if (db->in_tx)
		sqlite3_exec(db->h, "ROLLBACK TO qdb_op; RELEASE qdb_op", NULL, NULL, NULL);
	else if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

int qdb_begin(struct qdb *db, struct qerr *err)
{
	if (db->in_tx) {
		qdb_err_set(err, "QubesException", "a transaction is already open on %s", db->path);
		return -EBUSY;
	}
	int r = exec(db, "BEGIN IMMEDIATE", err);
	if (r == 0)
		db->in_tx = true;
	return r;
}

int qdb_commit(struct qdb *db, struct qerr *err)
{
	if (!db->in_tx) {
		qdb_err_set(err, "QubesException", "no transaction is open on %s", db->path);
		return -EINVAL;
	}
	int r = exec(db, "COMMIT", err);
	if (r < 0 && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	db->in_tx = false;
	return r;
}

void qdb_rollback(struct qdb *db)
{
	if (!db || !db->in_tx)
		return;
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	db->in_tx = false;
}

/* ---- meta ---- */

static int meta_get_int(struct qdb *db, const char *key, long long *ret, bool *found, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, "SELECT value FROM meta WHERE key = ?", &st, err);
	if (r < 0)
		return r;
	bind_text(st, 1, key);
	int rc = sqlite3_step(st);
	*found = false;
	if (rc == SQLITE_ROW) {
		*found = true;
		*ret = sqlite3_column_int64(st, 0);
	} else if (rc != SQLITE_DONE) {
		r = db_fail(db, rc, err, "read meta");
	}
	release(db, st);
	return r;
}

static int meta_set_int(struct qdb *db, const char *key, long long v, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, "INSERT INTO meta (key, value) VALUES (?, ?) "
	                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", &st, err);
	if (r < 0)
		return r;
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, v);
	return step_done(db, st, err);
}

/* ---- schema ---- */

/* Step N brings a database from version N-1 to N; version 0 is an empty
 * file.  A future version appends a step here, never edits one. */
static const char *const schema_steps[QDB_SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE qubes ("
	"  qid INTEGER PRIMARY KEY CHECK (qid BETWEEN 0 AND 9999),"
	"  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 31),"
	"  class TEXT NOT NULL CHECK (class IN ('AdminVM','TemplateVM','AppVM','StandaloneVM','DispVM')),"
	"  uuid TEXT NOT NULL UNIQUE CHECK (length(uuid) = 36),"
	"  cid INTEGER UNIQUE CHECK (cid IS NULL OR cid BETWEEN 3 AND 4294967294));"
	"CREATE TABLE props ("
	"  qid INTEGER NOT NULL REFERENCES qubes (qid) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  value TEXT,"
	"  ref INTEGER REFERENCES qubes (qid),"
	"  PRIMARY KEY (qid, name),"
	"  CHECK ((value IS NULL) <> (ref IS NULL))) WITHOUT ROWID;"
	"CREATE INDEX props_ref ON props (ref);"
	"CREATE TABLE globals ("
	"  name TEXT PRIMARY KEY,"
	"  value TEXT,"
	"  ref INTEGER REFERENCES qubes (qid),"
	"  CHECK ((value IS NULL) <> (ref IS NULL))) WITHOUT ROWID;"
	"CREATE INDEX globals_ref ON globals (ref);"
	"CREATE TABLE tags ("
	"  qid INTEGER NOT NULL REFERENCES qubes (qid) ON DELETE CASCADE,"
	"  tag TEXT NOT NULL,"
	"  PRIMARY KEY (qid, tag)) WITHOUT ROWID;"
	"CREATE TABLE features ("
	"  qid INTEGER NOT NULL REFERENCES qubes (qid) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (qid, key)) WITHOUT ROWID;"
	"INSERT INTO qubes (qid, name, class, uuid, cid) VALUES (0, 'dom0', 'AdminVM', '" DOM0_UUID "', NULL);"
	"INSERT INTO props (qid, name, value) VALUES (0, 'label', 'black');"
	"INSERT INTO meta (key, value) VALUES ('next_cid', 3), ('next_dispid', 1);"
	"PRAGMA application_id = 1903518309;",
};

static int pragma_text(struct qdb *db, const char *sql, char *out, size_t cap, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, sql, &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		col_copy(st, 0, out, cap);
	else if (rc == SQLITE_DONE)
		out[0] = '\0';
	else
		r = db_fail(db, rc, err, sql);
	release(db, st);
	return r;
}

/* Reads and checks the version, migrating an older database; in the
 * caller's transaction. */
static int schema_check(struct qdb *db, struct qerr *err)
{
	char buf[64];
	long long app_id, tables, version = 0;
	bool found;
	int r = pragma_text(db, "PRAGMA application_id", buf, sizeof(buf), err);
	if (r < 0)
		return r;
	app_id = strtoll(buf, NULL, 10);
	r = pragma_text(db, "SELECT count(*) FROM sqlite_master", buf, sizeof(buf), err);
	if (r < 0)
		return r;
	tables = strtoll(buf, NULL, 10);
	if (app_id == 0 && tables == 0) {
		version = 0; /* a new, empty file */
	} else if (app_id != QDB_APPLICATION_ID) {
		qdb_err_set(err, "QubesException",
		            "database %s: an SQLite file of another program (application_id %lld), "
		            "not a qube database",
		            db->path, app_id);
		return -EBADMSG;
	} else {
		r = meta_get_int(db, "schema_version", &version, &found, err);
		if (r < 0)
			return r;
		if (!found || version < 1) {
			qdb_err_set(err, "QubesException", "database %s: no valid schema_version: damaged file",
			            db->path);
			return -EBADMSG;
		}
		if (version > QDB_SCHEMA_VERSION) {
			qdb_err_set(err, "QubesException",
			            "database %s has schema_version %lld, newer than the %d this qubed "
			            "knows: use a newer qubed (the file was left unchanged)",
			            db->path, version, QDB_SCHEMA_VERSION);
			return -EPROTO;
		}
	}
	for (long long v = version + 1; v <= QDB_SCHEMA_VERSION; v++) {
		r = exec(db, schema_steps[v], err);
		if (r < 0)
			return r;
	}
	if (version < QDB_SCHEMA_VERSION) {
		r = meta_set_int(db, "schema_version", QDB_SCHEMA_VERSION, err);
		if (r < 0)
			return r;
	}
	r = pragma_text(db, "SELECT class FROM qubes WHERE qid = 0 AND name = 'dom0'", buf, sizeof(buf), err);
	if (r < 0)
		return r;
	if (strcmp(buf, "AdminVM") != 0) {
		qdb_err_set(err, "QubesException", "database %s: dom0 is missing: damaged file", db->path);
		return -EBADMSG;
	}
	return 0;
}

/* Opens PATH with SQLite, sets the connection up, checks the file and
 * brings its schema to the current version. */
static int db_connect(const char *path, struct qdb **ret, struct qerr *err)
{
	struct qdb *db;
	char buf[64];
	int r, rc;

	db = calloc(1, sizeof(*db));
	if (!db || !(db->path = strdup(path))) {
		free(db);
		qdb_err_set(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = db->h ? db_fail(db, rc, err, "open") : -ENOMEM;
		goto err_close;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, 5000);
	/* The first statement that reads the file: a non-SQLite file fails
	 * here with "file is not a database". */
	r = pragma_text(db, "PRAGMA journal_mode = WAL", buf, sizeof(buf), err);
	if (r < 0) {
		if (r == -EBADMSG)
			qdb_err_set(err, "QubesException", "database %s is not an SQLite database (%s)", path,
			            sqlite3_errmsg(db->h));
		goto err_close;
	}
	if (strcmp(buf, "wal") != 0) {
		qdb_err_set(err, "QubesException", "database %s: cannot use WAL mode (journal mode is %s)", path,
		            buf);
		r = -EIO;
		goto err_close;
	}
	/* FULL: each commit's WAL frames are synced before it returns, so a
	 * change qubed reported as done survives a power loss too. */
	r = exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err);
	if (r < 0)
		goto err_close;
	r = pragma_text(db, "PRAGMA quick_check", buf, sizeof(buf), err);
	if (r < 0)
		goto err_close;
	if (strcmp(buf, "ok") != 0) {
		qdb_err_set(err, "QubesException", "database %s fails its integrity check: %s", path, buf);
		r = -EBADMSG;
		goto err_close;
	}
	r = op_begin(db, err);
	if (r < 0)
		goto err_close;
	r = op_end(db, schema_check(db, err), err);
	if (r < 0)
		goto err_close;
	*ret = db;
	return 0;

err_close:
	cache_clear(db);
	sqlite3_close_v2(db->h);
	free(db->path);
	free(db);
	return r;
}

static void unlink_db_files(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char p[4200];
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static int sync_dir_of(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Builds a new database beside PATH (PATH.new-XXXXXX, 0600), complete
 * with its schema and dom0, synced, then links it to PATH (or, when
 * REPLACE, renames it over an empty PATH).  So PATH is either absent or
 * a whole database: a crash during creation cannot leave a half-made
 * file or a rollback journal at PATH (switching a new file to WAL mode
 * goes through one).  -EEXIST: someone else created PATH first. */
static int create_atomically(const char *path, bool replace, struct qerr *err)
{
	size_t n = strlen(path);
	struct qdb *t = NULL;
	int r, fd;
	if (n > 4000) {
		qdb_err_set(err, "QubesException", "database path too long");
		return -ENAMETOOLONG;
	}
	char tmp[4100];
	snprintf(tmp, sizeof(tmp), "%s.new-XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		qdb_err_set(err, "QubesException", "cannot create database %s: %s", path, strerror(-r));
		return r;
	}
	r = db_connect(tmp, &t, err);
	if (r == 0)
		r = exec(t, "PRAGMA wal_checkpoint(TRUNCATE)", err);
	qdb_close(t); /* the last connection: SQLite removes -wal and -shm */
	if (r == 0 && fsync(fd) < 0) {
		r = -errno;
		qdb_err_set(err, "QubesException", "cannot sync new database %s: %s", tmp, strerror(-r));
	}
	close(fd);
	if (r == 0 && (replace ? rename(tmp, path) : link(tmp, path)) < 0) {
		r = -errno;
		if (r != -EEXIST)
			qdb_err_set(err, "QubesException", "cannot create database %s: %s", path, strerror(-r));
	}
	unlink_db_files(tmp);
	if (r == 0)
		sync_dir_of(path);
	return r;
}

int qdb_open(const char *path, struct qdb **ret, struct qerr *err)
{
	struct stat sb;
	int r, fd;

	if (!path || !*path) {
		qdb_err_set(err, "QubesException", "no database path given");
		return -EINVAL;
	}
	/* Never through a symlink, only a regular file; a missing or empty
	 * one is created whole (create_atomically). */
	for (int attempt = 0;; attempt++) {
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT && attempt == 0) {
			r = create_atomically(path, false, err);
			if (r < 0 && r != -EEXIST)
				return r;
			continue;
		}
		if (fd < 0) {
			r = -errno;
			qdb_err_set(err, "QubesException", "cannot open database %s: %s", path, strerror(-r));
			return r;
		}
		if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			close(fd);
			qdb_err_set(err, "QubesException", "database %s is not a regular file", path);
			return -EINVAL;
		}
		close(fd);
		if (sb.st_size == 0 && attempt == 0) {
			r = create_atomically(path, true, err);
			if (r < 0)
				return r;
			continue;
		}
		break;
	}
	return db_connect(path, ret, err);
}

void qdb_close(struct qdb *db)
{
	if (!db)
		return;
	qdb_rollback(db);
	cache_clear(db);
	sqlite3_close_v2(db->h);
	free(db->path);
	free(db);
}

/* ---- qube rows ---- */

static int row_from(sqlite3_stmt *st, struct qrow *q)
{
	q->qid = sqlite3_column_int64(st, 0);
	col_copy(st, 1, q->name, sizeof(q->name));
	char cls[32];
	col_copy(st, 2, cls, sizeof(cls));
	if (qdb_class_parse(cls, &q->cls) < 0)
		return -EBADMSG;
	col_copy(st, 3, q->uuid, sizeof(q->uuid));
	q->cid = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
	return 0;
}

#define ROW_COLS "qid, name, class, uuid, cid"

/* 0, -ENOENT (no such qube, err filled), or another error. */
static int row_query(struct qdb *db, const char *sql, const char *name, long long qid, struct qrow *q,
                     struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, sql, &st, err);
	if (r < 0)
		return r;
	if (name)
		bind_text(st, 1, name);
	else
		sqlite3_bind_int64(st, 1, qid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (row_from(st, q) < 0) {
			qdb_err_set(err, "QubesException", "database %s: qube with qid %lld has an unknown class",
			            db->path, (long long)sqlite3_column_int64(st, 0));
			r = -EBADMSG;
		}
	} else if (rc == SQLITE_DONE) {
		char qn[300];
		if (name) {
			qdb_quote(qn, name);
			qdb_err_set(err, "QubesVMNotFoundError", "No such domain: %s", qn);
		} else {
			qdb_err_set(err, "QubesVMNotFoundError", "No such domain: qid %lld", qid);
		}
		r = -ENOENT;
	} else {
		r = db_fail(db, rc, err, "read qube");
	}
	release(db, st);
	return r;
}

static int load_qube(struct qdb *db, const char *untrusted_name, struct qrow *q, struct qerr *err)
{
	const char *why = "no value given";
	if (!untrusted_name || !qdb_name_is_valid(untrusted_name, &why)) {
		char qn[300];
		qdb_quote(qn, untrusted_name);
		qdb_err_set(err, "QubesVMNotFoundError", "No such domain: %s", qn);
		return -ENOENT;
	}
	return row_query(db, "SELECT " ROW_COLS " FROM qubes WHERE name = ?", untrusted_name, 0, q, err);
}

static int load_qid(struct qdb *db, long long qid, struct qrow *q, struct qerr *err)
{
	return row_query(db, "SELECT " ROW_COLS " FROM qubes WHERE qid = ?", NULL, qid, q, err);
}

bool qdb_qube_exists(struct qdb *db, const char *name)
{
	struct qrow q;
	return load_qube(db, name, &q, NULL) == 0;
}

int qdb_qube_class(struct qdb *db, const char *name, enum qdb_class *ret, struct qerr *err)
{
	struct qrow q;
	int r = load_qube(db, name, &q, err);
	if (r < 0)
		return r;
	*ret = q.cls;
	return 0;
}

int qdb_qube_by_cid(struct qdb *db, uint32_t cid, char ret_name[32], struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, "SELECT name FROM qubes WHERE cid = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, cid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col_copy(st, 0, ret_name, 32);
	} else if (rc == SQLITE_DONE) {
		qdb_err_set(err, "QubesVMNotFoundError", "No such domain: vsock CID %u", cid);
		r = -ENOENT;
	} else {
		r = db_fail(db, rc, err, "read qube");
	}
	release(db, st);
	return r;
}

void qdb_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Collects column 0 of every row of a prepared statement (finalized). */
static int collect(struct qdb *db, sqlite3_stmt *st, char ***ret, size_t *ret_n, struct qerr *err)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc, r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (!(v[n] = strdup(t ? (const char *)t : ""))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_fail(db, rc, err, "read");
	else if (r == -ENOMEM)
		qdb_err_set(err, "QubesException", "out of memory");
	release(db, st);
	if (r < 0) {
		qdb_strv_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int qdb_qube_list(struct qdb *db, char ***ret_names, size_t *ret_n, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, "SELECT name FROM qubes ORDER BY name COLLATE BINARY", &st, err);
	if (r < 0)
		return r;
	return collect(db, st, ret_names, ret_n, err);
}

/* ---- stored values ---- */

/* A stored property of a qube (qid >= 0) or a global (qid < 0):
 * 0 with the text form in out, -ENODATA when not stored. */
static int stored_get(struct qdb *db, long long qid, const char *prop, char out[QDB_VAL_MAX], struct qerr *err)
{
	sqlite3_stmt *st;
	int r = qid >= 0 ? prep(db, "SELECT p.value, q.name FROM props p LEFT JOIN qubes q ON q.qid = p.ref "
	                            "WHERE p.qid = ?2 AND p.name = ?1", &st, err)
	                 : prep(db, "SELECT g.value, q.name FROM globals g LEFT JOIN qubes q ON q.qid = g.ref "
	                            "WHERE g.name = ?1", &st, err);
	if (r < 0)
		return r;
	bind_text(st, 1, prop);
	if (qid >= 0)
		sqlite3_bind_int64(st, 2, qid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			col_copy(st, 0, out, QDB_VAL_MAX);
		else
			col_copy(st, 1, out, QDB_VAL_MAX);
	} else if (rc == SQLITE_DONE) {
		r = -ENODATA;
	} else {
		r = db_fail(db, rc, err, "read property");
	}
	release(db, st);
	return r;
}

/* Stores a value: ref >= 0 for a vm value, else text. */
static int stored_set(struct qdb *db, long long qid, const char *prop, const char *text, long long ref,
                      struct qerr *err)
{
	sqlite3_stmt *st;
	int r = qid >= 0 ? prep(db, "INSERT INTO props (qid, name, value, ref) VALUES (?4, ?1, ?2, ?3) "
	                            "ON CONFLICT (qid, name) DO UPDATE SET value = excluded.value, ref = excluded.ref",
	                        &st, err)
	                 : prep(db, "INSERT INTO globals (name, value, ref) VALUES (?1, ?2, ?3) "
	                            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, ref = excluded.ref",
	                        &st, err);
	if (r < 0)
		return r;
	bind_text(st, 1, prop);
	if (ref >= 0) {
		sqlite3_bind_null(st, 2);
		sqlite3_bind_int64(st, 3, ref);
	} else {
		bind_text(st, 2, text);
		sqlite3_bind_null(st, 3);
	}
	if (qid >= 0)
		sqlite3_bind_int64(st, 4, qid);
	return step_done(db, st, err);
}

static int stored_del(struct qdb *db, long long qid, const char *prop, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = qid >= 0 ? prep(db, "DELETE FROM props WHERE name = ?1 AND qid = ?2", &st, err)
	                 : prep(db, "DELETE FROM globals WHERE name = ?1", &st, err);
	if (r < 0)
		return r;
	bind_text(st, 1, prop);
	if (qid >= 0)
		sqlite3_bind_int64(st, 2, qid);
	return step_done(db, st, err);
}

/* ---- effective values ---- */

static int global_value(struct qdb *db, const struct qdb_prop_def *g, char out[QDB_VAL_MAX], bool *is_default,
                        struct qerr *err)
{
	int r = stored_get(db, -1, g->name, out, err);
	if (r != -ENODATA) {
		if (r == 0 && is_default)
			*is_default = false;
		return r;
	}
	out[0] = '\0'; /* every global defaults to none / "" */
	if (is_default)
		*is_default = true;
	return 0;
}

static int global_named(struct qdb *db, const char *name, char out[QDB_VAL_MAX], struct qerr *err)
{
	return global_value(db, qdb_global_prop_lookup(name), out, NULL, err);
}

static int prop_value(struct qdb *db, const struct qrow *q, const struct qdb_prop_def *p, char out[QDB_VAL_MAX],
                      bool *is_default, struct qerr *err);

/* The template row of a template-based qube; -ENODATA if none. */
static int template_of(struct qdb *db, const struct qrow *q, struct qrow *t, struct qerr *err)
{
	char name[QDB_VAL_MAX];
	if (q->cls != QDB_APPVM && q->cls != QDB_DISPVM)
		return -ENODATA;
	int r = stored_get(db, q->qid, "template", name, err);
	if (r < 0)
		return r;
	return row_query(db, "SELECT " ROW_COLS " FROM qubes WHERE name = ?", name, 0, t, err);
}

static bool is_prop(const struct qdb_prop_def *p, const char *name)
{
	return strcmp(p->name, name) == 0;
}

static int prop_default(struct qdb *db, const struct qrow *q, const struct qdb_prop_def *p, char out[QDB_VAL_MAX],
                        struct qerr *err)
{
	struct qrow t;
	int r;
	if (is_prop(p, "memory") || is_prop(p, "vcpus") || is_prop(p, "kernel") || is_prop(p, "kernelopts") ||
	    is_prop(p, "maxmem")) {
		r = template_of(db, q, &t, err);
		if (r == 0)
			return prop_value(db, &t, p, out, NULL, err);
		if (r != -ENODATA)
			return r;
		if (is_prop(p, "memory"))
			strcpy(out, "400");
		else if (is_prop(p, "vcpus"))
			strcpy(out, "2");
		else if (is_prop(p, "kernel"))
			return global_named(db, "default_kernel", out, err);
		else if (is_prop(p, "kernelopts"))
			out[0] = '\0';
		else {
			/* maxmem: Qubes' rule without the host-memory cap */
			char mem[QDB_VAL_MAX], os[QDB_VAL_MAX];
			bool linux_os = false;
			sqlite3_stmt *st;
			r = prop_value(db, q, qdb_prop_lookup("memory"), mem, NULL, err);
			if (r < 0)
				return r;
			r = prep(db, "SELECT value FROM features WHERE qid = ? AND key = 'os'", &st, err);
			if (r < 0)
				return r;
			sqlite3_bind_int64(st, 1, q->qid);
			if (sqlite3_step(st) == SQLITE_ROW) {
				col_copy(st, 0, os, sizeof(os));
				linux_os = strcmp(os, "Linux") == 0;
			}
			release(db, st);
			snprintf(out, QDB_VAL_MAX, "%lld", linux_os ? strtoll(mem, NULL, 10) * 10 : 4000ll);
		}
		return 0;
	}
	if (is_prop(p, "netvm")) {
		if (q->cls == QDB_TEMPLATEVM) {
			out[0] = '\0';
			return 0;
		}
		return global_named(db, "default_netvm", out, err);
	}
	if (is_prop(p, "default_dispvm")) {
		if (q->cls == QDB_DISPVM)
			return stored_get(db, q->qid, "template", out, err);
		return global_named(db, "default_dispvm", out, err);
	}
	if (is_prop(p, "label")) {
		r = q->cls == QDB_DISPVM ? template_of(db, q, &t, err) : -ENODATA;
		if (r < 0)
			return r;
		return prop_value(db, &t, p, out, NULL, err);
	}
	if (p->t == QDB_T_BOOL) {
		strcpy(out, "False");
		return 0;
	}
	if (is_prop(p, "preload_dispvm")) {
		strcpy(out, "0");
		return 0;
	}
	return -ENODATA; /* template, and the read-only ones */
}

/* 0 with the value; -ENODATA when the property has no value (no stored
 * one and no default). */
static int prop_value(struct qdb *db, const struct qrow *q, const struct qdb_prop_def *p, char out[QDB_VAL_MAX],
                      bool *is_default, struct qerr *err)
{
	bool dflt = false;
	int r = 0;
	if (is_prop(p, "name")) {
		snprintf(out, QDB_VAL_MAX, "%s", q->name);
		dflt = q->cls == QDB_ADMINVM;
	} else if (is_prop(p, "uuid")) {
		snprintf(out, QDB_VAL_MAX, "%s", q->uuid);
		dflt = q->cls == QDB_ADMINVM;
	} else if (is_prop(p, "qid")) {
		snprintf(out, QDB_VAL_MAX, "%lld", q->qid);
		dflt = q->cls == QDB_ADMINVM;
	} else if (is_prop(p, "cid")) {
		if (q->cid < 0)
			return -ENODATA;
		snprintf(out, QDB_VAL_MAX, "%lld", q->cid);
	} else {
		r = stored_get(db, q->qid, p->name, out, err);
		if (r == -ENODATA) {
			dflt = true;
			r = prop_default(db, q, p, out, err);
		}
	}
	if (r == 0 && is_default)
		*is_default = dflt;
	return r;
}

/* Looks up a property for a qube: QubesNoSuchPropertyError when unknown
 * or not of its class. */
static const struct qdb_prop_def *prop_for(const struct qrow *q, const char *untrusted_prop, struct qerr *err)
{
	const struct qdb_prop_def *p = qdb_prop_lookup(untrusted_prop);
	if (!p || !qdb_prop_applies(p, q->cls)) {
		char qp[300];
		qdb_quote(qp, untrusted_prop);
		qdb_err_set(err, "QubesNoSuchPropertyError", "Invalid property %s of %s (a %s)", qp, q->name,
		            qdb_class_name(q->cls));
		return NULL;
	}
	return p;
}

static int no_value(const struct qrow *q, const struct qdb_prop_def *p, struct qerr *err)
{
	qdb_err_set(err, "QubesNoSuchPropertyError", "Property '%s' of %s has no value", p->name, q->name);
	return -ENODATA;
}

int qdb_prop_get(struct qdb *db, const char *qube, const char *prop, char **ret_value, bool *ret_is_default,
                 struct qerr *err)
{
	struct qrow q;
	char v[QDB_VAL_MAX];
	bool dflt;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	const struct qdb_prop_def *p = prop_for(&q, prop, err);
	if (!p)
		return -ENOENT;
	r = prop_value(db, &q, p, v, &dflt, err);
	if (r == -ENODATA)
		return no_value(&q, p, err);
	if (r < 0)
		return r;
	char *s = strdup(v);
	if (!s) {
		qdb_err_set(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	*ret_value = s;
	if (ret_is_default)
		*ret_is_default = dflt;
	return 0;
}

int qdb_prop_get_default(struct qdb *db, const char *qube, const char *prop, char **ret_value, struct qerr *err)
{
	struct qrow q;
	char v[QDB_VAL_MAX];
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	const struct qdb_prop_def *p = prop_for(&q, prop, err);
	if (!p)
		return -ENOENT;
	if (p->readonly) {
		qdb_err_set(err, "QubesValueError", "Property '%s' of %s has no default (it is read-only)",
		            p->name, q.name);
		return -ENODATA;
	}
	r = prop_default(db, &q, p, v, err);
	if (r == -ENODATA) {
		qdb_err_set(err, "QubesValueError", "Property '%s' of %s has no default", p->name, q.name);
		return r;
	}
	if (r < 0)
		return r;
	char *s = strdup(v);
	if (!s) {
		qdb_err_set(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	*ret_value = s;
	return 0;
}

int qdb_global_get(struct qdb *db, const char *prop, char **ret_value, bool *ret_is_default, struct qerr *err)
{
	char v[QDB_VAL_MAX];
	bool dflt;
	const struct qdb_prop_def *g = qdb_global_prop_lookup(prop);
	if (!g) {
		char qp[300];
		qdb_quote(qp, prop);
		qdb_err_set(err, "QubesNoSuchPropertyError", "Invalid property %s of dom0 (global)", qp);
		return -ENOENT;
	}
	int r = global_value(db, g, v, &dflt, err);
	if (r < 0)
		return r;
	char *s = strdup(v);
	if (!s) {
		qdb_err_set(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	*ret_value = s;
	if (ret_is_default)
		*ret_is_default = dflt;
	return 0;
}

/* ---- users of a qube (for remove and in-use checks) ---- */

struct users {
	char list[400];
	size_t len;
	unsigned count;
};

static void users_add(struct users *u, const char *who, const char *prop)
{
	char item[80];
	int n = snprintf(item, sizeof(item), "%s%s (%s)", u->count ? ", " : "", who, prop);
	u->count++;
	if (n > 0 && u->len + (size_t)n < sizeof(u->list) - 8) {
		memcpy(u->list + u->len, item, (size_t)n + 1);
		u->len += (size_t)n;
	} else if (!strstr(u->list, ", ...")) {
		memcpy(u->list + u->len, ", ...", 6);
		u->len += 5;
	}
}

/* Who refers to qube NAME by an effective vm value: the properties in
 * only[] (all vm properties when only is NULL) of other qubes, and the
 * globals in gonly[] (all when NULL). */
static int find_users(struct qdb *db, const char *name, const char *const *only, const char *const *gonly,
                      struct users *u, struct qerr *err)
{
	char **names = NULL;
	size_t n = 0;
	char v[QDB_VAL_MAX];
	int r;

	memset(u, 0, sizeof(*u));
	r = qdb_qube_list(db, &names, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct qrow q;
		if (strcmp(names[i], name) == 0)
			continue;
		r = load_qube(db, names[i], &q, err);
		for (size_t k = 0; r == 0 && k < qdb_prop_count(); k++) {
			const struct qdb_prop_def *p = qdb_prop_at(k);
			bool wanted = !only;
			for (size_t j = 0; only && only[j]; j++)
				wanted |= is_prop(p, only[j]);
			if (p->t != QDB_T_VM || !wanted || !qdb_prop_applies(p, q.cls))
				continue;
			r = prop_value(db, &q, p, v, NULL, err);
			if (r == -ENODATA) {
				r = 0;
				continue;
			}
			if (r == 0 && strcmp(v, name) == 0)
				users_add(u, q.name, p->name);
		}
	}
	qdb_strv_free(names, n);
	for (size_t k = 0; r == 0 && k < qdb_global_prop_count(); k++) {
		const struct qdb_prop_def *g = qdb_global_prop_at(k);
		bool wanted = !gonly;
		for (size_t j = 0; gonly && gonly[j]; j++)
			wanted |= is_prop(g, gonly[j]);
		if (g->t != QDB_T_VM || !wanted)
			continue;
		r = global_value(db, g, v, NULL, err);
		if (r == 0 && strcmp(v, name) == 0)
			users_add(u, "@GLOBAL", g->name);
	}
	return r;
}

/* ---- network loops ---- */

/* A change being validated: qube CHANGED's netvm (or, when changed is
 * NULL, the global default_netvm) would become VALUE. */
struct pending_netvm {
	const char *changed;
	const char *value;
};

static int netvm_with(struct qdb *db, const char *name, const struct pending_netvm *pd, char out[QDB_VAL_MAX],
                      struct qerr *err)
{
	struct qrow q;
	bool dflt;
	int r = load_qube(db, name, &q, err);
	if (r < 0)
		return r;
	const struct qdb_prop_def *p = qdb_prop_lookup("netvm");
	if (!qdb_prop_applies(p, q.cls)) {
		out[0] = '\0';
		return 0;
	}
	if (pd->changed && strcmp(pd->changed, name) == 0) {
		snprintf(out, QDB_VAL_MAX, "%s", pd->value);
		return 0;
	}
	r = prop_value(db, &q, p, out, &dflt, err);
	if (r == 0 && dflt && !pd->changed && q.cls != QDB_TEMPLATEVM)
		snprintf(out, QDB_VAL_MAX, "%s", pd->value);
	return r;
}

/* true (1) when following netvm from START comes back to START. */
static int netvm_loops(struct qdb *db, const char *start, const struct pending_netvm *pd, struct qerr *err)
{
	char cur[QDB_VAL_MAX], next[QDB_VAL_MAX];
	snprintf(cur, sizeof(cur), "%s", start);
	for (int hops = 0; hops <= QDB_QID_MAX + 1; hops++) {
		int r = netvm_with(db, cur, pd, next, err);
		if (r < 0)
			return r;
		if (!next[0])
			return 0;
		if (strcmp(next, start) == 0 || strcmp(next, cur) == 0)
			return 1;
		memcpy(cur, next, sizeof(cur));
	}
	return 1;
}

/* ---- validation of values ---- */

static int bad_value(struct qerr *err, const char *holder, const struct qdb_prop_def *p, const char *untrusted,
                     const char *why)
{
	char qv[300];
	qdb_quote(qv, untrusted);
	qdb_err_set(err, "QubesPropertyValueError", "Invalid value %s for property '%s' of %s: %s", qv, p->name,
	            holder, why);
	return -EINVAL;
}

/* Checks a vm value: "" (none) when allow_none; else an existing qube.
 * *ref gets its qid, or -1 for none. */
static int check_vm_ref(struct qdb *db, const char *holder, const struct qdb_prop_def *p, const char *untrusted,
                        bool allow_none, struct qrow *t, long long *ref, struct qerr *err)
{
	const char *why = "no value given";
	if (!untrusted[0]) {
		if (!allow_none)
			return bad_value(err, holder, p, untrusted, "a qube is required (it cannot be none)");
		*ref = -1;
		return 0;
	}
	if (!qdb_name_is_valid(untrusted, &why))
		return bad_value(err, holder, p, untrusted, why);
	int r = load_qube(db, untrusted, t, err);
	if (r == -ENOENT)
		return bad_value(err, holder, p, untrusted, "no such qube");
	if (r < 0)
		return r;
	*ref = t->qid;
	return 0;
}

static int is_dvm_template(struct qdb *db, const struct qrow *t, bool *ret, struct qerr *err)
{
	char v[QDB_VAL_MAX];
	const struct qdb_prop_def *p = qdb_prop_lookup("template_for_dispvms");
	*ret = false;
	if (!qdb_prop_applies(p, t->cls))
		return 0;
	int r = prop_value(db, t, p, v, NULL, err);
	if (r == 0)
		*ret = strcmp(v, "True") == 0;
	return r;
}

static int check_dvm_template(struct qdb *db, const char *holder, const struct qdb_prop_def *p,
                              const struct qrow *t, struct qerr *err)
{
	bool ok;
	int r = is_dvm_template(db, t, &ok, err);
	if (r < 0)
		return r;
	if (!ok)
		return bad_value(err, holder, p, t->name,
		                 "the qube is not a disposable template (an AppVM with template_for_dispvms=True)");
	return 0;
}

static int provides_network(struct qdb *db, const struct qrow *t, bool *ret, struct qerr *err)
{
	char v[QDB_VAL_MAX];
	const struct qdb_prop_def *p = qdb_prop_lookup("provides_network");
	*ret = false;
	if (!qdb_prop_applies(p, t->cls))
		return 0;
	int r = prop_value(db, t, p, v, NULL, err);
	if (r == 0)
		*ret = strcmp(v, "True") == 0;
	return r;
}

/* The value a kernel name may take (also for default_kernel). */
static bool kernel_ok(const char *v, const char **why)
{
	if (strchr(v, '/')) {
		*why = "a kernel name cannot contain '/'";
		return false;
	}
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
		*why = "a kernel name cannot be '.' or '..'";
		return false;
	}
	return true;
}

/* Validates UNTRUSTED as the new value of qube Q's property P; writes
 * the canonical text to out and the referenced qid (or -1) to *ref. */
static int validate_qube_value(struct qdb *db, const struct qrow *q, const struct qdb_prop_def *p,
                               const char *untrusted, char out[QDB_VAL_MAX], long long *ref, struct qerr *err)
{
	const char *why = NULL;
	struct qrow t;
	int r;

	*ref = -1;
	if (p->readonly) {
		char qv[300];
		qdb_quote(qv, untrusted);
		qdb_err_set(err, "QubesPropertyValueError",
		            "Invalid value %s for property '%s' of %s: the property is read-only%s", qv, p->name,
		            q->name, is_prop(p, "name") ? " (renaming qubes is not supported)" : "");
		return -EPERM;
	}
	switch (p->t) {
	case QDB_T_BOOL:
		if (!qdb_parse_bool(untrusted, out, &why))
			return bad_value(err, q->name, p, untrusted, why);
		break;
	case QDB_T_INT: {
		long long min = is_prop(p, "maxmem") || is_prop(p, "preload_dispvm") ? 0 : 1;
		long long max = is_prop(p, "vcpus") ? QDB_VCPUS_MAX
				: is_prop(p, "preload_dispvm") ? QDB_PRELOAD_MAX : QDB_MEMORY_MAX;
		if (!qdb_parse_int(untrusted, min, max, out, &why)) {
			char msg[120];
			if (strcmp(why, "out of range") == 0) {
				snprintf(msg, sizeof(msg), "%s must be between %lld and %lld", p->name, min, max);
				why = msg;
			}
			return bad_value(err, q->name, p, untrusted, why);
		}
		break;
	}
	case QDB_T_STR: {
		size_t max = is_prop(p, "kernel") ? QDB_KERNEL_MAX : QDB_KERNELOPTS_MAX;
		if (!qdb_parse_str(untrusted, max, out, &why))
			return bad_value(err, q->name, p, untrusted, why);
		if (is_prop(p, "kernel") && !kernel_ok(out, &why))
			return bad_value(err, q->name, p, untrusted, why);
		break;
	}
	case QDB_T_LABEL:
		if (!qdb_label_lookup(untrusted)) {
			char qv[300];
			qdb_quote(qv, untrusted);
			qdb_err_set(err, "QubesLabelNotFoundError",
			            "Label does not exist: %s (property 'label' of %s; labels: red, orange, "
			            "yellow, green, gray, blue, purple, black)",
			            qv, q->name);
			return -EINVAL;
		}
		snprintf(out, QDB_VAL_MAX, "%s", untrusted);
		break;
	case QDB_T_VM:
		r = check_vm_ref(db, q->name, p, untrusted, !is_prop(p, "template"), &t, ref, err);
		if (r < 0)
			return r;
		snprintf(out, QDB_VAL_MAX, "%s", untrusted);
		if (*ref < 0)
			break;
		if (is_prop(p, "template") && q->cls == QDB_APPVM && t.cls != QDB_TEMPLATEVM) {
			char msg[120];
			snprintf(msg, sizeof(msg), "wrong VM class: %s is a %s, not a TemplateVM", t.name,
			         qdb_class_name(t.cls));
			return bad_value(err, q->name, p, untrusted, msg);
		}
		if ((is_prop(p, "template") && q->cls == QDB_DISPVM) || is_prop(p, "default_dispvm")) {
			r = check_dvm_template(db, q->name, p, &t, err);
			if (r < 0)
				return r;
		}
		if (is_prop(p, "netvm")) {
			bool net;
			char qv[300];
			r = provides_network(db, &t, &net, err);
			if (r < 0)
				return r;
			qdb_quote(qv, t.name);
			if (!net) {
				qdb_err_set(err, "QubesValueError",
				            "The %s qube does not provide network (netvm of %s; set its "
				            "provides_network to True first)",
				            qv, q->name);
				return -EINVAL;
			}
			struct pending_netvm pd = { q->name, t.name };
			r = netvm_loops(db, q->name, &pd, err);
			if (r < 0)
				return r;
			if (r) {
				qdb_err_set(err, "QubesValueError",
				            "Loops in network are unsupported (netvm of %s set to %s)", q->name, qv);
				return -ELOOP;
			}
		}
		break;
	}
	return 0;
}

/* Checks that a bool property may become FALSE_NOW ("False"): refused
 * while others depend on it. */
static int check_bool_drop(struct qdb *db, const struct qrow *q, const struct qdb_prop_def *p, const char *newv,
                           struct qerr *err)
{
	char old[QDB_VAL_MAX];
	struct users u;
	int r;
	if (strcmp(newv, "False") != 0)
		return 0;
	r = prop_value(db, q, p, old, NULL, err);
	if (r < 0 || strcmp(old, "True") != 0)
		return r;
	if (is_prop(p, "provides_network")) {
		static const char *const o[] = { "netvm", NULL };
		static const char *const go[] = { "default_netvm", NULL };
		r = find_users(db, q->name, o, go, &u, err);
		if (r < 0)
			return r;
		if (u.count) {
			qdb_err_set(err, "QubesValueError",
			            "The qube %s is still used by other qubes, change theirs 'netvm' first: %s",
			            q->name, u.list);
			return -EBUSY;
		}
	} else if (is_prop(p, "template_for_dispvms")) {
		static const char *const o[] = { "template", "default_dispvm", NULL };
		static const char *const go[] = { "default_dispvm", NULL };
		r = find_users(db, q->name, o, go, &u, err);
		if (r < 0)
			return r;
		if (u.count) {
			qdb_err_set(err, "QubesVMInUseError",
			            "Cannot change template_for_dispvms of %s to False while it is the "
			            "disposable template of: %s",
			            q->name, u.list);
			return -EBUSY;
		}
	}
	return 0;
}

int qdb_prop_set(struct qdb *db, const char *qube, const char *prop, const char *value, struct qerr *err)
{
	struct qrow q;
	char v[QDB_VAL_MAX];
	long long ref;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	const struct qdb_prop_def *p = prop_for(&q, prop, err);
	if (!p)
		return -ENOENT;
	if (!value)
		return bad_value(err, q.name, p, "", "no value given");
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = validate_qube_value(db, &q, p, value, v, &ref, err);
	if (r == 0 && p->t == QDB_T_BOOL)
		r = check_bool_drop(db, &q, p, v, err);
	if (r == 0)
		r = stored_set(db, q.qid, p->name, v, ref, err);
	return op_end(db, r, err);
}

int qdb_prop_reset(struct qdb *db, const char *qube, const char *prop, struct qerr *err)
{
	struct qrow q;
	char v[QDB_VAL_MAX];
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	const struct qdb_prop_def *p = prop_for(&q, prop, err);
	if (!p)
		return -ENOENT;
	if (p->readonly) {
		qdb_err_set(err, "QubesPropertyValueError", "Property '%s' of %s is read-only: it cannot be reset",
		            p->name, q.name);
		return -EPERM;
	}
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = prop_default(db, &q, p, v, err);
	if (r == -ENODATA) {
		qdb_err_set(err, "QubesValueError", "Property '%s' of %s has no default: it cannot be reset",
		            p->name, q.name);
	} else if (r == 0 && p->t == QDB_T_BOOL) {
		r = check_bool_drop(db, &q, p, v, err);
	} else if (r == 0 && is_prop(p, "netvm") && v[0]) {
		struct pending_netvm pd = { q.name, v };
		r = netvm_loops(db, q.name, &pd, err);
		if (r > 0) {
			qdb_err_set(err, "QubesValueError",
			            "Loops in network are unsupported (netvm of %s would become '%s')", q.name, v);
			r = -ELOOP;
		}
	}
	if (r == 0)
		r = stored_del(db, q.qid, p->name, err);
	return op_end(db, r, err);
}

static int validate_global(struct qdb *db, const struct qdb_prop_def *g, const char *untrusted,
                           char out[QDB_VAL_MAX], long long *ref, struct qerr *err)
{
	const char *why = "no value given";
	struct qrow t;
	int r;
	*ref = -1;
	if (g->t == QDB_T_STR) {
		if (!qdb_parse_str(untrusted, QDB_KERNEL_MAX, out, &why) || !kernel_ok(out, &why))
			return bad_value(err, "dom0 (global)", g, untrusted, why);
		return 0;
	}
	r = check_vm_ref(db, "dom0 (global)", g, untrusted, true, &t, ref, err);
	if (r < 0 || *ref < 0) {
		out[0] = '\0';
		return r;
	}
	snprintf(out, QDB_VAL_MAX, "%s", t.name);
	if (is_prop(g, "default_template") && t.cls != QDB_TEMPLATEVM) {
		char msg[120];
		snprintf(msg, sizeof(msg), "wrong VM class: %s is a %s, not a TemplateVM", t.name,
		         qdb_class_name(t.cls));
		return bad_value(err, "dom0 (global)", g, untrusted, msg);
	}
	if (is_prop(g, "default_dispvm"))
		return check_dvm_template(db, "dom0 (global)", g, &t, err);
	if (is_prop(g, "default_netvm")) {
		bool net;
		char **names = NULL;
		size_t n = 0;
		r = provides_network(db, &t, &net, err);
		if (r < 0)
			return r;
		if (!net)
			return bad_value(err, "dom0 (global)", g, untrusted, "the qube does not provide network");
		/* every qube that follows default_netvm must stay loop-free */
		struct pending_netvm pd = { NULL, t.name };
		r = qdb_qube_list(db, &names, &n, err);
		for (size_t i = 0; r == 0 && i < n; i++) {
			r = netvm_loops(db, names[i], &pd, err);
			if (r > 0) {
				char msg[80];
				snprintf(msg, sizeof(msg), "network loop on %s", names[i]);
				r = bad_value(err, "dom0 (global)", g, untrusted, msg);
			}
		}
		qdb_strv_free(names, n);
		return r;
	}
	return 0;
}

int qdb_global_set(struct qdb *db, const char *prop, const char *value, struct qerr *err)
{
	char v[QDB_VAL_MAX];
	long long ref;
	const struct qdb_prop_def *g = qdb_global_prop_lookup(prop);
	if (!g) {
		char qp[300];
		qdb_quote(qp, prop);
		qdb_err_set(err, "QubesNoSuchPropertyError", "Invalid property %s of dom0 (global)", qp);
		return -ENOENT;
	}
	if (!value)
		return bad_value(err, "dom0 (global)", g, "", "no value given");
	int r = op_begin(db, err);
	if (r < 0)
		return r;
	r = validate_global(db, g, value, v, &ref, err);
	if (r == 0)
		r = stored_set(db, -1, g->name, v, ref, err);
	return op_end(db, r, err);
}

int qdb_global_reset(struct qdb *db, const char *prop, struct qerr *err)
{
	const struct qdb_prop_def *g = qdb_global_prop_lookup(prop);
	if (!g) {
		char qp[300];
		qdb_quote(qp, prop);
		qdb_err_set(err, "QubesNoSuchPropertyError", "Invalid property %s of dom0 (global)", qp);
		return -ENOENT;
	}
	int r = op_begin(db, err);
	if (r < 0)
		return r;
	return op_end(db, stored_del(db, -1, g->name, err), err);
}

/* ---- create, remove, clone ---- */

static int new_uuid(char out[37], struct qerr *err)
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			qdb_err_set(err, "QubesException", "getrandom: %s", strerror(errno));
			return r;
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
	         b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

static int exists_int(struct qdb *db, const char *sql, long long v, bool *ret, struct qerr *err)
{
	sqlite3_stmt *st;
	int r = prep(db, sql, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, v);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = true;
	else if (rc == SQLITE_DONE)
		*ret = false;
	else
		r = db_fail(db, rc, err, "read");
	release(db, st);
	return r;
}

/* Allocates qid (lowest free, as Qubes), CID (from a counter, so a
 * removed qube's CID is not handed out again until the counter wraps)
 * and a UUID; inserts the qubes row.  In the caller's transaction. */
static int insert_qube(struct qdb *db, const char *name, enum qdb_class cls, struct qrow *q, struct qerr *err)
{
	bool used = true, found;
	long long qid, cid, next;
	int r;

	/* the lowest free qid: max + 1 when there is no gap (the usual case,
	 * cheap), else the first gap */
	sqlite3_stmt *st;
	r = prep(db, "SELECT CASE WHEN count(*) = max(qid) + 1 THEN max(qid) + 1 ELSE "
	             "(SELECT min(a.qid + 1) FROM qubes a WHERE "
	             "NOT EXISTS (SELECT 1 FROM qubes b WHERE b.qid = a.qid + 1)) END FROM qubes", &st, err);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = db_fail(db, rc, err, "allocate qid");
		release(db, st);
		return r;
	}
	qid = sqlite3_column_int64(st, 0);
	used = sqlite3_column_type(st, 0) == SQLITE_NULL || qid > QDB_QID_MAX;
	release(db, st);
	if (used) {
		qdb_err_set(err, "QubesException", "Cannot find unused qid (all of 1-%d are in use)", QDB_QID_MAX);
		return -ENOSPC;
	}
	r = meta_get_int(db, "next_cid", &next, &found, err);
	if (r < 0)
		return r;
	if (!found || next < QDB_CID_FIRST || next > QDB_CID_LAST)
		next = QDB_CID_FIRST;
	cid = next;
	for (;;) {
		r = exists_int(db, "SELECT 1 FROM qubes WHERE cid = ?", cid, &used, err);
		if (r < 0)
			return r;
		if (!used)
			break;
		cid = cid == QDB_CID_LAST ? QDB_CID_FIRST : cid + 1;
		/* at most 9999 qubes hold a CID, so this ends */
	}
	r = meta_set_int(db, "next_cid", cid == QDB_CID_LAST ? QDB_CID_FIRST : cid + 1, err);
	if (r < 0)
		return r;

	q->qid = qid;
	q->cls = cls;
	q->cid = cid;
	snprintf(q->name, sizeof(q->name), "%s", name);
	r = new_uuid(q->uuid, err);
	if (r < 0)
		return r;
	r = prep(db, "INSERT INTO qubes (qid, name, class, uuid, cid) VALUES (?, ?, ?, ?, ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, qid);
	bind_text(st, 2, name);
	bind_text(st, 3, qdb_class_name(cls));
	bind_text(st, 4, q->uuid);
	sqlite3_bind_int64(st, 5, cid);
	return step_done(db, st, err);
}

/* Checks a name for a new qube. */
static int check_new_name(struct qdb *db, const char *untrusted, struct qerr *err)
{
	const char *why = "no name given";
	char qn[300];
	struct qrow q;
	qdb_quote(qn, untrusted);
	if (!untrusted || !qdb_name_is_valid(untrusted, &why)) {
		qdb_err_set(err, "QubesValueError", "Invalid qube name %s: %s", qn, why);
		return -EINVAL;
	}
	if (strcmp(untrusted, "dom0") == 0) {
		qdb_err_set(err, "QubesValueError", "Invalid qube name 'dom0': it is the AdminVM's name");
		return -EINVAL;
	}
	int r = load_qube(db, untrusted, &q, NULL);
	if (r == 0) {
		qdb_err_set(err, "QubesVMAlreadyExistsError", "Qube already exists: %s", qn);
		return -EEXIST;
	}
	if (r != -ENOENT)
		return load_qube(db, untrusted, &q, err);
	return 0;
}

/* Copies stored props (except the three named in skip), tags and
 * features from qid FROM to qid TO. */
static int copy_rows(struct qdb *db, long long from, long long to, const char *const skip[3], struct qerr *err)
{
	static const char *const sql[] = {
		("INSERT INTO props (qid, name, value, ref) SELECT ?2, name, value, ref FROM props "
		 "WHERE qid = ?1 AND name NOT IN (?3, ?4, ?5)"),
		"INSERT INTO tags (qid, tag) SELECT ?2, tag FROM tags WHERE qid = ?1",
		"INSERT INTO features (qid, key, value) SELECT ?2, key, value FROM features WHERE qid = ?1",
	};
	for (size_t i = 0; i < 3; i++) {
		sqlite3_stmt *st;
		int r = prep(db, sql[i], &st, err);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, to);
		for (int k = 0; i == 0 && k < 3; k++)
			bind_text(st, 3 + k, skip[k]);
		r = step_done(db, st, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* "disp" followed by 1-9999 without leading zeros: that number, else 0. */
static unsigned dispid_of(const char *name)
{
	if (strncmp(name, "disp", 4) != 0 || name[4] < '1' || name[4] > '9')
		return 0;
	unsigned v = 0;
	for (const char *p = name + 4; *p; p++) {
		if (*p < '0' || *p > '9' || v > QDB_DISPID_MAX)
			return 0;
		v = v * 10 + (unsigned)(*p - '0');
	}
	return v <= QDB_DISPID_MAX ? v : 0;
}

int qdb_qube_create(struct qdb *db, const char *name, enum qdb_class cls, const char *template_name,
                    const char *label, struct qerr *err)
{
	struct qrow q, t;
	char tname[QDB_VAL_MAX], tcanon[QDB_VAL_MAX];
	const struct qdb_prop_def *tp = qdb_prop_lookup("template");
	bool has_template = qdb_prop_applies(tp, cls);
	int r;

	if ((unsigned)cls >= QDB_CLASS_COUNT || cls == QDB_ADMINVM) {
		qdb_err_set(err, "QubesValueError", "Cannot create a qube of class %s: %s",
		            (unsigned)cls < QDB_CLASS_COUNT ? qdb_class_name(cls) : "(unknown)",
		            cls == QDB_ADMINVM ? "dom0 is the only AdminVM" : "no such class");
		return -EINVAL;
	}
	r = check_new_name(db, name, err);
	if (r < 0)
		return r;
	if (label && !qdb_label_lookup(label)) {
		char ql[300];
		qdb_quote(ql, label);
		qdb_err_set(err, "QubesLabelNotFoundError",
		            "Label does not exist: %s (labels: red, orange, yellow, green, gray, blue, purple, black)",
		            ql);
		return -EINVAL;
	}
	if (!label && cls != QDB_DISPVM) {
		qdb_err_set(err, "QubesValueError", "A label is required to create %s (a %s)", name,
		            qdb_class_name(cls));
		return -EINVAL;
	}
	if (template_name && !has_template) {
		char qt[300];
		qdb_quote(qt, template_name);
		qdb_err_set(err, "QubesValueError", "A %s has no template (%s given for %s)", qdb_class_name(cls),
		            qt, name);
		return -EINVAL;
	}

	r = op_begin(db, err);
	if (r < 0)
		return r;
	if (has_template) {
		const char *gname = cls == QDB_APPVM ? "default_template" : "default_dispvm";
		if (template_name) {
			snprintf(tname, sizeof(tname), "%s", template_name);
		} else {
			r = global_named(db, gname, tname, err);
			if (r == 0 && !tname[0]) {
				qdb_err_set(err, "QubesValueError",
				            "No template given for %s and the global %s is not set", name, gname);
				r = -EINVAL;
			}
		}
		long long ref;
		struct qrow probe = { .qid = -1, .cls = cls };
		snprintf(probe.name, sizeof(probe.name), "%s", name);
		if (r == 0)
			r = validate_qube_value(db, &probe, tp, tname, tcanon, &ref, err);
		if (r == 0)
			r = load_qid(db, ref, &t, err);
	}
	if (r == 0)
		r = insert_qube(db, name, cls, &q, err);
	if (r == 0 && label)
		r = stored_set(db, q.qid, "label", label, -1, err);
	if (r == 0 && has_template)
		r = stored_set(db, q.qid, "template", NULL, t.qid, err);
	if (r == 0 && cls == QDB_DISPVM) {
		/* a disposable inherits what its template has set: properties
		 * it has too (not template_for_dispvms), tags, features */
		r = copy_rows(db, t.qid, q.qid, (const char *const[]){ "template", "template_for_dispvms",
		              label ? "label" : "template" }, err);
		unsigned id = dispid_of(name);
		if (r == 0 && id)
			r = meta_set_int(db, "next_dispid", id == QDB_DISPID_MAX ? 1 : id + 1, err);
	}
	return op_end(db, r, err);
}

int qdb_qube_remove(struct qdb *db, const char *name, struct qerr *err)
{
	struct qrow q;
	struct users u;
	int r = load_qube(db, name, &q, err);
	if (r < 0)
		return r;
	if (q.cls == QDB_ADMINVM) {
		qdb_err_set(err, "QubesValueError", "dom0 (the AdminVM) cannot be removed");
		return -EPERM;
	}
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = find_users(db, q.name, NULL, NULL, &u, err);
	if (r == 0 && u.count) {
		qdb_err_set(err, "QubesVMInUseError", "Domain is in use: '%s'; used by %u: %s", q.name, u.count,
		            u.list);
		r = -EBUSY;
	}
	if (r == 0) {
		sqlite3_stmt *st;
		r = prep(db, "DELETE FROM qubes WHERE qid = ?", &st, err);
		if (r == 0) {
			sqlite3_bind_int64(st, 1, q.qid);
			r = step_done(db, st, err);
		}
	}
	return op_end(db, r, err);
}

int qdb_qube_clone(struct qdb *db, const char *src, const char *dst, struct qerr *err)
{
	struct qrow s, d;
	int r = load_qube(db, src, &s, err);
	if (r < 0)
		return r;
	if (s.cls == QDB_ADMINVM) {
		qdb_err_set(err, "QubesValueError", "dom0 (the AdminVM) cannot be cloned");
		return -EPERM;
	}
	r = check_new_name(db, dst, err);
	if (r < 0)
		return r;
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = insert_qube(db, dst, s.cls, &d, err);
	if (r == 0)
		r = copy_rows(db, s.qid, d.qid, (const char *const[]){ "", "", "" }, err);
	return op_end(db, r, err);
}

/* ---- tags ---- */

static int bad_tag(struct qerr *err, const char *qube, const char *untrusted, const char *why)
{
	char qt[300];
	qdb_quote(qt, untrusted);
	qdb_err_set(err, "QubesValueError", "Invalid tag %s for %s: %s", qt, qube, why);
	return -EINVAL;
}

int qdb_tag_list(struct qdb *db, const char *qube, char ***ret, size_t *ret_n, struct qerr *err)
{
	struct qrow q;
	sqlite3_stmt *st;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	r = prep(db, "SELECT tag FROM tags WHERE qid = ? ORDER BY tag COLLATE BINARY", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, q.qid);
	return collect(db, st, ret, ret_n, err);
}

static int tag_write(struct qdb *db, const char *qube, const char *tag, bool add, struct qerr *err)
{
	struct qrow q;
	const char *why = "no value given";
	sqlite3_stmt *st;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	if (!tag || !qdb_tag_is_valid(tag, &why))
		return bad_tag(err, q.name, tag, why);
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = prep(db, add ? "INSERT OR IGNORE INTO tags (qid, tag) VALUES (?, ?)"
	                 : "DELETE FROM tags WHERE qid = ? AND tag = ?", &st, err);
	if (r == 0) {
		sqlite3_bind_int64(st, 1, q.qid);
		bind_text(st, 2, tag);
		r = step_done(db, st, err);
	}
	if (r == 0 && !add && sqlite3_changes(db->h) == 0) {
		qdb_err_set(err, "QubesTagNotFoundError", "Tag not set for domain %s: %s", q.name, tag);
		r = -ENOENT;
	}
	return op_end(db, r, err);
}

int qdb_tag_set(struct qdb *db, const char *qube, const char *tag, struct qerr *err)
{
	return tag_write(db, qube, tag, true, err);
}

int qdb_tag_remove(struct qdb *db, const char *qube, const char *tag, struct qerr *err)
{
	return tag_write(db, qube, tag, false, err);
}

bool qdb_tag_has(struct qdb *db, const char *qube, const char *tag)
{
	struct qrow q;
	const char *why = "no value given";
	sqlite3_stmt *st;
	bool has = false;
	if (load_qube(db, qube, &q, NULL) < 0 || !tag || !qdb_tag_is_valid(tag, &why))
		return false;
	if (prep(db, "SELECT 1 FROM tags WHERE qid = ? AND tag = ?", &st, NULL) < 0)
		return false;
	sqlite3_bind_int64(st, 1, q.qid);
	bind_text(st, 2, tag);
	has = sqlite3_step(st) == SQLITE_ROW;
	release(db, st);
	return has;
}

/* ---- features ---- */

static int check_feature_key(const char *qube, const char *untrusted, struct qerr *err)
{
	const char *why = "no value given";
	if (untrusted && qdb_feature_key_is_valid(untrusted, &why))
		return 0;
	char qk[300];
	qdb_quote(qk, untrusted);
	qdb_err_set(err, "QubesValueError", "Invalid feature name %s for %s: %s", qk, qube, why);
	return -EINVAL;
}

int qdb_feature_list(struct qdb *db, const char *qube, char ***ret_keys, size_t *ret_n, struct qerr *err)
{
	struct qrow q;
	sqlite3_stmt *st;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	r = prep(db, "SELECT key FROM features WHERE qid = ? ORDER BY key COLLATE BINARY", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, q.qid);
	return collect(db, st, ret_keys, ret_n, err);
}

int qdb_feature_get(struct qdb *db, const char *qube, const char *key, char **ret_value, struct qerr *err)
{
	struct qrow q;
	sqlite3_stmt *st;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	r = check_feature_key(q.name, key, err);
	if (r < 0)
		return r;
	r = prep(db, "SELECT value FROM features WHERE qid = ? AND key = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, q.qid);
	bind_text(st, 2, key);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		char *s = strdup(t ? (const char *)t : "");
		if (s) {
			*ret_value = s;
		} else {
			qdb_err_set(err, "QubesException", "out of memory");
			r = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		qdb_err_set(err, "QubesFeatureNotFoundError", "Feature not set for domain %s: %s", q.name, key);
		r = -ENOENT;
	} else {
		r = db_fail(db, rc, err, "read feature");
	}
	release(db, st);
	return r;
}

int qdb_feature_set(struct qdb *db, const char *qube, const char *key, const char *value, struct qerr *err)
{
	struct qrow q;
	sqlite3_stmt *st;
	const char *why = "no value given";
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	r = check_feature_key(q.name, key, err);
	if (r < 0)
		return r;
	if (!value || !qdb_text_is_valid(value, QDB_FEATURE_VALUE_MAX, &why)) {
		char qv[300];
		qdb_quote(qv, value);
		qdb_err_set(err, "QubesValueError", "Invalid value %s for feature %s of %s: %s", qv, key, q.name,
		            value ? why : "no value given");
		return -EINVAL;
	}
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = prep(db, "INSERT INTO features (qid, key, value) VALUES (?, ?, ?) "
	             "ON CONFLICT (qid, key) DO UPDATE SET value = excluded.value", &st, err);
	if (r == 0) {
		sqlite3_bind_int64(st, 1, q.qid);
		bind_text(st, 2, key);
		bind_text(st, 3, value);
		r = step_done(db, st, err);
	}
	return op_end(db, r, err);
}

int qdb_feature_remove(struct qdb *db, const char *qube, const char *key, struct qerr *err)
{
	struct qrow q;
	sqlite3_stmt *st;
	int r = load_qube(db, qube, &q, err);
	if (r < 0)
		return r;
	r = check_feature_key(q.name, key, err);
	if (r < 0)
		return r;
	r = op_begin(db, err);
	if (r < 0)
		return r;
	r = prep(db, "DELETE FROM features WHERE qid = ? AND key = ?", &st, err);
	if (r == 0) {
		sqlite3_bind_int64(st, 1, q.qid);
		bind_text(st, 2, key);
		r = step_done(db, st, err);
	}
	if (r == 0 && sqlite3_changes(db->h) == 0) {
		qdb_err_set(err, "QubesFeatureNotFoundError", "Feature not set for domain %s: %s", q.name, key);
		r = -ENOENT;
	}
	return op_end(db, r, err);
}

/* ---- disposables ---- */

int qdb_dispvm_next_name(struct qdb *db, char ret_name[32], struct qerr *err)
{
	long long next;
	bool found;
	int r = meta_get_int(db, "next_dispid", &next, &found, err);
	if (r < 0)
		return r;
	if (!found || next < 1 || next > QDB_DISPID_MAX)
		next = 1;
	for (unsigned i = 0; i < QDB_DISPID_MAX; i++) {
		char name[32];
		unsigned id = (unsigned)((next - 1 + i) % QDB_DISPID_MAX) + 1;
		struct qrow q;
		snprintf(name, sizeof(name), "disp%u", id);
		r = load_qube(db, name, &q, err);
		if (r == -ENOENT) {
			memcpy(ret_name, name, sizeof(name));
			return 0;
		}
		if (r < 0)
			return r;
	}
	qdb_err_set(err, "QubesException", "No free disposable name: disp1-disp%u are all in use", QDB_DISPID_MAX);
	return -ENOSPC;
}
