"""Benchmark of coda.discovery (prints figures; not a test).

Synthetic classes shaped like an ImageNet class at SDXL's resolution: n = 1300 images, d = 65536 float16 features
(a mixture of 12 Gaussian modes in 32 dimensions, randomly embedded in d dimensions, plus isotropic noise), k = 85,
s = 55, IPC 10. Each configuration runs in a fresh process (numba's compiled code comes from its on-disk cache once
a first run on the machine has filled it).

    nice -n 5 python bench/discovery.py                    # d = 65536, 10 classes, everything (~10 min on 2 quiet cores)
    python bench/discovery.py --dims 4096 --classes 4      # quick look

Figures, for each d:
- reference: the published code's path (StandardScaler, plain umap-learn UMAP, HDBSCAN, post-processing), one
  process, on the first --reference-classes classes: first class and steady state (mean of the others); it runs
  after importing coda.discovery, so umap-learn's compiled code comes from the cache: its first class here is
  cheaper than in the published code;
- exact: coda's exact mode, one process (n_jobs=1: its data work overlaps the layout of the class before, in a
  helper thread) and both cores (n_jobs=-1: two worker processes): throughput = wall time / classes, the steady
  time between two finished classes, compute seconds per class (first; steady = mean of the others; for both cores
  per worker), peak RSS per process; the throughput against the reference's steady state; whether its picks, and the
  2-d maps of its embeddings, are identical to the reference's (on the classes the reference ran), and its picks
  between one process and both cores;
- fast: seconds per class (one process; both cores) and agreement with the exact picks: identical picks, and picks
  that fall in distinct exact-mode final clusters (one pick per cluster; a pick in no cluster or sharing one is a miss).
"""
import argparse, json, logging, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

K, S, IPC, N = 85, 55, 10, 1300

def make_store(folder, d, classes, seed=0):
    "A finished feature store of synthetic classes (and empty stand-ins for their images), written through the stage contract."
    from coda.stage import Stage, save_npy, save_json
    folder = Path(folder)
    st = Stage(folder, 'features', dict(encoder='synthetic', d=d, seed=seed, classes=classes))
    if st.complete: return folder
    st.open()
    rng = np.random.default_rng(seed)
    noise = 0.5 * rng.standard_normal((N, d), dtype=np.float32)      # shared noise bank, rows permuted per class
    ids = [f'c{c:02d}' for c in range(classes)]
    for c, cid in enumerate(ids):
        if st.done(cid): continue
        r = np.random.default_rng([seed, c])
        lab = r.choice(12, N, p=r.dirichlet(np.ones(12) * 2))
        z = r.normal(0, 3, (12, 32))[lab] + r.normal(0, 1, (N, 32))
        A = r.standard_normal((32, d), dtype=np.float32) / np.sqrt(32)
        X = (z.astype(np.float32) @ A + noise[r.permutation(N)]).astype(np.float16)
        save_npy(st.path(f'{cid}.npy'), X)
        save_json(st.path(f'{cid}.json'), dict(class_id=cid, class_index=c, prompt=f'class {c}',
                                               image_ids=[f'{cid}/{i:04d}.png' for i in range(N)], shape=[d], n=N))
        st.finish_item(cid, [f'{cid}.npy', f'{cid}.json'], n=N)
        img = folder.parent/f'images{classes}'/cid   # set R copies these; the benchmark never opens them
        img.mkdir(parents=True, exist_ok=True)
        for i in range(N): (img/f'{i:04d}.png').touch()
    st.finish(ids, shape=[d], n_images=classes * N)
    return folder

def fake_dataset(store, classes):
    "A TargetDataset whose ids match the synthetic store (its images are empty files)."
    from coda.data import TargetDataset, ClassInfo
    root = Path(store).parent/f'images{classes}'
    return TargetDataset(root, None, [ClassInfo(f'c{c:02d}', c, f'class {c}', [root/f'c{c:02d}'/f'{i:04d}.png' for i in range(N)])
                                      for c in range(classes)])

class _Costs(logging.Handler):
    "Collects the per-class seconds and worker peak RSS that build_core_set logs."
    def __init__(self): super().__init__(logging.INFO); self.rows = {}
    def emit(self, rec):
        if hasattr(rec, 'seconds'): self.rows[rec.class_id] = (rec.seconds, rec.peak_rss_mb, rec.worker, rec.created)

def run_core(store, out, classes, mode, n_jobs):
    "Child process: build_core_set; prints timings as JSON."
    import coda.discovery as cd
    from coda.config import DiscoveryConfig
    costs = _Costs()
    lg = logging.getLogger('coda'); lg.setLevel(logging.INFO); lg.addHandler(costs)
    ds = fake_dataset(store, classes)
    t = time.time()
    cd.build_core_set(store, ds, out, DiscoveryConfig(ipc=IPC, n_neighbors=K, min_cluster_size=S, mode=mode, n_jobs=n_jobs),
                      show_progress=False)
    wall = time.time() - t
    ids = [f'c{c:02d}' for c in range(classes)]
    secs = [costs.rows[c][0] for c in ids]
    rss = max([cd._peak_rss_mb()] + [costs.rows[c][1] for c in ids])   # main or any worker
    workers = {}
    for c in ids: workers.setdefault(costs.rows[c][2], []).append(costs.rows[c][0])   # in the order each worker did them
    done = sorted(costs.rows[c][3] for c in ids)   # when each class was written
    print(json.dumps(dict(wall=wall, secs=secs, rss_mb=rss, workers=list(workers.values()), first_done=done[0] - t,
                          steady_rate=(done[-1] - done[0]) / (len(done) - 1) if len(done) > 1 else float('nan'))))

def run_reference(store, classes):
    "Child process: the published code's path for the first `classes` classes; prints timings and picks."
    import warnings; warnings.filterwarnings('ignore')
    from coda.stage import load_npy
    import hashlib
    from coda.discovery import embed, core_from_embedding, map_2d
    secs, picks, maps = [], [], []
    for c in range(classes):
        t = time.time()
        X = load_npy(Path(store)/f'c{c:02d}.npy', mmap=True)
        E = embed(np.asarray(X), K, 50, 42, mode='reference')
        picks.append(core_from_embedding(E, IPC, S).indices.tolist())
        secs.append(time.time() - t)
        maps.append(hashlib.sha256(map_2d(E).tobytes()).hexdigest())   # the embedding's 2-d map, as coda saves it
    from coda.discovery import _peak_rss_mb
    print(json.dumps(dict(secs=secs, picks=picks, maps=maps, rss_mb=_peak_rss_mb())))

def child(*args):
    r = subprocess.run([sys.executable, __file__, *map(str, args)], capture_output=True, text=True)
    if r.returncode: sys.exit(f'child {args} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def picks_of(out, classes):
    return [json.load(open(Path(out)/f'c{c:02d}.json')) for c in range(classes)]

def agreement(fast, exact):
    same = distinct = total = 0
    for f, e in zip(fast, exact):
        same += len(set(f['indices']) & set(e['indices']))
        owner = {i: k for k, m in enumerate(e['cluster_members']) for i in m}
        hit = [owner.get(i) for i in f['indices']]
        distinct += len({h for h in hit if h is not None})
        total += len(f['indices'])
    return same / total, distinct / total

def fmt(s): return f'{s:6.1f}'

def steady(x): return float(np.mean(x[1:])) if len(x) > 1 else float('nan')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dims', type=int, nargs='+', default=[65536])
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--reference-classes', type=int, default=3, help='classes the (slow) published code path runs on; 0: none')
    ap.add_argument('--workdir', default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix='coda-bench-'))
    print(f'uptime: {os.popen("uptime").read().strip()}   cores: {os.cpu_count()}   (shared machine: compare figures from one run)')
    print(f'n={N} k={K} s={S} IPC={IPC}; seconds per class\n', flush=True)
    for d in a.dims:
        C, RC = a.classes, min(a.reference_classes, a.classes)
        store = make_store(work/f'store{d}', d, C)
        ref_steady = None
        if RC:
            R = child('_reference', store, RC)
            ref_steady = steady(R['secs']) if RC > 1 else R['secs'][0]
            print(f'd={d:6d} reference (published code path), 1 process: first {fmt(R["secs"][0])}  steady {fmt(ref_steady)}  '
                  f'({RC} classes)  peak RSS {R["rss_mb"]:.0f} MB', flush=True)
        e1 = child('_core', store, work/f'exact1_{d}', C, 'exact', 1)
        print(f'd={d:6d} exact  1 process : {fmt(e1["wall"] / C)} s/class throughput ({C} classes, wall {e1["wall"]:.0f} s; '
              f'steady {e1["steady_rate"]:.1f} s between classes); compute per class: first {e1["secs"][0]:.1f}, '
              f'steady {steady(e1["secs"]):.1f}; peak RSS {e1["rss_mb"]:.0f} MB', flush=True)
        eA = child('_core', store, work/f'exactA_{d}', C, 'exact', -1)
        per = '; '.join(f'first {w[0]:.1f}, steady {steady(w):.1f}' for w in eA['workers'])
        print(f'd={d:6d} exact  both cores: {fmt(eA["wall"] / C)} s/class throughput ({C} classes, wall {eA["wall"]:.0f} s; '
              f'steady {eA["steady_rate"]:.1f} s between classes; per worker: {per})  peak RSS per process {eA["rss_mb"]:.0f} MB', flush=True)
        ex1, exA = ([p['indices'] for p in picks_of(work/f'exact{t}_{d}', C)] for t in ('1', 'A'))
        print(f'          exact picks identical, 1 process vs both cores: {ex1 == exA} ({C} classes)', flush=True)
        if RC:
            import hashlib
            from coda.stage import load_npy
            maps = [hashlib.sha256(load_npy(work/f'exact1_{d}'/f'c{c:02d}.map.npy').tobytes()).hexdigest() for c in range(RC)]
            print(f'          exact picks identical to the reference: {R["picks"] == ex1[:RC]}; embeddings\' 2-d maps identical: '
                  f'{R["maps"] == maps} ({RC} classes)')
            print(f'          throughput vs the reference steady state: exact both cores {ref_steady / (eA["wall"] / C):.2f}x (target >= 5x), '
                  f'exact 1 process {ref_steady / (e1["wall"] / C):.2f}x (target >= 3x); steady state (between two finished classes): '
                  f'both cores {ref_steady / eA["steady_rate"]:.2f}x, 1 process {ref_steady / e1["steady_rate"]:.2f}x', flush=True)
        f1 = child('_core', store, work/f'fast1_{d}', C, 'fast', 1)
        ident, dist = agreement(picks_of(work/f'fast1_{d}', C), picks_of(work/f'exact1_{d}', C))
        print(f'd={d:6d} fast   1 process : {fmt(f1["wall"] / C)} s/class throughput; compute per class: first {f1["secs"][0]:.1f}, '
              f'steady {steady(f1["secs"]):.1f}; peak RSS {f1["rss_mb"]:.0f} MB; '
              f'agreement with exact over {C} classes: identical picks {ident:.0%}, picks in distinct exact clusters {dist:.0%}', flush=True)
        fA = child('_core', store, work/f'fastA_{d}', C, 'fast', -1)
        print(f'd={d:6d} fast   both cores: {fmt(fA["wall"] / C)} s/class throughput ({C} classes, wall {fA["wall"]:.0f} s)', flush=True)
    print(f'\nuptime: {os.popen("uptime").read().strip()}')

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '_core': run_core(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == '_reference': run_reference(sys.argv[2], int(sys.argv[3]))
    else: main()
