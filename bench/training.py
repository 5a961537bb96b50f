"""Training throughput of coda's students: images/s of the real training step (coda.training's fastai Learner:
in-memory uint8 images, batch augmentation RRC + flip + jitter + lighting, CutMix, SGD), timed after warm-up.

    python bench/training.py                       # ResNetAP-10 at 256 px, ConvNet-3 (width 128) at 32 px and the digits demo's ConvNet (width 32, 16 px), on CPU (1 and 2 threads) and CUDA if present
    python bench/training.py --case convnet32 --threads 1 --steps 20
    python bench/training.py --device cuda --precision bfloat16

Prints one line per measurement and the machine load (`uptime`) before and after: the figures are only comparable
on a quiet machine.
"""
import argparse, os, subprocess, sys, time
from dataclasses import replace

import torch
from fastai.callback.core import Callback

from coda.config import TrainConfig
from coda.training import resolve_train, make_learner, cpu_threads

CASES = {  # name: (TrainConfig overrides, CPU batch size, GPU batch size)
    'resnetap10_256': (dict(arch='resnetap10', image_size=256), 8, 64),
    'convnet32': (dict(arch='convnet', image_size=32, convnet_depth=3, convnet_width=128), 64, 64),
    'digits16': (dict(arch='convnet', image_size=16, convnet_depth=3, convnet_width=32, flip=False), 64, 64),   # the digits demo's student
}

class StepTimer(Callback):
    "Wall time of each training step (synchronised on CUDA)."
    order = 100
    def __init__(self): self.t = []
    def _sync(self):
        if torch.cuda.is_available(): torch.cuda.synchronize()
    def before_fit(self): self._sync(); self.t.append(time.perf_counter())
    def after_batch(self): self._sync(); self.t.append(time.perf_counter())

def measure(case, device, threads=None, bs=None, steps=5, warmup=2, precision='float32', n_classes=10):
    over, bs_cpu, bs_gpu = CASES[case]
    bs = bs or (bs_gpu if device == 'cuda' else bs_cpu)
    cfg = resolve_train(TrainConfig(**over, epochs=1, epoch_images=bs * (steps + warmup), batch_size=bs, device=device,
                                    precision=precision), ipc=10, n_classes=n_classes)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (max(bs, 100), 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=g)
    y = torch.arange(len(x)) % n_classes
    timer = StepTimer()
    with cpu_threads(threads if device == 'cpu' else None):
        learn = make_learner(x, y, cfg, n_classes, seed=0, cbs=[timer])
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
    dt = timer.t[-1] - timer.t[warmup]          # the last `steps` steps
    return bs * steps / dt, dt / steps

def uptime(): return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--case', choices=list(CASES), nargs='*', default=list(CASES))
    p.add_argument('--device', choices=['cpu', 'cuda'], nargs='*', default=['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    p.add_argument('--threads', type=int, nargs='*', default=[1, 2], help='CPU thread counts to try')
    p.add_argument('--bs', type=int, default=None, help='batch size (default: 8 for ResNetAP-10 on CPU, else 64)')
    p.add_argument('--steps', type=int, default=None, help='timed steps (default: 3 for ResNetAP-10 on CPU, else 10)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--precision', default='float32', choices=['float32', 'bfloat16', 'float16'], help='GPU only')
    a = p.parse_args()
    print('command:', 'python ' + ' '.join(sys.argv))
    print(f'torch {torch.__version__}, {os.cpu_count()} CPUs' + (f', {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ', no GPU'))
    print('load before:', uptime())
    for case in a.case:
        for dev in a.device:
            for th in (a.threads if dev == 'cpu' else [None]):
                steps = a.steps or (3 if (dev == 'cpu' and case.startswith('resnet')) else 10)
                ips, spb = measure(case, dev, th, a.bs, steps, a.warmup, a.precision if dev == 'cuda' else 'float32')
                bs = a.bs or (CASES[case][2] if dev == 'cuda' else CASES[case][1])
                what = f'{th} thread(s)' if dev == 'cpu' else a.precision
                print(f'{case:15s} {dev:4s} {what:12s} batch {bs:3d}: {ips:8.1f} images/s  ({spb * 1000:.0f} ms/step, {steps} steps timed)', flush=True)
    print('load after: ', uptime())

if __name__ == '__main__': main()
