"""The Upscaler owns a run: one resolved configuration, any image kind in and the same out,
save/load, and every face (run, train, bench, the original CLI) resolving the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_core import Upscaler, UserError
from sr_core.faces.cli import main
from sr_core.resolve import Target, resolve

QUICK = {"train.steps_per_scale": [3], "data.image_scales": [1.0]}


@pytest.fixture(scope="module")
def fitted(sample_rgb):
    return Upscaler("smoke", device="cpu", **QUICK).fit(sample_rgb[:24, :32], scale=2, progress=False)


def test_image_kinds_come_back_as_they_went_in(fitted, sample_rgb):
    arr = fitted.upscale(scale=2, progress=False)  # the fitted array, by default
    assert isinstance(arr, np.ndarray) and arr.shape == (48, 64, 3) and arr.dtype == np.float32
    u8 = fitted.upscale((sample_rgb[:24, :32] * 255).round().astype(np.uint8), scale=2, progress=False)
    assert u8.dtype == np.uint8 and u8.shape == (48, 64, 3)
    assert np.abs(u8.astype(np.float32) / 255 - arr).max() <= 1 / 255 + 1e-6  # the same result, quantised
    gray = fitted.upscale(u8[:, :, 0][:24, :32], size=(40, 30), progress=False)
    assert gray.shape == (30, 40) and gray.dtype == np.uint8
    rgba = Image.fromarray(np.dstack([u8[:24, :32], np.full((24, 32), 200, np.uint8)]), "RGBA")
    out = fitted.upscale(rgba, scale_w=2, scale_h=1.5, progress=False)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == (64, 36)
    assert abs(np.asarray(out)[..., 3].astype(int) - 200).max() <= 1  # alpha upscaled, not lost
    assert fitted.last.size == (64, 36) and [s.size for s in fitted.last.plan] == [(64, 36)]


def test_config_records_what_was_resolved_and_why(fitted):
    cfg = fitted.config
    assert cfg.resolved["input_size"] == [32, 24] and cfg.resolved["plan"] == [[64, 48]]
    assert any("set by the caller" in d for d in cfg.resolved["decisions"])
    sized = Upscaler("default").resolve(input_size=(128, 128), scale=4)
    assert sized.model.filters == 16 and sized.resolved["variant"] == "wide"
    assert sized.data.step_factor == (2.0, 2.0) and sized.resolved["plan"] == [[256, 256], [512, 512]]
    x3 = Upscaler("default").resolve(input_size=(128, 128), scale=3)  # two steps of about 1.73
    assert x3.resolved["plan"] == [[222, 222], [384, 384]] and x3.data.step_factor == (222 / 128, 222 / 128)
    assert Upscaler("default", **{"data.step_factor": [2.5, 2.5]}).resolve(
        input_size=(64, 64), scale=3).data.step_factor == (2.5, 2.5)  # the caller's word wins


def test_save_and_load_give_the_same_upscale(fitted, tmp_path):
    before = fitted.upscale(scale=2, progress=False)
    folder = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.pt"]
    loaded = Upscaler.load(folder, device="cpu")
    assert loaded.config.resolved["input_size"] == [32, 24]
    with pytest.raises(UserError, match="pass the image"):
        loaded.upscale(scale=2)
    assert np.array_equal(loaded.upscale(fitted.image.rgb, scale=2, progress=False), before)
    with pytest.raises(UserError, match="cannot change"):
        Upscaler.load(folder, **{"model.filters": 4})
    assert Upscaler.load(folder, noisy=True).config.infer.bp_residual_blur == 1.0


def test_bad_use_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown preset"):
        Upscaler("nope")
    with pytest.raises(UserError, match="unknown config field"):
        Upscaler(**{"train.nope": 1})
    with pytest.raises(UserError, match="fit the Upscaler"):
        Upscaler().upscale(scale=2)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        Upscaler().resolve(np.full((8, 8, 3), 2.0))
    with pytest.raises(UserError, match="file path, a PIL image or an array"):
        Upscaler().resolve(object())
    with pytest.raises(UserError, match="directory with no model"):
        Upscaler.load(tmp_path)


def test_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, sample_rgb, capsys):
    from sr_core.runtime.io import save_image

    img = save_image(tmp_path / "p.png", np.resize(sample_rgb, (100, 100, 3)))
    assert main(["run", str(img), "--scale", "3", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["resolved"]["variant"] == "wide" and cfg["model"]["filters"] == 16
    assert cfg["data"]["step_factor"][0] == 173 / 100 and not (tmp_path / "r").exists()
    assert main(["train", str(img), "--dry-run", "--infer.tile", "64"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["infer"]["tile"] == 64 and cfg["data"]["step_factor"] == [2.0, 2.0]


def test_run_writes_one_config_that_includes_the_flags(tmp_path, sample_rgb):
    from sr_core.runtime.io import save_image

    img = save_image(tmp_path / "p.png", sample_rgb[:24, :32])
    out = tmp_path / "run"
    assert main(["run", str(img), "--scale", "2", "--out", str(out), "--preset", "smoke", "--noisy", "--tile", "0",
                 "--train.steps_per_scale", "2", "-q"]) == 0
    assert [p.name for p in out.glob("*config*.json")] == ["config.json"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["infer"]["bp_residual_blur"] == 1.0 and cfg["infer"]["tile"] == 0
    assert any("noisy" in d for d in cfg["resolved"]["decisions"])


def test_every_face_trains_on_the_step_factor_of_its_plan(monkeypatch, sample_rgb):
    """run, train, bench and the original CLI resolve the step factor the same way: from the
    plan's first step where a target is known, the preset's x2 where not."""
    import sr_core.evaluation.bench as bench
    import sr_core.upscaler as upscaler_mod

    seen = []

    def record(self, image, **kw):
        seen.append(self.resolve(image, target=Target(**{k: v for k, v in kw.items() if k in Target.__annotations__})))
        raise KeyboardInterrupt  # stop before training

    monkeypatch.setattr(upscaler_mod.Upscaler, "fit", record)
    lr = sample_rgb[:32, :32].astype(np.float64)
    for argv in (["run", "--scale", "3"], ["train"]):
        assert main(argv[:1] + [str(Path(__file__).parents[1] / "data" / "chelsea_crop.png")] + argv[1:] +
                    ["--preset", "default", "-q"]) == 130
    spec, = bench.build_methods(["default"])
    with pytest.raises(KeyboardInterrupt):
        spec.run(type("Case", (), {"lr": lr, "scale": 3, "info": {}})())
    factors = [c.data.step_factor[0] for c in seen]
    assert factors == [222 / 128, 2.0, 55 / 32]  # 128 px -> 222 -> 384; none; 32 px -> 55 -> 96
    assert resolve("default", input_size=(32, 32), target=Target(plan_w=[2, 4], plan_h=[2, 4])).data.step_factor == (2, 2)


def test_a_gradual_plan_trains_again_on_each_steps_input(monkeypatch, sample_rgb):
    """infer.retrain_steps: the second step of an x4 runs a model trained on the first step's
    output, for that step's factor; the first step is the fitted model's own result."""
    import sr_core.method.train as train_mod

    trained = []
    real_train = train_mod.train

    def spy(rgb, cfg, **kw):
        trained.append((rgb.shape, cfg.data.step_factor))
        return real_train(rgb, cfg, **kw)

    monkeypatch.setattr(train_mod, "train", spy)
    lr = sample_rgb[:24, :32]
    plain = Upscaler("smoke", device="cpu", **QUICK).fit(lr, scale=4, progress=False)
    gradual = Upscaler("smoke", device="cpu", **QUICK, **{"infer.retrain_steps": True}).fit(lr, scale=4, progress=False)
    assert any("gradual: 1 more training" in d for d in gradual.config.resolved["decisions"])
    a, b = plain.upscale(scale=4, progress=False), gradual.upscale(scale=4, progress=False)
    assert trained == [((24, 32, 3), (2.0, 2.0)), ((24, 32, 3), (2.0, 2.0)), ((48, 64, 3), (2.0, 2.0))]
    assert a.shape == b.shape == (96, 128, 3)
    np.testing.assert_array_equal(plain.last.intermediates[0], gradual.last.intermediates[0])  # same first step
    assert np.abs(a - b).max() > 1e-3  # the second step ran another model
    x3 = Upscaler("smoke", device="cpu", **QUICK, **{"infer.retrain_steps": True}).fit(lr[:16, :16], scale=3,
                                                                                        progress=False)
    x3.upscale(scale=3, progress=False)
    assert trained[-1][0] == (28, 28, 3) and trained[-1][1][0] == pytest.approx(48 / 28)  # 16 -> 28 -> 48


def test_import_sr_core_does_not_import_torch():
    code = "import sys, sr_core; sr_core.Upscaler; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_known_kernel_trains_its_pairs_in_one_step_and_matches_the_output(monkeypatch, sample_rgb, tmp_path):
    """fit(kernel=...): the pairs are made with the kernel, for one step of the whole scale
    (the kernel belongs to it; `quality` then keeps its one-step configuration), and
    upscale matches through that kernel by default; another scale, a plan of several steps,
    no scale at all or a malformed kernel are one-line errors."""
    import sr_core.method.train as train_mod

    seen = []
    real_train = train_mod.train
    monkeypatch.setattr(train_mod, "train", lambda rgb, cfg, **kw: seen.append(cfg) or real_train(rgb, cfg, **kw))
    k = np.zeros((5, 5), np.float32)
    k[1:4, 1:4] = 2.0  # normalised on the way in
    lr = sample_rgb[:24, :32]
    up = Upscaler("fast", device="cpu", **QUICK).fit(lr, scale=4, kernel=k, progress=False)
    cfg = seen[-1]
    np.testing.assert_allclose(cfg.degradation.kernel_array(), k / k.sum(), atol=1e-7)
    assert cfg.data.step_factor == (4.0, 4.0) and cfg.resolved["plan"] == [[128, 96]]
    assert any("told the blur kernel (5x5)" in d for d in cfg.resolved["decisions"])
    out = up.upscale(scale=4, progress=False)
    assert out.shape == (96, 128, 3) and len(up.last.plan) == 1 and up.last.kernel_size == 5
    with pytest.raises(UserError, match="one x4 step"):
        up.upscale(scale=2, progress=False)
    loaded = Upscaler.load(up.save(tmp_path / "told"))  # the kernel travels with the model
    np.testing.assert_array_equal(loaded.upscale(lr, scale=4, progress=False), out)
    assert loaded.last.kernel_size == 5
    quality = Upscaler("quality").resolve(input_size=(32, 24), scale=4, kernel=k)
    assert quality.resolved["variant"] == "quality" and not quality.infer.retrain_steps
    assert quality.resolved["plan"] == [[128, 96]]
    for bad, message in [(dict(scale=4, kernel=np.ones((4, 4))), "odd side"),
                         (dict(scale=4, kernel=np.full((3, 3), np.nan)), "NaN"),
                         (dict(kernel=k), "give the scale"),
                         (dict(plan=[2, 4], kernel=k), "one step")]:
        with pytest.raises(UserError, match=message):
            Upscaler("default").resolve(input_size=(32, 24), **bad)
    # Same-size pairs (smoke, paper) cannot learn a kernel: it only matches their output.
    smoke = Upscaler("smoke").resolve(input_size=(32, 24), scale=4, kernel=k)
    assert not smoke.degradation.known_kernel and any("only matches" in d for d in smoke.resolved["decisions"])
