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
