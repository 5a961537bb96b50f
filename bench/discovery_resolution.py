"""Benchmark of cheap discovery features, `--discovery-resolution` (prints figures; not a test).

With `--discovery-resolution r` the feature store holds VAE latents of the images resized to side r, below the
generation resolution R; discovery clusters those, and only the IPC picks per class are encoded again at R. The
store is (R / r)**2 times smaller (ImageNet-1K at 1024**2 in float16: ~168 GB; at 512**2: ~42 GB) and the encoding
pass that much cheaper, but the picks can differ. This script measures how much, against discovery on
full-resolution latents, with the same discovery settings:

- identical picks: the share of the cheap run's picks that the full-resolution run picked too;
- distinct clusters: the share of the cheap run's picks that fall in distinct final clusters of the
  full-resolution run (one pick per cluster; a pick in no cluster, or in a cluster already hit, is a miss).

Two data sets:

1. digits (scikit-learn's 8x8 digits drawn at 32 px, 10 classes of ~144 training images) encoded by the tiny VAE of
   `coda.testing` (random weights, scale factor 2): the whole pipeline (`build_feature_store`, `build_core_set`),
   full = side 32 (4x16x16 latents), cheap = side 16 (4x8x8), exact mode, k 15, s 5, IPC 10;
2. synthetic latents shaped like SDXL's at 1024**2 (4x128x128 = 65,536 numbers, n = 1,300 per class; 12 modes
   in 32 dimensions, each mode direction a smooth spatial field plus a little fine detail, plus per-pixel noise),
   cheap = the same latents 2x2 average-pooled (4x64x64 = 16,384 numbers, standing in for encoding at 512**2),
   exact mode, k 85, s 55, IPC 10 (`discover_core` on each class).

    python bench/discovery_resolution.py                  # both (~3 min on 2 cores)
    python bench/discovery_resolution.py --classes 2      # fewer synthetic classes
"""
import argparse, logging, os, sys, tempfile, time
from pathlib import Path
import numpy as np

def agreement(cheap, full):
    "(identical picks, picks in distinct full-resolution clusters), as shares of the cheap run's picks; per class lists of (indices, members)."
    same = distinct = total = 0
    for (ci, _), (fi, fm) in zip(cheap, full):
        same += len(set(ci) & set(fi))
        owner = {i: k for k, m in enumerate(fm) for i in m}
        distinct += len({owner[i] for i in ci if i in owner})
        total += len(ci)
    return same / total, distinct / total

def store_bytes(folder): return sum(p.stat().st_size for p in Path(folder).glob('*.npy'))

def digits(work):
    from coda.config import FeatureConfig, DiscoveryConfig
    from coda.data import list_digits
    from coda.features import build_feature_store
    from coda.discovery import build_core_set
    from coda.stage import load_json
    from coda.testing import tiny_vae_model
    ds = list_digits(work/'digits')
    model = tiny_vae_model(work/'tiny')
    runs, sizes = {}, {}
    for name, fc in (('full', FeatureConfig('vae', resolution=32)), ('cheap', FeatureConfig('vae', resolution=32, discovery_resolution=16))):
        st = build_feature_store(ds, work/f'vstore_{name}', fc, model=model, show_progress=False)
        sizes[name] = (store_bytes(st.folder), st.shape)
        build_core_set(st.folder, ds, work/f'vcore_{name}', DiscoveryConfig(ipc=10), model=model, show_progress=False)
        js = [load_json(work/f'vcore_{name}'/f'{c}.json') for c in ds.class_ids]
        runs[name] = [(j['indices'], j['cluster_members']) for j in js]
    ident, dist = agreement(runs['cheap'], runs['full'])
    n = sum(len(c.paths) for c in ds.classes)
    print(f'digits, tiny VAE ({len(ds.classes)} classes, {n} images, k 15, s 5, IPC 10): full latents {sizes["full"][1]}, '
          f'cheap {sizes["cheap"][1]}; store {sizes["full"][0] / 1e6:.2f} MB -> {sizes["cheap"][0] / 1e6:.2f} MB '
          f'({sizes["full"][0] / sizes["cheap"][0]:.1f}x smaller); agreement: identical picks {ident:.0%}, '
          f'picks in distinct full-resolution clusters {dist:.0%}', flush=True)

def synthetic_class(c, n=1300, seed=0, fine=0.3, noise=0.5):
    "One class of synthetic 4x128x128 latents, float16 (n, 65536)."
    r = np.random.default_rng([seed, c])
    lab = r.choice(12, n, p=r.dirichlet(np.ones(12) * 2))
    z = (r.normal(0, 3, (12, 32))[lab] + r.normal(0, 1, (n, 32))).astype(np.float32)
    smooth = np.repeat(np.repeat(r.standard_normal((32, 4, 16, 16), dtype=np.float32), 8, axis=2), 8, axis=3)
    A = (smooth + fine * r.standard_normal((32, 4, 128, 128), dtype=np.float32)).reshape(32, -1) / np.sqrt(32)
    return (z @ A + noise * r.standard_normal((n, A.shape[1]), dtype=np.float32)).astype(np.float16)

def pool2(X):
    "2x2 average pooling of (n, 4*H*W) latents, in float32, stored as float16 like a store."
    n = len(X)
    x = X.reshape(n, 4, 64, 2, 64, 2).astype(np.float32)
    return x.mean((3, 5)).reshape(n, -1).astype(np.float16)

def synthetic(classes):
    import warnings; warnings.filterwarnings('ignore')
    from coda.discovery import discover_core
    full, cheap, t_full, t_cheap = [], [], 0.0, 0.0
    for c in range(classes):
        X = synthetic_class(c)
        t = time.time(); r = discover_core(X, 10, 85, 55); t_full += time.time() - t
        full.append((r.indices.tolist(), [m.tolist() for m in r.members]))
        Y = pool2(X)
        t = time.time(); r = discover_core(Y, 10, 85, 55); t_cheap += time.time() - t
        cheap.append((r.indices.tolist(), [m.tolist() for m in r.members]))
        print(f'  class {c}: identical picks {len(set(cheap[-1][0]) & set(full[-1][0]))}/10', flush=True)
    ident, dist = agreement(cheap, full)
    print(f'synthetic ({classes} classes, n 1300, k 85, s 55, IPC 10): full 4x128x128 (65,536), cheap 4x64x64 (16,384): '
          f'store 4.0x smaller (ImageNet-1K float16: {1.281e6 * 65536 * 2 / 1e9:.0f} GB -> {1.281e6 * 16384 * 2 / 1e9:.0f} GB); '
          f'discovery {t_full / classes:.1f} -> {t_cheap / classes:.1f} s/class (one process); agreement: identical picks '
          f'{ident:.0%}, picks in distinct full-resolution clusters {dist:.0%}', flush=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--classes', type=int, default=4, help='synthetic classes; 0: none')
    ap.add_argument('--no-digits', action='store_true')
    ap.add_argument('--workdir', default=None)
    a = ap.parse_args()
    logging.getLogger('coda').setLevel(logging.ERROR)
    work = Path(a.workdir or tempfile.mkdtemp(prefix='coda-bench-res-'))
    print(f'uptime: {os.popen("uptime").read().strip()}   cores: {os.cpu_count()}', flush=True)
    if not a.no_digits: digits(work)
    if a.classes: synthetic(a.classes)
    print(f'uptime: {os.popen("uptime").read().strip()}')

if __name__ == '__main__': main()
