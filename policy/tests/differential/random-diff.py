#!/usr/bin/env python3
# Random differential check against Qubes OS's own policy evaluator
# (qrexec/policy/parser.py of qubes-core-qrexec, release 4.3), imported from
# a local checkout given in $QREXEC_SRC (its directory holding qrexec/); no
# Qubes code is part of this repository.
#
# Generates policies (two files, !include, !include-service in the old
# format) over every token form, including uuid: references everywhere they
# can appear, internal qubes and the admin qube as source and target, plus
# requests, and asks Qubes' evaluator what it decides (for allow: what its
# AllowResolution.execute() sends to qrexec-daemon).
#
#   QREXEC_SRC=DIR random-diff.py --vectors OUT.json SYSTEM_JSON SEED COUNT
#       writes the decisions as replay vectors (policy/tests/differential/
#       vectors.json: seed 9, count 1000; replayed by policy/tests/
#       replay-vectors.c, meson test policy-qubes-vectors)
#   QREXEC_SRC=DIR random-diff.py --qubectl QUBECTL SYSTEM_JSON SEED COUNT
#       compares with `qubectl policy eval` directly and prints differences
#
# Each vector has "qubes" (what Qubes decided) and "expect" (what libqpolicy
# must decide).  They are the same except for the deliberate differences
# of docs/policy.md, each marked with "deviation": NAME.  Requests on which
# Qubes' evaluator fails with an internal error (an exception other than
# AccessDenied, e.g. a KeyError for @dispvm:NAME of an unknown qube in an
# ask rule) are counted as skipped and not written.
import asyncio, json, logging, os, pathlib, random, subprocess, sys, tempfile
logging.disable(logging.CRITICAL)
sys.path.insert(0, os.environ.get('QREXEC_SRC', '/tmp/qrexec43'))
from qrexec.policy import parser  # noqa: E402
from qrexec import exc  # noqa: E402

ZERO = 'uuid:00000000-0000-0000-0000-000000000000'


def load_info(path):
    """System info as qrexec's get_system_info() returns it: every domain
    also under uuid:UUID, with its name."""
    info = json.load(open(path))
    dom = info['domains']
    for name, d in list(dom.items()):
        d.setdefault('tags', []); d.setdefault('template_for_dispvms', False)
        d.setdefault('default_dispvm', None); d.setdefault('power_state', 'Halted')
        d['name'] = name
        if 'uuid' in d:
            dom['uuid:' + d['uuid']] = d
    return info


def tokens(info):
    dom = info['domains']
    names = [n for n in dom if not n.startswith('uuid:') and n != 'dom0']
    uuids = ['uuid:' + dom[n]['uuid'] for n in names]
    tmpls = [n for n in names if dom[n]['template_for_dispvms']]
    nosuch_uuid = 'uuid:11111111-2222-3333-4444-555555555555'
    # Qubes looks uuids up as written: another spelling names nothing
    upper_uuid = 'uuid:' + dom['work']['uuid'].upper()
    t = {}
    t['src'] = names + uuids + ['*', '@anyvm', '@adminvm', 'dom0', ZERO, '@tag:work', '@tag:dvm-tag',
                                '@tag:admin-tag', '@type:AppVM', '@type:AdminVM', '@type:TemplateVM',
                                'nosuch', nosuch_uuid, upper_uuid]
    t['tgt'] = names + uuids + ['*', '@anyvm', '@default', '@adminvm', 'dom0', ZERO, '@tag:secret',
                                '@tag:work', '@tag:dvm-tag', '@tag:admin-tag', '@type:AppVM',
                                '@type:AdminVM', '@dispvm', '@dispvm:@tag:dvm-tag', 'nosuch',
                                nosuch_uuid, upper_uuid] + \
        ['@dispvm:' + n for n in tmpls] + ['@dispvm:' + u for u in ('uuid:' + dom[n]['uuid'] for n in tmpls)]
    t['redir'] = names + uuids + ['@dispvm', '@adminvm', 'dom0', ZERO, 'nosuch', nosuch_uuid, upper_uuid] + \
        ['@dispvm:' + n for n in tmpls] + ['@dispvm:uuid:' + dom[n]['uuid'] for n in tmpls]
    t['req_src'] = names + ['dom0']
    t['req_tgt'] = names + uuids + ['@default', '@adminvm', 'dom0', ZERO, '@dispvm', 'nosuch', nosuch_uuid,
                                    upper_uuid, '@dispvm:nosuch', '@dispvm:dom0', '@dispvm:' + ZERO,
                                    '@dispvm:uuid:' + dom['work']['uuid']] + \
        ['@dispvm:' + n for n in tmpls] + ['@dispvm:uuid:' + dom[n]['uuid'] for n in tmpls]
    t['names'] = names
    return t


def rand_rule(r, t):
    s = r.choice(['s.A', 's.B', '*'])
    a = '*' if s == '*' else r.choice(['*', '+', '+x'])
    act = r.choice(['allow', 'deny', 'ask'])
    params = []
    if act != 'deny' and r.random() < 0.35: params.append('target=' + r.choice(t['redir']))
    if act == 'ask' and r.random() < 0.35: params.append('default_target=' + r.choice(t['redir']))
    if act != 'deny' and r.random() < 0.2: params.append('autostart=no')
    if act != 'deny' and r.random() < 0.1: params.append('user=u')
    if r.random() < 0.1: params.append('notify=yes')
    tgt = r.choice(t['tgt'])
    if tgt == '@default' and act == 'allow' and not any(p.startswith('target=') for p in params):
        params.append('target=' + r.choice(t['names']))
    # ask target=@dispvm: Qubes offers the bare keyword, here the caller's
    # default disposable (deviation ask-dispvm-keyword, see deviation())
    return ' '.join([s, a, r.choice(t['src']), tgt, act] + params)


def gen_policy(r, t, d):
    """Writes one random policy into directory D; returns its files."""
    files = {}
    os.makedirs(os.path.join(d, 'include'))
    for fname in ('10-a.policy', '50-r.policy'):
        lines = [rand_rule(r, t) for _ in range(r.randint(1, 8))]
        if r.random() < 0.4:
            inc = [rand_rule(r, t) for _ in range(r.randint(1, 4))]
            files['include/x' + fname] = '\n'.join(inc) + '\n'
            lines.insert(r.randint(0, len(lines)), '!include include/x' + fname)
        if r.random() < 0.3:
            old = []
            for _ in range(r.randint(1, 4)):
                act = r.choice(['allow', 'deny', 'ask'])
                p = ''
                if act == 'allow' and r.random() < 0.5: p = ',target=' + r.choice(t['names'])
                src = r.choice(['$anyvm', 'work', '$tag:work', 'personal', 'dom0'])
                tgt = r.choice(['$anyvm', '$default', 'vault', '$dispvm', 'sys-hidden'])
                if tgt == '$default' and act == 'allow' and not p: p = ',target=vault'
                old.append('%s %s %s%s' % (src, tgt, act, p))
            files['include/svc' + fname] = '\n'.join(old) + '\n'
            lines.insert(r.randint(0, len(lines)), '!include-service %s %s include/svc%s'
                         % (r.choice(['s.A', 's.B']), r.choice(['*', '+x']), fname))
        files[fname] = '\n'.join(lines) + '\n'
    for name, text in files.items():
        with open(os.path.join(d, name), 'w') as f:
            f.write(text)
    return files


def qubes_decide(info, pdir, src, tgt, svc, arg):
    """Qubes' decision as a dict, or None when its evaluator failed."""
    try:
        policy = parser.FilePolicy(policy_path=pathlib.Path(pdir))
        req = parser.Request(svc, '+' + arg, src, tgt, system_info=info)
        res = policy.evaluate(req)
        if isinstance(res, parser.AllowResolution):
            out = asyncio.run(res.execute())
    except (exc.AccessDenied, exc.PolicySyntaxError, exc.RequestError):
        return {'result': 'deny'}
    except Exception:
        return None
    if isinstance(res, parser.AllowResolution):
        kv = dict(line.split('=', 1) for line in out.splitlines())
        d = {'result': 'allow', 'target': kv['target'], 'autostart': kv['autostart'] == 'True',
             'requested_target': kv['requested_target']}
        if kv.get('user', 'DEFAULT') != 'DEFAULT': d['user'] = kv['user']
        if 'target_uuid' in kv: d['target_uuid'] = kv['target_uuid']
        return d
    d = {'result': 'ask', 'targets': sorted(str(x) for x in res.targets_for_ask),
         'default_target': str(res.default_target) if res.default_target else '',
         'autostart': bool(res.autostart), 'requested_target': str(req.target)}
    if res.user: d['user'] = res.user
    # for deviation() only, not written: the deciding rule's parameters
    d['_rule_target'] = str(res.rule.action.target) if res.rule.action.target else None
    d['_rule_default'] = str(res.rule.action.default_target) if res.rule.action.default_target else None
    return d


def deviation(info, src, q):
    """The deliberate difference (docs/policy.md) that applies, if any,
    and what libqpolicy decides instead."""
    dom = info['domains']
    rule_target = q.pop('_rule_target', None)
    rule_default = q.pop('_rule_default', None)
    if q['result'] == 'allow':
        tgt = q['target']
        # Qubes refuses a call to the caller itself by comparing names as
        # written: uuid:UUID of the caller (or of dom0, which Qubes then
        # reports as dom0) gets through; libqpolicy compares the qubes
        if (tgt.startswith('uuid:') and dom.get(tgt, {}).get('name') == src) or \
                (tgt == 'dom0' and src == 'dom0'):
            return 'loopback-uuid', {'result': 'deny'}
    if q['result'] == 'ask' and rule_target == '@dispvm':
        # Qubes offers the bare keyword @dispvm (which its execute() cannot
        # start); libqpolicy offers the caller's default disposable
        tmpl = dom[src]['default_dispvm']
        if tmpl is None:
            return 'ask-dispvm-keyword', {'result': 'deny'}
        e = dict(q, targets=['@dispvm:' + tmpl])
        if rule_default == '@dispvm' or rule_default == '@dispvm:' + tmpl:
            e['default_target'] = '@dispvm:' + tmpl
        return 'ask-dispvm-keyword', e
    return None, q


def main():
    mode, arg, sysfile, seed, count = sys.argv[1:6]
    info = load_info(sysfile)
    t = tokens(info)
    r = random.Random(int(seed))
    vectors, diffs = [], []
    total = skipped = agree = 0
    deviations = {}
    for _ in range(int(count)):
        with tempfile.TemporaryDirectory() as d:
            files = gen_policy(r, t, d)
            reqs = []
            for _ in range(5):
                src = r.choice(t['req_src']); tgt = r.choice(t['req_tgt'])
                svc = r.choice(['s.A', 's.B', 's.C']); a = r.choice(['', 'x', 'y'])
                q = qubes_decide(info, d, src, tgt, svc, a)
                if q is None:
                    skipped += 1; continue
                total += 1
                dev, expect = deviation(info, src, q)
                v = {'source': src, 'target': tgt, 'service': svc, 'argument': a, 'qubes': q,
                     'expect': expect}
                if dev:
                    v['deviation'] = dev; deviations[dev] = deviations.get(dev, 0) + 1
                reqs.append(v)
                if mode == '--qubectl':
                    got = subprocess.run([arg, 'policy', 'eval', '--policy-dir', d, '--system-info',
                                          sysfile, src, tgt, svc + ('+' + a if a else '')],
                                         capture_output=True, text=True).stdout.splitlines()
                    want = ['result=' + expect['result']]
                    if expect['result'] == 'allow':
                        want += ['target=' + expect['target']]
                        if 'target_uuid' in expect: want.append('target_uuid=' + expect['target_uuid'])
                        want += ['autostart=' + ('yes' if expect['autostart'] else 'no')]
                    elif expect['result'] == 'ask':
                        want += ['targets=' + ' '.join(expect['targets']),
                                 'default_target=' + expect['default_target'],
                                 'autostart=' + ('yes' if expect['autostart'] else 'no')]
                    if expect['result'] != 'deny':
                        if 'user' in expect: want.append('user=' + expect['user'])
                        want.append('requested_target=' + expect['requested_target'])
                    if got == want: agree += 1
                    else: diffs.append((files, v, got))
            if reqs:
                vectors.append({'files': files, 'requests': reqs})
    if mode == '--vectors':
        with open(arg, 'w') as f:
            vfile = os.path.join(os.environ.get('QREXEC_SRC', '/tmp/qrexec43'), 'version')
            version = open(vfile).read().strip() if os.path.exists(vfile) else 'release4.3'
            json.dump({'generator': 'random-diff.py seed %s count %s against qubes-core-qrexec '
                       '%s' % (seed, count, version), 'cases': vectors}, f, indent=0, sort_keys=True)
            f.write('\n')
        print(f'{total} decisions written ({skipped} skipped where Qubes raised an internal error; '
              f'deviations {deviations})')
        return
    print(f'agree {agree}/{total} (skipped {skipped} where Qubes raised an internal error; '
          f'deviations {deviations})')
    for files, v, got in diffs[:8]:
        print('---')
        for name, text in files.items(): print('##', name); print(text, end='')
        print('REQ', v['source'], v['target'], v['service'], v['argument'])
        print('WANT', v['expect']); print('GOT ', got)


main()
