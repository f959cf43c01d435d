/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The byte stream the throughput tools send and check
 * (bench/rpc-bench-helper.c, vmm/tests/vsock-guest-tool.c): a fixed block
 * of xorshift output repeated.  Its length (a prime) is no multiple of
 * any buffer, message or packet size, so a lost, doubled or reordered
 * chunk shows.  The block is stored with its first STREAM_PATTERN_SLICE
 * bytes again behind it, so any slice of up to that many bytes from any
 * offset is contiguous: sending is one write(), checking one memcmp(), and
 * the tools take little CPU from what they measure.  Header only: each
 * tool gets its own copy of the block.
 */
#ifndef STREAM_PATTERN_H
#define STREAM_PATTERN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define STREAM_PATTERN_PERIOD 1048573u /* prime */
#define STREAM_PATTERN_SLICE  65536u   /* longest slice stream_pattern_at() gives */

static uint8_t stream_pattern[STREAM_PATTERN_PERIOD + STREAM_PATTERN_SLICE];

/* The pattern bytes at stream offset OFF: STREAM_PATTERN_SLICE of them
 * are readable there. */
static inline const uint8_t *stream_pattern_at(uint64_t off)
{
	static bool ready;

	if (!ready) {
		uint32_t x = 2463534242u;

		for (size_t i = 0; i < STREAM_PATTERN_PERIOD; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			stream_pattern[i] = (uint8_t)x;
		}
		memcpy(stream_pattern + STREAM_PATTERN_PERIOD, stream_pattern, STREAM_PATTERN_SLICE);
		ready = true;
	}
	return stream_pattern + off % STREAM_PATTERN_PERIOD;
}

#endif
