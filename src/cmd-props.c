/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl prefs | global-prefs | tags | features: properties, tags and
 * features of a qube (and the global properties), through qubed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qubectl.h"

static bool is_valid_key(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

/* "PROP default=B type=T VALUE" lines of GetAll, printed as qvm-prefs
 * does: name padded, "D" for a default value, "-" for a set one. */
static int print_all(char *data)
{
	char **lines = NULL;
	size_t n = 0, width = 0;

	if (qc_split_lines(data, &lines, &n) < 0)
		return qc_transport_error(-ENOMEM);
	for (size_t i = 0; i < n; i++) {
		size_t l = strcspn(lines[i], " ");
		if (l > width)
			width = l;
	}
	for (size_t i = 0; i < n; i++) {
		char *name = lines[i], *def = strchr(name, ' '), *type, *value;

		if (!def)
			continue;
		*def++ = '\0';
		type = strchr(def, ' ');
		if (!type)
			continue;
		*type++ = '\0';
		value = strchr(type, ' ');
		value = value ? value + 1 : (char *)"";
		qc_unescape(value);
		printf("%-*s  %s  %s\n", (int)width, name, strcmp(def, "default=True") == 0 ? "D" : "-",
		       value);
	}
	free(lines);
	return QC_EXIT_OK;
}

/* Shared by prefs (prefix "admin.vm.property.", dest the qube) and
 * global-prefs (prefix "admin.property.", dest dom0). */
static int prefs(const struct qc_command *cmd, int argc, char **argv, bool per_qube)
{
	enum { O_DEFAULT = 1, O_HELP_PROPERTY };
	static const struct qc_opt opts[] = {
		{ "--default", 'D', false, O_DEFAULT },
		{ "--help-property", 0, true, O_HELP_PROPERTY },
		{ NULL, 0, false, 0 },
	};
	const char *pos[3], *help_prop = NULL, *v, *qube, *value;
	const char *prefix = per_qube ? "admin.vm.property." : "admin.property.";
	int n_pos = 0, max_pos = per_qube ? 3 : 2, r;
	char method[64], prop[64];
	bool reset = false;
	struct qc_reply reply;
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case QC_ARG_POSITIONAL:
			if (n_pos == max_pos)
				return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
			pos[n_pos++] = v;
			break;
		case O_DEFAULT:
			reset = true;
			break;
		case O_HELP_PROPERTY:
			help_prop = v;
			break;
		}
	}
	if (per_qube) {
		if (n_pos == 0)
			return qc_usage_error(cmd, "expected a QUBE");
		qube = pos[0];
		if (strcmp(qube, "dom0") != 0 && !qc_is_valid_name(qube))
			return qc_usage_error(cmd, "invalid qube name \"%s\"", qube);
		memmove(pos, pos + 1, sizeof(pos[0]) * 2);
		n_pos--;
	} else {
		qube = "dom0";
	}
	if (help_prop) {
		if (n_pos)
			return qc_usage_error(cmd, "--help-property takes no other PROPERTY");
		pos[0] = help_prop;
		n_pos = 1;
	}
	if (n_pos >= 1) {
		if (!is_valid_key(pos[0]))
			return qc_usage_error(cmd, "invalid property name \"%s\"", pos[0]);
		snprintf(prop, sizeof(prop), "%s", pos[0]);
		for (char *p = prop; *p; p++)
			if (*p == '-')
				*p = '_';
	}
	if (reset && (n_pos != 1 || help_prop))
		return qc_usage_error(cmd, "--default needs exactly one PROPERTY and no VALUE");
	value = n_pos == 2 ? pos[1] : NULL;

	if (n_pos == 0) {
		snprintf(method, sizeof(method), "%sGetAll", prefix);
		r = qc_simple(qube, method, NULL, qube, NULL, &reply);
		if (r != QC_EXIT_OK)
			return r;
		r = print_all(reply.data);
		qc_reply_finish(&reply);
		return r;
	}
	if (help_prop) {
		snprintf(method, sizeof(method), "%sHelp", prefix);
		r = qc_simple(qube, method, prop, qube, NULL, &reply);
		if (r != QC_EXIT_OK)
			return r;
		printf("%s%s", reply.data, reply.len && reply.data[reply.len - 1] == '\n' ? "" : "\n");
		qc_reply_finish(&reply);
		return QC_EXIT_OK;
	}
	if (reset) {
		snprintf(method, sizeof(method), "%sReset", prefix);
		return qc_simple(qube, method, prop, qube, NULL, NULL);
	}
	if (value) {
		snprintf(method, sizeof(method), "%sSet", prefix);
		return qc_simple(qube, method, prop, qube, value, NULL);
	}
	snprintf(method, sizeof(method), "%sGet", prefix);
	r = qc_simple(qube, method, prop, qube, NULL, &reply);
	if (r != QC_EXIT_OK)
		return r;
	/* "default=B type=T VALUE" */
	{
		const char *p = strchr(reply.data, ' ');
		p = p ? strchr(p + 1, ' ') : NULL;
		if (!p || strncmp(reply.data, "default=", 8) != 0) {
			qc_reply_finish(&reply);
			return qc_transport_error(-EBADMSG);
		}
		printf("%s\n", p + 1);
	}
	qc_reply_finish(&reply);
	return QC_EXIT_OK;
}

int qc_cmd_prefs(const struct qc_command *cmd, int argc, char **argv)
{
	return prefs(cmd, argc, argv, true);
}

int qc_cmd_global_prefs(const struct qc_command *cmd, int argc, char **argv)
{
	return prefs(cmd, argc, argv, false);
}

/* ---- tags ---- */

int qc_cmd_tags(const struct qc_command *cmd, int argc, char **argv)
{
	const char *pos[64], *v, *qube, *mode = "list";
	int n_pos = 0, r, ret = QC_EXIT_OK, first = 1;
	struct qc_reply reply;
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, NULL, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (n_pos == (int)(sizeof(pos) / sizeof(pos[0])))
			return qc_usage_error(cmd, "too many arguments");
		pos[n_pos++] = v;
	}
	if (n_pos == 0)
		return qc_usage_error(cmd, "expected a QUBE");
	qube = pos[0];
	if (strcmp(qube, "dom0") != 0 && !qc_is_valid_name(qube))
		return qc_usage_error(cmd, "invalid qube name \"%s\"", qube);
	if (n_pos >= 2) {
		const char *m = pos[1];
		if (!strcmp(m, "list") || !strcmp(m, "ls") || !strcmp(m, "l"))
			mode = "list";
		else if (!strcmp(m, "add") || !strcmp(m, "a") || !strcmp(m, "set"))
			mode = "add";
		else if (!strcmp(m, "del") || !strcmp(m, "d") || !strcmp(m, "unset") || !strcmp(m, "u"))
			mode = "del";
		else
			return qc_usage_error(cmd, "unknown action \"%s\" (list, add, del)", m);
		first = 2;
	}
	for (int i = first; i < n_pos; i++)
		if (!is_valid_key(pos[i]))
			return qc_usage_error(cmd, "invalid tag \"%s\"", pos[i]);
	if (strcmp(mode, "list") == 0 && n_pos == first) {
		r = qc_simple(qube, "admin.vm.tag.List", NULL, qube, NULL, &reply);
		if (r != QC_EXIT_OK)
			return r;
		fputs(reply.data, stdout);
		qc_reply_finish(&reply);
		return QC_EXIT_OK;
	}
	if (strcmp(mode, "list") != 0 && n_pos == first)
		return qc_usage_error(cmd, "%s: expected at least one TAG", mode);
	for (int i = first; i < n_pos; i++) {
		if (strcmp(mode, "list") == 0) {
			r = qc_simple(qube, "admin.vm.tag.Get", pos[i], qube, NULL, &reply);
			if (r == QC_EXIT_OK) {
				if (strcmp(reply.data, "1") == 0) {
					puts(pos[i]);
				} else {
					fprintf(stderr, "qubectl: %s: no tag %s\n", qube, pos[i]);
					r = QC_EXIT_FAILURE;
				}
				qc_reply_finish(&reply);
			}
		} else {
			r = qc_simple(qube, strcmp(mode, "add") == 0 ? "admin.vm.tag.Set" : "admin.vm.tag.Remove",
				      pos[i], qube, NULL, NULL);
		}
		if (r == QC_EXIT_NO_DAEMON)
			return r;
		if (r > ret)
			ret = r;
	}
	return ret;
}

/* ---- features ---- */

int qc_cmd_features(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_UNSET = 1 };
	static const struct qc_opt opts[] = {
		{ "--unset", 0, false, O_UNSET },
		{ "--delete", 'D', false, O_UNSET },
		{ NULL, 0, false, 0 },
	};
	const char *pos[3], *v, *qube;
	int n_pos = 0, r, ret = QC_EXIT_OK;
	bool unset = false;
	struct qc_reply reply;
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (r == O_UNSET) {
			unset = true;
			continue;
		}
		if (n_pos == 3)
			return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
		pos[n_pos++] = v;
	}
	if (n_pos == 0)
		return qc_usage_error(cmd, "expected a QUBE");
	qube = pos[0];
	if (strcmp(qube, "dom0") != 0 && !qc_is_valid_name(qube))
		return qc_usage_error(cmd, "invalid qube name \"%s\"", qube);
	if (n_pos >= 2 && !is_valid_key(pos[1]))
		return qc_usage_error(cmd, "invalid feature name \"%s\"", pos[1]);
	if (unset && n_pos != 2)
		return qc_usage_error(cmd, "--unset needs exactly one KEY and no VALUE");
	if (unset)
		return qc_simple(qube, "admin.vm.feature.Remove", pos[1], qube, NULL, NULL);
	if (n_pos == 3)
		return qc_simple(qube, "admin.vm.feature.Set", pos[1], qube, pos[2], NULL);
	if (n_pos == 2) {
		r = qc_simple(qube, "admin.vm.feature.Get", pos[1], qube, NULL, &reply);
		if (r != QC_EXIT_OK)
			return r;
		printf("%s\n", reply.data);
		qc_reply_finish(&reply);
		return QC_EXIT_OK;
	}
	/* all: List, then Get of each */
	struct qc_reply list;
	char **keys = NULL;
	size_t n = 0, width = 0;

	r = qc_simple(qube, "admin.vm.feature.List", NULL, qube, NULL, &list);
	if (r != QC_EXIT_OK)
		return r;
	if (qc_split_lines(list.data, &keys, &n) < 0) {
		qc_reply_finish(&list);
		return qc_transport_error(-ENOMEM);
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(keys[i]) > width)
			width = strlen(keys[i]);
	for (size_t i = 0; i < n; i++) {
		if (!keys[i][0])
			continue;
		r = qc_simple(qube, "admin.vm.feature.Get", keys[i], qube, NULL, &reply);
		if (r == QC_EXIT_NO_DAEMON) {
			ret = r;
			break;
		}
		if (r != QC_EXIT_OK) {
			ret = r;
			continue;
		}
		printf("%-*s  %s\n", (int)width, keys[i], reply.data);
		qc_reply_finish(&reply);
	}
	free(keys);
	qc_reply_finish(&list);
	return ret;
}
