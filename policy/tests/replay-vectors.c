/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replays the differential vectors of policy/tests/differential/
 * vectors.json: decisions Qubes OS 4.3's own evaluator made (written by
 * random-diff.py --vectors), each evaluated again with libqpolicy.
 *
 *   replay-vectors VECTORS_JSON SYSTEM_JSON POLICY_MD
 *
 * Every case's files go into a fresh policy directory, every request is
 * evaluated and compared field by field with what Qubes decided.  A vector
 * marked "deviation": NAME is compared with its "expect" instead, and only
 * if NAME is one of the deliberate differences documented in POLICY_MD
 * (a `NAME` in its "Differences from Qubes OS" section); a marked vector
 * whose "expect" equals Qubes' decision is stale and fails too.  Exits 1 on
 * any disagreement, printing the first ones in full.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qpolicy.h"

#define MAX_SHOWN 12

struct tally {
	size_t total, agree, deviations, shown;
};

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		fprintf(stderr, "replay-vectors: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 65536) {
			char *nb = realloc(buf, cap + 65536 + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* The section of docs/policy.md that lists the deliberate differences:
 * from its heading to the next heading of the same level. */
static char *deviation_section(const char *md)
{
	const char *start = strstr(md, "\n## Differences from Qubes OS");
	if (!start)
		return NULL;
	start++;
	const char *end = strstr(start + 3, "\n## ");
	size_t n = end ? (size_t)(end - start) : strlen(start);
	return strndup(start, n);
}

static bool deviation_documented(const char *section, const char *name)
{
	char *needle = NULL;
	bool found;

	if (asprintf(&needle, "`%s`", name) < 0)
		return false;
	found = strstr(section, needle) != NULL;
	free(needle);
	return found;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Writes NAME (relative, no "..") under DIR, making its directories. */
static int write_policy_file(const char *dir, const char *name, const char *text)
{
	char path[4096];

	if (name[0] == '/' || strstr(name, "..") ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -EINVAL;
	for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		off += (size_t)n;
	}
	return close(fd) < 0 ? -errno : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Appends "field: want X, got Y" to DIFF when they differ. */
__attribute__((format(printf, 2, 3)))
static void note(char **diff, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *joined = NULL;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	if (!line)
		abort();
	if (asprintf(&joined, "%s    %s\n", *diff ? *diff : "", line) < 0)
		abort();
	free(line);
	free(*diff);
	*diff = joined;
}

static void cmp_str(char **diff, const char *field, const char *want, const char *got)
{
	if (!str_eq(want, got))
		note(diff, "%s: want %s, got %s", field, want ? want : "(none)", got ? got : "(none)");
}

/* Compares decision D with WANT (a vector's "qubes" or "expect" object);
 * returns the differences (malloc'd) or NULL when they agree. */
static char *compare(struct json_object *want, const struct qpol_decision *d)
{
	const char *result = get_str(want, "result");
	char *diff = NULL;

	cmp_str(&diff, "result", result, qpol_result_to_string(d->result));
	if (diff || d->result == QPOL_RESULT_DENY)
		return diff;
	/* Qubes leaves user out for the default user */
	cmp_str(&diff, "user", get_str(want, "user"), d->user);
	if (get_bool(want, "autostart") != d->autostart)
		note(&diff, "autostart: want %d, got %d", get_bool(want, "autostart"), d->autostart);
	cmp_str(&diff, "requested_target", get_str(want, "requested_target"),
		d->requested_target);
	if (d->result == QPOL_RESULT_ALLOW) {
		cmp_str(&diff, "target", get_str(want, "target"), d->target);
		cmp_str(&diff, "target_uuid", get_str(want, "target_uuid"), d->target_uuid);
		return diff;
	}
	struct json_object *targets;
	size_t n = 0;
	if (json_object_object_get_ex(want, "targets", &targets) &&
	    json_object_is_type(targets, json_type_array))
		n = json_object_array_length(targets);
	bool same = n == d->n_targets;
	for (size_t i = 0; same && i < n; i++)
		same = str_eq(json_object_get_string(json_object_array_get_idx(targets, i)),
			      d->targets[i]);
	if (!same) {
		char *got = NULL;
		for (size_t i = 0; i < d->n_targets; i++) {
			char *g = NULL;
			if (asprintf(&g, "%s%s%s", got ? got : "", i ? " " : "", d->targets[i]) < 0)
				abort();
			free(got);
			got = g;
		}
		note(&diff, "targets: want %s, got %s",
		     json_object_to_json_string_ext(targets, JSON_C_TO_STRING_PLAIN),
		     got ? got : "(none)");
		free(got);
	}
	/* "" in a vector: no default */
	const char *def = get_str(want, "default_target");
	cmp_str(&diff, "default_target", def && def[0] ? def : NULL, d->default_target);
	return diff;
}

static void show_case(struct json_object *files, struct json_object *req, const char *diff,
		      const char *deviation)
{
	fprintf(stderr, "--- DISAGREE %s %s %s+%s%s%s\n", get_str(req, "source"),
		get_str(req, "target"), get_str(req, "service"), get_str(req, "argument"),
		deviation ? " deviation " : "", deviation ? deviation : "");
	fputs(diff, stderr);
	json_object_object_foreach(files, name, text)
	{
		fprintf(stderr, "    ## %s\n", name);
		const char *t = json_object_get_string(text);
		for (const char *l = t; *l;) {
			const char *nl = strchr(l, '\n');
			size_t len = nl ? (size_t)(nl - l) : strlen(l);
			fprintf(stderr, "    %.*s\n", (int)len, l);
			l += len + (nl ? 1 : 0);
		}
	}
}

static int replay_case(struct json_object *c, const struct qpol_system *sys, const char *section,
		       struct tally *t)
{
	struct json_object *files, *reqs;
	char dir[] = "/tmp/qube-replay.XXXXXX";
	const char *tmp = getenv("TMPDIR");
	char dirbuf[4096];
	struct qpol_policy *policy = NULL;
	int r;

	if (!json_object_object_get_ex(c, "files", &files) ||
	    !json_object_object_get_ex(c, "requests", &reqs)) {
		fprintf(stderr, "replay-vectors: a case without files or requests\n");
		return -EINVAL;
	}
	if (tmp && tmp[0]) {
		if ((size_t)snprintf(dirbuf, sizeof(dirbuf), "%s/qube-replay.XXXXXX", tmp) >=
		    sizeof(dirbuf))
			return -ENAMETOOLONG;
	} else {
		snprintf(dirbuf, sizeof(dirbuf), "%s", dir);
	}
	if (!mkdtemp(dirbuf))
		return -errno;
	json_object_object_foreach(files, name, text)
	{
		r = write_policy_file(dirbuf, name, json_object_get_string(text));
		if (r < 0) {
			fprintf(stderr, "replay-vectors: writing %s: %s\n", name, strerror(-r));
			goto out;
		}
	}
	r = qpol_policy_load_dir(dirbuf, &policy);
	if (r < 0) {
		fprintf(stderr, "replay-vectors: loading %s: %s\n", dirbuf, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		struct json_object *v = json_object_array_get_idx(reqs, i), *want;
		const char *deviation = get_str(v, "deviation");
		struct qpol_request req = {
			.service = get_str(v, "service"),
			.argument = get_str(v, "argument"),
			.source = get_str(v, "source"),
			.target = get_str(v, "target"),
		};
		struct qpol_decision d;
		char *diff = NULL;

		t->total++;
		if (!json_object_object_get_ex(v, deviation ? "expect" : "qubes", &want)) {
			fprintf(stderr, "replay-vectors: a request without its decision\n");
			r = -EINVAL;
			goto out;
		}
		r = qpol_evaluate(policy, sys, &req, &d);
		if (r < 0) {
			fprintf(stderr, "replay-vectors: evaluation failed: %s\n", strerror(-r));
			goto out;
		}
		diff = compare(want, &d);
		if (!diff && deviation) {
			struct json_object *qubes;
			char *same = NULL;
			if (!deviation_documented(section, deviation))
				note(&diff, "deviation %s is not documented in docs/policy.md",
				     deviation);
			else if (json_object_object_get_ex(v, "qubes", &qubes) &&
				 !(same = compare(qubes, &d)))
				note(&diff, "deviation %s marked, but Qubes decided the same",
				     deviation);
			free(same);
		}
		if (diff) {
			if (t->shown++ < MAX_SHOWN)
				show_case(files, v, diff, deviation);
			free(diff);
		} else {
			t->agree++;
			t->deviations += deviation != NULL;
		}
		qpol_decision_finish(&d);
	}
	r = 0;
out:
	qpol_policy_free(policy);
	nftw(dirbuf, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}

int main(int argc, char **argv)
{
	struct json_object *root = NULL, *cases;
	struct qpol_system *sys = NULL;
	struct tally t = { 0 };
	char *text = NULL, *md = NULL, *section = NULL, *err = NULL;
	int ret = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: replay-vectors VECTORS_JSON SYSTEM_JSON POLICY_MD\n");
		return 2;
	}
	if (qpol_system_load_file(argv[2], &sys, &err) < 0) {
		fprintf(stderr, "replay-vectors: %s\n", err ? err : "cannot load system info");
		goto out;
	}
	md = read_file(argv[3]);
	section = md ? deviation_section(md) : NULL;
	if (!section) {
		fprintf(stderr, "replay-vectors: %s: no \"## Differences from Qubes OS\" section\n",
			argv[3]);
		goto out;
	}
	text = read_file(argv[1]);
	root = text ? json_tokener_parse(text) : NULL;
	if (!root || !json_object_object_get_ex(root, "cases", &cases) ||
	    !json_object_is_type(cases, json_type_array)) {
		fprintf(stderr, "replay-vectors: %s: not a vectors file\n", argv[1]);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(cases); i++)
		if (replay_case(json_object_array_get_idx(cases, i), sys, section, &t) < 0)
			goto out;
	printf("replay-vectors: %zu of %zu decisions agree with Qubes OS 4.3 (%zu of them "
	       "through a documented deviation)\n",
	       t.agree, t.total, t.deviations);
	if (t.total == 0)
		fprintf(stderr, "replay-vectors: no vectors\n");
	else if (t.agree == t.total)
		ret = 0;
	else
		fprintf(stderr, "replay-vectors: %zu disagreements (%d shown)\n", t.total - t.agree,
			t.shown < MAX_SHOWN ? (int)t.shown : MAX_SHOWN);
out:
	json_object_put(root);
	qpol_system_free(sys);
	free(text);
	free(md);
	free(section);
	free(err);
	return ret;
}
