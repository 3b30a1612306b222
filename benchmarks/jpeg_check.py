"""How well the blind JPEG test (sr_core.method.jpeg) separates compressed inputs from clean ones.

    python benchmarks/jpeg_check.py [--data ../shared/benchmarks/Set5] [--out outputs/bench/jpeg_check]

Cases, for every default-set image (192-px centre crops), every image in --data and the
bundled samples in data/: the image itself; its `bicubic` and `realistic` harness LR at x2
and x4 (the realistic one is JPEG'd at quality 80); JPEG round trips at quality 50, 90 and
95; a quality-80 JPEG cropped off its 8-px grid (found on the shifted grid) or resized by 0.5
(no grid left: counted as clean); then synthetic clean images (noise, a gradient, a noisy checkerboard, a flat patch). Prints
each verdict with the three strongest per-coefficient scores, a summary of misses and false
alarms, and writes results.json under --out. Not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sr_core.evaluation.bench import DEFAULT_CROP, load_images, save_records
from sr_core.method.jpeg import jpeg_evidence
from sr_core.evaluation.protocols import imresize, jpeg_roundtrip, make_lr, quantize8


def cases(data: str | None) -> list[tuple[str, np.ndarray, bool]]:
    """(label, image, whether it is a decoded JPEG on its own grid)."""
    images = load_images(None, DEFAULT_CROP)
    for folder in [d for d in (data, str(Path(__file__).resolve().parents[1] / "data")) if d]:
        images += [(f"{name} ({Path(folder).name})", img) for name, img in load_images(folder, 0)]
    out = []
    for name, img in images:
        # Set5's woman.png was itself JPEG-compressed before it became a PNG (the test finds
        # quantiser steps 8/6/6 in it), so the image's own truth is unknown: not scored.
        out.append((f"{name}: the image", img, None))
        crop = img[:DEFAULT_CROP, :DEFAULT_CROP]
        for scale in (2, 4):
            for protocol in ("bicubic", "realistic"):
                out.append((f"{name}: x{scale} {protocol} LR", make_lr(crop, scale, protocol, name=name).lr,
                            protocol == "realistic"))
        for quality in (50, 90, 95):
            out.append((f"{name}: JPEG q{quality}", jpeg_roundtrip(img, quality), True))
        jpeg80 = jpeg_roundtrip(img, 80)
        out.append((f"{name}: JPEG q80, resized 0.5", quantize8(imresize(jpeg80, 0.5)), False))
        out.append((f"{name}: JPEG q80, cropped by (3, 5) px", jpeg80[3:, 5:], True))
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 128)
    checker = ((np.indices((128, 128)) // 4).sum(0) % 2).astype(float)[..., None].repeat(3, -1)
    out += [("8-bit noise", quantize8(rng.random((96, 96, 3))), False),
            ("gradient", np.add.outer(ramp, ramp)[..., None].repeat(3, -1) / 2, False),
            ("noisy checkerboard", np.clip(checker * 0.5 + 0.25 + rng.normal(0, 0.01, checker.shape), 0, 1), False),
            ("flat", np.full((64, 64, 3), 0.3), False)]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="a folder of images to add (e.g. ../shared/benchmarks/Set5)")
    p.add_argument("--out", default="outputs/bench/jpeg_check")
    args = p.parse_args(argv)
    rows = []
    for label, img, truth in cases(args.data):
        e = jpeg_evidence(img)
        top = sorted(e.z.values(), reverse=True)[:3]
        rows.append({"case": label, "jpeg": truth, "detected": e.detected, "top_z": [round(z, 2) for z in top],
                     "steps": list(e.steps.values())[:5], "blocks": e.blocks, "offset": list(e.offset),
                     "size": list(np.shape(img)[:2])})
        mark = {None: " ", True: "J", False: "-"}[truth]
        print(f"{mark} {'JPEG' if e.detected else '    '} {label:<48} z {' '.join(f'{z:5.1f}' for z in top)}"
              f"  steps {rows[-1]['steps']}  {e.blocks} blocks", flush=True)
    scored = [r for r in rows if r["jpeg"] is not None]
    jpeg = [r for r in scored if r["jpeg"]]
    clean = [r for r in scored if not r["jpeg"]]
    misses = [r["case"] for r in jpeg if not r["detected"]]
    alarms = [r["case"] for r in clean if r["detected"]]
    print(f"\nJPEG'd: {len(jpeg) - len(misses)} of {len(jpeg)} detected; missed: {misses or 'none'}")
    print(f"clean: {len(alarms)} of {len(clean)} flagged: {alarms or 'none'}; strongest single-coefficient "
          f"score of a clean case {max(r['top_z'][0] for r in clean if r['top_z']):.1f} (a verdict needs two >= 5)")
    print(f"the images themselves (truth unknown): flagged {[r['case'] for r in rows if r['jpeg'] is None and r['detected']]}")
    save_records(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
