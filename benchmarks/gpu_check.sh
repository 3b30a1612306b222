#!/usr/bin/env bash
# One short GPU session (about 5 minutes on an H100): the CUDA tests, where a whole
# `sr-core run --scale 4` of a 512x512 photo spends its time (benchmarks/timeline.py: paper;
# default, which on so large an input is the 16-filter configuration, with and without the
# CUDA graph; fast, the 8-filter one), one plain timed `sr-core run`, and benchmarks/speed.py
# (training plain / fast / fast without the graph; the inference precision x layout x cuDNN
# grid; the scaling curve). SPEED_ARGS adds options to speed.py (e.g. "--compile-only", or
# "--skip-inference"), SPEED_TIMEOUT its time limit (300 s); RUNS picks the timelines, e.g.
# RUNS="default|fast|paper".
#
#   OUT=outputs/bench/gpu bash benchmarks/gpu_check.sh
#
# Needs a Python with torch (CUDA), numpy, scipy, pillow, opencv, scikit-image, tqdm,
# matplotlib, psutil; sr_core is used from this checkout (no install). SR_EXTRA_SITE may
# name a folder holding the stlpips-pytorch weights (the offline perceptual loss the paper
# preset trains with); without it the paper preset trains with MSE only and says so.
set -u
OUT=${OUT:-outputs/bench/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="${SR_EXTRA_SITE:+$SR_EXTRA_SITE:}$PWD"
PY=${PYTHON:-python3}
TIMEFORMAT="wall %R s"
log() { echo; echo "== $*"; }

{
log machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
$PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"

log "import sr_core (start-up cost)"
time $PY -c "import sr_core"
time $PY -c "import sr_core.faces.cli, sr_core.method.train, sr_core.method.infer"

log "CUDA tests"
SR_TEST_CUDA=1 timeout 180 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_accel.py 2>&1 | tail -6

log "whole process: where sr-core run --scale 4 of a 512x512 photo spends its time"
$PY -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('/tmp/astronaut512.png')"
IFS='|' read -ra RUN_LIST <<< "${RUNS:-default|default --no-cuda-graph|fast|paper}"
for run in "${RUN_LIST[@]}"; do
  timeout 150 $PY benchmarks/timeline.py /tmp/astronaut512.png --preset $run --out "$OUT" 2>&1 \
    | grep -v "^\s*$" | grep -v Warning | tail -16
done
echo "-- plain command line, preset default"
time timeout 120 $PY -m sr_core run /tmp/astronaut512.png --scale 4 --device cuda --out /tmp/run_default -q \
  2>&1 | tail -4

log "speed benchmark"
timeout ${SPEED_TIMEOUT:-300} $PY benchmarks/speed.py --device cuda --sizes 512,1024,2048,4096 --compare-side 2048 \
  --steps 100 --grid ${SPEED_ARGS:-} --out "$OUT" 2>&1 | grep -v Warning | tail -30
} 2>&1 | tee "$OUT/gpu_log.txt"
