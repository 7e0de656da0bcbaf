"""Clean accuracy under every defense, beside the papers' clean numbers (issue "defenses", item 2).

Reads the stores of clean-only matrix runs (one or more per dataset, each defense in one of them) and writes
one Markdown table: accuracy of the classifier on each defense's purification of the same seeded test images,
its Wilson 95% interval and n, the time per image the runner measured, and the papers' values where they
print one. Produce the stores with

    defbench matrix --dataset fmnist --defense none,defensegan,cowboy,invgan,mimicgan,median,tvm,ride \\
        --attacks none --n 500 --out runs/clean-fmnist-n500
    defbench matrix --dataset mnist ... --out runs/clean-mnist-n500
    python benchmarks/clean_accuracy.py runs/clean-fmnist-n500 runs/clean-mnist-n500

A slow defense may run at a smaller --n into a store of its own, passed beside the others with
``--take DEFENSE=STORE`` (every run holds the undefended cell; ``--take none=STORE`` says which one to read, on
the datasets STORE holds it for; repeat it with one store per dataset);
at one seed its images are a subset of the larger run's (``Dataset.eval_indices``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import accuracy_cell, command_line, markdown, write_table

from defbench import metrics
from defbench.harness.store import Store

#: clean accuracy (%) printed by the papers: InvGAN Table 2 (DefenseGAN, InvGAN, no defense), MimicGAN-1 Fig. 5(b)
#: caption (classifier), RIDE Table 2 (MNIST classifier)
PAPER = {
    ("fmnist", "none"): "92 (InvGAN T2); 91.50 (MimicGAN)",
    ("fmnist", "defensegan"): "81 (InvGAN T2)",
    ("fmnist", "invgan"): "88 (InvGAN T2)",
    ("mnist", "none"): "99 (InvGAN T2); 98.98 (RIDE)",
    ("mnist", "defensegan"): "98 (InvGAN T2)",
    ("mnist", "invgan"): "99 (InvGAN T2)",
}
ORDER = ("none", "defensegan", "cowboy", "invgan", "mimicgan", "ride", "median", "tvm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+", help="output dirs of clean-only matrix runs")
    ap.add_argument("--seed", type=int, help="the run seed to read where a store holds several (default: the only one)")
    ap.add_argument(
        "--take",
        action="append",
        default=[],
        metavar="DEFENSE=STORE",
        help="read DEFENSE's clean cell from STORE only (one of the stores listed), where several hold one: the "
        "undefended reference cell comes with every run, e.g. a slow defense's smaller-n store beside the others; "
        "repeatable, one store per dataset for one defense",
    )
    ap.add_argument("--out", default="benchmarks/results/clean_accuracy.md")
    args = ap.parse_args(argv)
    stores = {Path(d).resolve(): d for d in args.stores}
    take: list[tuple[str, Path]] = []
    for t in args.take:
        name, sep, store = t.partition("=")
        if not sep or not name or not store or Path(store).resolve() not in stores:
            print(f"--take {t}: want DEFENSE=STORE with STORE one of the stores listed", file=sys.stderr)
            return 2
        take.append((name, Path(store).resolve()))
    where = {"attack": "clean"} if args.seed is None else {"attack": "clean", "seed": args.seed}
    rows: dict[Path, list[dict]] = {}
    for path, d in stores.items():
        if not (path / "defbench.sqlite").is_file():
            print(f"no store in {d}", file=sys.stderr)
            return 2
        rows[path] = list(Store(d).rows(**where))
    # (dataset, defense) -> the store --take names for it, on the datasets that store holds the defense for; one
    # defense may be taken from one store per dataset (--take none=FMNIST_STORE --take none=MNIST_STORE)
    taken: dict[tuple[str, str], Path] = {}
    for name, s in take:
        held = {r["dataset"] for r in rows[s] if r["defense"] == name}
        if not held:
            print(f"--take: no clean cell of {name} in the store named ({stores[s]})", file=sys.stderr)
            return 2
        for ds in sorted(held):
            if taken.setdefault((ds, name), s) != s:
                print(
                    f"--take: two stores named for {name} hold its {ds} cell ({stores[taken[ds, name]]}, "
                    f"{stores[s]}); name one per dataset",
                    file=sys.stderr,
                )
                return 2
    found: dict[tuple[str, str], dict] = {}
    for d, store_rows in rows.items():
        for r in store_rows:
            if taken.get((r["dataset"], r["defense"]), d) != d:
                continue
            other = found.get((r["dataset"], r["defense"]))
            if other is not None:  # one row per defense: two cells (seeds, classifiers, settings) are not one
                print(
                    f"{r['dataset']} / {r['defense']} has two clean cells (seed {other['seed']}, classifier "
                    f"{other['classifier']} and seed {r['seed']}, classifier {r['classifier']}"
                    f"{'' if other['defense_hash'] == r['defense_hash'] else ', other settings'}); "
                    + (
                        "pick one with --seed"
                        if other["seed"] != r["seed"]
                        else f"give stores of one run each, or --take {r['defense']}=STORE"
                    ),
                    file=sys.stderr,
                )
                return 2
            found[(r["dataset"], r["defense"])] = r
    datasets = list(dict.fromkeys(ds for ds, _ in found))
    names = [*ORDER, *dict.fromkeys(n for _, n in found if n not in ORDER)]  # variants and plugins after ORDER
    lines = [
        f"Command: `{command_line(argv)}` (stores of clean-only runs, "
        "`defbench matrix ... --attacks none`; each cell says its n); accuracy of the classifier on the purified "
        "images, Wilson 95% interval (the first purification of each image; a randomized defense run with several "
        "purifications lists each one's accuracy), seconds per image and purification as the runner timed the "
        "cell (its device in brackets).",
    ]
    header = ["defense"] + [f"{ds}: {col}" for ds in datasets for col in ("accuracy % (95% CI)", "s/image", "paper")]
    body = []
    for name in names:
        cells = [name]
        for ds in datasets:
            r = found.get((ds, name))
            if r is None:
                cells += ["not run", "", PAPER.get((ds, name), "—")]
                continue
            k = int(sum(metrics.correct(r["preds"], r["labels"])))
            acc = f"{accuracy_cell(k, r['n'], digits=1)}, n = {r['n']}"
            reps = r["extra"].get("repeat_preds") or [r["preds"]]
            if len(reps) > 1:  # a randomized defense purified several times: repeat 0 above, the spread here
                accs = [100 * metrics.accuracy(rp, r["labels"]) for rp in reps]
                acc += f"; {len(reps)} purifications: {', '.join(f'{a:.1f}' for a in accs)}"
            cells += [
                acc,
                f"{r['wall_seconds'] / (r['n'] * len(reps)):.2f} [{r['device']}]",
                PAPER.get((ds, name), "—"),
            ]
        body.append(cells)
    lines += ["", *markdown(body, header, ["left"] + ["right", "right", "left"] * len(datasets))]
    return write_table(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
