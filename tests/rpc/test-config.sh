#!/usr/bin/env bash
# qube-broker's command line and configuration files: bad input gets a
# clear error naming the option, file and line, and nothing starts.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

write_system_info work
mkdir -p "$T/policy" "$T/qubes/work"
echo 'test.Echo * work work allow' > "$T/policy/10-test.policy"
base=(--policy-dir "$T/policy" --system-info "$T/system-info.json")

# expect_fail CODE PATTERN ARGS...: exits CODE within 30 s, stderr or log matches
expect_fail() {
	local code=$1 pat=$2; shift 2
	local rc=0
	: > "$T/err"
	timeout 30 "$QUBE_BROKER" "$@" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" = "$code" ] && grep -q -- "$pat" "$T/err" "$T/out" "$T/log" 2>/dev/null; then
		ok "rejected ($rc): $*"
	else
		not_ok "expected exit $code and '$pat' for: $* (got $rc: $(cat "$T/err"))"
	fi
}

"$QUBE_BROKER" --help > "$T/help"
check "--help prints the options" grep -q -- '--start-socket PATH' "$T/help"
"$QUBE_BROKER" --version | grep -q '^qube-broker ' && ok "--version" || not_ok "--version"

expect_fail 2 '--system-info FILE is required' --qubes-dir "$T/qubes"
expect_fail 2 'exactly one of --qubes-dir' "${base[@]}"
expect_fail 2 'exactly one of --qubes-dir' "${base[@]}" --qubes-dir "$T/qubes" --vsock-map /dev/null
expect_fail 2 '--max-total: expected a number from 1 to 65536, got "abc"' "${base[@]}" --qubes-dir "$T/qubes" --max-total abc
expect_fail 2 '--handshake-timeout: expected a number' "${base[@]}" --qubes-dir "$T/qubes" --handshake-timeout -5
expect_fail 2 'is larger than --max-total' "${base[@]}" --qubes-dir "$T/qubes" --max-per-qube 50 --max-total 10
mkdir -p "$T/qubes/adminvm"
expect_fail 2 'is in a qube.s directory of --qubes-dir' "${base[@]}" --qubes-dir "$T/qubes" --adminvm-socket "$T/qubes/adminvm/vsock"
expect_fail 2 'is in a qube.s directory of --qubes-dir' "${base[@]}" --qubes-dir "$T/qubes" --adminvm-socket "$T/qubes/../qubes/not-yet/vsock"
expect_fail 2 'unexpected argument "extra"' "${base[@]}" --qubes-dir "$T/qubes" extra
expect_fail 1 "--log $T/no/such/dir/log" "${base[@]}" --qubes-dir "$T/qubes" --log "$T/no/such/dir/log"
if [ "$(id -u)" = 0 ]; then
	expect_fail 2 '--user no-such-user-here: no such user' "${base[@]}" --qubes-dir "$T/qubes" --user no-such-user-here
	expect_fail 2 '--user root: must not be root' "${base[@]}" --qubes-dir "$T/qubes" --user root
fi
printf '# map\n5 work\n7 bad/name\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:3: expected \"CID NAME\"" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
printf '2 work\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:1: expected \"CID NAME\" (CID >= 3" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
printf '5 work\n6 personal\n5 vault\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:3: CID 5 given twice" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
printf '5 work\n6 work\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:2: qube work given twice" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
# the host is not a qube: no CID may be called dom0 (issue 9)
printf '5 work\n6 dom0\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:2: dom0 is the admin qube (the host), not a qube with a CID" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
printf ' -5 work\n' > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:1: expected \"CID NAME\"" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
{ printf '5 '; head -c 300 /dev/zero | tr '\0' a; echo; } > "$T/vsock.map"
: > "$T/log"
expect_fail 1 "$T/vsock.map:1: line too long" "${base[@]}" --vsock-map "$T/vsock.map" --log "$T/log"
expect_fail 2 '--ask-group needs --ask-socket' "${base[@]}" --qubes-dir "$T/qubes" --ask-group nogroup
expect_fail 2 '--ask-group no-such-group-here: no such group' "${base[@]}" --qubes-dir "$T/qubes" --ask-socket "$T/a.sock" --ask-group no-such-group-here
expect_fail 1 "ask socket $T/no/dir/ask.sock" "${base[@]}" --qubes-dir "$T/qubes" --ask-socket "$T/no/dir/ask.sock"

# a policy directory that does not exist: runs, denies everything, says why
rm -r "$T/policy"
start_broker
check "missing policy directory: logged, everything denied" \
	grep -q "INVALID, denying every call: $T/policy: cannot load policy directory" "$T/broker.log"
finish
