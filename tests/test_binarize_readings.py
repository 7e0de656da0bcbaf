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
    unit = {k: v for k, v in r.items() if not k.endswith("on [-1, 1]")}
    assert len(unit) == 5 and all(set(v.unique().tolist()) <= {0.0, 1.0} for v in unit.values())
    # each reading again with its 0s and 1s written on [-1, 1] pixels: mid-grey and white, the same pixels white
    signed = {k: v for k, v in r.items() if k.endswith("on [-1, 1]")}
    assert len(signed) == 5 and all(
        torch.equal(s, 0.5 + 0.5 * u) for s, u in zip(signed.values(), unit.values(), strict=True)
    )
    from defbench.attacks.registry import get_attack

    assert torch.equal(
        r["per image median, ties black (`binarize[range=signed,ties=black]`); 0s and 1s on [-1, 1]"],
        get_attack("binarize", "fmnist", range="signed", ties="black").corrupt(x),
    )
