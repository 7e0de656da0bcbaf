"""Attacks by name: the built-ins plus every plugin registered under the entry-point group
``defbench.attacks``.

Plugin contract: a package declares, in its pyproject.toml::

    [project.entry-points."defbench.attacks"]
    myattack = "mypkg.attacks:MyAttack"

where ``MyAttack`` subclasses :class:`defbench.attacks.base.Attack`, sets its own ``name = "myattack"`` (the
entry point's name must match) and implements ``run(model, x, y) -> x_adv``. Once installed, ``--attacks
myattack`` runs it under every threat model like a built-in.

The refusal rules (no name of its own, a name that differs from the entry point's, shadowing a built-in or another
plugin) and the skipping of plugins that fail to import are those of :mod:`defbench.plugins`. A plugin's
distribution name and version are part of its cells' identity (``Attack.config()["plugin"]``), and its outputs pass
the same checks as a built-in's (:meth:`Attack.check_output`); errors name the distribution.
"""

from __future__ import annotations

from defbench import DefbenchError
from defbench.attacks.autoattack import AutoAttack
from defbench.attacks.base import Attack
from defbench.attacks.bim import BIM
from defbench.attacks.corruptions import Binarize, BlurNegative, DropPixels
from defbench.attacks.cw import CW
from defbench.attacks.deepfool import DeepFool
from defbench.attacks.fgsm import FGSM
from defbench.attacks.pgd import PGD
from defbench.attacks.universal import UniversalART, UniversalFGSM
from defbench.plugins import PluginKind

BUILTIN: dict[str, type[Attack]] = {
    c.name: c
    for c in (FGSM, BIM, PGD, CW, DeepFool, AutoAttack, UniversalFGSM, UniversalART, Binarize, DropPixels, BlurNegative)
}
ENTRY_POINT_GROUP = "defbench.attacks"
_PLUGINS = PluginKind("attack", ENTRY_POINT_GROUP, Attack, BUILTIN)


def plugins() -> dict[str, type[Attack]]:
    """The plugin attacks by name (the rules: :mod:`defbench.plugins`)."""
    return _PLUGINS.load()


def distribution_of(cls: type) -> tuple[str, str] | None:
    """(distribution name, version) of a plugin attack class; None for a built-in or an unregistered class."""
    return _PLUGINS.distribution_of(cls)


def available() -> dict[str, type[Attack]]:
    return {**BUILTIN, **plugins()}


def get_attack(name: str, dataset: str = "fmnist", eps: float | None = None, **params) -> Attack:
    """An attack instance by registry name (built-in or plugin)."""
    key = name.strip().lower()
    table = available()
    if key not in table:
        raise DefbenchError(f"unknown attack {name!r}; choose one of: {', '.join(table)}")
    return table[key](dataset, eps, **params)
