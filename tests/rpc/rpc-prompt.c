/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rpc-prompt: a prompt program for the broker's ask interface, answering
 * automatically (the test's stand-in for the user's dialog):
 *
 *   rpc-prompt SOCKET allow TARGET     answer "ALLOW <id> TARGET"
 *   rpc-prompt SOCKET allow-default    answer with the offered default
 *   rpc-prompt SOCKET deny             answer "DENY <id>"
 *   rpc-prompt SOCKET silent           never answer
 *   rpc-prompt SOCKET noisy TARGET     first a malformed line, an answer for
 *                                      an unknown id and one with an invalid
 *                                      target, then "ALLOW <id> TARGET"
 *
 * Every question is printed on stdout as received.  Runs until the broker
 * closes the connection or it is killed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[8192];
	size_t len = 0;
	int fd;

	if (argc < 3 || strlen(argv[1]) >= sizeof(sa.sun_path) ||
	    ((strcmp(argv[2], "allow") == 0 || strcmp(argv[2], "noisy") == 0) && argc != 4)) {
		fprintf(stderr, "usage: rpc-prompt SOCKET allow TARGET|noisy TARGET|allow-default|deny|silent\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "rpc-prompt: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		char *nl;

		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			char reply[256], id[32] = "", def[80] = "";
			size_t k = (size_t)(nl - buf) + 1;
			int r = 0;

			*nl = '\0';
			printf("%s\n", buf);
			if (strncmp(buf, "CANCEL ", 7) == 0) {
				/* a question withdrawn: nothing to answer */
				memmove(buf, buf + k, len - k + 1);
				len -= k;
				continue;
			}
			/* ASK ID SOURCE SERVICE ARGUMENT REQUESTED DEFAULT TARGET... */
			if (sscanf(buf, "ASK %31s %*s %*s %*s %*s %79s", id, def) != 2) {
				fprintf(stderr, "rpc-prompt: unexpected line\n");
				return 1;
			}
			if (strcmp(argv[2], "allow") == 0)
				r = snprintf(reply, sizeof(reply), "ALLOW %s %s\n", id, argv[3]);
			else if (strcmp(argv[2], "noisy") == 0)
				r = snprintf(reply, sizeof(reply),
					     "hello broker\nALLOW 99999 %s\nALLOW %s bad/name\n"
					     "ALLOW %s %s\n",
					     argv[3], id, id, argv[3]);
			else if (strcmp(argv[2], "allow-default") == 0)
				r = snprintf(reply, sizeof(reply), "ALLOW %s %s\n", id, def);
			else if (strcmp(argv[2], "deny") == 0)
				r = snprintf(reply, sizeof(reply), "DENY %s\n", id);
			if (r > 0 && write(fd, reply, (size_t)r) != r)
				return 1;
			memmove(buf, buf + k, len - k + 1);
			len -= k;
		}
		if (len == sizeof(buf) - 1)
			return 1;
	}
}
