/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * relay-chain: the bound for the RPC throughput benchmark.
 *
 *   relay-chain copy|splice N PROG [ARGS...]
 *
 * Runs PROG behind N relay processes: stdin/stdout -> relay 1 -> unix
 * socket -> relay 2 -> ... -> relay N -> pipes -> PROG, and the same way
 * back.  A relay does nothing but move bytes, in both directions, with
 * poll() and non-blocking fds: no framing, no parsing, no policy.  "copy"
 * moves them with read()/write() through a 64 KiB buffer (the data
 * message size of the RPC protocol); "splice" with splice() through a
 * pipe, so the bytes are not copied to user space.
 *
 * The RPC call path has the same shape with N = 3 (qube-call, the broker
 * sandbox, qube-agent, then pipes to the service), so this is what any
 * relay of that shape can reach on the machine at best; bench/rpc-bench.sh
 * runs it in the same invocation as the real path.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK     65536u
#define PIPE_SIZE (1u << 20)

static bool use_splice;

struct lane {
	int from, to;
	int pipe[2];       /* splice: bytes in flight sit here */
	uint8_t buf[CHUNK]; /* copy: bytes in flight sit here */
	size_t pending, off;
	bool rd_eof, done;
};

static void die(const char *what)
{
	fprintf(stderr, "relay-chain: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void lane_init(struct lane *l, int from, int to)
{
	l->from = from;
	l->to = to;
	if (fcntl(from, F_SETFL, O_NONBLOCK) < 0 || fcntl(to, F_SETFL, O_NONBLOCK) < 0)
		die("fcntl");
	if (use_splice) {
		if (pipe2(l->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
			die("pipe2");
		(void)fcntl(l->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	}
}

static size_t lane_room(const struct lane *l)
{
	return use_splice ? PIPE_SIZE - l->pending : (l->pending ? 0 : CHUNK);
}

static void lane_read(struct lane *l)
{
	ssize_t n;

	if (use_splice)
		n = splice(l->from, NULL, l->pipe[1], NULL, lane_room(l), SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	else
		n = read(l->from, l->buf, CHUNK);
	if (n > 0) {
		l->pending += (size_t)n; /* copy: read only into an empty buffer */
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		l->rd_eof = true;
	}
}

static void lane_write(struct lane *l)
{
	ssize_t n;

	if (use_splice)
		n = splice(l->pipe[0], NULL, l->to, NULL, l->pending, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	else
		n = write(l->to, l->buf + l->off, l->pending);
	if (n > 0) {
		l->pending -= (size_t)n;
		l->off = l->pending ? l->off + (size_t)n : 0;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		die("write");
	}
}

/* The end of the input: the far side gets EOF (a socket is half-closed,
 * a pipe closed). */
static void lane_finish(struct lane *l)
{
	l->done = true;
	if (shutdown(l->to, SHUT_WR) < 0)
		close(l->to);
}

static void relay(int a_rd, int a_wr, int b_rd, int b_wr)
{
	static struct lane lanes[2];
	int done = 0;

	lane_init(&lanes[0], a_rd, b_wr);
	lane_init(&lanes[1], b_rd, a_wr);
	while (done < 2) {
		struct pollfd pfd[4];
		int at[2][2], n = 0;

		for (int i = 0; i < 2; i++) {
			struct lane *l = &lanes[i];

			at[i][0] = at[i][1] = -1;
			if (l->done)
				continue;
			if (!l->rd_eof && lane_room(l) > 0) {
				at[i][0] = n;
				pfd[n++] = (struct pollfd){ .fd = l->from, .events = POLLIN };
			}
			if (l->pending) {
				at[i][1] = n;
				pfd[n++] = (struct pollfd){ .fd = l->to, .events = POLLOUT };
			}
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (int i = 0; i < 2; i++) {
			struct lane *l = &lanes[i];

			if (at[i][0] >= 0 && pfd[at[i][0]].revents)
				lane_read(l);
			if (at[i][1] >= 0 && pfd[at[i][1]].revents)
				lane_write(l);
			if (!l->done && l->rd_eof && !l->pending) {
				lane_finish(l);
				done++;
			}
		}
	}
	exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "copy") != 0 && strcmp(argv[1], "splice") != 0) ||
	    atoi(argv[2]) < 1) {
		fprintf(stderr, "usage: relay-chain copy|splice N PROG [ARGS...]   (N >= 1)\n");
		return 2;
	}
	use_splice = strcmp(argv[1], "splice") == 0;
	int n = atoi(argv[2]);
	int up_rd = STDIN_FILENO, up_wr = STDOUT_FILENO;

	for (int k = 0; k < n; k++) {
		int down_rd, down_wr, far = -1;

		if (k == n - 1) {
			int to_prog[2], from_prog[2];

			if (pipe(to_prog) < 0 || pipe(from_prog) < 0)
				die("pipe");
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				if (dup2(to_prog[0], STDIN_FILENO) < 0 || dup2(from_prog[1], STDOUT_FILENO) < 0)
					_exit(127);
				close(to_prog[1]);
				close(from_prog[0]);
				execvp(argv[3], argv + 3);
				_exit(127);
			}
			close(to_prog[0]);
			close(from_prog[1]);
			down_rd = from_prog[0];
			down_wr = to_prog[1];
		} else {
			int sv[2];

			if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
				die("socketpair");
			down_rd = down_wr = sv[0];
			far = sv[1];
		}
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			if (far >= 0)
				close(far);
			relay(up_rd, up_wr, down_rd, down_wr);
		}
		/* the parent keeps only the far end, for the next relay */
		close(down_rd);
		if (down_wr != down_rd)
			close(down_wr);
		if (up_rd > STDOUT_FILENO)
			close(up_rd);
		up_rd = up_wr = far;
	}
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	int status, rc = 0;
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			rc = 1;
	return rc;
}
