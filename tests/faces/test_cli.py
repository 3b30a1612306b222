"""End-to-end command lines on a tiny image, in-process (fast) and as real subprocesses."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sr_core.faces.cli import main
from sr_core.runtime.io import load_image, save_image

TINY = ["--preset", "smoke", "--train.steps_per_scale", "3", "--data.image_scales", "1.0", "-q"]


@pytest.fixture
def tiny_png(tmp_path, sample_rgb):
    return save_image(tmp_path / "in put é.png", sample_rgb[:24, :32])


def test_run_end_to_end_with_metrics(tmp_path, tiny_png, sample_rgb, capsys):
    gt = save_image(tmp_path / "gt.png", np.repeat(np.repeat(sample_rgb[:24, :32], 2, 0), 2, 1))
    out = tmp_path / "run"
    assert main(["run", str(tiny_png), "--scale", "2", "--out", str(out), "--gt", str(gt), *TINY]) == 0
    result = out / "in put é_sr_64x48.png"
    assert load_image(result).size == (64, 48)
    metrics = json.loads((out / "in put é_sr_64x48_metrics.json").read_text())
    assert {"sr_core", "bicubic"} <= set(metrics) and np.isfinite(metrics["sr_core"]["psnr_y"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["output_size"] == [64, 48]
    assert (out / "config.json").exists() and (out / "loss.png").exists()
    assert (out / "checkpoints" / "last.pt").exists()
    assert "PSNR-Y" in capsys.readouterr().out


def test_train_then_upscale_per_axis_and_exact_size(tmp_path, tiny_png):
    out = tmp_path / "t"
    assert main(["train", str(tiny_png), "--out", str(out), *TINY]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    o1 = tmp_path / "a.png"
    assert main(["upscale", str(tiny_png), "-c", str(ckpt), "--scale-w", "2", "--scale-h", "3", "-o", str(o1), "-q"]) == 0
    assert load_image(o1).size == (64, 72)
    o2 = tmp_path / "b.png"
    assert main(["upscale", str(tiny_png), "-c", str(ckpt), "--size", "100x50", "--plan", "2", "-o", str(o2),
                 "-q", "--save-intermediates", "--out", str(tmp_path / "inter")]) == 0
    assert load_image(o2).size == (100, 50)
    # one intermediate (64x48) before the final 100x50; the smoke preset has no refine pass
    assert len(list((tmp_path / "inter" / "intermediates").glob("*.png"))) == 1
    # 3.3x, a non-integer scale, rounds to an exact size.
    o3 = tmp_path / "c.png"
    assert main(["upscale", str(tiny_png), "-c", str(ckpt), "--scale", "3.3", "-o", str(o3), "-q"]) == 0
    assert load_image(o3).size == (106, 79)


def test_existing_output_is_refused_then_overwritten(tmp_path, tiny_png, capsys):
    out = tmp_path / "t"
    main(["train", str(tiny_png), "--out", str(out), *TINY])
    target = tmp_path / "o.png"
    target.write_bytes(b"precious")
    args = ["upscale", str(tiny_png), "-c", str(out / "checkpoints" / "last.pt"), "--scale", "2", "-o", str(target), "-q"]
    assert main(args) == 2
    assert target.read_bytes() == b"precious"
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0 and load_image(target).size == (64, 48)


def test_input_as_output_is_refused(tmp_path, tiny_png, capsys):
    before = tiny_png.read_bytes()
    assert main(["run", str(tiny_png), "--scale", "2", "-o", str(tiny_png), "--overwrite", *TINY]) == 2
    assert "is the input" in capsys.readouterr().err and tiny_png.read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "missing.png", "--scale", "2"], "not found"),
        (["run", "{tiny}", "--scale", "0.5"], ">= 1"),
        (["run", "{tiny}", "--scale", "nan"], "finite"),
        (["run", "{tiny}", "--scale", "200"], "absurd"),
        (["run", "{tiny}"], "give a target"),
        (["run", "{tiny}", "--scale", "2", "--train.lr", "fast"], "bad value"),
        (["run", "{tiny}", "--scale", "2", "--device", "tpu"], "unknown device"),
        (["upscale", "{tiny}", "-c", "nope.pt", "--scale", "2"], "checkpoint not found"),
        (["upscale", "{tiny}", "-c", "{tiny}", "--scale", "2"], "corrupt|not an sr_core"),
        (["run", "{tiny}", "--size", "10x10"], "smaller"),
        (["run", "{tiny}", "--size", "big"], "--size"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_png, capsys, argv, message):
    argv = [a.replace("{tiny}", str(tiny_png)) for a in argv]
    assert main(argv + ["--out", str(tmp_path / "o")] + (["-q"] if argv[0] != "upscale" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sr-core: error:") and len(err.splitlines()) == 1
    import re

    assert re.search(message, err)


def test_scale_3x_is_an_argparse_error(tiny_png):
    with pytest.raises(SystemExit) as info:
        main(["run", str(tiny_png), "--scale", "3x"])
    assert info.value.code == 2


def test_seed_command_lines_work_unchanged(tmp_path, sample_rgb):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    save_image(datasets / "img.png", sample_rgb[:24, :24])
    results = tmp_path / "results"
    common = ["--scope", "cat", "--dataset_folder", str(datasets), "--image_name", "img.png",
              "--results_folder", str(results)]
    assert main([*common, "--mode", "train", "--timesteps", "3", "--train_batch_size", "2",
                 "--train_steps_list", "2", "2", "--scale_list", "0.8", "1.0", "--train_lr", "0.005",
                 "--network_depth", "4", "--network_filters", "8", "--save_and_sample_every", "2",
                 "--device_num", "0"]) == 0
    assert (results / "cat" / "checkpoints" / "step-000004.pt").exists()
    # Like the original's main.py, --mode train also upscales (by 2 4 without --widthl/--heightl).
    assert [load_image(p).size for p in (results / "cat" / "SR").glob("*.png")] == [(96, 96)]
    assert main([*common, "--mode", "SR", "--widthl", "2", "4", "--heightl", "2", "3", "--load_milestone", "2"]) == 0
    sr = sorted((results / "cat" / "SR").glob("*.png"))
    assert [load_image(p).size for p in sr] == [(96, 72), (96, 96)]
    names = sorted(p.name for p in (results / "cat" / "SR" / "intermediates").glob("*.png"))
    assert names == ["img_step1_48x48.png", "img_step2_96x72.png", "img_step2_96x96.png"]  # 2x/2x, then refine


def test_console_script_and_module_entry_points(tmp_path, tiny_png):
    proc = subprocess.run([sys.executable, "-m", "sr_core", "presets"], capture_output=True, text=True)
    assert proc.returncode == 0 and "paper" in proc.stdout and "default" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sr_core", "upscale", str(tiny_png), "-c", "x.pt", "--scale", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == "sr-core: error: checkpoint not found: x.pt"


def test_train_sizes_the_default_preset_by_the_image(tmp_path, sample_rgb, capsys):
    """`default` trains wide's 16-filter network on a 96x96 image, its 8-filter one on 48x48,
    and says which; a config flag still overrides the sized preset."""
    def filters(size, *extra):
        img = save_image(tmp_path / f"{size}.png", np.resize(sample_rgb, (size, size, 3)))
        out = tmp_path / f"t{size}"
        assert main(["train", str(img), "--out", str(out), "--train.steps_per_scale", "1",
                     "--data.image_scales", "1.0", *extra]) == 0
        return json.loads((out / "config.json").read_text())["model"]["filters"]

    assert filters(96) == 16 and "preset default (as wide" in capsys.readouterr().err
    assert filters(48) == 8 and "as wide" not in capsys.readouterr().err
    assert filters(97, "--model.filters", "12", "-q") == 12


def test_speed_flags_reach_the_accelerator_options():
    from sr_core.faces.cli import _upscaler, build_parser

    parse = build_parser().parse_args
    fast = _upscaler(parse(["run", "x.png", "--scale", "2"]))._accel()
    assert fast.cuda_graph and fast.precision == "auto" and not fast.compile
    plainer = _upscaler(parse(["train", "x.png", "--no-cuda-graph", "--precision", "fp32"]))._accel()
    assert not plainer.cuda_graph and plainer.precision == "fp32"


def test_noisy_flag_blurs_the_back_projection_residual(tmp_path, tiny_png):
    out = tmp_path / "t"
    assert main(["train", str(tiny_png), "--out", str(out), *TINY]) == 0
    ckpt = str(out / "checkpoints" / "last.pt")
    plain, noisy = tmp_path / "plain.png", tmp_path / "noisy.png"
    for name, extra in (("plain", []), ("noisy", ["--noisy"])):
        assert main(["upscale", str(tiny_png), "-c", ckpt, "--scale", "2", "-o", str(tmp_path / f"{name}.png"),
                     "--out", str(tmp_path / name), "-q", *extra]) == 0
    cfgs = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("plain", "noisy")]
    assert [c["infer"]["bp_residual_blur"] for c in cfgs] == [0.0, 1.0]
    assert not np.array_equal(load_image(plain).rgb, load_image(noisy).rgb)


def test_a_jpeg_input_is_reported_and_clean_turns_the_check_off(tmp_path, sample_rgb, capsys):
    from sr_core.evaluation.protocols import jpeg_roundtrip

    img = save_image(tmp_path / "from_a_jpeg.png", jpeg_roundtrip(sample_rgb[:64, :64].astype(np.float64), 80))
    auto, clean = tmp_path / "auto.png", tmp_path / "clean.png"
    assert main(["run", str(img), "--scale", "2", "--out", str(tmp_path / "a"), "-o", str(auto), *TINY]) == 0
    assert "JPEG compression detected" in capsys.readouterr().out
    assert main(["run", str(img), "--scale", "2", "--out", str(tmp_path / "c"), "-o", str(clean), "--clean", *TINY]) == 0
    assert "JPEG" not in capsys.readouterr().out
    cfgs = [json.loads((tmp_path / d / "config.json").read_text())["infer"] for d in ("a", "c")]
    assert [c["jpeg_residual_blur"] for c in cfgs] == [1.0, 0.0]
    assert not np.array_equal(load_image(auto).rgb, load_image(clean).rgb)
    with pytest.raises(SystemExit):
        main(["run", str(img), "--scale", "2", "--noisy", "--clean", *TINY])
    assert "not allowed with" in capsys.readouterr().err


def test_kernel_flag_matches_the_output_through_the_kernel(tmp_path, tiny_png, capsys):
    out = tmp_path / "t"
    assert main(["train", str(tiny_png), "--out", str(out), *TINY]) == 0
    ckpt = str(out / "checkpoints" / "last.pt")
    kernel = np.zeros((5, 5))
    kernel[1:4, 1:4] = 1
    np.save(tmp_path / "box.npy", kernel)
    plain, told = tmp_path / "plain.png", tmp_path / "told.png"
    assert main(["upscale", str(tiny_png), "-c", ckpt, "--scale", "2", "-o", str(plain), "-q"]) == 0
    assert main(["upscale", str(tiny_png), "-c", ckpt, "--scale", "2", "-o", str(told), "-q",
                 "--kernel", str(tmp_path / "box.npy")]) == 0
    assert not np.array_equal(load_image(plain).rgb, load_image(told).rgb)
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    capsys.readouterr()
    assert main(["run", str(tiny_png), "--scale", "2", "--out", str(tmp_path / "r"),
                 "--kernel", str(tmp_path / "even.npy"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "odd side" in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "checkpoints").exists()  # refused before training
    # A preset with scale-aware pairs trains on pairs made with the kernel, in one step.
    assert main(["run", str(tiny_png), "--preset", "default", "--scale", "4", "--dry-run",
                 "--kernel", str(tmp_path / "box.npy")]) == 0
    out = capsys.readouterr().out
    assert "told the blur kernel (5x5): trains on pairs made with it, in one x4 step" in out
