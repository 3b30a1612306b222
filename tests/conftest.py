"""Shared fixtures: CPU only, fixed seeds, small images, a trained smoke model."""

from __future__ import annotations

import os

if not os.environ.get("SR_TEST_CUDA"):  # tests run on the CPU unless asked (tests/test_cuda.py)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # also for subprocesses the tests start

from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


# Tiny tensors gain nothing from threads, and two threads on a busy 2-core machine ran
# up to 60x slower than one (measured while other jobs shared the CPU).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Run folders the CLI makes by itself (no --out) go to the test's own folder, not outputs/."""
    import sr_core.faces.cli as cli

    monkeypatch.setattr(cli, "DEFAULT_OUT", tmp_path / "outputs")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def sample_rgb() -> np.ndarray:
    from sr_core.runtime.io import load_image

    return load_image(DATA / "chelsea_crop.png").rgb


@pytest.fixture
def smoke_cfg():
    from sr_core.config import preset

    return preset("smoke")


@pytest.fixture(scope="session")
def trained_smoke(tmp_path_factory, sample_rgb):
    """One smoke-preset training run on a 64x64 crop, shared by the tests that need a model."""
    from sr_core.config import preset
    from sr_core.method.train import train

    out = tmp_path_factory.mktemp("trained")
    cfg = preset("smoke")
    result = train(sample_rgb[:64, :64], cfg, out_dir=out, progress=False)
    return result, out


@pytest.fixture(scope="session")
def trained_default_x2():
    """`default` as shipped for a 48 x 48 input (8 filters, x0 prediction, scale-aware pairs,
    all 400 steps) trained on the bicubic-protocol LR of a 96 x 96 cut of the coffee photo;
    the HR cut is held back. About 40 s on one CPU thread; shared by the learning and colour
    tests. Returns (TrainResult, LRCase)."""
    from sr_core.evaluation.protocols import make_lr
    from sr_core.method.train import train
    from sr_core.resolve import resolve
    from sr_core.runtime.io import load_image

    hr = load_image(DATA / "coffee_crop.png").rgb.astype(np.float64)[16:112, 16:112]
    case = make_lr(hr, 2, "bicubic")
    cfg = resolve("default", input_size=case.lr.shape[1::-1])
    assert cfg.model.filters == 8 and not cfg.model.residual and cfg.data.pair_mode == "scale_aware"
    return train(case.lr.astype(np.float32), cfg, progress=False), case
