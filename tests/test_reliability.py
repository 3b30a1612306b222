"""Hardening: bad inputs, odd images, bad targets, unwritable outputs, untrusted checkpoints,
signals during training and upscaling. Each test is one or more rows of docs/reliability.md.

The contract: a correct result, or one line on stderr and exit code 2 (130 for a signal);
never a traceback, never a half-written output under the final name, never a changed input.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr_core.runtime.checkpoint import load_checkpoint, save_checkpoint
from sr_core.faces.cli import main
from sr_core.config import Config, preset
from sr_core.errors import UserError
from sr_core.runtime.io import load_image, save_image
from sr_core.method.train import TrainState, load_model, train

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "smoke", "--train.steps_per_scale", "3", "--data.image_scales", "1.0", "-q"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors on shared cores: one thread is many times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, sample_rgb) -> Path:
    """A smoke checkpoint trained for two steps on a 16x16 crop (weights barely matter here)."""
    torch.set_num_threads(1)
    cfg = preset("smoke")
    cfg.data.image_scales = (1.0,)
    cfg.train.steps_per_scale = (2,)
    out = tmp_path_factory.mktemp("ckpt")
    train(sample_rgb[:16, :16], cfg, out_dir=out, progress=False)
    return out / "checkpoints" / "last.pt"


@pytest.fixture
def small_png(tmp_path, sample_rgb) -> Path:
    return save_image(tmp_path / "small.png", sample_rgb[:12, :16])


def run_cli(argv, capsys) -> tuple[int, str]:
    """main(argv) -> (exit code, stderr); argparse's SystemExit counts as an exit code."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err.strip()


def assert_one_line_error(rc, err, pattern=None):
    import re

    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    if pattern:
        assert re.search(pattern, err), err


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- bad input files
def _truncated(kind):
    def make(p, rgb):
        buf = p.with_suffix(".full" + p.suffix)
        Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, quality=95) if kind == "jpg" else save_image(buf, rgb)
        data = buf.read_bytes()
        buf.unlink()
        p.write_bytes(data[: len(data) * 2 // 3])
    return make


BAD_FILES = {
    "zero-byte": ("x.png", lambda p, rgb: p.write_bytes(b""), "empty"),
    "truncated-png": ("x.png", _truncated("png"), "corrupt or truncated"),
    "truncated-jpeg": ("x.jpg", _truncated("jpg"), "corrupt or truncated"),
    "text-named-png": ("x.png", lambda p, rgb: p.write_text("not an image\n"), "not an image"),
    "directory": ("x.png", lambda p, rgb: p.mkdir(), "directory"),
    "missing": ("x.png", lambda p, rgb: None, "not found"),
    "1x1": ("x.png", lambda p, rgb: save_image(p, rgb[:1, :1]), "too small"),
    "1px-wide-strip": ("x.png", lambda p, rgb: save_image(p, rgb[:40, :1]), "too small"),
    "1px-high-strip": ("x.png", lambda p, rgb: save_image(p, rgb[:1, :40]), "too small"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_file_is_one_line_exit_2(tmp_path, capsys, ckpt, sample_rgb, case):
    name, make, message = BAD_FILES[case]
    path = tmp_path / name
    make(path, sample_rgb[:64, :64])
    before = path.read_bytes() if path.is_file() else None
    out = tmp_path / "out.png"
    rc, err = run_cli(["upscale", path, "-c", ckpt, "--scale", "2", "-o", out, "-q"], capsys)
    assert_one_line_error(rc, err, message)
    assert not out.exists() and no_temp_files(tmp_path)
    if before is not None:
        assert path.read_bytes() == before


# ------------------------------------------------------------ odd but valid images
def _pil(arr, mode=None, fmt_kw=None):
    def make(p):
        im = Image.fromarray(arr)
        if mode:
            im = im.convert(mode)
        im.save(p, **(fmt_kw or {}))
    return make


def _exif_rotated(p, arr):
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # display = stored image rotated 90 degrees clockwise
    im.save(p, exif=exif, quality=95)


def odd_images(rgb8):
    """name -> (file name, maker, expected input (w, h), bit depth, gray, alpha)."""
    rgba8 = np.dstack([rgb8, np.linspace(0, 255, rgb8.shape[0] * rgb8.shape[1]).astype(np.uint8)
                       .reshape(rgb8.shape[:2])])
    g16 = (rgb8[..., 0].astype(np.uint16) * 257)
    rgb16 = rgb8.astype(np.float32) / 255
    h, w = rgb8.shape[:2]
    return {
        "7x7": ("a.png", _pil(rgb8[:7, :7]), (7, 7), 8, False, False),
        "4px-wide-strip": ("a.png", _pil(rgb8[:, :4]), (4, h), 8, False, False),
        "16bit-rgb": ("a.png", lambda p: save_image(p, rgb16, bit_depth=16), (w, h), 16, False, False),
        "16bit-gray": ("a.png", _pil(g16), (w, h), 16, True, False),
        "gray": ("a.png", _pil(rgb8, "L"), (w, h), 8, True, False),
        "gray+alpha": ("a.png", _pil(rgba8, "LA"), (w, h), 8, None, True),
        "rgba": ("a.png", _pil(rgba8), (w, h), 8, False, True),
        "palette": ("a.png", _pil(rgb8, "P"), (w, h), 8, False, False),
        "palette+transparency": ("a.png", _pil(rgb8, "P", {"transparency": 0}), (w, h), 8, False, True),
        "cmyk-jpeg": ("a.jpg", _pil(rgb8, "CMYK", {"quality": 95}), (w, h), 8, False, False),
        "exif-rotated-jpeg": ("a.jpg", lambda p: _exif_rotated(p, rgb8), (h, w), 8, False, False),
        "unicode-and-spaces": ("dír with space/ñame é 画.png", _pil(rgb8), (w, h), 8, False, False),
        "bmp": ("a.bmp", _pil(rgb8), (w, h), 8, False, False),
        "webp": ("a.webp", _pil(rgb8, None, {"lossless": True}), (w, h), 8, False, False),
    }


@pytest.mark.parametrize("case", sorted(odd_images(np.zeros((12, 16, 3), np.uint8))))
def test_odd_images_upscale_to_the_exact_size(tmp_path, capsys, ckpt, sample_rgb, case):
    rgb8 = np.round(sample_rgb[:12, :16] * 255).astype(np.uint8)
    name, make, (w, h), depth, gray, alpha = odd_images(rgb8)[case]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    before = path.read_bytes()
    out = tmp_path / "out dir é" / "out.png"
    rc, err = run_cli(["upscale", path, "-c", ckpt, "--scale", "2", "-o", out, "-q"], capsys)
    assert rc == 0, err
    result = load_image(out)
    assert result.size == (2 * w, 2 * h)
    assert result.bit_depth == depth
    assert (result.alpha is not None) == alpha
    if gray is not None:
        assert result.gray == gray
    assert path.read_bytes() == before and no_temp_files(tmp_path)
    if case == "cmyk-jpeg":  # colours survive the CMYK round trip (no inversion)
        assert np.abs(load_image(path).rgb - rgb8 / 255).mean() < 0.08


# ------------------------------------------------------------------ bad targets
@pytest.mark.parametrize(
    "target, message",
    [
        (["--scale", "1"], "nothing to upscale"),
        (["--scale", "0.5"], ">= 1"),
        (["--scale", "-2"], ">= 1"),
        (["--scale", "0"], ">= 1"),
        (["--scale", "nan"], "finite"),
        (["--scale", "inf"], "finite"),
        (["--scale", "-inf"], "expected one argument"),  # argparse reads -inf as an option
        (["--scale=-inf"], "finite"),
        (["--scale", "3x"], "not a number"),
        (["--scale", "1e9"], "absurd"),
        (["--scale-w", "2", "--scale-h", "0.5"], ">= 1"),
        (["--size", "0x10"], "positive"),
        (["--size", "16x12"], "nothing to upscale"),
        (["--size", "12x"], "--size"),
        (["--scale", "2", "--size", "40x30"], "exactly one"),
        ([], "give a target"),
    ],
)
def test_bad_target_is_one_line_exit_2(tmp_path, capsys, ckpt, small_png, target, message):
    out = tmp_path / "out.png"
    rc, err = run_cli(["upscale", small_png, "-c", ckpt, "-o", out, "-q", *target], capsys)
    assert_one_line_error(rc, err, message)
    assert not out.exists()


# ------------------------------------------------------------------ bad outputs
def test_output_whose_parent_is_a_file(tmp_path, capsys, ckpt, small_png):
    """Stands in for a read-only folder: we may run as root, where chmod stops nothing."""
    (tmp_path / "afile").write_text("x")
    rc, err = run_cli(["upscale", small_png, "-c", ckpt, "--scale", "2", "-o", tmp_path / "afile" / "o.png", "-q"],
                      capsys)
    assert_one_line_error(rc, err, "cannot create output folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_read_only_folder(tmp_path, capsys, ckpt, small_png):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes; the check itself runs as `nobody` in "
                        "tests/runtime/test_io.py::test_unwritable_folder, and test_output_whose_parent_is_a_file runs here")
        rc, err = run_cli(["upscale", small_png, "-c", ckpt, "--scale", "2", "-o", ro / "o.png", "-q"], capsys)
        assert_one_line_error(rc, err, "not writable")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("how", ["same", "dot-slash", "symlink"])
def test_input_given_as_output_for_upscale(tmp_path, capsys, ckpt, small_png, how, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = small_png.read_bytes()
    output = {"same": small_png, "dot-slash": Path(".") / "." / small_png.name}.get(how)
    if how == "symlink":
        output = tmp_path / "link.png"
        output.symlink_to(small_png)
    rc, err = run_cli(["upscale", small_png, "-c", ckpt, "--scale", "2", "-o", output, "--overwrite", "-q"], capsys)
    assert_one_line_error(rc, err, "is the input")
    assert small_png.read_bytes() == before


def test_output_that_is_a_directory(tmp_path, capsys, ckpt, small_png):
    (tmp_path / "d.png").mkdir()
    rc, err = run_cli(["upscale", small_png, "-c", ckpt, "--scale", "2", "-o", tmp_path / "d.png", "--overwrite",
                       "-q"], capsys)
    assert_one_line_error(rc, err, "directory")


def test_non_png_output_is_refused_before_any_work(tmp_path, capsys, small_png):
    """`run` would train first; the check must come before training (no checkpoints made)."""
    out = tmp_path / "run"
    rc, err = run_cli(["run", small_png, "--scale", "2", "-o", tmp_path / "o.jpg", "--out", out, *TINY], capsys)
    assert_one_line_error(rc, err, r"must be a \.png")
    assert not out.exists() and not (tmp_path / "o.jpg").exists()


# ------------------------------------------------------------ untrusted checkpoints
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def _ckpt_cases(good: Path, tmp: Path) -> dict[str, Path]:
    data = good.read_bytes()
    cases = {}
    cases["truncated"] = tmp / "trunc.pt"
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["zero-byte"] = tmp / "empty.pt"
    cases["zero-byte"].write_bytes(b"")
    payload = torch.load(good, weights_only=True)
    future = dict(payload, format_version=99)
    torch.save(future, tmp / "future.pt")
    cases["newer-format"] = tmp / "future.pt"
    no_config = {k: v for k, v in payload.items() if k != "config"}
    torch.save(no_config, tmp / "noconfig.pt")
    cases["no-config"] = tmp / "noconfig.pt"
    bad_weights = dict(payload, model={"nonsense": torch.zeros(2)}, ema={"nonsense": torch.zeros(2)})
    torch.save(bad_weights, tmp / "badweights.pt")
    cases["weights-do-not-fit"] = tmp / "badweights.pt"
    torch.save({"format": "sr_core-checkpoint", "x": _Evil()}, tmp / "evil.pt")
    cases["pickle-runs-code"] = tmp / "evil.pt"
    with open(tmp / "evil-raw.pt", "wb") as fh:
        pickle.dump({"format": "sr_core-checkpoint", "x": _Evil()}, fh)
    cases["raw-pickle-runs-code"] = tmp / "evil-raw.pt"
    cases["a-png"] = tmp / "img.png"
    save_image(cases["a-png"], np.zeros((8, 8, 3), np.float32))
    cases["directory"] = tmp / "dir.pt"
    cases["directory"].mkdir()
    return cases


CKPT_MESSAGES = {
    "truncated": "corrupt or truncated", "zero-byte": "not an sr_core checkpoint",
    "newer-format": "format version 99", "no-config": "no readable config",
    "weights-do-not-fit": "does not match", "pickle-runs-code": "refusing",
    "raw-pickle-runs-code": "not an sr_core checkpoint", "a-png": "not an sr_core checkpoint",
    "directory": "directory",
}


@pytest.mark.parametrize("case", sorted(CKPT_MESSAGES))
def test_untrusted_checkpoint_for_upscale(tmp_path, capsys, ckpt, small_png, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _ckpt_cases(ckpt, tmp_path)[case]
    out = tmp_path / "o.png"
    rc, err = run_cli(["upscale", small_png, "-c", bad, "--scale", "2", "-o", out, "-q"], capsys)
    assert_one_line_error(rc, err, CKPT_MESSAGES[case])
    assert not out.exists() and not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_resume_from_another_preset_or_a_weights_only_checkpoint(tmp_path, capsys, small_png):
    paper = tmp_path / "paper.pt"
    save_checkpoint(paper, {"model": {}}, preset("paper"))
    rc, err = run_cli(["train", small_png, "--resume", paper, "--out", tmp_path / "a", *TINY], capsys)
    assert_one_line_error(rc, err, "another model config")
    # Same preset and config, but only weights (no optimizer/RNG state): cannot resume.
    cfg = preset("smoke")
    cfg.train.steps_per_scale = (3,)
    cfg.data.image_scales = (1.0,)
    from sr_core.runtime.checkpoint import image_fingerprint

    weights = tmp_path / "weights.pt"
    save_checkpoint(weights, {"model": {}, "fingerprint": image_fingerprint(load_image(small_png).rgb)}, cfg)
    rc, err = run_cli(["train", small_png, "--resume", weights, "--out", tmp_path / "b", *TINY], capsys)
    assert_one_line_error(rc, err, "no training state")


def test_checkpoint_from_another_preset_upscales_with_its_own_config(tmp_path, capsys, small_png):
    """`upscale` takes the architecture from the checkpoint, so a paper-preset one just works."""
    cfg = preset("paper")
    cfg.diffusion.timesteps = 3  # keep it quick; the architecture is still paper's
    paper = TrainState.fresh(cfg, "0" * 16, torch.device("cpu")).save(tmp_path / "paper.pt", None)
    out = tmp_path / "o.png"
    rc, err = run_cli(["upscale", small_png, "-c", paper, "--scale", "2", "-o", out, "--out", tmp_path / "run",
                       "-q"], capsys)
    assert rc == 0, err
    assert load_image(out).size == (32, 24)
    saved = Config.from_json((tmp_path / "run" / "config.json").read_text())
    assert saved.preset == "paper" and saved.model.residual is False


# ---------------------------------------------------------------- numerical guards
@pytest.mark.parametrize("poison_step", [3, 4])
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, sample_rgb, poison_step, monkeypatch):
    """NaN weights at step 3 (between checkpoints) or step 4 (a checkpoint step): the run
    stops with a clear message and last.pt is still the good step-2 checkpoint."""
    cfg = preset("smoke")
    cfg.data.image_scales = (1.0,)
    cfg.data.batch_size = 2
    cfg.train.steps_per_scale = (8,)
    cfg.train.checkpoint_every = 2
    model_ref = {}

    def on_step(step, parts):
        if step == poison_step:
            with torch.no_grad():
                next(model_ref["state"].parameters()).fill_(float("nan"))

    import sr_core.method.train as tr

    original = tr.train_stage

    def spy(state, *a, **k):
        model_ref["state"] = state.model
        return original(state, *a, **k)

    monkeypatch.setattr(tr, "train_stage", spy)
    with pytest.raises(UserError, match="diverged") as info:
        train(sample_rgb[:16, :16], cfg, out_dir=tmp_path, progress=False, on_step=on_step)
    assert "\n" not in str(info.value)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt", "step-000002.pt"]
    data, _ = load_checkpoint(ckpts / "last.pt")
    assert data["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in data["model"].values() if v.is_floating_point())
    model, _ = load_model(ckpts / "last.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


# -------------------------------------------------------------- signals (subprocess)
def _wait_for(predicate, proc, timeout=120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _train_cfg_args():
    return ["--preset", "smoke", "--data.image_scales", "0.75", "1.0", "--train.steps_per_scale", "60",
            "--train.checkpoint_every", "4", "--data.batch_size", "2", "--data.crop_size", "0", "--seed", "7"]


_UNINTERRUPTED = {}


def _uninterrupted(cfg: Config, rgb):
    key = cfg.to_json()
    if key not in _UNINTERRUPTED:
        _UNINTERRUPTED[key] = train(rgb, cfg, progress=False)
    return _UNINTERRUPTED[key]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_then_resume_matches_uninterrupted(tmp_path, capsys, sample_rgb, sig):
    image = save_image(tmp_path / "train me.png", sample_rgb[:16, :16])
    before = image.read_bytes()
    out = tmp_path / "run"
    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err_fh:
        proc = subprocess.Popen([sys.executable, "-m", "sr_core", "train", str(image), "--out", str(out), "-q",
                                 *_train_cfg_args()], stderr=err_fh, stdout=subprocess.DEVNULL,
                                env=SUBPROCESS_ENV, cwd=ROOT)
        try:
            assert _wait_for(lambda: (out / "checkpoints" / "step-000004.pt").exists(), proc), err_file.read_text()
            time.sleep(0.3)  # land inside a later step, not just after a checkpoint
            proc.send_signal(sig)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = err_file.read_text().strip()
    assert rc == 130, err
    assert len(err.splitlines()) == 1 and err.startswith("sr-core: interrupted"), err
    last = out / "checkpoints" / "last.pt"
    data, cfg = load_checkpoint(last)
    stopped_at = data["global_step"]
    assert 4 <= stopped_at < cfg.total_steps(), "the signal came too late to interrupt training"
    assert no_temp_files(out) and not (out / "loss.png").exists()
    assert image.read_bytes() == before

    # --resume finishes the run; the weights equal an uninterrupted run's with the same seed.
    resumed = tmp_path / "resumed"
    rc, err = run_cli(["train", image, "--resume", last, "--out", resumed, "-q", *_train_cfg_args()], capsys)
    assert rc == 0, err
    final, _ = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert final["global_step"] == cfg.total_steps()
    full = _uninterrupted(Config.from_json((out / "config.json").read_text()), load_image(image).rgb)
    for name, p in full.model.state_dict().items():
        assert torch.allclose(final["model"][name], p, atol=1e-5), name
    assert final["history"]["loss"] == pytest.approx(full.history["loss"], rel=1e-4)
    print(f"\n{signal.Signals(sig).name} at step {stopped_at} of {cfg.total_steps()}; resumed run matches")


@pytest.fixture(scope="module")
def slow_ckpt(tmp_path_factory) -> Path:
    """An untrained model with many diffusion steps, so upscaling runs long enough to interrupt."""
    cfg = preset("smoke")
    cfg.diffusion.timesteps = 400
    state = TrainState.fresh(cfg, "0" * 16, torch.device("cpu"))
    return state.save(tmp_path_factory.mktemp("slow") / "slow.pt", None)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_upscale_writes_no_output(tmp_path, slow_ckpt, sample_rgb, sig):
    image = save_image(tmp_path / "in.png", sample_rgb[:32, :32])
    before = image.read_bytes()
    out_dir = tmp_path / "results"
    output = out_dir / "big.png"
    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err_fh:
        proc = subprocess.Popen([sys.executable, "-m", "sr_core", "upscale", str(image), "-c", str(slow_ckpt),
                                 "--scale", "8", "-o", str(output)], stderr=err_fh, stdout=subprocess.DEVNULL,
                                env=SUBPROCESS_ENV, cwd=ROOT)
        try:
            assert _wait_for(lambda: "upscale:" in err_file.read_text(), proc), err_file.read_text()
            time.sleep(0.5)
            assert proc.poll() is None, "upscaling finished before the signal"
            proc.send_signal(sig)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = err_file.read_text()
    assert rc == 130, err
    assert "Traceback" not in err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines[-1].startswith("sr-core: interrupted") and sum("sr-core:" in ln for ln in lines) == 1, err
    assert not output.exists() and no_temp_files(tmp_path)
    assert image.read_bytes() == before
