"""benchmarks/binarize_readings.py: which readings of Fig. 4(b)'s binarisation blank an image."""

from __future__ import annotations

import torch
from conftest import import_benchmark


def test_a_mostly_background_image_turns_flat_white_only_with_ties_on_white():
    br = import_benchmark("binarize_readings")
    x = torch.zeros(2, 1, 28, 28)
    x[0, :, 10:14, 10:14] = 0.8  # 16 of 784 pixels: the image's median is 0 (background)
    x[1] = torch.linspace(0, 1, 784).view(1, 28, 28)  # no ties at the median
    r = br.readings(x)
    white, black = (
        r["per image median, ties white (`binarize`, the default)"],
        r["per image median, ties black (`binarize[ties=black]`)"],
    )
    assert torch.equal(white[0], torch.ones(1, 28, 28))  # every pixel >= its median 0: one flat white image
    assert black[0].sum() == 16 and white[1].sum() == black[1].sum() == 392  # half of a tie-free image
    assert all(set(v.unique().tolist()) <= {0.0, 1.0} for v in r.values())
