"""Figures and notebook widgets: pure render functions, and widgets driven by their sliders."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from sr_core.faces import viz
from sr_core.config import DiffusionConfig
from sr_core.method.diffusion import ResShiftDiffusion, StepFrame


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 1, 32, dtype=np.float32)
    img = np.stack([base[None, :].repeat(32, 0), base[:, None].repeat(32, 1), np.full((32, 32), 0.5, np.float32)], 2)
    return np.clip(img + rng.normal(0, 0.05, img.shape).astype(np.float32), 0, 1)


@pytest.fixture
def frames() -> list[StepFrame]:
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 16, 20, generator=gen) * 2 - 1
    diffusion = ResShiftDiffusion(DiffusionConfig(timesteps=4))
    # A dummy model that always predicts y: enough to exercise the explorer.
    return list(diffusion.sample_steps(lambda x, y, t: y, y, generator=gen))


def test_colab_badge_points_at_the_notebook():
    url = viz.colab_url("01_degradation_synthesis")
    assert url == f"https://colab.research.google.com/github/{viz.COLAB_REPO}/blob/{viz.COLAB_BRANCH}/notebooks/01_degradation_synthesis.ipynb"
    assert viz.colab_url("01_degradation_synthesis.ipynb") == url
    assert viz.colab_badge("01_degradation_synthesis") == f"[![Open In Colab]({viz.COLAB_BADGE_SVG})]({url})"
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", viz.COLAB_REPO)


def test_render_degradation_identity_and_effects(image):
    same = viz.render_degradation(image, blur_sigma=0, noise_sigma=0, jpeg_quality=100, resize_factor=1)
    assert same.shape == image.shape and same.dtype == np.float32
    assert np.abs(same - image).max() <= 0.5 / 255 + 1e-6  # only 8-bit quantization
    for params in (dict(blur_sigma=1.5), dict(noise_sigma=10.0), dict(jpeg_quality=10), dict(resize_factor=2.0)):
        full = {**dict(blur_sigma=0, noise_sigma=0, jpeg_quality=100, resize_factor=1.0), **params}
        out = viz.render_degradation(image, **full)
        assert out.shape == image.shape and 0 <= out.min() and out.max() <= 1
        assert np.abs(out - image).mean() > 1 / 255, params


def test_render_degradation_is_deterministic(image):
    a = viz.render_degradation(image, noise_sigma=5.0, seed=3)
    b = viz.render_degradation(image, noise_sigma=5.0, seed=3)
    c = viz.render_degradation(image, noise_sigma=5.0, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_degradation_panel_redraws_when_a_slider_moves(image):
    pytest.importorskip("ipywidgets")
    panel = viz.degradation_panel(image)
    assert set(panel.sliders) == {"blur_sigma", "noise_sigma", "jpeg_quality", "resize_factor"}
    shown = panel.image.value
    assert shown[:8] == b"\x89PNG\r\n\x1a\n"
    for name, value in [("blur_sigma", 2.0), ("noise_sigma", 20.0), ("jpeg_quality", 10), ("resize_factor", 3.0)]:
        panel.sliders[name].value = value
        assert panel.image.value != shown, name
        shown = panel.image.value


def test_explorer_frame_shows_both_images(frames):
    assert [f.t for f in frames] == [3, 2, 1, 0]
    pair = viz.explorer_frame(frames, 0)
    assert pair.shape == (16, 2 * 20 + 4, 3) and 0 <= pair.min() and pair.max() <= 1
    assert not np.array_equal(viz.explorer_frame(frames, 0), viz.explorer_frame(frames, 3))
    # the right half is the predicted x0, mapped from [-1, 1]
    assert np.allclose(pair[:, 24:], viz.from_signed(frames[0].x0_pred))


def test_diffusion_explorer_slider_changes_the_frame(frames):
    pytest.importorskip("ipywidgets")
    diffusion = ResShiftDiffusion(DiffusionConfig(timesteps=4))
    box = viz.diffusion_explorer(frames, diffusion)
    assert (box.slider.min, box.slider.max) == (1, len(frames)) == (box.play.min, box.play.max)
    assert len(box.pngs) == len(frames) and len(set(box.pngs)) == len(frames)
    assert box.image.value == box.pngs[0]
    for step in (3, 4, 2):
        box.slider.value = step
        assert box.image.value == box.pngs[step - 1]


def test_explorer_slider_and_title_count_the_same_way(frames):
    """The slider's readout is the step the caption and the picture's title name (1..n)."""
    pytest.importorskip("ipywidgets")
    diffusion = ResShiftDiffusion(DiffusionConfig(timesteps=4))
    box = viz.diffusion_explorer(frames, diffusion)
    assert box.slider.value == 1 and box.caption.value.startswith("step 1/4 ")
    box.slider.value = 3
    assert box.caption.value.startswith("step 3/4 (t = 2)")  # frames[2].t == 1
    assert box.image.value == viz.explorer_png(frames, 3, diffusion)  # the picture titled "step 3/4"
    box.slider.value = box.slider.max
    assert box.caption.value == viz.explorer_title(frames, 4) and viz.explorer_title(frames, 4).startswith("step 4/4 (t = 1)")


def test_schedule_and_grids_render(frames):
    diffusion = ResShiftDiffusion(DiffusionConfig(timesteps=5))
    fig = viz.schedule_figure(diffusion, current_t=3)
    assert len(fig.axes[0].lines) == 3  # eta, noise std, the marker
    png = viz.figure_to_png(fig)
    assert png[:4] == b"\x89PNG"
    fig = viz.frames_figure(frames)
    assert len(fig.axes) == 2 * len(frames)
    viz._plt().close(fig)
    fig = viz.image_grid([np.zeros((4, 4, 3)), np.ones((4, 4))], ["rgb", "gray"], ncols=1)
    assert len(fig.axes) == 2
    viz._plt().close(fig)


def test_live_loss_records_without_a_notebook():
    live = viz.LiveLoss(every=2)
    for step in range(1, 6):
        live(step, {"loss": 1.0 / step})
    assert live.steps == [1, 2, 3, 4, 5] and live.losses[-1] == pytest.approx(0.2)
    viz._plt().close(live.fig)


def test_existing_figures_keep_working(tmp_path):
    history = {"step": list(range(1, 21)), "stage": [0] * 10 + [1] * 10, "loss": [1.0 / s for s in range(1, 21)]}
    path = viz.save_figure(viz.loss_figure(history), tmp_path / "loss.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    fig = viz.compare_figure([np.zeros((8, 8, 3))] * 2, ["a", "b"], crop=(0, 0, 4))
    assert len(fig.axes) == 2
    viz._plt().close(fig)


# ------------------------------------------------------------------ your photo
def _png_bytes(size=(40, 30)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 10)).save(buf, format="PNG")
    return buf.getvalue()


_NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)  # FileUpload's last_modified


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.png"
    path.write_bytes(_png_bytes((48, 64)))
    return path


@pytest.fixture
def fake_colab(monkeypatch):
    """google.colab with a files module that records downloads and answers uploads."""
    import types

    files = types.SimpleNamespace(uploads={}, downloaded=[])
    files.upload = lambda: dict(files.uploads)
    files.download = files.downloaded.append
    colab = types.ModuleType("google.colab")
    colab.files = files
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.files", files)
    return files


def test_photo_picker_defaults_to_the_sample_and_takes_an_upload_in_jupyter(sample, tmp_path):
    pytest.importorskip("ipywidgets")
    picker = viz.PhotoPicker(sample, folder=tmp_path / "uploads")
    assert picker.path == sample and picker.widget is not None
    assert picker.status.value == "photo: sample.png (48x64)"
    assert picker.load().shape == (64, 48, 3) and picker.load(max_side=32).shape == (32, 32, 3)
    # what FileUpload's value becomes when a file is picked (ipywidgets 8)
    picker.upload.value = ({"name": "../mine.png", "type": "image/png", "size": 1, "content": memoryview(_png_bytes()),
                            "last_modified": _NOW},)
    assert picker.path == tmp_path / "uploads" / "mine.png" and picker.path.exists()
    assert picker.status.value == "uploaded: mine.png (40x30): now run the cells below this one again"
    picker.upload.value = ({"name": "notes.png", "type": "image/png", "size": 1, "content": memoryview(b"not an image"),
                            "last_modified": _NOW},)
    assert picker.path.name == "mine.png" and picker.status.value.startswith("not used (notes.png)")
    assert not (tmp_path / "uploads" / "notes.png").exists()


def test_photo_picker_in_colab_uploads_only_when_asked(sample, tmp_path, fake_colab):
    fake_colab.uploads["phone.png"] = _png_bytes()
    picker = viz.PhotoPicker(sample, folder=tmp_path / "up")
    assert picker.path == sample and picker.widget is None  # no upload asked: the sample
    picker = viz.PhotoPicker(sample, upload=True, folder=tmp_path / "up")
    assert picker.path == tmp_path / "up" / "phone.png" and picker.describe() == "uploaded: phone.png (40x30)"
    fake_colab.uploads.clear()  # cancelled
    assert viz.PhotoPicker(sample, upload=True, folder=tmp_path / "up").path == sample


def test_offer_download_in_colab_and_in_jupyter(sample, fake_colab, monkeypatch, tmp_path):
    assert viz.offer_download(sample) is None and fake_colab.downloaded == [str(sample)]
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.chdir(tmp_path)
    link = viz.offer_download(sample)
    assert link.path == "sample.png" and "href='sample.png'" in link._repr_html_()
