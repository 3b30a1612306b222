"""Ablations: one cell on a skimage crop, or a comparison of finished ``sr-core bench`` runs.

    python benchmarks/ablation.py astronaut 2 '{"model.residual": true}'
    python benchmarks/ablation.py --compare seed=outputs/bench/s0,outputs/bench/s1 x8=outputs/bench/ens

The first trains a preset (plus overrides) on a bicubic-downscaled crop, prints PSNR-Y of
bicubic, bicubic + back-projection (IBP), the model and the model + BP, and appends the record
to outputs/bench/ablations.jsonl. ``--compare LABEL=DIR[,DIR...]`` reads each run's
results.json and prints one markdown table: per protocol, scale and method, the mean over
images (then over the runs of a label, e.g. seeds) and, for several runs, the spread
(max - min over runs) of the image-mean PSNR-Y. Not a test: no time limits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data as skd
import torch

from sr_core.evaluation.bench import append_record
from sr_core.config import preset, set_field
from sr_core.method.pairs import to_numpy, to_tensor
from sr_core.method.degradation import resize
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import back_project, bicubic_upscale, progressive_plan, upscale
from sr_core.evaluation.metrics import color_shift, psnr_y
from sr_core.method.train import train

CROPS = {"astronaut": lambda: skd.astronaut()[:256, 128:384], "chelsea": lambda: skd.chelsea()[20:276, 100:356]}


def main(name: str, scale: int, overrides: dict) -> dict:
    hr = CROPS[name]().astype(np.float32) / 255
    size = hr.shape[0] // scale
    lr = np.round(to_numpy(resize(to_tensor(hr), (size, size), "bicubic", antialias=True)) * 255) / 255
    bic = bicubic_upscale(lr, (hr.shape[1], hr.shape[0]))
    ibp = to_numpy(back_project(to_tensor(bic), to_tensor(lr), 10))
    record = {"image": name, "scale": scale, "overrides": overrides,
              "bicubic": psnr_y(bic, hr, scale), "ibp": psnr_y(ibp, hr, scale)}
    cfg = preset(overrides.pop("preset", "default"))
    for key, value in overrides.items():
        set_field(cfg, key, value)
    t0 = time.perf_counter()
    result = train(lr, cfg, progress=False)
    record["train_seconds"] = time.perf_counter() - t0
    plan = progressive_plan((size, size), (hr.shape[1], hr.shape[0]), max_step=cfg.infer.max_step_factor,
                            final_pass=cfg.infer.final_pass)
    for bp in (0, 10):
        cfg.infer.back_projection = bp
        out = upscale(result.sampling_model(), lr, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
        key = "model+bp" if bp else "model"
        record[key], record[key + "_color_shift"] = psnr_y(out.image, hr, scale), color_shift(out.image, hr)
    append_record(record, "outputs/bench/ablations.jsonl")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in record.items()}))
    return record


COLUMNS = (("PSNR-Y", "psnr_y", 2), ("SSIM-Y", "ssim_y", 4), ("perceptual", "perceptual", 4),
           ("NIQE", "niqe", 2), ("colour shift", "color_shift", 2), ("seconds", "seconds", 0))


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def compare(groups: dict[str, list[Path]]) -> str:
    """Markdown table of several bench runs (see the module docstring)."""
    rows = {}  # (protocol, scale, label, method) -> one {metric: image mean} per run
    for label, dirs in groups.items():
        for d in dirs:
            per_cell: dict[tuple, list[dict]] = {}
            for r in json.loads((Path(d) / "results.json").read_text()):
                per_cell.setdefault((r["protocol"], r["scale"], label, r["method"]), []).append(r)
            for key, recs in per_cell.items():
                rows.setdefault(key, []).append({k: _mean(r.get(k) for r in recs) for _, k, _ in COLUMNS})
    head = "| protocol | scale | run | method | runs | " + " | ".join(c[0] for c in COLUMNS) + " | PSNR-Y spread |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for (protocol, scale, label, method), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cells = []
        for _, k, digits in COLUMNS:
            m = _mean(run[k] for run in runs)
            cells.append("-" if m is None else f"{m:.{digits}f}")
        psnrs = [run["psnr_y"] for run in runs]
        spread = f"{max(psnrs) - min(psnrs):.2f}" if len(runs) > 1 else "-"
        lines.append(f"| {protocol} | x{scale} | {label} | {method} | {len(runs)} | " + " | ".join(cells)
                     + f" | {spread} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        pairs = [a.split("=", 1) for a in sys.argv[2:]]
        print(compare({label: [Path(p) for p in paths.split(",")] for label, paths in pairs}))
        sys.exit(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
