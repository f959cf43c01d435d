/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the libqrpc codec, name rules and state machine. */
#include "qname.h"
#include "qrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD + 16];

static struct qrpc_msg hello(uint32_t lo, uint32_t hi)
{
	struct qrpc_msg m = { .type = QRPC_MSG_HELLO };
	m.u.hello.version_min = lo;
	m.u.hello.version_max = hi;
	return m;
}

static struct qrpc_msg call_request(const char *target, const char *service, const char *arg)
{
	struct qrpc_msg m = { .type = QRPC_MSG_CALL_REQUEST };
	snprintf(m.u.call_request.target, sizeof(m.u.call_request.target), "%s", target);
	snprintf(m.u.call_request.service, sizeof(m.u.call_request.service), "%s", service);
	snprintf(m.u.call_request.argument, sizeof(m.u.call_request.argument), "%s", arg);
	return m;
}

static struct qrpc_msg call_result(uint32_t status)
{
	struct qrpc_msg m = { .type = QRPC_MSG_CALL_RESULT };
	m.u.call_result.status = status;
	m.u.call_result.exit_code = status == QRPC_CALL_ALLOWED   ? 0
				    : status == QRPC_CALL_REFUSED ? QRPC_EXIT_REFUSED
								  : QRPC_EXIT_RPC_FAILED;
	return m;
}

static struct qrpc_msg service_start(const char *src, const char *svc, const char *arg,
				     const char *target)
{
	struct qrpc_msg m = { .type = QRPC_MSG_SERVICE_START };
	snprintf(m.u.service_start.source, sizeof(m.u.service_start.source), "%s", src);
	snprintf(m.u.service_start.service, sizeof(m.u.service_start.service), "%s", svc);
	snprintf(m.u.service_start.argument, sizeof(m.u.service_start.argument), "%s", arg);
	snprintf(m.u.service_start.requested_target, sizeof(m.u.service_start.requested_target),
		 "%s", target);
	return m;
}

static struct qrpc_msg data(uint32_t type, const void *p, uint32_t len)
{
	struct qrpc_msg m = { .type = type };
	m.u.data.data = p;
	m.u.data.len = len;
	return m;
}

static struct qrpc_msg eof(uint32_t stream)
{
	struct qrpc_msg m = { .type = QRPC_MSG_EOF };
	m.u.eof.stream = stream;
	return m;
}

static struct qrpc_msg exitmsg(uint32_t code)
{
	struct qrpc_msg m = { .type = QRPC_MSG_EXIT };
	m.u.exit.code = code;
	return m;
}

/* Encodes M and decodes it back with qrpc_msg_parse. */
static int roundtrip(const struct qrpc_msg *m, struct qrpc_msg *out, size_t *ret_len)
{
	size_t len = 0, used = 0;
	int r = qrpc_msg_encode(m, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	r = qrpc_msg_parse(buf, len, out, &used);
	if (r < 0)
		return r;
	if (used != len)
		return -E2BIG;
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* Decodes raw bytes (header included). */
static int decode_raw(const uint8_t *raw, size_t len, struct qrpc_msg *out)
{
	size_t used = 0;
	int r = qrpc_msg_parse(raw, len, out, &used);
	if (r == 0 && used != len)
		return -E2BIG; /* parse left bytes over: they would be the next message */
	return r;
}

static void test_roundtrips(void)
{
	struct qrpc_msg m, out;
	size_t len;

	m = hello(1, 7);
	CHECK_INT(roundtrip(&m, &out, &len), 0);
	CHECK_INT(len, 16);
	CHECK_INT(out.u.hello.version_min, 1);
	CHECK_INT(out.u.hello.version_max, 7);
	/* Byte-exact: type 1, len 8, min 1, max 7, all little-endian. */
	static const uint8_t hello_bytes[] = { 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0 };
	CHECK(memcmp(buf, hello_bytes, sizeof(hello_bytes)) == 0);

	m = call_request("work", "qubes.Filecopy", "");
	CHECK_INT(roundtrip(&m, &out, &len), 0);
	CHECK_STR(out.u.call_request.target, "work");
	CHECK_STR(out.u.call_request.service, "qubes.Filecopy");
	CHECK_STR(out.u.call_request.argument, "");
	static const uint8_t req_bytes[] = { 0x10, 0, 0, 0, 21, 0, 0, 0, 4, 'w', 'o', 'r', 'k',
					     14, 'q', 'u', 'b', 'e', 's', '.', 'F', 'i', 'l', 'e',
					     'c', 'o', 'p', 'y', 0 };
	CHECK_INT(len, sizeof(req_bytes));
	CHECK(memcmp(buf, req_bytes, sizeof(req_bytes)) == 0);

	m = call_request("@dispvm:dvm-tpl", "my.Svc_1-x", "a+b.c-d_e");
	CHECK_INT(roundtrip(&m, &out, NULL), 0);
	CHECK_STR(out.u.call_request.target, "@dispvm:dvm-tpl");
	CHECK_STR(out.u.call_request.argument, "a+b.c-d_e");

	for (uint32_t st = 0; st <= 2; st++) {
		m = call_result(st);
		CHECK_INT(roundtrip(&m, &out, &len), 0);
		CHECK_INT(len, 16);
		CHECK_INT(out.u.call_result.status, st);
		CHECK_INT(out.u.call_result.exit_code, m.u.call_result.exit_code);
	}

	m = service_start("personal", "qubes.Foo", "bar", "@default");
	CHECK_INT(roundtrip(&m, &out, NULL), 0);
	CHECK_STR(out.u.service_start.source, "personal");
	CHECK_STR(out.u.service_start.service, "qubes.Foo");
	CHECK_STR(out.u.service_start.argument, "bar");
	CHECK_STR(out.u.service_start.requested_target, "@default");

	/* Longest names of every field fit exactly at the cap. */
	char q[QRPC_MAX_QUBE + 1], s[QRPC_MAX_SERVICE + 1], a[QRPC_MAX_ARGUMENT + 1],
		t[QRPC_MAX_TARGET + 1];
	memset(q, 'q', QRPC_MAX_QUBE);
	q[QRPC_MAX_QUBE] = 0;
	memset(s, 's', QRPC_MAX_SERVICE);
	s[QRPC_MAX_SERVICE] = 0;
	memset(a, 'a', QRPC_MAX_ARGUMENT);
	a[QRPC_MAX_ARGUMENT] = 0;
	memcpy(t, "@dispvm:", 8);
	memcpy(t + 8, q, QRPC_MAX_QUBE + 1);
	m = service_start(q, s, a, t);
	CHECK_INT(roundtrip(&m, &out, &len), 0);
	CHECK_INT(len, QRPC_HEADER_SIZE + 4 + QRPC_MAX_QUBE + QRPC_MAX_SERVICE +
			       QRPC_MAX_ARGUMENT + 8 + QRPC_MAX_QUBE);
	CHECK(len - QRPC_HEADER_SIZE <= qrpc_max_payload(QRPC_MSG_SERVICE_START));

	static uint8_t big[QRPC_MAX_DATA];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	for (uint32_t ty = QRPC_MSG_STDIN; ty <= QRPC_MSG_STDERR; ty++) {
		m = data(ty, big, QRPC_MAX_DATA);
		CHECK_INT(roundtrip(&m, &out, &len), 0);
		CHECK_INT(out.type, ty);
		CHECK_INT(out.u.data.len, QRPC_MAX_DATA);
		CHECK(memcmp(out.u.data.data, big, QRPC_MAX_DATA) == 0);
		m = data(ty, "x", 1);
		CHECK_INT(roundtrip(&m, &out, &len), 0);
		CHECK_INT(len, 9);
	}
	for (uint32_t st = 0; st <= 2; st++) {
		m = eof(st);
		CHECK_INT(roundtrip(&m, &out, NULL), 0);
		CHECK_INT(out.u.eof.stream, st);
	}
	m = exitmsg(255);
	CHECK_INT(roundtrip(&m, &out, NULL), 0);
	CHECK_INT(out.u.exit.code, 255);

	/* Two messages back to back: parse takes exactly the first. */
	size_t l1, l2, used;
	m = exitmsg(3);
	CHECK_INT(qrpc_msg_encode(&m, buf, sizeof(buf), &l1), 0);
	m = eof(1);
	CHECK_INT(qrpc_msg_encode(&m, buf + l1, sizeof(buf) - l1, &l2), 0);
	CHECK_INT(qrpc_msg_parse(buf, l1 + l2, &out, &used), 0);
	CHECK_INT(used, l1);
	CHECK_INT(out.type, QRPC_MSG_EXIT);
	CHECK_INT(qrpc_msg_parse(buf + used, l2, &out, &used), 0);
	CHECK_INT(out.type, QRPC_MSG_EOF);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Builds header + payload in RAW, returns total length. */
static size_t raw_msg(uint8_t *raw, uint32_t type, const void *payload, uint32_t len)
{
	put32(raw, type);
	put32(raw + 4, len);
	memcpy(raw + 8, payload, len);
	return 8 + (size_t)len;
}

static void test_rejections(void)
{
	static uint8_t raw[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD + 64];
	struct qrpc_msg out, m;
	struct qrpc_header h;
	size_t len, used;

	/* Unknown types. */
	uint32_t unknown[] = { 0, 2, 0x12, 0x22, 0x34, 0x41, 0xffffffffu };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		len = raw_msg(raw, unknown[i], "", 0);
		CHECK_INT(qrpc_header_decode(raw, &h), -EPROTO);
		CHECK_INT(decode_raw(raw, len, &out), -EPROTO);
		CHECK_INT(qrpc_max_payload(unknown[i]), 0);
	}

	/* Oversized lengths are refused from the header alone, before the
	 * payload has arrived (so no reader waits for or buffers it). */
	put32(raw, QRPC_MSG_STDOUT);
	put32(raw + 4, QRPC_MAX_DATA + 1);
	CHECK_INT(qrpc_header_decode(raw, &h), -EMSGSIZE);
	CHECK_INT(qrpc_msg_parse(raw, 8, &out, &used), -EMSGSIZE);
	put32(raw + 4, 0xffffffffu);
	CHECK_INT(qrpc_msg_parse(raw, 8, &out, &used), -EMSGSIZE);
	put32(raw, QRPC_MSG_HELLO);
	put32(raw + 4, 9);
	CHECK_INT(qrpc_header_decode(raw, &h), -EMSGSIZE);
	put32(raw, QRPC_MSG_EXIT);
	put32(raw + 4, 5);
	CHECK_INT(qrpc_header_decode(raw, &h), -EMSGSIZE);
	put32(raw, QRPC_MSG_CALL_REQUEST);
	put32(raw + 4, qrpc_max_payload(QRPC_MSG_CALL_REQUEST) + 1);
	CHECK_INT(qrpc_header_decode(raw, &h), -EMSGSIZE);

	/* Truncation: incomplete buffers wait, short payloads are invalid. */
	m = call_request("work", "svc", "arg");
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), 0);
	for (size_t cut = 0; cut < len; cut++)
		CHECK_INT(qrpc_msg_parse(raw, cut, &out, &used), -EAGAIN);
	put32(raw + 4, (uint32_t)(len - 8 - 1)); /* drop the last argument byte */
	CHECK_INT(decode_raw(raw, len - 1, &out), -EBADMSG);
	uint8_t four[4] = { 1, 0, 0, 0 };
	len = raw_msg(raw, QRPC_MSG_HELLO, four, 4);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	len = raw_msg(raw, QRPC_MSG_EOF, four, 2);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	len = raw_msg(raw, QRPC_MSG_EXIT, "", 0);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, "", 0);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	/* string length byte points past the end */
	uint8_t p1[] = { 4, 'w', 'o', 'r' };
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p1, sizeof(p1));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);

	/* Trailing bytes. */
	uint8_t p2[] = { 4, 'w', 'o', 'r', 'k', 3, 's', 'v', 'c', 0, 'X' };
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p2, sizeof(p2));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p2, sizeof(p2) - 1);
	CHECK_INT(decode_raw(raw, len, &out), 0); /* the same without the extra byte */
	uint8_t p3[] = { 1, 'a', 1, 's', 0, 1, 'b', 0 }; /* SERVICE_START + 1 byte */
	len = raw_msg(raw, QRPC_MSG_SERVICE_START, p3, sizeof(p3));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);

	/* NUL inside names. */
	uint8_t p4[] = { 4, 'w', 0, 'r', 'k', 3, 's', 'v', 'c', 0 };
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p4, sizeof(p4));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	uint8_t p5[] = { 4, 'w', 'o', 'r', 'k', 3, 's', 'v', 0, 1, 0 };
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p5, sizeof(p5));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	uint8_t p6[] = { 4, 'w', 'o', 'r', 'k', 3, 's', 'v', 'c', 1, 0 };
	len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p6, sizeof(p6));
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);

	/* Invalid characters and shapes, each in its own field. */
	struct {
		const char *target, *service, *arg;
	} bad_req[] = {
		{ "", "svc", "" },          { "9work", "svc", "" },      { "wo rk", "svc", "" },
		{ "@anyvm", "svc", "" },     { "@dispvm:", "svc", "" },   { "@dispvm:@x", "svc", "" },
		{ "work", "", "" },          { "work", "s/vc", "" },      { "work", "s+vc", "" },
		{ "work", ".svc", "" },      { "work", "..", "" },        { "work", "s\xc3\xa9", "" },
		{ "work", "svc", "a/b" },    { "work", "svc", "a b" },    { "work", "svc", "a\n" },
		{ "work", "svc", "a:b" },    { "work", "s;c", "" },       { "work/x", "svc", "" },
	};
	for (size_t i = 0; i < sizeof(bad_req) / sizeof(bad_req[0]); i++) {
		uint8_t p[256];
		size_t n = 0;
		const char *f[3] = { bad_req[i].target, bad_req[i].service, bad_req[i].arg };
		for (int k = 0; k < 3; k++) {
			p[n++] = (uint8_t)strlen(f[k]);
			memcpy(p + n, f[k], strlen(f[k]));
			n += strlen(f[k]);
		}
		len = raw_msg(raw, QRPC_MSG_CALL_REQUEST, p, (uint32_t)n);
		int r = decode_raw(raw, len, &out);
		CHECK_INT(r, -EBADMSG);
		if (r != -EBADMSG)
			fprintf(stderr, "  (case %zu)\n", i);
		/* The encoder refuses what the decoder would. */
		m = call_request(bad_req[i].target, bad_req[i].service, bad_req[i].arg);
		CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	}
	/* Over-long strings: the length byte exceeds the field's cap. */
	{
		uint8_t p[256];
		size_t n = 0;
		p[n++] = 32; /* qube name, cap 31 */
		memset(p + n, 'a', 32);
		n += 32;
		p[n++] = 1;
		p[n++] = 's';
		p[n++] = 0;
		p[n++] = 1;
		p[n++] = 'w';
		len = raw_msg(raw, QRPC_MSG_SERVICE_START, p, (uint32_t)n);
		CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	}

	/* Empty data, unknown stream, exit code, result and hello shapes. */
	len = raw_msg(raw, QRPC_MSG_STDIN, "", 0);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	uint8_t v[8];
	put32(v, 3);
	len = raw_msg(raw, QRPC_MSG_EOF, v, 4);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	put32(v, 256);
	len = raw_msg(raw, QRPC_MSG_EXIT, v, 4);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	uint32_t bad_results[][2] = { { 0, 1 }, { 1, 0 }, { 1, 125 }, { 2, 126 }, { 3, 0 }, { 2, 0 } };
	for (size_t i = 0; i < sizeof(bad_results) / sizeof(bad_results[0]); i++) {
		put32(v, bad_results[i][0]);
		put32(v + 4, bad_results[i][1]);
		len = raw_msg(raw, QRPC_MSG_CALL_RESULT, v, 8);
		CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	}
	put32(v, 0);
	put32(v + 4, 1);
	len = raw_msg(raw, QRPC_MSG_HELLO, v, 8);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);
	put32(v, 3);
	put32(v + 4, 2);
	len = raw_msg(raw, QRPC_MSG_HELLO, v, 8);
	CHECK_INT(decode_raw(raw, len, &out), -EBADMSG);

	/* Encoder: invalid messages and short buffers. */
	m = hello(2, 1);
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = data(QRPC_MSG_STDOUT, "x", 0);
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = data(QRPC_MSG_STDOUT, raw, QRPC_MAX_DATA + 1);
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = exitmsg(256);
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = eof(7);
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = call_result(QRPC_CALL_REFUSED);
	m.u.call_result.exit_code = 1;
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = (struct qrpc_msg){ .type = 0x99 };
	CHECK_INT(qrpc_msg_encode(&m, raw, sizeof(raw), &len), -EINVAL);
	m = hello(1, 1);
	len = 12345;
	CHECK_INT(qrpc_msg_encode(&m, raw, 15, &len), -ENOBUFS);
	CHECK_INT(len, 12345); /* ret_len untouched on failure */
	CHECK_INT(qrpc_msg_encode(&m, raw, 16, &len), 0);
}

static void test_names(void)
{
	CHECK(qrpc_qube_name_is_valid("a"));
	CHECK(qrpc_qube_name_is_valid("sys-net"));
	CHECK(qrpc_qube_name_is_valid("Work_2.x"));
	CHECK(qrpc_qube_name_is_valid("abcdefghijklmnopqrstuvwxyz01234")); /* 31 */
	CHECK(!qrpc_qube_name_is_valid("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
	CHECK(!qrpc_qube_name_is_valid(""));
	CHECK(!qrpc_qube_name_is_valid("-x"));
	CHECK(!qrpc_qube_name_is_valid("_x"));
	CHECK(!qrpc_qube_name_is_valid("1x"));
	CHECK(!qrpc_qube_name_is_valid("a+b"));
	CHECK(!qrpc_qube_name_is_valid("@default"));
	CHECK(!qrpc_qube_name_is_valid(NULL));

	CHECK(qrpc_service_name_is_valid("qubes.Filecopy"));
	CHECK(qrpc_service_name_is_valid("_x-1"));
	CHECK(!qrpc_service_name_is_valid("a+b"));
	CHECK(!qrpc_service_name_is_valid(".hidden"));
	CHECK(!qrpc_service_name_is_valid("a/b"));
	CHECK(!qrpc_service_name_is_valid(""));

	CHECK(qrpc_argument_is_valid(""));
	CHECK(qrpc_argument_is_valid(".."));
	CHECK(qrpc_argument_is_valid("+x+"));
	CHECK(!qrpc_argument_is_valid("../x"));
	CHECK(!qrpc_argument_is_valid("a=b"));

	CHECK(qrpc_target_is_valid("work"));
	CHECK(qrpc_target_is_valid("@default"));
	CHECK(qrpc_target_is_valid("@adminvm"));
	CHECK(qrpc_target_is_valid("@dispvm"));
	CHECK(qrpc_target_is_valid("@dispvm:fedora-dvm"));
	CHECK(!qrpc_target_is_valid("@dispvm:"));
	CHECK(!qrpc_target_is_valid("@anyvm"));
	CHECK(!qrpc_target_is_valid("@tag:x"));
	CHECK(!qrpc_target_is_valid("@type:AppVM"));
	CHECK(!qrpc_target_is_valid("@default "));
	CHECK(!qrpc_target_is_valid("@DEFAULT"));

	CHECK_STR(qrpc_msg_type_to_string(QRPC_MSG_SERVICE_START), "SERVICE_START");
	CHECK_STR(qrpc_msg_type_to_string(77), "unknown");
}

/* ---- State machine ---------------------------------------------------------- */

struct pair {
	struct qrpc_state client, server;
};

static void pair_init(struct pair *p, enum qrpc_channel ch)
{
	qrpc_state_init(&p->client, ch, QRPC_SIDE_CLIENT);
	qrpc_state_init(&p->server, ch, QRPC_SIDE_SERVER);
}

/* Client sends M to the server: both ends must accept it. */
static int c2s(struct pair *p, struct qrpc_msg m)
{
	int r = qrpc_state_on_send(&p->client, &m);
	if (r < 0)
		return r;
	return qrpc_state_on_recv(&p->server, &m);
}

static int s2c(struct pair *p, struct qrpc_msg m)
{
	int r = qrpc_state_on_send(&p->server, &m);
	if (r < 0)
		return r;
	return qrpc_state_on_recv(&p->client, &m);
}

static void hellos(struct pair *p)
{
	CHECK_INT(c2s(p, hello(1, 1)), 0);
	CHECK_INT(s2c(p, hello(1, 1)), 0);
	CHECK_INT(p->client.version, 1);
	CHECK_INT(p->server.version, 1);
}

static void test_state_call(void)
{
	struct pair p;
	struct qrpc_state s;

	/* The whole allowed call. */
	pair_init(&p, QRPC_CHANNEL_CALL);
	hellos(&p);
	CHECK_INT(c2s(&p, call_request("work", "svc", "")), 0);
	CHECK_INT(s2c(&p, call_result(QRPC_CALL_ALLOWED)), 0);
	CHECK_INT(c2s(&p, data(QRPC_MSG_STDIN, "a", 1)), 0);
	CHECK_INT(s2c(&p, data(QRPC_MSG_STDOUT, "b", 1)), 0);
	CHECK_INT(s2c(&p, data(QRPC_MSG_STDERR, "c", 1)), 0);
	CHECK_INT(c2s(&p, eof(QRPC_STREAM_STDIN)), 0);
	CHECK_INT(s2c(&p, eof(QRPC_STREAM_STDOUT)), 0);
	CHECK(!qrpc_state_is_done(&p.client));
	CHECK_INT(s2c(&p, exitmsg(0)), -EPROTO); /* stderr not ended yet */
	CHECK_INT(s2c(&p, eof(QRPC_STREAM_STDERR)), 0);
	CHECK_INT(s2c(&p, exitmsg(3)), 0);
	CHECK(qrpc_state_is_done(&p.client));
	CHECK(qrpc_state_is_done(&p.server));
	/* nothing after EXIT */
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &(struct qrpc_msg){ .type = QRPC_MSG_STDOUT }), -EPROTO);
	struct qrpc_msg ex = exitmsg(0);
	CHECK_INT(qrpc_state_on_recv(&s, &ex), -EPROTO);
	struct qrpc_msg in = data(QRPC_MSG_STDIN, "a", 1);
	CHECK_INT(qrpc_state_on_send(&p.client, &in), -EPROTO);

	/* Refused: done at once, no data either way. */
	pair_init(&p, QRPC_CHANNEL_CALL);
	hellos(&p);
	CHECK_INT(c2s(&p, call_request("@default", "svc", "x")), 0);
	CHECK_INT(s2c(&p, call_result(QRPC_CALL_REFUSED)), 0);
	CHECK(qrpc_state_is_done(&p.client));
	CHECK(qrpc_state_is_done(&p.server));
	CHECK_INT(c2s(&p, data(QRPC_MSG_STDIN, "a", 1)), -EPROTO);
	s = p.client;
	struct qrpc_msg out = data(QRPC_MSG_STDOUT, "b", 1);
	CHECK_INT(qrpc_state_on_recv(&s, &out), -EPROTO);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO);
	CHECK_INT(qrpc_state_on_send(&s, &out), -EPROTO);

	/* Data before the call is allowed. */
	pair_init(&p, QRPC_CHANNEL_CALL);
	hellos(&p);
	CHECK_INT(qrpc_state_on_send(&p.client, &in), -EPROTO); /* not even requested */
	struct qrpc_msg req = call_request("work", "svc", "");
	CHECK_INT(qrpc_state_on_send(&p.client, &req), 0);
	CHECK_INT(qrpc_state_on_send(&p.client, &in), -EPROTO); /* requested, not allowed */
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &out), -EPROTO);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO); /* before the request */
	CHECK_INT(qrpc_state_on_recv(&p.server, &req), 0);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO); /* before ALLOWED went out */
	CHECK_INT(qrpc_state_on_send(&s, &out), -EPROTO);

	/* Wrong direction. */
	pair_init(&p, QRPC_CHANNEL_CALL);
	hellos(&p);
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO);
	s = p.server;
	struct qrpc_msg res = call_result(QRPC_CALL_ALLOWED);
	CHECK_INT(qrpc_state_on_recv(&s, &res), -EPROTO);
	CHECK_INT(qrpc_state_on_send(&s, &req), -EPROTO);
	struct qrpc_msg ss = service_start("a", "b", "", "c");
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &ss), -EPROTO); /* other channel's request */
	CHECK_INT(c2s(&p, call_request("work", "svc", "")), 0);
	CHECK_INT(s2c(&p, call_result(QRPC_CALL_ALLOWED)), 0);
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO); /* stdin toward the caller */
	struct qrpc_msg e_in = eof(QRPC_STREAM_STDIN), e_out = eof(QRPC_STREAM_STDOUT);
	CHECK_INT(qrpc_state_on_recv(&s, &e_in), -EPROTO);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &out), -EPROTO); /* stdout toward the service */
	CHECK_INT(qrpc_state_on_recv(&s, &e_out), -EPROTO);
	CHECK_INT(qrpc_state_on_recv(&s, &ex), -EPROTO);
	s = p.client;
	CHECK_INT(qrpc_state_on_send(&s, &out), -EPROTO);
	CHECK_INT(qrpc_state_on_send(&s, &ex), -EPROTO);

	/* Wrong state: second request, second result, result before request,
	 * anything before HELLO, second HELLO. */
	pair_init(&p, QRPC_CHANNEL_CALL);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO);
	CHECK_INT(qrpc_state_on_send(&p.client, &req), -EPROTO);
	struct qrpc_msg h = hello(1, 1);
	CHECK_INT(qrpc_state_on_send(&p.client, &h), 0);
	CHECK_INT(qrpc_state_on_send(&p.client, &req), -EPROTO); /* server HELLO not seen */
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &h), 0);
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO); /* server's HELLO not sent */
	CHECK_INT(qrpc_state_on_recv(&s, &h), -EPROTO);   /* second HELLO */
	pair_init(&p, QRPC_CHANNEL_CALL);
	hellos(&p);
	CHECK_INT(qrpc_state_on_send(&p.client, &h), -EPROTO);
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &res), -EPROTO); /* nothing requested */
	CHECK_INT(c2s(&p, req), 0);
	CHECK_INT(c2s(&p, req), -EPROTO);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO);
	CHECK_INT(s2c(&p, res), 0);
	CHECK_INT(s2c(&p, res), -EPROTO);
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &res), -EPROTO);

	/* Data after EOF. */
	CHECK_INT(c2s(&p, eof(QRPC_STREAM_STDIN)), 0);
	CHECK_INT(c2s(&p, data(QRPC_MSG_STDIN, "a", 1)), -EPROTO);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO);
	CHECK_INT(qrpc_state_on_recv(&s, &e_in), -EPROTO);
	CHECK_INT(s2c(&p, eof(QRPC_STREAM_STDOUT)), 0);
	CHECK_INT(s2c(&p, data(QRPC_MSG_STDOUT, "b", 1)), -EPROTO);
	s = p.client;
	CHECK_INT(qrpc_state_on_recv(&s, &out), -EPROTO);
	CHECK_INT(qrpc_state_on_recv(&s, &e_out), -EPROTO);
	CHECK_INT(s2c(&p, data(QRPC_MSG_STDERR, "c", 1)), 0); /* the other stream still open */
}

static void test_state_service(void)
{
	struct pair p;
	struct qrpc_state s;
	struct qrpc_msg in = data(QRPC_MSG_STDIN, "a", 1), out = data(QRPC_MSG_STDOUT, "b", 1);
	struct qrpc_msg ss = service_start("work", "svc", "", "work");

	pair_init(&p, QRPC_CHANNEL_SERVICE);
	hellos(&p);
	s = p.server;
	CHECK_INT(qrpc_state_on_recv(&s, &in), -EPROTO); /* stdin before SERVICE_START */
	CHECK_INT(qrpc_state_on_send(&s, &out), -EPROTO);
	struct qrpc_msg req = call_request("work", "svc", "");
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO); /* CALL channel message */
	struct qrpc_msg res = call_result(QRPC_CALL_ALLOWED);
	CHECK_INT(qrpc_state_on_send(&s, &res), -EPROTO);
	/* Stdin may follow SERVICE_START at once: no result on this channel. */
	CHECK_INT(c2s(&p, ss), 0);
	CHECK_INT(c2s(&p, in), 0);
	CHECK_INT(s2c(&p, out), 0);
	CHECK_INT(c2s(&p, ss), -EPROTO);
	CHECK_INT(s2c(&p, eof(QRPC_STREAM_STDOUT)), 0);
	CHECK_INT(s2c(&p, eof(QRPC_STREAM_STDERR)), 0);
	CHECK_INT(s2c(&p, exitmsg(127)), 0);
	CHECK(qrpc_state_is_done(&p.server));
	CHECK(qrpc_state_is_done(&p.client));
	/* Stdin that crossed EXIT in flight is still acceptable to the server. */
	CHECK_INT(qrpc_state_on_recv(&p.server, &in), 0);
	struct qrpc_msg e_in = eof(QRPC_STREAM_STDIN);
	CHECK_INT(qrpc_state_on_recv(&p.server, &e_in), 0);
	CHECK_INT(qrpc_state_on_recv(&p.server, &in), -EPROTO);
	/* ...but the client must not send it once it has seen EXIT. */
	CHECK_INT(qrpc_state_on_send(&p.client, &in), -EPROTO);
}

static void test_versions(void)
{
	struct qrpc_state s;
	struct qrpc_msg h;

	qrpc_state_init(&s, QRPC_CHANNEL_CALL, QRPC_SIDE_SERVER);
	h = hello(1, 9);
	CHECK_INT(qrpc_state_on_recv(&s, &h), 0);
	CHECK_INT(s.version, 0); /* agreed once both HELLOs are known */
	h = hello(QRPC_PROTOCOL_VERSION_MIN, QRPC_PROTOCOL_VERSION);
	CHECK_INT(qrpc_state_on_send(&s, &h), 0);
	CHECK_INT(s.version, QRPC_PROTOCOL_VERSION);

	/* the version comes from what the HELLOs offered, not from what the
	 * code could speak: we offered {1,1}, the peer {2,2}: none in common */
	qrpc_state_init(&s, QRPC_CHANNEL_SERVICE, QRPC_SIDE_SERVER);
	h = hello(1, 1);
	CHECK_INT(qrpc_state_on_send(&s, &h), 0);
	h = hello(2, 2);
	CHECK_INT(qrpc_state_on_recv(&s, &h), -EPROTO);
	CHECK_INT(s.version, 0);
	/* and the other order: the peer's {2,2} first, then our {1,1} */
	qrpc_state_init(&s, QRPC_CHANNEL_SERVICE, QRPC_SIDE_SERVER);
	h = hello(2, 2);
	CHECK_INT(qrpc_state_on_recv(&s, &h), 0);
	h = hello(1, 1);
	CHECK_INT(qrpc_state_on_send(&s, &h), -EPROTO);
	CHECK_INT(s.version, 0);
	/* we offered {1,1}, the peer {1,2}: version 1 */
	qrpc_state_init(&s, QRPC_CHANNEL_SERVICE, QRPC_SIDE_CLIENT);
	h = hello(1, 1);
	CHECK_INT(qrpc_state_on_send(&s, &h), 0);
	h = hello(1, 2);
	CHECK_INT(qrpc_state_on_recv(&s, &h), 0);
	CHECK_INT(s.version, 1);

	qrpc_state_init(&s, QRPC_CHANNEL_CALL, QRPC_SIDE_SERVER);
	h = hello(QRPC_PROTOCOL_VERSION + 1, QRPC_PROTOCOL_VERSION + 5);
	CHECK_INT(qrpc_state_on_recv(&s, &h), -EPROTO);
	CHECK_INT(s.version, 0);
	/* the refused HELLO did not count: nothing else is acceptable */
	struct qrpc_msg req = call_request("work", "svc", "");
	CHECK_INT(qrpc_state_on_recv(&s, &req), -EPROTO);

	qrpc_state_init(&s, QRPC_CHANNEL_SERVICE, QRPC_SIDE_CLIENT);
	h = hello(QRPC_PROTOCOL_VERSION_MIN, QRPC_PROTOCOL_VERSION);
	CHECK_INT(qrpc_state_on_send(&s, &h), 0);
	h = hello(QRPC_PROTOCOL_VERSION, 0xffffffffu);
	CHECK_INT(qrpc_state_on_recv(&s, &h), 0);
	CHECK_INT(s.version, QRPC_PROTOCOL_VERSION);
}

/* SERVICE_START_AS (version 2): SERVICE_START plus a user name; the codec
 * checks the user like every name, the state machine allows the message
 * only once version 2 is agreed. */
static void test_service_start_as(void)
{
	struct qrpc_msg m = service_start("work", "svc", "a1", "@default"), out;
	size_t len;

	m.type = QRPC_MSG_SERVICE_START_AS;
	snprintf(m.u.service_start.user, sizeof(m.u.service_start.user), "nobody");
	CHECK_INT(roundtrip(&m, &out, &len), 0);
	CHECK_INT(out.type, QRPC_MSG_SERVICE_START_AS);
	CHECK_STR(out.u.service_start.user, "nobody");
	CHECK_STR(out.u.service_start.argument, "a1");
	CHECK_INT(len, QRPC_HEADER_SIZE + 1 + 4 + 1 + 3 + 1 + 2 + 1 + 8 + 1 + 6);
	CHECK_INT(qrpc_max_payload(QRPC_MSG_SERVICE_START_AS),
		  qrpc_max_payload(QRPC_MSG_SERVICE_START) + 1 + QRPC_MAX_USER);
	/* a plain SERVICE_START decodes with an empty user */
	struct qrpc_msg plain = service_start("work", "svc", "", "work");
	CHECK_INT(roundtrip(&plain, &out, &len), 0);
	CHECK_STR(out.u.service_start.user, "");
	/* the user is a name like any other: not empty, no '/', no leading '-' */
	const char *bad[] = { "", "-x", ".x", "a/b", "a b", "a$" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qrpc_msg b = m;
		snprintf(b.u.service_start.user, sizeof(b.u.service_start.user), "%s", bad[i]);
		CHECK_INT(qrpc_msg_encode(&b, buf, sizeof(buf), &len), -EINVAL);
	}
	/* on the wire: a user "a/b", and a SERVICE_START_AS without the user */
	uint8_t raw[512];
	size_t n = 0;
	const char *fields[] = { "work", "svc", "", "work", "a/b" };
	for (int i = 0; i < 5; i++) {
		raw[QRPC_HEADER_SIZE + n++] = (uint8_t)strlen(fields[i]);
		memcpy(raw + QRPC_HEADER_SIZE + n, fields[i], strlen(fields[i]));
		n += strlen(fields[i]);
	}
	uint32_t t = QRPC_MSG_SERVICE_START_AS, l = (uint32_t)n;
	memcpy(raw, &t, 4); /* little-endian host: the test machine is x86 */
	memcpy(raw + 4, &l, 4);
	CHECK_INT(decode_raw(raw, QRPC_HEADER_SIZE + n, &out), -EBADMSG);
	l = (uint32_t)(n - 4); /* the user field cut off */
	memcpy(raw + 4, &l, 4);
	CHECK_INT(decode_raw(raw, QRPC_HEADER_SIZE + l, &out), -EBADMSG);

	/* state: version 1 refuses it both ways, version 2 takes it once */
	struct pair p;
	pair_init(&p, QRPC_CHANNEL_SERVICE);
	hellos(&p);
	CHECK_INT(qrpc_state_on_send(&p.client, &m), -EPROTO);
	CHECK_INT(qrpc_state_on_recv(&p.server, &m), -EPROTO);
	pair_init(&p, QRPC_CHANNEL_SERVICE);
	CHECK_INT(c2s(&p, hello(1, 2)), 0);
	CHECK_INT(s2c(&p, hello(1, 2)), 0);
	CHECK_INT(p.client.version, 2);
	CHECK_INT(c2s(&p, m), 0);
	CHECK_INT(c2s(&p, m), -EPROTO);
	CHECK_INT(c2s(&p, data(QRPC_MSG_STDIN, "a", 1)), 0);
	/* never on the CALL channel */
	pair_init(&p, QRPC_CHANNEL_CALL);
	CHECK_INT(c2s(&p, hello(1, 2)), 0);
	CHECK_INT(s2c(&p, hello(1, 2)), 0);
	CHECK_INT(qrpc_state_on_send(&p.client, &m), -EPROTO);
}

/* EOF with a stream number out of range, handed to the state machine
 * without going through the decoder: refused, and (checked by UBSan in the
 * sanitizer build) without shifting 1u by 32 or more first. */
static void test_state_eof_range(void)
{
	struct pair p;
	struct qrpc_msg ss = service_start("work", "svc", "", "work");
	static const uint32_t bad[] = { 3, 31, 32, 40, 0x80000000u, 0xffffffffu };

	pair_init(&p, QRPC_CHANNEL_SERVICE);
	hellos(&p);
	CHECK_INT(c2s(&p, ss), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qrpc_msg e = { .type = QRPC_MSG_EOF };
		e.u.eof.stream = bad[i];
		CHECK_INT(qrpc_state_on_send(&p.client, &e), -EPROTO);
		CHECK_INT(qrpc_state_on_recv(&p.server, &e), -EPROTO);
		CHECK_INT(qrpc_state_on_send(&p.server, &e), -EPROTO);
		CHECK_INT(qrpc_state_on_recv(&p.client, &e), -EPROTO);
	}
	CHECK_INT(p.client.eof_tx | p.client.eof_rx | p.server.eof_tx | p.server.eof_rx, 0);
}

/* The qrpc name functions are the shared qname.h rules, not a copy. */
static void test_names_shared(void)
{
	static const char *const samples[] = {
		"", "a", ".x", "..", "x.", "-x", "1x", "a+b", "a/b", "@default", "@adminvm",
		"@dispvm", "@dispvm:x", "@dispvm:", "@anyvm", "dom0", "Work_2.x",
		"abcdefghijklmnopqrstuvwxyz01234", "abcdefghijklmnopqrstuvwxyz012345",
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const char *n = samples[i];
		CHECK(qrpc_qube_name_is_valid(n) == qname_qube_is_valid(n));
		CHECK(qrpc_service_name_is_valid(n) == qname_service_is_valid(n));
		CHECK(qrpc_argument_is_valid(n) == qname_argument_is_valid(n));
		CHECK(qrpc_target_is_valid(n) == qname_target_is_valid(n));
	}
}

/* qrpc_state_parse: -EAGAIN on a partial message, a message the state
 * machine refuses leaves the outputs untouched, a good one is consumed. */
static void test_state_parse(void)
{
	struct qrpc_state s;
	uint8_t wire[64];
	size_t len = 0, used = 12345;
	struct qrpc_msg out = { .type = 0xdead }, h = hello(1, 1);

	qrpc_state_init(&s, QRPC_CHANNEL_CALL, QRPC_SIDE_SERVER);
	CHECK_INT(qrpc_msg_encode(&h, wire, sizeof(wire), &len), 0);
	CHECK_INT(qrpc_state_parse(&s, wire, len - 1, &out, &used), -EAGAIN);
	CHECK_INT(out.type, 0xdead);
	CHECK_INT(used, 12345);
	CHECK_INT(qrpc_state_parse(&s, wire, len, &out, &used), 0);
	CHECK_INT(out.type, QRPC_MSG_HELLO);
	CHECK_INT(used, len);
	/* a second HELLO is out of state: refused, outputs kept */
	out.type = 0xdead;
	used = 12345;
	CHECK_INT(qrpc_state_parse(&s, wire, len, &out, &used), -EPROTO);
	CHECK_INT(out.type, 0xdead);
	CHECK_INT(used, 12345);
}

/* The stream buffers: bytes move to the front only when the tail is too
 * short, an emptied buffer starts over, a full one is left alone. */
static void test_buf_make_room(void)
{
	uint8_t b[16];
	size_t start, end;

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	start = 4, end = 10; /* 6 free at the tail */
	qrpc_buf_make_room(b, sizeof(b), &start, &end, 6);
	CHECK_INT(start, 4);
	CHECK_INT(end, 10);
	CHECK_INT(b[0], 0); /* nothing moved */
	qrpc_buf_make_room(b, sizeof(b), &start, &end, 7);
	CHECK_INT(start, 0);
	CHECK_INT(end, 6);
	CHECK(b[0] == 4 && b[5] == 9);
	start = end = 12;
	qrpc_buf_make_room(b, sizeof(b), &start, &end, 1);
	CHECK_INT(start, 0);
	CHECK_INT(end, 0);
	start = 0, end = 14; /* no room to make: unchanged */
	qrpc_buf_make_room(b, sizeof(b), &start, &end, 8);
	CHECK_INT(start, 0);
	CHECK_INT(end, 14);
}

static void test_parse_u32(void)
{
	uint32_t v = 7;
	CHECK_INT(qrpc_parse_u32("0", &v), 0);
	CHECK_INT(v, 0);
	CHECK_INT(qrpc_parse_u32("000512", &v), 0);
	CHECK_INT(v, 512);
	CHECK_INT(qrpc_parse_u32("4294967295", &v), 0);
	CHECK(v == 4294967295u);
	CHECK_INT(qrpc_parse_u32("4294967296", &v), -ERANGE);
	const char *bad[] = { "", "+1", "-1", " 1", "1 ", "1a", "0x10" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(qrpc_parse_u32(bad[i], &v), -EINVAL);
	CHECK(v == 4294967295u); /* untouched on failure */
}

int main(void)
{
	test_roundtrips();
	test_rejections();
	test_names();
	test_state_call();
	test_state_service();
	test_versions();
	test_state_eof_range();
	test_names_shared();
	test_state_parse();
	test_buf_make_room();
	test_service_start_as();
	test_parse_u32();
	return check_exit_code("test-codec");
}
