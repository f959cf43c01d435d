/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Every wlroots call of qube-compositor whose name, arguments or struct
 * layout differ between wlroots 0.15 (Debian 12) and 0.17/0.18 (Fedora)
 * lives behind this header; wlr-compat.c is the only file to change for
 * the port (docs/compositor.md, "Porting to wlroots 0.17").
 */
#ifndef QC_WLR_COMPAT_H
#define QC_WLR_COMPAT_H

/* WLR_USE_UNSTABLE comes from the build (compositor/meson.build) */
#include <stdbool.h>
#include <stdint.h>
#include <wayland-server-core.h>
#include <wlr/backend.h>
#include <wlr/render/allocator.h>
#include <wlr/render/wlr_renderer.h>
#include <wlr/types/wlr_buffer.h>
#include <wlr/types/wlr_compositor.h>
#include <wlr/types/wlr_cursor.h>
#include <wlr/types/wlr_data_device.h>
#include <wlr/types/wlr_input_device.h>
#include <wlr/types/wlr_keyboard.h>
#include <wlr/types/wlr_output.h>
#include <wlr/types/wlr_output_layout.h>
#include <wlr/types/wlr_pointer.h>
#include <wlr/types/wlr_scene.h>
#include <wlr/types/wlr_seat.h>
#include <wlr/types/wlr_xdg_shell.h>
#include <wlr/util/box.h>

struct qc_compat_backend {
	struct wlr_backend *backend;
	struct wlr_backend *headless; /* the headless backend, when running on it */
	struct wlr_renderer *renderer;
	struct wlr_allocator *allocator;
	struct wlr_compositor *compositor;
};

/* Event payloads (renamed in 0.16: wlr_keyboard_key_event, wlr_pointer_*_event) */
typedef struct wlr_event_keyboard_key qc_key_event;
typedef struct wlr_event_pointer_motion qc_motion_event;
typedef struct wlr_event_pointer_motion_absolute qc_motion_abs_event;
typedef struct wlr_event_pointer_button qc_button_event;
typedef struct wlr_event_pointer_axis qc_axis_event;

int qc_compat_backend_init(struct qc_compat_backend *be, struct wl_display *display);

/* Scene graph: 0.15 parents are wlr_scene_node, 0.16+ wlr_scene_tree */
struct wlr_scene_node *qc_compat_scene_root(struct wlr_scene *scene);
void qc_compat_scene_destroy(struct wlr_scene *scene);
struct wlr_scene_node *qc_compat_tree_new(struct wlr_scene_node *parent);
struct wlr_scene_node *qc_compat_surface_tree_new(struct wlr_scene_node *parent,
						  struct wlr_surface *surface);
/* An opaque XRGB8888 image (stride = 4 * w) shown as a scene node;
 * PIXELS is copied. */
struct wlr_scene_node *qc_compat_image_node_new(struct wlr_scene_node *parent,
						const uint32_t *pixels, int w, int h);
/* The surface under layout point (LX, LY), or NULL; *ret_node the scene node. */
struct wlr_surface *qc_compat_surface_at(struct wlr_scene_node *root, double lx, double ly,
					 double *ret_sx, double *ret_sy,
					 struct wlr_scene_node **ret_node);

/* Outputs */
/* The box around all outputs (0.16+: wlr_output_layout_get_box fills a box) */
void qc_compat_layout_box(struct wlr_output_layout *layout, struct wlr_box *ret_box);
/* Enables OUTPUT in its preferred mode, or a headless output at
 * REFRESH_HZ when that is not 0. */
bool qc_compat_output_init(struct qc_compat_backend *be, struct wlr_output *output,
			   unsigned refresh_hz);
/* Renders SCENE on OUTPUT (FULL_DAMAGE: repaint everything, for the
 * benchmark); returns the render+commit wall time in ns and sets
 * *RET_CPU_NS to the CPU time this thread spent on it, or returns 0 if
 * nothing was committed. */
uint64_t qc_compat_output_frame(struct wlr_scene *scene, struct wlr_output *output,
				bool full_damage, uint64_t *ret_cpu_ns);

/* Input */
struct wlr_keyboard *qc_compat_keyboard(struct wlr_input_device *device);
bool qc_compat_device_is_keyboard(struct wlr_input_device *device);
bool qc_compat_device_is_pointer(struct wlr_input_device *device);
struct wl_signal *qc_compat_keyboard_key_signal(struct wlr_input_device *device);
struct wl_signal *qc_compat_keyboard_modifiers_signal(struct wlr_input_device *device);
/* Adds a keyboard to the headless backend (test input); NULL elsewhere. */
struct wlr_input_device *qc_compat_add_test_keyboard(struct qc_compat_backend *be);
void qc_compat_keyboard_inject(struct wlr_input_device *device, uint32_t keycode, bool pressed);

/* xdg-shell: 0.15 functions take the wlr_xdg_surface, 0.16+ the toplevel;
 * map/unmap moved to wlr_surface in 0.17; new_surface became
 * new_toplevel/new_popup in 0.18. */
bool qc_compat_xdg_is_toplevel(struct wlr_xdg_surface *xdg);
bool qc_compat_xdg_is_popup(struct wlr_xdg_surface *xdg);
struct wl_signal *qc_compat_xdg_map_signal(struct wlr_xdg_surface *xdg);
struct wl_signal *qc_compat_xdg_unmap_signal(struct wlr_xdg_surface *xdg);
struct wlr_xdg_surface *qc_compat_popup_parent_xdg(struct wlr_xdg_surface *popup);
const char *qc_compat_toplevel_title(struct wlr_xdg_surface *xdg);
void qc_compat_toplevel_set_size(struct wlr_xdg_surface *xdg, int w, int h);
void qc_compat_toplevel_set_activated(struct wlr_xdg_surface *xdg, bool on);
void qc_compat_toplevel_set_fullscreen(struct wlr_xdg_surface *xdg, bool on);
void qc_compat_toplevel_set_maximized(struct wlr_xdg_surface *xdg, bool on);
bool qc_compat_toplevel_requested_fullscreen(struct wlr_xdg_surface *xdg);
bool qc_compat_toplevel_requested_maximized(struct wlr_xdg_surface *xdg);
void qc_compat_toplevel_close(struct wlr_xdg_surface *xdg);
/* Constrains a popup to BOX, in the coordinates of its toplevel's
 * window geometry. */
void qc_compat_popup_unconstrain(struct wlr_xdg_surface *popup, const struct wlr_box *box);
void qc_compat_popup_dismiss(struct wlr_xdg_surface *popup);

/* xdg-decoration lifetime guard (0.15 only; 0.17 ties a decoration to its
 * toplevel's destroy signal whether or not it was ever committed).  In
 * 0.15 a decoration made for a toplevel that is destroyed before its
 * first commit stays listening on the freed xdg_surface and wl_surface,
 * and the client's next request on it, or its disconnect, writes into
 * freed memory: any client can do it.  The guard watches every client's
 * wl_surface, xdg_surface and xdg_wm_base resources and, just before one
 * goes, destroys the decorations that would be left dangling (the client
 * then gets "invalid object" if it uses that decoration again).
 * ON_DROP (may be NULL) is told the client of each decoration dropped. */
struct wlr_xdg_decoration_manager_v1;
struct qc_compat_deco_guard;
struct qc_compat_deco_guard *qc_compat_deco_guard_new(
	struct wl_display *display, struct wlr_xdg_decoration_manager_v1 *manager,
	void (*on_drop)(struct wl_client *client, void *data), void *data);
void qc_compat_deco_guard_free(struct qc_compat_deco_guard *guard);

/* The client that owns a data source (scan of its wl_data_source
 * resources), or NULL for a compositor-made source. */
struct wl_client *qc_compat_data_source_client(struct wlr_seat *seat,
					       struct wlr_data_source *source);

#endif
