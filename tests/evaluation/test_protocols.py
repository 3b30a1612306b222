"""MATLAB-style bicubic imresize, the LR protocols, Y conversion and border shaving."""

import numpy as np
import pytest

from sr_core.evaluation.metrics import psnr_y, rgb_to_y, shave
from sr_core.evaluation.protocols import cubic, imresize, make_lr, mod_crop, quantize8, resize_matrix


def test_cubic_kernel_values():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])
    expected = [1.0, 0.8671875, 0.5625, 0.2265625, 0.0, -0.0703125, -0.0625, -0.0234375, 0.0, 0.0]
    np.testing.assert_allclose(cubic(x), expected, atol=1e-12)
    np.testing.assert_allclose(cubic(-x), expected, atol=1e-12)


def test_upscale_x2_interior_weights():
    # Output pixel centres fall at +-0.25 of an input pixel: the classic 4 bicubic weights.
    m = resize_matrix(8, 16)
    row = m[7]
    nz = sorted(np.round(row[row != 0], 10))
    assert nz == sorted([-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    np.testing.assert_allclose(m.sum(axis=1), 1.0)


def test_downscale_4_to_2_by_hand():
    # Antialiased kernel 0.5 * cubic(x / 2) over 8 taps at u = 1.5, mirrored at the borders:
    # weights 0.43359375 (+-0.5), 0.11328125 (+-1.5), -0.03515625 (+-2.5), -0.01171875 (+-3.5).
    m = resize_matrix(4, 2)
    np.testing.assert_allclose(m[0], [0.546875, 0.3984375, 0.1015625, -0.046875], atol=1e-12)
    np.testing.assert_allclose(m[1], m[0][::-1], atol=1e-12)
    img = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = m @ img @ m.T
    np.testing.assert_allclose(imresize(img, 0.5), expected, atol=1e-12)
    # A ramp 0..3 goes to 0.4609375 and 2.5390625 (not the box average 0.5, 2.5).
    np.testing.assert_allclose(imresize(np.arange(4.0)[None, :].repeat(4, 0), 0.5)[0], [0.4609375, 2.5390625])


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    img = np.full((12, 18, 3), 0.37)
    out = imresize(img, scale)
    assert out.shape[:2] == (int(np.ceil(12 * scale)), int(np.ceil(18 * scale)))
    np.testing.assert_allclose(out, 0.37, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 0.25, 2.0])
def test_interior_matches_pil_bicubic(scale):
    # PIL's bicubic uses the same kernel (a = -0.5), alignment and antialiasing; only the
    # borders differ (PIL renormalises, MATLAB mirrors).
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.random((40, 48)).astype(np.float32)
    out = imresize(img, scale)
    h, w = out.shape
    pil = np.asarray(Image.fromarray(img, mode="F").resize((w, h), Image.BICUBIC))
    m = int(np.ceil(4 * max(1, 1 / scale)))
    np.testing.assert_allclose(out[m:-m, m:-m], pil[m:-m, m:-m], atol=1e-4)


def test_rgb_to_y_and_shave():
    assert rgb_to_y(np.ones(3)) == pytest.approx(235.0)
    assert rgb_to_y(np.zeros(3)) == pytest.approx(16.0)
    assert rgb_to_y(np.array([1.0, 0, 0])) == pytest.approx(81.481)
    a = np.zeros((10, 12, 3))
    assert shave(a, 3).shape == (4, 6, 3)
    assert shave(a, 0).shape == a.shape
    # A corrupted border must not count once shaved.
    gt = np.full((16, 16, 3), 0.5)
    sr = gt.copy()
    sr[:2] = 0
    assert psnr_y(sr, gt, border=2) == float("inf")
    assert psnr_y(sr, gt, border=1) < 20


def test_bicubic_protocol_shapes_and_quantisation():
    hr = np.random.default_rng(1).random((50, 47, 3))
    case = make_lr(hr, 4, "bicubic")
    assert case.hr.shape == (48, 44, 3) and case.lr.shape == (12, 11, 3)
    np.testing.assert_array_equal(case.lr, quantize8(case.lr))
    assert mod_crop(hr, 3).shape == (48, 45, 3)


def test_realistic_protocol_is_seeded_and_degraded():
    hr = np.random.default_rng(2).random((64, 64, 3))
    a = make_lr(hr, 2, "realistic", name="img")
    b = make_lr(hr, 2, "realistic", name="img")
    c = make_lr(hr, 2, "realistic", name="other")
    np.testing.assert_array_equal(a.lr, b.lr)
    assert not np.array_equal(a.lr, c.lr)
    assert a.lr.shape == (32, 32, 3)
    clean = make_lr(hr, 2, "bicubic").lr
    assert np.abs(a.lr - clean).mean() > 0.01  # blur + noise + JPEG change it
    k = a.info["kernel"]
    assert k.sum() == pytest.approx(1.0) and k.shape == (21, 21)
    with pytest.raises(ValueError):
        make_lr(hr, 2, "nope")
