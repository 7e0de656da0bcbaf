"""Paper tables with two classifiers: the zoo's and another one (papers' second pass).

The InvGAN and MimicGAN papers built their attacks with cleverhans and do not describe their Fashion-MNIST
classifiers in the text (MimicGAN: "a CNN classifier that achieves 91.50%"; InvGAN: none; InvGAN's code, which the
paper names, trains Defense-GAN's Model A). The classifier is therefore one of each table's unstated variables, and
InvGAN's detection score ‖Φ(x) − Φ(x_proj)‖ reads its penultimate layer Φ. This script changes that one variable
for whole tables: it runs each table (default InvGAN's Tables 2 and 3 on Fashion-MNIST, which read the same cells)
through ``defbench paper run``'s runner twice, into one store, on the same seeded images, GAN, encoder, defenses
and attacks: once with the zoo's paper-preset classifier, once with the ``--other`` one, trained by its recipe
into ``$DEFBENCH_HOME/scratch`` (``benchmarks/classifier_swap.py``): cleverhans' tutorial CNN (``make_basic_cnn``)
or Model A (``cnn-defensegan-a``). The attacks differentiate the classifier at hand, so every adversarial image is
that classifier's own. Both runs' reports are written in full beside the store; the Markdown file sets paper,
ours with each classifier and the change side by side, with the exact McNemar p of accuracy cells (paired by
image). MNIST's tables (``--tables invgan-table2-mnist invgan-table3-mnist``) run the same way on MNIST's zoo, the
second classifier trained on MNIST by the same recipe.

    python benchmarks/table_classifier_swap.py --n 100 --n-threat bpda=20 [--other model-a]

The two runs can go in parallel on two cores (the store takes several processes): ``--only zoo`` and ``--only
other`` each compute one classifier's cells; the plain command then reads both from the store.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from _common import accuracy_cell, auc_cell, command_line, data_root, markdown, write_table
from classifier_swap import OTHER_TITLES, OTHERS, add_other_args, chosen, epoch_accuracies, scratch_classifier

from defbench.cli.options import parse_threat_n
from defbench.datasets import home_dir
from defbench.harness.paper_spec import PaperRun, preset_attack
from defbench.harness.papers import TABLES, run_table
from defbench.metrics import correct, mcnemar_p, paired_counts
from defbench.reports.common import correct_mask
from defbench.reports.paper import cell_value, outcomes, write_paper_report


def image_correct(run: PaperRun, cell) -> np.ndarray | None:
    """Per-image correctness behind an accuracy cell of one measure (the seeds' images in order), as the report
    counts it (a defended cell: every repeat right; a bare-classifier cell: its own predictions); None for other
    cells (AUCs, pooled variants, not measured)."""
    m = cell.measure
    if m is None or len(m.members) != 1 or m.metric != "accuracy":
        return None
    attack = preset_attack(m.attack, run.preset) if m.attack is not None else None
    parts = []
    for s in run.seeds:
        row = run.rows[m.cell(s, attack)]
        parts.append(correct(row["preds_undefended"], row["labels"]) if m.undefended else correct_mask(row))
    return np.concatenate(parts)


def ours_cell(run: PaperRun, cell) -> str:
    """Ours for one paper cell as the benchmarks print it: accuracy or detection AUC (every clean image against
    every attacked one, as the paper reports read it) with its 95% interval
    (:func:`_common.accuracy_cell`, :func:`_common.auc_cell`); a pooled cell's mean alone; "n/a" without a value,
    "—" where not measured."""
    ours, n, _, counts = cell_value(run, cell)
    if ours is None:
        return "—"
    if math.isnan(ours):
        return "n/a"
    m = cell.measure
    if len(m.members) > 1 or m.metric not in ("accuracy", "auc"):
        return f"{ours:.0f}" if m.metric == "accuracy" else f"{ours:.3f}"
    return accuracy_cell(round(ours / 100 * n), n) if m.metric == "accuracy" else auc_cell(ours, *counts)


def side_by_side(zoo: PaperRun, other: PaperRun, title: str = "other") -> list[list[str]]:
    """One line per paper cell: paper, ours with each classifier (95% interval), the change and, for an accuracy
    cell, (images only the other classifier's cell gets right / only the zoo's, exact McNemar p), images, the
    note (each run's, named by classifier, where they differ: a detection cell's success-protocol AUC)."""
    a, b = outcomes(zoo), outcomes(other)
    lines = []
    for cell, ra, rb in zip(zoo.table.cells, a.to_dict("records"), b.to_dict("records"), strict=True):
        metric = zoo.table.metric if cell.measure is None else cell.measure.metric
        change = "—"
        if ra["ours"] is not None and rb["ours"] is not None and not math.isnan(ra["ours"] - rb["ours"]):
            change = f"{rb['ours'] - ra['ours']:+.0f}" if metric == "accuracy" else f"{rb['ours'] - ra['ours']:+.3f}"
        ca, cb = image_correct(zoo, cell), image_correct(other, cell)
        if ca is not None and cb is not None and len(ca) == len(cb):
            _, only_zoo, only_other, _ = paired_counts(ca, cb)
            change += f" ({only_other} / {only_zoo}, p = {mcnemar_p(only_other, only_zoo):.2g})"
        paper = ra["paper"]
        lines.append(
            [
                cell.row,
                cell.col,
                "—" if paper is None else (f"{paper:.1f}" if metric == "accuracy" else f"{paper:.3f}"),
                ours_cell(zoo, cell),
                ours_cell(other, cell),
                change,
                str(ra["n"] or "—"),
                ra["note"] if ra["note"] == rb["note"] else f"zoo: {ra['note']}; {title}: {rb['note']}",
            ]
        )
    return lines


#: the datasets the second classifiers are defined for, as captions name them
DATASET_NAMES = {"fmnist": "Fashion-MNIST", "mnist": "MNIST"}


def swap_dataset(tables: list[str]) -> str:
    """The one dataset of ``tables`` (Fashion-MNIST or MNIST, where the second classifiers are defined); a
    SystemExit naming the first table that is unknown, of another dataset or of another one than the rest."""
    first = None
    for tid in tables:
        d = TABLES[tid].dataset if tid in TABLES else None
        if d not in DATASET_NAMES:
            raise SystemExit(f"{tid!r} is not a Fashion-MNIST or MNIST table of 'defbench paper list'")
        if first is not None and d != first:
            raise SystemExit(f"{tid!r} is a {DATASET_NAMES[d]} table, the first is {DATASET_NAMES[first]}: one dataset")
        first = d
    return first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tables",
        nargs="+",
        default=["invgan-table2-fmnist", "invgan-table3-fmnist"],
        help="Fashion-MNIST or MNIST tables of 'defbench paper list', all of one dataset",
    )
    ap.add_argument("--n", type=int, default=100, help="images per cell")
    ap.add_argument("--n-threat", action="append", default=[], metavar="THREAT=N", help="e.g. bpda=20")
    ap.add_argument("--preset", default="paper", help="paper | quick (smoke budgets)")
    add_other_args(ap)
    ap.add_argument("--store", default=None, help="store dir (default $DEFBENCH_HOME/scratch/table-swap)")
    ap.add_argument(
        "--threats",
        nargs="+",
        metavar="THREAT",
        help="measure only these threat models' cells (e.g. graybox reparam: no BPDA); the others print —",
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/table_classifier_swap.md", help="Markdown file")
    args = ap.parse_args(argv)
    dataset = swap_dataset(args.tables)
    root = data_root()
    store = Path(args.store or home_dir() / "scratch" / "table-swap")
    t0 = time.time()
    other, metrics = scratch_classifier(OTHERS[args.other], args.train_seed, not args.no_progress, dataset=dataset)
    common = dict(
        n=args.n,
        preset=args.preset,
        out=str(store),
        data_root=root,
        progress=not args.no_progress,
        threat_n=parse_threat_n(args.n_threat),
    )
    classifiers = {"zoo": "zoo", args.other: other}
    labels = chosen(args)
    tables = {t: TABLES[t].only_threats(args.threats) for t in args.tables}
    runs = {t: {c: run_table(tables[t], classifier=classifiers[c], **common) for c in labels} for t in args.tables}
    for pair in runs.values():
        for label, run in pair.items():
            write_paper_report(run, store / label)
    if args.only:
        print(f"{labels[0]}: cells in {store}; run without --only to set both classifiers side by side")
        return 0
    first = runs[args.tables[0]]
    names = {label: next(iter({r["classifier"] for r in run.rows.values()})) for label, run in first.items()}
    computed = sum(r.computed for pair in runs.values() for r in pair.values())
    reused = sum(r.reused for pair in runs.values() for r in pair.values())
    history = epoch_accuracies(metrics)
    recipe, title = OTHERS[args.other], OTHER_TITLES[args.other]
    header = ["row", "column", "paper", "ours: zoo classifier", f"ours: {title}", "change", "n", "note"]
    lines = [
        f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s), {time.time() - t0:.0f} s "
        f"({computed} cells computed, {reused} reused from {store}). Preset {args.preset}, {args.n} seeded "
        f"{DATASET_NAMES[dataset]} test images per "
        f"cell (fewer where the table says n). Classifiers: the zoo's ({names['zoo']}) and the {title} "
        f"({recipe.arch}, {names[args.other]}; Adam at a constant {recipe.lr:g}, batch "
        f"{recipe.batch_size}, {recipe.epochs} epochs, seed {args.train_seed}; test accuracy "
        f"per epoch: {history}). Same images, GAN, encoder, defenses and attack settings; each classifier's attacks "
        f"differentiate that classifier. Accuracy % (Wilson 95%), AUC of every clean against every attacked image, "
        "as InvGAN's code computes it (Hanley–McNeil 95%); "
        f"change = {title} − zoo classifier, for accuracy cells (images only the {title}'s cell gets "
        "right / only the zoo's, exact McNemar p). Each run's full report: "
        f"{store / 'zoo'}, {store / args.other}.",
    ]
    for tid, pair in runs.items():
        lines += ["", f"{tid}:", "", *markdown(side_by_side(pair["zoo"], pair[args.other], title), header)]
    return write_table(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
