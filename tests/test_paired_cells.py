"""benchmarks/paired_cells.py: the pairs table from stored cells, and its refusals (cells that share no image,
a named defense without a cell)."""

from __future__ import annotations

import pytest
from conftest import import_benchmark, md_row, md_rows

from defbench import DefbenchError


@pytest.fixture(scope="module")
def pc():
    return import_benchmark("paired_cells")


def _cell(defense, indices, labels, preds):
    return {"defense": defense, "indices": indices, "labels": labels, "preds": preds}


def test_pairs_count_on_the_images_both_cells_hold(pc):
    a = _cell("tvm", [1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 9, 9])  # right on 1, 2
    b = _cell("ride", [2, 3, 4, 5], [1, 2, 3, 4], [9, 2, 9, 4])  # right on 3, 5; image 5 is not a's
    (row,) = pc.pairs([a, b])
    assert row[:7] == ["tvm vs ride", 3, "1 / 1", 0, 1, 1, 1]
    assert row[7] == "1"  # one against one: no evidence


def test_pairs_refuses_cells_without_a_common_image(pc):
    with pytest.raises(DefbenchError, match="share no test image"):
        pc.pairs([_cell("tvm", [1], [0], [0]), _cell("ride", [2], [0], [0])])


def test_a_named_defense_without_a_cell_is_refused(pc, tmp_path):
    from defbench.harness.store import Store

    Store(tmp_path).close()  # an empty store
    with pytest.raises(SystemExit, match="no PGD/bpda cell of ride"):
        pc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda", "--defenses", "ride"])
    with pytest.raises(SystemExit, match="fewer than two PGD/bpda cells"):
        pc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda"])


def _row(defense, eps, preds, model="a", threat="reparam"):
    cfg = {"label": "FGSM", "eps": eps, "model_sha256": {"G": model}}
    return {**_cell(defense, [1, 2, 3], [0, 0, 0], preds), "threat": threat, "attack_config": cfg}


def test_against_pairs_the_same_attack_through_another_prior(pc):
    """Across two runs a cell's twin has the same defense, threat and attack settings; the hashes of the models
    a white-box attack differentiates may differ (that is the prior swap being measured), ε may not."""
    new = [_row("invgan", 0.3, [0, 0, 1], model="new"), _row("invgan", 0.15, [0, 0, 0], model="new")]
    old = [_row("invgan", 0.3, [0, 1, 1], model="old"), _row("defensegan", 0.3, [0, 0, 0], model="old")]
    (row,) = pc.across(new, old)
    assert row[:7] == ["invgan @ ε 0.3", 3, "2 / 1", 1, 1, 0, 1]
    other_threat = [_row("invgan", 0.3, [0, 0, 0], threat="graybox")]
    assert pc.across(new, other_threat) == []


def test_against_attack_pairs_another_attack_setting_of_the_same_defense_threat_and_eps(pc):
    """One attack setting changed between two runs (true -> predicted labels): the twin is the other run's cell of
    the same defense, threat and ε under the other attack; the settings-keyed pairing finds none."""
    new = [_row("invgan", 0.3, [0, 0, 1]), _row("defensegan", 0.3, [1, 1, 1]), _row("invgan", 0.15, [0, 0, 0])]
    for r in new:
        r["attack_config"] = {**r["attack_config"], "label": "FGSM (predicted labels)", "labels": "predicted"}
    old = [
        _row("invgan", 0.3, [0, 1, 1]),
        _row("defensegan", 0.3, [0, 0, 0]),
        _row("invgan", 0.3, [0, 0, 0], threat="graybox"),
    ]
    assert pc.across(new, old) == []
    rows = pc.across(new, old, any_attack=True)
    assert [r[:7] for r in rows] == [
        ["invgan @ ε 0.3", 3, "2 / 1", 1, 1, 0, 1],
        ["defensegan @ ε 0.3", 3, "0 / 3", 0, 0, 3, 0],
    ]
    with pytest.raises(SystemExit, match="2 cells of invgan could be the twin"):
        pc.across(new, old + [_row("invgan", 0.3, [0, 0, 0])], any_attack=True)


def test_against_attack_needs_against(pc, tmp_path):
    from defbench.harness.store import Store

    with pytest.raises(SystemExit, match="needs --against"):
        pc.main(["--store", str(tmp_path), "--attack", "FGSM", "--against-attack", "FGSM"])
    for d in ("a", "b"):
        Store(tmp_path / d).close()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with pytest.raises(SystemExit, match="has a twin") as raised:  # with --against it passes on to the pairing
        pc.main(["--store", a, "--against", b, "--attack", "FGSM (predicted labels)", "--against-attack", "FGSM"])
    assert "needs --against" not in str(raised.value)


def test_against_without_any_twin_is_refused(pc, tmp_path):
    from defbench.harness.store import Store

    for d in ("a", "b"):
        Store(tmp_path / d).close()
    with pytest.raises(SystemExit, match="has a twin"):
        pc.main(["--store", str(tmp_path / "a"), "--against", str(tmp_path / "b"), "--attack", "FGSM"])


def test_versus_clean_pairs_each_attacked_cell_with_its_defense_clean_cell(pc):
    """On the attacked cell's images (a subset of the clean cell's): right when clean and kept, taken, fixed."""
    clean = [_cell("ride", [1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [0, 0, 0, 9, 9]), _cell("tvm", [1], [0], [0])]
    attacked = [_cell("ride", [2, 3, 4], [0, 0, 0], [0, 9, 0]), _cell("median", [2], [0], [0])]
    for r in attacked:
        r["attack_config"] = {"eps": 0.05}
    (row,) = pc.versus_clean(attacked, clean)  # median has no clean cell: no row
    assert row[:7] == ["ride @ ε 0.05: clean vs attacked", 3, "2 / 2", 1, 1, 1, 0]


def test_a_table_command_pastes_into_a_shell(pc):
    import shlex

    line = pc.command_line(["--attack", "PGD (n=10)", "--defenses", "ride[sigma_units=normalized]"])
    assert shlex.split(line)[-4:] == ["--attack", "PGD (n=10)", "--defenses", "ride[sigma_units=normalized]"]


def test_versus_clean_without_a_clean_cell_is_refused_and_with_one_prints(pc, tmp_path, monkeypatch, capsys):
    from defbench.harness.store import Store

    Store(tmp_path).close()  # an empty store
    with pytest.raises(SystemExit, match="has a clean cell beside it"):
        pc.main(["--store", str(tmp_path), "--attack", "PGD", "--threat", "bpda", "--versus-clean"])
    attacked = {**_cell("ride", [1, 2], [0, 0], [0, 9]), "attack_config": {"eps": 0.05}}
    clean = _cell("ride", [1, 2], [0, 0], [0, 0])
    monkeypatch.setattr(pc, "select", lambda store, attack, *a: [clean] if attack == "clean" else [attacked])
    assert pc.main(["--store", "x", "--attack", "PGD", "--threat", "bpda", "--versus-clean"]) == 0
    assert "| ride @ ε 0.05: clean vs attacked |        2 |          2 / 1 |" in capsys.readouterr().out


def test_a_store_that_swept_eps_needs_eps_to_pair_defenses(pc, monkeypatch, capsys):
    """Seen: after an --eps sweep, 'defensegan vs defensegan[latent_steps=400]' paired the ε 0.2 cell (89 right)
    with the ε 0.3 one; a defense with cells at several ε is refused without --eps, and --eps picks the cells."""
    rows = [
        _row("defensegan", 0.3, [0, 9, 9], threat="graybox"),
        _row("defensegan", 0.2, [0, 0, 0], threat="graybox"),
        _row("defensegan[latent_steps=400]", 0.3, [0, 0, 9], threat="graybox"),
    ]
    monkeypatch.setattr(pc, "select", lambda *a: rows)
    with pytest.raises(SystemExit, match=r"defensegan has cells at several ε \(0.2, 0.3\).*--eps"):
        pc.main(["--store", "x", "--attack", "FGSM", "--threat", "graybox"])
    assert pc.main(["--store", "x", "--attack", "FGSM", "--threat", "graybox", "--eps", "0.3"]) == 0
    assert "| defensegan vs defensegan[latent_steps=400] |        3 |          1 / 2 |" in capsys.readouterr().out


def test_versus_clean_names_a_defense_without_a_cell_instead_of_dropping_it(pc, monkeypatch):
    rows = [_row("tvm", 0.3, [0, 0, 1])]
    monkeypatch.setattr(pc, "select", lambda *a: rows)
    with pytest.raises(SystemExit, match="no FGSM/reparam cell of ride in x"):
        pc.main(
            ["--store", "x", "--attack", "FGSM", "--threat", "reparam", "--versus-clean", "--defenses", "tvm", "ride"]
        )


def test_pooled_seeds_pair_each_image_within_its_seed(pc):
    """Seeds draw their own images, and an index can recur: pooled cells pair (seed, image), never across seeds."""

    def cell(defense, seed, preds):
        return {**_cell(defense, [7, 8], [0, 0], preds), "seed": seed}

    a = [cell("tvm", 0, [0, 0]), cell("tvm", 1, [0, 9])]  # right on (0,7), (0,8), (1,7)
    b = [cell("ride", 0, [9, 0]), cell("ride", 1, [0, 0])]  # right on (0,8), (1,7), (1,8)
    (row,) = pc.pairs([a, b])
    assert row[:7] == ["tvm vs ride", 4, "3 / 3", 2, 1, 1, 0]
    # by index alone the two seeds' images would collapse to 2 images
    assert pc.pairs([a[0], b[0]])[0][1] == 2


def test_pool_seeds_refuses_the_cross_modes(pc, tmp_path):
    with pytest.raises(SystemExit, match="--pool-seeds pairs defenses of one store"):
        pc.main(["--store", str(tmp_path), "--pool-seeds", "0", "1", "--versus-clean"])


def test_pool_seeds_needs_the_same_defenses_at_every_seed(pc, monkeypatch, tmp_path, capsys):
    def cell(defense, seed, preds):
        return {**_row(defense, 0.3, preds, threat="graybox"), "seed": seed}

    full = {0: [cell("tvm", 0, [0, 0, 0]), cell("ride", 0, [0, 1, 1])]}
    full[1] = [cell("tvm", 1, [0, 0, 1]), cell("ride", 1, [0, 1, 1])]
    monkeypatch.setattr(pc, "select", lambda store, attack, threat, seed: full[seed])
    args = ["--store", str(tmp_path), "--attack", "FGSM", "--threat", "graybox", "--pool-seeds", "0", "1"]
    assert pc.main(args) == 0  # silent when every seed holds both: six images pooled, paired within their seed
    # tvm right on (0,1), (0,2), (0,3), (1,1), (1,2); ride on (0,1), (1,1)
    assert md_row(capsys.readouterr().out, "tvm vs ride")[1:8] == ["6", "5 / 2", "2", "3", "0", "1", "0.25"]
    full[1] = full[1][:1]  # seed 1 has no ride cell
    with pytest.raises(SystemExit, match="seed 1 lacks or adds FGSM/graybox cells of ride"):
        pc.main(args)
    full[0], full[1] = full[0][:1], full[1][:1]  # one defense at every seed: nothing to pair
    with pytest.raises(SystemExit, match="fewer than two FGSM/graybox cells"):
        pc.main(args)


def test_cells_without_a_partner_are_named_under_the_table(pc, monkeypatch, capsys):
    """--versus-clean and --against leave out the cells they cannot pair, and say which (they were dropped
    without a word: a table of one defense read as the whole store)."""
    attacked = [{**_cell(d, [1, 2], [0, 0], [0, 9]), "attack_config": {"eps": 0.05}} for d in ("ride", "median")]
    clean = [_cell("ride", [1, 2], [0, 0], [0, 0])]
    monkeypatch.setattr(pc, "select", lambda store, attack, *a: clean if attack == "clean" else attacked)
    assert pc.main(["--store", "x", "--attack", "PGD", "--threat", "bpda", "--versus-clean"]) == 0
    out = capsys.readouterr().out
    assert "Not in the table, having no clean cell beside it: median @ ε 0.05." in out
    new = [_row("defensegan", 0.3, [0, 0, 9]), _row("mimicgan", 0.3, [0, 9, 9])]
    old = [_row("defensegan", 0.3, [0, 9, 9], model="b")]
    monkeypatch.setattr(pc, "select", lambda store, *a: new if store == "x" else old)
    assert pc.main(["--store", "x", "--against", "y", "--attack", "FGSM", "--threat", "reparam"]) == 0
    out = capsys.readouterr().out
    assert "| defensegan @ ε 0.3 " in out and "Not in the table, having no twin in y: mimicgan @ ε 0.3." in out
    monkeypatch.setattr(pc, "select", lambda store, *a: new[:1] if store == "x" else old)
    assert pc.main(["--store", "x", "--against", "y", "--attack", "FGSM", "--threat", "reparam"]) == 0
    assert "Not in the table" not in capsys.readouterr().out  # every cell paired: nothing said


def test_pairs_match_images_by_index_not_by_position(pc):
    """A cell's images need not be stored in index order (a seeded draw is not sorted): image 3 stored first is
    still image 3."""
    a = _cell("tvm", [3, 1, 2], [0, 0, 0], [0, 9, 9])  # right on image 3 only
    b = _cell("ride", [1, 2, 3], [0, 0, 0], [0, 0, 9])  # right on images 1, 2
    (row,) = pc.pairs([a, b])
    # image 1: only B, image 2: only B, image 3: only A
    assert row[:7] == ["tvm vs ride", 3, "1 / 2", 0, 1, 2, 0]


def test_mcnemar_p_is_the_two_sided_binomial_tail_to_three_digits(pc):
    """5 discordant images against 0: p = 2 * (1/2)^5 = 0.0625; 5 against 1: p = 2 * (1 + 6) / 2^6 = 0.21875."""
    a = _cell("tvm", [1, 2, 3, 4, 5, 6], [0] * 6, [0] * 6)
    b = _cell("ride", [1, 2, 3, 4, 5, 6], [0] * 6, [0, 9, 9, 9, 9, 9])
    (row,) = pc.pairs([a, b])
    assert row[1:] == [6, "6 / 1", 1, 5, 0, 0, "0.0625"]
    a = _cell("tvm", [1, 2, 3, 4, 5, 6], [0] * 6, [0, 0, 0, 0, 0, 9])
    b = _cell("ride", [1, 2, 3, 4, 5, 6], [0] * 6, [9, 9, 9, 9, 9, 0])
    (row,) = pc.pairs([a, b])
    assert row[1:] == [6, "5 / 1", 0, 5, 1, 0, "0.219"]


def test_against_names_a_cell_whose_defense_has_a_twin_only_at_another_eps(pc):
    new = [_row("invgan", 0.3, [0, 0, 1]), _row("invgan", 0.15, [0, 0, 0])]
    old = [_row("invgan", 0.3, [0, 1, 1])]
    left: list[str] = []
    (row,) = pc.across(new, old, left=left)
    assert row[0] == "invgan @ ε 0.3"
    assert left == ["invgan @ ε 0.15"]


def test_at_eps_takes_a_stored_eps_equal_up_to_float_noise(pc):
    rows = [_row("tvm", 0.1 * 3, [0, 0, 0]), _row("tvm", 0.2, [0, 0, 0])]  # 0.1 * 3 = 0.30000000000000004
    assert [r["attack_config"]["eps"] for r in pc.at_eps(rows, 0.3)] == [0.1 * 3]


def test_select_reads_the_store_by_label_threat_and_seed(pc, tmp_path):
    """The attack as stored by its label (the attack column is its name), the threat asked, plus under BPDA the
    undefended gray-box cell, at the seed asked."""
    from defbench.harness.store import CellKey, CellResult, Store

    store = Store(tmp_path)
    cells = [
        ("tvm", "pgd", "PGD", "bpda", 0),
        ("none", "pgd", "PGD", "graybox", 0),
        ("tvm", "pgd", "PGD", "graybox", 0),
        ("tvm", "pgd", "PGD", "bpda", 1),
        ("tvm", "fgsm", "FGSM", "bpda", 0),
        ("ride", "clean", None, "none", 0),
    ]
    for defense, name, label, threat, seed in cells:
        cfg = {"name": name, **({"label": label} if label else {})}
        key = CellKey("mnist", "clf", defense, "h" + defense, name, "a" + name, threat, seed)
        store.put(key, CellResult([0], [0], [0], [0.0], [1], 0.0, "cpu", attack_config=cfg))
    store.close()

    def picked(attack, threat, seed):
        return sorted((r["defense"], r["threat"], r["seed"]) for r in pc.select(str(tmp_path), attack, threat, seed))

    assert picked("PGD", "bpda", 0) == [("none", "graybox", 0), ("tvm", "bpda", 0)]
    assert picked("PGD", "bpda", 1) == [("tvm", "bpda", 1)]
    assert picked("PGD", "graybox", 0) == [("none", "graybox", 0), ("tvm", "graybox", 0)]
    assert picked("pgd", "bpda", 0) == []  # the name is not the label
    assert picked("clean", "none", 0) == [("ride", "none", 0)]  # no label: the attack's name


def test_defenses_named_are_paired_though_another_defense_swept_eps(pc, monkeypatch, capsys):
    rows = [
        _row("defensegan", 0.3, [0, 9, 9], threat="graybox"),
        _row("defensegan", 0.2, [0, 0, 0], threat="graybox"),
        _row("tvm", 0.3, [0, 0, 9], threat="graybox"),
        _row("ride", 0.3, [9, 9, 0], threat="graybox"),
    ]
    monkeypatch.setattr(pc, "select", lambda *a: rows)
    assert pc.main(["--store", "x", "--attack", "FGSM", "--threat", "graybox", "--defenses", "tvm", "ride"]) == 0
    # tvm right on 1, 2; ride on 3: no image both right, 2 only tvm, 1 only ride; p = 2 * 4/8 = 1
    assert md_row(capsys.readouterr().out, "tvm vs ride")[1:8] == ["3", "2 / 1", "0", "2", "1", "0", "1"]


def test_versus_clean_with_eps_pairs_the_cells_at_that_eps_only(pc, monkeypatch, capsys):
    attacked = [_row("ride", 0.3, [0, 9, 9]), _row("ride", 0.2, [0, 0, 9])]
    clean = [_cell("ride", [1, 2, 3], [0, 0, 0], [0, 0, 0])]
    monkeypatch.setattr(pc, "select", lambda store, attack, *a: clean if attack == "clean" else attacked)
    args = ["--store", "x", "--attack", "FGSM", "--threat", "reparam", "--versus-clean"]
    assert pc.main([*args, "--eps", "0.3"]) == 0
    table = [r[0] for r in md_rows(capsys.readouterr().out)]
    assert table == ["cell (A: clean, B: attacked)", "ride @ ε 0.3: clean vs attacked"]
    assert pc.main(args) == 0  # without --eps every attacked cell, each with the clean one
    out = capsys.readouterr().out
    assert md_row(out, "ride @ ε 0.3: clean vs attacked")[1:7] == ["3", "3 / 1", "1", "2", "0", "0"]
    assert md_row(out, "ride @ ε 0.2: clean vs attacked")[1:7] == ["3", "3 / 2", "2", "1", "0", "0"]


def test_versus_clean_takes_the_clean_cell_of_the_seed_asked(pc, monkeypatch, capsys):
    attacked = {1: [_row("ride", 0.3, [0, 9, 9])]}
    clean = {0: [_cell("ride", [1, 2, 3], [0, 0, 0], [9, 9, 9])], 1: [_cell("ride", [1, 2, 3], [0, 0, 0], [0, 0, 0])]}
    monkeypatch.setattr(pc, "select", lambda s, attack, t, seed: (clean if attack == "clean" else attacked)[seed])
    assert pc.main(["--store", "x", "--attack", "FGSM", "--threat", "reparam", "--versus-clean", "--seed", "1"]) == 0
    # seed 1's clean cell is right on all three: the attack keeps 1 and takes 2
    assert md_row(capsys.readouterr().out, "ride @ ε 0.3: clean vs attacked")[1:7] == ["3", "3 / 1", "1", "2", "0", "0"]


def test_main_against_attack_pairs_with_the_other_runs_cells_of_that_label(pc, monkeypatch, capsys):
    new = [_row("invgan", 0.3, [0, 0, 1])]
    new[0]["attack_config"] = {**new[0]["attack_config"], "label": "FGSM (predicted labels)", "labels": "predicted"}
    old = [_row("invgan", 0.3, [0, 1, 1])]
    stores = {("x", "FGSM (predicted labels)"): new, ("y", "FGSM"): old}
    monkeypatch.setattr(pc, "select", lambda store, attack, *a: stores.get((store, attack), []))
    args = ["--store", "x", "--against", "y", "--attack", "FGSM (predicted labels)", "--threat", "reparam"]
    assert pc.main([*args, "--against-attack", "FGSM"]) == 0
    # new right on 1, 2; old on 1: both 1, only new 1, only old 0, neither 1
    assert md_row(capsys.readouterr().out, "invgan @ ε 0.3")[1:7] == ["3", "2 / 1", "1", "1", "0", "1"]


def test_one_cell_has_nothing_to_pair_with(pc, monkeypatch):
    monkeypatch.setattr(pc, "select", lambda *a: [_row("tvm", 0.3, [0, 0, 0], threat="graybox")])
    with pytest.raises(SystemExit, match="fewer than two FGSM/graybox cells"):
        pc.main(["--store", "x", "--attack", "FGSM", "--threat", "graybox"])


def _pgd_store(path, cells):
    """A real store of PGD cells (defense, steps, threat, classifier, preds) on images 1-3, all labelled 0, and
    one clean cell per (defense, classifier)."""
    from defbench.harness.store import CellKey, CellResult, Store

    store = Store(path)
    seen = set()
    for defense, steps, threat, clf, preds in cells:
        cfg = {"name": "pgd", "label": "PGD", "eps": 0.1, "params": {"step": 0.02, "steps": steps}}
        key = CellKey("mnist", clf, defense, "h" + defense, "pgd", f"a{steps}", threat, 0)
        store.put(key, CellResult([0, 0, 0], preds, preds, [0.0] * 3, [1, 2, 3], 0.0, "cpu", attack_config=cfg))
        if (defense, clf) not in seen:
            seen.add((defense, clf))
            key = CellKey("mnist", clf, defense, "h" + defense, "clean", "c", "none", 0)
            clean = CellResult([0, 0, 0], [0, 0, 0], [0, 0, 0], [0.0] * 3, [1, 2, 3], 0.0, "cpu", attack_config={})
            store.put(key, clean)
    store.close()


def test_two_attack_settings_under_one_label_are_refused_and_the_reports_name_picks_one(pc, tmp_path, capsys):
    """PGD at 10 and at 20 steps run into one --out share the label PGD: pairing by the label alone would pair
    tvm's two cells with each other ("tvm vs tvm") and list "none vs tvm" twice; it is refused, naming the report's
    labels, and --attack 'PGD steps=20' (the report's row) picks that setting's cells."""
    _pgd_store(
        tmp_path,
        [
            ("tvm", 10, "bpda", "clf", [0, 0, 9]),
            ("ride", 10, "bpda", "clf", [0, 9, 9]),
            ("tvm", 20, "bpda", "clf", [9, 9, 9]),
            ("ride", 20, "bpda", "clf", [0, 0, 0]),
        ],
    )
    args = ["--store", str(tmp_path), "--threat", "bpda"]
    with pytest.raises(
        SystemExit, match="2 PGD/bpda cells of tvm @ ε 0.1 in one store \\(attacks PGD steps=10, PGD steps=20"
    ):
        pc.main([*args, "--attack", "PGD"])
    assert pc.main([*args, "--attack", "PGD steps=20"]) == 0
    (row,) = md_rows(capsys.readouterr().out)[1:]
    assert row[:8] == ["tvm vs ride", "3", "0 / 3", "0", "0", "3", "0", "0.25"]  # p = 2 · 2⁻³
    with pytest.raises(SystemExit, match="2 PGD/bpda cells of ride"):
        pc.main([*args, "--attack", "PGD", "--defenses", "ride", "--versus-clean"])


def test_two_clean_cells_of_one_defense_are_refused(pc, tmp_path, capsys):
    """Cells of two classifiers in one store: the clean cell that --versus-clean pairs with is not one."""
    cells = [("tvm", 10, "bpda", "clf-a", [0, 0, 9]), ("tvm", 20, "bpda", "clf-b", [0, 0, 0])]
    _pgd_store(tmp_path, [*cells, ("ride", 10, "bpda", "clf-a", [0, 9, 9])])
    args = ["--store", str(tmp_path), "--threat", "bpda", "--attack", "PGD steps=10", "--versus-clean"]
    with pytest.raises(SystemExit, match="2 clean cells of tvm in one store \\(cells of other models"):
        pc.main(args)
    assert pc.main([*args, "--defenses", "ride"]) == 0  # tvm's two clean cells are not needed: silent
    assert md_row(capsys.readouterr().out, "ride @ ε 0.1: clean vs attacked")[1:7] == ["3", "3 / 1", "1", "2", "0", "0"]


def test_two_twins_in_the_other_run_are_refused(pc, tmp_path, capsys):
    """--against: the other run holds tvm's PGD cell under two classifiers, both twins of this run's cell."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    _pgd_store(mine, [("tvm", 10, "bpda", "clf", [0, 0, 9])])
    _pgd_store(other, [("tvm", 10, "bpda", "clf-a", [0, 0, 0]), ("tvm", 10, "bpda", "clf-b", [9, 9, 9])])
    args = ["--store", str(mine), "--threat", "bpda", "--attack", "PGD", "--against"]
    with pytest.raises(SystemExit, match="2 --against cells of tvm @ ε 0.1"):
        pc.main([*args, str(other)])
    _pgd_store(tmp_path / "one", [("tvm", 10, "bpda", "clf", [0, 0, 0])])
    assert pc.main([*args, str(tmp_path / "one")]) == 0  # one twin: paired
    assert md_row(capsys.readouterr().out, "tvm @ ε 0.1")[1:8] == ["3", "2 / 3", "2", "0", "1", "0", "1"]
