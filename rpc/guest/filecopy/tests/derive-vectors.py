#!/usr/bin/env python3
"""derive-vectors.py QUBES_TABLE [--c-table | --vectors]

Derives qube.Filecopy's code point allow-list and its test vectors from the
decisions of Qubes OS (QubesOS/qubes-linux-utils qrexec-lib/
unicode-allowlist-table.c, passed as QUBES_TABLE; not part of this
repository).  Only decisions are used, never code:

  qube accepts a code point when Qubes accepts it AND it lies in one of the
  blocks below AND it is stable under Unicode NFC (so no two different byte
  strings of allowed characters normalise to the same name).

--c-table  prints the ranges for fc.c (allowed_ranges)
--vectors  prints "cp" rows partitioning U+0000..U+10FFFF into runs of equal
           decisions: "accept", "refuse", or "refuse differs" where Qubes
           accepts and qube refuses (docs/filecopy.md lists the classes).
           It fails if qube would accept anything Qubes refuses.
"""
import re
import sys
import unicodedata

# Blocks (or parts of blocks) whose characters qube considers for names.
BLOCKS = [
    (0x0020, 0x007E, "ASCII printable"),
    (0x00A0, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x024F, "Latin Extended-A and -B"),
    (0x0250, 0x02AF, "IPA Extensions"),
    (0x02B0, 0x02FF, "Spacing Modifier Letters (letters only)"),
    (0x0370, 0x03FF, "Greek and Coptic (Greek letters)"),
    (0x0400, 0x052F, "Cyrillic and Cyrillic Supplement"),
    (0x1C80, 0x1C8F, "Cyrillic Extended-C"),
    (0x1D00, 0x1DBF, "Phonetic Extensions and Supplement"),
    (0x1E00, 0x1EFF, "Latin Extended Additional"),
    (0x1F00, 0x1FFF, "Greek Extended"),
    (0x2010, 0x205E, "General Punctuation (no spaces or format characters)"),
    (0x20A0, 0x20C0, "Currency Symbols"),
    (0x2C60, 0x2C7F, "Latin Extended-C"),
    (0x3001, 0x301F, "CJK punctuation and brackets"),
    (0x3030, 0x3035, "CJK wavy dash and kana repeat marks"),
    (0x303B, 0x303C, "CJK iteration marks"),
    (0x3041, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3105, 0x312F, "Bopomofo"),
    (0x3131, 0x318E, "Hangul Compatibility Jamo"),
    (0x31A0, 0x31BF, "Bopomofo Extended"),
    (0x31F0, 0x31FF, "Katakana Phonetic Extensions"),
    (0x3400, 0x4DBF, "CJK Extension A"),
    (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    (0xA640, 0xA69F, "Cyrillic Extended-B"),
    (0xA720, 0xA7FF, "Latin Extended-D"),
    (0xAB30, 0xAB6F, "Latin Extended-E"),
    (0xAC00, 0xD7A3, "Hangul Syllables"),
    (0xFF01, 0xFFEF, "Halfwidth and Fullwidth Forms"),
    (0x10780, 0x107BF, "Latin Extended-F"),
    (0x1AFF0, 0x1B16F, "Kana Extended-A/B and Kana Supplement"),
    (0x1DF00, 0x1DFFF, "Latin Extended-G"),
    (0x20000, 0x323AF, "CJK Extensions B to H"),
]


def qubes_set(path):
    s = set()
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r"case 0x([0-9a-fA-F]+)(?: \.\.\. 0x([0-9a-fA-F]+))?:", text):
        lo = int(m.group(1), 16)
        hi = int(m.group(2), 16) if m.group(2) else lo
        s.update(range(lo, hi + 1))
    if len(s) < 100000:
        sys.exit("%s: does not look like Qubes' allow-list table" % path)
    return s


def nfc_stable(c):
    ch = chr(c)
    return unicodedata.normalize("NFC", ch) == ch


def ours(q):
    out = set()
    for lo, hi, _ in BLOCKS:
        for c in range(lo, hi + 1):
            if c in q and nfc_stable(c):
                out.add(c)
    return out


def runs(decide, lo, hi):
    start, cur = lo, decide(lo)
    for c in range(lo + 1, hi + 2):
        d = decide(c) if c <= hi else None
        if d != cur:
            yield start, c - 1, cur
            start, cur = c, d


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("--c-table", "--vectors"):
        sys.exit(__doc__)
    q = qubes_set(sys.argv[1])
    o = ours(q)
    extra = o - q
    if extra:
        sys.exit("qube would accept %d code points Qubes refuses (first U+%04X)" %
                 (len(extra), min(extra)))
    if sys.argv[2] == "--c-table":
        for lo, hi, d in runs(lambda c: c in o, 0, 0x10FFFF):
            if d:
                print("\t{ 0x%04X, 0x%04X }," % (lo, hi))
        return
    def decide(c):
        return (c in q, c in o)
    for lo, hi, (qd, od) in runs(decide, 0, 0x10FFFF):
        r = "%04x" % lo if lo == hi else "%04x-%04x" % (lo, hi)
        if od:
            word = "accept"
        elif qd:
            word = "refuse differs"
        else:
            word = "refuse"
        try:
            name = unicodedata.name(chr(lo))
        except ValueError:
            name = ""
        print("cp %-13s %-15s # %s" % (r, word, name.lower()))


if __name__ == "__main__":
    main()
