"""Tiled denoising: bounded memory for any output size, with no seams by construction.

The denoiser is fully convolutional with a finite receptive field, so evaluating it on a
tile plus a margin at least that wide, and keeping only the tile's centre, gives the same
numbers as evaluating the whole image. Tiling is applied to every model call inside the
reverse diffusion; the diffusion state (x_t, y, the noise field) stays whole, so tiles
share one noise field and cannot disagree at their borders.
"""

from __future__ import annotations

import math

import torch

BYTES_PER_PIXEL = 2048  # measured peak of NextNet's forward pass is well below this


def receptive_radius(model: torch.nn.Module) -> int:
    """How far (pixels) an output pixel of the denoiser can see (`ModelConfig.receptive_radius`)."""
    cfg = getattr(model, "cfg", None)
    return 0 if cfg is None else cfg.receptive_radius()


def free_memory(device: torch.device) -> int:
    """Bytes free for activations on `device` (CUDA: driver's count; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3  # unknown (macOS, Windows): assume a modest machine


# On a CPU, large untiled calls fall out of cache: an x2 step to 1024^2 ran at 0.018 MP/s
# untiled against 0.034 MP/s in 256-px tiles, while 512^2 untiled ran at 0.039 MP/s
# (benchmarks/speed.py, 2-core CPU). So CPU calls are tiled above this side.
CPU_TILE = 512


# On a GPU a 2048^2 call already fills the chip; larger calls only raise the memory peak.
# Capping calls there keeps GPU memory set by the tile, not the image (docs/performance.md).
GPU_TILE = 2048
# Up to this many output pixels the diffusion state (about 100 bytes a pixel) stays on the
# GPU while the model runs in tiles; beyond it the state moves to host memory, so GPU memory
# stays bounded by the tile whatever the output size (at some cost in speed).
GPU_STATE_PIXELS = 4096 * 4096


def state_on_host(device: torch.device, pixels: int, tile: int) -> bool:
    """Whether a tiled plan step should keep its whole-image tensors in host memory."""
    return tile > 0 and device.type != "cpu" and pixels > GPU_STATE_PIXELS


def auto_tile(device: torch.device, pixels: int, *, fraction: float = 0.25) -> int:
    """0 if the whole image is best run at once, else a tile side that fits free memory."""
    budget = free_memory(device) * fraction
    fits = int(math.sqrt(budget / BYTES_PER_PIXEL)) // 16 * 16
    cap = CPU_TILE if device.type == "cpu" else GPU_TILE
    if pixels > cap * cap:
        return max(64, min(cap, fits))
    if pixels * BYTES_PER_PIXEL <= budget:
        return 0
    return max(64, min(cap, fits))


class TiledDenoiser:
    """Wraps a denoiser so each call runs tile by tile on `device`; inputs may live elsewhere."""

    def __init__(self, model: torch.nn.Module, tile: int, device: torch.device, *, margin: int | None = None):
        self.model = model
        self.tile = int(tile)
        self.device = torch.device(device)
        self.margin = receptive_radius(model) + 2 if margin is None else int(margin)
        self.calls = 0  # tiles evaluated (for tests and benchmarks)

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, w = x_t.shape[-2:]
        dev, tile, m = self.device, self.tile, self.margin
        if tile <= 0 or (h <= tile and w <= tile):
            self.calls += 1
            return self.model(x_t.to(dev), y.to(dev), t.to(dev)).to(x_t.device)
        out = torch.empty_like(x_t)
        t_dev = t.to(dev)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                bottom, right = min(h, top + tile), min(w, left + tile)
                t0, l0 = max(0, top - m), max(0, left - m)
                b1, r1 = min(h, bottom + m), min(w, right + m)
                pred = self.model(x_t[..., t0:b1, l0:r1].to(dev), y[..., t0:b1, l0:r1].to(dev), t_dev)
                out[..., top:bottom, left:right] = pred[..., top - t0 : bottom - t0, left - l0 : right - l0].to(out.device)
                self.calls += 1
        return out
