"""benchmarks/class_shares.py: how the coverage classifier labels a prior's samples."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark, md_rows


def test_class_shares_readings_by_hand():
    """benchmarks/class_shares.py: argmax share, softmax mass and the mean top probability per argmax class."""
    cs = import_benchmark("class_shares")
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    r = cs.readings(p, classes=2)
    assert torch.allclose(r["argmax"], torch.tensor([2 / 3, 1 / 3]))
    assert torch.allclose(r["mass"], torch.tensor([0.6, 0.4]))
    assert torch.allclose(r["confidence"], torch.tensor([0.75, 0.7]))


def test_mean_confidence_over_the_draws_that_hold_the_class():
    """A class no sample of one draw falls in (readings gives NaN there) does not turn the mean into nan."""
    cs = import_benchmark("class_shares")
    p = torch.tensor([[0.6, 0.4], [0.9, 0.1]])  # class 1 gets no argmax: NaN
    draws = [float(cs.readings(p, classes=2)["confidence"][1]), 0.7, 0.5]
    assert cs.mean_confidence(draws) == "0.60 (2 of 3 draws)"
    assert cs.mean_confidence([0.7, 0.5]) == "0.60"
    assert cs.mean_confidence([float("nan")] * 2) == "—"


def test_readings_mass_is_the_mean_probability():
    """The softmax mass is the mean of each class's probabilities (not, e.g., their median)."""
    cs = import_benchmark("class_shares")
    p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    assert torch.allclose(cs.readings(p, classes=2)["mass"], torch.tensor([1.8 / 3, 1.2 / 3]))


class _Logits(torch.nn.Module):
    """A 'classifier' whose logits are 3 × the image's ten pixels: softmax by hand."""

    def forward(self, x):
        return 3 * x.flatten(1)


def test_probabilities_are_a_softmax_over_the_classes_in_batches():
    """probabilities(): each row a softmax over its classes, every image once, whatever the batch size."""
    cs = import_benchmark("class_shares")
    x = torch.linspace(-1, 1, 70).reshape(7, 1, 1, 10)
    e = torch.exp(3 * x.flatten(1))
    want = e / e.sum(1, keepdim=True)
    got = cs.probabilities(_Logits(), x, batch=3)
    assert got.shape == (7, 10) and torch.allclose(got, want)


class _LatentG(torch.nn.Module):
    """A 'generator' whose sample is its latent z (ten values) as a 1×1×10 image."""

    latent_dim = 10

    def forward(self, z):
        return z.reshape(-1, 1, 1, 10)


def _latents(n: int, seed: int) -> torch.Tensor:
    """z ~ U(-1, 1)^10 as the trainer's coverage check draws it: 500 rows at a time from a generator seeded seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(min(500, n - s), 10, generator=g) * 2 - 1 for s in range(0, n, 500)])


def test_sample_probabilities_are_the_softmax_of_the_seeded_draw():
    cs = import_benchmark("class_shares")
    z = _latents(1200, 7)
    e = torch.exp(3 * z)
    assert torch.allclose(cs.sample_probabilities(_LatentG(), _Logits(), 1200, 7), e / e.sum(1, keepdim=True))


def _numbers(cell: str) -> list[float]:
    import re

    return [float(v) for v in re.findall(r"\d+\.\d+", cell)]


def test_main_table_by_hand(tmp_path, monkeypatch):
    """main(): per class, G's argmax share of draw 1 (generator seed SEED + 1, the trainer's) and its range over
    the draws, the softmax mass, and on the test images the true share, argmax share and mass, all by hand on a
    G whose sample is its latent and a classifier whose logits are 3 × the pixels."""
    cs = import_benchmark("class_shares")
    from defbench.datasets import CLASS_NAMES

    # test 'images': image i puts its largest pixel at class (i % 4 == 0 ? 0 : 1); labels 0 ×3, 1 ×5, 2 ×2
    x = torch.zeros(10, 1, 1, 10)
    for i in range(10):
        x[i, 0, 0, 0 if i % 4 == 0 else 1] = 1.0
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    x, y = torch.cat([x, x]), torch.cat([y, y])  # twenty images: a share is of len(test), not of 10

    class Test:
        def __len__(self):
            return 20

        def get(self, idx):
            return x[idx], y[idx]

    monkeypatch.setattr(cs, "get_classifier", lambda *a, **k: (_Logits(), {"id": "clf", "sha256": "c" * 64}))
    monkeypatch.setattr(cs, "get_gan", lambda *a, **k: (_LatentG(), None, {"id": "gan", "sha256": "g" * 64}))
    monkeypatch.setattr(cs, "load_dataset", lambda *a, **k: Test())
    out = tmp_path / "t.md"
    assert cs.main(["--draws", "2", "--seed", "4", "--out", str(out)]) == 0
    rows = md_rows(out.read_text())[1:]
    draws = [_latents(2000, s) for s in (5, 6)]  # seeds SEED + 1, SEED + 2
    counts = [torch.bincount(z.argmax(1), minlength=10) for z in draws]
    shares = [100 * k.float() / 2000 for k in counts]
    masses = [100 * torch.softmax(3 * z, 1).mean(0) for z in draws]
    e1, e0 = torch.exp(torch.tensor(3.0)), torch.tensor(1.0)
    top = float(e1 / (e1 + 9 * e0))  # the probability of an image's one lit pixel
    for c in range(10):  # an argmax share is a count of 2000, written exactly: k / 20 %, two decimals
        k = [int(n[c]) for n in counts]
        assert rows[c][1] == f"{_pct(k[0])} ({_pct(min(k))}–{_pct(max(k))})"
        m = [float(s[c]) for s in masses]
        assert _numbers(rows[c][2]) == pytest.approx([m[0], min(m), max(m)], abs=0.051)
    # test images: 6 of 20 lit at class 0 (i = 0, 4, 8 of each half), 14 at class 1
    assert [r[4] for r in rows[:3]] == ["30.0", "50.0", "20.0"]
    assert [r[5] for r in rows[:3]] == ["30.00", "70.00", "0.00"]
    mass0 = 100 * (6 * top + 14 * (1 - top) / 9) / 20
    assert rows[0][6] == f"{mass0:.1f}"
    assert rows[0][7] == f"{top:.2f}"
    for c in range(10):
        conf = []
        for z in draws:
            top_z, arg_z = torch.softmax(3 * z, 1).max(1)
            conf.append(float(top_z[arg_z == c].mean()))
        assert rows[c][3] == f"{sum(conf) / 2:.2f}"
    names = CLASS_NAMES["fmnist"]
    line = out.read_text().split("Smallest class per draw, argmax / softmax mass: ")[1].split("\n")[0]
    got = [d.split(" / ") for d in line.rstrip(".").split("; ")]
    assert [[x.split(" ", 1)[1] for x in d] for d in got] == [
        [names[int(s.argmin())], names[int(m.argmin())]] for s, m in zip(shares, masses, strict=True)
    ]
    assert [d[0].split(" ")[0] for d in got] == [_pct(int(k.min())) for k in counts]
    want = [float(m.min()) for m in masses]
    assert [float(d[1].split(" ")[0]) for d in got] == [pytest.approx(w, abs=0.051) for w in want]


def _pct(count: int) -> str:
    """count of 2000 in %, by hand: count / 20, two decimals (each sample 0.05%)."""
    return f"{count // 20}.{(count % 20) * 5:02d}"


def test_classifier_preset_labels_with_another_classifier_than_the_gans(tmp_path, monkeypatch):
    """--classifier-preset quick: the quick classifier labels the paper GAN's samples (its id in the header); by
    default the GAN's own preset's classifier does."""
    cs = import_benchmark("class_shares")
    asked = []

    def get_classifier(dataset, preset, **k):
        asked.append(("classifier", preset))
        return _Logits(), {"id": f"classifier-{preset}", "sha256": "c" * 64}

    def get_gan(dataset, preset, **k):
        asked.append(("gan", preset))
        return _LatentG(), None, {"id": "gan", "sha256": "g" * 64}

    class Test:
        def __len__(self):
            return 10

        def get(self, idx):
            return torch.eye(10).reshape(10, 1, 1, 10)[idx], torch.arange(10)[idx]

    monkeypatch.setattr(cs, "get_classifier", get_classifier)
    monkeypatch.setattr(cs, "get_gan", get_gan)
    monkeypatch.setattr(cs, "load_dataset", lambda *a, **k: Test())
    out = tmp_path / "t.md"
    assert cs.main(["--draws", "1", "--classifier-preset", "quick", "--out", str(out)]) == 0
    assert asked == [("classifier", "quick"), ("gan", "paper")] and "classifier classifier-quick@" in out.read_text()
    asked.clear()
    assert cs.main(["--draws", "1", "--out", str(out)]) == 0
    assert asked == [("classifier", "paper"), ("gan", "paper")]
