#!/usr/bin/env bash
# Set up from nothing: a .venv beside this repo with sr_core and its test tools.
# torch is installed only when the venv has none, and as the CPU build where one is at hand,
# so a machine without a GPU does not download a multi-GB CUDA build (and Colab, which has
# torch already, never reinstalls it: there use `pip install -e .` alone).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # A pinned CPU wheel where the machine provides one; any torch >= 2.1 works otherwise.
  "${PIP[@]}" install "torch==2.13.0" 2>/dev/null || "${PIP[@]}" install "torch>=2.1"
fi
"${PIP[@]}" install -e ".[dev]"
# The browser tests (tests/faces/test_browser.py) drive Debian's Chromium and chromedriver.
# Installed only when asked (SR_BROWSER=1; .ci/run sets it), where apt-get exists and they are missing.
if [ "${SR_BROWSER:-0}" = 1 ] && command -v apt-get >/dev/null 2>&1 \
   && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    echo "SR_BROWSER=1: chromium and chromium-driver are missing and apt-get needs root (no sudo)" >&2; exit 1
  fi
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
.venv/bin/python -c "import sr_core, torch; print(f'sr_core {sr_core.__version__} ready (torch {torch.__version__})')"
