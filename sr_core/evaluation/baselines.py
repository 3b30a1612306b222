"""Classical and zero-shot baselines: bicubic, Lanczos, iterative back-projection, ZSSR.

All take an LR image (H x W x 3 floats in [0, 1]) and an integer scale and return the SR
image of exactly ``scale`` times the size, in [0, 1].

ZSSR follows Shocher, Cohen and Irani, "Zero-Shot Super-Resolution using Deep Internal
Learning" (CVPR 2018), written here from the paper and its published hyper-parameters, and
by default at the published strength (docs/zssr.md):
an 8-layer, 64-channel 3x3 CNN with ReLUs that predicts the residual over the bicubic
upsampling; training pairs are 128-px "fathers" warped at random from the test image (5 % an
untouched crop, 45 % a crop turned by a multiple of 90 degrees and maybe mirrored, 50 % a
random scale in [0.5, 1] with any rotation, shear and an x / y scale difference) and their
downscaled versions (LR "sons") made with the evaluation protocol's downscaler; L1 loss, Adam at 1e-3. Every 50 iterations the
reconstruction error of the test image from its own downscaled copy is measured (one forward
pass, no ensemble); every 60 iterations, once 256 iterations have passed since the last
change, a line is fitted to the last 5 of those errors and the learning rate is divided by
10 when the fitted slope is not clearly negative (``-1.5 * slope < its standard error``,
`lr_plateau`); training stops when the learning rate falls under 9e-6 (1e-3 -> 1e-4 -> 1e-5
-> stop) or after 3000 iterations. Inference: the 8 dihedral transforms of the input, each
upsampled, passed through the net and back-projected 10 times, their median, back-projected
10 times again. Large scales are done gradually (x4 = x2, then x4 with the x2 result added to
the fathers; the x4 stage starts from the x2 stage's weights).

``ZSSRConfig()`` is that recipe; ``ZSSRConfig(max_iters=N)`` cuts it short (the bench's
``--zssr-iters N`` also sets ``min_iters=min(128, N)`` so that the policy can act).

Deviations (documented on purpose):
* PyTorch's default convolution initialisation, with biases (``init="published"``: the
  published code's, 0.09-0.14 dB lower on Set5 x2 bird / woman);
* with a non-bicubic (``realistic``) downscaler the sons are made with that protocol's known
  blur (ZSSR's "known kernel" mode) plus Gaussian noise of ``noise_std`` (as ZSSR's setting
  for real images), and the scale is done in one step (the blur is only defined at the
  target scale); the bench then turns the fathers' rotations off (``rotations=False``), as
  the published configuration recommends for a non-symmetric kernel.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sr_core.evaluation.protocols import imresize

Downscaler = Callable[[np.ndarray], np.ndarray]


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _up_size(lr: np.ndarray, scale: int) -> tuple[int, int]:
    return lr.shape[0] * scale, lr.shape[1] * scale


# --------------------------------------------------------------------------- classic
def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic upscaling (the field's bicubic baseline)."""
    return _clip(imresize(lr, size=_up_size(lr, scale)))


def lanczos(lr: np.ndarray, scale: int) -> np.ndarray:
    """Lanczos-3 upscaling (PIL), channel by channel in floating point."""
    from PIL import Image

    h, w = _up_size(lr, scale)
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(lr[..., c], np.float32), mode="F").resize((w, h), Image.LANCZOS))
        for c in range(lr.shape[2])
    ]
    return _clip(np.stack(chans, axis=-1).astype(np.float64))


def ibp(lr: np.ndarray, scale: int, downscale: Downscaler | None = None, *, iters: int = 20,
        step: float = 1.0) -> np.ndarray:
    """Iterative back-projection (Irani & Peleg): bicubic start, then
    ``x += step * up(lr - downscale(x))`` with bicubic ``up``, `iters` times."""
    downscale = downscale or (lambda x: imresize(x, 1.0 / scale))
    size = _up_size(lr, scale)
    x = imresize(lr, size=size)
    for _ in range(iters):
        x = _clip(x + step * imresize(lr - downscale(x), size=size))
    return x


def lr_residual(sr: np.ndarray, lr: np.ndarray, downscale: Downscaler) -> float:
    """RMS of ``lr - downscale(sr)``: how far an SR result is from explaining its input."""
    return float(np.sqrt(np.mean((lr - downscale(sr)) ** 2)))


# ------------------------------------------------------------------------------ ZSSR
@dataclass(frozen=True)
class ZSSRConfig:
    """ZSSR's hyper-parameters; the defaults are the published recipe (docs/zssr.md)."""

    depth: int = 8  # conv layers
    width: int = 64  # channels
    crop: int = 128  # training crop of the HR father (px)
    max_iters: int = 3000  # iteration budget per scale stage
    min_iters: int = 256  # iterations before the first and between learning-rate changes
    lr: float = 1e-3  # Adam's initial learning rate
    min_lr: float = 9e-6  # stop once the learning rate falls under this
    test_every: int = 50  # reconstruction-error test of the input from its downscaled copy
    policy_every: int = 60  # learning-rate policy check
    slope_range: int = 256  # the line is fitted to the tests of this many last iterations (5)
    change_ratio: float = 1.5  # divide the lr by 10 when -change_ratio * slope < slope's std
    father_min_scale: float = 0.5  # fathers: the sources downscaled by 1.0 ... this
    father_scales: int = 6  # with fathers="pyramid": that many fixed downscales
    # "affine": the published code's random warp of a source into the crop (as is / 90-degree
    # turns and a flip / a random scale in [father_min_scale, 1], any rotation, shear and
    # aspect jitter; zero outside the image); "pyramid": 6 fixed downscales picked by area and
    # cropped (this harness's first version: Set5 x2 bird / woman 41.54 / 35.73 against 41.78 / 35.82)
    fathers: str = "affine"
    as_is_prob: float = 0.05  # affine fathers: the crop untouched
    no_interp_prob: float = 0.45  # affine fathers: only 90-degree turns and a flip
    scale_diff_sigma: float = 0.25  # affine fathers: x / y scale difference
    shear_sigma: float = 0.1
    # fathers turned and mirrored (published: "recommended false for non-symmetric kernels";
    # the bench turns it off for the realistic protocol's anisotropic blur)
    rotations: bool = True
    # "torch": PyTorch's default with biases; "published": N(0, 0.1 / fan-in), no biases (Set5 x2
    # bird / woman 41.64 / 35.73 against torch's 41.78 / 35.82: the stronger peer is kept)
    init: str = "torch"
    back_projection_iters: int = 10  # on each of the 8 ensemble outputs and on their median
    ensemble: bool = True  # median of the 8 dihedral outputs
    gradual: bool = True  # x4 as x2, then x4 (bicubic protocol)
    warm_start: bool = True  # a later stage starts from the previous stage's net and Adam state
    noise_std: float = 0.0  # Gaussian noise added to the sons (real-image setting: 0.0125)
    seed: int = 0

    @classmethod
    def paper(cls, **kw) -> "ZSSRConfig":
        """The published recipe (the default since it was made the default; kept for callers)."""
        return cls(**kw)

    @property
    def full(self) -> bool:
        """True when the iteration budget is the published one (3000)."""
        return self.max_iters >= ZSSRConfig.max_iters

    def budget(self) -> str:
        """How a results table names this budget: 'full (3000 max iterations)' or 'cut to N'."""
        if self.full:
            return f"full ({self.max_iters} max iterations)"
        return f"cut to {self.max_iters} max iterations (full: {ZSSRConfig.max_iters})"


class ZSSRNet(nn.Module):
    """8 conv layers, ReLU between them, residual over the (already upsampled) input."""

    def __init__(self, depth: int = 8, width: int = 64, init: str = "torch"):
        super().__init__()
        layers: list[nn.Module] = []
        chans = [3] + [width] * (depth - 1) + [3]
        published = init == "published"
        for i in range(depth):
            conv = nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=not published)
            if published:  # the published code's initialiser: variance 0.1 over the fan-in, no biases
                nn.init.normal_(conv.weight, 0.0, math.sqrt(0.1 / (9 * chans[i])))
            layers.append(conv)
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _dihedral(x: np.ndarray, k: int) -> np.ndarray:
    x = np.rot90(x, k % 4, axes=(0, 1))
    return x[:, ::-1] if k >= 4 else x


def _undihedral(x: np.ndarray, k: int) -> np.ndarray:
    if k >= 4:
        x = x[:, ::-1]
    return np.rot90(x, -(k % 4), axes=(0, 1))


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).permute(2, 0, 1)[None]


def _n(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).detach().cpu().numpy().astype(np.float64)


def lr_plateau(steps, errors, change_ratio: float = 1.5) -> bool:
    """ZSSR's learning-rate test: fit a line to the reconstruction errors over `steps` and
    report a plateau when ``-change_ratio * slope < std(slope)``, i.e. the error is no longer
    clearly falling. std(slope) is the fit's standard error of the slope with the residual
    variance over ``n - 4`` degrees of freedom (at least 1): what numpy's
    ``polyfit(..., 1, cov=True)`` gave when ZSSR was published (numpy < 1.16; numpy now
    divides by ``n - 2``); with ZSSR's 5 points that is the residual sum of squares itself."""
    x = np.asarray(steps, np.float64)
    y = np.asarray(errors, np.float64)
    if len(x) < 3:
        return False
    slope, icpt = np.polyfit(x, y, 1)
    rss = float(np.sum((y - (slope * x + icpt)) ** 2))
    sxx = float(np.sum((x - x.mean()) ** 2))
    std = math.sqrt(rss / max(len(x) - 4, 1) / sxx)
    return -change_ratio * slope < std


def affine_father(sources: list[np.ndarray], base_scales: list[float], rng: np.random.Generator,
                  cfg: ZSSRConfig) -> np.ndarray:
    """A `cfg.crop`-square HR father as the published code draws it: with probability
    `as_is_prob` an integer crop of the input; with `no_interp_prob` the same turned by a
    multiple of 90 degrees and maybe mirrored; otherwise a random scale s in
    [father_min_scale, the newest source's scale], taken from the first source at least that
    large, resampled (cubic) by s over its base scale with an x / y difference, any rotation
    and a shear. Outside the source is zero (small inputs sit on a black canvas)."""
    import cv2

    u = rng.random()
    mode = "as_is" if u < cfg.as_is_prob else "no_interp" if u < cfg.as_is_prob + cfg.no_interp_prob else "affine"
    scale = 1.0 if mode == "as_is" else rng.uniform(cfg.father_min_scale, base_scales[-1])
    idx = next(i for i, b in enumerate(base_scales) if b > scale - 1e-6)
    src = sources[idx]
    h, w = src.shape[:2]
    if mode == "affine":
        s, diff, theta = scale / base_scales[idx], rng.normal(0, cfg.scale_diff_sigma), rng.uniform(0, 2 * math.pi)
        shear_x, shear_y = rng.normal(0, cfg.shear_sigma, 2)
    else:
        s, diff, shear_x, shear_y = 1.0, 0.0, 0.0, 0.0
        theta = int(rng.integers(4)) * math.pi / 2 if mode == "no_interp" else 0.0
    flip = 1.0 if mode == "as_is" or not cfg.rotations else float(rng.choice((-1.0, 1.0)))
    if not cfg.rotations:
        theta = 0.0
    shift_x = rng.random() * max(s * w - cfg.crop, 0.0)
    shift_y = rng.random() * max(s * h - cfg.crop, 0.0)
    centre = np.array([w / 2.0, h / 2.0])
    if mode != "affine":  # integer shifts: the crop stays on the pixel grid
        centre, shift_x, shift_y = np.round(centre), round(shift_x), round(shift_y)
    c, si = math.cos(theta), math.sin(theta)
    m = (np.array([[1, 0, centre[0] - shift_x], [0, 1, centre[1] - shift_y], [0, 0, 1]])
         @ np.array([[1, shear_x, 0], [shear_y, 1, 0], [0, 0, 1]])
         @ np.array([[c, si, 0], [-si, c, 0], [0, 0, 1]])
         @ np.diag([flip * (s + diff / 2), s - diff / 2, 1.0])
         @ np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]]))
    out = cv2.warpAffine(np.ascontiguousarray(src, np.float32), m[:2], (cfg.crop, cfg.crop), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(out.astype(np.float64), 0, 1)


def _back_project(sr: np.ndarray, lr: np.ndarray, down: Downscaler, iters: int) -> np.ndarray:
    """``sr += bicubic_up(lr - down(sr))``, `iters` times (Irani & Peleg), in [0, 1]."""
    for _ in range(iters):
        sr = np.clip(sr + imresize(lr - down(sr), size=sr.shape[:2]), 0, 1)
    return sr


class _ZSSRTrainer:
    """Trains one network for one scale ratio `sf` relative to the input. `init` is a
    previous trainer whose network (and Adam state) this one starts from."""

    def __init__(self, sources: list[np.ndarray], sf: int, down: Downscaler, cfg: ZSSRConfig,
                 rng: np.random.Generator, make_net: Callable[[], nn.Module] | None = None,
                 init: "_ZSSRTrainer | None" = None):
        self.cfg, self.sf, self.down, self.rng = cfg, sf, down, rng
        # affine fathers: each source with its scale relative to the first (the input)
        self.sources = [np.clip(src, 0, 1) for src in sources]
        self.base_scales = [math.sqrt(src.shape[0] * src.shape[1] / (sources[0].shape[0] * sources[0].shape[1]))
                            for src in sources]
        self.fathers: list[np.ndarray] = []  # fathers="pyramid": fixed downscales, picked by area
        for src in sources if cfg.fathers == "pyramid" else []:
            for s in np.linspace(1.0, cfg.father_min_scale, cfg.father_scales):
                f = src if s == 1.0 else imresize(src, s)
                if min(f.shape[:2]) >= 2 * sf:
                    self.fathers.append(np.clip(f, 0, 1))
        areas = np.array([f.shape[0] * f.shape[1] for f in self.fathers], np.float64)
        self.probs = areas / areas.sum() if len(areas) else areas
        torch.manual_seed(cfg.seed)
        self.net = make_net() if make_net else ZSSRNet(cfg.depth, cfg.width, cfg.init)
        # channels-last: the same arithmetic, ~15 % faster convolutions on CPU (oneDNN).
        self._fmt = torch.channels_last if make_net is None else torch.contiguous_format
        self.net = self.net.to(memory_format=self._fmt)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        if init is not None:
            self.net.load_state_dict(init.net.state_dict())
            self.opt.load_state_dict(init.opt.state_dict())
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr

    def _in(self, x: np.ndarray) -> torch.Tensor:
        return _t(x).contiguous(memory_format=self._fmt)

    def _father(self) -> np.ndarray:
        """One HR training crop: from the fixed pyramid, or warped from a source (`cfg.fathers`)."""
        cfg, sf = self.cfg, self.sf
        if cfg.fathers == "affine":
            return affine_father(self.sources, self.base_scales, self.rng, cfg)
        father = self.fathers[self.rng.choice(len(self.fathers), p=self.probs)]
        c = min(cfg.crop, father.shape[0], father.shape[1])
        c -= c % sf
        y0 = self.rng.integers(0, father.shape[0] - c + 1)
        x0 = self.rng.integers(0, father.shape[1] - c + 1)
        return _dihedral(father[y0:y0 + c, x0:x0 + c], int(self.rng.integers(8)) if cfg.rotations else 0)

    def _pair(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        crop = self._father()
        son = self.down(crop)
        if cfg.noise_std > 0:
            son = son + self.rng.normal(0, cfg.noise_std, son.shape)
        return imresize(son, size=crop.shape[:2]), crop

    def predict(self, lr: np.ndarray, size: tuple[int, int], *, ensemble: bool = True,
                back_projection_iters: int = 0) -> np.ndarray:
        """The net's SR of `lr` at `size`. With `ensemble`: each of the 8 dihedral transforms is
        upsampled, passed through the net, transformed back and back-projected onto `lr`
        (`back_projection_iters` times, with the trainer's downscaler); the result is their
        per-pixel median, back-projected again. Without it: one forward pass, then the
        back-projection."""
        self.net.eval()
        outs = []
        with torch.no_grad():
            for k in range(8 if ensemble else 1):
                up = imresize(_dihedral(lr, k), size=size if k % 2 == 0 else size[::-1])
                out = np.clip(_undihedral(_n(self.net(self._in(up))), k), 0, 1)
                if ensemble:
                    out = _back_project(out, lr, self.down, back_projection_iters)
                outs.append(out)
        self.net.train()
        out = np.median(np.stack(outs), axis=0) if ensemble else outs[0]
        return _back_project(out, lr, self.down, back_projection_iters)

    def fit(self, test_lr: np.ndarray) -> dict:
        """Train until the learning-rate policy bottoms out or the budget ends. Returns the
        iterations run, the final learning rate, the learning-rate changes as (iteration,
        new lr), the test errors as (iteration, MSE) and the seconds spent training and
        testing."""
        cfg = self.cfg
        # Test: reconstruct the input from its own downscaled copy (one pass, no ensemble).
        test_son = self.down(test_lr)
        errors: list[tuple[int, float]] = []
        changes: list[tuple[int, float]] = []
        n_fit = max(cfg.slope_range // cfg.test_every, 3)
        lr_now, last_change, it = cfg.lr, 0, 0
        t_test, t0 = 0.0, time.perf_counter()
        for it in range(1, cfg.max_iters + 1):
            inp, target = self._pair()
            loss = F.l1_loss(self.net(self._in(inp)), self._in(target))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if it % cfg.test_every == 0:
                t1 = time.perf_counter()
                pred = self.predict(test_son, test_lr.shape[:2], ensemble=False)
                errors.append((it, float(np.mean((pred - test_lr) ** 2))))
                t_test += time.perf_counter() - t1
            if (it % cfg.policy_every == 0 and it - last_change > cfg.min_iters and len(errors) >= n_fit
                    and lr_plateau(*zip(*errors[-n_fit:]), cfg.change_ratio)):
                lr_now /= 10
                last_change = it
                changes.append((it, lr_now))
                for g in self.opt.param_groups:
                    g["lr"] = lr_now
                if lr_now < cfg.min_lr:
                    break
        total = time.perf_counter() - t0
        return {"iters": it, "final_lr": lr_now, "lr_changes": changes, "errors": errors,
                "train_seconds": total - t_test, "test_seconds": t_test}


def zssr(lr: np.ndarray, scale: int, downscale: Downscaler | None = None, *,
         cfg: ZSSRConfig | None = None, info: dict | None = None,
         make_net: Callable[[], nn.Module] | None = None) -> np.ndarray:
    """Zero-shot SR of `lr` by `scale`; `downscale` is the protocol's HR->LR map at `scale`
    (None: MATLAB bicubic). Fills `info` with, per stage, the scale, iterations, learning-rate
    changes and seconds, and the total seconds, if given (also logged at INFO level).
    `make_net` swaps ZSSR's network for another [0, 1] -> [0, 1] image model
    (experiments/README.md: net_swap)."""
    import logging

    log = logging.getLogger(__name__)
    cfg = cfg or ZSSRConfig()
    rng = np.random.default_rng(cfg.seed)
    lr = np.asarray(lr, np.float64)
    bicubic_down = downscale is None
    steps = [scale]
    if bicubic_down and cfg.gradual and scale > 2:
        steps = sorted({2 ** k for k in range(1, int(math.log2(scale)) + 1) if 2 ** k < scale} | {scale})
    sources = [lr]
    out, trainer = None, None
    t0 = time.perf_counter()
    for i, sf in enumerate(steps):
        t_stage = time.perf_counter()
        down = (lambda x, sf=sf: imresize(x, 1.0 / sf)) if bicubic_down or sf != scale else downscale
        trainer = _ZSSRTrainer(sources, sf, down, replace(cfg, seed=cfg.seed + i), rng, make_net,
                               init=trainer if cfg.warm_start else None)
        stats = trainer.fit(lr)
        t1 = time.perf_counter()
        out = trainer.predict(lr, _up_size(lr, sf), ensemble=cfg.ensemble,
                              back_projection_iters=cfg.back_projection_iters)
        sources.append(out)
        stage = {"scale": sf, **{k: v for k, v in stats.items() if k != "errors"},
                 "final_seconds": time.perf_counter() - t1, "seconds": time.perf_counter() - t_stage}
        log.info("ZSSR stage x%d: %d iterations, lr changes: %s; %.0f s (train %.0f, tests %.0f, "
                 "ensemble + back-projection %.0f)", sf, stage["iters"],
                 ", ".join(f"{v:.0e} at {i}" for i, v in stage["lr_changes"]) or "none", stage["seconds"],
                 stage["train_seconds"], stage["test_seconds"], stage["final_seconds"])
        if info is not None:
            info.setdefault("stages", []).append(stage)
    if info is not None:
        info["seconds"] = time.perf_counter() - t0
    return out


METHODS = ("bicubic", "lanczos", "ibp", "zssr")
