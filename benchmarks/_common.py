"""Shared by the benchmark scripts: the command line that produced a table, and writing the table."""

from __future__ import annotations

import sys
from pathlib import Path


def command_line(argv) -> str:
    """``python benchmarks/<script>.py ARGS`` as it was run (argv: main()'s argument, None = sys.argv)."""
    return " ".join(["python", Path(sys.argv[0]).as_posix()] + list(argv if argv is not None else sys.argv[1:]))


def write_table(lines: list[str], out: str | Path) -> int:
    """Write the Markdown lines to ``out`` (parents created), echo them, return exit status 0."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
