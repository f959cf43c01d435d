#!/usr/bin/env bash
# qubed end to end on a real libvirtd and real QEMU (TCG here): a template
# imported from the minimal image, AppVMs created, started (the agent
# answers over vsock through qube-vsockd and the broker), private volume
# persistent and root not, calls between two real qubes allowed and
# denied by the policy, shutdown and kill, qubed killed with SIGKILL and
# started again (qubes adopted), libvirtd restarted under qubed (when this
# test started libvirtd itself, or QD_TEST_RESTART_LIBVIRTD=1), removal
# leaving no file and no domain.
#   lifecycle-test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
qd_setup "$1"
img=$(qd_image)
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz

TPL=$(uniq_name tpl) WORK=$(uniq_name work) UNTR=$(uniq_name untr) QD_TESTER=$(uniq_name tester)
cat > "$T/policy.d/30-test.policy" <<POL
test.Echo * $UNTR $WORK deny
test.Echo * @anyvm @anyvm allow
* * $QD_TESTER @anyvm allow
POL
qd_start

check "dom0 is listed, as the AdminVM" bash -c "qd_call() { python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' \"\$@\"; }; qd_call admin.vm.List | grep -q '^dom0 class=AdminVM state=Running'"

# --- template from the minimal image (kernel, initramfs, an ext4 root)
truncate -s 32M "$T/root.img"
mkfs.ext4 -q -F "$T/root.img"
check "create TemplateVM" qd_call admin.vm.Create.TemplateVM dom0 --payload "name=$TPL label=black"
check "import kernel" qd_call qube.template.Import+kernel "$TPL" --payload-file "$kernel"
check "import initrd" qd_call qube.template.Import+initrd "$TPL" --payload-file "$img/initramfs.cpio.gz"
check "import root (raw ext4, stored as qcow2)" qd_call qube.template.Import+root "$TPL" --payload-file "$T/root.img"
check "template's root is qcow2" bash -c "qemu-img info '$T/state/qubes/$TPL/root.qcow2' | grep -q 'file format: qcow2'"
for q in "$WORK:blue" "$UNTR:red" "$QD_TESTER:gray"; do
  check "create AppVM ${q%%:*}" qd_call "admin.vm.Create.AppVM+$TPL" dom0 --payload "name=${q%%:*} label=${q#*:}"
done
check "the private volume exists" test -f "$T/state/qubes/$WORK/private.qcow2"
check "AppVM's template" bash -c "python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.property.Get+template '$WORK' | grep -qx 'default=False type=vm $TPL'"

# --- start: returns when the agent answers
t0=$(date +%s.%N)
check "start $WORK" qd_call admin.vm.Start "$WORK"
t1=$(date +%s.%N)
say "  start to agent answering: $(echo "$t1 - $t0" | bc) s"
check "$WORK is Running" test "$(qd_state "$WORK")" = Running
check "the libvirt domain exists" virsh -q -c qemu:///system dominfo "qube-$WORK"
out=$(qd_rpc "$WORK" test.Info </dev/null || true)
check "call into $WORK: its name and the caller" bash -c "printf '%s' \"\$1\" | grep -q 'name=$WORK remote=$QD_TESTER'" _ "$out"
check "kernel command line from qubed" bash -c "printf '%s' \"\$1\" | grep -q 'qube.name=$WORK root=/dev/vda qube.rw=/dev/vdb'" _ "$out"
check "write to private" bash -c "echo persist-1 | '$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.PrivWrite | grep -qx written"
check "write to root" bash -c "echo root-1 | '$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.RootWrite | grep -qx written"
check "root write visible while running" bash -c "'$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.RootRead </dev/null | grep -qx root-1"

# --- shutdown (ACPI) and start again
check "shutdown+wait" qd_call admin.vm.Shutdown+wait "$WORK"
check "$WORK is Halted" test "$(qd_state "$WORK")" = Halted
check "no domain left" bash -c "! virsh -q -c qemu:///system dominfo 'qube-$WORK' >/dev/null 2>&1"
check "root overlay and volatile removed" bash -c "! ls '$T/state/qubes/$WORK'/root-snap.qcow2 '$T/state/qubes/$WORK'/volatile.qcow2 2>/dev/null"
check "a revision of private kept" test -f "$T/state/qubes/$WORK/private.qcow2.rev1"
check "clean poweroff in the console log" grep -q 'qube-init: poweroff' "$T/log/console-$WORK.log"
check "start $WORK again" qd_call admin.vm.Start "$WORK"
check "private survived" bash -c "'$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.PrivRead </dev/null | grep -qx persist-1"
check "root change did not survive" bash -c "'$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.RootRead </dev/null | grep -qx 'no marker'"

# --- two real qubes calling each other through the broker
check "start $UNTR" qd_call admin.vm.Start "$UNTR"
out=$(echo "from $WORK to $UNTR" | qd_rpc "$WORK" "test.Call+$UNTR" || true)
check "$WORK -> $UNTR test.Echo allowed" test "$out" = "from $WORK to $UNTR"
rc=0; echo "from $UNTR" | qd_rpc "$UNTR" "test.Call+$WORK" >/dev/null 2>&1 || rc=$?
check "$UNTR -> $WORK test.Echo denied (126)" test "$rc" = 126
check "the broker logged the denial with the source from the transport" \
  grep -q "source=$UNTR target=- requested=$WORK service=test.Echo .*decision=deny" "$T/log/broker.log"

# --- qubed killed with SIGKILL, started again: both qubes adopted
broker_pid=$(cat "$T/run/qube-broker.pid")
kill -9 "$qd_pid"; wait "$qd_pid" 2>/dev/null || true; qd_pid=
qd_start
check "after SIGKILL: $WORK still Running" test "$(qd_state "$WORK")" = Running
check "after SIGKILL: $UNTR still Running" test "$(qd_state "$UNTR")" = Running
check "after SIGKILL: qubes adopted (log)" grep -q "adopted running $WORK" "$T/qubed.log"
check "after SIGKILL: the broker adopted, not a second one" bash -c "grep -q 'adopted qube-broker (pid $broker_pid)' '$T/qubed.log' && [ \"\$(cat '$T/run/qube-broker.pid')\" = $broker_pid ] && ! grep -q 'started qube-broker' <(sed -n '/adopted qube-broker/,\$p' '$T/qubed.log')"
check "after SIGKILL: $WORK usable" bash -c "echo still-here | '$QD_CALL' --transport 'unix:$T/run/qubes/$QD_TESTER' '$WORK' test.Echo | grep -qx still-here"

# --- libvirtd restarted under qubed
if [ "$libvirt_started_libvirtd" = 1 ] || [ "${QD_TEST_RESTART_LIBVIRTD:-0}" = 1 ]; then
  libvirt_restart
  for _ in $(seq 200); do
    [ "$(grep -c 'connected to libvirt' "$T/qubed.log")" -ge 3 ] && break; sleep 0.1
  done
  check "qubed reconnected to the restarted libvirtd" bash -c "[ \$(grep -c 'connected to libvirt' '$T/qubed.log') -ge 3 ]"
  check "after the libvirtd restart: $UNTR still Running" test "$(qd_state "$UNTR")" = Running
  check "after the libvirtd restart: shutdown+wait (events arrive)" qd_call admin.vm.Shutdown+wait "$UNTR"
  check "after the libvirtd restart: $UNTR Halted" test "$(qd_state "$UNTR")" = Halted
else
  say "note: libvirtd was running before the test; not restarting it (QD_TEST_RESTART_LIBVIRTD=1 to do so)"
  check "shutdown $UNTR" qd_call admin.vm.Shutdown+wait "$UNTR"
fi

# --- kill, remove
check "kill $WORK" qd_call admin.vm.Kill "$WORK"
check "$WORK Halted after kill" test "$(qd_state "$WORK")" = Halted
check "qube-vsockd of $WORK gone (within 5 s)" bash -c "for i in \$(seq 50); do pgrep -f '[q]ube-vsockd.*$T/run/qubes/$WORK/' >/dev/null || exit 0; sleep 0.1; done; exit 1"
rc=0; qd_call admin.vm.Remove "$TPL" >"$T/out" || rc=$?
check "removing a used template is refused, naming its users" bash -c "[ $rc = 1 ] && grep -q '$WORK' '$T/out'"
for q in "$WORK" "$UNTR" "$QD_TESTER"; do
  check "remove $q" qd_call admin.vm.Remove "$q"
  check "$q: no files left" bash -c "[ ! -e '$T/state/qubes/$q' ] && [ ! -e '$T/run/qubes/$q' ]"
  check "$q: no libvirt domain" bash -c "! virsh -q -c qemu:///system dominfo 'qube-$q' >/dev/null 2>&1"
done
check "remove the template" qd_call admin.vm.Remove "$TPL"
check "only dom0 left" bash -c "[ \"\$(python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.List | tail -n +2 | cut -d' ' -f1)\" = dom0 ]"
qd_stop
qd_summary
