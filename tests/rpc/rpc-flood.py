#!/usr/bin/env python3
"""A hostile qube for the resource tests (tests/rpc/test-exhaustion.sh).

    rpc-flood.py SOCKET N MODE [TARGET SERVICE]

Opens N connections to the broker's per-qube SOCKET, written from
docs/protocol.md.  MODE:
  hangup  HELLO + CALL_REQUEST, then close at once (the call's caller left)
  hold    HELLO + CALL_REQUEST, keep every connection open until killed
  idle    connect and send nothing, keep open until killed
  waves:W:MS  in rounds of W connections: HELLO + CALL_REQUEST on each,
          wait MS ms (the requests reach the broker's monitor), close them
          all; until N connections were made
Prints "sent N" when every connection has been made (connections the
broker refused at once count too); in hold and idle modes then "closed K"
each time the broker has closed one more of them.
"""
import selectors
import socket
import struct
import sys
import time

HELLO, CALL_REQUEST = 0x01, 0x10


def msg(t, payload=b""):
    return struct.pack("<II", t, len(payload)) + payload


def field(s):
    b = s.encode()
    return bytes([len(b)]) + b


def main():
    path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    target = sys.argv[4] if len(sys.argv) > 4 else "@dispvm"
    service = sys.argv[5] if len(sys.argv) > 5 else "test.Echo"
    req = msg(HELLO, struct.pack("<II", 1, 2)) + \
        msg(CALL_REQUEST, field(target) + field(service) + field(""))
    held = []
    if mode.startswith("waves:"):
        _, w, ms = mode.split(":")
        made = 0
        while made < n:
            wave = []
            for _ in range(min(int(w), n - made)):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(path)
                    s.sendall(req)
                    wave.append(s)
                except OSError:
                    s.close()
                made += 1
            time.sleep(int(ms) / 1000)
            for s in wave:
                s.close()
        print(f"sent {n}", flush=True)
        return
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            if mode != "idle":
                s.sendall(req)
        except OSError:
            s.close()
            continue
        if mode == "hangup":
            s.close()
        else:
            held.append(s)
    print(f"sent {n}", flush=True)
    if mode == "hangup":
        return
    # held connections: read what the broker sends, and say how many it
    # has closed ("closed K", each time one more is)
    sel = selectors.DefaultSelector()
    for s in held:
        sel.register(s, selectors.EVENT_READ)
    closed = 0
    while True:
        for key, _ in sel.select():
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                closed += 1
                print(f"closed {closed}", flush=True)
        if not sel.get_map():
            time.sleep(3600)


if __name__ == "__main__":
    main()
