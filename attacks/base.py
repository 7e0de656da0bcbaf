"""The attack interface. Built-in attacks wrap torchattacks, foolbox and ART; plugins subclass
:class:`Attack` and register under the entry-point group ``defbench.attacks``.

An attack is constructed for a dataset (which fixes the papers' default ε) and called on a *model* — any
``nn.Module`` mapping images in [0, 1] to logits. Threat models compose by handing the same attack a
different model (classifier, classifier ∘ BPDA(defense), classifier ∘ G ∘ I, ...), see
:mod:`defbench.attacks.threats`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from defbench import DefbenchError

#: ℓ∞ ε in pixel units used by the papers: InvGAN FGSM 0.3 on MNIST/Fashion-MNIST, 8/255 on CIFAR-10;
#: RIDE uses 0.05 on ImageNet.
DEFAULT_EPS = {"fmnist": 0.3, "mnist": 0.3, "cifar10": 8 / 255, "imagenet": 0.05}


class Attack:
    """Base class of every attack.

    Subclasses set ``name`` (registry key), ``family``, ``iterative``, ``bounded`` and implement
    :meth:`run`. Arguments: ``dataset`` (fixes defaults), ``eps`` (ℓ∞ budget in [0, 1] pixel units, for
    bounded attacks; None = the paper default), plus attack-specific keyword parameters.

    Shape: ``attack(model, x, y)`` takes x of shape (N, C, H, W) in [0, 1] and int64 labels (N,), and
    returns x_adv of the same shape in [0, 1].
    """

    name: ClassVar[str] = "attack"
    label_name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    iterative: ClassVar[bool] = False
    bounded: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, dataset: str = "fmnist", eps: float | None = None, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise DefbenchError(f"unknown parameter(s) {', '.join(unknown)} for attack {self.name}; "
                                f"valid: {', '.join(sorted(self.defaults)) or 'none'}")
        self.dataset = dataset
        if eps is None and self.bounded:
            eps = DEFAULT_EPS.get(dataset, 0.3)
        if eps is not None and not 0.0 <= float(eps) <= 1.0:
            raise DefbenchError(f"epsilon {eps} for attack {self.name} is outside [0, 1] (pixel units)")
        self.eps = None if eps is None else float(eps)
        self.params = {**self.defaults, **params}

    # --------------------------------------------------------------- subclass API
    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called once per evaluation cell with its model and first batch, before any ``__call__``;
        attacks that fit something across images (universal perturbations) do it here. Default: nothing."""

    # --------------------------------------------------------------- public API
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model.eval()
        x_adv = self.run(model, x, y).detach()
        if x_adv.shape != x.shape:
            raise DefbenchError(f"attack {self.name} returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
        return x_adv.clamp(0, 1)

    @property
    def label(self) -> str:
        base = self.label_name or self.name.upper()
        return base

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "family": self.family or self.name,
                "iterative": self.iterative, "bounded": self.bounded, "eps": self.eps,
                "alpha": self.params.get("alpha"), "params": self.params}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, {self.params})"


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
