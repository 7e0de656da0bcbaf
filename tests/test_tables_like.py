"""Tables that compare like with like (issue 13, item 4), on hand-built store rows."""

from __future__ import annotations

import pytest

from defbench.reports.tables import THREAT_NOTES, detection_auc_table, robust_accuracy_table
from test_reports import attack_cfg, frac, make_row


def _cfg_of(name: str, eps=None, **params):
    """The attack_config a real attack records (label, family, bounded, eps, params)."""
    from defbench.attacks import get_attack

    return get_attack(name, "fmnist", eps, **params).config()


def _row(correct, attack, cfg, **kw):
    from defbench.harness.store import config_hash

    r = make_row(correct, attack=attack, cfg=cfg, **kw)
    r["attack_hash"] = config_hash(cfg)
    return r


# --------------------------------------------------------------------------------------------- worst case


def test_worst_case_only_over_bounded_attacks_at_the_same_eps():
    n = 10
    rows = [
        make_row(frac(n, n)),
        _row(frac(8, n), "fgsm", _cfg_of("fgsm", 0.3)),
        _row([1] * 6 + [0, 0] + [1, 1], "pgd", _cfg_of("pgd", 0.3)),  # wrong on 6, 7 (FGSM: on 8, 9)
        # unbounded, universal and corruption rows break every image: not folded into the worst case
        _row(frac(0, n), "cw", _cfg_of("cw")),
        _row(frac(0, n), "universal-fgsm", _cfg_of("universal-fgsm", alpha=3.0)),
        _row(frac(0, n), "binarize", _cfg_of("binarize")),
    ]
    df = robust_accuracy_table(rows)
    mean = df.attrs["mean"]["invgan"]
    assert mean["worst case"] == pytest.approx(0.6)  # images 0-5: correct under FGSM and PGD at ε = 0.3
    # the rows left out of the worst case are reported beside it, after it
    idx = list(df.index)
    assert idx[:4] == ["clean", "FGSM", "PGD", "worst case"]
    assert idx[4:] == ["CW-L2", "Universal-FGSM α=3", "Binary"]
    assert all(mean[i] == 0.0 for i in idx[4:])
    notes = " ".join(df.attrs["notes"])
    assert "bounded attack at ε=0.3" in notes and "not folded in" in notes


def test_worst_case_per_eps():
    n = 10
    rows = [
        make_row(frac(n, n)),
        _row(frac(9, n), "fgsm", _cfg_of("fgsm", 0.1)),
        _row(frac(7, n), "pgd", _cfg_of("pgd", 0.1)),
        _row(frac(4, n), "fgsm", _cfg_of("fgsm", 0.3)),
        _row(frac(2, n), "pgd", _cfg_of("pgd", 0.3)),
    ]
    df = robust_accuracy_table(rows)
    mean = df.attrs["mean"]["invgan"]
    assert mean["worst case ε=0.1"] == pytest.approx(0.7)
    assert mean["worst case ε=0.3"] == pytest.approx(0.2)
    assert "worst case" not in df.index  # no row mixes budgets


# --------------------------------------------------------------------------------------------- ε sweep labels


def test_eps_sweep_rows_are_labelled_by_eps():
    rows = [make_row(frac(10))]
    for eps, k in ((0.1, 6), (0.15, 4), (0.2, 2)):
        rows.append(_row(frac(k), "fgsm", _cfg_of("fgsm", eps)))
    df = robust_accuracy_table(rows)
    assert [i for i in df.index if i.startswith("FGSM")] == ["FGSM ε=0.1", "FGSM ε=0.15", "FGSM ε=0.2"]
    assert df.loc["FGSM ε=0.15", "invgan"] == "40.0"
    # configurations that differ in a parameter, not ε, say which
    rows = [
        make_row(frac(10)),
        _row(frac(5), "pgd", _cfg_of("pgd", 0.3, steps=10)),
        _row(frac(3), "pgd", _cfg_of("pgd", 0.3, steps=40)),
    ]
    assert {i for i in robust_accuracy_table(rows).index if i.startswith("PGD")} == {"PGD steps=10", "PGD steps=40"}


# --------------------------------------------------------------------------------------------- gan-aware


def test_gan_aware_budget_is_labelled_latent():
    cfg = _cfg_of("fgsm", 0.3)
    rows = [make_row(frac(10)), _row(frac(5), "fgsm", cfg), _row(frac(7), "fgsm", cfg, threat="gan-aware")]
    df = robust_accuracy_table(rows)
    assert "FGSM (latent-space ε=0.3)" in df.index and "FGSM" in df.index  # separate rows: different budgets
    assert df.loc["FGSM (latent-space ε=0.3)", "invgan (gan-aware)"] == "70.0"
    gan = robust_accuracy_table(rows, threat="gan-aware")
    assert "latent-space budget" in " ".join(gan.attrs["notes"]) and "latent-space budget" in THREAT_NOTES["gan-aware"]


def test_gan_aware_rows_stay_out_of_the_pixel_worst_case_and_get_their_own_plot_panel(tmp_path):
    """A latent ε is no pixel ε: gan-aware attacks at latent ε 0.05 / 0.5 made 'worst case ε=0.05 / 0.5' rows
    beside the pixel ε's and one line on the pixel ε plot (found by the reports audit). They are rows of their
    own, out of the worst case, and a panel of their own in the ε sweep."""
    from defbench.reports.plots import plot_eps_sweep

    pix = [_row(frac(5), "fgsm", _cfg_of("fgsm", e)) for e in (0.1, 0.3)]
    lat = [_row(frac(7), "fgsm", _cfg_of("fgsm", e), threat="gan-aware") for e in (0.05, 0.5)]
    df = robust_accuracy_table([make_row(frac(10)), *pix, *lat])
    worst = [i for i in df.index if i.startswith("worst case")]
    assert worst == ["worst case ε=0.1", "worst case ε=0.3"], list(df.index)
    assert "FGSM (latent-space ε=0.05)" in df.index and "FGSM (latent-space ε=0.5)" in df.index
    seen = {}
    import defbench.reports.plots as plots

    real = plots._panels
    plots._panels = lambda fig, panels, xlabel, **k: seen.update(panels) or real(fig, panels, xlabel, **k)
    try:
        assert plot_eps_sweep([make_row(frac(10)), *pix, *lat], tmp_path / "eps.png")
    finally:
        plots._panels = real
    assert set(seen) == {"fgsm", "fgsm (gan-aware: latent-space ε)"}
    # one configuration per panel: lines named by the defense (and threat) alone, no attack variant
    assert list(seen["fgsm"]) == ["invgan (graybox)"] and list(seen["fgsm (gan-aware: latent-space ε)"]) == [
        "invgan (gan-aware)"
    ]
    assert all(0.05 not in pts and 0.5 not in pts for pts in seen["fgsm"].values())


# --------------------------------------------------------------------------------------------- EOT in the label


def test_eot_is_shown_in_the_column_and_rows_stay_merged():
    pgd = _cfg_of("pgd", 0.3)
    rows = [
        make_row(frac(10), defense="defensegan"),
        make_row(frac(10), defense="invgan"),
        _row(frac(3), "pgd", {**pgd, "eot": 10}, defense="defensegan", threat="bpda", extra={"randomized": True}),
        _row(frac(5), "pgd", {**pgd, "eot": 1}, defense="invgan", threat="bpda", extra={"randomized": False}),
    ]
    df = robust_accuracy_table(rows, threat="bpda")
    assert list(df.columns) == ["defensegan (EOT=10)", "invgan"]
    assert df.loc["PGD", "defensegan (EOT=10)"] == "30.0" and df.loc["PGD", "invgan"] == "50.0"  # one row
    assert any("EOT=k" in n for n in df.attrs["notes"])


def test_a_rerun_at_another_eot_or_encoder_gets_its_own_column_not_one_of_the_two_cells():
    """A store holding DefenseGAN's BPDA PGD at EOT 1 and at EOT 10 (the stronger rerun the paper specs suggest)
    showed whichever cell came last in one column; each now has its column, in either order of the rows, and the
    sanity flags and detection AUCs read both. The same for a reparameterisation rerun through another G·I."""
    from defbench.reports.sanity import _cells

    pgd = _cfg_of("pgd", 0.3)
    clean = make_row(frac(10), defense="defensegan")
    eot1 = _row(frac(8), "pgd", {**pgd, "eot": 1}, defense="defensegan", threat="bpda", extra={"randomized": True})
    eot10 = _row(frac(2), "pgd", {**pgd, "eot": 10}, defense="defensegan", threat="bpda", extra={"randomized": True})
    for attacks in ([eot1, eot10], [eot10, eot1]):
        df = robust_accuracy_table([clean, *attacks], threat="bpda")
        assert list(df.columns) == [f"defensegan (EOT={a['attack_config']['eot']})" for a in attacks]
        assert df.loc["PGD", "defensegan (EOT=1)"] == "80.0" and df.loc["PGD", "defensegan (EOT=10)"] == "20.0"
        assert df.loc["worst case", "defensegan (EOT=10)"] == "20.0"
        auc = detection_auc_table([clean, *attacks])
        assert {"defensegan (EOT=1)", "defensegan (EOT=10, all images)"} <= set(auc.columns)
        assert len(_cells([clean, *attacks])) == 2
    fgsm = _cfg_of("fgsm", 0.3)
    rp = [
        _row(frac(k), "fgsm", {**fgsm, "model_sha256": {"G": g, "I": "ee" * 32}}, defense="none", threat="reparam")
        for k, g in ((7, "aa" * 32), (3, "bb" * 32))
    ]
    df = robust_accuracy_table([make_row(frac(10), defense="none"), *rp], threat="reparam")
    assert df.loc["FGSM", "none (G·I aaaaaa/eeeeee)"] == "70.0" and df.loc["FGSM", "none (G·I bbbbbb/eeeeee)"] == "30.0"
    # one cell per attack and seed (the usual store): one column, no tag
    assert list(robust_accuracy_table([clean, eot10], threat="bpda").columns) == ["defensegan (EOT=10)"]


def test_seeds_run_two_ways_are_not_averaged_into_one_cell():
    """Seed 0 at EOT 1 and seed 1 at EOT 10 (a rerun on another seed) made one column whose "50.0 ± 42.4" averaged
    two settings; each setting now has its column. Two seeds run the same way stay one column, averaged."""
    pgd = {**_cfg_of("pgd", 0.3)}
    cleans = [make_row(frac(10), defense="defensegan", seed=s) for s in (0, 1)]

    def bpda(k, eot, seed):
        cfg = {**pgd, "eot": eot}
        return _row(frac(k), "pgd", cfg, defense="defensegan", threat="bpda", seed=seed, extra={"randomized": True})

    split = robust_accuracy_table([*cleans, bpda(8, 1, 0), bpda(2, 10, 1)], threat="bpda")
    assert split.loc["PGD", "defensegan (EOT=1)"] == "80.0" and split.loc["PGD", "defensegan (EOT=10)"] == "20.0"
    auc = detection_auc_table([*cleans, bpda(8, 1, 0), bpda(2, 10, 1)])
    assert {"defensegan (EOT=1)", "defensegan (EOT=10)"} <= set(auc.columns)
    same = robust_accuracy_table([*cleans, bpda(8, 10, 0), bpda(2, 10, 1)], threat="bpda")
    assert list(same.columns) == ["defensegan (EOT=10)"] and same.loc["PGD", "defensegan (EOT=10)"] == "50.0 ± 42.4"


# --------------------------------------------------------------------------------------------- detection AUC


def _auc_rows(threat="graybox"):
    # clean: images 0-7 correctly classified by the bare classifier, 8-9 not
    clean = make_row(frac(10), scores=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.05, 0.05])
    clean["preds_undefended"] = [y if i < 8 else (y + 1) % 10 for i, y in enumerate(clean["labels"])]
    # attacked: succeeds (fools the bare classifier) on images 0-3 and 8-9 only
    att = make_row(
        frac(4, 10), attack="pgd", threat=threat, scores=[0.9, 0.85, 0.25, 0.75, 0.0, 0.0, 0.0, 0.0, 0.95, 0.95]
    )
    fooled = [True] * 4 + [False] * 4 + [True, True]
    att["preds_undefended"] = [(y + 1) % 10 if f else y for y, f in zip(att["labels"], fooled, strict=True)]
    att["preds"] = list(att["preds_undefended"])
    return clean, att


def test_detection_auc_follows_invgans_protocol():
    from sklearn.metrics import roc_auc_score

    clean, att = _auc_rows()
    df = detection_auc_table([clean, att])
    assert list(df.columns) == ["invgan", "invgan (all images)"]
    # negatives: clean images 0-7 (correct); positives: successful adversarials of those, images 0-3
    neg, pos = clean["scores"][:8], att["scores"][:4]
    want = roc_auc_score([0] * 8 + [1] * 4, neg + pos)
    assert df.attrs["mean"].loc["PGD", "invgan"] == pytest.approx(want)
    everything = roc_auc_score([0] * 10 + [1] * 10, clean["scores"] + att["scores"])
    assert df.attrs["mean"].loc["PGD", "invgan (all images)"] == pytest.approx(everything)
    assert want != pytest.approx(everything)
    notes = " ".join(df.attrs["notes"])
    assert "success protocol" in notes and "successful adversarial" in notes and "(all images)" in notes
    assert "InvGAN's protocol" not in notes and "plot_ROC.py" in notes  # the all-images reading is InvGAN's code's


def test_detection_auc_white_box_success_is_the_defended_models():
    clean, att = _auc_rows(threat="bpda")
    att["preds_undefended"] = list(att["labels"])  # the bare classifier is not what BPDA attacked
    from sklearn.metrics import roc_auc_score

    df = detection_auc_table([clean, att])
    # success = the defended model (what BPDA attacked) misclassifies: images 0-3 of the correct 0-7
    want = roc_auc_score([0] * 8 + [1] * 4, clean["scores"][:8] + att["scores"][:4])
    assert df.attrs["mean"].loc["PGD", "invgan"] == pytest.approx(want)


def test_detection_auc_without_successful_adversarials_is_na():
    clean, att = _auc_rows()
    att["preds_undefended"] = list(att["labels"])
    df = detection_auc_table([clean, att])
    assert df.loc["PGD", "invgan"] == "n/a" and df.loc["PGD", "invgan (all images)"] != "n/a"


def test_attack_cfg_helper_rows_still_group():
    """Hand-built rows without a real config keep working (one row per attack)."""
    rows = [make_row(frac(10)), make_row(frac(4), attack="pgd", cfg=attack_cfg("PGD", "pgd"))]
    assert list(robust_accuracy_table(rows).index) == ["clean", "PGD", "worst case"]


def test_the_eps_and_alpha_sweeps_draw_a_line_per_attack_configuration():
    """Each x kept the strongest of the configurations run there, in one line under the defense's name: PGD at 10
    and 100 steps, BPDA at EOT 1 and 10 or two universal ε's became one curve mixing them, and a subset's line
    (--n-threat) started at the clean accuracy over all the images. Each configuration is a line of its own now,
    named by what differs, starting at the clean accuracy over its own images; one configuration, one line named
    by the defense alone."""
    from defbench.reports.plots import alpha_sweep_panels, eps_sweep_panels

    clean = make_row(frac(10), defense="none")
    two_halves = make_row([True] * 5 + [False] * 5, defense="none")
    pgd = {e: {s: _cfg_of("pgd", e, steps=s) for s in (10, 100)} for e in (0.1, 0.3)}
    steps = [_row(frac(k), "pgd", pgd[e][s], defense="none") for e, s, k in ((0.1, 10, 6), (0.3, 10, 4))]
    steps += [_row(frac(k), "pgd", pgd[e][100], defense="none") for e, k in ((0.1, 3), (0.3, 1))]
    panel = eps_sweep_panels([clean, *steps])["pgd"]
    assert {n: {x: p[0] for x, p in pts.items()} for n, pts in panel.items()} == {
        "none — PGD steps=10": {0.0: 1.0, 0.1: 0.6, 0.3: 0.4},
        "none — PGD steps=100": {0.0: 1.0, 0.1: 0.3, 0.3: 0.1},
    }
    eot = [
        _row(frac(k), "pgd", {**pgd[e][10], "eot": t}, defense="none", threat="bpda")
        for e, t, k in ((0.1, 1, 7), (0.3, 1, 5), (0.1, 10, 2), (0.3, 10, 1))
    ]
    assert set(eps_sweep_panels([clean, *eot])["pgd"]) == {"none — EOT=1", "none — EOT=10"}
    sub = {**pgd[0.1][10], "n_images": 5, "label": "PGD (n=5)"}
    subset = [_row(frac(4, 5), "pgd", {**sub, "eps": e}, defense="none", indices=list(range(5))) for e in (0.1, 0.3)]
    both = eps_sweep_panels([two_halves, *subset, *steps[:2]])["pgd"]
    assert both["none — PGD (n=5)"][0.0][0] == 1.0 and both["none — PGD"][0.0][0] == 0.5
    one = eps_sweep_panels([clean, *steps[:2]])["pgd"]  # the silent twin: one configuration
    assert list(one) == ["none"] and one["none"][0.0][0] == 1.0
    uni = {e: {a: _cfg_of("universal-fgsm", e, alpha=a) for a in (1.0, 2.0)} for e in (0.1, 0.3)}
    rows = [
        _row(frac(k), "universal-fgsm", uni[e][a], defense="none")
        for e, a, k in ((0.1, 1.0, 9), (0.1, 2.0, 8), (0.3, 1.0, 5), (0.3, 2.0, 2))
    ]
    panel = alpha_sweep_panels(rows)["universal-fgsm"]
    assert {n: {x: p[0] for x, p in pts.items()} for n, pts in panel.items()} == {
        "none — Universal-FGSM ε=0.1": {1.0: 0.9, 2.0: 0.8},
        "none — Universal-FGSM ε=0.3": {1.0: 0.5, 2.0: 0.2},
    }
    assert list(alpha_sweep_panels(rows[:2])["universal-fgsm"]) == ["none"]


def test_a_seed_with_a_clean_cell_and_no_attack_cell_is_named():
    """Clean over seeds 0 and 1 (80 ± 28) beside PGD over seed 0 alone read as one comparison; the table said only
    'cells have 1–2 seeds'. The seed is named now; with PGD on both seeds nothing is said."""
    rows = [make_row(frac(10), defense="none", seed=0), make_row(frac(6), defense="none", seed=1)]
    pgd = [make_row(frac(3), defense="none", attack="pgd", seed=s) for s in (0, 1)]
    said = " ".join(robust_accuracy_table([*rows, pgd[0]]).attrs["notes"])
    assert "none seed 1: a clean cell and no attack cell" in said
    assert "mean ± sample std over seeds (0, 1); cells have 1–2 seeds." in said
    whole = " ".join(robust_accuracy_table([*rows, *pgd]).attrs["notes"])
    assert "no attack cell" not in whole and "cells have" not in whole
    assert "mean ± sample std (ddof=1) over 2 seeds (0, 1)." in whole


def test_configs_of_one_defense_are_named_by_what_differs():
    """Two runs of one defense with other options (or another n) into one store made columns 'median#1a2b3c' and
    'median#4d5e6f', which a reader cannot tell apart; they are named by the options that differ, the hash kept
    where nothing readable (no config, more than three options) tells them apart, nothing added for one config."""
    from defbench.reports.common import base_names, base_names_of, base_key

    def row(k, cfg, h, attack="clean", defense="median"):
        r = make_row(frac(k), attack=attack, defense=defense)
        r["defense_config"], r["defense_hash"] = cfg, h
        return r

    c3 = {"name": "median", "kernel_size": 3, "n": 10, "model_sha256": {"classifier": "ab" * 32}}
    c5 = {**c3, "kernel_size": 5}
    rows = [row(10, c3, "aaa111"), row(4, c3, "aaa111", "pgd"), row(9, c5, "bbb222"), row(6, c5, "bbb222", "pgd")]
    df = robust_accuracy_table(rows)
    assert list(df.columns) == ["median (kernel_size=3)", "median (kernel_size=5)"]
    assert df.loc["PGD", "median (kernel_size=5)"] == "60.0"
    n100 = {**c3, "n": 100, "model_sha256": {"classifier": "cd" * 32}}
    names = base_names_of([rows[0], row(10, n100, "ccc333")])
    assert sorted(names.values()) == [
        "median (model_sha256.classifier=ababab, n=10)",
        "median (model_sha256.classifier=cdcdcd, n=100)",
    ]
    many = {**c5, "n": 7, "batch_size": 3, "eval_repeats": 2}
    assert sorted(base_names_of([rows[0], row(1, many, "ddd444")]).values()) == ["median#aaa111", "median#ddd444"]
    assert sorted(base_names(base_key(r) for r in rows).values()) == ["median#aaa111", "median#bbb222"]
    assert list(base_names_of(rows[:2]).values()) == ["median"]
    # two configs that print alike (10 and 10.0, from a default and a --defense-opt) keep distinct names
    lr = [
        row(5, {"name": "defensegan", "lr": v}, h, defense="defensegan") for v, h in ((10.0, "eee555"), (10, "fff666"))
    ]
    assert sorted(base_names_of(lr).values()) == ["defensegan (lr=10)#eee555", "defensegan (lr=10)#fff666"]
