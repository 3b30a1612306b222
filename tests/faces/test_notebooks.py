"""The notebooks: each .ipynb is exactly its notebooks/py source, committed without outputs,
with a Colab badge and setup that match sr_core.faces.viz.COLAB_REPO, and the cells the style asks for.

The notebooks themselves run through nbval (see README):
    SR_SMOKE=1 python -m pytest --nbval-lax --nbval-current-env \
        --sanitize-with notebooks/nbval_sanitize.cfg notebooks/
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOKS / "py").glob("[0-9][0-9]_*.py"))
EXPECTED = ["01_degradation_synthesis", "02_multiscale_training", "03_progressive_inference", "04_diffusion_explorer"]

nbformat = pytest.importorskip("nbformat")


def _load(path: Path):
    return nbformat.read(path, as_version=4)


def _comparable(nb) -> dict:
    """A notebook without the random cell ids jupytext gives new cells."""
    raw = json.loads(nbformat.writes(nb))
    for cell in raw["cells"]:
        cell.pop("id", None)
    return raw


def test_every_notebook_has_a_source_and_the_four_exist():
    assert [p.stem for p in SOURCES] == EXPECTED
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) == EXPECTED


def test_jupytext_config_keeps_tags_and_colab_metadata():
    text = (ROOT / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py//py:percent"' in text
    assert 'cell_metadata_filter = "tags,-all"' in text
    assert "accelerator" in text and "colab" in text and "-all" in text


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_regenerated_from_its_source(source, tmp_path):
    pytest.importorskip("jupytext")
    # Generate next to a copy of jupytext.toml, exactly as notebooks/sync_notebooks.py does.
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    (tmp_path / "py").mkdir()
    src = shutil.copy(source, tmp_path / "py" / source.name)
    out = tmp_path / f"{source.stem}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "-q", "--to", "ipynb", "--output", str(out), str(src)],
                   check=True, cwd=tmp_path)
    committed = NOTEBOOKS / f"{source.stem}.ipynb"
    assert _comparable(_load(out)) == _comparable(_load(committed)), (
        f"{committed.name} is out of sync with py/{source.name}: run `python notebooks/sync_notebooks.py`"
    )


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_has_no_outputs_and_asks_colab_for_a_gpu(name):
    nb = _load(NOTEBOOKS / f"{name}.ipynb")
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs"
    assert nb.metadata.get("accelerator") == "GPU"
    assert nb.metadata.get("colab", {}).get("gpuType")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_structure(name):
    from sr_core.faces.viz import COLAB_REPO, colab_badge

    nb = _load(NOTEBOOKS / f"{name}.ipynb")
    cells = nb.cells
    # title, badge (from sr_core.faces.viz.COLAB_REPO), what you will learn
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert colab_badge(name) in cells[0].source, "stale badge: run `python notebooks/sync_notebooks.py`"
    assert "What you will learn" in cells[0].source
    # setup: Colab detection, no torch reinstall, the same repository as the badge
    setup = cells[1].source
    assert '"google.colab" in sys.modules' in setup and "--no-deps" in setup
    assert f'REPO = "{COLAB_REPO}"' in setup
    code_lines = [line.split("#")[0] for line in setup.splitlines()]
    assert not any("torch" in line for line in code_lines), "the setup cell must not touch torch"
    # parameters: the smoke flag, and a refusal to run full settings in CI
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is cells[2]
    assert 'os.environ.get("SR_SMOKE") == "1"' in params[0].source
    assert 'os.environ.get("CI") and not SMOKE' in params[0].source
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "assert " in code
    assert cells[-1].cell_type == "markdown" and "Summary" in cells[-1].source


@pytest.mark.parametrize("name", ["01_degradation_synthesis", "04_diffusion_explorer"])
def test_widget_cells_are_ignored_by_nbval(name):
    nb = _load(NOTEBOOKS / f"{name}.ipynb")
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and ("_panel(" in c.source or "_explorer(" in c.source)]
    assert widget_cells and all(c.source.startswith("# NBVAL_IGNORE_OUTPUT") for c in widget_cells)


def test_badges_and_repo_lines_are_in_sync():
    result = subprocess.run([sys.executable, str(NOTEBOOKS / "sync_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_notebook_runs_in_ci_use_the_smoke_flag():
    """CI must run the notebooks with SR_SMOKE=1 (full settings take many minutes)."""
    if os.environ.get("CI"):
        assert os.environ.get("SR_SMOKE") == "1", "set SR_SMOKE=1 when running the notebooks in CI"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_takes_your_photo_right_after_its_parameters(name):
    """A 'your photo' cell after the parameters (the bundled sample by default, so CI needs
    no input), and every later cell reads the photo through it."""
    cells = _load(NOTEBOOKS / f"{name}.ipynb").cells
    photo = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "viz.PhotoPicker(" in c.source)
    assert cells[photo - 1].cell_type == "markdown" and cells[photo - 1].source.startswith("## Your photo")
    assert photo - 2 == 2, "the your-photo cell follows the parameters cell"
    assert "PhotoPicker(PHOTO or DATA / IMAGE, upload=UPLOAD" in cells[photo].source
    assert 'PHOTO = ""' in cells[2].source and "UPLOAD = False" in cells[2].source
    later = "\n".join(c.source for c in cells[photo + 1 :] if c.cell_type == "code")
    assert "picker." in later and "DATA / IMAGE" not in later and "load_image(" not in later
    setup = cells[1].source
    assert 'os.environ.get("SR_CORE_REPO_URL") or f"https://github.com/{REPO}.git"' in setup


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_fits_and_upscales_through_the_upscaler(name):
    """No notebook reassembles train() + upscale() by hand; the config comes from the Upscaler."""
    code = "\n".join(c.source for c in _load(NOTEBOOKS / f"{name}.ipynb").cells if c.cell_type == "code")
    assert "from sr_core import Upscaler" in code and "Upscaler(" in code
    assert "input_size=" not in code, "preset() takes no input size: use Upscaler(...).resolve(photo)"
    assert not re.search(r"(?<![\w.])(train|upscale)\(", code), "fit and upscale with the Upscaler"
    assert "from sr_core.method.train import train\n" not in code and "import upscale\n" not in code


def test_notebook_03_ends_with_your_result_saved_and_offered_for_download():
    cells = _load(NOTEBOOKS / "03_progressive_inference.ipynb").cells
    code = [c.source for c in cells if c.cell_type == "code"]
    last = "\n".join(code[-2:])
    assert ".fit(picker.path, scale=SCALE)" in last and ".upscale(scale=SCALE)" in last
    assert "up.last.save(" in last and "viz.offer_download(saved)" in last


@pytest.mark.parametrize("name", ["01_degradation_synthesis", "04_diffusion_explorer"])
def test_widget_notebooks_say_how_to_recover_stale_widgets_and_check_what_they_show(name):
    cells = _load(NOTEBOOKS / f"{name}.ipynb").cells
    i = next(i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.startswith("# NBVAL_IGNORE_OUTPUT"))
    assert "model not found" in cells[i - 1].source and "Run All Cells" in cells[i - 1].source
    assert cells[i + 1].cell_type == "code" and "assert " in cells[i + 1].source
