"""Python API: evaluate your classifier and your defense from a script or a notebook.

>>> import defbench
>>> df = defbench.evaluate(my_model, my_purify, dataset="mnist", attacks=["fgsm", "pgd"],
...                        threats=["graybox", "bpda"], eps=[0.1, 0.3], n=200, store="runs/mine")
>>> df.pivot_table(index=["attack_label", "eps"], columns=["defense", "threat"], values="accuracy")

The same runner as ``defbench matrix`` computes every cell (one row per cell, the store's columns plus
``accuracy``, ``accuracy_undefended``, ``attack_label`` and ``eps``); with ``store=DIR`` the cells land in
``DIR/defbench.sqlite`` and a second call computes only the missing ones (``defbench report DIR`` prints the
usual tables). A model or defense of yours is identified by the sha256 of its weights and its configuration,
so two different models never share cells.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from defbench import DefbenchError
from defbench.attacks.registry import PLUGINS as ATTACK_PLUGINS
from defbench.attacks.registry import available as available_attacks
from defbench.attacks.registry import check_option, get_attack
from defbench.attacks.threats import check_threat
from defbench.classifiers.registry import check_name as check_classifier
from defbench.defenses.base import Defense
from defbench.defenses.registry import DEFENSES, base_name
from defbench.defenses.registry import check_name as check_defense
from defbench.harness.matrix import AttackSpec, MatrixRunner, MatrixSpec, check_threats_apply, check_used
from defbench.harness.models import PRESETS
from defbench.harness.identity import code_sha256 as _code_sha256
from defbench.harness.store import Store
from defbench.limits import LIMITS, MAX_SEED, check_eps, shown, whole_number
from defbench.reports.common import accuracy, undefended_accuracy
from defbench.seeding import kept_random_state, resolve_device

__all__ = ["evaluate", "CallableDefense"]


class CallableDefense(Defense):
    """A plain function ``purify(x) -> x_hat`` (or ``purify(x, seed) -> x_hat``) as a defense.

    Deterministic unless ``randomized=True`` (then it must take ``seed`` and draw only from it), with BPDA's
    straight-through backward (the identity) unless ``stand_in`` gives another differentiable approximation.
    Its identity in the store: its name, ``config()`` (its qualified name and :func:`_code_sha256` of it, and of
    ``stand_in`` when given: code, captured and global values, arguments, attributes, weights) and, for an
    ``nn.Module``, its weights."""

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: str | None = None,
        randomized: bool = False,
        stand_in: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__(None, 0)
        if not callable(fn):
            raise DefbenchError(f"defense must be a name, a Defense or a callable purify(x), got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.randomized = bool(randomized)
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        self._takes_seed = "seed" in params
        if self.randomized and not self._takes_seed:
            raise DefbenchError(f"defense {self.name}: randomized=True needs a purify(x, seed) that draws from seed")
        self._stand_in = stand_in

    def _purify(self, x, seed):
        out = self.fn(x, seed=seed) if self._takes_seed else self.fn(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise DefbenchError(f"defense {self.name} returned {got}, expected a tensor of shape {tuple(x.shape)}")
        return out

    def stand_in(self, x):
        return x if self._stand_in is None else self._stand_in(x)

    def config(self) -> dict[str, Any]:
        cfg = {"callable": _qualname(self.fn), "code_sha256": _code_sha256(self.fn)}
        if self._stand_in is not None:
            cfg["stand_in_sha256"] = _code_sha256(self._stand_in)
        return cfg


def _qualname(obj) -> str:
    target = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(obj).__name__)}"


def _as_defense(d, i: int) -> tuple[str, Defense | None]:
    """(label, object) of one defense argument; object None for a registered name."""
    if isinstance(d, str):
        return check_defense(d), None
    if not isinstance(d, Defense):
        d = CallableDefense(d)
    label = str(getattr(d, "name", "") or f"defense{i}")
    if label in ("base", ""):
        label = type(d).__name__
    return f"user:{label}", d


def _eps_list(eps: Any) -> list[float | None]:
    """``eps`` as a list: [None] for None, one number (a 0-d array or tensor too), or each number of a sequence,
    array or tensor."""
    if eps is None:
        return [None]
    if isinstance(eps, torch.Tensor):  # float16 / float32 through NumPy, whose scalars keep their precision
        eps = eps.detach().cpu().numpy() if eps.dtype in (torch.float16, torch.float32) else eps.tolist()
    if isinstance(eps, np.ndarray):  # 0-d: its scalar; 1-d: its scalars; deeper: a nested list (refused below)
        eps = eps[()] if eps.ndim == 0 else list(eps) if eps.ndim == 1 else eps.tolist()
    values = [eps] if isinstance(eps, (numbers.Real, np.number)) else eps
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise DefbenchError(f"eps must be a number or a sequence of numbers, got {type(eps).__name__}")
    out = []
    for e in values:
        if isinstance(e, torch.Tensor) and e.ndim == 0:
            e = e.detach().cpu().numpy()[()] if e.dtype in (torch.float16, torch.float32) else e.item()
        elif isinstance(e, np.ndarray) and e.ndim == 0:
            e = e[()]
        if isinstance(e, bool) or not isinstance(e, (numbers.Real, np.number)):
            raise DefbenchError(f"eps must be a number or a sequence of numbers, got {e!r} in it")
        if isinstance(e, np.floating) and e.dtype.itemsize < 8:  # float32 0.1 is 0.1, not 0.10000000149011612:
            e = str(e)  # the shortest decimal that reads back to it, i.e. the budget the caller wrote (and its key)
        out.append(check_eps(float(e), "eps"))
    if not out:
        raise DefbenchError("eps is empty: give a number, a sequence of numbers, or None for each attack's default")
    return list(dict.fromkeys(out))  # each budget once, as --eps: a repeated one would run its cells twice


def _count(value: Any, name: str, optional: bool = False) -> int | None:
    """Count argument ``name`` (n, batch_size, eot, eval_repeats) as an int in [1, the CLI's limit of it] (None
    stays None where ``optional``); a float (even 2.0), a bool or a str is refused, as on the command line."""
    if value is None and optional:
        return None
    try:
        return whole_number(value, 1, LIMITS[name.replace("_", "-")])
    except ValueError as exc:
        raise DefbenchError(f"{name} {exc}") from None


def _seed_list(seeds: Any) -> tuple[int, ...]:
    """``seeds`` as the seeds themselves: a count K means 0, ..., K-1; a sequence gives distinct seeds, each a
    whole number in [0, MAX_SEED] (a str is refused, not read as a sequence of characters)."""
    try:
        if isinstance(seeds, (str, bytes, Mapping)):
            raise ValueError
        if isinstance(seeds, Iterable):
            out = tuple(whole_number(s, 0, MAX_SEED) for s in seeds)
        else:
            out = tuple(range(whole_number(seeds, 1, LIMITS["seeds"])))
    except ValueError:
        out = ()
    if not 1 <= len(out) <= LIMITS["seeds"] or len(set(out)) != len(out):
        raise DefbenchError(
            f"seeds must be a count >= 1 or distinct seeds (whole numbers in [0, {MAX_SEED}], at most "
            f"{LIMITS['seeds']} of them), got {shown(seeds)}"
        )
    return out


def _check_path(value: Any, name: str) -> Any:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise DefbenchError(f"{name} must be a directory (a str or pathlib.Path) or None, got {type(value).__name__}")
    return value


def _defenses(defense: Any, baseline: bool) -> tuple[list[str], dict[str, Defense]]:
    """The run's defense labels, each once (as ``--defense``), the undefended ``none`` first with ``baseline``,
    and the defense objects by label."""
    items = [] if defense is None else list(defense) if isinstance(defense, (list, tuple)) else [defense]
    labels, objects = [], {}
    for i, d in enumerate(items):
        label, obj = _as_defense(d, i)
        if obj is not None:
            if label in objects and objects[label] is not obj:
                raise DefbenchError(f"two defenses are both named {label[5:]!r}; give them different names")
            objects[label] = obj
        labels.append(label)
    labels = list(dict.fromkeys(labels))  # a defense given twice would run each of its cells twice
    if baseline and "none" not in labels:
        labels.insert(0, "none")
    if not labels:
        raise DefbenchError("no defense to evaluate: pass a defense or baseline=True")
    return labels, objects


def _attack_specs(
    dataset: str, attacks: Any, threats: Any, eps: Any, eot: int | None, attack_params: Any
) -> tuple[tuple[AttackSpec, ...], tuple[str, ...]]:
    """The run's attacks, each at every budget of ``eps`` when bounded, with their ``attack_params``, and its
    threats: checked as ``defbench matrix`` checks them, names case-insensitive and each attack, budget and
    threat once (a repeated one would run its cells twice)."""
    attacks = [attacks] if isinstance(attacks, str) else list(attacks)  # "fgsm" is one attack, not 'f', 'g', ...
    threats = [threats] if isinstance(threats, str) else list(threats)
    for a in attacks:
        if not isinstance(a, str):
            raise DefbenchError(
                f"attacks takes attack names, got a {type(a).__name__}; an attack of your own is a plugin, "
                "registered under a name (docs/PLUGINS.md)"
            )
    if attack_params is not None and not isinstance(attack_params, Mapping):
        raise DefbenchError(
            f"attack_params must be a dict {{attack: {{option: value}}}}, got {type(attack_params).__name__}"
        )
    attacks = list(dict.fromkeys(a.strip().lower() for a in attacks))
    eps_list = _eps_list(eps)
    threats = list(dict.fromkeys(check_threat(t) for t in threats))  # as the run reads them (BPDA is bpda)
    table = available_attacks()
    for a in attacks:
        if a not in table:
            raise ATTACK_PLUGINS.unknown(a, table)
    check_used(threats, attacks, eot, eps, api=True, table=table)
    # attack_params are checked as --attack-opt checks them; ε goes to bounded attacks only (the others ignore it)
    params: dict[str, dict[str, Any]] = {}
    for given, opts in (attack_params or {}).items():
        a = str(given).strip().lower()
        if a not in attacks:
            raise DefbenchError(
                f"attack_params names attack {given!r}, which is not in attacks ({', '.join(attacks) or 'none'}); "
                "add it to attacks or drop its options"
            )
        if a in params:
            raise DefbenchError(f"attack_params names attack {a} twice (as {given!r} too); give its options once")
        if not isinstance(opts, dict):
            raise DefbenchError(f"attack_params[{given!r}] must be a dict {{option: value}}, not {type(opts).__name__}")
        params[a] = {k: check_option(a, k, v, f"attack_params[{given!r}][{k!r}]") for k, v in opts.items()}
        get_attack(a, dataset, **params[a])  # the attack's own checks (a positive step size, ...), before any work
    specs = tuple(
        AttackSpec(a, e, tuple(sorted(params.get(a, {}).items())))
        for a in attacks
        for e in (eps_list if getattr(table.get(a), "bounded", True) else [None])
    )
    return specs, tuple(threats)


def evaluate(
    classifier: nn.Module | str | None = None,
    defense: str | Defense | Callable | Sequence[str | Defense | Callable] | None = None,
    *,
    dataset: str,
    attacks: Sequence[str] = ("fgsm", "pgd"),
    threats: Sequence[str] = ("graybox",),
    eps: float | Sequence[float] | None = None,
    n: int = 500,
    seeds: int | Sequence[int] = 1,
    eot: int | None = None,
    eval_repeats: int | None = None,
    batch_size: int = 100,
    preset: str = "paper",
    store: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    data_root: str | os.PathLike | None = None,
    baseline: bool = True,
    attack_params: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
):
    """Attack ``classifier`` (an ``nn.Module`` mapping [0, 1] images of ``dataset`` to logits, the name of an
    installed classifier plugin, or None / ``"zoo"``: the zoo's classifier of the preset) behind ``defense`` and
    return one row per cell as a ``pandas.DataFrame``.

    Args:
        defense: a registered name or variant (``"defensegan"``, ``"ride[iterations=200]"``), a
            :class:`~defbench.defenses.Defense` instance, a plain callable ``purify(x) -> x_hat`` (see
            :class:`CallableDefense`), a list of these, or None (the undefended classifier only).
        dataset: ``fmnist``, ``mnist``, ``cifar10`` or ``imagenet``: the test images come from its loader.
        attacks: registered attack names (built-ins or plugins, any case); ``attack_params`` = ``{name: {key:
            value}}``. An attack, ε, threat or defense given twice runs once, as on the command line.
        threats: ``graybox``, ``bpda``, ``reparam``, ``gan-aware`` (each the same library attack handed another
            model).
        eps: the ℓ∞ budget in (0, 1] pixel units, or a list of them to sweep (bounded attacks only); None: the
            paper default per dataset.
        n: test images per cell (the seeded evaluation subset, the same for every cell).
        seeds: the number of seeds (0, 1, ...) or the seeds themselves (distinct, in [0, 2**31 - 1]).
        eot / eval_repeats: EOT draws per BPDA gradient and purifications per image for randomized defenses
            (defaults as ``defbench matrix``). Counts (n, batch_size, eot, eval_repeats, seeds) are integers in
            the command line's ranges (:data:`defbench.limits.LIMITS`); a float, bool or str is refused.
        store: an output directory: cells are stored there and reused by the next call (resumable); None: a
            temporary directory, gone after the call.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``.
        data_root: the dataset root (None: as ``--data-root``'s default).
        baseline: add the undefended classifier (``none``) as a reference column.
        progress: show progress bars.

    Returns:
        a DataFrame with the store's columns (``defense``, ``attack``, ``threat``, ``seed``, ``n``, ``correct``,
        ``labels``, ``preds``, ``scores``, configs, ...) plus ``accuracy``, ``accuracy_undefended`` (fractions;
        ``accuracy`` by the tables' all-repeats rule: a randomized defense's image counts only if correct in all
        of its ``eval_repeats`` purifications), ``attack_label`` and ``eps``.
    """
    dev = resolve_device(device)
    preset = preset.strip().lower() if isinstance(preset, str) else preset
    if preset not in PRESETS:
        raise DefbenchError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    n, batch_size = _count(n, "n"), _count(batch_size, "batch_size")
    eot, eval_repeats = _count(eot, "eot", optional=True), _count(eval_repeats, "eval_repeats", optional=True)
    seed_list = _seed_list(seeds)
    store, data_root = _check_path(store, "store"), _check_path(data_root, "data_root")
    labels, objects = _defenses(defense, baseline)
    plugin = "zoo"
    if isinstance(classifier, str):  # "zoo" or a classifier plugin's name, built by the runner
        plugin, classifier = check_classifier(classifier), None
    elif classifier is not None and not isinstance(classifier, nn.Module):  # a module: the runner readies it
        raise DefbenchError(
            f"classifier must be a torch.nn.Module or a classifier's name, got {type(classifier).__name__}"
        )
    for obj in objects.values():  # as the classifier: on the device and in eval mode (a BatchNorm left in train
        for m in [obj, *vars(obj).values()]:  # mode normalised by batch and rewrote its running statistics)
            if isinstance(m, nn.Module):
                m.to(dev).eval()
    specs, threats = _attack_specs(dataset, attacks, threats, eps, eot, attack_params)
    check_threats_apply(  # a registered name not built in is a plugin: whether it reparameterizes is known once built
        threats,
        labels,
        lambda d: (
            getattr(objects[d], "has_reparameterization", False) if d in objects else base_name(d) not in DEFENSES
        ),
        external=objects,
        api=True,
    )
    spec = MatrixSpec(
        dataset=dataset,
        defenses=tuple(labels),
        attacks=specs,
        threats=tuple(threats),
        n=n,
        seeds=seed_list,
        batch_size=batch_size,
        preset=preset,
        device=str(dev),
        eot=eot,
        eval_repeats=eval_repeats if eval_repeats is not None else (1 if preset == "quick" else 3),
        data_root=data_root,
        progress=progress,
        external_defenses=tuple(objects),
        classifier=plugin,
    )
    with tempfile.TemporaryDirectory(prefix="defbench-") as tmp:
        spec.out = str(store) if store is not None else tmp
        with kept_random_state():  # the runner seeds the global generators (per cell, and to train a missing
            runner = MatrixRunner(spec, Store(spec.out), classifier=classifier, defenses=objects)  # model)
            runner.run()
        keys = [runner.key(c)[0].key for c in runner.cells()]
        rows = [r for k in keys for r in runner.store.rows(key=k)]
        runner.store.close()
    df = pd.DataFrame(rows)
    if len(df):
        df["accuracy"] = [accuracy(r) for r in rows]
        df["accuracy_undefended"] = [undefended_accuracy(r) for r in rows]
        df["attack_label"] = [c.get("label", c.get("name")) for c in df["attack_config"]]
        df["eps"] = [c.get("eps", math.nan) for c in df["attack_config"]]
    return df
