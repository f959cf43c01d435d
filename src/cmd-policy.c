/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl policy lint | eval
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "qpolicy.h"
#include "qubectl.h"

struct policy_opts {
	const char *policy_dir;
	const char *system_info;
	bool explain;
	char *pos[4];
	int n_pos;
};

/* Options may come before or after the positional arguments; "--" ends
 * them.  Returns QC_EXIT_OK or a usage error. */
static int parse_opts(const struct qc_command *cmd, int argc, char **argv, bool allow_eval_opts,
		      int max_pos, struct policy_opts *o)
{
	bool opts_done = false;

	o->policy_dir = QUBE_POLICY_DIR;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *val = NULL;

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (o->n_pos >= max_pos)
				return qc_usage_error(cmd, "unexpected argument \"%s\"", a);
			o->pos[o->n_pos++] = argv[i];
			continue;
		}
		if (strncmp(a, "--policy-dir", 12) == 0 && (a[12] == '\0' || a[12] == '=')) {
			dst = &o->policy_dir;
			val = a[12] ? a + 13 : NULL;
		} else if (allow_eval_opts && strncmp(a, "--system-info", 13) == 0 &&
			   (a[13] == '\0' || a[13] == '=')) {
			dst = &o->system_info;
			val = a[13] ? a + 14 : NULL;
		} else if (allow_eval_opts && strcmp(a, "--explain") == 0) {
			o->explain = true;
			continue;
		} else {
			return qc_usage_error(cmd, "unknown option \"%s\"", a);
		}
		if (!val) {
			if (i + 1 >= argc)
				return qc_usage_error(cmd, "option %s needs a value", a);
			val = argv[++i];
		}
		if (val[0] == '\0')
			return qc_usage_error(cmd, "option %.13s needs a non-empty value", a);
		*dst = val;
	}
	return QC_EXIT_OK;
}

static int load_policy(const char *dir, struct qpol_policy **ret)
{
	int r = qpol_policy_load_dir(dir, ret);
	if (r < 0) {
		fprintf(stderr, "qubectl: cannot load policy directory %s: %s\n", dir, strerror(-r));
		return QC_EXIT_FAILURE;
	}
	return QC_EXIT_OK;
}

int qc_policy_lint(const struct qc_command *cmd, int argc, char **argv)
{
	struct policy_opts o = { 0 };
	struct qpol_policy *policy = NULL;
	int ret;

	ret = parse_opts(cmd, argc, argv, false, 0, &o);
	if (ret != QC_EXIT_OK)
		return ret;
	ret = load_policy(o.policy_dir, &policy);
	if (ret != QC_EXIT_OK)
		return ret;
	size_t n = qpol_policy_n_diags(policy);
	for (size_t i = 0; i < n; i++) {
		const struct qpol_diag *d = qpol_policy_diag(policy, i);
		printf("%s:%u: %s\n", d->file, d->line, d->message);
	}
	if (n > 0) {
		fprintf(stderr, "qubectl: %zu error%s: every RPC request is denied until fixed\n", n,
			n == 1 ? "" : "s");
		ret = QC_EXIT_FAILURE;
	} else {
		size_t nf = qpol_policy_n_files(policy), nr = qpol_policy_n_rules(policy);
		printf("%zu file%s, %zu rule%s, no errors\n", nf, nf == 1 ? "" : "s", nr,
		       nr == 1 ? "" : "s");
	}
	qpol_policy_free(policy);
	return ret;
}

static void print_decision(const struct qpol_decision *d)
{
	printf("result=%s\n", qpol_result_to_string(d->result));
	if (d->result == QPOL_RESULT_ALLOW) {
		printf("target=%s\n", d->target);
		/* Qubes' target_uuid, when the target qube has a uuid */
		if (d->target_uuid)
			printf("target_uuid=%s\n", d->target_uuid);
		printf("autostart=%s\n", d->autostart ? "yes" : "no");
		if (d->user)
			printf("user=%s\n", d->user);
		printf("requested_target=%s\n", d->requested_target);
	} else if (d->result == QPOL_RESULT_ASK) {
		printf("targets=");
		for (size_t i = 0; i < d->n_targets; i++)
			printf("%s%s", i ? " " : "", d->targets[i]);
		printf("\ndefault_target=%s\n", d->default_target ? d->default_target : "");
		printf("autostart=%s\n", d->autostart ? "yes" : "no");
		if (d->user)
			printf("user=%s\n", d->user);
		printf("requested_target=%s\n", d->requested_target);
	}
}

int qc_policy_eval(const struct qc_command *cmd, int argc, char **argv)
{
	struct policy_opts o = { 0 };
	struct qpol_policy *policy = NULL;
	struct qpol_system *system = NULL;
	struct qpol_decision d = { 0 };
	char *error = NULL, *service = NULL;
	int ret, r;

	ret = parse_opts(cmd, argc, argv, true, 3, &o);
	if (ret != QC_EXIT_OK)
		return ret;
	if (!o.system_info)
		return qc_usage_error(cmd, "--system-info FILE is required");
	if (o.n_pos != 3)
		return qc_usage_error(cmd, "expected SOURCE TARGET SERVICE[+ARG]");

	r = qpol_system_load_file(o.system_info, &system, &error);
	if (r < 0) {
		fprintf(stderr, "qubectl: system info: %s\n", error ? error : strerror(-r));
		free(error);
		return QC_EXIT_FAILURE;
	}
	ret = load_policy(o.policy_dir, &policy);
	if (ret != QC_EXIT_OK)
		goto out;
	if (!qpol_policy_is_valid(policy))
		fprintf(stderr, "qubectl: the policy has %zu error%s (see \"qubectl policy lint\"): "
			"every request is denied\n", qpol_policy_n_diags(policy),
			qpol_policy_n_diags(policy) == 1 ? "" : "s");

	service = strdup(o.pos[2]);
	if (!service) {
		ret = QC_EXIT_FAILURE;
		goto out;
	}
	char *plus = strchr(service, '+');
	if (plus)
		*plus = '\0';
	struct qpol_request req = {
		.service = service,
		.argument = plus ? plus + 1 : "",
		.source = o.pos[0],
		.target = o.pos[1],
	};
	r = qpol_evaluate(policy, system, &req, &d);
	if (r < 0) {
		fprintf(stderr, "qubectl: evaluation failed: %s\n", strerror(-r));
		ret = QC_EXIT_FAILURE;
		goto out;
	}
	print_decision(&d);
	if (o.explain) {
		if (d.rule_file)
			fprintf(stderr, "%s:%u: %s\n", d.rule_file, d.rule_line, d.reason);
		else
			fprintf(stderr, "(no rule): %s\n", d.reason);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "qubectl: writing the decision: %s\n", strerror(errno));
		ret = QC_EXIT_FAILURE;
	}
	qpol_decision_finish(&d);
out:
	free(service);
	qpol_policy_free(policy);
	qpol_system_free(system);
	return ret;
}
