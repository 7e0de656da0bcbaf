import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.base import NoDefense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.registry import DEFENSES, build_defense, check_name, parse_overrides
from defbench.defenses.ride import RIDE, RIDEConfig

TINY_RIDE = RIDEConfig(iterations=20, checkpoints=2, estimate_samples=2, noise_block=5)


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
    RIDE(RIDEConfig(iterations=1, checkpoints=1, estimate_samples=1, noise_block=1), shape=(1, 28, 28)).purify(x[:8], seed=0)
    # 1 training step + 1 estimate pass, 8 layers each: 16 calls, each over all 8 networks
    assert len(calls) == 16 and set(calls) == {8}


def test_median_and_tvm_smooth(fmnist_images):
    x, _ = fmnist_images
    noisy = (x[:4] + 0.2 * torch.randn_like(x[:4])).clamp(0, 1)
    for d in (MedianFilter(3, shape=(1, 28, 28)), TVMinimization(0.1, shape=(1, 28, 28))):
        out = d.purify(noisy)
        assert out.shape == noisy.shape
        assert (out - x[:4]).pow(2).mean() < (noisy - x[:4]).pow(2).mean()


@pytest.mark.parametrize("bad, msg", [
    (torch.rand(28, 28), "shape \\(N, C, H, W\\)"),
    (torch.rand(2, 3, 28, 28), "expected images of shape \\(1, 28, 28\\)"),
    (torch.rand(2, 1, 28, 28) * 2, "must lie in \\[0, 1\\]"),
    (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
])
def test_bad_input_clear_error(bad, msg, random_gan):
    G, D = random_gan
    defenses = [NoDefense((1, 28, 28)), MedianFilter(shape=(1, 28, 28)), RIDE(TINY_RIDE, shape=(1, 28, 28)),
                GANPriorDefense("defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1),
                                shape=(1, 28, 28))]
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
    assert parse_overrides(["latent_steps=5", "optimizer=adam"]) == {"latent_steps": 5, "optimizer": "adam"}
