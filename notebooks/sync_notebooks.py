"""Keep the notebooks in step with their sources: `python notebooks/sync_notebooks.py`.

1. Rewrites the Colab badge and the `REPO = ...` line of every notebooks/py/NN_*.py from
   `sr_core.faces.viz.COLAB_REPO` (a fork changes that one line, then runs this script).
2. Regenerates each notebooks/NN_*.ipynb from its .py (the .py is the source), keeping the
   cell ids of the existing notebook (`jupytext --update`) and dropping any outputs.

`--check` changes nothing and exits 1 if a source's badge or REPO line is stale.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat

from sr_core.faces.viz import COLAB_REPO, colab_badge

HERE = Path(__file__).resolve().parent
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
REPO_LINE = re.compile(r'^REPO = "[^"]*"', re.M)


def sources() -> list[Path]:
    return sorted(HERE.glob("py/[0-9][0-9]_*.py"))


def fixed_source(path: Path) -> str:
    text = path.read_text()
    text = BADGE.sub(lambda _: colab_badge(path.stem), text)
    return REPO_LINE.sub(f'REPO = "{COLAB_REPO}"', text)


def regenerate(py: Path, ipynb: Path) -> None:
    cmd = [sys.executable, "-m", "jupytext", "-q", "--to", "ipynb", "--output", str(ipynb), str(py)]
    if ipynb.exists():
        cmd.insert(-1, "--update")
    subprocess.run(cmd, check=True)
    nb = nbformat.read(ipynb, as_version=4)
    if any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        nbformat.write(nb, ipynb)


def main(argv: list[str]) -> int:
    stale = [p for p in sources() if fixed_source(p) != p.read_text()]
    if "--check" in argv:
        for p in stale:
            print(f"stale Colab badge or REPO line: {p.relative_to(HERE.parent)}")
        return 1 if stale else 0
    for p in stale:
        p.write_text(fixed_source(p))
    for py in sources():
        regenerate(py, HERE / f"{py.stem}.ipynb")
    print(f"{len(sources())} notebooks regenerated ({len(stale)} sources updated for {COLAB_REPO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
