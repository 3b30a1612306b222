"""``sr-core batch``: folders and manifests, faults that stay local, resume, worker pools, Ray."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sr_core.faces.batch as batch
from sr_core.faces.cli import main
from sr_core.runtime.io import save_image

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "smoke", "--train.steps_per_scale", "3", "--data.image_scales", "1.0", "-q"]
GOOD = ["a.png", "sub/b.png", "sub/deeper/c.jpg"]


def make_photos(folder: Path, rgb: np.ndarray, *, broken: bool = True) -> Path:
    """Three small photos in nested folders, plus (where asked) a truncated PNG and a text file."""
    save_image(folder / "a.png", rgb[:24, :32])
    save_image(folder / "sub" / "b.png", rgb[30:54, 10:42])
    (folder / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray((rgb[60:84, 40:72] * 255).round().astype(np.uint8)).save(folder / "sub" / "deeper" / "c.jpg",
                                                                            quality=95)
    if broken:
        (folder / "sub" / "broken.png").write_bytes((folder / "a.png").read_bytes()[:60])
        (folder / "notes.txt").write_text("not a photo")
    return folder


def outputs(out: Path) -> dict[str, bytes]:
    """Every output PNG and config under `out`, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".png" or p.name.endswith(".config.json"))
            and batch.STATE_DIR not in p.parts}


def summary(out: Path) -> dict:
    return json.loads((out / batch.SUMMARY_JSON).read_text())


@pytest.fixture(scope="module")
def good_photos(tmp_path_factory, sample_rgb) -> Path:
    return make_photos(tmp_path_factory.mktemp("photos"), sample_rgb, broken=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, good_photos) -> dict[str, bytes]:
    """The good photos through the local engine, one photo at a time on one thread."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["batch", str(good_photos), "--scale", "2", "--out", str(out), "--threads", "1", *TINY]) == 0
    files = outputs(out)
    assert sorted(files) == ["a.config.json", "a.png", "sub/b.config.json", "sub/b.png",
                             "sub/deeper/c.config.json", "sub/deeper/c.png"]
    return files


# ---------------------------------------------------------------------- discovery
def test_photos_are_found_by_their_bytes(tmp_path, sample_rgb):
    save_image(tmp_path / "in" / "x.png", sample_rgb[:8, :8])
    (tmp_path / "in" / "renamed.dat").write_bytes((tmp_path / "in" / "x.png").read_bytes())
    (tmp_path / "in" / "garbage.jpg").write_bytes(b"not a jpeg at all")  # a damaged photo: reported
    (tmp_path / "in" / "readme.md").write_text("# notes")
    (tmp_path / "in" / ".hidden").mkdir()
    save_image(tmp_path / "in" / ".hidden" / "y.png", sample_rgb[:8, :8])
    save_image(tmp_path / "in" / "out" / "old.png", sample_rgb[:8, :8])  # --out inside INPUT is not read
    photos, root, ignored = batch.discover(tmp_path / "in", tmp_path / "in" / "out")
    assert [p.key for p in photos] == ["garbage.jpg", "renamed.dat", "x.png"] and ignored == 1
    assert [p.output for p in photos] == ["garbage.png", "renamed.png", "x.png"]
    # a.jpg and a.png would share a.png: both keep their extension in the output's name
    save_image(tmp_path / "in" / "garbage.png", sample_rgb[:8, :8])
    photos, _, _ = batch.discover(tmp_path / "in", tmp_path / "o")
    assert [p.output for p in photos][:2] == ["garbage.jpg.png", "garbage.png.png"]


def test_manifest_text_and_csv(tmp_path, sample_rgb):
    save_image(tmp_path / "p" / "one" / "a.png", sample_rgb[:8, :8])
    save_image(tmp_path / "p" / "two" / "a.png", sample_rgb[:8, :8])
    (tmp_path / "list.txt").write_text("# photos\np/one/a.png\n\n" + str(tmp_path / "p" / "two" / "a.png") + "\n")
    (tmp_path / "list.csv").write_text("id,path\n1,p/one/a.png\n2,p/two/a.png\n")
    for manifest in ("list.txt", "list.csv"):
        photos, root, _ = batch.discover(tmp_path / manifest, tmp_path / "o")
        assert root == (tmp_path / "p").resolve()
        assert [(p.key, p.output) for p in photos] == [("one/a.png", "one/a.png"), ("two/a.png", "two/a.png")]


# ------------------------------------------------------------------- the command
def test_folder_with_a_corrupt_file_and_nested_folders(tmp_path, sample_rgb, reference, capsys):
    photos = make_photos(tmp_path / "in", sample_rgb)
    out = tmp_path / "out"
    assert main(["batch", str(photos), "--scale", "2", "--out", str(out), "--threads", "1", *TINY]) == 1
    assert outputs(out) == reference  # the corrupt photo took nothing from the others
    s = summary(out)
    assert s["counts"] == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    rows = {r["input"]: r for r in s["photos"]}
    assert sorted(rows) == sorted(GOOD + ["sub/broken.png"])  # notes.txt is not a photo
    assert rows["sub/broken.png"]["status"] == "failed"
    assert rows["sub/broken.png"]["error"].startswith("corrupt or truncated image: sub/broken.png")
    assert "\n" not in rows["sub/broken.png"]["error"]
    assert rows["a.png"]["output_size"] == [64, 48] and rows["a.png"]["seconds"] > 0
    csv_lines = (out / batch.SUMMARY_CSV).read_text().splitlines()
    assert csv_lines[0] == "input,status,seconds,output,output_width,output_height,error" and len(csv_lines) == 5
    assert "failed: sub/broken.png" in capsys.readouterr().err

    # The same command again: the three done are skipped (not redone), the failed one retried.
    stamps = {p: (out / p).stat().st_mtime_ns for p in reference}
    assert main(["batch", str(photos), "--scale", "2", "--out", str(out), *TINY]) == 1
    assert "3 already done (skipped), 1 to do" in capsys.readouterr().err
    assert {p: (out / p).stat().st_mtime_ns for p in reference} == stamps
    assert summary(out)["counts"] == {"done": 0, "skipped": 3, "failed": 1, "pending": 0}


def test_an_interrupted_run_resumes(tmp_path, good_photos, reference, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["batch", str(good_photos), "--scale", "2", "--out", str(out), "--threads", "1", *TINY]

    def ctrl_c(record):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_after_record", ctrl_c)  # Ctrl-C as the first photo is written
    assert main(args) == 130
    assert outputs(out) == {k: v for k, v in reference.items() if k.startswith("a.")}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # nothing half written
    assert summary(out)["counts"] == {"done": 1, "skipped": 0, "failed": 0, "pending": 2}
    assert "rerun the same command" in capsys.readouterr().err

    monkeypatch.setattr(batch, "_after_record", None)
    first = (out / "a.png").stat().st_mtime_ns
    assert main(args) == 0
    assert "1 already done (skipped), 2 to do" in capsys.readouterr().err
    assert (out / "a.png").stat().st_mtime_ns == first and outputs(out) == reference

    # A lost record, a damaged record and a truncated output: those three photos are redone.
    (out / batch.STATE_DIR / "records" / "a.png.json").unlink()
    (out / batch.STATE_DIR / "records" / "sub" / "b.png.json").write_text('{"status": "do')
    c = out / "sub" / "deeper" / "c.png"
    c.write_bytes(c.read_bytes()[:100])
    assert main(args) == 0
    assert "0 already done (skipped), 3 to do" in capsys.readouterr().err
    assert outputs(out) == reference and summary(out)["counts"]["done"] == 3


def test_exit_codes(tmp_path, good_photos, sample_rgb, capsys):
    out = tmp_path / "out"
    save_image(tmp_path / "one" / "x.png", sample_rgb[:16, :16])
    assert main(["batch", str(tmp_path / "one"), "--size", "40x24", "--out", str(out), *TINY]) == 0
    assert Image.open(out / "x.png").size == (40, 24)
    capsys.readouterr()
    usage = [
        ["batch", str(tmp_path / "missing"), "--scale", "2", "--out", str(out)],  # no such input
        ["batch", str(tmp_path / "one"), "--scale", "2", "--out", str(tmp_path / "one")],  # outputs over inputs
        ["batch", str(tmp_path / "one"), "--scale", "3", "--out", str(out), *TINY],  # --out holds another job
        ["batch", str(tmp_path / "one"), "--scale", "2", "--out", str(out), "--workers", "0"],
        ["batch", str(tmp_path / "one"), "--scale", "-2", "--out", str(out)],
        ["batch", str(tmp_path / "one"), "--scale", "2", "--out", str(out), "--address", "h:6379"],
        ["batch", str(tmp_path / "one"), "--scale", "2", "--out", str(out), "--train.lr", "-1"],
    ]
    (tmp_path / "empty").mkdir()
    usage.append(["batch", str(tmp_path / "empty"), "--scale", "2", "--out", str(out)])
    for argv in usage:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("sr-core: error:") and "\n" not in err
    with pytest.raises(SystemExit) as exc:  # no target: argparse's own usage error
        main(["batch", str(tmp_path / "one"), "--out", str(out)])
    assert exc.value.code == 2


def test_workers_survive_a_killed_worker(tmp_path, good_photos, reference, monkeypatch):
    """Two worker processes; one is killed (as the OOM killer would) once the first photo is
    written. The photos it was running are run again, and every file is as one worker makes it."""
    psutil = pytest.importorskip("psutil")
    killed = []

    def is_worker(proc) -> bool:
        try:
            return "spawn_main" in " ".join(proc.cmdline())
        except psutil.Error:  # gone, or a zombie
            return False

    def kill_a_worker(record):
        workers = [p for p in psutil.Process().children() if is_worker(p)]
        if workers and not killed:
            workers[0].kill()
            killed.append(workers[0].pid)

    monkeypatch.setattr(batch, "_after_record", kill_a_worker)
    out = tmp_path / "out"
    assert main(["batch", str(good_photos), "--scale", "2", "--out", str(out), "--workers", "2", *TINY]) == 0
    assert killed and outputs(out) == reference
    assert summary(out)["counts"]["done"] == 3


# ---------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for the module, bound to 127.0.0.1 only, no usage reports; stopped at the end."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's servers listen on the loopback address
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    ray = pytest.importorskip("ray")
    import logging

    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=2,
             logging_level=logging.WARNING)
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield ray
    finally:
        ray.shutdown()


def test_ray_engine_writes_the_same_files(tmp_path, sample_rgb, reference, local_ray):
    photos = make_photos(tmp_path / "in", sample_rgb)
    out = tmp_path / "out"
    assert main(["batch", str(photos), "--scale", "2", "--out", str(out), "--engine", "ray", *TINY]) == 1
    assert outputs(out) == reference  # byte for byte, configs included
    s = summary(out)
    assert s["engine"] == "ray" and s["counts"] == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert {r["input"]: r["error"] for r in s["photos"] if r["error"]} == {
        "sub/broken.png": "corrupt or truncated image: sub/broken.png (image file is truncated)"}
    assert local_ray.is_initialized()  # an instance the command found is left to its owner
    assert main(["batch", str(photos), "--scale", "2", "--out", str(out), "--engine", "ray", *TINY]) == 1
    assert summary(out)["counts"] == {"done": 0, "skipped": 3, "failed": 1, "pending": 0}
