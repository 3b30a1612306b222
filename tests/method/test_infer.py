import numpy as np
import pytest

from sr_core.config import InferConfig, preset
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.errors import UserError
from sr_core.method.infer import PlanStep, progressive_plan, target_size, upscale


def sizes(plan):
    return [s.size for s in plan]


def test_plan_two_then_four():
    plan = progressive_plan((100, 60), target_size((100, 60), scale=4), factors_w=[2, 4], factors_h=[2, 4])
    assert sizes(plan) == [(200, 120), (400, 240)]


def test_non_integer_scale_is_exact_and_steps_bounded():
    tgt = target_size((101, 67), scale=3.3)
    assert tgt == (333, 221)
    plan = progressive_plan((101, 67), tgt, max_step=2.0)
    assert sizes(plan)[-1] == (333, 221) and len(plan) == 2
    prev = (101, 67)
    for s in sizes(plan):
        assert s[0] / prev[0] <= 2.0 + 1e-9 and s[1] / prev[1] <= 2.0 + 0.02
        prev = s


def test_per_axis_and_exact_size():
    assert target_size((64, 48), scale_w=2, scale_h=3) == (128, 144)
    assert sizes(progressive_plan((64, 48), (128, 144)))[-1] == (128, 144)
    assert target_size((64, 48), size=(100, 49)) == (100, 49)
    assert sizes(progressive_plan((64, 48), (100, 49))) == [(100, 49)]


def test_final_pass_adds_a_refine_step():
    plan = progressive_plan((10, 10), (20, 20), final_pass=True)
    assert plan == [PlanStep((20, 20)), PlanStep((20, 20), refine_only=True)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale=0.5), ">= 1"),
        (dict(scale=-2), ">= 1"),
        (dict(scale=float("nan")), "finite"),
        (dict(scale=float("inf")), "finite"),
        (dict(scale=1), "nothing to upscale"),
        (dict(scale=100), "absurd"),
        (dict(size=(50, 80)), "smaller"),
        (dict(scale=2, size=(200, 200)), "exactly one"),
        (dict(), "exactly one"),
    ],
)
def test_bad_targets(kwargs, message):
    with pytest.raises(UserError, match=message):
        target_size((64, 64), **kwargs)


def test_force_allows_huge_factor():
    assert target_size((4, 4), scale=100, force=True) == (400, 400)


def test_upscale_with_oracle_like_model_returns_exact_sizes_and_frames():
    rgb = np.random.default_rng(0).random((9, 11, 3)).astype(np.float32)
    identity = lambda x_t, y, t: y  # noqa: E731  (x0 = condition: the result is bicubic)
    cfg = preset("smoke")
    plan = progressive_plan((11, 9), target_size((11, 9), scale=3.3), final_pass=True)
    res = upscale(identity, rgb, plan, ResShiftDiffusion(cfg.diffusion), InferConfig(), keep_frames=True,
                  progress=False)
    assert res.image.shape == (30, 36, 3)
    assert [a.shape[:2] for a in res.intermediates] == [(s.size[1], s.size[0]) for s in plan]
    assert len(res.frames) == len(plan) and len(res.frames[0]) == cfg.diffusion.timesteps
    assert res.image.min() >= 0 and res.image.max() <= 1
    # The model that returns y gives exactly the bicubic chain.
    from sr_core.method.infer import bicubic_upscale

    first = bicubic_upscale(rgb, plan[0].size)
    assert np.allclose(res.intermediates[0], first, atol=1e-6)
