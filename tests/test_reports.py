"""Reporting layer on hand-built rows: no models, no attacks, fast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from defbench.reports.plots import image_grid, plot_alpha_sweep, plot_eps_sweep
from defbench.reports.render import to_latex, write_reports
from defbench.reports.tables import correct_mask, detection_auc_table, robust_accuracy_table, sanity_flags, to_markdown

PNG = b"\x89PNG\r\n\x1a\n"


def attack_cfg(
    label: str,
    family: str,
    eps: float | None = 0.3,
    iterative: bool = True,
    bounded: bool = True,
    alpha: float | None = None,
) -> dict[str, Any]:
    return {"label": label, "family": family, "iterative": iterative, "bounded": bounded, "eps": eps, "alpha": alpha}


def make_row(
    correct: list[bool] | list[int],
    *,
    defense: str = "invgan",
    attack: str = "clean",
    threat: str | None = None,
    seed: int = 0,
    cfg: dict[str, Any] | None = None,
    scores: list[float] | None = None,
    indices: list[int] | None = None,
    extra: dict[str, Any] | None = None,
    dataset: str = "fmnist",
) -> dict[str, Any]:
    """A store-shaped row whose image i is classified correctly iff correct[i]."""
    n = len(correct)
    labels = [i % 10 for i in range(n)]
    preds = [y if ok else (y + 1) % 10 for y, ok in zip(labels, correct, strict=True)]
    if cfg is None and attack != "clean":
        cfg = attack_cfg(attack.upper(), attack)
    return {
        "dataset": dataset,
        "classifier": "cnn",
        "defense": defense,
        "defense_hash": f"h-{defense}",
        "attack": attack,
        "attack_hash": f"a-{attack}-{(cfg or {}).get('eps')}-{(cfg or {}).get('alpha')}",
        "threat": threat or ("none" if attack == "clean" else "graybox"),
        "seed": seed,
        "defense_config": {},
        "attack_config": cfg or {},
        "n": n,
        "correct": int(sum(map(bool, correct))),
        "correct_undefended": 0,
        "labels": labels,
        "preds": preds,
        "preds_undefended": labels,
        "scores": list(scores) if scores is not None else [0.0] * n,
        "indices": list(indices) if indices is not None else list(range(n)),
        "wall_seconds": 0.1,
        "device": "cpu",
        "created_at": "2024-01-01T00:00:00",
        "defbench_version": "0.1.0",
        "extra": extra or {},
    }


def stored(cell, dataset: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (labels, preds, ... of a paper-table test) with the store's other fields filled in for the matrix
    ``cell`` it stands for, so that what reads whole store rows (the sanity flags) can read it."""
    a = cell.attack
    cfg = {"name": a.name, "label": a.name.upper(), "eps": a.eps, "params": dict(a.params)} if a else {}
    n = len(row["labels"])
    return {
        "dataset": dataset,
        "classifier": "cnn",
        "defense": cell.defense,
        "defense_hash": f"h-{cell.defense}",
        "attack": a.name if a else "clean",
        "threat": cell.threat,
        "seed": cell.seed,
        "defense_config": {},
        "attack_config": cfg,
        "n": n,
        "indices": list(range(n)),
        **row,
    }


def frac(k: int, n: int = 10) -> list[bool]:
    return [True] * k + [False] * (n - k)


# --------------------------------------------------------------------------------------------- robust accuracy


def test_mean_std_over_two_seeds():
    rows = [
        make_row(frac(9), seed=0),
        make_row(frac(10), seed=1),
        make_row(frac(6), attack="pgd", seed=0),
        make_row(frac(8), attack="pgd", seed=1),
    ]
    df = robust_accuracy_table(rows)
    assert list(df.index) == ["clean", "PGD", "worst case"]
    assert list(df.columns) == ["invgan"]
    assert df.loc["PGD", "invgan"] == "70.0 ± 14.1"  # mean of 60, 80; sample std 14.14
    assert df.loc["clean", "invgan"] == "95.0 ± 7.1"
    assert df.attrs["mean"].loc["PGD", "invgan"] == pytest.approx(0.7)
    assert any("2 seeds" in n for n in df.attrs["notes"])
    one = robust_accuracy_table(rows[:1] + rows[2:3])
    assert one.loc["PGD", "invgan"] == "60.0"


def test_worst_case_matches_hand_computation():
    clean = make_row([1, 1, 1, 0])
    a = make_row([1, 0, 1, 1], attack="fgsm", cfg=attack_cfg("FGSM", "fgsm", iterative=False))
    # attack B lists the same images in reverse order: images 3, 2, 1, 0 -> correct on 0, 1, 3, not on 2
    b = make_row([1, 0, 1, 1], attack="pgd", indices=[3, 2, 1, 0])
    df = robust_accuracy_table([clean, a, b])
    mean = df.attrs["mean"]["invgan"]
    # robust only if correct everywhere: image 0 only -> 1/4
    assert mean["worst case"] == pytest.approx(0.25)
    assert df.loc["worst case", "invgan"] == "25.0"
    assert mean["worst case"] <= min(mean["FGSM"], mean["PGD"])
    assert list(df.index) == ["clean", "FGSM", "PGD", "worst case"]


def test_worst_case_per_seed_and_never_above_min():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        rows.append(make_row(list(rng.random(50) < 0.9), seed=seed))
        for att in ("fgsm", "pgd", "cw"):
            rows.append(make_row(list(rng.random(50) < 0.5), attack=att, seed=seed))
    mean = robust_accuracy_table(rows).attrs["mean"]["invgan"]
    assert mean["worst case"] <= mean.drop("worst case").min()


def test_worst_case_of_a_seed_short_of_an_attack_is_left_out_and_a_short_column_says_so():
    """Seed 1 without the PGD cell that seed 0 has (a run stopped between cells): its worst case would be FGSM's
    alone, and the mean over seeds read 40 ± 57 beside a PGD cell of 0. Now only seed 0's worst case counts, a
    note names the missing cell; a column that never ran PGD says its worst case lacks it."""
    fg, pg = make_row(frac(8), attack="fgsm"), make_row(frac(0), attack="pgd")
    rows = [make_row(frac(10)), fg, pg, make_row(frac(10), seed=1), make_row(frac(8), attack="fgsm", seed=1)]
    df = robust_accuracy_table(rows)
    assert df.loc["worst case", "invgan"] == "0.0" and df.attrs["seeds"].loc["worst case", "invgan"] == 1
    assert any("invgan seed 1: no worst case, its PGD cell is missing" in n for n in df.attrs["notes"])
    other = [make_row(frac(10), defense="none"), make_row(frac(3), defense="none", attack="fgsm")]
    df = robust_accuracy_table([make_row(frac(10)), fg, pg, *other])
    assert df.loc["worst case", "none"] == "30.0"
    notes = df.attrs["notes"]
    assert "none: worst case without PGD (not run in this column)." in notes
    assert not any(n.startswith("invgan:") or "is missing" in n for n in notes)  # complete: nothing said


def test_threats_are_columns_or_separate_tables():
    rows = [
        make_row(frac(10)),
        make_row(frac(5), attack="pgd"),
        make_row(frac(2), attack="pgd", threat="bpda"),
        make_row(frac(10), defense="none"),
        make_row(frac(0), defense="none", attack="pgd"),
    ]
    mixed = robust_accuracy_table(rows)
    assert list(mixed.columns) == ["invgan (graybox)", "invgan (bpda)", "none (graybox)"]
    assert mixed.loc["PGD", "invgan (bpda)"] == "20.0"
    bpda = robust_accuracy_table(rows, threat="bpda")
    assert list(bpda.columns) == ["invgan"]
    assert bpda.loc["PGD", "invgan"] == "20.0" and bpda.loc["worst case", "invgan"] == "20.0"
    assert any("BPDA" in n for n in bpda.attrs["notes"])


def test_reparam_cell_shares_its_attacks_row():
    """The runner stores the sha256 of the G and I a reparameterisation cell differentiates in its attack config;
    they belong to the threat, so its PGD sits on the gray-box PGD's row, not on a row of its own."""
    pgd = attack_cfg("PGD", "pgd")
    rows = [
        make_row(frac(10)),
        make_row(frac(5), attack="pgd", cfg=pgd),
        make_row(frac(3), attack="pgd", cfg={**pgd, "model_sha256": {"G": "9f2c", "I": "41ab"}}, threat="reparam"),
    ]
    df = robust_accuracy_table(rows)
    assert list(df.index) == ["clean", "PGD", "worst case"]
    assert df.loc["PGD", "invgan (graybox)"] == "50.0" and df.loc["PGD", "invgan (reparam)"] == "30.0"


def test_batch_coupled_cells_note_the_spread_between_their_batches():
    """A batch-coupled defense's images are not independent: the table says how far its batches' accuracies
    differ within one cell (here 100% and 20% in batches of 5), that the spread is not measured when every cell
    is one batch, and nothing for independent images."""
    coupled = {"batch_coupled": True, "batch_size": 5}
    rows = [
        make_row(frac(10), defense="mimicgan", extra=coupled),
        make_row([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], defense="mimicgan", attack="pgd", extra=coupled),
    ]
    notes = robust_accuracy_table(rows).attrs["notes"]
    assert any(
        "mimicgan: batch-coupled" in n and "its 2 batches' accuracies differ by up to 80 points" in n for n in notes
    )
    # the batch size is part of what a coupled cell measured (the surrogate is fitted to the batch): named
    assert any("per purified batch, here of 5 images" in n for n in notes)
    mixed = [rows[0], make_row(frac(4), defense="mimicgan", attack="fgsm", extra={**coupled, "batch_size": 2})]
    assert any("here of 2 or 5 images" in n for n in robust_accuracy_table(mixed).attrs["notes"])
    # the note names the batches the cells held, not the run's setting: 10 images at batch 100 are one batch of
    # 10 (`--n 10`, a BPDA subset); at batch 4 they are 4 + 4 + 2
    (small,) = [
        n
        for n in robust_accuracy_table(
            [make_row(frac(10), defense="mimicgan", extra={**coupled, "batch_size": 100})]
        ).attrs["notes"]
        if "batch-coupled" in n
    ]
    assert "here of 10 images" in small and "each of its cells is one batch" in small
    uneven = [make_row([1, 1, 1, 1, 0, 0, 0, 0, 1, 1], defense="mimicgan", extra={**coupled, "batch_size": 4})]
    (split,) = [n for n in robust_accuracy_table(uneven).attrs["notes"] if "batch-coupled" in n]
    assert "here of 2 or 4 images" in split and "its 3 batches' accuracies differ by up to 100 points" in split
    independent = [make_row(frac(10)), make_row([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], attack="pgd", extra={"batch_size": 5})]
    one_batch = [
        make_row(frac(5, 5), defense="mimicgan", extra=coupled),
        make_row(frac(1, 5), defense="mimicgan", attack="pgd", extra=coupled),
    ]
    assert not any("batch-coupled" in n for n in robust_accuracy_table(independent).attrs["notes"])
    (single,) = [n for n in robust_accuracy_table(one_batch).attrs["notes"] if "batch-coupled" in n]
    assert "each of its cells is one batch" in single and "not measured" in single
    # rows stored before the runner wrote batch_coupled show it by their per-batch surrogate scales
    old = [
        make_row(
            [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], defense="mimicgan", extra={"surrogate_scale": [1.0, 0.9], "batch_size": 5}
        )
    ]
    assert any("differ by up to 80 points" in n for n in robust_accuracy_table(old).attrs["notes"])


# --------------------------------------------------------------------------------------------- repeat rule


def test_repeated_purifications_note_their_spread():
    """A randomized defense purified k > 1 times: the all-k rule gives one accuracy per cell; the note gives how
    far the k purifications, each counted alone, differ at most (here 2, 4 and 3 of 4 right: 50 points) and where,
    so a one-purification cell's seed dependence is visible. One purification per image: no note. A batch-coupled
    defense's one-batch note then says another surrogate fit of the batch is measured."""
    row = make_row([1, 1, 1, 1], defense="mimicgan", attack="pgd")
    y = list(row["labels"])
    wrong = [(v + 1) % 10 for v in y]
    row["extra"] = {"repeat_preds": [y[:2] + wrong[2:], list(y), y[:3] + wrong[3:]]}
    clean = make_row([1, 1, 1, 1], defense="mimicgan")
    clean["extra"] = {"repeat_preds": [list(y), list(y), list(y)]}  # no spread: the widest cell is PGD's
    notes = robust_accuracy_table([clean, row]).attrs["notes"]
    (note,) = [n for n in notes if "purifications of one cell" in n]
    assert "mimicgan: its 3 purifications" in note and "differ by up to 50 points" in note
    assert "PGD (graybox): 50, 100, 75%" in note
    single = robust_accuracy_table([make_row([1, 1, 1, 1], defense="mimicgan"), make_row([1, 0, 1, 1], attack="pgd")])
    assert not any("purifications of one cell" in n for n in single.attrs["notes"])
    coupled = {"batch_coupled": True, "batch_size": 4}
    row["extra"] = {**row["extra"], **coupled}
    clean["extra"] = {**clean["extra"], **coupled}
    (batch,) = [n for n in robust_accuracy_table([clean, row]).attrs["notes"] if "batch-coupled" in n]
    assert "another surrogate fit of the same batch is measured" in batch


def test_repeat_rule_all_of_k():
    labels_ok = [1, 1, 1, 1]
    row = make_row(labels_ok, defense="ride", attack="pgd")
    wrong = [(y + 1) % 10 for y in row["labels"]]
    rep = [list(row["labels"]), list(row["labels"]), list(row["labels"])]
    rep[1][2] = wrong[2]  # image 2 wrong in one of the three purifications
    row["extra"] = {"repeat_preds": rep}
    assert correct_mask(row).tolist() == [True, True, False, True]
    assert correct_mask(make_row([1, 0, 1])).tolist() == [True, False, True]
    df = robust_accuracy_table([make_row([1, 1, 1, 1], defense="ride"), row])
    assert df.loc["PGD", "ride"] == "75.0"
    assert any("ride" in n and "all 3 of 3 purifications" in n for n in df.attrs["notes"])
    one = robust_accuracy_table(
        [make_row([1, 1, 1, 1], defense="ride"), make_row([1, 1, 0, 1], defense="ride", attack="pgd")]
    )
    assert not any("purifications" in n for n in one.attrs["notes"])  # one purification per image: no note
    row["extra"] = {"repeat_preds": [row["labels"][:2]]}
    with pytest.raises(ValueError):
        correct_mask(row)


# --------------------------------------------------------------------------------------------- detection AUC


def test_detection_auc():
    rows = []
    for seed in (0, 1):
        rows += [
            make_row(frac(3, 3), seed=seed, scores=[0.0, 0.1, 0.2]),
            make_row(frac(1, 3), attack="pgd", seed=seed, scores=[0.5, 0.6, 0.7]),
            make_row(frac(3, 3), defense="ride", seed=seed, scores=[0.3, 0.3, 0.3]),
            make_row(frac(1, 3), defense="ride", attack="pgd", seed=seed, scores=[0.3, 0.3, 0.3]),
            make_row(frac(3, 3), defense="none", seed=seed),
            make_row(frac(0, 3), defense="none", attack="pgd", seed=seed),
        ]
    df = detection_auc_table(rows)
    # per defense: InvGAN's protocol, then every image ("all images")
    assert list(df.columns) == ["invgan", "invgan (all images)", "ride", "ride (all images)"]
    assert df.loc["PGD", "invgan (all images)"] == "1.0000 ± 0.0000"
    assert df.attrs["mean"].loc["PGD", "invgan (all images)"] == pytest.approx(1.0)
    assert df.loc["PGD", "ride (all images)"] == "n/a"
    # make_row's gray-box attacks never fool the bare classifier (preds_undefended = labels): no positives
    assert df.loc["PGD", "invgan"] == "n/a"
    # reversed separation -> 0; half overlap -> hand value
    rev = detection_auc_table(
        [make_row(frac(2, 2), scores=[1.0, 0.9]), make_row(frac(0, 2), attack="pgd", scores=[0.1, 0.2])]
    )
    assert rev.loc["PGD", "invgan (all images)"] == "0.0000"
    part = detection_auc_table(
        [make_row(frac(2, 2), scores=[0.0, 0.5]), make_row(frac(0, 2), attack="pgd", scores=[0.4, 1.0])]
    )
    assert part.attrs["mean"].loc["PGD", "invgan (all images)"] == pytest.approx(0.75)


# --------------------------------------------------------------------------------------------- sanity flags


def _healthy(n: int = 100) -> list[dict[str, Any]]:
    """A run with nothing suspicious: PGD stronger than FGSM, BPDA stronger than gray-box, 'none' broken."""
    fgsm = attack_cfg("FGSM", "fgsm", iterative=False)
    grad = {"gradient_check": {"zero_grad_fraction": 0.01, "nondeterministic": False, "threat": "bpda"}}
    return [
        make_row(frac(n, n), extra=grad),
        make_row(frac(60 * n // 100, n), attack="fgsm", cfg=fgsm),
        make_row(frac(50 * n // 100, n), attack="pgd"),
        make_row(frac(30 * n // 100, n), attack="pgd", threat="bpda"),
        make_row(frac(n, n), defense="none"),
        make_row(frac(5 * n // 100, n), defense="none", attack="fgsm", cfg=fgsm),
        make_row(frac(0 * n // 100, n), defense="none", attack="pgd"),
        # an unbounded (minimal-perturbation) attack brings the undefended classifier to ≈0%
        make_row(frac(0, n), defense="none", attack="cw", cfg=attack_cfg("CW", "cw", eps=None, bounded=False)),
    ]


def test_sanity_clean_case_is_silent():
    assert sanity_flags(_healthy()) == []


def test_flag_iterative_weaker_than_fgsm():
    fgsm = attack_cfg("FGSM", "fgsm", iterative=False)
    rows = _healthy()
    # gray-box on a defense: the defense was not attacked, so PGD 65% > FGSM 60% says nothing about masking
    rows[2] = make_row(frac(65, 100), attack="pgd")
    rows[3] = make_row(frac(55, 100), attack="pgd", threat="bpda")
    assert sanity_flags(rows) == []
    # through the defense (bpda) such a gap is a flag
    rows.append(make_row(frac(50, 100), attack="fgsm", threat="bpda", cfg=fgsm))
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "FGSM" in flags[0] and "PGD" in flags[0] and "invgan" in flags[0] and "bpda" in flags[0]
    rows[3] = make_row(frac(51, 100), attack="pgd", threat="bpda")  # within 2 points: silent
    assert sanity_flags(rows) == []
    # and on the undefended classifier gray-box counts
    rows[6] = make_row(frac(10, 100), defense="none", attack="pgd")  # PGD 10% > FGSM 5% + 2
    flags = sanity_flags(rows)
    assert any("none" in f.lower() and "PGD" in f and "FGSM" in f for f in flags)


def test_flag_whitebox_weaker_than_graybox():
    rows = _healthy()
    rows[3] = make_row(frac(55, 100), attack="pgd", threat="bpda")  # bpda 55% > gray-box 50% + 2
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "bpda" in flags[0] and "gray-box" in flags[0]


def test_flag_no_defense_not_broken():
    rows = _healthy()
    rows[5] = make_row(frac(40, 100), defense="none", attack="fgsm", cfg=attack_cfg("FGSM", "fgsm", iterative=False))
    rows[6] = make_row(frac(20, 100), defense="none", attack="pgd")
    flags = sanity_flags(rows)
    assert len(flags) == 1 and "no defense" in flags[0] and "PGD" in flags[0] and "20.0%" in flags[0]


@pytest.mark.parametrize(
    "check,needle",
    [
        ({"zero_grad_fraction": 0.8, "nondeterministic": False}, "80%"),
        ({"zero_grad_fraction": 0.0, "nondeterministic": True}, "nondeterministic"),
    ],
)
def test_flag_gradient_check(check, needle):
    rows = _healthy()
    rows[0]["extra"] = {"gradient_check": {**check, "threat": "bpda"}}
    flags = sanity_flags(rows)
    assert len(flags) == 1 and needle in flags[0] and "invgan" in flags[0]


def test_flag_small_cells():
    flags = sanity_flags(_healthy(n=50))
    assert len(flags) == 1 and "50 images" in flags[0] and "±13.9" in flags[0]


# --------------------------------------------------------------------------------------------- files


def _run_rows() -> list[dict[str, Any]]:
    rows = []
    for seed in (0, 1):
        rows.append(make_row(frac(9), seed=seed, scores=[0.1] * 10))
        rows.append(make_row(frac(10), defense="none", seed=seed))
        for d in ("invgan", "none"):
            for eps, k in ((0.1, 6), (0.3, 3)):
                rows.append(
                    make_row(
                        frac(k),
                        defense=d,
                        attack="pgd",
                        seed=seed,
                        cfg=attack_cfg(f"PGD ε={eps}", "pgd", eps=eps),
                        scores=[0.2 + eps] * 10,
                    )
                )
            for alpha, k in ((1.0, 8), (2.0, 5)):
                rows.append(
                    make_row(
                        frac(k),
                        defense=d,
                        attack="universal-fgsm",
                        seed=seed,
                        cfg=attack_cfg(f"Universal-FGSM α={alpha}", "universal-fgsm", iterative=False, alpha=alpha),
                    )
                )
    return rows


def test_write_reports(tmp_path):
    text = write_reports(_run_rows(), tmp_path)
    for name in (
        "robust_accuracy.csv",
        "detection_auc.csv",
        "robust_accuracy.tex",
        "detection_auc.tex",
        "eps_sweep.png",
        "alpha_sweep.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert text.splitlines()[0].startswith("**defbench results**") and "fmnist" in text.splitlines()[0]
    assert "2 seeds" in text.splitlines()[0] and "10 images" in text.splitlines()[0]
    assert "| attack" in text and "worst case" in text and "Universal-FGSM α=2.0" in text
    assert "Detection ROC AUC" in text and "1.0000" in text
    assert "### Sanity checks" in text
    csv = pd.read_csv(tmp_path / "robust_accuracy.csv", index_col=0)
    assert csv.loc["PGD ε=0.1", "invgan"] == "60.0 ± 0.0"
    tex = (tmp_path / "robust_accuracy.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and r"$\varepsilon$" in tex
    assert (tmp_path / "eps_sweep.png").read_bytes()[:8] == PNG


def test_write_reports_empty(tmp_path):
    assert "no results" in write_reports([], tmp_path)


def test_markdown_and_latex_carry_notes():
    df = robust_accuracy_table([make_row(frac(10)), make_row(frac(4), attack="pgd")])
    md = to_markdown(df, "Robust accuracy")
    assert md.startswith("### Robust accuracy") and "| PGD" in md and "- Robust accuracy in %" in md
    tex = to_latex(df, caption="x_y & 5%")
    assert r"\caption{x\_y \& 5\%}" in tex and r"\bottomrule" in tex


# --------------------------------------------------------------------------------------------- plots


def test_alpha_and_eps_plots(tmp_path):
    rows = _run_rows()
    p = plot_alpha_sweep(rows, tmp_path / "a" / "alpha.png")
    assert p is not None and open(p, "rb").read(8) == PNG
    assert plot_eps_sweep(rows, tmp_path / "eps.png") is not None
    plain = [make_row(frac(10)), make_row(frac(4), attack="pgd")]
    assert plot_alpha_sweep(plain, tmp_path / "none.png") is None
    assert plot_eps_sweep(plain, tmp_path / "none2.png") is None
    assert not (tmp_path / "none.png").exists()


def test_image_grid(tmp_path):
    torch = pytest.importorskip("torch")
    x = torch.rand(4, 1, 28, 28)
    p = image_grid(x, (x + 0.1).clamp(0, 1), x * 0.5, tmp_path / "grid.png", labels=["7→1"] * 4)
    assert p is not None and open(p, "rb").read(8) == PNG
    rgb = np.random.default_rng(0).random((2, 3, 8, 8))
    assert image_grid(rgb, rgb, rgb, tmp_path / "rgb.png") is not None
    assert image_grid(x[:0], x[:0], x[:0], tmp_path / "empty.png") is None


# --------------------------------------------------------------------------------------------- real store


def test_store_round_trip(tmp_path):
    from defbench.harness.store import CellKey, CellResult, Store, config_hash

    store = Store(tmp_path)
    dcfg = {"steps": 10}
    pgd = attack_cfg("PGD", "pgd")
    for seed in (0, 1):
        for attack, threat, cfg, correct in (("clean", "none", {}, 9), ("pgd", "graybox", pgd, 4 + seed)):
            labels = list(range(10))
            preds = [y if i < correct else (y + 1) % 10 for i, y in enumerate(labels)]
            store.put(
                CellKey("fmnist", "cnn", "invgan", config_hash(dcfg), attack, config_hash(cfg), threat, seed),
                CellResult(
                    labels=labels,
                    preds=preds,
                    preds_undefended=labels if attack == "clean" else preds,
                    scores=[0.1 * i + (attack != "clean") for i in range(10)],
                    indices=list(range(10)),
                    wall_seconds=0.5,
                    device="cpu",
                    defense_config=dcfg,
                    attack_config=cfg,
                    extra={"repeat_preds": [preds, preds]} if attack == "pgd" else {},
                ),
            )
    df = robust_accuracy_table(store.rows())
    assert df.loc["clean", "invgan"] == "90.0 ± 0.0" and df.loc["PGD", "invgan"] == "45.0 ± 7.1"
    assert detection_auc_table(store.rows()).loc["PGD", "invgan"] == "1.0000 ± 0.0000"
    text = write_reports(store, tmp_path / "report")
    assert "invgan" in text and "all 2 of 2 purifications" in text
    assert (tmp_path / "report" / "robust_accuracy.csv").is_file()
    store.close()


def test_attacks_on_a_subset_of_the_clean_images():
    """--n-threat bpda=k: the attacked row covers k of the clean row's images; AUC and worst case use those k."""
    clean = make_row([1, 1, 1, 1, 1, 0], scores=[0, 0, 0, 1, 1, 1])
    sub = make_row([1, 0], attack="pgd", threat="bpda", indices=[0, 1], scores=[0.5, 0.5])
    means = detection_auc_table([clean, sub]).attrs["mean"]
    # both readings against the clean scores of images 0, 1 (all 0), not all six (0.5): the success protocol's
    # column and InvGAN's every-image column
    assert means.loc["PGD", "invgan"] == pytest.approx(1.0)
    assert means.loc["PGD", "invgan (all images)"] == pytest.approx(1.0)
    df = robust_accuracy_table([clean, sub], threat="bpda")
    assert df.attrs["mean"]["invgan"]["worst case"] == pytest.approx(0.5)  # images 0, 1 only, not 4 of 6
    assert "different images" in " ".join(df.attrs["notes"])


def test_latex_is_ascii_with_the_symbols_mapped():
    """LaTeX output held ℓ, ∞, ∈, γ, ·, x̃ ... as they are (pdflatex stops at the first with 'Unicode character not
    set up'): every non-ASCII character that defbench's sources use, in a table's index, columns, cells or notes,
    is mapped to ASCII LaTeX; an ASCII text keeps its letters, only LaTeX's specials escaped."""
    import pathlib

    import pandas as pd

    from defbench.reports.render import latex_escape

    root = pathlib.Path(__file__).resolve().parents[1]
    used = {
        ch
        for d in ("reports", "harness", "attacks", "defenses", "classifiers", "defbench")
        for p in (root / d).glob("*.py")
        for ch in p.read_text(encoding="utf-8")
        if not ch.isascii()
    }
    assert {"ℓ", "∞", "∈", "γ", "·", "ε", "±"} <= used
    for ch in sorted(used):
        assert latex_escape(f"a{ch}b").isascii(), ch
    assert latex_escape("ℓ∞ ε ∈ {0.1, 0.3}") == r"$\ell$$\infty$ $\varepsilon$ $\in$ \{0.1, 0.3\}"
    assert latex_escape("‖Φ(x) − Φ(x̂)‖₂") == r"$\|$$\Phi$(x) - $\Phi$($\hat{x}$)$\|$$_{2}$"
    assert latex_escape("Α ω ☃ naïve") == r"$A$ $\omega$ [U+2603] naive"
    # a negated symbol keeps its negation (the ASCII fallback read ≠ as =)
    assert latex_escape("target ≠ y, ≢") == r"target $\neq$ y, [U+2262]"
    plain = "PGD steps=10 (graybox) 12.5 +/- 3"
    assert latex_escape(plain) == plain and latex_escape("a_b & 5% #1") == r"a\_b \& 5\% \#1"
    df = pd.DataFrame({"invgan (ℓ∞, EOT=10)": ["50.0 ± 1.0"]}, index=["PGD ε ∈ {0.3}"])
    df.attrs["notes"] = ["γg · ‖x − G(z)‖² ≈ 0 → x̃"]
    tex = to_latex(df, caption="ℓ₂ ≤ 0.5")
    assert tex.isascii() and r"\ell" in tex and r"$\tilde{x}$" in tex


def test_latex_compiles_with_pdflatex(tmp_path):
    """The table of a run with every symbol the notes use compiles in a booktabs document (pdflatex stopped at
    'Unicode character ℓ (U+2113)' before the mapping). Skipped where no pdflatex is installed (Debian:
    texlive-latex-base texlive-latex-recommended)."""
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex: apt-get install texlive-latex-base texlive-latex-recommended")
    rows = [make_row(frac(10)), make_row(frac(4), attack="pgd"), make_row(frac(3), attack="fgsm", threat="gan-aware")]
    df = robust_accuracy_table(rows)
    df.attrs["notes"] = [*df.attrs["notes"], "γg · ‖x − G(z)‖² ≈ 0 → x̃, ℓ∞ ε ∈ {0.1}, Φ(x̂), ⚠ § … naïve ☃ ≠ ∉"]
    body = to_latex(df, caption="ℓ∞ robust accuracy & 5% #_")
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and (tmp_path / "t.pdf").is_file(), done.stdout[-2000:]
