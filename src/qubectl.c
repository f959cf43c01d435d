/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl: command-line front end.  "qubectl [--socket PATH] COMMAND
 * [ARGS]" for a top-level verb (ls, start, prefs, ...) and "qubectl GROUP
 * COMMAND [ARGS]" for a group (policy lint, volume info, ...); every level
 * takes --help; "qubectl --version".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "qubectl.h"

static const char *socket_option;

const char *qc_socket(void)
{
	const char *env;

	if (socket_option)
		return socket_option;
	env = getenv("QUBED_SOCKET");
	if (env && *env)
		return env;
	return QC_DEFAULT_SOCKET;
}

static void print_commands(FILE *out)
{
	fprintf(out, "usage: qubectl [--socket PATH] [--help] [--version] COMMAND [ARGS...]\n"
		     "       qubectl [--socket PATH] GROUP COMMAND [ARGS...]\n\ncommands:\n");
	for (const struct qc_command *c = qc_commands; c->name; c++) {
		char title[64];
		snprintf(title, sizeof(title), "%s%s%s", c->group ? c->group : "",
			 c->group ? " " : "", c->name);
		fprintf(out, "  %-17s  %s\n", title, c->summary);
	}
	fprintf(out, "\noptions:\n"
		     "  --socket PATH    qubed's admin socket (default: $QUBED_SOCKET, else\n"
		     "                   " QC_DEFAULT_SOCKET ")\n"
		     "\nRun \"qubectl COMMAND --help\" for a command's options.\n"
		     "Exit status: 0 success, 1 the call failed, 2 usage error, 3 qubed\n"
		     "cannot be reached.\n");
}

static bool group_exists(const char *group)
{
	for (const struct qc_command *c = qc_commands; c->name; c++)
		if (c->group && strcmp(c->group, group) == 0)
			return true;
	return false;
}

static void print_group(const char *group, FILE *out)
{
	fprintf(out, "usage: qubectl %s COMMAND [ARGS...]\n\ncommands:\n", group);
	for (const struct qc_command *c = qc_commands; c->name; c++)
		if (c->group && strcmp(c->group, group) == 0)
			fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

static void print_title(const struct qc_command *cmd, FILE *out)
{
	if (cmd->group)
		fprintf(out, "qubectl %s %s %s\n", cmd->group, cmd->name, cmd->usage);
	else
		fprintf(out, "qubectl %s %s\n", cmd->name, cmd->usage);
}

void qc_print_command_help(const struct qc_command *cmd, FILE *out)
{
	fprintf(out, "usage: ");
	print_title(cmd, out);
	fprintf(out, "\n%s.\n\n%s", cmd->summary, cmd->help);
}

int qc_usage_error(const struct qc_command *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qubectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: ");
	print_title(cmd, stderr);
	return QC_EXIT_USAGE;
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int run(const struct qc_command *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (is_help(argv[i])) {
			qc_print_command_help(c, stdout);
			return QC_EXIT_OK;
		}
	}
	return c->handler(c, argc, argv);
}

int main(int argc, char **argv)
{
	int i = 1;

	/* global options, before the command */
	while (i < argc && argv[i][0] == '-') {
		if (is_help(argv[i])) {
			print_commands(stdout);
			return QC_EXIT_OK;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("qubectl %s\n", QUBE_VERSION);
			return QC_EXIT_OK;
		}
		if (strcmp(argv[i], "--socket") == 0) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				fprintf(stderr, "qubectl: option --socket needs a value\n");
				return QC_EXIT_USAGE;
			}
			socket_option = argv[i + 1];
			i += 2;
			continue;
		}
		if (strncmp(argv[i], "--socket=", 9) == 0) {
			if (!argv[i][9]) {
				fprintf(stderr, "qubectl: option --socket needs a value\n");
				return QC_EXIT_USAGE;
			}
			socket_option = argv[i] + 9;
			i++;
			continue;
		}
		fprintf(stderr, "qubectl: unknown option \"%s\" (options before the command: "
				"--socket, --help, --version)\n", argv[i]);
		return QC_EXIT_USAGE;
	}
	if (i >= argc) {
		print_commands(stderr);
		return QC_EXIT_USAGE;
	}
	argc -= i;
	argv += i;
	for (const struct qc_command *c = qc_commands; c->name; c++)
		if (!c->group && strcmp(c->name, argv[0]) == 0)
			return run(c, argc, argv);
	if (!group_exists(argv[0])) {
		fprintf(stderr, "qubectl: unknown command \"%s\"\n", argv[0]);
		print_commands(stderr);
		return QC_EXIT_USAGE;
	}
	if (argc < 2) {
		print_group(argv[0], stderr);
		return QC_EXIT_USAGE;
	}
	if (is_help(argv[1])) {
		print_group(argv[0], stdout);
		return QC_EXIT_OK;
	}
	for (const struct qc_command *c = qc_commands; c->name; c++)
		if (c->group && strcmp(c->group, argv[0]) == 0 && strcmp(c->name, argv[1]) == 0)
			return run(c, argc - 1, argv + 1);
	fprintf(stderr, "qubectl: unknown command \"%s %s\"\n", argv[0], argv[1]);
	print_group(argv[0], stderr);
	return QC_EXIT_USAGE;
}
