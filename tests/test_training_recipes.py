"""What the training recipes compute, on a few dozen synthetic images in seconds (tests/test_training.py trains on
real Fashion-MNIST for quality): the presets are docs/MODELS.md's numbers, the optimisers get the recipe's
hyperparameters, each loss sees the logits and targets its formula names, the epoch kept is the best one's
snapshot, and the augmentation is a reflect-padded crop plus a horizontal flip."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from defbench.classifiers import train as ctrain
from defbench.datasets import ImageData
from defbench.defenses import train_prior as tp


def _data(n: int, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return ImageData("fmnist", "train", torch.arange(n) % 10, "synthetic", images=images)


class _RecordingData(ImageData):
    """Records the (indices, seed) of every batches() call."""

    def batches(self, batch_size, shuffle=False, seed=0, indices=None):
        self.calls.append((None if indices is None else torch.as_tensor(indices).clone(), seed))
        return super().batches(batch_size, shuffle=shuffle, seed=seed, indices=indices)


def _recording(n: int) -> _RecordingData:
    d = _data(n)
    r = _RecordingData(d.name, d.split, d.labels, d.source, images=d.images)
    r.calls = []
    return r


def _spy_optimizers(monkeypatch) -> list:
    """Replace torch.optim.Adam / SGD by subclasses that record (class name, kwargs, instance)."""
    made = []
    for name in ("Adam", "SGD"):
        base = getattr(torch.optim, name)

        def init(self, params, _base=base, _name=name, **kw):
            _base.__init__(self, params, **kw)
            self.lrs = []  # the rate of every step taken
            made.append((_name, kw, self))

        def step(self, *a, _base=base, **k):
            self.lrs.append(self.param_groups[0]["lr"])
            return _base.step(self, *a, **k)

        monkeypatch.setattr(torch.optim, name, type(name, (base,), {"__init__": init, "step": step}))
    return made


# --- the presets are the documented recipes ------------------------------------------------------------------


def test_presets_are_the_recipes_docs_models_states():
    """docs/MODELS.md: GAN batch 64, Adam β (0.5, 0.999), G lr 2e-4, D lr 1e-4, real labels 0.9; paper epochs 8
    (Fashion-MNIST, spectral norm + mode-seeking λ = 1 + class feedback steered by the quick classifier), 1
    (MNIST), 25 (CIFAR-10); quick half an epoch (CIFAR-10 0.3). Encoder: Adam lr 2e-4, batch 64, η = 0.02, 3000 /
    400 iterations. Classifiers: Adam one-cycle 1e-3, batch 128, 15 / 2 epochs (Fashion-MNIST); CIFAR-10 SGD lr 0.1,
    wd 5e-4, crop + flip, 200 epochs, quick 1 epoch on 20%."""
    g = tp.GANRecipe(epochs=1)
    assert (g.batch_size, g.lr_g, g.lr_d, g.real_label) == (64, 2e-4, 1e-4, 0.9)
    assert (g.mode_seeking, g.spectral_norm, g.loss, g.pack, g.subset_fraction) == (0.0, False, "bce", 1, 1.0)
    fp = tp.gan_recipe("fmnist", "paper")
    assert (fp.epochs, fp.spectral_norm, fp.mode_seeking, fp.epoch_fraction) == (8, True, 1.0, 1.0)
    assert (fp.eval_images, fp.eval_restarts, fp.eval_steps) == (100, 4, 100)  # R = 4, L = 100 on 100 images
    # class feedback γ 0.5 within [1/4, 4] every 50 steps on 1000 samples, steered by the quick classifier
    assert (fp.class_feedback, fp.feedback_bound, fp.feedback_every, fp.feedback_samples) == (0.5, 4.0, 50, 1000)
    assert fp.feedback_classifier == "quick"
    assert not any(tp.gan_recipe(d, p).class_feedback for d, p in tp.GAN_RECIPES if (d, p) != ("fmnist", "paper"))
    assert [tp.gan_recipe(d, "paper").epochs for d in ("mnist", "cifar10")] == [1, 25]
    assert not tp.gan_recipe("mnist", "paper").mode_seeking and not tp.gan_recipe("cifar10", "paper").spectral_norm
    assert [tp.gan_recipe(d, "quick").epoch_fraction for d in ("fmnist", "mnist", "cifar10")] == [0.5, 0.5, 0.3]
    assert tp.gan_recipe("fmnist", "paper", lr_d=4e-4, seed=None).lr_d == 4e-4  # overrides apply, None does not
    e = tp.encoder_recipe("paper")
    assert (e.iterations, e.batch_size, e.lr, e.eta) == (3000, 64, 2e-4, 0.02)
    assert tp.encoder_recipe("quick").iterations == 400
    assert (e.lambda_adv, e.lambda_semantic, e.lambda_latent) == (1.0, 100.0, 1.0)
    f = ctrain.recipe_for("fmnist", "paper")
    assert (f.optimizer, f.lr, f.batch_size, f.epochs, f.schedule, f.augment) == (
        "adam",
        1e-3,
        128,
        15,
        "one-cycle",
        False,
    )
    assert ctrain.recipe_for("fmnist", "quick").epochs == 2
    c = ctrain.recipe_for("cifar10", "paper")
    assert (c.optimizer, c.lr, c.weight_decay, c.augment, c.epochs) == ("sgd", 0.1, 5e-4, True, 200)
    assert c.crop_per_image and ctrain.recipe_for("cifar10", "quick").crop_per_image
    cq = ctrain.recipe_for("cifar10", "quick")
    assert (cq.epochs, cq.train_fraction, cq.augment) == (1, 0.2, True)


def test_subset_is_the_head_of_the_permutation_after_the_validation_slice():
    """selection_split's documented draw: one seeded permutation; its first eval_images (sorted) validate, and the
    GAN trains on the first subset_fraction of the rest, so a replica tag (sub80-s1) names fixed images."""
    recipe = tp.GANRecipe(epochs=1, eval_images=10, subset_fraction=0.5)
    val, sub = tp.selection_split(50, recipe, torch.Generator().manual_seed(3))
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    assert val.tolist() == sorted(perm[:10].tolist())
    assert sub.tolist() == perm[10:30].tolist()


# --- train_gan: what each step computes ----------------------------------------------------------------------


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_train_gan_passes_the_recipe_on_and_feeds_each_loss_its_half(monkeypatch):
    """Two epochs of 3 steps (batch 8) on 38 synthetic images: G's and D's Adam get lr_g / lr_d and β (0.5, 0.999);
    D and G train in train mode and are scored in eval mode (the classifier too); D's loss gets the real half of
    one mixed batch as `real`, G's loss the fake half; G's loss adds λ · the mode-seeking penalty; each epoch
    shuffles the GAN's training indices anew; validation projects with the run's seed, the class spread draws
    with seed + 1."""
    made = _spy_optimizers(monkeypatch)
    seen = {"D": [], "G": [], "dl": [], "gl": [], "ms": [], "pq": [], "cs": []}
    build = tp.build_gan

    def build_gan(dataset, **kw):
        G, D = build(dataset, **kw)
        D.register_forward_hook(lambda m, i, o: seen["D"].append((m.training, i[0].detach(), o.detach())))
        G.register_forward_hook(lambda m, i, o: seen["G"].append(m.training))
        return G, D

    def wrap(key, fn):
        def spy(*a, **k):
            out = fn(*a, **k)
            seen[key].append((a, k, out.detach() if isinstance(out, torch.Tensor) else out))
            return out

        return spy

    def pq(G, classifier, data, indices, cfg, seed, device, **k):
        seen["pq"].append((G.training, classifier.training, seed, torch.as_tensor(indices).tolist()))
        return {"projection_accuracy": 0.5, "reconstruction_mse": 0.0, "n": len(indices)}

    def cs(G, classifier, n, gen, device):
        seen["cs"].append((G.training, classifier.training, gen.initial_seed()))
        return [0.1] * 10

    monkeypatch.setattr(tp, "build_gan", build_gan)
    monkeypatch.setattr(tp, "discriminator_loss", wrap("dl", tp.discriminator_loss))
    monkeypatch.setattr(tp, "generator_loss", wrap("gl", tp.generator_loss))
    monkeypatch.setattr(tp, "mode_seeking_penalty", wrap("ms", tp.mode_seeking_penalty))
    monkeypatch.setattr(tp, "projection_quality", pq)
    monkeypatch.setattr(tp, "class_spread", cs)
    data = _recording(38)
    recipe = tp.GANRecipe(epochs=2, batch_size=8, lr_g=3e-4, lr_d=7e-5, eval_images=10, mode_seeking=0.5)
    classifier = _Linear().train()
    _, metrics = tp.train_gan("fmnist", data, classifier, recipe, seed=5, device=torch.device("cpu"), progress=False)

    (g_name, g_kw, g_opt), (d_name, d_kw, d_opt) = made
    assert (g_name, g_kw["lr"], tuple(g_kw["betas"])) == ("Adam", 3e-4, (0.5, 0.999))
    assert (d_name, d_kw["lr"], tuple(d_kw["betas"])) == ("Adam", 7e-5, (0.5, 0.999))
    assert len(seen["dl"]) == len(seen["gl"]) == len(seen["ms"]) == 6 and metrics["history"][-1]["steps"] == 6
    assert all(training for training, _, _ in seen["D"]) and all(seen["G"])  # every D and G forward trains
    images = {bytes(x.numpy()) for x in data.get(range(len(data)))[0]}
    val = set(metrics["selection"]["validation_images"])
    train_idx = set(range(38)) - val
    assert metrics["train_images"] == 28
    for step in range(6):
        (_, d_in, d_out), (_, g_in, g_out) = seen["D"][2 * step], seen["D"][2 * step + 1]
        assert all(bytes(x.numpy()) in images for x in d_in[:8]) and not any(
            bytes(x.numpy()) in images for x in d_in[8:]
        )
        (real, fake, _), _, _ = seen["dl"][step]
        assert torch.equal(real, d_out[:8]) and torch.equal(fake, d_out[8:])
        (g_fake, _), _, g_loss = seen["gl"][step]
        assert torch.equal(g_fake, g_out[8:]) and torch.equal(g_in[8:], d_in[8:])
        assert torch.isclose(g_loss, -nn.functional.logsigmoid(g_out[8:]).mean())  # non-saturating: −log σ(l_fake)
    loss_g = [gl + 0.5 * ms for (_, _, gl), (_, _, ms) in zip(seen["gl"], seen["ms"], strict=True)]
    assert metrics["history"][-1]["g_loss"] == pytest.approx(float(sum(loss_g)) / 6, rel=1e-5)
    # each epoch: a fresh permutation of all 28 training indices (never a validation image)
    orders = [idx.tolist() for idx, _ in data.calls if idx is not None and len(idx) == 28]
    assert len(orders) == 2 and all(set(o) == train_idx for o in orders) and orders[0] != orders[1]
    assert seen["pq"] == [(False, False, 5, sorted(val))] * 2
    assert seen["cs"] == [(False, False, 6)] * 2


def test_train_gan_keeps_the_best_epochs_snapshot(monkeypatch):
    """Validation accuracies 0.5, 0.9, 0.9, 0.4 by epoch: the kept epoch is the last of the best (3), and the
    weights handed back are epoch 3's snapshot, not the final ones."""
    accs = iter([0.5, 0.9, 0.9, 0.4])
    monkeypatch.setattr(
        tp,
        "projection_quality",
        lambda *a, **k: {"projection_accuracy": next(accs), "reconstruction_mse": 0.0, "n": 10},
    )
    monkeypatch.setattr(tp, "class_spread", lambda *a, **k: [0.1] * 10)
    snapshots = []

    def on_epoch(state, metrics):
        snapshots.append((metrics["best_epoch"], copy.deepcopy(state)))

    recipe = tp.GANRecipe(epochs=4, batch_size=8, eval_images=10)
    final = {}
    build = tp.build_gan

    def build_gan(dataset, **kw):
        G, D = build(dataset, **kw)
        final["G"] = G
        return G, D

    monkeypatch.setattr(tp, "build_gan", build_gan)
    state, metrics = tp.train_gan(
        "fmnist", _data(26), _Linear(), recipe, seed=0, device=torch.device("cpu"), progress=False, on_epoch=on_epoch
    )
    assert metrics["best_epoch"] == 3 and metrics["projection_accuracy_during_training"] == 0.9
    assert [b for b, _ in snapshots] == [1, 2, 3, 3]
    epoch3 = snapshots[2][1]
    assert all(torch.equal(state["G"][k], epoch3["G"][k]) for k in epoch3["G"])
    live = final["G"].state_dict()
    assert any(not torch.equal(state["G"][k], live[k]) for k in live)  # epoch 4 moved G on


# --- the encoder ---------------------------------------------------------------------------------------------


def test_encoder_losses_are_the_stated_formulas_and_g_stays_frozen(monkeypatch):
    """InvGAN's Eq. 3-5 at iteration 0, by hand: L_sem = mean over images of max(mean |x − G(I(x))|, η), L_lat =
    mean ‖z − I(G(z))‖₂; D learns real = G(z) (target 1), fake = G(I(G(z))) (target 0) in one batch; L_adv
    is the BCE of the fake half against 1. G (passed in train mode) keeps its weights and BatchNorm statistics."""
    from conftest import stand_in_gan

    from defbench.defenses.priors import Encoder, sample_latent
    from defbench.seeding import seed_everything

    G, _ = stand_in_gan("fmnist", 0)
    before = copy.deepcopy(G.state_dict())
    # iteration 0 by hand: the encoder and D are drawn after seeding, z is the generator's first draw
    gen = seed_everything(7)
    enc = Encoder(1, 28, G.latent_dim)
    z = sample_latent(6, G.latent_dim, gen)
    with torch.no_grad():
        x = G(z)
        z_hat = enc(x)
        err = (x - G(z_hat)).abs().flatten(1).mean(1)
    eta = err.median().item()  # the hinge binds for some images and not for others
    calls = []
    bce = nn.functional.binary_cross_entropy_with_logits

    def spy(logits, target, *a, **k):
        calls.append((logits.detach(), target))
        return bce(logits, target, *a, **k)

    d_out = []
    build = tp.build_gan

    def build_gan(dataset, **kw):
        G2, D = build(dataset, **kw)
        D.register_forward_hook(lambda m, i, o: d_out.append((i[0].detach(), o.detach())))
        return G2, D

    monkeypatch.setattr(tp, "build_gan", build_gan)
    monkeypatch.setattr(tp.F, "binary_cross_entropy_with_logits", spy)
    _, metrics = tp.train_encoder(
        "fmnist", G.train(), tp.EncoderRecipe(iterations=1, batch_size=6, eta=eta), seed=7, device="cpu", progress=False
    )
    t = metrics["trace"][0]
    assert t["semantic"] == pytest.approx(err.clamp(min=eta).mean().item(), rel=1e-4)
    assert t["semantic"] > err.mean().item()  # the margin lifted the small errors
    assert t["latent"] == pytest.approx((z - z_hat).norm(dim=1).mean().item(), rel=1e-4)
    (d_in, d_logits), (_, adv_logits) = d_out
    assert torch.allclose(d_in[:6], x, atol=1e-6)
    (l_d, t_d), (l_adv, t_adv) = calls
    assert torch.equal(l_d, d_logits) and torch.equal(t_d, torch.tensor([1.0] * 6 + [0.0] * 6))
    assert torch.equal(l_adv, adv_logits[6:]) and torch.equal(t_adv, torch.ones(6))
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_encoder_loss_weights_each_term_by_its_lambda():
    """L = λ1 L_adv + λ2 L_sem + λ3 L_lat: with λ1 = λ3 = 0 and a margin η above every error, L_sem is the constant
    η and no term has a gradient, so Adam leaves the encoder's weights where they were drawn; with λ3 = 1 the
    latent term moves them."""
    from conftest import stand_in_gan

    from defbench.defenses.priors import Encoder
    from defbench.seeding import seed_everything

    G, _ = stand_in_gan("fmnist", 0)
    seed_everything(2)
    drawn = dict(Encoder(1, 28, G.latent_dim).named_parameters())
    for lat, moved in ((0.0, False), (1.0, True)):
        recipe = tp.EncoderRecipe(iterations=1, batch_size=4, eta=1e3, lambda_adv=0.0, lambda_latent=lat)
        state, _ = tp.train_encoder("fmnist", G, recipe, seed=2, device="cpu", progress=False)
        changed = [k for k, v in drawn.items() if not torch.equal(state["E"][k], v)]
        assert bool(changed) is moved, changed


def test_latent_recovery_clips_the_encoder_and_guesses_from_the_same_draw():
    """latent_recovery: z then the random guess are the seeded generator's two draws; I(G(z)) is clipped to the
    latent box before the error ‖z − ẑ‖₂ is averaged over the images."""
    from conftest import stand_in_gan

    from defbench.defenses.priors import sample_latent

    G, _ = stand_in_gan("fmnist", 0)
    out = tp.latent_recovery(G, lambda x: torch.full((len(x), G.latent_dim), 5.0), seed=4, device="cpu", n=30)
    gen = torch.Generator().manual_seed(4)
    z, guess = sample_latent(30, 100, gen), sample_latent(30, 100, gen)
    assert out["latent_error"] == pytest.approx((z - 1).pow(2).sum(1).sqrt().mean().item(), rel=1e-5)
    assert out["random_guess_latent_error"] == pytest.approx((z - guess).pow(2).sum(1).sqrt().mean().item(), rel=1e-5)
    with torch.no_grad():
        want = (G(z) - G(torch.ones(30, 100))).abs().mean().item()
    assert out["image_mae_GIGz"] == pytest.approx(want, rel=1e-5)


# --- the classifier ------------------------------------------------------------------------------------------


def test_augment_is_a_reflect_padded_crop_and_a_horizontal_flip():
    """Each output image is one crop (offsets 0..8 each way) of the image reflect-padded by 4, flipped left-right or
    not; over 150 batches both coins and every offset occur."""
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))  # wider than 2 x 4: no crop is a mirror
    gen = torch.Generator().manual_seed(1)
    keys, cands = [], []
    for flip in (0, 1):
        src = x.numpy()[:, :, :, ::-1] if flip else x.numpy()
        pad = np.pad(src, ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
        for dy in range(9):
            for dx in range(9):
                keys.append((flip, dy, dx))
                cands.append(pad[:, :, dy : dy + 12, dx : dx + 12])
    cands = np.stack(cands)  # (2 * 81, 3, 1, 12, 12)
    flips, offsets = set(), set()
    for _ in range(150):
        out = ctrain._augment(x, gen).numpy()
        fit = np.isclose(cands, out[None]).all(axis=(2, 3, 4))  # (candidate, image)
        assert fit.any(axis=0).all(), "an output image is no reflect-padded crop of its (flipped) input"
        flips |= {keys[k][0] for k in np.flatnonzero(fit.any(axis=1))}
        offsets |= {keys[k][1:] for k in np.flatnonzero(fit.any(axis=1))}
    assert flips == {0, 1}
    assert {dy for dy, _ in offsets} == set(range(9)) and {dx for _, dx in offsets} == set(range(9))


def test_augment_draws_each_image_its_own_crop():
    """A batch of 32 copies of one image comes out as many different crops (torchvision's RandomCrop draws per
    image; one offset for the whole batch made every copy the same crop, up to the flip)."""
    one = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    out = ctrain._augment(one.expand(32, -1, -1, -1).contiguous(), torch.Generator().manual_seed(1))
    unflipped = {tuple(o.flatten().tolist()) for o in out} | {tuple(o.flip(2).flatten().tolist()) for o in out}
    assert len(unflipped) > 2 * 8, "the copies share their crop offsets"
    # crop_per_image=False (models trained before 2026-12-06): one offset for the batch, so at most two images and
    # their mirrors (the flip comes before the crop)
    same = ctrain._augment(one.expand(32, -1, -1, -1).contiguous(), torch.Generator().manual_seed(1), per_image=False)
    assert len({tuple(o.flatten().tolist()) for o in same} | {tuple(o.flip(2).flatten().tolist()) for o in same}) <= 4


def test_a_cifar_model_cropped_once_per_batch_is_named_by_the_zoo():
    """A CIFAR-10 classifier whose manifest predates crop_per_image (trained with one crop offset per batch) is
    named as trained otherwise than its preset (the zoo's recipe-drift warning); one trained today is not."""
    import dataclasses

    from defbench.harness.models import recipe_drift

    recipe = ctrain.recipe_for("cifar10", "paper")
    today = dataclasses.asdict(recipe)
    before = {k: v for k, v in today.items() if k != "crop_per_image"}
    assert recipe_drift({"config": before}, recipe) == ["crop_per_image: trained False, preset True"]
    assert recipe_drift({"config": today}, recipe) == []


def test_train_classifier_passes_the_recipe_on(monkeypatch):
    """Two epochs on 40 of 80 synthetic images (batch 4, 20 steps): Adam with the recipe's lr and weight decay (SGD:
    momentum 0.9, Nesterov); the one-cycle schedule (PyTorch's, starting at lr / 25) peaking at lr after 15% of
    the steps and annealing towards 0; train mode for the steps and eval mode for the accuracy; a random subset
    of the training images, reshuffled with another seed each epoch."""
    made, modes = _spy_optimizers(monkeypatch), []
    build = ctrain.build_classifier

    def build_classifier(dataset, arch=None):
        m = build(dataset, arch)
        m.register_forward_hook(lambda mod, i, o: modes.append((torch.is_grad_enabled(), mod.training)))
        return m

    monkeypatch.setattr(ctrain, "build_classifier", build_classifier)
    for optimizer in ("adam", "sgd"):
        made.clear(), modes.clear()
        data = _recording(80)
        recipe = ctrain.ClassifierRecipe(
            epochs=2, batch_size=4, optimizer=optimizer, lr=0.05, weight_decay=3e-4, train_fraction=0.5
        )
        _, metrics = ctrain.train_classifier("fmnist", data, _data(12, 1), recipe, 2, torch.device("cpu"), False)
        ((name, kw, opt),) = made
        if optimizer == "adam":
            assert (name, kw["lr"], kw["weight_decay"]) == ("Adam", 0.05, 3e-4)
        else:
            assert (name, kw["lr"], kw["weight_decay"], kw["momentum"], kw["nesterov"]) == (
                "SGD",
                0.05,
                3e-4,
                0.9,
                True,
            )
        lrs = opt.lrs
        assert len(lrs) == 20 and lrs[0] == pytest.approx(0.05 / 25)
        assert max(lrs) == pytest.approx(0.05) and lrs.index(max(lrs)) == 2  # 0.15 · 20 steps: the third
        assert lrs[-1] < 0.05 / 100
        train_modes = {m for grad, m in modes if grad}
        eval_modes = {m for grad, m in modes if not grad}
        assert train_modes == {True} and eval_modes == {False}
        (i1, s1), (i2, s2) = [(i, s) for i, s in data.calls]
        assert metrics["train_images"] == 40 and len(set(i1.tolist())) == 40 and torch.equal(i1, i2)
        assert sorted(i1.tolist()) != list(range(40)) and s1 != s2
        assert not math.isnan(metrics["clean_test_accuracy"])


def test_constant_schedule_keeps_the_rate(monkeypatch):
    """schedule='constant' (cleverhans' tutorials): every step at the recipe's rate."""
    made = _spy_optimizers(monkeypatch)
    recipe = ctrain.ClassifierRecipe(epochs=1, batch_size=8, lr=0.01, schedule="constant")
    ctrain.train_classifier("fmnist", _data(24), _data(8, 1), recipe, 0, torch.device("cpu"), False)
    assert made[0][2].lrs == [0.01] * 3
