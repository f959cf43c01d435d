#!/usr/bin/env python3
"""An RPC target agent written from docs/protocol.md alone (test tool).

    doc-agent.py --transport unix:DIR --rpc-dir RPCDIR [--name NAME]

Listens on DIR/vsock (hybrid vsock convention, guest side), answers
"CONNECT 512", speaks qrpc version 1 as the SERVICE-channel server and runs
services from RPCDIR like qube-agent.  Python 3 standard library only.  It
logs one line per accepted connection ("connection N") and per outcome to
stderr, so that tests can tell whether it was contacted.

First written from the document alone (commit 5496415).  Changed after
reading qube-agent's code, together with the document (which now says so):
execve failing with ENOENT answers 127 (was 126); a stat failure other than
ENOENT/ENOTDIR/ELOOP ends the lookup as "no such service"; only a stale
socket at DIR/vsock is replaced; a socket service's full backlog is retried
for 5 s (that rule was added to qube-agent and the document meanwhile).
"""
import argparse
import errno
import os
import select
import signal
import socket
import stat as st_mod
import struct
import subprocess
import sys
import time

# ---- wire format (docs/protocol.md "Framing", "Types and caps") ----
HELLO, CALL_REQUEST, CALL_RESULT, SERVICE_START = 0x01, 0x10, 0x11, 0x20
STDIN, STDOUT, STDERR, EOF, EXIT = 0x30, 0x31, 0x32, 0x33, 0x40
CAPS = {HELLO: 8, CALL_REQUEST: 195, CALL_RESULT: 8, SERVICE_START: 227,
        STDIN: 65536, STDOUT: 65536, STDERR: 65536, EOF: 4, EXIT: 4}
EXACT = {HELLO, CALL_RESULT, EOF, EXIT}      # payload must be exactly the cap
DATA_MAX = 65536
VERSION_MIN = VERSION_MAX = 1
AGENT_PORT = 512
LINE_MAX = 32                 # CONNECT line incl. "\n"
LINE_BYTE_TIMEOUT = 10.0      # per byte of the CONNECT line
REQUEST_TIMEOUT = 60.0        # HELLO + SERVICE_START, from the OK answer
DRAIN_TIMEOUT = 10.0          # after EXIT, since the last byte
SOCKET_CONNECT_TIMEOUT = 5.0  # a socket service's backlog may stay full this long
OUT_LIMIT = 4 * (8 + DATA_MAX)  # outgoing buffer: at most four whole messages
MANAGER_VARS = {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                "WATCHDOG_PID", "WATCHDOG_USEC"}

NAME_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
ARG_CHARS = NAME_CHARS | {ord("+")}

log_name = "doc-agent"


def log(msg):
    sys.stderr.write(f"{log_name}[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


class ProtocolError(Exception):
    pass


def msg(mtype, payload=b""):
    return struct.pack("<II", mtype, len(payload)) + payload


# ---- field rules (docs/protocol.md "Field rules") ----
def qube_name_ok(b):
    return 1 <= len(b) <= 31 and chr(b[0]).isascii() and chr(b[0]).isalpha() \
        and all(c in NAME_CHARS for c in b)


def target_ok(b):
    if len(b) > 64:
        return False
    if b in (b"@default", b"@adminvm", b"@dispvm"):
        return True
    if b.startswith(b"@dispvm:"):
        return qube_name_ok(b[len(b"@dispvm:"):])
    return qube_name_ok(b)


def service_ok(b):
    return 1 <= len(b) <= 64 and b[:1] != b"." and all(c in NAME_CHARS for c in b)


def argument_ok(b):
    return len(b) <= 64 and all(c in ARG_CHARS for c in b)


def parse_strings(payload, n):
    """n u8-length-prefixed strings that consume the payload exactly."""
    out, i = [], 0
    for _ in range(n):
        if i >= len(payload):
            raise ProtocolError("truncated string")
        ln = payload[i]
        i += 1
        if i + ln > len(payload):
            raise ProtocolError("truncated string")
        out.append(payload[i:i + ln])
        i += ln
    if i != len(payload):
        raise ProtocolError("trailing data")
    return out


class Reader:
    """Splits the byte stream into (type, payload); checks each header before
    taking its payload (unknown type, len over the cap or not exact: error)."""

    def __init__(self):
        self.buf = bytearray()

    def next(self):
        if len(self.buf) < 8:
            return None
        mtype, ln = struct.unpack_from("<II", self.buf)
        if mtype not in CAPS or ln > CAPS[mtype] or (mtype in EXACT and ln != CAPS[mtype]):
            raise ProtocolError(f"bad header type={mtype:#x} len={ln}")
        if mtype in (STDIN, STDOUT, STDERR) and ln == 0:
            raise ProtocolError("empty data message")
        if len(self.buf) < 8 + ln:
            return None
        payload = bytes(self.buf[8:8 + ln])
        del self.buf[:8 + ln]
        return mtype, payload


# ---- handshake: CONNECT line, HELLO, SERVICE_START ----
def read_connect_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        if len(line) >= LINE_MAX:
            raise ProtocolError("CONNECT line too long")
        conn.settimeout(LINE_BYTE_TIMEOUT)
        b = conn.recv(1)  # byte by byte: nothing after the newline is consumed
        if not b:
            raise ProtocolError("closed during CONNECT line")
        line += b
    parts = line[:-1].split(b" ")
    if len(parts) != 2 or parts[0] != b"CONNECT" or not parts[1].isdigit() \
            or not parts[1].isascii() or int(parts[1]) != AGENT_PORT:
        raise ProtocolError(f"bad CONNECT line {line!r}")


def read_message(conn, reader, deadline):
    while True:
        m = reader.next()
        if m:
            return m
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError("request timeout")
        conn.settimeout(left)
        data = conn.recv(65536)
        if not data:
            raise ProtocolError("closed before the request was complete")
        reader.buf += data


def handshake(conn, reader):
    read_connect_line(conn)
    conn.sendall(b"OK 1073741824\n")
    deadline = time.monotonic() + REQUEST_TIMEOUT
    conn.sendall(msg(HELLO, struct.pack("<II", VERSION_MIN, VERSION_MAX)))
    mtype, payload = read_message(conn, reader, deadline)
    if mtype != HELLO:
        raise ProtocolError("first message is not HELLO")
    pmin, pmax = struct.unpack("<II", payload)
    if not 1 <= pmin <= pmax:
        raise ProtocolError("invalid HELLO")
    v = min(pmax, VERSION_MAX)
    if v < max(pmin, VERSION_MIN):
        raise ProtocolError("no common version")
    mtype, payload = read_message(conn, reader, deadline)
    if mtype != SERVICE_START:
        raise ProtocolError("second message is not SERVICE_START")
    source, service, argument, requested = parse_strings(payload, 4)
    if not (qube_name_ok(source) and service_ok(service) and argument_ok(argument)
            and target_ok(requested)):
        raise ProtocolError("SERVICE_START field rules")
    return [x.decode("ascii") for x in (source, service, argument, requested)]


# ---- services ----
def lookup(rpc_dir, service, argument):
    """SERVICE+ARGUMENT first, then SERVICE; symlinks followed.  Absent
    (ENOENT, ENOTDIR, ELOOP) or a directory: next candidate; any other
    error: no service (127) at once."""
    for entry in (f"{service}+{argument}", service):
        path = f"{rpc_dir}/{entry}"
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue
            return None, None
        if not st_mod.S_ISDIR(st.st_mode):
            return path, st
    return None, None


def reset_child():
    for s in signal.valid_signals():
        if s in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def start_process(path, source, service, argument, requested):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QUBE_") and k not in MANAGER_VARS}
    env.update(QUBE_REMOTE=source, QUBE_SERVICE=service,
               QUBE_SERVICE_ARGUMENT=argument, QUBE_REQUESTED_TARGET=requested)
    argv = [path, argument] if argument else [path]
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
    try:
        proc = subprocess.Popen(argv, executable=path, env=env, shell=False,
                                stdin=pipes[0][0], stdout=pipes[1][1], stderr=pipes[2][1],
                                close_fds=True, process_group=0, preexec_fn=reset_child)
    except (OSError, subprocess.SubprocessError) as e:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        # execve failing with ENOENT (a script's interpreter is missing,
        # the entry vanished): 127, any other failure: 126
        code = 127 if isinstance(e, FileNotFoundError) else 126
        log(f"cannot start {path}: {e} -> {code}")
        return code
    os.close(pipes[0][0])
    os.close(pipes[1][1])
    os.close(pipes[2][1])
    return proc, pipes[0][1], pipes[1][0], pipes[2][0]


class Session:
    """The relay after SERVICE_START (docs "qube-agent" steps 3-5)."""

    def __init__(self, conn, reader):
        self.conn, self.reader = conn, reader
        self.out = bytearray()          # to the broker
        self.stdin_pending = b""        # to the service
        self.stdin_eof = False          # EOF(0) received (or read side ended)
        self.in_fd = self.out_fd = self.err_fd = None
        self.sock_mode = False          # unix socket service: in_fd == out_fd
        self.proc = self.pidfd = None
        self.exit_code = None           # known when the service has exited
        self.exit_sent = False
        self.conn_eof = False           # the broker shut down its write side

    # service stdin
    def close_stdin(self):
        if self.in_fd is None:
            return
        if self.sock_mode:
            try:
                self.in_fd.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        else:
            os.close(self.in_fd)
        self.in_fd = None
        self.stdin_pending = b""

    def write_stdin(self):
        try:
            if self.sock_mode:
                n = self.in_fd.send(self.stdin_pending)
            else:
                n = os.write(self.in_fd, self.stdin_pending)
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the service closed its stdin; discard further STDIN
            self.close_stdin()
            return
        self.stdin_pending = self.stdin_pending[n:]
        if not self.stdin_pending and self.stdin_eof:
            self.close_stdin()

    # messages from the broker (the server's view of the SERVICE channel)
    def on_message(self, mtype, payload):
        if mtype == STDIN and not self.stdin_eof:
            if self.in_fd is not None:
                self.stdin_pending = payload
                self.write_stdin()
        elif mtype == EOF and struct.unpack("<I", payload)[0] == 0 and not self.stdin_eof:
            self.stdin_eof = True
            if not self.stdin_pending:
                self.close_stdin()
        else:
            raise ProtocolError(f"unexpected message {mtype:#x}")

    def read_conn(self):
        try:
            data = self.conn.recv(65536)
        except BlockingIOError:
            return True
        if not data:  # half-close: ends stdin only
            self.conn_eof = True
            if not self.stdin_eof:
                self.stdin_eof = True
                if not self.stdin_pending:
                    self.close_stdin()
            return False
        if self.exit_sent:
            return True  # stdin that crossed EXIT: discarded
        self.reader.buf += data
        self.take_messages()
        return True

    def read_pipe(self, which):
        fd = self.out_fd if which == 1 else self.err_fd
        try:
            data = fd.recv(DATA_MAX) if self.sock_mode else os.read(fd, DATA_MAX)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.out += msg(STDOUT if which == 1 else STDERR, data)
            return
        self.out += msg(EOF, struct.pack("<I", which))
        if self.sock_mode:
            self.out_fd = None
            self.close_stdin()
            fd.close()
            self.exit_code = 0  # the service closed its end: EXIT 0
        elif which == 1:
            os.close(fd)
            self.out_fd = None
        else:
            os.close(fd)
            self.err_fd = None

    def send_exit(self, code):
        self.out += msg(EXIT, struct.pack("<I", code))
        self.exit_sent = True

    def run(self, path, st, names):
        source, service, argument, requested = names
        if path is None:
            log(f"{service}+{argument}: no such service -> 127")
            self.out += msg(EOF, struct.pack("<I", 1)) + msg(EOF, struct.pack("<I", 2))
            self.send_exit(127)
        elif st_mod.S_ISSOCK(st.st_mode):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                # a full backlog (EAGAIN) is retried for 5 s, then 126
                s.setblocking(False)
                deadline = time.monotonic() + SOCKET_CONNECT_TIMEOUT
                while True:
                    try:
                        s.connect(path)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.01)
                s.setblocking(True)
                s.sendall(f"{source} {service}+{argument} {requested}\n".encode())
            except OSError as e:
                log(f"socket service {path}: {e} -> 126")
                s.close()
                self.out += msg(EOF, struct.pack("<I", 1)) + msg(EOF, struct.pack("<I", 2))
                self.send_exit(126)
            else:
                s.setblocking(False)
                self.sock_mode = True
                self.in_fd = self.out_fd = s
                self.out += msg(EOF, struct.pack("<I", 2))  # no stderr
        else:
            started = start_process(path, source, service, argument, requested)
            if isinstance(started, int):
                self.out += msg(EOF, struct.pack("<I", 1)) + msg(EOF, struct.pack("<I", 2))
                self.send_exit(started)
            else:
                self.proc, self.in_fd, self.out_fd, self.err_fd = started
                for fd in (self.in_fd, self.out_fd, self.err_fd):
                    os.set_blocking(fd, False)
                self.pidfd = os.pidfd_open(self.proc.pid)
                log(f"started {path} pid {self.proc.pid}")
        # Input already buffered with SERVICE_START (STDIN may follow at once).
        self.conn.setblocking(False)
        self.take_messages()
        self.loop()

    def loop(self):
        last_in = time.monotonic()
        shut = False  # EXIT sent and flushed, write side shut down: draining
        while True:
            if (not self.exit_sent and self.exit_code is not None
                    and self.out_fd is None and self.err_fd is None):
                self.send_exit(self.exit_code)
            if self.exit_sent and not self.out and not shut:
                self.conn.shutdown(socket.SHUT_WR)
                shut = True
                if self.conn_eof:
                    return
            cfd = self.conn.fileno()
            ev = {cfd: 0}  # POLLHUP/POLLERR are reported anyway

            def want(fd, e):
                ev[_fileno(fd)] = ev.get(_fileno(fd), 0) | e
            if not self.stdin_pending and not self.conn_eof:
                want(cfd, select.POLLIN)
            if self.out:
                want(cfd, select.POLLOUT)
            if self.in_fd is not None and self.stdin_pending:
                want(self.in_fd, select.POLLOUT)
            if len(self.out) + 8 + DATA_MAX <= OUT_LIMIT:  # room for one more message
                for fd in (self.out_fd, self.err_fd):
                    if fd is not None:
                        want(fd, select.POLLIN)
            if self.pidfd is not None:
                want(self.pidfd, select.POLLIN)
            poll = select.poll()
            for fd, e in ev.items():
                poll.register(fd, e)
            timeout = None
            if shut:
                timeout = (last_in + DRAIN_TIMEOUT - time.monotonic()) * 1000
                if timeout <= 0:
                    return
            for fd, r in poll.poll(timeout):
                if fd == cfd:
                    if r & (select.POLLHUP | select.POLLERR):
                        if self.exit_sent:
                            return  # the peer closed after EXIT: done
                        raise ConnectionError("the broker closed the connection")
                    if r & select.POLLOUT and self.out:
                        try:
                            del self.out[:self.conn.send(self.out)]
                        except BlockingIOError:
                            pass
                    if r & select.POLLIN:
                        last_in = time.monotonic()
                        self.read_conn()
                        if self.conn_eof and shut:
                            return
                    continue
                if fd == self.pidfd:
                    self.proc.wait()
                    rc = self.proc.returncode
                    self.exit_code = rc if rc >= 0 else 128 - rc
                    os.close(self.pidfd)
                    self.pidfd = None
                    continue
                if self.in_fd is not None and fd == _fileno(self.in_fd) and self.stdin_pending:
                    self.write_stdin()
                if self.out_fd is not None and fd == _fileno(self.out_fd) and r & ~select.POLLOUT:
                    self.read_pipe(1)
                if self.err_fd is not None and fd == _fileno(self.err_fd):
                    self.read_pipe(2)
            self.take_messages()

    def take_messages(self):
        """Acts on buffered messages while the service has taken all stdin."""
        while not self.stdin_pending and not self.exit_sent:
            m = self.reader.next()
            if m is None:
                break
            self.on_message(*m)

    def kill_service(self):
        """Connection lost: close the pipes, 2 s, SIGTERM the group, 2 s, SIGKILL."""
        self.close_stdin()
        for fd in (self.out_fd, self.err_fd):
            if fd is not None:
                fd.close() if self.sock_mode else os.close(fd)
        self.out_fd = self.err_fd = None
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig in (None, signal.SIGTERM):
            if sig is not None:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(2)
                break
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        self.proc.wait()


def _fileno(fd):
    return fd if isinstance(fd, int) else fd.fileno()


def handle(conn, rpc_dir):
    reader = Reader()
    try:
        names = handshake(conn, reader)
    except (ProtocolError, OSError, struct.error) as e:
        log(f"refused: {e}")
        return
    source, service, argument, requested = names
    log(f"SERVICE_START source={source} service={service} argument={argument} requested={requested}")
    session = Session(conn, reader)
    try:
        session.run(*lookup(rpc_dir, service, argument), names)
        log("done")
    except (ProtocolError, OSError, struct.error) as e:
        log(f"connection ended: {e}")
        session.kill_service()
    finally:
        if session.proc is not None and session.proc.returncode is None:
            session.kill_service()


def main():
    global log_name
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", required=True, help="unix:DIR")
    ap.add_argument("--rpc-dir", default=os.environ.get("QUBE_RPC_DIR", "/etc/qube/rpc"))
    ap.add_argument("--name", default="")
    a = ap.parse_args()
    if not a.transport.startswith("unix:"):
        ap.error("only unix:DIR is supported")
    if a.name:
        log_name = f"doc-agent[{a.name}]"
    path = os.path.join(a.transport[len("unix:"):], "vsock")
    try:
        if st_mod.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # a stale socket is replaced, anything else is an error
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ls.bind(path)
        ls.listen(128)
    except OSError as e:
        log(f"cannot listen on {path}: {e}")
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # connection processes reap themselves
    log(f"listening on {path}, services in {a.rpc_dir}")
    n = 0
    while True:
        conn, _ = ls.accept()
        n += 1
        log(f"connection {n}")
        if os.fork() == 0:
            ls.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                handle(conn, a.rpc_dir)
            finally:
                conn.close()
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
