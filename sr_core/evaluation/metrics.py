"""Fidelity metrics by the field's protocol (docs/method.md): PSNR/SSIM on Y, border shaved."""

from __future__ import annotations

import numpy as np

from sr_core.errors import UserError


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on the 16-235 scale from RGB in [0, 1] (MATLAB's rgb2ycbcr)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def _pair(sr: np.ndarray, gt: np.ndarray) -> None:
    if sr.shape != gt.shape:
        raise UserError(f"result {sr.shape[1]}x{sr.shape[0]} and ground truth {gt.shape[1]}x{gt.shape[0]} differ in size")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def psnr_y(sr: np.ndarray, gt: np.ndarray, border: int = 0) -> float:
    """PSNR of the Y channel (0-255 scale) with `border` pixels shaved."""
    _pair(sr, gt)
    return psnr(shave(rgb_to_y(sr), border), shave(rgb_to_y(gt), border), 255.0)


def ssim_y(sr: np.ndarray, gt: np.ndarray, border: int = 0) -> float:
    """SSIM of the Y channel: 11x11 Gaussian window, sigma 1.5, constants of Wang et al."""
    from skimage.metrics import structural_similarity

    _pair(sr, gt)
    a, b = shave(rgb_to_y(sr), border), shave(rgb_to_y(gt), border)
    return float(
        structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
    )


def psnr_rgb(sr: np.ndarray, gt: np.ndarray, border: int = 0) -> float:
    _pair(sr, gt)
    return psnr(shave(sr, border) * 255.0, shave(gt, border) * 255.0, 255.0)


def color_shift(sr: np.ndarray, gt: np.ndarray) -> float:
    """Largest per-channel difference of the mean colour, in grey levels (0-255)."""
    _pair(sr, gt)
    diff = np.asarray(sr, np.float64).mean(axis=(0, 1)) - np.asarray(gt, np.float64).mean(axis=(0, 1))
    return float(255.0 * diff[np.argmax(np.abs(diff))])


def evaluate(sr: np.ndarray, gt: np.ndarray, *, border: int = 0) -> dict[str, float]:
    """All fidelity metrics of one result against its ground truth."""
    return {
        "psnr_y": psnr_y(sr, gt, border),
        "ssim_y": ssim_y(sr, gt, border),
        "psnr_rgb": psnr_rgb(sr, gt, border),
        "color_shift": color_shift(sr, gt),
    }
