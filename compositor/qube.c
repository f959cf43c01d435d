/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-qube Wayland sockets, the global filter, and the control socket
 * (line protocol: docs/compositor.md, "Control socket").
 *
 * A qube's identity is the socket its client connected to: the compositor
 * accepts on each qube socket itself and tags the new wl_client with the
 * qube before the client's first request is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "qc-sanitize.h"
#include "qname.h"

#define QC_MAX_CLIENTS_PER_QUBE 128
#define QC_CTL_LINE_MAX 1024
#define QC_CTL_OUT_MAX (4u << 20)

/* Globals a qube client may see and bind; everything else (screencopy,
 * xdg-output, data-control, virtual input, layer-shell, ...) is never
 * offered, and binding it anyway is a protocol error for that client. */
static const char *const qube_globals[] = {
	"wl_compositor", "wl_subcompositor", "wl_shm", "wl_seat", "wl_output",
	"wl_data_device_manager", "xdg_wm_base", "zxdg_decoration_manager_v1",
	"wp_viewporter", "wp_presentation", "zwp_linux_dmabuf_v1",
};

static void client_handle_destroy(struct wl_listener *l, void *data)
{
	struct qc_client *c = wl_container_of(l, c, destroy);
	wl_list_remove(&c->link);
	free(c);
}

struct qc_qube *qc_client_qube(struct wl_client *client)
{
	struct wl_listener *l = wl_client_get_destroy_listener(client, client_handle_destroy);
	if (!l)
		return NULL;
	struct qc_client *c = wl_container_of(l, c, destroy);
	return c->qube;
}

bool qc_global_filter(const struct wl_client *client, const struct wl_global *global, void *data)
{
	struct qc_qube *q = qc_client_qube((struct wl_client *)client);
	if (!q)
		return true; /* host client: everything */
	const char *name = wl_global_get_interface(global)->name;
	for (size_t i = 0; i < sizeof(qube_globals) / sizeof(qube_globals[0]); i++)
		if (strcmp(name, qube_globals[i]) == 0)
			return true;
	return false;
}

struct qc_qube *qc_qube_by_name(struct qc_server *server, const char *name)
{
	struct qc_qube *q;
	wl_list_for_each(q, &server->qubes, link)
		if (strcmp(q->name, name) == 0)
			return q;
	return NULL;
}

static int qube_handle_accept(int fd, uint32_t mask, void *data)
{
	struct qc_qube *q = data;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				fprintf(stderr, "qube-compositor: accept on %s: %s\n", q->path, strerror(errno));
			return 0;
		}
		if (wl_list_length(&q->clients) >= QC_MAX_CLIENTS_PER_QUBE) {
			fprintf(stderr, "qube-compositor: %s has %d clients already: connection refused\n",
				q->name, QC_MAX_CLIENTS_PER_QUBE);
			close(cfd);
			continue;
		}
		struct qc_client *c = calloc(1, sizeof(*c));
		if (!c) {
			close(cfd);
			continue;
		}
		struct wl_client *wc = wl_client_create(q->server->display, cfd);
		if (!wc) {
			close(cfd);
			free(c);
			continue;
		}
		c->client = wc;
		c->qube = q;
		c->destroy.notify = client_handle_destroy;
		wl_client_add_destroy_listener(wc, &c->destroy);
		wl_list_insert(&q->clients, &c->link);
	}
}

static int listen_unix(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* a stale socket of an earlier run */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static void qube_free(struct qc_qube *q)
{
	struct qc_client *c, *tmp;
	/* every client of the qube goes: its windows disappear */
	wl_list_for_each_safe(c, tmp, &q->clients, link)
		wl_client_destroy(c->client);
	qc_selection_clear(&q->sel);
	if (q->listen_src)
		wl_event_source_remove(q->listen_src);
	if (q->listen_fd >= 0) {
		close(q->listen_fd);
		unlink(q->path);
	}
	wl_list_remove(&q->link);
	free(q->path);
	free(q);
}

void qc_qubes_finish(struct qc_server *server)
{
	struct qc_qube *q, *tmp;
	wl_list_for_each_safe(q, tmp, &server->qubes, link)
		qube_free(q);
}

static int qube_add(struct qc_server *server, const char *name, const char *label,
		    const char *path, char **ret_err, struct qc_qube **ret_qube)
{
	uint32_t rgb;
	const char *lname;
	if (!qname_qube_is_valid(name) || strlen(name) > 31) {
		*ret_err = strdup("invalid qube name");
		return -EINVAL;
	}
	if (qc_label_parse(label, &rgb, &lname) < 0) {
		*ret_err = strdup("unknown label (red orange yellow green gray blue purple black)");
		return -EINVAL;
	}
	if (qc_qube_by_name(server, name)) {
		*ret_err = strdup("qube already added");
		return -EEXIST;
	}
	char *p;
	if (path) {
		if (path[0] != '/') {
			*ret_err = strdup("socket path must be absolute");
			return -EINVAL;
		}
		p = strdup(path);
	} else {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		if (!rt) {
			*ret_err = strdup("XDG_RUNTIME_DIR is not set and no path given");
			return -EINVAL;
		}
		if (asprintf(&p, "%s/qube-wayland-%s", rt, name) < 0)
			p = NULL;
	}
	if (!p)
		return -ENOMEM;
	struct qc_qube *q = calloc(1, sizeof(*q));
	if (!q) {
		free(p);
		return -ENOMEM;
	}
	q->server = server;
	strcpy(q->name, name);
	q->label = lname;
	q->rgb = rgb;
	q->path = p;
	q->listen_fd = -1;
	wl_list_init(&q->clients);
	wl_list_init(&q->link);
	int r = listen_unix(p, &q->listen_fd);
	if (r < 0) {
		if (asprintf(ret_err, "cannot listen on %s: %s", p, strerror(-r)) < 0)
			*ret_err = NULL;
		free(p);
		free(q);
		return r;
	}
	q->listen_src = wl_event_loop_add_fd(server->loop, q->listen_fd, WL_EVENT_READABLE,
					     qube_handle_accept, q);
	wl_list_insert(server->qubes.prev, &q->link);
	fprintf(stderr, "qube-compositor: qube %s (%s) on %s\n", name, lname, p);
	*ret_qube = q;
	return 0;
}

/* ---- control socket ---- */

struct ctl_conn {
	struct wl_list link;
	struct qc_server *server;
	int fd;
	struct wl_event_source *src;
	char in[QC_CTL_LINE_MAX + 1];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool closing;
};

static void conn_free(struct ctl_conn *c)
{
	wl_event_source_remove(c->src);
	close(c->fd);
	wl_list_remove(&c->link);
	free(c->out);
	free(c);
}

static void conn_queue(struct ctl_conn *c, const char *s, size_t n)
{
	if (c->out_len + n > QC_CTL_OUT_MAX) {
		c->closing = true;
		return;
	}
	char *no = realloc(c->out, c->out_len + n);
	if (!no) {
		c->closing = true;
		return;
	}
	memcpy(no + c->out_len, s, n);
	c->out = no;
	c->out_len += n;
}

static void replyf(struct ctl_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void replyf(struct ctl_conn *c, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		c->closing = true;
		return;
	}
	conn_queue(c, s, (size_t)n);
	free(s);
}

/* Multi-line replies: "OK <n>" then n lines built in a memstream. */
static void reply_lines(struct ctl_conn *c, void (*fill)(struct qc_server *, FILE *, unsigned *))
{
	char *buf = NULL;
	size_t len = 0;
	unsigned n = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		replyf(c, "ERROR out of memory\n");
		return;
	}
	fill(c->server, f, &n);
	fclose(f);
	replyf(c, "OK %u\n", n);
	conn_queue(c, buf, len);
	free(buf);
}

static void list_qubes(struct qc_server *server, FILE *f, unsigned *ret_n)
{
	unsigned n = 0;
	struct qc_qube *q;
	wl_list_for_each(q, &server->qubes, link) {
		fprintf(f, "QUBE %s %s %s clients=%d windows=%u\n", q->name, q->label, q->path,
			wl_list_length(&q->clients), q->n_windows);
		n++;
	}
	*ret_n = n;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return false;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*ret = v;
	return true;
}

static bool parse_int(const char *s, long *ret)
{
	char *end;
	errno = 0;
	if (!*s)
		return false;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < -100000 || v > 100000)
		return false;
	*ret = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void reply_stats(struct ctl_conn *c, const struct qc_stats *st)
{
	size_t cap = sizeof(st->samples_ns) / sizeof(st->samples_ns[0]);
	size_t n = st->n_samples < cap ? st->n_samples : cap;
	uint64_t *s = malloc((n ? n : 1) * sizeof(*s));
	uint64_t *cs = malloc((n ? n : 1) * sizeof(*cs));
	if (!s || !cs) {
		free(s);
		free(cs);
		replyf(c, "ERROR out of memory\n");
		return;
	}
	memcpy(s, st->samples_ns, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_u64);
	memcpy(cs, st->cpu_samples_ns, n * sizeof(*cs));
	qsort(cs, n, sizeof(*cs), cmp_u64);
	double mean = st->frames ? (double)st->sum_ns / (double)st->frames / 1000.0 : 0;
	double cpu_mean = st->frames ? (double)st->cpu_sum_ns / (double)st->frames / 1000.0 : 0;
	double p50 = n ? (double)s[n / 2] / 1000.0 : 0;
	double p99 = n ? (double)s[(n * 99) / 100] / 1000.0 : 0;
	double cpu_p50 = n ? (double)cs[n / 2] / 1000.0 : 0;
	replyf(c, "OK frames=%llu mean_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f "
	       "cpu_mean_us=%.1f cpu_p50_us=%.1f\n",
	       (unsigned long long)st->frames, mean, p50, p99, (double)st->max_ns / 1000.0,
	       cpu_mean, cpu_p50);
	free(cs);
	free(s);
}

static void handle_command(struct ctl_conn *c, char *line)
{
	struct qc_server *server = c->server;
	char *argv[8];
	int argc = 0;
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			replyf(c, "ERROR the line holds a control or non-ASCII byte\n");
			return;
		}
	char *save = NULL;
	for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (argc == 8) {
			replyf(c, "ERROR too many fields\n");
			return;
		}
		argv[argc++] = t;
	}
	if (argc == 0) {
		replyf(c, "ERROR empty line\n");
		return;
	}
	const char *cmd = argv[0];
	if (strcmp(cmd, "QUBE-ADD") == 0 && (argc == 3 || argc == 4)) {
		char *err = NULL;
		struct qc_qube *q;
		int r = qube_add(server, argv[1], argv[2], argc == 4 ? argv[3] : NULL, &err, &q);
		if (r < 0)
			replyf(c, "ERROR QUBE-ADD %s: %s\n", argv[1], err ? err : strerror(-r));
		else
			replyf(c, "OK %s\n", q->path);
		free(err);
	} else if (strcmp(cmd, "QUBE-REMOVE") == 0 && argc == 2) {
		struct qc_qube *q = qc_qube_by_name(server, argv[1]);
		if (!q) {
			replyf(c, "ERROR QUBE-REMOVE %s: no such qube\n", argv[1]);
			return;
		}
		qube_free(q);
		replyf(c, "OK\n");
	} else if (strcmp(cmd, "LIST") == 0 && argc == 1) {
		reply_lines(c, list_qubes);
	} else if (strcmp(cmd, "WINDOWS") == 0 && argc == 1) {
		qc_views_update_all(server);
		reply_lines(c, qc_view_list);
	} else if (strcmp(cmd, "PROMPTS") == 0 && argc == 1) {
		reply_lines(c, qc_prompt_list);
	} else if (strcmp(cmd, "CLIPBOARD") == 0 && argc == 1) {
		if (qc_global_clip_is_empty(&server->clip))
			replyf(c, "OK empty\n");
		else
			replyf(c, "OK from=%s bytes=%zu\n", server->clip.source, server->clip.len);
	} else if (strcmp(cmd, "FOCUS") == 0 && argc == 2) {
		unsigned long id;
		struct qc_view *v = parse_uint(argv[1], UINT32_MAX, &id) ? qc_view_by_id(server, (unsigned)id) : NULL;
		if (!v) {
			replyf(c, "ERROR FOCUS: no window %s\n", argv[1]);
			return;
		}
		qc_focus_view(server, v);
		replyf(c, "OK\n");
	} else if (strcmp(cmd, "MOVE") == 0 && argc == 4) {
		unsigned long id;
		long x, y;
		struct qc_view *v = parse_uint(argv[1], UINT32_MAX, &id) ? qc_view_by_id(server, (unsigned)id) : NULL;
		if (!v || !parse_int(argv[2], &x) || !parse_int(argv[3], &y)) {
			replyf(c, "ERROR MOVE: usage MOVE <window> <x> <y>\n");
			return;
		}
		qc_view_set_position(v, (int)x, (int)y);
		replyf(c, "OK %d %d\n", v->x, v->y);
	} else if (!server->opt.debug_control &&
		   (strcmp(cmd, "KEY") == 0 || strcmp(cmd, "KEY-TIMED") == 0 ||
		    strcmp(cmd, "BORDERS") == 0 || strcmp(cmd, "STATS") == 0 ||
		    strcmp(cmd, "STATS-RESET") == 0)) {
		replyf(c, "ERROR %s needs --debug-control\n", cmd);
	} else if ((strcmp(cmd, "KEY") == 0 || strcmp(cmd, "KEY-TIMED") == 0) && argc == 2) {
		/* KEY-TIMED: the reply carries CLOCK_MONOTONIC at the press (the
		 * latency benchmark compares it with the client's receipt) */
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		int r = qc_inject_keys(server, argv[1]);
		if (r < 0)
			replyf(c, "ERROR %s %s: %s\n", cmd, argv[1],
			       r == -ENODEV ? "no test keyboard" : "bad key");
		else if (strcmp(cmd, "KEY-TIMED") == 0)
			replyf(c, "OK t=%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
		else
			replyf(c, "OK\n");
	} else if (strcmp(cmd, "BORDERS") == 0 && argc == 2 &&
		   (strcmp(argv[1], "on") == 0 || strcmp(argv[1], "off") == 0 ||
		    strcmp(argv[1], "ab") == 0)) {
		server->bench_ab = strcmp(argv[1], "ab") == 0;
		qc_views_set_borders(server, strcmp(argv[1], "off") != 0);
		replyf(c, "OK\n");
	} else if (strcmp(cmd, "STATS") == 0 && argc == 1) {
		reply_stats(c, &server->stats);
	} else if (strcmp(cmd, "STATS") == 0 && argc == 2 &&
		   (strcmp(argv[1], "on") == 0 || strcmp(argv[1], "off") == 0)) {
		reply_stats(c, &server->stats_ab[strcmp(argv[1], "on") == 0 ? 1 : 0]);
	} else if (strcmp(cmd, "STATS-RESET") == 0 && argc == 1) {
		memset(&server->stats, 0, sizeof(server->stats));
		memset(server->stats_ab, 0, sizeof(server->stats_ab));
		replyf(c, "OK\n");
	} else {
		replyf(c, "ERROR unknown command or wrong arguments: %s\n", cmd);
	}
}

static void conn_update_mask(struct ctl_conn *c)
{
	wl_event_source_fd_update(c->src, WL_EVENT_READABLE |
				  (c->out_len > c->out_off ? WL_EVENT_WRITABLE : 0));
}

static int conn_flush(struct ctl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	}
	return 0;
}

static int conn_handle(int fd, uint32_t mask, void *data)
{
	struct ctl_conn *c = data;
	if (mask & WL_EVENT_READABLE) {
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_free(c);
			return 0;
		}
		for (ssize_t i = 0; i < n && !c->closing; i++) {
			if (buf[i] == '\n') {
				c->in[c->in_len] = '\0';
				handle_command(c, c->in);
				c->in_len = 0;
			} else if (c->in_len == QC_CTL_LINE_MAX) {
				replyf(c, "ERROR line over %d bytes\n", QC_CTL_LINE_MAX);
				c->closing = true;
			} else {
				c->in[c->in_len++] = buf[i];
			}
		}
	}
	if (conn_flush(c) < 0 || (c->closing && c->out_len == 0)) {
		conn_free(c);
		return 0;
	}
	conn_update_mask(c);
	return 0;
}

static int ctl_handle_accept(int fd, uint32_t mask, void *data)
{
	struct qc_server *server = data;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0)
		return 0;
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return 0;
	}
	c->server = server;
	c->fd = cfd;
	c->src = wl_event_loop_add_fd(server->loop, cfd, WL_EVENT_READABLE, conn_handle, c);
	wl_list_insert(&server->ctl_conns, &c->link);
	return 0;
}

static char *ctl_path_storage;

int qc_control_init(struct qc_server *server)
{
	const char *path = server->opt.control_path;
	if (!path) {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		if (!rt) {
			fprintf(stderr, "qube-compositor: XDG_RUNTIME_DIR is not set; give --control PATH\n");
			return -EINVAL;
		}
		if (asprintf(&ctl_path_storage, "%s/qube-compositor.ctl", rt) < 0)
			return -ENOMEM;
		path = ctl_path_storage;
		server->opt.control_path = path;
	}
	int r = listen_unix(path, &server->ctl_fd);
	if (r < 0) {
		fprintf(stderr, "qube-compositor: control socket %s: %s\n", path, strerror(-r));
		return r;
	}
	server->ctl_src = wl_event_loop_add_fd(server->loop, server->ctl_fd, WL_EVENT_READABLE,
					       ctl_handle_accept, server);
	fprintf(stderr, "qube-compositor: control socket %s\n", path);
	return 0;
}

void qc_control_finish(struct qc_server *server)
{
	struct ctl_conn *c, *tmp;
	wl_list_for_each_safe(c, tmp, &server->ctl_conns, link)
		conn_free(c);
	if (server->ctl_src)
		wl_event_source_remove(server->ctl_src);
	if (server->ctl_fd >= 0) {
		close(server->ctl_fd);
		unlink(server->opt.control_path);
	}
	free(ctl_path_storage);
	ctl_path_storage = NULL;
}
