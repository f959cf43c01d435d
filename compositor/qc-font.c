/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qc-font.h"

#include <errno.h>
#include <stdlib.h>
#include <ft2build.h>
#include FT_FREETYPE_H

#include "qc-sanitize.h"

struct qc_font {
	FT_Library lib;
	FT_Face face;
	int ascent;
};

int qc_font_new(const char *path, int px, struct qc_font **ret_font)
{
	struct qc_font *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (FT_Init_FreeType(&f->lib)) {
		free(f);
		return -EIO;
	}
	if (FT_New_Face(f->lib, path, 0, &f->face)) {
		FT_Done_FreeType(f->lib);
		free(f);
		return -ENOENT;
	}
	FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)px);
	f->ascent = (int)(f->face->size->metrics.ascender >> 6);
	*ret_font = f;
	return 0;
}

void qc_font_free(struct qc_font *font)
{
	if (!font)
		return;
	FT_Done_Face(font->face);
	FT_Done_FreeType(font->lib);
	free(font);
}

int qc_font_ascent(const struct qc_font *font)
{
	return font->ascent;
}

static uint32_t blend(uint32_t dst, uint32_t fg, unsigned a)
{
	uint32_t out = 0xff000000u;
	for (int sh = 0; sh <= 16; sh += 8) {
		unsigned d = (dst >> sh) & 0xff, s = (fg >> sh) & 0xff;
		out |= ((s * a + d * (255 - a)) / 255) << sh;
	}
	return out;
}

int qc_font_draw(struct qc_font *font, const char *text, uint32_t fg, uint32_t *pixels,
		 int w, int h, int x, int y, int max_x)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t len = 0;
	while (s[len])
		len++;
	if (max_x > w)
		max_x = w;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = qc_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			i++;
			continue;
		}
		i += n;
		if (FT_Load_Char(font->face, cp, FT_LOAD_RENDER))
			continue;
		FT_GlyphSlot g = font->face->glyph;
		int adv = (int)(g->advance.x >> 6);
		if (x + adv > max_x)
			break;
		FT_Bitmap *bm = &g->bitmap;
		if (bm->pixel_mode == FT_PIXEL_MODE_GRAY) {
			for (unsigned r = 0; r < bm->rows; r++) {
				int py = y - g->bitmap_top + (int)r;
				if (py < 0 || py >= h)
					continue;
				for (unsigned c = 0; c < bm->width; c++) {
					int px = x + g->bitmap_left + (int)c;
					if (px < 0 || px >= max_x)
						continue;
					unsigned a = bm->buffer[r * (unsigned)bm->pitch + c];
					if (a)
						pixels[py * w + px] = blend(pixels[py * w + px], fg, a);
				}
			}
		}
		x += adv;
	}
	return x;
}
