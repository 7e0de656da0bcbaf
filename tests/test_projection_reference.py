"""The projection engine against independent computations of what the papers define: each loss and objective
term by its formula, each start by its draw, and MimicGAN's Algorithm 1 (T outer iterations of T1 surrogate steps
then T2 latent steps, one persistent optimiser each) written out as a plain loop. Each test fails on a one-line
change of the engine that moves a defense's output but left the older tests passing (a mutation audit,
2026-12-06: ℓ1 / ℓ2 as a mean or a square, the encoder's start not clipped or rescaled twice, the mean start
taken from one draw, the surrogate's optimiser rebuilt each outer iteration or not TF's, the Cowboy term divided
by the batch, half of the identity loss, a latent draw from U(0, 1), the default seed)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense, seed_dependent
from defbench.defenses.priors import Encoder, MimicSurrogate, sample_latent
from defbench.defenses.projection import ProjectionEngine, per_image_loss


def test_per_image_losses_are_their_definitions():
    d = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    flat = d.flatten(1)
    assert torch.allclose(per_image_loss("mse", d), (flat**2).sum(1) / flat.shape[1])
    assert torch.allclose(per_image_loss("l2", d), torch.linalg.vector_norm(flat, dim=1))  # InvGAN Eq. 6's ‖·‖₂
    assert torch.allclose(per_image_loss("l1", d), torch.linalg.vector_norm(flat, ord=1, dim=1))  # MimicGAN's ‖·‖₁


def test_latents_are_uniform_on_the_whole_box():
    z = sample_latent(4096, 100, torch.Generator().manual_seed(0))
    assert z.min() < -0.999 and z.max() > 0.999 and z.abs().max() <= 1
    assert abs(z.mean().item()) < 0.01
    assert abs((z < 0).float().mean().item() - 0.5) < 0.01


def _wide_encoder(scale: float = 30.0) -> Encoder:
    """An untrained encoder whose guesses leave the latent box [-1, 1] (a trained one does at its edges)."""
    torch.manual_seed(0)
    enc = Encoder(1, 28).eval()
    with torch.no_grad():
        enc.fc.weight.mul_(scale)
    return enc


def test_encoder_start_is_the_clipped_guess_and_extra_restarts_jitter_only_the_copies(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    enc = _wide_encoder()
    with torch.no_grad():
        guess = enc(x)
    assert guess.abs().max() > 1.5  # the test needs guesses outside the box
    engine = ProjectionEngine(G, D, enc)
    cfg = PAPER_CONFIGS["invgan"]
    z = engine.initial_latents(x, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(z[:, 0], guess.clamp(-1, 1))  # I(x) on the images as given, clipped to the box
    z3 = engine.initial_latents(x, cfg.with_(restarts=3), torch.Generator().manual_seed(0))
    assert torch.equal(z3[:, 0], guess.clamp(-1, 1))  # the encoder's own guess stays one of the restarts
    assert not torch.equal(z3[:, 1], z3[:, 0]) and z3.abs().max() <= 1
    # the projection starts there: no latent step leaves G(clip(I(x)))
    out = engine.project(x, cfg.with_(latent_steps=0), seed=0)
    with torch.no_grad():
        assert torch.allclose(out.x_hat, G(guess.clamp(-1, 1)))
        assert not torch.allclose(out.x_hat, G(guess), atol=1e-3)


def test_reparameterisation_is_g_of_the_clipped_guess(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    enc = _wide_encoder()
    d = GANPriorDefense("invgan", G, D, enc, shape=tuple(x.shape[1:]))
    with torch.no_grad():
        guess = enc(x)
        assert torch.allclose(d.reparameterize(x), G(guess.clamp(-1, 1)))
        assert not torch.allclose(d.reparameterize(x), G(guess), atol=1e-3)


def test_mean_start_is_the_mean_of_the_prior_draws(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(mean_samples=64)
    z = ProjectionEngine(G, D).initial_latents(x, cfg, torch.Generator().manual_seed(3))
    draws = torch.rand(64, G.latent_dim, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert torch.allclose(z, draws.mean(0).expand_as(z), atol=1e-6)


def test_extra_encoder_restarts_make_invgan_randomized():
    invgan = PAPER_CONFIGS["invgan"]
    assert not seed_dependent(invgan)
    assert all(seed_dependent(invgan.with_(restarts=r)) for r in (2, 3))


def test_purify_without_a_seed_uses_the_defenses_own(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["defensegan"].with_(latent_steps=3, restarts=2)
    d = GANPriorDefense("defensegan", G, D, cfg=cfg, shape=tuple(x.shape[1:]), seed=5)
    own = d.purify(x[:4])
    assert torch.equal(own, d.purify(x[:4], seed=5))
    assert not torch.equal(own, d.purify(x[:4], seed=0))


def test_cowboys_discriminator_term_is_lambda_over_one_images_pixels(random_gan, fmnist_images):
    """The term alone (the objective less its fidelity part), so its size is checked, not lost in the rounding of
    a sum it is a millionth of: λ_adv / (C·H·W) · log(1 − D(G(z))) per latent, whatever the batch."""
    G, D = (copy.deepcopy(m).double() for m in random_gan)  # float64: the difference keeps its digits
    x = fmnist_images[0][:8].double()
    cfg = PAPER_CONFIGS["cowboy"]
    z = sample_latent(8, G.latent_dim, torch.Generator().manual_seed(1)).double()
    engine = ProjectionEngine(G, D)
    obj, _ = engine._terms(x, z, cfg, None)
    fid, _ = engine._terms(x, z, cfg.with_(lambda_adv=0.0), None)
    with torch.no_grad():
        want = cfg.lambda_adv / x[0].numel() * F.logsigmoid(-D(G(z))).flatten()
    assert torch.allclose((obj - fid).detach(), want, rtol=1e-6, atol=0)


def test_identity_loss_has_both_of_its_terms(random_gan, fmnist_images):
    """MimicGAN's λ_I (‖y − G(z)‖₁ + ‖f̂(G(z)) − G(z)‖₁) beside the ℓ1 mimicking loss, through a surrogate that is
    not the identity (so the two halves differ)."""
    G, D = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(lambda_adv=0.0, lambda_identity=0.1)
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        f.w.fill_(0.5)
    z = sample_latent(4, G.latent_dim, torch.Generator().manual_seed(1))
    obj, _ = ProjectionEngine(G, D)._terms(x[:4], z, cfg, f)
    with torch.no_grad():
        g = G(z)
        est = f(g)
        l1 = lambda a: a.flatten(1).abs().sum(1)  # noqa: E731
        want = l1(x[:4] - est) + 0.1 * (l1(x[:4] - g) + l1(est - g))
    assert torch.allclose(obj.detach(), want, rtol=1e-5)


def _tf_rmsprop_step(p: torch.Tensor, grad: torch.Tensor, ms: torch.Tensor, lr: float) -> None:
    """tf.train.RMSPropOptimizer (decay 0.9, ε 1e-10, momentum 0; its accumulator starts at 1), by hand."""
    ms.mul_(0.9).add_(0.1 * grad * grad)
    p.sub_(lr * grad / (ms + 1e-10).sqrt())


def _algorithm_1(G, D, y, cfg, seed: int) -> torch.Tensor:
    """MimicGAN's Algorithm 1 as a plain loop: z0 the mean of the prior draws; T times: T1 RMSProp steps on f̂'s
    parameters with z fixed, then T2 RMSProp steps on z with f̂ fixed, z clipped to the box after each; one optimiser
    state per parameter set for the whole run. The objective: ‖y − f̂(G(z))‖₁ + λ_adv log(1 − D(G(z))), summed."""
    gen = torch.Generator().manual_seed(seed)
    n = y.shape[0]
    z = (torch.rand(cfg.mean_samples, G.latent_dim, generator=gen) * 2 - 1).mean(0).repeat(n, 1).clamp(-1, 1)
    with torch.random.fork_rng(devices=[]):
        f = MimicSurrogate(y.shape[1], y.shape[-1], generator=gen, activation=cfg.surrogate_activation)
    params = list(f.parameters())

    def objective(z_):
        g = G(z_)
        return (y - f(g)).abs().sum() + cfg.lambda_adv * F.logsigmoid(-D(g)).sum()

    tf = cfg.optimizer == "rmsprop-tf"
    f_opt = None if tf else torch.optim.RMSprop(params, lr=cfg.surrogate_lr)
    z_opt = None if tf else torch.optim.RMSprop([z.requires_grad_(True)], lr=cfg.lr)
    f_ms = [torch.ones_like(p) for p in params]
    z_ms = torch.ones_like(z)
    for _ in range(cfg.outer_iters):
        for _ in range(cfg.surrogate_steps):
            grads = torch.autograd.grad(objective(z.detach()), params)
            if tf:
                with torch.no_grad():
                    for p, g_, ms in zip(params, grads, f_ms, strict=True):
                        _tf_rmsprop_step(p, g_, ms, cfg.surrogate_lr)
            else:
                for p, g_ in zip(params, grads, strict=True):
                    p.grad = g_
                f_opt.step()
        for _ in range(cfg.latent_steps):
            z_ = z.detach().requires_grad_(True) if tf else z
            (grad,) = torch.autograd.grad(objective(z_), z_)
            with torch.no_grad():
                if tf:
                    _tf_rmsprop_step(z, grad, z_ms, cfg.lr)
                else:
                    z.grad = grad
                    z_opt.step()
                z.clamp_(-1, 1)
    with torch.no_grad():
        return G(z.detach())


@pytest.mark.parametrize("optimizer", ["rmsprop", "rmsprop-tf"])
def test_mimicgan_is_algorithm_1(random_gan, fmnist_images, optimizer):
    G, D = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(
        outer_iters=3, surrogate_steps=4, latent_steps=4, mean_samples=50, optimizer=optimizer
    )
    want = _algorithm_1(G, D, x[:8], cfg, seed=7)
    got = ProjectionEngine(G, D).project(x[:8], cfg, seed=7).x_hat
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max().item()
    assert not torch.allclose(got, x[:8], atol=1e-2)  # the loop moved somewhere
