"""infer.final_projection on whole images: one fit per image, the x4 upscaled with it off and on.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/final_projection.py --preset default \
        --protocols bicubic,realistic [--set set5] [--record experiments/records/NAME.json]

PSNR-Y (4 pixels shaved) and the perceptual distance of the same trained model's x4, without
and with the final back-projection onto the input, on each protocol's LR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_search import SETS  # noqa: E402

from sr_core import Upscaler  # noqa: E402
from sr_core.evaluation.bench import load_images, measure, perceptual_metric  # noqa: E402
from sr_core.evaluation.protocols import make_lr, quantize8  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--protocols", default="bicubic,realistic")
    ap.add_argument("--set", default="set5", choices=sorted(SETS))
    ap.add_argument("--images", default="")
    ap.add_argument("--record", default="")
    args = ap.parse_args(argv)
    folder, only = SETS[args.set]
    only = [s for s in args.images.split(",") if s] or only
    perceptual = perceptual_metric()
    rows = []
    for protocol in args.protocols.split(","):
        for name, hr in load_images(folder, 0, only=only):
            case = make_lr(hr, 4, protocol, name=name)
            up = Upscaler(args.preset, device="cpu", seed=0, **{"infer.final_projection": False})
            up.fit(np.ascontiguousarray(case.lr, np.float32), scale=4, progress=False)
            row = {"image": name, "protocol": protocol, "preset": args.preset}
            for on in (False, True):
                up._config.infer.final_projection = on  # the same trained model, sampled both ways
                sr = quantize8(np.asarray(up.upscale(scale=4, progress=False), np.float64))
                m = measure(sr, case.hr, 4, perceptual)
                row[f"psnr_y_{'on' if on else 'off'}"] = round(m["psnr_y"], 3)
                row[f"perceptual_{'on' if on else 'off'}"] = round(m["perceptual"], 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    for protocol in args.protocols.split(","):
        sel = [r for r in rows if r["protocol"] == protocol]
        print(protocol, {k: round(float(np.mean([r[k] for r in sel])), 4) for k in sel[0] if k.startswith(("psnr", "perc"))})
    if args.record:
        Path(args.record).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
