#!/usr/bin/env python3
"""Scripted peers of the broker's ask and start interfaces, written from
docs/broker.md, for tests/rpc/test-exhaustion.sh and test-routing.sh.
Every line received and every event is appended to LOG (flushed), one per
line.

    rpc-ifaces.py prompt SOCKET LOG MODE [ALLOW_SOURCE]
        connect to the ask socket.  MODE:
          late     reads nothing for 3 s (a busy dialog), then answers
                   questions from ALLOW_SOURCE with "ALLOW <id> <default>"
          default  answers every question with "ALLOW <id> <default>"
          nul      answers every question with "ALLOW <id> <default>", a
                   NUL byte and junk on the same line, then "DENY <id>": a
                   broker that reads the line up to the NUL allows the
                   call, one that rejects the line denies it
    rpc-ifaces.py starter SOCKET LOG
        serve the start interface.  What it does is read from the file
        LOG.mode before each request (empty or missing: "slow"):
          slow     never answer START/DISPVM; when the broker ends its
                   side (cancelled) log "CANCELLED <request>" and, for
                   DISPVM, answer "OK dvmN" anyway (a disposable that
                   finished starting after its caller left).  DESTROY is
                   answered "OK <name>" at once ("DESTROYED <name>").
          fast     DISPVM is answered "OK dvmN" at once (no agent runs
                   there); DESTROY is held unanswered ("HELD <name>")
          release  as slow, and every held DESTROY is answered now
        "OPEN <n>" is logged with the number of unanswered START/DISPVM
        requests open.
"""
import os
import selectors
import socket
import sys
import time


def prompt(path, logf, mode, allow_source):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    log = open(logf, "a", buffering=1)
    log.write("CONNECTED\n")
    if mode == "late":
        time.sleep(3)
    buf = b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            log.write("EOF\n")
            return
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode("ascii", "replace")
            log.write(text + "\n")
            f = text.split(" ")
            if f[0] != "ASK" or len(f) < 7:
                continue
            if mode == "nul":
                s.sendall(f"ALLOW {f[1]} {f[6]}".encode() + b"\0junk\n" +
                          f"DENY {f[1]}\n".encode())
            elif mode == "default" or f[2] == allow_source:
                s.sendall(f"ALLOW {f[1]} {f[6]}\n".encode())


def starter(path, logf):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1024)
    log = open(logf, "a", buffering=1)
    log.write("listening\n")
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    state = {}  # conn -> [buffer, request or None, answered]
    held = []   # connections whose DESTROY is not answered yet
    n_dvm = 0

    def mode():
        try:
            with open(logf + ".mode") as f:
                return f.read().strip() or "slow"
        except FileNotFoundError:
            return "slow"

    while True:
        if held and mode() == "release":
            for c in held:
                name = state[c][1][8:]
                try:
                    c.sendall(f"OK {name}\n".encode())
                except OSError:
                    pass
                log.write(f"DESTROYED {name}\n")
            held = []
        for key, _ in sel.select(0.1):
            if key.fileobj is ls:
                c, _ = ls.accept()
                state[c] = [b"", None, False]
                sel.register(c, selectors.EVENT_READ)
                continue
            c = key.fileobj
            st = state[c]
            d = c.recv(4096)
            if d:
                st[0] += d
                if st[1] is None and b"\n" in st[0]:
                    st[1] = st[0].split(b"\n", 1)[0].decode()
                    log.write("REQ " + st[1] + "\n")
                    m = mode()
                    if st[1].startswith("DESTROY "):
                        if m == "fast":
                            held.append(c)
                            log.write("HELD " + st[1][8:] + "\n")
                        else:
                            st[2] = True
                            c.sendall(b"OK " + st[1][8:].encode() + b"\n")
                            log.write("DESTROYED " + st[1][8:] + "\n")
                    elif st[1].startswith("DISPVM ") and m == "fast":
                        n_dvm += 1
                        st[2] = True
                        c.sendall(f"OK dvm{n_dvm}\n".encode())
                        log.write(f"FAST-OK dvm{n_dvm}\n")
                    open_n = sum(1 for v in state.values()
                                 if v[1] and not v[1].startswith("DESTROY"))
                    log.write(f"OPEN {open_n}\n")
                continue
            # EOF from the broker: it cancelled (or it is done)
            sel.unregister(c)
            req = st[1]
            if c in held:
                held.remove(c)
            del state[c]
            if req and not st[2] and not req.startswith("DESTROY"):
                log.write("CANCELLED " + req + "\n")
                if req.startswith("DISPVM "):
                    n_dvm += 1
                    try:
                        c.sendall(f"OK dvm{n_dvm}\n".encode())
                        log.write(f"LATE-OK dvm{n_dvm}\n")
                    except OSError:
                        pass
            c.close()


def main():
    if sys.argv[1] == "prompt":
        prompt(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else "")
    else:
        starter(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
