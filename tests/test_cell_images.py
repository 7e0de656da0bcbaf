"""Which images a matrix cell evaluates and what it stores for them (MatrixRunner._compute_cell), each checked
against an independent computation on a tiny seeded classifier with ``features``/``head`` and user defenses
handed in as objects (no zoo): the cell's images are ``eval_indices`` of its n (stratified when asked, its own
seed, at most the run's n), every batch including the last partial one is evaluated and stored in index order with
its own labels, the detection score is ‖Φ(x_in) − Φ(x̂)‖₂ of the attacked input and its first purification, the
projection error ‖x_in − x̂‖₂, a deterministic defense is purified once per batch, and a gray-box cell on a subset
of the run's images never reuses the cached adversarials of the full-n cell."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from conftest import SeededNoise
from torch import nn

from defbench.defenses import Defense
from defbench.harness.matrix import AttackSpec, Cell, MatrixRunner, MatrixSpec, purify_seed

EPS = 0.1


class _Clf(nn.Module):
    """A seeded untrained linear classifier with an explicit feature map Φ and head."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(784, 16, generator=g) * 0.05)
        self.w2 = nn.Parameter(torch.randn(16, 10, generator=g) * 0.3)

    def features(self, x):
        return torch.relu(x.flatten(1) @ self.w1)

    def head(self, phi):
        return phi @ self.w2

    def forward(self, x):
        return self.head(self.features(x))


class _Shrink(Defense):
    """Deterministic: x -> 0.5 x + 0.25. ``rec.calls`` gets the batch size of every purification."""

    name = "shrink"
    randomized = False

    def __init__(self):
        super().__init__((1, 28, 28))
        self.rec = SimpleNamespace(calls=[])

    def _purify(self, x, seed):
        return 0.5 * x + 0.25

    def purify(self, x, seed=None):
        self.rec.calls.append(x.shape[0])
        return super().purify(x, seed)


def _runner(tmp_path, defense, **kw) -> MatrixRunner:
    label = f"user:{defense.name}"
    args = dict(
        dataset="fmnist",
        defenses=(label,),
        attacks=(AttackSpec("fgsm", EPS),),
        threats=("graybox",),
        n=10,
        batch_size=4,
        preset="quick",
        out=str(tmp_path / "o"),
        progress=False,
        external_defenses=(label,),
    )
    args.update(kw)
    return MatrixRunner(MatrixSpec(**args), classifier=_Clf(), defenses={label: defense})


def _result(runner, seed=0, threat="none"):
    d = runner.spec.defenses[0]
    cell = Cell(seed, d, threat, None if threat == "none" else runner.spec.attacks[0])
    return runner.compute_cell(cell).result


def _predict(x):
    with torch.no_grad():
        return _Clf()(x).argmax(1).tolist()


def test_every_image_of_the_cell_is_evaluated_including_the_last_partial_batch(fmnist, tmp_path):
    """n=10 at batch size 4 is batches of 4, 4 and 2: the clean cell stores all 10 images of eval_indices(10, 0)
    in index order, each with its own test-set label and the classifier's prediction on its purification
    (recomputed here image by image)."""
    _, test = fmnist
    d = _Shrink()
    res = _result(_runner(tmp_path, d))
    want = test.eval_indices(10, 0)
    assert res.indices == want.tolist()
    assert res.labels == [int(test.labels[i]) for i in want]
    x, _ = test.get(want)
    assert res.preds == _predict(0.5 * x + 0.25)
    assert res.preds_undefended == _predict(x)


def test_a_cell_s_numbers_do_not_depend_on_the_batch_size_for_a_per_image_defense(fmnist, tmp_path):
    """A deterministic per-image defense gives the same per-image predictions, scores and projection errors at
    batch size 3 as in one batch of 10 (the batches cover the images exactly once, in order)."""
    a = _result(_runner(tmp_path / "a", _Shrink(), batch_size=3))
    b = _result(_runner(tmp_path / "b", _Shrink(), batch_size=10))
    assert (a.indices, a.labels, a.preds) == (b.indices, b.labels, b.preds)
    assert a.scores == pytest.approx(b.scores, rel=1e-5)
    assert a.extra["projection_error"] == pytest.approx(b.extra["projection_error"], rel=1e-5)


def test_stratified_cells_take_the_same_number_of_images_from_every_class(fmnist, tmp_path):
    """stratified=True: n=20 images, 2 of each of the 10 classes (counted from the test set's labels), the draw of
    eval_indices(20, seed, stratified=True); each seed its own draw."""
    _, test = fmnist
    runner = _runner(tmp_path, _Shrink(), n=20, batch_size=20, stratified=True, seeds=(0, 1))
    for seed in (0, 1):
        res = _result(runner, seed=seed)
        counts = torch.bincount(test.labels[torch.tensor(res.indices)], minlength=10)
        assert counts.tolist() == [2] * 10, seed
        assert res.indices == test.eval_indices(20, seed, stratified=True).tolist()
    assert _result(runner, seed=0).indices != _result(runner, seed=1).indices


def test_a_threat_n_above_n_keeps_the_run_s_n(fmnist, tmp_path):
    """threat_n only ever lowers a threat's images: graybox=50 in a run of n=10 evaluates the run's 10 images."""
    _, test = fmnist
    runner = _runner(tmp_path, _Shrink(), threat_n={"graybox": 50})
    res = _result(runner, threat="graybox")
    assert res.indices == test.eval_indices(10, 0).tolist()
    assert "n_images" not in res.attack_config


def test_detection_score_and_projection_error_are_of_the_attacked_input_and_its_first_purification(fmnist, tmp_path):
    """A gray-box FGSM cell of a randomized defense with 2 evaluation repeats: the detection score of each image is
    ‖Φ(x_in) − Φ(x̂)‖₂ and its projection error ‖x_in − x̂‖₂ (stored to 1e-6), where x_in is the FGSM image of the
    undefended classifier (x + ε sign ∇CE, computed here) and x̂ its repeat-0 purification with purify_seed(0, b, 0)
    (recomputed here with a fresh defense), not the clean image's or the last repeat's."""
    _, test = fmnist
    runner = _runner(tmp_path, SeededNoise(0.3, (1, 28, 28)), eval_repeats=2)
    res = _result(runner, threat="graybox")
    x, y = test.get(torch.tensor(res.indices))
    clf = _Clf()
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(clf(xr), y), xr)
    x_in = (x + EPS * grad.sign()).clamp(0, 1)
    assert (x_in - x).abs().amax() > EPS / 2  # the attack moved the images: clean and attacked scores differ
    fresh = SeededNoise(0.3, (1, 28, 28))
    x_hat = torch.cat([fresh.purify(x_in[s : s + 4], seed=purify_seed(0, b, 0)) for b, s in enumerate(range(0, 10, 4))])
    with torch.no_grad():
        want_scores = (clf.features(x_in) - clf.features(x_hat)).norm(dim=1).tolist()
    want_errors = [math.sqrt(float(((a - b) ** 2).sum())) for a, b in zip(x_in, x_hat, strict=True)]
    assert res.scores == pytest.approx(want_scores, rel=1e-4, abs=1e-5)
    assert res.extra["projection_error"] == pytest.approx(want_errors, abs=1e-6)
    assert res.preds_undefended == _predict(x_in)


def test_a_deterministic_defense_is_purified_once_per_batch_whatever_eval_repeats(fmnist, tmp_path):
    """eval_repeats only repeats randomized defenses: a deterministic one with eval_repeats=3 is purified once per
    batch, stores no repeat predictions and is keyed with eval_repeats 1 (its numbers cannot change with it)."""
    d = _Shrink()
    runner = _runner(tmp_path, d, eval_repeats=3)
    _result(runner)  # the clean cell: the runner's randomness check and the cell's gradient check purify too
    d.rec.calls.clear()
    res = _result(runner, threat="graybox")
    assert d.rec.calls == [4, 4, 2]
    assert "repeat_preds" not in res.extra
    assert res.defense_config["eval_repeats"] == 1


def test_a_gray_box_cell_on_a_subset_never_reads_the_full_cell_s_cached_adversarials(fmnist, tmp_path):
    """threat_n graybox=4 in a run of n=8 (batch size 4): the cell's one batch is eval_indices(4, 0), not batch 0
    of the n=8 images. A store that already holds the n=8 run's gray-box cache (same attack, classifier, batch
    size) must not hand that batch's adversarials to the subset cell: with DeepFool (unbounded, deterministic, so
    no budget check would refuse another image's adversarial) the subset cell's attacked images are those a fresh
    store computes for the same images, and the undefended predictions are the classifier's on them."""
    _, test = fmnist
    deepfool = (AttackSpec("deepfool", None, (("steps", 5),)),)
    full = _runner(tmp_path / "shared", _Shrink(), n=8, attacks=deepfool)
    _result(full, threat="graybox")  # fills <out>/adv-cache with the n=8 cell's batches
    assert not torch.equal(test.eval_indices(4, 0), test.eval_indices(8, 0)[:4])  # the batches differ
    got = {}
    for where in ("shared", "fresh"):
        sub = _runner(tmp_path / where, _Shrink(), n=8, threat_n={"graybox": 4}, attacks=deepfool)
        sub.batch_hook = lambda cell, b, x, x_in, x_hat, where=where: got.setdefault(where, (x, x_in))
        res = _result(sub, threat="graybox")
        assert res.indices == test.eval_indices(4, 0).tolist()
        assert res.preds_undefended == _predict(got[where][1])
    assert torch.equal(got["shared"][0], test.get(test.eval_indices(4, 0))[0])
    assert torch.equal(got["shared"][1], got["fresh"][1])


@pytest.mark.parametrize("batch_size", [4, 10])
def test_a_universal_fit_is_handed_its_first_images_whatever_the_batch_size(fmnist, tmp_path, monkeypatch, batch_size):
    """universal-fgsm with images=6 in a cell of 10: the perturbation is fitted (once per cell) on the cell's first
    6 images at batch size 4 as at 10 (it was handed the first batch: 4 images while the store said 6), and with
    labels='predicted' against the classifier's predictions on them, as every batch is attacked, not the true
    labels."""
    from defbench.attacks.universal import UniversalFGSM

    _, test = fmnist
    seen = []
    fit = UniversalFGSM.fit
    monkeypatch.setattr(UniversalFGSM, "fit", lambda self, m, x, y: seen.append((x, y)) or fit(self, m, x, y))
    atk = (AttackSpec("universal-fgsm", None, (("images", 6), ("labels", "predicted"))),)
    _result(_runner(tmp_path, _Shrink(), attacks=atk, batch_size=batch_size), threat="graybox")
    ((x, y),) = seen
    first = test.eval_indices(10, 0)[:6]
    assert torch.equal(x, test.get(first)[0])
    assert y.tolist() == _predict(x) != test.labels[first].tolist()


def test_universal_attacks_ask_for_the_images_they_fit_on():
    """The matrix hands prepare() as many images as an attack's prepare_images: universal-fgsm's `images`,
    universal-art's `fit_images`; an attack that fits nothing leaves it to the batch (None)."""
    from defbench.attacks import get_attack

    assert get_attack("universal-fgsm", "fmnist", images=7).prepare_images == 7
    assert get_attack("universal-art", "fmnist", 0.1, fit_images=9).prepare_images == 9
    assert get_attack("fgsm", "fmnist").prepare_images is None


def test_the_run_s_cells_are_each_threat_where_it_means_something(fmnist, tmp_path):
    """cells(): a clean cell per defense and seed, gray-box for every defense, BPDA for every defense but none
    (undefended BPDA is the gray-box attack), gan-aware for the GAN-prior defenses only, reparam for the GAN
    priors and none (the reference row the reparam flag compares with), each with every attack."""
    spec = dict(
        defenses=("none", "median", "defensegan"),
        attacks=(AttackSpec("fgsm", EPS), AttackSpec("pgd", EPS)),
        threats=("graybox", "bpda", "gan-aware", "reparam"),
        seeds=(0, 1),
        external_defenses=(),
    )
    runner = MatrixRunner(replace(_runner(tmp_path, _Shrink()).spec, **spec), classifier=_Clf())
    threats = {
        "none": ("graybox", "reparam"),
        "median": ("graybox", "bpda"),
        "defensegan": ("graybox", "bpda", "gan-aware", "reparam"),
    }
    want = {(s, d, "none", None) for s in (0, 1) for d in threats}
    want |= {(s, d, t, a) for s in (0, 1) for d, ts in threats.items() for t in ts for a in spec["attacks"]}
    got = [(c.seed, c.defense, c.threat, c.attack) for c in runner.cells()]
    assert len(got) == len(set(got)) and set(got) == want


def test_each_gan_aware_batch_draws_from_its_own_seed(fmnist, tmp_path, monkeypatch):
    """A gan-aware cell's latent attack is handed each batch's own seed (batch_seed of the cell's seed and the
    batch's number: 3 batches, 3 distinct seeds), so its draws in one batch do not repeat the previous one's."""
    from defbench.harness import matrix
    from defbench.harness.matrix import batch_seed

    seeds = []

    def record(atk, clf, d, x, y, seed):
        seeds.append(seed)
        return x

    monkeypatch.setattr(matrix, "gan_aware", record)
    runner = _runner(tmp_path, _Shrink())
    runner.compute_cell(Cell(1, runner.spec.defenses[0], "gan-aware", runner.spec.attacks[0]))
    assert seeds == [batch_seed(1, b) for b in range(3)] and len(set(seeds)) == 3


class _NaNGrad(Defense):
    """x + sqrt(x − x): the identity forward, whose backward is 1 + ∞·0 = NaN at every pixel."""

    name = "nangrad"
    randomized = False

    def __init__(self):
        super().__init__((1, 28, 28))

    def _purify(self, x, seed):
        return x + torch.sqrt(x - x)


def test_the_gradient_check_counts_non_finite_gradient_entries_as_shattered(fmnist, tmp_path):
    """The gradient check's zero_grad_fraction counts NaN / inf entries of ∇x CE(f(purify(x))) with the zero ones
    (no usable gradient reaches the input): 1.0 for a defense whose backward is NaN everywhere, 0.0 for one
    whose backward is 0.5 everywhere."""
    _, test = fmnist
    x, y = test.get(test.eval_indices(4, 0))
    runner = _runner(tmp_path, _Shrink())
    assert runner.gradient_check(_NaNGrad(), x, y)["zero_grad_fraction"] == 1.0
    assert runner.gradient_check(_Shrink(), x, y)["zero_grad_fraction"] == 0.0
