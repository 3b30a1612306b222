"""The CUDA path: run with SR_TEST_CUDA=1 on a machine with a GPU (skipped elsewhere).

    SR_TEST_CUDA=1 python -m pytest tests/test_cuda.py
"""

import numpy as np
import pytest
import torch

from sr_core.runtime.accel import Accel, FastDenoiser
from sr_core.config import preset
from sr_core.method.pairs import PairSampler
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import PlanStep, progressive_plan, run_step, upscale
from sr_core.evaluation.metrics import psnr
from sr_core.method.model import NextNet
from sr_core.method.train import load_model, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


def test_batched_pairs_live_on_the_gpu_and_are_seeded(sample_rgb):
    cfg = preset("default")
    pairs = []
    for _ in range(2):
        s = PairSampler(sample_rgb, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(0), device=CUDA)
        pairs.append(s.next_batch())
    (x0, y), (x0b, yb) = pairs
    assert x0.device.type == y.device.type == "cuda" and y.shape == (16, 3, 48, 48)
    assert torch.equal(y, yb) and -1 <= float(y.min()) and float(y.max()) <= 1
    assert 0.005 < float((x0 - y).abs().mean()) < 0.2


def test_bf16_sampler_on_gpu_matches_fp32_on_cpu():
    torch.manual_seed(0)
    model = NextNet(preset("default").model).eval()
    d = ResShiftDiffusion(preset("default").diffusion)
    y = torch.rand(1, 3, 96, 96) * 2 - 1
    ref = d.sample(FastDenoiser(model, Accel.plain(), "cpu"), y, stochastic=False)
    gpu_model = Accel().prepare(NextNet(preset("default").model).eval(), CUDA)
    gpu_model.load_state_dict(model.state_dict())
    out = d.sample(FastDenoiser(gpu_model, Accel(), CUDA), y.to(CUDA), stochastic=False).cpu()
    assert 10 * float(torch.log10(4 / ((out - ref) ** 2).mean())) > 35


def test_tiled_matches_untiled_on_gpu(sample_rgb):
    model = NextNet(preset("default").model).to(CUDA).eval()
    cfg = preset("default").infer
    d = ResShiftDiffusion(preset("default").diffusion)
    img = torch.from_numpy(sample_rgb[:96, :120]).permute(2, 0, 1)[None].to(CUDA)
    outs = []
    for tile in (0, 64):
        cfg.tile = tile
        out, _ = run_step(model, d, img, PlanStep((240, 192)), cfg, generator=torch.Generator().manual_seed(0),
                          accel=Accel.plain())
        outs.append(out.cpu()[0].permute(1, 2, 0).numpy())
    assert psnr(outs[0], outs[1], 1.0) > 45


def test_train_on_gpu_then_upscale_on_cpu(tmp_path, sample_rgb):
    cfg = preset("smoke")
    result = train(sample_rgb[:64, :64], cfg, device=CUDA, out_dir=tmp_path, progress=False)
    assert all(np.isfinite(result.history["loss"])) and len(result.history["loss"]) == cfg.total_steps()
    model, saved = load_model(result.checkpoint, device="cpu")
    plan = progressive_plan((32, 32), (64, 64))
    out = upscale(model, sample_rgb[:32, :32], plan, ResShiftDiffusion(saved.diffusion), saved.infer,
                  progress=False).image
    assert out.shape == (64, 64, 3) and np.isfinite(out).all()


def _train_with(accel, sample_rgb, cfg, steps=40):
    import sr_core.runtime.accel

    from sr_core.method.train import TrainState, train_stage

    captured = []
    capture = sr_core.runtime.accel.GraphedDenoiser.capture

    def spy(*args, **kwargs):
        captured.append(capture(*args, **kwargs))
        return captured[-1]

    sr_core.runtime.accel.GraphedDenoiser.capture = spy
    try:
        state = TrainState.fresh(cfg, "fp", CUDA)
        sampler = PairSampler(sample_rgb[:96, :96], cfg.data, cfg.degradation,
                              generator=torch.Generator().manual_seed(0), device=CUDA)
        losses = train_stage(state, sampler, ResShiftDiffusion(cfg.diffusion), steps, progress=False, accel=accel)
    finally:
        sr_core.runtime.accel.GraphedDenoiser.capture = capture
    return state, losses, captured


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_training_matches_eager(sample_rgb, precision):
    """The captured forward + backward replays the same arithmetic as the eager path."""
    cfg = preset("default")
    eager, l_eager, _ = _train_with(Accel(precision=precision, cuda_graph=False), sample_rgb, cfg)
    graph, l_graph, captured = _train_with(Accel(precision=precision), sample_rgb, cfg)
    assert captured and captured[0] is not None and captured[0].replays == 40  # the graph ran every step
    assert np.allclose(l_eager[:5], l_graph[:5], rtol=1e-3, atol=1e-6)
    assert abs(np.mean(l_eager[-10:]) - np.mean(l_graph[-10:])) < 0.1 * np.mean(l_eager[-10:])
    a = torch.cat([p.flatten() for p in eager.model.parameters()])
    b = torch.cat([p.flatten() for p in graph.model.parameters()])
    assert torch.isfinite(b).all() and float((a - b).norm() / a.norm()) < 0.05
