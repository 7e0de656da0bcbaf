"""benchmarks/zoo_quality.py measures the GANs named by ``--gan-tags`` (Fig. 9(b)'s replicas besides the main
prior), each under its own zoo id, and refuses a malformed tag before any work."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import import_benchmark, md_rows, save_classifier, save_gan

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


def test_replicas_are_measured_by_their_own_ids(zq, tiny_classifier, random_gan, tmp_path, monkeypatch):
    """In a zoo of its own: the session zoo may hold other replicas that earlier tests trained."""
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_classifier(*tiny_classifier)
    save_gan(*random_gan, tag="sub80-s1")
    out = tmp_path / "q.md"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in's manifest has no recipe: drift is reported, not tested here
        zq.main(
            ["--datasets", "fmnist", "--preset", "quick", "--n", "4", "--parts", "gan"]
            + ["--gan-tags", "sub80-s1,sub80-s2", "--out", str(out)]
        )
    ids = [r[0] for r in md_rows(out.read_text())]
    assert "gan-fmnist-quick-sub80-s1" in ids
    assert "gan-fmnist-quick" not in ids  # the main GAN only when asked for ('-')
    missing = [r for r in md_rows(out.read_text()) if r[0] == "gan-fmnist-quick-sub80-s2"]
    assert missing and missing[0][1] == "missing"
    record = json.loads(out.with_suffix(".json").read_text())
    acc = record["gan-fmnist-quick-sub80-s1"]["projection_accuracy"]
    assert 0.0 <= acc <= 1.0 and len(record["gan-fmnist-quick-sub80-s1"]["class_spread"]) == 10
