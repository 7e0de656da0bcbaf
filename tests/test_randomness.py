"""Randomness that does not depend on history (issue 13, item 2).

* every registered defense declares ``randomized`` exactly when its output depends on the seed;
* BPDA's EOT averages probabilities, with purification seeds derived from (cell, batch, step, draw) only;
* a matrix run fresh, resumed after half its cells were deleted, and run in reversed cell order gives the same
  predictions in every cell, for every defense (randomized and deterministic, gray-box and BPDA);
* ART's universal perturbation is seeded from the cell, not from the global RNG.
"""

from __future__ import annotations

import math
import random
import sqlite3

import numpy as np
import pytest
import torch
from conftest import SeededNoise, save_encoder

from defbench.attacks.threats import BPDAModel
from defbench.defenses.base import Defense

#: small budgets per registered defense (options a variant could set), so that every one runs in a second
SMALL = {
    "defensegan": {"latent_steps": 3, "restarts": 2},
    "cowboy": {"latent_steps": 3, "restarts": 2},
    "invgan": {"latent_steps": 3},
    "mimicgan": {"outer_iters": 1, "latent_steps": 2, "surrogate_steps": 2, "mean_samples": 20},
    "ride": {"iterations": 2, "checkpoints": 1, "estimate_samples": 1, "noise_block": 1},
}


def _save_encoder(seed: int = 1) -> None:
    """A random InvGAN encoder in the test zoo, once."""
    from defbench.harness import zoo

    if not zoo.exists("encoder-fmnist-quick"):
        save_encoder(seed)


@pytest.fixture(scope="module")
def zoo_with_encoder(tiny_zoo):
    _save_encoder()
    return tiny_zoo


# --------------------------------------------------------------------------------------------- declarations


def _registered():
    from defbench.defenses.registry import DEFENSES

    return DEFENSES


@pytest.mark.parametrize("name", _registered())
def test_randomized_exactly_when_output_depends_on_seed(name, zoo_with_encoder, fmnist_images):
    """Purify one batch with two seeds: the outputs differ iff the defense declares itself randomized; the same
    seed twice gives the same output (no hidden state: no call counter)."""
    from defbench.harness.models import build_defense

    x = fmnist_images[0][:4]
    d = build_defense(name, "fmnist", "quick", "cpu", dict(SMALL.get(name, {})), train_missing=False, progress=False)
    a, a2, b = d.purify(x, seed=1), d.purify(x, seed=1), d.purify(x, seed=2)
    assert torch.equal(a, a2), f"{name}: the same seed twice gave different outputs"
    differs = not torch.equal(a, b)
    assert differs == bool(d.randomized), (
        f"{name} declares randomized={d.randomized} but its output "
        f"{'changes' if differs else 'does not change'} with the seed"
    )


@pytest.mark.parametrize("name", [*_registered(), "mimicgan[surrogate_arch=mimicgan2]"])
def test_a_purification_leaves_the_global_rngs_as_they_were(name, zoo_with_encoder, fmnist_images):
    """Every draw of a purification comes from its seed's generator; it consumes nothing of the global torch,
    numpy and Python RNGs (MimicGAN's surrogate consumed torch's: nn.Conv2d's default init, overwritten after),
    so what runs after it draws the same numbers."""
    from defbench.defenses.registry import base_name
    from defbench.harness.models import build_defense

    x = fmnist_images[0][:4]
    opts = dict(SMALL.get(base_name(name), {}))
    d = build_defense(name, "fmnist", "quick", "cpu", opts, train_missing=False, progress=False)
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    d.purify(x, seed=1)
    after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())
    assert torch.equal(before[0], after[0]), f"{name} drew from torch's global RNG"
    assert np.array_equal(before[1], after[1]) and before[2] == after[2], f"{name} drew from numpy's or Python's"


def test_mimicgan_is_randomized_and_invgan_is_not():
    from defbench.defenses.gan_prior import PAPER_CONFIGS, seed_dependent

    assert seed_dependent(PAPER_CONFIGS["mimicgan"]) and seed_dependent(PAPER_CONFIGS["defensegan"])
    assert not seed_dependent(PAPER_CONFIGS["invgan"])
    assert seed_dependent(PAPER_CONFIGS["invgan"].with_(restarts=3))  # jittered extra restarts


# --------------------------------------------------------------------------------------------- EOT


def test_eot_averages_probabilities_with_derived_seeds():
    from defbench.defenses.base import derive_seed

    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    d = SeededNoise(0.2, (1, 4, 4), name="noisy")
    x = torch.rand(5, 1, 4, 4)
    m = BPDAModel(clf, d, eot=3, seed=11)
    out = m(x)
    probs = torch.stack([clf(d.purify(x, seed=derive_seed(11, 0, j))).softmax(1) for j in range(3)]).mean(0)
    assert torch.allclose(out, probs.log(), atol=1e-6)  # log of the mean probability, not the mean logit
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)
    # cross-entropy on the output is the loss of the mean probability
    y = torch.tensor([0, 1, 2, 0, 1])
    ce = torch.nn.functional.cross_entropy(out, y)
    assert ce.item() == pytest.approx(-probs[torch.arange(5), y].log().mean().item(), abs=1e-5)
    # the draws depend on (seed, call, draw) only: other work in between, or a reseed, changes nothing
    second = m(x)
    d.purify(torch.rand(5, 1, 4, 4))
    m.reseed(11)
    assert torch.equal(m(x), out) and torch.equal(m(x), second)
    assert not torch.equal(out, second)  # a later step of the attack gets fresh draws
    # gradients flow (BPDA: identity stand-in)
    xr = x.clone().requires_grad_(True)
    m.reseed(3)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(m(xr), y), xr)
    assert g.abs().sum() > 0 and torch.isfinite(g).all()


def test_eot_one_keeps_logits():
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    d = SeededNoise(0.2, (1, 4, 4), name="noisy")
    x = torch.rand(2, 1, 4, 4)
    m = BPDAModel(clf, d, eot=1, seed=5)
    from defbench.defenses.base import derive_seed

    assert torch.equal(m(x), clf(d.purify(x, seed=derive_seed(5, 0, 0))))


def test_eot_through_attack_model_averages_distinct_draws():
    """What the runner hands a library attack under bpda (``attack_model``) for a randomized defense: the log of
    the mean probability over ``eot`` purifications with distinct derived seeds, and the gradient of that
    average (identity backward per draw), computed here by hand. Catches EOT with one draw, the same seed for
    every draw, an ``eot`` the attack model drops, and a gradient of a single draw."""
    from defbench.attacks.threats import attack_model
    from defbench.defenses.base import derive_seed

    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    d = SeededNoise(0.2, (1, 4, 4), name="noisy")
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    m = attack_model("bpda", clf, d, eot=4, seed=11)
    draws = [d.purify(x, seed=derive_seed(11, 0, j)) for j in range(4)]
    assert all(not torch.equal(draws[i], draws[j]) for i in range(4) for j in range(i))
    xr = x.clone().requires_grad_(True)
    out = m(xr)
    want = torch.stack([clf(p).softmax(1) for p in draws]).mean(0).log()
    assert torch.allclose(out, want, atol=1e-6)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), xr)
    xh = x.clone().requires_grad_(True)
    probs = torch.stack([clf(xh + (p - x)).softmax(1) for p in draws]).mean(0)
    (g_want,) = torch.autograd.grad(-probs[torch.arange(5), y].log().mean(), xh)
    assert torch.allclose(g, g_want, atol=1e-6)
    (g_one,) = torch.autograd.grad(torch.nn.functional.cross_entropy(clf(xh + (draws[0] - x)), y), xh)
    assert not torch.allclose(g, g_one, atol=1e-4)
    assert attack_model("bpda", clf, NoisyFree((1, 4, 4)), eot=4).eot == 1  # deterministic: one draw


class NoisyFree(Defense):
    name = "noisefree"

    def _purify(self, x, seed):
        return x.flip(-1)


def test_eot_is_on_by_default_under_bpda(tiny_zoo, tmp_path):
    from defbench.harness.matrix import DEFAULT_EOT, AttackSpec, Cell, MatrixRunner, MatrixSpec

    for preset in ("quick", "paper"):
        spec = MatrixSpec(dataset="fmnist", defenses=("none",), attacks=(), preset=preset).validate()
        assert spec.eot == DEFAULT_EOT[preset] > 1
    assert DEFAULT_EOT["paper"] == 10
    spec = MatrixSpec(
        dataset="fmnist",
        defenses=("defensegan[latent_steps=2,restarts=2]", "median"),
        attacks=(AttackSpec("fgsm"),),
        threats=("bpda",),
        n=4,
        batch_size=4,
        preset="quick",
        out=str(tmp_path / "o"),
        progress=False,
    )
    runner = MatrixRunner(spec)
    _, _, acfg = runner.key(Cell(0, "defensegan[latent_steps=2,restarts=2]", "bpda", AttackSpec("fgsm")))
    assert acfg["eot"] == DEFAULT_EOT["quick"]
    _, _, acfg = runner.key(Cell(0, "median", "bpda", AttackSpec("fgsm")))
    assert acfg["eot"] == 1  # deterministic: nothing to average


# --------------------------------------------------------------------------------------------- matrix

DEFS = ("none", "defensegan[latent_steps=2,restarts=2]", "invgan[latent_steps=2]")


class _Reversed:
    """An executor that runs the cells in reversed order."""

    def run(self, runner, cells):
        for c in reversed(cells):
            runner.record(runner.compute_cell_guarded(c))


def _spec(out):
    from defbench.harness.matrix import AttackSpec, MatrixSpec

    return MatrixSpec(
        dataset="fmnist",
        defenses=DEFS,
        attacks=(AttackSpec("pgd", 0.2, (("steps", 2),)),),
        threats=("graybox", "bpda"),
        n=8,
        batch_size=4,
        preset="quick",
        eot=2,
        eval_repeats=2,
        out=str(out),
        progress=False,
    )


def _snapshot(store):
    """Per cell: its predictions (defended, undefended, every repeat) and, finer than predictions, its detection
    scores and projection errors (a different random start or restart shows there first)."""
    return {
        r["key"]: (
            r["defense"],
            r["threat"],
            r["attack"],
            r["preds"],
            r["preds_undefended"],
            (r["extra"] or {}).get("repeat_preds"),
            r["scores"],
            (r["extra"] or {}).get("projection_error"),
        )
        for r in store.rows()
    }


def test_fresh_resumed_and_reversed_runs_agree(zoo_with_encoder, tmp_path):
    from defbench.harness.matrix import MatrixRunner

    fresh = MatrixRunner(_spec(tmp_path / "a"))
    fresh.run()
    want = _snapshot(fresh.store)
    assert len(want) == 2 + 2 * 3  # none: clean + gray-box; each GAN defense: clean + gray-box + bpda
    assert {v[0] for v in want.values()} == set(DEFS)
    # delete half the cells and resume: the BPDA cells (whose defenses' clean cells stay, so that earlier work
    # on the same defense does not run again before them), the undefended gray-box cell and InvGAN's clean cell
    cells = fresh.cells()
    pick = [
        c
        for c in cells
        if c.threat == "bpda"
        or (c.defense == "none" and c.attack is not None)
        or (c.defense.startswith("invgan") and c.attack is None)
    ]
    gone = [fresh.key(c)[0].key for c in pick]
    assert len(gone) == len(want) // 2
    with sqlite3.connect(fresh.store.path) as c:
        c.executemany("DELETE FROM cells WHERE key=?", [(k,) for k in gone])
    resumed = MatrixRunner(_spec(tmp_path / "a"))
    resumed.run()
    assert sorted(resumed.computed) == sorted(gone)
    got = _snapshot(resumed.store)
    diff = [want[k][:3] for k in want if got[k] != want[k]]
    assert not diff, f"resumed cells differ from fresh ones: {diff}"
    # a new store, cells in reversed order (gray-box adversarials now computed by other defenses first)
    rev = MatrixRunner(_spec(tmp_path / "b"))
    rev.run(_Reversed())
    got = _snapshot(rev.store)
    diff = [want[k][:3] for k in want if got.get(k) != want[k]]
    assert not diff, f"cells run in reversed order differ: {diff}"


def test_more_purifications_move_no_draw_of_the_attack(zoo_with_encoder, tmp_path):
    """A randomized defense purified twice per image attacks with the draws of its one-purification cell under every
    threat: the adversarial examples (the bare classifier's predictions on them) are the same and the first
    purification is that cell's, so an --eval-repeats sweep changes one thing, the purifications. Under the
    adaptive threats the attack's stream was named with eval_repeats, so BPDA's random start and EOT draws, the
    reparameterised and the GAN-aware attack moved with it (gray-box adversarials never did: they are cached)."""
    from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec

    def run(k):
        spec = MatrixSpec(
            dataset="fmnist",
            defenses=("defensegan[latent_steps=2,restarts=2]",),
            attacks=(AttackSpec("pgd", 0.2, (("steps", 2),)),),
            threats=("graybox", "bpda", "reparam", "gan-aware"),
            n=4,
            batch_size=4,
            preset="quick",
            eot=2,
            eval_repeats=k,
            out=str(tmp_path / f"k{k}"),
            progress=False,
        )
        runner = MatrixRunner(spec)
        runner.run()
        rows = {r["threat"]: r for r in runner.store.rows()}
        runner.store.close()
        return rows

    one, two = run(1), run(2)
    assert set(one) == set(two) == {"none", "graybox", "bpda", "reparam", "gan-aware"}
    for threat, r in two.items():
        want = one[threat]
        # predictions can agree by chance; the scores ‖Φ(x_in) − Φ(x̂)‖ and projection errors of the first
        # purification (finer) show another adversarial example or another purification at once
        assert r["preds_undefended"] == want["preds_undefended"], f"{threat}: other adversarial examples"
        assert r["extra"]["repeat_preds"][0] == want["preds"], f"{threat}: another first purification"
        assert np.allclose(r["scores"], want["scores"], rtol=1e-5, atol=1e-6), f"{threat}: other scores"
        assert np.allclose(r["extra"]["projection_error"], want["extra"]["projection_error"], rtol=1e-5), threat


# --------------------------------------------------------------------------------------------- ART universal


def test_universal_art_is_seeded_by_the_cell(tiny_classifier, fmnist_images):
    from defbench.attacks import get_attack

    model, _ = tiny_classifier
    x, y = fmnist_images

    def fit(seed, scramble):
        random.seed(scramble)
        np.random.seed(scramble)
        torch.manual_seed(scramble)
        atk = get_attack("universal-art", "fmnist", 0.05, max_iter=1, fit_images=16)
        atk.seed = seed
        atk.prepare(model, x, y)
        return atk._nu

    a = fit(7, 1)
    assert math.isfinite(float(a.abs().sum()))
    assert torch.equal(a, fit(7, 2))  # the global RNG state does not matter ...
    assert not torch.equal(a, fit(8, 1))  # ... the cell's seed does (ART's random image order)


def test_each_cell_records_its_thread_count(tiny_zoo, tmp_path):
    """A cell's result can depend on the CPU thread count (MimicGAN's learned surrogate: 72 vs 75 of 100 images
    at 2 and 1 threads, docs/RESULTS.md), which is not part of its key: the stored cell names the count."""
    from defbench.harness.matrix import MatrixRunner, MatrixSpec

    before = torch.get_num_threads()
    got = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            spec = MatrixSpec(
                dataset="fmnist",
                defenses=("none",),
                attacks=(),
                threats=("graybox",),
                n=4,
                batch_size=4,
                preset="quick",
                out=str(tmp_path / f"t{threads}"),
                progress=False,
            )
            runner = MatrixRunner(spec)
            runner.run()
            got[threads] = [r["extra"]["cpu_threads"] for r in runner.store.rows()]
    finally:
        torch.set_num_threads(before)
    assert got == {1: [1], 2: [2]}


def test_purification_seeds_of_a_cell_never_repeat_across_batches_and_repeats():
    """purify_seed gave batch 0's eighth repeat the seed of batch 1's first (batch_seed * 7 + repeat), so from
    --eval-repeats 8 on the 'independent' repeats reused draws of other batches. Every (batch, repeat) now has its
    own seed; repeats 0-6 keep the seeds stored cells were computed with."""
    from defbench.harness.matrix import batch_seed, purify_seed

    for cell_seed in (0, 3):
        seeds = [purify_seed(cell_seed, b, r) for b in range(20) for r in range(16)]
        assert len(set(seeds)) == len(seeds)
        assert all(
            purify_seed(cell_seed, b, r) == batch_seed(cell_seed, b) * 7 + r for b in range(20) for r in range(7)
        )
    with pytest.raises(ValueError):
        purify_seed(0, 0, -1)
