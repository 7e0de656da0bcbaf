"""What a stored cell predicted, class by class: how many images of each true class it got right and which class
it read them as most often.

An accuracy says how many images a defense keeps; it does not say whether the rest fail at random or collapse
onto one class (a blurred estimate read as "cat", a prior that never generates trousers). For every cell of a
store under one (attack, threat), the table gives per true class the images, the right ones, and the most
frequent prediction with its count; the last row ("all") counts every image and names the class predicted most.
Everything comes from the cell's stored per-image predictions and labels, so a count quoted from it has this
command beside it.

    python benchmarks/cell_classes.py --store /work/ridecifar --defenses ride --out benchmarks/results/x.md
"""

from __future__ import annotations

import argparse
from collections import Counter

from _common import command_line, emit, markdown
from paired_cells import cell_arguments, cell_name, pick_defenses, select

from defbench.datasets import CLASS_NAMES


def _name(dataset: str, label: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return names[label] if names and 0 <= label < len(names) else str(label)


def _most(preds: list[int], dataset: str) -> str:
    (label, count), *_ = Counter(preds).most_common(1)
    return f"{_name(dataset, label)} ({count})"


def class_rows(row: dict) -> list[list[object]]:
    """One row per true class present in the cell (in label order), then "all": class, images, right, most
    frequent prediction (its count). Ties go to the prediction met first among the cell's images."""
    ds = row.get("dataset", "")
    by: dict[int, list[int]] = {}
    for p, y in zip(row["preds"], row["labels"]):
        by.setdefault(int(y), []).append(int(p))
    out = [[_name(ds, y), len(by[y]), sum(p == y for p in by[y]), _most(by[y], ds)] for y in sorted(by)]
    every = [int(p) for p in row["preds"]]
    return out + [["all", len(every), sum(r[2] for r in out), _most(every, ds)]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cell_arguments(ap, "show")
    ap.add_argument("--out", help="write the Markdown tables here too")
    args = ap.parse_args(argv)
    rows = pick_defenses(select(args.store, args.attack, args.threat, args.seed), args)
    if not rows:
        raise SystemExit(f"no {args.attack}/{args.threat} cell in {args.store}")
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Cells: attack {args.attack}, threat {args.threat}, seed {args.seed}; per true class: images, right, and "
        "the class the cell predicted most often (its count).",
    ]
    header = ["true class", "images", "right", "predicted most (count)"]
    for r in rows:
        lines += ["", f"**{cell_name(r)}**", "", *markdown(class_rows(r), header, ["left", "right", "right", "left"])]
    return emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
