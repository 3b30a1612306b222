"""Speed and memory figures: training steps/s, pair synthesis, inference megapixels/s, tiling.

    python benchmarks/speed.py [--device auto] [--sizes 128,256,512,1024] [--out outputs/bench/speed]

Prints a table and writes speed.json and scaling.png under --out. Not a test: no limits.
Peak memory is the process's peak resident set (ru_maxrss) after each measurement, so it
only grows; the sizes run smallest first to keep it meaningful.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sr_core.config import preset
from sr_core.data import PairSampler
from sr_core.device import resolve_device
from sr_core.diffusion import ResShiftDiffusion
from sr_core.infer import PlanStep, run_step
from sr_core.train import train


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat: int = 1) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", default="128,256,512,1024", help="output sides for the scaling curve")
    p.add_argument("--steps", type=int, default=20, help="training steps timed per preset")
    p.add_argument("--out", default="outputs/bench/speed")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    photo = rng.random((128, 128, 3)).astype(np.float32)
    report: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "train": {}, "pairs": {}, "inference": [], "tiling": {}}

    for name in ("paper", "default"):
        cfg = preset(name)
        cfg.data.image_scales, cfg.train.steps_per_scale = (1.0,), (args.steps,)
        cfg.train.perceptual_weight = 0.0
        seconds = timed(lambda: train(photo, cfg, device=device, progress=False), device)
        report["train"][name] = {"steps_per_s": args.steps / seconds, "batch": cfg.data.batch_size,
                                 "crop": cfg.data.crop_size or 128}
        sampler = PairSampler(photo, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0),
                              device=device)
        report["pairs"][name] = {"ms_per_batch": 1000 * timed(sampler.draw, device, repeat=5)}

    cfg = preset("default")
    model = torch.nn.Module()
    from sr_core.model import NextNet

    model = NextNet(cfg.model).to(device).eval()
    diffusion = ResShiftDiffusion(cfg.diffusion)
    for side in [int(s) for s in args.sizes.split(",")]:
        lr = torch.rand(1, 3, side // 2, side // 2, device=device)
        cfg.infer.tile = 0
        sec = timed(lambda: run_step(model, diffusion, lr, PlanStep((side, side)), cfg.infer,
                                     generator=torch.Generator().manual_seed(0)), device)
        report["inference"].append({"output_side": side, "seconds": sec, "mpix_per_s": side * side / 1e6 / sec,
                                    "peak_rss_mb": peak_rss_mb()})

    side = int(args.sizes.split(",")[-1])
    lr = torch.rand(1, 3, side // 2, side // 2, device=device)
    for tile in (0, 256, -1):
        cfg.infer.tile = tile
        report["tiling"][f"tile_{tile}" if tile >= 0 else "tile_auto"] = timed(
            lambda: run_step(model, diffusion, lr, PlanStep((side, side)), cfg.infer,
                             generator=torch.Generator().manual_seed(0)), device)
    report["tiling"]["output_side"] = side
    report["tiling"]["tiled_over_untiled_time"] = report["tiling"]["tile_256"] / report["tiling"]["tile_0"]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(report, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    px = [r["output_side"] ** 2 / 1e6 for r in report["inference"]]
    ax.plot(px, [r["seconds"] for r in report["inference"]], "o-")
    ax.set_xlabel("output megapixels (one x2 step, 15 diffusion steps)")
    ax.set_ylabel("seconds")
    ax.set_title(f"inference time on {device}")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)

    print(f"device {device}, torch {torch.__version__}, {report['threads']} threads")
    for name, r in report["train"].items():
        print(f"train {name:<8} {r['steps_per_s']:.2f} steps/s (batch {r['batch']}, {r['crop']} px); "
              f"pairs {report['pairs'][name]['ms_per_batch']:.1f} ms/batch")
    for r in report["inference"]:
        print(f"x2 to {r['output_side']}^2: {r['seconds']:.2f} s, {r['mpix_per_s']:.3f} MP/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    t = report["tiling"]
    print(f"tiling at {side}^2: untiled {t['tile_0']:.2f} s, 256-px tiles {t['tile_256']:.2f} s "
          f"(ratio {t['tiled_over_untiled_time']:.2f}), automatic {t['tile_auto']:.2f} s")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
