/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqrpc: the RPC wire protocol between qube-call, the broker and
 * qube-agent, and the transports that carry it.  docs/protocol.md is the
 * specification; this header is its C form.
 *
 * Two kinds of connection ("channels") carry the same framing:
 *
 *   CALL channel     qube-call (client, in the calling guest)
 *                    <-> broker (server, host; vsock port QRPC_PORT_BROKER)
 *   SERVICE channel  broker (client, host)
 *                    <-> qube-agent (server, in the target guest;
 *                        vsock port QRPC_PORT_AGENT)
 *
 * Every message is a fixed 8-byte little-endian header {u32 type, u32 len}
 * followed by exactly LEN payload bytes.  Each type has a hard cap on LEN,
 * is valid on one channel, from one side, in one state; anything else ends
 * the connection.
 *
 * Errors: 0 or a negative errno; ret_* untouched on failure.
 */
#ifndef QRPC_H
#define QRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QRPC_PROTOCOL_VERSION     2u /* highest version this code speaks */
#define QRPC_PROTOCOL_VERSION_MIN 1u /* lowest version this code accepts */

#define QRPC_PORT_AGENT  512u /* guest listens: SERVICE channel */
#define QRPC_PORT_BROKER 513u /* host (CID 2) listens: CALL channel */

#define QRPC_HEADER_SIZE  8u
#define QRPC_MAX_DATA     65536u /* payload cap of a data message */
#define QRPC_MAX_QUBE     31u    /* qube name: 1-31 of [A-Za-z0-9_.-], leading letter */
#define QRPC_MAX_TARGET   64u    /* requested target: name or @keyword form */
#define QRPC_MAX_SERVICE  64u    /* service name: 1-64 of [A-Za-z0-9_.-] */
#define QRPC_MAX_ARGUMENT 64u    /* argument: 0-64 of [A-Za-z0-9_.+-] */
#define QRPC_MAX_USER     32u    /* user: 1-32 of [A-Za-z0-9_.-], not leading '-' or '.' */
/* Largest payload of any message type. */
#define QRPC_MAX_PAYLOAD  QRPC_MAX_DATA

enum qrpc_msg_type {
	QRPC_MSG_HELLO = 0x01,         /* both channels, both sides, first */
	QRPC_MSG_CALL_REQUEST = 0x10,  /* CALL: caller -> broker */
	QRPC_MSG_CALL_RESULT = 0x11,   /* CALL: broker -> caller */
	QRPC_MSG_SERVICE_START = 0x20, /* SERVICE: broker -> agent */
	QRPC_MSG_SERVICE_START_AS = 0x21, /* the same, run as a user (version 2) */
	QRPC_MSG_STDIN = 0x30,         /* data toward the service */
	QRPC_MSG_STDOUT = 0x31,        /* data from the service */
	QRPC_MSG_STDERR = 0x32,        /* data from the service */
	QRPC_MSG_EOF = 0x33,           /* end of one stream (payload: stream) */
	QRPC_MSG_EXIT = 0x40,          /* service exit code, toward the caller */
};

enum qrpc_stream {
	QRPC_STREAM_STDIN = 0,
	QRPC_STREAM_STDOUT = 1,
	QRPC_STREAM_STDERR = 2,
};

enum qrpc_call_status {
	QRPC_CALL_ALLOWED = 0, /* streams follow */
	QRPC_CALL_REFUSED = 1, /* policy said no: caller exits 126 */
	QRPC_CALL_FAILED = 2,  /* RPC failure (target not running, ...): 125 */
};

#define QRPC_EXIT_REFUSED    126
#define QRPC_EXIT_RPC_FAILED 125
#define QRPC_EXIT_NO_SERVICE 127

struct qrpc_header {
	uint32_t type;
	uint32_t len;
};

/* Decoded message.  Strings are NUL-terminated copies inside the struct;
 * data points into the buffer that was decoded (valid as long as it is). */
struct qrpc_msg {
	uint32_t type;
	union {
		struct {
			uint32_t version_min, version_max;
		} hello;
		struct {
			char target[QRPC_MAX_TARGET + 1];
			char service[QRPC_MAX_SERVICE + 1];
			char argument[QRPC_MAX_ARGUMENT + 1];
		} call_request;
		struct {
			uint32_t status; /* enum qrpc_call_status */
			uint32_t exit_code;
		} call_result;
		struct {
			char source[QRPC_MAX_QUBE + 1];
			char service[QRPC_MAX_SERVICE + 1];
			char argument[QRPC_MAX_ARGUMENT + 1];
			char requested_target[QRPC_MAX_TARGET + 1];
			char user[QRPC_MAX_USER + 1]; /* SERVICE_START_AS; "" for SERVICE_START */
		} service_start;
		struct {
			const uint8_t *data; /* STDIN/STDOUT/STDERR, 1..QRPC_MAX_DATA */
			uint32_t len;
		} data;
		struct {
			uint32_t stream; /* enum qrpc_stream */
		} eof;
		struct {
			uint32_t code; /* 0..255 */
		} exit;
	} u;
};

/* ---- Codec (pure) ------------------------------------------------------ */

/* Decodes the 8 header bytes; rejects unknown types (-EPROTO) and lengths
 * over the type's cap (-EMSGSIZE) before any payload is read. */
int qrpc_header_decode(const uint8_t buf[QRPC_HEADER_SIZE], struct qrpc_header *ret_header);
/* Cap on LEN for TYPE; 0 for unknown types. */
uint32_t qrpc_max_payload(uint32_t type);

/* Decodes a payload of HEADER's type, exactly HEADER->len bytes at PAYLOAD.
 * Rejects truncation, trailing bytes, NULs and invalid characters in names,
 * empty data, unknown streams and exit codes over 255 (-EBADMSG). */
int qrpc_msg_decode(const struct qrpc_header *header, const uint8_t *payload,
		    struct qrpc_msg *ret_msg);

/* Encodes MSG (header and payload) into BUF of CAP bytes; *ret_len is the
 * total.  Validates MSG as the decoder would (-EINVAL), -ENOBUFS if CAP is
 * too small.  Data messages copy msg->u.data.data. */
int qrpc_msg_encode(const struct qrpc_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len);

/* (Added.)  Decodes the first whole message of the LEN bytes at BUF, for
 * callers that read a byte stream in pieces (event loops).  -EAGAIN while
 * BUF holds only part of a message (nothing over the caps is waited for:
 * the header is checked as soon as 8 bytes are there); otherwise fills
 * *ret_msg and *ret_used (bytes the message took) or fails as
 * qrpc_header_decode / qrpc_msg_decode do.  Data points into BUF. */
int qrpc_msg_parse(const uint8_t *buf, size_t len, struct qrpc_msg *ret_msg, size_t *ret_used);

/* Name rules, shared by every component so that what is validated is what
 * is evaluated and delivered. */
bool qrpc_qube_name_is_valid(const char *name);
bool qrpc_service_name_is_valid(const char *name);
bool qrpc_argument_is_valid(const char *arg);
/* A qube name, "@default", "@adminvm", "@dispvm" or "@dispvm:NAME". */
bool qrpc_target_is_valid(const char *target);
/* The user of SERVICE_START_AS (a policy's user=). */
bool qrpc_user_name_is_valid(const char *user);

/* A decimal number of one or more ASCII digits and nothing else (no sign,
 * no space; leading zeros are fine) up to UINT32_MAX: 0 and *RET, or
 * -EINVAL (not such a string) / -ERANGE (too large). */
int qrpc_parse_u32(const char *s, uint32_t *ret);

const char *qrpc_msg_type_to_string(uint32_t type);

/* ---- Per-connection state machine (pure) -------------------------------- */

enum qrpc_channel {
	QRPC_CHANNEL_CALL,    /* client = qube-call, server = broker */
	QRPC_CHANNEL_SERVICE, /* client = broker, server = qube-agent */
};

enum qrpc_side {
	QRPC_SIDE_CLIENT,
	QRPC_SIDE_SERVER,
};

/* Tracks one end of a connection: which messages this end may send and
 * receive next.  Both the broker and the guest programs use it, so the
 * direction and ordering rules live in one place. */
struct qrpc_state {
	enum qrpc_channel channel;
	enum qrpc_side self;
	uint32_t version;   /* negotiated; 0 until both hellos seen */
	uint32_t tx_min, tx_max; /* the range our HELLO offered (private) */
	uint32_t rx_min, rx_max; /* the range the peer's HELLO offered (private) */
	unsigned phase_tx;  /* private to qrpc.c */
	unsigned phase_rx;  /* private to qrpc.c */
	unsigned eof_tx;    /* bitmask of 1u << enum qrpc_stream sent */
	unsigned eof_rx;    /* bitmask of 1u << enum qrpc_stream received */
};

void qrpc_state_init(struct qrpc_state *state, enum qrpc_channel channel, enum qrpc_side self);
/* Checks that MSG may be received now and advances; -EPROTO if not (wrong
 * direction, wrong state, data after EOF, data before the call is allowed,
 * no common version). */
int qrpc_state_on_recv(struct qrpc_state *state, const struct qrpc_msg *msg);
/* Same for sending: a program bug, not peer input, when it fails. */
int qrpc_state_on_send(struct qrpc_state *state, const struct qrpc_msg *msg);
/* True once the exit code has passed (no more messages either way). */
bool qrpc_state_is_done(const struct qrpc_state *state);
/* Takes the next message from the peer out of BUF (LEN bytes received so
 * far): qrpc_msg_parse() then qrpc_state_on_recv(), the one way every
 * program reads its peer.  -EAGAIN while the message is incomplete; other
 * errors as those two say.  ret_* are untouched on failure. */
int qrpc_state_parse(struct qrpc_state *state, const uint8_t *buf, size_t len,
		     struct qrpc_msg *ret_msg, size_t *ret_used);

/* A linear buffer BUF[CAP] holding the bytes [*START, *END) (the stream
 * buffers of qube-agent and qube-call): makes NEED bytes free after *END
 * when the buffer has that much room at all, moving the held bytes to the
 * front only then (so a payload pointing into the buffer stays valid until
 * the buffer runs short); an empty buffer starts over at the front. */
void qrpc_buf_make_room(uint8_t *buf, size_t cap, size_t *start, size_t *end, size_t need);
/* Whole messages each of those buffers holds per direction: fewer, larger
 * reads and writes, and a buffer is compacted only when its tail cannot
 * take a whole message. */
#define QRPC_STREAM_BUF_MSGS 4u

/* ---- Blocking helpers over a socket (touch the OS) ----------------------- */

/* Reads one whole message from FD into BUF (at least QRPC_HEADER_SIZE +
 * QRPC_MAX_PAYLOAD bytes) and decodes it; -EPIPE on clean EOF before a
 * header, -EPROTO/-EMSGSIZE/-EBADMSG as the codec says. */
int qrpc_read_msg(int fd, uint8_t *buf, size_t cap, struct qrpc_msg *ret_msg);
/* Encodes and writes MSG whole (handles short writes and EINTR). */
int qrpc_write_msg(int fd, const struct qrpc_msg *msg);
/* (Added.)  Writes LEN bytes whole: retries short writes, EINTR, and waits
 * with poll() on EAGAIN; never raises SIGPIPE on sockets (-EPIPE instead). */
int qrpc_write_full(int fd, const void *buf, size_t len);

/* ---- Transports ----------------------------------------------------------- */

/*
 * Where a guest program finds the host, and where the host finds a guest.
 *   "vsock"       AF_VSOCK: guest->host is CID 2 (VMADDR_CID_HOST) port P;
 *                 the broker accepts on port P and knows the qube by the
 *                 peer CID; host->guest connects to (CID, P).
 *   "unix:DIR"    the hybrid convention of Firecracker / Cloud Hypervisor
 *                 (qube-vsockd, and simulated qubes in tests):
 *                 guest->host port P is the unix socket DIR/vsock_P;
 *                 host->guest: connect to DIR/vsock, write "CONNECT P\n",
 *                 read "OK <hostport>\n", then the stream.
 * A qube's identity comes only from the transport: the CID, or which DIR's
 * socket a connection arrived on; never from anything the guest sends.
 */
enum qrpc_transport_kind {
	QRPC_TRANSPORT_VSOCK,
	QRPC_TRANSPORT_UNIX,
};

struct qrpc_transport {
	enum qrpc_transport_kind kind;
	char dir[108]; /* UNIX: the qube's socket directory */
	uint32_t cid;  /* VSOCK, host side: the guest's CID */
};

/* Parses "vsock", "vsock:CID" or "unix:DIR". */
int qrpc_transport_parse(const char *spec, struct qrpc_transport *ret_transport);

/* Guest side. */
int qrpc_guest_connect_host(const struct qrpc_transport *t, uint32_t port); /* -> fd */
int qrpc_guest_listen(const struct qrpc_transport *t, uint32_t port);       /* -> listen fd */
/* Accepts one connection for PORT; for UNIX, reads "CONNECT P\n" (P must
 * equal PORT, else the connection is closed and -EPROTO returned) and
 * answers "OK <n>\n" as qube-vsockd would. */
int qrpc_guest_accept(const struct qrpc_transport *t, int listen_fd, uint32_t port);

/* (Added.)  The UNIX half of qrpc_guest_accept for a connection accepted by
 * the caller (e.g. after fork, so a slow peer cannot hold up the accept
 * loop): reads "CONNECT P\n" (at most QRPC_CONNECT_LINE_MAX bytes, within
 * QRPC_HANDSHAKE_TIMEOUT_MS per byte), -EPROTO unless P == PORT, answers
 * "OK <n>\n".  Does not close FD. */
int qrpc_guest_answer_connect(int fd, uint32_t port);
#define QRPC_CONNECT_LINE_MAX     32
#define QRPC_HANDSHAKE_TIMEOUT_MS 10000

/* Host side. */
int qrpc_host_listen(const struct qrpc_transport *t, uint32_t port);  /* -> listen fd */
int qrpc_host_connect_guest(const struct qrpc_transport *t, uint32_t port); /* -> fd */
/* (Added.)  The peer CID of an accepted AF_VSOCK connection: the broker's
 * only source of a vsock caller's identity.  -EAFNOSUPPORT if FD is not a
 * vsock socket. */
int qrpc_vsock_peer_cid(int fd, uint32_t *ret_cid);

#ifdef __cplusplus
}
#endif

#endif
