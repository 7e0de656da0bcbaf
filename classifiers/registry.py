"""Classifiers by name: ``zoo`` (the paper classifier of the dataset and preset from the model zoo, trained on
demand) plus every plugin registered under the entry-point group ``defbench.classifiers``.

Plugin contract: a package declares, in its pyproject.toml::

    [project.entry-points."defbench.classifiers"]
    mynet = "mypkg.models:MyNet"

where ``MyNet`` subclasses :class:`defbench.classifiers.ClassifierPlugin`, sets its own ``name = "mynet"`` (the
entry point's name) and ``datasets``, and implements ``load(dataset, device) -> nn.Module``. Once installed,
``defbench matrix --classifier mynet`` and ``defbench.evaluate("mynet", ...)`` evaluate it like the zoo's.

The refusal rules (no name of its own, a name that differs from the entry point's, shadowing ``zoo`` or another
plugin) and the skipping of plugins that fail to import are those of :mod:`defbench.plugins`. A classifier that
does not support the dataset, fails to load, or returns something other than finite logits of the dataset's
classes is a one-line error naming its distribution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from defbench import DefbenchError
from defbench.classifiers.base import ClassifierPlugin, with_features
from defbench.datasets import NUM_CLASSES, SHAPES, canonical_name
from defbench.plugins import PluginKind

#: the built-in choice: the zoo's classifier (built by ``defbench.harness.models.get_classifier``)
ZOO = "zoo"


class ZooClassifier(ClassifierPlugin):
    """The paper classifier of the dataset and preset from the model zoo (trained on demand; ImageNet:
    torchvision's ResNet-50). The runner builds it from the zoo, not through :meth:`load`."""

    name = ZOO
    datasets = tuple(SHAPES)


BUILTIN: dict[str, type[ClassifierPlugin]] = {ZOO: ZooClassifier}
ENTRY_POINT_GROUP = "defbench.classifiers"
PLUGINS = PluginKind("classifier", ENTRY_POINT_GROUP, ClassifierPlugin, BUILTIN)
plugins = PLUGINS.plugins  # the plugin classifiers by name
available = PLUGINS.available  # every classifier by name: ``zoo``, then the plugins
distribution_of = PLUGINS.distribution_of  # (distribution, version) of a plugin; None for a built-in


def check_name(name: str) -> str:
    """The classifier's name (``zoo`` in any case; a plugin's as written), or a one-line error listing the
    choices."""
    text = str(name).strip()
    if text.lower() == ZOO:
        return ZOO
    table = available()
    if text not in table:
        raise PLUGINS.unknown(name, table)
    return text


def supported_datasets(cls: type[ClassifierPlugin]) -> tuple[str, ...]:
    """The plugin's ``datasets`` in defbench's names (aliases such as ``fashion-mnist`` resolved)."""
    out = []
    for d in cls.datasets or ():
        try:
            out.append(canonical_name(str(d)))
        except DefbenchError:
            out.append(str(d))
    return tuple(dict.fromkeys(out))


def load_plugin(name: str, dataset: str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model, identity) of plugin classifier ``name`` on ``dataset``: the module it loads (in eval mode, on
    ``device``, with ``features``/``head``), checked on two images of the dataset's shape, and the identity its
    cells record: ``{"name", "distribution", "version", "config"}`` (the runner adds the weights' sha256)."""
    name, dataset, device = check_name(name), canonical_name(dataset), torch.device(device)
    if name == ZOO:
        raise DefbenchError("the zoo classifier is built by the runner (defbench.harness.models.get_classifier)")
    cls = plugins()[name]
    dist, version = distribution_of(cls) or ("?", "?")
    who = f"classifier plugin {name!r} (distribution {dist} {version})"
    supported = supported_datasets(cls)
    if dataset not in supported:
        raise DefbenchError(f"{who} supports {', '.join(supported) or 'no dataset'}, not {dataset}")

    def failed(what: str, exc: Exception) -> DefbenchError:
        return DefbenchError(f"{who} {what}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")

    try:
        plugin = cls()
        model = plugin.load(dataset, device)
        config = plugin.config()
    except DefbenchError:
        raise
    except Exception as exc:
        raise failed("failed to load", exc) from None
    if not isinstance(model, nn.Module):
        raise DefbenchError(f"{who} loaded a {type(model).__name__}, not a torch.nn.Module")
    if not isinstance(config, dict):
        raise DefbenchError(f"{who}: config() returned a {type(config).__name__}, not a dict")
    model = with_features(model).to(device).eval()
    probe_classifier(model, dataset, who)
    identity = {"name": name, "distribution": dist, "version": version, "config": config}
    return model, identity


def probe_classifier(model: nn.Module, dataset: str, who: str) -> None:
    """Refuse (a DefbenchError naming ``who``) a classifier (in eval mode, with ``features``/``head``) that on two
    images of the dataset's shape fails, returns anything but finite (N, classes) logits, or whose
    ``head(features(x))`` (what the harness scores: one feature pass gives the prediction and the detection
    score) is not its ``forward(x)`` (what the attacks differentiate): a forward that normalises before
    ``features`` would be attacked as one model and scored as another."""
    shape, classes = SHAPES[dataset], NUM_CLASSES[dataset]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.linspace(0, 1, 2 * int(torch.tensor(shape).prod()), device=device).view(2, *shape)
    try:
        with torch.no_grad():
            logits = model(x)
            composed = model.head(model.features(x)) if isinstance(logits, torch.Tensor) else None
    except Exception as exc:
        raise DefbenchError(
            f"{who} fails on two {dataset} images of shape {shape}: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}"
        ) from None
    want = (2, classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != want or not bool(torch.isfinite(logits).all()):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise DefbenchError(
            f"{who} must map (N, {', '.join(map(str, shape))}) images in [0, 1] to finite (N, "
            f"{classes}) logits on {dataset}; for 2 images it returned {got}"
            + ("" if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != want else " with non-finite values")
        )
    same = isinstance(composed, torch.Tensor) and composed.shape == logits.shape
    if not (same and torch.allclose(composed.to(logits.dtype), logits, rtol=1e-4, atol=1e-5)):
        raise DefbenchError(
            f"{who}: head(features(x)) is not forward(x) on two {dataset} images (the harness scores the first, the "
            "attacks differentiate the second); make forward(x) = head(features(x)), or drop features/head "
            "(the logits then serve as features)"
        )
