"""What a stored cell predicted, class by class: how many images of each true class it got right and which class
it read them as most often.

An accuracy says how many images a defense keeps; it does not say whether the rest fail at random or collapse
onto one class (a blurred estimate read as "cat", a prior that never generates trousers). For every cell of a
store under one (attack, threat), the table gives per true class the images, the right ones, and the most
frequent prediction with its count; the last row ("all") counts every image and names the class predicted most.
Everything comes from the cell's stored per-image predictions and labels, so a count quoted from it has this
command beside it. ``--errors`` adds the median of the stored ℓ2 distances ‖x − x̂‖₂ between each input and the
defense's output (the cell's projection errors), per class and over all images.

    python benchmarks/cell_classes.py --store /work/ridecifar --defenses ride --out benchmarks/results/x.md
    python benchmarks/cell_classes.py --store DIR --defenses invgan defensegan --errors
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from _common import command_line, emit, markdown
from paired_cells import cell_arguments, cell_name, one_each, pick_defenses, select

from defbench.datasets import CLASS_NAMES


def _name(dataset: str, label: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return names[label] if names and 0 <= label < len(names) else str(label)


def _most(preds: list[int], dataset: str) -> str:
    (label, count), *_ = Counter(preds).most_common(1)
    return f"{_name(dataset, label)} ({count})"


def _median(errors: list[float]) -> str:
    return f"{statistics.median(errors):.2f}" if errors else "—"


def class_rows(row: dict, errors: bool = False) -> list[list[object]]:
    """One row per true class present in the cell (in label order), then "all": class, images, right, most
    frequent prediction (its count), and with ``errors`` the median stored projection error ("—" for a cell that
    stores none). Ties go to the prediction met first among the cell's images."""
    ds = row.get("dataset", "")
    dist = (row.get("extra") or {}).get("projection_error") or []
    by: dict[int, list[int]] = {}
    err: dict[int, list[float]] = {}
    for k, (p, y) in enumerate(zip(row["preds"], row["labels"], strict=True)):
        by.setdefault(int(y), []).append(int(p))
        err.setdefault(int(y), []).extend(dist[k : k + 1])
    out = [[_name(ds, y), len(by[y]), sum(p == y for p in by[y]), _most(by[y], ds)] for y in sorted(by)]
    every = [int(p) for p in row["preds"]]
    out.append(["all", len(every), sum(r[2] for r in out), _most(every, ds)])
    if errors:
        for r, y in zip(out, [*sorted(by), None], strict=True):
            r.append(_median(list(dist) if y is None else err[y]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cell_arguments(ap, "show")
    ap.add_argument("--errors", action="store_true", help="add the median projection error ‖x − x̂‖₂ per class")
    ap.add_argument("--out", help="write the Markdown tables here too")
    args = ap.parse_args(argv)
    rows = one_each(pick_defenses(select(args.store, args.attack, args.threat, args.seed), args), args.attack)
    if not rows:
        raise SystemExit(f"no {args.attack}/{args.threat} cell in {args.store}")
    lines = [
        f"Command: `{command_line(argv)}`  ",
        f"Cells: attack {args.attack}, threat {args.threat}, seed {args.seed}; per true class: images, right, and "
        "the class the cell predicted most often (its count).",
    ]
    header = ["true class", "images", "right", "predicted most (count)"] + ["median ‖x − x̂‖₂"] * args.errors
    align = ["left", "right", "right", "left"] + ["right"] * args.errors
    for r in rows:
        lines += ["", f"**{cell_name(r)}**", "", *markdown(class_rows(r, args.errors), header, align)]
    return emit(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
