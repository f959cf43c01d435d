/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqvmm: turning a qube into a running libvirt guest.
 *
 * Accelerator and vsock choice (probe + setting), libvirt domain XML built
 * with libxml2's writer, qcow2 volumes through qemu-img (argv, never a
 * shell), the libvirt connection with its lifecycle events, and qube-vsockd
 * spawning for hosts without /dev/vhost-vsock.
 *
 * Conventions: functions return 0 or a negative errno; predicates return
 * bool; ret_* out-parameters are untouched on failure. Library code does not
 * log: errors come back as a message in (err, errlen) when the function has
 * those parameters (err may be NULL, errlen may be 0).
 *
 * Thread safety: a struct qvmm_conn is used from one thread (the caller's);
 * the library's own event thread only queues events for qvmm_event_next().
 */
#ifndef QVMM_H
#define QVMM_H

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QVMM_XML_NS "https://qube.invalid/xmlns/qube/1"
#define QVMM_XML_NS_PREFIX "qube"
#define QVMM_DOMAIN_PREFIX "qube-"
#define QVMM_DOMAIN_NAME_MAX 64 /* including the NUL */

/* --- accelerator and vsock transport ------------------------------------ */

enum qvmm_accel { QVMM_ACCEL_AUTO, QVMM_ACCEL_KVM, QVMM_ACCEL_TCG };
enum qvmm_vsock { QVMM_VSOCK_AUTO, QVMM_VSOCK_VHOST, QVMM_VSOCK_USER /* qube-vsockd */ };

/* "auto" "kvm" "tcg"; -EINVAL otherwise */
int qvmm_accel_parse(const char *s, enum qvmm_accel *ret);
/* "auto" "vhost" "vsockd"; -EINVAL otherwise */
int qvmm_vsock_parse(const char *s, enum qvmm_vsock *ret);
const char *qvmm_accel_to_string(enum qvmm_accel a);
const char *qvmm_vsock_to_string(enum qvmm_vsock v);

/*
 * Real probe of dev_kvm (normally "/dev/kvm"): open, KVM_GET_API_VERSION,
 * KVM_CREATE_VM, the CPUID features a stock x86-64 guest kernel needs
 * (KVM_GET_SUPPORTED_CPUID), and a vCPU that runs a few instructions to a
 * HLT. false with the reason in why when any step fails.
 */
bool qvmm_kvm_usable(const char *dev_kvm, char *why, size_t whylen);
/* dev normally "/dev/vhost-vsock": exists and opens read-write */
bool qvmm_vhost_vsock_usable(const char *dev, char *why, size_t whylen);

/*
 * Pure: setting + probe results -> choice (KVM or TCG, never AUTO).
 * AUTO: KVM when kvm_ok and libvirt_has_kvm, else TCG.
 * KVM: KVM when both are true, else -ENODEV. TCG: TCG.
 */
int qvmm_accel_choose(enum qvmm_accel setting, bool kvm_ok, bool libvirt_has_kvm,
		      enum qvmm_accel *ret);
/* AUTO: VHOST when vhost_ok, else USER. VHOST without vhost_ok: -ENODEV. */
int qvmm_vsock_choose(enum qvmm_vsock setting, bool vhost_ok, enum qvmm_vsock *ret);

/* --- domain XML --------------------------------------------------------- */

struct qvmm_disk {
	const char *path;
	const char *format; /* "qcow2" "raw" */
	bool readonly;
};

struct qvmm_domain_spec {
	const char *name;       /* libvirt domain name: "qube-" + qube name (qvmm_domain_name()) */
	const char *uuid;       /* the qube's uuid: also the libvirt domain's uuid */
	const char *qube_name, *label, *qube_class; /* <metadata> in QVMM_XML_NS */
	unsigned memory_mib, maxmem_mib, vcpus;     /* maxmem_mib 0: same as memory_mib */
	enum qvmm_accel accel;  /* resolved: KVM or TCG -> type='kvm' / type='qemu' */
	const char *kernel, *initrd, *cmdline; /* initrd may be NULL */
	const struct qvmm_disk *disks; /* attached as vda, vdb, ... in this order */
	size_t n_disks;
	enum qvmm_vsock vsock;  /* resolved: VHOST or USER */
	uint32_t cid;           /* VHOST: libvirt <vsock> address */
	const char *vhost_user_socket; /* USER: qube-vsockd's --socket */
	const char *console_log; /* serial console to this file; NULL: no log file */
	/* the qubed instance the domain belongs to (a uuid, <qube:owner>);
	 * NULL: none.  Lets several qubed on one libvirtd leave each other's
	 * domains alone. */
	const char *owner;
};

/* "qube-" + qube; -EINVAL when qube is not a valid qube name */
int qvmm_domain_name(const char *qube, char ret[QVMM_DOMAIN_NAME_MAX]);
/* true for 1-31 bytes of [A-Za-z0-9_.-] starting with a letter */
bool qvmm_qube_name_is_valid(const char *qube);
/* libxml2 xmlTextWriter only; *ret_xml is free()d by the caller */
int qvmm_domain_xml(const struct qvmm_domain_spec *s, char **ret_xml, char *err, size_t errlen);
/* parse back our metadata (for adoption); -ENOENT when the XML has none */
int qvmm_domain_xml_metadata(const char *xml, char ret_qube[32], char ret_uuid[37]);
/* the <qube:owner> of our metadata: 0, or -ENOENT when there is none */
int qvmm_domain_xml_owner(const char *xml, char ret_owner[37]);

/* --- volumes (qemu-img, argv, never a shell) ---------------------------- */

/*
 * qcow2 of size_bytes at path (which must not exist). format_ext4: an ext4
 * file system is made host-side (mkfs.ext4 on a fresh raw file, then
 * qemu-img convert to qcow2), so the result is always qcow2.
 */
int qvmm_volume_create(const char *path, uint64_t size_bytes, bool format_ext4,
		       char *err, size_t errlen);
/* qcow2 overlay at path backed by backing (its format is detected and given explicitly) */
int qvmm_volume_overlay(const char *path, const char *backing, char *err, size_t errlen);
/* grow only: a size below the current virtual size is -EINVAL */
int qvmm_volume_resize(const char *path, uint64_t size_bytes, char *err, size_t errlen);
int qvmm_volume_info(const char *path, uint64_t *ret_virtual, uint64_t *ret_actual,
		     char *err, size_t errlen);
/* keep one revision: copy path to rev_path (replaced atomically), for `volume revert` */
int qvmm_volume_snapshot(const char *path, const char *rev_path, char *err, size_t errlen);

/* --- libvirt ------------------------------------------------------------ */

struct qvmm_conn;

/*
 * Opens uri (NULL: "qemu:///system"), starts the library's event thread
 * (virEventRegisterDefaultImpl once per process + virEventRunDefaultImpl)
 * and registers lifecycle events.
 */
int qvmm_connect(const char *uri, struct qvmm_conn **ret, char *err, size_t errlen);
void qvmm_conn_free(struct qvmm_conn *c);
/* false after libvirtd went away; the caller then frees and reconnects */
bool qvmm_conn_alive(struct qvmm_conn *c);
/* readable while events are queued; poll it, then drain qvmm_event_next() */
int qvmm_event_fd(struct qvmm_conn *c);

enum qvmm_event_type {
	QVMM_EV_STARTED,
	QVMM_EV_STOPPED,
	QVMM_EV_CRASHED,
	QVMM_EV_PAUSED,
	QVMM_EV_RESUMED,
	QVMM_EV_CONN_LOST,
};
struct qvmm_event {
	char domain[64]; /* empty for QVMM_EV_CONN_LOST */
	enum qvmm_event_type type;
	int detail;      /* libvirt's detail (virDomainEventStoppedDetailType ...) or close reason */
};
/* -EAGAIN when none */
int qvmm_event_next(struct qvmm_conn *c, struct qvmm_event *ret);

/* transient domain: virDomainCreateXML */
int qvmm_domain_start(struct qvmm_conn *c, const char *xml, bool paused, char *err, size_t errlen);
/* ACPI power button */
int qvmm_domain_shutdown(struct qvmm_conn *c, const char *domain, char *err, size_t errlen);
int qvmm_domain_destroy(struct qvmm_conn *c, const char *domain, char *err, size_t errlen);
int qvmm_domain_pause(struct qvmm_conn *c, const char *domain, char *err, size_t errlen);
int qvmm_domain_resume(struct qvmm_conn *c, const char *domain, char *err, size_t errlen);

enum qvmm_state { QVMM_HALTED, QVMM_RUNNING, QVMM_PAUSED, QVMM_TRANSIENT_OTHER };
/* a domain libvirt does not know is QVMM_HALTED */
int qvmm_domain_state(struct qvmm_conn *c, const char *domain, enum qvmm_state *ret);

struct qvmm_owned {
	char domain[64];
	char qube[32];
	char uuid[37];
	pid_t pid; /* QEMU's pid, 0 when libvirt does not tell */
	char owner[37]; /* "" when the domain names no owner */
	enum qvmm_state state;
};
/* every running domain whose metadata is ours; *ret is free()d by the caller */
int qvmm_domain_list_ours(struct qvmm_conn *c, struct qvmm_owned **ret, size_t *ret_n);
/* from virConnectGetDomainCapabilities (domain type kvm offered) */
bool qvmm_libvirt_has_kvm(struct qvmm_conn *c);

/* --- qube-vsockd (the USER vsock path) ---------------------------------- */

/*
 * Spawn vsockd_path with an argv (--socket vhost_user_socket --guest-cid
 * cid --uds-path uds_path), stdout/stderr to log_path (NULL: inherit), and make the
 * vhost-user socket reachable by QEMU's user (libvirt-qemu): the socket's
 * directory must exist; once the socket appears it is chowned to that user
 * when it exists and we are root, and chmod 0660. Returns when the socket
 * is listening (or fails with the child reaped).
 */
int qvmm_vsockd_spawn(const char *vsockd_path, const char *vhost_user_socket, uint32_t cid,
		      const char *uds_path, const char *log_path, pid_t *ret_pid,
		      char *err, size_t errlen);

/*
 * Prepare posix_spawn attributes for a program started by a daemon that
 * blocks signals for its own signalfd (qubed blocks SIGTERM, SIGINT, SIGHUP
 * and SIGPIPE): the child starts with an empty signal mask and every signal
 * at its default action, as if started from a clean shell.  Without this a
 * child inherits the mask through execve and cannot be stopped with
 * SIGTERM.  Returns 0 or -errno; the caller destroys the attributes.
 */
int qvmm_spawnattr_clean(posix_spawnattr_t *attr);

#endif
