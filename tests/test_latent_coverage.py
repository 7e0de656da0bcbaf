"""benchmarks/latent_coverage.py with a fake projection: per class of the seeded test images, the share of z*'s
coordinates on a face of the cube (|z_i| > 0.99), the mean ‖z*‖₂ and the accuracy on G(z*), all by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import import_benchmark, md_row, md_rows

from defbench.datasets import ImageData
from defbench.defenses.projection import Projection

N_SET = 300  # images in the fake test set; each image's two pixels spell its index
LABELS = torch.tensor([(0, 1, 2, 4, 6)[(7 * i) % 5] for i in range(N_SET)])  # classes 3, 5, 7-9 absent
# every image's fake z* (5 coordinates): a seeded uniform draw, then a few coordinates put on the faces (±1,
# 0.995: on a face), just inside them (0.985, -0.95: not on a face at 0.99, on one at 0.9), at the threshold
_Z = torch.rand(N_SET, 5, generator=torch.Generator().manual_seed(11)) * 2 - 1
_Z[::2, 0] = 1.0
_Z[::3, 1] = -1.0
_Z[::5, 2] = 0.995
_Z[1::4, 3] = 0.985
_Z[::7, 4] = -0.95
_Z[3::11, 1] = 0.99  # exactly the threshold (as float32): not over it, so not on a face
Z = _Z


def _index(x):
    """The fake set's index of each image (pixel 0 is i mod 256, pixel 1 is i // 256)."""
    p = (x.flatten(1) * 255).round().long()
    return p[:, 0] + 256 * p[:, 1]


def _right(i):
    """The fake classifier's verdict on image i: right unless i is a multiple of 3."""
    return i % 3 != 0


class FakeEngine:
    """Stands in for ProjectionEngine: G(z*) is the image itself and z* the image's row of Z."""

    calls: list = []

    def __init__(self, G):
        self.G = G

    def project(self, x, cfg, seed=0):
        i = _index(x)
        FakeEngine.calls.append((i.tolist(), cfg, seed))
        return Projection(x_hat=x.clone(), z=Z[i].reshape(len(x), 1, 5), error=torch.zeros(len(x)))


def _classifier(x):
    """Logits over 10 classes: the label of the image where _right, the next class otherwise."""
    i = _index(x)
    pred = torch.where(i % 3 != 0, LABELS[i], (LABELS[i] + 1) % 10)
    return torch.nn.functional.one_hot(pred, 10).float()


@pytest.fixture
def lc(monkeypatch):
    mod = import_benchmark("latent_coverage")
    images = torch.stack([torch.arange(N_SET) % 256, torch.arange(N_SET) // 256], 1).to(torch.uint8)
    fake_set = ImageData("fmnist", "test", LABELS, "test", images=images.reshape(N_SET, 1, 1, 2))
    loaded = []
    monkeypatch.setattr(mod, "data_root", lambda: "ROOT")
    monkeypatch.setattr(mod, "load_dataset", lambda *a, **k: loaded.append(a) or fake_set)
    monkeypatch.setattr(mod, "ProjectionEngine", FakeEngine)
    got = {}

    def get_classifier(*a, **k):
        got["classifier"] = (a, k)
        return _classifier, {}

    def get_gan(*a, **k):
        got["gan"] = (a, k)
        return torch.nn.Identity(), {}

    monkeypatch.setattr(mod, "get_classifier", get_classifier)
    monkeypatch.setattr(mod, "get_gan", get_gan)
    FakeEngine.calls = []
    return SimpleNamespace(mod=mod, set=fake_set, got=got, loaded=loaded)


def _expected_row(idx):
    """[images, face %, mean norm, accuracy %] of the images idx, in float64 from Z."""
    z = Z[idx].numpy()
    face = 100 * np.mean(np.abs(z) > np.float32(0.99))  # in z's float32, as the table compares
    z = z.astype(np.float64)
    norm = np.linalg.norm(z, axis=1).mean()
    acc = 100 * np.mean([_right(int(i)) for i in idx])
    return len(idx), face, norm, acc


def _check(cells, expected):
    n, face, norm, acc = expected
    assert int(cells[1]) == n
    assert float(cells[2]) == pytest.approx(face, abs=0.05 + 1e-9)
    assert float(cells[3]) == pytest.approx(norm, abs=0.005 + 1e-9)
    if acc is None:
        assert cells[4] == "—"
    else:
        assert float(cells[4]) == pytest.approx(acc, abs=0.5 + 1e-9)


def test_class_rows_by_hand_in_chunks_of_100(lc, tmp_path):
    out = tmp_path / "t.md"
    assert lc.mod.main(["--n", "150", "--seed", "2", "--out", str(out)]) == 0
    idx = lc.set.eval_indices(150, 2).tolist()
    # two projections: the first 100 images of the draw with seed 2, the other 50 with seed 3, DefenseGAN's
    # paper settings (R = 10, L = 200, no discriminator term)
    assert [(c[0], c[2]) for c in FakeEngine.calls] == [(idx[:100], 2), (idx[100:], 3)]
    for _, cfg, _ in FakeEngine.calls:
        assert (cfg.restarts, cfg.latent_steps, cfg.lambda_adv, cfg.surrogate) == (10, 200, 0.0, "none")
    assert lc.got["classifier"][0][:2] == ("fmnist", "paper") and lc.got["gan"][0][:2] == ("fmnist", "paper")
    assert lc.got["classifier"][1]["train_missing"] is False and lc.got["gan"][1]["train_missing"] is False
    assert lc.loaded[0][:2] == ("fmnist", "test")
    text = out.read_text()
    assert "R = 10, L = 200" in text and "of 150 seeded test images" in text
    names = {0: "T-shirt", 1: "trouser", 2: "pullover", 4: "coat", 6: "shirt"}
    rows = md_rows(text)[1:]
    assert [r[0] for r in rows] == ["U(-1, 1) draws (10,000)", *names.values(), "all"]  # absent classes: no row
    for c, name in names.items():
        _check(md_row(text, name), _expected_row([i for i in idx if LABELS[i] == c]))
    _check(md_row(text, "all"), _expected_row(idx))
    # the face shares differ between classes (they are not the all row's): the rows read their own images
    assert len({md_row(text, name)[2] for name in names.values()}) > 1


def test_uniform_row_by_hand(lc, tmp_path):
    out = tmp_path / "t.md"
    assert lc.mod.main(["--n", "40", "--seed", "4", "--out", str(out)]) == 0
    u = (torch.rand(10_000, 5, generator=torch.Generator().manual_seed(4)) * 2 - 1).double().numpy()
    cells = md_row(out.read_text(), "U(-1, 1) draws (10,000)")
    _check(cells, (10_000, 100 * np.mean(np.abs(u) > 0.99), np.linalg.norm(u, axis=1).mean(), None))
    # and what the caption's reading of that row rests on: about 1% of the coordinates within 0.01 of a face,
    # a mean norm a little under √(d/3)
    assert float(cells[2]) == pytest.approx(1.0, abs=0.2)
    assert 0.9 * (5 / 3) ** 0.5 < float(cells[3]) < (5 / 3) ** 0.5


def test_digit_names_up_to_the_largest_label(lc, tmp_path):
    """A dataset without class names: the labels as names, up to the largest one present."""
    out = tmp_path / "t.md"
    assert lc.mod.main(["--dataset", "mnist", "--n", "60", "--out", str(out)]) == 0
    idx = lc.set.eval_indices(60, 0).tolist()
    text = out.read_text()
    assert [r[0] for r in md_rows(text)[1:]] == ["U(-1, 1) draws (10,000)", "0", "1", "2", "4", "6", "all"]
    _check(md_row(text, "6"), _expected_row([i for i in idx if LABELS[i] == 6]))
    assert lc.got["classifier"][0][0] == "mnist" and lc.loaded[0][0] == "mnist"


def test_an_alias_of_the_dataset_reads_as_its_canonical_name(lc, tmp_path):
    """``--dataset fashion-mnist`` is Fashion-MNIST: its class names (not digits), and the zoo's fmnist models."""
    out = tmp_path / "t.md"
    assert lc.mod.main(["--dataset", "fashion-mnist", "--n", "60", "--out", str(out)]) == 0
    rows = [r[0] for r in md_rows(out.read_text())[1:]]
    assert rows == ["U(-1, 1) draws (10,000)", "T-shirt", "trouser", "pullover", "coat", "shirt", "all"]
    assert lc.got["classifier"][0][0] == "fmnist" and lc.got["gan"][0][0] == "fmnist" and lc.loaded[0][0] == "fmnist"
    with pytest.raises(SystemExit):  # argparse's usage error, naming the choices
        lc.mod.main(["--dataset", "fashion", "--out", str(out)])
