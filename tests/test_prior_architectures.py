"""The GAN priors' output maps, the surrogates' initial draws and the defenses' paper settings, each against what
the docstrings and docs/DEFENSES.md state (a mutation audit of defenses/priors.py and gan_prior.py, 2026-12-06:
tanh swapped for a sigmoid in the CIFAR-10 G, the surrogate's mask, W and convolution ranges, the DCGAN
convolutions' std, a packed CIFAR-10 D, and every paper setting of the four defenses survived the suite)."""

from __future__ import annotations

import pytest
import torch

from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.priors import MimicSurrogate, build_gan


@pytest.mark.parametrize("dataset", ["fmnist", "cifar10"])
def test_generators_map_tanh_to_unit_pixels(dataset):
    """G(z) = (tanh(a) + 1) / 2 with a the last transposed convolution's output: pixels in [0, 1]."""
    torch.manual_seed(0)
    G, _ = build_gan(dataset)
    G.eval()
    last = [m for m in G.deconv if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    pre = []
    last.register_forward_hook(lambda m, i, o: pre.append(o))
    with torch.no_grad():
        out = G(torch.rand(4, G.latent_dim) * 2 - 1)
    assert torch.allclose(out, (torch.tanh(pre[0]) + 1) / 2, atol=1e-6)


def test_a_packed_cifar10_discriminator_takes_the_stacked_channels():
    _, D = build_gan("cifar10", pack=2)
    assert D.pack == 2 and D(torch.rand(3, 6, 32, 32)).shape == (3,)


def test_surrogate_starts_near_the_identity_with_seeded_default_ranges():
    """Table 5's f̂ from a generator: the mask is its first draw, N(0, 1) · 1e-2; W = 1; each 5x5 convolution's weights
    and biases uniform in ±1/√(in_channels · 25) (PyTorch's default range)."""
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(3))
    want = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 1e-2
    assert torch.equal(f.mask.detach(), want) and f.w.item() == 1.0
    for conv in (f.conv1, f.conv2):
        bound = 1 / (conv.in_channels * 25) ** 0.5
        w = torch.cat([conv.weight.detach().flatten(), conv.bias.detach()])
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_randomized_surrogate_draws_glorot_uniform():
    """randomize_: W ~ U(±√3), then the mask ~ U(±√(6 / (H·W + H·C))), ±0.086 on 28 x 28 x 1 (its docstring)."""
    torch.manual_seed(0)
    f = MimicSurrogate(1, 28).randomize_(torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    u, m = torch.rand((), generator=g), torch.rand(1, 1, 28, 28, generator=g)
    assert f.w.item() == pytest.approx(((u * 2 - 1) * 3**0.5).item(), rel=1e-6)
    bound = (6 / (28 * 28 + 28)) ** 0.5
    assert bound == pytest.approx(0.086, abs=5e-4)
    assert torch.allclose(f.mask.detach(), (m * 2 - 1) * bound, atol=1e-7)


def test_dcgan_convolutions_are_a_truncated_normal_of_std_0_02():
    """dcgan_convs_: weights N(0, 0.02²) truncated at two std (±0.04; a truncated normal's std is 0.88 of its
    scale, ≈ 0.0176), biases 0."""
    f = MimicSurrogate(1, 28).dcgan_convs_(torch.Generator().manual_seed(0))
    w = torch.cat([f.conv1.weight.detach().flatten(), f.conv2.weight.detach().flatten()])
    assert w.abs().max() <= 0.04 and w.abs().max() > 0.035
    assert w.std().item() == pytest.approx(0.02 * 0.88, rel=0.1)
    assert not f.conv1.bias.any() and not f.conv2.bias.any()


def test_paper_configs_are_the_stated_settings():
    """gan_prior's table (docs/DEFENSES.md): DefenseGAN L = 200 SGD steps at lr 10, momentum 0.7, R = 10, per-image
    MSE, random starts; Cowboy the same plus λ_adv = 1e-3 against the per-image sum; InvGAN T = 1000 steps at lr
    0.01 from the encoder's guess, one restart, ℓ2, BPDA identity; MimicGAN T = 10 outer iterations of T1 = 10
    surrogate steps at 1e-2 and T2 = 10 RMSProp latent steps at 8e-2, ℓ1, λ_adv = 1e-4, mean start."""
    d = PAPER_CONFIGS["defensegan"]
    assert (d.latent_steps, d.restarts, d.optimizer, d.lr, d.momentum, d.loss, d.init) == (
        200,
        10,
        "sgd",
        10.0,
        0.7,
        "mse",
        "random",
    )
    c = PAPER_CONFIGS["cowboy"]
    assert c == d.with_(lambda_adv=1e-3, adv_against_sum=True)
    i = PAPER_CONFIGS["invgan"]
    assert (i.latent_steps, i.restarts, i.optimizer, i.lr, i.momentum, i.loss, i.init, i.bpda_stand_in) == (
        1000,
        1,
        "sgd",
        0.01,
        0.0,
        "l2",
        "encoder",
        "identity",
    )
    m = PAPER_CONFIGS["mimicgan"]
    assert (m.outer_iters, m.surrogate_steps, m.latent_steps, m.restarts, m.optimizer, m.lr, m.surrogate_lr) == (
        10,
        10,
        10,
        1,
        "rmsprop",
        8e-2,
        1e-2,
    )
    assert (m.loss, m.init, m.surrogate, m.lambda_adv) == ("l1", "mean", "mimic", 1e-4)


def test_mimicgan_without_surrogate_steps_is_not_batch_coupled():
    """With no surrogate step f̂ stays its seeded start and each image's latent steps see only that image, so an
    image purified alone equals it purified inside a batch: the defense is not batch-coupled (it is with a step)."""
    from conftest import stand_in_gan

    from defbench.defenses.gan_prior import GANPriorDefense

    G, D = stand_in_gan("fmnist", 0)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    base = PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, latent_steps=2, mean_samples=16)
    d = GANPriorDefense("mimicgan", G, D, cfg=base.with_(surrogate_steps=0), shape=(1, 28, 28))
    assert not d.batch_coupled
    assert torch.allclose(d.purify(x[:1], seed=0), d.purify(x, seed=0)[:1], atol=1e-6)
    assert GANPriorDefense("mimicgan", G, D, cfg=base.with_(surrogate_steps=1), shape=(1, 28, 28)).batch_coupled
