/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl copy-to, qubectl copy-from: files between the host and a qube,
 * through the broker's host-call socket and the policy, like `qubectl run`.
 *
 *   qubectl copy-to [OPTIONS] QUBE FILE...
 *     The host (dom0) is the sender: a stream of FILEs (docs/filecopy.md)
 *     to QUBE's qube.Filecopy, which unpacks it into ~/QubesIncoming/dom0.
 *     The sender is rpc/guest/filecopy/sendlib.c in a child process.
 *
 *   qubectl copy-from [OPTIONS] QUBE PATH... --to DIR
 *     QUBE is the sender: `qube-filecopy-send --stdio -- PATH...` through
 *     qube.Exec; its stream is unpacked into DIR here by the receiver's own
 *     unpacker (rpc/guest/filecopy/unpack.c) in a child process confined as
 *     the receiver is (sandbox.c): every byte from the qube is hostile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "call-client.h"
#include "qube-exec.h"
#include "qubectl.h"
#include "sandbox.h"
#include "send.h"

#define COPY_EXIT_FAILED 1
#define COPY_EXIT_RPC_FAILED 125 /* nothing ran */
#define COPY_EXIT_REFUSED 126
#define COPY_EXIT_NO_SERVICE 127
/* the sender child: no well-formed reply arrived (the parent explains) */
#define SENDER_NO_REPLY 3

/* Closes fd unless qcall_run closed it already.  qcall_run closes its
 * input at end of file and its output at the service's exit, and opens
 * nothing after that, so a number still open is still ours. */
static void close_if_open(int fd)
{
	if (fd >= 0 && fcntl(fd, F_GETFD) >= 0)
		close(fd);
}

static int wait_child(pid_t pid)
{
	int st = 0;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The transport to the broker's host-call socket; a usage error's code or 0. */
static int host_transport(const struct qc_command *cmd, const char *opt_dir,
			  struct qrpc_transport *t, char *name, size_t namelen)
{
	char dir[4096];

	if (qc_host_call_dir(opt_dir, dir, sizeof(dir)) < 0)
		return qc_usage_error(cmd, "the host-call directory's path is too long");
	snprintf(name, namelen, "unix:%s", dir);
	if (qrpc_transport_parse(name, t) < 0)
		return qc_usage_error(cmd, "host-call directory '%s' is not usable", dir);
	return 0;
}

/* What a call that did not get to the file copy means, said once. */
static int call_failed(const char *prog, const char *qube, int r, const char *what)
{
	if (r == COPY_EXIT_REFUSED)
		fprintf(stderr, "%s: to %s: refused by policy\n", prog, qube);
	else if (r == COPY_EXIT_NO_SERVICE)
		fprintf(stderr, "%s: %s has no %s\n", prog, qube, what);
	else
		fprintf(stderr, "%s: the call to %s failed (the qube could not be reached)\n", prog,
			qube);
	return r;
}

static bool is_call_failure(int r)
{
	return r == COPY_EXIT_RPC_FAILED || r == COPY_EXIT_REFUSED || r == COPY_EXIT_NO_SERVICE;
}

enum { O_QUIET = 1, O_NOAUTO, O_CALLDIR, O_TO, O_USER };

int qc_cmd_copy_to(const struct qc_command *cmd, int argc, char **argv)
{
	static const struct qc_opt opts[] = {
		{ "--quiet", 'q', false, O_QUIET },
		{ "--no-autostart", 'n', false, O_NOAUTO },
		{ "--call-dir", 0, true, O_CALLDIR },
		{ 0 },
	};
	static const char prog[] = "qubectl copy-to";
	const char *opt_dir = NULL, *qube = NULL;
	bool quiet = false, autostart = true;
	const char **files = calloc((size_t)argc, sizeof(*files));
	int nfiles = 0, r, code;
	struct qc_args a;
	const char *v;

	if (!files)
		return QC_EXIT_FAILURE;
	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			free(files);
			return QC_EXIT_USAGE;
		case O_QUIET: quiet = true; break;
		case O_NOAUTO: autostart = false; break;
		case O_CALLDIR: opt_dir = v; break;
		case QC_ARG_POSITIONAL:
			if (!qube)
				qube = v;
			else
				files[nfiles++] = v;
			break;
		}
	}
	if (!qube || nfiles == 0) {
		free(files);
		return qc_usage_error(cmd, "expected QUBE and at least one FILE");
	}
	if (!qc_is_valid_name(qube) || strcmp(qube, "dom0") == 0) {
		free(files);
		return qc_usage_error(cmd, "'%s' is not a qube's name", qube);
	}
	struct qrpc_transport t;
	char transport_name[4200];
	if ((r = host_transport(cmd, opt_dir, &t, transport_name, sizeof(transport_name)))) {
		free(files);
		return r;
	}

	/* every name is checked before anything is sent or started */
	struct qfc_sender *s = qfc_sender_new(prog, quiet);
	if (!s) {
		free(files);
		return QC_EXIT_FAILURE;
	}
	for (int i = 0; i < nfiles; i++) {
		if (qfc_sender_add(s, files[i], false) < 0) {
			qfc_sender_free(s);
			free(files);
			return COPY_EXIT_FAILED;
		}
	}
	free(files);
	r = qc_ensure_running(qube, autostart);
	if (r != QC_EXIT_OK) {
		qfc_sender_free(s);
		return r;
	}

	/* the sender in a child: its stream is the service's stdin, the
	 * service's stdout (the reply) comes back to it */
	int stream[2], reply[2];
	if (pipe2(stream, O_CLOEXEC) < 0 || pipe2(reply, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		qfc_sender_free(s);
		return COPY_EXIT_RPC_FAILED;
	}
	signal(SIGPIPE, SIG_IGN);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		qfc_sender_free(s);
		return COPY_EXIT_RPC_FAILED;
	}
	if (pid == 0) {
		bool got = false;
		close(stream[0]);
		close(reply[1]);
		int sr = qfc_sender_send(s, stream[1]);
		close(stream[1]);
		int rr = qfc_sender_read_reply(s, reply[0], &got);
		if (!got)
			_exit(SENDER_NO_REPLY);
		_exit(sr == 0 && rr == 0 ? 0 : COPY_EXIT_FAILED);
	}
	close(stream[1]);
	close(reply[0]);
	fcntl(reply[1], F_SETFL, fcntl(reply[1], F_GETFL) | O_NONBLOCK);
	struct qcall_opts co = {
		.prog = prog,
		.transport = &t,
		.transport_name = transport_name,
		.target = qube,
		.service = "qube.Filecopy",
		.argument = "",
		.in_fd = stream[0],
		.out_fd = reply[1],
	};
	r = qcall_run(&co);
	/* the sender sees the end of the reply, or a write error, and ends */
	close_if_open(stream[0]);
	close_if_open(reply[1]);
	if (is_call_failure(r)) {
		/* nothing was received: the sender's own view (no reply) would
		 * only repeat it less clearly */
		kill(pid, SIGKILL);
		wait_child(pid);
		code = call_failed(prog, qube, r, "qube.Filecopy service");
	} else {
		code = wait_child(pid);
		if (code == SENDER_NO_REPLY) {
			fprintf(stderr, "%s: no reply from %s's receiver (it ended with status %d): "
				"nothing is confirmed\n", prog, qube, r);
			code = COPY_EXIT_FAILED;
		} else if (code != 0) {
			code = COPY_EXIT_FAILED;
		}
	}
	qfc_sender_free(s);
	return code;
}

int qc_cmd_copy_from(const struct qc_command *cmd, int argc, char **argv)
{
	static const struct qc_opt opts[] = {
		{ "--to", 't', true, O_TO },
		{ "--quiet", 'q', false, O_QUIET },
		{ "--no-autostart", 'n', false, O_NOAUTO },
		{ "--user", 'u', true, O_USER },
		{ "--call-dir", 0, true, O_CALLDIR },
		{ 0 },
	};
	static const char prog[] = "qubectl copy-from";
	const char *opt_dir = NULL, *qube = NULL, *to = NULL, *user = NULL;
	bool quiet = false, autostart = true;
	/* qube-filecopy-send --stdio --quiet -- PATH... NULL */
	char **sargv = calloc((size_t)argc + 5, sizeof(*sargv));
	int sargc = 0, r;
	struct qc_args a;
	const char *v;

	if (!sargv)
		return QC_EXIT_FAILURE;
	sargv[sargc++] = "qube-filecopy-send";
	sargv[sargc++] = "--stdio";
	sargv[sargc++] = "--quiet";
	sargv[sargc++] = "--";
	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			free(sargv);
			return QC_EXIT_USAGE;
		case O_TO: to = v; break;
		case O_QUIET: quiet = true; break;
		case O_NOAUTO: autostart = false; break;
		case O_USER: user = v; break;
		case O_CALLDIR: opt_dir = v; break;
		case QC_ARG_POSITIONAL:
			if (!qube)
				qube = v;
			else if (!v[0]) {
				free(sargv);
				return qc_usage_error(cmd, "a PATH is empty");
			} else
				sargv[sargc++] = (char *)v;
			break;
		}
	}
	int npaths = sargc - 4;
	if (!qube || npaths == 0 || !to) {
		free(sargv);
		return qc_usage_error(cmd, "expected QUBE, at least one PATH and --to DIR");
	}
	if (!qc_is_valid_name(qube) || strcmp(qube, "dom0") == 0) {
		free(sargv);
		return qc_usage_error(cmd, "'%s' is not a qube's name", qube);
	}
	uint8_t *prefix = NULL;
	size_t prefix_len = 0;
	r = qexec_encode(user, sargv, (size_t)sargc, &prefix, &prefix_len);
	free(sargv);
	if (r == -EINVAL && user)
		return qc_usage_error(cmd, "--user '%s': not a valid user name", user);
	if (r == -E2BIG)
		return qc_usage_error(cmd, "the PATHs are over %u bytes or %u arguments",
				      QEXEC_BODY_MAX, QEXEC_ARGC_MAX);
	if (r < 0)
		return QC_EXIT_FAILURE;
	struct qrpc_transport t;
	char transport_name[4200];
	if ((r = host_transport(cmd, opt_dir, &t, transport_name, sizeof(transport_name)))) {
		free(prefix);
		return r;
	}
	int dir_fd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		fprintf(stderr, "%s: --to %s: %s\n", prog, to, strerror(errno));
		free(prefix);
		return COPY_EXIT_FAILED;
	}
	r = qc_ensure_running(qube, autostart);
	if (r != QC_EXIT_OK) {
		close(dir_fd);
		free(prefix);
		return r;
	}

	/* the unpacker in a confined child: the service's stdout is its
	 * stream, its reply record goes to the service's stdin (after the
	 * qube.Exec header) */
	int stream[2], reply[2];
	if (pipe2(stream, O_CLOEXEC) < 0 || pipe2(reply, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		close(dir_fd);
		free(prefix);
		return COPY_EXIT_RPC_FAILED;
	}
	struct qfc_limits l;
	qfc_limits_default(&l);
	struct qfc_unpack_child child;
	r = qfc_unpack_child_start(stream[0], reply[1], dir_fd, &l, prog,
				   !quiet && isatty(STDERR_FILENO), &child);
	close(stream[0]);
	close(reply[1]);
	close(dir_fd);
	if (r < 0) {
		fprintf(stderr, "%s: cannot start the unpacker: %s\n", prog, strerror(-r));
		close(stream[1]);
		close(reply[0]);
		free(prefix);
		return COPY_EXIT_RPC_FAILED;
	}
	signal(SIGPIPE, SIG_IGN);
	fcntl(stream[1], F_SETFL, fcntl(stream[1], F_GETFL) | O_NONBLOCK);
	struct qcall_opts co = {
		.prog = prog,
		.transport = &t,
		.transport_name = transport_name,
		.target = qube,
		.service = "qube.Exec",
		.argument = "",
		.prefix = prefix,
		.prefix_len = prefix_len,
		.in_fd = reply[0],
		.out_fd = stream[1],
	};
	r = qcall_run(&co);
	free(prefix);
	/* the unpacker sees the end of its stream */
	close_if_open(stream[1]);
	close_if_open(reply[0]);
	struct qfc_reply rep = { 0 };
	char msg[QFC_REPLY_MAX_MSG + 1];
	int ur = qfc_unpack_child_finish(&child, &rep, msg, sizeof(msg));
	if (is_call_failure(r) && rep.entries == 0)
		return call_failed(prog, qube, r, "qube.Exec service or no qube-filecopy-send");
	if (ur == -EPIPE && rep.entries == 0 && r != 0) {
		/* its own message (a missing PATH, say) came on stderr */
		fprintf(stderr, "%s: the sender in %s failed (status %d): nothing copied\n", prog,
			qube, r);
		return COPY_EXIT_FAILED;
	}
	if (ur < 0) {
		fprintf(stderr, "%s: from %s: refused: %s (%" PRIu64 " entries, %" PRIu64
			" bytes stored in %s before)\n", prog, qube, msg, rep.entries,
			rep.data_bytes, to);
		return COPY_EXIT_FAILED;
	}
	/* the stream was complete and verified here; what the sender in the
	 * qube says about it changes nothing */
	return QC_EXIT_OK;
}
