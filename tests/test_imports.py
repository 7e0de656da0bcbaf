"""Every module imports in a fresh install, and only the ``defbench`` namespace is installed."""

import importlib
import pkgutil
import subprocess
import sys

import defbench

SUBPACKAGES = (
    "defbench.defenses",
    "defbench.attacks",
    "defbench.classifiers",
    "defbench.harness",
    "defbench.reports",
    "defbench.cli",
)


def test_every_module_imports():
    names = ["defbench.api", "defbench.datasets", "defbench.metrics", "defbench.plugins", "defbench.seeding"]
    for pkg in SUBPACKAGES:
        mod = importlib.import_module(pkg)
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(mod.__path__)]
    assert len(names) > 20
    for n in names:
        importlib.import_module(n)


def test_no_generic_top_level_modules(tmp_path):
    code = (
        "import importlib.util, sys\n"
        "bad = [m for m in ('attacks', 'defenses', 'classifiers', 'harness', 'reports') if importlib.util.find_spec(m)]\n"  # noqa: E501
        "import defbench.attacks, defbench.defenses, defbench.harness\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_cli_help_explains(capsys):
    from defbench.cli import main

    listings = [[kind, "--help"] for kind in ("defense", "attack", "classifier", "zoo")]
    for args in (["--help"], ["matrix", "--help"], ["train", "--help"], ["paper", "list", "--help"], *listings):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code == 0
    out = capsys.readouterr().out
    assert "--defense" in out and "--threat" in out and "--preset" in out and defbench.__version__
    words = " ".join(out.split())  # argparse wraps descriptions to the terminal
    assert "reproduced within 5 points" in words and "not run here" in words  # paper list says what a status means
    for kind in ("defenses", "attacks", "classifiers"):  # where a listing's plugins come from
        assert f"entry points of group 'defbench.{kind}'" in words
    assert "'zoo show ID': its manifest" in words
