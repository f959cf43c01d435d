#!/usr/bin/env bash
# qubectl command line: --help at every level, --version, exit codes
# (0 success, 1 failure / lint errors, 2 usage), system-info errors.
# Also checks the shipped default policy (policy/90-default.policy).
#   qubectl-cli.sh QUBECTL POLICY_CASES_DIR DEFAULT_POLICY_FILE
set -euo pipefail
q=$1 cases=$2 default_policy=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/qubectl-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0

# expect STATUS DESCRIPTION PATTERN(stdout+stderr, grep -E; "" for any) CMD...
expect() {
  local want=$1 what=$2 pat=$3; shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit status $rc, want $want"; echo "$out" | sed 's/^/    /'; fails=$((fails + 1))
  elif [ -n "$pat" ] && ! grep -Eq -- "$pat" <<<"$out"; then
    echo "FAIL: $what: output does not match /$pat/"; echo "$out" | sed 's/^/    /'; fails=$((fails + 1))
  else
    echo "ok: $what"
  fi
}

mkdir "$work/p" "$work/bad"
echo 'x.S * @anyvm @anyvm allow' > "$work/p/10-a.policy"
echo 'x.S * @anyvm @anyvm allow nope=1' > "$work/bad/10-a.policy"
sys=$cases/default-system.json

expect 0 "--help" "policy +lint" "$q" --help
expect 0 "--version" "^qubectl [0-9]+\.[0-9]+" "$q" --version
expect 2 "no arguments" "usage: qubectl" "$q"
expect 2 "unknown group" "unknown command" "$q" frobnicate
expect 0 "group --help" "lint .*check" "$q" policy --help
expect 2 "group without command" "usage: qubectl policy" "$q" policy
expect 2 "unknown command" "unknown command" "$q" policy frob
expect 0 "lint --help" "usage: qubectl policy lint" "$q" policy lint --help
expect 0 "eval --help" "usage: qubectl policy eval" "$q" policy eval --help
expect 0 "lint valid" "^1 file, 1 rule, no errors$" "$q" policy lint --policy-dir "$work/p"
expect 0 "lint --policy-dir=DIR" "no errors" "$q" policy lint "--policy-dir=$work/p"
expect 1 "lint invalid" "bad/10-a.policy:1: invalid parameter nope=" "$q" policy lint --policy-dir "$work/bad"
expect 1 "lint missing dir" "cannot load policy directory" "$q" policy lint --policy-dir "$work/none"
expect 2 "lint unknown option" "unknown option" "$q" policy lint --bogus
expect 2 "lint extra argument" "unexpected argument" "$q" policy lint extra
expect 2 "lint option without value" "needs a value" "$q" policy lint --policy-dir
expect 0 "eval allow" "^result=allow" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" work vault x.S
expect 0 "eval options after arguments" "^result=allow" "$q" policy eval work vault x.S --policy-dir "$work/p" --system-info "$sys"
expect 0 "eval deny" "^result=deny$" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" work vault y.S
# --explain: FILE:LINE once, then the reason (which does not repeat it)
expect 0 "eval --explain names the rule once" "^$work/p/10-a\.policy:1: allowed by rule$" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" --explain work vault x.S
expect 0 "eval malformed service denied" "malformed request: invalid service name" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" --explain work vault .x
expect 0 "eval malformed target denied" "malformed request: invalid target" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" --explain work va/ult x.S
expect 0 "eval --explain no rule" "\(no rule\): no matching rule" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" --explain work vault y.S
expect 0 "eval invalid policy denies" "every request is denied" "$q" policy eval --policy-dir "$work/bad" --system-info "$sys" work vault x.S
expect 2 "eval without --system-info" "--system-info FILE is required" "$q" policy eval --policy-dir "$work/p" work vault x.S
expect 2 "eval missing arguments" "expected SOURCE TARGET" "$q" policy eval --policy-dir "$work/p" --system-info "$sys" work vault
expect 2 "eval -- then arguments" "unexpected argument" "$q" policy eval --system-info "$sys" -- a b c d
expect 1 "eval missing system info" "system info: .*No such file" "$q" policy eval --policy-dir "$work/p" --system-info "$work/none.json" work vault x.S
echo '{"domains": {"work": {"type": "Bogus"}}}' > "$work/sys-bad.json"
expect 1 "eval bad system info" "domains.work.type: expected one of AppVM\|TemplateVM\|StandaloneVM\|DispVM\|AdminVM" \
  "$q" policy eval --policy-dir "$work/p" --system-info "$work/sys-bad.json" work vault x.S
echo '{"domains": {"work": {"type": "AppVM"}' > "$work/sys-trunc.json"
expect 1 "eval truncated system info" "invalid JSON" "$q" policy eval --policy-dir "$work/p" --system-info "$work/sys-trunc.json" work vault x.S

mkdir "$work/default"
cp "$default_policy" "$work/default/"
expect 0 "default policy lints clean" "^1 file, [0-9]+ rules, no errors$" "$q" policy lint --policy-dir "$work/default"
expect 0 "default policy: Filecopy asks" "^result=ask" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" work personal qubes.Filecopy
expect 0 "default policy: ClipboardPaste asks" "^result=ask" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" work @default qube.ClipboardPaste
expect 0 "default policy: other services denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" work personal qubes.VMShell
expect 0 "default policy: calls to dom0 denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" work dom0 qubes.Filecopy
# template updates: a template's qube.UpdatesProxy goes to the host; no other
# qube's; dom0 may run qube.VMShell in a template only
expect 0 "default policy: a template's UpdatesProxy to @default goes to dom0" "^target=dom0$" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" debian-12 @default qube.UpdatesProxy
expect 0 "default policy: a template's UpdatesProxy to @adminvm allowed" "^target=dom0$" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" debian-12 @adminvm qube.UpdatesProxy
expect 0 "default policy: a template's UpdatesProxy to another qube denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" debian-12 work qube.UpdatesProxy
for src in work vault disp123; do
  expect 0 "default policy: UpdatesProxy from $src (not a template) denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" "$src" @default qube.UpdatesProxy
  expect 0 "default policy: UpdatesProxy from $src to @adminvm denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" "$src" @adminvm qube.UpdatesProxy
done
expect 0 "default policy: dom0's qube.VMShell in a template allowed" "^target=debian-12$" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" dom0 debian-12 qube.VMShell
expect 0 "default policy: dom0's qube.VMShell in an AppVM denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" dom0 work qube.VMShell
expect 0 "default policy: a template's qube.VMShell in another template denied" "^result=deny" "$q" policy eval --policy-dir "$work/default" --system-info "$sys" debian-12 debian-12 qube.VMShell

if [ "$fails" -ne 0 ]; then
  echo "qubectl-cli: $fails failed"
  exit 1
fi
echo "qubectl-cli: all passed"
