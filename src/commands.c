/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qubectl command table.  A command is {group, name, handler, usage,
 * summary, help}; group NULL is a top-level verb ("qubectl ls"), a group
 * makes a two-word command ("qubectl policy lint").  Adding one is adding a
 * row here and its handler.
 */
#include <stddef.h>

#include "config.h"
#include "qubectl.h"

const struct qc_command qc_commands[] = {
	{
		.name = "ls",
		.handler = qc_cmd_ls,
		.usage = "[--all] [--format table|json|names] [--fields F,F,...]",
		.summary = "list the qubes",
		.help = "Lists the qubes (admin.vm.List, then admin.vm.property.GetAll of each).\n"
			"\n"
			"  --all, -a            also list dom0 (the AdminVM) and internal qubes\n"
			"                       (preloaded disposables among them)\n"
			"  --format, -o FORMAT  table (default): columns NAME CLASS STATE LABEL\n"
			"                       TEMPLATE MEMORY, the label in its colour when\n"
			"                       stdout is a terminal and NO_COLOR is not set;\n"
			"                       json: an array of {name, class, state,\n"
			"                       properties: {PROP: VALUE}}; names: one per line\n"
			"  --fields F,F,...     the table's columns: name, class, state or any\n"
			"                       property name\n",
	},
	{
		.name = "create",
		.handler = qc_cmd_create,
		.usage = "[--class CLASS] [--template T] --label LABEL [--property NAME=VALUE]... NAME",
		.summary = "create a qube",
		.help = "  --class, -C CLASS       AppVM (default), TemplateVM, StandaloneVM, DispVM\n"
			"  --template, -t T        the template (default: the global default_template\n"
			"                          for AppVM and DispVM; none for the others)\n"
			"  --label, -l LABEL       red, orange, yellow, green, gray, blue, purple, black\n"
			"  --property, -p N=V      set property N after creating (repeatable); if a\n"
			"                          property is refused the new qube is removed again\n",
	},
	{
		.name = "remove",
		.handler = qc_cmd_remove,
		.usage = "[--force] NAME...",
		.summary = "remove qubes and all their volumes",
		.help = "Asks for confirmation on a terminal; without a terminal it refuses\n"
			"unless --force is given.\n"
			"\n"
			"  --force, -f   do not ask\n",
	},
	{
		.name = "clone",
		.handler = qc_cmd_clone,
		.usage = "SRC DST",
		.summary = "copy a halted qube with its volumes and properties",
		.help = "Sends qube.vm.Clone+DST to SRC.\n",
	},
	{
		.name = "start",
		.handler = qc_cmd_start,
		.usage = "NAME...",
		.summary = "start qubes",
		.help = "Returns once each qube's agent answers.  On a terminal, a start that\n"
			"takes over a second shows a spinner and the seconds elapsed on stderr.\n",
	},
	{
		.name = "shutdown",
		.handler = qc_cmd_shutdown,
		.usage = "[--wait] [--timeout SECS] [--force] [--all | NAME...]",
		.summary = "shut qubes down",
		.help = "  --wait, -w        return once each qube has halted\n"
			"  --timeout SECS    wait at most SECS per qube, then kill it (implies\n"
			"                    --wait)\n"
			"  --force, -f       shut down even if other running qubes use it\n"
			"  --all, -a         every qube that is not halted (dom0 excepted)\n",
	},
	{
		.name = "kill",
		.handler = qc_cmd_kill,
		.usage = "NAME...",
		.summary = "stop qubes at once (power off)",
		.help = "Sends admin.vm.Kill to each qube.\n",
	},
	{
		.name = "pause",
		.handler = qc_cmd_pause,
		.usage = "NAME...",
		.summary = "pause running qubes",
		.help = "Sends admin.vm.Pause to each qube.\n",
	},
	{
		.name = "unpause",
		.handler = qc_cmd_unpause,
		.usage = "NAME...",
		.summary = "resume paused qubes",
		.help = "Sends admin.vm.Unpause to each qube.\n",
	},
	{
		.name = "run",
		.handler = qc_cmd_run,
		.usage = "[OPTIONS] QUBE -- CMD [ARG...] | --shell QUBE LINE | --dispvm[=TPL] -- CMD... | "
			 "--service SVC[+ARG] QUBE",
		.summary = "run a command or a service in a qube (through the policy)",
		.help = "A call from dom0 through the broker: the policy decides it like any\n"
			"other (service qube.Exec for a command, qube.VMShell for --shell).\n"
			"CMD and its arguments reach the qube as an argv, never through a shell.\n"
			"\n"
			"  --pass-io, -p        relay stdin, stdout and stderr (without it stdin is\n"
			"                       empty and the output is discarded)\n"
			"  --user, -u USER      run CMD as USER in the qube (needs the service to\n"
			"                       run as root there)\n"
			"  --no-autostart, -n   fail if QUBE is not running (default: start it\n"
			"                       first, with progress on a terminal)\n"
			"  --shell              QUBE LINE: run the shell line LINE (qube.VMShell)\n"
			"  --gui, -g            run CMD as a graphical program (qube.StartApp): its\n"
			"                       windows appear on the qube compositor, framed in\n"
			"                       the qube's colour\n"
			"  --dispvm[=TPL]       run in a new disposable from TPL (default: the\n"
			"                       global default_dispvm), destroyed afterwards;\n"
			"                       policy target @dispvm[:TPL]\n"
			"  --service, -s SVC[+ARG] QUBE   call any service; stdio relayed\n"
			"  --call-dir DIR       the broker's host-call directory (default\n"
			"                       $QUBE_HOST_CALLS, else host-calls beside qubed's\n"
			"                       socket)\n"
			"\n"
			"Exit status: the command's (or the service's); 126 refused by the\n"
			"policy; 125 nothing ran (qube not started, broker unreachable, RPC\n"
			"failure); 127 the command or service does not exist in the qube;\n"
			"2 usage error.\n",
	},
	{
		.name = "copy-to",
		.handler = qc_cmd_copy_to,
		.usage = "[--quiet] [--no-autostart] QUBE FILE...",
		.summary = "copy files from the host into a qube (qube.Filecopy)",
		.help = "The host (dom0) sends FILEs (regular files, directories with everything\n"
			"below them, symlinks inside them) to QUBE's qube.Filecopy through the\n"
			"broker and the policy; they land in QUBE's ~/QubesIncoming/dom0/.  Every\n"
			"name is checked with the receiver's rules before anything is sent.\n"
			"\n"
			"  --quiet, -q          no progress line (shown on a terminal: entries,\n"
			"                       MiB of MiB, rate)\n"
			"  --no-autostart, -n   fail if QUBE is not running (default: start it)\n"
			"  --call-dir DIR       the broker's host-call directory (as for run)\n"
			"\n"
			"Exit status: 0 the receiver confirmed everything; 1 refused by the\n"
			"receiver (its reason is shown) or not confirmed; 126 refused by the\n"
			"policy; 125 nothing ran (qube not started, broker unreachable); 127 QUBE\n"
			"has no qube.Filecopy; 2 usage error.\n",
	},
	{
		.name = "copy-from",
		.handler = qc_cmd_copy_from,
		.usage = "[--quiet] [--no-autostart] [--user USER] QUBE PATH... --to DIR",
		.summary = "copy files from a qube to the host",
		.help = "Runs `qube-filecopy-send --stdio -- PATH...` in QUBE (qube.Exec, so the\n"
			"policy must allow qube.Exec from dom0) and unpacks its stream into DIR\n"
			"here, in a child process confined as the qube.Filecopy receiver is: an\n"
			"existing name is never replaced (the new one gets a suffix), names and\n"
			"symlinks must pass the receiver's checks, nothing can be written outside\n"
			"DIR.  Relative PATHs are relative to the service's directory (the user's\n"
			"home with --user).\n"
			"\n"
			"  --to, -t DIR         where the files go (required; must exist)\n"
			"  --user, -u USER      run the sender as USER in the qube\n"
			"  --quiet, -q          no progress line on a terminal\n"
			"  --no-autostart, -n   fail if QUBE is not running (default: start it)\n"
			"  --call-dir DIR       the broker's host-call directory (as for run)\n"
			"\n"
			"Exit status: 0 the stream was complete and verified here; 1 it was\n"
			"refused (the reason, and what was stored before, are shown) or the\n"
			"sender failed; 126 refused by the policy; 125 nothing ran; 127 no\n"
			"qube.Exec or qube-filecopy-send in QUBE; 2 usage error.\n",
	},
	{
		.name = "prefs",
		.handler = qc_cmd_prefs,
		.usage = "[--default] [--help-property PROP] QUBE [PROP [VALUE]]",
		.summary = "show or set a qube's properties",
		.help = "No PROP: every property as \"NAME  D|-  VALUE\" (D: the default value).\n"
			"PROP: its value.  PROP VALUE: sets it.  '-' in PROP is read as '_'.\n"
			"\n"
			"  --default, -D          reset PROP to its default\n"
			"  --help-property PROP   the property's description\n",
	},
	{
		.name = "global-prefs",
		.handler = qc_cmd_global_prefs,
		.usage = "[--default] [--help-property PROP] [PROP [VALUE]]",
		.summary = "show or set the global properties",
		.help = "As prefs, for the global properties (admin.property.*), such as\n"
			"default_template.\n"
			"\n"
			"  --default, -D          reset PROP to its default\n"
			"  --help-property PROP   the property's description\n",
	},
	{
		.name = "tags",
		.handler = qc_cmd_tags,
		.usage = "QUBE [list|add|del] [TAG...]",
		.summary = "list, add or remove a qube's tags",
		.help = "list (default; ls, l): all tags, or the given ones that are set (exit 1\n"
			"if one is not); add (a, set) TAG...; del (d, unset, u) TAG....\n",
	},
	{
		.name = "features",
		.handler = qc_cmd_features,
		.usage = "[--unset] QUBE [KEY [VALUE]]",
		.summary = "show or set a qube's features",
		.help = "No KEY: every feature as \"KEY  VALUE\".  KEY: its value.  KEY VALUE:\n"
			"sets it.\n"
			"\n"
			"  --unset, --delete, -D   remove KEY\n",
	},
	{
		.group = "volume",
		.name = "list",
		.handler = qc_cmd_volume_list,
		.usage = "QUBE...",
		.summary = "list a qube's volumes with size and usage",
		.help = "Prints VOLUME (QUBE:NAME), SIZE and USAGE in bytes, and RW.\n",
	},
	{
		.group = "volume",
		.name = "info",
		.handler = qc_cmd_volume_info,
		.usage = "QUBE:VOLUME [KEY]",
		.summary = "show a volume's properties",
		.help = "Prints the key=value lines of admin.vm.volume.Info (pool, vid, size,\n"
			"usage, rw, source, path, save_on_stop, snap_on_start,\n"
			"revisions_to_keep, ephemeral), or the value of KEY alone.\n",
	},
	{
		.group = "volume",
		.name = "resize",
		.handler = qc_cmd_volume_resize,
		.usage = "QUBE:VOLUME SIZE",
		.summary = "grow a volume",
		.help = "SIZE in bytes, or with a suffix K, M, G, T (or KiB, MiB, GiB, TiB;\n"
			"powers of 1024).  Volumes only grow.\n",
	},
	{
		.group = "volume",
		.name = "revert",
		.handler = qc_cmd_volume_revert,
		.usage = "QUBE:VOLUME [REVISION]",
		.summary = "revert a volume to its kept revision",
		.help = "The qube must be halted.  REVISION as listed by qubed (default: the\n"
			"latest).\n",
	},
	{
		.group = "template",
		.name = "import",
		.handler = qc_cmd_template_import,
		.usage = "--kernel FILE --initrd FILE [--root IMAGE] [--label LABEL] NAME",
		.summary = "create a template from a kernel, an initrd and a root image",
		.help = "Creates TemplateVM NAME, then streams each file to qubed\n"
			"(qube.template.Import); qubectl opens the files, qubed never opens a\n"
			"client's path.  If an import fails the new template is removed again.\n"
			"\n"
			"  --kernel, -k FILE    the guest kernel (at most 512 MiB)\n"
			"  --initrd, -i FILE    its initramfs (at most 512 MiB)\n"
			"  --root, -r IMAGE     a raw or qcow2 root image (at most 64 GiB)\n"
			"  --label, -l LABEL    the template's label (default black)\n",
	},
	{
		.group = "template",
		.name = "update",
		.handler = qc_cmd_template_update,
		.usage = "[--keep-running] [--call-dir DIR] NAME",
		.summary = "update a template's packages (apt-get through the host's updates proxy)",
		.help = "Starts TemplateVM NAME if it is halted, runs `apt-get update && apt-get -y\n"
			"upgrade` in it as root (qube.VMShell from dom0, through the broker and its\n"
			"policy), shows the output, and shuts the template down again.  The\n"
			"template has no network: apt reaches the mirrors through qube.UpdatesProxy\n"
			"and the host's proxy, which serves the hosts of\n"
			"/etc/qube/updates-proxy.conf.  Refused while an AppVM or DispVM based on\n"
			"NAME runs.  AppVMs see the change at their next start.\n"
			"\n"
			"  --keep-running, -k   leave the template running afterwards (one that was\n"
			"                       running before is always left running)\n"
			"  --call-dir DIR       the broker's host-call directory (as for run)\n"
			"\n"
			"Exit status: apt's; 126 refused by the policy; 125 nothing ran (not a\n"
			"TemplateVM, qubes based on it running, start failed, broker unreachable);\n"
			"127 no apt-get in the template; 1 updated but the shutdown failed; 2 usage\n"
			"error.\n",
	},
	{
		.name = "events",
		.handler = qc_cmd_events,
		.usage = "",
		.summary = "print qubed's events until interrupted",
		.help = "One line per event: SUBJECT EVENT KEY=VALUE...  Exit status 3 when\n"
			"qubed closes the stream.\n",
	},
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
	{
		.group = "policy",
		.name = "ask-agent",
		.handler = qc_policy_ask_agent,
		.usage = "[--ask-socket PATH] [--timeout SECS]",
		.summary = "answer the broker's ask questions on this terminal",
		.help = "Connects to the broker's ask interface and shows each question (a call\n"
			"the policy says to ask about): source, service, argument, requested\n"
			"target and the targets the policy allows, numbered.  Answer with a\n"
			"number or a name to allow that target, Enter for the default, n to\n"
			"deny.  A question not answered in time is denied; one whose caller\n"
			"went away is withdrawn.\n"
			"\n"
			"  --ask-socket PATH    the broker's ask socket (default ask.sock beside\n"
			"                       qubed's socket)\n"
			"  --timeout, -t SECS   deny after SECS without an answer (default 50;\n"
			"                       the broker's own limit is its --ask-timeout)\n"
			"\n"
			"Exit status: 0 when input ended, 1 when the broker closed the socket,\n"
			"3 when the socket cannot be reached.\n",
	},
	{ .name = NULL },
};
