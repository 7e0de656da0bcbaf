"""papers.run_table's own decisions, with the matrix runner replaced by a recorder (no zoo, no cells computed):
the n a preset gives a table, the seeds it runs, and which --n-threat values the report names as a subset."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from defbench.harness import papers
from defbench.harness.paper_spec import DEFAULT_N, QUICK_N

TABLE = "invgan-table2-fmnist"  # no n of its own: DEFAULT_N, QUICK_N under the quick preset; has a bpda threat


class _Recorder:
    """Stands in for MatrixRunner: records the spec and the cells, and 'stores' one row per cell key."""

    last: "_Recorder | None" = None

    def __init__(self, spec, classifier=None):
        self.spec, self.skipped, self.batch_hook = spec, 0, None
        self.store = SimpleNamespace(failures=lambda: [], rows=lambda key: [{"key": key}], path="(recorder)")
        _Recorder.last = self

    def run(self, executor, cells):
        self.cells = list(cells)

    def key(self, cell):
        return SimpleNamespace(key=repr(cell)), {}, {}


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(papers, "MatrixRunner", _Recorder)
    return _Recorder


@pytest.mark.parametrize("preset, want", [("paper", DEFAULT_N), ("quick", QUICK_N)])
def test_a_table_without_n_runs_its_preset_s_n(recorder, preset, want, tmp_path):
    """No n given: the paper preset's 500 images, the quick preset's 100, in the run and in its matrix."""
    table = papers.TABLES[TABLE]
    assert table.n is None and QUICK_N < DEFAULT_N
    run = papers.run_table(table, preset=preset, out=str(tmp_path), progress=False)
    assert run.n == want and recorder.last.spec.n == want


def test_the_run_s_seed_is_the_first_of_the_table_s_seeds(recorder, tmp_path):
    """seed=3: the matrix and the rows are seed 3's (a table of one seed), not seed 0's."""
    table = papers.TABLES[TABLE]
    run = papers.run_table(table, n=4, seed=3, out=str(tmp_path), progress=False)
    assert run.seeds == recorder.last.spec.seeds == (3,)
    assert {c.seed for c in run.rows} == {3}


@pytest.mark.parametrize("k, subset", [(2, True), (4, False), (9, False)])
def test_only_a_threat_n_below_n_is_reported_as_a_subset(recorder, k, subset, tmp_path):
    """--n-threat bpda=k at n=4: the cells of k >= 4 hold all n images (MatrixRunner.cell_n takes the smaller), so
    the run names bpda as a subset only for k < 4."""
    table = papers.TABLES[TABLE]
    run = papers.run_table(table, n=4, threat_n={"bpda": k}, out=str(tmp_path), progress=False)
    assert run.threat_n == ({"bpda": k} if subset else {})


def test_eval_repeats_reaches_the_matrix_and_the_run_s_table(recorder, tmp_path):
    """eval_repeats=3: the matrix purifies three times and the run's table says so (its report header); none given:
    the table's one; a count outside the counts' rule (a whole number in [1, 1000]) is refused before the runner
    starts."""
    from defbench import DefbenchError

    table = papers.TABLES[TABLE]
    run = papers.run_table(table, n=4, eval_repeats=3, out=str(tmp_path), progress=False)
    assert recorder.last.spec.eval_repeats == run.table.eval_repeats == 3
    run = papers.run_table(table, n=4, out=str(tmp_path), progress=False)
    assert recorder.last.spec.eval_repeats == run.table.eval_repeats == table.eval_repeats == 1
    refusals = {  # the rule of defbench.evaluate's counts, and its words
        0: "eval_repeats must be between 1 and 1000, got 0",
        1001: "eval_repeats must be between 1 and 1000, got 1001",
        2.5: "eval_repeats must be a whole number, got 2.5",
        True: "eval_repeats must be a whole number, got True",
        "3": "eval_repeats must be a whole number, got '3'",
    }
    for bad, message in refusals.items():
        recorder.last = None
        with pytest.raises(DefbenchError, match=f"^{re.escape(message)}$"):
            papers.run_table(table, n=4, eval_repeats=bad, out=str(tmp_path), progress=False)
        assert recorder.last is None
