/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Transport tests: the hybrid unix-socket convention (CONNECT handshake
 * both ways, refusals), spec parsing, the blocking message helpers. */
#include "qrpc.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "testlib.h"

static char *dir;
static struct qrpc_transport tr;

static void test_parse(void)
{
	struct qrpc_transport t;
	memset(&t, 0x55, sizeof(t));
	CHECK_INT(qrpc_transport_parse("vsock", &t), 0);
	CHECK_INT(t.kind, QRPC_TRANSPORT_VSOCK);
	CHECK_INT(qrpc_transport_parse("vsock:42", &t), 0);
	CHECK_INT(t.cid, 42);
	CHECK_INT(qrpc_transport_parse("unix:/run/qube/work", &t), 0);
	CHECK_INT(t.kind, QRPC_TRANSPORT_UNIX);
	CHECK_STR(t.dir, "/run/qube/work");

	t.cid = 7;
	CHECK_INT(qrpc_transport_parse("vsock:", &t), -EINVAL);
	CHECK_INT(qrpc_transport_parse("vsock:2", &t), -EINVAL); /* the host's own CID */
	CHECK_INT(qrpc_transport_parse("vsock:4294967296", &t), -EINVAL);
	CHECK_INT(qrpc_transport_parse("vsock:12x", &t), -EINVAL);
	CHECK_INT(qrpc_transport_parse("unix:", &t), -EINVAL);
	CHECK_INT(qrpc_transport_parse("tcp:1", &t), -EINVAL);
	CHECK_INT(qrpc_transport_parse("", &t), -EINVAL);
	CHECK_INT(t.cid, 7); /* untouched */
	char longspec[200] = "unix:";
	memset(longspec + 5, 'd', 150);
	longspec[155] = 0;
	CHECK_INT(qrpc_transport_parse(longspec, &t), -ENAMETOOLONG);
	/* fits the struct but not a socket address with "/vsock_513" */
	memset(longspec + 5, 'd', 100);
	longspec[105] = 0;
	CHECK_INT(qrpc_transport_parse(longspec, &t), 0);
	CHECK_INT(qrpc_host_listen(&t, 513), -ENAMETOOLONG);
}

/* Guest listens on DIR/vsock; host connects with CONNECT 512. */
static void test_host_to_guest(void)
{
	int lfd = qrpc_guest_listen(&tr, QRPC_PORT_AGENT);
	CHECK(lfd >= 0);
	if (lfd < 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		/* guest: accept three connections */
		for (int i = 0; i < 3; i++) {
			int fd = qrpc_guest_accept(&tr, lfd, QRPC_PORT_AGENT);
			if (i == 0) {
				if (fd < 0)
					_exit(10);
				char b[5];
				if (read(fd, b, 5) != 5 || memcmp(b, "ping\n", 5) != 0)
					_exit(11);
				if (write(fd, "pong\n", 5) != 5)
					_exit(12);
				close(fd);
			} else if (fd != -EPROTO) {
				_exit(20 + i); /* wrong port / bad line must be refused */
			}
		}
		_exit(0);
	}
	/* 1: the good handshake; the stream starts right after "OK n\n" */
	int fd = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
	CHECK(fd >= 0);
	if (fd >= 0) {
		char b[5];
		CHECK_INT(write(fd, "ping\n", 5), 5);
		CHECK_INT(read(fd, b, 5), 5);
		CHECK(memcmp(b, "pong\n", 5) == 0);
		close(fd);
	}
	/* 2: a port nobody listens on: the guest closes, the host sees a refusal */
	CHECK_INT(qrpc_host_connect_guest(&tr, 999), -ECONNREFUSED);
	/* 3: a malformed line */
	struct qrpc_transport t2 = tr;
	int raw = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/vsock", t2.dir) >= (int)sizeof(a.sun_path))
		tl_die("path");
	CHECK_INT(connect(raw, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_INT(write(raw, "CONNECT 5x12\n", 13), 13);
	char b[8];
	CHECK_INT(read(raw, b, sizeof(b)), 0); /* closed without an answer */
	close(raw);
	CHECK_INT(tl_wait_pid(pid, 30000), 0);
	close(lfd);
}

/* A fake guest-side endpoint that answers the handshake wrongly. */
static void test_bad_answers(void)
{
	static const char *answers[] = { "NOPE\n", "OK\n", "OK 12a\n", "OK 1", "", "OK 5\0junk\n" };
	static const size_t answer_lens[] = { 5, 3, 7, 4, 0, 10 };
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		int lfd = qrpc_guest_listen(&tr, QRPC_PORT_AGENT);
		CHECK(lfd >= 0);
		pid_t pid = fork();
		if (pid == 0) {
			int fd = accept(lfd, NULL, NULL);
			char line[64];
			ssize_t n = read(fd, line, sizeof(line));
			(void)n;
			if (write(fd, answers[i], answer_lens[i]) < 0)
				_exit(1);
			close(fd);
			_exit(0);
		}
		int r = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
		CHECK(r < 0);
		if (r >= 0)
			close(r);
		CHECK_INT(tl_wait_pid(pid, 30000), 0);
		close(lfd);
	}
	/* an over-long CONNECT line is refused by the guest side */
	int lfd = qrpc_guest_listen(&tr, QRPC_PORT_AGENT);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = qrpc_guest_accept(&tr, lfd, QRPC_PORT_AGENT);
		_exit(fd == -EPROTO ? 0 : 1);
	}
	int raw = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/vsock", tr.dir) >= (int)sizeof(a.sun_path))
		tl_die("path");
	CHECK_INT(connect(raw, (struct sockaddr *)&a, sizeof(a)), 0);
	char junk[100];
	memset(junk, '1', sizeof(junk));
	memcpy(junk, "CONNECT ", 8);
	CHECK_INT(write(raw, junk, sizeof(junk)), (long long)sizeof(junk));
	CHECK_INT(tl_wait_pid(pid, 30000), 0);
	close(raw);
	close(lfd);

	/* a NUL inside the CONNECT line: refused, not read as "CONNECT 512" */
	int sv[2];
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	static const char nul_line[] = "CONNECT 512\0junk\n";
	CHECK_INT(write(sv[0], nul_line, sizeof(nul_line) - 1), (long long)sizeof(nul_line) - 1);
	CHECK_INT(qrpc_guest_answer_connect(sv[1], QRPC_PORT_AGENT), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	/* ...while the same line without it is answered */
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CHECK_INT(write(sv[0], "CONNECT 512\n", 12), 12);
	CHECK_INT(qrpc_guest_answer_connect(sv[1], QRPC_PORT_AGENT), 0);
	char ok[32] = "";
	CHECK(read(sv[0], ok, sizeof(ok) - 1) > 3 && strncmp(ok, "OK ", 3) == 0);
	close(sv[0]);
	close(sv[1]);
}

/* Guest connects to the host's DIR/vsock_P: no handshake on this side. */
static void test_guest_to_host(void)
{
	int lfd = qrpc_host_listen(&tr, QRPC_PORT_BROKER);
	CHECK(lfd >= 0);
	if (lfd < 0)
		return;
	char *p;
	if (asprintf(&p, "%s/vsock_513", dir) < 0)
		tl_die("asprintf");
	struct stat st;
	CHECK(stat(p, &st) == 0 && S_ISSOCK(st.st_mode));
	int fd = qrpc_guest_connect_host(&tr, QRPC_PORT_BROKER);
	CHECK(fd >= 0);
	int sfd = accept(lfd, NULL, NULL);
	CHECK(sfd >= 0);
	CHECK_INT(write(fd, "x", 1), 1);
	char c = 0;
	CHECK_INT(read(sfd, &c, 1), 1);
	CHECK_INT(c, 'x');
	uint32_t cid = 77;
	CHECK_INT(qrpc_vsock_peer_cid(sfd, &cid), -EAFNOSUPPORT);
	CHECK_INT(cid, 77);
	close(fd);
	close(sfd);
	/* listening again replaces the stale socket */
	close(lfd);
	lfd = qrpc_host_listen(&tr, QRPC_PORT_BROKER);
	CHECK(lfd >= 0);
	close(lfd);
	/* ...but never a file that is not a socket */
	unlink(p);
	tl_write_file(dir, "vsock_513", "keep me", 0644);
	CHECK_INT(qrpc_host_listen(&tr, QRPC_PORT_BROKER), -EEXIST);
	char *text = tl_read_file(p, NULL);
	CHECK_STR(text, "keep me");
	free(text);
	unlink(p);
	free(p);
	/* nobody listening */
	CHECK_INT(qrpc_guest_connect_host(&tr, 4444), -ENOENT);
}

static void test_read_write(void)
{
	int sv[2];
	uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];
	struct qrpc_msg m = { .type = QRPC_MSG_EXIT }, out;

	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	m.u.exit.code = 9;
	CHECK_INT(qrpc_write_msg(sv[0], &m), 0);
	CHECK_INT(qrpc_read_msg(sv[1], buf, sizeof(buf), &out), 0);
	CHECK_INT(out.type, QRPC_MSG_EXIT);
	CHECK_INT(out.u.exit.code, 9);
	/* a big data message crosses whole */
	static uint8_t big[QRPC_MAX_DATA];
	memset(big, 0xab, sizeof(big));
	m = (struct qrpc_msg){ .type = QRPC_MSG_STDOUT };
	m.u.data.data = big;
	m.u.data.len = sizeof(big);
	pid_t pid = fork();
	if (pid == 0)
		_exit(qrpc_write_msg(sv[0], &m) == 0 ? 0 : 1);
	CHECK_INT(qrpc_read_msg(sv[1], buf, sizeof(buf), &out), 0);
	CHECK_INT(out.u.data.len, QRPC_MAX_DATA);
	CHECK(memcmp(out.u.data.data, big, QRPC_MAX_DATA) == 0);
	CHECK_INT(tl_wait_pid(pid, 30000), 0);
	/* a buffer too small for the announced payload */
	m = (struct qrpc_msg){ .type = QRPC_MSG_STDOUT };
	m.u.data.data = big;
	m.u.data.len = 100;
	CHECK_INT(qrpc_write_msg(sv[0], &m), 0);
	CHECK_INT(qrpc_read_msg(sv[1], buf, 50, &out), -ENOBUFS);
	close(sv[0]);
	close(sv[1]);
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* an oversized length is refused from the header */
	uint8_t hdr[8] = { 0x31, 0, 0, 0, 0x01, 0x00, 0x01, 0x00 }; /* len 65537 */
	CHECK_INT(write(sv[0], hdr, 8), 8);
	CHECK_INT(qrpc_read_msg(sv[1], buf, sizeof(buf), &out), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);

	/* EOF before a header vs. in the middle of a message */
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	CHECK_INT(qrpc_read_msg(sv[1], buf, sizeof(buf), &out), -EPIPE);
	close(sv[1]);
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t half[12] = { 0x01, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0 };
	CHECK_INT(write(sv[0], half, sizeof(half)), 12);
	close(sv[0]);
	CHECK_INT(qrpc_read_msg(sv[1], buf, sizeof(buf), &out), -ECONNRESET);
	close(sv[1]);
	/* writing to a closed peer is -EPIPE, not SIGPIPE */
	CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	m = (struct qrpc_msg){ .type = QRPC_MSG_EXIT };
	CHECK_INT(qrpc_write_msg(sv[0], &m), -EPIPE);
	close(sv[0]);
}

static void test_vsock(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0) {
		fprintf(stderr, "test-transport: AF_VSOCK unavailable here (%s); the vsock "
				"transport is not exercised by this test\n",
			strerror(errno));
		return;
	}
	close(fd);
	struct qrpc_transport t;
	CHECK_INT(qrpc_transport_parse("vsock", &t), 0);
	/* without a CID the host cannot pick a guest */
	CHECK_INT(qrpc_host_connect_guest(&t, QRPC_PORT_AGENT), -EINVAL);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	dir = tl_mkdtemp("qrpc-tr");
	if (qrpc_transport_parse(dir, &tr) == 0)
		return 99;
	char *spec;
	if (asprintf(&spec, "unix:%s", dir) < 0 || qrpc_transport_parse(spec, &tr) < 0)
		tl_die("transport");
	free(spec);
	test_parse();
	test_host_to_guest();
	test_bad_answers();
	test_guest_to_host();
	test_read_write();
	test_vsock();
	tl_rm_rf(dir);
	return check_exit_code("test-transport");
}
