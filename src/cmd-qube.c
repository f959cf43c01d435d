/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl create | remove | clone | start | shutdown | kill | pause |
 * unpause: the lifecycle of qubes, through qubed's admin API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qubectl.h"

#define MAX_NAMES 256

/* Collects the positional arguments as qube names (checked), no options
 * but those of opts (their ids are returned through on_opt). */
struct names {
	const char *v[MAX_NAMES];
	int n;
};

static int add_name(const struct qc_command *cmd, struct names *ns, const char *name)
{
	if (!qc_is_valid_name(name))
		return qc_usage_error(cmd, "invalid qube name \"%s\" (1-31 of [A-Za-z0-9_.-], "
					   "starting with a letter)", name);
	if (ns->n == MAX_NAMES)
		return qc_usage_error(cmd, "more than %d qube names", MAX_NAMES);
	ns->v[ns->n++] = name;
	return QC_EXIT_OK;
}

/* The worse of two exit codes: a daemon that cannot be reached beats a
 * failed call. */
static int worse(int a, int b)
{
	return a > b ? a : b;
}

/* ---- create ---- */

int qc_cmd_create(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_CLASS = 1, O_TEMPLATE, O_LABEL, O_PROPERTY };
	static const struct qc_opt opts[] = {
		{ "--class", 'C', true, O_CLASS },
		{ "--template", 't', true, O_TEMPLATE },
		{ "--label", 'l', true, O_LABEL },
		{ "--property", 'p', true, O_PROPERTY },
		{ NULL, 0, false, 0 },
	};
	const char *name = NULL, *cls = "AppVM", *tmpl = NULL, *label = NULL, *v;
	const char *props[64];
	int n_props = 0, r, ret;
	char method[64], payload[128];
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case QC_ARG_POSITIONAL:
			if (name)
				return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
			name = v;
			break;
		case O_CLASS:
			if (strcmp(v, "AppVM") && strcmp(v, "TemplateVM") && strcmp(v, "StandaloneVM") &&
			    strcmp(v, "DispVM"))
				return qc_usage_error(cmd, "--class \"%s\": expected AppVM, TemplateVM, "
							   "StandaloneVM or DispVM", v);
			cls = v;
			break;
		case O_TEMPLATE:
			if (!qc_is_valid_name(v))
				return qc_usage_error(cmd, "--template: invalid qube name \"%s\"", v);
			tmpl = v;
			break;
		case O_LABEL:
			if (strlen(v) > 31 || strpbrk(v, " =\n"))
				return qc_usage_error(cmd, "--label: invalid label \"%s\"", v);
			label = v;
			break;
		case O_PROPERTY:
			if (!strchr(v, '=') || v[0] == '=')
				return qc_usage_error(cmd, "--property \"%s\": expected NAME=VALUE", v);
			if (n_props == (int)(sizeof(props) / sizeof(props[0])))
				return qc_usage_error(cmd, "too many --property options");
			props[n_props++] = v;
			break;
		}
	}
	if (!name)
		return qc_usage_error(cmd, "expected the NAME of the new qube");
	if (!qc_is_valid_name(name))
		return qc_usage_error(cmd, "invalid qube name \"%s\" (1-31 of [A-Za-z0-9_.-], "
					   "starting with a letter)", name);
	if (!label)
		return qc_usage_error(cmd, "option --label is required (red, orange, yellow, green, "
					   "gray, blue, purple, black)");
	snprintf(method, sizeof(method), "admin.vm.Create.%s", cls);
	snprintf(payload, sizeof(payload), "name=%s label=%s", name, label);
	ret = qc_simple(name, method, tmpl ? tmpl : "", "dom0", payload, NULL);
	if (ret != QC_EXIT_OK)
		return ret;
	for (int i = 0; i < n_props; i++) {
		char prop[128];
		const char *eq = strchr(props[i], '=');
		size_t pl = (size_t)(eq - props[i]);

		if (pl >= sizeof(prop))
			pl = sizeof(prop) - 1;
		memcpy(prop, props[i], pl);
		prop[pl] = '\0';
		for (char *p = prop; *p; p++)
			if (*p == '-')
				*p = '_';
		ret = qc_simple(name, "admin.vm.property.Set", prop, name, eq + 1, NULL);
		if (ret != QC_EXIT_OK) {
			/* a qube with half its properties is not what was asked for */
			fprintf(stderr, "qubectl: %s: removing the new qube again\n", name);
			qc_simple(name, "admin.vm.Remove", NULL, name, NULL, NULL);
			return ret;
		}
	}
	return QC_EXIT_OK;
}

/* ---- remove ---- */

int qc_cmd_remove(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_FORCE = 1 };
	static const struct qc_opt opts[] = {
		{ "--force", 'f', false, O_FORCE },
		{ NULL, 0, false, 0 },
	};
	struct names ns = { .n = 0 };
	bool force = false;
	struct qc_args a;
	const char *v;
	int r, ret = QC_EXIT_OK;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (r == O_FORCE)
			force = true;
		else if (add_name(cmd, &ns, v) != QC_EXIT_OK)
			return QC_EXIT_USAGE;
	}
	if (ns.n == 0)
		return qc_usage_error(cmd, "expected at least one qube NAME");
	if (!force) {
		char prompt[512];
		size_t off;

		if (!isatty(STDIN_FILENO))
			return qc_usage_error(cmd, "standard input is not a terminal: refusing to remove "
						   "without asking (use --force)");
		off = (size_t)snprintf(prompt, sizeof(prompt), "Remove %s", ns.n > 1 ? "qubes" : "qube");
		for (int i = 0; i < ns.n && off < sizeof(prompt); i++)
			off += (size_t)snprintf(prompt + off, sizeof(prompt) - off, "%s %s",
						i ? "," : "", ns.v[i]);
		if (off < sizeof(prompt))
			snprintf(prompt + off, sizeof(prompt) - off, " and all %s data?",
				 ns.n > 1 ? "their" : "its");
		if (!qc_confirm(prompt)) {
			fprintf(stderr, "qubectl: nothing removed\n");
			return QC_EXIT_FAILURE;
		}
	}
	for (int i = 0; i < ns.n; i++) {
		r = qc_simple(ns.v[i], "admin.vm.Remove", NULL, ns.v[i], NULL, NULL);
		if (r == QC_EXIT_NO_DAEMON)
			return r;
		ret = worse(ret, r);
	}
	return ret;
}

/* ---- clone ---- */

int qc_cmd_clone(const struct qc_command *cmd, int argc, char **argv)
{
	struct names ns = { .n = 0 };
	struct qc_args a;
	const char *v;
	int r;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, NULL, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (ns.n == 2)
			return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
		if (add_name(cmd, &ns, v) != QC_EXIT_OK)
			return QC_EXIT_USAGE;
	}
	if (ns.n != 2)
		return qc_usage_error(cmd, "expected SRC and DST");
	return qc_simple(ns.v[0], "qube.vm.Clone", ns.v[1], ns.v[0], NULL, NULL);
}

/* ---- start, kill, pause, unpause ---- */

static int for_each_name(const struct qc_command *cmd, int argc, char **argv, const char *method,
			 const char *verb)
{
	struct names ns = { .n = 0 };
	struct qc_args a;
	const char *v;
	int r, ret = QC_EXIT_OK;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, NULL, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (add_name(cmd, &ns, v) != QC_EXIT_OK)
			return QC_EXIT_USAGE;
	}
	if (ns.n == 0)
		return qc_usage_error(cmd, "expected at least one qube NAME");
	for (int i = 0; i < ns.n; i++) {
		struct qc_progress p;
		struct qc_call c;

		qc_call_init(&c, qc_socket(), method, NULL, ns.v[i]);
		qc_progress_attach(&c, &p, verb, ns.v[i]);
		r = qc_run(ns.v[i], &c, NULL);
		qc_progress_end(&p);
		if (r == QC_EXIT_NO_DAEMON)
			return r;
		ret = worse(ret, r);
	}
	return ret;
}

int qc_cmd_start(const struct qc_command *cmd, int argc, char **argv)
{
	return for_each_name(cmd, argc, argv, "admin.vm.Start", "starting");
}

int qc_cmd_kill(const struct qc_command *cmd, int argc, char **argv)
{
	return for_each_name(cmd, argc, argv, "admin.vm.Kill", "killing");
}

int qc_cmd_pause(const struct qc_command *cmd, int argc, char **argv)
{
	return for_each_name(cmd, argc, argv, "admin.vm.Pause", NULL);
}

int qc_cmd_unpause(const struct qc_command *cmd, int argc, char **argv)
{
	return for_each_name(cmd, argc, argv, "admin.vm.Unpause", NULL);
}

/* ---- shutdown ---- */

/* The running qubes (every qube whose state is not Halted), dom0 and
 * AdminVMs excepted; names point into *ret_data. */
static int running_qubes(struct names *ns, struct qc_reply *ret_data)
{
	char **lines = NULL;
	size_t n = 0;
	int r;

	r = qc_simple("dom0", "admin.vm.List", NULL, "dom0", NULL, ret_data);
	if (r != QC_EXIT_OK)
		return r;
	if (qc_split_lines(ret_data->data, &lines, &n) < 0) {
		qc_reply_finish(ret_data);
		return qc_transport_error(-ENOMEM);
	}
	for (size_t i = 0; i < n && ns->n < MAX_NAMES; i++) {
		char cls[32], state[32];
		char *sp = strchr(lines[i], ' ');

		if (!sp)
			continue;
		*sp = '\0';
		if (!qc_token_value(sp + 1, "class", cls, sizeof(cls)) ||
		    !qc_token_value(sp + 1, "state", state, sizeof(state)))
			continue;
		if (strcmp(cls, "AdminVM") == 0 || strcmp(lines[i], "dom0") == 0 ||
		    strcmp(state, "Halted") == 0)
			continue;
		ns->v[ns->n++] = lines[i];
	}
	free(lines);
	return QC_EXIT_OK;
}

int qc_cmd_shutdown(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_WAIT = 1, O_TIMEOUT, O_ALL, O_FORCE };
	static const struct qc_opt opts[] = {
		{ "--wait", 'w', false, O_WAIT },
		{ "--timeout", 0, true, O_TIMEOUT },
		{ "--all", 'a', false, O_ALL },
		{ "--force", 'f', false, O_FORCE },
		{ NULL, 0, false, 0 },
	};
	struct names ns = { .n = 0 };
	struct qc_reply list = { 0 };
	bool wait = false, all = false, force = false;
	long timeout = -1;
	struct qc_args a;
	const char *v;
	int r, ret = QC_EXIT_OK;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		char *end;

		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case QC_ARG_POSITIONAL:
			if (add_name(cmd, &ns, v) != QC_EXIT_OK)
				return QC_EXIT_USAGE;
			break;
		case O_WAIT:
			wait = true;
			break;
		case O_ALL:
			all = true;
			break;
		case O_FORCE:
			force = true;
			break;
		case O_TIMEOUT:
			errno = 0;
			timeout = strtol(v, &end, 10);
			if (errno || *end || timeout < 1 || timeout > 86400)
				return qc_usage_error(cmd, "--timeout \"%s\": expected seconds, 1 to 86400", v);
			wait = true;
			break;
		}
	}
	if (all && ns.n > 0)
		return qc_usage_error(cmd, "--all and qube names exclude each other");
	if (!all && ns.n == 0)
		return qc_usage_error(cmd, "expected qube NAMEs or --all");
	if (all) {
		r = running_qubes(&ns, &list);
		if (r != QC_EXIT_OK)
			return r;
	}
	ret = QC_EXIT_OK;
	for (int i = 0; i < ns.n; i++) {
		const char *arg = force ? (wait ? "force+wait" : "force") : (wait ? "wait" : "");
		struct qc_progress p;
		struct qc_reply reply;
		struct qc_call c;

		qc_call_init(&c, qc_socket(), "admin.vm.Shutdown", arg, ns.v[i]);
		if (timeout > 0)
			c.timeout_ms = (int)(timeout * 1000);
		qc_progress_attach(&c, &p, wait ? "shutting down" : NULL, ns.v[i]);
		r = qc_admin_call(&c, &reply);
		qc_progress_end(&p);
		if (r == -ETIMEDOUT) {
			fprintf(stderr, "qubectl: %s: not halted after %ld s: killing it\n", ns.v[i],
				timeout);
			r = qc_simple(ns.v[i], "admin.vm.Kill", NULL, ns.v[i], NULL, NULL);
		} else if (r < 0) {
			r = qc_transport_error(r);
		} else if (reply.kind == QC_REPLY_EXCEPTION) {
			fprintf(stderr, "qubectl: %s: %s (%s)\n", ns.v[i], reply.exc_message,
				reply.exc_type);
			qc_reply_finish(&reply);
			r = QC_EXIT_FAILURE;
		} else {
			qc_reply_finish(&reply);
			r = QC_EXIT_OK;
		}
		if (r == QC_EXIT_NO_DAEMON) {
			ret = r;
			break;
		}
		ret = worse(ret, r);
	}
	qc_reply_finish(&list);
	return ret;
}
