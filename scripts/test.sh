#!/usr/bin/env bash
# The test command: set up (idempotent), then unit tests and the notebooks in smoke mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SR_SMOKE=1 MPLBACKEND=Agg
exec .venv/bin/python -m pytest tests notebooks \
  --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg "$@"
