"""The throughput benchmark's functions that benchmarks/gpu_suite.py builds on: time caps, FLOP counts, rows; and
the suite's CPU smoke end to end (slow)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import BENCHMARKS, import_benchmark, md_rows

#: one latent step of the Fashion-MNIST DCGAN generator, by hand: its forward pass (FC 100->1024, FC
#: 1024->128*7*7, transposed convs 128->64 at 14x14 and 64->1 at 28x28, 2 FLOPs per multiply-add) plus the
#: gradient to its input, which costs the same again
G28_STEP = 2 * 2 * (100 * 1024 + 1024 * 6272 + 128 * 64 * 16 * 49 + 64 * 16 * 196)


@pytest.fixture(scope="module")
def tp():
    return import_benchmark("purify_throughput")


def test_timed_stops_at_its_deadline(tp):
    calls = []
    units = [lambda: (calls.append(1), time.sleep(0.05)) for _ in range(10)]
    seconds, done = tp.timed(units, "cpu", repeats=3, deadline=time.monotonic() + 0.12)
    assert 2 <= done < 10 and len(calls) == done  # cut after the unit in progress, and no second run
    assert seconds == pytest.approx(0.05 * done, abs=0.05)


def test_rows_flops_and_time_cap(tp, fmnist):
    bench = tp.make_bench(2, "cpu")
    rows = tp.measure_defense("defensegan", bench, scale=0.005, repeats=1, chunks=(40, 10), loop_images=1, log=str)
    assert [r.mode for r in rows] == [
        "batched (default chunk)",
        "per-image loop",
        "restart loop (all images)",
        "batched, chunk 10 latents",  # 40 > 2 images x 10 restarts: not measured (and given first, ends nothing)
    ]
    assert [r.images for r in rows] == [2, 1, 2, 2]
    # FlopCounterMode's count agrees with the layers': 10 restarts x 1 latent step per image
    assert rows[0].flops == pytest.approx(2 * 10 * G28_STEP, rel=1e-6)
    assert rows[0].latents == 20 and all(r.seconds > 0 and r.flop_rate > 0 for r in rows)
    assert tp.batched_over_loop(rows, "defensegan") == rows[0].images_per_s / rows[1].images_per_s
    late = tp.measure_defense("invgan", bench, scale=0.005, deadline=time.monotonic() - 1, log=str)
    assert late and all(r.seconds is None and r.note == "skipped: time cap" for r in late)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in tp.markdown(rows + late, ["header"])]
    assert ["invgan", "batched (default chunk)", "—", "—", "—", "skipped: time cap"] in cells
    assert ["defensegan", f"{tp.batched_over_loop(rows, 'defensegan'):.2f}x"] in cells


def test_gemm_peak_is_a_rate(tp):
    flops, desc = tp.gemm_peak("cpu", n=256, repeats=2)
    assert flops > 1e8 and desc == "torch.mm fp32 256x256"


@pytest.mark.slow
def test_gpu_suite_cpu_smoke(tmp_path, fmnist):
    """Without CUDA the suite says so, runs its tiny smoke of every stage and exits 0 with its table."""
    out = tmp_path / "suite.md"
    res = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "needs a CUDA device" in res.stdout
    table = out.read_text()
    assert {"models", "throughput", "bpda", "fig5b"} <= {cells[0] for cells in md_rows(table)}
    assert out.with_suffix(".csv").is_file()
    # RIDE's paper-n BPDA cost follows from its batched rate: 100 images x (10 PGD steps x EOT + 1) purifications
    import csv

    rows = {r["measurement"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    rate = float(rows["ride: batched (grouped conv)"]["value"])
    scale = 0.005  # the smoke's step scale (--smoke settings)
    est = {e: float(rows[f"ride: Table 2 MNIST BPDA, n = 100, EOT {e} (estimate)"]["value"]) for e in (1, 10)}
    assert est[1] == pytest.approx(100 * 11 / (rate * scale) / 60, rel=0.1, abs=0.1)
    assert est[10] == pytest.approx(est[1] * 1010 / 110, rel=0.02, abs=0.1)


def test_gpu_bpda_script_skips_what_its_limit_leaves_no_time_for_and_still_packs(tmp_path):
    """benchmarks/gpu_bpda.sh (through gpu_setup.sh, which gpu_check.sh shares) on a limit too short for any step:
    every step says it was skipped, nothing is trained, and the results archive and log still come back."""
    import os
    import re
    import tarfile

    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "GPU_BPDA_LIMIT": "30",
        "GPU_CHECK_PYTHON": sys.executable,
        "DEFBENCH_HOME": str(tmp_path / "home"),
        "GPU_BPDA_WORK": str(tmp_path / "work"),
        "GPU_BPDA_DATASET": "mnist",  # the MNIST command its header gives
        "GPU_BPDA_READINGS": "D0 D7 I8",
        "GPU_BPDA_LAST": "I10",
    }
    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_bpda.sh")], env=env, capture_output=True, text=True, timeout=240
    )
    log = (out / "gpu_bpda.log").read_text()
    assert proc.returncode == 0, log[-2000:]
    assert re.search(r"^defbench \S+ imports$", log, re.M), log[:1500]  # gpu_setup.sh made it importable
    assert re.search(r"^gpu_bpda: \S+ in \S+, mnist, limit 30s, n = 100, readings: D0 D7 I8 then I10$", log, re.M)
    steps = ("pytest tests/test_cuda.py", "train classifier", "train gan", "train encoder", "bpda_causes D0")
    for step in (*steps, "bpda_causes I10"):
        assert f"=== {step}: skipped" in log, (step, log[-1500:])
    assert not (tmp_path / "home" / "zoo").exists() and not list(out.glob("zoo.tar.part-*"))
    assert tarfile.is_tarfile(out / "results.tar.gz")
