/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl ls: the qubes as a table (label in its colour on a terminal),
 * as JSON (every property), or names only (for completion).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "qubectl.h"

#define MAX_FIELDS 16

struct prop {
	char *name;
	char *type;
	char *value;
	bool is_default;
};

struct qube {
	char *name;
	char cls[32];
	char state[32];
	struct prop *props;
	size_t n_props;
	struct qc_reply all; /* owns the strings of props */
};

/* "PROP default=B type=T VALUE" lines, in place. */
static int parse_getall(struct qube *q)
{
	char **lines = NULL;
	size_t n = 0;

	if (qc_split_lines(q->all.data, &lines, &n) < 0)
		return -ENOMEM;
	q->props = calloc(n ? n : 1, sizeof(*q->props));
	if (!q->props) {
		free(lines);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char *name = lines[i], *def, *type, *value;

		def = strchr(name, ' ');
		if (!def)
			continue;
		*def++ = '\0';
		type = strchr(def, ' ');
		if (!type || strncmp(def, "default=", 8) != 0)
			continue;
		*type++ = '\0';
		if (strncmp(type, "type=", 5) != 0)
			continue;
		value = strchr(type, ' ');
		if (value)
			*value++ = '\0';
		else
			value = type + strlen(type);
		qc_unescape(value);
		q->props[q->n_props++] = (struct prop){ name, type + 5, value,
							strcmp(def + 8, "True") == 0 };
	}
	free(lines);
	return 0;
}

static const char *field_of(const struct qube *q, const char *field)
{
	const char *v;

	if (strcasecmp(field, "name") == 0)
		return q->name;
	if (strcasecmp(field, "class") == 0)
		return q->cls;
	if (strcasecmp(field, "state") == 0)
		return q->state;
	for (size_t i = 0; i < q->n_props; i++)
		if (strcasecmp(q->props[i].name, field) == 0) {
			v = q->props[i].value;
			return v[0] ? v : "-";
		}
	return "-";
}

/* "0xRRGGBB" -> r, g, b */
static bool parse_colour(const char *s, unsigned *r, unsigned *g, unsigned *b)
{
	char *end;
	unsigned long v;

	if (strncmp(s, "0x", 2) != 0 || strlen(s) != 8)
		return false;
	v = strtoul(s + 2, &end, 16);
	if (*end)
		return false;
	*r = (unsigned)(v >> 16) & 0xff;
	*g = (unsigned)(v >> 8) & 0xff;
	*b = (unsigned)v & 0xff;
	return true;
}

struct colour {
	char label[32];
	char sgr[32]; /* "" when unknown */
};

static const char *label_sgr(struct colour *cache, size_t *n_cache, size_t cap, const char *label)
{
	struct qc_reply r;
	unsigned cr, cg, cb;
	struct qc_call c;

	for (size_t i = 0; i < *n_cache; i++)
		if (strcmp(cache[i].label, label) == 0)
			return cache[i].sgr;
	if (*n_cache == cap || strlen(label) >= sizeof(cache[0].label) || !strcmp(label, "-"))
		return "";
	struct colour *e = &cache[(*n_cache)++];
	snprintf(e->label, sizeof(e->label), "%s", label);
	e->sgr[0] = '\0';
	qc_call_init(&c, qc_socket(), "admin.label.Get", label, "dom0");
	if (qc_admin_call(&c, &r) == 0) {
		if (r.kind == QC_REPLY_OK && parse_colour(r.data, &cr, &cg, &cb))
			snprintf(e->sgr, sizeof(e->sgr), "\033[38;2;%u;%u;%um", cr, cg, cb);
		qc_reply_finish(&r);
	}
	return e->sgr;
}

static json_object *json_value(const struct prop *p)
{
	if (strcmp(p->type, "bool") == 0)
		return json_object_new_boolean(strcmp(p->value, "True") == 0);
	if (strcmp(p->type, "int") == 0 && p->value[0]) {
		char *end;
		long long v = strtoll(p->value, &end, 10);
		if (!*end)
			return json_object_new_int64(v);
	}
	if (strcmp(p->type, "vm") == 0 && !p->value[0])
		return NULL;
	return json_object_new_string(p->value);
}

static int print_json(struct qube *qs, size_t n)
{
	json_object *arr = json_object_new_array();

	if (!arr)
		return qc_transport_error(-ENOMEM);
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object(), *props = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(qs[i].name));
		json_object_object_add(o, "class", json_object_new_string(qs[i].cls));
		json_object_object_add(o, "state", json_object_new_string(qs[i].state));
		for (size_t k = 0; k < qs[i].n_props; k++)
			json_object_object_add(props, qs[i].props[k].name, json_value(&qs[i].props[k]));
		json_object_object_add(o, "properties", props);
		json_object_array_add(arr, o);
	}
	puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
	return QC_EXIT_OK;
}

static void print_table(struct qube *qs, size_t n, const char **fields, int n_fields)
{
	bool colour = isatty(STDOUT_FILENO) && !(getenv("NO_COLOR") && getenv("NO_COLOR")[0]);
	struct colour cache[16];
	size_t n_cache = 0, width[MAX_FIELDS];

	for (int f = 0; f < n_fields; f++) {
		width[f] = strlen(fields[f]);
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(field_of(&qs[i], fields[f]));
			if (l > width[f])
				width[f] = l;
		}
	}
	for (int f = 0; f < n_fields; f++) {
		char head[64];
		size_t l = strlen(fields[f]);
		if (l >= sizeof(head))
			l = sizeof(head) - 1;
		for (size_t k = 0; k < l; k++)
			head[k] = (char)(fields[f][k] >= 'a' && fields[f][k] <= 'z' ? fields[f][k] - 32
										     : fields[f][k]);
		head[l] = '\0';
		if (f + 1 < n_fields)
			printf("%-*s  ", (int)width[f], head);
		else
			printf("%s\n", head);
	}
	for (size_t i = 0; i < n; i++) {
		for (int f = 0; f < n_fields; f++) {
			const char *v = field_of(&qs[i], fields[f]);
			const char *sgr = "";
			bool last = f + 1 == n_fields;

			if (colour && strcasecmp(fields[f], "label") == 0)
				sgr = label_sgr(cache, &n_cache, sizeof(cache) / sizeof(cache[0]), v);
			if (*sgr)
				printf("%s%s\033[0m", sgr, v);
			else
				printf("%s", v);
			if (!last)
				printf("%*s", (int)(width[f] - strlen(v) + 2), "");
			else
				printf("\n");
		}
	}
}

int qc_cmd_ls(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_ALL = 1, O_FORMAT, O_FIELDS };
	static const struct qc_opt opts[] = {
		{ "--all", 'a', false, O_ALL },
		{ "--format", 'o', true, O_FORMAT },
		{ "--fields", 0, true, O_FIELDS },
		{ NULL, 0, false, 0 },
	};
	const char *fields[MAX_FIELDS] = { "name", "class", "state", "label", "template", "memory" };
	int n_fields = 6, r, ret = QC_EXIT_OK;
	const char *format = "table", *v;
	char fields_buf[512];
	struct qc_reply list;
	struct qube *qs = NULL;
	char **lines = NULL;
	size_t n = 0, nq = 0;
	bool all = false;
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case QC_ARG_POSITIONAL:
			return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
		case O_ALL:
			all = true;
			break;
		case O_FORMAT:
			if (strcmp(v, "table") && strcmp(v, "json") && strcmp(v, "names"))
				return qc_usage_error(cmd, "--format \"%s\": expected table, json or names", v);
			format = v;
			break;
		case O_FIELDS:
			if (strlen(v) >= sizeof(fields_buf))
				return qc_usage_error(cmd, "--fields: too long");
			snprintf(fields_buf, sizeof(fields_buf), "%s", v);
			n_fields = 0;
			for (char *save = NULL, *t = strtok_r(fields_buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (n_fields == MAX_FIELDS)
					return qc_usage_error(cmd, "--fields: more than %d fields", MAX_FIELDS);
				for (const char *p = t; *p; p++)
					if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
					      (*p >= '0' && *p <= '9') || *p == '_'))
						return qc_usage_error(cmd, "--fields: invalid field \"%s\"", t);
				fields[n_fields++] = t;
			}
			if (n_fields == 0)
				return qc_usage_error(cmd, "--fields: expected NAME,CLASS,...");
			break;
		}
	}
	r = qc_simple("dom0", "admin.vm.List", NULL, "dom0", NULL, &list);
	if (r != QC_EXIT_OK)
		return r;
	if (qc_split_lines(list.data, &lines, &n) < 0 || !(qs = calloc(n ? n : 1, sizeof(*qs)))) {
		ret = qc_transport_error(-ENOMEM);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *sp = strchr(lines[i], ' ');
		struct qube *q = &qs[nq];

		if (!sp)
			continue;
		*sp = '\0';
		if (!qc_token_value(sp + 1, "class", q->cls, sizeof(q->cls)))
			snprintf(q->cls, sizeof(q->cls), "-");
		if (!qc_token_value(sp + 1, "state", q->state, sizeof(q->state)))
			snprintf(q->state, sizeof(q->state), "-");
		if (!all && (strcmp(q->cls, "AdminVM") == 0 || strcmp(lines[i], "dom0") == 0))
			continue;
		q->name = lines[i];
		nq++;
	}
	for (size_t i = 0; i < nq; i++) {
		r = qc_simple(qs[i].name, "admin.vm.property.GetAll", NULL, qs[i].name, NULL, &qs[i].all);
		if (r == QC_EXIT_NO_DAEMON) {
			ret = r;
			goto out;
		}
		if (r != QC_EXIT_OK) {
			/* removed meanwhile, or refused: listed without properties */
			ret = r;
			qs[i].all.data = NULL;
			continue;
		}
		if (parse_getall(&qs[i]) < 0) {
			ret = qc_transport_error(-ENOMEM);
			goto out;
		}
	}
	/* internal qubes (preloaded disposables among them) only with --all */
	if (!all) {
		size_t k = 0;

		for (size_t i = 0; i < nq; i++) {
			if (strcmp(field_of(&qs[i], "internal"), "True") == 0) {
				free(qs[i].props);
				qc_reply_finish(&qs[i].all);
				continue;
			}
			qs[k++] = qs[i];
		}
		nq = k;
	}
	if (strcmp(format, "names") == 0) {
		for (size_t i = 0; i < nq; i++)
			puts(qs[i].name);
		goto out;
	}
	if (strcmp(format, "json") == 0) {
		r = print_json(qs, nq);
		ret = ret ? ret : r;
	} else {
		print_table(qs, nq, fields, n_fields);
	}
out:
	for (size_t i = 0; qs && i < nq; i++) {
		free(qs[i].props);
		qc_reply_finish(&qs[i].all);
	}
	free(qs);
	free(lines);
	qc_reply_finish(&list);
	return ret;
}
