#!/usr/bin/env bash
# The admin API without guests: the qubesd wire (framing, caps, exception
# replies), who may connect, and bad input of every kind, each answered
# with a clear error that changes nothing (the database dump before and
# after is compared).  A real libvirtd is used (qubed connects to it) but
# no qube is started.
#   api-test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
qd_setup "$1"
qd_start

TPL=$(uniq_name tpl) APP=$(uniq_name app)
dump() { sqlite3 "$T/state/qubes.db" .dump; }
# expect_exc NAME TYPE METHOD DEST [ARGS]: an exception reply of TYPE, nothing changed
expect_exc() {
  local name=$1 type=$2; shift 2
  local before after out rc=0
  before=$(dump)
  out=$(qd_call "$@" 2>&1) || rc=$?
  after=$(dump)
  if [ "$rc" = 1 ] && printf '%s' "$out" | grep -q "^EXC ${type}[A-Za-z]*: " && [ "$before" = "$after" ]; then
    pass "$name ($out)"
  else
    fail "$name: rc=$rc out=$out$([ "$before" = "$after" ] || echo ' (the database changed)')"
  fi
}

check "create a TemplateVM" qd_call admin.vm.Create.TemplateVM dom0 --payload "name=$TPL label=black"
check "create an AppVM on it" qd_call "admin.vm.Create.AppVM+$TPL" dom0 --payload "name=$APP label=blue"

# names
expect_exc "name with a slash" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=a/b label=red"
expect_exc "name '..'" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=.. label=red"
expect_exc "name starting with a digit" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=1abc label=red"
expect_exc "name of 32 bytes" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=a1234567890123456789012345678901 label=red"
expect_exc "name dom0" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=dom0 label=red"
expect_exc "existing name" QubesValueError admin.vm.Create.AppVM dom0 --payload "name=$APP label=red"
expect_exc "unknown label" Qubes admin.vm.Create.AppVM dom0 --payload "name=x$QD_RUN label=pink"
expect_exc "missing template" Qubes "admin.vm.Create.AppVM+nosuch$QD_RUN" dom0 --payload "name=y$QD_RUN label=red"
expect_exc "template of the wrong class" Qubes "admin.vm.Create.AppVM+$APP" dom0 --payload "name=z$QD_RUN label=red"
expect_exc "unknown class" QubesValueError admin.vm.Create.SuperVM dom0 --payload "name=s$QD_RUN label=red"
expect_exc "payload without label" ProtocolError admin.vm.Create.AppVM dom0 --payload "name=n$QD_RUN"
expect_exc "unknown create option" ProtocolError admin.vm.Create.AppVM dom0 --payload "name=n$QD_RUN label=red evil=1"
# properties
expect_exc "unknown property" QubesNoSuchPropertyError admin.vm.property.Set+colour "$APP" --payload blue
expect_exc "memory not a number" Qubes admin.vm.property.Set+memory "$APP" --payload lots
expect_exc "memory negative" Qubes admin.vm.property.Set+memory "$APP" --payload -5
expect_exc "vcpus zero" Qubes admin.vm.property.Set+vcpus "$APP" --payload 0
expect_exc "bool not a bool" Qubes admin.vm.property.Set+autostart "$APP" --payload maybe
expect_exc "template that does not exist" Qubes admin.vm.property.Set+template "$APP" --payload "nosuch$QD_RUN"
expect_exc "read-only uuid" Qubes admin.vm.property.Set+uuid "$APP" --payload 00000000-0000-4000-8000-000000000000
expect_exc "control character in a value" QubesPropertyValueError admin.vm.property.Set+kernelopts "$APP" --payload $'a\x01b'
expect_exc "property of another class (template_for_dispvms on a TemplateVM)" QubesNoSuchPropertyError admin.vm.property.Set+template_for_dispvms "$TPL" --payload True
expect_exc "no such qube" QubesVMNotFoundError admin.vm.property.Get+memory "nosuch$QD_RUN"
# lifecycle errors
expect_exc "start a template with nothing imported" QubesException admin.vm.Start "$TPL"
expect_exc "remove a used template (names its AppVM)" QubesVMInUseError admin.vm.Remove "$TPL"
expect_exc "remove dom0" Qubes admin.vm.Remove dom0
expect_exc "shutdown a halted qube" QubesVMNotStartedError admin.vm.Shutdown "$APP"
expect_exc "shutdown with a bad argument" ProtocolError admin.vm.Shutdown+now "$APP"
expect_exc "import into an AppVM" QubesValueError qube.template.Import+kernel "$APP" --payload x
expect_exc "import an unknown part" QubesValueError qube.template.Import+firmware "$TPL" --payload x
expect_exc "a qcow2 root with a backing file" QubesValueError qube.template.Import+root "$TPL" \
  --payload-file "$(qemu-img create -q -f qcow2 -b /etc/shadow -F raw "$T/evil.qcow2" && echo "$T/evil.qcow2")"
expect_exc "unknown method" QubesException admin.vm.Frobnicate "$APP"
expect_exc "argument where none is taken" QubesException admin.vm.List+x dom0
expect_exc "a source other than dom0" PermissionDenied admin.vm.List dom0 --src "$APP"
# XML metacharacters are data: stored as given, printed as given
meta="a<b>&'\"]]>--c"
check "kernelopts with XML metacharacters stored" qd_call admin.vm.property.Set+kernelopts "$APP" --payload "$meta"
check "... and read back unchanged" bash -c "python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.property.Get+kernelopts '$APP' | tail -n 1 | grep -qxF \"default=False type=str \$1\"" _ "$meta"
# the wire itself
check "GetAll escapes newlines (Qubes' format)" bash -c "python3 '$QD_LIB_DIR/qubesd-call.py' '$QD_SOCK' admin.vm.property.GetAll '$APP' | grep -q '^memory default=True type=int [0-9]'"
out=$(python3 - "$QD_SOCK" <<'PY'
import socket, sys
def raw(b, shut=True):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    try:
        s.sendall(b)
    except (BrokenPipeError, ConnectionResetError):
        return b""
    try:
        if shut: s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        return b""
    d = b""
    try:
        while True:
            x = s.recv(65536)
            if not x: break
            d += x
    except ConnectionResetError:
        pass  # closed with our bytes unread: no reply
    return d
print("noheader", raw(b"admin.vm.List+ dom0 name dom0") == b"")
print("threefields", raw(b"admin.vm.List+ dom0 dom0\0") == b"")
print("badtype", raw(b"admin.vm.List+ dom0 uuid 1234\0") == b"")
print("control", raw(b"admin.vm.List+\x01 dom0 name dom0\0") == b"")
print("oversize", raw(b"admin.vm.property.Set+kernelopts dom0 name dom0\0" + b"x" * 70000) == b"")
r = raw(b"admin.vm.List+ dom0 keyword adminvm\0"); print("keyword", r.startswith(b"0\0") and b"dom0 class=AdminVM" in r)
PY
)
for k in noheader threefields badtype control oversize keyword; do
  check "wire: $k" bash -c "printf '%s\n' \"\$1\" | grep -qx '$k True'" _ "$out"
done
check "qubed still serves after the framing errors" qd_call admin.vm.List dom0
# who may connect
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  chmod 0755 "$T/run"
  chmod 0666 "$QD_SOCK"   # the file mode would stop nobody first; check the daemon's own check
  out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 "$QD_LIB_DIR/qubesd-call.py" "$QD_SOCK" admin.vm.List 2>&1 || true)
  check "a user outside the group is refused by qubed ($out)" bash -c "printf '%s' \"\$1\" | grep -q '^EXC PermissionDenied'" _ "$out"
  check "... and logged" grep -q "is not root nor in group" "$T/qubed.log"
  chmod 0660 "$QD_SOCK"
fi
check "remove the AppVM" qd_call admin.vm.Remove "$APP"
check "remove the template" qd_call admin.vm.Remove "$TPL"
qd_stop

# the vsock transport qubed chooses (--check prints it): a vhost-vsock
# device that opens read-write (/dev/null stands in for it), with and
# without a compositor; production hosts have the real one
vsock_choice() { # CONF_LINES... -- QUBED_OPTIONS...: prints the vsock= line
  local conf=$T/choice.conf
  : > "$conf"
  while [ "$1" != -- ]; do printf '%s\n' "$1" >> "$conf"; shift; done
  shift
  "$QD_QUBED" --config "$conf" --state-dir "$T/choice" --run-dir "$T/choice" --log-dir "$T/choice" \
    --libvirt-uri test:///default "$@" --check | grep '^vsock='
}
out=$(vsock_choice "dev_vhost_vsock = /dev/null" --)
check "auto, vhost-vsock usable, no compositor: vhost ($out)" test "$out" = "vsock=vhost (vhost_vsock works)"
out=$(vsock_choice "dev_vhost_vsock = /dev/null" "gui_compositor = $T/none.ctl" --)
check "auto, vhost-vsock usable, a compositor: vsockd, and why ($out)" \
  test "$out" = "vsock=vsockd (vhost_vsock works, but gui_compositor is set and qube-gui-bridge needs qube-vsockd)"
out=$(vsock_choice "dev_vhost_vsock = /dev/null" "gui_compositor = $T/none.ctl" -- --vsock vhost)
check "vsock = vhost with a compositor: vhost as asked ($out)" test "$out" = "vsock=vhost (vhost_vsock works)"
out=$(vsock_choice "dev_vhost_vsock = $T/no-such-device" --)
check "auto, no vhost-vsock device: vsockd ($out)" bash -c "[[ \"\$1\" == 'vsock=vsockd ($T/no-such-device: No such file or directory)' ]]" _ "$out"
qd_summary
