/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: the host daemon.  One process, one epoll loop, no threads of its
 * own (libqvmm runs libvirt's event loop in a thread and hands events over
 * through a file descriptor).  It owns the qube database (libqdb), turns
 * qubes into libvirt domains (libqvmm), supervises qube-broker, serves the
 * broker's start interface and the admin API (wire-compatible with Qubes
 * OS 4.3's qubesd socket).
 */
#ifndef QUBED_H
#define QUBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "qdb.h"
#include "qvmm.h"

#define QD_NAME_MAX 32
#define QD_REQUEST_MAX 65536u               /* header + payload of an ordinary call */
#define QD_IMPORT_SMALL_MAX (512ull << 20)  /* kernel, initrd */
#define QD_IMPORT_ROOT_MAX (64ull << 30)    /* root image */

/* ---- configuration (qubed.conf, then the command line) ---- */
struct qd_config {
	char *state_dir;      /* /var/lib/qube: qubes.db, qubes/NAME/ volumes */
	char *run_dir;        /* /run/qube: sockets, qubes/NAME/ (broker transport), system-info */
	char *log_dir;        /* /var/log/qube: broker log, console logs */
	char *socket_path;    /* admin API; default RUN/qubed.sock */
	char *socket_group;   /* group allowed besides root; "qube" */
	char *libvirt_uri;    /* qemu:///system */
	char *broker_path;    /* qube-broker; empty: no broker */
	char *host_agent_path; /* host-side service runner; empty: none */
	char *vsockd_path;    /* qube-vsockd */
	char *policy_dir;
	char *host_rpc_dir;
	char *host_service_user; /* host services run as this user ("nobody") */
	char *dev_kvm;        /* /dev/kvm (tests point it elsewhere) */
	char *dev_vhost_vsock;
	char *gui_control;     /* qube-compositor's control socket; empty: no GUI (gui.c) */
	char *gui_user;        /* the session user, NAME or UID:GID; empty: the control socket's owner */
	char *gui_bridge_path; /* qube-gui-bridge */
	char *gui_waypipe_path; /* waypipe, for the bridge */
	enum qvmm_accel accel;
	enum qvmm_vsock vsock;
	unsigned start_timeout_s;    /* domain start to agent answering */
	unsigned shutdown_timeout_s; /* ACPI shutdown before qubed gives up waiting */
	uint64_t private_size;       /* default private volume size, bytes */
	uint64_t volatile_size;
	uint64_t preload_memory;     /* bytes of guest memory preloaded disposables may hold */
};

int qd_config_defaults(struct qd_config *c);
/* Reads FILE ("key = value" lines, '#' comments); an error names FILE:LINE.
 * A missing file is fine when !required. */
int qd_config_load(struct qd_config *c, const char *file, bool required, char *err, size_t errlen);
void qd_config_finish(struct qd_config *c);

/* ---- runtime state of each qube ---- */
enum qd_state { QD_HALTED, QD_STARTING, QD_RUNNING, QD_PAUSED, QD_STOPPING, QD_DYING };
const char *qd_state_name(enum qd_state s); /* Qubes' names: Halted, Transient, Running, ... */

struct qd;
struct qd_call;

/* something waiting for a qube to reach a state: an API call or a start
 * interface request */
struct qd_waiter {
	struct qd_waiter *next;
	enum { QD_WAIT_RUNNING, QD_WAIT_HALTED } until;
	void (*done)(struct qd *qd, void *ctx, int status, const char *msg);
	void *ctx;
};

struct qd_vm {
	struct qd_vm *next;
	char name[QD_NAME_MAX];
	enum qd_state state;
	uint32_t cid;
	enum qvmm_vsock vsock;
	enum qvmm_accel accel;
	pid_t vsockd_pid;
	int vsockd_pidfd;
	/* agent probe while STARTING */
	int probe_fd;
	char probe_buf[64];
	size_t probe_len;
	struct timespec probe_next;
	struct timespec deadline;
	time_t started;
	char fail_reason[600];
	struct qd_waiter *waiters;
	bool destroy_when_halted; /* a disposable: remove it at stop */
	bool cleaned;             /* temporary volumes already removed */
	/* preloaded disposables (preload.c): a DispVM booted and paused for
	 * PRELOAD_OF, not handed to anyone yet; feature "preload-dispvm" in
	 * the database says so across restarts */
	bool preload;
	char preload_of[QD_NAME_MAX];
	bool just_taken;          /* handed out; the next qd_vm_start answers at once */
	bool notify_running;      /* qd_vm_tick tells the RUNNING waiters */
	struct timespec preload_begin;
	/* its GUI (gui.c): the qube-gui-bridge and the compositor's socket */
	struct qd_vm_gui {
		pid_t pid;            /* the bridge; 0: none */
		int pidfd;            /* valid while pid > 0 */
		bool own_child;       /* spawned by this qubed (reaped), not adopted */
		bool added;           /* QUBE-ADD answered during this run */
		bool noted;           /* the current failure was logged */
		unsigned restarts;
		struct timespec retry_at;
		char display[108];    /* the compositor's socket for the qube */
	} gui;
};

/* ---- the daemon ---- */
struct qd_watch;
typedef void (*qd_watch_fn)(struct qd *qd, struct qd_watch *w, uint32_t events);
struct qd_watch {
	int fd;
	qd_watch_fn fn;
	void *ctx;
};

struct qd {
	struct qd_config cfg;
	struct qdb *db;
	struct qvmm_conn *conn;
	int epfd;
	bool quit;
	struct qd_vm *vms;
	enum qvmm_accel accel;      /* resolved */
	enum qvmm_vsock vsock;      /* resolved */
	char accel_reason[256];
	char vsock_reason[256];
	struct timespec reconnect_at;
	struct qd_watch api_watch, start_watch, event_watch, signal_watch;
	int api_fd, start_fd;
	/* supervised children (broker, host agent) */
	struct qd_child {
		const char *what;
		pid_t pid;
		int pidfd;
		struct qd_watch watch;
		struct timespec restart_at;
		unsigned restarts;
	} broker, host_agent;
	/* admin.Events subscribers */
	struct qd_call *subscribers;
	bool sysinfo_dirty;
	char instance[37]; /* STATE/instance-id: the owner of our domains */
	/* preloaded disposables: no refill before this (a take pushes it) */
	struct timespec preload_hold;
	struct timespec preload_next_check;
	char preload_last_note[256];
};

/* loop */
int qd_watch_add(struct qd *qd, struct qd_watch *w, int fd, uint32_t events, qd_watch_fn fn, void *ctx);
int qd_watch_mod(struct qd *qd, struct qd_watch *w, uint32_t events);
void qd_watch_del(struct qd *qd, struct qd_watch *w);
void qd_now(struct timespec *ts);
bool qd_time_passed(const struct timespec *t);
void qd_time_after_ms(struct timespec *t, unsigned ms);

/* logging: "qubed: ..." on stderr with a time stamp */
void qd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* errors for the API */
void qd_err(struct qerr *e, const char *type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- paths ---- */
int qd_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int qd_mkdir_p(const char *path, mode_t mode);
int qd_rm_rf(const char *path);
int qd_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* STATE/instance-id, made on first use (a random uuid) */
int qd_instance_id(const char *state_dir, char ret[37]);

/* ---- images (image.c) ---- */
/* converts an imported image (raw or qcow2 without backing or data files)
 * to a standalone qcow2 at OUT */
int qd_image_import(const char *in, const char *out, char *err, size_t errlen);
/* runs argv (no shell), output to the log; returns the exit status or -errno */
int qd_run(char *const argv[], char *out, size_t outlen);

/* ---- admin API (api.c) ---- */
int qd_api_listen(struct qd *qd);
/* a qube's state changed: tell admin.Events subscribers */
void qd_api_event(struct qd *qd, const char *subject, const char *event, const char *const *kv);

/* ---- lifecycle (vm.c) ---- */
struct qd_vm *qd_vm_get(struct qd *qd, const char *name, bool create);
void qd_vm_forget(struct qd *qd, const char *name);
enum qd_state qd_vm_state(struct qd *qd, const char *name);
int qd_vm_start(struct qd *qd, const char *name, struct qd_waiter *w, struct qerr *err);
int qd_vm_shutdown(struct qd *qd, const char *name, bool force, struct qd_waiter *w, struct qerr *err);
int qd_vm_kill(struct qd *qd, const char *name, struct qerr *err);
int qd_vm_pause(struct qd *qd, const char *name, bool pause, struct qerr *err);
/* Kill without waiting for libvirt (worker.c): the qube is DYING at once
 * and halted once libvirt's event or the worker's result arrives. */
int qd_vm_kill_async(struct qd *qd, const char *name, struct qerr *err);
/* The worker's result for NAME's destroy (R 0 or a negative errno). */
void qd_vm_destroyed(struct qd *qd, const char *name, int r, const char *msg);
/* worker.c: one thread that destroys domains (libvirt only) */
int qd_worker_init(struct qd *qd);
void qd_worker_set_conn(struct qvmm_conn *c, const char *uri);
int qd_worker_destroy(const char *name);
void qd_worker_drain(void);
/* files of a qube: create its private volume (at create), remove everything (at remove) */
int qd_vm_create_storage(struct qd *qd, const char *name, struct qerr *err);
int qd_vm_remove_storage(struct qd *qd, const char *name, struct qerr *err);
int qd_vm_dir(struct qd *qd, const char *name, char *buf, size_t len);
/* creates a disposable from a template for dispvms; ret_name gets dispNNNN */
/* A disposable of DVM_TEMPLATE: a preloaded one if one is ready (resumed
 * and handed over: the next qd_vm_start of it succeeds at once), else a
 * new DispVM that still has to be started. */
int qd_dispvm_create(struct qd *qd, const char *dvm_template, char ret_name[QD_NAME_MAX], struct qerr *err);
/* A new DispVM of DVM_TEMPLATE (database entry and private overlay), not started. */
int qd_dispvm_new(struct qd *qd, const char *dvm_template, char ret_name[QD_NAME_MAX], struct qerr *err);
/* preload.c: keeps each template's preload_dispvm disposables ready */
void qd_preload_tick(struct qd *qd);
/* A ready preload of DVM_TEMPLATE handed out (resumed), or -ENOENT. */
int qd_preload_take(struct qd *qd, const char *dvm_template, char ret_name[QD_NAME_MAX]);
/* After adoption at start-up: paused preloads rejoin their pool, others are destroyed. */
void qd_preload_adopt(struct qd *qd);
void qd_vm_tick(struct qd *qd);             /* probes and deadlines */
void qd_vm_handle_events(struct qd *qd);    /* libvirt events */
int qd_vm_adopt_all(struct qd *qd);         /* after (re)connecting to libvirt */
void qd_vm_reconnect(struct qd *qd);

/* ---- broker, host agent, start interface, system info (broker.c) ---- */
int qd_broker_init(struct qd *qd);
/* host_agent names an executable: calls to @adminvm go to it */
bool qd_host_agent_configured(const struct qd *qd);
void qd_broker_tick(struct qd *qd);
void qd_broker_stop(struct qd *qd);
int qd_sysinfo_write(struct qd *qd);        /* system-info JSON and vsock map */
int qd_start_listen(struct qd *qd);

/* ---- GUI (gui.c): per running qube, QUBE-ADD on the compositor and a
 * supervised qube-gui-bridge; at stop QUBE-REMOVE and the bridge ended ---- */
void qd_gui_tick(struct qd *qd);
void qd_gui_vm_stop(struct qd *qd, struct qd_vm *vm);

#endif
