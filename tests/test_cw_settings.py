"""benchmarks/cw_settings.py: its readings are the spec's CW and cleverhans' defaults, and only CW's settings differ."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark
from torch import nn

from defbench.attacks import get_attack
from defbench.harness.paper_tables import TABLES


@pytest.fixture(scope="module")
def cw():
    return import_benchmark("cw_settings")


def test_invgan_reading_is_the_specs_cw(cw):
    spec_cw = {a.name: a for a in TABLES["mimicgan-fig5b"].attacks}["cw"]
    spec = spec_cw.build("fmnist").params
    assert get_attack("cw", "fmnist", **cw.READINGS["invgan"]).params == spec


def test_cleverhans_reading_is_cleverhans_defaults(cw):
    p = get_attack("cw", "fmnist", **cw.READINGS["cleverhans"]).params
    # cleverhans v2.1 CarliniWagnerL2.parse_params defaults
    assert (p["binary_search_steps"], p["initial_const"], p["lr"], p["steps"], p["confidence"]) == (
        5,
        1e-2,
        5e-3,
        1000,
        0.0,
    )


def test_perturbation_norms_skip_failed_images(cw):
    x = torch.zeros(3, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0] += 0.5  # ℓ2 = 1
    x_adv[2] += 1.0  # ℓ2 = 2, but failed
    norms = cw.perturbation_norms(x, x_adv, torch.tensor([False, False, True]))
    assert norms.tolist() == [1.0, 0.0]


def test_cleverhans_reading_breaks_a_model_with_small_in_range_perturbations(cw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = get_attack("cw", "fmnist", **{**cw.READINGS["cleverhans"], "steps": 200})
    x_adv = attack(model, x, y)
    assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    broken = ~attack.last_failed
    assert broken.sum() >= 4
    with torch.no_grad():
        assert (model(x_adv[broken]).argmax(1) != y[broken]).all()
    norms = cw.perturbation_norms(x, x_adv, attack.last_failed)
    assert (norms > 0).all() and norms.max() < 5.0
