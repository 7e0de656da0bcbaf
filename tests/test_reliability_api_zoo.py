"""Bad input to the Python API and the zoo (audit of issue 16's rule: one line naming what is wrong and what is
allowed, never a traceback, a silent wrong result, or hours of work before failing). Nothing here runs real work:
the runner is replaced by a stand-in that stops once the input has passed validation, as in
test_reliability_cli.py."""

from __future__ import annotations

import json
import math
import re

import numpy as np

import pytest
import torch
from torch import nn

import defbench
import defbench.api
from defbench import DefbenchError
from defbench.defenses.base import Defense
from defbench.cli import main
from defbench.harness import models, zoo

from test_reliability_cli import Reached


# ---------------------------------------------------------------------------------- the Python API
@pytest.fixture
def api_spec(monkeypatch) -> dict:
    """defbench.evaluate with its runner replaced: {"spec": the validated MatrixSpec} once the input passed."""
    captured: dict = {}

    class Capture:
        def __init__(self, spec, store=None, classifier=None, defenses=None):
            captured["spec"] = spec.validate()
            raise Reached()

    monkeypatch.setattr(defbench.api, "MatrixRunner", Capture)
    return captured


def _evaluate(**kw):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    args = dict(defense="median", dataset="mnist", attacks=["fgsm"], n=4, device="cpu", preset="quick")
    args.update(kw)
    defbench.evaluate(model, args.pop("defense"), **args)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=1.7),  # ran with n=1
        dict(n=float("nan")),  # ValueError: cannot convert float NaN to integer
        dict(batch_size=2.5),  # ran with 2
        dict(seeds=2.0),  # TypeError: 'float' object is not iterable
        dict(seeds="10"),  # iterated: seeds 1 and 0
        dict(seeds=[0.5, 1.7]),  # ran as seeds 0 and 1
        dict(seeds=[-1]),  # the CLI refuses a negative seed
        dict(eval_repeats=1.5),  # ran with 1
        dict(eval_repeats=math.inf),  # OverflowError
        dict(threats=["bpda"], eot=2.5),  # TypeError in the BPDA model, mid-run
        dict(threats=["bpda"], eot=math.nan),  # accepted: a randomized defense then runs without EOT
        dict(attack_params=[("fgsm", {})]),  # AttributeError: 'list' object has no attribute 'items'
    ],
)
def test_evaluate_refuses_counts_and_options_of_the_wrong_type(kwargs, api_spec):
    try:
        with pytest.raises(DefbenchError):
            _evaluate(**kwargs)
    except Reached:
        pytest.fail(f"evaluate(**{kwargs}) was accepted: {api_spec['spec']}")


def test_evaluate_takes_a_torch_device(api_spec):
    """device=torch.device('cpu') (what torch code passes around) raised AttributeError: 'torch.device' object
    has no attribute 'startswith'."""
    with pytest.raises(Reached):
        _evaluate(device=torch.device("cpu"))
    assert api_spec["spec"].device == "cpu"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(attacks=["fgsm", "fgsm"]),
        dict(attacks=["FGSM", "fgsm"]),
        dict(eps=[0.1, 0.1]),
        dict(threats=["graybox", "graybox"]),
        dict(defense=["median", "median"]),
    ],
)
def test_evaluate_never_runs_a_cell_twice(kwargs, api_spec):
    """Duplicates were passed through: every cell came back twice in the DataFrame (the CLI deduplicates --eps,
    --attacks, --threat and --defense). Either refuse them or run each cell once."""
    try:
        _evaluate(**kwargs)
    except DefbenchError:
        return
    except Reached:
        pass
    spec = api_spec["spec"]
    for field in ("attacks", "threats", "defenses"):
        values = getattr(spec, field)
        keys = [(a.name.lower(), a.eps, a.params) for a in values] if field == "attacks" else list(values)
        assert len(set(keys)) == len(keys), (field, values)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=1.7), "n must be a whole number, got 1.7"),
        (dict(n=2.0), "n must be a whole number, got 2.0"),  # as --n 2.0: counts are integers
        (dict(batch_size=True), "batch_size must be a whole number, got True"),
        (dict(eval_repeats="3"), "eval_repeats must be a whole number, got '3'"),
        (dict(n=10**7), "n must be between 1 and 1000000, got 10000000"),  # the CLI's limit
        (dict(threats=["bpda"], eot=0), "eot must be between 1 and 10000, got 0"),
        (dict(seeds="10"), "seeds must be a count >= 1 or distinct seeds (whole numbers in [0, 2147483647]"),
        (dict(seeds=[2**31]), "seeds must be a count >= 1 or distinct seeds"),
        (dict(seeds=1001), "at most 1000 of them), got 1001"),
        (dict(seeds=np.arange(2000)), "at most 1000 of them), got array([ 0, 1, 2,"),  # its repr spans lines
        (dict(n=np.ones((50, 50))), "n must be a whole number, got array([[1., 1., 1.,"),
        (dict(attack_params=[("fgsm", {})]), "attack_params must be a dict {attack: {option: value}}, got list"),
        (dict(attacks=["pgd"], attack_params={"pgd": {}, "PGD": {}}), "attack_params names attack pgd twice"),
        (dict(eps=0), "epsilon 0 leaves every image as it is; eps must be in (0, 1]"),  # as --eps 0
        (dict(eps=[0.1, math.nan]), "epsilon nan is outside [0, 1] (pixel units); eps must be in (0, 1]"),
        (dict(store=5), "store must be a directory (a str or pathlib.Path) or None, got int"),  # ran in ./5
        (dict(data_root=["d"]), "data_root must be a directory (a str or pathlib.Path) or None, got list"),
        (dict(device=0), "device must be auto, cpu, cuda or cuda:N (a str or torch.device), got 0"),
    ],
)
def test_evaluate_s_refusals_name_the_argument_and_what_is_allowed(kwargs, message, api_spec):
    """One line naming evaluate's own argument (n, not --n) and what it takes; before, eps=0 ran cells that
    attack nothing, store=5 wrote a store into ./5, and attack_params {'pgd': .., 'PGD': ..} kept one silently."""
    with pytest.raises(DefbenchError, match=re.escape(message)) as exc:
        _evaluate(**kwargs)
    assert "\n" not in str(exc.value)


def test_evaluate_takes_numpy_counts_and_seeds_and_reads_names_as_the_cli(api_spec):
    """Integers of any kind and a sequence of seeds reach the spec as given; attack names are lowercased and each
    ε kept once, as on the command line (the runner reads the quick preset's attack settings by lowercase name)."""
    with pytest.raises(Reached):
        _evaluate(n=np.int64(4), seeds=np.array([3, 5]), batch_size=2, attacks=["PGD", "pgd"], eps=[0.1, 0.1])
    spec = api_spec["spec"]
    assert (spec.n, spec.seeds, spec.batch_size) == (4, (3, 5), 2)
    assert [(a.name, a.eps) for a in spec.attacks] == [("pgd", 0.1)]


# ---------------------------------------------------------------------------------- the zoo
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _save(metrics, config) -> zoo.Entry:
    return zoo.save(
        "classifier-fmnist-quick",
        {"w": torch.arange(6.0)},
        {"kind": "classifier", "dataset": "fmnist", "preset": "quick", "arch": "x", "config": config}
        | {"metrics": metrics},
    )


@pytest.mark.parametrize("metrics", ["x", None, [1, 2]])
def test_zoo_list_survives_a_manifest_of_the_wrong_shape(metrics, home, capsys):
    """A manifest that is JSON but whose 'metrics' is not an object made 'zoo list' fail as a whole with
    'internal error: AttributeError: 'str' object has no attribute 'get'' (exit 1); a non-JSON manifest is
    listed as '(unreadable manifest ...)'."""
    _save(metrics, {})
    assert main(["zoo", "list"]) == 0, capsys.readouterr().err
    assert "classifier-fmnist-quick" in capsys.readouterr().out


def test_a_manifest_whose_config_is_not_an_object_is_a_one_line_error(home):
    """'config': 7 in a classifier's manifest: every matrix run on that dataset failed with 'internal error:
    AttributeError: 'int' object has no attribute 'get'' (in models.recipe_changes) instead of naming the
    manifest and the command that rebuilds it."""
    e = _save({}, 7)
    m = json.loads(e.path.with_suffix(".json").read_text())
    assert m["config"] == 7
    with pytest.raises(DefbenchError, match="classifier-fmnist-quick"):
        models.get_classifier("fmnist", "quick", train_missing=False, progress=False)


def test_a_gan_manifest_of_the_wrong_shape_names_the_model_and_its_rebuild(home, capsys):
    """get_gan read 'config': [1] with .get (AttributeError); zoo list and zoo show now call the file unreadable
    as they do a non-JSON one, and loading it says which file and the command that rebuilds it."""
    manifest = {"kind": "gan", "dataset": "fmnist", "preset": "quick", "config": [1], "metrics": {}}
    zoo.save("gan-fmnist-quick", {"G.w": torch.zeros(1)}, manifest)
    message = (
        "gan-fmnist-quick.json is unreadable (its 'config' is [1], not an object; altered?); "
        "rebuild with: defbench train gan --dataset fmnist --preset quick --force"
    )
    with pytest.raises(DefbenchError, match=re.escape(message)):
        models.get_gan("fmnist", "quick", train_missing=False, progress=False)
    assert main(["zoo", "list"]) == 0
    assert "(unreadable manifest; see 'defbench zoo show gan-fmnist-quick')" in capsys.readouterr().out
    assert main(["zoo", "show", "gan-fmnist-quick"]) == 2
    assert "is unreadable; rebuild with: defbench train gan --dataset fmnist --preset quick" in capsys.readouterr().err


def test_evaluate_refuses_a_threat_no_defense_takes_and_keeps_one_a_defense_takes(api_spec):
    """As --threat: gan-aware behind median alone (and bpda on the undefended classifier alone) would be dropped
    from the DataFrame without a word; a user's defense with its own reparameterize() takes reparam."""
    with pytest.raises(DefbenchError, match="threats=gan-aware: no defense of this run"):
        _evaluate(threats=["gan-aware"])
    with pytest.raises(DefbenchError, match="threats=bpda: no defense of this run \\(none\\)"):
        _evaluate(defense=None, threats=["bpda"])
    # the undefended reference beside median does not carry reparam; asked for alone it is the measurement
    with pytest.raises(DefbenchError, match="threats=reparam: no defense of this run \\(median\\)"):
        _evaluate(threats=["reparam"])
    with pytest.raises(Reached):
        _evaluate(defense=None, threats=["reparam"])
    assert api_spec["spec"].defenses == ("none",) and api_spec["spec"].threats == ("reparam",)
    with pytest.raises(Reached):
        _evaluate(defense=["median", "defensegan"], threats=["graybox", "reparam"])

    class Own(Defense):
        name = "own"
        has_reparameterization = True

        def _purify(self, x, seed):
            return x

    with pytest.raises(Reached):
        _evaluate(defense=Own(), baseline=False, threats=["reparam"])
    assert api_spec["spec"].threats == ("reparam",)
