#!/usr/bin/env python3
# Random differential check: `qubectl policy eval` against Qubes OS 4.2's own
# evaluator (qrexec/policy/parser.py) on generated policies (two files,
# !include, !include-service in the old format) and requests.
#   QREXEC_SRC=DIR random-diff.py QUBECTL SYSTEM_JSON SEED COUNT
# Known deliberate differences are not generated: dom0 as a caller, and
# ask target=@adminvm / target=@dispvm; requests where Qubes' evaluator
# fails with an internal error (an AssertionError when default_target= is
# not among the offered targets) are counted as skipped.
import os, sys, json, pathlib, random, subprocess, tempfile, logging
logging.disable(logging.CRITICAL)
sys.path.insert(0, os.environ.get('QREXEC_SRC', '/tmp/qrexec42'))
from qrexec.policy import parser
from qrexec import exc

Q, SYS = sys.argv[1], sys.argv[2]
info = json.load(open(SYS))
names = [n for n in info['domains'] if n != 'dom0']
svcs = ['s.A', 's.B', '*']
args = ['*', '+', '+x']
srcs = names + ['*', '@anyvm', '@tag:work', '@tag:dvm-tag', '@type:AppVM', '@type:TemplateVM', 'nosuch']
tgts = names + ['*', '@anyvm', '@default', '@adminvm', 'dom0', '@tag:secret', '@tag:work', '@type:AppVM',
                '@dispvm', '@dispvm:default-dvm', '@dispvm:other-dvm', '@dispvm:@tag:dvm-tag', 'nosuch']
redirs = names + ['@dispvm', '@dispvm:default-dvm', 'dom0', 'nosuch']
req_tgts = names + ['@default', '@dispvm', '@dispvm:default-dvm', '@dispvm:other-dvm', 'dom0', 'nosuch']

def rand_rule(r):
    s = r.choice(svcs)
    a = '*' if s == '*' else r.choice(args)
    act = r.choice(['allow', 'deny', 'ask'])
    params = []
    if act != 'deny' and r.random() < 0.3: params.append('target=' + r.choice(redirs))
    if act == 'ask' and r.random() < 0.3: params.append('default_target=' + r.choice(redirs))
    if act != 'deny' and r.random() < 0.2: params.append('autostart=no')
    if act != 'deny' and r.random() < 0.1: params.append('user=u')
    if r.random() < 0.1: params.append('notify=yes')
    t = r.choice(tgts)
    if t == '@default' and act == 'allow' and not any(p.startswith('target=') for p in params):
        params.append('target=' + r.choice(names))
    # known deviation: ask target=@adminvm/@dispvm
    if act == 'ask':
        params = [p for p in params if p not in ('target=dom0', 'target=@dispvm')]
    return ' '.join([s, a, r.choice(srcs), t, act] + params)

def qubes(pdir, src, tgt, svcarg):
    svc, arg = (svcarg.split('+', 1) + [''])[:2]
    arg = '+' + arg
    try:
        policy = parser.FilePolicy(policy_path=pathlib.Path(pdir))
        req = parser.Request(svc, arg, src, tgt, system_info=info)
        res = policy.evaluate(req)
    except (exc.AccessDenied, exc.PolicySyntaxError):
        return ['result=deny']
    except Exception as e:
        return None
    if isinstance(res, parser.AllowResolution):
        if req.source == res.target: return ['result=deny']
        out = ['result=allow', 'target=%s' % res.target, 'autostart=%s' % ('yes' if res.autostart else 'no')]
        if res.user: out.append('user=%s' % res.user)
        return out + ['requested_target=%s' % req.target]
    out = ['result=ask', 'targets=%s' % ' '.join(sorted(str(t) for t in res.targets_for_ask)),
           'default_target=%s' % (res.default_target or ''), 'autostart=%s' % ('yes' if res.autostart else 'no')]
    if res.user: out.append('user=%s' % res.user)
    return out + ['requested_target=%s' % req.target]

def main():
    seed = int(sys.argv[3]); n = int(sys.argv[4])
    r = random.Random(seed)
    agree = total = skipped = 0
    diffs = []
    for i in range(n):
        with tempfile.TemporaryDirectory() as d:
            rules = []
            os.makedirs(os.path.join(d, 'include'))
            for fname in ('10-a.policy', '50-r.policy'):
                lines = [rand_rule(r) for _ in range(r.randint(1, 8))]
                if r.random() < 0.4:
                    inc = [rand_rule(r) for _ in range(r.randint(1, 4))]
                    open(os.path.join(d, 'include', 'x' + fname), 'w').write('\n'.join(inc) + '\n')
                    lines.insert(r.randint(0, len(lines)), '!include include/x' + fname)
                    rules += ['# include/x' + fname] + inc
                if r.random() < 0.4:
                    old_lines = []
                    for _ in range(r.randint(1, 4)):
                        act = r.choice(['allow', 'deny', 'ask'])
                        p = ''
                        if act == 'allow' and r.random() < 0.5: p = ',target=' + r.choice(names)
                        old_lines.append(r.choice(['$anyvm', 'work', '$tag:work', 'personal']) + ' ' + r.choice(['$anyvm', '$default', 'vault', '$dispvm']) + ' ' + act + p)
                    old_lines = [l if not (' $default allow' in l and 'target=' not in l) else l + ',target=vault' for l in old_lines]
                    open(os.path.join(d, 'include', 'svc' + fname), 'w').write('\n'.join(old_lines) + '\n')
                    lines.insert(r.randint(0, len(lines)), '!include-service ' + r.choice(['s.A', 's.B']) + ' ' + r.choice(['*', '+x']) + ' include/svc' + fname)
                    rules += ['# svc' + fname] + old_lines
                open(os.path.join(d, fname), 'w').write('\n'.join(lines) + '\n')
                rules = ['## ' + fname] + lines + rules
            for _ in range(5):
                src = r.choice(names); tgt = r.choice(req_tgts)
                svc = r.choice(['s.A', 's.B', 's.C']) + r.choice(['', '+', '+x', '+y'])
                ref = qubes(d, src, tgt, svc)
                if ref is None:
                    skipped += 1; continue
                got = subprocess.run([Q, 'policy', 'eval', '--policy-dir', d, '--system-info', SYS, src, tgt, svc],
                                     capture_output=True, text=True).stdout.splitlines()
                total += 1
                if got == ref: agree += 1
                else: diffs.append((rules, src, tgt, svc, ref, got))
    print(f'agree {agree}/{total} (skipped {skipped} where Qubes raised an internal error)')
    for rules, src, tgt, svc, ref, got in diffs[:8]:
        print('---'); print('\n'.join(rules)); print('REQ', src, tgt, svc); print('QUBES', ref); print('OURS ', got)
main()
