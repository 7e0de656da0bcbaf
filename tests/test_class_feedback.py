"""Class feedback in GAN training (GANRecipe.class_feedback; issue: papers' tables, second pass, item 3): the
update rule, the chunked draws it steers, the recipe's refusals, and one end-to-end run where the classifier's
labels must move the batches."""

from __future__ import annotations

import math

import pytest
import torch

from defbench import DefbenchError
from defbench.defenses.train_prior import (
    GANRecipe,
    class_spread,
    epoch_orders,
    feedback_weights,
    gan_recipe,
    spread_latents,
    train_gan,
)


def test_feedback_weights_lift_a_short_class_and_lower_a_frequent_one():
    shares = torch.tensor([0.04, 0.18] + [0.1] * 8)
    w = feedback_weights(torch.ones(10), shares, gain=1.0)
    # (1 / (10 · share)) = 2.5, 1/1.8, then 1 eight times; rescaled by their geometric mean (2.5/1.8)^(1/10)
    g = (2.5 / 1.8) ** 0.1
    assert w[0].item() == pytest.approx(2.5 / g, rel=1e-5)
    assert w[1].item() == pytest.approx(1 / 1.8 / g, rel=1e-5)
    assert w[2:].tolist() == pytest.approx([1 / g] * 8, rel=1e-5)
    assert math.exp(w.log().mean().item()) == pytest.approx(1.0, abs=1e-6)  # geometric mean 1
    half = feedback_weights(torch.ones(10), shares, gain=0.5)  # the gain is the exponent
    assert half.tolist() == pytest.approx(w.sqrt().tolist(), rel=1e-5)
    again = feedback_weights(w, shares, gain=1.0)  # the weights accumulate: the same shortfall lifts it further
    assert again[0] > w[0] > 1 > w[1] > again[1]


def test_feedback_weights_stay_within_their_bounds_and_hold_when_shares_are_even():
    missing = torch.tensor([0.0] * 5 + [0.2] * 5)  # five classes never drawn
    for bound in (4.0, 8.0):
        w = torch.ones(10)
        for _ in range(20):
            w = feedback_weights(w, missing, gain=1.0, bound=bound)
        assert w[:5].tolist() == pytest.approx([bound] * 5) and w[5:].tolist() == pytest.approx([1 / bound] * 5)
    w = feedback_weights(torch.ones(10), missing, gain=1.0)  # the default bound: 4
    assert w.max().item() == pytest.approx(4.0) and w.min().item() == pytest.approx(0.25)
    even = feedback_weights(torch.ones(10), torch.full((10,), 0.1), gain=2.0)
    assert even.tolist() == pytest.approx([1.0] * 10)
    assert feedback_weights(w, missing, gain=0.0).tolist() == pytest.approx(w.tolist())


def test_epoch_orders_without_feedback_is_the_shuffled_pool():
    pool, labels = torch.arange(100, 300), torch.arange(300) % 10
    recipe = GANRecipe(epochs=1, batch_size=8)
    (order,) = epoch_orders(pool, labels, recipe, 120, torch.Generator().manual_seed(3))
    assert torch.equal(order, pool[torch.randperm(200, generator=torch.Generator().manual_seed(3))[:120]])


def test_epoch_orders_with_feedback_draw_chunks_by_the_weights_of_the_moment():
    labels = torch.arange(4000) % 2
    pool = torch.arange(4000)
    recipe = GANRecipe(epochs=1, batch_size=10, class_feedback=1.0, feedback_every=30)  # chunks of 300 images
    weights = torch.tensor([4.0, 0.25])
    chunks = []
    for order in epoch_orders(pool, labels, recipe, 1000, torch.Generator().manual_seed(0), weights):
        chunks.append(order)
        weights.copy_(weights.flip(0))  # the caller's update between chunks is what the next chunk reads
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert all(len(set(c.tolist())) == len(c) for c in chunks)  # without replacement within a chunk
    share0 = [float((labels[c] == 0).float().mean()) for c in chunks[:3]]
    assert share0[0] > 0.88 and share0[1] < 0.12 and share0[2] > 0.88  # 16 / 17 = 0.94 expected, then 1 / 17


@pytest.mark.parametrize(
    "override",
    [
        {"class_feedback": -0.1},
        {"class_feedback": 4.5},
        {"class_feedback": "1"},
        {"class_feedback": True},
        {"class_feedback": 1.0, "feedback_every": 0},
        {"feedback_every": 2.5},
        {"feedback_samples": True},
        {"feedback_bound": 0.5},
        {"feedback_bound": "8"},
        {"class_feedback": 1.0, "oversample_class": 1, "oversample_weight": 2},
        {"class_feedback": 0.5, "feedback_classifier": "judge"},
        {"class_feedback": 0.5, "feedback_classifier": 1},
        {"class_feedback": 0.0, "feedback_classifier": "quick"},
    ],
)
def test_gan_recipe_rejects_bad_class_feedback(override):
    with pytest.raises(DefbenchError, match="feedback"):
        GANRecipe(epochs=1, **override)
    with pytest.raises(DefbenchError, match="feedback"):
        gan_recipe("fmnist", "paper", **override)


def test_gan_recipe_accepts_class_feedback_at_its_bounds():
    assert (
        GANRecipe(epochs=1, class_feedback=4, feedback_every=1, feedback_samples=1, feedback_bound=1).feedback_bound
        == 1
    )
    assert GANRecipe(epochs=1, class_feedback=0.0, oversample_class=1, oversample_weight=2).oversample_weight == 2
    assert GANRecipe(epochs=1, class_feedback=0.5, feedback_classifier="quick").feedback_classifier == "quick"


class _AlwaysClassZero(torch.nn.Module):
    """A classifier that labels every image class 0: under feedback, class 0 is the one G draws too often."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 0] = 1.0
        return logits


def test_train_gan_feedback_moves_the_batches_away_from_the_class_the_classifier_sees(fmnist, batch_orders):
    """Every sample reads as class 0, so after the first chunk (weights 1: the split's 10% of class 0) class 0's
    weight drops to the lower bound, 1 / feedback_bound, and the others rise: the next chunks hold about
    0.125 / (0.125 + 9 · 1.3) = 1% of class 0. Without feedback the same run batches the default recipe's images
    and records no weights."""
    train, _ = fmnist
    seen = batch_orders
    base = dict(epochs=1, epoch_fraction=0.012, eval_images=10, eval_restarts=1, eval_steps=1, batch_size=16)
    runs = {}
    for gain, steps in ((0.0, 1), (0.5, 16)):
        seen.clear()
        recipe = GANRecipe(**base, class_feedback=gain, feedback_every=4, feedback_samples=50, feedback_bound=8)
        _, metrics = train_gan(
            "fmnist", train, _AlwaysClassZero(), recipe, 0, torch.device("cpu"), progress=False, max_steps=steps
        )
        runs[gain] = ([idx for idx in seen if len(idx) > 10], metrics["history"][-1])
    (plain,), rec_off = runs[0.0]
    assert "class_weights" not in rec_off and "feedback_spread" not in rec_off
    chunks, rec_on = runs[0.5]
    assert len(chunks) > 10 and all(len(c) == 64 for c in chunks[:-1])
    share0 = lambda idx: float((train.labels[idx] == 0).float().mean())  # noqa: E731
    assert share0(chunks[0]) < 0.25 and share0(torch.cat(chunks[1:])) < 0.05  # 10% at weights 1, then about 2%
    assert rec_on["class_weights"][0] == pytest.approx(1 / 8)  # 1 / the recipe's feedback_bound
    assert rec_on["feedback_spread"] == [1.0] + [0.0] * 9  # without a steering classifier, the recipe's counts
    assert all(w > 1 for w in rec_on["class_weights"][1:])
    assert abs(share0(plain) - 0.1) < 0.03


def test_gan_coverage_judge_reads_each_epoch_generator_with_another_classifier(tmp_path, monkeypatch):
    """--judge-preset labels 2,000 samples of every epoch's generator with a second classifier (here one that reads
    every image as T-shirt, where the training classifier's history says 10% each): a column of the per-epoch table
    and a row of the per-class one; a class feedback run's weights get their own row; without --judge-preset
    neither appears and train_gan gets no callback."""
    from conftest import import_benchmark, md_row, md_rows

    from defbench.defenses.priors import build_gan

    from defbench.harness import models

    coverage = import_benchmark("gan_coverage")
    monkeypatch.setattr(coverage, "data_root", lambda: None)
    presets, callbacks, steerers = [], [], []

    def get_classifier(dataset, preset, *a, **k):
        presets.append(preset)
        return (_AlwaysClassZero() if preset == "judge-one" else "clf" if preset == "quick" else f"clf-{preset}"), None

    monkeypatch.setattr(coverage, "get_classifier", get_classifier)
    monkeypatch.setattr(models, "get_classifier", get_classifier)  # steering_classifier's own loader
    monkeypatch.setattr(coverage, "load_dataset", lambda *a, **k: "train-split")
    G, _ = build_gan("fmnist")
    weights = [0.5, 2.0] + [1.0] * 8

    def fake_train(dataset, train, classifier, recipe, seed, device, each_epoch=None, steering=None):
        assert classifier == "clf"  # the judge never trains
        callbacks.append(each_epoch)
        steerers.append(steering)
        history = []
        for epoch in (1, 2):
            rec = {"epoch": epoch, "projection_accuracy": 0.9, "class_spread": [0.1] * 10, "d_loss": 1, "g_loss": 2}
            if recipe.class_feedback:
                rec["class_weights"] = weights
            if each_epoch is not None:
                each_epoch(G.eval(), rec)
            history.append(rec)
        return {}, {"history": history, "best_epoch": 1}

    monkeypatch.setattr(coverage, "train_gan", fake_train)
    out = tmp_path / "cov.md"
    args = ["--variants", "class_feedback=0.5", "--epochs", "2", "--out", str(out)]
    assert coverage.main([*args, "--judge-preset", "judge-one"]) == 0
    assert presets == ["quick", "judge-one"]
    text = out.read_text()
    for epoch in ("1", "2"):  # the per-epoch table: the judge's smallest share after the losses
        assert md_row(text, "class_feedback=0.5", epoch)[7] == "0.00 (trouser)"
    assert md_row(text, "class_feedback=0.5: judged by the judge-one classifier", "2")[2:] == ["100.00"] + ["0.00"] * 9
    assert md_row(text, "class_feedback=0.5: class weights at the end", "2")[2:4] == ["0.5", "2.0"]
    assert [r for r in md_rows(text) if r[0] == "class_feedback=0.5"][2][2:] == ["10.00"] * 10  # the shares table
    assert coverage.main(args) == 0
    assert callbacks[-1] is None
    assert not [r for r in md_rows(out.read_text()) if "judged by" in r[0]]
    assert len(md_row(out.read_text(), "class_feedback=0.5", "1")) == 8  # no judge column
    assert steerers == ["clf", "clf"]  # the training classifier steers unless the recipe names another
    presets.clear()
    assert coverage.main(["--variants", "class_feedback=0.5,feedback_classifier=paper", "--out", str(out)]) == 0
    assert presets == ["quick", "paper"] and steerers[-1] == "clf-paper"


class _AlwaysClass(torch.nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10)
        logits[:, self.k] = 1.0
        return logits


def test_train_gan_steering_classifier_steers_and_the_recipe_classifier_counts(fmnist, batch_orders):
    """With a steering classifier (the recipe's feedback_classifier, loaded by the caller) its labels move the
    batches: it reads every sample as class 3, so class 3 falls to about 1% of the later chunks while class 0,
    which the selecting classifier sees everywhere, keeps its share; the recorded shares are the selecting
    classifier's. A recipe that names a steering classifier is refused without one."""
    train, _ = fmnist
    seen = batch_orders
    recipe = GANRecipe(
        epochs=1, epoch_fraction=0.012, eval_images=10, eval_restarts=1, eval_steps=1, batch_size=16,
        class_feedback=0.5, feedback_every=4, feedback_samples=50, feedback_bound=8, feedback_classifier="quick",
    )  # fmt: skip
    args = ("fmnist", train, _AlwaysClass(0), recipe, 0, torch.device("cpu"))
    with pytest.raises(DefbenchError, match="steering"):
        train_gan(*args, progress=False, max_steps=1)
    seen.clear()
    _, metrics = train_gan(*args, progress=False, max_steps=16, steering=_AlwaysClass(3))
    later = torch.cat([idx for idx in seen if len(idx) > 10][1:])
    share = lambda k: float((train.labels[later] == k).float().mean())  # noqa: E731
    assert share(3) < 0.05 and share(0) > 0.06
    rec = metrics["history"][-1]
    assert rec["class_weights"][3] == pytest.approx(1 / 8) and rec["class_weights"][0] > 1
    assert rec["class_spread"][0] == 1.0  # counted by the recipe's classifier, not the steering one
    assert rec["feedback_spread"][3] == 1.0 and sum(rec["feedback_spread"]) == 1.0  # and the steering one's count


class _PixelVote(torch.nn.Module):
    """A classifier whose label depends on the image: the brightest of its first ten pixels."""

    def forward(self, x):
        return x.flatten(1)[:, :10]


def test_train_gan_each_epoch_sees_this_epochs_generator_and_record(fmnist):
    """each_epoch(G, rec) runs once per epoch with G in eval mode, and what it adds to the record is in the history;
    spread_latents(seed) gives the latents of the trainer's own count, so the same classifier reads its spread."""
    train, _ = fmnist
    calls = []

    def each_epoch(G, rec):
        calls.append((rec["epoch"], G.training))
        rec["extra"] = rec["epoch"] * 10
        read = lambda seed: [round(v, 4) for v in class_spread(G, _PixelVote(), 2000, spread_latents(seed), "cpu")]  # noqa: E731
        assert read(0) == rec["class_spread"]  # the record keeps four decimals
        assert read(1) != rec["class_spread"]

    recipe = GANRecipe(epochs=2, epoch_fraction=0.003, eval_images=10, eval_restarts=1, eval_steps=1, batch_size=16)
    _, metrics = train_gan(
        "fmnist", train, _PixelVote(), recipe, 0, torch.device("cpu"), progress=False, each_epoch=each_epoch
    )
    assert calls == [(1, False), (2, False)]
    assert [r["extra"] for r in metrics["history"]] == [10, 20]


def test_feedback_classifiers_are_the_classifier_presets():
    """defenses may not import classifiers (tests/test_layers.py), so GANRecipe's list of steering presets is a copy
    of the classifier recipes' presets: kept equal here, so a new classifier preset is not refused as a steerer."""
    from defbench.classifiers.train import RECIPES
    from defbench.defenses.train_prior import FEEDBACK_CLASSIFIERS

    assert set(FEEDBACK_CLASSIFIERS) == {""} | {preset for _, preset in RECIPES}
