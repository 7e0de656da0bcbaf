"""RIDE's readings, one at a time (issue "RIDE that works as published").

On the same seeded MNIST test images, for each RIDE variant: accuracy of the classifier on the purification
of the clean images and of their gray-box PGD adversarials (torchattacks, ε = 0.3, 40 steps, computed once on
the bare classifier), and the mean ℓ2 distance of each purification to the clean image. A variant is a
label of `defbench` defense options (``ride[alpha=1,nms=false]``), so every row can be rerun with
``defbench matrix --defense 'ride[...]'``. Rows that would differ from the reference in one option only are
the ablation; the first row is the bare classifier.

    python benchmarks/ride_readings.py --n 50 --variants 'ride' 'ride[iterations=400,split_iterations=true]' ...

``--presets quick paper`` scores the *same* purifications with several classifiers (the first is the one PGD
attacks; the others add a clean-accuracy column each), which separates what the estimate does from how
fragile the classifier is; ``--clean-only`` skips PGD and purifies the clean images alone (half the cost);
``--save DIR`` keeps each variant's purified images (``DIR/<variant>.pt``) for later scoring.

Writes a Markdown table (``--out``) and prints it. Wall times are per purified image on this machine.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
from _common import accuracy_cell, command_line, dataset_name, markdown, write_table
from tqdm.auto import tqdm

from defbench import progress
from defbench.attacks.registry import get_attack
from defbench.defenses.registry import build_defense
from defbench.harness.data import load_dataset
from defbench.harness.models import get_classifier
from defbench.metrics import accuracy


def _acc(clf, x, y) -> float:
    with torch.no_grad():
        return accuracy(clf(x).argmax(1), y)


def _cell(p: float, n: int) -> str:
    return accuracy_cell(round(p * n), n)


def _write(rows, args, argv, n: int) -> None:
    others = args.presets[1:]
    lines = [
        f"Command: `{command_line(argv)}`; {n} {args.dataset} test images (seed {args.seed}"
        + (f", positions {args.only} of its {args.n}" if args.only else "")
        + "), the "
        f"{args.presets[0]} classifier, "
        + (
            "clean images only."
            if args.clean_only
            else f"gray-box PGD ε = {args.eps} ({args.steps} steps, torchattacks) computed once on the bare classifier."
        )
        + " Accuracy % with its Wilson 95% interval; ℓ2 = mean distance of the purified image to the clean one (for"
        " the classifier-alone row: of the input)."
        + (f" Extra columns: the purified clean images scored by the {', '.join(others)} classifier." * bool(others)),
    ]
    header = ["variant", "clean acc %", *(f"clean acc % ({p} classifier)" for p in others)]
    header += ["PGD acc %", "ℓ2 to clean (clean in)", "ℓ2 to clean (PGD in)", "s / image"]
    body = [
        [
            label,
            *(_cell(a, n) for a in accs),
            "—" if aa is None else _cell(aa, n),
            f"{float(dc):.2f}",
            "—" if da is None else f"{float(da):.2f}",
            f"{sec:.2f}",
        ]
        for label, accs, aa, dc, da, sec in rows
    ]
    lines += [""] + markdown(body, header, ["left"] + ["right"] * (len(header) - 1))
    write_table(lines, args.out)


def save_names(variants: list[str]) -> dict[str, str]:
    """The file name (without ``.pt``) each variant's purifications are saved under; refuses, before any image
    is purified, two variants whose names would collide (labels that differ only in characters a file name
    drops, such as ``ride[a=1,b=2]`` and ``ride[a=1;b=2]``), so that one never overwrites the other."""
    names: dict[str, str] = {}
    for label in variants:
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)
        clash = next((other for other, n in names.items() if n == name), None)
        if clash is not None:
            raise SystemExit(f"--save: {clash!r} and {label!r} would both be saved as {name}.pt; rename one")
        names[label] = name
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["ride"], help="RIDE variant labels, e.g. 'ride[alpha=1]'")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", type=dataset_name, default="mnist")
    ap.add_argument("--presets", nargs="+", default=["quick"], help="classifier presets; PGD attacks the first")
    ap.add_argument("--clean-only", action="store_true", help="skip PGD: purify the clean images alone")
    ap.add_argument("--save", help="folder for each variant's purified images (<variant>.pt)")
    ap.add_argument("--only", help="comma-separated positions in the seeded draw of --n images to keep (e.g. 27,37)")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/results/ride_readings.md")
    args = ap.parse_args(argv)

    saved_as = save_names(args.variants) if args.save else {}
    torch.manual_seed(args.seed)
    test = load_dataset(args.dataset, "test")
    x, y = test.get(test.eval_indices(args.n, args.seed))
    if args.only:  # a few images of the same draw, e.g. the ones a full run got wrong
        keep = [int(i) for i in args.only.split(",")]
        x, y = x[keep], y[keep]
    clfs = [get_classifier(args.dataset, p)[0] for p in args.presets]
    clf = clfs[0]
    x_adv = None if args.clean_only else get_attack("pgd", args.dataset, args.eps, steps=args.steps)(clf, x, y)
    dist = lambda o: float((o - x).flatten(1).norm(dim=1).mean())  # noqa: E731
    rows = [
        (
            "classifier alone",
            [_acc(c, x, y) for c in clfs],
            None if x_adv is None else _acc(clf, x_adv, y),
            0.0,
            None if x_adv is None else dist(x_adv),
            0.0,
        )
    ]
    for label in args.variants:
        d = build_defense(label, args.dataset)
        t0 = time.time()
        # one batch: every image is purified by its own network from its own seeded draws, so this equals
        # two separate calls
        batch = x if x_adv is None else torch.cat([x, x_adv])
        # disable=None: a bar on a terminal, none in a log (10,000 carriage-return updates per variant there)
        with (
            tqdm(desc=f"{label}: RIDE steps", unit="step", leave=False, disable=None) as bar,
            progress.reporting(bar.update),
        ):
            out = d.purify(batch, seed=args.seed)
        sec = (time.time() - t0) / len(batch)
        out_c, out_a = (out, None) if x_adv is None else out.split(len(x))
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            saved = {"variant": label, "x": x, "y": y, "x_adv": x_adv, "clean": out_c, "adv": out_a}
            torch.save(saved, Path(args.save) / f"{saved_as[label]}.pt")
        accs = [_acc(c, out_c, y) for c in clfs]
        rows.append(
            (
                f"`{label}`",
                accs,
                None if out_a is None else _acc(clf, out_a, y),
                dist(out_c),
                None if out_a is None else dist(out_a),
                sec,
            )
        )
        _write(rows, args, argv, len(y))  # after every variant, so a long sweep leaves a partial table
        print(f"{label}: clean {accs} pgd {rows[-1][2]} ({sec:.2f} s/image)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
