"""``defbench paper list`` and ``defbench paper run TABLE``: the paper tables as specs, each run through the matrix
runner (:mod:`defbench.harness.papers`) and printed as paper / ours / delta per cell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defbench import DefbenchError
from defbench.classifiers.registry import check_name as check_classifier
from defbench.cli.options import (
    add_classifier,
    add_common,
    add_executor,
    add_threat_n,
    count_type,
    executor,
    lowered,
    parse_threat_n,
)
from defbench.harness import papers
from defbench.harness.models import PRESETS
from defbench.harness.store import check_dir
from defbench.reports.paper import list_markdown, write_paper_report
from defbench.seeding import resolve_device


def add_parser(sub) -> None:
    pp = sub.add_parser(
        "paper",
        help="reproduce a paper's table: list the specs, run one against the paper",
        description="Paper tables as specs: 'list' shows them, 'run TABLE' runs one through the "
        "matrix runner (resumable store) and prints paper / ours / delta per cell.",
    )
    psub = pp.add_subparsers(dest="paper_cmd", metavar="ACTION")
    lp = psub.add_parser(
        "list",
        help="list every paper table spec and whether it can run",
        description="Every paper table spec: whether it runs here, how many of its cells the paper gives a "
        "number for, and its status against the paper (reproduced within 5 points or inside the 95% interval, "
        "explained by an experiment that isolates the gap, open, or not run here), then each status's reason. "
        "docs/RESULTS.md holds the evidence under each table's section.",
    )
    lp.set_defaults(func=list_tables)
    rp = psub.add_parser(
        "run",
        help="run one table (or a group such as invgan-table2) and compare to the paper",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  defbench paper run mimicgan-fig5b --preset quick --n 20\n"
        "  defbench paper run invgan-table2 --n 500\n"
        "  defbench paper run invgan-table2-fmnist --n 100 --threats graybox reparam   (no BPDA cells)\n"
        "  defbench paper run mimicgan-fig5b --classifier mynet   (a classifier plugin in the zoo's place)\n"
        "  defbench paper run mimicgan-fig5b --n 100 --eval-repeats 5   (how far a purification's seed moves a cell)",
    )
    rp.add_argument("table", help="table id from 'defbench paper list', or a group prefix (e.g. invgan-table2)")
    rp.add_argument(
        "--n",
        type=count_type("n"),
        default=None,
        help=f"images per cell (default the paper's n, 500 when the paper gives none; quick preset at most "
        f"{papers.QUICK_N})",
    )
    add_threat_n(rp)
    rp.add_argument(
        "--threats",
        nargs="+",
        metavar="THREAT",
        default=None,
        help="measure only these threat models' cells, e.g. 'graybox reparam' to leave out BPDA's on a CPU; the "
        "others print — with a note (clean cells always run)",
    )
    rp.add_argument(
        "--eval-repeats",
        type=count_type("eval-repeats"),
        default=None,
        help="purify each image K times for randomized defenses (fresh seeds; the papers classify one "
        "purification, the default): the table still reads each image's first purification, which is the "
        "one-purification run's cell, and its notes give how far the K purifications of a cell spread",
    )
    rp.add_argument(
        "--preset", type=lowered, default="paper", help="paper (the papers' settings; default) | quick (smoke budgets)"
    )
    add_classifier(rp)
    rp.add_argument(
        "--out", default=None, help="store and report dir (default runs/paper/<dataset>-<preset>-n<N>-b<B>)"
    )
    add_executor(rp)
    add_common(rp)
    rp.set_defaults(func=run)
    pp.set_defaults(func=lambda args: (pp.print_help(), 0)[1])


def list_tables(args) -> int:
    print(list_markdown(list(papers.TABLES.values())))
    return 0


def run(args) -> int:
    """Run the table (or every runnable table of a group) and print each one's comparison with the paper."""
    if not args.table.strip():
        raise DefbenchError("paper run needs a table id; see 'defbench paper list'")
    tables = papers.resolve(args.table)
    if args.preset not in PRESETS:
        raise DefbenchError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    classifier = check_classifier(args.classifier)
    if args.out is not None:
        check_dir(args.out)  # a file in its place or above it, no permission: said before any work
    threat_n = parse_threat_n(args.n_threat)
    if len(tables) == 1 and not tables[0].runnable:
        raise DefbenchError(f"paper table {tables[0].id} is not yet supported: {tables[0].unsupported}")
    # an unknown --threats name is said here, before the device or a Ray executor is set up
    runnable = [t.only_threats(args.threats) for t in tables if t.runnable]
    if not runnable:
        raise DefbenchError(
            f"no table of {args.table} can run yet: " + "; ".join(f"{t.id}: {t.unsupported}" for t in tables)
        )
    chosen = [th.strip().lower() for th in args.threats or ()]  # --threats: the run's threats (checked above)
    in_tables = {th for t in runnable for th in (chosen or t.threats)}
    for th, k in threat_n.items():  # one the tables lack would be ignored, after hours of training
        if th not in in_tables:
            raise DefbenchError(
                f"--n-threat {th}={k}: {args.table} has no {th} cells "
                f"(its threats: {', '.join(sorted(in_tables)) or 'none'}); drop the option"
            )
    device = str(resolve_device(args.device))
    cells_executor = executor(args)
    for t in runnable:
        res = papers.run_table(
            t,
            args.n,
            args.preset,
            device,
            args.seed,
            args.out,
            args.data_root,
            not args.no_progress,
            threat_n,
            executor=cells_executor,
            classifier=classifier,
            eval_repeats=args.eval_repeats,
        )
        print(write_paper_report(res, res.out))
        print(
            f"\n{res.computed} cells computed, {res.reused} reused from {Path(res.out) / 'defbench.sqlite'} in "
            f"{res.seconds:.0f}s on {res.device}\n"
        )
        sys.stdout.flush()
    for t in tables:
        if not t.runnable:
            print(f"skipped {t.id}: not yet supported: {t.unsupported}")
    return 0
