/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Policy loader: the policy directory, single files and the !include
 * family of directives, into a list of rules in first-match order.
 *
 * Semantics follow Qubes OS 4.3's qrexec policy parser (qrexec/policy/
 * parser.py), re-implemented: same line syntax, same tokens allowed in the
 * same places, same parameters, same directives, same file-name rules.
 * Where Qubes aborts at the first error, this loader records every
 * problem (one per line) so a linter can show them all; a policy with any
 * problem denies every request.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qpolicy-internal.h"

#define QPOL_MAX_DEPTH 32          /* nested includes */
#define QPOL_MAX_LOADS 4096        /* files read in one load */
#define QPOL_MAX_FILE_SIZE (16u << 20)
/* Bounds on what one load may cost, whatever the files say: includes can
 * fan out (QPOL_MAX_LOADS files of QPOL_MAX_FILE_SIZE each would be 64 GiB
 * and billions of rules).  Real policies have hundreds of rules. */
#define QPOL_MAX_TOTAL_SIZE (64u << 20) /* bytes read over all files */
#define QPOL_MAX_RULES 100000u
#define QPOL_SUFFIX ".policy"

/* !include-service context: rules of such a file have no service and
 * argument columns; they come from the directive. */
struct svc_ctx {
	bool active;
	const char *service;  /* NULL: any */
	const char *argument; /* NULL: any; else without '+' */
};

struct loader {
	struct qpol_policy *p;
	const char *base; /* include base directory; NULL: includes refused */
	char *stack[QPOL_MAX_DEPTH];
	size_t depth;
	size_t n_loads;
	size_t total_size;   /* bytes read so far */
	bool rule_limit_hit; /* QPOL_MAX_RULES reported */
};

/* ---- Small helpers ------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 8;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	void *n = realloc(*arr, ncap * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = ncap;
	return 0;
}

/* Whitespace as Python's str.split()/strip() sees it, ASCII part. */
static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool is_valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static const char *intern_file(struct qpol_policy *p, const char *name)
{
	for (size_t i = p->n_files; i > 0; i--)
		if (strcmp(p->files[i - 1], name) == 0)
			return p->files[i - 1];
	if (grow((void **)&p->files, &p->cap_files, p->n_files + 1, sizeof(*p->files)) < 0)
		return NULL;
	char *copy = strdup(name);
	if (!copy)
		return NULL;
	p->files[p->n_files++] = copy;
	return copy;
}

/* Remembers that the policy depends on PATH (see qpol_policy_dep()). */
static int add_dep(struct qpol_policy *p, const char *path, enum qpol_dep_kind kind)
{
	for (size_t i = 0; i < p->n_deps; i++)
		if (p->deps[i].kind == kind && strcmp(p->deps[i].path, path) == 0)
			return 0;
	if (grow((void **)&p->deps, &p->cap_deps, p->n_deps + 1, sizeof(*p->deps)) < 0)
		return -ENOMEM;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	p->deps[p->n_deps++] = (struct qpol_dep_entry){ .path = copy, .kind = kind };
	return 0;
}

/* Records FILE:LINE: message.  Control characters in the message (from
 * policy text) are shown as '?' so a diagnostic is always one clean line. */
__attribute__((format(printf, 4, 5)))
static int diag(struct loader *ld, const char *file, unsigned line, const char *fmt, ...)
{
	struct qpol_policy *p = ld->p;
	char *msg, *f;
	va_list ap;

	va_start(ap, fmt);
	msg = qpol_vmsg(fmt, ap);
	va_end(ap);
	if (!msg)
		return -ENOMEM;
	f = strdup(file);
	if (!f)
		goto err_free_msg;
	if (grow((void **)&p->diags, &p->cap_diags, p->n_diags + 1, sizeof(*p->diags)) < 0)
		goto err_free_file;
	p->diags[p->n_diags].file = f;
	p->diags[p->n_diags].line = line;
	p->diags[p->n_diags].message = msg;
	p->n_diags++;
	return 0;

err_free_file:
	free(f);
err_free_msg:
	free(msg);
	return -ENOMEM;
}

/* Splits LINE in place at whitespace. */
static int split_fields(char *line, char ***ret_fields, size_t *ret_n)
{
	char **fields = NULL;
	size_t n = 0, cap = 0;
	char *c = line;

	for (;;) {
		while (*c && is_space((unsigned char)*c))
			*c++ = '\0';
		if (!*c)
			break;
		if (grow((void **)&fields, &cap, n + 1, sizeof(*fields)) < 0) {
			free(fields);
			return -ENOMEM;
		}
		fields[n++] = c;
		while (*c && !is_space((unsigned char)*c))
			c++;
	}
	*ret_fields = fields;
	*ret_n = n;
	return 0;
}

/* ---- Rules --------------------------------------------------------------- */

static void rule_finish(struct qpol_rule *r)
{
	free(r->service);
	free(r->argument);
	qpol_token_finish(&r->source);
	qpol_token_finish(&r->target);
	qpol_token_finish(&r->redirect);
	qpol_token_finish(&r->default_target);
	free(r->user);
}

/* Validates SERVICE and ARGUMENT columns ("*" meaning any).  Returns 0,
 * -ENOMEM, or -EINVAL after recording a diagnostic.  On success the
 * outputs are NULL for "*" or malloc'd copies (argument without '+'). */
static int parse_service_argument(struct loader *ld, const char *file, unsigned line,
				  const char *service, const char *argument, char **ret_service,
				  char **ret_argument)
{
	char *s = NULL, *a = NULL;
	int r;

	if (strcmp(service, "*") != 0) {
		for (const char *c = service; *c; c++) {
			if (!qname_is_name_char(*c)) {
				r = diag(ld, file, line,
					 "service \"%s\" contains an invalid character '%c' "
					 "(allowed: A-Z a-z 0-9 . _ -)",
					 service, *c);
				return r < 0 ? r : -EINVAL;
			}
		}
		s = strdup(service);
		if (!s)
			return -ENOMEM;
	}
	if (strcmp(argument, "*") != 0) {
		for (const char *c = argument; *c; c++) {
			if (!qname_is_argument_char(*c)) {
				r = diag(ld, file, line,
					 "argument \"%s\" contains an invalid character '%c' "
					 "(allowed: A-Z a-z 0-9 + . _ -)",
					 argument, *c);
				goto err;
			}
		}
		if (argument[0] != '+') {
			r = diag(ld, file, line, "argument \"%s\" does not start with +", argument);
			goto err;
		}
		if (!s) {
			r = diag(ld, file, line, "only * argument allowed for * service");
			goto err;
		}
		a = strdup(argument + 1);
		if (!a) {
			r = -ENOMEM;
			goto err;
		}
	}
	*ret_service = s;
	*ret_argument = a;
	return 0;

err:
	free(s);
	return r < 0 ? r : -EINVAL;
}

static int parse_token(struct loader *ld, const char *file, unsigned line, const char *text,
		       unsigned ctx, struct qpol_token *ret)
{
	char *msg = NULL;
	int r = qpol_token_parse(text, ctx, ret, &msg);
	if (r == -EINVAL) {
		if (!msg)
			return -ENOMEM;
		r = diag(ld, file, line, "%s", msg);
		free(msg);
		return r < 0 ? r : -EINVAL;
	}
	return r;
}

struct param {
	const char *key;
	const char *value;
};

static const char *action_name(enum qpol_action a)
{
	return a == QPOL_ACTION_ALLOW ? "allow" : a == QPOL_ACTION_ASK ? "ask" : "deny";
}

static bool param_allowed(enum qpol_action a, const char *key)
{
	if (strcmp(key, "notify") == 0)
		return true;
	if (a == QPOL_ACTION_DENY)
		return false;
	if (strcmp(key, "target") == 0 || strcmp(key, "user") == 0 ||
	    strcmp(key, "autostart") == 0)
		return true;
	return a == QPOL_ACTION_ASK && strcmp(key, "default_target") == 0;
}

/* Parses the columns from SOURCE on; SERVICE/ARGUMENT already validated
 * (ownership passes to the rule on success and on failure). */
static int add_rule(struct loader *ld, const char *file, unsigned line, char *service,
		    char *argument, char **f, size_t nf)
{
	struct qpol_policy *p = ld->p;
	struct qpol_rule rule = { .service = service, .argument = argument };
	struct param *params = NULL;
	size_t np = 0;
	int r;

	if (p->n_rules >= QPOL_MAX_RULES) {
		r = 0;
		if (!ld->rule_limit_hit)
			r = diag(ld, file, line, "too many rules (limit %u)", QPOL_MAX_RULES);
		ld->rule_limit_hit = true;
		goto out_inval;
	}

	/* f: SOURCE TARGET ACTION [PARAMS...] */
	r = parse_token(ld, file, line, f[0], QPOL_CTX_SOURCE, &rule.source);
	if (r < 0)
		goto out;
	r = parse_token(ld, file, line, f[1], QPOL_CTX_TARGET, &rule.target);
	if (r < 0)
		goto out;
	if (strcmp(f[2], "allow") == 0) {
		rule.action = QPOL_ACTION_ALLOW;
	} else if (strcmp(f[2], "deny") == 0) {
		rule.action = QPOL_ACTION_DENY;
	} else if (strcmp(f[2], "ask") == 0) {
		rule.action = QPOL_ACTION_ASK;
	} else {
		r = diag(ld, file, line, "invalid action: %s (expected allow, deny or ask)", f[2]);
		goto out_inval;
	}
	rule.notify = rule.action == QPOL_ACTION_DENY;
	rule.autostart = true;

	if (nf > 3) {
		params = calloc(nf - 3, sizeof(*params));
		if (!params) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 3; i < nf; i++) {
		char *eq = strchr(f[i], '=');
		if (!eq) {
			r = diag(ld, file, line,
				 "invalid action parameter syntax: %s (expected key=value)", f[i]);
			goto out_inval;
		}
		*eq = '\0';
		for (size_t k = 0; k < np; k++) {
			if (strcmp(params[k].key, f[i]) == 0) {
				r = diag(ld, file, line, "parameter given twice: %s", f[i]);
				goto out_inval;
			}
		}
		params[np].key = f[i];
		params[np].value = eq + 1;
		np++;
	}
	for (size_t k = 0; k < np; k++) {
		bool *dst = NULL;
		if (strcmp(params[k].key, "notify") == 0)
			dst = &rule.notify;
		else if (strcmp(params[k].key, "autostart") == 0)
			dst = &rule.autostart;
		if (!dst)
			continue;
		if (strcmp(params[k].value, "yes") != 0 && strcmp(params[k].value, "no") != 0) {
			r = diag(ld, file, line, "%s is \"%s\", but can be only 'yes' or 'no'",
				 params[k].key, params[k].value);
			goto out_inval;
		}
		*dst = strcmp(params[k].value, "yes") == 0;
	}
	for (size_t k = 0; k < np; k++) {
		if (!param_allowed(rule.action, params[k].key)) {
			r = diag(ld, file, line, "invalid parameter %s= for action %s",
				 params[k].key, action_name(rule.action));
			goto out_inval;
		}
	}
	for (size_t k = 0; k < np; k++) {
		const char *key = params[k].key, *value = params[k].value;
		if (strcmp(key, "target") == 0) {
			r = parse_token(ld, file, line, value, QPOL_CTX_REDIRECT, &rule.redirect);
			if (r < 0)
				goto out;
			rule.has_redirect = true;
		} else if (strcmp(key, "default_target") == 0) {
			r = parse_token(ld, file, line, value, QPOL_CTX_REDIRECT,
					&rule.default_target);
			if (r < 0)
				goto out;
			rule.has_default_target = true;
		} else if (strcmp(key, "user") == 0 && value[0] != '\0') {
			if (!qname_user_is_valid(value)) {
				r = diag(ld, file, line,
					 "invalid user= value '%s': want 1-%u of [A-Za-z0-9_.-], not "
					 "starting with '-' or '.'",
					 value, QNAME_MAX_USER);
				goto out_inval;
			}
			rule.user = strdup(value);
			if (!rule.user) {
				r = -ENOMEM;
				goto out;
			}
		}
	}
	if (rule.target.kind == QPOL_TOK_DEFAULT && rule.action == QPOL_ACTION_ALLOW &&
	    !rule.has_redirect) {
		r = diag(ld, file, line, "allow action for @default rule must specify target= option");
		goto out_inval;
	}

	rule.file = file;
	rule.line = line;
	r = grow((void **)&p->rules, &p->cap_rules, p->n_rules + 1, sizeof(*p->rules));
	if (r < 0)
		goto out;
	p->rules[p->n_rules++] = rule;
	free(params);
	return 0;

out_inval:
	if (r == 0)
		r = -EINVAL;
out:
	free(params);
	rule_finish(&rule);
	return r;
}

/* ---- Files and directories ------------------------------------------------ */

static int load_dir(struct loader *ld, const char *dir, const char *from_file, unsigned from_line);
static int load_file(struct loader *ld, const char *path, const struct svc_ctx *svc,
		     const char *from_file, unsigned from_line);

/* Include paths: absolute as given, relative ones against the directory
 * the load started from (Qubes resolves them against the policy dir). */
static char *resolve_include(const struct loader *ld, const char *rel)
{
	char *path = NULL;
	if (rel[0] == '/')
		path = strdup(rel);
	else if (asprintf(&path, "%s/%s", ld->base, rel) < 0)
		path = NULL;
	if (!path)
		return NULL;
	/* Lexical clean-up for readable diagnostics: "//" and "/./" become
	 * "/", a trailing "/." or "/" goes ("." components are no-ops). */
	char *w = path;
	for (const char *r = path; *r;) {
		if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' && (r[2] == '/' || r[2] == '\0')))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	*w = '\0';
	if (w > path + 1 && w[-1] == '/')
		w[-1] = '\0';
	if (path[0] == '\0') {
		/* "." + "/." cleaned to nothing cannot happen with a base, but
		 * keep the path meaningful anyway. */
		free(path);
		return strdup(".");
	}
	return path;
}

static int handle_include(struct loader *ld, const char *file, unsigned line, const char *rel,
			  const struct svc_ctx *svc, bool is_dir)
{
	struct stat st;
	char *path;
	int r;

	if (!ld->base) {
		r = diag(ld, file, line, "includes are not available here");
		return r < 0 ? r : -EINVAL;
	}
	path = resolve_include(ld, rel);
	if (!path)
		return -ENOMEM;
	/* a target that is missing now may appear: a dependency all the same */
	if (add_dep(ld->p, path, is_dir ? QPOL_DEP_DIR : QPOL_DEP_FILE) < 0) {
		free(path);
		return -ENOMEM;
	}
	if (stat(path, &st) < 0 || (is_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
		r = diag(ld, file, line, "%s: %s", is_dir ? "not a directory" : "not a file", path);
		if (r == 0)
			r = -EINVAL;
	} else if (is_dir) {
		r = load_dir(ld, path, file, line);
	} else {
		r = load_file(ld, path, svc, file, line);
	}
	free(path);
	return r;
}

static int handle_directive(struct loader *ld, const char *file, unsigned line, char **f,
			    size_t nf, const struct svc_ctx *svc)
{
	int r;

	if (svc->active) {
		/* Inside an !include-service file only !include exists, and it
		 * includes another file of the same (service-less) format. */
		if (strcmp(f[0], "!include") != 0) {
			r = diag(ld, file, line, "invalid directive: %s (only !include is allowed "
				 "in a file included with !include-service)", f[0]);
			return r < 0 ? r : -EINVAL;
		}
		if (nf != 2) {
			r = diag(ld, file, line, "invalid number of params for !include (expected FILE)");
			return r < 0 ? r : -EINVAL;
		}
		return handle_include(ld, file, line, f[1], svc, false);
	}
	if (strcmp(f[0], "!include") == 0 || strcmp(f[0], "!include-dir") == 0) {
		bool is_dir = f[0][8] == '-';
		if (nf != 2) {
			r = diag(ld, file, line, "invalid number of params for %s (expected %s)", f[0],
				 is_dir ? "DIRECTORY" : "FILE");
			return r < 0 ? r : -EINVAL;
		}
		return handle_include(ld, file, line, f[1], svc, is_dir);
	}
	if (strcmp(f[0], "!include-service") == 0) {
		char *service = NULL, *argument = NULL;
		if (nf != 4) {
			r = diag(ld, file, line, "invalid number of params for !include-service "
				 "(expected SERVICE ARGUMENT FILE)");
			return r < 0 ? r : -EINVAL;
		}
		r = parse_service_argument(ld, file, line, f[1], f[2], &service, &argument);
		if (r < 0)
			return r;
		struct svc_ctx inner = { .active = true, .service = service, .argument = argument };
		r = handle_include(ld, file, line, f[3], &inner, false);
		free(service);
		free(argument);
		return r;
	}
	if (strcmp(f[0], "!compat-4.0") == 0) {
		r = diag(ld, file, line, "!compat-4.0 is not supported: convert the old "
			 "per-service policy files to the 4.1 format");
		return r < 0 ? r : -EINVAL;
	}
	r = diag(ld, file, line, "invalid directive: %s", f[0]);
	return r < 0 ? r : -EINVAL;
}

/* One stripped, non-empty, non-comment line. */
static int parse_line(struct loader *ld, const char *file, unsigned line, char *text,
		      const struct svc_ctx *svc)
{
	char **f = NULL;
	size_t nf = 0;
	int r;

	if (svc->active) {
		/* Compatibility substitutions Qubes applies to these files. */
		char *c;
		while ((c = strstr(text, "$include:")))
			memcpy(c, "!include ", 9);
		for (c = text; *c; c++)
			if (*c == '$')
				*c = '@';
			else if (*c == ',')
				*c = ' ';
	}
	r = split_fields(text, &f, &nf);
	if (r < 0)
		return r;
	if (nf == 0) {
		/* Only possible after the ',' substitution: nothing but commas. */
		r = diag(ld, file, line, "wrong number of fields");
		goto out;
	}
	if (f[0][0] == '!') {
		r = handle_directive(ld, file, line, f, nf, svc);
		goto out;
	}
	if (svc->active) {
		char *service = NULL, *argument = NULL;
		if (nf < 3) {
			r = diag(ld, file, line, "wrong number of fields: expected SOURCE TARGET ACTION "
				 "[PARAMS]");
			goto out;
		}
		if (svc->service && !(service = strdup(svc->service))) {
			r = -ENOMEM;
			goto out;
		}
		if (svc->argument && !(argument = strdup(svc->argument))) {
			free(service);
			r = -ENOMEM;
			goto out;
		}
		r = add_rule(ld, file, line, service, argument, f, nf);
	} else {
		char *service = NULL, *argument = NULL;
		if (nf < 5) {
			r = diag(ld, file, line, "wrong number of fields: expected SERVICE ARGUMENT "
				 "SOURCE TARGET ACTION [PARAMS]");
			goto out;
		}
		r = parse_service_argument(ld, file, line, f[0], f[1], &service, &argument);
		if (r < 0)
			goto out;
		r = add_rule(ld, file, line, service, argument, f + 2, nf - 2);
	}
out:
	free(f);
	/* Problems are diagnostics; only allocation failure stops the load. */
	return r == -ENOMEM ? r : 0;
}

/* Parses LEN bytes of TEXT as file FILE (an interned name).  Lines end at
 * "\n", "\r\n" or "\r" (Python's universal newlines). */
static int parse_buffer(struct loader *ld, const char *file, const char *text, size_t len,
			const struct svc_ctx *svc)
{
	unsigned lineno = 0;
	size_t pos = 0;
	char *buf = NULL;
	int r = 0;

	while (pos < len) {
		size_t start = pos, end;
		while (pos < len && text[pos] != '\n' && text[pos] != '\r')
			pos++;
		end = pos;
		if (pos < len) {
			if (text[pos] == '\r' && pos + 1 < len && text[pos + 1] == '\n')
				pos++;
			pos++;
		}
		if (lineno == UINT_MAX) {
			r = diag(ld, file, lineno, "too many lines");
			break;
		}
		lineno++;

		if (memchr(text + start, '\0', end - start)) {
			r = diag(ld, file, lineno, "line contains a NUL byte");
			if (r < 0)
				break;
			continue;
		}
		if (!is_valid_utf8((const unsigned char *)text + start, end - start)) {
			r = diag(ld, file, lineno, "line is not valid UTF-8");
			if (r < 0)
				break;
			continue;
		}
		while (start < end && is_space((unsigned char)text[start]))
			start++;
		while (end > start && is_space((unsigned char)text[end - 1]))
			end--;
		if (start == end || text[start] == '#')
			continue;

		free(buf);
		buf = malloc(end - start + 1);
		if (!buf) {
			r = -ENOMEM;
			break;
		}
		memcpy(buf, text + start, end - start);
		buf[end - start] = '\0';
		r = parse_line(ld, file, lineno, buf, svc);
		if (r < 0)
			break;
	}
	free(buf);
	return r < 0 ? r : 0;
}

static int read_whole(int fd, char **ret_buf, size_t *ret_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size > (off_t)QPOL_MAX_FILE_SIZE)
		return -EFBIG;
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			/* The file grew while we read it. */
			free(buf);
			return -EFBIG;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(buf);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* Loads PATH, named so in diagnostics; FROM_FILE:FROM_LINE is the
 * directive that asked for it (NULL for files of the top directory). */
static int load_file(struct loader *ld, const char *path, const struct svc_ctx *svc,
		     const char *from_file, unsigned from_line)
{
	const char *where = from_file ? from_file : path;
	unsigned where_line = from_file ? from_line : 0;
	char *canon = NULL, *buf = NULL;
	const char *file;
	size_t len = 0;
	int fd, r;

	if (ld->n_loads >= QPOL_MAX_LOADS) {
		r = diag(ld, where, where_line, "too many policy files loaded (limit %d)",
			 QPOL_MAX_LOADS);
		return r < 0 ? r : -EINVAL;
	}
	if (ld->depth >= QPOL_MAX_DEPTH) {
		r = diag(ld, where, where_line, "includes nested too deeply (limit %d)",
			 QPOL_MAX_DEPTH);
		return r < 0 ? r : -EINVAL;
	}
	if (add_dep(ld->p, path, QPOL_DEP_FILE) < 0)
		return -ENOMEM;
	canon = realpath(path, NULL);
	if (canon && strcmp(canon, path) != 0 && add_dep(ld->p, canon, QPOL_DEP_FILE) < 0) {
		free(canon);
		return -ENOMEM;
	}
	if (!canon) {
		if (errno == ENOMEM)
			return -ENOMEM;
		r = diag(ld, where, where_line, "cannot open %s: %s", path, strerror(errno));
		return r < 0 ? r : -EINVAL;
	}
	for (size_t i = 0; i < ld->depth; i++) {
		if (strcmp(ld->stack[i], canon) == 0) {
			r = diag(ld, where, where_line, "include loop: %s is already being loaded",
				 path);
			free(canon);
			return r < 0 ? r : -EINVAL;
		}
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = diag(ld, where, where_line, "cannot open %s: %s", path, strerror(errno));
		free(canon);
		return r < 0 ? r : -EINVAL;
	}
	r = read_whole(fd, &buf, &len);
	close(fd);
	if (r == -ENOMEM) {
		free(canon);
		return r;
	}
	if (r < 0) {
		r = diag(ld, where, where_line, "cannot read %s: %s", path,
			 r == -EFBIG ? "file too large" : strerror(-r));
		free(canon);
		return r < 0 ? r : -EINVAL;
	}
	if (len > QPOL_MAX_TOTAL_SIZE - ld->total_size) {
		r = diag(ld, where, where_line, "cannot read %s: the policy files together exceed "
			 "%u MiB", path, QPOL_MAX_TOTAL_SIZE >> 20);
		free(buf);
		free(canon);
		return r < 0 ? r : -EINVAL;
	}
	ld->total_size += len;
	file = intern_file(ld->p, path);
	if (!file) {
		free(buf);
		free(canon);
		return -ENOMEM;
	}
	ld->n_loads++;
	ld->p->n_loaded++;
	ld->stack[ld->depth++] = canon;
	r = parse_buffer(ld, file, buf, len, svc);
	ld->depth--;
	free(canon);
	free(buf);
	return r;
}

static bool is_valid_file_name(const char *name)
{
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '.' || *c == '-'))
			return false;
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every "*.policy" file directly in DIR, C-locale order, dotfiles
 * ignored.  Returns -errno when DIR cannot be opened and FROM_FILE is
 * NULL (the top directory); for !include-dir that is a diagnostic. */
static int load_dir(struct loader *ld, const char *dir, const char *from_file, unsigned from_line)
{
	static const struct svc_ctx no_svc = { .active = false };
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (add_dep(ld->p, dir, QPOL_DEP_DIR) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		r = -errno;
		if (!from_file)
			return r;
		r = diag(ld, from_file, from_line, "cannot open directory %s: %s", dir, strerror(-r));
		return r < 0 ? r : -EINVAL;
	}
	while ((errno = 0, de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct stat st;
		char *path = NULL;

		if (de->d_name[0] == '.' || len <= strlen(QPOL_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(QPOL_SUFFIX), QPOL_SUFFIX) != 0)
			continue;
		size_t dlen = strlen(dir);
		const char *sep = dlen > 0 && dir[dlen - 1] == '/' ? "" : "/";
		if (asprintf(&path, "%s%s%s", dir, sep, de->d_name) < 0) {
			r = -ENOMEM;
			goto out;
		}
		/* Regular files only, following symlinks as Qubes does. */
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (grow((void **)&names, &cap, n + 1, sizeof(*names)) < 0) {
			free(path);
			r = -ENOMEM;
			goto out;
		}
		names[n++] = path;
	}
	if (errno) {
		int e = errno;
		r = from_file ? diag(ld, from_file, from_line, "cannot read directory %s: %s", dir,
				     strerror(e))
			      : -e;
		goto out;
	}
	if (n > 1) /* names is NULL for an empty directory */
		qsort(names, n, sizeof(*names), cmp_names);
	/* Qubes checks every name before loading any file. */
	for (size_t i = 0; i < n; i++) {
		const char *base = strrchr(names[i], '/') + 1;
		if (!is_valid_file_name(base)) {
			r = diag(ld, names[i], 0,
				 "invalid file name: only 0-9 a-z _ . - are allowed in policy "
				 "file names");
			if (r < 0)
				goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *base = strrchr(names[i], '/') + 1;
		if (!is_valid_file_name(base))
			continue;
		r = load_file(ld, names[i], &no_svc, from_file, from_line);
		if (r == -ENOMEM)
			goto out;
		r = 0;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

/* ---- Public entry points -------------------------------------------------- */

static int finish_load(struct qpol_policy *p, struct qpol_policy **ret_policy)
{
	int r = 0;
	if (p->n_diags == 0)
		r = qpol_policy_build_index(p);
	if (r < 0) {
		qpol_policy_free(p);
		return r;
	}
	*ret_policy = p;
	return 0;
}

int qpol_policy_load_dir(const char *dir, struct qpol_policy **ret_policy)
{
	struct qpol_policy *p;
	struct loader ld = { 0 };
	int r;

	if (!dir || !ret_policy)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ld.p = p;
	ld.base = dir;
	r = load_dir(&ld, dir, NULL, 0);
	if (r < 0 && (r == -ENOMEM || p->n_diags == 0)) {
		qpol_policy_free(p);
		return r;
	}
	return finish_load(p, ret_policy);
}

int qpol_policy_parse_text(const char *name, const char *text, size_t len,
			   const char *include_base, struct qpol_policy **ret_policy)
{
	static const struct svc_ctx no_svc = { .active = false };
	struct qpol_policy *p;
	struct loader ld = { 0 };
	const char *file;
	int r;

	if (!name || (!text && len) || !ret_policy)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ld.p = p;
	ld.base = include_base;
	file = intern_file(p, name);
	if (!file) {
		qpol_policy_free(p);
		return -ENOMEM;
	}
	ld.n_loads = 1;
	p->n_loaded = 1;
	r = parse_buffer(&ld, file, text ? text : "", len, &no_svc);
	if (r < 0) {
		qpol_policy_free(p);
		return r;
	}
	return finish_load(p, ret_policy);
}

void qpol_policy_free(struct qpol_policy *policy)
{
	if (!policy)
		return;
	for (size_t i = 0; i < policy->n_rules; i++)
		rule_finish(&policy->rules[i]);
	free(policy->rules);
	for (size_t i = 0; i < policy->n_diags; i++) {
		free(policy->diags[i].file);
		free(policy->diags[i].message);
	}
	free(policy->diags);
	for (size_t i = 0; i < policy->n_files; i++)
		free(policy->files[i]);
	free(policy->files);
	for (size_t i = 0; i < policy->n_deps; i++)
		free(policy->deps[i].path);
	free(policy->deps);
	free(policy->wild);
	for (size_t i = 0; i < policy->n_buckets; i++) {
		free(policy->buckets[i].service);
		free(policy->buckets[i].idx);
	}
	free(policy->buckets);
	free(policy);
}

bool qpol_policy_is_valid(const struct qpol_policy *policy)
{
	return policy && policy->n_diags == 0;
}

size_t qpol_policy_n_diags(const struct qpol_policy *policy)
{
	return policy ? policy->n_diags : 0;
}

const struct qpol_diag *qpol_policy_diag(const struct qpol_policy *policy, size_t i)
{
	if (!policy || i >= policy->n_diags)
		return NULL;
	return &policy->diags[i];
}

size_t qpol_policy_n_rules(const struct qpol_policy *policy)
{
	return policy ? policy->n_rules : 0;
}

size_t qpol_policy_n_files(const struct qpol_policy *policy)
{
	return policy ? policy->n_loaded : 0;
}

size_t qpol_policy_n_deps(const struct qpol_policy *policy)
{
	return policy ? policy->n_deps : 0;
}

const char *qpol_policy_dep(const struct qpol_policy *policy, size_t i,
			    enum qpol_dep_kind *ret_kind)
{
	if (!policy || i >= policy->n_deps)
		return NULL;
	if (ret_kind)
		*ret_kind = policy->deps[i].kind;
	return policy->deps[i].path;
}
