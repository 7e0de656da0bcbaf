"""benchmarks/surrogate_trace.py: one record per step of Alg. 1, the engine restored afterwards."""

from __future__ import annotations

import pytest
import torch
from conftest import import_benchmark

import defbench.defenses.projection as projection
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense


@pytest.fixture(scope="module")
def tracer():
    return import_benchmark("surrogate_trace")


def _mimic(G, D, **kw):
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=2, surrogate_steps=3, latent_steps=2, **kw)
    return GANPriorDefense("mimicgan", G, D, cfg=cfg, shape=(1, 28, 28))


def test_trace_records_every_step_and_restores_the_engine(tracer, random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    hooks = projection.MimicSurrogate, projection.progress_step
    frozen = tracer.trace(_mimic(G, D, surrogate_lr=0.0), x[:8], x[:8], seed=0)
    assert (projection.MimicSurrogate, projection.progress_step) == hooks
    assert len(frozen) == 2 * (3 + 2)
    # γs = 0: f̂ never moves, so every record repeats the start's live share and W = 1 (the near-identity start)
    start = tracer.start_live(_mimic(G, D, surrogate_lr=0.0), x[:8], seed=0)
    assert all(r["live"] == pytest.approx(start) and r["w"] == 1.0 for r in frozen)
    moving = tracer.trace(_mimic(G, D), x[:8], x[:8], seed=0)
    assert moving[0]["w"] != 1.0 and moving[-1]["w"] != moving[0]["w"]  # f̂ learns from its first step on
    # the conv path's size beside W·x, by hand from a surrogate set to a known state
    f = projection.MimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0), activation="tanh")
    with torch.no_grad():
        for conv in (f.conv1, f.conv2):
            conv.weight.zero_(), conv.bias.zero_()
        f.conv2.bias.fill_(-0.5)
        f.mask.fill_(0.2)
    probe = x[:8]
    expected = (torch.tanh(torch.tensor(-0.5)) * 0.2).abs() / probe.abs().mean()
    assert tracer.conv_share(f, probe) == pytest.approx(expected.item(), rel=1e-5)
    assert all(r["conv"] > 0 for r in frozen)  # the near-identity start: a small, open path


def test_trace_refuses_a_defense_without_a_learned_surrogate(tracer, random_gan, fmnist_images):
    G, D = random_gan
    x, _ = fmnist_images
    with pytest.raises(SystemExit, match="no learned surrogate"):
        tracer.trace(
            GANPriorDefense(
                "defensegan", G, D, cfg=PAPER_CONFIGS["defensegan"].with_(latent_steps=1, restarts=1), shape=(1, 28, 28)
            ),
            x[:2],
            x[:2],
            seed=0,
        )


def test_trace_follows_the_spatial_surrogate(tracer, random_gan, fmnist_images):
    """surrogate_arch=mimicgan2: the trace watches MimicGAN-2's surrogate too, its shortcut state being the affine
    map's distance from the identity (0 at the start, moving once f̂ learns) and its conv path measured beside
    A(x)."""
    G, D = random_gan
    x, _ = fmnist_images
    hooks = projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step
    frozen = tracer.trace(_mimic(G, D, surrogate_lr=0.0, surrogate_arch="mimicgan2"), x[:8], x[:8], seed=0)
    assert (projection.MimicSurrogate, projection.SpatialMimicSurrogate, projection.progress_step) == hooks
    assert len(frozen) == 2 * (3 + 2) and all(r["w"] == 0.0 for r in frozen)  # γs = 0: A stays I
    moving = tracer.trace(_mimic(G, D, surrogate_arch="mimicgan2"), x[:8], x[:8], seed=0)
    assert moving[0]["w"] > 0 and moving[-1]["w"] != moving[0]["w"]
    f = projection.SpatialMimicSurrogate(1, 28, generator=torch.Generator().manual_seed(0)).make_identity()
    assert tracer.conv_share(f, x[:8]) == pytest.approx(0.0, abs=1e-6)  # mask 0: f̂ = A(x), nothing beside it
    assert f.last_conv is f.conv4 and f.shortcut_state() == 0.0


def _by_hand(f, probe):
    """(live share, W, conv2's bias, conv path / W·x) of MimicGAN-1's surrogate ``f`` on ``probe`` (in f̂'s range)."""
    with torch.no_grad():
        pre = f.conv2(torch.relu(f.conv1(probe)))
        wx = f.w * probe
        return (
            (pre > 0).float().mean().item(),
            f.w.item(),
            f.conv2.bias.item(),
            ((f(probe) - wx).abs().mean() / wx.abs().mean()).item(),
        )


def test_trace_watches_the_probe_under_the_purification_seed(tracer, random_gan, fmnist_images):
    """The records read f̂ on the probe (not the purified batch), in f̂'s range (signed: 2x − 1), for the
    purification under the seed given: the last record is the state of the surrogate a projection of the batch
    under that seed ends with, every number by hand; start_live is the state a projection starts from."""
    G, D = random_gan
    x, _ = fmnist_images
    xc, probe = 1 - x[:4], x[8:12]
    defense = _mimic(G, D, surrogate_range="signed")
    records = tracer.trace(defense, xc, probe, seed=1)
    end = defense.engine.project(xc, defense.cfg, seed=1).surrogate
    live, w, bias, conv = _by_hand(end, 2 * probe - 1)
    assert records[-1] == pytest.approx({"live": live, "w": w, "bias": bias, "conv": conv}, rel=1e-5)
    assert records[-1]["bias"] != pytest.approx(records[0]["bias"])  # conv2's bias moves
    # the start: γs = 0 leaves the surrogate where it began
    start = defense.engine.project(probe, defense.cfg.with_(surrogate_lr=0.0), seed=1).surrogate
    assert tracer.start_live(defense, probe, seed=1) == pytest.approx(_by_hand(start, 2 * probe - 1)[0])


@pytest.mark.parametrize("arch", ["mimicgan1", "mimicgan2"])
def test_trace_table_rows_kinds_and_start(tracer, tmp_path, monkeypatch, arch):
    """main: the images of eval_indices(n, seed), corrupted under --corruption-seed on the dataset named, the
    trace of the corrupted batch with the clean images as probe under --purify-seed; rows: the first T1 steps,
    then every --every-th step and the last, each marked f̂ or z by its place in Alg. 1's period T1 + T2; cells
    in %, signed to 3 digits; the start's live share in the caption; MimicGAN-2's column names for its
    surrogate. Data, models and the trace are stand-ins."""
    from conftest import md_rows
    from types import SimpleNamespace

    x, y = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(10)
    cfg = PAPER_CONFIGS["mimicgan"].with_(outer_iters=3, surrogate_steps=3, latent_steps=2, surrogate_arch=arch)
    defense = SimpleNamespace(cfg=cfg)
    calls = {}

    class Data:
        def eval_indices(self, n, seed):
            calls["draw"] = (n, seed)
            return torch.arange(seed, seed + n)

        def get(self, idx):
            return x[idx], y[idx]

    def corrupt(clf, xs, ys):
        calls["corrupt"] = (clf, xs, ys, torch.rand(()).item())
        return 1 - xs

    def trace(d, xc, probe, seed):
        calls["trace"] = (d, xc, probe, seed)
        return [{"live": i / 100, "w": 1 - i / 20, "bias": -i / 40, "conv": i / 8} for i in range(15)]

    monkeypatch.setattr(tracer, "data_root", lambda: None)
    monkeypatch.setattr(tracer, "load_dataset", lambda name, split, root: calls.setdefault("data", name) and Data())
    monkeypatch.setattr(tracer, "get_classifier", lambda name, preset, data_root: ("clf", None))
    monkeypatch.setattr(
        tracer, "corruption", lambda spec, dataset: calls.setdefault("spec", (spec, dataset)) and corrupt
    )
    monkeypatch.setattr(
        tracer, "build_defense", lambda v, ds, data_root: calls.setdefault("defense", (v, ds)) and defense
    )
    monkeypatch.setattr(tracer, "trace", trace)
    monkeypatch.setattr(
        tracer, "start_live", lambda d, probe, seed: calls.setdefault("start", (d, probe, seed)) and 0.25
    )
    out = tmp_path / "trace.md"
    argv = ["--dataset", "mnist", "--n", "4", "--seed", "2", "--corruption", "drop-pixels:mask=batch"]
    argv += ["--corruption-seed", "5", "--variant", "mimicgan[x=1]", "--purify-seed", "7", "--every", "6"]
    assert tracer.main(argv + ["--out", str(out)]) == 0
    clean = x[2:6]
    assert calls["data"] == "mnist" and calls["draw"] == (4, 2) and calls["spec"] == ("drop-pixels:mask=batch", "mnist")
    assert calls["corrupt"][:1] == ("clf",) and torch.equal(calls["corrupt"][1], clean)
    assert torch.equal(calls["corrupt"][2], y[2:6])
    assert calls["corrupt"][3] == torch.rand((), generator=torch.Generator().manual_seed(5)).item()
    assert calls["defense"] == ("mimicgan[x=1]", "mnist")
    d, xc, probe, seed = calls["trace"]
    assert d is defense and torch.equal(xc, 1 - clean) and torch.equal(probe, clean) and seed == 7
    d, probe, seed = calls["start"]
    assert d is defense and torch.equal(probe, clean) and seed == 7
    text = out.read_text()
    assert "the conv path is live on 25.0% of the probe" in text
    table = md_rows(text)
    spatial = arch == "mimicgan2"
    assert table[0][3:] == (
        ["max abs(A − I)", "conv4 bias", "conv path / A(x)"] if spatial else ["W", "conv2 bias", "conv path / W·x"]
    )
    # step s is record s − 1; period 5: steps 1-3 update f̂, 4-5 z, 6-8 f̂, ...
    expected = [
        [str(s), kind, f"{s - 1:.1f}", f"{1 - (s - 1) / 20:+.3f}", f"{-(s - 1) / 40:+.3f}", f"{(s - 1) / 8:.3f}"]
        for s, kind in ((1, "f̂"), (2, "f̂"), (3, "f̂"), (6, "f̂"), (12, "f̂"), (15, "z"))
    ]
    assert table[1:] == expected
