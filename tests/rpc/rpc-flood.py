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
broker refused at once count too).
"""
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
    if mode != "hangup":
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
