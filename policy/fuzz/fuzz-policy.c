/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the policy parser and evaluator.
 *
 * Input: a first line "SOURCE TARGET SERVICE[+ARG]" (the request, which in
 * production comes from a guest), then policy text.  The text is parsed
 * with includes disabled; the request and a few fixed ones are evaluated
 * against a fixed system, and decisions are checked for consistency.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_system[] =
	"{\"domains\": {"
	" \"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\"},"
	" \"work\": {\"type\": \"AppVM\", \"tags\": [\"t\", \"w\"], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\"},"
	" \"vault\": {\"type\": \"StandaloneVM\", \"tags\": [\"t\"], \"default_dispvm\": null,"
	"   \"power_state\": \"Halted\"},"
	" \"tpl\": {\"type\": \"TemplateVM\", \"tags\": []},"
	" \"dvm\": {\"type\": \"AppVM\", \"tags\": [\"d\"], \"template_for_dispvms\": true,"
	"   \"default_dispvm\": \"dvm\"},"
	" \"disp1\": {\"type\": \"DispVM\", \"tags\": [\"d\"], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\"}"
	"}}";

static void check(const struct qpol_policy *p, const struct qpol_system *s,
		  const struct qpol_request *req)
{
	struct qpol_decision d;
	if (qpol_evaluate(p, s, req, &d) < 0)
		return;
	if (!d.reason)
		abort();
	switch (d.result) {
	case QPOL_RESULT_ALLOW:
		if (!d.target || !d.requested_target || !d.rule_file || d.rule_line == 0)
			abort();
		/* An allowed target is a known qube, dom0 or a disposable. */
		if (strncmp(d.target, "@dispvm:", 8) != 0 && strcmp(d.target, "dom0") != 0 &&
		    !qpol_system_has_domain(s, d.target))
			abort();
		if (strcmp(d.target, req->source) == 0)
			abort();
		break;
	case QPOL_RESULT_ASK:
		if (d.n_targets == 0 || !d.rule_file)
			abort();
		for (size_t i = 1; i < d.n_targets; i++)
			if (strcmp(d.targets[i - 1], d.targets[i]) >= 0)
				abort();
		if (d.default_target) {
			size_t i;
			for (i = 0; i < d.n_targets; i++)
				if (strcmp(d.targets[i], d.default_target) == 0)
					break;
			if (i == d.n_targets)
				abort();
		}
		break;
	case QPOL_RESULT_DENY:
		if (d.target)
			abort();
		break;
	}
	qpol_decision_finish(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qpol_system *sys;
	struct qpol_policy *p = NULL;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t head = nl ? (size_t)(nl - data) : size;
	char *untrusted_line, *fields[3] = { 0 };

	if (!sys && qpol_system_parse_json(fuzz_system, sizeof(fuzz_system) - 1, &sys, NULL) < 0)
		abort();

	if (qpol_policy_parse_text("fuzz.policy", (const char *)data + (nl ? head + 1 : size),
				   nl ? size - head - 1 : 0, NULL, &p) < 0)
		return 0;
	/* Consistency of the diagnostics. */
	for (size_t i = 0; i < qpol_policy_n_diags(p); i++) {
		const struct qpol_diag *g = qpol_policy_diag(p, i);
		if (!g || !g->file || !g->message || strchr(g->message, '\n'))
			abort();
	}
	if (qpol_policy_is_valid(p) != (qpol_policy_n_diags(p) == 0))
		abort();

	untrusted_line = malloc(head + 1);
	if (!untrusted_line)
		goto out;
	memcpy(untrusted_line, data, head);
	untrusted_line[head] = '\0';
	char *save = NULL, *tok = strtok_r(untrusted_line, " ", &save);
	for (int i = 0; i < 3 && tok; i++, tok = strtok_r(NULL, " ", &save))
		fields[i] = tok;
	if (fields[2]) {
		char *plus = strchr(fields[2], '+');
		if (plus)
			*plus++ = '\0';
		struct qpol_request req = { .service = fields[2], .argument = plus ? plus : "",
					    .source = fields[0], .target = fields[1] };
		check(p, sys, &req);
	}
	static const char *const fixed[][4] = {
		{ "work", "vault", "qubes.Filecopy", "" },
		{ "work", "@default", "qubes.Filecopy", "" },
		{ "work", "@dispvm", "qubes.OpenInVM", "" },
		{ "vault", "dom0", "qubes.Foo", "bar" },
		{ "dom0", "work", "qubes.Foo", "" },
		{ "disp1", "@dispvm:dvm", "x", "+" },
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		struct qpol_request req = { .source = fixed[i][0], .target = fixed[i][1],
					    .service = fixed[i][2], .argument = fixed[i][3] };
		check(p, sys, &req);
	}
	free(untrusted_line);
out:
	qpol_policy_free(p);
	return 0;
}
