"""Attacks by name: the built-ins plus every plugin registered under the entry-point group
``defbench.attacks``.

Plugin contract: a package declares, in its pyproject.toml::

    [project.entry-points."defbench.attacks"]
    myattack = "mypkg.attacks:MyAttack"

where ``MyAttack`` subclasses :class:`defbench.attacks.base.Attack`, sets ``name = "myattack"`` (the entry
point's name must match) and implements ``run(model, x, y) -> x_adv``. Once installed, ``--attacks
myattack`` runs it under every threat model like a built-in.
"""

from __future__ import annotations

from importlib.metadata import entry_points

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

BUILTIN: dict[str, type[Attack]] = {c.name: c for c in (FGSM, BIM, PGD, CW, DeepFool, AutoAttack, UniversalFGSM,
                                                         UniversalART, Binarize, DropPixels, BlurNegative)}
ENTRY_POINT_GROUP = "defbench.attacks"


def plugins() -> dict[str, type[Attack]]:
    found: dict[str, type[Attack]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break defbench
            raise DefbenchError(f"attack plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise DefbenchError(f"attack plugin {ep.name!r} ({ep.value}) is not a defbench.attacks.Attack subclass")
        found[ep.name] = cls
    return found


def available() -> dict[str, type[Attack]]:
    return {**BUILTIN, **plugins()}


def get_attack(name: str, dataset: str = "fmnist", eps: float | None = None, **params) -> Attack:
    """An attack instance by registry name (built-in or plugin)."""
    table = available()
    key = name.strip().lower()
    if key not in table:
        raise DefbenchError(f"unknown attack {name!r}; choose one of: {', '.join(table)}")
    return table[key](dataset, eps, **params)
