"""Where a training step's time goes: per-step milliseconds by lever, and the top CUDA ops.

    python benchmarks/gpu_profile.py [--device cuda] [--side 512] [--out outputs/bench/gpu]

For the paper preset (full image, batch 8, perceptual loss) and the default preset (48-px
crops, batch 16) on a `side` x `side` photo: ms per step with the perceptual loss on/off and
fp32/bf16, then a torch.profiler table of a few steps. Writes profile.txt under --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sr_core.runtime.accel import Accel
from sr_core.config import preset
from sr_core.method.pairs import PairSampler
from sr_core.runtime.device import resolve_device
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.perceptual import backend_name, load_perceptual
from sr_core.method.train import TrainState, train_stage


def photo(side: int) -> np.ndarray:
    try:
        from skimage import data

        from sr_core.method.pairs import lanczos_resize

        return lanczos_resize(data.astronaut().astype(np.float32) / 255, (side, side))
    except ImportError:
        return np.random.default_rng(0).random((side, side, 3)).astype(np.float32)


def setup(name: str, rgb: np.ndarray, device, perceptual_on: bool):
    cfg = preset(name)
    cfg.train.steps_per_scale = (10_000,)
    state = TrainState.fresh(cfg, "profile", device)
    sampler = PairSampler(rgb, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0), device=device)
    perceptual = load_perceptual("vgg", device) if perceptual_on and cfg.train.perceptual_weight > 0 else None
    return cfg, state, sampler, ResShiftDiffusion(cfg.diffusion), perceptual


def ms_per_step(name, rgb, device, accel, perceptual_on, steps=20) -> float:
    _, state, sampler, diffusion, perceptual = setup(name, rgb, device, perceptual_on)
    run = lambda n: train_stage(state, sampler, diffusion, n, perceptual=perceptual,  # noqa: E731
                                progress=False, accel=accel)
    run(5)
    torch.cuda.synchronize() if device.type == "cuda" else None
    t0 = time.perf_counter()
    run(5 + steps)
    torch.cuda.synchronize() if device.type == "cuda" else None
    return 1000 * (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--out", default="outputs/bench/gpu")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    rgb = photo(args.side)
    lines = [f"device {device}, photo {args.side}x{args.side}, perceptual backend "
             f"{backend_name('vgg', device) if load_perceptual('vgg', device) else 'none'}"]
    for name in ("paper", "default"):
        for label, accel in (("fp32", Accel.plain()), ("bf16+channels_last", Accel()),
                             ("bf16", Accel(channels_last=False))):
            for perc in ((True, False) if name == "paper" else (False,)):
                ms = ms_per_step(name, rgb, device, accel, perc)
                lines.append(f"{name:<8} {label:<20} perceptual {'on ' if perc else 'off'}: {ms:8.2f} ms/step")
                print(lines[-1], flush=True)

    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name in ("paper", "default"):
        _, state, sampler, diffusion, perceptual = setup(name, rgb, device, True)
        train_stage(state, sampler, diffusion, 5, perceptual=perceptual, progress=False)
        with profile(activities=acts) as prof:
            train_stage(state, sampler, diffusion, 10, perceptual=perceptual, progress=False)
        key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=50)
        lines += [f"\n--- {name}: 5 steps, sorted by {key}", table]
        print(lines[-2], "\n", table, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
