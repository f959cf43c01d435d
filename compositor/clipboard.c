/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Clipboard, Qubes' model (docs/compositor.md, "Clipboard"):
 *  - each qube has its own selection, and the host clients one; the
 *    seat's selection (what a focused client is offered) is a proxy the
 *    compositor makes for the focused window's owner, so no client ever
 *    sees another qube's offer;
 *  - Ctrl+Shift+C reads the focused qube's selection (text, capped) into
 *    the global clipboard;
 *  - Ctrl+Shift+V gives it to the focused qube when the policy allows
 *    qube.ClipboardPaste from the source qube to it, and empties it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "qpolicy.h"

#define QC_COPY_TIMEOUT_MS 5000
#define QC_NOTICE_MS 4000

/* ---- the seat selection proxy ---- */

struct qc_proxy_source {
	struct wlr_data_source base;
	struct qc_server *server;
	struct qc_selection *sel; /* NULL once that selection changed or went */
};

struct text_writer {
	struct wl_event_source *src;
	int fd;
	uint8_t *data;
	size_t len, off;
};

static int writer_handle(int fd, uint32_t mask, void *data)
{
	struct text_writer *w = data;
	while (w->off < w->len) {
		ssize_t n = write(fd, w->data + w->off, w->len - w->off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			break;
		w->off += (size_t)n;
	}
	wl_event_source_remove(w->src);
	close(w->fd);
	free(w->data);
	free(w);
	return 0;
}

static void send_text(struct qc_server *server, const uint8_t *text, size_t len, int fd)
{
	struct text_writer *w = calloc(1, sizeof(*w));
	if (!w || fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || !(w->data = malloc(len ? len : 1))) {
		free(w);
		close(fd);
		return;
	}
	memcpy(w->data, text, len);
	w->len = len;
	w->fd = fd;
	w->src = wl_event_loop_add_fd(server->loop, fd, WL_EVENT_WRITABLE, writer_handle, w);
	if (!w->src) {
		close(fd);
		free(w->data);
		free(w);
	}
}

static void proxy_send(struct wlr_data_source *base, const char *mime, int32_t fd)
{
	struct qc_proxy_source *p = wl_container_of(base, p, base);
	struct qc_selection *sel = p->sel;
	if (!sel) {
		close(fd);
	} else if (sel->client_source) {
		wlr_data_source_send(sel->client_source, mime, fd);
	} else if (sel->text) {
		send_text(p->server, sel->text, sel->text_len, fd);
	} else {
		close(fd);
	}
}

static void proxy_destroy(struct wlr_data_source *base)
{
	struct qc_proxy_source *p = wl_container_of(base, p, base);
	if (p->sel && p->sel->proxy == p)
		p->sel->proxy = NULL;
	free(p);
}

static const struct wlr_data_source_impl proxy_impl = {
	.send = proxy_send,
	.destroy = proxy_destroy,
};

static bool add_mime(struct wlr_data_source *src, const char *mime)
{
	char **slot = wl_array_add(&src->mime_types, sizeof(char *));
	if (!slot)
		return false;
	*slot = strdup(mime);
	if (!*slot) {
		src->mime_types.size -= sizeof(char *);
		return false;
	}
	return true;
}

static struct qc_proxy_source *proxy_new(struct qc_server *server, struct qc_selection *sel)
{
	struct qc_proxy_source *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	wlr_data_source_init(&p->base, &proxy_impl);
	p->server = server;
	p->sel = sel;
	if (sel->client_source) {
		char **m;
		size_t n = 0;
		wl_array_for_each(m, &sel->client_source->mime_types) {
			if (n++ == QC_CLIP_OFFERS_MAX)
				break;
			if (qc_clip_mime_is_valid(*m))
				add_mime(&p->base, *m);
		}
	} else {
		add_mime(&p->base, QC_CLIP_MIME_TEXT);
		add_mime(&p->base, "text/plain");
		add_mime(&p->base, "UTF8_STRING");
	}
	sel->proxy = p;
	return p;
}

static bool selection_is_empty(const struct qc_selection *sel)
{
	return !sel->client_source && !sel->text;
}

static struct qc_selection *focused_selection(struct qc_server *server)
{
	struct qc_view *v = server->focused;
	if (!v)
		return NULL;
	return v->qube ? &v->qube->sel : &server->host_sel;
}

void qc_clipboard_focus_changed(struct qc_server *server)
{
	struct qc_selection *sel = focused_selection(server);
	uint32_t serial = wl_display_next_serial(server->display);
	if (!sel || selection_is_empty(sel)) {
		wlr_seat_set_selection(server->seat, NULL, serial);
		return;
	}
	struct qc_proxy_source *p = proxy_new(server, sel);
	if (!p) {
		wlr_seat_set_selection(server->seat, NULL, serial);
		return;
	}
	wlr_seat_set_selection(server->seat, &p->base, serial);
}

/* ---- per-owner selections ---- */

static void detach_proxy(struct qc_selection *sel)
{
	if (sel->proxy)
		sel->proxy->sel = NULL;
	sel->proxy = NULL;
}

void qc_selection_clear(struct qc_selection *sel)
{
	detach_proxy(sel);
	if (sel->client_source) {
		struct wlr_data_source *old = sel->client_source;
		wl_list_remove(&sel->client_source_destroy.link);
		sel->client_source = NULL;
		wlr_data_source_destroy(old); /* the owner gets 'cancelled' */
	}
	free(sel->text);
	sel->text = NULL;
	sel->text_len = 0;
}

static void handle_client_source_destroy(struct wl_listener *l, void *data)
{
	struct qc_selection *sel = wl_container_of(l, sel, client_source_destroy);
	wl_list_remove(&sel->client_source_destroy.link);
	sel->client_source = NULL;
	detach_proxy(sel);
}

static void selection_set_source(struct qc_selection *sel, struct wlr_data_source *src)
{
	qc_selection_clear(sel);
	if (!src)
		return;
	sel->client_source = src;
	sel->client_source_destroy.notify = handle_client_source_destroy;
	wl_signal_add(&src->events.destroy, &sel->client_source_destroy);
}

void qc_clipboard_handle_request_set_selection(struct wl_listener *listener, void *data)
{
	struct qc_server *server = wl_container_of(listener, server, request_set_selection);
	struct wlr_seat_request_set_selection_event *ev = data;
	struct wl_client *owner;
	if (ev->source) {
		owner = qc_compat_data_source_client(server->seat, ev->source);
		if (!owner)
			return; /* not a client's source: ignore */
	} else {
		/* clearing: only the focused client, with one of its serials */
		struct wlr_seat_client *fc = server->seat->keyboard_state.focused_client;
		if (!fc || !wlr_seat_client_validate_event_serial(fc, ev->serial))
			return;
		owner = fc->client;
	}
	struct qc_qube *q = qc_client_qube(owner);
	struct qc_selection *sel = q ? &q->sel : &server->host_sel;
	selection_set_source(sel, ev->source);
	if (focused_selection(server) == sel)
		qc_clipboard_focus_changed(server);
}

/* ---- notices: a host-drawn line at the top of the output ---- */

static int notice_expire(void *data)
{
	struct qc_server *server = data;
	if (server->notice)
		wlr_scene_node_destroy(server->notice);
	server->notice = NULL;
	return 0;
}

void qc_notice(struct qc_server *server, const char *text)
{
	fprintf(stderr, "qube-compositor: notice: %s\n", text);
	if (server->notice)
		wlr_scene_node_destroy(server->notice);
	server->notice = NULL;
	struct wlr_box ob;
	qc_get_output_box(server, &ob);
	int w = ob.width / 2, h = 24;
	server->notice = qc_text_node(server, server->layer_overlay, text, w, h, 0x000000, 0xffffff);
	if (server->notice)
		wlr_scene_node_set_position(server->notice, ob.x + ob.width - w - 8, ob.y + 8);
	if (!server->notice_timer)
		server->notice_timer = wl_event_loop_add_timer(server->loop, notice_expire, server);
	if (server->notice_timer)
		wl_event_source_timer_update(server->notice_timer, QC_NOTICE_MS);
}

/* ---- Ctrl+Shift+C: read the focused qube's selection ---- */

struct qc_copy_read {
	struct qc_server *server;
	char qube[32];
	int fd;
	struct wl_event_source *src, *timer;
	struct qc_clip_reader r;
};

static void copy_read_free(struct qc_copy_read *cr)
{
	if (cr->server->copy_read == cr)
		cr->server->copy_read = NULL;
	wl_event_source_remove(cr->src);
	wl_event_source_remove(cr->timer);
	close(cr->fd);
	qc_clip_reader_finish(&cr->r);
	free(cr);
}

static int copy_read_timeout(void *data)
{
	struct qc_copy_read *cr = data;
	char msg[128];
	snprintf(msg, sizeof(msg), "Copy from [%s] failed: no answer within %d ms", cr->qube,
		 QC_COPY_TIMEOUT_MS);
	qc_notice(cr->server, msg);
	copy_read_free(cr);
	return 0;
}

static int copy_read_handle(int fd, uint32_t mask, void *data)
{
	struct qc_copy_read *cr = data;
	struct qc_server *server = cr->server;
	char msg[160];
	uint8_t buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "Copy from [%s] failed: %s", cr->qube, strerror(errno));
			break;
		}
		if (n == 0) {
			if (qc_clip_text_check(cr->r.data, cr->r.len) < 0) {
				snprintf(msg, sizeof(msg), "Copy from [%s] refused: not UTF-8 text", cr->qube);
				break;
			}
			uint8_t *d = cr->r.data;
			size_t len = cr->r.len;
			if (!d && !(d = malloc(1))) {
				snprintf(msg, sizeof(msg), "Copy from [%s] failed: out of memory", cr->qube);
				break;
			}
			if (qc_global_clip_set(&server->clip, cr->qube, d, len) < 0) {
				if (d != cr->r.data)
					free(d);
				snprintf(msg, sizeof(msg), "Copy from [%s] failed", cr->qube);
				break;
			}
			cr->r.data = NULL; /* now the global clipboard's */
			snprintf(msg, sizeof(msg), "Copied %zu bytes from [%s] to the global clipboard",
				 len, cr->qube);
			break;
		}
		if (qc_clip_reader_append(&cr->r, buf, (size_t)n) < 0) {
			snprintf(msg, sizeof(msg), "Copy from [%s] refused: over %zu bytes", cr->qube,
				 cr->r.cap);
			break;
		}
	}
	qc_notice(server, msg);
	copy_read_free(cr);
	return 0;
}

int qc_clipboard_copy(struct qc_server *server)
{
	struct qc_view *v = server->focused;
	if (!v || !v->qube) {
		qc_notice(server, "Ctrl+Shift+C: no qube window has the focus");
		return -ENOENT;
	}
	struct qc_qube *q = v->qube;
	struct qc_selection *sel = &q->sel;
	char msg[160];
	if (server->copy_read)
		copy_read_free(server->copy_read);
	if (sel->text) {
		uint8_t *d = malloc(sel->text_len ? sel->text_len : 1);
		if (!d)
			return -ENOMEM;
		memcpy(d, sel->text, sel->text_len);
		qc_global_clip_set(&server->clip, q->name, d, sel->text_len);
		snprintf(msg, sizeof(msg), "Copied %zu bytes from [%s] to the global clipboard",
			 sel->text_len, q->name);
		qc_notice(server, msg);
		return 0;
	}
	if (!sel->client_source) {
		snprintf(msg, sizeof(msg), "Copy: [%s] has nothing selected", q->name);
		qc_notice(server, msg);
		return -ENOENT;
	}
	const char *mimes[QC_CLIP_OFFERS_MAX];
	size_t n = 0, idx;
	char **m;
	wl_array_for_each(m, &sel->client_source->mime_types) {
		if (n == QC_CLIP_OFFERS_MAX)
			break;
		mimes[n++] = *m;
	}
	if (qc_clip_choose_mime(mimes, n, &idx) < 0) {
		snprintf(msg, sizeof(msg), "Copy from [%s] refused: no text offered", q->name);
		qc_notice(server, msg);
		return -ENOENT;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	struct qc_copy_read *cr = calloc(1, sizeof(*cr));
	if (!cr) {
		close(p[0]);
		close(p[1]);
		return -ENOMEM;
	}
	cr->server = server;
	snprintf(cr->qube, sizeof(cr->qube), "%s", q->name);
	cr->fd = p[0];
	qc_clip_reader_init(&cr->r, server->opt.clip_cap);
	cr->src = wl_event_loop_add_fd(server->loop, p[0], WL_EVENT_READABLE, copy_read_handle, cr);
	cr->timer = wl_event_loop_add_timer(server->loop, copy_read_timeout, cr);
	if (!cr->src || !cr->timer) {
		if (cr->src)
			wl_event_source_remove(cr->src);
		if (cr->timer)
			wl_event_source_remove(cr->timer);
		close(p[0]);
		close(p[1]);
		free(cr);
		return -ENOMEM;
	}
	wl_event_source_timer_update(cr->timer, QC_COPY_TIMEOUT_MS);
	server->copy_read = cr;
	/* the write end goes to the qube's client (and is closed here) */
	wlr_data_source_send(sel->client_source, mimes[idx], p[1]);
	return 0;
}

/* ---- Ctrl+Shift+V: paste into the focused qube, if the policy allows ---- */

static int paste_allowed(struct qc_server *server, const char *source, const char *target,
			 char *why, size_t why_size)
{
	if (!server->opt.system_info) {
		snprintf(why, why_size, "no --system-info given");
		return 0;
	}
	struct qpol_policy *pol = NULL;
	struct qpol_system *sys = NULL;
	char *err = NULL;
	int r = qpol_policy_load_dir(server->opt.policy_dir, &pol);
	if (r < 0) {
		snprintf(why, why_size, "policy %s: %s", server->opt.policy_dir, strerror(-r));
		return 0;
	}
	r = qpol_system_load_file(server->opt.system_info, &sys, &err);
	if (r < 0) {
		snprintf(why, why_size, "system info: %s", err ? err : strerror(-r));
		free(err);
		qpol_policy_free(pol);
		return 0;
	}
	struct qpol_request req = {
		.service = "qube.ClipboardPaste",
		.argument = "",
		.source = source,
		.target = target,
	};
	struct qpol_decision d;
	int allowed = 0;
	if (qpol_evaluate(pol, sys, &req, &d) == 0) {
		if (d.result == QPOL_RESULT_ALLOW && d.target && strcmp(d.target, target) == 0) {
			allowed = 1;
			snprintf(why, why_size, "allowed");
		} else if (d.result == QPOL_RESULT_ASK) {
			snprintf(why, why_size, "policy says ask, which the paste does not support: denied");
		} else if (d.result == QPOL_RESULT_ALLOW) {
			snprintf(why, why_size, "policy redirects to %s: denied", d.target ? d.target : "?");
		} else if (d.rule_file) {
			snprintf(why, why_size, "%s (%s:%u)", d.reason, d.rule_file, d.rule_line);
		} else {
			snprintf(why, why_size, "%s", d.reason);
		}
		qpol_decision_finish(&d);
	} else {
		snprintf(why, why_size, "out of memory");
	}
	qpol_system_free(sys);
	qpol_policy_free(pol);
	return allowed;
}

int qc_clipboard_paste(struct qc_server *server)
{
	struct qc_view *v = server->focused;
	char msg[512], why[320];
	if (!v || !v->qube) {
		qc_notice(server, "Ctrl+Shift+V: no qube window has the focus");
		return -ENOENT;
	}
	if (qc_global_clip_is_empty(&server->clip)) {
		qc_notice(server, "Paste: the global clipboard is empty");
		return -ENOENT;
	}
	struct qc_qube *q = v->qube;
	if (!paste_allowed(server, server->clip.source, q->name, why, sizeof(why))) {
		snprintf(msg, sizeof(msg), "Paste from [%s] into [%s] refused: %s",
			 server->clip.source, q->name, why);
		qc_notice(server, msg);
		return -EPERM;
	}
	uint8_t *data;
	size_t len;
	char src[32];
	if (qc_global_clip_take(&server->clip, &data, &len, src) < 0)
		return -ENOENT;
	qc_selection_clear(&q->sel);
	q->sel.text = data;
	q->sel.text_len = len;
	snprintf(msg, sizeof(msg), "Pasted %zu bytes from [%s] into [%s]; the global clipboard is empty",
		 len, src, q->name);
	qc_notice(server, msg);
	qc_clipboard_focus_changed(server);
	return 0;
}

void qc_clipboard_init(struct qc_server *server)
{
	server->request_set_selection.notify = qc_clipboard_handle_request_set_selection;
	wl_signal_add(&server->seat->events.request_set_selection, &server->request_set_selection);
}
