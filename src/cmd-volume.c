/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl volume list | info | resize | revert, and template import.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qubectl.h"

/* "QUBE:VOL" -> qube, vol (into the buffers). */
static int split_volume(const struct qc_command *cmd, const char *spec, char *qube, size_t qsize,
			char *vol, size_t vsize)
{
	const char *colon = strchr(spec, ':');
	size_t ql;

	if (!colon || colon == spec || !colon[1])
		return qc_usage_error(cmd, "\"%s\": expected QUBE:VOLUME", spec);
	ql = (size_t)(colon - spec);
	if (ql >= qsize || strlen(colon + 1) >= vsize)
		return qc_usage_error(cmd, "\"%s\": too long", spec);
	memcpy(qube, spec, ql);
	qube[ql] = '\0';
	snprintf(vol, vsize, "%s", colon + 1);
	if (strcmp(qube, "dom0") != 0 && !qc_is_valid_name(qube))
		return qc_usage_error(cmd, "\"%s\": invalid qube name \"%s\"", spec, qube);
	for (const char *p = vol; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return qc_usage_error(cmd, "\"%s\": invalid volume name \"%s\"", spec, vol);
	return QC_EXIT_OK;
}

/* The positional arguments of a volume command: min..max of them. */
static int positional(const struct qc_command *cmd, int argc, char **argv, const char **pos,
		      int min, int max, int *ret_n)
{
	struct qc_args a;
	const char *v;
	int r, n = 0;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, NULL, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		if (n == max)
			return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
		pos[n++] = v;
	}
	if (n < min)
		return qc_usage_error(cmd, "expected %s", cmd->usage);
	*ret_n = n;
	return QC_EXIT_OK;
}

/* "key=value" lines of volume.Info: the value of key, or "-". */
static void info_value(const char *info, const char *key, char *buf, size_t size)
{
	size_t kl = strlen(key);
	for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t l = strcspn(p + kl + 1, "\n");
			if (l >= size)
				l = size - 1;
			memcpy(buf, p + kl + 1, l);
			buf[l] = '\0';
			return;
		}
	}
	snprintf(buf, size, "-");
}

int qc_cmd_volume_list(const struct qc_command *cmd, int argc, char **argv)
{
	const char *pos[64];
	int n = 0, r, ret = QC_EXIT_OK;

	r = positional(cmd, argc, argv, pos, 1, 64, &n);
	if (r != QC_EXIT_OK)
		return r;
	for (int i = 0; i < n; i++)
		if (strcmp(pos[i], "dom0") != 0 && !qc_is_valid_name(pos[i]))
			return qc_usage_error(cmd, "invalid qube name \"%s\"", pos[i]);
	printf("%-40s %14s %14s %s\n", "VOLUME", "SIZE", "USAGE", "RW");
	for (int i = 0; i < n; i++) {
		struct qc_reply list;
		char *save = NULL;

		r = qc_simple(pos[i], "admin.vm.volume.List", NULL, pos[i], NULL, &list);
		if (r == QC_EXIT_NO_DAEMON)
			return r;
		if (r != QC_EXIT_OK) {
			ret = r;
			continue;
		}
		for (char *vol = strtok_r(list.data, " \n", &save); vol; vol = strtok_r(NULL, " \n", &save)) {
			char title[80], size[32], usage[32], rw[16];
			struct qc_reply info;

			r = qc_simple(pos[i], "admin.vm.volume.Info", vol, pos[i], NULL, &info);
			if (r == QC_EXIT_NO_DAEMON) {
				qc_reply_finish(&list);
				return r;
			}
			if (r != QC_EXIT_OK) {
				ret = r;
				continue;
			}
			info_value(info.data, "size", size, sizeof(size));
			info_value(info.data, "usage", usage, sizeof(usage));
			info_value(info.data, "rw", rw, sizeof(rw));
			snprintf(title, sizeof(title), "%s:%s", pos[i], vol);
			printf("%-40s %14s %14s %s\n", title, size, usage, rw);
			qc_reply_finish(&info);
		}
		qc_reply_finish(&list);
	}
	return ret;
}

int qc_cmd_volume_info(const struct qc_command *cmd, int argc, char **argv)
{
	const char *pos[2];
	char qube[64], vol[64], val[4096];
	struct qc_reply info;
	int n = 0, r;

	r = positional(cmd, argc, argv, pos, 1, 2, &n);
	if (r != QC_EXIT_OK)
		return r;
	r = split_volume(cmd, pos[0], qube, sizeof(qube), vol, sizeof(vol));
	if (r != QC_EXIT_OK)
		return r;
	r = qc_simple(pos[0], "admin.vm.volume.Info", vol, qube, NULL, &info);
	if (r != QC_EXIT_OK)
		return r;
	if (n == 2) {
		info_value(info.data, pos[1], val, sizeof(val));
		if (strcmp(val, "-") == 0 && !strstr(info.data, pos[1])) {
			fprintf(stderr, "qubectl: %s: no such volume property \"%s\"\n", pos[0], pos[1]);
			qc_reply_finish(&info);
			return QC_EXIT_FAILURE;
		}
		printf("%s\n", val);
	} else {
		fputs(info.data, stdout);
		if (info.len && info.data[info.len - 1] != '\n')
			putchar('\n');
	}
	qc_reply_finish(&info);
	return QC_EXIT_OK;
}

/* "10G", "512MiB", "1048576" -> bytes */
static int parse_size(const char *s, unsigned long long *ret)
{
	static const struct { const char *suffix; unsigned shift; } units[] = {
		{ "", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
	};
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (v > (~0ULL >> units[i].shift))
			return -ERANGE;
		*ret = v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int qc_cmd_volume_resize(const struct qc_command *cmd, int argc, char **argv)
{
	const char *pos[2];
	char qube[64], vol[64], payload[32];
	unsigned long long size;
	int n = 0, r;

	r = positional(cmd, argc, argv, pos, 2, 2, &n);
	if (r != QC_EXIT_OK)
		return r;
	r = split_volume(cmd, pos[0], qube, sizeof(qube), vol, sizeof(vol));
	if (r != QC_EXIT_OK)
		return r;
	if (parse_size(pos[1], &size) < 0)
		return qc_usage_error(cmd, "SIZE \"%s\": expected bytes, or a number with K, M, G or T "
					   "(KiB, MiB, GiB, TiB)", pos[1]);
	snprintf(payload, sizeof(payload), "%llu", size);
	return qc_simple(pos[0], "admin.vm.volume.Resize", vol, qube, payload, NULL);
}

int qc_cmd_volume_revert(const struct qc_command *cmd, int argc, char **argv)
{
	const char *pos[2];
	char qube[64], vol[64];
	int n = 0, r;

	r = positional(cmd, argc, argv, pos, 1, 2, &n);
	if (r != QC_EXIT_OK)
		return r;
	r = split_volume(cmd, pos[0], qube, sizeof(qube), vol, sizeof(vol));
	if (r != QC_EXIT_OK)
		return r;
	return qc_simple(pos[0], "admin.vm.volume.Revert", vol, qube, n == 2 ? pos[1] : "", NULL);
}

/* ---- template import ---- */

int qc_cmd_template_import(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_KERNEL = 1, O_INITRD, O_ROOT, O_LABEL };
	static const struct qc_opt opts[] = {
		{ "--kernel", 'k', true, O_KERNEL },
		{ "--initrd", 'i', true, O_INITRD },
		{ "--root", 'r', true, O_ROOT },
		{ "--label", 'l', true, O_LABEL },
		{ NULL, 0, false, 0 },
	};
	static const char *const parts[3] = { "kernel", "initrd", "root" };
	static const char *const part_opts[3] = { "--kernel", "--initrd", "--root" };
	const char *files[3] = { NULL, NULL, NULL }, *name = NULL, *label = "black", *v;
	int fds[3] = { -1, -1, -1 }, r, ret;
	char payload[128];
	struct qc_args a;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, opts, &v)) != QC_ARG_END) {
		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case QC_ARG_POSITIONAL:
			if (name)
				return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
			name = v;
			break;
		case O_KERNEL:
		case O_INITRD:
		case O_ROOT:
			files[r - O_KERNEL] = v;
			break;
		case O_LABEL:
			if (strlen(v) > 31 || strpbrk(v, " =\n"))
				return qc_usage_error(cmd, "--label: invalid label \"%s\"", v);
			label = v;
			break;
		}
	}
	if (!name)
		return qc_usage_error(cmd, "expected the NAME of the new template");
	if (!qc_is_valid_name(name))
		return qc_usage_error(cmd, "invalid qube name \"%s\" (1-31 of [A-Za-z0-9_.-], "
					   "starting with a letter)", name);
	if (!files[0] || !files[1])
		return qc_usage_error(cmd, "%s FILE is required", files[0] ? "--initrd" : "--kernel");

	/* every file is opened before anything is created */
	ret = QC_EXIT_FAILURE;
	for (int i = 0; i < 3; i++) {
		struct stat st;

		if (!files[i])
			continue;
		fds[i] = open(files[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fds[i] < 0) {
			fprintf(stderr, "qubectl: %s %s: %s\n", part_opts[i], files[i], strerror(errno));
			goto out_close;
		}
		if (fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode)) {
			fprintf(stderr, "qubectl: %s %s: not a regular file\n", part_opts[i], files[i]);
			goto out_close;
		}
	}
	snprintf(payload, sizeof(payload), "name=%s label=%s", name, label);
	ret = qc_simple(name, "admin.vm.Create.TemplateVM", "", "dom0", payload, NULL);
	if (ret != QC_EXIT_OK)
		goto out_close;
	for (int i = 0; i < 3; i++) {
		struct qc_progress p;
		struct qc_call c;
		char verb[32];

		if (fds[i] < 0)
			continue;
		qc_call_init(&c, qc_socket(), "qube.template.Import", parts[i], name);
		c.payload_fd = fds[i];
		snprintf(verb, sizeof(verb), "importing %s of", parts[i]);
		qc_progress_attach(&c, &p, verb, name);
		ret = qc_run(name, &c, NULL);
		qc_progress_end(&p);
		if (ret != QC_EXIT_OK) {
			fprintf(stderr, "qubectl: %s: importing %s %s failed: removing the new template "
					"again\n", name, part_opts[i], files[i]);
			qc_simple(name, "admin.vm.Remove", NULL, name, NULL, NULL);
			goto out_close;
		}
	}
out_close:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}
