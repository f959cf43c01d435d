#!/usr/bin/env bash
# Policy reload: the broker watches the policy directory and the system-info
# file (inotify); a change gives new decisions, a broken policy denies
# everything with the reason logged, and fixing it restores service.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

write_system_info work personal
write_services
mkdir -p "$T/policy"
echo 'test.Echo * work personal allow' > "$T/policy/10-test.policy"
for q in work personal; do start_agent "$q"; done
start_broker

try() { echo x | call work personal test.Echo >/dev/null 2>&1 && echo 0 || echo $?; }
gen_after() { [ "$(policy_generation)" -gt "$1" ]; }
# change_policy COMMAND...: runs it, waits for the reload it causes
change() {
	local g
	g=$(policy_generation)
	"$@"
	wait_for 20 "policy reload after: $*" gen_after "$g"
}
put() { printf '%s\n' "$2" > "$T/$1.tmp" && mv "$T/$1.tmp" "$T/policy/$1"; }

check "initial policy allows" test "$(try)" = 0

change put 10-test.policy 'test.Echo * work personal deny'
check "changed to deny (rename into place): refused" test "$(try)" = 126

# files that are not *.policy (editor temporaries) do not cause a reload
# (checked right after a reload the test waited for, so no reload from
# the set-up can still be pending)
g=$(policy_generation)
echo 'test.Echo * work personal allow' > "$T/policy/10-test.policy.swp"
sleep 0.5
check "a non-.policy file in the directory causes no reload" test "$(policy_generation)" = "$g"
check "... and decides nothing: still refused" test "$(try)" = 126
rm -f "$T/policy/10-test.policy.swp"

change put 10-test.policy 'test.Echo * work personal allow'
check "changed back to allow: allowed" test "$(try)" = 0

# an earlier file takes precedence (C-locale order, first match wins)
change put 05-first.policy 'test.Echo * work personal deny'
check "new file sorted first: its deny wins" test "$(try)" = 126
change rm "$T/policy/05-first.policy"
check "file removed: allowed again" test "$(try)" = 0

# edited in place (no rename)
change sh -c "echo 'test.Echo * work personal deny' > '$T/policy/10-test.policy'"
check "edited in place: refused" test "$(try)" = 126
# (an in-place write is several events; wait for its final effect so that
# no late reload from it overlaps the next step)
echo 'test.Echo * work personal allow' > "$T/policy/10-test.policy"
allowed() { [ "$(try)" = 0 ]; }
wait_for 20 "in-place edit back to allow" allowed
sleep 0.3

# broken: everything denied, with the reason logged
change put 20-broken.policy 'test.Echo * work personal maybe'
check "broken policy: the allowed call is refused" test "$(try)" = 126
check "broken policy: logged as invalid with file and line" \
	grep -q "policy generation [0-9]* INVALID, denying every call: invalid policy: .*20-broken.policy:1" "$T/broker.log"
check "broken policy: the refused call names the reason" \
	grep -q 'decision=deny result=refused rule=- reason="invalid policy: .*20-broken.policy:1' "$T/broker.log"
change put 20-broken.policy '# fixed'
check "fixed: allowed again" test "$(try)" = 0
check "fixed: logged as loaded" bash -c "tail -n 5 '$T/broker.log' | grep -q 'policy generation [0-9]* loaded'"

# system info: the source must be a known qube; a broken file denies all
change write_system_info personal
check "source removed from the system info: refused" test "$(try)" = 126
check "  reason: not in the system info" grep -q 'reason="source work is not in the system info"' "$T/broker.log"
change write_system_info work personal
check "source back in the system info: allowed" test "$(try)" = 0
change sh -c "echo '{\"domains\": [' > '$T/system-info.json'"
check "broken system info: refused" test "$(try)" = 126
check "  logged with the file name" grep -q "INVALID, denying every call: $T/system-info.json: invalid system info" "$T/broker.log"
change write_system_info work personal
check "system info fixed: allowed" test "$(try)" = 0

# includes: files and directories the policy pulls in are watched too,
# wherever they are (Qubes keeps them in policy.d/include/, which a watch
# on policy.d alone does not see)
mkdir -p "$T/policy/include" "$T/elsewhere/more"
echo 'test.Echo * work personal allow' > "$T/policy/include/echo"
change put 05-inc.policy '!include include/echo'
check "include in a subdirectory: allowed" test "$(try)" = 0
change sh -c "echo 'test.Echo * work personal deny' > '$T/policy/include/echo'"
check "the included file in policy.d/include/ changed: refused" test "$(try)" = 126
change sh -c "echo 'test.Echo * work personal allow' > '$T/policy/include/echo'"
check "changed back: allowed" test "$(try)" = 0

# an !include-dir outside the policy directory: a new file there counts
change put 04-dir.policy "!include-dir $T/elsewhere/more"
check "empty include-dir elsewhere: still allowed" test "$(try)" = 0
change sh -c "echo 'test.Echo * work personal deny' > '$T/elsewhere/more/10-x.policy'"
check "a new *.policy in an include-dir elsewhere: refused" test "$(try)" = 126
change rm "$T/elsewhere/more/10-x.policy"
check "... removed again: allowed" test "$(try)" = 0

# a missing include target (in a directory that does not exist yet) makes
# the policy invalid; creating it is noticed without SIGHUP
change put 03-later.policy "!include $T/later/dir/rules"
check "include of a missing file: invalid, refused" test "$(try)" = 126
change mkdir -p "$T/later/dir"
change sh -c "echo 'test.Echo * work personal allow' > '$T/later/dir/rules'"
check "the missing include appeared (its directory too): allowed" test "$(try)" = 0
rm -f "$T/policy/03-later.policy" "$T/policy/04-dir.policy" "$T/policy/05-inc.policy"
wait_for 20 "includes removed" allowed
sleep 0.3

# SIGHUP reloads too
change kill -HUP "$BROKER_PID"
check "SIGHUP: reloaded, still running" kill -0 "$BROKER_PID"
check "SIGHUP: still allowed" test "$(try)" = 0
finish
