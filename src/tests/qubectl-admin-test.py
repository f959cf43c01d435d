#!/usr/bin/env python3
"""qubectl against fake-qubesd.py: the exact request bytes of every command
(header, payload, half-close), its output and exit status for success and
exception replies, broken replies and a missing daemon, usage errors, and
ls as a table, JSON and in colour on a pty.

    qubectl-admin-test.py QUBECTL

With QUBECTL_TEST_SOCKET=PATH set, a second part runs the same qubectl
against the real qubed at PATH, through the fake in recording-proxy mode:
create, prefs, tags, features, ls, clone, remove of scratch qubes, checking
the requests and what the daemon's answers make qubectl print.
"""
import importlib.util
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

QUBECTL = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fake_qubesd", os.path.join(HERE, "fake-qubesd.py"))
fq = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fq)

work = tempfile.mkdtemp(prefix="qubectl-admin.")
SOCK = os.path.join(work, "qubed.sock")
fails = 0
passes = 0


def ok(what):
    global passes
    passes += 1
    print(f"ok: {what}")


def fail(what, detail=""):
    global fails
    fails += 1
    print(f"FAIL: {what}")
    for line in str(detail).splitlines():
        print(f"    {line}")


def run(args, env=None, stdin=subprocess.DEVNULL, sock=SOCK, timeout=30):
    e = dict(os.environ)
    e.pop("QUBED_SOCKET", None)
    e.pop("NO_COLOR", None)
    if env:
        e.update(env)
    cmd = [QUBECTL] + (["--socket", sock] if sock else []) + args
    p = subprocess.run(cmd, env=e, stdin=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def R(header, reply=b"0\0", **kw):
    d = {"header": header, "reply": reply}
    d.update(kw)
    return d


def H(method, dest="dom0"):
    if "+" not in method:
        method += "+"
    return f"{method} dom0 name {dest}"


fake = fq.FakeQubesd(SOCK).start()


def case(what, rules, args, want_rc, want_requests=None, out=None, err=None, env=None,
         stdin=subprocess.DEVNULL, check=None):
    """Runs qubectl ARGS against rules; checks exit status, the requests
    [(header, payload)] in order, each half-closed, and that `out`/`err`
    (strings) occur in stdout/stderr."""
    fake.set_rules(rules)
    fake.clear()
    rc, o, e = run(args, env=env, stdin=stdin)
    reqs = list(fake.requests)
    problems = []
    if rc != want_rc:
        problems.append(f"exit status {rc}, want {want_rc}")
    if want_requests is not None:
        got = [(r["header"], r["payload"]) for r in reqs]
        want = [(h, p if isinstance(p, bytes) else p.encode()) for h, p in want_requests]
        if got != want:
            problems.append(f"requests {got!r}\n want {want!r}")
        for r in reqs:
            if r["eof"] is False:
                problems.append(f"request {r['header']!r} was not half-closed")
            if r["eof"] and r["raw"] != r["header"].encode("latin-1") + b"\0" + r["payload"]:
                problems.append(f"raw bytes {r['raw']!r} are not header NUL payload")
    if out is not None and out not in o:
        problems.append(f"stdout lacks {out!r}")
    if err is not None and err not in e:
        problems.append(f"stderr lacks {err!r}")
    if check:
        msg = check(o, e, reqs)
        if msg:
            problems.append(msg)
    if problems:
        fail(what, "\n".join(problems) + f"\n--- stdout:\n{o}--- stderr:\n{e}")
    else:
        ok(what)
    return o, e, reqs


LIST = (b"0\0dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n"
        b"fedora class=TemplateVM state=Halted uuid=1\n"
        b"work class=AppVM state=Running uuid=2\n"
        b"vault class=AppVM state=Paused uuid=3\n")


def getall(label, tmpl, mem, extra=b""):
    return (b"0\0autostart default=True type=bool False\n"
            b"kernelopts default=False type=str a\\nb\\\\c\n"
            b"label default=False type=label " + label + b"\n"
            b"memory default=True type=int " + mem + b"\n"
            b"netvm default=True type=vm \n"
            b"template default=False type=vm " + tmpl + b"\n" + extra)


LS_RULES = [
    R(H("admin.vm.List"), LIST),
    R(H("admin.vm.property.GetAll", "fedora"), getall(b"black", b"", b"1024")),
    R(H("admin.vm.property.GetAll", "work"), getall(b"blue", b"fedora", b"400")),
    R(H("admin.vm.property.GetAll", "vault"), getall(b"red", b"fedora", b"400")),
    R(H("admin.vm.property.GetAll", "dom0"), b"0\0label default=False type=label black\n"),
    R(H("admin.label.Get+blue"), b"0\x000x3465a4"),
    R(H("admin.label.Get+red"), b"0\x000xcc0000"),
    R(H("admin.label.Get+black"), b"0\x000x000000"),
]

# ---------------------------------------------------------------- requests
case("create sends Create.AppVM with name and label",
     [R(None)], ["create", "--label", "red", "work"], 0,
     [(H("admin.vm.Create.AppVM"), "name=work label=red")])
case("create --class --template --property",
     [R(None)], ["create", "-C", "StandaloneVM", "--template=fedora", "--label", "blue",
                 "--property", "memory=800", "-p", "kernel-opts=quiet x", "sa"], 0,
     [(H("admin.vm.Create.StandaloneVM+fedora"), "name=sa label=blue"),
      (H("admin.vm.property.Set+memory", "sa"), "800"),
      (H("admin.vm.property.Set+kernel_opts", "sa"), "quiet x")])
case("create: a refused property removes the new qube again",
     [R(H("admin.vm.property.Set+memory", "w2"),
        b"2\0QubesPropertyValueError\0\0memory: invalid value 'x'\0"), R(None)],
     ["create", "--label", "red", "--property", "memory=x", "w2"], 1,
     [(H("admin.vm.Create.AppVM"), "name=w2 label=red"),
      (H("admin.vm.property.Set+memory", "w2"), "x"),
      (H("admin.vm.Remove", "w2"), "")],
     err="qubectl: w2: memory: invalid value 'x' (QubesPropertyValueError)")
case("remove --force sends Remove for each", [R(None)], ["remove", "-f", "a", "b"], 0,
     [(H("admin.vm.Remove", "a"), ""), (H("admin.vm.Remove", "b"), "")])
case("remove without a terminal and without --force refuses", [R(None)], ["remove", "a"], 2, [],
     err="use --force")
case("clone sends qube.vm.Clone+DST to SRC", [R(None)], ["clone", "work", "work2"], 0,
     [(H("qube.vm.Clone+work2", "work"), "")])
case("start", [R(None)], ["start", "a", "b"], 0,
     [(H("admin.vm.Start", "a"), ""), (H("admin.vm.Start", "b"), "")])
case("start: a failure does not stop the others, exit 1",
     [R(H("admin.vm.Start", "a"), b"2\0QubesVMNotHaltedError\0\0Qube a is running\0"), R(None)],
     ["start", "a", "b"], 1,
     [(H("admin.vm.Start", "a"), ""), (H("admin.vm.Start", "b"), "")],
     err="qubectl: a: Qube a is running (QubesVMNotHaltedError)")
case("shutdown", [R(None)], ["shutdown", "a"], 0, [(H("admin.vm.Shutdown", "a"), "")])
case("shutdown --wait", [R(None)], ["shutdown", "--wait", "a"], 0,
     [(H("admin.vm.Shutdown+wait", "a"), "")])
case("shutdown --force --wait", [R(None)], ["shutdown", "-f", "-w", "a"], 0,
     [(H("admin.vm.Shutdown+force+wait", "a"), "")])
case("shutdown --all: every qube not halted, dom0 excepted", [R(H("admin.vm.List"), LIST), R(None)],
     ["shutdown", "--all"], 0,
     [(H("admin.vm.List"), ""), (H("admin.vm.Shutdown", "work"), ""),
      (H("admin.vm.Shutdown", "vault"), "")])
t0 = time.monotonic()
case("shutdown --timeout: kills a qube that does not halt in time",
     [R(H("admin.vm.Shutdown+wait", "a"), delay=4), R(None)],
     ["shutdown", "--timeout", "1", "a"], 0,
     [(H("admin.vm.Shutdown+wait", "a"), ""), (H("admin.vm.Kill", "a"), "")],
     err="not halted after 1 s: killing it")
case("kill / pause / unpause", [R(None)], ["kill", "a"], 0, [(H("admin.vm.Kill", "a"), "")])
case("pause", [R(None)], ["pause", "a"], 0, [(H("admin.vm.Pause", "a"), "")])
case("unpause", [R(None)], ["unpause", "a"], 0, [(H("admin.vm.Unpause", "a"), "")])

PREFS = b"0\0autostart default=True type=bool False\nkernelopts default=False type=str a\\nb\nmemory default=True type=int 400\n"
case("prefs QUBE: every property, D for defaults",
     [R(H("admin.vm.property.GetAll", "work"), PREFS)], ["prefs", "work"], 0,
     [(H("admin.vm.property.GetAll", "work"), "")],
     out="autostart   D  False\nkernelopts  -  a\nb\nmemory      D  400\n")
case("prefs QUBE PROP", [R(H("admin.vm.property.Get+memory", "work"), b"0\0default=True type=int 400")],
     ["prefs", "work", "memory"], 0, [(H("admin.vm.property.Get+memory", "work"), "")], out="400\n")
case("prefs QUBE PROP VALUE (a value that starts with a dash, after --)", [R(None)],
     ["prefs", "work", "kernelopts", "--", "-quiet"], 0,
     [(H("admin.vm.property.Set+kernelopts", "work"), "-quiet")])
case("prefs --default", [R(None)], ["prefs", "-D", "work", "memory"], 0,
     [(H("admin.vm.property.Reset+memory", "work"), "")])
case("prefs --help-property", [R(H("admin.vm.property.Help+memory", "work"), b"0\0Initial memory in MiB")],
     ["prefs", "work", "--help-property", "memory"], 0,
     [(H("admin.vm.property.Help+memory", "work"), "")], out="Initial memory in MiB\n")
case("global-prefs PROP VALUE", [R(None)], ["global-prefs", "default_template", "fedora"], 0,
     [(H("admin.property.Set+default_template"), "fedora")])
case("global-prefs", [R(H("admin.property.GetAll"), b"0\0default_template default=False type=vm fedora\n")],
     ["global-prefs"], 0, [(H("admin.property.GetAll"), "")], out="default_template  -  fedora\n")
case("tags QUBE", [R(H("admin.vm.tag.List", "work"), b"0\0a\nb\n")], ["tags", "work"], 0,
     [(H("admin.vm.tag.List", "work"), "")], out="a\nb\n")
case("tags QUBE add", [R(None)], ["tags", "work", "add", "t1", "t2"], 0,
     [(H("admin.vm.tag.Set+t1", "work"), ""), (H("admin.vm.tag.Set+t2", "work"), "")])
case("tags QUBE del", [R(None)], ["tags", "work", "del", "t1"], 0,
     [(H("admin.vm.tag.Remove+t1", "work"), "")])
case("tags QUBE list TAG (absent: exit 1)", [R(H("admin.vm.tag.Get+t9", "work"), b"0\x000")],
     ["tags", "work", "list", "t9"], 1, [(H("admin.vm.tag.Get+t9", "work"), "")], err="no tag t9")
case("features QUBE",
     [R(H("admin.vm.feature.List", "work"), b"0\0gui\nservice.x\n"),
      R(H("admin.vm.feature.Get+gui", "work"), b"0\x001"),
      R(H("admin.vm.feature.Get+service.x", "work"), b"0\0on")],
     ["features", "work"], 0,
     [(H("admin.vm.feature.List", "work"), ""), (H("admin.vm.feature.Get+gui", "work"), ""),
      (H("admin.vm.feature.Get+service.x", "work"), "")], out="gui        1\nservice.x  on\n")
case("features QUBE KEY VALUE", [R(None)], ["features", "work", "gui", "1"], 0,
     [(H("admin.vm.feature.Set+gui", "work"), "1")])
case("features --unset", [R(None)], ["features", "--unset", "work", "gui"], 0,
     [(H("admin.vm.feature.Remove+gui", "work"), "")])
INFO = b"0\0pool=default\nvid=work/private\nsize=2147483648\nusage=1000\nrw=True\n"
case("volume list",
     [R(H("admin.vm.volume.List", "work"), b"0\0private\nroot\n"),
      R(H("admin.vm.volume.Info+private", "work"), INFO),
      R(H("admin.vm.volume.Info+root", "work"), INFO)],
     ["volume", "list", "work"], 0,
     [(H("admin.vm.volume.List", "work"), ""), (H("admin.vm.volume.Info+private", "work"), ""),
      (H("admin.vm.volume.Info+root", "work"), "")], out="work:private")
case("volume info QUBE:VOL KEY", [R(H("admin.vm.volume.Info+private", "work"), INFO)],
     ["volume", "info", "work:private", "size"], 0,
     [(H("admin.vm.volume.Info+private", "work"), "")], out="2147483648\n")
case("volume resize 10G", [R(None)], ["volume", "resize", "work:private", "10G"], 0,
     [(H("admin.vm.volume.Resize+private", "work"), "10737418240")])
case("volume revert", [R(None)], ["volume", "revert", "work:private"], 0,
     [(H("admin.vm.volume.Revert+private", "work"), "")])

kernel = os.path.join(work, "vmlinuz")
initrd = os.path.join(work, "initrd.img")
root = os.path.join(work, "root.img")
with open(kernel, "wb") as f:
    f.write(bytes(range(256)) * 1024)  # 256 KiB: over the 64 KiB request cap, and NULs
with open(initrd, "wb") as f:
    f.write(b"initrd\0data")
with open(root, "wb") as f:
    f.write(os.urandom(300000))
with open(kernel, "rb") as f:
    KB = f.read()
with open(root, "rb") as f:
    RB = f.read()
case("template import streams each file after its header",
     [R(None)], ["template", "import", "--kernel", kernel, "--initrd", initrd, "--root", root, "deb"], 0,
     [(H("admin.vm.Create.TemplateVM"), "name=deb label=black"),
      (H("qube.template.Import+kernel", "deb"), KB),
      (H("qube.template.Import+initrd", "deb"), b"initrd\0data"),
      (H("qube.template.Import+root", "deb"), RB)])
case("template import: a failed import removes the template",
     [R(H("qube.template.Import+initrd", "deb"), b"2\0QubesValueError\0\0initrd is over 512 MiB\0"),
      R(None)],
     ["template", "import", "-k", kernel, "-i", initrd, "--label", "gray", "deb"], 1,
     [(H("admin.vm.Create.TemplateVM"), "name=deb label=gray"),
      (H("qube.template.Import+kernel", "deb"), KB),
      (H("qube.template.Import+initrd", "deb"), b"initrd\0data"),
      (H("admin.vm.Remove", "deb"), "")],
     err="qubectl: deb: initrd is over 512 MiB (QubesValueError)")
case("template import: a missing file is named and nothing is sent", [R(None)],
     ["template", "import", "--kernel", kernel, "--initrd", os.path.join(work, "nope"), "deb"], 1, [],
     err="--initrd " + os.path.join(work, "nope") + ": No such file or directory")
case("template import: the daemon answering early (over its cap) is still reported",
     [R(H("qube.template.Import+kernel", "deb"), b"2\0QubesValueError\0\0kernel too large\0",
        action="close_after_header"), R(None)],
     ["template", "import", "-k", kernel, "-i", initrd, "deb"], 1, None, err="kernel too large")

EV = [b"1\0dom0\0connection-established\0\0",
      b"1\0work\0domain-start\0\0" + b"1\0dom0\0domain-add\0vm\0new\0",
      b"\0" + b"1\0work\0property-set:memory\0name\0memory\0newvalue\0800\0oldvalue\x00400\0\0"]
case("events: one line per event; the stream's end is exit 3",
     [R(H("admin.Events"), chunks=EV)], ["events"], 3, [(H("admin.Events"), "")],
     out="dom0 connection-established\nwork domain-start\ndom0 domain-add vm=new\n"
         "work property-set:memory name=memory newvalue=800 oldvalue=400\n",
     err="closed the event stream")

# ---------------------------------------------------------------- replies
case("exception without format arguments",
     [R(None, b"2\0QubesVMNotFoundError\0\0No such domain: 'ghost'\0")], ["start", "ghost"], 1,
     err="qubectl: ghost: No such domain: 'ghost' (QubesVMNotFoundError)\n")
case("exception with format arguments",
     [R(None, b"2\0QubesVMNotHaltedError\0\0Qube %s is %s (%d%%)\0work\0Running\x0042\0")],
     ["kill", "work"], 1, err="qubectl: work: Qube work is Running (42%) (QubesVMNotHaltedError)\n")
case("exception: control bytes in the message are not passed to the terminal",
     [R(None, b"2\0QubesException\0\0bad \x1b]0;x\x07 thing\0")], ["kill", "work"], 1,
     check=lambda o, e, r: "\x1b" in e and "escape byte reached stderr")
case("truncated exception reply: exit 3",
     [R(None, b"2\0QubesException\0\0half a mess")], ["kill", "work"], 3,
     err="sent a malformed or truncated reply")
case("reply of one byte: exit 3", [R(None, b"0")], ["kill", "work"], 3, err="malformed or truncated")
case("reply of an unknown kind: exit 3", [R(None, b"7\0what")], ["kill", "work"], 3, err="malformed")
case("empty reply: exit 3", [R(None, action="noreply")], ["kill", "work"], 3,
     err="closed the connection without a reply")
case("a server that closes at once: exit 3", [R(None, action="close")], ["kill", "work"], 3,
     err="qubed at " + SOCK)
rc, o, e = run(["ls"], sock=os.path.join(work, "none.sock"))
if rc == 3 and f"cannot reach qubed at {work}/none.sock: No such file or directory" in e:
    ok("missing socket: exit 3, names the path and the errno")
else:
    fail("missing socket", f"rc={rc} {e}")
fake.set_rules([R(None)])
fake.clear()
rc, o, e = run(["kill", "a"], sock=None, env={"QUBED_SOCKET": SOCK})
if rc == 0 and len(fake.requests) == 1:
    ok("QUBED_SOCKET is used without --socket")
else:
    fail("QUBED_SOCKET", f"rc={rc} {e}")
rc, o, e = run(["kill", "a"], sock=os.path.join(work, "none.sock"), env={"QUBED_SOCKET": SOCK})
if rc == 3 and "none.sock" in e:
    ok("--socket beats QUBED_SOCKET")
else:
    fail("--socket beats QUBED_SOCKET", f"rc={rc} {e}")
rc, o, e = run(["--socket"], sock=None)
if rc == 2 and "--socket needs a value" in e:
    ok("--socket without a value: exit 2")
else:
    fail("--socket without a value", f"rc={rc} {e}")

# ---------------------------------------------------------------- usage
for what, args, needle in [
    ("create without --label", ["create", "work"], "--label is required"),
    ("create with a bad name", ["create", "--label", "red", "1work"], "invalid qube name \"1work\""),
    ("create with a bad class", ["create", "--label", "red", "--class", "Foo", "w"], "--class \"Foo\""),
    ("create --property without =", ["create", "--label", "red", "-p", "memory", "w"], "--property \"memory\""),
    ("unknown option", ["start", "--frob", "a"], "unknown option \"--frob\""),
    ("option without value", ["create", "w", "--label"], "option --label needs a value"),
    ("flag given a value", ["shutdown", "--wait=yes", "a"], "option --wait takes no value"),
    ("shutdown --timeout not a number", ["shutdown", "--timeout", "soon", "a"], "--timeout \"soon\""),
    ("shutdown without names", ["shutdown"], "expected qube NAMEs or --all"),
    ("shutdown --all with names", ["shutdown", "--all", "a"], "--all and qube names"),
    ("ls --format xml", ["ls", "--format", "xml"], "--format \"xml\""),
    ("ls --fields bad", ["ls", "--fields", "name,a;b"], "invalid field \"a;b\""),
    ("volume resize bad size", ["volume", "resize", "work:private", "10Q"], "SIZE \"10Q\""),
    ("volume without colon", ["volume", "info", "work"], "\"work\": expected QUBE:VOLUME"),
    ("tags bad action", ["tags", "work", "frob"], "unknown action \"frob\""),
    ("prefs -D without PROP", ["prefs", "-D", "work"], "--default needs exactly one PROPERTY"),
    ("features --unset with a value", ["features", "--unset", "w", "k", "v"], "--unset needs exactly one KEY"),
    ("template import without --kernel", ["template", "import", "--initrd", initrd, "t"], "--kernel FILE is required"),
    ("clone with one name", ["clone", "a"], "expected SRC and DST"),
    ("start with a name with a space", ["start", "a b"], "invalid qube name \"a b\""),
    ("unknown command", ["frobnicate"], "unknown command \"frobnicate\""),
    ("unknown group command", ["volume", "frob"], "unknown command \"volume frob\""),
]:
    case("usage: " + what, [R(None)], args, 2, [], err=needle)
for args in (["ls", "--help"], ["volume", "resize", "--help"], ["template", "import", "-h"]):
    rc, o, e = run(args)
    if rc == 0 and o.startswith("usage: qubectl " + " ".join(args[:-1])):
        ok(f"{' '.join(args)} prints the command's usage")
    else:
        fail(f"{' '.join(args)}", f"rc={rc}\n{o}{e}")

# ---------------------------------------------------------------- ls
o, e, reqs = case("ls: table", LS_RULES, ["ls"], 0,
                  [(H("admin.vm.List"), ""), (H("admin.vm.property.GetAll", "fedora"), ""),
                   (H("admin.vm.property.GetAll", "work"), ""),
                   (H("admin.vm.property.GetAll", "vault"), "")])
want = ("NAME    CLASS       STATE    LABEL  TEMPLATE  MEMORY\n"
        "fedora  TemplateVM  Halted   black  -         1024\n"
        "work    AppVM       Running  blue   fedora    400\n"
        "vault   AppVM       Paused   red    fedora    400\n")
if o == want and "\x1b" not in o:
    ok("ls: table columns, no colour when stdout is not a terminal")
else:
    fail("ls: table", f"got:\n{o}want:\n{want}")
case("ls --all lists dom0", LS_RULES, ["ls", "--all", "--fields", "name,state"], 0,
     out="NAME    STATE\ndom0    Running\nfedora  Halted\n")
case("ls --format names", LS_RULES, ["ls", "--format", "names"], 0,
     [(H("admin.vm.List"), ""), (H("admin.vm.property.GetAll", "fedora"), ""),
      (H("admin.vm.property.GetAll", "work"), ""), (H("admin.vm.property.GetAll", "vault"), "")],
     out="fedora\nwork\nvault\n")
# internal qubes (preloaded disposables) are listed only with --all
LS_INTERNAL = [R(H("admin.vm.List"), LIST + b"disp7 class=DispVM state=Paused uuid=4\n"),
               R(H("admin.vm.property.GetAll", "disp7"),
                 getall(b"red", b"work", b"400", b"internal default=False type=bool True\n"))] + LS_RULES[1:]
case("ls hides an internal qube", LS_INTERNAL, ["ls", "--format", "names"], 0,
     check=lambda o, e, r: None if o == "fedora\nwork\nvault\n" else f"got {o!r}")
case("ls --all shows an internal qube", LS_INTERNAL, ["ls", "--all", "--format", "names"], 0,
     check=lambda o, e, r: None if o == "dom0\nfedora\nwork\nvault\ndisp7\n" else f"got {o!r}")
o, e, reqs = case("ls --format json", LS_RULES, ["ls", "--format", "json"], 0)
jt = subprocess.run([sys.executable, "-m", "json.tool"], input=o.encode(), capture_output=True)
if jt.returncode == 0:
    ok("ls --format json is valid JSON (python3 -m json.tool)")
else:
    fail("ls json is not valid JSON", jt.stderr.decode())
try:
    arr = json.loads(o)
    w = [q for q in arr if q["name"] == "work"][0]
    p = w["properties"]
    if (w["class"] == "AppVM" and w["state"] == "Running" and p["memory"] == 400 and
            p["autostart"] is False and p["netvm"] is None and p["kernelopts"] == "a\nb\\c" and
            p["template"] == "fedora" and len(arr) == 3):
        ok("ls json: typed values (int, bool, null vm), unescaped strings, every property")
    else:
        fail("ls json values", json.dumps(w))
except (ValueError, KeyError, IndexError) as ex:
    fail("ls json", repr(ex))


def run_pty(args, env_extra):
    fake.set_rules(LS_RULES)
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env.update(env_extra)
    master, slave = pty.openpty()
    p = subprocess.Popen([QUBECTL, "--socket", SOCK] + args, stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        out += b
    os.close(master)
    p.wait(10)
    return p.returncode, out.decode(errors="replace")


rc, o = run_pty(["ls"], {})
if rc == 0 and "\x1b[38;2;52;101;164mblue\x1b[0m" in o and "\x1b[38;2;204;0;0mred\x1b[0m" in o:
    ok("ls on a pty: labels in 24-bit colour")
else:
    fail("ls on a pty: colour", repr(o))
# the colour codes do not shift the columns
plain = o.replace("\x1b[38;2;52;101;164m", "").replace("\x1b[38;2;204;0;0m", "") \
         .replace("\x1b[38;2;0;0;0m", "").replace("\x1b[0m", "").replace("\r\n", "\n")
if plain == want:
    ok("ls on a pty: same columns as without colour")
else:
    fail("ls on a pty: columns", repr(plain))
rc, o = run_pty(["ls"], {"NO_COLOR": "1"})
if rc == 0 and "\x1b" not in o and "blue" in o:
    ok("ls on a pty with NO_COLOR: no colour")
else:
    fail("ls NO_COLOR", repr(o))


# start progress on a terminal: stderr is the pty here
def start_on_pty(delay):
    fake.set_rules([R(H("admin.vm.Start", "slow"), delay=delay)])
    master, slave = pty.openpty()
    p = subprocess.Popen([QUBECTL, "--socket", SOCK, "start", "slow"], stdout=subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    err = b""
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        err += b
    os.close(master)
    p.wait(10)
    return p.returncode, err.decode(errors="replace")


rc, e = start_on_pty(2.5)
if rc == 0 and "starting slow... 1s" in e and "starting slow... 2s" in e and e.endswith("\r\x1b[K"):
    ok("start on a terminal: progress after a second, line cleared at the end")
else:
    fail("start progress", repr(e))
rc, e = start_on_pty(0.2)
if rc == 0 and e == "":
    ok("start on a terminal: nothing shown for a quick start")
else:
    fail("quick start progress", repr(e))
fake.set_rules([R(H("admin.vm.Start", "slow"), delay=1.5)])
rc, o, e = run(["start", "slow"])
if rc == 0 and e == "":
    ok("start not on a terminal: no progress")
else:
    fail("start progress without tty", repr(e))



# remove on a terminal: asks, and only "y"/"yes" removes
def remove_on_pty(answer):
    fake.set_rules([R(None)])
    fake.clear()
    master, slave = pty.openpty()
    p = subprocess.Popen([QUBECTL, "--socket", SOCK, "remove", "a", "b"], stdin=slave,
                         stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 10
    while b"[y/N]" not in out and time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 1)
        if r:
            out += os.read(master, 4096)
    os.write(master, answer)
    while True:
        r, _, _ = select.select([master], [], [], 5)
        if not r:
            break
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    os.close(master)
    p.wait(10)
    return p.returncode, out.decode(errors="replace"), [r["header"] for r in fake.requests]


rc, o, reqs = remove_on_pty(b"y\n")
if rc == 0 and "Remove qubes a, b and all their data? [y/N]" in o and \
        reqs == [H("admin.vm.Remove", "a"), H("admin.vm.Remove", "b")]:
    ok("remove on a terminal: asks once, y removes every qube")
else:
    fail("remove on a terminal, y", f"rc={rc} {o!r} {reqs}")
rc, o, reqs = remove_on_pty(b"\n")
if rc == 1 and "nothing removed" in o and reqs == []:
    ok("remove on a terminal: the default answer removes nothing")
else:
    fail("remove on a terminal, default", f"rc={rc} {o!r} {reqs}")

fake.stop()

# ---------------------------------------------------------------- real qubed
real = os.environ.get("QUBECTL_TEST_SOCKET")
if real:
    psock = os.path.join(work, "proxy.sock")
    fake = fq.FakeQubesd(psock, upstream=real).start()
    n = f"clitest{os.getpid() % 100000}"

    def rcase(what, args, want_rc, want_headers=None, out=None):
        fake.clear()
        rc, o, e = run(args, sock=psock, timeout=600)
        probs = []
        if rc != want_rc:
            probs.append(f"exit {rc}, want {want_rc}")
        if want_headers is not None:
            got = [r["header"] for r in fake.requests]
            if got != want_headers:
                probs.append(f"requests {got}")
        if any(r["eof"] is False for r in fake.requests):
            probs.append("a request was not half-closed")
        if out is not None and out not in o:
            probs.append(f"stdout lacks {out!r}")
        if probs:
            fail("real qubed: " + what, "\n".join(probs) + f"\n{o}{e}")
        else:
            ok("real qubed: " + what)
        return o

    rcase("create (StandaloneVM)", ["create", "-C", "StandaloneVM", "--label", "green", n], 0,
          [H("admin.vm.Create.StandaloneVM")])
    rcase("create again: exit 1", ["create", "-C", "StandaloneVM", "--label", "green", n], 1)
    rcase("prefs set", ["prefs", n, "memory", "333"], 0)
    rcase("prefs get", ["prefs", n, "memory"], 0, out="333\n")
    rcase("prefs all shows it set", ["prefs", n], 0, out="memory")
    rcase("prefs reset", ["prefs", "-D", n, "memory"], 0)
    rcase("tags add", ["tags", n, "add", "t1"], 0)
    rcase("tags list", ["tags", n], 0, out="t1")
    rcase("features set", ["features", n, "k1", "v1"], 0)
    rcase("features get", ["features", n, "k1"], 0, out="v1\n")
    o = rcase("ls json", ["ls", "--format", "json"], 0)
    try:
        if not any(q["name"] == n and q["state"] == "Halted" for q in json.loads(o)):
            fail("real qubed: ls json lacks the new qube")
    except ValueError:
        fail("real qubed: ls json is not JSON")
    rcase("clone", ["clone", n, n + "c"], 0)
    rcase("remove both", ["remove", "-f", n, n + "c"], 0)
    rcase("prefs of a removed qube: exit 1", ["prefs", n], 1)
    fake.stop()
else:
    print("note: QUBECTL_TEST_SOCKET not set: the part against a real qubed was not run")

print(f"qubectl-admin: {passes} passed, {fails} failed")
sys.exit(1 if fails else 0)
