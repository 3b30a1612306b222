import math

import pytest
import torch

from sr_core.config import DegradationConfig
from sr_core.method.degradation import (
    KERNEL_FAMILIES,
    bivariate_kernel,
    cubic_resize,
    degrade,
    filter2d,
    gaussian_noise,
    pad_kernel,
    poisson_noise,
    pseudo_pair,
    random_kernel,
    random_kernels,
    resize,
    sinc_kernel,
    usm_sharpen,
)


def all_families_cfg(family: str) -> DegradationConfig:
    cfg = DegradationConfig()
    cfg.kernel_probs = {name: float(name == family) for name in KERNEL_FAMILIES}
    return cfg


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
def test_every_kernel_family_is_normalised_and_padded(family):
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        k, info = random_kernel(all_families_cfg(family), g)
        assert info["family"] == family and info["size"] in (3, 5)
        assert k.shape == (7, 7)
        assert math.isclose(float(k.sum()), 1.0, abs_tol=1e-5)
        assert float(k[0].abs().sum()) == 0.0  # padding from 3 or 5 up to 7 is zeros


def test_anisotropic_kernel_is_rotated():
    k0 = bivariate_kernel(9, 2.0, 0.5, 0.0)
    k90 = bivariate_kernel(9, 2.0, 0.5, math.pi / 2)
    assert torch.allclose(k0.T, k90, atol=1e-6)
    assert float(k0[4, 0]) > float(k0[0, 4])  # wide along x


def test_sinc_kernel_peak_and_symmetry():
    k = sinc_kernel(7, math.pi / 2)
    assert int(k.argmax()) == 24 and torch.allclose(k, k.T) and torch.allclose(k, k.flip(0))


def test_filter2d_per_image_kernels():
    img = torch.rand(2, 3, 16, 16)
    ident = torch.zeros(7, 7)
    ident[3, 3] = 1
    box = torch.full((7, 7), 1 / 49)
    out = filter2d(img, torch.stack([ident, box]))
    assert torch.allclose(out[0], img[0], atol=1e-6)
    assert float(out[1].std()) < float(img[1].std())


def test_usm_sharpens_edges_and_keeps_flat_areas():
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert torch.allclose(usm_sharpen(flat), flat, atol=1e-6)
    step = torch.zeros(1, 3, 32, 32)
    step[..., 16:] = 0.8
    out = usm_sharpen(step * 0.5 + 0.1)
    assert float(out.max()) > 0.5 + 1e-3 and float(out.min()) < 0.1 - 1e-3  # overshoot at the edge


def test_degrade_is_seeded_and_keeps_shape_and_range():
    img = torch.rand(3, 3, 24, 30)
    cfg = DegradationConfig()
    a = degrade(img, cfg, torch.Generator().manual_seed(5))
    b = degrade(img, cfg, torch.Generator().manual_seed(5))
    c = degrade(img, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    assert a.image.shape == img.shape and a.image.min() >= 0 and a.image.max() <= 1
    assert torch.allclose(a.image * 255, (a.image * 255).round(), atol=1e-3)  # 8-bit quantized
    assert len(a.draws) == 3 and {"kernel", "noise", "up_mode"} <= set(a.draws[0])


def test_jpeg_is_applied_when_switched_on():
    cfg = DegradationConfig(jpeg_prob=1.0)
    out = degrade(torch.rand(2, 3, 32, 32), cfg, torch.Generator().manual_seed(0))
    assert all(70 <= d["jpeg_quality"] <= 95 for d in out.draws)


def test_noise_statistics():
    g = torch.Generator().manual_seed(0)
    n = gaussian_noise((2, 3, 64, 64), torch.tensor([2.0, 2.0]), torch.tensor([False, True]), g)
    assert abs(float(n[0].std()) * 255 - 2.0) < 0.1
    assert torch.equal(n[1, 0], n[1, 1])  # gray noise: the same on all channels
    assert not torch.equal(n[0, 0], n[0, 1])
    img = torch.full((1, 3, 64, 64), 0.5)
    p = poisson_noise(img, torch.tensor([1.0]), torch.tensor([False]), g)
    # Shot noise at 256 levels: std = sqrt(0.5 * 256) / 256.
    assert abs(float(p.std()) - math.sqrt(0.5 * 256) / 256) < 0.005


def test_pseudo_pair_ranges_and_scale_aware_mode():
    img = torch.rand(2, 3, 32, 32)
    g = torch.Generator().manual_seed(1)
    hr, lr = pseudo_pair(img, DegradationConfig(), g)
    assert hr.shape == lr.shape == img.shape
    assert hr.min() >= -1 and hr.max() <= 1 and lr.min() >= -1 and lr.max() <= 1
    hr2, lr2 = pseudo_pair(img, DegradationConfig(), g, down_factor=2.0, up_mode="bicubic")
    assert lr2.shape == img.shape
    # Halving and doubling loses far more detail than the paper's mild 0.8-1.0 resize.
    assert float((lr2 - hr2).abs().mean()) > float((lr - hr).abs().mean())


@pytest.mark.parametrize("family", KERNEL_FAMILIES)
def test_batched_kernels_match_the_one_by_one_kernels(family):
    """The vectorised kernel builder gives the numbers of bivariate_kernel / sinc_kernel + pad."""
    cfg = DegradationConfig(kernel_sizes=(3, 5, 7), kernel_pad_to=9, kernel_probs={family: 1.0},
                            blur_sigma=(0.3, 2.0))
    kernels, p = random_kernels(cfg, torch.Generator().manual_seed(3), 12)
    assert kernels.shape == (12, 9, 9)
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(12), atol=1e-5)
    for i in range(12):
        size = int(p["size"][i])
        if family == "sinc":
            ref = sinc_kernel(size, float(p["omega_c"][i]))
        else:
            base = family.split("_")[0]
            beta = {"generalized": p["beta_generalized"][i], "plateau": p["beta_plateau"][i]}.get(base, 1.0)
            ref = bivariate_kernel(size, float(p["sigma_x"][i]), float(p["sigma_y"][i]), float(p["theta"][i]),
                                   beta=float(beta), family=base if base in ("generalized", "plateau") else "gaussian")
        assert torch.allclose(kernels[i], pad_kernel(ref, 9), atol=1e-6), (family, i)
    if family.endswith("_iso"):
        assert torch.equal(p["sigma_x"], p["sigma_y"])
    assert len(set(p["size"].tolist())) > 1  # sizes really vary within one batch


def test_batched_degrade_is_seeded_per_image_and_in_range():
    img = torch.rand(6, 3, 32, 32)
    cfg = DegradationConfig(jpeg_prob=0.5)
    a = degrade(img, cfg, torch.Generator().manual_seed(5), batched=True)
    b = degrade(img, cfg, torch.Generator().manual_seed(5), batched=True)
    c = degrade(img, cfg, torch.Generator().manual_seed(6), batched=True)
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)
    assert a.image.shape == img.shape and a.image.min() >= 0 and a.image.max() <= 1
    assert torch.allclose(a.image * 255, (a.image * 255).round(), atol=1e-3)
    draws = a.draws
    assert len(draws) == 6 and {"kernel", "noise", "up_mode", "resize_factor"} <= set(draws[0])
    assert any("jpeg_quality" in d for d in draws) and not all("jpeg_quality" in d for d in draws)
    # Kernels and noise are per image even in one batch: the same image twice comes out different.
    same = degrade(img[:1].expand(4, -1, -1, -1), cfg, torch.Generator().manual_seed(1), batched=True).image
    assert not torch.equal(same[0], same[1])


def test_batched_and_per_sample_degrade_alike():
    """Same distribution of degradations: the mean damage and the noise level agree."""
    torch.manual_seed(0)
    img = torch.rand(1, 3, 32, 32).expand(4, -1, -1, -1).contiguous()
    cfg = DegradationConfig()
    damage = {}
    for batched in (False, True):
        g = torch.Generator().manual_seed(2)
        # Many small batches: the batched path draws its resize once per batch.
        damage[batched] = torch.stack([(degrade(img, cfg, g, batched=batched).image - img).abs().mean()
                                       for _ in range(80)])
    assert abs(float(damage[True].mean() / damage[False].mean()) - 1) < 0.1
    # Noise only (delta kernel, no resize): the residual std matches on both paths.
    flat = torch.full((32, 3, 40, 40), 0.5)
    cfg = DegradationConfig(kernel_probs={"iso": 1.0}, blur_sigma=(1e-3, 1e-3), resize_range=(1.0, 1.0),
                            gaussian_noise_prob=1.0, gaussian_sigma=(3.0, 3.0), gray_noise_prob=0.0)
    stds = [float((degrade(flat, cfg, torch.Generator().manual_seed(0), batched=b).image - 0.5).std() * 255)
            for b in (False, True)]
    assert abs(stds[0] - 3.0) < 0.3 and abs(stds[1] - 3.0) < 0.3


@pytest.mark.parametrize("src,dst", [((10, 12), (20, 24)), ((7, 9), (21, 13)), ((1, 5), (4, 10)),
                                     ((30, 20), (41, 77)), ((20, 20), (11, 13))])
def test_cubic_resize_is_torchs_bicubic_at_a_minus_0_75(src, dst):
    """Whole factors (the fast path), non-integer and per-axis factors, down too; borders included."""
    x = torch.rand((2, 3, *src), generator=torch.Generator().manual_seed(0))
    torch_bicubic = torch.nn.functional.interpolate(x, size=dst, mode="bicubic", align_corners=False)
    assert torch.allclose(cubic_resize(x, dst, -0.75), torch_bicubic, atol=1e-5)
    assert torch.equal(resize(x, dst, "sharp-bicubic"), cubic_resize(x, dst, -1.0))


def test_sharp_bicubic_keeps_flat_areas_and_emphasises_edges():
    flat = torch.full((1, 3, 6, 7), 0.3)
    assert torch.allclose(resize(flat, (15, 17), "sharp-bicubic"), flat.new_full((1, 3, 15, 17), 0.3), atol=1e-6)
    step = torch.zeros(1, 1, 1, 16)
    step[..., 8:] = 1.0
    plain, sharp = (resize(step, (1, 64), mode)[0, 0, 0] for mode in ("bicubic", "sharp-bicubic"))
    # Stronger emphasis on both sides of the edge (measured: 1.146 / -0.146 against 1.110 / -0.110).
    assert sharp.max() > plain.max() + 0.02 and sharp.min() < plain.min() - 0.02


@pytest.mark.parametrize("batched", [False, True])
def test_a_known_kernel_makes_the_scale_aware_pairs(batched):
    """degradation.known_kernel: the pseudo-LR is the crop blurred by that kernel and sampled
    by MATLAB's cubic without antialiasing (the known-kernel model IBP and ZSSR use), then
    brought back up; no random kernel, no bicubic low-pass of its own."""
    from sr_core.method.degradation import kernel_downscale, quantize

    torch.manual_seed(0)
    img = torch.rand(2, 3, 24, 24)
    k = torch.zeros(5, 5)
    k[2, :] = 0.2  # a horizontal motion blur: easy to tell from any random kernel
    noiseless = dict(gaussian_noise_prob=1.0, gaussian_sigma=(0.0, 0.0))
    cfg = DegradationConfig(known_kernel=tuple(k.flatten().tolist()), **noiseless)
    out = degrade(img, cfg, torch.Generator().manual_seed(0), down_factor=2.0, up_mode="bicubic", batched=batched)
    expected = quantize(resize(kernel_downscale(img, k, (12, 12)).clamp(0, 1), (24, 24), "bicubic"))
    torch.testing.assert_close(out.image, expected, atol=1e-6, rtol=0)
    assert out.draws[0]["kernel"] == {"family": "known", "size": 5} and out.draws[0]["down_mode"] == "known-kernel"
    random = degrade(img, DegradationConfig(**noiseless), torch.Generator().manual_seed(0), down_factor=2.0,
                     up_mode="bicubic", batched=batched)
    assert float((random.image - expected).abs().mean()) > 0.01
    # Same-size pairs (no down factor) ignore it: the kernel belongs to a scale.
    plain = degrade(img, cfg, torch.Generator().manual_seed(0), batched=batched)
    assert plain.draws[0]["kernel"]["family"] != "known"
