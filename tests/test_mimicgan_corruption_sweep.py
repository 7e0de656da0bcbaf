"""benchmarks/mimicgan_corruption_sweep.py: a corruption with its options from the command line."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark

from defbench import DefbenchError


@pytest.fixture(scope="module")
def sweep():
    return import_benchmark("mimicgan_corruption_sweep")


def test_corruption_options_reach_the_corruption(sweep):
    assert sweep.corruption("drop-pixels").params["mask"] == "image"
    shared = sweep.corruption("drop-pixels:mask=batch:fraction=0.5")
    assert shared.params["mask"] == "batch"
    torch.manual_seed(0)
    out = shared.corrupt(torch.ones(3, 1, 28, 28))
    assert torch.equal(out[0], out[2]) and 0.45 < float((out == 0).float().mean()) < 0.55
    with pytest.raises(DefbenchError, match="mask"):
        sweep.corruption("drop-pixels:mask=pixel")
