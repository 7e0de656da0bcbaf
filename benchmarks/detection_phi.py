"""Which representation InvGAN's detection AUC reads (papers' second pass, the detection gap of Table 3).

InvGAN scores an input x by ‖Φ(x) − Φ(x̂)‖ (Eq. 7), Φ all layers of the classifier but the last, x̂ the defense's
projection. With cleverhans' tutorial CNN in place of the zoo classifier every Fashion-MNIST detection AUC of
Table 3 rose by 0.14-0.17 (``benchmarks/table_classifier_swap.py``), but that swap changed two things at once: the
network whose Φ scores the images *and* the network the attacks differentiate (every adversarial image is the
attacked classifier's own). This script separates them and then looks inside Φ. It runs the table's detection
cells (gray-box and reparameterisation; BPDA is left out) once per *source* classifier, the one the attacks
differentiate, and keeps each cell's inputs x_in and projections x̂ (:attr:`MatrixRunner.batch_hook`). The same
x_in and x̂ are then scored by several representations of both classifiers:

* ``Φ``: the paper's, ``features(x)`` (zoo: the FC 256 after ReLU; tutorial CNN: its last conv's 128 after ReLU;
  Model A: its FC 128 after ReLU);
* ``Φ/‖Φ‖``: Φ scaled to unit length per image (does the feature's magnitude carry the score?);
* ``logits``: the last layer's output;
* ``body.conv1``, ``body.conv2``: earlier layers' outputs (before their ReLU), where the model has them;

and the pixels, ‖x_in − x̂‖. Each AUC follows the success protocol with the source classifier's outcomes (negatives:
the clean images it gets right; positives: the successful adversarials made from them), so a row changes only the
score. The row of the source's own Φ must equal the stored cell's AUC: the table prints that check.

    python benchmarks/detection_phi.py --n 100

The two sources can be computed in parallel on two cores (``--only zoo`` and ``--only other``, one store); the
plain command then scores both from what they kept. ``--other model-a`` takes Defense-GAN's Model A, the
classifier InvGAN's code (github.com/yogeshbalaji/InvGAN, named by the paper) trains for these tables, in the
tutorial CNN's place. Each table comes twice: by the success protocol (defbench's reading), and with every clean
image against every attacked one, as that code computes its AUC (and the paper reports compare).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import auc_cell, command_line, data_root, markdown, write_table
from classifier_swap import OTHERS, add_other_args, chosen, epoch_accuracies, scratch_classifier

from defbench.classifiers.base import with_features
from defbench.cli.options import parse_threat_n
from defbench.datasets import home_dir
from defbench.harness.models import get_classifier
from defbench.harness.paper_spec import preset_attack
from defbench.harness.papers import TABLES, run_table
from defbench.reports.common import detection_auc_all, detection_auc_protocol

#: earlier layers scored beside Φ and the logits, where a classifier has a module of that name
LAYERS = ("body.conv1", "body.conv2")


def representations(clf: torch.nn.Module, layers=LAYERS) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Name -> a function of images giving one flat vector per image: Φ, Φ scaled to unit length, the logits and
    each module of ``layers`` that ``clf`` has (its output, read by a forward hook)."""
    clf = with_features(clf)
    out = {
        "Φ": lambda x: clf.features(x).flatten(1),
        "Φ/‖Φ‖": lambda x: torch.nn.functional.normalize(clf.features(x).flatten(1), dim=1),
        "logits": lambda x: clf(x).flatten(1),
    }
    modules = dict(clf.named_modules())
    for name in layers:
        if name in modules:
            out[name] = lambda x, m=modules[name]: module_output(clf, m, x)
    return out


def module_output(clf: torch.nn.Module, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``module`` inside ``clf``'s forward pass on ``x``, flat per image."""
    seen = []
    handle = module.register_forward_hook(lambda _m, _i, o: seen.append(o.detach()))
    try:
        clf(x)
    finally:
        handle.remove()
    return seen[0].flatten(1)


def cell_name(cell) -> str:
    """A file-name stem of a table cell: defense, threat, attack, image seed."""
    return f"{cell.defense}-{cell.threat}-{cell.attack.name if cell.attack else 'clean'}-s{cell.seed}"


class KeptInputs:
    """A :attr:`MatrixRunner.batch_hook` that writes each batch's (x_in, x̂) under ``folder`` and reads a cell's
    back in batch order."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, cell, batch: int, x, x_in, x_hat) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save({"x_in": x_in.cpu(), "x_hat": x_hat.cpu()}, self.folder / f"{cell_name(cell)}-b{batch}.pt")

    def load(self, cell, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        files = sorted(self.folder.glob(f"{cell_name(cell)}-b*.pt"), key=lambda p: int(p.stem.rsplit("-b", 1)[1]))
        blobs = [torch.load(f, weights_only=True) for f in files]
        if not blobs or sum(len(b["x_in"]) for b in blobs) != n:
            raise SystemExit(
                f"{self.folder}: the inputs of cell {cell_name(cell)} were not kept (its store row came from a run "
                "without this script); use a fresh --store"
            )
        return torch.cat([b["x_in"] for b in blobs]), torch.cat([b["x_hat"] for b in blobs])


def scored(row: dict, scores: list[float]) -> dict:
    """The store row with another detection score per image in place of its own."""
    return {**row, "scores": scores}


#: the two ways of setting clean against attacked scores, by name
READINGS = {"protocol": detection_auc_protocol, "all images": detection_auc_all}


def rescored_cells(run, kept: KeptInputs, scorers: dict[str, Callable]) -> tuple[list[str], dict[str, list]]:
    """Columns (defense · attack of each AUC cell) and, per representation (then the pixels, then the stored
    cells' own score), each column's (clean row, attacked row) of the source run with that representation's score
    in place of the stored one. Every cell's kept inputs are read, and every score computed, once."""
    cols, per_cell = [], []
    for c in run.table.cells:
        m = c.measure
        if m is None or m.metric != "auc":
            continue
        attack = preset_attack(m.attack, run.preset)
        (seed,) = run.seeds
        clean_cell, adv_cell = m.cell(seed, None), m.cell(seed, attack)
        inputs = {k: kept.load(k, len(run.rows[k]["labels"])) for k in (clean_cell, adv_cell)}
        cols.append(f"{c.row} · {c.col}")
        per_cell.append((run.rows[clean_cell], run.rows[adv_cell], inputs, (clean_cell, adv_cell)))
    out = {}
    for name, phi in [*scorers.items(), ("pixels ‖x_in − x̂‖", lambda x: x.flatten(1)), ("stored cell", None)]:
        pairs = []
        for clean, adv, inputs, (kc, ka) in per_cell:
            if phi is not None:
                with torch.no_grad():
                    s = {k: (phi(xi) - phi(xh)).norm(dim=1).tolist() for k, (xi, xh) in inputs.items()}
                clean, adv = scored(clean, s[kc]), scored(adv, s[ka])
            pairs.append((clean, adv))
        out[name] = pairs
    return cols, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default="invgan-table3-fmnist", help="a Fashion-MNIST detection table")
    ap.add_argument("--n", type=int, default=100, help="images per cell")
    ap.add_argument("--preset", default="paper", help="paper | quick (smoke budgets)")
    add_other_args(ap)
    ap.add_argument("--store", default=None, help="store dir (default $DEFBENCH_HOME/scratch/detection-phi)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/detection_phi.md", help="Markdown file")
    args = ap.parse_args(argv)
    table = TABLES.get(args.table)
    if (
        table is None
        or table.dataset != "fmnist"
        or not any(c.measure and c.measure.metric == "auc" for c in table.cells)
    ):
        raise SystemExit(f"{args.table!r} is not a Fashion-MNIST detection table of 'defbench paper list'")
    root = data_root()
    store = Path(args.store or home_dir() / "scratch" / "detection-phi")
    t0 = time.time()
    other, metrics = scratch_classifier(OTHERS[args.other], args.train_seed, not args.no_progress)
    zoo, _ = get_classifier("fmnist", args.preset, "cpu", root, train_missing=False, progress=False)
    classifiers = {"zoo": zoo.eval(), args.other: other}
    sources = chosen(args)
    runs, kept = {}, {}
    for label in sources:
        kept[label] = KeptInputs(store / "kept" / f"{args.preset}-n{args.n}" / label)
        runs[label] = run_table(
            table.only_threats(["graybox", "reparam"]),
            n=args.n,
            preset=args.preset,
            out=str(store),
            data_root=root,
            progress=not args.no_progress,
            threat_n=parse_threat_n([]),
            classifier="zoo" if label == "zoo" else other,
            batch_hook=kept[label],
        )
    if args.only:
        print(f"{sources[0]}: cells and their inputs in {store}; run without --only to score both sources")
        return 0
    scorers = {f"{c}: {r}": f for c, clf in classifiers.items() for r, f in representations(clf).items()}
    computed = sum(r.computed for r in runs.values())
    recipe = OTHERS[args.other]
    history = epoch_accuracies(metrics)
    lines = [
        f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s), {time.time() - t0:.0f} s "
        f"({computed} cells computed, the rest reused from {store}). {args.table}'s gray-box and "
        f"reparameterisation detection cells, preset {args.preset}, {args.n} seeded Fashion-MNIST test images. "
        f"Classifiers: the zoo's and '{args.other}' ({recipe.arch}: Adam at a constant {recipe.lr:g}, batch "
        f"{recipe.batch_size}, {recipe.epochs} epochs, seed {args.train_seed}; test accuracy per epoch: {history}). "
        "Each table's attacks differentiate its source classifier; each row scores the same kept inputs x_in and "
        "projections x̂ by ‖r(x_in) − r(x̂)‖ for one representation r. 'protocol': the success protocol's AUC "
        "(negatives: clean images the source gets right; positives: the successful adversarials made from them); "
        "'all images': every clean image against every attacked one, as InvGAN's code computes it "
        "(plots/plot_ROC.py). AUC (Hanley–McNeil 95%). 'stored cell' is the run's own score, which the source's "
        "Φ row must equal.",
    ]
    for label, run in runs.items():
        cols, cells = rescored_cells(run, kept[label], scorers)
        for reading, auc in READINGS.items():
            rows = [[name, *(auc_cell(*auc(c, a)) for c, a in pairs)] for name, pairs in cells.items()]
            lines += ["", f"Attacks against the {label} classifier, {reading}:", "", *markdown(rows, ["score", *cols])]
    return write_table(lines, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
