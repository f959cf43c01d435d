#!/usr/bin/env python3
"""make-tree.py DIR N: a test tree of N small files in nested directories,
with empty files, a sparse file, symlinks inside the tree, varied modes,
nanosecond mtimes and names from every class of the allow-list."""
import os, random, sys

root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(13)
os.makedirs(root)
# one name per allowed class (docs/filecopy.md, "Names")
classes = {
    "ascii": "plain name (1) [x]~!@#$%^&+=,;'",
    "latin1": "caf\u00e9 \u00bfqu\u00e9? \u00a3\u00a5\u00ab\u00bb\u00f7\u00d7",
    "latin-ext": "\u0141\u00f3d\u017a \u0160koda \u0219i \u01c4",
    "ipa": "\u0250\u0251\u0252\u0254\u0259\u028a",
    "greek": "\u03b1\u03b2\u03b3 \u0391\u0392\u0393 \u03ac\u03ad",
    "cyrillic": "\u041f\u0440\u0438\u0432\u0435\u0442 \u0436\u0451\u0436 \u0500",
    "hangul-compat-jamo": "\u3131\u314f \u314b\u314b",
    "modifier": "\u02b0\u02bc",
    "phonetic": "\u1d00\u1d2c",
    "greek-ext": "\u1f00\u1f10\u1fe5",
    "latin-ext-cde": "\u2c60\ua722\uab30",
    "cyrillic-ext": "\u1c80\ua640",
    "fullwidth": "\uff08\u682a\uff09\uff21\uff41 \uff66",
    "bopomofo": "\u3105\u3106\u31a0",
    "kana-marks": "\u30fb\u301c\u30a0\u31f0",
    "kana-supplement": "\U0001b000\U0001b150",
    "latin-ext-add": "\u1e00\u1e9e\u1ef9",
    "punct": "\u2010\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026\u2030\u2039\u203a",
    "currency": "\u20ac\u20b9\u20bf",
    "cjk-punct": "\u3001\u3002\u300c\u300d",
    "hiragana": "\u3072\u3089\u304c\u306a",
    "katakana": "\u30ab\u30bf\u30ab\u30ca\u30fc",
    "cjk-a": "\u3400\u4db5",
    "cjk": "\u6f22\u5b57\u4e2d\u6587",
    "hangul": "\ud55c\uad6d\uc5b4",
    "cjk-b": "\U00020000\U0002a6d6",
    "cjk-c-f": "\U0002a700\U0002b740\U0002b820\U0002ceb0",
    "cjk-g-h": "\U00030000\U00031350",
}
u = os.path.join(root, "unicode")
os.makedirs(u)
for k, v in classes.items():
    p = os.path.join(u, k + " " + v)
    with open(p, "w") as f:
        f.write(k + "\n")
os.makedirs(os.path.join(u, "dir \u03b4\u03b9\u03c1"))

dirs = [root]
for i in range(120):
    parent = rnd.choice(dirs)
    if parent.count("/") - root.count("/") > 6:
        parent = root
    d = os.path.join(parent, "d%d" % i)
    os.makedirs(d)
    dirs.append(d)
made = len(classes)
i = 0
while made < n:
    d = rnd.choice(dirs)
    p = os.path.join(d, "f-%d" % i)
    size = 0 if i % 50 == 0 else rnd.randint(1, 6000)
    with open(p, "wb") as f:
        f.write(rnd.randbytes(size))
    os.chmod(p, rnd.choice([0o644, 0o600, 0o755, 0o400, 0o664, 0o4755, 0o2755, 0o1777]))
    ns = rnd.randint(0, 2**31) * 10**9 + rnd.randint(0, 999999999)
    os.utime(p, ns=(ns, ns))
    i += 1
    made += 1
# sparse: 64 MiB with three data islands
sp = os.path.join(root, "sparse.img")
with open(sp, "wb") as f:
    for off in (0, 20 << 20, (64 << 20) - 5000):
        f.seek(off)
        f.write(rnd.randbytes(5000))
# symlinks inside the tree
os.symlink("no-such-file", os.path.join(root, "link-dangling"))
os.symlink("d0", os.path.join(root, "link-dir"))
os.symlink("sparse.img", os.path.join(root, "link-file"))
deep = dirs[-1]
up = "/".join([".."] * (deep.count("/") - root.count("/")))
os.symlink(up + "/sparse.img", os.path.join(deep, "link-up"))
# a read-only directory and directory mtimes (set last)
ro = os.path.join(root, "readonly")
os.makedirs(ro)
with open(os.path.join(ro, "inside"), "w") as f:
    f.write("ro\n")
os.chmod(ro, 0o555)
for d in sorted(dirs + [u, ro], key=lambda s: -s.count("/")):
    ns = rnd.randint(0, 2**31) * 10**9 + rnd.randint(0, 999999999)
    os.utime(d, ns=(ns, ns))
