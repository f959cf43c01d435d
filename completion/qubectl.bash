# bash completion for qubectl (qube): commands, options (read from each
# command's --help), qube names (qubectl ls --format names), property
# names (qubectl prefs QUBE / qubectl global-prefs).
# SPDX-License-Identifier: GPL-2.0-or-later

# the qubectl command line with its --socket option, for the lookups
_qubectl_run() {
  local -a cmd=("${_qubectl_prog:-qubectl}")
  [ -n "${_qubectl_socket:-}" ] && cmd+=(--socket "$_qubectl_socket")
  "${cmd[@]}" "$@" 2>/dev/null
}

_qubectl_qubes() {
  _qubectl_run ls --format names
}

_qubectl() {
  local cur prev words cword
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
  _qubectl_prog=${COMP_WORDS[0]}
  _qubectl_socket=

  # skip the global options; find the command (and its group's subcommand)
  local i=1 cmd= sub= start
  while [ "$i" -lt "$COMP_CWORD" ]; do
    case ${COMP_WORDS[i]} in
      --socket) _qubectl_socket=${COMP_WORDS[i+1]}; i=$((i + 2)); continue ;;
      --socket=*) _qubectl_socket=${COMP_WORDS[i]#--socket=}; i=$((i + 1)); continue ;;
      -*) i=$((i + 1)); continue ;;
    esac
    break
  done
  if [ "$i" -ge "$COMP_CWORD" ]; then
    if [ "$prev" = --socket ]; then
      COMPREPLY=($(compgen -f -- "$cur"))
      return
    fi
    local all
    all=$("$_qubectl_prog" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\).*/\1/p' | sort -u)
    COMPREPLY=($(compgen -W "$all --socket --help --version" -- "$cur"))
    return
  fi
  cmd=${COMP_WORDS[i]}
  start=$((i + 1))
  case $cmd in
    volume|template|policy)
      if [ "$start" -eq "$COMP_CWORD" ]; then
        local subs
        subs=$("$_qubectl_prog" "$cmd" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return
      fi
      sub=${COMP_WORDS[start]}
      start=$((start + 1))
      ;;
  esac

  # option values
  case $prev in
    --class|-C) COMPREPLY=($(compgen -W "AppVM TemplateVM StandaloneVM DispVM" -- "$cur")); return ;;
    --label|-l) COMPREPLY=($(compgen -W "red orange yellow green gray blue purple black" -- "$cur")); return ;;
    --template|-t) COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur")); return ;;
    --format|-o) COMPREPLY=($(compgen -W "table json names" -- "$cur")); return ;;
    --kernel|-k|--initrd|-i|--root|-r|--system-info) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --policy-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --timeout|--property|-p|--fields|--help-property) return ;;
  esac

  if [[ $cur == -* ]]; then
    local opts
    opts=$("$_qubectl_prog" $cmd $sub --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
    COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
    return
  fi

  # the positional arguments before this one (options and their values skipped)
  local -a pos=()
  local j=$start
  while [ "$j" -lt "$COMP_CWORD" ]; do
    case ${COMP_WORDS[j]} in
      --class|-C|--label|-l|--template|-t|--format|-o|--kernel|-k|--initrd|-i|--root|-r|\
      --timeout|--property|-p|--fields|--help-property|--policy-dir|--system-info) j=$((j + 2)); continue ;;
      -*) j=$((j + 1)); continue ;;
    esac
    pos+=("${COMP_WORDS[j]}")
    j=$((j + 1))
  done
  local n=${#pos[@]}

  case $cmd${sub:+ $sub} in
    start|shutdown|kill|pause|unpause|remove|"volume list")
      COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur")) ;;
    clone|"template update")
      [ "$n" -eq 0 ] && COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur")) ;;
    prefs)
      if [ "$n" -eq 0 ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur"))
      elif [ "$n" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_run prefs "${pos[0]}" | awk '{print $1}')" -- "$cur"))
      fi ;;
    global-prefs)
      [ "$n" -eq 0 ] && COMPREPLY=($(compgen -W "$(_qubectl_run global-prefs | awk '{print $1}')" -- "$cur")) ;;
    tags)
      if [ "$n" -eq 0 ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur"))
      elif [ "$n" -eq 1 ]; then
        COMPREPLY=($(compgen -W "list add del" -- "$cur"))
      elif [ "${pos[1]}" = del ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_run tags "${pos[0]}")" -- "$cur"))
      fi ;;
    features)
      if [ "$n" -eq 0 ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_qubes)" -- "$cur"))
      elif [ "$n" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$(_qubectl_run features "${pos[0]}" | awk '{print $1}')" -- "$cur"))
      fi ;;
    "volume info"|"volume resize"|"volume revert")
      # QUBE:VOLUME; bash splits words at ':' (COMP_WORDBREAKS), so the
      # colon may be a word of its own
      if [ "$prev" = : ] && [ "$n" -le 2 ]; then
        COMPREPLY=($(compgen -W "root private volatile kernel" -- "$cur"))
      elif [ "$cur" = : ] && [ "$n" -le 1 ]; then
        COMPREPLY=(:root :private :volatile :kernel)
      elif [ "$n" -eq 0 ]; then
        if [[ $cur == *:* ]]; then
          local q=${cur%%:*}
          COMPREPLY=($(compgen -P "$q:" -W "root private volatile kernel" -- "${cur#*:}"))
        else
          COMPREPLY=($(compgen -S : -W "$(_qubectl_qubes)" -- "$cur"))
          compopt -o nospace 2>/dev/null || true
        fi
      fi ;;
  esac
}
complete -F _qubectl qubectl
