"""The one projection engine: it recovers G's own samples, its outputs lie in the range of G, chunking does
not change the answer, and MimicGAN with a frozen identity surrogate is DefenseGAN with R = 1."""

import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import sample_latent
from defbench.defenses.projection import ProjectionConfig, ProjectionEngine


def test_recovers_generators_own_samples(random_gan):
    G, _ = random_gan
    z_true = sample_latent(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = G(z_true)
    cfg = ProjectionConfig(latent_steps=150, restarts=4, optimizer="adam", lr=0.05, loss="mse")
    proj = ProjectionEngine(G).project(y, cfg, seed=0)
    # a random latent's image is far; the projection nearly reproduces the sample
    with torch.no_grad():
        far = (G(sample_latent(8, generator=torch.Generator().manual_seed(2))) - y).pow(2).flatten(1).mean(1)
    assert proj.error.max() < 0.05 * far.min()
    assert proj.error.mean() < 1e-3


def test_keeps_each_images_best_restart(random_gan):
    """Of R restarts each image keeps the latent with the least reconstruction error (DefenseGAN's rule): with
    no latent steps the restarts are the seeded starting latents, so the kept error, latent and image can be
    recomputed by hand. Keeping the worst or the first restart fails here; recovering G's own samples does not
    tell them apart, as every restart gets there."""
    G, _ = random_gan
    y = G(sample_latent(6, generator=torch.Generator().manual_seed(1))).detach()
    cfg = ProjectionConfig(latent_steps=0, restarts=5, init="random", loss="mse")
    engine = ProjectionEngine(G)
    proj = engine.project(y, cfg, seed=3)
    z0 = engine.initial_latents(y, cfg, torch.Generator().manual_seed(3))  # (6, 5, d), as project draws them
    with torch.no_grad():
        err = (G(z0.flatten(0, 1)) - y.repeat_interleave(5, 0)).pow(2).flatten(1).mean(1).view(6, 5)
        best = err.argmin(1)
        assert (best != 0).any() and (err.max(1).values > 1.1 * err.min(1).values).all()  # the choice matters
        assert torch.allclose(proj.error, err.min(1).values)
        assert torch.equal(proj.z, z0[torch.arange(6), best])
        assert torch.allclose(proj.x_hat, G(proj.z))


def test_outputs_lie_in_range_of_G(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    for name in ("defensegan", "mimicgan"):
        cfg = PAPER_CONFIGS[name].with_(
            latent_steps=3,
            restarts=1 if name == "mimicgan" else 2,
            outer_iters=2 if name == "mimicgan" else 1,
            surrogate_steps=2 if name == "mimicgan" else 0,
        )
        d = GANPriorDefense(name, G, D, cfg=cfg, shape=(1, 28, 28))
        proj = d.project(x[:6], seed=0)
        assert proj.z.abs().max() <= 1.0
        with torch.no_grad():
            assert torch.allclose(proj.x_hat, G(proj.z), atol=1e-6)
        assert torch.allclose(d.purify(x[:6], seed=0), proj.x_hat.clamp(0, 1), atol=1e-6)


def test_chunking_does_not_change_the_answer(random_gan, fmnist_images):
    G, _ = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["defensegan"].with_(latent_steps=5, restarts=3)
    eng = ProjectionEngine(G)
    a = eng.project(x[:8], cfg.with_(chunk_size=3), seed=4)  # one image (3 restarts) per chunk
    b = eng.project(x[:8], cfg.with_(chunk_size=24), seed=4)  # all at once
    assert torch.allclose(a.x_hat, b.x_hat, atol=1e-5) and torch.allclose(a.z, b.z, atol=1e-5)


def test_mimicgan_with_identity_surrogate_is_defensegan_r1(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    mimic = PAPER_CONFIGS["mimicgan"].with_(outer_iters=3, latent_steps=4, surrogate="identity")
    plain = ProjectionConfig(
        outer_iters=1,
        latent_steps=12,
        restarts=1,
        optimizer="rmsprop",
        lr=8e-2,
        loss="l1",
        init="mean",
        lambda_adv=1e-4,
    )
    eng = ProjectionEngine(G, D)
    a, b = eng.project(x[:8], mimic, seed=7), eng.project(x[:8], plain, seed=7)
    assert torch.allclose(a.x_hat, b.x_hat, atol=1e-6)
    # and the learned surrogate really changes the result (the test can fail)
    c = eng.project(x[:8], PAPER_CONFIGS["mimicgan"].with_(outer_iters=3, latent_steps=4, surrogate_steps=4), seed=7)
    assert not torch.allclose(a.x_hat, c.x_hat, atol=1e-4)


def test_mimicgan_is_batch_coupled(random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    d = GANPriorDefense(
        "mimicgan",
        G,
        D,
        cfg=PAPER_CONFIGS["mimicgan"].with_(outer_iters=2, latent_steps=3, surrogate_steps=3),
        shape=(1, 28, 28),
    )
    assert d.batch_coupled and d.randomized  # its surrogate and mean-latent starts are seeded draws
    alone = d.purify(x[:1], seed=0)
    inside = d.purify(x[:8], seed=0)[:1]
    assert not torch.allclose(alone, inside, atol=1e-6)


def test_bad_config_values():
    with pytest.raises(DefbenchError, match="choose one of"):
        ProjectionConfig(loss="l3")
    with pytest.raises(DefbenchError, match="restarts=1"):
        ProjectionConfig(surrogate="mimic", restarts=2)


def test_no_hidden_state_between_calls(random_gan, fmnist_images):
    """purify has no call counter: the same batch and seed (None: the defense's own) give the same output on
    every call, for randomized defenses too; fresh draws come from fresh seeds (issue 13, item 2)."""
    G, D = random_gan
    x, _ = fmnist_images
    mimic = GANPriorDefense(
        "mimicgan",
        G,
        D,
        cfg=PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, latent_steps=2, surrogate_steps=2),
        shape=(1, 28, 28),
    )
    assert torch.equal(mimic.purify(x[:4]), mimic.purify(x[:4]))
    dgan = GANPriorDefense(
        "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=2, restarts=2), shape=(1, 28, 28)
    )
    assert dgan.randomized and torch.equal(dgan.purify(x[:4]), dgan.purify(x[:4]))
    assert not torch.equal(dgan.purify(x[:4], seed=1), dgan.purify(x[:4], seed=2))


def test_tf_rmsprop_matches_tensorflow_1_update():
    """optimizer=rmsprop-tf: ms starts at 1, decay 0.9 (TF 1 defaults); PyTorch's starts at 0 (step ≈ 10·lr)."""
    from defbench.defenses.projection import tf_rmsprop

    z0, g = torch.tensor([0.5, -0.2]), torch.tensor([3.0, -0.01])
    p = torch.nn.Parameter(z0.clone())
    opt = tf_rmsprop([p], 0.08)
    ms = torch.ones(2)
    for _ in range(3):  # the TF 1 recursion by hand: ms = 0.9 ms + 0.1 g²; z -= lr g / sqrt(ms)
        p.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g**2
        z0 = z0 - 0.08 * g / ms.sqrt()
    assert torch.allclose(p.data, z0, atol=1e-6)
    q = torch.nn.Parameter(torch.tensor([0.5, -0.2]))
    torch_opt = torch.optim.RMSprop([q], lr=0.08)
    q.grad = g.clone()
    torch_opt.step()
    assert (q.data - torch.tensor([0.5, -0.2])).abs().min() > 0.7  # PyTorch's first step: ~0.8 on each


def test_signed_surrogate_range(random_gan):
    """surrogate_range=signed: f̂ sees [-1, 1] images as in the paper's code, so the negative (1 − x in [0, 1])
    is f̂ with mask 0 and W = −1 (in [0, 1] that f̂ gives −x); identity stays identity; the default range
    keeps the store key of configs written before the field existed."""
    from defbench.defenses.priors import MimicSurrogate

    G, _ = random_gan
    z = sample_latent(4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        g = G(z)
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    eng = ProjectionEngine(G)
    base = PAPER_CONFIGS["mimicgan"].with_(lambda_adv=0.0)  # fidelity term only
    signed = base.with_(surrogate_range="signed")
    with torch.no_grad():
        _, err_id = eng._terms(g, z, signed, f)
        f.w.fill_(-1.0)
        _, err_neg = eng._terms(1 - g, z, signed, f)
        _, err_unit = eng._terms(1 - g, z, base, f)
    assert err_id.max() < 1e-12 and err_neg.max() < 1e-12
    assert err_unit.min() > 0.1  # the [0, 1] surrogate would need its conv path to add the 1
    assert "surrogate_range" not in base.to_dict() and signed.to_dict()["surrogate_range"] == "signed"
    with pytest.raises(DefbenchError, match="choose one of"):
        ProjectionConfig(surrogate_range="half")


def test_random_surrogate_init(random_gan, fmnist_images):
    """surrogate_init=random draws W and the mask at random (Glorot uniform, TF 1's default: W in ±√3, the
    28 x 28 x 1 mask in ±0.086) from the projection's seed, after the latents, so the latent start is the
    default's; the default (near-identity) keeps the store key of configs written before the field."""
    G, _ = random_gan
    x, _ = fmnist_images
    base = PAPER_CONFIGS["mimicgan"].with_(outer_iters=0, lambda_adv=0.0)  # no step: the start itself
    rand = base.with_(surrogate_init="random")
    eng = ProjectionEngine(G)
    p0, p1, p2 = eng.project(x[:4], base, seed=3), eng.project(x[:4], rand, seed=3), eng.project(x[:4], rand, seed=4)
    assert torch.equal(p0.x_hat, p1.x_hat)  # the latents' draw is untouched
    assert p0.surrogate.w.item() == 1.0 and p0.surrogate.mask.abs().max() < 0.1
    f1, f2 = p1.surrogate, p2.surrogate
    assert f1.w.item() != 1.0 and abs(f1.w.item()) <= 3**0.5 and f1.mask.abs().max() <= (6 / 812) ** 0.5
    assert f1.mask.std() > 0.04  # a uniform draw over ±0.086, not the near-identity start's N(0, 1e-2)
    assert f1.w.item() != f2.w.item()  # another seed, another draw
    assert torch.equal(f1.mask, eng.project(x[:4], rand, seed=3).surrogate.mask)  # the same seed, the same draw
    assert "surrogate_init" not in base.to_dict() and rand.to_dict()["surrogate_init"] == "random"
    with pytest.raises(DefbenchError, match="choose one of"):
        ProjectionConfig(surrogate_init="zeros")


def test_dcgan_conv_surrogate_init(random_gan, fmnist_images):
    """surrogate_init=dcgan-convs: the near-identity start (W = 1, the same small mask) with both convolutions drawn
    as DCGAN's TensorFlow conv2d does: N(0, 0.02²) truncated at two std, zero biases; PyTorch's default draws
    conv2 uniform in ±0.05 with a random bias."""
    G, _ = random_gan
    x, _ = fmnist_images
    base = PAPER_CONFIGS["mimicgan"].with_(outer_iters=0, lambda_adv=0.0)
    eng = ProjectionEngine(G)
    p0, p1 = eng.project(x[:4], base, seed=3), eng.project(x[:4], base.with_(surrogate_init="dcgan-convs"), seed=3)
    f0, f1 = p0.surrogate, p1.surrogate
    assert torch.equal(p0.x_hat, p1.x_hat) and f1.w.item() == 1.0 and torch.equal(f0.mask, f1.mask)
    for conv in (f1.conv1, f1.conv2):
        assert conv.weight.abs().max() <= 0.04 and 0.015 < conv.weight.std() < 0.02 and not conv.bias.any()
    assert f0.conv2.bias.abs().item() > 0 and f0.conv2.weight.std() > 0.025  # the default's draw is another


def test_cowboy_weighs_the_discriminator_against_the_sum_of_squares(random_gan, fmnist_images):
    """Cowboy's objective is the papers' ‖x − G(z)‖² + λ_adv log(1 − D(G(z))) (per-image sum, λ_adv = 1e-3)
    divided by the pixel count, so its fidelity term is DefenseGAN's mean; λ_adv against the mean would make
    the discriminator term 784 times stronger on 28 x 28 images."""

    G, D = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["cowboy"]
    assert cfg.adv_against_sum and cfg.lambda_adv == 1e-3
    z = torch.rand(4, G.latent_dim) * 2 - 1
    obj, _ = ProjectionEngine(G, D)._terms(x[:4], z, cfg, None)
    with torch.no_grad():
        g = G(z)
        sse = (x[:4] - g).flatten(1).pow(2).sum(1)
        log1m_d = torch.log1p(-torch.sigmoid(D(g))).flatten()
        want = (sse + 1e-3 * log1m_d) / x[0].numel()
    assert torch.allclose(obj.detach(), want, rtol=1e-5, atol=1e-7)
    mean_read, _ = ProjectionEngine(G, D)._terms(x[:4], z, cfg.with_(adv_against_sum=False), None)
    assert not torch.allclose(mean_read.detach(), want, rtol=1e-3)
    with pytest.raises(DefbenchError, match="loss=mse only"):
        cfg.with_(loss="l1")


def test_tanh_surrogate_keeps_the_conv_path_open():
    """surrogate_activation=tanh: TanH after f̂'s second conv instead of ReLU. With the conv weights at 0 and
    conv2's bias at −0.5 the ReLU path is closed (f̂ = W·x, open share 0) and the TanH path gives tanh(−0.5)·mask
    + W·x, open everywhere; the default keeps the store key; an unknown activation is refused."""
    from defbench.defenses.priors import MimicSurrogate

    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = {}
    for act in ("relu", "tanh"):
        f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0), activation=act)
        with torch.no_grad():
            for conv in (f.conv1, f.conv2):
                conv.weight.zero_(), conv.bias.zero_()
            f.conv2.bias.fill_(-0.5)
            out[act] = (f(x), f.open_share(x), f.mask.clone(), f.w.item())
    (relu, relu_open, mask, w), (tanh, tanh_open, _, _) = out["relu"], out["tanh"]
    assert torch.equal(relu, w * x) and relu_open == 0.0
    assert torch.allclose(tanh, torch.tanh(torch.tensor(-0.5)) * mask + w * x) and tanh_open == 1.0
    base = PAPER_CONFIGS["mimicgan"]
    assert "surrogate_activation" not in base.to_dict()
    assert base.with_(surrogate_activation="tanh").to_dict()["surrogate_activation"] == "tanh"
    with pytest.raises(DefbenchError, match="choose one of"):
        ProjectionConfig(surrogate_activation="sigmoid")
    with pytest.raises(DefbenchError, match="relu or tanh"):
        MimicSurrogate(1, 28, activation="sigmoid")


def test_projection_builds_the_surrogate_with_its_activation(random_gan, fmnist_images):
    G, _ = random_gan
    x, _ = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, surrogate_steps=2, latent_steps=1, lambda_adv=0.0)
    eng = ProjectionEngine(G)
    relu, tanh = eng.project(x[:4], cfg, seed=0), eng.project(x[:4], cfg.with_(surrogate_activation="tanh"), seed=0)
    assert relu.surrogate.activation == "relu" and tanh.surrogate.activation == "tanh"
    assert not torch.equal(relu.x_hat, tanh.x_hat)
