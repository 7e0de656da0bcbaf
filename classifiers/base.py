"""The classifier contract: what a classifier plugin (entry-point group ``defbench.classifiers``) provides, and the
wrapper that gives any logits model the ``features``/``head`` split the runner uses.

A plugin is a user's architecture with a loader for their weights::

    class MyNet(ClassifierPlugin):
        name = "mynet"                      # equal to the entry point's name
        datasets = ("mnist", "fmnist")      # the datasets its weights were trained on

        def load(self, dataset, device):    # an nn.Module mapping [0, 1] images to logits
            model = build_my_net()
            model.load_state_dict(torch.load(weights_path(dataset), weights_only=True))
            return model

Its cells are keyed by the sha256 of the loaded module's weights (its state dict), ``config()`` and the
plugin's distribution name and version, so other weights or another release never reuse its cells.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class ClassifierPlugin:
    """Base class of classifier plugins. Subclasses set ``name`` and ``datasets`` and implement :meth:`load`;
    the constructor takes no arguments."""

    name: ClassVar[str] = ""
    #: the datasets (``fmnist``, ``mnist``, ``cifar10``, ``imagenet``) the classifier can be evaluated on
    datasets: ClassVar[tuple[str, ...]] = ()

    def load(self, dataset: str, device: torch.device) -> nn.Module:
        """The classifier of ``dataset`` on ``device``: any ``nn.Module`` mapping (N, C, H, W) images in [0, 1] to
        (N, classes) logits. With ``features(x)`` and ``head(z)`` methods (``head(features(x))`` = the logits),
        InvGAN's detection score uses ``features``; otherwise the logits serve as Φ."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Settings beside the weights that change the classifier's outputs (recorded with every cell)."""
        return {}


class LogitFeatures(nn.Module):
    """A classifier without ``features``/``head``: its logits serve as Φ for the InvGAN detection score."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)

    def features(self, x):
        return self.model(x)

    def head(self, z):
        return z


def with_features(model: nn.Module) -> nn.Module:
    """``model`` itself when it has ``features`` and ``head``, else wrapped in :class:`LogitFeatures`."""
    if callable(getattr(model, "features", None)) and callable(getattr(model, "head", None)):
        return model
    return LogitFeatures(model)
