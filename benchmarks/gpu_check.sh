#!/usr/bin/env bash
# One short GPU session: the CUDA tests, whole-process timings of `sr-core run` (x4 of a
# 512x512 photo: paper, default (the 16-filter wide configuration on so large an input) and
# fast (the 8-filter one)), a per-lever profile of training steps
# (benchmarks/gpu_profile.py) and benchmarks/speed.py on the GPU. SPEED_ARGS adds options
# to speed.py (e.g. "--compile --x4-to 8192": about two more minutes).
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
time $PY -c "import sr_core.cli, sr_core.train, sr_core.infer"

log "CUDA tests"
SR_TEST_CUDA=1 timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_accel.py 2>&1 | tail -4

log "whole process: sr-core run --scale 4 on a 512x512 photo"
$PY -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('/tmp/astronaut512.png')"
for preset in paper default fast; do
  echo "-- preset $preset"
  time timeout 120 $PY -m sr_core run /tmp/astronaut512.png --preset "$preset" --scale 4 --device cuda \
    --out "/tmp/run_$preset" -q 2>&1 | grep -v "^\s*$" | tail -6
done
log "where a training step's time goes"
timeout 150 $PY benchmarks/gpu_profile.py --device cuda --side 512 --out "$OUT" 2>&1 | grep "ms/step"

log "speed benchmark"
timeout 300 $PY benchmarks/speed.py --device cuda --sizes 256,512,1024,2048,4096 --compare-side 2048 \
  --steps 100 ${SPEED_ARGS:-} --out "$OUT" 2>&1 | grep -v Warning | tail -16
} 2>&1 | tee "$OUT/gpu_log.txt"
