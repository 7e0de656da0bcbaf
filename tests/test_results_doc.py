"""docs/RESULTS.md says of each paper table what `defbench paper list` says (issue: papers' second pass, item 5):
the status line under the table's section is the catalogue's status and reason, word for word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from defbench.harness.paper_tables import STATUS

RESULTS = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
RUN = [tid for tid, (state, _) in STATUS.items() if state != "not run"]


def _section(tid: str) -> str:
    """The text from the first '### ' heading that names the table up to the next heading."""
    lines = RESULTS.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and tid in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("tid", RUN)
def test_section_states_the_catalogue_status(tid):
    state, why = STATUS[tid]
    assert f"Status of `{tid}`: **{state}** — {why}." in _section(tid)


def test_a_status_line_disagreeing_with_the_catalogue_is_caught():
    tid = RUN[0]
    state, why = STATUS[tid]
    other = "reproduced" if state != "reproduced" else "open"
    assert f"Status of `{tid}`: **{other}** — {why}." not in _section(tid)


def _glance_rows(text: str) -> dict[str, tuple[str, str]]:
    """The at-a-glance table's rows: {table id: (status, evidence cell)}."""
    rows = {}
    block = text.split("The tables at a glance", 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    for line in ("|" + block).splitlines():
        m = re.fullmatch(r"\| `([\w-]+)` \| ([\w ]+) \| (.+) \|", line)
        if m:
            rows[m[1]] = (m[2], m[3])
    return rows


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _glance_problems(text: str) -> list[str]:
    rows = _glance_rows(text)
    anchors = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    problems = [f"{tid}: no row" for tid in STATUS if tid not in rows]
    for tid, (state, evidence) in rows.items():
        if tid not in STATUS:
            problems.append(f"{tid}: not in the catalogue")
            continue
        if state != STATUS[tid][0]:
            problems.append(f"{tid}: {state!r}, the catalogue says {STATUS[tid][0]!r}")
        link = re.fullmatch(r"\[[^\]]+\]\(#([^)]+)\)", evidence)
        if state == "not run":
            if evidence != STATUS[tid][1]:
                problems.append(f"{tid}: the reason is not the catalogue's")
        elif not link or link[1] not in anchors or tid not in link[1]:
            problems.append(f"{tid}: the evidence {evidence!r} links to no section of this table")
    return problems


def test_at_a_glance_table_is_the_catalogue():
    """The index at the top of 'Paper tables': one row per spec, the catalogue's status, a link to its section."""
    assert _glance_problems(RESULTS) == []


def test_at_a_glance_check_fires():
    tid = RUN[0]
    state = STATUS[tid][0]
    row = next(line for line in RESULTS.splitlines() if line.startswith(f"| `{tid}` | {state} |"))
    other = "reproduced" if state != "reproduced" else "open"
    assert _glance_problems(RESULTS.replace(row, row.replace(f"| {state} |", f"| {other} |"))) == [
        f"{tid}: {other!r}, the catalogue says {state!r}"
    ]
    broken = row.replace("](#", "](#no-such-")
    assert "links to no section" in _glance_problems(RESULTS.replace(row, broken))[0]
    assert _glance_problems(RESULTS.replace(row + "\n", "")) == [f"{tid}: no row"]
    stray = row.replace(f"`{tid}`", "`no-such-table`")
    assert _glance_problems(RESULTS.replace(row, row + "\n" + stray)) == ["no-such-table: not in the catalogue"]
    not_run = next(t for t, (state, _) in STATUS.items() if state == "not run")
    reason_row = next(line for line in RESULTS.splitlines() if line.startswith(f"| `{not_run}` | not run |"))
    other_reason = reason_row.replace(STATUS[not_run][1], "not tried")
    assert _glance_problems(RESULTS.replace(reason_row, other_reason)) == [
        f"{not_run}: the reason is not the catalogue's"
    ]
