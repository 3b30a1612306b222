"""The mean colour of an upscale, with nothing (no back-projection) to pull it back.

Back-projection re-imposes the input's channel means, so a colour cast of the network is
only visible with it switched off: `default` with `infer.back_projection=0` and
`infer.project_every_step=False`, and `paper`, which has none.
"""

import copy
from pathlib import Path

import numpy as np

from sr_core.config import preset
from sr_core.evaluation.metrics import color_shift
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import progressive_plan, upscale


def _shift(model, lr, cfg, *, seed=0):
    """Largest channel-mean difference (grey levels) between the x2 output and the input."""
    h, w = lr.shape[:2]
    plan = progressive_plan((w, h), (2 * w, 2 * h), max_step=cfg.infer.max_step_factor, final_pass=cfg.infer.final_pass)
    out = upscale(model, lr, plan, ResShiftDiffusion(cfg.diffusion), cfg.infer, progress=False, seed=seed).image
    # Nearest-neighbour x2 has exactly the input's channel means.
    return color_shift(out, lr.repeat(2, axis=0).repeat(2, axis=1))


def test_default_without_back_projection_keeps_the_colour(trained_default_x2):
    result, case = trained_default_x2
    cfg = copy.deepcopy(result.config)  # the trained model is shared: leave its config alone
    cfg.infer = type(cfg.infer)(**{**cfg.infer.__dict__, "back_projection": 0, "project_every_step": False})
    shift = _shift(result.sampling_model(), case.lr.astype(np.float32), cfg)
    print(f"colour shift, default without back-projection: {shift:+.2f} grey levels")  # measured +0.81
    assert abs(shift) < 2.0


def test_paper_colour_drift_is_measured_and_bounded():
    """`paper` has no back-projection, and its model learns a cast: at this cheap budget
    (32 x 32 input, 30 steps per scale instead of 100; all else the original's) the blue
    mean drifts by -2.4 grey levels, the same for every sampler seed, so it is the network's,
    not the sampler's noise (-2.35 with 50 steps, -9.3 with 100, -5.6 at 48 x 48 with 100;
    casts of 2-17 are documented at full budget). This is not a fixed weakness but a measured one: the bound catches a cast
    three times as large (an untrained network drifts 35-60)."""
    from sr_core.evaluation.protocols import make_lr
    from sr_core.method.train import train
    from sr_core.runtime.io import load_image

    hr = load_image(Path(__file__).resolve().parents[2] / "data" / "coffee_crop.png").rgb.astype(np.float64)[16:112, 16:112]
    lr = make_lr(hr, 3, "bicubic").lr.astype(np.float32)  # 32 x 32
    cfg = preset("paper")
    cfg.train.steps_per_scale = (30,)
    model = train(lr, cfg, progress=False).sampling_model()
    shifts = [_shift(model, lr, cfg, seed=s) for s in (0, 1)]
    print(f"colour shift, paper at a cheap budget: {shifts[0]:+.2f} / {shifts[1]:+.2f} grey levels (seeds 0 / 1)")
    assert all(abs(s) < 8.0 for s in shifts)
    assert abs(shifts[0] - shifts[1]) < 0.5  # a learned cast, not sampling noise
