#!/usr/bin/env bash
# Copies the source tree of qube to DEST (an existing directory): the files
# a package is built from, without build directories or VCS data.
#   packaging/copy-tree.sh TOP DEST
# In a git work tree: the tracked and untracked-but-not-ignored files, as
# they are in the work tree now (git ls-files -co --exclude-standard).
# Elsewhere (an exported tree, a CI checkout without .git): every file but
# what .gitignore excludes (GNU tar --exclude-vcs-ignores) and VCS files;
# the two give the same files but .gitignore itself.
set -euo pipefail
export LC_ALL=C
prog=packaging/copy-tree.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: copy-tree.sh TOP DEST"
top=$1 dest=$2
[ -f "$top/meson.build" ] || die "$top is not the qube source tree (no meson.build)"
[ -d "$dest" ] || die "$dest is not a directory"
if git -C "$top" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  (cd "$top" && git ls-files -z -co --exclude-standard) |
    (cd "$top" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
    (cd "$top" && tar --null -T - -cf -) | tar -C "$dest" -xf -
else
  # tar reads .gitignore files but not git's anchored patterns ("/build*/"):
  # those of the top .gitignore are given as anchored excludes
  anchored=()
  if [ -f "$top/.gitignore" ]; then
    while IFS= read -r line; do
      case $line in
        /*) line=${line#/}; line=${line%/}; anchored+=(--exclude="./$line") ;;
      esac
    done < "$top/.gitignore"
  fi
  # tar keeps an ignored directory as an empty one (and its subdirectories):
  # drop empty directories, which git would not have either
  tar -C "$top" --anchored "${anchored[@]}" --no-anchored --exclude-vcs --exclude-vcs-ignores -cf - . |
    tar -C "$dest" -xf -
  find "$dest" -mindepth 1 -depth -type d -empty -delete
fi
