"""Clean accuracy of GAN-prior defense settings on a validation slice (issue: papers' second pass, item 2).

The MimicGAN paper tuned its projection settings on 100 validation images. This script purifies one seeded
slice of the *training* set (``--split train``; never the test set while choosing) with each variant — a
defense label with options, e.g. ``mimicgan[outer_iters=20,lr=0.01]`` or ``mimicgan[surrogate=identity]``
(MimicGAN with f̂ = I on the same settings) — and reports the classifier's accuracy on the purified images
with its Wilson 95% interval, the mean ℓ2 distance ‖x − x̂‖₂ and the seconds per image. All images go
through the defense in one batch (MimicGAN's surrogate is shared by a batch, as the matrix's batches of 100).
The chosen setting is then measured once with ``--split test``.

The zoo's classifier and GAN were trained on the whole training set, so the slice is held out from the search,
not from training: accuracies there run higher than on test images, and the table ranks settings.

    python benchmarks/projection_settings.py --n 100 --variants defensegan mimicgan 'mimicgan[surrogate=identity]'
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import accuracy_cell, command_line, data_root, markdown, write_table

from defbench.harness.data import load_dataset
from defbench.harness.models import build_defense, get_classifier
from defbench.metrics import accuracy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", required=True, help="defense labels, e.g. 'mimicgan[lr=0.01]'")
    ap.add_argument("--dataset", default="fmnist")
    ap.add_argument("--preset", default="paper", help="zoo preset of the classifier and GAN (never trained here)")
    ap.add_argument("--split", default="train", choices=["train", "test"])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/projection_settings.md")
    args = ap.parse_args(argv)
    root = data_root()
    data = load_dataset(args.dataset, args.split, root)
    x, y = data.get(data.eval_indices(args.n, args.seed))
    clf, _ = get_classifier(args.dataset, args.preset, "cpu", root, train_missing=False, progress=False)
    with torch.no_grad():
        alone = accuracy(clf(x).argmax(1), y)
    n = len(y)
    lines = [
        f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s). {n} {args.dataset} "
        f"{args.split}-set images (seed {args.seed}) purified in one batch; the {args.preset} classifier and GAN. "
        "Accuracy % of the classifier on the purified images (Wilson 95% interval); ℓ2 = mean ‖x − x̂‖₂.",
    ]
    body = [["classifier alone", accuracy_cell(round(alone * n), n, 1), "0.00", "—"]]
    for label in args.variants:
        d = build_defense(label, args.dataset, args.preset, "cpu", seed=args.seed, data_root=root, train_missing=False)
        t0 = time.time()
        x_hat = d.purify(x, seed=args.seed)
        sec = (time.time() - t0) / n
        with torch.no_grad():
            k = round(accuracy(clf(x_hat).argmax(1), y) * n)
        dist = float((x_hat - x).flatten(1).norm(dim=1).mean())
        body.append([f"`{label}`", accuracy_cell(k, n, 1), f"{dist:.2f}", f"{sec:.2f}"])
        table = markdown(body, ["variant", "accuracy %", "ℓ2", "s / image"], ["left", "right", "right", "right"])
        write_table(lines + [""] + table, args.out)  # after every variant, so a stopped search keeps its rows
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
