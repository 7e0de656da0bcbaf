"""docs/RESULTS.md says of each paper table what `defbench paper list` says (issue: papers' second pass, item 5):
the status line under the table's section is the catalogue's status and reason, word for word."""

from __future__ import annotations

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
