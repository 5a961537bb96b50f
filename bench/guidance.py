"""Benchmarks of coda.guidance (the correction) and coda.generation (the generation stage).

1. Overhead of the CoDA correction per denoising step: the same pipeline call (25 steps, CFG 5)
   with and without `coda_guidance`, interleaved, median over repeats (target: ratio <= 1.03).
2. Images/s of `generate` (prompt encoded once per class, `batch_size` images per UNet call) vs one
   pipeline call per image with the prompt re-encoded each time (how the published code does it).

    python bench/guidance.py                    # tiny SD 1.x + SDXL pipelines on the CPU
    python bench/guidance.py --full-size sdxl   # full-size SDXL, random weights, fp16, 1024x1024, CUDA (batch 1/4/8)

The machine's load (`uptime`) is printed with the figures; a shared machine makes them noisy.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch


def load_avg():
    try: return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()
    except OSError: return 'n/a'


def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()


def embeds(pipe, prompt, n, device):
    from coda.generation import _encode
    e = _encode(pipe, prompt, True, device)
    return {k: v.repeat(n, *[1] * (v.ndim - 1)) for k, v in e.items()}


def time_overhead(pipe, batch, steps, repeats, device, dtype, warmup=2):
    "Median seconds per call of the plain pipeline and of the same call under coda_guidance."
    from coda.guidance import coda_guidance
    from coda.generation import latent_shape, generation_size
    shape = latent_shape(pipe, *generation_size(pipe, _Cfg()))
    g = torch.Generator('cpu').manual_seed(0)
    x_T = torch.randn((batch,) + shape, generator=g).to(device, dtype)
    z = torch.randn((batch,) + shape, generator=g)
    kw = dict(num_inference_steps=steps, guidance_scale=5.0, output_type='latent', **embeds(pipe, 'a tench', batch, device))
    cpu = []
    def timed(f):
        sync(device); t0, c0 = time.perf_counter(), time.process_time(); f(); sync(device)
        cpu.append(time.process_time() - c0)
        return time.perf_counter() - t0
    def plain(): return timed(lambda: pipe(latents=x_T.clone(), **kw))
    def guided():
        def run():
            with coda_guidance(pipe, z, 0.05, 0.9): pipe(latents=x_T.clone(), **kw)
        return timed(run)
    for _ in range(warmup): plain(); guided()
    tp, tg, cp, cg = [], [], [], []
    for r in range(repeats):  # interleaved, alternating order, so drifts in machine load hit both
        for f, t, c in ((plain, tp, cp), (guided, tg, cg))[::(-1 if r % 2 else 1)]:
            t.append(f()); c.append(cpu[-1])
    cpu_ratio = statistics.median(cg) / statistics.median(cp)  # process time: less sensitive to other processes
    return statistics.median(tp), statistics.median(tg), min(tp), min(tg), cpu_ratio


class _Cfg:  # default height/width
    height = width = None


def time_generation(pipe, n_classes, ipc, steps, batch_sizes, device, eval_size, workdir, repeats=2):
    "Images/s of `generate` at each batch size and of one pipeline call per image (prompt re-encoded); best of `repeats`, interleaved."
    from coda.config import GenerationConfig
    from coda.guidance import coda_guidance
    from coda.generation import generate, latent_shape, generation_size, image_seed
    from coda.stage import save_png
    from diffusers.utils.torch_utils import randn_tensor
    from PIL import Image
    shape = latent_shape(pipe, *generation_size(pipe, _Cfg()))
    rng = np.random.default_rng(0)
    targets = [(f'c{c}', c, f'a photo of class {c}', rng.standard_normal((ipc,) + shape).astype(np.float32)) for c in range(n_classes)]
    n = n_classes * ipc
    dtype = pipe.unet.dtype
    pipe.set_progress_bar_config(disable=True)

    def per_image(out):  # how the published code does it: one call per image, the prompt re-encoded each time
        for cid, ci, prompt, lat in targets:
            for k in range(ipc):
                g = torch.Generator('cpu').manual_seed(image_seed(0, ci, k))
                x_T = randn_tensor((1,) + shape, generator=g, dtype=torch.float32).to(device, dtype)
                with coda_guidance(pipe, lat[k:k + 1], 0.05, 0.9):
                    im = pipe(prompt, num_inference_steps=steps, guidance_scale=5.0, latents=x_T, generator=g).images[0]
                if eval_size: im = im.resize((eval_size, eval_size), Image.LANCZOS)
                save_png(out/cid/f'{k}.png', im)

    def batched(b, out):
        cfg = GenerationConfig(model='bench', num_inference_steps=steps, batch_size=b, eval_size=eval_size, device=str(device))
        generate(pipe, targets, out, cfg, show_progress=False)

    runs = [('per_image_call', per_image)] + [(f'generate_b{b}', lambda out, b=b: batched(b, out)) for b in batch_sizes]
    best, best_cpu = {}, {}
    for r in range(repeats):
        for name, f in (runs if r % 2 == 0 else runs[::-1]):
            sync(device); t0, c0 = time.perf_counter(), time.process_time()
            f(Path(workdir)/f'{name}_{r}')
            sync(device)
            best[name] = max(best.get(name, 0), n / (time.perf_counter() - t0))
            best_cpu[name] = max(best_cpu.get(name, 0), n / (time.process_time() - c0))
    return best, best_cpu


def hook_cost_us(pipe, batch, device, n=500):
    "Microseconds per denoising step spent in the CoDA hook (pre + post), on the pipeline's real shapes, at a guided step."
    from coda.guidance import _CodaHook
    from coda.generation import latent_shape, generation_size
    shape = latent_shape(pipe, *generation_size(pipe, _Cfg()))
    h = _CodaHook(pipe, torch.randn((batch,) + shape), 0.05, 0.9)
    pipe.scheduler.set_timesteps(25); pipe._guidance_scale = 5.0; pipe._denoising_end = None
    pipe.scheduler._step_index = 3
    dtype = pipe.unet.dtype
    x = torch.randn((2 * batch,) + shape, device=device, dtype=dtype)
    out = (torch.randn((2 * batch,) + shape, device=device, dtype=dtype),)
    t = pipe.scheduler.timesteps[3]
    for _ in range(10): h.before(None, (x, t), {}); h.after(None, (x, t), {}, out)
    sync(device); t0 = time.perf_counter()
    for _ in range(n): h.before(None, (x, t), {}); h.after(None, (x, t), {}, out)
    sync(device)
    pipe.scheduler._step_index = None
    return 1e6 * (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--full-size', choices=['sdxl', 'sd15'], default=None, help='full-size random-weight model on CUDA instead of the tiny CPU pipelines')
    ap.add_argument('--steps', type=int, default=25)
    ap.add_argument('--repeats', type=int, default=None, help='overhead repeats (default 15 tiny, 3 full-size)')
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads (tiny runs); 1 avoids OpenMP stalls on a shared machine')
    ap.add_argument('--out', default='bench/out/guidance.json')
    args = ap.parse_args()
    from diffusers.utils import logging as dlog
    dlog.disable_progress_bar(); dlog.set_verbosity_error()
    import coda.testing as T
    results = dict(load_before=load_avg(), torch=torch.__version__, steps=args.steps)
    with tempfile.TemporaryDirectory() as work:
        if args.full_size:
            if not torch.cuda.is_available(): sys.exit('--full-size needs a CUDA GPU')
            device, dtype = torch.device('cuda'), torch.float16
            results['device'] = torch.cuda.get_device_name()
            pipe = T.full_size_pipeline(args.full_size, dtype, device)
            pipe.set_progress_bar_config(disable=True)
            reps = args.repeats or 3
            for b in (1, 4, 8):
                tp, tg, mp, mg, cr = time_overhead(pipe, b, args.steps, reps, device, dtype, warmup=1)
                hc = hook_cost_us(pipe, b, device, n=100)
                results[f'{args.full_size}_b{b}'] = dict(plain_s=tp, guided_s=tg, ratio=tg / tp, ratio_min=mg / mp, ratio_cpu_time=cr, hook_us_per_step=hc,
                                                         plain_s_per_step=tp / args.steps, images_per_s_plain=b / tp)
                print(f'{args.full_size} batch {b}: plain {tp:.2f} s, guided {tg:.2f} s per call ({args.steps} steps): ratio {tg / tp:.4f}, hook {hc:.0f} us/step, {b / tg:.3f} images/s', flush=True)
            gen, _ = time_generation(pipe, 1, 8, args.steps, (1, 4, 8), device, 256, work, repeats=1)
            results[f'{args.full_size}_generation_images_per_s'] = gen
            print(f'images/s (1 class x 8, {args.steps} steps, 1024 px, saved at 256 px):', {k: round(v, 3) for k, v in gen.items()}, flush=True)
        else:
            torch.set_num_threads(args.threads)
            device = torch.device('cpu')
            results['device'] = f'cpu ({args.threads} thread(s))'
            reps = args.repeats or 15
            for name, make in (('tiny_sd', T.tiny_sd_pipeline), ('tiny_sdxl', T.tiny_sdxl_pipeline)):
                pipe = make(); pipe.set_progress_bar_config(disable=True)
                tp, tg, mp, mg, cr = time_overhead(pipe, 1, args.steps, reps, device, torch.float32)
                hc = hook_cost_us(pipe, 1, device)
                results[name] = dict(plain_s=tp, guided_s=tg, ratio=tg / tp, ratio_min=mg / mp, ratio_cpu_time=cr, plain_ms_per_step=1000 * tp / args.steps,
                                     hook_us_per_step=hc, hook_share_of_min_step=hc / (1e6 * mp / args.steps))
                print(f'{name}: plain {1000 * tp / args.steps:.2f} ms/step, guided {1000 * tg / args.steps:.2f} ms/step: '
                      f'ratio {tg / tp:.4f} (median of {reps}), {mg / mp:.4f} (min), {cr:.4f} (CPU time); hook {hc:.0f} us/step = '
                      f'{100 * hc / (1e6 * mp / args.steps):.2f}% of the fastest plain step', flush=True)
            pipe = T.tiny_sdxl_pipeline(); pipe.set_progress_bar_config(disable=True)
            gen, gen_cpu = time_generation(pipe, 2, 8, args.steps, (1, 4, 8), device, 32, work)
            results['tiny_sdxl_generation_images_per_s'] = gen
            results['tiny_sdxl_generation_images_per_cpu_s'] = gen_cpu
            print(f'tiny SDXL images/s (2 classes x 8, {args.steps} steps; best of 2):', {k: round(v, 2) for k, v in gen.items()}, flush=True)
            print('   per CPU-second (process time):', {k: round(v, 2) for k, v in gen_cpu.items()}, flush=True)
    results['load_after'] = load_avg()
    print('load before:', results['load_before']); print('load after: ', results['load_after'])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
