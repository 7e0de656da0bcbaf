# Sourced by the GPU scripts (gpu_check.sh, gpu_bpda.sh) from the repository root of a bare GPU machine: picks the
# Python ($PY), makes defbench importable without its pins, installs what the machine's image lacks from .whl/
# (bash benchmarks/gpu_check.sh --wheels makes it) or an index, and sets DEFBENCH_DATA. Needs REPO (the
# repository root). Returns non-zero (the caller exits) when a package is still missing.
PY=${GPU_CHECK_PYTHON:-python3}
if [ -z "${GPU_CHECK_PYTHON:-}" ] && [ -x .venv/bin/python ] &&
  .venv/bin/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  PY=.venv/bin/python
fi
echo "python: $(command -v $PY) ($($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'))"

# --- defbench itself
if ! $PY -c "import defbench.harness.matrix" 2>/dev/null; then
  if ! timeout 120 $PY -m pip install -q --no-deps --no-build-isolation -e . 2>/tmp/gpu_check_pip.err; then
    # the subpackages live beside defbench/ (pyproject's package-dir); links inside it make the checkout
    # importable as is (from the repository root, which every step here runs in, and via PYTHONPATH)
    echo "pip could not install defbench ($(grep -m1 "error:" /tmp/gpu_check_pip.err)); linking its subpackages"
    for p in defenses attacks classifiers harness reports; do [ -e "defbench/$p" ] || ln -s "../$p" "defbench/$p"; done
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
  fi
fi

# --- what the machine's image lacks
missing() { $PY - <<'EOF'
import importlib.util
need = {"torchattacks": "torchattacks", "foolbox": "foolbox", "eagerpy": "eagerpy", "git": "GitPython",
        "art": "adversarial-robustness-toolbox", "pytest": "pytest", "tabulate": "tabulate"}
print(" ".join(dist for mod, dist in need.items() if importlib.util.find_spec(mod) is None))
EOF
}
MISSING=$(missing)
if [ -n "$MISSING" ] && ls .whl/*.whl >/dev/null 2>&1; then
  echo "installing from .whl: $(ls .whl | tr '\n' ' ')"
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/defbench-site .whl/*.whl
  export PYTHONPATH=/tmp/defbench-site${PYTHONPATH:+:$PYTHONPATH}
  MISSING=$(missing)
fi
if [ -n "$MISSING" ]; then
  echo "trying the package index for: $MISSING"
  timeout 120 $PY -m pip install -q $MISSING || true
  MISSING=$(missing)
fi
if [ -n "$MISSING" ]; then
  echo "gpu_setup: missing Python packages: $MISSING; run 'bash benchmarks/gpu_check.sh --wheels' where pip reaches an index and carry .whl"
  return 1
fi
$PY -c "import defbench, torchattacks, foolbox, art; print('defbench', defbench.__version__, 'imports')" || return 1

# --- data
if [ -z "${DEFBENCH_DATA:-}" ]; then
  for d in "$REPO/shared/data" "$REPO/../shared/data"; do
    if [ -d "$d" ]; then export DEFBENCH_DATA=$(cd "$d" && pwd); break; fi
  done
fi
echo "DEFBENCH_DATA=${DEFBENCH_DATA:-unset (the loaders try the user cache, then a download)}"
