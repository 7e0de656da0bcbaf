"""benchmarks/classifier_swap.py: Fig. 5(b)'s values by cell, and the cells' wiring on stand-in models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import import_benchmark


@pytest.fixture(scope="module")
def cs():
    return import_benchmark("classifier_swap")


def test_paper_values_are_fig5b_cells(cs):
    assert cs.paper_value(None, "none") == 91.5
    assert cs.paper_value("fgsm", "defensegan") == 46.6
    assert cs.paper_value("bim", "mimicgan") == 68.0
    assert cs.paper_value("pgd", "none") == 5.4
    assert cs.paper_value(None, "defensegan") is None  # the paper prints no defended clean accuracy


class _Threshold(torch.nn.Module):
    """Class 1 when the mean pixel exceeds 0.5, else 0 (its gradient points the attacks at the threshold)."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([0.5 - m, m - 0.5], 1) * 100


class _Purify:
    def __init__(self, fn):
        self.fn = fn

    def purify(self, x, seed):
        return self.fn(x)


def test_cells_score_each_defense_on_the_attacked_images(cs):
    """The undefended cell scores the attack's images; a defense that restores mid-grey images scores its own
    output; the clean row takes the clean purification handed in, not a new one."""
    x = torch.cat([torch.full((4, 1, 28, 28), 0.3), torch.full((4, 1, 28, 28), 0.7)])
    y = torch.tensor([0] * 4 + [1] * 4)
    clf = _Threshold()
    defenses = {"keep": _Purify(lambda z: z), "restore": _Purify(lambda z: x.clone())}
    clean_purified = {"keep": x, "restore": torch.full_like(x, 0.7)}  # every image read as class 1
    got = cs.cells(clf, x, y, defenses, ["fgsm"], 0.3, 0, clean_purified)
    assert got[(None, "none")].all() and got[(None, "keep")].all()
    assert np.array_equal(got[(None, "restore")], (y == 1).numpy())  # the handed-in clean purification
    assert not got[("fgsm", "none")].any() and not got[("fgsm", "keep")].any()  # ε 0.3 crosses the threshold
    assert got[("fgsm", "restore")].all()
