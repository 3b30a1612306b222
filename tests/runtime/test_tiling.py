import numpy as np
import torch

from sr_core.config import InferConfig, preset
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import PlanStep, run_step
from sr_core.evaluation.metrics import psnr
from sr_core.method.model import NextNet
from sr_core.runtime.tiling import TiledDenoiser, auto_tile, receptive_radius


def _model():
    torch.manual_seed(0)
    return NextNet().eval()


def test_receptive_radius_is_respected_exactly():
    model = _model()
    r = receptive_radius(model)
    assert r == 20
    x = torch.zeros(1, 3, 64, 64)
    base = model(x, x, torch.tensor([3]))
    x2 = x.clone()
    x2[..., 32, 32] = 1.0
    diff = (model(x2, x, torch.tensor([3])) - base).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 1e-7, as_tuple=True)
    assert int((ys - 32).abs().max()) <= r and int((xs - 32).abs().max()) <= r


def _run(image, tile, stochastic):
    cfg = InferConfig(tile=tile, stochastic=stochastic)
    d = ResShiftDiffusion(preset("smoke").diffusion)
    out, _ = run_step(_model(), d, image, PlanStep((image.shape[-1] * 2, image.shape[-2] * 2)), cfg,
                      generator=torch.Generator().manual_seed(0))
    return out[0].permute(1, 2, 0).numpy()


def test_tiled_matches_untiled_on_a_photo(sample_rgb):
    img = torch.from_numpy(sample_rgb[:50, :70]).permute(2, 0, 1)[None]
    for stochastic in (False, True):
        whole, tiled = _run(img, 0, stochastic), _run(img, 32, stochastic)
        assert whole.shape == tiled.shape == (100, 140, 3)
        assert psnr(whole, tiled, 1.0) > 60  # identical up to float rounding (target: > 45 dB)


def test_no_seam_on_a_smooth_gradient():
    ramp = torch.linspace(0, 1, 60)[None, :].expand(40, 60)
    img = torch.stack([ramp, torch.full((40, 60), 0.5), ramp.flip(-1)])[None]
    whole, tiled = _run(img, 0, True), _run(img, 24, True)
    err = np.abs(whole - tiled).max(axis=2)
    borders = err[:, 23:25].max(), err[23:25, :].max()
    assert max(borders) <= err.max() + 1e-7 and err.max() < 1e-4


def test_tile_count_and_auto_tile():
    model = _model()
    den = TiledDenoiser(model, 16, torch.device("cpu"))
    x = torch.zeros(1, 3, 40, 33)
    den(x, x, torch.tensor([0]))
    assert den.calls == 3 * 3
    assert auto_tile(torch.device("cpu"), 64 * 64) == 0
    assert 64 <= auto_tile(torch.device("cpu"), 10**12) <= 4096
