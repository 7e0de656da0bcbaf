"""``defbench store check|salvage`` (a run's store, rebuilt from its intact cells when damaged) and ``defbench
report`` (the tables of a store, and the HTML page)."""

from __future__ import annotations

from pathlib import Path

from defbench import DefbenchError
from defbench.harness.store import Store, check_dir, check_store, salvage_store
from defbench.reports.html import write_html_report
from defbench.reports.render import write_reports


def add_parsers(sub) -> None:
    sp = sub.add_parser(
        "store",
        help="check a run's store, or rebuild a damaged one from its intact cells",
        description="'check OUT' reads every cell of OUT/defbench.sqlite and reports the intact and "
        "broken ones (exit 1 if any is broken); 'salvage OUT' rebuilds the store from its "
        "intact cells, keeping the damaged file beside it as defbench.sqlite.damaged-*; "
        "the next run recomputes only the dropped cells. Salvage refuses while a run writes OUT.",
    )
    sp.add_argument("action", choices=("check", "salvage"), help="check | salvage")
    sp.add_argument("out", metavar="OUT", help="output dir of a 'defbench matrix' or 'defbench paper run'")
    sp.set_defaults(func=store)

    rp = sub.add_parser(
        "report",
        help="print the tables of a run's store; --html writes one self-contained page",
        description="Print the tables of OUT/defbench.sqlite as 'defbench matrix' does at the end "
        "of a run (and rewrite its CSV, LaTeX and PNG files); with --html also write one "
        "self-contained HTML file: tables, paper vs ours, sanity flags, sweep plots and "
        "example image grids (see docs/REPORT.md).",
    )
    rp.add_argument("out", metavar="OUT", help="output dir of a 'defbench matrix' or 'defbench paper run'")
    rp.add_argument(
        "--html",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="write the HTML report to PATH (default OUT/report.html)",
    )
    rp.set_defaults(func=report)


def store(args) -> int:
    """``check``: exit 1 when a cell is broken; ``salvage``: rebuild the store from its intact cells."""
    if args.action == "check":
        chk = check_store(args.out)
        print(chk.summary())
        return 0 if chk.ok else 1
    chk, backup = salvage_store(args.out)
    if backup is None:
        print(f"{chk.summary()}; nothing to salvage")
    else:
        print(
            f"{chk.path}: kept {len(chk.intact)} intact cell(s), dropped {len(chk.broken)} broken row(s)"
            f"{' and unreadable pages' if chk.errors else ''}; the damaged file is {backup}; the next run "
            "recomputes the dropped cells"
        )
    return 0


def report(args) -> int:
    """Print the store's tables (rewriting their files) and, with --html, write the HTML page."""
    st = Store(args.out, readonly=True)  # a report never writes the store (nor switches its journal mode)
    try:
        if args.html:  # the page's path, checked before any table is printed
            page = Path(args.html).expanduser()
            if page.is_dir():
                raise DefbenchError(
                    f"--html {page} is a directory; give the page's file path, e.g. {page / 'report.html'}"
                )
            check_dir(page.parent, f"--html {page}: its directory")
        print(write_reports(st, args.out))
        if args.html is not None:
            print(f"HTML report: {write_html_report(st, args.out, args.html or None)}")
    finally:
        st.close()
    return 0
