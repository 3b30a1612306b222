"""One place decides what a run does: preset, input size, target plan and flags -> a `Config`.

Every face (the CLI, the original-style CLI, the benchmark harness, the notebooks) gets its
configuration from `resolve`, through `sr_core.Upscaler`. What was decided, and why, is
recorded in ``config.resolved`` (written with the config as ``config.json``, printed at the
start of a run, and shown by ``--dry-run``), so a saved run says what it actually did.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sr_core.config import MULTI_STEP_PRESETS, PRESETS, SIZED_PRESETS, Config, apply_overrides, preset
from sr_core.errors import UserError

# --noisy: the residual blur measured on the realistic protocol (docs/decisions.md).
NOISY_RESIDUAL_BLUR = 1.0


@dataclass(frozen=True)
class Target:
    """What the user asked for: one of a scale, per-axis scales or a size; optionally a plan
    of intermediate factors (relative to the input, as the original's --widthl/--heightl)."""

    scale: float | None = None
    scale_w: float | None = None
    scale_h: float | None = None
    size: tuple[int, int] | None = None
    plan: Sequence[float] | None = None
    plan_w: Sequence[float] | None = None
    plan_h: Sequence[float] | None = None
    force: bool = False

    def given(self) -> bool:
        return any(v is not None for v in (self.scale, self.scale_w, self.scale_h, self.size)) or bool(
            self.plan or self.plan_w or self.plan_h)

    def output_size(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """The exact output (width, height); a plan alone ends at its last factors."""
        from sr_core.method.infer import target_size

        scale, scale_w, scale_h = self.scale, self.scale_w, self.scale_h
        if scale is None and scale_w is None and scale_h is None and self.size is None:
            widths, heights = self.plan or self.plan_w or self.plan_h, self.plan or self.plan_h or self.plan_w
            if not widths:
                raise UserError("give a target: a scale, per-axis scales (width/height) or an output size")
            scale_w, scale_h = widths[-1], heights[-1]
        return target_size(in_size, scale=scale, scale_w=scale_w, scale_h=scale_h, size=self.size, force=self.force)

    def progressive_plan(self, in_size: tuple[int, int], cfg: Config):
        """The plan steps from `in_size` to the output, as `cfg.infer` says."""
        from sr_core.method.infer import progressive_plan

        return progressive_plan(in_size, self.output_size(in_size), factors_w=self.plan or self.plan_w,
                                factors_h=self.plan or self.plan_h, max_step=cfg.infer.max_step_factor,
                                final_pass=cfg.infer.final_pass)


def _config_file_fields(path: str | Path) -> dict[str, Any]:
    """The dotted fields of a JSON config file (a one-line error if it is not one)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a JSON object")
    return flatten_fields(raw)


def resolve(
    preset_name: str = "default",
    *,
    input_size: tuple[int, int] | None = None,
    target: Target | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    noisy: bool | None = None,
    base: Config | None = None,
    kernel=None,
) -> Config:
    """The configuration of one run, with its decisions recorded in ``config.resolved``.

    In order: the preset (or `base`, a trained model's config), sized by `input_size`; the
    JSON `config_file`; `overrides` (dotted or nested fields); `seed`; `noisy` (True: the
    photo is noisy, back-project its coarse content; False: clean, back-project exactly;
    None: test the pixels for JPEG); `kernel`, the blur that made the photo where the user
    knows it (pairs are made with it, in one step spanning the whole scale); then the step
    factor that scale-aware pairs train on, from the plan to `target` unless an override set it.
    """
    decisions: list[str] = []
    variant = preset_name
    file_fields = _config_file_fields(config_file) if config_file is not None else {}
    given = flatten_fields(overrides) if overrides else {}
    if base is not None:  # a trained model: its decisions stand, new ones are added
        cfg = Config.from_dict(base.to_dict())
        variant = cfg.resolved.get("variant", cfg.preset)
        decisions = [d for d in cfg.resolved.get("decisions", [])]
        if input_size is None and "input_size" in cfg.resolved:
            input_size = tuple(cfg.resolved["input_size"])
    else:
        if preset_name not in PRESETS:
            raise UserError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
        sizing = SIZED_PRESETS.get(preset_name)
        if sizing and input_size is not None:
            large = _pixels(input_size) >= sizing.min_pixels
            variant = sizing.large if large else sizing.small
            cfg = preset(variant)
            cfg.preset = preset_name
            side = math.isqrt(sizing.min_pixels)
            which = f" (the {variant} configuration)" if variant != preset_name else ""
            decisions.append(f"{_network(cfg)}{which}: input "
                             f"{input_size[0]}x{input_size[1]} is {'at least' if large else 'under'} "
                             f"{side}x{side} pixels")
        elif (preset_name in MULTI_STEP_PRESETS and kernel is None and target is not None and target.given()
              and input_size is not None):
            # the plan the run will have: the caller's fields (applied below) may change it
            probe = apply_overrides(preset(preset_name), {**file_fields, **given})
            steps = len(target.progressive_plan(input_size, probe))
            if steps > 1:
                variant = MULTI_STEP_PRESETS[preset_name]
            cfg = preset(variant)
            cfg.preset = preset_name
            which = f" (the {variant} configuration)" if variant != preset_name else ""
            decisions.append(f"{_network(cfg)}{which}: a plan of "
                             f"{steps} step{'s' if steps > 1 else ''}")
        else:
            cfg = preset(preset_name)
    fields: dict[str, Any] = {}
    if config_file is not None:
        fields.update(file_fields)
        apply_overrides(cfg, file_fields)
        decisions.append(f"fields from {Path(config_file).name}")
    if overrides:
        fields.update(given)
        apply_overrides(cfg, given)
        decisions.append("set by the caller: " + ", ".join(f"{k}={_short(v)}" for k, v in given.items()))
    if seed is not None:
        cfg.seed = int(seed)
    if noisy is True:
        if not cfg.infer.bp_residual_blur:
            cfg.infer.bp_residual_blur = NOISY_RESIDUAL_BLUR
        decisions.append(f"noisy photo: back-projects its coarse content (residual blur {cfg.infer.bp_residual_blur:g} px)")
    elif noisy is False:
        cfg.infer.bp_residual_blur = cfg.infer.jpeg_residual_blur = 0.0
        decisions.append("clean photo: back-projects it exactly, without the JPEG test")

    if kernel is not None:
        _told_kernel(cfg, kernel, input_size, target, decisions)
    plan = None
    if target is not None and target.given() and input_size is not None:
        plan = target.progressive_plan(input_size, cfg)
        if cfg.degradation.known_kernel and sum(not s.refine_only for s in plan) > 1:
            raise UserError("a known kernel spans the whole scale: give the target as one step, not a plan of several")
    if cfg.data.pair_mode == "scale_aware" and base is None:
        if "data.step_factor" in fields:
            decisions.append(f"trains for x{cfg.data.step_factor[0]:g} steps: set by the caller")
        elif plan is not None:
            first = plan[0].size
            f = max(first[0] / input_size[0], first[1] / input_size[1])
            cfg.data.step_factor = (f, f)
            decisions.append(f"trains for x{f:.4g} steps: the plan's first step ({input_size[0]}x{input_size[1]} -> "
                             f"{first[0]}x{first[1]})")
        else:
            decisions.append(f"trains for x{cfg.data.step_factor[0]:g} steps: no target given, the preset's step")
    if cfg.infer.retrain_steps and plan is not None:
        trainings = sum(1 for s in plan if not s.refine_only)
        if trainings > 1:
            decisions.append(f"gradual: {trainings - 1} more training{'s' if trainings > 2 else ''}, each on the "
                             "output of the step before, for the step after it")
    cfg.validate()
    resolved: dict[str, Any] = {"variant": variant, "decisions": decisions}
    if input_size is not None:
        resolved["input_size"] = [int(input_size[0]), int(input_size[1])]
    if plan is not None:
        resolved["plan"] = [list(s.size) + (["refine"] if s.refine_only else []) for s in plan]
    cfg.resolved = resolved
    return cfg


def _told_kernel(cfg: Config, kernel, input_size, target: Target | None, decisions: list[str]) -> None:
    """Train on pairs made with the user's blur kernel, in one step: the kernel is the blur
    from the output to the photo, so it belongs to the whole scale (ZSSR's known-kernel mode)."""
    from sr_core.runtime.io import check_kernel

    k = check_kernel(kernel)
    if cfg.data.pair_mode != "scale_aware":
        decisions.append(f"told the blur kernel ({k.shape[0]}x{k.shape[0]}): preset {cfg.preset} trains on "
                         "same-size pairs, so the kernel only matches the output to the photo")
        return
    if target is None or not target.given() or input_size is None:
        raise UserError("a known blur kernel belongs to one scale: give the scale (or output size) with it")
    out = target.output_size(input_size)
    f = max(out[0] / input_size[0], out[1] / input_size[1])
    cfg.infer.max_step_factor = max(cfg.infer.max_step_factor, f)
    cfg.degradation.known_kernel = tuple(float(v) for v in k.ravel())
    decisions.append(f"told the blur kernel ({k.shape[0]}x{k.shape[0]}): trains on pairs made with it, "
                     f"in one x{f:.4g} step (the kernel spans the whole scale)")


def describe(cfg: Config) -> str:
    """A few lines for the start of a run: the preset, what was resolved and why."""
    r = cfg.resolved
    variant = r.get("variant", cfg.preset)
    head = f"preset {cfg.preset}" + (f" (as {variant})" if variant != cfg.preset else "")
    size = r.get("input_size")
    if size:
        head += f", input {size[0]}x{size[1]}"
    if r.get("plan"):
        head += ", plan " + " -> ".join(f"{s[0]}x{s[1]}" + (" refine" if len(s) > 2 else "") for s in r["plan"])
    lines = [head, f"  {_network(cfg)}, seed {cfg.seed}"]
    lines += [f"  - {d}" for d in r.get("decisions", [])]
    return "\n".join(lines)


def _network(cfg: Config) -> str:
    """'16 filters, 1200 steps' or '3 x (...) averaged, 1200 steps each'."""
    each = " each" if cfg.model.members > 1 or cfg.model.partner else ""
    return f"{cfg.model.describe()}, {cfg.total_steps()} steps{each}"


def _pixels(size: tuple[int, int]) -> int:
    return int(size[0]) * int(size[1])


def flatten_fields(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``; dotted keys kept; dict-valued fields
    (degradation.kernel_probs) stay whole."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name.count(".") == 0 and name not in ("resolved",):
            out.update(flatten_fields(value, f"{name}."))
        else:
            out[name] = value
    return out


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
