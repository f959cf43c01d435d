#!/usr/bin/env bash
# RPC call path benchmarks (docs/performance.md, "RPC call path"); each
# figure is a ratio against a baseline measured in the same run:
#   latency     qube-call of a service that exits at once (true), through
#               the broker and the target's agent, against fork+exec of the
#               same program directly
#   throughput  RPC_BENCH_BYTES (default 1 GiB) through a cat service and
#               back, against the same bytes through the same cat over plain
#               unix sockets; and, as the bound for any path of this shape,
#               through 1 and 3 relays that only move bytes (relay-chain)
# Real processes: qube-broker, a qube-agent per simulated qube, qube-call.
# Needs the programs in the environment as the tests do (rpc/meson.build).
set -euo pipefail
. "$(dirname "$0")/../tests/rpc/lib.sh"
: "${RPC_BENCH_HELPER:?}" "${RELAY_CHAIN:?}"
CALLS=${RPC_BENCH_CALLS:-300}
BYTES=${RPC_BENCH_BYTES:-1073741824}

write_system_info work personal
write_services
TRUE=$(type -P true)
ln -s "$TRUE" "$T/rpc/test.Now"
mkdir -p "$T/policy"
printf '%s\n' 'test.Now * work personal allow' 'test.Cat * work personal allow' \
	> "$T/policy/10-bench.policy"
for q in work personal; do start_agent "$q"; done
start_broker
qcall=("$QUBE_CALL" --transport "unix:$T/qubes/work" personal)
val() { sed -n "s/.* $1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

# warm-up
"$RPC_BENCH_HELPER" spawn 10 "${qcall[@]}" test.Now >/dev/null

base=$("$RPC_BENCH_HELPER" spawn "$CALLS" "$TRUE")
rpc=$("$RPC_BENCH_HELPER" spawn "$CALLS" "${qcall[@]}" test.Now)
echo "latency baseline (fork+exec true):       $base"
echo "latency qube-call -> broker -> agent:    $rpc"
bm=$(val median_us "$base"); rm_=$(val median_us "$rpc")
echo "latency ratio (median call / median fork+exec): $(awk -v a="$rm_" -v b="$bm" 'BEGIN { printf "%.1f", a / b }')"

tbase=$("$RPC_BENCH_HELPER" roundtrip "$BYTES" cat)
trpc=$("$RPC_BENCH_HELPER" roundtrip "$BYTES" "${qcall[@]}" test.Cat)
tr1=$("$RPC_BENCH_HELPER" roundtrip "$BYTES" "$RELAY_CHAIN" copy 1 cat)
tr3=$("$RPC_BENCH_HELPER" roundtrip "$BYTES" "$RELAY_CHAIN" copy 3 cat)
tr3s=$("$RPC_BENCH_HELPER" roundtrip "$BYTES" "$RELAY_CHAIN" splice 3 cat)
pct() { awk -v a="$(val mib_per_s "$1")" -v b="$(val mib_per_s "$tbase")" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "throughput baseline (cat over unix sockets):      $tbase"
echo "throughput qube-call -> broker -> agent -> cat:   $trpc"
echo "throughput bound, 1 byte-moving relay -> cat:     $tr1"
echo "throughput bound, 3 byte-moving relays -> cat:    $tr3"
echo "throughput bound, 3 splicing relays -> cat:       $tr3s"
echo "throughput ratio (RPC / baseline): $(pct "$trpc")"
echo "throughput ratio (3 copy relays / baseline, the bound): $(pct "$tr3")  (1 relay: $(pct "$tr1"), 3 splicing: $(pct "$tr3s"))"
echo "throughput ratio (RPC / 3 copy relays): $(awk -v a="$(val mib_per_s "$trpc")" -v b="$(val mib_per_s "$tr3")" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
