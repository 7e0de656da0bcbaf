"""The attack matrix end to end on real Fashion-MNIST images with tiny models: resumable after SIGKILL,
plugins from another package, one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from defbench.cli import main

DEFBENCH = [sys.executable, "-m", "defbench"]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _rows(db: Path):
    with sqlite3.connect(db) as c:
        return {k: t for k, t in c.execute("SELECT key, created_at FROM cells")}


MATRIX = [
    "matrix",
    "--defense",
    "none,median,mimicgan",
    "--attacks",
    "fgsm,pgd,cw,deepfool",
    "--n",
    "20",
    "--batch-size",
    "10",
    "--preset",
    "quick",
    "--no-progress",
    "--defense-opt",
    "mimicgan:outer_iters=2",
]


def test_sigkill_and_resume(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    cmd = DEFBENCH + MATRIX + ["--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = out / "defbench.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if db.exists() and len(_rows(db)) >= 3:
                break
        except sqlite3.OperationalError:  # the run is still creating the store ("no such table: cells")
            pass
        if proc.poll() is not None:
            pytest.fail("matrix finished before it could be killed: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    assert 3 <= len(before) < 15  # 3 clean cells + 4 attacks x 3 defenses
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    after = _rows(db)
    assert len(after) == 15
    assert all(after[k] == t for k, t in before.items())  # nothing finished was recomputed or lost
    assert f"{15 - len(before)} cells computed, {len(before)} reused" in res.stdout
    assert "Robust accuracy" in res.stdout or "robust accuracy" in res.stdout.lower()
    assert (out / "robust_accuracy.csv").is_file() and (out / "detection_auc.csv").is_file()
    # a third run computes nothing
    res3 = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert "0 cells computed, 15 reused" in res3.stdout


def test_example_plugin_runs_in_a_matrix(tiny_zoo, tmp_path):
    plugin = Path(__file__).parent / "plugin_example"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(plugin)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    try:
        res = subprocess.run(
            DEFBENCH
            + [
                "matrix",
                "--defense",
                "none,median",
                "--attacks",
                "fgsm,mifgsm",
                "--n",
                "10",
                "--batch-size",
                "10",
                "--preset",
                "quick",
                "--no-progress",
                "--out",
                str(tmp_path / "p"),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert "MI-FGSM" in res.stdout
        with sqlite3.connect(tmp_path / "p" / "defbench.sqlite") as c:
            assert c.execute("SELECT COUNT(*) FROM cells WHERE attack='mifgsm'").fetchone()[0] == 2
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "defbench-example-plugin"],
            capture_output=True,
            timeout=300,
        )


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--defense", "magnet"], "unknown defense 'magnet'; choose one of: none, defensegan"),
        (["--attacks", "fgsm,jsma"], "unknown attack 'jsma'; choose one of: fgsm"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'; choose one of"),
        (["--threat", "blackbox"], "unknown threat model 'blackbox'; choose one of: graybox, bpda"),
        (["--eps", "1.5"], "outside [0, 1]"),
        (["--n", "20000"], "larger than the fmnist test set"),
        (["--n-threat", "blackbox=5"], "unknown threat model 'blackbox'; choose one of: graybox, bpda"),
        (["--n-threat", "bpda"], "--n-threat 'bpda' must look like THREAT=N"),
        (["--n-threat", "bpda=0"], "--n-threat bpda=0: the number of images must be >= 1"),
    ],
)
def test_bad_input_one_line(args, expect, tiny_zoo, tmp_path, capsys):
    rc = main(["matrix", "--preset", "quick", "--no-progress", "--out", str(tmp_path / "o")] + args)
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and err.count("\n") == 1, err


def test_incompatible_store(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    with sqlite3.connect(out / "defbench.sqlite") as c:
        c.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
        c.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    rc = main(["matrix", "--preset", "quick", "--attacks", "none", "--defense", "none", "--n", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "schema version 0" in err and err.count("\n") == 1


def test_threats_compose_the_same_attack(tiny_zoo, tiny_classifier, fmnist_images):
    """bpda hands the library attack f ∘ defense; against the identity defense it equals gray-box."""
    from defbench.attacks import get_attack
    from defbench.attacks.threats import attack_model
    from defbench.defenses.base import NoDefense

    model, _ = tiny_classifier
    x, y = fmnist_images
    atk = get_attack("fgsm", "fmnist")
    a = atk(attack_model("graybox", model, NoDefense((1, 28, 28))), x, y)
    b = atk(attack_model("bpda", model, NoDefense((1, 28, 28))), x, y)
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= 0.3 + 1e-6


def test_fewer_images_for_an_expensive_threat(tiny_zoo, tmp_path, capsys):
    """--n-threat bpda=5: bpda cells attack a seeded subset of the n clean images and say so in the tables."""
    out = tmp_path / "sub"
    rc = main(
        [
            "matrix",
            "--defense",
            "median",
            "--attacks",
            "fgsm",
            "--threat",
            "graybox,bpda",
            "--n",
            "20",
            "--n-threat",
            "bpda=5",
            "--batch-size",
            "10",
            "--preset",
            "quick",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    with sqlite3.connect(out / "defbench.sqlite") as c:
        got = {
            (d, t): (n, set(json.loads(i))) for d, t, n, i in c.execute("SELECT defense, threat, n, indices FROM cells")
        }
    assert got[("median", "bpda")][0] == 5 and got[("median", "graybox")][0] == 20
    assert got[("median", "bpda")][1] < got[("median", "none")][1]
    assert "(n=5)" in capsys.readouterr().out
