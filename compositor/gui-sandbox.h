/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qube-gui-bridge's per-connection sandbox (docs/compositor.md, "The GUI
 * bridge"): the host-side `waypipe client` that decodes one guest
 * connection runs in new user, mount, network, PID, IPC, UTS and cgroup
 * namespaces, on a read-only root that holds only the system's /usr (and
 * its /lib, /bin links) and /etc/ld.so.cache, with no_new_privs and a
 * seccomp allow-list that has no connect(), no socket() but AF_UNIX, no
 * fork and no ptrace.  Its only ways out are the two descriptors it is
 * given: the guest's stream (through a relay) and one connection to the
 * qube's own compositor socket.
 */
#ifndef QC_GUI_SANDBOX_H
#define QC_GUI_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

/* Inside the sandbox: waypipe's channel socket, where the relay connects */
#define QC_GUI_CHAN_DIR "/chan"
#define QC_GUI_CHAN_SOCK "/chan/wp"

/* Exit statuses of a connection's sandbox process (what the bridge logs) */
#define QC_GUI_EXIT_SETUP 120   /* the sandbox could not be set up */
#define QC_GUI_EXIT_NOSOCK 121  /* waypipe never opened its channel socket */
#define QC_GUI_EXIT_SIGNAL 128  /* + N: waypipe was killed by signal N */

struct qc_gui_conn {
	int guest_fd;   /* the guest's stream (accepted on the vsock path) */
	int display_fd; /* a fresh connection to the qube's compositor socket */
	int waypipe_fd; /* the waypipe executable, opened O_PATH by the bridge */
	uid_t uid;      /* the bridge's (already unprivileged) ids */
	gid_t gid;
	const char *qube;
	unsigned id; /* connection number, for log lines */
};

/*
 * Runs one connection: sets up the namespaces and the root, forks the
 * sandbox's init (the relay) and waypipe under it, and returns the exit
 * status for the bridge: 0 when waypipe ended normally, QC_GUI_EXIT_*
 * otherwise.  Called in a freshly forked child of the bridge; never
 * returns to the bridge's loop.
 */
int qc_gui_run_connection(const struct qc_gui_conn *c);

#endif
