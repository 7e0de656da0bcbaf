"""MimicGAN-1 Fig. 4(b)'s Binary corruption: what each reading of "a threshold set at the 50th percentile value"
leaves of the images, and what the classifier makes of it.

Per reading, on the seeded evaluation images of the matrix (``eval_indices(n, seed)``): the classifier's accuracy on
the binarised images (the figure's "Observed" column), the share of images the reading turns into one flat colour
(no information left for any purifier), the classifier's accuracy on the flat and on the other images, and the most
any purifier can get right among the flat ones: flat images of one colour are the same input whatever they were, so
one answer (one class) serves all of that colour, right at most for the largest class among them (a reading that
leaves some images all white and others all black gets one answer per colour).

    python benchmarks/binarize_readings.py --n 500
"""

from __future__ import annotations

import argparse
import sys

import torch
from _common import accuracy_cell, command_line, data_root, markdown, write_table
from classifier_swap import add_classifier_arg, fmnist_classifier

from defbench.attacks.registry import get_attack
from defbench.harness.data import load_dataset


def readings(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Binarisations of ``x`` (N, C, H, W) in [0, 1]: the corruption's two ``ties`` options (threshold at each
    image's own median) and three other thresholds a reader could take from the sentence; each as 0s and 1s on
    [0, 1] pixels and, as the paper's code would write them into its [-1, 1] arrays, on [-1, 1] pixels (mid-grey
    and white on [0, 1]: ``range=signed``; a threshold picks the same pixels on either range)."""
    flat = x.flatten(1)
    fg = torch.stack([r[r > 0].quantile(0.5) if (r > 0).any() else r.new_zeros(()) for r in flat])
    ties = {t: get_attack("binarize", "fmnist", ties=t).corrupt(x) for t in ("white", "black")}
    unit = {
        "per image median, ties white (`binarize`, the default)": ties["white"],
        "per image median, ties black (`binarize[ties=black]`)": ties["black"],
        "per image median of the non-zero pixels, x > t": (x > fg.view(-1, 1, 1, 1)).to(x.dtype),
        "median of all pixels of all images, x > t": (x > flat.flatten().quantile(0.5)).to(x.dtype),
        "the middle of the range, x > 0.5": (x > 0.5).to(x.dtype),
    }
    names = {
        "per image median, ties white (`binarize`, the default)": "per image median, ties white "
        "(`binarize[range=signed]`)",
        "per image median, ties black (`binarize[ties=black]`)": "per image median, ties black "
        "(`binarize[range=signed,ties=black]`)",
    }
    signed = {f"{names.get(name, name)}; 0s and 1s on [-1, 1]": 0.5 + 0.5 * xb for name, xb in unit.items()}
    return {**unit, **signed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="evaluation images (the figure's 500)")
    ap.add_argument("--seed", type=int, default=0)
    add_classifier_arg(ap, "reads the binarised images")
    ap.add_argument("--out", default="benchmarks/results/binarize_readings.md")
    args = ap.parse_args(argv)
    root = data_root()
    data = load_dataset("fmnist", "test", root=root)
    x, y = data.get(data.eval_indices(args.n, args.seed))
    clf, who = fmnist_classifier(args.classifier, root)
    body = []
    for name, xb in readings(x).items():
        with torch.no_grad():
            right = clf(xb).argmax(1) == y
        flat_img = xb.flatten(1).amin(1) == xb.flatten(1).amax(1)
        parts = [accuracy_cell(int(right[m].sum()), int(m.sum()), 1) if m.any() else "—" for m in (flat_img, ~flat_img)]
        best = f"{100 * best_per_colour(xb[flat_img], y[flat_img]) / flat_img.sum():.1f}" if flat_img.any() else "—"
        share = f"{100 * flat_img.float().mean():.1f}"
        body.append([name, accuracy_cell(int(right.sum()), len(y), 1), share, parts[0], best, parts[1]])
    lines = [
        f"Command: `{command_line(argv)}` — CPU, torch threads {torch.get_num_threads()}; the {len(y)} seeded "
        f"Fashion-MNIST test images of seed {args.seed} (mimicgan-fig4b's), {who}. Paper (MimicGAN-1 Fig. 4(b), "
        "Binary): Observed 37.0, PGD 25.5, MimicGAN 50.4.",
        "",
    ]
    header = [
        "reading",
        "Observed: accuracy % (95%)",
        "flat images %",
        "accuracy on the flat ones",
        "the best one answer per colour gets there %",
        "accuracy on the others",
    ]
    lines += markdown(body, header, ["left"] + ["right"] * 5)
    return write_table(lines, args.out)


def best_per_colour(flat: torch.Tensor, y: torch.Tensor) -> int:
    """The most flat images any purifier gets right: per colour (each image is one value throughout), the count of
    its largest class, summed over the colours."""
    colour = flat.flatten(1)[:, 0]
    return sum(int(y[colour == c].bincount().max()) for c in colour.unique())


if __name__ == "__main__":
    sys.exit(main())
