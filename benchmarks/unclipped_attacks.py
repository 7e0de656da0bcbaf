"""Do unclipped adversarial pixels explain MimicGAN Fig. 5(b)'s BIM / PGD gap? (papers' second pass, item 1)

The MimicGAN paper built its attacks with cleverhans, whose FGSM, BIM and MadryEtAl (PGD) leave ``clip_min`` and
``clip_max`` at None: the adversarial image is kept inside the ε-ball but not inside the pixel range. torchattacks
(our FGSM / BIM / PGD) always clamps to [0, 1]. This script changes that one thing. It runs each attack through
ART (``FastGradientMethod`` / ``BasicIterativeMethod`` / ``ProjectedGradientDescent``), on the classifier alone
(Fig. 5(b)'s gray-box setting), once with ``clip_values=(0, 1)`` and once with ``clip_values=None``. Images,
labels (the classifier's predictions, as the spec), ε (0.15 on [0, 1]), step sizes and step counts are the
spec's (``--clips torchattacks`` adds defbench's own attack, through torchattacks, for comparison). Every defense
then purifies each version, and the table gives the classifier's accuracy on each, with
the share of adversarial pixels outside [0, 1].

``Defense.purify`` refuses pixels outside [0, 1] on purpose: a harness input in [0, 255] or [-1, 1] is a bug. So
this script calls the defenses' ``_purify``, as their public ``purify`` would after that check, and clamps the
output in the same way. The GAN-prior defenses' loss ‖y − G(z)‖² is defined for any y.

    python benchmarks/unclipped_attacks.py --n 100 --defenses defensegan cowboy mimicgan
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import gray_box_setup, markdown, write_table

from defbench.attacks import get_attack

EPS = 0.15
#: the 'clip' column of each --clips reading
CLIP_LABELS = {"unit": "[0, 1]", "none": "none", "torchattacks": "[0, 1] (torchattacks)"}


def _attack(name: str, clf, clip):
    """The ART attack of the spec's reading, with ART's clipping ``clip`` ((0, 1) or None)."""
    from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    est = PyTorchClassifier(
        model=clf, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10, clip_values=clip
    )
    if name == "fgsm":
        return FastGradientMethod(est, norm=np.inf, eps=EPS)
    if name == "bim":  # defbench's BIM defaults: 10 steps of (5/3)·ε/10
        return BasicIterativeMethod(est, eps=EPS, eps_step=EPS / 6, max_iter=10, verbose=False)
    # defbench's PGD defaults: 40 steps of (4/3)·ε/40, one random start
    return ProjectedGradientDescent(
        est, norm=np.inf, eps=EPS, eps_step=EPS / 30, max_iter=40, num_random_init=1, verbose=False
    )


def unchecked_purify(defense, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``defense.purify(x, seed)`` without its pixel-range check (see the docstring), output clamped as it is."""
    with torch.enable_grad():
        return defense._purify(x, seed).detach().clamp(0, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--defenses", nargs="+", default=["defensegan", "cowboy", "mimicgan"])
    ap.add_argument("--attacks", nargs="+", default=["bim", "pgd", "fgsm"], choices=["bim", "pgd", "fgsm"])
    ap.add_argument(
        "--clips",
        nargs="+",
        default=["unit", "none"],
        choices=["unit", "none", "torchattacks"],
        help="unit: ART clipped to [0, 1]; none: ART unclipped; torchattacks: defbench's own attack (clipped)",
    )
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/unclipped_attacks.md")
    args = ap.parse_args(argv)
    g = gray_box_setup(args.n, args.seed, args.defenses)
    x, y, clf = g.x, g.y, g.clf
    with torch.no_grad():
        pred = clf(x).argmax(1)
    head = [
        g.describe(argv, args.seed) + f", ε = {EPS} on [0, 1], the classifier's predicted labels. "
        "Accuracy % on the true labels (Wilson 95% interval); 'outside' = share of adversarial "
        "pixels outside [0, 1].",
        "",
    ]
    header = ["attack", "clip", "max ℓ∞", "outside", "no defense", *args.defenses, "s"]
    rows = []
    for name in args.attacks:
        for reading in args.clips:
            torch.manual_seed(args.seed)
            np.random.seed(args.seed)
            t0 = time.time()
            if reading == "torchattacks":
                x_adv = get_attack(name, "fmnist", eps=EPS, labels="predicted")(clf, x, y)
            else:
                clip = (0.0, 1.0) if reading == "unit" else None
                x_adv = torch.from_numpy(_attack(name, clf, clip).generate(x.numpy(), y=pred.numpy()))
            linf = float((x_adv - x).abs().max())
            outside = float(((x_adv < 0) | (x_adv > 1)).float().mean())
            row = [name.upper(), CLIP_LABELS[reading], f"{linf:.3f}", f"{100 * outside:.1f}%"]
            row += g.cells(x_adv, lambda d, images: unchecked_purify(d, images, args.seed))
            row.append(f"{time.time() - t0:.0f}")
            rows.append(row)
            write_table(head + markdown(rows, header), args.out)  # after every row: a stopped run keeps its rows
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
