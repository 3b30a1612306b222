"""The speed levers (sr_core.runtime.accel) and the training loop's deferred read-back."""

import pytest
import torch

from sr_core.runtime.accel import Accel, FastDenoiser
from sr_core.config import preset
from sr_core.method.diffusion import ResShiftDiffusion, randn_on
from sr_core.errors import UserError
from sr_core.method.train import TrainState, build_model, train_stage
from sr_core.method.pairs import PairSampler


def test_precision_choice_and_bad_values():
    assert Accel().dtype("cpu") is None  # auto: fp32 on the CPU
    assert Accel.plain().dtype("cpu") is None
    assert Accel(precision="bf16").dtype("cpu") is torch.bfloat16
    with pytest.raises(UserError, match="precision"):
        Accel(precision="fp8")


def test_bf16_autocast_stays_close_to_fp32_and_returns_fp32():
    cfg = preset("smoke")
    model = build_model(cfg).eval()
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    t = torch.tensor([2])
    ref = FastDenoiser(model, Accel.plain(), "cpu")(x, y, t)
    fast = FastDenoiser(model, Accel(precision="bf16"), "cpu")(x, y, t)
    assert ref.dtype == fast.dtype == torch.float32
    rel = float((fast - ref).detach().norm() / ref.detach().norm())
    assert 0 < rel < 2e-2  # bf16 rounds (so it did run in bf16), but only a little


def test_full_sampler_in_bf16_matches_fp32():
    """The reverse chain must not drift in bf16: compare whole samples, not one call."""
    cfg = preset("smoke")
    model = build_model(cfg).eval()
    d = ResShiftDiffusion(cfg.diffusion)
    y = torch.rand(1, 3, 32, 32) * 2 - 1
    outs = [d.sample(FastDenoiser(model, a, "cpu"), y, generator=torch.Generator().manual_seed(0))
            for a in (Accel.plain(), Accel(precision="bf16"))]
    psnr = 10 * torch.log10(4 / ((outs[0] - outs[1]) ** 2).mean())
    assert float(psnr) > 35


def test_device_noise_is_seeded():
    a = randn_on((2, 3), torch.Generator().manual_seed(1), torch.device("cpu"))
    b = randn_on((2, 3), torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(a, b)
    assert torch.equal(a, torch.randn((2, 3), generator=torch.Generator().manual_seed(1)))


def _stage(sample_rgb, sync_every):
    cfg = preset("smoke")
    cfg.data.batch_size, cfg.data.crop_size = 2, 24
    state = TrainState.fresh(cfg, "fp", torch.device("cpu"))
    sampler = PairSampler(sample_rgb[:32, :32], cfg.data, cfg.degradation,
                          generator=torch.Generator().manual_seed(0))
    losses = train_stage(state, sampler, ResShiftDiffusion(cfg.diffusion), 9, progress=False,
                         sync_every=sync_every)
    return state, losses


def test_deferred_loss_read_back_changes_nothing(sample_rgb):
    """Reading losses every 4 steps (as on a GPU) gives the same weights and history as every step."""
    a, la = _stage(sample_rgb, 1)
    b, lb = _stage(sample_rgb, 4)
    assert la == lb and len(la) == 9
    assert a.history == b.history and b.history["step"] == list(range(1, 10))
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_deferred_read_back_still_catches_divergence(sample_rgb):
    cfg = preset("smoke")
    cfg.data.batch_size, cfg.data.crop_size = 2, 24
    cfg.train.lr = 1e30
    state = TrainState.fresh(cfg, "fp", torch.device("cpu"))
    sampler = PairSampler(sample_rgb[:32, :32], cfg.data, cfg.degradation,
                          generator=torch.Generator().manual_seed(0))
    saved = []
    with pytest.raises(UserError, match="diverged"):
        train_stage(state, sampler, ResShiftDiffusion(cfg.diffusion), 30, progress=False,
                    sync_every=25, checkpoint=lambda: saved.append(state.global_step))
    assert saved == []  # no checkpoint of broken weights


def test_auto_precision_keeps_small_calls_in_fp32():
    """Measured: tiny launch-bound calls lose to autocast's cast kernels; big ones gain."""
    auto = Accel()
    assert auto.for_batch(16 * 48 * 48).precision == "fp32" and auto.for_batch(100).channels_last
    assert auto.for_batch(8 * 512 * 512) is auto
    explicit = Accel(precision="bf16")
    assert explicit.for_batch(100).precision == "bf16"  # an explicit choice is kept


def test_cuda_graph_is_a_fast_path_lever_and_needs_cuda():
    from sr_core.runtime.accel import GraphedDenoiser

    assert Accel().cuda_graph and not Accel.plain().cuda_graph
    model = build_model(preset("smoke"))
    assert GraphedDenoiser.capture(FastDenoiser(model, Accel(), "cpu"), (2, 3, 16, 16)) is None


def test_graphed_denoiser_runs_eagerly_on_other_shapes_and_without_grad():
    """Only calls of the captured shape replay the graph; anything else takes the eager path."""
    from sr_core.runtime.accel import GraphedDenoiser

    calls = []
    eager = FastDenoiser(build_model(preset("smoke")), Accel(), "cpu")
    graphed = lambda x, y, t: calls.append("graph") or x  # noqa: E731
    g = GraphedDenoiser(graphed, eager, ((2, 3, 16, 16), (2, 3, 16, 16), (2,)))
    x, t = torch.zeros(2, 3, 16, 16), torch.zeros(2, dtype=torch.long)
    g(x, x, t)
    out = g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), t[:1])  # another batch shape
    with torch.no_grad():
        g(x, x, t)
    assert calls == ["graph"] and g.replays == 1 and out.shape == (1, 3, 16, 16)


def test_the_module_a_cuda_graph_captures_is_the_fast_denoiser_call():
    """What make_graphed_callables gets: the model's parameters and FastDenoiser's arithmetic."""
    from sr_core.runtime.accel import _TrainingCall

    model = build_model(preset("smoke"))
    eager = FastDenoiser(model, Accel(precision="bf16"), "cpu")
    call = _TrainingCall(eager)
    assert [id(p) for p in call.parameters()] == [id(p) for p in model.parameters()]
    x, y, t = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.tensor([1, 3])
    out = call(x, y, t)
    assert out.dtype == torch.float32 and torch.equal(out, eager(x, y, t))
    assert not call.call.autocast_cache and eager.autocast_cache
