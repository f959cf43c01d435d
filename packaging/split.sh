#!/usr/bin/env bash
# Splits a `meson install` DESTDIR tree into the three packages by
# packaging/split.rules and checks packaging/key-files.
#
#   split.sh --format deb|rpm --rules FILE [--key-files FILE] DESTDIR OUTDIR
#
# Writes OUTDIR/guest.files, OUTDIR/host.files, OUTDIR/policy.files (one
# path a line, leading '/', sorted) and OUTDIR/dropped.files.  Fails, naming
# the file, when a path matches no rule, a rule is malformed, or a key file
# is missing from its package.  Directories are not listed (each package
# owns the directories of its files; the package tools handle that).
set -euo pipefail
export LC_ALL=C
prog=packaging/split.sh
die() { echo "$prog: error: $*" >&2; exit 1; }

format='' rules='' keys=''
while [ $# -gt 0 ]; do
  case $1 in
    --format) [ $# -ge 2 ] || die "--format needs a value"; format=$2; shift 2 ;;
    --rules) [ $# -ge 2 ] || die "--rules needs a value"; rules=$2; shift 2 ;;
    --key-files) [ $# -ge 2 ] || die "--key-files needs a value"; keys=$2; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option '$1'" ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || die "usage: split.sh --format deb|rpm --rules FILE [--key-files FILE] DESTDIR OUTDIR"
dest=$1 out=$2
case $format in deb|rpm) ;; *) die "--format '$format': deb or rpm" ;; esac
[ -f "$rules" ] || die "--rules $rules: no such file"
[ -d "$dest" ] || die "DESTDIR $dest is not a directory"

pats=() pkgs=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  line=${line%%#*}
  read -r -a f <<<"$line" || true
  [ ${#f[@]} -gt 0 ] || continue
  [ ${#f[@]} -le 3 ] && [ ${#f[@]} -ge 2 ] || die "$rules:$n: expected 'PATTERN PACKAGE [deb|rpm]'"
  case ${f[1]} in guest|host|policy|-) ;; *) die "$rules:$n: package '${f[1]}': guest, host, policy or -" ;; esac
  case ${f[0]} in /*) die "$rules:$n: pattern '${f[0]}' must not start with '/'" ;; esac
  if [ ${#f[@]} -eq 3 ]; then
    case ${f[2]} in deb|rpm) ;; *) die "$rules:$n: format '${f[2]}': deb or rpm" ;; esac
    [ "${f[2]}" = "$format" ] || continue
  fi
  pats+=("${f[0]}"); pkgs+=("${f[1]}")
done < "$rules"
[ ${#pats[@]} -gt 0 ] || die "$rules: no rules"

declare -A owner=()
declare -A lists=([guest]='' [host]='' [policy]='' [-]='')
unmatched=()
while IFS= read -r -d '' path; do
  i=0 hit=
  while [ $i -lt ${#pats[@]} ]; do
    # shellcheck disable=SC2053  # the pattern is a glob on purpose
    if [[ $path == ${pats[$i]} ]]; then hit=${pkgs[$i]}; break; fi
    i=$((i + 1))
  done
  if [ -z "$hit" ]; then unmatched+=("/$path"); continue; fi
  owner[$path]=$hit
  lists[$hit]+="/$path"$'\n'
done < <(cd "$dest" && find . -mindepth 1 ! -type d -printf '%P\0' | sort -z)
[ ${#unmatched[@]} -eq 0 ] || die "no rule of $rules matches: ${unmatched[*]} (add a rule)"

if [ -n "$keys" ]; then
  [ -f "$keys" ] || die "--key-files $keys: no such file"
  n=0 missing=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    read -r -a f <<<"$line" || true
    [ ${#f[@]} -gt 0 ] || continue
    [ ${#f[@]} -eq 2 ] || die "$keys:$n: expected 'PACKAGE PATTERN'"
    found=0
    for p in "${!owner[@]}"; do
      # shellcheck disable=SC2053
      if [[ $p == ${f[1]} ]] && [ "${owner[$p]}" = "${f[0]}" ]; then found=1; break; fi
    done
    [ $found = 1 ] || missing+=("qube-${f[0]}:/${f[1]} ($keys:$n)")
  done < "$keys"
  [ ${#missing[@]} -eq 0 ] || die "key files missing: ${missing[*]}"
fi
# written only now: a failed split leaves no lists behind
mkdir -p "$out"
printf '%s' "${lists[-]}" > "$out/dropped.files"
for p in guest host policy; do
  printf '%s' "${lists[$p]}" > "$out/$p.files"
  echo "$prog: qube-$p: $(wc -l < "$out/$p.files") files"
done
