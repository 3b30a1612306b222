"""The blind JPEG test (sr_core.method.jpeg) and what inference does with its verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr_core.config import preset
from sr_core.resolve import resolve
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import progressive_plan, upscale
from sr_core.runtime.io import load_image
from sr_core.method.jpeg import jpeg_evidence
from sr_core.evaluation.protocols import imresize, jpeg_roundtrip, make_lr, quantize8

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "astronaut_crop.png"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(SAMPLE).rgb.astype(np.float64)


@pytest.mark.parametrize("quality", [50, 80, 90])
def test_jpeg_roundtrips_are_detected(photo, quality):
    evidence = jpeg_evidence(jpeg_roundtrip(photo, quality))
    assert evidence.detected and len(evidence.steps) >= 5
    assert "JPEG compression detected" in evidence.describe()


def test_the_quantiser_steps_read_are_the_encoders(photo):
    """At quality 50 libjpeg uses its standard luma table as it is: 16, 11, 12, 14, 12 for
    the DC and the four lowest AC coefficients."""
    steps = jpeg_evidence(jpeg_roundtrip(photo, 50)).steps
    assert [steps[c] for c in ((0, 0), (0, 1), (1, 0), (2, 0), (1, 1))] == [16, 11, 12, 14, 12]


def test_the_realistic_protocols_inputs_are_detected_and_the_bicubic_ones_are_not(photo):
    """The harness's LR at x2 and x4 (64 x 64 and 32 x 32 px from this 128-px photo)."""
    for scale in (2, 4):
        assert jpeg_evidence(make_lr(photo, scale, "realistic", name="astronaut").lr).detected
        assert not jpeg_evidence(make_lr(photo, scale, "bicubic", name="astronaut").lr).detected


def test_uncompressed_images_are_not_flagged(photo):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 128)
    checker = ((np.indices((128, 128)) // 4).sum(0) % 2).astype(float)[..., None].repeat(3, -1)
    clean = {
        "photo": photo,
        "photo, bicubic half": quantize8(imresize(photo, 0.5)),
        "8-bit noise": quantize8(rng.random((96, 96, 3))),
        "gradient": np.add.outer(ramp, ramp)[..., None].repeat(3, -1) / 2,
        # one block repeated with a little noise: its coefficients sit round one value each,
        # which fits a step of any size that divides it
        "noisy checkerboard": np.clip(checker * 0.5 + 0.25 + rng.normal(0, 0.01, checker.shape), 0, 1),
        "flat": np.full((64, 64, 3), 0.3),
        "smaller than a block": rng.random((5, 7, 3)),
    }
    flagged = [name for name, img in clean.items() if jpeg_evidence(img).detected]
    assert flagged == []


def test_a_cropped_jpeg_is_found_on_its_shifted_grid_and_a_resized_one_is_not(photo):
    jpeg = jpeg_roundtrip(photo, 80)
    cropped = jpeg_evidence(jpeg[3:, 5:])
    assert cropped.detected and cropped.offset == (5, 3) and "a crop" in cropped.describe()
    assert not jpeg_evidence(jpeg[3:, 5:], search_grid=False).detected
    assert jpeg_evidence(jpeg[8:, 16:]).offset == (0, 0)  # a crop on the grid keeps it
    assert not jpeg_evidence(quantize8(imresize(jpeg, 0.5))).detected  # resizing leaves no grid


def test_grayscale_and_single_channel_inputs(photo):
    gray = jpeg_roundtrip(photo[..., :1].repeat(3, -1), 75)[..., 0]
    assert jpeg_evidence(gray).detected and jpeg_evidence(gray[..., None]).detected
    assert not jpeg_evidence(photo[..., 0]).detected


def _first_step_blurs(monkeypatch, rgb, cfg):
    import sr_core.method.infer as infer

    blurs = []
    original = infer.back_project
    monkeypatch.setattr(infer, "back_project", lambda *a, **k: blurs.append(k.get("residual_blur", 0.0)) or original(*a, **k))
    plan = progressive_plan((rgb.shape[1], rgb.shape[0]), (2 * rgb.shape[1], 2 * rgb.shape[0]), max_step=2.0)
    result = upscale(lambda x_t, y, t: y, rgb.astype(np.float32), plan, ResShiftDiffusion(cfg.diffusion),
                     cfg.infer, progress=False)
    return blurs[0], result


def test_inference_blurs_the_residual_of_a_jpeg_input_only(monkeypatch, photo):
    cfg = preset("smoke")
    cfg.infer.back_projection, cfg.infer.jpeg_residual_blur = 2, 1.0
    blur, result = _first_step_blurs(monkeypatch, jpeg_roundtrip(photo, 80), cfg)
    assert blur == 1.0 and result.jpeg.detected
    blur, result = _first_step_blurs(monkeypatch, photo, cfg)
    assert blur == 0.0 and not result.jpeg.detected
    cfg.infer.jpeg_residual_blur = 0.0  # off: the test is not even run
    blur, result = _first_step_blurs(monkeypatch, jpeg_roundtrip(photo, 80), cfg)
    assert blur == 0.0 and result.jpeg is None
    cfg.infer.jpeg_residual_blur, cfg.infer.bp_residual_blur = 1.0, 0.7  # --noisy's blur wins, clean or not
    blur, result = _first_step_blurs(monkeypatch, photo, cfg)
    assert blur == 0.7 and result.jpeg is None


def test_presets_look_for_jpeg_but_the_paper_does_not():
    assert preset("default").infer.jpeg_residual_blur == 1.0
    assert resolve("default", input_size=(128, 128)).infer.jpeg_residual_blur == 1.0
    assert preset("paper").infer.jpeg_residual_blur == 0.0
    cfg = preset("default")
    cfg.infer.jpeg_residual_blur = 9
    with pytest.raises(Exception, match="jpeg_residual_blur"):
        cfg.validate()
