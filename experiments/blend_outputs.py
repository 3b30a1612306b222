"""What an average of two methods' saved outputs would score: PSNR-Y / SSIM-Y per weight.

    PYTHONPATH=$PWD python experiments/blend_outputs.py --runs outputs/sbs/x2a,outputs/sbs/x2b \
        --a quality --b zssr --protocol bicubic --scale 2 [--weights 0,0.25,0.5,0.75,1] [--record FILE]

Reads `sr-core bench` output folders (their `hr/` and `images/PROTOCOL_xSCALE/` PNGs), forms
``w * A + (1 - w) * B`` per image, quantised to 8 bits as a saved output would be, and scores
it as the bench does (Y of YCbCr, `scale` pixels shaved). No training: it tells whether two
methods err differently enough for an ensemble of them to be worth building.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _read(path: Path) -> np.ndarray:
    from sr_core.runtime.io import load_image

    return load_image(path).rgb.astype(np.float64)


def blend_scores(runs: list[Path], a: str, b: str, protocol: str, scale: int, weights: list[float]) -> list[dict]:
    from sr_core.evaluation.metrics import psnr_y, ssim_y

    rows = []
    for run in runs:
        folder = run / "images" / f"{protocol}_x{scale}"
        for a_path in sorted(folder.glob(f"*_{a}.png")):
            image = a_path.name[: -len(f"_{a}.png")]
            if not (folder / f"{image}_{b}.png").exists():
                continue  # a run cut short: score only images with both outputs
            hr = _read(run / "hr" / f"{image}_{protocol}_x{scale}.png")
            out_a, out_b = _read(a_path), _read(folder / f"{image}_{b}.png")
            for w in weights:
                mix = np.round((w * out_a + (1 - w) * out_b) * 255) / 255
                rows.append({"image": image, "a": a, "b": b, "weight_a": w, "scale": scale, "protocol": protocol,
                             "psnr_y": round(psnr_y(mix, hr, scale), 4), "ssim_y": round(ssim_y(mix, hr, scale), 5)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated bench output folders")
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--protocol", default="bicubic")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    p.add_argument("--record", help="write the rows to this JSON file")
    args = p.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    rows = blend_scores([Path(r) for r in args.runs.split(",")], args.a, args.b, args.protocol, args.scale, weights)
    if not rows:
        print(f"no *_{args.a}.png outputs under {args.runs}", file=sys.stderr)
        return 1
    images = sorted({r["image"] for r in rows})
    print(f"| weight of {args.a} | {' | '.join(images)} | mean PSNR-Y |")
    print("|---" * (len(images) + 2) + "|")
    for w in weights:
        vals = [next(r["psnr_y"] for r in rows if r["image"] == i and r["weight_a"] == w) for i in images]
        print(f"| {w:g} | {' | '.join('%.2f' % v for v in vals)} | {np.mean(vals):.3f} |")
    if args.record:
        Path(args.record).write_text(json.dumps(rows, indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
