import math

import torch

from sr_core.config import DiffusionConfig
from sr_core.method.diffusion import ResShiftDiffusion, sqrt_eta_schedule


def test_schedule_endpoints_and_monotone():
    cfg = DiffusionConfig()
    s = sqrt_eta_schedule(cfg)
    assert len(s) == 15
    assert math.isclose(float(s[0]), 0.01, rel_tol=1e-9) and math.isclose(float(s[-1]), 0.99, rel_tol=1e-9)
    assert torch.all(s[1:] > s[:-1])
    # The power-0.3 warp lifts the middle of the range far above a plain exponential (0.0995).
    b = (0.99 / 0.01) ** (1 / 14)
    assert math.isclose(float(s[7]), 0.01 * b ** ((7 / 14) ** 0.3 * 14), rel_tol=1e-9)
    assert 0.4 < float(s[7]) < 0.43


def test_q_sample_mean_and_variance():
    d = ResShiftDiffusion()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.3)
    y = torch.full((20000, 1, 1, 1), -0.5)
    for t in (0, 7, 14):
        xt = d.q_sample(x0, y, torch.full((20000,), t), generator=g)
        eta = float(d.eta[t])
        assert abs(float(xt.mean()) - (0.3 + eta * (-0.8))) < 0.03
        assert abs(float(xt.var()) - eta) < 0.05 * max(eta, 0.02) + 2e-4


def test_posterior_matches_bayes_rule():
    """q(x_{t-1}|x_t,x0) from the Gaussian product q(x_t|x_{t-1}) q(x_{t-1}|x0)."""
    d = ResShiftDiffusion()
    for t in (1, 5, 14):
        eta, eta_prev = float(d.eta[t]), float(d.eta[t - 1])
        alpha = eta - eta_prev
        # x_t | x_{t-1} ~ N(x_{t-1} + alpha (y - x0), alpha); x_{t-1} | x0 ~ N(x0 + eta_prev (y - x0), eta_prev)
        x0, y, xt = 0.2, -0.4, 0.1
        prec = 1 / alpha + 1 / eta_prev
        mean = ((xt - alpha * (y - x0)) / alpha + (x0 + eta_prev * (y - x0)) / eta_prev) / prec
        m, v = d.q_posterior(torch.tensor([[[[xt]]]]), torch.tensor([[[[x0]]]]), torch.tensor([t]))
        assert math.isclose(float(m), mean, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(float(v), 1 / prec, rel_tol=1e-6)


def test_loss_with_dummy_models():
    d = ResShiftDiffusion()
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    perfect = lambda x_t, y_, t: x0  # noqa: E731
    zero = lambda x_t, y_, t: torch.zeros_like(x0)  # noqa: E731
    loss, parts = d.loss(perfect, x0, y, generator=torch.Generator().manual_seed(0))
    assert float(loss) == 0.0 and parts["mse"] == 0.0
    loss0, _ = d.loss(zero, x0, y, generator=torch.Generator().manual_seed(0))
    assert math.isclose(float(loss0), float((x0**2).mean()), rel_tol=1e-6)
    l1, parts1 = d.loss(zero, x0, y, generator=torch.Generator().manual_seed(0), pixel_loss="l1")
    assert math.isclose(float(l1), float(x0.abs().mean()), rel_tol=1e-6)  # trained on |error| ...
    assert math.isclose(parts1["mse"], float((x0**2).mean()), rel_tol=1e-6)  # ... MSE still reported


def test_sampler_yields_every_step_and_oracle_recovers_x0():
    d = ResShiftDiffusion()
    x0 = torch.rand(1, 3, 9, 7) * 2 - 1
    y = x0 + 0.3
    oracle = lambda x_t, y_, t: x0  # noqa: E731
    frames = list(d.sample_steps(oracle, y, generator=torch.Generator().manual_seed(1)))
    assert [f.t for f in frames] == list(range(14, -1, -1))
    assert frames[0].x_t.shape == y.shape
    out = d.sample(oracle, y, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, x0.clamp(-1, 1))
    # The first state is the prior: y plus noise of std kappa * sqrt(eta_T) = 0.99.
    assert abs(float((frames[0].x_t - y).std()) - 0.99) < 0.3
