"""The whole run on flow-matching models: `coda_distill --model FOLDER` on the digits with a tiny, randomly initialised
SD3 and FLUX.1 pipeline (`coda.testing`), saved as a diffusers folder the way a downloaded model is. Prints each run's exit
status, wall time, peak memory (GNU time's maximum resident set size of that run) and the results table. The weights are random, so the accuracies only show that every
stage ran end to end (features, core discovery, guided generation, evaluation), not what the alignment is worth.

    python bench/flow_runs.py                  # both families, in a temporary folder
    python bench/flow_runs.py --family flux --keep /tmp/flow   # keep the runs
"""
import argparse, shutil, subprocess, sys, tempfile, time
from pathlib import Path

FLAGS = ['--ipc', '2', '--num-inference-steps', '4', '--gamma', '0.73', '--baselines', 't2i,random', '--seeds', '2', '--epochs', '10']
SIZE = {'sd3': [], 'flux': ['--resolution', '32', '--height', '32', '--width', '32']}   # FLUX packs 2x2 latents: 32 px images

def save_tiny(family, folder):
    import diffusers, transformers
    from coda.testing import tiny_sd3_pipeline, tiny_flux_pipeline
    diffusers.utils.logging.disable_progress_bar(); transformers.utils.logging.disable_progress_bar()
    (tiny_sd3_pipeline if family == 'sd3' else tiny_flux_pipeline)().save_pretrained(folder)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--family', nargs='*', default=list(SIZE), choices=list(SIZE))
    ap.add_argument('--keep', help='folder for the models and runs (default: a temporary one, removed afterwards)')
    a = ap.parse_args()
    root = Path(a.keep or tempfile.mkdtemp(prefix='coda-flow-'))
    failed = 0
    for fam in a.family:
        model, out = root/f'tiny-{fam}', root/f'run-{fam}'
        if not model.exists(): save_tiny(fam, model)
        cmd = [shutil.which('coda_distill'), '--model', str(model), '--out', str(out), *FLAGS, *SIZE[fam]]
        print('$ coda_distill ' + ' '.join(cmd[1:]), flush=True)
        t0 = time.time()
        r = subprocess.run(['/usr/bin/time', '-f', '%M', '-o', str(root/f'{fam}.rss'), *cmd], capture_output=True, text=True)
        wall = time.time() - t0
        rss = int((root/f'{fam}.rss').read_text().split()[-1]) / 2**20   # KB -> GB, this run's own peak
        print(f'{fam}: exit {r.returncode}, {wall:.1f} s wall, peak RSS {rss:.2f} GB')
        if r.returncode: failed += 1; print(r.stderr[-3000:]); continue
        print(r.stdout.split('\n\n')[0] + '\n', flush=True)
    if not a.keep: shutil.rmtree(root)
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
