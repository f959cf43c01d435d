/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube.UpdatesProxy: request and response heads, the allow-list and the
 * proxy's own responses.  Pure code (see http-proxy.h): the bytes come
 * from a template (requests) or from a mirror (responses) and are checked
 * before anything is derived from them.
 */
#include "http-proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- characters ---- */

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint8_t to_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* RFC 9110 tchar */
static bool is_tchar(uint8_t c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986: unreserved, sub-delims, ':' '@' (pchar without pct-encoded),
 * and '/' '?' of path and query */
static bool is_target_char(uint8_t c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:@/?", c));
}

/* a field value's characters: VCHAR, SP, HTAB; obs-text only from upstream */
static bool is_value_char(uint8_t c, bool obs_text)
{
	return (c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || (obs_text && c >= 0x80);
}

static bool ieq(const uint8_t *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	if (n != l)
		return false;
	for (size_t i = 0; i < n; i++)
		if (to_lower(s[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

static const uint8_t *find_crlf(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '\r' && s[i + 1] == '\n')
			return s + i;
	return NULL;
}

/* No NUL, no CR without LF, no LF without CR anywhere in a head. */
static const char *scan_line_ends(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0)
			return "a NUL byte in the head";
		if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return "a CR without LF in the head";
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return "an LF without CR in the head";
	}
	return NULL;
}

size_t uproxy_head_length(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			return i + 4;
	return 0;
}

/* ---- hosts and ports ---- */

/* A DNS name: labels of 1-63 [a-z0-9-] (input of either case), no '-' at
 * a label's ends, at most UPROXY_HOST_MAX bytes, and a last label with a
 * letter in it (so that no resolver reads it as a number).  Written lower
 * case to out (UPROXY_HOST_MAX + 1 bytes). */
static bool parse_name(const uint8_t *s, size_t n, char *out)
{
	size_t label = 0;
	bool letter = false;

	if (n == 0 || n > UPROXY_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = to_lower(s[i]);

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			letter = false;
		} else if (is_alpha(c) || is_digit(c) || c == '-') {
			if (c == '-' && label == 0)
				return false;
			if (++label > 63)
				return false;
			letter = letter || is_alpha(c);
		} else {
			return false;
		}
		out[i] = (char)c;
	}
	if (label == 0 || s[n - 1] == '-' || !letter)
		return false;
	out[n] = '\0';
	return true;
}

/* Dotted-quad IPv4: four decimal parts 0-255 without leading zeros. */
static bool parse_ipv4(const uint8_t *s, size_t n, char *out)
{
	size_t i = 0;

	if (n == 0 || n > 15)
		return false;
	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;

		while (i < n && is_digit(s[i])) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		if (i == start || i - start > 3 || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
		if (part < 3) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	if (i != n)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* An IPv6 address (no brackets, no zone), written in inet_ntop's form. */
static bool parse_ipv6(const uint8_t *s, size_t n, char *out)
{
	char tmp[64];
	struct in6_addr a;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET6, tmp, &a) != 1)
		return false;
	return inet_ntop(AF_INET6, &a, out, UPROXY_HOST_MAX + 1) != NULL;
}

/* A host as a URI writes it: name, IPv4 or [IPv6]; *ret_kind and out. */
static const char *parse_host(const uint8_t *s, size_t n, char *out, uint32_t *ret_kind)
{
	bool numeric = true;

	if (n == 0)
		return "an empty host";
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']' || !parse_ipv6(s + 1, n - 2, out))
			return "an invalid IPv6 address";
		*ret_kind = UPROXY_HOST_IPV6;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		numeric = numeric && (is_digit(s[i]) || s[i] == '.');
	if (numeric) {
		if (!parse_ipv4(s, n, out))
			return "a numeric host that is not a dotted-quad IPv4 address";
		*ret_kind = UPROXY_HOST_IPV4;
		return NULL;
	}
	if (!parse_name(s, n, out))
		return "an invalid host name (labels of [a-z0-9-], a letter in the last)";
	*ret_kind = UPROXY_HOST_NAME;
	return NULL;
}

/* 1-65535 in decimal, no sign, no leading zero. */
static bool parse_port(const uint8_t *s, size_t n, uint32_t *ret)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*ret = v;
	return true;
}

/* HOST[:PORT] (PORT required when need_port). */
static const char *parse_authority(const uint8_t *s, size_t n, bool need_port, char *host,
				   uint32_t *ret_kind, uint32_t *ret_port, bool *ret_explicit)
{
	size_t hlen = n;
	const char *why;

	if (memchr(s, '@', n))
		return "userinfo (user@) in the URI";
	if (n > 0 && s[0] == '[') {
		const uint8_t *close = memchr(s, ']', n);

		if (!close)
			return "an invalid IPv6 address";
		hlen = (size_t)(close - s) + 1;
		if (hlen < n && s[hlen] != ':')
			return "bytes after an IPv6 address";
	} else {
		const uint8_t *colon = memchr(s, ':', n);

		if (colon)
			hlen = (size_t)(colon - s);
	}
	why = parse_host(s, hlen, host, ret_kind);
	if (why)
		return why;
	*ret_explicit = hlen < n;
	if (hlen < n) {
		if (!parse_port(s + hlen + 1, n - hlen - 1, ret_port))
			return "an invalid port (1-65535)";
	} else if (need_port) {
		return "no port (CONNECT needs HOST:PORT)";
	}
	return NULL;
}

/* ---- requests ---- */

/* The request headers passed on to a mirror, in their usual spelling. */
static const char *const fwd_names[] = {
	"Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "If-Modified-Since",
	"If-None-Match", "If-Range", "If-Unmodified-Since", "Pragma", "Range", "User-Agent",
};
#define N_FWD (sizeof(fwd_names) / sizeof(fwd_names[0]))

static int fwd_index(const uint8_t *name, size_t n)
{
	for (size_t i = 0; i < N_FWD; i++) {
		size_t l = strlen(fwd_names[i]);

		if (n != l)
			continue;
		size_t k = 0;
		while (k < n && to_lower(name[k]) == to_lower((uint8_t)fwd_names[i][k]))
			k++;
		if (k == n)
			return (int)i;
	}
	return -1;
}

static uint32_t refuse(struct uproxy_request *r, uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static uint32_t refuse(struct uproxy_request *r, uint32_t status, const char *fmt, ...)
{
	va_list ap;

	memset(r, 0, sizeof(*r));
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return status;
}

static const char *method_name(uint32_t m)
{
	return m == UPROXY_GET ? "GET" : m == UPROXY_HEAD ? "HEAD" : m == UPROXY_CONNECT ? "CONNECT" : "?";
}

/* path-abempty [ "?" query ] after the authority: percent escapes must be
 * two hex digits and not %00; written to r->target with a leading '/'. */
static uint32_t parse_origin(const uint8_t *s, size_t n, struct uproxy_request *r)
{
	size_t o = 0;

	if (n == 0 || s[0] != '/')
		r->target[o++] = '/';
	if (n + o > UPROXY_TARGET_MAX)
		return refuse(r, 414, "the URI's path and query are over %u bytes", UPROXY_TARGET_MAX);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];

		if (c == '%') {
			if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
				return refuse(r, 400, "a '%%' in the URI without two hex digits");
			if (s[i + 1] == '0' && s[i + 2] == '0')
				return refuse(r, 400, "%%00 in the URI");
		} else if (!is_target_char(c)) {
			return refuse(r, 400, "a byte 0x%02x the URI may not hold", c);
		}
		r->target[o++] = (char)c;
	}
	r->target[o] = '\0';
	return 0;
}

/* GET/HEAD: "http://" authority [path-abempty ["?" query]]. */
static uint32_t parse_absolute(const uint8_t *s, size_t n, struct uproxy_request *r)
{
	static const char http[] = "http://", https[] = "https://";
	size_t a = sizeof(http) - 1, end;
	bool expl = false;
	const char *why;

	if (memchr(s, '#', n))
		return refuse(r, 400, "a fragment (#) in the URI");
	if (n >= sizeof(https) - 1 && ieq(s, sizeof(https) - 1, https))
		return refuse(r, 400, "an https:// URI (https goes through CONNECT)");
	if (n < a || !ieq(s, a, http))
		return refuse(r, 400, "not an absolute http:// URI");
	for (end = a; end < n && s[end] != '/' && s[end] != '?'; end++)
		;
	r->port = 80;
	why = parse_authority(s + a, end - a, false, r->host, &r->host_kind, &r->port, &expl);
	if (why)
		return refuse(r, 400, "%s", why);
	r->port_explicit = expl;
	return parse_origin(s + end, n - end, r);
}

/* The Host field must name the request's own authority. */
static bool host_matches(const uint8_t *v, size_t n, const struct uproxy_request *r)
{
	char host[UPROXY_HOST_MAX + 1];
	uint32_t kind = 0, port = r->method == UPROXY_CONNECT ? 443 : 80;
	bool expl = false;

	if (parse_authority(v, n, false, host, &kind, &port, &expl))
		return false;
	return kind == r->host_kind && strcmp(host, r->host) == 0 && port == r->port;
}

uint32_t uproxy_request_parse(const uint8_t *untrusted_head, size_t len, struct uproxy_request *ret)
{
	const uint8_t *s = untrusted_head, *eol, *p, *end;
	const char *why;
	unsigned fields = 0, n_host = 0, n_length = 0, n_te = 0;
	bool seen[N_FWD] = { false };
	size_t fwd_len = 0;

	memset(ret, 0, sizeof(*ret));
	if (len > UPROXY_HEAD_MAX)
		return refuse(ret, 431, "the request head is over %u bytes", UPROXY_HEAD_MAX);
	if (len < 4 || uproxy_head_length(s, len) != len)
		return refuse(ret, 400, "the request head does not end with an empty line");
	why = scan_line_ends(s, len);
	if (why)
		return refuse(ret, 400, "%s", why);

	/* request line: METHOD SP TARGET SP HTTP/1.x */
	eol = find_crlf(s, len);
	const uint8_t *sp1 = memchr(s, ' ', (size_t)(eol - s));
	if (!sp1 || sp1 == s)
		return refuse(ret, 400, "a malformed request line");
	for (p = s; p < sp1; p++)
		if (!is_tchar(*p))
			return refuse(ret, 400, "a malformed method");
	if ((size_t)(sp1 - s) == 3 && memcmp(s, "GET", 3) == 0)
		ret->method = UPROXY_GET;
	else if ((size_t)(sp1 - s) == 4 && memcmp(s, "HEAD", 4) == 0)
		ret->method = UPROXY_HEAD;
	else if ((size_t)(sp1 - s) == 7 && memcmp(s, "CONNECT", 7) == 0)
		ret->method = UPROXY_CONNECT;
	else
		return refuse(ret, 405, "method %.*s is not allowed (GET, HEAD, CONNECT)",
			      (int)(sp1 - s > 16 ? 16 : sp1 - s), (const char *)s);
	const uint8_t *tgt = sp1 + 1;
	const uint8_t *sp2 = memchr(tgt, ' ', (size_t)(eol - tgt));
	if (!sp2 || sp2 == tgt)
		return refuse(ret, 400, "a malformed request line");
	for (p = tgt; p < sp2; p++)
		if (*p < 0x21 || *p > 0x7e)
			return refuse(ret, 400, "a byte 0x%02x the URI may not hold", *p);
	const uint8_t *ver = sp2 + 1;
	size_t vlen = (size_t)(eol - ver);
	if (vlen == 8 && memcmp(ver, "HTTP/1.1", 8) == 0)
		ret->minor = 1;
	else if (vlen == 8 && memcmp(ver, "HTTP/1.0", 8) == 0)
		ret->minor = 0;
	else if (vlen >= 5 && memcmp(ver, "HTTP/", 5) == 0 && vlen <= 8 && !memchr(ver, ' ', vlen))
		return refuse(ret, 505, "only HTTP/1.1 and HTTP/1.0");
	else
		return refuse(ret, 400, "a malformed request line");
	if ((size_t)(sp2 - tgt) > UPROXY_TARGET_MAX + 512)
		return refuse(ret, 414, "the URI is over %u bytes", UPROXY_TARGET_MAX + 512);

	uint32_t method = ret->method, minor = ret->minor, st;
	if (method == UPROXY_CONNECT) {
		bool expl = false;

		why = parse_authority(tgt, (size_t)(sp2 - tgt), true, ret->host, &ret->host_kind,
				      &ret->port, &expl);
		if (why)
			return refuse(ret, 400, "%s", why);
		ret->port_explicit = 1;
		ret->target[0] = '\0';
	} else {
		st = parse_absolute(tgt, (size_t)(sp2 - tgt), ret);
		if (st)
			return st;
	}
	ret->method = method;
	ret->minor = minor;

	/* fields */
	end = s + len - 2; /* the final CRLF */
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = find_crlf(p, (size_t)(s + len - p));
		if (++fields > UPROXY_MAX_FIELDS)
			return refuse(ret, 431, "more than %u header fields", UPROXY_MAX_FIELDS);
		if (*p == ' ' || *p == '\t')
			return refuse(ret, 400, "a folded header line (obs-fold)");
		const uint8_t *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return refuse(ret, 400, "a header line without a name");
		for (const uint8_t *q = p; q < colon; q++)
			if (!is_tchar(*q))
				return refuse(ret, 400, "a header name with a byte 0x%02x (whitespace before ':'?)", *q);
		const uint8_t *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const uint8_t *q = v; q < ve; q++)
			if (!is_value_char(*q, false))
				return refuse(ret, 400, "a header value with a byte 0x%02x", *q);
		size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);

		if (ieq(p, nl, "host")) {
			if (++n_host > 1)
				return refuse(ret, 400, "more than one Host field");
			if (!host_matches(v, vl, ret))
				return refuse(ret, 400, "the Host field does not name the URI's host and port");
		} else if (ieq(p, nl, "content-length")) {
			n_length++;
		} else if (ieq(p, nl, "transfer-encoding")) {
			n_te++;
		} else if (method != UPROXY_CONNECT) {
			int k = fwd_index(p, nl);

			if (k < 0)
				continue; /* not passed on */
			if (seen[k])
				return refuse(ret, 400, "more than one %s field", fwd_names[k]);
			seen[k] = true;
			size_t need = strlen(fwd_names[k]) + 2 + vl + 2;
			if (fwd_len + need > UPROXY_FWD_MAX)
				return refuse(ret, 431, "the forwarded header fields are over %u bytes",
					      UPROXY_FWD_MAX);
			fwd_len += (size_t)snprintf(ret->fwd + fwd_len, sizeof(ret->fwd) - fwd_len,
						    "%s: %.*s\r\n", fwd_names[k], (int)vl, (const char *)v);
		}
	}
	if (n_length > 1)
		return refuse(ret, 400, "more than one Content-Length field");
	if (n_length || n_te)
		return refuse(ret, 400, "a request body (%s) on %s", n_te ? "Transfer-Encoding" : "Content-Length",
			      method_name(method));
	return 0;
}

/* ---- a request from the parser process, checked again ---- */

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

bool uproxy_request_check(const struct uproxy_request *untrusted)
{
	const struct uproxy_request *r = untrusted;
	char host[UPROXY_HOST_MAX + 1];
	uint32_t kind = 0;
	size_t n;

	if (r->status != 0 || r->minor > 1 || r->port < 1 || r->port > 65535 || r->port_explicit > 1)
		return false;
	if (r->method != UPROXY_GET && r->method != UPROXY_HEAD && r->method != UPROXY_CONNECT)
		return false;
	if (!terminated(r->host, sizeof(r->host)) || !terminated(r->target, sizeof(r->target)) ||
	    !terminated(r->fwd, sizeof(r->fwd)))
		return false;
	/* the host in the form the parser writes */
	n = strlen(r->host);
	if (r->host_kind == UPROXY_HOST_IPV6) {
		char br[UPROXY_HOST_MAX + 3];

		if (n + 2 >= sizeof(br))
			return false;
		br[0] = '[';
		memcpy(br + 1, r->host, n);
		br[n + 1] = ']';
		if (parse_host((const uint8_t *)br, n + 2, host, &kind))
			return false;
	} else if (parse_host((const uint8_t *)r->host, n, host, &kind)) {
		return false;
	}
	if (kind != r->host_kind || strcmp(host, r->host) != 0)
		return false;
	if (r->method == UPROXY_CONNECT)
		return r->port_explicit && r->target[0] == '\0' && r->fwd[0] == '\0';
	if (!r->port_explicit && r->port != 80)
		return false;
	/* target: '/' then what parse_origin lets through */
	n = strlen(r->target);
	if (n == 0 || r->target[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)r->target[i];

		if (c == '%') {
			if (i + 2 >= n || !is_hex((uint8_t)r->target[i + 1]) ||
			    !is_hex((uint8_t)r->target[i + 2]) ||
			    (r->target[i + 1] == '0' && r->target[i + 2] == '0'))
				return false;
		} else if (!is_target_char(c)) {
			return false;
		}
	}
	/* fwd: "Name: value\r\n" lines, names from the table, each once */
	bool seen[N_FWD] = { false };
	const uint8_t *p = (const uint8_t *)r->fwd, *e = p + strlen(r->fwd);
	while (p < e) {
		const uint8_t *eol = find_crlf(p, (size_t)(e - p));
		const uint8_t *colon;
		int k;

		if (!eol)
			return false;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon + 1 >= eol || colon[1] != ' ')
			return false;
		k = fwd_index(p, (size_t)(colon - p));
		if (k < 0 || seen[k] || memcmp(p, fwd_names[k], strlen(fwd_names[k])) != 0)
			return false;
		seen[k] = true;
		for (const uint8_t *q = colon + 2; q < eol; q++)
			if (!is_value_char(*q, false))
				return false;
		if (colon + 2 < eol && (colon[2] == ' ' || colon[2] == '\t' || eol[-1] == ' ' ||
					eol[-1] == '\t'))
			return false;
		p = eol + 2;
	}
	return true;
}

bool uproxy_refusal_check(const struct uproxy_request *untrusted)
{
	static const uint32_t statuses[] = { 400, 405, 414, 431, 505 };
	bool known = false;
	size_t n;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		known = known || untrusted->status == statuses[i];
	if (!known || !terminated(untrusted->reason, sizeof(untrusted->reason)))
		return false;
	n = strlen(untrusted->reason);
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)untrusted->reason[i] < 0x20 || (uint8_t)untrusted->reason[i] > 0x7e)
			return false;
	return true;
}

/* ---- configuration ---- */

static int config_error(char *err, size_t errlen, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int config_error(char *err, size_t errlen, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "line %u: ", line);

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* "80,8080" or "none" into ports[]. */
static bool parse_port_list(const char *s, size_t n, uint16_t *ports, unsigned *ret_n)
{
	unsigned k = 0;
	size_t i = 0;

	if (n == 4 && memcmp(s, "none", 4) == 0) {
		*ret_n = 0;
		return true;
	}
	while (i <= n) {
		size_t j = i;
		uint32_t v;

		while (j < n && s[j] != ',')
			j++;
		if (k == UPROXY_MAX_PORTS || !parse_port((const uint8_t *)s + i, j - i, &v))
			return false;
		for (unsigned m = 0; m < k; m++)
			if (ports[m] == v)
				return false;
		ports[k++] = (uint16_t)v;
		i = j + 1;
	}
	*ret_n = k;
	return true;
}

int uproxy_config_parse(const char *text, size_t len, struct uproxy_config *ret, char *err,
			size_t errlen)
{
	unsigned lineno = 0;
	size_t i = 0;

	memset(ret, 0, sizeof(*ret));
	if (len > UPROXY_CONFIG_MAX)
		return config_error(err, errlen, 0, "the file is over %u bytes", UPROXY_CONFIG_MAX);
	while (i < len) {
		size_t e = i, cut;
		const char *tok[8];
		size_t tlen[8];
		unsigned nt = 0;

		while (e < len && text[e] != '\n')
			e++;
		lineno++;
		for (size_t k = i; k < e; k++) {
			uint8_t c = (uint8_t)text[k];
			if (c == 0 || c >= 0x7f || (c < 0x20 && c != '\t' && c != '\r'))
				return config_error(err, errlen, lineno, "a byte 0x%02x", c);
		}
		if (e - i > 1024)
			return config_error(err, errlen, lineno, "over 1024 bytes");
		cut = i;
		while (cut < e && text[cut] != '#')
			cut++;
		/* tokens */
		for (size_t k = i; k < cut;) {
			while (k < cut && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r'))
				k++;
			if (k == cut)
				break;
			size_t s = k;
			while (k < cut && text[k] != ' ' && text[k] != '\t' && text[k] != '\r')
				k++;
			if (nt == 8)
				return config_error(err, errlen, lineno, "too many words");
			tok[nt] = text + s;
			tlen[nt++] = k - s;
		}
		i = e + 1;
		if (nt == 0)
			continue;
		if (tlen[0] != 5 || memcmp(tok[0], "allow", 5) != 0)
			return config_error(err, errlen, lineno, "'%.*s': expected 'allow HOST [http=PORTS] [https=PORTS]'",
					    (int)(tlen[0] > 32 ? 32 : tlen[0]), tok[0]);
		if (nt < 2)
			return config_error(err, errlen, lineno, "allow: no host");
		if (ret->n_allow == UPROXY_MAX_ALLOW)
			return config_error(err, errlen, lineno, "more than %u allow lines", UPROXY_MAX_ALLOW);
		struct uproxy_allow *a = &ret->allow[ret->n_allow];
		const char *h = tok[1];
		size_t hl = tlen[1];
		memset(a, 0, sizeof(*a));
		if (hl > 0 && h[0] == '.') {
			a->suffix = true;
			a->host[0] = '.';
			if (!parse_name((const uint8_t *)h + 1, hl - 1, a->host + 1))
				return config_error(err, errlen, lineno, "'%.*s': not a domain after the '.'",
						    (int)(hl > 64 ? 64 : hl), h);
			a->host_kind = UPROXY_HOST_NAME;
		} else if (parse_host((const uint8_t *)h, hl, a->host, &a->host_kind)) {
			return config_error(err, errlen, lineno, "'%.*s': not a host name or address",
					    (int)(hl > 64 ? 64 : hl), h);
		}
		a->http[0] = 80;
		a->n_http = 1;
		a->https[0] = 443;
		a->n_https = 1;
		bool got_http = false, got_https = false;
		for (unsigned t = 2; t < nt; t++) {
			if (tlen[t] > 5 && memcmp(tok[t], "http=", 5) == 0 && !got_http) {
				got_http = true;
				if (!parse_port_list(tok[t] + 5, tlen[t] - 5, a->http, &a->n_http))
					return config_error(err, errlen, lineno,
							    "http=: want 1-%u different ports (1-65535) or none",
							    UPROXY_MAX_PORTS);
			} else if (tlen[t] > 6 && memcmp(tok[t], "https=", 6) == 0 && !got_https) {
				got_https = true;
				if (!parse_port_list(tok[t] + 6, tlen[t] - 6, a->https, &a->n_https))
					return config_error(err, errlen, lineno,
							    "https=: want 1-%u different ports (1-65535) or none",
							    UPROXY_MAX_PORTS);
			} else {
				return config_error(err, errlen, lineno, "'%.*s': expected http=PORTS or https=PORTS, once each",
						    (int)(tlen[t] > 32 ? 32 : tlen[t]), tok[t]);
			}
		}
		ret->n_allow++;
	}
	return 0;
}

static bool allow_host_matches(const struct uproxy_allow *a, const struct uproxy_request *r)
{
	if (a->suffix) {
		size_t hl = strlen(r->host), sl = strlen(a->host);

		return r->host_kind == UPROXY_HOST_NAME && hl > sl &&
		       strcmp(r->host + hl - sl, a->host) == 0;
	}
	return a->host_kind == r->host_kind && strcmp(a->host, r->host) == 0;
}

uint32_t uproxy_allowed(const struct uproxy_config *cfg, const struct uproxy_request *req, char *err,
			size_t errlen)
{
	bool host_known = false;
	bool https = req->method == UPROXY_CONNECT;

	for (unsigned i = 0; i < cfg->n_allow; i++) {
		const struct uproxy_allow *a = &cfg->allow[i];
		const uint16_t *ports = https ? a->https : a->http;
		unsigned n = https ? a->n_https : a->n_http;

		if (!allow_host_matches(a, req))
			continue;
		host_known = true;
		for (unsigned k = 0; k < n; k++)
			if (ports[k] == req->port)
				return 0;
	}
	if (host_known)
		snprintf(err, errlen, "%s to %s port %u is not allowed (%s ports of its allow line)",
			 method_name(req->method), req->host, (unsigned)req->port,
			 https ? "https=" : "http=");
	else
		snprintf(err, errlen, "%s is not on the allow-list", req->host);
	return 403;
}

/* ---- upstream request ---- */

int uproxy_upstream_request(const struct uproxy_request *req, char *buf, size_t len,
			    size_t *ret_len)
{
	bool v6 = req->host_kind == UPROXY_HOST_IPV6;
	char port[16] = "";
	int n;

	if (req->method != UPROXY_GET && req->method != UPROXY_HEAD)
		return -EINVAL;
	if (req->port != 80)
		snprintf(port, sizeof(port), ":%u", (unsigned)req->port);
	n = snprintf(buf, len, "%s %s HTTP/1.1\r\nHost: %s%s%s%s\r\n%sConnection: close\r\n\r\n",
		     method_name(req->method), req->target, v6 ? "[" : "", req->host, v6 ? "]" : "",
		     port, req->fwd);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	*ret_len = (size_t)n;
	return 0;
}

/* ---- responses from upstream ---- */

static int resp_error(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -EPROTO;
}

int uproxy_response_rewrite(const uint8_t *untrusted_head, size_t len, char *out, size_t outlen,
			    size_t *ret_len, unsigned *ret_status, char *err, size_t errlen)
{
	const uint8_t *s = untrusted_head, *eol, *p, *end;
	const char *why;
	unsigned fields = 0, n_length = 0, status;
	bool te = false;
	const uint8_t *length_v = NULL;
	size_t length_n = 0, o = 0;

	if (len > UPROXY_HEAD_MAX)
		return resp_error(err, errlen, "the response head is too long");
	if (len < 4 || uproxy_head_length(s, len) != len)
		return resp_error(err, errlen, "the response head does not end with an empty line");
	why = scan_line_ends(s, len);
	if (why)
		return resp_error(err, errlen, why);
	eol = find_crlf(s, len);
	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (eol - s < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
	    !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (eol - s > 12 && s[12] != ' '))
		return resp_error(err, errlen, "a malformed status line");
	for (p = s + 12; p < eol; p++)
		if (*p != '\t' && (*p < 0x20 || *p > 0x7e))
			return resp_error(err, errlen, "a status line with a control or non-ASCII byte");
	status = (unsigned)(s[9] - '0') * 100 + (unsigned)(s[10] - '0') * 10 + (unsigned)(s[11] - '0');
	if (status < 200 || status > 599)
		return resp_error(err, errlen, "a status the proxy does not pass on (1xx or out of range)");
	if ((size_t)(eol - s) + 2 > outlen)
		return -ENOSPC;
	memcpy(out, s, (size_t)(eol - s) + 2);
	o = (size_t)(eol - s) + 2;
	end = s + len - 2;
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = find_crlf(p, (size_t)(s + len - p));
		if (++fields > UPROXY_MAX_FIELDS)
			return resp_error(err, errlen, "too many header fields");
		if (*p == ' ' || *p == '\t')
			return resp_error(err, errlen, "a folded header line (obs-fold)");
		const uint8_t *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return resp_error(err, errlen, "a header line without a name");
		for (const uint8_t *q = p; q < colon; q++)
			if (!is_tchar(*q))
				return resp_error(err, errlen, "a malformed header name");
		const uint8_t *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const uint8_t *q = v; q < ve; q++)
			if (!is_value_char(*q, true))
				return resp_error(err, errlen, "a header value with a control byte");
		size_t nl = (size_t)(colon - p);
		if (ieq(p, nl, "connection") || ieq(p, nl, "keep-alive") || ieq(p, nl, "proxy-connection"))
			continue;
		if (ieq(p, nl, "content-length")) {
			size_t vl = (size_t)(ve - v);

			if (vl == 0 || vl > 19)
				return resp_error(err, errlen, "a malformed Content-Length");
			for (size_t k = 0; k < vl; k++)
				if (!is_digit(v[k]))
					return resp_error(err, errlen, "a malformed Content-Length");
			if (n_length++ && (vl != length_n || memcmp(v, length_v, vl) != 0))
				return resp_error(err, errlen, "Content-Length fields that disagree");
			length_v = v;
			length_n = vl;
		} else if (ieq(p, nl, "transfer-encoding")) {
			te = true;
		}
		if (o + (size_t)(eol - p) + 2 > outlen)
			return -ENOSPC;
		memcpy(out + o, p, (size_t)(eol - p) + 2);
		o += (size_t)(eol - p) + 2;
	}
	if (te && n_length)
		return resp_error(err, errlen, "both Transfer-Encoding and Content-Length");
	static const char close_hdr[] = "Connection: close\r\n\r\n";
	if (o + sizeof(close_hdr) - 1 > outlen)
		return -ENOSPC;
	memcpy(out + o, close_hdr, sizeof(close_hdr) - 1);
	*ret_len = o + sizeof(close_hdr) - 1;
	*ret_status = status;
	return 0;
}

/* ---- the proxy's own responses ---- */

const char *uproxy_status_text(unsigned status)
{
	switch (status) {
	case 200: return "Connection established";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

size_t uproxy_error_response(unsigned status, const char *reason, char *buf, size_t len)
{
	char body[UPROXY_REASON_MAX + 64];
	int bn, n;

	bn = snprintf(body, sizeof(body), "qube.UpdatesProxy: %s\n", reason);
	if (bn < 0)
		bn = 0;
	if ((size_t)bn >= sizeof(body))
		bn = (int)sizeof(body) - 1;
	n = snprintf(buf, len,
		     "HTTP/1.1 %u %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n"
		     "Connection: close\r\n\r\n%.*s",
		     status, uproxy_status_text(status),
		     status == 405 ? "Allow: GET, HEAD, CONNECT\r\n" : "", bn, bn, body);
	if (n < 0 || len == 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}
