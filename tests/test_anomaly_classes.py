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
