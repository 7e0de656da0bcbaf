"""MimicGAN-2's surrogate (Fig. 3, ``surrogate_arch=mimicgan2``): a spatial transformer in front of the convs and
the mask. It starts at the identity, its affine map moves the image, the projection learns a shift that
MimicGAN-1's surrogate cannot express, and f̂ = I stays the exact identity under either architecture."""

import pytest
import torch
from torch import nn

from defbench import DefbenchError
from defbench.defenses.gan_prior import PAPER_CONFIGS
from defbench.defenses.priors import SpatialMimicSurrogate
from defbench.defenses.projection import ProjectionConfig, ProjectionEngine

PIXEL = 2 / 28  # one pixel in the affine grid's normalised coordinates (align_corners=False)


def test_starts_at_the_identity_and_its_affine_map_moves_the_image():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f = SpatialMimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(f.warp(x), x, atol=1e-5) and f.shortcut_state() == 0.0  # θ starts at the identity map
    assert f.open_share(x) > 0  # the conv path starts open, so f̂ is not the identity yet
    assert torch.allclose(f.make_identity()(x), x, atol=1e-5)
    with torch.no_grad():
        f.theta[0, 2] = 2 * PIXEL  # sample two pixels to the right: the content moves two pixels left
    assert f.shortcut_state() == pytest.approx(2 * PIXEL)
    moved = f(x)
    assert torch.allclose(moved[..., :-2], x[..., 2:], atol=1e-5)
    assert moved[..., -2:].abs().max() < 1e-5  # zeros come in from outside the image
    assert not any(name == "w" for name, _ in f.named_parameters())  # the passthrough is a plain addition


class _Fixed(nn.Module):
    """A 'generator' that returns fixed images whatever the latent: the test fits the surrogate alone."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.images = nn.Parameter(images, requires_grad=False)
        self.latent_dim = 4

    def forward(self, z):
        return self.images[: len(z)]


def test_projection_learns_a_shared_shift_that_mimicgan1_cannot(fmnist_images):
    x, _ = fmnist_images
    g = x[:8]
    y = torch.zeros_like(g)
    y[..., :-1] = g[..., 1:]  # every observation is its image moved one pixel left
    cfg = ProjectionConfig(
        outer_iters=1, latent_steps=0, surrogate_steps=150, restarts=1, loss="l1", surrogate="mimic", init="random"
    )
    eng = ProjectionEngine(_Fixed(g))
    spatial = eng.project(y, cfg.with_(surrogate_arch="mimicgan2"), seed=0)
    plain = eng.project(y, cfg, seed=0)
    theta = spatial.surrogate.theta.detach()
    assert abs(theta[0, 2].item() - PIXEL) < 0.25 * PIXEL  # the learned map is the one-pixel shift
    assert (theta - torch.tensor([[1.0, 0.0, PIXEL], [0.0, 1.0, 0.0]])).abs().max() < 0.25 * PIXEL
    assert spatial.error.mean() < 0.25 * plain.error.mean()  # Table 5's surrogate cannot move the image


def test_config_keeps_the_key_refuses_what_it_cannot_build_and_shares_the_identity(random_gan, fmnist_images):
    base = PAPER_CONFIGS["mimicgan"]
    assert "surrogate_arch" not in base.to_dict()  # stores written before the option keep their keys
    assert base.with_(surrogate_arch="mimicgan2").to_dict()["surrogate_arch"] == "mimicgan2"
    with pytest.raises(DefbenchError, match="choose one of"):
        ProjectionConfig(surrogate_arch="mimicgan3")
    with pytest.raises(DefbenchError, match="near the identity only"):
        base.with_(surrogate_arch="mimicgan2", surrogate_init="random")
    with pytest.raises(DefbenchError, match="near the identity only"):
        SpatialMimicSurrogate(1, 28).randomize_(torch.Generator())
    G, _ = random_gan
    x, _ = fmnist_images
    ident = base.with_(surrogate="identity", outer_iters=1, surrogate_steps=2, latent_steps=3, lambda_adv=0.0)
    eng = ProjectionEngine(G)
    a = eng.project(x[:4], ident, seed=0)
    b = eng.project(x[:4], ident.with_(surrogate_arch="mimicgan2"), seed=0)
    assert torch.equal(a.x_hat, b.x_hat)  # f̂ = I is the same exact identity under both architectures
    learned = base.with_(outer_iters=1, surrogate_steps=1, latent_steps=1, lambda_adv=0.0, surrogate_arch="mimicgan2")
    assert isinstance(eng.project(x[:4], learned, seed=0).surrogate, SpatialMimicSurrogate)
