"""Progress bars: :func:`bar` for long work, and the progress of a defense's inner loop for the bars of long cells.

A bar is drawn on a terminal (or in a notebook) only: written into a log file or a pipe (a cluster job, CI),
tqdm's carriage-return redraws made megabytes of one unreadable line, and the log lines the commands write
(each cell's accuracy, each training epoch) say how far the work is.

A cell of 100 images is one batch, and one batch of RIDE at the paper's readings is 10,000 optimiser steps
(a BPDA cell, 11 such purifications): the matrix's per-batch bar would stand at 0/1 for hours. Long loops
(the projection engine's latent steps, RIDE's network steps) call :func:`step` once per optimiser step; the
caller that shows a bar wraps the work in :func:`reporting`. Without a reporter :func:`step` does nothing, so
defenses run the same whether or not anyone watches.

Example::

    from tqdm import tqdm
    from defbench.progress import reporting

    with tqdm(unit="step") as bar, reporting(bar.update):
        x_hat = defense.purify(x)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

_reporter: ContextVar[Callable[[int], object] | None] = ContextVar("defbench_step_reporter", default=None)


def bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm's) that draws when ``enabled`` and its stream is a terminal, or in a
    notebook (tqdm's notebook bar reads ``disable=None`` as on); elsewhere it is silent (a log gets the commands'
    own lines). tqdm's own switch ``TQDM_DISABLE`` (set, and not 0 or false) silences it too: tqdm reads its
    environment once, at import, and an explicit ``disable`` argument overrides it, so it is read here."""
    off = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")
    return tqdm(iterable, disable=None if enabled and not off else True, **kwargs)


def step(n: int = 1) -> None:
    """Report ``n`` optimiser steps of the loop running now to the active reporter, if any."""
    fn = _reporter.get()
    if fn is not None:
        fn(n)


@contextmanager
def reporting(fn: Callable[[int], object]) -> Iterator[None]:
    """Within the block, :func:`step` hands its counts to ``fn`` (e.g. a tqdm bar's ``update``)."""
    token = _reporter.set(fn)
    try:
        yield
    finally:
        _reporter.reset(token)
