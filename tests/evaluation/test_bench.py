"""`sr-core bench` end to end on tiny images, and its report helpers."""

import json

import numpy as np
import pytest

from sr_core.evaluation.bench import centre_crop, summary_markdown
from sr_core.faces.cli import main
from sr_core.runtime.io import save_image

FIELDS = {"image", "method", "scale", "protocol", "psnr_y", "ssim_y", "psnr_rgb", "color_shift",
          "perceptual", "perceptual_backend", "niqe", "seconds", "peak_mem_mb"}


def test_centre_crop():
    img = np.zeros((10, 20, 3))
    img[3:7, 8:12] = 1
    out = centre_crop(img, 4)
    assert out.shape == (4, 4, 3) and out.min() == 1
    assert centre_crop(img, 0).shape == img.shape
    assert centre_crop(img, 50).shape == img.shape


def test_summary_markdown_mean_std():
    recs = [{"image": f"i{k}", "method": "bicubic", "scale": 2, "protocol": "bicubic", "psnr_y": v,
             "ssim_y": 0.9, "psnr_rgb": v, "color_shift": 0.0, "perceptual": None, "perceptual_backend": "none",
             "niqe": None, "seconds": 1.0, "peak_mem_mb": 0.0} for k, v in enumerate([30.0, 32.0])]
    md = summary_markdown(recs)
    assert "| bicubic | x2 | bicubic | 2 | 31.00 ± 1.00 |" in md


@pytest.fixture
def one_thread():
    """The bench's --threads sets torch's global thread count: restore it afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_end_to_end(tmp_path, capsys, one_thread):
    import skimage.data

    data = tmp_path / "hr"
    src = np.asarray(skimage.data.chelsea(), np.float32) / 255.0
    save_image(data / "a.png", src[60:172, 150:262])
    save_image(data / "b.png", src[100:212, 200:312])
    out = tmp_path / "bench"
    argv = ["bench", "--data", str(data), "--methods", "bicubic,ibp,smoke", "--scales", "2",
            "--protocols", "bicubic", "--crop", "0", "--steps", "3", "--out", str(out), "--quiet", "--threads", "1",
            "--preset-override", '{"diffusion": {"timesteps": 2}}']
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 6
    assert all(FIELDS <= set(r) for r in records)
    by = {(r["image"], r["method"]): r for r in records}
    assert by[("a", "ibp")]["psnr_y"] > by[("a", "bicubic")]["psnr_y"]
    assert all(np.isfinite(r["psnr_y"]) and r["seconds"] >= 0 for r in records)
    md = (out / "results.md").read_text()
    assert "| bicubic | x2 | smoke | 2 |" in md
    assert (out / "figure.png").stat().st_size > 0
    assert (out / "images" / "bicubic_x2" / "a_smoke.png").exists()
    # A rerun finds every cell cached and computes nothing new.
    stamp = [r["seconds"] for r in records]
    assert main(argv) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["seconds"] for r in again] == stamp


def test_bench_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "--methods", "nope", "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["bench", "--protocols", "fancy", "--out", str(tmp_path / "y"), "-q"]) == 2


def test_bench_sizes_default_per_case_and_keys_its_cache_on_both_configs(monkeypatch):
    """The harness trains what `sr-core run` would: `default` sized by each case's LR (16
    filters from 64x64 px, 8 below), with --preset-override applied on top of the sizing."""
    import types

    import sr_core.evaluation.bench as bench

    seen = []
    monkeypatch.setattr(bench, "run_sr_core",
                        lambda lr, scale, up, **kw: seen.append(up.resolve(input_size=lr.shape[1::-1])) or lr)
    spec, = bench.build_methods(["default"], override={"train.lr": 1e-3})
    for side in (96, 48):
        spec.run(types.SimpleNamespace(lr=np.zeros((side, side, 3)), scale=2))
    assert [(c.model.filters, c.train.pixel_loss, c.train.lr) for c in seen] == [(16, "l1", 1e-3), (8, "mse", 1e-3)]
    assert spec.options["large_input"]["config"]["model"]["filters"] == 16
    wide, = bench.build_methods(["wide"])
    assert "large_input" not in wide.options  # other presets do not depend on the input


def test_a_preset_told_the_kernel_gets_the_protocols_blur_where_there_is_one(monkeypatch):
    """"default+kernel" is `default` handed the realistic protocol's kernel, as IBP and ZSSR
    are; the bicubic protocol has none, so there it runs as `default`; its cache key differs."""
    import sr_core.evaluation.bench as bench
    from sr_core.evaluation.protocols import make_lr

    kernels = []
    monkeypatch.setattr(bench, "run_sr_core", lambda lr, scale, up, **kw: kernels.append(kw.get("kernel")) or lr)
    told, plain = bench.build_methods(["default+kernel", "default"])
    hr = np.random.default_rng(0).random((32, 32, 3))
    realistic, bicubic = make_lr(hr, 2, "realistic", name="x"), make_lr(hr, 2, "bicubic")
    for spec in (told, plain):
        for case in (realistic, bicubic):
            spec.run(case)
    assert kernels[0] is realistic.info["kernel"] and kernels[1:] == [None, None, None]
    assert told.signature != plain.signature
    with pytest.raises(Exception, match="unknown method"):
        bench.build_methods(["bicubic+kernel"])


def test_a_preset_told_the_kernel_trains_with_it():
    """run_sr_core hands the kernel to the fit (its pairs are made with it); the upscale then
    uses the fitted kernel."""
    from sr_core.evaluation.bench import run_sr_core

    calls = []

    class Recorder:
        def fit(self, lr, **kw):
            calls.append(("fit", kw))

        def upscale(self, **kw):
            calls.append(("upscale", kw))
            return np.zeros((8, 8, 3))

    k = np.ones((3, 3)) / 9
    run_sr_core(np.zeros((4, 4, 3)), 2, Recorder(), kernel=k)
    assert calls[0][0] == "fit" and calls[0][1]["kernel"] is k and calls[0][1]["scale"] == 2
    assert calls[1][0] == "upscale" and "kernel" not in calls[1][1]
