"""benchmarks/cw_settings.py: its readings are the spec's CW and cleverhans' defaults, and only CW's settings differ."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark
from torch import nn

from defbench.attacks import get_attack
from defbench.harness.paper_tables import TABLES


@pytest.fixture(scope="module")
def cw():
    return import_benchmark("cw_settings")


def test_invgan_reading_is_the_specs_cw(cw):
    spec_cw = {a.name: a for a in TABLES["mimicgan-fig5b"].attacks}["cw"]
    spec = spec_cw.build("fmnist").params
    assert get_attack("cw", "fmnist", **cw.READINGS["invgan"]).params == spec


def test_cleverhans_reading_is_cleverhans_defaults(cw):
    p = get_attack("cw", "fmnist", **cw.READINGS["cleverhans"]).params
    # cleverhans v2.1 CarliniWagnerL2.parse_params defaults
    assert (p["binary_search_steps"], p["initial_const"], p["lr"], p["steps"], p["confidence"]) == (
        5,
        1e-2,
        5e-3,
        1000,
        0.0,
    )


def test_perturbation_norms_skip_failed_images(cw):
    x = torch.zeros(3, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0] += 0.5  # ℓ2 = 1
    x_adv[2] += 1.0  # ℓ2 = 2, but failed
    norms = cw.perturbation_norms(x, x_adv, torch.tensor([False, False, True]))
    assert norms.tolist() == [1.0, 0.0]


def test_cleverhans_reading_breaks_a_model_with_small_in_range_perturbations(cw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = get_attack("cw", "fmnist", **{**cw.READINGS["cleverhans"], "steps": 200})
    x_adv = attack(model, x, y)
    assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    broken = ~attack.last_failed
    assert broken.sum() >= 4
    with torch.no_grad():
        assert (model(x_adv[broken]).argmax(1) != y[broken]).all()
    norms = cw.perturbation_norms(x, x_adv, attack.last_failed)
    assert (norms > 0).all() and norms.max() < 5.0


X = torch.tensor([[0.2, 0.6], [0.7, 0.1], [0.5, 0.9], [0.3, 0.05]]).view(4, 1, 1, 2)
Y = torch.tensor([1, 1, 1, 1])  # true labels; the classifier (logits = pixels) predicts 1, 0, 1, 0
FAILED = torch.tensor([True, False, False, False])
# image 0 not broken (left clean); the others moved by ℓ2 0.5, 0.8, 0.3 (3-4-5 triangles)
X_ADV = torch.tensor([[0.2, 0.6], [0.4, 0.5], [0.98, 0.26], [0.12, 0.29]]).view(4, 1, 1, 2)


def test_main_rows_by_hand(cw, monkeypatch, tmp_path):
    common = import_benchmark("_common")
    purified, made, calls = [], [], []

    class Flip:
        def purify(self, x, seed):
            purified.append((x.clone(), seed))
            return 1 - x

    def setup(n, seed, defenses):
        g = common.GrayBoxSetup(X, Y, lambda x: x.flatten(1), {"flip": Flip()}, 0)
        g.clean = g.right(X)
        return g

    class FakeCW:
        def __init__(self, **kw):
            self.params = get_attack("cw", "fmnist", **kw).params

        def __call__(self, clf, x, y):
            calls.append((y.tolist(), torch.rand(()).item()))
            self.last_failed = FAILED
            return X_ADV

    monkeypatch.setattr(cw, "gray_box_setup", setup)
    monkeypatch.setattr(cw, "get_attack", lambda name, ds, **kw: made.append((name, ds, kw)) or FakeCW(**kw))
    out = tmp_path / "t.md"
    assert cw.main(["--n", "4", "--seed", "3", "--defenses", "flip", "--out", str(out)]) == 0
    clever = {"binary_search_steps": 5, "initial_const": 1e-2, "lr": 5e-3, "steps": 1000, "confidence": 0.0}
    assert made == [("cw", "fmnist", {}), ("cw", "fmnist", clever)]
    torch.manual_seed(3)
    assert calls == [([1, 1, 1, 1], torch.rand(()).item())] * 2  # true labels, reseeded per reading
    assert [s for _, s in purified] == [3, 3] and all(torch.equal(p, X_ADV) for p, _ in purified)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.read_text().splitlines()[4:]]
    # ℓ2 0.5, 0.8, 0.3: median 0.50, mean 0.53; right: images 0, 1, 3 undefended, only image 2 once flipped
    assert [[c.split(" (")[0] for c in r[:-1]] for r in rows] == [
        ["invgan", "6 × 100, c₀ 10, lr 0.2", "1", "0.50", "0.53", "75", "25"],
        ["cleverhans", "5 × 1000, c₀ 0.01, lr 0.005", "1", "0.50", "0.53", "75", "25"],
    ]
