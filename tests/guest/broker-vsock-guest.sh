#!/bin/sh
# The guest half of tests/guest/broker-vsock-test.sh; runs inside the TCG
# guest (qube.run) as /usr/bin/broker-vsock-guest.
#
# This guest plays the *host* of production: its kernel has vhost_vsock
# (the host-to-guest transport) and vsock_loopback, and no guest-to-host
# transport.  The qubes are vhost-vsock-peer processes, each registering
# its CID with /dev/vhost-vsock as QEMU would for a VM, with a real
# qube-agent (hybrid unix transport) behind it; qube-call reaches the
# broker through its qube's peer.  The unmodified qube-broker runs with
# --vsock-map: real AF_VSOCK listen/accept/getpeername on port 513 and
# real non-blocking AF_VSOCK connects to CID:512.
#
#   CID 3 work, CID 4 personal     in the map, peers and agents running
#   CID 5 stranger                 a running peer, NOT in the map
#   CID 6 lazy                     in the map, not running, autostart=yes
#   CID 7 offline                  in the map, not running, autostart=no
#   CID 8 noagent                  in the map, peer running, no agent
#   CID 9 (impostor)               a peer whose packets claim CID 3
#   CID 1                          loopback: what a local process gets
#
# Prints "ok - ..." / "not ok - ..." per check, then
# "broker-vsock-guest: done pass=N fail=M" and the logs.
set -u
R=/run/bv
Q=$R/q
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# wait_for TENTHS COMMAND...: polls every 0.1 s
wait_for() { n=$1; shift; while ! "$@"; do n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 0.1; done; }
log_has() { grep -q -- "$1" $R/broker.log; }
# call QUBE TARGET SERVICE [STDIN]: qube-call from QUBE through its peer;
# sets out and rc
call() {
  out=$(printf '%s' "${4:-}" | qube-call --transport "unix:$Q/$1" "$2" "$3" 2>$R/call.err) && rc=0 || rc=$?
}

mkdir -p $Q $R/policy $R/conf $R/rpc $R/start
for m in vhost_vsock vsock_loopback; do
  check "module $m loaded" test -d /sys/module/$m
done
check "/dev/vhost-vsock exists" test -c /dev/vhost-vsock

# ---- configuration ----------------------------------------------------------------
cat > $R/conf/vsock.map <<'EOF'
# CID NAME (what qubed would write from its CID allocation)
3 work
4 personal
6 lazy
7 offline
8 noagent
EOF
{
  echo '{"domains": {'
  echo '  "dom0": {"type": "AdminVM", "tags": [], "icon": "black", "power_state": "Running", "template_for_dispvms": false, "default_dispvm": null}'
  for n in work personal stranger lazy offline noagent; do
    echo "  ,\"$n\": {\"type\": \"AppVM\", \"tags\": [], \"icon\": \"green\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null}"
  done
  echo '}}'
} > $R/conf/system-info.json
cat > $R/policy/10-vsock.policy <<'EOF'
test.Echo    *  work      personal  allow
test.Echo    *  personal  work      allow
test.Exit    *  work      personal  allow
test.Cat     *  work      personal  allow
test.Denied  *  work      personal  deny
test.Echo    *  work      lazy      allow autostart=yes
test.Echo    *  work      offline   allow autostart=no
test.Echo    *  work      noagent   allow
# allowed by policy: only the transport can refuse these callers
test.Echo    *  stranger  personal  allow
test.Echo    *  @anyvm    personal  allow
EOF
cat > $R/rpc/test.Echo <<'EOF'
#!/bin/sh
echo "in=$SIMQUBE from=$QUBE_REMOTE arg=$QUBE_SERVICE_ARGUMENT requested=$QUBE_REQUESTED_TARGET stdin=$(cat)"
EOF
cat > $R/rpc/test.Exit <<'EOF'
#!/bin/sh
echo "exiting 7 in $SIMQUBE"
exit 7
EOF
cat > $R/rpc/test.Cat <<'EOF'
#!/bin/sh
exec cat
EOF
cat > $R/rpc/test.Denied <<'EOF'
#!/bin/sh
echo "test.Denied ran"
EOF
# rpc-starter's "agent" in vsock mode: first the qube's VM (its peer, with
# the CID from the map), then the agent
cat > $R/start-qube <<EOF
#!/bin/sh
cid=\$(awk -v n="\$SIMQUBE" '\$2 == n { print \$1 }' $R/conf/vsock.map)
[ -n "\$cid" ] || exit 1
vhost-vsock-peer --cid "\$cid" --dir "$Q/\$SIMQUBE" --listen 513 > "$R/peer-\$SIMQUBE.log" 2>&1 &
i=0
until grep -q ready "$R/peer-\$SIMQUBE.log"; do
  i=\$((i + 1)); [ \$i -lt 100 ] || exit 1; sleep 0.05
done
exec qube-agent "\$@"
EOF
chmod 0755 $R/rpc/* $R/start-qube

# ---- the qubes: peers (the VMs) and agents --------------------------------------------
start_peer() { # NAME CID
  mkdir -p "$Q/$1"
  vhost-vsock-peer --cid "$2" --dir "$Q/$1" --listen 513 > "$R/peer-$1.log" 2>&1 &
  wait_for 50 grep -q ready "$R/peer-$1.log" || echo "peer $1 (cid $2) did not start: $(cat "$R/peer-$1.log")"
}
start_agent() { # NAME
  SIMQUBE=$1 qube-agent --transport "unix:$Q/$1" --rpc-dir $R/rpc --name "$1" > "$R/agent-$1.log" 2>&1 &
  wait_for 50 test -S "$Q/$1/vsock" || echo "agent $1 did not start"
}
start_peer work 3; start_agent work
start_peer personal 4; start_agent personal
start_peer stranger 5
start_peer noagent 8
check "a second peer cannot take a CID in use (the kernel keeps CIDs unique)" \
  sh -c "! vhost-vsock-peer --cid 3 --dir $R >$R/dup.log 2>&1 && grep -q 'in use' $R/dup.log"

rpc-starter $R/start/sock $Q $R/rpc $R/start-qube > $R/starter.log 2>&1 &
wait_for 50 grep -q listening $R/starter.log || echo "rpc-starter did not start"

: > $R/broker.log
qube-broker --vsock-map $R/conf/vsock.map --policy-dir $R/policy \
  --system-info $R/conf/system-info.json --start-socket $R/start/sock \
  --user user --log $R/broker.log > $R/broker.out 2>&1 &
broker=$!
wait_for 100 log_has ' ready (pid ' || echo "broker not ready"
sandbox=$(sed -n 's/.* ready (pid [0-9]*, sandbox pid \([0-9]*\)).*/\1/p' $R/broker.log)
check "broker ready in vsock mode" test -n "$sandbox"

# ---- calls ----------------------------------------------------------------------------
call work personal test.Echo+a1 hello
check "work -> personal allowed: output of personal's service, source work from CID 3 ($out)" \
  test "$rc:$out" = "0:in=personal from=work arg=a1 requested=personal stdin=hello"
check "broker log: source=work target=personal, allowed, started" \
  log_has 'source=work target=personal requested=personal service=test.Echo argument=a1 decision=allow result=started rule=/run/bv/policy/10-vsock.policy:1 '
call personal work test.Echo
check "personal -> work allowed: the other identity, the other direction ($out)" \
  test "$rc:$out" = "0:in=work from=personal arg= requested=work stdin="
check "broker log: source=personal target=work" \
  log_has 'source=personal target=work requested=work service=test.Echo argument=- decision=allow result=started'
call work personal test.Exit
check "service exit code 7 and output relayed ($rc: $out)" test "$rc:$out" = "7:exiting 7 in personal"
# "ended" comes when the sandbox reports the closed call: maybe after qube-call exited
check "broker log: the call ended with exit=7" wait_for 50 grep -q 'ended exit=7' $R/broker.log
call work personal test.Denied
check "denied by policy: 126, the service did not run ($rc: $out)" test "$rc:$out" = "126:"
check "broker log: source=work service=test.Denied decision=deny result=refused" \
  log_has 'source=work target=- requested=personal service=test.Denied argument=- decision=deny result=refused rule=/run/bv/policy/10-vsock.policy:5 '
call work personal test.NoRule
check "no rule: 126 ($rc)" test "$rc" = 126

# 4 MiB each way through personal's cat: credit and flow control of the
# broker's vsock sockets
dd if=/dev/urandom of=$R/big bs=1M count=4 2>/dev/null
want=$(sha256sum < $R/big | cut -d' ' -f1)
got=$(qube-call --transport "unix:$Q/work" personal test.Cat < $R/big 2>$R/call.err | sha256sum | cut -d' ' -f1)
check "4 MiB to personal's cat and back over AF_VSOCK: checksums match" test "$got" = "$want"

# concurrent calls from both qubes
i=0
while [ $i -lt 8 ]; do
  echo "c$i" | qube-call --transport "unix:$Q/work" personal test.Echo+p$i > $R/par-w$i.out 2>&1 &
  echo "d$i" | qube-call --transport "unix:$Q/personal" work test.Echo+q$i > $R/par-p$i.out 2>&1 &
  i=$((i + 1))
done
wait_for 600 sh -c "[ \$(cat $R/par-*.out 2>/dev/null | grep -c '^in=') -ge 16 ]"
good=0 i=0
while [ $i -lt 8 ]; do
  grep -qx "in=personal from=work arg=p$i requested=personal stdin=c$i" $R/par-w$i.out && good=$((good + 1))
  grep -qx "in=work from=personal arg=q$i requested=work stdin=d$i" $R/par-p$i.out && good=$((good + 1))
  i=$((i + 1))
done
check "16 concurrent calls (8 from each CID): every output right ($good/16)" test "$good" = 16

# ---- callers the map does not name ------------------------------------------------------
call stranger personal test.Echo
check "CID 5 (running, not in the map): connection closed, the call fails ($rc)" test "$rc" = 125
check "broker log: connection from unknown vsock CID 5 closed" log_has 'connection from unknown vsock CID 5 closed'
check "no call from stranger reached the policy" sh -c "! grep -q 'source=stranger' $R/broker.log"
out=$(echo x | qube-call --transport vsock personal test.Echo 2>$R/call.err) && rc=0 || rc=$?
check "a local process (AF_VSOCK to CID 2 = loopback here) is refused too ($rc)" test "$rc" = 125
check "broker log: it came from CID 1 (loopback) and was closed" log_has 'connection from unknown vsock CID 1 closed'
out=$(su user -c "echo x | qube-call --transport vsock personal test.Echo" 2>$R/call.err) && rc=0 || rc=$?
check "the same from an unprivileged process (uid 1000): refused ($rc)" test "$rc" = 125
check "broker log: both loopback connections reached it, both from CID 1" \
  test "$(grep -c 'connection from unknown vsock CID 1 closed' $R/broker.log)" = 2

# a VM whose packets claim work's CID: vhost_vsock drops every packet whose
# source is not the device's CID, so nothing reaches the broker
mkdir -p $Q/impostor
vhost-vsock-peer --cid 9 --src-cid 3 --timeout 2000 --dir $Q/impostor --listen 513 > $R/peer-impostor.log 2>&1 &
wait_for 50 grep -q ready $R/peer-impostor.log
# every started call has logged its end: nothing else will be written
all_ended() {
  # shellcheck disable=SC2013 # call ids: one number per line
  for id in $(sed -n 's/.* call id=\([0-9]*\) .*result=started.*/\1/p' $R/broker.log); do
    grep -q "call id=$id ended" $R/broker.log || return 1
  done
}
wait_for 100 all_ended
before=$(wc -l < $R/broker.log)
call impostor personal test.Echo
check "CID 9 sending as CID 3: no answer from the kernel, the call fails ($rc)" test "$rc" = 125
check "broker log: nothing at all from the impostor" test "$(wc -l < $R/broker.log)" = "$before"

# ---- the map is reloaded when it changes (qubed rewrites it as VMs come and go) ------------
map=$R/conf/vsock.map
cp $map $R/vsock.map.orig
{ cat $R/vsock.map.orig; echo '5 stranger'; } > $map.new && mv $map.new $map
check "map changed (rename into place): reloaded, 6 qubes" \
  wait_for 50 log_has "vsock map $map loaded: 6 qubes"
call stranger personal test.Echo
check "CID 5 now named stranger: its call runs, source stranger ($rc: $out)" \
  test "$rc:$out" = "0:in=personal from=stranger arg= requested=personal stdin="
# a broken map fails closed: keeping the old one could give a reassigned
# CID its previous owner's identity
{ cat $R/vsock.map.orig; echo '3 stranger'; } > $map.new && mv $map.new $map
check "a CID given twice: logged with file and line" wait_for 50 log_has "$map:7: CID 3 given twice"
check "... and the map is invalid: every connection refused" \
  log_has "vsock map $map INVALID: refusing every connection until it is fixed"
call work personal test.Echo
check "with the invalid map even work (CID 3) is refused ($rc)" test "$rc" = 125
check "broker log: connection from unknown vsock CID 3 closed" log_has 'connection from unknown vsock CID 3 closed'
{ cat $R/vsock.map.orig; echo '5 stranger'; echo '9 work'; } > $map.new && mv $map.new $map
check "a qube given twice: logged" wait_for 50 log_has "$map:8: qube work given twice"
cp $R/vsock.map.orig $map.new && mv $map.new $map
fixed() { test "$(grep -c "vsock map $map loaded: 5 qubes" $R/broker.log)" -ge 2; }
check "map fixed: loaded again" wait_for 50 fixed
call work personal test.Echo
check "after the fix work's call runs again ($rc: $out)" \
  test "$rc:$out" = "0:in=personal from=work arg= requested=personal stdin="

# ---- targets that are not there -----------------------------------------------------------
call work offline test.Echo
check "target in the map but not running, autostart=no: 125 ($rc)" test "$rc" = 125
check "broker log: offline is not running" log_has 'target offline is not running'
call work noagent test.Echo
check "target VM up but no agent on port 512: 125 ($rc)" test "$rc" = 125
check "broker log (sandbox): noagent not reachable, from the async connect's SO_ERROR" \
  log_has 'target noagent is not reachable: Connection reset by peer'
call work lazy test.Echo
check "autostart over vsock: the start interface started lazy (CID 6) and the call ran there ($rc: $out)" \
  test "$rc:$out" = "0:in=lazy from=work arg= requested=lazy stdin="
check "start interface asked: START lazy" grep -q 'request: START lazy' $R/starter.log

# ---- the sandbox ------------------------------------------------------------------------
check "sandbox alive after every call (no SIGSYS in its seccomp list)" kill -0 "$sandbox"
check "sandbox in seccomp filter mode" grep -q '^Seccomp:[[:space:]]*2' "/proc/$sandbox/status"
check "sandbox runs as user (uid 1000)" grep -q '^Uid:[[:space:]]*1000[[:space:]]' "/proc/$sandbox/status"
kill -TERM $broker
wait $broker; brc=$?
check "broker exits 0 on SIGTERM ($brc)" test "$brc" = 0
check "no sanitizer report on the broker's stderr" sh -c "! grep -Eq 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' $R/broker.out"

# the peers print their counters at exit
# shellcheck disable=SC2046 # one word per pid
kill -TERM $(pidof vhost-vsock-peer) 2>/dev/null
sleep 0.3
echo "broker-vsock-guest: done pass=$pass fail=$fail"
for f in "$R"/broker.log "$R"/broker.out "$R"/starter.log "$R"/peer-*.log "$R"/agent-*.log; do
  sed "s|^|${f##*/}: |" "$f"
done
