"""The harness ZSSR's fathers and initialisation against the published code's, whole Set5 images.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/zssr_fathers.py --variants affine,affine-init \
        --images bird,woman --scales 2 [--record experiments/records/set5-zssr-fathers.json]

Variants (`ZSSRConfig` fields, everything else the full-strength default):
`pyramid` (the harness's default: 6 fixed downscales picked by area, PyTorch's initialisation),
`affine` (the published code's random warps: as is / 90-degree turns / any rotation, scale,
shear and aspect), `affine-init` (those and the published initialisation, no biases).
Bicubic protocol, PSNR-Y / SSIM-Y with `scale` pixels shaved, one thread; the per-image rows
are merged into --record and a table of means is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SET5 = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "Set5"  # ../shared beside the repo
VARIANTS = {"pyramid": {}, "affine": {"fathers": "affine"}, "affine-init": {"fathers": "affine", "init": "published"}}


def run(variant: str, image: str, scale: int, seed: int) -> dict:
    from sr_core.evaluation import baselines
    from sr_core.evaluation.bench import load_images
    from sr_core.evaluation.metrics import psnr_y, ssim_y
    from sr_core.evaluation.protocols import make_lr

    [(_, hr)] = load_images(SET5, 0, only=[image])
    case = make_lr(hr, scale, "bicubic", name=image)
    info: dict = {}
    t0 = time.perf_counter()
    out = baselines.zssr(case.lr, scale, cfg=baselines.ZSSRConfig(seed=seed, **VARIANTS[variant]), info=info)
    out = np.round(out * 255) / 255  # scored as the bench scores its saved 8-bit images
    return {"variant": variant, "image": image, "scale": scale, "seed": seed,
            "psnr_y": round(psnr_y(out, case.hr, scale), 4), "ssim_y": round(ssim_y(out, case.hr, scale), 5),
            "iters": [s["iters"] for s in info["stages"]], "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    import torch
    from quality_search import merge  # experiments/ is this script's folder, first on sys.path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="affine")
    p.add_argument("--images", default="baby,bird,butterfly,head,woman")
    p.add_argument("--scales", default="2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", default="experiments/records/set5-zssr-fathers.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    record = Path(args.record)
    for variant in args.variants.split(","):
        for scale in map(int, args.scales.split(",")):
            for image in args.images.split(","):
                row = run(variant, image, scale, args.seed)
                print(json.dumps(row), flush=True)
                merge(record, [row], fields=("variant", "image", "scale", "seed"))
    rows = json.loads(record.read_text())
    for variant in VARIANTS:
        for scale in sorted({r["scale"] for r in rows}):
            rs = [r for r in rows if r["variant"] == variant and r["scale"] == scale]
            if rs:
                print(f"{variant} x{scale}: {len(rs)} images, mean PSNR-Y {np.mean([r['psnr_y'] for r in rs]):.3f} "
                      f"({', '.join('%s %.2f' % (r['image'], r['psnr_y']) for r in rs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
