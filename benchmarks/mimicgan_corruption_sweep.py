"""MimicGAN settings against the corruptions of MimicGAN-1 Fig. 4(b): a small sweep on a tuning subset.

§4.2 of the paper gives no Fashion-MNIST schedule for the corruptions (its Table 1 sets the learning rates per
corruption for CelebA only), so this script tries MimicGAN variants on ``--n`` evaluation images
(the same seeded images the matrix uses: ``eval_indices(n, seed)``, a subset of any larger n) and writes
one table: classifier accuracy on the projections, the surrogate's final shortcut weight W, the mean
projection error, the surrogate's output scale, mean |f̂(x̂)| over mean |y| (near 0: f̂ has collapsed to a
constant 0), and the share of its conv path's outputs that are alive (ReLU(conv2(·)) > 0 on the projections, or
an unsaturated TanH under ``surrogate_activation=tanh``; 0: the path is dead and passes no gradient). Pick a
setting here, then measure it at the paper's n with
``defbench matrix`` and report the images the pick did not see: ``--held-out DIR`` splits every larger cell
of that matrix store into the tuning images and the rest.

    python benchmarks/mimicgan_corruption_sweep.py --n 100
    python benchmarks/mimicgan_corruption_sweep.py --n 100 --held-out runs/fig4b-signed-n500 \
        --out benchmarks/results/mimicgan_corruption_heldout.md
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import command_line, markdown, write_table
from classifier_swap import add_classifier_arg, fmnist_classifier

from defbench import metrics
from defbench.attacks.registry import get_attack
from defbench.defenses.projection import surrogate_input, surrogate_output_scale
from defbench.harness.models import build_defense
from defbench.harness.data import load_dataset
from defbench.harness.store import Store
from defbench.reports.common import correct_mask

VARIANTS = (
    "mimicgan",
    "mimicgan[surrogate_lr=1e-3]",
    "mimicgan[surrogate_lr=1e-3,lr=1e-2]",
    "mimicgan[surrogate_range=signed]",
    "mimicgan[surrogate_range=signed,outer_iters=30]",
    "mimicgan[surrogate_range=signed,surrogate_lr=1e-3]",
    "mimicgan[surrogate_range=signed,surrogate_lr=1e-3,lr=1e-3]",
    "mimicgan[surrogate_range=signed,surrogate_lr=1e-3,lr=1e-2]",
    "mimicgan[surrogate_range=signed,surrogate_lr=1e-3,lr=1e-2,outer_iters=30]",
    "mimicgan[surrogate_range=signed,surrogate_lr=4e-3,lr=3e-3,lambda_identity=0.1]",
)


def corruption(spec: str, dataset: str = "fmnist"):
    """The corruption named by ``NAME`` or ``NAME:KEY=VALUE[:KEY=VALUE]`` (values as strings, as the corruptions
    parse them), e.g. ``drop-pixels:mask=batch``."""
    name, *opts = spec.split(":")
    params = dict(o.split("=", 1) for o in opts)
    return get_attack(name, dataset, **params)  # eps=0.15 too: attacks take their ε as a string or a number


#: the columns of one purification's row, as :func:`_purified` returns them
PURIFIED_COLUMNS = ("accuracy % (95% CI)", "W (or max abs(A − I))", "mean error", "f̂ scale", "conv path live %", "s")


def surrogate_state(f, cfg, x_hat: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean |f̂(x̂)| / mean |y|, share of f̂'s conv-path outputs that pass a gradient: MimicSurrogate.open_share) for
    the learned surrogate ``f`` of a projection under ``cfg``, its projections ``x_hat`` and observations ``y``."""
    return surrogate_output_scale(x_hat, y, cfg, f), f.open_share(surrogate_input(x_hat, cfg))


def _purified(defense, xc: torch.Tensor, seed: int, clf, y: torch.Tensor) -> list[str]:
    """One purification of the corrupted images: accuracy % (Wilson 95%), the surrogate's W (for MimicGAN-2's
    surrogate, whose shortcut has no W: how far its affine map is from the identity, max |A − I|), the mean
    projection error, f̂'s output scale mean |f̂(x̂)| / mean |y|, the live share of its conv path, seconds."""
    t0 = time.perf_counter()
    x_hat = defense.purify(xc, seed=seed)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        k = int(metrics.correct(clf(x_hat).argmax(1), y).sum())
    lo, hi = metrics.wilson_interval(k, len(y))
    proj = defense.last
    scale, live = surrogate_state(proj.surrogate, defense.cfg, x_hat, xc)
    return [
        f"{100 * k / len(y):.1f} ({100 * lo:.1f}–{100 * hi:.1f})",
        f"{proj.surrogate.shortcut_state():.2f}",
        f"{proj.error.mean().item():.4f}",
        f"{scale:.2f}",
        f"{100 * live:.0f}",
        f"{secs:.0f}",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--n", type=int, default=100, help="tuning images (the seeded draw of n, a subset of any larger n's)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--corruptions",
        default="drop-pixels,blur-negative",
        help="comma list of corruptions, each NAME or NAME:KEY=VALUE[:KEY=VALUE] (e.g. drop-pixels:mask=batch); "
        "also gray-box attacks on the paper classifier (fgsm:eps=0.15:labels=predicted) and clean",
    )
    ap.add_argument("--variants", default=";".join(VARIANTS), help="';'-separated defense variants")
    ap.add_argument(
        "--held-out",
        metavar="DIR",
        help="instead of sweeping: split the cells of this matrix store "
        "with more than n images into the n tuning images and the rest",
    )
    ap.add_argument(
        "--corruption-seeds", nargs="+", type=int, help="seeds of the corruption's random draw (default: --seed)"
    )
    ap.add_argument("--purify-seeds", nargs="+", type=int, help="seeds handed to each purification (default: --seed)")
    add_classifier_arg(ap, "scores the projections (and runs the gray-box attacks)")
    ap.add_argument("--data-root")
    ap.add_argument("--out", default="benchmarks/results/mimicgan_corruption_sweep.md")
    args = ap.parse_args(argv)
    data = load_dataset("fmnist", "test", root=args.data_root)
    if args.held_out:
        return held_out(argv, args, set(data.eval_indices(args.n, args.seed).tolist()))
    x, y = data.get(data.eval_indices(args.n, args.seed))
    clf, who = fmnist_classifier(args.classifier, args.data_root)
    lines = [
        f"Command: `{command_line(argv)}` — CPU, torch threads {torch.get_num_threads()}; Fashion-MNIST, "
        f"paper-preset models, {who}, the {args.n} evaluation images of seed {args.seed}, one batch; accuracy "
        "in % with its Wilson 95% interval.",
        "",
    ]
    labels = [v.strip() for v in args.variants.split(";") if v.strip()]
    defenses = {label: build_defense(label, "fmnist", data_root=args.data_root) for label in labels}
    body = []
    for cname in args.corruptions.split(","):
        for cseed in args.corruption_seeds or [args.seed]:
            torch.manual_seed(cseed)  # drop-pixels' mask: the same for every variant
            # a corruption ignores the model; an attack runs on the classifier alone (gray-box)
            xc = x if cname == "clean" else corruption(cname)(clf, x, y)
            for label, defense in defenses.items():
                for pseed in args.purify_seeds or [args.seed]:
                    body.append([cname, f"`{label}`", f"{cseed} / {pseed}", *_purified(defense, xc, pseed, clf, y)])
                    print(" | ".join(body[-1]), flush=True)
    header = ["corruption", "variant", "seeds (corruption / purify)", *PURIFIED_COLUMNS]
    lines += markdown(body, header, ["left", "left"] + ["right"] * (len(header) - 2))
    return write_table(lines, args.out)


def held_out(argv, args, tuning: set[int]) -> int:
    lines = [
        f"Command: `{command_line(argv)}`; accuracy in % of the store's cells on the {len(tuning)} tuning "
        "images (the seeded draw of n, a subset of the cells' images) and on the rest (a randomized defense's "
        "image counts when right in all its purifications, as in the matrix tables).",
        "",
    ]
    body = []
    for r in Store(args.held_out).rows():
        if r["n"] <= len(tuning):
            continue
        part = {True: [], False: []}  # tuning image or not -> correct (the tables' all-repeats rule)
        for i, ok in zip(r["indices"], correct_mask(r), strict=True):
            part[i in tuning].append(ok)
        acc = {k: f"{100 * sum(v) / len(v):.1f} (n = {len(v)})" if v else "—" for k, v in part.items()}
        body.append([f"`{r['defense']}`", r["attack"], str(r["n"]), acc[True], acc[False]])
    header = ["defense", "attack", "n", "tuning images", "held-out images"]
    lines += markdown(body, header, ["left", "left", "right", "right", "right"])
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
