"""Shared by the benchmark scripts: the command line that produced a table, the table as Markdown, writing it, the
data root."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from defbench.metrics import wilson_interval
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


def accuracy_cell(k: int, n: int, digits: int = 0) -> str:
    """``k`` right of ``n`` as a table cell: the accuracy in % and its Wilson 95% interval, e.g. ``89 (81–94)``."""
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.{digits}f} ({100 * lo:.0f}–{100 * hi:.0f})"


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
