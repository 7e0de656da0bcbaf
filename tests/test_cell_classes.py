"""benchmarks/cell_classes.py: per true class, a cell's images, right ones and most frequent prediction, from
the stored per-image predictions (hand-counted rows), and its refusals."""

from __future__ import annotations

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def cc():
    return import_benchmark("cell_classes")


def _row(labels, preds, dataset="cifar10", defense="ride"):
    return {
        "dataset": dataset,
        "defense": defense,
        "indices": list(range(len(labels))),
        "labels": labels,
        "preds": preds,
        "attack_config": {"label": "clean"},
    }


def test_counts_per_class_and_the_class_a_collapsed_cell_predicts(cc):
    # 3 cats all right; 2 frogs read as cat; 1 ship right; 1 ship read as truck
    row = _row([3, 3, 3, 6, 6, 8, 8], [3, 3, 3, 3, 3, 8, 9])
    assert cc.class_rows(row) == [
        ["cat", 3, 3, "cat (3)"],
        ["frog", 2, 0, "cat (2)"],
        ["ship", 2, 1, "ship (1)"],  # a tie: the prediction met first
        ["all", 7, 4, "cat (5)"],
    ]


def test_a_dataset_without_names_prints_labels(cc):
    assert cc.class_rows(_row([1, 1, 7], [1, 7, 7], dataset="mnist")) == [
        ["1", 2, 1, "1 (1)"],
        ["7", 1, 1, "7 (1)"],
        ["all", 3, 2, "7 (2)"],
    ]


def test_errors_add_the_median_projection_error_per_class_and_over_all(cc):
    row = {**_row([3, 3, 3, 6], [3, 3, 3, 3]), "extra": {"projection_error": [1.0, 5.0, 2.0, 9.0]}}
    assert cc.class_rows(row, errors=True) == [
        ["cat", 3, 3, "cat (3)", "2.00"],  # median of 1, 5, 2
        ["frog", 1, 0, "cat (1)", "9.00"],
        ["all", 4, 3, "cat (4)", "3.50"],  # median of all four
    ]
    assert cc.class_rows(row) == [r[:4] for r in cc.class_rows(row, errors=True)]  # silent without the flag
    assert [r[4] for r in cc.class_rows(_row([3, 6], [3, 6]), errors=True)] == ["—", "—", "—"]  # none stored


def test_main_prints_one_table_per_cell_in_the_order_asked(cc, monkeypatch, capsys):
    rows = [_row([0, 1], [0, 0], defense="tvm"), _row([0, 1], [1, 1], defense="ride")]
    monkeypatch.setattr(cc, "select", lambda *a: rows)
    assert cc.main(["--store", "x", "--defenses", "ride", "tvm"]) == 0
    out = capsys.readouterr().out
    assert out.index("**ride**") < out.index("**tvm**")
    assert "| all          |        2 |       1 | automobile (2)           |" in out  # ride: both read as 1


def test_refusals(cc, tmp_path):
    from defbench.harness.store import Store

    Store(tmp_path).close()  # an empty store
    with pytest.raises(SystemExit, match="no clean/none cell of ride in"):
        cc.main(["--store", str(tmp_path), "--defenses", "ride"])
    with pytest.raises(SystemExit, match="no PGD/bpda cell in"):
        cc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda"])


def test_a_tie_goes_to_the_prediction_met_first_not_the_lower_label(cc):
    # two ships: the first read as truck (9), the second right (8): one each, truck met first
    assert cc.class_rows(_row([8, 8], [9, 8]))[0] == ["ship", 2, 1, "truck (1)"]


def test_classes_are_listed_in_label_order_not_as_met(cc):
    row = {**_row([6, 3, 6], [6, 3, 3]), "extra": {"projection_error": [4.0, 1.0, 2.0]}}
    assert cc.class_rows(row, errors=True) == [
        ["cat", 1, 1, "cat (1)", "1.00"],
        ["frog", 2, 1, "frog (1)", "3.00"],  # median of 4 and 2
        ["all", 3, 2, "cat (2)", "2.00"],
    ]


def test_two_cells_of_one_defense_under_one_label_are_refused(cc, monkeypatch):
    """PGD at 10 and at 20 steps in one store: a table per cell would print both as 'ride @ ε 0.1'."""
    rows = [_row([0, 1], [0, 0]), _row([0, 1], [1, 1])]
    for r, steps in zip(rows, (10, 20), strict=True):
        r["attack"], r["attack_config"] = "pgd", {"label": "PGD", "eps": 0.1, "params": {"steps": steps}}
    monkeypatch.setattr(cc, "select", lambda *a: rows)
    with pytest.raises(
        SystemExit, match="2 PGD cells of ride @ ε 0.1 in one store \\(attacks PGD steps=10, PGD steps=20"
    ):
        cc.main(["--store", "x", "--attack", "PGD", "--threat", "graybox"])
    monkeypatch.setattr(cc, "select", lambda *a: rows[1:])
    assert cc.main(["--store", "x", "--attack", "PGD", "--threat", "graybox"]) == 0
