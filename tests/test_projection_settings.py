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
