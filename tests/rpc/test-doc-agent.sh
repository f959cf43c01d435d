#!/usr/bin/env bash
# docs/protocol.md is enough to write a compatible agent: tests/rpc/doc-agent.py
# (Python, written from the document alone) is the target qube "docq"; the
# real qube-broker, a real qube-agent in the calling qube "work" and the real
# qube-call drive it.  Then raw byte probes (bad CONNECT lines, malformed or
# out-of-order messages, a missing service, a plain call) are sent to both the
# real qube-agent and doc-agent.py, and their answers must be the same
# (up to the order of EOF(1)/EOF(2) and of stdout vs stderr data).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${PYTHON:=python3}"
DOC_AGENT="$(cd "$(dirname "$0")" && pwd)/doc-agent.py"

write_system_info work docq
write_services
R=$T/rpc
cat > "$R/test.Override" <<'SH'
#!/bin/sh
printf 'generic argc=%s 1=%s\n' "$#" "${1-}"
SH
cat > "$R/test.Override+special" <<'SH'
#!/bin/sh
printf 'special argc=%s 1=%s\n' "$#" "${1-}"
SH
cat > "$R/test.Env" <<'SH'
#!/bin/sh
echo "0=$0 argc=$# 1=${1-}"
echo "remote=$QUBE_REMOTE service=$QUBE_SERVICE arg=${QUBE_SERVICE_ARGUMENT-UNSET} requested=$QUBE_REQUESTED_TARGET"
echo "qube vars: $(env | grep '^QUBE_' | cut -d= -f1 | sort | tr '\n' ' ')"
echo "notify=${NOTIFY_SOCKET-unset} sim=${SIMQUBE-unset}"
SH
cat > "$R/test.Signal" <<'SH'
#!/bin/sh
echo "about to die" >&2
kill -TERM $$
SH
chmod +x "$R"/*
printf '#!/bin/sh\necho never\n' > "$R/test.NoExec" # not executable
mkdir "$R/test.Dir+x" # a directory does not count: test.Dir+x -> test.Dir
cp "$R/test.Override" "$R/test.Dir"
printf '#!/nonexistent/interpreter\n' > "$R/test.NoInterp" # execve: ENOENT -> 127
chmod +x "$R/test.NoInterp"
ln -s "$T/nowhere" "$R/test.Override+dangling" # dangling symlink: absent

mkdir -p "$T/policy"
cat > "$T/policy/10-test.policy" <<'P'
test.Cat         *  work  docq      allow
test.Exit        *  work  docq      allow
test.Missing     *  work  docq      allow
test.Override    *  work  docq      allow
test.Env         *  work  docq      allow
test.Env         *  work  @default  allow target=docq
test.NoExec      *  work  docq      allow
test.Dir         *  work  docq      allow
test.Signal      *  work  docq      allow
test.IgnoreStdin *  work  docq      allow
test.Sock        *  work  docq      allow
test.NoInterp    *  work  docq      allow
test.AsUser      *  work  docq      allow user=nobody
test.Denied      *  work  docq      deny
P

start_agent work
mkdir -p "$T/qubes/docq"
SIMQUBE=docq QUBE_LEAK=agent-only NOTIFY_SOCKET=/agent/only \
	"$PYTHON" "$DOC_AGENT" --transport "unix:$T/qubes/docq" --rpc-dir "$R" --name docq \
	>>"$T/agent-docq.log" 2>&1 &
PIDS+=($!)
wait_for 20 "doc-agent socket" test -S "$T/qubes/docq/vsock"
start_broker
doc_connections() { grep -c ' connection [0-9]*$' "$T/agent-docq.log" || true; }

# -- 10 MiB stdin -> stdout round trip through cat, checksummed
head -c 10M /dev/urandom > "$T/big"
want=$(sha256sum < "$T/big" | cut -d' ' -f1)
got=$(call work docq test.Cat < "$T/big" | sha256sum | cut -d' ' -f1)
check "10 MiB round trip through doc-agent: checksums match" test "$got" = "$want"
rm -f "$T/big"

# -- stderr and a nonzero exit code
call work docq test.Exit+5 </dev/null >"$T/o" 2>"$T/e" && rc=0 || rc=$?
check "exit code relayed (5)" test "$rc" = 5
check "stdout relayed" test "$(cat "$T/o")" = "to stdout"
check "stderr relayed" grep -qx "to stderr: 5" "$T/e"
call work docq test.Signal </dev/null >/dev/null 2>"$T/e" && rc=0 || rc=$?
check "service killed by SIGTERM: 128 + 15" test "$rc" = 143
check "stderr of the killed service relayed" grep -qx "about to die" "$T/e"

# -- missing service, entry that cannot be started
call work docq test.Missing </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "missing service: 127" test "$rc" = 127
call work docq test.NoExec </dev/null >"$T/o" 2>&1 && rc=0 || rc=$?
check "entry that is not executable: 126, nothing ran" test "$rc:$(cat "$T/o")" = "126:"
call work docq test.NoInterp </dev/null >"$T/o" 2>&1 && rc=0 || rc=$?
check "script whose interpreter is missing (execve ENOENT): 127" test "$rc:$(cat "$T/o")" = "127:"

# -- SERVICE+ARG override, $1
out=$(call work docq test.Override+special </dev/null) && rc=0 || rc=$?
check "SERVICE+ARG entry wins, \$1 is the argument" test "$rc:$out" = "0:special argc=1 1=special"
out=$(call work docq test.Override+other </dev/null) && rc=0 || rc=$?
check "no SERVICE+ARG entry: SERVICE runs with \$1" test "$rc:$out" = "0:generic argc=1 1=other"
out=$(call work docq test.Override </dev/null) && rc=0 || rc=$?
check "no argument: no \$1" test "$rc:$out" = "0:generic argc=0 1="
out=$(call work docq test.Dir+x </dev/null) && rc=0 || rc=$?
check "a directory SERVICE+ARG does not count" test "$rc:$out" = "0:generic argc=1 1=x"
out=$(call work docq test.Override+dangling </dev/null) && rc=0 || rc=$?
check "a dangling symlink SERVICE+ARG does not count" test "$rc:$out" = "0:generic argc=1 1=dangling"

# -- QUBE_* environment (and nothing else QUBE_* or for the service manager)
out=$(call work @default test.Env+a.b </dev/null) && rc=0 || rc=$?
check "environment and argv through a redirect" test "$rc:$out" = "0:0=$R/test.Env argc=1 1=a.b
remote=work service=test.Env arg=a.b requested=@default
qube vars: QUBE_REMOTE QUBE_REQUESTED_TARGET QUBE_SERVICE QUBE_SERVICE_ARGUMENT 
notify=unset sim=docq"
out=$(call work docq test.Env </dev/null | sed -n 2p) && rc=0 || rc=$?
check "empty argument: QUBE_SERVICE_ARGUMENT set and empty" \
	test "$rc:$out" = "0:remote=work service=test.Env arg= requested=docq"

# -- a service that exits without reading 5 MiB of stdin
out=$(head -c 5M /dev/zero | call work docq test.IgnoreStdin 2>/dev/null) && rc=0 || rc=$?
check "service ignoring stdin: its output and exit code (3)" test "$rc:$out" = "3:done without reading"

# -- a unix socket service entry: header line, then the socket is stdin/stdout
"$PYTHON" - "$R/test.Sock" > "$T/sock-service.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
print("listening", flush=True)
c, _ = s.accept(); f = c.makefile("rb")
c.sendall(b"header=" + f.readline())
c.sendall(f.read().upper())   # until the agent's shutdown(SHUT_WR)
c.close()
PY
PIDS+=($!)
wait_for 20 "socket service" grep -q listening "$T/sock-service.log"
out=$(printf 'abc' | call work docq test.Sock+q) && rc=0 || rc=$?
check "socket service: header line, stdin to it, its output back, exit 0" \
	test "$rc:$out" = "0:header=work test.Sock+q docq
ABC"

# -- user= needs protocol version 2 (SERVICE_START_AS); doc-agent speaks
# version 1, so the broker must not start the service at all (it would run
# as the agent's user)
call work docq test.Cat </dev/null >/dev/null 2>&1 # (a version-1 call still works)
call work docq test.AsUser </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "user= toward a version-1 agent: the call fails (125), nothing runs ($rc)" test "$rc" = 125
check "  logged: the agent speaks version 1, cannot run as user nobody" \
	grep -q 'the agent of docq speaks protocol version 1, which cannot run a service as user nobody' "$T/broker.log"

# -- refused by policy: 126, and doc-agent is never contacted
before=$(doc_connections)
call work docq test.Denied </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "refused call: 126" test "$rc" = 126
check "refused call: logged as refused" grep -q 'service=test.Denied argument=- decision=deny result=refused' "$T/broker.log"
check "refused call: doc-agent not contacted ($before connections before and after)" \
	test "$(doc_connections)" = "$before"

# -- socket services that cannot be started (126): a socket nobody listens
# on any more, and a listener whose backlog stays full (5 s of retries)
"$PYTHON" - "$R/test.Stale" "$R/test.Full" > "$T/sock-full.log" 2>&1 <<'PY' &
import socket, sys, time
stale = socket.socket(socket.AF_UNIX); stale.bind(sys.argv[1]); stale.close()
full = socket.socket(socket.AF_UNIX); full.bind(sys.argv[2]); full.listen(0)
hold = socket.socket(socket.AF_UNIX); hold.connect(sys.argv[2])  # fills the backlog
print("ready", flush=True)
time.sleep(3600)
PY
PIDS+=($!)
wait_for 20 "socket services that cannot be started" grep -q ready "$T/sock-full.log"

# -- the same raw probes against the real qube-agent (work) and doc-agent.py
cat > "$T/probe.py" <<'PY'
import socket, struct, sys
def m(t, p=b""): return struct.pack("<II", t, len(p)) + p
def s(*xs): return b"".join(bytes([len(x)]) + x for x in xs)
HELLO = m(1, struct.pack("<II", 1, 1))
def start(svc, arg=b""): return m(0x20, s(b"work", svc, arg, b"docq"))
C = b"CONNECT 512\n"
PROBES = {
  "connect-513": b"CONNECT 513\n",
  "connect-garbage": b"HELLO\n",
  "connect-leading-zero": b"CONNECT 0512\n" + HELLO + start(b"test.Missing"),
  "connect-two-spaces": b"CONNECT  512\n",
  "connect-31-chars": b"CONNECT " + b"0" * 20 + b"512\n" + HELLO + start(b"test.Missing"),
  "connect-32-chars": b"CONNECT " + b"0" * 21 + b"512\n",
  "connect-nul": b"CONNECT 512\0\n",
  "half-close-before-start": C + HELLO,
  "no-common-version": C + m(1, struct.pack("<II", 7, 9)),
  "hello-min-gt-max": C + m(1, struct.pack("<II", 1, 0)),
  "stdin-before-start": C + HELLO + m(0x30, b"x"),
  "unknown-type": C + HELLO + m(0x99, b""),
  "over-cap-header-only": C + HELLO + struct.pack("<II", 0x20, 228),
  "hello-short": C + m(1, struct.pack("<I", 1)),
  "start-dotdot-service": C + HELLO + start(b"../x"),
  "start-dot-service": C + HELLO + start(b".hidden"),
  "start-slash-arg": C + HELLO + start(b"test.Cat", b"a/b"),
  "start-trailing-byte": C + HELLO + m(0x20, s(b"work", b"test.Cat", b"", b"docq") + b"\0"),
  "start-keyword-source": C + HELLO + m(0x20, s(b"@default", b"test.Cat", b"", b"docq")),
  "call-request-to-agent": C + HELLO + m(0x10, s(b"docq", b"test.Cat", b"")),
  "missing-service": C + HELLO + start(b"test.Missing"),
  "not-executable": C + HELLO + start(b"test.NoExec") + m(0x33, struct.pack("<I", 0)),
  "missing-interpreter": C + HELLO + start(b"test.NoInterp") + m(0x33, struct.pack("<I", 0)),
  "directory-then-service": C + HELLO + start(b"test.Dir", b"x") + m(0x33, struct.pack("<I", 0)),
  "dangling-then-service": C + HELLO + start(b"test.Override", b"dangling") + m(0x33, struct.pack("<I", 0)),
  "socket-no-listener": C + HELLO + start(b"test.Stale"),
  "socket-backlog-full": C + HELLO + start(b"test.Full"),
  "cat": C + HELLO + start(b"test.Cat") + m(0x30, b"hi\n") + m(0x33, struct.pack("<I", 0)),
  "exit-7": C + HELLO + start(b"test.Exit", b"7") + m(0x33, struct.pack("<I", 0)),
  "empty-stdin": C + HELLO + start(b"test.Cat") + m(0x30, b""),
  "eof-stdout-from-broker": C + HELLO + start(b"test.Cat") + m(0x33, struct.pack("<I", 1)),
  "second-hello": C + HELLO + start(b"test.Cat") + HELLO,
}
def esc(b): return b.decode(errors="replace").replace("\\", "\\\\").replace("\n", "\\n")
def run(path, name, data):
    c = socket.socket(socket.AF_UNIX); c.connect(path); c.settimeout(15)
    c.sendall(data); got = b""
    if name == "half-close-before-start": c.shutdown(socket.SHUT_WR)
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            got += b
    except socket.timeout:
        return "no close within 15 s"
    except ConnectionResetError:
        got += b"<reset>"
    out = []
    if not got.startswith(b"OK "):
        # (a reset instead of a close: unread bytes were left behind)
        return "closed without OK" if got in (b"", b"<reset>") else "junk %r" % got[:40]
    line, _, got = got.partition(b"\n")
    if not line[3:].isdigit(): return "bad OK line %r" % line
    data = {0x31: b"", 0x32: b""}  # stdout and stderr are two pipes: no order between them
    while len(got) >= 8:
        t, n = struct.unpack_from("<II", got); p = got[8:8 + n]; got = got[8 + n:]
        if t in data: data[t] += p; continue
        name = {1: "HELLO", 0x33: "EOF", 0x40: "EXIT"}.get(t, hex(t))
        words = list(struct.unpack("<%dI" % (n // 4), p))
        # a HELLO says which versions the agent speaks: qube-agent speaks
        # 1..2, doc-agent.py only 1; every probe asks for version 1
        if t == 1 and len(words) == 2: out.append("HELLO[%d..]" % words[0]); continue
        out.append("%s%s" % (name, words))
    if got: out.append("junk")
    for t, name in ((0x31, "STDOUT"), (0x32, "STDERR")):
        if data[t]: out.insert(1, "%s'%s'" % (name, esc(data[t])))
    # EOF(1) and EOF(2) may come in either order
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and out[j].startswith("EOF"): j += 1
        out[i:j] = sorted(out[i:j]); i = j + 1
    return "OK " + " ".join(out) + " closed"
for name, data in PROBES.items():
    print("%-24s %s" % (name, run(sys.argv[1], name, data)), flush=True)
PY
"$PYTHON" "$T/probe.py" "$T/qubes/work/vsock" > "$T/probe-qube-agent.txt" 2>&1 || true
"$PYTHON" "$T/probe.py" "$T/qubes/docq/vsock" > "$T/probe-doc-agent.txt" 2>&1 || true
if diff -u "$T/probe-qube-agent.txt" "$T/probe-doc-agent.txt"; then
	ok "raw probes: doc-agent.py answers like qube-agent ($(wc -l < "$T/probe-doc-agent.txt") probes)"
	sed 's/^/    /' "$T/probe-doc-agent.txt"
else
	not_ok "raw probes: doc-agent.py and qube-agent differ (diff above)"
fi
probe() { grep "^$1 " "$T/probe-doc-agent.txt" | sed 's/^[^ ]* *//'; }
check "probe: CONNECT 513 is closed without OK" test "$(probe connect-513)" = "closed without OK"
check "probe: no common version: HELLO then close" test "$(probe no-common-version)" = "OK HELLO[1..] closed"
check "probe: over-cap header closed without waiting for the payload" \
	test "$(probe over-cap-header-only)" = "OK HELLO[1..] closed"
check "probe: '../x' service refused, nothing run" test "$(probe start-dotdot-service)" = "OK HELLO[1..] closed"
check "probe: missing service is EOF(1), EOF(2), EXIT 127" \
	test "$(probe missing-service)" = "OK HELLO[1..] EOF[1] EOF[2] EXIT[127] closed"
check "probe: plain call" test "$(probe cat)" = "OK HELLO[1..] STDOUT'hi\\n' EOF[1] EOF[2] EXIT[0] closed"
check "probe: socket service with a full backlog: 126" \
	test "$(probe socket-backlog-full)" = "OK HELLO[1..] EOF[1] EOF[2] EXIT[126] closed"
check "probe: empty STDIN ends the connection without EXIT" test "$(probe empty-stdin)" = "OK HELLO[1..] closed"
check "doc-agent still serves after the probes" test "$(call work docq test.Override+z </dev/null)" = "generic argc=1 1=z"

finish
