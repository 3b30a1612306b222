"""Every metric against numbers it did not compute itself.

Closed forms worked by hand (PSNR-Y, SSIM-Y, MATLAB's imresize), published protocol values
(Set5), and values from other implementations run once in a throwaway environment (NIQE:
BasicSR; the offline perceptual distance: the stlpips-pytorch package's own model). How each
reference number was made is in REFERENCES.md beside this file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sr_core.evaluation.metrics import psnr_y, ssim_y
from sr_core.evaluation.protocols import imresize, make_lr, quantize8

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SET5 = ROOT.parent / "shared" / "benchmarks" / "Set5"


def grey_for_y(y):
    """The RGB grey whose BT.601 luma is `y` (16-235): the weights sum to 219."""
    return (np.asarray(y, np.float64) - 16.0) / 219.0


def grey_image(y, shape=(32, 40)):
    return np.repeat(grey_for_y(np.broadcast_to(y, shape))[..., None], 3, axis=2)


def photo(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(DATA / f"{name}_crop.png").convert("RGB"), np.float32) / 255


# ------------------------------------------------------------------------------- PSNR-Y
def test_psnr_y_closed_forms():
    gt = grey_image(120.0)
    # Every Y value off by 5: MSE 25, PSNR = 20 log10(255 / 5) = 20 log10(51).
    assert psnr_y(grey_image(125.0), gt) == pytest.approx(34.151403521958725, abs=1e-9)
    # Half the pixels off by 10 (the other half exact): MSE 50, PSNR = 10 log10(65025 / 50).
    half = np.where(np.arange(40)[None, :] < 20, 130.0, 120.0) * np.ones((32, 1))
    assert psnr_y(grey_image(half), gt) == pytest.approx(31.141103565318918, abs=1e-9)
    # Red channel alone raised by 0.1: Y moves by 65.481 * 0.1 = 6.5481.
    red = gt.copy()
    red[..., 0] += 0.1
    assert psnr_y(red, gt) == pytest.approx(31.808497545388143, abs=1e-9)  # 20 log10(255 / 6.5481)
    # Only the shaved border is wrong: with 2 pixels shaved the images are identical.
    framed = grey_image(125.0)
    framed[2:-2, 2:-2] = gt[2:-2, 2:-2]
    assert psnr_y(framed, gt, border=2) == float("inf")
    # With 1 shaved, 30 x 38 pixels remain, of which the outer ring of 30*38 - 28*36 = 132 is off by 5.
    assert psnr_y(framed, gt, border=1) == pytest.approx(10 * math.log10(255**2 * 1140 / (25 * 132)), abs=1e-9)


# ------------------------------------------------------------------------------- SSIM-Y
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # Wang et al.'s constants for 8-bit data


@pytest.mark.parametrize("mx,my", [(100.0, 110.0), (50.0, 200.0), (128.0, 128.0)])
def test_ssim_y_of_flat_images_is_the_luminance_term(mx, my):
    # No variance anywhere: SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1), e.g. 100 vs 110:
    # (22000 + 6.5025) / (22100 + 6.5025) = 0.99547644...
    expected = {(100.0, 110.0): 0.9954764440915066, (50.0, 200.0): 0.47066922290301344, (128.0, 128.0): 1.0}[(mx, my)]
    assert ssim_y(grey_image(my), grey_image(mx)) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("b", [10.0, -20.0])
def test_ssim_y_of_checkerboards_is_the_contrast_structure_term(b):
    # A one-pixel checkerboard m +- a has (to ~1e-5) the same local mean m and variance a^2
    # under any smooth window, so against m +- b on the same squares SSIM is
    # (2ab + C2) / (a^2 + b^2 + C2): a = 20, b = 10 gives 458.5225 / 558.5225 = 0.82096...;
    # b = -20 (inverted) gives (-800 + C2) / (800 + C2) = -0.86367...
    sign = np.where((np.arange(48)[:, None] + np.arange(48)[None, :]) % 2 == 0, 1.0, -1.0)
    expected = {10.0: 0.8209561835020074, -20.0: -0.8636669394220885}[b]
    assert ssim_y(grey_image(128 + b * sign, (48, 48)), grey_image(128 + 20 * sign, (48, 48))) == pytest.approx(
        expected, abs=1e-4)


@pytest.mark.skipif(not SET5.is_dir(), reason=f"Set5 not found at {SET5} (../shared/benchmarks is outside the repo)")
@pytest.mark.parametrize("scale,psnr_ref,ssim_ref", [(2, 33.66, 0.9299), (4, 28.42, 0.8104)])
def test_bicubic_set5_matches_published_values(scale, psnr_ref, ssim_ref):
    """Published bicubic baselines (MATLAB imresize, Y channel, `scale` pixels shaved).

    Ours: x2 33.68 dB / 0.9305, x4 28.43 dB / 0.8113 (the published SSIM comes from MATLAB's
    ssim code, whose window and rounding differ slightly). A tolerance of 0.002 accepts that
    and still catches an SSIM off by 3% (0.97 x 0.9305 = 0.903); 0.05 dB does the same for PSNR.
    """
    from sr_core.runtime.io import load_image

    psnrs, ssims = [], []
    for path in sorted(SET5.glob("*.png")):
        case = make_lr(load_image(path).rgb.astype(np.float64), scale, "bicubic")
        up = quantize8(imresize(case.lr, scale))  # MATLAB returns a uint8 image here
        psnrs.append(psnr_y(up, case.hr, scale))
        ssims.append(ssim_y(up, case.hr, scale))
    assert len(psnrs) == 5
    assert np.mean(psnrs) == pytest.approx(psnr_ref, abs=0.05)
    assert np.mean(ssims) == pytest.approx(ssim_ref, abs=0.002)


# ------------------------------------------------------------------------------------ NIQE
def _mirrored_2x2(img):
    return np.concatenate([np.concatenate([img, img[:, ::-1]], 1), np.concatenate([img[::-1], img[::-1, ::-1]], 1)], 0)


# BasicSR 1.4.2's basicsr/metrics/niqe.py (calculate_niqe, crop_border=0, convert_to='y') on
# the same pixels (REFERENCES.md). A 128 x 128 photo is one 96 x 96 block, for which
# BasicSR's covariance of one row is NaN (it raises), so the photos are tiled: mirrored 2 x 2
# (256 x 256, 4 blocks) and all three side by side (128 x 384, 4 blocks).
NIQE_BASICSR = {
    "astronaut mirrored 2x2": 4.055879711858625,
    "chelsea mirrored 2x2": 3.278100848188949,
    "coffee mirrored 2x2": 7.795131605568499,
    "all three side by side": 3.5480069745723117,
}


def test_niqe_matches_basicsr_on_the_bundled_photos():
    from sr_core.evaluation.niqe import niqe

    photos = {n: photo(n).astype(np.float64) for n in ("astronaut", "chelsea", "coffee")}
    images = {f"{n} mirrored 2x2": _mirrored_2x2(img) for n, img in photos.items()}
    images["all three side by side"] = np.concatenate(list(photos.values()), axis=1)
    ours = {name: niqe(img) for name, img in images.items()}
    print("NIQE ours vs BasicSR:", {n: (round(ours[n], 4), round(NIQE_BASICSR[n], 4)) for n in ours})
    # Measured differences: at most 0.0016 (astronaut: float rounding in flat areas).
    for name, ref in NIQE_BASICSR.items():
        assert ours[name] == pytest.approx(ref, abs=0.05), name


# ------------------------------------------------------------------ offline perceptual distance
def _box3(img):
    """3 x 3 mean with edge-replicated borders (the same few lines made the reference pair)."""
    p = np.pad(img.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    return (sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9).astype(np.float32)


def _perceptual_pairs():
    a, c, k = photo("astronaut"), photo("chelsea"), photo("coffee")
    return {
        "astronaut vs chelsea 64x64": (a[:64, :64], c[:64, :64]),
        "coffee shifted by (2, -1)": (k[32:96, 32:96], k[34:98, 31:95]),
        "chelsea 48x80 vs its 3x3 box blur": (c[10:58, 20:100], _box3(c[10:58, 20:100])),
        "astronaut vs astronaut**1.5": (a[64:128, 64:128], a[64:128, 64:128] ** 1.5),
    }


# stlpips_pytorch.stlpips.LPIPS(net=..., variant="shift_tolerant") of stlpips-pytorch 0.0.2,
# its own network code and weights (REFERENCES.md), on inputs 2 * image - 1.
STLPIPS_REFERENCE = {
    "alex": {"astronaut vs chelsea 64x64": 0.4615660, "coffee shifted by (2, -1)": 0.0183861,
             "chelsea 48x80 vs its 3x3 box blur": 0.1457130, "astronaut vs astronaut**1.5": 0.0282377},
    "vgg": {"astronaut vs chelsea 64x64": 0.4786745, "coffee shifted by (2, -1)": 0.0549966,
            "chelsea 48x80 vs its 3x3 box blur": 0.1952475, "astronaut vs astronaut**1.5": 0.0511313},
}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_offline_perceptual_distance_matches_the_stlpips_package(net):
    from sr_core.method import lpips_offline

    try:
        lpips_offline.weights_path(net)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    for name, (x, y) in _perceptual_pairs().items():
        assert lpips_offline.distance(x, y, net=net) == pytest.approx(STLPIPS_REFERENCE[net][name], abs=1e-4), name


# ------------------------------------------------------------------------ MATLAB imresize
def _keys(d: float) -> float:
    """Keys' cubic convolution kernel, a = -0.5."""
    d = abs(d)
    if d <= 1:
        return 1.5 * d**3 - 2.5 * d**2 + 1
    if d < 2:
        return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    return 0.0


def _mirror(j: int, n: int) -> int:
    """MATLAB's symmetric padding of a 1-based index: ... 2 1 | 1 2 ... n | n n-1 ..."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _matlab_weights(n_in: int, n_out: int, s: float) -> np.ndarray:
    """Row x = the weights of output pixel x, from MATLAB's definition, one pixel at a time."""
    out = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):
        u = x / s + 0.5 * (1 - 1 / s)  # the output pixel's centre in input pixels (1-based)
        if s < 1:  # shrinking: the kernel is widened by 1/s (and scaled to keep its area)
            kernel, reach = (lambda d: s * _keys(s * d)), 2 / s
        else:
            kernel, reach = _keys, 2
        taps = [(j, kernel(u - j)) for j in range(math.floor(u - reach), math.ceil(u + reach) + 1)]
        total = sum(w for _, w in taps)
        for j, w in taps:
            out[x - 1, _mirror(j, n_in) - 1] += w / total
    return out


def test_upscale_by_1_5_first_row_worked_by_hand():
    # 4 -> 6 pixels (s = 1.5): u = 1/1.5 + 0.5 (1 - 1/1.5) = 5/6. Taps j = -1, 0, 1, 2 at
    # distances 11/6, 5/6, -1/6, -7/6 have keys -5/432, 19/144, 15/16, -25/432 (sum 1). The
    # mirror sends j = 0 onto pixel 1 and j = -1 onto pixel 2:
    # [19/144 + 15/16, -25/432 - 5/432, 0, 0] = [1.069444, -0.069444, 0, 0].
    row = [19 / 144 + 15 / 16, -30 / 432, 0.0, 0.0]
    np.testing.assert_allclose(_matlab_weights(4, 6, 1.5)[0], row, atol=1e-12)
    ramp = np.tile(np.arange(4.0), (3, 1))  # 3 x 4, varying along the width
    out = imresize(ramp, size=(3, 6))
    assert out.shape == (3, 6)
    np.testing.assert_allclose(out[:, 0], -30 / 432, atol=1e-12)  # 0 * row[0] + 1 * row[1]


@pytest.mark.parametrize("shape,scale", [((7, 9), 0.75), ((10, 6), 1 / 3), ((5, 8), 2.5), ((6, 7), 1.3)])
def test_non_integer_scale_against_matlab_definition(shape, scale):
    # By `scale`, MATLAB maps with that scale (not out/in) and the size is ceil(in * scale).
    img = np.random.default_rng(3).random((*shape, 2))
    h, w = math.ceil(shape[0] * scale), math.ceil(shape[1] * scale)
    wh, ww = _matlab_weights(shape[0], h, scale), _matlab_weights(shape[1], w, scale)
    expected = np.einsum("ai,ijc,bj->abc", wh, img, ww)
    np.testing.assert_allclose(imresize(img, scale), expected, atol=1e-12)


@pytest.mark.parametrize("shape,size", [((4, 5), (6, 3)), ((9, 7), (4, 7)), ((8, 12), (11, 5))])
def test_size_path_against_matlab_definition(shape, size):
    # By `size`, each axis has its own scale out / in (one may grow while the other shrinks).
    img = np.random.default_rng(4).random(shape)
    wh = _matlab_weights(shape[0], size[0], size[0] / shape[0])
    ww = _matlab_weights(shape[1], size[1], size[1] / shape[1])
    np.testing.assert_allclose(imresize(img, size=size), wh @ img @ ww.T, atol=1e-12)
