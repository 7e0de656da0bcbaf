"""MimicGAN-2 Table 2 class by class: the anomaly AUC of each left-out digit for the f̂ = I baseline (the
paper's "PGD") and MimicGAN, from the cells of a ``defbench paper run mimicgan-table2`` store.

The table gives only the mean ± std over the ten classes; this script shows where the two rows differ. Per
left-out class K (the GAN ``gan-mnist-<preset>-noK``): the images of class K among the cell's test images
(positives) and the rest, each row's ROC AUC of the projection error ‖x − G(z*)‖₂ with its Hanley–McNeil 95%
interval, and each row's median projection error of positives and negatives. Both rows of a class purify
the same seeded images with the same GAN, so their AUCs are paired.

    python benchmarks/anomaly_classes.py --store runs/paper/mnist-paper-n100-b1000 \
        --out benchmarks/results/anomaly_classes.md
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
from _common import auc_cell, command_line, emit, markdown

from defbench.harness.store import Store
from defbench.metrics import roc_auc

GAN_TAG = re.compile(r"gan=no(\d)")


def row_label(defense: str) -> str:
    return "f̂ = I" if "surrogate=identity" in defense else "MimicGAN"


def class_stats(rows: list[dict]) -> list[tuple]:
    """Per (left-out class, row) of the clean cells of leave-one-class-out GANs: (class, row label, positives,
    negatives, AUC, median error of the positives, of the negatives)."""
    out = []
    for r in rows:
        k = int(GAN_TAG.search(r["defense"]).group(1))
        held = np.asarray(r["labels"]) == k
        err = np.asarray(r["extra"]["projection_error"], dtype=float)
        auc = roc_auc(err[~held], err[held])
        n_pos, n_neg = int(held.sum()), int((~held).sum())
        out.append((k, row_label(r["defense"]), n_pos, n_neg, auc, np.median(err[held]), np.median(err[~held])))
    return sorted(out, key=lambda s: s[:2])


def table_rows(stats: list[tuple]) -> list[list[object]]:
    """The Markdown table's lines of :func:`class_stats`."""
    return [
        [k, label, pos, neg, auc_cell(auc, neg, pos), f"{med_pos:.2f}", f"{med_neg:.2f}"]
        for k, label, pos, neg, auc, med_pos, med_neg in stats
    ]


def summary(stats: list[tuple]) -> list[str]:
    """Per row: mean ± std (ddof 1) of the class AUCs, as the paper's table gives them; with both rows on the
    same classes, the paired Wilcoxon signed-rank test of their class AUCs (two-sided)."""
    from scipy.stats import wilcoxon

    aucs: dict[str, dict[int, float]] = {}
    for k, label, _, _, auc, *_ in stats:
        aucs.setdefault(label, {})[k] = auc
    out = [
        f"{label}: mean {np.mean(list(v.values())):.3f} ± {np.std(list(v.values()), ddof=1):.3f} over {len(v)} classes"
        if len(v) > 1
        else f"{label}: mean {next(iter(v.values())):.3f} over 1 class"  # no spread from one class
        for label, v in aucs.items()
    ]
    if len(aucs) == 2:
        (la, a), (lb, b) = aucs.items()
        common = sorted(set(a) & set(b))
        if len(common) >= 2:
            p = wilcoxon([a[k] for k in common], [b[k] for k in common]).pvalue
            wins = sum(b[k] > a[k] for k in common)
            out.append(f"{lb} above {la} on {wins} of {len(common)} classes; paired Wilcoxon signed-rank p = {p:.3g}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="the mimicgan-table2 run's output dir (its defbench.sqlite)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    store = Store(args.store)
    try:
        rows = [r for r in store.rows(seed=args.seed) if GAN_TAG.search(r["defense"]) and r["threat"] == "none"]
    finally:
        store.close()
    if not rows:
        raise SystemExit(f"no cell of a leave-one-class-out GAN (gan=noK) in {args.store}")
    header = ["left out", "row", "positives", "negatives", "AUC (95%)", "median error: left-out", "others"]
    lines = [
        f"Command: `{command_line(argv)}`  ",
        "Projection error ‖x − G(z*)‖₂ per image (MimicGAN-2 Eq. 5); AUC with the left-out class positive, "
        "Hanley–McNeil interval.",
        "",
        *markdown(table_rows(stats := class_stats(rows)), header, ["right", "left"] + ["right"] * 5),
        "",
        *[f"- {line}" for line in summary(stats)],
    ]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
