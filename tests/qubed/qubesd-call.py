#!/usr/bin/env python3
"""A raw client of the qubesd wire (docs/admin-api.md), for tests.

  qubesd-call.py SOCKET METHOD[+ARG] [DEST] [--payload-file F | --payload S] [--src SRC]
                 [--raw-header BYTES]

Prints the reply: "OK" and the data, or "EXC TYPE: MESSAGE"; exit 0 for a
success reply, 1 for an exception reply, 3 for a transport error or a
reply that is not in the wire format.
"""
import socket
import sys


def call(path, method, dest="dom0", payload=b"", src="dom0", raw=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if raw is None:
        if "+" not in method:
            method += "+"
        raw = f"{method} {src} name {dest}\0".encode() + payload
    try:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon answered and closed early (a refused peer): read what it said
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        pass
    s.close()
    return data


def main():
    args = sys.argv[1:]
    payload = b""
    src = "dom0"
    raw = None
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--payload":
            payload = args[i + 1].encode()
            i += 2
        elif a == "--payload-file":
            with open(args[i + 1], "rb") as f:
                payload = f.read()
            i += 2
        elif a == "--src":
            src = args[i + 1]
            i += 2
        elif a == "--raw-header":
            raw = args[i + 1].encode().decode("unicode_escape").encode("latin-1")
            i += 2
        else:
            rest.append(a)
            i += 1
    if len(rest) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, method = rest[0], rest[1]
    dest = rest[2] if len(rest) > 2 else "dom0"
    try:
        data = call(path, method, dest, payload, src, raw)
    except OSError as e:
        print(f"TRANSPORT {e}")
        return 3
    if data[:2] == b"0\0":
        sys.stdout.write("OK\n")
        sys.stdout.write(data[2:].decode(errors="replace"))
        return 0
    if data[:2] == b"2\0":
        parts = data[2:].split(b"\0")
        print(f"EXC {parts[0].decode()}: {parts[2].decode(errors='replace') if len(parts) > 2 else ''}")
        return 1
    print(f"BADREPLY {data[:64]!r}")
    return 3


if __name__ == "__main__":
    sys.exit(main())
