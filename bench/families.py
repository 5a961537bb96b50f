"""The CoDA correction on every registered model family: does the corrected output predict exactly x̂0 + d?

For each family's tiny pipeline of `coda.testing` (random weights, CPU, 32 px, 8 steps, guide_frac 0.75),
two diffusers hooks watch the denoiser inside and outside the CoDA hook; at each guided step the x̂0 the
corrected output implies is compared with x̂0 + gamma*sigma_i*(z - x̂0) (float64, the family's own
parametrisation and layout). Prints the largest error relative to max|z - x̂0|.

    python bench/families.py
"""
import torch
from diffusers.hooks import HookRegistry, ModelHook

from coda.testing import tiny_sd_pipeline, tiny_sdxl_pipeline, tiny_sd3_pipeline, tiny_flux_pipeline
from coda.guidance import coda_guidance, family_of, predicted_x0


class Watch(ModelHook):
    "(x_t, output) of each denoiser call; registered before the CoDA hook it sees the raw output."
    def __init__(self, seen): super().__init__(); self.seen = seen
    def pre_forward(self, m, *a, **k):
        self.x = k['hidden_states'] if 'hidden_states' in k else (a[0] if a else k['sample'])
        return a, k
    def post_forward(self, m, o):
        self.seen.append((self.x.clone(), (o[0] if isinstance(o, tuple) else o.sample).clone())); return o


def max_error(pipe, z, gamma, guidance_scale, px=32, steps=8, guide_frac=0.75):
    pipe.set_progress_bar_config(disable=True)
    ad, raw, new = family_of(pipe), [], []
    reg = HookRegistry.check_if_exists_or_initialize(ad.denoiser)
    reg.register_hook(Watch(raw), 'bench_raw')
    try:
        with coda_guidance(pipe, z, gamma, guide_frac, record=True) as g:
            reg.register_hook(Watch(new), 'bench_new')
            try: pipe(['a tench', 'a church'], num_inference_steps=steps, guidance_scale=guidance_scale, height=px, width=px,
                      output_type='latent', generator=torch.Generator().manual_seed(0))
            finally: reg.remove_hook('bench_new', recurse=False)
    finally: reg.remove_hook('bench_raw', recurse=False)
    B, zz, errs = z.shape[0], ad.layout(z).double(), []
    c = slice(B, None) if ad.cfg else slice(None)
    for i, ((x, o), (_, n)) in enumerate(zip(raw, new)):
        if not g.steps[i]['guided']: continue
        k, s = ad.coefficients(i, g.steps[i]['t'])
        x0, x0n = (predicted_x0(e[c].double(), x[c].double(), k, ad.parametrisation).double() for e in (o, n))
        errs.append(float((x0n - (x0 + gamma * s * (zz - x0))).abs().max() / (zz - x0).abs().max()))
    return max(errs), len(errs), ad


if __name__ == '__main__':
    torch.set_num_threads(1)
    z4 = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    z16 = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    cases = [('SD 1.x, epsilon', tiny_sd_pipeline(), z4, 0.05, 5.0), ('SD 1.x, v-prediction', tiny_sd_pipeline('v_prediction'), z4, 0.05, 5.0),
             ('SDXL', tiny_sdxl_pipeline(), z4, 0.05, 5.0), ('SD3, CFG 5', tiny_sd3_pipeline(), z16, 0.5, 5.0),
             ('SD3, no CFG', tiny_sd3_pipeline(), z16, 0.5, 1.0), ('FLUX.1-dev', tiny_flux_pipeline(), z16, 0.5, 3.5),
             ('FLUX.1-schnell', tiny_flux_pipeline(variant='schnell'), z16, 0.5, 0.0)]
    print(f"{'pipeline':22} {'adapter':12} {'param.':13} {'gamma':>5} {'guided':>6}  max|x̂0' - (x̂0 + d)| / max|z - x̂0|")
    for name, p, z, gamma, cs in cases:
        err, n, ad = max_error(p, z, gamma, cs)
        print(f'{name:22} {type(ad).__name__:12} {ad.parametrisation:13} {gamma:5} {n:6}  {err:.1e}')
