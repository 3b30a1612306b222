import numpy as np
import pytest
import torch

from sr_core.config import preset
from sr_core.method.pairs import PairSampler, dihedral, image_scales, scaled_size


def test_image_scales_sizes_and_order(sample_rgb):
    cfg = preset("paper").data
    scales = image_scales(sample_rgb, cfg)
    assert [s.shape for s in scales] == [(115, 115, 3), (128, 128, 3)]
    assert np.allclose(scales[1], sample_rgb)
    assert scaled_size((4000, 3000), 1.0, max_pixels=1_000_000) == (1155, 866)


def test_dihedral_group_has_eight_distinct_elements():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_fixed_batch_is_fixed_fresh_is_fresh(sample_rgb):
    cfg = preset("paper")
    cfg.data.batch_size = 2
    fixed = PairSampler(sample_rgb[:40, :40], cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    a, b = fixed.next_batch(), fixed.next_batch()
    assert torch.equal(a[1], b[1])
    cfg.data.fixed_batch = False
    fresh = PairSampler(sample_rgb[:40, :40], cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(fresh.next_batch()[1], fresh.next_batch()[1])


def test_crops_and_flips(sample_rgb):
    cfg = preset("smoke")
    cfg.data.flips = True
    s = PairSampler(sample_rgb, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    x0, y = s.next_batch()
    assert x0.shape == y.shape == (cfg.data.batch_size, 3, 48, 48)


def test_scale_aware_pairs_use_the_inference_resampler(sample_rgb):
    """With no blur and no noise, the condition is exactly bicubic(down(x)), as at inference."""
    from sr_core.method.degradation import resize

    cfg = preset("smoke")
    cfg.data.pair_mode, cfg.data.step_factor, cfg.data.crop_size = "scale_aware", (2.0, 2.0), 0
    cfg.data.flips = False
    cfg.degradation.usm_target = False
    cfg.degradation.kernel_probs = {"iso": 1.0}
    cfg.degradation.blur_sigma = (1e-3, 1e-3)  # a delta kernel
    cfg.degradation.gaussian_noise_prob = 1.0
    cfg.degradation.gaussian_sigma = (0.0, 0.0)
    s = PairSampler(sample_rgb[:64, :64], cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    x0, y = s.next_batch()
    img = torch.from_numpy(sample_rgb[:64, :64]).permute(2, 0, 1)[None]
    small = (resize(img, (32, 32), "bicubic", antialias=True).clamp(0, 1) * 255).round() / 255
    expect = resize(small, (64, 64), "bicubic").clamp(0, 1)
    assert torch.allclose((y[0] + 1) / 2, (expect[0] * 255).round() / 255, atol=1.5 / 255)


def test_flips_on_non_square_images_keep_the_shape(sample_rgb):
    cfg = preset("smoke")
    cfg.data.flips, cfg.data.crop_size = True, 48
    s = PairSampler(sample_rgb[:24, :40], cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        x0, y = s.next_batch()
        assert x0.shape == y.shape == (cfg.data.batch_size, 3, 24, 40)


def test_batched_crops_and_flips_are_windows_of_the_image():
    """Every crop is a window of the image, turned by one of the 8 dihedral transforms."""
    from sr_core.method.pairs import dihedral

    h, w, c = 40, 56, 16
    ramp = np.arange(h * w, dtype=np.float32).reshape(h, w) / (h * w)
    rgb = np.stack([ramp, ramp[::-1], ramp * 0.5], axis=2)
    cfg = preset("default")
    cfg.data.crop_size, cfg.data.batch_size = c, 32
    s = PairSampler(rgb, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    img = s.image[0]
    gen = torch.Generator().manual_seed(1)
    crops, _ = s._crops(32, gen)
    flipped, _ = s._flip(crops, crops, gen)
    seen = set()
    for crop, turned in zip(crops, flipped):
        top, left = np.unravel_index(int(round(float(crop[0, 0, 0]) * h * w)), (h, w))
        assert torch.equal(crop, img[:, top : top + c, left : left + c])
        ks = [k for k in range(8) if torch.equal(turned, dihedral(crop, k))]
        assert ks, "a flipped crop is not a dihedral transform of its crop"
        seen.add(ks[0])
    assert len(seen) >= 6  # the batch really mixes transforms


@pytest.mark.parametrize("synthesis", ["per_sample", "batched"])
def test_both_synthesis_paths_give_valid_pairs(sample_rgb, synthesis):
    cfg = preset("default")
    cfg.data.synthesis = synthesis
    s = PairSampler(sample_rgb[:64, :64], cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0))
    x0, y = s.next_batch()
    assert x0.shape == y.shape == (16, 3, 48, 48)
    assert -1 <= float(y.min()) and float(y.max()) <= 1
    # The condition is the crop shrunk x2 and brought back: close to it, never equal.
    err = float((x0 - y).abs().mean())
    assert 0.005 < err < 0.2


def test_pairs_made_in_chunks_are_handed_out_batch_by_batch_and_resume_exactly(sample_rgb):
    cfg = preset("default")
    cfg.data.batch_size, cfg.data.crop_size = 3, 24
    make = lambda: PairSampler(sample_rgb[:48, :48], cfg.data, cfg.degradation,  # noqa: E731
                               generator=torch.Generator().manual_seed(0), chunk=4)
    s = make()
    batches = [s.next_batch() for _ in range(10)]  # three chunks opened
    assert all(x.shape == y.shape == (3, 3, 24, 24) for x, y in batches)
    flat = torch.cat([y for _, y in batches])
    assert len({tuple(row.flatten()[:16].tolist()) for row in flat}) == 30  # every pair its own
    again = make()
    assert all(torch.equal(a[1], again.next_batch()[1]) for a in batches)
    # A checkpoint after 6 batches (in the middle of the second chunk) resumes on the 7th.
    s = make()
    for _ in range(6):
        s.next_batch()
    state, served = s.rng_state()
    assert served == 2
    resumed = make()
    resumed.restore(state, served)
    assert all(torch.equal(batches[i][1], resumed.next_batch()[1]) for i in range(6, 10))
