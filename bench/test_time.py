"""How long the README's test command takes, and which notebooks and cells cost the most (prints figures; not a test).

Default: runs `nbdev_test` (the README's command: every notebook, cells flagged `slow`, `gpu` or `train` skipped, as many
workers as nbdev picks on this machine) and prints its wall time beside the load average before and after, then the same
with the slow cells as `.ci/run` runs them (unless `--no-slow`): `nbdev_test --flags slow --path NB` for each notebook
that has a cell flagged `slow`, each in a process of its own. Other processes on a shared machine lengthen the figures:
the load average says how much.

`--cells`: runs the notebooks one at a time in this process's child, the way `nbdev_test` does (execnb's CaptureShell in
the notebook's folder, the same flags skipped; `--flags slow` runs the slow cells too), and prints each notebook's time
and its longest cells (the notebook, the cell's number, its seconds, its first line, its flags). Use it to choose the
cells to flag `slow`.

    python bench/test_time.py                        # nbdev_test, then each slow notebook with --flags slow
    python bench/test_time.py --no-slow              # only the README's command
    python bench/test_time.py --cells --top 40       # per-notebook and per-cell seconds, default cells only
    python bench/test_time.py --cells --flags slow --path nbs/07_training.ipynb
"""
import argparse, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cells', action='store_true', help='time each cell of each notebook (serially) instead of nbdev_test')
    ap.add_argument('--flags', default='', help='flags to run that nbdev_test skips by default (e.g. "slow"); --cells only')
    ap.add_argument('--path', nargs='*', default=None, help='notebooks to time (default: every notebook nbdev_test runs)')
    ap.add_argument('--top', type=int, default=30, help='how many of the longest cells to print (--cells)')
    ap.add_argument('--no-slow', action='store_true', help='skip the `nbdev_test --flags slow` run (default mode)')
    return ap.parse_args()


def load(): return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def time_command(cmd, cwd=ROOT):
    "Wall seconds and exit status of `cmd` run in `cwd`, with the load average before and after."
    before = load(); t0 = time.time()
    rc = subprocess.call(cmd, cwd=cwd)
    return time.time() - t0, rc, before, load()


def notebooks(paths):
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    from nbdev.test import _keep_file
    if paths: return [Path(p).absolute() for p in paths]
    return [f.absolute() for f in sorted(nbglob(get_config().nbs_path, as_path=True)) if _keep_file(f, '.notest')]


def time_cells(fn, run_flags):
    "Seconds of each evaluated cell of notebook `fn` as nbdev_test runs it: [(index, seconds, first line, flags)], ok."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    os.environ['IN_TEST'] = '1'
    skip = set(get_config().tst_flags.split()) - set(run_flags)
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    sys.path.insert(0, str(ROOT))
    k, out = CaptureShell(fn), []
    with working_directory(fn.parent):
        for cell in nb.cells:
            if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: continue
            direc = getattr(cell, 'directives_', {}) or {}
            if direc.get('eval:', [''])[0].lower() == 'false' or skip & direc.keys(): continue
            t0 = time.time(); k.cell(cell)
            lines = [l for l in cell.source.splitlines() if l.strip() and not l.startswith('#|')]
            out.append((cell.idx_, time.time() - t0, (lines or [''])[0][:70], sorted(set(direc) & {'slow', 'gpu', 'train'})))
            if k.exc:
                sys.stderr.write(k.prettytb(fname=fn) + '\n'); return out, False
    return out, True


def cells_mode(a):
    run_flags = a.flags.split()
    if os.environ.get('_CODA_TIME_ONE'):   # child: one notebook, results as lines on stdout
        out, ok = time_cells(Path(os.environ['_CODA_TIME_ONE']), run_flags)
        for i, s, first, fl in out: print(f'CELL\t{i}\t{s:.2f}\t{" ".join(fl)}\t{first}')
        print(f'OK\t{int(ok)}'); return 0
    rows, total, failed = [], 0.0, []
    print(f'per notebook (serially, flags run: {run_flags or "none"}; load before: {load()})')
    for fn in notebooks(a.path):
        t0 = time.time(); before = load()
        r = subprocess.run([sys.executable, __file__, '--cells', '--flags', a.flags], capture_output=True, text=True,
                           env={**os.environ, '_CODA_TIME_ONE': str(fn)})
        dt = time.time() - t0; total += dt
        ok = 'OK\t1' in r.stdout
        if not ok: failed.append(fn.name); sys.stderr.write(r.stderr[-3000:])
        for l in r.stdout.splitlines():
            if l.startswith('CELL\t'):
                _, i, s, fl, first = l.split('\t', 4); rows.append((float(s), fn.relative_to(ROOT), int(i), fl, first))
        print(f'  {str(fn.relative_to(ROOT)):42s} {dt:7.1f} s  {"ok" if ok else "FAILED"}  (load {before} -> {load()})', flush=True)
        mine = sorted((r for r in rows if r[1] == fn.relative_to(ROOT)), reverse=True)[:3]
        print('      longest: ' + '; '.join(f'#{i} {s:.1f} s' for s, _, i, _, _ in mine), flush=True)
    print(f'total {total:.1f} s serially; with nbdev_test\'s workers the wall time is about total / workers')
    print(f'\nthe {a.top} longest cells (seconds, notebook, cell number, flags, first line):')
    for s, fn, i, fl, first in sorted(rows, reverse=True)[:a.top]: print(f'  {s:7.1f}  {str(fn):40s} #{i:<3d} {fl or "-":6s} {first}')
    return 1 if failed else 0


def slow_notebooks():
    "The notebooks (relative to nbs/) that have a cell flagged `slow`, as `.ci/run` finds them."
    return sorted(str(f.relative_to(ROOT/'nbs')) for f in (ROOT/'nbs').rglob('*.ipynb')
                  if '.ipynb_checkpoints' not in f.parts and '"#| slow' in f.read_text())


def main():
    a = parse()
    if a.cells: return cells_mode(a)
    runs = [(['nbdev_test'], ROOT)] + ([] if a.no_slow else [(['nbdev_test', '--flags', 'slow', '--path', nb], ROOT/'nbs') for nb in slow_notebooks()])
    rc_all, slow_total = 0, 0.0
    for cmd, cwd in runs:
        dt, rc, before, after = time_command(cmd, cwd)
        rc_all |= rc
        if cwd != ROOT: slow_total += dt
        print(f'{" ".join(cmd)}: {dt:.0f} s ({dt/60:.1f} min), exit {rc}, {os.cpu_count()} CPUs, load {before} -> {after}', flush=True)
    if not a.no_slow: print(f'slow cells, every notebook: {slow_total:.0f} s ({slow_total/60:.1f} min)')
    return rc_all


if __name__ == '__main__': sys.exit(main())
