"""Quality benchmark: a thin wrapper around ``sr-core bench`` (see docs/benchmarks.md).

    python benchmarks/quality.py                       # the default set, x2 and x4, both protocols
    python benchmarks/quality.py --quick --methods bicubic,ibp,smoke
    python benchmarks/quality.py --set5 /path/to/Set5  # the protocol check against the literature

``--set5 DIR`` prints bicubic PSNR-Y / SSIM-Y on Set5 with the bicubic protocol at x2, x3 and
x4 (reference: 33.66 / 0.9299, 30.39 / 0.8682, 28.42 / 0.8104) and writes nothing.
"""

from __future__ import annotations

import sys


def set5_check(folder: str) -> None:
    from pathlib import Path

    import numpy as np

    from sr_core.evaluation.baselines import bicubic
    from sr_core.runtime.io import load_image
    from sr_core.evaluation.metrics import psnr_y, ssim_y
    from sr_core.evaluation.protocols import make_lr, quantize8

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".bmp"))
    for scale in (2, 3, 4):
        ps, ss = [], []
        for f in files:
            case = make_lr(load_image(f).rgb.astype(np.float64), scale, "bicubic")
            sr = quantize8(bicubic(case.lr, scale))
            ps.append(psnr_y(sr, case.hr, scale))
            ss.append(ssim_y(sr, case.hr, scale))
        print(f"x{scale}: PSNR-Y {np.mean(ps):.3f} dB  SSIM-Y {np.mean(ss):.4f}  ({len(files)} images)")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--set5"]:
        set5_check(argv[1])
        return 0
    from sr_core.faces.cli import main as cli_main

    return cli_main(["bench", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
