"""The median and TVM baselines, the checks every purification makes and the registry's defaults, against numbers
computed independently (by hand or from the documented formula), from the defense registry/baselines mutation audit
(s48): the registry's median is the documented 3 x 3 median with reflected borders and its kernel_size option
reaches the purification; a 1-pixel median is the identity and 0 is refused; a TVM weight of 0 is refused; greyscale
images go to scikit-image as 2-D images, at every weight RIDE's sweep uses, and TVM's output minimises its stated
objective w·TV(u) + ½‖u − f‖²; pixels below 0 or past the tolerance above 1 and 5-D batches are refused; a call
without a seed uses the defense's own, and purify_autograd and bpda use the seed they are handed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SeededNoise

from defbench import DefbenchError
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.registry import build_defense


def _block_and_top_row() -> torch.Tensor:
    """A 28 x 28 image of zeros with a 3 x 3 block of ones (rows and columns 5-7) and a top row of ones."""
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 5:8, 5:8] = 1.0
    x[0, 0, 0, :] = 1.0
    return x


def test_the_registry_median_is_a_3x3_median_with_reflected_borders_and_kernel_size_reaches_it():
    """By hand: a 3 x 3 median keeps a pixel of the block iff 5 of its 9 neighbours are ones, so the block becomes a
    plus (its centre and edge midpoints; its corners see 4). At the top row, reflection (a | a b c) repeats row 0,
    so each top pixel sees 6 ones of 9 and stays (zero padding or mirroring, d c b | a b c, would see 3). A 5 x 5
    median sees 9 of 25 ones in the block and 10 of 25 at the top row: all zeros."""
    x = _block_and_top_row()
    want = torch.zeros(1, 1, 28, 28)
    want[0, 0, 0, :] = 1.0
    for r, c in ((6, 6), (5, 6), (7, 6), (6, 5), (6, 7)):
        want[0, 0, r, c] = 1.0
    d = build_defense("median", "fmnist")
    assert d.config() == {"kernel_size": 3}
    assert torch.equal(d.purify(x), want)
    assert torch.equal(build_defense("median[kernel_size=5]", "fmnist").purify(x), torch.zeros_like(x))
    assert torch.equal(build_defense("median", "fmnist", overrides={"kernel_size": 5}).purify(x), torch.zeros_like(x))


def test_a_one_pixel_median_is_the_identity_and_kernel_size_0_is_refused():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(MedianFilter(1, shape=(1, 28, 28)).purify(x), x)
    for k in (0, -1):
        with pytest.raises(DefbenchError, match=f"median kernel_size must be >= 1, got {k}"):
            MedianFilter(k)


def test_a_tvm_weight_of_zero_is_refused_and_a_small_positive_one_is_not():
    for w in (0, 0.0, -0.1):
        with pytest.raises(DefbenchError, match="tvm weight must be a finite number > 0"):
            TVMinimization(w)
    with pytest.raises(DefbenchError, match="tvm weight must be a finite number > 0"):
        build_defense("tvm[weight=0]", "fmnist")
    assert build_defense("tvm[weight=0.001]", "fmnist").config() == {"weight": 0.001, "method": "chambolle"}


def _noisy_blocks() -> torch.Tensor:
    """A greyscale image of 4 x 4 flat blocks plus noise, in [0, 1], float64 (solved in float64)."""
    rng = np.random.RandomState(0)
    f = np.clip(np.kron(rng.rand(4, 4), np.ones((7, 7))) + 0.2 * rng.randn(28, 28), 0, 1)
    return torch.from_numpy(f)[None, None]


@pytest.mark.parametrize("method, weight", [("chambolle", 0.1), ("chambolle", 1.75), ("bregman", 0.075)])
def test_greyscale_tvm_is_scikit_images_2d_denoiser_at_its_defaults(method, weight):
    """A (1, 28, 28) image is solved as a 2-D image with scikit-image's own defaults (its 200 Chambolle iterations
    matter at RIDE's largest Chambolle weight 1.75; a single-channel image handed over with channel_axis comes back
    2-D from the Bregman solver)."""
    from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

    x = _noisy_blocks()
    f = x[0, 0].numpy()
    want = denoise_tv_chambolle(f, weight=weight) if method == "chambolle" else denoise_tv_bregman(f, weight=1 / weight)
    out = build_defense(f"tvm[method={method},weight={weight}]", "fmnist").purify(x)
    assert torch.equal(out[0, 0], torch.from_numpy(want))


def test_tvm_output_minimises_its_stated_objective():
    """Chambolle's TV denoising with weight w minimises E_w(u) = w·TV(u) + ½‖u − f‖², TV isotropic with forward
    differences (zero at the last row and column): the output at w has a lower E_w than the input and than the
    outputs at w/2 and 2w, and a larger w leaves a lower TV. (Where scikit-image's 200 iterations converge: at
    RIDE's w = 1.75 they stop short, and the output at 2w scores a lower E_w on this image.)"""
    f = _noisy_blocks()[0, 0].numpy()

    def tv(u):
        gx, gy = np.diff(u, axis=0, append=u[-1:]), np.diff(u, axis=1, append=u[:, -1:])
        return np.sqrt(gx**2 + gy**2).sum()

    def energy(u, w):
        return w * tv(u) + 0.5 * ((u - f) ** 2).sum()

    x = torch.from_numpy(f)[None, None]
    for w in (0.05, 0.1, 0.3):
        u = {v: TVMinimization(v, shape=(1, 28, 28)).purify(x)[0, 0].numpy() for v in (w / 2, w, 2 * w)}
        e = {v: energy(u[v], w) for v in u}
        assert e[w] < min(e[w / 2], e[2 * w], energy(f, w)), (w, e)
        assert tv(u[2 * w]) < tv(u[w]) < tv(u[w / 2]) < tv(f)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (torch.rand(2, 1, 28, 28) - 0.5, "must lie in \\[0, 1\\]"),
        (torch.full((1, 1, 28, 28), -1e-3), "must lie in \\[0, 1\\], got range \\[-0.001"),
        (torch.full((1, 1, 28, 28), 1 + 1e-3), "must lie in \\[0, 1\\], got range \\[1.001"),
        (torch.rand(1, 2, 1, 28, 28), "shape \\(N, C, H, W\\)"),
    ],
)
def test_pixels_outside_0_1_and_a_5d_batch_are_refused(bad, msg):
    with pytest.raises(DefbenchError, match=msg):
        MedianFilter().purify(bad)  # no shape: the checks that need none


def test_purify_autograd_makes_the_same_input_checks():
    d = SeededNoise(0.1, shape=(1, 28, 28))
    for bad, msg in ((torch.rand(2, 1, 28, 28) + 0.5, "must lie in"), (torch.rand(2, 1, 27, 28), "expected images")):
        with pytest.raises(DefbenchError, match=msg):
            d.purify_autograd(bad.requires_grad_(True))


def test_pixels_within_the_tolerance_of_0_and_1_are_accepted():
    x = torch.zeros(2, 1, 28, 28)
    x[0], x[1] = -5e-7, 1 + 5e-7
    assert torch.equal(MedianFilter().purify(x), x.clamp(0, 1))


def _noise(x, seed, sigma=0.1):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_a_call_without_a_seed_uses_the_defense_s_own_and_every_hook_the_one_it_is_handed():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    d = SeededNoise(0.1, shape=(1, 28, 28))
    d.seed = 7
    assert torch.equal(d.purify(x), _noise(x, 7))
    assert torch.equal(d.purify(x, seed=5), _noise(x, 5))
    assert torch.equal(d.purify_autograd(x).detach(), _noise(x, 7))
    assert torch.equal(d.purify_autograd(x, seed=5).detach(), _noise(x, 5))
    # bpda: x + (purify(x) - x), purify's values up to rounding
    assert torch.allclose(d.bpda(x, seed=5).detach(), _noise(x, 5), atol=1e-6)
    assert torch.allclose(d.bpda(x).detach(), _noise(x, 7), atol=1e-6)


def test_defense_none_takes_no_options():
    with pytest.raises(DefbenchError, match="defense none takes no options"):
        build_defense("none", "fmnist", overrides={"kernel_size": 3})
    with pytest.raises(DefbenchError, match="defense none takes no options"):
        build_defense("none[k=1]", "fmnist")
    assert build_defense("none", "fmnist").config() == {}


def test_derive_seed_is_the_documented_hash_of_every_part():
    """derive_seed(*parts): the first 8 bytes of sha256(repr(parts)), little-endian, modulo 2^63 - 1; a stored
    result's draws are reproducible only while this holds, and the run seed (the first part) changes it."""
    import hashlib

    from defbench.defenses.base import derive_seed

    for parts in ((0, "s0", "median", 3), (1, "s0", "median", 3), (0,), (7, "cell", 0, 2)):
        want = int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") % (2**63 - 1)
        assert derive_seed(*parts) == want
    assert derive_seed(0, "a", 1) != derive_seed(1, "a", 1) != derive_seed(1, "a", 2)
    assert derive_seed(0, "a") == 450643532380275732  # sha256("(0, 'a')")[:8] read little-endian


# ------------------------------------------------------------------ what the registry hands each defense


class _Models:
    """A ModelSource of the session's random GAN and a random encoder, recording what it was asked for."""

    def __init__(self, G, D):
        from defbench.defenses.priors import Encoder

        torch.manual_seed(1)
        self.G, self.D, self.E, self.asked = G, D, Encoder(1, 28).eval(), []

    def get_gan(self, *a, **k):
        self.asked.append("gan")
        return self.G, self.D, {"id": "g", "sha256": "x"}

    def get_encoder(self, *a, **k):
        self.asked.append("encoder")
        return self.E, {"id": "e", "sha256": "y"}


def test_aliases_and_malformed_variants():
    from defbench.defenses.registry import check_name

    assert [check_name(n) for n in ("No-Defense", "median_filter", "TV", "Defense-GAN")] == [
        "none",
        "median",
        "tvm",
        "defensegan",
    ]
    assert check_name("median[kernel_size=3]") == "median[kernel_size=3]"
    for bad in ("median[kernel_size=3][x=1]", "median[[kernel_size=3]"):
        with pytest.raises(DefbenchError, match="must look like NAME\\[key=value"):
            check_name(bad)


@pytest.mark.parametrize("name", ["median", "tvm"])
def test_a_registry_baseline_refuses_images_of_another_dataset(name):
    d = build_defense(name, "fmnist")
    assert d.shape == (1, 28, 28)
    d.purify(torch.rand(1, 1, 28, 28))  # silent on its own dataset's images
    with pytest.raises(DefbenchError, match="expected images of shape \\(1, 28, 28\\)"):
        d.purify(torch.rand(1, 3, 32, 32))


def test_the_seed_given_to_the_registry_is_the_defense_s_own(random_gan, fmnist_images):
    """RIDE and a GAN-prior defense with restarts are randomized: built with seed 3, a call without a seed draws
    as a call with seed 3 does, not as seed 0."""
    x = fmnist_images[0][:2]
    small = {"iterations": 2, "checkpoints": 1, "estimate_samples": 1, "noise_block": 1}
    models = _Models(*random_gan)
    for label, overrides in (("ride", small), ("defensegan", {"latent_steps": 2, "restarts": 2})):
        d = build_defense(label, "fmnist", overrides=overrides, seed=3, models=models)
        out = d.purify(x)
        assert torch.equal(out, d.purify(x, seed=3)), label
        assert not torch.equal(out, d.purify(x, seed=0)), label
    assert build_defense("defensegan", "fmnist", seed=3, models=models).config()["seed"] == 3


def test_invgan_gets_its_encoder_whatever_its_start(random_gan):
    """InvGAN's reparameterization x ↦ G(I(x)) needs the encoder even when its projection starts elsewhere;
    DefenseGAN asks for one only when it starts from it."""
    models = _Models(*random_gan)
    d = build_defense("invgan[init=random]", "fmnist", models=models)
    assert d.has_reparameterization and models.asked == ["gan", "encoder"]
    models.asked.clear()
    assert not build_defense("defensegan", "fmnist", models=models).has_reparameterization
    assert models.asked == ["gan"]
    assert build_defense("defensegan[init=encoder,restarts=1]", "fmnist", models=models).has_reparameterization


def test_check_options_leaves_the_gan_tag_to_the_cli_and_checks_the_rest():
    from defbench.defenses.registry import check_options

    check_options("defensegan[gan=sub80-s1]")
    check_options("mimicgan", overrides={"gan": "no3", "latent_steps": 5})
    check_options("median[kernel_size=5]")
    with pytest.raises(DefbenchError, match="restarts must be >= 1"):
        check_options("defensegan[gan=sub80-s1,restarts=0]")
    with pytest.raises(DefbenchError, match="median kernel_size must be >= 1, got 0"):
        check_options("median", overrides={"kernel_size": 0})


# ------------------------------------------------------------------ datasets: names, class counts and orders


def test_dataset_aliases_shapes_class_counts_and_class_names():
    """Every documented alias; the image shapes and class counts of the four datasets; the class names in label
    order as the datasets publish them (Fashion-MNIST's README, CIFAR-10's batches.meta)."""
    from defbench.datasets import CLASS_NAMES, NUM_CLASSES, SHAPES, canonical_name

    for canon, aliases in {
        "fmnist": ("fmnist", "Fashion-MNIST", "fashionmnist", "fashion_mnist"),
        "mnist": ("MNIST",),
        "cifar10": ("cifar10", "CIFAR-10", "cifar"),
        "imagenet": ("ImageNet", "imagenet-val", "ILSVRC2012"),
    }.items():
        assert {canonical_name(a) for a in aliases} == {canon}
    assert SHAPES == {"fmnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet": (3, 224, 224)}
    assert NUM_CLASSES == {"fmnist": 10, "mnist": 10, "cifar10": 10, "imagenet": 1000}
    assert CLASS_NAMES["fmnist"] == (
        "T-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle boot",
    )
    assert CLASS_NAMES["cifar10"] == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )


def _toy_data(n: int = 60):
    from defbench.datasets import ImageData

    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    return ImageData("fmnist", "test", torch.arange(n) % 10, "toy", images=images)


def test_eval_indices_refuses_zero_and_shuffled_batches_follow_the_seed():
    ds = _toy_data()
    for n in (0, -3):
        with pytest.raises(DefbenchError, match=f"--n must be positive, got {n}"):
            ds.eval_indices(n, 0)
    assert ds.eval_indices(1, 0).shape == (1,)
    # batches(shuffle=True, seed=s): the images in the order of torch.randperm(N) drawn from a generator seeded s
    for seed in (0, 5):
        want = torch.randperm(60, generator=torch.Generator().manual_seed(seed))
        got = torch.cat([x[:, 0, 0, 0] for x, _ in ds.batches(16, shuffle=True, seed=seed)])
        assert torch.equal((got * 255).round().long(), want), seed
    x, y = next(ds.batches(60))
    assert torch.equal(y, torch.arange(60) % 10) and torch.equal(x[:, 0, 0, 0], torch.arange(60) / 255.0)


def test_stratified_extra_images_go_to_a_seeded_draw_of_classes_not_the_lowest_labels():
    """n = 15 of 10 classes: one image of every class and one more of 5 classes drawn by the seed; over several
    seeds those are not always classes 0-4."""
    ds = _toy_data(200)
    extra = set()
    for seed in range(4):
        counts = torch.bincount(ds.labels[ds.eval_indices(15, seed, stratified=True)], minlength=10)
        assert sorted(counts.tolist()) == [1] * 5 + [2] * 5
        extra.add(tuple(torch.nonzero(counts == 2).flatten().tolist()))
    assert extra != {(0, 1, 2, 3, 4)} and len(extra) > 1


def test_a_gan_prior_defense_without_models_and_a_stratified_draw_short_of_a_class_are_one_line_errors(random_gan):
    with pytest.raises(DefbenchError, match="defense cowboy projects onto a trained GAN prior: .* or pass models="):
        build_defense("cowboy", "fmnist")
    assert build_defense("cowboy", "fmnist", models=_Models(*random_gan)).name == "cowboy"
    ds = _toy_data(200)  # 20 images of each class
    assert len(ds.eval_indices(200, 0, stratified=True)) == 200
    labels = ds.labels.clone()
    labels[labels == 3] = 4  # class 3 gone, class 4 has 40: 9 classes of 199 // 9 + 1 = 23 or 22 images
    short = type(ds)("fmnist", "test", labels, "toy", images=ds.images)
    with pytest.raises(DefbenchError, match="--n 199 needs 2[23] images of class [^4], the fmnist test set has 20"):
        short.eval_indices(199, 0, stratified=True)
