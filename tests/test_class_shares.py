"""benchmarks/class_shares.py: how the coverage classifier labels a prior's samples."""

from __future__ import annotations

import torch
from conftest import import_benchmark


def test_class_shares_readings_by_hand():
    """benchmarks/class_shares.py: argmax share, softmax mass and the mean top probability per argmax class."""
    cs = import_benchmark("class_shares")
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    r = cs.readings(p, classes=2)
    assert torch.allclose(r["argmax"], torch.tensor([2 / 3, 1 / 3]))
    assert torch.allclose(r["mass"], torch.tensor([0.6, 0.4]))
    assert torch.allclose(r["confidence"], torch.tensor([0.75, 0.7]))


def test_mean_confidence_over_the_draws_that_hold_the_class():
    """A class no sample of one draw falls in (readings gives NaN there) does not turn the mean into nan."""
    cs = import_benchmark("class_shares")
    p = torch.tensor([[0.6, 0.4], [0.9, 0.1]])  # class 1 gets no argmax: NaN
    draws = [float(cs.readings(p, classes=2)["confidence"][1]), 0.7, 0.5]
    assert cs.mean_confidence(draws) == "0.60 (2 of 3 draws)"
    assert cs.mean_confidence([0.7, 0.5]) == "0.60"
    assert cs.mean_confidence([float("nan")] * 2) == "—"
