"""Universal perturbations — Moosavi-Dezfooli et al., "Universal adversarial perturbations" (CVPR 2017).

Two variants:

* ``universal-fgsm`` — the MimicGAN recipe (§4.3): the mean FGSM perturbation ν = (1/N) Σᵢ (x̃ᵢ − xᵢ) over
  N = 15 images (the first N of the cell's images, whatever the batch size, via :meth:`prepare`; FGSM at
  ``fgsm_eps`` in (0, 1], default the dataset's ε), added to every image scaled by α: x̃ = clip(x + α ν).
  ``target=K`` makes it the paper's *targeted* universal perturbation: each x̃ᵢ is FGSM's step *towards* class K
  (torchattacks' targeted mode, x̃ = x − ε sign ∇ CE(f(x), K)), so α > 0 pushes every image towards K. (The paper
  writes ν = Σ (Xᵢ − X̃ᵢ)/N, which with a targeted X̃ would push away from the target; we read it as the step
  towards it, and flip the sign likewise for the untargeted default so that α > 0 attacks.) ``alpha`` is swept by
  the paper specs.
* ``universal-art`` — ART's ``UniversalPerturbation`` (iterative DeepFool/FGSM-driven search with an ℓ∞
  budget ``eps``), fitted on the cell's first ``fit_images`` images; its random image order is
  drawn from ``seed`` (set per cell by the matrix).

Shape: (N, C, H, W) in [0, 1] -> same. The perturbation is fitted once per attack instance and model.
Example::

    >>> atk = get_attack("universal-fgsm", "fmnist", alpha=2.0)
    >>> x_adv = atk(classifier, x, y)
"""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import torch
from torch import nn
import torchattacks

from defbench import DefbenchError
from defbench.attacks.base import DEFAULT_EPS, Attack, check_positive, model_device
from defbench.datasets import NUM_CLASSES


class _Universal(Attack):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._nu: torch.Tensor | None = None
        #: the model ν was fitted on, held (not its id: a freed model's id is reused by the next one, which would
        #: then get the old ν, as gan-aware's per-batch latent models could)
        self._for_model: nn.Module | None = None
        #: seed of the fit's random draws (ART shuffles the fitting images with Python's ``random``); the
        #: matrix sets it from the cell, so a fit never depends on the global RNG state left by earlier work
        self.seed: int = 0

    def fit(self, model, x, y) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, model, x, y):
        model.eval()
        self._nu = self.fit(model, x, y).detach()
        self._for_model = model

    def run(self, model, x, y):
        if self._nu is None or self._for_model is not model:
            self.prepare(model, x, y)
        return (x + self._nu.to(x.device)).clamp(0, 1)  # x̃ = clip(x + ν): the output checks want [0, 1]


class UniversalFGSM(_Universal):
    name = "universal-fgsm"
    family = "universal-fgsm"
    bounded = False  # α scales the perturbation past the FGSM ε; the sweep is over α
    defaults = {"alpha": 1.0, "images": 15, "fgsm_eps": None, "target": None}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        t, classes = self.params["target"], NUM_CLASSES.get(self.dataset)
        is_index = isinstance(t, int) and not isinstance(t, bool) and t >= 0 and (classes is None or t < classes)
        if t is not None and not is_index:
            raise DefbenchError(f"universal-fgsm target {t!r} must be a class index in [0, {classes})")
        check_positive(self, "fgsm_eps", most=1.0)
        check_positive(self, "images", whole=True)
        check_positive(self, "alpha")

    @property
    def label(self):
        t = self.params["target"]
        base = f"Universal-FGSM α={self.params['alpha']:g}" + ("" if t is None else f" (targeted: class {t})")
        return base + (" (predicted labels)" if self.labels == "predicted" else "")

    @property
    def prepare_images(self) -> int:
        return self.params["images"]

    def fit(self, model, x, y):
        n = self.params["images"]
        xs, ys = x[:n], y[:n]
        eps = self.params["fgsm_eps"]
        if eps is None:
            eps = DEFAULT_EPS.get(self.dataset, 0.3)
        fgsm = torchattacks.FGSM(model, eps=eps)
        if self.params["target"] is not None:
            with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints the mode change
                fgsm.set_mode_targeted_by_function(lambda xb, yb: torch.full_like(yb, self.params["target"]))
        x_adv = fgsm(xs, ys)
        return self.params["alpha"] * (x_adv - xs).mean(0, keepdim=True)


class _InRange(nn.Module):
    """``model`` on its input clipped to [0, 1]. ART's search scores x + ν unclipped, where the attack presents
    clip(x + ν); a purification refuses pixels out of range (and a bare classifier would be scored on images that
    never reach it), so the fit sees what the attack will hand the model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.clamp(0, 1))


class UniversalART(_Universal):
    name = "universal-art"
    family = "universal-art"
    label_name = "Universal (ART)"
    defaults = {"attacker": "fgsm", "max_iter": 5, "delta": 0.2, "fit_images": 100}
    #: the attackers of ART's UniversalPerturbation that take the L∞ ``eps`` this attack hands them
    ATTACKERS = ("fgsm", "bim", "pgd")

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        if self.params["attacker"] not in self.ATTACKERS:
            raise DefbenchError(
                f"{self.who}: attacker must be one of {', '.join(self.ATTACKERS)} (ART's attackers that take the "
                f"L∞ eps), got {self.params['attacker']!r}"
            )
        check_positive(self, "max_iter", whole=True)
        check_positive(self, "fit_images", whole=True)
        check_positive(self, "delta", zero=True, most=1.0)

    @property
    def prepare_images(self) -> int:
        return self.params["fit_images"]

    def fit(self, model, x, y):
        from art.attacks.evasion import UniversalPerturbation
        from art.estimators.classification import PyTorchClassifier

        n = self.params["fit_images"]
        xs = x[:n].cpu().numpy().astype(np.float32)
        clf = PyTorchClassifier(
            model=_InRange(model),
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=tuple(x.shape[1:]),
            nb_classes=int(model(x[:1]).shape[1]),
            clip_values=(0.0, 1.0),
            device_type="gpu" if model_device(model).type == "cuda" else "cpu",
        )
        atk = UniversalPerturbation(
            clf,
            attacker=self.params["attacker"],
            attacker_params={"eps": self.eps},
            max_iter=self.params["max_iter"],
            delta=self.params["delta"],
            eps=self.eps,
            norm=np.inf,
            verbose=False,
        )
        state, np_state = random.getstate(), np.random.get_state()
        random.seed(self.seed)
        np.random.seed(self.seed % (2**32))
        try:
            atk.generate(xs)
        finally:
            random.setstate(state)
            np.random.set_state(np_state)
        return torch.from_numpy(atk.noise.astype(np.float32)).reshape(1, *x.shape[1:])
