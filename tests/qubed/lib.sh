# Shared set-up of the qubed tests (sourced).  A real libvirtd (started
# here when none runs, and then stopped again), real QEMU (TCG here), the
# minimal image with the test services of tests/qubed/rpc/ in
# /etc/qube/rpc, the build's qubed, qube-broker, qube-vsockd and qubectl.
#
#   qd_setup BUILD        scratch dir $T, config, image, libvirtd; exports QD_* paths
#   qd_start [ARGS]       starts qubed (log $T/qubed.log), waits for "ready"
#   qd_stop               SIGTERM to qubed, waits
#   qd_call METHOD DEST [--payload S]   raw admin call (tests/qubed/qubesd-call.py)
#   qctl ARGS             the build's qubectl against this qubed
#   check NAME CMD...     runs CMD, counts a pass or a failure
#   uniq_name BASE        BASE-XXXX, unique per run (libvirt domain names are global)
QD_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QD_TOP=$(cd "$QD_LIB_DIR/../.." && pwd)
passes=0 failures=0
qd_pid=
# shellcheck source=../lib/libvirt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/libvirt.sh"
qd_names=()

say() { printf '%s\n' "$*"; }
pass() { passes=$((passes + 1)); say "ok: $*"; }
fail() { failures=$((failures + 1)); say "FAIL: $*"; }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
skip() { say "SKIP: $*"; exit 77; }

uniq_name() {
  local n="$1-$QD_RUN"
  qd_names+=("$n")
  printf '%s' "$n"
}

qd_cleanup() {
  local rc=$?
  if [ -n "$qd_pid" ] && kill -0 "$qd_pid" 2>/dev/null; then
    kill "$qd_pid" 2>/dev/null || true
    wait "$qd_pid" 2>/dev/null || true
  fi
  # no domain of ours survives the test, whatever happened
  for n in "${qd_names[@]}"; do
    virsh -q -c qemu:///system destroy "qube-$n" >/dev/null 2>&1 || true
  done
  for d in $(virsh -q -c qemu:///system list --name 2>/dev/null | grep -- "-$QD_RUN\$" || true); do
    virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
  done
  pkill -f "qube-vsockd.*$T/" 2>/dev/null || true
  pkill -f "qube-broker.*$T/" 2>/dev/null || true
  # qubed leaves the host agent and GUI bridges running for the next qubed
  # to adopt; a test's are stopped with it
  pkill -f "qube-host-agent.*$T/" 2>/dev/null || true
  pkill -f "qube-gui-bridge.*$T/" 2>/dev/null || true
  libvirt_down
  if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -n "${T:-}" ] && [ -f "$T/qubed.log" ]; then
    say "--- qubed.log (last 40 lines)"; tail -n 40 "$T/qubed.log"
    [ -f "$T/log/broker.log" ] && { say "--- broker.log (last 20)"; tail -n 20 "$T/log/broker.log"; }
  fi
  if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then say "kept $T"; else rm -rf "${T:-/nonexistent}"; fi
  exit "$rc"
}

qd_libvirt_up() {
  # Debian's udev rule gives /dev/kvm to group kvm (0660); these machines
  # have no udev and a 0600 root:root /dev/kvm.  libvirt then finds KVM
  # "enabled when probing, but not available now" for its QEMU user on
  # every lookup, throws its capability cache away and re-probes QEMU:
  # 60-100 s per domain start here.  Apply the rule udev would.
  if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ] && getent group kvm >/dev/null; then
    say "note: /dev/kvm is $(stat -c '%U:%G %a' /dev/kvm); applying Debian's udev rule (root:kvm 0660)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
  libvirt_up
}

qd_setup() {
  QD_BUILD=$(cd "$1" && pwd)
  [ "$(id -u)" = 0 ] || skip "needs root (libvirt's qemu:///system, volumes owned by libvirt-qemu)"
  command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"
  command -v libvirtd >/dev/null || skip "libvirtd not installed (apt-get install libvirt-daemon-system)"
  id libvirt-qemu >/dev/null 2>&1 || skip "no libvirt-qemu user (install libvirt-daemon-system, not only libvirt-daemon)"
  QD_QUBED=$QD_BUILD/src/qubed/qubed
  QD_QUBECTL=$QD_BUILD/src/qubectl
  QD_BROKER=$QD_BUILD/rpc/broker/qube-broker
  [ -x "$QD_BROKER" ] || QD_BROKER=$QD_BUILD/rpc/qube-broker
  QD_VSOCKD=$QD_BUILD/vmm/qube-vsockd
  QD_CALL=$QD_BUILD/rpc/guest/qube-call
  [ -x "$QD_CALL" ] || QD_CALL=$QD_BUILD/rpc/qube-call
  for b in "$QD_QUBED" "$QD_BROKER" "$QD_VSOCKD" "$QD_CALL"; do
    [ -x "$b" ] || skip "$b is not built"
  done
  QD_RUN=$(printf '%04x' $(( (RANDOM << 1 ^ $$) & 0xffff )))
  T=$(mktemp -d "${TMPDIR:-/tmp}/qubed-test.XXXXXX")
  trap qd_cleanup EXIT
  chmod 0755 "$T"   # QEMU (libvirt-qemu) reaches the volumes, the broker's sandbox (nobody) its sockets
  qd_libvirt_up || skip "libvirtd did not come up"
  mkdir -p "$T/policy.d" "$T/state" "$T/run" "$T/log"
  cat > "$T/qubed.conf" <<CONF
# test configuration
state_dir = $T/state
run_dir = $T/run
log_dir = $T/log
broker = $QD_BROKER
vsockd = $QD_VSOCKD
policy_dir = $T/policy.d
private_size = 64M
volatile_size = 64M
start_timeout = 240
shutdown_timeout = 60
CONF
  QD_SOCK=$T/run/qubed.sock
  export QUBED_SOCKET=$QD_SOCK
}

# the minimal image plus the test services (prints its directory)
qd_image() {
  local adds=()
  for s in "$QD_LIB_DIR"/rpc/*; do adds+=(--add "$s:/etc/qube/rpc/$(basename "$s")"); done
  "$QD_TOP/tests/lib/guest-image.sh" --build-dir "$QD_BUILD" --output "$QD_BUILD/images/qubed-test" "${adds[@]}"
}

qd_start() {
  "$QD_QUBED" --config "$T/qubed.conf" "$@" >>"$T/qubed.log" 2>&1 &
  qd_pid=$!
  for _ in $(seq 300); do
    # this qubed's own line: after a restart the log holds the previous
    # one's too, and its socket file may still be there
    grep -q " ready (pid $qd_pid)" "$T/qubed.log" 2>/dev/null && [ -S "$QD_SOCK" ] && return 0
    kill -0 "$qd_pid" 2>/dev/null || { say "qubed exited:"; tail -n 20 "$T/qubed.log"; return 1; }
    sleep 0.1
  done
  say "qubed did not get ready"; return 1
}

qd_stop() {
  [ -n "$qd_pid" ] || return 0
  kill "$qd_pid" 2>/dev/null || true
  wait "$qd_pid" 2>/dev/null || true
  qd_pid=
}

qd_call() { python3 "$QD_LIB_DIR/qubesd-call.py" "$QD_SOCK" "$@"; }
qctl() { "$QD_QUBECTL" --socket "$QD_SOCK" "$@"; }

# the state qubed reports for QUBE (Halted, Running, ...)
qd_state() {
  qd_call admin.vm.List "$1" | sed -n "s/^$1 class=[A-Za-z]* state=\([A-Za-z]*\).*/\1/p"
}

# a call into QUBE from the never-started qube $QD_TESTER (through the broker)
qd_rpc() { # qd_rpc TARGET SERVICE (stdin)
  "$QD_CALL" --transport "unix:$T/run/qubes/$QD_TESTER" "$@"
}

qd_summary() {
  say "$passes passed, $failures failed"
  [ "$failures" = 0 ]
}
