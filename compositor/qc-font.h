/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Text drawing for titles, the ask prompt and notices (FreeType). */
#ifndef QC_FONT_H
#define QC_FONT_H

#include <stdint.h>

struct qc_font;

/* Opens the TrueType/OpenType font at PATH for PX-pixel text. */
int qc_font_new(const char *path, int px, struct qc_font **ret_font);
void qc_font_free(struct qc_font *font);
/* Draws UTF-8 TEXT (already sanitised) into the ARGB8888 image PIXELS
 * (W x H, premultiplied, opaque background already filled), baseline at
 * Y, starting at X, in colour FG (0xRRGGBB), clipped to the image and to
 * MAX_X.  Returns the x after the last glyph. */
int qc_font_draw(struct qc_font *font, const char *text, uint32_t fg, uint32_t *pixels,
		 int w, int h, int x, int y, int max_x);
int qc_font_ascent(const struct qc_font *font);

#endif
