"""Each notebook's Colab setup cell, run as Colab runs it, against a local copy of this repository.

Colab is faked: `google.colab` (and `google.colab.files`) are stub modules in sys.modules,
and the cell's clone URL is pointed at a bare repository holding this checkout's HEAD
(SR_CORE_REPO_URL, a file:// URL; the clone goes to SR_CORE_CLONE_DIR instead of
/content/sr_core). The cell runs in a subprocess with a throwaway virtual environment that
sees the test environment's packages (torch, numpy, pip...) but not its sr_core, so the
real `pip install --no-deps -e` lands in that throwaway environment. Checked:

- the cell clones the repository, and runs pip once: `--no-deps`, nothing about torch;
- pip installed sr_core and nothing else (no torch, no dependency) into the environment;
- sr_core was not importable before the cell and is importable right after it, in the
  same process (no restart), from the clone;
- the next cells run: the parameters, then "your photo" with UPLOAD ticked, which takes
  the file that the fake `files.upload()` hands over.

Only committed code is cloned: a test of uncommitted changes to sr_core itself needs a commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_degradation_synthesis", "02_multiscale_training", "03_progressive_inference", "04_diffusion_explorer"]

nbformat = pytest.importorskip("nbformat")

# Runs in the throwaway environment: fake Colab, run the setup cell and the next ones.
DRIVER = textwrap.dedent('''
    import importlib.util, io, json, subprocess, sys, types
    from pathlib import Path

    cells = json.loads(Path(sys.argv[1]).read_text())
    uploads = {}
    files = types.ModuleType("google.colab.files")
    files.upload = lambda: dict(uploads)
    files.download = lambda path: None
    colab = types.ModuleType("google.colab")
    colab.files = files
    google = types.ModuleType("google")
    google.colab = colab
    sys.modules.update({"google": google, "google.colab": colab, "google.colab.files": files})

    report = {"importable_before": importlib.util.find_spec("sr_core") is not None, "commands": []}
    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        report["commands"].append([str(c) for c in cmd])
        return real_run(cmd, *args, **kwargs)

    subprocess.run = run
    ns = {"__name__": "__main__"}
    exec(compile(cells["setup"], "setup cell", "exec"), ns)
    subprocess.run = real_run
    exec(compile(cells["parameters"], "parameters cell", "exec"), ns)
    from PIL import Image  # the photo a reader uploads

    png = io.BytesIO()
    Image.new("RGB", (72, 56), (30, 120, 200)).save(png, format="PNG")
    uploads["my photo.png"] = png.getvalue()
    ns["UPLOAD"] = True  # the reader ticks UPLOAD
    exec(compile(cells["photo"], "your-photo cell", "exec"), ns)
    import sr_core

    report.update(sr_core=sr_core.__file__, root=str(ns["ROOT"]), data=str(ns["DATA"]),
                  photo=str(ns["picker"].path), described=ns["picker"].describe())
    print("REPORT " + json.dumps(report))
''')


def _cells(name: str) -> dict[str, str]:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    photo = next(c for c in code if "PhotoPicker(" in c.source)
    params = next(c for c in code if "parameters" in c.metadata.get("tags", []))
    return {"setup": nb.cells[1].source, "parameters": params.source, "photo": photo.source}


def _dist_infos(site: Path) -> set[str]:
    return {p.name for p in site.glob("*.dist-info")}


@pytest.fixture(scope="module")
def bare_repo(tmp_path_factory) -> str:
    """A bare repository holding this checkout's HEAD, as a file:// URL."""
    git = shutil.which("git")
    if git is None or subprocess.run([git, "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("needs git and a git checkout of sr_core")
    bare = tmp_path_factory.mktemp("remote") / "sr_core.git"
    subprocess.run([git, "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run([git, "-C", str(ROOT), "push", "-q", str(bare), "HEAD:refs/heads/main"], check=True)
    subprocess.run([git, "-C", str(bare), "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
    return bare.resolve().as_uri()


@pytest.fixture
def colab_like(bare_repo, tmp_path):
    """A throwaway Python environment like Colab's: this environment's packages, no sr_core.

    It sees them through a path entry (not a site dir, so the editable sr_core of this
    environment is not found) and has its own site-packages, where pip installs.
    --without-pip: this environment's pip runs there.
    """
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test_env_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"url": bare_repo, "python": python, "site": site, "tmp": tmp_path, "baseline": _dist_infos(site)}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_colab_setup_cell_clones_installs_without_deps_and_imports_without_restart(name, colab_like):
    tmp = colab_like["tmp"]
    clone = tmp / f"content-{name}" / "sr_core"
    cells = tmp / f"{name}.cells.json"
    cells.write_text(json.dumps(_cells(name)))
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(SR_CORE_REPO_URL=colab_like["url"], SR_CORE_CLONE_DIR=str(clone), SR_SMOKE="1",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               MPLBACKEND="Agg", GIT_TERMINAL_PROMPT="0")
    content = clone.parent
    content.mkdir(parents=True)
    proc = subprocess.run([str(colab_like["python"]), str(driver), str(cells)], cwd=content, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))[7:])

    # It cloned this repository to where it was told, and found its data there.
    assert (clone / ".git").is_dir() and (clone / "data" / "chelsea_crop.png").exists()
    assert Path(report["root"]) == clone and Path(report["data"]) == clone / "data"
    clones = [c for c in report["commands"] if c[:2] == ["git", "clone"]]
    assert len(clones) == 1 and clones[0][-2:] == [colab_like["url"], str(clone)]
    # pip ran once, without dependencies, and asked for nothing but the clone.
    pips = [c for c in report["commands"] if c[1:4] == ["-m", "pip", "install"]]
    assert len(pips) == 1 and len(report["commands"]) == 2
    assert "--no-deps" in pips[0] and pips[0][-2:] == ["-e", str(clone)]
    assert not any("torch" in arg for arg in pips[0])
    # What pip installed: sr_core and nothing else (torch is not reinstalled, nor any dependency).
    added = _dist_infos(colab_like["site"]) - colab_like["baseline"]
    assert added and all(d.startswith("sr_core-") for d in added), added
    assert not list(colab_like["site"].glob("torch*")) and not list(colab_like["site"].glob("numpy*"))
    # No restart: sr_core was not importable before the cell, and is right after, from the clone.
    assert not report["importable_before"]
    assert Path(report["sr_core"]).resolve().is_relative_to(clone.resolve())
    # The "your photo" cell took the upload (fake files.upload) and saved it in the clone.
    assert Path(report["photo"]) == clone / "outputs" / "uploads" / "my photo.png"
    assert report["described"] == "uploaded: my photo.png (72x56)"
