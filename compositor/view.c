/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Windows: xdg toplevels and popups, their server-side frames and the
 * containment rules (docs/compositor.md, "Frames and containment").
 *
 * A qube view's scene tree holds the client's surface tree and, above it,
 * the frame: a title bar and three borders in the qube's label colour,
 * drawn by the compositor around the extents of every surface of the
 * window (the main surface and all its subsurfaces), so no pixel of the
 * qube lies outside its own frame and the client cannot reach the frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "qc-sanitize.h"

/* Text colour on a label: black on the light labels, white otherwise. */
static uint32_t text_on(uint32_t rgb)
{
	unsigned r = (rgb >> 16) & 0xff, g = (rgb >> 8) & 0xff, b = rgb & 0xff;
	return (r * 299 + g * 587 + b * 114) / 1000 > 150 ? 0x000000 : 0xffffff;
}

struct wlr_scene_node *qc_text_node(struct qc_server *server, struct wlr_scene_node *parent,
				    const char *text, int w, int h, uint32_t fg, uint32_t bg)
{
	if (!server->font || w <= 0 || h <= 0)
		return NULL;
	uint32_t *px = malloc((size_t)w * (size_t)h * 4);
	if (!px)
		return NULL;
	for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
		px[i] = 0xff000000u | bg;
	int asc = qc_font_ascent(server->font);
	int base = (h + asc) / 2 - 1;
	if (base > h - 1)
		base = h - 1;
	qc_font_draw(server->font, text, fg, px, w, h, 2, base, w - 2);
	struct wlr_scene_node *n = qc_compat_image_node_new(parent, px, w, h);
	free(px);
	return n;
}

/* A title bar image: W x H of label colour BG, TEXT in FG inset by the
 * border (left) and 2 px (top, bottom). */
static struct wlr_scene_node *qc_title_bar_node(struct qc_server *server,
						struct wlr_scene_node *parent, const char *text,
						int w, int h, uint32_t bg, uint32_t fg)
{
	if (!server->font || w <= 0 || h <= 4)
		return NULL;
	uint32_t *px = malloc((size_t)w * (size_t)h * 4);
	if (!px)
		return NULL;
	for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
		px[i] = 0xff000000u | bg;
	int inner = h - 4;
	int asc = qc_font_ascent(server->font);
	int base = 2 + (inner + asc) / 2 - 1;
	if (base > h - 3)
		base = h - 3;
	/* text clipped to the rows 2..h-3 and to the columns inside the border */
	uint32_t *rows = px + (size_t)2 * (size_t)w;
	qc_font_draw(server->font, text, fg, rows, w, inner, QC_BORDER + 2, base - 2,
		     w - QC_BORDER - 2);
	struct wlr_scene_node *n = qc_compat_image_node_new(parent, px, w, h);
	free(px);
	return n;
}

static void surface_extent(struct wlr_surface *s, int sx, int sy, void *data)
{
	struct wlr_box *b = data;
	int w = s->current.width, h = s->current.height;
	if (w <= 0 || h <= 0)
		return;
	if (b->width == 0 && b->height == 0) {
		*b = (struct wlr_box){ sx, sy, w, h };
		return;
	}
	int x2 = b->x + b->width, y2 = b->y + b->height;
	if (sx < b->x)
		b->x = sx;
	if (sy < b->y)
		b->y = sy;
	if (sx + w > x2)
		x2 = sx + w;
	if (sy + h > y2)
		y2 = sy + h;
	b->width = x2 - b->x;
	b->height = y2 - b->y;
}

static int frame_top(const struct qc_view *v)
{
	return v->kind == QC_VIEW_TOPLEVEL ? QC_TITLE_H : QC_BORDER;
}

/* Largest content a qube window may have: the output minus its frame. */
static void content_limits(struct qc_server *server, int *ret_w, int *ret_h)
{
	struct wlr_box ob;
	qc_get_output_box(server, &ob);
	*ret_w = ob.width - 2 * QC_BORDER;
	*ret_h = ob.height - QC_TITLE_H - QC_BORDER;
}

static void frame_destroy_title(struct qc_frame *f)
{
	if (f->title_node)
		wlr_scene_node_destroy(f->title_node);
	f->title_node = NULL;
	free(f->title_drawn);
	f->title_drawn = NULL;
}

static void frame_create(struct qc_view *v)
{
	v->frame.tree = qc_compat_tree_new(v->tree);
	wlr_scene_node_set_enabled(v->frame.tree, v->server->borders);
}

/* Places side I of the frame at X,Y with size W x H (nothing when empty),
 * drawing it again only when its size changed. */
static void frame_side(struct qc_view *v, int i, int x, int y, int w, int h)
{
	struct qc_frame *f = &v->frame;
	if (w <= 0 || h <= 0) {
		if (f->side[i])
			wlr_scene_node_destroy(f->side[i]);
		f->side[i] = NULL;
		f->side_w[i] = f->side_h[i] = 0;
		return;
	}
	if (!f->side[i] || f->side_w[i] != w || f->side_h[i] != h) {
		uint32_t *px = malloc((size_t)w * (size_t)h * 4);
		if (!px)
			return; /* the old side stays until memory allows */
		for (size_t k = 0; k < (size_t)w * (size_t)h; k++)
			px[k] = 0xff000000u | v->qube->rgb;
		struct wlr_scene_node *n = qc_compat_image_node_new(f->tree, px, w, h);
		free(px);
		if (!n)
			return;
		if (f->side[i])
			wlr_scene_node_destroy(f->side[i]);
		f->side[i] = n;
		f->side_w[i] = w;
		f->side_h[i] = h;
	}
	wlr_scene_node_set_position(f->side[i], x, y);
}

/* Lays out the frame around a content box of CW x CH. */
static void frame_layout(struct qc_view *v, int cw, int ch)
{
	struct qc_frame *f = &v->frame;
	int top = frame_top(v), fw = cw + 2 * QC_BORDER, fh = ch + top + QC_BORDER;
	frame_side(v, 1, 0, fh - QC_BORDER, fw, QC_BORDER);
	frame_side(v, 2, 0, top, QC_BORDER, ch);
	frame_side(v, 3, fw - QC_BORDER, top, QC_BORDER, ch);
	if (v->kind != QC_VIEW_TOPLEVEL) {
		frame_side(v, 0, 0, 0, fw, top);
		return;
	}
	/* The title bar is one opaque image of the whole bar (label colour,
	 * the text inset by the border and 2 px), in place of the top rect:
	 * one drawing operation fewer per window. */
	const char *title = v->title ? v->title : "";
	if (!(f->title_node && f->drawn_w == fw && f->title_drawn &&
	      strcmp(f->title_drawn, title) == 0)) {
		frame_destroy_title(f);
		f->title_node = qc_title_bar_node(v->server, f->tree, title, fw, top, v->qube->rgb,
						  text_on(v->qube->rgb));
		if (f->title_node) {
			wlr_scene_node_set_position(f->title_node, 0, 0);
			f->title_drawn = strdup(title);
			f->drawn_w = fw;
		}
	}
	/* the plain bar only where no title image could be drawn */
	frame_side(v, 0, 0, 0, f->title_node ? 0 : fw, top);
}

/* Frames drawn or not (the BORDERS debug command: the benchmark's
 * baseline); the windows stay where they are. */
void qc_views_set_borders(struct qc_server *server, bool on)
{
	server->borders = on;
	struct qc_view *v;
	wl_list_for_each(v, &server->views, link)
		if (v->frame.tree)
			wlr_scene_node_set_enabled(v->frame.tree, on);
}

void qc_views_update_all(struct qc_server *server)
{
	struct qc_view *v;
	wl_list_for_each(v, &server->views, link)
		qc_view_update(v);
}

static void update_popups(struct qc_view *top);

/* Recomputes extents, frame and containment of view V (called before
 * each output frame, so subsurface changes and desynchronised commits
 * are seen too). */
void qc_view_update(struct qc_view *v)
{
	if (!v->mapped)
		return;
	struct wlr_box ext = { 0 };
	wlr_surface_for_each_surface(v->xdg->surface, surface_extent, &ext);
	if (ext.width == 0 || ext.height == 0)
		ext = (struct wlr_box){ 0, 0, 1, 1 };
	v->ext = ext;
	if (!v->qube) {
		/* host window: no frame, surface origin at the view position */
		v->content_w = ext.width;
		v->content_h = ext.height;
		wlr_scene_node_set_position(v->content, 0, 0);
		if (v->kind == QC_VIEW_TOPLEVEL)
			update_popups(v);
		return;
	}
	int top = frame_top(v), cw = ext.width, ch = ext.height;
	if (v->kind == QC_VIEW_TOPLEVEL) {
		int maxw, maxh;
		content_limits(v->server, &maxw, &maxh);
		bool over = cw > maxw || ch > maxh;
		if (over != v->hidden_oversize) {
			v->hidden_oversize = over;
			wlr_scene_node_set_enabled(v->content, !over);
			if (over)
				fprintf(stderr, "qube-compositor: window %u of %s is %dx%d, over %dx%d: content hidden\n",
					v->id, v->qube_name, cw, ch, maxw, maxh);
		}
		if (over) {
			cw = cw > maxw ? maxw : cw;
			ch = ch > maxh ? maxh : ch;
		}
	}
	v->content_w = cw;
	v->content_h = ch;
	wlr_scene_node_set_position(v->content, QC_BORDER - ext.x, top - ext.y);
	frame_layout(v, cw, ch);
	if (v->kind == QC_VIEW_TOPLEVEL) {
		qc_view_set_position(v, v->x, v->y); /* re-clamp to the output */
		update_popups(v);
	}
}

/* Popups hang in their toplevel's tree, with their own frame; a qube
 * popup whose framed box would leave the toplevel's frame is hidden. */
static void update_popup(struct qc_view *p)
{
	struct qc_view *top = p->toplevel;
	if (!p->mapped || !top || !top->mapped)
		return;
	struct wlr_box pext = { 0 };
	wlr_surface_for_each_surface(p->xdg->surface, surface_extent, &pext);
	if (pext.width == 0 || pext.height == 0)
		pext = (struct wlr_box){ 0, 0, 1, 1 };
	p->ext = pext;
	struct wlr_box pgeo;
	wlr_xdg_surface_get_geometry(p->xdg, &pgeo);
	int tsx, tsy; /* popup geometry origin, toplevel-surface coordinates */
	wlr_xdg_popup_get_toplevel_coords(p->xdg->popup, p->xdg->popup->geometry.x,
					  p->xdg->popup->geometry.y, &tsx, &tsy);
	/* popup surface origin in the toplevel tree */
	int top_off_x = top->qube ? QC_BORDER - top->ext.x : 0;
	int top_off_y = top->qube ? QC_TITLE_H - top->ext.y : 0;
	int ox = top_off_x + tsx - pgeo.x, oy = top_off_y + tsy - pgeo.y;
	if (!top->qube) {
		wlr_scene_node_set_position(p->tree, ox, oy);
		wlr_scene_node_set_position(p->content, 0, 0);
		return;
	}
	/* framed popup box in the toplevel tree */
	int bx = ox + pext.x - QC_BORDER, by = oy + pext.y - QC_BORDER;
	int bw = pext.width + 2 * QC_BORDER, bh = pext.height + 2 * QC_BORDER;
	/* the toplevel's frame box, in its tree */
	int tw = top->content_w + 2 * QC_BORDER, th = top->content_h + QC_TITLE_H + QC_BORDER;
	/* allowed: content inside the toplevel's content box, i.e. the popup's
	 * own frame may overlap the toplevel's frame and no more */
	bool outside = bx < 0 || by < QC_TITLE_H - QC_BORDER || bx + bw > tw || by + bh > th;
	if (outside != p->hidden_outside) {
		p->hidden_outside = outside;
		wlr_scene_node_set_enabled(p->tree, !outside);
		if (outside)
			fprintf(stderr, "qube-compositor: popup %u of %s outside its window: hidden\n",
				p->id, p->qube_name);
	}
	p->x = bx;
	p->y = by;
	wlr_scene_node_set_position(p->tree, bx, by);
	wlr_scene_node_set_position(p->content, QC_BORDER - pext.x, QC_BORDER - pext.y);
	p->content_w = pext.width;
	p->content_h = pext.height;
	frame_layout(p, pext.width, pext.height);
}

static void for_each_popup_update(struct wlr_xdg_surface *xdg)
{
	struct wlr_xdg_popup *pop;
	wl_list_for_each(pop, &xdg->popups, link) {
		struct wlr_xdg_surface *pxdg = pop->base;
		if (pxdg->data)
			update_popup(pxdg->data);
		for_each_popup_update(pxdg);
	}
}

static void update_popups(struct qc_view *top)
{
	for_each_popup_update(top->xdg);
}

void qc_view_set_position(struct qc_view *v, int x, int y)
{
	struct wlr_box ob;
	qc_get_output_box(v->server, &ob);
	int fw = v->content_w, fh = v->content_h;
	if (v->qube) {
		fw += 2 * QC_BORDER;
		fh += QC_TITLE_H + QC_BORDER;
	}
	if (x > ob.x + ob.width - fw)
		x = ob.x + ob.width - fw;
	if (y > ob.y + ob.height - fh)
		y = ob.y + ob.height - fh;
	if (x < ob.x)
		x = ob.x;
	if (y < ob.y)
		y = ob.y;
	v->x = x;
	v->y = y;
	wlr_scene_node_set_position(v->tree, x, y);
}

struct qc_view *qc_view_by_id(struct qc_server *server, unsigned id)
{
	struct qc_view *v;
	wl_list_for_each(v, &server->views, link)
		if (v->id == id)
			return v;
	return NULL;
}

struct qc_view *qc_view_at(struct qc_server *server, double lx, double ly,
			   struct wlr_surface **ret_surface, double *ret_sx, double *ret_sy)
{
	struct wlr_scene_node *node = NULL;
	double sx = 0, sy = 0;
	struct wlr_surface *s = qc_compat_surface_at(server->layer_views, lx, ly, &sx, &sy, &node);
	*ret_surface = s;
	*ret_sx = sx;
	*ret_sy = sy;
	for (; node; node = node->parent)
		if (node->data)
			return node->data;
	return NULL;
}

static void set_title(struct qc_view *v)
{
	const char *untrusted_title = qc_compat_toplevel_title(v->xdg);
	char clean[QC_TITLE_MAX + 1];
	qc_title_sanitize(untrusted_title ? untrusted_title : "",
			  untrusted_title ? strlen(untrusted_title) : 0, clean, sizeof(clean));
	char *t;
	if (v->qube) {
		size_t n = strlen(v->qube_name) + strlen(clean) + 4;
		t = malloc(n);
		if (!t)
			return;
		snprintf(t, n, "[%s] %s", v->qube_name, clean);
	} else {
		t = strdup(clean);
		if (!t)
			return;
	}
	free(v->title);
	v->title = t;
}

static void handle_set_title(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, set_title);
	set_title(v);
}

/* Fullscreen and maximise: a qube window fills the output inside its
 * frame (the coloured frame stays visible); a host window gets the whole
 * output. */
static void apply_fill(struct qc_view *v, bool fullscreen, bool maximized)
{
	struct wlr_box ob;
	qc_get_output_box(v->server, &ob);
	v->fullscreen_req = fullscreen;
	v->maximized_req = maximized;
	qc_compat_toplevel_set_fullscreen(v->xdg, fullscreen);
	qc_compat_toplevel_set_maximized(v->xdg, maximized);
	if (!fullscreen && !maximized) {
		qc_compat_toplevel_set_size(v->xdg, 0, 0);
		return;
	}
	if (v->qube) {
		int maxw, maxh;
		content_limits(v->server, &maxw, &maxh);
		qc_compat_toplevel_set_size(v->xdg, maxw, maxh);
	} else {
		qc_compat_toplevel_set_size(v->xdg, ob.width, ob.height);
	}
	qc_view_set_position(v, ob.x, ob.y);
}

static void handle_request_fullscreen(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, request_fullscreen);
	if (v->mapped)
		apply_fill(v, qc_compat_toplevel_requested_fullscreen(v->xdg), v->maximized_req);
}

static void handle_request_maximize(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, request_maximize);
	if (v->mapped)
		apply_fill(v, v->fullscreen_req, qc_compat_toplevel_requested_maximized(v->xdg));
}

/* Client-initiated move/resize are ignored: windows move only by the
 * user's Alt+drag, so a qube cannot place itself over another window. */
static void handle_request_move(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, request_move);
	fprintf(stderr, "qube-compositor: window %u asked to move itself: ignored\n", v->id);
}

static void handle_request_resize(struct wl_listener *l, void *data)
{
	(void)l;
}

static void handle_map(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, map);
	v->mapped = true;
	if (v->kind == QC_VIEW_POPUP) {
		if (v->toplevel) {
			/* constrain to the toplevel's content box (toplevel-surface
			 * coordinates) */
			qc_compat_popup_unconstrain(v->xdg, &v->toplevel->ext);
			update_popup(v);
		}
		return;
	}
	if (v->qube)
		v->qube->n_windows++;
	wl_list_insert(&v->server->views, &v->link);
	qc_view_update(v);
	unsigned n = v->server->place_n++;
	qc_view_set_position(v, 24 + (int)(n % 10) * 48, 24 + (int)(n % 10) * 36);
	if (qc_compat_toplevel_requested_fullscreen(v->xdg) ||
	    qc_compat_toplevel_requested_maximized(v->xdg))
		apply_fill(v, qc_compat_toplevel_requested_fullscreen(v->xdg),
			   qc_compat_toplevel_requested_maximized(v->xdg));
	qc_focus_view(v->server, v);
}

static void handle_unmap(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, unmap);
	if (!v->mapped)
		return;
	v->mapped = false;
	if (v->kind == QC_VIEW_POPUP)
		return;
	if (v->qube)
		v->qube->n_windows--;
	wl_list_remove(&v->link);
	wl_list_init(&v->link);
	struct qc_server *server = v->server;
	if (server->grab == v)
		server->grab = NULL;
	if (server->focused == v) {
		server->focused = NULL;
		struct qc_view *next = wl_list_empty(&server->views) ? NULL :
			wl_container_of(server->views.next, next, link);
		qc_focus_view(server, next);
	}
}

static void view_free(struct qc_view *v)
{
	wl_list_remove(&v->map.link);
	wl_list_remove(&v->unmap.link);
	wl_list_remove(&v->destroy.link);
	wl_list_remove(&v->new_popup.link);
	if (v->kind == QC_VIEW_TOPLEVEL) {
		wl_list_remove(&v->request_fullscreen.link);
		wl_list_remove(&v->request_maximize.link);
		wl_list_remove(&v->request_move.link);
		wl_list_remove(&v->request_resize.link);
		wl_list_remove(&v->set_title.link);
	}
	free(v->frame.title_drawn);
	free(v->title);
	free(v);
}

static void orphan_popups(struct wlr_xdg_surface *xdg)
{
	struct wlr_xdg_popup *pop;
	wl_list_for_each(pop, &xdg->popups, link) {
		struct qc_view *p = pop->base->data;
		if (p) {
			p->toplevel = NULL;
			p->tree = NULL;
		}
		orphan_popups(pop->base);
	}
}

static void handle_destroy(struct wl_listener *l, void *data)
{
	struct qc_view *v = wl_container_of(l, v, destroy);
	if (v->mapped)
		handle_unmap(&v->unmap, NULL);
	v->xdg->data = NULL;
	/* A popup's tree hangs in its toplevel's tree, which may be gone */
	if (v->tree)
		wlr_scene_node_destroy(v->tree);
	if (v->kind == QC_VIEW_TOPLEVEL) {
		/* popups still pointing at us lose their toplevel (their
		 * trees went with ours) */
		orphan_popups(v->xdg);
	}
	view_free(v);
}

static void handle_new_popup(struct wl_listener *l, void *data)
{
	(void)l;
	(void)data; /* handled through the xdg-shell's new_surface */
}

void qc_view_handle_new_xdg_surface(struct wl_listener *listener, void *data)
{
	struct qc_server *server = wl_container_of(listener, server, new_xdg_surface);
	struct wlr_xdg_surface *xdg = data;
	struct wl_client *wc = wl_resource_get_client(xdg->resource);
	struct qc_qube *qube = qc_client_qube(wc);
	struct qc_view *top = NULL;
	if (qc_compat_xdg_is_popup(xdg)) {
		/* find the toplevel this popup belongs to */
		struct wlr_xdg_surface *p = qc_compat_popup_parent_xdg(xdg);
		while (p && qc_compat_xdg_is_popup(p))
			p = qc_compat_popup_parent_xdg(p);
		top = p ? p->data : NULL;
		if (!top || top->kind != QC_VIEW_TOPLEVEL || top->qube != qube) {
			/* no parent we manage (or another client's): never shown */
			fprintf(stderr, "qube-compositor: popup without a known toplevel: dismissed\n");
			qc_compat_popup_dismiss(xdg);
			return;
		}
	} else if (!qc_compat_xdg_is_toplevel(xdg)) {
		return;
	}
	struct qc_view *v = calloc(1, sizeof(*v));
	if (!v) {
		wl_client_post_no_memory(wc);
		return;
	}
	v->server = server;
	v->xdg = xdg;
	v->qube = qube;
	v->id = ++server->next_view_id;
	snprintf(v->qube_name, sizeof(v->qube_name), "%s", qube ? qube->name : "");
	wl_list_init(&v->link);
	if (top) {
		v->kind = QC_VIEW_POPUP;
		v->toplevel = top;
		v->tree = qc_compat_tree_new(top->tree);
	} else {
		v->kind = QC_VIEW_TOPLEVEL;
		v->tree = qc_compat_tree_new(server->layer_views);
	}
	v->tree->data = v->kind == QC_VIEW_TOPLEVEL ? v : top;
	v->content = qc_compat_surface_tree_new(v->tree, xdg->surface);
	if (qube)
		frame_create(v); /* after the content: drawn above it */
	xdg->data = v;

	v->map.notify = handle_map;
	wl_signal_add(qc_compat_xdg_map_signal(xdg), &v->map);
	v->unmap.notify = handle_unmap;
	wl_signal_add(qc_compat_xdg_unmap_signal(xdg), &v->unmap);
	v->destroy.notify = handle_destroy;
	wl_signal_add(&xdg->events.destroy, &v->destroy);
	v->new_popup.notify = handle_new_popup;
	wl_signal_add(&xdg->events.new_popup, &v->new_popup);
	if (v->kind == QC_VIEW_TOPLEVEL) {
		struct wlr_xdg_toplevel *t = xdg->toplevel;
		v->request_fullscreen.notify = handle_request_fullscreen;
		wl_signal_add(&t->events.request_fullscreen, &v->request_fullscreen);
		v->request_maximize.notify = handle_request_maximize;
		wl_signal_add(&t->events.request_maximize, &v->request_maximize);
		v->request_move.notify = handle_request_move;
		wl_signal_add(&t->events.request_move, &v->request_move);
		v->request_resize.notify = handle_request_resize;
		wl_signal_add(&t->events.request_resize, &v->request_resize);
		v->set_title.notify = handle_set_title;
		wl_signal_add(&t->events.set_title, &v->set_title);
		set_title(v);
	}
}

void qc_view_list(struct qc_server *server, FILE *out, unsigned *ret_count)
{
	unsigned n = 0;
	struct qc_view *v;
	/* bottom of the stack first */
	wl_list_for_each_reverse(v, &server->views, link) {
		int fw = v->content_w, fh = v->content_h, fx = v->x, fy = v->y;
		if (v->qube) {
			fw += 2 * QC_BORDER;
			fh += QC_TITLE_H + QC_BORDER;
		}
		fprintf(out, "WINDOW %u qube=%s label=%s frame=%d,%d,%dx%d content=%d,%d,%dx%d%s%s%s title=%s\n",
			v->id, v->qube ? v->qube_name : "-", v->qube ? v->qube->label : "-",
			fx, fy, fw, fh, v->qube ? fx + QC_BORDER : fx,
			v->qube ? fy + QC_TITLE_H : fy, v->content_w, v->content_h,
			server->focused == v ? " focused" : "",
			v->hidden_oversize ? " hidden=oversize" : "",
			v->fullscreen_req ? " fullscreen" : "", v->title ? v->title : "");
		n++;
		struct wlr_xdg_popup *pop;
		wl_list_for_each(pop, &v->xdg->popups, link) {
			struct qc_view *p = pop->base->data;
			if (!p || !p->mapped)
				continue;
			int pw = p->content_w + (v->qube ? 2 * QC_BORDER : 0);
			int ph = p->content_h + (v->qube ? 2 * QC_BORDER : 0);
			fprintf(out, "POPUP %u of=%u qube=%s frame=%d,%d,%dx%d%s\n", p->id, v->id,
				v->qube ? v->qube_name : "-", fx + p->x, fy + p->y, pw, ph,
				p->hidden_outside ? " hidden=outside" : "");
			n++;
		}
	}
	*ret_count = n;
}
