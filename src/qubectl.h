/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl: the command table and what every command handler shares.
 */
#ifndef QUBECTL_H
#define QUBECTL_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes of every qubectl command. */
enum {
	QC_EXIT_OK = 0,      /* success */
	QC_EXIT_FAILURE = 1, /* the command failed (or lint found errors) */
	QC_EXIT_USAGE = 2,   /* bad command line */
};

struct qc_command;

/* A handler gets argv with argv[0] = the command's name; it returns one of
 * the QC_EXIT_* codes.  "--help" has already been handled. */
typedef int (*qc_handler)(const struct qc_command *cmd, int argc, char **argv);

struct qc_command {
	const char *group;   /* "policy", later "qube", "volume", ... */
	const char *name;    /* "lint" */
	qc_handler handler;
	const char *usage;   /* arguments after "qubectl GROUP NAME" */
	const char *summary; /* one line for the command list */
	const char *help;    /* options and details, shown by --help */
};

/* The table, terminated by an entry with group == NULL. */
extern const struct qc_command qc_commands[];

/* Prints "usage: qubectl GROUP NAME USAGE" and the help text. */
void qc_print_command_help(const struct qc_command *cmd, FILE *out);
/* Prints a usage error for CMD to stderr and returns QC_EXIT_USAGE. */
int qc_usage_error(const struct qc_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Handlers, one file per group. */
int qc_policy_lint(const struct qc_command *cmd, int argc, char **argv);
int qc_policy_eval(const struct qc_command *cmd, int argc, char **argv);

#endif
