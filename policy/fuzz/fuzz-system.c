/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness for the system-information parser
 * (qpol_system_parse_json): arbitrary bytes as the JSON text.  A parsed
 * system is then used to evaluate a fixed policy, so that whatever the
 * parser accepted is also walked by the evaluator (domain lookup, tags,
 * types, default disposables, ask target lists).
 */
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
	"* * @anyvm @anyvm deny\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "dom0", "work", "vault", "dvm", "a", "x" };
	static const char *const targets[] = { "@default", "@dispvm", "work", "vault",
					       "@dispvm:dvm", "@adminvm" };
	static const char *const services[] = { "a.S", "b.S", "c.S", "d.S", "e.S", "z.S" };
	static struct qpol_policy *policy;
	struct qpol_system *sys = NULL;
	char *err = NULL;

	if (!policy &&
	    qpol_policy_parse_text("fuzz.policy", fuzz_policy, strlen(fuzz_policy), NULL, &policy) < 0)
		abort();
	int r = qpol_system_parse_json((const char *)data, size, &sys, &err);
	if (r < 0) {
		/* a validation error always comes with a message */
		if (r == -22 && !err)
			abort();
		free(err);
		return 0;
	}
	if (err)
		abort();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)qpol_system_has_domain(sys, names[i]);
		for (size_t j = 0; j < sizeof(targets) / sizeof(targets[0]); j++) {
			struct qpol_request req = { .service = services[(i + j) % 6],
						    .argument = "",
						    .source = names[i],
						    .target = targets[j] };
			struct qpol_decision d;
			if (qpol_evaluate(policy, sys, &req, &d) == 0) {
				if (!d.reason)
					abort();
				qpol_decision_finish(&d);
			}
		}
	}
	qpol_system_free(sys);
	return 0;
}
