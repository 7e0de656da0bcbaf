"""How far the purification's seed moves a randomized defense's cells: for every cell of a store purified k > 1 times
(``defbench matrix`` or ``paper run`` with ``--eval-repeats k``), each purification's accuracy counted alone, their
mean, the images right in all k and in any of them, and, with ``--against`` the store of a one-purification run,
that run's cell beside them and whether the first purification repeats it image for image (it does since the
attack's draws stopped depending on ``--eval-repeats``; a cell that does not names how many predictions differ).

    python benchmarks/purification_spread.py --store STORE [--against ONE_PURIFICATION_STORE] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from _common import command_line, emit, markdown

from defbench import metrics
from defbench.harness.store import Store
from defbench.reports.common import Row, cell_name, repeat_preds

HEADER = [
    "defense",
    "cell",
    "one-purification run",
    "each purification (%)",
    "mean",
    "right in all / any",
    "first = that run's cell",
]


def spread_rows(rows: Iterable[Row], against: Iterable[Row] = ()) -> list[list[object]]:
    """One table row per cell of ``rows`` with k > 1 purifications, in store order; a cell of ``against`` is the
    same cell when it has the same defense, attack label and threat."""
    ref = {(r["defense"], cell_name(r)): r for r in against}
    out = []
    for r in rows:
        reps = repeat_preds(r)
        if len(reps) < 2:
            continue
        name, y = (r["defense"], cell_name(r)), r["labels"]
        accs = [100 * metrics.accuracy(p, y) for p in reps]
        right_all = int(metrics.all_repeats_correct(reps, y).sum())
        right_any = sum(any(c) for c in zip(*(metrics.correct(p, y) for p in reps), strict=True))
        one, same = "—", "—"
        o = ref.get(name)
        if o is not None:
            if list(o["indices"]) != list(r["indices"]):
                sys.exit(f"{' / '.join(name)}: the two runs' cells hold other test images")
            one = f"{100 * metrics.accuracy(o['preds'], y):.0f}"
            differ = sum(int(a) != int(b) for a, b in zip(o["preds"], reps[0], strict=True))
            bare = sum(int(a) != int(b) for a, b in zip(o["preds_undefended"], r["preds_undefended"], strict=True))
            same = "yes" if differ == bare == 0 else f"no: {differ} predictions differ ({bare} of the bare classifier)"
        out.append(
            [
                *name,
                one,
                ", ".join(f"{a:.0f}" for a in accs),
                f"{sum(accs) / len(accs):.1f}",
                f"{right_all} / {right_any} of {len(y)}",
                same,
            ]
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="output dir of a run with --eval-repeats k > 1")
    ap.add_argument("--against", help="output dir of the same cells' one-purification run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the table here as well")
    args = ap.parse_args(argv)
    rows = list(Store(args.store).rows(seed=args.seed))
    against = list(Store(args.against).rows(seed=args.seed)) if args.against else []
    table = spread_rows(rows, against)
    if not table:
        sys.exit(f"no cell of {args.store} (seed {args.seed}) was purified more than once")
    lines = [f"Command: `{command_line(argv)}`", "", *markdown(table, HEADER)]
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
