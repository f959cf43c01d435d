/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: a qube's life.  Start: volumes, qube-vsockd (where the host has
 * no vhost_vsock), the libvirt domain, then the qube counts as running
 * once its agent answers on vsock port 512.  Stop: libvirt's lifecycle
 * events; the throw-away volumes go, the private volume keeps one
 * revision, a disposable goes entirely.
 *
 * Files of qube NAME (STATE = state_dir, RUN = run_dir):
 *   STATE/qubes/NAME/private.qcow2        persistent (host-formatted ext4)
 *   STATE/qubes/NAME/private.qcow2.rev1   the private volume as of the stop before the last
 *   STATE/qubes/NAME/root.qcow2           TemplateVM/StandaloneVM: persistent root
 *   STATE/qubes/NAME/vmlinuz, initrd      TemplateVM/StandaloneVM: the kernel to boot
 *   STATE/qubes/NAME/root-snap.qcow2      AppVM/DispVM: overlay on the template's root, per start
 *   STATE/qubes/NAME/volatile.qcow2       per start
 *   RUN/qubes/NAME/vsock, vsock_513       the broker's transport (qube-vsockd's host side)
 *   RUN/qubes/NAME/runtime                how it was started (for adoption after a restart)
 *   RUN/vsockd/NAME.sock                  qube-vsockd's vhost-user socket (QEMU connects)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "qubed.h"

#define PROBE_INTERVAL_MS 100

const char *qd_state_name(enum qd_state s)
{
	switch (s) {
	case QD_HALTED: return "Halted";
	case QD_STARTING: return "Transient";
	case QD_RUNNING: return "Running";
	case QD_PAUSED: return "Paused";
	case QD_STOPPING: return "Halting";
	case QD_DYING: return "Dying";
	}
	return "NA";
}

struct qd_vm *qd_vm_get(struct qd *qd, const char *name, bool create)
{
	struct qd_vm *vm;

	for (vm = qd->vms; vm; vm = vm->next)
		if (strcmp(vm->name, name) == 0)
			return vm;
	if (!create || strlen(name) >= QD_NAME_MAX)
		return NULL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	strcpy(vm->name, name);
	vm->state = QD_HALTED;
	vm->probe_fd = -1;
	vm->vsockd_pidfd = -1;
	vm->next = qd->vms;
	qd->vms = vm;
	return vm;
}

void qd_vm_forget(struct qd *qd, const char *name)
{
	for (struct qd_vm **pp = &qd->vms; *pp; pp = &(*pp)->next) {
		struct qd_vm *vm = *pp;
		if (strcmp(vm->name, name) != 0)
			continue;
		*pp = vm->next;
		if (vm->probe_fd >= 0)
			close(vm->probe_fd);
		if (vm->vsockd_pidfd >= 0)
			close(vm->vsockd_pidfd);
		qd_gui_vm_stop(qd, vm);
		while (vm->waiters) {
			struct qd_waiter *w = vm->waiters;
			vm->waiters = w->next;
			w->done(qd, w->ctx, -ENOENT, "the qube was removed");
			free(w);
		}
		free(vm);
		return;
	}
}

enum qd_state qd_vm_state(struct qd *qd, const char *name)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);

	return vm ? vm->state : QD_HALTED;
}

int qd_vm_dir(struct qd *qd, const char *name, char *buf, size_t len)
{
	return qd_path(buf, len, "%s/qubes/%s", qd->cfg.state_dir, name);
}

static int run_dir(struct qd *qd, const char *name, char *buf, size_t len)
{
	return qd_path(buf, len, "%s/qubes/%s", qd->cfg.run_dir, name);
}

static void notify(struct qd *qd, struct qd_vm *vm, int until, int status, const char *msg)
{
	struct qd_waiter **pp = &vm->waiters;

	while (*pp) {
		struct qd_waiter *w = *pp;
		if ((int)w->until != until && status == 0) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->done(qd, w->ctx, status, msg);
		free(w);
	}
}

static void add_waiter(struct qd_vm *vm, struct qd_waiter *w)
{
	if (!w)
		return;
	w->next = vm->waiters;
	vm->waiters = w;
}

static char *prop(struct qd *qd, const char *qube, const char *name)
{
	char *v = NULL;

	if (qdb_prop_get(qd->db, qube, name, &v, NULL, NULL) < 0)
		return NULL;
	return v;
}

static unsigned prop_uint(struct qd *qd, const char *qube, const char *name, unsigned dflt)
{
	char *v = prop(qd, qube, name), *end;
	unsigned long n;

	if (!v)
		return dflt;
	n = strtoul(v, &end, 10);
	if (*end || n == 0 || n > 1u << 30)
		n = dflt;
	free(v);
	return (unsigned)n;
}

/* ---- storage ---- */

int qd_vm_create_storage(struct qd *qd, const char *name, struct qerr *err)
{
	char dir[512], path[600], msg[512];
	enum qdb_class cls;
	int r;

	if (qdb_qube_class(qd->db, name, &cls, err) < 0)
		return -ENOENT;
	if (cls == QDB_ADMINVM)
		return 0;
	if (qd_vm_dir(qd, name, dir, sizeof(dir)) < 0 || qd_mkdir_p(dir, 0711) < 0) {
		qd_err(err, "QubesException", "cannot create %s", dir);
		return -EIO;
	}
	/* the broker's transport directory: the broker listens there for the
	 * qube's calls (docs/broker.md); it exists while the qube does */
	if (run_dir(qd, name, path, sizeof(path)) < 0 || qd_mkdir_p(path, 0755) < 0) {
		qd_err(err, "QubesException", "cannot create %s", path);
		return -EIO;
	}
	if (cls == QDB_DISPVM)
		return 0; /* overlays made by qd_dispvm_create */
	qd_path(path, sizeof(path), "%s/private.qcow2", dir);
	r = qvmm_volume_create(path, qd->cfg.private_size, true, msg, sizeof(msg));
	if (r < 0) {
		qd_err(err, "QubesException", "cannot create the private volume of %s: %s", name, msg);
		return r;
	}
	return 0;
}

int qd_vm_remove_storage(struct qd *qd, const char *name, struct qerr *err)
{
	char dir[512];
	int r = 0, rr;

	if (qd_vm_dir(qd, name, dir, sizeof(dir)) == 0 && (rr = qd_rm_rf(dir)) < 0) {
		qd_err(err, "QubesException", "cannot remove %s: %s", dir, strerror(-rr));
		r = rr;
	}
	if (run_dir(qd, name, dir, sizeof(dir)) == 0)
		qd_rm_rf(dir);
	return r;
}

/* the directory holding the files a qube boots from: its own for
 * templates and standalones, else its template's (a disposable's
 * template is an AppVM, whose template has them) */
static int boot_dir(struct qd *qd, const char *name, char *buf, size_t len, char *tmpl_root, size_t trlen,
		    struct qerr *err)
{
	char cur[QD_NAME_MAX];
	enum qdb_class cls;

	snprintf(cur, sizeof(cur), "%s", name);
	tmpl_root[0] = '\0';
	for (int depth = 0; depth < 3; depth++) {
		if (qdb_qube_class(qd->db, cur, &cls, err) < 0)
			return -ENOENT;
		if (cls == QDB_TEMPLATEVM || cls == QDB_STANDALONEVM) {
			qd_vm_dir(qd, cur, buf, len);
			if (depth > 0)
				qd_path(tmpl_root, trlen, "%s/root.qcow2", buf);
			return 0;
		}
		char *t = prop(qd, cur, "template");
		if (!t || !t[0]) {
			free(t);
			qd_err(err, "QubesException", "%s has no template", cur);
			return -ENOENT;
		}
		snprintf(cur, sizeof(cur), "%s", t);
		free(t);
	}
	qd_err(err, "QubesException", "%s: the template chain is too long", name);
	return -ELOOP;
}

static void remove_temporary(struct qd *qd, struct qd_vm *vm)
{
	char dir[512], path[600];

	if (qd_vm_dir(qd, vm->name, dir, sizeof(dir)) < 0)
		return;
	qd_path(path, sizeof(path), "%s/root-snap.qcow2", dir);
	unlink(path);
	qd_path(path, sizeof(path), "%s/volatile.qcow2", dir);
	unlink(path);
	if (run_dir(qd, vm->name, dir, sizeof(dir)) == 0) {
		qd_path(path, sizeof(path), "%s/runtime", dir);
		unlink(path);
	}
	qd_path(path, sizeof(path), "%s/vsockd/%s.sock", qd->cfg.run_dir, vm->name);
	unlink(path);
}

static void stop_vsockd(struct qd_vm *vm)
{
	if (vm->vsockd_pid > 0) {
		/* it exits by itself when QEMU goes; make sure */
		if (vm->vsockd_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, vm->vsockd_pidfd, SIGTERM, NULL, 0);
		else
			kill(vm->vsockd_pid, SIGTERM);
		waitpid(vm->vsockd_pid, NULL, WNOHANG);
	}
	if (vm->vsockd_pidfd >= 0)
		close(vm->vsockd_pidfd);
	vm->vsockd_pidfd = -1;
	vm->vsockd_pid = 0;
}

/* ---- start ---- */

static int write_runtime(struct qd *qd, struct qd_vm *vm)
{
	char dir[512], path[600], text[256];
	int n;

	run_dir(qd, vm->name, dir, sizeof(dir));
	qd_path(path, sizeof(path), "%s/runtime", dir);
	n = snprintf(text, sizeof(text), "vsock=%s\naccel=%s\nvsockd_pid=%d\nstarted=%lld\ncid=%u\n",
		     qvmm_vsock_to_string(vm->vsock), qvmm_accel_to_string(vm->accel), (int)vm->vsockd_pid,
		     (long long)vm->started, vm->cid);
	return qd_write_atomic(path, text, (size_t)n, 0644);
}

static int do_start(struct qd *qd, struct qd_vm *vm, struct qerr *err)
{
	char dir[512], rdir[512], bdir[512], troot[600], kernel[600], initrd[600], root[600], priv[600],
		vol[600], vu_sock[600], uds[600], console[600], vlog[600], msg[512], domname[QVMM_DOMAIN_NAME_MAX];
	struct qvmm_disk disks[3];
	size_t nd = 0;
	char cmdline[2048];
	enum qdb_class cls;
	char *uuid = NULL, *label = NULL, *kopts = NULL, *xml = NULL;
	int r;

	if (qdb_qube_class(qd->db, vm->name, &cls, err) < 0)
		return -ENOENT;
	if (cls == QDB_ADMINVM) {
		qd_err(err, "QubesVMError", "dom0 is the host: it cannot be started");
		return -EINVAL;
	}
	if (boot_dir(qd, vm->name, bdir, sizeof(bdir), troot, sizeof(troot), err) < 0)
		return -ENOENT;
	qd_path(kernel, sizeof(kernel), "%s/vmlinuz", bdir);
	qd_path(initrd, sizeof(initrd), "%s/initrd", bdir);
	if (access(kernel, R_OK) != 0) {
		qd_err(err, "QubesException",
		       "%s: no kernel to boot (%s); import one with 'qubectl template import NAME --kernel FILE'",
		       vm->name, kernel);
		return -ENOENT;
	}
	qd_vm_dir(qd, vm->name, dir, sizeof(dir));
	run_dir(qd, vm->name, rdir, sizeof(rdir));
	if (qd_mkdir_p(dir, 0711) < 0 || qd_mkdir_p(rdir, 0755) < 0) {
		qd_err(err, "QubesException", "cannot create %s or %s", dir, rdir);
		return -EIO;
	}
	remove_temporary(qd, vm);
	struct timespec t_begin, t_domain, t_end;
	qd_now(&t_begin);

	/* root */
	if (cls == QDB_TEMPLATEVM || cls == QDB_STANDALONEVM) {
		qd_path(root, sizeof(root), "%s/root.qcow2", dir);
		if (access(root, F_OK) == 0)
			disks[nd++] = (struct qvmm_disk){ root, "qcow2", false };
	} else if (troot[0] && access(troot, F_OK) == 0) {
		qd_path(root, sizeof(root), "%s/root-snap.qcow2", dir);
		r = qvmm_volume_overlay(root, troot, msg, sizeof(msg));
		if (r < 0) {
			qd_err(err, "QubesException", "%s: root overlay: %s", vm->name, msg);
			goto err_volumes;
		}
		disks[nd++] = (struct qvmm_disk){ root, "qcow2", false };
	}
	bool has_root = nd == 1;
	/* private */
	qd_path(priv, sizeof(priv), "%s/private.qcow2", dir);
	if (access(priv, F_OK) != 0) {
		qd_err(err, "QubesException", "%s: its private volume %s is missing", vm->name, priv);
		r = -ENOENT;
		goto err_volumes;
	}
	disks[nd++] = (struct qvmm_disk){ priv, "qcow2", false };
	/* volatile */
	qd_path(vol, sizeof(vol), "%s/volatile.qcow2", dir);
	r = qvmm_volume_create(vol, qd->cfg.volatile_size, false, msg, sizeof(msg));
	if (r < 0) {
		qd_err(err, "QubesException", "%s: volatile volume: %s", vm->name, msg);
		goto err_volumes;
	}
	disks[nd++] = (struct qvmm_disk){ vol, "qcow2", false };

	kopts = prop(qd, vm->name, "kernelopts");
	snprintf(cmdline, sizeof(cmdline), "console=ttyS0 panic=-1 quiet qube.name=%s%s qube.rw=/dev/vd%c qube.volatile=/dev/vd%c qube.class=%s %s",
		 vm->name, has_root ? " root=/dev/vda" : "", has_root ? 'b' : 'a', has_root ? 'c' : 'b',
		 qdb_class_name(cls), kopts ? kopts : "");

	/* vsock */
	vm->cid = prop_uint(qd, vm->name, "cid", 0);
	if (vm->cid < 3) {
		qd_err(err, "QubesException", "%s has no vsock CID in the database", vm->name);
		r = -EINVAL;
		goto err_volumes;
	}
	vm->vsock = qd->vsock;
	vm->accel = qd->accel;
	qd_path(uds, sizeof(uds), "%s/vsock", rdir);
	qd_path(vu_sock, sizeof(vu_sock), "%s/vsockd/%s.sock", qd->cfg.run_dir, vm->name);
	qd_path(console, sizeof(console), "%s/console-%s.log", qd->cfg.log_dir, vm->name);
	qd_path(vlog, sizeof(vlog), "%s/vsockd-%s.log", qd->cfg.log_dir, vm->name);
	if (vm->vsock == QVMM_VSOCK_USER) {
		char vdir[600];
		qd_path(vdir, sizeof(vdir), "%s/vsockd", qd->cfg.run_dir);
		qd_mkdir_p(vdir, 0755);
		unlink(vu_sock);
		unlink(uds);
		r = qvmm_vsockd_spawn(qd->cfg.vsockd_path, vu_sock, vm->cid, uds, vlog, &vm->vsockd_pid, msg,
				      sizeof(msg));
		if (r < 0) {
			qd_err(err, "QubesException", "%s: qube-vsockd: %s", vm->name, msg);
			goto err_volumes;
		}
		vm->vsockd_pidfd = (int)syscall(SYS_pidfd_open, vm->vsockd_pid, 0);
	}

	uuid = prop(qd, vm->name, "uuid");
	label = prop(qd, vm->name, "label");
	qvmm_domain_name(vm->name, domname);
	unsigned memory = prop_uint(qd, vm->name, "memory", 400);
	unsigned maxmem = prop_uint(qd, vm->name, "maxmem", memory);
	struct qvmm_domain_spec spec = {
		.name = domname,
		.uuid = uuid,
		.qube_name = vm->name,
		.label = label ? label : "red",
		.qube_class = qdb_class_name(cls),
		.memory_mib = memory,
		.maxmem_mib = maxmem < memory ? memory : maxmem,
		.vcpus = prop_uint(qd, vm->name, "vcpus", 2),
		.accel = vm->accel,
		.kernel = kernel,
		.initrd = access(initrd, R_OK) == 0 ? initrd : NULL,
		.cmdline = cmdline,
		.disks = disks,
		.n_disks = nd,
		.vsock = vm->vsock,
		.cid = vm->cid,
		.vhost_user_socket = vu_sock,
		.console_log = console,
		.owner = qd->instance,
	};
	r = qvmm_domain_xml(&spec, &xml, msg, sizeof(msg));
	if (r < 0) {
		qd_err(err, "QubesException", "%s: domain XML: %s", vm->name, msg);
		goto err_vsockd;
	}
	qd_now(&t_domain);
	r = qvmm_domain_start(qd->conn, xml, false, msg, sizeof(msg));
	qd_now(&t_end);
	if (r < 0) {
		qd_err(err, "QubesException", "Start failed: %s (libvirt's log: /var/log/libvirt/qemu/%s.log)", msg,
		       domname);
		goto err_vsockd;
	}
	vm->state = QD_STARTING;
	vm->started = time(NULL);
	vm->cleaned = false;
	vm->probe_len = 0;
	vm->fail_reason[0] = '\0';
	qd_now(&vm->probe_next);
	qd_time_after_ms(&vm->deadline, qd->cfg.start_timeout_s * 1000u);
	write_runtime(qd, vm);
	qd_log("starting %s (%s, %s, vsock %s, CID %u; volumes and qube-vsockd %ld ms, libvirt %ld ms)", vm->name,
	       qdb_class_name(cls), qvmm_accel_to_string(vm->accel), qvmm_vsock_to_string(vm->vsock), vm->cid,
	       (long)((t_domain.tv_sec - t_begin.tv_sec) * 1000 + (t_domain.tv_nsec - t_begin.tv_nsec) / 1000000),
	       (long)((t_end.tv_sec - t_domain.tv_sec) * 1000 + (t_end.tv_nsec - t_domain.tv_nsec) / 1000000));
	qd_api_event(qd, vm->name, "domain-pre-start", NULL);
	free(xml);
	free(uuid);
	free(label);
	free(kopts);
	return 0;

err_vsockd:
	stop_vsockd(vm);
err_volumes:
	remove_temporary(qd, vm);
	free(xml);
	free(uuid);
	free(label);
	free(kopts);
	return r < 0 ? r : -EIO;
}

int qd_vm_start(struct qd *qd, const char *name, struct qd_waiter *w, struct qerr *err)
{
	struct qd_vm *vm;
	int r;

	if (!qd->conn || !qvmm_conn_alive(qd->conn)) {
		qd_err(err, "QubesException", "not connected to libvirt (%s): try again in a moment",
		       qd->cfg.libvirt_uri);
		return -ENOTCONN;
	}
	vm = qd_vm_get(qd, name, true);
	if (!vm) {
		qd_err(err, "QubesException", "out of memory");
		return -ENOMEM;
	}
	switch (vm->state) {
	case QD_STARTING:
		add_waiter(vm, w);
		return 0;
	case QD_RUNNING:
		if (vm->just_taken) {
			/* a preloaded disposable just handed out: it is up; the
			 * waiter is told from the loop (qd_vm_tick), never from
			 * inside this call */
			vm->just_taken = false;
			vm->notify_running = true;
			add_waiter(vm, w);
			return 0;
		}
		qd_err(err, "QubesVMNotHaltedError", "Domain is already running: %s", name);
		return -EALREADY;
	case QD_PAUSED:
		qd_err(err, "QubesVMNotHaltedError", "Domain is paused: %s (unpause it)", name);
		return -EALREADY;
	case QD_STOPPING:
	case QD_DYING:
		qd_err(err, "QubesVMNotHaltedError", "Domain is shutting down: %s; start it when it has halted",
		       name);
		return -EBUSY;
	case QD_HALTED:
		break;
	}
	r = do_start(qd, vm, err);
	if (r < 0)
		return r;
	add_waiter(vm, w);
	return 0;
}

/* ---- the agent probe ---- */

static void probe_close(struct qd_vm *vm)
{
	if (vm->probe_fd >= 0)
		close(vm->probe_fd);
	vm->probe_fd = -1;
	vm->probe_len = 0;
}

static void probe_open(struct qd *qd, struct qd_vm *vm)
{
	int fd;

	if (vm->vsock == QVMM_VSOCK_USER) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char rdir[512];
		run_dir(qd, vm->name, rdir, sizeof(rdir));
		if (qd_path(sa.sun_path, sizeof(sa.sun_path), "%s/vsock", rdir) < 0)
			return;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    send(fd, "CONNECT 512\n", 12, MSG_NOSIGNAL) != 12) {
			close(fd);
			return;
		}
	} else {
		struct sockaddr_vm sv = { .svm_family = AF_VSOCK, .svm_cid = vm->cid, .svm_port = 512 };
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return;
		if (connect(fd, (struct sockaddr *)&sv, sizeof(sv)) < 0 && errno != EINPROGRESS) {
			close(fd);
			return;
		}
	}
	vm->probe_fd = fd;
	vm->probe_len = 0;
}

static void became_running(struct qd *qd, struct qd_vm *vm)
{
	struct timespec now;
	long ms;

	probe_close(vm);
	vm->state = QD_RUNNING;
	qd_now(&now);
	ms = (long)(time(NULL) - vm->started) * 1000;
	qd_log("%s is running: its agent answers (after about %ld s)", vm->name, ms / 1000);
	qd_api_event(qd, vm->name, "domain-start", NULL);
	qd->sysinfo_dirty = true;
	notify(qd, vm, QD_WAIT_RUNNING, 0, NULL);
}

/* the agent greets every connection with its HELLO (16 bytes); through
 * qube-vsockd the greeting follows the "OK <port>" line */
static void probe_poll(struct qd *qd, struct qd_vm *vm)
{
	for (;;) {
		ssize_t n = recv(vm->probe_fd, vm->probe_buf + vm->probe_len,
				 sizeof(vm->probe_buf) - vm->probe_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == ENOTCONN))
			return;
		if (n <= 0) {
			probe_close(vm);
			qd_time_after_ms(&vm->probe_next, PROBE_INTERVAL_MS);
			return;
		}
		vm->probe_len += (size_t)n;
		size_t need = 16, off = 0;
		if (vm->vsock == QVMM_VSOCK_USER) {
			char *nl = memchr(vm->probe_buf, '\n', vm->probe_len);
			if (!nl) {
				if (vm->probe_len >= 32)
					probe_close(vm);
				return;
			}
			if (strncmp(vm->probe_buf, "OK ", 3) != 0) {
				probe_close(vm);
				qd_time_after_ms(&vm->probe_next, PROBE_INTERVAL_MS);
				return;
			}
			off = (size_t)(nl - vm->probe_buf) + 1;
		}
		if (vm->probe_len - off >= need) {
			became_running(qd, vm);
			return;
		}
		if (vm->probe_len == sizeof(vm->probe_buf)) {
			probe_close(vm);
			return;
		}
	}
}

static void halted(struct qd *qd, struct qd_vm *vm, const char *why);

void qd_vm_tick(struct qd *qd)
{
	qd_gui_tick(qd); /* GUI bridges of starting and running qubes */
	for (struct qd_vm *vm = qd->vms, *next; vm; vm = next) {
		next = vm->next;
		if (vm->notify_running) {
			vm->notify_running = false;
			if (vm->state == QD_RUNNING)
				notify(qd, vm, QD_WAIT_RUNNING, 0, NULL);
		}
		if (vm->state == QD_STARTING) {
			if (qd_time_passed(&vm->deadline)) {
				char msg[512], dn[QVMM_DOMAIN_NAME_MAX], e[256];
				snprintf(msg, sizeof(msg),
					 "%s did not answer within %u s of its start (console: %s/console-%s.log)",
					 vm->name, qd->cfg.start_timeout_s, qd->cfg.log_dir, vm->name);
				qd_log("%s", msg);
				snprintf(vm->fail_reason, sizeof(vm->fail_reason), "%s", msg);
				probe_close(vm);
				qvmm_domain_name(vm->name, dn);
				qvmm_domain_destroy(qd->conn, dn, e, sizeof(e));
				halted(qd, vm, msg);
				continue;
			}
			if (vm->probe_fd < 0 && qd_time_passed(&vm->probe_next)) {
				probe_open(qd, vm);
				if (vm->probe_fd < 0)
					qd_time_after_ms(&vm->probe_next, PROBE_INTERVAL_MS);
			}
			if (vm->probe_fd >= 0)
				probe_poll(qd, vm);
		} else if (vm->state == QD_STOPPING && qd_time_passed(&vm->deadline)) {
			char msg[256];
			snprintf(msg, sizeof(msg), "%s did not shut down within %u s; kill it with 'qubectl kill %s'",
				 vm->name, qd->cfg.shutdown_timeout_s, vm->name);
			qd_log("%s", msg);
			vm->state = QD_RUNNING;
			notify(qd, vm, QD_WAIT_HALTED, -ETIMEDOUT, msg);
		}
	}
}

/* ---- stop ---- */

static void halted(struct qd *qd, struct qd_vm *vm, const char *why)
{
	enum qd_state was = vm->state;
	enum qdb_class cls = QDB_APPVM;
	struct qerr e;
	char dir[512], priv[600], rev[620], msg[256];

	if (was == QD_HALTED && vm->cleaned)
		return;
	probe_close(vm);
	stop_vsockd(vm);
	qd_gui_vm_stop(qd, vm); /* its windows go, and its GUI bridge */
	vm->state = QD_HALTED;
	remove_temporary(qd, vm);
	vm->cleaned = true;
	qdb_qube_class(qd->db, vm->name, &cls, &e);
	/* one kept revision of the private volume: its state before this run */
	if (cls != QDB_DISPVM && was != QD_STARTING && qd_vm_dir(qd, vm->name, dir, sizeof(dir)) == 0) {
		qd_path(priv, sizeof(priv), "%s/private.qcow2", dir);
		qd_path(rev, sizeof(rev), "%s/private.qcow2.rev1", dir);
		if (access(priv, F_OK) == 0 && qvmm_volume_snapshot(priv, rev, msg, sizeof(msg)) < 0)
			qd_log("%s: keeping a revision of the private volume failed: %s", vm->name, msg);
	}
	qd_log("%s halted%s%s", vm->name, why ? ": " : "", why ? why : "");
	qd_api_event(qd, vm->name, "domain-shutdown", NULL);
	qd->sysinfo_dirty = true;
	if (was == QD_STARTING)
		notify(qd, vm, QD_WAIT_RUNNING, -EIO, vm->fail_reason[0] ? vm->fail_reason : why);
	notify(qd, vm, QD_WAIT_HALTED, 0, NULL);
	if (cls == QDB_DISPVM) {
		char name[QD_NAME_MAX];
		snprintf(name, sizeof(name), "%s", vm->name);
		if (qdb_qube_remove(qd->db, name, &e) < 0)
			qd_log("disposable %s: removing it from the database failed: %s", name, e.msg);
		qd_vm_remove_storage(qd, name, &e);
		qd_api_event(qd, "dom0", "domain-delete", (const char *const[]){ "vm", name, NULL });
		qd_log("disposable %s destroyed", name);
		qd_vm_forget(qd, name);
	}
}

int qd_vm_shutdown(struct qd *qd, const char *name, bool force, struct qd_waiter *w, struct qerr *err)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);
	char dn[QVMM_DOMAIN_NAME_MAX], msg[512];

	if (strcmp(name, "dom0") == 0) {
		qd_err(err, "QubesVMError", "dom0 is the host: shut the host down instead");
		return -EINVAL;
	}
	if (!vm || vm->state == QD_HALTED) {
		qd_err(err, "QubesVMNotStartedError", "Domain is powered off: %s", name);
		return -ESRCH;
	}
	if (vm->state == QD_STOPPING || vm->state == QD_DYING) {
		/* on its way down already (a kill in progress): wait for it */
		add_waiter(vm, w);
		return 0;
	}
	qvmm_domain_name(name, dn);
	if (vm->state == QD_PAUSED && qvmm_domain_resume(qd->conn, dn, msg, sizeof(msg)) < 0) {
		qd_err(err, "QubesException", "%s: unpause before shutdown: %s", name, msg);
		return -EIO;
	}
	if (qvmm_domain_shutdown(qd->conn, dn, msg, sizeof(msg)) < 0) {
		qd_err(err, "QubesException", "%s: shutdown: %s", name, msg);
		return -EIO;
	}
	(void)force;
	probe_close(vm);
	if (vm->state == QD_STARTING)
		snprintf(vm->fail_reason, sizeof(vm->fail_reason), "%s was shut down while starting", name);
	vm->state = QD_STOPPING;
	qd_time_after_ms(&vm->deadline, qd->cfg.shutdown_timeout_s * 1000u);
	qd_log("shutting down %s", name);
	qd_api_event(qd, name, "domain-pre-shutdown", NULL);
	add_waiter(vm, w);
	return 0;
}

int qd_vm_kill(struct qd *qd, const char *name, struct qerr *err)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);
	char dn[QVMM_DOMAIN_NAME_MAX], msg[512];

	if (strcmp(name, "dom0") == 0) {
		qd_err(err, "QubesVMError", "dom0 is the host: it cannot be killed");
		return -EINVAL;
	}
	if (!vm || vm->state == QD_HALTED) {
		qd_err(err, "QubesVMNotStartedError", "Domain is powered off: %s", name);
		return -ESRCH;
	}
	qvmm_domain_name(name, dn);
	if (qvmm_domain_destroy(qd->conn, dn, msg, sizeof(msg)) < 0) {
		enum qvmm_state st;
		/* already gone is fine */
		if (qvmm_domain_state(qd->conn, dn, &st) < 0 || st != QVMM_HALTED) {
			qd_err(err, "QubesException", "%s: kill: %s", name, msg);
			return -EIO;
		}
	}
	if (vm->state == QD_STARTING)
		snprintf(vm->fail_reason, sizeof(vm->fail_reason), "%s was killed while starting", name);
	halted(qd, vm, "killed");
	return 0;
}

int qd_vm_kill_async(struct qd *qd, const char *name, struct qerr *err)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);

	if (!vm || vm->state == QD_HALTED) {
		qd_err(err, "QubesVMNotStartedError", "Domain is powered off: %s", name);
		return -ESRCH;
	}
	if (vm->state == QD_DYING)
		return 0; /* already on its way */
	if (vm->state == QD_STARTING)
		snprintf(vm->fail_reason, sizeof(vm->fail_reason), "%s was killed while starting", name);
	probe_close(vm);
	vm->state = QD_DYING;
	if (qd_worker_destroy(name) < 0)
		return qd_vm_kill(qd, name, err);
	return 0;
}

void qd_vm_destroyed(struct qd *qd, const char *name, int r, const char *msg)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);
	char dn[QVMM_DOMAIN_NAME_MAX];
	enum qvmm_state st;

	if (!vm || vm->state == QD_HALTED)
		return; /* libvirt's event came first */
	qvmm_domain_name(name, dn);
	if (r < 0 && qd->conn && qvmm_domain_state(qd->conn, dn, &st) == 0 && st != QVMM_HALTED) {
		qd_log("%s: kill failed: %s; it keeps running", name, msg);
		vm->state = st == QVMM_PAUSED ? QD_PAUSED : QD_RUNNING;
		return;
	}
	halted(qd, vm, "killed");
}

int qd_vm_pause(struct qd *qd, const char *name, bool pause, struct qerr *err)
{
	struct qd_vm *vm = qd_vm_get(qd, name, false);
	char dn[QVMM_DOMAIN_NAME_MAX], msg[512];
	int r;

	if (!vm || (pause && vm->state != QD_RUNNING) || (!pause && vm->state != QD_PAUSED)) {
		qd_err(err, pause ? "QubesVMNotRunningError" : "QubesVMNotPausedError", "%s is %s", name,
		       qd_state_name(vm ? vm->state : QD_HALTED));
		return -EINVAL;
	}
	qvmm_domain_name(name, dn);
	r = pause ? qvmm_domain_pause(qd->conn, dn, msg, sizeof(msg))
		  : qvmm_domain_resume(qd->conn, dn, msg, sizeof(msg));
	if (r < 0) {
		qd_err(err, "QubesException", "%s: %s: %s", name, pause ? "pause" : "unpause", msg);
		return r;
	}
	vm->state = pause ? QD_PAUSED : QD_RUNNING;
	qd_api_event(qd, name, pause ? "domain-paused" : "domain-unpaused", NULL);
	qd->sysinfo_dirty = true;
	return 0;
}

/* ---- disposables ---- */

int qd_dispvm_create(struct qd *qd, const char *dvm, char ret_name[QD_NAME_MAX], struct qerr *err)
{
	if (qd_preload_take(qd, dvm, ret_name) == 0)
		return 0;
	return qd_dispvm_new(qd, dvm, ret_name, err);
}

int qd_dispvm_new(struct qd *qd, const char *dvm, char ret_name[QD_NAME_MAX], struct qerr *err)
{
	char name[32], *flag = NULL, *label = NULL, ddir[512], dir[512], from[600], to[600], msg[512];
	enum qdb_class cls;
	int r;

	if (qdb_qube_class(qd->db, dvm, &cls, err) < 0)
		return -ENOENT;
	flag = prop(qd, dvm, "template_for_dispvms");
	if (cls != QDB_APPVM || !flag || strcmp(flag, "True") != 0) {
		free(flag);
		qd_err(err, "QubesException", "%s is not a template for disposables (template_for_dispvms)", dvm);
		return -EINVAL;
	}
	free(flag);
	if (qdb_dispvm_next_name(qd->db, name, err) < 0)
		return -ENOSPC;
	label = prop(qd, dvm, "label");
	r = qdb_qube_create(qd->db, name, QDB_DISPVM, dvm, label ? label : "red", err);
	free(label);
	if (r < 0)
		return r;
	qd_vm_dir(qd, dvm, ddir, sizeof(ddir));
	qd_vm_dir(qd, name, dir, sizeof(dir));
	qd_path(from, sizeof(from), "%s/private.qcow2", ddir);
	qd_path(to, sizeof(to), "%s/private.qcow2", dir);
	char rdir[512];
	if (run_dir(qd, name, rdir, sizeof(rdir)) < 0 || qd_mkdir_p(rdir, 0755) < 0 || qd_mkdir_p(dir, 0711) < 0 ||
	    qvmm_volume_overlay(to, from, msg, sizeof(msg)) < 0) {
		struct qerr e;
		qd_err(err, "QubesException", "disposable %s: private overlay on %s: %s", name, from, msg);
		qdb_qube_remove(qd->db, name, &e);
		qd_rm_rf(dir);
		return -EIO;
	}
	qd_api_event(qd, "dom0", "domain-add", (const char *const[]){ "vm", name, NULL });
	qd->sysinfo_dirty = true;
	memcpy(ret_name, name, QD_NAME_MAX);
	return 0;
}

/* ---- libvirt events, adoption, reconnection ---- */

static struct qd_vm *vm_by_domain(struct qd *qd, const char *domain)
{
	size_t pl = strlen(QVMM_DOMAIN_PREFIX);

	if (strncmp(domain, QVMM_DOMAIN_PREFIX, pl) != 0)
		return NULL;
	return qd_vm_get(qd, domain + pl, false);
}

void qd_vm_handle_events(struct qd *qd)
{
	struct qvmm_event ev;

	while (qd->conn && qvmm_event_next(qd->conn, &ev) == 0) {
		struct qd_vm *vm;

		if (ev.type == QVMM_EV_CONN_LOST) {
			qd_log("lost the connection to libvirt (%s): reconnecting", qd->cfg.libvirt_uri);
			qd_now(&qd->reconnect_at);
			continue;
		}
		vm = vm_by_domain(qd, ev.domain);
		if (!vm)
			continue;
		switch (ev.type) {
		case QVMM_EV_STOPPED:
		case QVMM_EV_CRASHED:
			if (vm->state != QD_HALTED)
				halted(qd, vm, ev.type == QVMM_EV_CRASHED ? "its QEMU crashed" : NULL);
			break;
		case QVMM_EV_PAUSED:
			if (vm->state == QD_RUNNING)
				vm->state = QD_PAUSED;
			break;
		case QVMM_EV_RESUMED:
			if (vm->state == QD_PAUSED)
				vm->state = QD_RUNNING;
			break;
		default:
			break;
		}
	}
}

static void read_runtime(struct qd *qd, struct qd_vm *vm)
{
	char rdir[512], path[600], line[256];
	FILE *f;

	run_dir(qd, vm->name, rdir, sizeof(rdir));
	qd_path(path, sizeof(path), "%s/runtime", rdir);
	f = fopen(path, "re");
	vm->vsock = qd->vsock;
	vm->accel = qd->accel;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		int pid;
		long long t;
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "vsock=", 6) == 0)
			qvmm_vsock_parse(line + 6, &vm->vsock);
		else if (strncmp(line, "accel=", 6) == 0)
			qvmm_accel_parse(line + 6, &vm->accel);
		else if (sscanf(line, "vsockd_pid=%d", &pid) == 1 && pid > 0)
			vm->vsockd_pid = pid;
		else if (sscanf(line, "started=%lld", &t) == 1)
			vm->started = (time_t)t;
	}
	fclose(f);
	if (vm->vsockd_pid > 0) {
		/* only if it still is qube-vsockd (the pid may have been reused) */
		char exe[64], target[4096];
		ssize_t n;
		snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)vm->vsockd_pid);
		n = readlink(exe, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strstr(target, "qube-vsockd"))
				vm->vsockd_pidfd = (int)syscall(SYS_pidfd_open, vm->vsockd_pid, 0);
		}
		if (vm->vsockd_pidfd < 0)
			vm->vsockd_pid = 0;
	}
}

int qd_vm_adopt_all(struct qd *qd)
{
	struct qvmm_owned *owned = NULL;
	size_t n = 0;
	char **names = NULL;
	size_t nn = 0;
	struct qerr e;
	int r;

	r = qvmm_domain_list_ours(qd->conn, &owned, &n);
	if (r < 0) {
		qd_log("listing libvirt's domains failed: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		struct qd_vm *vm;
		char dn[QVMM_DOMAIN_NAME_MAX], msg[256], *uuid;

		if (owned[i].owner[0] && strcmp(owned[i].owner, qd->instance) != 0)
			continue; /* another qubed's (its own state directory) */
		if (!qdb_qube_exists(qd->db, owned[i].qube)) {
			qd_log("domain %s is one of ours but qube %s is not in the database: destroying it",
			       owned[i].domain, owned[i].qube);
			qvmm_domain_destroy(qd->conn, owned[i].domain, msg, sizeof(msg));
			continue;
		}
		uuid = prop(qd, owned[i].qube, "uuid");
		if (!uuid || strcmp(uuid, owned[i].uuid) != 0) {
			qd_log("domain %s has uuid %s, qube %s has %s: not ours, left alone", owned[i].domain,
			       owned[i].uuid, owned[i].qube, uuid ? uuid : "none");
			free(uuid);
			continue;
		}
		free(uuid);
		vm = qd_vm_get(qd, owned[i].qube, true);
		if (!vm)
			continue;
		if (vm->state == QD_RUNNING || vm->state == QD_PAUSED || vm->state == QD_STARTING ||
		    vm->state == QD_STOPPING) {
			/* known already (a libvirt reconnect): keep our view */
			vm->state = owned[i].state == QVMM_PAUSED ? QD_PAUSED : vm->state == QD_PAUSED ? QD_RUNNING : vm->state;
			continue;
		}
		vm->cid = prop_uint(qd, vm->name, "cid", 0);
		read_runtime(qd, vm);
		vm->state = owned[i].state == QVMM_PAUSED ? QD_PAUSED : QD_RUNNING;
		vm->cleaned = false;
		qvmm_domain_name(vm->name, dn);
		qd_log("adopted running %s (%s, vsock %s%s)", vm->name, qd_state_name(vm->state),
		       qvmm_vsock_to_string(vm->vsock), vm->vsockd_pid > 0 ? ", qube-vsockd found" : "");
	}
	/* ours that libvirt no longer runs: halted (after a reconnect) */
	for (struct qd_vm *vm = qd->vms, *next; vm; vm = next) {
		bool found = false;
		next = vm->next;
		for (size_t i = 0; i < n; i++)
			if (strcmp(owned[i].qube, vm->name) == 0)
				found = true;
		if (!found && vm->state != QD_HALTED)
			halted(qd, vm, "its domain is gone");
	}
	free(owned);
	/* leftovers of qubes that are not running: temporary volumes, and
	 * disposables (a disposable that is not running is destroyed) */
	if (qdb_qube_list(qd->db, &names, &nn, &e) == 0) {
		for (size_t i = 0; i < nn; i++) {
			enum qdb_class cls;
			struct qd_vm *vm = qd_vm_get(qd, names[i], false);
			if (vm && vm->state != QD_HALTED)
				continue;
			if (qdb_qube_class(qd->db, names[i], &cls, &e) < 0 || cls == QDB_ADMINVM)
				continue;
			vm = qd_vm_get(qd, names[i], true);
			if (!vm)
				continue;
			char rdir[512];
			/* RUN may be a fresh tmpfs after a reboot */
			if (run_dir(qd, names[i], rdir, sizeof(rdir)) == 0)
				qd_mkdir_p(rdir, 0755);
			vm->cleaned = false;
			if (cls == QDB_DISPVM) {
				qd_log("disposable %s left over from before: destroying it", names[i]);
				vm->state = QD_DYING;
			}
			halted(qd, vm, cls == QDB_DISPVM ? "left over" : NULL);
		}
		qdb_strv_free(names, nn);
	}
	qd_preload_adopt(qd);
	qd->sysinfo_dirty = true;
	return 0;
}

void qd_vm_reconnect(struct qd *qd)
{
	char msg[512];

	if (qd->conn && qvmm_conn_alive(qd->conn))
		return;
	if (!qd_time_passed(&qd->reconnect_at))
		return;
	if (qd->conn) {
		qd_watch_del(qd, &qd->event_watch);
		qd_worker_drain();
		qvmm_conn_free(qd->conn);
		qd->conn = NULL;
	}
	if (qvmm_connect(qd->cfg.libvirt_uri, &qd->conn, msg, sizeof(msg)) < 0) {
		static unsigned fails;
		if (fails++ % 30 == 0)
			qd_log("cannot connect to libvirt (%s): %s; retrying every second", qd->cfg.libvirt_uri, msg);
		qd->conn = NULL;
		qd_time_after_ms(&qd->reconnect_at, 1000);
		return;
	}
	qd_log("connected to libvirt (%s)", qd->cfg.libvirt_uri);
	qd_worker_set_conn(qd->conn, qd->cfg.libvirt_uri);
	extern void qd_on_libvirt_event(struct qd * qd, struct qd_watch * w, uint32_t events);
	qd_watch_add(qd, &qd->event_watch, qvmm_event_fd(qd->conn), 0x001 /* EPOLLIN */, qd_on_libvirt_event, NULL);
	qd_vm_adopt_all(qd);
}
