/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: what the broker needs from the host daemon.
 *  - the system-info JSON it evaluates policies against, and (for the
 *    kernel vsock transport) its CID map, rewritten by rename on change;
 *  - its start interface (docs/broker.md): START NAME, DISPVM TEMPLATE,
 *    DESTROY NAME, one request per connection, answered OK/ERROR;
 *  - supervision: qube-broker (and the host-side service runner when one
 *    is configured) run as children, restarted with a back-off and a log
 *    line when they exit; after a restart of qubed a broker that still
 *    runs is adopted through its pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qname.h"
#include "qubed.h"

extern char **environ;

/* ---- system info and vsock map ---- */

int qd_sysinfo_write(struct qd *qd)
{
	struct json_object *root = json_object_new_object(), *doms = json_object_new_object();
	char **names = NULL, path[600];
	size_t n = 0;
	struct qerr e;
	char *map = NULL;
	size_t maplen = 0;
	FILE *mf = open_memstream(&map, &maplen);
	int r;

	if (!root || !doms || !mf || qdb_qube_list(qd->db, &names, &n, &e) < 0) {
		json_object_put(root);
		json_object_put(doms);
		if (mf)
			fclose(mf);
		free(map);
		return -ENOMEM;
	}
	fprintf(mf, "# written by qubed: CID NAME of every qube\n");
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_new_object(), *tags = json_object_new_array();
		enum qdb_class cls;
		char **tv = NULL, *v = NULL;
		size_t tn = 0;

		if (qdb_qube_class(qd->db, names[i], &cls, &e) < 0)
			continue;
		json_object_object_add(d, "type", json_object_new_string(qdb_class_name(cls)));
		if (qdb_tag_list(qd->db, names[i], &tv, &tn, &e) == 0) {
			for (size_t t = 0; t < tn; t++)
				json_object_array_add(tags, json_object_new_string(tv[t]));
			qdb_strv_free(tv, tn);
		}
		json_object_object_add(d, "tags", tags);
		if (qdb_prop_get(qd->db, names[i], "label", &v, NULL, &e) == 0) {
			json_object_object_add(d, "icon", json_object_new_string(v));
			free(v);
		}
		enum qd_state st = cls == QDB_ADMINVM ? QD_RUNNING : qd_vm_state(qd, names[i]);
		json_object_object_add(d, "power_state", json_object_new_string(qd_state_name(st)));
		v = NULL;
		bool tfd = qdb_prop_get(qd->db, names[i], "template_for_dispvms", &v, NULL, &e) == 0 &&
			   strcmp(v, "True") == 0;
		free(v);
		json_object_object_add(d, "template_for_dispvms", json_object_new_boolean(tfd));
		v = NULL;
		if (qdb_prop_get(qd->db, names[i], "default_dispvm", &v, NULL, &e) == 0 && v[0])
			json_object_object_add(d, "default_dispvm", json_object_new_string(v));
		else
			json_object_object_add(d, "default_dispvm", NULL);
		free(v);
		v = NULL;
		if (qdb_prop_get(qd->db, names[i], "uuid", &v, NULL, &e) == 0)
			json_object_object_add(d, "uuid", json_object_new_string(v));
		free(v);
		v = NULL;
		bool internal = qdb_prop_get(qd->db, names[i], "internal", &v, NULL, &e) == 0 && strcmp(v, "True") == 0;
		free(v);
		json_object_object_add(d, "internal", json_object_new_boolean(internal));
		json_object_object_add(doms, names[i], d);
		v = NULL;
		if (cls != QDB_ADMINVM && qdb_prop_get(qd->db, names[i], "cid", &v, NULL, &e) == 0 && v[0])
			fprintf(mf, "%s %s\n", v, names[i]);
		free(v);
	}
	qdb_strv_free(names, n);
	json_object_object_add(root, "domains", doms);
	fclose(mf);
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	qd_path(path, sizeof(path), "%s/system-info.json", qd->cfg.run_dir);
	r = qd_write_atomic(path, text, strlen(text), 0644);
	if (r == 0) {
		qd_path(path, sizeof(path), "%s/vsock.map", qd->cfg.run_dir);
		r = qd_write_atomic(path, map, maplen, 0644);
	}
	if (r < 0)
		qd_log("writing %s failed: %s", path, strerror(-r));
	json_object_put(root);
	free(map);
	qd->sysinfo_dirty = false;
	return r;
}

/* ---- the start interface ---- */

struct start_conn {
	struct qd_watch watch;
	char buf[1025];
	size_t len;
	bool answered, waiting, gone;
	char dispvm[QD_NAME_MAX]; /* a disposable made for this request */
};

static void start_conn_free(struct qd *qd, struct start_conn *s)
{
	if (s->watch.fd >= 0) {
		int fd = s->watch.fd;
		qd_watch_del(qd, &s->watch);
		close(fd);
	}
	free(s);
}

__attribute__((format(printf, 3, 4)))
static void start_answer(struct qd *qd, struct start_conn *s, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}

	/* printable ASCII only, one line */
	for (int i = 0; i < n - 1; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
			line[i] = '?';
	if (s->watch.fd >= 0)
		(void)!send(s->watch.fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	s->answered = true;
	start_conn_free(qd, s);
}

static void start_done(struct qd *qd, void *ctx, int status, const char *msg)
{
	struct start_conn *s = ctx;

	if (s->gone) {
		/* the broker gave up (its caller left): a disposable made for
		 * it is destroyed now that it is up */
		if (s->dispvm[0] && status == 0) {
			struct qerr e;
			qd_log("start request for disposable %s was cancelled: destroying it", s->dispvm);
			qd_vm_kill_async(qd, s->dispvm, &e);
		}
		free(s);
		return;
	}
	if (status == 0)
		start_answer(qd, s, "OK %s\n", s->dispvm[0] ? s->dispvm : s->buf + (s->buf[0] == 'S' ? 6 : 7));
	else
		start_answer(qd, s, "ERROR %s\n", msg ? msg : "start failed");
}

static void start_request(struct qd *qd, struct start_conn *s)
{
	char *sp = strchr(s->buf, ' ');
	const char *verb = s->buf, *name;
	struct qerr e = { "", "" };
	struct qd_waiter *w;

	if (!sp) {
		start_answer(qd, s, "ERROR malformed request\n");
		return;
	}
	*sp = '\0';
	name = sp + 1;
	if (!qname_qube_is_valid(name) || strcmp(name, "dom0") == 0) {
		start_answer(qd, s, "ERROR invalid qube name\n");
		return;
	}
	if (!qdb_qube_exists(qd->db, name)) {
		start_answer(qd, s, "ERROR no such qube: %s\n", name);
		return;
	}
	if (strcmp(verb, "DESTROY") == 0) {
		enum qdb_class cls;
		if (qdb_qube_class(qd->db, name, &cls, &e) < 0 || cls != QDB_DISPVM) {
			start_answer(qd, s, "ERROR %s is not a disposable\n", name);
			return;
		}
		/* the caller has its result already: the destroy waits for
		 * nobody, and keeps qubed's loop free for the next request */
		if (qd_vm_state(qd, name) != QD_HALTED)
			qd_vm_kill_async(qd, name, &e);
		start_answer(qd, s, "OK %s\n", name);
		return;
	}
	if (strcmp(verb, "DISPVM") == 0) {
		if (qd_dispvm_create(qd, name, s->dispvm, &e) < 0) {
			start_answer(qd, s, "ERROR %s\n", e.msg);
			return;
		}
		name = s->dispvm;
		qd_log("start interface: disposable %s from %s", s->dispvm, sp + 1);
	} else if (strcmp(verb, "START") != 0) {
		start_answer(qd, s, "ERROR unknown request\n");
		return;
	} else if (qd_vm_state(qd, name) == QD_RUNNING) {
		start_answer(qd, s, "OK %s\n", name);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		start_answer(qd, s, "ERROR out of memory\n");
		return;
	}
	w->until = QD_WAIT_RUNNING;
	w->done = start_done;
	w->ctx = s;
	s->buf[strlen(s->buf)] = '\0';
	*sp = ' '; /* keep "VERB NAME" for start_done */
	s->waiting = true;
	if (qd_vm_start(qd, name, w, &e) < 0) {
		free(w);
		s->waiting = false;
		if (s->dispvm[0]) {
			struct qerr e2;
			qdb_qube_remove(qd->db, s->dispvm, &e2);
			qd_vm_remove_storage(qd, s->dispvm, &e2);
			qd_vm_forget(qd, s->dispvm);
			qd->sysinfo_dirty = true;
		}
		start_answer(qd, s, "ERROR %s\n", e.msg);
	}
}

static void on_start_conn(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct start_conn *s = w->ctx;

	if (s->waiting) {
		/* only a hang-up matters now: the request is cancelled */
		if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
			int fd = s->watch.fd;
			qd_watch_del(qd, &s->watch);
			close(fd);
			s->gone = true;
		}
		return;
	}
	for (;;) {
		ssize_t n = recv(w->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			start_conn_free(qd, s);
			return;
		}
		s->len += (size_t)n;
		s->buf[s->len] = '\0';
		char *nl = strchr(s->buf, '\n');
		if (nl) {
			*nl = '\0';
			if (nl != s->buf + s->len - 1) {
				start_answer(qd, s, "ERROR one request per connection\n");
				return;
			}
			qd_watch_mod(qd, &s->watch, EPOLLRDHUP);
			start_request(qd, s);
			return;
		}
		if (s->len >= sizeof(s->buf) - 1) {
			start_answer(qd, s, "ERROR line over 1024 bytes\n");
			return;
		}
	}
}

static void on_start_accept(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct start_conn *s;

		if (fd < 0)
			return;
		s = calloc(1, sizeof(*s));
		if (!s || qd_watch_add(qd, &s->watch, fd, EPOLLIN, on_start_conn, s) < 0) {
			free(s);
			close(fd);
		}
	}
	(void)events;
}

int qd_start_listen(struct qd *qd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (qd_path(sa.sun_path, sizeof(sa.sun_path), "%s/start.sock", qd->cfg.run_dir) < 0)
		return -ENAMETOOLONG;
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	qd->start_fd = fd;
	return qd_watch_add(qd, &qd->start_watch, fd, EPOLLIN, on_start_accept, NULL);
}

/* ---- supervision ---- */

static void child_pidfile(struct qd *qd, struct qd_child *ch, char *buf, size_t len)
{
	qd_path(buf, len, "%s/%s.pid", qd->cfg.run_dir, ch->what);
}

static void on_child_exit(struct qd *qd, struct qd_watch *w, uint32_t events);

static int child_watch(struct qd *qd, struct qd_child *ch)
{
	ch->pidfd = (int)syscall(SYS_pidfd_open, ch->pid, 0);
	if (ch->pidfd < 0)
		return -errno;
	return qd_watch_add(qd, &ch->watch, ch->pidfd, EPOLLIN, on_child_exit, ch);
}

static int broker_argv(struct qd *qd, char **argv, size_t max, char bufs[][600])
{
	size_t n = 0;
	struct group *g = getgrnam(qd->cfg.socket_group);

	argv[n++] = qd->cfg.broker_path;
	argv[n++] = "--policy-dir";
	argv[n++] = qd->cfg.policy_dir;
	qd_path(bufs[0], 600, "%s/system-info.json", qd->cfg.run_dir);
	argv[n++] = "--system-info";
	argv[n++] = bufs[0];
	if (qd->vsock == QVMM_VSOCK_USER) {
		qd_path(bufs[1], 600, "%s/qubes", qd->cfg.run_dir);
		argv[n++] = "--qubes-dir";
	} else {
		qd_path(bufs[1], 600, "%s/vsock.map", qd->cfg.run_dir);
		argv[n++] = "--vsock-map";
	}
	argv[n++] = bufs[1];
	qd_path(bufs[2], 600, "%s/start.sock", qd->cfg.run_dir);
	argv[n++] = "--start-socket";
	argv[n++] = bufs[2];
	qd_path(bufs[3], 600, "%s/ask.sock", qd->cfg.run_dir);
	argv[n++] = "--ask-socket";
	argv[n++] = bufs[3];
	if (g) {
		argv[n++] = "--ask-group";
		argv[n++] = qd->cfg.socket_group;
	}
	qd_path(bufs[4], 600, "%s/broker.log", qd->cfg.log_dir);
	argv[n++] = "--log";
	argv[n++] = bufs[4];
	/* the host's own calls (qubectl run): RUN/host-calls, 0750 root:GROUP */
	qd_path(bufs[5], 600, "%s/host-calls", qd->cfg.run_dir);
	if (qd_mkdir_p(bufs[5], 0750) == 0 && chmod(bufs[5], 0750) == 0 &&
	    chown(bufs[5], 0, g ? g->gr_gid : 0) == 0) {
		argv[n++] = "--host-calls";
		argv[n++] = bufs[5];
	} else {
		qd_log("%s: %s; qubectl run will not reach the broker", bufs[5], strerror(errno));
	}
	if (qd_host_agent_configured(qd)) {
		/* calls to @adminvm go to the host service runner there
		 * (qube-host-agent --transport unix:RUN/adminvm); without the
		 * option the broker fails them with 125 (docs/broker.md) */
		qd_path(bufs[6], 600, "%s/adminvm/vsock", qd->cfg.run_dir);
		argv[n++] = "--adminvm-socket";
		argv[n++] = bufs[6];
	}
	argv[n] = NULL;
	(void)max;
	return 0;
}

/* qube-host-agent: the host's services (@adminvm calls) from host_rpc_dir,
 * on RUN/adminvm/vsock (root only: the broker's monitor connects), run as
 * host_service_user unless the policy names a user. */
static int host_agent_argv(struct qd *qd, char **argv, char bufs[][600])
{
	size_t n = 0;

	qd_path(bufs[0], 600, "%s/adminvm", qd->cfg.run_dir);
	if (qd_mkdir_p(bufs[0], 0755) < 0)
		return -errno;
	qd_path(bufs[1], 600, "unix:%s/adminvm", qd->cfg.run_dir);
	argv[n++] = qd->cfg.host_agent_path;
	argv[n++] = "--transport";
	argv[n++] = bufs[1];
	argv[n++] = "--rpc-dir";
	argv[n++] = qd->cfg.host_rpc_dir;
	argv[n++] = "--name";
	argv[n++] = "dom0";
	if (geteuid() == 0 && qd->cfg.host_service_user[0]) {
		argv[n++] = "--service-user";
		argv[n++] = qd->cfg.host_service_user;
	}
	argv[n] = NULL;
	return 0;
}

static int child_spawn(struct qd *qd, struct qd_child *ch)
{
	char *argv[32], bufs[8][600], pidfile[600], text[32];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int r, n;

	if (ch == &qd->broker) {
		broker_argv(qd, argv, 32, bufs);
	} else if (ch == &qd->host_agent) {
		r = host_agent_argv(qd, argv, bufs);
		if (r < 0) {
			qd_log("cannot start %s: %s/adminvm: %s", ch->what, qd->cfg.run_dir, strerror(-r));
			return r;
		}
	} else {
		return -ENOSYS;
	}
	/* its stderr (its log) to LOG_DIR/WHAT.log */
	char logpath[600];
	qd_path(logpath, sizeof(logpath), "%s/%s.log", qd->cfg.log_dir, ch->what);
	posix_spawn_file_actions_init(&fa);
	if (ch == &qd->host_agent)
		posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, logpath,
						 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	/* not qubed's blocked SIGTERM/SIGHUP/SIGPIPE (qvmm.h) */
	posix_spawnattr_init(&attr);
	r = -qvmm_spawnattr_clean(&attr);
	if (r == 0)
		r = posix_spawn(&ch->pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		qd_log("cannot start %s (%s): %s", ch->what, argv[0], strerror(r));
		ch->pid = 0;
		return -r;
	}
	child_pidfile(qd, ch, pidfile, sizeof(pidfile));
	n = snprintf(text, sizeof(text), "%d\n", (int)ch->pid);
	qd_write_atomic(pidfile, text, (size_t)n, 0644);
	qd_log("started %s (pid %d)", ch->what, (int)ch->pid);
	return child_watch(qd, ch);
}

static void on_child_exit(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct qd_child *ch = w->ctx;
	int status = 0;
	unsigned delay;

	qd_watch_del(qd, &ch->watch);
	close(ch->pidfd);
	ch->pidfd = -1;
	if (waitpid(ch->pid, &status, WNOHANG) <= 0)
		status = -1; /* adopted: not our child, no status */
	if (qd->quit)
		return;
	delay = ch->restarts < 5 ? 1u << ch->restarts : 30;
	ch->restarts++;
	if (status == -1)
		qd_log("%s (pid %d) exited; restarting it in %u s", ch->what, (int)ch->pid, delay);
	else if (WIFSIGNALED(status))
		qd_log("%s (pid %d) was killed by signal %d; restarting it in %u s", ch->what, (int)ch->pid,
		       WTERMSIG(status), delay);
	else
		qd_log("%s (pid %d) exited with status %d; restarting it in %u s", ch->what, (int)ch->pid,
		       WEXITSTATUS(status), delay);
	ch->pid = 0;
	qd_time_after_ms(&ch->restart_at, delay * 1000);
	(void)events;
}

static bool adopt_child(struct qd *qd, struct qd_child *ch, const char *exe_name)
{
	char pidfile[600], exe[64], target[4096];
	FILE *f;
	int pid = 0;
	ssize_t n;

	child_pidfile(qd, ch, pidfile, sizeof(pidfile));
	f = fopen(pidfile, "re");
	if (!f)
		return false;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 1)
		return false;
	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	n = readlink(exe, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	if (!strstr(target, exe_name))
		return false;
	ch->pid = pid;
	if (child_watch(qd, ch) < 0) {
		ch->pid = 0;
		return false;
	}
	qd_log("adopted %s (pid %d) from before the restart", ch->what, pid);
	return true;
}

int qd_broker_init(struct qd *qd)
{
	qd->broker.what = "qube-broker";
	qd->broker.pidfd = -1;
	qd->broker.watch.fd = -1;
	qd->host_agent.what = "qube-host-agent";
	qd->host_agent.pidfd = -1;
	qd->host_agent.watch.fd = -1;
	if (!qd->cfg.broker_path[0]) {
		qd_log("no broker configured (broker = empty): qubes cannot call each other");
		return 0;
	}
	if (access(qd->cfg.broker_path, X_OK) != 0) {
		qd_log("broker %s: %s; qubes cannot call each other", qd->cfg.broker_path, strerror(errno));
		return 0;
	}
	if (qd_host_agent_configured(qd) && !adopt_child(qd, &qd->host_agent, "qube-host-agent"))
		child_spawn(qd, &qd->host_agent);
	if (adopt_child(qd, &qd->broker, "qube-broker"))
		return 0;
	return child_spawn(qd, &qd->broker);
}

bool qd_host_agent_configured(const struct qd *qd)
{
	return qd->cfg.host_agent_path && qd->cfg.host_agent_path[0] &&
	       access(qd->cfg.host_agent_path, X_OK) == 0;
}

void qd_broker_tick(struct qd *qd)
{
	if (qd_host_agent_configured(qd) && qd->host_agent.pid == 0 &&
	    qd->host_agent.restart_at.tv_sec && qd_time_passed(&qd->host_agent.restart_at)) {
		qd->host_agent.restart_at.tv_sec = 0;
		if (child_spawn(qd, &qd->host_agent) < 0)
			qd_time_after_ms(&qd->host_agent.restart_at, 5000);
	}
	if (qd->cfg.broker_path[0] && qd->broker.pid == 0 && qd->broker.restart_at.tv_sec &&
	    qd_time_passed(&qd->broker.restart_at)) {
		qd->broker.restart_at.tv_sec = 0;
		if (child_spawn(qd, &qd->broker) < 0)
			qd_time_after_ms(&qd->broker.restart_at, 5000);
	}
}

void qd_broker_stop(struct qd *qd)
{
	if (qd->broker.pid > 0 && qd->broker.pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, qd->broker.pidfd, SIGTERM, NULL, 0);
		waitpid(qd->broker.pid, NULL, 0);
	}
}
