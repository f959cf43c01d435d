/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqrpc codec, name rules and per-connection state machine.  Pure logic:
 * nothing here touches the OS.  docs/protocol.md is the specification.
 */
#include "qrpc.h"
#include "qname.h"

#include <errno.h>
#include <string.h>

/* ---- Little-endian helpers ------------------------------------------------ */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* ---- Name rules ------------------------------------------------------------ */

/* The rules themselves live in policy/qname.c, shared with libqpolicy, so
 * that the codec, qube-call, the agent and the policy evaluator accept
 * exactly the same names. */
_Static_assert(QRPC_MAX_QUBE == QNAME_MAX_QUBE, "qube name cap differs from qname.h");
_Static_assert(QRPC_MAX_TARGET == QNAME_MAX_TARGET, "target cap differs from qname.h");
_Static_assert(QRPC_MAX_SERVICE == QNAME_MAX_SERVICE, "service cap differs from qname.h");
_Static_assert(QRPC_MAX_ARGUMENT == QNAME_MAX_ARGUMENT, "argument cap differs from qname.h");
_Static_assert(QRPC_MAX_USER == QNAME_MAX_USER, "user cap differs from qname.h");

bool qrpc_qube_name_is_valid(const char *name)
{
	return qname_qube_is_valid(name);
}

bool qrpc_service_name_is_valid(const char *name)
{
	return qname_service_is_valid(name);
}

bool qrpc_argument_is_valid(const char *arg)
{
	return qname_argument_is_valid(arg);
}

bool qrpc_target_is_valid(const char *target)
{
	return qname_target_is_valid(target);
}

bool qrpc_user_name_is_valid(const char *user)
{
	return qname_user_is_valid(user);
}

int qrpc_parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	*ret = (uint32_t)v;
	return 0;
}

/* ---- Header -------------------------------------------------------------- */

/* Payload sizes: strings are a u8 length followed by that many bytes. */
#define STR_FIELD_MAX(n) (1u + (n))

uint32_t qrpc_max_payload(uint32_t type)
{
	switch (type) {
	case QRPC_MSG_HELLO:
		return 8;
	case QRPC_MSG_CALL_REQUEST:
		return STR_FIELD_MAX(QRPC_MAX_TARGET) + STR_FIELD_MAX(QRPC_MAX_SERVICE) +
		       STR_FIELD_MAX(QRPC_MAX_ARGUMENT);
	case QRPC_MSG_CALL_RESULT:
		return 8;
	case QRPC_MSG_SERVICE_START:
		return STR_FIELD_MAX(QRPC_MAX_QUBE) + STR_FIELD_MAX(QRPC_MAX_SERVICE) +
		       STR_FIELD_MAX(QRPC_MAX_ARGUMENT) + STR_FIELD_MAX(QRPC_MAX_TARGET);
	case QRPC_MSG_SERVICE_START_AS:
		return qrpc_max_payload(QRPC_MSG_SERVICE_START) + STR_FIELD_MAX(QRPC_MAX_USER);
	case QRPC_MSG_STDIN:
	case QRPC_MSG_STDOUT:
	case QRPC_MSG_STDERR:
		return QRPC_MAX_DATA;
	case QRPC_MSG_EOF:
	case QRPC_MSG_EXIT:
		return 4;
	default:
		return 0;
	}
}

const char *qrpc_msg_type_to_string(uint32_t type)
{
	switch (type) {
	case QRPC_MSG_HELLO:
		return "HELLO";
	case QRPC_MSG_CALL_REQUEST:
		return "CALL_REQUEST";
	case QRPC_MSG_CALL_RESULT:
		return "CALL_RESULT";
	case QRPC_MSG_SERVICE_START:
		return "SERVICE_START";
	case QRPC_MSG_SERVICE_START_AS:
		return "SERVICE_START_AS";
	case QRPC_MSG_STDIN:
		return "STDIN";
	case QRPC_MSG_STDOUT:
		return "STDOUT";
	case QRPC_MSG_STDERR:
		return "STDERR";
	case QRPC_MSG_EOF:
		return "EOF";
	case QRPC_MSG_EXIT:
		return "EXIT";
	default:
		return "unknown";
	}
}

int qrpc_header_decode(const uint8_t buf[QRPC_HEADER_SIZE], struct qrpc_header *ret_header)
{
	uint32_t type = get_le32(buf);
	uint32_t len = get_le32(buf + 4);
	uint32_t max = qrpc_max_payload(type);

	if (max == 0)
		return -EPROTO;
	if (len > max)
		return -EMSGSIZE;
	ret_header->type = type;
	ret_header->len = len;
	return 0;
}

/* ---- Payload decoding ------------------------------------------------------ */

struct cursor {
	const uint8_t *p;
	size_t left;
};

static int take_u32(struct cursor *c, uint32_t *ret)
{
	if (c->left < 4)
		return -EBADMSG;
	*ret = get_le32(c->p);
	c->p += 4;
	c->left -= 4;
	return 0;
}

/* Copies a u8-length-prefixed string of at most MAX bytes into OUT
 * (MAX + 1 bytes) and checks it with VALID. */
static int take_str(struct cursor *c, char *out, size_t max, bool (*valid)(const char *))
{
	if (c->left < 1)
		return -EBADMSG;
	size_t n = c->p[0];
	if (n > max || c->left - 1 < n)
		return -EBADMSG;
	/* memchr before copying: a NUL would silently shorten the name. */
	if (memchr(c->p + 1, '\0', n))
		return -EBADMSG;
	memcpy(out, c->p + 1, n);
	out[n] = '\0';
	c->p += 1 + n;
	c->left -= 1 + n;
	return valid(out) ? 0 : -EBADMSG;
}

int qrpc_msg_decode(const struct qrpc_header *header, const uint8_t *payload,
		    struct qrpc_msg *ret_msg)
{
	struct qrpc_msg m;
	struct cursor c = { payload, header->len };
	int r = 0;

	if (header->len > qrpc_max_payload(header->type))
		return qrpc_max_payload(header->type) == 0 ? -EPROTO : -EMSGSIZE;
	memset(&m, 0, sizeof(m));
	m.type = header->type;

	switch (header->type) {
	case QRPC_MSG_HELLO:
		if ((r = take_u32(&c, &m.u.hello.version_min)) < 0 ||
		    (r = take_u32(&c, &m.u.hello.version_max)) < 0)
			return r;
		if (m.u.hello.version_min == 0 || m.u.hello.version_min > m.u.hello.version_max)
			return -EBADMSG;
		break;
	case QRPC_MSG_CALL_REQUEST:
		if ((r = take_str(&c, m.u.call_request.target, QRPC_MAX_TARGET, qrpc_target_is_valid)) < 0 ||
		    (r = take_str(&c, m.u.call_request.service, QRPC_MAX_SERVICE,
				  qrpc_service_name_is_valid)) < 0 ||
		    (r = take_str(&c, m.u.call_request.argument, QRPC_MAX_ARGUMENT,
				  qrpc_argument_is_valid)) < 0)
			return r;
		break;
	case QRPC_MSG_CALL_RESULT:
		if ((r = take_u32(&c, &m.u.call_result.status)) < 0 ||
		    (r = take_u32(&c, &m.u.call_result.exit_code)) < 0)
			return r;
		switch (m.u.call_result.status) {
		case QRPC_CALL_ALLOWED:
			if (m.u.call_result.exit_code != 0)
				return -EBADMSG;
			break;
		case QRPC_CALL_REFUSED:
			if (m.u.call_result.exit_code != QRPC_EXIT_REFUSED)
				return -EBADMSG;
			break;
		case QRPC_CALL_FAILED:
			if (m.u.call_result.exit_code != QRPC_EXIT_RPC_FAILED)
				return -EBADMSG;
			break;
		default:
			return -EBADMSG;
		}
		break;
	case QRPC_MSG_SERVICE_START:
	case QRPC_MSG_SERVICE_START_AS:
		if ((r = take_str(&c, m.u.service_start.source, QRPC_MAX_QUBE,
				  qrpc_qube_name_is_valid)) < 0 ||
		    (r = take_str(&c, m.u.service_start.service, QRPC_MAX_SERVICE,
				  qrpc_service_name_is_valid)) < 0 ||
		    (r = take_str(&c, m.u.service_start.argument, QRPC_MAX_ARGUMENT,
				  qrpc_argument_is_valid)) < 0 ||
		    (r = take_str(&c, m.u.service_start.requested_target, QRPC_MAX_TARGET,
				  qrpc_target_is_valid)) < 0)
			return r;
		if (header->type == QRPC_MSG_SERVICE_START_AS &&
		    (r = take_str(&c, m.u.service_start.user, QRPC_MAX_USER,
				  qrpc_user_name_is_valid)) < 0)
			return r;
		break;
	case QRPC_MSG_STDIN:
	case QRPC_MSG_STDOUT:
	case QRPC_MSG_STDERR:
		if (header->len == 0)
			return -EBADMSG;
		m.u.data.data = payload;
		m.u.data.len = header->len;
		c.left = 0;
		break;
	case QRPC_MSG_EOF:
		if ((r = take_u32(&c, &m.u.eof.stream)) < 0)
			return r;
		if (m.u.eof.stream > QRPC_STREAM_STDERR)
			return -EBADMSG;
		break;
	case QRPC_MSG_EXIT:
		if ((r = take_u32(&c, &m.u.exit.code)) < 0)
			return r;
		if (m.u.exit.code > 255)
			return -EBADMSG;
		break;
	default:
		return -EPROTO;
	}
	if (c.left != 0)
		return -EBADMSG; /* trailing bytes */
	*ret_msg = m;
	return 0;
}

int qrpc_msg_parse(const uint8_t *buf, size_t len, struct qrpc_msg *ret_msg, size_t *ret_used)
{
	struct qrpc_header h;
	int r;

	if (len < QRPC_HEADER_SIZE)
		return -EAGAIN;
	r = qrpc_header_decode(buf, &h);
	if (r < 0)
		return r;
	if (len - QRPC_HEADER_SIZE < h.len)
		return -EAGAIN;
	r = qrpc_msg_decode(&h, buf + QRPC_HEADER_SIZE, ret_msg);
	if (r < 0)
		return r;
	*ret_used = QRPC_HEADER_SIZE + (size_t)h.len;
	return 0;
}

/* ---- Encoding -------------------------------------------------------------- */

static int put_str(uint8_t *buf, size_t *pos, const char *s, size_t max, bool (*valid)(const char *))
{
	if (!valid(s))
		return -EINVAL;
	size_t n = strlen(s);
	if (n > max)
		return -EINVAL;
	buf[(*pos)++] = (uint8_t)n;
	memcpy(buf + *pos, s, n);
	*pos += n;
	return 0;
}

int qrpc_msg_encode(const struct qrpc_msg *msg, uint8_t *buf, size_t cap, size_t *ret_len)
{
	/* Staging area big enough for any non-data payload. */
	uint8_t tmp[512];
	size_t n = 0;
	const uint8_t *payload = tmp;
	int r;

	switch (msg->type) {
	case QRPC_MSG_HELLO:
		if (msg->u.hello.version_min == 0 ||
		    msg->u.hello.version_min > msg->u.hello.version_max)
			return -EINVAL;
		put_le32(tmp, msg->u.hello.version_min);
		put_le32(tmp + 4, msg->u.hello.version_max);
		n = 8;
		break;
	case QRPC_MSG_CALL_REQUEST:
		if ((r = put_str(tmp, &n, msg->u.call_request.target, QRPC_MAX_TARGET,
				 qrpc_target_is_valid)) < 0 ||
		    (r = put_str(tmp, &n, msg->u.call_request.service, QRPC_MAX_SERVICE,
				 qrpc_service_name_is_valid)) < 0 ||
		    (r = put_str(tmp, &n, msg->u.call_request.argument, QRPC_MAX_ARGUMENT,
				 qrpc_argument_is_valid)) < 0)
			return r;
		break;
	case QRPC_MSG_CALL_RESULT: {
		uint32_t st = msg->u.call_result.status, code = msg->u.call_result.exit_code;
		if (!((st == QRPC_CALL_ALLOWED && code == 0) ||
		      (st == QRPC_CALL_REFUSED && code == QRPC_EXIT_REFUSED) ||
		      (st == QRPC_CALL_FAILED && code == QRPC_EXIT_RPC_FAILED)))
			return -EINVAL;
		put_le32(tmp, st);
		put_le32(tmp + 4, code);
		n = 8;
		break;
	}
	case QRPC_MSG_SERVICE_START:
	case QRPC_MSG_SERVICE_START_AS:
		if ((r = put_str(tmp, &n, msg->u.service_start.source, QRPC_MAX_QUBE,
				 qrpc_qube_name_is_valid)) < 0 ||
		    (r = put_str(tmp, &n, msg->u.service_start.service, QRPC_MAX_SERVICE,
				 qrpc_service_name_is_valid)) < 0 ||
		    (r = put_str(tmp, &n, msg->u.service_start.argument, QRPC_MAX_ARGUMENT,
				 qrpc_argument_is_valid)) < 0 ||
		    (r = put_str(tmp, &n, msg->u.service_start.requested_target, QRPC_MAX_TARGET,
				 qrpc_target_is_valid)) < 0)
			return r;
		if (msg->type == QRPC_MSG_SERVICE_START_AS &&
		    (r = put_str(tmp, &n, msg->u.service_start.user, QRPC_MAX_USER,
				 qrpc_user_name_is_valid)) < 0)
			return r;
		break;
	case QRPC_MSG_STDIN:
	case QRPC_MSG_STDOUT:
	case QRPC_MSG_STDERR:
		if (msg->u.data.len == 0 || msg->u.data.len > QRPC_MAX_DATA || !msg->u.data.data)
			return -EINVAL;
		payload = msg->u.data.data;
		n = msg->u.data.len;
		break;
	case QRPC_MSG_EOF:
		if (msg->u.eof.stream > QRPC_STREAM_STDERR)
			return -EINVAL;
		put_le32(tmp, msg->u.eof.stream);
		n = 4;
		break;
	case QRPC_MSG_EXIT:
		if (msg->u.exit.code > 255)
			return -EINVAL;
		put_le32(tmp, msg->u.exit.code);
		n = 4;
		break;
	default:
		return -EINVAL;
	}
	if (cap < QRPC_HEADER_SIZE || cap - QRPC_HEADER_SIZE < n)
		return -ENOBUFS;
	put_le32(buf, msg->type);
	put_le32(buf + 4, (uint32_t)n);
	if (payload != buf + QRPC_HEADER_SIZE) /* already in place when the caller read it there */
		memmove(buf + QRPC_HEADER_SIZE, payload, n);
	*ret_len = QRPC_HEADER_SIZE + n;
	return 0;
}

/* ---- State machine --------------------------------------------------------- */

/* Bits of phase_tx / phase_rx: what has passed in that direction. */
enum {
	PH_HELLO = 1u << 0,   /* HELLO */
	PH_REQUEST = 1u << 1, /* CALL_REQUEST or SERVICE_START */
	PH_RESULT = 1u << 2,  /* CALL_RESULT (any status) */
	PH_ALLOWED = 1u << 3, /* CALL_RESULT with status ALLOWED */
	PH_EXIT = 1u << 4,    /* EXIT */
};

#define STREAM_BIT(s) (1u << (s))
#define OUT_STREAMS (STREAM_BIT(QRPC_STREAM_STDOUT) | STREAM_BIT(QRPC_STREAM_STDERR))

void qrpc_state_init(struct qrpc_state *state, enum qrpc_channel channel, enum qrpc_side self)
{
	memset(state, 0, sizeof(*state));
	state->channel = channel;
	state->self = self;
}

/* The highest version in both ranges, 0 if none. */
static uint32_t negotiate(uint32_t a_min, uint32_t a_max, uint32_t b_min, uint32_t b_max)
{
	uint32_t hi = a_max < b_max ? a_max : b_max;
	uint32_t lo = a_min > b_min ? a_min : b_min;
	return hi >= lo ? hi : 0;
}

/* The client streams stdin once the service may run: on a SERVICE channel as
 * soon as SERVICE_START is sent, on a CALL channel once ALLOWED came back. */
static bool client_streams_open(const struct qrpc_state *s)
{
	if (!(s->phase_tx & PH_REQUEST))
		return false;
	if (s->channel == QRPC_CHANNEL_CALL)
		return s->phase_rx & PH_ALLOWED;
	return true;
}

/* The server streams stdout/stderr once the service runs: on a SERVICE
 * channel once SERVICE_START arrived, on a CALL channel once it sent ALLOWED. */
static bool server_streams_open(const struct qrpc_state *s)
{
	if (s->channel == QRPC_CHANNEL_CALL)
		return s->phase_tx & PH_ALLOWED;
	return s->phase_rx & PH_REQUEST;
}

int qrpc_state_parse(struct qrpc_state *state, const uint8_t *buf, size_t len,
		     struct qrpc_msg *ret_msg, size_t *ret_used)
{
	struct qrpc_msg untrusted_msg;
	size_t used;
	int r = qrpc_msg_parse(buf, len, &untrusted_msg, &used);
	if (r < 0)
		return r;
	r = qrpc_state_on_recv(state, &untrusted_msg);
	if (r < 0)
		return r;
	*ret_msg = untrusted_msg;
	*ret_used = used;
	return 0;
}

bool qrpc_state_is_done(const struct qrpc_state *state)
{
	/* The side that sends EXIT (or a refusal) is the server. */
	unsigned ph = state->self == QRPC_SIDE_SERVER ? state->phase_tx : state->phase_rx;
	if (ph & PH_EXIT)
		return true;
	return (ph & PH_RESULT) && !(ph & PH_ALLOWED);
}

int qrpc_state_on_send(struct qrpc_state *s, const struct qrpc_msg *msg)
{
	bool client = s->self == QRPC_SIDE_CLIENT;

	if (msg->type == QRPC_MSG_HELLO) {
		if (s->phase_tx & PH_HELLO)
			return -EPROTO;
		/* the version is agreed from what the two HELLOs offered */
		if (s->phase_rx & PH_HELLO) {
			uint32_t v = negotiate(msg->u.hello.version_min, msg->u.hello.version_max,
					       s->rx_min, s->rx_max);
			if (v == 0)
				return -EPROTO; /* this HELLO has no version in common */
			s->version = v;
		}
		s->tx_min = msg->u.hello.version_min;
		s->tx_max = msg->u.hello.version_max;
		s->phase_tx |= PH_HELLO;
		return 0;
	}
	/* Nothing but HELLO before the version is known, nothing once done. */
	if (!(s->phase_tx & PH_HELLO) || s->version == 0 || qrpc_state_is_done(s))
		return -EPROTO;

	switch (msg->type) {
	case QRPC_MSG_CALL_REQUEST:
	case QRPC_MSG_SERVICE_START:
	case QRPC_MSG_SERVICE_START_AS:
		if (!client || (s->phase_tx & PH_REQUEST) ||
		    (msg->type == QRPC_MSG_CALL_REQUEST) != (s->channel == QRPC_CHANNEL_CALL) ||
		    (msg->type == QRPC_MSG_SERVICE_START_AS && s->version < 2))
			return -EPROTO;
		s->phase_tx |= PH_REQUEST;
		return 0;
	case QRPC_MSG_CALL_RESULT:
		if (client || s->channel != QRPC_CHANNEL_CALL || !(s->phase_rx & PH_REQUEST) ||
		    (s->phase_tx & PH_RESULT))
			return -EPROTO;
		s->phase_tx |= PH_RESULT;
		if (msg->u.call_result.status == QRPC_CALL_ALLOWED)
			s->phase_tx |= PH_ALLOWED;
		return 0;
	case QRPC_MSG_STDIN:
		if (!client || !client_streams_open(s) || (s->eof_tx & STREAM_BIT(QRPC_STREAM_STDIN)))
			return -EPROTO;
		return 0;
	case QRPC_MSG_STDOUT:
	case QRPC_MSG_STDERR: {
		unsigned bit = STREAM_BIT(msg->type == QRPC_MSG_STDOUT ? QRPC_STREAM_STDOUT
									: QRPC_STREAM_STDERR);
		if (client || !server_streams_open(s) || (s->eof_tx & bit))
			return -EPROTO;
		return 0;
	}
	case QRPC_MSG_EOF: {
		/* range first: the shift below is only defined for 0..2 */
		if (msg->u.eof.stream > QRPC_STREAM_STDERR)
			return -EPROTO;
		unsigned bit = STREAM_BIT(msg->u.eof.stream);
		if (s->eof_tx & bit)
			return -EPROTO;
		if (client ? (msg->u.eof.stream != QRPC_STREAM_STDIN || !client_streams_open(s))
			   : (msg->u.eof.stream == QRPC_STREAM_STDIN || !server_streams_open(s)))
			return -EPROTO;
		s->eof_tx |= bit;
		return 0;
	}
	case QRPC_MSG_EXIT:
		if (client || !server_streams_open(s) || (s->eof_tx & OUT_STREAMS) != OUT_STREAMS)
			return -EPROTO;
		s->phase_tx |= PH_EXIT;
		return 0;
	default:
		return -EPROTO;
	}
}

int qrpc_state_on_recv(struct qrpc_state *s, const struct qrpc_msg *msg)
{
	bool client = s->self == QRPC_SIDE_CLIENT;

	if (msg->type == QRPC_MSG_HELLO) {
		if (s->phase_rx & PH_HELLO)
			return -EPROTO;
		/* against the range our HELLO offered, or (not sent yet) the
		 * range this code speaks */
		bool sent = s->phase_tx & PH_HELLO;
		uint32_t v = negotiate(msg->u.hello.version_min, msg->u.hello.version_max,
				       sent ? s->tx_min : QRPC_PROTOCOL_VERSION_MIN,
				       sent ? s->tx_max : QRPC_PROTOCOL_VERSION);
		if (v == 0)
			return -EPROTO; /* no version in common */
		s->rx_min = msg->u.hello.version_min;
		s->rx_max = msg->u.hello.version_max;
		s->version = sent ? v : 0; /* agreed once both HELLOs are known */
		s->phase_rx |= PH_HELLO;
		return 0;
	}
	/* The peer may send nothing else before it has seen our HELLO and we
	 * have seen its. */
	if (!(s->phase_rx & PH_HELLO) || !(s->phase_tx & PH_HELLO))
		return -EPROTO;
	/* A client expects nothing after EXIT or a refusal.  A server that has
	 * finished may still see stdin that crossed its EXIT in flight. */
	if (client && qrpc_state_is_done(s))
		return -EPROTO;

	switch (msg->type) {
	case QRPC_MSG_CALL_REQUEST:
	case QRPC_MSG_SERVICE_START:
	case QRPC_MSG_SERVICE_START_AS:
		if (client || (s->phase_rx & PH_REQUEST) ||
		    (msg->type == QRPC_MSG_CALL_REQUEST) != (s->channel == QRPC_CHANNEL_CALL) ||
		    (msg->type == QRPC_MSG_SERVICE_START_AS && s->version < 2))
			return -EPROTO;
		s->phase_rx |= PH_REQUEST;
		return 0;
	case QRPC_MSG_CALL_RESULT:
		if (!client || s->channel != QRPC_CHANNEL_CALL || !(s->phase_tx & PH_REQUEST) ||
		    (s->phase_rx & PH_RESULT))
			return -EPROTO;
		s->phase_rx |= PH_RESULT;
		if (msg->u.call_result.status == QRPC_CALL_ALLOWED)
			s->phase_rx |= PH_ALLOWED;
		return 0;
	case QRPC_MSG_STDIN:
		if (client || !server_streams_open(s) || (s->eof_rx & STREAM_BIT(QRPC_STREAM_STDIN)))
			return -EPROTO;
		return 0;
	case QRPC_MSG_STDOUT:
	case QRPC_MSG_STDERR: {
		unsigned bit = STREAM_BIT(msg->type == QRPC_MSG_STDOUT ? QRPC_STREAM_STDOUT
									: QRPC_STREAM_STDERR);
		if (!client || !client_streams_open(s) || (s->eof_rx & bit))
			return -EPROTO;
		return 0;
	}
	case QRPC_MSG_EOF: {
		/* range first: the shift below is only defined for 0..2 */
		if (msg->u.eof.stream > QRPC_STREAM_STDERR)
			return -EPROTO;
		unsigned bit = STREAM_BIT(msg->u.eof.stream);
		if (s->eof_rx & bit)
			return -EPROTO;
		if (client ? (msg->u.eof.stream == QRPC_STREAM_STDIN || !client_streams_open(s))
			   : (msg->u.eof.stream != QRPC_STREAM_STDIN || !server_streams_open(s)))
			return -EPROTO;
		s->eof_rx |= bit;
		return 0;
	}
	case QRPC_MSG_EXIT:
		if (!client || !client_streams_open(s) || (s->eof_rx & OUT_STREAMS) != OUT_STREAMS)
			return -EPROTO;
		s->phase_rx |= PH_EXIT;
		return 0;
	default:
		return -EPROTO;
	}
}

void qrpc_buf_make_room(uint8_t *buf, size_t cap, size_t *start, size_t *end, size_t need)
{
	if (*start == *end) {
		*start = *end = 0;
	} else if (cap - *end < need && *start > 0) {
		memmove(buf, buf + *start, *end - *start);
		*end -= *start;
		*start = 0;
	}
}
