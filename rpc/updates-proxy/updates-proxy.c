/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-updates-proxy: the host side of qube.UpdatesProxy.  A template has
 * no network; apt in it talks HTTP to 127.0.0.1:8082, where a systemd
 * socket hands each connection to `qube-call @default qube.UpdatesProxy`;
 * the policy sends templates' calls to the host, whose qube-host-agent
 * runs this program, as its unprivileged service user, with the
 * connection as stdin and stdout.  One request per connection:
 *
 *   GET|HEAD http://HOST[:PORT]/...   rebuilt and sent to HOST, the
 *                                     response passed back with
 *                                     "Connection: close"
 *   CONNECT HOST:PORT                 "200 Connection established", then
 *                                     bytes both ways (TLS end to end)
 *
 * HOST and PORT must be on the allow-list (/etc/qube/updates-proxy.conf,
 * http-proxy.h).  Everything else is refused with an HTTP error status,
 * and a line on stderr (which the agent passes to the caller: the
 * template's journal) and in the host's syslog when /dev/log exists.
 *
 * Two processes: a child reads the request head byte by byte (so that it
 * never takes more than the head from stdin) and parses it under a
 * seccomp filter that allows read, write and exit; it hands the parent a
 * struct uproxy_request, which the parent checks again.  The parent, which
 * never parses the template's bytes, checks the allow-list, resolves the
 * host and connects, then installs its own filter (no open, no socket, no
 * connect, no exec) before it relays anything.
 *
 * Exit status: 0 when a response (possibly an error status) was sent; 1
 * when the proxy could not work (configuration, the parser child); 2
 * usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http-proxy.h"
#include "qname.h"

#define PROG "qube.UpdatesProxy"
#define DEFAULT_CONFIG "/etc/qube/updates-proxy.conf"
#define HEAD_TIMEOUT_MS 30000     /* the whole request head */
#define CONNECT_TIMEOUT_MS 30000  /* all addresses of the host together */
#define IDLE_TIMEOUT_MS 120000    /* no byte either way */
#define RELAY_BUF 65536

static const char *remote = "?";
static int syslog_fd = -1;
static pid_t my_pid;

/* ---- logging: one write per line, also under the seccomp filter ---- */

static void logmsg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(int prio, const char *fmt, ...)
{
	char text[1024], line[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* nothing but printable ASCII reaches a log */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	n = snprintf(line, sizeof(line), PROG ": from %s: %s\n", remote, text);
	if (n > 0 && prio <= 4) /* warnings and worse: also to the caller */
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (syslog_fd >= 0) {
		/* LOG_DAEMON (3 << 3) | prio, RFC 3164 without a time stamp */
		n = snprintf(line, sizeof(line), "<%d>qube-updates-proxy[%d]: from %s: %s", 24 + prio,
			     (int)my_pid, remote, text);
		if (n > 0)
			(void)!write(syslog_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
}

static void open_syslog(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return;
	}
	syslog_fd = fd;
}

/* ---- I/O helpers ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Writes everything to a (possibly non-blocking) fd within timeout_ms of
 * no progress.  0, -ETIMEDOUT or -errno. */
static int write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -errno;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int r = poll(&pfd, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static void send_response(unsigned status, const char *reason)
{
	char buf[1024];
	size_t n = uproxy_error_response(status, reason, buf, sizeof(buf));

	(void)write_all(STDOUT_FILENO, buf, n, IDLE_TIMEOUT_MS);
}

/* Refuses: the log line and the response. */
static void refuse(unsigned status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(unsigned status, const char *fmt, ...)
{
	char reason[UPROXY_REASON_MAX + 96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	logmsg(4, "refused (%u %s): %s", status, uproxy_status_text(status), reason);
	send_response(status, reason);
}

/* ---- seccomp ---- */

struct allowed_syscall {
	int nr;
	const char *why;
};

#if defined(__SANITIZE_ADDRESS__) || defined(UPROXY_SANITIZERS)
static const struct allowed_syscall sanitizer_calls[] = {
	{ SCMP_SYS(mprotect), "sanitizer allocator" },
	{ SCMP_SYS(futex), "sanitizer runtime locks" },
	{ SCMP_SYS(sched_yield), "sanitizer runtime spin locks" },
	{ SCMP_SYS(getpid), "sanitizer reports" },
	{ SCMP_SYS(gettid), "sanitizer reports" },
	{ SCMP_SYS(sigaltstack), "sanitizer signal stack" },
	{ SCMP_SYS(rt_sigprocmask), "sanitizer runtime" },
	{ SCMP_SYS(rt_sigaction), "sanitizer runtime" },
	{ SCMP_SYS(readlink), "sanitizer symbolizer path lookup" },
	{ SCMP_SYS(prctl), "sanitizer runtime" },
	{ SCMP_SYS(ioctl), "sanitizer reports: isatty() on stderr" },
	{ SCMP_SYS(getrlimit), "sanitizer runtime" },
	{ SCMP_SYS(prlimit64), "sanitizer runtime" },
	{ SCMP_SYS(getrandom), "sanitizer allocator" },
};
#endif

/* The filter: calls not listed kill the process.  Everything the program
 * needs from the system (configuration, syslog socket, the upstream
 * connection) is open before; what stays is moving bytes. */
static int install_filter(const struct allowed_syscall *calls, size_t n)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i].nr, 0);
#if defined(__SANITIZE_ADDRESS__) || defined(UPROXY_SANITIZERS)
	for (size_t i = 0; i < sizeof(sanitizer_calls) / sizeof(sanitizer_calls[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sanitizer_calls[i].nr, 0);
#endif
	/* memory, never executable */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

static const struct allowed_syscall child_calls[] = {
	{ SCMP_SYS(read), "the request head from stdin, a byte at a time" },
	{ SCMP_SYS(write), "the parsed request to the parent" },
	{ SCMP_SYS(brk), "malloc inside libc's formatting, if any" },
	{ SCMP_SYS(munmap), "free of large blocks" },
	{ SCMP_SYS(rt_sigreturn), "return from a signal handler (none installed)" },
	{ SCMP_SYS(restart_syscall), "restart after a stop signal" },
	{ SCMP_SYS(exit_group), "exit" },
	{ SCMP_SYS(exit), "exit" },
};

static const struct allowed_syscall parent_calls[] = {
	{ SCMP_SYS(read), "stdin (CONNECT) and the upstream connection" },
	{ SCMP_SYS(write), "stdout, the upstream connection, log lines" },
	{ SCMP_SYS(poll), "the relay" },
	{ SCMP_SYS(ppoll), "the relay (libc may use this form)" },
	{ SCMP_SYS(shutdown), "the template ended its side of a tunnel" },
	{ SCMP_SYS(close), "close stdin or stdout when a direction ends" },
	{ SCMP_SYS(clock_gettime), "timeouts (vDSO fallback)" },
	{ SCMP_SYS(brk), "malloc" },
	{ SCMP_SYS(munmap), "free of large blocks" },
	{ SCMP_SYS(mremap), "realloc of large blocks" },
	{ SCMP_SYS(madvise), "free gives memory back" },
	{ SCMP_SYS(rt_sigreturn), "return from a signal handler (none installed)" },
	{ SCMP_SYS(restart_syscall), "restart after a stop signal" },
	{ SCMP_SYS(exit_group), "exit" },
	{ SCMP_SYS(exit), "exit" },
};

/* --selftest-seccomp: a call the filter does not allow, right after it */
static void selftest_forbidden_call(void)
{
	long fd = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_CLOEXEC);

	logmsg(3, "--selftest-seccomp: openat() was NOT blocked (fd %ld)", fd);
	_exit(1);
}

/* ---- the parser child ---- */

static void child_main(int wfd, bool selftest)
{
	static uint8_t head[UPROXY_HEAD_MAX];
	static struct uproxy_request req;
	size_t n = 0;

	if (install_filter(child_calls, sizeof(child_calls) / sizeof(child_calls[0])) < 0)
		_exit(3);
	if (selftest)
		selftest_forbidden_call();
	for (;;) {
		ssize_t r;

		if (n == sizeof(head)) {
			req.status = 431;
			snprintf(req.reason, sizeof(req.reason), "the request head is over %u bytes",
				 UPROXY_HEAD_MAX);
			break;
		}
		r = read(STDIN_FILENO, head + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			req.status = 400;
			snprintf(req.reason, sizeof(req.reason),
				 "the connection ended before the request head did");
			break;
		}
		n++;
		if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) {
			uproxy_request_parse(head, n, &req);
			break;
		}
	}
	const uint8_t *p = (const uint8_t *)&req;
	size_t left = sizeof(req);
	while (left > 0) {
		ssize_t w = write(wfd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(4);
		p += w;
		left -= (size_t)w;
	}
	_exit(0);
}

/* Runs the child and takes its request: 0, or the status already sent. */
static unsigned parse_in_child(struct uproxy_request *ret, bool selftest)
{
	int fds[2], status = 0;
	pid_t pid;
	size_t got = 0;
	long long deadline = now_ms() + HEAD_TIMEOUT_MS;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		refuse(500, "pipe: %s", strerror(errno));
		return 500;
	}
	pid = fork();
	if (pid < 0) {
		refuse(500, "fork: %s", strerror(errno));
		return 500;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], selftest);
	}
	close(fds[1]);
	while (got < sizeof(*ret)) {
		long long left = deadline - now_ms();
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(fds[0]);
			refuse(408, "no complete request head within %d s", HEAD_TIMEOUT_MS / 1000);
			return 408;
		}
		ssize_t n = read(fds[0], (char *)ret + got, sizeof(*ret) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got < sizeof(*ret) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			logmsg(3, "the request parser was killed by signal %d (%s)", WTERMSIG(status),
			       strsignal(WTERMSIG(status)));
		else
			logmsg(3, "the request parser failed (exit status %d)",
			       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		send_response(500, "internal error");
		return 500;
	}
	if (ret->status != 0) {
		if (!uproxy_refusal_check(ret)) {
			refuse(500, "the request parser sent an invalid answer");
			return 500;
		}
		refuse(ret->status, "%s", ret->reason);
		return ret->status;
	}
	if (!uproxy_request_check(ret)) {
		refuse(500, "the request parser sent an invalid answer");
		return 500;
	}
	return 0;
}

/* ---- upstream ---- */

/* A connected non-blocking socket to the request's host and port, or -1
 * after refusing. */
static int connect_upstream(const struct uproxy_request *req)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[8];
	long long deadline = now_ms() + CONNECT_TIMEOUT_MS;
	int r, last_err = 0;

	if (req->host_kind != UPROXY_HOST_NAME)
		hints.ai_flags |= AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", (unsigned)req->port);
	r = getaddrinfo(req->host, port, &hints, &res);
	if (r != 0) {
		refuse(502, "cannot resolve %s: %s", req->host,
		       r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			last_err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			freeaddrinfo(res);
			return fd;
		}
		if (errno == EINPROGRESS) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			long long left = deadline - now_ms();
			int e = 0;
			socklen_t el = sizeof(e);

			r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
			if (r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0) {
				freeaddrinfo(res);
				return fd;
			}
			last_err = r == 0 ? ETIMEDOUT : e ? e : errno;
		} else {
			last_err = errno;
		}
		close(fd);
		if (now_ms() >= deadline)
			break;
	}
	freeaddrinfo(res);
	if (last_err == ETIMEDOUT)
		refuse(504, "cannot connect to %s port %u: no answer within %d s", req->host,
		       (unsigned)req->port, CONNECT_TIMEOUT_MS / 1000);
	else
		refuse(502, "cannot connect to %s port %u: %s", req->host, (unsigned)req->port,
		       strerror(last_err ? last_err : ECONNREFUSED));
	return -1;
}

/* ---- relaying ---- */

struct dir {
	int in, out;
	char buf[RELAY_BUF];
	size_t off, len;
	bool eof; /* in ended; out is shut once the buffer is empty */
	bool done;
};

/* Moves bytes until both directions are done (or, for GET, the one).
 * up_dir's end finishes the call: after the server's last byte nothing
 * more goes to it.  Returns 0, or -ETIMEDOUT after IDLE_TIMEOUT_MS without
 * a byte, or -EPIPE when a side went away. */
static int relay(struct dir *d, size_t nd)
{
	long long last = now_ms();

	for (;;) {
		struct pollfd pfd[4];
		int idx[4], n = 0;
		bool active = false;

		for (size_t i = 0; i < nd; i++) {
			if (d[i].done)
				continue;
			active = true;
			if (d[i].len > d[i].off) {
				idx[n] = (int)(i * 2 + 1);
				pfd[n++] = (struct pollfd){ .fd = d[i].out, .events = POLLOUT };
			} else if (!d[i].eof) {
				idx[n] = (int)(i * 2);
				pfd[n++] = (struct pollfd){ .fd = d[i].in, .events = POLLIN };
			}
		}
		/* d[0] is the server's direction: when it is done, so is the call */
		if (!active || d[0].done)
			return 0;
		long long left = last + IDLE_TIMEOUT_MS - now_ms();
		int r = left > 0 ? poll(pfd, (nfds_t)n, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		for (int k = 0; k < n; k++) {
			struct dir *x = &d[idx[k] / 2];

			if (!pfd[k].revents)
				continue;
			if (idx[k] % 2 == 0) {
				ssize_t got = read(x->in, x->buf, sizeof(x->buf));

				if (got > 0) {
					x->off = 0;
					x->len = (size_t)got;
					last = now_ms();
				} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
					x->eof = true;
				}
			} else {
				ssize_t w = write(x->out, x->buf + x->off, x->len - x->off);

				if (w > 0) {
					x->off += (size_t)w;
					last = now_ms();
				} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
					return -EPIPE;
				}
			}
			if (x->eof && x->off == x->len && !x->done) {
				/* pass the end on: a socket gets a half-close,
				 * a pipe is closed */
				if (shutdown(x->out, SHUT_WR) < 0)
					close(x->out);
				x->done = true;
			}
		}
	}
}

/* GET/HEAD: the rebuilt request, the response head checked and rewritten,
 * then the body as it comes. */
static int forward_get(const struct uproxy_request *req, int up, struct dir *down)
{
	char reqbuf[UPROXY_TARGET_MAX + UPROXY_FWD_MAX + UPROXY_HOST_MAX + 128];
	static uint8_t head[UPROXY_HEAD_MAX];
	static char out[UPROXY_HEAD_MAX + 64];
	char err[128];
	size_t rl, hl = 0, got = 0, ol;
	unsigned status;
	long long last = now_ms();

	if (uproxy_upstream_request(req, reqbuf, sizeof(reqbuf), &rl) < 0) {
		refuse(500, "the request does not fit the proxy's buffer");
		return -1;
	}
	if (write_all(up, reqbuf, rl, IDLE_TIMEOUT_MS) < 0) {
		refuse(502, "%s port %u: the request could not be sent", req->host, (unsigned)req->port);
		return -1;
	}
	while ((hl = uproxy_head_length(head, got)) == 0) {
		struct pollfd pfd = { .fd = up, .events = POLLIN };
		long long left = last + IDLE_TIMEOUT_MS - now_ms();
		int r;

		if (got == sizeof(head)) {
			refuse(502, "%s: the response head is over %u bytes", req->host, UPROXY_HEAD_MAX);
			return -1;
		}
		r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			refuse(504, "%s: no response within %d s", req->host, IDLE_TIMEOUT_MS / 1000);
			return -1;
		}
		ssize_t n = read(up, head + got, sizeof(head) - got);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			refuse(502, "%s: the connection ended before a complete response head", req->host);
			return -1;
		}
		got += (size_t)n;
		last = now_ms();
	}
	if (uproxy_response_rewrite(head, hl, out, sizeof(out), &ol, &status, err, sizeof(err)) < 0) {
		refuse(502, "%s: a response the proxy does not pass on: %s", req->host, err);
		return -1;
	}
	if (write_all(STDOUT_FILENO, out, ol, IDLE_TIMEOUT_MS) < 0 ||
	    write_all(STDOUT_FILENO, head + hl, got - hl, IDLE_TIMEOUT_MS) < 0)
		return -1;
	logmsg(6, "%s http://%s%s%s:%u%s: %u", req->method == UPROXY_HEAD ? "HEAD" : "GET",
	       req->host_kind == UPROXY_HOST_IPV6 ? "[" : "", req->host,
	       req->host_kind == UPROXY_HOST_IPV6 ? "]" : "", (unsigned)req->port, req->target,
	       status);
	*down = (struct dir){ .in = up, .out = STDOUT_FILENO };
	return relay(down, 1);
}

static int tunnel(const struct uproxy_request *req, int up, struct dir d[2])
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	if (write_all(STDOUT_FILENO, ok, sizeof(ok) - 1, IDLE_TIMEOUT_MS) < 0)
		return -1;
	logmsg(6, "CONNECT %s:%u", req->host, (unsigned)req->port);
	d[0] = (struct dir){ .in = up, .out = STDOUT_FILENO };
	d[1] = (struct dir){ .in = STDIN_FILENO, .out = up };
	return relay(d, 2);
}

/* ---- main ---- */

static int load_config(const char *path, struct uproxy_config *cfg)
{
	static char text[UPROXY_CONFIG_MAX + 1];
	char err[256];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		logmsg(3, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof(text) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			logmsg(3, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0 || (len += (size_t)n) == sizeof(text))
			break;
	}
	close(fd);
	if (uproxy_config_parse(text, len, cfg, err, sizeof(err)) < 0) {
		logmsg(3, "%s: %s", path, err);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-updates-proxy [--config FILE]\n"
		"The host side of qube.UpdatesProxy, run by qube-host-agent for a template:\n"
		"one HTTP proxy request on stdin (GET or HEAD of an http:// URI, or CONNECT\n"
		"HOST:PORT) to a host the allow-list names, the response on stdout.\n"
		"  --config FILE   the allow-list (default " DEFAULT_CONFIG ")\n"
		"  --selftest-seccomp child|parent   test hook: a forbidden call after that\n"
		"                  process's seccomp filter, which must kill it\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "selftest-seccomp", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct uproxy_config cfg;
	static struct uproxy_request req;
	static struct dir dirs[2];
	const char *config = DEFAULT_CONFIG, *env;
	bool selftest_child = false, selftest_parent = false;
	int o, up, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 's':
			if (strcmp(optarg, "child") == 0)
				selftest_child = true;
			else if (strcmp(optarg, "parent") == 0)
				selftest_parent = true;
			else {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	my_pid = getpid();
	env = getenv("QUBE_REMOTE");
	if (env && qname_qube_is_valid(env))
		remote = env;
	open_syslog();
	if (geteuid() == 0) {
		/* the host agent runs services as its service user */
		refuse(500, "the proxy does not run as root (qube-host-agent --service-user)");
		return 1;
	}
	if (load_config(config, &cfg) < 0) {
		send_response(500, "the proxy's configuration is broken; see the host's log");
		return 1;
	}

	unsigned st = parse_in_child(&req, selftest_child);
	if (st == 500)
		return 1;
	if (st != 0)
		return 0;
	char err[UPROXY_REASON_MAX + 64];
	if (uproxy_allowed(&cfg, &req, err, sizeof(err)) != 0) {
		refuse(403, "%s", err);
		return 0;
	}
	up = connect_upstream(&req);
	if (up < 0)
		return 0;
	if (set_nonblock(STDOUT_FILENO) < 0 ||
	    (req.method == UPROXY_CONNECT && set_nonblock(STDIN_FILENO) < 0)) {
		refuse(500, "fcntl: %s", strerror(errno));
		return 1;
	}
	if (req.method != UPROXY_CONNECT)
		close(STDIN_FILENO); /* one request: nothing more is read */
	r = install_filter(parent_calls, sizeof(parent_calls) / sizeof(parent_calls[0]));
	if (r < 0) {
		refuse(500, "cannot install the seccomp filter: %s", strerror(-r));
		return 1;
	}
	if (selftest_parent)
		selftest_forbidden_call();

	if (req.method == UPROXY_CONNECT)
		r = tunnel(&req, up, dirs);
	else
		r = forward_get(&req, up, &dirs[0]);
	if (r == -ETIMEDOUT)
		logmsg(4, "%s port %u: nothing moved for %d s: closing", req.host, (unsigned)req.port,
		       IDLE_TIMEOUT_MS / 1000);
	/* _exit: under the filter nothing is left to flush (every write is
	 * a write(2)), and exit() would run atexit handlers that may need
	 * calls the filter kills (LeakSanitizer's thread in sanitizer builds) */
	_exit(0);
}
