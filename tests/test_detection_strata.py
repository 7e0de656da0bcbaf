"""benchmarks/detection_strata.py: strata fixed by the clean cell, InvGAN's protocol inside each, both scores."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import import_benchmark

from defbench.metrics import roc_auc
from defbench.reports.common import detection_auc_protocol


@pytest.fixture(scope="module")
def ds():
    return import_benchmark("detection_strata")


def _rows():
    """Six images (test indices 10..15), all of class 0, all right for the bare classifier when clean. The prior
    projects 13 and 14 to the wrong class when clean, with large clean scores. The attack breaks every image but
    15; its scores are middling. Pixel scores (projection errors) are the reverse of Eq. 7's on the clean side."""
    idx = [10, 11, 12, 13, 14, 15]
    clean = {
        "threat": "none",
        "indices": idx,
        "labels": [0] * 6,
        "preds_undefended": [0] * 6,
        "preds": [0, 0, 0, 5, 5, 0],
        "scores": [1.0, 1.5, 2.0, 9.0, 8.0, 1.2],
        "extra": {"projection_error": [6.0, 6.5, 7.0, 1.0, 1.5, 6.2]},
    }
    attacked = {
        "threat": "graybox",
        "indices": idx,
        "labels": [0] * 6,
        "preds_undefended": [3, 3, 3, 3, 3, 0],
        "preds": [0] * 6,
        "scores": [5.0, 5.5, 6.0, 6.5, 7.0, 0.5],
        "extra": {"projection_error": [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]},
    }
    return clean, attacked


def test_strata_partition_by_the_clean_cell(ds):
    clean, _ = _rows()
    s = ds.strata(clean)
    assert s["all"] == {10, 11, 12, 13, 14, 15}
    assert s["clean projection right"] == {10, 11, 12, 15}
    assert s["clean projection wrong"] == {13, 14}


def test_subset_keeps_every_per_image_field_aligned(ds):
    clean, _ = _rows()
    c = ds.subset(clean, {13, 15})
    assert c["indices"] == [13, 15] and c["preds"] == [5, 0] and c["scores"] == [9.0, 1.2]
    assert c["extra"]["projection_error"] == [1.0, 6.2]
    assert clean["indices"] == [10, 11, 12, 13, 14, 15]  # the input row is not changed


def test_protocol_scores_are_the_protocols(ds):
    clean, attacked = _rows()
    neg, pos = ds.protocol_scores(clean, attacked)
    assert neg == clean["scores"]  # every clean image right for the bare classifier
    assert pos == attacked["scores"][:5]  # image 15 was not broken
    auc, n0, n1 = detection_auc_protocol(clean, attacked)
    assert (n0, n1) == (6, 5) and auc == pytest.approx(roc_auc(neg, pos))


def test_misprojected_clean_images_pull_the_auc_down(ds):
    clean, attacked = _rows()
    table = {r[0]: r for r in ds.stratum_rows(clean, attacked)}
    assert table["clean projection right"][3] == "1.000"  # 5.0-6.0 attacked above 1.0-2.0 clean; no interval at 1
    assert table["clean projection wrong"][3] == "0.000"  # 6.5-7.0 attacked below 8.0-9.0 clean
    assert float(table["all"][3].split()[0]) < 1.0
    assert table["clean projection wrong"][2] == "2 / 2"
    assert table["all"][5].startswith("0.333 (")  # pixel: 3.0 above 2 of the 6 clean errors (1.0, 1.5)


def test_all_images_column_sets_every_clean_against_every_attacked_image(ds):
    clean, attacked = _rows()
    table = {r[0]: r for r in ds.stratum_rows(clean, attacked)}
    # 6 clean scores against 6 attacked ones, image 15's failed attack (0.5) included: 5 attacked scores above the 4
    # small clean ones, none above the misprojected 8.0 and 9.0: 20 of 36 pairs ordered
    assert table["all"][4].startswith(f"{roc_auc(clean['scores'], attacked['scores']):.3f} (")
    assert roc_auc(clean["scores"], attacked["scores"]) == pytest.approx(20 / 36)
    # the protocol drops image 15 (attack failed): a different number, so the two columns cannot be one
    assert table["all"][3] != table["all"][4]


def test_a_draw_stratum_is_the_prefix_draw_of_a_smaller_run(ds):
    from defbench.datasets import ImageData

    data = ImageData("tiny", "test", torch.arange(50) % 10, "test", images=torch.zeros(50, 1, 2, 2, dtype=torch.uint8))
    big, small = (set(map(int, data.eval_indices(n, seed=3))) for n in (30, 10))
    assert small < big and small != set(map(int, data.eval_indices(10, seed=4)))
    clean, attacked = _rows()
    keep = {11, 13, 15}
    table = {r[0]: r for r in ds.stratum_rows(clean, attacked, {3: keep})}
    assert table["the draw of --n 3"][1] == 3
    sub_c, sub_a = ds.subset(clean, keep), ds.subset(attacked, keep)
    assert table["the draw of --n 3"][4].startswith(f"{roc_auc(sub_c['scores'], sub_a['scores']):.3f}")
    with pytest.raises(SystemExit, match="the draw of --n 2 has 1 images outside this run's 6"):
        ds.strata(clean, {2: {11, 99}})


def test_draws_need_the_dataset(ds):
    with pytest.raises(SystemExit, match="--draws needs --dataset"):
        ds.main(["--store", "s", "--defenses", "invgan", "--draws", "100"])


def test_main_refuses_a_defense_without_its_cells_and_prints_with_them(ds, monkeypatch, capsys):
    clean, attacked = _rows()
    clean, attacked = {**clean, "defense": "invgan"}, {**attacked, "defense": "invgan"}
    cells = {"clean": [clean], "FGSM": [attacked], "CW-L2": []}
    monkeypatch.setattr(ds, "select", lambda store, attack, *a: cells[attack])
    with pytest.raises(SystemExit, match="no clean cell of defensegan in s"):
        ds.main(["--store", "s", "--defenses", "defensegan"])
    with pytest.raises(SystemExit, match="0 CW-L2/graybox cells of invgan in s"):
        ds.main(["--store", "s", "--defenses", "invgan"])
    cells["FGSM"] = [attacked, attacked]  # two cells that could be the one: refused too
    with pytest.raises(SystemExit, match="2 FGSM/graybox cells of invgan"):
        ds.main(["--store", "s", "--defenses", "invgan", "--attacks", "FGSM"])
    cells["FGSM"] = [attacked]
    two = {
        **clean,
        "attack": "clean",
    }  # two clean cells of invgan (two classifiers in one store): not one to stratify by
    cells["clean"] = [two, two]
    with pytest.raises(SystemExit, match="2 clean cells of invgan in one store"):
        ds.main(["--store", "s", "--defenses", "invgan", "--attacks", "FGSM"])
    other = {**two, "defense": "defensegan"}
    cells["clean"] = [clean, other, other]  # two clean cells of a defense not asked for: silent
    assert ds.main(["--store", "s", "--defenses", "invgan", "--attacks", "FGSM"]) == 0
    assert "**invgan, FGSM**" in capsys.readouterr().out


def _hanley_mcneil(a, n_neg, n_pos):
    """Hanley & McNeil (1982), eq. 2: SE of an AUC from n_neg negatives and n_pos positives; the 95% interval."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = ((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_neg * n_pos)) ** 0.5
    return max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se)


def test_a_row_by_hand_counts_interval_and_medians(ds):
    """Ten clean images all right (negatives 1..9 and 20), the attack succeeds on two (positives 5.5 and 10.5):
    AUC (5 + 9) / 20 = 0.7 with the interval of 10 negatives and 2 positives, medians 5.5 (mean 6.5) / 8.0."""
    idx = list(range(10))
    clean = {
        "threat": "none",
        "indices": idx,
        "labels": [1] * 10,
        "preds_undefended": [1] * 10,
        "preds": [1] * 10,
        "scores": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 20.0],
        "extra": {"projection_error": [1.0] * 9 + [2.0]},
    }
    attacked = {
        "threat": "graybox",
        "indices": idx,
        "labels": [1] * 10,
        "preds_undefended": [4, 4] + [1] * 8,  # the attack fooled the bare classifier on images 0 and 1 only
        "preds": [1] * 10,
        "scores": [5.5, 10.5] + [0.1] * 8,
        "extra": {"projection_error": [1.5] * 10},
    }
    row = {r[0]: r for r in ds.stratum_rows(clean, attacked)}["all"]
    assert row[1] == 10 and row[2] == "10 / 2"
    lo, hi = _hanley_mcneil(0.7, 10, 2)
    # by hand: q1 = 0.7 / 1.3, q2 = 0.98 / 1.7, SE² = (0.21 + 1 · 0.0485 + 9 · 0.0865) / 20 = 0.0518; swapped 0.32
    assert (lo, hi) == pytest.approx((0.2538, 1.0), abs=1e-3)
    assert row[3] == f"0.700 ({lo:.2f}–{hi:.2f})"
    assert row[6] == "5.50 / 8.00"
    # pixel: the two positives' 1.5 above nine of ten clean errors: 18 / 20
    assert row[5].startswith("0.900 (")


def test_a_draw_of_the_whole_run_is_a_stratum(ds):
    clean, _ = _rows()
    assert ds.strata(clean, {6: {10, 11, 12, 13, 14, 15}})["the draw of --n 6"] == {10, 11, 12, 13, 14, 15}


def test_draw_indices_are_the_seeded_prefix_of_the_test_split(ds, monkeypatch):
    import defbench.harness.data as hd
    from defbench.datasets import ImageData

    splits = []

    def fake_load(name, split="test", root=None, **kw):
        splits.append((name, split, root))
        return ImageData(name, split, torch.arange(50) % 10, split, images=torch.zeros(50, 1, 2, 2, dtype=torch.uint8))

    monkeypatch.setattr(hd, "load_dataset", fake_load)
    got = ds.draw_indices("tiny", [4, 9], seed=3, data_root="R")
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3)).tolist()  # the matrix's seeded draw
    assert got == {4: set(perm[:4]), 9: set(perm[:9])}
    assert splits == [("tiny", "test", "R")]


def test_main_reads_the_seeded_clean_and_graybox_cells_and_passes_the_draws(ds, monkeypatch, capsys):
    clean, attacked = _rows()
    clean, attacked = {**clean, "defense": "invgan"}, {**attacked, "defense": "invgan"}
    calls, drawn = [], []

    def fake_select(store, attack, threat, seed):
        calls.append((attack, threat, seed))
        return [clean] if attack == "clean" else [attacked]

    monkeypatch.setattr(ds, "select", fake_select)
    monkeypatch.setattr(ds, "draw_indices", lambda *a: drawn.append(a) or {3: {11, 13, 15}})
    assert ds.main(["--store", "s", "--defenses", "invgan", "--attacks", "FGSM"]) == 0
    assert calls == [("clean", "none", 0), ("FGSM", "graybox", 0)]  # seed 0 unless told
    out = capsys.readouterr().out
    assert re.search(r"\| all +\| 6 +\| 6 / 5 +\|", out)  # 6 clean images right, 5 attacks won
    calls.clear()
    args = ["--store", "s", "--defenses", "invgan", "--attacks", "FGSM", "--seed", "4"]
    assert ds.main([*args, "--draws", "3", "--dataset", "fmnist", "--data-root", "R"]) == 0
    assert calls == [("clean", "none", 4), ("FGSM", "graybox", 4)]
    assert drawn == [("fmnist", [3], 4, "R")]
    assert "the draw of --n 3" in capsys.readouterr().out
