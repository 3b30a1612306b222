"""`Upscaler`: the one object that owns a run — fit on a photo, upscale it, save, load.

    from sr_core import Upscaler

    up = Upscaler("default", seed=0).fit("photo.png", scale=4)   # trains on this photo alone
    big = up.upscale(scale=4)                                     # a PIL image, 4x the size
    up.save("outputs/photo-model")                                # Upscaler.load(...) later

The command lines, the benchmark harness and the notebooks all go through it. Its
configuration comes from `sr_core.resolve.resolve` (preset, input size, plan, flags), once
per fit, and is written as ``config.json`` wherever the run writes.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sr_core.config import Config
from sr_core.errors import UserError
from sr_core.resolve import Target, describe, flatten_fields, resolve

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
# A trained model's config may change only in how it samples: these sections and fields.
LOADED_OVERRIDABLE = ("infer.", "seed")


@dataclass
class UpscaleReport:
    """What the last `upscale` did: the result as floats, and how it was made."""

    image: np.ndarray  # H x W x 3 float32 in [0, 1]
    alpha: np.ndarray | None
    source: Any  # the input as a sr_core.runtime.io.LoadedImage
    plan: list = field(default_factory=list)
    intermediates: list[np.ndarray] = field(default_factory=list)
    frames: list = field(default_factory=list)
    seconds: float = 0.0
    jpeg: Any = None  # the input's JPEG test, where it ran
    kernel_size: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def png(self) -> bytes:
        """The result as PNG bytes, with the input's bit depth and mode (alpha, gray)."""
        from sr_core.runtime.io import encode_png

        return encode_png(self.image, alpha=self.alpha, bit_depth=self.source.bit_depth, gray=self.source.gray)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the result as PNG (`png`), atomically."""
        from sr_core.runtime.io import save_image

        s = self.source
        return save_image(path, self.image, alpha=self.alpha, bit_depth=s.bit_depth, gray=s.gray, overwrite=overwrite)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_size": list(self.source.size), "output_size": list(self.size),
            "plan": [list(s.size) + ([True] if s.refine_only else []) for s in self.plan],
            "upscale_seconds": round(self.seconds, 3),
        }
        if self.jpeg is not None:
            out["jpeg"] = self.jpeg.describe()
        return out


class Upscaler:
    """Fit a tiny diffusion model on one photo, then upscale that photo (or another) with it.

    `preset`: "default", "paper", "fast", "wide", "quality" or "smoke" (`sr-core presets`); `device`:
    auto | cpu | cuda | cuda:N | mps; `seed`: None keeps the preset's. `config`: a JSON file
    of config fields. `noisy`: True for a noisy or JPEG'd photo (back-projects its coarse
    content only), False for a clean one (exactly), None to test the pixels for JPEG.
    `overrides`: config fields, nested (``train={"lr": 1e-3}``) or dotted
    (``**{"train.lr": 1e-3}``). `precision`, `compile`, `cuda_graph`: how the device runs
    the model (sr_core.runtime.accel), never what it computes in fp32.
    """

    def __init__(self, preset: str = "default", device: str = "auto", seed: int | None = 0, *,
                 config: str | Path | None = None, noisy: bool | None = None, precision: str = "auto",
                 compile: bool = False, cuda_graph: bool = True, **overrides: Any):
        self.preset = preset
        self.device_name = device
        self.seed = seed
        self.config_file = config
        self.noisy = noisy
        self.overrides = overrides
        self.accel_options = {"precision": precision, "compile": compile, "cuda_graph": cuda_graph}
        self._device = None  # resolved on first use (`device`)
        self._base: Config | None = None  # a loaded model's config
        self._config: Config | None = None
        self.model = None
        self.train_result = None
        self.image = None  # the fitted photo (LoadedImage) and how it was given
        self._image_kind = None
        self.last: UpscaleReport | None = None
        self._kernel = None  # the blur kernel `fit` was told, the default for `upscale`
        resolve(preset, config_file=config, overrides=overrides, seed=seed, noisy=noisy)  # fail early

    # ----------------------------------------------------------------- configuration
    @property
    def config(self) -> Config:
        """The resolved configuration: after `fit` (or `load`), the one the model was made
        with; before, what a fit would use on an input of unknown size."""
        return self._config if self._config is not None else self.resolve()

    def resolve(self, image=None, *, input_size: tuple[int, int] | None = None, target: Target | None = None,
                kernel=None, **target_kw) -> Config:
        """The configuration a fit on `image` (or an input of `input_size`) towards `target`
        (or scale=..., size=..., plan=...), told the blur `kernel` where given, would use;
        trains nothing."""
        if image is not None:
            from sr_core.runtime.io import as_loaded_image

            input_size = as_loaded_image(image)[0].size
        target = target or Target(**target_kw)
        return resolve(self.preset, input_size=input_size, target=target, config_file=self.config_file,
                       overrides=self.overrides, seed=self.seed, noisy=self.noisy, base=self._base, kernel=kernel)

    @property
    def device(self):
        """The torch device this Upscaler runs on (resolved from `device` once)."""
        if self._device is None:
            from sr_core.runtime.device import resolve_device

            self._device = resolve_device(self.device_name)
        return self._device

    def _accel(self):
        from sr_core.runtime.accel import Accel

        return Accel(**self.accel_options)

    # ------------------------------------------------------------------------- fit
    def fit(self, image, *, scale: float | None = None, scale_w: float | None = None, scale_h: float | None = None,
            size: tuple[int, int] | None = None, plan: Sequence[float] | None = None,
            plan_w: Sequence[float] | None = None, plan_h: Sequence[float] | None = None, force: bool = False,
            kernel=None, out_dir: str | Path | None = None, resume: str | Path | None = None,
            progress: bool = True, on_step: Callable[[int, dict], None] | None = None) -> "Upscaler":
        """Train on `image` (a path, PIL image or H x W x 3 array) alone.

        The target (scale / size / plan), where known, sets the step factor the model
        trains on. `kernel`: the blur that made the photo, where known (a 2-D array or a
        kernel file, at the output's resolution): the pairs are made with it, in one step
        spanning the whole scale, and `upscale` matches the output to the photo through it.
        `out_dir`: where ``config.json``, checkpoints and ``loss.png`` go (none without it);
        `resume`: a checkpoint of the same config and image to continue from.
        """
        from sr_core.method.train import train
        from sr_core.runtime.io import as_kernel, as_loaded_image, atomic_write_text

        if self._base is not None:
            raise UserError("this Upscaler holds a loaded model; make a new Upscaler to fit another")
        loaded, kind = as_loaded_image(image)
        target = Target(scale=scale, scale_w=scale_w, scale_h=scale_h, size=size, plan=plan, plan_w=plan_w,
                        plan_h=plan_h, force=force)
        kernel = as_kernel(kernel)
        cfg = self.resolve(input_size=loaded.size, target=target, kernel=kernel)
        self._kernel = kernel
        device = self.device
        if progress:
            print(describe(cfg) + f"\n  device {device}", file=sys.stderr)
        if out_dir is not None:
            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out_dir / CONFIG_FILE, cfg.to_json())
        result = train(loaded.rgb, cfg, device=device, out_dir=out_dir, resume=resume, progress=progress,
                       on_step=on_step, accel=self._accel(), perceptual="auto")
        self._config, self.train_result = cfg, result
        self.model = result.sampling_model()
        self.image, self._image_kind = loaded, kind
        return self

    # --------------------------------------------------------------------- upscale
    def upscale(self, image=None, *, scale: float | None = None, scale_w: float | None = None,
                scale_h: float | None = None, size: tuple[int, int] | None = None,
                plan: Sequence[float] | None = None, plan_w: Sequence[float] | None = None,
                plan_h: Sequence[float] | None = None, force: bool = False, kernel=None,
                progress: bool = True, keep_frames: bool = False,
                on_step: Callable | None = None):
        """Upscale `image` (default: the fitted photo) and return it as it was given: a PIL
        image for a path or PIL image, an array of the same dtype and layout for an array.

        Give one of `scale`, `scale_w`/`scale_h`, `size` (width, height), or a `plan` of
        factors relative to the input (e.g. ``plan=[2, 4]``). `kernel`: the blur that made
        the photo, where known (a 2-D array or a kernel file; sr_core.runtime.io.load_kernel);
        a model fitted with a kernel uses that one by default, at the scale it was fitted for.
        Details of the run are in `self.last` (an UpscaleReport).
        """
        from sr_core.method.diffusion import ResShiftDiffusion
        from sr_core.method.infer import resize_alpha, upscale
        from sr_core.runtime.io import as_kernel, as_kind, as_loaded_image

        if self.model is None:
            raise UserError("fit the Upscaler on a photo (or load a saved one) before upscaling")
        if image is None:
            if self.image is None:
                raise UserError("this Upscaler was loaded without its photo: pass the image to upscale")
            loaded, kind = self.image, self._image_kind
        else:
            loaded, kind = as_loaded_image(image)
        cfg = self._config
        target = Target(scale=scale, scale_w=scale_w, scale_h=scale_h, size=size, plan=plan, plan_w=plan_w,
                        plan_h=plan_h, force=force)
        steps = target.progressive_plan(loaded.size, cfg)
        kernel = as_kernel(kernel)
        told = cfg.degradation.kernel_array()  # trained on pairs made with it (also after `load`)
        if told is not None:
            _check_told_scale(loaded.size, steps, cfg.data.step_factor[0])
        if kernel is None:
            kernel = self._kernel if self._kernel is not None else told
        retrain = self._retrain(cfg, len(steps), progress) if cfg.infer.retrain_steps and len(steps) > 1 else None
        t0 = time.perf_counter()
        result = upscale(self.model, loaded.rgb, steps, ResShiftDiffusion(cfg.diffusion), cfg.infer,
                         device=self.device, seed=cfg.seed, progress=progress, accel=self._accel(),
                         kernel=kernel, keep_frames=keep_frames, on_step=on_step, retrain=retrain)
        seconds = time.perf_counter() - t0
        out_size = steps[-1].size
        alpha = resize_alpha(loaded.alpha, out_size) if loaded.alpha is not None else None
        self.last = UpscaleReport(result.image, alpha, loaded, steps, result.intermediates, result.frames, seconds,
                                  result.jpeg, None if kernel is None else int(np.shape(kernel)[0]))
        return as_kind(result.image, alpha, loaded, kind)

    def _retrain(self, cfg: Config, n_steps: int, progress: bool):
        """The gradual plan's trainer (`InferConfig.retrain_steps`): a fresh model, trained
        with `cfg` on the image a plan step starts from, for that step's factor."""
        from sr_core.method.train import train

        def retrain(i: int, step, rgb: np.ndarray):
            h, w = rgb.shape[:2]
            f = max(step.size[0] / w, step.size[1] / h)
            step_cfg = copy.deepcopy(cfg)
            step_cfg.data.step_factor = (f, f)
            if progress:
                print(f"step {i + 1} of {n_steps}: training on the {w}x{h} result for a x{f:.4g} step",
                      file=sys.stderr)
            return train(rgb, step_cfg, device=self.device, progress=progress, accel=self._accel(),
                         perceptual="auto").sampling_model()

        return retrain

    # ------------------------------------------------------------------ save, load
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.pt`` (weights and config, atomically) to `folder`."""
        from sr_core.runtime.checkpoint import save_checkpoint
        from sr_core.runtime.io import atomic_write_text

        if self.model is None:
            raise UserError("nothing to save: fit the Upscaler first")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(folder / MODEL_FILE, {"model": self.model.state_dict()}, self._config)
        atomic_write_text(folder / CONFIG_FILE, self._config.to_json())
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", seed: int | None = None, noisy: bool | None = None,
             use_ema: bool | None = None, precision: str = "auto", compile: bool = False,
             **overrides: Any) -> "Upscaler":
        """An Upscaler from a folder written by `save` (or a run folder), or a checkpoint file.

        Only how it samples may change: `seed`, `noisy` and ``infer`` fields in `overrides`.
        """
        from sr_core.method.train import load_model

        path = Path(path)
        ckpt = path
        if path.is_dir():
            candidates = [path / MODEL_FILE, path / "checkpoints" / "last.pt"]
            ckpt = next((c for c in candidates if c.exists()), None)
            if ckpt is None:
                raise UserError(f"checkpoint path is a directory with no model in it (expected {MODEL_FILE} "
                                f"or checkpoints/last.pt): {path}")
        fixed = [k for k in flatten_fields(overrides) if not k.startswith(LOADED_OVERRIDABLE)]
        if fixed:
            raise UserError(f"a trained model's {', '.join(fixed)} cannot change; only infer.* fields and the seed")
        model, saved = load_model(ckpt, use_ema=use_ema)
        up = cls(saved.preset, device=device, seed=seed, noisy=noisy, precision=precision, compile=compile,
                 **overrides)
        up._base = saved
        up._config = up.resolve()
        up.model = model.to(up.device).eval()
        up.checkpoint = ckpt
        return up

    def write_config(self, folder: str | Path) -> Path:
        """The resolved configuration as ``folder/config.json`` (atomically)."""
        from sr_core.runtime.io import atomic_write_text

        path = Path(folder) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.config.to_json())
        return path

    def __repr__(self) -> str:
        state = "fitted" if self.train_result is not None else ("loaded" if self._base is not None else "not fitted")
        return f"Upscaler(preset={self.preset!r}, {state})"


def _check_told_scale(in_size: tuple[int, int], steps, factor: float) -> None:
    """A model fitted with a known kernel learnt that kernel's one scale: refuse another."""
    enlarging = [s for s in steps if not s.refine_only]
    f = max(enlarging[0].size[0] / in_size[0], enlarging[0].size[1] / in_size[1]) if enlarging else 1.0
    if len(enlarging) != 1 or abs(f / factor - 1) > 0.01:
        raise UserError(f"this model was fitted with a known blur kernel for one x{factor:.4g} step; "
                        f"upscale by x{factor:.4g} in one step (asked: "
                        + (f"x{f:.4g})" if len(enlarging) == 1 else f"{len(enlarging)} steps)"))
