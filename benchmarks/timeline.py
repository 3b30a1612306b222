"""Where one whole `sr-core run` job's time goes: start-up, set-up, training steps, upscale, saving.

    python benchmarks/timeline.py PHOTO [--preset default] [--scale 4] [--device cuda]
                                  [--no-cuda-graph] [--compile] [--no-loss-figure]
                                  [--out outputs/bench/timeline] [--tag NAME] [-- JOB OPTIONS]

Runs the CLI's `run` in this process with timers around its phases (imports, device
start, image scales, pair samplers, the perceptual network, CUDA graph capture, each
checkpoint, the upscale, the output file) and a time stamp at every training step, taken
when the step is queued, so nothing extra waits for the GPU. A step's "gap" is the time
from one step's start to the next's: in the steady state that is the step's cost; the first
steps of a stage also carry the first-call costs (kernel loading, cuDNN heuristics).
`--no-loss-figure` skips the loss figure the CLI draws in a thread during the upscale: what
the figure costs the job. Options after `--` go to the job (e.g. `-- --infer.ensemble_steps 0`);
`--tag` names its JSON file apart.
Prints a table and writes timeline.json under --out. Not a test: no limits.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

T_TORCH = time.perf_counter()

import sr_core.faces.cli  # noqa: E402
import sr_core.method.infer  # noqa: E402
import sr_core.method.train  # noqa: E402

T_SR_CORE = time.perf_counter()


class Phases:
    """Seconds spent inside wrapped functions, by name (with a device sync on the way out)."""

    def __init__(self, device: str):
        self.seconds: dict[str, list[float]] = {}
        self.spans: dict[str, tuple[float, float]] = {}  # name -> (start, end) of its first call
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def wrap(self, owner, attr: str, name: str, first_only: bool = False) -> None:
        """Time every call of owner.attr (or only the first: later calls run untouched, unsynced)."""
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            if first_only and name in self.seconds:
                return fn(*args, **kwargs)
            self.sync()
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                end = time.perf_counter()
                self.seconds.setdefault(name, []).append(end - t)
                self.spans.setdefault(name, (t, end))

        setattr(owner, attr, timed)  # a classmethod stays bound to its class inside `fn`


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo")
    p.add_argument("--preset", default="default")
    p.add_argument("--scale", default="4")
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-cuda-graph", action="store_true")
    p.add_argument("--compile", action="store_true", help="pass --compile to the job (compilation counts)")
    p.add_argument("--no-loss-figure", action="store_true", help="do not draw loss.png (its cost to the job)")
    p.add_argument("--out", default="outputs/bench/timeline")
    p.add_argument("--tag", default="", help="appended to the JSON file's name")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:split])
    args.job_options = argv[split + 1:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    phases = Phases(args.device)
    t = time.perf_counter()
    if args.device.startswith("cuda"):
        torch.zeros(1, device=args.device)
        torch.cuda.synchronize()
    device_start = time.perf_counter() - t

    from sr_core.runtime import accel, data, io, perceptual, viz

    phases.wrap(sr_core.method.train, "image_scales", "image scales (Lanczos)")
    phases.wrap(data.PairSampler, "__init__", "pair sampler set-up")
    phases.wrap(perceptual, "load_perceptual", "perceptual network")
    phases.wrap(sr_core.method.train.TrainState, "save", "checkpoint")
    phases.wrap(sr_core.method.train, "publish_as", "checkpoint")
    phases.wrap(accel.GraphedDenoiser, "capture", "CUDA graph capture")
    phases.wrap(sr_core.method.train, "build_model", "model build")
    phases.wrap(sr_core.method.infer, "upscale", "upscale")
    phases.wrap(io, "save_image", "output PNG")
    phases.wrap(viz, "save_figure", "loss figure")
    phases.wrap(sr_core.method.train, "train", "train (all)")
    phases.wrap(sr_core.method.train.TrainState, "fresh", "training state set-up")
    phases.wrap(data.PairSampler, "next_batch", "first batch of pairs", first_only=True)
    phases.wrap(sr_core.method.infer, "run_step", "upscale plan steps")
    phases.wrap(viz, "loss_figure", "loss figure")
    if args.no_loss_figure:
        sr_core.faces.cli._save_loss_figure = lambda *a: None
    t = time.perf_counter()
    importlib.import_module("tqdm.auto")  # imported by the training loop; timed here on its own

    tqdm_import = time.perf_counter() - t
    stamps: list[float] = []
    loss = sr_core.method.train.ResShiftDiffusion.loss

    def stamped(self, *a, **k):
        stamps.append(time.perf_counter())
        return loss(self, *a, **k)

    sr_core.method.train.ResShiftDiffusion.loss = stamped

    cli_args = ["run", args.photo, "--preset", args.preset, "--scale", args.scale, "--device", args.device,
                "--out", str(out / f"run_{args.preset}"), "--overwrite", "-q"]
    if args.no_cuda_graph:
        cli_args.append("--no-cuda-graph")
    if args.compile:
        cli_args.append("--compile")
    cli_args += args.job_options
    t = time.perf_counter()
    rc = sr_core.faces.cli.main(cli_args)
    job = time.perf_counter() - t
    phases.sync()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    med = statistics.median(gaps) if gaps else 0.0
    report = {
        "preset": args.preset, "device": args.device, "cuda_graph": not args.no_cuda_graph,
        "compile": args.compile, "loss_figure": not args.no_loss_figure, "job_options": args.job_options, "rc": rc,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "import_torch_s": T_TORCH - T0, "import_sr_core_s": T_SR_CORE - T_TORCH, "device_start_s": device_start,
        "cli_job_s": job, "process_s": time.perf_counter() - T0,
        "phases_s": {k: sum(v) for k, v in phases.seconds.items()},
        "phase_calls": {k: len(v) for k, v in phases.seconds.items()},
        "phase_each_s": {k: [round(x, 4) for x in v] for k, v in phases.seconds.items()},
        "tqdm_import_s": tqdm_import,
        "train_start_to_first_step_s": stamps[0] - phases.spans["train (all)"][0] if stamps else None,
        "last_step_to_train_end_s": phases.spans["train (all)"][1] - stamps[-1] if stamps else None,
        "sum_of_gaps_s": stamps[-1] - stamps[0] if stamps else None,
        "steps": len(stamps), "step_median_ms": 1000 * med,
        "first_gaps_ms": [round(1000 * g, 1) for g in gaps[:8]],
        "slow_gaps": sum(1 for g in gaps if g > 5 * med),
        "slow_gaps_extra_s": sum(g - med for g in gaps if g > 5 * med),
        "steps_at_median_s": med * len(stamps),
    }
    suffix = ("_nograph" if args.no_cuda_graph else "") + ("_compile" if args.compile else "")
    suffix += ("_nofigure" if args.no_loss_figure else "") + (f"_{args.tag}" if args.tag else "")
    (out / f"timeline_{args.preset}{suffix}.json").write_text(
        json.dumps(report, indent=2))
    print(f"== {args.preset} on {report['device_name']} (CUDA graph {'off' if args.no_cuda_graph else 'on, where CUDA'}"
          f"{', compiled' if args.compile else ''}{', no loss figure' if args.no_loss_figure else ''}"
          f"{', job options ' + ' '.join(args.job_options) if args.job_options else ''})")
    print(f"process {report['process_s']:.2f} s = import torch {report['import_torch_s']:.2f} + sr_core "
          f"{report['import_sr_core_s']:.2f} + device start {device_start:.2f} + job {job:.2f}")
    for k, v in sorted(report["phases_s"].items(), key=lambda kv: -kv[1]):
        print(f"  {k:<24} {v:7.2f} s  ({report['phase_calls'][k]} calls)")
    if stamps:
        print(f"  train: {report['train_start_to_first_step_s']:.2f} s to the first step, "
              f"{report['sum_of_gaps_s']:.2f} s of steps, {report['last_step_to_train_end_s']:.2f} s after the last"
              f" (tqdm import, done before the job: {tqdm_import:.2f} s)")
        print(f"  each call: { {k: v for k, v in report['phase_each_s'].items() if len(v) <= 4} }")
    print(f"  steps: {len(stamps)}, median gap {1000 * med:.2f} ms (x steps = {med * len(stamps):.2f} s); "
          f"first gaps {report['first_gaps_ms']} ms; {report['slow_gaps']} gaps over 5x median add "
          f"{report['slow_gaps_extra_s']:.2f} s")
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["rc"] == 0 else 1)
