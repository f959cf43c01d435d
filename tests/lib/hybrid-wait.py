#!/usr/bin/env python3
"""Waits until a guest port answers through the hybrid vsock convention.

    hybrid-wait.py UDS_PATH PORT TIMEOUT_SECONDS [NBYTES]

Connects to UDS_PATH (qube-vsockd's --uds-path), writes "CONNECT PORT\\n",
reads the "OK <n>\\n" line, then waits for NBYTES (default 16: a qrpc
HELLO, which qube-agent sends first) from the guest.  Retries every 50 ms
while the socket is missing, the connection is refused or closed before
the answer.  Prints the elapsed seconds and the bytes (hex) and exits 0;
exits 1 on timeout, 2 on usage errors.
"""
import socket
import sys
import time


def attempt(path, port, nbytes, deadline):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        s.connect(path)
        s.sendall(b"CONNECT %d\n" % port)
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                return None
            line += c
            if len(line) > 32:
                raise RuntimeError("CONNECT answer longer than 32 bytes: %r" % line)
        if not line.startswith(b"OK "):
            raise RuntimeError("unexpected CONNECT answer %r" % line)
        data = b""
        while len(data) < nbytes:
            c = s.recv(nbytes - len(data))
            if not c:
                return None
            data += c
        return data
    except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError,
            BrokenPipeError, socket.timeout):
        return None
    finally:
        s.close()


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    nbytes = int(sys.argv[4]) if len(sys.argv) == 5 else 16
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        data = attempt(path, port, nbytes, deadline)
        if data is not None:
            print("%.3f %s" % (time.monotonic() - start, data.hex()))
            return 0
        time.sleep(0.05)
    print("hybrid-wait.py: port %d behind %s did not answer within %gs"
          % (port, path, timeout), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
