#!/usr/bin/env bash
# qubectl policy ask-agent against the real broker's ask interface, with
# real agents (simulated qubes) and real qube-call: the agent runs on a
# pty and is answered like a user would (tests/ask-agent-drive.py).
#   ask-agent-test.sh QUBECTL   (QUBE_BROKER, QUBE_AGENT, QUBE_CALL in the environment)
set -euo pipefail
QUBECTL=$1
. "$(dirname "$0")/../../tests/rpc/lib.sh"
write_system_info work personal vault
write_services
mkdir -p "$T/policy"
cat > "$T/policy/10-ask.policy" <<'P'
test.Echo  *  work  @anyvm  ask default_target=personal
P
for q in work personal vault; do start_agent "$q"; done
start_broker --ask-socket "$T/ask.sock" --ask-timeout 30000
python3 "$(dirname "$0")/ask-agent-drive.py" "$QUBECTL" "$T/ask.sock" "$QUBE_CALL" "$T/qubes/work" && rc=0 || rc=$?
[ "$rc" = 0 ] || { dump_logs; exit 1; }
