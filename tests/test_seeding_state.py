"""defbench.seeding.kept_random_state: after the block, Python's, numpy's and torch's global generators continue
exactly where they were before it, whatever the block seeded or drew."""

from __future__ import annotations

import random

import numpy as np
import torch

from defbench.seeding import kept_random_state, seed_everything


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_kept_random_state_restores_python_numpy_and_torch():
    """Three draws after seeding 5 are the same whether or not a block that reseeds all three generators (and
    draws from them) runs between the first draw and the other two."""
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    want = [_draws() for _ in range(3)]
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    got = [_draws()]
    with kept_random_state():
        seed_everything(123)
        _draws()
    got += [_draws() for _ in range(2)]
    assert got == want
