"""benchmarks/zoo_quality.py measures the GANs named by ``--gan-tags`` (Fig. 9(b)'s replicas besides the main
prior), each under its own zoo id, and refuses a malformed tag before any work."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from conftest import import_benchmark, md_rows, save_classifier, save_encoder, save_gan

from defbench import DefbenchError


@pytest.fixture(scope="module")
def zq():
    return import_benchmark("zoo_quality")


def test_tags_default_to_the_main_gan_and_dash_names_it(zq):
    assert zq.gan_tags("") == [""]
    assert zq.gan_tags("-") == [""]
    assert zq.gan_tags("-, sub80-s1,sub80-s2") == ["", "sub80-s1", "sub80-s2"]
    assert zq.gan_tags("sub80-s3") == ["sub80-s3"]


def test_a_malformed_tag_is_refused(zq):
    with pytest.raises(DefbenchError):
        zq.gan_tags("-,replica1")


def _run_in_own_zoo(zq, tiny_classifier, random_gan, tmp_path, monkeypatch, args: list[str]):
    """zoo_quality on the fmnist quick zoo of its own (the session zoo may hold replicas that earlier tests
    trained): the tiny classifier and the stand-in GAN as replica sub80-s1. Returns the output path."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_classifier(*tiny_classifier)
    save_gan(*random_gan, tag="sub80-s1")
    out = tmp_path / "q.md"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in's manifest has no recipe: drift is reported, not tested here
        zq.main(["--datasets", "fmnist", "--preset", "quick", *args, "--out", str(out)])
    return out


def test_replicas_are_measured_by_their_own_ids(zq, tiny_classifier, random_gan, tmp_path, monkeypatch):
    args = ["--n", "4", "--parts", "gan", "--gan-tags", "sub80-s1,sub80-s2"]
    out = _run_in_own_zoo(zq, tiny_classifier, random_gan, tmp_path, monkeypatch, args)
    ids = [r[0] for r in md_rows(out.read_text())]
    assert "gan-fmnist-quick-sub80-s1" in ids
    assert "gan-fmnist-quick" not in ids  # the main GAN only when asked for ('-')
    missing = [r for r in md_rows(out.read_text()) if r[0] == "gan-fmnist-quick-sub80-s2"]
    assert missing and missing[0][1] == "missing"
    record = json.loads(out.with_suffix(".json").read_text())
    acc = record["gan-fmnist-quick-sub80-s1"]["projection_accuracy"]
    assert 0.0 <= acc <= 1.0 and len(record["gan-fmnist-quick-sub80-s1"]["class_spread"]) == 10


def test_a_missing_encoder_gets_its_row(zq, tiny_classifier, random_gan, tmp_path, monkeypatch):
    """--parts encoder on a zoo without the encoder says so, as for a missing classifier or GAN (no row once)."""
    args = ["--n", "4", "--parts", "encoder", "--gan-tags", "-"]
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_gan(*random_gan)  # the main GAN, no encoder for it
    out = _run_in_own_zoo(zq, tiny_classifier, random_gan, tmp_path, monkeypatch, args)
    assert ["encoder-fmnist-quick", "missing", "—", "—", "—", "—"] in md_rows(out.read_text())


def test_an_encoder_gets_its_two_rows_with_the_values_it_measures(
    zq, tiny_classifier, random_gan, tmp_path, monkeypatch
):
    """--parts encoder with the encoder in the zoo: its latent-recovery row against the random guess and its T = 0
    accuracy, the accuracy equal to the classifier's on G(I(x)) of the same test images computed here; the
    silent twin of the missing-encoder row."""
    from defbench.harness.data import load_dataset
    from defbench.harness import models

    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_gan(*random_gan)
    save_encoder(seed=3)
    out = _run_in_own_zoo(zq, tiny_classifier, random_gan, tmp_path, monkeypatch, ["--n", "12", "--parts", "encoder"])
    rows = [r for r in md_rows(out.read_text()) if r[0] == "encoder-fmnist-quick"]
    assert [r[1] for r in rows] == [
        "‖z − I(G(z))‖ vs random guess (500 z)",
        "accuracy on G(I(x)) (T = 0) of 12 clean test images",
    ]
    rec = json.loads(out.with_suffix(".json").read_text())["encoder-fmnist-quick"]
    assert rows[0][2] == f"{rec['latent_error']:.2f} vs {rec['random_guess_latent_error']:.2f}"
    assert rec["latent_error"] > 0 and rec["random_guess_latent_error"] > 0
    G, _, _ = models.get_gan("fmnist", "quick", "cpu", train_missing=False)
    enc, _ = models.get_encoder("fmnist", "quick", "cpu", train_missing=False)
    clf, _ = models.get_classifier("fmnist", "quick", "cpu", train_missing=False)
    test = load_dataset("fmnist", "test")
    x, y = test.get(test.eval_indices(12, 0))
    with torch.no_grad():
        expected = (clf(G(enc(x).clamp(-1, 1))).argmax(1) == y).float().mean().item()
    assert rec["accuracy_T0"] == pytest.approx(expected) and rows[1][2] == f"{expected:.3f}"
    assert "missing" not in [r[1] for r in rows]


def test_samples_part_reports_every_draw_and_no_projection(zq, tiny_classifier, random_gan, tmp_path, monkeypatch):
    """--parts samples: one row per GAN with --draws values and no projection rows."""
    args = ["--parts", "samples", "--draws", "3", "--seed", "5", "--gan-tags", "sub80-s1"]
    out = _run_in_own_zoo(zq, tiny_classifier, random_gan, tmp_path, monkeypatch, args)
    rows = [r for r in md_rows(out.read_text()) if r[0] == "gan-fmnist-quick-sub80-s1"]
    assert len(rows) == 1 and "3 draws (seeds 5–7)" in rows[0][1]
    assert len(rows[0][2].split("; ")[-1].split(" / ")) == 3
    assert not any("projections" in r[1] for r in md_rows(out.read_text()))


class _PickG(torch.nn.Module):
    """A 'generator' whose samples are real test images picked by z: their classes vary from draw to draw."""

    latent_dim = 8

    def __init__(self, x):
        super().__init__()
        self.x = x

    def forward(self, z):
        return self.x[(z[:, 0] * 1000).long() % len(self.x)]


def test_sample_draws_are_class_spread_with_consecutive_seeds(zq, tiny_classifier, fmnist):
    """Each value is the smallest class share of class_spread with seed SEED + k (k-th draw), and the draws
    differ (a G whose samples all fall in one class would make this check empty)."""
    import argparse

    from defbench.defenses.train_prior import class_spread

    G, clf = _PickG(fmnist[1].get(list(range(300)))[0]), tiny_classifier[0].eval()
    rows: list = []
    zq.add_sample_rows(rows, "fmnist", G, {"id": "g"}, clf, argparse.Namespace(draws=4, seed=5), "cpu")
    got = [float(v) for v in rows[0][2].split("; ")[-1].split(" / ")]
    want = [100 * min(class_spread(G, clf, 2000, torch.Generator().manual_seed(s), "cpu")) for s in (5, 6, 7, 8)]
    assert got == pytest.approx(want, abs=0.051)
    assert len(set(got)) > 1, f"the draws must differ for this check to mean anything: {got}"
    lo, hi = rows[0][2].split(" (")[0].split("–")
    assert float(lo) == min(got) and float(hi) == max(got)


def test_draws_below_one_are_refused(zq):
    with pytest.raises(SystemExit):
        zq.main(["--parts", "samples", "--draws", "0"])


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval by its formula."""
    p = k / n
    centre, half = p + z * z / (2 * n), z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_gan_rows_by_hand(zq, monkeypatch):
    """add_gan_rows: DefenseGAN's projection config and the run's seed go to projection_quality, 2000 samples
    drawn with generator seed SEED to class_spread; the accuracy's Wilson interval is of the right projections
    among all, and the share row gives the smallest class."""
    import argparse

    calls = {}

    def pq(G, clf, test, idx, cfg, seed, dev):
        calls["pq"] = (idx, cfg, seed)
        return {"projection_accuracy": 0.7, "reconstruction_mse": 0.01234, "n": 10, "per_class": [(3, 2), (7, 5)]}

    def cs(G, clf, n, gen, dev):
        calls["cs"] = (n, gen.initial_seed())
        return [0.2, 0.04, 0.3, 0.46]

    monkeypatch.setattr(zq, "projection_quality", pq)
    monkeypatch.setattr(zq, "class_spread", cs)
    rows, record = [], {}
    gman = {"id": "g", "metrics": {}}
    zq.add_gan_rows(rows, record, "fmnist", None, gman, None, None, "IDX", argparse.Namespace(n=10, seed=3), "cpu", 0)
    idx, cfg, seed = calls["pq"]
    assert idx == "IDX" and seed == 3 and (cfg.latent_steps, cfg.restarts, cfg.lr, cfg.momentum) == (200, 10, 10.0, 0.7)
    assert calls["cs"] == (2000, 3)
    lo, hi = _wilson(7, 10)  # 2 + 5 right of 10: 0.40-0.89
    assert rows[0][2] == f"0.700 (Wilson 95%: {lo:.2f}–{hi:.2f})" == "0.700 (Wilson 95%: 0.40–0.89)"
    assert rows[1][2] == "0.0123" and rows[2][2] == "4.00"
    assert record["g"]["per_class"] == [(3, 2), (7, 5)] and record["g"]["dataset"] == "fmnist"


def test_per_class_lines_by_hand(zq):
    """Per class: its name, its share %, its test images and the accuracy % of their projections with the Wilson
    interval of right among that class's images; '—' for a class without images."""
    rec = {"class_spread": [0.125, 0.5, 0.375], "per_class": [(8, 6), (0, 0), (20, 5)]}
    rows = md_rows("\n".join(zq.per_class_lines("g", rec, "fmnist", 28)))
    assert rows[0][2] == "test images (of 28)"
    (lo0, hi0), (lo2, hi2) = _wilson(6, 8), _wilson(5, 20)
    assert rows[1] == ["0 T-shirt", "12.50", "8", f"75 ({100 * lo0:.0f}–{100 * hi0:.0f})"]
    assert rows[2] == ["1 trouser", "50.00", "0", "—"]
    assert rows[3] == ["2 pullover", "37.50", "20", f"25 ({100 * lo2:.0f}–{100 * hi2:.0f})"]


def test_sample_rows_by_hand(zq, monkeypatch):
    """add_sample_rows: draw k is class_spread of 2000 samples with generator seed SEED + k; per draw its smallest
    class (share and name); min–max and median over the draws, the classes counted, the draws in seed order."""
    import argparse

    spreads = {  # seed -> (smallest class, its share); every other class at 0.1
        5: (3, 0.04),
        6: (7, 0.02),
        7: (3, 0.06),
        8: (0, 0.03),
    }
    seen = []

    def cs(G, clf, n, gen, dev):
        seen.append((n, gen.initial_seed()))
        c, v = spreads[gen.initial_seed()]
        return [v if k == c else 0.1 for k in range(10)]

    monkeypatch.setattr(zq, "class_spread", cs)
    rows = []
    zq.add_sample_rows(rows, "fmnist", None, {"id": "g"}, None, argparse.Namespace(draws=4, seed=5), "cpu")
    assert seen == [(2000, 5), (2000, 6), (2000, 7), (2000, 8)]
    # sorted 2, 3, 4, 6: median (3 + 4) / 2 = 3.5
    assert rows[0][2] == "2.00–6.00 (3.50); dress 2×, sneaker 1×, T-shirt 1×; 4.00 / 2.00 / 6.00 / 3.00"
    assert "4 draws (seeds 5–8)" in rows[0][1]


def test_sample_rows_never_round_a_share_up_to_the_target(zq, monkeypatch):
    """99 of 2000 samples is 4.95%, under the 5% coverage target: one decimal of the float (the old format) printed
    "5.0". Every share is written from its count, and a median between two draws (a half count) is cut, not
    rounded: (99 + 100) / 2 of 2000 is 4.975% -> "4.97"."""
    import argparse

    lows = {0: 99 / 2000, 1: 100 / 2000}
    monkeypatch.setattr(zq, "class_spread", lambda G, clf, n, gen, dev: [lows[gen.initial_seed()]] + [0.1] * 9)
    rows = []
    zq.add_sample_rows(rows, "fmnist", None, {"id": "g"}, None, argparse.Namespace(draws=2, seed=0), "cpu")
    assert f"{100 * 99 / 2000:.1f}" == "5.0"  # what the old format said
    assert rows[0][2] == "4.95–5.00 (4.97); T-shirt 2×; 4.95 / 5.00"


class _LatentG(torch.nn.Module):
    """A 'generator' whose sample is its latent z (ten values) as a 1×1×10 image; the classifier reads z itself."""

    latent_dim = 10

    def forward(self, z):
        return z.reshape(-1, 1, 1, 10)


def test_class_spread_by_hand():
    """The share zoo_quality reports: the fraction of n samples (latents U(-1, 1) drawn 500 at a time from the
    generator) that the classifier's argmax puts in each class."""
    from defbench.defenses.train_prior import class_spread

    g = torch.Generator().manual_seed(11)
    z = torch.cat([torch.rand(min(500, 1300 - s), 10, generator=g) * 2 - 1 for s in range(0, 1300, 500)])
    want = (torch.bincount(z.argmax(1), minlength=10).float() / 1300).tolist()
    got = class_spread(_LatentG(), torch.nn.Flatten(), 1300, torch.Generator().manual_seed(11), "cpu")
    assert got == pytest.approx(want)


def test_projection_quality_per_class_by_hand(monkeypatch):
    """projection_quality: batch i projected with seed SEED + i; per class, its images and how many of them the
    classifier labels right after projection; the accuracy is right among all."""
    from types import SimpleNamespace

    from defbench.defenses import train_prior as tp
    from defbench.defenses.gan_prior import PAPER_CONFIGS

    seeds = []

    class Engine:  # 'projects' x onto itself: the classifier then reads the image as it is
        def __init__(self, G):
            pass

        def project(self, x, cfg, seed):
            seeds.append(seed)
            return SimpleNamespace(x_hat=x, error=torch.zeros(len(x)))

    monkeypatch.setattr(tp, "ProjectionEngine", Engine)
    # image i: a one-hot 'logit' at pred[i]; labels y
    pred = torch.tensor([0, 1, 1, 2, 2, 0, 1])
    y = torch.tensor([0, 1, 2, 2, 0, 0, 2])
    x = torch.nn.functional.one_hot(pred, 3).float()

    class Data:
        def get(self, idx):
            return x[idx], y[idx]

    q = tp.projection_quality(
        None, torch.nn.Identity(), Data(), list(range(7)), PAPER_CONFIGS["defensegan"], 4, "cpu", 3
    )
    assert seeds == [4, 5, 6]
    # class 0: images 0, 4, 5, right 0 and 5; class 1: image 1, right; class 2: images 2, 3, 6, right 3
    assert q["per_class"] == [(3, 2), (1, 1), (3, 1)]
    assert q["projection_accuracy"] == pytest.approx(4 / 7) and q["n"] == 7


def test_main_wires_seeds_tags_and_parts(zq, tmp_path, monkeypatch):
    """main() with the models faked: the test images are eval_indices(--n, --seed); each tag's own GAN is loaded
    and measured by the parts asked; a missing replica gets its row; the encoder rows belong to the main GAN only;
    the classifier row is its accuracy in %; the per-class table names the dataset's classes."""
    calls: dict[str, list] = {"idx": [], "tags": [], "gan": [], "samples": [], "encoder": []}

    class Test:
        note = None

        def __len__(self):
            return 50

        def eval_indices(self, n, seed):
            calls["idx"].append((n, seed))
            return "IDX"

    def get_gan(ds, preset, dev, train_missing, tag):
        calls["tags"].append(tag)
        return f"G[{tag}]", None, {"id": zq.zoo.model_id("gan", ds, preset, tag)}

    def gan_rows(rows, record, ds, G, gman, clf, test, idx, args, dev, t0):
        calls["gan"].append((G, idx))
        record[gman["id"]] = {"class_spread": [0.1] * 10, "per_class": [(1, 1)] * 10, "dataset": ds}

    cman = {"id": "classifier-fmnist-quick", "metrics": {}}
    monkeypatch.setattr(zq, "load_dataset", lambda *a, **k: Test())
    monkeypatch.setattr(zq.models, "get_classifier", lambda *a, **k: ("CLF", cman))
    monkeypatch.setattr(zq, "model_accuracy", lambda clf, test, dev: 0.8765)
    monkeypatch.setattr(zq.zoo, "exists", lambda mid: mid in ("gan-fmnist-quick", "gan-fmnist-quick-sub80-s1"))
    monkeypatch.setattr(zq.models, "get_gan", get_gan)
    monkeypatch.setattr(zq, "add_gan_rows", gan_rows)
    monkeypatch.setattr(zq, "add_sample_rows", lambda rows, ds, G, *a: calls["samples"].append(G))
    monkeypatch.setattr(zq, "add_encoder_rows", lambda *a: calls["encoder"].append(a))
    out = tmp_path / "q.md"
    args = ["--datasets", "fmnist", "--preset", "quick", "--n", "7", "--seed", "3", "--out", str(out)]
    zq.main([*args, "--parts", "gan,encoder", "--gan-tags=-,sub80-s1,sub80-s2"])
    assert calls["idx"] == [(7, 3)] and calls["tags"] == ["", "sub80-s1"]
    assert calls["gan"] == [("G[]", "IDX"), ("G[sub80-s1]", "IDX")] and calls["samples"] == []
    rows = md_rows(out.read_text())
    assert rows[1][:3] == ["classifier-fmnist-quick", "clean test accuracy (%, 50 images)", "87.65"]
    assert ["gan-fmnist-quick-sub80-s2", "missing", "—", "—", "—", "—"] in rows
    assert [r for r in rows if r[0].startswith("encoder")] == [["encoder-fmnist-quick", "missing", "—", "—", "—", "—"]]
    assert ["0 T-shirt", "10.00", "1", "100 (21–100)"] in rows  # Wilson 1 of 1: 0.21-1
    zq.main([*args, "--parts", "samples", "--gan-tags", "sub80-s1"])
    assert calls["samples"] == ["G[sub80-s1]"] and len(calls["gan"]) == 2


class _Double(torch.nn.Module):
    """An 'encoder' z = 2 × the image's ten pixels: outside [-1, 1] where a pixel is above 0.5."""

    def forward(self, x):
        return 2 * x.flatten(1)


def test_encoder_rows_by_hand(zq, monkeypatch):
    """add_encoder_rows: ‖z − clamp(I(G(z)))‖ over 500 z drawn with generator seed SEED + 1 against the next 500
    draws as the guess, and the accuracy on G(clamp(I(x))) of the test images, by hand on a G whose sample is its
    latent, an encoder 2x and a classifier that reads the pixels."""
    import argparse

    monkeypatch.setattr(zq.models, "get_encoder", lambda *a, **k: (_Double(), {"id": "e", "metrics": {}}))
    x = torch.full((4, 1, 1, 10), -0.9)
    x[0, 0, 0, :2] = torch.tensor([0.6, 0.9])  # clamped to a tie 1, 1: class 0 (the first); unclamped class 1
    x[1, 0, 0, 2], x[2, 0, 0, 4], x[3, 0, 0, 7] = 0.3, 0.3, 0.1
    y = torch.tensor([0, 2, 5, 7])  # right: images 0, 1 and 3

    class Test:
        def get(self, idx):
            return x[idx], y[idx]

    rows, record = [], {}
    args = argparse.Namespace(seed=4, n=4, preset="quick")
    zq.add_encoder_rows(rows, record, "fmnist", _LatentG(), torch.nn.Flatten(), Test(), [0, 1, 2, 3], args, "cpu")
    g = torch.Generator().manual_seed(5)
    z, guess = torch.rand(500, 10, generator=g) * 2 - 1, torch.rand(500, 10, generator=g) * 2 - 1
    err, rnd = (z - (2 * z).clamp(-1, 1)).norm(dim=1).mean().item(), (z - guess).norm(dim=1).mean().item()
    assert record["e"]["latent_error"] == pytest.approx(err)
    assert record["e"]["random_guess_latent_error"] == pytest.approx(rnd)
    assert rows[0][2] == f"{err:.2f} vs {rnd:.2f}"
    assert record["e"]["accuracy_T0"] == pytest.approx(0.75) and rows[1][2] == "0.750"


def test_one_draw_is_allowed(zq, tmp_path, monkeypatch):
    """--draws 1 is a draw: accepted (on a zoo without models, whose rows say so)."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "q.md"
    assert (
        zq.main(["--datasets", "fmnist", "--preset", "quick", "--parts", "samples", "--draws", "1", "--out", str(out)])
        == 0
    )
    assert "missing" in out.read_text()
