"""How the classifier that measures a prior's class coverage labels its samples, and real images (issue: papers'
tables, second pass, item 3).

The coverage target ("every class among 2,000 samples at >= 5%") counts each sample of G under the class the
classifier's argmax gives it. A sample the classifier reads as 45% pullover and 55% coat counts as a coat. This
script sets that reading beside two others, per class:

* on G's samples (``--draws`` seeded draws of 2,000, the trainer's draw first): the argmax share (the target's
  reading), the mean softmax mass (each sample spread over the classes by its probabilities), and the mean
  confidence (top probability) of the samples the argmax gives the class;
* on the real test images (exactly 10% per class): the classifier's argmax share and mean softmax mass, i.e. how
  far the same classifier's labelling moves a class's share when the truth is known.

Nothing is trained: the zoo's models are read (``train_missing=False``). ``--classifier-preset`` labels with another
preset's classifier than the GAN's.

    python benchmarks/class_shares.py --dataset fmnist --preset paper --draws 5
"""

from __future__ import annotations

import argparse
import sys

import torch
from _common import command_line, data_root, dataset_name, markdown, write_table

from defbench.datasets import class_names
from defbench.defenses.train_prior import SPREAD_SAMPLES, sample_logits, spread_percent
from defbench.metrics import share_percent
from defbench.harness.data import load_dataset
from defbench.harness.models import get_classifier, get_gan


@torch.no_grad()
def probabilities(clf, images, batch: int = 500) -> torch.Tensor:
    """The classifier's softmax over the classes for each of ``images`` (N, C, H, W), in batches."""
    return torch.cat([clf(images[s : s + batch]).softmax(1) for s in range(0, len(images), batch)])


def sample_probabilities(G, clf, n: int, seed: int) -> torch.Tensor:
    """Softmax of ``n`` samples of G drawn as the trainer draws its coverage check (its ``sample_logits``, latents
    from a generator seeded with ``seed``)."""
    return sample_logits(G, clf, n, torch.Generator().manual_seed(seed), "cpu").softmax(1)


def readings(p: torch.Tensor, classes: int = 10) -> dict[str, torch.Tensor]:
    """Per class, from the probabilities ``p`` (N, classes): argmax share, mean softmax mass, and the mean top
    probability of the rows the argmax gives the class (NaN where it gives none)."""
    top, arg = p.max(1)
    counts = torch.bincount(arg, minlength=classes).float()
    conf = torch.zeros(classes).index_add_(0, arg, top) / counts
    return {"argmax": counts / len(p), "mass": p.mean(0), "confidence": conf}


def mean_confidence(conf: list[float]) -> str:
    """The mean of a class's per-draw confidences over the draws that give the class a sample (a draw without one
    holds NaN, which would turn the mean into nan): ``0.93``, ``0.71 (3 of 5 draws)``, or ``—`` (none)."""
    seen = [c for c in conf if c == c]
    if not seen:
        return "—"
    return f"{sum(seen) / len(seen):.2f}" + ("" if len(seen) == len(conf) else f" ({len(seen)} of {len(conf)} draws)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=dataset_name, default="fmnist")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--gan-tag", default="", help="a zoo GAN of another tag (e.g. sub80-s1); never trained here")
    ap.add_argument(
        "--classifier-preset",
        default=None,
        help="the classifier that labels (default: --preset's, the target's); e.g. quick, to read a prior whose class "
        "feedback the quick classifier steered with both classifiers",
    )
    ap.add_argument("--draws", type=int, default=5, help="seeded draws of 2,000 samples (seeds seed+1, seed+2, ...)")
    ap.add_argument("--seed", type=int, default=0, help="the GAN's training seed: its trainer drew with seed + 1")
    ap.add_argument("--out", default="benchmarks/results/class_shares.md")
    args = ap.parse_args(argv)
    root = data_root()
    clf_preset = args.preset if args.classifier_preset is None else args.classifier_preset
    clf, cman = get_classifier(args.dataset, clf_preset, data_root=root, train_missing=False)
    G, _, gman = get_gan(args.dataset, args.preset, data_root=root, train_missing=False, tag=args.gan_tag)
    clf.eval(), G.eval()
    names = class_names(args.dataset)
    draws = [readings(sample_probabilities(G, clf, SPREAD_SAMPLES, args.seed + 1 + k)) for k in range(args.draws)]
    test = load_dataset(args.dataset, "test", root=root)
    x, y = test.get(torch.arange(len(test)))
    real = readings(probabilities(clf, x))
    truth = torch.bincount(y, minlength=10).float() / len(y)
    body = []
    for c in range(10):
        arg = [float(d["argmax"][c]) for d in draws]  # a count of SPREAD_SAMPLES: written exactly
        mass = [100 * float(d["mass"][c]) for d in draws]
        conf = [float(d["confidence"][c]) for d in draws]
        body.append(
            [
                f"{c} {names[c]}",
                f"{spread_percent(arg[0])} ({spread_percent(min(arg))}–{spread_percent(max(arg))})",
                f"{mass[0]:.1f} ({min(mass):.1f}–{max(mass):.1f})",
                mean_confidence(conf),
                f"{100 * float(truth[c]):.1f}",
                share_percent(float(real["argmax"][c]), len(y)),
                f"{100 * float(real['mass'][c]):.1f}",
                f"{float(real['confidence'][c]):.2f}",
            ]
        )
    header = [
        "class",
        "G: argmax share % (the target's reading; first draw, range)",
        "G: softmax mass %",
        "G: mean confidence of its samples",
        "test: true share %",
        "test: argmax share %",
        "test: softmax mass %",
        "test: mean confidence",
    ]
    lines = [
        f"Command: `{command_line(argv)}` — CPU, torch threads {torch.get_num_threads()}; classifier "
        f"{cman['id']}@{cman['sha256'][:10]}, GAN {gman['id']}@{gman['sha256'][:8]}; {args.draws} "
        f"draws of {SPREAD_SAMPLES} samples (generator seeds {args.seed + 1}–{args.seed + args.draws}, the first "
        f"the trainer's), and the {len(y)} test images.",
        "",
    ]
    lines += markdown(body, header, ["left"] + ["right"] * (len(header) - 1))
    smallest = [(float(d[r].min()), names[int(d[r].argmin())]) for d in draws for r in ("argmax", "mass")]
    lines += [
        "",
        "Smallest class per draw, argmax / softmax mass: "
        + "; ".join(
            f"{spread_percent(a)} {na} / {100 * m:.1f} {nm}"
            for (a, na), (m, nm) in zip(smallest[::2], smallest[1::2], strict=True)
        )
        + ".",
    ]
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
