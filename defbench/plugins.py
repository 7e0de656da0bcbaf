"""Entry-point plugins, one set of rules for every kind (attacks, defenses, classifiers).

A package registers a class under an entry-point group (``defbench.attacks``, ``defbench.defenses``,
``defbench.classifiers``); the class
subclasses the kind's base class and sets its own ``name``, equal to the entry point's. :class:`PluginKind`
loads them and refuses an entry point whose class is not a subclass of the base, has no ``name`` of its own (it
would inherit another's), a name that differs from the entry point's, and a name already taken by a built-in
(distribution ``defbench``) or by another plugin (both are refused; both distributions are named). A refused
plugin, like one that fails to import, is skipped with a one-line warning naming its distribution, once per
process, so a broken or clashing package never breaks the built-ins or the other plugins; asking for it by name
is an error that gives the reason (:meth:`PluginKind.unknown`). A plugin's distribution name and version identify
its cells (see :meth:`PluginKind.distribution_of`).

This module is part of the core: it imports nothing of defbench but :class:`~defbench.DefbenchError`.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

from defbench import DefbenchError

#: the distribution that ships defbench's built-ins
BUILTIN_DISTRIBUTION = "defbench"
#: (kind, entry point name, distribution) of every plugin already warned about: a run warns once per plugin
WARNED: set[tuple[str, str, str]] = set()
#: every PluginKind made (one per registry: attacks, defenses, classifiers), for :func:`distribution_of`
KINDS: list["PluginKind"] = []


def entry_point_distribution(ep) -> tuple[str, str]:
    """(distribution name, version) of an entry point; a placeholder when its metadata cannot say."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("an unknown distribution", "?")
    try:
        return (str(dist.name), str(dist.version))
    except Exception:  # a malformed METADATA
        return (str(getattr(dist, "name", None) or "an unknown distribution"), "?")


class PluginKind:
    """The plugins of one entry-point ``group`` whose classes subclass ``base``, beside the ``builtin``
    classes by name. ``kind`` ("attack", "defense", "classifier") words the messages. A registry is one of these:
    :meth:`plugins`, :meth:`available` and :meth:`distribution_of` are its public functions."""

    def __init__(
        self,
        kind: str,
        group: str,
        base: type,
        builtin: dict[str, type],
        lookup_key: Callable[[str], str] = str.lower,
        case_sensitive: bool = True,
    ):
        """``lookup_key`` maps a name to the key its registry's lookup resolves it to among the built-ins (case,
        aliases: a plugin named ``Median`` or ``tv`` would run the built-in); ``case_sensitive`` False: the lookup
        lowercases every name, so a plugin's name must be lower case to be found at all."""
        self.kind, self.group, self.base, self.builtin = kind, group, base, builtin
        self.lookup_key, self.case_sensitive = lookup_key, case_sensitive
        self._dist: dict[type, tuple[str, str]] = {}
        self._refused: dict[str, str] = {}  # entry point name -> why it was skipped
        KINDS.append(self)

    def _warn(self, key: tuple[str, str], message: str) -> None:
        if (self.kind, *key) not in WARNED:
            WARNED.add((self.kind, *key))
            print(f"defbench: warning: {' '.join(message.split())}", file=sys.stderr)

    def load(self) -> dict[str, type]:
        """The plugin classes by name, checked as the module docstring says; the refused ones skipped."""
        found: dict[str, type] = {}
        owner: dict[str, tuple[str, str]] = {}
        self._refused = {}
        clashed: dict[str, str] = {}
        base = f"{self.base.__module__.replace('.base', '')}.{self.base.__name__}"
        for ep in entry_points(group=self.group):
            dist, version = entry_point_distribution(ep)
            where = f"{self.kind} plugin {ep.name!r} ({ep.value}) of distribution {dist} {version}"
            try:
                cls = ep.load()
            except BaseException as exc:  # a broken plugin must not break defbench (SystemExit in its import too)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._refuse(
                    ep.name,
                    dist,
                    f"{where}: it failed to import ({type(exc).__name__}: {str(exc)[:200]}); reinstall or "
                    f"uninstall {dist}",
                )
                continue
            why = self._problem(cls, ep.name, base)
            if why is None and ep.name in clashed:  # a third taker of a name two already clash on
                why = clashed[ep.name]
            elif why is None and ep.name in found and (owner[ep.name] != (dist, version) or found[ep.name] is not cls):
                d0, v0 = owner.pop(ep.name)
                del found[ep.name]  # both are refused: neither is "the" plugin of that name
                why = clashed[ep.name] = (
                    f"distributions {d0} {v0} and {dist} {version} both take the name {ep.name!r}; uninstall or "
                    "rename one"
                )
            if why is not None:
                self._refuse(ep.name, dist, f"{where}: {why}")
                continue
            found[ep.name], owner[ep.name] = cls, (dist, version)
        self._dist.update({cls: owner[n] for n, cls in found.items()})
        return found

    def _problem(self, cls: Any, name: str, base: str) -> str | None:
        """Why the class an entry point ``name`` loads cannot be a plugin of this kind, or None."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            return f"it is not a {base} subclass"
        own = cls.__dict__.get("name")
        if not isinstance(own, str) or not own.strip():
            inherited = getattr(cls, "name", None)
            return f"class {cls.__name__} sets no name of its own (it would run as {inherited!r}); set name = {name!r}"
        if own != name:
            return f"class {cls.__name__} is named {own!r}, the entry point {name!r}; they must match"
        taken = own if own in self.builtin else self.lookup_key(own)
        if taken in self.builtin:
            finds = "" if taken == own else f" (a lookup of {own!r} finds the built-in)"
            return (
                f"it takes the name of the built-in {self.kind} {taken!r} of distribution {BUILTIN_DISTRIBUTION}"
                f"{finds}; rename the plugin"
            )
        if not self.case_sensitive and own != own.lower():
            return (
                f"{self.kind} names are looked up in lower case, so {own!r} could never be run; name it {own.lower()!r}"
            )
        return None

    def _refuse(self, name: str, dist: str, message: str) -> None:
        self._refused[name] = message
        self._warn((name, dist), f"skipped {message}")

    def unknown(self, name: str, choices: Iterable[str], hint: str = "") -> DefbenchError:
        """The error for a name no class of this kind has: the choices, and why a plugin of that name was
        skipped (a refusal, a failed import) where one was."""
        key = str(name).strip().lower()
        refused = next((m for n, m in self._refused.items() if n.lower() == key), None)
        why = f"; a plugin of that name was skipped: {refused}" if refused else ""
        return DefbenchError(f"unknown {self.kind} {name!r}{why}; choose one of: {', '.join(choices)}{hint}")

    def plugins(self) -> dict[str, type]:
        """The installed plugins by name (:meth:`load`)."""
        return self.load()

    def available(self) -> dict[str, type]:
        """Every class by name: the built-ins, then the installed plugins."""
        return {**self.builtin, **self.load()}

    def distribution_of(self, obj: Any) -> tuple[str, str] | None:
        """(distribution name, version) of a plugin (its class or an instance); None for a built-in or an
        unregistered class."""
        cls = obj if isinstance(obj, type) else type(obj)
        if cls in self.builtin.values():
            return None
        if cls not in self._dist:
            try:
                self.load()
            except DefbenchError:
                return None
        return self._dist.get(cls)


def distribution_of(cls: type) -> tuple[str, str] | None:
    """(distribution name, version) of a plugin class of any kind whose registry is loaded (a class's base class
    module, e.g. :mod:`defbench.attacks.base`, can ask without importing its registry); None for a built-in."""
    for kind in KINDS:
        if isinstance(cls, type) and issubclass(cls, kind.base):
            return kind.distribution_of(cls)
    return None
