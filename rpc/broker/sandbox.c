/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker sandbox: the unprivileged half, the only part of the broker
 * that reads bytes written by guests.
 *
 * It runs as an unprivileged user (when started as root), with
 * PR_SET_NO_NEW_PRIVS, no capabilities, no file descriptors but its socket
 * to the monitor and the log, and a seccomp allow-list installed last
 * (sandbox_seccomp() below documents every syscall on it).  It cannot open
 * files or sockets: every connection arrives from the monitor by
 * SCM_RIGHTS.
 *
 * Per call it holds two connections: the caller (CALL channel, we are the
 * server) and, once the monitor allowed the call, the target's agent
 * (SERVICE channel, we are the client).  Every message is parsed and
 * checked by libqrpc's codec and state machine on the side it arrives on,
 * and again on the side it leaves on, before it is re-encoded.  The streams
 * are joined with bounded buffers: a side is not read while the buffer
 * toward the other side has no room for a whole message.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"

#define SB_MSG_MAX  (QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD)
#define SB_IN_MAX   (2 * SB_MSG_MAX)
#define SB_OUT_MAX  (4 * SB_MSG_MAX)
#define SB_CLOSING_MS 10000u

enum sb_phase {
	SP_HANDSHAKE = 1, /* waiting for HELLO + CALL_REQUEST */
	SP_DECIDING,      /* request passed to the monitor */
	SP_AGENT,         /* agent connection: OK line, HELLO */
	SP_RUNNING,       /* streams joined */
	SP_CLOSING,       /* last bytes to the caller, then close */
};

struct sb_call;

struct sb_conn {
	int fd;
	bool is_agent;
	struct sb_call *call;
	struct qrpc_state st;
	struct bk_buf in, out;
	uint32_t events; /* registered with epoll; 0: not registered */
	bool rd_eof;     /* read() returned 0 */
	bool blocked;    /* has a message the other side has no room for */
	bool hybrid_wait; /* agent: "OK <n>\n" not seen yet */
	bool vsock_connecting;
	bool start_after_hello;  /* agent: SERVICE_START waits for its HELLO */
	bool wr_dead;    /* writing failed: output is dropped, reading goes on */
};

struct sb_call {
	uint32_t id;
	enum sb_phase phase;
	char source[QRPC_MAX_QUBE + 1];
	char target[QRPC_MAX_TARGET + 1];
	struct sb_conn caller, agent;
	struct qrpc_msg start; /* SERVICE_START to send */
	uint64_t deadline;     /* 0: none */
	uint32_t exit_code;    /* relayed, or BK_END_NO_EXIT */
	bool dead;
	struct sb_call *prev, *next;
};

struct sandbox {
	const struct bk_config *cfg;
	int epfd;
	int ipc_fd;
	struct bk_ipc_queue ipc_out;
	bool ipc_out_armed;
	struct sb_call *calls;
	unsigned n_calls;
	bool quit;
};

/* epoll data for the monitor socket; calls use their sb_conn pointers */
static struct sb_conn ipc_tag;

/* ---- epoll bookkeeping ------------------------------------------------------------ */

static void conn_set_events(struct sandbox *sb, struct sb_conn *c, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = c };

	if (c->fd < 0 || want == c->events)
		return;
	if (c->events == 0)
		epoll_ctl(sb->epfd, EPOLL_CTL_ADD, c->fd, &ev);
	else if (want == 0)
		epoll_ctl(sb->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	else
		epoll_ctl(sb->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void conn_close(struct sandbox *sb, struct sb_conn *c)
{
	if (c->fd < 0)
		return;
	conn_set_events(sb, c, 0);
	close(c->fd);
	c->fd = -1;
	bk_buf_finish(&c->in);
	bk_buf_finish(&c->out);
}

static void ipc_queue(struct sandbox *sb, const struct bk_ipc *rec)
{
	int r = bk_ipc_queue_push(&sb->ipc_out, rec, -1);

	if (r == 0)
		r = bk_ipc_queue_flush(&sb->ipc_out, sb->ipc_fd);
	if (r == -EAGAIN && !sb->ipc_out_armed) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = &ipc_tag };

		epoll_ctl(sb->epfd, EPOLL_CTL_MOD, sb->ipc_fd, &ev);
		sb->ipc_out_armed = true;
	} else if (r < 0 && r != -EAGAIN) {
		bk_log("sandbox: monitor socket: %s", strerror(-r));
		sb->quit = true;
	}
}

/* Ends a call: both connections closed, the monitor told. */
static void call_end(struct sandbox *sb, struct sb_call *call)
{
	struct bk_ipc rec = { .type = BK_IPC_CLOSED, .id = call->id, .exit_code = call->exit_code };

	if (call->dead)
		return;
	call->dead = true;
	conn_close(sb, &call->caller);
	conn_close(sb, &call->agent);
	ipc_queue(sb, &rec);
}

static void call_free(struct sandbox *sb, struct sb_call *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		sb->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	sb->n_calls--;
	free(call);
	if (sb->n_calls == 0)
		malloc_trim(0); /* idle: give memory back (checked by the load test) */
}

/* Encodes MSG onto C's output after the state machine agreed. */
static int conn_send(struct sb_conn *c, const struct qrpc_msg *msg)
{
	size_t need = QRPC_HEADER_SIZE + (msg->type >= QRPC_MSG_STDIN &&
						  msg->type <= QRPC_MSG_STDERR
					  ? msg->u.data.len
					  : QRPC_MAX_TARGET * 4 + 64);
	size_t room = bk_buf_room(&c->out), len;
	uint8_t *dst;
	int r;

	if (need > room)
		need = room;
	dst = bk_buf_reserve(&c->out, need);
	if (!dst)
		return -ENOBUFS;
	r = qrpc_msg_encode(msg, dst, need, &len);
	if (r < 0)
		return r;
	r = qrpc_state_on_send(&c->st, msg);
	if (r < 0)
		return r;
	c->out.end += len;
	return 0;
}

static int send_hello(struct sb_conn *c)
{
	struct qrpc_msg m = { .type = QRPC_MSG_HELLO };

	m.u.hello.version_min = QRPC_PROTOCOL_VERSION_MIN;
	m.u.hello.version_max = QRPC_PROTOCOL_VERSION;
	return conn_send(c, &m);
}

/* Tells the caller the call failed (125 unless CODE says otherwise), in
 * whatever form its state still allows, and lets the output drain. */
static void caller_fail(struct sandbox *sb, struct sb_call *call, uint32_t status, uint32_t code)
{
	struct sb_conn *c = &call->caller;
	struct qrpc_msg m;

	conn_close(sb, &call->agent);
	if (c->fd < 0) {
		call_end(sb, call);
		return;
	}
	if (call->phase == SP_RUNNING) {
		for (uint32_t s = QRPC_STREAM_STDOUT; s <= QRPC_STREAM_STDERR; s++) {
			if (c->st.eof_tx & (1u << s))
				continue;
			m = (struct qrpc_msg){ .type = QRPC_MSG_EOF, .u.eof.stream = s };
			conn_send(c, &m);
		}
		m = (struct qrpc_msg){ .type = QRPC_MSG_EXIT, .u.exit.code = code };
		conn_send(c, &m);
	} else {
		m = (struct qrpc_msg){ .type = QRPC_MSG_CALL_RESULT };
		m.u.call_result.status = status;
		m.u.call_result.exit_code = code;
		conn_send(c, &m);
	}
	call->phase = SP_CLOSING;
	call->deadline = bk_now_ms() + SB_CLOSING_MS;
}

static void protocol_error(struct sandbox *sb, struct sb_call *call, bool agent, const char *what,
			   int err)
{
	if (agent) {
		bk_log_source(call->target, "call id=%u: agent of %s: %s: %s; call failed",
			      call->id, call->target, what, strerror(-err));
		caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
	} else {
		bk_log_source(call->source, "call id=%u: caller %s: %s: %s; connection closed",
			      call->id, call->source, what, strerror(-err));
		/* a refusal if the state still allows one (a request was
		 * seen, no result sent yet), then close */
		if (call->phase == SP_DECIDING || call->phase == SP_AGENT) {
			struct qrpc_msg m = { .type = QRPC_MSG_CALL_RESULT };

			m.u.call_result.status = QRPC_CALL_REFUSED;
			m.u.call_result.exit_code = QRPC_EXIT_REFUSED;
			conn_send(&call->caller, &m); /* nothing is queued if refused */
		}
		conn_close(sb, &call->agent);
		call->caller.rd_eof = true;
		call->phase = SP_CLOSING;
		call->deadline = bk_now_ms() + SB_CLOSING_MS;
	}
}

/* ---- message handling ------------------------------------------------------------- */

/* Sends HELLO to the agent; SERVICE_START follows once the agent's HELLO
 * has arrived (docs/protocol.md: nothing but HELLO before the peer's HELLO;
 * the message's encoding, and whether SERVICE_START_AS exists at all,
 * depend on the version agreed).  The agent sends its HELLO right after
 * its "OK" line, so this costs no round trip in practice. */
static int agent_begin(struct sb_call *call)
{
	struct sb_conn *a = &call->agent;
	int r;

	r = send_hello(a);
	if (r < 0)
		return r;
	a->start_after_hello = true;
	return 0;
}

static void caller_on_msg(struct sandbox *sb, struct sb_call *call, const struct qrpc_msg *msg)
{
	switch (msg->type) {
	case QRPC_MSG_HELLO:
		break;
	case QRPC_MSG_CALL_REQUEST: {
		struct bk_ipc rec = { .type = BK_IPC_REQUEST, .id = call->id };

		/* validated by the codec; the monitor checks again */
		memcpy(rec.target, msg->u.call_request.target, sizeof(rec.target));
		memcpy(rec.service, msg->u.call_request.service, sizeof(rec.service));
		memcpy(rec.argument, msg->u.call_request.argument, sizeof(rec.argument));
		call->phase = SP_DECIDING;
		call->deadline = 0;
		ipc_queue(sb, &rec);
		break;
	}
	case QRPC_MSG_STDIN:
	case QRPC_MSG_EOF:
		/* stdin that crossed the service's exit is dropped */
		if (call->phase == SP_RUNNING && call->agent.fd >= 0) {
			conn_send(&call->agent, msg);
			if (call->agent.wr_dead)
				bk_buf_finish(&call->agent.out); /* nobody reads it */
		}
		break;
	default:
		break; /* the state machine lets nothing else through */
	}
}

static void agent_on_msg(struct sandbox *sb, struct sb_call *call, const struct qrpc_msg *msg)
{
	struct sb_conn *a = &call->agent;

	if (msg->type == QRPC_MSG_HELLO) {
		if (!a->start_after_hello) {
			/* cannot happen: HELLO is sent before anything is read */
			protocol_error(sb, call, true, "HELLO before ours", -EPROTO);
			return;
		}
		a->start_after_hello = false;
		if (call->start.type == QRPC_MSG_SERVICE_START_AS && a->st.version < 2) {
			/* the policy says which user; an agent that cannot be
			 * told would run the service as another one */
			bk_log_source(call->target, "call id=%u: the agent of %s speaks protocol "
				      "version %u, which cannot run a service as user %s (user= in "
				      "the policy)", call->id, call->target, a->st.version,
				      call->start.u.service_start.user);
			caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
			return;
		}
		if (conn_send(a, &call->start) < 0) {
			protocol_error(sb, call, true, "cannot start the service", -EPROTO);
			return;
		}
		/* the agent speaks our protocol: the call is on */
		struct qrpc_msg res = { .type = QRPC_MSG_CALL_RESULT };
		res.u.call_result.status = QRPC_CALL_ALLOWED;
		if (conn_send(&call->caller, &res) < 0) {
			protocol_error(sb, call, false, "cannot send the result", -EPROTO);
			return;
		}
		call->phase = SP_RUNNING;
		call->deadline = 0;
		return;
	}
	if (conn_send(&call->caller, msg) < 0) {
		protocol_error(sb, call, true, "message not valid toward the caller", -EPROTO);
		return;
	}
	if (msg->type == QRPC_MSG_EXIT) {
		call->exit_code = msg->u.exit.code;
		conn_close(sb, a);
		call->phase = SP_CLOSING;
		call->deadline = bk_now_ms() + SB_CLOSING_MS;
	}
}

/* Parses and handles whole messages buffered on C while the other side has
 * room.  Returns true when something was consumed. */
static bool conn_process(struct sandbox *sb, struct sb_conn *c)
{
	struct sb_call *call = c->call;
	struct sb_conn *peer = c->is_agent ? &call->caller : &call->agent;
	bool progress = false;

	c->blocked = false;
	if (c->is_agent && c->hybrid_wait) {
		size_t used;

		if (bk_buf_len(&c->in) == 0)
			return false;
		int r = bk_hybrid_ok_parse(c->in.data + c->in.start, bk_buf_len(&c->in), &used);

		if (r == -EAGAIN)
			return false;
		if (r < 0) {
			protocol_error(sb, call, true, "bad answer to CONNECT", r);
			return true;
		}
		bk_buf_consume(&c->in, used);
		c->hybrid_wait = false;
		progress = true;
		r = agent_begin(call);
		if (r < 0) {
			protocol_error(sb, call, true, "cannot start the service", r);
			return true;
		}
	}
	while (c->fd >= 0 && bk_buf_len(&c->in) > 0 && call->phase != SP_CLOSING) {
		struct qrpc_msg untrusted_msg;
		size_t used;
		int r = qrpc_msg_parse(c->in.data + c->in.start, bk_buf_len(&c->in), &untrusted_msg,
				       &used);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			protocol_error(sb, call, c->is_agent, "malformed message", r);
			return true;
		}
		/* forwarded messages need room on the other side first */
		bool forwards = c->is_agent ? untrusted_msg.type != QRPC_MSG_HELLO
					    : (untrusted_msg.type == QRPC_MSG_STDIN ||
					       untrusted_msg.type == QRPC_MSG_EOF);
		if (forwards && peer->fd >= 0 && !peer->wr_dead &&
		    bk_buf_room(&peer->out) < used + 16) {
			c->blocked = true;
			break;
		}
		if (call->phase == SP_DECIDING && !c->is_agent) {
			/* nothing may come while the policy decides, except
			 * what the state machine allows (nothing) */
		}
		r = qrpc_state_on_recv(&c->st, &untrusted_msg);
		if (r < 0) {
			char what[64];

			snprintf(what, sizeof(what), "%s not allowed now",
				 qrpc_msg_type_to_string(untrusted_msg.type));
			protocol_error(sb, call, c->is_agent, what, r);
			return true;
		}
		/* untrusted_msg has passed the codec and the state machine:
		 * names are valid, the type is right for this side and state */
		const struct qrpc_msg *msg = &untrusted_msg;
		if (c->is_agent)
			agent_on_msg(sb, call, msg);
		else
			caller_on_msg(sb, call, msg);
		if (c->fd >= 0)
			bk_buf_consume(&c->in, used);
		progress = true;
	}
	return progress;
}

/* Writes what C has queued.  Returns true when something was written. */
static bool conn_flush(struct sandbox *sb, struct sb_conn *c)
{
	bool progress = false;

	if (c->fd < 0 || c->vsock_connecting || c->wr_dead)
		return false;
	while (bk_buf_len(&c->out) > 0) {
		ssize_t n = send(c->fd, c->out.data + c->out.start, bk_buf_len(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			struct sb_call *call = c->call;

			if (c->is_agent) {
				/* the service may have exited without reading its
				 * stdin; its output and exit code can still be
				 * waiting to be read, so only writing stops */
				c->wr_dead = true;
				bk_buf_finish(&c->out);
			} else {
				if (call->phase != SP_CLOSING)
					bk_log_source(call->source,
						      "call id=%u: caller %s went away (%s)",
						      call->id, call->source, strerror(errno));
				call_end(sb, call);
			}
			return true;
		}
		bk_buf_consume(&c->out, (size_t)n);
		progress = true;
	}
	/* A streaming call keeps its buffers (freeing an emptied one and
	 * growing it again for the next message cost more than the copying);
	 * they go when the call ends (conn_close). */
	if (bk_buf_len(&c->out) == 0 && c->call->phase != SP_RUNNING)
		bk_buf_shrink(&c->out);
	return progress;
}

static void conn_read(struct sandbox *sb, struct sb_conn *c)
{
	struct sb_call *call = c->call;
	size_t room = bk_buf_room(&c->in);
	uint8_t *dst;
	ssize_t n;

	if (room == 0)
		return;
	/* before the agent's OK line, read only up to its end */
	if (c->hybrid_wait && room > BK_HYBRID_LINE_MAX - bk_buf_len(&c->in))
		room = BK_HYBRID_LINE_MAX - bk_buf_len(&c->in);
	dst = bk_buf_reserve(&c->in, room);
	if (!dst) {
		bk_log("call id=%u: out of memory", call->id);
		call_end(sb, call);
		return;
	}
	n = read(c->fd, dst, room);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		n = 0; /* ECONNRESET and friends: as EOF */
	}
	if (n == 0) {
		c->rd_eof = true;
		return;
	}
	c->in.end += (size_t)n;
}

/* After C hit EOF: what that means depends on who and when. */
static void conn_on_eof(struct sandbox *sb, struct sb_conn *c)
{
	struct sb_call *call = c->call;

	if (c->blocked)
		return; /* whole messages wait for room; EOF comes after them */
	if (bk_buf_len(&c->in) > 0 && call->phase != SP_CLOSING) {
		/* a message cut short by the close */
		protocol_error(sb, call, c->is_agent, "connection closed inside a message", -EPIPE);
		return;
	}
	if (c->is_agent) {
		if (call->phase == SP_CLOSING) {
			conn_close(sb, c);
			return;
		}
		bk_log_source(call->target,
			      "call id=%u: agent of %s closed the connection without an exit code",
			      call->id, call->target);
		caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
		return;
	}
	if (call->phase == SP_RUNNING && (c->st.eof_rx & (1u << QRPC_STREAM_STDIN)))
		return; /* half-close after its stdin: keep sending it the output */
	if (call->phase == SP_CLOSING) {
		return;
	}
	if (call->phase == SP_HANDSHAKE)
		bk_log_source(call->source, "call id=%u: caller %s closed before a request",
			      call->id, call->source);
	else
		bk_log_source(call->source, "call id=%u: caller %s closed the connection early",
			      call->id, call->source);
	call_end(sb, call);
}

/* Runs everything that can progress on CALL, then updates epoll. */
static void call_pump(struct sandbox *sb, struct sb_call *call)
{
	for (int round = 0; round < 8 && !call->dead; round++) {
		bool progress = false;

		if (call->caller.fd >= 0)
			progress |= conn_process(sb, &call->caller);
		if (!call->dead && call->agent.fd >= 0)
			progress |= conn_process(sb, &call->agent);
		if (!call->dead && call->agent.fd >= 0)
			progress |= conn_flush(sb, &call->agent);
		if (!call->dead && call->caller.fd >= 0)
			progress |= conn_flush(sb, &call->caller);
		if (!progress)
			break;
	}
	if (call->dead)
		return;
	if (call->agent.fd >= 0 && call->agent.rd_eof)
		conn_on_eof(sb, &call->agent);
	if (!call->dead && call->caller.fd >= 0 && call->caller.rd_eof)
		conn_on_eof(sb, &call->caller);
	if (call->dead)
		return;
	if (call->phase == SP_CLOSING && bk_buf_len(&call->caller.out) == 0) {
		call_end(sb, call);
		return;
	}
	if (call->caller.fd < 0) {
		call_end(sb, call);
		return;
	}

	/* interest sets: read while there is room and nothing is blocked */
	struct sb_conn *cs[2] = { &call->caller, &call->agent };
	for (int i = 0; i < 2; i++) {
		struct sb_conn *c = cs[i];
		uint32_t want = 0;

		if (c->fd < 0)
			continue;
		if (!c->rd_eof && !c->blocked && bk_buf_room(&c->in) > 0 &&
		    !(call->phase == SP_CLOSING && !c->is_agent))
			want |= EPOLLIN;
		if ((bk_buf_len(&c->out) > 0 && !c->wr_dead) || c->vsock_connecting)
			want |= EPOLLOUT;
		/* A caller that half-closed after its stdin still gets the
		 * output; if it then goes away entirely while nothing is
		 * written to it (a silent service), only the hang-up tells.
		 * Edge-triggered with no events: woken by EPOLLHUP/EPOLLERR
		 * alone, once, not by the half-close that is already there. */
		if (!want && !c->is_agent && c->rd_eof && call->phase == SP_RUNNING)
			want = EPOLLET;
		/* want == 0 deregisters: a blocked or half-closed side is
		 * looked at again when the other side makes progress */
		conn_set_events(sb, c, want);
	}
}

/* ---- monitor records ----------------------------------------------------------------- */

static struct sb_call *call_find(struct sandbox *sb, uint32_t id)
{
	for (struct sb_call *c = sb->calls; c; c = c->next)
		if (c->id == id && !c->dead)
			return c;
	return NULL;
}

static void conn_init(struct sb_conn *c, struct sb_call *call, int fd, bool agent)
{
	c->fd = fd;
	c->call = call;
	c->is_agent = agent;
	bk_buf_init(&c->in, SB_IN_MAX);
	bk_buf_init(&c->out, SB_OUT_MAX);
	qrpc_state_init(&c->st, agent ? QRPC_CHANNEL_SERVICE : QRPC_CHANNEL_CALL,
			agent ? QRPC_SIDE_CLIENT : QRPC_SIDE_SERVER);
}

static void on_new_call(struct sandbox *sb, const struct bk_ipc *rec, int fd)
{
	struct sb_call *call;

	if (fd < 0 || !bk_string_fits(rec->source, sizeof(rec->source))) {
		struct bk_ipc closed = { .type = BK_IPC_CLOSED, .id = rec->id,
					 .exit_code = BK_END_NO_EXIT };

		if (fd >= 0)
			close(fd);
		ipc_queue(sb, &closed); /* the monitor frees the slot */
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		struct bk_ipc closed = { .type = BK_IPC_CLOSED, .id = rec->id,
					 .exit_code = BK_END_NO_EXIT };
		close(fd);
		ipc_queue(sb, &closed);
		return;
	}
	call->id = rec->id;
	call->phase = SP_HANDSHAKE;
	call->exit_code = BK_END_NO_EXIT;
	call->deadline = bk_now_ms() + sb->cfg->handshake_ms;
	memcpy(call->source, rec->source, sizeof(call->source));
	conn_init(&call->caller, call, fd, false);
	conn_init(&call->agent, call, -1, true);
	call->next = sb->calls;
	if (sb->calls)
		sb->calls->prev = call;
	sb->calls = call;
	sb->n_calls++;
	send_hello(&call->caller);
	call_pump(sb, call);
}

static void on_decision(struct sandbox *sb, const struct bk_ipc *rec, int fd)
{
	struct sb_call *call = call_find(sb, rec->id);

	if (!call || call->phase != SP_DECIDING) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (rec->status != QRPC_CALL_ALLOWED || fd < 0 ||
	    !bk_string_fits(rec->target, sizeof(rec->target)) ||
	    !bk_string_fits(rec->service, sizeof(rec->service)) ||
	    !bk_string_fits(rec->argument, sizeof(rec->argument)) ||
	    !bk_string_fits(rec->requested_target, sizeof(rec->requested_target)) ||
	    !bk_string_fits(rec->source, sizeof(rec->source))) {
		struct qrpc_msg m = { .type = QRPC_MSG_CALL_RESULT };

		if (fd >= 0)
			close(fd);
		m.u.call_result.status = rec->status == QRPC_CALL_ALLOWED ? QRPC_CALL_FAILED
									   : rec->status;
		m.u.call_result.exit_code = rec->status == QRPC_CALL_REFUSED ? QRPC_EXIT_REFUSED
									      : QRPC_EXIT_RPC_FAILED;
		conn_send(&call->caller, &m);
		call->phase = SP_CLOSING;
		call->deadline = bk_now_ms() + SB_CLOSING_MS;
		call_pump(sb, call);
		return;
	}
	memcpy(call->target, rec->target, sizeof(call->target));
	call->start = (struct qrpc_msg){ .type = rec->user[0] ? QRPC_MSG_SERVICE_START_AS
							      : QRPC_MSG_SERVICE_START };
	memcpy(call->start.u.service_start.user, rec->user, sizeof(rec->user));
	memcpy(call->start.u.service_start.source, rec->source, sizeof(rec->source));
	memcpy(call->start.u.service_start.service, rec->service, sizeof(rec->service));
	memcpy(call->start.u.service_start.argument, rec->argument, sizeof(rec->argument));
	memcpy(call->start.u.service_start.requested_target, rec->requested_target,
	       sizeof(rec->requested_target));
	conn_init(&call->agent, call, fd, true);
	call->phase = SP_AGENT;
	call->deadline = bk_now_ms() + sb->cfg->connect_timeout_ms;
	if (rec->agent_mode == BK_AGENT_VSOCK) {
		call->agent.vsock_connecting = true;
	} else {
		call->agent.hybrid_wait = true;
	}
	call_pump(sb, call);
}

/* SHED: the monitor is out of fds and ends this call unless it is running
 * already; the caller is told it failed (125) where its state allows, and
 * the monitor gets CLOSED as for a hang-up. */
static void on_shed(struct sandbox *sb, const struct bk_ipc *rec)
{
	struct sb_call *call = call_find(sb, rec->id);

	if (!call || call->phase == SP_RUNNING || call->phase == SP_CLOSING)
		return;
	if (call->phase == SP_HANDSHAKE) {
		call_end(sb, call); /* no request: nothing to answer */
		return;
	}
	caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
	call_pump(sb, call);
}

static void on_ipc(struct sandbox *sb, uint32_t events)
{
	if (events & EPOLLOUT) {
		int r = bk_ipc_queue_flush(&sb->ipc_out, sb->ipc_fd);

		if (r == 0) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ipc_tag };

			epoll_ctl(sb->epfd, EPOLL_CTL_MOD, sb->ipc_fd, &ev);
			sb->ipc_out_armed = false;
		} else if (r != -EAGAIN) {
			sb->quit = true;
			return;
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (int k = 0; k < 256; k++) {
		struct bk_ipc rec;
		int fd = -1;
		int r = bk_ipc_recv(sb->ipc_fd, &rec, &fd);

		if (r == -EAGAIN)
			return;
		if (r == -EMFILE) {
			/* that call's fd was lost; the handlers below end the call
			 * (its slot is given back to the monitor) */
			const char *who = "?";

			if (bk_string_fits(rec.source, sizeof(rec.source)))
				who = rec.source;

			bk_log_source(who, "call id=%u: out of file descriptors, its connection "
					   "was dropped", rec.id);
		} else if (r < 0) {
			/* the monitor is gone: nothing is decided any more */
			bk_log("sandbox: monitor socket: %s; exiting", strerror(-r));
			sb->quit = true;
			return;
		}
		switch (rec.type) {
		case BK_IPC_NEW_CALL:
			on_new_call(sb, &rec, fd);
			break;
		case BK_IPC_DECISION:
			on_decision(sb, &rec, fd);
			break;
		case BK_IPC_SHED:
			if (fd >= 0)
				close(fd);
			on_shed(sb, &rec);
			break;
		default:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
}

static void on_conn_event(struct sandbox *sb, struct sb_conn *c, uint32_t events)
{
	struct sb_call *call = c->call;

	if (call->dead || c->fd < 0)
		return;
	if (c->vsock_connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		c->vsock_connecting = false;
		if (err) {
			bk_log_source(call->target, "call id=%u: target %s is not reachable: %s",
				      call->id, call->target, strerror(err));
			caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
			call_pump(sb, call);
			return;
		}
		if (agent_begin(call) < 0) {
			caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
			call_pump(sb, call);
			return;
		}
	}
	if (!c->is_agent && c->rd_eof && (events & (EPOLLHUP | EPOLLERR))) {
		/* it had half-closed; now it is gone entirely */
		if (call->phase != SP_CLOSING)
			bk_log_source(call->source, "call id=%u: caller %s went away", call->id,
				      call->source);
		call_end(sb, call);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(sb, c);
	call_pump(sb, call);
}

static void on_tick(struct sandbox *sb)
{
	uint64_t now = bk_now_ms();
	struct sb_call *call, *next;

	bk_log_source_flush();
	for (call = sb->calls; call; call = next) {
		next = call->next;
		if (call->dead) {
			call_free(sb, call);
			continue;
		}
		if (!call->deadline || now < call->deadline)
			continue;
		switch (call->phase) {
		case SP_HANDSHAKE:
			bk_log_source(call->source,
				      "call id=%u: caller %s sent no request within %u ms; closed",
				      call->id, call->source, sb->cfg->handshake_ms);
			call_end(sb, call);
			break;
		case SP_AGENT:
			bk_log_source(call->target,
				      "call id=%u: agent of %s did not answer within %u ms",
				      call->id, call->target, sb->cfg->connect_timeout_ms);
			caller_fail(sb, call, QRPC_CALL_FAILED, QRPC_EXIT_RPC_FAILED);
			call_pump(sb, call);
			break;
		case SP_CLOSING:
			call_end(sb, call);
			break;
		default:
			break;
		}
		if (call->dead)
			call_free(sb, call);
	}
}

/* ---- the sandbox itself ------------------------------------------------------------------ */

/*
 * The allow-list.  Default action: kill the whole process (SIGSYS).  Every
 * entry is something the event loop above needs after setup; anything that
 * creates or opens a resource (open, socket, connect, accept, fork, exec,
 * ptrace, ...) is absent, so a compromised sandbox can only use the fds it
 * was given.
 */
static int sandbox_seccomp(void)
{
	static const struct {
		int nr;
		const char *why;
	} allow[] = {
		{ SCMP_SYS(read), "read guest and agent bytes" },
		{ SCMP_SYS(write), "log lines (one write per line)" },
		{ SCMP_SYS(sendto), "send() with MSG_NOSIGNAL to callers and agents" },
		{ SCMP_SYS(recvmsg), "records and fds (SCM_RIGHTS) from the monitor" },
		{ SCMP_SYS(sendmsg), "records to the monitor" },
		{ SCMP_SYS(close), "close finished connections" },
		{ SCMP_SYS(epoll_wait), "the event loop" },
		{ SCMP_SYS(epoll_pwait), "the event loop (libc may use this form)" },
		{ SCMP_SYS(epoll_ctl), "register / change / remove connections" },
		{ SCMP_SYS(getsockopt), "SO_ERROR of a completed vsock connect" },
		{ SCMP_SYS(clock_gettime), "timeouts and log time stamps (vDSO fallback)" },
		{ SCMP_SYS(brk), "malloc" },
		{ SCMP_SYS(munmap), "free of large blocks" },
		{ SCMP_SYS(mremap), "realloc of large blocks" },
		{ SCMP_SYS(madvise), "malloc_trim and free give memory back" },
		{ SCMP_SYS(rt_sigreturn), "return from a signal handler (none installed)" },
		{ SCMP_SYS(restart_syscall), "restart after a stop signal" },
		{ SCMP_SYS(exit_group), "exit" },
		{ SCMP_SYS(exit), "exit" },
#if defined(__SANITIZE_ADDRESS__) || defined(QUBE_BROKER_SANITIZERS)
		/* AddressSanitizer / UBSan runtime only (sanitizer builds). */
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
#endif
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i].nr, 0);
		if (r < 0)
			goto out;
	}
	/* mmap for malloc, never executable memory */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		goto out;
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return r;
}

/* Closes every fd but the ones in KEEP (sorted ascending). */
static void close_other_fds(const int *keep, size_t n)
{
	unsigned lo = 0;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
}

static int drop_privileges(uid_t uid, gid_t gid)
{
	if (geteuid() != 0)
		return 0; /* nothing to drop; seccomp still applies */
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	/* must not be able to get back */
	if (setresuid(0, 0, 0) == 0 || geteuid() == 0 || getegid() == 0)
		return -EPERM;
	return 0;
}

void bk_sandbox_main(const struct bk_config *cfg, int ipc_fd)
{
	struct sandbox s = { .cfg = cfg, .ipc_fd = ipc_fd };
	struct sandbox *sb = &s;
	int keep[5] = { 0, 1, 2, bk_log_fd(), ipc_fd };
	sigset_t all;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ipc_tag };
	int r;

	bk_log_set_ident("qube-broker[sandbox]");
	bk_log_set_source_limit(cfg->log_per_qube);
	/* stdin/stdout/stderr on /dev/null (unless the log is stderr), so
	 * that nothing written to them by a library can reach a socket that
	 * would otherwise get one of those numbers */
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0) {
		bk_log("sandbox: /dev/null: %s", strerror(errno));
		_exit(1);
	}
	for (int fd = 0; fd <= 2; fd++)
		if (fd != bk_log_fd() && fd != ipc_fd && dup2(null_fd, fd) < 0)
			_exit(1);
	close(null_fd);
	if (keep[3] > keep[4]) {
		int t = keep[3];
		keep[3] = keep[4];
		keep[4] = t;
	}
	/* sorted, duplicates (log on stderr) are harmless */
	close_other_fds(keep, 5);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* a terminal's hangup or ^C is for the monitor to act on; the
	 * sandbox ends when the monitor does */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	r = drop_privileges(cfg->uid, cfg->gid);
	if (r < 0) {
		bk_log("sandbox: cannot drop privileges: %s", strerror(-r));
		_exit(1);
	}
	if (fcntl(ipc_fd, F_SETFL, O_NONBLOCK) < 0) {
		bk_log("sandbox: %s", strerror(errno));
		_exit(1);
	}
	sb->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sb->epfd < 0 || epoll_ctl(sb->epfd, EPOLL_CTL_ADD, ipc_fd, &ev) < 0) {
		bk_log("sandbox: epoll: %s", strerror(errno));
		_exit(1);
	}
	/* things libc does lazily, done now while they are still allowed */
	tzset();
	free(malloc(1));
	/* no ptrace or core dumps by other processes of the same user */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		bk_log("sandbox: PR_SET_DUMPABLE: %s", strerror(errno));
		_exit(1);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		bk_log("sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		_exit(1);
	}
	uid_t uid_now = getuid();
	gid_t gid_now = getgid();
	r = sandbox_seccomp();
	if (r < 0) {
		bk_log("sandbox: cannot install the seccomp filter: %s", strerror(-r));
		_exit(1);
	}
	bk_log("sandbox running as uid %u gid %u under seccomp", (unsigned)uid_now,
	       (unsigned)gid_now);
	if (cfg->selftest_seccomp) {
		bk_log("sandbox: --selftest-seccomp: calling openat(), which is not allowed");
		/* not on the allow-list: the kernel must kill us here */
		int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
		bk_log("sandbox: openat() was NOT blocked (fd %d): seccomp is not working", fd);
		_exit(3);
	}

	while (!sb->quit) {
		struct epoll_event evs[64];
		int n = epoll_wait(sb->epfd, evs, 64, 250);

		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n && !sb->quit; i++) {
			struct sb_conn *c = evs[i].data.ptr;

			if (c == &ipc_tag)
				on_ipc(sb, evs[i].events);
			else
				on_conn_event(sb, c, evs[i].events);
		}
		on_tick(sb);
	}
	/* _exit: no atexit handlers (they may need syscalls the filter forbids) */
	_exit(0);
}
