#!/usr/bin/env python3
"""The peers of the qube.UpdatesProxy test (test-updates-proxy.sh).

  uproxy-peer.py upstream DIR PORTFILE LOG
      an HTTP/1.1 server on 127.0.0.1 (a free port, written to PORTFILE)
      serving the files of DIR (GET and HEAD); each request's line and
      fields go to LOG as one JSON object a line (what reached the mirror)
  uproxy-peer.py echo PORTFILE
      a TCP server on 127.0.0.1 that sends back every byte it gets (the far
      end of a CONNECT tunnel), closing after the client's half-close
  uproxy-peer.py listen PORTFILE LOG -- PROGRAM ARGS...
      what the template's systemd socket unit does (Accept=yes): listens on
      127.0.0.1 and runs PROGRAM for each connection with the socket as
      stdin and stdout, its stderr and then "listener: exit N" appended
      to LOG
  uproxy-peer.py send PORT FILE [--half-close] [--then FILE2]
      a client: connects to PORT, sends FILE's bytes (then FILE2's once
      the response head arrived: the tunnel's payload), optionally
      half-closes, and writes everything it receives until the server
      closes to stdout
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading


def write_port(path, port):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(path + ".tmp", path)


def upstream(root, portfile, log):
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def _record(self):
            with lock, open(log, "a") as f:
                f.write(json.dumps({"line": self.requestline,
                                    "fields": [[k, v] for k, v in self.headers.items()]}) + "\n")

        def do_GET(self):
            self._record()
            super().do_GET()

        def do_HEAD(self):
            self._record()
            super().do_HEAD()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    write_port(portfile, srv.server_address[1])
    srv.serve_forever()


def echo(portfile):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    write_port(portfile, s.getsockname()[1])

    def serve(c):
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def listen(portfile, log, argv):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    write_port(portfile, s.getsockname()[1])
    lock = threading.Lock()

    def reap(p):
        rc = p.wait()
        with lock, open(log, "a") as f:
            f.write("listener: exit %d\n" % rc)

    while True:
        c, _ = s.accept()
        with open(log, "ab") as err:
            p = subprocess.Popen(argv, stdin=c, stdout=c, stderr=err, close_fds=True)
        c.close()
        threading.Thread(target=reap, args=(p,), daemon=True).start()


def send(port, path, half_close, then):
    data = open(path, "rb").read()
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.settimeout(120)
    s.sendall(data)
    out = bytearray()
    if then is not None:
        # the tunnel: wait for the proxy's answer head, then the payload
        while b"\r\n\r\n" not in out:
            b = s.recv(65536)
            if not b:
                break
            out += b
        payload = open(then, "rb").read()
        t = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        t.start()
    elif half_close:
        s.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    if then is not None:
        t.join()
    sys.stdout.buffer.write(out)


def main():
    a = sys.argv[1:]
    if a[0] == "upstream":
        upstream(a[1], a[2], a[3])
    elif a[0] == "echo":
        echo(a[1])
    elif a[0] == "listen":
        assert a[3] == "--"
        listen(a[1], a[2], a[4:])
    elif a[0] == "send":
        half = "--half-close" in a
        then = a[a.index("--then") + 1] if "--then" in a else None
        send(a[1], a[2], half, then)
    else:
        sys.exit("unknown mode %s" % a[0])


if __name__ == "__main__":
    main()
