"""Sanity flags: one sentence per symptom of gradient masking or of too little data.

Checks (accuracies are means over seeds, with the repeat rule of randomized defenses):

(a) an iterative bounded attack beats single-step FGSM at the same ε by more than 2 points of accuracy on
    the model the attacks differentiated (gray-box cells count only for the undefended classifier: there the
    defense was not attacked, and a large single-step perturbation surviving purification better is no sign
    of masked gradients);
(b) a white-box attack (bpda, reparam, gan-aware) is weaker than its gray-box twin by more than 2 points;
(c) with no defense, the strongest bounded attack leaves more than 10% accuracy;
(d) the clean row's gradient check found mostly zero gradients or a nondeterministic forward pass;
(e) cells of fewer than 100 images, whose binomial 95% interval is wide.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import numpy as np

from .common import (WHITE_BOX, Base, Row, accuracy, attack_key, attack_label, base_key, base_names, cfg,
                     eps_equal, is_clean)

MARGIN = 0.02          # 2 points of accuracy
NO_DEFENSE_MAX = 0.10  # accuracy an undefended model may keep under its strongest bounded attack
MIN_IMAGES = 100
ZERO_GRAD_MAX = 0.5

Cell = tuple[Base, str, tuple[str, str]]  # (defended model, threat, attack key)


def _cell_means(rows: list[Row]) -> dict[Cell, tuple[float, Row]]:
    """Mean accuracy over seeds of every attack cell, with one of its rows for the config."""
    accs: dict[Cell, list[float]] = defaultdict(list)
    first: dict[Cell, Row] = {}
    for r in rows:
        if is_clean(r):
            continue
        c = (base_key(r), r["threat"], attack_key(r))
        accs[c].append(accuracy(r))
        first.setdefault(c, r)
    return {c: (float(np.nanmean(v)) if not all(math.isnan(x) for x in v) else math.nan, first[c])
            for c, v in accs.items()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _universal(r: Row) -> bool:
    """Universal (image-agnostic) attacks are weaker than per-image FGSM by design: not compared."""
    return cfg(r, "alpha") is not None or str(cfg(r, "family", "")).startswith("universal")


def _iterative_vs_fgsm(cells: dict[Cell, tuple[float, Row]], names: dict[Base, str]) -> list[str]:
    out = []
    for (b, t, _), (acc, r) in cells.items():
        if not (cfg(r, "iterative") and cfg(r, "bounded")) or cfg(r, "family") == "fgsm" or cfg(r, "eps") is None \
                or _universal(r) or (t == "graybox" and r["defense"] != "none"):
            continue
        fgsm = [a for (b2, t2, _), (a, r2) in cells.items() if b2 == b and t2 == t
                and cfg(r2, "family") == "fgsm" and eps_equal(cfg(r2, "eps"), cfg(r, "eps")) and not math.isnan(a)]
        if fgsm and acc - min(fgsm) > MARGIN:
            out.append(f"Possible gradient masking on {names[b]} ({t}): iterative {attack_label(r)} leaves "
                       f"{_pct(acc)} accuracy, {100 * (acc - min(fgsm)):.1f} points more than single-step FGSM at "
                       f"the same ε={cfg(r, 'eps')} ({_pct(min(fgsm))}); an iterative attack should be at least "
                       "as strong.")
    return out


def _white_vs_gray(cells: dict[Cell, tuple[float, Row]], names: dict[Base, str]) -> list[str]:
    gray_by_key = {(b, a): acc for (b, t, a), (acc, _) in cells.items() if t == "graybox"}
    gray_by_label = {(b, attack_label(r)): acc for (b, t, _), (acc, r) in cells.items() if t == "graybox"}
    out = []
    for (b, t, a), (acc, r) in cells.items():
        twin = gray_by_key.get((b, a), gray_by_label.get((b, attack_label(r))))
        if t in WHITE_BOX and twin is not None and acc - twin > MARGIN:
            out.append(f"Suspicious white-box result on {names[b]}: {attack_label(r)} under {t} leaves "
                       f"{_pct(acc)} accuracy, {100 * (acc - twin):.1f} points more than its gray-box twin "
                       f"({_pct(twin)}); a white-box attack should not be weaker, so its gradients are likely "
                       "masked or the attack misconfigured.")
    return out


def _no_defense(cells: dict[Cell, tuple[float, Row]], names: dict[Base, str]) -> list[str]:
    best: dict[Base, tuple[float, Row, str]] = {}
    for (b, t, _), (acc, r) in cells.items():
        if b[2] == "none" and cfg(r, "bounded") and not math.isnan(acc) and (b not in best or acc < best[b][0]):
            best[b] = (acc, r, t)
    return [f"Sanity check failed on {names[b]} (no defense): the strongest bounded attack, {attack_label(r)} "
            f"({t}), still leaves {_pct(acc)} accuracy where ≈0% is expected; the attack is likely too weak or "
            "misconfigured." for b, (acc, r, t) in best.items() if acc > NO_DEFENSE_MAX]


def _gradient_checks(rows: list[Row], names: dict[Base, str]) -> list[str]:
    zero: dict[tuple[Base, str], float] = {}
    nondet: set[tuple[Base, str]] = set()
    for r in rows:
        gc = (r.get("extra") or {}).get("gradient_check") if is_clean(r) else None
        if not gc:
            continue
        k = (base_key(r), str(gc.get("threat", "?")))
        f = gc.get("zero_grad_fraction")
        if f is not None and float(f) > ZERO_GRAD_MAX:
            zero[k] = max(zero.get(k, 0.0), float(f))
        if gc.get("nondeterministic"):
            nondet.add(k)
    out = [f"Gradient check on {names[b]} ({t}): {100 * f:.0f}% of input gradients are zero, so gradient-based "
           "attacks see shattered or vanishing gradients; trust only BPDA, reparameterized or gradient-free "
           "results." for (b, t), f in zero.items()]
    out += [f"Gradient check on {names[b]} ({t}): the defended model is nondeterministic (same input, different "
            "outputs); its gradients are stochastic, so attacks need EOT and accuracy the all-repeats rule."
            for (b, t) in sorted(nondet, key=str)]
    return out


def _small_cells(rows: list[Row]) -> list[str]:
    by_n: dict[int, int] = defaultdict(int)
    for r in rows:
        n = len(r["labels"])
        if 0 < n < MIN_IMAGES:
            by_n[n] += 1
    return [f"{count} cell(s) have only {n} images: the binomial 95% interval of an accuracy is up to "
            f"±{100 * 1.96 * math.sqrt(0.25 / n):.1f} points (1.96·√(p(1−p)/n) at p = 0.5), so smaller differences "
            "are noise." for n, count in sorted(by_n.items())]


def sanity_flags(rows: Iterable[Row]) -> list[str]:
    """Human-readable warnings pointing at gradient masking or underpowered cells (empty list: all clear)."""
    rows = list(rows)
    names = base_names(base_key(r) for r in rows)
    cells = _cell_means(rows)
    return (_iterative_vs_fgsm(cells, names) + _white_vs_gray(cells, names) + _no_defense(cells, names)
            + _gradient_checks(rows, names) + _small_cells(rows))
