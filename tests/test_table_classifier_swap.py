"""benchmarks/table_classifier_swap.py: the per-image correctness behind a cell, ours with its interval, the side
by side change with its McNemar counts, the one-dataset rule and which classifier each run gets, on stand-in
runs and hand computations (no model is trained)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import import_benchmark

Z = 1.959963984540054  # two-sided 95% normal quantile


@pytest.fixture(scope="module")
def tsw():
    return import_benchmark("table_classifier_swap")


def _measure(attack=None, undefended=False, members=1, metric="accuracy"):
    return SimpleNamespace(
        members=[None] * members, metric=metric, attack=attack, undefended=undefended, cell=lambda s, a: (s, a)
    )


def test_image_correct_concatenates_seeds_with_the_all_repeats_rule(tsw):
    from defbench.harness.matrix import AttackSpec

    pgd = AttackSpec("pgd", 0.1, (("steps", 100), ("step", 0.01)))
    quick = AttackSpec("pgd", 0.1, ())  # the quick preset drops the budgets it sets (steps, step)
    rows = {
        (0, quick): {
            "labels": [0, 1, 2],
            "preds": [0, 1, 2],
            "preds_undefended": [9, 1, 9],
            "extra": {"repeat_preds": [[0, 1, 2], [0, 9, 2]]},  # image 1 wrong in repeat 1
        },
        (1, quick): {"labels": [3, 4], "preds": [3, 9], "preds_undefended": [3, 4], "extra": {}},
    }
    run = SimpleNamespace(seeds=[0, 1], preset="quick", rows=rows)
    defended = tsw.image_correct(run, SimpleNamespace(measure=_measure(pgd)))
    assert defended.tolist() == [True, False, True, True, False]
    bare = tsw.image_correct(run, SimpleNamespace(measure=_measure(pgd, undefended=True)))
    assert bare.tolist() == [False, True, False, True, True]
    assert tsw.image_correct(run, SimpleNamespace(measure=_measure(pgd, members=2))) is None
    assert tsw.image_correct(run, SimpleNamespace(measure=_measure(pgd, metric="auc"))) is None


def _wilson(k, n):
    p = k / n
    c = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    h = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return c - h, c + h


def test_ours_cell_by_hand(tsw, monkeypatch):
    cell = SimpleNamespace(measure=_measure())
    # 7 of 9: 100 * 7 / 9 / 100 * 9 is 6.999...: the count is rounded, not truncated
    monkeypatch.setattr(tsw, "cell_value", lambda run, c: (100 * 7 / 9, 9, None, None))
    lo, hi = _wilson(7, 9)
    assert tsw.ours_cell(None, cell) == f"78 ({100 * lo:.0f}–{100 * hi:.0f})"
    # a pooled cell: its mean alone
    assert tsw.ours_cell(None, SimpleNamespace(measure=_measure(members=2))) == "78"
    # AUC 0.8 of 10 clean (negatives) against 40 attacked (positives): Hanley–McNeil
    a, nn, npos = 0.8, 10, 40
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (npos - 1) * (q1 - a * a) + (nn - 1) * (q2 - a * a)) / (nn * npos))
    monkeypatch.setattr(tsw, "cell_value", lambda run, c: (a, 50, None, (nn, npos)))
    auc = SimpleNamespace(measure=_measure(metric="auc"))
    assert tsw.ours_cell(None, auc) == f"0.800 ({a - 1.96 * se:.2f}–{a + 1.96 * se:.2f})"


def test_side_by_side_change_is_other_minus_zoo_with_mcnemar(tsw, monkeypatch):
    cell = SimpleNamespace(row="FGSM", col="Defense GAN", measure=_measure())
    zoo = SimpleNamespace(name="zoo", table=SimpleNamespace(cells=[cell], metric="accuracy"))
    other = SimpleNamespace(name="other", table=zoo.table)
    ours = {"zoo": 30.0, "other": 80.0}
    right = {  # zoo: images 0-2 right; other: 0, 3-7 right -> only other 5, only zoo 2
        "zoo": np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool),
        "other": np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0], bool),
    }
    monkeypatch.setattr(
        tsw,
        "outcomes",
        lambda run: pd.DataFrame([{"ours": ours[run.name], "paper": 55.0, "n": 10, "note": f"{run.name} note"}]),
    )
    monkeypatch.setattr(tsw, "image_correct", lambda run, c: right[run.name])
    monkeypatch.setattr(tsw, "ours_cell", lambda run, c: f"ours of {run.name}")
    # exact two-sided binomial p of 5 against 2 at 1/2: 2 * P(X <= 2) over 7 trials
    p = 2 * sum(math.comb(7, i) for i in range(3)) / 2**7
    [line] = tsw.side_by_side(zoo, other, "Model A")
    assert line == [
        "FGSM",
        "Defense GAN",
        "55.0",
        "ours of zoo",
        "ours of other",
        f"+50 (5 / 2, p = {p:.2g})",
        "10",
        "zoo: zoo note; Model A: other note",
    ]


def test_swap_dataset_one_fashion_mnist_or_mnist_dataset(tsw):
    assert tsw.swap_dataset(["invgan-table2-fmnist", "invgan-table3-fmnist"]) == "fmnist"
    assert tsw.swap_dataset(["invgan-table2-mnist"]) == "mnist"
    with pytest.raises(SystemExit, match="one dataset"):
        tsw.swap_dataset(["invgan-table2-fmnist", "invgan-table2-mnist"])
    with pytest.raises(SystemExit, match="not a Fashion-MNIST or MNIST table"):
        tsw.swap_dataset(["ride-table2-cifar10"])


def test_main_runs_the_zoo_and_the_other_classifier_on_the_threat_filtered_tables(tsw, monkeypatch, tmp_path):
    from defbench.harness.papers import TABLES

    calls = []
    other_model = object()

    def run_table(table, classifier, **kw):
        calls.append((table, classifier))
        name = "zoo-net" if classifier == "zoo" else "other-net"
        return SimpleNamespace(rows={0: {"classifier": name}}, computed=1, reused=0)

    monkeypatch.setattr(tsw, "scratch_classifier", lambda *a, **k: (other_model, {"history": []}))
    monkeypatch.setattr(tsw, "run_table", run_table)
    monkeypatch.setattr(tsw, "write_paper_report", lambda run, d: None)
    monkeypatch.setattr(tsw, "side_by_side", lambda zoo, other, title: [])
    tid = "invgan-table2-fmnist"
    out = tmp_path / "t.md"
    args = ["--tables", tid, "--threats", "graybox", "--no-progress", "--store", str(tmp_path), "--out", str(out)]
    assert tsw.main(args) == 0
    want = TABLES[tid].only_threats(["graybox"])
    assert want != TABLES[tid]
    assert [(t == want, c) for t, c in calls] == [(True, "zoo"), (True, other_model)]
    assert "the zoo's (zoo-net) and the tutorial CNN (cnn-cleverhans, other-net;" in out.read_text()
