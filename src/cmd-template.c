/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl template update NAME: updates a template's packages.
 *
 *   1. NAME must be a TemplateVM, and no AppVM or DispVM based on it may
 *      run (their roots are overlays on the template's root, which the
 *      template would change under them; QEMU's image locks refuse it too);
 *   2. NAME is started if it is halted (progress on a terminal, as
 *      `qubectl start`);
 *   3. `apt-get update && apt-get -y upgrade` runs in it as root through
 *      qube.VMShell, a call from dom0 through the broker like `qubectl run
 *      --shell` (policy: qube.VMShell * dom0 @type:TemplateVM allow); its
 *      output is shown.  The template has no network: apt reaches the
 *      mirrors through its qube.UpdatesProxy socket and the host's proxy;
 *   4. a template this command started is shut down and waited for
 *      (admin.vm.Shutdown+wait) unless --keep-running; one that was running
 *      before is left running.
 *
 * Exit status as `qubectl run`: the update's (apt's) status; 126 the
 * policy refused; 125 nothing ran (not a template, qubes on it running,
 * start failed, broker unreachable); 127 no apt-get in the template; 2
 * usage; 1 the update succeeded but the shutdown failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call-client.h"
#include "qubectl.h"

#define UPDATE_EXIT_FAILED 125 /* QRPC_EXIT_RPC_FAILED: nothing ran */

/* The script qube.VMShell's /bin/sh reads from stdin.  apt never reads the
 * (empty) stdin; dpkg keeps changed configuration files without asking.
 * The last step says when the template's kernel package changed, because
 * its qubes boot the kernel that was imported with it. */
static const char update_script[] =
	"set -e\n"
	"command -v apt-get >/dev/null 2>&1 || "
	"{ echo 'qubectl template update: no apt-get in this template' >&2; exit 127; }\n"
	"export DEBIAN_FRONTEND=noninteractive\n"
	"apt-get update </dev/null\n"
	"apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
	"upgrade </dev/null\n"
	"k=$(ls -v /boot/vmlinuz-* 2>/dev/null | tail -n 1)\n"
	"if [ -n \"$k\" ] && [ \"$k\" != \"/boot/vmlinuz-$(uname -r)\" ]; then\n"
	"  echo \"qubectl template update: note: the template now has kernel ${k#/boot/vmlinuz-};"
	" its qubes still boot $(uname -r), the kernel imported with it\" >&2\n"
	"fi\n";

/* admin.vm.List of NAME: its class and state ("" when the reply has none).
 * QC_EXIT_OK or UPDATE_EXIT_FAILED (message printed). */
static int list_one(const char *name, char *cls, size_t cls_len, char *state, size_t state_len)
{
	struct qc_reply reply;
	struct qc_call c;
	int r;

	qc_call_init(&c, qc_socket(), "admin.vm.List", NULL, name);
	r = qc_admin_call(&c, &reply);
	if (r < 0) {
		qc_transport_error(r);
		return UPDATE_EXIT_FAILED;
	}
	if (reply.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: %s: %s (%s)\n", name, reply.exc_message, reply.exc_type);
		qc_reply_finish(&reply);
		return UPDATE_EXIT_FAILED;
	}
	if (!qc_token_value(reply.data, "class", cls, cls_len))
		cls[0] = '\0';
	if (!qc_token_value(reply.data, "state", state, state_len))
		state[0] = '\0';
	qc_reply_finish(&reply);
	return QC_EXIT_OK;
}

/* The running qubes whose template is TPL, printed; QC_EXIT_OK when there
 * are none, UPDATE_EXIT_FAILED otherwise. */
static int check_no_qube_runs_on(const char *tpl)
{
	struct qc_reply list;
	struct qc_call c;
	char **lines = NULL;
	size_t n = 0;
	int r, ret = QC_EXIT_OK;

	qc_call_init(&c, qc_socket(), "admin.vm.List", NULL, "dom0");
	r = qc_admin_call(&c, &list);
	if (r < 0) {
		qc_transport_error(r);
		return UPDATE_EXIT_FAILED;
	}
	if (list.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: %s (%s)\n", list.exc_message, list.exc_type);
		qc_reply_finish(&list);
		return UPDATE_EXIT_FAILED;
	}
	if (qc_split_lines(list.data, &lines, &n) < 0) {
		qc_reply_finish(&list);
		return UPDATE_EXIT_FAILED;
	}
	for (size_t i = 0; i < n; i++) {
		char cls[32], state[32], name[64];
		const char *sp = strchr(lines[i], ' ');
		struct qc_reply prop;

		if (!sp || (size_t)(sp - lines[i]) >= sizeof(name))
			continue;
		memcpy(name, lines[i], (size_t)(sp - lines[i]));
		name[sp - lines[i]] = '\0';
		if (!qc_token_value(lines[i], "class", cls, sizeof(cls)) ||
		    !qc_token_value(lines[i], "state", state, sizeof(state)) ||
		    strcmp(state, "Halted") == 0 ||
		    (strcmp(cls, "AppVM") != 0 && strcmp(cls, "DispVM") != 0) || !qc_is_valid_name(name))
			continue;
		qc_call_init(&c, qc_socket(), "admin.vm.property.Get", "template", name);
		r = qc_admin_call(&c, &prop);
		if (r < 0) {
			qc_transport_error(r);
			ret = UPDATE_EXIT_FAILED;
			break;
		}
		if (prop.kind == QC_REPLY_OK) {
			/* "default=False type=vm TEMPLATE" */
			const char *v = strrchr(prop.data, ' ');

			if (v && strcmp(v + 1, tpl) == 0) {
				fprintf(stderr, "qubectl: template update: %s (%s of %s) is %s: its root is "
						"an overlay on the template's; shut it down first\n",
					name, cls, tpl, state);
				ret = UPDATE_EXIT_FAILED;
			}
		}
		qc_reply_finish(&prop);
	}
	free(lines);
	qc_reply_finish(&list);
	return ret;
}

/* admin.vm.Shutdown+wait: QC_EXIT_OK or QC_EXIT_FAILURE (message printed) */
static int shutdown_wait(const char *name)
{
	struct qc_progress p;
	struct qc_reply reply;
	struct qc_call c;
	int r;

	qc_call_init(&c, qc_socket(), "admin.vm.Shutdown", "wait", name);
	qc_progress_attach(&c, &p, "shutting down", name);
	r = qc_admin_call(&c, &reply);
	qc_progress_end(&p);
	if (r < 0) {
		qc_transport_error(r);
		return QC_EXIT_FAILURE;
	}
	if (reply.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: cannot shut %s down: %s (%s)\n", name, reply.exc_message,
			reply.exc_type);
		qc_reply_finish(&reply);
		return QC_EXIT_FAILURE;
	}
	qc_reply_finish(&reply);
	return QC_EXIT_OK;
}

int qc_cmd_template_update(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_KEEP = 1, O_CALLDIR };
	static const struct qc_opt opts[] = {
		{ "--keep-running", 'k', false, O_KEEP },
		{ "--call-dir", 0, true, O_CALLDIR },
		{ 0 },
	};
	const char *name = NULL, *opt_dir = NULL, *v;
	bool keep = false;
	char cls[32], state[32], dir[4096], transport_name[4200];
	struct qrpc_transport t;
	struct qc_args a;
	int r, status;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case O_KEEP: keep = true; break;
		case O_CALLDIR: opt_dir = v; break;
		case QC_ARG_POSITIONAL:
			if (name)
				return qc_usage_error(cmd, "unexpected argument '%s'", v);
			name = v;
			break;
		}
	}
	if (!name)
		return qc_usage_error(cmd, "expected the template's NAME");
	if (!qc_is_valid_name(name))
		return qc_usage_error(cmd, "'%s' is not a valid qube name", name);
	if (qc_host_call_dir(opt_dir, dir, sizeof(dir)) < 0)
		return qc_usage_error(cmd, "the host-call directory's path is too long");
	snprintf(transport_name, sizeof(transport_name), "unix:%s", dir);
	if (qrpc_transport_parse(transport_name, &t) < 0)
		return qc_usage_error(cmd, "host-call directory '%s' is not usable", dir);

	r = list_one(name, cls, sizeof(cls), state, sizeof(state));
	if (r != QC_EXIT_OK)
		return r;
	if (strcmp(cls, "TemplateVM") != 0) {
		fprintf(stderr, "qubectl: template update: %s is %s %s, not a TemplateVM\n", name,
			cls[0] == 'A' ? "an" : "a", cls[0] ? cls : "qube of no class");
		return UPDATE_EXIT_FAILED;
	}
	r = check_no_qube_runs_on(name);
	if (r != QC_EXIT_OK)
		return r;
	bool was_running = strcmp(state, "Running") == 0;
	r = qc_ensure_running(name, true);
	if (r != QC_EXIT_OK)
		return r;

	signal(SIGPIPE, SIG_IGN);
	struct qcall_opts co = {
		.prog = "qubectl template update",
		.transport = &t,
		.transport_name = transport_name,
		.target = name,
		.service = "qube.VMShell",
		.argument = "",
		.prefix = (const uint8_t *)update_script,
		.prefix_len = sizeof(update_script) - 1,
		.in_fd = -1,
		.out_fd = STDOUT_FILENO,
		.discard_stderr = false,
	};
	status = qcall_run(&co);
	fflush(stdout);

	if (was_running) {
		fprintf(stderr, "qubectl: %s was running before the update: left running\n", name);
	} else if (keep) {
		fprintf(stderr, "qubectl: %s keeps running (--keep-running)\n", name);
	} else if (shutdown_wait(name) != QC_EXIT_OK && status == 0) {
		status = QC_EXIT_FAILURE;
	}
	if (status == 0)
		fprintf(stderr, "qubectl: %s updated; its qubes see the change at their next start\n", name);
	return status;
}
