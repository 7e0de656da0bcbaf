"""Margins and thresholds of the sanity flags, pinned on both sides with hand-computed values: the mean over
seeds behind flag (a), the 2-point margin of flags (a), (b) and (d), the "every white-box attack" minimum of
flag (d), the pooling and the 10-image floor of the near-chance flag (k), and the strict thresholds of the
shattered-gradient and surrogate-collapse flags. Rows are hand-built store rows (no runner)."""

from __future__ import annotations

import pytest

from defbench.reports.sanity import sanity_flags
from test_reports import attack_cfg, frac, make_row

N = 100
FGSM = attack_cfg("FGSM", "fgsm", iterative=False)
PGD = attack_cfg("PGD", "pgd")
BIM = attack_cfg("BIM", "bim")
UAP = attack_cfg("UAP", "universal-uap")


def _said(rows: list[dict], words: str) -> list[str]:
    return [f for f in sanity_flags(rows) if words in f]


# ------------------------------------------------------------------------------------ (a) iterative vs FGSM


def _pgd_vs_fgsm(pgd_right: int, fgsm_right: int = 0) -> list[dict]:
    """No defense, one seed: PGD leaves ``pgd_right`` of 100 images, FGSM at the same ε ``fgsm_right``."""
    return [
        make_row(frac(N, N), defense="none"),
        make_row(frac(pgd_right, N), defense="none", attack="pgd", cfg=PGD),
        make_row(frac(fgsm_right, N), defense="none", attack="fgsm", cfg=FGSM),
    ]


def test_iterative_vs_fgsm_uses_the_mean_over_seeds():
    """Guards _mean averaging every seed (not reading one): PGD leaves 10% on seed 0 and 0% on seed 1, FGSM 0% on
    both, so the mean PGD accuracy is (10 + 0) / 2 = 5.0%, 5.0 points above FGSM's 0.0% (> 2): the flag fires
    quoting 5.0%. Either seed alone reads 0 points (silent) or 10.0% (the wrong number)."""
    rows = []
    for seed, right in ((0, 10), (1, 0)):
        rows += [
            make_row(frac(N, N), defense="none", seed=seed),
            make_row(frac(right, N), defense="none", attack="pgd", cfg=PGD, seed=seed),
            make_row(frac(0, N), defense="none", attack="fgsm", cfg=FGSM, seed=seed),
        ]
    said = _said(rows, "Possible gradient masking")
    assert len(said) == 1, said
    assert "iterative PGD leaves 5.0% accuracy, 5.0 points more than single-step FGSM" in said[0]
    assert "(0.0%)" in said[0]


@pytest.mark.parametrize("pgd_right, fires", [(3, True), (2, False)])
def test_iterative_vs_fgsm_margin_is_two_points(pgd_right, fires):
    """Guards flag (a)'s margin of 2 points: PGD at 3% against FGSM at 0% (3 points) fires, at 2% (exactly 2
    points, not more) stays silent."""
    said = _said(_pgd_vs_fgsm(pgd_right), "Possible gradient masking")
    assert bool(said) == fires, said
    if fires:
        assert f"leaves {pgd_right}.0% accuracy, {pgd_right}.0 points more than single-step FGSM" in said[0]


@pytest.mark.parametrize("pgd_right, fgsm_right", [(5, 3), (7, 5), (29, 27), (58, 56)])
def test_iterative_vs_fgsm_two_points_apart_is_silent_at_any_level(pgd_right, fgsm_right):
    """Exactly 2 points is not more than 2 at any accuracy: 0.05 − 0.03 is 0.020000000000000004 in floats, and the
    flag fired there while 2% against 0% stayed silent."""
    assert not _said(_pgd_vs_fgsm(pgd_right, fgsm_right), "Possible gradient masking")
    assert _said(_pgd_vs_fgsm(pgd_right + 1, fgsm_right), "Possible gradient masking")


# ------------------------------------------------------------------------------------ (b) white-box vs gray-box


@pytest.mark.parametrize("bpda_right, fires", [(33, True), (32, False)])
def test_white_vs_gray_margin_is_two_points(bpda_right, fires):
    """Guards flag (b)'s margin of 2 points: BPDA PGD leaving 33% against its gray-box twin's 30% on the same 100
    images (3 points) fires; 32% (exactly 2 points) stays silent."""
    rows = [
        make_row(frac(90, N)),
        make_row(frac(30, N), attack="pgd", cfg=PGD),
        make_row(frac(bpda_right, N), attack="pgd", cfg={**PGD, "eot": 10}, threat="bpda"),
    ]
    said = _said(rows, "Suspicious white-box result on")
    assert bool(said) == fires, said
    if fires:
        assert "leaves 33.0% accuracy, 3.0 points more than its gray-box twin (30.0%) on the same 100 images" in said[0]


# ------------------------------------------------------------------------------------ (d) weaker attack beats white-box


def _universal_vs_white(*white_right: int) -> list[dict]:
    """A defense whose universal perturbation leaves 40% and whose BPDA attacks (PGD, BIM, ...) leave
    ``white_right`` of 100 images, all at ε 0.3 on the same images."""
    rows = [make_row(frac(90, N)), make_row(frac(40, N), attack="uap", cfg=UAP)]
    attacks = (("pgd", PGD), ("bim", BIM))[: len(white_right)]  # the first as many attacks as values
    for (name, cfg), right in zip(attacks, white_right, strict=True):
        rows.append(make_row(frac(right, N), attack=name, cfg=cfg, threat="bpda"))
    return rows


def test_weaker_attack_must_beat_every_white_box_attack():
    """Guards flag (d) taking the minimum gap over the white-box cells: a universal perturbation leaving 40%
    against BPDA PGD at 70% (30 points) and BPDA BIM at 41% (1 point) does not beat every white-box attack by more
    than 2 points: silent. With BIM at 43% (the smallest gap 3 points) the flag fires, naming BIM (43.0%) as the
    strongest white-box attack."""
    assert _said(_universal_vs_white(70, 41), "every white-box attack") == []
    said = _said(_universal_vs_white(70, 43), "every white-box attack")
    assert len(said) == 1, said
    assert "the universal attack UAP (graybox) leaves 40.0% accuracy" in said[0]
    assert "the strongest, BIM under bpda, leaves 43.0% on the same 100 images" in said[0]


@pytest.mark.parametrize("white_right, fires", [(43, True), (42, False)])
def test_weaker_attack_margin_is_two_points(white_right, fires):
    """Guards flag (d)'s margin of 2 points: a universal perturbation at 40% against the only white-box attack at
    43% (3 points) fires; at 42% (exactly 2 points) it stays silent."""
    said = _said(_universal_vs_white(white_right), "every white-box attack")
    assert bool(said) == fires, said


# ------------------------------------------------------------------------------------ (k) near chance


def _clean_at(indices: list[int], right: int, seed: int = 0) -> dict:
    """A clean undefended row over ``indices`` whose bare classifier gets the first ``right`` of them right."""
    r = make_row(frac(len(indices), len(indices)), defense="none", seed=seed, indices=indices)
    r["preds_undefended"] = [y if i < right else (y + 1) % 10 for i, y in enumerate(r["labels"])]
    return r


def test_near_chance_pools_clean_images_across_seeds():
    """Guards flag (k) pooling the clean rows of all seeds by test-set index: seeds 0 and 1 hold 8 different
    images each (indices 0-7 and 8-15), one right in each, so 2 of 16 = 12.5% < 20% (twice chance of 10 classes)
    fires on 16 images. One seed's 8 images alone would fall under the 10-image floor and stay silent."""
    rows = [_clean_at(list(range(8)), 1, seed=0), _clean_at(list(range(8, 16)), 1, seed=1)]
    said = _said(rows, "under twice chance")
    assert len(said) == 1, said
    assert said[0].startswith("fmnist/cnn: the undefended classifier gets 12.5% of 16 clean images right")


@pytest.mark.parametrize("n, fires", [(10, True), (9, False)])
def test_near_chance_needs_at_least_ten_images(n, fires):
    """Guards flag (k)'s floor ``len(images) >= 10``: a classifier getting 1 clean image right fires on exactly 10
    images (10.0% < 20%) and stays silent on 9."""
    said = _said([_clean_at(list(range(n)), 1)], "under twice chance")
    assert bool(said) == fires, said
    if fires:
        assert "gets 10.0% of 10 clean images right" in said[0]


# ------------------------------------------------------------------------------------ (g) shattered gradients


@pytest.mark.parametrize("fraction, fires", [(0.5, False), (0.51, True)])
def test_shattered_gradients_need_more_than_half_zero(fraction, fires):
    """Guards the strict ``zero_grad_fraction > 0.5`` of flag (g): exactly half the gradients zero is not
    "mostly zero" and stays silent; 51% fires."""
    clean = make_row(frac(90, N), extra={"gradient_check": {"threat": "autograd", "zero_grad_fraction": fraction}})
    said = _said([clean], "Shattered gradients")
    assert bool(said) == fires, said
    if fires:
        assert "51% of the input gradients of f ∘ purify" in said[0]


# ------------------------------------------------------------------------------------ surrogate collapse


@pytest.mark.parametrize("scale, fires", [(0.1, False), (0.09, True)])
def test_surrogate_collapse_is_below_a_tenth(scale, fires):
    """Guards the strict ``scale < 0.1`` of the surrogate-collapse flag: a surrogate output at exactly a tenth of
    its input's magnitude has not collapsed (silent); at 0.09 it has (fires, in 1 of 2 batches)."""
    clean = make_row(frac(90, N), defense="mimicgan", extra={"surrogate_scale": [0.9, scale]})
    said = _said([clean], "surrogate collapsed")
    assert bool(said) == fires, said
    if fires:
        assert "collapsed in 1 of 2 batch(es) of the clean images" in said[0]
