/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The caller's side of one RPC call (qube-call, and qubectl run on the
 * host): HELLO, CALL_REQUEST, CALL_RESULT, then the streams until the
 * service's exit code.  See call-client.h.
 */
#include "call-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_MAX (QRPC_HEADER_SIZE + QRPC_MAX_DATA)
#define BUF_MSGS QRPC_STREAM_BUF_MSGS
#define EXIT_OUTPUT_GONE 141 /* 128 + SIGPIPE, as a shell reports a writer killed by it */

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
	/* bytes sent as the start of stdin, before anything read from in_fd */
	const uint8_t *prefix;
	size_t prefix_len, prefix_off;
	bool discard_stderr;
	const char *prog; /* for messages */
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
			if (!c->discard_stderr)
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

/* The prefix goes first, in messages of up to QRPC_MAX_DATA while the
 * buffer has room; then, with no local input, the end of stdin. */
static int queue_prefix(struct call *c)
{
	int r;

	while (c->prefix_off < c->prefix_len &&
	       sizeof(c->wbuf) - (c->wlen - c->woff) >= MSG_MAX) {
		size_t n = c->prefix_len - c->prefix_off;
		struct qrpc_msg m = { .type = QRPC_MSG_STDIN };

		if (n > QRPC_MAX_DATA)
			n = QRPC_MAX_DATA;
		m.u.data.data = c->prefix + c->prefix_off;
		m.u.data.len = (uint32_t)n;
		r = queue_msg(c, &m);
		if (r < 0)
			return r == -EPROTO ? 0 : r;
		c->prefix_off += n;
	}
	if (c->prefix_off == c->prefix_len && c->in_fd < 0 && !c->stdin_eof_sent &&
	    sizeof(c->wbuf) - (c->wlen - c->woff) >= MSG_MAX) {
		struct qrpc_msg m = { .type = QRPC_MSG_EOF };

		m.u.eof.stream = QRPC_STREAM_STDIN;
		r = queue_msg(c, &m);
		if (r < 0 && r != -EPROTO)
			return r;
		c->stdin_eof_sent = true;
	}
	return 0;
}

/* Streams until EXIT.  Returns the exit code, or a negative errno. */
static int relay(struct call *c)
{
	bool sock_eof = false;

	for (;;) {
		int r = process_input(c);
		if (r < 0) {
			fprintf(stderr, "%s: protocol error from broker: %s\n", c->prog, strerror(-r));
			return r;
		}
		if (c->out_fd >= 0 && c->ooff == c->olen && stdout_ended(c))
			close_out(c);
		if (c->out_gone && !stdout_ended(c) && !c->got_exit) {
			/* As a local pipeline would: the writer stops when its
			 * reader is gone.  Closing the connection makes the
			 * broker end the call and the agent end the service. */
			fprintf(stderr, "%s: the reader of the output is gone: ending the call\n", c->prog);
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
			fprintf(stderr, "%s: connection to the broker lost\n", c->prog);
			return -ECONNRESET;
		}

		r = queue_prefix(c);
		if (r < 0)
			return r;

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
		if (c->in_fd >= 0 && !c->stdin_eof_sent && c->prefix_off == c->prefix_len &&
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
				c->prefix_off = c->prefix_len;
				c->stdin_eof_sent = true;
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

/* Blocking HELLO exchange, CALL_REQUEST and its CALL_RESULT. */
static int request(struct call *c, const struct qcall_opts *o, struct qrpc_msg *m)
{
	int r;

	*m = (struct qrpc_msg){ .type = QRPC_MSG_HELLO };
	m->u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
	m->u.hello.version_max = QRPC_PROTOCOL_VERSION;
	if ((r = qrpc_state_on_send(&c->state, m)) < 0 || (r = qrpc_write_msg(c->sock, m)) < 0 ||
	    (r = read_checked(c, m)) < 0)
		return r;
	*m = (struct qrpc_msg){ .type = QRPC_MSG_CALL_REQUEST };
	memcpy(m->u.call_request.target, o->target, strlen(o->target) + 1);
	memcpy(m->u.call_request.service, o->service, strlen(o->service) + 1);
	memcpy(m->u.call_request.argument, o->argument, strlen(o->argument) + 1);
	if ((r = qrpc_state_on_send(&c->state, m)) < 0 || (r = qrpc_write_msg(c->sock, m)) < 0 ||
	    (r = read_checked(c, m)) < 0)
		return r;
	return 0;
}

int qcall_check(const char *target, const char *spec, char *ret_service, char *ret_argument,
		char *err, size_t errlen)
{
	if (strlen(target) > QRPC_MAX_TARGET || !qrpc_target_is_valid(target)) {
		snprintf(err, errlen,
			 "invalid target '%s': want a qube name (1-31 of [A-Za-z0-9_.-], starting "
			 "with a letter), @default, @adminvm, @dispvm or @dispvm:NAME",
			 target);
		return -EINVAL;
	}
	const char *plus = strchr(spec, '+');
	size_t slen = plus ? (size_t)(plus - spec) : strlen(spec);
	const char *arg = plus ? plus + 1 : "";
	if (slen > QRPC_MAX_SERVICE) {
		snprintf(err, errlen, "invalid service in '%s': longer than %u bytes", spec,
			 QRPC_MAX_SERVICE);
		return -EINVAL;
	}
	memcpy(ret_service, spec, slen);
	ret_service[slen] = '\0';
	if (!qrpc_service_name_is_valid(ret_service)) {
		snprintf(err, errlen,
			 "invalid service in '%s': want 1-%u of [A-Za-z0-9_.-], not starting with '.'",
			 spec, QRPC_MAX_SERVICE);
		return -EINVAL;
	}
	if (strlen(arg) > QRPC_MAX_ARGUMENT || !qrpc_argument_is_valid(arg)) {
		snprintf(err, errlen, "invalid argument in '%s': want 0-%u of [A-Za-z0-9_.+-]", spec,
			 QRPC_MAX_ARGUMENT);
		return -EINVAL;
	}
	memcpy(ret_argument, arg, strlen(arg) + 1);
	return 0;
}

int qcall_run(const struct qcall_opts *o)
{
	struct call *c;
	struct qrpc_msg m;
	pid_t prog_pid = -1;
	int r, status;

	/* 2 x 4 x 64 KiB buffers: on the heap, not the stack */
	c = calloc(1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "%s: out of memory\n", o->prog);
		return QRPC_EXIT_RPC_FAILED;
	}
	qrpc_state_init(&c->state, QRPC_CHANNEL_CALL, QRPC_SIDE_CLIENT);
	c->prog = o->prog;
	c->in_fd = o->in_fd;
	c->out_fd = o->out_fd;
	c->prefix = o->prefix;
	c->prefix_len = o->prefix ? o->prefix_len : 0;
	c->discard_stderr = o->discard_stderr;

	c->sock = qrpc_guest_connect_host(o->transport, QRPC_PORT_BROKER);
	if (c->sock < 0) {
		fprintf(stderr, "%s: cannot connect to the broker (%s): %s\n", o->prog,
			o->transport_name, strerror(-c->sock));
		status = QRPC_EXIT_RPC_FAILED;
		goto out_free;
	}
	r = request(c, o, &m);
	if (r < 0) {
		if (r == -EPIPE || r == -ECONNRESET)
			fprintf(stderr, "%s: connection to the broker lost\n", o->prog);
		else
			fprintf(stderr, "%s: RPC failure: %s\n", o->prog, strerror(-r));
		status = QRPC_EXIT_RPC_FAILED;
		goto out_close;
	}
	if (m.u.call_result.status == QRPC_CALL_REFUSED) {
		fprintf(stderr, "%s: %s+%s to %s: refused\n", o->prog, o->service, o->argument,
			o->target);
		status = QRPC_EXIT_REFUSED;
		goto out_close;
	}
	if (m.u.call_result.status != QRPC_CALL_ALLOWED) {
		fprintf(stderr, "%s: %s+%s to %s: the broker could not run the call\n", o->prog,
			o->service, o->argument, o->target);
		status = QRPC_EXIT_RPC_FAILED;
		goto out_close;
	}
	if (o->local_prog) {
		int to_prog[2], from_prog[2];

		if (pipe2(to_prog, O_CLOEXEC) < 0 || pipe2(from_prog, O_CLOEXEC) < 0) {
			fprintf(stderr, "%s: pipe: %s\n", o->prog, strerror(errno));
			status = QRPC_EXIT_RPC_FAILED;
			goto out_close;
		}
		prog_pid = fork();
		if (prog_pid < 0) {
			fprintf(stderr, "%s: fork: %s\n", o->prog, strerror(errno));
			status = QRPC_EXIT_RPC_FAILED;
			goto out_close;
		}
		if (prog_pid == 0) {
			signal(SIGPIPE, SIG_DFL);
			if (dup2(to_prog[0], STDIN_FILENO) < 0 || dup2(from_prog[1], STDOUT_FILENO) < 0)
				_exit(127);
			execvp(o->local_prog[0], o->local_prog);
			fprintf(stderr, "%s: cannot run %s: %s\n", o->prog, o->local_prog[0],
				strerror(errno));
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
	status = r < 0 ? QRPC_EXIT_RPC_FAILED : r;
out_close:
	close(c->sock);
out_free:
	free(c);
	return status;
}
