/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-broker: the host RPC broker.  Command line; see docs/broker.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-broker [OPTIONS]\n"
		"\n"
		"The host RPC broker: evaluates every call a qube makes against the policy\n"
		"and joins the caller to the service in the target qube.\n"
		"\n"
		"  --policy-dir DIR          policy files (*.policy); default %s\n"
		"  --system-info FILE        qubes, types and tags (JSON); required\n"
		"  --qubes-dir DIR           unix (hybrid vsock) transport: qube NAME uses\n"
		"                            DIR/NAME/vsock (its agent) and DIR/NAME/vsock_%u\n"
		"                            (created here, its calls)\n"
		"  --vsock-map FILE          AF_VSOCK transport instead: \"CID NAME\" lines\n"
		"  --ask-socket PATH         listen here for prompt programs (ask rules);\n"
		"                            without it, or with none connected, ask denies\n"
		"  --ask-group GROUP         members of GROUP may connect to the ask socket\n"
		"                            (mode 0660; default: 0600, the broker's user only)\n"
		"  --start-socket PATH       connect here to start qubes and disposables;\n"
		"                            without it a target that is not running fails\n"
		"  --log FILE                append log lines here (default: stderr)\n"
		"  --user NAME               sandbox user when started as root (default nobody)\n"
		"  --max-per-qube N          concurrent calls from one qube (default %u)\n"
		"  --max-total N             concurrent calls in all (default %u)\n"
		"  --handshake-timeout MS    a caller must send its request within (default %u)\n"
		"  --ask-timeout MS          a prompt must answer within (default %u)\n"
		"  --start-timeout MS        the start interface must answer within (default %u)\n"
		"  --connect-timeout MS      a target agent must answer within (default %u)\n"
		"  --adminvm-socket PATH     host service runner (calls to @adminvm / dom0):\n"
		"                            a qube-host-agent's DIR/vsock; without it they fail\n"
		"  --host-calls DIR          listen on DIR/vsock_%u for calls whose source is\n"
		"                            dom0 (the host: qubectl run); DIR's permissions\n"
		"                            decide who may call as dom0\n"
		"  --max-asks-per-qube N     questions open at the prompt from one qube\n"
		"                            (default %u; more are refused)\n"
		"  --log-per-qube N          log lines per qube per 10 s before the rest are\n"
		"                            counted and summarised (default %u)\n"
		"  --selftest-seccomp        make the sandbox call a forbidden syscall after its\n"
		"                            filter is installed; exits 0 only if the kernel\n"
		"                            killed it with SIGSYS (for the test suite)\n"
		"  --help, --version\n",
		QUBE_POLICY_DIR, QRPC_PORT_BROKER, BK_DEFAULT_MAX_PER_QUBE, BK_DEFAULT_MAX_TOTAL,
		BK_DEFAULT_HANDSHAKE_MS, BK_DEFAULT_ASK_MS, BK_DEFAULT_START_MS,
		BK_DEFAULT_CONNECT_MS, QRPC_PORT_BROKER, BK_DEFAULT_MAX_ASKS, BK_DEFAULT_LOG_PER_QUBE);
}

/* True when the socket PATH lies in a directory directly below QUBES_DIR,
 * i.e. where a qube's directory would be: the broker would then give that
 * directory a caller socket and route calls for a qube of that name to the
 * host.  PATH's grandparent is resolved and compared with QUBES_DIR (a
 * symlinked directory there is never a qube's, see listen.c). */
static bool adminvm_in_qubes_dir(const char *path, const char *qubes_dir)
{
	char dir[PATH_MAX], real_q[PATH_MAX], real_d[PATH_MAX];

	if (strlen(path) >= sizeof(dir) || !realpath(qubes_dir, real_q))
		return false;
	strcpy(dir, path);
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(dir, '/');

		if (!slash)
			return false;
		*slash = '\0';
	}
	return realpath(dir[0] ? dir : "/", real_d) && strcmp(real_d, real_q) == 0;
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "qube-broker: %s: expected a number from %u to %u, got \"%s\"\n",
			opt, min, max, s);
		return -EINVAL;
	}
	*ret = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_POLICY = 256, O_SYSINFO, O_QUBES, O_VSOCK, O_ASK, O_START, O_LOG, O_USER,
		O_MAXQ, O_MAXT, O_HS, O_ASKT, O_STARTT, O_CONNT, O_SELFTEST, O_VERSION, O_ASKGRP,
		O_ADMINVM, O_MAXASK, O_LOGQ, O_HOSTCALLS,
	};
	static const struct option opts[] = {
		{ "policy-dir", required_argument, NULL, O_POLICY },
		{ "system-info", required_argument, NULL, O_SYSINFO },
		{ "qubes-dir", required_argument, NULL, O_QUBES },
		{ "vsock-map", required_argument, NULL, O_VSOCK },
		{ "ask-socket", required_argument, NULL, O_ASK },
		{ "ask-group", required_argument, NULL, O_ASKGRP },
		{ "start-socket", required_argument, NULL, O_START },
		{ "log", required_argument, NULL, O_LOG },
		{ "user", required_argument, NULL, O_USER },
		{ "max-per-qube", required_argument, NULL, O_MAXQ },
		{ "max-total", required_argument, NULL, O_MAXT },
		{ "handshake-timeout", required_argument, NULL, O_HS },
		{ "ask-timeout", required_argument, NULL, O_ASKT },
		{ "start-timeout", required_argument, NULL, O_STARTT },
		{ "connect-timeout", required_argument, NULL, O_CONNT },
		{ "adminvm-socket", required_argument, NULL, O_ADMINVM },
		{ "host-calls", required_argument, NULL, O_HOSTCALLS },
		{ "max-asks-per-qube", required_argument, NULL, O_MAXASK },
		{ "log-per-qube", required_argument, NULL, O_LOGQ },
		{ "selftest-seccomp", no_argument, NULL, O_SELFTEST },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ 0 },
	};
	struct bk_config cfg = {
		.policy_dir = QUBE_POLICY_DIR,
		.user = "nobody",
		.max_per_qube = BK_DEFAULT_MAX_PER_QUBE,
		.max_total = BK_DEFAULT_MAX_TOTAL,
		.handshake_ms = BK_DEFAULT_HANDSHAKE_MS,
		.ask_timeout_ms = BK_DEFAULT_ASK_MS,
		.start_timeout_ms = BK_DEFAULT_START_MS,
		.connect_timeout_ms = BK_DEFAULT_CONNECT_MS,
		.max_asks_per_qube = BK_DEFAULT_MAX_ASKS,
		.log_per_qube = BK_DEFAULT_LOG_PER_QUBE,
	};
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_POLICY: cfg.policy_dir = optarg; break;
		case O_SYSINFO: cfg.system_info = optarg; break;
		case O_QUBES: cfg.qubes_dir = optarg; break;
		case O_VSOCK: cfg.vsock_map = optarg; break;
		case O_ASK: cfg.ask_socket = optarg; break;
		case O_ASKGRP: cfg.ask_group = optarg; break;
		case O_START: cfg.start_socket = optarg; break;
		case O_LOG: cfg.log_path = optarg; break;
		case O_USER: cfg.user = optarg; break;
		case O_MAXQ: r = parse_uint("--max-per-qube", optarg, 1, 65536, &cfg.max_per_qube); break;
		case O_MAXT: r = parse_uint("--max-total", optarg, 1, 65536, &cfg.max_total); break;
		case O_HS: r = parse_uint("--handshake-timeout", optarg, 10, 3600000, &cfg.handshake_ms); break;
		case O_ASKT: r = parse_uint("--ask-timeout", optarg, 10, 3600000, &cfg.ask_timeout_ms); break;
		case O_STARTT: r = parse_uint("--start-timeout", optarg, 10, 3600000, &cfg.start_timeout_ms); break;
		case O_CONNT: r = parse_uint("--connect-timeout", optarg, 10, 3600000, &cfg.connect_timeout_ms); break;
		case O_ADMINVM: cfg.adminvm_socket = optarg; break;
		case O_HOSTCALLS: cfg.host_calls_dir = optarg; break;
		case O_MAXASK:
			r = parse_uint("--max-asks-per-qube", optarg, 1, 65536,
				       &cfg.max_asks_per_qube);
			break;
		case O_LOGQ:
			r = parse_uint("--log-per-qube", optarg, 1, 1000000, &cfg.log_per_qube);
			break;
		case O_SELFTEST: cfg.selftest_seccomp = true; break;
		case 'h': usage(stdout); return 0;
		case O_VERSION: printf("qube-broker %s\n", QUBE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
		if (r < 0)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "qube-broker: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (!cfg.system_info) {
		fprintf(stderr, "qube-broker: --system-info FILE is required\n");
		return 2;
	}
	if (!cfg.qubes_dir == !cfg.vsock_map) {
		fprintf(stderr, "qube-broker: give exactly one of --qubes-dir DIR and --vsock-map FILE\n");
		return 2;
	}
	if (cfg.adminvm_socket && cfg.qubes_dir &&
	    adminvm_in_qubes_dir(cfg.adminvm_socket, cfg.qubes_dir)) {
		fprintf(stderr, "qube-broker: --adminvm-socket %s is in a qube's directory of "
				"--qubes-dir %s: the host service runner needs its own place\n",
			cfg.adminvm_socket, cfg.qubes_dir);
		return 2;
	}
	if (cfg.host_calls_dir && cfg.qubes_dir) {
		char probe[PATH_MAX];
		int n = snprintf(probe, sizeof(probe), "%s/vsock_%u", cfg.host_calls_dir,
				 QRPC_PORT_BROKER);

		/* a qube's directory there would be both a qube and the host */
		if (n < 0 || (size_t)n >= sizeof(probe) ||
		    adminvm_in_qubes_dir(probe, cfg.qubes_dir)) {
			fprintf(stderr, "qube-broker: --host-calls %s is a qube's directory of "
					"--qubes-dir %s: the host's calls need their own place\n",
				cfg.host_calls_dir, cfg.qubes_dir);
			return 2;
		}
	}
	if (cfg.max_per_qube > cfg.max_total) {
		fprintf(stderr, "qube-broker: --max-per-qube (%u) is larger than --max-total (%u)\n",
			cfg.max_per_qube, cfg.max_total);
		return 2;
	}
	if (cfg.ask_group) {
		struct group *gr = getgrnam(cfg.ask_group);

		if (!cfg.ask_socket) {
			fprintf(stderr, "qube-broker: --ask-group needs --ask-socket\n");
			return 2;
		}
		if (!gr) {
			fprintf(stderr, "qube-broker: --ask-group %s: no such group\n", cfg.ask_group);
			return 2;
		}
		cfg.ask_gid = gr->gr_gid;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg.user);

		if (!pw || pw->pw_uid == 0 || pw->pw_gid == 0) {
			fprintf(stderr, "qube-broker: --user %s: %s\n", cfg.user,
				pw ? "must not be root" : "no such user");
			return 2;
		}
		cfg.uid = pw->pw_uid;
		cfg.gid = pw->pw_gid;
	}
	r = bk_log_open(cfg.log_path, "qube-broker");
	if (r < 0) {
		fprintf(stderr, "qube-broker: --log %s: %s\n", cfg.log_path, strerror(-r));
		return 1;
	}
	return bk_monitor_main(&cfg);
}
