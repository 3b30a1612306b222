"""Gradual x4 on whole images: fit on the LR, x2; fit again on that x2 result, x2 again.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/gradual_x4.py \
        --variant plain64 --images bird,woman [--record experiments/records/set5-gradual-x4.json]

ZSSR does x4 this way (retrained at each intermediate scale on the earlier output). Our x4
trains once, on pairs at the x2 step factor, and runs the same network for both x2 steps;
the plain chain (quality's network) fits its input so closely that it does not carry over
to the second step (docs/decisions.md). Each image here: Set5, bicubic protocol, x4;
PSNR-Y / SSIM-Y with 4 pixels shaved, before and after 10 iterations of back-projection of
the x4 result onto the original LR with the protocol's own downscaler.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_search import SETS, VARIANTS  # noqa: E402

from sr_core import Upscaler  # noqa: E402
from sr_core.evaluation.baselines import _back_project  # noqa: E402
from sr_core.evaluation.bench import load_images  # noqa: E402
from sr_core.evaluation.metrics import evaluate  # noqa: E402
from sr_core.evaluation.protocols import make_lr, quantize8  # noqa: E402


def x2(img: np.ndarray, preset: str, fields: dict) -> np.ndarray:
    fields = dict(fields)
    seed = fields.pop("seed", 0)
    up = Upscaler(preset, device="cpu", seed=seed, **fields)
    up.fit(np.ascontiguousarray(img, np.float32), scale=2, progress=False)
    return np.asarray(up.upscale(scale=2, progress=False), np.float64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", required=True, help="a name in quality_search.VARIANTS")
    ap.add_argument("--set", default="set5", choices=sorted(SETS))
    ap.add_argument("--images", default="", help="comma-separated names (default: the whole set)")
    ap.add_argument("--record", default="", help="JSON file the per-image rows are merged into")
    ap.add_argument("--save", default="", help="folder for the x2 and x4 PNGs (VARIANT/NAME_x2.png, NAME_x4.png)")
    args = ap.parse_args(argv)
    preset, fields = VARIANTS[args.variant]
    folder, only = SETS[args.set]
    only = [s for s in args.images.split(",") if s] or only
    rows = []
    for name, hr in load_images(folder, 0, only=only):
        case = make_lr(hr, 4, "bicubic", name=name)
        t0 = time.perf_counter()
        mid = quantize8(x2(case.lr, preset, fields))
        sr = quantize8(x2(mid, preset, fields))
        seconds = time.perf_counter() - t0
        if args.save:
            folder_out = Path(args.save) / args.variant
            folder_out.mkdir(parents=True, exist_ok=True)
            for tag, img in (("x2", mid), ("x4", sr)):
                Image.fromarray(np.round(img * 255).astype(np.uint8)).save(folder_out / f"{name}_{tag}.png")
        bp = quantize8(_back_project(sr, case.lr, case.downscale, 10))
        row = {"image": name, "variant": f"{args.variant}-gradual", "scale": 4, "seconds": round(seconds, 1),
               "psnr_y": round(evaluate(sr, case.hr, border=4)["psnr_y"], 3),
               "psnr_y_bp": round(evaluate(bp, case.hr, border=4)["psnr_y"], 3),
               "ssim_y": round(evaluate(sr, case.hr, border=4)["ssim_y"], 4)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.record:
        path = Path(args.record)
        old = json.loads(path.read_text()) if path.exists() else []
        keep = [r for r in old if (r["image"], r["variant"]) not in {(r2["image"], r2["variant"]) for r2 in rows}]
        path.write_text(json.dumps(keep + rows, indent=1) + "\n")
    print("mean PSNR-Y", round(float(np.mean([r["psnr_y"] for r in rows])), 3),
          "after BP", round(float(np.mean([r["psnr_y_bp"] for r in rows])), 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
