"""Core: the numbers defbench reports, as pure functions of predictions, labels and scores, used by the
classifiers, the harness, the reports and the benchmarks alike.

* accuracy: the fraction of images whose prediction is their label;
* all-repeats accuracy: a randomized defense purifies each image k times, and an image counts as correct only if
  it is correct in every one of the k purifications;
* worst case over attacks: an image counts only if it is correct on the clean input and under every attack;
* ROC AUC (scikit-learn's ``roc_auc_score``), NaN where the score cannot rank anything;
* paired comparison of two cells on the same images: the counts of (both right, only A, only B, both wrong) and
  the exact two-sided McNemar p-value (a binomial test of the discordant images at 1/2);
* a share of n items written exactly, in % (``share_percent``): never rounded across a threshold;
* intervals: Wilson's for an accuracy (scipy's ``binomtest(k, n).proportion_ci(method="wilson")``),
  Hanley–McNeil's for an AUC, and the normal-approximation half-width of a proportion.

Predictions and labels may be lists, numpy arrays or torch tensors (on any device). This module imports nothing
of defbench.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score


def _ints(values: Any) -> np.ndarray:
    """Class indices as an int64 array (a torch tensor is moved to the CPU first)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64)


def _mean(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else math.nan


# ------------------------------------------------------------------------------------------------ accuracy
def correct(preds: Any, labels: Any) -> np.ndarray:
    """Per image, whether its prediction is its label (a bool array); preds and labels must have one shape."""
    p, y = _ints(preds), _ints(labels)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} preds for {y.size} labels")
    return p == y


def all_repeats_correct(repeat_preds: Any, labels: Any) -> np.ndarray:
    """Per image, whether all k predictions of ``repeat_preds`` (shape (k, n): one row per purification of a
    randomized defense) are its label."""
    p, y = _ints(repeat_preds), _ints(labels)
    if p.ndim != 2 or p.shape[1:] != y.shape:
        raise ValueError(f"repeat_preds of shape {p.shape} does not match {y.size} labels")
    if p.shape[0] == 0:  # np.all over no repeats is True: every image would count as right
        raise ValueError("repeat_preds holds no repeat (k = 0): there is no prediction to score")
    return np.all(p == y[None, :], axis=0)


def accuracy(preds: Any, labels: Any) -> float:
    """Fraction of the images predicted right; NaN for none."""
    return _mean(correct(preds, labels))


def all_repeats_accuracy(repeat_preds: Any, labels: Any) -> float:
    """Fraction of the images predicted right in every one of the k purifications; NaN for none."""
    return _mean(all_repeats_correct(repeat_preds, labels))


def worst_case(rows: Sequence[tuple[Iterable[int], Iterable[bool]]]) -> tuple[float, bool]:
    """Worst case over attacks: the fraction of images correct in every row, each row ``(indices, correct)`` (the
    clean input and one per attack; images matched by their test-set index), over the images every row covers.
    Also returns whether the rows covered different images. NaN when no image is common to all rows."""
    rows = [([int(i) for i in idx], [bool(ok) for ok in mask]) for idx, mask in rows]
    for idx, mask in rows:  # zip would drop the images without a result, which then stayed "robust"
        if len(idx) != len(mask):
            raise ValueError(f"a row has {len(idx)} indices but {len(mask)} results")
    covered = [set(idx) for idx, _ in rows]
    common = set.intersection(*covered) if covered else set()
    robust = dict.fromkeys(common, True)
    for idx, mask in rows:
        for i, ok in zip(idx, mask, strict=True):
            if i in robust:
                robust[i] = robust[i] and ok
    mismatch = any(c != covered[0] for c in covered[1:])
    return (float(np.mean(list(robust.values()))) if robust else math.nan), mismatch


# ------------------------------------------------------------------------------------------------ detection
def roc_auc(negatives: Iterable[float], positives: Iterable[float]) -> float:
    """ROC AUC of a score that should be higher on the positives (label 1) than on the negatives (label 0); NaN
    where it is undefined: a side empty, a score not finite, or all scores equal (nothing is ranked)."""
    neg, pos = [float(s) for s in negatives], [float(s) for s in positives]
    scores = np.asarray(neg + pos, dtype=float)
    if not neg or not pos or not np.isfinite(scores).all() or np.ptp(scores) == 0:
        return math.nan
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], scores))


def paired_counts(correct_a: Any, correct_b: Any) -> tuple[int, int, int, int]:
    """(both right, only A, only B, both wrong) of two per-image correctness vectors of the same images."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired counts need the same images: {a.shape} vs {b.shape}")
    return int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum())


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value of the discordant counts: binomtest(only_a, only_a + only_b, 1/2); 1.0
    when no image is discordant (the two cells cannot be told apart)."""
    n = int(only_a) + int(only_b)
    return 1.0 if n == 0 else float(binomtest(int(only_a), n, 0.5).pvalue)


# ------------------------------------------------------------------------------------------------ intervals
def binomial_half_width(n: int, p: float = 0.5) -> float:
    """Half-width (percentage points) of the normal-approximation 95% interval of a proportion p over n."""
    return 100 * 1.96 * math.sqrt(p * (1 - p) / n) if n > 0 else math.nan


def share_percent(fraction: float, n: int) -> str:
    """A share of ``n`` items, in %, with two decimals and no rounding up: ``fraction`` · n is a count, and
    100 · count / n is written from that count exactly where two decimals hold it (every share of 2000, 400 or
    100 items), else cut towards zero. A 5% target then reads the way it is met: 99 of 2000 is "4.95", which one
    decimal of the float would round to "5.0"."""
    if n <= 0:
        raise ValueError(f"a share needs n > 0 items, not {n}")
    count = round(fraction * n)
    if abs(count - fraction * n) > 1e-6 * n:
        raise ValueError(f"{fraction!r} is not a whole count of {n} items")
    return str((Decimal(100 * count) / Decimal(n)).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (fractions) of a binomial proportion k / n, from scipy; (nan, nan) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def auc_interval(auc: float, n_neg: int, n_pos: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a ROC AUC from its Hanley–McNeil (1982) standard error; (nan, nan) if undefined.

    At AUC 0 or 1 that standard error is 0, which would print a zero-width interval for any n; no interval is
    given there (20 attacked against 20 clean images cannot pin an AUC of 1 to 1.000)."""
    if n_neg <= 0 or n_pos <= 0 or math.isnan(auc):
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_neg * n_pos)
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        return math.nan, math.nan
    return max(0.0, auc - z * se), min(1.0, auc + z * se)
