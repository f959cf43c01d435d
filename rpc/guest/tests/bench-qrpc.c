/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Benchmarks of libqrpc and qube-agent, each against a baseline measured in
 * the same run:
 *   codec   encode + parse of 64 KiB data messages  vs  memcpy of the bytes
 *   stream  bytes through a real qube-agent's "cat" service over unix:DIR
 *           vs  the same bytes through a plain cat process over pipes
 *   calls   sequential service calls of /bin/true through the agent
 *           vs  fork + execve + wait of /bin/true
 * Usage: bench-qrpc PATH-TO-qube-agent [MEBIBYTES [CALLS]]
 */
#include "qrpc.h"

#include <sys/socket.h>

#include "testlib.h"

static char *dir, *rpc_dir;
static struct qrpc_transport tr;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint8_t sink;

static void bench_codec(void)
{
	static uint8_t payload[QRPC_MAX_DATA], buf[QRPC_HEADER_SIZE + QRPC_MAX_DATA],
		copy[QRPC_MAX_DATA];
	const size_t iters = 20000;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;

	double t0 = now_s();
	for (size_t i = 0; i < iters; i++) {
		struct qrpc_msg m = { .type = QRPC_MSG_STDOUT }, out;
		size_t len, used;
		payload[0] = (uint8_t)i;
		m.u.data.data = payload;
		m.u.data.len = QRPC_MAX_DATA;
		if (qrpc_msg_encode(&m, buf, sizeof(buf), &len) < 0 ||
		    qrpc_msg_parse(buf, len, &out, &used) < 0)
			abort();
		sink ^= out.u.data.data[i % QRPC_MAX_DATA];
	}
	double codec = now_s() - t0;
	t0 = now_s();
	for (size_t i = 0; i < iters; i++) {
		payload[0] = (uint8_t)i;
		memcpy(copy, payload, sizeof(payload));
		sink ^= copy[i % QRPC_MAX_DATA];
	}
	double base = now_s() - t0;
	double bytes = (double)iters * QRPC_MAX_DATA;
	printf("codec: encode+parse of 64 KiB data messages %.2f GB/s; memcpy baseline %.2f GB/s; "
	       "ratio %.2f\n",
	       bytes / codec / 1e9, bytes / base / 1e9, base / codec);

	/* the small control message a broker parses per call */
	struct qrpc_msg ss = { .type = QRPC_MSG_SERVICE_START };
	strcpy(ss.u.service_start.source, "personal");
	strcpy(ss.u.service_start.service, "qubes.Filecopy");
	strcpy(ss.u.service_start.requested_target, "@dispvm:fedora-dvm");
	const size_t n = 2000000;
	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		struct qrpc_msg out;
		size_t len, used;
		if (qrpc_msg_encode(&ss, buf, sizeof(buf), &len) < 0 ||
		    qrpc_msg_parse(buf, len, &out, &used) < 0)
			abort();
		sink ^= (uint8_t)out.u.service_start.source[0];
	}
	double t = now_s() - t0;
	printf("codec: SERVICE_START encode+parse %.2f M/s (%.0f ns each)\n", (double)n / t / 1e6,
	       t / (double)n * 1e9);
}

/* Sends LEN bytes as STDIN on a started SERVICE connection and receives
 * everything until EXIT; returns the number of stdout bytes. */
static size_t pump_agent(int fd, struct qrpc_state *st, size_t len)
{
	static uint8_t rbuf[2 * (QRPC_HEADER_SIZE + QRPC_MAX_DATA)];
	static uint8_t wbuf[QRPC_HEADER_SIZE + QRPC_MAX_DATA];
	static uint8_t chunk[QRPC_MAX_DATA];
	size_t sent = 0, got_out = 0, rlen = 0, wlen = 0, woff = 0;
	bool eof_sent = false;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		if (woff == wlen && !eof_sent) {
			struct qrpc_msg m;
			if (sent < len) {
				size_t n = len - sent > QRPC_MAX_DATA ? QRPC_MAX_DATA : len - sent;
				m = (struct qrpc_msg){ .type = QRPC_MSG_STDIN };
				m.u.data.data = chunk;
				m.u.data.len = (uint32_t)n;
				sent += n;
			} else {
				m = (struct qrpc_msg){ .type = QRPC_MSG_EOF };
				m.u.eof.stream = QRPC_STREAM_STDIN;
				eof_sent = true;
			}
			if (qrpc_state_on_send(st, &m) < 0 ||
			    qrpc_msg_encode(&m, wbuf, sizeof(wbuf), &wlen) < 0)
				abort();
			woff = 0;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN | (woff < wlen ? POLLOUT : 0) };
		if (poll(&pfd, 1, 60000) <= 0)
			abort();
		if ((pfd.revents & POLLOUT) && woff < wlen) {
			ssize_t w = send(fd, wbuf + woff, wlen - woff, MSG_NOSIGNAL);
			if (w > 0)
				woff += (size_t)w;
		}
		if (pfd.revents & (POLLIN | POLLHUP)) {
			ssize_t g = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);
			if (g <= 0 && errno != EAGAIN)
				abort();
			if (g > 0)
				rlen += (size_t)g;
			for (;;) {
				struct qrpc_msg m;
				size_t used;
				int r = qrpc_msg_parse(rbuf, rlen, &m, &used);
				if (r == -EAGAIN)
					break;
				if (r < 0 || qrpc_state_on_recv(st, &m) < 0)
					abort();
				if (m.type == QRPC_MSG_STDOUT)
					got_out += m.u.data.len;
				memmove(rbuf, rbuf + used, rlen - used);
				rlen -= used;
				if (m.type == QRPC_MSG_EXIT)
					return got_out;
			}
		}
	}
}

static int start_service(const char *service, struct qrpc_state *st)
{
	uint8_t buf[QRPC_HEADER_SIZE + QRPC_MAX_DATA];
	struct qrpc_msg m = { .type = QRPC_MSG_HELLO };
	int fd = qrpc_host_connect_guest(&tr, QRPC_PORT_AGENT);
	if (fd < 0)
		abort();
	qrpc_state_init(st, QRPC_CHANNEL_SERVICE, QRPC_SIDE_CLIENT);
	m.u.hello.version_min = m.u.hello.version_max = 1;
	if (qrpc_state_on_send(st, &m) < 0 || qrpc_write_msg(fd, &m) < 0 ||
	    qrpc_read_msg(fd, buf, sizeof(buf), &m) < 0 || qrpc_state_on_recv(st, &m) < 0)
		abort();
	m = (struct qrpc_msg){ .type = QRPC_MSG_SERVICE_START };
	strcpy(m.u.service_start.source, "bench");
	strcpy(m.u.service_start.service, service);
	strcpy(m.u.service_start.requested_target, "target");
	if (qrpc_state_on_send(st, &m) < 0 || qrpc_write_msg(fd, &m) < 0)
		abort();
	return fd;
}

/* Baseline: LEN bytes through /bin/cat over pipes, same chunking. */
static size_t pump_cat(size_t len)
{
	static uint8_t chunk[QRPC_MAX_DATA], rb[QRPC_MAX_DATA];
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl("/bin/cat", "cat", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t sent = 0, got = 0, off = 0, clen = 0;
	int wfd = in[1];
	for (;;) {
		if (wfd >= 0 && off == clen) {
			if (sent == len) {
				close(wfd);
				wfd = -1;
			} else {
				clen = len - sent > sizeof(chunk) ? sizeof(chunk) : len - sent;
				off = 0;
				sent += clen;
			}
		}
		struct pollfd p[2] = { { .fd = out[0], .events = POLLIN }, { .fd = wfd, .events = POLLOUT } };
		if (poll(p, wfd >= 0 ? 2 : 1, 60000) <= 0)
			abort();
		if (wfd >= 0 && (p[1].revents & POLLOUT)) {
			ssize_t w = write(wfd, chunk + off, clen - off);
			if (w > 0)
				off += (size_t)w;
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			ssize_t g = read(out[0], rb, sizeof(rb));
			if (g == 0)
				break;
			if (g > 0)
				got += (size_t)g;
		}
	}
	close(out[0]);
	waitpid(pid, NULL, 0);
	return got;
}

static void bench_stream(size_t mib)
{
	size_t len = mib << 20;
	struct qrpc_state st;
	double best_agent = 1e9, best_cat = 1e9;
	for (int round = 0; round < 3; round++) {
		double t0 = now_s();
		int fd = start_service("cat", &st);
		if (pump_agent(fd, &st, len) != len)
			abort();
		close(fd);
		double t = now_s() - t0;
		if (t < best_agent)
			best_agent = t;
		t0 = now_s();
		if (pump_cat(len) != len)
			abort();
		t = now_s() - t0;
		if (t < best_cat)
			best_cat = t;
	}
	printf("stream: %zu MiB through qube-agent's cat service %.0f MB/s; plain cat over pipes "
	       "%.0f MB/s; ratio %.2f (best of 3)\n",
	       mib, (double)len / best_agent / 1e6, (double)len / best_cat / 1e6,
	       best_cat / best_agent);
}

static void bench_calls(int n)
{
	struct qrpc_state st;
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		int fd = start_service("true", &st);
		pump_agent(fd, &st, 0);
		close(fd);
	}
	double agent = now_s() - t0;
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
	}
	double base = now_s() - t0;
	printf("calls: %d sequential calls of /bin/true through qube-agent %.0f/s (%.2f ms each); "
	       "fork+exec+wait baseline %.0f/s (%.2f ms); ratio %.2f\n",
	       n, n / agent, agent / n * 1e3, n / base, base / n * 1e3, base / agent);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench-qrpc PATH-TO-qube-agent [MEBIBYTES [CALLS]]\n");
		return 2;
	}
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
	int calls = argc > 3 ? atoi(argv[3]) : 300;
	signal(SIGPIPE, SIG_IGN);

	bench_codec();

	dir = tl_mkdtemp("qrpc-bench");
	if (asprintf(&rpc_dir, "%s/rpc", dir) < 0 || mkdir(rpc_dir, 0755) < 0)
		tl_die("rpc dir");
	char *spec, *log, *p;
	if (asprintf(&spec, "unix:%s", dir) < 0 || qrpc_transport_parse(spec, &tr) < 0 ||
	    asprintf(&log, "%s/agent.log", dir) < 0)
		tl_die("transport");
	if (asprintf(&p, "%s/cat", rpc_dir) < 0 || symlink("/bin/cat", p) < 0)
		tl_die("cat service");
	free(p);
	if (asprintf(&p, "%s/true", rpc_dir) < 0 || symlink("/bin/true", p) < 0)
		tl_die("true service");
	free(p);
	char *agent_argv[] = { argv[1], "--transport", spec, "--rpc-dir", rpc_dir, NULL };
	pid_t agent = tl_spawn(agent_argv, NULL, NULL, log);
	long long end = tl_now_ms() + 60000;
	for (;;) {
		char *t = tl_read_file(log, NULL);
		bool up = t && strstr(t, "listening");
		free(t);
		if (up)
			break;
		if (tl_now_ms() > end)
			tl_die("agent start");
		poll(NULL, 0, 10);
	}
	bench_stream(mib);
	bench_calls(calls);
	kill(agent, SIGTERM);
	tl_wait_pid(agent, 60000);
	tl_rm_rf(dir);
	free(spec);
	free(log);
	free(rpc_dir);
	free(dir);
	return 0;
}
