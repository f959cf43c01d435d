/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qc-sanitize.h"

#include <errno.h>
#include <string.h>

size_t qc_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp)
{
	if (n == 0)
		return 0;
	unsigned char c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80) {
		*ret_cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return len;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Ranges removed from titles: invisible, format, bidi, layout-changing. */
static const uint32_t hidden_ranges[][2] = {
	{ 0x0000, 0x001f }, /* C0 controls */
	{ 0x007f, 0x009f }, /* DEL, C1 controls */
	{ 0x00ad, 0x00ad }, /* soft hyphen */
	{ 0x034f, 0x034f }, /* combining grapheme joiner */
	{ 0x061c, 0x061c }, /* arabic letter mark */
	{ 0x115f, 0x1160 }, /* hangul fillers */
	{ 0x17b4, 0x17b5 }, /* khmer inherent vowels */
	{ 0x180b, 0x180f }, /* mongolian variation selectors, vowel separator */
	{ 0x200b, 0x200f }, /* zero width space/(non-)joiner, LRM, RLM */
	{ 0x2028, 0x202e }, /* line/paragraph separators, LRE RLE PDF LRO RLO */
	{ 0x2060, 0x206f }, /* word joiner, invisible operators, LRI RLI FSI PDI, ... */
	{ 0x3164, 0x3164 }, /* hangul filler */
	{ 0xd800, 0xf8ff }, /* surrogates (never decoded) and private use */
	{ 0xfdd0, 0xfdef }, /* noncharacters */
	{ 0xfe00, 0xfe0f }, /* variation selectors */
	{ 0xfeff, 0xfeff }, /* zero width no-break space (BOM) */
	{ 0xffa0, 0xffa0 }, /* halfwidth hangul filler */
	{ 0xfff0, 0xfffb }, /* specials, interlinear annotation */
	{ 0x1bca0, 0x1bca3 }, /* shorthand format controls */
	{ 0x1d173, 0x1d17a }, /* musical format controls */
	{ 0xe0000, 0xe0fff }, /* tags, variation selectors supplement */
	{ 0xf0000, 0x10ffff }, /* supplementary private use */
};

bool qc_codepoint_is_hidden(uint32_t cp)
{
	if ((cp & 0xfffe) == 0xfffe) /* U+xFFFE, U+xFFFF noncharacters */
		return true;
	for (size_t i = 0; i < sizeof(hidden_ranges) / sizeof(hidden_ranges[0]); i++)
		if (cp >= hidden_ranges[i][0] && cp <= hidden_ranges[i][1])
			return true;
	return false;
}

static bool is_combining(uint32_t cp)
{
	return (cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
	       (cp >= 0x1dc0 && cp <= 0x1dff) || (cp >= 0x20d0 && cp <= 0x20ff) ||
	       (cp >= 0xfe20 && cp <= 0xfe2f);
}

size_t qc_title_sanitize(const char *untrusted_title, size_t untrusted_len, char *out,
			 size_t out_size)
{
	const unsigned char *s = (const unsigned char *)untrusted_title;
	size_t cap = out_size - 1 < QC_TITLE_MAX ? out_size - 1 : QC_TITLE_MAX;
	size_t o = 0;
	unsigned combining = 0;
	bool pending_space = false;
	for (size_t i = 0; i < untrusted_len;) {
		uint32_t cp;
		size_t n = qc_utf8_decode(s + i, untrusted_len - i, &cp);
		if (n == 0) {
			i++; /* invalid byte: dropped */
			continue;
		}
		i += n;
		if (cp == '\t' || cp == '\n' || cp == '\r')
			cp = ' ';
		if (cp != ' ' && qc_codepoint_is_hidden(cp))
			continue;
		if (cp == ' ') {
			pending_space = o > 0;
			combining = 0;
			continue;
		}
		if (is_combining(cp)) {
			if (o == 0 || pending_space || ++combining > QC_TITLE_MAX_COMBINING)
				continue;
		} else {
			combining = 0;
		}
		char enc[5];
		size_t elen = utf8_encode(cp, enc);
		size_t need = elen + (pending_space ? 1 : 0);
		if (o + need > cap)
			break;
		if (pending_space)
			out[o++] = ' ';
		pending_space = false;
		memcpy(out + o, enc, elen);
		o += elen;
	}
	out[o] = '\0';
	return o;
}

static const struct {
	const char *name;
	uint32_t rgb;
} labels[] = {
	{ "red", 0xcc0000 },    { "orange", 0xf57900 }, { "yellow", 0xedd400 },
	{ "green", 0x73d216 },  { "gray", 0x555555 },   { "blue", 0x3465a4 },
	{ "purple", 0x75507b }, { "black", 0x000000 },
};

int qc_label_parse(const char *name, uint32_t *ret_rgb, const char **ret_name)
{
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (strcmp(name, labels[i].name) == 0) {
			*ret_rgb = labels[i].rgb;
			if (ret_name)
				*ret_name = labels[i].name;
			return 0;
		}
	}
	return -EINVAL;
}
