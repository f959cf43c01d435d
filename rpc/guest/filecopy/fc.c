/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qube.Filecopy: stream codec and pure validation (see fc.h). */
#include "fc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qfc_limits_default(struct qfc_limits *l)
{
	l->max_entries = 500000;
	l->max_bytes = UINT64_C(1) << 40; /* 1 TiB */
	l->max_depth = 128;
	l->max_path = QFC_PATH_MAX;
	l->max_name = QFC_NAME_MAX;
}

static int fmt_err(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fmt_err(int code, char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ---- CRC32C ---- */

static uint32_t crc_table[8][256];
static int crc_ready; /* 0 not yet, 1 software, 2 hardware */

/*
 * The instruction has a latency of several cycles but can start one per
 * cycle: long buffers are done as three lanes of CRC_LANE bytes at once,
 * and the lanes joined with crc_shift(), which advances a CRC register over
 * CRC_LANE zero bytes (CRC is linear: reg(A B) = shift_|B|(reg(A)) ^
 * reg_0(B)).
 */
#define CRC_LANE 4096u
static uint32_t crc_shift_table[4][256];

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t n);

static uint32_t crc_shift(uint32_t c)
{
	return crc_shift_table[0][c & 0xff] ^ crc_shift_table[1][(c >> 8) & 0xff] ^
	       crc_shift_table[2][(c >> 16) & 0xff] ^ crc_shift_table[3][c >> 24];
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
	/* shifting is linear too: the 32 single-bit registers, then the
	 * tables by combining them */
	static const uint8_t zeros[CRC_LANE];
	uint32_t basis[32];
	for (int i = 0; i < 32; i++)
		basis[i] = crc_soft(1u << i, zeros, CRC_LANE);
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t v = 0;
			for (int bit = 0; bit < 8; bit++)
				if (b >> bit & 1)
					v ^= basis[8 * k + bit];
			crc_shift_table[k][b] = v;
		}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_ready = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
	crc_ready = 1;
#endif
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				   (uint32_t)p[3] << 24);
		c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
		    crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n >= 3 * CRC_LANE) {
		uint64_t c0 = c, c1 = 0, c2 = 0;
		const uint8_t *p1 = p + CRC_LANE, *p2 = p + 2 * CRC_LANE;
		for (size_t i = 0; i < CRC_LANE; i += 8) {
			uint64_t v0, v1, v2;
			memcpy(&v0, p + i, 8);
			memcpy(&v1, p1 + i, 8);
			memcpy(&v2, p2 + i, 8);
			c0 = __builtin_ia32_crc32di(c0, v0);
			c1 = __builtin_ia32_crc32di(c1, v1);
			c2 = __builtin_ia32_crc32di(c2, v2);
		}
		c = crc_shift((uint32_t)c0) ^ (uint32_t)c1;
		c = crc_shift(c) ^ (uint32_t)c2;
		p += 3 * CRC_LANE;
		n -= 3 * CRC_LANE;
	}
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c64;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

uint32_t qfc_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (!crc_ready)
		crc_init();
#if defined(__x86_64__)
	if (crc_ready == 2)
		return ~crc_hw(~crc, buf, len);
#endif
	return ~crc_soft(~crc, buf, len);
}

uint32_t qfc_crc32c_software(uint32_t crc, const void *buf, size_t len)
{
	if (!crc_ready)
		crc_init();
	return ~crc_soft(~crc, buf, len);
}

/* ---- little-endian helpers ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void qfc_stream_header_encode(uint8_t out[QFC_STREAM_HEADER_SIZE])
{
	memcpy(out, QFC_MAGIC, 4);
	put32(out + 4, QFC_VERSION);
	put64(out + 8, 0);
}

void qfc_entry_encode(const struct qfc_entry *e, uint8_t out[QFC_ENTRY_HEADER_SIZE])
{
	put32(out, e->type);
	put32(out + 4, e->mode);
	put32(out + 8, e->name_len);
	put32(out + 12, e->mtime_nsec);
	put64(out + 16, e->size);
	put64(out + 24, (uint64_t)e->mtime_sec);
}

void qfc_trailer_encode(const struct qfc_trailer *t, uint8_t out[QFC_TRAILER_SIZE])
{
	put64(out, t->entries);
	put64(out + 8, t->data_bytes);
	put32(out + 16, t->crc);
	put32(out + 20, t->reserved);
}

void qfc_reply_encode(const struct qfc_reply *r, uint8_t out[QFC_REPLY_HEADER_SIZE])
{
	memcpy(out, QFC_REPLY_MAGIC, 4);
	put32(out + 4, r->status);
	put32(out + 8, r->msg_len);
	put32(out + 12, r->crc);
	put64(out + 16, r->entries);
	put64(out + 24, r->data_bytes);
}

int qfc_stream_header_decode(const uint8_t *untrusted, char *err, size_t errlen)
{
	if (memcmp(untrusted, QFC_MAGIC, 4) != 0)
		return fmt_err(-EPROTO, err, errlen, "not a qube.Filecopy stream (bad magic)");
	uint32_t untrusted_version = get32(untrusted + 4);
	if (untrusted_version != QFC_VERSION)
		return fmt_err(-EPROTO, err, errlen,
			       "stream version %" PRIu32 " refused (this receiver speaks version %u)",
			       untrusted_version, QFC_VERSION);
	uint64_t untrusted_flags = get64(untrusted + 8);
	if (untrusted_flags != 0)
		return fmt_err(-EPROTO, err, errlen,
			       "stream flags 0x%" PRIx64 " refused (no flags are defined)",
			       untrusted_flags);
	return 0;
}

static const char *type_name(uint32_t t)
{
	switch (t) {
	case QFC_T_FILE: return "file";
	case QFC_T_DIR: return "directory";
	case QFC_T_SYMLINK: return "symlink";
	case QFC_T_DIR_END: return "directory end";
	case QFC_T_END: return "end";
	}
	return "?";
}

int qfc_entry_decode(const uint8_t *untrusted, const struct qfc_limits *l,
		     struct qfc_entry *ret_e, char *err, size_t errlen)
{
	struct qfc_entry e = {
		.type = get32(untrusted),
		.mode = get32(untrusted + 4),
		.name_len = get32(untrusted + 8),
		.mtime_nsec = get32(untrusted + 12),
		.size = get64(untrusted + 16),
		.mtime_sec = (int64_t)get64(untrusted + 24),
	};
	if (e.type < QFC_T_FILE || e.type > QFC_T_END)
		return fmt_err(-EPROTO, err, errlen,
			       "entry type %" PRIu32 " refused (known: 1 file, 2 directory, 3 symlink, "
			       "4 directory end, 5 end)",
			       e.type);
	if (e.type == QFC_T_END) {
		if (e.mode || e.name_len || e.mtime_nsec || e.size || e.mtime_sec)
			return fmt_err(-EPROTO, err, errlen, "end header with non-zero fields refused");
		*ret_e = e;
		return 0;
	}
	if (e.mode & ~07777u)
		return fmt_err(-EPROTO, err, errlen,
			       "%s mode 0%" PRIo32 " refused (only permission bits are sent)",
			       type_name(e.type), e.mode);
	if (e.name_len == 0 || e.name_len > l->max_path)
		return fmt_err(-ENAMETOOLONG, err, errlen,
			       "%s name length %" PRIu32 " refused (1..%" PRIu32 ")", type_name(e.type),
			       e.name_len, l->max_path);
	if (e.mtime_nsec >= 1000000000u)
		return fmt_err(-EPROTO, err, errlen, "%s mtime nanoseconds %" PRIu32 " refused",
			       type_name(e.type), e.mtime_nsec);
	switch (e.type) {
	case QFC_T_FILE:
		if (e.size > l->max_bytes)
			return fmt_err(-EFBIG, err, errlen,
				       "file of %" PRIu64 " bytes refused (limit max-bytes %" PRIu64 ")",
				       e.size, l->max_bytes);
		break;
	case QFC_T_SYMLINK:
		if (e.size == 0 || e.size > l->max_path)
			return fmt_err(-ENAMETOOLONG, err, errlen,
				       "symlink target length %" PRIu64 " refused (1..%" PRIu32 ")",
				       e.size, l->max_path);
		break;
	default:
		if (e.size != 0)
			return fmt_err(-EPROTO, err, errlen, "%s with size %" PRIu64 " refused",
				       type_name(e.type), e.size);
	}
	*ret_e = e;
	return 0;
}

int qfc_trailer_decode(const uint8_t *untrusted, struct qfc_trailer *ret_t, char *err,
		       size_t errlen)
{
	struct qfc_trailer t = {
		.entries = get64(untrusted),
		.data_bytes = get64(untrusted + 8),
		.crc = get32(untrusted + 16),
		.reserved = get32(untrusted + 20),
	};
	if (t.reserved != 0)
		return fmt_err(-EPROTO, err, errlen, "trailer reserved field not zero");
	*ret_t = t;
	return 0;
}

int qfc_reply_decode(const uint8_t *untrusted, struct qfc_reply *ret_r, char *err,
		     size_t errlen)
{
	if (memcmp(untrusted, QFC_REPLY_MAGIC, 4) != 0)
		return fmt_err(-EPROTO, err, errlen, "not a qube.Filecopy reply (bad magic)");
	struct qfc_reply r = {
		.status = get32(untrusted + 4),
		.msg_len = get32(untrusted + 8),
		.crc = get32(untrusted + 12),
		.entries = get64(untrusted + 16),
		.data_bytes = get64(untrusted + 24),
	};
	if (r.msg_len > QFC_REPLY_MAX_MSG)
		return fmt_err(-EPROTO, err, errlen, "reply message of %" PRIu32 " bytes refused",
			       r.msg_len);
	*ret_r = r;
	return 0;
}

/* ---- names ---- */

/*
 * The allow-list (docs/filecopy.md, "Names"), generated by
 * tests/derive-vectors.py --c-table: the code points Qubes OS accepts
 * (letters, digits, punctuation and currency of left-to-right scripts it
 * recommends; no controls, format characters, spaces other than U+0020,
 * combining marks, private use, noncharacters, symbols or emoji), restricted
 * to the blocks listed in that script and to characters that Unicode NFC
 * leaves unchanged.  Sorted, disjoint, inclusive.
 */
static const uint32_t allowed_ranges[][2] = {
	{ 0x0020, 0x007E },
	{ 0x00A1, 0x00A5 },
	{ 0x00A7, 0x00A7 },
	{ 0x00AA, 0x00AC },
	{ 0x00B1, 0x00B3 },
	{ 0x00B5, 0x00B7 },
	{ 0x00B9, 0x02C1 },
	{ 0x02C6, 0x02D1 },
	{ 0x02E0, 0x02E4 },
	{ 0x02EC, 0x02EC },
	{ 0x02EE, 0x02EE },
	{ 0x0370, 0x0373 },
	{ 0x0376, 0x0377 },
	{ 0x037A, 0x037D },
	{ 0x037F, 0x037F },
	{ 0x0386, 0x0386 },
	{ 0x0388, 0x038A },
	{ 0x038C, 0x038C },
	{ 0x038E, 0x03A1 },
	{ 0x03A3, 0x03E1 },
	{ 0x03F0, 0x0481 },
	{ 0x048A, 0x052F },
	{ 0x1C80, 0x1C88 },
	{ 0x1D00, 0x1DBF },
	{ 0x1E00, 0x1F15 },
	{ 0x1F18, 0x1F1D },
	{ 0x1F20, 0x1F45 },
	{ 0x1F48, 0x1F4D },
	{ 0x1F50, 0x1F57 },
	{ 0x1F59, 0x1F59 },
	{ 0x1F5B, 0x1F5B },
	{ 0x1F5D, 0x1F5D },
	{ 0x1F5F, 0x1F70 },
	{ 0x1F72, 0x1F72 },
	{ 0x1F74, 0x1F74 },
	{ 0x1F76, 0x1F76 },
	{ 0x1F78, 0x1F78 },
	{ 0x1F7A, 0x1F7A },
	{ 0x1F7C, 0x1F7C },
	{ 0x1F80, 0x1FB4 },
	{ 0x1FB6, 0x1FBA },
	{ 0x1FBC, 0x1FBC },
	{ 0x1FC2, 0x1FC4 },
	{ 0x1FC6, 0x1FC8 },
	{ 0x1FCA, 0x1FCA },
	{ 0x1FCC, 0x1FCC },
	{ 0x1FD0, 0x1FD2 },
	{ 0x1FD6, 0x1FDA },
	{ 0x1FE0, 0x1FE2 },
	{ 0x1FE4, 0x1FEA },
	{ 0x1FEC, 0x1FEC },
	{ 0x1FF2, 0x1FF4 },
	{ 0x1FF6, 0x1FF8 },
	{ 0x1FFA, 0x1FFA },
	{ 0x1FFC, 0x1FFC },
	{ 0x2010, 0x2027 },
	{ 0x2030, 0x205E },
	{ 0x20A0, 0x20C0 },
	{ 0x2C60, 0x2C7F },
	{ 0x3001, 0x3003 },
	{ 0x3005, 0x3011 },
	{ 0x3014, 0x301F },
	{ 0x3030, 0x3035 },
	{ 0x303B, 0x303C },
	{ 0x3041, 0x3096 },
	{ 0x309D, 0x30FF },
	{ 0x3105, 0x312F },
	{ 0x3131, 0x318E },
	{ 0x31A0, 0x31BF },
	{ 0x31F0, 0x31FF },
	{ 0x3400, 0x4DBF },
	{ 0x4E00, 0x9FFF },
	{ 0xA640, 0xA66E },
	{ 0xA673, 0xA673 },
	{ 0xA67E, 0xA69D },
	{ 0xA722, 0xA788 },
	{ 0xA78B, 0xA7CA },
	{ 0xA7D0, 0xA7D1 },
	{ 0xA7D3, 0xA7D3 },
	{ 0xA7D5, 0xA7D9 },
	{ 0xA7F2, 0xA7FF },
	{ 0xAB30, 0xAB5A },
	{ 0xAB5C, 0xAB69 },
	{ 0xAC00, 0xD7A3 },
	{ 0xFF01, 0xFF3D },
	{ 0xFF3F, 0xFF3F },
	{ 0xFF41, 0xFFBE },
	{ 0xFFC2, 0xFFC7 },
	{ 0xFFCA, 0xFFCF },
	{ 0xFFD2, 0xFFD7 },
	{ 0xFFDA, 0xFFDC },
	{ 0xFFE0, 0xFFE2 },
	{ 0xFFE5, 0xFFE6 },
	{ 0xFFE9, 0xFFEC },
	{ 0x10780, 0x10785 },
	{ 0x10787, 0x107B0 },
	{ 0x107B2, 0x107BA },
	{ 0x1AFF0, 0x1AFF3 },
	{ 0x1AFF5, 0x1AFFB },
	{ 0x1AFFD, 0x1AFFE },
	{ 0x1B000, 0x1B122 },
	{ 0x1B132, 0x1B132 },
	{ 0x1B150, 0x1B152 },
	{ 0x1B155, 0x1B155 },
	{ 0x1B164, 0x1B167 },
	{ 0x1DF00, 0x1DF1E },
	{ 0x1DF25, 0x1DF2A },
	{ 0x20000, 0x2A6DF },
	{ 0x2A700, 0x2B739 },
	{ 0x2B740, 0x2B81D },
	{ 0x2B820, 0x2CEA1 },
	{ 0x2CEB0, 0x2EBE0 },
	{ 0x30000, 0x3134A },
	{ 0x31350, 0x323AF },
};

bool qfc_code_point_is_allowed(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(allowed_ranges) / sizeof(allowed_ranges[0]);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < allowed_ranges[mid][0])
			hi = mid;
		else if (cp > allowed_ranges[mid][1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Decodes one well-formed UTF-8 sequence at p (n bytes left); returns its
 * length, or 0 when malformed (overlong, surrogate, > U+10FFFF, cut). */
static size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *ret_cp)
{
	uint8_t b = p[0];
	size_t len;
	uint32_t cp, min;
	if (b < 0x80) {
		*ret_cp = b;
		return 1;
	} else if ((b & 0xE0) == 0xC0) {
		len = 2, cp = b & 0x1F, min = 0x80;
	} else if ((b & 0xF0) == 0xE0) {
		len = 3, cp = b & 0x0F, min = 0x800;
	} else if ((b & 0xF8) == 0xF0) {
		len = 4, cp = b & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	*ret_cp = cp;
	return len;
}

/* One component [p, p+n): 1..max_name allowed characters, not "." or "..". */
static int component_check(const uint8_t *p, size_t n, size_t at, const struct qfc_limits *l,
			   char *err, size_t errlen)
{
	if (n == 0)
		return fmt_err(-EILSEQ, err, errlen, "empty path component at byte %zu (\"//\", "
			       "leading or trailing \"/\")", at);
	if (n > l->max_name)
		return fmt_err(-ENAMETOOLONG, err, errlen,
			       "path component of %zu bytes at byte %zu refused (limit %" PRIu32 ")", n,
			       at, l->max_name);
	if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return fmt_err(-EILSEQ, err, errlen, "\"%.*s\" path component at byte %zu refused",
			       (int)n, (const char *)p, at);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_decode(p + i, n - i, &cp);
		if (k == 0)
			return fmt_err(-EILSEQ, err, errlen, "malformed UTF-8 at byte %zu", at + i);
		if (!qfc_code_point_is_allowed(cp))
			return fmt_err(-EILSEQ, err, errlen,
				       "character U+%04" PRIX32 " at byte %zu is not allowed in names", cp,
				       at + i);
		i += k;
	}
	return 0;
}

int qfc_path_check(const char *untrusted_path, size_t len, const struct qfc_limits *l,
		   unsigned *ret_depth, char *err, size_t errlen)
{
	const uint8_t *p = (const uint8_t *)untrusted_path;
	if (len == 0)
		return fmt_err(-EILSEQ, err, errlen, "empty path refused");
	if (len > l->max_path)
		return fmt_err(-ENAMETOOLONG, err, errlen,
			       "path of %zu bytes refused (limit max-path %" PRIu32 ")", len, l->max_path);
	if (p[0] == '/')
		return fmt_err(-EILSEQ, err, errlen, "absolute path refused");
	unsigned depth = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] == 0)
			return fmt_err(-EILSEQ, err, errlen, "NUL byte at byte %zu refused", i);
		if (i == len || p[i] == '/') {
			int r = component_check(p + start, i - start, start, l, err, errlen);
			if (r < 0)
				return r;
			if (++depth > l->max_depth)
				return fmt_err(-ELOOP, err, errlen,
					       "path deeper than %" PRIu32 " components refused (max-depth)",
					       l->max_depth);
			start = i + 1;
		}
	}
	if (ret_depth)
		*ret_depth = depth;
	return 0;
}

int qfc_symlink_check(const char *path, size_t path_len, const char *untrusted_target,
		      size_t target_len, const struct qfc_limits *l, char *err, size_t errlen)
{
	unsigned depth;
	int r = qfc_path_check(path, path_len, l, &depth, err, errlen);
	if (r < 0)
		return r;
	if (depth < 2)
		return fmt_err(-EILSEQ, err, errlen,
			       "top-level symlink refused (it could only point outside the transfer)");
	size_t n = target_len;
	const char *t = untrusted_target;
	if (n == 0)
		return fmt_err(-EILSEQ, err, errlen, "empty symlink target refused");
	if (t[0] == '/')
		return fmt_err(-EILSEQ, err, errlen, "absolute symlink target refused");
	if (n > 1 && t[n - 1] == '/')
		n--; /* one trailing "/" is harmless: "a/" is "a" as a directory */
	/* leading ".." components, then names */
	unsigned up = 0;
	size_t i = 0;
	while (n - i >= 2 && t[i] == '.' && t[i + 1] == '.' && (n - i == 2 || t[i + 2] == '/')) {
		up++;
		if (n - i == 2) {
			i = n;
			break;
		}
		i += 3;
		if (i == n) /* "..//": the one trailing "/" is gone, this is another */
			return fmt_err(-EILSEQ, err, errlen,
				       "symlink target: empty path component (\"//\" or a second "
				       "trailing \"/\") refused");
	}
	/* The link lives in a directory depth-1 components down from the
	 * incoming directory; going up more than depth-2 leaves the top-level
	 * entry. */
	if (up > depth - 2)
		return fmt_err(-EILSEQ, err, errlen,
			       "symlink target goes %u level(s) up from a link %u level(s) below its "
			       "top-level entry: it would point outside the transfer",
			       up, depth - 2);
	if (i == n)
		return 0; /* only ".." components */
	r = qfc_path_check(t + i, n - i, l, NULL, err, errlen);
	if (r < 0) {
		/* say it is about the target, not the entry's name */
		char inner[256];
		snprintf(inner, sizeof(inner), "%s", err ? err : "");
		return fmt_err(r, err, errlen, "symlink target: %s", inner);
	}
	return 0;
}

/* ---- settings ---- */

static int parse_u64(const char *s, uint64_t *ret)
{
	if (!*s)
		return -EINVAL;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

int qfc_config_parse(const char *text, size_t len, const char *filename,
		     struct qfc_limits *limits, char **ret_user, char **ret_incoming, char *err,
		     size_t errlen)
{
	struct qfc_limits l = *limits;
	char user[256] = "", incoming[4096] = "";
	bool have_user = false, have_incoming = false;
	unsigned lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		size_t eol = pos;
		while (eol < len && text[eol] != '\n')
			eol++;
		lineno++;
		char line[4200];
		size_t ll = eol - pos;
		if (ll >= sizeof(line))
			return fmt_err(-EINVAL, err, errlen, "%s:%u: line too long", filename, lineno);
		memcpy(line, text + pos, ll);
		line[ll] = 0;
		pos = eol + 1;
		if (memchr(line, 0, ll))
			return fmt_err(-EINVAL, err, errlen, "%s:%u: NUL byte", filename, lineno);
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '#' || *s == 0)
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			return fmt_err(-EINVAL, err, errlen, "%s:%u: expected \"key = value\"", filename,
				       lineno);
		char *ke = eq;
		while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
			ke--;
		*ke = 0;
		char *v = eq + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
			ve--;
		*ve = 0;
		static const char *const keys[] = { "max-entries", "max-bytes", "max-depth",
						    "max-path", "max-name", "user", "incoming-dir" };
		bool known = false;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			known = known || strcmp(s, keys[k]) == 0;
		if (!known)
			return fmt_err(-EINVAL, err, errlen,
				       "%s:%u: unknown key \"%s\" (known: max-entries, max-bytes, "
				       "max-depth, max-path, max-name, user, incoming-dir)",
				       filename, lineno, s);
		uint64_t n = 0;
		bool numeric = strcmp(s, "user") != 0 && strcmp(s, "incoming-dir") != 0;
		if (numeric && parse_u64(v, &n) < 0)
			return fmt_err(-EINVAL, err, errlen, "%s:%u: %s: \"%s\" is not a number",
				       filename, lineno, s, v);
		if (strcmp(s, "max-entries") == 0) {
			if (n == 0)
				goto bad_range;
			l.max_entries = n;
		} else if (strcmp(s, "max-bytes") == 0) {
			l.max_bytes = n;
		} else if (strcmp(s, "max-depth") == 0) {
			if (n == 0 || n > QFC_DEPTH_MAX)
				goto bad_range;
			l.max_depth = (uint32_t)n;
		} else if (strcmp(s, "max-path") == 0) {
			if (n == 0 || n > QFC_PATH_MAX)
				goto bad_range;
			l.max_path = (uint32_t)n;
		} else if (strcmp(s, "max-name") == 0) {
			if (n == 0 || n > QFC_NAME_MAX)
				goto bad_range;
			l.max_name = (uint32_t)n;
		} else if (strcmp(s, "user") == 0) {
			if (!*v || strlen(v) >= sizeof(user))
				goto bad_range;
			snprintf(user, sizeof(user), "%s", v);
			have_user = true;
		} else { /* incoming-dir */
			if (v[0] != '/' || strlen(v) >= sizeof(incoming))
				return fmt_err(-EINVAL, err, errlen,
					       "%s:%u: incoming-dir: want an absolute path", filename,
					       lineno);
			snprintf(incoming, sizeof(incoming), "%s", v);
			have_incoming = true;
		}
		continue;
bad_range:
		return fmt_err(-EINVAL, err, errlen, "%s:%u: %s: value \"%s\" out of range", filename,
			       lineno, s, v);
	}
	char *u = NULL, *in = NULL;
	if (have_user && ret_user && !(u = strdup(user)))
		return fmt_err(-ENOMEM, err, errlen, "out of memory");
	if (have_incoming && ret_incoming && !(in = strdup(incoming))) {
		free(u);
		return fmt_err(-ENOMEM, err, errlen, "out of memory");
	}
	*limits = l;
	if (u) {
		free(*ret_user);
		*ret_user = u;
	}
	if (in) {
		free(*ret_incoming);
		*ret_incoming = in;
	}
	return 0;
}
