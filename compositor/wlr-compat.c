/* SPDX-License-Identifier: GPL-2.0-or-later */
/* wlroots 0.15 implementation of wlr-compat.h (see that header). */
#include "wlr-compat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wlr/backend/headless.h>
#include <wlr/backend/multi.h>
#include <wlr/interfaces/wlr_keyboard.h>
#include <wlr/interfaces/wlr_output.h>
#include <wlr/types/wlr_output_damage.h>
#include <wlr/types/wlr_xdg_decoration_v1.h>
#include <drm_fourcc.h>

static void find_headless(struct wlr_backend *b, void *data)
{
	struct qc_compat_backend *be = data;
	if (wlr_backend_is_headless(b))
		be->headless = b;
}

int qc_compat_backend_init(struct qc_compat_backend *be, struct wl_display *display)
{
	memset(be, 0, sizeof(*be));
	be->backend = wlr_backend_autocreate(display);
	if (!be->backend)
		return -ENODEV;
	if (wlr_backend_is_multi(be->backend))
		wlr_multi_for_each_backend(be->backend, find_headless, be);
	else if (wlr_backend_is_headless(be->backend))
		be->headless = be->backend;
	be->renderer = wlr_renderer_autocreate(be->backend);
	if (!be->renderer)
		return -ENODEV;
	if (!wlr_renderer_init_wl_display(be->renderer, display))
		return -EIO;
	be->allocator = wlr_allocator_autocreate(be->backend, be->renderer);
	if (!be->allocator)
		return -ENODEV;
	/* 0.15: wlr_compositor_create also offers wl_subcompositor
	 * (0.16+: wlr_subcompositor_create; 0.17 adds a version argument) */
	be->compositor = wlr_compositor_create(display, be->renderer);
	if (!be->compositor)
		return -ENOMEM;
	return 0;
}

struct wlr_scene_node *qc_compat_scene_root(struct wlr_scene *scene)
{
	return &scene->node;
}

void qc_compat_scene_destroy(struct wlr_scene *scene)
{
	wlr_scene_node_destroy(&scene->node);
}

struct wlr_scene_node *qc_compat_tree_new(struct wlr_scene_node *parent)
{
	struct wlr_scene_tree *t = wlr_scene_tree_create(parent);
	return t ? &t->node : NULL;
}

struct wlr_scene_node *qc_compat_surface_tree_new(struct wlr_scene_node *parent,
						  struct wlr_surface *surface)
{
	return wlr_scene_subsurface_tree_create(parent, surface);
}

/* ---- an in-memory ARGB8888 buffer for compositor-drawn images ---- */
struct qc_pixbuf {
	struct wlr_buffer base;
	uint32_t *pixels;
	int w, h;
};

static void pixbuf_destroy(struct wlr_buffer *b)
{
	struct qc_pixbuf *pb = wl_container_of(b, pb, base);
	free(pb->pixels);
	free(pb);
}

static bool pixbuf_begin(struct wlr_buffer *b, uint32_t flags, void **data,
			 uint32_t *format, size_t *stride)
{
	struct qc_pixbuf *pb = wl_container_of(b, pb, base);
	if (flags & WLR_BUFFER_DATA_PTR_ACCESS_WRITE)
		return false;
	*data = pb->pixels;
	*format = DRM_FORMAT_XRGB8888; /* every image drawn here is opaque */
	*stride = (size_t)pb->w * 4;
	return true;
}

static void pixbuf_end(struct wlr_buffer *b)
{
	(void)b;
}

static const struct wlr_buffer_impl pixbuf_impl = {
	.destroy = pixbuf_destroy,
	.begin_data_ptr_access = pixbuf_begin,
	.end_data_ptr_access = pixbuf_end,
};

struct wlr_scene_node *qc_compat_image_node_new(struct wlr_scene_node *parent,
						const uint32_t *pixels, int w, int h)
{
	if (w <= 0 || h <= 0)
		return NULL;
	struct qc_pixbuf *pb = calloc(1, sizeof(*pb));
	if (!pb)
		return NULL;
	pb->pixels = malloc((size_t)w * (size_t)h * 4);
	if (!pb->pixels) {
		free(pb);
		return NULL;
	}
	memcpy(pb->pixels, pixels, (size_t)w * (size_t)h * 4);
	pb->w = w;
	pb->h = h;
	wlr_buffer_init(&pb->base, &pixbuf_impl, w, h);
	struct wlr_scene_buffer *sb = wlr_scene_buffer_create(parent, &pb->base);
	/* the scene node holds its own reference */
	wlr_buffer_drop(&pb->base);
	return sb ? &sb->node : NULL;
}

struct wlr_surface *qc_compat_surface_at(struct wlr_scene_node *root, double lx, double ly,
					 double *ret_sx, double *ret_sy,
					 struct wlr_scene_node **ret_node)
{
	double sx, sy;
	struct wlr_scene_node *node = wlr_scene_node_at(root, lx, ly, &sx, &sy);
	if (ret_node)
		*ret_node = node;
	if (!node || node->type != WLR_SCENE_NODE_SURFACE)
		return NULL;
	*ret_sx = sx;
	*ret_sy = sy;
	return wlr_scene_surface_from_node(node)->surface;
}

void qc_compat_layout_box(struct wlr_output_layout *layout, struct wlr_box *ret_box)
{
	struct wlr_box *b = wlr_output_layout_get_box(layout, NULL);
	*ret_box = b ? *b : (struct wlr_box){ 0 };
}

bool qc_compat_output_init(struct qc_compat_backend *be, struct wlr_output *output,
			   unsigned refresh_hz)
{
	if (!wlr_output_init_render(output, be->allocator, be->renderer))
		return false;
	if (refresh_hz && wlr_output_is_headless(output))
		wlr_output_set_custom_mode(output, output->width, output->height,
					   (int32_t)refresh_hz * 1000);
	else if (!wl_list_empty(&output->modes))
		wlr_output_set_mode(output, wlr_output_preferred_mode(output));
	wlr_output_enable(output, true);
	return wlr_output_commit(output);
}

static int64_t ts_diff_ns(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

uint64_t qc_compat_output_frame(struct wlr_scene *scene, struct wlr_output *output,
				bool full_damage, uint64_t *ret_cpu_ns)
{
	struct wlr_scene_output *so = wlr_scene_get_scene_output(scene, output);
	if (!so)
		return 0;
	if (full_damage)
		wlr_output_damage_add_whole(so->damage);
	struct timespec a, b, ca, cb;
	uint32_t seq = output->commit_seq;
	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
	bool done = wlr_scene_output_commit(so);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
	clock_gettime(CLOCK_MONOTONIC, &b);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* 0.15's headless outputs never send "present", so presentation-time
	 * feedback would never arrive; a headless commit is on "screen" as
	 * soon as it is done (0.16+ headless sends it itself) */
	if (done && output->commit_seq != seq && wlr_output_is_headless(output)) {
		struct wlr_output_event_present ev = {
			.commit_seq = output->commit_seq,
			.presented = true,
			.when = &b,
		};
		wlr_output_send_present(output, &ev);
	}
	wlr_scene_output_send_frame_done(so, &now);
	if (!done)
		return 0;
	int64_t ns = ts_diff_ns(&a, &b), cpu = ts_diff_ns(&ca, &cb);
	*ret_cpu_ns = cpu > 0 ? (uint64_t)cpu : 1;
	return ns > 0 ? (uint64_t)ns : 1;
}

struct wlr_keyboard *qc_compat_keyboard(struct wlr_input_device *device)
{
	return device->type == WLR_INPUT_DEVICE_KEYBOARD ? device->keyboard : NULL;
}

bool qc_compat_device_is_keyboard(struct wlr_input_device *device)
{
	return device->type == WLR_INPUT_DEVICE_KEYBOARD;
}

bool qc_compat_device_is_pointer(struct wlr_input_device *device)
{
	return device->type == WLR_INPUT_DEVICE_POINTER;
}

struct wl_signal *qc_compat_keyboard_key_signal(struct wlr_input_device *device)
{
	return &device->keyboard->events.key;
}

struct wl_signal *qc_compat_keyboard_modifiers_signal(struct wlr_input_device *device)
{
	return &device->keyboard->events.modifiers;
}

struct wlr_input_device *qc_compat_add_test_keyboard(struct qc_compat_backend *be)
{
	if (!be->headless)
		return NULL;
	return wlr_headless_add_input_device(be->headless, WLR_INPUT_DEVICE_KEYBOARD);
}

void qc_compat_keyboard_inject(struct wlr_input_device *device, uint32_t keycode, bool pressed)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	struct wlr_event_keyboard_key ev = {
		.time_msec = (uint32_t)(now.tv_sec * 1000 + now.tv_nsec / 1000000),
		.keycode = keycode,
		.update_state = true,
		.state = pressed ? WL_KEYBOARD_KEY_STATE_PRESSED : WL_KEYBOARD_KEY_STATE_RELEASED,
	};
	wlr_keyboard_notify_key(device->keyboard, &ev);
}

bool qc_compat_xdg_is_toplevel(struct wlr_xdg_surface *xdg)
{
	return xdg->role == WLR_XDG_SURFACE_ROLE_TOPLEVEL;
}

bool qc_compat_xdg_is_popup(struct wlr_xdg_surface *xdg)
{
	return xdg->role == WLR_XDG_SURFACE_ROLE_POPUP;
}

struct wl_signal *qc_compat_xdg_map_signal(struct wlr_xdg_surface *xdg)
{
	return &xdg->events.map;
}

struct wl_signal *qc_compat_xdg_unmap_signal(struct wlr_xdg_surface *xdg)
{
	return &xdg->events.unmap;
}

struct wlr_xdg_surface *qc_compat_popup_parent_xdg(struct wlr_xdg_surface *popup)
{
	struct wlr_surface *parent = popup->popup->parent;
	if (!parent || !wlr_surface_is_xdg_surface(parent))
		return NULL;
	return wlr_xdg_surface_from_wlr_surface(parent);
}

const char *qc_compat_toplevel_title(struct wlr_xdg_surface *xdg)
{
	return xdg->toplevel->title;
}

void qc_compat_toplevel_set_size(struct wlr_xdg_surface *xdg, int w, int h)
{
	wlr_xdg_toplevel_set_size(xdg, (uint32_t)w, (uint32_t)h);
}

void qc_compat_toplevel_set_activated(struct wlr_xdg_surface *xdg, bool on)
{
	wlr_xdg_toplevel_set_activated(xdg, on);
}

void qc_compat_toplevel_set_fullscreen(struct wlr_xdg_surface *xdg, bool on)
{
	wlr_xdg_toplevel_set_fullscreen(xdg, on);
}

void qc_compat_toplevel_set_maximized(struct wlr_xdg_surface *xdg, bool on)
{
	wlr_xdg_toplevel_set_maximized(xdg, on);
}

bool qc_compat_toplevel_requested_fullscreen(struct wlr_xdg_surface *xdg)
{
	return xdg->toplevel->requested.fullscreen;
}

bool qc_compat_toplevel_requested_maximized(struct wlr_xdg_surface *xdg)
{
	return xdg->toplevel->requested.maximized;
}

void qc_compat_toplevel_close(struct wlr_xdg_surface *xdg)
{
	wlr_xdg_toplevel_send_close(xdg);
}

void qc_compat_popup_unconstrain(struct wlr_xdg_surface *popup, const struct wlr_box *box)
{
	wlr_xdg_popup_unconstrain_from_box(popup->popup, box);
}

void qc_compat_popup_dismiss(struct wlr_xdg_surface *popup)
{
	wlr_xdg_popup_destroy(popup);
}

struct source_scan {
	struct wlr_data_source *source;
	bool found;
};

static enum wl_iterator_result scan_resource(struct wl_resource *res, void *data)
{
	struct source_scan *s = data;
	/* 0.15 (and 0.17/0.18): a client's wl_data_source resource has the
	 * wlroots client source as user data, whose first member is the
	 * wlr_data_source */
	if (strcmp(wl_resource_get_class(res), "wl_data_source") == 0 &&
	    wl_resource_get_user_data(res) == (void *)s->source) {
		s->found = true;
		return WL_ITERATOR_STOP;
	}
	return WL_ITERATOR_CONTINUE;
}

struct wl_client *qc_compat_data_source_client(struct wlr_seat *seat,
					       struct wlr_data_source *source)
{
	struct wlr_seat_client *sc;
	wl_list_for_each(sc, &seat->clients, link) {
		struct source_scan s = { .source = source };
		wl_client_for_each_resource(sc->client, scan_resource, &s);
		if (s.found)
			return sc->client;
	}
	return NULL;
}

/* ---- xdg-decoration lifetime guard (see wlr-compat.h) ---- */

struct qc_compat_deco_guard {
	struct wlr_xdg_decoration_manager_v1 *manager;
	void (*on_drop)(struct wl_client *client, void *data);
	void *data;
	struct wl_listener client_created;
	struct wl_list clients; /* deco_client.link */
};

/* one per client: hears of each resource the client creates */
struct deco_client {
	struct wl_list link;
	struct qc_compat_deco_guard *guard;
	struct wl_listener resource_created, client_destroy;
};

enum deco_watch_kind { WATCH_WL_SURFACE, WATCH_XDG_SURFACE, WATCH_WM_BASE };

/* one per watched resource; refers to the guard, which outlives every
 * client (clients are destroyed before the display) */
struct deco_watch {
	struct wl_listener destroy;
	struct qc_compat_deco_guard *guard;
	enum deco_watch_kind kind;
};

/* Runs before the resource's own destroy callback, so the xdg_surface the
 * decorations point to is still alive here. */
static void deco_watch_handle_destroy(struct wl_listener *l, void *data)
{
	struct deco_watch *w = wl_container_of(l, w, destroy);
	struct wl_resource *res = data;
	struct wl_client *client = wl_resource_get_client(res);
	struct wlr_xdg_surface *xdg = NULL;
	bool all = false;
	switch (w->kind) {
	case WATCH_WL_SURFACE: {
		/* user data, not wlr_surface_from_resource: that asserts the
		 * implementation, which a half-made resource lacks */
		struct wlr_surface *s = wl_resource_get_user_data(res);
		if (s && wlr_surface_is_xdg_surface(s))
			xdg = s->role_data;
		break;
	}
	case WATCH_XDG_SURFACE:
		xdg = wl_resource_get_user_data(res);
		break;
	case WATCH_WM_BASE:
		all = true; /* takes every xdg_surface of the client with it */
		break;
	}
	if (xdg || all) {
		struct wlr_xdg_toplevel_decoration_v1 *d, *tmp;
		wl_list_for_each_safe(d, tmp, &w->guard->manager->decorations, link) {
			/* an added decoration goes with its surface's destroy signal */
			if (d->added || wl_resource_get_client(d->resource) != client)
				continue;
			if (!all && d->surface != xdg)
				continue;
			wl_resource_destroy(d->resource);
			if (w->guard->on_drop)
				w->guard->on_drop(client, w->guard->data);
		}
	}
	wl_list_remove(&w->destroy.link);
	free(w);
}

static void deco_client_handle_resource_created(struct wl_listener *l, void *data)
{
	struct deco_client *c = wl_container_of(l, c, resource_created);
	struct wl_resource *res = data;
	const char *cls = wl_resource_get_class(res);
	enum deco_watch_kind kind;
	if (strcmp(cls, "wl_surface") == 0)
		kind = WATCH_WL_SURFACE;
	else if (strcmp(cls, "xdg_surface") == 0)
		kind = WATCH_XDG_SURFACE;
	else if (strcmp(cls, "xdg_wm_base") == 0)
		kind = WATCH_WM_BASE;
	else
		return;
	struct deco_watch *w = calloc(1, sizeof(*w));
	if (!w) {
		/* unguarded would be unsafe: refuse the client instead */
		wl_client_post_no_memory(wl_resource_get_client(res));
		return;
	}
	w->guard = c->guard;
	w->kind = kind;
	w->destroy.notify = deco_watch_handle_destroy;
	wl_resource_add_destroy_listener(res, &w->destroy);
}

static void deco_client_free(struct deco_client *c)
{
	wl_list_remove(&c->resource_created.link);
	wl_list_remove(&c->client_destroy.link);
	wl_list_remove(&c->link);
	free(c);
}

static void deco_client_handle_destroy(struct wl_listener *l, void *data)
{
	struct deco_client *c = wl_container_of(l, c, client_destroy);
	deco_client_free(c);
}

static void deco_guard_handle_client_created(struct wl_listener *l, void *data)
{
	struct qc_compat_deco_guard *g = wl_container_of(l, g, client_created);
	struct wl_client *client = data;
	struct deco_client *c = calloc(1, sizeof(*c));
	if (!c) {
		wl_client_post_no_memory(client);
		return;
	}
	c->guard = g;
	c->resource_created.notify = deco_client_handle_resource_created;
	wl_client_add_resource_created_listener(client, &c->resource_created);
	c->client_destroy.notify = deco_client_handle_destroy;
	wl_client_add_destroy_listener(client, &c->client_destroy);
	wl_list_insert(&g->clients, &c->link);
}

struct qc_compat_deco_guard *qc_compat_deco_guard_new(
	struct wl_display *display, struct wlr_xdg_decoration_manager_v1 *manager,
	void (*on_drop)(struct wl_client *client, void *data), void *data)
{
	struct qc_compat_deco_guard *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->manager = manager;
	g->on_drop = on_drop;
	g->data = data;
	wl_list_init(&g->clients);
	g->client_created.notify = deco_guard_handle_client_created;
	wl_display_add_client_created_listener(display, &g->client_created);
	return g;
}

void qc_compat_deco_guard_free(struct qc_compat_deco_guard *guard)
{
	if (!guard)
		return;
	struct deco_client *c, *tmp;
	wl_list_for_each_safe(c, tmp, &guard->clients, link)
		deco_client_free(c);
	wl_list_remove(&guard->client_created.link);
	free(guard);
}
