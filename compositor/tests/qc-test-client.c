/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qc-test-client: a small xdg-shell client for the compositor tests: it
 * draws solid colours and can behave like a hostile qube (oversized
 * surfaces, subsurfaces at negative offsets, popups out of place, a
 * fullscreen request, a self-move, binding a global it was not offered,
 * many windows, a decoration that outlives its never-committed window)
 * or use the clipboard.
 *
 * Prints "READY" on stdout once every window is mapped (after a
 * roundtrip), "PASTE <text>" for each selection it receives with --paste,
 * "SELECTION none" when the selection is cleared, "COPY-SET" once its
 * selection is set, "KEY code state t=NS" for each key (NS: CLOCK_MONOTONIC
 * at receipt), and exits 3 on a protocol error (message on stderr).
 * --latency-commits N (benchmark): after READY, N commits of a new buffer
 * at random moments (0-20 ms apart), each with presentation feedback,
 * printing "PRESENT ns=<presented - commit>" or "DISCARDED", then
 * "LATENCY-DONE".
 * --key-redraw (benchmark): each key press makes the first window commit
 * a new buffer with presentation feedback, printing "KEY-SHOWN ns=<the
 * presentation time, the compositor's clock>" or "KEY-DISCARDED": key to
 * screen measured on the compositor's clock.  Through waypipe the time
 * arrives converted to this machine's clock by way of CLOCK_REALTIME
 * (waypipe adds REALTIME - MONOTONIC on the compositor's side and
 * subtracts it here), so with --key-redraw the client also prints, after
 * READY, "CLOCK-DELTA ns=<REALTIME - MONOTONIC>", measured as waypipe
 * does, for the benchmark to undo the conversion.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"
#include "xdg-decoration-unstable-v1-client-protocol.h"
#include "viewporter-client-protocol.h"
#include "presentation-time-client-protocol.h"

struct window {
	struct wl_surface *surface;
	struct xdg_surface *xdg;
	struct xdg_toplevel *top;
	bool configured, drawn;
	int w, h;
	uint32_t color;
	unsigned frame_n;
};

static struct {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct wl_subcompositor *subcompositor;
	struct wl_shm *shm;
	struct wl_seat *seat;
	struct xdg_wm_base *wm;
	struct zxdg_decoration_manager_v1 *deco;
	struct wp_viewporter *viewporter;
	struct wp_presentation *presentation;
	uint32_t pres_clock;
	struct wl_data_device_manager *ddm;
	struct wl_data_device *dd;
	struct wl_keyboard *kbd;
	uint32_t last_serial;

	/* options */
	const char *title;
	char *title_bytes;
	uint32_t color, sub_color, popup_color;
	int w, h;
	bool fullscreen, maximize, move, paste, list_globals, animate;
	int sub_x, sub_y, sub_w, sub_h;
	bool have_sub;
	int pop_x, pop_y, pop_w, pop_h;
	bool have_popup;
	int vp_w, vp_h;
	bool have_viewport;
	const char *bind_iface;
	uint32_t bind_name, bind_version;
	int n_windows;
	const char *copy_text;
	bool copy_set;
	const char *orphan_deco;
	int latency_commits;
	bool key_redraw;
	unsigned key_redraws;

	struct window *win;
	struct wl_data_offer *offer;
	bool offer_text;
} g;

static int shm_buffer(int w, int h, uint32_t argb, struct wl_buffer **ret)
{
	size_t stride = (size_t)w * 4, size = stride * (size_t)h;
	int fd = memfd_create("qc-test-client", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	uint32_t *px = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (px == MAP_FAILED) {
		close(fd);
		return -errno;
	}
	/* premultiply */
	uint32_t a = argb >> 24;
	uint32_t r = ((argb >> 16) & 0xff) * a / 255, gg = ((argb >> 8) & 0xff) * a / 255,
		 b = (argb & 0xff) * a / 255;
	uint32_t v = (a << 24) | (r << 16) | (gg << 8) | b;
	for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
		px[i] = v;
	munmap(px, size);
	struct wl_shm_pool *pool = wl_shm_create_pool(g.shm, fd, (int32_t)size);
	*ret = wl_shm_pool_create_buffer(pool, 0, w, h, (int32_t)stride, WL_SHM_FORMAT_ARGB8888);
	wl_shm_pool_destroy(pool);
	close(fd);
	return 0;
}

static void display_error_exit(void);

static void buffer_release(void *data, struct wl_buffer *b)
{
	wl_buffer_destroy(b);
}
static const struct wl_buffer_listener buffer_listener = { .release = buffer_release };

static void draw(struct window *win);

static void frame_done(void *data, struct wl_callback *cb, uint32_t t)
{
	struct window *win = data;
	wl_callback_destroy(cb);
	win->frame_n++;
	draw(win);
}
static const struct wl_callback_listener frame_listener = { .done = frame_done };

static void draw(struct window *win)
{
	struct wl_buffer *buf;
	int w = g.have_viewport ? 1 : win->w, h = g.have_viewport ? 1 : win->h;
	uint32_t c = win->color;
	if (g.animate)
		c ^= (win->frame_n & 1) ? 0x00000101u : 0; /* a new buffer every frame */
	if (shm_buffer(w, h, c, &buf) < 0) {
		fprintf(stderr, "qc-test-client: shm buffer failed\n");
		exit(1);
	}
	wl_buffer_add_listener(buf, &buffer_listener, NULL);
	wl_surface_attach(win->surface, buf, 0, 0);
	wl_surface_damage(win->surface, 0, 0, INT32_MAX, INT32_MAX);
	if (g.animate) {
		struct wl_callback *cb = wl_surface_frame(win->surface);
		wl_callback_add_listener(cb, &frame_listener, win);
	}
	wl_surface_commit(win->surface);
	win->drawn = true;
}

static void xdg_surface_configure(void *data, struct xdg_surface *xs, uint32_t serial)
{
	struct window *win = data;
	xdg_surface_ack_configure(xs, serial);
	win->configured = true;
	if (!win->drawn || !g.animate)
		draw(win);
}
static const struct xdg_surface_listener xdg_surface_listener = { .configure = xdg_surface_configure };

static void top_configure(void *data, struct xdg_toplevel *t, int32_t w, int32_t h,
			  struct wl_array *states)
{
	struct window *win = data;
	if (w > 0 && h > 0 && w <= 8192 && h <= 8192) {
		win->w = w;
		win->h = h;
	}
}
static void top_close(void *data, struct xdg_toplevel *t)
{
	exit(0);
}
static const struct xdg_toplevel_listener top_listener = {
	.configure = top_configure,
	.close = top_close,
};

static void wm_ping(void *data, struct xdg_wm_base *wm, uint32_t serial)
{
	xdg_wm_base_pong(wm, serial);
}
static const struct xdg_wm_base_listener wm_listener = { .ping = wm_ping };

/* ---- clipboard ---- */

static void source_send(void *data, struct wl_data_source *s, const char *mime, int32_t fd)
{
	size_t n = strlen(g.copy_text), off = 0;
	while (off < n) {
		ssize_t w = write(fd, g.copy_text + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
}
static void source_cancelled(void *data, struct wl_data_source *s)
{
	printf("COPY-CANCELLED\n");
	fflush(stdout);
	wl_data_source_destroy(s);
}
static void source_target(void *data, struct wl_data_source *s, const char *m) {}
static const struct wl_data_source_listener source_listener = {
	.target = source_target,
	.send = source_send,
	.cancelled = source_cancelled,
};

static void offer_offer(void *data, struct wl_data_offer *o, const char *mime)
{
	if (strcmp(mime, "text/plain;charset=utf-8") == 0)
		g.offer_text = true;
}
static const struct wl_data_offer_listener offer_listener = { .offer = offer_offer };

static void dd_data_offer(void *data, struct wl_data_device *dd, struct wl_data_offer *o)
{
	g.offer_text = false;
	wl_data_offer_add_listener(o, &offer_listener, NULL);
}

static void dd_selection(void *data, struct wl_data_device *dd, struct wl_data_offer *o)
{
	if (!g.paste) {
		if (o)
			wl_data_offer_destroy(o);
		return;
	}
	if (!o) {
		printf("SELECTION none\n");
		fflush(stdout);
		return;
	}
	if (!g.offer_text) {
		printf("SELECTION other\n");
		fflush(stdout);
		wl_data_offer_destroy(o);
		return;
	}
	int p[2];
	if (pipe(p) < 0)
		exit(1);
	wl_data_offer_receive(o, "text/plain;charset=utf-8", p[1]);
	close(p[1]);
	wl_display_flush(g.display);
	char buf[65536 + 1];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(p[0]);
	buf[len] = '\0';
	printf("PASTE %s\n", buf);
	fflush(stdout);
	wl_data_offer_destroy(o);
}

static void dd_enter(void *d, struct wl_data_device *dd, uint32_t s, struct wl_surface *sf,
		     wl_fixed_t x, wl_fixed_t y, struct wl_data_offer *o) {}
static void dd_leave(void *d, struct wl_data_device *dd) {}
static void dd_motion(void *d, struct wl_data_device *dd, uint32_t t, wl_fixed_t x, wl_fixed_t y) {}
static void dd_drop(void *d, struct wl_data_device *dd) {}
static const struct wl_data_device_listener dd_listener = {
	.data_offer = dd_data_offer,
	.enter = dd_enter,
	.leave = dd_leave,
	.motion = dd_motion,
	.drop = dd_drop,
	.selection = dd_selection,
};

static void set_copy(uint32_t serial)
{
	if (!g.copy_text || g.copy_set || !g.ddm || !g.dd)
		return;
	struct wl_data_source *s = wl_data_device_manager_create_data_source(g.ddm);
	wl_data_source_add_listener(s, &source_listener, NULL);
	wl_data_source_offer(s, "text/plain;charset=utf-8");
	wl_data_source_offer(s, "text/plain");
	wl_data_device_set_selection(g.dd, s, serial);
	g.copy_set = true;
	wl_display_roundtrip(g.display);
	printf("COPY-SET\n");
	fflush(stdout);
}

static void kb_keymap(void *d, struct wl_keyboard *k, uint32_t f, int32_t fd, uint32_t s)
{
	close(fd);
}
static void kb_enter(void *d, struct wl_keyboard *k, uint32_t serial, struct wl_surface *s,
		     struct wl_array *keys)
{
	g.last_serial = serial;
	printf("FOCUS-IN\n");
	fflush(stdout);
	set_copy(serial);
}
static void kb_leave(void *d, struct wl_keyboard *k, uint32_t serial, struct wl_surface *s) {}
static void key_redraw(void);

static void kb_key(void *d, struct wl_keyboard *k, uint32_t serial, uint32_t t, uint32_t key,
		   uint32_t state)
{
	g.last_serial = serial;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	printf("KEY %u %u t=%lld\n", key, state, (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
	fflush(stdout);
	if (g.key_redraw && state == WL_KEYBOARD_KEY_STATE_PRESSED)
		key_redraw();
}
static void kb_mods(void *d, struct wl_keyboard *k, uint32_t serial, uint32_t a, uint32_t b,
		    uint32_t c, uint32_t e) {}
static void kb_repeat(void *d, struct wl_keyboard *k, int32_t r, int32_t dl) {}
static const struct wl_keyboard_listener kb_listener = {
	.keymap = kb_keymap,
	.enter = kb_enter,
	.leave = kb_leave,
	.key = kb_key,
	.modifiers = kb_mods,
	.repeat_info = kb_repeat,
};

static void seat_caps(void *d, struct wl_seat *seat, uint32_t caps)
{
	if ((caps & WL_SEAT_CAPABILITY_KEYBOARD) && !g.kbd) {
		g.kbd = wl_seat_get_keyboard(seat);
		wl_keyboard_add_listener(g.kbd, &kb_listener, NULL);
	}
}
static void seat_name(void *d, struct wl_seat *s, const char *n) {}
static const struct wl_seat_listener seat_listener = { .capabilities = seat_caps, .name = seat_name };

/* ---- commit-to-screen latency (--latency-commits) ---- */

static void pres_clock_id(void *d, struct wp_presentation *p, uint32_t clk)
{
	g.pres_clock = clk;
}
static const struct wp_presentation_listener pres_listener = { .clock_id = pres_clock_id };

struct timed_commit {
	int64_t commit_ns;
	int done; /* 0 pending, 1 presented, 2 discarded */
	int64_t presented_ns;
};

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void fb_sync_output(void *d, struct wp_presentation_feedback *f, struct wl_output *o) {}
static void fb_presented(void *d, struct wp_presentation_feedback *f, uint32_t sec_hi,
			 uint32_t sec_lo, uint32_t nsec, uint32_t refresh, uint32_t seq_hi,
			 uint32_t seq_lo, uint32_t flags)
{
	struct timed_commit *tc = d;
	tc->presented_ns = (int64_t)((((uint64_t)sec_hi << 32) | sec_lo) * 1000000000ULL + nsec);
	tc->done = 1;
	wp_presentation_feedback_destroy(f);
}
static void fb_discarded(void *d, struct wp_presentation_feedback *f)
{
	struct timed_commit *tc = d;
	tc->done = 2;
	wp_presentation_feedback_destroy(f);
}
static const struct wp_presentation_feedback_listener fb_listener = {
	.sync_output = fb_sync_output,
	.presented = fb_presented,
	.discarded = fb_discarded,
};

static void key_fb_presented(void *d, struct wp_presentation_feedback *f, uint32_t sec_hi,
			     uint32_t sec_lo, uint32_t nsec, uint32_t refresh, uint32_t seq_hi,
			     uint32_t seq_lo, uint32_t flags)
{
	printf("KEY-SHOWN ns=%llu\n", (unsigned long long)((((uint64_t)sec_hi << 32) | sec_lo) * 1000000000ULL + nsec));
	fflush(stdout);
	wp_presentation_feedback_destroy(f);
}
static void key_fb_discarded(void *d, struct wp_presentation_feedback *f)
{
	printf("KEY-DISCARDED\n");
	fflush(stdout);
	wp_presentation_feedback_destroy(f);
}
static const struct wp_presentation_feedback_listener key_fb_listener = {
	.sync_output = fb_sync_output,
	.presented = key_fb_presented,
	.discarded = key_fb_discarded,
};

/* --key-redraw: a new buffer for the key press, with presentation feedback */
static void key_redraw(void)
{
	struct window *win = g.win;
	struct wl_buffer *buf;

	if (!win || !win->drawn || !g.presentation)
		return;
	g.key_redraws++;
	if (shm_buffer(win->w, win->h, win->color ^ (g.key_redraws & 1 ? 0x010101u : 0), &buf) < 0)
		exit(1);
	wl_buffer_add_listener(buf, &buffer_listener, NULL);
	wl_surface_attach(win->surface, buf, 0, 0);
	wl_surface_damage(win->surface, 0, 0, INT32_MAX, INT32_MAX);
	struct wp_presentation_feedback *fb = wp_presentation_feedback(g.presentation, win->surface);
	wp_presentation_feedback_add_listener(fb, &key_fb_listener, NULL);
	wl_surface_commit(win->surface);
	wl_display_flush(g.display);
}

static void dispatch_for(int ms)
{
	int64_t end = mono_ns() + (int64_t)ms * 1000000;
	for (;;) {
		int64_t left = end - mono_ns();
		if (left <= 0)
			break;
		wl_display_dispatch_pending(g.display);
		wl_display_flush(g.display);
		struct pollfd p = { .fd = wl_display_get_fd(g.display), .events = POLLIN };
		if (poll(&p, 1, (int)(left / 1000000) + 1) > 0 && wl_display_dispatch(g.display) < 0)
			display_error_exit();
	}
}

static void latency_commits(struct window *win, int n)
{
	if (!g.presentation || g.pres_clock != CLOCK_MONOTONIC) {
		fprintf(stderr, "qc-test-client: no wp_presentation on CLOCK_MONOTONIC\n");
		exit(1);
	}
	srand((unsigned)mono_ns());
	for (int i = 0; i < n; i++) {
		dispatch_for(rand() % 21);
		struct timed_commit tc = { 0 };
		struct wl_buffer *buf;
		if (shm_buffer(win->w, win->h, win->color ^ (uint32_t)(i & 1 ? 0x010101 : 0), &buf) < 0)
			exit(1);
		wl_buffer_add_listener(buf, &buffer_listener, NULL);
		wl_surface_attach(win->surface, buf, 0, 0);
		wl_surface_damage(win->surface, 0, 0, INT32_MAX, INT32_MAX);
		struct wp_presentation_feedback *fb = wp_presentation_feedback(g.presentation, win->surface);
		wp_presentation_feedback_add_listener(fb, &fb_listener, &tc);
		wl_surface_commit(win->surface);
		tc.commit_ns = mono_ns();
		wl_display_flush(g.display);
		while (!tc.done)
			if (wl_display_dispatch(g.display) < 0)
				display_error_exit();
		if (tc.done == 1)
			printf("PRESENT ns=%lld\n", (long long)(tc.presented_ns - tc.commit_ns));
		else
			printf("DISCARDED\n");
		fflush(stdout);
	}
	printf("LATENCY-DONE\n");
	fflush(stdout);
}

static void reg_global(void *data, struct wl_registry *r, uint32_t name, const char *iface,
		       uint32_t version)
{
	if (g.list_globals)
		printf("GLOBAL %u %s %u\n", name, iface, version);
	if (strcmp(iface, "wl_compositor") == 0)
		g.compositor = wl_registry_bind(r, name, &wl_compositor_interface, 4);
	else if (strcmp(iface, "wl_subcompositor") == 0)
		g.subcompositor = wl_registry_bind(r, name, &wl_subcompositor_interface, 1);
	else if (strcmp(iface, "wl_shm") == 0)
		g.shm = wl_registry_bind(r, name, &wl_shm_interface, 1);
	else if (strcmp(iface, "wl_seat") == 0) {
		g.seat = wl_registry_bind(r, name, &wl_seat_interface, version < 5 ? version : 5);
		wl_seat_add_listener(g.seat, &seat_listener, NULL);
	} else if (strcmp(iface, "xdg_wm_base") == 0) {
		g.wm = wl_registry_bind(r, name, &xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(g.wm, &wm_listener, NULL);
	} else if (strcmp(iface, "zxdg_decoration_manager_v1") == 0)
		g.deco = wl_registry_bind(r, name, &zxdg_decoration_manager_v1_interface, 1);
	else if (strcmp(iface, "wp_presentation") == 0) {
		g.presentation = wl_registry_bind(r, name, &wp_presentation_interface, 1);
		wp_presentation_add_listener(g.presentation, &pres_listener, NULL);
	} else if (strcmp(iface, "wp_viewporter") == 0)
		g.viewporter = wl_registry_bind(r, name, &wp_viewporter_interface, 1);
	else if (strcmp(iface, "wl_data_device_manager") == 0)
		g.ddm = wl_registry_bind(r, name, &wl_data_device_manager_interface, 3);
}
static void reg_remove(void *d, struct wl_registry *r, uint32_t name) {}
static const struct wl_registry_listener reg_listener = { .global = reg_global, .global_remove = reg_remove };

static bool parse_box(const char *s, int *x, int *y, int *w, int *h)
{
	return sscanf(s, "%d,%d,%dx%d", x, y, w, h) == 4 && *w > 0 && *h > 0 && *w <= 8192 &&
	       *h <= 8192;
}

static uint32_t parse_color(const char *s)
{
	size_t n = strlen(s);
	unsigned long v = strtoul(s, NULL, 16);
	if (n == 8) /* RRGGBBAA */
		return (uint32_t)(((v & 0xff) << 24) | (v >> 8));
	return 0xff000000u | (uint32_t)v;
}

static char *parse_hex(const char *s)
{
	size_t n = strlen(s);
	char *out = calloc(n / 2 + 1, 1);
	for (size_t i = 0; i + 1 < n; i += 2) {
		unsigned v;
		sscanf(s + i, "%2x", &v);
		out[i / 2] = (char)v;
	}
	return out;
}

static void make_window(struct window *win, const char *title)
{
	win->w = g.w;
	win->h = g.h;
	win->color = g.color;
	win->surface = wl_compositor_create_surface(g.compositor);
	win->xdg = xdg_wm_base_get_xdg_surface(g.wm, win->surface);
	xdg_surface_add_listener(win->xdg, &xdg_surface_listener, win);
	win->top = xdg_surface_get_toplevel(win->xdg);
	xdg_toplevel_add_listener(win->top, &top_listener, win);
	if (title)
		xdg_toplevel_set_title(win->top, title);
	if (g.deco) {
		struct zxdg_toplevel_decoration_v1 *d =
			zxdg_decoration_manager_v1_get_toplevel_decoration(g.deco, win->top);
		zxdg_toplevel_decoration_v1_set_mode(d, ZXDG_TOPLEVEL_DECORATION_V1_MODE_CLIENT_SIDE);
	}
	if (g.fullscreen)
		xdg_toplevel_set_fullscreen(win->top, NULL);
	if (g.maximize)
		xdg_toplevel_set_maximized(win->top);
	if (g.have_viewport && g.viewporter) {
		struct wp_viewport *vp = wp_viewporter_get_viewport(g.viewporter, win->surface);
		wp_viewport_set_destination(vp, g.vp_w, g.vp_h);
	}
	wl_surface_commit(win->surface);
}

static void add_subsurface(struct window *win)
{
	struct wl_surface *s = wl_compositor_create_surface(g.compositor);
	struct wl_subsurface *sub = wl_subcompositor_get_subsurface(g.subcompositor, s, win->surface);
	wl_subsurface_set_position(sub, g.sub_x, g.sub_y);
	wl_subsurface_set_desync(sub);
	struct wl_buffer *buf;
	if (shm_buffer(g.sub_w, g.sub_h, g.sub_color, &buf) < 0)
		exit(1);
	wl_surface_attach(s, buf, 0, 0);
	wl_surface_damage(s, 0, 0, INT32_MAX, INT32_MAX);
	wl_surface_commit(s);
	wl_surface_commit(win->surface); /* applies the position */
}

static void popup_configure(void *d, struct xdg_popup *p, int32_t x, int32_t y, int32_t w, int32_t h) {}
static void popup_done(void *d, struct xdg_popup *p) {}
static const struct xdg_popup_listener popup_listener = { .configure = popup_configure, .popup_done = popup_done };

static struct window popup_win;

static void add_popup(struct window *parent)
{
	struct xdg_positioner *pos = xdg_wm_base_create_positioner(g.wm);
	xdg_positioner_set_size(pos, g.pop_w, g.pop_h);
	xdg_positioner_set_anchor_rect(pos, g.pop_x, g.pop_y, 1, 1);
	xdg_positioner_set_anchor(pos, XDG_POSITIONER_ANCHOR_TOP_LEFT);
	xdg_positioner_set_gravity(pos, XDG_POSITIONER_GRAVITY_BOTTOM_RIGHT);
	popup_win.w = g.pop_w;
	popup_win.h = g.pop_h;
	popup_win.color = g.popup_color;
	popup_win.surface = wl_compositor_create_surface(g.compositor);
	popup_win.xdg = xdg_wm_base_get_xdg_surface(g.wm, popup_win.surface);
	xdg_surface_add_listener(popup_win.xdg, &xdg_surface_listener, &popup_win);
	struct xdg_popup *p = xdg_surface_get_popup(popup_win.xdg, parent->xdg, pos);
	xdg_popup_add_listener(p, &popup_listener, NULL);
	xdg_positioner_destroy(pos);
	wl_surface_commit(popup_win.surface);
}

/* --orphan-decoration exit|destroy: a toplevel with an xdg-decoration that
 * is never committed; "exit" disconnects at once, "destroy" destroys the
 * toplevel, xdg_surface and wl_surface and then uses the decoration (a
 * client error; wlroots 0.15 kept the decoration listening on the freed
 * surfaces).  Prints ORPHAN-SENT once the compositor has handled them. */
static void orphan_decoration(const char *mode)
{
	struct wl_surface *s = wl_compositor_create_surface(g.compositor);
	struct xdg_surface *xs = xdg_wm_base_get_xdg_surface(g.wm, s);
	struct xdg_toplevel *top = xdg_surface_get_toplevel(xs);
	xdg_toplevel_set_title(top, "orphan");
	struct zxdg_toplevel_decoration_v1 *d =
		zxdg_decoration_manager_v1_get_toplevel_decoration(g.deco, top);
	if (strcmp(mode, "destroy") == 0) {
		xdg_toplevel_destroy(top);
		xdg_surface_destroy(xs);
		wl_surface_destroy(s);
		zxdg_toplevel_decoration_v1_set_mode(d, ZXDG_TOPLEVEL_DECORATION_V1_MODE_CLIENT_SIDE);
		zxdg_toplevel_decoration_v1_destroy(d);
	}
	/* a roundtrip: the compositor has handled every request (a hangup
	 * with requests unread would drop them unhandled); "destroy" ends in
	 * an error once the compositor dropped the orphaned decoration */
	int r = wl_display_roundtrip(g.display);
	printf("ORPHAN-SENT\n");
	fflush(stdout);
	if (r < 0)
		display_error_exit();
}

static void display_error_exit(void)
{
	int err = wl_display_get_error(g.display);
	if (err == EPROTO) {
		const struct wl_interface *iface;
		uint32_t id;
		uint32_t code = wl_display_get_protocol_error(g.display, &iface, &id);
		fprintf(stderr, "qc-test-client: protocol error %u on %s@%u\n", code,
			iface ? iface->name : "?", id);
		printf("PROTOCOL-ERROR\n");
		fflush(stdout);
		exit(3);
	}
	fprintf(stderr, "qc-test-client: display error %d\n", err);
	exit(1);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "title", required_argument, NULL, 't' },
		{ "title-hex", required_argument, NULL, 'T' },
		{ "color", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "fullscreen", no_argument, NULL, 'F' },
		{ "maximize", no_argument, NULL, 'M' },
		{ "move", no_argument, NULL, 'm' },
		{ "subsurface", required_argument, NULL, 'S' },
		{ "subsurface-color", required_argument, NULL, 'C' },
		{ "popup", required_argument, NULL, 'P' },
		{ "popup-color", required_argument, NULL, 'Q' },
		{ "viewport", required_argument, NULL, 'V' },
		{ "bind", required_argument, NULL, 'B' },
		{ "list-globals", no_argument, NULL, 'L' },
		{ "windows", required_argument, NULL, 'n' },
		{ "copy", required_argument, NULL, 'y' },
		{ "paste", no_argument, NULL, 'p' },
		{ "animate", no_argument, NULL, 'A' },
		{ "orphan-decoration", required_argument, NULL, 'O' },
		{ "latency-commits", required_argument, NULL, 'N' },
		{ "key-redraw", no_argument, NULL, 'K' },
		{ 0 },
	};
	g.color = 0xff808080u;
	g.sub_color = 0xff00ffffu;
	g.popup_color = 0xffffff00u;
	g.w = 200;
	g.h = 120;
	g.n_windows = 1;
	int c, x, y;
	char ifname[128];
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 't': g.title = optarg; break;
		case 'T': g.title_bytes = parse_hex(optarg); g.title = g.title_bytes; break;
		case 'c': g.color = parse_color(optarg); break;
		case 's':
			if (sscanf(optarg, "%dx%d", &g.w, &g.h) != 2 || g.w <= 0 || g.h <= 0)
				return 2;
			break;
		case 'F': g.fullscreen = true; break;
		case 'M': g.maximize = true; break;
		case 'm': g.move = true; break;
		case 'S':
			if (!parse_box(optarg, &g.sub_x, &g.sub_y, &g.sub_w, &g.sub_h))
				return 2;
			g.have_sub = true;
			break;
		case 'C': g.sub_color = parse_color(optarg); break;
		case 'P':
			if (!parse_box(optarg, &g.pop_x, &g.pop_y, &g.pop_w, &g.pop_h))
				return 2;
			g.have_popup = true;
			break;
		case 'Q': g.popup_color = parse_color(optarg); break;
		case 'V':
			if (sscanf(optarg, "%dx%d", &g.vp_w, &g.vp_h) != 2)
				return 2;
			g.have_viewport = true;
			break;
		case 'B':
			if (sscanf(optarg, "%u:%127[^:]:%u", &g.bind_name, ifname, &g.bind_version) != 3)
				return 2;
			g.bind_iface = strdup(ifname);
			break;
		case 'L': g.list_globals = true; break;
		case 'n': g.n_windows = atoi(optarg); break;
		case 'y': g.copy_text = optarg; break;
		case 'p': g.paste = true; break;
		case 'A': g.animate = true; break;
		case 'N': g.latency_commits = atoi(optarg); break;
		case 'K': g.key_redraw = true; break;
		case 'O':
			if (strcmp(optarg, "exit") != 0 && strcmp(optarg, "destroy") != 0)
				return 2;
			g.orphan_deco = optarg;
			break;
		default: return 2;
		}
	}
	(void)x;
	(void)y;
	g.display = wl_display_connect(NULL);
	if (!g.display) {
		fprintf(stderr, "qc-test-client: cannot connect to the compositor\n");
		return 1;
	}
	g.registry = wl_display_get_registry(g.display);
	wl_registry_add_listener(g.registry, &reg_listener, NULL);
	if (wl_display_roundtrip(g.display) < 0)
		display_error_exit();
	if (g.list_globals) {
		fflush(stdout);
		return 0;
	}
	if (g.bind_iface) {
		/* bind a global by name, offered or not */
		static struct wl_interface fake;
		fake.name = g.bind_iface;
		fake.version = (int)g.bind_version;
		wl_registry_bind(g.registry, g.bind_name, &fake, g.bind_version);
		if (wl_display_roundtrip(g.display) < 0)
			display_error_exit();
		printf("BOUND\n");
		fflush(stdout);
		return 0;
	}
	if (!g.compositor || !g.shm || !g.wm) {
		fprintf(stderr, "qc-test-client: missing wl_compositor, wl_shm or xdg_wm_base\n");
		return 1;
	}
	if (g.orphan_deco) {
		if (!g.deco) {
			fprintf(stderr, "qc-test-client: no zxdg_decoration_manager_v1\n");
			return 1;
		}
		orphan_decoration(g.orphan_deco);
		return 0;
	}
	if (g.ddm && g.seat) {
		g.dd = wl_data_device_manager_get_data_device(g.ddm, g.seat);
		wl_data_device_add_listener(g.dd, &dd_listener, NULL);
	}
	g.win = calloc((size_t)g.n_windows, sizeof(*g.win));
	for (int i = 0; i < g.n_windows; i++)
		make_window(&g.win[i], g.title);
	if (wl_display_roundtrip(g.display) < 0 || wl_display_roundtrip(g.display) < 0)
		display_error_exit();
	if (g.have_sub && g.subcompositor)
		add_subsurface(&g.win[0]);
	if (g.have_popup)
		add_popup(&g.win[0]);
	if (g.move && g.seat)
		xdg_toplevel_move(g.win[0].top, g.seat, g.last_serial);
	if (wl_display_roundtrip(g.display) < 0 || wl_display_roundtrip(g.display) < 0)
		display_error_exit();
	printf("READY\n");
	if (g.key_redraw) {
		/* as waypipe estimates it: the midpoint of two MONOTONIC reads */
		struct timespec m0, r, m1;
		clock_gettime(CLOCK_MONOTONIC, &m0);
		clock_gettime(CLOCK_REALTIME, &r);
		clock_gettime(CLOCK_MONOTONIC, &m1);
		int64_t mono = ((int64_t)m0.tv_sec * 1000000000LL + m0.tv_nsec +
				(int64_t)m1.tv_sec * 1000000000LL + m1.tv_nsec) / 2;
		printf("CLOCK-DELTA ns=%lld\n", (long long)((int64_t)r.tv_sec * 1000000000LL + r.tv_nsec - mono));
	}
	fflush(stdout);
	if (g.latency_commits > 0)
		latency_commits(&g.win[0], g.latency_commits);
	while (wl_display_dispatch(g.display) >= 0)
		;
	display_error_exit();
	return 1;
}
