/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the qrpc decoder and state machine fed a whole
 * conversation.  Input layout (also what the seed corpus holds):
 *
 *   byte 0        bit 0: channel (0 CALL, 1 SERVICE); bit 1: our side
 *                 (0 CLIENT, 1 SERVER)
 *   then records  op < 0x80: the peer sends the message that follows
 *                 (8-byte header + payload, parsed with qrpc_msg_parse);
 *                 op >= 0x80: we send message kind (op & 0x0f), no bytes
 *                 (HELLO {1,1} or {1,2}, SERVICE_START(_AS), data, EOF,
 *                 EXIT; see our_msg)
 *
 * Invariants checked (abort on violation):
 *   - a decoded message re-encodes to exactly the bytes it came from;
 *   - what we may send, a mirror of the peer may receive;
 *   - what the peer may send, we accept (except stdin that crossed our
 *     EXIT in flight, which we may accept although the peer is done);
 *   - nothing is accepted from the peer after the state says done
 *     (client side).
 */
#include "qrpc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t encbuf[QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD];

static struct qrpc_msg our_msg(unsigned kind)
{
	static const uint8_t byte = 'z';
	struct qrpc_msg m = { 0 };
	switch (kind) {
	case 0:
		m.type = QRPC_MSG_HELLO;
		m.u.hello.version_min = 1;
		m.u.hello.version_max = 1;
		break;
	case 1:
		m.type = QRPC_MSG_CALL_REQUEST;
		strcpy(m.u.call_request.target, "work");
		strcpy(m.u.call_request.service, "svc");
		break;
	case 2:
	case 3:
	case 4:
		m.type = QRPC_MSG_CALL_RESULT;
		m.u.call_result.status = kind - 2;
		m.u.call_result.exit_code = kind == 2 ? 0 : kind == 3 ? 126 : 125;
		break;
	case 5:
	case 13:
		m.type = kind == 5 ? QRPC_MSG_SERVICE_START : QRPC_MSG_SERVICE_START_AS;
		strcpy(m.u.service_start.source, "src");
		strcpy(m.u.service_start.service, "svc");
		strcpy(m.u.service_start.requested_target, "@default");
		if (kind == 13)
			strcpy(m.u.service_start.user, "nobody");
		break;
	case 6:
	case 7:
	case 8:
		m.type = QRPC_MSG_STDIN + (kind - 6);
		m.u.data.data = &byte;
		m.u.data.len = 1;
		break;
	case 9:
	case 10:
	case 11:
		m.type = QRPC_MSG_EOF;
		m.u.eof.stream = kind - 9;
		break;
	case 12:
		m.type = QRPC_MSG_HELLO;
		m.u.hello.version_min = 1;
		m.u.hello.version_max = 2;
		break;
	default:
		m.type = QRPC_MSG_EXIT;
		m.u.exit.code = kind;
		break;
	}
	return m;
}

static void check_reencode(const struct qrpc_msg *m, const uint8_t *raw, size_t raw_len)
{
	size_t len;
	if (qrpc_msg_encode(m, encbuf, sizeof(encbuf), &len) != 0)
		abort(); /* the decoder accepted what the encoder refuses */
	if (len != raw_len || memcmp(encbuf, raw, len) != 0)
		abort(); /* not a canonical round trip */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qrpc_state us, peer;
	size_t off = 1;

	if (size < 1)
		return 0;
	enum qrpc_channel ch = (data[0] & 1) ? QRPC_CHANNEL_SERVICE : QRPC_CHANNEL_CALL;
	enum qrpc_side side = (data[0] & 2) ? QRPC_SIDE_SERVER : QRPC_SIDE_CLIENT;
	qrpc_state_init(&us, ch, side);
	qrpc_state_init(&peer, ch, side == QRPC_SIDE_CLIENT ? QRPC_SIDE_SERVER : QRPC_SIDE_CLIENT);

	while (off < size) {
		uint8_t op = data[off++];
		if (op >= 0x80) {
			struct qrpc_msg m = our_msg(op & 0x0f);
			if (qrpc_state_on_send(&us, &m) == 0 && qrpc_state_on_recv(&peer, &m) != 0) {
				if (m.type == QRPC_MSG_HELLO)
					return 0; /* no version in common: the connection ends */
				abort();
			}
			continue;
		}
		struct qrpc_msg untrusted_msg;
		size_t used;
		if (qrpc_msg_parse(data + off, size - off, &untrusted_msg, &used) != 0)
			break; /* incomplete or invalid: the connection ends */
		check_reencode(&untrusted_msg, data + off, used);
		off += used;

		bool was_done = qrpc_state_is_done(&us);
		struct qrpc_state peer_before = peer;
		int peer_ok = qrpc_state_on_send(&peer, &untrusted_msg);
		int us_ok = qrpc_state_on_recv(&us, &untrusted_msg);
		if (us_ok != 0) {
			if (peer_ok == 0 && untrusted_msg.type != QRPC_MSG_HELLO)
				abort(); /* a legal peer message refused */
			break;
		}
		if (side == QRPC_SIDE_CLIENT && was_done)
			abort(); /* accepted something after the end */
		if (peer_ok != 0) {
			/* only stdin crossing our EXIT: the peer is already done */
			if (!(side == QRPC_SIDE_SERVER && qrpc_state_is_done(&peer_before)))
				abort();
			peer = peer_before;
		}
	}
	return 0;
}
