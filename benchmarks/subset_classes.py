"""How many images of each class a GAN recipe trains on (issue: papers' tables, second pass, item 3).

Item 3 lists a class-balanced sampler among the levers for a prior that samples every class. A sampler can only
undo an imbalance of the training images themselves. This script counts, per class, the images the GAN of a
recipe and seed trains on — the split :func:`defbench.defenses.train_prior.training_split` computes, the one
``train_gan`` uses (a test pins the two together) — and the weight a class-balanced sampler would give each class
relative to uniform sampling (mean count / class count). Nothing is trained and no model is read.

    python benchmarks/subset_classes.py --dataset fmnist --seeds 0 1 2 3 --fractions 1.0 0.8 0.8 0.8
"""

from __future__ import annotations

import argparse
import sys

import torch
from _common import command_line, data_root, dataset_name, markdown, write_table

from defbench.datasets import class_names
from defbench.defenses.train_prior import gan_recipe, training_split
from defbench.harness.data import load_dataset


def class_counts(labels: torch.Tensor, indices: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Images per class among ``labels[indices]``."""
    return torch.bincount(labels[indices], minlength=classes)


def balanced_weights(counts: torch.Tensor) -> torch.Tensor:
    """The factor by which a class-balanced sampler changes each class's share of the batches: mean / count."""
    return counts.float().mean() / counts.float()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=dataset_name, default="fmnist")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="training seeds")
    ap.add_argument(
        "--fractions", type=float, nargs="+", default=None, help="subset fraction per seed (default 1.0 for all)"
    )
    ap.add_argument("--out", default="benchmarks/results/subset_classes.md")
    args = ap.parse_args(argv)
    fractions = args.fractions or [1.0] * len(args.seeds)
    if len(fractions) != len(args.seeds):
        ap.error(f"--fractions needs one value per seed ({len(args.seeds)}); got {len(fractions)}")
    train = load_dataset(args.dataset, "train", root=data_root())
    names = class_names(args.dataset)
    columns, weights = [], []
    for seed, fraction in zip(args.seeds, fractions, strict=True):
        recipe = gan_recipe(args.dataset, args.preset, subset_fraction=fraction)
        _, subset = training_split(len(train), recipe, seed)
        counts = class_counts(train.labels, subset)
        columns.append((seed, fraction, counts))
        weights.append(balanced_weights(counts))
    body = []
    for c in range(10):
        row = [f"{c} {names[c]}"]
        for (_, _, counts), w in zip(columns, weights, strict=True):
            row.append(f"{int(counts[c])} ({100 * float(counts[c]) / float(counts.sum()):.2f}%) ×{float(w[c]):.3f}")
        body.append(row)
    header = ["class"] + [f"seed {s}, fraction {f:g}: images (share) × balanced weight" for s, f, _ in columns]
    lines = [
        f"Command: `{command_line(argv)}` — CPU; the {args.dataset} training split ({len(train)} images), "
        f"the {args.preset} preset's validation slice held out as `train_gan` holds it.",
        "",
    ]
    lines += markdown(body, header, ["left"] + ["right"] * len(columns))
    lines.append("")
    for (seed, fraction, counts), w in zip(columns, weights, strict=True):
        lo, hi = int(counts.argmin()), int(counts.argmax())
        lines.append(
            f"- seed {seed}, fraction {fraction:g}: {int(counts.sum())} images; smallest class {names[lo]} "
            f"{100 * float(counts[lo]) / float(counts.sum()):.2f}%, largest {names[hi]} "
            f"{100 * float(counts[hi]) / float(counts.sum()):.2f}%; a balanced sampler changes a class's share by "
            f"×{float(w.min()):.3f} to ×{float(w.max()):.3f}."
        )
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
