"""benchmarks/mimicgan_corruption_sweep.py: a corruption with its options from the command line."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark

from defbench import DefbenchError


@pytest.fixture(scope="module")
def sweep():
    return import_benchmark("mimicgan_corruption_sweep")


def test_corruption_options_reach_the_corruption(sweep):
    assert sweep.corruption("drop-pixels").params["mask"] == "image"
    shared = sweep.corruption("drop-pixels:mask=batch:fraction=0.5")
    assert shared.params["mask"] == "batch"
    torch.manual_seed(0)
    out = shared.corrupt(torch.ones(3, 1, 28, 28))
    assert torch.equal(out[0], out[2]) and 0.45 < float((out == 0).float().mean()) < 0.55
    with pytest.raises(DefbenchError, match="mask"):
        sweep.corruption("drop-pixels:mask=pixel")


def test_surrogate_state_reads_a_live_and_a_collapsed_surrogate(sweep):
    """The sweep's f̂ columns: an identity-like f̂ passes the projections through (scale 1, conv path alive where
    its ReLU is open); W = 0 with a dead conv path outputs 0 (scale 0, nothing alive), the collapse the
    Dropped Pixels runs show."""
    from defbench.defenses.priors import MimicSurrogate
    from defbench.defenses.gan_prior import PAPER_CONFIGS

    cfg = PAPER_CONFIGS["mimicgan"]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    with torch.no_grad():
        f.conv2.bias.fill_(1.0)  # every conv-path output open; the zero mask keeps f̂ the identity
    assert sweep.surrogate_state(f, cfg, x, x) == pytest.approx((1.0, 1.0))
    with torch.no_grad():
        f.w.zero_()
        f.mask.fill_(1.0)
        f.conv2.bias.fill_(-100.0)  # ReLU(conv2) = 0 everywhere
    scale, live = sweep.surrogate_state(f, cfg, x, x)
    assert scale == 0.0 and live == 0.0


def test_a_purification_row_fills_the_table_header(sweep, random_gan, fmnist_images, tiny_classifier):
    """_purified's row has one cell per PURIFIED_COLUMNS entry (the table failed to write when a column was
    added to the row and not to the header)."""
    from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense

    G, D = random_gan
    x, y = fmnist_images
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=1, surrogate_steps=1, latent_steps=1)
    row = sweep._purified(
        GANPriorDefense("mimicgan", G, D, cfg=cfg, shape=(1, 28, 28)), x[:4], 0, tiny_classifier[0], y[:4]
    )
    assert len(row) == len(sweep.PURIFIED_COLUMNS)
    assert float(row[2]) > 0 and 0 <= float(row[4]) <= 100  # mean error, live %
    spatial = GANPriorDefense("mimicgan", G, D, cfg=cfg.with_(surrogate_arch="mimicgan2"), shape=(1, 28, 28))
    row = sweep._purified(spatial, x[:4], 0, tiny_classifier[0], y[:4])  # no W: its shortcut is the affine map
    offset = (spatial.last.surrogate.theta.detach() - torch.eye(2, 3)).abs().max().item()  # max |A − I|, by hand
    assert len(row) == len(sweep.PURIFIED_COLUMNS) and float(row[1]) == round(offset, 2)


def test_an_attack_with_its_budget_from_the_command_line(sweep):
    """fgsm:eps=0.15:labels=predicted: ε reaches the attack as a number (Fig. 5(b)'s reading), options as given."""
    atk = sweep.corruption("fgsm:eps=0.15:labels=predicted")
    assert atk.eps == 0.15 and atk.labels == "predicted"
    assert sweep.corruption("fgsm").eps != 0.15  # without it, the attack's own default


class _FakeSet:
    """A stand-in test split: ``eval_indices(n, seed)`` is seed, seed + 1, ..., every call recorded."""

    def __init__(self, x, y):
        self.x, self.y, self.calls = x, y, []

    def eval_indices(self, n, seed):
        self.calls.append((n, seed))
        return torch.arange(seed, seed + n)

    def get(self, idx):
        return self.x[idx], self.y[idx]


def _wilson(k, n, z=1.959963984540054):
    """The Wilson score interval, by its formula."""
    c, h = (k + z * z / 2) / (n + z * z), z * (k * (n - k) / n + z * z / 4) ** 0.5 / (n + z * z)
    return c - h, c + h


def test_sweep_table_scores_each_seed_pair_on_its_projections(sweep, tmp_path, monkeypatch):
    """main: the corruption is drawn under each corruption seed from the clean images and their labels, each
    purification gets its purify seed, and a row's cells are the classifier's accuracy on the projections with its
    Wilson interval, f̂'s W, the mean projection error, mean |f̂(x̂)| / mean |y| and the live share of the conv path,
    f̂ fed in the signed range; all by hand from a surrogate set to a known state (pointwise: centre taps only)."""
    from conftest import md_row
    from types import SimpleNamespace

    from defbench.defenses.gan_prior import PAPER_CONFIGS
    from defbench.defenses.priors import MimicSurrogate

    labels = torch.tensor([1, 2, 3, 4])
    x = torch.full((12, 1, 28, 28), 0.3)  # the split: image i is the i-th; eval_indices(4, 3) = 3..6
    data = _FakeSet(x, torch.arange(12) % 10)
    data.y[3:7] = labels
    x_hat = torch.full((4, 1, 28, 28), 0.9)
    x_hat[:, :, 14:] = 0.4  # half the pixels above 0.6, all above 0.2
    x_hat[:, 0, 0, 0] = torch.tensor([0.15, 0.25, 0.95, 0.45])  # the fake classifier reads this pixel: 1, 2, 9, 4
    f = MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for conv in (f.conv1, f.conv2):
            conv.weight.zero_(), conv.bias.zero_()
            conv.weight[0, 0, 2, 2] = 1.0  # centre tap: the conv path is relu(relu(s) - 0.2), pixel by pixel
        f.conv2.bias.fill_(-0.2)
        f.mask.fill_(0.5)
        f.w.fill_(0.8)
    drawn, corrupted, purified, clfs = [], [], [], []

    def corrupt(clf, xs, ys):
        drawn.append(torch.rand(()).item())
        corrupted.append((xs, ys))
        return 1 - xs  # 0.7 everywhere: the classifier reads class 7

    class Fake:
        cfg = PAPER_CONFIGS["mimicgan"].with_(surrogate_range="signed")

        def purify(self, xc, seed):
            purified.append((xc, seed))
            self.last = SimpleNamespace(surrogate=f, error=torch.tensor([0.1, 0.2, 0.3, 0.6]))
            return x_hat.clone()

    def clf(t):
        return torch.nn.functional.one_hot((t[:, 0, 0, 0] * 10).long().clamp(0, 9), 10).float()

    monkeypatch.setattr(sweep, "load_dataset", lambda *a, **k: data)
    monkeypatch.setattr(sweep, "fmnist_classifier", lambda name, root: clfs.append(name) or (clf, "fake"))
    monkeypatch.setattr(sweep, "build_defense", lambda label, *a, **k: Fake())
    monkeypatch.setattr(sweep, "corruption", lambda name: corrupt)
    out = tmp_path / "sweep.md"
    argv = ["--n", "4", "--seed", "3", "--corruptions", "drop", "--variants", "mimicgan", "--out", str(out)]
    assert (
        sweep.main(argv + ["--corruption-seeds", "5", "7", "--purify-seeds", "2", "9", "--classifier", "tutorial"]) == 0
    )
    assert data.calls == [(4, 3)] and clfs == ["tutorial"]
    assert drawn == [torch.rand((), generator=torch.Generator().manual_seed(s)).item() for s in (5, 7)]
    assert all(torch.equal(xs, x[3:7]) and torch.equal(ys, labels) for xs, ys in corrupted)
    assert [s for _, s in purified] == [2, 9, 2, 9] and all(
        torch.equal(xc, 0.7 * torch.ones_like(xc)) for xc, _ in purified
    )
    lo, hi = _wilson(3, 4)  # 1, 2 and 4 right, 9 for 3 wrong
    s = 2 * x_hat - 1  # the signed range
    est = (0.5 * torch.relu(torch.relu(s) - 0.2) + 0.8 * s + 1) / 2
    scale = est.abs().mean().item() / 0.7
    live = (x_hat > 0.6).float().mean().item()  # relu(s) > 0.2
    for seeds in ("5 / 2", "5 / 9", "7 / 2", "7 / 9"):
        row = md_row(out.read_text(), "drop", "`mimicgan`", seeds)
        assert row[3:8] == [
            f"75.0 ({100 * lo:.1f}–{100 * hi:.1f})",
            "0.80",
            "0.3000",
            f"{scale:.2f}",
            f"{100 * live:.0f}",
        ]
    assert f"{scale:.2f}" != f"{x_hat.abs().mean().item() / est.abs().mean().item():.2f}" and round(100 * live) == 50
    # without the seed lists: --seed for both
    drawn.clear(), purified.clear()
    assert sweep.main(argv) == 0
    assert drawn == [torch.rand((), generator=torch.Generator().manual_seed(3)).item()]
    assert [s for _, s in purified] == [3] and md_row(out.read_text(), "drop", "`mimicgan`", "3 / 3")


def test_held_out_splits_each_larger_cell_into_tuning_and_other_images(sweep, tmp_path, monkeypatch):
    """--held-out: the tuning images are eval_indices(n, seed); a cell of no more than n images is left out, a
    larger one is split, a randomized defense's image counting as right only when right in all its repeats."""
    from conftest import md_row, md_rows
    from types import SimpleNamespace

    data = _FakeSet(None, None)  # tuning: eval_indices(2, 3) = {3, 4}
    rows = [
        {"defense": "small", "attack": "none", "n": 2, "indices": [3, 4], "preds": [0, 1], "labels": [0, 1]},
        {
            "defense": "mimicgan",
            "attack": "fgsm",
            "n": 5,
            "indices": [5, 3, 6, 4, 7],
            "preds": [0, 1, 2, 3, 4],
            "labels": [0, 1, 2, 3, 4],
            "extra": {"repeat_preds": [[0, 1, 2, 3, 4], [0, 1, 9, 9, 4]]},  # images 6 and 4 wrong once
        },
    ]
    monkeypatch.setattr(sweep, "load_dataset", lambda *a, **k: data)
    monkeypatch.setattr(sweep, "Store", lambda d: SimpleNamespace(rows=lambda: iter(rows)))
    out = tmp_path / "held.md"
    assert sweep.main(["--n", "2", "--seed", "3", "--held-out", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert data.calls == [(2, 3)]
    assert md_row(text, "`mimicgan`", "fgsm", "5")[3:] == [
        "50.0 (n = 2)",
        "66.7 (n = 3)",
    ]  # 3 right, 4 not; 5, 7 of 5-7
    assert not any(r[0] == "`small`" for r in md_rows(text))  # n = 2 images: all of them tuning images
