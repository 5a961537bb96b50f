"""How long `coda_distill --config <recipe> --plan` takes, for every recipe, against an ImageNet-shaped tree (prints figures; not a test).

Writes once (and reuses) an ImageNet-1K-shaped tree `<work>/imagenet/{train,val}/<wnid>/` holding all 1,000 classes,
`--per-class` training files a class (default 1,300: 1.3 M files, ImageNet-1K's size) and `--val-per-class` validation
files (default 50). The files are empty: a plan lists folder entries and opens no image. Every recipe reads its classes
from this tree (the subsets and ImageNet-100 are cut from ImageNet-1K's folders). The models are local folders made here:
a tiny SDXL-architecture pipeline with random weights (`coda.testing.tiny_sdxl_pipeline`, SDXL_MODEL) and its VAE
(SDXL_VAE); the teacher checkpoint (TEACHER_CHECKPOINT) is a small file. HF_HUB_OFFLINE=1: nothing is downloaded.

Printed, per recipe: exit status, seconds of the whole command (a fresh `coda_distill` process: Python start-up and
imports included) and the plan's data line. Then one plan run with four problems at once (a missing class folder, a
missing model folder, a missing teacher checkpoint and a bad value): its exit status and output; nothing may be written.
The tree's folders are in the page cache after it is written (or after the first plan): the figures are warm-cache ones.

    python bench/plan.py                              # 1.35 M empty files (1.35 M inodes), written once (76 s on a 2-core VM)
    python bench/plan.py --per-class 100 --configs imagenette-ipc10 imagenet-1k-ipc50
"""
import argparse, os, shutil, subprocess, sys, time
from pathlib import Path


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work', default='/tmp/coda-bench-plan', help='where the tree, the models and the plans\' --out folders go')
    ap.add_argument('--per-class', type=int, default=1300, help='training files per class (ImageNet-1K: 732-1,300)')
    ap.add_argument('--val-per-class', type=int, default=50, help='validation files per class (ImageNet-1K: 50)')
    ap.add_argument('--configs', nargs='*', default=None, help='recipes to plan (default: every recipe shipped with coda)')
    return ap.parse_args()


def write_tree(root, per_class, val_per_class):
    "The ImageNet-1K-shaped tree of empty files (written once; a marker file says with how many files)."
    from coda.data import preset_wnids
    marker = root/f'.made-{per_class}-{val_per_class}'
    if marker.exists(): return 0.0
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.time()
    for split, n in (('train', per_class), ('val', val_per_class)):
        for w in preset_wnids('imagenet-1k'):
            d = root/split/w
            d.mkdir(parents=True)
            for k in range(n): os.close(os.open(d/f'{w}_{k}.JPEG', os.O_CREAT | os.O_WRONLY, 0o644))
    marker.touch()
    return time.time() - t0


def models(work):
    "A local tiny SDXL-architecture model folder (random weights) and a small teacher checkpoint file."
    model = work/'tiny-sdxl'
    if not (model/'model_index.json').exists():
        from coda.testing import tiny_sdxl_pipeline
        tiny_sdxl_pipeline().save_pretrained(model)
    teacher = work/'teacher.safetensors'
    if not teacher.exists():
        import torch
        from safetensors.torch import save_file
        save_file({'fc.weight': torch.zeros(1000, 8)}, str(teacher))
    return model, teacher


def plan(name, root, out, env, *extra):
    t0 = time.time()
    r = subprocess.run([shutil.which('coda_distill'), '--config', name, '--root', str(root), '--plan', '--out', str(out), *extra],
                       capture_output=True, text=True, env=env)
    return r, time.time() - t0


def main():
    a = parse()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    root = work/'imagenet'
    from coda.config import list_recipes
    configs = a.configs or list(list_recipes())
    n_files = 1000 * (a.per_class + a.val_per_class)
    print(f'tree: {root}: 1,000 classes x ({a.per_class:,} train + {a.val_per_class} val) = {n_files:,} empty files')
    s = write_tree(root, a.per_class, a.val_per_class)
    print(f'  written in {s:.0f} s' if s else '  reused (written by an earlier run)')
    model, teacher = models(work)
    env = {**os.environ, 'IMAGENET_ROOT': str(root), 'SDXL_MODEL': str(model), 'SDXL_VAE': str(model/'vae'),
           'TEACHER_CHECKPOINT': str(teacher), 'HF_HUB_OFFLINE': '1'}
    print(f'load average before: {os.getloadavg()[0]:.2f} (1 min)')
    print(f"\n{'config':20s} {'exit':>4s} {'seconds':>8s}  data line of the plan")
    worst, failed = 0.0, []
    for name in configs:
        out = work/'runs'/name
        r, s = plan(name, root, out, env)
        data = next((l for l in r.stdout.splitlines() if l.startswith('data:')), (r.stderr.strip().splitlines() or ['?'])[-1])
        print(f'{name:20s} {r.returncode:4d} {s:8.1f}  {data}')
        worst = max(worst, s)
        if r.returncode or out.exists(): failed.append(name)
    print(f'slowest plan: {worst:.1f} s; load average after: {os.getloadavg()[0]:.2f} (1 min)')
    # four problems at once: a missing class folder, a missing model folder, a missing teacher checkpoint, a bad value
    away = root/'train'/'.n01440764.away'
    os.rename(root/'train'/'n01440764', away)
    try:
        out = work/'runs'/'four-problems'
        r, s = plan('imagenet-1k-ipc50', root, out, env, '--model', str(work/'no-such-model'),
                    '--teacher-checkpoint', str(work/'no-teacher.safetensors'), '--gamma', '-1')
    finally: os.rename(away, root/'train'/'n01440764')
    print(f'\nfour problems (imagenet-1k-ipc50, class n01440764 removed, --model and --teacher-checkpoint missing, --gamma -1): '
          f'exit {r.returncode}, {s:.1f} s, output folder written: {out.exists()}')
    print(r.stderr.rstrip())
    four = all(f'\n  {f}:' in r.stderr for f in ('--root', '--model', '--teacher-checkpoint', '--gamma'))
    ok = not failed and r.returncode == 2 and four and not out.exists()
    print(f"\n{'all plans exit 0 and write nothing; the four problems are reported in one run' if ok else 'FAILED: ' + ', '.join(failed or ['four problems'])}")
    sys.exit(0 if ok else 1)


if __name__ == '__main__': main()
