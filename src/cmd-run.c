/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl run: a command in a qube, as a call from the host (dom0) through
 * the broker and its policy.
 *
 *   qubectl run [OPTIONS] QUBE -- CMD ARGS...       qube.Exec: argv, no shell
 *   qubectl run [OPTIONS] --shell QUBE 'LINE'       qube.VMShell: a shell line
 *   qubectl run [OPTIONS] --dispvm[=TPL] -- CMD...  in a new disposable
 *   qubectl run [OPTIONS] --service SVC[+ARG] QUBE  any service, stdio relayed
 *
 * The call goes to the broker's host-call socket (RUN/host-calls/vsock_513,
 * RUN being the directory of qubed's socket), where every connection is a
 * call whose source is dom0; the policy decides it like any other.  Unless
 * --no-autostart is given, the qube is started first through qubed (with
 * the same progress line as `qubectl start`).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call-client.h"
#include "qube-exec.h"
#include "qubectl.h"

#define RUN_EXIT_FAILED 125 /* QRPC_EXIT_RPC_FAILED: nothing ran */

/* The directory of the host-call socket: --call-dir, $QUBE_HOST_CALLS,
 * else "host-calls" beside qubed's socket (also qubectl copy-to/-from). */
int qc_host_call_dir(const char *opt, char *buf, size_t len)
{
	const char *env = getenv("QUBE_HOST_CALLS");
	const char *sock = qc_socket();
	const char *slash;
	int n;

	if (opt)
		n = snprintf(buf, len, "%s", opt);
	else if (env && env[0])
		n = snprintf(buf, len, "%s", env);
	else if ((slash = strrchr(sock, '/')))
		n = snprintf(buf, len, "%.*s/host-calls", (int)(slash - sock), sock);
	else
		n = snprintf(buf, len, "host-calls");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Starts NAME unless it runs already.  QC_EXIT_OK, or a run exit code
 * (also qubectl copy-to/-from). */
int qc_ensure_running(const char *name, bool autostart)
{
	struct qc_progress p;
	struct qc_reply reply;
	struct qc_call c;
	char state[32] = "";
	int r;

	qc_call_init(&c, qc_socket(), "admin.vm.List", NULL, name);
	r = qc_admin_call(&c, &reply);
	if (r < 0) {
		qc_transport_error(r);
		return RUN_EXIT_FAILED;
	}
	if (reply.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: %s: %s (%s)\n", name, reply.exc_message, reply.exc_type);
		qc_reply_finish(&reply);
		return RUN_EXIT_FAILED;
	}
	if (!qc_token_value(reply.data, "state", state, sizeof(state)))
		state[0] = '\0';
	qc_reply_finish(&reply);
	if (strcmp(state, "Running") == 0)
		return QC_EXIT_OK;
	if (!autostart || strcmp(state, "Halted") != 0) {
		fprintf(stderr, "qubectl: %s is %s%s\n", name, state[0] ? state : "in an unknown state",
			!autostart ? " (not running) and --no-autostart was given"
			: strcmp(state, "Paused") == 0 ? ": unpause it first" : ": not started");
		return RUN_EXIT_FAILED;
	}
	qc_call_init(&c, qc_socket(), "admin.vm.Start", NULL, name);
	qc_progress_attach(&c, &p, "starting", name);
	r = qc_admin_call(&c, &reply);
	qc_progress_end(&p);
	if (r < 0) {
		qc_transport_error(r);
		return RUN_EXIT_FAILED;
	}
	if (reply.kind == QC_REPLY_EXCEPTION) {
		/* running already is what we want */
		bool fine = strcmp(reply.exc_type, "QubesVMNotHaltedError") == 0 &&
			    strstr(reply.exc_message, "already running");

		if (!fine)
			fprintf(stderr, "qubectl: cannot start %s: %s (%s)\n", name,
				reply.exc_message, reply.exc_type);
		qc_reply_finish(&reply);
		return fine ? QC_EXIT_OK : RUN_EXIT_FAILED;
	}
	qc_reply_finish(&reply);
	return QC_EXIT_OK;
}

/* Says why TPL cannot give disposables, when qubed knows it cannot (the
 * broker would only report a refusal or a failure). */
static bool is_dispvm_template(const char *tpl)
{
	struct qc_reply reply;
	struct qc_call c;
	bool ok;

	qc_call_init(&c, qc_socket(), "admin.vm.property.Get", "template_for_dispvms", tpl);
	if (qc_admin_call(&c, &reply) < 0)
		return true; /* let the call say what is wrong */
	if (reply.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: --dispvm=%s: %s (%s)\n", tpl, reply.exc_message,
			reply.exc_type);
		qc_reply_finish(&reply);
		return false;
	}
	ok = strstr(reply.data, " True") != NULL;
	qc_reply_finish(&reply);
	if (!ok)
		fprintf(stderr, "qubectl: --dispvm=%s: %s is not a disposable template "
			"(template_for_dispvms=False)\n", tpl, tpl);
	return ok;
}

int qc_cmd_run(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_USER = 1, O_NOAUTO, O_PASSIO, O_SERVICE, O_SHELL, O_CALLDIR, O_GUI };
	static const struct qc_opt opts[] = {
		{ "--user", 'u', true, O_USER },
		{ "--no-autostart", 'n', false, O_NOAUTO },
		{ "--pass-io", 'p', false, O_PASSIO },
		{ "--service", 's', true, O_SERVICE },
		{ "--shell", 0, false, O_SHELL },
		{ "--gui", 'g', false, O_GUI },
		{ "--call-dir", 0, true, O_CALLDIR },
		{ 0 },
	};
	const char *user = NULL, *service_spec = NULL, *dispvm = NULL, *opt_dir = NULL;
	bool autostart = true, pass_io = false, shell = false, use_dispvm = false, gui = false;
	const char *pos[2] = { NULL, NULL };
	int npos = 0, first_cmd = -1;
	char target[QRPC_MAX_TARGET + 1];
	char service[QRPC_MAX_SERVICE + 1], argument[QRPC_MAX_ARGUMENT + 1], err[256];
	char dir[4096], transport_name[4200];
	uint8_t *prefix = NULL;
	size_t prefix_len = 0;
	int r;

	/* everything after "--" is the command, left to us */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			first_cmd = i + 1;
			argc = i;
			break;
		}
	}
	/* "--dispvm" alone means the default disposable template and
	 * "--dispvm=TPL" names one: an option with an optional value, which
	 * qc_args does not have, so it is taken out here */
	for (int i = 1; i < argc;) {
		if (strcmp(argv[i], "--dispvm") == 0 || strncmp(argv[i], "--dispvm=", 9) == 0) {
			if (use_dispvm)
				return qc_usage_error(cmd, "--dispvm given twice");
			use_dispvm = true;
			dispvm = argv[i][8] == '=' ? argv[i] + 9 : NULL;
			if (dispvm && !dispvm[0])
				return qc_usage_error(cmd, "--dispvm=: the template name is empty");
			/* only the options part moves; the command stays where it is */
			memmove(argv + i, argv + i + 1, (size_t)(argc - i - 1) * sizeof(*argv));
			argc--;
			continue;
		}
		i++;
	}
	struct qc_args a;
	const char *v;
	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case O_USER: user = v; break;
		case O_NOAUTO: autostart = false; break;
		case O_PASSIO: pass_io = true; break;
		case O_SERVICE: service_spec = v; break;
		case O_SHELL: shell = true; break;
		case O_GUI: gui = true; break;
		case O_CALLDIR: opt_dir = v; break;
		case QC_ARG_POSITIONAL:
			if (npos >= 2)
				return qc_usage_error(cmd, "unexpected argument '%s'", v);
			pos[npos++] = v;
			break;
		}
	}
	char **cmdv = first_cmd >= 0 ? argv + first_cmd : NULL;
	int cmdc = 0;
	if (cmdv)
		while (cmdv[cmdc])
			cmdc++;

	/* the qube: the first positional, unless --dispvm */
	const char *qube = NULL;
	int want_pos = use_dispvm ? 0 : 1;
	if (shell)
		want_pos++; /* the shell line */
	if (npos != want_pos)
		return qc_usage_error(cmd, use_dispvm ? "no QUBE with --dispvm%s"
				      : "expected QUBE%s",
				      shell ? " and the shell LINE" : "");
	if (!use_dispvm) {
		qube = pos[0];
		if (!qc_is_valid_name(qube))
			return qc_usage_error(cmd, "'%s' is not a valid qube name", qube);
		snprintf(target, sizeof(target), "%s", qube);
	} else if (dispvm && dispvm[0]) {
		if (!qc_is_valid_name(dispvm))
			return qc_usage_error(cmd, "--dispvm=%s: not a valid qube name", dispvm);
		snprintf(target, sizeof(target), "@dispvm:%s", dispvm);
	} else {
		snprintf(target, sizeof(target), "@dispvm");
	}
	if ((service_spec != NULL) + shell + gui > 1)
		return qc_usage_error(cmd, "--service, --shell and --gui exclude each other");
	if (service_spec || shell) {
		if (cmdv)
			return qc_usage_error(cmd, "no command after '--' with %s",
					      shell ? "--shell" : "--service");
		if (user)
			return qc_usage_error(cmd, "--user works with a command (qube.Exec) only");
	} else if (cmdc == 0) {
		return qc_usage_error(cmd, "no command: give it after '--' (or --shell, --service)");
	}

	if (service_spec) {
		pass_io = true;
		if (qcall_check(target, service_spec, service, argument, err, sizeof(err)) < 0)
			return qc_usage_error(cmd, "%s", err);
	} else if (shell) {
		const char *line = pos[npos - 1];
		size_t l = strlen(line);

		if (l > QEXEC_BODY_MAX)
			return qc_usage_error(cmd, "the shell line is over %u bytes", QEXEC_BODY_MAX);
		prefix = malloc(l + 2);
		if (!prefix)
			return QC_EXIT_FAILURE;
		memcpy(prefix, line, l);
		prefix[l] = '\n';
		prefix_len = l + 1;
		snprintf(service, sizeof(service), "qube.VMShell");
		argument[0] = '\0';
	} else {
		r = qexec_encode(user, cmdv, (size_t)cmdc, &prefix, &prefix_len);
		if (r == -EINVAL && user && !qrpc_user_name_is_valid(user))
			return qc_usage_error(cmd, "--user '%s': not a valid user name (1-32 of "
					      "[A-Za-z0-9_.-], not starting with '-' or '.')", user);
		if (r == -EINVAL)
			return qc_usage_error(cmd, "the command name is empty");
		if (r == -E2BIG)
			return qc_usage_error(cmd, "the command line is over %u bytes or %u arguments",
					      QEXEC_BODY_MAX, QEXEC_ARGC_MAX);
		if (r < 0)
			return QC_EXIT_FAILURE;
		/* --gui: the same request to qube.StartApp, which runs the
		 * program under waypipe: its windows reach the compositor */
		snprintf(service, sizeof(service), "%s", gui ? "qube.StartApp" : "qube.Exec");
		argument[0] = '\0';
	}
	if (qc_host_call_dir(opt_dir, dir, sizeof(dir)) < 0) {
		free(prefix);
		return qc_usage_error(cmd, "the host-call directory's path is too long");
	}
	snprintf(transport_name, sizeof(transport_name), "unix:%s", dir);
	struct qrpc_transport t;
	if (qrpc_transport_parse(transport_name, &t) < 0) {
		free(prefix);
		return qc_usage_error(cmd, "host-call directory '%s' is not usable", dir);
	}

	if (use_dispvm && dispvm && !is_dispvm_template(dispvm)) {
		free(prefix);
		return RUN_EXIT_FAILED;
	}
	if (!use_dispvm) {
		r = qc_ensure_running(qube, autostart);
		if (r != QC_EXIT_OK) {
			free(prefix);
			return r;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	struct qcall_opts co = {
		.prog = "qubectl run",
		.transport = &t,
		.transport_name = transport_name,
		.target = target,
		.service = service,
		.argument = argument,
		.prefix = prefix,
		.prefix_len = prefix_len,
		.in_fd = pass_io ? STDIN_FILENO : -1,
		.out_fd = pass_io ? STDOUT_FILENO : -1,
		.discard_stderr = !pass_io,
	};
	r = qcall_run(&co);
	free(prefix);
	return r;
}
