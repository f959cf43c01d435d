/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqpolicy API tests: what the table-driven cases (run through qubectl)
 * cannot see: decision fields (notify, rule file/line, reason), text
 * parsing without includes, system-info validation messages, empty and
 * missing request fields, and the service index against a linear scan.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qname.h"
#include "qpolicy.h"

static const char system_json[] =
	"{\"domains\": {"
	" \"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"template_for_dispvms\": false,"
	"   \"default_dispvm\": \"dvm\", \"icon\": \"black\", \"power_state\": \"Running\"},"
	" \"work\": {\"type\": \"AppVM\", \"tags\": [\"w\"], \"template_for_dispvms\": false,"
	"   \"default_dispvm\": \"dvm\", \"icon\": \"blue\", \"power_state\": \"Running\"},"
	" \"vault\": {\"type\": \"AppVM\", \"tags\": [], \"template_for_dispvms\": false,"
	"   \"default_dispvm\": null, \"icon\": \"black\", \"power_state\": \"Halted\"},"
	" \"dvm\": {\"type\": \"AppVM\", \"tags\": [], \"template_for_dispvms\": true,"
	"   \"default_dispvm\": \"dvm\", \"icon\": \"red\", \"power_state\": \"Halted\"}"
	"}}";

static struct qpol_system *load_system(void)
{
	struct qpol_system *sys = NULL;
	char *err = NULL;
	assert_int_equal(qpol_system_parse_json(system_json, strlen(system_json), &sys, &err), 0);
	assert_null(err);
	assert_non_null(sys);
	return sys;
}

static struct qpol_policy *parse(const char *text)
{
	struct qpol_policy *p = NULL;
	assert_int_equal(qpol_policy_parse_text("test.policy", text, strlen(text), NULL, &p), 0);
	assert_non_null(p);
	return p;
}

static void eval(const struct qpol_policy *p, const struct qpol_system *s, const char *src,
		 const char *tgt, const char *svc, const char *arg, struct qpol_decision *d)
{
	struct qpol_request req = { .service = svc, .argument = arg, .source = src, .target = tgt };
	assert_int_equal(qpol_evaluate(p, s, &req, d), 0);
	assert_non_null(d->reason);
}

static void test_decision_fields(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("# comment\n"
				      "a.Deny * @anyvm @anyvm deny\n"
				      "a.Quiet * @anyvm @anyvm deny notify=no\n"
				      "a.Allow * @anyvm @anyvm allow user=bob notify=yes autostart=no\n"
				      "a.Ask * @anyvm @anyvm ask default_target=vault\n");
	struct qpol_decision d;

	assert_true(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 4);
	assert_int_equal(qpol_policy_n_files(p), 1);

	eval(p, s, "work", "vault", "a.Deny", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_true(d.notify);
	assert_string_equal(d.rule_file, "test.policy");
	assert_int_equal(d.rule_line, 2);
	assert_null(d.target);
	qpol_decision_finish(&d);

	eval(p, s, "work", "vault", "a.Quiet", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_false(d.notify);
	assert_int_equal(d.rule_line, 3);
	qpol_decision_finish(&d);

	/* autostart=no towards a running qube */
	eval(p, s, "vault", "work", "a.Allow", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "work");
	assert_string_equal(d.requested_target, "work");
	assert_string_equal(d.user, "bob");
	assert_false(d.autostart);
	assert_true(d.notify);
	assert_int_equal(d.rule_line, 4);
	qpol_decision_finish(&d);

	eval(p, s, "work", "@default", "a.Ask", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ASK);
	assert_int_equal(d.n_targets, 3);
	assert_string_equal(d.targets[0], "@dispvm:dvm");
	assert_string_equal(d.targets[1], "dvm");
	assert_string_equal(d.targets[2], "vault");
	assert_string_equal(d.default_target, "vault");
	assert_false(d.notify);
	assert_true(d.autostart);
	qpol_decision_finish(&d);

	/* no rule */
	eval(p, s, "work", "vault", "a.None", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_null(d.rule_file);
	assert_int_equal(d.rule_line, 0);
	assert_true(d.notify);
	qpol_decision_finish(&d);

	qpol_policy_free(p);
	qpol_system_free(s);
}

static void test_request_edge_cases(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("e.S * @anyvm @default allow target=vault\n"
				      "e.S * @anyvm @anyvm allow\n");
	struct qpol_decision d;
	struct qpol_request req = { .service = "e.S", .argument = "", .source = "work" };

	/* An empty target is @default. */
	eval(p, s, "work", "", "e.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "vault");
	assert_string_equal(d.requested_target, "@default");
	qpol_decision_finish(&d);

	/* Missing fields, empty service: denied, not crashed. */
	assert_int_equal(qpol_evaluate(p, s, &req, &d), 0);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_non_null(strstr(d.reason, "malformed"));
	qpol_decision_finish(&d);
	eval(p, s, "work", "vault", "", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	qpol_decision_finish(&d);
	eval(p, s, "work", "vault", "e.S", "a b", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	qpol_decision_finish(&d);

	/* NULL policy or system: deny with a reason. */
	req.target = "vault";
	assert_int_equal(qpol_evaluate(NULL, s, &req, &d), 0);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	qpol_decision_finish(&d);
	assert_int_equal(qpol_evaluate(p, NULL, &req, &d), 0);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	qpol_decision_finish(&d);

	qpol_policy_free(p);
	qpol_system_free(s);
}

static void test_invalid_policy_denies_with_reason(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("x.S * @anyvm @anyvm allow\n"
				      "x.S * @anyvm\n"
				      "!include foo\n");
	struct qpol_decision d;

	assert_false(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_diags(p), 2);
	const struct qpol_diag *g = qpol_policy_diag(p, 0);
	assert_string_equal(g->file, "test.policy");
	assert_int_equal(g->line, 2);
	g = qpol_policy_diag(p, 1);
	assert_int_equal(g->line, 3);
	assert_string_equal(g->message, "includes are not available here");
	assert_null(qpol_policy_diag(p, 2));

	eval(p, s, "work", "vault", "x.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_non_null(strstr(d.reason, "test.policy:2:"));
	qpol_decision_finish(&d);
	qpol_policy_free(p);
	qpol_system_free(s);
}

static void expect_system_error(const char *json, const char *want)
{
	struct qpol_system *sys = (struct qpol_system *)(uintptr_t)1;
	char *err = NULL;
	assert_int_equal(qpol_system_parse_json(json, strlen(json), &sys, &err), -EINVAL);
	assert_ptr_equal(sys, (struct qpol_system *)(uintptr_t)1); /* untouched */
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
	free(err);
}

static void test_system_errors(void **state)
{
	expect_system_error("", "invalid JSON");
	expect_system_error("[]", "expected a JSON object");
	expect_system_error("{}", "domains: missing");
	expect_system_error("{\"domains\": []}", "domains: expected an object");
	expect_system_error("{\"domains\": {\"9bad\": {\"type\": \"AppVM\"}}}",
			    "domains.9bad: invalid qube name");
	expect_system_error("{\"domains\": {\"work\": 1}}", "domains.work: expected an object");
	expect_system_error("{\"domains\": {\"work\": {}}}", "domains.work.type: missing");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"Foo\"}}}",
			    "domains.work.type: expected one of AppVM|");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", \"tags\": \"x\"}}}",
			    "domains.work.tags: expected an array");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", \"tags\": [1]}}}",
			    "domains.work.tags[0]: expected a string");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", "
			    "\"template_for_dispvms\": 1}}}",
			    "domains.work.template_for_dispvms: expected true or false");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", "
			    "\"default_dispvm\": \"nope\"}}}",
			    "domains.work.default_dispvm: no such qube: nope");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", \"icon\": 3}}}",
			    "domains.work.icon: expected a string");
	expect_system_error("{\"domains\": {}} x", "trailing data");
	/* "\u0000" inside a string would cut it short as a C string */
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", "
			    "\"tags\": [\"a\\u0000b\"]}}}",
			    "domains.work.tags[0]: contains a NUL character");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\", "
			    "\"default_dispvm\": \"work\\u0000x\"}}}",
			    "domains.work.default_dispvm: contains a NUL character");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AppVM\\u0000x\"}}}",
			    "domains.work.type: expected one of");

	struct qpol_system *sys = NULL;
	char *err = NULL;
	/* no qubes at all is valid (and was undefined behaviour: qsort of
	 * NULL, caught by UBSan in the sanitizer build) */
	const char *none = "{\"domains\": {}}";
	assert_int_equal(qpol_system_parse_json(none, strlen(none), &sys, &err), 0);
	assert_null(err);
	assert_false(qpol_system_has_domain(sys, "a"));
	qpol_system_free(sys);
	sys = NULL;
	const char *ok = "{\"domains\": {\"a\": {\"type\": \"AppVM\"}}}";
	assert_int_equal(qpol_system_parse_json(ok, strlen(ok), &sys, &err), 0);
	assert_true(qpol_system_has_domain(sys, "a"));
	assert_false(qpol_system_has_domain(sys, "b"));
	qpol_system_free(sys);
	assert_int_equal(qpol_system_load_file("/nonexistent/x.json", &sys, &err), -ENOENT);
	assert_non_null(err);
	free(err);
}

/* system info: uuid and internal per qube, refused clearly when malformed;
 * dom0 is the only AdminVM and owns the nil UUID. */
static void test_system_uuid_internal(void **state)
{
#define DOM(name, rest) "\"" name "\": {\"type\": \"AppVM\"" rest "}"
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": 5") "}}",
			    "domains.work.uuid: expected a string or null");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": \"\"") "}}",
			    "domains.work.uuid: expected a UUID in lower-case 8-4-4-4-12 hex form");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E01\"") "}}",
			    "domains.work.uuid: expected a UUID in lower-case");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6f1c2e0a4a1b4c2d9e3f0a1b2c3d4e01\"") "}}",
			    "domains.work.uuid: expected a UUID");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01x\"") "}}",
			    "domains.work.uuid: expected a UUID");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e0g\"") "}}",
			    "domains.work.uuid: expected a UUID");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d\\u0000e01\"") "}}",
			    "domains.work.uuid: contains a NUL character");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\"") ", "
			    DOM("vault", ", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\"") "}}",
			    "domains.work.uuid: 6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01 is also the uuid of vault");
	expect_system_error("{\"domains\": {" DOM("work", ", \"uuid\": "
			    "\"00000000-0000-0000-0000-000000000000\"") "}}",
			    "domains.work.uuid: the nil UUID is dom0's");
	expect_system_error("{\"domains\": {\"dom0\": {\"type\": \"AdminVM\", \"uuid\": "
			    "\"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\"}}}",
			    "domains.dom0.uuid: dom0's UUID is the nil UUID");
	expect_system_error("{\"domains\": {" DOM("work", ", \"internal\": \"yes\"") "}}",
			    "domains.work.internal: expected true or false");
	expect_system_error("{\"domains\": {" DOM("work", ", \"internal\": 1") "}}",
			    "domains.work.internal: expected true or false");
	expect_system_error("{\"domains\": {\"work\": {\"type\": \"AdminVM\"}}}",
			    "domains.work.type: only dom0 is an AdminVM");
	expect_system_error("{\"domains\": {\"dom0\": {\"type\": \"AppVM\"}}}",
			    "domains.dom0.type: dom0 is the AdminVM");

	struct qpol_system *sys = NULL;
	char *err = NULL, *name = NULL;
	const char *ok = "{\"domains\": {"
			 DOM("work", ", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\", "
				     "\"internal\": null") ", "
			 DOM("hid", ", \"uuid\": null, \"internal\": true") ", "
			 "\"dvm\": {\"type\": \"AppVM\", \"template_for_dispvms\": true, "
			 "\"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06\"}}}";
	assert_int_equal(qpol_system_parse_json(ok, strlen(ok), &sys, &err), 0);
	assert_null(err);
	/* dom0 is assumed, but not reported as given */
	assert_false(qpol_system_has_domain(sys, "dom0"));
	assert_true(qpol_system_has_domain(sys, "work"));
	static const char *const resolved[][2] = {
		{ "work", "work" },
		{ "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "work" },
		{ "dom0", "dom0" },
		{ "@adminvm", "dom0" },
		{ "uuid:00000000-0000-0000-0000-000000000000", "dom0" },
		{ "@dispvm:dvm", "@dispvm:dvm" },
		{ "@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06", "@dispvm:dvm" },
		/* not a template: for the disposable's creator to refuse */
		{ "@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "@dispvm:work" },
	};
	for (size_t i = 0; i < sizeof(resolved) / sizeof(resolved[0]); i++) {
		assert_int_equal(qpol_system_resolve_target(sys, resolved[i][0], &name), 0);
		assert_string_equal(name, resolved[i][1]);
		free(name);
		name = NULL;
	}
	static const char *const unknown[] = {
		"nosuch", "uuid:6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E01",
		"uuid:11111111-2222-3333-4444-555555555555", "@dispvm:nosuch",
		"@dispvm:uuid:6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E01",
	};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_int_equal(qpol_system_resolve_target(sys, unknown[i], &name), -ENOENT);
	assert_int_equal(qpol_system_resolve_target(sys, "@dispvm", &name), -EINVAL);
	assert_int_equal(qpol_system_resolve_target(sys, "@default", &name), -EINVAL);
	assert_int_equal(qpol_system_resolve_target(sys, "*", &name), -EINVAL);
	assert_null(name);
	qpol_system_free(sys);
#undef DOM
}

/* The decision's target, target_uuid and target_name for each form of
 * target; internal qubes stay out of collected ask targets. */
static void test_uuid_decisions(void **state)
{
	static const char sysjson[] =
		"{\"domains\": {"
		" \"dom0\": {\"type\": \"AdminVM\", \"tags\": [\"adm\"], \"power_state\": \"Running\"},"
		" \"work\": {\"type\": \"AppVM\", \"default_dispvm\": \"dvm\", \"power_state\": \"Running\","
		"   \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\"},"
		" \"vault\": {\"type\": \"AppVM\", \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02\"},"
		" \"plain\": {\"type\": \"AppVM\"},"
		" \"hid\": {\"type\": \"AppVM\", \"internal\": true,"
		"   \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e03\"},"
		" \"dvm\": {\"type\": \"AppVM\", \"template_for_dispvms\": true,"
		"   \"uuid\": \"6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06\"},"
		" \"idvm\": {\"type\": \"AppVM\", \"template_for_dispvms\": true, \"internal\": true}"
		"}}";
	struct qpol_system *s = NULL;
	struct qpol_decision d;
	char *err = NULL;

	assert_int_equal(qpol_system_parse_json(sysjson, strlen(sysjson), &s, &err), 0);
	struct qpol_policy *p = parse(
		"a.S * work uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02 allow\n"
		"b.S * uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01 @anyvm allow "
		"target=@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06\n"
		"c.S * * @adminvm allow target=uuid:00000000-0000-0000-0000-000000000000\n"
		"d.S * @anyvm * allow target=plain\n"
		"e.S * @anyvm * ask\n"
		"f.S * @type:AdminVM @tag:adm allow target=work\n"
		"g.S * work * allow target=uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01\n");

	/* a uuid: request is reported as written; target_uuid and name */
	eval(p, s, "work", "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02", "a.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02");
	assert_string_equal(d.target_uuid, "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02");
	assert_string_equal(d.target_name, "vault");
	assert_string_equal(d.requested_target, "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02");
	qpol_decision_finish(&d);
	/* the same rule matches the name */
	eval(p, s, "work", "vault", "a.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "vault");
	assert_string_equal(d.target_uuid, "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e02");
	qpol_decision_finish(&d);
	/* another spelling of the uuid is no qube: @default, no match */
	eval(p, s, "work", "uuid:6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E02", "a.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_string_equal(d.requested_target, "@default");
	qpol_decision_finish(&d);

	eval(p, s, "work", "plain", "b.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06");
	assert_string_equal(d.target_uuid, "@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e06");
	assert_string_equal(d.target_name, "@dispvm:dvm");
	qpol_decision_finish(&d);

	/* the admin qube: target dom0, no target_uuid, requested as written */
	eval(p, s, "work", "@adminvm", "c.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "dom0");
	assert_null(d.target_uuid);
	assert_string_equal(d.target_name, "dom0");
	assert_string_equal(d.requested_target, "@adminvm");
	qpol_decision_finish(&d);
	eval(p, s, "work", "dom0", "c.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.requested_target, "dom0");
	qpol_decision_finish(&d);
	eval(p, s, "work", "uuid:00000000-0000-0000-0000-000000000000", "c.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.requested_target, "uuid:00000000-0000-0000-0000-000000000000");
	qpol_decision_finish(&d);
	/* dom0 reaching itself through uuid: of dom0 is still a loopback */
	eval(p, s, "dom0", "@adminvm", "c.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_string_equal(d.reason, "loopback qrexec connection not supported");
	qpol_decision_finish(&d);
	/* ... and so is a qube through its own uuid: */
	eval(p, s, "work", "vault", "g.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_string_equal(d.reason, "loopback qrexec connection not supported");
	qpol_decision_finish(&d);

	/* a qube without a uuid: no target_uuid */
	eval(p, s, "work", "vault", "d.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "plain");
	assert_null(d.target_uuid);
	qpol_decision_finish(&d);

	/* dom0 as a caller matches @type:AdminVM and its tags */
	eval(p, s, "dom0", "dom0", "f.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	assert_string_equal(d.target, "work");
	qpol_decision_finish(&d);

	/* collected ask targets: names only, no internal qube (by name or
	 * as a disposable), not the caller */
	eval(p, s, "work", "@default", "e.S", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_ASK);
	static const char *const offered[] = { "@dispvm:dvm", "dom0", "dvm", "plain", "vault" };
	assert_int_equal(d.n_targets, sizeof(offered) / sizeof(offered[0]));
	for (size_t i = 0; i < d.n_targets; i++)
		assert_string_equal(d.targets[i], offered[i]);
	qpol_decision_finish(&d);
	qpol_policy_free(p);
	qpol_system_free(s);
}

/* The service index must decide exactly like a first-match scan: build a
 * policy where '*' rules and many services' rules interleave, and compare
 * every decision with the expected first matching line. */
static void test_index_matches_linear_order(void **state)
{
	struct qpol_system *s = load_system();
	size_t cap = 1 << 16, len = 0;
	char *text = malloc(cap);
	struct qpol_policy *p = NULL;
	assert_non_null(text);

	/* line 1+3k: svc.(k%7) work->vault allow target=...; 2+3k: '*' rule
	 * for source vault when k%5==0 else for a tag nobody has;
	 * 3+3k: svc.(k%7) deny for @anyvm. */
	for (int k = 0; k < 200; k++) {
		len += (size_t)snprintf(text + len, cap - len,
					"svc.%d * work vault allow target=dvm\n"
					"* * %s @anyvm deny\n"
					"svc.%d * @anyvm @anyvm deny\n",
					k % 7, k % 5 == 0 ? "vault" : "@tag:none", k % 7);
	}
	assert_int_equal(qpol_policy_parse_text("big.policy", text, len, NULL, &p), 0);
	assert_true(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 600);

	for (int svc = 0; svc < 8; svc++) {
		char name[16];
		struct qpol_decision d;
		snprintf(name, sizeof(name), "svc.%d", svc);
		/* work -> vault: first svc.N allow line is 1 + 3*N (N < 7). */
		eval(p, s, "work", "vault", name, "", &d);
		if (svc < 7) {
			assert_int_equal(d.result, QPOL_RESULT_ALLOW);
			assert_int_equal(d.rule_line, 1 + 3 * svc);
		} else {
			assert_int_equal(d.result, QPOL_RESULT_DENY);
			assert_null(d.rule_file);
		}
		qpol_decision_finish(&d);
		/* vault -> work: the '*' rule at line 2 (k=0) comes first. */
		eval(p, s, "vault", "work", name, "", &d);
		assert_int_equal(d.result, QPOL_RESULT_DENY);
		assert_int_equal(d.rule_line, 2);
		qpol_decision_finish(&d);
		/* dom0 -> work: @anyvm never matches dom0 as a source. */
		eval(p, s, "dom0", "work", name, "", &d);
		assert_int_equal(d.result, QPOL_RESULT_DENY);
		assert_null(d.rule_file);
		qpol_decision_finish(&d);
	}
	free(text);
	qpol_policy_free(p);
	qpol_system_free(s);
}

static void test_parse_text_edge_cases(void **state)
{
	struct qpol_policy *p = NULL;

	/* Not NUL-terminated: only LEN bytes are read. */
	const char buf[] = "n.S * @anyvm @anyvm allow\nGARBAGE";
	assert_int_equal(qpol_policy_parse_text("t", buf, 26, NULL, &p), 0);
	assert_true(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 1);
	qpol_policy_free(p);

	/* Empty text: valid, no rules. */
	p = NULL;
	assert_int_equal(qpol_policy_parse_text("t", NULL, 0, NULL, &p), 0);
	assert_true(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 0);
	qpol_policy_free(p);

	/* Missing directory: an errno, no object. */
	p = (struct qpol_policy *)(uintptr_t)1;
	assert_int_equal(qpol_policy_load_dir("/nonexistent-qube-policy-dir", &p), -ENOENT);
	assert_ptr_equal(p, (struct qpol_policy *)(uintptr_t)1);

	qpol_policy_free(NULL);
	qpol_system_free(NULL);
	qpol_decision_finish(NULL);
	assert_string_equal(qpol_result_to_string(QPOL_RESULT_ALLOW), "allow");
	assert_string_equal(qpol_result_to_string(QPOL_RESULT_ASK), "ask");
	assert_string_equal(qpol_result_to_string(QPOL_RESULT_DENY), "deny");
}

/* One loaded policy evaluated from several threads at once (the header
 * promises this): every thread must get the single-threaded decisions. */
struct thread_arg {
	const struct qpol_policy *p;
	const struct qpol_system *s;
	int bad;
};

static void *eval_thread(void *opaque)
{
	struct thread_arg *a = opaque;
	for (int i = 0; i < 2000; i++) {
		struct qpol_decision d;
		struct qpol_request req = { .service = i % 2 ? "t.Ask" : "t.Allow", .argument = "",
					    .source = "work", .target = i % 3 ? "vault" : "@dispvm" };
		if (qpol_evaluate(a->p, a->s, &req, &d) < 0) {
			a->bad++;
			continue;
		}
		if (i % 2 == 0 && (d.result != QPOL_RESULT_ALLOW || !d.target ||
				   strcmp(d.target, i % 3 ? "vault" : "@dispvm:dvm") != 0))
			a->bad++;
		if (i % 2 == 1 && (d.result != QPOL_RESULT_ASK || d.n_targets != 3))
			a->bad++;
		qpol_decision_finish(&d);
	}
	return NULL;
}

static void test_concurrent_evaluation(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("t.Allow * @anyvm @anyvm allow\n"
				      "t.Ask * @anyvm @anyvm ask\n");
	pthread_t th[4];
	struct thread_arg args[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ .p = p, .s = s };
		assert_int_equal(pthread_create(&th[i], NULL, eval_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].bad, 0);
	}
	qpol_policy_free(p);
	qpol_system_free(s);
}

/* The evaluator applies the name rules of qname.h, the same function the
 * qrpc codec and qube-call use: a request they could never carry is not
 * evaluated, even where a wildcard rule would allow it.  (It used to check
 * only the characters: ".x", 65-byte services and arguments, and targets
 * such as "a/b" were evaluated, the last as @default.) */
static void test_request_names_follow_qname(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("* * @anyvm @anyvm allow\n"
				      "* * @anyvm @default allow target=vault\n");
	struct qpol_decision d;
	char long_name[QNAME_MAX_SERVICE + 2];
	static const char *const bad_targets[] = {
		"a/b", "-x", "1abc", "vault ", "@dispvm:", "@dispvm:@tag:x", "@anyvm",
		"abcdefghijabcdefghijabcdefghijab", /* 32 bytes */
		/* uuid: takes exactly the 8-4-4-4-12 hex form */
		"uuid:", "uuid:x", "uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e0",
		"uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e011", "uuid:6f1c2e0a4a1b-4c2d-9e3f-0a1b2c3d4e011",
		"uuid:6f1c2e0g-4a1b-4c2d-9e3f-0a1b2c3d4e01", "uuid:{6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01}",
		"UUID:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "@dispvm:uuid:6f1c2e0a",
		"@dispvm:uuid:", "@adminvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01",
	};
	static const char *const good_targets[] = {
		"uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "uuid:6F1C2E0A-4A1B-4C2D-9E3F-0A1B2C3D4E01",
		"uuid:00000000-0000-0000-0000-000000000000",
		"@dispvm:uuid:6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01", "@dispvm:dvm", "dom0",
	};
	for (size_t i = 0; i < sizeof(good_targets) / sizeof(good_targets[0]); i++)
		assert_true(qname_target_is_valid(good_targets[i]));
	assert_true(qname_uuid_is_valid("6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e01"));
	assert_false(qname_uuid_is_valid("6f1c2e0a-4a1b-4c2d-9e3f-0a1b2c3d4e0"));
	assert_false(qname_uuid_is_valid(NULL));

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';

	/* sanity: the rule does allow well-formed requests */
	eval(p, s, "work", "vault", "x.Ok", "arg+1", &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	qpol_decision_finish(&d);
	long_name[QNAME_MAX_SERVICE] = '\0'; /* 64 bytes: still valid */
	eval(p, s, "work", "vault", long_name, long_name, &d);
	assert_int_equal(d.result, QPOL_RESULT_ALLOW);
	qpol_decision_finish(&d);
	long_name[QNAME_MAX_SERVICE] = 'a'; /* 65 bytes */

	eval(p, s, "work", "vault", ".hidden", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_non_null(strstr(d.reason, "malformed request: invalid service name"));
	qpol_decision_finish(&d);
	eval(p, s, "work", "vault", "..", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	qpol_decision_finish(&d);
	eval(p, s, "work", "vault", long_name, "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_non_null(strstr(d.reason, "malformed request: invalid service name"));
	qpol_decision_finish(&d);
	eval(p, s, "work", "vault", "x.Ok", long_name, &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_non_null(strstr(d.reason, "malformed request: invalid service argument"));
	qpol_decision_finish(&d);
	for (size_t i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
		assert_false(qname_target_is_valid(bad_targets[i]));
		eval(p, s, "work", bad_targets[i], "x.Ok", "", &d);
		assert_int_equal(d.result, QPOL_RESULT_DENY);
		assert_non_null(strstr(d.reason, "malformed request"));
		qpol_decision_finish(&d);
	}
	qpol_policy_free(p);
	qpol_system_free(s);
}

/* A decision that names its rule (rule_file, rule_line) does not repeat
 * that location in its reason: "qubectl policy eval --explain" and the
 * broker's log print FILE:LINE beside the reason. */
static void test_reason_does_not_repeat_location(void **state)
{
	struct qpol_system *s = load_system();
	struct qpol_policy *p = parse("r.Allow * @anyvm @anyvm allow\n"
				      "r.Deny * @anyvm @anyvm deny\n"
				      "r.Ask * @anyvm @anyvm ask\n"
				      "r.NoStart * @anyvm @anyvm allow autostart=no\n"
				      "r.Loop * @anyvm @anyvm allow target=work\n"
				      "r.Def * @anyvm @default allow target=@dispvm\n"
				      "r.AskNone * @anyvm @anyvm ask target=vault autostart=no\n");
	static const struct {
		const char *service, *target;
		enum qpol_result result;
		unsigned line;
		const char *reason;
	} rows[] = {
		{ "r.Allow", "vault", QPOL_RESULT_ALLOW, 1, "allowed by rule" },
		{ "r.Deny", "vault", QPOL_RESULT_DENY, 2, "denied by rule" },
		{ "r.Ask", "vault", QPOL_RESULT_ASK, 3, "ask by rule" },
		{ "r.NoStart", "vault", QPOL_RESULT_DENY, 4,
		  "target vault is denied because it would require autostart" },
		{ "r.Loop", "vault", QPOL_RESULT_DENY, 5, "loopback qrexec connection not supported" },
		{ "r.AskNone", "vault", QPOL_RESULT_DENY, 7,
		  "policy defines 'ask' action but no target is available to choose from" },
	};
	struct qpol_decision d;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		eval(p, s, "work", rows[i].target, rows[i].service, "", &d);
		assert_int_equal(d.result, rows[i].result);
		assert_string_equal(d.rule_file, "test.policy");
		assert_int_equal(d.rule_line, rows[i].line);
		assert_string_equal(d.reason, rows[i].reason);
		assert_null(strstr(d.reason, "test.policy"));
		qpol_decision_finish(&d);
	}
	/* the disposable's base comes from "vault", which has none */
	eval(p, s, "vault", "@default", "r.Def", "", &d);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_int_equal(d.rule_line, 6);
	assert_null(strstr(d.reason, "test.policy"));
	qpol_decision_finish(&d);
	qpol_policy_free(p);
	qpol_system_free(s);
}

/* Hostile files cannot make a load unbounded: at most 100,000 rules (one
 * diagnostic at the first rule over), and at most 64 MiB read over all the
 * files of a load, however often they include each other. */
static void test_load_limits(void **state)
{
	const char *line = "a.S * @anyvm @anyvm deny\n";
	size_t n = 100001, ll = strlen(line);
	char *text = malloc(n * ll);
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		memcpy(text + i * ll, line, ll);
	struct qpol_policy *p = NULL;
	assert_int_equal(qpol_policy_parse_text("many.policy", text, n * ll, NULL, &p), 0);
	free(text);
	assert_false(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 100000);
	assert_int_equal(qpol_policy_n_diags(p), 1);
	const struct qpol_diag *g = qpol_policy_diag(p, 0);
	assert_int_equal(g->line, 100001);
	assert_string_equal(g->message, "too many rules (limit 100000)");
	qpol_policy_free(p);

	/* five includes of a 16 MiB file (sparse: cheap to make and read) */
	char dir[] = "/tmp/qpol-limits.XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/big", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 16 << 20), 0);
	fclose(f);
	snprintf(path, sizeof(path), "%s/10-a.policy", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 5; i++)
		fprintf(f, "!include big\n");
	fclose(f);
	p = NULL;
	assert_int_equal(qpol_policy_load_dir(dir, &p), 0);
	assert_false(qpol_policy_is_valid(p));
	bool found = false;
	for (size_t i = 0; i < qpol_policy_n_diags(p); i++) {
		g = qpol_policy_diag(p, i);
		if (!found && strstr(g->message, "exceed 64 MiB")) {
			found = true;
			/* 10-a.policy's own bytes + 3 x 16 MiB leave less than
			 * 16 MiB: the fourth !include is over */
			assert_int_equal(g->line, 4);
			assert_non_null(strstr(g->file, "10-a.policy"));
		}
	}
	assert_true(found);
	qpol_policy_free(p);
	unlink(path);
	snprintf(path, sizeof(path), "%s/big", dir);
	unlink(path);
	rmdir(dir);
}

static void put(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool has_dep(const struct qpol_policy *p, const char *path, enum qpol_dep_kind kind)
{
	size_t hits = 0;
	for (size_t i = 0; i < qpol_policy_n_deps(p); i++) {
		enum qpol_dep_kind k;
		const char *d = qpol_policy_dep(p, i, &k);
		assert_non_null(d);
		if (k == kind && strcmp(d, path) == 0)
			hits++;
	}
	assert_true(hits <= 1); /* each once */
	return hits == 1;
}

/* The dependency list names every file and directory a load read or tried
 * to read, so that a daemon can watch them: the top directory, files in
 * it, an !include in a subdirectory, an !include-dir and its file, a
 * missing !include target, and both names of a file behind a symlink. */
static void test_deps(void **state)
{
	char dir[] = "/tmp/qpol-deps.XXXXXX", sub[128], path[256], other[256], real[256];
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/include", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(other, sizeof(other), "%s/more", dir);
	assert_int_equal(mkdir(other, 0755), 0);
	put(dir, "10-a.policy",
	    "!include include/local\n!include-dir more\n!include include/missing\n"
	    "!include include/link\n");
	put(sub, "local", "a.B * @anyvm @anyvm deny\n");
	put(sub, "target", "c.D * @anyvm @anyvm deny\n");
	put(other, "20-x.policy", "e.F * @anyvm @anyvm deny\n");
	snprintf(path, sizeof(path), "%s/link", sub);
	assert_int_equal(symlink("target", path), 0);

	struct qpol_policy *p = NULL;
	assert_int_equal(qpol_policy_load_dir(dir, &p), 0);
	assert_false(qpol_policy_is_valid(p)); /* include/missing */
	assert_true(has_dep(p, dir, QPOL_DEP_DIR));
	snprintf(path, sizeof(path), "%s/10-a.policy", dir);
	assert_true(has_dep(p, path, QPOL_DEP_FILE));
	snprintf(path, sizeof(path), "%s/include/local", dir);
	assert_true(has_dep(p, path, QPOL_DEP_FILE));
	snprintf(path, sizeof(path), "%s/more", dir);
	assert_true(has_dep(p, path, QPOL_DEP_DIR));
	snprintf(path, sizeof(path), "%s/more/20-x.policy", dir);
	assert_true(has_dep(p, path, QPOL_DEP_FILE));
	snprintf(path, sizeof(path), "%s/include/missing", dir);
	assert_true(has_dep(p, path, QPOL_DEP_FILE));
	snprintf(path, sizeof(path), "%s/include/link", dir);
	assert_true(has_dep(p, path, QPOL_DEP_FILE));
	/* the resolved name of the link (realpath: /tmp may itself be a link) */
	snprintf(path, sizeof(path), "%s/include/target", dir);
	assert_non_null(realpath(path, real));
	assert_true(has_dep(p, real, QPOL_DEP_FILE));
	assert_null(qpol_policy_dep(p, qpol_policy_n_deps(p), NULL));
	assert_int_equal(qpol_policy_n_deps(NULL), 0);
	qpol_policy_free(p);

	/* a missing top directory is a dependency too (it may appear) */
	snprintf(path, sizeof(path), "%s/include/link", dir);
	unlink(path);
	const char *names[] = { "include/local", "include/target", "include", "more/20-x.policy",
				"more", "10-a.policy" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		assert_int_equal(remove(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

/* user= values: portable user names, nothing a shell or a path could
 * misread. */
static void test_user_names(void **state)
{
	const char *good[] = { "user", "root", "a", "www-data", "_apt", "x.y", "U1",
			       "abcdefghijklmnopqrstuvwxyz012345" };
	const char *bad[] = { "", "-root", ".hidden", "a/b", "a b", "a$", "r\xc3\xb6t",
			      "abcdefghijklmnopqrstuvwxyz0123456" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(qname_user_is_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(qname_user_is_valid(bad[i]));
	assert_false(qname_user_is_valid(NULL));
}

/* An empty policy directory is a valid policy that denies everything (and
 * loading it sorts no file names: qsort must not see a NULL array). */
static void test_empty_dir(void **state)
{
	char dir[] = "/tmp/qpol-empty.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct qpol_policy *p = NULL;
	assert_int_equal(qpol_policy_load_dir(dir, &p), 0);
	assert_true(qpol_policy_is_valid(p));
	assert_int_equal(qpol_policy_n_rules(p), 0);
	struct qpol_system *sys = NULL;
	char *err = NULL;
	const char *json = "{\"domains\": {\"a\": {\"type\": \"AppVM\"}, "
			   "\"b\": {\"type\": \"AppVM\"}}}";
	assert_int_equal(qpol_system_parse_json(json, strlen(json), &sys, &err), 0);
	struct qpol_request req = { .service = "x.Y", .argument = "", .source = "a", .target = "b" };
	struct qpol_decision d;
	assert_int_equal(qpol_evaluate(p, sys, &req, &d), 0);
	assert_int_equal(d.result, QPOL_RESULT_DENY);
	assert_null(d.rule_file);
	qpol_decision_finish(&d);
	qpol_system_free(sys);
	qpol_policy_free(p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_dir),
		cmocka_unit_test(test_deps),
		cmocka_unit_test(test_user_names),
		cmocka_unit_test(test_decision_fields),
		cmocka_unit_test(test_request_edge_cases),
		cmocka_unit_test(test_invalid_policy_denies_with_reason),
		cmocka_unit_test(test_system_errors),
		cmocka_unit_test(test_system_uuid_internal),
		cmocka_unit_test(test_uuid_decisions),
		cmocka_unit_test(test_index_matches_linear_order),
		cmocka_unit_test(test_parse_text_edge_cases),
		cmocka_unit_test(test_concurrent_evaluation),
		cmocka_unit_test(test_request_names_follow_qname),
		cmocka_unit_test(test_reason_does_not_repeat_location),
		cmocka_unit_test(test_load_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
