"""Training code on real Fashion-MNIST at tiny budgets: the classifier learns, the discriminator learns
(its loss leaves 2 ln 2 — Table 4's BatchNorm trap), the data-free InvGAN encoder inverts G."""

import dataclasses
import warnings

import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.train_prior import (
    TWO_LN2,
    EncoderRecipe,
    GANRecipe,
    gan_recipe,
    latent_recovery,
    train_encoder,
    train_gan,
)


def test_classifier_learns_and_exposes_features(tiny_classifier, fmnist):
    model, metrics = tiny_classifier
    assert metrics["clean_test_accuracy"] > 0.75  # 15% of one epoch; chance is 0.10
    x, _ = fmnist[1].get(range(4))
    phi = model.features(x)
    assert phi.shape == (4, 256)
    assert torch.allclose(model.head(phi), model(x), atol=1e-5)


def test_discriminator_loss_leaves_2ln2_early(fmnist, tiny_classifier):
    train, test = fmnist
    model, _ = tiny_classifier
    recipe = GANRecipe(epochs=1, epoch_fraction=0.05, eval_images=10, eval_restarts=1, eval_steps=5)
    _, metrics = train_gan(
        "fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=40
    )
    trace = metrics["d_loss_trace"]
    assert len(trace) == 40
    late = sum(trace[-10:]) / 10
    assert late < TWO_LN2 - 0.15, f"D loss stuck near 2 ln 2 = {TWO_LN2:.3f}: {late:.3f}"


def test_separate_batches_would_be_stuck():
    """The trap itself: with BatchNorm in training mode, an all-real batch and an all-fake batch get the same
    mean pre-BN activation per feature, so Table 4's D cannot separate them by their means."""
    from defbench.defenses.priors import DCGANDiscriminator28

    torch.manual_seed(0)
    D = DCGANDiscriminator28().train()
    real, fake = torch.rand(32, 1, 28, 28), torch.rand(32, 1, 28, 28) * 0.1
    assert abs(D(real).mean() - D(fake).mean()) < 1e-4
    mixed = D(torch.cat([real, fake]))
    assert abs(mixed[:32].mean() - mixed[32:].mean()) > 1e-3


def test_encoder_recovers_latent_better_than_random(random_gan, capsys):
    G, _ = random_gan
    before = latent_recovery(G, _untrained_encoder(), 3, "cpu", n=200)
    state, metrics = train_encoder(
        "fmnist", G, EncoderRecipe(iterations=300, batch_size=16, lr=1e-3), seed=0, device="cpu", progress=False
    )
    assert metrics["latent_error"] < 0.6 * metrics["random_guess_latent_error"]
    assert metrics["latent_error"] < 0.8 * before["latent_error"]
    # off a terminal no bar draws: a log line each tenth of the iterations says how far it is (it said nothing)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("encoder iteration")]
    assert len(lines) == 10 and lines[-1].startswith("encoder iteration 300/300: semantic ")


def _untrained_encoder():
    from defbench.defenses.priors import Encoder

    torch.manual_seed(0)
    return Encoder(1, 28).eval()


def test_gan_epoch_selection_uses_validation_images_held_out_of_training():
    """The epoch is chosen on a slice of the training split that the GAN does not train on; the test split
    is not even an argument, so model selection cannot see the images the tables are measured on."""
    import inspect

    from defbench.defenses.train_prior import selection_split

    assert "test" not in inspect.signature(train_gan).parameters
    for fraction in (1.0, 0.8):
        recipe = GANRecipe(epochs=1, eval_images=100, subset_fraction=fraction)
        val, sub = selection_split(1000, recipe, torch.Generator().manual_seed(0))
        assert len(val) == 100 and len(sub) == int(900 * fraction)
        assert not set(val.tolist()) & set(sub.tolist())
        val2, sub2 = selection_split(1000, recipe, torch.Generator().manual_seed(0))
        assert torch.equal(val, val2) and torch.equal(sub, sub2)  # seeded
    for bad in (0, 1000):  # no validation slice, or nothing left to train on
        with pytest.raises(DefbenchError, match="eval_images must be in"):
            selection_split(1000, GANRecipe(epochs=1, eval_images=bad), torch.Generator().manual_seed(0))


def test_gan_training_records_its_validation_slice(fmnist, tiny_classifier):
    train, _ = fmnist
    model, _ = tiny_classifier
    recipe = GANRecipe(epochs=1, epoch_fraction=0.01, eval_images=10, eval_restarts=1, eval_steps=2)
    _, metrics = train_gan("fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False)
    val = metrics["selection"]["validation_images"]
    assert metrics["selection"]["split"] == "train" and len(val) == 10
    assert metrics["train_images"] == len(train) - 10
    # the split a reader can compute without training is the one the run used
    from defbench.defenses.train_prior import training_split

    assert training_split(len(train), recipe, 0)[0].tolist() == val
    assert training_split(len(train), recipe, 1)[0].tolist() != val


def test_mode_seeking_penalty_is_large_for_a_collapsed_generator():
    from defbench.defenses.train_prior import mode_seeking_penalty

    z = torch.randn(8, 100)
    collapsed = torch.zeros(8, 1, 4, 4) + 0.5  # every latent gives the same image
    varied = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert mode_seeking_penalty(z, collapsed) > 1e4
    assert mode_seeking_penalty(z, varied) < 10
    assert torch.isclose(
        mode_seeking_penalty(z, varied),
        1 / ((varied[:4] - varied[4:]).abs().mean() / (z[:4] - z[4:]).abs().mean() + 1e-5),
    )


def test_mode_seeking_changes_training(fmnist, tiny_classifier):
    train, _ = fmnist
    model, _ = tiny_classifier
    runs = []
    for lam in (0.0, 1.0):
        recipe = GANRecipe(
            epochs=1, epoch_fraction=0.01, eval_images=10, eval_restarts=1, eval_steps=2, mode_seeking=lam
        )
        state, _ = train_gan(
            "fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=3
        )
        runs.append(state["G"])
    assert any(not torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_spectral_normalized_discriminator_has_unit_spectral_norms_and_no_batch_norm():
    from torch import nn

    from defbench.defenses.priors import build_gan

    _, plain = build_gan("fmnist")
    _, D = build_gan("fmnist", spectral_norm=True)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    D.train()
    for _ in range(30):  # one power iteration per training forward
        D(x)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    plain_layers = [m for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 4
    for m, p in zip(layers, plain_layers, strict=True):
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.02
        assert abs(torch.linalg.matrix_norm(p.weight.detach().flatten(1), ord=2).item() - 1) > 0.1


def test_spectral_norm_recipe_trains_a_spectral_normalized_discriminator(fmnist, tiny_classifier):
    from defbench.defenses.priors import build_gan

    train, _ = fmnist
    model, _ = tiny_classifier
    states = {}
    for sn in (False, True):
        recipe = GANRecipe(
            epochs=1, epoch_fraction=0.01, eval_images=10, eval_restarts=1, eval_steps=2, spectral_norm=sn
        )
        states[sn], _ = train_gan(
            "fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=3
        )
    assert any(not torch.equal(states[False]["G"][k], states[True]["G"][k]) for k in states[False]["G"])
    build_gan("fmnist", spectral_norm=True)[1].load_state_dict(states[True]["D"])  # strict: same layers
    with pytest.raises(RuntimeError):
        build_gan("fmnist")[1].load_state_dict(states[True]["D"])


def test_get_gan_rebuilds_the_discriminator_its_manifest_names():
    """A zoo GAN trained with spectral_norm loads into a spectral-normalised D (and a plain one into a plain D)."""
    from defbench.defenses.priors import build_gan
    from defbench.harness import zoo
    from defbench.harness.models import get_gan

    quick = dataclasses.asdict(gan_recipe("mnist", "quick"))
    for sn, tag in ((True, "no1"), (False, "no2")):
        G, D = build_gan("mnist", spectral_norm=sn)
        state = {f"G.{k}": v for k, v in G.state_dict().items()} | {f"D.{k}": v for k, v in D.state_dict().items()}
        config = {**quick, "spectral_norm": sn, "holdout_class": int(tag[2:])}  # as build_gan_model records it
        zoo.save(zoo.model_id("gan", "mnist", "quick", tag), state, {"kind": "gan", "config": config})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, loaded, _ = get_gan("mnist", "quick", train_missing=False, progress=False, tag=tag)
        assert any("parametrizations" in k for k in loaded.state_dict()) is sn
        # the quick recipe has no spectral norm: the SN model is named as another recipe's, the plain one is not
        drift = [str(w.message) for w in caught if "another recipe" in str(w.message)]
        assert bool(drift) is sn and all("spectral_norm: trained True, preset False" in m for m in drift)


def test_cleverhans_tutorial_cnn_is_that_network():
    """cleverhans 2.x's make_basic_cnn: 8x8/2 'same' (64), 6x6/2 'valid' (128), 5x5/1 'valid' (128), linear 10; on
    28x28 inputs 14x14, 5x5 then 1x1 maps, so Φ is 128-d; the [0, 1] pixels go in unnormalised."""
    from defbench.classifiers.models import build_classifier

    m = build_classifier("fmnist", "cnn-cleverhans").eval()
    x = torch.rand(3, 1, 28, 28)
    b = m.body
    h1 = torch.relu(b.conv1(torch.nn.functional.pad(x, (3, 3, 3, 3))))
    h2 = torch.relu(b.conv2(h1))
    assert h1.shape[1:] == (64, 14, 14) and h2.shape[1:] == (128, 5, 5)
    assert m.features(x).shape == (3, 128)
    assert torch.allclose(m.head(m.features(x)), m(x), atol=1e-6)
    assert float(m.mean) == 0.0 and float(m.std) == 1.0
    # weights + biases: 64·1·8·8 + 64, 128·64·6·6 + 128, 128·128·5·5 + 128, 128·10 + 10
    assert sum(p.numel() for p in m.parameters()) == 4160 + 295040 + 409728 + 1290
    with pytest.raises(DefbenchError, match="cnn-cleverhans"):
        build_classifier("fmnist", "no-such-arch")
    for arch in ("cnn-cleverhans", "cnn-2conv2fc"):
        with pytest.raises(DefbenchError, match="28x28"):
            build_classifier("cifar10", arch)


def test_defensegan_model_a_is_that_network():
    """Defense-GAN's Model A as InvGAN's code builds it: 5x5/1 'same' (64), 5x5/2 'valid' (64), FC 128 + ReLU (Φ, its
    'ReLU7'), linear 10; cleverhans' Dropout(0.25) / Dropout(0.5) keep 25% / 50% of the units in training, none
    is dropped in eval mode; the [0, 1] pixels go in unnormalised."""
    from defbench.classifiers.models import build_classifier

    m = build_classifier("fmnist", "cnn-defensegan-a").eval()
    x = torch.rand(3, 1, 28, 28)
    b = m.body
    h = torch.relu(b.conv2(torch.relu(b.conv1(x))))
    assert h.shape[1:] == (64, 12, 12)
    assert torch.allclose(m.features(x), torch.relu(b.fc(h.flatten(1))), atol=1e-6)
    assert torch.allclose(m.head(m.features(x)), m(x), atol=1e-6)
    assert (b.drop1.p, b.drop2.p) == (0.75, 0.5)
    assert float(m.mean) == 0.0 and float(m.std) == 1.0
    # weights + biases: 64·1·5·5 + 64, 64·64·5·5 + 64, 64·12·12·128 + 128, 128·10 + 10
    assert sum(p.numel() for p in m.parameters()) == 1664 + 102464 + 1179776 + 1290
    with pytest.raises(DefbenchError, match="28x28"):
        build_classifier("cifar10", "cnn-defensegan-a")


def test_imagenet_classifier_normalises_as_torchvision_s_resnet50_weights(monkeypatch):
    """The ImageNet wrapper normalises [0, 1] pixels with the (R, G, B) mean and std torchvision's IMAGENET1K_V1
    ResNet-50 weights were trained with (their transforms() names them, offline): f(x) = net(Normalize(mean, std)(x)).
    Constants in another channel order feed the pretrained network shifted inputs and change every ImageNet
    number. The weights are replaced by an untrained network (no download); the wrapping is what is pinned."""
    import torchvision

    from defbench.classifiers import models as M

    t = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()
    assert M.IMAGENET_MEAN == pytest.approx(tuple(t.mean)) and M.IMAGENET_STD == pytest.approx(tuple(t.std))
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    monkeypatch.setattr(torchvision.models, "resnet50", lambda weights=None: net)
    clf = M.load_imagenet_resnet50().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = clf(x)
        want = clf.head(net(torchvision.transforms.Normalize(t.mean, t.std)(x)))  # the wrapper took net.fc as head
    assert torch.allclose(got, want, atol=1e-5)


def test_classifier_recipe_trains_another_architecture_at_a_constant_rate(fmnist):
    """ClassifierRecipe(arch=..., schedule='constant') trains that network (cleverhans' tutorials: Adam at a fixed
    rate); an unknown schedule is refused by name."""
    from defbench.classifiers.train import ClassifierRecipe, recipe_for, train_classifier

    train, test = fmnist
    recipe = ClassifierRecipe(epochs=1, train_fraction=0.1, arch="cnn-cleverhans", schedule="constant")
    model, metrics = train_classifier("fmnist", train, test, recipe, 0, torch.device("cpu"), progress=False)
    assert model.arch == "cnn-cleverhans" and metrics["clean_test_accuracy"] > 0.6  # chance: 0.1
    assert recipe_for("fmnist", "paper", schedule="constant").schedule == "constant"
    with pytest.raises(DefbenchError, match="schedule"):
        recipe_for("fmnist", "paper", schedule="cosine")


def test_gan_losses_are_the_stated_formulas():
    """bce: the smoothed non-saturating GAN (the sum of the real and fake halves' means, as before the loss became
    an option); hinge: SN-GAN's relu(1 − l_real) + relu(1 + l_fake) for D and −l_fake for G."""
    import torch.nn.functional as F

    from defbench.defenses.train_prior import discriminator_loss, generator_loss

    real, fake = torch.tensor([2.0, -0.5, 0.3]), torch.tensor([-3.0, 0.5, 1.5])
    bce, hinge = GANRecipe(epochs=1), GANRecipe(epochs=1, loss="hinge")
    target = torch.tensor([0.9, 0.9, 0.9, 0.0, 0.0, 0.0])
    expected = F.binary_cross_entropy_with_logits(torch.cat([real, fake]), target) * 2
    assert torch.equal(discriminator_loss(real, fake, bce), expected)
    # by hand: real margins relu(1 − [2, −0.5, 0.3]) = [0, 1.5, 0.7]; fake relu(1 + [−3, 0.5, 1.5]) = [0, 1.5, 2.5]
    assert torch.isclose(discriminator_loss(real, fake, hinge), torch.tensor(2.2 / 3 + 4.0 / 3))
    assert torch.isclose(generator_loss(fake, hinge), torch.tensor(1 / 3))  # −mean of [−3, 0.5, 1.5]
    assert torch.isclose(generator_loss(fake, bce), F.softplus(-fake).mean())


def test_packed_discriminator_sees_stacked_images(fmnist, tiny_classifier):
    """PacGAN: pack = 2 stacks consecutive images along channels, D is built for two channels, and a trained
    packed D loads only into a packed D."""
    from defbench.defenses.priors import build_gan
    from defbench.defenses.train_prior import packed

    x = torch.arange(4 * 2 * 2, dtype=torch.float).view(4, 1, 2, 2)
    p = packed(x, 2)
    assert p.shape == (2, 2, 2, 2) and torch.equal(p[1, 0], x[2, 0]) and torch.equal(p[1, 1], x[3, 0])
    train, _ = fmnist
    model, _ = tiny_classifier
    recipe = GANRecipe(epochs=1, epoch_fraction=0.01, eval_images=10, eval_restarts=1, eval_steps=2, pack=2)
    state, _ = train_gan(
        "fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=2
    )
    _, D = build_gan("fmnist", pack=2)
    D.load_state_dict(state["D"])
    assert D.pack == 2 and D(torch.rand(3, 2, 28, 28)).shape == (3,)
    with pytest.raises(RuntimeError):
        build_gan("fmnist")[1].load_state_dict(state["D"])


def test_hinge_loss_changes_training(fmnist, tiny_classifier):
    train, _ = fmnist
    model, _ = tiny_classifier
    runs = []
    for loss in ("bce", "hinge"):
        recipe = GANRecipe(epochs=1, epoch_fraction=0.01, eval_images=10, eval_restarts=1, eval_steps=2, loss=loss)
        state, _ = train_gan(
            "fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=3
        )
        runs.append(state["G"])
    assert any(not torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("override", [{"loss": "wgan"}, {"pack": 3}, {"pack": 0}])
def test_gan_recipe_rejects_unknown_loss_and_bad_pack(override):
    with pytest.raises(DefbenchError):
        gan_recipe("fmnist", "paper", **override)
    with pytest.raises(DefbenchError):  # a recipe built directly, as train_gan's callers may
        GANRecipe(epochs=1, **override)


@pytest.mark.parametrize(
    "override",
    [{"oversample_weight": 0}, {"oversample_weight": 2.5}, {"oversample_weight": 2}, {"oversample_class": 1.5}],
)
def test_gan_recipe_rejects_bad_oversampling(override):
    bad = {**override, "oversample_weight": override.get("oversample_weight", 2)}
    with pytest.raises(DefbenchError, match="oversample"):
        GANRecipe(epochs=1, **bad)
    GANRecipe(epochs=1, oversample_class=1)  # weight 1: off, whatever the class


def test_oversampled_pool_repeats_one_class_and_is_the_subset_when_off():
    from defbench.defenses.train_prior import oversampled_pool

    labels = torch.tensor([0, 1, 2, 1, 0, 1, 2, 2])
    subset = torch.tensor([6, 1, 0, 3, 5])  # labels 2, 1, 0, 1, 1
    assert oversampled_pool(subset, labels, GANRecipe(epochs=1)) is subset
    pool = oversampled_pool(subset, labels, GANRecipe(epochs=1, oversample_class=1, oversample_weight=3))
    assert pool[:5].tolist() == subset.tolist()  # the subset first: an epoch's draw from it is unchanged in kind
    assert sorted(pool.tolist()) == [0, 1, 1, 1, 3, 3, 3, 5, 5, 5, 6]  # class 1's three images three times each
    with pytest.raises(DefbenchError, match="no training image"):
        oversampled_pool(subset, labels, GANRecipe(epochs=1, oversample_class=7, oversample_weight=2))


def test_oversampling_grows_the_class_share_of_the_batches(fmnist, tiny_classifier, batch_orders):
    """The images train_gan batches: about 10% trousers as the split has them, about 3 / 12 = 25% at weight 3, in
    batches of the same count; at weight 1 the very images of the default recipe."""
    train, _ = fmnist
    model, _ = tiny_classifier
    seen = batch_orders
    for kw in ({}, {"oversample_class": 1, "oversample_weight": 1}, {"oversample_class": 1, "oversample_weight": 3}):
        recipe = GANRecipe(epochs=1, epoch_fraction=0.2, eval_images=10, eval_restarts=1, eval_steps=1, **kw)
        train_gan("fmnist", train, model, recipe, seed=0, device=torch.device("cpu"), progress=False, max_steps=1)
    plain, off, on = (idx for idx in seen if len(idx) > 1000)  # the epochs' orders (not any validation batches)
    assert torch.equal(plain, off) and len(on) == len(plain)
    share = lambda idx: float((train.labels[idx] == 1).float().mean())  # noqa: E731
    assert abs(share(plain) - 0.1) < 0.03 and abs(share(on) - 0.25) < 0.03


def test_cowboy_refuses_a_packed_discriminator():
    """Cowboy's λ_adv term scores each candidate image with D; a packed D cannot, so it errors (and a plain D
    projects)."""
    from defbench.defenses.priors import build_gan
    from defbench.defenses.projection import ProjectionConfig, ProjectionEngine

    y = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cfg = ProjectionConfig(latent_steps=1, restarts=1, lambda_adv=0.1)
    for pack in (1, 2):
        G, D = build_gan("fmnist", pack=pack)
        engine = ProjectionEngine(G, D)
        if pack == 1:
            assert engine.project(y, cfg).x_hat.shape == y.shape
        else:
            with pytest.raises(DefbenchError, match="packs of 2"):
                engine.project(y, cfg)


def test_gan_coverage_variants_parse_numbers_and_words():
    from conftest import import_benchmark

    coverage = import_benchmark("gan_coverage")
    assert coverage.parse_variant("paper") == (None, {})
    assert coverage.parse_variant("subset_fraction=0.8,seed=1,loss=hinge,pack=2,lr_d=4e-4") == (
        1,
        {"subset_fraction": 0.8, "loss": "hinge", "pack": 2, "lr_d": 4e-4},
    )


def test_gan_coverage_table_reads_each_epoch_of_each_variant(tmp_path, monkeypatch):
    """gan_coverage.main: each variant trains the paper recipe with its one override (the seed from the variant
    or --seed), and each epoch's row gives the projection accuracy, the smallest class share with its class name,
    the trouser share (class 1) and the losses, read from the trainer's history; the header's R / L / n are the
    paper recipe's. No training: train_gan is replaced by a recorder."""
    from conftest import import_benchmark, md_row

    coverage = import_benchmark("gan_coverage")
    monkeypatch.setattr(coverage, "data_root", lambda: None)
    monkeypatch.setattr(coverage, "get_classifier", lambda *a, **k: ("clf", None))
    monkeypatch.setattr(coverage, "load_dataset", lambda *a, **k: "train-split")
    calls = []
    spread = [0.10, 0.031, 0.12, 0.10, 0.10, 0.10, 0.029, 0.14, 0.10, 0.17]  # smallest: shirt (6), trouser 3.1%

    def fake_train(dataset, train, classifier, recipe, seed, device, each_epoch=None, steering=None):
        assert each_epoch is None  # no --judge-preset, no per-epoch reading
        assert steering == classifier  # no feedback_classifier: the training classifier steers
        calls.append((dataset, train, classifier, recipe, seed))
        hist = [
            {"epoch": e, "projection_accuracy": 0.846 + e / 100, "class_spread": spread, "d_loss": 1.234, "g_loss": e}
            for e in (1, 2)
        ]
        return {}, {"history": hist}

    monkeypatch.setattr(coverage, "train_gan", fake_train)
    out = tmp_path / "cov.md"
    assert (
        coverage.main(["--variants", "paper", "lr_d=2e-4,seed=3", "--epochs", "2", "--seed", "5", "--out", str(out)])
        == 0
    )
    paper = coverage.gan_recipe("fmnist", "paper")
    assert [c[4] for c in calls] == [5, 3]  # --seed, then the variant's own
    assert calls[0][3] == dataclasses.replace(paper, epochs=2)
    assert calls[1][3] == dataclasses.replace(paper, epochs=2, lr_d=2e-4)
    assert calls[0][:3] == ("fmnist", "train-split", "clf")
    text = out.read_text()
    assert f"R = {paper.eval_restarts}, L = {paper.eval_steps}, {paper.eval_images} validation images" in text
    row = md_row(text, "lr_d=2e-4,seed=3", "2")
    assert row[2:7] == ["0.87", "2.90 (shirt)", "3.10", "1.23", "2.00"]  # 0.866 to two digits; 58 of 2000
    assert md_row(text, "paper", "1")[2] == "0.86"  # 0.856
    # the second table: every class's share at the last epoch, in label order (where the shortfall went)
    header = next(line for line in text.splitlines() if line.startswith("| variant") and "T-shirt" in line)
    assert [c.strip() for c in header.strip("|").split("|")][2:] == list(coverage.NAMES)
    shares = [r for r in text.splitlines() if r.startswith("| lr_d=2e-4,seed=3") and r.count("|") > 12]
    assert [c.strip() for c in shares[0].strip("|").split("|")][1:] == [
        "2",
        "10.00",
        "3.10",
        "12.00",
        *["10.00"] * 3,
        "2.90",
        "14.00",
        "10.00",
        "17.00",
    ]
