#!/usr/bin/env python3
"""Host to guest without the broker: connects to a qube-vsockd's hybrid
socket, asks for guest port PORT ("CONNECT PORT"), speaks the broker's side
of the agent protocol (docs/protocol.md: HELLO, SERVICE_START, the
streams) for SERVICE, relays stdin to it and its stdout to stdout, and
exits with the service's exit code.  Source "dom0"; for benchmarks.
  hybrid-cat.py SOCKET PORT SERVICE"""
import os
import select
import socket
import struct
import sys

HELLO, SERVICE_START = 0x01, 0x20
STDIN, STDOUT, STDERR, EOF, EXIT = 0x30, 0x31, 0x32, 0x33, 0x40
CHUNK = 65536

path, port, service = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(f"CONNECT {port}\n".encode())
line = b""
while not line.endswith(b"\n"):
    c = s.recv(1)
    if not c:
        sys.exit("hybrid-cat: no answer to CONNECT")
    line += c
if not line.startswith(b"OK "):
    sys.exit(f"hybrid-cat: CONNECT answered {line!r}")


def msg(t, p=b""):
    return struct.pack("<II", t, len(p)) + p


def strings(*xs):
    return b"".join(bytes([len(x)]) + x for x in xs)


buf = bytearray()


def read_msg():
    while True:
        if len(buf) >= 8:
            t, n = struct.unpack_from("<II", buf)
            if len(buf) >= 8 + n:
                p = bytes(buf[8:8 + n])
                del buf[:8 + n]
                return t, p
        d = s.recv(1 << 20)
        if not d:
            sys.exit("hybrid-cat: connection closed")
        buf.extend(d)


s.sendall(msg(HELLO, struct.pack("<II", 1, 1)))
t, _ = read_msg()
if t != HELLO:
    sys.exit("hybrid-cat: no HELLO from the agent")
s.sendall(msg(SERVICE_START, strings(b"dom0", service, b"", b"bench")))
out = sys.stdout.buffer
stdin_open = True
s.setblocking(False)
pending = b""
fin = sys.stdin.buffer.raw
while True:
    # parse what we have
    while len(buf) >= 8:
        t, n = struct.unpack_from("<II", buf)
        if len(buf) < 8 + n:
            break
        p = bytes(buf[8:8 + n])
        del buf[:8 + n]
        if t == STDOUT:
            out.write(p)
        elif t == STDERR:
            sys.stderr.buffer.write(p)
        elif t == EXIT:
            out.flush()
            sys.exit(struct.unpack("<I", p)[0])
    rl = [s]
    if stdin_open and not pending:
        rl.append(fin)
    wl = [s] if pending else []
    r, w, _ = select.select(rl, wl, [])
    if s in r:
        try:
            d = s.recv(1 << 20)
        except BlockingIOError:
            d = None
        if d == b"":
            sys.exit("hybrid-cat: connection closed before EXIT")
        if d:
            buf.extend(d)
    if fin in r:
        d = os.read(fin.fileno(), CHUNK)
        if d:
            pending = msg(STDIN, d)
        else:
            pending = msg(EOF, struct.pack("<I", 0))
            stdin_open = False
    if s in w and pending:
        try:
            k = s.send(pending)
            pending = pending[k:]
        except BlockingIOError:
            pass
