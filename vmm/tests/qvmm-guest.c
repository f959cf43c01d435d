// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm with a real libvirtd, QEMU and guest kernel (run by
 * qvmm-guest-test.sh inside a private mount namespace, with a libvirtd
 * of its own that it may kill).
 *
 *   qvmm-guest IMAGE_DIR SCRATCH QUBE_VSOCKD HYBRID_WAIT RESTART_CMD
 *
 * Boot 1: volumes, qube-vsockd, qvmm_domain_xml, qvmm_domain_start;
 *   STARTED event; the agent answers through qube-vsockd; list_ours finds
 *   it (QEMU's pid alive); pause/resume with their events and states;
 *   libvirtd is killed (SIGKILL): CONN_LOST and alive false; RESTART_CMD
 *   starts a new libvirtd; a new connection adopts the running domain
 *   (list_ours); ACPI shutdown: STOPPED (detail shutdown), clean poweroff
 *   in the console log, qube-vsockd exits 0.
 * Boot 2: start, STARTED, destroy: STOPPED (detail destroyed), qube-vsockd
 *   exits 0, state HALTED, list_ours no longer has it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "qvmm.h"

extern char **environ;

static const char *image_dir, *scratch, *vsockd_path, *hybrid_wait, *restart_cmd;
static char domain[QVMM_DOMAIN_NAME_MAX];
static char qube[32];
static const char *uuid = "6f1d8c2a-3b4e-4f50-9a61-7c8d9e0f1a2b";
static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
			goto fail;                                         \
		}                                                          \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

/* waits for an event of type on our domain; others are printed and skipped */
static int wait_event(struct qvmm_conn *c, enum qvmm_event_type type, double timeout,
		      struct qvmm_event *ret)
{
	double end = now() + timeout;

	for (;;) {
		struct qvmm_event ev;

		while (qvmm_event_next(c, &ev) == 0) {
			printf("  event: domain '%s' type %d detail %d\n", ev.domain, ev.type, ev.detail);
			if (ev.type == type && (type == QVMM_EV_CONN_LOST || strcmp(ev.domain, domain) == 0)) {
				if (ret)
					*ret = ev;
				return 0;
			}
		}
		double left = end - now();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = qvmm_event_fd(c), .events = POLLIN };
		poll(&p, 1, (int)(left * 1000) + 1);
	}
}

static int run_argv(char *const argv[])
{
	pid_t pid;
	int st;

	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int agent_answers(const char *uds, unsigned timeout)
{
	char t[16];

	snprintf(t, sizeof(t), "%u", timeout);
	char *argv[] = { "/usr/bin/env", "python3", (char *)hybrid_wait, (char *)uds, "512", t, NULL };
	return run_argv(argv);
}

/* waits for a child to exit; its status, or -1 on timeout */
static int wait_child(pid_t pid, double timeout)
{
	double end = now() + timeout;
	int st;

	while (now() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(50000);
	}
	return -1;
}

static bool file_has(const char *path, const char *needle)
{
	char buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static bool find_ours(struct qvmm_conn *c, struct qvmm_owned *ret)
{
	struct qvmm_owned *list;
	size_t n;
	bool found = false;

	if (qvmm_domain_list_ours(c, &list, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		printf("  ours: %s qube %s uuid %s pid %d state %d\n", list[i].domain, list[i].qube,
		       list[i].uuid, (int)list[i].pid, list[i].state);
		if (strcmp(list[i].domain, domain) == 0) {
			*ret = list[i];
			found = true;
		}
	}
	free(list);
	return found;
}

struct boot {
	char *vu_sock, *uds, *console, *vsockd_log, *xml;
	pid_t vsockd;
	double spawn_s; /* time qvmm_vsockd_spawn took */
};

static int boot_start(struct qvmm_conn *c, struct boot *b, int n, enum qvmm_accel accel,
		      const struct qvmm_disk *disks, size_t n_disks)
{
	char err[1024], name[64];
	char *kernel = path_in(image_dir, "vmlinux"), *initrd = path_in(image_dir, "initramfs.cpio.gz");
	char cmdline[256];
	struct stat st;
	int r;

	if (stat(kernel, &st) < 0) {
		free(kernel);
		kernel = path_in(image_dir, "vmlinuz");
	}
	snprintf(name, sizeof(name), "vu%d.sock", n);
	b->vu_sock = path_in(scratch, name);
	snprintf(name, sizeof(name), "vsock%d", n);
	b->uds = path_in(scratch, name);
	snprintf(name, sizeof(name), "console%d.log", n);
	b->console = path_in(scratch, name);
	snprintf(name, sizeof(name), "vsockd%d.log", n);
	b->vsockd_log = path_in(scratch, name);

	double t0 = now();
	r = qvmm_vsockd_spawn(vsockd_path, b->vu_sock, 3, b->uds, b->vsockd_log, &b->vsockd, err,
			      sizeof(err));
	b->spawn_s = now() - t0;
	if (r < 0) {
		fprintf(stderr, "FAIL: qvmm_vsockd_spawn: %s\n", err);
		goto out;
	}
	/* the contract: qube.name, qube.rw (private is vda without a root disk) */
	snprintf(cmdline, sizeof(cmdline), "console=ttyS0 panic=-1 quiet qube.name=%s qube.rw=/dev/vda",
		 qube);
	struct qvmm_domain_spec s = {
		.name = domain, .uuid = uuid, .qube_name = qube, .label = "red", .qube_class = "AppVM",
		.memory_mib = 256, .vcpus = 1, .accel = accel,
		.kernel = kernel, .initrd = initrd, .cmdline = cmdline,
		.disks = disks, .n_disks = n_disks,
		.vsock = QVMM_VSOCK_USER, .vhost_user_socket = b->vu_sock,
		.console_log = b->console,
	};
	r = qvmm_domain_xml(&s, &b->xml, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "FAIL: qvmm_domain_xml: %s\n", err);
		goto out;
	}
	r = qvmm_domain_start(c, b->xml, false, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "FAIL: qvmm_domain_start: %s\n--- XML ---\n%s\n", err, b->xml);
		goto out;
	}
out:
	free(kernel);
	free(initrd);
	return r;
}

static void boot_free(struct boot *b)
{
	free(b->vu_sock);
	free(b->uds);
	free(b->console);
	free(b->vsockd_log);
	free(b->xml);
}

static void dump(const char *path)
{
	char cmd[512];

	fprintf(stderr, "--- %s ---\n", path);
	snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", path);
	if (system(cmd) != 0) {
		/* nothing to show */
	}
}


/* ---- benchmark: libvirt start vs QEMU started directly ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* one libvirt run: seconds from qvmm_domain_start to the agent answering */
static double bench_libvirt(struct qvmm_conn *c, int run, const struct qvmm_disk *disks)
{
	struct boot b = { 0 };
	double t = -1, t0;
	int r;

	/* boot_start spawns qube-vsockd first; time only from the start call */
	t0 = now();
	if (boot_start(c, &b, 100 + run, QVMM_ACCEL_TCG, disks, 1) < 0)
		goto out;
	double started = now();
	r = agent_answers(b.uds, 180);
	if (r != 0) {
		fprintf(stderr, "bench: agent did not answer (libvirt run %d)\n", run);
		goto out;
	}
	t = now() - t0 - b.spawn_s;
	printf("  libvirt run %d: %.2f s (qvmm_domain_start %.2f s)\n", run, t, started - t0 - b.spawn_s);
out:
	qvmm_domain_destroy(c, domain, NULL, 0);
	wait_event(c, QVMM_EV_STOPPED, 30, NULL);
	if (b.vsockd > 0 && wait_child(b.vsockd, 15) < 0) {
		kill(b.vsockd, SIGKILL);
		waitpid(b.vsockd, NULL, 0);
	}
	boot_free(&b);
	return t;
}

/* one direct run: tests/lib/qemu-guest.sh, same kernel, initramfs, disk, memory */
static double bench_direct(const char *qemu_guest, int run, const char *disk)
{
	char err[512], name[64], cmdline[256];
	char *vu, *uds, *log, *vlog;
	char *kernel = path_in(image_dir, "vmlinux"), *initrd = path_in(image_dir, "initramfs.cpio.gz");
	struct stat st;
	pid_t vpid = 0, qpid = 0;
	double t = -1, t0;

	if (stat(kernel, &st) < 0) {
		free(kernel);
		kernel = path_in(image_dir, "vmlinuz");
	}
	snprintf(name, sizeof(name), "dvu%d.sock", run);
	vu = path_in(scratch, name);
	snprintf(name, sizeof(name), "dvsock%d", run);
	uds = path_in(scratch, name);
	snprintf(name, sizeof(name), "dconsole%d.log", run);
	log = path_in(scratch, name);
	snprintf(name, sizeof(name), "dvsockd%d.log", run);
	vlog = path_in(scratch, name);
	if (qvmm_vsockd_spawn(vsockd_path, vu, 3, uds, vlog, &vpid, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench: %s\n", err);
		goto out;
	}
	snprintf(cmdline, sizeof(cmdline), "qube.name=%s qube.rw=/dev/vda", qube);
	char *argv[] = { (char *)qemu_guest, "--kernel", kernel, "--initrd", initrd,
			 "--serial-log", log, "--memory", "256", "--append", cmdline,
			 "--disk", (char *)disk, "--disk-format", "qcow2",
			 "--vhost-user-vsock", vu, NULL };
	t0 = now();
	if (posix_spawn(&qpid, argv[0], NULL, NULL, argv, environ) != 0) {
		qpid = 0;
		goto out;
	}
	if (agent_answers(uds, 180) != 0) {
		fprintf(stderr, "bench: agent did not answer (direct run %d)\n", run);
		goto out;
	}
	t = now() - t0;
	printf("  direct  run %d: %.2f s\n", run, t);
out:
	if (qpid > 0) {
		kill(qpid, SIGTERM);
		waitpid(qpid, NULL, 0);
	}
	if (vpid > 0 && wait_child(vpid, 15) < 0) {
		kill(vpid, SIGKILL);
		waitpid(vpid, NULL, 0);
	}
	free(vu);
	free(uds);
	free(log);
	free(vlog);
	free(kernel);
	free(initrd);
	return t;
}

static int bench_main(int runs, const char *qemu_guest)
{
	struct qvmm_conn *c = NULL;
	char err[1024];
	double lv[64], dq[64];
	int ok = 0;

	if (runs < 1 || runs > 64)
		return 2;
	if (qvmm_connect(NULL, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	char *priv = path_in(scratch, "bench-private.qcow2");
	if (qvmm_volume_create(priv, 64 << 20, true, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	struct qvmm_disk disks[] = { { priv, "qcow2", false } };
	printf("== warm-up (not counted): one run each\n");
	if (bench_libvirt(c, 0, disks) < 0 || bench_direct(qemu_guest, 0, priv) < 0)
		goto out;
	printf("== %d runs each, alternating\n", runs);
	for (int i = 1; i <= runs; i++) {
		lv[i - 1] = bench_libvirt(c, i, disks);
		dq[i - 1] = bench_direct(qemu_guest, i, priv);
		if (lv[i - 1] < 0 || dq[i - 1] < 0)
			goto out;
	}
	/* each pair ran back to back: its ratio is less exposed to the
	 * machine's load drifting over the whole benchmark */
	double pr[64];
	for (int i = 0; i < runs; i++)
		pr[i] = lv[i] / dq[i];
	double mr = median(pr, runs);
	double ml = median(lv, runs), md = median(dq, runs);
	printf("start to agent answering, median of %d (TCG, 256 MiB, 1 vCPU):\n"
	       "  libvirt (qvmm_domain_start): %.2f s\n"
	       "  QEMU direct (qemu-guest.sh): %.2f s\n"
	       "  ratio of the medians libvirt/direct: %.3f\n"
	       "  median of the per-pair ratios: %.3f (target <= 1.2)\n",
	       runs, ml, md, ml / md, mr);
	ok = 1;
out:
	qvmm_conn_free(c);
	free(priv);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct qvmm_conn *c = NULL, *c2 = NULL;
	struct qvmm_event ev;
	struct qvmm_owned o;
	enum qvmm_state state;
	enum qvmm_accel accel;
	char err[1024], why[256];
	struct boot b1 = { 0 }, b2 = { 0 };
	double t0;
	int r;

	int bench_runs = 0;
	const char *qemu_guest = NULL;
	if (argc == 9 && strcmp(argv[6], "--bench") == 0) {
		bench_runs = atoi(argv[7]);
		qemu_guest = argv[8];
		argc = 6;
	}
	if (argc != 6) {
		fprintf(stderr, "usage: qvmm-guest IMAGE_DIR SCRATCH QUBE_VSOCKD HYBRID_WAIT RESTART_CMD"
				" [--bench RUNS QEMU_GUEST_SH]\n");
		return 2;
	}
	image_dir = argv[1];
	scratch = argv[2];
	vsockd_path = argv[3];
	hybrid_wait = argv[4];
	restart_cmd = argv[5];
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(qube, sizeof(qube), "vmmtest%d", (int)getpid() % 100000);
	if (qvmm_domain_name(qube, domain) < 0)
		return 2;
	if (bench_runs)
		return bench_main(bench_runs, qemu_guest);

	r = qvmm_connect(NULL, &c, err, sizeof(err));
	CHECK(r == 0, "qvmm_connect: %s", err);

	/* the choice qubed makes with setting "auto" */
	bool kvm_ok = qvmm_kvm_usable("/dev/kvm", why, sizeof(why));
	bool lv_kvm = qvmm_libvirt_has_kvm(c);
	CHECK(qvmm_accel_choose(QVMM_ACCEL_AUTO, kvm_ok, lv_kvm, &accel) == 0, "accel choice");
	printf("== accel: %s (kvm probe: %s; libvirt offers kvm: %s)\n",
	       qvmm_accel_to_string(accel), why, lv_kvm ? "yes" : "no");

	char *priv = path_in(scratch, "private.qcow2"), *vol = path_in(scratch, "volatile.qcow2");
	CHECK(qvmm_volume_create(priv, 64 << 20, true, err, sizeof(err)) == 0, "private: %s", err);
	CHECK(qvmm_volume_create(vol, 32 << 20, false, err, sizeof(err)) == 0, "volatile: %s", err);
	struct qvmm_disk disks[] = { { priv, "qcow2", false }, { vol, "qcow2", false } };

	printf("== boot 1: start\n");
	t0 = now();
	CHECK(boot_start(c, &b1, 1, accel, disks, 2) == 0, "boot 1 start");
	printf("  qube-vsockd spawned and qvmm_domain_start returned after %.1f s\n", now() - t0);
	CHECK(wait_event(c, QVMM_EV_STARTED, 30, &ev) == 0, "no STARTED event");
	CHECK(qvmm_domain_state(c, domain, &state) == 0 && state == QVMM_RUNNING, "state not RUNNING");
	/* drained: the event fd is not readable any more */
	while (qvmm_event_next(c, &ev) == 0)
		printf("  event: domain '%s' type %d detail %d\n", ev.domain, ev.type, ev.detail);
	{
		struct pollfd p = { .fd = qvmm_event_fd(c), .events = POLLIN };
		CHECK(poll(&p, 1, 0) == 0, "event fd readable with an empty queue");
	}
	r = agent_answers(b1.uds, 180);
	CHECK(r == 0, "agent did not answer through qube-vsockd (hybrid-wait exit %d)", r);
	printf("== agent answered %.1f s after qvmm_domain_start\n", now() - t0);
	CHECK(file_has(b1.console, "qube-init: acpid started"), "no acpid in the console log");
	CHECK(file_has(b1.console, "mounted /dev/vda on /rw"), "private disk not mounted");
	CHECK(find_ours(c, &o), "list_ours does not have %s", domain);
	CHECK(strcmp(o.qube, qube) == 0 && strcasecmp(o.uuid, uuid) == 0, "list_ours: wrong qube/uuid");
	CHECK(o.pid > 1 && kill(o.pid, 0) == 0, "list_ours: no live QEMU pid (%d)", (int)o.pid);

	printf("== pause/resume\n");
	CHECK(qvmm_domain_pause(c, domain, err, sizeof(err)) == 0, "pause: %s", err);
	CHECK(wait_event(c, QVMM_EV_PAUSED, 10, NULL) == 0, "no PAUSED event");
	CHECK(qvmm_domain_state(c, domain, &state) == 0 && state == QVMM_PAUSED, "state not PAUSED");
	CHECK(qvmm_domain_resume(c, domain, err, sizeof(err)) == 0, "resume: %s", err);
	CHECK(wait_event(c, QVMM_EV_RESUMED, 10, NULL) == 0, "no RESUMED event");
	CHECK(qvmm_domain_state(c, domain, &state) == 0 && state == QVMM_RUNNING, "state not RUNNING");
	r = qvmm_domain_start(c, b1.xml, false, err, sizeof(err));
	CHECK(r < 0, "a second start of a running domain succeeded");
	printf("  second start refused: %s\n", err);

	printf("== libvirtd killed\n");
	{
		FILE *f = fopen("/run/libvirt/libvirtd.pid", "r");
		int lpid = 0;
		CHECK(f && fscanf(f, "%d", &lpid) == 1 && lpid > 1, "no libvirtd pid file");
		fclose(f);
		CHECK(kill(lpid, SIGKILL) == 0, "kill libvirtd %d: %s", lpid, strerror(errno));
		t0 = now();
		CHECK(wait_event(c, QVMM_EV_CONN_LOST, 30, &ev) == 0, "no CONN_LOST event");
		printf("  CONN_LOST after %.2f s (reason %d)\n", now() - t0, ev.detail);
		CHECK(!qvmm_conn_alive(c), "qvmm_conn_alive still true");
		r = qvmm_domain_state(c, domain, &state);
		CHECK(r == -ENOTCONN, "state on a dead connection: %d", r);
	}
	qvmm_conn_free(c);
	c = NULL;
	r = qvmm_connect(NULL, &c2, err, sizeof(err));
	CHECK(r == -ECONNREFUSED && !c2 && strstr(err, "qemu:///system"),
	      "connect without libvirtd: %d '%s'", r, err);
	printf("  connect without libvirtd: %s\n", err);
	{
		char *rargv[] = { (char *)restart_cmd, NULL };
		CHECK(run_argv(rargv) == 0, "restart of libvirtd failed");
	}
	r = qvmm_connect(NULL, &c2, err, sizeof(err));
	CHECK(r == 0, "reconnect: %s", err);
	CHECK(qvmm_conn_alive(c2), "new connection not alive");
	CHECK(find_ours(c2, &o), "after the restart, list_ours does not have %s", domain);
	CHECK(o.state == QVMM_RUNNING, "adopted domain not running");
	CHECK(agent_answers(b1.uds, 60) == 0, "agent does not answer after the libvirtd restart");

	printf("== ACPI shutdown\n");
	t0 = now();
	CHECK(qvmm_domain_shutdown(c2, domain, err, sizeof(err)) == 0, "shutdown: %s", err);
	CHECK(wait_event(c2, QVMM_EV_STOPPED, 90, &ev) == 0, "no STOPPED event after shutdown");
	printf("  stopped %.1f s after the power button (detail %d)\n", now() - t0, ev.detail);
	CHECK(ev.detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, "STOPPED detail %d, not shutdown",
	      ev.detail);
	CHECK(file_has(b1.console, "qube-init: power button"), "no power button in the console log");
	CHECK(file_has(b1.console, "qube-init: poweroff (status 0)"), "no clean poweroff in the log");
	CHECK(!file_has(b1.console, "cannot unmount"), "/rw not unmounted cleanly");
	r = wait_child(b1.vsockd, 15);
	CHECK(r == 0, "qube-vsockd did not exit 0 after QEMU went (%d)", r);
	b1.vsockd = 0;
	CHECK(qvmm_domain_state(c2, domain, &state) == 0 && state == QVMM_HALTED, "state not HALTED");

	printf("== boot 2: start, destroy\n");
	CHECK(boot_start(c2, &b2, 2, accel, disks, 2) == 0, "boot 2 start");
	CHECK(wait_event(c2, QVMM_EV_STARTED, 30, NULL) == 0, "no STARTED event (boot 2)");
	CHECK(agent_answers(b2.uds, 180) == 0, "agent did not answer (boot 2)");
	CHECK(qvmm_domain_destroy(c2, domain, err, sizeof(err)) == 0, "destroy: %s", err);
	CHECK(wait_event(c2, QVMM_EV_STOPPED, 30, &ev) == 0, "no STOPPED event after destroy");
	CHECK(ev.detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED, "STOPPED detail %d, not destroyed",
	      ev.detail);
	r = wait_child(b2.vsockd, 15);
	CHECK(r == 0, "qube-vsockd did not exit 0 after destroy (%d)", r);
	b2.vsockd = 0;
	CHECK(qvmm_domain_state(c2, domain, &state) == 0 && state == QVMM_HALTED, "state not HALTED");
	CHECK(!find_ours(c2, &o), "list_ours still has %s", domain);
	r = qvmm_domain_destroy(c2, domain, err, sizeof(err));
	CHECK(r == -ENOENT, "destroy of a gone domain: %d (%s)", r, err);

	printf("PASS\n");
	qvmm_conn_free(c2);
	boot_free(&b1);
	boot_free(&b2);
	free(priv);
	free(vol);
	return 0;
fail:
	if (b1.console)
		dump(b1.console);
	if (b1.vsockd_log)
		dump(b1.vsockd_log);
	if (b2.console)
		dump(b2.console);
	if (b1.vsockd > 0)
		kill(b1.vsockd, SIGTERM);
	if (b2.vsockd > 0)
		kill(b2.vsockd, SIGTERM);
	qvmm_conn_free(c);
	qvmm_conn_free(c2);
	return 1;
}
