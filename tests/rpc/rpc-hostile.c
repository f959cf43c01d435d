/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-hostile: a hostile qube.  Connects to the broker's per-qube socket
 * (QUBES_DIR/NAME/vsock_513, the way a guest's connection arrives) and
 * writes raw bytes of one class of malformed or out-of-order traffic, then
 * checks the broker's reaction:
 *
 *   exit 0  clean refusal: the broker sent nothing but its HELLO and at most
 *           a CALL_RESULT that is not ALLOWED, then closed the connection
 *   exit 1  the broker let something through (ALLOWED, stream data) or did
 *           not close the connection within the time limit
 *   exit 2  usage or local error
 *
 *   rpc-hostile SOCKET CASE      (rpc-hostile --list prints the cases)
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qrpc.h"

#define WAIT_MS 20000

#define RAW_WIRE_MAX (1 << 17)
#include "raw-wire.h"

/* a length-prefixed string field of N raw bytes */
static void field(const char *s, size_t n)
{
	out[out_len++] = (uint8_t)n;
	memcpy(out + out_len, s, n);
	out_len += n;
}

/* CALL_REQUEST with raw fields (lengths as given, bytes as given) */
static void request_raw(const char *t, size_t tn, const char *s, size_t sn, const char *a,
			size_t an)
{
	header(QRPC_MSG_CALL_REQUEST, (uint32_t)(3 + tn + sn + an));
	field(t, tn);
	field(s, sn);
	field(a, an);
}

static void request(const char *t, const char *s, const char *a)
{
	request_raw(t, strlen(t), s, strlen(s), a, strlen(a));
}

static void data(uint32_t type, const char *s)
{
	header(type, (uint32_t)strlen(s));
	memcpy(out + out_len, s, strlen(s));
	out_len += strlen(s);
}

struct hcase {
	const char *name;
	const char *what;
	void (*build)(void);
	bool shut_wr;   /* half-close after writing */
	bool trickle;   /* write one byte at a time */
};

/* the target and service a normal call from the test's qube would use */
static const char *good_target = "personal";
static const char *good_service = "test.Echo";

static void c_truncated_header(void) { hello(); put32(QRPC_MSG_CALL_REQUEST); }
static void c_truncated_payload(void)
{
	hello();
	header(QRPC_MSG_CALL_REQUEST, 30);
	field("personal", 8);
}
static void c_trailing(void)
{
	hello();
	header(QRPC_MSG_CALL_REQUEST, (uint32_t)(3 + 8 + 9 + 0 + 5));
	field("personal", 8);
	field("test.Echo", 9);
	field("", 0);
	memcpy(out + out_len, "extra", 5);
	out_len += 5;
}
static void c_hello_trailing(void)
{
	header(QRPC_MSG_HELLO, 9);
	put32(1);
	put32(1);
	out[out_len++] = 0;
}
static void c_nul_service(void) { hello(); request_raw("personal", 8, "test\0Echo", 9, "", 0); }
static void c_nul_target(void) { hello(); request_raw("pers\0nal", 8, "test.Echo", 9, "", 0); }
static void c_nul_argument(void) { hello(); request_raw("personal", 8, "test.Echo", 9, "a\0b", 3); }
static void c_field_overrun(void)
{
	/* field length says 200 inside a short payload */
	hello();
	header(QRPC_MSG_CALL_REQUEST, 12);
	out[out_len++] = 200;
	memcpy(out + out_len, "personal123", 11);
	out_len += 11;
}
static void c_oversized_hello(void) { header(QRPC_MSG_HELLO, 1000); }
static void c_oversized_request(void) { hello(); header(QRPC_MSG_CALL_REQUEST, 100000); }
static void c_huge_length(void) { hello(); header(QRPC_MSG_STDIN, 0xffffffffu); }
static void c_unknown_type(void) { hello(); header(0x99, 0); }
static void c_zero_type(void) { header(0, 0); }
static void c_request_before_hello(void) { request(good_target, good_service, ""); }
static void c_two_hellos(void) { hello(); hello(); }
static void c_two_requests(void)
{
	hello();
	request("vault", good_service, "");
	request(good_target, good_service, "");
}
static void c_empty_service(void) { hello(); request(good_target, "", ""); }
static void c_empty_target(void) { hello(); request("", good_service, ""); }
static void c_dollar(void) { hello(); request(good_target, "test.$Echo", ""); }
static void c_space(void) { hello(); request(good_target, "test.Echo x", ""); }
static void c_slash(void) { hello(); request(good_target, "../test.Echo", ""); }
static void c_slash_target(void) { hello(); request("../vault", good_service, ""); }
static void c_slash_argument(void) { hello(); request(good_target, good_service, "a/b"); }
static void c_shell_meta(void) { hello(); request(good_target, "test.Echo;id", ""); }
static void c_backtick(void) { hello(); request(good_target, "`id`", ""); }
static void c_shell_argument(void) { hello(); request(good_target, good_service, "$(id)"); }
static void c_newline(void) { hello(); request(good_target, "test.Echo\nx", ""); }
static void c_high_bytes(void) { hello(); request(good_target, "test.\xc3\xa9", ""); }
static void c_dot_service(void) { hello(); request(good_target, "..", ""); }
static void c_long_service(void)
{
	char s[200];

	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	hello();
	request(good_target, s, "");
}
static void c_bad_keyword(void) { hello(); request("@anyvm", good_service, ""); }
static void c_data_before_allowed(void)
{
	hello();
	request(good_target, good_service, "");
	data(QRPC_MSG_STDIN, "sneaked in before the decision");
}
static void c_eof_before_allowed(void)
{
	hello();
	request(good_target, good_service, "");
	header(QRPC_MSG_EOF, 4);
	put32(QRPC_STREAM_STDIN);
}
static void c_stdin_before_request(void) { hello(); data(QRPC_MSG_STDIN, "x"); }
static void c_wrong_dir_result(void)
{
	hello();
	header(QRPC_MSG_CALL_RESULT, 8);
	put32(QRPC_CALL_ALLOWED);
	put32(0);
}
static void c_wrong_dir_stdout(void) { hello(); data(QRPC_MSG_STDOUT, "pretend output"); }
static void c_wrong_dir_exit(void)
{
	hello();
	header(QRPC_MSG_EXIT, 4);
	put32(0);
}
/* the CALL channel has no source field: a peer that claims to be another
 * qube can only try the SERVICE channel's message, which is refused */
static void c_claim_other_qube(void)
{
	hello();
	header(QRPC_MSG_SERVICE_START, (uint32_t)(4 + 5 + 9 + 0 + 8));
	field("vault", 5);
	field("test.Echo", 9);
	field("", 0);
	field("personal", 8);
}
static void c_bad_version(void)
{
	header(QRPC_MSG_HELLO, 8);
	put32(1000);
	put32(2000);
}
static void c_silent(void) {}
static void c_garbage(void)
{
	for (int i = 0; i < 4096; i++)
		out[out_len++] = (uint8_t)(i * 7919u >> 3);
}

static const struct hcase cases[] = {
	{ "truncated-header", "message cut inside its header", c_truncated_header, true, false },
	{ "truncated-payload", "message cut inside its payload", c_truncated_payload, true, false },
	{ "trailing-bytes", "CALL_REQUEST with bytes after its fields", c_trailing, false, false },
	{ "hello-trailing", "HELLO one byte too long", c_hello_trailing, false, false },
	{ "nul-service", "NUL inside the service name", c_nul_service, false, false },
	{ "nul-target", "NUL inside the target", c_nul_target, false, false },
	{ "nul-argument", "NUL inside the argument", c_nul_argument, false, false },
	{ "field-overrun", "string length beyond the payload", c_field_overrun, false, false },
	{ "oversized-hello", "HELLO declaring 1000 bytes", c_oversized_hello, false, false },
	{ "oversized-request", "CALL_REQUEST declaring 100000 bytes", c_oversized_request, false, false },
	{ "huge-length", "data message declaring 4 GiB", c_huge_length, false, false },
	{ "unknown-type", "message type 0x99", c_unknown_type, false, false },
	{ "zero-type", "message type 0", c_zero_type, false, false },
	{ "request-before-hello", "CALL_REQUEST as the first message", c_request_before_hello, false, false },
	{ "two-hellos", "HELLO twice", c_two_hellos, false, false },
	{ "two-requests", "a second CALL_REQUEST", c_two_requests, false, false },
	{ "empty-service", "empty service name", c_empty_service, false, false },
	{ "empty-target", "empty target", c_empty_target, false, false },
	{ "dollar", "'$' in the service name", c_dollar, false, false },
	{ "space", "space in the service name", c_space, false, false },
	{ "slash", "'/' and '..' in the service name", c_slash, false, false },
	{ "slash-target", "'/' in the target", c_slash_target, false, false },
	{ "slash-argument", "'/' in the argument", c_slash_argument, false, false },
	{ "shell-meta", "';' in the service name", c_shell_meta, false, false },
	{ "backtick", "backticks as the service name", c_backtick, false, false },
	{ "shell-argument", "$(...) as the argument", c_shell_argument, false, false },
	{ "newline", "newline in the service name", c_newline, false, false },
	{ "high-bytes", "non-ASCII bytes in the service name", c_high_bytes, false, false },
	{ "dot-service", "\"..\" as the service name", c_dot_service, false, false },
	{ "long-service", "199-byte service name", c_long_service, false, false },
	{ "bad-keyword", "@anyvm as the requested target", c_bad_keyword, false, false },
	{ "data-before-allowed", "STDIN right after the request", c_data_before_allowed, false, false },
	{ "eof-before-allowed", "stdin EOF right after the request", c_eof_before_allowed, false, false },
	{ "stdin-before-request", "STDIN before any request", c_stdin_before_request, false, false },
	{ "wrong-dir-result", "CALL_RESULT sent to the broker", c_wrong_dir_result, false, false },
	{ "wrong-dir-stdout", "STDOUT sent to the broker", c_wrong_dir_stdout, false, false },
	{ "wrong-dir-exit", "EXIT sent to the broker", c_wrong_dir_exit, false, false },
	{ "claim-other-qube", "SERVICE_START claiming to come from vault", c_claim_other_qube, false, false },
	{ "bad-version", "HELLO with no common version", c_bad_version, false, false },
	{ "garbage", "4 KiB of noise", c_garbage, false, false },
	{ "trickle-invalid", "an invalid request one byte at a time", c_dollar, false, true },
	{ "silent", "connects and sends nothing", c_silent, false, false },
};

static int now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Reads everything the broker sends until it closes; 0 if all of it is a
 * clean refusal. */
static int judge(int fd, const char *name)
{
	static uint8_t in[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD + 1];
	size_t len = 0;
	int deadline = now_ms() + WAIT_MS;
	int n_msgs = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			printf("%s: broker did not close the connection within %d ms\n", name, WAIT_MS);
			return 1;
		}
		if (poll(&p, 1, left) <= 0)
			continue;
		n = read(fd, in + len, sizeof(in) - len);
		if (n < 0 && errno == ECONNRESET)
			n = 0;
		if (n < 0) {
			printf("%s: read: %s\n", name, strerror(errno));
			return 1;
		}
		if (n == 0) {
			if (len != 0) {
				printf("%s: broker closed inside a message\n", name);
				return 1;
			}
			printf("%s: refused cleanly (%d message(s) from the broker, then close)\n",
			       name, n_msgs);
			return 0;
		}
		len += (size_t)n;
		for (;;) {
			struct qrpc_msg m;
			size_t used;
			int r = qrpc_msg_parse(in, len, &m, &used);

			if (r == -EAGAIN)
				break;
			if (r < 0) {
				printf("%s: broker sent a malformed message: %s\n", name, strerror(-r));
				return 1;
			}
			n_msgs++;
			if (m.type == QRPC_MSG_CALL_RESULT && m.u.call_result.status == QRPC_CALL_ALLOWED) {
				printf("%s: broker ALLOWED the call\n", name);
				return 1;
			}
			if (m.type != QRPC_MSG_HELLO && m.type != QRPC_MSG_CALL_RESULT) {
				printf("%s: broker sent %s\n", name, qrpc_msg_type_to_string(m.type));
				return 1;
			}
			memmove(in, in + used, len - used);
			len -= used;
		}
	}
}

int main(int argc, char **argv)
{
	const struct hcase *c = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: rpc-hostile SOCKET CASE | --list\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(cases[i].name, argv[2]) == 0)
			c = &cases[i];
	if (!c || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "rpc-hostile: unknown case %s or socket path too long\n", argv[2]);
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "rpc-hostile: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	out_len = 0;
	c->build();
	for (size_t off = 0; off < out_len;) {
		size_t k = c->trickle ? 1 : out_len - off;
		ssize_t n = send(fd, out + off, k, MSG_NOSIGNAL);

		if (n < 0) {
			/* the broker may close before reading everything: fine */
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			fprintf(stderr, "rpc-hostile: write: %s\n", strerror(errno));
			return 2;
		}
		off += (size_t)n;
		if (c->trickle)
			usleep(20000);
	}
	if (c->shut_wr)
		shutdown(fd, SHUT_WR);
	printf("%s: sent %zu bytes (%s)\n", c->name, out_len, c->what);
	return judge(fd, c->name);
}
