"""RIDE's readings, one at a time (issue "RIDE that works as published").

On the same seeded MNIST test images, for each RIDE variant: accuracy of the classifier on the purification
of the clean images and of their gray-box PGD adversarials (torchattacks, ε = 0.3, 40 steps, computed once on
the bare classifier), and the mean ℓ2 distance of each purification to the clean image. A variant is a
label of `defbench` defense options (``ride[alpha=1,nms=false]``), so every row can be rerun with
``defbench matrix --defense 'ride[...]'``. Rows that would differ from the reference in one option only are
the ablation; the first row is the bare classifier.

    python benchmarks/ride_readings.py --n 50 --variants 'ride' 'ride[iterations=400,split_iterations=true]' ...

Writes a Markdown table (``--out``) and prints it. Wall times are per purified image on this machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import command_line, write_table

from defbench.attacks.registry import get_attack
from defbench.defenses.registry import build_defense
from defbench.harness.data import load_dataset
from defbench.harness.models import get_classifier
from defbench.reports.common import wilson_interval


def _acc(clf, x, y) -> float:
    with torch.no_grad():
        return float((clf(x).argmax(1) == y).float().mean())


def _cell(p: float, n: int) -> str:
    lo, hi = wilson_interval(round(p * n), n)
    return f"{100 * p:.0f} ({100 * lo:.0f}–{100 * hi:.0f})"


def _write(rows, args, argv, n: int) -> None:
    lines = [
        f"Command: `{command_line(argv)}`; {n} {args.dataset} test images (seed {args.seed}), the {args.preset} "
        f"classifier, gray-box PGD ε = {args.eps} ({args.steps} steps, torchattacks) computed once on the bare "
        "classifier. Accuracy % with its Wilson 95% interval; ℓ2 = mean distance of the purified image to the "
        "clean one (for the classifier-alone row: of the input).",
        "",
        "| variant | clean acc % | PGD acc % | ℓ2 to clean (clean in) | ℓ2 to clean (PGD in) | s / image |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, ac, aa, dc, da, sec in rows:
        lines.append(f"| {label} | {_cell(ac, n)} | {_cell(aa, n)} | {float(dc):.2f} | {float(da):.2f} | {sec:.2f} |")
    write_table(lines, args.out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["ride"], help="RIDE variant labels, e.g. 'ride[alpha=1]'")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--preset", default="quick", help="classifier preset")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/ride_readings.md")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    test = load_dataset(args.dataset, "test")
    x, y = test.get(test.eval_indices(args.n, args.seed))
    clf, _ = get_classifier(args.dataset, args.preset)
    atk = get_attack("pgd", args.dataset, args.eps, steps=args.steps)
    x_adv = atk(clf, x, y)
    rows = [
        ("classifier alone", _acc(clf, x, y), _acc(clf, x_adv, y), 0.0, (x_adv - x).flatten(1).norm(dim=1).mean(), 0.0)
    ]
    for label in args.variants:
        d = build_defense(label, args.dataset)
        t0 = time.time()
        # one batch: every image is purified by its own network from its own seeded draws, so this equals
        # two separate calls
        out_c, out_a = d.purify(torch.cat([x, x_adv]), seed=args.seed).split(len(x))
        sec = (time.time() - t0) / (2 * len(x))
        dist = lambda o: float((o - x).flatten(1).norm(dim=1).mean())  # noqa: E731
        rows.append((f"`{label}`", _acc(clf, out_c, y), _acc(clf, out_a, y), dist(out_c), dist(out_a), sec))
        _write(rows, args, argv, len(y))  # after every variant, so a long sweep leaves a partial table
        print(f"{label}: clean {rows[-1][1]:.3f} pgd {rows[-1][2]:.3f} ({sec:.2f} s/image)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
