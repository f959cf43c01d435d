/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubectl policy ask-agent: answers the broker's ask interface
 * (docs/broker.md, "The ask interface") on a terminal.
 *
 * For each question it shows the source, the service, its argument, the
 * requested target, the targets the policy allows (numbered) and the
 * default, and waits for the user: a number or a name allows that target,
 * Enter allows the default (if there is one), "n" denies; no answer within
 * --timeout denies.  Questions arriving meanwhile wait their turn; one the
 * broker withdraws (CANCEL) is dropped, or interrupted if it is on screen.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qubectl.h"

#define ASK_LINE_MAX (64u * 1024u)
#define ASK_TARGETS_MAX 1024u
#define ASK_QUEUE_MAX 256u

struct question {
	char *line;          /* owns the strings below */
	const char *id, *source, *service, *argument, *requested, *deflt;
	const char *targets[ASK_TARGETS_MAX];
	size_t n_targets;
};

static bool field_ok(const char *s)
{
	if (!*s || strlen(s) > 128)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '+' || c == '@' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

static bool id_ok(const char *s)
{
	if (!*s || strlen(s) > 10)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* "ASK id source service arg requested default target..." -> Q (takes LINE). */
static int question_parse(char *line, struct question *q)
{
	char *save = NULL, *f[7];

	memset(q, 0, sizeof(*q));
	q->line = line;
	for (int i = 0; i < 7; i++) {
		f[i] = strtok_r(i ? NULL : line, " ", &save);
		if (!f[i])
			return -EPROTO;
	}
	if (strcmp(f[0], "ASK") != 0 || !id_ok(f[1]))
		return -EPROTO;
	for (int i = 2; i < 7; i++)
		if (!field_ok(f[i]))
			return -EPROTO;
	q->id = f[1];
	q->source = f[2];
	q->service = f[3];
	q->argument = f[4];
	q->requested = f[5];
	q->deflt = f[6];
	for (char *t; (t = strtok_r(NULL, " ", &save));) {
		if (!field_ok(t) || q->n_targets >= ASK_TARGETS_MAX)
			return -EPROTO;
		q->targets[q->n_targets++] = t;
	}
	return 0;
}

struct agent {
	int sock;
	char in[ASK_LINE_MAX + 1];
	size_t in_len;
	struct question *queue[ASK_QUEUE_MAX];
	size_t n_queue;
	bool eof;
};

/* "ALLOW ID TARGET" for a target, "DENY ID" for NULL */
static void send_answer(struct agent *a, const char *id, const char *target)
{
	char line[512];
	int n = target ? snprintf(line, sizeof(line), "ALLOW %s %s\n", id, target)
		       : snprintf(line, sizeof(line), "DENY %s\n", id);

	if (n > 0 && (size_t)n < sizeof(line))
		(void)!send(a->sock, line, (size_t)n, MSG_NOSIGNAL);
}

static void drop(struct agent *a, size_t i)
{
	free(a->queue[i]->line);
	free(a->queue[i]);
	memmove(a->queue + i, a->queue + i + 1, (a->n_queue - i - 1) * sizeof(a->queue[0]));
	a->n_queue--;
}

/* Reads what the broker sent: questions join the queue, CANCEL removes
 * one.  Returns true when the question with id CURRENT was withdrawn. */
static bool read_broker(struct agent *a, const char *current)
{
	bool withdrawn = false;
	ssize_t n = recv(a->sock, a->in + a->in_len, ASK_LINE_MAX - a->in_len, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		a->eof = true;
		return false;
	}
	if (n < 0)
		return false;
	a->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(a->in, '\n', a->in_len);
		if (!nl) {
			if (a->in_len >= ASK_LINE_MAX) {
				fprintf(stderr, "qubectl: the broker sent a line over %u bytes; disconnecting\n",
					ASK_LINE_MAX);
				a->eof = true;
			}
			break;
		}
		size_t len = (size_t)(nl - a->in);
		char *line = strndup(a->in, len);
		memmove(a->in, nl + 1, a->in_len - len - 1);
		a->in_len -= len + 1;
		if (!line)
			continue;
		if (strncmp(line, "CANCEL ", 7) == 0) {
			if (current && strcmp(line + 7, current) == 0)
				withdrawn = true;
			for (size_t i = 0; i < a->n_queue; i++)
				if (strcmp(a->queue[i]->id, line + 7) == 0) {
					drop(a, i);
					break;
				}
			free(line);
			continue;
		}
		struct question *q = calloc(1, sizeof(*q));
		if (!q || question_parse(line, q) < 0 || a->n_queue >= ASK_QUEUE_MAX) {
			fprintf(stderr, "qubectl: ignoring a malformed line from the broker\n");
			free(q);
			free(line);
			continue;
		}
		a->queue[a->n_queue++] = q;
	}
	return withdrawn;
}

/* The user's answer to Q: the chosen target, or NULL to deny. */
static const char *choice(const struct question *q, char *answer)
{
	char *end;
	long k;

	answer[strcspn(answer, "\r\n")] = '\0';
	while (*answer == ' ')
		answer++;
	if (!*answer)
		return strcmp(q->deflt, "-") != 0 ? q->deflt : NULL;
	if (strcmp(answer, "n") == 0 || strcmp(answer, "no") == 0 || strcmp(answer, "deny") == 0)
		return NULL;
	k = strtol(answer, &end, 10);
	if (!*end && k >= 1 && (size_t)k <= q->n_targets)
		return q->targets[k - 1];
	for (size_t i = 0; i < q->n_targets; i++)
		if (strcmp(answer, q->targets[i]) == 0)
			return q->targets[i];
	return (const char *)q; /* not understood: ask again */
}

static void show(const struct question *q, unsigned timeout_s)
{
	printf("\n%s wants to call %s%s%s, target %s.\n", q->source, q->service,
	       strcmp(q->argument, "-") ? "+" : "", strcmp(q->argument, "-") ? q->argument : "",
	       q->requested);
	for (size_t i = 0; i < q->n_targets; i++)
		printf("  %zu) %s%s\n", i + 1, q->targets[i],
		       strcmp(q->targets[i], q->deflt) == 0 ? "  (default)" : "");
	printf("Allow the call to which target? [number or name%s, n denies; denied in %u s]: ",
	       strcmp(q->deflt, "-") ? ", Enter for the default" : "", timeout_s);
	fflush(stdout);
}

int qc_policy_ask_agent(const struct qc_command *cmd, int argc, char **argv)
{
	enum { O_SOCKET = 1, O_TIMEOUT };
	static const struct qc_opt opts[] = {
		{ "--ask-socket", 0, true, O_SOCKET },
		{ "--timeout", 't', true, O_TIMEOUT },
		{ 0 },
	};
	const char *path = NULL, *v;
	char pathbuf[108];
	unsigned timeout_s = 50;
	struct qc_args args;
	int r;

	qc_args_init(&args, cmd, argc, argv);
	while ((r = qc_args_next(&args, opts, &v)) != QC_ARG_END) {
		char *end;
		long t;

		switch (r) {
		case QC_ARG_ERROR:
			return QC_EXIT_USAGE;
		case O_SOCKET:
			path = v;
			break;
		case O_TIMEOUT:
			t = strtol(v, &end, 10);
			if (*end || t < 1 || t > 3600)
				return qc_usage_error(cmd, "--timeout: '%s' is not 1-3600 seconds", v);
			timeout_s = (unsigned)t;
			break;
		default:
			return qc_usage_error(cmd, "unexpected argument '%s'", v);
		}
	}
	if (!path) {
		const char *sock = qc_socket(), *slash = strrchr(sock, '/');
		int n = slash ? snprintf(pathbuf, sizeof(pathbuf), "%.*s/ask.sock", (int)(slash - sock), sock)
			      : snprintf(pathbuf, sizeof(pathbuf), "ask.sock");
		if (n < 0 || (size_t)n >= sizeof(pathbuf))
			return qc_usage_error(cmd, "the ask socket's path is too long");
		path = pathbuf;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return qc_usage_error(cmd, "--ask-socket: path too long");
	strcpy(sa.sun_path, path);

	static struct agent a; /* 64 KiB of line buffer: not on the stack */
	memset(&a, 0, sizeof(a));
	a.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a.sock < 0 || connect(a.sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "qubectl: cannot connect to the broker's ask socket %s: %s\n", path,
			strerror(errno));
		return QC_EXIT_NO_DAEMON;
	}
	signal(SIGPIPE, SIG_IGN);
	/* byte by byte: poll() must see every line that is not read yet */
	setvbuf(stdin, NULL, _IONBF, 0);
	printf("Answering the broker's questions (%s); Ctrl+C to stop.\n", path);
	fflush(stdout);

	while (!a.eof) {
		if (a.n_queue == 0) {
			struct pollfd p = { .fd = a.sock, .events = POLLIN };
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				break;
			read_broker(&a, NULL);
			continue;
		}
		struct question *q = a.queue[0];
		char idbuf[16];
		const char *target = (const char *)q;
		time_t deadline = time(NULL) + timeout_s;
		bool withdrawn = false, answered = false;

		snprintf(idbuf, sizeof(idbuf), "%s", q->id);
		show(q, timeout_s);
		while (!answered && !withdrawn && !a.eof) {
			long left = (long)(deadline - time(NULL));
			struct pollfd p[2] = { { .fd = a.sock, .events = POLLIN },
					       { .fd = STDIN_FILENO, .events = POLLIN } };
			if (left <= 0)
				break;
			if (poll(p, 2, (int)left * 1000) < 0) {
				if (errno == EINTR)
					continue;
				a.eof = true;
				break;
			}
			if (p[0].revents && read_broker(&a, idbuf))
				withdrawn = true;
			if (!withdrawn && p[1].revents) {
				char answer[256];
				if (!fgets(answer, sizeof(answer), stdin)) {
					/* no terminal input any more: deny what is open */
					target = NULL;
					answered = true;
					break;
				}
				target = choice(q, answer);
				if (target == (const char *)q) {
					printf("Not understood. Allow the call to which target? ");
					fflush(stdout);
					continue;
				}
				answered = true;
			}
		}
		if (withdrawn) {
			printf("\n(withdrawn by the broker: the caller went away)\n");
			fflush(stdout);
			continue; /* read_broker removed it from the queue */
		}
		if (!answered) {
			printf("\nno answer within %u s: denied\n", timeout_s);
			target = NULL;
		}
		if (target) {
			send_answer(&a, idbuf, target);
			printf("allowed: %s -> %s\n", q->source, target);
		} else {
			send_answer(&a, idbuf, NULL);
			printf("denied\n");
		}
		fflush(stdout);
		for (size_t i = 0; i < a.n_queue; i++)
			if (a.queue[i] == q) {
				drop(&a, i);
				break;
			}
		if (answered && feof(stdin))
			break;
	}
	while (a.n_queue)
		drop(&a, 0);
	close(a.sock);
	if (a.eof)
		fprintf(stderr, "qubectl: the broker closed the ask socket\n");
	return a.eof ? QC_EXIT_FAILURE : QC_EXIT_OK;
}
