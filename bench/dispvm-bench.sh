#!/usr/bin/env bash
# Disposables and calls between real qubes (docs/performance.md), each a
# ratio against a baseline measured in the same run:
#  1. `qubectl run --dispvm -- true`: cold (a boot per request) and from
#     the preloaded pool (preload_dispvm=4, four requests in a row, then a
#     refill and four more), against `qubectl run QUBE -- true` in a qube
#     that runs already; the time split of a preloaded request from the
#     logs: take (request to qubed answering the start interface), exec
#     (answer to the exit code at the caller), and cleanup after the
#     caller has its result (exit to "disposable destroyed");
#  2. guest to guest: call latency (`qube-call B test.Echo` from A, N
#     sequential calls inside one qube.Exec) against host to guest through
#     the same qube-vsockd without the broker, and 1 GiB through a cat
#     service guest to guest against the same bytes host to guest.
#   dispvm-bench.sh BUILD_DIR [ROUNDS]   (MIB=N: the bulk transfer size, default 1024)
set -euo pipefail
. "$(dirname "$0")/../tests/qubed/lib.sh"
qd_setup "$1"
rounds=${2:-3}
img=$(qd_image)
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
TPL=$(uniq_name btpl) A=$(uniq_name ba) B=$(uniq_name bb) DVM=$(uniq_name bdvm)
QD_TESTER=$(uniq_name bt) # a host process calls as this qube (never started)
cat > "$T/policy.d/30-bench.policy" <<POL
qube.Exec  *  dom0  @anyvm   allow
qube.Exec  *  dom0  @dispvm  allow
test.Echo  *  dom0  @anyvm   allow
test.Echo  *  $A    $B       allow
test.Echo  *  $QD_TESTER  $B  allow
POL
qd_start
truncate -s 32M "$T/root.img"; mkfs.ext4 -q -F "$T/root.img"
qctl template import --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --root "$T/root.img" --label black "$TPL" >/dev/null
qctl create --template "$TPL" --label blue "$A" >/dev/null
qctl create --template "$TPL" --label green "$B" >/dev/null
qctl create --template "$TPL" --label red "$DVM" >/dev/null
qctl create --template "$TPL" --label gray "$QD_TESTER" >/dev/null
qctl prefs "$DVM" template_for_dispvms True
qctl global-prefs default_dispvm "$DVM"
qctl start "$A" "$B"

now() { date +%s.%N; }
elapsed() { local t0=$1; echo "$(now) - $t0" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { echo "scale=2; $1 / $2" | bc; }
wait_pool() { # wait_pool N: N preloads paused, none booting
  for _ in $(seq 900); do
    local l; l=$(qd_call admin.vm.List)
    [ "$(grep -c '^disp[0-9]* class=DispVM state=Paused' <<<"$l" || true)" = "$1" ] &&
      ! grep -q '^disp[0-9]* class=DispVM state=Transient' <<<"$l" && return 0
    sleep 0.2
  done
  say "the pool did not reach $1"; return 1
}
wait_none() {
  for _ in $(seq 300); do qd_call admin.vm.List | grep -q '^disp' || return 0; sleep 0.2; done
}

# ---- 1. disposables
warm=() cold=() pre=()
for i in $(seq "$rounds"); do
  t0=$(now); qctl run "$A" -- true; warm+=("$(elapsed "$t0")")
  t0=$(now); qctl run --dispvm -- true; cold+=("$(elapsed "$t0")")
  wait_none
done
qctl prefs "$DVM" preload_dispvm 4
for batch in 1 2; do
  wait_pool 4
  sleep 2
  for i in 1 2 3 4; do
    t0=$(now); qctl run --dispvm -- true; t=$(elapsed "$t0"); pre+=("$t")
    say "preloaded request $batch.$i: $t s"
  done
done
# the split of preloaded requests, from the logs (UTC ms stamps)
python3 - "$T/qubed.log" "$T/log/broker.log" <<'PY' | sed 's/^/  /'
import re, sys
from datetime import datetime
def ts(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
q = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
taken = {}
for l in q:
    m = re.search(r"disposable (disp\d+) taken from the preloaded pool", l)
    if m: taken[m.group(1)] = ts(l)
    m = re.search(r"disposable (disp\d+) destroyed", l)
    if m and m.group(1) in taken: taken[m.group(1)] = (taken[m.group(1)], ts(l))
calls = {}
for l in b:
    m = re.search(r"call id=(\d+) source=dom0 target=(disp\d+) requested=@dispvm .*result=started", l)
    if m: calls[m.group(1)] = [m.group(2), ts(l), None]
    m = re.search(r"call id=(\d+) ended", l)
    if m and m.group(1) in calls: calls[m.group(1)][2] = ts(l)
rows = []
for cid, (name, started, ended) in calls.items():
    t = taken.get(name)
    if not isinstance(t, tuple) or ended is None: continue
    rows.append((started - t[0], ended - started, t[1] - ended))
if rows:
    n = len(rows)
    avg = [sum(r[i] for r in rows) / n for i in range(3)]
    print(f"split over {n} preloaded requests (mean): take-to-connected {avg[0]*1000:.0f} ms, "
          f"exec to exit {avg[1]*1000:.0f} ms, cleanup after the caller's result {avg[2]*1000:.0f} ms")
PY
qctl prefs "$DVM" preload_dispvm 0
wait_none
wm=$(median "${warm[@]}") cm=$(median "${cold[@]}") pm=$(median "${pre[@]}")
pmax=$(printf '%s\n' "${pre[@]}" | sort -g | tail -n 1)
say "RESULT dispvm: run in a running qube $wm s; --dispvm cold $cm s (ratio $(ratio "$cm" "$wm")); preloaded $pm s (max $pmax s of ${#pre[@]}, ratio $(ratio "$pm" "$wm"))"

# ---- 2. guest to guest vs host to guest
calls=200
g=() h=()
for i in $(seq "$rounds"); do
  t0=$(now)
  qctl run "$A" -- sh -c "i=0; while [ \$i -lt $calls ]; do echo x | qube-call $B test.Echo >/dev/null || exit 1; i=\$((i+1)); done"
  g+=("$(echo "scale=6; $(elapsed "$t0") / $calls" | bc)")
  t0=$(now)
  for j in $(seq "$calls"); do echo x | qd_rpc "$B" test.Echo >/dev/null; done
  h+=("$(echo "scale=6; $(elapsed "$t0") / $calls" | bc)")
done
gm=$(median "${g[@]}") hm=$(median "${h[@]}")
say "RESULT call latency: guest to guest $gm s/call, host to guest (a host caller through the same broker and qube-vsockd) $hm s/call, ratio $(ratio "$gm" "$hm")"
gb=() hb=()
mib=${MIB:-1024} bytes=$(( ${MIB:-1024} << 20 ))
for i in $(seq "$rounds"); do
  t0=$(now)
  qctl run -p "$A" -- sh -c "head -c $bytes /dev/zero | qube-call $B test.Echo | wc -c" >"$T/n"
  t=$(elapsed "$t0"); [ "$(cat "$T/n")" = "$bytes" ] || { say "guest to guest lost bytes: $(cat "$T/n")"; exit 1; }
  gb+=("$(echo "scale=1; $mib / $t" | bc)")
  t0=$(now)
  n=$(head -c "$bytes" /dev/zero | python3 "$QD_TOP/tests/lib/hybrid-cat.py" "$T/run/qubes/$B/vsock" 512 test.Echo | wc -c)
  t=$(elapsed "$t0"); [ "$n" = "$bytes" ] || { say "host to guest lost bytes: $n"; exit 1; }
  hb+=("$(echo "scale=1; $mib / $t" | bc)")
done
gbm=$(median "${gb[@]}") hbm=$(median "${hb[@]}")
say "RESULT $mib MiB through test.Echo (cat): guest to guest $gbm MiB/s, host to guest without the broker $hbm MiB/s, ratio $(ratio "$gbm" "$hbm")"
qctl global-prefs --default default_dispvm
qctl kill "$A" "$B" >/dev/null
