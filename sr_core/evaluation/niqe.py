"""NIQE (Mittal, Soundararajan & Bovik 2013), following the MATLAB release's conventions.

No-reference: lower is better. The image's Y channel (BT.601, 16-235, rounded) is cut into
96 x 96 blocks; per block, 18 natural-scene statistics of the mean-subtracted, contrast-
normalised (MSCN) coefficients (generalised Gaussian shape/scale, and an asymmetric GGD fit
of the products with the four neighbours) at two scales (the second after a MATLAB-style
bicubic 0.5x resize) give a 36-D vector; the Mahalanobis-like distance between the
multivariate Gaussian of these vectors and that of pristine images is the score.

The pristine model (mean, covariance, 7x7 Gaussian window) is ``assets/niqe_pris_params.npz``
from BasicSR (Apache-2.0), itself converted from the MATLAB release's ``modelparameters.mat``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

from sr_core.evaluation.metrics import rgb_to_y
from sr_core.evaluation.protocols import imresize

PARAMS = Path(__file__).resolve().parent / "assets" / "niqe_pris_params.npz"
BLOCK = 96
_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))


@lru_cache(maxsize=1)
def pristine_params() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(PARAMS) as z:
        return z["mu_pris_param"].ravel(), z["cov_pris_param"], z["gaussian_window"]


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching: (shape, left scale, right scale)."""
    x = x.ravel()
    left = np.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else 0.0
    right = np.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        g = left / right
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return float(alpha), float(left * k), float(right * k)


def block_features(block: np.ndarray) -> list[float]:
    """The 18 NSS features of one block of MSCN coefficients."""
    alpha, bl, br = aggd_fit(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = block * np.roll(block, shift, axis=(0, 1))
        a, bl, br = aggd_fit(prod)
        mean = (br - bl) * gamma(2 / a) / gamma(1 / a)
        feats += [a, mean, bl, br]
    return feats


def niqe_gray(img: np.ndarray) -> float:
    """NIQE of a 2-D image on the 0-255 scale (at least 192 x 192 pixels)."""
    mu_p, cov_p, window = pristine_params()
    img = np.asarray(img, np.float64)
    h, w = img.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh < 1 or nw < 1:
        raise ValueError(f"NIQE needs at least {BLOCK}x{BLOCK} pixels, got {w}x{h}")
    img = img[: nh * BLOCK, : nw * BLOCK]
    per_scale = []
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(img**2, window, mode="nearest") - mu**2))
        mscn = (img - mu) / (sigma + 1)
        b = BLOCK // scale
        feats = [block_features(mscn[i * b:(i + 1) * b, j * b:(j + 1) * b]) for i in range(nh) for j in range(nw)]
        per_scale.append(np.array(feats))
        if scale == 1:
            img = imresize(img / 255.0, 0.5) * 255.0
    dist = np.concatenate(per_scale, axis=1)
    mu_d = np.nanmean(dist, axis=0)
    clean = dist[~np.isnan(dist).any(axis=1)]
    cov_d = np.cov(clean, rowvar=False) if len(clean) > 1 else np.zeros_like(cov_p)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))


def niqe(rgb: np.ndarray, *, border: int = 0) -> float:
    """NIQE of an RGB image in [0, 1] on its rounded Y channel (BasicSR's ``convert_to='y'``)."""
    y = rgb_to_y(np.asarray(rgb, np.float64)[..., :3])
    if border > 0:
        y = y[border:-border, border:-border]
    return niqe_gray(np.round(y))
