"""Classifier plugins (entry-point group ``defbench.classifiers``): a user's architecture with a loader for their
weights, listed, evaluated by ``defbench matrix --classifier`` and ``defbench.evaluate`` with the accuracy a hand
computation gives, keyed by the weights' sha256 and the distribution's name and version, and refused by the same
rules as attack and defense plugins."""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest
import torch
from torch import nn

from conftest import md_row, write_distribution
from defbench import DefbenchError, metrics
from defbench.cli import main

SOURCE = """
from pathlib import Path

import torch
from torch import nn

from defbench.classifiers import ClassifierPlugin


def templates():
    '''Nearest class mean as a linear layer: logits_c = 2 x.mu_c - |mu_c|^2 (weights from templates.pt).'''
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    net.load_state_dict(torch.load(Path(__file__).with_name("templates.pt"), weights_only=True))
    return net


class Templates(ClassifierPlugin):
    name = "templates"
    datasets = ("fashion-mnist", "mnist")

    def load(self, dataset, device):
        return templates().to(device)

    def config(self):
        return {"metric": "l2"}


class Crash(ClassifierPlugin):
    name = "crash"
    datasets = ("fmnist",)

    def load(self, dataset, device):
        raise FileNotFoundError("weights.pt is missing")


class WrongShape(ClassifierPlugin):
    name = "wrongshape"
    datasets = ("fmnist",)

    def load(self, dataset, device):
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 7))


class Nameless(ClassifierPlugin):
    datasets = ("fmnist",)


class ShadowsZoo(ClassifierPlugin):
    name = "zoo"
    datasets = ("fmnist",)


class ShadowsZooCase(ClassifierPlugin):
    name = "Zoo"
    datasets = ("fmnist",)


class NotAClassifier:
    name = "notaclassifier"
"""


def template_state(train, count: int) -> dict[str, torch.Tensor]:
    """The state dict of the nearest-class-mean classifier of the first ``count`` training images."""
    x, y = train.get(range(count))
    mu = torch.stack([x.flatten(1)[y == c].mean(0) for c in range(10)])
    return {"1.weight": 2 * mu, "1.bias": -(mu**2).sum(1)}


def install(monkeypatch, tmp_path, entries, state=None, dist="my-classifiers", version="0.1", sub="site"):
    root = write_distribution(tmp_path / sub, dist, version, "defbench.classifiers", entries, {"my_clf": SOURCE})
    monkeypatch.delitem(sys.modules, "my_clf", raising=False)  # its weights are the ones beside this copy
    if state is not None:
        torch.save(state, root / "templates.pt")
    monkeypatch.syspath_prepend(str(root))
    return root


def by_hand(train_state, test, n: int, eps: float) -> tuple[float, float]:
    """Clean and gray-box FGSM accuracy of the template classifier on the runner's n seeded images, computed
    here: the linear layer by hand, FGSM as x + eps * sign(grad of the cross-entropy), clipped to [0, 1]."""
    w, b = train_state["1.weight"], train_state["1.bias"]
    x, y = test.get(test.eval_indices(n, 0))
    x = x.flatten(1).requires_grad_(True)
    logits = x @ w.T + b
    nn.functional.cross_entropy(logits, y).backward()
    x_adv = (x + eps * x.grad.sign()).clamp(0, 1).detach()
    clean = (logits.argmax(1) == y).float().mean().item()
    adv = ((x_adv @ w.T + b).argmax(1) == y).float().mean().item()
    return clean, adv


def cells(out) -> dict[str, tuple[str, int, int, str]]:
    """attack -> (key, correct, n, defense_config) of the store's cells."""
    with sqlite3.connect(out / "defbench.sqlite") as c:
        rows = c.execute("SELECT attack, key, correct, n, defense_config FROM cells").fetchall()
    return {a: (k, correct, n, cfg) for a, k, correct, n, cfg in rows}


def test_plugin_classifier_is_listed(monkeypatch, tmp_path, capsys):
    from defbench.classifiers import registry

    install(monkeypatch, tmp_path, {"templates": "my_clf:Templates"})
    assert list(registry.available()) == ["zoo", "templates"]
    assert registry.check_name("ZOO") == "zoo" and registry.check_name("templates") == "templates"
    assert main(["classifier", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "zoo\tbuilt-in\tfmnist,mnist,cifar10,imagenet",
        "templates\tplugin: my-classifiers 0.1\tfmnist,mnist",
    ]


def test_plugin_classifier_cells_equal_a_hand_computation(fmnist, monkeypatch, tmp_path, capsys):
    """'defbench matrix --classifier templates': the clean and FGSM cells hold the hand-computed accuracies; the
    cells record the plugin's identity and its weights' sha256; other weights under the same name and version
    give other keys, so nothing is reused; a second distribution taking the name is refused."""
    train, test = fmnist
    n, eps = 60, 0.05
    state = template_state(train, 600)
    install(monkeypatch, tmp_path, {"templates": "my_clf:Templates"}, state)
    out = tmp_path / "o"
    args = ["matrix", "--classifier", "templates", "--defense", "none", "--attacks", "fgsm", "--eps", str(eps)]
    args += ["--n", str(n), "--batch-size", "32", "--preset", "quick", "--no-progress", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    assert "classifier: templates@" in capsys.readouterr().out
    got = cells(out)
    clean, adv = by_hand(state, test, n, eps)
    assert clean > 0.5 and adv < clean  # a classifier that works, and an attack that hurts it
    assert got["clean"][1:3] == (round(clean * n), n) and got["fgsm"][1:3] == (round(adv * n), n)
    cfg = json.loads(got["clean"][3])
    assert cfg["classifier_plugin"] == {
        "name": "templates", "distribution": "my-classifiers", "version": "0.1", "config": {"metric": "l2"}
    }  # fmt: skip
    from defbench.classifiers.base import LogitFeatures
    from defbench.harness.models import weights_sha256

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    net.load_state_dict(state)
    assert cfg["model_sha256"]["classifier"] == weights_sha256(LogitFeatures(net))  # the weights' sha256

    # the same distribution with other weights (templates of other images): every cell computed again
    other = template_state(train, 300)
    install(monkeypatch, tmp_path, {"templates": "my_clf:Templates"}, other, sub="site2")
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    assert main(args) == 0
    assert "2 cells computed, 0 reused" in capsys.readouterr().out
    with sqlite3.connect(out / "defbench.sqlite") as c:
        assert c.execute("SELECT COUNT(DISTINCT key) FROM cells").fetchone()[0] == 2 * 2
    c2, a2 = by_hand(other, test, n, eps)
    with sqlite3.connect(out / "defbench.sqlite") as c:
        new = dict(
            c.execute("SELECT attack, correct FROM cells WHERE key NOT IN (?, ?)", (got["clean"][0], got["fgsm"][0]))
        )
    assert new == {"clean": round(c2 * n), "fgsm": round(a2 * n)}
    # a second distribution with a classifier of the same name: both skipped, the run refused naming both
    install(monkeypatch, tmp_path, {"templates": "my_clf:Templates"}, state, dist="their-classifiers", sub="site3")
    monkeypatch.syspath_prepend(str(tmp_path / "site3"))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "both take the name 'templates'" in err and err.strip().splitlines()[-1].startswith("defbench: error: ")


def test_paper_run_takes_a_classifier_plugin(fmnist, tiny_zoo, monkeypatch, tmp_path, capsys):
    """'defbench paper run mimicgan-fig4b --classifier templates': every cell of the table is the plugin's (its
    name in the cell and its identity in the key), the printed undefended column equals the plugin's accuracy on
    the corrupted images computed by hand, and the same table with the zoo's classifier reuses none of its cells."""
    from defbench.attacks.registry import get_attack
    from defbench.harness import matrix

    train, test = fmnist
    state = template_state(train, 600)
    install(monkeypatch, tmp_path, {"templates": "my_clf:Templates"}, state)
    monkeypatch.setitem(matrix.QUICK_DEFENSE_OVERRIDES, "mimicgan", {"outer_iters": 1, "surrogate_steps": 2})
    out = tmp_path / "o"
    args = ["paper", "run", "mimicgan-fig4b", "--n", "8", "--preset", "quick", "--out", str(out), "--no-progress"]
    assert main(args + ["--classifier", "nosuch"]) == 2
    assert "unknown classifier 'nosuch'; choose one of: zoo, templates" in capsys.readouterr().err
    assert main(args + ["--classifier", "templates"]) == 0
    text = capsys.readouterr().out
    with sqlite3.connect(out / "defbench.sqlite") as c:
        rows = c.execute("SELECT classifier, defense, attack, indices, labels, defense_config FROM cells").fetchall()
    assert len(rows) == 12 and all(r[0].startswith("templates@") for r in rows)  # 3 clean + 9 corrupted
    assert all(json.loads(r[5])["classifier_plugin"]["name"] == "templates" for r in rows)
    assert "classifier templates@" in text  # the report's setting names it
    w, b = state["1.weight"], state["1.bias"]
    for row, attack in (("Binary", "binarize"), ("Negative Blur", "blur-negative")):  # deterministic corruptions
        indices, labels = next((json.loads(r[3]), json.loads(r[4])) for r in rows if r[1:3] == ("none", attack))
        x, y = test.get(indices)
        assert y.tolist() == labels
        logits = get_attack(attack, "fmnist").corrupt(x).flatten(1) @ w.T + b
        want = 100 * metrics.accuracy(logits.argmax(1), y)
        assert md_row(text, row, "Observed")[3] == f"{want:.2f}"
    assert main(args) == 0  # the zoo's classifier: its own cells
    assert "12 cells computed, 0 reused" in capsys.readouterr().out


def test_two_distributions_with_one_set_of_weights_get_different_keys(fmnist, monkeypatch, tmp_path):
    """defbench.evaluate with a plugin's name: the same weights and name in two distributions (or versions) are
    different cells."""
    import defbench

    train, _ = fmnist
    state = template_state(train, 600)
    kw = dict(dataset="fmnist", attacks=["fgsm"], eps=0.05, n=20, batch_size=20, device="cpu", baseline=True)
    keys = []
    for i, (dist, version) in enumerate(
        (("my-classifiers", "0.1"), ("their-classifiers", "0.1"), ("my-classifiers", "0.2"))
    ):
        with monkeypatch.context() as m:
            install(m, tmp_path, {"templates": "my_clf:Templates"}, state, dist=dist, version=version, sub=f"s{i}")
            df = defbench.evaluate("templates", None, store=str(tmp_path / "store"), **kw)
        keys.append(set(df["key"]))
        assert len(df) == 2 and set(df["classifier"]) == {next(iter(df["classifier"]))}
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"zoo": "my_clf:ShadowsZoo"}, "takes the name of the built-in classifier 'zoo'"),
        ({"Zoo": "my_clf:ShadowsZooCase"}, "a lookup of 'Zoo' finds the built-in"),
        ({"nameless": "my_clf:Nameless"}, "class Nameless sets no name of its own"),
        ({"notaclassifier": "my_clf:NotAClassifier"}, "is not a defbench.classifiers.ClassifierPlugin subclass"),
        ({"tmpl": "my_clf:Templates"}, "is named 'templates', the entry point 'tmpl'; they must match"),
    ],
)
def test_broken_classifier_plugins_are_skipped(entries, message, monkeypatch, tmp_path, capsys):
    """A refused plugin made 'classifier list' and every run fail; it is skipped with one warning line giving the
    reason, and its name (where the zoo does not answer to it) is an error with the same reason."""
    from defbench import plugins
    from defbench.classifiers import registry

    install(monkeypatch, tmp_path, entries)
    monkeypatch.setattr(plugins, "WARNED", set())
    capsys.readouterr()
    assert list(registry.available()) == ["zoo"]
    warning = capsys.readouterr().err
    assert message in warning and "distribution my-classifiers 0.1" in warning and warning.count("\n") == 1
    assert main(["classifier", "list"]) == 0
    (name,) = entries
    if name.lower() == "zoo":
        assert registry.check_name(name) == "zoo"
    else:
        with pytest.raises(DefbenchError) as err:
            registry.check_name(name)
        assert f"unknown classifier {name!r}; a plugin of that name was skipped: " in str(err.value)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_classifier_plugin_that_fails_to_import_is_skipped(monkeypatch, tmp_path, capsys):
    from defbench import plugins
    from defbench.classifiers import registry

    monkeypatch.setattr(plugins, "WARNED", set())
    root = write_distribution(
        tmp_path / "site", "broken-classifiers", "0.3", "defbench.classifiers", {"brk": "brk_mod:X"},
        {"brk_mod": "import not_a_module_anywhere\n"},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(root))
    assert list(registry.available()) == ["zoo"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped classifier plugin 'brk'" in err and "ModuleNotFoundError" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classifier", "nosuch"], "unknown classifier 'nosuch'; choose one of: zoo, templates, crash, wrongshape"),
        (["--classifier", "templates", "--dataset", "cifar10"], "supports fmnist, mnist, not cifar10"),
        (["--classifier", "crash"], "failed to load: FileNotFoundError: weights.pt is missing"),
        (["--classifier", "wrongshape"], "to finite (N, 10) logits on fmnist; for 2 images it returned (2, 7)"),
    ],
)
def test_classifier_plugin_errors_are_one_line(args, message, fmnist, monkeypatch, tmp_path, capsys):
    entries = {"templates": "my_clf:Templates", "crash": "my_clf:Crash", "wrongshape": "my_clf:WrongShape"}
    install(monkeypatch, tmp_path, entries, template_state(fmnist[0], 100))
    argv = ["matrix", "--defense", "none", "--attacks", "none", "--n", "4", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "o")] + args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()  # refused before the store: nothing written (docs/RELIABILITY.md)
    if "plugin" in err:
        assert "(distribution my-classifiers 0.1)" in err
