"""The interface every defense implements, and the adaptive-attack hooks built on it.

A defense maps a batch x in [0, 1] of shape (N, C, H, W) to a purified x̂ of the same shape (``purify``).
It declares whether it is ``randomized`` (adaptive attacks then need EOT) and ``batch_coupled`` (the
purification of one image depends on its batch-mates, as MimicGAN's shared surrogate makes it). A defense is
``randomized`` exactly when its output depends on the seed of the call: every random draw of ``_purify``
(restarts, initialisations, noise) comes from that seed and from nothing else, never from a call counter or
from what ran before, so a cell's result does not depend on which cells ran before it (tests/test_randomness.py
checks the declaration of every registered defense).

Hooks for adaptive attacks, all differentiable:
  * ``bpda(x)``: forward = purify(x), backward = the gradient of ``stand_in(x)`` (identity by default;
    BPDA, Athalye et al. 2018);
  * ``reparameterize(x)``: x ↦ G(I(x)) for defenses with an encoder (InvGAN §3.4), else None.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, is_dataclass
from typing import Any

import torch

from defbench import DefbenchError
from defbench.seeding import derive_seed  # noqa: F401 -- in the core; re-exported where it always was


def check_images(x: torch.Tensor, shape: tuple[int, int, int] | None, who: str) -> None:
    """Clear errors for input a defense must not silently accept."""
    if not isinstance(x, torch.Tensor):
        raise DefbenchError(f"{who}: expected a torch.Tensor batch, got {type(x).__name__}")
    if x.dim() != 4:
        raise DefbenchError(f"{who}: expected a batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise DefbenchError(f"{who}: expected images of shape {tuple(shape)} (C, H, W), got {tuple(x.shape[1:])}")
    if x.shape[0] == 0:
        raise DefbenchError(f"{who}: empty batch (0 images); pass at least one image")
    if not torch.isfinite(x).all():
        raise DefbenchError(f"{who}: input contains NaN or infinite values")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DefbenchError(f"{who}: pixel values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")


def checked_output(out: Any, x: torch.Tensor, who: str) -> torch.Tensor:
    """A purification's output as a tensor of x's shape and dtype; a DefbenchError naming ``who`` for anything
    else: not a tensor, another shape, not floating point, or NaN/inf values (the clamp that follows keeps NaN,
    and an argmax of NaN logits reads as class 0: a silent accuracy number)."""
    if not isinstance(out, torch.Tensor):
        raise DefbenchError(f"{who} returned {type(out).__name__}, not a torch.Tensor")
    if out.shape != x.shape:
        raise DefbenchError(f"{who} returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
    if not out.is_floating_point():
        raise DefbenchError(f"{who} returned {out.dtype} values, not floating-point images")
    bad = int((~torch.isfinite(out.detach())).flatten(1).any(1).sum())
    if bad:
        raise DefbenchError(f"{who} returned NaN or infinite values in {bad} of {len(out)} images")
    return out.to(x.dtype)


class Defense:
    """Base class. Subclasses implement ``_purify(x, seed)``; everything else has a sensible default."""

    name = "base"
    randomized = False
    batch_coupled = False

    def __init__(self, shape: tuple[int, int, int] | None = None, seed: int = 0):
        self.shape = shape
        self.seed = seed

    # ---- what subclasses provide
    def _purify(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The effective configuration (recorded with every result)."""
        return {}

    # ---- public API
    def purify(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """Purified x̂ (same shape, detached). ``seed`` fixes every random draw of this call; None means the
        defense's own ``seed``. There is no hidden state: the same (x, seed) always gives the same x̂, so a caller
        that wants fresh draws of a randomized defense (EOT, repeated evaluation) passes fresh seeds, derived
        from where it is (see :func:`derive_seed`), never from how often it has been called."""
        check_images(x, self.shape, f"defense {self.name}")
        if seed is None:
            seed = self.seed
        with torch.enable_grad():  # a copy: a defense that writes into its input never changes the caller's batch
            out = self._purify(x.detach().clone(), seed)
        return checked_output(out, x, f"defense {self.name}").detach().clamp(0, 1)

    def purify_autograd(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """purify(x) *without* detaching: the defense's own autograd graph, which is what a naive white-box
        attack differentiates (the shattered-gradient check measures it). A purification that leaves autograd
        (numpy, in-place latent optimisation, no_grad) returns a tensor that does not require grad, or raises."""
        check_images(x.detach(), self.shape, f"defense {self.name}")
        with torch.enable_grad():
            out = self._purify(x, self.seed if seed is None else seed)
        # clamp as purify does, but straight through: torch's clamp has a zero gradient at 0 and 1 themselves,
        # which would count every black background pixel of the input as a shattered gradient
        return out + (out.clamp(0, 1) - out).detach()

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable approximation used for the backward pass of BPDA (identity by default)."""
        return x

    def bpda(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """purify(x) in the forward pass, the gradient of stand_in(x) in the backward pass."""
        approx = self.stand_in(x)
        return approx + (self.purify(x, seed) - approx).detach()

    def reparameterize(self, x: torch.Tensor) -> torch.Tensor | None:
        return None

    @property
    def has_reparameterization(self) -> bool:
        return False

    def config_hash(self) -> str:
        import json

        blob = json.dumps({"name": self.name, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class NoDefense(Defense):
    name = "none"

    def _purify(self, x, seed):
        return x

    def purify(self, x, seed=None):
        check_images(x, self.shape, "defense none")
        return x.detach()


def config_dict(cfg) -> dict:
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)
