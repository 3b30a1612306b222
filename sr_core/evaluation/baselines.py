"""Classical and zero-shot baselines: bicubic, Lanczos, iterative back-projection, ZSSR.

All take an LR image (H x W x 3 floats in [0, 1]) and an integer scale and return the SR
image of exactly ``scale`` times the size, in [0, 1].

ZSSR follows Shocher, Cohen and Irani, "Zero-Shot Super-Resolution using Deep Internal
Learning" (CVPR 2018), written here from the paper and its published hyper-parameters:
an 8-layer, 64-channel 3x3 CNN with ReLUs that predicts the residual over the bicubic
upsampling; training pairs are random crops of the test image's own downscaled copies (HR
"fathers", 1.0 down to 0.5 of its size, picked with probability proportional to their area)
and their downscaled versions (LR "sons") made with the evaluation protocol's downscaler,
with random flips/rotations; L1 loss, Adam at 1e-3; every 60 iterations the reconstruction
error of the test image from its own downscaled copy is fitted by a line over the recent
iterations and the learning rate is divided by 10 when the fitted decrease is smaller than
1.5x the fit's residual standard deviation; training stops when the learning rate falls
under 9e-6 or at the iteration budget. Inference: the 8 dihedral transforms of the
bicubic-upsampled input, the median of their outputs, then 10 back-projection iterations.
Large scales are done gradually (x4 = x2, then x4 with the x2 result added to the fathers).

Deviations (documented on purpose):
* default budget ``max_iters=400`` with 64-px crops (the paper: 3000 iterations, 128-px crops)
  so that a 128 x 128 x2 image takes about a minute on a 2-core CPU; ``ZSSRConfig.paper()``
  gives the full length;
* no random shear/scale-jitter augmentation beyond the father pool;
* with a non-bicubic (``realistic``) downscaler the sons are made with that protocol's known
  blur (ZSSR's "known kernel" mode) plus Gaussian noise of ``noise_std`` (as ZSSR's setting
  for real images), and the scale is done in one step (the blur is only defined at the
  target scale).
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
    depth: int = 8
    width: int = 64
    crop: int = 64
    max_iters: int = 400
    min_iters: int = 128
    lr: float = 1e-3
    min_lr: float = 9e-6
    test_every: int = 50
    policy_every: int = 60
    slope_range: int = 128
    change_ratio: float = 1.5
    father_min_scale: float = 0.5
    father_scales: int = 6
    back_projection_iters: int = 10
    gradual: bool = True
    noise_std: float = 0.0
    seed: int = 0

    @classmethod
    def paper(cls, **kw) -> "ZSSRConfig":
        """The published schedule: up to 3000 iterations on 128-px crops."""
        return cls(crop=128, max_iters=3000, min_iters=256, slope_range=256, **kw)


class ZSSRNet(nn.Module):
    """8 conv layers, ReLU between them, residual over the (already upsampled) input."""

    def __init__(self, depth: int = 8, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        chans = [3] + [width] * (depth - 1) + [3]
        for i in range(depth):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
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


class _ZSSRTrainer:
    """Trains one network for one scale ratio `sf` relative to the input."""

    def __init__(self, sources: list[np.ndarray], sf: int, down: Downscaler, cfg: ZSSRConfig,
                 rng: np.random.Generator, make_net: Callable[[], nn.Module] | None = None):
        self.cfg, self.sf, self.down, self.rng = cfg, sf, down, rng
        self.fathers: list[np.ndarray] = []
        for src in sources:
            for s in np.linspace(1.0, cfg.father_min_scale, cfg.father_scales):
                f = src if s == 1.0 else imresize(src, s)
                if min(f.shape[:2]) >= 2 * sf:
                    self.fathers.append(np.clip(f, 0, 1))
        areas = np.array([f.shape[0] * f.shape[1] for f in self.fathers], np.float64)
        self.probs = areas / areas.sum()
        torch.manual_seed(cfg.seed)
        self.net = make_net() if make_net else ZSSRNet(cfg.depth, cfg.width)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)

    def _pair(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, sf = self.cfg, self.sf
        father = self.fathers[self.rng.choice(len(self.fathers), p=self.probs)]
        c = min(cfg.crop, father.shape[0], father.shape[1])
        c -= c % sf
        y0 = self.rng.integers(0, father.shape[0] - c + 1)
        x0 = self.rng.integers(0, father.shape[1] - c + 1)
        crop = _dihedral(father[y0:y0 + c, x0:x0 + c], int(self.rng.integers(8)))
        son = self.down(crop)
        if cfg.noise_std > 0:
            son = son + self.rng.normal(0, cfg.noise_std, son.shape)
        return imresize(son, size=crop.shape[:2]), crop

    def predict(self, lr: np.ndarray, size: tuple[int, int], *, ensemble: bool = True) -> np.ndarray:
        self.net.eval()
        outs = []
        with torch.no_grad():
            for k in range(8 if ensemble else 1):
                up = imresize(_dihedral(lr, k), size=size if k % 2 == 0 else size[::-1])
                outs.append(_undihedral(_n(self.net(_t(up))), k))
        self.net.train()
        return np.clip(np.median(np.stack(outs), axis=0), 0, 1)

    def fit(self, test_lr: np.ndarray) -> dict:
        """Train until the learning-rate policy bottoms out or the budget ends."""
        cfg = self.cfg
        # Test: reconstruct the input from its own downscaled copy.
        test_son = self.down(test_lr)
        errors: list[tuple[int, float]] = []
        lr_now, last_change, it = cfg.lr, 0, 0
        for it in range(1, cfg.max_iters + 1):
            inp, target = self._pair()
            loss = F.l1_loss(self.net(_t(inp)), _t(target))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if it % cfg.test_every == 0:
                pred = self.predict(test_son, test_lr.shape[:2], ensemble=False)
                errors.append((it, float(np.mean((pred - test_lr) ** 2))))
            if it >= cfg.min_iters and it % cfg.policy_every == 0 and it - last_change > cfg.slope_range:
                recent = [(i, e) for i, e in errors if i > it - cfg.slope_range]
                if len(recent) >= 2:
                    xs, ys = np.array(recent).T
                    slope, icpt = np.polyfit(xs, ys, 1)
                    std = float(np.sqrt(np.mean((ys - (slope * xs + icpt)) ** 2)))
                    if -slope * cfg.slope_range < cfg.change_ratio * std:
                        lr_now /= 10
                        last_change = it
                        for g in self.opt.param_groups:
                            g["lr"] = lr_now
                if lr_now < cfg.min_lr:
                    break
        return {"iters": it, "final_lr": lr_now, "errors": errors}


def zssr(lr: np.ndarray, scale: int, downscale: Downscaler | None = None, *,
         cfg: ZSSRConfig | None = None, info: dict | None = None,
         make_net: Callable[[], nn.Module] | None = None) -> np.ndarray:
    """Zero-shot SR of `lr` by `scale`; `downscale` is the protocol's HR->LR map at `scale`
    (None: MATLAB bicubic). Fills `info` with iterations and timings if given. `make_net`
    swaps ZSSR's network for another [0, 1] -> [0, 1] image model (benchmarks/net_swap.py)."""
    cfg = cfg or ZSSRConfig()
    rng = np.random.default_rng(cfg.seed)
    lr = np.asarray(lr, np.float64)
    bicubic_down = downscale is None
    steps = [scale]
    if bicubic_down and cfg.gradual and scale > 2:
        steps = sorted({2 ** k for k in range(1, int(math.log2(scale)) + 1) if 2 ** k < scale} | {scale})
    sources = [lr]
    out = None
    t0 = time.perf_counter()
    for i, sf in enumerate(steps):
        down = (lambda x, sf=sf: imresize(x, 1.0 / sf)) if bicubic_down or sf != scale else downscale
        trainer = _ZSSRTrainer(sources, sf, down, replace(cfg, seed=cfg.seed + i), rng, make_net)
        stats = trainer.fit(lr)
        out = trainer.predict(lr, _up_size(lr, sf))
        size = _up_size(lr, sf)
        for _ in range(cfg.back_projection_iters):
            out = np.clip(out + imresize(lr - down(out), size=size), 0, 1)
        sources.append(out)
        if info is not None:
            info.setdefault("stages", []).append({"scale": sf, **{k: v for k, v in stats.items() if k != "errors"}})
    if info is not None:
        info["seconds"] = time.perf_counter() - t0
    return out


METHODS = ("bicubic", "lanczos", "ibp", "zssr")
