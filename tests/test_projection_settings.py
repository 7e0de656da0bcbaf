"""benchmarks/projection_settings.py: one purification per seed for a randomized defense, one for a
deterministic one, and the paired difference to the first variant computed seed by seed."""

from __future__ import annotations

import pytest
import torch
from conftest import have_data, import_benchmark, md_row
from torch import nn

from defbench.defenses.base import Defense


@pytest.fixture(scope="module")
def ps():
    return import_benchmark("projection_settings")


class SeedCoin(Defense):
    """Randomized stand-in: even seeds keep the images, odd seeds blank them."""

    name = "seed-coin"
    randomized = True

    def _purify(self, x, seed):
        return x if seed % 2 == 0 else torch.zeros_like(x)


class Blank(Defense):
    name = "blank"

    def _purify(self, x, seed):
        return torch.zeros_like(x)


class FirstPixel(nn.Module):
    """Class 1 when the first pixel is bright, else class 0."""

    def forward(self, x):
        v = (x.flatten(1)[:, 0] > 0.5).float()
        return torch.stack([1 - v, v], dim=1)


def test_randomized_defense_runs_once_per_seed_and_deterministic_once(ps):
    x = torch.ones(4, 1, 2, 2)
    y = torch.ones(4, dtype=torch.long)
    runs = ps.run_variant(SeedCoin(), FirstPixel(), x, y, [0, 1, 2])
    assert [k for k, _, _ in runs] == [4, 0, 4]
    assert [round(d, 6) for _, d, _ in runs] == [0.0, 2.0, 0.0]
    assert len(ps.run_variant(Blank(), FirstPixel(), x, y, [0, 1, 2])) == 1


def test_seed_row_pairs_by_seed(ps):
    ref = [(8, 1.0, 0.1), (6, 1.0, 0.1), (7, 1.0, 0.1)]
    row = ps.seed_row("v", [(9, 2.0, 0.2), (5, 2.0, 0.2), (7, 2.0, 0.2)], ref, 10)
    # per seed: +10, -10, 0 points; an unpaired reading (means 70 vs 70) would hide both
    assert row[1:5] == ["70.0", "50–90", "90 50 70", "+0.0 (-10 to +10; 1 / 1 of 3)"]
    one_run = ps.seed_row("d", [(10, 0.0, 0.0)], ref, 10)  # a deterministic variant pairs with every seed
    assert one_run[4] == "+30.0 (+20 to +40; 3 / 0 of 3)"
    assert ps.seed_row("first", ref, None, 10)[4] == "—"


@pytest.mark.skipif(not have_data("fmnist"), reason="needs Fashion-MNIST")
def test_several_seeds_table(ps, tiny_zoo, tmp_path):
    out = tmp_path / "t.md"
    argv = ["--preset", "quick", "--n", "6", "--purify-seeds", "0", "1", "--out", str(out)]
    ps.main(argv + ["--variants", "mimicgan[outer_iters=1,surrogate_steps=1,latent_steps=2]", "tvm"])
    text = out.read_text()
    mimic = md_row(text, "`mimicgan[outer_iters=1,surrogate_steps=1,latent_steps=2]`")
    tvm = md_row(text, "`tvm`")
    assert len(mimic[3].split()) == 2 and mimic[4] == "—"  # randomized: two seeds; the first variant: no Δ
    assert len(tvm[3].split()) == 1  # deterministic: once
    assert "of 2)" in tvm[4]


def test_repeated_seed_refused(ps, capsys):
    with pytest.raises(SystemExit):
        ps.main(["--variants", "tvm", "--purify-seeds", "1", "1"])
    assert "each seed once" in capsys.readouterr().err


class CopyPixel(Defense):
    """Deterministic stand-in: x̂ is x with its first pixel replaced by pixel ``j`` (j = 0: x itself)."""

    name = "copy-pixel"

    def __init__(self, j, seeds):
        super().__init__()
        self.j, self.seeds = j, seeds

    def _purify(self, x, seed):
        self.seeds.append(seed)
        out = x.clone()
        out.view(len(x), -1)[:, 0] = x.flatten(1)[:, self.j]
        return out


def _wilson(k, n, z=1.959964):
    """Wilson score interval by its formula: (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    mid, half = p + z * z / (2 * n), z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return (mid - half) / (1 + z * z / n), (mid + half) / (1 + z * z / n)


def _fake_run(ps, monkeypatch):
    """100 dark 2×2 images (the classifier alone says class 0: right on the 29 of class 0); pixel 1 bright on the
    29 class-0 images and 57 class-1 ones, pixel 2 on those and one more, so CopyPixel(1) is right on 57 and
    CopyPixel(2) on 58 — counts whose share times 100 is not an integer in floating point (0.29 · 100 = 28.99…)."""
    from defbench.datasets import ImageData

    images = torch.zeros(100, 1, 2, 2, dtype=torch.uint8)
    labels = torch.tensor([0] * 29 + [1] * 71)
    images[: 29 + 57, 0, 0, 1] = 255
    images[: 29 + 58, 0, 1, 0] = 255
    fake = ImageData("fmnist", "train", labels, "test", images=images)
    calls = {"split": [], "draw": [], "build": [], "purify": []}
    monkeypatch.setattr(ps, "load_dataset", lambda ds, split, root: calls["split"].append(split) or fake)
    draw = fake.eval_indices
    monkeypatch.setattr(fake, "eval_indices", lambda n, seed: calls["draw"].append((n, seed)) or draw(n, seed))
    monkeypatch.setattr(ps, "get_classifier", lambda *a, **k: (FirstPixel(), None))

    def build(label, *a, seed=None, **k):
        calls["build"].append(seed)
        return CopyPixel({"a": 0, "b": 1, "c": 2}[label], calls["purify"])

    monkeypatch.setattr(ps, "build_defense", build)
    clock = iter(range(0, 1000, 5))  # every time.time() 5 s after the last: 5 s per purification of 100 images
    monkeypatch.setattr(ps, "time", type("T", (), {"time": staticmethod(lambda: next(clock))}))
    return calls


def test_one_seed_table_counts_right_images_and_wilson_interval(ps, tmp_path, monkeypatch):
    """Defaults: 100 *training* images, one purification at --seed; accuracy 29 / 57 of 100 with the Wilson
    interval, ℓ2 the mean over images of ‖x − x̂‖₂ (1 on the 86 images whose first pixel changes: 0.86) and the
    seconds per image (5 s / 100)."""
    calls = _fake_run(ps, monkeypatch)
    out = tmp_path / "t.md"
    assert ps.main(["--variants", "b", "--seed", "3", "--out", str(out)]) == 0
    assert calls["split"] == ["train"] and calls["draw"] == [(100, 3)]
    assert calls["purify"] == [3]  # one purification (deterministic) at --seed
    text = out.read_text()
    assert md_row(text, "variant") == ["variant", "accuracy %", "ℓ2", "s / image"]
    lo, hi = _wilson(29, 100)
    assert md_row(text, "classifier alone")[1] == f"29.0 ({100 * lo:.0f}–{100 * hi:.0f})"
    lo, hi = _wilson(57, 100)
    assert md_row(text, "`b`")[1:] == [f"57.0 ({100 * lo:.0f}–{100 * hi:.0f})", "0.86", "0.05"]


def test_several_seeds_delta_is_to_the_first_variant(ps, tmp_path, monkeypatch):
    """Three deterministic variants right on 29, 57 and 58 of 100: each Δ is to the first (a: +28 and +29),
    not to the one before (c − b would be +1); one run each, so one pair; the classifier alone reads 29.0."""
    calls = _fake_run(ps, monkeypatch)
    out = tmp_path / "t.md"
    assert ps.main(["--variants", "a", "b", "c", "--purify-seeds", "4", "5", "--out", str(out)]) == 0
    text = out.read_text()
    assert md_row(text, "classifier alone")[1] == "29.0"
    assert md_row(text, "`b`")[1:5] == ["57.0", "57–57", "57", "+28.0 (+28 to +28; 1 / 0 of 1)"]
    assert md_row(text, "`c`")[4] == "+29.0 (+29 to +29; 1 / 0 of 1)"
    assert calls["purify"] == [4, 4, 4]  # deterministic: once each, at the first seed
