"""BIM — Kurakin, Goodfellow, Bengio, "Adversarial Examples in the Physical World" (2016).

Iterated FGSM with per-step size ``alpha``, clipped to the ε-ball, via ``torchattacks.BIM``.

Arguments: eps (default 0.3 / 8/255), step (per-step size; default cleverhans' 0.05 for ε = 0.3, else ε/4),
steps (default cleverhans' 10).
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
        step = self.params["step"] or self.eps / 6
        return torchattacks.BIM(model, eps=self.eps, alpha=step, steps=self.params["steps"])(x, y)
