/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-bench-helper: the timing half of bench/rpc-bench.sh.
 *
 *   rpc-bench-helper spawn N PROG [ARGS...]
 *       runs PROG N times (fork + exec + wait, stdin /dev/null), prints
 *       "spawn n=N median_us=M mean_us=A p90_us=P"; fails if PROG fails.
 *   rpc-bench-helper roundtrip BYTES PROG [ARGS...]
 *       starts PROG with stdin and stdout on unix sockets, writes BYTES
 *       of a known pattern into it while reading what comes back, checks
 *       that exactly those bytes return, prints
 *       "roundtrip bytes=B seconds=S mib_per_s=R".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stream-pattern.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int spawn(long n, char **argv)
{
	double *t = calloc((size_t)n, sizeof(double)), sum = 0;

	if (!t)
		return 2;
	for (long i = 0; i < n; i++) {
		double t0 = now_s();
		int status;
		pid_t pid = fork();

		if (pid < 0)
			return 2;
		if (pid == 0) {
			int fd = open("/dev/null", O_RDWR);
			dup2(fd, 0);
			execvp(argv[0], argv);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "rpc-bench-helper: %s failed (run %ld)\n", argv[0], i);
			return 1;
		}
		t[i] = (now_s() - t0) * 1e6;
		sum += t[i];
	}
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	printf("spawn n=%ld median_us=%.0f mean_us=%.0f p90_us=%.0f\n", n, t[n / 2], sum / (double)n,
	       t[(n * 9) / 10]);
	return 0;
}

#define CHUNK STREAM_PATTERN_SLICE

static int roundtrip(uint64_t total, char **argv)
{
	static uint8_t rbuf[CHUNK];
	int in[2], out[2], status;
	uint64_t sent = 0, got = 0;
	double t0;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) < 0)
		return 2;
	t0 = now_s();
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		dup2(in[1], 0);
		dup2(out[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[1]);
	close(out[1]);
	fcntl(in[0], F_SETFL, O_NONBLOCK);
	while (got < total) {
		struct pollfd p[2] = {
			{ .fd = out[0], .events = POLLIN },
			{ .fd = sent < total ? in[0] : -1, .events = POLLOUT },
		};

		if (poll(p, 2, 60000) <= 0) {
			fprintf(stderr, "rpc-bench-helper: stalled at %llu of %llu bytes\n",
				(unsigned long long)got, (unsigned long long)total);
			return 1;
		}
		if (p[1].revents) {
			size_t k = CHUNK;
			if (k > total - sent)
				k = (size_t)(total - sent);
			ssize_t n = write(in[0], stream_pattern_at(sent), k);
			if (n > 0) {
				sent += (uint64_t)n;
				if (sent == total)
					shutdown(in[0], SHUT_WR);
			} else if (n < 0 && errno != EAGAIN) {
				perror("rpc-bench-helper: write");
				return 1;
			}
		}
		if (p[0].revents) {
			ssize_t n = read(out[0], rbuf, sizeof(rbuf));
			if (n <= 0) {
				fprintf(stderr, "rpc-bench-helper: output ended at %llu of %llu bytes\n",
					(unsigned long long)got, (unsigned long long)total);
				return 1;
			}
			if (memcmp(rbuf, stream_pattern_at(got), (size_t)n) != 0) {
				ssize_t i = 0;
				while (rbuf[i] == *stream_pattern_at(got + (uint64_t)i))
					i++;
				fprintf(stderr, "rpc-bench-helper: wrong byte at %llu\n",
					(unsigned long long)(got + (uint64_t)i));
				return 1;
			}
			got += (uint64_t)n;
		}
	}
	double secs = now_s() - t0;
	close(in[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "rpc-bench-helper: %s failed\n", argv[0]);
		return 1;
	}
	printf("roundtrip bytes=%llu seconds=%.3f mib_per_s=%.1f\n", (unsigned long long)total, secs,
	       (double)total / 1048576.0 / secs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "spawn") == 0)
		return spawn(strtol(argv[2], NULL, 10), argv + 3);
	if (argc >= 4 && strcmp(argv[1], "roundtrip") == 0)
		return roundtrip(strtoull(argv[2], NULL, 10), argv + 3);
	fprintf(stderr, "usage: rpc-bench-helper spawn N PROG [ARGS...] | roundtrip BYTES PROG [ARGS...]\n");
	return 2;
}
