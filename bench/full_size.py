"""The full-size published architectures (random weights) through the real generation stage.

Each architecture (SD 1.5, SD 2.1 v-prediction, SDXL base 1.0 handing over to the refiner 1.0) is
built from its config with random weights (`coda.testing.full_size_pipeline`, nothing downloaded),
and `coda.generation.generate` (with `coda_guidance` inside, as the stage runs it) makes one image
from one random target latent with classifier-free guidance. Checked: the saved image has the
asked size, every UNet output and the decoded image are finite, each base step follows the CoDA
rules (`coda.testing.check_coda_steps`: x̂0 pulled by exactly gamma*sigma_i while t > t_stop, in the
model's parametrisation), and the refiner runs unguided. Printed per architecture: build time,
seconds per denoising step (UNet call with the CoDA hook, CFG batch), peak RSS (getrusage; each
architecture runs in its own process, so the peak is its own), and for SDXL the refiner hand-off
(the refiner's UNet replaces the base's in memory, never both at once).

    python bench/full_size.py                                   # CPU: 256x256, 2 steps
    python bench/full_size.py --arch sd15 --steps 3
    python bench/full_size.py --device cuda --size 1024 --steps 25 --batch   # GPU: + images/s at batch 1, 4, 8, guidance overhead

--dtype auto: float16 on CUDA; on a CPU bfloat16 where the CPU has native bfloat16 instructions,
else float32 (PyTorch's bfloat16 matmul fallback is ~100x slower than float32 on other CPUs).
Exit status 1 if any check fails; the last line says whether all passed.
"""
import argparse, gc, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ARCHS = ('sd15', 'sd21', 'sdxl')


def peak_rss_gb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024 ** 2   # Linux: KiB


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--arch', nargs='+', choices=ARCHS, default=list(ARCHS), help='architectures (sdxl includes the refiner hand-off)')
    ap.add_argument('--size', type=int, default=256, help='image side in pixels')
    ap.add_argument('--steps', type=int, default=2, help='denoising steps (the SDXL hand-off uses at least enough for 2 base steps)')
    ap.add_argument('--dtype', default='auto', choices=['auto', 'float32', 'bfloat16', 'float16'])
    ap.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    ap.add_argument('--batch', action='store_true', help='also images/s at batch 1, 4, 8 and the guidance overhead per step (for a GPU)')
    ap.add_argument('--denoising-end', type=float, default=0.8, help='where the SDXL base hands over to the refiner')
    ap.add_argument('--no-refiner', action='store_true', help='SDXL base alone')
    ap.add_argument('--guidance-scale', type=float, default=5.0)
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
    "generate() for one class with `n_images` random targets in one batch, checked; (seconds, base UNet calls, refiner UNet calls, check rows)."
    import torch
    from PIL import Image
    import coda.testing as T
    from coda.config import GenerationConfig
    from coda.generation import generate
    f = pipe.vae_scale_factor
    z = torch.randn(n_images, 4, args.size // f, args.size // f, generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(model='random-weights', refiner='random-weights-refiner' if refiner is not None else None,
                           denoising_end=denoising_end or 1.0, num_inference_steps=steps, guidance_scale=args.guidance_scale,
                           height=args.size, width=args.size, dtype=str(dtype).replace('torch.', ''), device=str(device), batch_size=n_images)
    decoded = []
    h = pipe.vae.decoder.register_forward_hook(lambda m, a, o: decoded.append((tuple(o.shape), bool(torch.isfinite(o).all()))))
    try:
        with tempfile.TemporaryDirectory() as d, T.watch_unet(pipe.unet) as calls:
            rcalls = []
            ctx = T.watch_unet(refiner.unet) if refiner is not None else None
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
    where = f'{device.type}, {dname}, {args.size}x{args.size}, CFG {args.guidance_scale:g}'
    gpu_peak = lambda: f', GPU peak {torch.cuda.max_memory_allocated() / 1024 ** 3:.2f} GB' if device.type == 'cuda' else ''
    ok = True
    t0 = time.perf_counter()
    pipe = T.full_size_pipeline(arch, dtype, device)
    if device.type == 'cuda': torch.cuda.synchronize()
    build = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)
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
    try:
        s, calls, rcalls, rows = one_run(pipe, refiner, args, device, dtype, steps, 1, de)
        status = f"checks passed ({sum(r['guided'] for r in rows)} guided step(s), x̂0 pull = formula)"
    except AssertionError as e:
        ok, status = False, f'CHECK FAILED: {e}'
        s, calls, rcalls = float('nan'), [], []
    per_step = statistics.mean(c['seconds'] for c in calls) if calls else float('nan')
    part = f'{len(calls)} base steps of {steps}, denoising_end {de}' if de else f'{len(calls)} steps'
    peak = base_peak.get('gb', peak_rss_gb()) if refiner is not None else peak_rss_gb()
    print(f'{arch:5} build {build:6.1f} s  {per_step:7.2f} s/step ({part})  peak RSS {peak:6.2f} GB{gpu_peak()}  '
          f'generate {s:.1f} s  [{where}]  {status}', flush=True)
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
