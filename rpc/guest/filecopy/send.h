/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qube.Filecopy sender as a library: the commands of send.c, the
 * host's `qubectl copy-to` and qube-open-in-dvm use it.  Walks what is to
 * be sent (checking every name with the receiver's rules before a byte
 * goes out), writes the stream, reads the receiver's reply, and for a move
 * deletes exactly what the reply confirmed.
 */
#ifndef QUBE_FILECOPY_SEND_H
#define QUBE_FILECOPY_SEND_H

#include "fc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qfc_sender;

/* prog prefixes every message; progress (entries, MiB, rate) on stderr
 * four times a second when stderr is a terminal and not quiet. */
struct qfc_sender *qfc_sender_new(const char *prog, bool quiet);
void qfc_sender_free(struct qfc_sender *s);

/*
 * Adds one command-line argument: a file, a directory (with everything
 * below it) or a symlink (sent as what it points to; refused when move is
 * set, since a move would delete the link and not what was sent).  Sent as
 * its last path component.  Every name and symlink is checked with the
 * receiver's rules; the first refusal is printed and returned (-errno).
 */
int qfc_sender_add(struct qfc_sender *s, const char *path, bool move);

/* Bytes the stream of what was added will have (header to trailer),
 * as long as nothing changes meanwhile (a change is refused when sent). */
uint64_t qfc_sender_stream_size(const struct qfc_sender *s);

/* Writes the whole stream to out_fd (does not close it).  0 or -errno. */
int qfc_sender_send(struct qfc_sender *s, int out_fd);

/*
 * Reads the receiver's reply from in_fd, up to its end.  0 when it
 * confirms exactly what was sent (entries, bytes and CRC); else a negative
 * errno and the reason printed.  *ret_got: a well-formed reply arrived.
 */
int qfc_sender_read_reply(struct qfc_sender *s, int in_fd, bool *ret_got);

/* The same for a reply record already read (buf holds len bytes: the
 * header and its message). */
int qfc_sender_check_reply(struct qfc_sender *s, const uint8_t *buf, size_t len, bool *ret_got);

/* For a move, after a confirming reply: deletes what was sent, deepest
 * first, only what is unchanged since it was read.  0, or -ESTALE / -errno
 * when something was kept (each named on stderr). */
int qfc_sender_delete_sent(struct qfc_sender *s);

/* Entries (files, directories, symlinks) and data bytes sent. */
uint64_t qfc_sender_entries(const struct qfc_sender *s);
uint64_t qfc_sender_data_bytes(const struct qfc_sender *s);

#endif
