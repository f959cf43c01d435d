/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unpacker's confinement (docs/filecopy.md, "The receiver's
 * confinement"), shared by qube-filecopy-receive, the host's
 * `qubectl copy-from` and qube-open-in-dvm: no_new_privs, Landlock below
 * the incoming directory, then a seccomp allow-list; and an unpacker in a
 * child process confined that way, fed through pipes.
 */
#ifndef QUBE_FILECOPY_SANDBOX_H
#define QUBE_FILECOPY_SANDBOX_H

#include "fc.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True once this process runs under the seccomp filter. */
extern bool qfc_sandbox_active;

/*
 * no_new_privs, Landlock (where the kernel has it: only what the unpacker
 * does below root_fd is possible), then the seccomp allow-list, last.
 * Returns the Landlock ABI applied (0: the kernel has none) or a negative
 * errno with the step that failed in *ret_step.
 */
int qfc_sandbox_enter(int root_fd, const char **ret_step);

/*
 * For a process started as root that unpacks into dir_fd: becomes the
 * directory's owner when that is not root (groups cleared, then gid, then
 * uid; getting root back must then fail); when the directory belongs to
 * root, stays uid 0 but drops every capability, so that only the owner's
 * permissions apply.  Either way the bounding set is emptied first.  Not
 * root: nothing to do.
 * 0 or a negative errno with a message in err.
 */
int qfc_drop_privileges_for(int dir_fd, char *err, size_t errlen);

/* Reads a whole settings file of at most 1 MiB into a malloc()ed buffer
 * (not NUL-terminated).  0, or a negative errno (-ENOENT: no such file,
 * -EFBIG: over 1 MiB). */
int qfc_read_small_file(const char *path, char **ret_text, size_t *ret_len);

/*
 * An unpacker in a child process: it drops privileges for dir_fd (above),
 * enters the sandbox, reads a stream from stream_fd and writes the reply
 * record (docs/filecopy.md) to reply_fd when that is not -1 (the remote
 * sender) and always to the result pipe, which the parent reads with
 * qfc_unpack_child_finish().  Its messages go to stderr prefixed with prog;
 * with progress, also entries, MiB and rate four times a second.
 */
struct qfc_unpack_child {
	pid_t pid;
	int result_fd; /* read end of the result pipe */
};

/*
 * Forks the child.  It gets stream_fd, reply_fd (may be -1) and dir_fd;
 * the caller closes its copies of stream_fd and reply_fd after this (the
 * child must be the only reader and writer for end-of-stream to work).
 */
int qfc_unpack_child_start(int stream_fd, int reply_fd, int dir_fd, const struct qfc_limits *l,
			   const char *prog, bool progress, struct qfc_unpack_child *ret);

/*
 * Reads the child's reply record and waits for it.  Returns 0 when the
 * stream was complete and verified (rep says how much was stored), else a
 * negative errno: the child's refusal (its message in msg, sanitised to
 * printable ASCII), or -ECHILD when the child died without a record.
 */
int qfc_unpack_child_finish(struct qfc_unpack_child *c, struct qfc_reply *ret_rep, char *msg,
			    size_t msglen);

struct qfc_unpack_result;
/*
 * Writes the receiver's reply record to fd: STATUS (an errno, either sign;
 * 0 success), what RES says was stored (NULL: nothing), MSG (NULL or
 * text, cut at QFC_REPLY_MAX_MSG).  A reader that went away is not an
 * error: there is nobody left to tell.
 */
void qfc_reply_write(int fd, int status, const struct qfc_unpack_result *res, const char *msg);

#endif
