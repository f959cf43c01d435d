#!/usr/bin/env python3
"""Pixel checks on a binary PPM (grim -t ppm) screenshot.
  pixels.py frame SHOT X Y W H RRGGBB   the frame of a qube window (frame box
        X,Y,WxH as WINDOWS reports it): 4-px left/right/bottom borders,
        title bar rows 0-1 and 18-19, every pixel exactly RRGGBB
  pixels.py border SHOT X Y W H RRGGBB  a popup frame: 4 px all around
  pixels.py rect SHOT X Y W H RRGGBB    every pixel of the box is RRGGBB
  pixels.py ring SHOT X Y W H RRGGBB    the 1-px ring just outside the box
  pixels.py none SHOT X Y W H RRGGBB    no pixel of the box is RRGGBB
  pixels.py at SHOT X Y                 prints the pixel
Exit 0 when the check holds, 1 with the first bad pixel otherwise."""
import sys

B, T = 4, 20

def load(path):
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            while data[pos:pos + 1] != b"\n":
                pos += 1
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise SystemExit("not a P6/255 PPM")
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:]

def main():
    mode, path = sys.argv[1], sys.argv[2]
    w, h, px = load(path)

    def at(x, y):
        if not (0 <= x < w and 0 <= y < h):
            return None
        i = (y * w + x) * 3
        return "%02x%02x%02x" % (px[i], px[i + 1], px[i + 2])

    if mode == "at":
        print(at(int(sys.argv[3]), int(sys.argv[4])))
        return 0
    x, y, bw, bh = (int(v) for v in sys.argv[3:7])
    want = sys.argv[7].lower()
    pts = []
    if mode == "frame":
        for yy in range(y, y + bh):
            for xx in list(range(x, x + B)) + list(range(x + bw - B, x + bw)):
                pts.append((xx, yy))
        for yy in [y, y + 1, y + T - 2, y + T - 1] + list(range(y + bh - B, y + bh)):
            for xx in range(x, x + bw):
                pts.append((xx, yy))
    elif mode == "border":
        for yy in range(y, y + bh):
            for xx in list(range(x, x + B)) + list(range(x + bw - B, x + bw)):
                pts.append((xx, yy))
        for yy in list(range(y, y + B)) + list(range(y + bh - B, y + bh)):
            for xx in range(x, x + bw):
                pts.append((xx, yy))
    elif mode == "rect" or mode == "none":
        pts = [(xx, yy) for yy in range(y, y + bh) for xx in range(x, x + bw)]
    elif mode == "ring":
        pts = [(xx, y - 1) for xx in range(x - 1, x + bw + 1)] + \
              [(xx, y + bh) for xx in range(x - 1, x + bw + 1)] + \
              [(x - 1, yy) for yy in range(y, y + bh)] + [(x + bw, yy) for yy in range(y, y + bh)]
    else:
        raise SystemExit("unknown mode " + mode)
    checked = 0
    for (xx, yy) in pts:
        c = at(xx, yy)
        if c is None:
            continue
        checked += 1
        if mode == "none":
            if c == want:
                print("pixel %d,%d is %s" % (xx, yy, c))
                return 1
        elif c != want:
            print("pixel %d,%d is %s, not %s" % (xx, yy, c, want))
            return 1
    if checked == 0:
        print("no pixel of the box is on the screenshot")
        return 1
    return 0

sys.exit(main())
