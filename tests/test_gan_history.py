"""benchmarks/gan_history.py: a zoo GAN's per-epoch records laid out from its manifest, counts by hand."""

from __future__ import annotations

import json

import pytest
from conftest import import_benchmark, md_row

from defbench import DefbenchError


def _manifest(mid: str, feedback: bool) -> dict:
    spread1 = [0.0485, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2015, 0.05, 0.1, 0.1]  # trouser-free: class 0 smallest, shirt largest
    spread2 = [0.1, 0.0495, 0.1, 0.1, 0.1, 0.1, 0.1505, 0.1, 0.1, 0.1]
    history = [
        {"epoch": 1, "projection_accuracy": 0.81, "class_spread": spread1},
        {"epoch": 2, "projection_accuracy": 0.875, "class_spread": spread2},
    ]
    if feedback:
        history[0]["class_weights"] = [4.0, 0.25] + [1.0] * 8
        history[1]["class_weights"] = [1.5] * 10
    return {
        "kind": "gan",
        "dataset": "fmnist",
        "id": mid,
        "sha256": "ab" * 32,
        "classifier": "classifier-fmnist-paper",
        "config": {"class_feedback": 0.5 if feedback else 0.0, "feedback_classifier": "quick" if feedback else ""},
        "metrics": {"history": history, "best_epoch": 2, "train_seconds": 600.0, "device": "cpu"},
    }


def test_rows_give_counts_of_2000_the_kept_epoch_and_the_weights(tmp_path, monkeypatch):
    gh = import_benchmark("gan_history")
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path))
    made = {"a": _manifest("a", True), "b": _manifest("b", False)}
    monkeypatch.setattr(gh.zoo, "manifest_or_none", made.get)
    out = tmp_path / "h.md"
    assert gh.main(["--models", "a,b", "--out", str(out)]) == 0
    text = out.read_text()
    weights = "4.00 0.25 " + "1.00 " * 7 + "1.00"
    assert md_row(text, "a", "1") == ["a", "1", "0.81", "97 (T-shirt)", "403 (shirt)", weights]
    assert md_row(text, "a", "2*")[2:5] == ["0.88", "99 (trouser)", "301 (shirt)"]  # 0.875 -> 0.88; 4.95% is 99
    assert md_row(text, "b", "1")[5] == "—"
    assert "class feedback 0.5 steered by quick" in text and "b (sha256 abababab, 10.0 min on cpu)" in text
    assert "counted by classifier-fmnist-paper; class feedback off" in text
    with pytest.raises(DefbenchError, match="no GAN 'c'"):
        gh.main(["--models", "c", "--out", str(out)])
    json.dumps(made["a"])  # the stand-in is a JSON manifest like the zoo's
