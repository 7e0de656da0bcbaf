"""benchmarks/anomaly_classes.py: per left-out class AUCs of the mimicgan-table2 cells, checked by hand."""

from __future__ import annotations

import pytest
from conftest import import_benchmark, md_row, md_rows


@pytest.fixture(scope="module")
def ac():
    return import_benchmark("anomaly_classes")


def _cell(defense, labels, errors):
    return {"defense": defense, "labels": labels, "threat": "none", "extra": {"projection_error": errors}}


def test_each_class_row_is_its_own_auc(ac):
    labels = [3, 3, 1, 2, 5, 3]
    # class 3 left out: its errors 0.9, 0.8, 0.2 against 0.1, 0.5, 0.3 -> 7 of 9 pairs ranked right
    mimic = _cell("mimicgan[gan=no3,latent_steps=75,surrogate_steps=25]", labels, [0.9, 0.8, 0.1, 0.5, 0.3, 0.2])
    # f̂ = I on class 1 left out: 1 positive (error 0.4) above 4 of 5 negatives
    ident = _cell(
        "mimicgan[gan=no1,latent_steps=75,surrogate=identity,surrogate_steps=25]",
        labels,
        [0.9, 0.1, 0.4, 0.2, 0.3, 0.35],
    )
    rows = ac.table_rows(ac.class_stats([mimic, ident]))
    assert [r[:4] for r in rows] == [[1, "f̂ = I", 1, 5], [3, "MimicGAN", 3, 3]]
    assert rows[0][4].startswith("0.800 ") and rows[1][4].startswith(f"{7 / 9:.3f} ")
    assert rows[1][5:] == ["0.80", "0.30"]


def test_summary_gives_mean_std_and_the_paired_test(ac):
    stats = [(k, "f̂ = I", 5, 95, v, 0, 1, 1, 1) for k, v in enumerate([0.5, 0.6, 0.7, 0.4, 0.5])]
    stats += [(k, "MimicGAN", 5, 95, v, 0, 1, 1, 1) for k, v in enumerate([0.6, 0.8, 0.9, 0.5, 0.55])]
    lines = ac.summary(stats)
    assert lines[0] == "f̂ = I: mean 0.540 ± 0.114 over 5 classes"
    assert lines[1] == "MimicGAN: mean 0.670 ± 0.172 over 5 classes"
    # every difference positive: the exact two-sided signed-rank p of n = 5 is 2 / 2**5
    assert lines[2] == "MimicGAN above f̂ = I on 5 of 5 classes; paired Wilcoxon signed-rank p = 0.0625"


def test_main_refuses_a_store_without_leave_one_class_out_cells(ac, tmp_path):
    from defbench.harness.store import Store

    Store(tmp_path).close()  # an empty store
    with pytest.raises(SystemExit, match="no cell of a leave-one-class-out GAN"):
        ac.main(["--store", str(tmp_path)])


def test_main_prints_or_writes_the_table_of_the_stored_cells(ac, tmp_path, monkeypatch, capsys):
    labels = [3, 3, 1, 2, 5, 3]
    cells = [
        _cell("mimicgan[gan=no3,latent_steps=75,surrogate_steps=25]", labels, [0.9, 0.8, 0.1, 0.5, 0.3, 0.2]),
        _cell(
            "mimicgan[gan=no3,latent_steps=75,surrogate=identity,surrogate_steps=25]",
            labels,
            [0.2, 0.4, 0.1, 0.5, 0.3, 0.6],  # 0.2, 0.4, 0.6 against 0.1, 0.5, 0.3: 6 of 9 pairs ranked right
        ),
        _cell("tvm", labels, [0.0] * 6),  # not a leave-one-class-out GAN: left out of the table
    ]

    class FakeStore:
        def __init__(self, path):
            pass

        def rows(self, seed):
            return cells

        def close(self):
            pass

    monkeypatch.setattr(ac, "Store", FakeStore)
    assert ac.main(["--store", "unused"]) == 0
    printed = capsys.readouterr().out
    # Hanley-McNeil by hand, A = 7/9, 3 against 3: Q1 = A/(2-A), Q2 = 2A²/(1+A), se 0.207, low A - 1.96 se = 0.37
    assert md_row(printed, "3", "MimicGAN")[2:5] == ["3", "3", f"{7 / 9:.3f} (0.37–1.00)"]
    assert md_row(printed, "3", "f̂ = I")[4].startswith(f"{6 / 9:.3f} ")
    assert len(md_rows(printed)) == 3 and "tvm" not in printed  # header + the two GAN cells
    assert "- MimicGAN: mean 0.778 over 1 class" in printed
    out = tmp_path / "t.md"
    assert ac.main(["--store", "unused", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1:] == printed.splitlines()[1:]


def test_a_class_ranked_perfectly_has_no_interval(ac):
    """AUC 1 has no Hanley–McNeil interval: the cell gives the AUC alone, never 'nan' (the three benchmarks that
    print AUC cells share one formatter)."""
    labels = [3, 3, 1, 2]
    rows = ac.table_rows(ac.class_stats([_cell("mimicgan[gan=no3]", labels, [0.9, 0.8, 0.1, 0.2])]))
    assert rows[0][4] == "1.000"
    from _common import auc_cell

    assert auc_cell(float("nan"), 0, 3) == "—"
    lo_hi = auc_cell(0.5, 10, 10)  # q1 = q2 = 1/3: se = sqrt(0.0175) = 0.132 -> 0.24-0.76
    assert lo_hi == "0.500 (0.24–0.76)"


def test_rows_of_one_class_come_in_label_order_whatever_the_store_order(ac):
    """Per class, then per row label: the f̂ = I cell stored first still follows MimicGAN in its class."""
    labels = [3, 3, 1, 2]
    ident = _cell("mimicgan[gan=no3,surrogate=identity]", labels, [0.9, 0.8, 0.1, 0.2])
    mimic = _cell("mimicgan[gan=no3]", labels, [0.9, 0.1, 0.8, 0.2])
    other = _cell("mimicgan[gan=no1]", labels, [0.9, 0.1, 0.8, 0.2])
    stats = ac.class_stats([ident, mimic, other])
    assert [s[:2] for s in stats] == [(1, "MimicGAN"), (3, "MimicGAN"), (3, "f̂ = I")]


def test_the_interval_counts_the_left_out_class_as_positives(ac):
    """Hanley–McNeil is not symmetric in the two sides: 1 left-out image (positive) above 4 of 5 others, by hand."""
    labels = [1, 0, 2, 3, 4, 5]
    rows = ac.table_rows(ac.class_stats([_cell("mimicgan[gan=no1]", labels, [0.4, 0.1, 0.2, 0.3, 0.35, 0.9])]))
    a, n_pos, n_neg = 0.8, 1, 5
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = ((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)) ** 0.5
    assert rows[0][2:5] == [1, 5, f"0.800 ({a - 1.96 * se:.2f}–1.00)"] and f"{a - 1.96 * se:.2f}" == "0.22"


def test_summary_of_two_classes_gives_the_spread_and_the_paired_test(ac):
    """Two classes are enough for a std (ddof 1) and a signed-rank test: both differences positive, the exact
    two-sided p of n = 2 is 2 / 2**2."""
    stats = [(k, "f̂ = I", 5, 95, v, 0, 1) for k, v in enumerate([0.5, 0.6])]
    stats += [(k, "MimicGAN", 5, 95, v, 0, 1) for k, v in enumerate([0.6, 0.8])]
    assert ac.summary(stats) == [
        f"f̂ = I: mean 0.550 ± {0.1 / 2**0.5:.3f} over 2 classes",
        f"MimicGAN: mean 0.700 ± {0.2 / 2**0.5:.3f} over 2 classes",
        "MimicGAN above f̂ = I on 2 of 2 classes; paired Wilcoxon signed-rank p = 0.5",
    ]


def test_a_tie_is_no_win(ac):
    import warnings

    stats = [(k, "f̂ = I", 5, 95, v, 0, 1) for k, v in enumerate([0.5, 0.6, 0.7])]
    stats += [(k, "MimicGAN", 5, 95, v, 0, 1) for k, v in enumerate([0.5, 0.8, 0.9])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's note on the zero difference
        lines = ac.summary(stats)
    assert lines[2].startswith("MimicGAN above f̂ = I on 2 of 3 classes;")


def test_main_reads_the_clean_cells_of_the_seed_asked(ac, monkeypatch, capsys):
    """An attacked cell of a leave-one-class-out GAN is not a row of the table; --seed picks the store's seed."""
    labels = [3, 3, 1, 2]
    clean = _cell("mimicgan[gan=no3]", labels, [0.9, 0.8, 0.1, 0.2])
    attacked = {**_cell("mimicgan[gan=no3]", labels, [0.1, 0.2, 0.9, 0.8]), "threat": "pgd"}
    seeds = []

    class FakeStore:
        def __init__(self, path):
            pass

        def rows(self, seed):
            seeds.append(seed)
            return [clean, attacked]

        def close(self):
            pass

    monkeypatch.setattr(ac, "Store", FakeStore)
    assert ac.main(["--store", "unused", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert seeds == [2]
    assert len(md_rows(printed)) == 2 and md_row(printed, "3", "MimicGAN")[4] == "1.000"


def test_the_paired_test_takes_the_classes_both_rows_hold(ac):
    """Rows on different classes: only the classes both hold are paired (two of them here)."""
    stats = [(k, "f̂ = I", 5, 95, v, 0, 1) for k, v in zip([0, 1, 2], [0.5, 0.6, 0.7], strict=True)]
    stats += [(k, "MimicGAN", 5, 95, v, 0, 1) for k, v in zip([1, 2, 3], [0.7, 0.9, 0.1], strict=True)]
    assert ac.summary(stats)[2] == "MimicGAN above f̂ = I on 2 of 2 classes; paired Wilcoxon signed-rank p = 0.5"
