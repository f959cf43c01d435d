/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-agent: runs in every guest, listens on QRPC_PORT_AGENT for the
 * broker's SERVICE channel, and runs the requested service from the
 * service directory with its stdin/stdout/stderr and exit code relayed as
 * qrpc messages.  One process per connection (fork after accept), so a
 * slow or stuck connection never holds up another.
 */
#include "agent.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MSG_MAX (QRPC_HEADER_SIZE + QRPC_MAX_DATA)
#define BUF_MSGS QRPC_STREAM_BUF_MSGS
#define DEFAULT_REQUEST_TIMEOUT_S 60
#define LINGER_MS 10000
/* When the broker is gone: how long a service gets to exit on EOF/EPIPE
 * before its process group gets SIGTERM, and then before SIGKILL. */
#define SERVICE_GRACE_MS 2000
#define DEFAULT_MAX_CONNECTIONS 256
/* How long a unix-socket service may leave its backlog full before the
 * call fails (126). */
#define SOCKET_CONNECT_TIMEOUT_MS 5000

static const char *agent_name = "qube-agent";
/* --service-user: who runs a service the policy names no user for */
static const char *service_user;

/* --request-timeout: HELLO and SERVICE_START must have arrived this long
 * after the connection was accepted, however the bytes trickle in. */
static int request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_S * 1000;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	char line[512];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", agent_name, line);
}

/* ---- One connection ------------------------------------------------------- */

struct conn {
	int sock;
	struct qrpc_state state;
	/* received, not yet processed: bytes [rstart, rlen).  The socket is
	 * read only when the service has taken all earlier stdin, and then
	 * as much as fits (several messages per read when the broker is
	 * ahead). */
	uint8_t rbuf[BUF_MSGS * MSG_MAX];
	size_t rstart, rlen;
	/* stdin data waiting for the service: the payload of the last STDIN
	 * message, still in rbuf (which is not compacted while it waits) */
	const uint8_t *idata;
	size_t ilen, ioff;
	/* encoded messages waiting for the socket; service output is read
	 * straight into its message's slot here */
	uint8_t wbuf[BUF_MSGS * MSG_MAX];
	size_t wlen, woff;
	bool sock_rd_eof;  /* peer sent nothing more (closed or half-closed) */
	bool sock_broken;  /* writing failed: peer gone */
	bool stdin_eof;    /* EOF(stdin) received */
	/* service side */
	int in_fd, out_fd, err_fd; /* -1 once closed; SOCKET: in_fd == out_fd */
	bool is_socket;
	pid_t pid; /* 0 for socket services / none */
	int pidfd;
	bool child_done;
	int exit_code;
	bool exit_queued;
};

/* Makes room for one whole message at wbuf + wlen when the buffer has it
 * at all (wbuf_has_room). */
static void compact_wbuf(struct conn *c)
{
	qrpc_buf_make_room(c->wbuf, sizeof(c->wbuf), &c->woff, &c->wlen, MSG_MAX);
}

static int queue_msg(struct conn *c, const struct qrpc_msg *m)
{
	size_t len;
	int r;

	r = qrpc_state_on_send(&c->state, m);
	if (r < 0)
		return r;
	/* a data message read straight into its slot must not be moved */
	bool in_place = (m->type == QRPC_MSG_STDOUT || m->type == QRPC_MSG_STDERR) &&
			m->u.data.data == c->wbuf + c->wlen + QRPC_HEADER_SIZE;
	if (!in_place)
		compact_wbuf(c);
	r = qrpc_msg_encode(m, c->wbuf + c->wlen, sizeof(c->wbuf) - c->wlen, &len);
	if (r < 0)
		return r;
	c->wlen += len;
	return 0;
}

static int queue_eof(struct conn *c, uint32_t stream)
{
	struct qrpc_msg m = { .type = QRPC_MSG_EOF };
	m.u.eof.stream = stream;
	return queue_msg(c, &m);
}

static bool wbuf_has_room(const struct conn *c)
{
	/* room for one more full data message after compaction */
	return sizeof(c->wbuf) - (c->wlen - c->woff) >= MSG_MAX;
}

static void close_in(struct conn *c)
{
	if (c->in_fd < 0)
		return;
	if (c->is_socket) {
		shutdown(c->in_fd, SHUT_WR);
		if (c->out_fd < 0)
			close(c->in_fd);
	} else {
		close(c->in_fd);
	}
	c->in_fd = -1;
	c->ilen = c->ioff = 0;
}

static void close_out(struct conn *c)
{
	if (c->out_fd < 0)
		return;
	if (!c->is_socket || c->in_fd < 0)
		close(c->out_fd);
	c->out_fd = -1;
}

static void close_err(struct conn *c)
{
	if (c->err_fd < 0)
		return;
	close(c->err_fd);
	c->err_fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Variables of the agent's environment that describe the agent's own
 * process to its service manager: a service must not see them (it could
 * talk to systemd in the agent's name, or take fds meant for the agent). */
static bool is_agent_only_var(const char *entry)
{
	static const char *const names[] = {
		"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
		"WATCHDOG_PID", "WATCHDOG_USEC",
	};
	if (strncmp(entry, "QUBE_", 5) == 0)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncmp(entry, names[i], n) == 0 && entry[n] == '=')
			return true;
	}
	return false;
}

/* Environment of a service: the agent's, minus any QUBE_* it had and the
 * service-manager variables above, plus the request's four variables. */
/* HOME, USER and LOGNAME describe the agent's user: replaced when the
 * service runs as another one. */
static bool is_user_var(const char *entry)
{
	return strncmp(entry, "HOME=", 5) == 0 || strncmp(entry, "USER=", 5) == 0 ||
	       strncmp(entry, "LOGNAME=", 8) == 0;
}

/* PW: the user the service runs as, NULL for the agent's own. */
static char **build_env(const struct qagent_request *req, const struct passwd *pw)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = calloc(n + 8, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_agent_only_var(environ[i]) && !(pw && is_user_var(environ[i])))
			env[k++] = environ[i];
	if (pw && (asprintf(&env[k++], "HOME=%s", pw->pw_dir) < 0 ||
		   asprintf(&env[k++], "USER=%s", pw->pw_name) < 0 ||
		   asprintf(&env[k++], "LOGNAME=%s", pw->pw_name) < 0))
		return NULL;
	if (asprintf(&env[k++], "QUBE_REMOTE=%s", req->source) < 0 ||
	    asprintf(&env[k++], "QUBE_SERVICE=%s", req->service) < 0 ||
	    asprintf(&env[k++], "QUBE_SERVICE_ARGUMENT=%s", req->argument) < 0 ||
	    asprintf(&env[k++], "QUBE_REQUESTED_TARGET=%s", req->requested_target) < 0) {
		/* the process is about to exit; nothing to free carefully */
		return NULL;
	}
	env[k] = NULL;
	return env;
}

static int start_exec(struct conn *c, const char *rpc_dir, const struct qagent_service *svc,
		      const struct qagent_request *req)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	char path[PATH_MAX];
	char **env;
	int r, n;

	n = snprintf(path, sizeof(path), "%s/%s", rpc_dir, svc->file);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	/* user= from the policy: switching needs root; without it only the
	 * agent's own user can be honoured */
	struct passwd *pw = NULL;
	/* --service-user: the user when the policy names none */
	const char *user = req->user[0] ? req->user : service_user;
	if (user) {
		errno = 0;
		pw = getpwnam(user);
		if (!pw) {
			logf_("%s+%s from %s: no user %s here", req->service, req->argument,
			      req->source, user);
			return errno ? -errno : -ESRCH;
		}
		if (geteuid() != 0 && pw->pw_uid != geteuid()) {
			logf_("%s+%s from %s: cannot run as %s: the agent is not root", req->service,
			      req->argument, req->source, user);
			return -EPERM;
		}
		if (geteuid() != 0)
			pw = NULL; /* already that user */
	}
	env = build_env(req, pw);
	if (!env)
		return -ENOMEM;
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		r = -errno;
		goto err_close;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		goto err_close;
	}
	if (pid == 0) {
		/* The service: plain execve, the argument only as argv[1]. */
		char *argv[3] = { path, req->argument[0] ? (char *)req->argument : NULL, NULL };
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Every disposition back to default: the agent ignores SIGPIPE,
		 * and whatever started the agent may have left others ignored
		 * (nohup, a shell's background job), which execve would keep. */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		/* Its own process group, so that everything it starts can be
		 * ended with it when the broker goes away (end_service). */
		setpgid(0, 0);
		/* main() keeps 0-2 open, so the pipes are never 0-2 here and
		 * dup2 always clears their close-on-exec flag. */
		if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
			_exit(126);
		/* Nothing but 0-2 reaches the service, not even descriptors the
		 * agent itself inherited without close-on-exec. */
		if (close_range(3, ~0U, 0) < 0) {
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		}
		/* groups, then group, then user: after setuid nothing else can
		 * be changed; any failure and the service does not run */
		if (pw && (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
			   setuid(pw->pw_uid) < 0))
			_exit(126);
		execve(path, argv, env);
		_exit(errno == ENOENT ? QRPC_EXIT_NO_SERVICE : 126);
	}
	setpgid(pid, pid); /* also here: no window in which the group is missing */
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	c->in_fd = pin[1];
	c->out_fd = pout[0];
	c->err_fd = perr[0];
	c->pid = pid;
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (set_nonblock(c->in_fd) < 0 || set_nonblock(c->out_fd) < 0 || set_nonblock(c->err_fd) < 0)
		return -errno;
	return 0;
err_close:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	return r;
}

static int start_socket(struct conn *c, const char *rpc_dir, const struct qagent_service *svc,
			const struct qagent_request *req)
{
	struct sockaddr_un a;
	char hdr[QAGENT_SOCKET_HEADER_MAX];
	int fd, r, n;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", rpc_dir, svc->file);
	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	n = qagent_socket_header(req, hdr, sizeof(hdr));
	if (n < 0)
		return n;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A unix-socket connect does not wait in the background: with the
	 * listener's backlog full it fails with EAGAIN at once.  Retry for a
	 * while, so that a service that stopped accepting fails this call
	 * (126) instead of holding it forever. */
	for (long long deadline = now_ms() + SOCKET_CONNECT_TIMEOUT_MS;;) {
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		r = -errno;
		if (r == -EINTR)
			continue;
		if (r != -EAGAIN || now_ms() >= deadline)
			goto err_close;
		poll(NULL, 0, 10);
	}
	r = qrpc_write_full(fd, hdr, (size_t)n);
	if (r < 0)
		goto err_close;
	c->is_socket = true;
	c->in_fd = c->out_fd = fd;
	c->err_fd = -1;
	c->child_done = true; /* no process: the stream's end is the service's end */
	c->exit_code = 0;
	return 0;
err_close:
	close(fd);
	return r;
}

/* Consumes complete messages from rbuf while the service can take stdin. */
static int process_input(struct conn *c)
{
	while (c->ioff == c->ilen) {
		struct qrpc_msg untrusted_msg;
		size_t used;
		int r = qrpc_state_parse(&c->state, c->rbuf + c->rstart, c->rlen - c->rstart,
					 &untrusted_msg, &used);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		if (untrusted_msg.type == QRPC_MSG_STDIN) {
			/* opaque bytes for the service; dropped once it closed stdin */
			if (c->in_fd >= 0) {
				c->idata = untrusted_msg.u.data.data;
				c->ilen = untrusted_msg.u.data.len;
				c->ioff = 0;
			}
		} else if (untrusted_msg.type == QRPC_MSG_EOF) {
			c->stdin_eof = true; /* the state machine allows only stdin's */
		} else {
			return -EPROTO;
		}
		c->rstart += used;
	}
	return 0;
}

/* Room at rbuf's tail for the next read; only between stdin chunks. */
static void compact_rbuf(struct conn *c)
{
	qrpc_buf_make_room(c->rbuf, sizeof(c->rbuf), &c->rstart, &c->rlen, MSG_MAX);
}

static void reap(struct conn *c, bool block)
{
	int status;
	if (c->child_done || c->pid <= 0)
		return;
	pid_t p = waitpid(c->pid, &status, block ? 0 : WNOHANG);
	if (p != c->pid)
		return;
	c->child_done = true;
	if (WIFEXITED(status))
		c->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		c->exit_code = 128 + WTERMSIG(status);
	else
		c->exit_code = 255;
	if (c->pidfd >= 0) {
		close(c->pidfd);
		c->pidfd = -1;
	}
}

/* Waits up to MS for the service to exit, without reaping it: true once it
 * has exited. */
static bool wait_exited(struct conn *c, int ms)
{
	long long waited = 0;
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			return errno != EINTR; /* ECHILD: nothing left to wait for */
		if (si.si_pid == c->pid)
			return true;
		if (waited >= ms)
			return false;
		int step = c->pidfd >= 0 ? ms - (int)waited : 50;
		struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };
		if (c->pidfd >= 0)
			poll(&pfd, 1, step);
		else
			poll(NULL, 0, step);
		waited += step;
	}
}

/* The broker is gone (or broke the protocol) while the service runs; its
 * stdin/stdout/stderr are closed already.  It gets SERVICE_GRACE_MS to
 * exit on that EOF/EPIPE, then its process group gets SIGTERM and, another
 * SERVICE_GRACE_MS later, SIGKILL.  Whatever is left of the group is killed
 * before the service is reaped: until then its pid, which is the group's
 * id, cannot have been reused. */
static void signal_service(const struct conn *c, int sig)
{
	/* the group; the process alone if it never got its own group */
	if (kill(-c->pid, sig) < 0 && errno == ESRCH)
		kill(c->pid, sig);
}

static void end_service(struct conn *c)
{
	if (c->child_done || c->pid <= 0)
		return;
	if (!wait_exited(c, SERVICE_GRACE_MS)) {
		logf_("service (pid %d) still running after the connection ended: SIGTERM",
		      (int)c->pid);
		signal_service(c, SIGTERM);
		if (!wait_exited(c, SERVICE_GRACE_MS))
			logf_("service (pid %d) ignored SIGTERM: SIGKILL", (int)c->pid);
	}
	signal_service(c, SIGKILL);
	reap(c, true);
}

/* Relays between the connection and the service until the exit code is out
 * (or the broker is gone and the service has ended). */
static int relay(struct conn *c)
{
	for (;;) {
		int r = process_input(c);
		if (r < 0) {
			logf_("protocol error from broker: %s", strerror(-r));
			return r;
		}
		/* stdin fully handed over and ended: close the service's stdin */
		if (c->in_fd >= 0 && c->ioff == c->ilen && (c->stdin_eof || c->sock_rd_eof))
			close_in(c);
		if (c->sock_broken) {
			/* nobody to deliver to: let the service see EOF / EPIPE */
			close_in(c);
			close_out(c);
			close_err(c);
			c->wlen = c->woff = 0;
			end_service(c);
			return -EPIPE;
		}
		if (!c->exit_queued && c->out_fd < 0 && c->err_fd < 0 && c->child_done) {
			struct qrpc_msg m = { .type = QRPC_MSG_EXIT };
			m.u.exit.code = (uint32_t)c->exit_code;
			r = queue_msg(c, &m);
			if (r < 0)
				return r;
			c->exit_queued = true;
		}
		if (c->exit_queued && c->woff == c->wlen)
			return 0;

		struct pollfd pfd[5];
		int n = 0, i_sock = -1, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
		short sev = 0;
		if (!c->sock_rd_eof && c->ioff == c->ilen) {
			compact_rbuf(c);
			if (c->rlen < sizeof(c->rbuf))
				sev |= POLLIN;
		}
		if (c->woff < c->wlen)
			sev |= POLLOUT;
		/* Always polled, with no events if need be, so that the broker
		 * closing the connection (POLLHUP: both directions shut, not a
		 * half-close) or an error is seen even while nothing is read or
		 * written: then nobody is left to take the service's output. */
		i_sock = n;
		pfd[n++] = (struct pollfd){ .fd = c->sock, .events = sev };
		if (c->in_fd >= 0 && c->ioff < c->ilen) {
			i_in = n;
			pfd[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLOUT };
		}
		if (c->out_fd >= 0 && wbuf_has_room(c)) {
			i_out = n;
			pfd[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLIN };
		}
		if (c->err_fd >= 0 && wbuf_has_room(c)) {
			i_err = n;
			pfd[n++] = (struct pollfd){ .fd = c->err_fd, .events = POLLIN };
		}
		if (!c->child_done && c->pidfd >= 0) {
			i_pid = n;
			pfd[n++] = (struct pollfd){ .fd = c->pidfd, .events = POLLIN };
		}
		/* Without a pidfd, poll for the exit once the pipes are done. */
		int timeout = (!c->child_done && c->pidfd < 0) ? 100 : -1;
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (timeout >= 0)
			reap(c, false);

		if ((pfd[i_sock].revents & POLLERR) ||
		    ((pfd[i_sock].revents & POLLHUP) && !(sev & POLLIN))) {
			c->sock_rd_eof = c->sock_broken = true;
			continue;
		}
		if (i_sock >= 0 && (pfd[i_sock].revents & (POLLOUT | POLLERR | POLLHUP)) &&
		    c->woff < c->wlen) {
			ssize_t w = send(c->sock, c->wbuf + c->woff, c->wlen - c->woff,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				c->woff += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				c->sock_broken = true;
		}
		if (i_sock >= 0 && (pfd[i_sock].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    (sev & POLLIN)) {
			ssize_t got = recv(c->sock, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
					   MSG_DONTWAIT);
			if (got > 0)
				c->rlen += (size_t)got;
			else if (got == 0)
				c->sock_rd_eof = true;
			else if (errno != EAGAIN && errno != EINTR)
				c->sock_rd_eof = c->sock_broken = true;
		}
		if (i_in >= 0 && pfd[i_in].revents) {
			ssize_t w = write(c->in_fd, c->idata + c->ioff, c->ilen - c->ioff);
			if (w > 0) {
				c->ioff += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* the service closed its stdin: drop the rest */
				close_in(c);
			}
		}
		int fds[2] = { i_out, i_err };
		for (int k = 0; k < 2; k++) {
			int idx = fds[k];
			int *fdp = k == 0 ? &c->out_fd : &c->err_fd;
			if (idx < 0 || !pfd[idx].revents || *fdp < 0 || !wbuf_has_room(c))
				continue;
			/* read straight into the slot the message will occupy, so
			 * encoding it copies nothing */
			compact_wbuf(c);
			uint8_t *data = c->wbuf + c->wlen + QRPC_HEADER_SIZE;
			ssize_t got = read(*fdp, data, QRPC_MAX_DATA);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				if (k == 0)
					close_out(c);
				else
					close_err(c);
				r = queue_eof(c, k == 0 ? QRPC_STREAM_STDOUT : QRPC_STREAM_STDERR);
				if (r < 0)
					return r;
				continue;
			}
			struct qrpc_msg m = { .type = k == 0 ? QRPC_MSG_STDOUT : QRPC_MSG_STDERR };
			m.u.data.data = data;
			m.u.data.len = (uint32_t)got;
			r = queue_msg(c, &m);
			if (r < 0)
				return r;
		}
		if (i_pid >= 0 && pfd[i_pid].revents)
			reap(c, false);
	}
}

/* After EXIT: stdin may still be on its way (it crossed EXIT in flight, or
 * the service never read it).  Closing a socket with unread data makes the
 * kernel reset the connection (AF_UNIX: the peer sees ECONNRESET, its
 * writes fail) and the broker could lose the EXIT it has not read yet.  So
 * end our side with shutdown(SHUT_WR) and discard what still arrives until
 * the broker closes, at most LINGER_MS after the last byte. */
static void linger_close(struct conn *c)
{
	uint8_t scratch[16384];

	if (shutdown(c->sock, SHUT_WR) < 0)
		return;
	for (;;) {
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		int pr = poll(&pfd, 1, LINGER_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return;
		ssize_t got = recv(c->sock, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
			return;
	}
}

/* Sends HELLO, reads HELLO + SERVICE_START within request_timeout_ms in
 * all (a per-read timeout would let a peer sending one byte now and then
 * hold the connection, and one of --max-connections, forever). */
static int read_request(struct conn *c, struct qagent_request *req)
{
	long long deadline = now_ms() + request_timeout_ms;
	struct qrpc_msg hello = { .type = QRPC_MSG_HELLO };
	size_t used;
	int r;

	hello.u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
	hello.u.hello.version_max = QRPC_PROTOCOL_VERSION;
	r = qrpc_write_msg(c->sock, &hello);
	if (r < 0)
		return r;
	for (;;) {
		r = qagent_parse_request(c->rbuf, c->rlen, &c->state, req, &used);
		if (r != -EAGAIN)
			break;
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		long long left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return pr == 0 ? -ETIMEDOUT : -errno;
		ssize_t got = recv(c->sock, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ECONNRESET;
		c->rlen += (size_t)got;
	}
	if (r < 0)
		return r;
	c->rstart = used;
	return 0;
}

static int handle_connection(int sock, const char *rpc_dir, int rpc_dir_fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct qagent_request req;
	struct qagent_service svc;
	int r;

	if (!c)
		return -ENOMEM;
	c->sock = sock;
	c->in_fd = c->out_fd = c->err_fd = c->pidfd = -1;
	r = set_nonblock(sock);
	if (r < 0)
		goto out;
	r = read_request(c, &req);
	if (r < 0) {
		logf_("bad request from broker: %s", strerror(-r));
		goto out;
	}
	r = rpc_dir_fd < 0 ? -ENOENT : qagent_resolve_service(rpc_dir_fd, &req, &svc);
	if (r == 0) {
		r = svc.kind == QAGENT_SERVICE_SOCKET ? start_socket(c, rpc_dir, &svc, &req)
						       : start_exec(c, rpc_dir, &svc, &req);
		if (r < 0) {
			logf_("%s+%s from %s: cannot start %s: %s", req.service, req.argument,
			      req.source, svc.file, strerror(-r));
			c->child_done = true;
			c->exit_code = 126; /* exists, cannot be started */
		}
	} else {
		logf_("%s+%s from %s: no such service", req.service, req.argument, req.source);
		c->child_done = true;
		c->exit_code = QRPC_EXIT_NO_SERVICE;
	}
	if (c->child_done && c->out_fd < 0) {
		/* nothing runs: both output streams end at once */
		if ((r = queue_eof(c, QRPC_STREAM_STDOUT)) < 0 ||
		    (r = queue_eof(c, QRPC_STREAM_STDERR)) < 0)
			goto out;
	} else if (c->is_socket) {
		r = queue_eof(c, QRPC_STREAM_STDERR);
		if (r < 0)
			goto out;
	}
	r = relay(c);
	if (r == 0)
		linger_close(c);
out:
	close_in(c);
	close_out(c);
	close_err(c);
	end_service(c); /* after an error: the service has nobody to talk to */
	if (c->pidfd >= 0)
		close(c->pidfd);
	free(c);
	return r;
}

/* ---- Main ----------------------------------------------------------------- */

/* A numeric option: 1..MAX (UNIT names what it counts in the message). */
static int parse_option(const char *opt, const char *s, unsigned max, const char *unit,
			unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < 1 || v > max) {
		fprintf(stderr, "qube-agent: %s: want 1-%u%s, not '%s'\n", opt, max, unit, s);
		return -EINVAL;
	}
	*ret = (unsigned)v;
	return 0;
}

#ifdef QUBE_AGENT_HOST
/* qube-host-agent: the same program run on the host for @adminvm. */
#define AGENT_PROG "qube-host-agent"
#define AGENT_DEFAULT_RPC_DIR QUBE_RPC_HOST_DIR
#else
#define AGENT_PROG "qube-agent"
#define AGENT_DEFAULT_RPC_DIR QUBE_RPC_DIR
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " AGENT_PROG " [--transport vsock|unix:DIR] [--rpc-dir DIR] [--name NAME]\n"
		"                  [--max-connections N] [--request-timeout SECONDS]\n"
		"                  [--service-user USER]\n"
		"Runs RPC services for the broker: listens on vsock port %u (or, with\n"
		"unix:DIR, on DIR/vsock answering \"CONNECT %u\"), runs services from\n"
		"--rpc-dir (default %s).  At most N connections (default %u) are served\n"
		"at once; more wait in the listen queue until one ends.  A connection must\n"
		"deliver its request within --request-timeout seconds (default %u).\n"
		"Services run as the agent's user, or as the user the broker names (the\n"
		"policy's user=), which needs the agent to run as root.  --service-user:\n"
		"services the policy names no user for run as USER (needs root).\n"
#ifdef QUBE_AGENT_HOST
		"qube-host-agent runs the host's services (@adminvm) for the broker's\n"
		"--adminvm-socket: only with --transport unix:DIR.\n"
#endif
		"Exit status: 2 on a usage error, 1 when it cannot listen or accept.\n",
		QRPC_PORT_AGENT, QRPC_PORT_AGENT, AGENT_DEFAULT_RPC_DIR, DEFAULT_MAX_CONNECTIONS,
		DEFAULT_REQUEST_TIMEOUT_S);
}

/* Descriptors 0-2 must be open (on /dev/null if need be): otherwise a
 * socket or pipe could become 0-2 and a service would get it in the wrong
 * place, or lose it to close-on-exec. */
static int ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR | O_NOCTTY);
		if (n < 0)
			return -errno;
		if (n != fd) { /* cannot happen: open takes the lowest free */
			close(n);
			return -EBADF;
		}
	}
	return 0;
}

/* Reaps finished connection processes; returns how many. */
static unsigned reap_connections(void)
{
	unsigned n = 0;
	int status;
	while (waitpid(-1, &status, WNOHANG) > 0)
		n++;
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "rpc-dir", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "request-timeout", required_argument, NULL, 'T' },
		{ "service-user", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *transport = "vsock", *rpc_dir = AGENT_DEFAULT_RPC_DIR;
	static char name_buf[64];
	struct qrpc_transport t;
	unsigned max_conns = DEFAULT_MAX_CONNECTIONS, active = 0;
	bool at_limit_logged = false;
	int o, lfd, sfd, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			transport = optarg;
			break;
		case 'r':
			rpc_dir = optarg;
			break;
		case 'n':
			if (!qrpc_qube_name_is_valid(optarg)) {
				fprintf(stderr, "qube-agent: --name: invalid qube name '%s'\n", optarg);
				return 2;
			}
			snprintf(name_buf, sizeof(name_buf), "qube-agent[%s]", optarg);
			agent_name = name_buf;
			break;
		case 'm':
			if (parse_option("--max-connections", optarg, 65536, "", &max_conns) < 0)
				return 2;
			break;
		case 'T': {
			unsigned v;
			if (parse_option("--request-timeout", optarg, 3600, " seconds", &v) < 0)
				return 2;
			request_timeout_ms = (int)v * 1000;
			break;
		}
		case 'u':
			if (!qrpc_user_name_is_valid(optarg) || strlen(optarg) > QRPC_MAX_USER ||
			    !getpwnam(optarg)) {
				fprintf(stderr, AGENT_PROG ": --service-user: no such user '%s'\n",
					optarg);
				return 2;
			}
			if (geteuid() != 0 && getpwnam(optarg)->pw_uid != geteuid()) {
				fprintf(stderr, AGENT_PROG ": --service-user %s needs root\n",
					optarg);
				return 2;
			}
			service_user = optarg;
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
	r = qrpc_transport_parse(transport, &t);
	if (r < 0) {
		fprintf(stderr, "qube-agent: --transport: invalid transport '%s' (want vsock or unix:DIR)\n",
			transport);
		return 2;
	}
#ifdef QUBE_AGENT_HOST
	if (t.kind != QRPC_TRANSPORT_UNIX) {
		fprintf(stderr, AGENT_PROG ": needs --transport unix:DIR (the broker's "
				"--adminvm-socket is DIR/vsock)\n");
		return 2;
	}
#endif

	r = ensure_std_fds();
	if (r < 0) {
		fprintf(stderr, "qube-agent: cannot open /dev/null for fds 0-2: %s\n", strerror(-r));
		return 1;
	}
	/* SIGPIPE: a write to a gone peer is an error return.  SIGCHLD is
	 * blocked and read from a signalfd, so the loop below reaps finished
	 * connection processes at once (no zombies) and knows how many run. */
	struct sigaction sa = { .sa_handler = SIG_IGN };
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigset_t chld, old_mask;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		logf_("signalfd: %s", strerror(errno));
		return 1;
	}

	lfd = qrpc_guest_listen(&t, QRPC_PORT_AGENT);
	if (lfd < 0) {
		logf_("cannot listen (%s): %s", transport, strerror(-lfd));
		return 1;
	}
	/* non-blocking: a connection that vanished between poll and accept
	 * must not block the loop */
	if (set_nonblock(lfd) < 0) {
		logf_("cannot set the listening socket non-blocking: %s", strerror(errno));
		return 1;
	}
	logf_("listening (%s), services in %s, at most %u connections", transport, rpc_dir,
	      max_conns);

	for (;;) {
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) > 0)
			;
		unsigned done = reap_connections();
		active = done >= active ? 0 : active - done;
		if (active < max_conns)
			at_limit_logged = false;
		else if (!at_limit_logged) {
			logf_("connection limit (%u) reached: new connections wait until one ends",
			      max_conns);
			at_limit_logged = true;
		}

		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = lfd, .events = POLLIN },
		};
		if (poll(pfd, active < max_conns ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			logf_("poll: %s", strerror(errno));
			return 1;
		}
		if (active >= max_conns || !(pfd[1].revents & POLLIN))
			continue;

		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				logf_("accept: %s", strerror(errno));
				poll(NULL, 0, 100); /* resource exhaustion: back off briefly */
				continue;
			}
			logf_("accept: %s", strerror(errno));
			return 1;
		}
		pid_t pid = fork();
		if (pid < 0) {
			logf_("fork: %s", strerror(errno));
			close(fd);
			continue;
		}
		if (pid == 0) {
			close(lfd);
			close(sfd);
			sigprocmask(SIG_SETMASK, &old_mask, NULL);
			if (t.kind == QRPC_TRANSPORT_UNIX) {
				r = qrpc_guest_answer_connect(fd, QRPC_PORT_AGENT);
				if (r < 0) {
					logf_("bad CONNECT handshake: %s", strerror(-r));
					_exit(1);
				}
			}
			/* The directory is opened per connection so that services
			 * installed after the agent started are found. */
			int dfd = open(rpc_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0)
				logf_("cannot open the service directory %s: %s (every call "
				      "answers 127)", rpc_dir, strerror(errno));
			r = handle_connection(fd, rpc_dir, dfd);
			_exit(r < 0 ? 1 : 0);
		}
		active++;
		close(fd);
	}
}
