"""Geometric self-ensemble: average the denoiser over the 8 rotations and flips of its input.

A photo's statistics barely change under a 90-degree turn or a mirror, but a network trained
on a few hundred batches is not exactly equivariant to them, so its errors differ between the
8 orientations. Turning each prediction back and averaging keeps what they agree on (EDSR's
and ZSSR's "x8" trick); here it is applied to the x0 prediction of every reverse step, so the
diffusion state itself stays in the original orientation.
"""

from __future__ import annotations

from typing import Callable

import torch

from sr_core.method.pairs import dihedral

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
TRANSFORMS = tuple(range(8))  # the dihedral group of the square, as indexed by `dihedral`


def undo_dihedral(img: torch.Tensor, k: int) -> torch.Tensor:
    """The exact inverse of `sr_core.method.pairs.dihedral(img, k)`: undo the flip, then the turn."""
    out = img.flip(-1) if k >= 4 else img
    return torch.rot90(out, -(k % 4), dims=(-2, -1))


class SelfEnsemble:
    """Wraps a denoiser ``model(x_t, y, t) -> x0`` so each call averages its 8 oriented copies.

    Costs 8 model calls per reverse step (8x the sampling time, same peak memory per call);
    with `last_steps` N only the last N reverse steps (step index t < N) are ensembled and
    earlier ones call the model once. Any H x W works: a quarter turn swaps height and
    width, and the denoiser is fully convolutional, so each copy is turned back before
    averaging.
    """

    def __init__(self, model: Denoiser, *, last_steps: int | None = None):
        self.model = model
        self.last_steps = last_steps
        self.calls = 0  # model evaluations (for tests and benchmarks)

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.last_steps is not None and int(t.max()) >= self.last_steps:
            self.calls += 1
            return self.model(x_t, y, t)
        total = None
        for k in TRANSFORMS:
            pred = undo_dihedral(self.model(dihedral(x_t, k), dihedral(y, k), t), k)
            self.calls += 1
            # Accumulate in place: only one oriented prediction is alive at a time.
            total = pred.clone() if total is None else total.add_(pred)
        return total / len(TRANSFORMS)
