/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the system-information parser
 * (qpol_system_parse_json): arbitrary bytes as the JSON text.  A parsed
 * system is then used to evaluate a fixed policy, so that whatever the
 * parser accepted is also walked by the evaluator (domain lookup, tags,
 * types, default disposables, ask target lists).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_policy[] =
	"a.S * @anyvm @anyvm allow\n"
	"b.S * @tag:t @type:AppVM ask default_target=@dispvm\n"
	"c.S * @anyvm @default allow target=@dispvm\n"
	"d.S * @anyvm @dispvm:@tag:d allow\n"
	"e.S * @type:DispVM @anyvm ask target=@adminvm\n"
	"f.S * uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01 * ask default_target=@dispvm\n"
	"f.S * @type:AdminVM uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02 allow\n"
	"f.S * * @dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e03 allow\n"
	"f.S * @anyvm @tag:t allow target=uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02\n"
	"f.S * * uuid:00000000-0000-0000-0000-000000000000 ask\n"
	"* * @anyvm @anyvm deny\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "dom0", "work", "vault", "dvm", "a", "x" };
	static const char *const targets[] = {
		"@default", "@dispvm", "work", "vault", "@dispvm:dvm", "@adminvm", "dom0",
		"uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02",
		"@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e03",
		"uuid:00000000-0000-0000-0000-000000000000",
	};
	static const char *const services[] = { "a.S", "b.S", "c.S", "d.S", "e.S", "f.S", "z.S" };
	const size_t n_services = sizeof(services) / sizeof(services[0]);
	static struct qpol_policy *policy;
	struct qpol_system *sys = NULL;
	char *err = NULL;

	if (!policy &&
	    qpol_policy_parse_text("fuzz.policy", fuzz_policy, strlen(fuzz_policy), NULL, &policy) < 0)
		abort();
	int r = qpol_system_parse_json((const char *)data, size, &sys, &err);
	if (r < 0) {
		/* a validation error always comes with a message */
		if (r == -EINVAL && !err)
			abort();
		free(err);
		return 0;
	}
	if (err)
		abort();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *name = NULL;
		/* a qube of the JSON resolves to itself; dom0 always resolves */
		if (qpol_system_has_domain(sys, names[i]) || strcmp(names[i], "dom0") == 0) {
			if (qpol_system_resolve_target(sys, names[i], &name) < 0 ||
			    strcmp(name, names[i]) != 0)
				abort();
			free(name);
			name = NULL;
		} else if (qpol_system_resolve_target(sys, names[i], &name) != -ENOENT) {
			abort();
		}
		for (size_t j = 0; j < sizeof(targets) / sizeof(targets[0]); j++) {
			struct qpol_request req = { .service = services[(i + j) % n_services],
						    .argument = "",
						    .source = names[i],
						    .target = targets[j] };
			struct qpol_decision d;
			if (qpol_evaluate(policy, sys, &req, &d) == 0) {
				if (!d.reason)
					abort();
				/* an allowed target resolves to its target_name */
				if (d.result == QPOL_RESULT_ALLOW &&
				    (qpol_system_resolve_target(sys, d.target, &name) < 0 ||
				     strcmp(name, d.target_name) != 0))
					abort();
				free(name);
				name = NULL;
				qpol_decision_finish(&d);
			}
		}
	}
	qpol_system_free(sys);
	return 0;
}
