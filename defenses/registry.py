"""Defenses by name, with paper defaults and overridable hyperparameters.

``build_defense("mimicgan", "fmnist", overrides={"latent_steps": 5})`` returns a ready defense; the trained
models it needs (G, D, encoder) come from the zoo, trained on demand when missing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from defbench import DefbenchError
from defbench.defenses.base import Defense, NoDefense
from defbench.defenses.baselines import MedianFilter, TVMinimization
from defbench.defenses.gan_prior import PAPER_CONFIGS, GANPriorDefense
from defbench.defenses.ride import RIDE, RIDEConfig
from defbench.harness.data import SHAPES, canonical_name

DEFENSES = ("none", "defensegan", "cowboy", "invgan", "mimicgan", "ride", "median", "tvm")
GAN_DEFENSES = ("defensegan", "cowboy", "invgan", "mimicgan")


def check_name(name: str) -> str:
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"defensegan": "defensegan", "nodefense": "none", "tv": "tvm", "medianfilter": "median"}
    key = aliases.get(key, key)
    if key not in DEFENSES:
        raise DefbenchError(f"unknown defense {name!r}; choose one of: {', '.join(DEFENSES)}")
    return key


def load_json_object(path: str) -> dict[str, Any]:
    """A JSON config file holding one object, or a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise DefbenchError(f"config file {path} not found")
    try:
        loaded = json.loads(p.read_text())
    except ValueError as exc:
        raise DefbenchError(f"config file {path} is not valid JSON ({exc})") from None
    if not isinstance(loaded, dict):
        raise DefbenchError(f"config file {path} must hold a JSON object")
    return loaded


def parse_overrides(pairs: list[str] | None = None, config_file: str | None = None) -> dict[str, Any]:
    """key=value pairs (values parsed as JSON when they can be) over a JSON config file's keys."""
    out: dict[str, Any] = load_json_object(config_file) if config_file else {}
    for pair in pairs or []:
        if "=" not in pair:
            raise DefbenchError(f"defense option {pair!r} must look like key=value")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _apply(cfg, overrides: dict[str, Any], name: str):
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise DefbenchError(f"unknown option(s) {', '.join(unknown)} for defense {name}; valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(cfg, **overrides)


def build_defense(name: str, dataset: str = "fmnist", preset: str = "paper", device="cpu",
                  overrides: dict[str, Any] | None = None, seed: int = 0, data_root=None,
                  train_missing: bool = True, progress: bool = True) -> Defense:
    name = check_name(name)
    dataset = canonical_name(dataset)
    overrides = dict(overrides or {})
    shape = SHAPES[dataset]
    if name == "none":
        if overrides:
            raise DefbenchError("defense none takes no options")
        return NoDefense(shape, seed)
    if name == "median":
        return MedianFilter(shape=shape, seed=seed, **_kw(overrides, ("kernel_size",), name))
    if name == "tvm":
        return TVMinimization(shape=shape, seed=seed, **_kw(overrides, ("weight", "method"), name))
    if name == "ride":
        return RIDE(_apply(RIDEConfig(), overrides, name), shape=shape, seed=seed, device=device)
    from defbench.harness.models import get_encoder, get_gan

    cfg = _apply(PAPER_CONFIGS[name], overrides, name)
    G, D, _ = get_gan(dataset, preset, device, data_root, train_missing, progress)
    enc = None
    if cfg.init == "encoder" or name == "invgan":
        enc, _ = get_encoder(dataset, preset, device, data_root, train_missing, progress)
    return GANPriorDefense(name, G, D, enc, cfg, shape=shape, seed=seed)


def _kw(overrides: dict, allowed: tuple[str, ...], name: str) -> dict:
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise DefbenchError(f"unknown option(s) {', '.join(unknown)} for defense {name}; valid: {', '.join(allowed)}")
    return overrides
