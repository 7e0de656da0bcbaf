"""Attacks by name: the built-ins plus every plugin registered under the entry-point group
``defbench.attacks``.

Plugin contract: a package declares, in its pyproject.toml::

    [project.entry-points."defbench.attacks"]
    myattack = "mypkg.attacks:MyAttack"

where ``MyAttack`` subclasses :class:`defbench.attacks.base.Attack`, sets its own ``name = "myattack"`` (the
entry point's name must match) and implements ``run(model, x, y) -> x_adv``. Once installed, ``--attacks
myattack`` runs it under every threat model like a built-in.

Refused, each with a one-line error: an entry point whose class has no ``name`` of its own (it would inherit
another attack's), a name that differs from the entry point's, and a name already taken by a built-in
(distribution ``defbench``) or by another plugin (both distributions are named). A plugin's distribution name
and version are part of its cells' identity (``Attack.config()["plugin"]``), and its outputs pass the same
checks as a built-in's (:meth:`Attack.check_output`); errors name the distribution.
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

BUILTIN: dict[str, type[Attack]] = {
    c.name: c
    for c in (FGSM, BIM, PGD, CW, DeepFool, AutoAttack, UniversalFGSM, UniversalART, Binarize, DropPixels, BlurNegative)
}
ENTRY_POINT_GROUP = "defbench.attacks"


#: the distribution that ships defbench's built-in attacks
BUILTIN_DISTRIBUTION = "defbench"
_BUILTIN_CLASSES = frozenset(BUILTIN.values())
#: plugin class -> (distribution name, version), filled by :func:`plugins`
_PLUGIN_DIST: dict[type, tuple[str, str]] = {}


def _dist(ep) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("an unknown distribution", "?")
    try:
        return (str(dist.name), str(dist.version))
    except Exception:  # a malformed METADATA
        return (str(getattr(dist, "name", None) or "an unknown distribution"), "?")


#: (entry point name, distribution) of every plugin already warned about, so a run warns once per plugin
_WARNED: set[tuple[str, str]] = set()


def _warn_skipped(key: tuple[str, str], message: str) -> None:
    import sys

    if key not in _WARNED:
        _WARNED.add(key)
        print(f"defbench: warning: {' '.join(message.split())}", file=sys.stderr)


def plugins() -> dict[str, type[Attack]]:
    """The plugin attacks by name. A plugin that fails to import is skipped with a one-line warning naming its
    distribution (the built-ins and the other plugins keep working); a nameless or shadowing plugin is a
    one-line DefbenchError."""
    found: dict[str, type[Attack]] = {}
    owner: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist, version = _dist(ep)
        where = f"attack plugin {ep.name!r} ({ep.value}) of distribution {dist} {version}"
        try:
            cls = ep.load()
        except BaseException as exc:  # a broken plugin must not break defbench (SystemExit in its import too)
            if isinstance(exc, KeyboardInterrupt):
                raise
            _warn_skipped(
                (ep.name, dist),
                f"skipped {where}: it failed to import ({type(exc).__name__}: "
                f"{str(exc)[:200]}); reinstall or uninstall {dist}",
            )
            continue
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise DefbenchError(f"{where} is not a defbench.attacks.Attack subclass")
        own = cls.__dict__.get("name")
        if not isinstance(own, str) or not own.strip():
            raise DefbenchError(
                f"{where}: class {cls.__name__} sets no name of its own (it would run as "
                f"{cls.name!r}); set name = {ep.name!r}"
            )
        if own != ep.name:
            raise DefbenchError(
                f"{where}: class {cls.__name__} is named {own!r}, the entry point {ep.name!r}; they must match"
            )
        if own in BUILTIN:
            raise DefbenchError(
                f"{where} takes the name of the built-in attack {own!r} of distribution "
                f"{BUILTIN_DISTRIBUTION}; rename the plugin"
            )
        if own in found and (owner[own] != (dist, version) or found[own] is not cls):
            d0, v0 = owner[own]
            raise DefbenchError(
                f"attack plugins of distributions {d0} {v0} and {dist} {version} both take the "
                f"name {own!r}; uninstall or rename one"
            )
        found[own], owner[own] = cls, (dist, version)
    _PLUGIN_DIST.update({cls: owner[n] for n, cls in found.items()})
    return found


def distribution_of(cls: type) -> tuple[str, str] | None:
    """(distribution name, version) of a plugin attack class; None for a built-in or an unregistered class."""
    if cls in _BUILTIN_CLASSES:
        return None
    if cls not in _PLUGIN_DIST:
        try:
            plugins()
        except DefbenchError:
            return None
    return _PLUGIN_DIST.get(cls)


def available() -> dict[str, type[Attack]]:
    return {**BUILTIN, **plugins()}


def get_attack(name: str, dataset: str = "fmnist", eps: float | None = None, **params) -> Attack:
    """An attack instance by registry name (built-in or plugin)."""
    key = name.strip().lower()
    table = available()
    if key not in table:
        raise DefbenchError(f"unknown attack {name!r}; choose one of: {', '.join(table)}")
    return table[key](dataset, eps, **params)
