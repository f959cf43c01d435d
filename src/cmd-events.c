/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl events: prints qubed's admin.Events stream, one line per event
 * ("SUBJECT EVENT KEY=VALUE..."), until interrupted or qubed closes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qubectl.h"

int qc_cmd_events(const struct qc_command *cmd, int argc, char **argv)
{
	struct qc_args a;
	const char *v;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r, ret = QC_EXIT_NO_DAEMON;

	qc_args_init(&a, cmd, argc, argv);
	while ((r = qc_args_next(&a, NULL, &v)) != QC_ARG_END) {
		if (r == QC_ARG_ERROR)
			return QC_EXIT_USAGE;
		return qc_usage_error(cmd, "unexpected argument \"%s\"", v);
	}
	r = qc_admin_open_events(qc_socket(), &fd);
	if (r < 0)
		return qc_transport_error(r);
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			size_t ncap = cap ? cap * 2 : 16384;
			uint8_t *nb;

			if (ncap > 4 * QC_MAX_FIELD * (2 + 2 * QC_MAX_EVENT_KEYS)) {
				qc_transport_error(-EBADMSG);
				goto out;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				ret = qc_transport_error(-ENOMEM);
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			qc_transport_error(-errno);
			goto out;
		}
		if (n == 0) {
			if (len > 0 && buf[0] == '2') {
				/* an exception instead of the stream */
				struct qc_reply reply;
				if (qc_reply_parse(buf, len, &reply) == 0) {
					fprintf(stderr, "qubectl: events: %s (%s)\n", reply.exc_message,
						reply.exc_type);
					qc_reply_finish(&reply);
					ret = QC_EXIT_FAILURE;
					goto out;
				}
				qc_transport_error(-EBADMSG);
				goto out;
			}
			fprintf(stderr, "qubectl: qubed at %s closed the event stream\n", qc_socket());
			goto out;
		}
		len += (size_t)n;
		while (len > 0 && buf[0] != '2') {
			struct qc_event e;
			size_t used;

			r = qc_event_parse(buf, len, &e, &used);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				qc_transport_error(r);
				goto out;
			}
			printf("%s %s", e.subject[0] ? e.subject : "dom0", e.name);
			for (size_t i = 0; i < e.n_keys; i++)
				printf(" %s=%s", e.keys[i], e.values[i]);
			putchar('\n');
			fflush(stdout);
			qc_event_finish(&e);
			memmove(buf, buf + used, len - used);
			len -= used;
		}
	}
out:
	free(buf);
	close(fd);
	return ret;
}
