"""What the figures show, read back from the matplotlib Figure each plot function draws: which value sits on
which axis, in which order, the mean ± sample-std bars over seeds (in %), the axis labels and scales, and which
image lands in which row of the clean / adversarial / purified grid. Expected values are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import defbench.reports.plots as plots
from defbench.reports.plots import image_grid, plot_alpha_sweep, plot_eps_sweep
from test_reports import attack_cfg, frac, make_row


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions save, in order (each still written to its path)."""
    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or real(fig, path))
    return figs


def _bars(ax) -> list[tuple[str, list[tuple[float, float, float, float]]]]:
    """Per error-bar line of ``ax``, in drawing order: (label, [(x, y, lower, upper), ...])."""
    out = []
    for c in ax.containers:
        line, _caps, (bars,) = c.lines
        xy = line.get_xydata()
        segs = [np.asarray(s) for s in bars.get_segments()]
        pts = []
        for (x, y), s in zip(xy, segs, strict=True):
            assert s[0][0] == s[1][0] == x  # vertical bar at the point's x
            pts.append((float(x), float(y), float(min(s[:, 1])), float(max(s[:, 1]))))
        out.append((c.get_label(), pts))
    return out


def _pgd(k: int, eps: float, seed: int, defense: str = "none") -> dict:
    return make_row(frac(k), defense=defense, attack="pgd", seed=seed, cfg=attack_cfg("PGD", "pgd", eps=eps))


def test_eps_sweep_draws_mean_and_sample_std_over_seeds_in_percent_at_increasing_eps(drawn, tmp_path):
    # ε = 0.3 rows come first: the line must still run 0 → 0.1 → 0.3
    rows = [_pgd(2, 0.3, 0), _pgd(4, 0.3, 1), _pgd(6, 0.1, 0), _pgd(8, 0.1, 1)]
    rows += [make_row(frac(10), defense="none", seed=0), make_row(frac(9), defense="none", seed=1)]
    path = plot_eps_sweep(rows, tmp_path / "eps.png")
    assert path == str(tmp_path / "eps.png")
    (fig,) = drawn
    (ax,) = fig.axes[:1]
    assert len([a for a in fig.axes if a.get_title()]) == 1
    assert ax.get_title() == "pgd" and ax.get_xlabel() == "ε" and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_xscale() == "linear" and ax.get_ylim() == (-2, 102)
    ((label, pts),) = _bars(ax)
    assert label == "none"
    # seeds 0/1: clean 100/90, ε=0.1: 60/80, ε=0.3: 20/40; sample std of two values a, b is |a - b| / √2
    s = lambda a, b: abs(a - b) / math.sqrt(2)  # noqa: E731
    want = [(0.0, 95.0, s(100, 90)), (0.1, 70.0, s(60, 80)), (0.3, 30.0, s(20, 40))]
    assert [p[0] for p in pts] == [w[0] for w in want]
    for (_, y, lo, hi), (_, m, sd) in zip(pts, want, strict=True):
        assert y == pytest.approx(m) and lo == pytest.approx(m - sd) and hi == pytest.approx(m + sd)


def test_eps_sweep_panels_follow_the_order_the_families_first_appear(drawn, tmp_path):
    fgsm = lambda k, e: make_row(frac(k), attack="fgsm", cfg=attack_cfg("FGSM", "fgsm", eps=e))  # noqa: E731
    rows = [_pgd(4, 0.1, 0, "invgan"), fgsm(5, 0.1), fgsm(3, 0.3), _pgd(2, 0.3, 0, "invgan")]
    assert plot_eps_sweep(rows, tmp_path / "eps.png")
    (fig,) = drawn
    titled = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in titled] == ["pgd", "fgsm"]  # as run, not alphabetical
    assert fig.get_size_inches()[0] == pytest.approx(2 * 4.5)  # a panel's width each
    assert [[p[1] for p in pts] for _, pts in _bars(titled[0])] == [pytest.approx([40.0, 20.0])]
    assert [[p[1] for p in pts] for _, pts in _bars(titled[1])] == [pytest.approx([50.0, 30.0])]


def test_alpha_sweep_draws_accuracy_against_alpha_on_a_linear_axis_one_panel_per_family(drawn, tmp_path):
    """α on x (linear), mean ± sample std in % on y, no ε = 0 point; the panel is the attack's family (a plugin
    may name its attack otherwise); lines in threat order, gray-box first, whatever order the store holds."""

    def uni(k, alpha, seed, threat=None):
        cfg = attack_cfg(f"Universal-FGSM α={alpha}", "universal-fgsm", iterative=False, alpha=alpha)
        return make_row(frac(k), defense="none", attack="my-universal", seed=seed, cfg=cfg, threat=threat)

    bpda = [uni(1, 1.0, 0, "bpda"), uni(0, 4.0, 0, "bpda")]
    rows = [*bpda, uni(2, 4.0, 0), uni(4, 4.0, 1), uni(7, 1.0, 0), uni(9, 1.0, 1), make_row(frac(10), defense="none")]
    assert plot_alpha_sweep(rows, tmp_path / "alpha.png") == str(tmp_path / "alpha.png")
    (fig,) = drawn
    (ax,) = fig.axes
    assert ax.get_title() == "universal-fgsm" and ax.get_xlabel() == "α" and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_xscale() == "linear" and ax.get_ylim() == (-2, 102)
    (gray, pts), (white, wpts) = _bars(ax)
    assert (gray, white) == ("none (graybox)", "none (bpda)")
    sd = 20 / math.sqrt(2)  # sample std of 70/90 and of 20/40, in %
    assert [p[0] for p in pts] == [1.0, 4.0]  # no ε = 0 clean point on an α sweep
    assert [p[1:] for p in pts] == [
        pytest.approx((80.0, 80.0 - sd, 80.0 + sd)),
        pytest.approx((30.0, 30.0 - sd, 30.0 + sd)),
    ]
    assert [p[:2] for p in wpts] == [(1.0, pytest.approx(10.0)), (4.0, pytest.approx(0.0))]


def test_image_grid_puts_clean_adversarial_purified_in_rows_and_labels_the_columns(drawn, tmp_path):
    rng = np.random.default_rng(0)
    clean, adv, pure = (rng.random((3, 1, 5, 5)) for _ in range(3))
    adv[0, 0, 0, 0], adv[0, 0, 0, 1] = 1.7, -0.4  # out of range: shown clipped
    assert image_grid(clean, adv, pure, tmp_path / "g.png", labels=["7→1", "2→3", "5→5"]) == str(tmp_path / "g.png")
    (fig,) = drawn
    axes = np.asarray(fig.axes).reshape(3, 3)
    want_adv = adv.copy()
    want_adv[0, 0, 0, 0], want_adv[0, 0, 0, 1] = 1.0, 0.0
    for i, (imgs, name) in enumerate(((clean, "clean"), (want_adv, "adversarial"), (pure, "purified"))):
        assert axes[i, 0].get_ylabel() == name and all(axes[i, j].get_ylabel() == "" for j in (1, 2))
        for j in range(3):
            (im,) = axes[i, j].get_images()
            np.testing.assert_allclose(np.asarray(im.get_array()), imgs[j, 0], atol=1e-6)
            assert im.get_clim() == (0, 1)  # gray levels are absolute, not stretched per image
    assert [a.get_title() for a in axes[0]] == ["7→1", "2→3", "5→5"]
    assert all(a.get_title() == "" for a in axes[1:].ravel())


def test_image_grid_of_colour_images_and_of_one_image(drawn, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 4, 6))  # H ≠ W: a transposed image would show its shape
    assert image_grid(x, x, x, tmp_path / "rgb.png")
    ax = drawn[0].axes[1]  # first row, second column
    (im,) = ax.get_images()
    np.testing.assert_allclose(np.asarray(im.get_array()), np.moveaxis(x[1], 0, -1), atol=1e-6)
    one = rng.random((1, 1, 4, 4))
    assert image_grid(one, one, one, tmp_path / "one.png") == str(tmp_path / "one.png")
    assert len(drawn[1].axes) == 3
    with pytest.raises(ValueError, match="same shape"):
        image_grid(x, x[:1], x, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_a_rerun_cell_keeps_the_lower_accuracy_and_an_empty_cell_gives_way():
    """Two cells of one configuration at one ε and seed (a rerun): the point is the lower accuracy, whichever came
    first; an empty cell (NaN accuracy) is replaced by the other cell's value, not kept as a NaN."""
    from defbench.reports.plots import eps_sweep_panels

    empty = _pgd(0, 0.3, 0)
    empty.update(n=0, correct=0, labels=[], preds=[], preds_undefended=[], scores=[], indices=[])
    rows = [_pgd(6, 0.1, 0), _pgd(8, 0.1, 0), _pgd(3, 0.1, 1), _pgd(2, 0.1, 1), empty, _pgd(5, 0.3, 0)]
    (line,) = eps_sweep_panels(rows)["pgd"].values()
    assert line == {0.1: {0: 0.6, 1: 0.2}, 0.3: {0: 0.5}}


def test_eps_sweep_lines_run_in_threat_order_and_unbounded_or_alpha_cells_stay_off_it(drawn, tmp_path):
    """Lines in the canonical threat order (gray-box first) whatever order the store holds them in; an unbounded
    attack that recorded an ε (CW's eps is no budget) and a universal attack's α sweep are not ε-sweep points."""
    from test_tables_like import _cfg_of, _row

    bpda = [_row(frac(k), "pgd", _cfg_of("pgd", e), defense="none", threat="bpda") for e, k in ((0.1, 3), (0.3, 1))]
    gray = [_row(frac(k), "pgd", _cfg_of("pgd", e), defense="none") for e, k in ((0.1, 7), (0.3, 4))]
    cw = [_row(frac(0), "cw", _cfg_of("cw", e), defense="none") for e in (0.1, 0.3)]
    u = lambda e, a: attack_cfg("U", "universal-fgsm", eps=e, alpha=a)  # noqa: E731  (bounded, with an α)
    uni = [make_row(frac(1), defense="none", attack="universal-fgsm", cfg=u(e, a)) for e, a in ((0.1, 1.0), (0.3, 2.0))]
    assert plot_eps_sweep([*bpda, *cw, *uni, *gray], tmp_path / "eps.png")
    (fig,) = drawn
    (ax,) = fig.axes  # one panel: PGD; neither CW nor the universal attack gets one
    assert ax.get_title() == "pgd"
    assert [(label, [p[:2] for p in pts]) for label, pts in _bars(ax)] == [
        ("none (graybox)", [(0.1, pytest.approx(70.0)), (0.3, pytest.approx(40.0))]),
        ("none (bpda)", [(0.1, pytest.approx(30.0)), (0.3, pytest.approx(10.0))]),
    ]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none (graybox)", "none (bpda)"]


def test_a_line_of_several_configurations_and_eot_counts_names_the_attack_then_how_it_ran():
    """PGD at 10 and 100 steps, the 10-step one at EOT 1 and 10: each line is named by the attack's configuration
    first, then how it ran (the order :func:`_variant_names` documents)."""
    from defbench.reports.plots import eps_sweep_panels
    from test_tables_like import _cfg_of, _row

    rows = [
        _row(frac(k), "pgd", {**_cfg_of("pgd", e, steps=s), "eot": t}, defense="none", threat="bpda")
        for e in (0.1, 0.3)
        for s, t, k in ((10, 1, 5), (10, 10, 3), (100, 1, 2))
    ]
    panel = eps_sweep_panels(rows)["pgd"]
    assert {n: pts[0.3][0] for n, pts in panel.items()} == {
        "none — PGD steps=10, EOT=1": 0.5,
        "none — PGD steps=10, EOT=10": 0.3,
        "none — PGD steps=100, EOT=1": 0.2,
    }
