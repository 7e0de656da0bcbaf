"""Sanity flags pinned at their thresholds and on the inputs each check leaves out (mutation audit, session 48):
for each flag a near-miss on either side of its threshold, computed by hand, and the cells a check must not read
(a corruption or a reparameterisation cell on no defense, the bare classifier's predictions on attacked images).
Rows are hand-built store rows (no runner)."""

from __future__ import annotations

import math

import pytest

from defbench.reports.sanity import sanity_flags
from test_reports import attack_cfg, frac, make_row

N = 100
FGSM = attack_cfg("FGSM", "fgsm", iterative=False)
PGD = attack_cfg("PGD", "pgd")
CW = attack_cfg("CW", "cw", eps=None, bounded=False)


def _said(rows: list[dict], words: str) -> list[str]:
    return [f for f in sanity_flags(rows) if words in f]


def _none(*attacks: dict) -> list[dict]:
    """No defense's clean row (100 of 100 right) and the given attack rows."""
    return [make_row(frac(N, N), defense="none"), *attacks]


# ------------------------------------------------------------------------------------ (c) no defense not broken


@pytest.mark.parametrize("right, fires", [(10, False), (11, True)])
def test_strongest_bounded_attack_on_no_defense_may_leave_ten_percent(right, fires):
    """Guards NO_DEFENSE_MAX = 10% and its strict ``>``: PGD at ε 0.3 leaving exactly 10 of 100 images is within
    "≈0%" (silent); 11 of 100 fires, quoting 11.0%."""
    said = _said(_none(make_row(frac(right, N), defense="none", attack="pgd", cfg=PGD)), "strongest bounded attack")
    assert bool(said) == fires, said
    if fires:
        assert "the strongest bounded attack, PGD (graybox), still leaves 11.0% accuracy" in said[0]


@pytest.mark.parametrize("right, fires", [(50, False), (51, True)])
def test_single_step_only_run_may_leave_half(right, fires):
    """Guards SINGLE_STEP_MAX = 50% and its strict ``>``: a run whose only bounded attack is FGSM leaving exactly
    half the images is not flagged; 51 of 100 is."""
    said = _said(_none(make_row(frac(right, N), defense="none", attack="fgsm", cfg=FGSM)), "single-step")
    assert bool(said) == fires, said
    if fires:
        assert "the strongest, FGSM (graybox), still leaves 51.0% accuracy" in said[0]


@pytest.mark.parametrize("right, fires", [(10, False), (11, True)])
def test_unbounded_attack_on_no_defense_may_leave_ten_percent(right, fires):
    """Guards UNBOUNDED_MAX = 10% and its strict ``>``: CW leaving 10 of 100 is near 0% (silent), 11 fires."""
    rows = _none(
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(right, N), defense="none", attack="cw", cfg=CW),
    )
    said = _said(rows, "unbounded attack CW")
    assert bool(said) == fires, said
    if fires:
        assert "leaves 11.0% accuracy where ≈0% is expected" in said[0]


def test_a_budget_above_the_standard_eps_is_judged():
    """The check judges attacks "at the dataset's standard ε or above": PGD at ε 0.4 on Fashion-MNIST (standard 0.3)
    leaving 40% fires exactly as at 0.3; at 0.2 (below the standard) it stays silent."""
    for eps, fires in ((0.4, True), (0.3, True), (0.2, False)):
        pgd = attack_cfg(f"PGD ε={eps}", "pgd", eps=eps)
        said = _said(_none(make_row(frac(40, N), defense="none", attack="pgd", cfg=pgd)), "strongest bounded attack")
        assert bool(said) == fires, (eps, said)


def test_a_tie_names_the_iterative_attack_whichever_came_first():
    """PGD and FGSM leaving the same 40%: the flag names PGD also when PGD's row comes first (an FGSM seen later
    at the same accuracy is not stronger)."""
    rows = _none(
        make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(40, N), defense="none", attack="fgsm", cfg=FGSM),
    )
    (said,) = _said(rows, "strongest bounded attack")
    assert "the strongest bounded attack, PGD (graybox), still leaves 40.0%" in said


def test_a_corruption_on_no_defense_is_not_held_to_zero():
    """A corruption (unbounded, family ``corruption``) is not a per-image attack that may perturb as much as it
    needs: the undefended classifier keeping 70% under it is no sign of a misconfigured attack; CW at 70% is."""
    corruption = attack_cfg("Binarize", "corruption", eps=None, iterative=False, bounded=False)
    rows = _none(
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(70, N), defense="none", attack="binarize", cfg=corruption),
    )
    assert sanity_flags(rows) == []
    rows.append(make_row(frac(70, N), defense="none", attack="cw", cfg=CW))
    assert len(_said(rows, "unbounded attack CW leaves 70.0%")) == 1


def test_an_unbounded_reparam_cell_on_no_defense_is_not_held_to_zero():
    """No defense's reparam cell attacks f ∘ G ∘ I and scores f: CW there keeping 40% is a transfer number, not an
    unbounded attack stopped early (silent); the same CW gray-box, on f itself, fires."""
    rows = _none(
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(40, N), defense="none", attack="cw", cfg=CW, threat="reparam"),
    )
    assert not _said(rows, "unbounded attack")
    rows.append(make_row(frac(40, N), defense="none", attack="cw", cfg=CW))
    assert len(_said(rows, "unbounded attack CW leaves 40.0%")) == 1


# ------------------------------------------------------------------------------------ (a) iterative vs FGSM


def test_iterative_attack_is_held_to_the_strongest_fgsm():
    """Two FGSM cells at ε 0.3 (true and predicted labels) leaving 0% and 10%, PGD 5%: PGD is 5 points above the
    strongest FGSM (fires), though below the weaker one."""
    fgsm_pred = {**FGSM, "label": "FGSM (predicted)", "labels": "predicted"}
    rows = _none(
        make_row(frac(5, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(10, N), defense="none", attack="fgsm", cfg=fgsm_pred),
        make_row(frac(0, N), defense="none", attack="fgsm", cfg=FGSM),
    )
    (said,) = _said(rows, "Possible gradient masking")
    assert "iterative PGD leaves 5.0% accuracy, 5.0 points more than single-step FGSM" in said and "(0.0%)" in said


def test_a_universal_perturbation_is_not_held_to_fgsm():
    """A universal perturbation (ε-bounded, fitted iteratively, one ν for all images) weaker than per-image FGSM
    at the same ε is expected, not a sign of gradient masking."""
    uap = attack_cfg("UAP", "universal-uap")
    rows = _none(
        make_row(frac(0, N), defense="none", attack="fgsm", cfg=FGSM),
        make_row(frac(40, N), defense="none", attack="uap", cfg=uap),
    )
    assert not _said(rows, "Possible gradient masking")
    rows.append(make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD))  # a per-image PGD there is
    assert len(_said(rows, "Possible gradient masking")) == 1


# ------------------------------------------------------------------------------------ (e) EOT 1


@pytest.mark.parametrize("eot, fires", [(1, True), (2, False)])
def test_eot_flag_is_for_one_draw_only(eot, fires):
    """Guards ``eot <= 1``: BPDA on a randomized defense at EOT 2 averages two draws per gradient (silent)."""
    rows = [
        make_row(frac(90, N), defense="defensegan", extra={"randomized": True}),
        make_row(frac(30, N), defense="defensegan", attack="pgd", cfg={**PGD, "eot": eot}, threat="bpda"),
    ]
    said = _said(rows, "attacked through BPDA with EOT 1")
    assert bool(said) == fires, said


def test_eot_flag_reads_randomness_from_the_gradient_check_too():
    """A store whose rows say nothing under ``extra["randomized"]`` (written before it was recorded) still marks a
    randomized defense by its clean row's gradient check (``randomized_defense``)."""
    for randomized, fires in ((True, True), (False, False)):
        gc = {"threat": "autograd", "zero_grad_fraction": 0.0, "randomized_defense": randomized}
        rows = [
            make_row(frac(90, N), defense="defensegan", extra={"gradient_check": gc}),
            make_row(frac(30, N), defense="defensegan", attack="pgd", cfg={**PGD, "eot": 1}, threat="bpda"),
        ]
        assert bool(_said(rows, "attacked through BPDA with EOT 1")) == fires


# ------------------------------------------------------------------------------------ (f) worse than no defense


def _wilson_high(k: int, n: int, z: float = 1.959963984540054) -> float:
    """Upper end of the Wilson score interval, by its closed form."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre + half


@pytest.mark.parametrize("undefended_right, fires", [(86, False), (87, True)])
def test_worse_than_none_is_measured_against_the_defended_cells_interval(undefended_right, fires):
    """The defended cell leaves 80 of 100; the upper end of its Wilson 95% interval is 86.66% (closed form), so the
    undefended cell at 86% is inside it (silent) and at 87% above it (fires)."""
    assert 0.86 < _wilson_high(80, 100) < 0.87
    ufgsm = attack_cfg("U-FGSM", "universal-fgsm", eps=None, iterative=False, bounded=False, alpha=2.0)
    rows = [
        make_row(frac(N, N), defense="none"),
        make_row(frac(undefended_right, N), defense="none", attack="universal-fgsm", cfg=ufgsm),
        make_row(frac(90, N), defense="mimicgan"),
        make_row(frac(80, N), defense="mimicgan", attack="universal-fgsm", cfg=ufgsm),
    ]
    said = _said(rows, "fewer images correct than no defense")
    assert bool(said) == fires, said
    if fires:
        assert "U-FGSM (graybox): 80.0% (95% interval 71.1%–86.7%) against 87.0% undefended" in said[0]


# ------------------------------------------------------------------------------------ (g) shattered gradients


def test_shattered_gradients_quote_the_largest_fraction_over_seeds():
    """Two seeds' gradient checks read 90% and 60% zero: the flag quotes the larger, 90%, whichever seed is last."""
    rows = [
        make_row(frac(90, N), seed=s, extra={"gradient_check": {"threat": "autograd", "zero_grad_fraction": f}})
        for s, f in ((0, 0.9), (1, 0.6))
    ]
    (said,) = _said(rows, "Shattered gradients")
    assert "90% of the input gradients" in said


# ------------------------------------------------------------------------------------ (i) small cells


@pytest.mark.parametrize("n, fires", [(99, True), (100, False), (0, False)])
def test_small_cells_are_under_a_hundred_images(n, fires):
    """Guards MIN_IMAGES = 100 and ``0 < n``: 99 images fire, quoting 1.96·√(0.25/99) = ±9.8 points; 100 images
    and an empty cell (no interval at all) stay silent."""
    said = _said([make_row(frac(n, n) if n else [])], "cell(s) have only")
    assert bool(said) == fires, said
    if fires:
        assert f"±{100 * 1.96 * math.sqrt(0.25 / 99):.1f} points" in said[0]
        assert said[0].startswith("1 cell(s) have only 99 images")


# ------------------------------------------------------------------------------------ (k) near chance


def test_near_chance_reads_the_clean_rows_only():
    """The bare classifier's predictions on an attacked cell's inputs (``preds_undefended`` of a PGD row: the
    adversarial images) say nothing about whether it was trained: a classifier right on every clean image stays
    silent however low those are; the same predictions on the clean row fire."""
    pgd = make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD)
    pgd["preds_undefended"] = [(y + 1) % 10 for y in pgd["labels"]]  # all wrong on the adversarial images
    assert not _said(_none(pgd), "under twice chance")
    clean = make_row(frac(N, N), defense="none")
    clean["preds_undefended"] = list(pgd["preds_undefended"])
    assert len(_said([clean, pgd], "under twice chance")) == 1


def test_near_chance_takes_the_dataset_s_class_count():
    """Chance is 1/10 on Fashion-MNIST whatever labels the cells hold: 10 clean images of 5 classes with 3 right
    (30%) are above twice chance (20%), though under twice 1/5 (40%)."""
    r = make_row(frac(10, 10), defense="none")
    r["labels"] = [i % 5 for i in range(10)]
    r["preds"] = list(r["labels"])
    r["preds_undefended"] = [y if i < 3 else (y + 1) % 5 for i, y in enumerate(r["labels"])]
    assert not _said([r], "under twice chance")
    r["preds_undefended"] = [y if i < 1 else (y + 1) % 5 for i, y in enumerate(r["labels"])]  # 10%: fires
    assert _said([r], "under twice chance")


def test_bounded_reparam_cells_on_no_defense_are_not_the_strongest_attack():
    """No defense's reparam cells attack f ∘ G ∘ I and score f (a transfer number): neither an iterative PGD there
    keeping 40% nor a single-step FGSM keeping 80% is told the attack is too weak (neither message)."""
    rows = _none(
        make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD, threat="reparam"),
        make_row(frac(80, N), defense="none", attack="fgsm", cfg=FGSM, threat="reparam"),
    )
    assert not _said(rows, "(no defense)")
    rows.append(make_row(frac(40, N), defense="none", attack="pgd", cfg=PGD))  # the same PGD on f itself fires
    assert len(_said(rows, "the strongest bounded attack, PGD (graybox), still leaves 40.0%")) == 1


# ------------------------------------------------------------------------------------ (b) white vs gray on a subset


def test_white_vs_gray_counts_the_images_both_cells_cover_when_the_gray_box_cell_is_the_subset():
    """A gray-box cell on images 0-19 (``--n-threat graybox=20``) keeps 2 of them (10%); BPDA on all 100 keeps images
    0-2 (3 of the 20: 15%, 3% overall). On the same 20 images BPDA is 5 points weaker: fires, quoting 15.0% and 20
    images. (Over the white cell's 100 images the gap would read 1 point.)"""
    sub = {**PGD, "n_images": 20, "label": "PGD (n=20)"}
    rows = [
        make_row(frac(90, N)),
        make_row(frac(2, 20), attack="pgd", cfg=sub, indices=list(range(20))),
        make_row(frac(3, N), attack="pgd", cfg={**PGD, "eot": 10}, threat="bpda"),
    ]
    (said,) = _said(rows, "Suspicious white-box result on")
    assert "leaves 15.0% accuracy, 5.0 points more than its gray-box twin (10.0%) on the same 20 images" in said


# ------------------------------------------------------------------------------------ (d) weaker attack beats white-box


def test_no_defense_s_reparam_cells_are_no_white_box_attack_to_beat():
    """On no defense, a reparam cell attacks f ∘ G ∘ I and scores f: a universal perturbation leaving 40% against
    reparam PGD's 80% is no sign of masked white-box gradients (silent); on a defense the same numbers fire."""
    uap = attack_cfg("UAP", "universal-uap")
    rows = _none(
        make_row(frac(0, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(40, N), defense="none", attack="uap", cfg=uap),
        make_row(frac(80, N), defense="none", attack="pgd", cfg=PGD, threat="reparam"),
    )
    assert not _said(rows, "every white-box attack")
    rows += [
        make_row(frac(40, N), attack="uap", cfg=uap),
        make_row(frac(80, N), attack="pgd", cfg=PGD, threat="reparam"),
    ]
    (said,) = _said(rows, "every white-box attack")
    assert said.startswith("Suspicious white-box results on invgan: the universal attack UAP (graybox)")


def test_a_universal_perturbation_through_bpda_is_no_white_box_attack_to_beat():
    """A universal ν fitted through BPDA is one vector for all images: per-image gray-box FGSM leaving 10% against
    it (40%) is expected (silent); against a per-image BPDA PGD at 40% it fires."""
    uap = attack_cfg("UAP", "universal-uap")
    rows = [
        make_row(frac(90, N)),
        make_row(frac(10, N), attack="fgsm", cfg=FGSM),
        make_row(frac(40, N), attack="uap", cfg=uap, threat="bpda"),
    ]
    assert not _said(rows, "every white-box attack")
    rows.append(make_row(frac(40, N), attack="pgd", cfg=PGD, threat="bpda"))
    (said,) = _said(rows, "every white-box attack")
    assert "the transfer (gray-box) attack FGSM (graybox) leaves 10.0%" in said


def test_eot_flag_is_for_bpda_cells_only():
    """A reparameterisation cell on a randomized defense records EOT 1 (EOT averages BPDA gradients only): silent."""
    rows = [
        make_row(frac(90, N), defense="defensegan", extra={"randomized": True}),
        make_row(frac(30, N), defense="defensegan", attack="pgd", cfg={**PGD, "eot": 1}, threat="reparam"),
    ]
    assert not _said(rows, "EOT 1")
