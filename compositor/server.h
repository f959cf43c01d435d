/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-compositor: shared structures of the compositor's parts
 * (server.c: outputs, input, focus; view.c: windows and frames;
 * qube.c: per-qube sockets and the control socket; clipboard.c;
 * prompt.c: the ask prompt).  Every wlroots call whose shape changed
 * after 0.15 goes through wlr-compat.h.
 */
#ifndef QC_SERVER_H
#define QC_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <wayland-server-core.h>

#include "wlr-compat.h"
#include "qc-clip.h"
#include "qc-font.h"

/* Frame geometry (pixels) */
#define QC_BORDER 4      /* side and bottom border */
#define QC_TITLE_H 20    /* title bar above the content */

struct qc_server;
struct qc_qube;

/* A qube's client connection, tagged when accepted on its socket. */
struct qc_client {
	struct wl_listener destroy; /* found with wl_client_get_destroy_listener */
	struct wl_list link;        /* qc_qube.clients */
	struct wl_client *client;
	struct qc_qube *qube;
};

/* A selection kept by the compositor (text bytes it owns). */
struct qc_proxy_source;
struct qc_copy_read;

struct qc_selection {
	/* exactly one of these, or neither (empty) */
	struct wlr_data_source *client_source; /* owned by a client of the qube */
	struct wl_listener client_source_destroy;
	uint8_t *text; /* compositor-held bytes (after a paste) */
	size_t text_len;
	struct qc_proxy_source *proxy; /* the seat's selection while it shows this one */
};

struct qc_qube {
	struct wl_list link; /* qc_server.qubes */
	struct qc_server *server;
	char name[32];
	const char *label; /* static string: "red", ... */
	uint32_t rgb;
	char *path;
	int listen_fd;
	struct wl_event_source *listen_src;
	struct wl_list clients; /* qc_client.link */
	struct qc_selection sel;
	unsigned n_windows;
};

enum qc_view_kind { QC_VIEW_TOPLEVEL, QC_VIEW_POPUP };

struct qc_frame {
	struct wlr_scene_node *tree;
	/* top bar (only where no title image is drawn), bottom, left, right:
	 * opaque images of the label colour, made again when their size
	 * changes (the 0.15 pixman renderer allocates and fills an image for
	 * a wlr_scene_rect on every frame) */
	struct wlr_scene_node *side[4];
	int side_w[4], side_h[4];
	struct wlr_scene_node *title_node; /* text buffer node, or NULL */
	char *title_drawn;                 /* what title_node shows */
	int drawn_w;
};

struct qc_view {
	struct wl_list link; /* qc_server.views (toplevels), top of stack first */
	struct qc_server *server;
	enum qc_view_kind kind;
	unsigned id;
	struct wlr_xdg_surface *xdg;
	struct qc_qube *qube; /* NULL: host client */
	char qube_name[32];   /* kept after the qube goes */
	struct qc_view *toplevel; /* popups: the toplevel they belong to */

	struct wlr_scene_node *tree;    /* positioned at the frame's top-left */
	struct wlr_scene_node *content; /* the client's surface tree */
	struct qc_frame frame;          /* qube views only */
	bool mapped, hidden_oversize, hidden_outside;

	/* toplevels: frame top-left in layout coordinates; popups: relative
	 * to the toplevel's tree */
	int x, y;
	/* last computed extents of the client's surfaces, and the content box
	 * (frame inner size) */
	struct wlr_box ext;
	int content_w, content_h;
	bool fullscreen_req, maximized_req;

	char *title; /* sanitised, with the "[qube] " prefix for qube views */

	struct wl_listener map, unmap, destroy, new_popup;
	struct wl_listener request_fullscreen, request_maximize, request_move,
		request_resize, set_title;
};

struct qc_keyboard {
	struct wl_list link;
	struct qc_server *server;
	struct wlr_input_device *device;
	struct wl_listener modifiers, key, destroy;
	/* keys whose press the compositor kept (bindings, the ask prompt):
	 * their release is kept too */
	uint32_t kept[16];
	size_t n_kept;
};

struct qc_output {
	struct wl_list link;
	struct qc_server *server;
	struct wlr_output *output;
	struct wl_listener frame, destroy;
};

struct qc_stats {
	uint64_t frames;
	uint64_t sum_ns, max_ns, cpu_sum_ns;
	uint64_t samples_ns[4096], cpu_samples_ns[4096];
	size_t n_samples;
};

struct qc_prompt;

struct qc_options {
	const char *control_path;
	const char *socket_name;
	const char *policy_dir;
	const char *system_info;
	const char *ask_socket;
	const char *font_path;
	unsigned ask_timeout_ms;
	size_t clip_cap;
	bool debug_control;
	bool bench_full_damage;
	unsigned bench_refresh_hz; /* 0: the output's own mode */
	const char *startup_cmd;
};

struct qc_server {
	struct qc_options opt;
	struct wl_display *display;
	struct wl_event_loop *loop;
	struct qc_compat_backend be;
	struct wlr_scene *scene;
	struct wlr_scene_node *layer_views;
	struct wlr_scene_node *layer_overlay;
	struct wlr_output_layout *layout;
	struct wl_list outputs;
	struct wl_list views; /* toplevels */
	struct wl_list qubes;
	struct wl_list keyboards;
	struct wlr_xdg_shell *xdg_shell;
	struct wlr_seat *seat;
	struct wlr_cursor *cursor;
	struct wlr_xcursor_manager *xcursor;
	struct qc_font *font;
	bool borders;
	unsigned next_view_id;
	unsigned place_n;

	struct qc_view *focused;
	struct qc_view *grab;
	double grab_dx, grab_dy;

	/* host clients' own selection (they share one, as on any desktop) */
	struct qc_selection host_sel;
	/* the global clipboard (Ctrl+Shift+C / Ctrl+Shift+V) */
	struct qc_global_clip clip;
	struct qc_copy_read *copy_read; /* Ctrl+Shift+C in progress */
	struct wlr_scene_node *notice;
	struct wl_event_source *notice_timer;

	struct qc_prompt *prompt;

	int ctl_fd;
	struct wl_event_source *ctl_src;
	struct wl_list ctl_conns;

	struct qc_compat_deco_guard *deco_guard;

	struct wlr_input_device *debug_kbd;
	struct qc_stats stats;
	/* BORDERS ab (benchmark): frames alternate borders off/on; each
	 * frame's time also goes to stats_ab[borders drawn] */
	bool bench_ab;
	struct qc_stats stats_ab[2];

	struct wl_listener new_output, new_input, new_xdg_surface, new_decoration,
		cursor_motion, cursor_motion_abs, cursor_button, cursor_axis,
		cursor_frame, request_cursor, request_set_selection;
};

/* server.c */
void qc_focus_view(struct qc_server *server, struct qc_view *view);
void qc_get_output_box(struct qc_server *server, struct wlr_box *ret_box);
int qc_inject_keys(struct qc_server *server, const char *spec);

/* view.c */
void qc_view_handle_new_xdg_surface(struct wl_listener *listener, void *data);
void qc_view_update(struct qc_view *view);
void qc_view_set_position(struct qc_view *view, int x, int y);
struct qc_view *qc_view_by_id(struct qc_server *server, unsigned id);
struct qc_view *qc_view_at(struct qc_server *server, double lx, double ly,
			   struct wlr_surface **ret_surface, double *ret_sx, double *ret_sy);
void qc_views_update_all(struct qc_server *server);
void qc_view_list(struct qc_server *server, FILE *out, unsigned *ret_count);
void qc_views_set_borders(struct qc_server *server, bool on);

/* qube.c */
struct qc_qube *qc_client_qube(struct wl_client *client);
struct qc_qube *qc_qube_by_name(struct qc_server *server, const char *name);
int qc_control_init(struct qc_server *server);
void qc_control_finish(struct qc_server *server);
void qc_qubes_finish(struct qc_server *server);
bool qc_global_filter(const struct wl_client *client, const struct wl_global *global, void *data);

/* clipboard.c */
void qc_clipboard_init(struct qc_server *server);
void qc_clipboard_handle_request_set_selection(struct wl_listener *listener, void *data);
void qc_clipboard_focus_changed(struct qc_server *server);
int qc_clipboard_copy(struct qc_server *server);
int qc_clipboard_paste(struct qc_server *server);
void qc_selection_clear(struct qc_selection *sel);
void qc_notice(struct qc_server *server, const char *text);

/* prompt.c */
int qc_prompt_init(struct qc_server *server);
void qc_prompt_finish(struct qc_server *server);
bool qc_prompt_handle_key(struct qc_server *server, uint32_t keysym);
bool qc_prompt_active(struct qc_server *server);
void qc_prompt_list(struct qc_server *server, FILE *out, unsigned *ret_count);

/* drawing helpers (view.c) */
struct wlr_scene_node *qc_text_node(struct qc_server *server, struct wlr_scene_node *parent,
				    const char *text, int w, int h, uint32_t fg, uint32_t bg);

#endif
