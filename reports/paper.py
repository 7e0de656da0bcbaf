"""Paper vs ours: per-cell comparison of a :class:`~defbench.harness.paper_spec.PaperTable` run with the paper.

"Ours" is always computed from the store rows the run produced, by :mod:`defbench.metrics`: accuracy (%) of each
image's first purification, as the papers classify one (:func:`row_accuracy`; the row's ``preds_undefended`` for
a bare-classifier cell; a cell purified several times adds a note on their spread), detection AUC from the row's
InvGAN scores as InvGAN's code computes its paper's (every clean image of its defense's clean row against every
attacked image, :func:`~defbench.reports.common.detection_auc_all`; the cell's note gives the success protocol's
AUC beside it, :func:`~defbench.reports.common.detection_auc_protocol`); with several seeds, the mean over seeds.
Outputs: a Markdown report (returned and written as ``<id>.md``), ``<id>.csv`` with the same columns, and
``<id>.png`` when the paper shows a figure (Agg canvas, no pyplot).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from defbench import metrics
from defbench.harness.paper_spec import PAPERS_DIR, PaperCell, PaperRun, PaperTable, preset_attack
from defbench.harness.paper_tables import status
from defbench.metrics import auc_interval, binomial_half_width, roc_auc, wilson_interval

from .common import (
    SUCCESS_PROTOCOL,
    Row,
    batch_spread_notes,
    detection_auc_all,
    detection_auc_protocol,
    markdown_table,
    ordered_unique,
    repeat_spread_notes,
    undefended_accuracy,
)
from .sanity import sanity_section

MISSING = "—"
COLUMNS = [
    "row",
    "column",
    "paper",
    "paper_std",
    "ours",
    "ours_std",
    "ci_low",
    "ci_high",
    "delta",
    "n",
    "defense",
    "threat",
    "attack",
    "eps",
    "metric",
    "note",
]


# ------------------------------------------------------------------------------------------- numbers
def row_accuracy(row: Row, undefended: bool = False) -> float:
    """% of the row's images classified correctly after the defense (or by the bare classifier), each image by its
    first purification as the papers classify one: a cell purified k > 1 times (``paper run --eval-repeats``) reads
    as its one-purification cell, and the report's notes give how far the k purifications spread (the matrix
    tables' all-k rule would set a stricter number than the paper's against it)."""
    if undefended:
        return 100 * undefended_accuracy(row)
    return 100 * metrics.accuracy(row["preds"], row["labels"])


def row_anomaly_auc(row: Row, holdout: int) -> float:
    """ROC AUC of the row's per-image projection error, images of class ``holdout`` positive (MimicGAN-2 §5.3)."""
    held = np.asarray(row["labels"]) == holdout
    err = np.asarray(row.get("extra", {}).get("projection_error", []), dtype=float)
    if err.size != held.size:
        return math.nan
    return roc_auc(err[~held], err[held])


def measure_value(run: PaperRun, m, protocol: bool = False) -> tuple[float, int, tuple[int, int]]:
    """(mean over seeds, images, (negatives, positives) summed over seeds) of one
    :class:`~defbench.harness.paper_spec.Measure`; images are the distinct test images the seeds' cells cover (at n
    = the test set's size every seed draws the same images, and counting them once per seed would narrow the
    interval as if they were new ones). A detection AUC sets every clean image against every attacked
    one, as InvGAN's code computes the paper's (:func:`~defbench.reports.common.detection_auc_all`); with
    ``protocol`` it follows the success protocol instead (:func:`~defbench.reports.common.detection_auc_protocol`:
    correctly classified clean images against the successful adversarials made from them). The counts give the
    AUC's interval. Other metrics count (n, n)."""
    attack = preset_attack(m.attack, run.preset) if m.attack is not None else None
    vals, n, neg, pos = [], 0, 0, 0
    seen: set[int] | None = set()  # the test-set indices of the seeds' cells (None: a row without them)
    for s in run.seeds:
        row = run.rows[m.cell(s, attack)]
        k = len(row["labels"])
        seen = seen | set(row["indices"]) if seen is not None and "indices" in row else None
        if m.metric == "auc":
            read = detection_auc_protocol if protocol else detection_auc_all
            v, k0, k1 = read(run.rows[m.cell(s, None)], row)
            vals.append(v)
            neg, pos = neg + k0, pos + k1
        elif m.metric == "anomaly-auc":
            vals.append(row_anomaly_auc(row, m.holdout))
            neg, pos = neg + k, pos + k
        else:
            vals.append(row_accuracy(row, m.undefended))
            neg, pos = neg + k, pos + k
        n += k
    finite = [v for v in vals if not math.isnan(v)]
    if seen is not None and n and len(seen) < n:  # seeds on shared images: count each image once, as n does
        neg, pos = round(neg * len(seen) / n), round(pos * len(seen) / n)
    return (float(np.mean(finite)) if finite else math.nan), (n if seen is None else len(seen)), (neg, pos)


def protocol_note(run: PaperRun, m) -> str:
    """The success protocol's AUC of one detection measure, for its cell's note: value, Hanley–McNeil interval
    (none at AUC 0 or 1) and its (negatives vs positives) counts."""
    v, _, (k0, k1) = measure_value(run, m, protocol=True)
    if math.isnan(v):
        return f"{SUCCESS_PROTOCOL}: n/a ({k0} vs {k1} images)"
    lo, hi = auc_interval(v, k0, k1)
    ci = "" if math.isnan(lo) else f"{lo:.3f}–{hi:.3f}; "
    return f"{SUCCESS_PROTOCOL}: {v:.3f} ({ci}{k0} vs {k1} images)"


def cell_value(run: PaperRun, cell: PaperCell) -> tuple[float | None, int, float | None, tuple[int, int] | None]:
    """(ours, images, std, (negatives, positives)) for a paper cell from the run's store rows; (None, 0, None,
    None) where it is not measured. A pooled cell is the mean (std over its members: GAN replicas, classes) or
    the max (best setting) of its members; its n is the images per member."""
    m = cell.measure
    if m is None:
        return None, 0, None, None
    return pooled_value(m, [measure_value(run, x) for x in m.members])


def pooled_value(m, vals: list[tuple[float, int, tuple[int, int]]]):
    """:func:`cell_value` of a measure from its members' :func:`measure_value` results."""
    if len(vals) == 1:
        return vals[0][0], vals[0][1], None, vals[0][2]
    finite = [v for v, _, _ in vals if not math.isnan(v)]
    if not finite:
        return math.nan, vals[0][1], None, None
    if m.how == "max":
        best = int(np.nanargmax([v for v, _, _ in vals]))
        return vals[best][0], vals[best][1], None, vals[best][2]
    return float(np.mean(finite)), vals[0][1], float(np.std(finite, ddof=1)) if len(finite) > 1 else None, None


def outcomes(run: PaperRun) -> pd.DataFrame:
    """One line per paper cell: paper value (our unit), ours, delta = ours − paper, images used."""
    t = run.table
    lines: list[dict[str, Any]] = []
    for c in t.cells:
        m = c.measure
        vals = [] if m is None else [measure_value(run, x) for x in m.members]  # once: the value and the note
        ours, n, std, counts = (None, 0, None, None) if m is None else pooled_value(m, vals)
        paper = t.paper_value(c)
        delta = None if paper is None or ours is None or math.isnan(ours) else ours - paper
        ci = (None, None)
        if m is not None and len(m.members) == 1 and ours is not None and not math.isnan(ours) and n:
            if m.metric == "accuracy":
                lo, hi = wilson_interval(round(ours / 100 * n), n)  # n: the distinct images of the seeds' cells
                ci = (100 * lo, 100 * hi)
            elif m.metric == "auc" and counts is not None:  # its negatives and positives
                ci = auc_interval(ours, counts[0], counts[1])
        note = c.note or ("" if m is not None else "not run")
        if m is not None and len(m.members) == 1 and m.metric == "auc" and ours is not None:
            note = "; ".join(filter(None, [note, protocol_note(run, m.members[0])]))
        if m is not None and len(m.members) > 1:
            valued = sum(not math.isnan(v) for v, _, _ in vals)
            of = f"{valued} of {len(m.members)}" if valued < len(m.members) else f"{len(m.members)}"
            without = " (the others without a value)" if valued < len(m.members) else ""
            if m.how == "mean":
                pooled = f"mean ± std over {of} variants{without}"
            else:  # the setting that won, named: the paper reports the highest too, and a reader must know which
                best = m.members[int(np.nanargmax([v for v, _, _ in vals]))].defense if valued else "none"
                pooled = f"best of {of} settings{without}: {best}"
            note = f"{note}; {pooled}" if note else pooled
        defense = "" if m is None else m.defense if len(m.members) == 1 else " | ".join(x.defense for x in m.members)
        lines.append(
            {
                "row": c.row,
                "column": c.col,
                "paper": paper,
                "paper_std": t.paper_std_value(c),
                "ours": ours,
                "ours_std": std,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "delta": delta,
                "n": n if m is not None else None,
                "defense": defense,
                "threat": m.threat if m else "",
                "attack": (m.attack.name if m.attack else "clean") if m else "",
                "eps": m.attack.eps if m and m.attack else None,
                "metric": (m.metric if m else t.metric) + (" (bare classifier)" if m and m.undefended else ""),
                "note": note,
            }
        )
    return pd.DataFrame(lines, columns=COLUMNS, dtype=object)


# ------------------------------------------------------------------------------------------- text
def _fmt(v: Any, metric: str, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING if v is None else "n/a"
    digits = 4 if metric == "auc" else 2
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


#: |ours − paper| within this many points (accuracy) or AUC units counts as a match (issue #6's reading)
MATCH_TOLERANCE = {"accuracy": 5.0, "auc": 0.05}


#: the verdict of a cell outside the tolerance that has no interval (a pooled cell, an AUC of 0 or 1)
NO_CI = "no (no CI)"


def _verdict(paper, delta, lo, hi, metric: str) -> str:
    """'yes' within the tolerance (up to float rounding: the paper's value times its scale minus 100·k/n can land a
    hair above it); otherwise 'in CI' where the paper's value lies in our 95% interval, 'no' where it does not, and
    :data:`NO_CI` where there is no interval to test (a pooled cell, an AUC of 0 or 1)."""
    if paper is None or delta is None or pd.isna(paper) or pd.isna(delta):
        return MISSING
    if abs(delta) <= MATCH_TOLERANCE[metric] + 1e-9:
        return "yes"
    if lo is None or pd.isna(lo):
        return NO_CI
    return "in CI" if lo <= paper <= hi else "no"


def is_anomaly_table(t) -> bool:
    """Whether every measured cell of ``t`` is an anomaly AUC (MimicGAN-2 Table 2), not a detection AUC."""
    metrics = {m.metric for c in t.cells if c.measure is not None for m in c.measure.members}
    return metrics == {"anomaly-auc"}


def match_rule(t) -> str:
    """How a paper cell is compared with ours: the delta, the interval's method and the match rule."""
    tol = MATCH_TOLERANCE["auc" if t.metric != "accuracy" else "accuracy"]
    method = (
        "Wilson interval of our accuracy over its n"
        if t.metric == "accuracy"
        else "Hanley–McNeil interval of our AUC, none at AUC 0 or 1 (accuracy cells: Wilson)"
    )
    return (
        f"delta = ours − paper; 95% CI: {method}; match: |delta| <= {tol:g} (yes), else whether the paper's value "
        f"lies in our CI (in CI) or not (no; {NO_CI} where the cell has no interval)."
    )


def preset_warning(preset: str) -> str:
    """The warning a run of another preset than the paper's carries, or ""."""
    if preset == "paper":
        return ""
    return (
        f"⚠ Preset {preset}: smoke-test budgets (the attacks' and defenses' quick settings), not the paper's; the "
        "setting notes below describe the paper preset, and the match column compares a smoke test with the "
        "paper. Run with --preset paper for a comparison."
    )


def delta_note(deltas, metric: str) -> str:
    """The summary line under a paper table: how many cells have a paper value and their mean |delta| (AUCs to 4
    decimals, accuracies to 1); "" with none."""
    deltas = [abs(float(d)) for d in deltas]
    if not deltas:
        return ""
    digits = 4 if metric == "auc" else 1
    return f"{len(deltas)} cells with a paper value; mean |delta| {np.mean(deltas):.{digits}f}."


def n_note(t, n: int, df: pd.DataFrame, subset_threats: list[str]) -> str:
    """What our n images per cell (fewer than the paper's, or the paper's unstated) mean for the comparison: the
    half-width of an accuracy's interval, or how the AUC is read; "" at the paper's n or more."""
    if t.n is not None and n >= t.n:
        return ""
    ns = (sorted({int(v) for v in df["n"].dropna()}, reverse=True) if len(df) else []) or [n]
    ref = f"fewer than the paper's {t.n}" if t.n else "the paper does not state its n"
    per = f"n = {ns[0]} images per cell" + (
        f" ({', '.join(map(str, ns[1:]))} in the {'/'.join(subset_threats)} cells)" if ns[1:] else ""
    )
    if t.metric == "accuracy":
        widths = " / ".join(f"±{binomial_half_width(k):.1f} at n = {k}" for k in ns)
        at_paper = f"; ±{binomial_half_width(t.n):.1f} at the paper's n = {t.n}" if t.n else ""
        return (
            f"{per} ({ref}): the binomial 95% interval of an accuracy has half-width up to {widths} points "
            f"(p = 0.5){at_paper}."
        )
    if is_anomaly_table(t):
        return (
            f"{per} ({ref}). Anomaly AUC: the projection errors of the left-out class's images (positives) against "
            "those of the other classes (negatives), over all n images of a cell."
        )
    return (
        f"{per} ({ref}). Detection AUC as InvGAN's code computes the paper's (plots/plot_ROC.py): every clean image "
        "(negatives) against every attacked image (positives), whether the classifier got the image right or the "
        f"attack succeeded. The note gives the {SUCCESS_PROTOCOL} beside it (defbench's reading, not InvGAN's: the "
        "correctly classified clean images against the successful adversarial examples made from them), with its "
        "interval and counts."
    )


def to_markdown(run: PaperRun, df: pd.DataFrame) -> str:
    t = run.table
    anomaly = is_anomaly_table(t)
    unit = "accuracy in %" if t.metric == "accuracy" else "anomaly ROC AUC" if anomaly else "detection ROC AUC"
    seeds = ", ".join(map(str, run.seeds))
    fewer = "".join(f" ({th} cells: a seeded subset of {k})" for th, k in sorted(run.threat_n.items()))
    names = ordered_unique(str(r["classifier"]) for r in run.rows.values() if r.get("classifier"))
    classifier = f", classifier {', '.join(names)}" if names else ""
    parts = [
        f"### {t.id}: {t.title}",
        "",
        f"Source: {t.source}.",
        "",
        f"Setting: {t.dataset}, preset {run.preset}, n = {run.n} images per cell{fewer} (paper: "
        f"{t.n if t.n else 'not stated'}), batch {min(t.batch_size, run.n)}"
        f"{f' (the spec: {t.batch_size}; n is smaller)' if run.n < t.batch_size else ''}, "
        f"seed{'s' if len(run.seeds) > 1 else ''} "
        f"{seeds}, "
        + (
            f"{t.eval_repeats} purifications per image for the randomized defenses (ours reads each image's "
            "first, as the papers classify one; the notes give the spread of the others)"
            if t.eval_repeats > 1
            else "1 purification per image"
        )
        + ", device "
        f"{run.device}{classifier}; {unit}; {match_rule(t)}",
        "",
    ]
    if preset_warning(run.preset):
        parts += [preset_warning(run.preset), ""]
    body = []
    for r in df.itertuples(index=False):
        metric = "auc" if "auc" in str(r.metric) else "accuracy"
        paper = _fmt(r.paper, metric)
        if r.paper is not None and r.paper_std is not None and not pd.isna(r.paper_std):
            paper += f" ± {_fmt(r.paper_std, metric)}"
        ours = _fmt(r.ours, metric)
        if r.ours_std is not None and not pd.isna(r.ours_std):
            ours += f" ± {_fmt(r.ours_std, metric)}"
        n = MISSING if r.n is None or pd.isna(r.n) else str(int(r.n))
        cd = 3 if metric == "auc" else 1
        ci = MISSING if r.ci_low is None or pd.isna(r.ci_low) else f"{r.ci_low:.{cd}f}–{r.ci_high:.{cd}f}"
        verdict = _verdict(r.paper, r.delta, r.ci_low, r.ci_high, metric)
        body.append(
            [str(r.row), str(r.column), paper, ours, ci, _fmt(r.delta, metric, sign=True), verdict, n, str(r.note)]
        )
    header = ["row", "column", "paper", "ours", "95% CI", "delta", "match", "n", "note"]
    parts += [markdown_table(pd.DataFrame(body, columns=header)), ""]
    note = n_note(t, run.n, df, sorted(run.threat_n))
    parts += [f"- {note}"] if note else []
    summary = delta_note(df["delta"].dropna() if len(df) else [], t.metric)
    parts += [f"- {summary}"] if summary else []
    parts += [f"- {n}" for n in batch_spread_notes(((c.defense, r) for c, r in run.rows.items()), first=True)]
    parts += [f"- {n}" for n in repeat_spread_notes((c.defense, r) for c, r in run.rows.items())]
    parts += [f"- {n}" for n in t.notes] + [""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- figure
def plot(run: PaperRun, df: pd.DataFrame, path: str | Path) -> str | None:
    """Ours (bars or lines) with the paper's values (black markers / dashed) for figure specs."""
    t = run.table
    if not t.figure or not len(df):
        return None
    scale = 100.0 if t.metric == "accuracy" else 1.0
    fig = Figure(figsize=(max(6.0, 1.1 * len(t.rows) + 2), 4))
    ax = fig.subplots()
    get = {(r.row, r.column): r for r in df.itertuples(index=False)}
    colors = [f"C{i}" for i in range(len(t.cols))]
    if t.figure == "lines":
        xs = {c.row: c.x for c in t.cells}
        for j, col in enumerate(t.cols):
            pts = [(xs[r], get[(r, col)]) for r in t.rows if (r, col) in get and xs.get(r) is not None]
            ours = [(x, o.ours) for x, o in pts if o.ours is not None and not pd.isna(o.ours)]
            paper = [(x, o.paper) for x, o in pts if o.paper is not None and not pd.isna(o.paper)]
            if ours:
                ax.plot(*zip(*ours, strict=True), marker="o", color=colors[j], label=f"{col} (ours)")
            if paper:
                ax.plot(*zip(*paper, strict=True), ls="--", marker="s", color=colors[j], label=f"{col} (paper)")
        ax.set_xlabel(t.x_label or "x")
    else:
        width = 0.8 / max(1, len(t.cols))
        for j, col in enumerate(t.cols):
            xs_, ours, paper = [], [], []
            for i, r in enumerate(t.rows):
                o = get.get((r, col))
                x = i - 0.4 + width * (j + 0.5)
                if o is not None and o.ours is not None and not pd.isna(o.ours):
                    xs_.append(x)
                    ours.append(o.ours)
                if o is not None and o.paper is not None and not pd.isna(o.paper):
                    paper.append((x, o.paper))
            ax.bar(xs_, ours, width, color=colors[j], label=col)
            if paper:
                ax.plot(*zip(*paper, strict=True), ls="none", marker="_", markersize=14, mew=2.5, color="black")
        ax.plot([], [], ls="none", marker="_", markersize=14, mew=2.5, color="black", label="paper")
        ax.set_xticks(range(len(t.rows)))
        ax.set_xticklabels(t.rows, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)" if t.metric == "accuracy" else "AUC")
    ax.set_ylim(0, scale * 1.02)
    has_paper = df["paper"].notna().any()
    ax.set_title(
        f"{t.id}: ours (n = {run.n}, preset {run.preset})"
        + (
            " vs paper (black)"
            if has_paper and t.figure != "lines"
            else " vs paper"
            if has_paper
            else "; paper values not in the text"
        ),
        fontsize="medium",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small", ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return str(path)


def write_paper_report(run: PaperRun, out_dir: str | Path) -> str:
    """Write ``<id>.csv``, ``<id>.md`` and (figures) ``<id>.png`` in ``out_dir``; return the Markdown."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = outcomes(run)
    df.insert(0, "table", run.table.id)
    df.assign(preset=run.preset, images_per_cell=run.n, seeds=" ".join(map(str, run.seeds))).to_csv(
        out / f"{run.table.id}.csv", index=False
    )
    sanity = sanity_section(run.rows.values())
    if run.table.eval_repeats > 1:  # the checks are the matrix tables': a cell purified k times by the all-k rule
        sanity[2:2] = [
            f"Read as the matrix tables read a cell purified {run.table.eval_repeats} times: an image counts as "
            "correct only when every purification is, a stricter number than the table's first purification.",
            "",
        ]
    text = to_markdown(run, df) + "\n" + "\n".join(sanity)
    png = plot(run, df, out / f"{run.table.id}.png")
    text += f"\nFiles: `{out / (run.table.id + '.csv')}`" + (f", `{png}`" if png else "") + "\n"
    (out / f"{run.table.id}.md").write_text(text, encoding="utf-8")
    return text


# ------------------------------------------------------------------------------------------- list
def list_markdown(tables: list[PaperTable], width: int = 100) -> str:
    """The catalogue as a table with one status word per table, then each table's reason for its status
    (docs/RESULTS.md holds the evidence), wrapped to ``width`` columns so that it reads in a terminal."""
    body, reasons = [], []
    for t in tables:
        given = sum(c.paper is not None for c in t.cells)
        state, why = status(t.id)
        body.append(
            [
                t.id,
                "yes" if t.runnable else f"no: not yet supported: {t.unsupported}",
                t.dataset,
                f"{given}/{len(t.cells)}",
                state,
                t.ref,
                t.title,
            ]
        )
        if why:
            reasons.append(
                textwrap.fill(f"{t.id} ({state}): {why}", width, subsequent_indent="    ", break_on_hyphens=False)
            )
    runnable = sum(t.runnable for t in tables)
    table = markdown_table(
        pd.DataFrame(body, columns=["table", "runnable", "dataset", "paper values", "status", "source", "title"])
    )
    return (
        table
        + ("\n\nWhy each status (evidence in docs/RESULTS.md):\n\n" + "\n".join(reasons) if reasons else "")
        + f"\n\n{len(tables)} tables, {runnable} runnable; papers in {PAPERS_DIR} (see each spec's source).\n"
        "Run one with: defbench paper run TABLE [--n N] [--preset quick|paper]"
    )
