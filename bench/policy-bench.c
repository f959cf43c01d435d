/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Policy engine benchmark: decisions per second for generated policies of
 * 10, 1,000 and 10,000 rules, and parse time of the 10,000-rule policy.
 *
 * The rules are spread over many services (four per service) plus a fixed
 * number of '*' rules; requests are for one service whose allowing rule
 * is the last line of the policy.  With the service index, time per
 * decision should not grow with the number of rules for other services:
 * the ratio 10,000-rule / 10-rule is the figure to watch.  As a baseline
 * measured in the same run, the same sizes are evaluated with every rule
 * naming the requested service (so none can be skipped): that is what a
 * linear scan costs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qpolicy.h"

static const char bench_system[] =
	"{\"domains\": {"
	" \"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"default_dispvm\": \"dvm\"},"
	" \"work\": {\"type\": \"AppVM\", \"tags\": [\"w\"], \"default_dispvm\": \"dvm\","
	"   \"power_state\": \"Running\"},"
	" \"vault\": {\"type\": \"AppVM\", \"tags\": [\"v\"], \"power_state\": \"Halted\"},"
	" \"dvm\": {\"type\": \"AppVM\", \"tags\": [], \"template_for_dispvms\": true}"
	"}}";

#define WILDCARD_RULES 5

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* N rules; SAME_SERVICE: every filler rule names the requested service
 * (but matches no request), else they name svc.K, four per service. */
static char *generate(size_t n, int same_service, size_t *ret_len)
{
	size_t cap = n * 96 + 256, len = 0;
	char *text = malloc(cap);
	if (!text)
		abort();
	for (size_t i = 0; i + 1 < n; i++) {
		if (i % (n / WILDCARD_RULES + 1) == 0)
			len += (size_t)snprintf(text + len, cap - len,
						"*  *  @tag:nobody  @anyvm  deny\n");
		else if (same_service)
			len += (size_t)snprintf(text + len, cap - len,
						"bench.Target  +a%zu  @tag:w  @tag:v  allow\n", i);
		else
			len += (size_t)snprintf(text + len, cap - len,
						"svc.%zu  *  @tag:w  @tag:v  allow\n", i / 4);
	}
	len += (size_t)snprintf(text + len, cap - len, "bench.Target  *  work  vault  allow\n");
	*ret_len = len;
	return text;
}

/* Seconds per decision (work -> vault, bench.Target). */
static double time_decisions(const struct qpol_policy *p, const struct qpol_system *s,
			     double min_seconds)
{
	struct qpol_request req = {
		.service = "bench.Target", .argument = "", .source = "work", .target = "vault",
	};
	size_t iters = 0, batch = 1000;
	double t0 = now(), t;
	do {
		for (size_t i = 0; i < batch; i++) {
			struct qpol_decision d;
			if (qpol_evaluate(p, s, &req, &d) < 0 || d.result != QPOL_RESULT_ALLOW)
				abort();
			qpol_decision_finish(&d);
		}
		iters += batch;
		t = now() - t0;
	} while (t < min_seconds);
	return t / (double)iters;
}

static struct qpol_policy *parse(const char *text, size_t len)
{
	struct qpol_policy *p = NULL;
	if (qpol_policy_parse_text("bench.policy", text, len, NULL, &p) < 0 ||
	    !qpol_policy_is_valid(p))
		abort();
	return p;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 10, 1000, 10000 };
	double per[2][3];
	double min_seconds = argc > 1 ? atof(argv[1]) : 0.5;
	struct qpol_system *sys = NULL;

	if (qpol_system_parse_json(bench_system, sizeof(bench_system) - 1, &sys, NULL) < 0)
		abort();
	printf("policy-bench: up to %d '*' rules per policy (3 of the 10), %.2f s per measurement\n",
	       WILDCARD_RULES, min_seconds);
	for (int same = 0; same < 2; same++) {
		for (size_t k = 0; k < 3; k++) {
			size_t len;
			char *text = generate(sizes[k], same, &len);
			struct qpol_policy *p = parse(text, len);
			per[same][k] = time_decisions(p, sys, min_seconds);
			printf("  %-28s %6zu rules: %9.3f us/decision  %11.0f decisions/s\n",
			       same ? "all rules for the service" : "rules over many services",
			       qpol_policy_n_rules(p), per[same][k] * 1e6, 1.0 / per[same][k]);
			qpol_policy_free(p);
			free(text);
		}
	}
	printf("  ratio 10000/10 rules (indexed, other services): %.2f\n", per[0][2] / per[0][0]);
	printf("  ratio 10000/10 rules (baseline, same service, linear): %.2f\n",
	       per[1][2] / per[1][0]);
	printf("  baseline/indexed at 10000 rules: %.1f\n", per[1][2] / per[0][2]);

	/* Parse time of the 10,000-rule policy (best of 5). */
	size_t len;
	char *text = generate(10000, 0, &len);
	double best = 1e9;
	for (int i = 0; i < 5; i++) {
		double t0 = now();
		struct qpol_policy *p = parse(text, len);
		double t = now() - t0;
		qpol_policy_free(p);
		if (t < best)
			best = t;
	}
	printf("  parse 10000 rules (%zu bytes): %.2f ms (%.2f us/rule)\n", len, best * 1e3,
	       best * 1e6 / 10000);
	free(text);
	qpol_system_free(sys);
	return 0;
}
