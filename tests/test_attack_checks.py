"""Issue 13, item 1: attack outputs are checked before a defense sees them.

* Minimal-perturbation attacks (CW, DeepFool) hand on the clean image where they fail, never foolbox's
  all-zero placeholder or an unfinished iterate.
* Every attack's raw output is checked (finite, in [0, 1], inside its ε-ball); a violation is a one-line
  DefbenchError naming the attack or the plugin's distribution, or, for an attack allowed to continue
  (``output_check='warn'``), a projection back plus a recorded violation.

Plugins here are real distributions: a ``*.dist-info`` folder on ``sys.path``, found by
``importlib.metadata`` exactly as a pip-installed one (no pip run needed).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch
from torch import nn

import defbench
from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.attacks.base import Attack, perturb
from conftest import save_classifier, write_distribution

PLUGIN_MODULE = "defbench_testplugins"

PLUGIN_SOURCE = '''
"""Attack plugins for defbench's tests: some broken on purpose."""
import torch

from defbench.attacks import Attack


class NaNAttack(Attack):
    name = "nanatk"

    def run(self, model, x, y):
        out = x.clone()
        out[0, 0, 0, 0] = float("nan")
        return out


class TwiceEps(Attack):
    name = "twiceeps"

    def run(self, model, x, y):
        step = torch.where(x > 0.5, -2 * self.eps, 2 * self.eps)  # toward the middle: never clipped
        return x + step


class AboveOne(Attack):
    name = "aboveone"

    def run(self, model, x, y):
        return x + 0.5 * self.eps  # inside the ε-ball, but past 1 where x is bright


class BelowZero(Attack):
    name = "belowzero"

    def run(self, model, x, y):
        return x - 0.5 * self.eps  # inside the ε-ball, but under 0 where x is dark


class GoodAttack(Attack):
    name = "goodatk"

    def run(self, model, x, y):
        g = torch.Generator().manual_seed(0)
        return (x + self.eps * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)


def _far(x, eps):  # 3 ε toward mid-grey: never clipped, stays in [0, 1]
    return torch.where(x > 0.5, -3 * eps, 3 * eps)


class InPlace(Attack):
    name = "inplace"

    def run(self, model, x, y):
        return x.add_(_far(x, self.eps))  # writes into its input: compared with itself, x_adv is x


class OverrideCall(Attack):
    name = "overridecall"

    def run(self, model, x, y):
        return x + _far(x, self.eps)

    def __call__(self, model, x, y):  # skips Attack.__call__ and its checks
        return self.run(model, x, y)


class NoCheck(Attack):
    name = "nocheck"

    def run(self, model, x, y):
        return x + _far(x, self.eps)

    def check_output(self, x, x_adv):
        return []


class WarnNaN(NaNAttack):
    name = "warnnan"
    output_check = "warn"


class Nameless(Attack):
    def run(self, model, x, y):
        return x


class ShadowPGD(Attack):
    name = "pgd"

    def run(self, model, x, y):
        return x


class ShadowFGSMCase(Attack):
    name = "FGSM"

    def run(self, model, x, y):
        return x


class MixedCase(Attack):
    name = "MyAtk"

    def run(self, model, x, y):
        return x


class Mismatch(Attack):
    name = "othername"

    def run(self, model, x, y):
        return x
'''


def test_a_direct_call_of_an_attack_that_writes_into_x_is_refused_and_x_is_left_alone():
    """Attack.__call__ outside the harness: the attack gets a copy of x, so writing into it neither changes the
    caller's batch nor hides a 3ε output from the check (it compared x_adv with itself)."""

    class InPlace(Attack):
        name = "inplace-direct"

        def run(self, model, x, y):
            return x.add_(torch.where(x > 0.5, -0.3, 0.3))  # 3ε at ε = 0.1, written into its input

    x = torch.rand(4, 1, 28, 28)
    keep = x.clone()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(DefbenchError, match="> ε"):
        InPlace("fmnist", 0.1)(model, x, torch.zeros(4).long())
    assert torch.equal(x, keep)


def fake_distribution(root: Path, dist: str, version: str, entries: dict[str, str]) -> Path:
    """Distribution ``dist`` with attack entry points ``{name: Class}`` of :data:`PLUGIN_SOURCE` under ``root``."""
    eps = {n: f"{PLUGIN_MODULE}:{c}" for n, c in entries.items()}
    return write_distribution(root, dist, version, "defbench.attacks", eps, {PLUGIN_MODULE: PLUGIN_SOURCE})


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install (on sys.path) a distribution ``defbench-test-plugins 0.1`` with the given entry points."""

    def install(
        entries: dict[str, str], dist: str = "defbench-test-plugins", version: str = "0.1", sub: str = "site"
    ) -> Path:
        root = fake_distribution(tmp_path / sub, dist, version, entries)
        monkeypatch.syspath_prepend(str(root))
        return root

    return install


BAD = {
    "nanatk": "NaNAttack",
    "twiceeps": "TwiceEps",
    "aboveone": "AboveOne",
    "belowzero": "BelowZero",
    "goodatk": "GoodAttack",
    "warnnan": "WarnNaN",
}
#: plugins that try to get past the output checks (3 ε perturbations): the harness checks them all the same
CHEATS = {"inplace": "InPlace", "overridecall": "OverrideCall", "nocheck": "NoCheck"}


class ConstantLogits(nn.Module):
    """A model no attack can break: its logits ignore the input (class 3 always wins)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10, device=x.device)
        logits[:, 3] = 5.0
        return logits + 0 * x.flatten(1).sum(1, keepdim=True) + 0 * self.w


@pytest.fixture(scope="module")
def rand_clf():
    """An untrained paper CNN: enough for the checks (its own predictions serve as labels)."""
    from defbench.classifiers.models import build_classifier

    torch.manual_seed(0)
    return build_classifier("fmnist").eval()


@pytest.fixture
def batch(fmnist_images, rand_clf):
    x = fmnist_images[0][:8]
    with torch.no_grad():
        y = rand_clf(x).argmax(1)  # clean accuracy 100% by construction
    return x, y


def _adversarial(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


# ------------------------------------------------------------------ minimal-perturbation attacks fail cleanly
@pytest.mark.parametrize("name, params", [("cw", {"steps": 5, "binary_search_steps": 1}), ("deepfool", {"steps": 5})])
def test_unbreakable_model_gets_the_clean_image(name, params, fmnist_images):
    """Against constant logits CW and DeepFool fail on every image: the output is the clean image (foolbox's
    CW would hand on an all-zero image)."""
    x = fmnist_images[0][:4]
    y = torch.full((4,), 3, dtype=torch.long)
    atk = get_attack(name, "fmnist", **params)
    x_adv = atk(ConstantLogits(), x, y)
    assert not (x_adv.flatten(1) == 0).all(1).any(), "a black image was handed on"
    assert torch.equal(x_adv, x)
    assert atk.last_failed.all()


class BlackIsAnotherClass(nn.Module):
    """Unbreakable as ConstantLogits (no gradient, class 3), except that the all-black image is class 0: foolbox's
    CW puts that image where it failed, and then it reads as a success."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        black = (x.flatten(1).abs().sum(1) == 0).float()
        logits = torch.zeros(x.shape[0], 10, device=x.device)
        logits[:, 3] = 5 * (1 - black)
        logits[:, 0] = 1.0
        return logits + 0 * x.flatten(1).sum(1, keepdim=True) + 0 * self.w


def test_cw_never_hands_on_its_black_placeholder(fmnist_images):
    """Where foolbox's CW fails it returns an all-zero image; with a model that calls black another class that
    placeholder would count as a successful attack. defbench hands on the clean image and counts a failure."""
    x = fmnist_images[0][:4]
    y = torch.full((4,), 3, dtype=torch.long)
    atk = get_attack("cw", "fmnist", steps=5, binary_search_steps=1)
    x_adv = atk(BlackIsAnotherClass(), x, y)
    assert torch.equal(x_adv, x)
    assert atk.last_failed.all()


def test_deepfool_out_of_steps_gets_clean_image_not_its_iterate(rand_clf, batch):
    """One DeepFool step without overshoot leaves some images short of the boundary: those come back
    clean, the others adversarial; nothing in between."""
    x, y = batch
    atk = get_attack("deepfool", "fmnist", steps=1, overshoot=0.0)
    x_adv = atk(rand_clf, x, y)
    adv = _adversarial(rand_clf, x_adv, y)
    same = (x_adv == x).flatten(1).all(1)
    assert bool((adv | same).all()), "an output neither adversarial nor clean"
    assert bool(same.any()) and torch.equal(same, atk.last_failed)


@pytest.mark.parametrize("name, params", [("cw", {"steps": 20, "binary_search_steps": 2}), ("deepfool", {})])
def test_successful_attack_returns_adversarial_images(name, params, rand_clf, batch):
    """Where CW/DeepFool succeed they return a different, misclassified image (an identity attack fails this)."""
    x, y = batch
    atk = get_attack(name, "fmnist", **params)
    x_adv = atk(rand_clf, x, y)
    adv = _adversarial(rand_clf, x_adv, y)
    moved = ~(x_adv == x).flatten(1).all(1)
    assert adv.float().mean() >= 0.5, f"{name} broke only {int(adv.sum())} of {len(x)} images"
    assert bool((adv == moved).all()) and bool((adv == ~atk.last_failed).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1


# ------------------------------------------------------------------ output checks
@pytest.mark.parametrize(
    "name, what",
    [
        ("nanatk", "NaN"),
        ("twiceeps", "beyond its budget"),
        ("aboveone", "outside [0, 1]"),
        ("belowzero", "outside [0, 1]"),
    ],
)
def test_broken_plugin_output_refused_naming_the_distribution(name, what, plugin_dist, rand_clf, batch):
    plugin_dist(BAD)
    x, y = batch
    atk = get_attack(name, "fmnist", eps=0.1)
    with pytest.raises(DefbenchError) as err:
        atk(rand_clf, x, y)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"attack plugin {name!r} (distribution defbench-test-plugins 0.1)" in msg and what in msg, msg
    assert not atk.violations  # refused, not recorded and continued


def test_builtin_output_violation_names_the_attack(monkeypatch, rand_clf, batch):
    from defbench.attacks.fgsm import FGSM

    monkeypatch.setattr(FGSM, "run", lambda self, model, x, y: x + 2 * self.eps)
    with pytest.raises(
        DefbenchError, match=r"^attack 'fgsm' returned pixel values outside \[0, 1\].*beyond its budget"
    ):
        get_attack("fgsm", "fmnist", eps=0.1)(rand_clf, *batch)


def test_correct_attacks_pass_silently(plugin_dist, rand_clf, batch):
    plugin_dist(BAD)
    x, y = batch
    for name, kw in (
        ("goodatk", {"eps": 0.1}),
        ("fgsm", {"eps": 0.1}),
        ("pgd", {"eps": 0.1, "steps": 3}),
        ("bim", {"eps": 0.1, "steps": 3}),
        ("universal-fgsm", {"alpha": 8.0}),
        ("blur-negative", {}),
        ("binarize", {}),
    ):
        atk = get_attack(name, "fmnist", **kw)
        x_adv = atk(rand_clf, x, y)
        assert atk.last_violations == [] and atk.violations == [], name
        assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        if atk.bounded:
            assert (x_adv - x).abs().max() <= atk.eps + 1e-6


def test_warn_mode_projects_and_records(plugin_dist, rand_clf, batch):
    """A plugin allowed to continue (class attribute, or the output_check keyword) is projected back into
    [0, 1] ∩ ε-ball with NaN -> clean pixel, and its violations are recorded for the cell's flags."""
    plugin_dist(BAD)
    x, y = batch
    atk = get_attack("warnnan", "fmnist", eps=0.1)
    x_adv = atk(rand_clf, x, y)
    assert torch.isfinite(x_adv).all() and torch.equal(x_adv, x)
    assert [v["check"] for v in atk.last_violations] == ["finite"] and atk.last_violations[0]["images"] == 1
    atk(rand_clf, x, y)
    assert len(atk.violations) == 2 and atk.config()["output_check"] == "warn"

    far = get_attack("twiceeps", "fmnist", eps=0.1, output_check="warn")
    x_adv = far(rand_clf, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert {v["check"] for v in far.last_violations} == {"linf"} and far.last_violations[0]["worst"] > 0.19
    bright = get_attack("aboveone", "fmnist", eps=0.1, output_check="warn")
    assert bright(rand_clf, x, y).max() <= 1 and bright.last_violations[0]["check"] == "range"
    dark = get_attack("belowzero", "fmnist", eps=0.1, output_check="warn")
    assert dark(rand_clf, x, y).min() >= 0 and dark.last_violations[0]["check"] == "range"
    with pytest.raises(DefbenchError, match="output_check 'maybe'"):
        get_attack("goodatk", "fmnist", output_check="maybe")


@pytest.mark.parametrize("over, refused", [(1e-4, True), (1e-7, False)])
def test_eps_tolerance_is_float_rounding_only(over, refused, rand_clf, batch):
    """EPS_TOL forgives the float rounding of x + δ, never a real excursion: an output ε + 1e-4 away is refused,
    one ε + 1e-7 away (float32 rounding at these magnitudes) passes silently."""

    class Over(Attack):
        name = "over"

        def run(self, model, x, y):
            d = self.eps + over
            return x + torch.where(x > 0.5, -d, d)  # toward the middle: never clipped

    x, y = batch
    atk = Over("fmnist", eps=0.1)
    if refused:
        with pytest.raises(DefbenchError, match=r"beyond its budget in 8 of 8 images \(ℓ∞ distance up to 0.1001 "):
            perturb(atk, rand_clf, x, y)
    else:
        x_adv = perturb(atk, rand_clf, x, y)
        assert atk.last_violations == [] and atk.violations == []
        assert (x_adv - x).abs().max() > 0.1


def test_perturb_checks_against_the_clean_batch_it_keeps(plugin_dist, rand_clf, batch):
    """perturb (what the harness calls) hands the attack a copy of x and runs Attack's own checks against the
    clean batch: an attack that writes into its input, or overrides __call__ or check_output, is refused, the
    caller's batch stays clean; under output_check='warn' it is projected back and recorded like any other. A
    correct attack passes silently and perturb returns what its call returns."""
    plugin_dist({**BAD, **CHEATS})
    x, y = batch
    x0 = x.clone()
    for name in CHEATS:
        with pytest.raises(DefbenchError, match=rf"^attack plugin '{name}' .* beyond its budget in 8 of 8 images"):
            perturb(get_attack(name, "fmnist", eps=0.1), rand_clf, x, y)
        assert torch.equal(x, x0), name
        atk = get_attack(name, "fmnist", eps=0.1, output_check="warn")
        x_adv = perturb(atk, rand_clf, x, y)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert [v["check"] for v in atk.last_violations] == ["linf"] and atk.violations == atk.last_violations
    good = get_attack("goodatk", "fmnist", eps=0.1)
    assert torch.equal(perturb(good, rand_clf, x, y), good(rand_clf, x, y))
    assert good.last_violations == [] and good.violations == []


@pytest.mark.parametrize("threat", ["graybox", "bpda"])
@pytest.mark.parametrize("name", sorted(CHEATS))
def test_runner_checks_what_it_scores(name, threat, plugin_dist, rand_clf):
    """Through the runner (defbench.evaluate; a Ray worker runs the same code): under gray-box and BPDA, an attack
    that writes into its input, overrides __call__ or overrides check_output is refused naming its distribution."""
    plugin_dist({**BAD, **CHEATS})
    defense = None if threat == "graybox" else (lambda x: x)
    with pytest.raises(DefbenchError, match=rf"attack plugin '{name}' \(distribution defbench-test-plugins 0.1\)"):
        defbench.evaluate(
            rand_clf, defense, dataset="fmnist", attacks=[name], threats=[threat], eps=0.1, n=8, batch_size=8,
            preset="quick", device="cpu", baseline=threat == "graybox",
        )  # fmt: skip


def test_runner_scores_a_correct_plugin_silently(plugin_dist, rand_clf):
    """The silent twin of the above: a correct plugin under both threat models, no violation recorded."""
    plugin_dist({**BAD, **CHEATS})
    df = defbench.evaluate(
        rand_clf, lambda x: x, dataset="fmnist", attacks=["goodatk"], threats=["graybox", "bpda"], eps=0.1, n=8,
        batch_size=8, preset="quick", device="cpu", baseline=False,
    )  # fmt: skip
    rows = df[df["attack"] == "goodatk"]
    assert sorted(rows["threat"]) == ["bpda", "graybox"]
    assert all("output_violations" not in (e or {}) for e in rows["extra"])


def test_l2_bounded_attack_is_checked_in_l2(rand_clf, batch):
    from defbench.attacks.base import Attack

    class L2Step(Attack):
        name = "l2step"
        norm = "l2"

        def run(self, model, x, y):
            d = torch.full_like(x, 0.5 / x[0].numel() ** 0.5)  # ℓ2 norm 0.5 per image, ℓ∞ tiny
            return x + torch.where(x > 0.5, -d, d)

    x, y = batch
    assert L2Step("fmnist", eps=0.6)(rand_clf, x, y).shape == x.shape
    with pytest.raises(DefbenchError, match="ℓ2 distance up to 0.5 > ε = 0.4"):
        L2Step("fmnist", eps=0.4)(rand_clf, x, y)


def test_warn_mode_l2_projection_scales_only_past_the_budget(rand_clf):
    """Projecting an ℓ2 attack's output scales the perturbation towards x only where it is longer than ε: one
    inside the budget with a single pixel past 1 (a range violation only) keeps every other pixel as it was."""
    from defbench.attacks.base import Attack

    class L2Bright(Attack):
        name = "l2bright"
        norm = "l2"
        output_check = "warn"

        def run(self, model, x, y):
            out = x + 0.01
            out[:, :, 0, 0] = 1.2
            return out

    x = torch.full((2, 1, 28, 28), 0.5)
    atk = L2Bright("fmnist", eps=1.0)
    x_adv = atk(rand_clf, x, torch.zeros(2, dtype=torch.long))
    assert [v["check"] for v in atk.last_violations] == ["range"]
    want = (x + 0.01).clone()
    want[:, :, 0, 0] = 1.0
    assert torch.allclose(x_adv, want)
    far = L2Bright("fmnist", eps=0.25)(rand_clf, x, torch.zeros(2, dtype=torch.long))  # past ε: scaled onto it
    assert torch.allclose((far - x).flatten(1).norm(dim=1), torch.full((2,), 0.25))


def test_refused_output_never_becomes_a_row(plugin_dist, tmp_path, monkeypatch, rand_clf, capsys):
    """Through the CLI: a broken plugin stops the run with one line naming its distribution; the store
    holds no row for it."""
    from defbench.cli import main

    plugin_dist(BAD)
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_classifier(rand_clf, {})
    out = tmp_path / "out"
    rc = main(
        [
            "matrix",
            "--defense",
            "none",
            "--attacks",
            "fgsm,twiceeps",
            "--n",
            "8",
            "--batch-size",
            "8",
            "--preset",
            "quick",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "distribution defbench-test-plugins 0.1" in err, err
    with sqlite3.connect(out / "defbench.sqlite") as c:
        attacks = {a for (a,) in c.execute("SELECT attack FROM cells")}
    assert "twiceeps" not in attacks


def test_cached_graybox_batch_keeps_its_violations(plugin_dist, tmp_path, monkeypatch, rand_clf, batch):
    """Gray-box adversarials are cached across defenses: a cache hit brings back the violations of the call
    that produced the batch, so every defense's cell can be flagged, not only the first."""
    from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec

    plugin_dist(BAD)
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    save_classifier(rand_clf, {})
    spec = AttackSpec("twiceeps", 0.1, (("output_check", "warn"),))
    runner = MatrixRunner(
        MatrixSpec(
            dataset="fmnist",
            defenses=("none",),
            attacks=(spec,),
            n=8,
            batch_size=8,
            preset="quick",
            progress=False,
            out=str(tmp_path / "o"),
        )
    )
    x, y = batch
    first, second = runner.attack(spec), runner.attack(spec)
    a = runner._adv_graybox(first, 8, 0, 0, x, y)
    b = runner._adv_graybox(second, 8, 0, 0, x, y)  # from the cache: the plugin does not run again
    assert torch.equal(a, b) and (a - x).abs().max() <= 0.1 + 1e-6
    assert second.last_violations == first.last_violations and second.violations[0]["check"] == "linf"
