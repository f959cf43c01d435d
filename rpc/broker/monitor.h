/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker monitor internals, shared by its files:
 *
 *   monitor.c  the event loop, the call table, requests from the sandbox,
 *              routing a decision to the target's agent
 *   listen.c   the per-qube sockets (unix transport), the vsock map and
 *              listener, accepting callers and enforcing the caps
 *   ask.c      the ask interface (prompt programs)
 *   start.c    the start interface (qubed starts qubes and disposables)
 *   reload.c   loading the policy and the system info, inotify watches
 *
 * The monitor never reads a byte a guest wrote; see broker.h and
 * docs/broker.md.
 */
#ifndef QUBE_BROKER_MONITOR_H
#define QUBE_BROKER_MONITOR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "broker.h"
#include "qpolicy.h"

enum mon_kind {
	MK_LISTENER = 1,
	MK_IPC,
	MK_INOTIFY,
	MK_SIGNAL,
	MK_ASK_LISTEN,
	MK_ASK_CLIENT,
	MK_START,
};

struct mon_watch {
	enum mon_kind kind;
	void *owner;
};

struct mon_listener {
	struct mon_watch w;
	int fd;
	bool vsock;               /* AF_VSOCK: source from the peer CID */
	bool host;                /* --host-calls: source the admin qube */
	char name[QRPC_MAX_QUBE + 1]; /* unix: the qube whose socket this is */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ino_t ino;
	struct mon_listener *next;
};

struct mon_prompt {
	struct mon_watch w;
	int fd;
	char in[BK_LINE_MAX];
	size_t in_len;
	struct bk_buf out;
	struct mon_prompt *next;
};

enum mon_phase {
	MC_WAIT_REQUEST = 1,
	MC_ASKING,
	MC_STARTING,
	MC_CONNECTING,
	MC_RUNNING, /* decision sent; waiting for CLOSED */
	MC_GONE,    /* the sandbox is done with it, but a request to the start
		     * interface is still open for it (a cancelled START or
		     * DISPVM, the DESTROY of its disposable): kept, and counted
		     * against its source's caps, until that is answered or
		     * times out */
};

struct mon_call {
	uint32_t id;
	enum mon_phase phase;
	char source[QRPC_MAX_QUBE + 1];
	char requested[QRPC_MAX_TARGET + 1];  /* as the caller asked (logged) */
	char requested_norm[QRPC_MAX_TARGET + 1]; /* as the policy resolved it:
					       * QUBE_REQUESTED_TARGET, ASK */
	char service[QRPC_MAX_SERVICE + 1];
	char argument[QRPC_MAX_ARGUMENT + 1];
	/* the qube the call goes to, as resolved (libqpolicy's target_name,
	 * or an ask answer through qpol_system_resolve_target()): a name,
	 * "dom0", or "@dispvm:TEMPLATE" until the disposable has its name */
	char target[QRPC_MAX_TARGET + 1];
	/* the same target in the form the policy reported it (the decision's
	 * target, or the offered target the prompt chose), which may be
	 * "uuid:UUID" or "@dispvm:uuid:UUID": logged, never routed by */
	char target_form[QRPC_MAX_TARGET + 1];
	char dispvm[QRPC_MAX_QUBE + 1]; /* disposable created for this call */
	char decision_word[16];         /* allow, deny, ask-allow, ask-deny */
	char user[QRPC_MAX_USER + 1];   /* user= of the rule, "" for none */
	char rule[PATH_MAX + 16];
	char *reason;
	bool autostart, start_tried;
	bool shed;                 /* ended to free fds (mon_accept_pause): no line of its own */
	bool started;              /* the agent connection went to the sandbox */
	struct mon_prompt *prompt; /* ASKING */
	struct mon_start *start;   /* the start-interface request open for it */
	char **offered;            /* ASKING: copy of decision targets */
	size_t n_offered;
	uint64_t deadline;
	uint64_t retry_at;
	struct mon_call *next;
};

enum start_op { START_QUBE, START_DISPVM, START_DESTROY };

struct mon_start {
	struct mon_watch w;
	int fd;
	enum start_op op;
	uint32_t call_id; /* the call it is for (counted against its caps) */
	bool cancelled;   /* the caller left: our side was shut down */
	char arg[QRPC_MAX_QUBE + 1];
	char in[BK_LINE_MAX];
	size_t in_len;
	uint64_t deadline;
	struct mon_start *next;
};

struct mon_source {
	char name[QRPC_MAX_QUBE + 1];
	unsigned n_calls;  /* calls open, pending starts of departed callers included */
	unsigned n_asks;   /* questions of its calls open at the prompt */
	struct mon_source *next;
};

struct mon_vsock_entry {
	uint32_t cid;
	char name[QRPC_MAX_QUBE + 1];
};

/* One thing in a watched directory whose change means a reload: a file
 * NAME, or with NAME empty any *.policy file (an !include-dir). */
struct mon_dep_watch {
	int wd;
	char dir[PATH_MAX];
	char name[NAME_MAX + 1];
};

struct monitor {
	const struct bk_config *cfg;
	int epfd;
	int ipc_fd;
	pid_t child;
	struct mon_watch ipc_w, ino_w, sig_w, ask_w;
	int ino_fd, sig_fd, ask_fd;
	int wd_policy, wd_sysinfo, wd_qubes, wd_vsock_map, wd_host;
	char vsock_map_name[NAME_MAX + 1];
	/* directories of what the policy includes (deps_sync) */
	struct mon_dep_watch *dep_watches;
	size_t n_dep_watches;
	char sysinfo_name[NAME_MAX + 1];
	struct bk_ipc_queue ipc_out;
	bool ipc_out_armed;

	struct qpol_policy *policy;
	struct qpol_system *system;
	char *policy_error; /* why everything is denied, or NULL */
	unsigned generation;
	uint64_t reload_at; /* 0: no reload pending */
	uint64_t map_reload_at; /* the same for the vsock map */

	struct mon_listener *listeners;
	struct mon_vsock_entry *vsock_map;
	size_t n_vsock_map;
	struct mon_prompt *prompts;
	struct mon_call *calls;
	struct mon_start *starts;
	struct mon_source *sources;
	unsigned n_calls;
	uint32_t next_id;
	/* out of file descriptors: accepting paused until accept_resume_at */
	uint64_t accept_resume_at;
	unsigned accept_backoff_ms;
	bool fd_episode;
	bool admin_dir_logged; /* QUBES_DIR/dom0 exists: logged once */
	bool quit;
	int exit_status;
};

/* ---- monitor.c -------------------------------------------------------------- */

int mon_ep_add(struct monitor *m, int fd, uint32_t events, struct mon_watch *w);
void mon_ep_mod(struct monitor *m, int fd, uint32_t events, struct mon_watch *w);
struct mon_source *mon_source_get(struct monitor *m, const char *name, bool create);
struct mon_call *mon_call_find(struct monitor *m, uint32_t id);
void mon_offered_free(struct mon_call *c);
void mon_call_remove(struct monitor *m, struct mon_call *c);
/* The sandbox is done with C (or a start request of MC_GONE call C was
 * answered): C is removed, unless a start-interface request is still open
 * for it or its disposable must still be destroyed; then it stays, as
 * MC_GONE, holding its slot. */
void mon_call_release(struct monitor *m, struct mon_call *c);
void mon_set_reason(struct mon_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mon_ipc_queue(struct monitor *m, const struct bk_ipc *rec, int fd);
/* The one log line of a call, written when its outcome is known. */
void mon_call_log(struct mon_call *c, const char *result);
/* Refusal or failure: tell the sandbox, log, and wait for its CLOSED. */
void mon_call_fail(struct monitor *m, struct mon_call *c, enum qrpc_call_status status);
/* The target is known: NAME is what it resolved to (a qube name, "dom0"
 * or "@dispvm:TEMPLATE", never a uuid: form), FORM how the policy wrote
 * it (logged).  Starts or connects to it. */
void mon_call_go(struct monitor *m, struct mon_call *c, const char *name, const char *form);
void mon_call_try_connect(struct monitor *m, struct mon_call *c);
/* Larger socket buffers for the joined streams (the sandbox cannot call
 * setsockopt itself). */
void mon_set_stream_buffers(int fd);

/* ---- listen.c --------------------------------------------------------------- */

void mon_listener_close(struct monitor *m, struct mon_listener *l);
/* Makes the set of listeners match the qube directories in QUBES_DIR. */
void mon_listeners_rescan(struct monitor *m);
int mon_vsock_map_load(struct monitor *m);
uint32_t mon_vsock_cid(struct monitor *m, const char *name);
int mon_listener_add_vsock(struct monitor *m);
/* --host-calls DIR: the admin qube's (the host's) own caller socket. */
int mon_listener_add_host(struct monitor *m);
/* accept4() failed with EMFILE/ENFILE/ENOBUFS/ENOMEM: stop accepting on
 * every listener (the qubes' and the ask socket) for 100 ms, doubling to
 * 2 s while it lasts, with one log line per episode, instead of spinning
 * on the level-triggered listeners; mon_accept_tick() resumes. */
void mon_accept_pause(struct monitor *m, int err);
/* An accept4() worked again: ends the episode (logged once). */
void mon_accept_resumed(struct monitor *m);
void mon_accept_tick(struct monitor *m);
/* A guest connected: fix its identity, enforce the caps, hand it over. */
void mon_on_accept(struct monitor *m, struct mon_listener *l);

/* ---- start.c ---------------------------------------------------------------- */

void mon_start_free(struct monitor *m, struct mon_start *st);
/* The caller of ST's call left: shut our side down (= cancelled). */
void mon_start_cancel(struct mon_start *st);
/* Sends one request to the start interface; the reply arrives later. */
int mon_start_request(struct monitor *m, enum start_op op, uint32_t call_id, const char *arg);
/* LINE: the reply without its newline, "" for EOF, NULL for a timeout. */
void mon_start_on_reply(struct monitor *m, struct mon_start *st, const char *line);
void mon_on_start_event(struct monitor *m, struct mon_start *st);

/* ---- ask.c ------------------------------------------------------------------ */

/* Lines to a prompt program: at most BK_ASK_LINE_MAX bytes (an ASK line
 * grows with the targets offered); a new ASK line is queued only while at
 * most BK_ASK_OUT_MAX bytes wait for the prompt program (CANCEL lines are
 * always queued, see prompt_queue() in ask.c). */
#define BK_ASK_LINE_MAX (64u * 1024u)
#define BK_ASK_OUT_MAX (1024u * 1024u)
/* C leaves the ASKING phase: it no longer counts against its source's
 * question cap; with CANCEL, "CANCEL <id>" tells the prompt to withdraw it. */
void mon_ask_end(struct monitor *m, struct mon_call *c, bool cancel);
/* Sends the question of C to the most recently connected prompt program:
 * -ENOTCONN none, -EUSERS its source has max_asks_per_qube open, -ENOBUFS
 * the prompt is that far behind, -E2BIG the line would exceed
 * BK_ASK_LINE_MAX. */
int mon_prompt_ask(struct monitor *m, struct mon_call *c, const struct qpol_decision *d);
void mon_on_prompt_event(struct monitor *m, struct mon_prompt *p, uint32_t events);
void mon_on_ask_accept(struct monitor *m);
int mon_ask_listen(struct monitor *m);

/* ---- reload.c --------------------------------------------------------------- */

void mon_policy_reload(struct monitor *m);
void mon_watches_add(struct monitor *m);
/* Watches the directory of the file PATH for changes to its name (NAME,
 * CAP bytes, receives the name; *RET_WD the watch, -1 if it could not be
 * set up, which is logged: SIGHUP still reloads).  -ENOMEM only. */
int mon_watch_file(struct monitor *m, const char *path, char *name, size_t cap, int *ret_wd);
/* After a load: watch what the policy read or tried to read. */
void mon_deps_sync(struct monitor *m);
void mon_on_inotify(struct monitor *m);

#endif
