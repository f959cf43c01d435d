/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: domain destruction off the main loop.
 *
 * libvirt's virDomainDestroy waits for QEMU to go: 1-2 s under TCG here.
 * When a disposable's call is over, the broker asks for it to be destroyed
 * (DESTROY) and the caller already has its result; done in the loop, that
 * wait would sit in front of the next request (the next disposable, the
 * next start).  So such destroys go to one worker thread, which calls only
 * libvirt (thread-safe per connection) with a copy of the domain name and
 * hands the outcome back through a pipe; everything else (state, volumes,
 * database) stays in the loop's thread.  Before the libvirt connection is
 * replaced, the worker is drained (qd_worker_drain).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "qubed.h"

struct job {
	struct job *next;
	char name[QD_NAME_MAX];
};

struct result {
	char name[QD_NAME_MAX];
	int r;
	char msg[256];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct job *head, *tail;
static bool busy;
static struct qvmm_conn *conn; /* under lock; set by the loop */
/* The worker's own libvirt connection: on the loop's connection a
 * virDomainDestroy held up every other call (a resume of the next
 * disposable waited 1.6-2 s for it).  Made on first use, from the URI the
 * loop connected to; the shared one is the fallback. */
static char *own_uri;
static struct qvmm_conn *own;
static int pipe_fds[2] = { -1, -1 };
static struct qd_watch result_watch;

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct result res = { .r = 0 };
		struct job *j;
		char dn[QVMM_DOMAIN_NAME_MAX];

		pthread_mutex_lock(&lock);
		while (!head) {
			busy = false;
			pthread_cond_broadcast(&cond);
			pthread_cond_wait(&cond, &lock);
		}
		j = head;
		head = j->next;
		if (!head)
			tail = NULL;
		busy = true;
		struct qvmm_conn *c = conn;
		pthread_mutex_unlock(&lock);

		snprintf(res.name, sizeof(res.name), "%s", j->name);
		free(j);
		qvmm_domain_name(res.name, dn);
		if (own && !qvmm_conn_alive(own)) {
			qvmm_conn_free(own);
			own = NULL;
		}
		if (!own && own_uri) {
			char e[256];

			if (qvmm_connect(own_uri, &own, e, sizeof(e)) < 0)
				own = NULL;
		}
		if (own)
			c = own;
		res.r = c ? qvmm_domain_destroy(c, dn, res.msg, sizeof(res.msg)) : -ENOTCONN;
		if (!c)
			snprintf(res.msg, sizeof(res.msg), "not connected to libvirt");
		/* one record per write: PIPE_BUF keeps it whole */
		while (write(pipe_fds[1], &res, sizeof(res)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void on_results(struct qd *qd, struct qd_watch *w, uint32_t events)
{
	struct result res;

	(void)events;
	while (read(w->fd, &res, sizeof(res)) == (ssize_t)sizeof(res)) {
		res.name[sizeof(res.name) - 1] = '\0';
		res.msg[sizeof(res.msg) - 1] = '\0';
		qd_vm_destroyed(qd, res.name, res.r, res.msg);
	}
}

int qd_worker_init(struct qd *qd)
{
	pthread_t t;
	pthread_attr_t attr;
	int r;

	_Static_assert(sizeof(struct result) <= PIPE_BUF, "a result must be written whole");
	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, worker_main, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0)
		return -r;
	return qd_watch_add(qd, &result_watch, pipe_fds[0], EPOLLIN, on_results, NULL);
}

void qd_worker_set_conn(struct qvmm_conn *c, const char *uri)
{
	pthread_mutex_lock(&lock);
	conn = c;
	if (!own_uri && uri)
		own_uri = strdup(uri);
	pthread_mutex_unlock(&lock);
}

int qd_worker_destroy(const char *name)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	snprintf(j->name, sizeof(j->name), "%s", name);
	pthread_mutex_lock(&lock);
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	busy = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	return 0;
}

void qd_worker_drain(void)
{
	pthread_mutex_lock(&lock);
	while (busy || head)
		pthread_cond_wait(&cond, &lock);
	conn = NULL;
	pthread_mutex_unlock(&lock);
}
