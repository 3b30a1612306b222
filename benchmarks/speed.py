"""Speed and memory: each optimisation against the plain path, side by side in one run.

    python benchmarks/speed.py [--device auto] [--sizes 256,512,1024,2048] [--x4-to 4096]
                               [--grid] [--compile-only] [--threads N] [--out outputs/bench/speed]

Plain path = fp32, untiled, per-image pair synthesis, default memory layout (what the
original does); fast path = this project's defaults (bf16 autocast and channels_last on
CUDA, batched pairs on the device, automatic tiles). Prints a table, writes speed.json and
speed.png (time and peak memory against output pixels) under --out. Not a test: no limits.

Peak memory is measured per measurement: resident set size sampled every 5 ms by a thread
(psutil), and on CUDA the allocator's max_memory_allocated.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sr_core.runtime.accel import Accel
from sr_core.config import preset
from sr_core.method.pairs import PairSampler
from sr_core.runtime.device import resolve_device
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import PlanStep, progressive_plan, run_step, upscale
from sr_core.method.model import DepthwiseConv2d, NextNet
from sr_core.method.train import TrainState, train_stage


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak RSS (MB) and CUDA max allocated (MB) while the `with` block runs."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rss_mb = 0.0
        self.cuda_mb = 0.0

    def __enter__(self):
        try:
            import psutil

            proc = psutil.Process()
            read = lambda: proc.memory_info().rss  # noqa: E731
        except ImportError:  # fall back to the process-lifetime peak
            import resource

            read = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731
        self._stop = threading.Event()
        self._peak = read()

        def poll():
            while not self._stop.wait(0.005):
                self._peak = max(self._peak, read())

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        self._read = read
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self._stop.set()
        self._thread.join()
        self.rss_mb = max(self._peak, self._read()) / 2**20
        if self.device.type == "cuda":
            self.cuda_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        return False


def one_line(exc: Exception) -> str:
    """An exception as one short line, for the report (a missing compiler is a finding)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def timed(fn, device: torch.device, repeat: int = 1) -> tuple[float, PeakMemory]:
    """Seconds per call (after everything queued has finished) and the peak memory."""
    sync(device)
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        sync(device)
        seconds = (time.perf_counter() - t0) / repeat
    return seconds, mem


# ---------------------------------------------------------------------------- training
def training_speed(name: str, photo: np.ndarray, device, accel: Accel, synthesis: str, steps: int,
                   input_size: tuple[int, int] | None = None) -> dict:
    """Steps/s of one stage of preset `name` (sized for `input_size`) after a short warm-up
    (perceptual loss off)."""
    cfg = preset(name, input_size=input_size)
    cfg.data.synthesis = synthesis
    cfg.train.perceptual_weight = 0.0
    cfg.train.steps_per_scale = (steps + 5,)
    state = TrainState.fresh(cfg, "bench", device)
    sampler = PairSampler(photo, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0), device=device,
                          chunk=accel.pairs_per_call(device))
    diffusion = ResShiftDiffusion(cfg.diffusion)
    run = lambda n: train_stage(state, sampler, diffusion, n, progress=False, accel=accel)  # noqa: E731
    warm_s, _ = timed(lambda: run(5), device)  # first calls: allocator, cuDNN autotune, compilation
    seconds, mem = timed(lambda: run(steps + 5), device)
    return {"steps_per_s": steps / seconds, "warmup_s": warm_s, "batch": cfg.data.batch_size,
            "crop": cfg.data.crop_size or photo.shape[0], "peak_rss_mb": mem.rss_mb, "cuda_peak_mb": mem.cuda_mb}


def pair_speed(photo: np.ndarray, device, synthesis: str, jpeg_prob: float = 0.0, repeat: int = 20) -> float:
    """Milliseconds per batch of default-preset pairs."""
    cfg = preset("default")
    cfg.data.synthesis = synthesis
    cfg.degradation.jpeg_prob = jpeg_prob
    sampler = PairSampler(photo, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0), device=device)
    sampler.draw()
    return 1000 * timed(sampler.draw, device, repeat=repeat)[0]


# --------------------------------------------------------------------------- inference
def x2_step(model, device, side: int, accel: Accel, tile: int) -> dict:
    """One x2 plan step (15 diffusion steps, back-projection) to side x side."""
    return timed_step(accel.prepare(model, device), device, side, accel, tile)[0]


def timed_step(prepared, device, side: int, accel: Accel, tile: int,
               warm: bool | None = None) -> tuple[dict, torch.Tensor]:
    """Time one x2 step of an already prepared (moved, maybe compiled) model, after a warm-up
    call (by default where it fits: first calls load kernels and tune convolutions for the
    new shape); the figures and the step's output (for comparing variants)."""
    cfg = preset("default")
    cfg.infer.tile = tile
    diffusion = ResShiftDiffusion(cfg.diffusion)
    lr = torch.rand(1, 3, side // 2, side // 2, device=device, generator=torch.Generator(device).manual_seed(1))
    out: list[torch.Tensor] = []
    step = lambda: out.append(run_step(prepared, diffusion, lr, PlanStep((side, side)), cfg.infer,  # noqa: E731
                                       generator=torch.Generator().manual_seed(0), accel=accel)[0])
    first_s = None
    if warm if warm is not None else side <= (4096 if device.type == "cuda" else 512):
        first_s = timed(step, device)[0]
    seconds, mem = timed(step, device)
    return ({"output_side": side, "seconds": seconds, "mpix_per_s": side * side / 1e6 / seconds,
             "first_call_s": first_s, "peak_rss_mb": mem.rss_mb, "cuda_peak_mb": mem.cuda_mb}, out[-1])


def inference_grid(device, side: int) -> list[dict]:
    """One x2 step to side^2, untiled, with the 8- and 16-filter denoisers, for each precision x
    memory layout (cuDNN autotuning made no difference on an H100: docs/performance.md)."""
    rows = []
    for size in (None, (side, side)):  # 8 filters (a small photo), 16 (a photo of 96 x 96 or more)
        base = NextNet(preset("default", input_size=size).model).to(device).eval()
        for precision in ("fp32", "bf16"):
            for channels_last in (False, True):
                accel = Accel(precision=precision, channels_last=channels_last)
                # A fresh copy: `prepare` turns a model's weights NHWC in place, and NHWC
                # weights would make cuDNN run the NCHW variants in NHWC too.
                r = x2_step(copy.deepcopy(base), device, side, accel, tile=0)
                rows.append({"filters": base.cfg.filters, "precision": precision, "channels_last": channels_last, **r})
    return rows


def compile_grid(device, side: int) -> list[dict]:
    """One x2 step to side^2 with the 8- and 16-filter denoisers on the fast path, eager and
    under torch.compile with automatic (static first) and fully dynamic shapes: the first
    call (compilation included), the warm time, and the output's distance from eager's."""
    rows = []
    for size in (None, (side, side)):
        base = NextNet(preset("default", input_size=size).model).to(device).eval()
        fast, plain = Accel(), Accel.plain()
        r_plain, _ = timed_step(plain.prepare(copy.deepcopy(base), device), device, side, plain, 0, warm=True)
        rows.append({"filters": base.cfg.filters, "compile": "plain", **r_plain})
        eager, ref = timed_step(fast.prepare(copy.deepcopy(base), device), device, side, fast, 0, warm=True)
        rows.append({"filters": base.cfg.filters, "compile": "eager", **eager,
                     "speedup_vs_plain": r_plain["seconds"] / eager["seconds"]})
        for dynamic in (None, True):
            try:
                prepared = torch.compile(fast.prepare(copy.deepcopy(base), device), dynamic=dynamic)
                r, out = timed_step(prepared, device, side, fast, 0, warm=True)
            except Exception as exc:  # a missing compiler toolchain is a finding, not a crash
                rows.append({"filters": base.cfg.filters, "compile": f"dynamic={dynamic}",
                             "error": one_line(exc)})
                continue
            mse = float((out - ref).pow(2).mean())
            rows.append({"filters": base.cfg.filters, "compile": f"dynamic={dynamic}", **r,
                         "speedup_vs_eager": eager["seconds"] / r["seconds"],
                         "speedup_vs_plain": r_plain["seconds"] / r["seconds"],
                         "psnr_vs_eager_db": 10 * np.log10(1 / max(mse, 1e-12))})
        print_compile(rows[-4:], side)
    return rows


def print_compile(rows: list[dict], side: int) -> None:
    for r in rows:
        if "error" in r:
            print(f"x2 step to {side}^2, {r['filters']:>2} filters, {r['compile']}: failed: {r['error']}")
            continue
        extra = (f" (x{r['speedup_vs_eager']:.2f} over eager, output {r['psnr_vs_eager_db']:.1f} dB from eager's)"
                 if "speedup_vs_eager" in r else "")
        if "speedup_vs_plain" in r:
            extra += f", x{r['speedup_vs_plain']:.2f} over plain"
        print(f"x2 step to {side}^2, {r['filters']:>2} filters, {r['compile']:<12}: first call "
              f"{r['first_call_s']:.2f} s, warm {r['seconds']:.3f} s{extra}", flush=True)


def perceptual_grid(device, side: int = 512, batch: int = 8, repeat: int = 10,
                    compiled: bool = False, profile: Path | None = None) -> list[dict]:
    """The paper preset's perceptual loss (offline ST-LPIPS-VGG, forward + backward, bf16 autocast
    on CUDA) on a batch of `batch` x side^2, with the target's features recomputed every call
    or reused (a fixed batch, as the paper preset trains on); with `compiled`, also the feature
    network under torch.compile; with `profile`, a profiler's table of the reused-target step
    (top operators by device time) written there."""
    from sr_core.method import lpips_offline

    try:
        net = lpips_offline.load("vgg", device)
    except FileNotFoundError as exc:
        return [{"error": str(exc)}]
    y = torch.rand(batch, 3, side, side, device=device) * 2 - 1
    x = (y + 0.1 * torch.randn_like(y)).clamp(-1, 1).requires_grad_(True)

    def step(reuse: bool = True):
        if not reuse:
            net.forget_target()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            d = net(x, y).float().mean()
        d.backward()

    rows = []
    for reuse in (False, True):
        step(reuse)
        seconds, mem = timed(lambda: step(reuse), device, repeat)
        rows.append({"side": side, "batch": batch, "reuse_target": reuse, "compiled": False,
                     "ms": 1000 * seconds, "cuda_peak_mb": mem.cuda_mb})
    if profile is not None:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch_profile(activities=activities) as prof:
            for _ in range(3):
                step()
            sync(device)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        profile.write_text(prof.key_averages().table(sort_by=key, row_limit=25))
    if compiled:
        net.forget_target()
        net.normalised_features = torch.compile(net.normalised_features)  # an instance attribute shadows the method
        try:
            first_s = timed(step, device)[0]
            seconds, mem = timed(step, device, repeat)
            rows.append({"side": side, "batch": batch, "reuse_target": True, "compiled": True,
                         "ms": 1000 * seconds, "first_call_s": first_s, "cuda_peak_mb": mem.cuda_mb})
        except Exception as exc:
            rows.append({"side": side, "batch": batch, "compiled": True,
                         "error": one_line(exc)})
        finally:
            del net.normalised_features
    net.forget_target()
    return rows


def x4_to(model, device, side: int, accel: Accel) -> dict:
    """The whole progressive x4 (two x2 steps) from side/4 to side, as `sr-core upscale` runs it."""
    cfg = preset("default")
    rgb = np.random.default_rng(1).random((side // 4, side // 4, 3)).astype(np.float32)
    plan = progressive_plan((side // 4, side // 4), (side, side), max_step=2.0)
    seconds, mem = timed(lambda: upscale(model, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer,
                                         device=device, progress=False, accel=accel), device)
    return {"output_side": side, "seconds": seconds, "peak_rss_mb": mem.rss_mb, "cuda_peak_mb": mem.cuda_mb}


def figure(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["scaling"]
    px = [r["output_side"] ** 2 / 1e6 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(px, [r["seconds"] for r in rows], "o-")
    a.set_xlabel("output megapixels (one x2 step)")
    a.set_ylabel("seconds")
    a.set_title(f"time, {report['device_name']}")
    b.plot(px, [r["peak_rss_mb"] for r in rows], "o-", label="peak RSS")
    if any(r["cuda_peak_mb"] for r in rows):
        b.plot(px, [r["cuda_peak_mb"] for r in rows], "s-", label="CUDA max allocated")
    b.set_xlabel("output megapixels")
    b.set_ylabel("MB")
    b.set_title("peak memory")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def print_training(report: dict) -> None:
    print(f"device {report['device']} ({report['device_name']}), torch {report['torch']}, {report['threads']} threads")
    for preset_name, r in report["train"].items():
        print(f"train {preset_name:<8} plain {r['plain']['steps_per_s']:7.2f} steps/s, fast "
              f"{r['fast']['steps_per_s']:7.2f} steps/s: x{r['speedup']:.2f} "
              f"(batch {r['fast']['batch']}, {r['fast']['crop']} px)")
        if "fast_torch_depthwise" in r:
            print(f"train {preset_name:<8} fast with torch's depthwise backward "
                  f"{r['fast_torch_depthwise']['steps_per_s']:.2f} steps/s (ours: x{r['torch_depthwise_speedup']:.2f})")
        if "fast_no_graph" in r:
            print(f"train {preset_name:<8} fast without the CUDA graph {r['fast_no_graph']['steps_per_s']:.2f} steps/s "
                  f"(the graph: x{r['no_graph_speedup']:.2f}); with one batch of pairs a call "
                  f"{r['fast_no_chunk']['steps_per_s']:.2f} steps/s (8 a call: x{r['no_chunk_speedup']:.2f})")


def print_perceptual(rows: list[dict]) -> None:
    for r in rows:
        print(f"perceptual loss, {r['error']}" if "error" in r else
              f"perceptual loss fwd+bwd, {r['batch']} x {r['side']}^2, target features "
              f"{'reused  ' if r['reuse_target'] else 'computed'}{', compiled' if r['compiled'] else ''}: "
              f"{r['ms']:.1f} ms, CUDA peak {r['cuda_peak_mb']:.0f} MB"
              + (f" (first call {r['first_call_s']:.1f} s)" if "first_call_s" in r else ""))


def compile_only(args, device, report: dict, out: Path) -> dict:
    """--compile-only: torch.compile against the eager fast path and the plain path (an x2 step
    to --compare-side per network width), and the perceptual loss eager and compiled, each
    part saved as soon as it is measured. (Compiled training of the denoiser was measured
    once, at 0.5x on an H100 and 0.7x on the CPU, and is not offered.)"""
    save = lambda: (out / "speed.json").write_text(json.dumps(report, indent=2))  # noqa: E731
    report["compile_grid"] = compile_grid(device, args.compare_side)
    save()
    if not args.skip_perceptual:
        side = 512 if device.type == "cuda" else 128
        report["perceptual_grid"] = perceptual_grid(device, side=side, compiled=True,
                                                    profile=out / "perceptual-profile.txt")
        print_perceptual(report["perceptual_grid"])
        save()
    return report


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", default="256,512,1024,2048", help="output sides of the scaling curve (x2 steps)")
    p.add_argument("--compare-side", type=int, default=512, help="output side of the plain-vs-fast inference ratio")
    p.add_argument("--steps", type=int, default=30, help="training steps timed per preset and path")
    p.add_argument("--x4-to", type=int, default=0, help="also time a whole x4 to this output side (0: skip)")
    p.add_argument("--skip-inference", action="store_true", help="time training only")
    p.add_argument("--compile-only", action="store_true", help="only torch.compile against the eager fast "
                   "path: an x2 step to --compare-side per network width, the perceptual loss")
    p.add_argument("--skip-perceptual", action="store_true", help="with --compile-only: no perceptual loss")
    p.add_argument("--grid", action="store_true", help="also time one x2 step to --compare-side for each "
                   "network width, precision and memory layout, and the perceptual loss's variants")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; on a shared "
                   "machine pass the number of idle cores: oversubscribed OpenMP threads stall)")
    p.add_argument("--out", default="outputs/bench/speed")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}"
    report: dict = {"device": str(device), "device_name": name, "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "train": {}, "pairs": {}, "inference": {},
                    "scaling": [], "x4": None}
    if args.compile_only:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        return compile_only(args, device, report, out)
    photo = np.random.default_rng(0).random((128, 128, 3)).astype(np.float32)
    fast, plain = Accel(), Accel.plain()

    # "default" as a small photo gets it (8 filters) and as a photo of 96 x 96 or more (16 filters).
    for label, preset_name, size in (("paper", "paper", None), ("default", "default", None),
                                     ("default-512", "default", (512, 512))):
        r_plain = training_speed(preset_name, photo, device, plain, "per_sample", args.steps, size)
        r_fast = training_speed(preset_name, photo, device, fast, "batched", args.steps, size)
        row = {"plain": r_plain, "fast": r_fast, "speedup": r_fast["steps_per_s"] / r_plain["steps_per_s"]}
        if device.type == "cpu":  # the share of the hand-written depthwise backward (CPU only)
            DepthwiseConv2d.fast_backward = False
            try:
                r = training_speed(preset_name, photo, device, fast, "batched", args.steps, size)
            finally:
                DepthwiseConv2d.fast_backward = True
            row["fast_torch_depthwise"], row["torch_depthwise_speedup"] = r, r_fast["steps_per_s"] / r["steps_per_s"]
        if device.type == "cuda":  # the shares of the CUDA graph and of pairs made 8 batches a call
            for key, lever in (("no_graph", dict(cuda_graph=False)), ("no_chunk", dict(pair_chunk=1))):
                r = training_speed(preset_name, photo, device, dataclasses.replace(fast, **lever), "batched",
                                   args.steps, size)
                row[f"fast_{key}"], row[f"{key}_speedup"] = r, r_fast["steps_per_s"] / r["steps_per_s"]
        report["train"][label] = row

    if args.skip_inference:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "speed.json").write_text(json.dumps(report, indent=2))
        print_training(report)
        return report
    per, bat = pair_speed(photo, device, "per_sample"), pair_speed(photo, device, "batched")
    report["pairs"] = {"per_sample_ms": per, "batched_ms": bat, "speedup": per / bat,
                       "batched_with_jpeg_ms": pair_speed(photo, device, "batched", jpeg_prob=1.0)}

    model = NextNet(preset("default").model).to(device).eval()
    side = args.compare_side
    r_plain = x2_step(model, device, side, plain, tile=0)
    r_fast = x2_step(model, device, side, fast, tile=-1)
    report["inference"] = {"output_side": side, "plain": r_plain, "fast": r_fast,
                           "speedup": r_plain["seconds"] / r_fast["seconds"]}

    if args.grid:
        report["grid"] = inference_grid(device, side)
        report["perceptual_grid"] = perceptual_grid(device, side=512 if device.type == "cuda" else 128)
    for s in sorted(int(x) for x in args.sizes.split(",")):
        report["scaling"].append(x2_step(model, device, s, fast, tile=-1))
    if args.x4_to:
        report["x4"] = x4_to(model, device, args.x4_to, fast)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(report, indent=2))
    figure(report, out / "speed.png")
    print_training(report)
    q = report["pairs"]
    print(f"pairs (default, batch 16): per-image {q['per_sample_ms']:.2f} ms, batched {q['batched_ms']:.2f} ms "
          f"(x{q['speedup']:.2f}); batched with JPEG on every image {q['batched_with_jpeg_ms']:.2f} ms")
    for r in report.get("grid", []):
        print(f"x2 step to {side}^2, {r['filters']:>2} filters, {r['precision']}, "
              f"{'NHWC' if r['channels_last'] else 'NCHW'}: {r['seconds']:.3f} s, CUDA peak {r['cuda_peak_mb']:.0f} MB")
    print_perceptual(report.get("perceptual_grid", []))
    r = report["inference"]
    print(f"x2 step to {side}^2: plain {r['plain']['seconds']:.3f} s, fast {r['fast']['seconds']:.3f} s: "
          f"x{r['speedup']:.2f}")
    for r in report["scaling"]:
        print(f"x2 to {r['output_side']:>5}^2: {r['seconds']:8.3f} s, {r['mpix_per_s']:7.3f} MP/s, "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB, CUDA peak {r['cuda_peak_mb']:6.0f} MB")
    if report["x4"]:
        r = report["x4"]
        print(f"x4 to {r['output_side']}^2: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"CUDA peak {r['cuda_peak_mb']:.0f} MB")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
