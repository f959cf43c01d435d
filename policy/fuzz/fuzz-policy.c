/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the policy parser and evaluator.
 *
 * Input: a first line "SOURCE TARGET SERVICE[+ARG]" (the request, which in
 * production comes from a guest), then policy text.  The text is parsed
 * with includes disabled; the request and a few fixed ones are evaluated
 * against a fixed system (with uuids, internal qubes and dom0), and
 * decisions are checked for consistency.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* uuids: work ...01, vault ...02, dvm ...04, disp1 ...05, hid ...06, idvm
 * ...07, dom0 the nil UUID; tpl has none.  hid and idvm are internal. */
static const char fuzz_system[] =
	"{\"domains\": {"
	" \"dom0\": {\"type\": \"AdminVM\", \"tags\": [\"a\"], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\", \"uuid\": \"00000000-0000-0000-0000-000000000000\"},"
	" \"work\": {\"type\": \"AppVM\", \"tags\": [\"t\", \"w\"], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\"},"
	" \"vault\": {\"type\": \"StandaloneVM\", \"tags\": [\"t\"], \"default_dispvm\": null,"
	"   \"power_state\": \"Halted\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02\"},"
	" \"tpl\": {\"type\": \"TemplateVM\", \"tags\": []},"
	" \"dvm\": {\"type\": \"AppVM\", \"tags\": [\"d\"], \"template_for_dispvms\": true,"
	"   \"default_dispvm\": \"dvm\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e04\"},"
	" \"disp1\": {\"type\": \"DispVM\", \"tags\": [\"d\"], \"default_dispvm\": \"idvm\","
	"   \"power_state\": \"Running\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e05\"},"
	" \"hid\": {\"type\": \"AppVM\", \"tags\": [\"t\"], \"internal\": true,"
	"   \"power_state\": \"Running\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06\"},"
	" \"idvm\": {\"type\": \"AppVM\", \"tags\": [\"d\"], \"template_for_dispvms\": true,"
	"   \"internal\": true, \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e07\"}"
	"}}";

static bool is_internal(const char *target)
{
	if (strncmp(target, "@dispvm:", 8) == 0)
		target += 8;
	return strcmp(target, "hid") == 0 || strcmp(target, "idvm") == 0;
}

/* Whether line LINE of TEXT (numbered as the loader does: "\n", "\r\n" and
 * a lone "\r" end a line) has a "target=" parameter: an "ask" offers that
 * as written, internal or not.  May say yes wrongly (then a check is
 * skipped), never no wrongly. */
static bool line_has_redirect(const char *text, size_t len, unsigned line)
{
	size_t i = 0, start, k;

	for (unsigned l = 1; l < line && i < len; i++) {
		if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
			i++;
		if (text[i] == '\n' || text[i] == '\r')
			l++;
	}
	for (start = i; i < len && text[i] != '\n' && text[i] != '\r'; i++)
		;
	for (k = start; k + 7 <= i; k++)
		if (memcmp(text + k, "target=", 7) == 0 && (k == start || text[k - 1] != '_'))
			return true;
	return false;
}

static void check(const struct qpol_policy *p, const struct qpol_system *s,
		  const struct qpol_request *req, const char *text, size_t len)
{
	struct qpol_decision d;
	char *name = NULL;
	const char *src;

	if (qpol_evaluate(p, s, req, &d) < 0)
		return;
	if (!d.reason)
		abort();
	src = strcmp(req->source, "@adminvm") == 0 ? "dom0" : req->source;
	switch (d.result) {
	case QPOL_RESULT_ALLOW:
		if (!d.target || !d.target_name || !d.requested_target || !d.rule_file ||
		    d.rule_line == 0)
			abort();
		/* An allowed target is a known qube (by name or uuid:), dom0 or
		 * a disposable of a template, and target_name names it. */
		if (qpol_system_resolve_target(s, d.target, &name) < 0 ||
		    strcmp(name, d.target_name) != 0)
			abort();
		free(name);
		if (strcmp(d.target_name, src) == 0)
			abort();
		/* every qube here but tpl has a uuid; dom0 gets no target_uuid */
		if ((d.target_uuid != NULL) !=
		    (strcmp(d.target_name, "dom0") != 0 && strcmp(d.target_name, "tpl") != 0))
			abort();
		if (d.target_uuid &&
		    strncmp(d.target_uuid, d.target_name[0] == '@' ? "@dispvm:uuid:" : "uuid:",
			    d.target_name[0] == '@' ? 13 : 5) != 0)
			abort();
		break;
	case QPOL_RESULT_ASK:
		if (d.n_targets == 0 || !d.rule_file)
			abort();
		for (size_t i = 1; i < d.n_targets; i++)
			if (strcmp(d.targets[i - 1], d.targets[i]) >= 0)
				abort();
		/* collected targets are names, never internal, never the caller */
		if (!line_has_redirect(text, len, d.rule_line)) {
			for (size_t i = 0; i < d.n_targets; i++)
				if (is_internal(d.targets[i]) || strstr(d.targets[i], "uuid:") ||
				    strcmp(d.targets[i], src) == 0)
					abort();
		}
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
		if (d.target || d.target_name || d.target_uuid)
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
	const char *text = (const char *)data + (nl ? head + 1 : size);
	size_t text_len = nl ? size - head - 1 : 0;
	char *untrusted_line, *fields[3] = { 0 };

	if (!sys && qpol_system_parse_json(fuzz_system, sizeof(fuzz_system) - 1, &sys, NULL) < 0)
		abort();

	if (qpol_policy_parse_text("fuzz.policy", text, text_len, NULL, &p) < 0)
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
		check(p, sys, &req, text, text_len);
	}
	static const char *const fixed[][4] = {
		{ "work", "vault", "qubes.Filecopy", "" },
		{ "work", "@default", "qubes.Filecopy", "" },
		{ "work", "@dispvm", "qubes.OpenInVM", "" },
		{ "vault", "dom0", "qubes.Foo", "bar" },
		{ "dom0", "work", "qubes.Foo", "" },
		{ "disp1", "@dispvm:dvm", "x", "+" },
		{ "work", "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02", "x", "" },
		{ "vault", "uuid:00000000-0000-0000-0000-000000000000", "x", "" },
		{ "work", "@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e04", "x", "" },
		{ "work", "@adminvm", "x", "" },
		{ "disp1", "@dispvm", "x", "" },
		{ "hid", "uuid:6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E02", "x", "" },
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		struct qpol_request req = { .source = fixed[i][0], .target = fixed[i][1],
					    .service = fixed[i][2], .argument = fixed[i][3] };
		check(p, sys, &req, text, text_len);
	}
	free(untrusted_line);
out:
	qpol_policy_free(p);
	return 0;
}
