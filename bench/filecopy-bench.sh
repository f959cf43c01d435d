#!/usr/bin/env bash
# File copy benchmarks (docs/performance.md, "File copy"); every figure is a
# ratio against a baseline measured in the same run:
#   big    one 1 GiB file: qube-copy-to from work to personal, against the
#          same bytes sent by qube-call to a raw "cat > file" service in
#          personal over the same path (work's agent socket, qube-broker,
#          personal's agent)
#   small  10,000 files of 4 KiB: qube-copy-to of the directory, against
#          their 40 MB of data as one stream to the same cat service
#   bound  for both: the same files as a tar stream through the same path
#          into "tar -x" in personal, against the same raw cat: what any
#          receiver that creates the files one by one can reach here
#   cpu    the unpacker's CPU (user+sys) per GiB received (fed by the
#          sender through a pipe), against tar -x of the same tree (fed by
#          tar -c) (big file and small files, each)
# Real processes: qube-broker, one qube-agent per simulated qube (unix
# sockets, as tests/rpc/lib.sh), qube-call, the qube-copy-to and
# qube-filecopy-receive of the build.  Runs alternate the sides; the
# script prints every run and the medians.  Both qubes' files are on tmpfs
# (/dev/shm, or QFC_BENCH_DIR) so that the machine's shared disk is not
# what is measured; about 2.1 GiB are used at the peak.
#   QFC_BENCH_RUNS (5)  QFC_BENCH_BIG_MIB (1024)  QFC_BENCH_FILES (10000)
set -euo pipefail
: "${RPC_LIB:?}" "${QFC_BUILD_DIR:?}" "${QFC_RECEIVE:?}"
if [ -n "${QFC_BENCH_DIR:-}" ]; then
	export TMPDIR=$QFC_BENCH_DIR
elif [ -d /dev/shm ] && [ -w /dev/shm ] &&
	[ "$(df -k --output=avail /dev/shm | tail -1)" -gt $((3 << 20)) ]; then
	export TMPDIR=/dev/shm
fi
. "$RPC_LIB"
RUNS=${QFC_BENCH_RUNS:-5}
BIG_MIB=${QFC_BENCH_BIG_MIB:-1024}
NFILES=${QFC_BENCH_FILES:-10000}
BIN=$QFC_BUILD_DIR
chmod 0755 "$T"

AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
fi
owner() { if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup "$@"; fi; }

write_system_info work personal
mkdir -p "$T/rpc" "$T/policy"
ln -s "$QFC_RECEIVE" "$T/rpc/qube.Filecopy"
printf '#!/bin/sh\nexec cat > "$HOME/raw.bin"\n' > "$T/rpc/bench.Cat"
printf '#!/bin/sh\nmkdir "$HOME/untar" && exec tar -C "$HOME/untar" -xf -\n' > "$T/rpc/bench.Untar"
chmod 0755 "$T/rpc/bench.Cat" "$T/rpc/bench.Untar"
printf '%s\n' 'qube.Filecopy * work personal allow' 'bench.Cat * work personal allow' \
	'bench.Untar * work personal allow' > "$T/policy/10-bench.policy"
start_qube() {
	local n=$1
	mkdir -p "$T/qubes/$n" "$T/home/$n"
	owner "$T/qubes/$n" "$T/home/$n"
	HOME=$T/home/$n QFC_CONF=/dev/null "${AS[@]}" "$QUBE_AGENT" \
		--transport "unix:$T/qubes/$n" --rpc-dir "$T/rpc" --name "$n" >>"$T/agent-$n.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $n socket" test -S "$T/qubes/$n/vsock"
	# the broker connects only to root's sockets (qube-vsockd's in a qube)
	if [ "$(id -u)" = 0 ]; then chown root:root "$T/qubes/$n/vsock"; fi
}
start_qube work
start_qube personal
start_broker
export QUBE_CALL QUBE_CALL_TRANSPORT=unix:$T/qubes/work
HOMEP=$T/home/personal

# the data
mkdir -p "$T/src/small"
head -c "$((BIG_MIB << 20))" /dev/urandom > "$T/src/big"
python3 - "$T/src/small" "$NFILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%02d" % (i % 50))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(os.urandom(4096))
PY
find "$T/src/small" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat > "$T/src/small.cat"
BIG_BYTES=$(stat -c %s "$T/src/big")
SMALL_BYTES=$(stat -c %s "$T/src/small.cat")

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
clean_target() { rm -rf "$HOMEP/QubesIncoming" "$HOMEP/raw.bin" "$HOMEP/untar"; sync; }
# fc NAME: qube-copy-to personal NAME from $T/src; prints seconds
fc() {
	clean_target
	local t0 t; t0=$(now)
	(cd "$T/src" && "$BIN/qube-copy-to" --quiet personal "$1") </dev/null
	t=$(since "$t0")
	[ "$(du -sb --apparent-size "$HOMEP/QubesIncoming/work/$1" | cut -f1)" -ge \
	  "$(stat -c %s "$T/src/$1" 2>/dev/null || echo 0)" ] ||
		{ echo "the copy of $1 is incomplete" >&2; return 1; }
	echo "$t"
}
# raw FILE: FILE through qube-call to bench.Cat; prints seconds
raw() {
	clean_target
	local t0 t; t0=$(now)
	"$QUBE_CALL" --transport "$QUBE_CALL_TRANSPORT" personal bench.Cat <"$1" >/dev/null
	t=$(since "$t0")
	[ "$(stat -c %s "$HOMEP/raw.bin" 2>/dev/null)" = "$(stat -c %s "$1")" ] ||
		{ echo "the raw cat run did not deliver all of $1" >&2; return 1; }
	echo "$t"
}
# untar NAME: tar -c of $T/src/NAME through qube-call into tar -x; prints seconds
untar() {
	clean_target
	local t0 t; t0=$(now)
	tar -C "$T/src" -cf - "$1" | "$QUBE_CALL" --transport "$QUBE_CALL_TRANSPORT" personal bench.Untar >/dev/null
	t=$(since "$t0")
	[ -e "$HOMEP/untar/$1" ] || { echo "the tar run did not deliver $1" >&2; return 1; }
	echo "$t"
}
median() { LC_ALL=C sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# warm-up (page cache, first exec of everything)
fc big >/dev/null; raw "$T/src/big" >/dev/null; untar small >/dev/null

declare -A T_
for what in big small; do
	T_[fc_$what]=""; T_[raw_$what]=""; T_[tar_$what]=""; T_[rf_$what]=""; T_[rx_$what]=""
done
for run in $(seq "$RUNS"); do
	for what in big small; do
		src=$T/src/$what; [ "$what" = small ] && src=$T/src/small.cat
		bytes=$BIG_BYTES; [ "$what" = small ] && bytes=$SMALL_BYTES
		case $((run % 3)) in
			1) f=$(fc "$what"); r=$(raw "$src"); x=$(untar "$what") ;;
			2) r=$(raw "$src"); x=$(untar "$what"); f=$(fc "$what") ;;
			0) x=$(untar "$what"); f=$(fc "$what"); r=$(raw "$src") ;;
		esac
		T_[fc_$what]+="$f "; T_[raw_$what]+="$r "; T_[tar_$what]+="$x "
		T_[rf_$what]+="$(ratio "$r" "$f") "; T_[rx_$what]+="$(ratio "$r" "$x") "
		echo "run $run $what: qube-copy-to $f s ($(mbs "$bytes" "$f") MB/s), raw cat $r s ($(mbs "$bytes" "$r") MB/s), ratio $(ratio "$r" "$f"); tar through the same path $x s (ratio $(ratio "$r" "$x"))"
	done
done
clean_target
# a final filecopy check: the last copy of the small tree arrived whole
fc small >/dev/null
got=$(find "$HOMEP/QubesIncoming/work/small" -type f | wc -l)
[ "$got" = "$NFILES" ] || { echo "small: $got of $NFILES files arrived" >&2; exit 1; }
clean_target
for what in big small; do
	bytes=$BIG_BYTES; [ "$what" = small ] && bytes=$SMALL_BYTES
	f=$(tr ' ' '\n' <<<"${T_[fc_$what]}" | grep . | median)
	r=$(tr ' ' '\n' <<<"${T_[raw_$what]}" | grep . | median)
	x=$(tr ' ' '\n' <<<"${T_[tar_$what]}" | grep . | median)
	rf=$(tr ' ' '\n' <<<"${T_[rf_$what]}" | grep . | median)
	rx=$(tr ' ' '\n' <<<"${T_[rx_$what]}" | grep . | median)
	echo "median of the per-run ratios, $what: filecopy / raw $rf; tar through the path / raw $rx"
	echo "median $what ($bytes bytes): qube-copy-to $f s = $(mbs "$bytes" "$f") MB/s; raw cat $r s = $(mbs "$bytes" "$r") MB/s; ratio (filecopy rate / raw rate) $(ratio "$r" "$f"); bound: tar -c | path | tar -x $x s = $(mbs "$bytes" "$x") MB/s, ratio $(ratio "$r" "$x")"
done

# -- CPU of the unpacker per GiB against tar -x, same trees, same user
mkdir -p "$T/x"; owner "$T/x"
cpu() { # cpu PRODUCER COMMAND...: user+sys seconds of COMMAND reading what PRODUCER writes
	local producer=$1; shift
	rm -rf "$T/x"/* ; sync
	$producer | python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.4f" % (r.ru_utime + r.ru_stime))
' "$T/cpu" "$@"
	cat "$T/cpu"
}
send_stream() { (cd "$T/src" && "$BIN/qube-filecopy-send" --stdio "$what" </dev/null 2>/dev/null) || true; }
tar_stream() { tar -C "$T/src" -cf - "$what"; }
declare -A C_
for run in $(seq "$RUNS"); do
	for what in big small; do
		bytes=$BIG_BYTES; [ "$what" = small ] && bytes=$SMALL_BYTES
		if [ $((run % 2)) = 1 ]; then
			u=$(cpu send_stream env QUBE_REMOTE=work QFC_CONF=/dev/null "${AS[@]}" \
				"$QFC_RECEIVE" --incoming "$T/x")
			x=$(cpu tar_stream "${AS[@]}" tar -C "$T/x" --no-same-owner -xf -)
		else
			x=$(cpu tar_stream "${AS[@]}" tar -C "$T/x" --no-same-owner -xf -)
			u=$(cpu send_stream env QUBE_REMOTE=work QFC_CONF=/dev/null "${AS[@]}" \
				"$QFC_RECEIVE" --incoming "$T/x")
		fi
		C_[u_$what]+="$u "; C_[t_$what]+="$x "; C_[r_$what]+="$(ratio "$u" "$x") "
		echo "run $run cpu $what: unpacker $u s, tar -x $x s ($(awk -v a="$u" -v b="$bytes" 'BEGIN { printf "%.2f", a / (b / 1073741824) }') vs $(awk -v a="$x" -v b="$bytes" 'BEGIN { printf "%.2f", a / (b / 1073741824) }') s per GiB), ratio $(ratio "$u" "$x")"
	done
done
for what in big small; do
	bytes=$BIG_BYTES; [ "$what" = small ] && bytes=$SMALL_BYTES
	u=$(tr ' ' '\n' <<<"${C_[u_$what]}" | grep . | median)
	x=$(tr ' ' '\n' <<<"${C_[t_$what]}" | grep . | median)
	echo "median of the per-run cpu ratios, $what: $(tr ' ' '\n' <<<"${C_[r_$what]}" | grep . | median)"
	echo "median cpu $what: unpacker $(awk -v a="$u" -v b="$bytes" 'BEGIN { printf "%.2f", a / (b / 1073741824) }') s/GiB, tar -x $(awk -v a="$x" -v b="$bytes" 'BEGIN { printf "%.2f", a / (b / 1073741824) }') s/GiB, ratio (unpacker / tar) $(ratio "$u" "$x")"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
