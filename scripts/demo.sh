#!/usr/bin/env bash
# The main job: installs dependencies, builds qube, and runs the demo
# (scripts/demo/run.sh): the policy engine on an example policy, then
# simulated qubes calling each other through the real broker.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build
fi
meson compile -C build
exec bash scripts/demo/run.sh build
