"""Which GAN recipe reading makes the Fashion-MNIST prior cover every class (issue: papers' tables, second pass,
item 3), one reading at a time.

Each variant is the paper recipe (``defbench train gan --preset paper``, defenses/train_prior.py) with one
override (``real_label=1.0``, ``lr_d=2e-4``, ``seed=1``, ...), trained for ``--epochs`` epochs from scratch.
After every epoch the trainer's own checks are read back: classifier accuracy on DefenseGAN projections of
validation images held out of the training split, and the share of each class among 2,000 samples as the
classifier labels them. The table gives, per variant and epoch, the projection accuracy, the smallest class
share and the trouser share (the class the paper-preset GAN never generates). Rows are written as each
variant ends, so a stopped run keeps what it measured. Nothing is saved to the zoo.

    python benchmarks/gan_coverage.py --epochs 1 --variants paper 'real_label=1.0' 'lr_d=2e-4' 'seed=1'
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch
from _common import command_line, data_root, dataset_name, markdown, write_table

from defbench.datasets import CLASS_NAMES
from defbench.defenses.train_prior import class_spread, gan_recipe, spread_latents, spread_percent, train_gan
from defbench.harness.data import load_dataset
from defbench.harness.models import get_classifier, steering_classifier

NAMES = CLASS_NAMES["fmnist"]


def _value(text: str) -> int | float | str:
    """'2' -> 2, '2e-4' -> 0.0002, 'hinge' -> 'hinge'."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_variant(label: str) -> tuple[int | None, dict]:
    """``paper`` -> (None, {}); ``lr_d=2e-4`` -> (None, {'lr_d': 2e-4}); ``seed=1`` -> (1, {})."""
    if label == "paper":
        return None, {}
    seed, overrides = None, {}
    for part in label.split(","):
        key, _, value = part.partition("=")
        if not value:
            raise SystemExit(f"variant {label!r}: write KEY=VALUE[,KEY=VALUE] or 'paper'")
        if key == "seed":
            seed = int(value)
        else:
            overrides[key] = _value(value)
    return seed, overrides


def _smallest(spread) -> str:
    """'2.95 (shirt)': the smallest share of a class spread (of the trainer's SPREAD_SAMPLES samples), in %, with
    its class's name."""
    k = min(range(len(spread)), key=spread.__getitem__)
    return f"{spread_percent(spread[k])} ({NAMES[k]})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["paper"], help="'paper' or KEY=VALUE overrides of the recipe")
    ap.add_argument("--dataset", type=dataset_name, default="fmnist", choices=["fmnist"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--classifier-preset", default="quick", help="classifier that labels samples and projections")
    ap.add_argument(
        "--judge-preset",
        default=None,
        help="a second classifier that also labels 2,000 samples of each epoch's generator (default: none); under "
        "class_feedback the training classifier steers the shares it counts, the judge has no part in it",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/gan_coverage.md")
    args = ap.parse_args(argv)
    root = data_root()
    classifier, _ = get_classifier(args.dataset, args.classifier_preset, "cpu", root, progress=False)
    judge = None
    if args.judge_preset:
        judge, _ = get_classifier(args.dataset, args.judge_preset, "cpu", root, progress=False)
        judge.eval()
    train = load_dataset(args.dataset, "train", root)
    paper = gan_recipe(args.dataset, "paper")
    lines = [
        f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s). Each variant: the "
        f"{args.dataset} paper GAN recipe with one override, {args.epochs} epoch(s) from scratch; the "
        f"{args.classifier_preset} classifier labels the projections (R = {paper.eval_restarts}, L = "
        f"{paper.eval_steps}, {paper.eval_images} validation images held out of the training split, unless a "
        "variant overrides them) and 2,000 samples. Shares in %; minutes: the variant's whole training.",
    ]
    header = ["variant", "epoch", "projection acc", "smallest share (class)", "trouser share", "D loss", "G loss"]
    header += [f"smallest share judged by the {args.judge_preset} classifier"] if judge is not None else []
    header += ["minutes"]
    body, shares = [], []
    for label in args.variants:
        seed, overrides = parse_variant(label)
        recipe = gan_recipe(args.dataset, "paper", epochs=args.epochs, **overrides)
        print(f"{label}: {asdict(recipe)}", flush=True)
        t0 = time.time()
        run_seed = args.seed if seed is None else seed

        def judged(G, rec, run_seed=run_seed):  # the very samples the trainer's own count reads
            rec["judged_spread"] = class_spread(G, judge, 2000, spread_latents(run_seed), "cpu")

        _, metrics = train_gan(
            args.dataset,
            train,
            classifier,
            recipe,
            run_seed,
            torch.device("cpu"),
            each_epoch=judged if judge is not None else None,
            steering=steering_classifier(args.dataset, recipe, args.classifier_preset, classifier, "cpu", root, False),
        )
        minutes = (time.time() - t0) / 60
        for rec in metrics["history"]:
            spread = rec["class_spread"]
            row = [
                label,
                rec["epoch"],
                f"{rec['projection_accuracy']:.2f}",
                _smallest(spread),
                spread_percent(spread[1]),
                f"{rec['d_loss']:.2f}",
                f"{rec['g_loss']:.2f}",
            ]
            row += [_smallest(rec["judged_spread"])] if judge is not None else []
            body.append(row + [f"{minutes:.1f}"])
        last = metrics["history"][-1]
        shares.append([label, last["epoch"], *(spread_percent(v) for v in last["class_spread"])])
        if "class_weights" in last:
            shares.append([f"{label}: class weights at the end", last["epoch"], *last["class_weights"]])
        if "judged_spread" in last:
            judge_label = f"{label}: judged by the {args.judge_preset} classifier"
            shares.append([judge_label, last["epoch"], *(spread_percent(v) for v in last["judged_spread"])])
        per_class = markdown(shares, ["variant", "epoch", *NAMES], ["left"] + ["right"] * (len(NAMES) + 1))
        caption = (
            "Every class's share of the 2,000 samples (%) at each variant's last epoch; a 'class weights' row gives "
            "class feedback's weights then (not %), a 'judged by' row the same samples as the judge reads them:"
        )
        write_table(
            lines
            + [""]
            + markdown(body, header, ["left"] + ["right"] * (len(header) - 1))
            + ["", caption, ""]
            + per_class,
            args.out,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
