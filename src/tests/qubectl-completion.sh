#!/usr/bin/env bash
# The bash completion (completion/qubectl.bash), sourced in bash, against
# the build's qubectl and a scripted fake qubed: COMPREPLY for commands,
# subcommands, options, option values, qube names, property names,
# QUBE:VOLUME.
#   qubectl-completion.sh QUBECTL COMPLETION_FILE FAKE_QUBESD
set -euo pipefail
q=$1 compfile=$2 fake=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/qubectl-comp.XXXXXX")
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
sock=$work/qubed.sock
cat > "$work/rules.json" <<'JSON'
[
 {"header": "admin.vm.List+ dom0 name dom0",
  "reply": "0\u0000dom0 class=AdminVM state=Running\nwork class=AppVM state=Running\nwordy class=AppVM state=Halted\nvault class=AppVM state=Halted\n"},
 {"header": "admin.vm.property.GetAll+ dom0 name work",
  "reply": "0\u0000autostart default=True type=bool False\nmemory default=True type=int 400\nmaxmem default=True type=int 4000\n"},
 {"header": "admin.property.GetAll+ dom0 name dom0",
  "reply": "0\u0000default_template default=False type=vm fedora\ndefault_netvm default=True type=vm \n"},
 {"header": "admin.vm.tag.List+ dom0 name work", "reply": "0\u0000t1\nt2\n"}
]
JSON
python3 "$fake" --socket "$sock" --script "$work/rules.json" &
fake_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "FAIL: the fake qubed did not start"; exit 1; }

# shellcheck source=/dev/null
source "$compfile"
fails=0
# expect "WORDS..." "EXPECTED REPLIES (sorted, space-separated)"; the last
# word is the one being completed ("" for a new word)
expect() {
  local line=$1 want=$2 got
  read -r -a COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS=("$q" "${COMP_WORDS[@]:1}")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _qubectl || true
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
  if [ "$got" = "$want" ]; then
    echo "ok: '$line' -> $want"
  else
    echo "FAIL: '$line': got '$got', want '$want'"; fails=$((fails + 1))
  fi
}
# contains "WORDS" WORD...: every WORD is among the replies
contains() {
  local line=$1; shift
  read -r -a COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS=("$q" "${COMP_WORDS[@]:1}")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _qubectl || true
  for w in "$@"; do
    if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$w"; then
      echo "FAIL: '$line': '$w' not in: ${COMPREPLY[*]}"; fails=$((fails + 1)); return
    fi
  done
  echo "ok: '$line' has $*"
}

S="--socket $sock"
contains "qubectl " ls start shutdown prefs global-prefs volume template policy events --socket
expect "qubectl $S st" "start"
expect "qubectl $S sh" "shutdown"
expect "qubectl $S volume " "info list resize revert"
expect "qubectl $S policy " "ask-agent eval lint"
expect "qubectl $S start w" "wordy work"
expect "qubectl $S start " "vault wordy work"
expect "qubectl $S prefs work m" "maxmem memory"
expect "qubectl $S prefs wo" "wordy work"
expect "qubectl $S global-prefs default_" "default_netvm default_template"
expect "qubectl $S tags work " "add del list"
expect "qubectl $S tags work del " "t1 t2"
contains "qubectl $S shutdown --" --wait --timeout --all --force --help
expect "qubectl $S create --label b" "black blue"
expect "qubectl $S create --class T" "TemplateVM"
expect "qubectl $S ls --format " "json names table"
expect "qubectl $S volume info wor" "wordy: work:"
expect "qubectl $S volume info work : pri" "private"
expect "qubectl $S volume resize work:pr" "work:private"
expect "qubectl $S clone work " ""
expect "qubectl $S template " "import update"
expect "qubectl $S template update w" "wordy work"
expect "qubectl $S template update work " ""
contains "qubectl $S template update --" --keep-running --call-dir --help

if [ "$fails" -ne 0 ]; then echo "qubectl-completion: $fails failed"; exit 1; fi
echo "qubectl-completion: all passed"
