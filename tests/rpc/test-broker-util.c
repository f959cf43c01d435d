/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of rpc/broker-util.c: byte buffers, the monitor <-> sandbox
 * record transport (sizes, fds, malformed records), the outgoing queue
 * under a full socket, a record whose fd does not fit under the fd limit,
 * the line parsers, log quoting and the per-qube log budget.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker.h"

static int failures;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                   \
		}                                                                     \
	} while (0)

static void test_buf(void)
{
	struct bk_buf b;
	uint8_t *p;

	bk_buf_init(&b, 10000);
	CHECK(bk_buf_len(&b) == 0 && bk_buf_room(&b) == 10000);
	p = bk_buf_reserve(&b, 6000);
	CHECK(p != NULL);
	memset(p, 'a', 6000);
	b.end += 6000;
	CHECK(bk_buf_room(&b) == 4000);
	CHECK(bk_buf_reserve(&b, 4001) == NULL); /* over max */
	bk_buf_consume(&b, 5000);
	CHECK(bk_buf_len(&b) == 1000);
	p = bk_buf_reserve(&b, 9000); /* needs the data moved to the front */
	CHECK(p != NULL && b.start == 0 && b.data[0] == 'a' && b.data[999] == 'a');
	bk_buf_consume(&b, 1000);
	CHECK(bk_buf_len(&b) == 0 && b.start == 0 && b.end == 0);
	bk_buf_shrink(&b);
	CHECK(b.data == NULL && b.cap == 0 && b.max == 10000);
	bk_buf_finish(&b);
}

static void test_ipc(void)
{
	int sv[2], pipefd[2], fd = -1;
	struct bk_ipc rec = { .type = BK_IPC_REQUEST, .id = 42 }, got;
	struct stat st;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	snprintf(rec.service, sizeof(rec.service), "test.Echo");

	/* a record with an fd */
	CHECK(bk_ipc_send(sv[0], &rec, pipefd[0]) == 0);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == 0);
	CHECK(got.id == 42 && strcmp(got.service, "test.Echo") == 0);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode));
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	close(fd);

	/* without an fd */
	CHECK(bk_ipc_send(sv[0], &rec, -1) == 0);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == 0 && fd == -1);

	/* a short record is refused */
	CHECK(send(sv[0], "short", 5, 0) == 5);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == -EBADMSG);

	/* two fds: refused, and neither is leaked to the receiver */
	{
		union {
			char buf[CMSG_SPACE(2 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = &rec, .iov_len = sizeof(rec) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		int fds[2] = { pipefd[0], pipefd[1] };
		int before = 0, after = 0;

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		CHECK(sendmsg(sv[0], &mh, 0) == (ssize_t)sizeof(rec));
		for (int i = 0; i < 1024; i++)
			before += fcntl(i, F_GETFD) >= 0;
		CHECK(bk_ipc_recv(sv[1], &got, &fd) == -EBADMSG);
		for (int i = 0; i < 1024; i++)
			after += fcntl(i, F_GETFD) >= 0;
		CHECK(after == before);
	}

	/* EOF */
	close(sv[0]);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == -EPIPE);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* Issue 9: at the fd limit, a record's fd is dropped by the kernel
 * (MSG_CTRUNC); that is an error of that record (-EMFILE, the record
 * returned), not of the socket, and the next record is received. */
static void test_ipc_fd_limit(void)
{
	int sv[2], pipefd[2], fd = 5, lowest;
	struct bk_ipc rec = { .type = BK_IPC_NEW_CALL, .id = 7 }, got = { 0 };
	struct rlimit old, low;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	snprintf(rec.source, sizeof(rec.source), "work");
	CHECK(bk_ipc_send(sv[0], &rec, pipefd[0]) == 0);
	rec.id = 8;
	CHECK(bk_ipc_send(sv[0], &rec, pipefd[1]) == 0);
	/* no fd number below the lowest free one is free */
	lowest = fcntl(pipefd[0], F_DUPFD_CLOEXEC, 0);
	CHECK(lowest >= 0);
	close(lowest);
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == -EMFILE);
	CHECK(fd == -1 && got.id == 7 && got.type == BK_IPC_NEW_CALL &&
	      strcmp(got.source, "work") == 0);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	CHECK(bk_ipc_recv(sv[1], &got, &fd) == 0);
	CHECK(got.id == 8 && fd >= 0);
	if (fd >= 0)
		close(fd);
	close(sv[0]);
	close(sv[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* The per-qube log budget: lines of one qube beyond the limit are not
 * written; other qubes and bk_log() are not affected. */
static void test_log_budget(void)
{
	char path[] = "/tmp/test-broker-util-log.XXXXXX";
	char buf[8192];
	int tmp = mkstemp(path), lines = 0, q1 = 0;
	uint64_t t0 = bk_now_ms();
	ssize_t n;

	CHECK(tmp >= 0);
	CHECK(bk_log_open(path, "test") == 0);
	bk_log_set_source_limit(3);
	for (int i = 0; i < 10; i++)
		bk_log_source("q1", "q1 line %d", i);
	bk_log_source("q2", "q2 line");
	bk_log_source("q2", "q2 line");
	bk_log("broker-wide line");
	n = pread(tmp, buf, sizeof(buf) - 1, 0);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	for (char *p = buf; (p = strchr(p, '\n')); p++)
		lines++;
	for (char *p = buf; (p = strstr(p, "q1 line")); p++)
		q1++;
	/* within one 10 s window (a machine too slow for that proves nothing) */
	if (bk_now_ms() - t0 < 9000) {
		CHECK(q1 == 3);
		CHECK(lines == 6);
		CHECK(strstr(buf, "broker-wide line") != NULL);
	}
	close(tmp);
	unlink(path);
}

static void test_queue(void)
{
	struct bk_ipc_queue q = { 0 };
	struct bk_ipc rec = { .type = BK_IPC_CLOSED };
	int sv[2], small = 4096, fd, n = 0, r;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	for (uint32_t i = 1; i <= 2000; i++) {
		rec.id = i;
		CHECK(bk_ipc_queue_push(&q, &rec, -1) == 0);
	}
	r = bk_ipc_queue_flush(&q, sv[0]);
	CHECK(r == -EAGAIN && q.n > 0); /* the socket is full, records wait */
	/* drain and flush until all arrived, in order */
	for (int rounds = 0; rounds < 100000 && n < 2000; rounds++) {
		struct bk_ipc got;

		while (bk_ipc_recv(sv[1], &got, &fd) == 0) {
			n++;
			CHECK(got.id == (uint32_t)n);
		}
		bk_ipc_queue_flush(&q, sv[0]);
	}
	CHECK(n == 2000 && q.n == 0);
	bk_ipc_queue_finish(&q);
	close(sv[0]);
	close(sv[1]);
}

static void test_parsers(void)
{
	size_t used = 0;
	uint32_t id = 0;
	bool allow = false;
	char target[QRPC_MAX_TARGET + 1], name[QRPC_MAX_QUBE + 1], msg[16];

	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 5\nxyz", 8, &used) == 0 && used == 5);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 12", 5, &used) == -EAGAIN);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK \n", 4, &used) == -EPROTO);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 12345678901\n", 15, &used) == -EPROTO);
	/* issue 9: 10 digits but above 2^32-1 */
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 4294967295\n", 14, &used) == 0 && used == 14);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 4294967296\n", 14, &used) == -EPROTO);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 9999999999\n", 14, &used) == -EPROTO);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 5000000000", 13, &used) == -EPROTO);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"NO 1\n", 5, &used) == -EPROTO);
	CHECK(bk_hybrid_ok_parse((const uint8_t *)"OK 1x\n", 6, &used) == -EPROTO);

	CHECK(bk_ask_reply_parse("ALLOW 7 personal", &id, &allow, target) == 0 && id == 7 &&
	      allow && strcmp(target, "personal") == 0);
	CHECK(bk_ask_reply_parse("ALLOW 8 @dispvm:dvm", &id, &allow, target) == 0 && id == 8);
	CHECK(bk_ask_reply_parse("DENY 9", &id, &allow, target) == 0 && id == 9 && !allow &&
	      target[0] == '\0');
	CHECK(bk_ask_reply_parse("ALLOW 7 bad/name", &id, &allow, target) == -EBADMSG);
	CHECK(bk_ask_reply_parse("ALLOW 7  personal", &id, &allow, target) == -EBADMSG);
	CHECK(bk_ask_reply_parse("ALLOW 4294967296 x", &id, &allow, target) == -EBADMSG);
	CHECK(bk_ask_reply_parse("DENY", &id, &allow, target) == -EBADMSG);
	CHECK(bk_ask_reply_parse("DENY 1 x", &id, &allow, target) == -EBADMSG);
	CHECK(bk_ask_reply_parse("", &id, &allow, target) == -EBADMSG);

	CHECK(bk_start_reply_parse("OK disp12", name, msg, sizeof(msg)) == 0 &&
	      strcmp(name, "disp12") == 0);
	CHECK(bk_start_reply_parse("OK ../x", name, msg, sizeof(msg)) == -EBADMSG);
	CHECK(bk_start_reply_parse("OK", name, msg, sizeof(msg)) == -EBADMSG);
	CHECK(bk_start_reply_parse("ERROR no memory left at all", name, msg, sizeof(msg)) ==
	      -EHOSTDOWN && strcmp(msg, "no memory left ") == 0);
	CHECK(bk_start_reply_parse("ERROR \x01\x7f", name, msg, sizeof(msg)) == -EHOSTDOWN &&
	      strcmp(msg, "??") == 0);
	CHECK(bk_start_reply_parse("WHATEVER", name, msg, sizeof(msg)) == -EBADMSG);
}

static void test_quote(void)
{
	char out[32];

	bk_quote(out, sizeof(out), "plain");
	CHECK(strcmp(out, "\"plain\"") == 0);
	bk_quote(out, sizeof(out), "a\"b\\c\nd");
	CHECK(strcmp(out, "\"a\\\"b\\\\c\\x0ad\"") == 0);
	bk_quote(out, 8, "truncated text");
	CHECK(strcmp(out, "\"trunc\"") == 0);
}

int main(void)
{
	test_buf();
	test_ipc();
	test_ipc_fd_limit();
	test_queue();
	test_parsers();
	test_quote();
	test_log_budget();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all broker-util checks passed\n");
	return 0;
}
