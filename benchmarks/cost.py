"""What one user job costs, start-up included: ``sr-core run IMAGE --scale S`` timed from outside.

    python benchmarks/cost.py [--image data/astronaut_crop.png] [--scale 4] [--preset default]
                              [--threads 2] [--repeat 1] [--device cpu] [--out outputs/bench/cost]
                              [-- MORE sr-core run OPTIONS, e.g. --infer.project_every_step false]

Each repeat runs the CLI in a fresh Python process (imports, training, every upscale step,
writing the PNG) and records the wall time, the run's own train / upscale seconds from its
summary.json, and the child's peak resident memory. Prints a table and writes cost.json
under --out. Not a test: no limits; compare against the issue's budget by reading it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def one_run(args: argparse.Namespace, work: Path, i: int) -> dict:
    out = work / f"run{i}"
    cmd = [sys.executable, "-m", "sr_core", "run", str(args.image), "--scale", str(args.scale),
           "--preset", args.preset, "--device", args.device, "--out", str(out), "--quiet", "--seed", str(i),
           *args.job_args]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sr-core run failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    # ru_maxrss of the children is the largest of any waited child (KiB on Linux); one per run here,
    # and the runs only grow the figure, so it is this run's peak or an earlier larger one.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": round(wall, 2), "train_s": round(summary["train_seconds"], 2),
            "upscale_s": round(summary["upscale_seconds"], 2),
            "other_s": round(wall - summary["train_seconds"] - summary["upscale_seconds"], 2),
            "peak_rss_mb": round(peak_mb, 1), "output_size": summary.get("output_size")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", type=Path, default=Path("data/astronaut_crop.png"))
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--preset", default="default")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("outputs/bench/cost"))
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    args.job_args = argv[split + 1:]
    if not args.image.is_file():
        sys.exit(f"no such image: {args.image}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            runs.append(one_run(args, Path(tmp), i))
            r = runs[-1]
            print(f"run {i}: wall {r['wall_s']:.1f} s = train {r['train_s']:.1f} + upscale {r['upscale_s']:.1f}"
                  f" + start-up/IO {r['other_s']:.1f}; peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    walls = [r["wall_s"] for r in runs]
    report = {
        "job": " ".join([f"sr-core run {args.image} --scale {args.scale:g} --preset {args.preset} --device {args.device}",
                         *args.job_args]),
        "threads": args.threads, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                             "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": runs,
        "wall_s_median": float(np.median(walls)), "wall_s_min": min(walls), "wall_s_max": max(walls),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cost.json").write_text(json.dumps(report, indent=2))
    print(f"{report['job']}, {args.threads} thread(s): median wall {report['wall_s_median']:.1f} s "
          f"over {len(runs)} run(s) -> {args.out / 'cost.json'}")
    return report


if __name__ == "__main__":
    main()
