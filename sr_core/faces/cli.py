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

from sr_core.config import (PRESETS, SIZED_DEFAULT_MIN_PIXELS, Config, apply_overrides, preset, set_field,
                            sized_as_wide)
from sr_core.errors import UserError

DEFAULT_OUT = Path("outputs")
SAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "data" / "chelsea_crop.png"
NOISY_RESIDUAL_BLUR = 1.0  # --noisy: the residual blur measured on the realistic protocol (docs/ablations.md)
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
                           help=argparse.SUPPRESS if name.endswith("kernel_probs") else None)


def build_config(args: argparse.Namespace, input_size: tuple[int, int] | None = None) -> Config:
    """The preset (sized for an input of `input_size`, see `preset`), then --config, then fields."""
    cfg = preset(args.preset, input_size=input_size)
    if getattr(args, "config", None):
        try:
            raw = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read config file {args.config}: {exc}") from None
        apply_overrides(cfg, raw)
    for key, value in vars(args).items():
        if key.startswith("cfg:") and value is not None:
            set_field(cfg, key[4:], value)
    if getattr(args, "seed", None) is not None:
        cfg.seed = int(args.seed)
    cfg.validate()
    return cfg


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


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


# ------------------------------------------------------------------------ commands
def _check_input_output(image: Path, output: Path) -> None:
    if output.suffix.lower() != ".png":  # checked before the work, not after it
        raise UserError(f"output must be a .png file: {output}")
    if output.resolve() == image.resolve():
        raise UserError(f"output {output} is the input image: refusing to overwrite it")


def _save_loss_figure(result, image_path: Path, out_dir: Path) -> None:
    from sr_core.faces.viz import loss_figure, save_figure

    save_figure(loss_figure(result.history, title=f"{image_path.name}: loss"), out_dir / "loss.png")


def do_train(args, cfg: Config, image_path: Path, out_dir: Path, image=None, *,
             figure: bool = True) -> tuple[Any, Any]:
    """Train `cfg` on the image (loaded from `image_path` unless the caller already has it);
    with `figure` False the caller saves the loss figure (`_save_loss_figure`)."""
    from sr_core.runtime.device import resolve_device
    from sr_core.runtime.io import atomic_write_text, load_image
    from sr_core.method.train import train

    image = load_image(image_path) if image is None else image
    device = resolve_device(args.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.json", cfg.to_json())
    sized = ""
    if sized_as_wide(cfg.preset, image.size):
        sized = f" (as wide: {SIZED_DEFAULT_MIN_PIXELS} pixels or more)"
    _log(f"training on {image_path} ({image.size[0]}x{image.size[1]}), preset {cfg.preset}{sized}: "
         f"{cfg.model.filters} filters, {cfg.total_steps()} steps, device {device}", args.quiet)
    result = train(image.rgb, cfg, device=device, out_dir=out_dir,
                   resume=getattr(args, "resume", None), progress=not args.quiet, accel=_accel(args))
    if figure:
        _save_loss_figure(result, image_path, out_dir)
    return image, result


def _kernel(args):
    """The `--kernel` file's array (sr_core.runtime.io.load_kernel), or None without the flag."""
    if not getattr(args, "kernel", None):
        return None
    from sr_core.runtime.io import load_kernel

    return load_kernel(args.kernel)


def do_upscale(args, model, cfg: Config, image, image_path: Path, out_dir: Path, output: Path | None, kernel=None):
    """Upscale `image` and write it; `kernel`: the `--kernel` array, where given."""
    from sr_core.runtime.device import resolve_device
    from sr_core.method.diffusion import ResShiftDiffusion
    from sr_core.method.infer import bicubic_upscale, progressive_plan, resize_alpha, target_size, upscale
    from sr_core.runtime.io import atomic_write_text, check_writable, load_image, save_image

    target = target_size(image.size, scale=args.scale, scale_w=args.scale_w, scale_h=args.scale_h,
                         size=parse_size(args.size) if args.size else None, force=args.force)
    final_pass = cfg.infer.final_pass if args.final_pass is None else args.final_pass
    if getattr(args, "noisy", False) and not cfg.infer.bp_residual_blur:
        cfg.infer.bp_residual_blur = NOISY_RESIDUAL_BLUR
    if getattr(args, "clean", False):
        cfg.infer.bp_residual_blur = cfg.infer.jpeg_residual_blur = 0.0
    if getattr(args, "tile", None) is not None:
        if args.tile < 0:
            raise UserError("--tile must be 0 (never tile) or a tile size in pixels")
        cfg.infer.tile = args.tile
    plan = progressive_plan(image.size, target, factors_w=args.plan or args.plan_w,
                            factors_h=args.plan or args.plan_h,
                            max_step=cfg.infer.max_step_factor, final_pass=final_pass)
    stem = image_path.stem
    output = output or out_dir / f"{stem}_sr_{target[0]}x{target[1]}.png"
    _check_input_output(image_path, output)
    check_writable(output, overwrite=args.overwrite)
    gt = load_image(args.gt) if args.gt else None
    if gt is not None and gt.size != target:
        raise UserError(f"ground truth {args.gt} is {gt.size[0]}x{gt.size[1]} but the output is {target[0]}x{target[1]}")

    device = resolve_device(args.device)
    steps_txt = " -> ".join(f"{s.size[0]}x{s.size[1]}" + (" (refine)" if s.refine_only else "") for s in plan)
    _log(f"upscaling {image.size[0]}x{image.size[1]} -> {target[0]}x{target[1]}: {steps_txt}", args.quiet)
    t0 = time.perf_counter()
    result = upscale(model, image.rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, device=device,
                     seed=cfg.seed, progress=not args.quiet, accel=_accel(args), kernel=kernel)
    seconds = time.perf_counter() - t0
    alpha = resize_alpha(image.alpha, target) if image.alpha is not None else None
    save_image(output, result.image, alpha=alpha, bit_depth=image.bit_depth, gray=image.gray,
               overwrite=args.overwrite)
    if args.save_intermediates:
        for i, (step, arr) in enumerate(zip(plan[:-1], result.intermediates[:-1])):
            save_image(out_dir / "intermediates" / f"{stem}_step{i + 1}_{step.size[0]}x{step.size[1]}.png",
                       arr, bit_depth=image.bit_depth, gray=image.gray, overwrite=True)
    summary: dict[str, Any] = {
        "input": str(image_path), "output": str(output), "input_size": list(image.size),
        "output_size": list(target), "plan": [list(s.size) + ([True] if s.refine_only else []) for s in plan],
        "upscale_seconds": round(seconds, 3), "device": str(device),
    }
    if kernel is not None:
        summary["kernel"] = {"file": str(args.kernel), "size": kernel.shape[0],
                             "iterations": cfg.infer.kernel_iterations}
    if result.jpeg is not None:
        summary["jpeg"] = result.jpeg.describe()
        if result.jpeg.detected:
            summary["back_projection"] = f"coarse only (residual blur {cfg.infer.jpeg_residual_blur:g} px)"
    if gt is not None:
        from sr_core.evaluation.metrics import evaluate

        border = max(1, round(max(target[0] / image.size[0], target[1] / image.size[1])))
        bicubic = bicubic_upscale(image.rgb, target)
        metrics = {"sr_core": evaluate(result.image, gt.rgb, border=border),
                   "bicubic": evaluate(bicubic, gt.rgb, border=border), "border": border}
        atomic_write_text(output.with_name(output.stem + "_metrics.json"), json.dumps(metrics, indent=2))
        summary["metrics"] = metrics
    atomic_write_text(output.with_name(output.stem + "_config.json"), cfg.to_json())
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


def cmd_train(args) -> int:
    from sr_core.runtime.io import load_image

    image_path = Path(args.image)
    image = load_image(image_path)
    cfg = build_config(args, image.size)
    out_dir = Path(args.out) if args.out else unique_dir(DEFAULT_OUT / f"{image_path.stem}-{cfg.preset}")
    _, result = do_train(args, cfg, image_path, out_dir, image)
    print(f"checkpoint  {result.checkpoint}\ntrain       {result.seconds:.1f} s\nloss curve  {out_dir / 'loss.png'}")
    return 0


def cmd_upscale(args) -> int:
    from sr_core.runtime.io import load_image
    from sr_core.method.train import load_model

    image_path = Path(args.image)
    image = load_image(image_path)
    model, cfg = load_model(Path(args.checkpoint), use_ema=args.use_ema)
    if args.seed is not None:
        cfg.seed = int(args.seed)
    out_dir = Path(args.out) if args.out else DEFAULT_OUT / "upscale"
    summary = do_upscale(args, model, cfg, image, image_path, out_dir, Path(args.output) if args.output else None,
                         _kernel(args))
    _print_summary(summary)
    return 0


def cmd_run(args) -> int:
    from sr_core.method.infer import progressive_plan, target_size
    from sr_core.runtime.io import check_writable, load_image

    image_path = Path(args.image) if args.image else SAMPLE_IMAGE
    image = load_image(image_path)
    cfg = build_config(args, image.size)
    out_dir = Path(args.out) if args.out else unique_dir(DEFAULT_OUT / f"{image_path.stem}-{cfg.preset}")
    output = Path(args.output) if args.output else None
    # Validate the request and the output path before an expensive training run.
    target = target_size(image.size, scale=args.scale, scale_w=args.scale_w, scale_h=args.scale_h,
                         size=parse_size(args.size) if args.size else None, force=args.force)
    if cfg.data.pair_mode == "scale_aware" and getattr(args, "cfg:data.step_factor", None) is None:
        # Scale awareness: train on exactly the step factor this run's plan will use.
        plan = progressive_plan(image.size, target, factors_w=args.plan or args.plan_w,
                                factors_h=args.plan or args.plan_h, max_step=cfg.infer.max_step_factor)
        f = max(plan[0].size[0] / image.size[0], plan[0].size[1] / image.size[1])
        cfg.data.step_factor = (f, f)
    if output is not None:
        _check_input_output(image_path, output)
        check_writable(output, overwrite=args.overwrite)
    kernel = _kernel(args)  # a bad kernel file fails now, not after training
    image, result = do_train(args, cfg, image_path, out_dir, image, figure=False)
    from concurrent.futures import ThreadPoolExecutor

    # The loss figure is drawn while the upscale runs: importing matplotlib alone takes about
    # a second, most of the upscale's host time is spent waiting on the device or in torch's
    # own threads. Its errors surface here, after the upscale.
    with ThreadPoolExecutor(1) as pool:
        drawn = pool.submit(_save_loss_figure, result, image_path, out_dir)
        summary = do_upscale(args, result.sampling_model(), cfg, image, image_path, out_dir, output, kernel)
        drawn.result()
    summary.update(train_seconds=result.seconds, checkpoint=str(result.checkpoint))
    from sr_core.runtime.io import atomic_write_text

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
                  f"{cfg.model.filters} filters, {cfg.train.pixel_loss.upper()} at lr {cfg.train.lr:g}, "
                  f"image scales {list(cfg.data.image_scales)}, "
                  f"pairs {'fixed batch' if cfg.data.fixed_batch else 'fresh'} ({cfg.data.pair_mode}), "
                  f"{cfg.diffusion.timesteps} diffusion steps, final pass {cfg.infer.final_pass}")
            if name == "default":
                side = math.isqrt(SIZED_DEFAULT_MIN_PIXELS)
                print(f"{'':<8} (on inputs of {side}x{side} = {SIZED_DEFAULT_MIN_PIXELS} pixels or more: "
                      "as wide, with its network and training)")
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


def _accel(args):
    from sr_core.runtime.accel import Accel

    return Accel(precision=getattr(args, "precision", "auto"), compile=getattr(args, "compile", False),
                 cuda_graph=getattr(args, "cuda_graph", True))


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
                        "-0.24-0.37 dB and a smoother look on clean ones: docs/ablations.md). Without it a "
                        "photo that shows JPEG compression gets the same treatment by itself")
    g.add_argument("--clean", action="store_true",
                   help="the photo is clean: back-project it exactly, even if it looks JPEG-compressed")
    p.add_argument("--kernel", metavar="FILE",
                   help="the blur that made the photo, where known (a square, odd-sided .npy array or grayscale "
                        "image at the output's resolution, normalised to sum 1): the output is matched to the "
                        "photo through it (infer.kernel_iterations, default 2; on blurred, JPEG'd inputs told "
                        "their kernel: x2 level in PSNR and a 22%% lower perceptual distance, x4 +0.23 dB: "
                        "docs/ablations.md)")


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
    p.add_argument("--checkpoint", "-c", required=True, help="a checkpoint written by `sr-core train`")
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
        if getattr(args, "command", None) in ("upscale", "run"):
            if args.scale is None and args.scale_w is None and args.scale_h is None and args.size is None:
                if args.plan or args.plan_w or args.plan_h:
                    args.scale_w = (args.plan or args.plan_w or args.plan_h)[-1]
                    args.scale_h = (args.plan or args.plan_h or args.plan_w)[-1]
                else:
                    raise UserError("give a target: --scale S, --scale-w W --scale-h H, or --size WxH")
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
