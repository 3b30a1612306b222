"""Baselines (bicubic, Lanczos, IBP, ZSSR), NIQE and the offline perceptual distance."""

import numpy as np
import pytest
import torch

from sr_core.evaluation import baselines
from sr_core.evaluation.protocols import make_lr


def _photo(size=96):
    import skimage.data

    img = np.asarray(skimage.data.astronaut(), np.float64) / 255.0
    return img[100:100 + size, 180:180 + size]


@pytest.mark.parametrize("method", ["bicubic", "lanczos", "ibp"])
def test_classic_shapes_and_range(method):
    lr = _photo(30)
    out = getattr(baselines, method)(lr, 3)
    assert out.shape == (90, 90, 3)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("protocol", ["bicubic", "realistic"])
def test_ibp_reduces_lr_residual(protocol):
    case = make_lr(_photo(), 2, protocol, name="t")
    start = baselines.lr_residual(baselines.bicubic(case.lr, 2), case.lr, case.downscale)
    after = baselines.lr_residual(baselines.ibp(case.lr, 2, case.downscale), case.lr, case.downscale)
    assert after < 0.5 * start


def test_ibp_beats_bicubic_on_bicubic_protocol():
    from sr_core.evaluation.metrics import psnr_y

    case = make_lr(_photo(), 2, "bicubic")
    b = psnr_y(baselines.bicubic(case.lr, 2), case.hr, 2)
    i = psnr_y(baselines.ibp(case.lr, 2, case.downscale), case.hr, 2)
    assert i > b + 0.2


def test_zssr_tiny_run():
    case = make_lr(_photo(64), 2, "bicubic")
    info = {}
    cfg = baselines.ZSSRConfig(width=16, crop=24, max_iters=12, min_iters=4, test_every=4,
                               policy_every=4, slope_range=6, back_projection_iters=2)
    out = baselines.zssr(case.lr, 2, cfg=cfg, info=info)
    assert out.shape == case.hr.shape
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert info["stages"][0]["iters"] <= 12 and info["seconds"] > 0


def test_zssr_gradual_x4_uses_two_stages():
    case = make_lr(_photo(64), 4, "bicubic")
    info = {}
    cfg = baselines.ZSSRConfig(width=8, crop=16, max_iters=3, min_iters=3, back_projection_iters=1)
    out = baselines.zssr(case.lr, 4, cfg=cfg, info=info)
    assert out.shape == case.hr.shape
    assert [s["scale"] for s in info["stages"]] == [2, 4]
    assert all(s["iters"] == 3 for s in info["stages"])


def test_zssr_default_is_the_published_recipe():
    cfg = baselines.ZSSRConfig()
    assert cfg == baselines.ZSSRConfig.paper()
    assert (cfg.depth, cfg.width, cfg.crop) == (8, 64, 128)
    assert (cfg.max_iters, cfg.min_iters, cfg.lr, cfg.min_lr) == (3000, 256, 1e-3, 9e-6)
    assert (cfg.test_every, cfg.policy_every, cfg.slope_range, cfg.change_ratio) == (50, 60, 256, 1.5)
    assert (cfg.back_projection_iters, cfg.ensemble, cfg.gradual, cfg.warm_start) == (10, True, True, True)
    assert (cfg.father_min_scale, cfg.noise_std) == (0.5, 0.0)
    assert (cfg.fathers, cfg.as_is_prob, cfg.no_interp_prob, cfg.scale_diff_sigma, cfg.shear_sigma) == (
        "affine", 0.05, 0.45, 0.25, 0.1)
    assert cfg.full and cfg.budget() == "full (3000 max iterations)"
    cut = baselines.ZSSRConfig(max_iters=400)
    assert not cut.full and cut.budget().startswith("cut to 400 max iterations")
    assert cut.crop == 128 and cut.lr == 1e-3  # only the budget changes


def _tiny_trainer(size=24, **kw):
    from sr_core.evaluation.protocols import imresize

    cfg = baselines.ZSSRConfig(width=4, crop=8, **kw)
    lr = _photo(size)
    down = lambda x: imresize(x, 0.5)  # noqa: E731
    return baselines._ZSSRTrainer([lr], 2, down, cfg, np.random.default_rng(0)), lr


def test_zssr_max_iters_cuts_the_run():
    trainer, lr = _tiny_trainer(max_iters=7, test_every=3)
    stats = trainer.fit(lr)
    assert stats["iters"] == 7 and stats["lr_changes"] == []
    assert [i for i, _ in stats["errors"]] == [3, 6]


def test_lr_plateau_test():
    rng = np.random.default_rng(0)
    steps = np.arange(50, 300, 50)  # ZSSR's 5 tests over its 256-iteration slope range
    noise = 1e-5 * rng.standard_normal(5)
    assert not baselines.lr_plateau(steps, 1e-2 - 1e-5 * steps + noise)  # clearly falling
    assert baselines.lr_plateau(steps, 1e-3 + noise)  # flat: only noise
    assert baselines.lr_plateau(steps, 1e-3 + 1e-7 * steps)  # rising
    assert baselines.lr_plateau(steps, 1e-3 - 1e-8 * steps + noise)  # falling, but within the noise
    assert not baselines.lr_plateau(steps[:2], 1e-3 + noise[:2])  # too few points to fit


@pytest.mark.parametrize("curve", ["flat", "falling"])
def test_zssr_lr_policy_divides_by_ten_on_a_plateau_and_stops(curve):
    """A synthetic reconstruction-error curve: flat -> the lr drops 1e-3 -> 1e-4 -> 1e-5 -> 1e-6
    at the first checks the policy allows (every 6 iterations, more than 25 after the last
    change), and training stops under min_lr; steadily falling -> the lr is never touched."""
    trainer, lr = _tiny_trainer(max_iters=120, min_iters=25, test_every=5, policy_every=6, slope_range=25)
    calls = []

    def fake_predict(son, size, *, ensemble=True, back_projection_iters=0):
        calls.append(ensemble)
        n = len(calls)
        err = 1e-3 * (1 + 0.01 * (-1) ** n) if curve == "flat" else 1e-2 / n
        return lr + np.sqrt(err)

    trainer.predict = fake_predict
    stats = trainer.fit(lr)
    assert not any(calls)  # the periodic test is one forward pass, no ensemble
    if curve == "flat":
        assert [i for i, _ in stats["lr_changes"]] == [30, 60, 90]
        assert [v for _, v in stats["lr_changes"]] == pytest.approx([1e-4, 1e-5, 1e-6])
        assert stats["iters"] == 90 and trainer.opt.param_groups[0]["lr"] == pytest.approx(1e-6)
    else:
        assert stats["lr_changes"] == [] and stats["iters"] == 120
        assert trainer.opt.param_groups[0]["lr"] == 1e-3


def test_zssr_ensemble_is_the_median_of_the_8_dihedral_outputs():
    from sr_core.evaluation.protocols import imresize

    trainer, _ = _tiny_trainer()
    lr = _photo(12)[:, :10]  # not square: the odd rotations swap height and width
    shapes = []

    class Ramp(torch.nn.Module):  # adds a ramp along the width: each transform sees it differently
        def forward(self, x):
            shapes.append(tuple(x.shape[2:]))
            return x + 0.05 * torch.linspace(0, 1, x.shape[3])

    trainer.net = Ramp()
    got = trainer.predict(lr, (24, 20))
    outs = []
    for k in range(8):
        up = imresize(baselines._dihedral(lr, k), size=(24, 20) if k % 2 == 0 else (20, 24))
        outs.append(np.clip(baselines._undihedral(up + 0.05 * np.linspace(0, 1, up.shape[1])[None, :, None], k), 0, 1))
    assert len(shapes) == 8 and sorted(set(shapes)) == [(20, 24), (24, 20)]
    np.testing.assert_allclose(got, np.median(outs, axis=0), atol=1e-6)
    assert np.abs(got - outs[0]).max() > 1e-3  # the median is not any one output
    single = trainer.predict(lr, (24, 20), ensemble=False)
    np.testing.assert_allclose(single, outs[0], atol=1e-6)


def test_zssr_back_projection_fits_the_input():
    trainer, _ = _tiny_trainer()
    lr = _photo(12)
    plain = trainer.predict(lr, (24, 24))
    projected = trainer.predict(lr, (24, 24), back_projection_iters=10)
    res = lambda sr: baselines.lr_residual(sr, lr, trainer.down)  # noqa: E731
    assert res(projected) < 0.3 * res(plain)


def test_zssr_later_stage_starts_from_the_earlier_one():
    from sr_core.evaluation.protocols import imresize

    first, lr = _tiny_trainer(max_iters=3)
    first.fit(lr)
    later = baselines._ZSSRTrainer([lr, imresize(lr, 2.0)], 4, lambda x: imresize(x, 0.25), first.cfg,
                                   np.random.default_rng(1), init=first)
    for a, b in zip(first.net.parameters(), later.net.parameters()):
        assert torch.equal(a, b)
    assert later.opt.param_groups[0]["lr"] == first.cfg.lr
    assert len(later.sources) == 2 and later.base_scales == [1.0, 2.0]  # the x2 output joined the sources
    pyramid = dict(fathers="pyramid")
    first = baselines._ZSSRTrainer([lr], 2, lambda x: imresize(x, 0.5), baselines.ZSSRConfig(**pyramid),
                                   np.random.default_rng(0))
    later = baselines._ZSSRTrainer([lr, imresize(lr, 2.0)], 4, lambda x: imresize(x, 0.25),
                                   baselines.ZSSRConfig(**pyramid), np.random.default_rng(1))
    assert len(later.fathers) > len(first.fathers)  # the x2 output joined the fathers


def _find_crop(img, crop, transforms=range(1)):
    """(y, x, k) where `crop` undone by dihedral k is an integer crop of `img`, else None."""
    c = crop.shape[0]
    for k in transforms:
        g = baselines._undihedral(crop, k)
        for y in range(img.shape[0] - c + 1):
            for x in range(img.shape[1] - c + 1):
                if np.allclose(img[y:y + c, x:x + c], g, atol=1e-5):
                    return y, x, k
    return None


def test_affine_fathers_as_is_and_turned_crops_stay_on_the_pixel_grid():
    img = _photo(40)[:, :36]
    as_is = baselines.ZSSRConfig(fathers="affine", crop=16, as_is_prob=1.0)
    turned = baselines.ZSSRConfig(fathers="affine", crop=16, as_is_prob=0.0, no_interp_prob=1.0)
    for seed in range(4):
        f = baselines.affine_father([img], [1.0], np.random.default_rng(seed), as_is)
        assert f.shape == (16, 16, 3) and _find_crop(img, f) is not None
    found = [_find_crop(img, baselines.affine_father([img], [1.0], np.random.default_rng(s), turned), range(8))
             for s in range(6)]
    assert sum(f is not None for f in found) >= 4  # a turn may push the window past the edge (zeros)
    assert {f[2] for f in found if f} - {0}, "some draws are turned or mirrored"


def test_fathers_without_rotations_are_never_turned_or_mirrored():
    img = _photo(40)[:, :36]
    for fathers in ("affine", "pyramid"):
        cfg = baselines.ZSSRConfig(fathers=fathers, crop=16, as_is_prob=0.0, no_interp_prob=1.0, rotations=False,
                                   father_scales=1)
        trainer = baselines._ZSSRTrainer([img], 2, lambda x: x[::2, ::2], cfg, np.random.default_rng(0))
        for _ in range(6):
            assert _find_crop(img, trainer._father()) is not None  # k = 0: as cut


def test_bench_gives_zssr_the_real_image_settings_on_realistic_input(monkeypatch):
    from types import SimpleNamespace

    from sr_core.evaluation import bench

    seen = []
    monkeypatch.setattr(baselines, "zssr", lambda lr, scale, down, cfg: seen.append(cfg) or lr)
    spec = bench.build_methods(["zssr"])[0]
    for protocol in ("bicubic", "realistic"):
        spec.run(SimpleNamespace(lr=np.zeros((4, 4, 3)), scale=2, protocol=protocol, downscale=None))
    assert [(c.noise_std, c.rotations) for c in seen] == [(0.0, True), (0.0125, False)]
    assert spec.options["fathers"] == "affine"


def test_affine_fathers_warp_small_sources_onto_a_zero_canvas_and_use_later_sources():
    small = _photo(12)
    cfg = baselines.ZSSRConfig(fathers="affine", crop=32, as_is_prob=0.0, no_interp_prob=0.0)
    f = baselines.affine_father([small], [1.0], np.random.default_rng(0), cfg)
    assert f.shape == (32, 32, 3) and f.min() >= 0 and f.max() <= 1
    assert (f == 0).all(axis=2).mean() > 0.5  # at most 12 x 12 of the 32 x 32 canvas is the image
    # gradual: a scale above 1 can only come from the x2 source, whose pixels differ
    big = np.full((24, 24, 3), 0.5)
    cfg = baselines.ZSSRConfig(fathers="affine", crop=8, as_is_prob=0.0, no_interp_prob=1.0)
    picked = {bool(np.allclose(baselines.affine_father([small, big], [1.0, 2.0], np.random.default_rng(s), cfg),
                               0.5)) for s in range(12)}
    assert picked == {True, False}


def test_zssr_published_init_has_no_biases_and_small_weights():
    net = baselines.ZSSRNet(depth=3, width=32, init="published")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert abs(float(convs[1].weight.detach().std()) - (0.1 / (9 * 32)) ** 0.5) < 0.003
    assert all(c.bias is not None for c in baselines.ZSSRNet(depth=3, width=32).modules()
               if isinstance(c, torch.nn.Conv2d))


def test_zssr_with_affine_fathers_runs_both_stages():
    case = make_lr(_photo(48), 4, "bicubic")
    info = {}
    cfg = baselines.ZSSRConfig(width=8, crop=16, max_iters=4, min_iters=4, back_projection_iters=1,
                               fathers="affine", init="published")
    out = baselines.zssr(case.lr, 4, cfg=cfg, info=info)
    assert out.shape == case.hr.shape and np.isfinite(out).all()
    assert [s["scale"] for s in info["stages"]] == [2, 4]


def test_niqe_pinned_and_ordered():
    import skimage.data

    from sr_core.evaluation.niqe import niqe
    from sr_core.evaluation.protocols import imresize

    img = np.asarray(skimage.data.astronaut(), np.float64) / 255.0
    value = niqe(img)
    # BasicSR's niqe.py gives 3.1004 here when run in float64 as we (and MATLAB) compute, and
    # 3.0649 in its own float32 arithmetic (tests/evaluation/REFERENCES.md).
    assert value == pytest.approx(3.1005, abs=2e-3)
    blurred = imresize(imresize(img, 0.5), size=img.shape[:2])
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.05, img.shape), 0, 1)
    assert niqe(blurred) > value + 1 and niqe(noisy) > value + 1
    with pytest.raises(ValueError):
        niqe(img[:90, :90])


def test_offline_perceptual_distance():
    from sr_core.method import lpips_offline
    from sr_core.evaluation.protocols import imresize

    try:
        lpips_offline.weights_path("alex")
    except FileNotFoundError:
        pytest.skip("stlpips-pytorch weights not installed")
    img = _photo(64)
    assert lpips_offline.distance(img, img) == pytest.approx(0.0, abs=1e-7)
    d2 = lpips_offline.distance(img, imresize(imresize(img, 0.5), size=(64, 64)))
    d4 = lpips_offline.distance(img, imresize(imresize(img, 0.25), size=(64, 64)))
    assert 0 < d2 < d4
    assert lpips_offline.load("alex").backend == "stlpips-alex"


def test_load_perceptual_falls_back_offline():
    import importlib.util

    from sr_core.method import lpips_offline
    from sr_core.method.perceptual import backend_name, load_perceptual

    try:
        lpips_offline.weights_path("alex")
    except FileNotFoundError:
        pytest.skip("stlpips-pytorch weights not installed")
    if importlib.util.find_spec("lpips") is not None:
        pytest.skip("the lpips package is installed: it takes precedence")
    fn = load_perceptual("alex", "cpu")
    assert fn is not None and backend_name("alex", "cpu") == "stlpips-alex"


def test_perceptual_target_features_are_reused_only_while_the_target_is_unchanged():
    """A fixed training batch is the loss target at every step: its features are computed once."""
    from sr_core.method.lpips_offline import PerceptualDistance

    torch.manual_seed(0)
    net = PerceptualDistance("alex").eval().requires_grad_(False)
    y = torch.rand(2, 3, 48, 48) * 2 - 1
    x = (y + 0.2 * torch.randn_like(y)).clamp(-1, 1).requires_grad_(True)
    fresh = lambda a, b: sum(  # noqa: E731  (the uncached formula)
        getattr(net, f"lin{k}")((fa - fb) ** 2).mean((2, 3), keepdim=True)
        for k, (fa, fb) in enumerate(zip(net.normalised_features(a), net.normalised_features(b))))
    ref = fresh(x, y)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    first = net(x, y)
    cached = net._target[3]
    second = net(x, y)
    (g_second,) = torch.autograd.grad(second.sum(), x)
    assert net._target[3] is cached  # the second call reused the target's features
    assert torch.allclose(first, ref) and torch.allclose(second, ref) and torch.allclose(g_second, g_ref)
    y.mul_(0.5)  # changed in place: recomputed
    assert net._target[3] is cached and torch.allclose(net(x, y), fresh(x, y))
    assert net._target[3] is not cached
    net.forget_target()
    assert net._target is None
