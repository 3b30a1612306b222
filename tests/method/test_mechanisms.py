"""The mechanisms behind the quality work: self-ensemble, back-projection, colour fidelity.

Scale-aware pairs are pinned in test_data.py (test_scale_aware_pairs_use_the_inference_resampler).
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data as skd
import torch

from sr_core.config import preset
from sr_core.method.pairs import dihedral, to_tensor
from sr_core.method.degradation import resize
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.ensemble import SelfEnsemble, undo_dihedral
from sr_core.method.infer import ProjectedDenoiser, back_project, kernel_downscale, progressive_plan, upscale
from sr_core.evaluation.metrics import color_shift
from sr_core.method.train import build_model, train


def _inputs(h: int, w: int, *, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(batch, 3, h, w, generator=g)
    y = torch.rand(batch, 3, h, w, generator=g) * 2 - 1
    t = torch.tensor([1, 3][:batch])
    return x_t, y, t


class FixedConv:
    """A fixed random 3x3 conv of concat(x_t, y): convolutional but not rotation-equivariant."""

    def __init__(self, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(3, 6, 3, 3, generator=g)

    def __call__(self, x_t, y, t):
        return torch.nn.functional.conv2d(torch.cat([x_t, y], 1), self.weight, padding=1)


@pytest.mark.parametrize("shape", [(8, 8), (6, 11)])
def test_each_dihedral_transform_is_undone_exactly(shape):
    x = torch.randn(2, 3, *shape)
    for k in range(8):
        turned = dihedral(x, k)
        if k % 2:
            assert turned.shape[-2:] == (shape[1], shape[0])
        assert torch.equal(undo_dihedral(turned, k), x)


def test_self_ensemble_of_an_equivariant_function_is_that_function():
    x_t, y, t = _inputs(12, 12)
    ens = SelfEnsemble(lambda x_t, y, t: y)
    assert torch.allclose(ens(x_t, y, t), y, atol=1e-6)
    assert ens.calls == 8


@pytest.mark.parametrize("shape", [(12, 12), (10, 17)])
def test_self_ensemble_averages_the_eight_orientations_and_is_equivariant(shape):
    x_t, y, t = _inputs(*shape)
    conv = FixedConv()
    ens = SelfEnsemble(conv)
    out = ens(x_t, y, t)
    assert out.shape == x_t.shape
    explicit = torch.stack(
        [undo_dihedral(conv(dihedral(x_t, k), dihedral(y, k), t), k) for k in range(8)]
    ).mean(0)
    assert torch.allclose(out, explicit, atol=1e-5)
    # the conv alone is not equivariant, so the test above is not trivially true ...
    assert not torch.allclose(conv(dihedral(x_t, 1), dihedral(y, 1), t), dihedral(conv(x_t, y, t), 1), atol=1e-2)
    # ... but its ensemble is, under every transform
    for k in range(8):
        assert torch.allclose(ens(dihedral(x_t, k), dihedral(y, k), t), dihedral(out, k), atol=1e-5)
    assert ens.calls == 8 * 9


def test_self_ensemble_of_the_last_steps_only_calls_the_model_once_before_them():
    x_t, y, t = _inputs(10, 14)
    conv = FixedConv()
    ens = SelfEnsemble(conv, last_steps=2)
    early, late = torch.full_like(t, 2), torch.full_like(t, 1)
    assert torch.equal(ens(x_t, y, early), conv(x_t, y, early)) and ens.calls == 1
    assert torch.allclose(ens(x_t, y, late), SelfEnsemble(conv)(x_t, y, late), atol=1e-6) and ens.calls == 9
    assert not torch.allclose(ens(x_t, y, late), conv(x_t, y, late), atol=1e-3)


def test_self_ensemble_wraps_the_real_denoiser_on_a_non_square_image():
    model = build_model(preset("smoke")).eval()
    x_t, y, t = _inputs(20, 28, batch=1)
    ens = SelfEnsemble(model)
    with torch.no_grad():
        out = ens(x_t, y, t[:1])
        turned = ens(dihedral(x_t, 1), dihedral(y, 1), t[:1])
    assert out.shape == (1, 3, 20, 28) and torch.isfinite(out).all()
    assert torch.allclose(turned, dihedral(out, 1), atol=1e-4)


def _lr_residual(hr: torch.Tensor, lr: torch.Tensor) -> float:
    return float((resize(hr, lr.shape[-2:], "bicubic", antialias=True) - lr).norm())


@pytest.mark.parametrize("resampler", ["bicubic", "sharp-bicubic"])
def test_back_projection_makes_the_result_consistent_with_the_input(resampler):
    hr = to_tensor(skd.astronaut()[100:164, 180:244].astype(np.float32) / 255)
    lr = (resize(hr, (32, 32), "bicubic", antialias=True).clamp(0, 1) * 255).round() / 255
    start = resize(lr, (64, 64), "bicubic").clamp(0, 1)
    residuals = [_lr_residual(back_project(start, lr, n, resampler=resampler), lr) for n in range(0, 21)]
    print("LR residual after 0, 5, 10, 20 iterations:", [round(residuals[n], 4) for n in (0, 5, 10, 20)])
    assert residuals[10] < 0.05 * residuals[0]  # measured: 0.0059 against 0.564
    for before, after in zip(residuals, residuals[1:]):
        assert after <= before * 1.05 + 1e-4  # more iterations never make it much worse


def test_final_projection_matches_a_multi_step_result_to_the_users_image():
    """Each step back-projects onto its own input only; infer.final_projection also matches the
    x4 result to the photo it came from (its LR residual falls), and is off for one step."""
    rgb = skd.astronaut()[100:132, 180:212].astype(np.float32) / 255
    blurry = lambda x_t, y, t: torch.nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False)  # noqa: E731
    cfg = preset("smoke").infer
    cfg.back_projection, cfg.project_every_step, cfg.final_pass = 2, False, False  # steps far from consistent
    diffusion = ResShiftDiffusion(preset("smoke").diffusion)
    results = {}
    for on in (False, True):
        cfg.final_projection = on
        for scale in (2, 4):
            plan = progressive_plan((32, 32), (32 * scale, 32 * scale), max_step=2.0, final_pass=False)
            res = upscale(blurry, rgb, plan, diffusion, cfg, progress=False, seed=0)
            results[on, scale] = _lr_residual(to_tensor(res.image), to_tensor(rgb))
    print("LR residual x2 off/on, x4 off/on:", [round(results[k], 4) for k in sorted(results, key=lambda k: k[::-1])])
    assert results[True, 2] == results[False, 2]  # one step: nothing more to match
    assert results[True, 4] < 0.5 * results[False, 4]


def test_smoke_run_keeps_the_colour_of_a_flat_patch():
    rng = np.random.default_rng(0)
    purple = np.array([0.55, 0.25, 0.6], np.float32)
    rgb = np.clip(purple + rng.normal(0, 0.03, (48, 48, 3)), 0, 1).astype(np.float32)
    cfg = preset("smoke")
    result = train(rgb, cfg, progress=False)
    plan = progressive_plan((48, 48), (96, 96), max_step=cfg.infer.max_step_factor, final_pass=cfg.infer.final_pass)
    out = upscale(result.sampling_model(), rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    # Nearest-neighbour x2 has exactly the input's channel means, so color_shift compares means.
    shift = color_shift(out.image, rgb.repeat(2, axis=0).repeat(2, axis=1))
    print(f"colour shift of the smoke run: {shift:+.3f} grey levels")
    assert abs(shift) <= 1.0


def test_inference_with_self_ensemble_sees_all_eight_orientations_at_every_step():
    cfg = preset("smoke")
    cfg.infer.self_ensemble = True
    seen = []

    def denoiser(x_t, y, t):
        seen.append(tuple(x_t.shape[-2:]))
        return y

    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    plan = progressive_plan((16, 12), (32, 24))
    upscale(denoiser, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    assert len(seen) == 8 * cfg.diffusion.timesteps
    assert seen.count((24, 32)) == seen.count((32, 24)) == 4 * cfg.diffusion.timesteps


def test_projecting_every_step_hands_the_chain_lr_consistent_guesses(monkeypatch):
    cfg = preset("smoke")
    cfg.infer.back_projection, cfg.infer.project_every_step = 10, True
    rgb = skd.astronaut()[100:124, 180:212].astype(np.float32) / 255  # 24 x 32
    lr = to_tensor(rgb)
    guesses = []

    def blurry(x_t, y, t):  # a poor model: the condition faded towards grey, far from consistent with lr
        guesses.append(y * 0.8)
        return y * 0.8

    seen = []
    original = ProjectedDenoiser.__call__

    def spy(self, x_t, y, t):
        out = original(self, x_t, y, t)
        seen.append(_lr_residual((out + 1) / 2, lr))
        return out

    monkeypatch.setattr(ProjectedDenoiser, "__call__", spy)
    plan = progressive_plan((32, 24), (64, 48))
    upscale(blurry, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    raw = [_lr_residual((g + 1) / 2, lr) for g in guesses]
    assert len(seen) == len(raw) == cfg.diffusion.timesteps
    assert max(seen) < 0.1 * min(raw)  # every guess the chain uses is pulled onto the input


def test_blurred_residual_back_projection_fixes_coarse_errors_without_copying_noise():
    """`infer.bp_residual_blur`: on a noisy LR, back-projection with a blurred residual still
    pulls a wrong brightness onto the input but copies less of its pixel noise back."""
    hr = to_tensor(skd.astronaut()[100:164, 180:244].astype(np.float32) / 255)
    clean = resize(hr, (32, 32), "bicubic", antialias=True).clamp(0, 1)
    noisy = (clean + 0.03 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    start = (resize(clean, (64, 64), "bicubic") - 0.1).clamp(0, 1)  # a brightness error of 0.1
    down = lambda x: resize(x, (32, 32), "bicubic", antialias=True)  # noqa: E731
    exact, blurred = (back_project(start, noisy, 10, residual_blur=b) for b in (0.0, 1.0))
    for out in (exact, blurred):
        assert abs(float((down(out) - clean).mean())) < 0.01  # the coarse error is gone either way
    noise_copied = [float((down(out) - clean).std()) for out in (exact, blurred)]
    print("noise left in the downscaled output (exact, blurred residual):", noise_copied)
    assert noise_copied[1] < 0.75 * noise_copied[0]  # measured: 0.019 against 0.030


def test_only_the_first_plan_step_blurs_the_residual(monkeypatch):
    """Later steps project onto our own output, which is not noisy: exact back-projection."""
    import sr_core.method.infer as infer

    cfg = preset("smoke")
    cfg.infer.back_projection, cfg.infer.bp_residual_blur = 2, 1.0
    blurs = []
    original = infer.back_project
    monkeypatch.setattr(infer, "back_project", lambda *a, **k: blurs.append(k.get("residual_blur", 0.0)) or original(*a, **k))
    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    plan = progressive_plan((16, 12), (64, 48), max_step=2.0)
    steps = len(plan) - sum(s.refine_only for s in plan)
    cfg.infer.project_every_step = False
    upscale(lambda x_t, y, t: y, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    assert blurs == [1.0] + [0.0] * (steps - 1)
    # With the x0 guesses projected inside the chain: not onto the noisy input (its output
    # alone, blurred), but onto every later step's exact one (each reverse step, then the output).
    blurs.clear()
    cfg.infer.project_every_step = True
    upscale(lambda x_t, y, t: y, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    assert blurs == [1.0] + [0.0] * ((cfg.diffusion.timesteps + 1) * (steps - 1))
    cfg.infer.bp_residual_blur = -1
    with pytest.raises(Exception, match="bp_residual_blur"):
        cfg.validate()


def test_state_kept_on_the_host_gets_the_final_projection_only(monkeypatch):
    """Huge images on a GPU keep their state in host memory, where a projection at every
    reverse step would run on the CPU: they skip it and keep the output's."""
    import sr_core.method.infer as infer

    cfg = preset("smoke")
    assert cfg.infer.project_every_step and cfg.infer.back_projection
    calls = []
    original = infer.back_project
    monkeypatch.setattr(infer, "back_project", lambda *a, **k: calls.append(1) or original(*a, **k))
    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    plan = progressive_plan((16, 12), (32, 24), max_step=2.0)
    for on_host, expected in ((False, cfg.diffusion.timesteps + 1), (True, 1)):
        monkeypatch.setattr(infer, "state_on_host", lambda *a, flag=on_host: flag)
        calls.clear()
        upscale(lambda x_t, y, t: y, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
        assert len(calls) == expected


@pytest.mark.parametrize("last", [1, 3])
def test_inference_ensembles_only_the_last_reverse_steps_of_each_plan_step(last):
    cfg = preset("smoke")
    cfg.infer.ensemble_steps = last
    steps = []

    def denoiser(x_t, y, t):
        steps.append(int(t[0]))
        return y

    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    plan = progressive_plan((16, 12), (64, 48), final_pass=False)
    upscale(denoiser, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
    T = cfg.diffusion.timesteps
    per_plan_step = [i for i in reversed(range(T)) for _ in range(8 if i < last else 1)]
    assert len(plan) == 2 and steps == per_plan_step * 2


def test_back_projection_uses_its_own_resampler_where_set(monkeypatch):
    """`default` brings the residual up with the sharper cubic, in the chain and on the
    output; "" means the inference resampler; anything else is refused."""
    import sr_core.method.infer as infer

    cfg = preset("smoke")
    assert preset("default").infer.bp_resampler == "sharp-bicubic"
    used = []
    original = infer.back_project
    monkeypatch.setattr(infer, "back_project", lambda *a, **k: used.append(k["resampler"]) or original(*a, **k))
    rgb = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
    plan = progressive_plan((16, 12), (32, 24), max_step=2.0)
    for setting, expected in (("sharp-bicubic", "sharp-bicubic"), ("", cfg.infer.resampler)):
        cfg.infer.bp_resampler = setting
        used.clear()
        upscale(lambda x_t, y, t: y, rgb, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False)
        assert used == [expected] * (cfg.diffusion.timesteps + 1)
    cfg.infer.bp_resampler = "lanczos"
    with pytest.raises(Exception, match="bp_resampler"):
        cfg.validate()


def test_kernel_back_projection_matches_the_input_through_the_kernel():
    """`kernel_back_project` models IBP's known-kernel degradation: its down operator equals
    the benchmark protocol's (blur, then MATLAB's cubic without antialiasing) away from the
    borders, and the output, degraded that way, moves towards the input at every iteration."""
    from sr_core.method.infer import kernel_back_project
    from sr_core.evaluation.protocols import downscaler, realistic_kernel

    k = realistic_kernel(2, np.random.default_rng(3))
    hr = skd.astronaut()[100:196, 180:276].astype(np.float64) / 255
    lr_np = downscaler("realistic", 2, kernel=k)(hr)
    kernel = torch.from_numpy(k).float()
    ours = kernel_downscale(to_tensor(hr.astype(np.float32)), kernel, (48, 48))
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert float((ours - to_tensor(lr_np.astype(np.float32)))[inner].abs().max()) < 1e-5
    lr = to_tensor(lr_np.astype(np.float32))
    start = resize(lr, (96, 96), "bicubic").clamp(0, 1)
    residuals = [float((kernel_downscale(kernel_back_project(start, lr, kernel, n), kernel, (48, 48)) - lr).norm())
                 for n in range(6)]
    print("LR residual through the kernel after 0-5 iterations:", [round(r, 4) for r in residuals])
    assert all(after < before for before, after in zip(residuals, residuals[1:]))
    assert residuals[5] < 0.5 * residuals[0]
    # and it deblurs: closer to the HR image than where it started
    err = [float((x - to_tensor(hr.astype(np.float32))).abs().mean())
           for x in (start, kernel_back_project(start, lr, kernel, 2))]
    assert err[1] < err[0]
    # a delta kernel is back-projection through plain (non-antialiased) cubic sampling
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    assert torch.equal(kernel_downscale(start, delta, (48, 48)), kernel_downscale(start, torch.ones(1, 1), (48, 48)))


def test_upscale_matches_the_output_to_the_input_through_a_given_kernel():
    """With a kernel, the plan steps run as before (same intermediates) and the final output
    is then back-projected through it `infer.kernel_iterations` times (0 = not at all)."""
    from sr_core.evaluation.protocols import realistic_kernel

    cfg = preset("smoke")
    k = realistic_kernel(2, np.random.default_rng(0)).astype(np.float32)
    rgb = skd.chelsea()[50:98, 100:148].astype(np.float32) / 255
    plan = progressive_plan((48, 48), (96, 96), max_step=2.0)
    model = lambda x_t, y, t: y  # noqa: E731  (the condition itself: a bicubic-like model)
    run = lambda c, kern: upscale(model, rgb, plan, ResShiftDiffusion(c.diffusion), c.infer,  # noqa: E731
                                  progress=False, kernel=kern)
    plain, told = run(cfg, None), run(cfg, k)
    np.testing.assert_array_equal(plain.intermediates[-1], told.intermediates[-1])
    kernel, lr = torch.from_numpy(k), to_tensor(rgb)
    res = [float((kernel_downscale(to_tensor(r.image), kernel, (48, 48)) - lr).norm()) for r in (plain, told)]
    assert res[1] < 0.7 * res[0]
    cfg.infer.kernel_iterations = 0
    np.testing.assert_array_equal(run(cfg, k).image, plain.image)
    cfg.infer.kernel_iterations = -1
    with pytest.raises(Exception, match="kernel_iterations"):
        cfg.validate()
