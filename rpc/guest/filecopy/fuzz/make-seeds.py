#!/usr/bin/env python3
"""make-seeds.py: writes the seed corpora of the filecopy fuzz harnesses.

  fuzz/corpus-names   32 header bytes, a path, NUL, a symlink target
                      (fuzz-names.c): the rows of tests/vectors.txt and
                      every header type with good and bad fields
  fuzz/corpus-stream  a control byte and a whole stream (fuzz-stream.c):
                      small valid trees (files, directories, symlinks,
                      directory ends, a name twice, Unicode names) with
                      control 1 (checksums fixed up), 3, 7 and 9 (fallback
                      paths), and the same with one lie each (control 0)

Deterministic; rerun after a format change and commit the result.
"""
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


FILE, DIR, SYMLINK, DIR_END, END = 1, 2, 3, 4, 5


def header(t, mode=0o644, name=b"", size=0, nsec=123, sec=1700000000):
    return struct.pack("<IIIIQq", t, mode, len(name), nsec, size, sec)


class Stream:
    def __init__(self, version=1, flags=0):
        self.b = bytearray(b"QFCP" + struct.pack("<IQ", version, flags))
        self.data = []  # (offset, length) of file data: not in the stream CRC
        self.entries = 0
        self.bytes = 0

    def file(self, name, data, mode=0o644, crc=None, size=None):
        n = name.encode() if isinstance(name, str) else name
        self.b += header(FILE, mode, n, len(data) if size is None else size) + n
        self.data.append((len(self.b), len(data)))
        self.b += data
        self.b += struct.pack("<I", crc32c(data) if crc is None else crc)
        self.entries += 1
        self.bytes += len(data)
        return self

    def dir(self, name, mode=0o755):
        n = name.encode()
        self.b += header(DIR, mode, n) + n
        self.entries += 1
        return self

    def dir_end(self, name, mode=0o755):
        n = name.encode()
        self.b += header(DIR_END, mode, n) + n
        return self

    def symlink(self, name, target):
        n, t = name.encode(), target.encode()
        self.b += header(SYMLINK, 0o777, n, len(t)) + n + t
        self.entries += 1
        return self

    def covered(self):
        out, pos = bytearray(), 0
        for off, n in self.data:
            out += self.b[pos:off]
            pos = off + n
        return bytes(out + self.b[pos:])

    def end(self, crc=None, entries=None, nbytes=None):
        c = crc32c(self.covered()) if crc is None else crc
        self.b += header(END, 0, b"", 0, 0, 0)
        self.b += struct.pack("<QQII", self.entries if entries is None else entries,
                              self.bytes if nbytes is None else nbytes, c, 0)
        return bytes(self.b)


def tree():
    s = Stream()
    s.dir("t").file("t/a", b"hello\n").dir("t/sub").file("t/sub/b", b"x" * 300)
    s.symlink("t/sub/l", "../a").symlink("t/sub/m", "b").file("t/sub/empty", b"")
    s.dir_end("t/sub", 0o700).dir_end("t", 0o555)
    return s


def streams():
    out = {}
    out["tree"] = tree().end()
    out["single-file"] = Stream().file("note.txt", b"note\n").end()
    out["empty"] = Stream().end()
    out["same-name-twice"] = Stream().file("dup", b"1").file("dup", b"22").end()
    out["zeros-sparse"] = Stream().file("z", bytes(9000) + b"end").end()
    out["unicode"] = (Stream().dir("\u65e5\u672c").file("\u65e5\u672c/caf\u00e9.txt", b"u")
                      .dir_end("\u65e5\u672c").end())
    out["deep"] = (Stream().dir("a").dir("a/b").dir("a/b/c").symlink("a/b/c/up", "../..")
                   .dir_end("a/b/c").dir_end("a/b").dir_end("a").end())
    out["dir-then-top-file"] = Stream().dir("d").dir_end("d").file("f", b"f").end()
    # one lie each
    out["bad-crc-file"] = Stream().dir("t").file("t/a", b"abc", crc=1).end()
    out["bad-crc-stream"] = tree().end(crc=0x12345678)
    out["bad-count"] = tree().end(entries=99)
    out["version-2"] = Stream(version=2).end()
    out["flags"] = Stream(flags=1).end()
    out["dotdot"] = Stream().dir("t").file("t/../x", b"x").end()
    out["absolute"] = Stream().file("/etc/x", b"x").end()
    out["symlink-out"] = Stream().dir("t").symlink("t/l", "../../x").end()
    out["top-symlink"] = Stream().symlink("l", "t").end()
    out["through-symlink"] = Stream().dir("t").dir("t/d").symlink("t/s", "d").file("t/s/x", b"x").end()
    out["file-then-dir"] = Stream().dir("t").file("t/x", b"x").dir("t/x").end()
    out["size-long"] = Stream().dir("t").file("t/a", b"abc", size=100).end()
    out["mode-bits"] = Stream().dir("t").file("t/s", b"s", mode=0o4755).end()
    out["interleaved"] = Stream().dir("a").dir("b").file("a/late", b"x").end()
    out["dir-end-unmatched"] = Stream().dir_end("t").end()
    out["trailing-bytes"] = Stream().file("a", b"a").end() + b"more"
    out["bidi-name"] = Stream().file("a\u202eb", b"x").end()
    cut = tree().end()
    out["cut-in-data"] = cut[: len(cut) // 2]
    out["cut-in-header"] = cut[:20]
    valid = {"tree", "single-file", "empty", "same-name-twice", "zeros-sparse", "unicode",
             "deep", "dir-then-top-file", "mode-bits"}
    seeds = {}
    for k, v in out.items():
        if k in valid:
            seeds[k] = b"\x01" + v
            if k in ("tree", "deep"):
                seeds[k + "-no-openat2"] = b"\x03" + v
                seeds[k + "-no-tmpfile"] = b"\x07" + v
                seeds[k + "-no-flink"] = b"\x09" + v
        else:
            seeds[k] = b"\x00" + v
    return seeds


def unescape(s):
    return re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), s.encode())


def names():
    out = {}
    hdrs = {
        "file": header(FILE, 0o644, b"x" * 5, 10),
        "dir": header(DIR, 0o755, b"x" * 5),
        "symlink": header(SYMLINK, 0o777, b"x" * 5, 3),
        "dir-end": header(DIR_END, 0o755, b"x" * 5),
        "end": header(END, 0, b"", 0, 0, 0),
        "bad-type": header(6, 0o644, b"x" * 5),
        "bad-mode": header(FILE, 0o100644, b"x" * 5),
        "bad-nsec": header(FILE, 0o644, b"x" * 5, 0, 1000000000),
        "huge-size": header(FILE, 0o644, b"x" * 5, 1 << 62),
        "reply": b"QFCR" + struct.pack("<IIIQQ", 0, 4, 0, 1, 1),
        "stream-header": b"QFCP" + struct.pack("<IQ", 1, 0) + bytes(16),
    }
    for k, h in hdrs.items():
        out["hdr-" + k] = h + b"a/b\0c"
    rows = open(os.path.join(HERE, "..", "tests", "vectors.txt"), encoding="utf-8").read()
    i = 0
    for line in rows.splitlines():
        line = line.split(" #")[0]
        f = line.split()
        if len(f) >= 3 and f[0] == "name":
            out["name-%03d" % i] = hdrs["file"] + unescape(f[1])
        elif len(f) >= 4 and f[0] == "symlink":
            out["symlink-%03d" % i] = hdrs["symlink"] + unescape(f[1]) + b"\0" + unescape(f[2])
        else:
            continue
        i += 1
    out["config"] = hdrs["file"] + b"max-entries = 10\nmax-depth=4\nuser = nobody\n"
    out["config-bad"] = hdrs["file"] + b"max-depth = 999\ncolour = red\n"
    return out


def write(dirname, items):
    d = os.path.join(HERE, dirname)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    for k, v in sorted(items.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    print("%s: %d seeds" % (dirname, len(items)), file=sys.stderr)


write("corpus-stream", streams())
write("corpus-names", names())
