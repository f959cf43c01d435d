#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Table-driven policy tests: runs every case file through `qubectl policy`.

    run-cases.py QUBECTL CASES_DIR [--reference CMD] [CASE...]

A case file builds one policy directory and checks requests and lint
output against it.  Sections start with a line "=== KIND ARGS":

    === file NAME [escaped]   contents of policy/NAME (verbatim; with
                              "escaped", \\r \\n \\t \\\\ and \\xNN are decoded)
    === mkdir NAME            an empty directory policy/NAME
    === symlink NAME TARGET   a symbolic link policy/NAME -> TARGET
    === system                system-info JSON (default: default-system.json)
    === eval SRC TGT SVC[+ARG]
                              expected stdout of `qubectl policy eval`, plus
                              optionally "rule=FILE:LINE" or "rule=none":
                              the deciding rule shown by --explain
    === lint                  expected stdout of `qubectl policy lint`
                              (exit status 1 when it shows errors, else 0)

Lines before the first section are a description.  The policy directory is
"policy" in a fresh scratch directory, which is the working directory of
qubectl, so paths in expected output read "policy/NAME".

With --reference CMD, CMD POLICY_DIR SYSTEM_JSON SRC TGT SVC is run for
every eval section as well, its stdout compared with qubectl's, and the
agreement counted (a differential check against another evaluator).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def decode_escapes(text):
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\" and i + 1 < len(raw):
            n = raw[i + 1 : i + 2]
            if n == b"x":
                out += bytes([int(raw[i + 2 : i + 4], 16)])
                i += 4
                continue
            out += {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}[n]
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def parse_case(path):
    sections = []
    cur = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("=== "):
                words = line[4:].split()
                if not words:
                    raise SystemExit(f"{path}:{lineno}: empty section header")
                cur = {"kind": words[0], "args": words[1:], "lines": [], "lineno": lineno}
                sections.append(cur)
            elif cur is not None:
                cur["lines"].append(line)
    for s in sections:
        while s["lines"] and s["lines"][-1].strip() == "":
            s["lines"].pop()
    return sections


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    args = sys.argv[1:]
    reference = None
    if "--reference" in args:
        i = args.index("--reference")
        reference = args[i + 1]
        del args[i : i + 2]
    if len(args) < 2:
        raise SystemExit(__doc__)
    qubectl = os.path.abspath(args[0])
    cases_dir = os.path.abspath(args[1])
    only = set(args[2:])
    default_system = os.path.join(cases_dir, "default-system.json")

    case_files = sorted(f for f in os.listdir(cases_dir) if f.endswith(".txt"))
    if only:
        case_files = [f for f in case_files if f in only or f[:-4] in only]
    if not case_files:
        raise SystemExit("run-cases: no case files")

    failures = 0
    checks = 0
    ref_total = ref_agree = 0
    ref_disagree = []
    for cf in case_files:
        path = os.path.join(cases_dir, cf)
        sections = parse_case(path)
        work = tempfile.mkdtemp(prefix="qube-policy-case.")
        try:
            pdir = os.path.join(work, "policy")
            os.mkdir(pdir)
            system = default_system
            for s in sections:
                kind, a = s["kind"], s["args"]
                if kind == "file":
                    dst = os.path.join(pdir, a[0])
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    text = "".join(s["lines"])
                    data = decode_escapes(text) if "escaped" in a[1:] else text.encode()
                    with open(dst, "wb") as f:
                        f.write(data)
                elif kind == "mkdir":
                    os.makedirs(os.path.join(pdir, a[0]), exist_ok=True)
                elif kind == "symlink":
                    os.symlink(a[1], os.path.join(pdir, a[0]))
                elif kind == "system":
                    system = os.path.join(work, "system.json")
                    with open(system, "w") as f:
                        f.write("".join(s["lines"]))
            for s in sections:
                kind, a = s["kind"], s["args"]
                where = f"{cf}:{s['lineno']}"
                if kind == "eval":
                    if len(a) != 3:
                        raise SystemExit(f"{where}: eval needs SRC TGT SVC")
                    checks += 1
                    expected = [l.rstrip("\n") for l in s["lines"] if l.strip()]
                    want_rule = [l for l in expected if l.startswith("rule=")]
                    expected = [l for l in expected if not l.startswith("rule=")]
                    rc, out, err = run(
                        [qubectl, "policy", "eval", "--policy-dir", "policy",
                         "--system-info", system, "--explain", *a], work)
                    got = out.splitlines()
                    problems = []
                    if rc != 0:
                        problems.append(f"exit status {rc}")
                    if got != expected:
                        problems.append("stdout differs")
                    explain = err.strip().splitlines()[-1] if err.strip() else ""
                    if want_rule:
                        w = want_rule[0][5:]
                        if w == "none":
                            ok = explain.startswith("(no rule):")
                        else:
                            ok = explain.startswith(w + ":")
                        if not ok:
                            problems.append(f"deciding rule: want {w}, got: {explain}")
                    if problems:
                        failures += 1
                        print(f"FAIL {where}: eval {' '.join(a)}: {'; '.join(problems)}")
                        print("  expected:\n    " + "\n    ".join(expected))
                        print("  got:\n    " + "\n    ".join(got))
                        print("  stderr:\n    " + "\n    ".join(err.splitlines()))
                    if reference:
                        ref_total += 1
                        rrc, rout, rerr = run(
                            [*reference.split(), "policy", system, *a], work)
                        if rout.splitlines() == got:
                            ref_agree += 1
                        else:
                            ref_disagree.append((where, a, rout, got, rerr))
                elif kind == "lint":
                    checks += 1
                    expected = [l.rstrip("\n") for l in s["lines"] if l.strip()]
                    rc, out, err = run([qubectl, "policy", "lint", "--policy-dir", "policy"], work)
                    got = out.splitlines()
                    want_rc = 0 if len(expected) == 1 and expected[0].endswith("no errors") else 1
                    if got != expected or rc != want_rc:
                        failures += 1
                        print(f"FAIL {where}: lint (exit status {rc}, want {want_rc})")
                        print("  expected:\n    " + "\n    ".join(expected))
                        print("  got:\n    " + "\n    ".join(got))
                elif kind not in ("file", "mkdir", "symlink", "system"):
                    raise SystemExit(f"{where}: unknown section kind {kind}")
        finally:
            shutil.rmtree(work)

    print(f"run-cases: {checks} checks in {len(case_files)} case files, {failures} failed")
    if reference:
        print(f"reference: {ref_agree}/{ref_total} eval checks agree")
        for where, a, rout, got, rerr in ref_disagree:
            print(f"  DIFF {where}: {' '.join(a)}")
            print("    reference: " + " | ".join(rout.splitlines()) + "   " + rerr.strip()[-200:])
            print("    qubectl:   " + " | ".join(got))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
