"""Blind detection of JPEG compression in a decoded image.

A JPEG stores each 8 x 8 block's DCT coefficients rounded to multiples of a quantiser step;
decoding and rounding to 8 bits moves them by only a fraction of a grey level, so in a
decoded JPEG the block DCT coefficients still sit near multiples of their steps (Fan & de
Queiroz, IEEE TIP 2003, identify compression history from this). Uncompressed images show
no such lattice. The test works on pixels alone, whatever the encoder's tables, and does not
confuse texture with compression the way noise estimates do (docs/decisions.md): it looks
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
_SEARCH_BLOCKS = 1_000  # per grid placement while searching for a crop's grid


@dataclass
class JpegEvidence:
    """The verdict and what it rests on."""

    detected: bool
    steps: dict[tuple[int, int], int] = field(default_factory=dict)  # (row, col) frequency -> step, zigzag order
    z: dict[tuple[int, int], float] = field(default_factory=dict)  # frequency -> strongest lattice score
    blocks: int = 0
    offset: tuple[int, int] = (0, 0)  # (row, column) where the 8 x 8 grid starts: not (0, 0) in a crop

    def describe(self) -> str:
        if not self.detected:
            return "no JPEG compression detected"
        shown = ", ".join(str(q) for q in list(self.steps.values())[:4])  # lowest frequencies first
        grid = f", its 8x8 grid at offset {self.offset}: a crop" if self.offset != (0, 0) else ""
        return f"JPEG compression detected (quantiser steps {shown} on the lowest frequencies{grid})"


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


def best_step(values: np.ndarray, *, dc: bool) -> tuple[float, int]:
    """The quantiser step at which `values` cluster most strongly, and how strongly (a z-score).

    For a step q the mean of cos(2 pi v / q) is about 0 +- 1/sqrt(2n) for values spread over
    many steps and near 1 on a lattice. AC values within half a step of 0 are left out: a
    smooth image puts most of them there, which would read as a lattice. A lattice of step q
    is one of q/2 and q/3 too, but the rounding noise costs a smaller step more, so the
    strongest score is at the step itself. Returns (0, 0) where no step scores above 0.
    """
    q = _STEPS[:, None].astype(np.float64)
    used = np.ones((len(_STEPS), values.size), bool) if dc else np.abs(values)[None, :] > q / 2
    n = used.sum(1)
    mean = np.where(used, np.cos(2 * np.pi * values[None, :] / q), 0.0).sum(1) / np.maximum(n, 1)
    z = np.where(n >= _MIN_VALUES, mean * np.sqrt(2 * n), 0.0)
    for i in np.argsort(-z, kind="stable"):
        if z[i] <= 0:
            break
        # A lattice needs several of its points filled: values gathered round one or two
        # points (a repeated pattern with a little noise) fit a step of any size that divides them.
        if np.unique(np.round(values[used[i]] / q[i, 0])).size >= _MIN_POINTS:
            return float(z[i]), int(_STEPS[i])
    return 0.0, 0


def _evidence_at(x: np.ndarray, dy: int, dx: int, max_blocks: int, freqs=_COEFFS) -> JpegEvidence:
    """The test on the 8 x 8 grid that starts at row `dy`, column `dx`, at frequencies `freqs`."""
    hb, wb = (x.shape[0] - dy) // 8, (x.shape[1] - dx) // 8
    if hb <= 0 or wb <= 0:
        return JpegEvidence(False, offset=(dy, dx))
    stride = max(1, math.ceil(math.sqrt(hb * wb / max_blocks)))
    rows = dy + (np.arange(0, hb, stride)[:, None] * 8 + np.arange(8)).ravel()
    cols = dx + (np.arange(0, wb, stride)[:, None] * 8 + np.arange(8)).ravel()
    y = _luma(x[np.ix_(rows, cols)])  # whole blocks only, every `stride`-th: bounded memory on huge images
    nby, nbx = y.shape[0] // 8, y.shape[1] // 8
    blocks = y.reshape(nby, 8, nbx, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8) - 128.0
    d = _dct8()
    coeffs = d @ blocks @ d.T  # each block's 2-D DCT
    z, steps = {}, {}
    for u, v in freqs:
        # Distinct values only: a repeated block (a flat or tiled region) would otherwise
        # stack one value many times and look like a lattice of any step it happens to fit.
        score, step = best_step(np.unique(np.round(coeffs[:, u, v], 6)), dc=(u, v) == (0, 0))
        z[(u, v)] = score
        if score >= Z_THRESHOLD:
            steps[(u, v)] = step
    return JpegEvidence(len(steps) >= MIN_COEFFS, steps, z, len(blocks), (dy, dx))


def jpeg_evidence(img: np.ndarray, *, search_grid: bool = True) -> JpegEvidence:
    """Test an H x W (x C) image in [0, 1] for JPEG compression.

    First on the grid a decoder lays out (from the top-left corner); failing that, with
    `search_grid`, on the 63 other placements of an 8 x 8 grid, so a JPEG cropped at any
    offset is found too (each placement on a sample of blocks and the 4 lowest frequencies,
    the best one confirmed on all). A JPEG resized after decoding has no grid left and is not detected.
    """
    x = np.asarray(img)
    found = _evidence_at(x, 0, 0, _MAX_BLOCKS)
    if found.detected or not search_grid:
        return found
    best, best_key = None, (0, 0.0)
    for dy in range(8):
        for dx in range(8):
            if dy or dx:
                e = _evidence_at(x, dy, dx, _SEARCH_BLOCKS, _COEFFS[:4])
                key = (len(e.steps), sum(e.z.values()))
                if key > best_key:
                    best, best_key = (dy, dx), key
    if best is not None and best_key[0] >= MIN_COEFFS:
        confirmed = _evidence_at(x, *best, _MAX_BLOCKS)
        if confirmed.detected:
            return confirmed
    return found
