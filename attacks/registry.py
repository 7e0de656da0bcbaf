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
PLUGINS = PluginKind("attack", ENTRY_POINT_GROUP, Attack, BUILTIN)
plugins = PLUGINS.plugins  # the plugin attacks by name
available = PLUGINS.available  # every attack by name: the built-ins, then the plugins
distribution_of = PLUGINS.distribution_of  # (distribution, version) of a plugin; None for a built-in


def get_attack(name: str, dataset: str = "fmnist", eps: float | None = None, **params) -> Attack:
    """An attack instance by registry name (built-in or plugin)."""
    key = name.strip().lower()
    table = available()
    if key not in table:
        raise DefbenchError(f"unknown attack {name!r}; choose one of: {', '.join(table)}")
    return table[key](dataset, eps, **params)
