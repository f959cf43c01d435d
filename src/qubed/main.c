/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: command line, start-up and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "qubed.h"

#define TICK_MS 50

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qubed [OPTIONS]\n"
		"\n"
		"The qube host daemon: the qube database, qubes as libvirt domains, the\n"
		"broker's supervisor and start interface, and the admin API (the wire of\n"
		"Qubes OS 4.3's qubesd socket) used by qubectl and Qubes' qvm-* tools.\n"
		"\n"
		"  --config FILE       settings (default /etc/qube/qubed.conf; see qubed.conf(5))\n"
		"  --state-dir DIR     database and volumes (default /var/lib/qube)\n"
		"  --run-dir DIR       sockets and runtime files (default /run/qube)\n"
		"  --log-dir DIR       broker and console logs (default /var/log/qube)\n"
		"  --socket PATH       admin API socket (default RUN/qubed.sock)\n"
		"  --accel auto|kvm|tcg      accelerator (default auto: kvm when it really works)\n"
		"  --vsock auto|vhost|vsockd vsock transport (default auto: vhost when /dev/vhost-vsock works)\n"
		"  --libvirt-uri URI   (default qemu:///system)\n"
		"  --broker PATH       qube-broker to supervise ('' for none)\n"
		"  --vsockd PATH       qube-vsockd\n"
		"  --check             resolve the settings, print the choices and exit\n"
		"  --help, --version\n"
		"\n"
		"Runs in the foreground and logs to stderr. SIGTERM/SIGINT stop qubed;\n"
		"running qubes keep running and are adopted at the next start.\n");
}

static void on_signal(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			qd_log("signal %u: stopping (qubes keep running)", si.ssi_signo);
			qd->quit = true;
		}
	}
	(void)events;
}

void qd_on_libvirt_event(struct qd *qd, struct qd_watch *w, uint32_t events);
void qd_on_libvirt_event(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	qd_vm_handle_events(qd);
	(void)w;
	(void)events;
}

static int resolve_choices(struct qd *qd, bool have_libvirt)
{
	bool kvm_ok, vhost_ok, lv_kvm;
	char why[256] = "";
	int r;

	kvm_ok = qvmm_kvm_usable(qd->cfg.dev_kvm, why, sizeof(why));
	lv_kvm = have_libvirt && qd->conn && qvmm_libvirt_has_kvm(qd->conn);
	r = qvmm_accel_choose(qd->cfg.accel, kvm_ok, lv_kvm, &qd->accel);
	if (r < 0) {
		fprintf(stderr, "qubed: accel = kvm, but KVM is not usable: %s\n", kvm_ok ? "libvirt offers no kvm domain" : why);
		return r;
	}
	snprintf(qd->accel_reason, sizeof(qd->accel_reason), "%s", kvm_ok ? (lv_kvm ? "KVM works" : "KVM works but libvirt offers no kvm domain") : why);
	why[0] = '\0';
	vhost_ok = qvmm_vhost_vsock_usable(qd->cfg.dev_vhost_vsock, why, sizeof(why));
	r = qvmm_vsock_choose(qd->cfg.vsock, vhost_ok, &qd->vsock);
	if (r < 0) {
		fprintf(stderr, "qubed: vsock = vhost, but %s is not usable: %s\n", qd->cfg.dev_vhost_vsock, why);
		return r;
	}
	snprintf(qd->vsock_reason, sizeof(qd->vsock_reason), "%s", vhost_ok ? "vhost_vsock works" : why);
	/* auto with a compositor: windows need qube-gui-bridge, which listens
	 * only on qube-vsockd's hybrid path; a desktop without windows is
	 * worse than vsock in userspace (an explicit vsock = vhost keeps
	 * vhost, and the GUI is off: gui.c says so) */
	if (qd->cfg.vsock == QVMM_VSOCK_AUTO && qd->vsock == QVMM_VSOCK_VHOST && qd->cfg.gui_control &&
	    qd->cfg.gui_control[0]) {
		qd->vsock = QVMM_VSOCK_USER;
		snprintf(qd->vsock_reason, sizeof(qd->vsock_reason),
			 "vhost_vsock works, but gui_compositor is set and qube-gui-bridge needs qube-vsockd");
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "log-dir", required_argument, NULL, 'l' },
		{ "socket", required_argument, NULL, 'S' },
		{ "accel", required_argument, NULL, 'a' },
		{ "vsock", required_argument, NULL, 'v' },
		{ "libvirt-uri", required_argument, NULL, 'u' },
		{ "broker", required_argument, NULL, 'b' },
		{ "vsockd", required_argument, NULL, 'V' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct qd qd;
	const char *config = "/etc/qube/qubed.conf";
	bool config_given = false, check = false;
	char err[1024] = "", path[600];
	struct qerr qe;
	int c, r;

	memset(&qd, 0, sizeof(qd));
	qd.api_fd = qd.start_fd = -1;
	qd.api_watch.fd = qd.start_watch.fd = qd.event_watch.fd = qd.signal_watch.fd = -1;
	if (qd_config_defaults(&qd.cfg) < 0)
		return 1;
	/* the config file first, so that options override it */
	for (int i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "--config") == 0) {
			config = argv[i + 1];
			config_given = true;
		}
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--config=", 9) == 0) {
			config = argv[i] + 9;
			config_given = true;
		}
	if (qd_config_load(&qd.cfg, config, config_given, err, sizeof(err)) < 0) {
		fprintf(stderr, "qubed: %s\n", err);
		return 2;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char **slot = NULL;
		switch (c) {
		case 'c': break;
		case 's': slot = &qd.cfg.state_dir; break;
		case 'r': slot = &qd.cfg.run_dir; break;
		case 'l': slot = &qd.cfg.log_dir; break;
		case 'S': slot = &qd.cfg.socket_path; break;
		case 'u': slot = &qd.cfg.libvirt_uri; break;
		case 'b': slot = &qd.cfg.broker_path; break;
		case 'V': slot = &qd.cfg.vsockd_path; break;
		case 'a':
			if (qvmm_accel_parse(optarg, &qd.cfg.accel) < 0) {
				fprintf(stderr, "qubed: --accel '%s': expected auto, kvm or tcg\n", optarg);
				return 2;
			}
			break;
		case 'v':
			if (qvmm_vsock_parse(optarg, &qd.cfg.vsock) < 0) {
				fprintf(stderr, "qubed: --vsock '%s': expected auto, vhost or vsockd\n", optarg);
				return 2;
			}
			break;
		case 'C': check = true; break;
		case 'h': usage(stdout); return 0;
		case 'W': printf("qubed %s\n", QUBE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
		if (slot) {
			if (optarg[0] && optarg[0] != '/' && c != 'u') {
				fprintf(stderr, "qubed: --%s '%s': give an absolute path\n", opts[0].name, optarg);
				return 2;
			}
			free(*slot);
			*slot = strdup(optarg);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qubed: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (!qd.cfg.socket_path[0]) {
		free(qd.cfg.socket_path);
		qd_path(path, sizeof(path), "%s/qubed.sock", qd.cfg.run_dir);
		qd.cfg.socket_path = strdup(path);
	}
	if (check) {
		char m[512];
		if (qvmm_connect(qd.cfg.libvirt_uri, &qd.conn, m, sizeof(m)) < 0) {
			printf("libvirt: %s: %s\n", qd.cfg.libvirt_uri, m);
			qd.conn = NULL;
		}
		r = resolve_choices(&qd, qd.conn != NULL);
		if (r == 0)
			printf("accel=%s (%s)\nvsock=%s (%s)\n", qvmm_accel_to_string(qd.accel),
			       qd.accel_reason, qvmm_vsock_to_string(qd.vsock), qd.vsock_reason);
		qvmm_conn_free(qd.conn);
		qd_config_finish(&qd.cfg);
		return r < 0 ? 1 : 0;
	}

	/* directories, database */
	umask(022);
	if (qd_mkdir_p(qd.cfg.state_dir, 0711) < 0 || qd_mkdir_p(qd.cfg.run_dir, 0755) < 0 ||
	    qd_mkdir_p(qd.cfg.log_dir, 0750) < 0) {
		fprintf(stderr, "qubed: cannot create %s, %s or %s: %s\n", qd.cfg.state_dir, qd.cfg.run_dir,
			qd.cfg.log_dir, strerror(errno));
		return 1;
	}
	qd_path(path, sizeof(path), "%s/qubes", qd.cfg.run_dir);
	qd_mkdir_p(path, 0755);
	qd_path(path, sizeof(path), "%s/qubes", qd.cfg.state_dir);
	qd_mkdir_p(path, 0711);
	r = qd_instance_id(qd.cfg.state_dir, qd.instance);
	if (r < 0) {
		fprintf(stderr, "qubed: %s/instance-id: %s\n", qd.cfg.state_dir,
			r == -EINVAL ? "not a uuid (remove it to make a new one)" : strerror(-r));
		return 1;
	}
	qd_path(path, sizeof(path), "%s/qubes.db", qd.cfg.state_dir);
	if (qdb_open(path, &qd.db, &qe) < 0) {
		fprintf(stderr, "qubed: %s: %s\n", path, qe.msg);
		return 1;
	}
	qd.epfd = epoll_create1(EPOLL_CLOEXEC);
	{
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGPIPE);
		sigprocmask(SIG_BLOCK, &set, NULL);
		sigdelset(&set, SIGPIPE);
		int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
		qd_watch_add(&qd, &qd.signal_watch, sfd, EPOLLIN, on_signal, NULL);
	}
	r = qd_api_listen(&qd);
	if (r < 0) {
		fprintf(stderr, "qubed: %s: cannot listen: %s\n", qd.cfg.socket_path, strerror(-r));
		return 1;
	}
	r = qd_start_listen(&qd);
	if (r < 0) {
		fprintf(stderr, "qubed: %s/start.sock: cannot listen: %s\n", qd.cfg.run_dir, strerror(-r));
		return 1;
	}
	/* libvirt: the first connection decides the accelerator */
	{
		char m[512];
		if (qvmm_connect(qd.cfg.libvirt_uri, &qd.conn, m, sizeof(m)) < 0) {
			qd_log("cannot connect to libvirt (%s): %s; retrying", qd.cfg.libvirt_uri, m);
			qd.conn = NULL;
		}
	}
	if (resolve_choices(&qd, qd.conn != NULL) < 0)
		return 1;
	r = qd_worker_init(&qd);
	if (r < 0) {
		fprintf(stderr, "qubed: cannot start its worker thread: %s\n", strerror(-r));
		return 1;
	}
	qd_worker_set_conn(qd.conn, qd.cfg.libvirt_uri);
	qd_log("accelerator %s (%s), vsock %s (%s)", qvmm_accel_to_string(qd.accel), qd.accel_reason,
	       qvmm_vsock_to_string(qd.vsock), qd.vsock_reason);
	if (qd.conn) {
		qd_watch_add(&qd, &qd.event_watch, qvmm_event_fd(qd.conn), EPOLLIN, qd_on_libvirt_event, NULL);
		qd_vm_adopt_all(&qd);
		qd_log("connected to libvirt (%s)", qd.cfg.libvirt_uri);
	}
	qd_sysinfo_write(&qd);
	qd_broker_init(&qd);
	qd_log("ready (pid %d): admin API on %s", (int)getpid(), qd.cfg.socket_path);

	while (!qd.quit) {
		struct epoll_event evs[32];
		int n = epoll_wait(qd.epfd, evs, 32, TICK_MS);

		for (int i = 0; i < n; i++) {
			struct qd_watch *w = evs[i].data.ptr;
			w->fn(&qd, w, evs[i].events);
		}
		if (qd.conn && !qvmm_conn_alive(qd.conn))
			qd_vm_reconnect(&qd);
		else if (!qd.conn)
			qd_vm_reconnect(&qd);
		qd_vm_tick(&qd);
		qd_preload_tick(&qd);
		qd_broker_tick(&qd);
		for (struct qd_vm *vm = qd.vms; vm; vm = vm->next)
			if (vm->vsockd_pid > 0)
				waitpid(vm->vsockd_pid, NULL, WNOHANG);
		if (qd.sysinfo_dirty)
			qd_sysinfo_write(&qd);
	}
	unlink(qd.cfg.socket_path);
	qd_path(path, sizeof(path), "%s/start.sock", qd.cfg.run_dir);
	unlink(path);
	qdb_close(qd.db);
	qd_worker_drain();
	qvmm_conn_free(qd.conn);
	qd_config_finish(&qd.cfg);
	return 0;
}
