"""Row helpers shared by the tables, the sanity checks and the plots.

A *row* is one dict as yielded by :meth:`defbench.harness.store.Store.rows`. The helpers here know the
runner's conventions: the clean row of a (dataset, classifier, defense, defense_hash, seed) has
attack == "clean" and threat == "none"; attack rows carry a display ``label`` and ``family``, ``iterative``,
``bounded``, ``eps`` and ``alpha`` in ``attack_config``; randomized defenses store ``extra["repeat_preds"]``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Row = Mapping[str, Any]

CLEAN = "clean"
THREAT_NONE = "none"
THREAT_ORDER = ("graybox", "bpda", "reparam", "gan-aware")
WHITE_BOX = ("bpda", "reparam", "gan-aware")

#: (dataset, classifier, defense, defense_hash): one defended model.
Base = tuple[str, str, str, str]


def is_clean(row: Row) -> bool:
    """True for the clean (unattacked) row of a defense and seed."""
    return row["attack"] == CLEAN


def base_key(row: Row) -> Base:
    """The defended model a row belongs to."""
    return (row["dataset"], row["classifier"], row["defense"], row["defense_hash"])


def attack_key(row: Row) -> tuple[str, str]:
    """The attack and its configuration, independent of threat, defense and seed."""
    return (row["attack"], row["attack_hash"])


def attack_label(row: Row) -> str:
    """The attack's display name (``attack_config["label"]``, else the attack's name)."""
    if is_clean(row):
        return CLEAN
    return str((row.get("attack_config") or {}).get("label") or row["attack"])


def cfg(row: Row, name: str, default: Any = None) -> Any:
    """One field of the row's attack_config."""
    return (row.get("attack_config") or {}).get(name, default)


def correct_mask(row: Row) -> np.ndarray:
    """Per-image correctness of a row as a bool array aligned with ``row["labels"]``.

    For a randomized defense (``extra["repeat_preds"]``: k prediction lists) an image counts as correct only if
    it is correct in every one of the k repeats; otherwise ``preds`` decides.
    """
    labels = np.asarray(row["labels"], dtype=np.int64)
    repeats = (row.get("extra") or {}).get("repeat_preds")
    if repeats:
        preds = np.asarray(repeats, dtype=np.int64)
        if preds.ndim != 2 or preds.shape[1] != labels.shape[0]:
            raise ValueError(f"repeat_preds of shape {preds.shape} does not match {labels.shape[0]} labels")
        return np.all(preds == labels[None, :], axis=0)
    preds = np.asarray(row["preds"], dtype=np.int64)
    if preds.shape != labels.shape:
        raise ValueError(f"{preds.shape[0]} preds for {labels.shape[0]} labels")
    return preds == labels


def accuracy(row: Row) -> float:
    """Fraction of the row's images counted correct (repeat rule applied); NaN for an empty row."""
    mask = correct_mask(row)
    return float(mask.mean()) if mask.size else math.nan


def detection_auc(clean: Row, attacked: Row) -> float:
    """ROC AUC of the InvGAN detection score, clean images (label 0) against attacked ones (label 1); NaN where
    undefined (no scores, non-finite or all equal). When the attacked row covers a subset of the clean row's
    images (fewer images for an expensive threat) the clean scores of that subset are used."""
    from sklearn.metrics import roc_auc_score

    s0 = list(clean["scores"])
    sub = {int(i) for i in attacked.get("indices") or ()}
    cidx = [int(i) for i in clean.get("indices") or ()]
    if sub and len(cidx) == len(s0) and sub < set(cidx):
        s0 = [s for i, s in zip(cidx, s0) if i in sub]
    s1 = list(attacked["scores"])
    scores = np.asarray(s0 + s1, dtype=float)
    if not s0 or not s1 or not np.isfinite(scores).all() or np.ptp(scores) == 0:
        return math.nan
    return float(roc_auc_score(np.r_[np.zeros(len(s0)), np.ones(len(s1))], scores))


def binomial_half_width(n: int, p: float = 0.5) -> float:
    """Half-width (percentage points) of the normal-approximation 95% interval of a proportion p over n."""
    return 100 * 1.96 * math.sqrt(p * (1 - p) / n) if n > 0 else math.nan


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval (fractions) of a binomial proportion k / n; (nan, nan) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


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


def repeat_count(row: Row) -> int:
    """k for a randomized defense's row, 0 when the row has no repeats."""
    return len((row.get("extra") or {}).get("repeat_preds") or [])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) ignoring NaN; (nan, nan) if empty."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def ordered_unique(items: Iterable[Any]) -> list[Any]:
    """Items in order of first appearance, without repeats."""
    return list(dict.fromkeys(items))


def attack_names(rows: Iterable[Row]) -> dict[tuple[str, str], str]:
    """Display label per attack key, in order of first appearance.

    Two different configurations that share a label get their config hash appended so cells never merge.
    """
    keys: dict[tuple[str, str], str] = {}
    for r in rows:
        if not is_clean(r):
            keys.setdefault(attack_key(r), attack_label(r))
    clashes = Counter(keys.values())
    return {k: (f"{v} [{k[1][:6]}]" if clashes[v] > 1 else v) for k, v in keys.items()}


def base_names(bases: Iterable[Base]) -> dict[Base, str]:
    """Display name per defended model: the defense name, qualified only where needed.

    The config hash is appended when one defense appears with several configs, and "dataset/classifier: "
    is prefixed when the rows span several datasets or classifiers.
    """
    bases = ordered_unique(bases)
    models = {(b[0], b[1]) for b in bases}
    hashes: dict[tuple[str, str, str], set[str]] = {}
    for b in bases:
        hashes.setdefault(b[:3], set()).add(b[3])
    out = {}
    for b in bases:
        name = b[2] if len(hashes[b[:3]]) == 1 else f"{b[2]}#{b[3][:6]}"
        out[b] = f"{b[0]}/{b[1]}: {name}" if len(models) > 1 else name
    return out


def threat_sort_key(threat: str) -> tuple[int, str]:
    """Sort threats in the canonical order (graybox first), unknown ones last."""
    return (THREAT_ORDER.index(threat) if threat in THREAT_ORDER else len(THREAT_ORDER), threat)


def eps_equal(a: Any, b: Any) -> bool:
    """Whether two eps values (float or None) are the same budget."""
    if a is None or b is None:
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
