/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Table-driven tests of http-proxy.c: one row per request head with the
 * status it must get (and, when accepted, the method, host, port, target
 * and forwarded fields); one row per configuration; one per allow-list
 * decision; one per upstream response head.  Every accepted request is
 * also checked with uproxy_request_check, rebuilt for upstream, and every
 * refusal with uproxy_refusal_check; a few hand-corrupted structs must
 * fail the check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-proxy.h"

static int failures, checks;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		checks++;                                                      \
		if (!(cond)) {                                                 \
			failures++;                                            \
			printf("not ok - %s:%d: ", __FILE__, __LINE__);        \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
		}                                                              \
	} while (0)

/* ---- requests ---- */

struct req_case {
	const char *head;     /* "\r\n" written as is; the final empty line included */
	unsigned status;
	const char *method;   /* when status 0 */
	const char *host;
	unsigned port;
	const char *target;
	const char *fwd;      /* NULL: not checked */
	const char *reason;   /* a part of the refusal's reason; NULL: not checked */
};

#define GET_DEB "GET http://deb.debian.org/debian/dists/bookworm/InRelease HTTP/1.1\r\n"

static const struct req_case req_cases[] = {
	/* what apt sends */
	{ GET_DEB "Host: deb.debian.org\r\nCache-Control: max-age=0\r\n"
		  "If-Modified-Since: Sat, 10 Feb 2024 10:00:00 GMT\r\nUser-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\n\r\n",
	  0, "GET", "deb.debian.org", 80, "/debian/dists/bookworm/InRelease",
	  "Cache-Control: max-age=0\r\nIf-Modified-Since: Sat, 10 Feb 2024 10:00:00 GMT\r\n"
	  "User-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\n", NULL },
	{ "GET http://deb.debian.org/debian/pool/main/libs/libstdc%2b%2b6_12.2.0-14_amd64.deb HTTP/1.1\r\n"
	  "Host: deb.debian.org\r\nRange: bytes=100-\r\nIf-Range: Sat, 10 Feb 2024 10:00:00 GMT\r\n\r\n",
	  0, "GET", "deb.debian.org", 80, "/debian/pool/main/libs/libstdc%2b%2b6_12.2.0-14_amd64.deb",
	  "Range: bytes=100-\r\nIf-Range: Sat, 10 Feb 2024 10:00:00 GMT\r\n", NULL },
	{ "HEAD http://deb.debian.org/ HTTP/1.0\r\n\r\n", 0, "HEAD", "deb.debian.org", 80, "/", "", NULL },
	/* no path, a query only, case of scheme and host, explicit ports */
	{ "GET http://deb.debian.org HTTP/1.1\r\n\r\n", 0, "GET", "deb.debian.org", 80, "/", "", NULL },
	{ "GET http://deb.debian.org?a=b HTTP/1.1\r\n\r\n", 0, "GET", "deb.debian.org", 80, "/?a=b", "", NULL },
	{ "GET HTTP://Deb.Debian.ORG/x HTTP/1.1\r\nHost: DEB.debian.org\r\n\r\n", 0, "GET", "deb.debian.org",
	  80, "/x", "", NULL },
	{ "GET http://deb.debian.org:8080/x HTTP/1.1\r\nHost: deb.debian.org:8080\r\n\r\n", 0, "GET",
	  "deb.debian.org", 8080, "/x", "", NULL },
	{ "GET http://127.0.0.1:8000/f HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n", 0, "GET", "127.0.0.1", 8000,
	  "/f", "", NULL },
	{ "GET http://[::1]:8000/f HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", 0, "GET", "::1", 8000, "/f", "", NULL },
	{ "GET http://[0:0::1]/f HTTP/1.1\r\n\r\n", 0, "GET", "::1", 80, "/f", "", NULL },
	/* dropped fields: hop-by-hop, credentials, unknown ones */
	{ GET_DEB "Proxy-Authorization: Basic eDp5\r\nConnection: keep-alive\r\nKeep-Alive: 300\r\n"
		  "Cookie: a=b\r\nX-Whatever: 1\r\nAccept: text/*\r\n\r\n",
	  0, "GET", "deb.debian.org", 80, "/debian/dists/bookworm/InRelease", "Accept: text/*\r\n", NULL },
	/* whitespace around a value is not part of it; empty values pass */
	{ GET_DEB "Accept:   text/*  \t\r\nPragma:\r\n\r\n", 0, "GET", "deb.debian.org", 80,
	  "/debian/dists/bookworm/InRelease", "Accept: text/*\r\nPragma: \r\n", NULL },
	/* field names are case-insensitive, forwarded in their usual spelling */
	{ GET_DEB "user-AGENT: x\r\n\r\n", 0, "GET", "deb.debian.org", 80, "/debian/dists/bookworm/InRelease",
	  "User-Agent: x\r\n", NULL },
	/* CONNECT */
	{ "CONNECT deb.debian.org:443 HTTP/1.1\r\nHost: deb.debian.org:443\r\n\r\n", 0, "CONNECT",
	  "deb.debian.org", 443, "", "", NULL },
	{ "CONNECT deb.debian.org:443 HTTP/1.1\r\nHost: deb.debian.org\r\nUser-Agent: x\r\n\r\n", 0, "CONNECT",
	  "deb.debian.org", 443, "", "", NULL },
	{ "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", 0, "CONNECT", "2001:db8::1", 443, "", "", NULL },

	/* ---- refused ---- */
	/* methods and versions */
	{ "POST http://deb.debian.org/ HTTP/1.1\r\n\r\n", 405, NULL, NULL, 0, NULL, NULL, "method POST" },
	{ "get http://deb.debian.org/ HTTP/1.1\r\n\r\n", 405, NULL, NULL, 0, NULL, NULL, NULL },
	{ "PUT http://deb.debian.org/ HTTP/1.1\r\n\r\n", 405, NULL, NULL, 0, NULL, NULL, NULL },
	{ "G(T http://deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "method" },
	{ "GET http://deb.debian.org/ HTTP/2.0\r\n\r\n", 505, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/ HTTP/1.1 \r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/ http/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET  http://deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/  HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/ HTTP/1.1\r\n", 400, NULL, NULL, 0, NULL, NULL, "empty line" },
	/* URIs */
	{ "GET /debian/ HTTP/1.1\r\nHost: deb.debian.org\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL,
	  "absolute http://" },
	{ "GET https://deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "CONNECT" },
	{ "GET ftp://deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://user:pw@deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "userinfo" },
	{ "GET http://deb.debian.org@evil.example/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "userinfo" },
	{ "GET http://deb.debian.org/a#frag HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "fragment" },
	{ "GET http://deb.debian.org/a%zz HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/a%4 HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/a%00b HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "%00" },
	{ "GET http://deb.debian.org/a\"b HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/a\\b HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org/\xc3\xa9 HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http:/// HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "empty host" },
	{ "GET http://deb.debian.org./ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb..debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://-deb.debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb_debian.org/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://deb.debian.org:/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	{ "GET http://deb.debian.org:0/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	{ "GET http://deb.debian.org:65536/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	{ "GET http://deb.debian.org:080/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	{ "GET http://deb.debian.org:+80/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	/* numeric hosts other than dotted quads: the resolver would read them */
	{ "GET http://2130706433/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "dotted-quad" },
	{ "GET http://127.1/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "dotted-quad" },
	{ "GET http://127.000.0.1/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "dotted-quad" },
	{ "GET http://0x7f.0.0.1/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://256.0.0.1/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://[::1%25eth0]/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "IPv6" },
	{ "GET http://[::g]/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "IPv6" },
	{ "GET http://[::1/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "GET http://[::1]x/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	/* CONNECT's authority */
	{ "CONNECT deb.debian.org HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "port" },
	{ "CONNECT http://deb.debian.org:443 HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "CONNECT deb.debian.org:443/x HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "CONNECT u@deb.debian.org:443 HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "userinfo" },
	/* smuggling and framing */
	{ GET_DEB "Content-Length: 0\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "Content-Length" },
	{ GET_DEB "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL,
	  "more than one Content-Length" },
	{ GET_DEB "Transfer-Encoding: chunked\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "Transfer-Encoding" },
	{ GET_DEB "transfer-encoding : chunked\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ "CONNECT deb.debian.org:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL,
	  "Content-Length" },
	{ GET_DEB "Host : deb.debian.org\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "header name" },
	{ GET_DEB "Host: deb.debian.org\r\nHost: deb.debian.org\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL,
	  "more than one Host" },
	{ GET_DEB "Host: evil.example\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "Host field" },
	{ GET_DEB "Host: deb.debian.org:81\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "Host field" },
	{ GET_DEB "Host:\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "Host field" },
	{ GET_DEB "Accept: a\r\n b\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "obs-fold" },
	{ GET_DEB "Accept: a\r\n\tb\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "obs-fold" },
	{ GET_DEB "Accept: a\rb\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "CR without LF" },
	{ GET_DEB "Accept: a\nb: c\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "LF without CR" },
	{ "GET http://deb.debian.org/ HTTP/1.1\n\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
	{ GET_DEB "Accept: a\x7f\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "value" },
	{ GET_DEB "Accept: \xc3\xa9\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "value" },
	{ GET_DEB "Accept: a\x01\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "value" },
	{ GET_DEB "Range: bytes=0-\r\nRange: bytes=5-\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL,
	  "more than one Range" },
	{ GET_DEB ": x\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "without a name" },
	{ GET_DEB "NoColon\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, "without a name" },
	/* a second request after the first head: not part of it */
	{ GET_DEB "\r\nGET http://evil.example/ HTTP/1.1\r\n\r\n", 400, NULL, NULL, 0, NULL, NULL, NULL },
};

static void run_request_cases(void)
{
	static struct uproxy_request r;
	static char up[UPROXY_TARGET_MAX + UPROXY_FWD_MAX + 512];

	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];
		size_t len = strlen(c->head);
		uint32_t st = uproxy_request_parse((const uint8_t *)c->head, len, &r);

		CHECK(st == c->status && r.status == st, "row %zu: status %u, want %u (%s)", i, (unsigned)st,
		      c->status, r.reason);
		if (st != c->status)
			continue;
		if (c->status == 0) {
			const char *m = r.method == UPROXY_GET ? "GET" : r.method == UPROXY_HEAD ? "HEAD" :
				r.method == UPROXY_CONNECT ? "CONNECT" : "?";
			size_t ul;

			CHECK(strcmp(m, c->method) == 0, "row %zu: method %s, want %s", i, m, c->method);
			CHECK(strcmp(r.host, c->host) == 0, "row %zu: host '%s', want '%s'", i, r.host, c->host);
			CHECK(r.port == c->port, "row %zu: port %u, want %u", i, (unsigned)r.port, c->port);
			CHECK(strcmp(r.target, c->target) == 0, "row %zu: target '%s', want '%s'", i, r.target,
			      c->target);
			if (c->fwd)
				CHECK(strcmp(r.fwd, c->fwd) == 0, "row %zu: fwd '%s', want '%s'", i, r.fwd, c->fwd);
			CHECK(uproxy_request_check(&r), "row %zu: the parser's result fails the check", i);
			if (r.method != UPROXY_CONNECT) {
				CHECK(uproxy_upstream_request(&r, up, sizeof(up), &ul) == 0 && ul == strlen(up),
				      "row %zu: upstream request", i);
				CHECK(strstr(up, "\r\nConnection: close\r\n\r\n") == up + ul - 23,
				      "row %zu: upstream request ends with Connection: close", i);
				CHECK(uproxy_head_length((const uint8_t *)up, ul) == ul,
				      "row %zu: upstream request is one head", i);
				static struct uproxy_request again;
				CHECK(uproxy_request_parse((const uint8_t *)up, ul, &again) == 400 &&
				      strstr(again.reason, "absolute"),
				      "row %zu: the upstream request is origin-form", i);
			}
		} else {
			CHECK(uproxy_refusal_check(&r), "row %zu: the refusal fails the check", i);
			CHECK(!uproxy_request_check(&r), "row %zu: a refusal passes the request check", i);
			if (c->reason)
				CHECK(strstr(r.reason, c->reason) != NULL, "row %zu: reason '%s' lacks '%s'", i,
				      r.reason, c->reason);
		}
	}
}

/* caps: head size, field count, target length, forwarded bytes */
static void run_cap_cases(void)
{
	static char head[UPROXY_HEAD_MAX * 2];
	static struct uproxy_request r;
	size_t n;

	/* 200 small fields: over the field cap */
	n = (size_t)snprintf(head, sizeof(head), GET_DEB);
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "X-%d: y\r\n", i);
	n += (size_t)snprintf(head + n, sizeof(head) - n, "\r\n");
	CHECK(uproxy_request_parse((const uint8_t *)head, n, &r) == 431, "200 fields: %u", (unsigned)r.status);
	/* one long field: over the head cap */
	n = (size_t)snprintf(head, sizeof(head), GET_DEB "X-Long: ");
	memset(head + n, 'a', UPROXY_HEAD_MAX);
	n += UPROXY_HEAD_MAX;
	memcpy(head + n, "\r\n\r\n", 4);
	n += 4;
	CHECK(uproxy_request_parse((const uint8_t *)head, n, &r) == 431, "long head: %u", (unsigned)r.status);
	/* a target over the cap, the head under it */
	n = (size_t)snprintf(head, sizeof(head), "GET http://deb.debian.org/");
	memset(head + n, 'a', UPROXY_TARGET_MAX + 10);
	n += UPROXY_TARGET_MAX + 10;
	n += (size_t)snprintf(head + n, sizeof(head) - n, " HTTP/1.1\r\n\r\n");
	CHECK(uproxy_request_parse((const uint8_t *)head, n, &r) == 414, "long target: %u", (unsigned)r.status);
	/* exactly at the target cap: accepted */
	n = (size_t)snprintf(head, sizeof(head), "GET http://deb.debian.org/");
	memset(head + n, 'a', UPROXY_TARGET_MAX - 1);
	n += UPROXY_TARGET_MAX - 1;
	n += (size_t)snprintf(head + n, sizeof(head) - n, " HTTP/1.1\r\n\r\n");
	CHECK(uproxy_request_parse((const uint8_t *)head, n, &r) == 0 && strlen(r.target) == UPROXY_TARGET_MAX,
	      "target at the cap: %u %s", (unsigned)r.status, r.reason);
	/* forwarded fields over their cap (11 fields of 800 bytes) */
	n = (size_t)snprintf(head, sizeof(head), GET_DEB);
	static const char *names[] = { "Accept", "Accept-Encoding", "Accept-Language", "Cache-Control",
				       "If-Modified-Since", "If-None-Match", "If-Range",
				       "If-Unmodified-Since", "Pragma", "Range", "User-Agent" };
	for (size_t i = 0; i < 11; i++) {
		n += (size_t)snprintf(head + n, sizeof(head) - n, "%s: ", names[i]);
		memset(head + n, 'v', 800);
		n += 800;
		n += (size_t)snprintf(head + n, sizeof(head) - n, "\r\n");
	}
	n += (size_t)snprintf(head + n, sizeof(head) - n, "\r\n");
	CHECK(uproxy_request_parse((const uint8_t *)head, n, &r) == 431 && strstr(r.reason, "forwarded"),
	      "forwarded over the cap: %u %s", (unsigned)r.status, r.reason);
	/* a NUL byte anywhere */
	static const char nul[] = GET_DEB "Accept: a\0b\r\n\r\n";
	CHECK(uproxy_request_parse((const uint8_t *)nul, sizeof(nul) - 1, &r) == 400 && strstr(r.reason, "NUL"),
	      "NUL: %u %s", (unsigned)r.status, r.reason);
	/* bytes after the head */
	static const char extra[] = GET_DEB "\r\nabc";
	CHECK(uproxy_request_parse((const uint8_t *)extra, sizeof(extra) - 1, &r) == 400, "trailing bytes: %u",
	      (unsigned)r.status);
}

/* structs from a misbehaving parser process must fail the check */
static void run_check_cases(void)
{
	static const char ok[] = GET_DEB "Accept: text/*\r\n\r\n";
	static struct uproxy_request good, r;

	CHECK(uproxy_request_parse((const uint8_t *)ok, sizeof(ok) - 1, &good) == 0, "the base row parses");
#define BAD(what, stmt)                                                                  \
	do {                                                                             \
		r = good;                                                                \
		stmt;                                                                    \
		CHECK(!uproxy_request_check(&r), "a struct with %s passes the check", what); \
	} while (0)
	BAD("an unterminated host", memset(r.host, 'a', sizeof(r.host)));
	BAD("an unterminated target", memset(r.target, 'a', sizeof(r.target)));
	BAD("an unterminated fwd", memset(r.fwd, 'a', sizeof(r.fwd)));
	BAD("an upper-case host", strcpy(r.host, "DEB.debian.org"));
	BAD("a host with a space", strcpy(r.host, "deb debian.org"));
	BAD("a numeric host called a name", strcpy(r.host, "127.1"));
	BAD("an address called a name", (strcpy(r.host, "127.0.0.1"), r.host_kind = UPROXY_HOST_NAME));
	BAD("a non-canonical IPv6", (strcpy(r.host, "0:0::1"), r.host_kind = UPROXY_HOST_IPV6));
	BAD("port 0", r.port = 0);
	BAD("port 70000", r.port = 70000);
	BAD("an implicit port other than 80", r.port = 81);
	BAD("method 9", r.method = 9);
	BAD("a status", r.status = 400);
	BAD("a target without '/'", strcpy(r.target, "x"));
	BAD("a target with CRLF", strcpy(r.target, "/a\r\nHost: x"));
	BAD("a target with %00", strcpy(r.target, "/a%00"));
	BAD("fwd with an unknown field", strcpy(r.fwd, "Cookie: a\r\n"));
	BAD("fwd with a field twice", strcpy(r.fwd, "Accept: a\r\nAccept: b\r\n"));
	BAD("fwd with CR in a value", strcpy(r.fwd, "Accept: a\rb\r\n"));
	BAD("fwd without CRLF", strcpy(r.fwd, "Accept: a"));
	BAD("fwd in another spelling", strcpy(r.fwd, "accept: a\r\n"));
	BAD("fwd with padding", strcpy(r.fwd, "Accept:  a\r\n"));
	BAD("CONNECT with a target", r.method = UPROXY_CONNECT);
	BAD("minor 2", r.minor = 2);
	r = good;
	CHECK(uproxy_request_check(&r), "the base row passes the check");

	/* refusals */
	memset(&r, 0, sizeof(r));
	r.status = 403; /* the parser never sends 403 */
	strcpy(r.reason, "x");
	CHECK(!uproxy_refusal_check(&r), "a refusal with status 403 passes");
	r.status = 400;
	CHECK(uproxy_refusal_check(&r), "a plain refusal fails");
	r.reason[0] = '\n';
	CHECK(!uproxy_refusal_check(&r), "a refusal with a newline passes");
	memset(r.reason, 'a', sizeof(r.reason));
	CHECK(!uproxy_refusal_check(&r), "an unterminated reason passes");
}

/* ---- configuration and allow-list ---- */

struct config_case {
	const char *text;
	int ret;
	unsigned n_allow;
	const char *err; /* part of the message */
};

static const struct config_case config_cases[] = {
	{ "", 0, 0, NULL },
	{ "# only a comment\n\n   \n", 0, 0, NULL },
	{ "allow deb.debian.org\nallow security.debian.org\n", 0, 2, NULL },
	{ "allow deb.debian.org # a comment\r\n", 0, 1, NULL },
	{ "  allow\tDeb.Debian.org   http=80,8080 https=none\n", 0, 1, NULL },
	{ "allow .fedoraproject.org\n", 0, 1, NULL },
	{ "allow 127.0.0.1 http=8000\nallow [::1] https=8443\n", 0, 2, NULL },
	{ "permit deb.debian.org\n", -EINVAL, 0, "line 1" },
	{ "allow\n", -EINVAL, 0, "no host" },
	{ "\nallow deb.debian.org http=\n", -EINVAL, 0, "line 2" },
	{ "allow deb.debian.org http=0\n", -EINVAL, 0, "http=" },
	{ "allow deb.debian.org http=80,80\n", -EINVAL, 0, "http=" },
	{ "allow deb.debian.org http=1,2,3,4,5,6,7,8,9\n", -EINVAL, 0, "http=" },
	{ "allow deb.debian.org http=80 http=81\n", -EINVAL, 0, "once" },
	{ "allow deb.debian.org ftp=21\n", -EINVAL, 0, "expected" },
	{ "allow 127.1\n", -EINVAL, 0, "not a host" },
	{ "allow user@deb.debian.org\n", -EINVAL, 0, "not a host" },
	{ "allow .\n", -EINVAL, 0, "domain" },
	{ "allow .127.0.0.1\n", -EINVAL, 0, "domain" },
	{ "allow deb.debian.org\x01\n", -EINVAL, 0, "byte" },
	{ "allow d\xc3\xa9.org\n", -EINVAL, 0, "byte" },
};

static void run_config_cases(void)
{
	static struct uproxy_config cfg;
	char err[256];

	for (size_t i = 0; i < sizeof(config_cases) / sizeof(config_cases[0]); i++) {
		const struct config_case *c = &config_cases[i];
		err[0] = '\0';
		int r = uproxy_config_parse(c->text, strlen(c->text), &cfg, err, sizeof(err));

		CHECK(r == c->ret, "config row %zu: %d, want %d (%s)", i, r, c->ret, err);
		if (r == 0)
			CHECK(cfg.n_allow == c->n_allow, "config row %zu: %u lines, want %u", i, cfg.n_allow,
			      c->n_allow);
		else if (c->err)
			CHECK(strstr(err, c->err) != NULL, "config row %zu: '%s' lacks '%s'", i, err, c->err);
	}
	/* a NUL in the file */
	static const char nul[] = "allow a.org\0\n";
	CHECK(uproxy_config_parse(nul, sizeof(nul) - 1, &cfg, err, sizeof(err)) == -EINVAL, "NUL in config");
}

struct allow_case {
	const char *head;
	unsigned status; /* 0 allowed, 403 refused */
	const char *reason;
};

static const char allow_config[] =
	"allow deb.debian.org\n"
	"allow security.debian.org https=none\n"
	"allow .fedoraproject.org http=80,8080\n"
	"allow 127.0.0.1 http=8000 https=8443\n"
	"allow [::1] http=8000 https=none\n";

static const struct allow_case allow_cases[] = {
	{ "GET http://deb.debian.org/x HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET http://DEB.debian.org:80/x HTTP/1.1\r\n\r\n", 0, NULL },
	{ "CONNECT deb.debian.org:443 HTTP/1.1\r\n\r\n", 0, NULL },
	{ "CONNECT deb.debian.org:80 HTTP/1.1\r\n\r\n", 403, "port 80" },
	{ "CONNECT deb.debian.org:22 HTTP/1.1\r\n\r\n", 403, "port 22" },
	{ "GET http://deb.debian.org:443/ HTTP/1.1\r\n\r\n", 403, "port 443" },
	{ "GET http://deb.debian.org:8080/ HTTP/1.1\r\n\r\n", 403, "port 8080" },
	{ "GET http://security.debian.org/x HTTP/1.1\r\n\r\n", 0, NULL },
	{ "CONNECT security.debian.org:443 HTTP/1.1\r\n\r\n", 403, "port 443" },
	{ "GET http://evil.example/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://debian.org/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://deb.debian.org.evil.example/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://evildeb.debian.org/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://dl.fedoraproject.org/ HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET http://a.b.fedoraproject.org:8080/ HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET http://fedoraproject.org/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://evilfedoraproject.org/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://127.0.0.1:8000/ HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET http://127.0.0.1/ HTTP/1.1\r\n\r\n", 403, "port 80" },
	{ "CONNECT 127.0.0.1:8443 HTTP/1.1\r\n\r\n", 0, NULL },
	{ "CONNECT 127.0.0.1:8000 HTTP/1.1\r\n\r\n", 403, "port 8000" },
	{ "GET http://127.0.0.2:8000/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://localhost:8000/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "GET http://[0::1]:8000/ HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET http://[::2]:8000/ HTTP/1.1\r\n\r\n", 403, "not on the allow-list" },
	{ "CONNECT [::1]:443 HTTP/1.1\r\n\r\n", 403, "port 443" },
};

static void run_allow_cases(void)
{
	static struct uproxy_config cfg;
	static struct uproxy_request r;
	char err[256];

	CHECK(uproxy_config_parse(allow_config, strlen(allow_config), &cfg, err, sizeof(err)) == 0,
	      "the allow-list parses: %s", err);
	for (size_t i = 0; i < sizeof(allow_cases) / sizeof(allow_cases[0]); i++) {
		const struct allow_case *c = &allow_cases[i];
		uint32_t st = uproxy_request_parse((const uint8_t *)c->head, strlen(c->head), &r);

		CHECK(st == 0, "allow row %zu: the request is refused (%s)", i, r.reason);
		if (st)
			continue;
		err[0] = '\0';
		st = uproxy_allowed(&cfg, &r, err, sizeof(err));
		CHECK(st == c->status, "allow row %zu: %u, want %u (%s)", i, (unsigned)st, c->status, err);
		if (c->reason && st == c->status)
			CHECK(strstr(err, c->reason) != NULL, "allow row %zu: '%s' lacks '%s'", i, err, c->reason);
	}
	/* the shipped defaults: Debian's two hosts, port 80 and 443 */
	CHECK(uproxy_config_parse("allow deb.debian.org\n", 21, &cfg, err, sizeof(err)) == 0 &&
	      cfg.allow[0].n_http == 1 && cfg.allow[0].http[0] == 80 && cfg.allow[0].n_https == 1 &&
	      cfg.allow[0].https[0] == 443, "defaults http=80 https=443");
}

/* ---- upstream responses ---- */

struct resp_case {
	const char *head;
	int ret;
	unsigned status;
	const char *out; /* the rewritten head; NULL: not checked */
	const char *err;
};

static const struct resp_case resp_cases[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n", 0, 200,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", NULL },
	{ "HTTP/1.0 304 Not Modified\r\nDate: x\r\n\r\n", 0, 304,
	  "HTTP/1.0 304 Not Modified\r\nDate: x\r\nConnection: close\r\n\r\n", NULL },
	{ "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-2/3\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 206,
	  NULL, NULL },
	{ "HTTP/1.1 404\r\n\r\n", 0, 404, "HTTP/1.1 404\r\nConnection: close\r\n\r\n", NULL },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 200, NULL, NULL },
	{ "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n\r\n", 0, 200, NULL, NULL },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -EPROTO, 0, NULL, "disagree" },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -EPROTO, 0, NULL, "both" },
	{ "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", -EPROTO, 0, NULL, "Content-Length" },
	{ "HTTP/1.1 100 Continue\r\n\r\n", -EPROTO, 0, NULL, "1xx" },
	{ "HTTP/1.1 101 Switching Protocols\r\n\r\n", -EPROTO, 0, NULL, "1xx" },
	{ "HTTP/2 200\r\n\r\n", -EPROTO, 0, NULL, "status line" },
	{ "HTTP/1.1 20 OK\r\n\r\n", -EPROTO, 0, NULL, "status line" },
	{ "HTTP/1.1 200OK\r\n\r\n", -EPROTO, 0, NULL, "status line" },
	{ "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", -EPROTO, 0, NULL, "obs-fold" },
	{ "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -EPROTO, 0, NULL, "CR" },
	{ "HTTP/1.1 200 OK\nX: a\r\n\r\n", -EPROTO, 0, NULL, "LF" },
	{ "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", -EPROTO, 0, NULL, "name" },
	{ "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", -EPROTO, 0, NULL, "control" },
	{ "HTTP/1.1 200 OK\r\n", -EPROTO, 0, NULL, "empty line" },
};

static void run_response_cases(void)
{
	static char out[UPROXY_HEAD_MAX + 64];
	char err[128];

	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		size_t ol = 0;
		unsigned st = 0;
		err[0] = '\0';
		int r = uproxy_response_rewrite((const uint8_t *)c->head, strlen(c->head), out, sizeof(out), &ol,
						&st, err, sizeof(err));

		CHECK(r == c->ret, "response row %zu: %d, want %d (%s)", i, r, c->ret, err);
		if (r != c->ret)
			continue;
		if (r == 0) {
			CHECK(st == c->status, "response row %zu: status %u, want %u", i, st, c->status);
			CHECK(ol >= 23 && memcmp(out + ol - 23, "\r\nConnection: close\r\n\r\n", 23) == 0,
			      "response row %zu: no Connection: close at the end", i);
			if (c->out)
				CHECK(ol == strlen(c->out) && memcmp(out, c->out, ol) == 0,
				      "response row %zu: '%.*s', want '%s'", i, (int)ol, out, c->out);
		} else if (c->err) {
			CHECK(strstr(err, c->err) != NULL, "response row %zu: '%s' lacks '%s'", i, err, c->err);
		}
	}
	/* a head over the output buffer */
	size_t ol;
	unsigned st;
	static const char h[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	CHECK(uproxy_response_rewrite((const uint8_t *)h, sizeof(h) - 1, out, 20, &ol, &st, err, sizeof(err)) ==
	      -ENOSPC, "a small output buffer");
}

static void run_error_response_cases(void)
{
	char buf[1024];
	size_t n = uproxy_error_response(403, "evil.example is not on the allow-list", buf, sizeof(buf));

	CHECK(n == strlen(buf), "error response length");
	CHECK(strncmp(buf, "HTTP/1.1 403 Forbidden\r\n", 24) == 0, "error response status line: %s", buf);
	CHECK(strstr(buf, "\r\nConnection: close\r\n") && strstr(buf, "\r\nContent-Length: 57\r\n") &&
	      strstr(buf, "\r\n\r\nqube.UpdatesProxy: evil.example is not on the allow-list\n"),
	      "error response fields and body: %s", buf);
	n = uproxy_error_response(405, "x", buf, sizeof(buf));
	CHECK(strstr(buf, "\r\nAllow: GET, HEAD, CONNECT\r\n") != NULL, "405 has Allow");
	n = uproxy_error_response(431, "x", buf, 10);
	CHECK(n == 9 && strlen(buf) == 9, "a truncated error response stays terminated");
}

int main(void)
{
	run_request_cases();
	run_cap_cases();
	run_check_cases();
	run_config_cases();
	run_allow_cases();
	run_response_cases();
	run_error_response_cases();
	printf("%d checks, %d failed (%zu request rows, %zu config rows, %zu allow rows, %zu response rows)\n",
	       checks, failures, sizeof(req_cases) / sizeof(req_cases[0]),
	       sizeof(config_cases) / sizeof(config_cases[0]), sizeof(allow_cases) / sizeof(allow_cases[0]),
	       sizeof(resp_cases) / sizeof(resp_cases[0]));
	return failures ? 1 : 0;
}
