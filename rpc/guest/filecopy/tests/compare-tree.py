#!/usr/bin/env python3
"""compare-tree.py SRC DST: every entry of SRC is in DST and nothing else:
same type, same bytes, mode masked as the receiver masks it (no setuid,
setgid, sticky; directories keep u+rwx), same mtime to the nanosecond,
same symlink target; sparse files stay sparse."""
import hashlib, os, stat, sys

src, dst = sys.argv[1], sys.argv[2]
bad = []

def walk(top):
    out = {}
    for dp, dns, fns in os.walk(top):
        for n in dns + fns:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, top)] = p
    return out

a, b = walk(src), walk(dst)
for k in sorted(set(a) - set(b)):
    bad.append("missing: " + k)
for k in sorted(set(b) - set(a)):
    bad.append("extra: " + k)
for k in sorted(set(a) & set(b)):
    sa, sb = os.lstat(a[k]), os.lstat(b[k])
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        bad.append("type differs: " + k)
        continue
    if sa.st_mtime_ns != sb.st_mtime_ns:
        bad.append("mtime %d != %d: %s" % (sa.st_mtime_ns, sb.st_mtime_ns, k))
    if stat.S_ISLNK(sa.st_mode):
        if os.readlink(a[k]) != os.readlink(b[k]):
            bad.append("symlink target differs: " + k)
        continue
    want = stat.S_IMODE(sa.st_mode) & 0o777
    if stat.S_ISDIR(sa.st_mode):
        want |= 0o700
    if stat.S_IMODE(sb.st_mode) != want:
        bad.append("mode %o != %o: %s" % (stat.S_IMODE(sb.st_mode), want, k))
    if stat.S_ISREG(sa.st_mode):
        ha = hashlib.sha256(open(a[k], "rb").read()).digest()
        hb = hashlib.sha256(open(b[k], "rb").read()).digest()
        if ha != hb:
            bad.append("content differs: " + k)
        if sa.st_size > (1 << 20) and sa.st_blocks < sa.st_size // 1024 and \
                sb.st_blocks > 2 * sa.st_blocks + 64:
            bad.append("sparse file not sparse (%d blocks, source %d): %s" %
                       (sb.st_blocks, sa.st_blocks, k))
for x in bad[:20]:
    print(x)
print("%d entries compared, %d differences" % (len(a), len(bad)))
sys.exit(1 if bad else 0)
