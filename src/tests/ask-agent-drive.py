#!/usr/bin/env python3
"""Drives `qubectl policy ask-agent` on a pty as a user would, while
qube-call makes calls that the policy says to ask about.
  ask-agent-drive.py QUBECTL ASK_SOCKET QUBE_CALL CALLER_DIR"""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

qubectl, ask_sock, qube_call, caller_dir = sys.argv[1:5]
fails = 0


def check(what, cond, detail=""):
    global fails
    if cond:
        print(f"ok - {what}")
    else:
        fails += 1
        print(f"not ok - {what}" + (f": {detail}" if detail else ""))


pid, fd = pty.fork()
if pid == 0:
    os.execv(qubectl, [qubectl, "policy", "ask-agent", "--ask-socket", ask_sock, "--timeout", "3"])
screen = b""


def read_until(text, timeout=20):
    """Reads the pty until TEXT appears after what was seen so far."""
    global screen
    start = len(screen)
    end = time.time() + timeout
    while time.time() < end:
        if text.encode() in screen[start:]:
            return True
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                screen += os.read(fd, 4096)
            except OSError:
                return False
    return text.encode() in screen[start:]


def call(target="@default"):
    return subprocess.Popen([qube_call, "--transport", "unix:" + caller_dir, target, "test.Echo"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


check("the agent connected", read_until("Answering the broker's questions"))

# Enter: the default target
p = call()
shown = read_until("Allow the call to which target?")
check("question shown: source, service, requested target, targets numbered, default marked",
      shown and b"work wants to call test.Echo, target @default." in screen
      and re.search(rb"\d\) personal  \(default\)", screen) and re.search(rb"\d\) vault\r?\n", screen),
      screen[-400:].decode(errors="replace"))
VAULT = re.search(rb"(\d)\) vault", screen).group(1) if re.search(rb"(\d)\) vault", screen) else b"9"
PERSONAL = re.search(rb"(\d)\) personal", screen).group(1) if re.search(rb"(\d)\) personal", screen) else b"9"
os.write(fd, b"\r")
out, err = p.communicate(timeout=20)
check("Enter allows the default: the call ran in personal",
      p.returncode == 0 and out.startswith(b"in=personal from=work"), f"{p.returncode} {out!r} {err!r}")

# a name
p = call()
read_until("Allow the call to which target?")
os.write(fd, b"vault\r")
out, err = p.communicate(timeout=20)
check("a target's name allows it: the call ran in vault",
      p.returncode == 0 and out.startswith(b"in=vault from=work"), f"{p.returncode} {out!r}")

# not understood, then a number
p = call()
read_until("Allow the call to which target?")
os.write(fd, b"77\r")
check("an answer that is not a target is asked again", read_until("Not understood"))
os.write(fd, VAULT + b"\r")
out, err = p.communicate(timeout=20)
check("a number allows that target (vault's)", p.returncode == 0 and out.startswith(b"in=vault"),
      f"{p.returncode} {out!r}")

# n denies
p = call()
read_until("Allow the call to which target?")
os.write(fd, b"n\r")
out, err = p.communicate(timeout=20)
check("n denies: the caller gets 126", p.returncode == 126, f"{p.returncode}")

# no answer: denied after --timeout 3
t0 = time.time()
p = call()
out, err = p.communicate(timeout=30)
check("no answer within --timeout denies (126)", p.returncode == 126, f"{p.returncode}")
check("... after about 3 s, said on the terminal",
      2.5 <= time.time() - t0 < 20 and read_until("no answer within 3 s", timeout=5))

# the caller goes away: the question is withdrawn
p = call()
read_until("Allow the call to which target?")
p.send_signal(signal.SIGKILL)
p.wait()
check("a question whose caller went away is withdrawn", read_until("withdrawn by the broker"))

# two questions at once: answered one after the other
p1, p2 = call(), call()
read_until("Allow the call to which target?")
os.write(fd, PERSONAL + b"\r")
read_until("Allow the call to which target?")
os.write(fd, VAULT + b"\r")
o1, _ = p1.communicate(timeout=20)
o2, _ = p2.communicate(timeout=20)
check("two questions at once: both answered, in turn",
      p1.returncode == 0 and p2.returncode == 0 and
      sorted([o1.split(b" ")[0], o2.split(b" ")[0]]) == [b"in=personal", b"in=vault"], f"{o1!r} {o2!r}")

os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
print(f"{fails} failed" if fails else "all checks passed")
sys.exit(1 if fails else 0)
