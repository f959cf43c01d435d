/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qubectl command table.  A command is {group, name, handler, usage,
 * summary, help}; adding one is adding a row here and its handler.
 */
#include <stddef.h>

#include "config.h"
#include "qubectl.h"

const struct qc_command qc_commands[] = {
	{
		.group = "policy",
		.name = "lint",
		.handler = qc_policy_lint,
		.usage = "[--policy-dir DIR]",
		.summary = "check the RPC policy files for errors",
		.help = "Loads every *.policy file of the policy directory (default "
			QUBE_POLICY_DIR ")\n"
			"with its includes and prints every problem as FILE:LINE: message.\n"
			"\n"
			"  --policy-dir DIR   the policy directory to check\n"
			"\n"
			"Exit status: 0 when the policy is valid, 1 when it has errors (then\n"
			"every RPC request is denied), 2 on a usage error.\n",
	},
	{
		.group = "policy",
		.name = "eval",
		.handler = qc_policy_eval,
		.usage = "[--policy-dir DIR] [--explain] --system-info FILE SOURCE TARGET "
			 "SERVICE[+ARG]",
		.summary = "show the policy decision for one RPC request",
		.help = "Evaluates a call of SERVICE (with argument ARG) from qube SOURCE to\n"
			"TARGET (a qube name, @default, @adminvm, @dispvm or @dispvm:NAME) and\n"
			"prints the decision as key=value lines, like Qubes' policy daemon:\n"
			"  result=allow, target=, autostart=yes|no, user= (when set),\n"
			"  requested_target=;  result=deny alone;  result=ask, targets=,\n"
			"  default_target=, autostart=, user= (when set), requested_target=.\n"
			"\n"
			"  --policy-dir DIR     the policy directory (default " QUBE_POLICY_DIR ")\n"
			"  --system-info FILE   the qubes, as qrexec's system-info JSON:\n"
			"                       {\"domains\": {\"NAME\": {\"type\": \"AppVM\", \"tags\": [],\n"
			"                       \"template_for_dispvms\": false, \"default_dispvm\":\n"
			"                       null, \"icon\": \"red\", \"power_state\": \"Running\"}}}\n"
			"  --explain            also print the deciding rule (FILE:LINE) and the\n"
			"                       reason on stderr\n"
			"\n"
			"Exit status: 0 when a decision was printed (deny included), 1 when the\n"
			"policy directory or the system information cannot be read, 2 on a\n"
			"usage error.\n",
	},
	{ .group = NULL },
};
