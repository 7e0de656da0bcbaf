"""benchmarks/unclipped_attacks.py: its ART attacks are the spec's, and only the clipping differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import import_benchmark
from torch import nn

from defbench.attacks import get_attack
from defbench.harness.paper_tables import TABLES


@pytest.fixture(scope="module")
def ua():
    return import_benchmark("unclipped_attacks")


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.rand(8, 1, 28, 28)
    x[:, :, :10] = 0.0  # a black band, as Fashion-MNIST's background: unclipped steps can go below 0
    x[:, :, -5:] = 1.0
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("name", ["fgsm", "bim"])
def test_clipped_art_attack_is_defbench_attack_at_the_spec_reading(ua, model_and_batch, name):
    model, x, y = model_and_batch
    art = torch.from_numpy(ua._attack(name, model, (0.0, 1.0)).generate(x.numpy(), y=y.numpy()))
    ours = get_attack(name, "fmnist", eps=ua.EPS, labels="predicted")(model, x, y)
    assert (art - ours).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd"])
def test_unclipped_attack_leaves_the_pixel_range_but_not_the_ball(ua, model_and_batch, name):
    model, x, y = model_and_batch
    torch.manual_seed(0)
    free = torch.from_numpy(ua._attack(name, model, None).generate(x.numpy(), y=y.numpy()))
    clipped = torch.from_numpy(ua._attack(name, model, (0.0, 1.0)).generate(x.numpy(), y=y.numpy()))
    assert torch.isfinite(free).all()
    assert (free - x).abs().max() <= ua.EPS + 1e-6
    assert free.min() < -0.05 or free.max() > 1.05  # some pixels outside [0, 1]
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_art_pgd_and_eps_are_the_specs(ua):
    """Fig. 5(b)'s ε = 0.15 attacks; PGD: 40 steps of (4/3)·ε/40 = 0.005, one random start, ℓ∞."""
    spec = {a.name: a for a in TABLES["mimicgan-fig5b"].attacks if a.eps is not None and a.eps < 0.3}
    assert ua.EPS == 0.15 and {spec[a].eps for a in ("fgsm", "bim", "pgd")} == {0.15}
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    for clip in ((0.0, 1.0), None):
        pgd = ua._attack("pgd", model, clip)
        assert (pgd.eps, pgd.max_iter, pgd.num_random_init, pgd.norm) == (0.15, 40, 1, np.inf)
        assert pgd.eps_step == pytest.approx((4 / 3) * 0.15 / 40) and pgd.eps_step == pytest.approx(0.005)
    assert dict(spec["pgd"].params)["labels"] == "predicted" and spec["pgd"].build("fmnist").params["random_start"]


# A classifier of 2-pixel images (N, 1, 1, 2) whose logits are the pixels: the brighter pixel is the class.
X = torch.tensor([[0.2, 0.6], [0.7, 0.1], [0.5, 0.9], [0.3, 0.05]]).view(4, 1, 1, 2)
Y = torch.tensor([1, 1, 1, 1])  # true labels; the predictions are 1, 0, 1, 0 (clean: 2 of 4 right)
# what the fake ART attack returns: unclipped (2 of 8 pixels outside [0, 1]; max |δ| 0.15, mean 0.144), clipped
X_NONE = torch.tensor([[0.3, 0.45], [0.55, 0.25], [0.65, 1.05], [0.45, -0.1]]).view(4, 1, 1, 2)
X_UNIT = X_NONE.clamp(0, 1)


class Doubler:
    """A defense whose ``_purify`` doubles the pixels (out of [0, 1]), recording its calls."""

    def __init__(self):
        self.calls = []

    def _purify(self, x, seed):
        self.calls.append((x.clone(), seed, torch.is_grad_enabled()))
        return 2 * x


def _table(path):
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in path.read_text().splitlines()[4:]]
    return [r[:4] + [c.split(" (")[0] for c in r[4:-1]] for r in rows]  # accuracy cells without intervals; no time


@pytest.fixture
def fake_setup(ua, monkeypatch):
    common = import_benchmark("_common")
    clf = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False)).eval()
    with torch.no_grad():
        clf[1].weight.copy_(torch.eye(2))  # logits = pixels
    got, defense = [], Doubler()

    def setup(n, seed, defenses):
        got.append((n, seed, list(defenses)))
        g = common.GrayBoxSetup(X, Y, clf, {"doubler": defense}, 0)
        g.clean = g.right(X)
        return g

    monkeypatch.setattr(ua, "gray_box_setup", setup)
    return got, defense


def test_main_art_rows_by_hand(ua, fake_setup, monkeypatch, tmp_path):
    got, defense = fake_setup
    made = []

    class FakeArt:
        def __init__(self, name, clf, clip):
            self.name, self.clip = name, clip

        def generate(self, x, y):
            made.append((self.name, self.clip, y.tolist(), torch.rand(()).item(), np.random.rand()))
            assert np.array_equal(x, X.numpy())
            return (X_UNIT if self.clip == (0.0, 1.0) else X_NONE).numpy()

    monkeypatch.setattr(ua, "_attack", FakeArt)
    out = tmp_path / "t.md"
    assert ua.main(["--n", "4", "--seed", "3", "--defenses", "doubler", "--attacks", "fgsm", "--out", str(out)]) == 0
    assert got == [(4, 3, ["doubler"])]
    torch.manual_seed(3)
    np.random.seed(3)
    seeded = (torch.rand(()).item(), np.random.rand())
    # both readings by default, ART on the classifier's predictions, each reading reseeded with --seed
    assert made == [("fgsm", (0.0, 1.0), [1, 0, 1, 0], *seeded), ("fgsm", None, [1, 0, 1, 0], *seeded)]
    # no defense: images 0 and 2 right on either; doubled and clamped: image 2 is (1, 1), class 0, so only image 0
    assert _table(out) == [
        ["FGSM", "[0, 1]", "0.150", "0.0%", "50", "25"],
        ["FGSM", "none", "0.150", "25.0%", "50", "25"],
    ]
    assert [s for _, s, _ in defense.calls] == [3, 3] and all(g for _, _, g in defense.calls)
    assert torch.equal(defense.calls[0][0], X_UNIT) and torch.equal(defense.calls[1][0], X_NONE)


def test_main_torchattacks_row_is_fgsm_by_hand(ua, fake_setup, tmp_path):
    """defbench's FGSM at ε = 0.15 on the predicted labels: each pixel moves 0.15 away from the predicted class."""
    _, defense = fake_setup
    out = tmp_path / "t.md"
    argv = ["--n", "4", "--defenses", "doubler", "--attacks", "fgsm", "--clips", "torchattacks", "--out", str(out)]
    assert ua.main(argv) == 0
    x_adv = torch.tensor([[0.35, 0.45], [0.55, 0.25], [0.65, 0.75], [0.15, 0.2]]).view(4, 1, 1, 2)
    assert torch.allclose(defense.calls[0][0], x_adv)
    # right: images 0, 2, 3 undefended; doubled and clamped: 0 and 3 (image 2 ties at (1, 1))
    assert _table(out) == [["FGSM", "[0, 1] (torchattacks)", "0.150", "0.0%", "75", "50"]]
