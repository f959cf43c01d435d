#!/usr/bin/env python3
"""Sends control-socket commands to qube-compositor and prints the replies.
   ctl.py SOCKET COMMAND...   (each COMMAND one line; a reply "OK <n>"
   is followed by n lines).  Exit 1 if any reply is ERROR."""
import socket
import sys

def main():
    path, cmds = sys.argv[1], sys.argv[2:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    f = s.makefile("rw", encoding="utf-8", errors="replace", newline="\n")
    rc = 0
    for c in cmds:
        f.write(c + "\n")
        f.flush()
        line = f.readline()
        if not line:
            print("ERROR connection closed")
            return 1
        sys.stdout.write(line)
        if line.startswith("ERROR"):
            rc = 1
        parts = line.split()
        if len(parts) == 2 and parts[0] == "OK" and parts[1].isdigit() and c.split()[0] in (
                "LIST", "WINDOWS", "PROMPTS"):
            for _ in range(int(parts[1])):
                sys.stdout.write(f.readline())
    return rc

sys.exit(main())
