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


def test_surrogate_state_reads_a_live_and_a_collapsed_surrogate(sweep):
    """The sweep's f̂ columns: an identity-like f̂ passes the projections through (scale 1, conv path alive where
    its ReLU is open); W = 0 with a dead conv path outputs 0 (scale 0, nothing alive), the collapse the
    Dropped Pixels runs show."""
    from defbench.defenses.priors import MimicSurrogate
    from defbench.defenses.gan_prior import PAPER_CONFIGS

    cfg = PAPER_CONFIGS["mimicgan"]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    with torch.no_grad():
        f.conv2.bias.fill_(1.0)  # every conv-path output open; the zero mask keeps f̂ the identity
    assert sweep.surrogate_state(f, cfg, x, x) == pytest.approx((1.0, 1.0))
    with torch.no_grad():
        f.w.zero_()
        f.mask.fill_(1.0)
        f.conv2.bias.fill_(-100.0)  # ReLU(conv2) = 0 everywhere
    scale, live = sweep.surrogate_state(f, cfg, x, x)
    assert scale == 0.0 and live == 0.0


def test_a_purification_row_fills_the_table_header(sweep, random_gan, fmnist_images, tiny_classifier):
    """_purified's row has one cell per PURIFIED_COLUMNS entry (the table failed to write when a column was
    added to the row and not to the header)."""
    from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense

    G, D = random_gan
    x, y = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, surrogate_steps=1, latent_steps=1)
    row = sweep._purified(
        GANPriorDefense("mimicgan", G, D, cfg=cfg, shape=(1, 28, 28)), x[:4], 0, tiny_classifier[0], y[:4]
    )
    assert len(row) == len(sweep.PURIFIED_COLUMNS)
    assert float(row[2]) > 0 and 0 <= float(row[4]) <= 100  # mean error, live %
    spatial = GANPriorDefense("mimicgan", G, D, cfg=cfg.with_(surrogate_arch="mimicgan2"), shape=(1, 28, 28))
    row = sweep._purified(spatial, x[:4], 0, tiny_classifier[0], y[:4])  # no W: its shortcut is the affine map
    offset = (spatial.last.surrogate.theta.detach() - torch.eye(2, 3)).abs().max().item()  # max |A − I|, by hand
    assert len(row) == len(sweep.PURIFIED_COLUMNS) and float(row[1]) == round(offset, 2)


def test_an_attack_with_its_budget_from_the_command_line(sweep):
    """fgsm:eps=0.15:labels=predicted: ε reaches the attack as a number (Fig. 5(b)'s reading), options as given."""
    atk = sweep.corruption("fgsm:eps=0.15:labels=predicted")
    assert atk.eps == 0.15 and atk.labels == "predicted"
    assert sweep.corruption("fgsm").eps != 0.15  # without it, the attack's own default
