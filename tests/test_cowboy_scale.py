"""benchmarks/cowboy_scale.py with a linear fake GAN: the mean latent-gradient norms of the fidelity term and of
λ_adv · log(1 − D(G(z))) at DefenseGAN's z*, and their ratios, against the closed-form gradients."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import import_benchmark, md_row

from defbench.datasets import ImageData

D_LAT, SHAPE = 4, (1, 2, 3)  # latent size, image shape: 6 pixels
PIXELS = 6
_g = torch.Generator().manual_seed(5)
W = torch.randn(D_LAT, PIXELS, generator=_g)  # G(z) = z W, as an image
V = torch.randn(PIXELS, generator=_g)  # D's logit: G(z) · v
Z = torch.rand(12, D_LAT, generator=_g) * 2 - 1  # z* of the images, in the order they are projected
LAM = 1e-3  # the papers' λ_adv for Cowboy (MimicGAN: "We implement it with λ_adv = 1e-3")


def _sigmoid(s):
    return 1 / (1 + np.exp(-s))


@pytest.fixture
def cs(monkeypatch):
    mod = import_benchmark("cowboy_scale")
    images = (torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(6)) * 255).to(torch.uint8)
    fake_set = ImageData("fmnist", "test", torch.arange(12) % 3, "test", images=images)
    seen = {}

    class Engine:
        def project(self, x, cfg, seed=0):
            seen["project"] = (x.clone(), cfg, seed)
            return SimpleNamespace(z=Z[: len(x)].clone(), x_hat=None)

    def build(*a, **k):
        seen["build"] = a
        return SimpleNamespace(
            G=lambda z: (z @ W).reshape(len(z), *SHAPE), D=lambda g: g.flatten(1) @ V, engine=Engine()
        )

    monkeypatch.setattr(mod, "load_dataset", lambda *a, **k: seen.setdefault("load", a) and fake_set)
    monkeypatch.setattr(mod, "build_defense", build)
    monkeypatch.setattr(mod, "data_root", lambda: None)
    return SimpleNamespace(mod=mod, set=fake_set, seen=seen)


def test_gradient_norms_and_ratios_by_hand(cs, tmp_path):
    out = tmp_path / "t.md"
    assert cs.mod.main(["--n", "5", "--restarts", "3", "--preset", "paper", "--out", str(out)]) == 0
    x, cfg, seed = cs.seen["project"]
    want_x, _ = cs.set.get(cs.set.eval_indices(5, 0))  # the first --n images of the seed-0 draw
    assert torch.equal(x, want_x) and seed == 0
    # DefenseGAN's z*: its paper settings (L = 200, SGD lr 10), no discriminator term, --restarts restarts
    assert (cfg.restarts, cfg.latent_steps, cfg.lr, cfg.lambda_adv, cfg.loss) == (3, 200, 10.0, 0.0, "mse")
    assert cs.seen["build"][:3] == ("cowboy", "fmnist", "paper")
    # by hand, float64: fidelity mean_p (zW − x)² has gradient (2 / P) (zW − x) Wᵀ; −softplus(zWv) has gradient
    # −σ(zWv) Wv
    w, v, z = W.double().numpy(), V.double().numpy(), Z[:5].double().numpy()
    xs = want_x.flatten(1).double().numpy()
    g_fid = np.linalg.norm((2 / PIXELS) * (z @ w - xs) @ w.T, axis=1).mean()
    g_adv = LAM * (_sigmoid(z @ w @ v) * np.linalg.norm(w @ v)).mean()
    text = out.read_text()
    fid = md_row(text, "fidelity: per-pixel mean of squared errors (DefenseGAN)")
    assert float(fid[1]) == pytest.approx(g_fid, rel=1e-3) and fid[2] == "1"
    mean = md_row(text, "λ_adv log(1 − D), λ_adv = 0.001 against the mean (earlier reading)")
    assert float(mean[1]) == pytest.approx(g_adv, rel=1e-3)
    assert float(mean[2].rstrip("%")) == pytest.approx(100 * g_adv / g_fid, rel=5e-3)
    summed = md_row(text, f"λ_adv / {PIXELS} log(1 − D): against the per-image sum (the paper's; now)")
    assert float(summed[1]) == pytest.approx(g_adv / PIXELS, rel=1e-3)
    assert float(summed[2].rstrip("%")) == pytest.approx(100 * g_adv / PIXELS / g_fid, rel=5e-3)
    assert "5 fmnist test images (seed 0), the paper GAN" in text and "3 restart(s)" in text


def test_defaults_one_restart_quick_gan(cs, tmp_path):
    out = tmp_path / "t.md"
    assert cs.mod.main(["--n", "2", "--out", str(out)]) == 0
    assert cs.seen["project"][1].restarts == 1 and cs.seen["build"][:3] == ("cowboy", "fmnist", "quick")
    assert cs.seen["load"][:2] == ("fmnist", "test")
