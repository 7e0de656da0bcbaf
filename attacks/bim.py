"""BIM — Kurakin, Goodfellow, Bengio, "Adversarial Examples in the Physical World" (2016).

Iterated FGSM with per-step size ``alpha``, clipped to the ε-ball, via ``torchattacks.BIM``.

Arguments: eps (default 0.3 / 8/255), step (default (5/3)·ε/steps: cleverhans' total travel, i.e. its 0.05 at ε = 0.3
with 10 steps, rescaled when steps change), steps (default cleverhans' 10).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("bim", "fmnist", steps=20)(classifier, x, y)
"""

import torchattacks

from defbench.attacks.base import Attack


class BIM(Attack):
    name = "bim"
    label_name = "BIM"
    iterative = True
    defaults = {"step": None, "steps": 10}

    def run(self, model, x, y):
        step = self.params["step"] or (5 / 3) * self.eps / self.params["steps"]
        return torchattacks.BIM(model, eps=self.eps, alpha=step, steps=self.params["steps"])(x, y)
