/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-call TARGET SERVICE[+ARG] [-- LOCAL_PROGRAM ARGS...]
 *
 * Runs in a guest: asks the broker (vsock port QRPC_PORT_BROKER on the
 * host) to run SERVICE in TARGET, then joins its own stdin/stdout (or the
 * local program's stdout/stdin) to the remote service.  Exits with the
 * remote exit code; 126 when refused, 125 on an RPC failure, 2 for bad
 * usage (names are checked before anything is sent).
 */
#include "qrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_MAX (QRPC_HEADER_SIZE + QRPC_MAX_DATA)
#define BUF_MSGS QRPC_STREAM_BUF_MSGS
#define EXIT_USAGE 2
#define EXIT_OUTPUT_GONE 141 /* 128 + SIGPIPE, as a shell reports a writer killed by it */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-call [--transport vsock|unix:DIR] TARGET SERVICE[+ARG] [-- PROGRAM ARGS...]\n"
		"Calls SERVICE (with argument ARG) in the qube TARGET through the broker.\n"
		"TARGET is a qube name, @default, @adminvm, @dispvm or @dispvm:NAME.\n"
		"SERVICE is 1-%u of [A-Za-z0-9_.-] (not starting with '.'); ARG is 0-%u of\n"
		"[A-Za-z0-9_.+-].  Without PROGRAM, stdin goes to the service and its stdout to\n"
		"stdout; with PROGRAM, the service's stdout feeds PROGRAM's stdin and\n"
		"PROGRAM's stdout goes to the service.  The service's stderr goes to stderr.\n"
		"Exit status: the service's; 126 refused by policy; 125 RPC failure; 2 usage.\n",
		QRPC_MAX_SERVICE, QRPC_MAX_ARGUMENT);
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qube-call: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

struct call {
	int sock;
	struct qrpc_state state;
	/* received, not yet processed: bytes [rstart, rlen) */
	uint8_t rbuf[BUF_MSGS * MSG_MAX];
	size_t rstart, rlen;
	/* encoded messages for the broker; local input is read straight
	 * into its message's slot */
	uint8_t wbuf[BUF_MSGS * MSG_MAX];
	size_t wlen, woff;
	/* remote stdout waiting for the local reader: the payload of the last
	 * STDOUT message, still in rbuf (not compacted while it waits) */
	const uint8_t *odata;
	size_t olen, ooff;
	int in_fd;  /* local data toward the service (stdin or program's stdout) */
	int out_fd; /* service stdout goes here (stdout or program's stdin) */
	bool stdin_eof_sent;
	bool out_gone; /* the local reader of the service's stdout went away */
	bool got_exit;
	int exit_code;
};

/* Makes room for one whole message at wbuf + wlen when the buffer has it
 * at all. */
static void compact_wbuf(struct call *c)
{
	qrpc_buf_make_room(c->wbuf, sizeof(c->wbuf), &c->woff, &c->wlen, MSG_MAX);
}

static int queue_msg(struct call *c, const struct qrpc_msg *m)
{
	size_t len;
	int r = qrpc_state_on_send(&c->state, m);
	if (r < 0)
		return r;
	/* a data message read straight into its slot must not be moved */
	if (!(m->type == QRPC_MSG_STDIN && m->u.data.data == c->wbuf + c->wlen + QRPC_HEADER_SIZE))
		compact_wbuf(c);
	r = qrpc_msg_encode(m, c->wbuf + c->wlen, sizeof(c->wbuf) - c->wlen, &len);
	if (r < 0)
		return r;
	c->wlen += len;
	return 0;
}

/* Blocking read of the next message, checked by the state machine. */
static int read_checked(struct call *c, struct qrpc_msg *ret_msg)
{
	int r = qrpc_read_msg(c->sock, c->rbuf, sizeof(c->rbuf), ret_msg);
	if (r < 0)
		return r;
	return qrpc_state_on_recv(&c->state, ret_msg);
}

static void close_out(struct call *c)
{
	if (c->out_fd < 0)
		return;
	close(c->out_fd);
	c->out_fd = -1;
	c->olen = c->ooff = 0;
}

/* Room at rbuf's tail for the next read; only when no output waits. */
static void compact_rbuf(struct call *c)
{
	qrpc_buf_make_room(c->rbuf, sizeof(c->rbuf), &c->rstart, &c->rlen, MSG_MAX);
}

/* Handles complete messages in rbuf while the local reader keeps up.
 * Returns 0, or a negative errno on a protocol error. */
static int process_input(struct call *c)
{
	while (c->ooff == c->olen && !c->got_exit) {
		struct qrpc_msg untrusted_msg;
		size_t used;
		int r = qrpc_state_parse(&c->state, c->rbuf + c->rstart, c->rlen - c->rstart,
					 &untrusted_msg, &used);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		switch (untrusted_msg.type) {
		case QRPC_MSG_STDOUT:
			if (c->out_fd >= 0) {
				c->odata = untrusted_msg.u.data.data;
				c->olen = untrusted_msg.u.data.len;
				c->ooff = 0;
			}
			break;
		case QRPC_MSG_STDERR:
			/* blocking: the terminal or log is the user's */
			(void)qrpc_write_full(STDERR_FILENO, untrusted_msg.u.data.data,
					      untrusted_msg.u.data.len);
			break;
		case QRPC_MSG_EOF:
			/* stdout: out_fd is closed once obuf is drained (relay) */
			break;
		case QRPC_MSG_EXIT:
			c->got_exit = true;
			c->exit_code = (int)untrusted_msg.u.exit.code;
			break;
		default:
			return -EPROTO;
		}
		c->rstart += used;
	}
	return 0;
}

static bool stdout_ended(const struct call *c)
{
	return c->state.eof_rx & (1u << QRPC_STREAM_STDOUT);
}

/* Streams until EXIT.  Returns the exit code, or a negative errno. */
static int relay(struct call *c)
{
	bool sock_eof = false;

	for (;;) {
		int r = process_input(c);
		if (r < 0) {
			fprintf(stderr, "qube-call: protocol error from broker: %s\n", strerror(-r));
			return r;
		}
		if (c->out_fd >= 0 && c->ooff == c->olen && stdout_ended(c))
			close_out(c);
		if (c->out_gone && !stdout_ended(c) && !c->got_exit) {
			/* As a local pipeline would: the writer stops when its
			 * reader is gone.  Closing the connection makes the
			 * broker end the call and the agent end the service. */
			fprintf(stderr, "qube-call: the reader of the output is gone: ending the call\n");
			return EXIT_OUTPUT_GONE;
		}
		if (c->got_exit) {
			/* flush what the local reader has not taken yet, then done */
			if (c->ooff < c->olen && c->out_fd >= 0)
				(void)qrpc_write_full(c->out_fd, c->odata + c->ooff, c->olen - c->ooff);
			close_out(c);
			return c->exit_code;
		}
		if (sock_eof) {
			fprintf(stderr, "qube-call: connection to the broker lost\n");
			return -ECONNRESET;
		}

		struct pollfd pfd[3];
		int n = 0, i_sock = -1, i_in = -1, i_out = -1;
		short sev = 0;
		if (c->ooff == c->olen) {
			compact_rbuf(c);
			if (c->rlen < sizeof(c->rbuf))
				sev |= POLLIN;
		}
		if (c->woff < c->wlen)
			sev |= POLLOUT;
		/* The socket only when there is something to do on it: polled
		 * with no events, a broker that has closed would report POLLHUP
		 * at once, again and again, while a slow local reader is still
		 * taking earlier output -- a busy loop.  (Then out_fd is polled,
		 * so the set is never empty.) */
		if (sev) {
			i_sock = n;
			pfd[n++] = (struct pollfd){ .fd = c->sock, .events = sev };
		}
		if (c->in_fd >= 0 && !c->stdin_eof_sent &&
		    sizeof(c->wbuf) - (c->wlen - c->woff) >= MSG_MAX) {
			i_in = n;
			pfd[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLIN };
		}
		if (c->out_fd >= 0 && c->ooff < c->olen) {
			i_out = n;
			pfd[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLOUT };
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		short rev = i_sock >= 0 ? pfd[i_sock].revents : 0;
		if ((rev & (POLLOUT | POLLERR | POLLHUP)) && c->woff < c->wlen) {
			ssize_t w = send(c->sock, c->wbuf + c->woff, c->wlen - c->woff,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0) {
				c->woff += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* the broker stopped reading; what it still sends may
				 * include the exit code, so keep reading */
				c->wlen = c->woff = 0;
				if (c->in_fd >= 0 && c->in_fd != STDIN_FILENO)
					close(c->in_fd);
				c->in_fd = -1;
			}
		}
		if ((rev & (POLLIN | POLLHUP | POLLERR)) && (sev & POLLIN)) {
			ssize_t got = recv(c->sock, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen,
					   MSG_DONTWAIT);
			if (got > 0)
				c->rlen += (size_t)got;
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				sock_eof = true;
		}
		if (i_in >= 0 && pfd[i_in].revents) {
			/* straight into the slot the message will occupy */
			compact_wbuf(c);
			uint8_t *data = c->wbuf + c->wlen + QRPC_HEADER_SIZE;
			ssize_t got = read(c->in_fd, data, QRPC_MAX_DATA);
			if (got > 0) {
				struct qrpc_msg m = { .type = QRPC_MSG_STDIN };
				m.u.data.data = data;
				m.u.data.len = (uint32_t)got;
				r = queue_msg(c, &m);
				if (r < 0 && r != -EPROTO)
					return r;
			} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
				struct qrpc_msg m = { .type = QRPC_MSG_EOF };
				m.u.eof.stream = QRPC_STREAM_STDIN;
				if (c->in_fd != STDIN_FILENO)
					close(c->in_fd);
				c->in_fd = -1;
				r = queue_msg(c, &m);
				if (r < 0 && r != -EPROTO)
					return r;
				c->stdin_eof_sent = true;
			}
		}
		if (i_out >= 0 && pfd[i_out].revents) {
			ssize_t w = write(c->out_fd, c->odata + c->ooff, c->olen - c->ooff);
			if (w > 0) {
				c->ooff += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				/* local reader gone: the call ends (see relay) */
				close_out(c);
				c->out_gone = true;
			}
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *transport = "vsock";
	struct qrpc_transport t;
	struct qrpc_msg m;
	char service[QRPC_MAX_SERVICE + 1], argument[QRPC_MAX_ARGUMENT + 1];
	char **prog = NULL;
	pid_t prog_pid = -1;
	int o, r;

	/* "+" : stop at the first non-option, so the local program's own
	 * options after "--" are left alone. */
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			transport = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *target = argv[optind];
	const char *spec = argv[optind + 1];
	if (argc - optind > 2) {
		if (strcmp(argv[optind + 2], "--") != 0 || argc - optind < 4) {
			usage(stderr);
			return EXIT_USAGE;
		}
		prog = argv + optind + 3;
	}
	if (qrpc_transport_parse(transport, &t) < 0)
		return fail(EXIT_USAGE, "--transport: invalid transport '%s' (want vsock or unix:DIR)",
			    transport);

	/* Validate exactly what will be sent, with the rules the broker and
	 * the policy apply. */
	if (strlen(target) > QRPC_MAX_TARGET || !qrpc_target_is_valid(target))
		return fail(EXIT_USAGE,
			    "invalid target '%s': want a qube name (1-31 of [A-Za-z0-9_.-], starting "
			    "with a letter), @default, @adminvm, @dispvm or @dispvm:NAME",
			    target);
	const char *plus = strchr(spec, '+');
	size_t slen = plus ? (size_t)(plus - spec) : strlen(spec);
	const char *arg = plus ? plus + 1 : "";
	if (slen > QRPC_MAX_SERVICE)
		return fail(EXIT_USAGE, "invalid service in '%s': longer than 64 bytes", spec);
	memcpy(service, spec, slen);
	service[slen] = '\0';
	if (!qrpc_service_name_is_valid(service))
		return fail(EXIT_USAGE,
			    "invalid service in '%s': want 1-64 of [A-Za-z0-9_.-], not starting with '.'",
			    spec);
	if (strlen(arg) > QRPC_MAX_ARGUMENT || !qrpc_argument_is_valid(arg))
		return fail(EXIT_USAGE, "invalid argument in '%s': want 0-64 of [A-Za-z0-9_.+-]", spec);
	snprintf(argument, sizeof(argument), "%s", arg);

	signal(SIGPIPE, SIG_IGN);

	/* one call per process: static storage, released at exit */
	static struct call call_storage;
	struct call *c = &call_storage;
	qrpc_state_init(&c->state, QRPC_CHANNEL_CALL, QRPC_SIDE_CLIENT);
	c->in_fd = STDIN_FILENO;
	c->out_fd = STDOUT_FILENO;

	c->sock = qrpc_guest_connect_host(&t, QRPC_PORT_BROKER);
	if (c->sock < 0) {
		fprintf(stderr, "qube-call: cannot connect to the broker (%s): %s\n", transport,
			strerror(-c->sock));
		return QRPC_EXIT_RPC_FAILED;
	}

	/* HELLO both ways, CALL_REQUEST, CALL_RESULT: blocking. */
	m = (struct qrpc_msg){ .type = QRPC_MSG_HELLO };
	m.u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
	m.u.hello.version_max = QRPC_PROTOCOL_VERSION;
	if ((r = qrpc_state_on_send(&c->state, &m)) < 0 || (r = qrpc_write_msg(c->sock, &m)) < 0 ||
	    (r = read_checked(c, &m)) < 0)
		goto rpc_failed;
	m = (struct qrpc_msg){ .type = QRPC_MSG_CALL_REQUEST };
	memcpy(m.u.call_request.target, target, strlen(target) + 1);
	memcpy(m.u.call_request.service, service, sizeof(service));
	memcpy(m.u.call_request.argument, argument, sizeof(argument));
	if ((r = qrpc_state_on_send(&c->state, &m)) < 0 || (r = qrpc_write_msg(c->sock, &m)) < 0 ||
	    (r = read_checked(c, &m)) < 0)
		goto rpc_failed;
	if (m.u.call_result.status == QRPC_CALL_REFUSED) {
		fprintf(stderr, "qube-call: %s+%s to %s: refused\n", service, argument, target);
		return QRPC_EXIT_REFUSED;
	}
	if (m.u.call_result.status != QRPC_CALL_ALLOWED) {
		fprintf(stderr, "qube-call: %s+%s to %s: the broker could not run the call\n",
			service, argument, target);
		return QRPC_EXIT_RPC_FAILED;
	}

	if (prog) {
		int to_prog[2], from_prog[2];
		if (pipe2(to_prog, O_CLOEXEC) < 0 || pipe2(from_prog, O_CLOEXEC) < 0) {
			fprintf(stderr, "qube-call: pipe: %s\n", strerror(errno));
			return QRPC_EXIT_RPC_FAILED;
		}
		prog_pid = fork();
		if (prog_pid < 0) {
			fprintf(stderr, "qube-call: fork: %s\n", strerror(errno));
			return QRPC_EXIT_RPC_FAILED;
		}
		if (prog_pid == 0) {
			signal(SIGPIPE, SIG_DFL);
			if (dup2(to_prog[0], STDIN_FILENO) < 0 || dup2(from_prog[1], STDOUT_FILENO) < 0)
				_exit(127);
			execvp(prog[0], prog);
			fprintf(stderr, "qube-call: cannot run %s: %s\n", prog[0], strerror(errno));
			_exit(127);
		}
		close(to_prog[0]);
		close(from_prog[1]);
		c->in_fd = from_prog[0];
		c->out_fd = to_prog[1];
		fcntl(c->out_fd, F_SETFL, fcntl(c->out_fd, F_GETFL) | O_NONBLOCK);
	}

	r = relay(c);
	if (prog_pid > 0) {
		if (c->in_fd >= 0)
			close(c->in_fd);
		close_out(c);
		while (waitpid(prog_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (r < 0)
		return QRPC_EXIT_RPC_FAILED;
	return r;

rpc_failed:
	if (r == -EPIPE || r == -ECONNRESET)
		fprintf(stderr, "qube-call: connection to the broker lost\n");
	else
		fprintf(stderr, "qube-call: RPC failure: %s\n", strerror(-r));
	return QRPC_EXIT_RPC_FAILED;
}
