"""Blind detection of JPEG compression in a decoded image.

A JPEG stores each 8 x 8 block's DCT coefficients rounded to multiples of a quantiser step;
decoding and rounding to 8 bits moves them by only a fraction of a grey level, so in a
decoded JPEG the block DCT coefficients still sit near multiples of their steps (Fan & de
Queiroz, IEEE TIP 2003, identify compression history from this). Uncompressed images show
no such lattice. The test works on pixels alone, whatever the encoder's tables, and does not
confuse texture with compression the way noise estimates do (docs/ablations.md): it looks
for a lattice, not for energy.

Used by inference: a JPEG'd input's pixel-level detail is partly compression error, so its
back-projection keeps only the coarse content (`infer.jpeg_residual_blur`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# The lowest-frequency coefficients (zigzag order): the ones a JPEG quantises most finely
# and that natural images fill, so they carry most of the evidence.
_COEFFS = ((0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0))
_STEPS = np.arange(2, 41)  # quantiser steps tried; quality ~97 and up leaves steps of 1: harmless
_MIN_VALUES = 16  # fewer distinct coefficient values than this say nothing
_MIN_POINTS = 4  # lattice points that must be occupied
Z_THRESHOLD = 5.0  # per coefficient; under no compression z is about N(0, 1): max of 39 steps ~ 3
MIN_COEFFS = 2  # coefficients that must show a lattice
_MAX_BLOCKS = 40_000  # larger images: every k-th block row and column (the verdict needs far fewer)


@dataclass
class JpegEvidence:
    """The verdict and what it rests on."""

    detected: bool
    steps: dict[tuple[int, int], int] = field(default_factory=dict)  # (row, col) frequency -> step, zigzag order
    z: dict[tuple[int, int], float] = field(default_factory=dict)  # coefficient -> strongest lattice score
    blocks: int = 0

    def describe(self) -> str:
        if not self.detected:
            return "no JPEG compression detected"
        shown = ", ".join(str(q) for q in list(self.steps.values())[:4])  # lowest frequencies first
        return f"JPEG compression detected (quantiser steps {shown} on the lowest frequencies)"


def _dct8() -> np.ndarray:
    k = np.arange(8)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * 0.5
    m[0] /= np.sqrt(2)
    return m  # orthonormal: the DCT JPEG uses


def _luma(img: np.ndarray) -> np.ndarray:
    """Luma in grey levels (JPEG's YCbCr weights); a single channel is used as it is."""
    x = np.asarray(img, np.float64)
    if x.ndim == 3 and x.shape[2] >= 3:
        x = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    elif x.ndim == 3:
        x = x[..., 0]
    return 255.0 * x


def lattice_z(values: np.ndarray, step: int, *, dc: bool) -> float:
    """How strongly `values` cluster at multiples of `step`, as a z-score.

    The mean of cos(2 pi v / step) is about 0 +- 1/sqrt(2n) for values spread over many
    steps and near 1 on a lattice. AC values within half a step of 0 are left out: a
    smooth image puts most of them there, which would read as a lattice.
    """
    v = values if dc else values[np.abs(values) > step / 2]
    # A lattice needs several of its points filled: values gathered round one or two points
    # (a repeated pattern with a little noise) fit a step of any size that divides them.
    if v.size < _MIN_VALUES or np.unique(np.round(v / step)).size < _MIN_POINTS:
        return 0.0
    return float(np.mean(np.cos(2 * np.pi * v / step)) * np.sqrt(2 * v.size))


def jpeg_evidence(img: np.ndarray) -> JpegEvidence:
    """Test an H x W (x C) image in [0, 1] for JPEG compression on its own 8 x 8 grid.

    Blocks are taken from the top-left corner, as a decoder lays them out; a JPEG cropped
    off its grid or resized afterwards is not detected (and is then no longer JPEG-shaped).
    """
    x = np.asarray(img)
    hb, wb = x.shape[0] // 8, x.shape[1] // 8
    if hb == 0 or wb == 0:
        return JpegEvidence(False)
    stride = max(1, math.ceil(math.sqrt(hb * wb / _MAX_BLOCKS)))
    rows = (np.arange(0, hb, stride)[:, None] * 8 + np.arange(8)).ravel()
    cols = (np.arange(0, wb, stride)[:, None] * 8 + np.arange(8)).ravel()
    y = _luma(x[np.ix_(rows, cols)])  # whole blocks only, every `stride`-th: bounded memory on huge images
    nby, nbx = y.shape[0] // 8, y.shape[1] // 8
    blocks = y.reshape(nby, 8, nbx, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8) - 128.0
    d = _dct8()
    coeffs = np.einsum("ij,njk,lk->nil", d, blocks, d)
    z, steps = {}, {}
    for u, v in _COEFFS:
        # Distinct values only: a repeated block (a flat or tiled region) would otherwise
        # stack one value many times and look like a lattice of any step it happens to fit.
        values = np.unique(np.round(coeffs[:, u, v], 6))
        scores = [lattice_z(values, int(q), dc=(u, v) == (0, 0)) for q in _STEPS]
        # A lattice of step q is one of q/2 and q/3 too, but the rounding noise costs a
        # smaller step more: the strongest score is at the step itself.
        best = int(np.argmax(scores))
        z[(u, v)] = scores[best]
        if scores[best] >= Z_THRESHOLD:
            steps[(u, v)] = int(_STEPS[best])
    return JpegEvidence(len(steps) >= MIN_COEFFS, steps, z, len(blocks))
