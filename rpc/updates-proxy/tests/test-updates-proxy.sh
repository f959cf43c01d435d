#!/usr/bin/env bash
# qube.UpdatesProxy end to end through real processes: a real broker with
# the shipped default policy (policy/90-default.policy), a real
# qube-host-agent running qube-updates-proxy (as nobody when the test runs
# as root, as qubed runs it), and a simulated template "tpl": a listener
# on 127.0.0.1 that does what the template's systemd socket unit does
# (Accept=yes: `qube-call @default qube.UpdatesProxy` with the connection
# as stdin and stdout).  The mirror is a local Python HTTP server on
# 127.0.0.1, which the test's allow-list names (IP literals are reached
# only when listed); a TCP echo server is the far end of CONNECT.
# Checks: an allowed GET arrives byte-exact (3 MB) with what the mirror
# saw (origin form, Connection: close, no credentials); HEAD; curl through
# the proxy; hosts not on the list, ports not on it, names that resolve to
# a listed address; CONNECT byte-exact both ways, to a port not allowed;
# oversized heads; smuggling attempts (duplicate Content-Length,
# Transfer-Encoding, bare CR and LF, NUL, obs-fold, Host mismatch); a
# second request on the connection is not served; an AppVM caller is
# refused by the policy (126); the refusal's line reaches the caller's
# stderr; seccomp kills a forbidden call in both processes; root and a
# broken configuration are refused.
#   Environment: QUBE_BROKER QUBE_AGENT QUBE_CALL QUBE_HOST_AGENT
#   QUBE_UPDATES_PROXY RPC_LIB DEFAULT_POLICY DEFAULT_PROXY_CONF
set -euo pipefail
: "${QUBE_HOST_AGENT:?}" "${QUBE_UPDATES_PROXY:?}" "${RPC_LIB:?}" "${DEFAULT_POLICY:?}" "${DEFAULT_PROXY_CONF:?}"
# shellcheck disable=SC1090,SC1091  # tests/rpc/lib.sh: the simulated qubes and the broker
. "$RPC_LIB"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=$HERE/uproxy-peer.py
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the mirror and the listener"; exit 77; }

AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
fi
chmod 0711 "$T"

# ---- the mirror and the tunnel's far end ----
mkdir -p "$T/www/debian" "$T/policy" "$T/rpc-host" "$T/adminvm" "$T/qubes/tpl" "$T/qubes/app"
head -c 3000000 /dev/urandom > "$T/www/debian/blob.deb"
printf 'Origin: Debian\n' > "$T/www/debian/Release"
python3 "$PEER" upstream "$T/www" "$T/up.port" "$T/up.log" 2>"$T/up.err" &
PIDS+=($!)
python3 "$PEER" echo "$T/echo.port" 2>"$T/echo.err" &
PIDS+=($!)
wait_for 20 "the mirror's port" test -s "$T/up.port"
wait_for 20 "the echo server's port" test -s "$T/echo.port"
UP=$(cat "$T/up.port") ECHO=$(cat "$T/echo.port")

# ---- the host: policy, system info, the service, the host agent, the broker ----
cp "$DEFAULT_POLICY" "$T/policy/90-default.policy"
cat > "$T/system-info.json" <<JSON
{"domains": {
 "dom0": {"type": "AdminVM", "tags": [], "icon": "black", "power_state": "Running", "template_for_dispvms": false, "default_dispvm": null, "uuid": "00000000-0000-0000-0000-000000000000"},
 "tpl": {"type": "TemplateVM", "tags": [], "icon": "black", "power_state": "Running", "template_for_dispvms": false, "default_dispvm": null, "uuid": "$(qube_uuid tpl)"},
 "app": {"type": "AppVM", "tags": [], "icon": "red", "power_state": "Running", "template_for_dispvms": false, "default_dispvm": null, "uuid": "$(qube_uuid app)"}
}}
JSON
cat > "$T/proxy.conf" <<CONF
# the test's allow-list: the local mirror and the echo server
allow 127.0.0.1 http=$UP https=$ECHO
allow deb.debian.org
CONF
# production links /etc/qube/rpc-host/qube.UpdatesProxy to the program;
# here a wrapper names the test's allow-list
cat > "$T/rpc-host/qube.UpdatesProxy" <<SH
#!/bin/sh
exec "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf"
SH
chmod 0755 "$T/rpc-host/qube.UpdatesProxy" "$T/rpc-host"
chmod 0644 "$T/proxy.conf"
ha_args=(--transport "unix:$T/adminvm" --rpc-dir "$T/rpc-host" --name dom0)
[ "$(id -u)" = 0 ] && ha_args+=(--service-user nobody)
"$QUBE_HOST_AGENT" "${ha_args[@]}" >>"$T/host-agent.log" 2>&1 &
PIDS+=($!)
wait_for 20 "host agent socket" test -S "$T/adminvm/vsock"
start_broker --adminvm-socket "$T/adminvm/vsock"
wait_for 20 "the broker's socket for tpl" test -S "$T/qubes/tpl/vsock_513"

# ---- the template's socket unit, and an AppVM's (which the policy refuses) ----
python3 "$PEER" listen "$T/tpl.port" "$T/call-tpl.log" -- \
	"$QUBE_CALL" --transport "unix:$T/qubes/tpl" @default qube.UpdatesProxy 2>"$T/listen-tpl.err" &
PIDS+=($!)
python3 "$PEER" listen "$T/app.port" "$T/call-app.log" -- \
	"$QUBE_CALL" --transport "unix:$T/qubes/app" @default qube.UpdatesProxy 2>"$T/listen-app.err" &
PIDS+=($!)
wait_for 20 "tpl's listener" test -s "$T/tpl.port"
wait_for 20 "app's listener" test -s "$T/app.port"
LP=$(cat "$T/tpl.port")
N_TPL=0 # connections to tpl's listener

# req NAME HEAD: sends HEAD (printf format) through tpl's proxy port; the
# response in $T/NAME.resp, its status in STATUS, its body in $T/NAME.body
req() {
	local name=$1; shift
	# shellcheck disable=SC2059  # the head is a format: \r\n
	printf "$@" > "$T/$name.req"
	N_TPL=$((N_TPL + 1))
	python3 "$PEER" send "$LP" "$T/$name.req" --half-close > "$T/$name.resp" || true
	STATUS=$(head -c 12 "$T/$name.resp" | sed -n 's/^HTTP\/1\.[01] \([0-9][0-9][0-9]\)$/\1/p')
	python3 - "$T/$name.resp" "$T/$name.body" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\r\n\r\n")
open(sys.argv[2], "wb").write(d[i + 4:] if i >= 0 else b"")
PY
}
refused() { # refused NAME STATUS TEXT: status, the reason in the body, and in the caller's log
	[ "$STATUS" = "$2" ] && grep -qF -- "$3" "$T/$1.body" && grep -qF -- "$3" "$T/call-tpl.log"
}
U="127.0.0.1:$UP"

# ---- allowed ----
: > "$T/up.log"
req get "GET http://$U/debian/blob.deb HTTP/1.1\r\nHost: $U\r\nUser-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\nProxy-Authorization: Basic c2VjcmV0\r\nCookie: c=1\r\nConnection: keep-alive\r\n\r\n"
check "GET of an allowed host: 200 ($STATUS)" test "$STATUS" = 200
check "... 3 MB body byte-exact" cmp -s "$T/get.body" "$T/www/debian/blob.deb"
check "... the response says Connection: close" grep -qa $'^Connection: close\r$' "$T/get.resp"
check "... and no keep-alive" bash -c "! grep -qai 'keep-alive' '$T/get.resp'"
check "... the mirror got the origin form, Host, User-Agent and Connection: close, no credentials or cookie" \
	python3 - "$T/up.log" "$U" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1, recs
r = recs[0]
f = {k.lower(): v for k, v in r["fields"]}
assert r["line"] == "GET /debian/blob.deb HTTP/1.1", r
assert f == {"host": sys.argv[2], "user-agent": "Debian APT-HTTP/1.3 (2.6.1)", "connection": "close"}, f
PY
check "... the broker decided it: tpl -> @default, redirected to dom0 by the default policy" \
	grep -q 'source=tpl target=dom0 requested=@default service=qube.UpdatesProxy argument=- decision=allow' "$T/broker.log"

req head "HEAD http://$U/debian/Release HTTP/1.1\r\nHost: $U\r\n\r\n"
check "HEAD: 200 with Content-Length 15 and no body ($STATUS)" \
	bash -c "[ '$STATUS' = 200 ] && grep -qa \$'^Content-Length: 15\r\$' '$T/head.resp' && [ ! -s '$T/head.body' ]"

: > "$T/up.log"
req pipelined "GET http://$U/debian/Release HTTP/1.1\r\nHost: $U\r\n\r\nGET http://$U/debian/blob.deb HTTP/1.1\r\nHost: $U\r\n\r\n"
check "two requests on one connection: the first answered ($STATUS), one response, one request at the mirror" \
	bash -c "[ '$STATUS' = 200 ] && [ \"\$(cat '$T/pipelined.body')\" = 'Origin: Debian' ] && [ \$(grep -ac '^HTTP/1' '$T/pipelined.resp') = 1 ] && [ \$(wc -l < '$T/up.log') = 1 ]"

if command -v curl >/dev/null; then
	rc=0
	N_TPL=$((N_TPL + 1))
	curl -sS --max-time 120 -x "http://127.0.0.1:$LP" -o "$T/curl.out" "http://$U/debian/blob.deb" 2>"$T/curl.err" || rc=$?
	check "curl -x through the proxy: exit $rc, byte-exact" \
		bash -c "[ $rc = 0 ] && cmp -s '$T/curl.out' '$T/www/debian/blob.deb'"
fi

# ---- CONNECT ----
head -c 1000000 /dev/urandom > "$T/tunnel.in"
printf 'CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$ECHO" "$ECHO" > "$T/connect.req"
N_TPL=$((N_TPL + 1))
python3 "$PEER" send "$LP" "$T/connect.req" --then "$T/tunnel.in" > "$T/connect.resp" || true
check "CONNECT to an allowed host and https= port: 200 Connection established, 1 MB through the tunnel and back byte-exact" \
	python3 - "$T/connect.resp" "$T/tunnel.in" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
head = b"HTTP/1.1 200 Connection established\r\n\r\n"
assert d.startswith(head), d[:80]
assert d[len(head):] == open(sys.argv[2], "rb").read(), (len(d), len(head))
PY

req connect_port "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n"
check "CONNECT to a port not allowed: 403 ($STATUS)" refused connect_port 403 "CONNECT to 127.0.0.1 port 22 is not allowed"
req connect_http "CONNECT 127.0.0.1:$UP HTTP/1.1\r\n\r\n"
check "CONNECT to the http= port (not https=): 403 ($STATUS)" refused connect_http 403 "port $UP is not allowed"
req get_echo "GET http://127.0.0.1:$ECHO/ HTTP/1.1\r\n\r\n"
check "GET to the https= port: 403 ($STATUS)" refused get_echo 403 "port $ECHO is not allowed"

# ---- hosts not on the list ----
req evil "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n"
check "a host not on the list: 403 ($STATUS), the reason in the body and on the caller's stderr" \
	refused evil 403 "evil.example is not on the allow-list"
req localhost "GET http://localhost:$UP/debian/Release HTTP/1.1\r\n\r\n"
check "a name that resolves to a listed address (localhost): 403 ($STATUS)" refused localhost 403 "localhost is not on the allow-list"
req otherip "GET http://127.0.0.2:$UP/debian/Release HTTP/1.1\r\n\r\n"
check "an address not listed: 403 ($STATUS)" refused otherip 403 "127.0.0.2 is not on the allow-list"
req v6 "GET http://[::1]:$UP/debian/Release HTTP/1.1\r\n\r\n"
check "an IPv6 literal not listed: 403 ($STATUS)" refused v6 403 "::1 is not on the allow-list"
req decimal "GET http://2130706433:$UP/debian/Release HTTP/1.1\r\n\r\n"
check "127.0.0.1 written as a number: 400 ($STATUS)" refused decimal 400 "dotted-quad"
req userinfo "GET http://deb.debian.org@127.0.0.1:$UP/debian/Release HTTP/1.1\r\n\r\n"
check "userinfo: 400 ($STATUS)" refused userinfo 400 "userinfo"
req https "GET https://deb.debian.org/ HTTP/1.1\r\n\r\n"
check "an https:// URI in a GET: 400 ($STATUS)" refused https 400 "CONNECT"
req post "POST http://$U/debian/Release HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
check "POST: 405 ($STATUS)" refused post 405 "method POST"
req origin "GET /debian/Release HTTP/1.1\r\nHost: $U\r\n\r\n"
check "origin form (not a proxy request): 400 ($STATUS)" refused origin 400 "absolute http://"

# ---- sizes ----
big=$(head -c 20000 /dev/zero | tr '\0' a)
req big "GET http://$U/debian/Release HTTP/1.1\r\nX-Big: $big\r\n\r\n"
check "a 20 KB header: 431 ($STATUS)" refused big 431 "over 16384 bytes"
many=$(for i in $(seq 150); do printf 'X-%d: y\\r\\n' "$i"; done)
req many "GET http://$U/debian/Release HTTP/1.1\r\n${many}\r\n"
check "150 header fields: 431 ($STATUS)" refused many 431 "more than 100 header fields"
req cut "GET http://$U/debian/Release HTTP/1.1\r\nHost: $U\r\n"
check "a head cut short by the client's half-close: 400 ($STATUS)" refused cut 400 "ended before the request head"

# ---- smuggling ----
: > "$T/up.log"
req dup_cl "GET http://$U/debian/Release HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
check "duplicate Content-Length: 400 ($STATUS)" refused dup_cl 400 "more than one Content-Length"
req cl "GET http://$U/debian/Release HTTP/1.1\r\nContent-Length: 44\r\n\r\nGET http://$U/debian/blob.deb HTTP/1.1\r\n\r\n"
check "Content-Length on a GET: 400 ($STATUS)" refused cl 400 "a request body (Content-Length) on GET"
req te "GET http://$U/debian/Release HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
check "Transfer-Encoding on a GET: 400 ($STATUS)" refused te 400 "a request body (Transfer-Encoding) on GET"
req te_space "GET http://$U/debian/Release HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"
check "whitespace before ':': 400 ($STATUS)" refused te_space 400 "header name"
req cr "GET http://$U/debian/Release HTTP/1.1\r\nX-A: a\rHost: evil.example\r\n\r\n"
check "a CR inside a field: 400 ($STATUS)" refused cr 400 "CR without LF"
req lf "GET http://$U/debian/Release HTTP/1.1\r\nX-A: a\nHost: evil.example\r\n\r\n"
check "an LF inside a field: 400 ($STATUS)" refused lf 400 "LF without CR"
req nul "GET http://$U/debian/Release HTTP/1.1\r\nX-A: a\0b\r\n\r\n"
check "a NUL in a field: 400 ($STATUS)" refused nul 400 "NUL"
req fold "GET http://$U/debian/Release HTTP/1.1\r\nAccept: a\r\n b\r\n\r\n"
check "obs-fold: 400 ($STATUS)" refused fold 400 "obs-fold"
req hosts "GET http://$U/debian/Release HTTP/1.1\r\nHost: $U\r\nHost: evil.example\r\n\r\n"
check "two Host fields: 400 ($STATUS)" refused hosts 400 "more than one Host"
req hostmis "GET http://$U/debian/Release HTTP/1.1\r\nHost: evil.example\r\n\r\n"
check "a Host field naming another host: 400 ($STATUS)" refused hostmis 400 "Host field does not name"
check "none of the smuggling attempts reached the mirror" test ! -s "$T/up.log"

wait_for 20 "every qube-call in tpl to end" bash -c "[ \$(grep -c '^listener: exit' '$T/call-tpl.log') -ge $N_TPL ]"
check "each of the $N_TPL connections' qube-call in tpl exited 0 (a systemd instance unit would not fail)" \
	bash -c "! grep '^listener: exit' '$T/call-tpl.log' | grep -qv 'exit 0\$'"

# ---- the policy: only templates ----
python3 "$PEER" send "$(cat "$T/app.port")" "$T/get.req" --half-close > "$T/app.resp" 2>/dev/null || true
wait_for 20 "app's qube-call to end" grep -q 'listener: exit' "$T/call-app.log"
check "an AppVM's call is refused by the policy: qube-call exits 126, nothing is answered" \
	bash -c "[ ! -s '$T/app.resp' ] && grep -q 'qube.UpdatesProxy+ to @default: refused' '$T/call-app.log' && grep -qx 'listener: exit 126' '$T/call-app.log'"
check "... the broker logged the denial" \
	grep -q 'source=app target=- requested=@default service=qube.UpdatesProxy argument=- decision=deny' "$T/broker.log"
rc=0; "$QUBE_CALL" --transport "unix:$T/qubes/app" @adminvm qube.UpdatesProxy < "$T/get.req" > /dev/null 2>&1 || rc=$?
check "... also when it names @adminvm (126, got $rc)" test "$rc" = 126
rc=0; "$QUBE_CALL" --transport "unix:$T/qubes/tpl" @adminvm qube.UpdatesProxy < "$T/head.req" > "$T/direct.resp" 2>/dev/null || rc=$?
check "the template naming @adminvm directly: allowed, 200 (exit $rc)" \
	bash -c "[ $rc = 0 ] && head -c 15 '$T/direct.resp' | grep -q '^HTTP/1.0 200\|^HTTP/1.1 200'"

# ---- the program itself: seccomp, root, configuration ----
printf 'GET http://%s/debian/Release HTTP/1.1\r\n\r\n' "$U" > "$T/direct.req"
chmod 0644 "$T/direct.req"
rc=0; "${AS[@]}" "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf" --selftest-seccomp parent < "$T/direct.req" > /dev/null 2>"$T/st-parent.err" || rc=$?
check "seccomp: a forbidden call after the parent's filter kills it with SIGSYS (exit $rc, want 159)" test "$rc" = 159
rc=0; "${AS[@]}" "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf" --selftest-seccomp child < "$T/direct.req" > "$T/st-child.out" 2>"$T/st-child.err" || rc=$?
check "seccomp: a forbidden call in the parser child kills it with SIGSYS; the parent answers 500 (exit $rc)" \
	bash -c "[ $rc = 1 ] && grep -q 'killed by signal 31' '$T/st-child.err' && head -c 12 '$T/st-child.out' | grep -q '^HTTP/1.1 500'"
rc=0; "${AS[@]}" "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf" < "$T/direct.req" > "$T/plain.out" 2>"$T/plain.err" || rc=$?
check "run directly (no agent): 200 and exit 0 (exit $rc)" bash -c "[ $rc = 0 ] && head -c 15 '$T/plain.out' | grep -q ' 200'"
if [ "$(id -u)" = 0 ]; then
	rc=0; "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf" < "$T/direct.req" > "$T/root.out" 2>"$T/root.err" || rc=$?
	check "as root it refuses to work: 500, exit 1 ($rc)" \
		bash -c "[ $rc = 1 ] && grep -q 'does not run as root' '$T/root.err' && head -c 12 '$T/root.out' | grep -q ' 500'"
fi
printf 'allow 127.0.0.1 http=%s\nallow\n' "$UP" > "$T/broken.conf"
chmod 0644 "$T/broken.conf"
rc=0; "${AS[@]}" "$QUBE_UPDATES_PROXY" --config "$T/broken.conf" < "$T/direct.req" > "$T/broken.out" 2>"$T/broken.err" || rc=$?
check "a broken configuration: 500, exit 1, the file and line on stderr ($rc)" \
	bash -c "[ $rc = 1 ] && grep -q 'broken.conf: line 2: allow: no host' '$T/broken.err' && head -c 12 '$T/broken.out' | grep -q ' 500'"
rc=0; "${AS[@]}" "$QUBE_UPDATES_PROXY" --config "$DEFAULT_PROXY_CONF" < "$T/direct.req" > "$T/default.out" 2>"$T/default.err" || rc=$?
check "the shipped allow-list parses and does not name 127.0.0.1 (403, exit $rc)" \
	bash -c "[ $rc = 0 ] && head -c 12 '$T/default.out' | grep -q ' 403' && grep -q '127.0.0.1 is not on the allow-list' '$T/default.err'"

finish
