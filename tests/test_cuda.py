"""``--device cuda``: the projection engine, RIDE and one matrix cell run on a CUDA device, give finite outputs
that match the CPU's within float tolerance, and their hot loops make the host wait for the device no more
often with more steps. Skipped without CUDA; ``benchmarks/gpu_check.sh`` runs this file on a GPU machine.

TF32 is switched off for these comparisons (PyTorch lets cuDNN convolutions use it by default, which moves
results by ~1e-3 against a CPU); the random draws of every defense come from CPU generators, so both devices
start from the same latents, surrogates and noise.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import warnings

import pytest
import torch

from defbench.cli import main
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.priors import Encoder
from defbench.defenses.projection import GPU_CHUNK, default_chunk
from defbench.defenses.ride import RIDE, RIDEConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# cuBLAS reads its workspace setting when this process first uses it, which is before the deterministic-kernel
# test below switches the rest on (as resolve_device does before a CLI run's first CUDA work)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

CUDA = torch.device("cuda")
SMALL = {
    "defensegan": dict(latent_steps=5, restarts=3),
    "cowboy": dict(latent_steps=5, restarts=3),
    "invgan": dict(latent_steps=6),
    "mimicgan": dict(outer_iters=2, latent_steps=3, surrogate_steps=3),
}


@pytest.fixture(autouse=True)
def no_tf32():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _x(n=6):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(5))


def _defense(name, G, D, device, **kw):
    torch.manual_seed(3)
    enc = Encoder(1, 28).eval().to(device) if name == "invgan" else None
    cfg = PAPER_CONFIGS[name].with_(**{**SMALL[name], **kw})
    G, D = copy.deepcopy(G).to(device), copy.deepcopy(D).to(device)
    return GANPriorDefense(name, G, D, enc, cfg, shape=(1, 28, 28))


def _syncs(fn) -> int:
    """Synchronising CUDA calls ``fn`` makes (PyTorch's sync debug mode, counted as warnings)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in seen)


def test_default_chunk_is_large_on_this_gpu():
    assert default_chunk(CUDA) >= 1024
    if torch.cuda.get_device_properties(CUDA).total_memory >= 64 * 2**30:
        assert default_chunk(CUDA) == GPU_CHUNK


@pytest.mark.parametrize("name", sorted(SMALL))
def test_projection_on_cuda_matches_cpu(name, random_gan):
    G, D = random_gan
    x = _x()
    cpu = _defense(name, G, D, "cpu").project(x, seed=11)
    gpu = _defense(name, G, D, CUDA).project(x.to(CUDA), seed=11)
    assert gpu.x_hat.is_cuda and torch.isfinite(gpu.x_hat).all() and torch.isfinite(gpu.error).all()
    assert torch.allclose(gpu.x_hat.cpu(), cpu.x_hat, atol=1e-3), (gpu.x_hat.cpu() - cpu.x_hat).abs().max()
    assert torch.allclose(gpu.error.cpu(), cpu.error, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_projection_syncs_do_not_grow_with_steps(name, random_gan):
    G, D = random_gan
    x = _x().to(CUDA)
    counts = []
    for steps in (2, 8):
        d = _defense(name, G, D, CUDA, latent_steps=steps)
        d.project(x, seed=0)  # warm-up: lazy initialisation may synchronise once
        counts.append(_syncs(lambda d=d: d.project(x, seed=0)))
    assert counts[0] == counts[1], counts


def test_ride_on_cuda_matches_cpu():
    cfg = RIDEConfig.for_dataset("mnist", iterations=12, checkpoints=2, noise_block=5, estimate_samples=2)
    x = _x(3)
    cpu = RIDE(cfg, shape=(1, 28, 28)).purify(x, seed=2)
    gpu = RIDE(cfg, shape=(1, 28, 28), device="cuda").purify(x, seed=2)  # device=cuda, CPU images in and out
    on = RIDE(cfg, shape=(1, 28, 28)).purify(x.to(CUDA), seed=2)  # images on the GPU: it runs there
    assert not gpu.is_cuda and on.is_cuda
    assert torch.isfinite(gpu).all() and torch.isfinite(on).all()
    assert torch.allclose(gpu, cpu, atol=1e-4) and torch.allclose(on.cpu(), cpu, atol=1e-4)


def test_ride_syncs_do_not_grow_with_iterations():
    x = _x(3).to(CUDA)
    counts = []
    for k in (5, 20):
        r = RIDE(RIDEConfig.for_dataset("mnist", iterations=k, checkpoints=2, noise_block=5), shape=(1, 28, 28))
        r.purify(x, seed=0)
        counts.append(_syncs(lambda r=r: r._purify(x, seed=0)))
    assert counts[0] == counts[1], counts


def _cells(out):
    with sqlite3.connect(out / "defbench.sqlite") as c:
        return {
            (d, a, t): (n, k, dev)
            for d, a, t, n, k, dev in c.execute("SELECT defense, attack, threat, n, correct, device FROM cells")
        }


def test_tiny_matrix_cell_on_cuda_matches_cpu(tiny_zoo, tmp_path):
    got = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / dev
        args = ["matrix", "--defense", "defensegan", "--attacks", "fgsm", "--n", "8", "--batch-size", "8"]
        args += ["--preset", "quick", "--no-progress", "--device", dev, "--out", str(out)]
        args += ["--defense-opt", "defensegan:latent_steps=5", "--defense-opt", "defensegan:restarts=2"]
        assert main(args) == 0
        got[dev] = _cells(out)
    assert got["cpu"].keys() == got["cuda"].keys() and len(got["cuda"]) >= 2
    for key, (n, correct, device) in got["cuda"].items():
        n_cpu, correct_cpu, _ = got["cpu"][key]
        assert device.startswith("cuda") and n == n_cpu == 8
        assert abs(correct - correct_cpu) <= 1, (key, correct, correct_cpu)  # one image may flip on a rounding


@pytest.mark.parametrize("name", ["defensegan", "invgan"])
def test_projection_twice_on_cuda_is_bitwise_equal(name, random_gan, torch_switches):
    """With the kernels resolve_device switches on, one projection computed twice with one seed is the same bit
    for bit, as on the CPU (PyTorch's default kernels gave one DefenseGAN cell predictions that differed on 7-8 of
    100 images between two computations on an H200: docs/RESULTS.md); the gradient check agrees."""
    from types import SimpleNamespace

    from defbench.harness.matrix import MatrixRunner
    from defbench.seeding import cuda_kernels_deterministic, resolve_device

    resolve_device("cuda")
    assert cuda_kernels_deterministic()
    G, D = random_gan
    x = _x(16).to(CUDA)
    d = _defense(name, G, D, CUDA, latent_steps=40)
    assert torch.equal(d.project(x, seed=7).x_hat, d.project(x, seed=7).x_hat)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).to(CUDA)
    gc = MatrixRunner.gradient_check(SimpleNamespace(classifier=clf), d, x[:8], torch.arange(8, device=CUDA))
    assert not gc["nondeterministic"] and not gc["cuda_nondeterministic_kernels"]
