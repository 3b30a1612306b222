"""Ablation: where the x8 self-ensemble pays — every reverse step, the last few, the first plan step.

    python benchmarks/ensemble.py [--images astronaut,chelsea,coffee,rocket] [--protocols bicubic,realistic]
                                  [--scale 2] [--crop 192] [--seeds 0] [--perceptual] [--threads 1]
                                  [--out outputs/bench/ensemble]

For each case the `default` preset is trained once (as `sr-core bench` trains it: sized by
the LR, perceptual loss off) and its output is made with each variant from the same weights,
so the differences are paired, not seed noise. The ensemble (`sr_core.method.ensemble.SelfEnsemble`)
averages the model over the 8 flips and quarter turns of its input; a variant applies it
at every reverse step, or only at the last K (`infer.ensemble_steps`), of every plan step or
only of the first plan step of an x4. Prints PSNR-Y (and with --perceptual
the perceptual metric and NIQE) and the model calls each variant made; writes results.json
under --out. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from sr_core.evaluation.bench import load_images, measure, perceptual_metric, save_records, train_on_lr
from sr_core.config import preset
from sr_core.method.pairs import to_numpy, to_tensor
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import input_residual_blur, run_step
from sr_core.evaluation.protocols import make_lr, quantize8


def variants(scale: int, timesteps: int) -> list[tuple[str, int, bool]]:
    """(label, last K reverse steps ensembled (0 = none), first plan step only)."""
    out = [("none", 0, False), ("every step", timesteps, False), ("last 3 steps", 3, False)]
    if scale > 2:  # two plan steps: does the second need it?
        return out + [("first plan step, every step", timesteps, True), ("first plan step, last 3 steps", 3, True)]
    return out + [("last step", 1, False)]


def sample(model, rgb, plan, cfg, *, last: int, first_only: bool, seed: int) -> tuple[np.ndarray, int]:
    """`sr_core.method.infer.upscale`'s loop with `infer.ensemble_steps` where the variant puts it;
    also the number of model calls."""
    diffusion = ResShiftDiffusion(cfg.diffusion)
    generator = torch.Generator().manual_seed(seed)
    first_blur, _ = input_residual_blur(rgb, cfg.infer)  # as `upscale` decides it (JPEG'd inputs)
    current, calls = to_tensor(rgb), []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        for i, step in enumerate(plan):
            step_cfg = dataclasses.replace(cfg.infer, ensemble_steps=last if (i == 0 or not first_only) else 0)
            current, _ = run_step(model, diffusion, current, step, step_cfg, generator=generator,
                                  residual_blur=first_blur if i == 0 else 0.0)
    finally:
        hook.remove()
    return to_numpy(current), len(calls)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="astronaut,chelsea,coffee,rocket")
    p.add_argument("--protocols", default="bicubic,realistic")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--crop", type=int, default=192, help="centre crop of each HR image (192: the bench's)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--perceptual", action="store_true", help="also the perceptual metric and NIQE")
    p.add_argument("--out", default="outputs/bench/ensemble")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    metric = perceptual_metric() if args.perceptual else (None, "off")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for protocol in args.protocols.split(","):
            for name, hr in load_images(None, args.crop, only=args.images.split(",")):
                case = make_lr(hr, args.scale, protocol, name=name)
                cfg = preset("default", input_size=(case.lr.shape[1], case.lr.shape[0]))
                cfg.seed = seed
                rgb, model, plan = train_on_lr(case.lr, args.scale, cfg, perceptual=None)
                for label, last, first_only in variants(args.scale, cfg.diffusion.timesteps):
                    t0 = time.perf_counter()
                    sr, calls = sample(model, rgb, plan, cfg, last=last, first_only=first_only, seed=seed)
                    seconds = time.perf_counter() - t0
                    m = measure(quantize8(sr), case.hr, args.scale, metric)
                    row = {"image": name, "protocol": protocol, "scale": args.scale, "crop": args.crop, "seed": seed,
                           "filters": cfg.model.filters, "variant": label, "model_calls": calls,
                           "sample_seconds": seconds, "psnr_y": m["psnr_y"],
                           **({"perceptual": m["perceptual"], "niqe": m["niqe"]} if args.perceptual else {})}
                    rows.append(row)
                    extra = f"  perceptual {m['perceptual']:.4f}  NIQE {m['niqe']:.2f}" if args.perceptual else ""
                    print(f"seed {seed} {protocol:<9} x{args.scale} {name:<10} {label:<28} {m['psnr_y']:.3f}"
                          f"{extra}  ({calls} calls, {seconds:.1f} s)", flush=True)
                save_records(rows, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
