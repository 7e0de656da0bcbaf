"""The adaptive threat models on real defenses, against gradients and images computed here by hand: BPDA through
a purification that is not the identity (median filter), InvGAN's BPDA backward through G(I(x)), the
reparameterisation attack's gradients through f ∘ G ∘ I (also against finite differences), and the gan-aware
attack through the latent of the defense's own projection. Stand-in models only: a random DCGAN, a random InvGAN
encoder and a small random classifier (the mechanics do not need trained ones)."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from conftest import stand_in_gan
from torch import nn
from torch.nn.functional import cross_entropy

from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.attacks.base import Attack
from defbench.attacks.threats import BPDAModel, LatentModel, ReparamModel, attack_model, gan_aware
from defbench.defenses.baselines import MedianFilter
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import Encoder

SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def parts():
    """(classifier, G, D, encoder): a small random CNN, the random stand-in DCGAN and a random InvGAN encoder
    whose BatchNorm statistics come from one pass over G's samples (eval mode)."""
    torch.manual_seed(0)
    clf = nn.Sequential(
        nn.Conv2d(1, 8, 5, 2, 2), nn.ReLU(), nn.Conv2d(8, 16, 5, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(784, 10)
    ).eval()
    G, D = stand_in_gan("fmnist", 0)
    enc = Encoder(1, 28)
    with torch.no_grad():
        enc.train()(G(torch.rand(64, G.latent_dim) * 2 - 1))
    return clf, G, D, enc.eval()


@pytest.fixture(scope="module")
def images():
    """Eight smooth random images in [0, 1] (no data needed)."""
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 32, 32, generator=g), 5, 1)
    return x.clamp(0, 1), torch.randint(0, 10, (8,), generator=g)


def _grad(fn, x):
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(xr), xr)
    return g


def _invgan(parts, steps: int = 2, stand_in: str = "encoder") -> GANPriorDefense:
    _, G, D, enc = parts
    cfg = PAPER_CONFIGS["invgan"].with_(latent_steps=steps, bpda_stand_in=stand_in)
    return GANPriorDefense("invgan", G, D, enc, cfg, shape=SHAPE)


# ------------------------------------------------------------------------------------------ BPDA


def test_bpda_through_median_filter_differentiates_at_the_purified_image(parts, images):
    """BPDA against a defense that changes the image (median filter, not NoDefense): the model's output is the
    classifier on the purified image, and its input gradient is the classifier's gradient *at the purified
    image* (identity backward), not at x and not zero. Catches a BPDA backward that is zero or detached, a
    forward that skips the purification, and an attack model that ignores the defense (= gray-box)."""
    clf, *_ = parts
    x, y = images
    d = MedianFilter(3, shape=SHAPE)
    m = attack_model("bpda", clf, d)
    x_hat = d.purify(x)
    assert not torch.allclose(x_hat, x, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(m(x), clf(x_hat), atol=1e-6)
    g = _grad(lambda v: cross_entropy(m(v), y, reduction="sum"), x)
    want = _grad(lambda v: cross_entropy(clf(v), y, reduction="sum"), x_hat)
    at_x = _grad(lambda v: cross_entropy(clf(v), y, reduction="sum"), x)
    assert g.abs().sum() > 0 and torch.allclose(g, want, atol=1e-6)
    assert not torch.allclose(g, at_x, atol=1e-4)  # it is not the gray-box gradient
    # FGSM under BPDA steps along the sign of that gradient (where it is non-zero and the pixel is not clipped)
    x_adv = get_attack("fgsm", "fmnist", eps=0.1)(m, x, y)
    step = (x + 0.1 * want.sign()).clamp(0, 1)
    moved = want != 0
    assert moved.float().mean() > 0.5 and torch.allclose(x_adv[moved], step[moved], atol=1e-6)
    assert not torch.equal(x_adv, get_attack("fgsm", "fmnist", eps=0.1)(clf, x, y))


def test_invgan_bpda_backward_is_the_gradient_of_g_of_i(parts, images):
    """InvGAN's BPDA with ``bpda_stand_in=encoder`` (its default until 2026-12-04): forward = the projection,
    backward = the vector-Jacobian product of x ↦ G(I(x)) (clipped latent), computed here with autograd on G and
    the encoder directly. Catches a stand-in that is the identity or detached, and a forward that is not the
    purification."""
    clf, G, _, enc = parts
    x, y = images
    d = _invgan(parts)
    assert d.randomized is False  # one encoder-initialised restart: no EOT needed
    m = attack_model("bpda", clf, d, eot=4)
    assert isinstance(m, BPDAModel) and m.eot == 1
    x_hat = d.purify(x, seed=0)
    with torch.no_grad():
        assert torch.allclose(m(x), clf(x_hat), atol=1e-5)
    g = _grad(lambda v: cross_entropy(m(v), y, reduction="sum"), x)
    # by hand: the classifier's gradient at the purified image, pulled back through G(I(x))
    gh = _grad(lambda v: cross_entropy(clf(v), y, reduction="sum"), x_hat)
    xr = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(G(enc(xr).clamp(-1, 1)), xr, grad_outputs=gh)
    assert want.abs().sum() > 0 and torch.allclose(g, want, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(g, gh, atol=1e-4)  # not the identity backward
    # the defense's own bpda hook on an arbitrary upstream gradient
    w = torch.randn_like(x)
    xr = x.clone().requires_grad_(True)
    out = d.bpda(xr, seed=0)
    assert torch.allclose(out, x_hat, atol=1e-6)
    (out * w).sum().backward()
    xr2 = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(G(enc(xr2).clamp(-1, 1)), xr2, grad_outputs=w)
    assert torch.allclose(xr.grad, ref, atol=1e-5, rtol=1e-4) and not torch.allclose(xr.grad, w, atol=1e-3)


def test_invgan_bpda_stand_in_identity_is_the_paper_default(parts, images):
    """InvGAN's paper config hands BPDA the identity (the paper's "e.g., identity function", its code's
    straight-through attack): the same forward (the projection), and the classifier's gradient at the purified
    image handed to the input unchanged, not pulled back through G(I(x)). The option is in the store key of
    InvGAN's config (its cells of the G(I(x)) backward are not reused), out of the others' (keys unchanged), and
    other values are refused; auto keeps the rule of the cells stored before it (G(I(x)) with an encoder)."""
    clf, G, D, enc = parts
    x, y = images
    cfg = PAPER_CONFIGS["invgan"].with_(latent_steps=2)
    assert cfg.bpda_stand_in == "identity"
    d = GANPriorDefense("invgan", G, D, enc, cfg, shape=SHAPE)
    m = attack_model("bpda", clf, d)
    x_hat = d.purify(x, seed=0)
    with torch.no_grad():
        assert torch.allclose(m(x), clf(x_hat), atol=1e-5)
    g = _grad(lambda v: cross_entropy(m(v), y, reduction="sum"), x)
    gh = _grad(lambda v: cross_entropy(clf(v), y, reduction="sum"), x_hat)
    assert gh.abs().sum() > 0 and torch.allclose(g, gh, atol=1e-6)
    encoder_grad = _grad(lambda v: cross_entropy(attack_model("bpda", clf, _invgan(parts))(v), y, reduction="sum"), x)
    assert not torch.allclose(g, encoder_grad, atol=1e-4)  # not the G(I(x)) backward
    assert all("bpda_stand_in" not in PAPER_CONFIGS[n].to_dict() for n in ("defensegan", "cowboy", "mimicgan"))
    assert cfg.to_dict()["bpda_stand_in"] == "identity"
    auto = attack_model("bpda", clf, _invgan(parts, stand_in="auto"))
    assert torch.allclose(_grad(lambda v: cross_entropy(auto(v), y, reduction="sum"), x), encoder_grad, atol=1e-6)
    with pytest.raises(DefbenchError, match="bpda_stand_in"):
        PAPER_CONFIGS["invgan"].with_(bpda_stand_in="reparam")
    with pytest.raises(DefbenchError, match="needs an encoder"):
        GANPriorDefense("defensegan", G, D, None, PAPER_CONFIGS["defensegan"].with_(bpda_stand_in="encoder"))


# ------------------------------------------------------------------------------------------ reparameterisation


def test_reparam_model_clips_the_encoders_guess_to_the_latent_box():
    """f(G(clip(I(x)))): the encoder's output is not squashed and leaves [-1, 1] (G was trained on the box)."""
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    G = nn.Linear(2, 4)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        enc[1].weight.mul_(10)
    x = torch.rand(3, 1, 2, 2)
    with torch.no_grad():
        assert enc(x).abs().max() > 1.5
        got = ReparamModel(clf, G, enc)(x)
        assert torch.allclose(got, clf(G(enc(x).clamp(-1, 1))))
        assert not torch.allclose(got, clf(G(enc(x))), atol=1e-3)


def test_reparam_gradients_flow_through_encoder_and_generator(parts, images):
    """The reparameterisation attack (InvGAN §3.4) differentiates f(G(I(x))): its output is that, and its input
    gradient matches central finite differences of that function (in float64) along random directions. Catches
    a reparam model that detaches I(x) or G's output (zero / missing gradient), skips the encoder, or uses the
    defense's purification instead."""
    clf, G, D, enc = parts
    x, y = images
    d = _invgan(parts)
    m = attack_model("reparam", clf, d)
    assert isinstance(m, ReparamModel)
    with torch.no_grad():
        assert torch.allclose(m(x), clf(G(enc(x).clamp(-1, 1))), atol=1e-6)
    m64 = copy.deepcopy(m).double()
    x64 = x.double()

    def loss(v):
        return cross_entropy(m64(v), y, reduction="sum")

    g = _grad(loss, x64)
    assert g.abs().sum() > 0
    gen = torch.Generator().manual_seed(2)
    h = 1e-7  # float64; at 1e-4 the ReLU kinks crossed along u still bias the difference by ~1%
    for _ in range(3):
        u = torch.randn(x64.shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            fd = (loss(x64 + h * u) - loss(x64 - h * u)) / (2 * h)
        assert float((g * u).sum()) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)
    # FGSM under reparam steps along the sign of that gradient
    g32 = _grad(lambda v: cross_entropy(m(v), y), x)
    x_adv = get_attack("fgsm", "fmnist", eps=0.3)(m, x, y)
    moved = g32 != 0
    assert moved.float().mean() > 0.5
    assert torch.allclose(x_adv[moved], (x + 0.3 * g32.sign()).clamp(0, 1)[moved], atol=1e-6)
    # a defense without an encoder is attacked through the dataset's G and I, handed in by the runner
    dg = GANPriorDefense("defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1), shape=SHAPE)
    with pytest.raises(DefbenchError, match="reparam needs"):
        attack_model("reparam", clf, dg)
    m2 = attack_model("reparam", clf, dg, G=G, encoder=enc)
    assert torch.allclose(_grad(lambda v: cross_entropy(m2(v), y), x), g32, atol=1e-6)


# ------------------------------------------------------------------------------------------ gan-aware


class _Recorder:
    """Wraps an attack: remembers the model and input it was handed and what it returned."""

    def __init__(self, attack, identity: bool = False):
        self.attack, self.identity, self.calls = attack, identity, []

    def __getattr__(self, name):
        return getattr(self.attack, name)

    def __call__(self, model, u, y):
        out = u.clone() if self.identity else self.attack(model, u, y)
        self.calls.append((model, u.clone(), out.clone()))
        return out


def test_gan_aware_starts_at_the_projection_and_returns_to_the_eps_ball(parts, images):
    """gan-aware hands the library attack f ∘ G on u = (z* + 1) / 2, z* the defense's own projection of x (same
    seed), and maps its answer back as x + clip(G(2u − 1) − x, ±ε). With an attack that returns its input the
    result is x pulled towards G(z*) by at most ε. Catches a start that is not the projection (or not mapped
    to [0, 1]), a latent model that is not f ∘ G, and a result outside the ε-ball or equal to x."""
    clf, G, D, _ = parts
    x, y = images
    d = GANPriorDefense(
        "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=3, restarts=1), shape=SHAPE
    )
    rec = _Recorder(get_attack("pgd", "fmnist", eps=0.1, steps=2), identity=True)
    out = gan_aware(rec, clf, d, x, y, seed=5)
    (model, u, _), proj = rec.calls[0], d.project(x, seed=5)
    assert isinstance(model, LatentModel) and u.shape == (8, 1, 1, G.latent_dim)
    assert torch.allclose(u.flatten(1), ((proj.z + 1) / 2).clamp(0, 1), atol=1e-6)
    with torch.no_grad():
        g = G(proj.z)
        assert torch.allclose(model(u), clf(g), atol=1e-5)
    want = (x + (g - x).clamp(-0.1, 0.1)).clamp(0, 1)
    assert ((g - x).abs() > 0.1).float().mean() > 0.1  # the ball binds: the check below sees the pull-back
    assert torch.allclose(out, want, atol=1e-5) and (out - x).abs().max() <= 0.1 + 1e-6


def test_gan_aware_pgd_ascends_the_loss_through_the_generator(parts, images):
    """A real PGD through the latent (ε = 0.3 on u) raises the classifier's loss on G(z) for every image, from
    the projection's own predictions as labels, moving u to the edge of its ε-box; the image it returns differs
    from x and stays in the ε-ball. Catches a latent attack that gets no gradient through G (it cannot move or
    raises). (The stand-in G varies too little for decisions to flip, so the loss is what is checked.)"""
    clf, G, D, _ = parts
    x, _ = images
    d = GANPriorDefense(
        "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=3, restarts=1), shape=SHAPE
    )
    with torch.no_grad():
        y0 = clf(G(d.project(x, seed=5).z)).argmax(1)
    rec = _Recorder(get_attack("pgd", "fmnist", eps=0.3, steps=5))
    torch.manual_seed(0)
    out = gan_aware(rec, clf, d, x, y0, seed=5)
    model, u, u_adv = rec.calls[0]
    with torch.no_grad():
        before = cross_entropy(model(u), y0, reduction="none")
        after = cross_entropy(model(u_adv), y0, reduction="none")
    assert (after > before + 1e-4).all(), (before, after)
    assert (u_adv - u).abs().max() == pytest.approx(0.3, abs=1e-5)
    assert (out - x).abs().max() <= 0.3 + 1e-6 and not torch.allclose(out, x, atol=1e-3)


class _InPlaceLatent(Attack):
    """Writes a 3 ε step into the latent it is handed and returns it: compared with itself, it is inside ε."""

    name = "inplace-latent"

    def run(self, model, u, y):
        return u.add_(torch.where(u > 0.5, -3 * self.eps, 3 * self.eps))


def _defensegan(parts) -> GANPriorDefense:
    _, G, D, _ = parts
    return GANPriorDefense(
        "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=2, restarts=1), shape=SHAPE
    )


def test_gan_aware_checks_the_latent_against_its_own_copy(parts, images):
    """gan-aware checks the attack's latent against the start it kept, not against what the attack may have
    written into its input: a 3 ε step written in place is refused; PGD passes silently."""
    clf, *_ = parts
    x, y = images
    with pytest.raises(DefbenchError, match=r"attack 'inplace-latent' returned perturbations beyond its budget"):
        gan_aware(_InPlaceLatent("fmnist", eps=0.1), clf, _defensegan(parts), x, y, seed=5)
    pgd = get_attack("pgd", "fmnist", eps=0.1, steps=2)
    out = gan_aware(pgd, clf, _defensegan(parts), x, y, seed=5)
    assert pgd.violations == [] and torch.isfinite(out).all() and (out - x).abs().max() <= 0.1 + 1e-6


class _BadImages(nn.Module):
    """G, except that outside autograd (the image gan-aware scores) image 0 gets a NaN pixel or a pixel of 1.5."""

    def __init__(self, G, value: float):
        super().__init__()
        self.G, self.latent_dim, self.value = G, G.latent_dim, value

    def forward(self, z):
        out = self.G(z)
        if not torch.is_grad_enabled():
            out = out.clone()
            out[0, 0, 0, 0] = self.value
        return out


@pytest.mark.parametrize("value, what", [(float("nan"), "NaN or infinite values in 1 of 8"), (1.5, "outside [0, 1]")])
def test_gan_aware_checks_the_generated_image(value, what, parts, images):
    """The image gan-aware scores is G(u_adv), not the latent the attack returned: it must be finite and in [0, 1]
    too. Refused naming the attack and the threat (not later, blamed on the defense's purification); under
    output_check='warn' the pixel is projected back (NaN -> the clean pixel) and the violation recorded."""
    clf, *_ = parts
    x, y = images
    d = _defensegan(parts)
    d.G = _BadImages(d.G, value)
    with pytest.raises(DefbenchError, match=r"^attack 'fgsm' under threat gan-aware: its latent's image G\(u\) .*"
                       + re.escape(what)):  # fmt: skip
        gan_aware(get_attack("fgsm", "fmnist", eps=0.1), clf, d, x, y, seed=5)
    atk = get_attack("fgsm", "fmnist", eps=0.1, output_check="warn")
    out = gan_aware(atk, clf, d, x, y, seed=5)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 and (out - x).abs().max() <= 0.1 + 1e-6
    assert [v["check"] for v in atk.last_violations] == ["finite" if value != value else "range"]
    assert atk.violations == atk.last_violations
