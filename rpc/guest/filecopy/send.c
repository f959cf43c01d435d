/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qube.Filecopy sender, one program under five names:
 *   qube-copy FILE...            qube-move FILE...          (target @default)
 *   qube-copy-to QUBE FILE...    qube-move-to QUBE FILE...
 *   qube-filecopy-send [--move] [--quiet] (--to QUBE | --stdio) FILE...
 * With a target it runs `qube-call TARGET qube.Filecopy` ($QUBE_CALL, and
 * $QUBE_CALL_TRANSPORT as its --transport) and joins its stdin/stdout;
 * with --stdio the stream goes to stdout and the reply is read from stdin
 * (for a host program that made the call itself, e.g. qubectl copy-to).
 * A move deletes the sent files only after the receiver confirmed exactly
 * the entries, bytes and CRC that were sent.
 */
#include "send.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: qube-copy [--quiet] FILE...        qube-move [--quiet] FILE...\n"
		"       qube-copy-to [--quiet] QUBE FILE... qube-move-to [--quiet] QUBE FILE...\n"
		"       qube-filecopy-send [--move] [--quiet] (--to QUBE | --stdio) FILE...\n"
		"Copies (or moves) files and directories to ~/QubesIncoming/SOURCE in another qube\n"
		"through the qube.Filecopy service.  qube-copy/qube-move let the policy choose the\n"
		"target (@default).  Exit status: 0 done; 1 failed; 126 refused by policy; 125 the\n"
		"call failed (target could not start); 127 the target has no qube.Filecopy.\n");
	(void)prog;
}

static int run(struct qfc_sender *s, const char *prog, int nfiles, char **files,
	       const char *target, bool stdio_mode, bool move);

int main(int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');
	const char *prog = slash ? slash + 1 : argv[0];
	bool move = false, quiet = false, stdio_mode = false;
	const char *target = NULL;
	bool need_target_arg = false;
	if (strcmp(prog, "qube-copy") == 0) {
		target = "@default";
	} else if (strcmp(prog, "qube-move") == 0) {
		target = "@default";
		move = true;
	} else if (strcmp(prog, "qube-copy-to") == 0) {
		need_target_arg = true;
	} else if (strcmp(prog, "qube-move-to") == 0) {
		need_target_arg = true;
		move = true;
	}
	static const struct option opts[] = {
		{ "move", no_argument, NULL, 'm' }, { "quiet", no_argument, NULL, 'q' },
		{ "to", required_argument, NULL, 't' }, { "stdio", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': move = true; break;
		case 'q': quiet = true; break;
		case 't': target = optarg; break;
		case 's': stdio_mode = true; break;
		case 'h': usage(stdout, prog); return 0;
		default: usage(stderr, prog); return EXIT_USAGE;
		}
	}
	if (need_target_arg) {
		if (optind >= argc) {
			usage(stderr, prog);
			return EXIT_USAGE;
		}
		target = argv[optind++];
	}
	if (optind >= argc || (!target && !stdio_mode) || (target && stdio_mode)) {
		usage(stderr, prog);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);

	struct qfc_sender *s = qfc_sender_new(prog, quiet);
	if (!s) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_FAILED;
	}
	int code = run(s, prog, argc - optind, argv + optind, target, stdio_mode, move);
	qfc_sender_free(s);
	return code;
}

/* Walks FILES, sends them (to TARGET, or stdout when stdio_mode), reads the
 * reply, and for a move deletes what was confirmed.  Returns the exit code. */
static int run(struct qfc_sender *s, const char *prog, int nfiles, char **files,
	       const char *target, bool stdio_mode, bool move)
{
	for (int i = 0; i < nfiles; i++)
		if (qfc_sender_add(s, files[i], move) < 0)
			return EXIT_FAILED;

	int out_fd = STDOUT_FILENO, in_fd = STDIN_FILENO;
	pid_t child = -1;
	if (!stdio_mode) {
		int to[2], from[2];
		if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
			perror("pipe");
			return EXIT_FAILED;
		}
		const char *call = getenv("QUBE_CALL");
		const char *transport = getenv("QUBE_CALL_TRANSPORT");
		if (!call)
			call = "qube-call";
		child = fork();
		if (child < 0) {
			perror("fork");
			return EXIT_FAILED;
		}
		if (child == 0) {
			signal(SIGPIPE, SIG_DFL);
			if (dup2(to[0], STDIN_FILENO) < 0 || dup2(from[1], STDOUT_FILENO) < 0)
				_exit(125);
			const char *av[8];
			int k = 0;
			av[k++] = call;
			if (transport) {
				av[k++] = "--transport";
				av[k++] = transport;
			}
			av[k++] = target;
			av[k++] = "qube.Filecopy";
			av[k] = NULL;
			execvp(call, (char *const *)av);
			fprintf(stderr, "%s: cannot run %s: %s\n", prog, call, strerror(errno));
			_exit(125);
		}
		close(to[0]);
		close(from[1]);
		out_fd = to[1];
		in_fd = from[0];
	}
	int sr = qfc_sender_send(s, out_fd);
	close(out_fd);
	bool got_reply;
	int rr = qfc_sender_read_reply(s, in_fd, &got_reply);
	close(in_fd);
	int code = 0;
	if (child > 0) {
		int st;
		while (waitpid(child, &st, 0) < 0 && errno == EINTR)
			;
		code = WIFEXITED(st) ? WEXITSTATUS(st) : 125;
		if (!got_reply) {
			const char *why = code == 126 ? "refused by policy" :
					  code == 127 ? "the target has no qube.Filecopy service" :
					  code == 125 ? "the call failed (the target could not be reached)" :
							"the receiver ended without a reply";
			fprintf(stderr, "%s: to %s: %s\n", prog, target, why);
			return code == 126 || code == 125 || code == 127 ? code : EXIT_FAILED;
		}
	}
	if (sr < 0 && rr == 0)
		rr = -EIO; /* cannot be: a confirmed stream was sent whole */
	if (sr < 0 && !got_reply)
		fprintf(stderr, "%s: sending failed: %s\n", prog, strerror(-sr));
	if (rr < 0) {
		if (!got_reply)
			fprintf(stderr, "%s: no reply from the receiver: nothing is confirmed%s\n", prog,
				move ? "; nothing deleted" : "");
		else if (move)
			fprintf(stderr, "%s: nothing deleted\n", prog);
		return EXIT_FAILED;
	}
	if (move && qfc_sender_delete_sent(s) < 0)
		return EXIT_FAILED;
	return 0;
}
