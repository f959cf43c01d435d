/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-filecopy-receive: the qube.Filecopy service (installed as
 * /etc/qube/rpc/qube.Filecopy).  Reads a stream on stdin, unpacks it into
 * INCOMING/SOURCE (INCOMING is ~/QubesIncoming unless configured; SOURCE is
 * QUBE_REMOTE, set by qube-agent from the broker, never from the stream),
 * and writes one reply record on stdout.  Started as root it becomes an
 * unprivileged user first; it then sets no_new_privs and installs a seccomp
 * allow-list before reading the first byte of the stream.
 */
#include "fc.h"
#include "sandbox.h"
#include "unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/qube/filecopy.conf"

static void freep(char **p)
{
	free(*p);
}
#define qfc_autofree __attribute__((cleanup(freep)))
#define EXIT_FAILED 1
#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: qube-filecopy-receive [OPTIONS]\n"
		"Receives a qube.Filecopy stream on stdin into INCOMING/$QUBE_REMOTE and writes\n"
		"the reply record on stdout.\n"
		"  --config FILE       settings (default $QFC_CONF or " DEFAULT_CONF ")\n"
		"  --incoming DIR      base directory (default ~/QubesIncoming)\n"
		"  --user NAME         user to become when started as root (default \"user\")\n"
		"  --max-entries N  --max-bytes N  --max-depth N  --max-path N  --max-name N\n"
		"  --selftest-seccomp  call socket() after the filter is installed (must die)\n"
		"  --selftest-confinement  try to open and create outside the incoming directory\n"
		"                      once confined; exit 0 when both are refused\n");
}

static bool source_is_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 31 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int read_config(const char *path, bool must_exist, struct qfc_limits *l, char **user,
		       char **incoming)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "qube.Filecopy: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	char *text = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 > cap) {
			char *n = realloc(text, cap = len + 65536);
			if (!n) {
				free(text);
				fclose(f);
				return -ENOMEM;
			}
			text = n;
		}
		size_t k = fread(text + len, 1, cap - len, f);
		len += k;
		if (k == 0)
			break;
	}
	fclose(f);
	char err[512];
	int r = qfc_config_parse(text, len, path, l, user, incoming, err, sizeof(err));
	free(text);
	if (r < 0)
		fprintf(stderr, "qube.Filecopy: %s\n", err);
	return r;
}

static int parse_limit(const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < min || n > max) {
		fprintf(stderr, "qube.Filecopy: %s: '%s' is not a number in %" PRIu64 "..%" PRIu64 "\n",
			opt, v, min, max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int mkdir_if_missing(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static void send_reply(int status, const struct qfc_unpack_result *res, const char *msg)
{
	qfc_reply_write(STDOUT_FILENO, status, res, msg);
}

static int refuse_early(const char *msg)
{
	fprintf(stderr, "qube.Filecopy: %s\n", msg);
	send_reply(EACCES, NULL, msg);
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	enum { O_CONFIG = 256, O_INCOMING, O_USER, O_ME, O_MB, O_MD, O_MP, O_MN, O_SELFTEST,
	       O_SELFTEST_CONF };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "incoming", required_argument, NULL, O_INCOMING },
		{ "user", required_argument, NULL, O_USER },
		{ "max-entries", required_argument, NULL, O_ME },
		{ "max-bytes", required_argument, NULL, O_MB },
		{ "max-depth", required_argument, NULL, O_MD },
		{ "max-path", required_argument, NULL, O_MP },
		{ "max-name", required_argument, NULL, O_MN },
		{ "selftest-seccomp", no_argument, NULL, O_SELFTEST },
		{ "selftest-confinement", no_argument, NULL, O_SELFTEST_CONF },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct qfc_limits l;
	qfc_limits_default(&l);
	const char *conf = getenv("QFC_CONF");
	bool conf_given = conf != NULL;
	if (!conf)
		conf = DEFAULT_CONF;
	qfc_autofree char *user = NULL;
	qfc_autofree char *incoming = NULL;
	bool selftest = false, selftest_conf = false;
	/* options first pass: the config file, so options override it */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			conf = argv[++i];
			conf_given = true;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			conf = argv[i] + 9;
			conf_given = true;
		}
	}
	if (read_config(conf, conf_given, &l, &user, &incoming) < 0)
		return refuse_early("the receiver's settings are invalid (see its stderr)");
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG:
			break;
		case O_INCOMING:
			free(incoming);
			if (!(incoming = strdup(optarg)))
				return refuse_early("out of memory");
			break;
		case O_USER:
			free(user);
			if (!(user = strdup(optarg)))
				return refuse_early("out of memory");
			break;
		case O_ME:
			if (parse_limit("--max-entries", optarg, 1, UINT64_MAX, &v) < 0)
				return EXIT_USAGE;
			l.max_entries = v;
			break;
		case O_MB:
			if (parse_limit("--max-bytes", optarg, 0, UINT64_MAX, &v) < 0)
				return EXIT_USAGE;
			l.max_bytes = v;
			break;
		case O_MD:
			if (parse_limit("--max-depth", optarg, 1, QFC_DEPTH_MAX, &v) < 0)
				return EXIT_USAGE;
			l.max_depth = (uint32_t)v;
			break;
		case O_MP:
			if (parse_limit("--max-path", optarg, 1, QFC_PATH_MAX, &v) < 0)
				return EXIT_USAGE;
			l.max_path = (uint32_t)v;
			break;
		case O_MN:
			if (parse_limit("--max-name", optarg, 1, QFC_NAME_MAX, &v) < 0)
				return EXIT_USAGE;
			l.max_name = (uint32_t)v;
			break;
		case O_SELFTEST:
			selftest = true;
			break;
		case O_SELFTEST_CONF:
			selftest_conf = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);

	const char *source = getenv("QUBE_REMOTE");
	if (!source || !source_is_valid(source))
		return refuse_early("QUBE_REMOTE is missing or not a qube name: this service runs "
				    "under qube-agent");

	/* 1. become the unprivileged owner of the incoming directory */
	const char *home = getenv("HOME");
	if (geteuid() == 0) {
		const char *uname = user ? user : "user";
		struct passwd *pw = getpwnam(uname);
		if (!pw || pw->pw_uid == 0) {
			char m[300];
			snprintf(m, sizeof(m), "refusing to unpack as root: no unprivileged user '%s' "
				 "(setting \"user\")", uname);
			return refuse_early(m);
		}
		home = pw->pw_dir;
		if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0 ||
		    setuid(0) == 0) {
			return refuse_early("cannot drop privileges");
		}
	}
	char base[4200], dir[4300];
	if (incoming) {
		snprintf(base, sizeof(base), "%s", incoming);
	} else {
		if (!home || home[0] != '/')
			return refuse_early("no home directory for the incoming files");
		snprintf(base, sizeof(base), "%s/QubesIncoming", home);
	}
	int r = mkdir_if_missing(base, 0700);
	snprintf(dir, sizeof(dir), "%s/%s", base, source);
	if (r == 0)
		r = mkdir_if_missing(dir, 0700);
	int root_fd = r < 0 ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0) {
		char m[4400];
		snprintf(m, sizeof(m), "cannot open the incoming directory %s: %s", dir,
			 strerror(r < 0 ? -r : errno));
		return refuse_early(m);
	}

	/* files get exactly the (masked) modes sent, without a chmod each */
	umask(0);

	/* 2. no new privileges, Landlock, then the seccomp filter, last */
	const char *step = NULL;
	int landlock_abi = qfc_sandbox_enter(root_fd, &step);
	if (landlock_abi < 0)
		return refuse_early(step);
	if (selftest) {
		fprintf(stderr, "qube.Filecopy: --selftest-seccomp: calling socket(), not allowed\n");
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		fprintf(stderr, "qube.Filecopy: socket() was NOT blocked (%d)\n", fd);
		return EXIT_FAILED;
	}

	if (selftest_conf) {
		/* only the incoming directory is reachable: reading a file
		 * elsewhere and creating one next to it are both refused */
		int rd = openat(AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC);
		int rd_err = errno;
		int mk = openat(root_fd, "../qfc-selftest-outside", O_WRONLY | O_CREAT | O_EXCL |
				O_CLOEXEC, 0600);
		int mk_err = errno;
		fprintf(stderr, "qube.Filecopy: Landlock ABI %d; reading /etc/passwd: %s; creating "
			"next to the incoming directory: %s\n", landlock_abi,
			rd < 0 ? strerror(rd_err) : "ALLOWED", mk < 0 ? strerror(mk_err) : "ALLOWED");
		if (mk >= 0)
			unlinkat(root_fd, "../qfc-selftest-outside", 0);
		return rd < 0 && mk < 0 ? 0 : EXIT_FAILED;
	}

	/* 3. the stream */
	unsigned flags = (getenv("QFC_NO_OPENAT2") ? QFC_UNPACK_NO_OPENAT2 : 0) |
			 (getenv("QFC_NO_TMPFILE") ? QFC_UNPACK_NO_TMPFILE : 0) |
			 (getenv("QFC_NO_FLINK") ? QFC_UNPACK_NO_FLINK : 0);
	struct qfc_unpack_result res;
	r = qfc_unpack(STDIN_FILENO, root_fd, &l, flags, stderr, &res);
	if (r < 0) {
		fprintf(stderr, "qube.Filecopy: refused: %s (%" PRIu64 " entries, %" PRIu64
			" bytes stored before)\n", res.msg, res.entries, res.data_bytes);
		send_reply(r, &res, res.msg);
		return EXIT_FAILED;
	}
	send_reply(0, &res, NULL);
	return 0;
}
