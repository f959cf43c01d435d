/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-call tests: a real qube-call process (argv[1]) against a small fake
 * broker in this program, over the unix transport.  The fake broker speaks
 * the CALL channel with libqrpc and answers each scenario scripted.
 */
#include "qrpc.h"

#include <sys/socket.h>

#include "check.h"
#include "testlib.h"

#define TIMEOUT_MS 60000

static char *dir, *spec, *qube_call;
static struct qrpc_transport tr;
static int lfd;
static uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];

struct broker {
	int fd;
	struct qrpc_state st;
	struct qrpc_msg req;
	uint8_t *in; /* stdin received */
	size_t in_len;
};

static int b_send(struct broker *b, struct qrpc_msg m)
{
	int r = qrpc_state_on_send(&b->st, &m);
	return r < 0 ? r : qrpc_write_msg(b->fd, &m);
}

static int b_recv(struct broker *b, struct qrpc_msg *m)
{
	int r = qrpc_read_msg(b->fd, buf, sizeof(buf), m);
	return r < 0 ? r : qrpc_state_on_recv(&b->st, m);
}

/* Accepts qube-call's connection and does HELLO + CALL_REQUEST. */
static int b_accept(struct broker *b)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	struct qrpc_msg m;
	memset(b, 0, sizeof(*b));
	if (poll(&pfd, 1, TIMEOUT_MS) != 1)
		return -ETIMEDOUT;
	b->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (b->fd < 0)
		return -errno;
	qrpc_state_init(&b->st, QRPC_CHANNEL_CALL, QRPC_SIDE_SERVER);
	m = (struct qrpc_msg){ .type = QRPC_MSG_HELLO };
	m.u.hello.version_min = m.u.hello.version_max = 1;
	int r;
	if ((r = b_send(b, m)) < 0 || (r = b_recv(b, &m)) < 0 || (r = b_recv(b, &b->req)) < 0)
		return r;
	return b->req.type == QRPC_MSG_CALL_REQUEST ? 0 : -EPROTO;
}

static int b_result(struct broker *b, uint32_t status)
{
	struct qrpc_msg m = { .type = QRPC_MSG_CALL_RESULT };
	m.u.call_result.status = status;
	m.u.call_result.exit_code = status == QRPC_CALL_ALLOWED   ? 0
				    : status == QRPC_CALL_REFUSED ? QRPC_EXIT_REFUSED
								  : QRPC_EXIT_RPC_FAILED;
	return b_send(b, m);
}

/* Reads STDIN messages until EOF(stdin). */
static int b_read_stdin(struct broker *b)
{
	struct qrpc_msg m;
	for (;;) {
		int r = b_recv(b, &m);
		if (r < 0)
			return r;
		if (m.type == QRPC_MSG_EOF)
			return 0;
		uint8_t *nb = realloc(b->in, b->in_len + m.u.data.len + 1);
		if (!nb)
			tl_die("realloc");
		memcpy(nb + b->in_len, m.u.data.data, m.u.data.len);
		b->in_len += m.u.data.len;
		nb[b->in_len] = 0;
		b->in = nb;
	}
}

static int b_data(struct broker *b, uint32_t type, const void *p, size_t len)
{
	while (len > 0) {
		size_t n = len > QRPC_MAX_DATA ? QRPC_MAX_DATA : len;
		struct qrpc_msg m = { .type = type };
		m.u.data.data = p;
		m.u.data.len = (uint32_t)n;
		int r = b_send(b, m);
		if (r < 0)
			return r;
		p = (const uint8_t *)p + n;
		len -= n;
	}
	return 0;
}

static int b_finish(struct broker *b, uint32_t code)
{
	struct qrpc_msg m = { .type = QRPC_MSG_EOF };
	int r;
	m.u.eof.stream = QRPC_STREAM_STDOUT;
	if (!(b->st.eof_tx & (1u << QRPC_STREAM_STDOUT)) && (r = b_send(b, m)) < 0)
		return r;
	m.u.eof.stream = QRPC_STREAM_STDERR;
	if ((r = b_send(b, m)) < 0)
		return r;
	m = (struct qrpc_msg){ .type = QRPC_MSG_EXIT };
	m.u.exit.code = code;
	return b_send(b, m);
}

static void b_close(struct broker *b)
{
	if (b->fd > 0)
		close(b->fd);
	free(b->in);
	memset(b, 0, sizeof(*b));
}

struct run {
	pid_t pid;
	char out_path[256], err_path[256], in_path[256];
};

/* Starts qube-call with ARGS (NULL-terminated, after the transport option)
 * and stdin from a file holding IN. */
static void start(struct run *rn, const void *in, size_t in_len, const char *const *args)
{
	char *argv[32];
	int n = 0;
	argv[n++] = qube_call;
	argv[n++] = "--transport";
	argv[n++] = spec;
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	snprintf(rn->in_path, sizeof(rn->in_path), "%s/in", dir);
	snprintf(rn->out_path, sizeof(rn->out_path), "%s/out", dir);
	snprintf(rn->err_path, sizeof(rn->err_path), "%s/err", dir);
	int fd = open(rn->in_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (in_len && write(fd, in, in_len) != (ssize_t)in_len))
		tl_die("stdin file");
	close(fd);
	rn->pid = tl_spawn(argv, rn->in_path, rn->out_path, rn->err_path);
}

static char *out_of(struct run *rn, size_t *len)
{
	return tl_read_file(rn->out_path, len);
}

static char *err_of(struct run *rn)
{
	return tl_read_file(rn->err_path, NULL);
}

static void test_refused_failed(void)
{
	struct broker b;
	struct run rn;
	const char *args[] = { "work", "my.Service+some-arg", NULL };

	start(&rn, "ignored", 7, args);
	CHECK_INT(b_accept(&b), 0);
	CHECK_STR(b.req.u.call_request.target, "work");
	CHECK_STR(b.req.u.call_request.service, "my.Service");
	CHECK_STR(b.req.u.call_request.argument, "some-arg");
	CHECK_INT(b_result(&b, QRPC_CALL_REFUSED), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 126);
	char *e = err_of(&rn);
	CHECK(e && strstr(e, "refused"));
	free(e);
	b_close(&b);

	const char *args2[] = { "@dispvm:dvm", "svc", NULL };
	start(&rn, NULL, 0, args2);
	CHECK_INT(b_accept(&b), 0);
	CHECK_STR(b.req.u.call_request.target, "@dispvm:dvm");
	CHECK_STR(b.req.u.call_request.argument, "");
	CHECK_INT(b_result(&b, QRPC_CALL_FAILED), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 125);
	b_close(&b);
}

static void test_allowed(void)
{
	struct broker b;
	struct run rn;
	const char *args[] = { "@default", "svc+x", NULL };
	size_t len;

	start(&rn, "local input\n", 12, args);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	CHECK_INT(b_read_stdin(&b), 0);
	CHECK_STR((char *)b.in, "local input\n");
	CHECK_INT(b_data(&b, QRPC_MSG_STDOUT, "remote out\n", 11), 0);
	CHECK_INT(b_data(&b, QRPC_MSG_STDERR, "remote err\n", 11), 0);
	CHECK_INT(b_finish(&b, 42), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 42);
	char *o = out_of(&rn, &len), *e = err_of(&rn);
	CHECK_STR(o, "remote out\n");
	CHECK_STR(e, "remote err\n");
	free(o);
	free(e);
	b_close(&b);

	/* 8 MiB each way: more than any socket or pipe buffer */
	size_t big_len = 8u << 20;
	uint8_t *big = malloc(big_len);
	if (!big)
		tl_die("malloc");
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 16));
	const char *args2[] = { "work", "svc", NULL };
	start(&rn, big, big_len, args2);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	CHECK_INT(b_read_stdin(&b), 0);
	CHECK(b.in_len == big_len && memcmp(b.in, big, big_len) == 0);
	CHECK_INT(b_data(&b, QRPC_MSG_STDOUT, big, big_len), 0);
	CHECK_INT(b_finish(&b, 0), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 0);
	o = out_of(&rn, &len);
	CHECK(o && len == big_len && memcmp(o, big, big_len) == 0);
	free(o);
	free(big);
	b_close(&b);
}

static void test_local_program(void)
{
	struct broker b;
	struct run rn;
	const char *args[] = { "work", "svc", "--", "/usr/bin/tr", "a-z", "A-Z", NULL };
	size_t len;

	start(&rn, "not read", 8, args);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	/* remote stdout -> program stdin; program stdout -> remote stdin */
	CHECK_INT(b_data(&b, QRPC_MSG_STDOUT, "from remote\n", 12), 0);
	struct qrpc_msg m = { .type = QRPC_MSG_EOF };
	m.u.eof.stream = QRPC_STREAM_STDOUT;
	CHECK_INT(b_send(&b, m), 0);
	CHECK_INT(b_read_stdin(&b), 0);
	CHECK_STR((char *)b.in, "FROM REMOTE\n");
	CHECK_INT(b_finish(&b, 5), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 5);
	char *o = out_of(&rn, &len);
	CHECK_INT(len, 0);
	free(o);
	b_close(&b);
}

static void test_failures(void)
{
	struct broker b;
	struct run rn;
	const char *args[] = { "work", "svc", NULL };

	/* the broker disappears after allowing */
	start(&rn, NULL, 0, args);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	CHECK_INT(b_data(&b, QRPC_MSG_STDOUT, "partial", 7), 0);
	close(b.fd);
	b.fd = -1;
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 125);
	char *e = err_of(&rn);
	CHECK(e && strstr(e, "lost"));
	free(e);
	b_close(&b);

	/* data before the call is allowed */
	start(&rn, NULL, 0, args);
	CHECK_INT(b_accept(&b), 0);
	static const uint8_t early[] = { 0x31, 0, 0, 0, 1, 0, 0, 0, 'x' };
	CHECK_INT(qrpc_write_full(b.fd, early, sizeof(early)), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 125);
	b_close(&b);

	/* EXIT before the output streams ended */
	start(&rn, NULL, 0, args);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	static const uint8_t ex[] = { 0x40, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0 };
	CHECK_INT(qrpc_write_full(b.fd, ex, sizeof(ex)), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 125);
	b_close(&b);

	/* a broker speaking only a future version */
	start(&rn, NULL, 0, args);
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	CHECK_INT(poll(&pfd, 1, TIMEOUT_MS), 1);
	int fd = accept(lfd, NULL, NULL);
	static const uint8_t v9[] = { 1, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 9, 0, 0, 0 };
	CHECK_INT(qrpc_write_full(fd, v9, sizeof(v9)), 0);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 125);
	close(fd);

	/* no broker at all */
	char *other_dir = tl_mkdtemp("qrpc-nb");
	char *other_spec;
	if (asprintf(&other_spec, "unix:%s", other_dir) < 0)
		tl_die("asprintf");
	char *argv[] = { qube_call, "--transport", other_spec, "work", "svc", NULL };
	pid_t pid = tl_spawn(argv, NULL, NULL, NULL);
	CHECK_INT(tl_wait_pid(pid, TIMEOUT_MS), 125);
	tl_rm_rf(other_dir);
	free(other_dir);
	free(other_spec);
}

static void test_bad_names(void)
{
	static const char *cases[][2] = {
		{ "wo rk", "svc" },       { "9work", "svc" },     { "@anyvm", "svc" },
		{ "@dispvm:", "svc" },    { "work/x", "svc" },    { "work", "" },
		{ "work", "s/vc" },       { "work", ".svc" },     { "work", "svc+a/b" },
		{ "work", "svc+a b" },    { "work", "+arg" },     { "work", "svc+a\n" },
		{ "work", "s\xc3\xa9" },  { "", "svc" },
		{ "work", "svc+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
		{ "a234567890123456789012345678901x", "svc" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run rn;
		const char *args[] = { cases[i][0], cases[i][1], NULL };
		start(&rn, NULL, 0, args);
		int code = tl_wait_pid(rn.pid, TIMEOUT_MS);
		CHECK_INT(code, 2);
		char *e = err_of(&rn);
		CHECK(e && strstr(e, "qube-call: invalid"));
		if (code != 2)
			fprintf(stderr, "  (case %zu: '%s' '%s')\n", i, cases[i][0], cases[i][1]);
		free(e);
		/* nothing was sent: no connection is waiting */
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		CHECK_INT(poll(&pfd, 1, 0), 0);
	}
	/* usage errors */
	struct run rn;
	const char *a1[] = { "work", NULL };
	start(&rn, NULL, 0, a1);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 2);
	const char *a2[] = { "work", "svc", "extra", NULL };
	start(&rn, NULL, 0, a2);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 2);
	const char *a3[] = { "--help", NULL };
	start(&rn, NULL, 0, a3);
	CHECK_INT(tl_wait_pid(rn.pid, TIMEOUT_MS), 0);
	char *o = out_of(&rn, NULL);
	CHECK(o && strstr(o, "Usage: qube-call"));
	free(o);
	char *argv[] = { qube_call, "--transport", "tcp:1", "work", "svc", NULL };
	pid_t pid = tl_spawn(argv, NULL, NULL, NULL);
	CHECK_INT(tl_wait_pid(pid, TIMEOUT_MS), 2);
}

/* CPU time (user + system) PID has used so far, in clock ticks; -1 if
 * /proc cannot tell. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], b[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	b[n] = 0;
	char *rp = strrchr(b, ')');
	unsigned long long ut, st;
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!rp || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			  &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* The broker sends the whole answer and closes while qube-call's reader is
 * slow (its stdout is a pipe nobody reads for a while): qube-call waits for
 * the reader without spinning on the closed socket, then delivers all of
 * the output and exits with the code. */
static void test_closed_broker_slow_reader(void)
{
	struct broker b;
	const size_t len = 2 * QRPC_MAX_DATA;
	uint8_t *data = malloc(len);
	int pout[2];
	char err_path[256];
	if (!data || pipe2(pout, O_CLOEXEC) < 0)
		tl_die("setup");
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	snprintf(err_path, sizeof(err_path), "%s/err-slow", dir);
	pid_t pid = fork();
	if (pid < 0)
		tl_die("fork");
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (in < 0 || err < 0 || dup2(in, 0) < 0 || dup2(pout[1], 1) < 0 || dup2(err, 2) < 0)
			_exit(98);
		execl(qube_call, qube_call, "--transport", spec, "work", "svc", (char *)NULL);
		_exit(97);
	}
	close(pout[1]);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	CHECK_INT(b_data(&b, QRPC_MSG_STDOUT, data, len), 0);
	CHECK_INT(b_finish(&b, 5), 0);
	b_close(&b);
	/* 3 s of not reading: a busy loop would burn most of that */
	long long t0 = cpu_ticks(pid);
	poll(NULL, 0, 3000);
	long long t1 = cpu_ticks(pid);
	long hz = sysconf(_SC_CLK_TCK);
	if (t0 < 0 || t1 < 0) {
		fprintf(stderr, "test-call: /proc/PID/stat unreadable: CPU check NOT made\n");
	} else {
		if ((t1 - t0) * 4 >= hz)
			fprintf(stderr, "  qube-call used %lld ticks (of %ld/s) while waiting\n",
				t1 - t0, hz);
		CHECK((t1 - t0) * 4 < hz); /* under 0.25 s of CPU in 3 s */
	}
	/* now read: everything arrives, then the exit code */
	uint8_t *got = malloc(len + 1);
	size_t n = 0;
	ssize_t r;
	while (got && n <= len && (r = read(pout[0], got + n, len + 1 - n)) > 0)
		n += (size_t)r;
	CHECK(got && n == len && memcmp(got, data, len) == 0);
	CHECK_INT(tl_wait_pid(pid, TIMEOUT_MS), 5);
	close(pout[0]);
	free(got);
	free(data);
}

/* The reader of qube-call's stdout goes away while the service is still
 * writing (`qube-call ... | head`): qube-call ends the call and exits 141
 * instead of draining an endless service for ever. */
static void test_output_reader_gone(void)
{
	struct broker b;
	int pout[2];
	uint8_t chunk[4096];
	memset(chunk, 'y', sizeof(chunk));
	if (pipe2(pout, O_CLOEXEC) < 0)
		tl_die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		tl_die("fork");
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int err = open("/dev/null", O_WRONLY);
		if (in < 0 || err < 0 || dup2(in, 0) < 0 || dup2(pout[1], 1) < 0 || dup2(err, 2) < 0)
			_exit(98);
		execl(qube_call, qube_call, "--transport", spec, "work", "svc", (char *)NULL);
		_exit(97);
	}
	close(pout[1]);
	close(pout[0]); /* the reader is gone before anything arrives */
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	CHECK_INT(b_accept(&b), 0);
	CHECK_INT(b_result(&b, QRPC_CALL_ALLOWED), 0);
	/* an endless service: keep sending until qube-call hangs up (at most
	 * 64 MiB, so a qube-call that drains for ever fails the test) */
	int sent_ok = 0;
	for (int i = 0; i < 16384; i++) {
		if (b_data(&b, QRPC_MSG_STDOUT, chunk, sizeof(chunk)) < 0)
			break;
		sent_ok++;
	}
	CHECK(sent_ok < 16384);
	b_close(&b);
	CHECK_INT(tl_wait_pid(pid, TIMEOUT_MS), 141);
	signal(SIGPIPE, old);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test-call PATH-TO-qube-call\n");
		return 99;
	}
	signal(SIGPIPE, SIG_IGN);
	qube_call = argv[1];
	dir = tl_mkdtemp("qrpc-call");
	if (asprintf(&spec, "unix:%s", dir) < 0 || qrpc_transport_parse(spec, &tr) < 0)
		tl_die("transport");
	lfd = qrpc_host_listen(&tr, QRPC_PORT_BROKER);
	if (lfd < 0) {
		errno = -lfd;
		tl_die("listen");
	}
	test_refused_failed();
	test_allowed();
	test_local_program();
	test_failures();
	test_bad_names();
	test_closed_broker_slow_reader();
	test_output_reader_gone();
	close(lfd);
	tl_rm_rf(dir);
	free(dir);
	free(spec);
	return check_exit_code("test-call");
}
