"""Whole-image quality search: named `sr-core bench` variants on Set5 / a fixed BSD68 subset.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/quality_search.py \
        --variants wide,wide-ens --set set5 --scales 4 [--images bird,head] [--threads 1] \
        [--work /tmp/q/search] [--record experiments/records/NAME.json]

Each variant is a preset plus `--preset-override` fields (VARIANTS below). Every (variant,
set, scale) runs `sr-core bench` on whole images (`--crop 0`), bicubic protocol, perceptual
loss off, into its own folder under --work (reruns skip finished cells). The per-image
PSNR-Y / SSIM-Y / seconds are merged into the --record JSON (small: one row per cell) and a
table of means is printed. `--list` prints the variants.

Sets: `set5` = ../shared/benchmarks/Set5 (5 images); `bsd8` = the first 8 names (sorted) of
../shared/benchmarks/BSD68, whole 481 x 321 photos. Never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"  # ../shared beside the repo
SETS = {"set5": (SHARED / "Set5", None),
        "bsd8": (SHARED / "BSD68", ["101085", "101087", "102061", "103070", "105025", "106024", "108005", "108070"])}

# ZSSR's body as the denoiser (the `quality` preset's plain chain) and the clean pairs (no
# noise, no sinc, a near-delta blur: the bicubic protocol's own degradation)
PLAIN64 = {"model.arch": "plain", "model.filters": 64, "model.depth": 8, "model.residual": True, "train.lr": 1e-3}
CLEAN = {"degradation.gaussian_noise_prob": 1.0, "degradation.gaussian_sigma": [0, 0],
         "degradation.kernel_probs": {"iso": 1.0}, "degradation.blur_sigma": [0.05, 0.05]}
# ZSSR's learning-rate shape: 1e-3, then / 10 at half and at three quarters of the steps
# (ZSSR's policy stepped at 840 / 1200 of 1680 on bird), sampled from the raw weights (no EMA)
ZSSR_LR = {"train.lr_schedule": "step", "train.lr_milestones": [600, 860], "infer.use_ema": False}



def seeds(name: str, method: str, fields: dict, ks: tuple[int, ...]) -> dict[str, tuple[str, dict]]:
    """The variant `name` at seeds `ks`: seed 0 as `name`, seed k as `name-seedk`."""
    return {f"{name}{f'-seed{k}' if k else ''}": (method, {**fields, **({"seed": k} if k else {})}) for k in ks}


# name -> (preset / baseline, override fields)
VARIANTS: dict[str, tuple[str, dict]] = {
    "bicubic": ("bicubic", {}),
    "default": ("default", {}),
    "wide": ("wide", {}),
    # the x8 self-ensemble at every reverse step instead of the last 3
    "wide-ens": ("wide", {"infer.self_ensemble": True}),
    # larger crops: 4 x 96 px per step (4.5x the pixels of 2 x 64)
    "wide-c96b4": ("wide", {"data.crop_size": 96, "data.batch_size": 4}),
    # 24 filters
    "wide-f24": ("wide", {"model.filters": 24}),
    # 2x the steps
    "wide-2x": ("wide", {"train.steps_per_scale": [780, 780, 840]}),
    # bigger crops and 2x steps together
    "wide-c96b4-2x": ("wide", {"data.crop_size": 96, "data.batch_size": 4,
                               "train.steps_per_scale": [780, 780, 840]}),
    # 4x the steps (f16)
    "wide-4x": ("wide", {"train.steps_per_scale": [1560, 1560, 1680]}),
    # 32 filters, 2x the steps
    "wide-f32-2x": ("wide", {"model.filters": 32, "train.steps_per_scale": [780, 780, 840]}),
    # clean pairs: no noise, no sinc, a near-delta blur (the bicubic protocol's own degradation)
    "wide-clean": ("wide", CLEAN),
    # no channel LayerNorm in the blocks (SR networks since EDSR drop normalisation)
    "wide-nonorm": ("wide", {"model.norm": False}),
    # a plain regressor: one diffusion step
    "wide-t1": ("wide", {"diffusion.timesteps": 1}),
    # ZSSR's body (8 x 64 3x3 convolutions, ReLU) as the denoiser, residual over y
    "plain64": ("wide", PLAIN64),
    # plain64 trained 3x as long; and on 4 x 96-px crops as well
    "plain64-3x": ("wide", {**PLAIN64, "train.steps_per_scale": [1170, 1170, 1260]}),
    "plain64-3x-c96b4": ("wide", {**PLAIN64, "train.steps_per_scale": [1170, 1170, 1260],
                                  "data.crop_size": 96, "data.batch_size": 4}),
    # plain64 on image scales down to 0.5 (ZSSR's fathers span 1.0 to 0.5)
    "plain64-s05": ("wide", {**PLAIN64, "data.image_scales": [0.5, 0.75, 1.0]}),
    # plain64 at other seeds (to average trainings)
    **seeds("plain64", "wide", PLAIN64, (1, 2, 3)),
    # averaged trainings (model.members): wide x 3; plain64 x 3
    "wide-m3": ("wide", {"model.members": 3}),
    "plain64-m3": ("wide", {**PLAIN64, "model.members": 3}),
    # plain64 on ZSSR's learning-rate shape (ZSSR_LR); and the same on 2 x 96-px crops (2.25x
    # the pixels per step)
    "plain64-zs": ("wide", {**PLAIN64, **ZSSR_LR}),
    "plain64-zs-c96": ("wide", {**PLAIN64, **ZSSR_LR, "data.crop_size": 96}),
    # plain64 on clean pairs (wide-clean's degradation: ZSSR's sons are the protocol's bicubic alone)
    **seeds("plain64-clean", "wide", {**PLAIN64, **CLEAN}, (0, 1)),
    # plain64-clean trained 2x as long
    "plain64-clean-2x": ("wide", {**CLEAN, **PLAIN64, "train.steps_per_scale": [780, 780, 840]}),
    # plain64-clean as a plain regressor (one diffusion step), at two seeds; its loop moved
    # towards ZSSR's one switch at a time: one 128-px crop per step; ZSSR's learning-rate
    # shape without EMA; image scales down to 0.5
    **seeds("plain64-clean-t1", "wide", {**CLEAN, **PLAIN64, "diffusion.timesteps": 1}, (0, 1)),
    **seeds("plain64-clean-t1-c128", "wide", {**CLEAN, **PLAIN64, "diffusion.timesteps": 1, "data.crop_size": 128,
                                              "data.batch_size": 1}, (0, 1)),
    "plain64-clean-t1-zs": ("wide", {**CLEAN, **PLAIN64, "diffusion.timesteps": 1, **ZSSR_LR}),
    "plain64-clean-t1-s05": ("wide", {**CLEAN, **PLAIN64, "diffusion.timesteps": 1, "data.image_scales": [0.5, 0.75, 1.0]}),
    # the diffusion chain (plain64-clean) on one 128-px crop per step, as the regressor above
    **seeds("plain64-clean-c128", "wide", {**CLEAN, **PLAIN64, "data.crop_size": 128, "data.batch_size": 1}, (0, 1)),
    # quality as regressors (one diffusion step, wide's partner too) on clean pairs, its plain
    # members on one 128-px crop per step
    "quality-clean-t1-c128": ("quality", {**CLEAN, "diffusion.timesteps": 1, "data.crop_size": 128,
                                          "data.batch_size": 1}),
    # x2 as ZSSR's gradual configuration does it ("to achieve superior results in the ideal
    # case"), in two steps of x1.41: quality's multi-step configuration (one plain chain and
    # wide's network, trained again on each step's own input)
    "quality-x2-gradual": ("quality", {"model.members": 1, "infer.retrain_steps": True,
                                       "infer.max_step_factor": 1.42}),
    "quality": ("quality", {}),
    # quality (all its networks) on clean pairs
    "quality-clean": ("quality", CLEAN),
}


def run(variant: str, set_name: str, scale: int, *, images: list[str] | None, work: Path, threads: int) -> list[dict]:
    import torch

    from sr_core.evaluation.bench import run_bench

    torch.set_num_threads(threads)
    method, override = VARIANTS[variant]
    data, subset = SETS[set_name]
    only = images or subset
    records = run_bench(data=data, methods=[method], scales=[scale], protocols=["bicubic"],
                        out=work / f"{set_name}-x{scale}-{variant}", crop=0, override=override or None,
                        train_perceptual="off", images=only, progress=False, figure=False)
    return [{"variant": variant, "set": set_name, "scale": scale, "image": r["image"],
             "psnr_y": round(r["psnr_y"], 4), "ssim_y": round(r["ssim_y"], 5), "seconds": round(r["seconds"], 1)}
            for r in records]


def merge(path: Path, rows: list[dict], fields: tuple[str, ...] = ("variant", "set", "scale", "image")) -> list[dict]:
    """Merge `rows` into the JSON record at `path`, a row per value of `fields` (new rows win)."""
    old = json.loads(path.read_text()) if path.exists() else []
    key = lambda r: tuple(r[f] for f in fields)  # noqa: E731
    new = {key(r): r for r in old}
    new.update({key(r): r for r in rows})
    out = sorted(new.values(), key=key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=0) + "\n")
    return out


def table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["scale"], r["variant"]), []).append(r)
    lines = ["| set | scale | variant | n | mean PSNR-Y | per image | mean s |", "|---|---|---|---|---|---|---|"]
    for (s, sc, v), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["image"])
        lines.append(f"| {s} | x{sc} | {v} | {len(rs)} | {np.mean([r['psnr_y'] for r in rs]):.3f} | "
                     f"{' / '.join('%.2f' % r['psnr_y'] for r in rs)} | {np.mean([r['seconds'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="wide")
    p.add_argument("--set", default="set5", choices=sorted(SETS))
    p.add_argument("--scales", default="4")
    p.add_argument("--images", help="comma-separated subset (default: the set's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/q/search")
    p.add_argument("--record", default="experiments/records/quality-search.json")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for k, (m, o) in VARIANTS.items():
            print(f"{k}: {m} {json.dumps(o)}")
        return 0
    images = args.images.split(",") if args.images else None
    for variant in args.variants.split(","):
        for scale in (int(s) for s in args.scales.split(",")):
            rows = run(variant, args.set, scale, images=images, work=Path(args.work), threads=args.threads)
            merged = merge(Path(args.record), rows)
            print(table([r for r in merged if r["set"] == args.set]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
