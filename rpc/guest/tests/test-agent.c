/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-agent tests: this program plays the broker over the unix transport
 * against a real qube-agent process (argv[1]) serving a temporary service
 * directory of real executables and a real unix-socket service.
 */
#include "qrpc.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "check.h"
#include "testlib.h"

static char *dir, *rpc_dir;
static struct qrpc_transport tr;
static pid_t agent_pid;

#define TIMEOUT_MS 60000
#define FLOOD_BYTES (64 << 20)

struct result {
	uint8_t *out, *err;
	size_t out_len, err_len;
	int exit_code; /* -1 until EXIT */
	int rc;        /* 0: EXIT received; negative: how it ended otherwise */
	int n_msgs;
	bool send_failed; /* a write to the agent failed (it closed early) */
};

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static void append(uint8_t **buf, size_t *len, const uint8_t *p, size_t n)
{
	uint8_t *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		tl_die("realloc");
	memcpy(nb + *len, p, n);
	*len += n;
	nb[*len] = 0;
	*buf = nb;
}

enum {
	SEND_EOF = 1,     /* EOF(stdin) after the data */
	HALF_CLOSE = 2,   /* shutdown(SHUT_WR) after the data instead */
	CLOSE_EARLY = 4,  /* close the connection after the first output */
	NO_STDIN_END = 8, /* neither: the caller keeps the connection (returns fd) */
};

/* Connects and exchanges HELLOs, offering versions 1..VERSION_MAX. */
static int connect_hello(struct qrpc_state *st, uint32_t version_max)
{
	uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];
	struct qrpc_msg m = { .type = QRPC_MSG_HELLO };
	int fd = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
	if (fd < 0)
		return fd;
	qrpc_state_init(st, QRPC_CHANNEL_SERVICE, QRPC_SIDE_CLIENT);
	m.u.hello.version_min = 1;
	m.u.hello.version_max = version_max;
	int r;
	if ((r = qrpc_state_on_send(st, &m)) < 0 || (r = qrpc_write_msg(fd, &m)) < 0 ||
	    (r = qrpc_read_msg(fd, buf, sizeof(buf), &m)) < 0 || (r = qrpc_state_on_recv(st, &m)) < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* SERVICE_START, or with a USER SERVICE_START_AS (version 2). */
static struct qrpc_msg start_msg(const char *service, const char *arg, const char *user)
{
	struct qrpc_msg m = { .type = user ? QRPC_MSG_SERVICE_START_AS : QRPC_MSG_SERVICE_START };
	snprintf(m.u.service_start.source, sizeof(m.u.service_start.source), "work");
	snprintf(m.u.service_start.service, sizeof(m.u.service_start.service), "%s", service);
	snprintf(m.u.service_start.argument, sizeof(m.u.service_start.argument), "%s", arg);
	snprintf(m.u.service_start.requested_target, sizeof(m.u.service_start.requested_target),
		 "@default");
	if (user)
		snprintf(m.u.service_start.user, sizeof(m.u.service_start.user), "%s", user);
	return m;
}

static int send_start(int fd, struct qrpc_state *st, const char *service, const char *arg,
		      const char *user)
{
	struct qrpc_msg m = start_msg(service, arg, user);
	int r = qrpc_state_on_send(st, &m);
	return r < 0 ? r : qrpc_write_msg(fd, &m);
}

/* Streams IN to the service and collects everything until EXIT, with
 * sending and receiving interleaved (neither side may block the other). */
static void stream(int fd, struct qrpc_state *st, const void *in_v, size_t in_len, int mode,
		   struct result *res)
{
	const uint8_t *in = in_v;
	static uint8_t rbuf[2 * (QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD)];
	static uint8_t wbuf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];
	size_t rlen = 0, wlen = 0, woff = 0, in_off = 0;
	bool eof_done = (mode & (SEND_EOF | HALF_CLOSE)) == 0;
	long long end = tl_now_ms() + TIMEOUT_MS;

	res->exit_code = -1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		/* next outgoing message */
		if (woff == wlen && (in_off < in_len || !eof_done)) {
			struct qrpc_msg m;
			if (in_off < in_len) {
				size_t n = in_len - in_off;
				if (n > QRPC_MAX_DATA)
					n = QRPC_MAX_DATA;
				m = (struct qrpc_msg){ .type = QRPC_MSG_STDIN };
				m.u.data.data = in + in_off;
				m.u.data.len = (uint32_t)n;
				in_off += n;
			} else if (mode & HALF_CLOSE) {
				shutdown(fd, SHUT_WR);
				eof_done = true;
				continue;
			} else {
				m = (struct qrpc_msg){ .type = QRPC_MSG_EOF };
				m.u.eof.stream = QRPC_STREAM_STDIN;
				eof_done = true;
			}
			if (qrpc_state_on_send(st, &m) < 0) {
				wlen = woff = 0; /* the service already ended */
				in_off = in_len;
				eof_done = true;
			} else if (qrpc_msg_encode(&m, wbuf, sizeof(wbuf), &wlen) < 0) {
				res->rc = -EINVAL;
				return;
			} else {
				woff = 0;
			}
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (woff < wlen ? POLLOUT : 0) };
		long long left = end - tl_now_ms();
		if (left <= 0) {
			res->rc = -ETIMEDOUT;
			return;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			res->rc = -errno;
			return;
		}
		if ((pfd.revents & POLLOUT) && woff < wlen) {
			ssize_t w = send(fd, wbuf + woff, wlen - woff, MSG_NOSIGNAL);
			if (w > 0)
				woff += (size_t)w;
			else if (w < 0 && errno != EAGAIN) {
				res->send_failed = true;
				woff = wlen = 0;
				in_off = in_len;
				eof_done = true;
			}
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);
			if (got == 0 || (got < 0 && errno != EAGAIN)) {
				res->rc = -ECONNRESET;
				return;
			}
			if (got > 0)
				rlen += (size_t)got;
			for (;;) {
				struct qrpc_msg m;
				size_t used;
				int r = qrpc_msg_parse(rbuf, rlen, &m, &used);
				if (r == -EAGAIN)
					break;
				if (r == 0)
					r = qrpc_state_on_recv(st, &m);
				if (r < 0) {
					res->rc = r;
					return;
				}
				res->n_msgs++;
				if (m.type == QRPC_MSG_STDOUT)
					append(&res->out, &res->out_len, m.u.data.data, m.u.data.len);
				else if (m.type == QRPC_MSG_STDERR)
					append(&res->err, &res->err_len, m.u.data.data, m.u.data.len);
				else if (m.type == QRPC_MSG_EXIT)
					res->exit_code = (int)m.u.exit.code;
				memmove(rbuf, rbuf + used, rlen - used);
				rlen -= used;
				if (res->exit_code >= 0) {
					res->rc = 0;
					return;
				}
				if ((mode & CLOSE_EARLY) && res->out_len > 0) {
					res->rc = -ECANCELED;
					return;
				}
			}
		}
	}
}

static void run(const char *service, const char *arg, const void *in, size_t in_len, int mode,
		struct result *res)
{
	struct qrpc_state st;
	memset(res, 0, sizeof(*res));
	int fd = connect_hello(&st, 1);
	if (fd < 0) {
		res->rc = fd;
		return;
	}
	int r = send_start(fd, &st, service, arg, NULL);
	if (r < 0) {
		res->rc = r;
		close(fd);
		return;
	}
	stream(fd, &st, in, in_len, mode, res);
	close(fd);
}

static char *rpc_path(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", rpc_dir, name) < 0)
		tl_die("asprintf");
	return p;
}

static void setup_services(void)
{
	tl_write_file(rpc_dir, "echo",
		      "#!/bin/sh\n"
		      "printf 'argc=%s arg1=%s remote=%s service=%s argument=%s target=%s\\n' \\\n"
		      "  \"$#\" \"$1\" \"$QUBE_REMOTE\" \"$QUBE_SERVICE\" \"$QUBE_SERVICE_ARGUMENT\" "
		      "\"$QUBE_REQUESTED_TARGET\"\n"
		      "cat\n"
		      "echo to-stderr >&2\n"
		      "exit 7\n",
		      0755);
	tl_write_file(rpc_dir, "over", "#!/bin/sh\necho generic\n", 0755);
	tl_write_file(rpc_dir, "over+special", "#!/bin/sh\necho special\n", 0755);
	tl_write_file(rpc_dir, "cat", "#!/bin/sh\nexec cat\n", 0755);
	tl_write_file(rpc_dir, "ignore", "#!/bin/sh\necho ignored\nexit 3\n", 0755);
	tl_write_file(rpc_dir, "killed", "#!/bin/sh\nkill -9 $$\n", 0755);
	tl_write_file(rpc_dir, "noexec", "#!/bin/sh\necho never\n", 0644);
	char *s;
	if (asprintf(&s, "#!/bin/sh\necho $$ > %s/forever.pid\nexec yes\n", dir) < 0)
		tl_die("asprintf");
	tl_write_file(rpc_dir, "forever", s, 0755);
	free(s);
	if (asprintf(&s, "#!/bin/sh\necho $$ > %s/block.pid\nexec cat\n", dir) < 0)
		tl_die("asprintf");
	tl_write_file(rpc_dir, "block", s, 0755);
	free(s);
	if (asprintf(&s, "#!/bin/sh\necho $$ > %s/flood.pid\nexec head -c %d /dev/zero\n", dir,
		     FLOOD_BYTES) < 0)
		tl_die("asprintf");
	tl_write_file(rpc_dir, "flood", s, 0755);
	free(s);
	tl_write_file(rpc_dir, "plain", "#!/bin/sh\necho plain\n", 0755);
	/* the descriptors a service has: ls's own directory fd is the lowest
	 * free one, so a clean service lists exactly 0 1 2 3 */
	tl_write_file(rpc_dir, "env",
		      "#!/bin/sh\necho \"${NOTIFY_SOCKET-unset} ${LISTEN_FDS-unset} "
		      "${LISTEN_PID-unset} ${WATCHDOG_USEC-unset} ${KEEP_ME-unset}\"\n",
		      0755);
	tl_write_file(rpc_dir, "sigs", "#!/bin/sh\nexec grep -E '^Sig(Ign|Blk)' /proc/self/status\n",
		      0755);
	tl_write_file(rpc_dir, "fds", "#!/bin/sh\nexec ls -1 /proc/self/fd\n", 0755);
	/* ignores EOF, EPIPE and SIGTERM, and has a child in its group */
	if (asprintf(&s, "#!/bin/sh\ntrap '' TERM PIPE\nsleep 1000 &\n"
			 "echo \"$$ $!\" > %s/stubborn.pid.tmp\n"
			 "mv %s/stubborn.pid.tmp %s/stubborn.pid\nwait\nwait\n",
		     dir, dir, dir) < 0)
		tl_die("asprintf");
	tl_write_file(rpc_dir, "stubborn", s, 0755);
	free(s);
	tl_write_file(rpc_dir, "plain+", "#!/bin/sh\necho plain-plus \"$#\"\n", 0755);
	s = rpc_path("linked"); /* the administrator's symlink is followed */
	if (symlink("/bin/echo", s) < 0)
		tl_die("symlink");
	free(s);
	s = rpc_path("adir");
	mkdir(s, 0755); /* a directory is not a service */
	free(s);
}

/* A unix-socket service: answers one connection with the header line it
 * got, then the stream upper-cased, then closes. */
static pid_t start_socket_service(void)
{
	char *p = rpc_path("sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(p) >= sizeof(a.sun_path))
		tl_die("socket path too long");
	memcpy(a.sun_path, p, strlen(p) + 1);
	free(p);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0)
		tl_die("socket service");
	pid_t pid = fork();
	if (pid < 0)
		tl_die("fork");
	if (pid == 0) {
		int fd = accept(lfd, NULL, NULL);
		char line[256];
		size_t n = 0;
		while (n < sizeof(line) - 1 && read(fd, line + n, 1) == 1 && line[n] != '\n')
			n++;
		line[n] = 0;
		dprintf(fd, "hdr=[%s]\n", line);
		char b[4096];
		ssize_t got;
		while ((got = read(fd, b, sizeof(b))) > 0) {
			for (ssize_t i = 0; i < got; i++)
				if (b[i] >= 'a' && b[i] <= 'z')
					b[i] = (char)(b[i] - 32);
			if (write(fd, b, (size_t)got) != got)
				_exit(1);
		}
		close(fd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static pid_t read_pid_file(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		tl_die("asprintf");
	long long end = tl_now_ms() + TIMEOUT_MS;
	pid_t pid = 0;
	while (tl_now_ms() < end) {
		char *t = tl_read_file(p, NULL);
		if (t && strchr(t, '\n'))
			pid = (pid_t)atoi(t);
		free(t);
		if (pid > 0)
			break;
		poll(NULL, 0, 10);
	}
	free(p);
	return pid;
}

static void test_basic(void)
{
	struct result r;

	/* found: argv, environment, stdin through, stderr, exit code */
	run("echo", "xyz", "line1\nline2\n", 12, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 7);
	CHECK_STR((char *)r.out, "argc=1 arg1=xyz remote=work service=echo argument=xyz "
				 "target=@default\nline1\nline2\n");
	CHECK_STR((char *)r.err, "to-stderr\n");
	result_free(&r);

	/* no argument: no argv[1], empty QUBE_SERVICE_ARGUMENT */
	run("echo", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 7);
	CHECK_STR((char *)r.out, "argc=0 arg1= remote=work service=echo argument= target=@default\n");
	result_free(&r);

	/* not found: EOF, EOF, EXIT 127 and nothing else */
	run("missing", "", "x", 1, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 127);
	CHECK_INT(r.out_len, 0);
	CHECK_INT(r.err_len, 0);
	CHECK_INT(r.n_msgs, 3);
	result_free(&r);
	run("adir", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.exit_code, 127);
	result_free(&r);
	/* "echo+" is not "echo": the argument is part of the lookup only */
	run("missing", "echo", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.exit_code, 127);
	result_free(&r);

	/* SERVICE+ARG overrides SERVICE */
	run("over", "special", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "special\n");
	result_free(&r);
	run("over", "other", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "generic\n");
	result_free(&r);
	run("over", "", NULL, 0, SEND_EOF, &r);
	CHECK_STR((char *)r.out, "generic\n");
	result_free(&r);

	/* for an empty argument "SERVICE+" comes first, and gets no argv[1] */
	run("plain", "", NULL, 0, SEND_EOF, &r);
	CHECK_STR((char *)r.out, "plain-plus 0\n");
	result_free(&r);
	run("plain", "x", NULL, 0, SEND_EOF, &r);
	CHECK_STR((char *)r.out, "plain\n");
	result_free(&r);
	/* a symlink to a program: executed directly, the argument as argv[1] */
	run("linked", "hello-world", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "hello-world\n");
	result_free(&r);

	/* exists but cannot run; killed by a signal */
	run("noexec", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 126);
	CHECK_INT(r.out_len, 0);
	result_free(&r);
	run("killed", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 128 + 9);
	result_free(&r);
}

static void test_streams(void)
{
	struct result r;
	size_t big_len = 4u << 20; /* 4 MiB each way, more than any buffer */
	uint8_t *big = malloc(big_len);
	if (!big)
		tl_die("malloc");
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 131 + (i >> 12));

	run("cat", "", big, big_len, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	CHECK_INT(r.out_len, big_len);
	CHECK(r.out_len == big_len && memcmp(r.out, big, big_len) == 0);
	result_free(&r);

	/* the connection's write side closing also ends the service's stdin */
	run("cat", "", "half", 4, HALF_CLOSE, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "half");
	result_free(&r);

	/* a service that never reads stdin: the agent drops it, still sends
	 * the output and the exit code */
	run("ignore", "", big, big_len, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 3);
	CHECK_STR((char *)r.out, "ignored\n");
	/* ...and keeps taking (discarding) stdin until the caller closes, so a
	 * broker still sending never sees its writes fail before it has read
	 * the exit code */
	CHECK(!r.send_failed);
	result_free(&r);
	free(big);

	/* the caller goes away while the service writes forever: the service
	 * gets EPIPE/SIGPIPE and is reaped */
	run("forever", "", NULL, 0, CLOSE_EARLY, &r);
	CHECK_INT(r.rc, -ECANCELED);
	result_free(&r);
	pid_t pid = read_pid_file("forever.pid");
	CHECK(pid > 0);
	if (pid > 0) {
		bool gone = tl_wait_gone(pid, TIMEOUT_MS);
		CHECK(gone);
		if (!gone)
			kill(pid, SIGKILL);
	}
}

static void test_socket_service(void)
{
	struct result r;
	pid_t srv = start_socket_service();
	run("sock", "arg1", "hello socket\n", 13, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "hdr=[work sock+arg1 @default]\nHELLO SOCKET\n");
	CHECK_INT(r.err_len, 0);
	result_free(&r);
	CHECK_INT(tl_wait_pid(srv, TIMEOUT_MS), 0);
	/* nobody listens on the socket any more */
	run("sock", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 126);
	result_free(&r);

	/* A service that stopped accepting, its backlog full: the call fails
	 * with 126 after the agent's connect timeout (5 s), it does not hang. */
	char *p = rpc_path("sock");
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path, p, strlen(p) + 1);
	free(p);
	unlink(a.sun_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0 || filler < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 0) < 0 || connect(filler, (struct sockaddr *)&a, sizeof(a)) < 0)
		tl_die("full socket service");
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(connect(probe, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == EAGAIN);
	close(probe);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run("sock", "", NULL, 0, SEND_EOF, &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 126);
	long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(waited_ms >= 4000); /* it did retry, not give up at the first EAGAIN */
	result_free(&r);
	close(filler);
	close(lfd);
	unlink(a.sun_path);
}

/* One connection that stays open must not hold up another. */
static void test_concurrent(void)
{
	struct qrpc_state st_a;
	struct result r;
	int a = connect_hello(&st_a, 1);
	CHECK(a >= 0);
	if (a < 0)
		return;
	CHECK_INT(send_start(a, &st_a, "block", "", NULL), 0);
	pid_t pid = read_pid_file("block.pid");
	CHECK(pid > 0);
	run("echo", "b", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 7);
	result_free(&r);
	/* now finish the first one */
	memset(&r, 0, sizeof(r));
	stream(a, &st_a, "first", 5, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "first");
	result_free(&r);
	close(a);
}

/* Reads /proc/PID/FILE into BUF; "" if unreadable. */
static void proc_read(pid_t pid, const char *file, char *buf, size_t cap)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, file);
	buf[0] = 0;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, cap - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

static long long proc_wchar(pid_t pid)
{
	char b[1024];
	proc_read(pid, "io", b, sizeof(b));
	char *w = strstr(b, "wchar: ");
	return w ? atoll(w + 7) : -1;
}

static pid_t proc_ppid(pid_t pid)
{
	char b[1024];
	proc_read(pid, "stat", b, sizeof(b));
	char *rp = strrchr(b, ')');
	int ppid = 0;
	char state;
	if (!rp || sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
		return 0;
	return ppid;
}

/* A reader that stops reading must not make the agent buffer the
 * service's output: once the service and the agent's handler are both
 * blocked (the service writing, the handler in poll), the service has
 * written only what pipes, socket buffers and the handler's bounded
 * buffers hold -- far less than the FLOOD_BYTES it wants to write. */
static void test_backpressure(void)
{
	struct qrpc_state st;
	int fd = connect_hello(&st, 1);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(send_start(fd, &st, "flood", "", NULL), 0);
	pid_t pid = read_pid_file("flood.pid");
	CHECK(pid > 0);
	if (pid <= 0) {
		close(fd);
		return;
	}
	pid_t handler = proc_ppid(pid);
	CHECK(handler > 0);
	char wchan[128], hwchan[128];
	/* Some kernels hide wait channels ("0" even for a sleeping process,
	 * such as the agent's main process blocked in accept): then this
	 * check cannot be made here, and says so instead of guessing. */
	proc_read(agent_pid, "wchan", hwchan, sizeof(hwchan));
	if (hwchan[0] == '\0' || strcmp(hwchan, "0") == 0) {
		fprintf(stderr, "test-agent: /proc/PID/wchan unavailable: backpressure check "
				"NOT made\n");
		close(fd);
		tl_wait_gone(pid, TIMEOUT_MS);
		return;
	}
	long long end = tl_now_ms() + TIMEOUT_MS, written = -1;
	bool steady = false;
	while (!steady && tl_now_ms() < end) {
		proc_read(pid, "wchan", wchan, sizeof(wchan));
		proc_read(handler, "wchan", hwchan, sizeof(hwchan));
		if (strstr(wchan, "pipe_write") && strstr(hwchan, "poll")) {
			written = proc_wchar(pid);
			/* both still blocked after reading the counter: steady */
			proc_read(pid, "wchan", wchan, sizeof(wchan));
			proc_read(handler, "wchan", hwchan, sizeof(hwchan));
			steady = strstr(wchan, "pipe_write") && strstr(hwchan, "poll") &&
				 proc_wchar(pid) == written;
		}
		if (!steady)
			poll(NULL, 0, 20);
	}
	if (!steady) {
		fprintf(stderr, "test-agent: backpressure: never saw the service blocked in a pipe "
				"write with the agent idle (wchan '%s' / '%s'); /proc/PID/wchan may be "
				"unavailable\n",
			wchan, hwchan);
	}
	CHECK(steady);
	fprintf(stderr, "test-agent: backpressure: service blocked after %lld of %d bytes\n", written,
		FLOOD_BYTES);
	CHECK(written >= 0 && written < 8 * 1024 * 1024);
	close(fd);
	/* the reader is gone: the service is ended and reaped */
	bool gone = tl_wait_gone(pid, TIMEOUT_MS);
	CHECK(gone);
	if (!gone)
		kill(pid, SIGKILL);
}

/* Bad requests end their connection after the agent's HELLO, and the agent
 * keeps serving. */
static void expect_closed(const uint8_t *bytes, size_t len, const char *what)
{
	uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];
	struct qrpc_msg m;
	int fd = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(qrpc_write_full(fd, bytes, len), 0);
	CHECK_INT(qrpc_read_msg(fd, buf, sizeof(buf), &m), 0);
	CHECK_INT(m.type, QRPC_MSG_HELLO);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	CHECK_INT(poll(&pfd, 1, TIMEOUT_MS), 1);
	int r = qrpc_read_msg(fd, buf, sizeof(buf), &m);
	if (r != -EPIPE && r != -ECONNRESET)
		fprintf(stderr, "  %s: expected the connection closed, got %d (type %u)\n", what, r,
			m.type);
	CHECK(r == -EPIPE || r == -ECONNRESET);
	close(fd);
}

/* SERVICE_START_AS (version 2): the service runs as the policy's user=,
 * with that user's HOME/USER/LOGNAME; an unknown user, or any other user
 * when the agent is not root, cannot be started (126); a version-1
 * connection cannot send it at all. */
static void run_as(const char *user, struct result *res)
{
	struct qrpc_state st;

	memset(res, 0, sizeof(*res));
	int fd = connect_hello(&st, 2);
	if (fd < 0) {
		res->rc = fd;
		return;
	}
	CHECK_INT(st.version, 2);
	int r = send_start(fd, &st, "whoami", "", user);
	if (r < 0) {
		res->rc = r;
		close(fd);
		return;
	}
	stream(fd, &st, NULL, 0, SEND_EOF, res);
	close(fd);
}

static void test_run_as(void)
{
	struct result r;
	char want[256];
	struct passwd *me = getpwuid(geteuid());
	struct passwd *nobody = getpwnam("nobody");

	CHECK(me != NULL && nobody != NULL);
	if (!me || !nobody)
		return;
	/* the service directory must be reachable by the other user */
	chmod(dir, 0755);
	tl_write_file(rpc_dir, "whoami", "#!/bin/sh\necho \"$(id -u) $(id -g) $USER $LOGNAME $HOME\"\n",
		      0755);
	/* the agent's own user: always possible */
	char my_name[64];
	snprintf(my_name, sizeof(my_name), "%s", me->pw_name);
	run_as(my_name, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	snprintf(want, sizeof(want), "%u ", (unsigned)geteuid());
	CHECK(r.out && strncmp((char *)r.out, want, strlen(want)) == 0);
	result_free(&r);

	run_as("nobody", &r);
	CHECK_INT(r.rc, 0);
	if (geteuid() == 0) {
		CHECK_INT(r.exit_code, 0);
		snprintf(want, sizeof(want), "%u %u nobody nobody %s\n", (unsigned)nobody->pw_uid,
			 (unsigned)nobody->pw_gid, nobody->pw_dir);
		CHECK_STR((char *)r.out, want);
	} else {
		fprintf(stderr, "test-agent: not root: running as another user must fail (126)\n");
		CHECK_INT(r.exit_code, 126);
		CHECK_INT(r.out_len, 0);
	}
	result_free(&r);

	run_as("no-such-user-here", &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 126);
	CHECK_INT(r.out_len, 0);
	result_free(&r);

	/* version 1 negotiated: SERVICE_START_AS is out of the protocol */
	static const uint8_t hello_v1[] = { 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0 };
	uint8_t b[512];
	struct qrpc_msg m = start_msg("whoami", "", "nobody");
	size_t len;
	memcpy(b, hello_v1, sizeof(hello_v1));
	CHECK_INT(qrpc_msg_encode(&m, b + sizeof(hello_v1), sizeof(b) - sizeof(hello_v1), &len), 0);
	expect_closed(b, sizeof(hello_v1) + len, "SERVICE_START_AS in version 1");
}

static void test_bad_requests(void)
{
	static const uint8_t hello_v1[] = { 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0 };
	/* versions 3..4: none in common with this agent (1..2) */
	static const uint8_t hello_v3[] = { 1, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0 };
	uint8_t b[256];
	size_t n;

	expect_closed(hello_v3, sizeof(hello_v3), "version mismatch");
	/* a CALL_REQUEST on the SERVICE channel */
	memcpy(b, hello_v1, 16);
	static const uint8_t req[] = { 0x10, 0, 0, 0, 5, 0, 0, 0, 1, 'w', 1, 's', 0 };
	memcpy(b + 16, req, sizeof(req));
	expect_closed(b, 16 + sizeof(req), "call request");
	/* SERVICE_START with "../x" smuggled into the service name */
	static const uint8_t ss[] = { 0x20, 0, 0, 0, 16, 0, 0, 0, 4, 'w', 'o', 'r', 'k',
				      4, '.', '.', '/', 'x', 0, 4, 'w', 'o', 'r', 'k' };
	memcpy(b + 16, ss, sizeof(ss));
	n = 16 + sizeof(ss);
	expect_closed(b, n, "path in service name");
	/* stdin before SERVICE_START */
	static const uint8_t in[] = { 0x30, 0, 0, 0, 1, 0, 0, 0, 'x' };
	memcpy(b + 16, in, sizeof(in));
	expect_closed(b, 16 + sizeof(in), "stdin first");
	/* oversized header */
	static const uint8_t huge[] = { 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f };
	memcpy(b + 16, huge, sizeof(huge));
	expect_closed(b, 16 + sizeof(huge), "oversized");
	/* no HELLO first */
	expect_closed(in, sizeof(in), "no hello");

	/* and the agent still works */
	struct result r;
	run("over", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_STR((char *)r.out, "generic\n");
	result_free(&r);
}

static bool wait_for_log(const char *path, const char *needle, int timeout_ms)
{
	long long end = tl_now_ms() + timeout_ms;
	while (tl_now_ms() < end) {
		char *t = tl_read_file(path, NULL);
		bool found = t && strstr(t, needle);
		free(t);
		if (found)
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

/* A service gets descriptors 0-2 and nothing else: not the agent's
 * sockets, and not descriptors the agent inherited without close-on-exec
 * (main() gives the agent fd 57 for this test). */
static void test_service_fds(void)
{
	struct result r;
	run("env", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_STR((char *)r.out, "unset unset unset unset kept\n");
	result_free(&r);
	/* no signal ignored or blocked, although the agent was started with
	 * SIGINT, SIGHUP and SIGPIPE ignored (main) */
	run("sigs", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_STR((char *)r.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	result_free(&r);
	run("fds", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, 0);
	CHECK_STR((char *)r.out, "0\n1\n2\n3\n");
	result_free(&r);
}

/* The children of PID, from /proc (empty when it has none). */
static void proc_children(pid_t pid, char *buf, size_t cap)
{
	char f[64];
	snprintf(f, sizeof(f), "task/%d/children", (int)pid);
	proc_read(pid, f, buf, cap);
}

/* The broker drops the connection while the service ignores EOF, EPIPE and
 * SIGTERM: the agent ends the service's whole process group (SIGTERM, then
 * SIGKILL) instead of waiting for it forever, and its connection process
 * exits. */
static void test_broker_gone(void)
{
	struct qrpc_state st;
	char *p;
	int fd = connect_hello(&st, 1);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(send_start(fd, &st, "stubborn", "", NULL), 0);
	pid_t svc = read_pid_file("stubborn.pid");
	CHECK(svc > 0);
	if (asprintf(&p, "%s/stubborn.pid", dir) < 0)
		tl_die("asprintf");
	char *t = tl_read_file(p, NULL);
	pid_t bg = t && strchr(t, ' ') ? (pid_t)atoi(strchr(t, ' ') + 1) : 0;
	free(t);
	free(p);
	CHECK(bg > 0);
	pid_t handler = svc > 0 ? proc_ppid(svc) : 0;
	CHECK(handler > 0 && handler != agent_pid);
	close(fd); /* no EOF(stdin), no half-close: the broker is just gone */
	bool gone = svc > 0 && tl_wait_gone(svc, TIMEOUT_MS);
	CHECK(gone);
	bool bg_gone = bg > 0 && tl_wait_gone(bg, TIMEOUT_MS);
	CHECK(bg_gone);
	bool handler_gone = handler > 0 && tl_wait_gone(handler, TIMEOUT_MS);
	CHECK(handler_gone);
	if (!gone && svc > 0)
		kill(svc, SIGKILL);
	if (!bg_gone && bg > 0)
		kill(bg, SIGKILL);
}

/* With --max-connections 2, a third connection waits (the agent says so in
 * its log) until one of the first two ends, and is then served.  Finished
 * connection processes are reaped: none is left as a zombie. */
static void test_connection_limit(const char *agent_path)
{
	char *d = tl_mkdtemp("qrpc-lim"), *sp, *lg;
	struct qrpc_transport lt = { .kind = QRPC_TRANSPORT_UNIX }, saved = tr;
	if (asprintf(&sp, "unix:%s", d) < 0 || qrpc_transport_parse(sp, &lt) < 0 ||
	    asprintf(&lg, "%s/agent.log", d) < 0)
		tl_die("transport");
	char *av[] = { (char *)agent_path, "--transport", sp, "--rpc-dir", rpc_dir,
		       "--max-connections", "2", NULL };
	pid_t ag = tl_spawn(av, NULL, NULL, lg);
	CHECK(wait_for_log(lg, "listening", TIMEOUT_MS));
	CHECK(wait_for_log(lg, "at most 2 connections", TIMEOUT_MS));
	tr = lt;

	struct qrpc_state s1, s2;
	int a = connect_hello(&s1, 1), b = connect_hello(&s2, 1);
	CHECK(a >= 0 && b >= 0);
	/* the third: the kernel queues it, the agent does not take it (a raw
	 * connect: waiting for the "OK" line would only time out) */
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vsock", d);
	CHECK_INT(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(write(c, "CONNECT 512\n", 12), 12);
	CHECK(wait_for_log(lg, "connection limit (2) reached", TIMEOUT_MS));
	close(c);
	/* one ends: the next connection is served */
	if (a >= 0) {
		CHECK_INT(send_start(a, &s1, "over", "", NULL), 0);
		struct result r;
		memset(&r, 0, sizeof(r));
		stream(a, &s1, NULL, 0, SEND_EOF, &r);
		CHECK_INT(r.rc, 0);
		CHECK_STR((char *)r.out, "generic\n");
		result_free(&r);
		close(a);
	}
	struct result r;
	run("over", "special", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_STR((char *)r.out, "special\n");
	result_free(&r);
	if (b >= 0)
		close(b);
	/* every connection process is reaped: no children, no zombies */
	char kids[256] = "?";
	long long end = tl_now_ms() + TIMEOUT_MS;
	while (tl_now_ms() < end) {
		proc_children(ag, kids, sizeof(kids));
		if (kids[0] == '\0')
			break;
		poll(NULL, 0, 20);
	}
	if (kids[0])
		fprintf(stderr, "  agent children left: %s\n", kids);
	CHECK(kids[0] == '\0');

	tr = saved;
	kill(ag, SIGTERM);
	tl_wait_pid(ag, TIMEOUT_MS);
	if (check_failures) {
		char *t = tl_read_file(lg, NULL);
		fprintf(stderr, "--- limited agent log ---\n%s", t ? t : "");
		free(t);
	}
	tl_rm_rf(d);
	free(d);
	free(sp);
	free(lg);
}

/* A service directory that cannot be opened: every call answers 127, and
 * the log says why (not just "no such service"). */
static void test_missing_rpc_dir(const char *agent_path)
{
	char *d = tl_mkdtemp("qrpc-nodir"), *sp, *lg, *missing;
	struct qrpc_transport lt = { .kind = QRPC_TRANSPORT_UNIX }, saved = tr;
	if (asprintf(&sp, "unix:%s", d) < 0 || qrpc_transport_parse(sp, &lt) < 0 ||
	    asprintf(&lg, "%s/agent.log", d) < 0 || asprintf(&missing, "%s/none", d) < 0)
		tl_die("transport");
	char *av[] = { (char *)agent_path, "--transport", sp, "--rpc-dir", missing, NULL };
	pid_t ag = tl_spawn(av, NULL, NULL, lg);
	CHECK(wait_for_log(lg, "listening", TIMEOUT_MS));
	tr = lt;
	struct result r;
	run("echo", "", NULL, 0, SEND_EOF, &r);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.exit_code, QRPC_EXIT_NO_SERVICE);
	result_free(&r);
	char *want;
	if (asprintf(&want, "cannot open the service directory %s: No such file", missing) < 0)
		tl_die("asprintf");
	CHECK(wait_for_log(lg, want, TIMEOUT_MS));
	free(want);
	tr = saved;
	kill(ag, SIGTERM);
	tl_wait_pid(ag, TIMEOUT_MS);
	tl_rm_rf(d);
	free(d);
	free(sp);
	free(lg);
	free(missing);
}

/* A broker that sends its request one byte now and then: the agent ends the
 * connection once --request-timeout has passed since it was accepted,
 * however recent the last byte (before: each byte restarted the wait). */
static void test_request_timeout(const char *agent_path)
{
	char *d = tl_mkdtemp("qrpc-rto"), *sp, *lg;
	struct qrpc_transport lt = { .kind = QRPC_TRANSPORT_UNIX }, saved = tr;
	if (asprintf(&sp, "unix:%s", d) < 0 || qrpc_transport_parse(sp, &lt) < 0 ||
	    asprintf(&lg, "%s/agent.log", d) < 0)
		tl_die("transport");
	char *av[] = { (char *)agent_path, "--transport", sp, "--rpc-dir", rpc_dir,
		       "--request-timeout", "2", NULL };
	pid_t ag = tl_spawn(av, NULL, NULL, lg);
	CHECK(wait_for_log(lg, "listening", TIMEOUT_MS));
	tr = lt;
	int fd = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
	CHECK(fd >= 0);
	if (fd >= 0) {
		uint8_t bytes[64];
		size_t n = 0;
		struct qrpc_msg m = { .type = QRPC_MSG_HELLO };
		m.u.hello.version_min = m.u.hello.version_max = 1;
		size_t len;
		CHECK_INT(qrpc_msg_encode(&m, bytes, sizeof(bytes), &len), 0);
		n = len;
		m = (struct qrpc_msg){ .type = QRPC_MSG_SERVICE_START };
		snprintf(m.u.service_start.source, sizeof(m.u.service_start.source), "work");
		snprintf(m.u.service_start.service, sizeof(m.u.service_start.service), "over");
		snprintf(m.u.service_start.requested_target,
			 sizeof(m.u.service_start.requested_target), "work");
		CHECK_INT(qrpc_msg_encode(&m, bytes + n, sizeof(bytes) - n, &len), 0);
		n += len;
		/* 0.5 s apart: the whole request would take over 10 s */
		bool closed = false;
		size_t sent = 0;
		uint8_t junk[256];
		while (!closed && sent < n) {
			if (send(fd, bytes + sent, 1, MSG_NOSIGNAL) != 1) {
				closed = true;
				break;
			}
			sent++;
			long long until = tl_now_ms() + 500;
			while (!closed && tl_now_ms() < until) {
				struct pollfd pfd = { .fd = fd, .events = POLLIN };
				if (poll(&pfd, 1, (int)(until - tl_now_ms())) == 1) {
					ssize_t got = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
					if (got == 0 || (got < 0 && errno != EAGAIN))
						closed = true; /* (the agent's HELLO is read and dropped) */
				}
			}
		}
		/* closed before the request was complete (afterwards the agent
		 * would run the service and close after EXIT anyway) */
		if (!closed || sent >= n)
			fprintf(stderr, "  the agent took all %zu bytes of a request that came in "
					"over %zu s\n", n, n / 2);
		CHECK(closed && sent < n);
		CHECK(wait_for_log(lg, "bad request from broker: Connection timed out", TIMEOUT_MS));
		close(fd);
	}
	tr = saved;
	kill(ag, SIGTERM);
	tl_wait_pid(ag, TIMEOUT_MS);
	tl_rm_rf(d);
	free(d);
	free(sp);
	free(lg);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test-agent PATH-TO-qube-agent\n");
		return 99;
	}
	signal(SIGPIPE, SIG_IGN);
	dir = tl_mkdtemp("qrpc-ag");
	if (asprintf(&rpc_dir, "%s/rpc", dir) < 0 || mkdir(rpc_dir, 0755) < 0)
		tl_die("rpc dir");
	char *spec, *log;
	if (asprintf(&spec, "unix:%s", dir) < 0 || qrpc_transport_parse(spec, &tr) < 0 ||
	    asprintf(&log, "%s/agent.log", dir) < 0)
		tl_die("transport");
	setup_services();

	/* A QUBE_* variable in the agent's environment must not reach services. */
	setenv("QUBE_REMOTE", "forged", 1);
	/* ...nor what the agent's service manager told the agent alone */
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", "1", 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	setenv("KEEP_ME", "kept", 1); /* an ordinary variable is passed on */
	/* ...nor a descriptor it inherited without close-on-exec */
	int leak = open("/dev/null", O_RDONLY);
	if (leak < 0 || dup2(leak, 57) < 0)
		tl_die("fd 57");
	close(leak);
	char *agent_argv[] = { argv[1], "--transport", spec, "--rpc-dir", rpc_dir, "--name", "testvm",
			       NULL };
	/* as nohup or a shell's background job would leave it */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	pid_t agent = tl_spawn(agent_argv, NULL, NULL, log);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	agent_pid = agent;
	unsetenv("QUBE_REMOTE");
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("WATCHDOG_USEC");
	unsetenv("KEEP_ME");
	close(57);
	if (!wait_for_log(log, "listening", TIMEOUT_MS)) {
		fprintf(stderr, "qube-agent did not start\n");
		kill(agent, SIGKILL);
		return 99;
	}

	test_basic();
	test_streams();
	test_socket_service();
	test_concurrent();
	test_backpressure();
	test_bad_requests();
	test_run_as();
	test_service_fds();
	test_broker_gone();
	test_connection_limit(argv[1]);
	test_missing_rpc_dir(argv[1]);
	test_request_timeout(argv[1]);

	kill(agent, SIGTERM);
	tl_wait_pid(agent, TIMEOUT_MS);
	if (check_failures) {
		char *t = tl_read_file(log, NULL);
		fprintf(stderr, "--- agent log ---\n%s", t ? t : "");
		free(t);
	}
	tl_rm_rf(dir);
	free(spec);
	free(log);
	free(rpc_dir);
	free(dir);
	return check_exit_code("test-agent");
}
