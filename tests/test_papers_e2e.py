"""Every paper spec runs end to end through ``defbench paper run`` on real test images (a fake ImageNet folder for
the ImageNet tables), with tiny models in a temporary zoo and every budget shrunk (variants, GAN replicas,
corruptions, anomaly AUC, pooled cells, stratified sampling). The numbers are checked, not only their range:

* every printed "ours" is the value of the store row(s) its cell reads (accuracy = correct / n of the row, AUC of
  every clean against every attacked image as InvGAN's code computes it; the success protocol's AUC in the note,
  "n/a" only where that protocol has no clean or no successful adversarial images);
* every defense's clean row is the classifier on the defense's purification of the row's test images, computed
  here by hand from the zoo models (and the bare classifier on them for ``preds_undefended``);
* on Fashion-MNIST (the only dataset whose stand-in classifier is trained) the undefended classifier is right on
  most clean images and wrong on nearly every gray-box FGSM / BIM / PGD image at ε = 0.3.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from defbench.cli import main
from defbench.harness.papers import TABLES

from conftest import have_data, md_row, save_classifier, save_encoder, save_gan, stand_in_gan

TINY_DEFENSE = {
    "defensegan": {"latent_steps": 3, "restarts": 1},
    "cowboy": {"latent_steps": 3, "restarts": 1},
    "mimicgan": {"outer_iters": 1, "surrogate_steps": 2, "latent_steps": 2},
    "invgan": {"latent_steps": 3},
    "ride": {"iterations": 3, "checkpoints": 1},
}
TINY_ATTACK = {
    "cw": {"steps": 2, "binary_search_steps": 1},
    "deepfool": {"steps": 2},
    "pgd": {"steps": 2, "step": None},
    "bim": {"steps": 2},
}
#: images per cell: at least one image of most classes where a table needs them (anomaly AUC)
N = {"mimicgan-table2": 40, "ride-table1": 4, "ride-table2-imagenet": 4, "ride-fig5a": 4}


def _save_gan(dataset: str, tag: str, seed: int) -> None:
    save_gan(*stand_in_gan(dataset, seed), dataset, tag)


def _save_classifier(dataset: str) -> None:
    from defbench.classifiers.models import build_classifier

    torch.manual_seed(2)
    save_classifier(build_classifier(dataset), {}, dataset)


@pytest.fixture(scope="module")
def paper_zoo(tiny_zoo):
    """tiny_zoo (Fashion-MNIST) plus untrained stand-ins for every other model a spec asks for."""
    from defbench.harness import zoo

    for t in ("sub80-s1", "sub80-s2", "sub80-s3"):
        _save_gan("fmnist", t, seed=int(t[-1]))
    save_encoder(1, "fmnist")
    if have_data("mnist"):
        _save_classifier("mnist")
        for k in range(10):
            _save_gan("mnist", f"no{k}", seed=10 + k)
        _save_gan("mnist", "", seed=20)
        save_encoder(1, "mnist")
    if have_data("cifar10"):
        _save_classifier("cifar10")
    assert zoo.exists("gan-fmnist-quick-sub80-s2")
    return tiny_zoo


class TinyImageNet(nn.Module):
    """Stands in for torchvision's ResNet-50 (no weights offline): Φ = pooled conv features, 1000 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, 1000)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture
def fake_imagenet(tmp_path, monkeypatch):
    from PIL import Image

    from defbench.harness import models

    wnids = [f"n{i:08d}" for i in range(1000)]
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for w in (wnids[1], wnids[500], wnids[999]):
        (root / "imagenet" / "val" / w).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(rng.integers(0, 256, (240, 250, 3), dtype=np.uint8)).save(
                root / "imagenet" / "val" / w / f"{j}.JPEG"
            )
    (root / "imagenet" / "LOC_synset_mapping.txt").write_text("".join(f"{w} name\n" for w in wnids))
    monkeypatch.setattr(models, "load_imagenet_resnet50", lambda: TinyImageNet().eval())
    return root


@pytest.fixture
def tiny_budgets(monkeypatch):
    from defbench.harness import matrix

    for name, over in TINY_DEFENSE.items():
        monkeypatch.setitem(matrix.QUICK_DEFENSE_OVERRIDES, name, over)
    for name, params in TINY_ATTACK.items():
        monkeypatch.setitem(matrix.QUICK_ATTACK_PARAMS, name, params)


def _check_printed(table, text: str, n: int, threat_n: dict[str, int]) -> None:
    assert md_row(text, "row") == ["row", "column", "paper", "ours", "95% CI", "delta", "match", "n", "note"]
    for c in table.cells:
        line = cols = md_row(text, c.row, c.col)
        paper, ours, delta, got_n = cols[2], cols[3], cols[5], cols[7]
        if c.paper is None:
            assert paper == "—" and delta == "—", line
        else:
            assert float(paper.split(" ± ")[0]) == pytest.approx(table.paper_value(c)), line
        if c.measure is None:
            assert ours == "—", line
            continue
        if ours == "n/a":  # an AUC that is undefined (e.g. all scores equal): checked against the rows below
            assert table.metric == "auc", line
            continue
        value = float(ours.split(" ± ")[0])
        assert not math.isnan(value) and 0 <= value <= (100 if table.metric == "accuracy" else 1), line
        assert got_n == str(threat_n.get(c.measure.threat, n)), line
        if c.paper is not None:
            assert float(delta) == pytest.approx(value - table.paper_value(c), abs=0.011), line
        if len(c.measure.members) > 1 and c.measure.how == "mean":
            assert " ± " in ours, line  # spread over GAN replicas / classes


def _printed_ours(text: str, cell) -> str:
    return md_row(text, cell.row, cell.col)[3]


def _store_rows(table, out: Path) -> dict:
    """{Cell: store row} for the cells the table needs (run seed 0), matched by what the row records: defense,
    threat, attack name, ε and the spec's attack parameters; exactly one row per cell."""
    from defbench.harness.store import Store

    stored = list(Store(str(out)).rows())
    found = {}
    for c in table.needed_cells((0,), "quick"):
        a = c.attack

        def same(r, c=c, a=a):
            if (r["defense"], r["threat"]) != (c.defense, c.threat) or r["attack"] != (a.name if a else "clean"):
                return False
            cfg = r["attack_config"]
            if a is None:
                return True
            # an attack option common to all attacks (labels, output_check) is recorded beside params
            return (a.eps is None or cfg["eps"] == a.eps) and all(
                cfg["params"].get(k, cfg.get(k)) == v for k, v in a.params
            )

        hits = [r for r in stored if same(r)]
        assert len(hits) == 1, (c, len(hits))
        found[c] = hits[0]
    return found


def _row_value(table, m, rows: dict) -> float:
    """Ours for one measure, by hand from its row: % correct (every repeat) or the bare classifier's % correct,
    InvGAN's detection AUC (every clean against every attacked image, as its code computes it), or the anomaly
    AUC of the projection errors."""
    from sklearn.metrics import roc_auc_score

    from defbench.harness.papers import preset_attack
    from defbench.metrics import roc_auc

    a = preset_attack(m.attack, "quick") if m.attack is not None else None
    row = rows[m.cell(0, a)]
    labels = np.asarray(row["labels"])
    if m.metric == "auc":  # the clean scores of the attacked row's images (a subset where a threat has fewer)
        clean = dict(zip(rows[m.cell(0, None)]["indices"], rows[m.cell(0, None)]["scores"], strict=True))
        return roc_auc([clean[i] for i in row["indices"]], row["scores"])
    if m.metric == "anomaly-auc":
        pos = labels == m.holdout
        if pos.all() or not pos.any():
            return math.nan
        return float(roc_auc_score(pos, row["extra"]["projection_error"]))
    if m.undefended:
        return 100 * float(np.mean(np.asarray(row["preds_undefended"]) == labels))
    preds = np.asarray((row["extra"] or {}).get("repeat_preds") or [row["preds"]])
    return 100 * float(np.mean((preds == labels[None]).all(0)))


def _check_against_store(table, text: str, rows: dict) -> None:
    """Each printed "ours" is its cell's value computed by hand from the store rows (a pool: mean or max)."""
    for c in table.cells:
        if c.measure is None:
            continue
        vals = [_row_value(table, m, rows) for m in c.measure.members]
        finite = [v for v in vals if not math.isnan(v)]
        printed = _printed_ours(text, c)
        if not finite:
            assert printed == "n/a", (c, printed)
            continue
        want = max(finite) if getattr(c.measure, "how", "") == "max" else float(np.mean(finite))
        tol = 0.006 if table.metric == "accuracy" else 6e-5  # printed with 2 / 4 decimals
        assert float(printed.split(" ± ")[0]) == pytest.approx(want, abs=tol), (c.row, c.col, printed, want)
        if table.metric == "auc" and len(c.measure.members) == 1:  # the note: the success protocol, by hand
            _check_protocol_note(md_row(text, c.row, c.col)[8], c.measure, rows)


def _check_protocol_note(note: str, m, rows: dict) -> None:
    """The note of a detection cell gives the success protocol's AUC: the clean images the bare classifier gets
    right against the successful adversarials made from them (gray-box: the bare classifier fooled; white-box:
    the defended model fooled), counted here by hand."""
    from defbench.harness.papers import preset_attack
    from defbench.metrics import roc_auc

    clean, row = rows[m.cell(0, None)], rows[m.cell(0, preset_attack(m.attack, "quick"))]
    right = {i: p == y for i, p, y in zip(clean["indices"], clean["preds_undefended"], clean["labels"], strict=True)}
    score = dict(zip(clean["indices"], clean["scores"], strict=True))
    y = np.asarray(row["labels"])
    fooled = np.asarray(row["preds_undefended"]) != y
    if m.threat != "graybox":  # a white-box cell: the defended model fooled (a randomized one: in any repeat)
        reps = np.asarray((row["extra"] or {}).get("repeat_preds") or [row["preds"]])
        fooled = (reps != y[None]).any(0)
    neg = [score[i] for i in row["indices"] if right[i]]
    pos = [s for i, s, f in zip(row["indices"], row["scores"], fooled, strict=True) if right[i] and f]
    head = "success protocol: "
    assert head in note, note
    note = note[note.index(head) :]  # after the spec's own note, if the cell has one
    assert note.endswith(f"{len(neg)} vs {len(pos)} images)"), note
    value = note[len(head) :].split(" ")[0]
    want = roc_auc(neg, pos) if neg and pos else math.nan
    if math.isnan(want):
        assert value == "n/a", note
    else:
        assert float(value) == pytest.approx(want, abs=6e-4), note


def _check_clean_rows_by_hand(table, rows: dict, data_root, most: int = 4) -> None:
    """A defense's clean row holds the zoo classifier's predictions on the defense's purification of that row's
    test images (the defense built here from the zoo, with the test's budgets), and the bare classifier's on the
    images themselves. The runner purifies the first batch of run seed 0 with seed 0 ((seed · 100003 + batch) ·
    7 + repeat); the tables here have one batch and one repeat. Checked for every defense of a table with at most
    ``most`` (every table of the default suite), else for the ``most`` whose clean rows were quickest (the slow
    sweeps: invgan-fig4's 2000-step projections would double its time)."""
    from defbench.defenses.registry import split_variant
    from defbench.harness.models import build_defense
    from defbench.harness.data import load_dataset
    from defbench.harness.models import get_classifier

    clf, _ = get_classifier(table.dataset, "quick", "cpu", data_root, train_missing=False, progress=False)
    test = load_dataset(table.dataset, "test", data_root)
    clean = {c.defense: r for c, r in rows.items() if c.attack is None}
    for d in sorted(table.defenses, key=lambda d: clean[d]["wall_seconds"])[:most]:
        row = clean[d]
        assert len(row["indices"]) <= table.batch_size and table.eval_repeats == 1
        base = split_variant(d)[0]
        over = {**TINY_DEFENSE.get(base, {}), **table.overrides("quick").get(base, {})}
        defense = build_defense(d, table.dataset, "quick", "cpu", over, train_missing=False, progress=False)
        x, y = test.get(row["indices"])
        with torch.no_grad():
            x_hat = defense.purify(x, seed=0)
            preds = clf(x_hat).argmax(1).tolist()
            bare = clf(x).argmax(1).tolist()
        assert row["labels"] == y.tolist(), d
        assert row["preds"] == preds, f"{d}: stored clean predictions differ from purify + classify by hand"
        assert row["preds_undefended"] == bare, d
        # the anomaly score: MimicGAN-2's d_proj = ‖X − G(z*)‖₂ (Eq. 5), no surrogate in between
        d_proj = (x - x_hat).flatten(1).norm(dim=1)
        assert torch.allclose(torch.tensor(row["extra"]["projection_error"]), d_proj, atol=1e-5), d


def _check_attacks_bite(table, rows: dict) -> None:
    """Fashion-MNIST (trained stand-in classifier): clean accuracy of the bare classifier high, gray-box
    FGSM / BIM / PGD at ε = 0.3 take it to (nearly) nothing. A pipeline that attacks nothing, evaluates the
    wrong images or mixes up labels fails here (the rows are deterministic: seeded images and attacks)."""
    if table.dataset != "fmnist":
        return
    acc = {}
    for c, row in rows.items():
        ok = float(np.mean(np.asarray(row["preds_undefended"]) == np.asarray(row["labels"])))
        if c.attack is None:
            acc.setdefault("clean", []).append(ok)
        elif c.threat == "graybox" and c.attack.name in ("fgsm", "bim", "pgd") and c.attack.eps == 0.3:
            acc.setdefault(c.attack.name, []).append(ok)
    assert min(acc["clean"]) >= 0.6, acc
    for name in ("fgsm", "bim", "pgd"):
        assert max(acc.get(name, [0.0])) <= 0.25, (name, acc)


def _check_sanity_section(table, text: str, rows: dict) -> None:
    """The paper report lists the sanity flags of its own cells, as `defbench report` does: at these n the
    small-cell flag fires on every table, and a randomized defense attacked through BPDA with EOT 1 is flagged
    (the RIDE and InvGAN specs' notes promise it)."""
    from defbench.reports.sanity import sanity_flags

    flags = sanity_flags(rows.values())
    section = text.split("### Sanity checks", 1)[1].split("\nFiles:", 1)[0]
    assert flags and all(f"- ⚠ {f}" in section for f in flags), (flags, section)
    assert any("images: the binomial 95% interval" in f for f in flags)
    eot_one = [f.split(" is randomized")[0] for f in flags if "attacked through BPDA with EOT 1" in f]
    promised = {"ride-table2-mnist": ["ride"], "invgan-table2-fmnist": ["defensegan"]}
    if table.id in promised:  # the spec's notes say the report flags these defenses' BPDA cells
        assert eot_one == promised[table.id], flags


def _dataset_ok(table) -> None:
    if table.dataset != "imagenet" and not have_data(table.dataset):
        pytest.skip(f"{table.dataset} not available offline")


SLOW = {
    "ride-table1",
    "ride-table2-imagenet",
    "ride-table2-cifar10",
    "ride-fig5a",
    "mimicgan-fig9b",
    "mimicgan-table2",
    "invgan-fig4",
}


@pytest.mark.parametrize("tid", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW else t for t in TABLES])
def test_paper_spec_end_to_end(tid, paper_zoo, tiny_budgets, tmp_path, capsys, request):
    table = TABLES[tid]
    _dataset_ok(table)
    n = N.get(tid, 8)
    args = [
        "paper",
        "run",
        tid,
        "--n",
        str(n),
        "--preset",
        "quick",
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    data_root = str(request.getfixturevalue("fake_imagenet")) if table.dataset == "imagenet" else None
    if data_root:
        args += ["--data-root", data_root]
    threat_n = {"bpda": max(2, n // 2)} if "bpda" in table.threats else {}  # BPDA cells on a subset
    args += [f"--n-threat={t}={k}" for t, k in threat_n.items()]
    assert main(args) == 0
    text = capsys.readouterr().out
    _check_printed(table, text, n, threat_n)
    rows = _store_rows(table, tmp_path / "o")
    _check_against_store(table, text, rows)
    _check_clean_rows_by_hand(table, rows, data_root)
    _check_attacks_bite(table, rows)
    _check_sanity_section(table, text, rows)
    assert (tmp_path / "o" / f"{tid}.csv").is_file()
    assert (tmp_path / "o" / f"{tid}.png").is_file() == bool(table.figure)


def test_paper_table_with_own_module(paper_zoo, tiny_budgets, tmp_path):
    """``run_table(..., classifier=module)``: every cell of the table is the caller's module's (its clean rows
    hold that module's predictions, of the bare images and of each defense's purification), keyed apart from the
    zoo classifier's cells in the same store; anything else as the classifier is a one-line error."""
    from defbench import DefbenchError
    from defbench.classifiers.base import with_features
    from defbench.harness.data import load_dataset
    from defbench.harness.models import build_defense, user_model_sha256
    from defbench.harness.papers import run_table

    table = TABLES["invgan-table3-fmnist"]
    _dataset_ok(table)
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    args = dict(n=4, preset="quick", out=str(tmp_path / "o"), progress=False, threat_n={"bpda": 2})
    own = run_table(table, classifier=net, **args)
    sha = user_model_sha256(with_features(net))  # the module as the runner holds it (logits as Φ)
    assert {r["classifier"] for r in own.rows.values()} == {f"user-Sequential@{sha[:10]}"}
    test = load_dataset("fmnist", "test", None)
    for c, row in own.rows.items():
        if c.attack is not None:
            continue
        x, _ = test.get(row["indices"])
        over = {**TINY_DEFENSE.get(c.defense, {}), **table.overrides("quick").get(c.defense, {})}
        with torch.no_grad():
            assert row["preds_undefended"] == net(x).argmax(1).tolist()
            if c.defense != "none":
                d = build_defense(c.defense, "fmnist", "quick", "cpu", over, train_missing=False, progress=False)
                assert row["preds"] == net(d.purify(x, seed=0)).argmax(1).tolist(), c.defense
    zoo_run = run_table(table, **args)  # the zoo's classifier: its own cells, none reused from the module's
    assert zoo_run.reused == 0 and not {r["classifier"] for r in zoo_run.rows.values()} & {
        r["classifier"] for r in own.rows.values()
    }
    with pytest.raises(DefbenchError, match="classifier must be"):
        run_table(table, classifier=lambda x: x, **args)


def test_paper_run_threats_leaves_the_other_threats_cells_out(paper_zoo, tiny_budgets, tmp_path, capsys):
    """``paper run --threats graybox``: no RP or BPDA cell is computed or stored, they print — with a note
    saying why, and the clean and gray-box cells print values (the whole table without the option)."""
    from defbench.harness.store import Store

    _dataset_ok(TABLES["invgan-table2-fmnist"])
    out = tmp_path / "o"
    argv = ["paper", "run", "invgan-table2-fmnist", "--preset", "quick", "--n", "4", "--out", str(out)]
    assert main([*argv, "--threats", "graybox", "--no-progress"]) == 0
    text = capsys.readouterr().out
    for row in ("DefenseGAN", "InvGAN"):
        for col in ("RP", "BPDA"):
            cols = md_row(text, row, col)
            assert cols[3] == "—" and "not run here (--threats graybox)" in cols[8], cols
        for col in ("Clean", "FGSM", "CW"):
            assert md_row(text, row, col)[3] != "—", (row, col)
    assert {r["threat"] for r in Store(str(out)).rows()} == {"none", "graybox"}


def test_paper_run_eval_repeats_keeps_the_table_and_notes_the_spread(paper_zoo, tiny_budgets, tmp_path, capsys):
    """``paper run --eval-repeats 2``: DefenseGAN's cells are purified twice (stored as such), the table reads each
    image's first purification, so every cell prints as in the one-purification run, under BPDA too (the attack's
    draws do not depend on the count), and the header and a note say so; InvGAN (deterministic) once."""
    from defbench.harness.store import Store

    _dataset_ok(TABLES["invgan-table2-fmnist"])
    argv = ["paper", "run", "invgan-table2-fmnist", "--preset", "quick", "--n", "4", "--n-threat", "bpda=2"]
    assert main([*argv, "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    once = capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "two"), "--eval-repeats", "2", "--no-progress"]) == 0
    twice = capsys.readouterr().out
    assert "2 purifications per image for the randomized defenses (ours reads each image's first" in twice
    assert "1 purification per image" in once and "purifications of one cell" not in once
    # the sanity checks read the cells by the matrix tables' all-purifications rule, and say so only then
    assert "Read as the matrix tables read a cell purified 2 times" in twice.split("### Sanity checks")[1]
    assert "Read as the matrix tables read" not in once
    assert "- defensegan: its 2 purifications of one cell (fresh seeds, the same images and adversarial" in twice
    for c in TABLES["invgan-table2-fmnist"].cells:
        if c.measure is not None:
            assert md_row(twice, c.row, c.col)[3:5] == md_row(once, c.row, c.col)[3:5], (c.row, c.col)
    rows = list(Store(str(tmp_path / "two")).rows())
    assert {len(r["extra"]["repeat_preds"]) for r in rows if r["defense"].startswith("defensegan")} == {2}
    assert not any("repeat_preds" in r["extra"] for r in rows if r["defense"].startswith(("invgan", "none")))
    assert {r["threat"] for r in rows if r["defense"].startswith("defensegan")} >= {"bpda", "graybox", "reparam"}


def test_table_classifier_swap_benchmark(paper_zoo, tiny_budgets, tmp_path, monkeypatch):
    """benchmarks/table_classifier_swap.py: its two columns are the table's 'ours' with the zoo's classifier and
    with the other one (each run's own report says the same numbers), the change of an accuracy cell is paired by
    image, and the runs computed one classifier at a time (--only) are what the plain command reads."""
    from conftest import import_benchmark

    ts = import_benchmark("table_classifier_swap")
    torch.manual_seed(7)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    trained = []  # the recipes the script asked for

    def scratch(recipe, seed, progress, dataset):
        assert dataset == "fmnist"
        trained.append(recipe.arch)
        return net, {"history": [{"test_accuracy": 0.5}]}

    monkeypatch.setattr(ts, "scratch_classifier", scratch)
    store, out = tmp_path / "s", tmp_path / "t.md"
    args = ["--n", "6", "--n-threat", "bpda=2", "--preset", "quick", "--tables"]
    tids = ["invgan-table2-fmnist", "invgan-table3-fmnist"]
    args = [*args, *tids, "--store", str(store), "--out", str(out), "--no-progress"]
    for only, label in (("zoo", "zoo"), ("other", "tutorial")):  # as separate processes would compute them
        assert ts.main([*args, "--only", only]) == 0
        assert (store / label / f"{tids[0]}.md").is_file() and not out.exists()
    assert trained == ["cnn-cleverhans", "cnn-cleverhans"]  # --other's default
    assert ts.main(args) == 0
    text = out.read_text()
    assert "(0 cells computed, " in text  # both runs read from the store
    for tid in tids:
        section = text.split(f"\n{tid}:\n")[1]
        for label, col in (("zoo", 3), ("tutorial", 4)):
            own = (store / label / f"{tid}.md").read_text()
            for c in TABLES[tid].cells:
                if c.measure is None:
                    continue
                mine = md_row(section, c.row, c.col)[col].split(" (")[0]
                theirs = md_row(own, c.row, c.col)[3].split(" ± ")[0]  # printed with 2 / 4 decimals
                if theirs == "n/a":
                    assert mine == "n/a", (tid, label, c.row, c.col)
                    continue
                digits = 0 if TABLES[tid].metric == "accuracy" else 3
                assert mine == f"{float(theirs):.{digits}f}", (tid, label, c.row, c.col, mine, theirs)
    # a detection cell compares the all-images AUC (above) and notes each run's success-protocol AUC
    note = md_row(text.split("\ninvgan-table3-fmnist:\n")[1], "DefenseGAN", "FGSM")[7]
    assert note.count("success protocol: ") in (1, 2), note
    # an accuracy cell's change: the difference of the two columns, then the paired counts and p
    cols = md_row(text.split("\ninvgan-table2-fmnist:\n")[1], "DefenseGAN", "Clean")
    assert cols[5].startswith(f"{float(cols[4].split()[0]) - float(cols[3].split()[0]):+.0f} (")
    assert ", p = " in cols[5]
    # --threats graybox reparam: the BPDA cells print — with a note, the others as before
    assert ts.main([*args, "--threats", "graybox", "reparam"]) == 0
    part = out.read_text()
    bpda = md_row(part.split("\ninvgan-table2-fmnist:\n")[1], "DefenseGAN", "BPDA")
    assert bpda[3:6] == ["—", "—", "—"] and "not run here (--threats graybox reparam)" in part
    assert md_row(part, "DefenseGAN", "Clean") == md_row(text, "DefenseGAN", "Clean")
    # --other model-a: Model A's recipe, its column and report folder (the stand-in's cells are reused: same weights)
    assert ts.main([*args, "--other", "model-a"]) == 0
    assert trained[-1] == "cnn-defensegan-a" and (store / "model-a" / f"{tids[0]}.md").is_file()
    assert md_row(out.read_text(), "row")[4] == "ours: Model A"


@pytest.mark.parametrize(
    "tables, match",
    [
        (["ride-table2-cifar10"], "'ride-table2-cifar10' is not a Fashion-MNIST or MNIST table"),
        (["invgan-table2-fmnist", "no-such-table"], "'no-such-table' is not a Fashion-MNIST or MNIST table"),
        (["invgan-table2-fmnist", "invgan-table3-mnist"], "'invgan-table3-mnist' is a MNIST table, the first is F"),
    ],
)
def test_table_classifier_swap_refuses_other_tables(tables, match, monkeypatch):
    """The second classifiers are defined for Fashion-MNIST and MNIST, one dataset per run: another dataset's
    table, an unknown one or a mix is refused before any training or cell (one dataset's tables pass: the tests
    above and below)."""
    from conftest import import_benchmark

    ts = import_benchmark("table_classifier_swap")
    monkeypatch.setattr(ts, "scratch_classifier", lambda *a, **k: pytest.fail("trained before the tables were checked"))
    with pytest.raises(SystemExit, match=match):
        ts.main(["--tables", *tables])


@pytest.mark.skipif(not have_data("mnist"), reason="needs MNIST under DEFBENCH_DATA")
def test_table_classifier_swap_mnist(paper_zoo, tiny_budgets, tmp_path, monkeypatch):
    """MNIST's tables: the second classifier is asked for on MNIST (that its cached file is then MNIST's:
    test_classifier_swap.py), the runs use MNIST's zoo and the caption names the dataset."""
    from conftest import import_benchmark

    ts = import_benchmark("table_classifier_swap")
    torch.manual_seed(7)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    asked = []

    def scratch(recipe, seed, progress, dataset):
        asked.append((recipe.arch, dataset))
        return net, {"history": []}

    monkeypatch.setattr(ts, "scratch_classifier", scratch)
    out = tmp_path / "t.md"
    args = ["--n", "4", "--preset", "quick", "--tables", "invgan-table2-mnist", "--threats", "graybox"]
    args += ["--other", "model-a", "--store", str(tmp_path / "s"), "--out", str(out), "--no-progress"]
    assert ts.main(args) == 0
    assert asked == [("cnn-defensegan-a", "mnist")]
    text = out.read_text()
    assert " 4 seeded MNIST test images per cell" in text and "Fashion" not in text
    assert "Classifiers: the zoo's (classifier-mnist-" in text
    section = text.split("\ninvgan-table2-mnist:\n")[1]
    assert md_row(section, "DefenseGAN", "Clean")[3] != "—"  # measured on MNIST


def test_detection_phi_benchmark(paper_zoo, tiny_budgets, tmp_path, monkeypatch):
    """benchmarks/detection_phi.py: the inputs and projections it keeps (MatrixRunner.batch_hook) are the cells'
    own, so each source's own Φ scores them to the stored cells' AUCs and the pixel score to the AUC of the stored
    projection errors; the runs of one source at a time (--only) are what the plain command scores; a store whose
    cells came without kept inputs is refused."""
    from conftest import import_benchmark

    from defbench.classifiers.models import build_classifier
    from defbench.metrics import roc_auc
    from defbench.reports.common import detection_auc_protocol

    dp = import_benchmark("detection_phi")
    torch.manual_seed(7)
    net = build_classifier("fmnist", "cnn-cleverhans").eval()  # untrained: any weights separate the sources
    with torch.no_grad():  # but large enough that the store's 6 decimals of a score do not make ties of its AUCs
        net.body.conv3.weight.mul_(1000)
    monkeypatch.setattr(dp, "scratch_classifier", lambda recipe, seed, progress: (net, {"history": []}))
    store, out = tmp_path / "s", tmp_path / "t.md"
    args = ["--n", "8", "--preset", "quick", "--store", str(store), "--out", str(out), "--no-progress"]
    for only in ("zoo", "other"):
        assert dp.main([*args, "--only", only]) == 0 and not out.exists()
    assert dp.main(args) == 0
    text = out.read_text()
    assert "(0 cells computed, " in text
    for label in ("zoo", "tutorial"):
        for reading in ("protocol", "all images"):
            part = text.split(f"Attacks against the {label} classifier, {reading}:")[1].split("Attacks against")[0]
            stored = md_row(part, "stored cell")
            assert md_row(part, f"{label}: Φ")[1:] == stored[1:], (label, reading)
            assert len(stored) == 7, stored  # 6 detection cells
            # every image counts in the all-images reading, so each cell has an AUC; the protocol's may lack one
            defined = [c != "—" for c in stored[1:]]
            assert all(defined) if reading == "all images" else any(defined), (reading, stored)
            for name in ("zoo: logits", "tutorial: body.conv2", "zoo: Φ/‖Φ‖"):
                md_row(part, name)
    # the all-images reading is every clean score against every attacked one (InvGAN's code's AUC)
    # the pixel row is the AUC of the stored projection errors (the cells' own ‖x_in − x̂‖)
    run = dp.run_table(
        TABLES["invgan-table3-fmnist"].only_threats(["graybox", "reparam"]),
        n=8,
        preset="quick",
        out=str(store),
        progress=False,
        classifier=net,
    )
    assert run.computed == 0
    part = text.split("Attacks against the tutorial classifier, protocol:")[1]
    pixel = md_row(part, "pixels ‖x_in − x̂‖")
    every = md_row(part.split(", all images:")[1], "stored cell")
    want, want_all = [], []
    for c in run.table.cells:
        m = c.measure
        if m is not None and m.metric == "auc":
            rows = [run.rows[m.cell(0, x)] for x in (None, dp.preset_attack(m.attack, "quick"))]
            neg, pos = rows[0]["scores"], rows[1]["scores"]
            want_all.append(auc_cell_of(roc_auc(neg, pos), len(neg), len(pos)))
            rows = [{**r, "scores": r["extra"]["projection_error"]} for r in rows]
            want.append(auc_cell_of(*detection_auc_protocol(*rows)))
    assert pixel[1:] == want and every[1:] == want_all
    # cells stored by a run that kept nothing: refused, not scored from missing inputs
    assert dp.main([*args, "--n", "9", "--only", "zoo"]) == 0
    for f in (store / "kept" / "quick-n9" / "zoo").glob("*.pt"):
        f.unlink()
    with pytest.raises(SystemExit, match="were not kept"):
        dp.main([*args, "--n", "9"])


def auc_cell_of(auc, k0, k1):
    from conftest import import_benchmark

    return import_benchmark("_common").auc_cell(auc, k0, k1)


@pytest.mark.parametrize("tid", ["invgan-table2-fmnist", "invgan-table3-mnist", "no-such-table"])
def test_detection_phi_refuses_other_tables(tid, monkeypatch):
    """A table without detection cells, of another dataset, or unknown is refused before any training or cell
    (invgan-table3-fmnist passes: the test above)."""
    from conftest import import_benchmark

    dp = import_benchmark("detection_phi")
    monkeypatch.setattr(dp, "scratch_classifier", lambda *a: pytest.fail("trained before the table was checked"))
    with pytest.raises(SystemExit, match=f"'{tid}' is not a Fashion-MNIST detection table"):
        dp.main(["--table", tid])
