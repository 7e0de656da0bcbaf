"""Attack options as the CLI (``--attack-opt``), the API (``attack_params``) and ``get_attack`` take them: step sizes
and step counts refused when they cannot be one (also where the default is None, derived from ε), the API's options
checked like the CLI's, and ε handed only to the attacks it bounds."""

from __future__ import annotations

import math
import re
from argparse import Namespace

import pytest
import torch

import defbench
from defbench import DefbenchError
from defbench.attacks import get_attack
from defbench.cli.matrix import attack_specs
from defbench.cli.options import key_value

#: (attack, --attack-opt KEY=VALUE, what the error says); each passes the CLI's JSON parse and type check of before
BAD_OPTIONS = [
    ("pgd", "step=abc", "step must be a positive number, got 'abc'"),
    ("pgd", "step=true", "step must be a positive number, got True"),
    ("pgd", "step=0", "step must be a positive number, got 0"),
    ("pgd", "step=-0.05", "step must be a positive number, got -0.05"),
    ("bim", "step=-0.05", "step must be a positive number, got -0.05"),
    ("pgd", "steps=0", "steps must be a whole number >= 1, got 0"),
    ("pgd", "steps=-5", "steps must be a whole number >= 1, got -5"),
    ("bim", "steps=0", "steps must be a whole number >= 1, got 0"),
    ("universal-fgsm", "fgsm_eps=abc", "fgsm_eps must be a number in (0, 1], got 'abc'"),
    ("universal-fgsm", "fgsm_eps=0", "fgsm_eps must be a number in (0, 1], got 0"),
    ("universal-fgsm", "fgsm_eps=1.5", "fgsm_eps must be a number in (0, 1], got 1.5"),
]


def _specs(attack: str, *opts: str, eps: str | None = None):
    return attack_specs(Namespace(attacks=attack, attack_opt=list(opts), eps=eps), "fmnist")


@pytest.mark.parametrize("attack, opt, message", BAD_OPTIONS)
def test_cli_refuses_step_sizes_and_counts_that_are_none(attack, opt, message):
    """--attack-opt refuses, on one line naming the attack, a step size that is not a positive number and a step
    count below 1, also for options whose default is None (step, fgsm_eps), before any work; get_attack too."""
    want = "^" + re.escape(f"attack '{attack}': {message}") + "$"
    with pytest.raises(DefbenchError, match=want):
        _specs(attack, f"{attack}:{opt}")
    key, value = key_value(opt, "--attack-opt", opt)  # the value as the CLI parses it
    with pytest.raises(DefbenchError, match=want):
        get_attack(attack, "fmnist", **{key: value})


def test_cli_takes_good_step_sizes_and_counts():
    """The silent twin: positive step sizes, counts >= 1 and an explicit fgsm_eps reach the attack as given (a
    whole float count becomes an int); the derived defaults stay None until run."""
    (pgd,) = _specs("pgd", "pgd:step=0.02", "pgd:steps=10.0", eps="0.1")
    assert dict(pgd.params) == {"step": 0.02, "steps": 10}
    atk = pgd.build("fmnist")
    assert atk.params["step"] == 0.02 and atk.params["steps"] == 10
    (bim,) = _specs("bim", "bim:steps=3")
    assert bim.build("fmnist").params == {"step": None, "steps": 3}
    uni = get_attack("universal-fgsm", "fmnist", fgsm_eps=0.05)
    assert uni.params["fgsm_eps"] == 0.05
    assert get_attack("pgd", "fmnist", steps=7.0).params["steps"] == 7


def test_zero_and_bounds_that_the_range_checks_allow():
    """The silent twin of the CW, DeepFool and universal range checks at their edges: confidence and overshoot 0
    (a minimal adversarial), ART's delta 0 and 1, each attacker that takes the L∞ eps; just past each edge fires."""
    assert get_attack("cw", "fmnist", confidence=0.0).params["confidence"] == 0.0
    assert get_attack("deepfool", "fmnist", overshoot=0).params["overshoot"] == 0
    for delta in (0, 1.0):
        assert get_attack("universal-art", "fmnist", delta=delta).params["delta"] == delta
    for attacker in ("fgsm", "bim", "pgd"):
        assert get_attack("universal-art", "fmnist", attacker=attacker).params["attacker"] == attacker
    for name, kw in (
        ("cw", {"confidence": -1e-9}),
        ("deepfool", {"overshoot": -1e-9}),
        ("universal-art", {"delta": 1.01}),
    ):
        with pytest.raises(DefbenchError):
            get_attack(name, "fmnist", **kw)


@pytest.fixture(scope="module")
def rand_clf():
    """An untrained paper CNN: enough to attack and to evaluate (no training)."""
    from defbench.classifiers.models import build_classifier

    torch.manual_seed(0)
    return build_classifier("fmnist").eval()


def test_explicit_step_and_fgsm_eps_are_used(rand_clf, fmnist_images):
    """An explicit value is used as given, the derived default only when None: PGD from no random start with a
    step of 0.01 and 3 steps travels at most 0.03; universal-fgsm's ν at fgsm_eps 0.05 is at most 0.05."""
    model = rand_clf
    x, y = fmnist_images
    x_adv = get_attack("pgd", "fmnist", eps=0.3, step=0.01, steps=3, random_start=False)(model, x, y)
    assert 0.0 < float((x_adv - x).abs().max()) <= 0.03 + 1e-6
    uni = get_attack("universal-fgsm", "fmnist", fgsm_eps=0.05)
    uni.prepare(model, x, y)
    assert 0.0 < float(uni._nu.abs().max()) <= 0.05 + 1e-6


# ------------------------------------------------------------------ the API
API = dict(dataset="fmnist", n=8, batch_size=8, preset="quick", device="cpu")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pdg": {"steps": 2}}, "attack_params names attack 'pdg', which is not in attacks (pgd)"),
        ({"pgd": {"stpes": 2}}, "unknown parameter stpes for attack pgd"),
        ({"pgd": {"random_start": "false"}}, "attack_params['pgd']['random_start'] must be true or false"),
        ({"pgd": {"steps": "10"}}, "attack_params['pgd']['steps'] must be a whole number, got \"10\""),
        ({"pgd": {"steps": 0}}, "attack 'pgd': steps must be a whole number >= 1, got 0"),
        ({"pgd": {"step": -0.05}}, "attack 'pgd': step must be a positive number, got -0.05"),
        ({"pgd": {"step": "abc"}}, "attack 'pgd': step must be a positive number, got 'abc'"),
        ({"pgd": {"labels": "foo"}}, "labels 'foo' for attack pgd must be one of"),
        ({"pgd": 3}, "attack_params['pgd'] must be a dict"),
    ],
)
def test_api_checks_attack_params_like_the_cli(params, message, rand_clf):
    """attack_params are checked as --attack-opt checks them, before any work: an attack not in the run, an
    unknown key, a value of the wrong type (no string taken for a bool or a count), a bad step size or count."""
    with pytest.raises(DefbenchError, match="^" + re.escape(message)):
        defbench.evaluate(rand_clf, None, attacks=["pgd"], eps=0.1, attack_params=params, **API)


def test_api_eps_goes_to_bounded_attacks_only(rand_clf):
    """eps=[...] sweeps the bounded attacks; an unbounded one (universal-fgsm, a corruption) runs once, with no ε
    in its row, as the CLI's --eps does. Checked attack_params reach the attack (the silent twin of the above)."""
    df = defbench.evaluate(
        rand_clf, None, attacks=["fgsm", "pgd", "universal-fgsm", "binarize"], eps=[0.05, 0.1],
        attack_params={"pgd": {"steps": 2, "random_start": False}, "universal-fgsm": {"alpha": 2.0}}, **API,
    )  # fmt: skip
    rows = df[df["attack"] != "clean"]
    count = rows.groupby("attack").size().to_dict()
    assert count == {"fgsm": 2, "pgd": 2, "universal-fgsm": 1, "binarize": 1}
    eps = {a: sorted(rows[rows["attack"] == a]["eps"].tolist()) for a in count}
    assert eps["fgsm"] == eps["pgd"] == [0.05, 0.1]
    assert all(e is None or math.isnan(e) for a in ("universal-fgsm", "binarize") for e in eps[a])
    cfg = rows[rows["attack"] == "pgd"].iloc[0]["attack_config"]
    assert cfg["params"]["steps"] == 2 and cfg["params"]["random_start"] is False
    uni = rows[rows["attack"] == "universal-fgsm"].iloc[0]["attack_config"]
    assert uni["eps"] is None and uni["params"]["alpha"] == 2.0
