"""Defenses compared on the same images: paired counts and an exact McNemar test between the cells of a store.

Two accuracies with overlapping Wilson intervals may still differ, and two that look apart may not: cells of one
run are measured on the same test images, so the question is how many images one defense gets right that the
other gets wrong. For every pair of defenses under one (attack, threat) of the store, the table gives both right,
only the first, only the second, both wrong, and the exact two-sided McNemar p-value (a binomial test of the
discordant images at 1/2). An adaptive attack (BPDA) makes each defense's adversarials against that defense, so a
pair is the same clean image attacked twice, not one input purified twice.

    python benchmarks/paired_cells.py --store runs/paper/mnist-paper-n100-b100 --attack PGD --threat bpda \\
        --out benchmarks/results/paired_ride_table2_mnist.md
"""

from __future__ import annotations

import argparse
import itertools
import sys

from _common import command_line, emit, markdown

from defbench import DefbenchError
from defbench.harness.store import Store
from defbench.metrics import mcnemar_p, paired_counts


def correct_by_image(row: dict) -> dict[int, bool]:
    return {int(i): int(p) == int(y) for i, p, y in zip(row["indices"], row["preds"], row["labels"])}


def pairs(rows: list[dict]) -> list[list[object]]:
    """One table row per pair of cells (in the order given), on the images both cells hold."""
    out = []
    for a, b in itertools.combinations(rows, 2):
        ca, cb = correct_by_image(a), correct_by_image(b)
        common = sorted(set(ca) & set(cb))
        if not common:
            raise DefbenchError(f"cells {a['defense']} and {b['defense']} share no test image")
        both, only_a, only_b, neither = paired_counts([ca[i] for i in common], [cb[i] for i in common])
        out.append(
            [
                f"{a['defense']} vs {b['defense']}",
                len(common),
                f"{both + only_a} / {both + only_b}",
                both,
                only_a,
                only_b,
                neither,
                f"{mcnemar_p(only_a, only_b):.3g}",
            ]
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a run's output dir (its defbench.sqlite)")
    ap.add_argument("--attack", default="clean", help="attack label as stored (PGD, FGSM, ...) or clean")
    ap.add_argument("--threat", default="none", help="graybox | bpda | reparam | none (clean)")
    ap.add_argument("--defenses", nargs="*", help="defenses to pair, in this order (default: all in the store)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the Markdown table here too")
    args = ap.parse_args(argv)
    store = Store(args.store)
    try:
        rows = [
            r
            for r in store.rows(seed=args.seed)
            if (r["attack_config"].get("label") or r["attack"]) == args.attack
            and (r["threat"] == args.threat or (args.threat == "bpda" and r["defense"] == "none"))
        ]
    finally:
        store.close()
    if args.defenses:
        by = {r["defense"]: r for r in rows}
        missing = [d for d in args.defenses if d not in by]
        if missing:
            raise SystemExit(f"no {args.attack}/{args.threat} cell of {', '.join(missing)} in {args.store}")
        rows = [by[d] for d in args.defenses]
    if len(rows) < 2:
        raise SystemExit(f"fewer than two {args.attack}/{args.threat} cells in {args.store}")
    header = ["pair (A vs B)", "images", "right: A / B", "both right", "only A", "only B", "both wrong", "McNemar p"]
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Cells: attack {args.attack}, threat {args.threat}, seed {args.seed} (the undefended cell of a BPDA "
        "run is its gray-box cell: BPDA through no defense is the attack on the classifier).",
        "",
        *markdown(pairs(rows), header, ["left"] + ["right"] * (len(header) - 1)),
    ]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
