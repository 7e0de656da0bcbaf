#!/usr/bin/env bash
# InvGAN Table 2's BPDA readings at n = 100 on a GPU machine (issue: papers' tables, second pass, item 4), on
# Fashion-MNIST unless GPU_BPDA_DATASET names another dataset (mnist), in one command under GPU_BPDA_LIMIT seconds
# (default 540, inside a 10-minute command limit; the first run, on an H200 with GPU_BPDA_LIMIT=520, got through
# the models and D0 I0 D5 I5 in 453 s: docs/RESULTS.md):
#
#   1. tests/test_cuda.py (the CUDA code paths: projection, RIDE, a matrix cell; cap 120 s);
#   2. that dataset's paper classifier, GAN prior and InvGAN encoder, trained on the GPU (`defbench train`,
#      skipped when the zoo has them);
#   3. benchmarks/bpda_causes.py, one reading at a time at n = GPU_BPDA_N (default 100): D0 / I0 (PGD ε 0.3,
#      40 steps, travel 0.4), D5 / I5 (10 steps of 0.01, travel 0.1), D7 (CW-L2 through the same BPDA model),
#      I8 (InvGAN's BPDA backward the identity), I9 (I5 on that backward); then the GPU throughput stage;
#      then I7 (InvGAN under CW-L2, the longest: about 6 min at n = 100 on an H200);
#   4. packs the readings' stores and tables into $OUT/results.tar.gz and the zoo into 15 MiB parts
#      ($OUT/zoo.tar.part-*), beside the log, so the tables can be read back and the same models used on a CPU
#      machine.
#
# Every step runs under `timeout` (SIGTERM to its process group: defbench keeps each finished cell), with what is
# left of the limit minus a reserve for the packing. A step with under 20 s left is skipped and says so.
#
#   bash benchmarks/gpu_bpda.sh          # on the GPU machine, in the repository root (carry .whl and shared/)
#
# Setup (Python, defbench without its pins, the wheels from .whl/, DEFBENCH_DATA) is benchmarks/gpu_setup.sh.
# Models go to $DEFBENCH_HOME/zoo (default /tmp/defbench-gpu-home), the readings' stores to $GPU_BPDA_WORK
# (default /tmp/defbench-gpu-bpda), outputs to $OUT (else /tmp/gpu_bpda_out). GPU_BPDA_READINGS overrides the
# readings (space-separated labels of bpda_causes.py), GPU_BPDA_LAST the ones after the throughput stage (I7;
# empty: none); GPU_BPDA_ENCODER_OPTS adds options to the encoder's training (e.g. "--iterations 5" for a dry
# run on a CPU with stand-in models in DEFBENCH_HOME). MNIST's readings that a CPU cannot run at n = 100 (CW-L2
# through BPDA: about 70 min per 10 images on one CPU thread, docs/RESULTS.md), I10 being InvGAN's code's
# `bpda-l2` as it runs (the identity backward):
#
#   GPU_BPDA_DATASET=mnist GPU_BPDA_READINGS="D0 D7 I8" GPU_BPDA_LAST=I10 bash benchmarks/gpu_bpda.sh
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$(date +%s)
LIMIT=${GPU_BPDA_LIMIT:-540}
N=${GPU_BPDA_N:-100}
DATASET=${GPU_BPDA_DATASET:-fmnist}
RESERVE=25
READINGS=${GPU_BPDA_READINGS:-D0 I0 D5 I5 D7 I8 I9}
LAST=${GPU_BPDA_LAST-I7}  # after the throughput stage, the longest; GPU_BPDA_LAST="" runs none
elapsed() { echo $(($(date +%s) - START)); }
DEST=${OUT:-/tmp/gpu_bpda_out}
mkdir -p "$DEST"
exec > >(tee "$DEST/gpu_bpda.log") 2>&1
export DEFBENCH_HOME=${DEFBENCH_HOME:-/tmp/defbench-gpu-home}
WORK=${GPU_BPDA_WORK:-/tmp/defbench-gpu-bpda}
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1
echo "gpu_bpda: $(date -u +%FT%TZ) in $REPO, $DATASET, limit ${LIMIT}s, n = $N, readings: $READINGS then ${LAST:-none}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

source benchmarks/gpu_setup.sh || exit 1
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
echo "device: $DEVICE; DEFBENCH_HOME=$DEFBENCH_HOME"

# step NAME CAP COMMAND...: COMMAND under min(CAP, what is left - RESERVE) seconds
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((LIMIT - $(elapsed) - RESERVE))
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -lt 20 ]; then
    echo "=== $name: skipped, ${left}s of the limit left"
    return 0
  fi
  echo "=== $name (cap ${cap}s, at $(elapsed)s)"
  local t0
  t0=$(date +%s)
  timeout -k 15 "$cap" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $(($(date +%s) - t0))s$([ $rc = 124 ] && echo ' (stopped at its cap)')"
}

step "pytest tests/test_cuda.py" 120 $PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" -rs
for kind in classifier gan encoder; do
  opts=()
  [ "$kind" = encoder ] && [ -n "${GPU_BPDA_ENCODER_OPTS:-}" ] && read -ra opts <<<"$GPU_BPDA_ENCODER_OPTS"
  step "train $kind" 240 $PY -m defbench train "$kind" --dataset "$DATASET" --preset paper --device "$DEVICE" \
    --no-progress "${opts[@]}"
done
DATASET=$DATASET $PY - <<'EOF'
import os
from defbench.harness import zoo
for kind in ("classifier", "gan", "encoder"):
    m = zoo.manifest_or_none(zoo.model_id(kind, os.environ["DATASET"], "paper")) or {}
    print(kind, m.get("sha256", "missing")[:12], {k: v for k, v in m.get("metrics", {}).items() if not isinstance(v, (list, dict))})
EOF
# readings LABEL...: each reading of bpda_causes.py as its own step (a capped one keeps the others' cells)
readings() {
  local r
  for r in "$@"; do
    step "bpda_causes $r" 400 $PY benchmarks/bpda_causes.py --dataset "$DATASET" --n "$N" --only "$r" \
      --work "$WORK/$DATASET" --out "$DEST/bpda_$r.md"
  done
}
readings $READINGS
if [ "$DEVICE" = cuda ]; then
  step "gpu_suite throughput" 120 $PY benchmarks/gpu_suite.py --stages throughput --budget 250 \
    --out "$DEST/gpu_suite.md" --work "$WORK/suite"
fi
readings $LAST

echo "=== packing (at $(elapsed)s)"
# $OUT takes at most 8 files of 16 MiB: the zoo (the paper GAN alone is ~53 MB) goes in 15 MiB parts
# (cat zoo.tar.part-* | tar -x), the tables, suite outputs and stores in one small archive beside the log
cp "$DEST"/*.md "$DEST"/*.csv "$WORK"/ 2>/dev/null
tar -cf "$DEST/results.tar.gz" -z --exclude='*.lock' --exclude='examples' -C "$WORK" . || echo "packing the stores failed"
rm -f "$DEST"/*.md "$DEST"/*.csv
if [ -d "$DEFBENCH_HOME/zoo" ]; then
  tar -cf - --exclude='*.lock' -C "$DEFBENCH_HOME" zoo | split -b 15M - "$DEST/zoo.tar.part-"
fi
ls -l "$DEST"
echo "gpu_bpda: $(elapsed)s in all"
