/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Table-driven test of the name, code point and symlink checks
 * (tests/vectors.txt), plus the codec's round trips and refusals. */
#include "fc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

static void expect(bool cond, const char *what, int line)
{
	checks++;
	if (!cond) {
		failures++;
		fprintf(stderr, "not ok - line %d: %s\n", line, what);
	}
}

/* unescapes \xNN in place; returns the length */
static size_t unescape(char *s)
{
	size_t o = 0;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1] == 'x' && s[i + 2] && s[i + 3]) {
			char h[3] = { s[i + 2], s[i + 3], 0 };
			s[o++] = (char)strtoul(h, NULL, 16);
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = 0;
	return o;
}

static size_t utf8_encode(uint32_t c, char *b)
{
	if (c < 0x80) {
		b[0] = (char)c;
		return 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	b[0] = (char)(0xF0 | (c >> 18));
	b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	b[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

static void codec_checks(void)
{
	struct qfc_limits l;
	qfc_limits_default(&l);
	char err[512];
	/* CRC32C check value, software and hardware paths agree */
	expect(qfc_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value", __LINE__);
	uint8_t big[10007];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	uint32_t hw = qfc_crc32c(0, big, sizeof(big));
	uint32_t sw = qfc_crc32c_software(0, big, sizeof(big));
	expect(qfc_crc32c_software(0, "123456789", 9) == 0xE3069283u,
	       "crc32c (software) check value", __LINE__);
	expect(hw == sw, "crc32c hardware == software", __LINE__);
	for (size_t n = 0; n < 40; n++) /* every tail length and alignment */
		expect(qfc_crc32c(7, big + n % 8, n) == qfc_crc32c_software(7, big + n % 8, n),
		       "crc32c short buffers", __LINE__);
	/* buffers long enough for the three-lane path, at every alignment,
	 * just under, at and over its multiples */
	static uint8_t huge[3 * 3 * 4096 + 64];
	for (size_t i = 0; i < sizeof(huge); i++)
		huge[i] = (uint8_t)(i * 2654435761u >> 13);
	static const size_t lens[] = { 3 * 4096 - 1, 3 * 4096, 3 * 4096 + 1, 6 * 4096 + 7,
				       3 * 3 * 4096, 3 * 3 * 4096 + 63 };
	int lane_bad = 0;
	for (size_t a = 0; a < 8; a++)
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
			if (lens[k] + a <= sizeof(huge) &&
			    qfc_crc32c(0x1234, huge + a, lens[k]) !=
				    qfc_crc32c_software(0x1234, huge + a, lens[k]))
				lane_bad++;
	expect(lane_bad == 0, "crc32c three-lane path == table", __LINE__);
	expect(qfc_crc32c(qfc_crc32c(0, big, 5000), big + 5000, sizeof(big) - 5000) == hw,
	       "crc32c incremental", __LINE__);

	uint8_t h[QFC_ENTRY_HEADER_SIZE];
	struct qfc_entry e = { .type = QFC_T_FILE, .mode = 0644, .name_len = 3, .mtime_nsec = 5,
			       .size = 77, .mtime_sec = -12345 }, d;
	qfc_entry_encode(&e, h);
	expect(qfc_entry_decode(h, &l, &d, err, sizeof(err)) == 0 && memcmp(&e, &d, sizeof(e)) == 0,
	       "entry round trip", __LINE__);
	struct { struct qfc_entry e; const char *what; } bad[] = {
		{ { .type = 0, .name_len = 1 }, "type 0" },
		{ { .type = 6, .name_len = 1 }, "type 6 (unknown, e.g. a hard link)" },
		{ { .type = QFC_T_FILE, .mode = 0100644, .name_len = 1 }, "mode with type bits" },
		{ { .type = QFC_T_FILE, .name_len = 0 }, "empty name" },
		{ { .type = QFC_T_FILE, .name_len = 4096 }, "name of 4096" },
		{ { .type = QFC_T_FILE, .name_len = 1, .mtime_nsec = 1000000000 }, "nsec 1e9" },
		{ { .type = QFC_T_DIR, .name_len = 1, .size = 1 }, "directory with size" },
		{ { .type = QFC_T_SYMLINK, .name_len = 1, .size = 0 }, "empty symlink" },
		{ { .type = QFC_T_SYMLINK, .name_len = 1, .size = 4096 }, "symlink of 4096" },
		{ { .type = QFC_T_END, .name_len = 1 }, "end with a name" },
		{ { .type = QFC_T_FILE, .name_len = 1, .size = (UINT64_C(1) << 40) + 1 }, "file over max-bytes" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		qfc_entry_encode(&bad[i].e, h);
		err[0] = 0;
		int r = qfc_entry_decode(h, &l, &d, err, sizeof(err));
		expect(r < 0 && err[0], bad[i].what, __LINE__);
	}
	uint8_t sh[QFC_STREAM_HEADER_SIZE];
	qfc_stream_header_encode(sh);
	expect(qfc_stream_header_decode(sh, err, sizeof(err)) == 0, "stream header", __LINE__);
	sh[4] = 2;
	expect(qfc_stream_header_decode(sh, err, sizeof(err)) < 0 && strstr(err, "version 2"),
	       "version 2 refused, named", __LINE__);
	/* empty symlink target, which the table cannot express */
	expect(qfc_symlink_check("b/c", 3, "", 0, &l, err, sizeof(err)) < 0, "empty target",
	       __LINE__);
	/* limits */
	struct qfc_limits s = l;
	s.max_depth = 3;
	expect(qfc_path_check("a/b/c", 5, &s, NULL, err, sizeof(err)) == 0, "depth 3 ok", __LINE__);
	expect(qfc_path_check("a/b/c/d", 7, &s, NULL, err, sizeof(err)) == -ELOOP, "depth 4 refused",
	       __LINE__);
	char longname[300];
	memset(longname, 'x', 256);
	expect(qfc_path_check(longname, 255, &l, NULL, err, sizeof(err)) == 0, "255-byte name",
	       __LINE__);
	expect(qfc_path_check(longname, 256, &l, NULL, err, sizeof(err)) == -ENAMETOOLONG,
	       "256-byte name refused", __LINE__);
	/* settings */
	struct qfc_limits c = l;
	char *user = NULL, *inc = NULL;
	const char *good = "# c\nmax-entries = 10\n  max-depth=4\nuser = nobody\nincoming-dir = /x\n";
	expect(qfc_config_parse(good, strlen(good), "f", &c, &user, &inc, err, sizeof(err)) == 0 &&
	       c.max_entries == 10 && c.max_depth == 4 && user && strcmp(user, "nobody") == 0 &&
	       inc && strcmp(inc, "/x") == 0, "settings parsed", __LINE__);
	free(user);
	free(inc);
	user = inc = NULL;
	c = l;
	const char *badc = "max-entries = 10\nmax-depth = 999\n";
	expect(qfc_config_parse(badc, strlen(badc), "f.conf", &c, &user, &inc, err, sizeof(err)) < 0 &&
	       strstr(err, "f.conf:2:") && c.max_entries == l.max_entries, "bad setting named, "
	       "nothing changed", __LINE__);
	const char *badk = "colour = red\n";
	expect(qfc_config_parse(badk, strlen(badk), "f.conf", &c, &user, &inc, err, sizeof(err)) < 0 &&
	       strstr(err, "f.conf:1: unknown key"), "unknown key", __LINE__);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s vectors.txt\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	struct qfc_limits l;
	qfc_limits_default(&l);
	char line[1024], err[512];
	int lineno = 0, rows = 0, differs = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = 0;
		char *comment = strstr(line, " #");
		if (comment)
			*comment = 0; /* a trailing comment */
		if (line[0] == '#' || line[0] == 0)
			continue;
		char *tok[5] = { 0 };
		int nt = 0;
		for (char *p = strtok(line, " "); p && nt < 5; p = strtok(NULL, " "))
			tok[nt++] = p;
		rows++;
		bool is_diff = nt >= 1 && strcmp(tok[nt - 1], "differs") == 0;
		if (is_diff) {
			differs++;
			nt--;
		}
		const char *dec = tok[nt - 1];
		bool want = strcmp(dec, "accept") == 0;
		if (!want && strcmp(dec, "refuse") != 0) {
			fprintf(stderr, "line %d: bad decision '%s'\n", lineno, dec);
			return 1;
		}
		if (strcmp(tok[0], "name") == 0 && nt == 3) {
			size_t n = unescape(tok[1]);
			bool got = qfc_path_check(tok[1], n, &l, NULL, err, sizeof(err)) == 0;
			expect(got == want, "name", lineno);
		} else if (strcmp(tok[0], "symlink") == 0 && nt == 4) {
			size_t pn = unescape(tok[1]), tn = unescape(tok[2]);
			bool got = qfc_symlink_check(tok[1], pn, tok[2], tn, &l, err, sizeof(err)) == 0;
			expect(got == want, "symlink", lineno);
		} else if ((strcmp(tok[0], "cp") == 0 || strcmp(tok[0], "byte") == 0) && nt == 3) {
			char *dash = strchr(tok[1], '-');
			unsigned long lo = strtoul(tok[1], NULL, 16);
			unsigned long hi = dash ? strtoul(dash + 1, NULL, 16) : lo;
			int bad = 0;
			for (unsigned long c = lo; c <= hi; c++) {
				bool got;
				if (tok[0][0] == 'b') {
					char b = (char)c;
					got = qfc_path_check(&b, 1, &l, NULL, err, sizeof(err)) == 0;
				} else {
					got = qfc_code_point_is_allowed((uint32_t)c);
					if (c != '/' && c <= 0x1FFFFF) {
						char s[8] = "a";
						size_t n = 1 + utf8_encode((uint32_t)c, s + 1);
						s[n++] = 'b';
						bool in_name = qfc_path_check(s, n, &l, NULL, err, sizeof(err)) == 0;
						if (in_name != got)
							got = !want; /* disagreement is a failure */
					}
				}
				if (got != want && bad++ < 3)
					fprintf(stderr, "line %d: U+%04lX decided wrongly\n", lineno, c);
			}
			expect(bad == 0, "code point range", lineno);
		} else {
			fprintf(stderr, "line %d: malformed row\n", lineno);
			return 1;
		}
	}
	fclose(f);
	codec_checks();
	printf("%d rows (%d marked as deliberate differences from Qubes), %d checks, %d failed\n",
	       rows, differs, checks, failures);
	return failures ? 1 : 0;
}
