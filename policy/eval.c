/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Policy evaluation: the service index, first-match rule search, the
 * allow/deny/ask actions and the list of targets offered by "ask", with
 * the semantics of Qubes OS 4.3's qrexec policy evaluator (qrexec/policy/
 * parser.py of qubes-core-qrexec, re-implemented): uuid: references,
 * internal qubes and the admin qube included.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpolicy-internal.h"

/* ---- Service index -------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static int push_idx(size_t **arr, size_t *n, size_t *cap, size_t v)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		if (ncap > SIZE_MAX / sizeof(**arr))
			return -ENOMEM;
		size_t *na = realloc(*arr, ncap * sizeof(**arr));
		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

static const struct qpol_svc_bucket *find_bucket(const struct qpol_policy *p, const char *service)
{
	if (p->n_buckets == 0)
		return NULL;
	size_t mask = p->n_buckets - 1;
	for (size_t i = (size_t)hash_str(service) & mask;; i = (i + 1) & mask) {
		const struct qpol_svc_bucket *b = &p->buckets[i];
		if (!b->service)
			return NULL;
		if (strcmp(b->service, service) == 0)
			return b;
	}
}

int qpol_policy_build_index(struct qpol_policy *p)
{
	size_t n_named = 0, wild_cap = 0, nb = 8;

	for (size_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].service)
			n_named++;
	/* At most n_named distinct services; keep the load under 1/2. */
	while (nb < 2 * n_named) {
		if (nb > SIZE_MAX / 4)
			return -ENOMEM;
		nb *= 2;
	}
	p->buckets = calloc(nb, sizeof(*p->buckets));
	if (!p->buckets)
		return -ENOMEM;
	p->n_buckets = nb;
	for (size_t i = 0; i < p->n_rules; i++) {
		const char *svc = p->rules[i].service;
		if (!svc) {
			if (push_idx(&p->wild, &p->n_wild, &wild_cap, i) < 0)
				return -ENOMEM;
			continue;
		}
		size_t j = (size_t)hash_str(svc) & (nb - 1);
		while (p->buckets[j].service && strcmp(p->buckets[j].service, svc) != 0)
			j = (j + 1) & (nb - 1);
		struct qpol_svc_bucket *b = &p->buckets[j];
		if (!b->service) {
			b->service = strdup(svc);
			if (!b->service)
				return -ENOMEM;
		}
		if (push_idx(&b->idx, &b->n, &b->cap, i) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The rules that may apply to one service: the "*" rules and the
 * service's own, merged by rule index, so first-match order is kept. */
struct rule_iter {
	const size_t *a, *b;
	size_t na, nb, ia, ib;
};

static void iter_init(struct rule_iter *it, const struct qpol_policy *p, const char *service,
		      bool reverse)
{
	const struct qpol_svc_bucket *b = find_bucket(p, service);
	it->a = p->wild;
	it->na = p->n_wild;
	it->b = b ? b->idx : NULL;
	it->nb = b ? b->n : 0;
	it->ia = reverse ? it->na : 0;
	it->ib = reverse ? it->nb : 0;
}

static bool iter_next(struct rule_iter *it, size_t *ret)
{
	if (it->ia < it->na && (it->ib >= it->nb || it->a[it->ia] < it->b[it->ib])) {
		*ret = it->a[it->ia++];
		return true;
	}
	if (it->ib < it->nb) {
		*ret = it->b[it->ib++];
		return true;
	}
	return false;
}

static bool iter_prev(struct rule_iter *it, size_t *ret)
{
	if (it->ia > 0 && (it->ib == 0 || it->a[it->ia - 1] > it->b[it->ib - 1])) {
		*ret = it->a[--it->ia];
		return true;
	}
	if (it->ib > 0) {
		*ret = it->b[--it->ib];
		return true;
	}
	return false;
}

/* ---- Request ------------------------------------------------------------- */

struct eval_ctx {
	const struct qpol_policy *p;
	const struct qpol_system *sys;
	const char *service;
	const char *argument;
	bool src_admin;
	const char *src_name;              /* "dom0" for the admin qube */
	const struct qpol_domain *src_dom; /* never NULL once prepared */
	/* The requested target after Qubes' verification: ADMINVM, DEFAULT,
	 * DISPVM, DISPVM_NAME (value: a disposable template's name or
	 * uuid:UUID) or NAME (an existing qube's name or uuid:UUID, dom0
	 * included), and the same as Qubes writes it. */
	struct qpol_token rt;
	char *rt_str;
	const struct qpol_domain *rt_dom; /* NAME: the qube */
};

static bool has_tag(const struct qpol_domain *d, const char *tag)
{
	if (!d)
		return false;
	for (size_t i = 0; i < d->n_tags; i++)
		if (strcmp(d->tags[i], tag) == 0)
			return true;
	return false;
}

static const struct qpol_domain *lookup(const struct eval_ctx *c, const char *key)
{
	return qpol_system_lookup(c->sys, key);
}

static bool is_uuid_ref(const char *s)
{
	return strncmp(s, QPOL_UUID_PREFIX, strlen(QPOL_UUID_PREFIX)) == 0;
}

static bool uuid_ref_names(const char *ref, const struct qpol_domain *d)
{
	return d && d->uuid && strcmp(ref + strlen(QPOL_UUID_PREFIX), d->uuid) == 0;
}

/* Qubes' match_strings(): A and B are equal, or one is uuid:UUID and the
 * other the name of the qube with that uuid. */
static bool match_strings(const struct eval_ctx *c, const char *a, const char *b)
{
	if (is_uuid_ref(a)) {
		if (is_uuid_ref(b))
			return strcmp(a, b) == 0;
		return uuid_ref_names(a, qpol_system_find(c->sys, b));
	}
	if (is_uuid_ref(b))
		return uuid_ref_names(b, qpol_system_find(c->sys, a));
	return strcmp(a, b) == 0;
}

static const char *src_default_dispvm(const struct eval_ctx *c)
{
	return c->src_dom->default_dispvm;
}

static bool match_source(const struct qpol_token *t, const struct eval_ctx *c)
{
	switch (t->kind) {
	case QPOL_TOK_WILDCARD:
		return true;
	case QPOL_TOK_ADMINVM:
		return c->src_admin;
	case QPOL_TOK_ANYVM:
		return !c->src_admin;
	case QPOL_TOK_NAME:
		if (qpol_token_is_dom0(t))
			return c->src_admin;
		return match_strings(c, t->value, c->src_name);
	/* dom0 too: it is the AdminVM, with its own tags */
	case QPOL_TOK_TYPE:
		return strcmp(c->src_dom->type, t->value) == 0;
	case QPOL_TOK_TAG:
		return has_tag(c->src_dom, t->value);
	default:
		/* @dispvm:NAME and @dispvm:@tag:T are accepted as sources by
		 * Qubes but never match a calling qube's name. */
		return false;
	}
}

static bool rt_is_dom0(const struct eval_ctx *c)
{
	return qpol_token_is_dom0(&c->rt);
}

static bool match_target(const struct qpol_token *t, const struct eval_ctx *c)
{
	const struct qpol_token *rt = &c->rt;
	const char *tmpl;
	const struct qpol_domain *d;

	switch (t->kind) {
	case QPOL_TOK_WILDCARD:
		return true;
	case QPOL_TOK_ADMINVM:
		return rt_is_dom0(c);
	case QPOL_TOK_ANYVM:
		return !rt_is_dom0(c);
	case QPOL_TOK_DEFAULT:
		return rt->kind == QPOL_TOK_DEFAULT;
	case QPOL_TOK_NAME:
		if (qpol_token_is_dom0(t))
			return rt_is_dom0(c);
		return match_strings(c, t->value, c->rt_str);
	/* Qubes looks the requested target up as written: a qube's name or
	 * uuid: (dom0 too), never @adminvm or @dispvm forms. */
	case QPOL_TOK_TYPE:
		return rt->kind == QPOL_TOK_NAME && strcmp(c->rt_dom->type, t->value) == 0;
	case QPOL_TOK_TAG:
		return rt->kind == QPOL_TOK_NAME && has_tag(c->rt_dom, t->value);
	case QPOL_TOK_DISPVM:
		return rt->kind == QPOL_TOK_DISPVM;
	case QPOL_TOK_DISPVM_NAME:
		if (rt->kind == QPOL_TOK_DISPVM) {
			/* compared as text, as Qubes does: @dispvm:uuid:U does
			 * not match a request for @dispvm */
			tmpl = src_default_dispvm(c);
			return tmpl && strcmp(tmpl, t->value) == 0;
		}
		return rt->kind == QPOL_TOK_DISPVM_NAME && match_strings(c, t->value, rt->value);
	case QPOL_TOK_DISPVM_TAG:
		if (rt->kind == QPOL_TOK_DISPVM)
			tmpl = src_default_dispvm(c);
		else if (rt->kind == QPOL_TOK_DISPVM_NAME)
			tmpl = rt->value;
		else
			return false;
		d = tmpl ? lookup(c, tmpl) : NULL;
		return d && d->template_for_dispvms && has_tag(d, t->value);
	}
	return false;
}

static bool match_but_target(const struct qpol_rule *r, const struct eval_ctx *c)
{
	return (!r->service || strcmp(r->service, c->service) == 0) &&
	       (!r->argument || strcmp(r->argument, c->argument) == 0) &&
	       match_source(&r->source, c);
}

/* ---- Sets of target names (sorted, owned strings) ----------------------- */

struct strset {
	char **v;
	size_t n, cap;
};

static bool strset_find(const struct strset *s, const char *x, size_t *pos)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid], x);
		if (c == 0) {
			*pos = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

static bool strset_has(const struct strset *s, const char *x)
{
	size_t pos;
	return strset_find(s, x, &pos);
}

/* Takes ownership of X (freed if already present or on failure). */
static int strset_add_owned(struct strset *s, char *x)
{
	size_t pos;
	if (!x)
		return -ENOMEM;
	if (strset_find(s, x, &pos)) {
		free(x);
		return 0;
	}
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 8;
		char **nv = ncap <= SIZE_MAX / sizeof(*nv) ? realloc(s->v, ncap * sizeof(*nv)) : NULL;
		if (!nv) {
			free(x);
			return -ENOMEM;
		}
		s->v = nv;
		s->cap = ncap;
	}
	memmove(s->v + pos + 1, s->v + pos, (s->n - pos) * sizeof(*s->v));
	s->v[pos] = x;
	s->n++;
	return 0;
}

static int strset_add(struct strset *s, const char *x)
{
	return strset_add_owned(s, strdup(x));
}

static int strset_add_dispvm(struct strset *s, const char *tmpl)
{
	char *x = NULL;
	if (asprintf(&x, "@dispvm:%s", tmpl) < 0)
		return -ENOMEM;
	return strset_add_owned(s, x);
}

static void strset_remove(struct strset *s, const char *x)
{
	size_t pos;
	if (!strset_find(s, x, &pos))
		return;
	free(s->v[pos]);
	memmove(s->v + pos, s->v + pos + 1, (s->n - pos - 1) * sizeof(*s->v));
	s->n--;
}

static void strset_finish(struct strset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* Every target token T could stand for, as Qubes 4.3's expand(), with
 * uuid: references turned into names: names of existing qubes (dom0 as
 * "dom0"), "@dispvm:NAME", "@dispvm" and "@adminvm". */
static int expand_token(const struct qpol_token *t, const struct eval_ctx *c, struct strset *out)
{
	const struct qpol_system *sys = c->sys;
	const struct qpol_domain *d;
	int r = 0;

	switch (t->kind) {
	case QPOL_TOK_NAME:
		d = lookup(c, t->value);
		if (d)
			r = strset_add(out, d->name);
		return r;
	case QPOL_TOK_WILDCARD:
	case QPOL_TOK_ANYVM:
		for (size_t i = 0; i < sys->n_domains && r == 0; i++) {
			d = &sys->domains[i];
			if (t->kind == QPOL_TOK_WILDCARD || strcmp(d->name, "dom0") != 0)
				r = strset_add(out, d->name);
			if (r == 0 && d->template_for_dispvms)
				r = strset_add_dispvm(out, d->name);
		}
		return r < 0 ? r : strset_add(out, "@dispvm");
	case QPOL_TOK_ADMINVM:
		return strset_add(out, "@adminvm");
	case QPOL_TOK_DEFAULT:
		return 0;
	case QPOL_TOK_TYPE:
	case QPOL_TOK_TAG:
		for (size_t i = 0; i < sys->n_domains && r == 0; i++) {
			d = &sys->domains[i];
			if (t->kind == QPOL_TOK_TYPE ? strcmp(d->type, t->value) == 0
						     : has_tag(d, t->value))
				r = strset_add(out, d->name);
		}
		return r;
	case QPOL_TOK_DISPVM:
		return strset_add(out, "@dispvm");
	case QPOL_TOK_DISPVM_NAME:
		d = lookup(c, t->value);
		if (d && d->template_for_dispvms)
			r = strset_add_dispvm(out, d->name);
		return r;
	case QPOL_TOK_DISPVM_TAG:
		for (size_t i = 0; i < sys->n_domains && r == 0; i++) {
			d = &sys->domains[i];
			if (d->template_for_dispvms && has_tag(d, t->value))
				r = strset_add_dispvm(out, d->name);
		}
		return r;
	}
	return 0;
}

/* Qubes' collect_targets_for_ask(): walking the service's rules from the
 * last to the first, every rule matching service, argument and source
 * adds (allow, ask) or removes (deny) what its target (or its target=)
 * expands to; then @dispvm becomes the caller's default disposable,
 * @adminvm becomes dom0, the caller itself is dropped and so is every
 * internal qube, by name or as @dispvm:NAME. */
static int collect_targets_for_ask(const struct eval_ctx *c, struct strset *targets)
{
	struct strset exp = { 0 };
	struct rule_iter it;
	size_t i;
	int r = 0;

	iter_init(&it, c->p, c->service, true);
	while (iter_prev(&it, &i)) {
		const struct qpol_rule *rule = &c->p->rules[i];
		if (!match_but_target(rule, c))
			continue;
		const struct qpol_token *t = rule->has_redirect ? &rule->redirect : &rule->target;
		r = expand_token(t, c, &exp);
		if (r < 0)
			goto out;
		for (size_t k = 0; k < exp.n; k++) {
			if (rule->action == QPOL_ACTION_DENY) {
				strset_remove(targets, exp.v[k]);
			} else {
				r = strset_add(targets, exp.v[k]);
				if (r < 0)
					goto out;
			}
		}
		strset_finish(&exp);
	}
	if (strset_has(targets, "@dispvm")) {
		strset_remove(targets, "@dispvm");
		const char *tmpl = src_default_dispvm(c);
		if (tmpl && (r = strset_add_dispvm(targets, tmpl)) < 0)
			goto out;
	}
	if (strset_has(targets, "@adminvm")) {
		strset_remove(targets, "@adminvm");
		if ((r = strset_add(targets, "dom0")) < 0)
			goto out;
	}
	strset_remove(targets, c->src_name);
	for (size_t k = targets->n; k > 0; k--) {
		const char *x = targets->v[k - 1];
		const struct qpol_domain *d = lookup(c, strncmp(x, "@dispvm:", 8) == 0 ? x + 8 : x);
		if (d && d->internal)
			strset_remove(targets, x);
	}
out:
	strset_finish(&exp);
	return r;
}

/* ---- Decisions ------------------------------------------------------------ */

static int dup_str(char **dst, const char *s)
{
	free(*dst);
	*dst = NULL;
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

__attribute__((format(printf, 2, 3)))
static int set_reason(struct qpol_decision *d, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	free(d->reason);
	d->reason = s;
	return 0;
}

static int deny(struct qpol_decision *d, bool notify, const struct qpol_rule *rule)
{
	d->result = QPOL_RESULT_DENY;
	d->notify = notify;
	free(d->target);
	d->target = NULL;
	d->autostart = false;
	if (rule) {
		if (dup_str(&d->rule_file, rule->file) < 0)
			return -ENOMEM;
		d->rule_line = rule->line;
	}
	return 0;
}

/* May the call go to TARGET (as offered or resolved: a name, uuid:UUID,
 * "dom0" or "@dispvm:X") without starting anything? */
static bool allowed_without_autostart(const struct eval_ctx *c, const char *target)
{
	if (qpol_is_dom0(target))
		return true;
	if (strncmp(target, "@dispvm", 7) == 0)
		return false;
	const struct qpol_domain *d = lookup(c, target);
	return d && d->power_state && strcmp(d->power_state, "Running") == 0;
}

__attribute__((format(printf, 4, 5)))
static int deny_by_rule(struct qpol_decision *d, bool notify, const struct qpol_rule *rule,
			const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int r = deny(d, notify, rule);

	if (r < 0)
		return r;
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	free(d->reason);
	d->reason = s;
	return 0;
}

/* Qubes' Allow.evaluate() and AllowResolution.execute(). */
static int eval_allow(const struct eval_ctx *c, const struct qpol_rule *rule,
		      struct qpol_decision *d)
{
	const struct qpol_token *actual = rule->has_redirect ? &rule->redirect : &c->rt;
	const struct qpol_domain *dom = NULL; /* the qube, or the disposable's template */
	char *target = NULL, *target_uuid = NULL, *target_name = NULL;
	bool dispvm = false;
	int r = 0;

	/* A redirection is verified like a requested target: a name or
	 * uuid: that is no qube reads as @default. */
	switch (actual->kind) {
	case QPOL_TOK_ADMINVM:
		dom = qpol_system_find(c->sys, "dom0");
		break;
	case QPOL_TOK_NAME:
		dom = lookup(c, actual->value);
		if (dom)
			break;
		/* fall through */
	case QPOL_TOK_DEFAULT:
		return deny_by_rule(d, true, rule, "%s",
				    "policy defines 'allow' action but no target is specified by "
				    "caller or policy");
	case QPOL_TOK_DISPVM_NAME:
		dom = lookup(c, actual->value);
		if (!dom || !dom->template_for_dispvms)
			return deny_by_rule(d, true, rule, "not a template for dispvm: %s",
					    actual->value);
		dispvm = true;
		break;
	case QPOL_TOK_DISPVM: {
		const char *tmpl = src_default_dispvm(c);
		dom = tmpl ? lookup(c, tmpl) : NULL;
		if (!dom)
			return deny_by_rule(d, true, rule, "%s",
					    "policy defines 'allow' action to @dispvm but no "
					    "DispVM base is set for this VM");
		dispvm = true;
		break;
	}
	default:
		/* Redirections and verified requests have no other kinds. */
		return deny_by_rule(d, true, rule, "%s", "internal error: unexpected target kind");
	}

	if (dispvm) {
		/* as written (@dispvm:uuid:U stays so); @dispvm is the
		 * caller's default_dispvm, a name */
		if (actual->kind == QPOL_TOK_DISPVM_NAME)
			r = asprintf(&target, "@dispvm:%s", actual->value);
		else
			r = asprintf(&target, "@dispvm:%s", dom->name);
		if (r < 0 || asprintf(&target_name, "@dispvm:%s", dom->name) < 0)
			goto err_nomem;
		if (dom->uuid && asprintf(&target_uuid, "@dispvm:uuid:%s", dom->uuid) < 0)
			goto err_nomem;
	} else if (qpol_token_is_dom0(actual)) {
		/* Qubes reports the admin qube as dom0 whatever its form, and
		 * gives no target_uuid for it */
		target = strdup("dom0");
		target_name = strdup("dom0");
		if (!target || !target_name)
			goto err_nomem;
	} else {
		target = strdup(actual->value);
		target_name = strdup(dom->name);
		if (!target || !target_name)
			goto err_nomem;
		if (dom->uuid && asprintf(&target_uuid, "uuid:%s", dom->uuid) < 0)
			goto err_nomem;
	}

	if (!rule->autostart && !allowed_without_autostart(c, target_name)) {
		r = deny_by_rule(d, rule->notify, rule,
				 "target %s is denied because it would require autostart", target);
		goto out;
	}
	/* Qubes compares the source with the target as written, so a qube
	 * may reach itself as uuid:UUID (or dom0 as uuid: of dom0); here
	 * the resolved name is compared (docs/policy.md, deviations). */
	if (strcmp(target_name, c->src_name) == 0) {
		r = deny_by_rule(d, true, rule, "%s", "loopback qrexec connection not supported");
		goto out;
	}
	d->result = QPOL_RESULT_ALLOW;
	d->target = target;
	d->target_uuid = target_uuid;
	d->target_name = target_name;
	target = target_uuid = target_name = NULL;
	d->autostart = rule->autostart;
	d->notify = rule->notify;
	if ((r = dup_str(&d->user, rule->user)) < 0 || (r = dup_str(&d->rule_file, rule->file)) < 0)
		goto out;
	d->rule_line = rule->line;
	r = set_reason(d, "allowed by rule");
	goto out;

err_nomem:
	r = -ENOMEM;
out:
	free(target);
	free(target_uuid);
	free(target_name);
	return r;
}

/* A redirection (target=, default_target=) of an "ask" rule as Qubes
 * offers it: the admin qube as dom0, @dispvm as the caller's default
 * disposable (or nothing: *RET stays NULL), anything else as written. */
static int ask_redirect_string(const struct eval_ctx *c, const struct qpol_token *t, char **ret)
{
	const char *tmpl;

	*ret = NULL;
	if (qpol_token_is_dom0(t)) {
		*ret = strdup("dom0");
	} else if (t->kind == QPOL_TOK_DISPVM) {
		tmpl = src_default_dispvm(c);
		if (!tmpl)
			return 0;
		if (asprintf(ret, "@dispvm:%s", tmpl) < 0) {
			*ret = NULL;
			return -ENOMEM;
		}
	} else {
		*ret = qpol_token_to_string(t);
	}
	return *ret ? 0 : -ENOMEM;
}

static int eval_ask(const struct eval_ctx *c, const struct qpol_rule *rule,
		    struct qpol_decision *d)
{
	struct strset targets = { 0 };
	char *def = NULL;
	int r = 0;

	if (rule->has_redirect) {
		/* Offered as written, not checked against the qubes and not
		 * filtered for internal ones (as Qubes); target=@dispvm is
		 * the caller's default disposable (Qubes offers the bare
		 * keyword, which it then cannot start). */
		char *x = NULL;
		r = ask_redirect_string(c, &rule->redirect, &x);
		if (r == 0 && x)
			r = strset_add_owned(&targets, x);
	} else {
		r = collect_targets_for_ask(c, &targets);
	}
	if (r < 0)
		goto out;
	if (!rule->autostart) {
		for (size_t i = targets.n; i > 0; i--)
			if (!allowed_without_autostart(c, targets.v[i - 1]))
				strset_remove(&targets, targets.v[i - 1]);
	}
	if (targets.n == 0) {
		if ((r = deny(d, true, rule)) < 0)
			goto out;
		r = set_reason(d, "policy defines 'ask' action but no target is available "
			       "to choose from");
		goto out;
	}
	if (rule->has_default_target) {
		r = ask_redirect_string(c, &rule->default_target, &def);
		if (r < 0)
			goto out;
		/* A default that is not on offer is dropped. */
		if (def && !strset_has(&targets, def)) {
			free(def);
			def = NULL;
		}
	}
	d->result = QPOL_RESULT_ASK;
	d->targets = targets.v;
	d->n_targets = targets.n;
	targets.v = NULL;
	targets.n = targets.cap = 0;
	d->default_target = def;
	def = NULL;
	d->autostart = rule->autostart;
	d->notify = rule->notify;
	if ((r = dup_str(&d->user, rule->user)) < 0 || (r = dup_str(&d->rule_file, rule->file)) < 0)
		goto out;
	d->rule_line = rule->line;
	r = set_reason(d, "ask by rule");
out:
	free(def);
	strset_finish(&targets);
	return r;
}

static int reject(int r)
{
	return r < 0 ? r : -EINVAL;
}

/* Fills C from REQUEST; returns 0, -ENOMEM, or -EINVAL with a reason
 * already set in D. */
static int prepare_request(struct eval_ctx *c, const struct qpol_request *req,
			   struct qpol_decision *d)
{
	const char *target;
	char *msg = NULL;
	int r;

	if (!req->service || !req->argument || !req->source || !req->target)
		return reject(set_reason(d, "malformed request: missing field"));
	/* The same rules as qube-call, the qrpc codec and qube-agent (qname.h):
	 * nothing is evaluated here that could not be delivered, and the
	 * reverse. */
	if (!qname_service_is_valid(req->service))
		return reject(set_reason(d, "malformed request: invalid service name (want 1-%u "
					 "of [A-Za-z0-9_.-], not starting with '.')",
					 QNAME_MAX_SERVICE));
	if (!qname_argument_is_valid(req->argument))
		return reject(set_reason(d, "malformed request: invalid service argument (want "
					 "0-%u of [A-Za-z0-9_.+-])", QNAME_MAX_ARGUMENT));
	c->service = req->service;
	c->argument = req->argument;

	if (strcmp(req->source, "dom0") == 0 || strcmp(req->source, "@adminvm") == 0) {
		c->src_admin = true;
		c->src_name = "dom0";
	} else {
		c->src_name = req->source;
	}
	/* by name: the transport names the caller; dom0 is always there */
	c->src_dom = qpol_system_find(c->sys, c->src_name);
	if (!c->src_dom)
		return reject(set_reason(d, "unknown source qube"));

	/* Qubes reads an empty target as @default. */
	target = req->target[0] ? req->target : "@default";
	if (!qname_target_is_valid(target))
		return reject(set_reason(d, "malformed request: invalid target (want a qube name, "
					 "uuid:UUID, @default, @adminvm, @dispvm, @dispvm:NAME or "
					 "@dispvm:uuid:UUID)"));
	r = qpol_token_parse(target, QPOL_CTX_REQUEST, &c->rt, &msg);
	if (r == -EINVAL) {
		if (!msg)
			return -ENOMEM;
		r = set_reason(d, "malformed request: %s", msg);
		free(msg);
		return reject(r);
	}
	if (r < 0)
		return r;
	if (c->rt.kind == QPOL_TOK_NAME) {
		/* a name or uuid: (exactly as Qubes' system info holds it) */
		c->rt_dom = lookup(c, c->rt.value);
		if (!c->rt_dom) {
			/* Qubes: an unknown target qube is taken as @default. */
			qpol_token_finish(&c->rt);
			c->rt.kind = QPOL_TOK_DEFAULT;
		}
	} else if (c->rt.kind == QPOL_TOK_DISPVM_NAME) {
		const struct qpol_domain *dom = lookup(c, c->rt.value);
		if (!dom || !dom->template_for_dispvms)
			return reject(set_reason(d, "not a template for dispvm: %s", c->rt.value));
	}
	c->rt_str = qpol_token_to_string(&c->rt);
	if (!c->rt_str)
		return -ENOMEM;
	return dup_str(&d->requested_target, c->rt_str);
}

int qpol_evaluate(const struct qpol_policy *policy, const struct qpol_system *system,
		  const struct qpol_request *request, struct qpol_decision *ret_decision)
{
	struct qpol_decision d = { .result = QPOL_RESULT_DENY, .notify = true };
	struct eval_ctx c = { .p = policy, .sys = system };
	const struct qpol_rule *rule = NULL;
	struct rule_iter it;
	size_t i;
	int r;

	if (!ret_decision)
		return -EINVAL;
	if (!policy || !system || !request) {
		r = set_reason(&d, "no policy, system information or request");
		goto done;
	}
	if (policy->n_diags > 0) {
		const struct qpol_diag *g = &policy->diags[0];
		r = set_reason(&d, "invalid policy: %s:%u: %s", g->file, g->line, g->message);
		goto done;
	}
	r = prepare_request(&c, request, &d);
	if (r < 0) {
		if (r == -EINVAL) {
			if (!d.requested_target && request->target &&
			    dup_str(&d.requested_target, request->target) < 0)
				r = -ENOMEM;
			else
				r = 0;
		}
		goto done;
	}

	iter_init(&it, policy, c.service, false);
	while (iter_next(&it, &i)) {
		const struct qpol_rule *cand = &policy->rules[i];
		if (match_but_target(cand, &c) && match_target(&cand->target, &c)) {
			rule = cand;
			break;
		}
	}
	if (!rule) {
		r = set_reason(&d, "no matching rule found");
		goto done;
	}
	switch (rule->action) {
	case QPOL_ACTION_DENY:
		r = deny(&d, rule->notify, rule);
		if (r == 0)
			r = set_reason(&d, "denied by rule");
		break;
	case QPOL_ACTION_ALLOW:
		r = eval_allow(&c, rule, &d);
		break;
	case QPOL_ACTION_ASK:
		r = eval_ask(&c, rule, &d);
		break;
	}
done:
	qpol_token_finish(&c.rt);
	free(c.rt_str);
	if (r < 0) {
		qpol_decision_finish(&d);
		return r;
	}
	*ret_decision = d;
	return 0;
}

void qpol_decision_finish(struct qpol_decision *d)
{
	if (!d)
		return;
	free(d->target);
	free(d->target_uuid);
	free(d->target_name);
	free(d->requested_target);
	free(d->user);
	for (size_t i = 0; i < d->n_targets; i++)
		free(d->targets[i]);
	free(d->targets);
	free(d->default_target);
	free(d->rule_file);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

const char *qpol_result_to_string(enum qpol_result result)
{
	switch (result) {
	case QPOL_RESULT_ALLOW:
		return "allow";
	case QPOL_RESULT_ASK:
		return "ask";
	case QPOL_RESULT_DENY:
		break;
	}
	return "deny";
}
