"""docs/PLUGINS.md is true to the code: its code blocks are the example package's files (tests/plugin_example), the
built-in names it says a plugin cannot take are the registries', and the example's attack, defense and classifier
plugins, installed as a distribution, are listed and run together in a matrix whose clean cell equals a hand
computation."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import torch

from defbench import metrics
from defbench.cli import main

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "PLUGINS.md").read_text(encoding="utf-8")
EXAMPLE = REPO / "tests" / "plugin_example"
DIST, VERSION = "defbench-example-plugin", "0.1.0"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def shown_files() -> dict[Path, str]:
    """{file: the code shown for it} of every code block whose first line is ``# tests/plugin_example/...``."""
    out = {}
    for code in re.findall(r"```(?:python|toml)\n(.*?)```", DOC, re.S):
        first, _, rest = code.partition("\n")
        if first.startswith("# tests/plugin_example/"):
            out[REPO / first[2:].strip()] = rest
    return out


def test_the_doc_shows_the_example_package():
    shown = shown_files()
    modules = {EXAMPLE / "defbench_example_plugin" / f"{m}.py" for m in ("attacks", "defenses", "classifiers")}
    assert modules | {EXAMPLE / "pyproject.toml"} == set(shown)
    for path in modules:
        assert shown[path] == path.read_text(encoding="utf-8"), f"docs/PLUGINS.md's {path.name} differs from the file"
    assert shown[EXAMPLE / "pyproject.toml"] in (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")


def test_the_doc_names_the_built_ins_a_plugin_cannot_take():
    from defbench.attacks.registry import BUILTIN
    from defbench.defenses.registry import DEFENSES

    taken = DOC[DOC.index("Taken are") : DOC.index("- two installed distributions")]
    named = re.findall(r"`([a-z-]+)`", taken)
    assert named == [*BUILTIN, *DEFENSES, "zoo"]


def install_example(monkeypatch, tmp_path) -> None:
    """The example package as an installed distribution: its folder on sys.path, a dist-info beside it holding the
    entry points of its pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert (project["name"], project["version"]) == (DIST, VERSION)
    site = tmp_path / "site"
    info = site / f"{DIST.replace('-', '_')}-{VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n")
    groups = project["entry-points"]
    text = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items())
    (info / "entry_points.txt").write_text(text)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))


def test_the_example_plugins_run_together(fmnist, monkeypatch, tmp_path, capsys):
    """'defbench matrix --classifier linear --defense noisyblur --attacks mifgsm': the plugins are listed with their
    distribution, every cell records it, the clean undefended cell is the linear classifier's accuracy by hand, and
    MI-FGSM lowers it."""
    train, test = fmnist
    install_example(monkeypatch, tmp_path)
    for kind, name in (("attack", "mifgsm"), ("defense", "noisyblur"), ("classifier", "linear")):
        assert main([kind, "list"]) == 0
        assert f"{name}\tplugin: {DIST} {VERSION}" in capsys.readouterr().out
    x, y = train.get(range(600))  # the weights: nearest class mean, logits_c = 2 x.mu_c - |mu_c|^2
    mu = torch.stack([x.flatten(1)[y == c].mean(0) for c in range(10)])
    weights = tmp_path / "linear.pt"
    torch.save({"1.weight": 2 * mu, "1.bias": -(mu**2).sum(1)}, weights)
    monkeypatch.setenv("DEFBENCH_EXAMPLE_WEIGHTS", str(weights))
    out = tmp_path / "o"
    args = ["matrix", "--classifier", "linear", "--defense", "noisyblur", "--attacks", "mifgsm", "--eps", "0.1"]
    args += ["--n", "16", "--batch-size", "16", "--preset", "quick", "--no-progress", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    with sqlite3.connect(out / "defbench.sqlite") as c:
        rows = c.execute("SELECT defense, attack, correct, indices, defense_config, attack_config FROM cells")
        cells = {(d, a): (k, json.loads(i), json.loads(dc), json.loads(ac)) for d, a, k, i, dc, ac in rows}
    assert set(cells) == {("none", "clean"), ("none", "mifgsm"), ("noisyblur", "clean"), ("noisyblur", "mifgsm")}
    plugin = {"distribution": DIST, "version": VERSION}
    assert all(dc["classifier_plugin"]["distribution"] == DIST for _, _, dc, _ in cells.values())
    assert cells[("noisyblur", "clean")][2]["plugin"] == plugin and cells[("noisyblur", "clean")][2]["sigma"] == 0.1
    assert cells[("none", "mifgsm")][3]["plugin"] == plugin
    correct, indices, _, _ = cells[("none", "clean")]
    xt, yt = test.get(indices)
    by_hand = metrics.accuracy((xt.flatten(1) @ (2 * mu).T - (mu**2).sum(1)).argmax(1), yt)
    assert correct == round(by_hand * 16) and by_hand > 0.5
    assert cells[("none", "mifgsm")][0] < correct
