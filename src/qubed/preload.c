/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: preloaded disposables.
 *
 * A disposable template (an AppVM with template_for_dispvms=True) whose
 * property preload_dispvm is N > 0 gets N disposables booted ahead of
 * time and paused.  A request for a disposable of it (the broker's
 * "DISPVM TEMPLATE", hence `qubectl run --dispvm` and @dispvm calls) takes
 * one: it is resumed and handed over at once, and a replacement is booted
 * in the background a moment later (PRELOAD_HOLD_MS: a burst of requests
 * is served from the pool without a boot competing for the CPU).  One
 * preload boots at a time.
 *
 * A preload is an ordinary DispVM marked with the feature
 * "preload-dispvm" (its template's name) and internal=True (hidden from
 * `qubectl ls` and never offered at an ask prompt) until it is taken; the
 * marks survive a restart of qubed: a paused preload is adopted back into
 * its pool, one that was still booting is destroyed and replaced.
 *
 * The guest memory all preloads may hold together is qubed.conf's
 * preload_memory; a pool that does not fit says so in the log, once per
 * change of the reason.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qubed.h"

#define PRELOAD_FEATURE "preload-dispvm"
#define PRELOAD_CHECK_MS 250
#define PRELOAD_HOLD_MS 1500
#define PRELOAD_RETRY_MS 30000

static char *getprop(struct qd *qd, const char *qube, const char *name)
{
	char *v = NULL;

	if (qdb_prop_get(qd->db, qube, name, &v, NULL, NULL) < 0)
		return NULL;
	return v;
}

static unsigned getprop_uint(struct qd *qd, const char *qube, const char *name, unsigned dflt)
{
	char *v = getprop(qd, qube, name), *end;
	unsigned long n;

	if (!v)
		return dflt;
	n = strtoul(v, &end, 10);
	if (*end || n > 1u << 30)
		n = dflt;
	free(v);
	return (unsigned)n;
}

/* Logs a line about the pools only when it differs from the last one, so
 * that a pool that cannot be kept is said once, not every tick. */
__attribute__((format(printf, 2, 3)))
static void note(struct qd *qd, const char *fmt, ...)
{
	char line[sizeof(qd->preload_last_note)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strcmp(line, qd->preload_last_note) == 0)
		return;
	snprintf(qd->preload_last_note, sizeof(qd->preload_last_note), "%s", line);
	qd_log("%s", line);
}

/* The preload marks go when a preload is handed out (or never was one). */
static void unmark(struct qd *qd, struct qd_vm *vm)
{
	struct qerr e;

	vm->preload = false;
	qdb_feature_remove(qd->db, vm->name, PRELOAD_FEATURE, &e);
	qdb_prop_reset(qd->db, vm->name, "internal", &e);
	qd->sysinfo_dirty = true;
}

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	qd_now(&now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

int qd_preload_take(struct qd *qd, const char *dvm, char ret_name[QD_NAME_MAX])
{
	struct qd_vm *best = NULL;

	for (struct qd_vm *vm = qd->vms; vm; vm = vm->next) {
		if (!vm->preload || strcmp(vm->preload_of, dvm) != 0)
			continue;
		if (vm->state == QD_PAUSED) {
			best = vm;
			break;
		}
		/* one still booting is further along than a new one */
		if (vm->state == QD_STARTING && !best)
			best = vm;
	}
	if (!best)
		return -ENOENT;
	if (best->state == QD_PAUSED) {
		struct qerr e;

		if (qd_vm_pause(qd, best->name, false, &e) < 0) {
			qd_log("preloaded disposable %s of %s cannot be resumed (%s): destroying it",
			       best->name, dvm, e.msg);
			qd_vm_kill(qd, best->name, &e);
			return -ENOENT;
		}
		best->just_taken = true;
		qd_log("disposable %s taken from the preloaded pool of %s (ready for %.1f s)", best->name,
		       dvm, seconds_since(&best->preload_begin));
	} else {
		qd_log("disposable %s taken from the preloaded pool of %s while still booting",
		       best->name, dvm);
	}
	unmark(qd, best);
	qd_time_after_ms(&qd->preload_hold, PRELOAD_HOLD_MS);
	memcpy(ret_name, best->name, QD_NAME_MAX);
	return 0;
}

/* The waiter of a preload's start: pause it once its agent answers. */
static void preload_started(struct qd *qd, void *ctx, int status, const char *msg)
{
	char *name = ctx;
	struct qd_vm *vm = qd_vm_get(qd, name, false);
	struct qerr e;

	if (status != 0) {
		qd_log("preloading disposable %s failed: %s; the next try in %u s", name,
		       msg ? msg : "start failed", PRELOAD_RETRY_MS / 1000);
		qd_time_after_ms(&qd->preload_hold, PRELOAD_RETRY_MS);
		free(name);
		return;
	}
	if (vm && vm->preload) {
		if (qd_vm_pause(qd, name, true, &e) < 0) {
			qd_log("preloaded disposable %s cannot be paused (%s): destroying it", name, e.msg);
			qd_vm_kill(qd, name, &e);
		} else {
			qd_log("preloaded disposable %s of %s ready (booted in %.1f s), paused", name,
			       vm->preload_of, seconds_since(&vm->preload_begin));
			qd_now(&vm->preload_begin);
		}
	}
	free(name);
}

/* Starts one preload of DVM.  0, or a negative errno (logged). */
static int preload_one(struct qd *qd, const char *dvm, unsigned have, unsigned want)
{
	char name[QD_NAME_MAX];
	struct qd_waiter *w;
	struct qd_vm *vm;
	struct qerr e = { "", "" };
	int r;

	r = qd_dispvm_new(qd, dvm, name, &e);
	if (r < 0) {
		qd_log("preloading a disposable of %s failed: %s; the next try in %u s", dvm, e.msg,
		       PRELOAD_RETRY_MS / 1000);
		return r;
	}
	vm = qd_vm_get(qd, name, true);
	w = calloc(1, sizeof(*w));
	char *ctx = strdup(name);
	if (!vm || !w || !ctx ||
	    qdb_feature_set(qd->db, name, PRELOAD_FEATURE, dvm, &e) < 0 ||
	    qdb_prop_set(qd->db, name, "internal", "True", &e) < 0) {
		qd_log("preloading a disposable of %s failed: %s", dvm, e.msg[0] ? e.msg : "out of memory");
		r = -ENOMEM;
		goto err_remove;
	}
	vm->preload = true;
	snprintf(vm->preload_of, sizeof(vm->preload_of), "%s", dvm);
	qd_now(&vm->preload_begin);
	w->until = QD_WAIT_RUNNING;
	w->done = preload_started;
	w->ctx = ctx;
	r = qd_vm_start(qd, name, w, &e);
	if (r < 0) {
		qd_log("preloading disposable %s of %s failed: %s; the next try in %u s", name, dvm, e.msg,
		       PRELOAD_RETRY_MS / 1000);
		goto err_remove;
	}
	qd_log("preloading disposable %s of %s (%u of %u)", name, dvm, have + 1, want);
	return 0;

err_remove:
	free(w);
	free(ctx);
	qdb_qube_remove(qd->db, name, &e);
	qd_vm_remove_storage(qd, name, &e);
	qd_vm_forget(qd, name);
	qd->sysinfo_dirty = true;
	return r;
}

void qd_preload_tick(struct qd *qd)
{
	char **names = NULL;
	size_t n = 0;
	uint64_t held = 0;
	struct qerr e;

	if (!qd->conn || !qvmm_conn_alive(qd->conn) || !qd_time_passed(&qd->preload_next_check))
		return;
	qd_time_after_ms(&qd->preload_next_check, PRELOAD_CHECK_MS);
	for (struct qd_vm *vm = qd->vms; vm; vm = vm->next) {
		if (!vm->preload)
			continue;
		if (vm->state == QD_STARTING)
			return; /* one boot at a time */
		held += (uint64_t)getprop_uint(qd, vm->name, "memory", 400) << 20;
	}
	if (!qd_time_passed(&qd->preload_hold))
		return;
	if (qdb_qube_list(qd->db, &names, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		enum qdb_class cls;
		unsigned want, have = 0;
		struct qd_vm *extra = NULL;

		if (qdb_qube_class(qd->db, names[i], &cls, &e) < 0 || cls != QDB_APPVM)
			continue;
		want = getprop_uint(qd, names[i], "preload_dispvm", 0);
		for (struct qd_vm *vm = qd->vms; vm; vm = vm->next) {
			if (vm->preload && strcmp(vm->preload_of, names[i]) == 0 && vm->state != QD_HALTED &&
			    vm->state != QD_DYING) {
				have++;
				extra = vm;
			}
		}
		if (want > 0) {
			char *flag = getprop(qd, names[i], "template_for_dispvms");
			bool is_dvm = flag && strcmp(flag, "True") == 0;

			free(flag);
			if (!is_dvm) {
				note(qd, "preload_dispvm=%u of %s is ignored: it is not a disposable template "
				     "(template_for_dispvms=False)", want, names[i]);
				want = 0;
			}
		}
		if (have > want && extra) {
			qd_log("preloaded disposable %s of %s is no longer wanted (preload_dispvm=%u): "
			       "destroying it", extra->name, names[i], want);
			qd_vm_kill_async(qd, extra->name, &e);
			break;
		}
		if (have >= want)
			continue;
		uint64_t need = (uint64_t)getprop_uint(qd, names[i], "memory", 400) << 20;
		if (held + need > qd->cfg.preload_memory) {
			note(qd, "cannot keep %u preloaded disposables of %s (%u kept): memory budget "
			     "preload_memory=%" PRIu64 " MiB, %" PRIu64 " MiB held by preloads, one more "
			     "needs %" PRIu64 " MiB", want, names[i], have, qd->cfg.preload_memory >> 20,
			     held >> 20, need >> 20);
			continue;
		}
		if (preload_one(qd, names[i], have, want) < 0)
			qd_time_after_ms(&qd->preload_hold, PRELOAD_RETRY_MS);
		break; /* one boot at a time */
	}
	qdb_strv_free(names, n);
}

void qd_preload_adopt(struct qd *qd)
{
	char **names = NULL;
	size_t n = 0;
	struct qerr e;

	if (qdb_qube_list(qd->db, &names, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		enum qdb_class cls;
		char *tpl = NULL;
		struct qd_vm *vm;

		if (qdb_qube_class(qd->db, names[i], &cls, &e) < 0 || cls != QDB_DISPVM)
			continue;
		if (qdb_feature_get(qd->db, names[i], PRELOAD_FEATURE, &tpl, &e) < 0 || !tpl)
			continue;
		vm = qd_vm_get(qd, names[i], false);
		if (vm && !vm->preload && vm->state == QD_PAUSED) {
			vm->preload = true;
			snprintf(vm->preload_of, sizeof(vm->preload_of), "%s", tpl);
			qd_now(&vm->preload_begin);
			qd_log("adopted preloaded disposable %s of %s (paused)", vm->name, tpl);
		} else if (vm && !vm->preload && vm->state != QD_HALTED && vm->state != QD_DYING) {
			/* it was booting (or being handed out) when qubed stopped:
			 * nobody can have it, and its state is unknown */
			qd_log("preloaded disposable %s of %s was not paused when qubed stopped: "
			       "destroying it", vm->name, tpl);
			qd_vm_kill(qd, vm->name, &e);
		}
		free(tpl);
	}
	qdb_strv_free(names, n);
}
