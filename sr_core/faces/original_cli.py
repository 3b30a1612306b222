"""The original project's command line, unchanged: ``python -m sr_core --scope S --mode train ...``.

Same flags and meanings as the seed README's ``main.py``; results go to
``RESULTS/SCOPE/`` (checkpoints, config, loss curve) and SR images to ``RESULTS/SCOPE/SR/``.
It runs the ``paper`` preset unless flags override it. ``--mode train`` trains, then writes
the SR images (by ``--widthl/--heightl``, default 2 4) as the original's ``main.py`` did. Differences, on purpose: output
sizes are rounded, not truncated; the device falls back from CUDA to what is available.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from sr_core.errors import UserError

DEFAULT_FACTORS = (2.0, 4.0)  # --mode train without --widthl/--heightl: the original README's example


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sr_core", description="original-style interface (paper preset)")
    p.add_argument("--scope", required=True, help="name of this experiment (a folder under results)")
    p.add_argument("--mode", required=True, choices=["train", "SR"])
    p.add_argument("--dataset_folder", default="./datasets/")
    p.add_argument("--image_name", required=True)
    p.add_argument("--results_folder", default="./results/")
    p.add_argument("--widthl", type=float, nargs="+", help="width factors of the progressive steps")
    p.add_argument("--heightl", type=float, nargs="+", help="height factors of the progressive steps")
    p.add_argument("--load_milestone", type=int, help="checkpoint k = training step k * save_and_sample_every")
    p.add_argument("--timesteps", type=int)
    p.add_argument("--train_batch_size", type=int)
    p.add_argument("--train_steps_list", type=int, nargs="+", help="steps per image scale")
    p.add_argument("--scale_list", type=float, nargs="+", help="image scales, coarse to fine")
    p.add_argument("--train_lr", type=float)
    p.add_argument("--network_depth", type=int)
    p.add_argument("--network_filters", type=int)
    p.add_argument("--save_and_sample_every", type=int)
    p.add_argument("--device_num", type=int, default=0, help="CUDA device index (falls back if no CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="paper", help="sr_core preset to start from (default: paper)")
    return p


def _overrides(args) -> dict:
    """The original's flags as sr_core config fields (those given)."""
    fields = {
        "diffusion.timesteps": args.timesteps,
        "data.batch_size": args.train_batch_size,
        "train.steps_per_scale": args.train_steps_list,
        "data.image_scales": args.scale_list,
        "train.lr": args.train_lr,
        "model.depth": args.network_depth,
        "model.filters": args.network_filters,
        "train.checkpoint_every": args.save_and_sample_every,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _device(num: int) -> str:
    import torch

    if torch.cuda.is_available():
        if num >= torch.cuda.device_count():
            raise UserError(f"--device_num {num}: only {torch.cuda.device_count()} CUDA device(s) here")
        return f"cuda:{num}"
    return "auto"


def _sr(up, args, image_path: Path, scope_dir: Path) -> None:
    """Upscale by --widthl/--heightl into RESULTS/SCOPE/SR/, intermediates included, as the original did."""
    from sr_core.faces.cli import write_upscale

    widths = args.widthl or args.heightl or list(DEFAULT_FACTORS)
    heights = args.heightl or args.widthl or list(DEFAULT_FACTORS)
    target = {"plan_w": widths, "plan_h": heights}
    summary = write_upscale(up, image_path, scope_dir / "SR", None, target=target, overwrite=True,
                            save_intermediates=True)
    print(f"output      {summary['output']}", file=sys.stdout)


def main(argv: Sequence[str]) -> int:
    from sr_core.upscaler import Upscaler

    args = build_parser().parse_args(list(argv))
    image_path = Path(args.dataset_folder) / args.image_name
    scope_dir = Path(args.results_folder) / args.scope
    if args.mode == "train":
        # The original's main.py trains, then upscales by --widthl/--heightl: so does this.
        up = Upscaler(args.preset, device=_device(args.device_num), seed=args.seed, **_overrides(args))
        widths = args.widthl or args.heightl or list(DEFAULT_FACTORS)
        heights = args.heightl or args.widthl or list(DEFAULT_FACTORS)
        up.fit(image_path, plan_w=widths, plan_h=heights, out_dir=scope_dir)
        result = up.train_result
        print(f"checkpoint  {result.checkpoint}\ntrain       {result.seconds:.1f} s")
        _sr(up, args, image_path, scope_dir)
        return 0

    from sr_core.runtime.checkpoint import load_checkpoint

    ckpt_dir = scope_dir / "checkpoints"
    if args.load_milestone is None:
        ckpt = ckpt_dir / "last.pt"
    else:
        _, saved = load_checkpoint(ckpt_dir / "last.pt")
        ckpt = ckpt_dir / f"step-{args.load_milestone * saved.train.checkpoint_every:06d}.pt"
        if not ckpt.exists():
            have = sorted(p.name for p in ckpt_dir.glob("step-*.pt"))
            raise UserError(f"milestone {args.load_milestone} not found ({ckpt.name}); have: {', '.join(have)}")
    if not (args.widthl or args.heightl):
        raise UserError("--mode SR needs --widthl and/or --heightl (e.g. --widthl 2 4 --heightl 2 4)")
    _sr(Upscaler.load(ckpt, device=_device(args.device_num)), args, image_path, scope_dir)
    return 0
