"""LR synthesis protocols for benchmarks, and MATLAB-compatible bicubic ``imresize``.

``imresize`` follows MATLAB's ``imresize(..., 'bicubic')``: Keys cubic kernel (a = -0.5),
pixel-centre alignment ``u = x / s + 0.5 * (1 - 1 / s)``, the kernel stretched by 1 / s when
shrinking (antialiasing), symmetric (mirror) border handling, and each axis resized on its
own, the more strongly shrunk one first. The SR field's ``bicubic`` protocol (Set5 33.66 dB
at x2) is defined with this function, not with PIL's or torch's bicubic.

Protocols (``make_lr``) take an HR image (H x W x 3, floats in [0, 1]), crop it to a multiple
of the scale and return the 8-bit-quantised LR image plus the HR crop:

* ``bicubic``: ``LR = round8(imresize(HR, 1 / s))``.
* ``realistic``: a fixed recipe, seeded by the image name and scale so every method sees the
  same LR: anisotropic Gaussian blur (21 x 21, sigma_x, sigma_y ~ U(0.3 s, 0.6 s), rotation
  ~ U(0, pi)), bicubic sampling at the LR pixel centres (no further antialiasing), Gaussian
  noise of sigma 3 grey levels per channel, 8-bit quantisation, JPEG quality 80 (OpenCV).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

PROTOCOLS = ("bicubic", "realistic")
REALISTIC_NOISE_SIGMA = 3.0  # grey levels (0-255)
REALISTIC_JPEG_QUALITY = 80
REALISTIC_KERNEL_SIZE = 21


# ----------------------------------------------------------------- MATLAB imresize
def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and OpenCV's bicubic)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def resize_matrix(in_len: int, out_len: int, scale: float | None = None, *, antialias: bool = True) -> np.ndarray:
    """The (out_len x in_len) matrix that resizes one axis like MATLAB's imresize."""
    scale = out_len / in_len if scale is None else float(scale)
    width = 4.0
    kernel: Callable[[np.ndarray], np.ndarray] = cubic
    if scale < 1 and antialias:
        width = width / scale
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output pixel
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    # Mirror the out-of-range taps (MATLAB's symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...).
    period = 2 * in_len
    m = np.mod(idx - 1, period)
    src = np.where(m < in_len, m, period - 1 - m).astype(np.int64)
    mat = np.zeros((out_len, in_len))
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, src.ravel()), weights.ravel())
    return mat


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB-style bicubic resize of an H x W (x C) float image, by `scale` or to `size` (h, w).

    No clipping or rounding: callers decide (MATLAB rounds uint8 outputs).
    """
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape[:2]
    if size is None:
        if scale is None:
            raise ValueError("give a scale or a size")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        sh = sw = float(scale)
    else:
        size = (int(size[0]), int(size[1]))
        sh, sw = size[0] / h, size[1] / w
    mh = resize_matrix(h, size[0], sh, antialias=antialias)
    mw = resize_matrix(w, size[1], sw, antialias=antialias)
    # Separable resize: the order only matters through rounding; keep MATLAB's (smaller scale first).
    if sh <= sw:
        out = np.tensordot(mh, img, axes=(1, 0))
        out = np.moveaxis(np.tensordot(mw, out, axes=(1, 1)), 0, 1)
    else:
        out = np.moveaxis(np.tensordot(mw, img, axes=(1, 1)), 0, 1)
        out = np.tensordot(mh, out, axes=(1, 0))
    return out


def quantize8(img: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels and clip to [0, 1] (what saving as PNG does)."""
    return np.clip(np.round(np.asarray(img, np.float64) * 255.0), 0, 255) / 255.0


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of `scale`."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


# ------------------------------------------------------------------------ protocols
def _seed(name: str, scale: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}|x{scale}".encode()).digest()[:8], "little")


def realistic_kernel(scale: int, rng: np.random.Generator, size: int = REALISTIC_KERNEL_SIZE) -> np.ndarray:
    """The anisotropic Gaussian blur of the `realistic` protocol, normalised to sum 1."""
    sx, sy = rng.uniform(0.3 * scale, 0.6 * scale, size=2)
    theta = rng.uniform(0, math.pi)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with `kernel`, mirrored borders."""
    from scipy.ndimage import correlate

    img = np.asarray(img, np.float64)
    if img.ndim == 2:
        return correlate(img, kernel, mode="mirror")
    return np.stack([correlate(img[..., c], kernel, mode="mirror") for c in range(img.shape[2])], axis=-1)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    arr = (quantize8(img) * 255).astype(np.uint8)[:, :, ::-1]
    ok, buf = cv2.imencode(".jpg", arr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float64) / 255.0


@dataclass
class LRCase:
    """One synthesised input: the LR image, its HR crop and the protocol's (noise-free) downscaler."""

    lr: np.ndarray
    hr: np.ndarray
    scale: int
    protocol: str
    downscale: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    info: dict = field(default_factory=dict)


def downscaler(protocol: str, scale: int, *, kernel: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The protocol's deterministic degradation HR -> LR (without noise and JPEG)."""
    if protocol == "bicubic":
        return lambda x: imresize(x, 1.0 / scale)
    if protocol == "realistic":
        if kernel is None:
            raise ValueError("the realistic downscaler needs its blur kernel")
        return lambda x: imresize(blur(x, kernel), 1.0 / scale, antialias=False)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def make_lr(hr: np.ndarray, scale: int, protocol: str, *, name: str = "") -> LRCase:
    """Synthesise the LR input of `protocol` for an HR image (H x W x 3 floats in [0, 1])."""
    scale = int(scale)
    hr = mod_crop(np.asarray(hr, np.float64), scale)
    if protocol == "bicubic":
        down = downscaler("bicubic", scale)
        return LRCase(quantize8(down(hr)), hr, scale, protocol, down)
    if protocol == "realistic":
        rng = np.random.default_rng(_seed(name, scale))
        kernel = realistic_kernel(scale, rng)
        down = downscaler("realistic", scale, kernel=kernel)
        lr = down(hr)
        lr = lr + rng.normal(0.0, REALISTIC_NOISE_SIGMA / 255.0, size=lr.shape)
        lr = jpeg_roundtrip(quantize8(lr), REALISTIC_JPEG_QUALITY)
        return LRCase(lr, hr, scale, protocol, down, info={"kernel": kernel})
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
