"""The papers' numbers in the specs (harness/papers.py) against the papers themselves.

Every paper value (and ± spread) of every spec is looked up in the plain-text copy of the paper the spec names
in its ``source`` (``../shared/papers/NNN_….txt``), in the table printed next to the caption the source names
("Figure 5(b)" → the table beside the line "Figure 5: …", "Table 2 (MNIST block)" → the MNIST column group
of the table beside "Table 2: …"), at the spec cell's row and column. A value the text gives in prose (a
caption's or a section's clean accuracy) is read from that sentence (``PROSE``). A value that is only drawn in
a figure would have to say so in its cell's note ("read off the figure"); none does today. The other way
round, a printed number in a row and column the spec has must not be missing from the spec.

Numbers are parsed strictly: "05.60" is 5.6, "0.34 \\pm 0.18" a value and its spread, "$\\mathbf{98\\%}$" 98; a
cell holding two numbers (the copies' garbled supplementary tables) is an error, not a match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from defbench.harness.papers import TABLES, PaperCell, PaperTable

PAPERS = Path(__file__).resolve().parents[1].parent / "shared" / "papers"

#: values the papers print in prose, not in the table: (table id, row, col) -> a regex with the number as group 1
#: (it must match exactly one line of the spec's source file)
PROSE = {
    ("mimicgan-fig5b", "Clean", "No Defense"): r"^Figure 5:.*Performance on clean test data is (\S+)%\.",
    ("ride-table2-mnist", "No defense", "Clean"): r"For MNIST, we train a simple CNN .*?test accuracy of (\S+)%\.",
    ("ride-table2-cifar10", "No defense", "Clean"): r"For CIFAR-10, we train a ResNet18 .*?test accuracy of (\S+)%",
    ("ride-table2-imagenet", "No defense", "Clean"): r"76\.15% and (\S+)% on the validation set and our subset",
}
#: a cell whose note says this holds a value measured off a plot: not expected in the text
OFF_FIGURE = "read off the figure"
_NUM = r"\d+(?:\.\d+)?"


# ------------------------------------------------------------------------------------------ reading the text
def parse_number(cell: str) -> tuple[float, float | None] | None:
    """A printed table cell as (value, spread); None for an empty or dash cell. Raises on anything else."""
    s = re.sub(r"\\mathbf\{([^}]*)\}", r"\1", cell).replace("$", "").replace("\\%", "%").replace("\\pm", "±")
    s = " ".join(s.split())
    if s in ("", "-", "–", "—") or s.lower().startswith("n/a"):
        return None
    m = re.fullmatch(rf"({_NUM})\s*%?(?:\s*±\s*({_NUM}))?", s)
    if m is None:
        raise ValueError(f"not one number: {cell!r}")
    return float(m.group(1)), None if m.group(2) is None else float(m.group(2))


def norm_label(s: str) -> str:
    """Row / column labels without citations ([26]), 'Ours' marks and daggers, case-folded."""
    s = re.sub(r"\[\d+(?:,\s*\d+)*\]", " ", s)
    s = re.sub(r"\(\s*(?:<i>)?ours(?:</i>)?\s*\)", " ", s, flags=re.I)
    s = s.replace("\\dagger", " ").replace("*", " ")
    return " ".join(s.split()).lower()


def _is_table_line(line: str) -> bool:
    return "\t" in line or line.lstrip().startswith("|")


def _cells(line: str) -> list[str]:
    if line.lstrip().startswith("|"):
        return [c.strip() for c in line.strip().strip("|").split("|")]
    return [c.strip() for c in line.split("\t")]


@dataclass
class Section:
    """One header (column names, each with the column group above it) and the rows under it."""

    columns: list[tuple[str, str]]  # (group, name), index-aligned with a row's cells
    rows: list[list[str]]  # each row's cells, its label first


def table_near_caption(text: str, caption: str, max_gap: int = 8) -> list[list[str]]:
    """The table (rows of cells) printed nearest the single line that starts with ``caption`` (e.g.
    "Table 2:"), above or below it within ``max_gap`` lines; an ambiguous or missing table is an error."""
    lines = text.splitlines()
    caps = [i for i, line in enumerate(lines) if line.startswith(caption)]
    if len(caps) != 1:
        raise LookupError(f"{len(caps)} lines start with {caption!r}")
    blocks, i = [], 0
    while i < len(lines):
        if _is_table_line(lines[i]):
            j = i
            while j < len(lines) and _is_table_line(lines[j]):
                j += 1
            blocks.append((i, j))
            i = j
        else:
            i += 1
    c = caps[0]
    gaps = sorted((c - e + 1 if e <= c else s - c, s, e) for s, e in blocks)
    gaps = [g for g in gaps if g[0] <= max_gap]
    if not gaps or (len(gaps) > 1 and gaps[0][0] == gaps[1][0]):
        raise LookupError(f"no single table next to {caption!r}")
    _, s, e = gaps[0]
    return [_cells(line) for line in lines[s:e] if not re.fullmatch(r"[\s|:-]+", line)]


def sections(rows: list[list[str]]) -> list[Section]:
    """Split a table at its header lines (no cell after the first is a number); two header lines in a row are
    column groups over column names (InvGAN's 'MNIST | Fashion-MNIST' blocks)."""

    def number(c: str) -> bool:
        try:
            return parse_number(c) is not None
        except ValueError:
            return False

    out: list[Section] = []
    header: list[list[str]] = []
    for r in rows:
        if not any(number(c) for c in r[1:]):
            header.append(r)
            continue
        if header:
            names = header[-1]
            groups = header[-2] if len(header) > 1 else [""] * len(names)
            cur, col_groups = "", []
            for k in range(len(names)):
                cur = groups[k] if k < len(groups) and groups[k] else cur
                col_groups.append(cur)
            out.append(Section([(g, n) for g, n in zip(col_groups, names, strict=True)], []))
            header = []
        if not out:
            raise LookupError(f"a table row before any header: {r}")
        out[-1].rows.append(r)
    return out


def _find_row(rows: list[list[str]], label: str) -> list[str] | None:
    key = norm_label(label)
    exact = [r for r in rows if norm_label(r[0]) == key]
    if exact:
        return exact[0] if len(exact) == 1 else None
    longer = [r for r in rows if norm_label(r[0]).startswith(key + " ")]  # 'obfuscated (attack includes gan)'
    return longer[0] if len(longer) == 1 else None


def _find_col(sec: Section, label: str, group: str | None) -> int | None:
    hits = [
        k
        for k, (g, n) in enumerate(sec.columns)
        if k > 0 and norm_label(n) == norm_label(label) and (group is None or g == group)
    ]
    return hits[0] if len(hits) == 1 else None


# ------------------------------------------------------------------------------------------ the check
def _source(table: PaperTable) -> tuple[str, str, str | None]:
    """(file, caption prefix, column group or dataset) from the spec's ``source``."""
    f = re.search(r"\((\d{3}_[0-9a-f]{16}\.txt)\)", table.source)
    cap = re.search(r"\b(Figure|Table) (\d+)", table.source)
    grp = re.search(r"\(([^()]+) (?:block|rows)\)", table.source)
    if f is None or cap is None:
        raise LookupError(f"{table.id}: source {table.source!r} names no paper file or table / figure")
    return f.group(1), f"{cap.group(1)} {cap.group(2)}:", None if grp is None else grp.group(1)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _distance(s: str) -> tuple[str, float] | None:
    """'$0.031~(\\ell_{\\infty})$' or 'ℓ∞ 0.031' -> ('inf', 0.031)."""
    s = s.replace("\\infty", "∞").replace("\\ell", "ℓ").replace("{", "").replace("}", "").replace("_", "")
    m = re.search(rf"(?P<num>{_NUM})\W*\(?ℓ(?P<norm>∞|2)", s) or re.search(rf"ℓ(?P<norm>∞|2)\s*(?P<num>{_NUM})", s)
    if m is None:
        return None
    return ("inf" if m["norm"] == "∞" else "2"), float(m["num"])


def _long_form_lookup(sec: Section, table: PaperTable, cell: PaperCell, group: str | None, problems: list[str]):
    """RIDE Table 2 (Defense | Dataset | Distance | Accuracy): the spec's BPDA column is the Accuracy of the row
    with the spec's defense and dataset, at the distance the spec gives (column label or note)."""
    names = [norm_label(n) for _, n in sec.columns]
    rows = [r for r in sec.rows if norm_label(r[0]) == norm_label(cell.row) and r[1] == group]
    if not cell.col.startswith("BPDA") or not rows:
        return None
    if len(rows) != 1:
        problems.append(f"{table.id} ({cell.row}, {cell.col}): {len(rows)} rows for {group}")
        return None
    r = rows[0]
    want = _distance(cell.note) or _distance(cell.col)
    got = _distance(r[names.index("distance")])
    if want != got:
        problems.append(f"{table.id} ({cell.row}, {cell.col}): distance {want} in the spec, {got} in the paper")
    return r[names.index("accuracy")]


def check_table(table: PaperTable, texts: dict[str, str]) -> tuple[list[str], int]:
    """Problems found for ``table`` and how many paper values were matched."""
    problems: list[str] = []
    matched = 0
    valued = [c for c in table.cells if c.paper is not None]
    try:
        fname, caption, group = _source(table)
        secs = sections(table_near_caption(texts[fname], caption))
    except (LookupError, KeyError, ValueError) as exc:
        return ([f"{table.id}: {exc}"] if valued else []), 0
    for c in table.cells:
        where = f"{table.id} ({c.row}, {c.col})"
        prose = PROSE.get((table.id, c.row, c.col))
        printed = None
        try:
            if prose is not None:
                hits = re.findall(prose, texts[fname], flags=re.M)
                if len(hits) != 1:
                    problems.append(f"{where}: {len(hits)} sentences match {prose!r}")
                    continue
                printed = parse_number(hits[0])
            else:
                raw = None
                for sec in secs:
                    if any(norm_label(n) == "dataset" for _, n in sec.columns):
                        raw = _long_form_lookup(sec, table, c, group, problems)
                    else:
                        row, k = _find_row(sec.rows, c.row), _find_col(sec, c.col, group)
                        raw = row[k] if row is not None and k is not None and k < len(row) else None
                    if raw is not None:
                        break
                if raw is None:  # this row / column is not in the paper's table
                    if c.paper is not None and OFF_FIGURE not in c.note:
                        problems.append(f"{where}: {c.paper} is not printed at {caption} in {fname}")
                    continue
                printed = parse_number(raw)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if OFF_FIGURE in c.note:
            problems.append(f"{where}: marked '{OFF_FIGURE}' but the text prints {printed}")
        elif printed is None:
            if c.paper is not None:
                problems.append(f"{where}: the spec has {c.paper}, the paper prints no number")
        elif c.paper is None:
            problems.append(f"{where}: the paper prints {printed[0]}, the spec has none")
        elif not _same(c.paper, printed[0]):
            problems.append(f"{where}: the spec has {c.paper}, the paper prints {printed[0]}")
        elif (c.paper_std is None) != (printed[1] is None) or (
            c.paper_std is not None and not _same(c.paper_std, printed[1])
        ):
            problems.append(f"{where}: spread {c.paper_std} in the spec, {printed[1]} in the paper")
        else:
            matched += 1
    return problems, matched


@pytest.fixture(scope="module")
def texts():
    if not PAPERS.is_dir():
        pytest.skip(f"the papers' text copies are not at {PAPERS}")
    return {p.name: p.read_text(encoding="utf-8") for p in PAPERS.glob("*.txt")}


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_spec_numbers_are_the_papers(table, texts):
    """Every paper value and spread of the spec is the number printed where the spec's source says (and no
    number printed at a row and column of the spec is missing from it). Catches a typo in a spec, swapped
    rows or columns, a value from the wrong dataset block, and a source that names the wrong table."""
    problems, matched = check_table(table, texts)
    assert not problems, "\n".join(problems)
    assert matched == sum(c.paper is not None for c in table.cells)


def test_every_paper_value_is_checked(texts):
    """The check above covers the specs' values: every cell with a paper value was found (none is marked as
    read off a figure today), and every prose locator is used by a spec cell with a value."""
    total = sum(check_table(t, texts)[1] for t in TABLES.values())
    assert total == sum(c.paper is not None for t in TABLES.values() for c in t.cells) > 100
    for tid, row, col in PROSE:
        assert any((c.row, c.col) == (row, col) and c.paper is not None for c in TABLES[tid].cells), (tid, row, col)


def test_check_catches_a_changed_number(texts):
    """The check is not vacuous: one number changed in the paper's text (MimicGAN Fig. 5(b), DeepFool /
    MimicGAN 85.40 -> 85.04), a changed spread (Fig. 9(b)) and a dash where InvGAN's Table 2 prints a number
    are each reported at their cell."""
    fig5b, fig9b, inv = TABLES["mimicgan-fig5b"], TABLES["mimicgan-fig9b"], TABLES["invgan-table2-fmnist"]
    f1, f2, f3 = (_source(t)[0] for t in (fig5b, fig9b, inv))
    changed = {**texts, f1: texts[f1].replace("80.00\t85.40", "80.00\t85.04")}
    problems, _ = check_table(fig5b, changed)
    assert problems == ["mimicgan-fig5b (DeepFool, MimicGAN): the spec has 85.4, the paper prints 85.04"]
    changed = {**texts, f2: texts[f2].replace("75.73 ± 4.35", "75.73 ± 4.53")}
    assert check_table(fig9b, changed)[0] == [
        "mimicgan-fig9b (PGDM, MimicGAN): spread 4.35 in the spec, 4.53 in the paper"
    ]
    changed = {**texts, f3: texts[f3].replace("0.81\t0.34\t0.80\t0.54\t0.59", "0.81\t0.34\t0.80\t0.54\t-")}
    assert check_table(inv, changed)[0] == [
        "invgan-table2-fmnist (DefenseGAN, BPDA): the spec has 0.59, the paper prints no number"
    ]


def test_number_parsing_is_strict():
    assert parse_number("05.60") == (5.6, None)
    assert parse_number("0.34 \\pm 0.18") == (0.34, 0.18)
    assert parse_number("66.00 ± 3.47") == (66.0, 3.47)
    assert parse_number("$\\mathbf{98\\%}$") == (98.0, None)
    assert parse_number("76 %") == (76.0, None)
    assert parse_number("-") is None and parse_number("n/a*") is None and parse_number("") is None
    with pytest.raises(ValueError):
        parse_number("0.306 0.238")  # two numbers in one cell (RIDE's garbled Table 4)
    with pytest.raises(ValueError):
        parse_number("~0.3")


def test_the_anomaly_table_explains_its_own_auc_not_invgan_detection():
    """mimicgan-table2's AUC is the left-out class against the rest; the report must not describe it with
    InvGAN's detection protocol (and invgan-table3 keeps that description)."""
    import pandas as pd

    from defbench.harness.paper_spec import PaperRun
    from defbench.harness.paper_tables import resolve
    from defbench.reports.paper import is_anomaly_table, to_markdown

    tables = {tid: resolve(tid)[0] for tid in ("mimicgan-table2", "invgan-table3-mnist")}
    texts = {}
    for tid, t in tables.items():
        run = PaperRun(table=t, preset="paper", n=100, seeds=(0,), device="cpu", out=".", rows={})
        texts[tid] = to_markdown(run, pd.DataFrame(columns=["row", "column", "delta", "n"]))
    assert is_anomaly_table(tables["mimicgan-table2"]) and not is_anomaly_table(tables["invgan-table3-mnist"])
    assert "anomaly ROC AUC" in texts["mimicgan-table2"] and "plot_ROC" not in texts["mimicgan-table2"]
    assert "left-out class's images (positives)" in texts["mimicgan-table2"]
    assert "plot_ROC.py" in texts["invgan-table3-mnist"] and "anomaly" not in texts["invgan-table3-mnist"]
    assert "success protocol" in texts["invgan-table3-mnist"]
