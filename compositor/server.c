/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-compositor: main, outputs, input, focus and key bindings.
 * Structure after wlroots' tinywl (scene graph, xdg-shell, one seat).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <xkbcommon/xkbcommon.h>
#include <wlr/types/wlr_presentation_time.h>
#include <wlr/types/wlr_screencopy_v1.h>
#include <wlr/types/wlr_viewporter.h>
#include <wlr/types/wlr_xcursor_manager.h>
#include <wlr/types/wlr_xdg_decoration_v1.h>
#include <wlr/types/wlr_xdg_output_v1.h>
#include <wlr/util/log.h>

#include "config.h"
#include "server.h"

void qc_get_output_box(struct qc_server *server, struct wlr_box *ret_box)
{
	struct wlr_box b = { 0 };
	qc_compat_layout_box(server->layout, &b);
	if (b.width <= 0 || b.height <= 0)
		b = (struct wlr_box){ 0, 0, 1280, 720 };
	*ret_box = b;
}

/* ---- focus ---- */

void qc_focus_view(struct qc_server *server, struct qc_view *view)
{
	struct qc_view *prev = server->focused;
	if (prev && prev != view && prev->mapped)
		qc_compat_toplevel_set_activated(prev->xdg, false);
	server->focused = view;
	if (!view) {
		wlr_seat_set_selection(server->seat, NULL, wl_display_next_serial(server->display));
		wlr_seat_keyboard_notify_clear_focus(server->seat);
		return;
	}
	wl_list_remove(&view->link);
	wl_list_insert(&server->views, &view->link);
	wlr_scene_node_raise_to_top(view->tree);
	qc_compat_toplevel_set_activated(view->xdg, true);
	/* The seat's selection is sent to whichever client has the keyboard
	 * focus, at once and again on enter: empty it before the focus moves,
	 * fill it with the new owner's selection after, so no client is ever
	 * offered another qube's selection. */
	wlr_seat_set_selection(server->seat, NULL, wl_display_next_serial(server->display));
	struct wlr_keyboard *kb = wlr_seat_get_keyboard(server->seat);
	if (kb)
		wlr_seat_keyboard_notify_enter(server->seat, view->xdg->surface, kb->keycodes,
					       kb->num_keycodes, &kb->modifiers);
	else
		wlr_seat_keyboard_notify_enter(server->seat, view->xdg->surface, NULL, 0, NULL);
	qc_clipboard_focus_changed(server);
}

static void focus_cycle(struct qc_server *server)
{
	if (wl_list_length(&server->views) < 2)
		return;
	struct qc_view *last = wl_container_of(server->views.prev, last, link);
	qc_focus_view(server, last);
}

/* ---- keyboard ---- */

static bool handle_binding(struct qc_server *server, uint32_t mods, xkb_keysym_t sym)
{
	xkb_keysym_t lower = xkb_keysym_to_lower(sym);
	if ((mods & (WLR_MODIFIER_CTRL | WLR_MODIFIER_SHIFT)) ==
	    (WLR_MODIFIER_CTRL | WLR_MODIFIER_SHIFT)) {
		if (lower == XKB_KEY_c) {
			qc_clipboard_copy(server);
			return true;
		}
		if (lower == XKB_KEY_v) {
			qc_clipboard_paste(server);
			return true;
		}
	}
	if ((mods & WLR_MODIFIER_ALT) && lower == XKB_KEY_Tab) {
		focus_cycle(server);
		return true;
	}
	return false;
}

static void keyboard_handle_modifiers(struct wl_listener *l, void *data)
{
	struct qc_keyboard *k = wl_container_of(l, k, modifiers);
	struct wlr_keyboard *kb = qc_compat_keyboard(k->device);
	wlr_seat_set_keyboard(k->server->seat, k->device);
	wlr_seat_keyboard_notify_modifiers(k->server->seat, &kb->modifiers);
}

static void keyboard_handle_key(struct wl_listener *l, void *data)
{
	struct qc_keyboard *k = wl_container_of(l, k, key);
	struct qc_server *server = k->server;
	qc_key_event *ev = data;
	struct wlr_keyboard *kb = qc_compat_keyboard(k->device);
	uint32_t keycode = ev->keycode + 8;
	const xkb_keysym_t *syms;
	int n = xkb_state_key_get_syms(kb->xkb_state, keycode, &syms);
	uint32_t mods = wlr_keyboard_get_modifiers(kb);
	bool handled = false;
	if (ev->state == WL_KEYBOARD_KEY_STATE_PRESSED) {
		for (int i = 0; i < n && !handled; i++) {
			if (qc_prompt_active(server))
				handled = qc_prompt_handle_key(server, syms[i]);
			else
				handled = handle_binding(server, mods, syms[i]);
		}
	}
	/* while the ask prompt is up, no key reaches a client */
	if (qc_prompt_active(server))
		handled = true;
	if (ev->state == WL_KEYBOARD_KEY_STATE_PRESSED && handled && k->n_kept < 16) {
		k->kept[k->n_kept++] = ev->keycode;
	} else if (ev->state == WL_KEYBOARD_KEY_STATE_RELEASED) {
		for (size_t i = 0; i < k->n_kept; i++) {
			if (k->kept[i] == ev->keycode) {
				k->kept[i] = k->kept[--k->n_kept];
				handled = true;
				break;
			}
		}
	}
	if (!handled) {
		wlr_seat_set_keyboard(server->seat, k->device);
		wlr_seat_keyboard_notify_key(server->seat, ev->time_msec, ev->keycode, ev->state);
	}
}

static void keyboard_handle_destroy(struct wl_listener *l, void *data)
{
	struct qc_keyboard *k = wl_container_of(l, k, destroy);
	if (k->server->debug_kbd == k->device)
		k->server->debug_kbd = NULL;
	wl_list_remove(&k->modifiers.link);
	wl_list_remove(&k->key.link);
	wl_list_remove(&k->destroy.link);
	wl_list_remove(&k->link);
	free(k);
}

static void update_capabilities(struct qc_server *server)
{
	uint32_t caps = WL_SEAT_CAPABILITY_POINTER;
	if (!wl_list_empty(&server->keyboards))
		caps |= WL_SEAT_CAPABILITY_KEYBOARD;
	wlr_seat_set_capabilities(server->seat, caps);
}

static void handle_new_input(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, new_input);
	struct wlr_input_device *dev = data;
	if (qc_compat_device_is_keyboard(dev)) {
		struct qc_keyboard *k = calloc(1, sizeof(*k));
		if (!k)
			return;
		k->server = server;
		k->device = dev;
		struct xkb_context *ctx = xkb_context_new(XKB_CONTEXT_NO_FLAGS);
		struct xkb_keymap *km = ctx ? xkb_keymap_new_from_names(ctx, NULL,
						XKB_KEYMAP_COMPILE_NO_FLAGS) : NULL;
		struct wlr_keyboard *kb = qc_compat_keyboard(dev);
		if (km)
			wlr_keyboard_set_keymap(kb, km);
		xkb_keymap_unref(km);
		xkb_context_unref(ctx);
		wlr_keyboard_set_repeat_info(kb, 25, 600);
		k->modifiers.notify = keyboard_handle_modifiers;
		wl_signal_add(qc_compat_keyboard_modifiers_signal(dev), &k->modifiers);
		k->key.notify = keyboard_handle_key;
		wl_signal_add(qc_compat_keyboard_key_signal(dev), &k->key);
		k->destroy.notify = keyboard_handle_destroy;
		wl_signal_add(&dev->events.destroy, &k->destroy);
		wlr_seat_set_keyboard(server->seat, dev);
		wl_list_insert(&server->keyboards, &k->link);
	} else if (qc_compat_device_is_pointer(dev)) {
		wlr_cursor_attach_input_device(server->cursor, dev);
	}
	update_capabilities(server);
}

/* KEY command of the control socket (--debug-control): SPEC is
 * "mod+mod+name" with mods ctrl, shift, alt and an xkb key name; the
 * keys go through the test keyboard like a real key press. */
int qc_inject_keys(struct qc_server *server, const char *spec)
{
	if (!server->debug_kbd)
		return -ENODEV;
	struct wlr_keyboard *kb = qc_compat_keyboard(server->debug_kbd);
	if (!kb->keymap)
		return -ENODEV;
	uint32_t codes[8];
	size_t n = 0;
	char buf[128];
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	char *save = NULL;
	for (char *tok = strtok_r(buf, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
		if (n == 8)
			return -EINVAL;
		if (strcasecmp(tok, "ctrl") == 0) {
			codes[n++] = 29; /* KEY_LEFTCTRL */
			continue;
		}
		if (strcasecmp(tok, "shift") == 0) {
			codes[n++] = 42; /* KEY_LEFTSHIFT */
			continue;
		}
		if (strcasecmp(tok, "alt") == 0) {
			codes[n++] = 56; /* KEY_LEFTALT */
			continue;
		}
		xkb_keysym_t want = xkb_keysym_from_name(tok, XKB_KEYSYM_CASE_INSENSITIVE);
		if (want == XKB_KEY_NoSymbol)
			return -EINVAL;
		uint32_t found = 0;
		for (xkb_keycode_t kc = xkb_keymap_min_keycode(kb->keymap);
		     kc <= xkb_keymap_max_keycode(kb->keymap) && !found; kc++) {
			const xkb_keysym_t *syms;
			int ns = xkb_keymap_key_get_syms_by_level(kb->keymap, kc, 0, 0, &syms);
			for (int i = 0; i < ns; i++)
				if (xkb_keysym_to_lower(syms[i]) == xkb_keysym_to_lower(want))
					found = kc;
		}
		if (!found || found < 8)
			return -EINVAL;
		codes[n++] = found - 8;
	}
	for (size_t i = 0; i < n; i++)
		qc_compat_keyboard_inject(server->debug_kbd, codes[i], true);
	for (size_t i = n; i-- > 0;)
		qc_compat_keyboard_inject(server->debug_kbd, codes[i], false);
	return 0;
}

/* ---- pointer: click to focus, Alt+drag moves ---- */

static void process_motion(struct qc_server *server, uint32_t time)
{
	if (server->grab) {
		qc_view_set_position(server->grab, (int)(server->cursor->x - server->grab_dx),
				     (int)(server->cursor->y - server->grab_dy));
		return;
	}
	struct wlr_surface *s;
	double sx, sy;
	qc_view_at(server, server->cursor->x, server->cursor->y, &s, &sx, &sy);
	if (s) {
		wlr_seat_pointer_notify_enter(server->seat, s, sx, sy);
		wlr_seat_pointer_notify_motion(server->seat, time, sx, sy);
	} else {
		wlr_seat_pointer_clear_focus(server->seat);
	}
}

static void handle_cursor_motion(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, cursor_motion);
	qc_motion_event *ev = data;
	wlr_cursor_move(server->cursor, ev->device, ev->delta_x, ev->delta_y);
	process_motion(server, ev->time_msec);
}

static void handle_cursor_motion_abs(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, cursor_motion_abs);
	qc_motion_abs_event *ev = data;
	wlr_cursor_warp_absolute(server->cursor, ev->device, ev->x, ev->y);
	process_motion(server, ev->time_msec);
}

static void handle_cursor_button(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, cursor_button);
	qc_button_event *ev = data;
	if (ev->state == WLR_BUTTON_RELEASED) {
		if (server->grab) {
			server->grab = NULL;
			return;
		}
		wlr_seat_pointer_notify_button(server->seat, ev->time_msec, ev->button, ev->state);
		return;
	}
	struct wlr_surface *s;
	double sx, sy;
	struct qc_view *v = qc_view_at(server, server->cursor->x, server->cursor->y, &s, &sx, &sy);
	if (v && !qc_prompt_active(server))
		qc_focus_view(server, v);
	struct wlr_keyboard *kb = wlr_seat_get_keyboard(server->seat);
	if (v && kb && (wlr_keyboard_get_modifiers(kb) & WLR_MODIFIER_ALT)) {
		server->grab = v;
		server->grab_dx = server->cursor->x - v->x;
		server->grab_dy = server->cursor->y - v->y;
		return;
	}
	wlr_seat_pointer_notify_button(server->seat, ev->time_msec, ev->button, ev->state);
}

static void handle_cursor_axis(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, cursor_axis);
	qc_axis_event *ev = data;
	wlr_seat_pointer_notify_axis(server->seat, ev->time_msec, ev->orientation, ev->delta,
				     ev->delta_discrete, ev->source);
}

static void handle_cursor_frame(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, cursor_frame);
	wlr_seat_pointer_notify_frame(server->seat);
}

static void handle_request_cursor(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, request_cursor);
	struct wlr_seat_pointer_request_set_cursor_event *ev = data;
	if (server->seat->pointer_state.focused_client == ev->seat_client)
		wlr_cursor_set_surface(server->cursor, ev->surface, ev->hotspot_x, ev->hotspot_y);
}

/* ---- outputs ---- */

static void stats_add(struct qc_stats *st, uint64_t ns, uint64_t cpu_ns)
{
	size_t i = st->n_samples++ % (sizeof(st->samples_ns) / sizeof(st->samples_ns[0]));
	st->frames++;
	st->sum_ns += ns;
	st->cpu_sum_ns += cpu_ns;
	if (ns > st->max_ns)
		st->max_ns = ns;
	st->samples_ns[i] = ns;
	st->cpu_samples_ns[i] = cpu_ns;
}

static void output_handle_frame(struct wl_listener *l, void *data)
{
	struct qc_output *o = wl_container_of(l, o, frame);
	struct qc_server *server = o->server;
	if (server->bench_ab)
		qc_views_set_borders(server, !server->borders);
	qc_views_update_all(server);
	uint64_t cpu_ns = 0;
	uint64_t ns = qc_compat_output_frame(server->scene, o->output, server->opt.bench_full_damage,
					     &cpu_ns);
	if (ns) {
		stats_add(&server->stats, ns, cpu_ns);
		if (server->bench_ab)
			stats_add(&server->stats_ab[server->borders ? 1 : 0], ns, cpu_ns);
	}
}

static void output_handle_destroy(struct wl_listener *l, void *data)
{
	struct qc_output *o = wl_container_of(l, o, destroy);
	wl_list_remove(&o->frame.link);
	wl_list_remove(&o->destroy.link);
	wl_list_remove(&o->link);
	free(o);
}

static void handle_new_output(struct wl_listener *l, void *data)
{
	struct qc_server *server = wl_container_of(l, server, new_output);
	struct wlr_output *output = data;
	if (!qc_compat_output_init(&server->be, output, server->opt.bench_refresh_hz)) {
		fprintf(stderr, "qube-compositor: cannot enable output %s\n", output->name);
		return;
	}
	struct qc_output *o = calloc(1, sizeof(*o));
	if (!o)
		return;
	o->server = server;
	o->output = output;
	o->frame.notify = output_handle_frame;
	wl_signal_add(&output->events.frame, &o->frame);
	o->destroy.notify = output_handle_destroy;
	wl_signal_add(&output->events.destroy, &o->destroy);
	wl_list_insert(&server->outputs, &o->link);
	wlr_output_layout_add_auto(server->layout, output);
}

static void handle_new_decoration(struct wl_listener *l, void *data)
{
	struct wlr_xdg_toplevel_decoration_v1 *deco = data;
	/* always server-side: the frame is ours */
	wlr_xdg_toplevel_decoration_v1_set_mode(deco, WLR_XDG_TOPLEVEL_DECORATION_V1_MODE_SERVER_SIDE);
}

static void handle_decoration_dropped(struct wl_client *client, void *data)
{
	/* no qube name: on a disconnect the client's tag is already gone */
	pid_t pid = 0;
	wl_client_get_credentials(client, &pid, NULL, NULL);
	fprintf(stderr, "qube-compositor: a decoration outlived its never-shown window "
		"(client pid %d): destroyed\n", (int)pid);
}

static int handle_signal(int sig, void *data)
{
	struct qc_server *server = data;
	wl_display_terminate(server->display);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qube-compositor [options]\n"
		"  --control PATH       control socket (default $XDG_RUNTIME_DIR/qube-compositor.ctl)\n"
		"  --socket NAME        host Wayland socket name (default: first free wayland-N)\n"
		"  --policy-dir DIR     policy for qube.ClipboardPaste (default %s)\n"
		"  --system-info FILE   system info for the policy (required for pasting)\n"
		"  --ask-socket PATH    the broker's ask interface: show its questions\n"
		"  --ask-timeout MS     a question not answered within this is denied (default 60000)\n"
		"  --clipboard-cap N    bytes a copy may hold (default %d)\n"
		"  --font PATH          TrueType font for titles and prompts\n"
		"  --debug-control      enable the test commands KEY, BORDERS, STATS\n"
		"  --bench-full-damage  repaint the whole output on every frame\n"
		"  --bench-refresh HZ   headless output refresh rate (benchmarks)\n"
		"  -s CMD               run CMD (with /bin/sh -c) once started\n",
		QUBE_POLICY_DIR, QC_CLIP_DEFAULT_CAP);
}

static int parse_args(struct qc_options *opt, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ "policy-dir", required_argument, NULL, 'p' },
		{ "system-info", required_argument, NULL, 'i' },
		{ "ask-socket", required_argument, NULL, 'a' },
		{ "ask-timeout", required_argument, NULL, 't' },
		{ "clipboard-cap", required_argument, NULL, 'C' },
		{ "font", required_argument, NULL, 'f' },
		{ "debug-control", no_argument, NULL, 'd' },
		{ "bench-full-damage", no_argument, NULL, 'D' },
		{ "bench-refresh", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	opt->policy_dir = QUBE_POLICY_DIR;
	opt->ask_timeout_ms = 60000;
	opt->clip_cap = QC_CLIP_DEFAULT_CAP;
	opt->font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
	int c;
	char *end;
	unsigned long v;
	while ((c = getopt_long(argc, argv, "s:h", longs, NULL)) != -1) {
		switch (c) {
		case 'c': opt->control_path = optarg; break;
		case 'S': opt->socket_name = optarg; break;
		case 'p': opt->policy_dir = optarg; break;
		case 'i': opt->system_info = optarg; break;
		case 'a': opt->ask_socket = optarg; break;
		case 'f': opt->font_path = optarg; break;
		case 'd': opt->debug_control = true; break;
		case 'D': opt->bench_full_damage = true; break;
		case 's': opt->startup_cmd = optarg; break;
		case 't':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 3600000) {
				fprintf(stderr, "qube-compositor: --ask-timeout: '%s' is not 1..3600000\n", optarg);
				return -EINVAL;
			}
			opt->ask_timeout_ms = (unsigned)v;
			break;
		case 'R':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 1000) {
				fprintf(stderr, "qube-compositor: --bench-refresh: '%s' is not 1..1000\n", optarg);
				return -EINVAL;
			}
			opt->bench_refresh_hz = (unsigned)v;
			break;
		case 'C':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > QC_CLIP_MAX_CAP) {
				fprintf(stderr, "qube-compositor: --clipboard-cap: '%s' is not 1..%u\n",
					optarg, QC_CLIP_MAX_CAP);
				return -EINVAL;
			}
			opt->clip_cap = v;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qube-compositor: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct qc_server server_storage = { 0 };
	struct qc_server *server = &server_storage;
	if (parse_args(&server->opt, argc, argv) < 0)
		return 2;
	wlr_log_init(getenv("QC_WLR_DEBUG") ? WLR_DEBUG : WLR_ERROR, NULL);
	signal(SIGPIPE, SIG_IGN);
	server->borders = true;
	server->ctl_fd = -1;
	wl_list_init(&server->outputs);
	wl_list_init(&server->views);
	wl_list_init(&server->qubes);
	wl_list_init(&server->keyboards);
	wl_list_init(&server->ctl_conns);

	server->display = wl_display_create();
	if (!server->display)
		return 1;
	server->loop = wl_display_get_event_loop(server->display);
	/* before any global exists: qube clients see only the allow-list */
	wl_display_set_global_filter(server->display, qc_global_filter, server);
	int r = qc_compat_backend_init(&server->be, server->display);
	if (r < 0) {
		fprintf(stderr, "qube-compositor: cannot create the wlroots backend: %s\n", strerror(-r));
		return 1;
	}
	if (qc_font_new(server->opt.font_path, 13, &server->font) < 0) {
		fprintf(stderr, "qube-compositor: font %s unusable: titles are not drawn\n",
			server->opt.font_path);
		server->font = NULL;
	}
	wlr_data_device_manager_create(server->display);
	server->layout = wlr_output_layout_create();
	wlr_xdg_output_manager_v1_create(server->display, server->layout);
	wlr_screencopy_manager_v1_create(server->display);
	wlr_viewporter_create(server->display);
	server->scene = wlr_scene_create();
	wlr_scene_attach_output_layout(server->scene, server->layout);
	struct wlr_presentation *pres = wlr_presentation_create(server->display, server->be.backend);
	wlr_scene_set_presentation(server->scene, pres);
	server->layer_views = qc_compat_tree_new(qc_compat_scene_root(server->scene));
	server->layer_overlay = qc_compat_tree_new(qc_compat_scene_root(server->scene));

	server->new_output.notify = handle_new_output;
	wl_signal_add(&server->be.backend->events.new_output, &server->new_output);
	server->xdg_shell = wlr_xdg_shell_create(server->display);
	server->new_xdg_surface.notify = qc_view_handle_new_xdg_surface;
	wl_signal_add(&server->xdg_shell->events.new_surface, &server->new_xdg_surface);
	struct wlr_xdg_decoration_manager_v1 *deco =
		wlr_xdg_decoration_manager_v1_create(server->display);
	server->new_decoration.notify = handle_new_decoration;
	wl_signal_add(&deco->events.new_toplevel_decoration, &server->new_decoration);
	server->deco_guard = qc_compat_deco_guard_new(server->display, deco,
						      handle_decoration_dropped, server);
	if (!server->deco_guard)
		return 1;

	server->cursor = wlr_cursor_create();
	wlr_cursor_attach_output_layout(server->cursor, server->layout);
	server->xcursor = wlr_xcursor_manager_create(NULL, 24);
	wlr_xcursor_manager_load(server->xcursor, 1);
	server->cursor_motion.notify = handle_cursor_motion;
	wl_signal_add(&server->cursor->events.motion, &server->cursor_motion);
	server->cursor_motion_abs.notify = handle_cursor_motion_abs;
	wl_signal_add(&server->cursor->events.motion_absolute, &server->cursor_motion_abs);
	server->cursor_button.notify = handle_cursor_button;
	wl_signal_add(&server->cursor->events.button, &server->cursor_button);
	server->cursor_axis.notify = handle_cursor_axis;
	wl_signal_add(&server->cursor->events.axis, &server->cursor_axis);
	server->cursor_frame.notify = handle_cursor_frame;
	wl_signal_add(&server->cursor->events.frame, &server->cursor_frame);

	server->new_input.notify = handle_new_input;
	wl_signal_add(&server->be.backend->events.new_input, &server->new_input);
	server->seat = wlr_seat_create(server->display, "seat0");
	server->request_cursor.notify = handle_request_cursor;
	wl_signal_add(&server->seat->events.request_set_cursor, &server->request_cursor);
	qc_clipboard_init(server);

	const char *sock = server->opt.socket_name;
	if (sock) {
		if (wl_display_add_socket(server->display, sock) < 0) {
			fprintf(stderr, "qube-compositor: cannot open Wayland socket %s\n", sock);
			return 1;
		}
	} else {
		sock = wl_display_add_socket_auto(server->display);
		if (!sock) {
			fprintf(stderr, "qube-compositor: cannot open a Wayland socket\n");
			return 1;
		}
	}
	if (!wlr_backend_start(server->be.backend)) {
		fprintf(stderr, "qube-compositor: cannot start the backend\n");
		return 1;
	}
	if (server->opt.debug_control) {
		server->debug_kbd = qc_compat_add_test_keyboard(&server->be);
		if (!server->debug_kbd)
			fprintf(stderr, "qube-compositor: no test keyboard (not on the headless backend)\n");
	}
	setenv("WAYLAND_DISPLAY", sock, 1);
	if (qc_control_init(server) < 0)
		return 1;
	if (server->opt.ask_socket && qc_prompt_init(server) < 0)
		return 1;
	struct wl_event_source *sig_term = wl_event_loop_add_signal(server->loop, SIGTERM,
								    handle_signal, server);
	struct wl_event_source *sig_int = wl_event_loop_add_signal(server->loop, SIGINT,
								   handle_signal, server);
	if (server->opt.startup_cmd && fork() == 0) {
		/* wl_event_loop_add_signal blocked SIGTERM and SIGINT for its
		 * signalfd: the session's programs start with neither blocked */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "/bin/sh", "-c", server->opt.startup_cmd, (char *)NULL);
		_exit(127);
	}
	fprintf(stderr, "qube-compositor: ready (pid %d) WAYLAND_DISPLAY=%s\n", (int)getpid(), sock);
	wl_display_run(server->display);

	fprintf(stderr, "qube-compositor: stopping\n");
	qc_prompt_finish(server);
	qc_control_finish(server);
	qc_qubes_finish(server);
	wl_event_source_remove(sig_term);
	wl_event_source_remove(sig_int);
	wl_display_destroy_clients(server->display);
	qc_compat_deco_guard_free(server->deco_guard);
	qc_selection_clear(&server->host_sel);
	qc_global_clip_clear(&server->clip);
	if (server->notice_timer)
		wl_event_source_remove(server->notice_timer);
	wlr_xcursor_manager_destroy(server->xcursor);
	wlr_cursor_destroy(server->cursor);
	/* Teardown order (each checked under valgrind): the outputs (with
	 * the backend) take their scene outputs with them; the layout goes
	 * before the scene, whose attachment to the layout (0.15) listens
	 * for the layout's destroy and reads the scene then. */
	wlr_backend_destroy(server->be.backend);
	wlr_output_layout_destroy(server->layout);
	qc_compat_scene_destroy(server->scene);
	wlr_allocator_destroy(server->be.allocator);
	wlr_renderer_destroy(server->be.renderer);
	wl_display_destroy(server->display);
	qc_font_free(server->font);
	return 0;
}
