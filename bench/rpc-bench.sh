#!/usr/bin/env bash
# RPC call path benchmarks (docs/performance.md, "RPC call path"); each
# figure is a ratio against a baseline measured in the same run:
#   latency     qube-call of a service that exits at once (true), through
#               the broker and the target's agent, against fork+exec of the
#               same program directly
#   throughput  RPC_BENCH_BYTES (default 1 GiB) through a cat service and
#               back, against the same bytes through the same cat over plain
#               unix sockets
# Real processes: qube-broker, a qube-agent per simulated qube, qube-call.
# Needs the programs in the environment as the tests do (rpc/meson.build).
set -euo pipefail
. "$(dirname "$0")/../tests/rpc/lib.sh"
: "${RPC_BENCH_HELPER:?}"
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
echo "throughput baseline (cat over unix sockets): $tbase"
echo "throughput qube-call -> broker -> agent -> cat: $trpc"
tb=$(val mib_per_s "$tbase"); tr=$(val mib_per_s "$trpc")
echo "throughput ratio (RPC / baseline): $(awk -v a="$tr" -v b="$tb" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
