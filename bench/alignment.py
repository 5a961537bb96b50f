"""What the alignment does on the printed-digits prior: students' top-1 and latent distances over a (gamma, guide_frac) grid.

CoDA pulls each denoising step's clean-sample estimate toward its representative's latent z by gamma*sigma_t*(z - x̂0) during the
first guide_frac of the steps. This sweeps both on the bundled prior (`coda:printed-digits`, trained on printed digits only) distilling
the handwritten digits, and reports for each generated set:

* the top-1 of the digits demo's students (`coda.config.digits_recipe`, the same seeds for every set) trained on it, with the
  95% Student-t interval of the mean over seeds, and the paired difference to the unguided set (gamma 0) with its 95% interval,
  as coda's results tables pair them;
* how far the generated images are, in the model's VAE latent space (encoded as the features stage encodes the training images),
  from their own representative, and from the nearest representative of their class.

The split is carved from the demo's TRAINING split only, so that a setting chosen here is not chosen on the validation split that
the demo's table reports: a stratified 75/25 split (scikit-learn `train_test_split`, `--split-seed`) of `list_digits('train')`
(1,437 images) into 1,077 images to distil and 360 held-out images the students are tested on, written as a `folder` dataset
(`<work>/data/{train,val}/<digit>/`, the demo's prompts `a handwritten digit <d>`). The demo's validation split is never read.

Features (the model's VAE) and core discovery (the defaults: IPC 10, k=15, s=5) run once; then one set per setting is generated
with the paper's sampler (DPM-Solver++, 25 steps, CFG 5, seed 0). gamma 0 is the unguided text-to-image baseline and one set
whatever guide_frac. The real representatives (`coda_core`) and a random selection of real images (`random`) are evaluated beside
them as references. Every stage is resumable: a rerun with the same flags reuses what is done.

    python bench/alignment.py                                            # the full grid (6 gammas x 4 guide_fracs), 5 seeds
    python bench/alignment.py --gammas 0,0.05,0.5 --guide-fracs 0.9 --seeds 2 --out bench/out/alignment_quick.json

Prints a markdown table and writes a JSON and a figure (`--out`, `.png` beside it). Progress goes to stderr.
"""
import argparse, json, math, os, platform, shutil, subprocess, sys, time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_MODEL = 'coda:printed-digits'
GAMMAS = (0, 0.01, 0.05, 0.1, 0.2, 0.5)
GUIDE_FRACS = (0.5, 0.7, 0.9, 1.0)
PAPER = (0.05, 0.9)   # the paper's (gamma, guide_frac), coda's defaults


def say(*a): print(*a, file=sys.stderr, flush=True)


def load_avg():
    try: return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()
    except OSError: return 'n/a'


def floats(text): return tuple(float(x) for x in text.split(',') if x.strip())


def set_name(gamma, frac):
    "The folder / set name of a setting; gamma 0 is one set whatever guide_frac."
    return 'unguided' if gamma == 0 else f'g{gamma:g}_f{frac:g}'


def settings(gammas, fracs):
    "(gamma, guide_frac or None, name) of each set to generate: gamma 0 once, then every gamma > 0 x guide_frac."
    out = [(0.0, None, 'unguided')] if 0 in gammas else []
    return out + [(g, f, set_name(g, f)) for g in gammas if g > 0 for f in fracs]


# ---------------------------------------------------------------------------------------------------------------- the carved split
def carve_split(work, seed=0, held_out=0.25):
    "Write the stratified split of the digits demo's training split as a `folder` dataset in `<work>/data`; returns (root, prompts file)."
    from sklearn.model_selection import train_test_split
    from coda.data import list_digits
    from coda.stage import save_json, load_json
    root = Path(work)/'data'
    train = list_digits(split='train')
    paths = [str(p) for c in train.classes for p in c.paths]
    labels = [c.id for c in train.classes for _ in c.paths]
    cfg = dict(source="coda.data.list_digits(split='train')", n_source=len(paths), held_out=held_out, seed=seed,
               method='sklearn.model_selection.train_test_split(stratify=labels)')
    if (root/'manifest.json').exists() and load_json(root/'manifest.json').get('config') == cfg:
        return root, root/'prompts.json'
    shutil.rmtree(root, ignore_errors=True)
    tr, va = train_test_split(np.arange(len(paths)), test_size=held_out, stratify=labels, random_state=seed)
    for split, idx in (('train', tr), ('val', va)):
        for i in sorted(idx):
            p = Path(paths[i]); dst = root/split/labels[i]/p.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
    save_json(root/'prompts.json', {c.id: c.prompt for c in train.classes})
    save_json(root/'manifest.json', dict(config=cfg, n_train=len(tr), n_val=len(va)))
    return root, root/'prompts.json'


# ---------------------------------------------------------------------------------------------------------------- distances
def encode_images(encoder, paths):
    from coda.data import load_rgb
    return encoder.encode([load_rgb(p) for p in paths])


def latent_distances(encoder, folder, targets):
    "Per class: (L2 distance of each generated image's latent to its own representative, to the nearest representative of its class, is the nearest its own)."
    own, near, hit = [], [], []
    for cid, ci, prompt, z in targets:
        x = encode_images(encoder, [Path(folder)/cid/f'{k}.png' for k in range(len(z))])
        d = np.linalg.norm((x[:, None] - z[None]).reshape(len(x), len(z), -1), axis=2)   # image k x representative j
        own += list(np.diag(d)); near += list(d.min(1)); hit += list(d.argmin(1) == np.arange(len(z)))
    return np.array(own), np.array(near), np.array(hit)


def round_trip_floor(pipe, encoder, targets):
    "Distance of each representative's latent to the latent of its own decoded image (saved as 8-bit, encoded again): what no generated image can beat."
    import torch
    out = []
    with torch.inference_mode():
        for cid, ci, prompt, z in targets:
            zt = torch.from_numpy(np.asarray(z, np.float32)).to(pipe.device, pipe.vae.dtype)
            ims = pipe.vae.decode(zt / pipe.vae.config.scaling_factor).sample
            ims = pipe.image_processor.postprocess(ims.float(), output_type='pil')
            x = encoder.encode(ims)
            out += list(np.linalg.norm((x - z).reshape(len(z), -1), axis=1))
    return np.array(out)


def class_spread(targets):
    "Mean distance of a representative to the nearest other representative of its class (the scale of the distances)."
    out = []
    for _, _, _, z in targets:
        d = np.linalg.norm((z[:, None] - z[None]).reshape(len(z), len(z), -1), axis=2)
        np.fill_diagonal(d, np.inf); out += list(d.min(1))
    return np.array(out)


# ---------------------------------------------------------------------------------------------------------------- statistics
def mean_ci(x, confidence=0.95):
    "(mean, half-width of the Student-t interval of the mean); half-width None for fewer than 2 values."
    x = np.asarray(x, float)
    if len(x) < 2: return float(x.mean()), None
    from scipy.stats import t
    return float(x.mean()), float(t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def _pm(m, h): return f'{m:.1f}' if h is None else f'{m:.1f} ± {h:.1f}'


def _diff(c):
    if c is None: return ''
    if c['lo'] is None: return f"{c['mean']:+.1f}"
    return f"{c['mean']:+.1f} [{c['lo']:+.1f}, {c['hi']:+.1f}]"


def table(rows, refs, floor, spread):
    out = ['| set | gamma | guide_frac | top-1 (%, mean ± 95% CI) | vs unguided (pts, 95% CI) | latent dist. to own rep. | to nearest rep. of class | nearest is own |',
           '|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        gf = '' if r['guide_frac'] is None else f"{r['guide_frac']:g}"
        out.append(f"| {r['name']} | {r['gamma']:g} | {gf} | {_pm(r['top1_mean'], r['top1_ci95'])} | {_diff(r.get('vs_unguided'))} | "
                   f"{r['dist_own']:.2f} | {r['dist_nearest']:.2f} | {100 * r['nearest_is_own']:.0f}% |")
    for r in refs:
        out.append(f"| {r['name']} (real images) | | | {_pm(r['top1_mean'], r['top1_ci95'])} | {_diff(r.get('vs_unguided'))} | | | |")
    out.append('')
    out.append(f'Latent distances are L2 norms in the VAE latent space (4x8x8); for scale: a representative\'s own decoded image is '
               f'{floor:.2f} from it (the VAE round trip, the floor) and the nearest other representative of its class {spread:.2f}.')
    return '\n'.join(out)


# ---------------------------------------------------------------------------------------------------------------- the figure
def plot(res, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = {r['name']: r for r in res['rows']}
    gammas = sorted({r['gamma'] for r in res['rows']})
    fracs = sorted({r['guide_frac'] for r in res['rows'] if r['guide_frac'] is not None})
    xs = {g: i for i, g in enumerate(gammas)}   # evenly spaced gammas, labelled
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for j, f in enumerate(fracs):
        pts = [rows['unguided']] if 'unguided' in rows else []
        pts += [rows[set_name(g, f)] for g in gammas if g > 0 and set_name(g, f) in rows]
        off = (j - (len(fracs) - 1) / 2) * 0.06
        x = [xs[r['gamma']] + off for r in pts]
        a.errorbar(x, [r['top1_mean'] for r in pts], yerr=[r['top1_ci95'] or 0 for r in pts], marker='o', ms=3, capsize=2, lw=1,
                   label=f'guide_frac {f:g}')
        b.plot([xs[r['gamma']] for r in pts], [r['dist_own'] for r in pts], marker='o', ms=3, lw=1, label=f'guide_frac {f:g}')
    for r, ls in zip(res['references'], ('--', ':')):
        a.axhline(r['top1_mean'], color='grey', ls=ls, lw=1, label=f"{r['name']} (real)")
    b.axhline(res['floor'], color='grey', ls='--', lw=1, label='VAE round trip (floor)')
    b.axhline(res['spread'], color='grey', ls=':', lw=1, label='nearest other rep.')
    for ax in (a, b):
        ax.set_xticks(range(len(gammas)), [f'{g:g}' for g in gammas]); ax.set_xlabel('gamma'); ax.grid(alpha=0.3)
    a.set_ylabel('held-out top-1 (%), 95% CI'); a.set_title('students on each generated set', fontsize=9)
    b.set_ylabel('latent L2 to own representative'); b.set_title('generated image vs its representative', fontsize=9)
    a.legend(fontsize=6); b.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={'Software': None})
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------- the sweep
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=DEFAULT_MODEL, help='text-to-image model (default: the bundled printed-digits prior)')
    ap.add_argument('--gammas', type=floats, default=GAMMAS, help='comma-separated gammas (0: the unguided set)')
    ap.add_argument('--guide-fracs', type=floats, default=GUIDE_FRACS, help='comma-separated guide_fracs')
    ap.add_argument('--seeds', type=int, default=5, help='students per set (seeds 0..n-1, the same for every set)')
    ap.add_argument('--ipc', type=int, default=10)
    ap.add_argument('--batch-size', type=int, default=None, help='images per UNet call (part of the images\' record); default: the model\'s (printed-digits: 100, as the demo)')
    ap.add_argument('--split-seed', type=int, default=0, help='seed of the stratified 75/25 split of the training split')
    ap.add_argument('--no-references', action='store_true', help='do not evaluate coda_core and random (real images)')
    ap.add_argument('--work', default='bench/out/alignment_run', help='folder of the data, stages and generated sets (resumable)')
    ap.add_argument('--out', default='bench/out/alignment.json', help='results JSON; the figure goes beside it (.png)')
    ap.add_argument('--workers', type=int, default=None, help='students trained at once (default: the usable cores)')
    ap.add_argument('--overwrite', action='store_true', help='rebuild stages made with other settings')
    args = ap.parse_args(argv)

    import torch, warnings
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore', message='coda_guidance: gamma')   # gamma*sigma > 1 at the first steps for gamma >= 0.1: swept on purpose
    from diffusers.utils import logging as dlog
    dlog.disable_progress_bar(); dlog.set_verbosity_error()
    from coda.config import FeatureConfig, DiscoveryConfig, GenerationConfig, digits_recipe, generation_batch_size
    from coda.data import list_imagefolder
    from coda.features import build_feature_store, readable_dataset, make_encoder
    from coda.discovery import build_core_set, load_core_set
    from coda.generation import load_pipeline, generate
    from coda.distill import list_distilled, upstream_of
    from coda.training import evaluate_sets, paired_difference
    from coda.stage import save_json

    t_start = time.time()
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    res = dict(command='python bench/alignment.py ' + ' '.join(sys.argv[1:] if argv is None else argv), load_before=load_avg(),
               model=args.model, torch=torch.__version__, python=platform.python_version(), timings={})
    tm = res['timings']

    t = time.time()
    root, prompts = carve_split(work, args.split_seed)
    train, val = list_imagefolder(root, 'train', prompts), list_imagefolder(root, 'val', prompts)
    res['split'] = dict(source="list_digits('train') (the demo's training split; its validation split is never read)",
                        method='stratified 75/25, sklearn train_test_split', seed=args.split_seed,
                        n_train=train.n_images, n_held_out=val.n_images)
    say(f'carved split: {train.n_images} training / {val.n_images} held-out images ({time.time() - t:.1f} s)')

    model = args.model
    fcfg, dcfg = FeatureConfig(encoder='vae'), DiscoveryConfig(ipc=args.ipc)
    t = time.time()
    store = build_feature_store(train, work/'features', fcfg, model=model, overwrite=args.overwrite, show_progress=True)
    train = readable_dataset(train, store)
    tm['features_s'] = round(time.time() - t, 1); say(f"features: {tm['features_s']} s")
    t = time.time()
    build_core_set(store, train, work/'core', dcfg, method='coda', model=model, upstream=upstream_of(work/'features'),
                   overwrite=args.overwrite, show_progress=True)
    refs = {}
    if not args.no_references:
        build_core_set(store, train, work/'random', dcfg, method='random', model=model, upstream=upstream_of(work/'features'),
                       overwrite=args.overwrite, show_progress=True)
        refs = {'coda_core': work/'core'/'images', 'random': work/'random'/'images'}
    tm['discovery_s'] = round(time.time() - t, 1); say(f"discovery: {tm['discovery_s']} s")
    targets = [(c.class_id, c.class_index, c.prompt, c.latents) for c in load_core_set(work/'core')]

    gcfg = GenerationConfig(model=model, device='cpu', batch_size=args.batch_size)
    pipe = load_pipeline(gcfg)
    todo = settings(args.gammas, args.guide_fracs)
    gen_s = {}
    for gamma, frac, name in todo:
        t = time.time()
        cfg = replace(gcfg, gamma=gamma, guide_frac=PAPER[1] if frac is None else frac)
        generate(pipe, targets, work/'gen'/name, cfg, upstream=upstream_of(work/'core'), overwrite=args.overwrite, show_progress=False)
        gen_s[name] = round(time.time() - t, 1)
        say(f'generated {name}: {gen_s[name]} s')
    tm['generation_s'] = gen_s

    t = time.time()
    encoder = make_encoder(fcfg, model)   # the features stage's encoder: the model's VAE at the store's resolution
    dist = {name: latent_distances(encoder, work/'gen'/name, targets) for _, _, name in todo}
    floor, spread = round_trip_floor(pipe, encoder, targets), class_spread(targets)
    tm['distances_s'] = round(time.time() - t, 1); say(f"latent distances: {tm['distances_s']} s")

    t = time.time()
    sets = {name: list_distilled(work/'gen'/name, train, name) for _, _, name in todo}
    sets.update({name: list_distilled(f, train, name) for name, f in refs.items()})
    up = {name: upstream_of(work/'gen'/name) for _, _, name in todo}
    up.update({name: upstream_of(Path(f).parent) for name, f in refs.items()})
    tcfg = digits_recipe(seeds=args.seeds, workers=args.workers)
    ev = evaluate_sets(sets, val, tcfg, work/'evaluation', upstream=up, overwrite=args.overwrite, show_progress=True)['methods']
    tm['evaluation_s'] = round(time.time() - t, 1); say(f"evaluation: {tm['evaluation_s']} s")

    base = ev['unguided']['top1_per_seed'] if 'unguided' in ev else None
    def summary(name, extra):
        m = ev[name]; mean, h = mean_ci(m['top1_per_seed'])
        r = dict(name=name, **extra, top1_per_seed=m['top1_per_seed'], top1_mean=mean, top1_std=m['top1_std'], top1_ci95=h,
                 best_mean=m['best_mean'], epochs=m['epochs'], converged=m['converged'], n_train=m['n_train'])
        if base is not None and name != 'unguided': r['vs_unguided'] = paired_difference(m['top1_per_seed'], base)
        return r
    rows = []
    for gamma, frac, name in todo:
        own, near, hit = dist[name]
        rows.append(summary(name, dict(gamma=gamma, guide_frac=frac, dist_own=float(own.mean()), dist_nearest=float(near.mean()),
                                       nearest_is_own=float(hit.mean()), generation_s=gen_s[name])))
    res.update(rows=rows, references=[summary(n, {}) for n in refs], floor=float(floor.mean()), spread=float(spread.mean()),
               recipe=dict(name='coda.config.digits_recipe', seeds=args.seeds, epochs=rows[0]['epochs'] if rows else None),
               generation=dict(steps=gcfg.num_inference_steps, guidance_scale=gcfg.guidance_scale, seed=gcfg.seed,
                               batch_size=generation_batch_size(gcfg), scheduler=gcfg.scheduler, ipc=args.ipc))
    res['verdict'] = verdict(rows)
    res['wall_s'] = round(time.time() - t_start, 1)
    res['load_after'] = load_avg()
    md = table(rows, res['references'], res['floor'], res['spread'])
    res['table'] = md
    out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
    save_json(out, res)
    plot(res, out.with_suffix('.png'))
    print(md)
    print()
    print(res['verdict'])
    print(f"\nwall time {res['wall_s']:.0f} s (features {tm['features_s']} s, discovery {tm['discovery_s']} s, generation "
          f"{sum(gen_s.values()):.0f} s, distances {tm['distances_s']} s, evaluation {tm['evaluation_s']} s); "
          f"load before: {res['load_before']}; after: {res['load_after']}")
    print(f'results: {out}, figure: {out.with_suffix(".png")}')
    return res


def verdict(rows):
    "What the sweep supports, in words: the paper's default against the unguided set, and the best setting."
    by = {r['name']: r for r in rows}
    lines = []
    d = by.get(set_name(*PAPER))
    if d and d.get('vs_unguided') and d['vs_unguided']['lo'] is not None:
        c = d['vs_unguided']
        lines.append(f"paper default (gamma {PAPER[0]}, guide_frac {PAPER[1]}): {c['mean']:+.1f} pts vs unguided, 95% CI "
                     f"[{c['lo']:+.1f}, {c['hi']:+.1f}] ({'beyond noise' if c['lo'] > 0 or c['hi'] < 0 else 'within noise'}); "
                     f"latent distance to its representative {d['dist_own']:.2f} vs {by['unguided']['dist_own']:.2f} unguided")
    guided = [r for r in rows if r['gamma'] > 0]
    if guided:
        b = max(guided, key=lambda r: (r['top1_mean'], -r['gamma']))
        c = b.get('vs_unguided')
        lines.append(f"best on the carved split: {b['name']} (top-1 {b['top1_mean']:.1f}%"
                     + (f", {c['mean']:+.1f} pts vs unguided [{c['lo']:+.1f}, {c['hi']:+.1f}]" if c and c['lo'] is not None else '') + ')')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
