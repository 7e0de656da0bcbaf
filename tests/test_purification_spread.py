"""benchmarks/purification_spread.py: each purification of a cell counted alone, beside the one-purification run's
cell, and whether the first purification repeats it; cells purified once are left out."""

from __future__ import annotations

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def ps():
    return import_benchmark("purification_spread")


def _row(preds, repeats=None, bare=(0, 0, 0, 0), indices=(1, 2, 3, 4), attack="fgsm", threat="graybox"):
    extra = {"repeat_preds": [list(p) for p in repeats]} if repeats else {}
    return {
        "defense": "defensegan",
        "attack": attack,
        "threat": threat,
        "attack_config": {"label": attack.upper()},
        "labels": [0, 1, 2, 3],
        "indices": list(indices),
        "preds": list(preds),
        "preds_undefended": list(bare),
        "extra": extra,
    }


def test_each_purification_alone_and_the_first_against_the_one_purification_cell(ps):
    # three purifications: 4, 2 and 3 of 4 right; images 0-1 right in all, every image right in some
    rep = _row([0, 1, 2, 3], [[0, 1, 2, 3], [0, 1, 9, 9], [0, 1, 2, 9]])
    (row,) = ps.spread_rows([rep, _row([0, 1, 2, 3])], [_row([0, 1, 2, 3])])  # the once-purified cell: no row
    assert row == ["defensegan", "FGSM (graybox)", "100", "100, 50, 75", "75.0", "2 / 4 of 4", "yes"]
    # a one-purification cell that differs on one image and whose attack moved the bare classifier on two
    (row,) = ps.spread_rows([rep], [_row([0, 1, 2, 9], bare=(5, 5, 0, 0))])
    assert row[2] == "75" and row[6] == "no: 1 predictions differ (2 of the bare classifier)"
    (row,) = ps.spread_rows([rep])  # no run to compare with
    assert row[2] == row[6] == "—"
    with pytest.raises(SystemExit, match="other test images"):
        ps.spread_rows([rep], [_row([0, 1, 2, 3], indices=(5, 6, 7, 8))])


def test_a_store_without_repeated_cells_is_refused(ps, tmp_path):
    from defbench.harness.store import Store

    Store(tmp_path).close()
    with pytest.raises(SystemExit, match="was purified more than once"):
        ps.main(["--store", str(tmp_path)])
