"""The attack interface. Built-in attacks wrap torchattacks, foolbox and ART; plugins subclass
:class:`Attack` and register under the entry-point group ``defbench.attacks``.

An attack is constructed for a dataset (which fixes the papers' default ε) and called on a *model* — any
``nn.Module`` mapping images in [0, 1] to logits. Threat models compose by handing the same attack a
different model (classifier, classifier ∘ BPDA(defense), classifier ∘ G ∘ I, ...), see
:mod:`defbench.attacks.threats`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from defbench import DefbenchError
from defbench.limits import MAX_STEPS
from defbench.plugins import distribution_of as plugin_distribution

#: ℓ∞ ε in pixel units used by the papers: InvGAN FGSM 0.3 on MNIST/Fashion-MNIST, 8/255 on CIFAR-10;
#: RIDE uses 0.05 on ImageNet.
DEFAULT_EPS = {"fmnist": 0.3, "mnist": 0.3, "cifar10": 8 / 255, "imagenet": 0.05}
#: slack of the output checks: float rounding of x + δ, never a real excursion
EPS_TOL = 1e-6
RANGE_TOL = 1e-6
OUTPUT_CHECKS = ("error", "warn")
#: keyword options every attack takes besides its own ``defaults`` (``--attack-opt NAME:KEY=VALUE``)
COMMON_OPTIONS: dict[str, Any] = {"output_check": "error", "labels": "true"}
#: which labels the attack is handed: the true ones, or the model's own predictions on the clean input
#: (cleverhans' default when no y is given, as the MimicGAN paper's attacks ran)
LABELS = ("true", "predicted")
NORMS = ("linf", "l2")


class Attack:
    """Base class of every attack.

    Subclasses set ``name`` (registry key), ``family``, ``iterative``, ``bounded`` and implement
    :meth:`run`. Arguments: ``dataset`` (fixes defaults), ``eps`` (ℓ∞ budget in [0, 1] pixel units, for
    bounded attacks; None = the paper default), plus attack-specific keyword parameters.

    Shape: ``attack(model, x, y)`` takes x of shape (N, C, H, W) in [0, 1] and int64 labels (N,), and
    returns x_adv of the same shape in [0, 1].

    Output checks (AutoAttack's): before ``__call__`` hands x_adv on, it checks, on what ``run`` returned and
    before any clamping, that x_adv is finite, lies in [0, 1] (up to ``RANGE_TOL`` of float rounding) and,
    for a bounded attack, that ‖x_adv − x‖ ≤ ε + ``EPS_TOL`` per image in the attack's ``norm`` ('linf' or
    'l2'). With ``output_check = 'error'`` (the default) a violation raises a one-line
    :class:`DefbenchError` naming the attack (a built-in) or the plugin's distribution. With
    ``output_check = 'warn'`` (a class attribute of a plugin, or the keyword ``output_check='warn'``, e.g.
    ``--attack-opt NAME:output_check=warn``) the output is projected back instead (NaN/inf -> the clean
    pixel, clipped into [0, 1] and the ε-ball) and each violation is recorded as a dict in
    ``last_violations`` (this call) and ``violations`` (every call of this instance), for the runner to put
    in the cell's ``extra`` and for the reports to flag. The harness never relies on ``__call__`` alone: it scores
    what :func:`perturb` returns, which hands the attack a copy of x and runs these checks of the base class again
    against the clean batch it kept (an attack that writes into its input, or overrides ``__call__`` or
    ``check_output``, cannot skip them).

    Labels: ``labels='true'`` (default) attacks the true labels; ``labels='predicted'`` (``--attack-opt
    NAME:labels=predicted``) attacks the model's own prediction on the clean input, as cleverhans does when
    no ``y`` is given. Accuracy is always measured against the true labels.
    """

    name: ClassVar[str] = "attack"
    label_name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    iterative: ClassVar[bool] = False
    bounded: ClassVar[bool] = True
    #: the norm of the ε-ball of a bounded attack: 'linf' or 'l2'
    norm: ClassVar[str] = "linf"
    defaults: ClassVar[dict[str, Any]] = {}
    #: parameters added after stores were written: left out of :meth:`config` (the store key) at these values, so
    #: cells stored before the parameter existed keep their key
    key_stable: ClassVar[dict[str, Any]] = {}
    #: 'error' (refuse an output that fails the checks) or 'warn' (project it back and record the violation)
    output_check: ClassVar[str] = "error"

    def __init__(
        self,
        dataset: str = "fmnist",
        eps: float | None = None,
        *,
        output_check: str | None = None,
        labels: str = "true",
        **params: Any,
    ):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise DefbenchError(
                f"unknown parameter(s) {', '.join(unknown)} for attack {self.name}; "
                f"valid: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        mode = output_check if output_check is not None else type(self).output_check
        if mode not in OUTPUT_CHECKS:
            raise DefbenchError(
                f"output_check {mode!r} for attack {self.name} must be one of: {', '.join(OUTPUT_CHECKS)}"
            )
        if self.norm not in NORMS:
            raise DefbenchError(f"{self.who} declares norm {self.norm!r}; choose one of: {', '.join(NORMS)}")
        self.output_check = mode
        if labels not in LABELS:
            raise DefbenchError(f"labels {labels!r} for attack {self.name} must be one of: {', '.join(LABELS)}")
        self.labels = labels
        #: violations of the output checks found by the last ``__call__`` (only under output_check='warn';
        #: under 'error' the first one raises), and by every call of this instance
        self.last_violations: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
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

    @property
    def prepare_images(self) -> int | None:
        """How many of the cell's first images :meth:`prepare` is handed (all of them where the cell has fewer);
        None (the default): the cell's first batch."""
        return None

    def prepare(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called once per evaluation cell with its model and first images (:attr:`prepare_images` of them, or its
        first batch), before any ``__call__``; attacks that fit something across images (universal
        perturbations) do it here. Default: nothing."""

    # --------------------------------------------------------------- public API
    def attack_labels(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The labels the attack is handed for images ``x`` with true labels ``y``: ``y``, or with
        ``labels='predicted'`` the model's predictions on ``x``. :meth:`__call__` and the fit of :meth:`prepare`
        (the matrix calls it with these) both read them."""
        if self.labels != "predicted":
            return y
        with torch.no_grad():
            return model(x).argmax(1)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model.eval()
        y = self.attack_labels(model, x, y)
        x_adv = _as_output(self, x, self.run(model, x.clone(), y))  # a run that writes into x cannot hide it
        self.last_violations = self.check_output(x, x_adv)
        return settle_output(self, x, x_adv, self.last_violations)

    def check_output(self, x: torch.Tensor, x_adv: torch.Tensor) -> list[dict[str, Any]]:
        """AutoAttack-style checks of an attack's raw output against its clean input: one dict per failed
        check, with keys ``check`` ('finite' | 'range' | 'linf' | 'l2'), ``images`` (how many of the batch
        fail it), ``batch`` (the batch size), ``worst`` (the worst value found) and ``message`` (one line)."""
        out = image_violations(x, x_adv)
        if self.bounded and self.eps is not None:
            n = x.shape[0]
            xa = torch.where(torch.isfinite(x_adv), x_adv, x)  # the budget on the finite values
            dist = _norm(xa - x, self.norm)
            bad = dist > self.eps + EPS_TOL
            if bad.any():
                sym = "ℓ∞" if self.norm == "linf" else "ℓ2"
                out.append(
                    {
                        "check": self.norm,
                        "images": int(bad.sum()),
                        "batch": n,
                        "worst": round(float(dist.max()), 6),
                        "message": f"returned perturbations beyond its budget in {int(bad.sum())} of {n} images "
                        f"({sym} distance up to {float(dist.max()):.4g} > ε = {self.eps:g})",
                    }
                )
        return out

    def project_output(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """x_adv made valid: NaN/inf -> the clean pixel, clipped into [0, 1], then into the ε-ball of a
        bounded attack (for ℓ∞ the two clips are the exact projection onto their intersection; for ℓ2 the
        scaling toward x stays inside [0, 1])."""
        xa = torch.where(torch.isfinite(x_adv), x_adv, x).clamp(0, 1)
        if self.bounded and self.eps is not None:
            if self.norm == "linf":
                xa = (x + (xa - x).clamp(-self.eps, self.eps)).clamp(0, 1)
            else:
                d = xa - x
                scale = (self.eps / _norm(d, "l2").clamp_min(1e-12)).clamp(max=1.0)
                xa = x + d * scale.view(-1, *([1] * (d.dim() - 1)))
        return xa

    @property
    def distribution(self) -> tuple[str, str] | None:
        """(distribution name, version) of a plugin attack; None for a built-in."""
        return plugin_distribution(type(self))

    @property
    def who(self) -> str:
        """How errors name the attack: ``attack 'pgd'`` or ``attack plugin 'x' (distribution pkg 1.0)``."""
        dist = self.distribution
        if dist is None:
            return f"attack {self.name!r}"
        return f"attack plugin {self.name!r} (distribution {dist[0]} {dist[1]})"

    @property
    def label(self) -> str:
        base = self.label_name or self.name.upper()
        return f"{base} (predicted labels)" if getattr(self, "labels", "true") == "predicted" else base

    def config(self) -> dict[str, Any]:
        """The attack's identity in the store: a plugin's distribution name and version are part of it, so
        that a new release of a plugin never reuses the cells of the old one."""
        cfg = {
            "name": self.name,
            "label": self.label,
            "family": self.family or self.name,
            "iterative": self.iterative,
            "bounded": self.bounded,
            "eps": self.eps,
            "alpha": self.params.get("alpha"),
            "params": {k: v for k, v in self.params.items() if k not in self.key_stable or v != self.key_stable[k]},
        }
        if self.bounded and self.norm != "linf":
            cfg["norm"] = self.norm
        if self.output_check != "error":
            cfg["output_check"] = self.output_check
        if self.labels != "true":
            cfg["labels"] = self.labels
        dist = self.distribution
        if dist is not None:
            cfg["plugin"] = {"distribution": dist[0], "version": dist[1]}
        return cfg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps}, {self.params})"


def image_violations(x: torch.Tensor, x_adv: torch.Tensor) -> list[dict[str, Any]]:
    """The checks of :meth:`Attack.check_output` that need no budget: x_adv finite, and in [0, 1] up to
    ``RANGE_TOL`` (non-finite pixels are judged by the first check only)."""
    out: list[dict[str, Any]] = []
    n = x.shape[0]
    bad = ~torch.isfinite(x_adv).flatten(1).all(1)
    if bad.any():
        out.append(
            {
                "check": "finite",
                "images": int(bad.sum()),
                "batch": n,
                "worst": None,
                "message": f"returned NaN or infinite values in {int(bad.sum())} of {n} images",
            }
        )
    xa = torch.where(torch.isfinite(x_adv), x_adv, x)
    lo, hi = xa.flatten(1).min(1).values, xa.flatten(1).max(1).values
    bad = (lo < -RANGE_TOL) | (hi > 1 + RANGE_TOL)
    if bad.any():
        out.append(
            {
                "check": "range",
                "images": int(bad.sum()),
                "batch": n,
                "worst": [round(float(lo.min()), 6), round(float(hi.max()), 6)],
                "message": f"returned pixel values outside [0, 1] in {int(bad.sum())} of {n} images "
                f"(range [{float(lo.min()):.4g}, {float(hi.max()):.4g}])",
            }
        )
    return out


def perturb(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``attack(model, x, y)`` as the harness scores it: every path that scores an attack's output (the runner's
    threat models, the API, a Ray worker) calls this, not the attack. The attack is handed a copy of x, and its
    output is checked against the clean batch kept here by :class:`Attack`'s own checks (not by methods a plugin
    may override): an attack that writes into its input, or overrides ``__call__`` or ``check_output``, meets
    the same checks as any other, with the same ``output_check`` outcome (refused, or projected back and
    recorded). Returns x_adv in [0, 1]."""
    attack.last_violations = []
    x_adv = _as_output(attack, x, attack(model, x.clone(), y))
    found = Attack.check_output(attack, x, x_adv)  # nothing after a correct Attack.__call__: it projected already
    attack.last_violations = [*attack.last_violations, *found]
    return settle_output(attack, x, x_adv, found)


def check_positive(
    attack: Attack, key: str, *, whole: bool = False, most: float | None = None, zero: bool = False
) -> None:
    """Refuse ``attack.params[key]`` (a DefbenchError naming the attack) unless it is a finite number > 0 (>= 0
    with ``zero``), not a bool: a whole number >= 1 with ``whole`` (a step count, at most
    :data:`~defbench.limits.MAX_STEPS`; >= 0 with ``zero`` too, e.g. a seed, below 2**32; a whole float becomes an
    int), at most ``most`` where given. None passes for an option whose default is None (derived from ε or the
    dataset, or drawn)."""
    v = attack.params[key]
    if v is None and attack.defaults.get(key) is None:
        return
    number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if whole:
        least, top = (0, 2**32 - 1) if zero else (1, MAX_STEPS)
        if not (number and float(v).is_integer() and v >= least):
            raise DefbenchError(f"{attack.who}: {key} must be a whole number >= {least}, got {v!r}")
        if v > top:
            raise DefbenchError(f"{attack.who}: {key} must be at most {top:,}, got {v!r}")
        attack.params[key] = int(v)
    elif not (number and (v >= 0 if zero else v > 0) and v <= (math.inf if most is None else most)):
        if most is not None:
            kind = f"a number in {'[0' if zero else '(0'}, {most:g}]"
        else:
            kind = "a number >= 0" if zero else "a positive number"
        raise DefbenchError(f"{attack.who}: {key} must be {kind}, got {v!r}")


def _as_output(attack: Attack, x: torch.Tensor, x_adv: Any) -> torch.Tensor:
    """x_adv detached, on x's device and dtype; a DefbenchError naming the attack unless it is a tensor of x's shape."""
    if not isinstance(x_adv, torch.Tensor):
        raise DefbenchError(f"{attack.who} returned {type(x_adv).__name__}, not a torch.Tensor")
    x_adv = x_adv.detach()
    if x_adv.shape != x.shape:
        raise DefbenchError(f"{attack.who} returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
    return x_adv.to(device=x.device, dtype=x.dtype)


def settle_output(
    attack: Attack, x: torch.Tensor, x_adv: torch.Tensor, found: list[dict[str, Any]], who: str = ""
) -> torch.Tensor:
    """x_adv after the checks that ``found`` these violations: refused (a one-line DefbenchError naming ``who``,
    default the attack) unless the attack's ``output_check`` is 'warn', then projected back and added to its
    ``violations``."""
    if found:
        if attack.output_check != "warn":
            msg = "; ".join(v["message"] for v in found)
            raise DefbenchError(
                f"{who or attack.who} {msg}: output refused (output_check='warn' projects it back "
                "and flags the cell instead)"
            )
        attack.violations += found
        x_adv = Attack.project_output(attack, x, x_adv)
    return x_adv.clamp(0, 1)  # removes float rounding within RANGE_TOL only: larger excursions failed above


def _norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().max(1).values if norm == "linf" else flat.norm(dim=1)


def keep_adversarial(
    x: torch.Tensor, x_adv: torch.Tensor, success: torch.Tensor, zero_placeholder: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """For minimal-perturbation attacks: x_adv where the attack succeeded, the clean image where it failed.

    ``success`` is the library's own per-image verdict (misclassified by the attacked model). With ``zero_placeholder``
    an all-zero output of a non-zero input also counts as a failure (foolbox's CW starts its best adversarial
    at zeros and returns that placeholder for inputs it never broke). Returns (images, failed mask)."""
    failed = ~success.to(device=x.device, dtype=torch.bool).view(-1)
    if zero_placeholder:
        failed |= (x_adv.flatten(1) == 0).all(1) & ~(x.flatten(1) == 0).all(1)
    mask = failed.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x, x_adv.to(x.dtype)), failed


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
