/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor: the privileged half (see monitor.h for its files).
 *
 * It never reads a byte a guest wrote.  It owns the policy, the ask and
 * start interfaces, accepts guest connections on the per-qube sockets (so
 * the source of a call is fixed here, by which socket the connection
 * arrived on, or by the peer CID) and opens connections to target agents.
 * Connections are handed to the sandbox with SCM_RIGHTS; the sandbox sends
 * back the caller's request, which is validated again here before the
 * policy sees it.  This file: the call table, requests from the sandbox,
 * routing, signals, timers and the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "monitor.h"

/* ---- small helpers ------------------------------------------------------------- */

int mon_ep_add(struct monitor *m, int fd, uint32_t events, struct mon_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void mon_ep_mod(struct monitor *m, int fd, uint32_t events, struct mon_watch *w)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev);
}

struct mon_source *mon_source_get(struct monitor *m, const char *name, bool create)
{
	struct mon_source *s;

	for (s = m->sources; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if (!create)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->next = m->sources;
	m->sources = s;
	return s;
}

struct mon_call *mon_call_find(struct monitor *m, uint32_t id)
{
	for (struct mon_call *c = m->calls; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

void mon_offered_free(struct mon_call *c)
{
	for (size_t i = 0; i < c->n_offered; i++)
		free(c->offered[i]);
	free(c->offered);
	c->offered = NULL;
	c->n_offered = 0;
}

void mon_call_remove(struct monitor *m, struct mon_call *c)
{
	struct mon_call **pp;
	struct mon_source *s = mon_source_get(m, c->source, false);

	for (pp = &m->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (s && s->n_calls > 0)
		s->n_calls--;
	if (m->n_calls > 0)
		m->n_calls--;
	mon_offered_free(c);
	free(c->reason);
	free(c);
	if (m->n_calls == 0)
		malloc_trim(0); /* idle: give memory back (checked by the load test) */
}

void mon_call_release(struct monitor *m, struct mon_call *c)
{
	int r;

	if (c->start) {
		/* a START or DISPVM still open: cancel it; the answer (or the
		 * start timeout) ends the call for good */
		mon_start_cancel(c->start);
		c->phase = MC_GONE;
		return;
	}
	if (c->dispvm[0]) {
		r = mon_start_request(m, START_DESTROY, c->id, c->dispvm);
		if (r == 0) {
			c->phase = MC_GONE;
			return;
		}
		bk_log("cannot destroy disposable %s: start interface: %s", c->dispvm,
		       strerror(-r));
	}
	mon_call_remove(m, c);
}

void mon_set_reason(struct mon_call *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(c->reason);
	c->reason = s;
}

void mon_ipc_queue(struct monitor *m, const struct bk_ipc *rec, int fd)
{
	int r = bk_ipc_queue_push(&m->ipc_out, rec, fd);

	if (r < 0) {
		bk_log("fatal: cannot queue a record for the sandbox: %s", strerror(-r));
		m->quit = true;
		m->exit_status = 1;
		return;
	}
	r = bk_ipc_queue_flush(&m->ipc_out, m->ipc_fd);
	if (r == -EAGAIN && !m->ipc_out_armed) {
		mon_ep_mod(m, m->ipc_fd, EPOLLIN | EPOLLOUT, &m->ipc_w);
		m->ipc_out_armed = true;
	} else if (r < 0 && r != -EAGAIN) {
		bk_log("fatal: sandbox socket: %s", strerror(-r));
		m->quit = true;
		m->exit_status = 1;
	}
}

/* The one log line of a call, written when its outcome is known. */
void mon_call_log(struct mon_call *c, const char *result)
{
	char reason[600], line[6144];

	bk_quote(reason, sizeof(reason), c->reason ? c->reason : "");
	/* target= is the resolved qube, target_form= the policy's form of it
	 * (uuid:UUID when a rule or the caller wrote it so); both "-" while
	 * there is none */
	snprintf(line, sizeof(line),
		 "call id=%u source=%s target=%s requested=%s service=%s argument=%s decision=%s "
		 "result=%s rule=%s reason=%s target_form=%s",
		 c->id, c->source, c->target[0] ? c->target : "-", c->requested, c->service,
		 c->argument[0] ? c->argument : "-", c->decision_word, result,
		 c->rule[0] ? c->rule : "-", reason, c->target_form[0] ? c->target_form : "-");
	/* calls that reached their target are always logged (real work,
	 * bounded by the caps); refusals, failures and abandoned calls count
	 * against the source's log budget */
	if (strcmp(result, "started") == 0)
		bk_log("%s", line);
	else
		bk_log_source(c->source, "%s", line);
}

/* Refusal or failure: tell the sandbox, log, and wait for its CLOSED. */
void mon_call_fail(struct monitor *m, struct mon_call *c, enum qrpc_call_status status)
{
	struct bk_ipc rec = {
		.type = BK_IPC_DECISION,
		.id = c->id,
		.status = status,
		.exit_code = status == QRPC_CALL_REFUSED ? QRPC_EXIT_REFUSED : QRPC_EXIT_RPC_FAILED,
	};

	mon_call_log(c, status == QRPC_CALL_REFUSED ? "refused" : "failed");
	mon_offered_free(c);
	c->phase = MC_RUNNING;
	mon_ipc_queue(m, &rec, -1);
}

/* ---- agents and the start interface ------------------------------------------------ */

/* Opens QUBES_DIR/TARGET/vsock as an O_PATH fd without following a
 * symlink anywhere below QUBES_DIR (a qube directory or socket that is a
 * symlink would route a call meant for TARGET into another qube), and
 * checks that it belongs there: a socket with one link (a hard link of
 * another qube's socket would be the same detour), owned by root or by
 * the broker's own user (qube-vsockd runs as root, started by qubed; the
 * tests run everything as one user).  0 and *ret_fd; -ENOENT when there
 * is none (not running); -ELOOP for a symlink, -EPERM for a wrong type,
 * owner or link count. */
static int open_target_socket(struct monitor *m, const char *target, int *ret_fd)
{
	struct stat st;
	int dfd, qfd, sfd, r;

	dfd = open(m->cfg->qubes_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	qfd = openat(dfd, target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	r = qfd < 0 ? -errno : 0;
	close(dfd);
	if (r == -ENOTDIR) {
		/* a symlink (O_NOFOLLOW) or a file where the directory should be */
		r = -ELOOP;
	}
	if (r < 0)
		return r;
	/* O_PATH | O_NOFOLLOW opens a symlink itself, which fstat shows */
	sfd = openat(qfd, "vsock", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	r = sfd < 0 ? -errno : 0;
	close(qfd);
	if (r < 0)
		return r;
	if (fstat(sfd, &st) < 0) {
		r = -errno;
		goto err_close;
	}
	if (S_ISLNK(st.st_mode)) {
		r = -ELOOP;
		goto err_close;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_nlink != 1 ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		r = -EPERM;
		goto err_close;
	}
	*ret_fd = sfd;
	return 0;
err_close:
	close(sfd);
	return r;
}

/* Opens a connection to TARGET's agent.  0 and *ret_fd, *ret_mode; -EAGAIN
 * to try again shortly; another negative errno when it is not running. */
static int agent_connect(struct monitor *m, const char *target, int *ret_fd, uint32_t *ret_mode)
{
	int fd, r;

	if (m->cfg->vsock_map && strcmp(target, BK_ADMIN_QUBE) != 0) {
		uint32_t cid = mon_vsock_cid(m, target);
		struct sockaddr_vm sa = {
			.svm_family = AF_VSOCK,
			.svm_cid = cid,
			.svm_port = QRPC_PORT_AGENT,
		};

		if (cid == 0)
			return -ENOENT;
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
			r = -errno;
			close(fd);
			return r;
		}
		*ret_fd = fd;
		*ret_mode = BK_AGENT_VSOCK;
		return 0;
	}

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[32];
	int n, sockfd = -1;

	if (strcmp(target, BK_ADMIN_QUBE) == 0) {
		/* the host service runner: a path the administrator gave */
		if (!m->cfg->adminvm_socket)
			return -ENOTCONN;
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->cfg->adminvm_socket);
	} else {
		r = open_target_socket(m, target, &sockfd);
		if (r < 0)
			return r;
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", sockfd);
	}
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		if (sockfd >= 0)
			close(sockfd);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		if (sockfd >= 0)
			close(sockfd);
		return r;
	}
	mon_set_stream_buffers(fd);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (sockfd >= 0)
		close(sockfd);
	if (r < 0) {
		close(fd);
		return r;
	}
	n = snprintf(line, sizeof(line), "CONNECT %u\n", QRPC_PORT_AGENT);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		r = errno ? -errno : -EIO;
		close(fd);
		return r == -EAGAIN ? -EIO : r;
	}
	*ret_fd = fd;
	*ret_mode = BK_AGENT_HYBRID;
	return 0;
}

/* The target is known: NAME as resolved (what the call is routed by),
 * FORM as the policy wrote it (logged only).  Start or connect to it. */
void mon_call_go(struct monitor *m, struct mon_call *c, const char *name, const char *form)
{
	int r;

	snprintf(c->target_form, sizeof(c->target_form), "%s", form);
	if (strncmp(name, "@dispvm:", 8) == 0) {
		const char *tmpl = name + 8;

		/* by the template's name: the start interface never sees a
		 * uuid: form */
		if (strlen(tmpl) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(tmpl) ||
		    strcmp(tmpl, BK_ADMIN_QUBE) == 0) {
			mon_set_reason(c, "invalid disposable template %s", tmpl);
			mon_call_fail(m, c, QRPC_CALL_FAILED);
			return;
		}
		snprintf(c->target, sizeof(c->target), "@dispvm:%s", tmpl);
		r = mon_start_request(m, START_DISPVM, c->id, tmpl);
		if (r < 0) {
			mon_set_reason(c, "cannot create a disposable from %s: start interface: %s", tmpl,
				   r == -ENOTCONN ? "not configured" : strerror(-r));
			mon_call_fail(m, c, QRPC_CALL_FAILED);
			return;
		}
		c->phase = MC_STARTING;
		return;
	}
	if (strcmp(name, "@adminvm") == 0 || strcmp(name, BK_ADMIN_QUBE) == 0) {
		/* the host is not a qube: its services run in the host service
		 * runner, never in a qube directory or through the start
		 * interface */
		if (!m->cfg->adminvm_socket) {
			mon_set_reason(c, "target @adminvm cannot be reached by this broker "
					  "(no --adminvm-socket)");
			mon_call_fail(m, c, QRPC_CALL_FAILED);
			return;
		}
		snprintf(c->target, sizeof(c->target), "%s", BK_ADMIN_QUBE);
		c->autostart = false;
		c->phase = MC_CONNECTING;
		c->deadline = bk_now_ms() + m->cfg->connect_timeout_ms;
		mon_call_try_connect(m, c);
		return;
	}
	/* a name, resolved: never a uuid: form or another keyword */
	if (name[0] == '@' || strlen(name) > QRPC_MAX_QUBE || !qrpc_qube_name_is_valid(name)) {
		mon_set_reason(c, "target %s cannot be reached by this broker", name);
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	snprintf(c->target, sizeof(c->target), "%s", name);
	c->phase = MC_CONNECTING;
	c->deadline = bk_now_ms() + m->cfg->connect_timeout_ms;
	mon_call_try_connect(m, c);
}

/* An error of agent_connect() that means "TARGET is not running": no
 * socket (hybrid: ENOENT, ECONNREFUSED) or, on AF_VSOCK, no VM with the
 * CID: vhost_vsock fails the connect() at once with ENODEV (measured by
 * tests/guest/broker-vsock-test.sh; a VM whose agent does not listen
 * resets the connection later, in the sandbox). */
static bool target_not_running(int r)
{
	return r == -ECONNREFUSED || r == -ENOENT || r == -ENODEV;
}

void mon_call_try_connect(struct monitor *m, struct mon_call *c)
{
	uint32_t mode = 0;
	int fd = -1, r;

	r = agent_connect(m, c->target, &fd, &mode);
	if (r == 0) {
		struct bk_ipc rec = {
			.type = BK_IPC_DECISION,
			.id = c->id,
			.status = QRPC_CALL_ALLOWED,
			.agent_mode = mode,
		};

		snprintf(rec.source, sizeof(rec.source), "%s", c->source);
		snprintf(rec.target, sizeof(rec.target), "%s", c->target);
		snprintf(rec.service, sizeof(rec.service), "%s", c->service);
		snprintf(rec.argument, sizeof(rec.argument), "%s", c->argument);
		snprintf(rec.requested_target, sizeof(rec.requested_target), "%s",
			 c->requested_norm);
		snprintf(rec.user, sizeof(rec.user), "%s", c->user);
		mon_call_log(c, "started");
		c->phase = MC_RUNNING;
		c->started = true;
		mon_ipc_queue(m, &rec, fd);
		return;
	}
	if (r == -EAGAIN && bk_now_ms() < c->deadline) {
		/* agent's backlog is full: try again shortly */
		c->retry_at = bk_now_ms() + 20;
		return;
	}
	if (c->start_tried && bk_now_ms() < c->deadline && target_not_running(r)) {
		/* just started: its agent may need a moment */
		c->retry_at = bk_now_ms() + 50;
		return;
	}
	if (!c->start_tried && c->autostart && target_not_running(r)) {
		c->start_tried = true;
		r = mon_start_request(m, START_QUBE, c->id, c->target);
		if (r == 0) {
			c->phase = MC_STARTING;
			return;
		}
		mon_set_reason(c, "target %s is not running and cannot be started: start interface: %s",
			   c->target, r == -ENOTCONN ? "not configured" : strerror(-r));
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	if (r == -ELOOP || r == -EPERM)
		mon_set_reason(c, "target %s: %s/%s/vsock is %s; refusing to connect", c->target,
			       m->cfg->qubes_dir, c->target,
			       r == -ELOOP ? "or goes through a symlink"
					   : "not a socket of its own (one link) owned by root or "
					     "the broker's user");
	else if (strcmp(c->target, BK_ADMIN_QUBE) == 0)
		mon_set_reason(c, "the host service runner at %s is not running (%s)",
			       m->cfg->adminvm_socket, strerror(-r));
	else
		mon_set_reason(c, "target %s is not running (%s)", c->target, strerror(-r));
	mon_call_fail(m, c, QRPC_CALL_FAILED);
}

/* ---- requests from the sandbox ---------------------------------------------------------- */

/* Why mon_prompt_ask() could not ask (R < 0): the refusal's reason. */
static void set_ask_refusal(struct monitor *m, struct mon_call *c, int r, size_t n_targets)
{
	switch (r) {
	case -ENOTCONN:
		mon_set_reason(c, "ask: no prompt program is connected");
		break;
	case -EUSERS:
		mon_set_reason(c, "ask: %u questions from %s are open already (the cap)",
			       m->cfg->max_asks_per_qube, c->source);
		break;
	case -ENOBUFS:
		mon_set_reason(c, "ask: the prompt program is not reading its questions");
		break;
	case -E2BIG:
		mon_set_reason(c, "ask: the question would be longer than %u bytes (%zu targets "
				  "offered)", BK_ASK_LINE_MAX, n_targets);
		break;
	default:
		mon_set_reason(c, "ask: %s", strerror(-r));
		break;
	}
}

static void on_request(struct monitor *m, const struct bk_ipc *untrusted_rec)
{
	struct mon_call *c = mon_call_find(m, untrusted_rec->id);
	struct qpol_decision d;
	struct qpol_request req;
	int r;

	if (!c || c->phase != MC_WAIT_REQUEST) {
		bk_log("sandbox sent a request for call %u which is not waiting for one", untrusted_rec->id);
		return;
	}
	/* the sandbox is the part that may be compromised: its record is
	 * guest-derived data and is checked again here */
	if (!bk_string_fits(untrusted_rec->target, sizeof(untrusted_rec->target)) ||
	    !bk_string_fits(untrusted_rec->service, sizeof(untrusted_rec->service)) ||
	    !bk_string_fits(untrusted_rec->argument, sizeof(untrusted_rec->argument)) ||
	    !qrpc_target_is_valid(untrusted_rec->target) || !qrpc_service_name_is_valid(untrusted_rec->service) ||
	    !qrpc_argument_is_valid(untrusted_rec->argument)) {
		snprintf(c->requested, sizeof(c->requested), "?");
		snprintf(c->service, sizeof(c->service), "?");
		snprintf(c->decision_word, sizeof(c->decision_word), "deny");
		mon_set_reason(c, "sandbox passed an invalid request");
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	snprintf(c->requested, sizeof(c->requested), "%s", untrusted_rec->target);
	c->requested_norm[0] = '\0'; /* only ever the policy's form, below */
	snprintf(c->service, sizeof(c->service), "%s", untrusted_rec->service);
	snprintf(c->argument, sizeof(c->argument), "%s", untrusted_rec->argument);
	snprintf(c->decision_word, sizeof(c->decision_word), "deny");

	if (m->policy_error) {
		mon_set_reason(c, "%s", m->policy_error);
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	if (!qpol_system_has_domain(m->system, c->source)) {
		mon_set_reason(c, "source %s is not in the system info", c->source);
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		return;
	}
	req = (struct qpol_request){
		.service = c->service,
		.argument = c->argument,
		.source = c->source,
		.target = c->requested,
	};
	memset(&d, 0, sizeof(d));
	r = qpol_evaluate(m->policy, m->system, &req, &d);
	if (r < 0) {
		mon_set_reason(c, "policy evaluation failed: %s", strerror(-r));
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		return;
	}
	/* what the service sees as QUBE_REQUESTED_TARGET (and the prompt as
	 * the requested target) is the policy's verified form, as Qubes
	 * passes it (an unknown qube or uuid: is @default, a known uuid:
	 * stays uuid:UUID); the log keeps what was asked.  Never the
	 * caller's text: without a valid form the call is not made. */
	if (d.requested_target && strlen(d.requested_target) <= QRPC_MAX_TARGET &&
	    qrpc_target_is_valid(d.requested_target))
		snprintf(c->requested_norm, sizeof(c->requested_norm), "%s", d.requested_target);
	else if (d.result != QPOL_RESULT_DENY) {
		snprintf(c->decision_word, sizeof(c->decision_word), "%s",
			 qpol_result_to_string(d.result));
		mon_set_reason(c, "policy gave no valid requested target");
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		qpol_decision_finish(&d);
		return;
	}
	if (d.rule_file)
		snprintf(c->rule, sizeof(c->rule), "%s:%u", d.rule_file, d.rule_line);
	mon_set_reason(c, "%s", d.reason ? d.reason : "");
	c->autostart = d.autostart;
	/* libqpolicy refuses a policy with an invalid user= at load, so this
	 * holds; checked again because the value goes to the target */
	if (d.user && (!qrpc_user_name_is_valid(d.user) || strlen(d.user) > QRPC_MAX_USER)) {
		mon_set_reason(c, "invalid user= value in the rule");
		mon_call_fail(m, c, QRPC_CALL_FAILED);
		qpol_decision_finish(&d);
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", d.user ? d.user : "");
	switch (d.result) {
	case QPOL_RESULT_ALLOW:
		snprintf(c->decision_word, sizeof(c->decision_word), "allow");
		/* routed by the resolved name (uuid: references, target=
		 * redirects and @dispvm:uuid: resolved by libqpolicy), never
		 * by the form the caller or the rule wrote */
		if (!d.target || !d.target_name) {
			mon_set_reason(c, "policy allowed without a target");
			mon_call_fail(m, c, QRPC_CALL_FAILED);
			break;
		}
		mon_call_go(m, c, d.target_name, d.target);
		break;
	case QPOL_RESULT_ASK:
		snprintf(c->decision_word, sizeof(c->decision_word), "ask");
		r = mon_prompt_ask(m, c, &d);
		if (r < 0) {
			mon_offered_free(c);
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			set_ask_refusal(m, c, r, d.n_targets);
			mon_call_fail(m, c, QRPC_CALL_REFUSED);
		}
		break;
	default:
		mon_call_fail(m, c, QRPC_CALL_REFUSED);
		break;
	}
	qpol_decision_finish(&d);
}

static void on_closed(struct monitor *m, const struct bk_ipc *rec)
{
	struct mon_call *c = mon_call_find(m, rec->id);

	if (!c) {
		bk_log("sandbox closed unknown call %u", rec->id);
		return;
	}
	if (c->phase == MC_GONE) {
		bk_log("sandbox closed call %u twice", rec->id);
		return;
	}
	if (c->shed && c->phase != MC_RUNNING)
		; /* counted in the line of the fd episode that shed it */
	else if (c->phase == MC_WAIT_REQUEST)
		bk_log_source(c->source, "connection id=%u from %s closed before a valid request",
			      c->id, c->source);
	else if (c->phase != MC_RUNNING)
		mon_call_log(c, "abandoned");
	else if (c->started && rec->exit_code < BK_END_NO_EXIT)
		bk_log("call id=%u ended exit=%u", c->id, rec->exit_code);
	else if (c->started)
		bk_log("call id=%u ended without an exit code", c->id);
	if (c->phase == MC_ASKING)
		mon_ask_end(m, c, true); /* CANCEL: the question is withdrawn */
	mon_call_release(m, c);
}

static void on_ipc_event(struct monitor *m, uint32_t events)
{
	if (events & EPOLLOUT) {
		int r = bk_ipc_queue_flush(&m->ipc_out, m->ipc_fd);

		if (r == 0) {
			mon_ep_mod(m, m->ipc_fd, EPOLLIN, &m->ipc_w);
			m->ipc_out_armed = false;
		} else if (r != -EAGAIN) {
			bk_log("fatal: sandbox socket: %s", strerror(-r));
			m->quit = true;
			m->exit_status = 1;
			return;
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (int k = 0; k < 256; k++) {
		struct bk_ipc rec;
		int fd = -1;
		int r = bk_ipc_recv(m->ipc_fd, &rec, &fd);

		if (r == -EAGAIN)
			return;
		if (r == -EPIPE || r == -ECONNRESET) {
			/* the child's exit status is reported through SIGCHLD */
			epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->ipc_fd, NULL);
			return;
		}
		if (r < 0) {
			bk_log("sandbox sent a malformed record: %s", strerror(-r));
			continue;
		}
		if (fd >= 0) {
			/* the sandbox never passes fds to us */
			close(fd);
			bk_log("sandbox sent an unexpected fd; ignored");
		}
		switch (rec.type) {
		case BK_IPC_REQUEST:
			on_request(m, &rec); /* validated in there */
			break;
		case BK_IPC_CLOSED:
			on_closed(m, &rec);
			break;
		default:
			bk_log("sandbox sent a record of unknown type %u", rec.type);
			break;
		}
	}
}

static void on_signal(struct monitor *m)
{
	struct signalfd_siginfo si;

	while (read(m->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int status;
			pid_t p;

			while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
				if (p != m->child)
					continue;
				m->child = -1;
				m->quit = true;
				if (WIFSIGNALED(status)) {
					int sig = WTERMSIG(status);

					bk_log("sandbox process %d killed by signal %d (%s)", (int)p, sig,
					       sig == SIGSYS ? "SIGSYS" : strsignal(sig));
					m->exit_status = m->cfg->selftest_seccomp && sig == SIGSYS ? 0 : 1;
				} else {
					bk_log("sandbox process %d exited with status %d", (int)p,
					       WEXITSTATUS(status));
					m->exit_status = 1;
				}
			}
		} else if (si.ssi_signo == SIGHUP) {
			bk_log("SIGHUP: reloading the policy and the system info%s",
			       m->cfg->vsock_map ? " and the vsock map" : "");
			m->reload_at = m->map_reload_at = bk_now_ms();
		} else {
			bk_log("signal %u: shutting down", si.ssi_signo);
			m->quit = true;
		}
	}
}

static void on_tick(struct monitor *m)
{
	uint64_t now = bk_now_ms();
	struct mon_call *c, *cn;
	struct mon_start *st, *sn;

	bk_log_source_flush();
	mon_accept_tick(m);
	if (m->reload_at && now >= m->reload_at) {
		m->reload_at = 0;
		mon_watches_add(m);
		mon_policy_reload(m);
		mon_deps_sync(m);
	}
	if (m->map_reload_at && now >= m->map_reload_at) {
		m->map_reload_at = 0;
		if (m->cfg->vsock_map)
			(void)mon_vsock_map_load(m); /* logged; an invalid map refuses all */
	}
	for (c = m->calls; c; c = cn) {
		cn = c->next;
		if (c->phase == MC_CONNECTING && c->retry_at && now >= c->retry_at) {
			c->retry_at = 0;
			mon_call_try_connect(m, c);
		} else if (c->phase == MC_ASKING && now >= c->deadline) {
			mon_ask_end(m, c, true);
			snprintf(c->decision_word, sizeof(c->decision_word), "ask-deny");
			mon_set_reason(c, "the prompt program did not answer in time");
			mon_call_fail(m, c, QRPC_CALL_REFUSED);
		}
	}
	for (st = m->starts; st; st = sn) {
		sn = st->next;
		if (now >= st->deadline) {
			mon_start_on_reply(m, st, NULL);
			mon_start_free(m, st);
		}
	}
}

static int spawn_sandbox(struct monitor *m)
{
	int sv[2];
	pid_t pid;
	int buf = 4 * 1024 * 1024;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		bk_sandbox_main(m->cfg, sv[1]);
	}
	close(sv[1]);
	m->child = pid;
	m->ipc_fd = sv[0];
	if (fcntl(m->ipc_fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	m->ipc_w = (struct mon_watch){ .kind = MK_IPC, .owner = m };
	return mon_ep_add(m, m->ipc_fd, EPOLLIN, &m->ipc_w);
}

/* Raises the fd limit for the caps, then sizes the caps from the limit
 * actually got, so that running out of fds is the exception it should be.
 * Each call holds at most two fds in the monitor (a start-interface
 * connection, and the caller's or the agent's fd until the sandbox took it)
 * and two in the sandbox (caller and agent), which has the same limit; 3
 * per call are counted, and BK_FD_RESERVE for the listeners (one per qube
 * on the unix transport), prompts, inotify, epoll, signalfd and the log.
 * A lowered --max-total lowers --max-per-qube in proportion, so that one
 * qube still cannot take every slot.  Logged either way. */
#define BK_FD_RESERVE 256u
#define BK_FD_PER_CALL 3u

static void size_caps(struct bk_config *cfg)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)cfg->max_total * BK_FD_PER_CALL + BK_FD_RESERVE;
	unsigned fit, given_total = cfg->max_total;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		bk_log("getrlimit: %s; caps as given", strerror(errno));
		return;
	}
	if (rl.rlim_max < want && geteuid() == 0)
		rl.rlim_max = want;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		bk_log("cannot raise the fd limit to %llu: %s", (unsigned long long)want,
		       strerror(errno));
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	if (rl.rlim_cur < BK_FD_RESERVE + BK_FD_PER_CALL) {
		fit = 1;
		bk_log("fd limit %llu is very low; allowing one call at a time",
		       (unsigned long long)rl.rlim_cur);
	} else {
		rlim_t f = (rl.rlim_cur - BK_FD_RESERVE) / BK_FD_PER_CALL;

		fit = f < cfg->max_total ? (unsigned)f : cfg->max_total;
	}
	if (fit < cfg->max_total) {
		unsigned per =
			(unsigned)((unsigned long long)cfg->max_per_qube * fit / given_total);

		cfg->max_total = fit;
		if (per < 1)
			per = 1;
		if (per < cfg->max_per_qube)
			cfg->max_per_qube = per;
		bk_log("fd limit %llu: at most %u calls at once (--max-total %u lowered), %u per "
		       "qube", (unsigned long long)rl.rlim_cur, cfg->max_total, given_total,
		       cfg->max_per_qube);
	}
	if (cfg->max_per_qube > cfg->max_total)
		cfg->max_per_qube = cfg->max_total;
	bk_log("caps: %u calls at once, %u per qube, %u questions per qube at the prompt, "
	       "%u log lines per qube per 10 s (fd limit %llu)", cfg->max_total,
	       cfg->max_per_qube, cfg->max_asks_per_qube, cfg->log_per_qube,
	       (unsigned long long)rl.rlim_cur);
}

int bk_monitor_main(const struct bk_config *given)
{
	struct bk_config sized = *given;
	const struct bk_config *cfg = &sized;
	struct monitor mm = { .cfg = cfg, .ipc_fd = -1, .child = -1, .ino_fd = -1, .sig_fd = -1,
			      .ask_fd = -1, .wd_policy = -1, .wd_sysinfo = -1, .wd_qubes = -1, .wd_host = -1,
			      .wd_vsock_map = -1 };
	struct monitor *m = &mm;
	sigset_t mask;
	int r;

	m->exit_status = 1; /* until set up */
	size_caps(&sized);
	bk_log_set_source_limit(cfg->log_per_qube);
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0) {
		bk_log("epoll: %s", strerror(errno));
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	m->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	m->sig_w = (struct mon_watch){ .kind = MK_SIGNAL, .owner = m };
	if (m->sig_fd < 0 || mon_ep_add(m, m->sig_fd, EPOLLIN, &m->sig_w) < 0) {
		bk_log("signalfd: %s", strerror(errno));
		return 1;
	}

	/* the sandbox first, so that it inherits nothing but its socket and the log */
	r = spawn_sandbox(m);
	if (r < 0) {
		bk_log("cannot start the sandbox process: %s", strerror(-r));
		return 1;
	}

	m->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	m->ino_w = (struct mon_watch){ .kind = MK_INOTIFY, .owner = m };
	if (m->ino_fd < 0 || mon_ep_add(m, m->ino_fd, EPOLLIN, &m->ino_w) < 0) {
		bk_log("inotify: %s", strerror(errno));
		goto out;
	}
	mon_watches_add(m);
	if (mon_watch_file(m, cfg->system_info, m->sysinfo_name, sizeof(m->sysinfo_name),
		       &m->wd_sysinfo) < 0)
		goto out;
	mon_policy_reload(m);
	mon_deps_sync(m);

	if (cfg->vsock_map) {
		/* qubed rewrites the map as qubes start and stop (rename into
		 * place); it is reloaded like the policy */
		if (mon_watch_file(m, cfg->vsock_map, m->vsock_map_name, sizeof(m->vsock_map_name),
			       &m->wd_vsock_map) < 0)
			goto out;
		r = mon_vsock_map_load(m);
		if (r == 0)
			r = mon_listener_add_vsock(m);
		if (r < 0) {
			bk_log("vsock transport: %s", strerror(-r));
			goto out;
		}
		if (cfg->host_calls_dir && mon_listener_add_host(m) < 0)
			goto out;
	} else {
		if (cfg->host_calls_dir && mon_listener_add_host(m) < 0)
			goto out;
		m->wd_qubes = inotify_add_watch(m->ino_fd, cfg->qubes_dir,
						IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
							IN_ONLYDIR);
		if (m->wd_qubes < 0) {
			bk_log("%s: %s", cfg->qubes_dir, strerror(errno));
			goto out;
		}
		mon_listeners_rescan(m);
	}
	if (cfg->host_calls_dir) {
		m->wd_host = inotify_add_watch(m->ino_fd, cfg->host_calls_dir,
					       IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR);
		if (m->wd_host < 0)
			bk_log("inotify on %s: %s (a removed host-call socket is not made again)",
			       cfg->host_calls_dir, strerror(errno));
	}
	if (cfg->ask_socket) {
		r = mon_ask_listen(m);
		if (r < 0) {
			bk_log("ask socket %s: %s", cfg->ask_socket, strerror(-r));
			goto out;
		}
	}
	bk_log("ready (pid %d, sandbox pid %d)", (int)getpid(), (int)m->child);
	m->exit_status = 0;

	while (!m->quit) {
		struct epoll_event evs[64];
		int timeout = 1000;
		int n;

		for (struct mon_call *c = m->calls; c; c = c->next)
			if (c->retry_at || c->phase == MC_ASKING) {
				timeout = 20;
				break;
			}
		if (m->reload_at || m->map_reload_at || m->starts || m->accept_resume_at)
			timeout = 20;
		n = epoll_wait(m->epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			bk_log("epoll_wait: %s", strerror(errno));
			m->exit_status = 1;
			break;
		}
		for (int i = 0; i < n && !m->quit; i++) {
			struct mon_watch *w = evs[i].data.ptr;

			switch (w->kind) {
			case MK_LISTENER:
				mon_on_accept(m, w->owner);
				break;
			case MK_IPC:
				on_ipc_event(m, evs[i].events);
				break;
			case MK_INOTIFY:
				mon_on_inotify(m);
				break;
			case MK_SIGNAL:
				on_signal(m);
				break;
			case MK_ASK_LISTEN:
				mon_on_ask_accept(m);
				break;
			case MK_ASK_CLIENT:
				mon_on_prompt_event(m, w->owner, evs[i].events);
				break;
			case MK_START:
				mon_on_start_event(m, w->owner);
				break;
			}
		}
		on_tick(m);
	}
out:
	if (m->child > 0) {
		int status;

		kill(m->child, SIGKILL);
		waitpid(m->child, &status, 0);
	}
	while (m->listeners) {
		struct mon_listener *l = m->listeners;

		m->listeners = l->next;
		mon_listener_close(m, l);
	}
	while (m->prompts) {
		struct mon_prompt *p = m->prompts;

		m->prompts = p->next;
		close(p->fd);
		bk_buf_finish(&p->out);
		free(p);
	}
	while (m->starts)
		mon_start_free(m, m->starts);
	while (m->calls)
		mon_call_remove(m, m->calls);
	while (m->sources) {
		struct mon_source *s = m->sources;

		m->sources = s->next;
		free(s);
	}
	if (m->ask_fd >= 0) {
		close(m->ask_fd);
		unlink(cfg->ask_socket);
	}
	bk_ipc_queue_finish(&m->ipc_out);
	free(m->vsock_map);
	free(m->policy_error);
	qpol_policy_free(m->policy);
	free(m->dep_watches);
	qpol_system_free(m->system);
	if (m->ipc_fd >= 0)
		close(m->ipc_fd);
	if (m->ino_fd >= 0)
		close(m->ino_fd);
	if (m->sig_fd >= 0)
		close(m->sig_fd);
	close(m->epfd);
	bk_log("exiting with status %d", m->exit_status);
	return m->exit_status;
}

