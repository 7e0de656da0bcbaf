"""A matrix cell's evaluation (MatrixRunner._compute_cell / _attack_model) against its definitions, on one small
run of defbench.evaluate: a linear classifier on real Fashion-MNIST behind a randomized noise defense that records
every purification it is asked for, gray-box and BPDA PGD, EOT 8, 2 evaluation repeats, the quick preset and a
user's ``steps=3``. Each test reads the one shared run and checks one thing a user sees in the numbers: BPDA draws
``eot`` purifications per gradient, every repeat purifies with its own seed, the reported accuracy is the
all-repeats rule over every repeat, an attacked cell's undefended accuracy is the bare classifier's on the attacked
images, and the quick preset never overrides the user's attack options."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import defbench
from defbench import metrics
from defbench.attacks import threats
from defbench.defenses import Defense
from defbench.harness.matrix import purify_seed
from defbench.seeding import derive_seed

N, BATCH, EOT, REPEATS, STEPS, SIGMA = 48, 24, 8, 2, 3, 0.5
BATCHES = N // BATCH


class _Noise(Defense):
    """Gaussian noise from the call's seed (randomized, as declared). ``log`` gets every purification outside BPDA
    (the evaluation's, the randomness and gradient checks'); ``draws`` the seeds of the BPDA purifications of the
    model forward in progress (set by the patched :class:`BPDAModel` forward); both in ``rec``."""

    name = "noise"
    randomized = True

    def __init__(self):
        super().__init__((1, 28, 28))
        # records in an object, not in plain attributes: plain attributes that change while the defense runs are
        # named by a warning (MatrixRunner.warn_changed_state), which this run has no reason to print
        self.rec = SimpleNamespace(log=[], draws=None, in_bpda=False)

    def _purify(self, x, seed):
        g = torch.Generator().manual_seed(int(seed) % 2**63)
        return (x + SIGMA * torch.randn(x.shape, generator=g)).clamp(0, 1)

    def purify(self, x, seed=None):
        out = super().purify(x, seed)
        if not self.rec.in_bpda:
            self.rec.log.append((seed, x.detach().clone(), out.clone()))
        return out

    def bpda(self, x, seed=None):
        if self.rec.draws is not None:
            self.rec.draws.append(seed)
        self.rec.in_bpda = True
        try:
            return super().bpda(x, seed)
        finally:
            self.rec.in_bpda = False


@pytest.fixture(scope="module")
def run(fmnist):
    """One evaluate() call, shared: the rows, the defense's records, the BPDA forwards ``(model seed, call, the
    seeds of its draws)``, the classifier and the test set."""
    train, test = fmnist
    x, y = train.get(range(3000))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        clf = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        opt = torch.optim.Adam(clf.parameters(), 1e-2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(clf(x), y).backward()
            opt.step()
    clf.eval()
    d = _Noise()
    forwards = []
    forward = threats.BPDAModel.forward

    def counted(model, x):
        call, d.rec.draws = model.calls, []
        try:
            return forward(model, x)
        finally:
            forwards.append((model.seed, call, d.rec.draws))
            d.rec.draws = None

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(threats.BPDAModel, "forward", counted)
        df = defbench.evaluate(
            clf, d, dataset="fmnist", attacks=["pgd"], threats=["graybox", "bpda"], eps=0.1, n=N, batch_size=BATCH,
            eot=EOT, eval_repeats=REPEATS, preset="quick", device="cpu", attack_params={"pgd": {"steps": STEPS}},
        )  # fmt: skip
    noise = df[df["defense"] == "user:noise"]
    assert list(noise["threat"]) == ["none", "graybox", "bpda"]
    # the evaluation's purifications: whole batches, outside BPDA (the checks purify 2 and 8 images), in the order
    # the cells ran (the rows' order: a fresh store computes every cell of runner.cells() in turn)
    evals = [e for e in d.rec.log if e[1].shape[0] == BATCH]
    per_cell = BATCHES * REPEATS
    chunks = {t: evals[i * per_cell : (i + 1) * per_cell] for i, t in enumerate(noise["threat"])}
    return SimpleNamespace(
        df=df, noise=noise.set_index("threat"), evals=evals, chunks=chunks, forwards=forwards, clf=clf, test=test
    )


def _predict(clf, x):
    with torch.no_grad():
        return clf(x).argmax(1).tolist()


def test_bpda_averages_eot_purifications_per_gradient(run):
    """BPDA on a randomized defense is EOT (Athalye et al. 2018): every forward of the attacked model f ∘ purify
    averages ``eot`` purifications, with the seeds derive_seed(model seed, call, draw) the BPDA model documents,
    and the stored attack config's ``eot`` is that count. Guards the cell handing the runner's ``eot`` to
    attack_model: without it BPDA ran one purification per gradient while the store still said eot=8."""
    assert run.noise.loc["bpda", "attack_config"]["eot"] == EOT
    assert run.forwards, "the bpda cell made no forward pass of its BPDA model"
    for seed, call, draws in run.forwards:
        assert draws == [derive_seed(seed, call, j) for j in range(EOT)], (seed, call, len(draws))


def test_each_eval_repeat_purifies_with_its_own_seed(run):
    """Every evaluation repeat of a randomized defense is a fresh draw: batch b's repeat r is purified with the
    harness's purify_seed(cell seed, b, r), distinct across repeats, and the stored predictions of each repeat
    are the classifier's on the purification with that seed (recomputed here with a fresh defense on the clean
    cell's images). Guards against every repeat getting repeat 0's seed, which scores the same draw twice."""
    want = [purify_seed(0, b, r) for b in range(BATCHES) for r in range(REPEATS)]
    assert len(set(want)) == len(want)
    assert [e[0] for e in run.evals] == want * 3  # clean, gray-box and BPDA cells
    row = run.noise.loc["none"]
    x, y = run.test.get(row["indices"])
    fresh = _Noise()
    for r in range(REPEATS):
        got = []
        for b in range(BATCHES):
            got += _predict(run.clf, fresh.purify(x[b * BATCH : (b + 1) * BATCH], seed=purify_seed(0, b, r)))
        assert row["extra"]["repeat_preds"][r] == got, f"repeat {r}"
    assert row["extra"]["repeat_preds"][0] != row["extra"]["repeat_preds"][1]


def test_accuracy_is_the_all_repeats_rule_over_every_repeat(run):
    """A randomized defense's cell stores one prediction list per evaluation repeat (each the classifier's on that
    repeat's purification), ``preds`` is repeat 0's, and the reported accuracy is
    metrics.all_repeats_accuracy over all of them: an image counts only if every purification of it is right.
    Guards against the repeats being dropped (the cell scored on repeat 0 alone, reading too high)."""
    for threat, row in run.noise.iterrows():
        rp = row["extra"]["repeat_preds"]
        assert len(rp) == REPEATS and all(len(p) == N for p in rp), threat
        assert row["preds"] == rp[0]
        for r in range(REPEATS):
            calls = run.chunks[threat][r::REPEATS]
            assert rp[r] == [p for _, _, out in calls for p in _predict(run.clf, out)], (threat, r)
        assert row["accuracy"] == pytest.approx(metrics.all_repeats_accuracy(rp, row["labels"]))
    clean = run.noise.loc["none"]
    assert clean["accuracy"] < metrics.accuracy(clean["preds"], clean["labels"])  # the rule is not a no-op here


def test_attacked_cell_s_undefended_accuracy_is_on_the_attacked_images(run):
    """``accuracy_undefended`` of an attacked cell is the bare classifier's accuracy on the attacked images (the
    images the defense is then handed), not on the clean ones: its predictions are the classifier's on the
    evaluation's inputs recorded by the defense; the gray-box cell's equal the 'none' defense's gray-box cell (the
    same adversarials, undefended), and both attacked cells read below the clean accuracy. Guards against the
    undefended column of an attacked cell being taken from the clean image."""
    clean = run.noise.loc["none"]
    x, _ = run.test.get(clean["indices"])
    first = run.chunks["none"][0::REPEATS]  # alignment of the records with the cells: the clean cell's are x
    assert all(torch.equal(xi, x[b * BATCH : (b + 1) * BATCH]) for b, (_, xi, _) in enumerate(first))
    assert clean["preds_undefended"] == _predict(run.clf, x)
    clean_acc = clean["accuracy_undefended"]
    for threat in ("graybox", "bpda"):
        row = run.noise.loc[threat]
        x_in = [xi for _, xi, _ in run.chunks[threat][0::REPEATS]]
        assert not torch.equal(torch.cat(x_in), x), f"{threat}: the attack left the images as they were"
        assert row["preds_undefended"] == [p for xi in x_in for p in _predict(run.clf, xi)], threat
        assert row["accuracy_undefended"] < clean_acc, threat
    base = run.df[(run.df["defense"] == "none") & (run.df["threat"] == "graybox")].iloc[0]
    gray = run.noise.loc["graybox"]
    assert gray["preds_undefended"] == base["preds"] == base["preds_undefended"]
    assert gray["accuracy_undefended"] == pytest.approx(base["accuracy"])


def test_quick_preset_keeps_the_user_s_attack_options(run):
    """The quick preset's attack budgets are defaults under the user's options: attack_params pgd steps=3 under
    preset quick stores steps=3 in every PGD cell's config and runs 3 steps (3 forwards of the BPDA model per
    batch, PGD with true labels making one per step), not the preset's 10. Guards against the preset's
    parameters being merged over the user's."""
    for _, row in run.df[run.df["attack"] == "pgd"].iterrows():
        assert row["attack_config"]["params"]["steps"] == STEPS, (row["defense"], row["threat"])
    per_batch: dict[int, int] = {}
    for seed, _, _ in run.forwards:
        per_batch[seed] = per_batch.get(seed, 0) + 1
    assert list(per_batch.values()) == [STEPS] * BATCHES
