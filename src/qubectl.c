/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl: command-line front end.  "qubectl GROUP COMMAND [ARGS]"; every
 * level takes --help; "qubectl --version".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "qubectl.h"

static void print_groups(FILE *out)
{
	fprintf(out, "usage: qubectl [--help] [--version] GROUP COMMAND [ARGS...]\n\ncommands:\n");
	for (const struct qc_command *c = qc_commands; c->group; c++)
		fprintf(out, "  %-8s %-10s %s\n", c->group, c->name, c->summary);
	fprintf(out, "\nRun \"qubectl GROUP COMMAND --help\" for a command's options.\n");
}

static bool group_exists(const char *group)
{
	for (const struct qc_command *c = qc_commands; c->group; c++)
		if (strcmp(c->group, group) == 0)
			return true;
	return false;
}

static void print_group(const char *group, FILE *out)
{
	fprintf(out, "usage: qubectl %s COMMAND [ARGS...]\n\ncommands:\n", group);
	for (const struct qc_command *c = qc_commands; c->group; c++)
		if (strcmp(c->group, group) == 0)
			fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

void qc_print_command_help(const struct qc_command *cmd, FILE *out)
{
	fprintf(out, "usage: qubectl %s %s %s\n\n%s.\n\n%s", cmd->group, cmd->name, cmd->usage,
		cmd->summary, cmd->help);
}

int qc_usage_error(const struct qc_command *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qubectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: qubectl %s %s %s\n", cmd->group, cmd->name, cmd->usage);
	return QC_EXIT_USAGE;
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_groups(stderr);
		return QC_EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		print_groups(stdout);
		return QC_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("qubectl %s\n", QUBE_VERSION);
		return QC_EXIT_OK;
	}
	if (!group_exists(argv[1])) {
		fprintf(stderr, "qubectl: unknown command group \"%s\"\n", argv[1]);
		print_groups(stderr);
		return QC_EXIT_USAGE;
	}
	if (argc < 3) {
		print_group(argv[1], stderr);
		return QC_EXIT_USAGE;
	}
	if (is_help(argv[2])) {
		print_group(argv[1], stdout);
		return QC_EXIT_OK;
	}
	for (const struct qc_command *c = qc_commands; c->group; c++) {
		if (strcmp(c->group, argv[1]) != 0 || strcmp(c->name, argv[2]) != 0)
			continue;
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--") == 0)
				break;
			if (is_help(argv[i])) {
				qc_print_command_help(c, stdout);
				return QC_EXIT_OK;
			}
		}
		return c->handler(c, argc - 2, argv + 2);
	}
	fprintf(stderr, "qubectl: unknown command \"%s %s\"\n", argv[1], argv[2]);
	print_group(argv[1], stderr);
	return QC_EXIT_USAGE;
}
