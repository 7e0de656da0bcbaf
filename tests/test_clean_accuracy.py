"""benchmarks/clean_accuracy.py: one row per defense, every defense of the stores listed, and no silent pick
between two clean cells of one defense."""

from __future__ import annotations

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def ca():
    return import_benchmark("clean_accuracy")


def _clean(defense, seed, preds, classifier="classifier-mnist-paper", defense_hash="h"):
    return {
        "dataset": "mnist",
        "defense": defense,
        "seed": seed,
        "classifier": classifier,
        "defense_hash": defense_hash,
        "preds": preds,
        "labels": [0, 1, 2, 3],
        "n": 4,
        "extra": {},
        "wall_seconds": 4.0,
        "device": "cpu",
    }


class _FakeStore:
    cells: list = []

    def __init__(self, path):
        pass

    def rows(self, **where):
        return [c for c in self.cells if all(c.get(k, v) == v for k, v in where.items() if k != "attack")]


def test_two_seeds_of_one_defense_are_refused_and_seed_picks_one(ca, tmp_path, monkeypatch, capsys):
    from defbench.harness.store import Store

    Store(tmp_path).close()
    monkeypatch.setattr(ca, "Store", _FakeStore)
    _FakeStore.cells = [_clean("none", 0, [0, 1, 2, 3]), _clean("none", 1, [0, 1, 9, 9])]
    out = tmp_path / "t.md"
    assert ca.main([str(tmp_path), "--out", str(out)]) == 2
    assert "mnist / none has two clean cells (seed 0" in capsys.readouterr().err and not out.exists()
    assert ca.main([str(tmp_path), "--seed", "1", "--out", str(out)]) == 0
    assert "| none " in out.read_text() and "50.0 (" in out.read_text()  # seed 1's cell: 2 of 4 right
    # one seed, two classifiers (stores of two runs): --seed cannot pick, so the message asks for other stores
    _FakeStore.cells = [_clean("none", 0, [0, 1, 2, 3]), _clean("none", 0, [0, 1, 2, 3], classifier="other")]
    assert ca.main([str(tmp_path), "--seed", "0", "--out", str(tmp_path / "u.md")]) == 2
    assert "give stores of one run each" in capsys.readouterr().err and not (tmp_path / "u.md").exists()


def test_a_defense_outside_the_built_in_order_gets_its_row(ca, tmp_path, monkeypatch):
    from defbench.harness.store import Store

    Store(tmp_path).close()
    monkeypatch.setattr(ca, "Store", _FakeStore)
    _FakeStore.cells = [_clean("none", 0, [0, 1, 2, 3]), _clean("mimicgan[surrogate=identity]", 0, [0, 1, 2, 9])]
    out = tmp_path / "t.md"
    assert ca.main([str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| mimicgan[surrogate=identity] " in text and "75.0 (" in text
    assert "| mimicgan " in text and "not run" in text  # built-ins without a cell still say so
