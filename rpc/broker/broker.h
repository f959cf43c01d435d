/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker internals, shared by its two processes:
 *
 *   monitor  (privileged; monitor.c and monitor.h) holds the policy, inotify, the
 *            ask and start interfaces, accepts guest connections (without
 *            reading from them) and opens connections to target agents.
 *   sandbox  (unprivileged, seccomp; sandbox.c) reads every guest
 *            byte: parses call requests, asks the monitor for decisions
 *            over a SOCK_SEQPACKET socketpair, and pumps the streams.
 *
 * docs/broker.md describes the design, the line protocols and the limits.
 */
#ifndef QUBE_BROKER_H
#define QUBE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qrpc.h"

/* ---- Configuration -------------------------------------------------------- */

struct bk_config {
	const char *policy_dir;
	const char *system_info;
	const char *qubes_dir;    /* unix (hybrid) transport: QUBES_DIR/NAME/ */
	const char *vsock_map;    /* vsock transport: "CID NAME" lines */
	const char *ask_socket;   /* NULL: no ask interface (ask denies) */
	const char *ask_group;    /* group that may connect to it (mode 0660) */
	gid_t ask_gid;
	const char *start_socket; /* NULL: no start interface (not running -> 125) */
	const char *log_path;     /* NULL: stderr */
	const char *user;         /* sandbox user when started as root */
	uid_t uid;                /* ... resolved before the sandbox starts */
	gid_t gid;
	unsigned max_per_qube;    /* concurrent calls from one source */
	unsigned max_total;       /* concurrent calls in all */
	unsigned handshake_ms;    /* caller must send its request within */
	unsigned ask_timeout_ms;  /* prompt must answer within; then deny */
	unsigned start_timeout_ms; /* start interface must answer within */
	unsigned connect_timeout_ms; /* agent must accept + hello within */
	const char *adminvm_socket; /* host service runner (@adminvm); NULL: 125 */
	const char *host_calls_dir; /* DIR/vsock_513: calls whose source is dom0 */
	unsigned max_asks_per_qube; /* questions open at the prompt from one source */
	unsigned log_per_qube;    /* log lines per qube per 10 s before suppression */
	bool selftest_seccomp;    /* sandbox calls a forbidden syscall */
};

#define BK_DEFAULT_MAX_PER_QUBE   256u
#define BK_DEFAULT_MAX_TOTAL      2048u
#define BK_DEFAULT_HANDSHAKE_MS   10000u
#define BK_DEFAULT_ASK_MS         60000u
#define BK_DEFAULT_START_MS       120000u
#define BK_DEFAULT_CONNECT_MS     10000u
#define BK_DEFAULT_MAX_ASKS       16u
#define BK_DEFAULT_LOG_PER_QUBE   100u
/* The admin qube's name: the host, never a qube of QUBES_DIR or the map. */
#define BK_ADMIN_QUBE             "dom0"

/* ---- Monitor <-> sandbox messages ------------------------------------------
 * One fixed-size record per SOCK_SEQPACKET datagram, at most one fd attached
 * (SCM_RIGHTS).  The monitor validates every record that comes from the
 * sandbox as it would guest input: the sandbox is the part that may be
 * compromised. */

enum bk_ipc_type {
	BK_IPC_NEW_CALL = 1, /* monitor -> sandbox: fd = caller connection */
	BK_IPC_REQUEST,      /* sandbox -> monitor: the caller's request */
	BK_IPC_DECISION,     /* monitor -> sandbox: fd = agent connection if allowed */
	BK_IPC_CLOSED,       /* sandbox -> monitor: the call is over, id is free */
	BK_IPC_SHED,         /* monitor -> sandbox: end this call if it is not
			      * running yet (out of fds: its qube holds the
			      * most calls); CLOSED follows as for a hang-up */
};

/* How the sandbox must treat an agent fd it receives. */
enum bk_agent_mode {
	BK_AGENT_HYBRID = 1, /* "CONNECT 512\n" was written; expect "OK <n>\n" */
	BK_AGENT_VSOCK,      /* non-blocking AF_VSOCK connect in progress */
};

struct bk_ipc {
	uint32_t type;
	uint32_t id;        /* call id, assigned by the monitor */
	uint32_t status;    /* DECISION: enum qrpc_call_status */
	uint32_t exit_code; /* DECISION: for refusals/failures; CLOSED: relayed code or 256+ */
	uint32_t agent_mode;
	char source[QRPC_MAX_QUBE + 1];
	char target[QRPC_MAX_TARGET + 1];           /* REQUEST: requested; DECISION: actual */
	char service[QRPC_MAX_SERVICE + 1];
	char argument[QRPC_MAX_ARGUMENT + 1];
	char requested_target[QRPC_MAX_TARGET + 1]; /* DECISION */
	char user[QRPC_MAX_USER + 1]; /* DECISION: the policy's user=, "" for none */
};

/* CLOSED.exit_code values above 255: how a call ended without an exit code. */
#define BK_END_NO_EXIT 256u

/* Sends REC with FD (-1: none).  0 or negative errno. */
int bk_ipc_send(int sock, const struct bk_ipc *rec, int fd);
/* Receives one record; *ret_fd is -1 or a received fd (O_CLOEXEC).
 * -EPIPE on EOF, -EBADMSG on a record of the wrong size or more than one fd
 * (any fds that came with it are closed).  -EMFILE when a whole record came
 * but its fd was dropped (MSG_CTRUNC: this process is at its fd limit):
 * *ret_rec is then set and *ret_fd is -1. */
int bk_ipc_recv(int sock, struct bk_ipc *ret_rec, int *ret_fd);

/* Outgoing records waiting for the (non-blocking) socket to take them;
 * neither process ever blocks on the other, so they cannot deadlock. */
struct bk_ipc_item {
	struct bk_ipc rec;
	int fd; /* owned; closed once sent */
};
struct bk_ipc_queue {
	struct bk_ipc_item *items;
	size_t head, n, cap;
};
/* Queues REC; takes ownership of FD (-1: none) even on failure. */
int bk_ipc_queue_push(struct bk_ipc_queue *q, const struct bk_ipc *rec, int fd);
/* Sends what the socket takes: 0 when empty, -EAGAIN when records remain,
 * other negative errno on a broken socket. */
int bk_ipc_queue_flush(struct bk_ipc_queue *q, int sock);
void bk_ipc_queue_finish(struct bk_ipc_queue *q);

/* True when S is a NUL-terminated string within CAP bytes. */
bool bk_string_fits(const char *s, size_t cap);

/* ---- Byte buffers -------------------------------------------------------- */

struct bk_buf {
	uint8_t *data;
	size_t start, end, cap, max;
};

void bk_buf_init(struct bk_buf *b, size_t max);
void bk_buf_finish(struct bk_buf *b);
static inline size_t bk_buf_len(const struct bk_buf *b) { return b->end - b->start; }
/* Room that can still be appended without exceeding max. */
size_t bk_buf_room(const struct bk_buf *b);
/* Makes N contiguous bytes writable at the end (N <= room); returns a
 * pointer to them or NULL on -ENOMEM. */
uint8_t *bk_buf_reserve(struct bk_buf *b, size_t n);
void bk_buf_consume(struct bk_buf *b, size_t n);
/* Gives back memory when empty. */
void bk_buf_shrink(struct bk_buf *b);

/* ---- Pure helpers (fuzzed) ------------------------------------------------ */

/*
 * The hybrid-vsock answer to "CONNECT P\n": "OK <decimal>\n".  LEN bytes at
 * UNTRUSTED_BUF are what arrived so far.  Returns 0 with *ret_used = bytes
 * of the line (including '\n') when a valid line is complete, -EAGAIN when
 * more bytes are needed (at most BK_HYBRID_LINE_MAX), -EPROTO otherwise.
 */
#define BK_HYBRID_LINE_MAX 32u
int bk_hybrid_ok_parse(const uint8_t *untrusted_buf, size_t len, size_t *ret_used);

/*
 * One reply line of the ask interface, without its '\n' (see docs/broker.md):
 *   "ALLOW <id> <target>" | "DENY <id>"
 * On success *ret_id is set and *ret_target holds the target (empty for
 * DENY).  -EBADMSG for anything else.
 */
#define BK_LINE_MAX 1024u
int bk_ask_reply_parse(const char *line, uint32_t *ret_id, bool *ret_allow,
		       char ret_target[QRPC_MAX_TARGET + 1]);
/*
 * One reply line of the start interface, without its '\n':
 *   "OK <name>" | "ERROR <message>"
 * On OK, *ret_name is a valid qube name.  On ERROR returns -EHOSTDOWN and
 * copies the message (truncated, sanitised) into ret_msg.  -EBADMSG else.
 */
int bk_start_reply_parse(const char *line, char ret_name[QRPC_MAX_QUBE + 1],
			 char *ret_msg, size_t msg_cap);

/* Appends S to OUT (cap bytes, always NUL-terminated) as a double-quoted
 * string with '"', '\\' and control bytes escaped; for log lines. */
void bk_quote(char *out, size_t cap, const char *s);

/* ---- Logging (both processes) ---------------------------------------------- */

/* Opens the log (NULL: stderr).  One write() per line, O_APPEND. */
int bk_log_open(const char *path, const char *ident);
int bk_log_fd(void);
void bk_log_set_ident(const char *ident);
void bk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line caused by qube SOURCE: at most bk_log_set_source_limit() lines per
 * qube per 10 s are written; the rest are counted, and summarised ("qube X:
 * N log lines suppressed") by the next line after the window or by
 * bk_log_source_flush(), which the event loops call once a tick. */
void bk_log_source(const char *source, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bk_log_set_source_limit(unsigned lines_per_window);
void bk_log_source_flush(void);

uint64_t bk_now_ms(void);

/* ---- Processes ---------------------------------------------------------------- */

/* Runs the sandbox in the current (freshly forked) process; never returns. */
__attribute__((noreturn)) void bk_sandbox_main(const struct bk_config *cfg, int ipc_fd);
/* Runs the monitor until a fatal error or signal; returns the exit status. */
int bk_monitor_main(const struct bk_config *cfg);

#endif
