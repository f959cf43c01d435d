/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The graphical ask prompt: a client of the broker's ask interface
 * (docs/broker.md, "The ask interface"), drawn by the compositor above
 * every window, framed as the host.  One question is shown at a time;
 * Up/Down (or Tab) choose among the offered targets, Enter allows,
 * Escape denies, no answer within --ask-timeout denies, and CANCEL <id>
 * from the broker withdraws a question.  While a question is shown no
 * key reaches any client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xkbcommon/xkbcommon.h>

#include "server.h"

#define ASK_LINE_MAX 1024
#define ASK_TARGETS_MAX 64
#define ASK_RECONNECT_MS 1000
#define PROMPT_W 560
#define PROMPT_LINE_H 22
#define PROMPT_FRAME 4
#define PROMPT_FRAME_RGB 0xffffff /* the host's frame: white, no qube label */

struct question {
	struct wl_list link;
	struct qc_prompt *prompt;
	unsigned long id;
	char *source, *service, *argument, *requested, *deflt;
	char *targets[ASK_TARGETS_MAX];
	size_t n_targets, selected;
	struct wl_event_source *timer;
};

struct qc_prompt {
	struct qc_server *server;
	int fd;
	struct wl_event_source *src, *reconnect;
	char in[ASK_LINE_MAX + 1];
	size_t in_len;
	struct wl_list questions; /* oldest first; the first one is shown */
	struct wlr_scene_node *node;
};

static void redraw(struct qc_prompt *p);

static void question_free(struct question *q)
{
	wl_list_remove(&q->link);
	if (q->timer)
		wl_event_source_remove(q->timer);
	free(q->source);
	free(q->service);
	free(q->argument);
	free(q->requested);
	free(q->deflt);
	for (size_t i = 0; i < q->n_targets; i++)
		free(q->targets[i]);
	free(q);
}

static void send_line(struct qc_prompt *p, const char *line)
{
	if (p->fd < 0)
		return;
	size_t n = strlen(line), off = 0;
	/* short lines on a unix socket: a blocking write of one line at most
	 * waits for the broker to read */
	while (off < n) {
		ssize_t w = send(p->fd, line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			usleep(1000);
			continue;
		}
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void answer(struct question *q, bool allow)
{
	struct qc_prompt *p = q->prompt;
	char line[ASK_LINE_MAX + 32];
	if (allow && q->n_targets > 0)
		snprintf(line, sizeof(line), "ALLOW %lu %s\n", q->id, q->targets[q->selected]);
	else
		snprintf(line, sizeof(line), "DENY %lu\n", q->id);
	fprintf(stderr, "qube-compositor: ask %lu (%s %s): %s", q->id, q->source, q->service, line);
	send_line(p, line);
	question_free(q);
	redraw(p);
}

static int question_timeout(void *data)
{
	struct question *q = data;
	fprintf(stderr, "qube-compositor: ask %lu not answered in time: denied\n", q->id);
	answer(q, false);
	return 0;
}

static bool field_ok(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '+' || c == '@' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

static bool parse_id(const char *s, unsigned long *ret)
{
	size_t n = strlen(s);
	if (n == 0 || n > 10)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*ret = v;
	return true;
}

static struct question *find_question(struct qc_prompt *p, unsigned long id)
{
	struct question *q;
	wl_list_for_each(q, &p->questions, link)
		if (q->id == id)
			return q;
	return NULL;
}

static void handle_line(struct qc_prompt *p, char *line)
{
	char *f[6 + ASK_TARGETS_MAX];
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (n == sizeof(f) / sizeof(f[0])) {
			fprintf(stderr, "qube-compositor: ask line with too many fields: ignored\n");
			return;
		}
		f[n++] = t;
	}
	unsigned long id;
	if (n == 2 && strcmp(f[0], "CANCEL") == 0 && parse_id(f[1], &id)) {
		struct question *q = find_question(p, id);
		if (q) {
			fprintf(stderr, "qube-compositor: ask %lu withdrawn by the broker\n", id);
			question_free(q);
			redraw(p);
		}
		return;
	}
	if (n < 6 || strcmp(f[0], "ASK") != 0 || !parse_id(f[1], &id)) {
		fprintf(stderr, "qube-compositor: malformed ask line: ignored\n");
		return;
	}
	for (size_t i = 2; i < n; i++)
		if (!field_ok(f[i])) {
			fprintf(stderr, "qube-compositor: ask line with a bad field: ignored\n");
			return;
		}
	if (find_question(p, id)) {
		fprintf(stderr, "qube-compositor: ask %lu given twice: ignored\n", id);
		return;
	}
	struct question *q = calloc(1, sizeof(*q));
	if (!q)
		return;
	wl_list_init(&q->link);
	q->prompt = p;
	q->id = id;
	q->source = strdup(f[2]);
	q->service = strdup(f[3]);
	q->argument = strdup(strcmp(f[4], "-") == 0 ? "" : f[4]);
	q->requested = strdup(f[5]);
	q->deflt = strdup(n > 6 && strcmp(f[6], "-") != 0 ? f[6] : "");
	for (size_t i = 7; i < n; i++) {
		q->targets[q->n_targets] = strdup(f[i]);
		if (!q->targets[q->n_targets])
			break;
		if (strcmp(f[i], q->deflt) == 0)
			q->selected = q->n_targets;
		q->n_targets++;
	}
	if (!q->source || !q->service || !q->argument || !q->requested || !q->deflt) {
		question_free(q);
		return;
	}
	q->timer = wl_event_loop_add_timer(p->server->loop, question_timeout, q);
	if (q->timer)
		wl_event_source_timer_update(q->timer, (int)p->server->opt.ask_timeout_ms);
	wl_list_insert(p->questions.prev, &q->link);
	fprintf(stderr, "qube-compositor: ask %lu: %s -> %s %s%s%s (%zu targets)\n", id, q->source,
		q->requested, q->service, q->argument[0] ? "+" : "", q->argument, q->n_targets);
	redraw(p);
}

static void fill(uint32_t *px, int w, int x0, int y0, int x1, int y1, uint32_t rgb)
{
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			px[y * w + x] = 0xff000000u | rgb;
}

static void redraw(struct qc_prompt *p)
{
	struct qc_server *server = p->server;
	if (p->node)
		wlr_scene_node_destroy(p->node);
	p->node = NULL;
	if (wl_list_empty(&p->questions))
		return;
	struct question *q = wl_container_of(p->questions.next, q, link);
	int lines = 4 + (int)(q->n_targets ? q->n_targets : 1);
	int w = PROMPT_W, h = PROMPT_LINE_H * lines + 2 * PROMPT_FRAME + 8;
	uint32_t *px = malloc((size_t)w * (size_t)h * 4);
	if (!px)
		return;
	fill(px, w, 0, 0, w, h, PROMPT_FRAME_RGB);
	fill(px, w, PROMPT_FRAME, PROMPT_LINE_H + PROMPT_FRAME, w - PROMPT_FRAME, h - PROMPT_FRAME,
	     0x202020);
	char line[600];
	int y = PROMPT_FRAME + 16, x = PROMPT_FRAME + 6, mx = w - PROMPT_FRAME;
	if (server->font) {
		qc_font_draw(server->font, "[host] qube RPC request", 0x000000, px, w, h, x, y, mx);
		y += PROMPT_LINE_H;
		snprintf(line, sizeof(line), "%s asks for %s%s%s", q->source, q->service,
			 q->argument[0] ? "+" : "", q->argument);
		qc_font_draw(server->font, line, 0xffffff, px, w, h, x, y, mx);
		y += PROMPT_LINE_H;
		snprintf(line, sizeof(line), "requested target: %s", q->requested);
		qc_font_draw(server->font, line, 0xffffff, px, w, h, x, y, mx);
		y += PROMPT_LINE_H;
		for (size_t i = 0; i < q->n_targets; i++) {
			bool sel = i == q->selected;
			if (sel)
				fill(px, w, x - 2, y - 15, mx - 4, y + 5, 0x3465a4);
			snprintf(line, sizeof(line), "%s %s", sel ? ">" : " ", q->targets[i]);
			qc_font_draw(server->font, line, 0xffffff, px, w, h, x + 8, y, mx);
			y += PROMPT_LINE_H;
		}
		if (!q->n_targets) {
			qc_font_draw(server->font, "(no target may be chosen)", 0xffffff, px, w, h, x, y, mx);
			y += PROMPT_LINE_H;
		}
		qc_font_draw(server->font, "Up/Down choose, Enter allows, Esc denies", 0xc0c0c0,
			     px, w, h, x, y, mx);
	}
	p->node = qc_compat_image_node_new(server->layer_overlay, px, w, h);
	free(px);
	if (p->node) {
		struct wlr_box ob;
		qc_get_output_box(server, &ob);
		wlr_scene_node_set_position(p->node, ob.x + (ob.width - w) / 2,
					    ob.y + (ob.height - h) / 3);
		wlr_scene_node_raise_to_top(p->node);
	}
}

bool qc_prompt_active(struct qc_server *server)
{
	return server->prompt && !wl_list_empty(&server->prompt->questions);
}

bool qc_prompt_handle_key(struct qc_server *server, uint32_t sym)
{
	struct qc_prompt *p = server->prompt;
	if (!qc_prompt_active(server))
		return false;
	struct question *q = wl_container_of(p->questions.next, q, link);
	switch (sym) {
	case XKB_KEY_Down:
	case XKB_KEY_Tab:
		if (q->n_targets)
			q->selected = (q->selected + 1) % q->n_targets;
		redraw(p);
		return true;
	case XKB_KEY_Up:
		if (q->n_targets)
			q->selected = (q->selected + q->n_targets - 1) % q->n_targets;
		redraw(p);
		return true;
	case XKB_KEY_Return:
	case XKB_KEY_KP_Enter:
		answer(q, true);
		return true;
	case XKB_KEY_Escape:
		answer(q, false);
		return true;
	default:
		return true; /* swallowed */
	}
}

void qc_prompt_list(struct qc_server *server, FILE *out, unsigned *ret_count)
{
	unsigned n = 0;
	if (server->prompt) {
		struct question *q;
		wl_list_for_each(q, &server->prompt->questions, link) {
			fprintf(out, "PROMPT %lu %s %s %s %s %s selected=%s targets=", q->id, q->source,
				q->service, q->argument[0] ? q->argument : "-", q->requested,
				q->deflt[0] ? q->deflt : "-",
				q->n_targets ? q->targets[q->selected] : "-");
			for (size_t i = 0; i < q->n_targets; i++)
				fprintf(out, "%s%s", i ? "," : "", q->targets[i]);
			fprintf(out, "%s\n", n == 0 ? " shown" : "");
			n++;
		}
	}
	*ret_count = n;
}

static void disconnect(struct qc_prompt *p)
{
	struct question *q, *tmp;
	wl_list_for_each_safe(q, tmp, &p->questions, link)
		question_free(q); /* the broker denies them */
	redraw(p);
	if (p->src)
		wl_event_source_remove(p->src);
	p->src = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->in_len = 0;
	if (p->reconnect)
		wl_event_source_timer_update(p->reconnect, ASK_RECONNECT_MS);
}

static int handle_readable(int fd, uint32_t mask, void *data)
{
	struct qc_prompt *p = data;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		fprintf(stderr, "qube-compositor: the broker's ask socket closed\n");
		disconnect(p);
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			p->in[p->in_len] = '\0';
			handle_line(p, p->in);
			p->in_len = 0;
		} else if (p->in_len == ASK_LINE_MAX) {
			fprintf(stderr, "qube-compositor: ask line over %d bytes: disconnecting\n",
				ASK_LINE_MAX);
			disconnect(p);
			return 0;
		} else {
			p->in[p->in_len++] = buf[i];
		}
	}
	return 0;
}

static int try_connect(void *data)
{
	struct qc_prompt *p = data;
	if (p->fd >= 0)
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = p->server->opt.ask_socket;
	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		wl_event_source_timer_update(p->reconnect, ASK_RECONNECT_MS);
		return 0;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	p->fd = fd;
	p->src = wl_event_loop_add_fd(p->server->loop, fd, WL_EVENT_READABLE, handle_readable, p);
	fprintf(stderr, "qube-compositor: connected to the ask socket %s\n", path);
	return 0;
}

int qc_prompt_init(struct qc_server *server)
{
	struct qc_prompt *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->server = server;
	p->fd = -1;
	wl_list_init(&p->questions);
	p->reconnect = wl_event_loop_add_timer(server->loop, try_connect, p);
	if (!p->reconnect) {
		free(p);
		return -ENOMEM;
	}
	server->prompt = p;
	try_connect(p);
	return 0;
}

void qc_prompt_finish(struct qc_server *server)
{
	struct qc_prompt *p = server->prompt;
	if (!p)
		return;
	struct wl_event_source *rc = p->reconnect;
	p->reconnect = NULL;
	disconnect(p);
	wl_event_source_remove(rc);
	free(p);
	server->prompt = NULL;
}
