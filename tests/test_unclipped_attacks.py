"""benchmarks/unclipped_attacks.py: its ART attacks are the spec's, and only the clipping differs."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark
from torch import nn

from defbench.attacks import get_attack


@pytest.fixture(scope="module")
def ua():
    return import_benchmark("unclipped_attacks")


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(8, 1, 28, 28)
    x[:, :, :10] = 0.0  # a black band, as Fashion-MNIST's background: unclipped steps can go below 0
    x[:, :, -5:] = 1.0
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("name", ["fgsm", "bim"])
def test_clipped_art_attack_is_defbench_attack_at_the_spec_reading(ua, model_and_batch, name):
    model, x, y = model_and_batch
    art = torch.from_numpy(ua._attack(name, model, (0.0, 1.0)).generate(x.numpy(), y=y.numpy()))
    ours = get_attack(name, "fmnist", eps=ua.EPS, labels="predicted")(model, x, y)
    assert (art - ours).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd"])
def test_unclipped_attack_leaves_the_pixel_range_but_not_the_ball(ua, model_and_batch, name):
    model, x, y = model_and_batch
    torch.manual_seed(0)
    free = torch.from_numpy(ua._attack(name, model, None).generate(x.numpy(), y=y.numpy()))
    clipped = torch.from_numpy(ua._attack(name, model, (0.0, 1.0)).generate(x.numpy(), y=y.numpy()))
    assert torch.isfinite(free).all()
    assert (free - x).abs().max() <= ua.EPS + 1e-6
    assert free.min() < -0.05 or free.max() > 1.05  # some pixels outside [0, 1]
    assert clipped.min() >= 0 and clipped.max() <= 1
