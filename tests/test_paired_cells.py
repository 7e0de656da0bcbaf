"""benchmarks/paired_cells.py: the pairs table from stored cells, and its refusals (cells that share no image,
a named defense without a cell)."""

from __future__ import annotations

import pytest
from conftest import import_benchmark

from defbench import DefbenchError


@pytest.fixture(scope="module")
def pc():
    return import_benchmark("paired_cells")


def _cell(defense, indices, labels, preds):
    return {"defense": defense, "indices": indices, "labels": labels, "preds": preds}


def test_pairs_count_on_the_images_both_cells_hold(pc):
    a = _cell("tvm", [1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 9, 9])  # right on 1, 2
    b = _cell("ride", [2, 3, 4, 5], [1, 2, 3, 4], [9, 2, 9, 4])  # right on 3, 5; image 5 is not a's
    (row,) = pc.pairs([a, b])
    assert row[:7] == ["tvm vs ride", 3, "1 / 1", 0, 1, 1, 1]
    assert row[7] == "1"  # one against one: no evidence


def test_pairs_refuses_cells_without_a_common_image(pc):
    with pytest.raises(DefbenchError, match="share no test image"):
        pc.pairs([_cell("tvm", [1], [0], [0]), _cell("ride", [2], [0], [0])])


def test_a_named_defense_without_a_cell_is_refused(pc, tmp_path):
    from defbench.harness.store import Store

    Store(tmp_path).close()  # an empty store
    with pytest.raises(SystemExit, match="no PGD/bpda cell of ride"):
        pc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda", "--defenses", "ride"])
    with pytest.raises(SystemExit, match="fewer than two PGD/bpda cells"):
        pc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda"])
