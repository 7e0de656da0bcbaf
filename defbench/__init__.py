"""defbench: honest evaluation of adversarial purification defenses.

Data flow: dataset -> classifier -> attack -> defense -> metrics -> store -> report.
Layers, lowest first (each imports only those below it; tests/test_layers.py): the core (this module's
:class:`DefbenchError`, ``defbench.plugins``, ``defbench.datasets``, ``defbench.seeding``, ``defbench.metrics``); the
components ``defbench.classifiers``, ``defbench.defenses`` (GAN priors, the projection engine, RIDE, baselines) and
``defbench.attacks``; ``defbench.harness`` (data, zoo, runner, store, paper specs); ``defbench.reports``; the API
(``defbench.api``); the CLI (the package ``defbench.cli``), which nothing else imports."""

__version__ = "0.1.0"


class DefbenchError(Exception):
    """An error whose message is meant for the user: the CLI prints it on one line, without a traceback."""


class CellsFailed(DefbenchError):
    """Cells of a run failed (a plugin's crash, a worker that died twice) and hold no number; the others are
    stored. Not the user's input: the CLI exits 1 for it, as 'defbench matrix' does for failed cells."""


def __getattr__(name: str):
    """``defbench.evaluate`` and ``defbench.CallableDefense`` (:mod:`defbench.api`), imported on first use."""
    if name in ("evaluate", "CallableDefense"):
        from defbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'defbench' has no attribute {name!r}")
