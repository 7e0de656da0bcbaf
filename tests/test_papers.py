"""Paper table specs and ``defbench paper``: every spec is well formed with the paper's numbers in range, runnable
specs build a valid matrix, the others refuse with one line, and mimicgan-fig5b runs end to end on tiny models
with "ours" taken from the store."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from conftest import md_row
from test_reports import stored
from defbench.cli import main
from defbench.harness.matrix import MatrixSpec
from defbench.harness.papers import TABLES, PaperRun, resolve
from defbench.harness.paper_tables import STATUS, STATUSES, status

RUNNABLE = [t for t in TABLES.values() if t.runnable]
NOT_RUNNABLE = [t for t in TABLES.values() if not t.runnable]
REQUIRED = (
    "mimicgan-fig5b",
    "invgan-table2-mnist",
    "invgan-table2-fmnist",
    "invgan-table3-mnist",
    "invgan-table3-fmnist",
    "ride-table2-mnist",
    "ride-table2-cifar10",
    "mimicgan-fig4b",
    "mimicgan-fig5a",
    "mimicgan-fig9b",
    "mimicgan-table2",
    "invgan-fig4",
    "ride-table1",
)


def test_list_shows_every_spec(capsys):
    assert main(["paper", "list"]) == 0
    out = capsys.readouterr().out
    for tid in REQUIRED:
        assert tid in TABLES
    for t in TABLES.values():
        line = md_row(out, t.id)
        assert (line[1] == "yes") == t.runnable
        if not t.runnable:
            assert "not yet supported" in line[1]
        state, why = status(t.id)
        assert line[4] == state
        # the reason, wrapped below the table: the whole of it, once, and no line wider than the terminal's 100
        reasons = out.split("Why each status")[1]
        assert " ".join(reasons.split()).count(f"{t.id} ({state}): {' '.join(why.split())}") == 1
    assert max(len(line) for line in out.split("Why each status")[1].splitlines()) <= 100


def test_every_table_has_a_status_backed_by_results():
    """Each table has one status (reproduced / explained / open / not run) with its reason, and every table
    that has been run has its own section in docs/RESULTS.md, where the evidence is."""
    from pathlib import Path

    results = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    headings = [line for line in results.splitlines() if line.startswith("### ")]
    assert set(STATUS) == set(TABLES)
    for tid, (state, why) in STATUS.items():
        assert state in STATUSES and why, tid
        if state != "not run":
            assert any(tid in h for h in headings), f"{tid} is {state!r} but docs/RESULTS.md has no section for it"
    assert status("no-such-table") == ("not run", "")


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_spec_is_well_formed(table):
    assert table.metric in ("accuracy", "auc") and table.source and table.ref
    keys = [(c.row, c.col) for c in table.cells]
    assert len(keys) == len(set(keys)), "duplicate cells"
    for c in table.cells:
        assert c.row in table.rows and c.col in table.cols
        v = table.paper_value(c)
        if v is not None:
            assert (0 <= v <= 100) if table.metric == "accuracy" else (0 <= v <= 1), (c, v)
        if c.paper_std is not None:
            assert c.paper is not None and table.paper_std_value(c) >= 0
        for m in c.measure.members if c.measure is not None else ():
            assert m.defense in table.defenses
            if m.attack is None:
                assert m.threat == "none" and m.metric in ("accuracy", "anomaly-auc")
            else:
                assert m.threat in table.threats and m.attack in table.attacks
            assert (m.holdout is not None) == (m.metric == "anomaly-auc")
    if table.runnable:
        assert any(c.measure is not None for c in table.cells)


def test_paper_settings_copied():
    """The papers' settings in the specs (their numbers are checked against the paper texts in
    test_paper_numbers.py): fractions printed by InvGAN and RIDE Table 1 become %, figures whose curves are not in
    the text have no paper values, RIDE's BPDA budget, the GAN replicas of Fig. 9(b) and Table 2."""
    for tid in ("invgan-table2-fmnist", "ride-table1"):
        t = TABLES[tid]
        assert all(t.paper_value(c) == pytest.approx(100 * c.paper) for c in t.cells if c.paper is not None)
    assert all(c.paper is None for c in TABLES["mimicgan-fig5a"].cells)
    ride = TABLES["ride-table2-mnist"].attacks[0]
    assert (ride.eps, dict(ride.params)) == (0.1, {"step": 0.02, "steps": 10})
    assert TABLES["mimicgan-fig9b"].gan_replicas == ("sub80-s1", "sub80-s2", "sub80-s3")
    assert "defensegan[gan=sub80-s2]" in TABLES["mimicgan-fig9b"].defenses
    assert TABLES["mimicgan-table2"].gan_replicas == tuple(f"no{k}" for k in range(10))


def test_fig9b_attacks_like_fig5b():
    """MimicGAN-2 Fig. 9(b) prints MimicGAN-1 Fig. 5(b)'s No Defense column and classifier again: one experiment, so
    its ε-bounded attacks take the reading Fig. 5(b)'s sweeps support (ε 0.15, predicted labels), not ε 0.3."""
    f5, f9 = TABLES["mimicgan-fig5b"], TABLES["mimicgan-fig9b"]

    def undefended(t):
        return {
            c.row: (c.paper, c.measure.attack)
            for c in t.cells
            if c.col == "No Defense" and c.row not in ("Clean", "Obfuscated")  # Fig. 9(b)'s: a mean over 3 GANs
        }

    u5, u9 = undefended(f5), undefended(f9)
    u9["DeepFool"] = u9.pop("DF")
    assert u9 == u5
    bim = u9["BIM"][1]
    assert (bim.eps, dict(bim.params)) == (0.15, {"labels": "predicted"})


def test_fig5b_deepfool_attacks_predicted_labels_and_cw_true_ones():
    """cleverhans' DeepFool takes no labels (it leaves the model's own top class); CW's undefended cell fits the
    true labels (docs/RESULTS.md): the two unbounded attacks of Fig. 5(b) and 9(b) differ in which labels they get."""
    for table, df_row in (("mimicgan-fig5b", "DeepFool"), ("mimicgan-fig9b", "DF")):
        by_row = {c.row: c.measure.attack for c in TABLES[table].cells if c.col == "No Defense"}
        assert dict(by_row[df_row].params) == {"labels": "predicted"}
        assert dict(by_row["CWL"].params).get("labels", "true") == "true"


@pytest.mark.parametrize("preset", ["paper", "quick"])
@pytest.mark.parametrize("table", RUNNABLE, ids=[t.id for t in RUNNABLE])
def test_runnable_spec_builds_a_valid_matrix(table, preset, tmp_path):
    """MatrixSpec.validate() loads no model or data: it checks names, threats and builds the attacks."""
    spec = table.matrix_spec(preset=preset, out=str(tmp_path))
    assert isinstance(spec, MatrixSpec)
    spec.validate()
    assert spec.n == (table.n or 500 if preset == "paper" else min(table.n or 500, 100))
    cells = table.needed_cells(spec.seeds, preset)
    attacks = set(spec.attacks)
    for c in cells:
        assert c.defense in spec.defenses
        assert c.attack is None or (c.attack in attacks and c.threat in spec.threats)


def test_quick_preset_keeps_paper_settings_the_quick_preset_does_not_shrink():
    t = TABLES["ride-table2-mnist"]
    paper, quick = t.matrix_spec(preset="paper").attacks[0], t.matrix_spec(preset="quick").attacks[0]
    assert dict(paper.params) == {"step": 0.02, "steps": 10} and paper.eps == 0.1
    assert dict(quick.params) == {} and quick.eps == 0.1  # steps/step come from the quick preset


def test_every_spec_is_runnable():
    assert not NOT_RUNNABLE, [t.id for t in NOT_RUNNABLE]


def test_not_runnable_spec_one_line_error(capsys, tmp_path, monkeypatch):
    """A spec marked unsupported (none is today) refuses with one line and writes nothing."""
    import dataclasses

    from defbench.harness import papers

    t = dataclasses.replace(TABLES["invgan-fig4"], unsupported="a reason")
    monkeypatch.setitem(papers.TABLES, t.id, t)
    rc = main(["paper", "run", t.id, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"paper table {t.id} is not yet supported: a reason" in err
    assert not (tmp_path / "o").exists()


def test_unknown_table_and_groups(capsys):
    assert main(["paper", "run", "invgan-table9"]) == 2
    err = capsys.readouterr().err
    assert "unknown paper table 'invgan-table9'" in err and err.count("\n") == 1
    assert [t.id for t in resolve("invgan-table2")] == ["invgan-table2-fmnist", "invgan-table2-mnist"]
    assert [t.id for t in resolve("ride-table2")] == [
        "ride-table2-cifar10",
        "ride-table2-imagenet",
        "ride-table2-mnist",
    ]


def _fake_row(labels, preds, scores, preds_u=None, repeats=None):
    return {
        "labels": labels,
        "preds": preds,
        "preds_undefended": preds_u or preds,
        "scores": scores,
        "extra": {**({"repeat_preds": repeats} if repeats else {}), "projection_error": scores},
    }


def test_a_pooled_cell_counts_the_members_it_averaged():
    """MimicGAN-2 Table 2 at a small n: a left-out class without an image among the n has no AUC; the row's mean
    is over the other classes and its note said "over 10 variants" all the same."""
    from defbench.reports.paper import outcomes

    t = TABLES["mimicgan-table2"]
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]  # no 9: the class-9 member has no positives
    scores = [0.1 * i for i in range(len(labels))]
    rows = {c: _fake_row(labels, labels, scores) for c in t.needed_cells((0,))}
    df = outcomes(PaperRun(t, "paper", len(labels), (0,), "cpu", "x", rows)).dropna(subset=["ours"])
    assert len(df) == 2 and all(
        "mean ± std over 9 of 10 variants (the others without a value)" in n for n in df["note"]
    )
    rows = {c: _fake_row([*labels, 9], [*labels, 9], [*scores, 0.5]) for c in t.needed_cells((0,))}
    df = outcomes(PaperRun(t, "paper", len(labels) + 1, (0,), "cpu", "x", rows)).dropna(subset=["ours"])
    assert len(df) == 2 and all("mean ± std over 10 variants" in n and "of 10" not in n for n in df["note"])


def test_seeds_that_draw_the_same_images_count_them_once():
    """Two seeds' cells on the same five test images (every seed draws the same images at n = the test set's size):
    the interval counted ten images; it counts five, and ten only when the seeds' images differ."""
    from defbench.reports.paper import outcomes

    t = TABLES["invgan-table2-fmnist"]

    def run(offsets):
        rows = {}
        for c in t.needed_cells((0, 1)):
            rows[c] = {**_fake_row([0, 1, 2, 3, 4], [0, 1, 2, 9, 9], [0.1] * 5)}
            rows[c]["indices"] = [i + offsets[c.seed] for i in range(5)]
        return outcomes(PaperRun(t, "paper", 5, (0, 1), "cpu", "x", rows)).dropna(subset=["ci_low"]).iloc[0]

    same, apart = run({0: 0, 1: 0}), run({0: 0, 1: 5})
    assert same["ours"] == apart["ours"] == pytest.approx(60.0)
    assert same["n"] == 5 and apart["n"] == 10
    assert same["ci_high"] - same["ci_low"] > apart["ci_high"] - apart["ci_low"]


def test_verdicts_at_the_tolerance_without_an_interval_and_under_the_quick_preset():
    """A cell exactly 5 points off read 'no' (0.28 × 100 − 23 is 5.000000000000004); a cell with no interval (pooled,
    or an AUC of 0 or 1) read 'no', which the header defines as 'the paper's value is not in our CI'; a quick-preset
    report compared smoke-test budgets with the paper under the paper preset's notes, unsaid."""
    import pandas as pd

    from defbench.reports.paper import NO_CI, _verdict, to_markdown

    assert 0.28 * 100 - 23 > 5 and _verdict(0.28 * 100, 23 - 0.28 * 100, 20.0, 30.0, "accuracy") == "yes"
    assert _verdict(60.0, -5.5, 50.0, 62.0, "accuracy") == "in CI"
    assert _verdict(60.0, -15.0, 40.0, 50.0, "accuracy") == "no"
    assert _verdict(0.87, 0.13, None, None, "auc") == _verdict(0.78, -0.14, float("nan"), float("nan"), "auc") == NO_CI
    assert _verdict(0.87, 0.04, None, None, "auc") == "yes"
    t = TABLES["invgan-table2-fmnist"]
    empty = pd.DataFrame(columns=["row", "column", "delta", "n", "metric"])
    quick = to_markdown(PaperRun(t, "quick", 10, (0,), "cpu", "x", {}), empty)
    paper = to_markdown(PaperRun(t, "paper", 10, (0,), "cpu", "x", {}), empty)
    assert "⚠ Preset quick: smoke-test budgets" in quick and "Preset paper" not in paper and "smoke" not in paper


def test_seeds_on_the_same_images_count_auc_images_once():
    """Two seeds' detection cells on the same 5 clean and 5 attacked images: the AUC interval counted 10 against
    10; it counts 5 against 5, as the accuracy cells count their images."""
    from defbench.reports.paper import measure_value

    t = TABLES["invgan-table3-fmnist"]
    m = next(c.measure for c in t.cells if c.measure is not None and c.measure.metric == "auc")

    def counts(offsets):
        rows = {}
        for c in t.needed_cells((0, 1)):
            rows[c] = _fake_row([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4, 0.9])
            rows[c]["indices"] = [i + offsets[c.seed] for i in range(5)]
        return measure_value(PaperRun(t, "paper", 5, (0, 1), "cpu", "x", rows), m)

    assert counts({0: 0, 1: 0})[1:] == (5, (5, 5))
    assert counts({0: 0, 1: 5})[1:] == (10, (10, 10))


def test_a_best_of_settings_cell_names_the_setting_that_won():
    """RIDE Table 1 reports the best of several settings per attack; our note said 'best of 5 settings' without
    saying which one it was."""
    from defbench.reports.paper import outcomes

    t = TABLES["ride-table1"]
    cell = next(c for c in t.cells if getattr(c.measure, "how", None) == "max")
    members = cell.measure.members
    winner = members[len(members) // 2].defense
    rows = {}
    for c in t.needed_cells((0,)):
        right = 5 if c.defense == winner else 2  # the winner keeps 5 of 5 images, every other setting 2
        rows[c] = _fake_row([0, 1, 2, 3, 4], [0, 1, 2, 3, 4][:right] + [9] * (5 - right), [0.1] * 5)
    df = outcomes(PaperRun(t, "paper", 5, (0,), "cpu", "x", rows)).set_index(["row", "column"])
    note = df.loc[(cell.row, cell.col), "note"]
    assert f"best of {len(members)} settings: {winner}" in note and df.loc[(cell.row, cell.col), "ours"] == 100.0


def test_ours_comes_from_rows():
    """Accuracy, bare-classifier accuracy and AUC are computed from the rows handed in (no models)."""
    from defbench.reports.paper import outcomes, to_markdown

    t = TABLES["invgan-table3-fmnist"]
    rows = {}
    for c in t.needed_cells((0,)):
        if c.attack is None:  # image 4 is misclassified clean: not a negative, and its adversarial not a positive
            rows[c] = _fake_row([0, 1, 2, 3, 4], [0, 1, 2, 3, 9], [0.1, 0.2, 0.3, 0.4, 0.9])
        else:  # the attack fails on image 3: not a positive
            rows[c] = _fake_row([0, 1, 2, 3, 4], [5, 5, 5, 3, 5], [0.35, 0.5, 0.6, 0.05, 0.7])
    run = PaperRun(t, "paper", 5, (0,), "cpu", "x", rows)
    df = outcomes(run)
    # as InvGAN's code (plots/plot_ROC.py): every clean score {.1,.2,.3,.4,.9} against every attacked one
    # {.35,.5,.6,.05,.7}: 15 of 25 pairs ordered
    assert all(v == pytest.approx(0.6) for v in df["ours"])
    first = df.iloc[0]
    assert first["delta"] == pytest.approx(0.6 - 0.9563)
    md = to_markdown(run, df)
    # Hanley–McNeil with 5 negatives and 5 positives, by hand; the note gives the success protocol: clean
    # {.1,.2,.3,.4} (images 0-3) vs successful adversarials {.35,.5,.6} (images 0-2), 11 of 12 pairs ordered,
    # its interval from 4 negatives and 3 positives
    assert md_row(md, "DefenseGAN", "FGSM") == [
        "DefenseGAN", "FGSM", "0.9563", "0.6000", "0.233–0.967", "-0.3563", "in CI", "5",
        "success protocol: 0.917 (0.665–1.000; 4 vs 3 images)",
    ]  # fmt: skip
    assert "every clean image (negatives) against every attacked image (positives)" in md
    assert "InvGAN's protocol" not in md

    # the note's two other forms: no successful adversarial -> n/a with its counts; AUC 1 -> no interval
    for c in rows:
        if c.attack is not None:
            rows[c] = _fake_row([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0.35, 0.5, 0.6, 0.05, 0.7])  # no attack succeeds
    note = outcomes(run).iloc[0]["note"]
    assert note == "success protocol: n/a (4 vs 0 images)", note
    for c in rows:
        if c.attack is not None:
            rows[c] = _fake_row([0, 1, 2, 3, 4], [5, 5, 5, 5, 5], [1.0, 1.1, 1.2, 1.3, 1.4])  # all above clean
    note = outcomes(run).iloc[0]["note"]
    assert note == "success protocol: 1.000 (4 vs 4 images)", note

    t = TABLES["mimicgan-fig5b"]
    rows = {c: _fake_row([1, 1, 1, 1], [1, 1, 0, 0], [0.0] * 4, preds_u=[1, 0, 0, 0]) for c in t.needed_cells((0,))}
    run = PaperRun(t, "paper", 4, (0,), "cpu", "x", rows)
    df = outcomes(run).set_index(["row", "column"])
    assert df.loc[("FGSM", "MimicGAN"), "ours"] == pytest.approx(50.0)
    assert df.loc[("FGSM", "MimicGAN"), "delta"] == pytest.approx(50.0 - 60.0)
    assert df.loc[("Obfuscated", "No Defense"), "ours"] == pytest.approx(25.0)  # bare classifier
    assert df.loc[("Clean", "Cowboy"), "delta"] is None
    md = to_markdown(run, df.reset_index())
    assert "binomial 95% interval" in md and "±49.0" in md and "±4.4 at the paper's n = 500" in md
    at_paper_n = PaperRun(t, "paper", 500, (0,), "cpu", "x", rows)  # the paper's n: no note on a smaller n
    assert "binomial 95% interval" not in to_markdown(at_paper_n, outcomes(at_paper_n))
    assert "- mimicgan: batch-coupled" not in md
    for c in rows:  # MimicGAN's batches of 2: images 0-1 right, 2-3 wrong in its cells
        if c.defense == "mimicgan":
            rows[c] = {**rows[c], "preds": [1, 1, 0, 0], "extra": {"batch_coupled": True, "batch_size": 2}}
    md = to_markdown(run, outcomes(run))
    assert "- mimicgan: batch-coupled" in md and "its 2 batches' accuracies differ by up to 100 points" in md
    assert "purifications of one cell" not in md  # one purification per image: no spread to give
    for c in rows:  # two purifications of MimicGAN's cells: 2 of 4 right, then 4 of 4
        if c.defense == "mimicgan":
            attack = c.attack.name if c.attack is not None else "clean"  # as store rows name their cell
            repeats = {**rows[c]["extra"], "repeat_preds": [[1, 1, 0, 0], [1, 1, 1, 1]]}
            rows[c] = {**rows[c], "attack": attack, "threat": c.threat, "extra": repeats}
    md = to_markdown(run, outcomes(run))
    assert "- mimicgan: its 2 purifications of one cell" in md and "differ by up to 50 points" in md
    # ours reads each image's first purification, as the papers classify one (the one-purification cell's
    # number), not the matrix tables' all-k rule: 4 of 4 right first, 2 of 4 in both -> 100, not 50
    for c in rows:
        if c.defense == "mimicgan":
            extra = {**rows[c]["extra"], "repeat_preds": [[1, 1, 1, 1], [1, 1, 0, 0]]}
            rows[c] = {**rows[c], "preds": [1, 1, 1, 1], "extra": extra}
    twice = PaperRun(replace(t, eval_repeats=2), "paper", 4, (0,), "cpu", "x", rows)
    df = outcomes(twice).set_index(["row", "column"])
    assert df.loc[("FGSM", "MimicGAN"), "ours"] == pytest.approx(100.0)
    md = to_markdown(twice, df.reset_index())
    assert "2 purifications per image for the randomized defenses (ours reads each image's first" in md
    # its batches (of 2) read the same way: 100 and 100% by the first purification (the all-2 rule: 100 and 0)
    assert "its 2 batches' accuracies differ by up to 0 points" in md
    assert "1 purification per image" in to_markdown(run, outcomes(run))


@pytest.mark.parametrize("table", RUNNABLE, ids=[t.id for t in RUNNABLE])
def test_report_files_for_every_runnable_table(table, tmp_path):
    """Markdown, CSV and (figures) PNG from fake store rows, for every runnable spec's layout."""
    from defbench.reports.paper import write_paper_report

    rows = {
        c: stored(
            c,
            table.dataset,
            _fake_row(
                [0, 1, 2, 3],
                [0, 1, 2, 0] if c.attack else [0, 1, 2, 3],
                [0.5, 0.6, 0.7, 0.8] if c.attack else [0.1, 0.2, 0.3, 0.4],
                # clean images all correct; the gray-box attacks succeed on three of them (an AUC needs both sides)
                preds_u=[1, 2, 3, 0] if c.attack else [0, 1, 2, 3],
            ),
        )
        for c in table.needed_cells((0,))
    }
    run = PaperRun(table, "paper", 4, (0,), "cpu", str(tmp_path), rows)
    text = write_paper_report(run, tmp_path)
    measured = [c for c in table.cells if c.measure is not None]
    with open(tmp_path / f"{table.id}.csv") as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == len(table.cells)
    assert sum(r["ours"] != "" for r in got) == len(measured)
    for c in table.cells:
        md_row(text, c.row, c.col)
    assert (tmp_path / f"{table.id}.png").is_file() == bool(table.figure)
    assert (tmp_path / f"{table.id}.md").read_text(encoding="utf-8") == text
    assert "### Sanity checks" in text and "4 images: the binomial 95% interval" in text  # the cells' own flags


def _run_fig5b(tmp_path, capsys):
    """``defbench paper run mimicgan-fig5b --n 10 --preset quick`` and the checks on what it prints and writes."""
    import sqlite3

    out = tmp_path / "fig5b"
    args = [
        "paper",
        "run",
        "mimicgan-fig5b",
        "--n",
        "10",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    t = TABLES["mimicgan-fig5b"]
    assert md_row(text, "row") == ["row", "column", "paper", "ours", "95% CI", "delta", "match", "n", "note"]
    for c in t.cells:
        line = cols = md_row(text, c.row, c.col)
        paper, ours, ci, delta, match, n = cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]
        assert 0 <= float(ours) <= 100 and n == "10", line
        lo, hi = map(float, ci.split("–"))
        assert lo <= float(ours) <= hi and hi - lo > 20, line  # 10 images: a wide interval
        if c.paper is not None:
            assert float(paper) == pytest.approx(c.paper)
            assert float(delta) == pytest.approx(float(ours) - c.paper, abs=0.011)
            assert match == ("yes" if abs(float(delta)) <= 5 else "in CI" if lo <= c.paper <= hi else "no"), line
        else:
            assert paper == "—" and delta == "—" and match == "—"
    assert "binomial 95% interval" in text and "fewer than the paper's 500" in text
    assert "27 cells computed, 0 reused" in text
    assert (out / "mimicgan-fig5b.png").stat().st_size > 1000
    with open(out / "mimicgan-fig5b.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert len(csv_rows) == len(t.cells)
    # ours is what the store holds: every accuracy cell against its row's correct / n
    with sqlite3.connect(out / "defbench.sqlite") as db:
        stored = {
            (d, a, th): 100 * k / n
            for d, a, th, k, n in db.execute("SELECT defense, attack, threat, correct, n FROM cells")
        }
        bare = {
            (d, a, th): 100 * k / n
            for d, a, th, k, n in db.execute("SELECT defense, attack, threat, correct_undefended, n FROM cells")
        }
    assert len(stored) == 27  # 4 clean + 5 gray-box attacks x 4 defenses + gan-aware x 3 GAN defenses
    for r in csv_rows:
        key = (r["defense"], r["attack"], r["threat"])
        want = bare[key] if "bare classifier" in r["metric"] else stored[key]
        assert float(r["ours"]) == pytest.approx(want), r
    # resume: a second run recomputes nothing
    assert main(args) == 0
    assert "0 cells computed, 27 reused" in capsys.readouterr().out
    return out


def test_mimicgan_fig5b_end_to_end_small_budgets(tiny_zoo, tmp_path, capsys, monkeypatch):
    """The whole CLI path on tiny models with the quick preset's budgets shrunk further (seconds, not minutes)."""
    from defbench.harness import matrix

    for name in ("defensegan", "cowboy"):
        monkeypatch.setitem(matrix.QUICK_DEFENSE_OVERRIDES, name, {"latent_steps": 4, "restarts": 1})
    monkeypatch.setitem(
        matrix.QUICK_DEFENSE_OVERRIDES, "mimicgan", {"outer_iters": 1, "surrogate_steps": 2, "latent_steps": 2}
    )
    for name, params in {
        "cw": {"steps": 3, "binary_search_steps": 1},
        "deepfool": {"steps": 3},
        "pgd": {"steps": 2, "step": None},
        "bim": {"steps": 2},
    }.items():
        monkeypatch.setitem(matrix.QUICK_ATTACK_PARAMS, name, params)
    out = _run_fig5b(tmp_path, capsys)
    # n is part of every cell key: a run of another n in the same store reuses none of these cells
    from defbench.harness.matrix import MatrixRunner
    from defbench.harness.papers import TABLES

    t = TABLES["mimicgan-fig5b"]
    runner = MatrixRunner(t.matrix_spec(5, "quick", "cpu", 0, str(out), None, False))
    keys = [runner.key(c)[0] for c in t.needed_cells(runner.spec.seeds, "quick")]
    assert keys and not any(runner.store.has(k) for k in keys)


@pytest.mark.slow
def test_mimicgan_fig5b_end_to_end(tiny_zoo, tmp_path, capsys):
    """The same at the real quick preset (several minutes on 2 CPU cores)."""
    _run_fig5b(tmp_path, capsys)


def test_off_grid_points_say_so():
    """invgan-fig4's two curves have different x grids: a point one method lacks is labelled, not 'not run'."""
    cells = {(c.row, c.col): c for c in TABLES["invgan-fig4"].cells}
    assert cells[("0", "DefenseGAN")].measure is None and cells[("0", "DefenseGAN")].note == "not in our grid"
    assert cells[("400", "InvGAN")].note == "not in our grid"
    assert cells[("400", "DefenseGAN")].measure is not None and cells[("400", "DefenseGAN")].note == ""


@pytest.mark.parametrize("preset", ["paper", "quick"])
@pytest.mark.parametrize("tid", [f"invgan-table{k}-{d}" for k in (2, 3) for d in ("fmnist", "mnist")])
def test_invgan_tables_attack_the_predicted_labels_as_its_code(tid, preset):
    """InvGAN's whitebox.py hands cleverhans' FGSM and CW no labels, so they attack the model's own predictions
    (the RP FGSM those of f(G(I(x)))); BPDA's PGD, our reading of that column, keeps the true labels."""
    t = TABLES[tid]
    by_col = {c.col: c.measure.attack for c in t.cells if c.measure is not None and c.measure.attack is not None}
    assert {col: dict(a.params).get("labels", "true") for col, a in by_col.items()} == {
        "FGSM": "predicted",
        "CW": "predicted",
        "RP": "predicted",
        "BPDA": "true",
    }
    spec = t.matrix_spec(n=10, preset=preset, device="cpu", seed=0)
    assert {a.name: a.build(t.dataset).labels for a in spec.attacks} == {
        "fgsm": "predicted",
        "cw": "predicted",
        "pgd": "true",
    }


def test_only_threats_keeps_the_whole_table_without_threats_and_reads_names_as_the_cli_does():
    t = TABLES["invgan-table2-fmnist"]
    assert t.only_threats(None) is t and t.only_threats([]) is t
    kept = t.only_threats([" GrayBox "])
    assert {c.col for c in kept.cells if c.measure is not None} == {"Clean", "FGSM", "CW"}


@pytest.mark.parametrize(
    "tid", ["invgan-table2-fmnist", "invgan-table2-mnist", "invgan-table3-fmnist", "invgan-table3-mnist"]
)
def test_invgan_tables_attack_bpda_with_the_papers_protocol_eot_one(tid):
    """InvGAN's BPDA takes one gradient per PGD step (the paper never mentions EOT): the preset's EOT 10 would be
    a stronger attack on DefenseGAN's random restarts than the one its 59 / 79% were measured under."""
    t = TABLES[tid]
    assert t.eot == 1
    assert t.matrix_spec(n=10, preset="paper", device="cpu", seed=0).eot == 1
    assert any("EOT 1" in note for note in t.notes)


def test_an_auc_cell_with_unequal_counts_takes_its_interval_from_negatives_then_positives():
    """Hanley–McNeil's interval is not symmetric in its two counts. In the specs' runs every all-images AUC cell
    sets n clean against n attacked images, so a swap of (negatives, positives) at the call site changed nothing a
    test saw. Here 5 clean scores (no indices: the attacked row cannot be matched to a subset) against 3 attacked
    ones: the interval is the one of 5 negatives and 3 positives."""
    from defbench.metrics import auc_interval, roc_auc
    from defbench.reports.paper import outcomes

    t = TABLES["invgan-table3-fmnist"]
    clean, attacked = [0.1, 0.2, 0.3, 0.45, 0.9], [0.35, 0.5, 0.6]
    rows = {}
    for c in t.needed_cells((0,)):
        if c.attack is None:
            rows[c] = _fake_row([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], clean)
        else:
            rows[c] = _fake_row([0, 1, 2], [5, 5, 5], attacked)
    first = outcomes(PaperRun(t, "paper", 5, (0,), "cpu", "x", rows)).iloc[0]
    auc = roc_auc(clean, attacked)
    assert first["ours"] == pytest.approx(auc) == pytest.approx(11 / 15)  # 3 + 4 + 4 of 15 pairs ordered
    right, swapped = auc_interval(auc, 5, 3), auc_interval(auc, 3, 5)
    assert abs(right[0] - swapped[0]) > 1e-3  # the order is visible at these counts
    assert (first["ci_low"], first["ci_high"]) == pytest.approx(right)


def test_a_cell_the_table_does_not_measure_says_not_run_and_a_measured_one_does_not():
    """invgan-table2-fmnist has no No Defense × BPDA cell (the paper prints none): its note is "not run" and it has
    no value; every measured cell has a value and no such note."""
    from defbench.reports.paper import outcomes

    t = TABLES["invgan-table2-fmnist"]
    rows = {c: _fake_row([1, 1, 1, 1], [1, 1, 0, 0], [0.0] * 4) for c in t.needed_cells((0,))}
    df = outcomes(PaperRun(t, "paper", 4, (0,), "cpu", "x", rows)).set_index(["row", "column"])
    unmeasured = [(c.row, c.col) for c in t.cells if c.measure is None and not c.note]
    assert ("No Defense", "BPDA") in unmeasured
    for key in unmeasured:
        assert df.loc[key, "note"] == "not run" and df.loc[key, "ours"] is None, key
    measured = df.drop(unmeasured)
    assert len(measured) and measured["ours"].notna().all()
    assert not measured["note"].fillna("").str.contains("not run").any()


def test_only_threats_notes_the_cells_it_leaves_out_and_no_other():
    """--threats graybox: the RP and BPDA cells it drops say so; the clean and gray-box cells it keeps do not."""
    kept = TABLES["invgan-table2-fmnist"].only_threats(["graybox"])
    note = "not run here (--threats graybox)"
    dropped = [c for c in kept.cells if c.col in ("RP", "BPDA") and c.row != "No Defense"]
    assert dropped and all(c.measure is None and c.note == note for c in dropped)
    assert all(note not in (c.note or "") for c in kept.cells if c.measure is not None)


def test_a_figure_without_paper_values_says_so_in_its_title(tmp_path, monkeypatch):
    """mimicgan-fig5a prints no paper numbers (its curves are not in the text): the figure's title says so; a
    figure with paper values (mimicgan-fig5b) names the paper's markers instead."""
    from matplotlib.axes import Axes

    from defbench.reports.paper import outcomes, plot

    titles = []
    real = Axes.set_title
    monkeypatch.setattr(Axes, "set_title", lambda ax, text, **k: titles.append(text) or real(ax, text, **k))
    for tid in ("mimicgan-fig5a", "mimicgan-fig5b"):
        t = TABLES[tid]
        rows = {c: _fake_row([1, 1, 1, 1], [1, 1, 0, 0], [0.0] * 4) for c in t.needed_cells((0,))}
        run = PaperRun(t, "paper", 4, (0,), "cpu", "x", rows)
        assert plot(run, outcomes(run), tmp_path / f"{tid}.png")
    assert titles[0].endswith("; paper values not in the text") and "vs paper" not in titles[0]
    assert titles[1].endswith(" vs paper (black)") and "not in the text" not in titles[1]
