/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the admin-API commands of qubectl share: option parsing, calling
 * qubed and reporting its errors, splitting replies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qubectl.h"

void qc_args_init(struct qc_args *a, const struct qc_command *cmd, int argc, char **argv)
{
	a->cmd = cmd;
	a->argc = argc;
	a->argv = argv;
	a->i = 1;
	a->opts_done = false;
}

int qc_args_next(struct qc_args *a, const struct qc_opt *opts, const char **ret_value)
{
	const char *arg;

	for (;;) {
		if (a->i >= a->argc)
			return QC_ARG_END;
		arg = a->argv[a->i++];
		if (!a->opts_done && strcmp(arg, "--") == 0) {
			a->opts_done = true;
			continue;
		}
		break;
	}
	if (a->opts_done || arg[0] != '-' || arg[1] == '\0') {
		*ret_value = arg;
		return QC_ARG_POSITIONAL;
	}
	for (const struct qc_opt *o = opts; o && o->name; o++) {
		size_t nl = strlen(o->name);
		const char *val = NULL;

		if (o->short_name && arg[1] == o->short_name && arg[2] == '\0') {
			/* short form */
		} else if (strncmp(arg, o->name, nl) == 0 && (arg[nl] == '\0' || arg[nl] == '=')) {
			if (arg[nl] == '=') {
				if (!o->has_value) {
					qc_usage_error(a->cmd, "option %s takes no value", o->name);
					return QC_ARG_ERROR;
				}
				val = arg + nl + 1;
			}
		} else {
			continue;
		}
		if (o->has_value && !val) {
			if (a->i >= a->argc) {
				qc_usage_error(a->cmd, "option %s needs a value", o->name);
				return QC_ARG_ERROR;
			}
			val = a->argv[a->i++];
		}
		if (o->has_value && val[0] == '\0') {
			qc_usage_error(a->cmd, "option %s needs a non-empty value", o->name);
			return QC_ARG_ERROR;
		}
		*ret_value = val;
		return o->id;
	}
	qc_usage_error(a->cmd, "unknown option \"%s\"", arg);
	return QC_ARG_ERROR;
}

int qc_transport_error(int r)
{
	const char *path = qc_socket();

	switch (r) {
	case -ENODATA:
		fprintf(stderr, "qubectl: qubed at %s closed the connection without a reply\n", path);
		break;
	case -EBADMSG:
		fprintf(stderr, "qubectl: qubed at %s sent a malformed or truncated reply\n", path);
		break;
	case -EMSGSIZE:
		fprintf(stderr, "qubectl: qubed at %s sent a reply over %u MiB\n", path,
			QC_MAX_REPLY >> 20);
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "qubectl: qubed at %s did not answer in time\n", path);
		break;
	case -ENOMEM:
		fprintf(stderr, "qubectl: out of memory\n");
		return QC_EXIT_FAILURE;
	case -EINVAL:
		fprintf(stderr, "qubectl: a name or argument has a byte that cannot be sent "
				"(space, control or non-ASCII)\n");
		return QC_EXIT_USAGE;
	case -E2BIG:
		fprintf(stderr, "qubectl: the request is over %u bytes\n", QC_MAX_REQUEST);
		return QC_EXIT_USAGE;
	default:
		fprintf(stderr, "qubectl: cannot reach qubed at %s: %s\n", path, strerror(-r));
		break;
	}
	return QC_EXIT_NO_DAEMON;
}

int qc_run(const char *what, const struct qc_call *c, struct qc_reply *ret)
{
	struct qc_reply reply;
	int r = qc_admin_call(c, &reply);

	if (r < 0)
		return qc_transport_error(r);
	if (reply.kind == QC_REPLY_EXCEPTION) {
		fprintf(stderr, "qubectl: %s: %s (%s)\n", what, reply.exc_message, reply.exc_type);
		qc_reply_finish(&reply);
		return QC_EXIT_FAILURE;
	}
	if (ret)
		*ret = reply;
	else
		qc_reply_finish(&reply);
	return QC_EXIT_OK;
}

int qc_simple(const char *what, const char *method, const char *arg, const char *dest,
	      const char *payload, struct qc_reply *ret)
{
	struct qc_call c;

	qc_call_init(&c, qc_socket(), method, arg, dest);
	if (payload) {
		c.payload = payload;
		c.payload_len = strlen(payload);
	}
	return qc_run(what, &c, ret);
}

bool qc_is_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 31)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

int qc_split_lines(char *data, char ***ret_lines, size_t *ret_n)
{
	size_t n = 0, cap = 16;
	char **lines = malloc(cap * sizeof(*lines));
	char *p = data;

	if (!lines)
		return -ENOMEM;
	while (*p) {
		char *nl = strchr(p, '\n');
		if (n == cap) {
			char **nlines = realloc(lines, cap * 2 * sizeof(*lines));
			if (!nlines) {
				free(lines);
				return -ENOMEM;
			}
			lines = nlines;
			cap *= 2;
		}
		lines[n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	*ret_lines = lines;
	*ret_n = n;
	return 0;
}

const char *qc_token_value(const char *line, const char *key, char *buf, size_t bufsize)
{
	size_t kl = strlen(key);
	const char *p = line;

	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t vl = strcspn(v, " ");
			if (vl >= bufsize)
				vl = bufsize - 1;
			memcpy(buf, v, vl);
			buf[vl] = '\0';
			return buf;
		}
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return NULL;
}

void qc_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1] == 'n') {
			*o++ = '\n';
			s++;
		} else if (*s == '\\' && s[1] == '\\') {
			*o++ = '\\';
			s++;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

bool qc_confirm(const char *prompt)
{
	char line[16];

	fprintf(stderr, "%s [y/N] ", prompt);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return strcmp(line, "y\n") == 0 || strcmp(line, "Y\n") == 0 || strcmp(line, "yes\n") == 0;
}
