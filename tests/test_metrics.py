"""defbench.metrics, the one module every number comes from, against values worked out by hand (and scipy's own
interval): accuracy, the all-repeats rule of randomized defenses, the worst case over attacks, ROC AUC and the
Wilson and Hanley–McNeil intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from defbench import metrics


def test_accuracy_from_predictions_and_labels():
    assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert metrics.correct(np.array([0, 1]), [0, 0]).tolist() == [True, False]
    assert metrics.accuracy(torch.tensor([3, 3, 3]), torch.tensor([3, 1, 3])) == pytest.approx(2 / 3)
    assert math.isnan(metrics.accuracy([], []))
    with pytest.raises(ValueError, match="3 preds for 2 labels"):
        metrics.accuracy([1, 2, 3], [1, 2])


def test_all_repeats_accuracy_needs_every_repeat_right():
    labels = [0, 1, 2, 3]
    one_wrong = [[0, 1, 2, 3], [0, 1, 9, 3], [0, 1, 2, 3]]  # image 2 wrong in one of three purifications
    assert metrics.all_repeats_correct(one_wrong, labels).tolist() == [True, True, False, True]
    assert metrics.all_repeats_accuracy(one_wrong, labels) == 0.75
    # each repeat alone is 75% right, on different images: only the two images right in both count (not the
    # mean over repeats, 75%, nor a majority vote)
    apart = [[0, 9, 2, 3], [0, 1, 9, 3]]
    assert [metrics.accuracy(r, labels) for r in apart] == [0.75, 0.75]
    assert metrics.all_repeats_accuracy(apart, labels) == 0.5
    assert metrics.all_repeats_accuracy([labels], labels) == 1.0
    with pytest.raises(ValueError, match="does not match 4 labels"):
        metrics.all_repeats_accuracy([[0, 1, 2]], labels)
    # no repeat at all: np.all over nothing said every image was right (100%)
    with pytest.raises(ValueError, match="no repeat"):
        metrics.all_repeats_accuracy(np.zeros((0, 4), int), labels)


def test_worst_case_over_attacks():
    clean = ([0, 1, 2, 3], [True, True, True, False])
    fgsm = ([0, 1, 2, 3], [True, False, True, True])
    pgd = ([3, 2, 1, 0], [True, False, True, True])  # image 2 wrong, listed in reverse order
    # image 0 is right everywhere; 1 falls to FGSM, 2 to PGD, 3 is wrong clean
    assert metrics.worst_case([clean, fgsm, pgd]) == (0.25, False)
    assert metrics.worst_case([clean, ([1, 0], [True, True])]) == (1.0, True)  # over images 0 and 1 only
    assert math.isnan(metrics.worst_case([clean, ([7], [True])])[0])
    # a row with fewer results than indices: zip dropped images 1-3, which then stayed robust (1.0)
    with pytest.raises(ValueError, match="4 indices but 1 results"):
        metrics.worst_case([clean, ([0, 1, 2, 3], [True])])


def test_roc_auc_of_a_perfect_an_inverted_and_a_tied_score():
    assert metrics.roc_auc([0.1, 0.2, 0.3], [0.7, 0.8]) == 1.0
    assert metrics.roc_auc([0.7, 0.8], [0.1, 0.2, 0.3]) == 0.0
    assert metrics.roc_auc([0.5, 0.1], [0.5, 0.9]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)  # a tie counts half
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 30), rng.normal(1, 1, 20)
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert metrics.roc_auc(neg, pos) == pytest.approx(np.mean(pairs))
    for neg, pos in (([], [0.3]), ([0.1], []), ([0.1, math.nan], [0.3]), ([0.2, 0.2], [0.2])):
        assert math.isnan(metrics.roc_auc(neg, pos)), (neg, pos)


def test_wilson_interval_is_scipys():
    got = metrics.wilson_interval(5, 10)
    ci = binomtest(5, 10).proportion_ci(method="wilson")
    assert got == pytest.approx((ci.low, ci.high))
    # by hand: centre (p + z²/2n) / (1 + z²/n) = 0.5, half-width z √(p(1−p)/n + z²/4n²) / (1 + z²/n)
    z = 1.959964
    half = z * math.sqrt(0.25 / 10 + z**2 / 400) / (1 + z**2 / 10)
    assert got == pytest.approx((0.5 - half, 0.5 + half), abs=1e-6)
    assert got == pytest.approx((0.2366, 0.7634), abs=1e-4)  # not Clopper–Pearson's (0.187, 0.813)
    lo, hi = metrics.wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = metrics.wilson_interval(59, 100)
    assert lo < 0.59 < hi and hi - lo < got[1] - got[0]
    assert all(math.isnan(v) for v in metrics.wilson_interval(0, 0))


def test_auc_interval_hanley_mcneil():
    lo, hi = metrics.auc_interval(0.5, 10, 10)  # q1 = q2 = 1/3: var = (0.25 + 2 * 9 / 12) / 100 = 0.0175
    assert (lo, hi) == pytest.approx((0.5 - 1.96 * 0.0175**0.5, 0.5 + 1.96 * 0.0175**0.5))
    assert all(math.isnan(v) for v in metrics.auc_interval(1.0, 20, 20) + metrics.auc_interval(0.0, 20, 20))
    w100 = metrics.auc_interval(0.8, 100, 100)
    w20 = metrics.auc_interval(0.8, 20, 20)
    assert w20[0] < w100[0] < 0.8 < w100[1] < w20[1]
    assert all(math.isnan(v) for v in metrics.auc_interval(0.8, 0, 5) + metrics.auc_interval(math.nan, 5, 5))


def test_auc_interval_matches_the_spread_of_simulated_aucs():
    """Hanley–McNeil's standard error is exact for scores drawn from their model (exponential scores; its Q1 =
    A/(2 − A) pairs two positives with one negative, Q2 = 2A²/(1 + A) one positive with two negatives), so at
    unequal class sizes it must equal the spread of AUCs simulated from that model. At 30 negatives and 5
    positives: SE 0.1246 (the simulation's 0.1249), where Q1 and Q2 or the two counts swapped give 0.0901."""
    auc, n_neg, n_pos = 0.8, 30, 5
    lo, hi = metrics.auc_interval(auc, n_neg, n_pos)
    assert lo == pytest.approx(0.5558, abs=1e-4) and hi == 1.0  # the upper end is clipped at 1
    rng = np.random.default_rng(0)
    neg = rng.exponential(1.0, (20000, 1, n_neg))
    pos = rng.exponential(auc / (1 - auc), (20000, n_pos, 1))  # P(pos > neg) = auc
    simulated = (pos > neg).mean((1, 2))
    assert simulated.mean() == pytest.approx(auc, abs=0.005)
    assert (auc - lo) / 1.96 == pytest.approx(simulated.std(ddof=1), rel=0.03)


def test_binomial_half_width():
    assert metrics.binomial_half_width(100) == pytest.approx(9.8)  # 1.96 · √(0.25 / 100), in points
    assert metrics.binomial_half_width(400, 0.1) == pytest.approx(100 * 1.96 * 0.015)
    assert math.isnan(metrics.binomial_half_width(0))


def test_paired_counts_and_exact_mcnemar():
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    assert metrics.paired_counts(a, b) == (1, 2, 1, 1)
    assert metrics.paired_counts(b, a) == (1, 1, 2, 1)
    with pytest.raises(ValueError, match="same images"):
        metrics.paired_counts(a, b[:4])
    # by hand: 0 of 21 discordant images on A's side: 2 · 0.5^21; 10 vs 10 is no evidence at all
    assert metrics.mcnemar_p(0, 21) == pytest.approx(2 * 0.5**21)
    assert metrics.mcnemar_p(21, 0) == metrics.mcnemar_p(0, 21)
    assert metrics.mcnemar_p(10, 10) == pytest.approx(1.0)
    assert metrics.mcnemar_p(0, 0) == 1.0
    assert metrics.mcnemar_p(1, 4) == pytest.approx(0.375)  # (1 + 5 + 5 + 1) / 32


def test_share_percent_is_written_from_the_count():
    """A share is a count of n: two decimals hold every share of 2000 exactly, so 99 of 2000 reads 4.95 (under a
    5% target) where one decimal of the float rounds it to 5.0; a share two decimals cannot hold is cut towards
    zero, never rounded up; a fraction that is no whole count of n, or n < 1, is refused."""
    assert metrics.share_percent(99 / 2000, 2000) == "4.95"
    assert metrics.share_percent(100 / 2000, 2000) == "5.00"
    assert metrics.share_percent(49 / 2000, 2000) == "2.45"
    assert metrics.share_percent(0.0, 2000) == "0.00" and metrics.share_percent(1.0, 2000) == "100.00"
    assert metrics.share_percent(2 / 3, 3) == "66.66"  # 66.666...: cut, not 66.67
    assert metrics.share_percent(199 / 4000, 4000) == "4.97"  # 4.975
    with pytest.raises(ValueError, match="whole count"):
        metrics.share_percent(0.04975, 2000)
    with pytest.raises(ValueError, match="n > 0"):
        metrics.share_percent(0.5, 0)


def test_spread_percent_writes_a_share_of_the_trainers_samples():
    """The trainer's log and the coverage benchmarks write a class share of SPREAD_SAMPLES samples through one
    helper: 99 of 2000 reads 4.95, a share that is no whole count of SPREAD_SAMPLES is refused."""
    from defbench.defenses.train_prior import SPREAD_SAMPLES, spread_percent

    assert SPREAD_SAMPLES == 2000
    assert spread_percent(99 / 2000) == "4.95" and spread_percent(107 / 2000) == "5.35"
    with pytest.raises(ValueError, match="whole count"):
        spread_percent(99 / 4000)
