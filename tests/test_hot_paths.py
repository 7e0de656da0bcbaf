"""The hot loops (the projection engine's latent steps, RIDE's DAE iterations) stay on the device: no host
synchronisation per step, the same outputs as before they were made so, and a chunk size chosen per device.

The reference numbers below were printed by the code of commit f478cbc, before RIDE's draws moved to pinned,
threaded blocks and the projection's final gather to a device index; on the machine that made them the new
code's outputs were bitwise equal to the old ones at 1 and 2 threads. The tolerance only absorbs another
CPU's float rounding: a change of restarts, draws or update order moves these sums by far more.
"""

from __future__ import annotations

import sys

import pytest
import torch

from defbench.defenses import projection
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import Encoder
from defbench.defenses.projection import CPU_CHUNK, GPU_CHUNK, ProjectionEngine, default_chunk
from defbench.defenses.ride import RIDE, RIDEConfig, _Draws

CASES = {
    "defensegan": dict(latent_steps=7, restarts=3),
    "cowboy": dict(latent_steps=7, restarts=3),
    "invgan": dict(latent_steps=9),
    "mimicgan": dict(outer_iters=2, latent_steps=3, surrogate_steps=3),
}
#: per image: sum of x̂, then the sum of x̂ weighted by linspace(-1, 1) over its 784 pixels; then the errors
REFERENCE = {
    "defensegan": (
        [312.7316, 313.246, 314.1093, 314.3861, 312.7614, 313.1862, 0.5893, 0.1587, 0.5592, 0.2451, -0.5267, 0.6164],
        [0.095709, 0.081091, 0.092677, 0.093831, 0.08419, 0.089294],
    ),
    "cowboy": (
        [312.7317, 313.2459, 314.1092, 314.386, 312.7613, 313.1863, 0.5893, 0.1587, 0.5591, 0.2451, -0.5268, 0.6164],
        [0.095709, 0.081091, 0.092677, 0.093831, 0.08419, 0.089294],
    ),
    "invgan": (
        [308.9724, 309.0089, 308.9616, 308.969, 308.9615, 308.994, 0.0208, 0.0329, 0.0114, 0.014, 0.029, 0.0268],
        [0.096876, 0.081838, 0.094501, 0.095494, 0.084841, 0.090093],
    ),
    "mimicgan": (
        [316.5253, 316.3396, 316.6624, 319.4518, 315.329, 316.5776, -0.4244, 0.0565, 0.7549, 0.4983, 0.2213, 0.1433],
        [0.085375, 0.073247, 0.080108, 0.078747, 0.074196, 0.07556],
    ),
}
RIDE_REFERENCE = [378.2091, 371.1838, 387.3884, 0.3643, -0.85, -0.5085]


def _inputs():
    return torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(5))


def _fingerprint(t: torch.Tensor) -> torch.Tensor:
    f = t.flatten(1)
    return torch.cat([f.sum(1), (f * torch.linspace(-1, 1, f.shape[1])).sum(1)])


def _encoder():
    torch.manual_seed(3)
    return Encoder(1, 28).eval()


def _defense(name, G, D, **kw):
    cfg = PAPER_CONFIGS[name].with_(**{**CASES[name], **kw})
    return GANPriorDefense(name, G, D, _encoder() if name == "invgan" else None, cfg, shape=(1, 28, 28))


@pytest.mark.parametrize("name", sorted(CASES))
def test_projection_outputs_unchanged(name, random_gan):
    G, D = random_gan
    p = _defense(name, G, D).project(_inputs(), seed=11)
    sums, errors = REFERENCE[name]
    assert torch.allclose(_fingerprint(p.x_hat), torch.tensor(sums), atol=2e-3, rtol=0)
    assert torch.allclose(p.error, torch.tensor(errors), atol=1e-5, rtol=0)


def test_ride_output_unchanged():
    cfg = RIDEConfig.for_dataset("mnist", iterations=12, checkpoints=2, noise_block=5, estimate_samples=2)
    out = RIDE(cfg, shape=(1, 28, 28)).purify(_inputs()[:3], seed=2)
    assert torch.allclose(_fingerprint(out), torch.tensor(RIDE_REFERENCE), atol=2e-3, rtol=0)


def test_threaded_draws_equal_serial_draws():
    def draws(workers):
        d = _Draws([torch.Generator().manual_seed(i) for i in range(5)], "cpu", workers=workers)
        return torch.cat([d.normal(3, 1, 4, 4).flatten(), d.uniform(3, 2, 4, 4).flatten()])

    assert torch.equal(draws(1), draws(3)) and torch.equal(draws(1), draws(8))


SYNCS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__")


@pytest.fixture()
def sync_counter(monkeypatch):
    """Counts calls of the Tensor methods that make the host wait for the device (on a GPU). Calls from inside
    torch.optim are left out: they read the optimisers' step counters, which PyTorch keeps on the CPU."""
    counts = dict.fromkeys(SYNCS, 0)
    for name in SYNCS:
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, _orig=orig, _name=name, **k):
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("torch.optim"):
                counts[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return counts


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_host_sync_per_latent_step(name, random_gan, sync_counter):
    """The host-sync calls of a projection do not grow with its number of steps."""
    G, D = random_gan
    x = _inputs()
    seen = []
    for steps in (1, 4):
        d = _defense(name, G, D, latent_steps=steps)
        for k in SYNCS:
            sync_counter[k] = 0
        d.engine.project(x, d.cfg, seed=1)
        seen.append(dict(sync_counter))
    assert seen[0] == seen[1]


def test_no_host_sync_per_ride_iteration(sync_counter):
    x = _inputs()[:3]
    seen = []
    for k_iter in (2, 6):
        r = RIDE(RIDEConfig.for_dataset("mnist", iterations=k_iter, checkpoints=2, noise_block=50), shape=(1, 28, 28))
        for k in SYNCS:
            sync_counter[k] = 0
        r._purify(x, seed=0)
        seen.append(dict(sync_counter))
    assert seen[0] == seen[1]


def test_default_chunk_per_device():
    assert default_chunk(torch.device("cpu")) == CPU_CHUNK == 200  # today's CPU value
    assert default_chunk("cuda", total_memory=141 * 2**30) == GPU_CHUNK == 8192  # an H200: everything at once
    assert default_chunk("cuda", total_memory=8 * 2**30) == 1024  # a quarter of 8 GiB at 2 MiB per latent
    assert default_chunk("cuda", total_memory=2**30) == CPU_CHUNK  # never below the CPU value
    assert default_chunk("cuda:1", total_memory=141 * 2**30) == GPU_CHUNK


def test_engine_asks_default_chunk_for_its_device(random_gan, monkeypatch):
    G, _ = random_gan
    asked = []

    def spy(device):
        asked.append(torch.device(device).type)
        return 2  # two latents per chunk: one image of two restarts

    monkeypatch.setattr(projection, "default_chunk", spy)
    cfg = PAPER_CONFIGS["defensegan"].with_(latent_steps=2, restarts=2)
    x = _inputs()[:3]
    a = ProjectionEngine(G).project(x, cfg, seed=0)
    assert asked == ["cpu"]
    b = ProjectionEngine(G).project(x, cfg.with_(chunk_size=6), seed=0)  # an explicit chunk size wins
    assert asked == ["cpu"] and torch.allclose(a.x_hat, b.x_hat, atol=1e-5)
