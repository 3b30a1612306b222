"""Command line: ``sr-core train | upscale | run | presets``, plus the original's flags.

Config options are generated from the dataclasses in ``sr_core.config`` (``--train.lr``,
``--data.image_scales 0.9 1.0``, ...), so the dataclasses stay the one source of truth.
Every user error ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from sr_core.config import MULTI_STEP_PRESETS, PRESETS, SIZED_PRESETS, Config, preset
from sr_core.errors import UserError
from sr_core.resolve import NOISY_RESIDUAL_BLUR, Target

DEFAULT_OUT = Path("outputs")
SAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "data" / "chelsea_crop.png"
SEED_FLAGS = ("--mode", "--scope", "--image_name", "--dataset_folder")


# ------------------------------------------------------------------ config options
def _config_fields(cfg: Config):
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                yield f"{section.name}.{f.name}", getattr(value, f.name)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="named configuration (default: %(default)s)")
    parser.add_argument("--config", type=Path, help="JSON file of config fields (applied after --preset)")
    group = parser.add_argument_group("config fields (override the preset; see `sr-core presets`)")
    for name, value in _config_fields(preset("paper")):
        nargs = "+" if isinstance(value, tuple) else None
        group.add_argument(f"--{name}", dest=f"cfg:{name}", nargs=nargs, metavar=name.split(".")[1].upper(),
                           help=argparse.SUPPRESS if name.endswith(("kernel_probs", "known_kernel")) else None)


def _field_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags, and what the run flags (--tile, --final-pass) set."""
    fields = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}
    if getattr(args, "tile", None) is not None:
        if args.tile < 0:
            raise UserError("--tile must be 0 (never tile) or a tile size in pixels")
        fields["infer.tile"] = args.tile
    if getattr(args, "final_pass", None) is not None:
        fields["infer.final_pass"] = args.final_pass
    return fields


def _noisy(args: argparse.Namespace) -> bool | None:
    return True if getattr(args, "noisy", False) else (False if getattr(args, "clean", False) else None)


def _upscaler(args: argparse.Namespace):
    """The run's Upscaler, from the preset, --config, the field flags and the run flags."""
    from sr_core.upscaler import Upscaler

    return Upscaler(args.preset, device=args.device, seed=args.seed, config=getattr(args, "config", None),
                    noisy=_noisy(args), precision=args.precision, compile=args.compile,
                    cuda_graph=args.cuda_graph, **_field_overrides(args))


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """The target flags as keyword arguments of Upscaler.fit / upscale."""
    if all(v is None for v in (args.scale, args.scale_w, args.scale_h, args.size, args.plan, args.plan_w, args.plan_h)):
        raise UserError("give a target: --scale S, --scale-w W --scale-h H, or --size WxH")
    return {"scale": args.scale, "scale_w": args.scale_w, "scale_h": args.scale_h,
            "size": parse_size(args.size) if args.size else None, "plan": args.plan, "plan_w": args.plan_w,
            "plan_h": args.plan_h, "force": args.force}


# ------------------------------------------------------------------------ helpers
def unique_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : never reuse a run folder."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise UserError(f"--size must look like 1024x768, got {text!r}") from None
    if min(size) < 1:
        raise UserError(f"--size must be positive, got {text!r}")
    return size


def _float(text: str) -> float:
    """Argparse type: a float, with a one-line error for '3x' and friends."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


# ------------------------------------------------------------------------ commands
def _check_output(image: Path, output: Path, *, overwrite: bool) -> None:
    """Fail before the work, not after it: a PNG path that is not the input and can be written."""
    from sr_core.runtime.io import check_writable

    if output.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file: {output}")
    if output.resolve() == image.resolve():
        raise UserError(f"output {output} is the input image: refusing to overwrite it")
    check_writable(output, overwrite=overwrite)


def save_loss_figure(result, image_path: Path, out_dir: Path) -> None:
    from sr_core.faces.viz import loss_figure, save_figure

    save_figure(loss_figure(result.history, title=f"{image_path.name}: loss"), out_dir / "loss.png")


def write_upscale(up, image_path: Path, out_dir: Path, output: Path | None, *, target: dict[str, Any],
                  overwrite: bool = False, quiet: bool = False, gt: str | None = None,
                  save_intermediates: bool = False, kernel=None, kernel_file: str | None = None) -> dict[str, Any]:
    """Upscale the image with a fitted or loaded Upscaler and write the result (and, where
    asked, its intermediates and metrics against `gt`); returns the run's summary."""
    from sr_core.evaluation.metrics import evaluate
    from sr_core.method.infer import bicubic_upscale
    from sr_core.runtime.io import atomic_write_text, load_image, save_image

    source = up.image if up.image is not None and up.image.path == image_path else load_image(image_path)
    out_size = Target(**target).output_size(source.size)
    output = output or out_dir / f"{image_path.stem}_sr_{out_size[0]}x{out_size[1]}.png"
    _check_output(image_path, output, overwrite=overwrite)
    truth = load_image(gt) if gt else None
    if truth is not None and truth.size != out_size:
        raise UserError(f"ground truth {gt} is {truth.size[0]}x{truth.size[1]} but the output is "
                        f"{out_size[0]}x{out_size[1]}")
    up.upscale(source, progress=not quiet, kernel=kernel, **target)
    report = up.last
    steps_txt = " -> ".join(f"{s.size[0]}x{s.size[1]}" + (" (refine)" if s.refine_only else "") for s in report.plan)
    _log(f"upscaled {source.size[0]}x{source.size[1]} -> {out_size[0]}x{out_size[1]}: {steps_txt}", quiet)
    report.save(output, overwrite=overwrite)
    if save_intermediates:
        for i, (step, arr) in enumerate(zip(report.plan[:-1], report.intermediates[:-1])):
            save_image(out_dir / "intermediates" / f"{image_path.stem}_step{i + 1}_{step.size[0]}x{step.size[1]}.png",
                       arr, bit_depth=source.bit_depth, gray=source.gray, overwrite=True)
    cfg = up.config
    summary: dict[str, Any] = {"input": str(image_path), "output": str(output), **report.summary(),
                               "device": str(up.device)}
    if kernel is not None:
        summary["kernel"] = {"file": str(kernel_file), "size": report.kernel_size,
                             "iterations": cfg.infer.kernel_iterations}
    if report.jpeg is not None and report.jpeg.detected:
        summary["back_projection"] = f"coarse only (residual blur {cfg.infer.jpeg_residual_blur:g} px)"
    if truth is not None:
        border = max(1, round(max(out_size[0] / source.size[0], out_size[1] / source.size[1])))
        metrics = {"sr_core": evaluate(report.image, truth.rgb, border=border),
                   "bicubic": evaluate(bicubic_upscale(source.rgb, out_size), truth.rgb, border=border),
                   "border": border}
        atomic_write_text(output.with_name(output.stem + "_metrics.json"), json.dumps(metrics, indent=2))
        summary["metrics"] = metrics
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    lines = [f"output      {summary['output']}",
             f"size        {summary['input_size'][0]}x{summary['input_size'][1]} -> "
             f"{summary['output_size'][0]}x{summary['output_size'][1]}"]
    if "train_seconds" in summary:
        lines.append(f"train       {summary['train_seconds']:.1f} s ({summary['checkpoint']})")
    lines.append(f"upscale     {summary['upscale_seconds']:.1f} s on {summary['device']}")
    if "kernel" in summary:
        k = summary["kernel"]
        lines.append(f"kernel      {k['file']} ({k['size']}x{k['size']}): matched through it, {k['iterations']} iterations")
    if "back_projection" in summary:
        lines.append(f"input       {summary['jpeg']}: back-projecting its coarse content only (--clean: exactly)")
    if "metrics" in summary:
        m = summary["metrics"]
        for name in ("sr_core", "bicubic"):
            lines.append(f"{name:<11} PSNR-Y {m[name]['psnr_y']:.2f} dB  SSIM-Y {m[name]['ssim_y']:.4f}  "
                         f"colour shift {m[name]['color_shift']:+.2f}")
    print("\n".join(lines))


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def _kernel(args):
    """The `--kernel` file's array (sr_core.runtime.io.load_kernel), or None without the flag."""
    if not getattr(args, "kernel", None):
        return None
    from sr_core.runtime.io import load_kernel

    return load_kernel(args.kernel)


def _dry_run(cfg: Config) -> int:
    print(cfg.to_json())
    return 0


def cmd_train(args) -> int:
    image_path = Path(args.image)
    up = _upscaler(args)
    if args.dry_run:
        return _dry_run(up.resolve(image_path))
    out_dir = Path(args.out) if args.out else unique_dir(DEFAULT_OUT / f"{image_path.stem}-{args.preset}")
    up.fit(image_path, out_dir=out_dir, resume=args.resume, progress=not args.quiet)
    result = up.train_result
    save_loss_figure(result, image_path, out_dir)
    print(f"checkpoint  {result.checkpoint}\ntrain       {result.seconds:.1f} s\nloss curve  {out_dir / 'loss.png'}")
    return 0


def cmd_upscale(args) -> int:
    from sr_core.runtime.io import atomic_write_text, load_image
    from sr_core.upscaler import Upscaler

    image_path = Path(args.image)
    target = _target(args)
    up = Upscaler.load(args.checkpoint, device=args.device, seed=args.seed, noisy=_noisy(args), use_ema=args.use_ema,
                       precision=args.precision, compile=args.compile, **_field_overrides(args))
    if args.dry_run:
        load_image(image_path)  # a bad input fails here too
        return _dry_run(up.config)
    out_dir = Path(args.out) if args.out else unique_dir(DEFAULT_OUT / f"{image_path.stem}-upscale")
    kernel = _kernel(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = write_upscale(up, image_path, out_dir, Path(args.output) if args.output else None, target=target,
                            overwrite=args.overwrite, quiet=args.quiet, gt=args.gt,
                            save_intermediates=args.save_intermediates, kernel=kernel, kernel_file=args.kernel)
    up.write_config(out_dir)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    _print_summary(summary)
    return 0


def cmd_run(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from sr_core.runtime.io import atomic_write_text, load_image

    image_path = Path(args.image) if args.image else SAMPLE_IMAGE
    target = _target(args)
    up = _upscaler(args)
    if args.dry_run:
        return _dry_run(up.resolve(image_path, kernel=_kernel(args), **target))
    image = load_image(image_path)
    out_dir = Path(args.out) if args.out else unique_dir(DEFAULT_OUT / f"{image_path.stem}-{args.preset}")
    output = Path(args.output) if args.output else None
    # Validate the request, the output path and the kernel before an expensive training run.
    Target(**target).output_size(image.size)
    if output is not None:
        _check_output(image_path, output, overwrite=args.overwrite)
    kernel = _kernel(args)
    up.fit(image, kernel=kernel, out_dir=out_dir, progress=not args.quiet, **target)
    result = up.train_result
    # The loss figure is drawn while the upscale runs: importing matplotlib alone takes about
    # a second, most of the upscale's host time is spent waiting on the device or in torch's
    # own threads. Its errors surface here, after the upscale.
    with ThreadPoolExecutor(1) as pool:
        drawn = pool.submit(save_loss_figure, result, image_path, out_dir)
        summary = write_upscale(up, image_path, out_dir, output, target=target, overwrite=args.overwrite,
                                quiet=args.quiet, gt=args.gt, save_intermediates=args.save_intermediates,
                                kernel=kernel, kernel_file=args.kernel)
        drawn.result()
    summary.update(train_seconds=result.seconds, checkpoint=str(result.checkpoint))
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    _print_summary(summary)
    return 0


def cmd_presets(args) -> int:
    if args.name:
        print(preset(args.name).to_json())
    else:
        for name in PRESETS:
            cfg = preset(name)
            crop = f"{cfg.data.crop_size}-px crops" if cfg.data.crop_size else "whole images"
            print(f"{name:<8} {cfg.total_steps():>5} steps of {cfg.data.batch_size} {crop}, "
                  f"{cfg.model.describe()}, {cfg.train.pixel_loss.upper()} at lr {cfg.train.lr:g}, "
                  f"image scales {list(cfg.data.image_scales)}, "
                  f"pairs {'fixed batch' if cfg.data.fixed_batch else 'fresh'} ({cfg.data.pair_mode}), "
                  f"{cfg.diffusion.timesteps} diffusion steps, final pass {cfg.infer.final_pass}")
            sizing = SIZED_PRESETS.get(name)
            if sizing:
                side = math.isqrt(sizing.min_pixels)
                print(f"{'':<8} (trains as {sizing.small} on inputs under {side}x{side} pixels and as "
                      f"{sizing.large} from there up, with its network and training)")
            if name in MULTI_STEP_PRESETS:
                multi = preset(MULTI_STEP_PRESETS[name])
                print(f"{'':<8} (plans of more than one step, e.g. x4 = two x2 steps: {multi.model.describe()}"
                      f"{', trained again for each step' if multi.infer.retrain_steps else ''})")
    return 0


# ------------------------------------------------------------------------- parsers
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (default: a new folder under outputs/)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--seed", type=int, help="random seed (default: the preset's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="model arithmetic: auto = bf16 autocast on CUDA, fp32 elsewhere (default: auto)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model for upscaling: each new image size first compiles "
                        "(5-30 s), then steps run 1.1-2.1x faster; for long sessions, not one job")
    p.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                   help="CUDA: train without capturing the model's steps in a CUDA graph")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved configuration as JSON (what this run would do) and exit")


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target (one of)")
    g.add_argument("--scale", "-s", type=_float, help="one factor for both axes, e.g. 4 or 3.3")
    g.add_argument("--scale-w", type=_float, help="width factor (per-axis scaling)")
    g.add_argument("--scale-h", type=_float, help="height factor (per-axis scaling)")
    g.add_argument("--size", help="exact output size WxH, e.g. 1024x768")
    p.add_argument("--plan", type=_float, nargs="+", help="intermediate factors for both axes, e.g. 2 4")
    p.add_argument("--plan-w", type=_float, nargs="+", help="intermediate width factors")
    p.add_argument("--plan-h", type=_float, nargs="+", help="intermediate height factors")
    p.add_argument("--final-pass", dest="final_pass", action="store_true", default=None,
                   help="one more diffusion pass at the final size (default: the preset's)")
    p.add_argument("--no-final-pass", dest="final_pass", action="store_false")
    p.add_argument("--output", "-o", help="output PNG path (default: inside --out)")
    p.add_argument("--gt", help="ground-truth HR image: writes metrics (ours and bicubic)")
    p.add_argument("--save-intermediates", action="store_true", help="also save each plan step's image")
    p.add_argument("--force", action="store_true", help="allow factors above 64")
    p.add_argument("--tile", type=int, help="run the model in N-pixel tiles (0: never; default: automatic "
                   "from free memory); results match untiled ones")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--noisy", action="store_true",
                   help="the photo is noisy or JPEG-compressed: back-project only its coarse content "
                        f"(infer.bp_residual_blur {NOISY_RESIDUAL_BLUR:g}; measured +0.08-0.13 dB on noisy inputs, "
                        "-0.24-0.37 dB and a smoother look on clean ones: docs/decisions.md). Without it a "
                        "photo that shows JPEG compression gets the same treatment by itself")
    g.add_argument("--clean", action="store_true",
                   help="the photo is clean: back-project it exactly, even if it looks JPEG-compressed")
    p.add_argument("--kernel", metavar="FILE",
                   help="the blur that made the photo, where known (a square, odd-sided .npy array or grayscale "
                        "image at the output's resolution for the whole scale, normalised to sum 1): `run` trains "
                        "on pairs made with it, in one step (as ZSSR does), and the output is matched to the "
                        "photo through it (infer.kernel_iterations, default 2); a loaded model only matches. "
                        "Set5, blurred + noisy + JPEG'd x4 inputs: perceptual distance 0.336 -> 0.258, "
                        "PSNR-Y 27.45 -> 27.17 dB (docs/results.md)")


class _OneLineParser(argparse.ArgumentParser):
    """Argparse errors as one line with exit code 2, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="sr-core",
        description="Zero-shot super-resolution: train a tiny diffusion model on one photo, then upscale it.",
    )
    from sr_core import __version__

    parser.add_argument("--version", action="version", version=f"sr_core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on one image")
    p.add_argument("image", help="the training image")
    p.add_argument("--resume", type=Path, help="continue from a checkpoint of the same config and image")
    _add_common(p)
    add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("upscale", help="upscale an image with a trained checkpoint")
    p.add_argument("image")
    p.add_argument("--checkpoint", "-c", required=True, help="a checkpoint (.pt), or a folder written by `sr-core train` / `run` or Upscaler.save")
    p.add_argument("--use-ema", dest="use_ema", action="store_true", default=None, help="sample with EMA weights")
    p.add_argument("--raw-weights", dest="use_ema", action="store_false", help="sample with the raw weights")
    _add_common(p)
    _add_target(p)
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("run", help="train on an image, then upscale it (no image: the bundled sample)")
    p.add_argument("image", nargs="?", help=f"the image (default: {SAMPLE_IMAGE.name})")
    _add_common(p)
    _add_target(p)
    add_config_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("presets", help="list the presets, or print one as JSON")
    p.add_argument("name", nargs="?", choices=sorted(PRESETS))
    p.set_defaults(func=cmd_presets)

    from sr_core.evaluation.bench import add_parser as add_bench

    add_bench(sub)
    from sr_core.faces.batch import add_parser as add_batch

    add_batch(sub)
    return parser


def _raise_interrupt(signum, frame):  # SIGTERM behaves like Ctrl-C: checkpoint, then stop
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not in the main thread
        previous = None
    try:
        if any(a.split("=")[0] in SEED_FLAGS for a in argv):
            from sr_core.faces.original_cli import main as seed_main

            return seed_main(argv)
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        print(f"sr-core: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sr-core: interrupted; finished files are kept, partial outputs were not written "
              "(resume training with `sr-core train IMAGE --resume OUT/checkpoints/last.pt`)", file=sys.stderr)
        return 130
    except MemoryError:
        print("sr-core: error: out of memory; try a smaller output or --device cpu", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
