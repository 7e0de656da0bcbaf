"""Shared by the benchmark scripts: the command line that produced a table, the table as Markdown, writing it, the
data root."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from defbench import DefbenchError
from defbench.datasets import canonical_name
from defbench.metrics import auc_interval, wilson_interval
from defbench.reports.common import markdown_table

REPO = Path(__file__).resolve().parents[1]


def data_root() -> str | None:
    """The data root of a benchmark run: ``$DEFBENCH_DATA`` when set, else ``../shared/data`` beside the
    checkout, else ``shared/data`` inside it (a device machine receives the checkout alone). The choice is
    written to ``DEFBENCH_DATA`` so that the loaders and any ``defbench`` subprocess see it. None when there is
    none of the three: the loaders then try the user cache and a download."""
    if os.environ.get("DEFBENCH_DATA"):
        return os.environ["DEFBENCH_DATA"]
    for cand in (REPO.parent / "shared" / "data", REPO / "shared" / "data"):
        if cand.is_dir():
            os.environ["DEFBENCH_DATA"] = str(cand)
            return str(cand)
    return None


def dataset_name(text: str) -> str:
    """``type=`` of a benchmark's ``--dataset``: the canonical name of any alias the CLI accepts, so that zoo ids,
    class names and headers are the same for ``fashion-mnist`` as for ``fmnist``."""
    try:
        return canonical_name(text)
    except DefbenchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass
class GrayBoxSetup:
    """What a gray-box benchmark on Fashion-MNIST starts from: ``n`` seeded test images, the paper preset's
    classifier and defenses from the zoo (never trained here), and how many images the classifier gets right."""

    x: torch.Tensor
    y: torch.Tensor
    clf: torch.nn.Module
    defenses: dict
    clean: int

    @property
    def n(self) -> int:
        return len(self.y)

    def describe(self, argv, seed: int) -> str:
        """The opening of a table's caption: its command, the device, the images, the models and where they are."""
        from defbench.harness.zoo import zoo_dir

        return (
            f"Command: `{command_line(argv)}`; CPU, {torch.get_num_threads()} thread(s). {self.n} seeded "
            f"Fashion-MNIST test images (seed {seed}), the paper preset's classifier (clean on these images: "
            f"{accuracy_cell(self.clean, self.n)}) and GAN from {zoo_dir()}"
        )

    def right(self, images: torch.Tensor) -> int:
        """How many of ``images`` (the setup's, attacked or purified) the classifier gets right."""
        with torch.no_grad():
            return int((self.clf(images).argmax(1) == self.y).sum())

    def cells(self, images: torch.Tensor, purify) -> list[str]:
        """:func:`accuracy_cell` of the bare classifier on ``images``, then of each defense ``d`` on
        ``purify(d, images)``."""
        return [
            accuracy_cell(self.right(out), self.n)
            for out in (images, *(purify(d, images) for d in self.defenses.values()))
        ]


def gray_box_setup(n: int, seed: int, defenses) -> GrayBoxSetup:
    """:class:`GrayBoxSetup` of the ``n`` images of ``eval_indices(n, seed)`` and the named ``defenses``."""
    from defbench.harness.data import load_dataset
    from defbench.harness.models import build_defense, get_classifier

    root = data_root()
    data = load_dataset("fmnist", "test", root)
    x, y = data.get(data.eval_indices(n, seed))
    clf, _ = get_classifier("fmnist", "paper", "cpu", root, train_missing=False, progress=False)
    clf.eval()
    built = {
        d: build_defense(d, "fmnist", "paper", "cpu", seed=seed, data_root=root, train_missing=False) for d in defenses
    }
    setup = GrayBoxSetup(x, y, clf, built, 0)
    setup.clean = setup.right(x)
    return setup


def accuracy_cell(k: int, n: int, digits: int = 0) -> str:
    """``k`` right of ``n`` as a table cell: the accuracy in % and its Wilson 95% interval, e.g. ``89 (81–94)``."""
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.{digits}f} ({100 * lo:.0f}–{100 * hi:.0f})"


def auc_cell(auc: float, n_neg: int, n_pos: int) -> str:
    """A ROC AUC as a table cell with its Hanley–McNeil 95% interval, e.g. ``0.812 (0.75–0.87)``; the interval is
    left out where it is undefined (AUC 0 or 1, an empty side) and a cell without an AUC is ``—``."""
    if auc != auc:  # NaN: a side empty
        return "—"
    lo, hi = auc_interval(auc, n_neg, n_pos)
    return f"{auc:.3f}" + ("" if lo != lo else f" ({lo:.2f}–{hi:.2f})")


def command_line(argv) -> str:
    """``python benchmarks/<script>.py ARGS`` as it was run (argv: main()'s argument, None = sys.argv), quoted
    for a POSIX shell where an argument needs it (``--attack 'PGD (n=10)'``), so a table's command pastes."""
    args = list(argv if argv is not None else sys.argv[1:])
    return shlex.join(["python", Path(sys.argv[0]).as_posix(), *args])


def markdown(rows: Sequence[Sequence[object]], header: Sequence[str], align: Sequence[str] | None = None) -> list[str]:
    """The lines of a Markdown table of ``rows`` under ``header`` (pandas' ``to_markdown``, cells as given);
    ``align``: "left" or "right" per column."""
    return markdown_table(pd.DataFrame([list(r) for r in rows], columns=list(header)), align=align).splitlines()


def emit(lines: list[str], out: str | Path | None = None) -> int:
    """The report's lines: written to ``out`` (and echoed) when given, else printed; exit status 0."""
    if out:
        return write_table(lines, out)
    print("\n".join(lines))
    return 0


def write_table(lines: list[str], out: str | Path) -> int:
    """Write the Markdown lines to ``out`` (parents created), echo them, return exit status 0."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
