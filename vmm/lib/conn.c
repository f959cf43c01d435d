// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm: the libvirt connection, its lifecycle events, and the domain
 * calls qubed makes.
 *
 * libvirt delivers events from an event loop that someone must run: the
 * library registers libvirt's default implementation once per process
 * and runs it in a thread of its own. Callbacks (on that thread) only
 * queue a struct qvmm_event and make an eventfd readable; the caller
 * drains the queue from its own loop. A connection is reference-counted:
 * the caller holds one reference, each libvirt callback registration
 * another (dropped by libvirt's free callback), so a callback never sees
 * a freed connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "qvmm.h"
#include "internal.h"

#define EVENT_QUEUE_MAX 4096
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3
#define QEMU_PID_DIR "/run/libvirt/qemu"

struct event_node {
	struct qvmm_event ev;
	struct event_node *next;
};

struct qvmm_conn {
	virConnectPtr conn;
	int lifecycle_id;
	bool close_registered;
	int efd;
	pthread_mutex_t lock;
	unsigned refs;           /* under lock */
	bool alive;              /* under lock */
	struct event_node *head, *tail;
	size_t queued;
	size_t dropped;
};

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static int loop_ret;

/* errors come back to our callers as messages; libvirt must not print them */
static void silent_error(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static void *loop_thread(void *arg)
{
	(void)arg;
	for (;;)
		virEventRunDefaultImpl();
	return NULL;
}

static void loop_start(void)
{
	pthread_t t;
	pthread_attr_t a;

	virSetErrorFunc(NULL, silent_error);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		loop_ret = -EIO;
		return;
	}
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	loop_ret = -pthread_create(&t, &a, loop_thread, NULL);
	pthread_attr_destroy(&a);
}

static const char *last_error(void)
{
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

static void conn_unref(struct qvmm_conn *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	for (struct event_node *n = c->head, *next; n; n = next) {
		next = n->next;
		free(n);
	}
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void conn_unref_cb(void *opaque)
{
	conn_unref(opaque);
}

static void push_event(struct qvmm_conn *c, const char *domain, enum qvmm_event_type type,
		       int detail)
{
	struct event_node *n = calloc(1, sizeof(*n));
	uint64_t one = 1;

	pthread_mutex_lock(&c->lock);
	if (!n || c->efd < 0 || c->queued >= EVENT_QUEUE_MAX) {
		c->dropped++;
		pthread_mutex_unlock(&c->lock);
		free(n);
		return;
	}
	snprintf(n->ev.domain, sizeof(n->ev.domain), "%s", domain ? domain : "");
	n->ev.type = type;
	n->ev.detail = detail;
	if (c->tail)
		c->tail->next = n;
	else
		c->head = n;
	c->tail = n;
	c->queued++;
	/* cannot fail short of the counter overflowing 2^64-1 */
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* the queue still holds it; the next push or read retries */
	}
	pthread_mutex_unlock(&c->lock);
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct qvmm_conn *c = opaque;
	const char *name = virDomainGetName(dom);
	enum qvmm_event_type t;

	(void)conn;
	/* only domains that can be ours: the caller filters further by metadata */
	if (!name || strncmp(name, QVMM_DOMAIN_PREFIX, strlen(QVMM_DOMAIN_PREFIX)) != 0)
		return 0;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		t = QVMM_EV_STARTED;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		t = detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? QVMM_EV_CRASHED : QVMM_EV_STOPPED;
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		t = QVMM_EV_CRASHED;
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		t = QVMM_EV_PAUSED;
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		t = QVMM_EV_RESUMED;
		break;
	default:
		return 0;
	}
	push_event(c, name, t, detail);
	return 0;
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct qvmm_conn *c = opaque;
	bool was;

	(void)conn;
	pthread_mutex_lock(&c->lock);
	was = c->alive;
	c->alive = false;
	pthread_mutex_unlock(&c->lock);
	if (was)
		push_event(c, NULL, QVMM_EV_CONN_LOST, reason);
}

int qvmm_connect(const char *uri, struct qvmm_conn **ret, char *err, size_t errlen)
{
	struct qvmm_conn *c;
	int r;

	if (!ret)
		return qvmm_err(err, errlen, -EINVAL, "no result pointer");
	pthread_once(&loop_once, loop_start);
	if (loop_ret < 0)
		return qvmm_err(err, errlen, loop_ret, "cannot start the libvirt event loop");

	c = calloc(1, sizeof(*c));
	if (!c)
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	c->lifecycle_id = -1;
	c->refs = 1;
	c->alive = true;
	pthread_mutex_init(&c->lock, NULL);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		r = qvmm_err(err, errlen, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (!uri)
		uri = "qemu:///system";
	c->conn = virConnectOpen(uri);
	if (!c->conn) {
		r = qvmm_err(err, errlen, -ECONNREFUSED, "cannot connect to %s: %s", uri, last_error());
		goto fail;
	}
	/* a dead libvirtd is noticed by EOF at once, a hung one by keepalive */
	if (virConnectSetKeepAlive(c->conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0) {
		r = qvmm_err(err, errlen, -EIO, "%s: keepalive: %s", uri, last_error());
		goto fail;
	}
	c->refs++;
	if (virConnectRegisterCloseCallback(c->conn, close_cb, c, conn_unref_cb) < 0) {
		c->refs--;
		r = qvmm_err(err, errlen, -EIO, "%s: close callback: %s", uri, last_error());
		goto fail;
	}
	c->close_registered = true;
	c->refs++;
	c->lifecycle_id = virConnectDomainEventRegisterAny(c->conn, NULL,
							   VIR_DOMAIN_EVENT_ID_LIFECYCLE,
							   VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb),
							   c, conn_unref_cb);
	if (c->lifecycle_id < 0) {
		c->refs--;
		r = qvmm_err(err, errlen, -EIO, "%s: lifecycle events: %s", uri, last_error());
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	qvmm_conn_free(c);
	return r;
}

void qvmm_conn_free(struct qvmm_conn *c)
{
	if (!c)
		return;
	if (c->conn) {
		if (c->lifecycle_id >= 0)
			virConnectDomainEventDeregisterAny(c->conn, c->lifecycle_id);
		if (c->close_registered)
			virConnectUnregisterCloseCallback(c->conn, close_cb);
		virConnectClose(c->conn);
		c->conn = NULL;
	}
	/* a callback libvirt could not deregister (libvirtd gone) keeps its
	 * reference, but finds no fd to write to */
	pthread_mutex_lock(&c->lock);
	if (c->efd >= 0)
		close(c->efd);
	c->efd = -1;
	pthread_mutex_unlock(&c->lock);
	conn_unref(c);
}

bool qvmm_conn_alive(struct qvmm_conn *c)
{
	bool alive;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	alive = c->alive;
	pthread_mutex_unlock(&c->lock);
	/* libvirt's own view as well: a connection it closed is dead */
	return alive && virConnectIsAlive(c->conn) == 1;
}

int qvmm_event_fd(struct qvmm_conn *c)
{
	return c ? c->efd : -EINVAL;
}

int qvmm_event_next(struct qvmm_conn *c, struct qvmm_event *ret)
{
	struct event_node *n;
	uint64_t v;

	if (!c || !ret)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	n = c->head;
	if (n) {
		c->head = n->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;
	}
	/* empty now: make the fd unreadable (pushes also take the lock) */
	if (!c->head && read(c->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: it was not readable */
	}
	pthread_mutex_unlock(&c->lock);
	if (!n)
		return -EAGAIN;
	*ret = n->ev;
	free(n);
	return 0;
}

static int need_alive(struct qvmm_conn *c, char *err, size_t errlen)
{
	if (!c || !c->conn)
		return qvmm_err(err, errlen, -EINVAL, "no connection");
	if (!qvmm_conn_alive(c))
		return qvmm_err(err, errlen, -ENOTCONN, "the libvirt connection is closed");
	return 0;
}

static int lookup(struct qvmm_conn *c, const char *domain, virDomainPtr *ret, char *err,
		  size_t errlen)
{
	virDomainPtr d;
	int r;

	if ((r = need_alive(c, err, errlen)) < 0)
		return r;
	if (!domain)
		return qvmm_err(err, errlen, -EINVAL, "no domain name");
	d = virDomainLookupByName(c->conn, domain);
	if (!d) {
		virErrorPtr e = virGetLastError();
		if (e && e->code == VIR_ERR_NO_DOMAIN)
			return qvmm_err(err, errlen, -ENOENT, "%s: no such domain", domain);
		return qvmm_err(err, errlen, -EIO, "%s: %s", domain, last_error());
	}
	*ret = d;
	return 0;
}

int qvmm_domain_start(struct qvmm_conn *c, const char *xml, bool paused, char *err, size_t errlen)
{
	virDomainPtr d;
	int r;

	if ((r = need_alive(c, err, errlen)) < 0)
		return r;
	if (!xml)
		return qvmm_err(err, errlen, -EINVAL, "no domain XML");
	d = virDomainCreateXML(c->conn, xml, paused ? VIR_DOMAIN_START_PAUSED : 0);
	if (!d) {
		virErrorPtr e = virGetLastError();
		r = e && (e->code == VIR_ERR_OPERATION_INVALID || e->code == VIR_ERR_DOM_EXIST) ? -EEXIST
											       : -EIO;
		return qvmm_err(err, errlen, r, "start: %s", last_error());
	}
	virDomainFree(d);
	return 0;
}

typedef int (*dom_op)(virDomainPtr d);

static int shutdown_acpi(virDomainPtr d)
{
	return virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
}

static int domain_op(struct qvmm_conn *c, const char *domain, dom_op op, const char *what,
		     char *err, size_t errlen)
{
	virDomainPtr d;
	int r;

	if ((r = lookup(c, domain, &d, err, errlen)) < 0)
		return r;
	r = 0;
	if (op(d) < 0) {
		virErrorPtr e = virGetLastError();
		r = e && e->code == VIR_ERR_OPERATION_INVALID ? -EINVAL : -EIO;
		qvmm_err(err, errlen, r, "%s %s: %s", what, domain, last_error());
	}
	virDomainFree(d);
	return r;
}

int qvmm_domain_shutdown(struct qvmm_conn *c, const char *domain, char *err, size_t errlen)
{
	return domain_op(c, domain, shutdown_acpi, "shutdown", err, errlen);
}

int qvmm_domain_destroy(struct qvmm_conn *c, const char *domain, char *err, size_t errlen)
{
	return domain_op(c, domain, virDomainDestroy, "destroy", err, errlen);
}

int qvmm_domain_pause(struct qvmm_conn *c, const char *domain, char *err, size_t errlen)
{
	return domain_op(c, domain, virDomainSuspend, "pause", err, errlen);
}

int qvmm_domain_resume(struct qvmm_conn *c, const char *domain, char *err, size_t errlen)
{
	return domain_op(c, domain, virDomainResume, "resume", err, errlen);
}

static enum qvmm_state map_state(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return QVMM_RUNNING;
	case VIR_DOMAIN_PAUSED:
		return QVMM_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return QVMM_HALTED;
	default:
		return QVMM_TRANSIENT_OTHER;
	}
}

int qvmm_domain_state(struct qvmm_conn *c, const char *domain, enum qvmm_state *ret)
{
	virDomainPtr d;
	int st, reason, r;

	if (!ret)
		return -EINVAL;
	r = lookup(c, domain, &d, NULL, 0);
	if (r == -ENOENT) {
		*ret = QVMM_HALTED;
		return 0;
	}
	if (r < 0)
		return r;
	r = virDomainGetState(d, &st, &reason, 0);
	virDomainFree(d);
	if (r < 0) {
		virErrorPtr e = virGetLastError();
		/* gone between lookup and query: a transient domain that stopped */
		if (e && e->code == VIR_ERR_NO_DOMAIN) {
			*ret = QVMM_HALTED;
			return 0;
		}
		return -EIO;
	}
	*ret = map_state(st);
	return 0;
}

/* QEMU's pid from libvirt's pid file for the domain; 0 when unknown */
static pid_t qemu_pid(const char *domain)
{
	char path[256], buf[32];
	ssize_t n;
	int fd;
	long v;
	char *end;

	if (snprintf(path, sizeof(path), QEMU_PID_DIR "/%s.pid", domain) >= (int)sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v <= 1 || v > 0x7fffffff)
		return 0;
	return (pid_t)v;
}

int qvmm_domain_list_ours(struct qvmm_conn *c, struct qvmm_owned **ret, size_t *ret_n)
{
	virDomainPtr *doms = NULL;
	struct qvmm_owned *out = NULL;
	size_t n_out = 0;
	int n, r;

	if (!ret || !ret_n)
		return -EINVAL;
	if ((r = need_alive(c, NULL, 0)) < 0)
		return r;
	n = virConnectListAllDomains(c->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0)
		return -EIO;
	out = calloc(n ? (size_t)n : 1, sizeof(*out));
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		char uuid[VIR_UUID_STRING_BUFLEN], want[QVMM_DOMAIN_NAME_MAX];
		struct qvmm_owned o = { 0 };
		int st, reason;
		char *xml;

		if (!name || strncmp(name, QVMM_DOMAIN_PREFIX, strlen(QVMM_DOMAIN_PREFIX)) != 0)
			continue;
		xml = virDomainGetXMLDesc(doms[i], 0);
		if (!xml)
			continue; /* gone meanwhile */
		r = qvmm_domain_xml_metadata(xml, o.qube, o.uuid);
		if (r == 0 && qvmm_domain_xml_owner(xml, o.owner) < 0)
			o.owner[0] = '\0';
		free(xml);
		if (r < 0)
			continue; /* not ours */
		/* ours only when name and uuid agree with the metadata */
		if (qvmm_domain_name(o.qube, want) < 0 || strcmp(want, name) != 0 ||
		    virDomainGetUUIDString(doms[i], uuid) < 0 || strcasecmp(uuid, o.uuid) != 0)
			continue;
		snprintf(o.domain, sizeof(o.domain), "%s", name);
		o.pid = qemu_pid(name);
		o.state = virDomainGetState(doms[i], &st, &reason, 0) == 0 ? map_state(st)
									  : QVMM_TRANSIENT_OTHER;
		out[n_out++] = o;
	}
	*ret = out;
	*ret_n = n_out;
	out = NULL;
	r = 0;
out:
	free(out);
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	return r;
}

bool qvmm_libvirt_has_kvm(struct qvmm_conn *c)
{
	char *caps;

	if (!c || !c->conn)
		return false;
	caps = virConnectGetDomainCapabilities(c->conn, NULL, "x86_64", "q35", "kvm", 0);
	if (!caps)
		return false;
	free(caps);
	return true;
}
