#!/usr/bin/env bash
# The one script to hand a GPU machine (issue 18, item 2): make defbench importable, run the CUDA tests, then
# the GPU suite, all inside GPU_CHECK_LIMIT seconds (default 570, under a 10-minute command limit).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, in the repository root
#   bash benchmarks/gpu_check.sh --wheels   # here, with a package index: fetch the wheels a bare machine lacks
#
# Python: $GPU_CHECK_PYTHON, else .venv/bin/python when it exists and sees a CUDA device, else the system
# python3 (on this workplace's GPU image it holds a CUDA PyTorch). defbench goes in with
# `pip install --no-deps -e .` (its pins, torch==... among them, must not replace the machine's CUDA build) or,
# where pip cannot, by links to its subpackages inside the (throwaway) checkout's defbench/ folder. What
# defbench needs beyond that image (torchattacks, foolbox with eagerpy and GitPython, ART) comes from .whl/
# when present (made by --wheels, 3.2 MB; carry it, with `echo /.whl/ >> .git/info/exclude` so git ignores
# it), else from the package index when the machine reaches one; a package still missing stops the script.
# Data: $DEFBENCH_DATA, else shared/data in the checkout, else ../shared/data (Fashion-MNIST is all it reads).
# Outputs: under $OUT when set (gpu_check.log, gpu_suite.md/.csv, gpu_suite_fig5b.md), else
# benchmarks/results/ (log in /tmp). Models are trained into the zoo on the way ($DEFBENCH_HOME, default
# ~/.cache/defbench), the suite's stores go to /tmp/defbench-gpu-work (a second run on the same machine resumes).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WHEELS=(torchattacks==3.5.1 foolbox==3.3.4 eagerpy==0.30.0 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3
  adversarial-robustness-toolbox==1.20.1)

if [ "${1:-}" = "--wheels" ]; then
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  ls -l .whl
  exit $?
fi

START=$(date +%s)
LIMIT=${GPU_CHECK_LIMIT:-570}
elapsed() { echo $(($(date +%s) - START)); }
DEST=${OUT:-$REPO/benchmarks/results}
mkdir -p "$DEST"
LOG=${OUT:+$OUT/gpu_check.log}
LOG=${LOG:-/tmp/gpu_check.log}
exec > >(tee "$LOG") 2>&1
echo "gpu_check: $(date -u +%FT%TZ) in $REPO, limit ${LIMIT}s"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# --- Python, defbench, the packages the image lacks, data
source benchmarks/gpu_setup.sh || exit 1

# --- the CUDA tests
echo "=== pytest tests/test_cuda.py (at $(elapsed)s)"
timeout 180 $PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" -rs
TESTS=$?
echo "pytest exit $TESTS at $(elapsed)s"

# --- the suite, on what is left of the limit
BUDGET=$((LIMIT - $(elapsed) - 20))
echo "=== benchmarks/gpu_suite.py --budget $BUDGET (at $(elapsed)s)"
if [ "$BUDGET" -gt 60 ]; then
  timeout $((BUDGET + 15)) $PY benchmarks/gpu_suite.py --budget "$BUDGET" --out "$DEST/gpu_suite.md" \
    --work /tmp/defbench-gpu-work
  SUITE=$?
else
  echo "too little time left for the suite"
  SUITE=1
fi
for f in /tmp/defbench-gpu-work/*.log; do
  [ -f "$f" ] && { echo "--- last lines of $f"; tail -n 15 "$f"; }
done
echo "gpu_check: tests exit $TESTS, suite exit $SUITE, $(elapsed)s in all"
exit $((TESTS != 0 || SUITE != 0))
