/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libqrpc transports (AF_VSOCK and the hybrid unix-socket convention) and the
 * blocking message helpers.  Everything here touches the OS; the codec in
 * qrpc.c does not.
 */
#include "qrpc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define CID_HOST 2u /* VMADDR_CID_HOST */

/* ---- Blocking message helpers --------------------------------------------- */

/* Reads exactly LEN bytes.  Returns 0, -EPIPE on EOF before the first byte,
 * -ECONNRESET on EOF after some bytes, or -errno. */
static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? -EPIPE : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int qrpc_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
					return -errno;
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int qrpc_read_msg(int fd, uint8_t *buf, size_t cap, struct qrpc_msg *ret_msg)
{
	struct qrpc_header h;
	int r;

	if (cap < QRPC_HEADER_SIZE)
		return -ENOBUFS;
	r = read_full(fd, buf, QRPC_HEADER_SIZE);
	if (r < 0)
		return r;
	r = qrpc_header_decode(buf, &h);
	if (r < 0)
		return r;
	if (cap - QRPC_HEADER_SIZE < h.len)
		return -ENOBUFS;
	r = read_full(fd, buf + QRPC_HEADER_SIZE, h.len);
	if (r < 0)
		return r == -EPIPE ? -ECONNRESET : r;
	return qrpc_msg_decode(&h, buf + QRPC_HEADER_SIZE, ret_msg);
}

int qrpc_write_msg(int fd, const struct qrpc_msg *msg)
{
	size_t cap = QRPC_HEADER_SIZE + QRPC_MAX_PAYLOAD, len;
	uint8_t *buf = malloc(cap);
	int r;

	if (!buf)
		return -ENOMEM;
	r = qrpc_msg_encode(msg, buf, cap, &len);
	if (r == 0)
		r = qrpc_write_full(fd, buf, len);
	free(buf);
	return r;
}

/* ---- Transport specification ------------------------------------------------ */

int qrpc_transport_parse(const char *spec, struct qrpc_transport *ret_transport)
{
	struct qrpc_transport t;

	memset(&t, 0, sizeof(t));
	if (strcmp(spec, "vsock") == 0) {
		t.kind = QRPC_TRANSPORT_VSOCK;
	} else if (strncmp(spec, "vsock:", 6) == 0) {
		t.kind = QRPC_TRANSPORT_VSOCK;
		if (qrpc_parse_u32(spec + 6, &t.cid) < 0 || t.cid < 3 || t.cid == UINT32_MAX)
			return -EINVAL;
	} else if (strncmp(spec, "unix:", 5) == 0) {
		size_t n = strlen(spec + 5);
		t.kind = QRPC_TRANSPORT_UNIX;
		if (n == 0)
			return -EINVAL;
		if (n >= sizeof(t.dir))
			return -ENAMETOOLONG;
		memcpy(t.dir, spec + 5, n + 1);
	} else {
		return -EINVAL;
	}
	*ret_transport = t;
	return 0;
}

/* ---- Socket helpers ------------------------------------------------------- */

/* DIR/vsock (port == NO_PORT) or DIR/vsock_PORT. */
#define NO_PORT UINT64_MAX

static int unix_addr(const struct qrpc_transport *t, uint64_t port, struct sockaddr_un *ret_addr)
{
	struct sockaddr_un a;
	int n;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	if (port == NO_PORT)
		n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/vsock", t->dir);
	else
		n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/vsock_%u", t->dir, (unsigned)port);
	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	*ret_addr = a;
	return 0;
}

static int unix_listen(const struct qrpc_transport *t, uint64_t port)
{
	struct sockaddr_un a;
	struct stat st;
	int fd, r;

	r = unix_addr(t, port, &a);
	if (r < 0)
		return r;
	/* A stale socket from an earlier run is replaced; anything else at
	 * that path is left alone and reported. */
	if (lstat(a.sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(a.sun_path) < 0)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		goto err_close;
	}
	return fd;
err_close:
	close(fd);
	return r;
}

/* Connects FD (retrying on EINTR); returns FD, or closes it and returns
 * a negative errno. */
static int connect_or_close(int fd, const struct sockaddr *a, socklen_t len)
{
	while (connect(fd, a, len) < 0) {
		int r = -errno;
		if (r == -EINTR)
			continue;
		close(fd);
		return r;
	}
	return fd;
}

static int unix_connect(const struct qrpc_transport *t, uint64_t port)
{
	struct sockaddr_un a;
	int fd, r;

	r = unix_addr(t, port, &a);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return connect_or_close(fd, (struct sockaddr *)&a, sizeof(a));
}

static int vsock_listen(uint32_t port)
{
	struct sockaddr_vm a;
	int fd, r;

	memset(&a, 0, sizeof(a));
	a.svm_family = AF_VSOCK;
	a.svm_cid = VMADDR_CID_ANY;
	a.svm_port = port;
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int vsock_connect(uint32_t cid, uint32_t port)
{
	struct sockaddr_vm a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.svm_family = AF_VSOCK;
	a.svm_cid = cid;
	a.svm_port = port;
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return connect_or_close(fd, (struct sockaddr *)&a, sizeof(a));
}

int qrpc_vsock_peer_cid(int fd, uint32_t *ret_cid)
{
	struct sockaddr_vm a;
	socklen_t len = sizeof(a);

	memset(&a, 0, sizeof(a));
	if (getpeername(fd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	if (a.svm_family != AF_VSOCK || len < sizeof(a))
		return -EAFNOSUPPORT;
	*ret_cid = a.svm_cid;
	return 0;
}

/* Reads one '\n'-terminated line of at most CAP-1 bytes, byte by byte (so
 * nothing after the newline is consumed), waiting at most TIMEOUT_MS for
 * each byte.  The newline is replaced by NUL; a NUL in the line is
 * -EPROTO. */
static int read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pr == 0)
			return -ETIMEDOUT;
		char c;
		ssize_t got = read(fd, &c, 1);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (got == 0)
			return -ECONNRESET;
		if (c == '\n') {
			buf[n] = '\0';
			return 0;
		}
		/* A NUL would end the line early for the parser and hide
		 * whatever follows it ("CONNECT 512\0junk"). */
		if (c == '\0' || n + 1 >= cap)
			return -EPROTO;
		buf[n++] = c;
	}
}

/* ---- Guest side ------------------------------------------------------------ */

int qrpc_guest_connect_host(const struct qrpc_transport *t, uint32_t port)
{
	if (t->kind == QRPC_TRANSPORT_UNIX)
		return unix_connect(t, port);
	return vsock_connect(CID_HOST, port);
}

int qrpc_guest_listen(const struct qrpc_transport *t, uint32_t port)
{
	if (t->kind == QRPC_TRANSPORT_UNIX)
		return unix_listen(t, NO_PORT);
	return vsock_listen(port);
}

int qrpc_guest_answer_connect(int fd, uint32_t port)
{
	static unsigned counter;
	char line[QRPC_CONNECT_LINE_MAX];
	char reply[32];
	uint32_t untrusted_port, p;
	int r, n;

	r = read_line(fd, line, sizeof(line), QRPC_HANDSHAKE_TIMEOUT_MS);
	if (r < 0)
		return r;
	if (strncmp(line, "CONNECT ", 8) != 0 || qrpc_parse_u32(line + 8, &untrusted_port) < 0)
		return -EPROTO;
	p = untrusted_port;
	if (p != port)
		return -EPROTO;
	/* The number is the host-side port of the connection in Firecracker;
	 * here it only has to be a number. */
	n = snprintf(reply, sizeof(reply), "OK %u\n", 1073741824u + (counter++ % 1000000u));
	return qrpc_write_full(fd, reply, (size_t)n);
}

int qrpc_guest_accept(const struct qrpc_transport *t, int listen_fd, uint32_t port)
{
	int fd, r;

	do
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	if (t->kind == QRPC_TRANSPORT_UNIX) {
		r = qrpc_guest_answer_connect(fd, port);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	return fd;
}

/* ---- Host side -------------------------------------------------------------- */

int qrpc_host_listen(const struct qrpc_transport *t, uint32_t port)
{
	if (t->kind == QRPC_TRANSPORT_UNIX)
		return unix_listen(t, port);
	return vsock_listen(port);
}

int qrpc_host_connect_guest(const struct qrpc_transport *t, uint32_t port)
{
	char req[32], line[QRPC_CONNECT_LINE_MAX];
	uint32_t hostport;
	int fd, r, n;

	if (t->kind == QRPC_TRANSPORT_VSOCK) {
		if (t->cid < 3)
			return -EINVAL;
		return vsock_connect(t->cid, port);
	}
	fd = unix_connect(t, NO_PORT);
	if (fd < 0)
		return fd;
	n = snprintf(req, sizeof(req), "CONNECT %u\n", port);
	r = qrpc_write_full(fd, req, (size_t)n);
	if (r < 0)
		goto err_close;
	r = read_line(fd, line, sizeof(line), QRPC_HANDSHAKE_TIMEOUT_MS);
	if (r == -ECONNRESET)
		r = -ECONNREFUSED; /* nobody listens on PORT in the guest */
	if (r < 0)
		goto err_close;
	if (strncmp(line, "OK ", 3) != 0 || qrpc_parse_u32(line + 3, &hostport) < 0) {
		r = -ECONNREFUSED;
		goto err_close;
	}
	return fd;
err_close:
	close(fd);
	return r;
}
