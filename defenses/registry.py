"""Defenses by name, with paper defaults and overridable hyperparameters.

``build_defense("median", "fmnist", overrides={"kernel_size": 5})`` returns a ready defense. Every option is checked
against its declared type when the defense is built (a bool must be true or false, an int a whole number, a float a
number), never coerced: a wrong type is a one-line error, not a surprise at purify time. A GAN-prior defense
also needs trained models (G, D, encoder) from a :class:`ModelSource`: ``defbench.harness.models.build_defense``
takes them from the zoo, trained on demand when missing.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import typing
from typing import Any, Protocol

from defbench import DefbenchError
from defbench.defenses.base import Defense, NoDefense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.ride import RIDE, RIDEConfig
from defbench.datasets import SHAPES, canonical_name
from defbench.limits import MAX_STEPS
from defbench.plugins import PluginKind


class ModelSource(Protocol):
    """Where a GAN-prior defense gets its trained models: ``(G, D, manifest)`` and ``(encoder, manifest)`` of a
    dataset and preset (``tag``: a GAN replica). :mod:`defbench.harness.models` (the model zoo) is one."""

    def get_gan(self, dataset, preset, device, data_root, train_missing, progress, tag: str = ""): ...

    def get_encoder(self, dataset, preset, device, data_root, train_missing, progress, tag: str = ""): ...


DEFENSES = ("none", "defensegan", "cowboy", "invgan", "mimicgan", "ride", "median", "tvm")
GAN_DEFENSES = ("defensegan", "cowboy", "invgan", "mimicgan")
#: the built-in classes by name, in the order of DEFENSES (the GAN-prior defenses share one class)
_BUILTIN_CLASSES: dict[str, type] = {
    "none": NoDefense,
    **{n: GANPriorDefense for n in GAN_DEFENSES},
    "ride": RIDE,
    "median": MedianFilter,
    "tvm": TVMinimization,
}
ENTRY_POINT_GROUP = "defbench.defenses"


def _alias_key(name: str) -> str:
    """The key a defense name resolves to among the built-ins: case, '-' and '_' ignored, aliases applied."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    return {"defensegan": "defensegan", "nodefense": "none", "tv": "tvm", "medianfilter": "median"}.get(key, key)


#: the plugin rules (:mod:`defbench.plugins`; docs/PLUGINS.md)
PLUGINS = PluginKind("defense", ENTRY_POINT_GROUP, Defense, _BUILTIN_CLASSES, lookup_key=_alias_key)
plugins = PLUGINS.plugins  # the plugin defenses by name
distribution_of = PLUGINS.distribution_of  # (distribution, version) of a plugin class or instance; None: built-in


def available() -> tuple[str, ...]:
    """Every defense name: the built-ins, then the installed plugins."""
    return tuple(PLUGINS.available())


def _base_name(name: str) -> str:
    key = _alias_key(name)
    if key in DEFENSES:
        return key
    found = plugins()
    if name.strip() in found:  # a plugin's name is taken as written
        return name.strip()
    raise PLUGINS.unknown(name, available(), " (a variant: NAME[key=value,...])")


def _value(v: str) -> Any:
    try:
        return json.loads(v)
    except ValueError:
        return v


def split_variant(label: str) -> tuple[str, dict[str, Any]]:
    """``'defensegan[restarts=1,latent_steps=50]'`` -> ``('defensegan', {'restarts': 1, 'latent_steps': 50})``.

    A *variant* is a defense with options fixed in its name, so that one matrix (or paper table) can hold
    several configurations of one defense side by side (sweeps, GAN replicas: ``defensegan[gan=sub80-s1]``).
    """
    label = label.strip()
    if "[" not in label:
        return _base_name(label), {}
    if not label.endswith("]") or label.count("[") != 1:
        raise DefbenchError(f"defense variant {label!r} must look like NAME[key=value,...]")
    base, inner = label[:-1].split("[", 1)
    opts: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in inner.split(","))):
        if "=" not in pair:
            raise DefbenchError(f"defense variant {label!r}: option {pair!r} must look like key=value")
        k, v = (part.strip() for part in pair.split("=", 1))
        if k in opts:  # the last would win silently, as a variant is meant to fix each option once
            raise DefbenchError(f"defense variant {label!r} sets {k} twice; give it once")
        opts[k] = _value(v)
    return _base_name(base), opts


def variant_label(base: str, opts: dict[str, Any]) -> str:
    """The canonical label of a variant (options sorted, values in JSON except plain strings)."""
    if not opts:
        return base
    fmt = lambda v: v if isinstance(v, str) else json.dumps(v)
    return f"{base}[{','.join(f'{k}={fmt(v)}' for k, v in sorted(opts.items()))}]"


def check_name(name: str) -> str:
    """The canonical name of a defense or variant label (aliases resolved), or a one-line error."""
    base, opts = split_variant(name)
    return variant_label(base, opts)


def base_name(label: str) -> str:
    return split_variant(label)[0]


def split_names(text: str) -> list[str]:
    """Comma-separated defense names; commas inside a variant's brackets do not split."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def _type_ok(value: Any, want: Any) -> tuple[bool, str]:
    """Whether ``value`` is of the declared type ``want`` (recorded as given, but for an int where a float is
    declared: see :func:`_check_types`), and the type in words. bool: True or False only; int: a whole number,
    not a bool; float: an int or a float, not a bool; str: a string (its choices are the config's to check).
    Other annotations are not checked."""
    if want is bool:
        return isinstance(value, bool), "a bool (true or false, unquoted)"
    if want is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool), "an int (a whole number)"
    if want is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool), "a float (a number)"
    if want is str:
        return isinstance(value, str), "a str (a string)"
    return True, ""


def _check_types(overrides: dict[str, Any], types: dict[str, Any], name: str) -> dict[str, Any]:
    """The overrides, each of its declared type (``types``: the option's annotations), an int given for a float
    as that float (weight=1 and weight=1.0 are one setting, one config and one cell key); a one-line error naming
    the defense, the option, the value and the expected type for the first option of another type, or for a
    whole number past :data:`~defbench.limits.MAX_STEPS`."""
    out = {}
    for k, v in overrides.items():
        ok, want = _type_ok(v, types.get(k))
        if not ok:
            raise DefbenchError(f"defense {name}: option {k}={v!r} ({type(v).__name__}) must be {want}")
        if types.get(k) is int and v > MAX_STEPS:
            raise DefbenchError(f"defense {name}: option {k}={v!r} must be at most {MAX_STEPS:,}")
        out[k] = float(v) if types.get(k) is float else v
    return out


def _apply(cfg, overrides: dict[str, Any], name: str):
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise DefbenchError(
            f"unknown option(s) {', '.join(unknown)} for defense {name}; valid: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(cfg, **_check_types(overrides, typing.get_type_hints(type(cfg)), name))


def build_defense(
    name: str,
    dataset: str = "fmnist",
    preset: str = "paper",
    device="cpu",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    data_root=None,
    train_missing: bool = True,
    progress: bool = True,
    models: ModelSource | None = None,
) -> Defense:
    """The defense (or variant ``name[k=v,...]``) for ``dataset``: paper defaults < ``overrides`` < the variant's
    own options. A GAN-prior defense projects onto trained models, which ``models`` provides (``preset``,
    ``data_root``, ``train_missing`` and ``progress`` are handed to it); :func:`defbench.harness.models.build_defense`
    passes the model zoo's."""
    name, inline = split_variant(name)
    dataset = canonical_name(dataset)
    overrides = {**(overrides or {}), **inline}
    shape = SHAPES[dataset]
    if name == "none":
        if overrides:
            raise DefbenchError("defense none takes no options")
        return NoDefense(shape, seed)
    if name == "median":
        return MedianFilter(shape=shape, seed=seed, **_kw(overrides, MedianFilter, ("kernel_size",), name))
    if name == "tvm":
        return TVMinimization(
            shape=shape, seed=seed, **_kw(overrides, TVMinimization, ("weight", "method", "iterations"), name)
        )
    if name not in DEFENSES:
        return _build_plugin(name, dataset, shape, device, overrides, seed)
    if name == "ride":
        return RIDE(_apply(RIDEConfig.for_dataset(dataset), overrides, name), shape=shape, seed=seed, device=device)
    if models is None:
        raise DefbenchError(
            f"defense {name} projects onto a trained GAN prior: build it with defbench.harness.models.build_defense "
            "(its models from the zoo) or pass models="
        )
    tag = str(overrides.pop("gan", ""))  # a GAN replica of the zoo: gan-<dataset>-<preset>-<tag>
    cfg = _apply(PAPER_CONFIGS[name], overrides, name)
    G, D, gman = models.get_gan(dataset, preset, device, data_root, train_missing, progress, tag=tag)
    enc, eman = None, {}
    if cfg.init == "encoder" or name == "invgan":
        enc, eman = models.get_encoder(dataset, preset, device, data_root, train_missing, progress, tag=tag)
    d = GANPriorDefense(name, G, D, enc, cfg, shape=shape, seed=seed)
    # the models are part of the configuration: a retrained GAN never reuses stored results of the old one
    d.models = {
        k: f"{m.get('id', '?')}@{str(m.get('sha256', ''))[:10]}" for k, m in (("gan", gman), ("encoder", eman)) if m
    }
    return d


def check_options(name: str, dataset: str = "fmnist", overrides: dict[str, Any] | None = None) -> None:
    """Every check :func:`build_defense` makes on a built-in defense's options (names, types, ranges, choices,
    combinations), without a trained model, for a command to run before any work or file: a defense without a GAN
    prior is built (cheaply) and dropped, a GAN-prior defense's configuration alone is. A plugin's options are
    its constructor's, checked when the run builds it."""
    base, inline = split_variant(name)
    if base in GAN_DEFENSES:
        opts = {k: v for k, v in {**(overrides or {}), **inline}.items() if k != "gan"}  # the tag: checked by the CLI
        _apply(PAPER_CONFIGS[base], opts, base)
    elif base in DEFENSES:
        build_defense(name, dataset, overrides=overrides)


def _kw(overrides: dict, cls: type, allowed: tuple[str, ...], name: str) -> dict:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise DefbenchError(f"unknown option(s) {', '.join(unknown)} for defense {name}; valid: {', '.join(allowed)}")
    return _check_types(overrides, typing.get_type_hints(cls.__init__), name)


def _build_plugin(name: str, dataset: str, shape, device, overrides: dict, seed: int) -> Defense:
    """A plugin defense: ``cls(shape=..., seed=..., **options)``, plus ``dataset`` and ``device`` where its
    constructor takes them (or ``**kwargs``). Options it does not take are a one-line error naming its
    distribution."""
    import inspect

    cls = plugins()[name]
    dist, version = distribution_of(cls) or ("?", "?")
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs: dict[str, Any] = {"shape": shape, "seed": seed}
    for k, v in (("dataset", dataset), ("device", device)):
        if k in params or takes_any:
            kwargs[k] = v
    named = [p for p in params if p not in ("self", "shape", "seed", "dataset", "device")]
    unknown = sorted(k for k in overrides if k not in params or k in ("self", "shape", "seed"))
    if unknown and not takes_any:
        raise DefbenchError(
            f"unknown option(s) {', '.join(unknown)} for defense plugin {name!r} (distribution {dist} {version}); "
            f"valid: {', '.join(named) or 'none'}"
        )
    try:
        d = cls(**kwargs, **overrides)
    except DefbenchError:
        raise
    except Exception as exc:
        raise DefbenchError(
            f"defense plugin {name!r} (distribution {dist} {version}) failed to build: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        ) from None
    if not isinstance(d, Defense):
        raise DefbenchError(f"defense plugin {name!r} (distribution {dist} {version}) did not build a Defense")
    return d
