#!/usr/bin/env python3
# Differential driver: evaluates one request with Qubes 4.2's qrexec policy
# parser and prints it like `qubectl policy eval`.  Needs the qrexec Python
# package of Qubes OS 4.2 (qubes-core-qrexec, its qrexec/ directory) under
# $QREXEC_SRC; not part of the test suite.  Used as
#   QREXEC_SRC=DIR run-cases.py QUBECTL CASES --reference "python3 qubes-eval.py"
#   (arguments: POLICY_DIR SYSTEM_JSON SOURCE TARGET SERVICE[+ARG])
import os, sys, json, pathlib
sys.path.insert(0, os.environ.get('QREXEC_SRC', '/tmp/qrexec42'))
from qrexec.policy import parser
from qrexec import exc

def main():
    pdir, sysfile, source, target, svcarg = sys.argv[1:6]
    info = json.load(open(sysfile))
    for d in info['domains'].values():
        d.setdefault('tags', []); d.setdefault('template_for_dispvms', False)
        d.setdefault('default_dispvm', None); d.setdefault('power_state', 'Halted')
    if '+' in svcarg:
        svc, arg = svcarg.split('+', 1); arg = '+' + arg
    else:
        svc, arg = svcarg, '+'
    try:
        policy = parser.FilePolicy(policy_path=pathlib.Path(pdir))
        req = parser.Request(svc, arg, source, target, system_info=info)
        res = policy.evaluate(req)
    except (exc.AccessDenied, exc.PolicySyntaxError) as e:
        print('result=deny'); print('#', e, file=sys.stderr); return
    except Exception as e:
        print('result=error', type(e).__name__, e); return
    if isinstance(res, parser.AllowResolution):
        if req.source == res.target:
            print('result=deny'); return
        print('result=allow'); print('target=%s' % res.target)
        print('autostart=%s' % ('yes' if res.autostart else 'no'))
        if res.user: print('user=%s' % res.user)
        print('requested_target=%s' % req.target)
    else:
        print('result=ask'); print('targets=%s' % ' '.join(sorted(str(t) for t in res.targets_for_ask)))
        print('default_target=%s' % (res.default_target or ''))
        print('autostart=%s' % ('yes' if res.autostart else 'no'))
        if res.user: print('user=%s' % res.user)
        print('requested_target=%s' % req.target)
main()
