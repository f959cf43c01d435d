#!/usr/bin/env bash
# Calls between real qubes, `qubectl run`, disposables and preloaded
# disposables, on a real libvirtd and real QEMU (TCG here) with the
# minimal image:
#   - qubectl run (source dom0, through the broker's host-call socket and
#     the policy): argv verbatim, exit codes, stderr, 64 MiB of stdin byte
#     for byte, --shell, --service, --no-autostart, a denial (126), a
#     missing command (127)
#   - guest to guest (qube-call in WORK): allowed, denied (126),
#     redirected by target=, autostart of a halted target, @dispvm (the
#     disposable leaves no domain, no volume, no database entry)
#   - qubectl run --dispvm: nothing left afterwards, also after SIGINT
#     mid-run and after qubed is killed mid-run and started again
#   - preload_dispvm=2: three requests in a row (two from the pool, the
#     third served too), no preload handed to two callers, the pool
#     refills, a preload killed from outside is replaced, preloads are
#     adopted after a qubed restart, hidden from `qubectl ls` unless --all
#   run-test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
qd_setup "$1"
img=$(qd_image)
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz

TPL=$(uniq_name tpl) WORK=$(uniq_name work) UNTR=$(uniq_name untr) LAZY=$(uniq_name lazy)
DVM=$(uniq_name dvm) QD_TESTER=$(uniq_name tester)
cat > "$T/policy.d/30-test.policy" <<POL
# the host (dom0) running commands
qube.Exec     *  dom0      $UNTR     deny
qube.Exec     *  dom0      @anyvm    allow
qube.Exec     *  dom0      @dispvm   allow
qube.VMShell  *  dom0      @anyvm    allow
test.Echo     *  dom0      @anyvm    allow
# guest to guest
test.Info     *  $UNTR     $WORK     deny
test.Info     *  $WORK     $UNTR     allow
test.Info     *  $WORK     @default  allow target=$UNTR
test.Info     *  $WORK     $LAZY     allow autostart=yes
test.Info     *  $WORK     @dispvm   allow target=@dispvm:$DVM
test.CallInfo    *  $QD_TESTER  @anyvm  allow
test.CallDefault *  $QD_TESTER  @anyvm  allow
test.CallDispvm  *  $QD_TESTER  @anyvm  allow
# the host's own services (qube-host-agent)
test.HostInfo    *  $QD_TESTER  @adminvm  allow
POL
# calls to @adminvm: the build's qube-host-agent with a service of the test's
mkdir -p "$T/rpc-host"
cat > "$T/rpc-host/test.HostInfo" <<'SH'
#!/bin/sh
echo "host service: remote=$QUBE_REMOTE user=$(id -un) requested=$QUBE_REQUESTED_TARGET"
SH
chmod 0755 "$T/rpc-host/test.HostInfo"
cat >> "$T/qubed.conf" <<CONF
host_agent = $QD_BUILD/rpc/broker/qube-host-agent
host_rpc_dir = $T/rpc-host
CONF
qd_start

# --- qubes: a template from the minimal image, AppVMs, a disposable template
truncate -s 32M "$T/root.img"
mkfs.ext4 -q -F "$T/root.img"
check "create TemplateVM" qd_call admin.vm.Create.TemplateVM dom0 --payload "name=$TPL label=black"
check "import kernel" qd_call qube.template.Import+kernel "$TPL" --payload-file "$kernel"
check "import initrd" qd_call qube.template.Import+initrd "$TPL" --payload-file "$img/initramfs.cpio.gz"
check "import root" qd_call qube.template.Import+root "$TPL" --payload-file "$T/root.img"
for q in "$WORK:blue" "$UNTR:red" "$LAZY:green" "$DVM:red" "$QD_TESTER:gray"; do
  check "create AppVM ${q%%:*}" qctl create --template "$TPL" --label "${q#*:}" "${q%%:*}"
done
check "$DVM is a disposable template" qctl prefs "$DVM" template_for_dispvms True
check "global default_dispvm = $DVM" qctl global-prefs default_dispvm "$DVM"

# the disposables qubed knows about, and their leftovers
disp_names() { qd_call admin.vm.List | sed -n 's/^\(disp[0-9]*\) class=DispVM .*/\1/p'; }
disp_domains() { virsh -q -c qemu:///system list --all --name | grep -E '^qube-disp[0-9]+$' || true; }
disp_dirs() { ls -d "$T"/state/qubes/disp* 2>/dev/null || true; }
no_disposables() { [ -z "$(disp_names)" ] && [ -z "$(disp_domains)" ] && [ -z "$(disp_dirs)" ]; }
wait_no_disposables() { for _ in $(seq 150); do no_disposables && return 0; sleep 0.2; done; return 1; }

# --- qubectl run: autostart, argv verbatim, exit codes, stdio
t0=$(date +%s.%N)
out=$(qctl run "$WORK" -- echo invisible 2>&1) && rc=0 || rc=$?
t1=$(date +%s.%N)
check "run without --pass-io: starts the halted qube, exit 0, nothing printed" test "$rc:$out" = "0:"
say "  qubectl run on a halted qube (start included): $(echo "$t1 - $t0" | bc) s"
check "$WORK is Running after the autostart" test "$(qd_state "$WORK")" = Running
out=$(qctl run -p "$WORK" -- printf '<%s>\n' 'a b' '$(id)' '*' '' </dev/null) && rc=0 || rc=$?
check "run -p: argv arrives verbatim, nothing expanded" test "$rc:$out" = "0:<a b>
<\$(id)>
<*>
<>"
qctl run "$WORK" -- sh -c 'exit 7' </dev/null && rc=0 || rc=$?
check "run: the command's exit code (7)" test "$rc" = 7
err=$(qctl run -p "$WORK" -- sh -c 'echo to-stderr >&2' </dev/null 2>&1 >/dev/null)
check "run -p: stderr relayed" test "$err" = to-stderr
qctl run -p "$WORK" -- no-such-command </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "run: a missing command gives 127" test "$rc" = 127
out=$(qctl run -p --shell "$WORK" 'echo "$QUBE_REMOTE via $QUBE_SERVICE"; exit 3' </dev/null) && rc=0 || rc=$?
check "run --shell: the line ran in a shell, source dom0, exit 3" test "$rc:$out" = "3:dom0 via qube.VMShell"
out=$(echo via-service | qctl run --service test.Echo "$WORK") && rc=0 || rc=$?
check "run --service test.Echo: stdio relayed" test "$rc:$out" = "0:via-service"
head -c $((64 << 20)) /dev/urandom > "$T/in.bin"
t0=$(date +%s.%N)
qctl run -p "$WORK" -- cat < "$T/in.bin" > "$T/out.bin" && rc=0 || rc=$?
t1=$(date +%s.%N)
check "run -p: 64 MiB of stdin through cat, byte for byte" bash -c "[ $rc = 0 ] && cmp -s '$T/in.bin' '$T/out.bin'"
say "  64 MiB each way through qube.Exec: $(echo "$t1 - $t0" | bc) s"
rm -f "$T/in.bin" "$T/out.bin"
qctl run --no-autostart "$LAZY" -- true 2>"$T/err" && rc=0 || rc=$?
check "run --no-autostart on a halted qube: 125, says so" bash -c "[ $rc = 125 ] && grep -q 'not running' '$T/err'"
check "... and $LAZY stays halted" test "$(qd_state "$LAZY")" = Halted
check "start $UNTR" qctl start "$UNTR"
qctl run -p --no-autostart "$UNTR" -- touch /tmp/must-not-exist 2>"$T/err" && rc=0 || rc=$?
check "run denied by the policy: 126" test "$rc" = 126
check "... logged by the broker with source dom0" \
  grep -q "source=dom0 target=- requested=$UNTR service=qube.Exec .*decision=deny" "$T/log/broker.log"
qctl run -p "$WORK" -- --help >/dev/null 2>&1 && rc=0 || rc=$?
check "run: an argument after -- that looks like an option is the command (127)" test "$rc" = 127

# --- guest to guest (qube-call inside WORK, reached through the tester)
out=$(qd_rpc "$WORK" "test.CallInfo+$UNTR" </dev/null) && rc=0 || rc=$?
check "$WORK -> $UNTR allowed: ran in $UNTR, source $WORK" bash -c "[ $rc = 0 ] && grep -q '^name=$UNTR remote=$WORK\$' <<<'$out'"
out=$(qd_rpc "$UNTR" "test.CallInfo+$WORK" </dev/null 2>&1) && rc=0 || rc=$?
check "$UNTR -> $WORK denied: 126" test "$rc" = 126
out=$(qd_rpc "$WORK" test.CallDefault </dev/null) && rc=0 || rc=$?
check "$WORK -> @default redirected by target= to $UNTR" bash -c "[ $rc = 0 ] && grep -q '^name=$UNTR remote=$WORK\$' <<<'$out'"
check "$LAZY is halted before the call" test "$(qd_state "$LAZY")" = Halted
out=$(qd_rpc "$WORK" "test.CallInfo+$LAZY" </dev/null) && rc=0 || rc=$?
check "$WORK -> $LAZY: autostarted and answered" bash -c "[ $rc = 0 ] && grep -q '^name=$LAZY remote=$WORK\$' <<<'$out'"
check "$LAZY is Running after the autostart" test "$(qd_state "$LAZY")" = Running
check "stop $LAZY" qctl kill "$LAZY"
out=$(qd_rpc "$WORK" test.CallDispvm </dev/null) && rc=0 || rc=$?
check "$WORK -> @dispvm: ran in a new disposable of $DVM" bash -c "[ $rc = 0 ] && grep -q '^name=disp[0-9]* remote=$WORK\$' <<<'$out'"
check "... which leaves no domain, no volume and no database entry" wait_no_disposables

# --- calls to the host (@adminvm): qube-host-agent started by qubed
out=$(qd_rpc @adminvm test.HostInfo </dev/null) && rc=0 || rc=$?
check "a call to @adminvm runs the host's service, as nobody, source from the transport" \
  test "$rc:$out" = "0:host service: remote=$QD_TESTER user=nobody requested=@adminvm"
qd_rpc @adminvm test.Missing </dev/null 2>/dev/null && rc=0 || rc=$?
check "a call to @adminvm the policy does not allow: 126" test "$rc" = 126
# qubed blocks SIGHUP, SIGINT, SIGPIPE and SIGTERM for its signalfd; what it
# starts must not inherit that mask (the agent would ignore SIGTERM)
no_blocked_term() {
  local blk
  blk=$(awk '/^SigBlk:/ { print $2 }' "/proc/$1/status") || return 1
  (( (16#$blk & 0x5003) == 0 ))
}
check "qube-host-agent, started by qubed, has SIGHUP, SIGINT, SIGPIPE and SIGTERM unblocked" \
  no_blocked_term "$(cat "$T/run/qube-host-agent.pid")"

# --- qubectl run --dispvm
t0=$(date +%s.%N)
out=$(qctl run -p --dispvm -- cat /proc/cmdline </dev/null) && rc=0 || rc=$?
t1=$(date +%s.%N)
check "run --dispvm: ran in a disposable of $DVM (cold)" bash -c "[ $rc = 0 ] && grep -q 'qube.name=disp[0-9]* ' <<<'$out'"
say "  qubectl run --dispvm (cold, boot included): $(echo "$t1 - $t0" | bc) s"
check "run --dispvm: nothing left afterwards" wait_no_disposables
out=$(qctl run -p --dispvm="$DVM" -- sh -c 'echo from-$(hostname); exit 5' </dev/null) && rc=0 || rc=$?
check "run --dispvm=$DVM: exit code and output" bash -c "[ $rc = 5 ] && grep -q '^from-disp[0-9]*\$' <<<'$out'"
check "run --dispvm=$DVM: nothing left" wait_no_disposables
qctl run --dispvm="$WORK" -- true 2>"$T/err" && rc=0 || rc=$?
check "run --dispvm=$WORK (not a disposable template): fails (125), says why" \
  bash -c "[ $rc = 125 ] && grep -q 'not a disposable template' '$T/err'"

# interrupted: SIGINT while the command runs (started with SIGINT at its
# default: a background job of this script would inherit it ignored)
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
  "$QD_QUBECTL" --socket "$QD_SOCK" run -p --dispvm -- sh -c 'echo started; exec sleep 600' </dev/null > "$T/sigint.out" 2>&1 &
run_pid=$!
for _ in $(seq 300); do grep -q started "$T/sigint.out" && break; sleep 0.2; done
check "SIGINT case: the command started in a disposable" grep -q started "$T/sigint.out"
kill -INT "$run_pid"; wait "$run_pid" && rc=0 || rc=$?
check "SIGINT ended qubectl run (status 130)" test "$rc" = 130
check "after SIGINT mid-run: the disposable is gone" wait_no_disposables

# qubed killed mid-run (SIGKILL) and started again
qctl run -p --dispvm -- sh -c 'echo started; sleep 8; echo finished' </dev/null > "$T/restart.out" 2>&1 &
run_pid=$!
for _ in $(seq 300); do grep -q started "$T/restart.out" && break; sleep 0.2; done
check "restart case: the command started in a disposable" grep -q started "$T/restart.out"
kill -9 "$qd_pid"; wait "$qd_pid" 2>/dev/null || true; qd_pid=
qd_start
wait "$run_pid" && rc=0 || rc=$?
check "qubed killed and restarted mid-run: the command finished (exit 0)" bash -c "[ $rc = 0 ] && grep -q finished '$T/restart.out'"
check "... and the disposable is gone" wait_no_disposables

# --- preloaded disposables
ready_count() { grep -c "preloaded disposable disp[0-9]* of $DVM ready" "$T/qubed.log" || true; }
paused_preloads() { qd_call admin.vm.List | grep -c "^disp[0-9]* class=DispVM state=Paused" || true; }
wait_paused() { # wait_paused N: N preloads paused and no preload booting
  for _ in $(seq 600); do
    [ "$(paused_preloads)" = "$1" ] && ! qd_call admin.vm.List | grep -q '^disp[0-9]* class=DispVM state=Transient' && return 0
    sleep 0.2
  done
  return 1
}
check "preload_dispvm=2 on $DVM" qctl prefs "$DVM" preload_dispvm 2
check "two preloaded disposables booted and paused" wait_paused 2
check "preloads are hidden from qubectl ls" bash -c "! '$QD_QUBECTL' --socket '$QD_SOCK' ls --format names | grep -q '^disp'"
check "... and listed by qubectl ls --all" bash -c "[ \$('$QD_QUBECTL' --socket '$QD_SOCK' ls --all --format names | grep -c '^disp') = 2 ]"
preloaded=$(qd_call admin.vm.List | sed -n 's/^\(disp[0-9]*\) class=DispVM state=Paused.*/\1/p' | sort | tr '\n' ' ')
names=()
for i in 1 2 3; do
  t0=$(date +%s.%N)
  out=$(qctl run -p --dispvm -- cat /proc/sys/kernel/hostname </dev/null) && rc=0 || rc=$?
  t1=$(date +%s.%N)
  names+=("$out")
  say "  request $i: served by $out in $(echo "$t1 - $t0" | bc) s"
  check "preloaded request $i: exit 0 in a disposable" bash -c "[ $rc = 0 ] && grep -q '^disp[0-9]*\$' <<<'$out'"
done
check "the first two requests were served by the preloads ($preloaded)" \
  test "$(printf '%s\n' "${names[0]}" "${names[1]}" | sort | tr '\n' ' ')" = "$preloaded"
check "no disposable was handed to two callers" test "$(printf '%s\n' "${names[@]}" | sort -u | wc -l)" = 3
check "qubed logged the takes from the pool" bash -c "[ \$(grep -c 'taken from the preloaded pool of $DVM' '$T/qubed.log') -ge 2 ]"
check "the pool refills to two" wait_paused 2
victim=$(qd_call admin.vm.List | sed -n 's/^\(disp[0-9]*\) class=DispVM state=Paused.*/\1/p' | head -n 1)
virsh -q -c qemu:///system destroy "qube-$victim" >/dev/null
check "a preload killed from outside ($victim) is gone" bash -c "for i in \$(seq 100); do python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.List | grep -q '^$victim ' || exit 0; sleep 0.1; done; exit 1"
check "... and replaced" wait_paused 2
# the restarted qubed gets a memory budget for preloads: two fit (400 MiB each), three do not
echo "preload_memory = 1000M" >> "$T/qubed.conf"
kill -9 "$qd_pid"; wait "$qd_pid" 2>/dev/null || true; qd_pid=
qd_start
check "after a qubed restart both preloads are adopted" bash -c "[ \$(grep -c 'adopted preloaded disposable' '$T/qubed.log') -ge 2 ]"
check "... and still serve a request" bash -c "'$QD_QUBECTL' --socket '$QD_SOCK' run -p --dispvm -- true </dev/null"
check "preload_dispvm=3 over the memory budget" qctl prefs "$DVM" preload_dispvm 3
check "... qubed says why it keeps only two" bash -c "for i in \$(seq 50); do grep -q 'cannot keep 3 preloaded disposables of $DVM (2 kept): memory budget preload_memory=1000 MiB' '$T/qubed.log' && exit 0; sleep 0.2; done; exit 1"
check "... and two stay paused, none boots" wait_paused 2
check "preload_dispvm=0" qctl prefs "$DVM" preload_dispvm 0
check "no preload left once the pool is not wanted" wait_no_disposables

# --- the end: shut everything down, remove
check "shutdown --all --wait" qctl shutdown --all --wait
check "global default_dispvm reset (it would keep $DVM in use)" qctl global-prefs --default default_dispvm
for q in "$WORK" "$UNTR" "$LAZY" "$DVM" "$QD_TESTER"; do
  check "remove $q" qctl remove --force "$q"
done
check "remove the template" qctl remove --force "$TPL"
check "no disposable, domain or volume left" no_disposables
qd_summary
