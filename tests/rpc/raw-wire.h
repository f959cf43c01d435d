/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Raw qrpc bytes for the hostile test peers (rpc-hostile, rpc-evil-agent):
 * they must be able to write what the codec would refuse to encode, so
 * they build messages by hand into OUT.  The includer defines
 * RAW_WIRE_MAX, the size of OUT.
 */
#ifndef RAW_WIRE_H
#define RAW_WIRE_H

#include <stdint.h>
#include <string.h>

#include "qrpc.h"

static uint8_t out[RAW_WIRE_MAX];
static size_t out_len;

static void put32(uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[out_len++] = (uint8_t)(v >> (8 * i));
}

static void header(uint32_t type, uint32_t len)
{
	put32(type);
	put32(len);
}

/* HELLO offering every version this code speaks */
static void hello(void)
{
	header(QRPC_MSG_HELLO, 8);
	put32(QRPC_PROTOCOL_VERSION_MIN);
	put32(QRPC_PROTOCOL_VERSION);
}

#endif
