/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl: the command table and what every command handler shares.
 */
#ifndef QUBECTL_H
#define QUBECTL_H

#include <stdbool.h>
#include <stdio.h>

#include "admin-client.h"

/* Exit codes of every qubectl command. */
enum {
	QC_EXIT_OK = 0,      /* success */
	QC_EXIT_FAILURE = 1, /* the command failed (or lint found errors) */
	QC_EXIT_USAGE = 2,   /* bad command line */
	QC_EXIT_NO_DAEMON = 3, /* qubed cannot be reached or gave no usable reply */
};

struct qc_command;

/* A handler gets argv with argv[0] = the command's name; it returns one of
 * the QC_EXIT_* codes.  "--help" has already been handled. */
typedef int (*qc_handler)(const struct qc_command *cmd, int argc, char **argv);

struct qc_command {
	const char *group;   /* "policy", "volume", ...; NULL for a top-level verb */
	const char *name;    /* "lint", "ls" */
	qc_handler handler;
	const char *usage;   /* arguments after "qubectl [GROUP] NAME" */
	const char *summary; /* one line for the command list */
	const char *help;    /* options and details, shown by --help */
};

/* The table, terminated by an entry with name == NULL. */
extern const struct qc_command qc_commands[];

/* Prints "usage: qubectl GROUP NAME USAGE" and the help text. */
void qc_print_command_help(const struct qc_command *cmd, FILE *out);
/* Prints a usage error for CMD to stderr and returns QC_EXIT_USAGE. */
int qc_usage_error(const struct qc_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The admin socket: --socket, else $QUBED_SOCKET, else QC_DEFAULT_SOCKET. */
const char *qc_socket(void);

/* Command-line options of one command.  Options may come before or after
 * the positional arguments; "--" ends them; "--opt=VALUE" and "--opt
 * VALUE" both work; short options do not cluster. */
struct qc_opt {
	const char *name; /* "--wait" */
	char short_name;  /* 'f', or 0 */
	bool has_value;
	int id;           /* > 0, returned by qc_args_next */
};

struct qc_args {
	const struct qc_command *cmd;
	int argc;
	char **argv;
	int i;
	bool opts_done;
};

#define QC_ARG_POSITIONAL 0
#define QC_ARG_END (-1)
#define QC_ARG_ERROR (-2) /* a usage error has been printed */

void qc_args_init(struct qc_args *a, const struct qc_command *cmd, int argc, char **argv);
/* The next option (its id, *ret_value its value or NULL), a positional
 * argument (QC_ARG_POSITIONAL, *ret_value), QC_ARG_END or QC_ARG_ERROR. */
int qc_args_next(struct qc_args *a, const struct qc_opt *opts, const char **ret_value);

/* Performs c; on an exception prints "qubectl: WHAT: MESSAGE (TYPE)" and
 * returns QC_EXIT_FAILURE; on a transport failure prints what happened
 * with the socket path and returns QC_EXIT_NO_DAEMON; on success returns
 * QC_EXIT_OK and, if ret is not NULL, hands the reply over (release it
 * with qc_reply_finish). */
int qc_run(const char *what, const struct qc_call *c, struct qc_reply *ret);
/* qc_run of METHOD+ARG to DEST with PAYLOAD (a string, or NULL). */
int qc_simple(const char *what, const char *method, const char *arg, const char *dest,
	      const char *payload, struct qc_reply *ret);
/* Prints the message for a transport error r of a call to qubed. */
int qc_transport_error(int r);

/* Qube names as in docs: 1-31 bytes of [A-Za-z0-9_.-], a letter first. */
bool qc_is_valid_name(const char *s);
/* Splits the data of a reply into lines (in place): *ret_lines is a heap
 * array of pointers into data, count in *ret_n.  0 or -ENOMEM. */
int qc_split_lines(char *data, char ***ret_lines, size_t *ret_n);
/* Finds "KEY=" among the space-separated tokens of line; NULL if absent.
 * The returned value runs to the next space (copied into buf). */
const char *qc_token_value(const char *line, const char *key, char *buf, size_t bufsize);
/* Undoes GetAll's escaping ("\\n" -> newline, "\\\\" -> backslash) in place. */
void qc_unescape(char *s);
/* Asks "PROMPT [y/N] " on the terminal; true for y/yes. */
bool qc_confirm(const char *prompt);

/* Handlers, one file per group. */
int qc_policy_lint(const struct qc_command *cmd, int argc, char **argv);
int qc_policy_eval(const struct qc_command *cmd, int argc, char **argv);
int qc_policy_ask_agent(const struct qc_command *cmd, int argc, char **argv);

int qc_cmd_create(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_remove(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_clone(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_start(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_shutdown(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_kill(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_pause(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_unpause(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_ls(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_prefs(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_global_prefs(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_tags(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_features(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_volume_list(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_volume_info(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_volume_resize(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_volume_revert(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_template_import(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_template_update(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_events(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_run(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_copy_to(const struct qc_command *cmd, int argc, char **argv);
int qc_cmd_copy_from(const struct qc_command *cmd, int argc, char **argv);
/* src/cmd-run.c, shared with src/cmd-copy.c: the host-call directory
 * (--call-dir, $QUBE_HOST_CALLS, else beside qubed's socket), and a start
 * of NAME through qubed unless it runs (QC_EXIT_OK or 125). */
int qc_host_call_dir(const char *opt, char *buf, size_t len);
int qc_ensure_running(const char *name, bool autostart);

#endif
