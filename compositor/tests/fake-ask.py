#!/usr/bin/env python3
"""Plays the broker's side of the ask interface (docs/broker.md) for the
   CANCEL and junk-line cases:  fake-ask.py SOCKET LOG < lines
   Listens on SOCKET, accepts one prompt, sends it every line read from
   stdin, appends every line the prompt sends to LOG."""
import os
import selectors
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
conn, _ = srv.accept()
with open(log, "a") as f:
    f.write("CONNECTED\n")
sel = selectors.DefaultSelector()
sel.register(conn, selectors.EVENT_READ, "peer")
sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
while True:
    for key, _ in sel.select():
        if key.data == "stdin":
            chunk = os.read(0, 4096)
            if not chunk:
                sys.exit(0)
            conn.sendall(chunk)
        else:
            data = conn.recv(4096)
            if not data:
                sys.exit(0)
            with open(log, "a") as f:
                f.write(data.decode(errors="replace"))
