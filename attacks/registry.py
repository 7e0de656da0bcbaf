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

import json
import math
from typing import Any

from defbench import DefbenchError
from defbench.attacks.autoattack import AutoAttack
from defbench.attacks.base import COMMON_OPTIONS, Attack
from defbench.attacks.bim import BIM
from defbench.attacks.corruptions import Binarize, BlurNegative, DropPixels
from defbench.attacks.cw import CW
from defbench.attacks.deepfool import DeepFool
from defbench.attacks.fgsm import FGSM
from defbench.attacks.pgd import PGD
from defbench.attacks.square import Square
from defbench.attacks.universal import UniversalART, UniversalFGSM
from defbench.plugins import PluginKind

BUILTIN: dict[str, type[Attack]] = {
    c.name: c
    for c in (
        FGSM,
        BIM,
        PGD,
        CW,
        DeepFool,
        AutoAttack,
        Square,
        UniversalFGSM,
        UniversalART,
        Binarize,
        DropPixels,
        BlurNegative,
    )
}
ENTRY_POINT_GROUP = "defbench.attacks"
PLUGINS = PluginKind("attack", ENTRY_POINT_GROUP, Attack, BUILTIN, case_sensitive=False)  # get_attack lowercases
plugins = PLUGINS.plugins  # the plugin attacks by name
available = PLUGINS.available  # every attack by name: the built-ins, then the plugins
distribution_of = PLUGINS.distribution_of  # (distribution, version) of a plugin; None for a built-in


def get_attack(name: str, dataset: str = "fmnist", eps: float | None = None, **params) -> Attack:
    """An attack instance by registry name (built-in or plugin)."""
    key = name.strip().lower()
    table = available()
    if key not in table:
        raise PLUGINS.unknown(name, table)
    return table[key](dataset, eps, **params)


def check_option(name: str, key: str, value: Any, what: str) -> Any:
    """Option ``key`` of attack ``name`` as ``--attack-opt`` and the API's ``attack_params`` take it: one of the
    attack's options (:data:`~defbench.attacks.base.COMMON_OPTIONS` and its ``defaults``), its value of the
    default's type (:func:`check_value`; ``what`` names it in errors). Returns the value checked; what the type
    cannot say (an option whose default is None, the range of a step size or count) the attack's own constructor
    checks."""
    table = available()
    key_name = name.strip().lower()
    if key_name not in table:
        raise PLUGINS.unknown(name, table)
    defaults = {**COMMON_OPTIONS, **table[key_name].defaults}
    if key not in defaults:
        raise DefbenchError(
            f"unknown parameter {key} for attack {key_name}; valid: {', '.join(sorted(defaults)) or 'none'}"
        )
    return check_value(value, defaults[key], what)


def check_value(value, default, what: str):
    """``value`` (parsed from JSON) where ``default`` shows the expected type: an int for an int, a number
    for a float (finite), a string for a string, true/false for a bool; NaN and inf are refused everywhere.
    (Also the type check of the CLI's defense options.)"""

    def bad(kind):
        shown = json.dumps(value) if _jsonable(value) and not isinstance(value, float) else repr(value)
        return DefbenchError(f"{what} must be {kind}, got {shown}")

    if isinstance(value, float) and not math.isfinite(value):
        raise bad("a finite number")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)  # weight=1 and weight=1.0 are one setting, one config and one cell key
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
    elif isinstance(value, (dict, list)):
        raise bad("a single value")
    return value


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False
