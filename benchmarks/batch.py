"""Photos per hour of ``sr-core batch``: local workers 1 and 2, local Ray with 1 and 2 CPUs, side by side.

    python benchmarks/batch.py [--preset fast] [--photos 4] [--scale 2] [--rounds 1]
                               [--cost-preset default] [--cost-photos 1] [--no-ray]
                               [--out outputs/bench/batch]

Every configuration runs the real command in a fresh Python process on the same folder of
--photos photos (copies of data/*.png, cycled), one after another, for --rounds rounds (so a
change in the machine's load falls on every configuration alike). Measured: the wall time
of the command, start-up (imports, Ray) included, and the span from the first photo's start
to the last photo's end, from the records; photos per hour from both. Then the cost model's
CPU figure: --cost-preset on the first --cost-photos of data/*.png at x--scale, one photo at
a time on one thread. Writes batch.json and batch.md under --out. Not a test: no limits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = sorted((ROOT / "data").glob("*.png"))
CONFIGS = {  # name: extra sr-core batch arguments
    "local, 1 worker (threads = cores)": [],
    "local, 1 worker, 1 thread": ["--threads", "1"],
    "local, 2 workers x 1 thread": ["--workers", "2"],
    "ray (local), 1 CPU": ["--engine", "ray", "--workers", "1"],
    "ray (local), 2 CPUs": ["--engine", "ray", "--workers", "2"],
}


def make_input(folder: Path, n: int, images: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = images[i % len(images)]
        shutil.copyfile(src, folder / f"p{i:02d}_{src.stem}.png")
    return folder


def run_batch(input_dir: Path, out: Path, args: argparse.Namespace, preset: str, extra: list[str]) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "sr_core", "batch", str(input_dir), "--scale", str(args.scale), "--preset", preset,
           "--out", str(out), "-q", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / ".sr-batch" / "records").rglob("*.json"))]
    span = max(r["finished"] for r in records) - min(r["started"] for r in records)
    n = len(records)
    return {"photos": n, "wall_s": round(wall, 2), "span_s": round(span, 2),
            "photo_s_mean": round(sum(r["seconds"] for r in records) / n, 2),
            "train_s_mean": round(sum(r["train_seconds"] for r in records) / n, 2),
            "upscale_s_mean": round(sum(r["upscale_seconds"] for r in records) / n, 2),
            "photos_per_hour": round(n / wall * 3600, 1), "photos_per_hour_steady": round(n / span * 3600, 1),
            "workers": summary["workers"], "threads": summary["threads"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fast", help="preset of the scaling runs (default: %(default)s)")
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--scale", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cost-preset", default="default", help="preset of the per-photo cost figure ('' skips it)")
    ap.add_argument("--cost-photos", type=int, default=1)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "batch")
    args = ap.parse_args(argv)

    work = args.out / "work"
    input_dir = make_input(work / "photos", args.photos, DATA)
    configs = {k: v for k, v in CONFIGS.items() if not (args.no_ray and "ray" in k)}
    runs: dict[str, list[dict]] = {k: [] for k in configs}
    for r in range(args.rounds):
        for name, extra in configs.items():
            res = run_batch(input_dir, work / "out", args, args.preset, extra)
            runs[name].append(res)
            print(f"round {r + 1} {name:<36} wall {res['wall_s']:7.1f} s  span {res['span_s']:7.1f} s  "
                  f"{res['photos_per_hour']:7.1f} photos/h ({res['photos_per_hour_steady']:.1f} steady)", flush=True)
    base = runs[next(iter(configs))]
    rows = []
    for name, res in runs.items():
        mean = lambda key: sum(x[key] for x in res) / len(res)  # noqa: E731
        rows.append({"config": name, "workers": res[0]["workers"], "threads": res[0]["threads"],
                     "wall_s": round(mean("wall_s"), 1), "photo_s_mean": round(mean("photo_s_mean"), 1),
                     "photos_per_hour": round(mean("photos_per_hour"), 1),
                     "photos_per_hour_steady": round(mean("photos_per_hour_steady"), 1),
                     "ratio": round(mean("photos_per_hour") / (sum(x["photos_per_hour"] for x in base) / len(base)), 2),
                     "runs": res})
    cost = None
    if args.cost_preset:
        cost_in = work / "cost-photos"
        if cost_in.exists():
            shutil.rmtree(cost_in)
        make_input(cost_in, args.cost_photos, DATA)
        cost = run_batch(cost_in, work / "cost-out", args, args.cost_preset, ["--threads", "1"])
        cost["preset"] = args.cost_preset
        print(f"cost: {args.cost_preset} x{args.scale:g}, 1 thread: {cost['photo_s_mean']:.1f} s per photo "
              f"(train {cost['train_s_mean']:.1f}, upscale {cost['upscale_s_mean']:.1f}); wall {cost['wall_s']:.1f} s "
              f"for {cost['photos']}", flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = {"preset": args.preset, "photos": args.photos, "scale": args.scale, "rounds": args.rounds,
              "input": [p.name for p in DATA], "cores": os.cpu_count(), "load_after": load,
              "python": platform.python_version(), "machine": platform.platform(), "configs": rows, "cost": cost}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.json").write_text(json.dumps(result, indent=2))
    lines = [f"{args.photos} photos ({', '.join(p.stem for p in DATA)} cycled), preset {args.preset}, x{args.scale:g}, "
             f"{os.cpu_count()} cores, {args.rounds} round(s)", "",
             "| configuration | photos/h (wall) | vs first | photos/h (steady) | s per photo | wall s |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['config']} | {row['photos_per_hour']:.0f} | {row['ratio']:.2f}x | "
                     f"{row['photos_per_hour_steady']:.0f} | {row['photo_s_mean']:.1f} | {row['wall_s']:.1f} |")
    if cost:
        lines += ["", f"Cost figure: preset {cost['preset']}, x{args.scale:g}, one thread: {cost['photo_s_mean']:.1f} s "
                      f"per photo (train {cost['train_s_mean']:.1f} s, upscale {cost['upscale_s_mean']:.1f} s); "
                      f"command wall {cost['wall_s']:.1f} s for {cost['photos']} photo(s)"]
    (args.out / "batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
