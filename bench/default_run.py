"""Wall time of the default run: `coda_distill` with no arguments (the digits demo: the bundled model's VAE features, core
discovery, the aligned and the unguided generated sets, every set's students, the report), in a fresh output folder.

    python bench/default_run.py                 # one run in a temporary folder; prints the wall time and each stage's
    python bench/default_run.py --out /tmp/run  # keep the run (its report and figures)

The target is at most 3 minutes on a quiet 2-core CPU. Prints the machine load (`uptime`) before and after: the figure is
only comparable on a quiet machine.
"""
import argparse, json, shutil, subprocess, sys, tempfile, time
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', help='output folder (default: a temporary one, removed afterwards)')
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix='coda-default-'))
    if out.exists() and any(out.iterdir()): sys.exit(f'{out} is not empty: the benchmark times a fresh run')
    print('load before:', subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip(), flush=True)
    t0 = time.time()
    r = subprocess.run([shutil.which('coda_distill'), '--out', str(out)], capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode: sys.exit(f'coda_distill failed ({r.returncode}):\n{r.stderr[-3000:]}')
    print('load after: ', subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip())
    t = json.loads((out/'timings.json').read_text())
    stages = {**t.get('distill', {}), **t.get('evaluate', {})}
    print(f'coda_distill (no arguments): {wall:.0f} s wall (target <= 180 s); ' + ', '.join(f'{k} {v:.0f} s' for k, v in stages.items()))
    print(r.stdout.split('\n\n')[0])
    if not a.out: shutil.rmtree(out)

if __name__ == '__main__': main()
