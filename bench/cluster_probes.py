"""Re-runs, as a user would, each failure a run met on a shared cluster, and prints what coda does now (prints figures; not a test).

Per probe: the command (paths shortened to <work>), its exit status, its wall time, the key line of its message and its
peak resident memory (GNU time's "Maximum resident set size" of the command and its children). The runs are the digits
demo, or small folder datasets cut from it, with small settings (pixel features, IPC 2, no baselines, no evaluation)
so that the whole script takes a few minutes on 2 CPU cores; HF_HUB_OFFLINE=1, nothing is downloaded.

The probes:
  requeue on another host   a run killed (SIGKILL) after its features, then the same command as the same Slurm job
                            (SLURM_JOB_ID) in a new UTS namespace with another host name (`unshare --uts`, root);
                            it must resume and end byte-identical to an uninterrupted run
  requeue in a PID namespace the same, killed and resumed each in a fresh PID namespace (`unshare -pf --mount-proc`),
                            where the run's PID is 1 both times, and without a job id: the lock's heartbeat is made
                            old by setting the lock file's time back (`os.utime`), as if the stale time had passed
  live run elsewhere        a run that is running under another host name; the same --out from here is refused
  class in val, not train   `--plan` and the run refuse a dataset whose val split has a class train lacks, before work
  truncated val JPEG        a val image cut short: the run skips it and names it
  pickle-only model         a tiny pipeline saved with pickle weights: `--plan` refuses it, naming each component
  13000x13000 PNG x6        six huge PNGs in train: the run's peak memory against the same run without them
  YAML full: "false"        a config file with a quoted boolean and another bad value: both named at once
  non-UTF-8 file name       an unreadable image whose name is not UTF-8: named with escapes
  other library versions    a finished stage whose record names numpy 1.0.0: resuming it is refused, naming both

    python bench/cluster_probes.py                  # all probes (work folder /tmp/coda-cluster-probes, made again)
    python bench/cluster_probes.py --only yaml pickle
"""
import argparse, hashlib, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

SMALL = ['--encoder', 'pixel', '--ipc', '2', '--baselines', 'none', '--skip-eval']


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work', default='/tmp/coda-cluster-probes', help='the folder the probes write (removed first)')
    ap.add_argument('--only', nargs='*', default=None, help='probe names (or parts of them) to run')
    return ap.parse_args()


def coda_bin(): return shutil.which('coda_distill') or sys.exit('coda_distill is not on PATH: pip install -e . first')


def env(**kw):
    e = {**os.environ, 'HF_HUB_OFFLINE': '1', **kw}
    e.pop('SLURM_JOB_ID', None)
    return {**e, **kw}


def timed(cmd, e=None, wrap=(), background=False):
    "Run `cmd` (a list) under GNU time; (exit status, seconds, stdout + stderr, peak RSS in MB)."
    full = ['/usr/bin/time', '-v', *wrap, *map(str, cmd)]
    t0 = time.time()
    if background: return subprocess.Popen(full, env=e or env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    r = subprocess.run(full, env=e or env(), capture_output=True, text=True)
    return _result(r.returncode, time.time() - t0, r.stdout + r.stderr)


def _result(rc, dt, out):
    m = re.search(r'Maximum resident set size \(kbytes\): (\d+)', out)
    out = out[:out.rfind('\tCommand being timed')] if '\tCommand being timed' in out else out
    return rc, dt, out, (int(m[1]) / 1024 if m else None)


def snapshot(folder, skip=('run.log', 'timings.json', 'coda.lock')):
    "Relative path -> SHA-256 of the run's files (but its log, timings and lock)."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob('*'))
            if p.is_file() and p.name not in skip}


class Report:
    def __init__(self, work): self.work, self.rows = str(work), []
    def short(self, s): return str(s).replace(self.work, '<work>')
    def line(self, name, cmd, res, key, verdict):
        rc, dt, _, rss = res
        print(f'\n[{name}] {verdict}', flush=True)
        print(f'  command: {self.short(" ".join(map(str, cmd)))}')
        print(f'  exit {rc}, {dt:.1f} s' + (f', peak RSS {rss:.0f} MB' if rss else ''))
        print(f'  message: {self.short(key)}')
        self.rows.append((name, verdict))


def key_line(out, *pats):
    "The first line of `out` that matches one of `pats` (else its last non-empty line)."
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    for p in pats:
        hit = next((l for l in lines if re.search(p, l)), None)
        if hit: return hit[:300]
    return (lines[-1] if lines else '')[:300]


def wait_for(path, proc, timeout=300):
    t0 = time.time()
    while not Path(path).exists():
        if proc.poll() is not None or time.time() - t0 > timeout: return False
        time.sleep(0.2)
    return True


def kill_group(proc):
    "SIGKILL the probe's command and everything it started (GNU time, unshare, coda_distill, its workers)."
    try: os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    proc.wait()


def popen_group(cmd, e, wrap=()):
    return subprocess.Popen(['/usr/bin/time', '-v', *wrap, *map(str, cmd)], env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def mini(root, list_digits, classes=('0', '1', '2'), n_train=20, n_val=5):
    "A small folder dataset cut from the digits demo."
    for split, n in (('train', n_train), ('val', n_val)):
        for c in list_digits(split=split).classes:
            if c.id not in classes: continue
            (root/split/c.id).mkdir(parents=True, exist_ok=True)
            for p in c.paths[:n]: shutil.copy(p, root/split/c.id/p.name)
    return root


def main():
    a = parse()
    work = Path(a.work); shutil.rmtree(work, ignore_errors=True); work.mkdir(parents=True)
    want = lambda n: a.only is None or any(o in n for o in a.only)
    rep, coda = Report(work), coda_bin()
    from coda.data import list_digits
    print(f'coda probes in {work}; {os.cpu_count()} CPUs, load {" ".join(f"{x:.2f}" for x in os.getloadavg())}; root: {os.geteuid() == 0}')
    digits = [coda, '--dataset', 'digits', *SMALL]
    ref = None
    if want('requeue'):   # the uninterrupted run the resumed ones must equal
        cmd = [*digits, '--out', work/'ref']
        res = timed(cmd)
        ref = snapshot(work/'ref') if res[0] == 0 else None
        rep.line('reference run (uninterrupted)', cmd, res, key_line(res[2], 'error', r'core set'), 'ok' if ref else 'FAILED')

    if want('requeue on another host'):
        out = work/'requeue'
        cmd = [*digits, '--out', out]
        e = env(SLURM_JOB_ID='4242')
        p = popen_group(cmd, e)
        got = wait_for(out/'features'/'record.json', p)
        time.sleep(0.5); kill_group(p)
        held = (out/'coda.lock').exists()
        wrap = ['unshare', '--uts', 'sh', '-c', 'hostname requeued-node && exec "$0" "$@"']
        res = timed(cmd, e, wrap)
        same = res[0] == 0 and ref is not None and snapshot(out) == ref
        rep.line('requeue on another host (same Slurm job)', ['SLURM_JOB_ID=4242', *wrap[:3], "'hostname requeued-node && exec ...'", *cmd], res,
                 key_line(res[2], 'taking over the lock', 'error'),
                 f'killed after features ({got}), lock left behind ({held}); resumed byte-identical: {same}')

    if want('requeue in a PID namespace'):
        out = work/'pidns'
        cmd = [*digits, '--out', out]
        wrap = ['unshare', '-pf', '--mount-proc']
        p = popen_group(cmd, env(), wrap)
        got = wait_for(out/'features'/'record.json', p)
        time.sleep(0.5); kill_group(p)
        lock = out/'coda.lock'
        h = json.loads(lock.read_text()) if lock.exists() else {}
        old = time.time() - 600; os.utime(lock, (old, old)) if lock.exists() else None   # as if 10 minutes had passed
        res = timed(cmd, env(), wrap)
        same = res[0] == 0 and ref is not None and snapshot(out) == ref
        rep.line('requeue in a fresh PID namespace (no job id, stale heartbeat)', [*wrap, *cmd], res,
                 key_line(res[2], 'taking over the lock', 'error'),
                 f"killed after features ({got}); the dead run's PID in its namespace: {h.get('pid')}; resumed byte-identical: {same}")

    if want('live run elsewhere'):
        out = work/'live'
        cmd = [coda, '--dataset', 'digits', '--encoder', 'pixel', '--ipc', '2', '--baselines', 'none', '--out', out]   # with evaluation: it runs a while
        wrap = ['unshare', '--uts', 'sh', '-c', 'hostname other-node && exec "$0" "$@"']
        p = popen_group(cmd, env(), wrap)
        got = wait_for(out/'coda.lock', p)
        res = timed([*digits, '--out', out])
        alive = p.poll() is None
        kill_group(p)
        rep.line('a live run on another host', [*digits, '--out', out], res, key_line(res[2], 'is in use by another coda run'),
                 f'refused while the other run was alive ({got and alive}): {res[0] == 2}')

    if want('class in val'):
        root = mini(work/'valextra', list_digits)
        (root/'val'/'9').mkdir(); shutil.copy(next((root/'val'/'0').iterdir()), root/'val'/'9'/'x.png')
        for extra in (['--plan'], []):
            cmd = [coda, '--dataset', 'folder', '--root', root, *SMALL, '--out', work/'valextra-run', *extra]
            res = timed(cmd)
            rep.line(f'class in val but not in train ({"--plan" if extra else "the run"})', cmd, res, key_line(res[2], "have no training images", "error"),
                     f'refused before work: {res[0] == 2 and not (work/"valextra-run").exists()}')

    if want('truncated'):
        root = mini(work/'trunc', list_digits)
        from PIL import Image
        im = Image.open(next((root/'val'/'1').iterdir())).convert('RGB').resize((64, 64))
        im.save(root/'val'/'1'/'cut.jpg', quality=95)
        b = (root/'val'/'1'/'cut.jpg').read_bytes(); (root/'val'/'1'/'cut.jpg').write_bytes(b[:len(b) // 2])
        cmd = [coda, '--dataset', 'folder', '--root', root, *SMALL, '--out', work/'trunc-run']
        res = timed(cmd)
        rep.line('truncated val JPEG', cmd, res, key_line(res[2], 'cut.jpg', 'unreadable'), f"named: {'cut.jpg' in res[2]}")

    if want('pickle'):
        from coda.testing import tiny_sd_pipeline
        tiny_sd_pipeline().save_pretrained(work/'pickled', safe_serialization=False)
        cmd = [coda, '--dataset', 'digits', '--ipc', '2', '--baselines', 'none', '--skip-eval', '--model', work/'pickled', '--out', work/'pickled-run', '--plan']
        res = timed(cmd)
        comps = sorted(set(re.findall(r'the component (\w+) ', res[2])))
        rep.line('pickle-only model, --plan', cmd, res, key_line(res[2], 'pickle weights'), f'refused (exit 2: {res[0] == 2}), components named: {comps}')

    if want('13000'):
        from PIL import Image
        clean = mini(work/'clean', list_digits)
        big = work/'big'; shutil.copytree(clean, big)
        im = Image.new('RGB', (13000, 13000), (90, 90, 90))
        im.save(big/'train'/'0'/'huge_0.png'); del im
        for k in range(1, 6): shutil.copy(big/'train'/'0'/'huge_0.png', big/'train'/f'{k % 3}'/f'huge_{k}.png')
        r0 = timed([coda, '--dataset', 'folder', '--root', clean, *SMALL, '--out', work/'clean-run'])
        cmd = [coda, '--dataset', 'folder', '--root', big, *SMALL, '--out', work/'big-run']
        res = timed(cmd)
        rep.line('six 13000x13000 PNGs in train', cmd, res, key_line(res[2], 'huge_', 'pixels'),
                 f'peak RSS {res[3]:.0f} MB against {r0[3]:.0f} MB for the same run without them (exit {r0[0]}, {r0[1]:.1f} s)')

    if want('yaml'):
        (work/'bad.yaml').write_text('full: "false"\ndiscovery:\n  ipc: ten\n')
        cmd = [coda, '--config', work/'bad.yaml', '--plan', '--out', work/'yaml-run']
        res = timed(cmd)
        n = len(re.findall(r'^\s+(--\S+|\S+\.yaml\S*):', res[2], re.M))
        rep.line('YAML full: "false" and a bad ipc', cmd, res, ' | '.join(l.strip() for l in res[2].splitlines()[:3]),
                 f'refused, problems listed at once: {n}')

    if want('non-UTF-8'):
        root = mini(work/'bytes', list_digits)
        bad = os.fsdecode(b'\xff\xfe-scan.png')
        (root/'train'/'2'/bad).write_bytes(b'not a png')
        cmd = [coda, '--dataset', 'folder', '--root', root, *SMALL, '--out', work/'bytes-run']
        res = timed(cmd)
        log = (work/'bytes-run'/'run.log').read_text(errors='backslashreplace') if (work/'bytes-run'/'run.log').exists() else ''
        k = key_line(res[2] + '\n' + log, r'\\xff', 'scan.png')
        rep.line('unreadable image with a non-UTF-8 name', cmd, res, k, f"named with escapes: {'xff' in k}")

    if want('versions'):
        out = work/'ref' if (work/'ref'/'features'/'record.json').exists() else work/'versions'
        if out == work/'versions': timed([*digits, '--out', out])
        rec = out/'features'/'record.json'
        r = json.loads(rec.read_text()); r['versions']['numpy'] = '1.0.0'; rec.write_text(json.dumps(r))
        cmd = [*digits, '--out', out]
        res = timed(cmd)
        rep.line('a stage made with other library versions (numpy 1.0.0 recorded)', cmd, res,
                 key_line(res[2], 'library versions', 'error'), f'refused: {res[0] == 2}')
        plan = timed([*cmd, '--plan'])
        rep.line('the same run folder, --plan', [*cmd, '--plan'], plan, key_line(plan[2], 'its environment', 'features:'), 'the environment line says why there is none')

    print('\nsummary:'); [print(f'  {n}: {v}') for n, v in rep.rows]


if __name__ == '__main__': main()
