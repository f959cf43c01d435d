#!/usr/bin/env python3
"""A hostile disposable: plays the service qube.OpenInVM by hand.  Reads the
request and its stream, confirms the stream (a valid reply record, from its
trailer), then answers as the case in $EVIL_CASE_FILE says:
  dotdot        CHANGED, a stream whose file is named ../escape
  two-entries   CHANGED, a directory holding a file (one entry allowed)
  dir           CHANGED, one directory, no file
  top-symlink   CHANGED, a top-level symlink to /etc/passwd
  cut           CHANGED announcing 100 bytes more than it sends
  long          CHANGED whose stream goes on after its trailer
  bad-crc       CHANGED, a file whose CRC does not match its data
  bad-magic     a result header with the wrong magic
  huge          CHANGED announcing 2^41 bytes
  controls      FAILED with a message full of control bytes
  ok            CHANGED, a valid stream of one file 'note.txt' (control)"""
import os
import struct
import sys

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (POLY if c & 1 else 0)
    TABLE.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class Stream:
    def __init__(self):
        self.out = bytearray(b"QFCP" + struct.pack("<IQ", 1, 0))
        self.covered = bytearray(self.out)
        self.entries = self.bytes = 0

    def put(self, b):
        self.out += b
        self.covered += b

    def entry(self, t, mode, name, size):
        self.put(struct.pack("<IIIIQq", t, mode, len(name), 0, size, 1700000000) + name)

    def file(self, name, data, bad_crc=False):
        self.entry(1, 0o644, name, len(data))
        self.out += data
        c = crc32c(data) ^ (1 if bad_crc else 0)
        self.put(struct.pack("<I", c))
        self.entries += 1
        self.bytes += len(data)

    def dir(self, name):
        self.entry(2, 0o755, name, 0)
        self.entries += 1

    def dir_end(self, name):
        self.entry(4, 0o755, name, 0)

    def symlink(self, name, target):
        self.entry(3, 0o777, name, len(target))
        self.put(target)
        self.entries += 1

    def end(self):
        crc = crc32c(bytes(self.covered))
        self.out += struct.pack("<IIIIQq", 5, 0, 0, 0, 0, 0)
        self.out += struct.pack("<QQII", self.entries, self.bytes, crc, 0)
        return bytes(self.out)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        got = os.read(0, n - len(buf))
        if not got:
            sys.exit(3)
        buf += got
    return buf


def result(status, msg_len, stream_len, magic=b"QOIR"):
    return magic + struct.pack("<IIIQQ", 1, status, msg_len, stream_len, 0)


hdr = read_exact(32)
flags, rows, cols, stream_len = struct.unpack("<IHHQ", hdr[8:24])
stream = read_exact(stream_len)
entries, data_bytes, crc, _ = struct.unpack("<QQII", stream[-24:])
out = sys.stdout.buffer
out.write(b"QFCR" + struct.pack("<IIIQQ", 0, 0, crc, entries, data_bytes))
case = open(os.environ["EVIL_CASE_FILE"]).read().strip()
s = Stream()
if case == "dotdot":
    s.file(b"../escape", b"owned\n")
elif case == "two-entries":
    s.dir(b"d")
    s.file(b"d/x", b"x")
    s.dir_end(b"d")
elif case == "dir":
    s.dir(b"note.txt")
    s.dir_end(b"note.txt")
elif case == "top-symlink":
    s.symlink(b"note.txt", b"/etc/passwd")
elif case == "bad-crc":
    s.file(b"note.txt", b"tampered\n", bad_crc=True)
else:
    s.file(b"note.txt", b"from the evil disposable\n")
body = s.end()
if case == "cut":
    out.write(result(1, 0, len(body) + 100) + body)
elif case == "long":
    body += b"trailing junk"
    out.write(result(1, 0, len(body)) + body)
elif case == "bad-magic":
    out.write(result(0, 0, 0, magic=b"QOIX"))
elif case == "huge":
    out.write(result(1, 0, 1 << 41) + body)
elif case == "controls":
    msg = b"\x1b]0;owned\x07\x1b[2J\r\nfake prompt$ "
    out.write(result(2, len(msg), 0) + msg)
else:
    out.write(result(1, 0, len(body)) + body)
out.flush()
