"""Progressive arbitrary-scale super-resolution (docs/method.md).

``progressive_plan`` turns what the user asked for into exact intermediate sizes;
``upscale`` resizes a little, runs the reverse diffusion, and repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from sr_core.runtime.accel import Accel, FastDenoiser
from sr_core.config import InferConfig
from sr_core.method.pairs import to_numpy, to_tensor
from sr_core.method.degradation import kernel_downscale, resize
from sr_core.method.diffusion import ResShiftDiffusion, StepFrame
from sr_core.errors import UserError
from sr_core.method.jpeg import JpegEvidence, jpeg_evidence
from sr_core.runtime.tiling import TiledDenoiser, auto_tile, state_on_host

MAX_FACTOR = 64.0


@dataclass(frozen=True)
class PlanStep:
    """Resize to `size` (width, height), then run the reverse diffusion there."""

    size: tuple[int, int]
    refine_only: bool = False  # the final extra pass: no resize, diffusion only


def _check_factor(value: float, what: str, *, force: bool) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise UserError(f"{what} must be finite, got {value!r}")
    if f < 1:
        raise UserError(f"{what} must be >= 1 (this tool only upscales), got {f:g}")
    if f > MAX_FACTOR and not force:
        raise UserError(f"{what} of {f:g} is absurdly large (> {MAX_FACTOR:g}); pass --force to insist")
    return f


def target_size(
    in_size: tuple[int, int],
    *,
    scale: float | None = None,
    scale_w: float | None = None,
    scale_h: float | None = None,
    size: tuple[int, int] | None = None,
    force: bool = False,
) -> tuple[int, int]:
    """The exact output (width, height) for one factor, per-axis factors or a size."""
    w, h = in_size
    given = sum(x is not None for x in (scale, size)) + (scale_w is not None or scale_h is not None)
    if given != 1:
        raise UserError("give exactly one of: a scale, per-axis scales (width/height), or an output size")
    if size is not None:
        tw, th = (int(size[0]), int(size[1]))
        if tw < w or th < h:
            raise UserError(f"output size {tw}x{th} is smaller than the input {w}x{h}; this tool only upscales")
        _check_factor(max(tw / w, th / h), "output size factor", force=force)
    else:
        if scale is not None:
            fw = fh = _check_factor(scale, "scale", force=force)
        else:
            fw = _check_factor(scale_w if scale_w is not None else 1.0, "width scale", force=force)
            fh = _check_factor(scale_h if scale_h is not None else 1.0, "height scale", force=force)
        tw, th = max(1, round(w * fw)), max(1, round(h * fh))
    if (tw, th) == (w, h):
        raise UserError(f"the requested output {tw}x{th} is the input size: nothing to upscale")
    return tw, th


def progressive_plan(
    in_size: tuple[int, int],
    target: tuple[int, int],
    *,
    factors_w: Sequence[float] | None = None,
    factors_h: Sequence[float] | None = None,
    max_step: float = 2.0,
    final_pass: bool = False,
) -> list[PlanStep]:
    """Intermediate sizes from `in_size` to exactly `target`.

    With explicit factors (the seed's ``--widthl/--heightl``, relative to the input) each
    gives one step; otherwise a geometric plan whose steps are at most `max_step`.
    """
    w, h = in_size
    tw, th = target
    sizes: list[tuple[int, int]] = []
    if factors_w or factors_h:
        fws = list(factors_w or factors_h)
        fhs = list(factors_h or factors_w)
        if len(fws) != len(fhs):
            raise UserError("the width and height factor lists must have the same length")
        for fw, fh in zip(fws, fhs):
            fw, fh = _check_factor(fw, "plan factor", force=True), _check_factor(fh, "plan factor", force=True)
            s = (max(1, round(w * fw)), max(1, round(h * fh)))
            if s[0] > tw or s[1] > th:
                raise UserError(f"plan step {s[0]}x{s[1]} overshoots the output {tw}x{th}")
            if (not sizes and s != (w, h)) or (sizes and s != sizes[-1]):
                sizes.append(s)
    else:
        ratio = max(tw / w, th / h)
        n = max(1, math.ceil(math.log(ratio) / math.log(max_step) - 1e-9))
        for i in range(1, n):
            sizes.append((round(w * (tw / w) ** (i / n)), round(h * (th / h) ** (i / n))))
    if not sizes or sizes[-1] != (tw, th):
        sizes.append((tw, th))
    steps = [PlanStep(s) for s in sizes]
    if final_pass:
        steps.append(PlanStep((tw, th), refine_only=True))
    return steps


@dataclass
class UpscaleResult:
    image: np.ndarray  # H x W x 3 float32 in [0, 1]
    intermediates: list[np.ndarray] = field(default_factory=list)  # after each plan step
    frames: list[list[StepFrame]] = field(default_factory=list)  # per step, if kept
    plan: list[PlanStep] = field(default_factory=list)
    jpeg: JpegEvidence | None = None  # the input's JPEG test, where `infer.jpeg_residual_blur` asked for it


@torch.inference_mode()
def run_step(
    model: torch.nn.Module,
    diffusion: ResShiftDiffusion,
    image: torch.Tensor,
    step: PlanStep,
    cfg: InferConfig,
    *,
    generator: torch.Generator,
    keep_frames: bool = False,
    accel: Accel | None = None,
    residual_blur: float = 0.0,
) -> tuple[torch.Tensor, list[StepFrame]]:
    """One plan step on a 1 x 3 x H x W tensor in [0, 1]; `residual_blur` for back-projection
    onto a noisy `image` (`back_project`)."""
    w, h = step.size
    device = image.device
    tile = cfg.tile if cfg.tile >= 0 else auto_tile(device, w * h)
    on_host = state_on_host(device, w * h, tile)
    if on_host:
        image = image.cpu()  # huge images: the whole state on the host, only tiles on the GPU
    denoiser = model
    if isinstance(model, torch.nn.Module):
        call_pixels = min(w * h, tile * tile) if tile > 0 else w * h
        denoiser = TiledDenoiser(FastDenoiser(model, (accel or Accel()).for_batch(call_pixels), device), tile, device)
    if cfg.self_ensemble or cfg.ensemble_steps > 0:
        from sr_core.method.ensemble import SelfEnsemble

        denoiser = SelfEnsemble(denoiser, last_steps=None if cfg.self_ensemble else cfg.ensemble_steps)
    # The x0 guesses are projected only onto an input taken as exact. A noisy or JPEG'd one
    # (a blurred residual) is matched once, at the end: projecting every guess onto it was
    # level on the default set (realistic x2 31.112 against 31.113) and 0.01-0.23 dB worse
    # on each of the five Set5 images (docs/decisions.md). A huge image on a GPU keeps its
    # state in host memory, where projecting at every reverse step would cost more than the
    # model (10 iterations at 1024^2: 0.55 s on one CPU thread): final projection only.
    bp_resampler = cfg.bp_resampler or cfg.resampler
    if cfg.back_projection and cfg.project_every_step and not step.refine_only and not on_host and not residual_blur:
        denoiser = ProjectedDenoiser(denoiser, image, cfg.back_projection, bp_resampler)
    y01 = image if step.refine_only else resize(image, (h, w), cfg.resampler).clamp(0, 1)
    y = y01 * 2 - 1
    frames: list[StepFrame] = []
    x0 = None
    for frame in diffusion.sample_steps(denoiser, y, generator=generator, clamp=cfg.clamp,
                                        stochastic=cfg.stochastic):
        x0 = frame.x0_pred
        if keep_frames:
            frames.append(StepFrame(frame.t, frame.x_t.cpu(), frame.x0_pred.cpu()))
    out = ((x0 + 1) / 2).clamp(0, 1)
    if cfg.back_projection and not step.refine_only:
        out = back_project(out, image, cfg.back_projection, resampler=bp_resampler, residual_blur=residual_blur,
                           in_place=True)
    return out.to(device), frames


class ProjectedDenoiser:
    """The model's x0 guess, back-projected onto the step's input before the chain uses it.

    Data consistency inside the reverse chain (the range-null-space idea of DDNM): every
    state the model sees is then built from LR-consistent guesses, as in training, where
    x_t is built from the true image.
    """

    def __init__(self, denoiser, lr: torch.Tensor, iterations: int, resampler: str):
        self.denoiser, self.lr, self.iterations, self.resampler = denoiser, lr, iterations, resampler

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = self.denoiser(x_t, y, t)
        lr = self.lr.to(device=x0.device, dtype=x0.dtype)
        x01 = x0.add(1).mul_(0.5).clamp_(0, 1)
        return back_project(x01, lr, self.iterations, resampler=self.resampler, in_place=True).mul_(2).sub_(1)


def back_project(hr: torch.Tensor, lr: torch.Tensor, iterations: int, *, resampler: str = "bicubic",
                 residual_blur: float = 0.0, in_place: bool = False) -> torch.Tensor:
    """Iterative back-projection: nudge `hr` until, downscaled, it matches `lr`.

    Downscaling is antialiased bicubic (how LR images are usually made); the residual is
    brought back up with `resampler` (a `resize` mode). `residual_blur` > 0 low-passes the residual
    first (a Gaussian of that sigma in LR pixels): `hr` then matches `lr`'s coarse content
    but not its pixel-level noise. `in_place` updates `hr` itself (a caller's own temporary)
    instead of a copy.
    """
    h, w = lr.shape[-2:]
    low_pass = None
    if residual_blur > 0:
        from sr_core.method.degradation import filter2d, gaussian_kernel

        blur = gaussian_kernel(2 * math.ceil(3 * residual_blur) + 1, residual_blur).to(lr)
        low_pass = lambda r: filter2d(r, blur)  # noqa: E731
    return _project(hr, lr, iterations, lambda x: resize(x, (h, w), "bicubic", antialias=True),
                    resampler, in_place, low_pass)


def kernel_back_project(hr: torch.Tensor, lr: torch.Tensor, kernel: torch.Tensor, iterations: int, *,
                        resampler: str = "bicubic", in_place: bool = False) -> torch.Tensor:
    """Back-projection through a known degradation: nudge `hr` until `kernel_downscale` of it
    matches `lr`; the residual is brought up with `resampler`.

    Unlike `back_project`, a blur kernel makes this a deblurring step, which amplifies the
    input's noise as it goes: a few iterations (2 by default, `infer.kernel_iterations`)
    bring back much of the detail before the noise grows.
    """
    size = tuple(lr.shape[-2:])
    return _project(hr, lr, iterations, lambda x: kernel_downscale(x, kernel, size), resampler, in_place)


def _project(hr, lr, iterations: int, down, resampler: str, in_place: bool, low_pass=None) -> torch.Tensor:
    """`iterations` of hr += up(low_pass(lr - down(hr))), clamped to [0, 1]."""
    H, W = hr.shape[-2:]
    if iterations > 0 and not in_place:
        hr = hr.clone()  # then updated in place: two full-size tensors at a time, not four
    for _ in range(iterations):
        residual = lr - down(hr)
        if low_pass is not None:
            residual = low_pass(residual)
        hr.add_(resize(residual, (H, W), resampler)).clamp_(0, 1)
    return hr


def input_residual_blur(rgb: np.ndarray, cfg: InferConfig) -> tuple[float, JpegEvidence | None]:
    """The residual blur for back-projecting onto the user's image (the first plan step):
    `bp_residual_blur` where set, else `jpeg_residual_blur` if the image shows JPEG
    compression; also the JPEG test's evidence, where it ran."""
    if cfg.bp_residual_blur or not cfg.back_projection or cfg.jpeg_residual_blur <= 0:
        return cfg.bp_residual_blur, None
    evidence = jpeg_evidence(rgb)
    return (cfg.jpeg_residual_blur if evidence.detected else 0.0), evidence


def upscale(
    model: torch.nn.Module,
    rgb: np.ndarray,
    plan: list[PlanStep],
    diffusion: ResShiftDiffusion,
    cfg: InferConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    keep_frames: bool = False,
    progress: bool = True,
    on_step: Callable[[int, PlanStep, np.ndarray], None] | None = None,
    accel: Accel | None = None,
    kernel: np.ndarray | torch.Tensor | None = None,
    retrain: Callable[[int, PlanStep, np.ndarray], torch.nn.Module] | None = None,
) -> UpscaleResult:
    """Run every step of `plan` on an H x W x 3 image in [0, 1].

    `kernel`: the blur that made the image from its high-resolution scene, at the output's
    resolution (a 2-D array summing to 1, `sr_core.runtime.io.load_kernel`), where it is known; the
    output is then matched to the image through it (`kernel_back_project`,
    `cfg.kernel_iterations` times) after the last plan step. `result.intermediates` keep
    the plan steps' own outputs. `retrain(i, step, image)`, where given, returns the model
    for each enlarging step after the first, trained on the image that step starts from
    (`InferConfig.retrain_steps`).
    """
    from tqdm.auto import tqdm

    accel = accel or Accel()
    if isinstance(model, torch.nn.Module):
        model = accel.prepare(model.eval(), device)
    generator = torch.Generator().manual_seed(int(seed))
    current = to_tensor(rgb, device)
    result = UpscaleResult(image=rgb, plan=list(plan))
    first_blur, result.jpeg = input_residual_blur(rgb, cfg)
    bar = tqdm(plan, desc="upscale", disable=not progress, leave=True, dynamic_ncols=True)
    for i, step in enumerate(bar):
        bar.set_postfix_str(f"{step.size[0]}x{step.size[1]}{' refine' if step.refine_only else ''}")
        if i > 0 and retrain is not None and not step.refine_only:
            model = accel.prepare(retrain(i, step, to_numpy(current)).eval(), device)
        # Only the user's image can be noisy: later steps project onto our own clean output.
        current, frames = run_step(model, diffusion, current, step, cfg, generator=generator,
                                   keep_frames=keep_frames, accel=accel,
                                   residual_blur=first_blur if i == 0 else 0.0)
        arr = to_numpy(current)
        result.intermediates.append(arr)
        if keep_frames:
            result.frames.append(frames)
        if on_step is not None:
            on_step(i, step, arr)
    bar.close()
    result.image = result.intermediates[-1]
    # Only onto an image taken as exact: on the realistic protocol's JPEG'd inputs, matched with
    # the blurred residual, it cost 0.03 dB (Set5 x4, `default`; experiments/final_projection.py).
    enlarging = sum(not s.refine_only for s in plan)
    if cfg.final_projection and cfg.back_projection and enlarging > 1 and kernel is None and not first_blur:
        with torch.inference_mode():
            current = back_project(current, to_tensor(rgb, current.device), cfg.back_projection,
                                   resampler=cfg.bp_resampler or cfg.resampler, in_place=True)
        result.image = to_numpy(current)
    if kernel is not None and cfg.kernel_iterations > 0:
        k = torch.as_tensor(kernel, dtype=torch.float32)  # an array, or a tensor on any device
        with torch.inference_mode():  # `current` came out of inference mode: updated in place there
            current = kernel_back_project(current, to_tensor(rgb, current.device), k, cfg.kernel_iterations,
                                          resampler=cfg.resampler, in_place=True)
        result.image = to_numpy(current)
    return result


def resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an alpha channel to (width, height)."""
    t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    return resize(t, (size[1], size[0]), "bicubic")[0, 0].clamp(0, 1).numpy()


def bicubic_upscale(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The plain bicubic baseline with the same resampler inference uses."""
    return to_numpy(resize(to_tensor(rgb), (size[1], size[0]), "bicubic").clamp(0, 1))
