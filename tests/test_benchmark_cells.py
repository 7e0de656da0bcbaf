"""benchmarks/_common.py: the accuracy and AUC cells every benchmark table prints, against their formulas worked
by hand (Wilson's score interval; Hanley and McNeil's standard error)."""

from __future__ import annotations

import math

import pytest
from conftest import import_benchmark

Z = 1.959964  # the two-sided 95% normal quantile


@pytest.fixture(scope="module")
def common():
    return import_benchmark("_common")


def _wilson(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def test_accuracy_cell_prints_the_digits_asked_and_the_wilson_interval(common):
    lo, hi = _wilson(2, 3)  # 0.208 .. 0.939
    assert (round(100 * lo), round(100 * hi)) == (21, 94)
    assert common.accuracy_cell(2, 3, 1) == "66.7 (21–94)"
    assert common.accuracy_cell(2, 3) == "67 (21–94)"


def test_auc_cell_takes_negatives_then_positives(common):
    """Hanley–McNeil: se^2 = (A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)) / (n_neg n_pos), Q1 = A/(2-A),
    Q2 = 2A^2/(1+A). AUC 0.8 of 5 negatives and 3 positives: se^2 = (0.16 + 2 * 0.02667 + 4 * 0.07111) / 15 =
    0.03319, se = 0.1822, 0.8 - 1.96 se = 0.443 (the other order gives se = 0.1651 and 0.476)."""
    a, n_neg, n_pos = 0.8, 5, 3
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_neg * n_pos))
    assert f"{a - Z * se:.2f}" == "0.44"
    assert common.auc_cell(0.8, 5, 3) == "0.800 (0.44–1.00)"
