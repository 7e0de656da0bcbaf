"""benchmarks/bpda_causes.py: the table names the prior its readings used (the prior hypothesis swaps the zoo
with ``--home``), so two tables on different GANs cannot be read as one."""

from __future__ import annotations

import json

import pytest
from conftest import import_benchmark

from defbench.harness.store import DB_NAME
from defbench.metrics import auc_interval


@pytest.fixture(scope="module")
def bc():
    return import_benchmark("bpda_causes")


def _manifest(home, spectral_norm: bool, best_epoch: int, done: int):
    zoo = home / "zoo"
    zoo.mkdir(parents=True)
    config = {"epochs": 8, "spectral_norm": spectral_norm}
    metrics = {"best_epoch": best_epoch, "epochs_done": done}
    (zoo / "gan-fmnist-paper.json").write_text(json.dumps({"sha256": "ab" * 32, "config": config, "metrics": metrics}))


def test_prior_names_the_normalisation_and_the_kept_epoch(bc, tmp_path):
    _manifest(tmp_path / "sn", True, 1, 4)
    _manifest(tmp_path / "bn", False, 8, 8)
    assert bc.describe_prior(tmp_path / "sn", "fmnist") == (
        "gan-fmnist-paper sha256 abababab (D with spectral norm; epoch 1 of 4 run)"
    )
    assert "D with batch norm; epoch 8 of 8 run" in bc.describe_prior(tmp_path / "bn", "fmnist")


def test_prior_missing_says_the_first_reading_trains_it(bc, tmp_path):
    assert "yet (the first reading trains it)" in bc.describe_prior(tmp_path, "fmnist")


def _matrix_call(bc, monkeypatch, label, args) -> dict:
    """The command and environment ``run_reading`` hands the matrix subprocess (stopped before any store is read)."""
    seen = {}

    def fake_run(cmd, check, stdout, env):
        seen.update(cmd=cmd, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(bc.subprocess, "run", fake_run)
    with pytest.raises(SystemExit):
        bc.run_reading(label, args)
    return seen


def test_home_reaches_the_matrix_subprocess(bc, tmp_path, monkeypatch):
    args = bc.argparse.Namespace(dataset="fmnist", n=2, work=str(tmp_path), home=str(tmp_path / "h"), compare=None)
    assert _matrix_call(bc, monkeypatch, "D0", args)["env"]["DEFBENCH_HOME"] == str(tmp_path / "h")
    args.home = None
    env = _matrix_call(bc, monkeypatch, "D0", args)["env"]
    assert env.get("DEFBENCH_HOME") == bc.os.environ.get("DEFBENCH_HOME")  # the caller's, untouched


def test_paired_bpda_counts_the_common_images(bc):
    here = {"indices": [1, 2, 3, 4, 5], "labels": [0, 1, 2, 3, 4], "preds": [0, 1, 9, 9, 4]}  # right on 1, 2, 5
    there = {"indices": [2, 3, 4, 5, 6], "labels": [1, 2, 3, 4, 5], "preds": [9, 9, 3, 9, 5]}  # right on 4, 6
    # common images 2..5: 2 only here, 4 only there, 5 only here, 3 neither -> 0 / 2 / 1 / 1
    assert bc.paired_bpda(here, there) == "0 / 2 / 1 / 1 (p = 1)"
    eight = {"indices": list(range(8)), "labels": [0] * 8, "preds": [0] * 8}
    none = {"indices": list(range(8)), "labels": [0] * 8, "preds": [1] * 8}
    assert bc.paired_bpda(eight, none) == "0 / 8 / 0 / 0 (p = 0.0078)"  # 2 * 0.5**8
    many = {"indices": list(range(47)), "labels": [0] * 47, "preds": [0] * 47}
    wrong = {"indices": list(range(47)), "labels": [0] * 47, "preds": [1] * 47}
    assert bc.paired_bpda(many, wrong) == "0 / 47 / 0 / 0 (p = 1.4e-14)"  # 2 * 0.5**47, not "0.00"


def test_compare_appends_the_pairing_with_the_other_runs_cell(bc, tmp_path, monkeypatch):
    stores = {
        tmp_path / "here" / "D0": {"clean": _cell([0, 0, 0, 0]), "pgd": _cell([0, 0, 1, 1])},
        tmp_path / "there" / "D0": {"clean": _cell([0, 0, 0, 0]), "pgd": _cell([1, 0, 1, 0])},
    }
    _fake_stores(bc, monkeypatch, stores, key=lambda out: out)
    args = bc.argparse.Namespace(dataset="fmnist", n=4, work=str(tmp_path / "here"), home=None, compare=None)
    row = bc.run_reading("D0", args)
    assert row[3:5] == ["4/4 (51–100)", "2/4 (15–85)"] and len(row) == 8  # no pairing column without --compare
    args.compare = str(tmp_path / "there")
    # here right on 0, 1; there right on 1, 3: both 1, only here 1 (image 0), only there 1 (image 3), neither 1
    assert bc.run_reading("D0", args)[8] == "1 / 1 / 1 / 1 (p = 1)"


def test_detection_auc_sets_every_clean_image_against_every_bpda_image(bc, tmp_path, monkeypatch):
    """Table 3's BPDA column, as InvGAN's code reads it: all clean scores against all attacked scores, whether the
    attack succeeded or not, with the Hanley–McNeil interval; an undefined AUC prints a dash, not a number."""
    clean = _cell([0, 0, 0, 0], scores=[0.1, 0.2, 0.3, 0.6])
    # attacked scores 0.5 (fails, image 0), 0.7, 0.8, 0.9: 15 of the 16 (clean, attacked) pairs ranked right
    attacked = _cell([0, 1, 1, 1], scores=[0.5, 0.7, 0.8, 0.9])
    _fake_stores(bc, monkeypatch, {tmp_path / "D0": {"clean": clean, "pgd": attacked}}, key=lambda out: out)
    args = bc.argparse.Namespace(dataset="fmnist", n=4, work=str(tmp_path), home=None, compare=None)
    row = bc.run_reading("D0", args)
    lo, hi = auc_interval(15 / 16, 4, 4)
    assert row[5] == f"0.938 ({lo:.2f}–{hi:.2f})" and 0.5 < lo < 0.938 < hi <= 1
    assert bc.detection_cell(clean, _cell([0] * 4, scores=[1.0] * 4)) == "1.000"  # AUC 1: no zero-width interval
    assert bc.detection_cell(_cell([0] * 2, [0.3, 0.3]), _cell([0] * 2, [0.3, 0.3])) == "—"  # all equal: undefined


@pytest.mark.parametrize("label, step", [("D5", 0.01), ("I5", 0.01), ("D6", 0.02), ("I6", 0.02)])
def test_travel_readings_run_ten_steps_of_their_size_and_the_matrix_takes_them(bc, tmp_path, monkeypatch, label, step):
    args = bc.argparse.Namespace(dataset="mnist", n=2, work=str(tmp_path), home=None, compare=None)
    cmd = _matrix_call(bc, monkeypatch, label, args)["cmd"]
    opts = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--attack-opt"]
    assert opts == ["pgd:steps=10", f"pgd:step={step}"] and cmd[cmd.index("--eps") + 1] == "0.3"
    # the matrix CLI parses them into one PGD spec travelling 10 * step (the base travels 40 * 0.01 = 0.4)
    from defbench.cli import build_parser
    from defbench.cli.matrix import attack_specs

    margs = build_parser().parse_args(cmd[cmd.index("matrix") :])
    (spec,) = attack_specs(margs, "mnist")
    assert spec.name == "pgd" and spec.eps == 0.3 and dict(spec.params) == {"steps": 10, "step": step}


def _fake_stores(bc, monkeypatch, stores, key):
    """Readings whose matrix runs are skipped and whose cells read as ``stores[key(out)]``; each gets its store file
    (empty: only ``read_cells`` is faked), so ``bpda_cell`` finds the reading ran."""
    for out in stores:
        out.mkdir(parents=True, exist_ok=True)
        (out / DB_NAME).touch()
    monkeypatch.setattr(bc.subprocess, "run", lambda *a, **k: None)
    monkeypatch.setattr(bc, "read_cells", lambda out: stores[key(out)])


def _cell(preds, scores=None):
    return {
        "n": len(preds),
        "scores": list(scores) if scores is not None else [0.0] * len(preds),
        "correct": sum(p == 0 for p in preds),
        "indices": list(range(len(preds))),
        "labels": [0] * len(preds),
        "preds": preds,
        "wall_seconds": 1.0,
        "device": "cpu",
    }


@pytest.mark.parametrize("pair_base", [True, False])
def test_pair_base_pairs_each_reading_with_its_defenses_base(bc, tmp_path, monkeypatch, pair_base):
    stores = {
        "D5": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 0, 1])},  # right on 0, 1, 2
        "D0": {"clean": _cell([0] * 4), "pgd": _cell([1, 0, 1, 1])},  # right on 1
        "I0": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 0, 0])},
    }
    _fake_stores(bc, monkeypatch, {tmp_path / k: v for k, v in stores.items()}, key=lambda out: out)
    out = tmp_path / "t.md"
    argv = ["--only", "D5", "D0", "I0", "--work", str(tmp_path), "--out", str(out)]
    bc.main(argv + ["--pair-base"] * pair_base)
    table = out.read_text()
    assert ("BPDA paired with the base reading" in table) is pair_base
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    # D5 against D0 (not I0): both 1 (image 1), only D5 2 (images 0, 2), only D0 0, neither 1 (image 3)
    assert ("1 / 2 / 0 / 1 (p = 0.5)" in rows["D5"]) is pair_base
    assert rows["D0"].rstrip(" |").endswith("—") is pair_base and rows["I0"].rstrip(" |").endswith("—") is pair_base


@pytest.mark.parametrize("flag", ["--pair-base", "--compare"])
def test_pairing_with_a_reading_that_never_ran_says_so_and_creates_no_store(bc, tmp_path, monkeypatch, flag):
    stores = {tmp_path / "D5": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 0, 1])}}
    _fake_stores(bc, monkeypatch, stores, key=lambda out: out)
    argv = ["--only", "D5", "--work", str(tmp_path), "--out", str(tmp_path / "t.md")]
    argv += [flag] if flag == "--pair-base" else [flag, str(tmp_path / "other")]
    with pytest.raises(SystemExit, match=r"no BPDA cell of reading D\d in .*: run it there first \(--only D\d\)"):
        bc.main(argv)
    assert not (tmp_path / "D0").exists() and not (tmp_path / "other").exists()


@pytest.mark.parametrize("label, defense", [("D7", "defensegan"), ("I7", "invgan")])
def test_l2_readings_hand_cw_with_four_searches_to_the_bpda_model(bc, tmp_path, monkeypatch, label, defense):
    """InvGAN's code's bpda-l2 (4 binary-search steps of 100 at lr 0.2 from the constant 10): defbench's CW with
    its search count changed, under the same BPDA threat; the table reads that reading's CW cell, not a PGD one."""
    args = bc.argparse.Namespace(dataset="fmnist", n=2, work=str(tmp_path), home=None, compare=None)
    cmd = _matrix_call(bc, monkeypatch, label, args)["cmd"]
    assert cmd[cmd.index("--attacks") + 1] == "cw" and cmd[cmd.index("--threat") + 1] == "bpda"
    assert cmd[cmd.index("--defense") + 1] == defense and "--eps" not in cmd
    from defbench.attacks import get_attack
    from defbench.cli import build_parser
    from defbench.cli.matrix import attack_specs

    (spec,) = attack_specs(build_parser().parse_args(cmd[cmd.index("matrix") :]), "fmnist")
    assert spec.name == "cw" and dict(spec.params) == {"binary_search_steps": 4}
    atk = get_attack("cw", "fmnist", **dict(spec.params))
    assert atk.params == {"binary_search_steps": 4, "initial_const": 10.0, "lr": 0.2, "steps": 100, "confidence": 0.0}
    stores = {tmp_path / label: {"clean": _cell([0, 0, 0, 0]), "cw": _cell([0, 1, 1, 1]), "pgd": _cell([1] * 4)}}
    _fake_stores(bc, monkeypatch, stores, key=lambda out: out)
    row = bc.run_reading(label, args)
    assert row[3:5] == ["4/4 (51–100)", "1/4 (5–70)"]


def test_backward_reading_hands_invgan_the_identity_stand_in(bc, tmp_path, monkeypatch):
    """I8 changes one thing from I0: InvGAN's BPDA backward, the identity (its code's straight-through attack, its
    paper config's since) where I0 keeps G(I(x)) (``auto``, the rule its stored cells were keyed under); both
    options are ones InvGAN takes (test_threats: their effect)."""
    args = bc.argparse.Namespace(dataset="fmnist", n=2, work=str(tmp_path), home=None, compare=None)
    base = _matrix_call(bc, monkeypatch, "I0", args)["cmd"]
    cmd = _matrix_call(bc, monkeypatch, "I8", args)["cmd"]
    assert "invgan:bpda_stand_in=auto" in base and "invgan:bpda_stand_in=identity" not in base
    assert "invgan:bpda_stand_in=identity" in cmd and "invgan:bpda_stand_in=auto" not in cmd
    swap = {"invgan:bpda_stand_in=identity": "invgan:bpda_stand_in=auto", str(tmp_path / "I8"): str(tmp_path / "I0")}
    assert [swap.get(a, a) for a in cmd] == base  # nothing else differs
    identity = {"I8", "I9", "I10"}
    assert all(
        "invgan:bpda_stand_in=auto" in bc.READINGS[r][2] for r in bc.READINGS if r[0] == "I" and r not in identity
    )
    i9 = _matrix_call(bc, monkeypatch, "I9", args)["cmd"]  # I5's travel on I8's backward: one change from I8
    i5 = _matrix_call(bc, monkeypatch, "I5", args)["cmd"]
    assert [a for a in i9 if a not in cmd and not a.startswith(str(tmp_path))] == [
        a for a in i5 if a not in base and not a.startswith(str(tmp_path))
    ]
    assert bc.PAIR_WITH == {"I9": "I8", "I10": "I8"}
    from defbench.cli import build_parser
    from defbench.cli.matrix import overrides

    for c, value in ((cmd, "identity"), (base, "auto")):
        opts = overrides(build_parser().parse_args(c[c.index("matrix") :]), ["invgan"])
        assert opts == {"invgan": {"bpda_stand_in": value}}


def test_i9_pairs_with_i8_not_with_the_base(bc, tmp_path, monkeypatch):
    """I9 is I5's travel on I8's identity backward: its one change is measured against I8, not I0."""
    stores = {
        "I9": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 1, 1])},  # right on 0, 1
        "I8": {"clean": _cell([0] * 4), "pgd": _cell([1, 1, 1, 1])},  # right on none
        "I0": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 0, 0])},  # right on all
    }
    _fake_stores(bc, monkeypatch, {tmp_path / k: v for k, v in stores.items()}, key=lambda out: out)
    out = tmp_path / "t.md"
    bc.main(["--only", "I9", "I8", "I0", "--work", str(tmp_path), "--out", str(out), "--pair-base"])
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines() if line.startswith("| ")}
    assert "0 / 2 / 0 / 2 (p = 0.5)" in rows["I9"]  # against I8; against I0 it would read 2 / 0 / 2 / 0
    assert "0 / 0 / 4 / 0" in rows["I8"]  # I8 against the base I0


def test_i10_is_the_codes_bpda_l2_on_the_identity_backward_paired_with_i8(bc, tmp_path, monkeypatch):
    """I10 changes one thing from I8 (PGD, identity backward): the attack, CW-L2 with the code's 4 binary-search
    steps; I7 keeps the G(I(x)) backward it was first measured with."""
    args = bc.argparse.Namespace(dataset="mnist", n=2, work=str(tmp_path), home=None, compare=None)
    cmd = _matrix_call(bc, monkeypatch, "I10", args)["cmd"]
    assert cmd[cmd.index("--attacks") + 1] == "cw" and cmd[cmd.index("--defense") + 1] == "invgan"
    assert "cw:binary_search_steps=4" in cmd and "invgan:bpda_stand_in=identity" in cmd
    assert "invgan:bpda_stand_in=identity" not in _matrix_call(bc, monkeypatch, "I7", args)["cmd"]
    assert bc.PAIR_WITH["I10"] == "I8" and bc.attack_of("I10") == "cw" and bc.attack_of("I8") == "pgd"


#: each reading's one change, written from the module docstring by hand: the resolved attack (name, ε, PGD steps,
#: PGD step size: (4/3)·ε/steps unless set, cleverhans MadryEtAl's travel), and the defense options it overrides
#: (DefenseGAN's base L = 200, InvGAN's T = 1000; I0-I7 keep the G(I(x)) backward, ``auto``)
_BY_HAND = {
    "D0": ("pgd", 0.3, 40, 0.01, {}),
    "D1": ("pgd", 0.15, 40, 0.005, {}),
    "D2": ("pgd", 0.3, 10, 0.04, {}),
    "D5": ("pgd", 0.3, 10, 0.01, {}),
    "D6": ("pgd", 0.3, 10, 0.02, {}),
    "D3": ("pgd", 0.3, 40, 0.01, {"latent_steps": 50}),
    "D4": ("pgd", 0.3, 40, 0.01, {"latent_steps": 400}),
    "I0": ("pgd", 0.3, 40, 0.01, {"bpda_stand_in": "auto"}),
    "I1": ("pgd", 0.15, 40, 0.005, {"bpda_stand_in": "auto"}),
    "I2": ("pgd", 0.3, 10, 0.04, {"bpda_stand_in": "auto"}),
    "I5": ("pgd", 0.3, 10, 0.01, {"bpda_stand_in": "auto"}),
    "I6": ("pgd", 0.3, 10, 0.02, {"bpda_stand_in": "auto"}),
    "I3": ("pgd", 0.3, 40, 0.01, {"bpda_stand_in": "auto", "latent_steps": 200}),
    "I4": ("pgd", 0.3, 40, 0.01, {"bpda_stand_in": "auto", "latent_steps": 2000}),
    "D7": ("cw", None, None, None, {}),
    "I7": ("cw", None, None, None, {"bpda_stand_in": "auto"}),
    "I8": ("pgd", 0.3, 40, 0.01, {"bpda_stand_in": "identity"}),
    "I9": ("pgd", 0.3, 10, 0.01, {"bpda_stand_in": "identity"}),
    "I10": ("cw", None, None, None, {"bpda_stand_in": "identity"}),
}


def test_every_reading_resolves_to_its_documented_change(bc, tmp_path, monkeypatch):
    """Each reading's command line, parsed by the matrix CLI, gives the attack and defense settings the docstring
    lists (the table above, by hand: each row one change from its base row)."""
    from defbench.attacks import get_attack
    from defbench.cli import build_parser
    from defbench.cli.matrix import attack_specs, overrides

    assert set(bc.READINGS) == set(_BY_HAND)
    args = bc.argparse.Namespace(dataset="fmnist", n=2, work=str(tmp_path), home=None, compare=None)
    got = {}
    for label, (_, defense, _) in bc.READINGS.items():
        cmd = _matrix_call(bc, monkeypatch, label, args)["cmd"]
        margs = build_parser().parse_args(cmd[cmd.index("matrix") :])
        (spec,) = attack_specs(margs, "fmnist")
        atk = get_attack(spec.name, "fmnist", spec.eps, **dict(spec.params))
        steps = atk.params["steps"] if spec.name == "pgd" else None
        step = atk.params["step"] or 4 / 3 * atk.eps / steps if spec.name == "pgd" else None
        got[label] = (spec.name, spec.eps, steps, step, overrides(margs, [defense]).get(defense, {}))
        want = _BY_HAND[label]
        assert got[label][:3] == want[:3] and got[label][4] == want[4], label
        assert (step is None) == (want[3] is None) and (step is None or abs(step - want[3]) < 1e-12), label
    # and each differs from the reading it is paired with (a reading equal to its base measures nothing)
    for label, (_, defense, _) in bc.READINGS.items():
        base = bc.PAIR_WITH.get(label, bc.BASE[defense])
        assert (got[label] == got[base]) is (label == base), (label, base)


def test_matrix_command_is_the_documented_protocol(bc, tmp_path, monkeypatch):
    """Every reading runs the paper preset, BPDA, EOT 1, one purification per evaluation, no undefended column,
    on the dataset and n asked for; main's default n is 20."""
    from defbench.cli import build_parser

    args = bc.argparse.Namespace(dataset="mnist", n=7, work=str(tmp_path), home=None, compare=None)
    for label in ("D0", "I10"):
        cmd = _matrix_call(bc, monkeypatch, label, args)["cmd"]
        m = build_parser().parse_args(cmd[cmd.index("matrix") :])
        assert (m.dataset, m.preset, m.threat, m.n, m.eot, m.eval_repeats) == ("mnist", "paper", "bpda", 7, 1, 1)
        assert m.no_baseline and m.out == str(tmp_path / label)
    seen = []

    def fake_run(cmd, **kw):
        seen.append(cmd)
        raise SystemExit(0)

    monkeypatch.setattr(bc.subprocess, "run", fake_run)
    with pytest.raises(SystemExit):
        bc.main(["--only", "D0", "--work", str(tmp_path), "--out", str(tmp_path / "t.md")])
    assert seen[0][seen[0].index("--n") + 1] == "20"


def test_row_names_the_kept_classes_and_the_bpda_cells_own_time(bc, tmp_path, monkeypatch):
    """Classes kept under BPDA: the labels of the images the BPDA cell gets right, by name where the dataset has
    names (Fashion-MNIST) and by digit where not (MNIST); the time is the BPDA cell's, not the clean one's."""
    bpda = _cell([0, 9, 0, 0]) | {"labels": [7, 1, 0, 7], "preds": [7, 9, 0, 7], "wall_seconds": 123.4}
    bpda["device"] = "cuda"
    clean = _cell([0] * 4) | {"wall_seconds": 5.0}
    stores = {tmp_path / "D0": {"clean": clean, "pgd": bpda}}
    _fake_stores(bc, monkeypatch, stores, key=lambda out: out)
    args = bc.argparse.Namespace(dataset="fmnist", n=4, work=str(tmp_path), home=None, compare=None)
    row = bc.run_reading("D0", args)
    # right on images 0, 2, 3 (labels 7, 0, 7): sneaker and T-shirt, each listed per image, sorted
    assert row[6:8] == ["T-shirt, sneaker, sneaker", "123 (cuda)"]
    args.dataset = "mnist"
    assert bc.run_reading("D0", args)[6] == "0, 7, 7"


def test_compare_orders_here_before_there(bc, tmp_path, monkeypatch):
    """--compare: "only here" counts this work dir's BPDA cell's extra images, "only there" the other's."""
    stores = {
        tmp_path / "here" / "D0": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 0, 1])},  # right on 0, 1, 2
        tmp_path / "there" / "D0": {"clean": _cell([0] * 4), "pgd": _cell([1, 1, 0, 1])},  # right on 2
    }
    _fake_stores(bc, monkeypatch, stores, key=lambda out: out)
    args = bc.argparse.Namespace(
        dataset="fmnist", n=4, work=str(tmp_path / "here"), home=None, compare=str(tmp_path / "there")
    )
    # both 1 (image 2), only here 2 (images 0, 1), only there 0, neither 1 (image 3); p = 2 * 0.5**2
    assert bc.run_reading("D0", args)[8] == "1 / 2 / 0 / 1 (p = 0.5)"


def test_pair_base_reads_the_cw_cell_of_a_cw_reading(bc, tmp_path, monkeypatch):
    """I10's BPDA cell is its CW cell (its store holds no PGD cell): --pair-base pairs it with I8's PGD cell."""
    stores = {
        "I10": {"clean": _cell([0] * 4), "cw": _cell([1, 1, 1, 0])},  # right on 3
        "I8": {"clean": _cell([0] * 4), "pgd": _cell([0, 0, 1, 1])},  # right on 0, 1
        "I0": {"clean": _cell([0] * 4), "pgd": _cell([0] * 4)},
    }
    _fake_stores(bc, monkeypatch, {tmp_path / k: v for k, v in stores.items()}, key=lambda out: out)
    out = tmp_path / "t.md"
    bc.main(["--only", "I10", "I8", "I0", "--work", str(tmp_path), "--out", str(out), "--pair-base"])
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines() if line.startswith("| ")}
    # I10 against I8: both 0, only I10 1 (image 3), only I8 2 (images 0, 1), neither 1 (image 2); p = 1
    assert "0 / 1 / 2 / 1 (p = 1)" in rows["I10"]


def test_caption_names_the_prior_of_home_not_of_the_default_home(bc, tmp_path, monkeypatch):
    _manifest(tmp_path / "h", True, 3, 5)
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "default"))
    stores = {"D0": {"clean": _cell([0] * 4), "pgd": _cell([0] * 4)}}
    _fake_stores(bc, monkeypatch, {tmp_path / "w" / k: v for k, v in stores.items()}, key=lambda out: out)
    out = tmp_path / "t.md"
    bc.main(["--only", "D0", "--work", str(tmp_path / "w"), "--out", str(out), "--home", str(tmp_path / "h")])
    assert "Prior: gan-fmnist-paper sha256 abababab (D with spectral norm; epoch 3 of 5 run)." in out.read_text()


def test_caption_expands_a_tilde_in_home_as_the_matrix_does(bc, tmp_path, monkeypatch):
    """--home '~/h' (a tilde bash leaves alone after '='): the matrix subprocess expands it (home_dir), so the
    caption must read the same folder's prior, not say there is none (s50 audit)."""
    _manifest(tmp_path / "h", True, 3, 5)
    monkeypatch.setenv("HOME", str(tmp_path))
    stores = {"D0": {"clean": _cell([0] * 4), "pgd": _cell([0] * 4)}}
    _fake_stores(bc, monkeypatch, {tmp_path / "w" / k: v for k, v in stores.items()}, key=lambda out: out)
    out = tmp_path / "t.md"
    bc.main(["--only", "D0", "--work", str(tmp_path / "w"), "--out", str(out), "--home", "~/h"])
    assert "Prior: gan-fmnist-paper sha256 abababab (D with spectral norm; epoch 3 of 5 run)." in out.read_text()
