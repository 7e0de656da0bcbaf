"""Paper tables: the runner. ``defbench paper run TABLE`` builds a :class:`~defbench.harness.matrix.MatrixSpec`
from the spec, runs the cells the table needs through :class:`~defbench.harness.matrix.MatrixRunner` into its
SQLite store (so a long table resumes), and reports, per cell, the paper's value, ours (computed from the store
rows, see :mod:`defbench.reports.paper`) and the difference. Specs whose setting the runner cannot express yet
carry an ``unsupported`` reason; ``paper run`` refuses them with a one-line error instead of faking a result.

The schema is :mod:`~defbench.harness.paper_spec`, the specs are one data module per paper, the catalogue is
:mod:`~defbench.harness.paper_tables` (all re-exported here, where they always were); the ``defbench paper``
command is :mod:`defbench.cli.paper`.
"""

from __future__ import annotations

import time
from dataclasses import replace

from torch import nn

from defbench import CellsFailed, DefbenchError
from defbench.harness.matrix import MatrixRunner
from defbench.harness.models import PRESETS
from defbench.harness.paper_spec import (  # noqa: F401 -- the schema, re-exported where it always was
    DEFAULT_N,
    METRICS,
    PAPERS_DIR,
    QUICK_N,
    Measure,
    PaperCell,
    PaperRun,
    PaperTable,
    Pool,
    default_out,
    preset_attack,
)
from defbench.harness.paper_tables import TABLES, resolve  # noqa: F401 -- the catalogue, re-exported
from defbench.limits import LIMITS, whole_number


def run_table(
    table: PaperTable,
    n: int | None = None,
    preset: str = "paper",
    device: str = "cpu",
    seed: int = 0,
    out: str | None = None,
    data_root: str | None = None,
    progress: bool = True,
    threat_n: dict[str, int] | None = None,
    executor=None,
    classifier: str | nn.Module = "zoo",
    batch_hook=None,
    eval_repeats: int | None = None,
) -> PaperRun:
    """Run the cells ``table`` needs through the matrix runner (resuming from its store) and return the rows;
    ``executor`` computes them (default :class:`LocalExecutor`; :class:`RayExecutor` for a Ray cluster).
    ``classifier``: ``zoo`` (the zoo's classifier of the dataset and preset), a classifier plugin's name, or the
    caller's own ``nn.Module`` (images in [0, 1] to logits; local executor only, as for
    :func:`defbench.evaluate`); the cells of a plugin or module are keyed apart from the zoo's by its weights.
    ``batch_hook``: :attr:`MatrixRunner.batch_hook` of the run (cells computed in this process only).
    ``eval_repeats``: purifications per image for the randomized defenses (None: the table's, one as the papers
    classify); the report reads each image's first, the one-purification cell, and notes the others' spread."""
    if not table.runnable:
        raise DefbenchError(f"paper table {table.id} is not yet supported: {table.unsupported}")
    if preset not in PRESETS:
        raise DefbenchError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    n = n if n is not None else table.default_n(preset)
    if n < 1:
        raise DefbenchError(f"--n must be positive, got {n}")
    if eval_repeats is not None:  # the rule of defbench.evaluate's and the command line's counts
        try:
            table = replace(table, eval_repeats=whole_number(eval_repeats, 1, LIMITS["eval-repeats"]))
        except ValueError as exc:
            raise DefbenchError(f"eval_repeats {exc}") from None
    own = None
    if isinstance(classifier, nn.Module):  # the runner wraps it (features/head), moves it and sets eval mode
        own, classifier = classifier, "zoo"
    elif not isinstance(classifier, str):
        raise DefbenchError(
            "classifier must be 'zoo', a classifier plugin's name or a torch.nn.Module, got "
            f"{type(classifier).__name__}"
        )
    spec = replace(
        table.matrix_spec(n, preset, device, seed, out, data_root, progress, threat_n), classifier=classifier
    )
    t0 = time.time()
    runner = MatrixRunner(spec, classifier=own)
    runner.batch_hook = batch_hook
    cells = table.needed_cells(spec.seeds, preset)
    runner.run(executor, cells)  # the cells the store lacks, as 'defbench matrix' computes its own
    keys = {c: runner.key(c)[0] for c in cells}  # n and batch size are part of every key
    rows = {}
    failed = {f["key"]: f["message"] for f in runner.store.failures()}
    for c, k in keys.items():
        found = list(runner.store.rows(key=k.key))
        if not found and k.key in failed:
            raise CellsFailed(
                f"cell s{c.seed} {c.defense} {c.threat} {c.attack.name if c.attack else 'clean'} "
                f"failed: {failed[k.key]}; the other cells are stored, rerun to retry it"
            )
        if not found:
            raise DefbenchError(f"cell {c} missing from {runner.store.path} after the run")
        rows[c] = found[0]
    return PaperRun(
        table,
        preset,
        n,
        spec.seeds,
        spec.device,
        spec.out,
        rows,
        len(cells) - runner.skipped,
        runner.skipped,
        time.time() - t0,
        {t: k for t, k in spec.threat_n.items() if k < n},
    )
