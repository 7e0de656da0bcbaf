import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.base import NoDefense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.registry import DEFENSES, check_name
from defbench.harness.models import build_defense  # GAN-prior defenses take their models from the zoo
from defbench.defenses.ride import RIDE, RIDEConfig

TINY_RIDE = RIDEConfig.for_dataset("fmnist", iterations=10, checkpoints=2, estimate_samples=2, noise_block=5)


def test_ride_alone_equals_inside_a_batch(fmnist_images):
    x, _ = fmnist_images
    ride = RIDE(TINY_RIDE, shape=(1, 28, 28))
    alone = ride.purify(x[3:4], seed=11)
    batch = ride.purify(x[:8], seed=11)
    assert torch.allclose(alone, batch[3:4], atol=1e-5)
    # the network really trained: the output differs from the input and from another seed
    assert (alone - x[3:4]).abs().mean() > 1e-3
    assert not torch.allclose(alone, ride.purify(x[3:4], seed=12), atol=1e-4)


def test_ride_is_one_grouped_program_not_a_loop(fmnist_images, monkeypatch):
    """The batch of networks is evaluated with one conv2d call per layer, whatever the batch size."""
    import torch.nn.functional as F

    calls = []
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **k: calls.append(k.get("groups", 1)) or real(*a, **k))
    x, _ = fmnist_images
    RIDE(RIDEConfig(iterations=1, checkpoints=1, estimate_samples=1, noise_block=1), shape=(1, 28, 28)).purify(
        x[:8], seed=0
    )
    # 1 training step + 1 estimate pass, 8 layers each: 16 calls, each over all 8 networks
    assert len(calls) == 16 and set(calls) == {8}


def test_median_and_tvm_smooth(fmnist_images):
    x, _ = fmnist_images
    noisy = (x[:4] + 0.2 * torch.randn_like(x[:4])).clamp(0, 1)
    for d in (MedianFilter(3, shape=(1, 28, 28)), TVMinimization(0.1, shape=(1, 28, 28))):
        out = d.purify(noisy)
        assert out.shape == noisy.shape
        assert (out - x[:4]).pow(2).mean() < (noisy - x[:4]).pow(2).mean()


def test_median_is_scipys_median_filter_per_channel():
    """On RGB images (CIFAR-10's path) the median filter is scipy's k x k median of each channel with reflected
    borders, bit for bit, and k matters (an unused kernel_size would pass a mere "it smooths" check)."""
    from scipy.ndimage import median_filter

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    outs = {}
    for k in (3, 5):
        outs[k] = MedianFilter(k, shape=(3, 16, 16)).purify(x)
        want = median_filter(x.numpy(), size=(1, 1, k, k), mode="reflect")
        assert torch.equal(outs[k], torch.from_numpy(want)), k
    assert (outs[3] - outs[5]).abs().max() > 0.05


@pytest.mark.parametrize("method", ["chambolle", "bregman"])
def test_tvm_is_scikit_images_denoiser_and_its_weight_smooths_more(method):
    """RGB images go to scikit-image as H x W x C with channel_axis (not as 16 channels of width 3), Bregman's
    weight inverted (its weight is the fidelity, ours the strength); a larger weight leaves less total variation
    in every channel, for both solvers."""
    from skimage.restoration import denoise_tv_bregman, denoise_tv_chambolle

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = TVMinimization(0.2, method, shape=(3, 16, 16)).purify(x)
    img = x[1].numpy().transpose(1, 2, 0)
    if method == "chambolle":
        want = denoise_tv_chambolle(img, weight=0.2, channel_axis=-1)
    else:
        want = denoise_tv_bregman(img, weight=1 / 0.2, channel_axis=-1)
    # equal, not close: float64 images are solved in float64 (a solver run in float32 stays within allclose's
    # tolerance of this and is what the equality rules out)
    assert torch.equal(out[1], torch.from_numpy(want.transpose(2, 0, 1)))

    def tv(y):  # per image and channel
        return (y.diff(dim=-1).abs().sum((-2, -1)) + y.diff(dim=-2).abs().sum((-2, -1))).flatten()

    weak, strong = (TVMinimization(w, method, shape=(3, 16, 16)).purify(x) for w in (0.05, 0.3))
    assert (tv(strong) < tv(weak)).all() and (tv(weak) < tv(x)).all()


@pytest.mark.parametrize(
    "bad, msg",
    [
        (torch.rand(28, 28), "shape \\(N, C, H, W\\)"),
        (torch.rand(2, 3, 28, 28), "expected images of shape \\(1, 28, 28\\)"),
        (torch.rand(2, 1, 28, 28) * 2, "must lie in \\[0, 1\\]"),
        (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
        (torch.rand(2, 1, 28, 28).numpy(), "expected a torch.Tensor batch, got ndarray"),
        (torch.rand(0, 1, 28, 28), "empty batch"),
    ],
)
def test_bad_input_clear_error(bad, msg, random_gan):
    G, D = random_gan
    defenses = [
        NoDefense((1, 28, 28)),
        MedianFilter(shape=(1, 28, 28)),
        RIDE(TINY_RIDE, shape=(1, 28, 28)),
        GANPriorDefense("defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1), shape=(1, 28, 28)),
    ]
    for d in defenses:
        with pytest.raises(DefbenchError, match=msg):
            d.purify(bad)


def test_bpda_forward_is_purify_backward_is_identity(fmnist_images):
    x, _ = fmnist_images
    d = MedianFilter(3, shape=(1, 28, 28))
    xr = x[:2].clone().requires_grad_(True)
    out = d.bpda(xr)
    assert torch.allclose(out, d.purify(x[:2]))
    (out * torch.arange(784.0).view(1, 1, 28, 28)).sum().backward()
    assert torch.allclose(xr.grad, torch.arange(784.0).view(1, 1, 28, 28).expand(2, 1, 28, 28))


def test_registry_names_and_errors():
    assert check_name("DefenseGAN") == "defensegan"
    with pytest.raises(DefbenchError, match="choose one of: none, defensegan"):
        check_name("magnet")
    with pytest.raises(DefbenchError, match="valid: "):
        build_defense("ride", "fmnist", overrides={"K": 3})
    assert set(DEFENSES) == {"none", "defensegan", "cowboy", "invgan", "mimicgan", "ride", "median", "tvm"}
    assert build_defense("ride", "fmnist", overrides={"iterations": 7}).cfg.iterations == 7


def test_variant_labels():
    """NAME[key=value,...] fixes options in a defense's name: one matrix can hold several settings of one defense."""
    from defbench.defenses.registry import split_names, split_variant

    assert split_variant("Defense-GAN[restarts=1, latent_steps=50]") == (
        "defensegan",
        {"restarts": 1, "latent_steps": 50},
    )
    assert check_name("defensegan[restarts=1,latent_steps=50]") == "defensegan[latent_steps=50,restarts=1]"
    assert check_name("mimicgan[gan=sub80-s1]") == "mimicgan[gan=sub80-s1]"
    assert split_names("none,defensegan[restarts=1,latent_steps=5],tvm") == [
        "none",
        "defensegan[restarts=1,latent_steps=5]",
        "tvm",
    ]
    with pytest.raises(DefbenchError, match="choose one of"):
        check_name("magnet[k=1]")
    with pytest.raises(DefbenchError, match="must look like key=value"):
        check_name("ride[iterations]")
    with pytest.raises(DefbenchError, match="must look like NAME\\[key=value"):
        check_name("ride[iterations=3")
    d = build_defense("ride[iterations=4]", "fmnist", overrides={"iterations": 9, "checkpoints": 2})
    assert (d.cfg.iterations, d.cfg.checkpoints) == (4, 2)  # the variant's own options win
    assert build_defense("median[kernel_size=5]", "fmnist").config()["kernel_size"] == 5
    with pytest.raises(DefbenchError, match="valid: "):
        build_defense("tvm[kernel_size=3]", "fmnist")


def test_gan_variant_records_its_models(tiny_zoo):
    """A GAN replica is a variant option; the models' zoo ids and hashes are part of the recorded config."""
    from conftest import save_gan, stand_in_gan

    save_gan(*stand_in_gan("fmnist", 5), "fmnist", "sub80-s7")
    a = build_defense("defensegan", "fmnist", "quick")
    b = build_defense("defensegan[gan=sub80-s7]", "fmnist", "quick")
    assert a.config()["models"]["gan"].startswith("gan-fmnist-quick@")
    assert b.config()["models"]["gan"].startswith("gan-fmnist-quick-sub80-s7@")
    assert a.config_hash() != b.config_hash()
    assert not torch.equal(next(a.G.parameters()), next(b.G.parameters()))
    with pytest.raises(DefbenchError, match="--holdout-class 4"):
        build_defense("defensegan[gan=no4]", "fmnist", "quick", train_missing=False)
    with pytest.raises(DefbenchError, match="GAN tag 'bogus'"):
        build_defense("defensegan[gan=bogus]", "fmnist", "quick", train_missing=False)
