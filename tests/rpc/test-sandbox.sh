#!/usr/bin/env bash
# Privilege separation: the broker's guest-facing process runs without
# privileges under its seccomp allow-list, and a syscall outside the list
# kills it with SIGSYS (--selftest-seccomp makes it call openat() right
# after installing the filter).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

write_system_info work
write_services
mkdir -p "$T/policy" "$T/qubes/work"
echo 'test.Echo * work work allow' > "$T/policy/10-test.policy"

# 1. the forbidden syscall kills the sandbox with SIGSYS
: > "$T/broker.log"
"$QUBE_BROKER" --policy-dir "$T/policy" --system-info "$T/system-info.json" \
	--qubes-dir "$T/qubes" --log "$T/broker.log" --selftest-seccomp && rc=0 || rc=$?
check "--selftest-seccomp: broker reports success (exit 0)" test "$rc" = 0
check "sandbox killed by SIGSYS" grep -q 'sandbox process [0-9]* killed by signal 31 (SIGSYS)' "$T/broker.log"
check "the forbidden call did not return" bash -c "! grep -q 'was NOT blocked' '$T/broker.log'"

# 2. a normal sandbox: unprivileged, no new privileges, no capabilities, filter on
start_broker
SB=$(broker_sandbox_pid)
st="/proc/$SB/status"
check "sandbox has NoNewPrivs" grep -q '^NoNewPrivs:[[:space:]]*1' "$st"
check "sandbox is in seccomp filter mode" grep -q '^Seccomp:[[:space:]]*2' "$st"
check "sandbox has no effective capabilities" grep -q '^CapEff:[[:space:]]*0000000000000000' "$st"
check "sandbox has no permitted capabilities" grep -q '^CapPrm:[[:space:]]*0000000000000000' "$st"
if [ "$(id -u)" = 0 ]; then
	nobody=$(id -u nobody)
	check "sandbox runs as nobody (uid $nobody), real/effective/saved/fs" \
		grep -q "^Uid:[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody\$" "$st"
	check "sandbox has no supplementary groups" grep -q '^Groups:[[:space:]]*$' "$st"
else
	echo "# not root: the uid drop is not exercised"
fi
nfd=$(fd_count "$SB")
check "sandbox holds only its monitor socket, log and epoll ($nfd fds)" test "$nfd" -le 6
finish
