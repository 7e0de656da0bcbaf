"""benchmarks/surrogate_trace.py: one record per step of Alg. 1, the engine restored afterwards."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark

import defbench.defenses.projection as projection
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense


@pytest.fixture(scope="module")
def tracer():
    return import_benchmark("surrogate_trace")


def _mimic(G, D, **kw):
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=2, surrogate_steps=3, latent_steps=2, **kw)
    return GANPriorDefense("mimicgan", G, D, cfg=cfg, shape=(1, 28, 28))


def test_trace_records_every_step_and_restores_the_engine(tracer, random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    hooks = projection.MimicSurrogate, projection.progress_step
    frozen = tracer.trace(_mimic(G, D, surrogate_lr=0.0), x[:8], x[:8], seed=0)
    assert (projection.MimicSurrogate, projection.progress_step) == hooks
    assert len(frozen) == 2 * (3 + 2)
    # γs = 0: f̂ never moves, so every record repeats the start's live share and W = 1 (the near-identity start)
    start = tracer.start_live(_mimic(G, D, surrogate_lr=0.0), x[:8], seed=0)
    assert all(r["live"] == pytest.approx(start) and r["w"] == 1.0 for r in frozen)
    moving = tracer.trace(_mimic(G, D), x[:8], x[:8], seed=0)
    assert moving[0]["w"] != 1.0 and moving[-1]["w"] != moving[0]["w"]  # f̂ learns from its first step on
    # the conv path's size beside W·x, by hand from a surrogate set to a known state
    f = projection.MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0), activation="tanh")
    with torch.no_grad():
        for conv in (f.conv1, f.conv2):
            conv.weight.zero_(), conv.bias.zero_()
        f.conv2.bias.fill_(-0.5)
        f.mask.fill_(0.2)
    probe = x[:8]
    expected = (torch.tanh(torch.tensor(-0.5)) * 0.2).abs() / probe.abs().mean()
    assert tracer.conv_share(f, probe) == pytest.approx(expected.item(), rel=1e-5)
    assert all(r["conv"] > 0 for r in frozen)  # the near-identity start: a small, open path


def test_trace_refuses_a_defense_without_a_learned_surrogate(tracer, random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    with pytest.raises(SystemExit, match="no learned surrogate"):
        tracer.trace(
            GANPriorDefense(
                "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1, restarts=1), shape=(1, 28, 28)
            ),
            x[:2],
            x[:2],
            seed=0,
        )


def test_trace_follows_the_spatial_surrogate(tracer, random_gan, fmnist_images):
    """surrogate_arch=mimicgan2: the trace watches MimicGAN-2's surrogate too, its shortcut state being the affine
    map's distance from the identity (0 at the start, moving once f̂ learns) and its conv path measured beside
    A(x)."""
    G, D = random_gan
    x, _ = fmnist_images
    hooks = projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step
    frozen = tracer.trace(_mimic(G, D, surrogate_lr=0.0, surrogate_arch="mimicgan2"), x[:8], x[:8], seed=0)
    assert (projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step) == hooks
    assert len(frozen) == 2 * (3 + 2) and all(r["w"] == 0.0 for r in frozen)  # γs = 0: A stays I
    moving = tracer.trace(_mimic(G, D, surrogate_arch="mimicgan2"), x[:8], x[:8], seed=0)
    assert moving[0]["w"] > 0 and moving[-1]["w"] != moving[0]["w"]
    f = projection.SpatialMimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    assert tracer.conv_share(f, x[:8]) == pytest.approx(0.0, abs=1e-6)  # mask 0: f̂ = A(x), nothing beside it
    assert f.last_conv is f.conv4 and f.shortcut_state() == 0.0
