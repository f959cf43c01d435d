/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube.UpdatesProxy: the pure part of the host's HTTP forward proxy for
 * the package managers of templates.  Everything here works on bytes in
 * memory: no I/O, no allocation, no global state, so it is unit-tested
 * table by table and fuzzed (rpc/updates-proxy/tests, fuzz/).
 *
 * A template's request head is hostile.  It is accepted only as
 *
 *   GET|HEAD http://HOST[:PORT]/PATH[?QUERY] HTTP/1.1|HTTP/1.0 CRLF
 *   CONNECT HOST:PORT HTTP/1.1|HTTP/1.0 CRLF
 *   (NAME ":" OWS VALUE OWS CRLF)*  CRLF
 *
 * with HOST a lower-cased DNS name (labels of [a-z0-9-]), a dotted-quad
 * IPv4 address or a bracketed IPv6 address, no userinfo, no fragment,
 * header values of printable ASCII, no obs-fold, no bare CR or LF, no
 * Content-Length or Transfer-Encoding (none of the three methods has a
 * body here), at most one Host, which must name the URI's authority.
 * Only a fixed set of headers is forwarded (uproxy_request.fwd); the
 * upstream request is rebuilt from the parsed fields, never copied.
 */
#ifndef QUBE_HTTP_PROXY_H
#define QUBE_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UPROXY_HEAD_MAX    16384u /* request or response head, CRLFCRLF included */
#define UPROXY_HOST_MAX    253u   /* a DNS name; an IPv6 literal is shorter */
#define UPROXY_TARGET_MAX  8192u  /* origin-form path and query */
#define UPROXY_FWD_MAX     8192u  /* the forwarded header lines */
#define UPROXY_REASON_MAX  160u
#define UPROXY_MAX_FIELDS  100u   /* header lines in one head */
#define UPROXY_MAX_ALLOW   256u   /* allow lines in the configuration */
#define UPROXY_MAX_PORTS   8u     /* ports per scheme per allow line */
#define UPROXY_CONFIG_MAX  65536u /* bytes of the configuration file */

enum uproxy_method {
	UPROXY_NONE = 0,
	UPROXY_GET,
	UPROXY_HEAD,
	UPROXY_CONNECT,
};

enum uproxy_host_kind {
	UPROXY_HOST_NAME = 1,
	UPROXY_HOST_IPV4,
	UPROXY_HOST_IPV6, /* host holds the address without brackets */
};

/* A request that passed uproxy_request_parse.  A flat struct of fixed
 * arrays: the parser child hands it to its parent as bytes, and the parent
 * checks it again with uproxy_request_check before using it. */
struct uproxy_request {
	uint32_t status; /* 0: valid; else the HTTP status to refuse with */
	char reason[UPROXY_REASON_MAX]; /* why, when status != 0 */
	uint32_t method; /* enum uproxy_method */
	uint32_t host_kind; /* enum uproxy_host_kind */
	char host[UPROXY_HOST_MAX + 1];
	uint32_t port;
	uint32_t port_explicit; /* the URI named the port */
	char target[UPROXY_TARGET_MAX + 1]; /* GET/HEAD: "/path?query"; CONNECT: "" */
	char fwd[UPROXY_FWD_MAX + 1]; /* GET/HEAD: "Name: value\r\n"... */
	uint32_t minor; /* HTTP/1.minor */
};

/* One allow line: a host (exact), a domain suffix (".example.org": its
 * subdomains, not itself) or an address, with the ports GET/HEAD may use
 * (http) and CONNECT may use (https). */
struct uproxy_allow {
	char host[UPROXY_HOST_MAX + 2];
	bool suffix;
	uint32_t host_kind;
	uint16_t http[UPROXY_MAX_PORTS];
	uint16_t https[UPROXY_MAX_PORTS];
	unsigned n_http, n_https;
};

struct uproxy_config {
	struct uproxy_allow allow[UPROXY_MAX_ALLOW];
	unsigned n_allow;
};

/* Length of the head in buf (through its CRLFCRLF), or 0 if buf holds no
 * complete head yet. */
size_t uproxy_head_length(const uint8_t *buf, size_t len);

/* Parses a request head: exactly LEN bytes ending in CRLFCRLF (nothing
 * after).  Fills *ret entirely either way: status 0 and the fields, or the
 * status to refuse with (400, 405, 414, 431, 505) and a reason.  Returns
 * ret->status. */
uint32_t uproxy_request_parse(const uint8_t *untrusted_head, size_t len,
			      struct uproxy_request *ret);

/* Checks a struct uproxy_request that came from another process: every
 * string terminated within its array and made only of what the parser
 * lets through, the method, host and port consistent.  true if it could
 * have come from uproxy_request_parse with status 0. */
bool uproxy_request_check(const struct uproxy_request *untrusted);
/* The same for a refusal (status != 0): a status the parser sends and a
 * reason of printable ASCII terminated within its array. */
bool uproxy_refusal_check(const struct uproxy_request *untrusted);

/* Parses the configuration (text of LEN bytes): lines
 *   allow HOST [http=PORT[,PORT]...] [https=PORT[,PORT]...]
 * comments (#) and blank lines.  Defaults: http=80, https=443.  0, or
 * -EINVAL with "line N: what" in err. */
int uproxy_config_parse(const char *text, size_t len, struct uproxy_config *ret,
			char *err, size_t errlen);

/* Whether the configuration allows REQ (status 0).  0, or 403 with the
 * reason in err. */
uint32_t uproxy_allowed(const struct uproxy_config *cfg, const struct uproxy_request *req,
			char *err, size_t errlen);

/* The request for the upstream server (GET/HEAD): request line in origin
 * form, Host, the forwarded headers, "Connection: close".  0, or -ENOSPC. */
int uproxy_upstream_request(const struct uproxy_request *req, char *buf, size_t len,
			    size_t *ret_len);

/* Rewrites a response head from upstream (exactly LEN bytes through its
 * CRLFCRLF) for the template: the same status line and fields minus
 * Connection, Keep-Alive and Proxy-Connection, plus "Connection: close".
 * Refuses (-EPROTO, reason in err) what the proxy cannot pass on safely:
 * a malformed status line or field, a 1xx status, obs-fold, Content-Length
 * twice with different values or together with Transfer-Encoding.  0 and
 * *ret_status, or -EPROTO / -ENOSPC. */
int uproxy_response_rewrite(const uint8_t *untrusted_head, size_t len, char *out,
			    size_t outlen, size_t *ret_len, unsigned *ret_status, char *err,
			    size_t errlen);

/* The proxy's own response: "HTTP/1.1 STATUS TEXT", a text/plain body
 * "qube.UpdatesProxy: REASON\n", Content-Length, "Connection: close"
 * (and "Allow" for 405).  Returns the length written (truncated to len -
 * 1 at worst; always terminated). */
size_t uproxy_error_response(unsigned status, const char *reason, char *buf, size_t len);

/* "Bad Request" etc. for the statuses the proxy sends. */
const char *uproxy_status_text(unsigned status);

#endif
