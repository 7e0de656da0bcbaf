"""benchmarks/clean_accuracy.py: one row per defense, every defense of the stores listed, and no silent pick
between two clean cells of one defense."""

from __future__ import annotations

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def ca():
    return import_benchmark("clean_accuracy")


def _clean(defense, seed, preds, classifier="classifier-mnist-paper", defense_hash="h", dataset="mnist"):
    return {
        "dataset": dataset,
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


def test_randomized_defense_row_by_hand(ca, tmp_path, monkeypatch):
    """A defense purified 3 times: repeat 0 is the accuracy, its Wilson 95% interval (by hand, z = 1.96), the
    three repeats listed in order, and the wall time split over n images × 3 purifications; a deterministic row
    lists no repeats; the papers' column beside a run and a not-run defense."""
    from conftest import md_row

    from defbench.harness.store import Store

    Store(tmp_path).close()
    monkeypatch.setattr(ca, "Store", _FakeStore)
    rnd = _clean("cowboy", 0, [0, 1, 2, 9])  # repeat 0: 3 of 4 right
    rnd["extra"] = {"repeat_preds": [[0, 1, 2, 9], [0, 1, 9, 9], [0, 9, 9, 9]]}  # 75, 50, 25 %
    rnd["wall_seconds"] = 6.0  # 6 s / (4 images × 3 purifications) = 0.50 s
    _FakeStore.cells = [_clean("none", 0, [0, 1, 2, 3]), rnd]
    out = tmp_path / "t.md"
    assert ca.main([str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()

    def wilson(k, n, z=1.96):
        p, q = k / n, z * z / n
        mid, half = (p + q / 2) / (1 + q), z / (1 + q) * (p * (1 - p) / n + q / (4 * n)) ** 0.5
        return f"{100 * (mid - half):.0f}–{100 * (mid + half):.0f}"

    assert wilson(3, 4) == "30–95" and wilson(4, 4) == "51–100"  # the normal approximation: ±42.4 and ±0.0
    row = md_row(text, "cowboy")
    assert row[1] == f"75.0 ({wilson(3, 4)}), n = 4; 3 purifications: 75.0, 50.0, 25.0"
    assert row[2] == "0.50 [cpu]"
    none = md_row(text, "none")
    assert none[1] == f"100.0 ({wilson(4, 4)}), n = 4"  # one purification: no list; 100% still has an interval
    assert none[2] == "1.00 [cpu]"  # 4 s / 4 images
    assert none[3] == "99 (InvGAN T2); 98.98 (RIDE)"  # InvGAN Table 2; RIDE Table 2
    assert md_row(text, "invgan")[1:] == ["not run", "", "99 (InvGAN T2)"]


class _TwoStores:
    """A fake Store whose cells depend on the store's directory (``by_dir``: resolved path -> cells)."""

    by_dir: dict = {}

    def __init__(self, path):
        from pathlib import Path

        self.cells = self.by_dir[Path(path).resolve()]

    def rows(self, **where):
        return list(self.cells)


def _fake_stores(ca, tmp_path, monkeypatch, cells: dict) -> list:
    """One store directory per name in ``cells`` (name -> that store's clean cells), read through _TwoStores;
    returns the directories in the order given."""
    from defbench.harness.store import Store

    dirs = [tmp_path / name for name in cells]
    for d in dirs:
        Store(d).close()
    _TwoStores.by_dir = {d.resolve(): c for d, c in zip(dirs, cells.values(), strict=True)}
    monkeypatch.setattr(ca, "Store", _TwoStores)
    return dirs


def test_take_reads_one_defense_from_the_store_named(ca, tmp_path, monkeypatch, capsys):
    """A slow defense's smaller-n run beside the others: both stores hold the undefended cell, which is refused
    without a word on which to read (the silent side) and read from the store --take names (the firing side);
    --take of a store not listed, of a defense that store lacks, or not DEFENSE=STORE is refused."""
    from conftest import md_row

    none_small = _clean("none", 0, [0, 1, 9, 9])  # 2 of 4 right on the small run's images
    big, small = _fake_stores(
        ca,
        tmp_path,
        monkeypatch,
        {
            "big": [_clean("none", 0, [0, 1, 2, 3]), _clean("defensegan", 0, [0, 1, 2, 9])],
            "small": [none_small, _clean("ride", 0, [0, 9, 9, 9])],
        },
    )
    out = tmp_path / "t.md"
    assert ca.main([str(big), str(small), "--out", str(out)]) == 2
    assert "or --take none=STORE" in capsys.readouterr().err and not out.exists()

    assert ca.main([str(big), str(small), "--take", f"none={big}", "--out", str(out)]) == 0
    text = out.read_text()
    assert md_row(text, "none")[1].startswith("100.0 (")  # the big store's cell, not the small one's 50.0
    assert md_row(text, "defensegan")[1].startswith("75.0 (") and md_row(text, "ride")[1].startswith("25.0 (")
    assert ca.main([str(big), str(small), "--take", f"none={small}", "--out", str(out)]) == 0
    assert md_row(out.read_text(), "none")[1].startswith("50.0 (")

    out.unlink()
    for bad in (f"none={tmp_path / 'elsewhere'}", "none", f"={big}", "none="):
        assert ca.main([str(big), str(small), "--take", bad, "--out", str(out)]) == 2, bad
        assert f"--take {bad}: want DEFENSE=STORE" in capsys.readouterr().err and not out.exists()
    # the store named lacks that defense's cell: refused, not a row of "not run"
    assert ca.main([str(big), str(small), "--take", f"none={big}", "--take", f"ride={big}", "--out", str(out)]) == 2
    assert "--take: no clean cell of ride in the store named" in capsys.readouterr().err and not out.exists()


def test_take_names_a_store_for_the_datasets_it_holds(ca, tmp_path, monkeypatch):
    """Stores of two datasets beside a slow defense's Fashion-MNIST store: --take none=<the fmnist store> picks
    Fashion-MNIST's undefended cell and leaves MNIST's, which only the MNIST store holds, in its row."""
    from conftest import md_row

    fm, mn, slow = _fake_stores(
        ca,
        tmp_path,
        monkeypatch,
        {
            "fm": [_clean("none", 0, [0, 1, 2, 3], dataset="fmnist")],
            "mn": [_clean("none", 0, [0, 1, 2, 9], dataset="mnist")],
            "slow": [
                _clean("none", 0, [0, 9, 9, 9], dataset="fmnist"),
                _clean("ride", 0, [0, 1, 9, 9], dataset="fmnist"),
            ],
        },
    )
    out = tmp_path / "t.md"
    assert ca.main([str(fm), str(mn), str(slow), "--take", f"none={fm}", "--out", str(out)]) == 0
    row = md_row(out.read_text(), "none")  # fmnist: accuracy, s/image, paper; then mnist's three
    assert row[1].startswith("100.0 (") and row[4].startswith("75.0 ("), row
    assert md_row(out.read_text(), "ride")[1].startswith("50.0 (")


def test_take_one_defense_from_one_store_per_dataset(ca, tmp_path, monkeypatch, capsys):
    """Each dataset with its own 500-image store and a slow defense's 100-image store, all four holding the
    undefended cell: --take none=<fmnist 500> --take none=<mnist 500> reads each dataset's undefended cell from
    its own store (the second --take replaced the first before, leaving Fashion-MNIST's cell undecided);
    two stores named for one defense on one dataset are refused."""
    from conftest import md_row

    fm, fm_slow, mn, mn_slow = _fake_stores(
        ca,
        tmp_path,
        monkeypatch,
        {
            "fm": [_clean("none", 0, [0, 1, 2, 3], dataset="fmnist")],
            "fm_slow": [
                _clean("none", 0, [0, 9, 9, 9], dataset="fmnist"),
                _clean("ride", 0, [0, 1, 9, 9], dataset="fmnist"),
            ],
            "mn": [_clean("none", 0, [0, 1, 2, 9], dataset="mnist")],
            "mn_slow": [
                _clean("none", 0, [9, 9, 9, 9], dataset="mnist"),
                _clean("ride", 0, [0, 1, 2, 9], dataset="mnist"),
            ],
        },
    )
    out = tmp_path / "t.md"
    stores = [str(fm), str(fm_slow), str(mn), str(mn_slow)]
    assert ca.main([*stores, "--take", f"none={fm}", "--take", f"none={mn}", "--out", str(out)]) == 0
    text = out.read_text()
    row = md_row(text, "none")  # fmnist: accuracy, s/image, paper; then mnist's three
    assert row[1].startswith("100.0 (") and row[4].startswith("75.0 ("), row
    ride = md_row(text, "ride")
    assert ride[1].startswith("50.0 (") and ride[4].startswith("75.0 ("), ride

    out.unlink()
    assert ca.main([*stores, "--take", f"none={fm}", "--take", f"none={fm_slow}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--take: two stores named for none hold its fmnist cell" in err and not out.exists()
