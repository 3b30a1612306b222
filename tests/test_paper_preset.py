"""`paper` is the original implementation's defaults, field by field (docs/method.md).

Every field of every section is listed, so a field added to the config fails here until
someone decides what the original did. Fields the original has no knob for (step_factor,
synthesis, max_train_pixels, the back-projection and tiling options) hold the values that do
what it did: no scale-aware pairs, per-sample synthesis, no back-projection.
"""

import dataclasses
import math

import pytest
import torch

from sr_core.config import preset

PI = math.pi

ORIGINAL = {
    "degradation": {
        "kernel_sizes": (3, 5), "kernel_pad_to": 7,
        # sinc with p = 0.1; otherwise isotropic 0.6 / anisotropic 0.4 Gaussians
        "kernel_probs": {"iso": 0.54, "aniso": 0.36, "generalized_iso": 0.0, "generalized_aniso": 0.0,
                         "plateau_iso": 0.0, "plateau_aniso": 0.0, "sinc": 0.1},
        "blur_sigma": (0.2, 0.5), "betag_range": (0.5, 4.0), "betap_range": (1.0, 2.0),
        "sinc_omega": (PI / 3, PI), "resize_range": (0.8, 1.0), "resize_modes": ("area", "bilinear", "bicubic"),
        "gaussian_noise_prob": 0.5, "gaussian_sigma": (1.0, 3.0), "poisson_scale": (0.05, 0.5),
        "gray_noise_prob": 0.4, "jpeg_prob": 0.0, "jpeg_quality": (70, 95), "usm_target": True,
        "known_kernel": (),  # the original has no known-kernel mode: random kernels only
    },
    "data": {
        "image_scales": (0.9, 1.0), "batch_size": 8, "fixed_batch": True, "crop_size": 0, "flips": False,
        "pair_mode": "paper", "step_factor": (2.0, 2.0), "synthesis": "per_sample",
        "max_train_pixels": 1024 * 1024,
    },
    "model": {"arch": "nextnet", "depth": 4, "filters": 8, "mult": 3, "kernel_size": 7, "residual": False,
              "norm": True, "members": 1, "partner": ""},  # the original's NextNet: LayerNorm in all blocks but the first
    "diffusion": {"timesteps": 15, "kappa": 1.0, "min_noise_level": 0.01, "max_noise_level": 0.99, "power": 0.3},
    "train": {
        "steps_per_scale": (100,), "lr": 1e-2, "lr_schedule": "step", "lr_milestones": (), "lr_gamma": 0.1,
        "ema_decay": 0.995, "ema_start": 200, "ema_every": 10, "perceptual_weight": 1.0, "pixel_loss": "mse",
        "checkpoint_every": 100, "grad_clip": 0.0,
    },
    "infer": {
        "max_step_factor": 2.0, "final_pass": True, "use_ema": False, "resampler": "bicubic", "clamp": True,
        "stochastic": True, "back_projection": 0, "bp_resampler": "", "bp_residual_blur": 0.0,
        "jpeg_residual_blur": 0.0, "kernel_iterations": 2, "project_every_step": False, "self_ensemble": False,
        "ensemble_steps": 0, "tile": -1,
        "retrain_steps": False, "final_projection": False,  # one training; each step matches its own input
    },
}


@pytest.mark.parametrize("section", sorted(ORIGINAL))
def test_every_field_is_the_originals(section):
    got = dataclasses.asdict(getattr(preset("paper"), section))
    assert set(got) == set(ORIGINAL[section]), "a field was added or removed: decide what the original did"
    for name, want in ORIGINAL[section].items():
        if isinstance(want, dict):
            assert got[name] == pytest.approx(want), name
        elif isinstance(want, tuple) and want and isinstance(want[0], float):
            assert got[name] == pytest.approx(want), name
        else:
            assert got[name] == want, name
    assert preset("paper").seed == 0


def test_learning_rate_stays_constant():
    """MultiStepLR without milestones: 1e-2 at every one of the 200 steps."""
    from sr_core.method.optim import Adam, LRSchedule

    cfg = preset("paper")
    opt = Adam([torch.zeros(1, requires_grad=True)], lr=cfg.train.lr)
    sched = LRSchedule(opt, cfg.train.lr_schedule, total=cfg.total_steps(),
                       milestones=cfg.train.lr_milestones, gamma=cfg.train.lr_gamma)
    rates = []
    for _ in range(cfg.total_steps()):
        sched.step()
        rates.append(opt.lr)
    assert cfg.total_steps() == 200 and rates == [1e-2] * 200


# sqrt(eta_t), t = 1..15, from docs/method.md: 0.01 * b^(((t-1)/14)^0.3 * 14), b = (0.99/0.01)^(1/14),
# printed once by a separate one-liner (awk's exp/log, no Python):
# awk 'BEGIN{b=exp(log(0.99/0.01)/14); for(t=1;t<=15;t++) printf "%.12f\n", 0.01*b^((((t-1)/14)^0.3)*14)}'
SQRT_ETA = [
    0.010000000000, 0.080196367822, 0.129761245842, 0.180770226375, 0.234661723500,
    0.291960620167, 0.352943153810, 0.417791374060, 0.486645069217, 0.559623096375,
    0.636833348962, 0.718377855192, 0.804355565968, 0.894863959112, 0.990000000000,
]


def test_schedule_matches_the_hand_table():
    from sr_core.method.diffusion import ResShiftDiffusion

    d = ResShiftDiffusion(preset("paper").diffusion)
    assert d.sqrt_eta.tolist() == pytest.approx(SQRT_ETA, abs=1e-11)
    assert d.eta.tolist() == pytest.approx([s * s for s in SQRT_ETA], abs=1e-11)


def test_parameter_count_is_the_originals():
    from sr_core.method.model import NextNet, count_parameters

    # The original NextNet with depth 4, 8 filters: 20,677 parameters.
    assert count_parameters(NextNet(preset("paper").model)) == 20_677
