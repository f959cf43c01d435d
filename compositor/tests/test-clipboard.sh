#!/usr/bin/env bash
# Clipboard, Qubes' model, with real clients (the test client's data-device
# role) and the real policy library: copy from one qube (Ctrl+Shift+C),
# paste into another (Ctrl+Shift+V, policy allow), a paste the policy
# denies, a third qube that never sees anything, the global clipboard
# empty after the paste, a copy over the cap refused.  Keys go through the
# compositor's test keyboard (KEY), i.e. the real key-binding path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/policy"
cat >"$T/policy/50-clipboard.policy" <<'POL'
qube.ClipboardPaste * work personal allow
qube.ClipboardPaste * work vault deny
qube.ClipboardPaste * @anyvm @anyvm deny
POL
dom() { echo "\"$1\": {\"type\": \"AppVM\", \"tags\": [], \"icon\": \"red\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null}"; }
echo "{\"domains\": {\"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"icon\": \"black\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null}, $(dom work), $(dom personal), $(dom vault), $(dom third), $(dom big)}}" >"$T/system-info.json"

start_compositor --policy-dir "$T/policy" --system-info "$T/system-info.json" --clipboard-cap 64
for q in "work red" "personal green" "vault black" "third yellow" "big orange"; do ctl "QUBE-ADD $q" >/dev/null; done
sock() { echo "$T/qube-wayland-$1"; }

start_client src "$(sock work)" --title src --copy "secret from work"
wait_client src COPY-SET
start_client personal "$(sock personal)" --title dest --paste
wait_client personal READY
start_client vault "$(sock vault)" --title vault --paste
wait_client vault READY
start_client third "$(sock third)" --title third --paste
wait_client third READY
wait_client third "SELECTION none"
check "another qube is offered nothing of work's selection" bash -c "! grep -q PASTE '$T/client-personal.out' '$T/client-vault.out' '$T/client-third.out'"

# a second client of the same qube sees its qube's own selection
start_client work2 "$(sock work)" --title work2 --paste
wait_client work2 "PASTE secret from work"
check "the same qube's other client gets work's selection" client_says work2 "PASTE secret from work"

check "global clipboard empty at start" bash -c "ctl CLIPBOARD | grep -qx 'OK empty'"
ctl "FOCUS $(window_id '[work] src')" >/dev/null
ctl "KEY ctrl+shift+c" >/dev/null
wait_for 10 "the copy" bash -c "ctl CLIPBOARD | grep -q 'from=work bytes=16'"
check "Ctrl+Shift+C: global clipboard holds 16 bytes from work" bash -c "ctl CLIPBOARD | grep -qx 'OK from=work bytes=16'"
check "Ctrl+Shift+C: notice names the qube" grep -q "notice: Copied 16 bytes from \[work\]" "$T/compositor.log"

ctl "FOCUS $(window_id '[third] third')" >/dev/null
sleep 0.3
check "a focused third qube is offered nothing" bash -c "! grep -q PASTE '$T/client-third.out'"

ctl "FOCUS $(window_id '[vault] vault')" >/dev/null
ctl "KEY ctrl+shift+v" >/dev/null
wait_for 10 "the refusal" grep -q "Paste from \[work\] into \[vault\] refused" "$T/compositor.log"
sleep 0.3
check "policy deny: vault got nothing" bash -c "! grep -q PASTE '$T/client-vault.out'"
check "policy deny: the refusal names the rule" grep -q "refused: .*50-clipboard.policy:2" "$T/compositor.log"
check "policy deny: the global clipboard is kept" bash -c "ctl CLIPBOARD | grep -qx 'OK from=work bytes=16'"

ctl "FOCUS $(window_id '[personal] dest')" >/dev/null
ctl "KEY ctrl+shift+v" >/dev/null
wait_client personal "PASTE secret from work" 10
check "policy allow: personal got the text" client_says personal "PASTE secret from work"
check "after the paste the global clipboard is empty" bash -c "ctl CLIPBOARD | grep -qx 'OK empty'"
check "the paste notice" grep -q "notice: Pasted 16 bytes from \[work\] into \[personal\]" "$T/compositor.log"

ctl "FOCUS $(window_id '[third] third')" >/dev/null
ctl "KEY ctrl+shift+v" >/dev/null
sleep 0.3
check "third qube: never offered any text" bash -c "! grep -q PASTE '$T/client-third.out'"
check "third qube: paste with an empty clipboard does nothing" grep -q "notice: Paste: the global clipboard is empty" "$T/compositor.log"

# over the cap (64 bytes): refused, the clipboard stays empty
long=$(printf 'x%.0s' $(seq 100))
start_client big "$(sock big)" --title big --copy "$long"
wait_client big COPY-SET
ctl "KEY ctrl+shift+c" >/dev/null
wait_for 10 "the cap refusal" grep -q "Copy from \[big\] refused: over 64 bytes" "$T/compositor.log"
check "a copy over the cap is refused" bash -c "ctl CLIPBOARD | grep -qx 'OK empty'"
check "host clients cannot bind data-control (not offered at all)" bash -c "! WAYLAND_DISPLAY=wl-host '$QC_CLIENT' --list-globals | grep -q data_control"
check "compositor still running" compositor_alive
finish
