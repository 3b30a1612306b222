"""Ablation: back-projection on noisy LR — fewer iterations, or a smoothed residual — and
whether a blind noise estimate could tell when to use it.

    python benchmarks/bp_noise.py [--images astronaut,rocket] [--protocols realistic,bicubic]
                                  [--perceptual] [--threads 2] [--out outputs/bench/bp_noise]
    python benchmarks/bp_noise.py --estimate-noise [--data FOLDER]   # blind noise estimates of each LR

Back-projection makes the output, downscaled, match the LR exactly; on a noisy, JPEG'd LR
that also copies its noise back. For each case the `default` preset is trained once (as
`sr-core bench` trains it, perceptual loss off) and its x2 output is made with each variant
from the same weights, so the differences are paired, not seed noise. Variants: 0, 3, 5 and
10 (`default`) iterations, and 10 iterations with the LR residual blurred by a Gaussian of
sigma 0.5 / 0.7 / 1.0 LR pixels before it is brought up (`infer.bp_residual_blur`, which
this script's first version, commit 4e0cf38, patched in; `default`'s own JPEG test is off
here, so each variant's blur is its own); with --perceptual also IBP
(bicubic + 10 iterations) and each variant's perceptual distance and NIQE. Prints PSNR-Y,
writes results.json under --out. `--estimate-noise` prints two blind noise estimates (grey
levels, on the luma) of the bicubic and realistic LR, x2 and x4, of every default-set image
(or of the images in --data, e.g. Set5): Immerkaer's (1996) fast estimate and the
weak-texture patch PCA of Chen, Zhu & Heng (ICCV 2015). Not a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sr_core.evaluation.bench import DEFAULT_CROP, load_images, measure, perceptual_metric, save_records, train_on_lr
from sr_core.config import preset
from sr_core.method.pairs import to_numpy, to_tensor
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import back_project, resize, upscale
from sr_core.evaluation.metrics import rgb_to_y
from sr_core.evaluation.protocols import make_lr, quantize8


VARIANTS = [("10 iterations (default)", 10, None), ("0", 0, None), ("3", 3, None), ("5", 5, None),
            ("10, residual blur 0.5", 10, 0.5), ("10, residual blur 0.7", 10, 0.7), ("10, residual blur 1.0", 10, 1.0)]


def immerkaer(y: np.ndarray) -> float:
    """Immerkaer's fast noise standard deviation estimate of a 2-D image (same units)."""
    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)
    h, w = y.shape
    resp = sum(m[i, j] * y[i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3))
    return float(np.sqrt(np.pi / 2) * np.abs(resp).sum() / (6 * (w - 2) * (h - 2)))


def patch_pca_noise(y: np.ndarray, size: int = 5) -> float:
    """Chen, Zhu & Heng's (2015) estimate: the noise variance is the mean of the patch
    covariance's smallest eigenvalues, taking the largest tail whose mean is at most its median."""
    patches = np.lib.stride_tricks.sliding_window_view(y, (size, size)).reshape(-1, size * size)
    eig = np.sort(np.linalg.eigvalsh(np.cov(patches, rowvar=False)))[::-1]
    for i in range(len(eig)):
        if eig[i:].mean() <= np.median(eig[i:]):
            return float(np.sqrt(max(eig[i:].mean(), 0.0)))
    return float(np.sqrt(max(eig[-1], 0.0)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="astronaut,rocket")
    p.add_argument("--protocols", default="realistic,bicubic")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--estimate-noise", action="store_true")
    p.add_argument("--data", default=None, help="with --estimate-noise: a folder of images instead of the default set")
    p.add_argument("--perceptual", action="store_true", help="also the perceptual metric and NIQE, and IBP")
    p.add_argument("--out", default="outputs/bench/bp_noise")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.estimate_noise:
        for name, hr in load_images(args.data, DEFAULT_CROP):
            for scale in (2, 4):
                ys = {pr: rgb_to_y(make_lr(hr, scale, pr, name=name).lr) for pr in ("bicubic", "realistic")}
                print(f"{name:<10} x{scale}: Immerkaer bicubic LR {immerkaer(ys['bicubic']):5.2f}, realistic LR "
                      f"{immerkaer(ys['realistic']):5.2f}; patch PCA bicubic LR {patch_pca_noise(ys['bicubic']):5.2f}, "
                      f"realistic LR {patch_pca_noise(ys['realistic']):5.2f} grey levels")
        return 0
    rows = []
    metric = perceptual_metric() if args.perceptual else (None, "off")

    def record(name, protocol, label, out, hr):
        m = measure(quantize8(out), hr, 2, metric)
        rows.append({"image": name, "protocol": protocol, "scale": 2, "variant": label, "psnr_y": m["psnr_y"],
                     **({"perceptual": m["perceptual"], "niqe": m["niqe"]} if args.perceptual else {})})
        extra = f"  perceptual {m['perceptual']:.4f}  NIQE {m['niqe']:.2f}" if args.perceptual else ""
        print(f"{protocol:<9} x2 {name:<10} {label:<24} {m['psnr_y']:.3f}{extra}", flush=True)

    for protocol in args.protocols.split(","):
        for name in args.images.split(","):
            hr = dict(load_images(None, DEFAULT_CROP, only=[name]))[name]
            case = make_lr(hr, 2, protocol, name=name)
            cfg = preset("default", input_size=(case.lr.shape[1], case.lr.shape[0]))
            rgb, model, plan = train_on_lr(case.lr, 2, cfg, perceptual=None)
            size = (rgb.shape[1], rgb.shape[0])
            cfg.infer.jpeg_residual_blur = 0.0  # each variant sets its own blur, JPEG'd input or not
            for label, iterations, sigma in VARIANTS:
                cfg.infer.back_projection, cfg.infer.bp_residual_blur = iterations, sigma or 0.0
                out = upscale(model, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, seed=cfg.seed,
                              progress=False).image
                record(name, protocol, label, out, case.hr)
            if args.perceptual:
                lr_t = to_tensor(rgb)
                start = resize(lr_t, (2 * size[1], 2 * size[0]), "bicubic").clamp(0, 1)
                record(name, protocol, "IBP (bicubic + 10)", to_numpy(back_project(start, lr_t, 10)), case.hr)
    save_records(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
