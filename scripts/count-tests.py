#!/usr/bin/env python3
"""Counts the results in meson's testlog.json of each build directory given
and prints one closing line: 'summary: N passed, N failed, N skipped'.
Exits 1 if any test failed or a build directory has no test log."""
import json
import sys

passed = failed = skipped = 0
missing = []
for build in sys.argv[1:]:
    try:
        with open(f"{build}/meson-logs/testlog.json") as f:
            for line in f:
                r = json.loads(line).get("result")
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r == "SKIP":
                    skipped += 1
                else:
                    failed += 1
    except FileNotFoundError:
        missing.append(build)
for m in missing:
    print(f"count-tests: {m} has no test log (build failed?)", file=sys.stderr)
    failed += 1
print(f"summary: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
