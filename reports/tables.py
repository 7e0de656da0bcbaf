"""Tables from store rows: robust accuracy per attack and defense, detection AUC, Markdown rendering.

Every table is a :class:`pandas.DataFrame` of display strings ("66.4 ± 1.2"); the numbers behind it are in
``df.attrs["mean"]`` and ``df.attrs["std"]`` (DataFrames of floats, accuracies as fractions in [0, 1]),
``df.attrs["seeds"]`` (DataFrame of seed counts) and the footnotes in ``df.attrs["notes"]`` (list of str).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np
import pandas as pd

from defbench.metrics import worst_case

from .common import (
    CLEAN,
    Base,
    Row,
    accuracy,
    attack_key,
    attack_names,
    base_key,
    base_names_of,
    batch_spread_notes,
    cfg,
    correct_mask,
    detection_auc,
    detection_auc_protocol,
    how_tagger,
    in_worst_case,
    is_clean,
    markdown_table,
    mean_std,
    ordered_unique,
    repeat_count,
    repeat_spread_notes,
    threat_sort_key,
    SUCCESS_PROTOCOL,
)
from .sanity import sanity_flags

__all__ = [
    "correct_mask",
    "robust_accuracy_table",
    "detection_auc_table",
    "sanity_flags",
    "to_markdown",
    "format_mean_std",
    "THREAT_NOTES",
]

WORST = "worst case"
MISSING = "—"
NA = "n/a"

THREAT_NOTES = {
    "graybox": "gray-box: the attack differentiates the bare classifier; the defense is applied afterwards",
    "bpda": "white-box BPDA: forward through the defense, backward through its stand-in (EOT for randomness)",
    "reparam": "white-box reparameterization: gradients through the encoder and generator, f(G(I(x)))",
    "gan-aware": "white-box GAN-aware: the attack searches the generator's latent space from the projection; its ε "
    "is a latent-space budget (on u = (z + 1)/2 ∈ [0, 1]^d), the result then clipped to the pixel "
    "ε-ball",
}

#: (defended model, threat or None for a clean-only column, how its cells ran where one model and threat holds
#: cells of one attack run two ways: :func:`~defbench.reports.common.how_tagger`, else "")
Column = tuple[Base, str | None, str]


def format_mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """ "m ± s" of ``values * scale`` with ``digits`` decimals; just "m" for one value; "n/a" if none."""
    m, s = mean_std(values)
    if math.isnan(m):
        return NA
    if sum(not math.isnan(v) for v in values) == 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def _frames(
    cells: dict[tuple[str, Any], dict[int, float]],
    index: list[str],
    columns: list[Any],
    names: dict[Any, str],
    scale: float,
    digits: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Display, mean, std and seed-count frames for ``cells[(row, column)] = {seed: value}``."""
    shape = (len(index), len(columns))
    text = np.full(shape, MISSING, dtype=object)
    mean, std, nseeds = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, dtype=int)
    for i, r in enumerate(index):
        for j, c in enumerate(columns):
            by_seed = cells.get((r, c))
            if not by_seed:
                continue
            vals = [by_seed[s] for s in sorted(by_seed)]
            text[i, j] = format_mean_std(vals, scale, digits)
            mean[i, j], std[i, j] = mean_std(vals)
            nseeds[i, j] = sum(not math.isnan(v) for v in vals)
    cols = [names[c] for c in columns]
    make = lambda a: pd.DataFrame(a, index=pd.Index(index, name="attack"), columns=cols)  # noqa: E731
    return make(text), make(mean), make(std), make(nseeds)


def _attach(
    df: pd.DataFrame, mean: pd.DataFrame, std: pd.DataFrame, nseeds: pd.DataFrame, notes: list[str]
) -> pd.DataFrame:
    df.attrs["mean"], df.attrs["std"], df.attrs["seeds"] = mean, std, nseeds
    df.attrs["notes"] = notes
    return df


def _seed_note(nseeds: pd.DataFrame, seeds: list[int], what: str) -> str:
    counts = sorted({int(v) for v in nseeds.to_numpy().ravel() if v > 0})
    listed = ", ".join(map(str, seeds))
    if len(counts) > 1:
        return f"{what}: mean ± sample std over seeds ({listed}); cells have {counts[0]}–{counts[-1]} seeds."
    if not counts:  # every cell n/a (nothing scored): no mean over "0 seeds"
        return f"{what}: no cell could be scored (seeds {listed})."
    if counts[0] == 1:
        return f"{what}: one seed ({listed}), no spread reported."
    return f"{what}: mean ± sample std (ddof=1) over {counts[0]} seeds ({listed})."


def _worst_case(clean: Row | None, attacks: list[Row]) -> tuple[float, bool]:
    """Fraction of images correct on the clean input and under every attack run on them (matched by index), over
    the images every row covers (:func:`defbench.metrics.worst_case`); and whether the rows covered different
    images (attacks run on a subset of the clean images, e.g. fewer images for BPDA)."""
    rows = ([clean] if clean is not None else []) + attacks
    return worst_case([(r["indices"], correct_mask(r)) for r in rows])


def _eps_key(r: Row) -> float:
    return round(float(cfg(r, "eps")), 9)


def _eot_suffix(col_rows: list[Row]) -> str:
    """ "EOT=k" for a BPDA column of a randomized defense (or one attacked with EOT), else ""."""
    eots = sorted({int(cfg(r, "eot") or 1) for r in col_rows})
    randomized = any((r.get("extra") or {}).get("randomized") for r in col_rows)
    if not col_rows or col_rows[0]["threat"] != "bpda" or not (randomized or eots[-1] > 1):
        return ""
    return "EOT=" + "/".join(map(str, eots))


def robust_accuracy_table(rows: Iterable[Row], threat: str | None = None) -> pd.DataFrame:
    """Robust accuracy (%) per attack (rows) and defense (columns), "mean ± std" over seeds.

    Rows: "clean", the bounded per-image attacks in order of first appearance, "worst case" (per seed, the
    fraction of images correct on the clean input and under every bounded attack of the column at that ε; one
    row per ε, "worst case ε=…", when the table holds several), then the attacks that the worst case leaves
    out: unbounded (CW, DeepFool), universal and corruption rows. With ``threat`` given only that threat's
    attacks are used; with ``threat=None`` and several threats present the columns are "defense (threat)". A
    BPDA column of a randomized defense names its EOT count ("defensegan (EOT=10)").
    """
    rows = list(rows)
    clean_rows = [r for r in rows if is_clean(r)]
    attack_rows = [r for r in rows if not is_clean(r) and (threat is None or r["threat"] == threat)]
    threats = sorted({r["threat"] for r in attack_rows}, key=threat_sort_key)
    mixed = threat is None and len(threats) > 1

    bases = ordered_unique(base_key(r) for r in clean_rows + attack_rows)
    bnames = base_names_of(clean_rows + attack_rows)
    how = how_tagger(attack_rows)

    def column_of(r: Row) -> Column:
        return (base_key(r), r["threat"], how(r))

    with_attacks = ordered_unique(column_of(r) for r in attack_rows)
    columns: list[Column] = []
    for b in bases:
        mine = sorted((c for c in with_attacks if c[0] == b), key=lambda c: threat_sort_key(c[1]))
        if mine:
            columns += mine
        elif threat is None:
            columns.append((b, None, ""))
    names = {}
    for c in columns:
        eot = _eot_suffix([r for r in attack_rows if column_of(r) == c]) if c[1] else ""
        tags = ordered_unique(([c[1]] if mixed and c[1] else []) + ([eot] if eot else []) + ([c[2]] if c[2] else []))
        names[c] = f"{bnames[c[0]]} ({', '.join(tags)})" if tags else bnames[c[0]]

    anames = attack_names(rows)
    eps_groups = sorted({_eps_key(r) for r in attack_rows if in_worst_case(r)})
    worst_name = {e: (WORST if len(eps_groups) == 1 else f"{WORST} ε={e:g}") for e in eps_groups}
    index = (
        [CLEAN]
        + ordered_unique(anames[attack_key(r)] for r in attack_rows if in_worst_case(r))
        + [worst_name[e] for e in eps_groups]
        + ordered_unique(anames[attack_key(r)] for r in attack_rows if not in_worst_case(r))
    )
    cells: dict[tuple[str, Column], dict[int, float]] = defaultdict(dict)
    clean_by: dict[tuple[Base, int], Row] = {}
    attacks_by: dict[tuple[Column, int], list[Row]] = defaultdict(list)
    repeats: dict[str, set[int]] = defaultdict(set)
    for r in clean_rows:
        clean_by[(base_key(r), int(r["seed"]))] = r
    for r in attack_rows:
        attacks_by[(column_of(r), int(r["seed"]))].append(r)

    notes: list[str] = []
    mismatched: list[str] = []
    # the bounded attacks of each ε: over the whole table, and per column (over its seeds)
    in_group = lambda r, e: in_worst_case(r) and _eps_key(r) == e  # noqa: E731
    at = {e: f" ε={e:g}" if len(eps_groups) > 1 else "" for e in eps_groups}  # a note's ε, where several
    table_set = {e: {attack_key(r) for r in attack_rows if in_group(r, e)} for e in eps_groups}
    for c in columns:
        b = c[0]
        seeds = sorted({s for (bb, s) in clean_by if bb == b} | {s for (cc, s) in attacks_by if cc == c})
        column_set = {
            e: {attack_key(r) for s in seeds for r in attacks_by.get((c, s), []) if in_group(r, e)} for e in eps_groups
        }
        for e in eps_groups:
            lacks = [anames[k] for k in table_set[e] - column_set[e]]
            if column_set[e] and lacks:  # a worst case over fewer attacks than the row's others: said
                notes.append(
                    f"{names[c]}: worst case{at[e]} without {', '.join(sorted(lacks))} (not run in this column)."
                )
        for s in seeds:
            clean, attacks = clean_by.get((b, s)), attacks_by.get((c, s), [])
            for r in ([clean] if clean is not None else []) + attacks:
                cells[(CLEAN if is_clean(r) else anames[attack_key(r)], c)][s] = accuracy(r)
                if repeat_count(r):
                    repeats[bnames[b]].add(repeat_count(r))
            for e in eps_groups:
                group = [r for r in attacks if in_group(r, e)]
                if not group:
                    continue
                short = [anames[k] for k in column_set[e] - {attack_key(r) for r in group}]
                if short:  # a seed without an attack its column's other seeds ran: no worst case of fewer attacks
                    notes.append(
                        f"{names[c]} seed {s}: no worst case{at[e]}, its {', '.join(sorted(short))} cell is missing "
                        "(the column's mean is over the seeds that ran every attack)."
                    )
                    continue
                cells[(worst_name[e], c)][s], mismatch = _worst_case(clean, group)
                if mismatch:
                    mismatched.append(f"{names[c]} seed {s}{at[e]}")
            if clean is None and attacks:
                notes.append(f"{names[c]} seed {s}: no clean row, worst case ignores clean accuracy.")
            if clean is not None and not attacks and c[1] is not None:
                notes.append(
                    f"{names[c]} seed {s}: a clean cell and no attack cell (the clean row's mean is over this seed "
                    "too, the attack rows' are not)."
                )

    df, mean, std, nseeds = _frames(cells, index, columns, names, 100.0, 1)
    all_seeds = sorted({int(r["seed"]) for r in clean_rows + attack_rows})
    notes.insert(0, _seed_note(nseeds, all_seeds, "Robust accuracy in %"))
    if threat is not None and threat in THREAT_NOTES:
        notes.insert(1, f"Threat model: {THREAT_NOTES[threat]}.")
    if eps_groups:
        at = f"at ε={eps_groups[0]:g}" if len(eps_groups) == 1 else "at that row's ε"
        notes.append(
            f"worst case: per seed, an image counts only if it is classified correctly on the clean input "
            f"and under every bounded attack {at} in the column (images matched by test-set index); "
            "unbounded (CW, DeepFool), universal and corruption rows are reported beside it, not folded "
            "in."
        )
    pixel_eps = sorted(
        {
            _eps_key(r)
            for r in attack_rows
            if cfg(r, "bounded") and cfg(r, "eps") is not None and r["threat"] != "gan-aware"
        }
    )
    if len(pixel_eps) == 1:
        notes.append(f"Bounded attacks: ℓ∞ budget ε={pixel_eps[0]:g} (pixels in [0, 1]).")
    if any("EOT=" in n for n in names.values()):
        notes.append(
            "EOT=k: every BPDA gradient on the randomized defense averages the class probabilities of k "
            "purifications with fresh seeds (Athalye et al. 2018); EOT=1 attacks a single draw."
        )
    for d, ks in repeats.items():
        for k in sorted(ks):
            notes.append(
                f"{d}: randomized; an image counts as correct only if correct in all {k} of {k} purifications."
            )
    notes += batch_spread_notes((bnames[base_key(r)], r) for r in clean_rows + attack_rows)
    notes += repeat_spread_notes((bnames[base_key(r)], r) for r in clean_rows + attack_rows)
    if mismatched:
        notes.append(
            "Attacks covered different images than the clean row in: "
            + "; ".join(mismatched)
            + " (worst case there: over the images every row covers)."
        )
    if (df == MISSING).to_numpy().any():
        notes.append(f"{MISSING}: not run.")
    return _attach(df, mean, std, nseeds, notes)


ALL_IMAGES = "all images"


def detection_auc_table(rows: Iterable[Row]) -> pd.DataFrame:
    """ROC AUC of the InvGAN detection score ‖Φ(x) − Φ(x̂)‖ per attack and defense, two readings.

    Per defense two columns: "<defense>" follows the success protocol (negatives: the clean images the bare
    classifier gets right; positives: the successful adversarial examples of those images, where success means
    fooling the model the attack attacked: the bare classifier under gray-box, the defended model under a
    white-box threat; defbench's reading, not InvGAN's); "<defense> (all images)" is every clean image against
    every attacked one, the reading of InvGAN's code (its ``plots/plot_ROC.py``). Clean scores
    come from the clean row of the same (dataset, classifier, defense, defense_hash, seed). Values are
    "mean ± std" over seeds with 4 decimals (InvGAN Table 3); "n/a" where undefined (no successful adversarial,
    all scores equal, or no clean row). Defense "none" is skipped (its score is 0 by construction). When attacks
    of several threats are present the row names are "attack (threat)".
    """
    rows = [r for r in rows if r["defense"] != "none"]
    clean_by = {(base_key(r), int(r["seed"])): r for r in rows if is_clean(r)}
    attack_rows = [r for r in rows if not is_clean(r)]
    mixed = len({r["threat"] for r in attack_rows}) > 1
    anames = attack_names(rows)

    def rname(r: Row) -> str:
        return f"{anames[attack_key(r)]} ({r['threat']})" if mixed else anames[attack_key(r)]

    bases = ordered_unique(base_key(r) for r in attack_rows)
    bnames = base_names_of(attack_rows)
    tag_of = how_tagger(attack_rows)  # cells of one attack run two ways (EOT, G·I) get columns of their own
    tagged = ordered_unique((base_key(r), tag_of(r)) for r in attack_rows)
    columns = [(b, t, kind) for b in bases for bb, t in tagged if bb == b for kind in ("protocol", ALL_IMAGES)]
    names = {}
    for b, t, kind in columns:
        tags = ([t] if t else []) + ([] if kind == "protocol" else [ALL_IMAGES])
        names[(b, t, kind)] = f"{bnames[b]} ({', '.join(tags)})" if tags else bnames[b]
    index = ordered_unique(rname(r) for r in sorted(attack_rows, key=lambda r: threat_sort_key(r["threat"])))
    cells: dict[tuple[str, Any], dict[int, float]] = defaultdict(dict)
    unmatched, few = 0, []
    for r in attack_rows:
        clean = clean_by.get((base_key(r), int(r["seed"])))
        unmatched += clean is None
        auc, _, n_pos = detection_auc_protocol(clean, r) if clean is not None else (math.nan, 0, 0)
        cells[(rname(r), (base_key(r), tag_of(r), "protocol"))][int(r["seed"])] = auc
        cells[(rname(r), (base_key(r), tag_of(r), ALL_IMAGES))][int(r["seed"])] = (
            detection_auc(clean, r) if clean is not None else math.nan
        )
        if clean is not None and 0 < n_pos < 10:  # none at all is n/a (its own note), not a wide interval
            few.append((int(r["seed"]), bnames[base_key(r)], rname(r), n_pos))
    df, mean, std, nseeds = _frames(cells, index, columns, names, 1.0, 4)
    seeds = sorted({int(r["seed"]) for r in attack_rows})
    notes = [
        _seed_note(nseeds, seeds, "Detection ROC AUC of the InvGAN score ‖Φ(x) − Φ(x̂)‖"),
        (
            f"Columns named by the defense: the {SUCCESS_PROTOCOL} (defbench's; not InvGAN's): negatives are the "
            "clean images the classifier classifies correctly, positives the successful adversarial examples of "
            "those images (successful: the attacked model misclassifies them; the bare classifier for gray-box "
            f"attacks, the defended model for white-box threats). '({ALL_IMAGES})': every clean image (0) against "
            "every attacked image (1), as InvGAN's code computes its paper's AUCs (plots/plot_ROC.py)."
        ),
    ]
    if few:  # named in a fixed order: the store's row order is the order cells finished (Ray: any order)
        named = [f"{row} on {defense} seed {seed}: {k}" for seed, defense, row, k in sorted(few)[:3]]
        notes.append(
            f"{len(few)} of {len(attack_rows)} cell(s) have fewer than 10 positives (successful "
            "adversarials), so a wide AUC interval: " + "; ".join(named) + ("; …" if len(few) > 3 else "") + "."
        )
    if (df == NA).to_numpy().any():
        notes.append(f"{NA}: AUC undefined (no successful adversarial, all scores equal, or no matching clean row).")
    if unmatched:
        notes.append(f"{unmatched} attack cell(s) had no clean row of the same defense and seed.")
    notes.append("Defense 'none' is omitted: its detection score is 0 by construction.")
    return _attach(df, mean, std, nseeds, notes)


def to_markdown(df: pd.DataFrame, title: str) -> str:
    """A Markdown section: "### title", the table, then the table's notes as a list."""
    body = markdown_table(df, index=True) if len(df.columns) else "(no results)"
    lines = [f"### {title}", "", body, ""]
    notes = df.attrs.get("notes") or []
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    return "\n".join(lines)
