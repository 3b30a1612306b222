"""The repository as a product: no machine paths in tracked files, imports that run one way."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Home and workspace folders of the machines this was built on (or anyone's): never in a file
# others read. /tmp and /content (Colab) are generic and allowed.
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home/\w+|Users/\w+)/|[A-Z]:\\\\Users")
LAYERS = {"method": 1, "runtime": 1, "evaluation": 2, "faces": 3}  # faces -> Upscaler -> method/runtime


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / f for f in out.splitlines() if (ROOT / f).is_file()]


def test_no_machine_paths_in_tracked_files():
    bad = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        bad += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(text.splitlines(), 1) if MACHINE_PATH.search(line)]
    assert not bad, "machine-specific paths: " + ", ".join(bad[:20])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sr_core"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("sr_core")}
    return names


def test_imports_run_one_way():
    """The method and the runtime never import the Upscaler, evaluation or the faces; nothing
    below the faces imports them; the Upscaler imports no face."""
    pkg = ROOT / "sr_core"
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg).parts
        layer = rel[0] if len(rel) > 1 else None
        for name in _imports(path):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else ""
            where = f"{'/'.join(rel)} imports {name}"
            if layer in ("method", "runtime"):
                assert target not in ("upscaler", "evaluation", "faces"), where
            if layer == "evaluation":
                assert target != "faces", where
            if layer is None and rel[0] in ("upscaler.py", "resolve.py", "config.py", "errors.py"):
                assert target != "faces", where
