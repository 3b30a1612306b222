"""Ablations of the x4 plan: retraining on the intermediate before each later step (ZSSR's
"gradual" SR), or a larger first step.

    python benchmarks/gradual.py [--images astronaut,chelsea,coffee,rocket] [--protocols bicubic,realistic]
                                 [--scale 4] [--threads 1] [--first-factor F] [--out outputs/bench/gradual]

`default` trains once on the LR image and runs every x2 plan step with that model. `gradual`
trains the same way for the first step, then, before each later step, trains a fresh model on
the step's input (the previous step's output, so the intermediate plays the photo's part),
sized for it as `sr-core run` would size it (`preset("default", input_size=...)`). Both run
side by side on the harness's cases (default-set crops, PSNR-Y etc. as `sr-core bench`
measures them, perceptual loss off in training). Prints a table, writes results.json under
--out. `--first-factor F` compares a plan of x F then the rest (the model trained on x F
pairs) instead of `gradual`; `--second-step-check IMAGES` measures what the second step's model
adds (writes second_step.json). Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sr_core.evaluation.bench import DEFAULT_CROP, load_images, measure, perceptual_metric, save_records
from sr_core.config import preset
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import progressive_plan, target_size, upscale
from sr_core.evaluation.protocols import make_lr, quantize8
from sr_core.method.train import train


def _trained(rgb: np.ndarray, step_factor: float | None = None):
    cfg = preset("default", input_size=(rgb.shape[1], rgb.shape[0]))
    if step_factor:
        cfg.data.step_factor = (step_factor, step_factor)  # scale-aware pairs for that first step
    return train(rgb, cfg, out_dir=None, progress=False, perceptual=None), cfg


def run(lr: np.ndarray, scale: int, gradual: bool, first: float | None = None) -> np.ndarray:
    """`default` (gradual False, first None), `gradual`, or a two-step plan whose first step is
    x`first` (and the second whatever remains), the model trained for that first step."""
    rgb = np.ascontiguousarray(lr, np.float32)
    result, cfg = _trained(rgb, first)
    size = (rgb.shape[1], rgb.shape[0])
    factors = [first] if first else None
    plan = progressive_plan(size, target_size(size, scale=scale), factors_w=factors, factors_h=factors,
                            max_step=cfg.infer.max_step_factor, final_pass=cfg.infer.final_pass)
    current = rgb
    for i, step in enumerate(plan):
        if gradual and i > 0:
            result, cfg = _trained(current)
        current = upscale(result.sampling_model(), current, [step], ResShiftDiffusion(cfg.diffusion), cfg.infer,
                          seed=cfg.seed, progress=False).image
    return current.astype(np.float64)


def second_step_check(name: str, protocol: str, scale: int) -> dict:
    """PSNR-Y of an x4's second x2 step run by the trained model, by a model with random weights,
    and replaced by plain bicubic of the first step's output: how much that step's model adds."""
    from sr_core.method.infer import bicubic_upscale
    from sr_core.method.train import build_model

    hr = dict(load_images(None, DEFAULT_CROP, only=[name]))[name]
    case = make_lr(hr, scale, protocol, name=name)
    rgb = np.ascontiguousarray(case.lr, np.float32)
    result, cfg = _trained(rgb)
    size = (rgb.shape[1], rgb.shape[0])
    plan = progressive_plan(size, target_size(size, scale=scale), max_step=cfg.infer.max_step_factor,
                            final_pass=cfg.infer.final_pass)
    d = ResShiftDiffusion(cfg.diffusion)
    mid = upscale(result.sampling_model(), rgb, plan[:1], d, cfg.infer, seed=cfg.seed, progress=False).image
    rest = lambda model: upscale(model, mid, plan[1:], d, cfg.infer, seed=cfg.seed, progress=False).image  # noqa: E731
    outs = {"trained model": rest(result.sampling_model()), "random weights": rest(build_model(cfg).eval()),
            "bicubic of the first step's output": bicubic_upscale(mid, plan[-1].size)}
    perceptual = perceptual_metric()
    return {k: measure(quantize8(v.astype(np.float64)), case.hr, scale, perceptual) for k, v in outs.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="astronaut,chelsea,coffee,rocket")
    p.add_argument("--protocols", default="bicubic,realistic")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="outputs/bench/gradual")
    p.add_argument("--first-factor", type=float, help="instead of gradual: a two-step plan whose first step is "
                   "this factor, the model trained for it")
    p.add_argument("--second-step-check", metavar="IMAGES",
                   help="instead: how much the second step's model adds, on these images (comma-separated)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.second_step_check:
        rows = []
        for name in args.second_step_check.split(","):
            for protocol in args.protocols.split(","):
                for k, v in second_step_check(name, protocol, args.scale).items():
                    rows.append({"image": name, "protocol": protocol, "scale": args.scale, "second_step": k, **v})
                    print(f"{name} {protocol} x{args.scale}, second step by {k}: PSNR-Y {v['psnr_y']:.3f}, "
                          f"perceptual {v['perceptual'] if v['perceptual'] is None else round(v['perceptual'], 4)}, "
                          f"NIQE {v['niqe'] if v['niqe'] is None else round(v['niqe'], 2)}", flush=True)
        save_records(rows, args.out, "second_step.json")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    records = json.loads(path.read_text()) if path.exists() else []
    done = {(r["image"], r["protocol"], r["method"]) for r in records}
    perceptual = perceptual_metric()
    methods = ("default", f"first x{args.first_factor:g}" if args.first_factor else "gradual")
    for name, hr in load_images(None, DEFAULT_CROP, only=args.images.split(",")):
        for protocol in args.protocols.split(","):
            case = make_lr(hr, args.scale, protocol, name=name)
            for method in methods:
                if (name, protocol, method) in done:
                    continue
                t0 = time.perf_counter()
                sr = quantize8(run(case.lr, args.scale, method == "gradual", args.first_factor if method != "default" else None))
                rec = {"image": name, "protocol": protocol, "scale": args.scale, "method": method,
                       **measure(sr, case.hr, args.scale, perceptual), "seconds": time.perf_counter() - t0}
                records.append(rec)
                path.write_text(json.dumps(records, indent=1))
                print(f"{name:<10} {protocol:<9} x{args.scale} {method:<8} PSNR-Y {rec['psnr_y']:.2f}  "
                      f"{rec['seconds']:.0f} s", flush=True)
    for protocol in args.protocols.split(","):
        rows = {m: [r["psnr_y"] for r in records if r["protocol"] == protocol and r["method"] == m] for m in methods}
        if rows[methods[0]] and len(rows[methods[0]]) == len(rows[methods[1]]):
            a, b = np.mean(rows[methods[0]]), np.mean(rows[methods[1]])
            print(f"{protocol} x{args.scale}: default {a:.2f}, {methods[1]} {b:.2f} ({methods[1]} - default {b - a:+.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
