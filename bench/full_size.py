"""The full-size published architectures (random weights) through the real generation stage.

Each architecture (SD 1.5, SD 2.1 v-prediction, SDXL base 1.0 handing over to the refiner 1.0,
SD 3.5 medium, FLUX.1-dev) is built from its config with random weights
(`coda.testing.full_size_pipeline`, nothing downloaded), and `coda.generation.generate` (with
`coda_guidance` inside, as the stage runs it) makes one image from one random target latent with
classifier-free guidance (FLUX.1-dev is guidance-distilled: the scale is an input of its one call
per step). Checked: the saved image has the asked size, every denoiser output and the decoded image
are finite, each base step follows the CoDA rules (`coda.testing.check_coda_steps`: x̂0 pulled by
exactly gamma*sigma_i on the guided steps, in the model's parametrisation: epsilon, v or flow), and
the refiner runs unguided. Printed per architecture: build time, seconds per denoising step
(denoiser call with the CoDA hook), peak RSS (getrusage; each architecture runs in its own process,
so the peak is its own), and for SDXL the refiner hand-off (the refiner's UNet replaces the base's
in memory, never both at once).

What does not fit in a CPU machine's memory in float32 is not built, and the output says so:
T5-XXL (4.76 B parameters, 19 GB; SD 3.5's third and FLUX.1's second text encoder) is replaced by a
stand-in with the published widths and --t5-layers of its 24 blocks (random weights, so its prompt
embeddings have the real shape); SD 3.5's 2.24 B transformer is built at its first step, after the
text encoders are freed; FLUX.1's 11.9 B transformer (48 GB) runs as a stand-in with the published
widths and one double-stream and one single-stream block, each timed inside the real run, and its
s/step is extrapolated: 19 x double + 38 x single + the rest (embeddings, output layer, hooks).
On CUDA everything is built at full size unless --t5-layers / --flux-blocks say otherwise.

    python bench/full_size.py                                   # CPU: 256x256, 2 steps
    python bench/full_size.py --arch sd15 --steps 3
    python bench/full_size.py --arch sd35m flux                 # CPU: stand-ins for T5-XXL and FLUX.1's transformer
    python bench/full_size.py --device cuda --size 1024 --steps 25 --batch   # GPU: + images/s at batch 1, 4, 8, guidance overhead

--dtype auto: float16 on CUDA; on a CPU bfloat16 where the CPU has native bfloat16 instructions,
else float32 (PyTorch's bfloat16 matmul fallback is ~100x slower than float32 on other CPUs).
Exit status 1 if any check fails; the last line says whether all passed.
"""
import argparse, gc, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ARCHS = ('sd15', 'sd21', 'sdxl', 'sd35m', 'flux')
CHOICES = ARCHS + ('flux_schnell',)


def peak_rss_gb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024 ** 2   # Linux: KiB


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--arch', nargs='+', choices=CHOICES, default=list(ARCHS), help='architectures (sdxl includes the refiner hand-off)')
    ap.add_argument('--size', type=int, default=256, help='image side in pixels')
    ap.add_argument('--steps', type=int, default=2, help='denoising steps (the SDXL hand-off uses at least enough for 2 base steps)')
    ap.add_argument('--dtype', default='auto', choices=['auto', 'float32', 'bfloat16', 'float16'])
    ap.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    ap.add_argument('--batch', action='store_true', help='also images/s at batch 1, 4, 8 and the guidance overhead per step (for a GPU)')
    ap.add_argument('--denoising-end', type=float, default=0.8, help='where the SDXL base hands over to the refiner')
    ap.add_argument('--no-refiner', action='store_true', help='SDXL base alone')
    ap.add_argument('--guidance-scale', type=float, default=5.0)
    ap.add_argument('--t5-layers', type=int, default=None,
                    help='T5-XXL encoder blocks to build (24 = the real one; default: 1 on a CPU, 24 on CUDA)')
    ap.add_argument('--flux-blocks', type=int, nargs=2, default=None, metavar=('DOUBLE', 'SINGLE'),
                    help="FLUX.1 transformer blocks to build (default: 1 1 on a CPU, the published 19 38 on CUDA)")
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    return ap.parse_args()


def handoff_steps(pipe, steps, denoising_end):
    "The fewest steps >= `steps` whose base part (cut at denoising_end) has 2 steps, so that one is guided and one is not."
    n = steps
    while True:
        sch = type(pipe.scheduler).from_config(pipe.scheduler.config)
        sch.set_timesteps(n)
        if sum(float(t) >= round(1000 * (1 - denoising_end)) for t in sch.timesteps) >= 2: return n
        n += 1


def one_run(pipe, refiner, args, device, dtype, steps, n_images, denoising_end=None, check=True):
    "generate() for one class with `n_images` random targets in one batch, checked; (seconds, base denoiser calls, refiner UNet calls, check rows)."
    import torch
    from PIL import Image
    import coda.testing as T
    from coda.config import GenerationConfig
    from coda.generation import generate, latent_shape
    from coda.guidance import family_of
    z = torch.randn(n_images, *latent_shape(pipe, args.size, args.size), generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(model='random-weights', refiner='random-weights-refiner' if refiner is not None else None,
                           denoising_end=denoising_end or 1.0, num_inference_steps=steps, guidance_scale=args.guidance_scale,
                           height=args.size, width=args.size, dtype=str(dtype).replace('torch.', ''), device=str(device), batch_size=n_images)
    decoded = []
    h = pipe.vae.decoder.register_forward_hook(lambda m, a, o: decoded.append((tuple(o.shape), bool(torch.isfinite(o).all()))))
    try:
        with tempfile.TemporaryDirectory() as d, T.watch_denoiser(family_of(pipe).denoiser) as calls:
            rcalls = []
            ctx = T.watch_denoiser(refiner.unet) if refiner is not None else None
            if ctx is not None: rcalls = ctx.__enter__()
            try:
                if device.type == 'cuda': torch.cuda.synchronize()
                t0 = time.perf_counter()
                generate(pipe, [('n0', 0, 'a tench', z.numpy())], d, cfg, refiner=refiner, show_progress=False)
                if device.type == 'cuda': torch.cuda.synchronize()
                seconds = time.perf_counter() - t0
            finally:
                if ctx is not None: ctx.__exit__(None, None, None)
            sizes = [Image.open(p).size for p in sorted(Path(d).glob('n0/*.png'))]
    finally: h.remove()
    rows = None
    if check:
        assert sizes == [(args.size, args.size)] * n_images, f'saved images {sizes}, expected {n_images} of {args.size}x{args.size}'
        assert decoded == [((n_images, 3, args.size, args.size), True)], f'decoded images (shape, finite): {decoded}'
        rows = T.check_coda_steps(calls, pipe, z, cfg.gamma, cfg.guide_frac, steps, cfg.guidance_scale, denoising_end,
                                  rtol=1e-4 if dtype == torch.float32 else 2e-2)
        if refiner is not None:
            assert len(rcalls) >= 1, 'the refiner did not run'
            assert not any(c['coda'] for c in rcalls), 'the CoDA hook was active in the refiner'
            assert all(torch.equal(c['raw'], c['out']) for c in rcalls), 'a refiner output was changed'
            assert all(bool(torch.isfinite(c['out']).all()) for c in rcalls), 'a refiner output is not finite'
    return seconds, calls, rcalls, rows


def nparams(m): return sum(p.numel() for p in m.parameters())


def stand_ins(arch, args, device, dtype):
    "(overrides for full_size_pipeline, (published, built) block counts of FLUX.1, lines saying what is not built) of `arch` here."
    import coda.testing as T
    a, cpu, over, notes = T.ARCHITECTURES[arch], device.type == 'cpu', {}, []
    size = lambda n: f'{n / 1e9:.2f} B parameters, {n * dtype.itemsize / 1e9:.1f} GB in {str(dtype).replace("torch.", "")}'
    t5 = next((k for k in ('text_encoder_2', 'text_encoder_3') if 'd_model' in a.get(k, {})), None)
    if t5:
        full = a[t5]['layers']
        n = args.t5_layers or (1 if cpu else full)
        if n != full:
            over[t5] = dict(layers=n)
            big = nparams(T.full_size_text_encoders(arch, dtype, 'meta')[t5])
            small = nparams(T.full_size_text_encoders(arch, dtype, 'meta', **over)[t5])
            notes.append(f'{t5} = T5 v1.1 XXL encoder ({size(big)}) NOT BUILT: STAND-IN with the published widths and {n} of its '
                         f'{full} blocks ({size(small)}), random weights: its prompt embeddings have the real shape, not its cost')
    blocks = None
    if 'num_single_layers' in a.get('transformer', {}):
        L, S = a['transformer']['num_layers'], a['transformer']['num_single_layers']
        d, s = args.flux_blocks or ((1, 1) if cpu else (L, S))
        blocks = (L, S), (d, s)
        if (d, s) != (L, S):
            over['transformer'] = dict(num_layers=d, num_single_layers=s)
            full = T.full_size_denoiser(arch, dtype, 'meta')
            small = T.full_size_denoiser(arch, dtype, 'meta', **over['transformer'])
            notes.append(f'transformer ({size(nparams(full))}: {L} double-stream blocks of {nparams(full.transformer_blocks[0]) / 1e6:.1f} M, '
                         f'{S} single-stream blocks of {nparams(full.single_transformer_blocks[0]) / 1e6:.1f} M, the rest '
                         f'{(nparams(full) - L * nparams(full.transformer_blocks[0]) - S * nparams(full.single_transformer_blocks[0])) / 1e6:.1f} M) '
                         f'NOT BUILT: STAND-IN with the published widths and {d} double-stream + {s} single-stream block(s) '
                         f'({size(nparams(small))}); its s/step is EXTRAPOLATED to {L} + {S} blocks from the blocks timed in the run')
    return over, blocks, notes


def time_blocks(transformer):
    "Time the double- and single-stream blocks of a FLUX.1 transformer, per call of the transformer: a list of {'double': s, 'single': s}."
    steps, start = [], {}
    transformer.register_forward_pre_hook(lambda m, a: steps.append(dict(double=0.0, single=0.0)))
    for kind, blocks in (('double', transformer.transformer_blocks), ('single', transformer.single_transformer_blocks)):
        for b in blocks:
            b.register_forward_pre_hook(lambda m, a: start.__setitem__(id(m), time.perf_counter()))
            b.register_forward_hook(lambda m, a, o, kind=kind: steps[-1].__setitem__(kind, steps[-1][kind] + time.perf_counter() - start[id(m)]))
    return steps


def child(arch, args):
    "One architecture in this process; prints its lines; returns True when every check passed."
    import torch
    import diffusers, transformers
    diffusers.utils.logging.set_verbosity_error(); transformers.utils.logging.set_verbosity_error()
    import coda.testing as T
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    dtype = T.full_size_dtype(device) if args.dtype == 'auto' else getattr(torch, args.dtype)
    dname = str(dtype).replace('torch.', '')
    where = f'{device.type}, {dname}, {args.size}x{args.size}, {"guidance" if arch.startswith("flux") else "CFG"} {args.guidance_scale:g}'
    gpu_peak = lambda: f', GPU peak {torch.cuda.max_memory_allocated() / 1024 ** 3:.2f} GB' if device.type == 'cuda' else ''
    ok = True
    over, blocks, notes = stand_ins(arch, args, device, dtype)
    for n in notes: print(f'{arch:5} NOTE: {n}', flush=True)
    flow = 'transformer' in T.ARCHITECTURES[arch]
    lazy = flow and device.type == 'cpu' and not args.batch and 'transformer' not in over   # the full transformer after the text encoders
    t0 = time.perf_counter()
    pipe = T.full_size_pipeline(arch, dtype, device, swap=lazy, overrides=over)
    if device.type == 'cuda': torch.cuda.synchronize()
    build = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)
    block_steps = time_blocks(pipe.transformer) if blocks else None
    if lazy:
        tswap = next(h for h in pipe.transformer._forward_pre_hooks.values() if isinstance(h, T._SwapIn))
        enc_peak = {}
        def note_enc_peak(m, a): enc_peak.setdefault('gb', peak_rss_gb())   # runs before the swap: the peak while encoding
        pipe.transformer.register_forward_pre_hook(note_enc_peak, prepend=True)
    if args.batch:
        one_run(pipe, None, args, device, dtype, min(args.steps, 2), 1, check=False)   # warm-up (kernels, allocator)
        for b in (1, 4, 8):
            try: s, calls, _, rows = one_run(pipe, None, args, device, dtype, args.steps, b)
            except AssertionError as e:
                ok = False; print(f'{arch:5} batch {b}: CHECK FAILED: {e}', flush=True); continue
            except Exception as e:   # out of memory and the like: report it and go on
                ok = False; print(f'{arch:5} batch {b}: ERROR {type(e).__name__}: {str(e).splitlines()[0][:200]}', flush=True); continue
            g = [c['seconds'] for c, r in zip(calls, rows) if r['guided']]
            u = [c['seconds'] for c, r in zip(calls, rows) if not r['guided']]
            mg, mu = statistics.median(g), statistics.median(u)
            print(f'{arch:5} batch {b}: {b / s:.3f} images/s ({s:.1f} s for {b} image(s), {args.steps} steps, PNGs included); '
                  f'step {mg:.3f} s guided ({len(g)}) vs {mu:.3f} s unguided ({len(u)}): guidance {1000 * (mg - mu):+.1f} ms/step '
                  f'({100 * (mg / mu - 1):+.1f}%){gpu_peak()}', flush=True)
    steps, de, refiner = args.steps, None, None
    if arch == 'sdxl' and not args.no_refiner:
        de = args.denoising_end
        steps = handoff_steps(pipe, args.steps, de)
        refiner = T.full_size_pipeline('sdxl_refiner', dtype, device, base=pipe, swap=True)
        refiner.set_progress_bar_config(disable=True)
        swap = next(h for h in refiner.unet._forward_pre_hooks.values() if isinstance(h, T._SwapIn))
        base_peak = {}
        def note_base_peak(m, a): base_peak.setdefault('gb', peak_rss_gb())   # runs before the swap: the base's own peak
        refiner.unet.register_forward_pre_hook(note_base_peak, prepend=True)
    if block_steps: block_steps.clear()   # the blocks of the single-image run below only
    try:
        s, calls, rcalls, rows = one_run(pipe, refiner, args, device, dtype, steps, 1, de)
        status = f"checks passed ({sum(r['guided'] for r in rows)} guided step(s), x̂0 pull = formula)"
    except AssertionError as e:
        ok, status = False, f'CHECK FAILED: {e}'
        s, calls, rcalls = float('nan'), [], []
    secs = [c['seconds'] for c in calls]
    extra = ''
    if lazy and secs:   # the first call built the transformer, after freeing the text encoders
        secs[0] -= tswap.seconds
        extra = (f'  [build = text encoders + VAE {build:.1f} s + the {nparams(pipe.transformer) / 1e9:.2f} B transformer {tswap.seconds:.1f} s, '
                 f'built at its first step after the text encoders were freed; peak RSS while encoding {enc_peak.get("gb", float("nan")):.2f} GB]')
        build += tswap.seconds
    per_step = statistics.mean(secs) if secs else float('nan')
    part = f'{len(calls)} base steps of {steps}, denoising_end {de}' if de else f'{len(calls)} steps'
    if arch.startswith('flux'):   # guidance-distilled (dev) or distilled to few steps (schnell): no unconditional pass
        part += ', one call per step' + (f', guidance {args.guidance_scale:g} as an input' if pipe.transformer.config.guidance_embeds else '')
    elif args.guidance_scale > 1: part += ', CFG batch'
    peak = base_peak.get('gb', peak_rss_gb()) if refiner is not None else peak_rss_gb()
    what = 'STAND-IN ' if 'transformer' in over else ''
    print(f'{arch:5} build {build:6.1f} s  {per_step:7.2f} s/step {what}({part})  peak RSS {peak:6.2f} GB{gpu_peak()}  '
          f'generate {s:.1f} s  [{where}]  {status}{extra}', flush=True)
    if blocks and block_steps and secs:
        (L, S), (d, n_s) = blocks
        dbl = statistics.mean(b['double'] for b in block_steps) / d
        sgl = statistics.mean(b['single'] for b in block_steps) / n_s
        rest = per_step - d * dbl - n_s * sgl
        label = 'EXTRAPOLATED' if (d, n_s) != (L, S) else 'measured'
        full = nparams(T.full_size_denoiser(arch, dtype, 'meta'))
        print(f'{arch:5} {label} s/step of the full {full / 1e9:.2f} B transformer: {L} x double {dbl:.3f} s + {S} x single {sgl:.3f} s '
              f'+ the rest {rest:.3f} s = {L * dbl + S * sgl + rest:.2f} s/step  (blocks timed inside the run, mean of {len(block_steps)} step(s))',
              flush=True)
    if refiner is not None and rcalls:
        first = rcalls[0]['seconds'] - (swap.seconds or 0)   # the first call includes the swap
        r_step = statistics.mean([first] + [c['seconds'] for c in rcalls[1:]])
        print(f'sdxl -> refiner hand-off: refiner UNet swapped in for the base\'s in {swap.seconds:.1f} s, {r_step:.2f} s/step '
              f'({len(rcalls)} step(s), CoDA hook off, outputs untouched and finite), peak RSS {peak_rss_gb():.2f} GB{gpu_peak()}  '
              + ('checks passed' if ok else 'CHECK FAILED'), flush=True)
    del pipe, refiner; gc.collect()
    return ok


def main():
    args = parse()
    if args.child: sys.exit(0 if child(args.child, args) else 1)
    try: load = subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()
    except OSError: load = 'n/a'
    print(f'full-size architectures, random weights, through coda.generation.generate ({load})', flush=True)
    failed = []
    for arch in args.arch:   # one process per architecture: its memory is freed and its peak RSS is its own
        argv = [a for a in sys.argv[1:]]
        r = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', arch] + argv)
        if r.returncode != 0:
            failed.append(arch)
            if r.returncode < 0: print(f'{arch:5} FAILED: killed by signal {-r.returncode} (out of memory?)', flush=True)
    if failed: print(f'FAILED: {", ".join(failed)} ({len(failed)} of {len(args.arch)} architectures)'); sys.exit(1)
    print(f'all {len(args.arch)} architectures passed ({", ".join(args.arch)})')


if __name__ == '__main__':
    main()
