#!/usr/bin/env python3
# Differential driver: evaluates one request with Qubes 4.3's qrexec policy
# parser and prints it like `qubectl policy eval`.  Needs the qrexec Python
# package of Qubes OS 4.3 (qubes-core-qrexec release4.3, its qrexec/
# directory) under $QREXEC_SRC; no Qubes code is part of this repository
# and this is not part of the test suite.  Used as
#   QREXEC_SRC=DIR run-cases.py QUBECTL CASES --reference "python3 qubes-eval.py"
#   (arguments: POLICY_DIR SYSTEM_JSON SOURCE TARGET SERVICE[+ARG])
#
# The system info is completed as qrexec's get_system_info() and qubesd do:
# every domain is also a key uuid:UUID, dom0 exists with the nil UUID, and a
# qube the JSON gives no uuid gets a made-up one (Qubes' ask collection
# needs the caller's uuid; libqpolicy then simply has none for it).
import asyncio, hashlib, os, sys, json, pathlib, logging
logging.disable(logging.CRITICAL)
sys.path.insert(0, os.environ.get('QREXEC_SRC', '/tmp/qrexec43'))
from qrexec.policy import parser  # noqa: E402
from qrexec import exc  # noqa: E402

NIL = '00000000-0000-0000-0000-000000000000'


MADE_UP = set()


def load_info(path):
    info = json.load(open(path))
    dom = info['domains']
    dom.setdefault('dom0', {'type': 'AdminVM', 'power_state': 'Running'})
    for name, d in list(dom.items()):
        d.setdefault('tags', []); d.setdefault('template_for_dispvms', False)
        d.setdefault('default_dispvm', None); d.setdefault('power_state', 'Halted')
        if name == 'dom0':
            d.setdefault('uuid', NIL)
        elif 'uuid' not in d:
            h = hashlib.sha256(name.encode()).hexdigest()
            d['uuid'] = '%s-%s-%s-%s-%s' % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])
            MADE_UP.add(d['uuid'])
        d['name'] = name
        dom['uuid:' + d['uuid']] = d
    return info


def main():
    pdir, sysfile, source, target, svcarg = sys.argv[1:6]
    info = load_info(sysfile)
    if '+' in svcarg:
        svc, arg = svcarg.split('+', 1); arg = '+' + arg
    else:
        svc, arg = svcarg, '+'
    try:
        policy = parser.FilePolicy(policy_path=pathlib.Path(pdir))
        req = parser.Request(svc, arg, source, target, system_info=info)
        res = policy.evaluate(req)
        if isinstance(res, parser.AllowResolution):
            out = asyncio.run(res.execute())
    except (exc.AccessDenied, exc.PolicySyntaxError, exc.RequestError) as e:
        print('result=deny'); print('#', e, file=sys.stderr); return
    except Exception as e:
        print('result=error', type(e).__name__, e); return
    if isinstance(res, parser.AllowResolution):
        kv = dict(line.split('=', 1) for line in out.splitlines())
        print('result=allow'); print('target=%s' % kv['target'])
        if 'target_uuid' in kv and kv['target_uuid'].rsplit(':', 1)[1] not in MADE_UP:
            print('target_uuid=%s' % kv['target_uuid'])
        print('autostart=%s' % ('yes' if kv['autostart'] == 'True' else 'no'))
        if kv['user'] != 'DEFAULT': print('user=%s' % kv['user'])
        print('requested_target=%s' % kv['requested_target'])
    else:
        print('result=ask'); print('targets=%s' % ' '.join(sorted(str(t) for t in res.targets_for_ask)))
        print('default_target=%s' % (res.default_target or ''))
        print('autostart=%s' % ('yes' if res.autostart else 'no'))
        if res.user: print('user=%s' % res.user)
        print('requested_target=%s' % req.target)


main()
