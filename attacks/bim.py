"""BIM — Kurakin, Goodfellow, Bengio, "Adversarial Examples in the Physical World" (2016).

Iterated FGSM with per-step size ``step`` (torchattacks' ``alpha``), clipped to the ε-ball, via ``torchattacks.BIM``.

Arguments: eps (default 0.3 / 8/255), step (the size of each step in pixel units, a positive number; default
(5/3)·ε/steps: cleverhans' total travel, i.e. its 0.05 at ε = 0.3 with 10 steps, rescaled when steps change), steps
(a whole number >= 1, default cleverhans' 10).
Shape: (N, C, H, W) in [0, 1] -> same.
Example::

    >>> x_adv = get_attack("bim", "fmnist", steps=20)(classifier, x, y)
"""

import torchattacks

from defbench.attacks.base import Attack, check_positive


class BIM(Attack):
    name = "bim"
    label_name = "BIM"
    iterative = True
    defaults = {"step": None, "steps": 10}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        check_positive(self, "step")
        check_positive(self, "steps", whole=True)

    def run(self, model, x, y):
        step = self.params["step"]
        if step is None:
            step = (5 / 3) * self.eps / self.params["steps"]
        return torchattacks.BIM(model, eps=self.eps, alpha=step, steps=self.params["steps"])(x, y)
