#!/usr/bin/env python3
"""A test double of qubed's admin socket (the qubesd wire, docs/admin-api.md).

It answers from a scripted table and records every request byte for byte,
so that tests can check what qubectl sends.  It stands in for the transport
only: the real daemon's behaviour is tested against qubed itself.

As a module:
    fake = FakeQubesd(path, rules, default=...)
    fake.start(); ...; fake.requests; fake.stop()
A rule is a dict:
    header   the request header without its NUL ("admin.vm.List+ dom0 name dom0")
    payload  bytes the payload must equal (absent: any payload)
    reply    bytes to send (after the client's half-close), or
    chunks   a list of bytes, sent one by one with `delay` seconds between
    delay    seconds to wait before replying (default 0)
    action   "reply" (default), "close" (close at once without reading),
             "noreply" (read the request, close without a reply),
             "close_after_header" (read up to the header's NUL, reply at
             once and close without reading the payload: an early refusal)
    once     True: the rule is used for one request only
Each recorded request is a dict: raw (every byte received), header, payload,
eof (True when the client half-closed; False when it did not within the
read timeout), rule (index of the rule used, or None).

With upstream=PATH the fake forwards every request to a real qubed at PATH
and relays its reply (still recording the request and the reply).

As a program (for manual use):
    fake-qubesd.py --socket PATH (--script RULES.json | --upstream PATH) [--log LOG.jsonl]
RULES.json is a list of rules with reply/payload/chunks as strings
(\\u0000 for NUL); LOG.jsonl gets one JSON object per request.
"""
import json
import os
import socket
import sys
import threading
import time

DEFAULT_REPLY = b"2\0QubesException\0\0no such method\0"


def _header_of(raw):
    nul = raw.find(b"\0")
    if nul < 0:
        return raw.decode("latin-1"), b""
    return raw[:nul].decode("latin-1"), raw[nul + 1:]


class FakeQubesd:
    def __init__(self, path, rules=None, default=DEFAULT_REPLY, upstream=None,
                 read_timeout=5.0, log=None):
        self.path = path
        self.rules = list(rules or [])
        self.used = set()
        self.default = default
        self.upstream = upstream
        self.read_timeout = read_timeout
        self.log = log
        self.requests = []
        self.lock = threading.Lock()
        self.sock = None
        self.thread = None
        self.stopping = False

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            # wake accept()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.path)
            s.close()
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def clear(self):
        with self.lock:
            self.requests = []

    def set_rules(self, rules):
        with self.lock:
            self.rules = list(rules)
            self.used = set()

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            if self.stopping:
                conn.close()
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _pick(self, header, payload):
        with self.lock:
            for i, r in enumerate(self.rules):
                if r.get("once") and i in self.used:
                    continue
                if r.get("header") not in (None, header):
                    continue
                if "payload" in r and r["payload"] != payload:
                    continue
                if r.get("once"):
                    self.used.add(i)
                return i, r
        return None, None

    def _record(self, req):
        with self.lock:
            self.requests.append(req)
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps({
                    "header": req["header"], "payload": req["payload"].decode("latin-1"),
                    "eof": req["eof"], "rule": req["rule"],
                    "reply": req.get("reply", b"").decode("latin-1")}) + "\n")

    def _read_request(self, conn):
        raw = b""
        eof = False
        conn.settimeout(self.read_timeout)
        try:
            while True:
                b = conn.recv(65536)
                if not b:
                    eof = True
                    break
                raw += b
        except (socket.timeout, ConnectionResetError):
            pass
        return raw, eof

    def _handle(self, conn):
        try:
            # a rule that closes at once is chosen before reading: match on
            # whatever header a first read brings
            if any(r.get("action") == "close_after_header" for r in self.rules):
                conn.settimeout(self.read_timeout)
                raw = b""
                while b"\0" not in raw:
                    b = conn.recv(1)
                    if not b:
                        break
                    raw += b
                header, _ = _header_of(raw)
                i, rule = self._pick(header, None)
                if rule is not None and rule.get("action") == "close_after_header":
                    self._record({"raw": raw, "header": header, "payload": b"",
                                  "eof": None, "rule": i, "reply": rule["reply"]})
                    conn.sendall(rule["reply"])
                    return
                rest, eof = self._read_request(conn)
                raw += rest
                header, payload = _header_of(raw)
                req = {"raw": raw, "header": header, "payload": payload, "eof": eof}
                i, rule = self._pick(header, payload)
                req["rule"] = i
                self._record(req)
                conn.sendall(self.default if rule is None else rule.get("reply", b""))
                return
            if any(r.get("action") == "close" for r in self.rules):
                conn.settimeout(self.read_timeout)
                try:
                    first = conn.recv(65536, socket.MSG_PEEK)
                except OSError:
                    first = b""
                header, _ = _header_of(first)
                i, rule = self._pick(header, None)
                if rule is not None and rule.get("action") == "close":
                    self._record({"raw": first, "header": header, "payload": b"",
                                  "eof": None, "rule": i})
                    return
            raw, eof = self._read_request(conn)
            header, payload = _header_of(raw)
            req = {"raw": raw, "header": header, "payload": payload, "eof": eof}
            if self.upstream:
                req["rule"] = None
                req["reply"] = self._forward(raw)
                self._record(req)
                conn.sendall(req["reply"])
                return
            i, rule = self._pick(header, payload)
            req["rule"] = i
            if rule is None:
                req["reply"] = self.default
                self._record(req)
                conn.sendall(self.default)
                return
            self._record(req)
            if rule.get("action") == "noreply":
                return
            if rule.get("delay"):
                time.sleep(rule["delay"])
            for chunk in rule.get("chunks", [rule.get("reply", b"")]):
                conn.sendall(chunk)
                if "chunks" in rule:
                    time.sleep(rule.get("chunk_delay", 0.05))
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            conn.close()

    def _forward(self, raw):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.upstream)
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        return data


def _rule_from_json(r):
    out = dict(r)
    for k in ("reply", "payload"):
        if k in out:
            out[k] = out[k].encode("latin-1")
    if "chunks" in out:
        out["chunks"] = [c.encode("latin-1") for c in out["chunks"]]
    return out


def main():
    args = sys.argv[1:]
    opts = {}
    while args:
        a = args.pop(0)
        if a in ("--socket", "--script", "--upstream", "--log") and args:
            opts[a] = args.pop(0)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if "--socket" not in opts or ("--script" not in opts and "--upstream" not in opts):
        print(__doc__, file=sys.stderr)
        return 2
    rules = []
    if "--script" in opts:
        with open(opts["--script"]) as f:
            rules = [_rule_from_json(r) for r in json.load(f)]
    fake = FakeQubesd(opts["--socket"], rules, upstream=opts.get("--upstream"),
                      log=opts.get("--log"))
    fake.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
